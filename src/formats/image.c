/*
 * Generic image code: format names, probing, opening with chains of parents
 * (loop and depth checks, confinement of referenced files), reads and block
 * status through a chain, sources, and the dispatch of writers. The format
 * specifics live in raw.c, qcow2*.c, vhd*.c and vmdk*.c; nothing here knows a
 * byte layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "formats/image_int.h"
#include "util/xalloc.h"
#include "util/banned.h"

static const char *const format_names[IMG_FORMAT__MAX] = {
    [IMG_FORMAT_PROBE] = "probe", [IMG_FORMAT_RAW] = "raw", [IMG_FORMAT_QCOW2] = "qcow2",
    [IMG_FORMAT_VHD] = "vhd",     [IMG_FORMAT_VMDK] = "vmdk",
};

static const char *const subformat_names[IMG_SUBFORMAT__MAX] = {
    [IMG_SUBFORMAT_DEFAULT] = "default",
    [IMG_SUBFORMAT_VHD_DYNAMIC] = "dynamic",
    [IMG_SUBFORMAT_VHD_FIXED] = "fixed",
    [IMG_SUBFORMAT_VMDK_STREAM_OPTIMIZED] = "streamOptimized",
    [IMG_SUBFORMAT_VMDK_MONOLITHIC_SPARSE] = "monolithicSparse",
};

const char *img_format_name(ImgFormat fmt)
{
    if ((unsigned)fmt >= IMG_FORMAT__MAX)
        return NULL;
    return format_names[fmt];
}

ImgFormat img_format_from_name(const char *name)
{
    if (!name)
        return IMG_FORMAT__MAX;
    if (STREQ(name, "vpc"))
        return IMG_FORMAT_VHD;
    for (int i = 0; i < IMG_FORMAT__MAX; i++)
        if (STREQ(name, format_names[i]))
            return (ImgFormat)i;
    return IMG_FORMAT__MAX;
}

ImgSubformat img_subformat_from_name(const char *name)
{
    for (int i = 0; i < IMG_SUBFORMAT__MAX; i++)
        if (name && STREQ(name, subformat_names[i]))
            return (ImgSubformat)i;
    return IMG_SUBFORMAT__MAX;
}

const char *img_subformat_name(ImgSubformat sub)
{
    if ((unsigned)sub >= IMG_SUBFORMAT__MAX)
        return NULL;
    return subformat_names[sub];
}

const char *img_extent_kind_name(ImgExtentKind kind)
{
    switch (kind) {
    case IMG_EXTENT_DATA:
        return "data";
    case IMG_EXTENT_ZERO:
        return "zero";
    case IMG_EXTENT_UNALLOCATED:
        return "unallocated";
    default:
        return "?";
    }
}

int img_error_set(ImgError *err, int code, const char *fmt, ...)
{
    if (code <= 0)
        code = EIO;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -code;
}

/* ------------------------------------------------------------------------ */
/* Reading files                                                              */

int img_pread(ImgReader *r, int fd, void *buf, size_t len, uint64_t off, const char *what,
              ImgError *err)
{
    uint8_t *p = buf;
    size_t done = 0;
    if (off > (uint64_t)INT64_MAX - len)
        return img_error_set(err, EINVAL, "%s: %s at offset %llu is out of range", r->path,
                             what, (unsigned long long)off);
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return img_error_set(err, errno, "%s: reading %s at offset %llu: %s", r->path, what,
                                 (unsigned long long)(off + done), strerror(errno));
        }
        atomic_fetch_add_explicit(&r->read_calls, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->bytes_read, (uint64_t)n, memory_order_relaxed);
        if (n == 0)
            return img_error_set(err, EINVAL,
                                 "%s is truncated: %s at offset %llu (%zu bytes) lies past the "
                                 "end of the file",
                                 r->path, what, (unsigned long long)off, len);
        done += (size_t)n;
    }
    return 0;
}

int img_pread_zfill(ImgReader *r, int fd, void *buf, size_t len, uint64_t off, ImgError *err)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return img_error_set(err, errno, "%s: reading at offset %llu: %s", r->path,
                                 (unsigned long long)(off + done), strerror(errno));
        }
        atomic_fetch_add_explicit(&r->read_calls, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->bytes_read, (uint64_t)n, memory_order_relaxed);
        if (n == 0) {
            memset(p + done, 0, len - done);
            break;
        }
        done += (size_t)n;
    }
    return 0;
}

bool img_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    /* Check the first 16 bytes, then compare the buffer with itself shifted. */
    size_t head = len < 16 ? len : 16;
    for (size_t i = 0; i < head; i++)
        if (p[i])
            return false;
    if (len <= 16)
        return true;
    return memcmp(p, p + 16, len - 16) == 0;
}

uint64_t img_host_run(int fd, uint64_t off, uint64_t len, bool *hole)
{
    *hole = false;
    off_t d = lseek(fd, (off_t)off, SEEK_DATA);
    if (d < 0) {
        if (errno == ENXIO)
            *hole = true;
        return len;
    }
    if ((uint64_t)d > off) {
        *hole = true;
        return MIN(len, (uint64_t)d - off);
    }
    off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
    if (h > (off_t)off)
        return MIN(len, (uint64_t)h - off);
    return len;
}

int img_read_parent(ImgReader *r, uint64_t off, size_t len, uint8_t *buf, ImgError *err)
{
    ImgReader *p = r->parent;
    if (!p || off >= p->virtual_size) {
        memset(buf, 0, len);
        return 0;
    }
    size_t n = len;
    if (off + n > p->virtual_size)
        n = (size_t)(p->virtual_size - off);
    int ret = p->drv->read(p, off, n, buf, err);
    if (ret < 0)
        return ret;
    if (n < len)
        memset(buf + n, 0, len - n);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                    */

static const ImgDriver *const drivers[] = {
    &img_driver_qcow2,
    &img_driver_vhd,
    &img_driver_vmdk,
    &img_driver_raw,
};

static const ImgDriver *driver_for(ImgFormat fmt)
{
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
        if (drivers[i]->format == fmt)
            return drivers[i];
    return NULL;
}

static const ImgDriver *probe(int fd, uint64_t size)
{
    uint8_t head[1024];
    memset(head, 0, sizeof(head));
    ssize_t n = pread(fd, head, sizeof(head), 0);
    if (n < 0)
        n = 0;
    const ImgDriver *best = &img_driver_raw;
    int best_score = 0;
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++) {
        if (!drivers[i]->probe)
            continue;
        int s = drivers[i]->probe(head, (size_t)n, size, fd);
        if (s > best_score) {
            best_score = s;
            best = drivers[i];
        }
    }
    return best;
}

static ImgReader *open_common(int fd, const char *path, const ImgOpenOptions *opts,
                              ImgChain *chain, ImgError *err)
{
    ImgOpenOptions defaults = {0};
    if (!opts)
        opts = &defaults;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        img_error_set(err, errno, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        img_error_set(err, EISDIR, "%s is a directory, not a disk image", path);
        close(fd);
        return NULL;
    }
    for (unsigned i = 0; i < chain->depth; i++) {
        if (chain->dev[i] == st.st_dev && chain->ino[i] == st.st_ino) {
            img_error_set(err, ELOOP, "%s: the chain of parent images loops back to this file",
                          path);
            close(fd);
            return NULL;
        }
    }
    if (chain->depth >= IMG_MAX_CHAIN) {
        img_error_set(err, ELOOP, "%s: chain of parent images longer than %d", path,
                      IMG_MAX_CHAIN);
        close(fd);
        return NULL;
    }
    chain->dev[chain->depth] = st.st_dev;
    chain->ino[chain->depth] = st.st_ino;
    chain->depth++;

    uint64_t size = (uint64_t)st.st_size;
    if (S_ISBLK(st.st_mode)) {
        off_t e = lseek(fd, 0, SEEK_END);
        size = e > 0 ? (uint64_t)e : 0;
    }

    ImgReader *r = xnew0(ImgReader, 1);
    r->fd = fd;
    r->path = xstrdup(path);
    r->file_size = size;
    r->flags = opts->flags;
    atomic_init(&r->bytes_read, 0);
    atomic_init(&r->read_calls, 0);
    atomic_init(&r->map, NULL);
    if (path && path[0] && !STRPREFIX(path, "<")) {
        char *tmp = xstrdup(path);
        r->dir = xstrdup(dirname(tmp));
        free(tmp);
    }
    if (opts->format == IMG_FORMAT_PROBE) {
        r->drv = probe(fd, size);
    } else {
        r->drv = driver_for(opts->format);
        if (!r->drv) {
            img_error_set(err, EINVAL, "%s: unknown image format", path);
            img_reader_free(r);
            return NULL;
        }
    }
    int ret = r->drv->open(r, opts, chain, err);
    if (ret < 0) {
        img_reader_free(r);
        return NULL;
    }
    if (r->virtual_size > IMG_MAX_VIRTUAL_SIZE) {
        img_error_set(err, EFBIG, "%s: virtual size %llu is larger than the supported maximum",
                      path, (unsigned long long)r->virtual_size);
        img_reader_free(r);
        return NULL;
    }
    return r;
}

ImgReader *img_open(const char *path, const ImgOpenOptions *opts, ImgError *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        img_error_set(err, errno, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    ImgChain chain = {0};
    return open_common(fd, path, opts, &chain, err);
}

ImgReader *img_open_fd(int fd, const char *name, const ImgOpenOptions *opts, ImgError *err)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0) {
        img_error_set(err, errno, "%s: %s", name ? name : "image", strerror(errno));
        return NULL;
    }
    ImgChain chain = {0};
    ImgOpenOptions o = {0};
    if (opts)
        o = *opts;
    if (!name) {
        o.flags |= IMG_OPEN_NO_EXTERNAL;
        name = "<fd>";
    }
    return open_common(dup_fd, name, &o, &chain, err);
}

char *img_resolve_ref(ImgReader *r, const char *ref, ImgError *err)
{
    if (!ref || !ref[0]) {
        img_error_set(err, EINVAL, "%s names an empty file name", r->path);
        return NULL;
    }
    if ((r->flags & IMG_OPEN_NO_EXTERNAL) || !r->dir) {
        img_error_set(err, EPERM,
                      "%s refers to another file (%s), which is not allowed for this image",
                      r->path, ref);
        return NULL;
    }
    if (r->flags & IMG_OPEN_CONFINE) {
        const char *base = strrchr(ref, '/');
        base = base ? base + 1 : ref;
        if (!base[0] || STREQ(base, ".") || STREQ(base, "..")) {
            img_error_set(err, EPERM, "%s refers to %s, which is not a file in its directory",
                          r->path, ref);
            return NULL;
        }
        return xasprintf("%s/%s", r->dir, base);
    }
    if (ref[0] == '/')
        return xstrdup(ref);
    return xasprintf("%s/%s", r->dir, ref);
}

int img_open_extent(ImgReader *r, const char *ref, ImgChain *chain, int *fd_out,
                    char **path_out, ImgError *err)
{
    char *path = img_resolve_ref(r, ref, err);
    if (!path)
        return -(err ? err->code : EPERM);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        img_error_set(err, e, "%s: cannot open its file %s: %s", r->path, path, strerror(e));
        free(path);
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        img_error_set(err, EINVAL, "%s: %s is not a regular file", r->path, path);
        close(fd);
        free(path);
        return -EINVAL;
    }
    for (unsigned i = 0; i < chain->depth; i++) {
        if (chain->dev[i] == st.st_dev && chain->ino[i] == st.st_ino) {
            img_error_set(err, ELOOP, "%s: %s refers back to an image of the same chain",
                          r->path, path);
            close(fd);
            free(path);
            return -ELOOP;
        }
    }
    *fd_out = fd;
    *path_out = path;
    return 0;
}

ImgReader *img_open_parent(ImgReader *r, const char *ref, ImgFormat fmt, ImgChain *chain,
                           ImgError *err)
{
    char *path = img_resolve_ref(r, ref, err);
    if (!path)
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        img_error_set(err, errno, "%s: cannot open its parent %s: %s", r->path, path,
                      strerror(errno));
        free(path);
        return NULL;
    }
    ImgOpenOptions o = {.format = fmt, .flags = r->flags & ~IMG_OPEN_NO_BACKING};
    ImgReader *p = open_common(fd, path, &o, chain, err);
    free(path);
    return p;
}

ImgReader *img_open_explicit(ImgReader *r, const char *path, ImgFormat fmt, ImgChain *chain,
                             ImgError *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        img_error_set(err, errno, "%s: cannot open the parent %s: %s", r->path, path,
                      strerror(errno));
        return NULL;
    }
    ImgOpenOptions o = {.format = fmt, .flags = r->flags & ~IMG_OPEN_NO_BACKING};
    return open_common(fd, path, &o, chain, err);
}

void img_reader_free(ImgReader *r)
{
    if (!r)
        return;
    if (r->drv && r->drv->close && r->priv)
        r->drv->close(r);
    uint8_t *map = atomic_load(&r->map);
    if (map)
        munmap(map, r->file_size);
    img_reader_free(r->parent);
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r->dir);
    free(r->parent_name);
    free(r);
}

uint64_t img_reader_virtual_size(const ImgReader *r)
{
    return r->virtual_size;
}

ImgFormat img_reader_format(const ImgReader *r)
{
    return r->drv->format;
}

const char *img_reader_subformat(const ImgReader *r)
{
    return r->subformat;
}

const char *img_reader_path(const ImgReader *r)
{
    return r->path;
}

ImgReader *img_reader_parent(const ImgReader *r)
{
    return r->parent;
}

const char *img_reader_parent_name(const ImgReader *r)
{
    return r->parent_name;
}

uint64_t img_reader_allocated_bytes(const ImgReader *r)
{
    struct stat st;
    uint64_t n = r->extra_allocated;
    if (fstat(r->fd, &st) == 0)
        n += (uint64_t)st.st_blocks * 512;
    return n;
}

void img_reader_stats(const ImgReader *r, ImgReadStats *st)
{
    st->bytes = 0;
    st->calls = 0;
    for (const ImgReader *p = r; p; p = p->parent) {
        st->bytes += atomic_load(&p->bytes_read);
        st->calls += atomic_load(&p->read_calls);
    }
}

/* ------------------------------------------------------------------------ */
/* Reads and block status                                                     */

ssize_t img_read(ImgReader *r, uint64_t offset, size_t len, void *buf, ImgError *err)
{
    if (offset >= r->virtual_size || len == 0)
        return 0;
    if (len > r->virtual_size - offset)
        len = (size_t)(r->virtual_size - offset);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    int ret = r->drv->read(r, offset, len, buf, err);
    return ret < 0 ? ret : (ssize_t)len;
}

ssize_t img_map(ImgReader *r, uint64_t offset, size_t len, const void **ptr, ImgError *err)
{
    if (offset >= r->virtual_size || len == 0 || !r->drv->map)
        return 0;
    if (len > r->virtual_size - offset)
        len = (size_t)(r->virtual_size - offset);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    return r->drv->map(r, offset, len, ptr, err);
}

const uint8_t *img_file_map(ImgReader *r)
{
    uint8_t *m = atomic_load(&r->map);
    if (m || r->file_size == 0 || r->file_size > SIZE_MAX)
        return m;
    void *p = mmap(NULL, (size_t)r->file_size, PROT_READ, MAP_SHARED, r->fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&r->map, &expected, (uint8_t *)p)) {
        /* Another thread mapped it first. */
        munmap(p, (size_t)r->file_size);
        return expected;
    }
    return p;
}

int img_block_status(ImgReader *r, uint64_t offset, uint64_t maxlen, unsigned flags,
                     ImgExtent *ext, ImgError *err)
{
    if (offset >= r->virtual_size || maxlen == 0)
        return img_error_set(err, EINVAL, "%s: block status asked at %llu, past the end",
                             r->path, (unsigned long long)offset);
    if (maxlen > r->virtual_size - offset)
        maxlen = r->virtual_size - offset;
    int ret = r->drv->status(r, offset, maxlen, ext, err);
    if (ret < 0)
        return ret;
    if (ext->length == 0 || ext->length > maxlen)
        return img_error_set(err, EIO, "%s: internal error in block status", r->path);
    ext->offset = offset;
    if (ext->kind != IMG_EXTENT_UNALLOCATED || (flags & IMG_STATUS_TOP_ONLY) || !r->parent)
        return 0;
    if (offset >= r->parent->virtual_size)
        return 0;
    uint64_t n = MIN(ext->length, r->parent->virtual_size - offset);
    return img_block_status(r->parent, offset, n, 0, ext, err);
}

/* ------------------------------------------------------------------------ */
/* Sources                                                                    */

typedef struct {
    ImgReader *r;
    bool top_only;
} ReaderSource;

static int reader_source_read(void *opaque, uint64_t offset, size_t len, void *buf,
                              ImgError *err)
{
    ImgReader *r = opaque;
    ssize_t n = img_read(r, offset, len, buf, err);
    if (n < 0)
        return (int)n;
    if ((size_t)n < len)
        memset((uint8_t *)buf + n, 0, len - (size_t)n);
    return 0;
}

static int reader_source_status(void *opaque, uint64_t offset, uint64_t maxlen, ImgExtent *ext,
                                ImgError *err)
{
    return img_block_status(opaque, offset, maxlen, 0, ext, err);
}

static int reader_source_status_top(void *opaque, uint64_t offset, uint64_t maxlen,
                                    ImgExtent *ext, ImgError *err)
{
    return img_block_status(opaque, offset, maxlen, IMG_STATUS_TOP_ONLY, ext, err);
}

void img_source_from_reader(ImgSource *src, ImgReader *r, bool top_only)
{
    src->virtual_size = r->virtual_size;
    src->opaque = r;
    src->read = reader_source_read;
    src->block_status = top_only ? reader_source_status_top : reader_source_status;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                     */

int img_out_init(ImgOut *o, int fd, const ImgProgress *p, uint64_t total, ImgError *err)
{
    memset(o, 0, sizeof(*o));
    o->fd = fd;
    o->progress = p;
    o->total = total;
    o->err = err;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return img_error_set(err, errno, "output: %s", strerror(errno));
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (S_ISREG(st.st_mode) && cur >= 0) {
        o->seekable = true;
        o->base = (uint64_t)cur;
    }
    return 0;
}

void img_out_init_sink(ImgOut *o, const ImgSink *sink, const ImgProgress *p, uint64_t total,
                       ImgError *err)
{
    memset(o, 0, sizeof(*o));
    o->fd = -1;
    o->sink = sink;
    o->progress = p;
    o->total = total;
    o->err = err;
}

/* Reserves the blocks of a dense seekable output ahead of a write at off. */
static void out_prealloc(ImgOut *o, uint64_t off, size_t len)
{
    if (!o->prealloc || !o->seekable || o->base + off + len <= o->prealloc_end)
        return;
    /* Writing into reserved blocks skips the file system's delayed
     * allocation on every write (a third of a buffered write on ext4). */
    uint64_t from = MAX(o->prealloc_end, o->base + off);
    uint64_t to = o->base + off + len + IMG_PREALLOC_AHEAD;
    if (fallocate(o->fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) == 0)
        o->prealloc_end = to;
    else
        o->prealloc = false; /* not supported, or no room: the writes tell */
}

/* Writes the n pieces of iov (len bytes in all) at off; iov is consumed. */
static int writev_all(ImgOut *o, struct iovec *iov, int n, size_t len, uint64_t off)
{
    if (o->sink) {
        if (off < o->end)
            return img_error_set(o->err, ESPIPE, "a sink cannot be written backwards");
        for (int i = 0; i < n; i++) {
            if (!iov[i].iov_len)
                continue;
            int ret = o->sink->write(o->sink->opaque, off, iov[i].iov_base, iov[i].iov_len,
                                     o->err);
            if (ret < 0) {
                if (o->err && !o->err->code)
                    img_error_set(o->err, -ret, "writing the image: %s", strerror(-ret));
                return ret;
            }
            off += iov[i].iov_len;
            o->end = off;
        }
        return 0;
    }
    out_prealloc(o, off, len);
    int i = 0;
    while (len > 0) {
        while (iov[i].iov_len == 0)
            i++;
        int cnt = MIN(n - i, IOV_MAX);
        ssize_t k = o->seekable ? pwritev(o->fd, iov + i, cnt, (off_t)(o->base + off))
                                : writev(o->fd, iov + i, cnt);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return img_error_set(o->err, errno, "writing the image: %s", strerror(errno));
        }
        if (k == 0)
            return img_error_set(o->err, EIO, "writing the image: nothing was written");
        off += (uint64_t)k;
        len -= (size_t)k;
        size_t left = (size_t)k;
        while (left > 0) {
            size_t step = MIN(left, iov[i].iov_len);
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + step;
            iov[i].iov_len -= step;
            left -= step;
            if (iov[i].iov_len == 0 && i + 1 < n)
                i++;
        }
    }
    if (off > o->end)
        o->end = off;
    return 0;
}

static int write_all(ImgOut *o, const void *buf, size_t len, uint64_t off)
{
    struct iovec v = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
    return len ? writev_all(o, &v, 1, len, off) : (o->sink ? writev_all(o, &v, 1, 0, off) : 0);
}

int img_out_writev(ImgOut *o, struct iovec *iov, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    if (len == 0)
        return 0;
    int ret = writev_all(o, iov, n, len, o->pos);
    if (ret < 0)
        return ret;
    o->pos += len;
    return 0;
}

int img_out_write(ImgOut *o, const void *buf, size_t len)
{
    int ret = write_all(o, buf, len, o->pos);
    if (ret < 0)
        return ret;
    o->pos += len;
    return 0;
}

/* Writes buf (the image bytes at out->pos) skipping 64 KiB runs of zeros on
 * seekable outputs. */
int img_out_write_sparse(ImgOut *out, const void *data, size_t len)
{
    const uint8_t *buf = data;
    if (!out->seekable && !out->sink)
        return img_out_write(out, buf, len);
    const size_t step = 64 * 1024;
    size_t i = 0;
    while (i < len) {
        size_t n = MIN(step, len - i);
        if (img_is_zero(buf + i, n)) {
            int ret = img_out_zeros(out, n);
            if (ret < 0)
                return ret;
            i += n;
            continue;
        }
        /* Coalesce consecutive non-zero steps into one write. */
        size_t j = i + n;
        while (j < len) {
            size_t m = MIN(step, len - j);
            if (img_is_zero(buf + j, m))
                break;
            j += m;
        }
        int ret = img_out_write(out, buf + i, j - i);
        if (ret < 0)
            return ret;
        i = j;
    }
    return 0;
}

static const uint8_t zero_block[64 * 1024];

int img_out_zeros(ImgOut *o, uint64_t len)
{
    if (o->seekable || o->sink) {
        o->pos += len;
        return 0;
    }
    while (len > 0) {
        size_t n = (size_t)MIN(len, sizeof(zero_block));
        int ret = img_out_write(o, zero_block, n);
        if (ret < 0)
            return ret;
        len -= n;
    }
    return 0;
}

int img_out_pwrite(ImgOut *o, const void *buf, size_t len, uint64_t off)
{
    if (!o->seekable)
        return img_error_set(o->err, ESPIPE, "this image format needs a seekable output file");
    return write_all(o, buf, len, off);
}

int img_out_finish(ImgOut *o)
{
    if (!o->seekable)
        return 0;
    struct stat st;
    if (fstat(o->fd, &st) < 0)
        return img_error_set(o->err, errno, "output: %s", strerror(errno));
    if ((uint64_t)st.st_size < o->base + o->pos &&
        ftruncate(o->fd, (off_t)(o->base + o->pos)) < 0)
        return img_error_set(o->err, errno, "extending the output file: %s", strerror(errno));
    if (lseek(o->fd, (off_t)(o->base + o->pos), SEEK_SET) < 0)
        return img_error_set(o->err, errno, "output: %s", strerror(errno));
    img_out_release(o);
    return 0;
}

void img_out_release(ImgOut *o)
{
    struct stat st;
    if (!o->prealloc_end || o->sink || fstat(o->fd, &st) != 0)
        return;
    o->prealloc_end = 0;
    /* Truncating to the size it has frees the blocks past it. */
    (void)!ftruncate(o->fd, st.st_size);
}

int img_out_tick(ImgOut *o, uint64_t done)
{
    const ImgProgress *p = o->progress;
    if (!p)
        return 0;
    if (p->cancel && atomic_load(p->cancel))
        return img_error_set(o->err, ECANCELED, "writing the image was cancelled");
    if (p->fn)
        p->fn(p->opaque, MIN(done, o->total), o->total);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Scanning a source in units                                                 */

void img_scan_init(ImgScan *s, const ImgSource *src, uint64_t unit, bool keep_unalloc)
{
    s->src = src;
    s->unit = unit;
    s->pos = 0;
    s->keep_unalloc = keep_unalloc;
}

static ImgUnitKind unit_kind(const ImgScan *s, ImgExtentKind k)
{
    if (k == IMG_EXTENT_DATA)
        return IMG_UNIT_DATA;
    if (k == IMG_EXTENT_UNALLOCATED && s->keep_unalloc)
        return IMG_UNIT_UNALLOC;
    return IMG_UNIT_ZERO;
}

int img_scan_next(ImgScan *s, uint64_t *start, uint64_t *count, ImgUnitKind *kind,
                  ImgError *err)
{
    uint64_t size = s->src->virtual_size;
    if (s->pos >= size)
        return 0;
    ImgExtent e;
    int ret = s->src->block_status(s->src->opaque, s->pos, size - s->pos, &e, err);
    if (ret < 0)
        return ret;
    if (e.length == 0 || e.length > size - s->pos)
        return img_error_set(err, EIO, "source reported an invalid block status");
    uint64_t end = s->pos + e.length;
    uint64_t unit_end = MIN(s->pos + s->unit, size);
    ImgUnitKind k = unit_kind(s, e.kind);
    *start = s->pos;
    if (k == IMG_UNIT_DATA) {
        /* Every unit the run touches must be read. */
        uint64_t n = (end - s->pos + s->unit - 1) / s->unit;
        *count = n;
        *kind = IMG_UNIT_DATA;
        s->pos += n * s->unit;
        return 1;
    }
    if (end >= unit_end) {
        /* Whole units of one non-data kind. */
        uint64_t n = end >= size ? (size - s->pos + s->unit - 1) / s->unit
                                 : (end - s->pos) / s->unit;
        *count = n;
        *kind = k;
        s->pos += n * s->unit;
        return 1;
    }
    /* The unit is split: look at the rest of it. */
    uint64_t p = end;
    while (p < unit_end) {
        ret = s->src->block_status(s->src->opaque, p, unit_end - p, &e, err);
        if (ret < 0)
            return ret;
        if (e.length == 0 || e.length > unit_end - p)
            return img_error_set(err, EIO, "source reported an invalid block status");
        ImgUnitKind k2 = unit_kind(s, e.kind);
        if (k2 != k)
            k = IMG_UNIT_DATA; /* mixed units are read (the source resolves them) */
        p += e.length;
    }
    *count = 1;
    *kind = k;
    s->pos += s->unit;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Writers                                                                    */

void img_write_options_init(ImgWriteOptions *o)
{
    memset(o, 0, sizeof(*o));
    o->compression_level = -1;
}

bool img_format_can_stream(ImgFormat fmt, ImgSubformat sub)
{
    switch (fmt) {
    case IMG_FORMAT_RAW:
    case IMG_FORMAT_VHD:
        return true;
    case IMG_FORMAT_VMDK:
        return sub == IMG_SUBFORMAT_DEFAULT || sub == IMG_SUBFORMAT_VMDK_STREAM_OPTIMIZED;
    default:
        return false;
    }
}

/* The writer of fmt into out (initialised for src). */
static int write_out(const ImgSource *src, ImgFormat fmt, const ImgWriteOptions *opts,
                     ImgOut *out, ImgError *err)
{
    ImgWriteOptions defaults;
    img_write_options_init(&defaults);
    if (!opts)
        opts = &defaults;
    if (src->virtual_size > IMG_MAX_VIRTUAL_SIZE)
        return img_error_set(err, EFBIG, "a %llu-byte disk is larger than supported",
                             (unsigned long long)src->virtual_size);
    int ret;
    if (!out->seekable && !img_format_can_stream(fmt, opts->subformat))
        return img_error_set(err, ESPIPE,
                             "%s%s%s images can only be written to a regular file, not to a "
                             "pipe or socket",
                             img_format_name(fmt), opts->subformat ? " " : "",
                             opts->subformat ? img_subformat_name(opts->subformat) : "");
    switch (fmt) {
    case IMG_FORMAT_RAW:
        ret = raw_write(src, opts, out, err);
        break;
    case IMG_FORMAT_QCOW2:
        ret = qcow2_write(src, opts, out, err);
        break;
    case IMG_FORMAT_VHD:
        ret = vhd_write(src, opts, out, err);
        break;
    case IMG_FORMAT_VMDK:
        ret = vmdk_write(src, opts, out, err);
        break;
    default:
        return img_error_set(err, EINVAL, "cannot write images of format %d", (int)fmt);
    }
    if (ret < 0) {
        img_out_release(out);
        return ret;
    }
    ret = img_out_finish(out);
    if (ret < 0)
        return ret;
    return img_out_tick(out, src->virtual_size);
}

int img_write(const ImgSource *src, ImgFormat fmt, const ImgWriteOptions *opts, int out_fd,
              const ImgProgress *progress, ImgError *err)
{
    ImgOut out;
    int ret = img_out_init(&out, out_fd, progress, src->virtual_size, err);
    if (ret < 0)
        return ret;
    return write_out(src, fmt, opts, &out, err);
}

int img_write_sink(const ImgSource *src, ImgFormat fmt, const ImgWriteOptions *opts,
                   const ImgSink *sink, const ImgProgress *progress, uint64_t *length,
                   ImgError *err)
{
    ImgOut out;
    img_out_init_sink(&out, sink, progress, src->virtual_size, err);
    int ret = write_out(src, fmt, opts, &out, err);
    if (ret == 0 && length)
        *length = out.pos;
    return ret;
}

int img_convert(ImgReader *src, ImgFormat dst_format, const ImgWriteOptions *opts, int out_fd,
                const ImgProgress *progress, ImgError *err)
{
    ImgSource s;
    img_source_from_reader(&s, src, false);
    return img_write(&s, dst_format, opts, out_fd, progress, err);
}

static int zero_read(void *opaque, uint64_t offset, size_t len, void *buf, ImgError *err)
{
    memset(buf, 0, len);
    return 0;
}

static int zero_status(void *opaque, uint64_t offset, uint64_t maxlen, ImgExtent *ext,
                       ImgError *err)
{
    ext->offset = offset;
    ext->length = maxlen;
    ext->kind = IMG_EXTENT_UNALLOCATED;
    return 0;
}

int img_create(const char *path, ImgFormat fmt, uint64_t size, const ImgWriteOptions *opts,
               ImgError *err)
{
    if (size == 0 && fmt == IMG_FORMAT_QCOW2 && opts && opts->backing_file) {
        /* Take the size of the backing file, found as the new image will. */
        char *dir = xstrdup(path);
        char *bpath = opts->backing_file[0] == '/'
                          ? xstrdup(opts->backing_file)
                          : xasprintf("%s/%s", dirname(dir), opts->backing_file);
        free(dir);
        ImgOpenOptions bo = {.format = opts->backing_format
                                           ? img_format_from_name(opts->backing_format)
                                           : IMG_FORMAT_PROBE};
        if (bo.format == IMG_FORMAT__MAX)
            bo.format = IMG_FORMAT_PROBE;
        ImgReader *b = img_open(bpath, &bo, err);
        free(bpath);
        if (!b)
            return -(err ? err->code : EINVAL);
        size = b->virtual_size;
        img_reader_free(b);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return img_error_set(err, errno, "cannot create %s: %s", path, strerror(errno));
    ImgSource src = {
        .virtual_size = size, .read = zero_read, .block_status = zero_status};
    int ret = img_write(&src, fmt, opts, fd, NULL, err);
    if (ret == 0 && close(fd) < 0)
        ret = img_error_set(err, errno, "closing %s: %s", path, strerror(errno));
    else if (ret < 0) {
        close(fd);
        unlink(path);
    }
    return ret;
}
