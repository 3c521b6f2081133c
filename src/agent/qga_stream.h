/*
 * Framing of the guest-agent byte stream: splits what the host sends into
 * whole top-level JSON texts, the way QEMU's agent does (requests need no
 * newline between them; a 0xFF byte flushes any partial input). It only
 * counts brackets and tracks strings; it does not parse JSON (json-c does
 * that afterwards) and it never allocates more than its bound.
 */
#ifndef HX_AGENT_QGA_STREAM_H
#define HX_AGENT_QGA_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "util/strbuf.h"

/* Longest request accepted, in bytes (guest-exec input-data fits). */
#define QGA_STREAM_MAX_DEFAULT (4u * 1024 * 1024)

typedef enum {
    QGA_STREAM_NONE,     /* need more bytes */
    QGA_STREAM_MESSAGE,  /* a complete JSON object or array text */
    QGA_STREAM_JUNK,     /* a stray top-level token: reply with a parse error */
    QGA_STREAM_TOO_LONG, /* input exceeded the bound; skipping to the next newline */
    QGA_STREAM__MAX,
} QgaStreamEvent;

typedef struct QgaStream {
    StrBuf buf;      /* the text being collected */
    size_t max;      /* bound on buf.len */
    unsigned depth;  /* bracket depth; 0 outside a structured text */
    bool in_string;  /* inside "..." */
    bool escape;     /* previous byte was a backslash inside a string */
    bool junk;       /* collecting a stray top-level token */
    bool discarding; /* overlong input: drop bytes up to the next newline */
} QgaStream;

void qga_stream_init(QgaStream *st, size_t max);
void qga_stream_release(QgaStream *st);
/* Drops any partial input (0xFF sentinel, host reconnect). */
void qga_stream_reset(QgaStream *st);

/*
 * Consumes bytes from data[0..len) until an event happens. Returns the event
 * and sets *used to the number of bytes consumed; call again with the rest.
 * For QGA_STREAM_MESSAGE and QGA_STREAM_JUNK the text is in st->buf (NUL
 * terminated) until the next call.
 */
QgaStreamEvent qga_stream_feed(QgaStream *st, const char *data, size_t len, size_t *used);

#endif
