/*
 * Growable byte buffers (git's strbuf). Invariant: buf is never NULL and
 * buf[len] == '\0', so a strbuf can always be used as a C string; it may also
 * hold binary data with embedded NULs.
 */
#ifndef HX_UTIL_STRBUF_H
#define HX_UTIL_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include "util/macros.h"

typedef struct StrBuf {
    size_t alloc;
    size_t len;
    char *buf;
} StrBuf;

extern char strbuf_empty[];
#define STRBUF_INIT {0, 0, strbuf_empty}

void strbuf_init(StrBuf *sb, size_t hint);
/* Frees the contents; the strbuf is left empty and reusable. */
void strbuf_release(StrBuf *sb);
/* Returns the contents as a malloc'd string the caller owns; sb is reset. */
char *strbuf_detach(StrBuf *sb, size_t *len);
void strbuf_grow(StrBuf *sb, size_t extra);
void strbuf_reset(StrBuf *sb);
void strbuf_setlen(StrBuf *sb, size_t len);

void strbuf_add(StrBuf *sb, const void *data, size_t len);
void strbuf_adds(StrBuf *sb, const char *s);
void strbuf_addch(StrBuf *sb, char c);
void strbuf_addf(StrBuf *sb, const char *fmt, ...) HX_PRINTF(2, 3);
void strbuf_vaddf(StrBuf *sb, const char *fmt, va_list ap) HX_PRINTF(2, 0);
/* Appends c n times. */
void strbuf_addchars(StrBuf *sb, char c, size_t n);
/* Appends s with XML special characters escaped. */
void strbuf_add_xml_escaped(StrBuf *sb, const char *s);
/* Appends s as a JSON string literal, quotes included. */
void strbuf_add_json_string(StrBuf *sb, const char *s);
void strbuf_trim_trailing_newline(StrBuf *sb);

void strbuf_release_p(StrBuf *sb);
#define _cleanup_strbuf_ __attribute__((cleanup(strbuf_release_p)))

#endif
