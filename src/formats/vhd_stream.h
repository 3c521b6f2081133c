/*
 * A VHD read in one forward pass, as it arrives (an upload): the footer copy,
 * the dynamic header and the block allocation table first, then the blocks in
 * the order of the file, without spooling the file anywhere. This works for
 * dynamic disks whose blocks are stored in the order of the disk (what
 * qemu-img, XenServer and hyperxe write) and for fixed disks of known file
 * size; everything else (differencing disks, blocks out of order, huge block
 * sizes) is declined with -ENOTSUP after reading only a bounded prefix, which
 * is handed back so that the caller can fall back to the random-access
 * reader of image.h.
 *
 * Pure like the rest of formats/: bytes come from a callback; hostile input
 * gives an error, never a crash or an unbounded allocation.
 */
#ifndef HX_FORMATS_VHD_STREAM_H
#define HX_FORMATS_VHD_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "formats/image.h"

/* Reads exactly len bytes of the file at off; offsets only ever grow (the
 * stream skips what lies between). Returns 0 or -errno. */
typedef int (*ImgSeqReadFn)(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err);

typedef struct ImgVhdStream ImgVhdStream;

/*
 * Reads the VHD's metadata from rd. file_size is the length of the file if
 * known, else 0 (a fixed disk then cannot be streamed). flags: IMG_OPEN_*
 * (IMG_OPEN_IGNORE_CHECKSUMS is honoured). Returns 0 with *out, -ENOTSUP
 * when the file must be read another way (then *out still holds the prefix
 * read so far: img_vhd_stream_prefix), or another -errno with err filled.
 */
int img_vhd_stream_open(ImgSeqReadFn rd, void *opaque, uint64_t file_size, unsigned flags,
                        ImgVhdStream **out, ImgError *err);
/* The source of the virtual disk: reads must come in increasing order (as
 * img_write makes them). s must outlive src. */
void img_vhd_stream_source(ImgVhdStream *s, ImgSource *src);
/* The bytes read from the start of the file so far (the fallback's prefix). */
const uint8_t *img_vhd_stream_prefix(const ImgVhdStream *s, size_t *len);
/* Reads the rest of the file and checks its trailing footer (fixed disks:
 * the only one). Call after the source has been consumed. */
int img_vhd_stream_finish(ImgVhdStream *s, ImgError *err);
void img_vhd_stream_free(ImgVhdStream *s);

#endif
