/*
 * Helpers of the hand-written xe command families (see cli_util.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_util.h"
#include "client/transfer.h"
#include "util/xalloc.h"
#include "util/banned.h"

const char *cli_rec_str(const XsValue *rec, const char *field)
{
    const char *s = rec ? xv_struct_get_string(rec, field) : NULL;
    return s ? s : "";
}

bool cli_rec_bool(const XsValue *rec, const char *field)
{
    const XsValue *v = rec ? xv_struct_get(rec, field) : NULL;
    return v && v->kind == XV_BOOL && v->b;
}

XsValue *cli_args1(const char *arg)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, arg);
    return p;
}

XsValue *cli_call1(Cli *cli, const char *method, const char *arg)
{
    return cli_call(cli, method, cli_args1(arg));
}

char *cli_ref_by_uuid(Cli *cli, const char *cls, const char *uuid)
{
    char *m = xasprintf("%s.get_by_uuid", cls);
    XsValue *r = cli_call1(cli, m, uuid ? uuid : "");
    free(m);
    if (!r)
        return NULL;
    char *ref = xstrdup(r->s);
    xv_free(r);
    return ref;
}

static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, name, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

void cli_print_records(Cli *cli, const XsClass *cls, char *const *refs, size_t n,
                       const char *columns)
{
    CliRow *rows = xcalloc(n + 1, sizeof(CliRow));
    for (size_t i = 0; i < n; i++) {
        const XsValue *rec = cli_record(cli, cls->id, refs[i]);
        if (!rec)
            continue;
        for (size_t k = 0; k < cls->ncli_fields; k++) {
            const XsCliField *cf = &cls->cli_fields[k];
            if (!in_list(columns, cf->name))
                continue;
            char *label = cli_field_label(cls, cf);
            char *value = cli_field_value(cli, cls, refs[i], rec, cf);
            cli_row_add(&rows[i], label, value);
            free(label);
            free(value);
        }
    }
    cli_print_table(cli, rows, n);
    for (size_t i = 0; i < n; i++)
        cli_row_release(&rows[i]);
    free(rows);
}

char *cli_task_create(Cli *cli, const char *label, const char *description)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, label);
    xv_array_push_string(p, description ? description : "");
    XsValue *t = cli_call(cli, "task.create", p);
    if (!t)
        return NULL;
    char *r = xstrdup(t->s);
    xv_free(t);
    return r;
}

void cli_task_destroy(Cli *cli, const char *task)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, task);
    XsError *err = NULL;
    xv_free(xc_call_session(cli->conn, "task.destroy", p, &err));
    xs_error_free(err);
}

double cli_task_progress(const XsValue *rec)
{
    const XsValue *pv = xv_struct_get(rec, "progress");
    return !pv ? 0 : pv->kind == XV_FLOAT ? pv->f : pv->kind == XV_INT ? (double)pv->i : 0;
}

bool cli_task_state(Cli *cli, const char *task, char status[16], double *progress)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, task);
    XsError *err = NULL;
    XsValue *rec = xc_call_session(cli->conn, "task.get_record", p, &err);
    xs_error_free(err);
    if (!rec)
        return false;
    const char *s = xv_struct_get_string(rec, "status");
    snprintf(status, 16, "%s", s ? s : "");
    *progress = cli_task_progress(rec);
    xv_free(rec);
    return true;
}

bool cli_transfer_by_fd(Cli *cli, const char *filename, bool import)
{
    const char *force = getenv("HYPERXE_XE_STREAM");
    if ((force && !strcmp(force, "1")) || !xc_transfer_can_pass_fd(cli->conn) ||
        !strcmp(filename, "-"))
        return false;
    struct stat st;
    return stat(filename, &st) == 0 ? S_ISREG(st.st_mode) : !import;
}
