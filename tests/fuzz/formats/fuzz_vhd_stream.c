/* libFuzzer target: the one-pass VHD reader for uploads (vhd_stream.h), with
 * the file length known and unknown, reading the whole virtual disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/vhd_stream.h"
#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Input {
    const uint8_t *data;
    size_t size;
} Input;

static int input_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    Input *in = opaque;
    if (off > in->size || len > in->size - off)
        return img_error_set(err, ENODATA, "past the end of the input");
    memcpy(buf, in->data + off, len);
    return 0;
}

static void run(const uint8_t *data, size_t size, uint64_t file_size)
{
    Input in = {data, size};
    ImgVhdStream *s = NULL;
    ImgError err;
    int r = img_vhd_stream_open(input_read, &in, file_size, 0, &s, &err);
    if (r == 0) {
        ImgSource src;
        img_vhd_stream_source(s, &src);
        static uint8_t buf[1 << 20];
        /* At most 64 MiB of virtual disk, in status order as a writer reads it. */
        uint64_t end = src.virtual_size < (64u << 20) ? src.virtual_size : (64u << 20);
        for (uint64_t off = 0; off < end;) {
            ImgExtent e;
            if (src.block_status(src.opaque, off, end - off, &e, &err) < 0 || e.length == 0)
                break;
            if (e.kind == IMG_EXTENT_DATA) {
                size_t n = e.length < sizeof(buf) ? (size_t)e.length : sizeof(buf);
                if (src.read(src.opaque, off, n, buf, &err) < 0)
                    break;
                off += n;
            } else {
                off += e.length;
            }
        }
        img_vhd_stream_finish(s, &err);
    } else if (s) {
        size_t plen;
        (void)img_vhd_stream_prefix(s, &plen);
    }
    img_vhd_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, size);
    run(data, size, 0);
    return 0;
}
