/*
 * Base64 encoding and decoding. See b64.h.
 */
#include "agent/b64.h"

#include "util/banned.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void b64_encode(StrBuf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    strbuf_grow(out, (len + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        strbuf_addch(out, b64_alphabet[v >> 18]);
        strbuf_addch(out, b64_alphabet[(v >> 12) & 63]);
        strbuf_addch(out, b64_alphabet[(v >> 6) & 63]);
        strbuf_addch(out, b64_alphabet[v & 63]);
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        strbuf_addch(out, b64_alphabet[v >> 18]);
        strbuf_addch(out, b64_alphabet[(v >> 12) & 63]);
        strbuf_adds(out, "==");
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        strbuf_addch(out, b64_alphabet[v >> 18]);
        strbuf_addch(out, b64_alphabet[(v >> 12) & 63]);
        strbuf_addch(out, b64_alphabet[(v >> 6) & 63]);
        strbuf_addch(out, '=');
    }
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool b64_decode(StrBuf *out, const char *text)
{
    size_t start = out->len;
    unsigned acc = 0;
    int bits = 0;
    size_t pad = 0;
    size_t nchars = 0;

    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            continue;
        if (*p == '=') {
            pad++;
            nchars++;
            continue;
        }
        int v = b64_value(*p);
        if (v < 0 || pad > 0)
            goto fail;
        nchars++;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            strbuf_addch(out, (char)((acc >> bits) & 0xFF));
        }
    }
    if (pad > 2 || (pad > 0 && nchars % 4 != 0) || nchars % 4 == 1)
        goto fail;
    return true;
fail:
    strbuf_setlen(out, start);
    return false;
}
