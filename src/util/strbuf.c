/*
 * Growable buffers. See strbuf.h for the invariants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"
#include "util/xalloc.h"

char strbuf_empty[1];

void strbuf_init(StrBuf *sb, size_t hint)
{
    sb->alloc = sb->len = 0;
    sb->buf = strbuf_empty;
    if (hint)
        strbuf_grow(sb, hint);
}

void strbuf_release(StrBuf *sb)
{
    if (sb->alloc)
        free(sb->buf);
    strbuf_init(sb, 0);
}

void strbuf_release_p(StrBuf *sb)
{
    strbuf_release(sb);
}

char *strbuf_detach(StrBuf *sb, size_t *len)
{
    char *r;
    if (len)
        *len = sb->len;
    if (!sb->alloc)
        r = xstrdup("");
    else
        r = sb->buf;
    strbuf_init(sb, 0);
    return r;
}

void strbuf_grow(StrBuf *sb, size_t extra)
{
    size_t need = sb->len + extra + 1;
    if (need < sb->len) {
        fprintf(stderr, "hyperxe: strbuf overflow\n");
        abort();
    }
    if (need <= sb->alloc)
        return;
    size_t n = sb->alloc ? sb->alloc : 64;
    while (n < need)
        n = n < (1u << 20) ? n * 2 : n + n / 2;
    if (!sb->alloc) {
        sb->buf = xmalloc(n);
        sb->buf[0] = '\0';
    } else {
        sb->buf = xrealloc(sb->buf, n);
    }
    sb->alloc = n;
}

void strbuf_reset(StrBuf *sb)
{
    strbuf_setlen(sb, 0);
}

void strbuf_setlen(StrBuf *sb, size_t len)
{
    if (!sb->alloc) {
        if (len) {
            fprintf(stderr, "hyperxe: strbuf_setlen beyond allocation\n");
            abort();
        }
        return;
    }
    sb->len = len;
    sb->buf[len] = '\0';
}

void strbuf_add(StrBuf *sb, const void *data, size_t len)
{
    if (!len)
        return;
    strbuf_grow(sb, len);
    memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
}

void strbuf_adds(StrBuf *sb, const char *s)
{
    strbuf_add(sb, s, strlen(s));
}

void strbuf_addch(StrBuf *sb, char c)
{
    strbuf_grow(sb, 1);
    sb->buf[sb->len++] = c;
    sb->buf[sb->len] = '\0';
}

void strbuf_addchars(StrBuf *sb, char c, size_t n)
{
    if (!n)
        return;
    strbuf_grow(sb, n);
    memset(sb->buf + sb->len, c, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void strbuf_vaddf(StrBuf *sb, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(sb->buf + sb->len, sb->alloc ? sb->alloc - sb->len : 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    if ((size_t)n >= (sb->alloc ? sb->alloc - sb->len : 0)) {
        strbuf_grow(sb, (size_t)n);
        n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
    }
    sb->len += (size_t)n;
}

void strbuf_addf(StrBuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
}

void strbuf_add_xml_escaped(StrBuf *sb, const char *s)
{
    const char *start = s;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        case '\r': rep = "&#13;"; break;
        default: break;
        }
        if (rep) {
            strbuf_add(sb, start, (size_t)(s - start));
            strbuf_adds(sb, rep);
            start = s + 1;
        }
    }
    strbuf_add(sb, start, (size_t)(s - start));
}

void strbuf_add_json_string(StrBuf *sb, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    strbuf_addch(sb, '"');
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *start = p;
    for (; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        strbuf_add(sb, start, (size_t)(p - start));
        start = p + 1;
        switch (*p) {
        case '"': strbuf_adds(sb, "\\\""); break;
        case '\\': strbuf_adds(sb, "\\\\"); break;
        case '\n': strbuf_adds(sb, "\\n"); break;
        case '\r': strbuf_adds(sb, "\\r"); break;
        case '\t': strbuf_adds(sb, "\\t"); break;
        default:
            strbuf_adds(sb, "\\u00");
            strbuf_addch(sb, hex[*p >> 4]);
            strbuf_addch(sb, hex[*p & 15]);
        }
    }
    strbuf_add(sb, start, (size_t)(p - start));
    strbuf_addch(sb, '"');
}

void strbuf_trim_trailing_newline(StrBuf *sb)
{
    while (sb->len && (sb->buf[sb->len - 1] == '\n' || sb->buf[sb->len - 1] == '\r'))
        strbuf_setlen(sb, sb->len - 1);
}
