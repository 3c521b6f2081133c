/*
 * VHD reader: fixed, dynamic and differencing disks. The footer (at the end,
 * or its copy at offset 0 when the end is damaged) and the dynamic header
 * are checksum-verified (IMG_OPEN_IGNORE_CHECKSUMS relaxes that; blktap's
 * "hidden" byte that old tools changed without updating the checksum is
 * accepted). The virtual size follows qemu's rules (CHS for Virtual PC and
 * old qemu files, current size for Hyper-V, qemu force_size, XenServer,
 * Disk2vhd, XenConverter, Azure, and whenever the geometry is the maximum).
 * Sector bitmaps are honoured for dynamic and differencing disks. A
 * differencing disk finds its parent through its locators (W2ru, W2ku,
 * MacX, with Windows' data-space-in-bytes quirk) or its header name, and the
 * parent's UUID must match. Every table must lie inside the file. Read-only:
 * it never modifies a VHD (writing a new one is vhd_write.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/image_int.h"
#include "formats/vhd.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

enum { BM_UNKNOWN = 0, BM_FULL, BM_PARTIAL };

typedef struct {
    uint32_t type;
    uint8_t uuid[16];
    uint64_t block_size;
    uint64_t bitmap_size;
    uint32_t entries;
    uint32_t *bat;
    uint8_t *bm_state;
} Vhd;

uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t skip)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++)
        if (i < skip || i >= skip + 4)
            sum += buf[i];
    return ~sum;
}

void vhd_geometry(uint64_t total, uint16_t *cyls, uint8_t *heads, uint8_t *spt)
{
    uint64_t cth;
    unsigned h, s;
    if (total > VHD_MAX_GEOMETRY)
        total = VHD_MAX_GEOMETRY;
    if (total >= 65535ULL * 16 * 63) {
        s = 255;
        h = 16;
        cth = total / s;
    } else {
        s = 17;
        cth = total / s;
        h = (unsigned)((cth + 1023) / 1024);
        if (h < 4)
            h = 4;
        if (cth >= h * 1024ULL || h > 16) {
            s = 31;
            h = 16;
            cth = total / s;
        }
        if (cth >= h * 1024ULL) {
            s = 63;
            h = 16;
            cth = total / s;
        }
    }
    *cyls = (uint16_t)MIN(cth / h, 65535);
    *heads = (uint8_t)h;
    *spt = (uint8_t)s;
}

static int vhd_probe(const uint8_t *head, size_t len, uint64_t file_size, int fd)
{
    if (len >= 8 && memcmp(head, "conectix", 8) == 0)
        return 100;
    if (file_size >= VHD_FOOTER_SIZE) {
        uint8_t tail[8];
        if (pread(fd, tail, 8, (off_t)(file_size - VHD_FOOTER_SIZE)) == 8 &&
            memcmp(tail, "conectix", 8) == 0)
            return 90;
    }
    return 0;
}

static bool footer_checksum_ok(const uint8_t *f)
{
    uint32_t stored = img_be32(f + 64);
    if (vhd_checksum(f, VHD_FOOTER_SIZE, 64) == stored)
        return true;
    /* blktap: early tools set the hidden byte without updating the sum. */
    if (memcmp(f + 28, "tap", 4) == 0 && f[85]) {
        uint8_t copy[VHD_FOOTER_SIZE];
        memcpy(copy, f, sizeof(copy));
        copy[85] = 0;
        return vhd_checksum(copy, VHD_FOOTER_SIZE, 64) == stored;
    }
    return false;
}

/* The size qemu would give the disk (formats.md 1.3). */
static uint64_t footer_size(const uint8_t *f)
{
    uint64_t chs = (uint64_t)img_be16(f + 56) * f[58] * f[59];
    static const char *const use_current[] = {"win ", "qem2", "d2v ", "CTXS"};
    bool use_chs = true;
    for (size_t i = 0; i < ARRAY_SIZE(use_current); i++)
        if (memcmp(f + 28, use_current[i], 4) == 0)
            use_chs = false;
    if (memcmp(f + 28, "tap\0", 4) == 0 || memcmp(f + 28, "wa\0\0", 4) == 0)
        use_chs = false;
    if (!use_chs || chs == VHD_MAX_GEOMETRY)
        return img_be64(f + 48) / 512 * 512;
    return chs * 512;
}

/* Converts UTF-16 (little- or big-endian) to UTF-8, stopping at NUL. */
static char *utf16_to_utf8(const uint8_t *p, size_t len, bool big_endian)
{
    StrBuf sb = STRBUF_INIT;
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint32_t c = big_endian ? img_be16(p + i) : (uint32_t)(p[i] | p[i + 1] << 8);
        if (c == 0)
            break;
        if (c >= 0xd800 && c < 0xdc00 && i + 3 < len) {
            uint32_t c2 = big_endian ? img_be16(p + i + 2) : (uint32_t)(p[i + 2] | p[i + 3] << 8);
            if (c2 >= 0xdc00 && c2 < 0xe000) {
                c = 0x10000 + ((c - 0xd800) << 10) + (c2 - 0xdc00);
                i += 2;
            }
        }
        if (c < 0x80) {
            strbuf_addch(&sb, (char)c);
        } else if (c < 0x800) {
            strbuf_addch(&sb, (char)(0xc0 | c >> 6));
            strbuf_addch(&sb, (char)(0x80 | (c & 0x3f)));
        } else if (c < 0x10000) {
            strbuf_addch(&sb, (char)(0xe0 | c >> 12));
            strbuf_addch(&sb, (char)(0x80 | ((c >> 6) & 0x3f)));
            strbuf_addch(&sb, (char)(0x80 | (c & 0x3f)));
        } else {
            strbuf_addch(&sb, (char)(0xf0 | c >> 18));
            strbuf_addch(&sb, (char)(0x80 | ((c >> 12) & 0x3f)));
            strbuf_addch(&sb, (char)(0x80 | ((c >> 6) & 0x3f)));
            strbuf_addch(&sb, (char)(0x80 | (c & 0x3f)));
        }
    }
    return strbuf_detach(&sb, NULL);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Windows path -> POSIX-style path; "C:\x\y" stays absolute-looking. */
static void windows_to_posix(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\\')
            *p = '/';
}

typedef struct {
    char *v[16];
    int n;
} Candidates;

static void cand_add(Candidates *c, const char *s)
{
    if (!s || !s[0] || c->n >= (int)ARRAY_SIZE(c->v))
        return;
    while (s[0] == '.' && s[1] == '/')
        s += 2;
    if (!s[0])
        return;
    for (int i = 0; i < c->n; i++)
        if (STREQ(c->v[i], s))
            return;
    c->v[c->n++] = xstrdup(s);
}

static void cand_add_path(Candidates *c, char *path)
{
    windows_to_posix(path);
    bool drive = ((path[0] | 0x20) >= 'a' && (path[0] | 0x20) <= 'z' && path[1] == ':');
    if (!drive)
        cand_add(c, path);
    const char *base = strrchr(path, '/');
    cand_add(c, base ? base + 1 : (drive ? path + 2 : path));
}

static void cand_free(Candidates *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->v[i]);
    c->n = 0;
}

static void read_locators(ImgReader *r, const uint8_t *hdr, Candidates *rel, Candidates *abs)
{
    for (int i = 0; i < 8; i++) {
        const uint8_t *e = hdr + 576 + 24 * i;
        uint32_t code = img_be32(e);
        uint32_t space = img_be32(e + 4);
        uint32_t len = img_be32(e + 8);
        uint64_t off = img_be64(e + 16);
        if (code == 0 || len == 0 || len > 32768)
            continue;
        /* Data space: sectors per the specification, bytes as Windows writes
         * it (blktap's rule). It only bounds the data length. */
        uint64_t space_bytes = space < 512 ? (uint64_t)space * 512 : space;
        if (len > space_bytes && space != 0)
            continue;
        if (off > r->file_size || len > r->file_size - off)
            continue;
        uint8_t *data = xmalloc(len + 2);
        ImgError ignored;
        if (img_pread(r, r->fd, data, len, off, "parent locator", &ignored) < 0) {
            free(data);
            continue;
        }
        data[len] = data[len + 1] = 0;
        char *path = NULL;
        bool relative = false;
        if (code == 0x57327275 /* W2ru */ || code == 0x57326b75 /* W2ku */) {
            path = utf16_to_utf8(data, len, false);
            relative = code == 0x57327275;
        } else if (code == 0x57693272 /* Wi2r */ || code == 0x5769326b /* Wi2k */) {
            path = xstrndup((char *)data, len);
            relative = code == 0x57693272;
        } else if (code == 0x4d616358 /* MacX */) {
            const char *u = (const char *)data;
            if (STRPREFIX(u, "file://"))
                u += 7;
            if (STRPREFIX(u, "localhost/"))
                u += 9;
            StrBuf sb = STRBUF_INIT;
            for (size_t k = 0; u[k]; k++) {
                if (u[k] == '%' && hexval(u[k + 1]) >= 0 && hexval(u[k + 2]) >= 0) {
                    strbuf_addch(&sb, (char)(hexval(u[k + 1]) * 16 + hexval(u[k + 2])));
                    k += 2;
                } else {
                    strbuf_addch(&sb, u[k]);
                }
            }
            path = strbuf_detach(&sb, NULL);
            relative = path[0] != '/';
        }
        free(data);
        if (path)
            cand_add_path(relative ? rel : abs, path);
        free(path);
    }
}

static int open_parent(ImgReader *r, Vhd *v, const uint8_t *hdr, const ImgOpenOptions *o,
                       ImgChain *chain, ImgError *err)
{
    Candidates rel = {0}, abs = {0};
    read_locators(r, hdr, &rel, &abs);
    char *hname = utf16_to_utf8(hdr + 64, 512, true);
    if (!r->parent_name)
        r->parent_name = xstrdup(hname[0] ? hname : (rel.n ? rel.v[0] : (abs.n ? abs.v[0] : "")));
    cand_add_path(&rel, hname);
    free(hname);
    for (int i = 0; i < abs.n; i++)
        cand_add(&rel, abs.v[i]);
    cand_free(&abs);

    const uint8_t *want = hdr + 40;
    char uuid_s[40];
    snprintf(uuid_s, sizeof(uuid_s),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", want[0],
             want[1], want[2], want[3], want[4], want[5], want[6], want[7], want[8], want[9],
             want[10], want[11], want[12], want[13], want[14], want[15]);
    if (rel.n == 0 && !o->parent) {
        cand_free(&rel);
        return img_error_set(err, ENOENT,
                             "%s is a differencing VHD that names no parent; give the parent "
                             "(UUID %s) explicitly",
                             r->path, uuid_s);
    }
    ImgError last = {0};
    img_error_set(&last, ENOENT, "none of the names it records exists");
    int n = o->parent ? 1 : rel.n;
    const unsigned depth = chain->depth;
    for (int i = 0; i < n; i++) {
        ImgError e;
        chain->depth = depth; /* forget the files of a failed candidate */
        ImgReader *p = o->parent ? img_open_explicit(r, o->parent, IMG_FORMAT_VHD, chain, &e)
                                 : img_open_parent(r, rel.v[i], IMG_FORMAT_VHD, chain, &e);
        if (!p) {
            if (e.code != ENOENT)
                last = e;
            if (e.code == ELOOP) {
                cand_free(&rel);
                *err = e;
                return -ELOOP;
            }
            continue;
        }
        Vhd *pv = p->priv;
        if (memcmp(pv->uuid, want, 16) != 0) {
            img_error_set(&last, EINVAL,
                          "%s has a different UUID from the parent %s expects (%s)", p->path,
                          r->path, uuid_s);
            img_reader_free(p);
            continue;
        }
        r->parent = p;
        cand_free(&rel);
        return 0;
    }
    cand_free(&rel);
    return img_error_set(err, last.code == ENOENT ? ENOENT : last.code,
                         "parent of differencing VHD %s (%s, UUID %s) not found: %s; give it "
                         "explicitly",
                         r->path, r->parent_name, uuid_s, last.msg);
}

static int vhd_open(ImgReader *r, const ImgOpenOptions *o, ImgChain *chain, ImgError *err)
{
    const bool lenient = r->flags & IMG_OPEN_IGNORE_CHECKSUMS;
    uint8_t f[VHD_FOOTER_SIZE], head[VHD_FOOTER_SIZE];
    if (r->file_size < VHD_FOOTER_SIZE)
        return img_error_set(err, EINVAL, "%s is too small to be a VHD", r->path);
    int ret = img_pread(r, r->fd, f, sizeof(f), r->file_size - VHD_FOOTER_SIZE, "VHD footer",
                        err);
    if (ret < 0)
        return ret;
    ret = img_pread(r, r->fd, head, sizeof(head), 0, "VHD footer copy", err);
    if (ret < 0)
        return ret;
    bool tail_ok = memcmp(f, "conectix", 8) == 0;
    bool head_ok = memcmp(head, "conectix", 8) == 0;
    if (tail_ok && !footer_checksum_ok(f) && !lenient) {
        if (head_ok && footer_checksum_ok(head) && img_be32(head + 60) != VHD_TYPE_FIXED)
            memcpy(f, head, sizeof(f)); /* damaged tail, good copy */
        else
            return img_error_set(err, EINVAL,
                                 "VHD footer checksum mismatch in %s (stored %#x, computed %#x); "
                                 "the file is damaged",
                                 r->path, img_be32(f + 64), vhd_checksum(f, 512, 64));
    } else if (!tail_ok) {
        if (!head_ok)
            return img_error_set(err, EINVAL, "%s is not a VHD (no 'conectix' footer)",
                                 r->path);
        if (!footer_checksum_ok(head) && !lenient)
            return img_error_set(err, EINVAL, "VHD footer checksum mismatch in %s", r->path);
        if (img_be32(head + 60) == VHD_TYPE_FIXED)
            return img_error_set(err, EINVAL, "%s: fixed VHD without a footer at its end",
                                 r->path);
        memcpy(f, head, sizeof(f)); /* truncated or damaged tail */
    }
    if (img_be32(f + 12) >> 16 != 1)
        return img_error_set(err, ENOTSUP, "%s: VHD format version %#x is not supported",
                             r->path, img_be32(f + 12));
    uint32_t type = img_be32(f + 60);
    if (type != VHD_TYPE_FIXED && type != VHD_TYPE_DYNAMIC && type != VHD_TYPE_DIFF)
        return img_error_set(err, ENOTSUP, "%s: VHD disk type %u is not supported", r->path,
                             type);
    uint64_t size = footer_size(f);
    if (size / 512 > VHD_MAX_SECTORS)
        return img_error_set(err, EFBIG,
                             "%s: virtual size %llu exceeds the 2040 GiB limit of VHD", r->path,
                             (unsigned long long)size);
    Vhd *v = xnew0(Vhd, 1);
    r->priv = v;
    v->type = type;
    memcpy(v->uuid, f + 68, 16);
    r->virtual_size = size;

    if (type == VHD_TYPE_FIXED) {
        snprintf(r->subformat, sizeof(r->subformat), "fixed");
        if (size > r->file_size - VHD_FOOTER_SIZE)
            return img_error_set(err, EINVAL,
                                 "%s is truncated: the fixed VHD holds %llu bytes of its %llu",
                                 r->path, (unsigned long long)(r->file_size - VHD_FOOTER_SIZE),
                                 (unsigned long long)size);
        return 0;
    }
    snprintf(r->subformat, sizeof(r->subformat), type == VHD_TYPE_DYNAMIC ? "dynamic"
                                                                           : "differencing");
    uint64_t hoff = img_be64(f + 16);
    if (hoff > r->file_size || VHD_HEADER_SIZE > r->file_size - hoff)
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: dynamic header at %llu lies outside "
                             "the file",
                             r->path, (unsigned long long)hoff);
    uint8_t h[VHD_HEADER_SIZE];
    ret = img_pread(r, r->fd, h, sizeof(h), hoff, "VHD dynamic header", err);
    if (ret < 0)
        return ret;
    if (memcmp(h, "cxsparse", 8) != 0)
        return img_error_set(err, EINVAL, "%s: VHD dynamic header has a bad cookie", r->path);
    if (vhd_checksum(h, sizeof(h), 36) != img_be32(h + 36) && !lenient)
        return img_error_set(err, EINVAL,
                             "VHD dynamic header checksum mismatch in %s; the file is damaged",
                             r->path);
    uint64_t bat_off = img_be64(h + 16);
    v->entries = img_be32(h + 28);
    v->block_size = img_be32(h + 32);
    if (v->block_size < 512 || v->block_size > (256u << 20) ||
        (v->block_size & (v->block_size - 1)))
        return img_error_set(err, EINVAL, "%s: VHD block size %llu is invalid", r->path,
                             (unsigned long long)v->block_size);
    v->bitmap_size = ((v->block_size / 512 + 7) / 8 + 511) & ~511ULL;
    if ((uint64_t)v->entries * 4 > IMG_MAX_TABLE_BYTES)
        return img_error_set(err, EFBIG, "%s: VHD block allocation table is too large",
                             r->path);
    if ((uint64_t)v->entries * v->block_size < size)
        return img_error_set(err, EINVAL,
                             "%s: VHD block allocation table covers less than the disk size",
                             r->path);
    if (bat_off > r->file_size || (uint64_t)v->entries * 4 > r->file_size - bat_off)
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: block allocation table lies outside "
                             "the file",
                             r->path);
    v->bat = xnew0(uint32_t, v->entries ? v->entries : 1);
    v->bm_state = xcalloc(v->entries ? v->entries : 1, 1);
    if (v->entries) {
        ret = img_pread(r, r->fd, v->bat, (size_t)v->entries * 4, bat_off,
                        "block allocation table", err);
        if (ret < 0)
            return ret;
    }
    for (uint32_t i = 0; i < v->entries; i++) {
        v->bat[i] = img_be32((const uint8_t *)&v->bat[i]);
        if (v->bat[i] == VHD_BAT_UNUSED)
            continue;
        uint64_t end = (uint64_t)v->bat[i] * 512 + v->bitmap_size + v->block_size;
        if (end > r->file_size && (uint64_t)i * v->block_size < size)
            return img_error_set(err, EINVAL,
                                 "%s is corrupt or truncated: block %u at sector %u lies past "
                                 "the end of the file",
                                 r->path, i, v->bat[i]);
    }
    if (type == VHD_TYPE_DIFF && !(r->flags & IMG_OPEN_NO_BACKING))
        return open_parent(r, v, h, o, chain, err);
    if (type == VHD_TYPE_DIFF)
        r->parent_name = utf16_to_utf8(h + 64, 512, true);
    return 0;
}

/* Loads block blk's bitmap into bm (bitmap_size bytes) unless the block is
 * known to be full; returns BM_FULL or BM_PARTIAL. */
static int get_bitmap(ImgReader *r, Vhd *v, uint32_t blk, uint8_t *bm, ImgError *err)
{
    uint8_t st = __atomic_load_n(&v->bm_state[blk], __ATOMIC_RELAXED);
    if (st == BM_FULL)
        return BM_FULL;
    int ret = img_pread(r, r->fd, bm, v->bitmap_size, (uint64_t)v->bat[blk] * 512,
                        "VHD sector bitmap", err);
    if (ret < 0)
        return ret;
    uint64_t bytes = v->block_size / 512 / 8;
    bool full = true;
    for (uint64_t i = 0; i < bytes; i++)
        if (bm[i] != 0xff) {
            full = false;
            break;
        }
    if (v->block_size / 512 < 8 && (bm[0] >> (8 - v->block_size / 512)) !=
                                       (0xff >> (8 - v->block_size / 512)))
        full = false;
    st = full ? BM_FULL : BM_PARTIAL;
    __atomic_store_n(&v->bm_state[blk], st, __ATOMIC_RELAXED);
    return st;
}

static inline bool bit(const uint8_t *bm, uint64_t s)
{
    return (bm[s / 8] >> (7 - s % 8)) & 1;
}

static int vhd_read(ImgReader *r, uint64_t off, size_t len, uint8_t *buf, ImgError *err)
{
    Vhd *v = r->priv;
    if (v->type == VHD_TYPE_FIXED)
        return img_pread(r, r->fd, buf, len, off, "VHD data", err);
    uint8_t *bm = NULL;
    int ret = 0;
    while (len > 0) {
        uint32_t blk = (uint32_t)(off / v->block_size);
        uint64_t in = off % v->block_size;
        size_t n = (size_t)MIN(v->block_size - in, len);
        if (blk >= v->entries || v->bat[blk] == VHD_BAT_UNUSED) {
            ret = img_read_parent(r, off, n, buf, err);
            if (ret < 0)
                break;
        } else {
            uint64_t data = (uint64_t)v->bat[blk] * 512 + v->bitmap_size;
            if (!bm)
                bm = xmalloc(v->bitmap_size);
            int st = get_bitmap(r, v, blk, bm, err);
            if (st < 0) {
                ret = st;
                break;
            }
            if (st == BM_FULL) {
                ret = img_pread(r, r->fd, buf, n, data + in, "VHD block", err);
                if (ret < 0)
                    break;
            } else {
                /* Runs of sectors present / absent. */
                uint64_t p = in, end = in + n;
                while (p < end) {
                    uint64_t s = p / 512;
                    bool present = bit(bm, s);
                    uint64_t q = (s + 1) * 512;
                    while (q < end && bit(bm, q / 512) == present)
                        q += 512;
                    q = MIN(q, end);
                    uint8_t *dst = buf + (p - in);
                    if (present)
                        ret = img_pread(r, r->fd, dst, q - p, data + p, "VHD block", err);
                    else
                        ret = img_read_parent(r, off + (p - in), q - p, dst, err);
                    if (ret < 0)
                        goto out;
                    p = q;
                }
            }
        }
        buf += n;
        off += n;
        len -= n;
    }
out:
    free(bm);
    return ret;
}

static int vhd_status(ImgReader *r, uint64_t off, uint64_t maxlen, ImgExtent *ext,
                      ImgError *err)
{
    Vhd *v = r->priv;
    ext->kind = IMG_EXTENT_DATA;
    ext->length = maxlen;
    if (v->type == VHD_TYPE_FIXED) {
        /* Holes in the file read as zeros. */
        bool hole;
        ext->length = img_host_run(r->fd, off, maxlen, &hole);
        if (hole)
            ext->kind = IMG_EXTENT_ZERO;
        return 0;
    }
    uint8_t *bm = NULL;
    uint64_t done = 0;
    bool have = false;
    int ret = 0;
    while (done < maxlen) {
        uint64_t pos = off + done;
        uint32_t blk = (uint32_t)(pos / v->block_size);
        uint64_t in = pos % v->block_size;
        uint64_t n = MIN(v->block_size - in, maxlen - done);
        if (blk >= v->entries || v->bat[blk] == VHD_BAT_UNUSED) {
            if (have && ext->kind != IMG_EXTENT_UNALLOCATED)
                break;
            have = true;
            ext->kind = IMG_EXTENT_UNALLOCATED;
            done += n;
            continue;
        }
        if (!bm)
            bm = xmalloc(v->bitmap_size);
        int st = get_bitmap(r, v, blk, bm, err);
        if (st < 0) {
            ret = st;
            break;
        }
        if (st == BM_FULL) {
            /* Holes in the block's data read as zeros. */
            bool hole;
            uint64_t data = (uint64_t)v->bat[blk] * 512 + v->bitmap_size;
            uint64_t run = img_host_run(r->fd, data + in, n, &hole);
            ImgExtentKind k = hole ? IMG_EXTENT_ZERO : IMG_EXTENT_DATA;
            if (have && ext->kind != k)
                break;
            have = true;
            ext->kind = k;
            done += run;
            continue;
        }
        uint64_t p = in, end = in + n;
        while (p < end) {
            ImgExtentKind k = bit(bm, p / 512) ? IMG_EXTENT_DATA : IMG_EXTENT_UNALLOCATED;
            if (have && k != ext->kind)
                goto out;
            have = true;
            ext->kind = k;
            uint64_t q = MIN((p / 512 + 1) * 512, end);
            done += q - p;
            p = q;
        }
    }
out:
    free(bm);
    ext->length = done;
    return ret;
}

static void vhd_close(ImgReader *r)
{
    Vhd *v = r->priv;
    free(v->bat);
    free(v->bm_state);
    free(v);
    r->priv = NULL;
}

const ImgDriver img_driver_vhd = {
    .name = "vhd",
    .format = IMG_FORMAT_VHD,
    .probe = vhd_probe,
    .open = vhd_open,
    .read = vhd_read,
    .status = vhd_status,
    .close = vhd_close,
};

uint64_t vhd_footer_size(const uint8_t *footer)
{
    return footer_size(footer);
}

bool vhd_footer_checksum_ok(const uint8_t *footer)
{
    return footer_checksum_ok(footer);
}
