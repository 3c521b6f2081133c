/*
 * xe's view of records: fetching them (each class's records fetched once
 * per command and cached), turning fields into the strings xe prints (refs
 * as uuids, "<not in database>" for dangling ones, maps as "k: v; k2: v2",
 * enums in xe's spelling), the ( RO)/(MRW)/... tags, parsing values typed
 * on the command line, and selecting records with filters.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "model/wire.h"
#include "util/hashmap.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define NOT_IN_DB "<not in database>"

struct CliCache {
    XsValue *all[XS_CLASS__MAX]; /* Class.get_all_records */
    HashMap by_ref[XS_CLASS__MAX];
    XsValue *extra; /* records fetched one by one: ref -> record */
};

static struct CliCache *cache(Cli *cli)
{
    if (!cli->cache) {
        cli->cache = xnew0(struct CliCache, 1);
        cli->cache->extra = xv_struct();
    }
    return cli->cache;
}

static void load_class(Cli *cli, int cls)
{
    struct CliCache *c = cache(cli);
    if (c->all[cls])
        return;
    char *m = xasprintf("%s.get_all_records", xs_classes[cls]->name);
    XsValue *all = xc_call_session(cli->conn, m, xv_array(), NULL);
    free(m);
    c->all[cls] = all && all->kind == XV_STRUCT ? all : xv_struct();
    if (all && all != c->all[cls])
        xv_free(all);
    hashmap_init(&c->by_ref[cls]);
    for (uint32_t i = 0; i < c->all[cls]->n; i++)
        hashmap_put(&c->by_ref[cls], xv_struct_key(c->all[cls], i), xv_struct_val(c->all[cls], i));
}

const XsValue *cli_record(Cli *cli, int cls, const char *ref)
{
    if (!ref || strcmp(ref, "OpaqueRef:NULL") == 0)
        return NULL;
    load_class(cli, cls);
    return hashmap_get(&cache(cli)->by_ref[cls], ref);
}

void cli_cache_free(Cli *cli)
{
    if (!cli->cache)
        return;
    for (int c = 0; c < XS_CLASS__MAX; c++)
        cli_cache_invalidate(cli, c);
    xv_free(cli->cache->extra);
    free(cli->cache);
    cli->cache = NULL;
}

void cli_cache_invalidate(Cli *cli, int cls)
{
    struct CliCache *c = cache(cli);
    if (!c->all[cls])
        return;
    hashmap_release(&c->by_ref[cls]);
    xv_free(c->all[cls]);
    c->all[cls] = NULL;
}

const XsField *cli_api_field(const XsClass *cls, const XsCliField *cf)
{
    if (cf->computed || cf->target_class >= 0 || cf->field < 0)
        return NULL;
    return &cls->fields[cf->field];
}

/* The type the CLI field shows, for tags: NULL for computed fields. */
static const XsType *shown_type(const XsClass *cls, const XsCliField *cf)
{
    if (cf->computed)
        return NULL;
    if (cf->target_class >= 0)
        return xs_classes[cf->target_class]->fields[cf->target_field].type;
    return cls->fields[cf->field].type;
}

static bool is_current_operations(const XsClass *cls, const XsCliField *cf)
{
    return !cf->computed && cf->target_class < 0 &&
           strcmp(cls->fields[cf->field].name, "current_operations") == 0;
}

bool cli_field_is_map(const XsClass *cls, const XsCliField *cf)
{
    if (cf->flags & XS_CLI_PLAIN)
        return false;
    if (cf->flags & XS_CLI_MAP)
        return true;
    const XsType *t = shown_type(cls, cf);
    return t && t->kind == XS_T_MAP && !is_current_operations(cls, cf);
}

bool cli_field_is_set(const XsClass *cls, const XsCliField *cf)
{
    if (cf->flags & XS_CLI_PLAIN)
        return false;
    if (cf->flags & XS_CLI_SET)
        return true;
    const XsType *t = shown_type(cls, cf);
    return (t && t->kind == XS_T_SET) || is_current_operations(cls, cf);
}

bool cli_field_writable(const XsClass *cls, const XsCliField *cf)
{
    if (cf->flags & XS_CLI_READONLY)
        return false;
    if (cf->flags & XS_CLI_WRITABLE)
        return true;
    const XsField *f = cli_api_field(cls, cf);
    return f && !(f->flags & XS_FIELD_DERIVED) &&
           (f->qual == XS_QUAL_RW || (f->flags & XS_FIELD_SETTER));
}

char *cli_field_label(const XsClass *cls, const XsCliField *cf)
{
    const char *tag;
    bool w = cli_field_writable(cls, cf);
    if (cli_field_is_set(cls, cf))
        tag = w ? "SRW" : "SRO";
    else if (cli_field_is_map(cls, cf))
        tag = w ? "MRW" : "MRO";
    else
        tag = w ? " RW" : " RO";
    return xasprintf("%s (%s)%s", cf->name, tag,
                     (cf->flags & XS_CLI_DEPRECATED) ? " [DEPRECATED]" : "");
}

const XsCliField *cli_find_field(const XsClass *cls, const char *name)
{
    for (size_t i = 0; i < cls->ncli_fields; i++)
        if (strcmp(cls->cli_fields[i].name, name) == 0)
            return &cls->cli_fields[i];
    return NULL;
}

static const char *enum_display(const XsEnum *e, const char *v)
{
    int i = xs_enum_index(e, v);
    if (i < 0 || !e->display)
        return v;
    return e->display[i];
}

static void format_into(Cli *cli, StrBuf *sb, const XsType *t, const XsValue *v)
{
    switch (t->kind) {
    case XS_T_REF: {
        if (v->kind != XV_STRING) {
            strbuf_adds(sb, NOT_IN_DB);
            break;
        }
        const XsValue *r = t->cls >= 0 ? cli_record(cli, t->cls, v->s) : NULL;
        const char *uuid = r ? xv_struct_get_string(r, "uuid") : NULL;
        strbuf_adds(sb, uuid ? uuid : NOT_IN_DB);
        break;
    }
    case XS_T_ENUM:
        strbuf_adds(sb, v->kind == XV_STRING ? enum_display(t->enumt, v->s) : "");
        break;
    case XS_T_INT:
        if (v->kind == XV_INT)
            strbuf_addf(sb, "%" PRId64, v->i);
        else if (v->kind == XV_STRING)
            strbuf_adds(sb, v->s);
        break;
    case XS_T_FLOAT:
        if (v->kind == XV_FLOAT)
            strbuf_addf(sb, "%.3f", v->f);
        else if (v->kind == XV_INT)
            strbuf_addf(sb, "%.3f", (double)v->i);
        break;
    case XS_T_BOOL:
        strbuf_adds(sb, v->kind == XV_BOOL && v->b ? "true" : "false");
        break;
    case XS_T_DATETIME: {
        int64_t d = 0;
        if (v->kind == XV_DATETIME || v->kind == XV_INT)
            d = v->i;
        else if (v->kind == XV_STRING)
            xs_datetime_parse(v->s, &d);
        char buf[32];
        xs_datetime_format_rfc3339(d, buf, sizeof(buf));
        strbuf_adds(sb, buf);
        break;
    }
    case XS_T_SET:
        if (v->kind != XV_ARRAY)
            break;
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                strbuf_adds(sb, "; ");
            format_into(cli, sb, t->elem, &v->items[i]);
        }
        break;
    case XS_T_MAP:
        if (v->kind != XV_STRUCT)
            break;
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                strbuf_adds(sb, "; ");
            strbuf_adds(sb, xv_struct_key(v, i));
            strbuf_adds(sb, ": ");
            format_into(cli, sb, t->elem, xv_struct_val(v, i));
        }
        break;
    default:
        if (v->kind == XV_STRING)
            strbuf_adds(sb, v->s);
        break;
    }
}

char *cli_format_value(Cli *cli, const XsType *t, const XsValue *v, const char *field)
{
    StrBuf sb = STRBUF_INIT;
    if (field && strcmp(field, "current_operations") == 0 && v->kind == XV_STRUCT) {
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                strbuf_adds(&sb, "; ");
            format_into(cli, &sb, t->elem, xv_struct_val(v, i));
        }
    } else {
        format_into(cli, &sb, t, v);
    }
    return strbuf_detach(&sb, NULL);
}

char *cli_field_value(Cli *cli, const XsClass *cls, const char *ref, const XsValue *record,
                      const XsCliField *cf)
{
    if (cf->computed)
        return cli_compute(cli, cf->computed, cls, ref, record);
    const XsField *f = &cls->fields[cf->field];
    const XsValue *v = xv_struct_get(record, f->name);
    if (cf->target_class < 0) {
        if (!v)
            return xstrdup("");
        return cli_format_value(cli, f->type, v, f->name);
    }
    const XsValue *target =
        v && v->kind == XV_STRING ? cli_record(cli, cf->target_class, v->s) : NULL;
    if (!target)
        return xstrdup(NOT_IN_DB);
    const XsField *tf = &xs_classes[cf->target_class]->fields[cf->target_field];
    const XsValue *tv = xv_struct_get(target, tf->name);
    return tv ? cli_format_value(cli, tf->type, tv, tf->name) : xstrdup("");
}

/* ---- parsing values from the command line ----------------------------- */

static bool parse_plain_int(const char *text, int64_t *v)
{
    char *end;
    *v = strtoll(text, &end, 10);
    return *text && !*end;
}

static bool size_like(const char *name)
{
    return strstr(name, "memory") || strstr(name, "size");
}

XsValue *cli_parse_field_value(Cli *cli, const XsClass *cls, const XsField *f, const char *text,
                               XsError **errp)
{
    const XsType *t = f->type;
    char *msg = NULL;
    switch (t->kind) {
    case XS_T_STRING:
        return xv_string(text);
    case XS_T_INT: {
        int64_t v;
        if (size_like(f->name) ? cli_parse_size(text, &v) : parse_plain_int(text, &v))
            return xv_int(v);
        msg = size_like(f->name)
                  ? xasprintf("Failed to parse field '%s': expecting an integer (possibly with "
                              "suffix KiB, MiB, GiB, TiB), got '%s'",
                              f->name, text)
                  : xasprintf("Failed to parse parameter '%s': expecting an integer", f->name);
        break;
    }
    case XS_T_FLOAT: {
        char *end;
        double d = strtod(text, &end);
        if (*text && !*end)
            return xv_float(d);
        msg = xasprintf("Parameter %s must be a floating-point number", f->name);
        break;
    }
    case XS_T_BOOL: {
        bool b;
        if (cli_parse_bool(text, &b))
            return xv_bool(b);
        msg = xasprintf("Failed to parse parameter '%s': expecting a boolean (true or false)",
                        f->name);
        break;
    }
    case XS_T_ENUM: {
        const XsEnum *e = t->enumt;
        for (size_t i = 0; i < e->n; i++)
            if (strcasecmp(text, e->values[i]) == 0 ||
                (e->display && strcasecmp(text, e->display[i]) == 0))
                return xv_string(e->values[i]);
        StrBuf sb = STRBUF_INIT;
        for (size_t i = 0; i < e->n; i++)
            strbuf_addf(&sb, "%s%s", i ? ", " : "",
                        e->display ? e->display[i] : e->values[i]);
        msg = xasprintf("Invalid value '%s' for '%s': expected one of %s", text, f->name, sb.buf);
        strbuf_release(&sb);
        break;
    }
    case XS_T_REF: {
        if (!*text)
            return xv_string("OpaqueRef:NULL");
        if (strncmp(text, "OpaqueRef:", 10) == 0)
            return xv_string(text);
        XsValue *p = xv_array();
        xv_array_push_string(p, text);
        char *m = xasprintf("%s.get_by_uuid", xs_classes[t->cls]->name);
        XsValue *r = xc_call_session(cli->conn, m, p, errp);
        free(m);
        return r;
    }
    case XS_T_DATETIME: {
        int64_t d;
        if (xs_datetime_parse(text, &d))
            return xv_datetime(d);
        msg = xasprintf("Failed to parse parameter '%s': expecting a date", f->name);
        break;
    }
    default:
        msg = xasprintf("Field '%s' is a map or set. use the 'name:key=value' syntax.", f->name);
        break;
    }
    (void)cls;
    xs_error_set(errp, "CLI_ERROR", 1, msg);
    free(msg);
    return NULL;
}

/* ---- selection ------------------------------------------------------------ */

void cli_selection_release(CliSelection *sel)
{
    for (size_t i = 0; i < sel->n; i++)
        free(sel->refs[i]);
    free(sel->refs);
    free(sel->records);
    memset(sel, 0, sizeof(*sel));
}

typedef struct Filter {
    char *key;
    const char *value;
} Filter;

/* Does the record pass the filter "key=value"? Sets *bad for unknown keys. */
static bool passes(Cli *cli, const XsClass *cls, const char *ref, const XsValue *rec,
                   const char *key, const char *value, bool *bad)
{
    const XsCliField *cf = cli_find_field(cls, key);
    if (cf) {
        char *v = cli_field_value(cli, cls, ref, rec, cf);
        bool ok = strcmp(v, value) == 0;
        free(v);
        return ok;
    }
    /* map:key=value and set:contains=value */
    const char *colon = strchr(key, ':');
    if (colon) {
        char *name = xstrndup(key, (size_t)(colon - key));
        cf = cli_find_field(cls, name);
        free(name);
        const XsField *f = cf ? cli_api_field(cls, cf) : NULL;
        if (f && f->type->kind == XS_T_MAP) {
            const XsValue *m = xv_struct_get(rec, f->name);
            const XsValue *e = m ? xv_struct_get(m, colon + 1) : NULL;
            if (!e)
                return false;
            char *s = cli_format_value(cli, f->type->elem, e, NULL);
            bool ok = strcmp(s, value) == 0;
            free(s);
            return ok;
        }
        if (f && f->type->kind == XS_T_SET && strcmp(colon + 1, "contains") == 0) {
            const XsValue *a = xv_struct_get(rec, f->name);
            for (uint32_t i = 0; a && i < a->n; i++) {
                char *s = cli_format_value(cli, f->type->elem, &a->items[i], NULL);
                bool ok = strcmp(s, value) == 0;
                free(s);
                if (ok)
                    return true;
            }
            return false;
        }
    }
    *bad = true;
    return false;
}

bool cli_select(Cli *cli, const XsClass *cls, const char *default_filters, bool use_cmdline,
                CliSelection *sel)
{
    memset(sel, 0, sizeof(sel[0]));
    Filter *filters = NULL;
    size_t nf = 0;
    char *defs = xstrdup(default_filters ? default_filters : "");
    for (char *tok = defs, *next; tok && *tok; tok = next) {
        next = strchr(tok, ',');
        if (next)
            *next++ = '\0';
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        filters = xreallocarray(filters, nf + 1, sizeof(Filter));
        filters[nf++] = (Filter){xstrdup(tok), eq + 1};
    }
    if (use_cmdline) {
        for (size_t i = 0; i < cli->nparams; i++) {
            const char *k = cli->params[i].key;
            if (cli_is_std_param(k) || strcmp(k, "params") == 0 || strncmp(k, "database:", 9) == 0)
                continue;
            filters = xreallocarray(filters, nf + 1, sizeof(Filter));
            filters[nf++] = (Filter){xstrdup(k), cli->params[i].value};
        }
    }
    load_class(cli, cls->id);
    const XsValue *all = cache(cli)->all[cls->id];
    bool ok = true;
    for (uint32_t i = 0; i < all->n && ok; i++) {
        const char *ref = xv_struct_key(all, i);
        const XsValue *rec = xv_struct_val(all, i);
        bool keep = true;
        for (size_t k = 0; k < nf && keep; k++) {
            bool bad = false;
            keep = passes(cli, cls, ref, rec, filters[k].key, filters[k].value, &bad);
            if (bad) {
                cli_fail(cli, "Unknown field '%s' of the %s class.", filters[k].key, cls->name);
                ok = false;
            }
        }
        if (!keep)
            continue;
        sel->refs = xreallocarray(sel->refs, sel->n + 1, sizeof(char *));
        sel->records = xreallocarray(sel->records, sel->n + 1, sizeof(XsValue *));
        sel->refs[sel->n] = xstrdup(ref);
        sel->records[sel->n++] = rec;
    }
    for (size_t k = 0; k < nf; k++)
        free(filters[k].key);
    free(filters);
    free(defs);
    if (!ok)
        cli_selection_release(sel);
    return ok;
}
