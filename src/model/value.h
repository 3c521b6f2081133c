/*
 * XsValue: the dynamic value of the object model, shaped like the wire
 * (XML-RPC and JSON-RPC): strings (also refs and enum values), 64-bit ints,
 * floats, bools, datetimes, arrays (XenAPI sets) and structs (maps and
 * records). Structs keep insertion order; keys are strings. Values own their
 * contents; functions say when they consume an argument.
 */
#ifndef HX_MODEL_VALUE_H
#define HX_MODEL_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    XV_NULL,
    XV_STRING,
    XV_INT,
    XV_FLOAT,
    XV_BOOL,
    XV_DATETIME, /* seconds since the epoch, UTC */
    XV_ARRAY,
    XV_STRUCT, /* items[2k] is the key (XV_STRING), items[2k+1] its value */
} XvKind;

typedef struct XsValue XsValue;
struct XsValue {
    uint8_t kind;
    uint32_t n;     /* ARRAY: items; STRUCT: members */
    uint32_t alloc; /* capacity of items, in values */
    union {
        char *s;
        int64_t i;
        double f;
        bool b;
        XsValue *items;
    };
};

/* Heap constructors; the result is owned by the caller. */
XsValue *xv_null(void);
XsValue *xv_string(const char *s);
XsValue *xv_string_take(char *s); /* consumes s */
XsValue *xv_int(int64_t i);
XsValue *xv_float(double f);
XsValue *xv_bool(bool b);
XsValue *xv_datetime(int64_t t);
XsValue *xv_array(void);
XsValue *xv_struct(void);

void xv_free(XsValue *v);
/* Frees the contents of an embedded value and makes it XV_NULL. */
void xv_clear(XsValue *v);
XsValue *xv_copy(const XsValue *v);
/* Deep-copies src into the embedded value dst (which must be clear). */
void xv_copy_into(XsValue *dst, const XsValue *src);
/* Moves the contents of heap value src into embedded dst (cleared first);
 * frees the shell of src. */
void xv_move_into(XsValue *dst, XsValue *src);
bool xv_equal(const XsValue *a, const XsValue *b);

/* Arrays. push consumes item. */
void xv_array_push(XsValue *arr, XsValue *item);
void xv_array_push_string(XsValue *arr, const char *s);
bool xv_array_contains_string(const XsValue *arr, const char *s);
/* Removes every element equal to the string s; returns how many. */
size_t xv_array_remove_string(XsValue *arr, const char *s);
static inline XsValue *xv_array_get(const XsValue *arr, size_t i)
{
    return &arr->items[i];
}

/* Structs. set consumes v and replaces an existing key. */
void xv_struct_set(XsValue *st, const char *key, XsValue *v);
void xv_struct_set_string(XsValue *st, const char *key, const char *s);
/* Appends without looking for an existing key; consumes key and v. */
void xv_struct_append(XsValue *st, char *key, XsValue *v);
const XsValue *xv_struct_get(const XsValue *st, const char *key);
/* String value of key, or NULL if absent or not a string. */
const char *xv_struct_get_string(const XsValue *st, const char *key);
bool xv_struct_remove(XsValue *st, const char *key);
static inline const char *xv_struct_key(const XsValue *st, size_t i)
{
    return st->items[2 * i].s;
}
static inline XsValue *xv_struct_val(const XsValue *st, size_t i)
{
    return &st->items[2 * i + 1];
}

const char *xv_kind_name(XvKind k);

#endif
