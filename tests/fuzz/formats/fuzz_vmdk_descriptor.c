/*
 * libFuzzer target: VMDK text descriptors. Inputs are opened as if they
 * were a descriptor in a scratch directory that holds a flat extent
 * (flat.vmdk), a sparse one (sparse.vmdk) and a stream one (stream.vmdk), so
 * extent lines that name them are followed; IMG_OPEN_CONFINE keeps every
 * other name inside that directory.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "util/banned.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64] = "/tmp/hxe-fuzz-vmdk-XXXXXX";
static char desc_path[128];

static int pat_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)((off + i) * 31 >> 5);
    return 0;
}

static int pat_status(void *opaque, uint64_t off, uint64_t maxlen, ImgExtent *e, ImgError *err)
{
    e->offset = off;
    e->length = maxlen;
    e->kind = IMG_EXTENT_DATA;
    return 0;
}

static void make(const char *name, ImgFormat fmt, ImgSubformat sub)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ImgSource src = {256 * 1024, NULL, pat_read, pat_status};
    ImgWriteOptions o;
    img_write_options_init(&o);
    o.subformat = sub;
    ImgError err;
    if (fd < 0 || img_write(&src, fmt, &o, fd, NULL, &err) < 0)
        abort();
    close(fd);
}

static void cleanup(void)
{
    static const char *const names[] = {"flat.vmdk", "sparse.vmdk", "stream.vmdk"};
    char path[160];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    make("flat.vmdk", IMG_FORMAT_RAW, IMG_SUBFORMAT_DEFAULT);
    make("sparse.vmdk", IMG_FORMAT_VMDK, IMG_SUBFORMAT_VMDK_MONOLITHIC_SPARSE);
    make("stream.vmdk", IMG_FORMAT_VMDK, IMG_SUBFORMAT_VMDK_STREAM_OPTIMIZED);
    snprintf(desc_path, sizeof(desc_path), "%s/desc.vmdk", dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image(data, size, IMG_FORMAT_VMDK, desc_path, IMG_OPEN_CONFINE);
    return 0;
}
