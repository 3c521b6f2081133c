/*
 * See fuzz_common.h. Reads are bounded (64 MiB, 4096 runs per input) so a
 * tiny file claiming a huge disk costs little.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "util/xalloc.h"
#include "util/banned.h"

void fuzz_image(const uint8_t *data, size_t size, ImgFormat fmt, const char *name,
                unsigned flags)
{
    int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    ImgOpenOptions oo = {.format = fmt, .flags = flags};
    ImgError err;
    ImgReader *r = img_open_fd(fd, name, &oo, &err);
    close(fd);
    if (!r)
        return;
    uint64_t vsize = img_reader_virtual_size(r);
    uint64_t budget = 64ULL << 20, off = 0;
    uint8_t *buf = xmalloc(1 << 20);
    for (int runs = 0; runs < 4096 && off < vsize && budget > 0; runs++) {
        ImgExtent e;
        unsigned f = (runs & 1) ? IMG_STATUS_TOP_ONLY : 0;
        if (img_block_status(r, off, vsize - off, f, &e, &err) < 0)
            break;
        if (e.length == 0 || e.length > vsize - off)
            abort(); /* broken contract */
        if (e.kind == IMG_EXTENT_DATA) {
            uint64_t n = e.length < budget ? e.length : budget;
            for (uint64_t p = 0; p < n;) {
                size_t chunk = (size_t)(n - p < (1 << 20) ? n - p : (1 << 20));
                if (img_read(r, off + p, chunk, buf, &err) < 0) {
                    budget = 0;
                    break;
                }
                p += chunk;
            }
            budget = budget > n ? budget - n : 0;
        }
        off += e.length;
    }
    /* An unaligned read across the start, whatever the map said. */
    if (vsize > 0)
        (void)img_read(r, vsize > 3 ? 3 : 0, 70000, buf, &err);
    free(buf);
    img_reader_free(r);
}
