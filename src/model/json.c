/*
 * A JSON parser (RFC 8259) that builds XsValue directly, without an
 * intermediate tree: replies of thousands of records parse several times
 * faster than through a general-purpose library. Strict: no trailing
 * commas, no comments, no NaN, control characters must be escaped, nesting
 * is bounded by XV_MAX_DEPTH; invalid UTF-16 escapes are refused.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/wire.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

typedef struct JsonParser {
    const char *p;
    const char *end;
    const char *start;
    char *err;
    StrBuf scratch;
} JsonParser;

static bool fail(JsonParser *jp, const char *what)
{
    if (!jp->err)
        jp->err = xasprintf("JSON parse error: %s at offset %zu", what,
                            (size_t)(jp->p - jp->start));
    return false;
}

static void skip_ws(JsonParser *jp)
{
    while (jp->p < jp->end &&
           (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\r' || *jp->p == '\t'))
        jp->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_hex4(JsonParser *jp, unsigned *out)
{
    if (jp->end - jp->p < 4)
        return fail(jp, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(jp->p[i]);
        if (h < 0)
            return fail(jp, "bad \\u escape");
        v = v * 16 + (unsigned)h;
    }
    jp->p += 4;
    *out = v;
    return true;
}

static void put_utf8(StrBuf *sb, unsigned cp)
{
    if (cp < 0x80) {
        strbuf_addch(sb, (char)cp);
    } else if (cp < 0x800) {
        strbuf_addch(sb, (char)(0xc0 | (cp >> 6)));
        strbuf_addch(sb, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        strbuf_addch(sb, (char)(0xe0 | (cp >> 12)));
        strbuf_addch(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
        strbuf_addch(sb, (char)(0x80 | (cp & 0x3f)));
    } else {
        strbuf_addch(sb, (char)(0xf0 | (cp >> 18)));
        strbuf_addch(sb, (char)(0x80 | ((cp >> 12) & 0x3f)));
        strbuf_addch(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
        strbuf_addch(sb, (char)(0x80 | (cp & 0x3f)));
    }
}

/* Parses a string at jp->p (on the quote); returns a malloc'd copy. */
static char *parse_string(JsonParser *jp)
{
    jp->p++;
    const char *run = jp->p;
    /* Fast path: no escapes. */
    while (jp->p < jp->end && *jp->p != '"' && *jp->p != '\\' &&
           (unsigned char)*jp->p >= 0x20)
        jp->p++;
    if (jp->p < jp->end && *jp->p == '"') {
        char *s = xmemdup(run, (size_t)(jp->p - run) + 1);
        s[jp->p - run] = '\0';
        jp->p++;
        return s;
    }
    StrBuf *sb = &jp->scratch;
    strbuf_reset(sb);
    strbuf_add(sb, run, (size_t)(jp->p - run));
    while (jp->p < jp->end) {
        char c = *jp->p++;
        if (c == '"')
            return xmemdup(sb->buf, sb->len + 1);
        if ((unsigned char)c < 0x20) {
            fail(jp, "control character in string");
            return NULL;
        }
        if (c != '\\') {
            strbuf_addch(sb, c);
            continue;
        }
        if (jp->p >= jp->end)
            break;
        c = *jp->p++;
        switch (c) {
        case '"': strbuf_addch(sb, '"'); break;
        case '\\': strbuf_addch(sb, '\\'); break;
        case '/': strbuf_addch(sb, '/'); break;
        case 'b': strbuf_addch(sb, '\b'); break;
        case 'f': strbuf_addch(sb, '\f'); break;
        case 'n': strbuf_addch(sb, '\n'); break;
        case 'r': strbuf_addch(sb, '\r'); break;
        case 't': strbuf_addch(sb, '\t'); break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(jp, &cp))
                return NULL;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (jp->end - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u') {
                    fail(jp, "unpaired surrogate");
                    return NULL;
                }
                jp->p += 2;
                if (!read_hex4(jp, &lo))
                    return NULL;
                if (lo < 0xdc00 || lo >= 0xe000) {
                    fail(jp, "unpaired surrogate");
                    return NULL;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                fail(jp, "unpaired surrogate");
                return NULL;
            }
            if (cp == 0) {
                fail(jp, "NUL in string");
                return NULL;
            }
            put_utf8(sb, cp);
            break;
        }
        default:
            fail(jp, "bad escape");
            return NULL;
        }
    }
    fail(jp, "unterminated string");
    return NULL;
}

static XsValue *parse_number(JsonParser *jp)
{
    const char *s = jp->p;
    bool is_float = false;
    if (jp->p < jp->end && *jp->p == '-')
        jp->p++;
    if (jp->p >= jp->end || !(*jp->p >= '0' && *jp->p <= '9')) {
        fail(jp, "bad number");
        return NULL;
    }
    if (*jp->p == '0' && jp->p + 1 < jp->end && jp->p[1] >= '0' && jp->p[1] <= '9') {
        fail(jp, "leading zero");
        return NULL;
    }
    while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
        jp->p++;
    if (jp->p < jp->end && *jp->p == '.') {
        is_float = true;
        jp->p++;
        if (jp->p >= jp->end || !(*jp->p >= '0' && *jp->p <= '9')) {
            fail(jp, "bad fraction");
            return NULL;
        }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        is_float = true;
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-'))
            jp->p++;
        if (jp->p >= jp->end || !(*jp->p >= '0' && *jp->p <= '9')) {
            fail(jp, "bad exponent");
            return NULL;
        }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    }
    char buf[64];
    size_t n = (size_t)(jp->p - s);
    if (n >= sizeof(buf)) {
        fail(jp, "number too long");
        return NULL;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    if (!is_float) {
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0)
            return xv_int(v);
    }
    double d = strtod(buf, NULL);
    if (!isfinite(d)) {
        fail(jp, "number out of range");
        return NULL;
    }
    return xv_float(d);
}

static bool literal(JsonParser *jp, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
        return fail(jp, "unexpected token");
    jp->p += n;
    return true;
}

static XsValue *parse_value(JsonParser *jp, int depth)
{
    if (depth > XV_MAX_DEPTH) {
        fail(jp, "nested too deeply");
        return NULL;
    }
    skip_ws(jp);
    if (jp->p >= jp->end) {
        fail(jp, "unexpected end of input");
        return NULL;
    }
    switch (*jp->p) {
    case '{': {
        jp->p++;
        XsValue *obj = xv_struct();
        skip_ws(jp);
        if (jp->p < jp->end && *jp->p == '}') {
            jp->p++;
            return obj;
        }
        for (;;) {
            skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != '"') {
                fail(jp, "expected a member name");
                break;
            }
            char *key = parse_string(jp);
            if (!key)
                break;
            skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                fail(jp, "expected ':'");
                break;
            }
            jp->p++;
            XsValue *v = parse_value(jp, depth + 1);
            if (!v) {
                free(key);
                break;
            }
            /* Duplicate names are not looked for: the first one wins. */
            xv_struct_append(obj, key, v);
            skip_ws(jp);
            if (jp->p < jp->end && *jp->p == ',') {
                jp->p++;
                continue;
            }
            if (jp->p < jp->end && *jp->p == '}') {
                jp->p++;
                return obj;
            }
            fail(jp, "expected ',' or '}'");
            break;
        }
        xv_free(obj);
        return NULL;
    }
    case '[': {
        jp->p++;
        XsValue *arr = xv_array();
        skip_ws(jp);
        if (jp->p < jp->end && *jp->p == ']') {
            jp->p++;
            return arr;
        }
        for (;;) {
            XsValue *v = parse_value(jp, depth + 1);
            if (!v)
                break;
            xv_array_push(arr, v);
            skip_ws(jp);
            if (jp->p < jp->end && *jp->p == ',') {
                jp->p++;
                continue;
            }
            if (jp->p < jp->end && *jp->p == ']') {
                jp->p++;
                return arr;
            }
            fail(jp, "expected ',' or ']'");
            break;
        }
        xv_free(arr);
        return NULL;
    }
    case '"': {
        char *s = parse_string(jp);
        return s ? xv_string_take(s) : NULL;
    }
    case 't':
        return literal(jp, "true") ? xv_bool(true) : NULL;
    case 'f':
        return literal(jp, "false") ? xv_bool(false) : NULL;
    case 'n':
        return literal(jp, "null") ? xv_null() : NULL;
    default:
        return parse_number(jp);
    }
}

XsValue *xv_from_json(const char *text, size_t len, char **err)
{
    JsonParser jp = {text, text + len, text, NULL, STRBUF_INIT};
    XsValue *v = parse_value(&jp, 0);
    if (v) {
        skip_ws(&jp);
        if (jp.p != jp.end) {
            fail(&jp, "trailing characters after the value");
            xv_free(v);
            v = NULL;
        }
    }
    strbuf_release(&jp.scratch);
    if (!v) {
        if (err)
            *err = jp.err;
        else
            free(jp.err);
    }
    return v;
}
