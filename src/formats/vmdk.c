/*
 * VMDK reader: hosted sparse extents (monolithicSparse, and streamOptimized
 * with its grain directory at the front as qemu writes it or at the end,
 * behind the footer, as VMware writes it: GD_AT_END), and text descriptors
 * with FLAT, VMFS, SPARSE and ZERO extents (monolithicFlat, twoGbMaxExtent*,
 * vmfs). Delta disks (parentFileNameHint) read through their parent. Every
 * table, grain and marker must lie in its file, sizes are bounded, and
 * extent files are opened with the confinement rules of image_int.h. ESX
 * COWD deltas and raw device mappings are refused. Read-only: it never
 * modifies a VMDK (writing a new one is vmdk_write.c).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/image_int.h"
#include "formats/vmdk.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define GT_CACHE_SLOTS 64
#define MAX_EXTENTS 1024
#define MAX_DESCRIPTOR (1024 * 1024)
#define BATCH 512

typedef enum { EXT_FLAT, EXT_SPARSE, EXT_ZERO } ExtentType;

typedef struct {
    uint64_t offset; /* GT byte offset in the file, 0 = free */
    uint64_t used;
    uint32_t *table;
} GtSlot;

typedef struct {
    uint64_t capacity;    /* bytes */
    uint64_t grain;       /* bytes */
    uint32_t gtes;        /* entries per grain table */
    uint64_t gd_entries;
    uint32_t *gd;
    bool compressed, markers, zeroed_gte;
    pthread_mutex_t lock;
    uint64_t tick;
    GtSlot slots[GT_CACHE_SLOTS];
} Sparse;

typedef struct {
    ExtentType type;
    uint64_t start; /* virtual byte offset */
    uint64_t size;  /* bytes */
    int fd;
    char *path;
    uint64_t file_size;
    uint64_t flat_offset; /* bytes */
    Sparse *sp;
} Extent;

typedef struct {
    Extent *ext;
    size_t n;
    char create_type[64];
} Vmdk;

static bool looks_like_descriptor(const uint8_t *p, size_t len)
{
    if (len >= 21 && memcmp(p, "# Disk DescriptorFile", 21) == 0)
        return true;
    size_t n = MIN(len, 1024);
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0 || (p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t'))
            return false;
    return memmem(p, n, "createType", 10) != NULL;
}

static int vmdk_probe(const uint8_t *head, size_t len, uint64_t file_size, int fd)
{
    if (len >= 4 && (img_le32(head) == VMDK_MAGIC || img_le32(head) == VMDK_COWD_MAGIC))
        return 100;
    if (looks_like_descriptor(head, len))
        return 90;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sparse extents                                                             */

static void sparse_free(Sparse *s)
{
    if (!s)
        return;
    for (int i = 0; i < GT_CACHE_SLOTS; i++)
        free(s->slots[i].table);
    free(s->gd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Parses a sparse header at the start of ext's file; *desc_off and *desc_len
 * give the embedded descriptor (bytes, 0 if none). */
static int sparse_open(ImgReader *r, Extent *e, uint64_t *desc_off, uint64_t *desc_len,
                       ImgError *err)
{
    uint8_t h[512];
    if (e->file_size < 512)
        return img_error_set(err, EINVAL, "%s is truncated: no sparse extent header", e->path);
    int ret = img_pread(r, e->fd, h, sizeof(h), 0, "VMDK header", err);
    if (ret < 0)
        return ret;
    if (img_le32(h) == VMDK_COWD_MAGIC)
        return img_error_set(err, ENOTSUP,
                             "%s is an ESX COWD (vmfsSparse) extent, which is not supported",
                             e->path);
    if (img_le32(h) != VMDK_MAGIC)
        return img_error_set(err, EINVAL, "%s is not a VMDK sparse extent (bad magic)", e->path);
    uint32_t version = img_le32(h + 4);
    uint32_t flags = img_le32(h + 8);
    uint64_t capacity = img_le64(h + 12);
    uint64_t grain = img_le64(h + 20);
    *desc_off = img_le64(h + 28) * 512;
    *desc_len = img_le64(h + 36) * 512;
    uint32_t gtes = img_le32(h + 44);
    uint64_t gd_off = img_le64(h + 56);
    uint16_t algo = (uint16_t)(h[77] | h[78] << 8);
    if (version < 1 || version > 3)
        return img_error_set(err, ENOTSUP, "%s: VMDK version %u is not supported", e->path,
                             version);
    if (capacity > IMG_MAX_VIRTUAL_SIZE / 512)
        return img_error_set(err, EFBIG, "%s: VMDK capacity %llu sectors is too large", e->path,
                             (unsigned long long)capacity);
    if (grain == 0 || grain > 65536 || (grain & (grain - 1)))
        return img_error_set(err, EINVAL, "%s: VMDK grain size %llu sectors is invalid",
                             e->path, (unsigned long long)grain);
    if (gtes == 0 || gtes > 8192)
        return img_error_set(err, EINVAL,
                             "%s: VMDK grain table size (%u entries per table) is invalid",
                             e->path, gtes);
    if ((flags & VMDK_FLAG_NL_DETECT) &&
        (h[73] != '\n' || h[74] != ' ' || h[75] != '\r' || h[76] != '\n'))
        return img_error_set(err, EINVAL,
                             "%s was damaged by a text-mode transfer (newline check failed)",
                             e->path);
    Sparse *s = xnew0(Sparse, 1);
    pthread_mutex_init(&s->lock, NULL);
    e->sp = s;
    s->capacity = capacity * 512;
    s->grain = grain * 512;
    s->gtes = gtes;
    s->compressed = flags & VMDK_FLAG_COMPRESSED;
    s->markers = flags & VMDK_FLAG_MARKERS;
    s->zeroed_gte = flags & VMDK_FLAG_ZEROED_GTE;
    if (s->compressed && algo != VMDK_COMPRESS_DEFLATE)
        return img_error_set(err, ENOTSUP, "%s: VMDK compression algorithm %u is not supported",
                             e->path, algo);
    if (gd_off == VMDK_GD_AT_END) {
        /* VMware stream: the footer (a copy of the header) precedes the EOS
         * marker at the end of the file. */
        if (e->file_size < 1536)
            return img_error_set(err, EINVAL, "%s is truncated: no VMDK footer", e->path);
        uint8_t f[512];
        ret = img_pread(r, e->fd, f, sizeof(f), e->file_size - 1024, "VMDK footer", err);
        if (ret < 0)
            return ret;
        if (img_le32(f) != VMDK_MAGIC || img_le64(f + 56) == VMDK_GD_AT_END)
            return img_error_set(err, EINVAL,
                                 "%s is truncated or incomplete: the streamOptimized footer "
                                 "that locates its grain directory is missing",
                                 e->path);
        gd_off = img_le64(f + 56);
    }
    uint64_t per_gt = (uint64_t)gtes * s->grain;
    s->gd_entries = (s->capacity + per_gt - 1) / per_gt;
    if (s->gd_entries * 4 > IMG_MAX_TABLE_BYTES)
        return img_error_set(err, EFBIG, "%s: VMDK grain directory is too large", e->path);
    if (s->gd_entries == 0)
        return 0;
    if (gd_off == 0 || gd_off > e->file_size / 512 ||
        s->gd_entries * 4 > e->file_size - gd_off * 512)
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: the grain directory lies outside the "
                             "file",
                             e->path);
    s->gd = xnew0(uint32_t, s->gd_entries);
    ret = img_pread(r, e->fd, s->gd, s->gd_entries * 4, gd_off * 512, "grain directory", err);
    if (ret < 0)
        return ret;
    for (uint64_t i = 0; i < s->gd_entries; i++)
        s->gd[i] = img_le32((const uint8_t *)&s->gd[i]);
    return 0;
}

/* Copies GT entries [gti, gti+n) of grain table gdi. */
static int get_gt(ImgReader *r, Extent *e, uint64_t gdi, uint64_t gti, size_t n, uint32_t *out,
                  ImgError *err)
{
    Sparse *s = e->sp;
    uint64_t sec = gdi < s->gd_entries ? s->gd[gdi] : 0;
    if (sec == 0) {
        memset(out, 0, n * 4);
        return 0;
    }
    uint64_t off = sec * 512, bytes = (uint64_t)s->gtes * 4;
    if (off > e->file_size || bytes > e->file_size - off)
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: grain table %llu at sector %llu lies "
                             "outside the file",
                             e->path, (unsigned long long)gdi, (unsigned long long)sec);
    pthread_mutex_lock(&s->lock);
    GtSlot *slot = NULL, *victim = &s->slots[0];
    for (int i = 0; i < GT_CACHE_SLOTS; i++) {
        if (s->slots[i].offset == off) {
            slot = &s->slots[i];
            break;
        }
        if (s->slots[i].used < victim->used)
            victim = &s->slots[i];
    }
    if (!slot) {
        slot = victim;
        if (!slot->table)
            slot->table = xmalloc(bytes);
        slot->offset = 0;
        int ret = img_pread(r, e->fd, slot->table, bytes, off, "grain table", err);
        if (ret < 0) {
            pthread_mutex_unlock(&s->lock);
            return ret;
        }
        for (uint32_t i = 0; i < s->gtes; i++)
            slot->table[i] = img_le32((const uint8_t *)&slot->table[i]);
        slot->offset = off;
    }
    slot->used = ++s->tick;
    memcpy(out, slot->table + gti, n * 4);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

typedef enum { GR_UNALLOC, GR_ZERO, GR_DATA } GrainKind;

static GrainKind grain_kind(const Sparse *s, uint32_t g)
{
    if (g == 0)
        return GR_UNALLOC;
    if (g == 1 && s->zeroed_gte)
        return GR_ZERO;
    return GR_DATA;
}

/* Reads and inflates the compressed grain at sector sec into out (grain
 * bytes; want = bytes of it inside the extent). */
static int read_compressed(ImgReader *r, Extent *e, uint64_t sec, uint64_t want, uint8_t *out,
                           ImgError *err)
{
    Sparse *s = e->sp;
    uint64_t off = sec * 512;
    if (off >= e->file_size)
        return img_error_set(err, EINVAL,
                             "%s is corrupt or truncated: grain at sector %llu lies outside "
                             "the file",
                             e->path, (unsigned long long)sec);
    uint64_t clen, doff;
    if (s->markers) {
        uint8_t m[12];
        int ret = img_pread(r, e->fd, m, sizeof(m), off, "grain marker", err);
        if (ret < 0)
            return ret;
        clen = img_le32(m + 8);
        doff = off + 12;
        if (clen == 0 || clen > 2 * s->grain + 1024)
            return img_error_set(err, EINVAL,
                                 "%s is corrupt: compressed grain at sector %llu claims %llu "
                                 "bytes",
                                 e->path, (unsigned long long)sec, (unsigned long long)clen);
        if (clen > e->file_size - doff)
            return img_error_set(err, EINVAL,
                                 "%s is truncated: compressed grain at sector %llu runs past the "
                                 "end of the file",
                                 e->path, (unsigned long long)sec);
    } else {
        doff = off;
        clen = MIN(2 * s->grain + 1024, e->file_size - off);
    }
    uint8_t *in = xmalloc(clen);
    int ret = img_pread(r, e->fd, in, clen, doff, "compressed grain", err);
    if (ret < 0) {
        free(in);
        return ret;
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK) {
        free(in);
        return img_error_set(err, ENOMEM, "%s: cannot start zlib", e->path);
    }
    zs.next_in = in;
    zs.avail_in = (uInt)clen;
    zs.next_out = out;
    zs.avail_out = (uInt)s->grain;
    int z = inflate(&zs, Z_FINISH);
    uint64_t got = s->grain - zs.avail_out;
    inflateEnd(&zs);
    free(in);
    if ((z != Z_STREAM_END && !(z == Z_BUF_ERROR && zs.avail_out == 0)) || got < want)
        return img_error_set(err, EINVAL,
                             "%s is corrupt: compressed grain at sector %llu does not "
                             "decompress to a full grain",
                             e->path, (unsigned long long)sec);
    if (got < s->grain)
        memset(out + got, 0, s->grain - got);
    return 0;
}

/* Reads [off, off+len) of sparse extent e (offsets relative to the extent).
 * vbase is the extent's virtual start, for parent reads. */
static int sparse_read(ImgReader *r, Extent *e, uint64_t off, size_t len, uint8_t *buf,
                       ImgError *err)
{
    Sparse *s = e->sp;
    uint32_t gt[BATCH];
    uint8_t *gbuf = NULL;
    int ret = 0;
    GrainKind run_kind = GR_ZERO;
    uint64_t run_host = 0, run_virt = 0;
    size_t run_len = 0;
    uint8_t *run_buf = NULL;

#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (run_len) {                                                                             \
            if (run_kind == GR_DATA)                                                               \
                ret = img_pread_zfill(r, e->fd, run_buf, run_len, run_host, err);                  \
            else if (run_kind == GR_UNALLOC)                                                       \
                ret = img_read_parent(r, e->start + run_virt, run_len, run_buf, err);              \
            else                                                                                   \
                memset(run_buf, 0, run_len);                                                       \
            run_len = 0;                                                                           \
            if (ret < 0)                                                                           \
                goto out;                                                                          \
        }                                                                                          \
    } while (0)

    while (len > 0) {
        if (off >= s->capacity) {
            /* Past the sparse file's own capacity: zeros. */
            FLUSH();
            memset(buf, 0, len);
            break;
        }
        uint64_t g = off / s->grain;
        uint64_t gdi = g / s->gtes, gti = g % s->gtes;
        uint64_t in_g = off % s->grain;
        uint64_t ng = (in_g + len + s->grain - 1) / s->grain;
        size_t n = (size_t)MIN(MIN(ng, s->gtes - gti), BATCH);
        ret = get_gt(r, e, gdi, gti, n, gt, err);
        if (ret < 0)
            goto out;
        for (size_t i = 0; i < n && len > 0; i++) {
            size_t chunk = (size_t)MIN(MIN(s->grain - in_g, len), s->capacity - off);
            GrainKind k = grain_kind(s, gt[i]);
            uint64_t host = (uint64_t)gt[i] * 512 + in_g;
            if (k == GR_DATA && s->compressed) {
                FLUSH();
                if (!gbuf)
                    gbuf = xmalloc(s->grain);
                uint64_t want = MIN(s->grain, s->capacity - (off - in_g));
                ret = read_compressed(r, e, gt[i], want, gbuf, err);
                if (ret < 0)
                    goto out;
                memcpy(buf, gbuf + in_g, chunk);
            } else {
                if (k == GR_DATA && (uint64_t)gt[i] * 512 >= e->file_size) {
                    ret = img_error_set(err, EINVAL,
                                        "%s is corrupt or truncated: grain at sector %u lies "
                                        "outside the file",
                                        e->path, gt[i]);
                    goto out;
                }
                bool extend = run_len && run_kind == k &&
                              (k != GR_DATA || run_host + run_len == host);
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
            in_g = 0;
            if (off >= s->capacity)
                break;
        }
    }
    FLUSH();
out:
#undef FLUSH
    free(gbuf);
    return ret;
}

static int sparse_status(ImgReader *r, Extent *e, uint64_t off, uint64_t maxlen,
                         ImgExtentKind *kind, uint64_t *length, ImgError *err)
{
    Sparse *s = e->sp;
    uint32_t gt[BATCH];
    uint64_t done = 0;
    bool have = false;
    unsigned tables = 0;
    *kind = IMG_EXTENT_UNALLOCATED;
    while (done < maxlen) {
        uint64_t pos = off + done;
        if (pos >= s->capacity) {
            if (have && *kind != IMG_EXTENT_ZERO)
                break;
            *kind = IMG_EXTENT_ZERO;
            done = maxlen;
            break;
        }
        uint64_t g = pos / s->grain;
        uint64_t gdi = g / s->gtes, gti = g % s->gtes;
        uint64_t in_g = pos % s->grain;
        if (gdi >= s->gd_entries || s->gd[gdi] == 0) {
            uint64_t span = (s->gtes - gti) * s->grain - in_g;
            if (have && *kind != IMG_EXTENT_UNALLOCATED)
                break;
            have = true;
            *kind = IMG_EXTENT_UNALLOCATED;
            done += MIN(span, maxlen - done);
            continue;
        }
        if (++tables > 64 && have)
            break;
        uint64_t ng = (in_g + (maxlen - done) + s->grain - 1) / s->grain;
        size_t n = (size_t)MIN(MIN(ng, s->gtes - gti), BATCH);
        int ret = get_gt(r, e, gdi, gti, n, gt, err);
        if (ret < 0)
            return ret;
        for (size_t i = 0; i < n && done < maxlen; i++) {
            GrainKind gk = grain_kind(s, gt[i]);
            ImgExtentKind k = gk == GR_DATA   ? IMG_EXTENT_DATA
                              : gk == GR_ZERO ? IMG_EXTENT_ZERO
                                              : IMG_EXTENT_UNALLOCATED;
            if (have && k != *kind)
                goto end;
            have = true;
            *kind = k;
            done += MIN(s->grain - in_g, maxlen - done);
            in_g = 0;
        }
    }
end:
    *length = done;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                                */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static void unquote(char *s, char *out, size_t outlen)
{
    s = trim(s);
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = 0;
        s++;
    }
    snprintf(out, outlen, "%s", s);
}

typedef struct {
    char create_type[64];
    char parent_hint[1024];
    bool has_parent;
} DescInfo;

/* Parses a descriptor; with extents_out, also opens its extents. */
static int parse_descriptor(ImgReader *r, char *text, DescInfo *info, Vmdk *v, ImgChain *chain,
                            ImgError *err)
{
    uint64_t vpos = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *l = trim(line);
        if (!l[0] || l[0] == '#')
            continue;
        if (STRPREFIX(l, "RW ") || STRPREFIX(l, "RDONLY ") || STRPREFIX(l, "NOACCESS ")) {
            if (!v)
                continue;
            if (v->n >= MAX_EXTENTS)
                return img_error_set(err, E2BIG, "%s: more than %d extents", r->path,
                                     MAX_EXTENTS);
            if (STRPREFIX(l, "NOACCESS "))
                return img_error_set(err, ENOTSUP, "%s: NOACCESS extents are not supported",
                                     r->path);
            char *p = strchr(l, ' ');
            p = trim(p);
            char *end;
            errno = 0;
            unsigned long long sectors = strtoull(p, &end, 10);
            if (errno || end == p || !isspace((unsigned char)*end) ||
                sectors > IMG_MAX_VIRTUAL_SIZE / 512 ||
                vpos + sectors * 512 > IMG_MAX_VIRTUAL_SIZE)
                return img_error_set(err, EFBIG, "%s: extent size in '%s' is invalid", r->path,
                                     l);
            p = trim(end);
            char type[32];
            size_t tl = strcspn(p, " \t");
            snprintf(type, sizeof(type), "%.*s", (int)MIN(tl, sizeof(type) - 1), p);
            p = trim(p + tl);
            char fname[1024] = "";
            uint64_t foff = 0;
            if (*p == '"') {
                char *q = strchr(p + 1, '"');
                if (!q)
                    return img_error_set(err, EINVAL, "%s: unterminated file name in '%s'",
                                         r->path, l);
                snprintf(fname, sizeof(fname), "%.*s", (int)(q - p - 1), p + 1);
                p = trim(q + 1);
                if (*p) {
                    errno = 0;
                    unsigned long long o = strtoull(p, &end, 10);
                    if (errno || end == p || o > IMG_MAX_VIRTUAL_SIZE / 512)
                        return img_error_set(err, EINVAL, "%s: extent offset in '%s' is invalid",
                                             r->path, l);
                    foff = o * 512;
                }
            }
            Extent e = {.start = vpos, .size = sectors * 512, .fd = -1};
            if (STREQ(type, "ZERO")) {
                e.type = EXT_ZERO;
            } else if (STREQ(type, "FLAT") || STREQ(type, "VMFS") || STREQ(type, "SPARSE")) {
                e.type = STREQ(type, "SPARSE") ? EXT_SPARSE : EXT_FLAT;
                if (!fname[0])
                    return img_error_set(err, EINVAL, "%s: extent '%s' names no file", r->path,
                                         l);
                int ret = img_open_extent(r, fname, chain, &e.fd, &e.path, err);
                if (ret < 0)
                    return ret;
                struct stat st;
                fstat(e.fd, &st);
                e.file_size = (uint64_t)st.st_size;
                r->extra_allocated += (uint64_t)st.st_blocks * 512;
                e.flat_offset = foff;
            } else {
                return img_error_set(err, ENOTSUP, "%s: extent type %s is not supported",
                                     r->path, type);
            }
            v->ext = xreallocarray(v->ext, v->n + 1, sizeof(*v->ext));
            v->ext[v->n++] = e;
            Extent *pe = &v->ext[v->n - 1];
            if (e.type == EXT_SPARSE) {
                uint64_t doff, dlen;
                int ret = sparse_open(r, pe, &doff, &dlen, err);
                if (ret < 0)
                    return ret;
            } else if (e.type == EXT_FLAT && foff + e.size > e.file_size) {
                return img_error_set(err, EINVAL,
                                     "%s is truncated: flat extent %s holds less than the %llu "
                                     "bytes the descriptor gives it",
                                     r->path, e.path, (unsigned long long)e.size);
            }
            vpos += e.size;
            continue;
        }
        char *eq = strchr(l, '=');
        if (!eq)
            continue;
        *eq = 0;
        char *key = trim(l);
        if (STREQ(key, "createType"))
            unquote(eq + 1, info->create_type, sizeof(info->create_type));
        else if (STREQ(key, "parentFileNameHint"))
            unquote(eq + 1, info->parent_hint, sizeof(info->parent_hint));
        else if (STREQ(key, "parentCID")) {
            char cid[32];
            unquote(eq + 1, cid, sizeof(cid));
            info->has_parent = strcasecmp(cid, "ffffffff") != 0;
        }
    }
    return 0;
}

static int read_text(ImgReader *r, int fd, uint64_t off, uint64_t len, char **out,
                     ImgError *err)
{
    if (len > MAX_DESCRIPTOR)
        return img_error_set(err, EFBIG, "%s: VMDK descriptor is too large", r->path);
    char *t = xmalloc(len + 1);
    int ret = img_pread(r, fd, t, len, off, "VMDK descriptor", err);
    if (ret < 0) {
        free(t);
        return ret;
    }
    t[len] = 0;
    /* NULs end the text (embedded descriptors are NUL padded). */
    *out = t;
    return 0;
}

static int vmdk_open(ImgReader *r, const ImgOpenOptions *o, ImgChain *chain, ImgError *err)
{
    Vmdk *v = xnew0(Vmdk, 1);
    r->priv = v;
    uint8_t magic[4] = {0};
    if (r->file_size >= 4) {
        int ret = img_pread(r, r->fd, magic, 4, 0, "VMDK magic", err);
        if (ret < 0)
            return ret;
    }
    DescInfo info = {0};
    int ret;
    if (img_le32(magic) == VMDK_MAGIC || img_le32(magic) == VMDK_COWD_MAGIC) {
        Extent e = {.type = EXT_SPARSE, .fd = -1};
        e.fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 3);
        if (e.fd < 0)
            return img_error_set(err, errno, "%s: %s", r->path, strerror(errno));
        e.path = xstrdup(r->path);
        e.file_size = r->file_size;
        v->ext = xnew0(Extent, 1);
        v->ext[0] = e;
        v->n = 1;
        uint64_t doff, dlen;
        ret = sparse_open(r, &v->ext[0], &doff, &dlen, err);
        if (ret < 0)
            return ret;
        v->ext[0].size = v->ext[0].sp->capacity;
        if (doff && dlen && doff < r->file_size) {
            char *text;
            ret = read_text(r, r->fd, doff, MIN(dlen, r->file_size - doff), &text, err);
            if (ret < 0)
                return ret;
            ret = parse_descriptor(r, text, &info, NULL, chain, err);
            free(text);
            if (ret < 0)
                return ret;
        }
        if (!info.create_type[0])
            snprintf(info.create_type, sizeof(info.create_type), "%s",
                     v->ext[0].sp->markers ? "streamOptimized" : "monolithicSparse");
    } else {
        char *text;
        ret = read_text(r, r->fd, 0, r->file_size, &text, err);
        if (ret < 0)
            return ret;
        if (!looks_like_descriptor((const uint8_t *)text, strlen(text))) {
            free(text);
            return img_error_set(err, EINVAL, "%s is not a VMDK (no magic, no descriptor)",
                                 r->path);
        }
        ret = parse_descriptor(r, text, &info, v, chain, err);
        free(text);
        if (ret < 0)
            return ret;
        if (v->n == 0)
            return img_error_set(err, EINVAL, "%s: VMDK descriptor lists no extents", r->path);
    }
    snprintf(r->subformat, sizeof(r->subformat), "%.31s", info.create_type);
    for (size_t i = 0; i < v->n; i++)
        r->virtual_size += v->ext[i].size;
    if (info.has_parent) {
        if (!info.parent_hint[0] && !o->parent)
            return img_error_set(err, EINVAL, "%s is a VMDK delta without parentFileNameHint",
                                 r->path);
        r->parent_name = xstrdup(info.parent_hint);
        if (o->parent)
            r->parent = img_open_explicit(r, o->parent, o->parent_format, chain, err);
        else if (!(r->flags & IMG_OPEN_NO_BACKING))
            r->parent = img_open_parent(r, info.parent_hint, IMG_FORMAT_VMDK, chain, err);
        if (!r->parent && !(r->flags & IMG_OPEN_NO_BACKING))
            return -(err ? err->code : EINVAL);
    }
    return 0;
}

static Extent *find_extent(Vmdk *v, uint64_t off)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (off < v->ext[mid].start)
            hi = mid;
        else if (off >= v->ext[mid].start + v->ext[mid].size)
            lo = mid + 1;
        else
            return &v->ext[mid];
    }
    return NULL;
}

static int vmdk_read(ImgReader *r, uint64_t off, size_t len, uint8_t *buf, ImgError *err)
{
    Vmdk *v = r->priv;
    while (len > 0) {
        Extent *e = find_extent(v, off);
        if (!e)
            return img_error_set(err, EIO, "%s: no extent at offset %llu", r->path,
                                 (unsigned long long)off);
        uint64_t in = off - e->start;
        size_t n = (size_t)MIN(len, e->size - in);
        int ret = 0;
        switch (e->type) {
        case EXT_ZERO:
            memset(buf, 0, n);
            break;
        case EXT_FLAT:
            ret = img_pread(r, e->fd, buf, n, e->flat_offset + in, "flat extent", err);
            break;
        case EXT_SPARSE:
            ret = sparse_read(r, e, in, n, buf, err);
            break;
        }
        if (ret < 0)
            return ret;
        buf += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int vmdk_status(ImgReader *r, uint64_t off, uint64_t maxlen, ImgExtent *ext,
                       ImgError *err)
{
    Vmdk *v = r->priv;
    Extent *e = find_extent(v, off);
    if (!e)
        return img_error_set(err, EIO, "%s: no extent at offset %llu", r->path,
                             (unsigned long long)off);
    uint64_t in = off - e->start;
    uint64_t n = MIN(maxlen, e->size - in);
    ext->length = n;
    switch (e->type) {
    case EXT_ZERO:
        ext->kind = IMG_EXTENT_ZERO;
        return 0;
    case EXT_FLAT: {
        ext->kind = IMG_EXTENT_DATA;
        off_t d = lseek(e->fd, (off_t)(e->flat_offset + in), SEEK_DATA);
        if (d < 0 && errno == ENXIO) {
            ext->kind = IMG_EXTENT_ZERO;
        } else if (d > (off_t)(e->flat_offset + in)) {
            ext->kind = IMG_EXTENT_ZERO;
            ext->length = MIN(n, (uint64_t)d - (e->flat_offset + in));
        } else if (d >= 0) {
            off_t h = lseek(e->fd, (off_t)(e->flat_offset + in), SEEK_HOLE);
            if (h > d)
                ext->length = MIN(n, (uint64_t)h - (e->flat_offset + in));
        }
        return 0;
    }
    case EXT_SPARSE:
        return sparse_status(r, e, in, n, &ext->kind, &ext->length, err);
    }
    return 0;
}

static void vmdk_close(ImgReader *r)
{
    Vmdk *v = r->priv;
    for (size_t i = 0; i < v->n; i++) {
        if (v->ext[i].fd >= 0)
            close(v->ext[i].fd);
        free(v->ext[i].path);
        sparse_free(v->ext[i].sp);
    }
    free(v->ext);
    free(v);
    r->priv = NULL;
}

const ImgDriver img_driver_vmdk = {
    .name = "vmdk",
    .format = IMG_FORMAT_VMDK,
    .probe = vmdk_probe,
    .open = vmdk_open,
    .read = vmdk_read,
    .status = vmdk_status,
    .close = vmdk_close,
};
