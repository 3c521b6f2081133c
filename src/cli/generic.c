/*
 * The commands every class has, derived from the schema's CLI records:
 * <class>-list, -param-list, -param-get, -param-set, -param-add,
 * -param-remove and -param-clear.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* The record of uuid=..., as (ref, record); prints the error itself. */
static bool by_uuid(Cli *cli, const XsClass *cls, char **ref, const XsValue **rec)
{
    const char *uuid = cli_param(cli, "uuid");
    XsValue *p = xv_array();
    xv_array_push_string(p, uuid);
    char *m = xasprintf("%s.get_by_uuid", cls->name);
    XsValue *r = cli_call(cli, m, p);
    free(m);
    if (!r)
        return false;
    *ref = xstrdup(r->s);
    xv_free(r);
    *rec = cli_record(cli, cls->id, *ref);
    if (!*rec) {
        cli_fail(cli, "The %s %s disappeared.", cls->name, uuid);
        free(*ref);
        return false;
    }
    return true;
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

static int cmd_list(Cli *cli, const CliCommand *cmd)
{
    const XsClass *cls = cmd->cls;
    CliSelection sel;
    if (!cli_select(cli, cls, cli_has(cli, "all") ? "" : cmd->view->filters, !cli_has(cli, "all"),
                    &sel))
        return 1;
    const char *params = cli_param(cli, "params");
    bool all = params && strcmp(params, "all") == 0;
    const char *cols = params && !all ? params : (all ? NULL : cmd->view->columns);
    if (cols && !*cols)
        cols = NULL;
    if (cols && params) {
        /* every requested column must exist */
        char *copy = xstrdup(cols);
        for (char *tok = copy, *next; tok; tok = next) {
            next = strchr(tok, ',');
            if (next)
                *next++ = '\0';
            if (*tok && !cli_find_field(cls, tok)) {
                cli_fail(cli, "Unknown field '%s' of the %s class.", tok, cls->name);
                free(copy);
                cli_selection_release(&sel);
                return 1;
            }
        }
        free(copy);
    }
    CliRow *rows = xcalloc(sel.n + 1, sizeof(CliRow));
    for (size_t i = 0; i < sel.n; i++) {
        for (size_t k = 0; k < cls->ncli_fields; k++) {
            const XsCliField *cf = &cls->cli_fields[k];
            bool requested = cols && in_list(cols, cf->name);
            if (cols && !requested)
                continue;
            if ((cf->flags & XS_CLI_HIDDEN) && !(requested && params))
                continue;
            char *label = cli_field_label(cls, cf);
            char *value = (cf->flags & XS_CLI_EXPENSIVE) && !(requested && params)
                              ? xstrdup("<expensive field>")
                              : cli_field_value(cli, cls, sel.refs[i], sel.records[i], cf);
            cli_row_add(&rows[i], label, value);
            free(label);
            free(value);
        }
    }
    cli_print_table(cli, rows, sel.n);
    for (size_t i = 0; i < sel.n; i++)
        cli_row_release(&rows[i]);
    free(rows);
    cli_selection_release(&sel);
    return 0;
}

static int cmd_param_list(Cli *cli, const CliCommand *cmd)
{
    const XsClass *cls = cmd->cls;
    char *ref;
    const XsValue *rec;
    if (!by_uuid(cli, cls, &ref, &rec))
        return 1;
    CliRow row = {0};
    for (size_t k = 0; k < cls->ncli_fields; k++) {
        const XsCliField *cf = &cls->cli_fields[k];
        if (cf->flags & XS_CLI_HIDDEN)
            continue;
        char *label = cli_field_label(cls, cf);
        char *value = cli_field_value(cli, cls, ref, rec, cf);
        cli_row_add(&row, label, value);
        free(label);
        free(value);
    }
    cli_print_table(cli, &row, 1);
    cli_row_release(&row);
    free(ref);
    return 0;
}

static const XsCliField *param_field(Cli *cli, const XsClass *cls, const char *name)
{
    const XsCliField *cf = cli_find_field(cls, name);
    if (!cf)
        cli_fail(cli, "Unknown field '%s' of the %s class.", name, cls->name);
    return cf;
}

static int cmd_param_get(Cli *cli, const CliCommand *cmd)
{
    const XsClass *cls = cmd->cls;
    const XsCliField *cf = param_field(cli, cls, cli_param(cli, "param-name"));
    if (!cf)
        return 1;
    char *ref;
    const XsValue *rec;
    if (!by_uuid(cli, cls, &ref, &rec))
        return 1;
    const char *key = cli_param(cli, "param-key");
    int rc = 0;
    if (key && cli_field_is_map(cls, cf)) {
        const XsField *f = cli_api_field(cls, cf);
        const XsValue *m = NULL;
        const XsType *et = NULL;
        if (f) {
            m = xv_struct_get(rec, f->name);
            et = f->type->elem;
        } else if (cf->target_class >= 0) {
            const XsValue *via = xv_struct_get(rec, cls->fields[cf->field].name);
            const XsValue *t = via ? cli_record(cli, cf->target_class, via->s) : NULL;
            const XsField *tf = &xs_classes[cf->target_class]->fields[cf->target_field];
            m = t ? xv_struct_get(t, tf->name) : NULL;
            et = tf->type->elem;
        }
        const XsValue *e = m ? xv_struct_get(m, key) : NULL;
        if (!e) {
            rc = cli_fail(cli, "Key %s not found in map", key);
        } else {
            char *v = cli_format_value(cli, et, e, NULL);
            cli_print_line(cli, v);
            free(v);
        }
    } else {
        char *v = cli_field_value(cli, cls, ref, rec, cf);
        cli_print_line(cli, v);
        free(v);
    }
    free(ref);
    return rc;
}

static bool call_setter(Cli *cli, const XsClass *cls, const char *op, const char *ref,
                        const XsField *f, XsValue *a, XsValue *b)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    if (a)
        xv_array_push(p, a);
    if (b)
        xv_array_push(p, b);
    char *m = xasprintf("%s.%s%s", cls->name, op, f->name);
    XsValue *r = cli_call(cli, m, p);
    free(m);
    xv_free(r);
    return r != NULL;
}

static int cmd_param_set(Cli *cli, const CliCommand *cmd)
{
    const XsClass *cls = cmd->cls;
    char *ref;
    const XsValue *rec;
    if (!by_uuid(cli, cls, &ref, &rec))
        return 1;
    int rc = 0;
    for (size_t i = 0; i < cli->nparams && rc == 0; i++) {
        const char *k = cli->params[i].key;
        const char *v = cli->params[i].value;
        if (strcmp(k, "uuid") == 0 || cli_is_std_param(k))
            continue;
        const char *colon = strchr(k, ':');
        char *name = colon ? xstrndup(k, (size_t)(colon - k)) : xstrdup(k);
        const XsCliField *cf = cli_find_field(cls, name);
        const XsField *f = cf ? cli_api_field(cls, cf) : NULL;
        if (!cf) {
            rc = cli_fail(cli, "Unknown field '%s' of the %s class.", name, cls->name);
        } else if (colon) {
            if (!f || f->type->kind != XS_T_MAP) {
                rc = cli_fail(cli, "Field '%s' is not a map.", name);
            } else if (!cli_field_writable(cls, cf)) {
                rc = cli_fail(cli, "Map field '%s' is read-only.", name);
            } else {
                const char *key = colon + 1;
                if (xv_struct_get(xv_struct_get(rec, f->name), key) &&
                    !call_setter(cli, cls, "remove_from_", ref, f, xv_string(key), NULL))
                    rc = 1;
                else if (!call_setter(cli, cls, "add_to_", ref, f, xv_string(key), xv_string(v)))
                    rc = 1;
            }
        } else if (!cli_field_writable(cls, cf) || !f) {
            rc = cli_fail(cli, "Field '%s' is read-only.", name);
        } else if (f->type->kind == XS_T_MAP || f->type->kind == XS_T_SET) {
            rc = cli_fail(cli, "Field '%s' is a map or set. use the 'name:key=value' syntax.",
                          name);
        } else {
            XsError *err = NULL;
            XsValue *val = cli_parse_field_value(cli, cls, f, v, &err);
            if (!val) {
                rc = cli_error(cli, err);
                xs_error_free(err);
            } else if (!call_setter(cli, cls, "set_", ref, f, val, NULL)) {
                rc = 1;
            }
        }
        free(name);
    }
    free(ref);
    return rc;
}

/* The writable map or set field named by param-name, and the object of
 * uuid=; prints the error and returns NULL otherwise. */
static const XsField *collection_param(Cli *cli, const XsClass *cls, char **ref)
{
    const XsCliField *cf = param_field(cli, cls, cli_param(cli, "param-name"));
    if (!cf)
        return NULL;
    const XsField *f = cli_api_field(cls, cf);
    if (!f || !cli_field_writable(cls, cf) ||
        (f->type->kind != XS_T_MAP && f->type->kind != XS_T_SET)) {
        cli_fail(cli, "Parameter is read-only");
        return NULL;
    }
    const XsValue *rec;
    return by_uuid(cli, cls, ref, &rec) ? f : NULL;
}

static int cmd_param_add(Cli *cli, const CliCommand *cmd)
{
    const XsClass *cls = cmd->cls;
    char *ref;
    const XsField *f = collection_param(cli, cls, &ref);
    if (!f)
        return 1;
    int rc = 0;
    if (f->type->kind == XS_T_SET) {
        const char *key = cli_param(cli, "param-key");
        if (!key)
            rc = cli_fail(cli, "When adding a key to a set, use the syntax: *-param-add "
                               "param-name=<name> param-key=<key>");
        else if (!call_setter(cli, cls, "add_", ref, f, xv_string(key), NULL))
            rc = 1;
    } else {
        for (size_t i = 0; i < cli->nparams && rc == 0; i++) {
            const char *k = cli->params[i].key;
            if (strcmp(k, "uuid") == 0 || strcmp(k, "param-name") == 0 ||
                strcmp(k, "param-key") == 0 || cli_is_std_param(k))
                continue;
            if (!call_setter(cli, cls, "add_to_", ref, f, xv_string(k),
                             xv_string(cli->params[i].value)))
                rc = 1;
        }
    }
    free(ref);
    return rc;
}

static int cmd_param_remove(Cli *cli, const CliCommand *cmd)
{
    const XsClass *cls = cmd->cls;
    char *ref;
    const XsField *f = collection_param(cli, cls, &ref);
    if (!f)
        return 1;
    const char *key = cli_param(cli, "param-key");
    bool ok = call_setter(cli, cls, f->type->kind == XS_T_SET ? "remove_" : "remove_from_", ref,
                          f, xv_string(key), NULL);
    free(ref);
    return ok ? 0 : 1;
}

static int cmd_param_clear(Cli *cli, const CliCommand *cmd)
{
    const XsClass *cls = cmd->cls;
    const XsCliField *cf = param_field(cli, cls, cli_param(cli, "param-name"));
    if (!cf)
        return 1;
    const XsField *f = cli_api_field(cls, cf);
    if (!f || !cli_field_writable(cls, cf))
        return cli_fail(cli, "Field '%s' is read-only.", cf->name);
    char *ref;
    const XsValue *rec;
    if (!by_uuid(cli, cls, &ref, &rec))
        return 1;
    XsValue *empty;
    switch (f->type->kind) {
    case XS_T_MAP:
        empty = xv_struct();
        break;
    case XS_T_SET:
        empty = xv_array();
        break;
    case XS_T_REF:
        empty = xv_string("OpaqueRef:NULL");
        break;
    case XS_T_STRING:
        empty = xv_string("");
        break;
    default: {
        free(ref);
        return cli_fail(cli, "Field '%s' cannot be cleared.", cf->name);
    }
    }
    bool ok = call_setter(cli, cls, "set_", ref, f, empty, NULL);
    free(ref);
    return ok ? 0 : 1;
}

static const struct {
    const char *suffix;
    const char *reqd;
    const char *optn;
    const char *help;
    CliRun run;
} generic[] = {
    {"-list", "", "params", "Lists the %ss; any field as field=value filters them.", cmd_list},
    {"-param-list", "uuid", "", "Shows every parameter of a %s.", cmd_param_list},
    {"-param-get", "uuid,param-name", "param-key",
     "Shows one parameter of a %s; with param-key, one key of a map parameter.", cmd_param_get},
    {"-param-set", "uuid", "",
     "Sets parameters of a %s: field=value, or map-field:key=value for one key of a map.",
     cmd_param_set},
    {"-param-add", "uuid,param-name", "param-key",
     "Adds to a set parameter of a %s (param-key=value) or to a map parameter (key=value "
     "pairs).",
     cmd_param_add},
    {"-param-remove", "uuid,param-name,param-key", "",
     "Removes a key from a map or set parameter of a %s.", cmd_param_remove},
    {"-param-clear", "uuid,param-name", "", "Empties a parameter of a %s.", cmd_param_clear},
};

void cli_generic_commands(CliCommandList *l)
{
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        const XsClass *cls = xs_classes[c];
        for (size_t v = 0; v < cls->ncli_views; v++) {
            const XsCliView *view = &cls->cli_views[v];
            for (size_t g = 0; g < ARRAY_SIZE(generic); g++) {
                CliCommand cmd = {0};
                cmd.name = xasprintf("%s%s", view->name, generic[g].suffix);
                cmd.reqd = generic[g].reqd;
                cmd.optn = generic[g].optn;
                cmd.help = xasprintf(generic[g].help, view->name);
                cmd.run = generic[g].run;
                cmd.cls = cls;
                cmd.view = view;
                cli_register(l, &cmd, 1);
            }
        }
    }
}
