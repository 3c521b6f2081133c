/*
 * qcow2 writer: a fresh standalone (or overlay) version 3 image written in
 * one sequential pass into a seekable file. Layout: header cluster, data
 * clusters in virtual order (all-zero clusters are not written), then L2
 * tables, the L1 table, the refcount table and refcount blocks (16-bit, every
 * used cluster counted once), and finally the real header over cluster 0.
 * With a backing file, runs the source reports UNALLOCATED stay unallocated
 * and zero runs become zero clusters. Must not produce anything that
 * `qemu-img check` would report.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/image_int.h"
#include "formats/qcow2.h"
#include "util/xalloc.h"
#include "util/banned.h"

typedef struct {
    uint64_t cs;
    uint32_t cluster_bits;
    uint64_t l2_entries;
    uint64_t l1_size;
    uint64_t **l2; /* per L1 index, host-endian, NULL = no table */
    uint64_t next; /* next free host offset */
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

/* Stores the clusters of one data chunk (cluster aligned, span bytes). */
static int copy_data(Writer *w, ImgOut *out, const ImgPumpItem *it, bool backing)
{
    const uint64_t cs = w->cs;
    uint64_t ncl = it->span / cs;
    uint64_t i = 0;
    while (i < ncl) {
        uint8_t *c = it->buf + i * cs;
        uint64_t cl = it->start / cs + i;
        if (img_is_zero(c, (size_t)cs)) {
            if (backing)
                *l2_entry(w, cl) = QCOW2_ZERO_FLAG;
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < ncl && (j == i || !img_is_zero(it->buf + j * cs, (size_t)cs))) {
            *l2_entry(w, it->start / cs + j) = w->next | QCOW2_COPIED;
            w->next += cs;
            j++;
        }
        int ret = img_out_write(out, c, (size_t)((j - i) * cs));
        if (ret < 0)
            return ret;
        i = j;
    }
    return 0;
}

int qcow2_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err)
{
    Writer w = {0};
    w.cs = o->cluster_size ? o->cluster_size : 65536;
    if (w.cs < 512 || w.cs > 2 * 1024 * 1024 || (w.cs & (w.cs - 1)))
        return img_error_set(err, EINVAL,
                             "qcow2 cluster size %llu is invalid (a power of two from 512 B to "
                             "2 MiB)",
                             (unsigned long long)w.cs);
    w.cluster_bits = (uint32_t)__builtin_ctzll(w.cs);
    w.l2_entries = w.cs / 8;
    const uint64_t size = src->virtual_size;
    const uint64_t l2_cover = w.cs * w.l2_entries;
    w.l1_size = (size + l2_cover - 1) / l2_cover;
    if (w.l1_size * 8 > IMG_MAX_TABLE_BYTES)
        return img_error_set(err, EFBIG, "a %llu-byte disk needs too large a qcow2 L1 table",
                             (unsigned long long)size);
    const bool backing = o->backing_file != NULL;

    /* Header cluster, completed at the end. */
    uint8_t *hdr = xcalloc(1, (size_t)w.cs);
    size_t hlen = QCOW2_HEADER_V3_LEN;
    if (backing && o->backing_format) {
        size_t fl = strlen(o->backing_format);
        if (hlen + 8 + fl + 7 > w.cs / 2) {
            free(hdr);
            return img_error_set(err, EINVAL, "backing format name is too long");
        }
        img_put_be32(hdr + hlen, QCOW2_EXT_BACKING_FORMAT);
        img_put_be32(hdr + hlen + 4, (uint32_t)fl);
        memcpy(hdr + hlen + 8, o->backing_format, fl);
        hlen += 8 + ((fl + 7) & ~(size_t)7);
    }
    hlen += 8; /* end of extensions */
    uint64_t backing_off = 0;
    size_t blen = 0;
    if (backing) {
        blen = strlen(o->backing_file);
        if (blen == 0 || blen > 1023 || hlen + blen > w.cs) {
            free(hdr);
            return img_error_set(err, EINVAL, "backing file name '%s' is too long or empty",
                                 o->backing_file);
        }
        backing_off = hlen;
        memcpy(hdr + hlen, o->backing_file, blen);
    }

    int ret = img_out_zeros(out, w.cs);
    w.l2 = xnew0(uint64_t *, w.l1_size ? w.l1_size : 1);
    w.next = w.cs;
    if (ret < 0)
        goto out;

    ImgPump *pump = img_pump_start(src, w.cs, backing, IMG_IO_CHUNK, err);
    if (!pump) {
        ret = -EAGAIN;
        goto out;
    }
    ImgPumpItem it;
    while ((ret = img_pump_next(pump, &it, err)) > 0) {
        if (it.kind == IMG_UNIT_ZERO && backing) {
            for (uint64_t c = it.start / w.cs; c < (it.start + it.len + w.cs - 1) / w.cs; c++)
                *l2_entry(&w, c) = QCOW2_ZERO_FLAG;
        } else if (it.kind == IMG_UNIT_DATA) {
            ret = copy_data(&w, out, &it, backing);
            if (ret < 0)
                break;
        }
        ret = img_out_tick(out, it.start + it.len);
        if (ret < 0)
            break;
    }
    img_pump_free(pump);
    if (ret < 0)
        goto out;

    /* L2 tables. */
    uint64_t *l1 = xnew0(uint64_t, w.l1_size ? w.l1_size : 1);
    for (uint64_t i = 0; i < w.l1_size; i++) {
        if (!w.l2[i])
            continue;
        l1[i] = w.next | QCOW2_COPIED;
        w.next += w.cs;
        ret = write_be_table(out, w.l2[i], w.l2_entries, w.cs);
        if (ret < 0) {
            free(l1);
            goto out;
        }
    }
    /* L1 table (at least one cluster). */
    uint64_t l1_off = w.next;
    uint64_t l1_clusters = MAX(1, (w.l1_size * 8 + w.cs - 1) / w.cs);
    ret = write_be_table(out, l1, w.l1_size, l1_clusters * w.cs);
    free(l1);
    if (ret < 0)
        goto out;
    w.next += l1_clusters * w.cs;

    /* Refcounts: 16-bit entries, every cluster up to the end used once. */
    uint64_t used = w.next / w.cs;
    uint64_t rb_entries = w.cs / 2;
    uint64_t rt_clusters = 1, rb_count = 1;
    for (int i = 0; i < 16; i++) {
        uint64_t total = used + rt_clusters + rb_count;
        uint64_t nb = (total + rb_entries - 1) / rb_entries;
        uint64_t nt = MAX(1, (nb * 8 + w.cs - 1) / w.cs);
        if (nb == rb_count && nt == rt_clusters)
            break;
        rb_count = nb;
        rt_clusters = nt;
    }
    uint64_t total = used + rt_clusters + rb_count;
    uint64_t rt_off = w.next;
    uint64_t rb_off = rt_off + rt_clusters * w.cs;
    uint64_t *rt = xnew0(uint64_t, rt_clusters * w.cs / 8);
    for (uint64_t i = 0; i < rb_count; i++)
        rt[i] = rb_off + i * w.cs;
    ret = write_be_table(out, rt, rt_clusters * w.cs / 8, rt_clusters * w.cs);
    free(rt);
    if (ret < 0)
        goto out;
    uint8_t *rb = xmalloc((size_t)w.cs);
    for (uint64_t b = 0; b < rb_count && ret == 0; b++) {
        memset(rb, 0, (size_t)w.cs);
        for (uint64_t i = 0; i < rb_entries; i++) {
            if (b * rb_entries + i >= total)
                break;
            img_put_be16(rb + 2 * i, 1);
        }
        ret = img_out_write(out, rb, (size_t)w.cs);
    }
    free(rb);
    if (ret < 0)
        goto out;

    /* The header, last. */
    img_put_be32(hdr, QCOW2_MAGIC);
    img_put_be32(hdr + 4, 3);
    img_put_be64(hdr + 8, backing_off);
    img_put_be32(hdr + 16, (uint32_t)blen);
    img_put_be32(hdr + 20, w.cluster_bits);
    img_put_be64(hdr + 24, size);
    img_put_be32(hdr + 32, 0);
    img_put_be32(hdr + 36, (uint32_t)w.l1_size);
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
    ret = img_out_pwrite(out, hdr, (size_t)w.cs, 0);

out:
    for (uint64_t i = 0; i < w.l1_size; i++)
        free(w.l2[i]);
    free(w.l2);
    free(hdr);
    return ret < 0 ? ret : 0;
}
