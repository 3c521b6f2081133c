/*
 * XsValue construction, copying and comparison. See value.h.
 */
#include <stdlib.h>
#include <string.h>

#include "model/value.h"
#include "util/xalloc.h"
#include "util/banned.h"

static XsValue *xv_new(XvKind k)
{
    XsValue *v = xnew0(XsValue, 1);
    v->kind = (uint8_t)k;
    return v;
}

XsValue *xv_null(void)
{
    return xv_new(XV_NULL);
}

XsValue *xv_string(const char *s)
{
    XsValue *v = xv_new(XV_STRING);
    v->s = xstrdup(s ? s : "");
    return v;
}

XsValue *xv_string_take(char *s)
{
    XsValue *v = xv_new(XV_STRING);
    v->s = s;
    return v;
}

XsValue *xv_int(int64_t i)
{
    XsValue *v = xv_new(XV_INT);
    v->i = i;
    return v;
}

XsValue *xv_float(double f)
{
    XsValue *v = xv_new(XV_FLOAT);
    v->f = f;
    return v;
}

XsValue *xv_bool(bool b)
{
    XsValue *v = xv_new(XV_BOOL);
    v->b = b;
    return v;
}

XsValue *xv_datetime(int64_t t)
{
    XsValue *v = xv_new(XV_DATETIME);
    v->i = t;
    return v;
}

XsValue *xv_array(void)
{
    return xv_new(XV_ARRAY);
}

XsValue *xv_struct(void)
{
    return xv_new(XV_STRUCT);
}

void xv_clear(XsValue *v)
{
    switch (v->kind) {
    case XV_STRING:
        free(v->s);
        break;
    case XV_ARRAY:
        for (uint32_t i = 0; i < v->n; i++)
            xv_clear(&v->items[i]);
        free(v->items);
        break;
    case XV_STRUCT:
        for (uint32_t i = 0; i < 2 * v->n; i++)
            xv_clear(&v->items[i]);
        free(v->items);
        break;
    default:
        break;
    }
    memset(v, 0, sizeof(*v));
}

void xv_free(XsValue *v)
{
    if (!v)
        return;
    xv_clear(v);
    free(v);
}

void xv_copy_into(XsValue *dst, const XsValue *src)
{
    *dst = *src;
    switch (src->kind) {
    case XV_STRING:
        dst->s = xstrdup(src->s);
        break;
    case XV_ARRAY:
    case XV_STRUCT: {
        size_t n = src->kind == XV_ARRAY ? src->n : 2 * (size_t)src->n;
        dst->alloc = (uint32_t)n;
        dst->items = n ? xnew0(XsValue, n) : NULL;
        for (size_t i = 0; i < n; i++)
            xv_copy_into(&dst->items[i], &src->items[i]);
        break;
    }
    default:
        break;
    }
}

XsValue *xv_copy(const XsValue *v)
{
    XsValue *c = xnew0(XsValue, 1);
    xv_copy_into(c, v);
    return c;
}

void xv_move_into(XsValue *dst, XsValue *src)
{
    xv_clear(dst);
    *dst = *src;
    free(src);
}

bool xv_equal(const XsValue *a, const XsValue *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case XV_NULL:
        return true;
    case XV_STRING:
        return strcmp(a->s, b->s) == 0;
    case XV_INT:
    case XV_DATETIME:
        return a->i == b->i;
    case XV_FLOAT:
        return a->f == b->f;
    case XV_BOOL:
        return a->b == b->b;
    case XV_ARRAY:
        if (a->n != b->n)
            return false;
        for (uint32_t i = 0; i < a->n; i++)
            if (!xv_equal(&a->items[i], &b->items[i]))
                return false;
        return true;
    case XV_STRUCT:
        if (a->n != b->n)
            return false;
        for (uint32_t i = 0; i < a->n; i++) {
            const XsValue *bv = xv_struct_get(b, xv_struct_key(a, i));
            if (!bv || !xv_equal(xv_struct_val(a, i), bv))
                return false;
        }
        return true;
    }
    return false;
}

static void grow(XsValue *v, size_t need)
{
    if (need <= v->alloc)
        return;
    size_t n = v->alloc ? (size_t)v->alloc * 2 : 4;
    while (n < need)
        n *= 2;
    v->items = xreallocarray(v->items, n, sizeof(XsValue));
    memset(v->items + v->alloc, 0, (n - v->alloc) * sizeof(XsValue));
    v->alloc = (uint32_t)n;
}

void xv_array_push(XsValue *arr, XsValue *item)
{
    grow(arr, (size_t)arr->n + 1);
    arr->items[arr->n++] = *item;
    free(item);
}

void xv_array_push_string(XsValue *arr, const char *s)
{
    xv_array_push(arr, xv_string(s));
}

bool xv_array_contains_string(const XsValue *arr, const char *s)
{
    for (uint32_t i = 0; i < arr->n; i++)
        if (arr->items[i].kind == XV_STRING && strcmp(arr->items[i].s, s) == 0)
            return true;
    return false;
}

size_t xv_array_remove_string(XsValue *arr, const char *s)
{
    size_t removed = 0;
    uint32_t j = 0;
    for (uint32_t i = 0; i < arr->n; i++) {
        if (arr->items[i].kind == XV_STRING && strcmp(arr->items[i].s, s) == 0) {
            xv_clear(&arr->items[i]);
            removed++;
            continue;
        }
        arr->items[j++] = arr->items[i];
    }
    arr->n = j;
    return removed;
}

static int struct_find(const XsValue *st, const char *key)
{
    for (uint32_t i = 0; i < st->n; i++)
        if (strcmp(st->items[2 * i].s, key) == 0)
            return (int)i;
    return -1;
}

void xv_struct_set(XsValue *st, const char *key, XsValue *v)
{
    int i = struct_find(st, key);
    if (i >= 0) {
        xv_move_into(&st->items[2 * i + 1], v);
        return;
    }
    grow(st, 2 * ((size_t)st->n + 1));
    XsValue *k = &st->items[2 * st->n];
    k->kind = XV_STRING;
    k->s = xstrdup(key);
    st->items[2 * st->n + 1] = *v;
    free(v);
    st->n++;
}

void xv_struct_append(XsValue *st, char *key, XsValue *v)
{
    grow(st, 2 * ((size_t)st->n + 1));
    XsValue *k = &st->items[2 * st->n];
    k->kind = XV_STRING;
    k->s = key;
    st->items[2 * st->n + 1] = *v;
    free(v);
    st->n++;
}

void xv_struct_set_string(XsValue *st, const char *key, const char *s)
{
    xv_struct_set(st, key, xv_string(s));
}

const XsValue *xv_struct_get(const XsValue *st, const char *key)
{
    if (st->kind != XV_STRUCT)
        return NULL;
    int i = struct_find(st, key);
    return i >= 0 ? &st->items[2 * i + 1] : NULL;
}

const char *xv_struct_get_string(const XsValue *st, const char *key)
{
    const XsValue *v = xv_struct_get(st, key);
    return v && v->kind == XV_STRING ? v->s : NULL;
}

bool xv_struct_remove(XsValue *st, const char *key)
{
    int i = struct_find(st, key);
    if (i < 0)
        return false;
    xv_clear(&st->items[2 * i]);
    xv_clear(&st->items[2 * i + 1]);
    memmove(&st->items[2 * i], &st->items[2 * i + 2],
            (size_t)(st->n - (uint32_t)i - 1) * 2 * sizeof(XsValue));
    st->n--;
    memset(&st->items[2 * st->n], 0, 2 * sizeof(XsValue));
    return true;
}

const char *xv_kind_name(XvKind k)
{
    static const char *const names[] = {"null",  "string",   "int",   "float",
                                        "bool", "datetime", "array", "struct"};
    return k <= XV_STRUCT ? names[k] : "?";
}
