/*
 * Base64 (RFC 4648, standard alphabet, with padding) as the guest-agent
 * protocol uses it for exec input/output and passwords. Pure functions on
 * memory; decoding refuses malformed input instead of guessing.
 */
#ifndef HX_AGENT_B64_H
#define HX_AGENT_B64_H

#include <stdbool.h>
#include <stddef.h>

#include "util/strbuf.h"

/* Appends the encoding of data[0..len) to out. */
void b64_encode(StrBuf *out, const void *data, size_t len);

/*
 * Appends the decoding of the NUL-terminated text to out. Whitespace is
 * ignored (QEMU's agent accepts it too); padding is optional. Returns false,
 * with out unchanged in length, on any other character or a bad length.
 */
bool b64_decode(StrBuf *out, const char *text);

#endif
