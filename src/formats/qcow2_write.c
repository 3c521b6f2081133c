/*
 * qcow2 writer: a fresh standalone (or overlay) version 3 image written in
 * one sequential pass into a seekable file. Layout: header cluster, data
 * clusters in virtual order (all-zero clusters are not written), then L2
 * tables, the L1 table, the refcount table and refcount blocks (16-bit, every
 * used cluster counted once), and finally the real header over cluster 0.
 * With a backing file, runs the source reports UNALLOCATED stay unallocated
 * and zero runs become zero clusters. Must not produce anything that
 * `qemu-img check` would report.
 *
 * Two ways in, one writer: qcow2_write() pulls an ImgSource through the
 * read-ahead pump; an ImgQcow2Stream takes data pushed by its caller and
 * writes whole clusters straight from the caller's buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "formats/image_int.h"
#include "formats/qcow2.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* Pieces of data gathered for one write. */
#define WRITE_BATCH 256

typedef struct {
    ImgOut *out;
    ImgError *err;
    uint64_t size;
    uint64_t cs;
    uint32_t cluster_bits;
    uint64_t l2_entries;
    uint64_t l1_size;
    uint64_t **l2; /* per L1 index, host-endian, NULL = no table */
    uint64_t next; /* next free host offset */
    bool backing;
    uint8_t *hdr;  /* cluster 0, written last */
    uint64_t backing_off;
    size_t blen;
    /* Data clusters gathered for one pwritev (they are contiguous in the
     * file even where zero clusters between them were left out). */
    struct iovec batch[WRITE_BATCH];
    int nbatch;
} Writer;

static uint64_t *l2_entry(Writer *w, uint64_t cluster)
{
    uint64_t l1i = cluster / w->l2_entries;
    if (!w->l2[l1i])
        w->l2[l1i] = xnew0(uint64_t, w->l2_entries);
    return &w->l2[l1i][cluster % w->l2_entries];
}

static int write_be_table(ImgOut *out, const uint64_t *t, uint64_t n, uint64_t bytes)
{
    uint8_t *buf = xcalloc(1, bytes);
    for (uint64_t i = 0; i < n; i++)
        img_put_be64(buf + 8 * i, t[i]);
    int ret = img_out_write(out, buf, bytes);
    free(buf);
    return ret;
}

static void writer_release(Writer *w)
{
    for (uint64_t i = 0; w->l2 && i < w->l1_size; i++)
        free(w->l2[i]);
    free(w->l2);
    free(w->hdr);
    w->l2 = NULL;
    w->hdr = NULL;
}

/* Checks the options and writes the room for the header cluster. */
static int writer_begin(Writer *w, uint64_t size, const ImgWriteOptions *o, ImgOut *out,
                        ImgError *err)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->err = err;
    w->size = size;
    w->cs = o->cluster_size ? o->cluster_size : 65536;
    if (w->cs < 512 || w->cs > 2 * 1024 * 1024 || (w->cs & (w->cs - 1)))
        return img_error_set(err, EINVAL,
                             "qcow2 cluster size %llu is invalid (a power of two from 512 B to "
                             "2 MiB)",
                             (unsigned long long)w->cs);
    w->cluster_bits = (uint32_t)__builtin_ctzll(w->cs);
    w->l2_entries = w->cs / 8;
    const uint64_t l2_cover = w->cs * w->l2_entries;
    w->l1_size = (size + l2_cover - 1) / l2_cover;
    if (w->l1_size * 8 > IMG_MAX_TABLE_BYTES)
        return img_error_set(err, EFBIG, "a %llu-byte disk needs too large a qcow2 L1 table",
                             (unsigned long long)size);
    w->backing = o->backing_file != NULL;

    /* Header cluster, completed at the end. */
    uint8_t *hdr = xcalloc(1, (size_t)w->cs);
    w->hdr = hdr;
    size_t hlen = QCOW2_HEADER_V3_LEN;
    if (w->backing && o->backing_format) {
        size_t fl = strlen(o->backing_format);
        if (hlen + 8 + fl + 7 > w->cs / 2)
            return img_error_set(err, EINVAL, "backing format name is too long");
        img_put_be32(hdr + hlen, QCOW2_EXT_BACKING_FORMAT);
        img_put_be32(hdr + hlen + 4, (uint32_t)fl);
        memcpy(hdr + hlen + 8, o->backing_format, fl);
        hlen += 8 + ((fl + 7) & ~(size_t)7);
    }
    hlen += 8; /* end of extensions */
    if (w->backing) {
        w->blen = strlen(o->backing_file);
        if (w->blen == 0 || w->blen > 1023 || hlen + w->blen > w->cs)
            return img_error_set(err, EINVAL, "backing file name '%s' is too long or empty",
                                 o->backing_file);
        w->backing_off = hlen;
        memcpy(hdr + hlen, o->backing_file, w->blen);
    }
    w->l2 = xnew0(uint64_t *, w->l1_size ? w->l1_size : 1);
    w->next = w->cs;
    /* Data clusters are appended densely: reserve the file's blocks ahead. */
    out->prealloc = true;
    return img_out_zeros(out, w->cs);
}

/* Writes the gathered clusters. */
static int writer_flush(Writer *w)
{
    if (!w->nbatch)
        return 0;
    int n = w->nbatch;
    w->nbatch = 0;
    return img_out_writev(w->out, w->batch, n);
}

/* Stores ncl whole clusters of data at virtual cluster first_cl: the
 * all-zero ones are left out (zero clusters over a backing file). The
 * others are gathered: buf must stay valid until writer_flush(). */
static int writer_clusters(Writer *w, uint64_t first_cl, const uint8_t *buf, uint64_t ncl)
{
    const uint64_t cs = w->cs;
    uint64_t i = 0;
    while (i < ncl) {
        const uint8_t *c = buf + i * cs;
        if (img_is_zero(c, (size_t)cs)) {
            if (w->backing)
                *l2_entry(w, first_cl + i) = QCOW2_ZERO_FLAG;
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < ncl && (j == i || !img_is_zero(buf + j * cs, (size_t)cs))) {
            *l2_entry(w, first_cl + j) = w->next | QCOW2_COPIED;
            w->next += cs;
            j++;
        }
        if (w->nbatch == WRITE_BATCH) {
            int ret = writer_flush(w);
            if (ret < 0)
                return ret;
        }
        w->batch[w->nbatch++] = (struct iovec){(void *)(uintptr_t)c, (size_t)((j - i) * cs)};
        i = j;
    }
    return 0;
}

/* Writes the tables and then the header. */
static int writer_finish(Writer *w)
{
    ImgOut *out = w->out;
    int ret = writer_flush(w);
    if (ret < 0)
        return ret;
    /* L2 tables. */
    uint64_t *l1 = xnew0(uint64_t, w->l1_size ? w->l1_size : 1);
    for (uint64_t i = 0; i < w->l1_size; i++) {
        if (!w->l2[i])
            continue;
        l1[i] = w->next | QCOW2_COPIED;
        w->next += w->cs;
        ret = write_be_table(out, w->l2[i], w->l2_entries, w->cs);
        if (ret < 0) {
            free(l1);
            return ret;
        }
    }
    /* L1 table (at least one cluster). */
    uint64_t l1_off = w->next;
    uint64_t l1_clusters = MAX(1, (w->l1_size * 8 + w->cs - 1) / w->cs);
    ret = write_be_table(out, l1, w->l1_size, l1_clusters * w->cs);
    free(l1);
    if (ret < 0)
        return ret;
    w->next += l1_clusters * w->cs;

    /* Refcounts: 16-bit entries, every cluster up to the end used once. */
    uint64_t used = w->next / w->cs;
    uint64_t rb_entries = w->cs / 2;
    uint64_t rt_clusters = 1, rb_count = 1;
    for (int i = 0; i < 16; i++) {
        uint64_t total = used + rt_clusters + rb_count;
        uint64_t nb = (total + rb_entries - 1) / rb_entries;
        uint64_t nt = MAX(1, (nb * 8 + w->cs - 1) / w->cs);
        if (nb == rb_count && nt == rt_clusters)
            break;
        rb_count = nb;
        rt_clusters = nt;
    }
    uint64_t total = used + rt_clusters + rb_count;
    uint64_t rt_off = w->next;
    uint64_t rb_off = rt_off + rt_clusters * w->cs;
    uint64_t *rt = xnew0(uint64_t, rt_clusters * w->cs / 8);
    for (uint64_t i = 0; i < rb_count; i++)
        rt[i] = rb_off + i * w->cs;
    ret = write_be_table(out, rt, rt_clusters * w->cs / 8, rt_clusters * w->cs);
    free(rt);
    if (ret < 0)
        return ret;
    uint8_t *rb = xmalloc((size_t)w->cs);
    for (uint64_t b = 0; b < rb_count && ret == 0; b++) {
        memset(rb, 0, (size_t)w->cs);
        for (uint64_t i = 0; i < rb_entries; i++) {
            if (b * rb_entries + i >= total)
                break;
            img_put_be16(rb + 2 * i, 1);
        }
        ret = img_out_write(out, rb, (size_t)w->cs);
    }
    free(rb);
    if (ret < 0)
        return ret;

    /* The header, last. */
    uint8_t *hdr = w->hdr;
    img_put_be32(hdr, QCOW2_MAGIC);
    img_put_be32(hdr + 4, 3);
    img_put_be64(hdr + 8, w->backing_off);
    img_put_be32(hdr + 16, (uint32_t)w->blen);
    img_put_be32(hdr + 20, w->cluster_bits);
    img_put_be64(hdr + 24, w->size);
    img_put_be32(hdr + 32, 0);
    img_put_be32(hdr + 36, (uint32_t)w->l1_size);
    img_put_be64(hdr + 40, l1_off);
    img_put_be64(hdr + 48, rt_off);
    img_put_be32(hdr + 56, (uint32_t)rt_clusters);
    img_put_be32(hdr + 60, 0);
    img_put_be64(hdr + 64, 0);
    img_put_be64(hdr + 72, 0);
    img_put_be64(hdr + 80, 0);
    img_put_be64(hdr + 88, 0);
    img_put_be32(hdr + 96, 4);
    img_put_be32(hdr + 100, QCOW2_HEADER_V3_LEN);
    return img_out_pwrite(out, hdr, (size_t)w->cs, 0);
}

int qcow2_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err)
{
    Writer w;
    int ret = writer_begin(&w, src->virtual_size, o, out, err);
    if (ret < 0)
        goto out;
    ImgPump *pump = img_pump_start(src, w.cs, w.backing, IMG_IO_CHUNK, err);
    if (!pump) {
        ret = -EAGAIN;
        goto out;
    }
    ImgPumpItem it;
    while ((ret = img_pump_next(pump, &it, err)) > 0) {
        if (it.kind == IMG_UNIT_ZERO && w.backing) {
            for (uint64_t c = it.start / w.cs; c < (it.start + it.len + w.cs - 1) / w.cs; c++)
                *l2_entry(&w, c) = QCOW2_ZERO_FLAG;
        } else if (it.kind == IMG_UNIT_DATA) {
            /* The pump reuses the buffer after the next item: write it now. */
            ret = writer_clusters(&w, it.start / w.cs, it.buf, it.span / w.cs);
            if (ret == 0)
                ret = writer_flush(&w);
            if (ret < 0)
                break;
        }
        ret = img_out_tick(out, it.start + it.len);
        if (ret < 0)
            break;
    }
    img_pump_free(pump);
    if (ret == 0)
        ret = writer_finish(&w);
out:
    writer_release(&w);
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------------ */
/* Pushed data                                                                */

struct ImgQcow2Stream {
    ImgOut out; /* out.err: the caller's ImgError */
    Writer w;
    uint64_t pos;   /* end of the data pushed so far */
    uint8_t *part;  /* a cluster that arrives in pieces */
    uint64_t part_cl;
    bool part_used;
    bool failed;
};

ImgQcow2Stream *img_qcow2_stream_new(int fd, uint64_t size, const ImgWriteOptions *opts,
                                     const ImgProgress *progress, ImgError *err)
{
    ImgWriteOptions defaults;
    img_write_options_init(&defaults);
    if (!opts)
        opts = &defaults;
    if (opts->backing_file) {
        img_error_set(err, EINVAL, "a pushed qcow2 image cannot have a backing file");
        return NULL;
    }
    if (size > IMG_MAX_VIRTUAL_SIZE) {
        img_error_set(err, EFBIG, "a %llu-byte disk is larger than supported",
                      (unsigned long long)size);
        return NULL;
    }
    ImgQcow2Stream *s = xnew0(ImgQcow2Stream, 1);
    int ret = img_out_init(&s->out, fd, progress, size, err);
    if (ret == 0 && !s->out.seekable)
        ret = img_error_set(err, ESPIPE, "qcow2 images can only be written to a regular file");
    if (ret == 0)
        ret = writer_begin(&s->w, size, opts, &s->out, err);
    if (ret < 0) {
        img_qcow2_stream_free(s);
        return NULL;
    }
    s->part = xmalloc((size_t)s->w.cs);
    return s;
}

static int part_flush(ImgQcow2Stream *s)
{
    if (!s->part_used)
        return 0;
    s->part_used = false;
    /* The buffer is reused for the next piece: write what is gathered now. */
    int ret = writer_clusters(&s->w, s->part_cl, s->part, 1);
    return ret < 0 ? ret : writer_flush(&s->w);
}

int img_qcow2_stream_write(ImgQcow2Stream *s, uint64_t offset, const void *buf, size_t len)
{
    if (s->failed)
        return -EIO;
    if (offset < s->pos || offset > s->w.size || len > s->w.size - offset) {
        s->failed = true;
        return img_error_set(s->out.err, EINVAL,
                             "data pushed at %llu+%zu, before the end of the previous data "
                             "(%llu) or past the end of the disk",
                             (unsigned long long)offset, len, (unsigned long long)s->pos);
    }
    const uint64_t cs = s->w.cs;
    const uint8_t *p = buf;
    int ret = 0;
    while (ret == 0 && len > 0) {
        uint64_t cl = offset / cs, in = offset % cs;
        if (s->part_used && s->part_cl != cl)
            ret = part_flush(s);
        if (ret < 0)
            break;
        if (in == 0 && len >= cs) {
            /* Whole clusters, written from the caller's buffer. */
            uint64_t n = len / cs;
            ret = writer_clusters(&s->w, cl, p, n);
            offset += n * cs;
            p += n * cs;
            len -= (size_t)(n * cs);
            continue;
        }
        if (!s->part_used) {
            memset(s->part, 0, (size_t)cs);
            s->part_cl = cl;
            s->part_used = true;
        }
        size_t n = (size_t)MIN((uint64_t)len, cs - in);
        memcpy(s->part + in, p, n);
        offset += n;
        p += n;
        len -= n;
        if (in + n == cs)
            ret = part_flush(s);
    }
    s->pos = offset;
    if (ret == 0)
        ret = img_out_tick(&s->out, offset);
    if (ret < 0)
        s->failed = true;
    return ret;
}

int img_qcow2_stream_flush(ImgQcow2Stream *s)
{
    if (s->failed)
        return -EIO;
    int ret = writer_flush(&s->w);
    if (ret < 0)
        s->failed = true;
    return ret;
}

int img_qcow2_stream_finish(ImgQcow2Stream *s)
{
    if (s->failed)
        return -EIO;
    int ret = part_flush(s);
    if (ret == 0)
        ret = writer_finish(&s->w);
    if (ret == 0)
        ret = img_out_finish(&s->out);
    if (ret == 0)
        ret = img_out_tick(&s->out, s->w.size);
    if (ret < 0)
        s->failed = true;
    return ret;
}

void img_qcow2_stream_free(ImgQcow2Stream *s)
{
    if (!s)
        return;
    writer_release(&s->w);
    img_out_release(&s->out);
    free(s->part);
    free(s);
}
