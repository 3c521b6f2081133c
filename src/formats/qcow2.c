/*
 * qcow2 reader (versions 2 and 3): L1/L2 tables, zero clusters, deflate-
 * compressed clusters and backing files (relative names resolved against
 * the image's directory, format from the backing-format extension or
 * probed). Contiguous clusters are read with one pread each, so copying a
 * qcow2 costs about as much as copying its data. Refuses encryption,
 * external data files, extended L2 entries, non-zlib compression and unknown
 * incompatible features with a message saying so. L2 tables are cached
 * behind a mutex; reads at different offsets may run in parallel.
 * This file only reads: it never modifies an image (writing a new one is
 * qcow2_write.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "formats/image_int.h"
#include "formats/qcow2.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define L2_CACHE_SLOTS 64
#define BATCH 512

typedef struct {
    uint64_t offset; /* host offset of the table, 0 = free slot */
    uint64_t used;
    uint64_t *table; /* host-endian entries */
} L2Slot;

typedef struct {
    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint32_t l2_bits;
    uint64_t l2_entries;
    uint32_t l1_size;
    uint64_t *l1;
    uint32_t csize_shift;
    uint64_t csize_mask;
    uint64_t coffset_mask;
    pthread_mutex_t lock;
    uint64_t tick;
    L2Slot slots[L2_CACHE_SLOTS];
} Qcow2;

static int qcow2_probe(const uint8_t *head, size_t len, uint64_t file_size, int fd)
{
    if (len >= 8 && img_be32(head) == QCOW2_MAGIC) {
        uint32_t v = img_be32(head + 4);
        return (v == 2 || v == 3) ? 100 : 60;
    }
    return 0;
}

/* Copies entries [l2i, l2i+n) of the L2 table that L1 entry l1i points to. */
static int get_l2(ImgReader *r, Qcow2 *q, uint64_t l1i, uint64_t l2i, size_t n, uint64_t *out,
                  ImgError *err)
{
    uint64_t l2off = q->l1[l1i] & QCOW2_OFFSET_MASK;
    if (l2off == 0) {
        memset(out, 0, n * sizeof(*out));
        return 0;
    }
    if (l2off & (q->cluster_size - 1))
        return img_error_set(err, EINVAL, "%s is corrupt: L2 table offset %#llx is not aligned",
                             r->path, (unsigned long long)l2off);
    if (l2off > r->file_size || q->cluster_size > r->file_size - l2off)
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: L2 table at %#llx lies past the end "
                             "of the file",
                             r->path, (unsigned long long)l2off);
    pthread_mutex_lock(&q->lock);
    L2Slot *slot = NULL, *victim = &q->slots[0];
    for (int i = 0; i < L2_CACHE_SLOTS; i++) {
        if (q->slots[i].offset == l2off) {
            slot = &q->slots[i];
            break;
        }
        if (q->slots[i].used < victim->used)
            victim = &q->slots[i];
    }
    if (!slot) {
        slot = victim;
        if (!slot->table)
            slot->table = xmalloc(q->cluster_size);
        slot->offset = 0;
        int ret = img_pread(r, r->fd, slot->table, q->cluster_size, l2off, "L2 table", err);
        if (ret < 0) {
            pthread_mutex_unlock(&q->lock);
            return ret;
        }
        for (uint64_t i = 0; i < q->l2_entries; i++)
            slot->table[i] = img_be64((const uint8_t *)&slot->table[i]);
        slot->offset = l2off;
    }
    slot->used = ++q->tick;
    memcpy(out, slot->table + l2i, n * sizeof(*out));
    pthread_mutex_unlock(&q->lock);
    return 0;
}

typedef enum { CL_UNALLOC, CL_ZERO, CL_DATA, CL_COMPRESSED } ClusterKind;

static ClusterKind classify(const Qcow2 *q, uint64_t e)
{
    if (e & QCOW2_COMPRESSED)
        return CL_COMPRESSED;
    if (q->version >= 3 && (e & QCOW2_ZERO_FLAG))
        return CL_ZERO;
    if ((e & QCOW2_OFFSET_MASK) == 0)
        return CL_UNALLOC;
    return CL_DATA;
}

static int check_data(ImgReader *r, Qcow2 *q, uint64_t host)
{
    if (host & (q->cluster_size - 1))
        return -1;
    if (host >= r->file_size)
        return -1;
    return 0;
}

static int read_compressed(ImgReader *r, Qcow2 *q, uint64_t e, uint8_t *cluster, ImgError *err)
{
    uint64_t coff = e & q->coffset_mask;
    uint64_t nsec = ((e >> q->csize_shift) & q->csize_mask) + 1;
    uint64_t csize = nsec * 512 - (coff & 511);
    if (coff >= r->file_size)
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: compressed cluster at %#llx lies "
                             "past the end of the file",
                             r->path, (unsigned long long)coff);
    uint8_t *in = xmalloc(csize);
    int ret = img_pread_zfill(r, r->fd, in, csize, coff, err);
    if (ret < 0) {
        free(in);
        return ret;
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -15) != Z_OK) {
        free(in);
        return img_error_set(err, ENOMEM, "%s: cannot start zlib", r->path);
    }
    zs.next_in = in;
    zs.avail_in = (uInt)csize;
    zs.next_out = cluster;
    zs.avail_out = (uInt)q->cluster_size;
    int z = inflate(&zs, Z_FINISH);
    bool ok = (z == Z_STREAM_END || z == Z_BUF_ERROR || z == Z_OK) && zs.avail_out == 0;
    inflateEnd(&zs);
    free(in);
    if (!ok)
        return img_error_set(err, EINVAL,
                             "%s is corrupt: compressed cluster at %#llx does not decompress",
                             r->path, (unsigned long long)coff);
    return 0;
}

static int qcow2_read(ImgReader *r, uint64_t off, size_t len, uint8_t *buf, ImgError *err)
{
    Qcow2 *q = r->priv;
    uint64_t entries[BATCH];
    uint8_t *cbuf = NULL;
    int ret = 0;

    /* Pending run being coalesced. */
    ClusterKind run_kind = CL_ZERO;
    uint64_t run_host = 0, run_virt = 0;
    size_t run_len = 0;
    uint8_t *run_buf = NULL;

#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (run_len) {                                                                             \
            if (run_kind == CL_DATA)                                                               \
                ret = img_pread_zfill(r, r->fd, run_buf, run_len, run_host, err);                  \
            else if (run_kind == CL_UNALLOC)                                                       \
                ret = img_read_parent(r, run_virt, run_len, run_buf, err);                         \
            else                                                                                   \
                memset(run_buf, 0, run_len);                                                       \
            run_len = 0;                                                                           \
            if (ret < 0)                                                                           \
                goto out;                                                                          \
        }                                                                                          \
    } while (0)

    while (len > 0) {
        uint64_t cl = off >> q->cluster_bits;
        uint64_t l1i = cl >> q->l2_bits;
        uint64_t l2i = cl & (q->l2_entries - 1);
        if (l1i >= q->l1_size) {
            ret = img_error_set(err, EINVAL, "%s: offset %llu is beyond the L1 table", r->path,
                                (unsigned long long)off);
            goto out;
        }
        uint64_t in_cl = off & (q->cluster_size - 1);
        uint64_t ncl = (in_cl + len + q->cluster_size - 1) >> q->cluster_bits;
        size_t n = (size_t)MIN(MIN(ncl, q->l2_entries - l2i), BATCH);
        ret = get_l2(r, q, l1i, l2i, n, entries, err);
        if (ret < 0)
            goto out;
        for (size_t i = 0; i < n && len > 0; i++) {
            uint64_t e = entries[i];
            size_t chunk = (size_t)MIN(q->cluster_size - in_cl, len);
            ClusterKind k = classify(q, e);
            uint64_t host = (e & QCOW2_OFFSET_MASK) + in_cl;
            if (k == CL_DATA && check_data(r, q, e & QCOW2_OFFSET_MASK) < 0) {
                ret = img_error_set(err, EINVAL,
                                    "%s is corrupt or truncated: data cluster %#llx for offset "
                                    "%llu is misaligned or past the end of the file",
                                    r->path, (unsigned long long)(e & QCOW2_OFFSET_MASK),
                                    (unsigned long long)off);
                goto out;
            }
            if (k == CL_COMPRESSED) {
                FLUSH();
                if (!cbuf)
                    cbuf = xmalloc(q->cluster_size);
                ret = read_compressed(r, q, e, cbuf, err);
                if (ret < 0)
                    goto out;
                memcpy(buf, cbuf + in_cl, chunk);
            } else {
                bool extend = run_len && run_kind == k &&
                              (k != CL_DATA || run_host + run_len == host);
                if (!extend) {
                    FLUSH();
                    run_kind = k;
                    run_host = host;
                    run_virt = off;
                    run_buf = buf;
                }
                run_len += chunk;
            }
            buf += chunk;
            off += chunk;
            len -= chunk;
            in_cl = 0;
        }
    }
    FLUSH();
out:
#undef FLUSH
    free(cbuf);
    return ret;
}

/*
 * The run at off of contiguous data clusters of this file, or of clusters
 * this layer leaves to its parent (then mapped there), up to len.
 */
static ssize_t qcow2_map(ImgReader *r, uint64_t off, size_t len, const void **ptr, ImgError *err)
{
    Qcow2 *q = r->priv;
    uint64_t entries[BATCH];
    uint64_t cl = off >> q->cluster_bits;
    uint64_t l1i = cl >> q->l2_bits;
    uint64_t l2i = cl & (q->l2_entries - 1);
    uint64_t in_cl = off & (q->cluster_size - 1);
    if (l1i >= q->l1_size)
        return img_error_set(err, EINVAL, "%s: offset %llu is beyond the L1 table", r->path,
                             (unsigned long long)off);
    uint64_t ncl = (in_cl + len + q->cluster_size - 1) >> q->cluster_bits;
    size_t n = (size_t)MIN(MIN(ncl, q->l2_entries - l2i), BATCH);
    int ret = get_l2(r, q, l1i, l2i, n, entries, err);
    if (ret < 0)
        return ret;
    ClusterKind kind = classify(q, entries[0]);
    if (kind != CL_DATA && kind != CL_UNALLOC)
        return 0;
    uint64_t host0 = entries[0] & QCOW2_OFFSET_MASK;
    size_t run = 0;
    for (size_t i = 0; i < n && run < len; i++) {
        uint64_t host = entries[i] & QCOW2_OFFSET_MASK;
        if (classify(q, entries[i]) != kind ||
            (kind == CL_DATA && (check_data(r, q, host) < 0 ||
                                 host != host0 + (i << q->cluster_bits))))
            break;
        run += (size_t)MIN(q->cluster_size - (i ? 0 : in_cl), (uint64_t)(len - run));
    }
    if (run == 0)
        return 0;
    if (kind == CL_UNALLOC)
        return r->parent ? img_map(r->parent, off, run, ptr, err) : 0;
    uint64_t start = host0 + in_cl;
    if (start >= r->file_size)
        return 0;
    const uint8_t *m = img_file_map(r);
    if (!m)
        return 0;
    *ptr = m + start;
    return (ssize_t)MIN((uint64_t)run, r->file_size - start);
}

static int qcow2_status(ImgReader *r, uint64_t off, uint64_t maxlen, ImgExtent *ext,
                        ImgError *err)
{
    Qcow2 *q = r->priv;
    uint64_t entries[BATCH];
    uint64_t done = 0;
    bool have = false;
    ImgExtentKind kind = IMG_EXTENT_DATA;
    unsigned tables = 0;

    while (done < maxlen) {
        uint64_t pos = off + done;
        uint64_t cl = pos >> q->cluster_bits;
        uint64_t l1i = cl >> q->l2_bits;
        uint64_t l2i = cl & (q->l2_entries - 1);
        if (l1i >= q->l1_size)
            return img_error_set(err, EINVAL, "%s: offset %llu is beyond the L1 table", r->path,
                                 (unsigned long long)pos);
        uint64_t in_cl = pos & (q->cluster_size - 1);
        if ((q->l1[l1i] & QCOW2_OFFSET_MASK) == 0) {
            /* Whole L2 range unallocated. */
            uint64_t span = ((q->l2_entries - l2i) << q->cluster_bits) - in_cl;
            if (have && kind != IMG_EXTENT_UNALLOCATED)
                break;
            have = true;
            kind = IMG_EXTENT_UNALLOCATED;
            done += MIN(span, maxlen - done);
            continue;
        }
        if (++tables > 64 && have)
            break;
        uint64_t ncl = (in_cl + (maxlen - done) + q->cluster_size - 1) >> q->cluster_bits;
        size_t n = (size_t)MIN(MIN(ncl, q->l2_entries - l2i), BATCH);
        int ret = get_l2(r, q, l1i, l2i, n, entries, err);
        if (ret < 0)
            return ret;
        for (size_t i = 0; i < n; i++) {
            ImgExtentKind k;
            switch (classify(q, entries[i])) {
            case CL_UNALLOC:
                k = IMG_EXTENT_UNALLOCATED;
                break;
            case CL_ZERO:
                k = IMG_EXTENT_ZERO;
                break;
            default:
                k = IMG_EXTENT_DATA;
                break;
            }
            if (have && k != kind)
                goto end;
            have = true;
            kind = k;
            done += MIN(q->cluster_size - in_cl, maxlen - done);
            in_cl = 0;
            if (done >= maxlen)
                break;
        }
    }
end:
    ext->kind = kind;
    ext->length = done;
    return 0;
}

static void qcow2_close(ImgReader *r)
{
    Qcow2 *q = r->priv;
    for (int i = 0; i < L2_CACHE_SLOTS; i++)
        free(q->slots[i].table);
    free(q->l1);
    pthread_mutex_destroy(&q->lock);
    free(q);
    r->priv = NULL;
}

static int qcow2_open(ImgReader *r, const ImgOpenOptions *o, ImgChain *chain, ImgError *err)
{
    uint8_t h[QCOW2_HEADER_V3_LEN];
    memset(h, 0, sizeof(h));
    if (r->file_size < 72)
        return img_error_set(err, EINVAL, "%s is too small to be a qcow2 image", r->path);
    int ret = img_pread(r, r->fd, h, (size_t)MIN(sizeof(h), r->file_size), 0, "qcow2 header",
                        err);
    if (ret < 0)
        return ret;
    if (img_be32(h) != QCOW2_MAGIC)
        return img_error_set(err, EINVAL, "%s is not a qcow2 image (bad magic)", r->path);
    uint32_t version = img_be32(h + 4);
    if (version != 2 && version != 3)
        return img_error_set(err, ENOTSUP, "%s: qcow2 version %u is not supported", r->path,
                             version);
    uint64_t backing_off = img_be64(h + 8);
    uint32_t backing_len = img_be32(h + 16);
    uint32_t cluster_bits = img_be32(h + 20);
    uint64_t size = img_be64(h + 24);
    uint32_t crypt = img_be32(h + 32);
    uint32_t l1_size = img_be32(h + 36);
    uint64_t l1_off = img_be64(h + 40);
    uint32_t header_len = 72;
    uint64_t incompat = 0;
    uint8_t compression_type = 0;

    if (cluster_bits < 9 || cluster_bits > 21)
        return img_error_set(err, EINVAL, "%s: qcow2 cluster size 2^%u is invalid", r->path,
                             cluster_bits);
    uint64_t cs = 1ULL << cluster_bits;
    if (version >= 3) {
        incompat = img_be64(h + 72);
        header_len = img_be32(h + 100);
        if (header_len < 104 || header_len > cs)
            return img_error_set(err, EINVAL, "%s: qcow2 header length %u is invalid", r->path,
                                 header_len);
        if (header_len > 104)
            compression_type = h[104];
    }
    if (crypt != 0)
        return img_error_set(err, ENOTSUP,
                             "%s is an encrypted qcow2 image; encrypted images are not "
                             "supported (decrypt it with qemu-img convert first)",
                             r->path);
    if (incompat & QCOW2_INCOMPAT_DATA_FILE)
        return img_error_set(err, ENOTSUP,
                             "%s keeps its data in an external data file, which is not "
                             "supported",
                             r->path);
    if (incompat & QCOW2_INCOMPAT_EXTL2)
        return img_error_set(err, ENOTSUP,
                             "%s uses extended L2 entries (subclusters), which are not "
                             "supported",
                             r->path);
    if ((incompat & QCOW2_INCOMPAT_COMPRESSION) && compression_type != 0)
        return img_error_set(err, ENOTSUP,
                             "%s uses compression type %u; only zlib compression is supported",
                             r->path, compression_type);
    uint64_t unknown = incompat & ~(uint64_t)(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                                              QCOW2_INCOMPAT_COMPRESSION);
    if (unknown)
        return img_error_set(err, ENOTSUP,
                             "%s uses unknown incompatible qcow2 features (%#llx)", r->path,
                             (unsigned long long)unknown);
    if (size > IMG_MAX_VIRTUAL_SIZE)
        return img_error_set(err, EFBIG, "%s: virtual size %llu is too large", r->path,
                             (unsigned long long)size);
    uint32_t l2_bits = cluster_bits - 3;
    uint64_t l2_cover = cs << l2_bits;
    uint64_t l1_needed = (size + l2_cover - 1) / l2_cover;
    if (l1_size < l1_needed)
        return img_error_set(err, EINVAL, "%s: L1 table too small for the virtual size",
                             r->path);
    if ((uint64_t)l1_size * 8 > IMG_MAX_TABLE_BYTES)
        return img_error_set(err, EFBIG, "%s: L1 table is too large", r->path);
    if (l1_size && ((l1_off & (cs - 1)) || l1_off > r->file_size ||
                    (uint64_t)l1_size * 8 > r->file_size - l1_off))
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: L1 table at %#llx lies outside the "
                             "file",
                             r->path, (unsigned long long)l1_off);

    Qcow2 *q = xnew0(Qcow2, 1);
    pthread_mutex_init(&q->lock, NULL);
    r->priv = q;
    q->version = version;
    q->cluster_bits = cluster_bits;
    q->cluster_size = cs;
    q->l2_bits = l2_bits;
    q->l2_entries = 1ULL << l2_bits;
    q->l1_size = l1_size;
    q->csize_shift = 62 - (cluster_bits - 8);
    q->csize_mask = (1ULL << (cluster_bits - 8)) - 1;
    q->coffset_mask = (1ULL << q->csize_shift) - 1;
    q->l1 = xnew0(uint64_t, l1_size ? l1_size : 1);
    if (l1_size) {
        ret = img_pread(r, r->fd, q->l1, (size_t)l1_size * 8, l1_off, "L1 table", err);
        if (ret < 0)
            return ret;
        for (uint32_t i = 0; i < l1_size; i++)
            q->l1[i] = img_be64((const uint8_t *)&q->l1[i]);
    }
    r->virtual_size = size;
    snprintf(r->subformat, sizeof(r->subformat), "v%u", version);

    /* Header extensions: only the backing format matters for reading. */
    char backing_fmt[32] = "";
    uint64_t ext = header_len;
    uint8_t eh[8];
    for (int guard = 0; guard < 64 && ext + 8 <= cs && ext + 8 <= r->file_size; guard++) {
        ret = img_pread(r, r->fd, eh, 8, ext, "qcow2 header extension", err);
        if (ret < 0)
            return ret;
        uint32_t type = img_be32(eh), elen = img_be32(eh + 4);
        if (type == 0)
            break;
        if (elen > cs - ext - 8)
            return img_error_set(err, EINVAL, "%s: qcow2 header extension overflows", r->path);
        if (type == QCOW2_EXT_BACKING_FORMAT && elen < sizeof(backing_fmt)) {
            ret = img_pread(r, r->fd, backing_fmt, elen, ext + 8, "backing format", err);
            if (ret < 0)
                return ret;
            backing_fmt[elen] = 0;
        }
        ext += 8 + ((elen + 7ULL) & ~7ULL);
    }

    if (backing_off) {
        if (backing_len == 0 || backing_len > 1023 || backing_off >= cs ||
            backing_len > cs - backing_off)
            return img_error_set(err, EINVAL, "%s: qcow2 backing file name is invalid",
                                 r->path);
        char name[1024];
        ret = img_pread(r, r->fd, name, backing_len, backing_off, "backing file name", err);
        if (ret < 0)
            return ret;
        name[backing_len] = 0;
        if (strlen(name) != backing_len)
            return img_error_set(err, EINVAL, "%s: qcow2 backing file name contains NUL",
                                 r->path);
        r->parent_name = xstrdup(name);
    }
    ImgFormat pfmt = IMG_FORMAT_PROBE;
    if (backing_fmt[0]) {
        pfmt = STREQ(backing_fmt, "file") ? IMG_FORMAT_RAW : img_format_from_name(backing_fmt);
        if (pfmt == IMG_FORMAT__MAX)
            return img_error_set(err, ENOTSUP, "%s: backing file format '%s' is not supported",
                                 r->path, backing_fmt);
    }
    if (o->parent) {
        r->parent = img_open_explicit(r, o->parent, o->parent_format, chain, err);
        if (!r->parent)
            return -(err ? err->code : EINVAL);
    } else if (r->parent_name && !(r->flags & IMG_OPEN_NO_BACKING)) {
        r->parent = img_open_parent(r, r->parent_name, pfmt, chain, err);
        if (!r->parent)
            return -(err ? err->code : EINVAL);
    }
    return 0;
}

const ImgDriver img_driver_qcow2 = {
    .name = "qcow2",
    .format = IMG_FORMAT_QCOW2,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .read = qcow2_read,
    .status = qcow2_status,
    .map = qcow2_map,
    .close = qcow2_close,
};
