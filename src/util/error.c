/*
 * XsError construction and destruction. See error.h.
 */
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

void xs_error_setv(XsError **errp, const char *code, size_t nparams, const char *const *params)
{
    if (!errp)
        return;
    if (*errp) {
        log_warn("dropping error %s raised after %s", code, (*errp)->code);
        return;
    }
    XsError *e = xnew0(XsError, 1);
    e->code = xstrdup(code);
    e->nparams = nparams;
    e->params = xnew0(char *, nparams + 1);
    for (size_t i = 0; i < nparams; i++)
        e->params[i] = xstrdup(params[i] ? params[i] : "");
    *errp = e;
}

void xs_error_set(XsError **errp, const char *code, size_t nparams, ...)
{
    const char *p[16];
    va_list ap;
    if (nparams > ARRAY_SIZE(p))
        nparams = ARRAY_SIZE(p);
    va_start(ap, nparams);
    for (size_t i = 0; i < nparams; i++)
        p[i] = va_arg(ap, const char *);
    va_end(ap);
    xs_error_setv(errp, code, nparams, p);
}

void xs_error_internal(XsError **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    log_error("internal error: %s", msg);
    xs_error_set(errp, "INTERNAL_ERROR", 1, msg);
    free(msg);
}

void xs_error_free(XsError *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nparams; i++)
        free(e->params[i]);
    free(e->params);
    free(e->code);
    free(e);
}

void xs_error_freep(XsError **e)
{
    xs_error_free(*e);
    *e = NULL;
}

XsError *xs_error_copy(const XsError *e)
{
    XsError *c = NULL;
    if (e)
        xs_error_setv(&c, e->code, e->nparams, (const char *const *)e->params);
    return c;
}

void xs_error_propagate(XsError **dst, XsError *src)
{
    if (!src)
        return;
    if (!dst || *dst) {
        xs_error_free(src);
        return;
    }
    *dst = src;
}

bool xs_error_is(const XsError *e, const char *code)
{
    return e && strcmp(e->code, code) == 0;
}

char *xs_error_to_string(const XsError *e)
{
    StrBuf sb = STRBUF_INIT;
    strbuf_adds(&sb, e->code);
    for (size_t i = 0; i < e->nparams; i++) {
        strbuf_adds(&sb, i ? ", " : ": ");
        strbuf_adds(&sb, e->params[i]);
    }
    return strbuf_detach(&sb, NULL);
}
