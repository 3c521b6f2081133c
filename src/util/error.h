/*
 * XsError: one error type that carries a XenAPI error code and its string
 * parameters from where it is raised to the wire (ErrorDescription), the CLI
 * and the tests. Functions take `XsError **errp` as their last parameter, set
 * it exactly once on failure and also return false/NULL/-1. errp may be NULL
 * when the caller does not care. The generated model (model-gen.h) provides a
 * typed constructor per XenAPI error; this file only knows strings.
 */
#ifndef HX_UTIL_ERROR_H
#define HX_UTIL_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include "util/macros.h"

typedef struct XsError {
    char *code;
    size_t nparams;
    char **params;
} XsError;

/* Sets *errp (if errp is non-NULL) to a new error with nparams strings. A NULL
 * parameter is stored as "". If *errp is already set the new error is
 * dropped (the first error wins) and a warning is logged. */
void xs_error_set(XsError **errp, const char *code, size_t nparams, ...);
void xs_error_setv(XsError **errp, const char *code, size_t nparams, const char *const *params);
/* INTERNAL_ERROR with a printf-formatted message. */
void xs_error_internal(XsError **errp, const char *fmt, ...) HX_PRINTF(2, 3);
void xs_error_free(XsError *e);
XsError *xs_error_copy(const XsError *e);
/* Moves src into *dst (or frees it when dst is NULL). */
void xs_error_propagate(XsError **dst, XsError *src);
bool xs_error_is(const XsError *e, const char *code);
/* "CODE: p1, p2" (for logs). Caller frees. */
char *xs_error_to_string(const XsError *e);

#define _cleanup_xs_error_ __attribute__((cleanup(xs_error_freep)))
void xs_error_freep(XsError **e);

#endif
