/*
 * Lookups over the generated model tables, datamodel default values and the
 * type check that every value from a client passes through. See schema.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model-gen.h"
#include "model/wire.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

const XsClass *xs_class_by_name(const char *name)
{
    for (int i = 0; i < XS_CLASS__MAX; i++)
        if (strcmp(xs_classes[i]->name, name) == 0)
            return xs_classes[i];
    return NULL;
}

const XsClass *xs_class_by_name_ci(const char *name)
{
    for (int i = 0; i < XS_CLASS__MAX; i++)
        if (strcasecmp(xs_classes[i]->name, name) == 0)
            return xs_classes[i];
    return NULL;
}

int xs_field_index(const XsClass *cls, const char *name)
{
    for (size_t i = 0; i < cls->nfields; i++)
        if (strcmp(cls->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int msg_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const XsMessage *)elem)->wire_name);
}

const XsMessage *xs_message_find(const char *wire_name)
{
    return bsearch(wire_name, xs_messages, xs_nmessages, sizeof(XsMessage), msg_cmp);
}

static int err_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const XsErrorDef *)elem)->code);
}

const XsErrorDef *xs_error_def(const char *code)
{
    return bsearch(code, xs_error_defs, xs_nerror_defs, sizeof(XsErrorDef), err_cmp);
}

int xs_enum_index(const XsEnum *e, const char *value)
{
    if (!value)
        return -1;
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->values[i], value) == 0)
            return (int)i;
    return -1;
}

static const char *const role_names[XS_ROLE__MAX] = {
    "read-only", "vm-operator", "vm-admin", "vm-power-admin", "pool-operator", "pool-admin",
};

const char *xs_role_name(XsRole r)
{
    return r < XS_ROLE__MAX ? role_names[r] : "?";
}

int xs_role_from_name(const char *name)
{
    for (int i = 0; i < XS_ROLE__MAX; i++)
        if (strcasecmp(role_names[i], name) == 0)
            return i;
    return -1;
}

/* ---- defaults --------------------------------------------------------- */

static XsValue *zero_value(const XsType *t)
{
    switch (t->kind) {
    case XS_T_STRING:
        return xv_string("");
    case XS_T_REF:
        return xv_string("OpaqueRef:NULL");
    case XS_T_ENUM:
        return xv_string(t->enumt->values[0]);
    case XS_T_INT:
        return xv_int(0);
    case XS_T_FLOAT:
        return xv_float(0);
    case XS_T_BOOL:
        return xv_bool(false);
    case XS_T_DATETIME:
        return xv_datetime(0);
    case XS_T_SET:
        return xv_array();
    case XS_T_MAP:
    case XS_T_RECORD:
        return xv_struct();
    default:
        return xv_null();
    }
}

/* Reads one "quoted" or bare token of a map/set literal at *p. */
static char *literal_token(const char **p)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    StrBuf sb = STRBUF_INIT;
    if (*s == '"') {
        s++;
        while (*s && *s != '"')
            strbuf_addch(&sb, *s++);
        if (*s == '"')
            s++;
    } else {
        while (*s && *s != ',' && *s != '}' && *s != ';' && *s != ' ')
            strbuf_addch(&sb, *s++);
    }
    *p = s;
    return strbuf_detach(&sb, NULL);
}

static XsValue *scalar_from_literal(const XsType *t, const char *lit)
{
    size_t n = strlen(lit);
    switch (t->kind) {
    case XS_T_STRING:
        if (n >= 2 && lit[0] == '"' && lit[n - 1] == '"')
            return xv_string_take(xstrndup(lit + 1, n - 2));
        return xv_string(lit);
    case XS_T_REF:
        if (strcmp(lit, "Null") == 0 || strcmp(lit, "OpaqueRef:NULL") == 0)
            return xv_string("OpaqueRef:NULL");
        return xv_string(lit);
    case XS_T_ENUM:
        return xv_string(lit);
    case XS_T_INT:
        return xv_int(strtoll(lit, NULL, 10));
    case XS_T_FLOAT:
        return xv_float(strtod(lit, NULL));
    case XS_T_BOOL:
        return xv_bool(strcmp(lit, "true") == 0);
    case XS_T_DATETIME: {
        int64_t d = 0;
        xs_datetime_parse(lit, &d);
        return xv_datetime(d);
    }
    default:
        return zero_value(t);
    }
}

XsValue *xs_default_value(const XsType *t, const char *literal)
{
    if (!literal)
        return zero_value(t);
    if (t->kind == XS_T_SET) {
        XsValue *a = xv_array();
        const char *p = literal;
        if (*p == '{' || *p == '(') {
            p++;
            while (*p && *p != '}' && *p != ')') {
                char *tok = literal_token(&p);
                if (*tok)
                    xv_array_push(a, scalar_from_literal(t->elem, tok));
                free(tok);
                while (*p == ',' || *p == ';' || *p == ' ')
                    p++;
            }
        }
        return a;
    }
    if (t->kind == XS_T_MAP) {
        XsValue *m = xv_struct();
        const char *p = literal;
        if (*p == '{') {
            p++;
            while (*p && *p != '}') {
                char *k = literal_token(&p);
                while (*p == ' ')
                    p++;
                if (strncmp(p, "->", 2) == 0)
                    p += 2;
                char *v = literal_token(&p);
                if (*k)
                    xv_struct_set(m, k, scalar_from_literal(t->elem, v));
                free(k);
                free(v);
                while (*p == ',' || *p == ';' || *p == ' ')
                    p++;
            }
        }
        return m;
    }
    return scalar_from_literal(t, literal);
}

/* ---- coercion --------------------------------------------------------- */

static bool parse_int64(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static XsValue *coerce(const XsType *t, const XsValue *v)
{
    switch (t->kind) {
    case XS_T_STRING:
        if (v->kind == XV_STRING)
            return xv_copy(v);
        return NULL;
    case XS_T_REF:
        if (v->kind == XV_STRING && v->s[0] != '\0')
            return xv_copy(v);
        return NULL;
    case XS_T_ENUM:
        if (v->kind == XV_STRING && xs_enum_index(t->enumt, v->s) >= 0)
            return xv_copy(v);
        return NULL;
    case XS_T_INT: {
        int64_t i;
        if (v->kind == XV_INT)
            return xv_copy(v);
        if (v->kind == XV_STRING && parse_int64(v->s, &i))
            return xv_int(i);
        return NULL;
    }
    case XS_T_FLOAT: {
        if (v->kind == XV_FLOAT)
            return xv_copy(v);
        if (v->kind == XV_INT)
            return xv_float((double)v->i);
        if (v->kind == XV_STRING && v->s[0]) {
            char *end;
            errno = 0;
            double d = strtod(v->s, &end);
            if (!*end && !errno)
                return xv_float(d);
        }
        return NULL;
    }
    case XS_T_BOOL:
        if (v->kind == XV_BOOL)
            return xv_copy(v);
        return NULL;
    case XS_T_DATETIME: {
        int64_t d;
        if (v->kind == XV_DATETIME)
            return xv_copy(v);
        if (v->kind == XV_STRING && xs_datetime_parse(v->s, &d))
            return xv_datetime(d);
        return NULL;
    }
    case XS_T_SET: {
        if (v->kind != XV_ARRAY)
            return NULL;
        XsValue *a = xv_array();
        for (uint32_t i = 0; i < v->n; i++) {
            XsValue *e = coerce(t->elem, &v->items[i]);
            if (!e) {
                xv_free(a);
                return NULL;
            }
            xv_array_push(a, e);
        }
        return a;
    }
    case XS_T_MAP: {
        if (v->kind != XV_STRUCT)
            return NULL;
        XsValue *m = xv_struct();
        for (uint32_t i = 0; i < v->n; i++) {
            const char *k = xv_struct_key(v, i);
            if (t->key->kind == XS_T_ENUM && xs_enum_index(t->key->enumt, k) < 0) {
                xv_free(m);
                return NULL;
            }
            if (t->key->kind == XS_T_INT) {
                int64_t dummy;
                if (!parse_int64(k, &dummy)) {
                    xv_free(m);
                    return NULL;
                }
            }
            XsValue *e = coerce(t->elem, xv_struct_val(v, i));
            if (!e) {
                xv_free(m);
                return NULL;
            }
            xv_struct_set(m, k, e);
        }
        return m;
    }
    case XS_T_RECORD:
        if (v->kind == XV_STRUCT)
            return xv_copy(v);
        return NULL;
    default:
        return NULL;
    }
}

XsValue *xs_value_coerce(const XsType *t, const XsValue *v, const char *what, XsError **errp)
{
    XsValue *r = coerce(t, v);
    if (!r)
        xs_err_field_type_error(errp, what);
    return r;
}

char *xs_value_to_plain_string(const XsValue *v)
{
    switch (v->kind) {
    case XV_NULL:
        return xstrdup("");
    case XV_STRING:
        return xstrdup(v->s);
    case XV_INT:
        return xasprintf("%" PRId64, v->i);
    case XV_FLOAT:
        return xasprintf("%.16g", v->f);
    case XV_BOOL:
        return xstrdup(v->b ? "true" : "false");
    case XV_DATETIME: {
        char buf[32];
        xs_datetime_format(v->i, buf, sizeof(buf));
        return xstrdup(buf);
    }
    case XV_ARRAY: {
        StrBuf sb = STRBUF_INIT;
        strbuf_addch(&sb, '(');
        for (uint32_t i = 0; i < v->n; i++) {
            char *s = xs_value_to_plain_string(&v->items[i]);
            strbuf_addf(&sb, "%s'%s'", i ? " " : "", s);
            free(s);
        }
        strbuf_addch(&sb, ')');
        return strbuf_detach(&sb, NULL);
    }
    case XV_STRUCT: {
        StrBuf sb = STRBUF_INIT;
        strbuf_addch(&sb, '(');
        for (uint32_t i = 0; i < v->n; i++) {
            char *s = xs_value_to_plain_string(xv_struct_val(v, i));
            strbuf_addf(&sb, "%s('%s' '%s')", i ? " " : "", xv_struct_key(v, i), s);
            free(s);
        }
        strbuf_addch(&sb, ')');
        return strbuf_detach(&sb, NULL);
    }
    }
    return xstrdup("");
}
