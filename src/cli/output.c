/*
 * xe's output: records as aligned label/value tables, --minimal lists,
 * error reports in XenServer's words, and the progress bar of tasks. Also
 * the call helpers that print errors on the way.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "model/wire.h"
#include "util/xalloc.h"
#include "util/banned.h"

void cli_row_add(CliRow *r, const char *label, const char *value)
{
    if (r->n == r->alloc) {
        r->alloc = r->alloc ? r->alloc * 2 : 16;
        r->labels = xreallocarray(r->labels, r->alloc, sizeof(char *));
        r->values = xreallocarray(r->values, r->alloc, sizeof(char *));
    }
    r->labels[r->n] = xstrdup(label);
    r->values[r->n] = xstrdup(value);
    r->n++;
}

void cli_row_release(CliRow *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->labels[i]);
        free(r->values[i]);
    }
    free(r->labels);
    free(r->values);
    memset(r, 0, sizeof(*r));
}

static void put_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == ',' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void cli_print_table(Cli *cli, CliRow *rows, size_t n)
{
    if (cli->minimal) {
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (!rows[i].n)
                continue;
            if (!first)
                fputc(',', cli->out);
            put_escaped(cli->out, rows[i].values[0]);
            first = false;
        }
        fputc('\n', cli->out);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        CliRow *r = &rows[i];
        size_t width = 0;
        for (size_t k = 0; k < r->n; k++) {
            size_t l = strlen(r->labels[k]);
            if (l > width)
                width = l;
        }
        width += 4;
        for (size_t k = 0; k < r->n; k++) {
            if (k == 0)
                fprintf(cli->out, "%-*s: %s\n", (int)width, r->labels[k], r->values[k]);
            else
                fprintf(cli->out, "%*s: %s\n", (int)width, r->labels[k], r->values[k]);
        }
        fputs("\n\n", cli->out);
    }
}

void cli_print_list(Cli *cli, const char *const *items, size_t n)
{
    if (cli->minimal) {
        for (size_t i = 0; i < n; i++) {
            if (i)
                fputc(',', cli->out);
            put_escaped(cli->out, items[i]);
        }
        fputc('\n', cli->out);
        return;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(cli->out, "%s\n", items[i]);
}

void cli_print_line(Cli *cli, const char *s)
{
    fprintf(cli->out, "%s\n", s);
}

int cli_fail(Cli *cli, const char *fmt, ...)
{
    fflush(cli->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* The class an error parameter refers to, judged by its documented name. */
static int class_of_param(const char *name)
{
    static const struct {
        const char *param;
        int cls;
    } map[] = {
        {"vm", XS_CLASS_VM},          {"snapshot", XS_CLASS_VM}, {"vdi", XS_CLASS_VDI},
        {"sr", XS_CLASS_SR},          {"host", XS_CLASS_HOST},   {"vbd", XS_CLASS_VBD},
        {"vif", XS_CLASS_VIF},        {"network", XS_CLASS_NETWORK},
        {"task", XS_CLASS_TASK},      {"pif", XS_CLASS_PIF},     {"pbd", XS_CLASS_PBD},
        {"appliance", XS_CLASS_VM_APPLIANCE},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (strcasecmp(name, map[i].param) == 0)
            return map[i].cls;
    return -1;
}

static char *describe(Cli *cli, const char *param, const char *value)
{
    if (strncmp(value, "OpaqueRef:", 10) != 0 || strcmp(value, "OpaqueRef:NULL") == 0 ||
        !cli->conn)
        return xstrdup(value);
    int cls = class_of_param(param);
    if (cls < 0)
        return xstrdup(value);
    XsValue *p = xv_array();
    xv_array_push_string(p, value);
    char *m = xasprintf("%s.get_record", xs_classes[cls]->name);
    XsValue *r = xc_call_session(cli->conn, m, p, NULL);
    free(m);
    if (!r)
        return xstrdup(value);
    const char *uuid = xv_struct_get_string(r, "uuid");
    const char *name = xv_struct_get_string(r, "name_label");
    char *s = name ? xasprintf("%s (%s)", uuid ? uuid : value, name)
                   : xstrdup(uuid ? uuid : value);
    xv_free(r);
    return s;
}

int cli_error(Cli *cli, const XsError *err)
{
    fflush(cli->out);
    if (strcmp(err->code, "SESSION_AUTHENTICATION_FAILED") == 0) {
        fprintf(stderr, "Authentication failed\n");
        return 1;
    }
    if (strcmp(err->code, "CONNECTION_FAILED") == 0 || strcmp(err->code, "CLI_ERROR") == 0) {
        fprintf(stderr, "%s\n", err->nparams ? err->params[0] : err->code);
        return 1;
    }
    const XsErrorDef *def = xs_error_def(err->code);
    if (!def) {
        fprintf(stderr, "Error code: %s\nError parameters: ", err->code);
        for (size_t i = 0; i < err->nparams; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", err->params[i]);
        fputc('\n', stderr);
        return 1;
    }
    fprintf(stderr, "%s: %s\n", err->code, def->doc);
    for (size_t i = 0; i < err->nparams; i++) {
        const char *name = i < def->nparams ? def->params[i] : "";
        char *v = describe(cli, name, err->params[i]);
        if (*name)
            fprintf(stderr, "%s: %s\n", name, v);
        else
            fprintf(stderr, "%s\n", v);
        free(v);
    }
    return 1;
}

XsValue *cli_call(Cli *cli, const char *method, XsValue *params)
{
    XsError *err = NULL;
    XsValue *r = xc_call_session(cli->conn, method, params, &err);
    if (!r) {
        cli_error(cli, err);
        xs_error_free(err);
    }
    return r;
}

static void draw_progress(Cli *cli, double p, bool done)
{
    if (!cli->interactive)
        return;
    int width = 50;
    int fill = (int)(p * width + 0.5);
    if (fill > width)
        fill = width;
    if (fill < 0)
        fill = 0;
    fprintf(stderr, "\r[");
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : ' ', stderr);
    fprintf(stderr, "] %3d%%", (int)(p * 100 + 0.5));
    if (done)
        fprintf(stderr, "\r%*s\r", width + 8, "");
    fflush(stderr);
}

void cli_progress(Cli *cli, double fraction, bool done)
{
    draw_progress(cli, fraction, done);
}

XsValue *cli_wait_task(Cli *cli, const char *task, const char *what)
{
    char *token = xstrdup("");
    XsValue *result = NULL;
    double last = -1;
    for (;;) {
        XsValue *args = xv_array();
        xv_array_push_string(args, task);
        XsValue *rec = cli_call(cli, "task.get_record", args);
        if (!rec)
            break;
        const char *status = xv_struct_get_string(rec, "status");
        double progress = cli_task_progress(rec);
        if (progress != last) {
            draw_progress(cli, progress, false);
            last = progress;
        }
        if (status && strcmp(status, "pending") != 0 && strcmp(status, "cancelling") != 0) {
            draw_progress(cli, 1.0, true);
            if (strcmp(status, "success") == 0) {
                const char *res = xv_struct_get_string(rec, "result");
                if (res && *res) {
                    char *perr = NULL;
                    result = xmlrpc_parse_value_document(res, strlen(res), &perr);
                    free(perr);
                }
                if (!result)
                    result = xv_null();
            } else {
                const XsValue *info = xv_struct_get(rec, "error_info");
                XsError *err = NULL;
                if (info && info->kind == XV_ARRAY && info->n > 0) {
                    const char *p[16];
                    size_t n = 0;
                    for (uint32_t i = 1; i < info->n && n < 16; i++)
                        p[n++] = info->items[i].s;
                    xs_error_setv(&err, info->items[0].s, n, p);
                } else {
                    xs_error_set(&err, "TASK_CANCELLED", 1, task);
                }
                cli_error(cli, err);
                xs_error_free(err);
            }
            xv_free(rec);
            break;
        }
        xv_free(rec);
        /* Wait for the next change of the task (or a second). */
        XsValue *p = xv_array();
        XsValue *classes = xv_array();
        xv_array_push(classes, xv_string_take(xasprintf("task/%s", task)));
        xv_array_push(p, classes);
        xv_array_push_string(p, token);
        xv_array_push(p, xv_float(1.0));
        XsError *err = NULL;
        XsValue *ev = xc_call_session(cli->conn, "event.from", p, &err);
        xs_error_free(err);
        if (ev) {
            const char *t = xv_struct_get_string(ev, "token");
            if (t) {
                free(token);
                token = xstrdup(t);
            }
            xv_free(ev);
        } else {
            usleep(200 * 1000);
        }
    }
    free(token);
    (void)what;
    return result;
}

XsValue *cli_call_async(Cli *cli, const char *method, XsValue *params, const char *what)
{
    char *m = xasprintf("Async.%s", method);
    XsValue *task = cli_call(cli, m, params);
    free(m);
    if (!task)
        return NULL;
    XsValue *r = cli_wait_task(cli, task->s, what);
    cli_task_destroy(cli, task->s);
    xv_free(task);
    return r;
}
