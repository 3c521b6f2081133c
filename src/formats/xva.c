/*
 * XVA writer, reader and verifier (see xva.h for the format and the
 * contract). The writer reads each block straight into the output slot
 * (after room for its header), drops it again if it is zero, and lets the
 * tarstream worker thread write or compress while the next block is read.
 * The reader follows xapi's Stream_vdi.recv_all_vdi step by step and hands
 * data to the caller from the input ring without copying it.
 *
 * This file must not interpret ova.xml, touch the database or open disks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "formats/tarstream.h"
#include "formats/xva.h"
#include "formats/xva_internal.h"
#include "util/macros.h"
#include "util/memguard.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* Zero runs inside data are found at this granularity (like qemu-img -S 4k). */
#define ZERO_GRAIN 4096
/* Checksum members are 16 or 40 bytes; anything beyond this is refused. */
#define CHECKSUM_MEMBER_MAX 128

static const char XXH_EMPTY[] = "EF46DB3751D8E999";
static const char SHA1_EMPTY[] = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

/* ------------------------------------------------------------------ errors */

const char *xva_error_kind_name(XvaErrorKind kind)
{
    static const char *const names[XVA_ERROR__MAX] = {
        [XVA_ERROR_NONE] = "none",
        [XVA_ERROR_IO] = "io",
        [XVA_ERROR_CALLBACK] = "callback",
        [XVA_ERROR_CANCELLED] = "cancelled",
        [XVA_ERROR_UNEXPECTED_FILE] = "unexpected-file",
        [XVA_ERROR_TRUNCATED] = "truncated",
        [XVA_ERROR_INVALID] = "invalid",
        [XVA_ERROR_CHECKSUM] = "checksum",
        [XVA_ERROR_COMPRESSION] = "compression",
        [XVA_ERROR_LIMIT] = "limit",
        [XVA_ERROR_ARGUMENT] = "argument",
    };
    return (unsigned)kind < XVA_ERROR__MAX && names[kind] ? names[kind] : "?";
}

int xva_error_set(XvaError *err, XvaErrorKind kind, int code, const char *fmt, ...)
{
    if (err && err->kind == XVA_ERROR_NONE) {
        err->kind = kind;
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    /* A first error is kept: report its code so that return value and *err agree. */
    return err ? err->code : code;
}

void xva_escape_name(char *dst, size_t dstsize, const char *name)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 5 < dstsize; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
            dst[o++] = (char)*p;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[*p >> 4];
            dst[o++] = hex[*p & 15];
        }
    }
    if (dstsize)
        dst[MIN(o, dstsize - 1)] = '\0';
}

bool xva_is_zero(const void *buf, size_t n)
{
    const uint8_t *p = buf;
    if (n < 16) {
        for (size_t i = 0; i < n; i++) {
            if (p[i])
                return false;
        }
        return true;
    }
    for (size_t i = 0; i < 16; i++) {
        if (p[i])
            return false;
    }
    return memcmp(p, p + 16, n - 16) == 0;
}

bool xva_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > XVA_ID_MAX || STREQ(id, ".") || STREQ(id, ".."))
        return false;
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == ':' || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void hex_upper64(char out[17], uint64_t v)
{
    snprintf(out, 17, "%016" PRIX64, v);
}

static void hex_lower(char *out, const unsigned char *md, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool is_cancelled(const atomic_bool *c)
{
    return c && atomic_load_explicit(c, memory_order_relaxed);
}

/* ------------------------------------------------------------------ writer */

typedef struct Exporter {
    TarStreamOut *out;
    XXH64_state_t *xxh;
    EVP_MD_CTX *sha;
    const XvaExportOptions *opts;
    XvaChecksum checksum;
    XvaExportStats st;
    uint64_t done, total;
    uint64_t last_emit_ms;
    bool first_member_done;
    bool no_skip; /* the archive's first data member is short: write every block */
    XvaError *err;
} Exporter;

static int exp_out_error(Exporter *ex, const char *what)
{
    int r = tarstream_out_status(ex->out);
    if (r == 0)
        r = -EIO;
    if (r == -ECANCELED)
        return xva_error_set(ex->err, XVA_ERROR_CANCELLED, r, "the export was cancelled");
    return xva_error_set(ex->err, XVA_ERROR_IO, r, "writing the export stream failed (%s): %s", what,
                         strerror(-r));
}

static void exp_progress(Exporter *ex)
{
    if (ex->opts->progress)
        ex->opts->progress(ex->opts->progress_ctx, ex->done, ex->total);
}

/* The block's checksum (as stored in its checksum member), over its pieces. */
static size_t exp_checksum(Exporter *ex, const struct iovec *seg, unsigned n, char out[48])
{
    if (ex->checksum == XVA_CHECKSUM_SHA1) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        EVP_DigestInit_ex(ex->sha, EVP_sha1(), NULL);
        for (unsigned i = 0; i < n; i++)
            EVP_DigestUpdate(ex->sha, seg[i].iov_base, seg[i].iov_len);
        EVP_DigestFinal_ex(ex->sha, md, &mdlen);
        hex_lower(out, md, mdlen);
        return 40;
    }
    if (n == 1) {
        hex_upper64(out, XXH64(seg[0].iov_base, seg[0].iov_len, 0));
    } else {
        XXH64_reset(ex->xxh, 0);
        for (unsigned i = 0; i < n; i++)
            XXH64_update(ex->xxh, seg[i].iov_base, seg[i].iov_len);
        hex_upper64(out, XXH64_digest(ex->xxh));
    }
    return 16;
}

/* Writes the padding after len data bytes and the checksum member at t; returns bytes used. */
static size_t exp_trailer(Exporter *ex, uint8_t *t, const char *name, size_t len,
                          const char *csum, size_t clen)
{
    char cname[160];
    size_t pad = tarstream_padding(len);
    memset(t, 0, pad);
    snprintf(cname, sizeof(cname), "%s%s", name,
             ex->checksum == XVA_CHECKSUM_SHA1 ? ".checksum" : ".xxhash");
    uint8_t *c = t + pad;
    tarstream_header_encode(c, cname, clen, 0, 0644);
    memset(c + TARSTREAM_BLOCK, 0, TARSTREAM_BLOCK);
    memcpy(c + TARSTREAM_BLOCK, csum, clen);
    return pad + 2 * TARSTREAM_BLOCK;
}

static bool segs_zero(const struct iovec *seg, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (!xva_is_zero(seg[i].iov_base, seg[i].iov_len))
            return false;
    }
    return true;
}

/* What the exporter needs to know of a block's bytes: are they all zeros
 * (when they may be skipped), and their checksum. */
typedef struct BlockScan {
    Exporter *ex;
    const struct iovec *seg;
    unsigned n;
    bool check_zero;
    bool zero;
    char csum[48];
    size_t clen;
} BlockScan;

/* Only reads the block (mapped bytes are scanned under memguard_run()). */
static void block_scan(void *arg)
{
    BlockScan *sc = arg;
    sc->zero = sc->check_zero && segs_zero(sc->seg, sc->n);
    if (!sc->zero)
        sc->clen = exp_checksum(sc->ex, sc->seg, sc->n, sc->csum);
}

/*
 * Points seg at the block's bytes through the source's map callback.
 * Returns the number of pieces, 0 if the source declined (read instead),
 * or a negative errno (with *err set).
 */
#define MAP_SEGS 32
static int exp_map(Exporter *ex, const XvaExportDisk *d, uint64_t off, size_t len,
                   struct iovec seg[MAP_SEGS])
{
    unsigned n = 0;
    size_t got = 0;
    while (got < len) {
        if (n == MAP_SEGS)
            return 0;
        const void *ptr = NULL;
        ssize_t r = d->source.map(d->source.ctx, off + got, len - got, &ptr);
        if (r < 0)
            return xva_error_set(ex->err, XVA_ERROR_CALLBACK, (int)r,
                                 "mapping disk %s at offset %" PRIu64 " failed: %s", d->id,
                                 off + got, strerror((int)-r));
        if (r == 0)
            return 0;
        if ((size_t)r > len - got || !ptr)
            return xva_error_set(ex->err, XVA_ERROR_CALLBACK, -EIO,
                                 "mapping disk %s at offset %" PRIu64
                                 " returned an impossible length %zd",
                                 d->id, off + got, r);
        seg[n].iov_base = (void *)(uintptr_t)ptr;
        seg[n].iov_len = (size_t)r;
        n++;
        got += (size_t)r;
    }
    return (int)n;
}

/* Emits an empty member "prefix/%08d" and its checksum, as xapi's keep-alive. */
static int exp_keepalive(Exporter *ex, const char *prefix, uint64_t blockno)
{
    char name[128], cname[160];
    snprintf(name, sizeof(name), "%s/%08" PRIu64, prefix, blockno);
    bool sha = ex->checksum == XVA_CHECKSUM_SHA1;
    snprintf(cname, sizeof(cname), "%s%s", name, sha ? ".checksum" : ".xxhash");
    const char *csum = sha ? SHA1_EMPTY : XXH_EMPTY;
    uint8_t *p = tarstream_out_reserve(ex->out, 3 * TARSTREAM_BLOCK);
    if (!p)
        return exp_out_error(ex, "keep-alive");
    tarstream_header_encode(p, name, 0, 0, 0644);
    tarstream_header_encode(p + TARSTREAM_BLOCK, cname, strlen(csum), 0, 0644);
    memset(p + 2 * TARSTREAM_BLOCK, 0, TARSTREAM_BLOCK);
    memcpy(p + 2 * TARSTREAM_BLOCK, csum, strlen(csum));
    tarstream_out_commit(ex->out, 3 * TARSTREAM_BLOCK);
    ex->st.keepalives++;
    ex->last_emit_ms = now_ms();
    /* A keep-alive is pointless until it leaves: write it (and whatever is pending) now. */
    if (tarstream_out_flush(ex->out) < 0)
        return exp_out_error(ex, "keep-alive");
    return 0;
}

static bool exp_keepalive_due(Exporter *ex, uint64_t blockno)
{
    return ex->opts->keepalive_ms && blockno < 99999999 &&
           now_ms() - ex->last_emit_ms >= ex->opts->keepalive_ms;
}

static int exp_disk(Exporter *ex, const char *prefix, const XvaExportDisk *d)
{
    const uint64_t size = d->size;
    const uint64_t last_start = size ? (size - 1) / XVA_BLOCK_SIZE * XVA_BLOCK_SIZE : 0;
    const XvaDiskSource *src = &d->source;
    uint64_t ext_end = 0; /* allocation known for [.., ext_end) */
    bool ext_alloc = true;
    uint64_t off = 0, blockno = 0;
    char name[128];

    if (!src->block_status)
        ext_end = size;
    while (off < size) {
        if (is_cancelled(ex->opts->cancel))
            return xva_error_set(ex->err, XVA_ERROR_CANCELLED, -ECANCELED,
                                 "the export was cancelled");
        const size_t len = (size_t)MIN((uint64_t)XVA_BLOCK_SIZE, size - off);
        const bool must = off == 0 || off == last_start || ex->no_skip;

        /* Is any byte of [off, off+len) allocated? */
        bool any = false;
        for (uint64_t pos = off; pos < off + len;) {
            if (pos >= ext_end) {
                bool a = true;
                uint64_t run = 0;
                int r = src->block_status(src->ctx, pos, size - pos, &a, &run);
                if (r < 0)
                    return xva_error_set(ex->err, XVA_ERROR_CALLBACK, r,
                                         "querying the allocation of disk %s at offset %" PRIu64
                                         " failed: %s",
                                         d->id, pos, strerror(-r));
                if (run == 0 || run > size - pos)
                    return xva_error_set(ex->err, XVA_ERROR_CALLBACK, -EIO,
                                         "the allocation query of disk %s at offset %" PRIu64
                                         " returned an impossible length %" PRIu64,
                                         d->id, pos, run);
                ext_alloc = a;
                ext_end = pos + run;
            }
            if (ext_alloc) {
                any = true;
                break;
            }
            pos = ext_end;
        }

        if (!any && !must) {
            if (exp_keepalive_due(ex, blockno)) {
                int r = exp_keepalive(ex, prefix, blockno);
                if (r < 0)
                    return r;
                blockno++;
                continue; /* same offset, next number, as xapi */
            }
            /* Whole blocks inside the hole, stopping before the last block. */
            uint64_t end = MIN(ext_end, last_start);
            uint64_t n = end > off ? (end - off) / XVA_BLOCK_SIZE : 0;
            if (n == 0)
                n = 1;
            off += n * XVA_BLOCK_SIZE;
            blockno += n;
            ex->st.blocks_zero += n;
            ex->done += n * XVA_BLOCK_SIZE;
            exp_progress(ex);
            continue;
        }

        /* The block's bytes: mapped in place, or read into the output slot. */
        struct iovec seg[MAP_SEGS];
        int nseg = 0;
        uint8_t *p = NULL;
        if (any && src->map) {
            nseg = exp_map(ex, d, off, len, seg);
            if (nseg < 0)
                return nseg;
        }
        if (nseg == 0) {
            p = tarstream_out_reserve(ex->out, len + 4 * TARSTREAM_BLOCK);
            if (!p)
                return exp_out_error(ex, "data");
            uint8_t *data = p + TARSTREAM_BLOCK;
            if (any) {
                int r = src->read(src->ctx, off, len, data);
                if (r < 0)
                    return xva_error_set(ex->err, XVA_ERROR_CALLBACK, r,
                                         "reading disk %s at offset %" PRIu64 " failed: %s",
                                         d->id, off, strerror(-r));
            } else {
                memset(data, 0, len);
            }
            seg[0].iov_base = data;
            seg[0].iov_len = len;
            nseg = 1;
        }
        if (any)
            ex->st.bytes_read += len;
        BlockScan sc = {.ex = ex, .seg = seg, .n = (unsigned)nseg, .check_zero = !must};
        if (p) {
            block_scan(&sc);
        } else if (memguard_run(block_scan, &sc) < 0) {
            return xva_error_set(ex->err, XVA_ERROR_CALLBACK, -EIO,
                                 "reading disk %s at offset %" PRIu64
                                 " failed: its image file shrank or could not be read",
                                 d->id, off);
        }
        if (sc.zero) {
            if (exp_keepalive_due(ex, blockno)) {
                int r = exp_keepalive(ex, prefix, blockno);
                if (r < 0)
                    return r;
                blockno++;
            }
            blockno++;
            off += len;
            ex->st.blocks_zero++;
            ex->done += len;
            exp_progress(ex);
            continue;
        }
        snprintf(name, sizeof(name), "%s/%08" PRIu64, prefix, blockno);
        const char *csum = sc.csum;
        size_t clen = sc.clen;
        if (p) {
            /* Read into the slot: header before it, trailer after it, one commit. */
            tarstream_header_encode(p, name, len, 0, 0644);
            size_t t = exp_trailer(ex, p + TARSTREAM_BLOCK + len, name, len, csum, clen);
            tarstream_out_commit(ex->out, TARSTREAM_BLOCK + len + t);
        } else {
            /* Mapped: the header, the data by reference, the trailer. */
            uint8_t *h = tarstream_out_reserve(ex->out, TARSTREAM_BLOCK);
            if (!h)
                return exp_out_error(ex, "data");
            tarstream_header_encode(h, name, len, 0, 0644);
            tarstream_out_commit(ex->out, TARSTREAM_BLOCK);
            for (int i = 0; i < nseg; i++) {
                if (tarstream_out_attach(ex->out, seg[i].iov_base, seg[i].iov_len) < 0)
                    return exp_out_error(ex, "data");
            }
            uint8_t *t = tarstream_out_reserve(ex->out, 3 * TARSTREAM_BLOCK);
            if (!t)
                return exp_out_error(ex, "data");
            tarstream_out_commit(ex->out, exp_trailer(ex, t, name, len, csum, clen));
        }
        if (!ex->first_member_done) {
            ex->first_member_done = true;
            /* xapi's reader measures gaps in units of the first member's size. */
            if (len < XVA_BLOCK_SIZE)
                ex->no_skip = true;
        }
        ex->last_emit_ms = now_ms();
        ex->st.blocks++;
        blockno++;
        off += len;
        ex->done += len;
        exp_progress(ex);
    }
    return 0;
}

static int cmp_disk_ptr(const void *a, const void *b)
{
    const XvaExportDisk *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

static int exp_run(int fd, const char *raw_prefix, const void *ova_xml, size_t ova_xml_len,
                   const XvaExportDisk *disks, size_t n_disks, const XvaExportOptions *opts_in,
                   XvaExportStats *stats, XvaError *err)
{
    static const XvaExportOptions defaults;
    const XvaExportOptions *opts = opts_in ? opts_in : &defaults;
    if (err)
        memset(err, 0, sizeof(*err));
    if (stats)
        memset(stats, 0, sizeof(*stats));

    Exporter ex = {.opts = opts, .err = err};
    ex.checksum = opts->checksum;
    if (ex.checksum == XVA_CHECKSUM_DEFAULT)
        ex.checksum = raw_prefix ? XVA_CHECKSUM_SHA1 : XVA_CHECKSUM_XXHASH;
    if ((unsigned)ex.checksum >= XVA_CHECKSUM__MAX ||
        (unsigned)opts->compression >= XVA_COMPRESSION__MAX)
        return xva_error_set(err, XVA_ERROR_ARGUMENT, -EINVAL, "unknown checksum or compression");
    if (n_disks > XVA_MAX_DISKS)
        return xva_error_set(err, XVA_ERROR_LIMIT, -EFBIG, "too many disks (%zu, at most %d)",
                             n_disks, XVA_MAX_DISKS);

    const XvaExportDisk **order = xnew0(const XvaExportDisk *, n_disks ? n_disks : 1);
    for (size_t i = 0; i < n_disks; i++) {
        const XvaExportDisk *d = &disks[i];
        char esc[128];
        xva_escape_name(esc, sizeof(esc), d->id ? d->id : "(null)");
        if (!raw_prefix && (!d->id || !xva_id_valid(d->id))) {
            free(order);
            return xva_error_set(err, XVA_ERROR_ARGUMENT, -EINVAL,
                                 "disk id '%s' is not usable as an archive directory", esc);
        }
        if (d->size > XVA_WRITE_MAX_DISK_SIZE) {
            free(order);
            return xva_error_set(err, XVA_ERROR_LIMIT, -EFBIG,
                                 "disk %s is too large for the XVA format (%" PRIu64
                                 " bytes; at most %llu)",
                                 esc, d->size, (unsigned long long)XVA_WRITE_MAX_DISK_SIZE);
        }
        if (d->size && !d->source.read) {
            free(order);
            return xva_error_set(err, XVA_ERROR_ARGUMENT, -EINVAL, "disk %s has no read callback",
                                 esc);
        }
        order[i] = d;
        ex.total += d->size;
    }
    if (!raw_prefix) {
        qsort(order, n_disks, sizeof(*order), cmp_disk_ptr);
        for (size_t i = 1; i < n_disks; i++) {
            if (STREQ(order[i]->id, order[i - 1]->id)) {
                char esc[128];
                xva_escape_name(esc, sizeof(esc), order[i]->id);
                free(order);
                return xva_error_set(err, XVA_ERROR_ARGUMENT, -EINVAL,
                                     "disk id %s is used twice", esc);
            }
        }
    }

    TarStreamOutConfig oc = {
        .fd = fd,
        .level = opts->level,
        .zstd_workers = opts->zstd_workers,
        .cancel = opts->cancel,
        .threaded = !opts->no_threads,
    };
    oc.compression = opts->compression == XVA_COMPRESSION_GZIP   ? TARSTREAM_COMPRESSION_GZIP
                     : opts->compression == XVA_COMPRESSION_ZSTD ? TARSTREAM_COMPRESSION_ZSTD
                                                                 : TARSTREAM_COMPRESSION_NONE;
    int oerr = 0;
    ex.out = tarstream_out_new(&oc, &oerr);
    if (!ex.out) {
        free(order);
        return xva_error_set(err, XVA_ERROR_ARGUMENT, oerr,
                             "cannot set up the %s output (level %d): %s",
                             tarstream_compression_name(oc.compression), opts->level,
                             strerror(-oerr));
    }
    ex.last_emit_ms = now_ms();
    ex.xxh = XXH64_createState();
    ex.sha = EVP_MD_CTX_new();
    if (!ex.xxh || !ex.sha)
        abort();

    int r = 0;
    if (!raw_prefix) {
        int64_t mtime = opts->mtime ? opts->mtime : (int64_t)time(NULL);
        r = tarstream_out_member(ex.out, XVA_OVA_XML, ova_xml, ova_xml_len,
                                 mtime > 0 ? (uint64_t)mtime : 0);
        if (r < 0)
            r = exp_out_error(&ex, "ova.xml");
    }
    for (size_t i = 0; r == 0 && i < n_disks; i++)
        r = exp_disk(&ex, raw_prefix ? raw_prefix : order[i]->id, order[i]);
    if (r == 0 && tarstream_out_end(ex.out) < 0)
        r = exp_out_error(&ex, "end of archive");
    if (r == 0) {
        if (tarstream_out_finish(ex.out) < 0)
            r = exp_out_error(&ex, "flush");
    }
    ex.st.bytes_tar = tarstream_out_bytes_in(ex.out);
    ex.st.bytes_written = tarstream_out_bytes_out(ex.out);
    tarstream_out_free(ex.out);
    XXH64_freeState(ex.xxh);
    EVP_MD_CTX_free(ex.sha);
    free(order);
    if (stats)
        *stats = ex.st;
    return r;
}

int xva_export(int fd, const void *ova_xml, size_t ova_xml_len, const XvaExportDisk *disks,
               size_t n_disks, const XvaExportOptions *opts, XvaExportStats *stats, XvaError *err)
{
    return exp_run(fd, NULL, ova_xml, ova_xml_len, disks, n_disks, opts, stats, err);
}

int xva_export_raw_tar(int fd, const XvaExportDisk *disk, const XvaExportOptions *opts,
                       XvaExportStats *stats, XvaError *err)
{
    return exp_run(fd, XVA_RAW_TAR_PREFIX, NULL, 0, disk, 1, opts, stats, err);
}

/* ------------------------------------------------------------------ plans */

typedef struct PlanDisk {
    char id[XVA_ID_MAX + 1];
    uint64_t size;
} PlanDisk;

struct XvaPlan {
    PlanDisk *disks;
    size_t n, alloc;
};

int xva_plan_add_disk(XvaPlan *plan, const char *id, uint64_t size)
{
    if (!id || !xva_id_valid(id))
        return -EINVAL;
    if (size > XVA_READ_MAX_DISK_SIZE)
        return -EFBIG;
    if (plan->n >= XVA_MAX_DISKS)
        return -E2BIG;
    for (size_t i = 0; i < plan->n; i++) {
        if (STREQ(plan->disks[i].id, id))
            return -EEXIST;
    }
    XGROW(plan->disks, plan->n + 1, plan->alloc);
    PlanDisk *d = &plan->disks[plan->n];
    memset(d, 0, sizeof(*d));
    memcpy(d->id, id, strlen(id) + 1);
    d->size = size;
    return (int)plan->n++;
}

static ssize_t plan_find(const XvaPlan *plan, const char *id, size_t idlen)
{
    for (size_t i = 0; i < plan->n; i++) {
        if (strlen(plan->disks[i].id) == idlen && memcmp(plan->disks[i].id, id, idlen) == 0)
            return (ssize_t)i;
    }
    return -1;
}

/* ------------------------------------------------------------------ reader */

typedef struct Importer {
    TarStreamIn *in;
    const XvaImportSink *sink;
    const XvaImportOptions *opts;
    XvaError *err;
    XvaImportStats st;
    int64_t first_len; /* -1 until the first data member of the archive */
    bool want_sha1;    /* compute SHA-1 while reading data */
    bool sha1_seen;
    XXH64_state_t *xxh;
    EVP_MD_CTX *sha;
    XvaSinkWriter w;
    uint64_t done, total;
} Importer;

typedef struct DiskState {
    size_t index;
    char id[XVA_ID_MAX + 1];
    size_t idlen;
    uint64_t size; /* virtual size, or the reader's limit when discovering */
    uint64_t offset;
    char last_suffix[16];
    int64_t last_num;
    uint64_t blocks;
} DiskState;

static void disk_state_init(DiskState *ds, size_t index, const char *id, uint64_t size)
{
    memset(ds, 0, sizeof(*ds));
    ds->index = index;
    ds->idlen = strlen(id);
    memcpy(ds->id, id, ds->idlen + 1);
    ds->size = size;
    memcpy(ds->last_suffix, "-1", 3);
    ds->last_num = -1;
}

/* Maps a failure of the input stream (r < 0) to an XvaError. */
static int imp_in_error(Importer *im, int r, const char *where)
{
    const char *msg = "";
    TarStreamErrorKind k = tarstream_in_error(im->in, &msg);
    if (r == -ENODATA)
        return xva_error_set(im->err, XVA_ERROR_TRUNCATED, r, "the stream ends early (%s)",
                             where);
    switch (k) {
    case TARSTREAM_ERROR_COMPRESSION:
        return xva_error_set(im->err, XVA_ERROR_COMPRESSION, r, "%s (%s)", msg, where);
    case TARSTREAM_ERROR_CANCELLED:
        return xva_error_set(im->err, XVA_ERROR_CANCELLED, -ECANCELED, "the import was cancelled");
    default:
        if (r == -ECANCELED)
            return xva_error_set(im->err, XVA_ERROR_CANCELLED, r, "the import was cancelled");
        if (k == TARSTREAM_ERROR_IO && msg[0])
            return xva_error_set(im->err, XVA_ERROR_IO, r, "%s (%s)", msg, where);
        return xva_error_set(im->err, XVA_ERROR_IO, r, "reading the stream failed (%s): %s",
                             where, strerror(-r));
    }
}

static int imp_cb_error(Importer *im, int r, const char *what, const DiskState *ds,
                        uint64_t off)
{
    return xva_error_set(im->err, XVA_ERROR_CALLBACK, r < 0 ? r : -EIO,
                         "%s disk %s at offset %" PRIu64 " failed: %s", what, ds->id, off,
                         strerror(r < 0 ? -r : EIO));
}

/* ------------------------------------------------------- delivery to sinks */

static int sink_cb_error(XvaSinkWriter *w, int r, const char *what, const char *id, uint64_t off)
{
    return xva_error_set(w->err, XVA_ERROR_CALLBACK, r < 0 ? r : -EIO,
                         "%s disk %s at offset %" PRIu64 " failed: %s", what, id, off,
                         strerror(r < 0 ? -r : EIO));
}

int xva_sink_flush(XvaSinkWriter *w, const char *id)
{
    if (!w->zpend)
        return 0;
    w->zpend = false;
    w->st->bytes_zero += w->zlen;
    if (w->sink && w->sink->zero) {
        int r = w->sink->zero(w->sink->ctx, w->zdisk, w->zoff, w->zlen);
        if (r < 0)
            return sink_cb_error(w, r, "zeroing", id, w->zoff);
    }
    return 0;
}

int xva_sink_zero(XvaSinkWriter *w, size_t disk, const char *id, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    if (w->zpend && w->zdisk == disk && w->zoff + w->zlen == off) {
        w->zlen += len;
        return 0;
    }
    int r = xva_sink_flush(w, id);
    if (r < 0)
        return r;
    w->zpend = true;
    w->zdisk = disk;
    w->zoff = off;
    w->zlen = len;
    return 0;
}

/* Largest piece of a member scanned at once: hashed and handed on while
 * still in cache; its 4 KiB grains make at most 65 runs. */
#define PIECE_MAX (256 * KiB)
/* Runs of 4 KiB grains that are all zeros or all not. */
#define SCAN_RUNS_MAX (PIECE_MAX / ZERO_GRAIN + 2)
typedef struct ZeroScan {
    const uint8_t *p;
    size_t n;
    uint64_t off;
    size_t nruns;
    struct {
        size_t start, end;
        bool zero;
    } runs[SCAN_RUNS_MAX];
} ZeroScan;

/* Splits [0, n) into runs; stops early (nruns == SCAN_RUNS_MAX) if full. */
static void zero_scan(void *arg)
{
    ZeroScan *z = arg;
    size_t i = 0;
    z->nruns = 0;
    while (i < z->n && z->nruns < SCAN_RUNS_MAX) {
        size_t ge = MIN(z->n, i + (size_t)(ZERO_GRAIN - (z->off + i) % ZERO_GRAIN));
        bool zero = xva_is_zero(z->p + i, ge - i);
        size_t j = ge;
        while (j < z->n) {
            size_t e = MIN(z->n, j + ZERO_GRAIN);
            if (xva_is_zero(z->p + j, e - j) != zero)
                break;
            j = e;
        }
        z->runs[z->nruns].start = i;
        z->runs[z->nruns].end = j;
        z->runs[z->nruns].zero = zero;
        z->nruns++;
        i = j;
    }
}

/* Hands the scanned runs of z (at disk offset z->off) to the sink. */
static int sink_runs(XvaSinkWriter *w, size_t disk, const char *id, const ZeroScan *z)
{
    for (size_t k = 0; k < z->nruns; k++) {
        uint64_t at = z->off + z->runs[k].start;
        size_t len = z->runs[k].end - z->runs[k].start;
        const uint8_t *q = z->p + z->runs[k].start;
        int r;
        if (z->runs[k].zero) {
            r = xva_sink_zero(w, disk, id, at, len);
        } else {
            r = xva_sink_flush(w, id);
            if (r == 0 && w->sink) {
                if (w->stable)
                    r = w->sink->write_ref(w->sink->ctx, disk, at, q, len);
                else if (w->sink->write)
                    r = w->sink->write(w->sink->ctx, disk, at, q, len);
                if (r < 0)
                    r = sink_cb_error(w, r, "writing", id, at);
            }
            w->st->bytes_data += len;
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int xva_sink_data(XvaSinkWriter *w, size_t disk, const char *id, uint64_t off, const uint8_t *p,
                  size_t n)
{
    /* Copied data only: mapped data is scanned under memguard_run() (imp_member). */
    size_t done = 0;
    while (done < n) {
        ZeroScan z = {.p = p + done, .n = n - done, .off = off + done};
        zero_scan(&z);
        int r = sink_runs(w, disk, id, &z);
        if (r < 0)
            return r;
        done += z.runs[z.nruns - 1].end;
    }
    return 0;
}

static int imp_zero(Importer *im, const DiskState *ds, uint64_t off, uint64_t len)
{
    return xva_sink_zero(&im->w, ds->index, ds->id, off, len);
}

static int imp_flush_zero(Importer *im, const DiskState *ds)
{
    return xva_sink_flush(&im->w, ds->id);
}

static void imp_progress(Importer *im, uint64_t done)
{
    if (im->opts->progress)
        im->opts->progress(im->opts->progress_ctx, done, im->total);
}

/* True for names no archive of ours has: absolute, "..", empty components. */
static bool name_unsafe(const char *name)
{
    if (name[0] == '/' || name[0] == '\0')
        return true;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.'))
            return true;
        p += n + (e ? 1 : 0);
        if (e && !*p)
            return true; /* trailing '/' */
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return true;
    }
    return false;
}

static int imp_unexpected(Importer *im, const char *expected, const char *found, const char *fmt,
                          ...) HX_PRINTF(4, 5);
static int imp_unexpected(Importer *im, const char *expected, const char *found, const char *fmt,
                          ...)
{
    XvaError *e = im->err;
    if (e && e->kind == XVA_ERROR_NONE) {
        snprintf(e->expected, sizeof(e->expected), "%s", expected);
        xva_escape_name(e->found, sizeof(e->found), found);
        e->kind = XVA_ERROR_UNEXPECTED_FILE;
        e->code = -EBADMSG;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

/* Reads the next header; maps errors. Returns TARSTREAM_NEXT_* or < 0. */
static int imp_next(Importer *im, TarStreamHeader *h, const char *where)
{
    const char *why = NULL;
    int r = tarstream_in_next(im->in, h, &why);
    if (r == -EBADMSG)
        return xva_error_set(im->err, XVA_ERROR_INVALID, r, "%s (%s, at byte %" PRIu64 ")", why,
                             where, tarstream_in_offset(im->in));
    if (r == -ENODATA && why)
        return xva_error_set(im->err, XVA_ERROR_TRUNCATED, r, "%s (%s)", why, where);
    if (r < 0)
        return imp_in_error(im, r, where);
    return r;
}

/* A piece of a data member: hashed, and split into zero and data runs. */
typedef struct PieceScan {
    Importer *im;
    bool sha;
    ZeroScan z;
} PieceScan;

/* Only reads the piece, so that mapped data can be scanned under memguard_run(). */
static void piece_scan(void *arg)
{
    PieceScan *ps = arg;
    XXH64_update(ps->im->xxh, ps->z.p, ps->z.n);
    if (ps->sha)
        EVP_DigestUpdate(ps->im->sha, ps->z.p, ps->z.n);
    zero_scan(&ps->z);
}

/*
 * Receives one data member of disk ds whose header is h (its name already
 * known to start with "<id>/") and the checksum member after it.
 */
static int imp_member(Importer *im, DiskState *ds, const TarStreamHeader *h)
{
    char esc[300];
    xva_escape_name(esc, sizeof(esc), h->name);
    const char *suffix = h->name + ds->idlen + 1;
    size_t slen = strlen(suffix);
    if (slen == 0 || slen > 10 || strspn(suffix, "0123456789") != slen)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "member '%s' of disk %s is neither a block nor its checksum "
                             "(Invalid XVA file)",
                             esc, ds->id);
    if (h->type != TARSTREAM_TYPE_REGULAR)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "member '%s' is not a regular file (type '%c')", esc,
                             h->typeflag ? h->typeflag : '0');
    if (strcmp(suffix, ds->last_suffix) <= 0)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "block numbers of disk %s must increase: '%s' follows '%s' "
                             "(Invalid XVA file)",
                             ds->id, suffix, ds->last_suffix);
    int64_t num = (int64_t)strtoull(suffix, NULL, 10);
    int64_t gap = num - ds->last_num - 1;
    if (gap < 0)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "block number %s of disk %s is lower than the previous one %s",
                             suffix, ds->id, ds->last_suffix);
    uint64_t room = ds->size - ds->offset;
    uint64_t skip = 0;
    if (gap > 0 && im->first_len > 0) {
        if ((uint64_t)gap > room / (uint64_t)im->first_len)
            return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                                 "block %s of disk %s lies beyond its virtual size %" PRIu64,
                                 esc, ds->id, ds->size);
        skip = (uint64_t)gap * (uint64_t)im->first_len;
    }
    if (h->size > room - skip)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "block %s (%" PRIu64 " bytes at offset %" PRIu64
                             ") goes past the end of disk %s (virtual size %" PRIu64 ")",
                             esc, h->size, ds->offset + skip, ds->id, ds->size);
    int r = imp_zero(im, ds, ds->offset, skip);
    if (r < 0)
        return r;

    /* The data, hashed on the way through. */
    uint64_t off = ds->offset + skip;
    bool sha = im->want_sha1;
    XXH64_reset(im->xxh, 0);
    if (sha)
        EVP_DigestInit_ex(im->sha, EVP_sha1(), NULL);
    for (uint64_t left = h->size; left > 0;) {
        const uint8_t *p;
        /* Small pieces: each is hashed and handed on while still in cache. */
        ssize_t n = tarstream_in_peek(im->in, &p, (size_t)MIN(left, (uint64_t)PIECE_MAX));
        if (n < 0)
            return imp_in_error(im, (int)n, esc);
        if (n == 0)
            return xva_error_set(im->err, XVA_ERROR_TRUNCATED, -ENODATA,
                                 "the stream ends inside block %s", esc);
        PieceScan ps = {im, sha, {.p = p, .n = (size_t)n, .off = off}};
        if (!im->w.stable)
            piece_scan(&ps);
        else if (memguard_run(piece_scan, &ps) < 0)
            return xva_error_set(im->err, XVA_ERROR_IO, -EIO,
                                 "reading block %s failed: the file shrank while being read, "
                                 "or its disk failed",
                                 esc);
        r = sink_runs(&im->w, ds->index, ds->id, &ps.z);
        if (r < 0)
            return r;
        tarstream_in_advance(im->in, (size_t)n);
        off += (uint64_t)n;
        left -= (uint64_t)n;
    }
    r = tarstream_in_skip(im->in, tarstream_padding(h->size));
    if (r < 0)
        return imp_in_error(im, r, esc);

    /* The checksum member. */
    TarStreamHeader c;
    r = imp_next(im, &c, "checksum member");
    if (r < 0)
        return r;
    if (r != TARSTREAM_NEXT_HEADER)
        return xva_error_set(im->err, XVA_ERROR_TRUNCATED, -ENODATA,
                             "the archive ends before the checksum of block %s", esc);
    char cesc[300];
    xva_escape_name(cesc, sizeof(cesc), c.name);
    size_t nlen = strlen(h->name);
    const char *ext = c.name + nlen;
    bool is_xxh = false, is_sha = false;
    if (strncmp(c.name, h->name, nlen) == 0) {
        is_xxh = STREQ(ext, ".xxhash");
        is_sha = STREQ(ext, ".checksum");
    }
    if (!is_xxh && !is_sha) {
        if (strncmp(c.name, h->name, nlen) == 0 && ext[0] == '.')
            return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                                 "Found unsupported checksum file: %s", cesc);
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "expected the checksum of block %s (.xxhash or .checksum), "
                             "found '%s'",
                             esc, cesc);
    }
    if (c.type != TARSTREAM_TYPE_REGULAR || c.size > CHECKSUM_MEMBER_MAX)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "checksum member '%s' is not a short regular file", cesc);
    char stored[CHECKSUM_MEMBER_MAX + 1];
    r = tarstream_in_read(im->in, stored, (size_t)c.size);
    if (r == 0)
        r = tarstream_in_skip(im->in, tarstream_padding(c.size));
    if (r < 0)
        return imp_in_error(im, r, cesc);
    stored[c.size] = '\0';

    char computed[48] = "";
    bool can_check = true;
    if (is_xxh) {
        hex_upper64(computed, XXH64_digest(im->xxh));
        im->want_sha1 = im->sha1_seen;
    } else {
        im->sha1_seen = im->want_sha1 = true;
        if (sha) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned mdlen = 0;
            EVP_DigestFinal_ex(im->sha, md, &mdlen);
            hex_lower(computed, md, mdlen);
        } else {
            can_check = false;
        }
    }
    bool ok = can_check && strlen(computed) == c.size && memcmp(stored, computed, c.size) == 0;
    if (ok) {
        if (is_xxh)
            im->st.checksums_xxhash++;
        else
            im->st.checksums_sha1++;
    } else if (im->opts->force) {
        im->st.checksum_mismatches++;
    } else if (!can_check) {
        return xva_error_set(im->err, XVA_ERROR_CHECKSUM, -EBADMSG,
                             "block %s cannot be verified: the archive switched from .xxhash "
                             "to .checksum members (import with force to accept it)",
                             esc);
    } else {
        char sesc[300];
        xva_escape_name(sesc, sizeof(sesc), stored);
        return xva_error_set(im->err, XVA_ERROR_CHECKSUM, -EBADMSG,
                             "Block %s checksum failed: original = %s; recomputed = %s", esc,
                             sesc, computed);
    }

    ds->offset += skip + h->size;
    memcpy(ds->last_suffix, suffix, slen + 1);
    ds->last_num = num;
    ds->blocks++;
    im->st.blocks++;
    if (h->size == 0)
        im->st.keepalives++;
    return 0;
}

/* Checks a header read for a data member: kind, name safety. */
static int imp_check_data_header(Importer *im, const TarStreamHeader *h, const char *expected)
{
    char esc[300];
    xva_escape_name(esc, sizeof(esc), h->name);
    if (h->type == TARSTREAM_TYPE_DIRECTORY)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "member '%s' is a directory; XVA archives hold regular files only "
                             "(expected %s)",
                             esc, expected);
    if (name_unsafe(h->name))
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "unsafe member name '%s' (absolute, '..', empty component or "
                             "control character)",
                             esc);
    return 0;
}

static int imp_disk_begin(Importer *im, const DiskState *ds, uint64_t size)
{
    if (im->sink && im->sink->disk_begin) {
        int r = im->sink->disk_begin(im->sink->ctx, ds->index, ds->id, size);
        if (r < 0)
            return imp_cb_error(im, r, "starting", ds, 0);
    }
    return 0;
}

static int imp_disk_end(Importer *im, const DiskState *ds)
{
    int r = imp_flush_zero(im, ds);
    if (r < 0)
        return r;
    if (im->sink && im->sink->disk_end) {
        r = im->sink->disk_end(im->sink->ctx, ds->index, ds->offset);
        if (r < 0)
            return imp_cb_error(im, r, "finishing", ds, ds->offset);
    }
    return 0;
}

/* Receives a disk of known size, exactly as xapi's recv_all_vdi. */
static int imp_disk_planned(Importer *im, DiskState *ds, uint64_t done_before)
{
    int r = imp_disk_begin(im, ds, ds->size);
    if (r < 0)
        return r;
    char where[128];
    snprintf(where, sizeof(where), "block header of disk %s", ds->id);
    while (ds->offset < ds->size) {
        if (is_cancelled(im->opts->cancel))
            return xva_error_set(im->err, XVA_ERROR_CANCELLED, -ECANCELED,
                                 "the import was cancelled");
        TarStreamHeader h;
        r = imp_next(im, &h, where);
        if (r < 0)
            return r;
        if (r != TARSTREAM_NEXT_HEADER)
            return xva_error_set(im->err, XVA_ERROR_TRUNCATED, -ENODATA,
                                 "the archive ends before disk %s is complete (%" PRIu64
                                 " of %" PRIu64 " bytes)",
                                 ds->id, ds->offset, ds->size);
        if (im->first_len < 0)
            im->first_len = h.size > INT64_MAX ? INT64_MAX : (int64_t)h.size;
        char expected[XVA_ID_MAX + 16];
        snprintf(expected, sizeof(expected), "%s/", ds->id);
        r = imp_check_data_header(im, &h, expected);
        if (r < 0)
            return r;
        if (strncmp(h.name, ds->id, ds->idlen) != 0 || h.name[ds->idlen] != '/') {
            char esc[300];
            xva_escape_name(esc, sizeof(esc), h.name);
            return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                                 "expected a block of disk %s (%" PRIu64 " of %" PRIu64
                                 " bytes received), found '%s' (Invalid XVA file)",
                                 ds->id, ds->offset, ds->size, esc);
        }
        r = imp_member(im, ds, &h);
        if (r < 0)
            return r;
        imp_progress(im, done_before + ds->offset);
    }
    return imp_disk_end(im, ds);
}

static int cmp_plan_idx(const void *a, const void *b, void *arg)
{
    const XvaPlan *plan = arg;
    return strcmp(plan->disks[*(const size_t *)a].id, plan->disks[*(const size_t *)b].id);
}

static void imp_init(Importer *im, const XvaInput *input, const XvaImportSink *sink,
                     const XvaImportOptions *opts, XvaError *err)
{
    memset(im, 0, sizeof(*im));
    im->sink = sink;
    im->opts = opts;
    im->err = err;
    im->first_len = -1;
    im->want_sha1 = true;
    im->w.sink = sink;
    im->w.err = err;
    im->w.st = &im->st;
    im->xxh = XXH64_createState();
    im->sha = EVP_MD_CTX_new();
    if (!im->xxh || !im->sha)
        abort();
    TarStreamInConfig cfg = {
        .fd = input->fd,
        .read = input->read,
        .read_ctx = input->ctx,
        .compression = TARSTREAM_COMPRESSION_AUTO,
        .threaded = !opts->no_threads && !input->read,
        .cancel = opts->cancel,
        .map = input->map && sink && sink->write_ref,
    };
    im->in = tarstream_in_new(&cfg);
    im->w.stable = tarstream_in_stable(im->in);
}

/* A failed import of mapped data: the sink lets go of it before it is unmapped. */
static void imp_stop(Importer *im, int r)
{
    if (r < 0 && im->w.stable && im->sink->stop)
        im->sink->stop(im->sink->ctx);
}

static void imp_release(Importer *im, XvaImportStats *stats)
{
    TarStreamCompression c = tarstream_in_compression(im->in);
    im->st.compression = c == TARSTREAM_COMPRESSION_GZIP   ? XVA_COMPRESSION_GZIP
                         : c == TARSTREAM_COMPRESSION_ZSTD ? XVA_COMPRESSION_ZSTD
                                                           : XVA_COMPRESSION_NONE;
    im->st.bytes_in = tarstream_in_offset(im->in);
    if (stats)
        *stats = im->st;
    tarstream_in_free(im->in);
    XXH64_freeState(im->xxh);
    EVP_MD_CTX_free(im->sha);
}

/* Reads ova.xml (the first member) and gives it to the callback, which fills plan. */
static int imp_ova_xml(Importer *im, XvaPlan *plan, size_t *len_out)
{
    TarStreamHeader h;
    int r = imp_next(im, &h, "first member");
    if (r < 0)
        return r;
    if (r == TARSTREAM_NEXT_EOF)
        return xva_error_set(im->err, XVA_ERROR_TRUNCATED, -ENODATA,
                             "the stream is empty: an XVA starts with ova.xml");
    if (r == TARSTREAM_NEXT_END)
        return imp_unexpected(im, XVA_OVA_XML, "",
                              "the archive is empty: an XVA starts with ova.xml "
                              "(IMPORT_ERROR_UNEXPECTED_FILE)");
    if (!STREQ(h.name, XVA_OVA_XML)) {
        char esc[300];
        xva_escape_name(esc, sizeof(esc), h.name);
        return imp_unexpected(im, XVA_OVA_XML, h.name,
                              "the first member of an XVA must be ova.xml, found '%s' "
                              "(IMPORT_ERROR_UNEXPECTED_FILE)",
                              esc);
    }
    if (h.type != TARSTREAM_TYPE_REGULAR)
        return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                             "ova.xml is not a regular file");
    size_t max = im->opts->max_ova_xml ? im->opts->max_ova_xml : XVA_DEFAULT_MAX_OVA_XML;
    if (h.size > max)
        return xva_error_set(im->err, XVA_ERROR_LIMIT, -EFBIG,
                             "ova.xml is %" PRIu64 " bytes; at most %zu are accepted", h.size,
                             max);
    char *xml = xmalloc((size_t)h.size + 1);
    r = tarstream_in_read(im->in, xml, (size_t)h.size);
    if (r == 0)
        r = tarstream_in_skip(im->in, tarstream_padding(h.size));
    if (r < 0) {
        free(xml);
        return imp_in_error(im, r, "ova.xml");
    }
    xml[h.size] = '\0';
    *len_out = (size_t)h.size;
    if (im->sink && im->sink->ova_xml) {
        r = im->sink->ova_xml(im->sink->ctx, xml, (size_t)h.size, plan);
        if (r < 0) {
            free(xml);
            return xva_error_set(im->err, XVA_ERROR_CALLBACK, r,
                                 "ova.xml was refused (%s)", strerror(-r));
        }
    }
    free(xml);
    return 0;
}

static int imp_planned(Importer *im, const XvaPlan *plan)
{
    size_t *order = xnew0(size_t, plan->n ? plan->n : 1);
    for (size_t i = 0; i < plan->n; i++) {
        order[i] = i;
        im->total += plan->disks[i].size;
    }
    qsort_r(order, plan->n, sizeof(*order), cmp_plan_idx, (void *)plan);
    int r = 0;
    uint64_t done = 0;
    for (size_t k = 0; r == 0 && k < plan->n; k++) {
        const PlanDisk *pd = &plan->disks[order[k]];
        DiskState ds;
        disk_state_init(&ds, order[k], pd->id, pd->size);
        r = imp_disk_planned(im, &ds, done);
        done += pd->size;
    }
    free(order);
    if (r == 0)
        imp_progress(im, im->total);
    return r;
}

int xva_import(const XvaInput *in, const XvaImportSink *sink, const XvaImportOptions *opts_in,
               XvaImportStats *stats, XvaError *err)
{
    static const XvaImportOptions defaults;
    const XvaImportOptions *opts = opts_in ? opts_in : &defaults;
    if (err)
        memset(err, 0, sizeof(*err));
    if (!sink || !sink->ova_xml || !sink->write)
        return xva_error_set(err, XVA_ERROR_ARGUMENT, -EINVAL,
                             "an import needs ova_xml and write callbacks");
    Importer im;
    imp_init(&im, in, sink, opts, err);
    XvaPlan plan = {0};
    size_t xml_len = 0;
    int r = imp_ova_xml(&im, &plan, &xml_len);
    if (r == 0)
        r = imp_planned(&im, &plan);
    free(plan.disks);
    imp_stop(&im, r);
    imp_release(&im, stats);
    return r;
}

int xva_import_raw_tar(const XvaInput *in, uint64_t size, const XvaImportSink *sink,
                       const XvaImportOptions *opts_in, XvaImportStats *stats, XvaError *err)
{
    static const XvaImportOptions defaults;
    const XvaImportOptions *opts = opts_in ? opts_in : &defaults;
    if (err)
        memset(err, 0, sizeof(*err));
    if (!sink || !sink->write)
        return xva_error_set(err, XVA_ERROR_ARGUMENT, -EINVAL, "an import needs a write callback");
    if (size > XVA_READ_MAX_DISK_SIZE)
        return xva_error_set(err, XVA_ERROR_LIMIT, -EFBIG,
                             "a disk of %" PRIu64 " bytes is beyond the supported size", size);
    Importer im;
    imp_init(&im, in, sink, opts, err);
    XvaPlan plan = {0};
    xva_plan_add_disk(&plan, XVA_RAW_TAR_PREFIX, size);
    int r = imp_planned(&im, &plan);
    free(plan.disks);
    imp_stop(&im, r);
    imp_release(&im, stats);
    return r;
}

/* ------------------------------------------------------------------ verify */

/* After the end marker: only zero bytes may follow. */
static int ver_trailer(Importer *im)
{
    for (;;) {
        const uint8_t *p;
        ssize_t n = tarstream_in_peek(im->in, &p, 1 * MiB);
        if (n < 0)
            return imp_in_error(im, (int)n, "after the end-of-archive marker");
        if (n == 0)
            return 0;
        if (!xva_is_zero(p, (size_t)n))
            return xva_error_set(im->err, XVA_ERROR_INVALID, -EBADMSG,
                                 "data follows the end-of-archive marker (at byte %" PRIu64 ")",
                                 tarstream_in_offset(im->in));
        tarstream_in_advance(im->in, (size_t)n);
    }
}

int xva_verify(const XvaInput *in, const XvaImportSink *sink, const XvaImportOptions *opts_in,
               XvaVerifyReport *report, XvaError *err)
{
    static const XvaImportOptions defaults;
    XvaImportOptions opts = opts_in ? *opts_in : defaults;
    opts.force = false;
    if (err)
        memset(err, 0, sizeof(*err));
    if (report)
        memset(report, 0, sizeof(*report));

    Importer im;
    imp_init(&im, in, sink, &opts, err);
    XvaPlan plan = {0};
    size_t xml_len = 0;
    XvaVerifyDisk *found = NULL;
    size_t n_found = 0, alloc = 0;
    int r = imp_ova_xml(&im, &plan, &xml_len);
    bool planned = plan.n > 0;
    for (size_t i = 0; planned && i < plan.n; i++)
        im.total += plan.disks[i].size;

    DiskState ds;
    bool active = false;
    uint64_t done = 0;
    while (r == 0) {
        if (is_cancelled(opts.cancel)) {
            r = xva_error_set(err, XVA_ERROR_CANCELLED, -ECANCELED, "the check was cancelled");
            break;
        }
        TarStreamHeader h;
        r = imp_next(&im, &h, "member header");
        if (r < 0)
            break;
        if (r == TARSTREAM_NEXT_EOF) {
            r = xva_error_set(err, XVA_ERROR_TRUNCATED, -ENODATA,
                              "the archive has no end-of-archive marker (truncated?)");
            break;
        }
        if (r == TARSTREAM_NEXT_END) {
            r = active ? imp_disk_end(&im, &ds) : 0;
            if (r == 0)
                r = ver_trailer(&im);
            break;
        }
        r = imp_check_data_header(&im, &h, "a disk block");
        if (r < 0)
            break;
        char esc[300];
        xva_escape_name(esc, sizeof(esc), h.name);
        const char *slash = strchr(h.name, '/');
        size_t idlen = slash ? (size_t)(slash - h.name) : 0;
        char id[XVA_ID_MAX + 1];
        if (!slash || idlen > XVA_ID_MAX) {
            r = xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                              "unexpected member '%s': not a disk block (Invalid XVA file)", esc);
            break;
        }
        memcpy(id, h.name, idlen);
        id[idlen] = '\0';
        if (!xva_id_valid(id)) {
            r = xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                              "unexpected member '%s': not a disk block (Invalid XVA file)", esc);
            break;
        }
        if (!active || !STREQ(id, ds.id)) {
            if (active) {
                if (strcmp(id, ds.id) < 0) {
                    r = xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                                      "disk %s follows disk %s: disks must be in increasing "
                                      "order of their ids",
                                      id, ds.id);
                    break;
                }
                if (planned && ds.offset != ds.size) {
                    r = xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                                      "disk %s holds %" PRIu64 " bytes but ova.xml says %" PRIu64,
                                      ds.id, ds.offset, ds.size);
                    break;
                }
                done += ds.offset;
                if ((r = imp_disk_end(&im, &ds)) < 0)
                    break;
            }
            if (n_found >= XVA_MAX_DISKS) {
                r = xva_error_set(err, XVA_ERROR_LIMIT, -EFBIG, "more than %d disks",
                                  XVA_MAX_DISKS);
                break;
            }
            size_t index = n_found;
            uint64_t limit = XVA_READ_MAX_DISK_SIZE;
            if (planned) {
                ssize_t pi = plan_find(&plan, id, idlen);
                if (pi < 0) {
                    r = xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                                      "the archive holds disk %s, which ova.xml does not list",
                                      id);
                    break;
                }
                index = (size_t)pi;
                limit = plan.disks[pi].size;
            }
            disk_state_init(&ds, index, id, limit);
            active = true;
            XGROW(found, n_found + 1, alloc);
            memset(&found[n_found], 0, sizeof(found[n_found]));
            memcpy(found[n_found].id, id, idlen + 1);
            n_found++;
            if ((r = imp_disk_begin(&im, &ds, planned ? limit : 0)) < 0)
                break;
        }
        if (im.first_len < 0)
            im.first_len = h.size > INT64_MAX ? INT64_MAX : (int64_t)h.size;
        r = imp_member(&im, &ds, &h);
        if (r < 0)
            break;
        found[n_found - 1].size = ds.offset;
        found[n_found - 1].blocks = ds.blocks;
        imp_progress(&im, done + ds.offset);
    }
    if (r == 0 && planned) {
        for (size_t i = 0; i < plan.n && r == 0; i++) {
            bool seen = false;
            for (size_t k = 0; k < n_found; k++) {
                if (STREQ(found[k].id, plan.disks[i].id)) {
                    seen = true;
                    if (found[k].size != plan.disks[i].size)
                        r = xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                                          "disk %s holds %" PRIu64
                                          " bytes but ova.xml says %" PRIu64,
                                          found[k].id, found[k].size, plan.disks[i].size);
                }
            }
            if (!seen && plan.disks[i].size != 0)
                r = xva_error_set(err, XVA_ERROR_TRUNCATED, -ENODATA,
                                  "disk %s listed in ova.xml has no blocks in the archive",
                                  plan.disks[i].id);
        }
    }
    free(plan.disks);
    uint64_t checks = im.st.checksums_xxhash + im.st.checksums_sha1;
    imp_release(&im, NULL);
    if (report && r == 0) {
        report->compression = im.st.compression;
        report->ova_xml_len = xml_len;
        report->n_disks = n_found;
        report->disks = found;
        report->checksums = checks;
        found = NULL;
    }
    free(found);
    return r;
}

void xva_verify_report_release(XvaVerifyReport *report)
{
    if (!report)
        return;
    free(report->disks);
    memset(report, 0, sizeof(*report));
}
