/*
 * One-pass VHD reader for streams (vhd_stream.h). The random-access reader
 * is vhd.c; this one trades generality for never going backwards: the BAT
 * must map blocks to increasing, non-overlapping file offsets in disk order.
 * Sector bitmaps are honoured (sectors not marked read as zeros), as vhd.c
 * does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/image_int.h"
#include "formats/vhd.h"
#include "formats/vhd_stream.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* Largest block size streamed (bigger ones fall back: one block is buffered). */
#define STREAM_MAX_BLOCK (32u << 20)
/* Largest prefix (footer, header, BAT and what lies between) kept for a fallback. */
#define STREAM_MAX_PREFIX (IMG_MAX_TABLE_BYTES + (1u << 20))

struct ImgVhdStream {
    ImgSeqReadFn rd;
    void *opaque;
    uint64_t file_size;
    unsigned flags;
    uint8_t *prefix; /* bytes [0, pos) while opening */
    size_t prefix_len, prefix_alloc;
    bool keep_prefix;
    uint64_t pos;    /* next file offset the stream gives */
    uint8_t footer[VHD_FOOTER_SIZE];
    uint32_t type;
    uint64_t size;
    /* dynamic */
    uint32_t *bat;
    uint32_t entries;
    uint64_t block_size, bitmap_size;
    uint8_t *buf;    /* the current block's data (bitmap applied) */
    uint8_t *bm;
    int64_t loaded;  /* last block read, -1 */
    bool buf_valid;  /* buf holds it (not read straight into a caller's buffer) */
};

static int s_read(ImgVhdStream *s, uint64_t off, size_t len, void *buf, ImgError *err)
{
    if (off < s->pos)
        return img_error_set(err, EINVAL, "the VHD stream would have to go back to offset %llu",
                             (unsigned long long)off);
    if (s->keep_prefix) {
        uint64_t end = off + len;
        if (end > STREAM_MAX_PREFIX)
            return img_error_set(err, ENOTSUP, "VHD metadata too far into the stream");
        XGROW(s->prefix, (size_t)end, s->prefix_alloc);
        /* What lies between is read too (the stream has it anyway). */
        int r = s->rd(s->opaque, s->pos, (size_t)(end - s->pos), s->prefix + s->pos, err);
        if (r < 0)
            return r;
        memcpy(buf, s->prefix + off, len);
        s->prefix_len = (size_t)end;
        s->pos = end;
        return 0;
    }
    int r = s->rd(s->opaque, off, len, buf, err);
    if (r == 0)
        s->pos = off + len;
    return r;
}

const uint8_t *img_vhd_stream_prefix(const ImgVhdStream *s, size_t *len)
{
    *len = s->prefix_len;
    return s->prefix;
}

void img_vhd_stream_free(ImgVhdStream *s)
{
    if (!s)
        return;
    free(s->prefix);
    free(s->bat);
    free(s->buf);
    free(s->bm);
    free(s);
}

static bool is_footer(const uint8_t *f, bool lenient)
{
    return memcmp(f, "conectix", 8) == 0 && (lenient || vhd_footer_checksum_ok(f)) &&
           img_be32(f + 12) >> 16 == 1;
}

int img_vhd_stream_open(ImgSeqReadFn rd, void *opaque, uint64_t file_size, unsigned flags,
                        ImgVhdStream **out, ImgError *err)
{
    ImgVhdStream *s = xnew0(ImgVhdStream, 1);
    *out = s;
    s->rd = rd;
    s->opaque = opaque;
    s->file_size = file_size;
    s->flags = flags;
    s->keep_prefix = true;
    s->loaded = -1;
    bool lenient = flags & IMG_OPEN_IGNORE_CHECKSUMS;
    uint8_t first[VHD_FOOTER_SIZE];
    int r = s_read(s, 0, sizeof(first), first, err);
    if (r < 0)
        return r;
    if (!is_footer(first, lenient) || img_be32(first + 60) == VHD_TYPE_FIXED) {
        /* A fixed disk: raw data, then the footer at the end of the file. */
        if (file_size < VHD_FOOTER_SIZE * 2)
            return img_error_set(err, ENOTSUP, "a fixed VHD of unknown length");
        s->type = VHD_TYPE_FIXED;
        s->size = file_size - VHD_FOOTER_SIZE;
        s->keep_prefix = false; /* the prefix read so far is the start of the data */
        return 0;
    }
    memcpy(s->footer, first, sizeof(first));
    s->type = img_be32(first + 60);
    if (s->type != VHD_TYPE_DYNAMIC)
        return img_error_set(err, ENOTSUP, "a VHD of type %u is read from a file", s->type);
    s->size = vhd_footer_size(first);
    if (s->size / 512 > VHD_MAX_SECTORS)
        return img_error_set(err, EFBIG, "the VHD's virtual size %llu exceeds the 2040 GiB limit",
                             (unsigned long long)s->size);
    uint64_t hoff = img_be64(first + 16);
    if (hoff < VHD_FOOTER_SIZE || hoff > STREAM_MAX_PREFIX)
        return img_error_set(err, EINVAL, "the VHD's dynamic header offset %llu is invalid",
                             (unsigned long long)hoff);
    uint8_t h[VHD_HEADER_SIZE];
    r = s_read(s, hoff, sizeof(h), h, err);
    if (r < 0)
        return r;
    if (memcmp(h, "cxsparse", 8) != 0)
        return img_error_set(err, EINVAL, "the VHD's dynamic header has a bad cookie");
    if (vhd_checksum(h, sizeof(h), 36) != img_be32(h + 36) && !lenient)
        return img_error_set(err, EINVAL, "VHD dynamic header checksum mismatch; the file is "
                                          "damaged");
    uint64_t bat_off = img_be64(h + 16);
    s->entries = img_be32(h + 28);
    s->block_size = img_be32(h + 32);
    if (s->block_size < 512 || s->block_size > (256u << 20) ||
        (s->block_size & (s->block_size - 1)))
        return img_error_set(err, EINVAL, "VHD block size %llu is invalid",
                             (unsigned long long)s->block_size);
    if (s->block_size > STREAM_MAX_BLOCK)
        return img_error_set(err, ENOTSUP, "VHD blocks of %llu bytes are read from a file",
                             (unsigned long long)s->block_size);
    s->bitmap_size = ((s->block_size / 512 + 7) / 8 + 511) & ~511ULL;
    if ((uint64_t)s->entries * 4 > IMG_MAX_TABLE_BYTES)
        return img_error_set(err, EFBIG, "the VHD's block allocation table is too large");
    if ((uint64_t)s->entries * s->block_size < s->size)
        return img_error_set(err, EINVAL,
                             "the VHD's block allocation table covers less than the disk size");
    if (bat_off < hoff + VHD_HEADER_SIZE)
        return img_error_set(err, ENOTSUP, "the VHD's block allocation table precedes its header");
    s->bat = xnew0(uint32_t, s->entries ? s->entries : 1);
    if (s->entries) {
        r = s_read(s, bat_off, (size_t)s->entries * 4, s->bat, err);
        if (r < 0)
            return r;
    }
    /* Blocks in disk order at increasing, non-overlapping offsets past the BAT. */
    uint64_t next = bat_off + (uint64_t)s->entries * 4;
    uint64_t nblocks = (s->size + s->block_size - 1) / s->block_size;
    for (uint32_t i = 0; i < s->entries; i++) {
        s->bat[i] = img_be32((const uint8_t *)&s->bat[i]);
        if (s->bat[i] == VHD_BAT_UNUSED)
            continue;
        if (i >= nblocks) {
            s->bat[i] = VHD_BAT_UNUSED; /* beyond the disk: never read */
            continue;
        }
        uint64_t at = (uint64_t)s->bat[i] * 512;
        if (at < next)
            return img_error_set(err, ENOTSUP, "the VHD's blocks are not in disk order");
        next = at + s->bitmap_size + s->block_size;
        if (file_size && next > file_size)
            return img_error_set(err, EINVAL,
                                 "the VHD is corrupt or truncated: block %u at sector %u lies "
                                 "past the end of the file",
                                 i, s->bat[i]);
    }
    s->keep_prefix = false;
    s->buf = xmalloc((size_t)s->block_size);
    s->bm = xmalloc((size_t)s->bitmap_size);
    return 0;
}

/* Reads block blk (bitmap applied) into dst: s->buf, or the caller's buffer
 * when a read covers the whole block (one copy fewer). */
static int load_block_into(ImgVhdStream *s, uint64_t blk, uint8_t *dst, ImgError *err)
{
    if ((int64_t)blk < s->loaded || ((int64_t)blk == s->loaded && !s->buf_valid))
        return img_error_set(err, EINVAL, "VHD stream: block %llu asked for after block %lld",
                             (unsigned long long)blk, (long long)s->loaded);
    uint64_t at = (uint64_t)s->bat[blk] * 512;
    int r = s_read(s, at, (size_t)s->bitmap_size, s->bm, err);
    if (r == 0)
        r = s_read(s, at + s->bitmap_size, (size_t)s->block_size, dst, err);
    if (r < 0)
        return r;
    uint64_t spb = s->block_size / 512;
    for (uint64_t i = 0; i < spb; i++)
        if (!(s->bm[i / 8] & (0x80 >> (i % 8))))
            memset(dst + i * 512, 0, 512);
    s->loaded = (int64_t)blk;
    s->buf_valid = dst == s->buf;
    return 0;
}

static int load_block(ImgVhdStream *s, uint64_t blk, ImgError *err)
{
    if ((int64_t)blk == s->loaded && s->buf_valid)
        return 0;
    return load_block_into(s, blk, s->buf, err);
}

static int src_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    ImgVhdStream *s = opaque;
    uint8_t *p = buf;
    if (s->type == VHD_TYPE_FIXED) {
        size_t have = off < s->size ? (size_t)MIN((uint64_t)len, s->size - off) : 0;
        memset(p + have, 0, len - have);
        /* The first bytes were read while probing the type. */
        if (have && off < s->prefix_len) {
            size_t k = (size_t)MIN((uint64_t)have, s->prefix_len - off);
            memcpy(p, s->prefix + off, k);
            p += k;
            off += k;
            have -= k;
        }
        return have ? s_read(s, off, have, p, err) : 0;
    }
    while (len > 0) {
        uint64_t blk = off / s->block_size;
        uint64_t in = off % s->block_size;
        size_t n = (size_t)MIN((uint64_t)len, s->block_size - in);
        if (off >= s->size || blk >= s->entries || s->bat[blk] == VHD_BAT_UNUSED) {
            memset(p, 0, n);
        } else if (in == 0 && n == s->block_size && (int64_t)blk > s->loaded) {
            int r = load_block_into(s, blk, p, err);
            if (r < 0)
                return r;
        } else {
            int r = load_block(s, blk, err);
            if (r < 0)
                return r;
            memcpy(p, s->buf + in, n);
        }
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int src_status(void *opaque, uint64_t off, uint64_t maxlen, ImgExtent *ext, ImgError *err)
{
    ImgVhdStream *s = opaque;
    maxlen = MIN(maxlen, s->size - off);
    if (s->type == VHD_TYPE_FIXED) {
        *ext = (ImgExtent){off, maxlen, IMG_EXTENT_DATA};
        return 0;
    }
    uint64_t blk = off / s->block_size;
    bool alloc = blk < s->entries && s->bat[blk] != VHD_BAT_UNUSED;
    uint64_t end = off;
    while (end < off + maxlen) {
        uint64_t b = end / s->block_size;
        bool a = b < s->entries && s->bat[b] != VHD_BAT_UNUSED;
        if (a != alloc)
            break;
        end = (b + 1) * s->block_size;
    }
    end = MIN(end, off + maxlen);
    *ext = (ImgExtent){off, end - off, alloc ? IMG_EXTENT_DATA : IMG_EXTENT_ZERO};
    return 0;
}

void img_vhd_stream_source(ImgVhdStream *s, ImgSource *src)
{
    *src = (ImgSource){.virtual_size = s->size, .opaque = s, .read = src_read,
                       .block_status = src_status};
}

int img_vhd_stream_finish(ImgVhdStream *s, ImgError *err)
{
    if (s->type != VHD_TYPE_FIXED)
        return 0;
    uint8_t f[VHD_FOOTER_SIZE];
    int r = s_read(s, s->file_size - VHD_FOOTER_SIZE, sizeof(f), f, err);
    if (r < 0)
        return r;
    bool lenient = s->flags & IMG_OPEN_IGNORE_CHECKSUMS;
    if (!is_footer(f, lenient))
        return img_error_set(err, EINVAL, "the file is not a VHD (no valid footer at its end)");
    if (img_be32(f + 60) != VHD_TYPE_FIXED)
        return img_error_set(err, EINVAL, "the VHD's footer says type %u, not fixed",
                             img_be32(f + 60));
    if (vhd_footer_size(f) > s->size)
        return img_error_set(err, EINVAL,
                             "the fixed VHD's footer gives a size of %llu bytes, the file holds "
                             "%llu",
                             (unsigned long long)vhd_footer_size(f), (unsigned long long)s->size);
    return 0;
}
