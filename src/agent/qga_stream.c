/*
 * Framing of the guest-agent byte stream. See qga_stream.h. Works byte by
 * byte on untrusted input: every path is bounded by st->max and nothing here
 * interprets the JSON beyond brackets, strings and escapes.
 */
#include "agent/qga_stream.h"

#include "util/banned.h"

void qga_stream_init(QgaStream *st, size_t max)
{
    strbuf_init(&st->buf, 0);
    st->max = max ? max : QGA_STREAM_MAX_DEFAULT;
    st->depth = 0;
    st->in_string = false;
    st->escape = false;
    st->junk = false;
    st->discarding = false;
}

void qga_stream_release(QgaStream *st)
{
    strbuf_release(&st->buf);
}

static void qga_stream_clear(QgaStream *st)
{
    st->depth = 0;
    st->in_string = false;
    st->escape = false;
    st->junk = false;
    st->discarding = false;
}

void qga_stream_reset(QgaStream *st)
{
    qga_stream_clear(st);
    /* Give back the memory of a big partial request. */
    if (st->buf.alloc > 64 * 1024)
        strbuf_release(&st->buf);
    else
        strbuf_reset(&st->buf);
}

static bool qga_stream_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

QgaStreamEvent qga_stream_feed(QgaStream *st, const char *data, size_t len, size_t *used)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];

        if (c == 0xFF) {
            /* The sentinel never occurs in UTF-8 text: always a flush. */
            qga_stream_reset(st);
            continue;
        }
        if (st->discarding) {
            if (c == '\n')
                st->discarding = false;
            continue;
        }
        if (st->junk) {
            bool space = qga_stream_is_space(c);
            if (space || c == '{' || c == '[') {
                st->junk = false;
                *used = space ? i + 1 : i;
                return QGA_STREAM_JUNK;
            }
        } else if (st->depth == 0) {
            if (qga_stream_is_space(c))
                continue;
            strbuf_reset(&st->buf);
            if (c == '{' || c == '[')
                st->depth = 1;
            else
                st->junk = true;
            strbuf_addch(&st->buf, (char)c);
            continue;
        }

        if (st->buf.len >= st->max) {
            qga_stream_reset(st);
            st->discarding = c != '\n';
            *used = i + 1;
            return QGA_STREAM_TOO_LONG;
        }
        strbuf_addch(&st->buf, (char)c);
        if (st->junk)
            continue;

        if (st->in_string) {
            if (st->escape)
                st->escape = false;
            else if (c == '\\')
                st->escape = true;
            else if (c == '"')
                st->in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            st->in_string = true;
            break;
        case '{':
        case '[':
            st->depth++;
            break;
        case '}':
        case ']':
            if (--st->depth == 0) {
                *used = i + 1;
                return QGA_STREAM_MESSAGE;
            }
            break;
        default:
            break;
        }
    }
    *used = len;
    return QGA_STREAM_NONE;
}
