/*
 * Helpers shared by xva.c and xva_v1.c only; not part of the public
 * interface (include xva.h / xva_v1.h instead).
 */
#ifndef HX_FORMATS_XVA_INTERNAL_H
#define HX_FORMATS_XVA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/xva.h"
#include "util/macros.h"

/* Fills *err (once: a first error is never overwritten) and returns code. */
int xva_error_set(XvaError *err, XvaErrorKind kind, int code, const char *fmt, ...)
    HX_PRINTF(4, 5);
/* Copies name into dst with non-printable bytes and '\' escaped as \xNN. */
void xva_escape_name(char *dst, size_t dstsize, const char *name);
/* True if all n bytes are zero. */
bool xva_is_zero(const void *buf, size_t n);

/*
 * Delivers disk data to an XvaImportSink: non-zero runs to write(), zero
 * runs (4 KiB grain) and explicit holes coalesced into zero() calls. Counts
 * into *st (bytes_data, bytes_zero).
 */
typedef struct XvaSinkWriter {
    const XvaImportSink *sink;
    XvaError *err;
    XvaImportStats *st;
    bool stable; /* the data is mapped: scan it guarded, hand it to write_ref */
    bool zpend;
    size_t zdisk;
    uint64_t zoff, zlen;
} XvaSinkWriter;

int xva_sink_data(XvaSinkWriter *w, size_t disk, const char *id, uint64_t off, const uint8_t *p,
                  size_t n);
int xva_sink_zero(XvaSinkWriter *w, size_t disk, const char *id, uint64_t off, uint64_t len);
/* Issues the pending zero range, if any. */
int xva_sink_flush(XvaSinkWriter *w, const char *id);

#endif
