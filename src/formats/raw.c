/*
 * Raw disk images: the file is the disk. The reader reports holes through
 * SEEK_DATA/SEEK_HOLE; the writer leaves holes on regular files (zero runs
 * are skipped and the file is extended at the end) and writes zeros to pipes.
 * Must not guess a format: probing falls back to raw only when no other
 * driver recognises the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/image_int.h"
#include "util/xalloc.h"
#include "util/banned.h"

static int raw_open(ImgReader *r, const ImgOpenOptions *o, ImgChain *chain, ImgError *err)
{
    r->virtual_size = r->file_size;
    snprintf(r->subformat, sizeof(r->subformat), "raw");
    return 0;
}

static int raw_read(ImgReader *r, uint64_t off, size_t len, uint8_t *buf, ImgError *err)
{
    return img_pread_zfill(r, r->fd, buf, len, off, err);
}

static ssize_t raw_map(ImgReader *r, uint64_t off, size_t len, const void **ptr, ImgError *err)
{
    (void)err;
    if (off >= r->file_size)
        return 0; /* zeros past the end of the file */
    const uint8_t *m = img_file_map(r);
    if (!m)
        return 0;
    *ptr = m + off;
    return (ssize_t)MIN((uint64_t)len, r->file_size - off);
}

static int raw_status(ImgReader *r, uint64_t off, uint64_t maxlen, ImgExtent *ext,
                      ImgError *err)
{
    ext->kind = IMG_EXTENT_DATA;
    ext->length = maxlen;
    off_t d = lseek(r->fd, (off_t)off, SEEK_DATA);
    if (d < 0) {
        if (errno == ENXIO) {
            /* A hole up to the end of the file. */
            ext->kind = IMG_EXTENT_ZERO;
        }
        return 0;
    }
    if ((uint64_t)d > off) {
        ext->kind = IMG_EXTENT_ZERO;
        ext->length = MIN(maxlen, (uint64_t)d - off);
        return 0;
    }
    off_t h = lseek(r->fd, (off_t)off, SEEK_HOLE);
    if (h > (off_t)off)
        ext->length = MIN(maxlen, (uint64_t)h - off);
    return 0;
}

const ImgDriver img_driver_raw = {
    .name = "raw",
    .format = IMG_FORMAT_RAW,
    .probe = NULL,
    .open = raw_open,
    .read = raw_read,
    .status = raw_status,
    .map = raw_map,
    .close = NULL,
};

int raw_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err)
{
    ImgPump *pump = img_pump_start(src, 64 * 1024, false, IMG_IO_CHUNK, err);
    if (!pump)
        return -EAGAIN;
    ImgPumpItem it;
    int ret;
    while ((ret = img_pump_next(pump, &it, err)) > 0) {
        if (it.kind != IMG_UNIT_DATA)
            ret = img_out_zeros(out, it.len);
        else
            ret = img_out_write_sparse(out, it.buf, (size_t)it.len);
        if (ret < 0)
            break;
        ret = img_out_tick(out, it.start + it.len);
        if (ret < 0)
            break;
    }
    img_pump_free(pump);
    return ret < 0 ? ret : 0;
}
