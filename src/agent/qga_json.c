/*
 * QEMU-style JSON writer. See qga_json.h. Walks json-c objects; never fails
 * and never emits invalid JSON, whatever bytes the strings hold.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agent/qga_json.h"

#include "util/banned.h"

static const char qga_json_hex[] = "0123456789abcdef";

static void qga_json_add_u16(StrBuf *sb, unsigned v)
{
    strbuf_adds(sb, "\\u");
    strbuf_addch(sb, qga_json_hex[(v >> 12) & 15]);
    strbuf_addch(sb, qga_json_hex[(v >> 8) & 15]);
    strbuf_addch(sb, qga_json_hex[(v >> 4) & 15]);
    strbuf_addch(sb, qga_json_hex[v & 15]);
}

/*
 * Decodes one UTF-8 sequence at p (n bytes left). Returns its length and the
 * code point in *cp, or 0 if the sequence is invalid (overlong, surrogate,
 * out of range or truncated).
 */
static size_t qga_json_utf8(const unsigned char *p, size_t n, unsigned *cp)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

void qga_json_append_string(StrBuf *sb, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;
    strbuf_addch(sb, '"');
    while (p < end) {
        unsigned cp;
        size_t n = qga_json_utf8(p, (size_t)(end - p), &cp);
        if (n == 0) {
            qga_json_add_u16(sb, 0xFFFD);
            p++;
            continue;
        }
        p += n;
        switch (cp) {
        case '"':
            strbuf_adds(sb, "\\\"");
            continue;
        case '\\':
            strbuf_adds(sb, "\\\\");
            continue;
        case '\b':
            strbuf_adds(sb, "\\b");
            continue;
        case '\f':
            strbuf_adds(sb, "\\f");
            continue;
        case '\n':
            strbuf_adds(sb, "\\n");
            continue;
        case '\r':
            strbuf_adds(sb, "\\r");
            continue;
        case '\t':
            strbuf_adds(sb, "\\t");
            continue;
        default:
            break;
        }
        if (cp >= 0x20 && cp < 0x7F) {
            strbuf_addch(sb, (char)cp);
        } else if (cp < 0x10000) {
            qga_json_add_u16(sb, cp);
        } else {
            cp -= 0x10000;
            qga_json_add_u16(sb, 0xD800 | (cp >> 10));
            qga_json_add_u16(sb, 0xDC00 | (cp & 0x3FF));
        }
    }
    strbuf_addch(sb, '"');
}

void qga_json_append(StrBuf *sb, struct json_object *obj)
{
    switch (json_object_get_type(obj)) {
    case json_type_null:
        strbuf_adds(sb, "null");
        break;
    case json_type_boolean:
        strbuf_adds(sb, json_object_get_boolean(obj) ? "true" : "false");
        break;
    case json_type_int: {
        int64_t v = json_object_get_int64(obj);
        if (v == INT64_MAX)
            strbuf_addf(sb, "%" PRIu64, json_object_get_uint64(obj));
        else
            strbuf_addf(sb, "%" PRId64, v);
        break;
    }
    case json_type_double: {
        double d = json_object_get_double(obj);
        if (!isfinite(d))
            strbuf_adds(sb, "null");
        else
            strbuf_addf(sb, "%.17g", d);
        break;
    }
    case json_type_string:
        qga_json_append_string(sb, json_object_get_string(obj),
                               (size_t)json_object_get_string_len(obj));
        break;
    case json_type_array: {
        size_t n = json_object_array_length(obj);
        strbuf_addch(sb, '[');
        for (size_t i = 0; i < n; i++) {
            if (i)
                strbuf_adds(sb, ", ");
            qga_json_append(sb, json_object_array_get_idx(obj, i));
        }
        strbuf_addch(sb, ']');
        break;
    }
    case json_type_object: {
        bool first = true;
        strbuf_addch(sb, '{');
        json_object_object_foreach(obj, key, val)
        {
            if (!first)
                strbuf_adds(sb, ", ");
            first = false;
            qga_json_append_string(sb, key, strlen(key));
            strbuf_adds(sb, ": ");
            qga_json_append(sb, val);
        }
        strbuf_addch(sb, '}');
        break;
    }
    }
}

struct json_object *qga_json_add_str(struct json_object *obj, const char *key, const char *val)
{
    json_object_object_add(obj, key, json_object_new_string(val ? val : ""));
    return obj;
}

struct json_object *qga_json_add_int(struct json_object *obj, const char *key, int64_t val)
{
    json_object_object_add(obj, key, json_object_new_int64(val));
    return obj;
}

struct json_object *qga_json_add_uint(struct json_object *obj, const char *key, uint64_t val)
{
    json_object_object_add(obj, key, json_object_new_uint64(val));
    return obj;
}

struct json_object *qga_json_add_bool(struct json_object *obj, const char *key, bool val)
{
    json_object_object_add(obj, key, json_object_new_boolean(val));
    return obj;
}
