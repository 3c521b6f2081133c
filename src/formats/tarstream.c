/*
 * Streaming tar plumbing: ustar headers, a read-ahead decompressing input
 * and a threaded, optionally compressing output. See tarstream.h.
 *
 * Input: a byte ring filled by a producer (a worker thread, or the consumer
 * itself when not threaded) that reads the source and inflates gzip or
 * decodes zstd; the consumer peeks at contiguous spans of the ring, so
 * member data reaches the caller without an extra copy. The producer polls
 * a wake-up pipe beside the fd, so freeing a stream never hangs on a stalled
 * peer.
 *
 * Output: slots filled by the caller and written (or compressed and
 * written) on the caller's thread, or by a worker thread that blocks all
 * signals. Either way a broken pipe yields -EPIPE, never SIGPIPE. A
 * regular file is reserved ahead of the writes (fallocate, KEEP_SIZE) and
 * what was reserved past the end is given back when the stream stops.
 *
 * Nothing here interprets member names or contents.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "formats/tarstream.h"
#include "util/macros.h"
#include "util/memguard.h"
#include "util/xalloc.h"
#include "util/banned.h"

/*
 * Page-aligned buffers. Data reaches these buffers from the page cache
 * (read) and leaves them to it (write) at offsets that are multiples of 512;
 * with an aligned base every kernel copy is cache-line aligned on both sides,
 * which on some CPUs (AMD's rep movsb) costs several times less than a copy
 * that is off by malloc's 16 bytes.
 */
static void *xmalloc_page(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, n ? n : 1) != 0) {
        fprintf(stderr, "hyperxe: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

const char *tarstream_compression_name(TarStreamCompression c)
{
    switch (c) {
    case TARSTREAM_COMPRESSION_AUTO: return "auto";
    case TARSTREAM_COMPRESSION_NONE: return "none";
    case TARSTREAM_COMPRESSION_GZIP: return "gzip";
    case TARSTREAM_COMPRESSION_ZSTD: return "zstd";
    default: return "?";
    }
}

/* ---------------------------------------------------------------- headers */

/* ustar field offsets and lengths */
enum {
    H_NAME = 0, H_NAME_LEN = 100,
    H_MODE = 100, H_MODE_LEN = 8,
    H_UID = 108, H_UID_LEN = 8,
    H_GID = 116, H_GID_LEN = 8,
    H_SIZE = 124, H_SIZE_LEN = 12,
    H_MTIME = 136, H_MTIME_LEN = 12,
    H_CHKSUM = 148, H_CHKSUM_LEN = 8,
    H_TYPE = 156,
    H_MAGIC = 257, H_VERSION = 263,
    H_PREFIX = 345, H_PREFIX_LEN = 155,
};

/* Writes value as zero-padded octal in len-1 digits plus a NUL; false if it does not fit. */
static bool put_octal(uint8_t *field, size_t len, uint64_t value)
{
    size_t digits = len - 1;
    for (size_t i = digits; i-- > 0;) {
        field[i] = (uint8_t)('0' + (value & 7));
        value >>= 3;
    }
    field[digits] = '\0';
    return value == 0;
}

/*
 * Parses a numeric header field: octal digits with optional leading spaces
 * and a space or NUL terminator, or GNU base-256 (high bit set). An empty
 * field is 0. False on anything else or on overflow.
 */
static bool get_number(const uint8_t *field, size_t len, uint64_t *out)
{
    if (field[0] & 0x80) {
        if (field[0] == 0xff)
            return false; /* negative */
        uint64_t v = field[0] & 0x7f;
        for (size_t i = 1; i < len; i++) {
            if (v >> 55)
                return false;
            v = (v << 8) | field[i];
        }
        *out = v;
        return true;
    }
    size_t i = 0;
    while (i < len && field[i] == ' ')
        i++;
    uint64_t v = 0;
    for (; i < len && field[i] >= '0' && field[i] <= '7'; i++) {
        if (v >> 60)
            return false;
        v = (v << 3) | (uint64_t)(field[i] - '0');
    }
    for (; i < len; i++) {
        if (field[i] != ' ' && field[i] != '\0')
            return false;
    }
    *out = v;
    return true;
}

static void header_checksums(const uint8_t *b, uint64_t *usum, int64_t *ssum)
{
    uint64_t u = 0;
    int64_t s = 0;
    for (size_t i = 0; i < TARSTREAM_BLOCK; i++) {
        uint8_t c = (i >= H_CHKSUM && i < H_CHKSUM + H_CHKSUM_LEN) ? ' ' : b[i];
        u += c;
        s += (int8_t)c;
    }
    *usum = u;
    *ssum = s;
}

static bool printable_name(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    }
    return true;
}

int tarstream_header_encode(uint8_t out[TARSTREAM_BLOCK], const char *name, uint64_t size,
                            uint64_t mtime, unsigned mode)
{
    size_t nlen = strlen(name);
    if (nlen == 0 || !printable_name(name))
        return -EINVAL;
    memset(out, 0, TARSTREAM_BLOCK);
    if (nlen <= H_NAME_LEN) {
        memcpy(out + H_NAME, name, nlen);
    } else {
        /* Split at a '/' so that both ustar fields can hold their part. */
        const char *split = NULL;
        for (size_t i = 1; i + 1 < nlen; i++) {
            if (name[i] == '/' && i <= H_PREFIX_LEN && nlen - i - 1 <= H_NAME_LEN) {
                split = name + i;
                break;
            }
        }
        if (!split)
            return -ENAMETOOLONG;
        size_t pre = (size_t)(split - name);
        memcpy(out + H_PREFIX, name, pre);
        memcpy(out + H_NAME, split + 1, nlen - pre - 1);
    }
    if (!put_octal(out + H_SIZE, H_SIZE_LEN, size))
        return -EFBIG;
    if (!put_octal(out + H_MTIME, H_MTIME_LEN, mtime))
        put_octal(out + H_MTIME, H_MTIME_LEN, 0);
    put_octal(out + H_MODE, H_MODE_LEN, mode & 07777);
    put_octal(out + H_UID, H_UID_LEN, 0);
    put_octal(out + H_GID, H_GID_LEN, 0);
    out[H_TYPE] = '0';
    memcpy(out + H_MAGIC, "ustar", 6);
    memcpy(out + H_VERSION, "00", 2);
    uint64_t usum;
    int64_t ssum;
    header_checksums(out, &usum, &ssum);
    /* six octal digits, NUL, space: the traditional layout */
    for (size_t i = 6; i-- > 0;) {
        out[H_CHKSUM + i] = (uint8_t)('0' + (usum & 7));
        usum >>= 3;
    }
    out[H_CHKSUM + 6] = '\0';
    out[H_CHKSUM + 7] = ' ';
    return 0;
}

bool tarstream_header_valid(const uint8_t blk[TARSTREAM_BLOCK])
{
    uint64_t stored, v;
    if (!get_number(blk + H_CHKSUM, H_CHKSUM_LEN, &stored))
        return false;
    uint64_t usum;
    int64_t ssum;
    header_checksums(blk, &usum, &ssum);
    if (stored != usum && (int64_t)stored != ssum)
        return false;
    return get_number(blk + H_SIZE, H_SIZE_LEN, &v) && get_number(blk + H_MODE, H_MODE_LEN, &v) &&
           get_number(blk + H_MTIME, H_MTIME_LEN, &v);
}

static bool block_is_zero(const uint8_t *b)
{
    for (size_t i = 0; i < TARSTREAM_BLOCK; i++) {
        if (b[i])
            return false;
    }
    return true;
}

/* ----------------------------------------------------------------- input */

#define IN_RAW_SIZE (1024 * 1024)

struct TarStreamIn {
    /* configuration */
    int fd;
    TarStreamReadFn read_fn;
    void *read_ctx;
    TarStreamCompression comp; /* AUTO until the producer decides */
    bool threaded;
    const atomic_bool *cancel;

    /* ring shared by producer and consumer (under mu when threaded) */
    uint8_t *ring;
    size_t ring_size;
    uint64_t head; /* bytes produced */
    uint64_t tail; /* bytes consumed */
    bool eof;      /* the producer is finished */
    int err;       /* its final status when eof: 0 or -errno */
    TarStreamErrorKind err_kind;
    char errmsg[256];

    /* producer-only */
    uint8_t *raw;
    size_t raw_pos, raw_len;
    bool raw_eof;
    bool detected;
    bool gzip_magic; /* the input starts with 1f 8b */
    z_stream z;
    bool z_ready;
    ZSTD_DCtx *zd;
    size_t zd_last;   /* last ZSTD_decompressStream() result */
    bool zd_started;  /* any zstd input consumed */
    bool dec_done;

    /* threading */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_data;  /* consumer waits for data */
    pthread_cond_t cv_space; /* producer waits for space */
    bool cons_waiting;       /* wake-ups are costly (IPIs in a VM): only when someone waits */
    bool prod_waiting;
    size_t low_water;        /* the producer sleeps until this much space is free */
    bool stop;
    int wake[2];

    /* consumer-side error copy (set when the consumer itself fails) */
    int cons_err;

    /* mapped: the ring is a read-only mapping of the whole file (map_len
     * bytes at map), the stream its part from the starting offset on */
    bool mapped;
    uint8_t *map;
    size_t map_len;
};

static void in_set_error(TarStreamIn *in, TarStreamErrorKind kind, const char *fmt, ...)
    HX_PRINTF(3, 4);
static void in_set_error(TarStreamIn *in, TarStreamErrorKind kind, const char *fmt, ...)
{
    in->err_kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->errmsg, sizeof(in->errmsg), fmt, ap);
    va_end(ap);
}

/* Reads from the source; in threaded mode also watches the wake-up pipe. */
static ssize_t in_source_read(TarStreamIn *in, void *buf, size_t len)
{
    if (in->read_fn) {
        ssize_t r = in->read_fn(in->read_ctx, buf, len);
        if (r < 0 || (size_t)r > len)
            return r < 0 ? r : -EIO;
        return r;
    }
    for (;;) {
        if (in->threaded) {
            struct pollfd pf[2] = {{.fd = in->fd, .events = POLLIN}, {.fd = in->wake[0], .events = POLLIN}};
            int pr = poll(pf, 2, -1);
            if (pr < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            if (pf[1].revents)
                return -ECANCELED;
        }
        ssize_t r = read(in->fd, buf, len);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!in->threaded) {
                struct pollfd pf = {.fd = in->fd, .events = POLLIN};
                if (poll(&pf, 1, -1) < 0 && errno != EINTR)
                    return -errno;
            }
            continue;
        }
        return -errno;
    }
}

/* Refills the raw buffer if it is empty. Returns 0, or -errno. */
static int in_raw_fill(TarStreamIn *in)
{
    if (in->raw_pos < in->raw_len || in->raw_eof)
        return 0;
    ssize_t r = in_source_read(in, in->raw, IN_RAW_SIZE);
    if (r < 0)
        return (int)r;
    in->raw_pos = 0;
    in->raw_len = (size_t)r;
    if (r == 0)
        in->raw_eof = true;
    return 0;
}

static int in_detect(TarStreamIn *in)
{
    in->detected = true;
    /* Gather up to one header's worth of raw bytes. */
    while (in->raw_len < TARSTREAM_BLOCK && !in->raw_eof) {
        ssize_t r = in_source_read(in, in->raw + in->raw_len, IN_RAW_SIZE - in->raw_len);
        if (r < 0)
            return (int)r;
        if (r == 0)
            in->raw_eof = true;
        in->raw_len += (size_t)r;
    }
    in->gzip_magic = in->raw_len >= 2 && in->raw[0] == 0x1f && in->raw[1] == 0x8b;
    if (in->comp != TARSTREAM_COMPRESSION_AUTO)
        return 0;
    static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    if (in->raw_len == 0)
        in->comp = TARSTREAM_COMPRESSION_NONE;
    else if (in->raw_len >= 4 && memcmp(in->raw, zstd_magic, 4) == 0)
        in->comp = TARSTREAM_COMPRESSION_ZSTD;
    else if (in->raw_len >= TARSTREAM_BLOCK &&
             (tarstream_header_valid(in->raw) || block_is_zero(in->raw)))
        in->comp = TARSTREAM_COMPRESSION_NONE;
    else
        in->comp = TARSTREAM_COMPRESSION_GZIP;
    return 0;
}

static ssize_t in_produce_gzip(TarStreamIn *in, uint8_t *dst, size_t cap)
{
    if (!in->z_ready) {
        memset(&in->z, 0, sizeof(in->z));
        if (inflateInit2(&in->z, 15 + 16) != Z_OK) {
            in_set_error(in, TARSTREAM_ERROR_COMPRESSION, "cannot initialise zlib");
            return -ENOMEM;
        }
        in->z_ready = true;
    }
    for (;;) {
        if (in->dec_done)
            return 0;
        int r = in_raw_fill(in);
        if (r < 0)
            return r;
        in->z.next_in = in->raw + in->raw_pos;
        in->z.avail_in = (uInt)(in->raw_len - in->raw_pos);
        in->z.next_out = dst;
        in->z.avail_out = (uInt)MIN(cap, (size_t)UINT_MAX);
        int zr = inflate(&in->z, Z_NO_FLUSH);
        size_t produced = (size_t)(in->z.next_out - dst);
        in->raw_pos = (size_t)(in->z.next_in - in->raw);
        if (zr == Z_STREAM_END) {
            /* Another gzip member may follow (concatenated streams). */
            r = in_raw_fill(in);
            if (r < 0)
                return r;
            if (in->raw_pos < in->raw_len && in->raw[in->raw_pos] == 0x1f)
                inflateReset(&in->z);
            else
                in->dec_done = true; /* end, or trailing bytes that are not gzip: ignored */
        } else if (zr == Z_BUF_ERROR || (zr == Z_OK && produced == 0)) {
            if (in->raw_pos >= in->raw_len && in->raw_eof && produced == 0) {
                in_set_error(in, TARSTREAM_ERROR_COMPRESSION,
                             "the gzip stream ends before its end marker (truncated)");
                return -EPROTO;
            }
        } else if (zr != Z_OK) {
            in_set_error(in, TARSTREAM_ERROR_COMPRESSION, "%s%s",
                         in->gzip_magic ? "corrupt gzip data: "
                                        : "the data is neither a tar archive nor gzip or zstd "
                                          "compressed: gzip: ",
                         in->z.msg ? in->z.msg : "inflate failed");
            return -EPROTO;
        }
        if (produced > 0)
            return (ssize_t)produced;
    }
}

static ssize_t in_produce_zstd(TarStreamIn *in, uint8_t *dst, size_t cap)
{
    if (!in->zd) {
        in->zd = ZSTD_createDCtx();
        if (!in->zd) {
            in_set_error(in, TARSTREAM_ERROR_COMPRESSION, "cannot initialise zstd");
            return -ENOMEM;
        }
        ZSTD_DCtx_setParameter(in->zd, ZSTD_d_windowLogMax, 27);
    }
    for (;;) {
        int r = in_raw_fill(in);
        if (r < 0)
            return r;
        ZSTD_inBuffer zin = {in->raw + in->raw_pos, in->raw_len - in->raw_pos, 0};
        ZSTD_outBuffer zout = {dst, cap, 0};
        if (zin.size == 0 && in->raw_eof) {
            /* No more input: flush what the decoder still holds, then stop. */
            size_t zr = ZSTD_decompressStream(in->zd, &zout, &zin);
            if (ZSTD_isError(zr)) {
                in_set_error(in, TARSTREAM_ERROR_COMPRESSION, "corrupt zstd data: %s",
                             ZSTD_getErrorName(zr));
                return -EPROTO;
            }
            if (zout.pos > 0)
                return (ssize_t)zout.pos;
            if (in->zd_last != 0 || !in->zd_started) {
                in_set_error(in, TARSTREAM_ERROR_COMPRESSION,
                             "the zstd stream ends inside a frame (truncated)");
                return -EPROTO;
            }
            return 0;
        }
        size_t zr = ZSTD_decompressStream(in->zd, &zout, &zin);
        in->raw_pos += zin.pos;
        if (zin.pos)
            in->zd_started = true;
        if (ZSTD_isError(zr)) {
            in_set_error(in, TARSTREAM_ERROR_COMPRESSION, "corrupt zstd data: %s",
                         ZSTD_getErrorName(zr));
            return -EPROTO;
        }
        in->zd_last = zr;
        if (zout.pos > 0)
            return (ssize_t)zout.pos;
    }
}

/* Produces up to cap bytes into dst: count, 0 at the end, or -errno. */
static ssize_t in_produce(TarStreamIn *in, uint8_t *dst, size_t cap)
{
    if (!in->detected) {
        int r = in_detect(in);
        if (r < 0)
            return r;
    }
    switch (in->comp) {
    case TARSTREAM_COMPRESSION_GZIP:
        return in_produce_gzip(in, dst, cap);
    case TARSTREAM_COMPRESSION_ZSTD:
        return in_produce_zstd(in, dst, cap);
    default:
        if (in->raw_pos < in->raw_len) {
            size_t n = MIN(cap, in->raw_len - in->raw_pos);
            memcpy(dst, in->raw + in->raw_pos, n);
            in->raw_pos += n;
            return (ssize_t)n;
        }
        if (in->raw_eof)
            return 0;
        return in_source_read(in, dst, cap);
    }
}

static void in_finish_producer(TarStreamIn *in, ssize_t r)
{
    in->eof = true;
    in->err = r < 0 ? (int)r : 0;
    if (r < 0 && in->err_kind == TARSTREAM_ERROR_NONE) {
        if (r == -ECANCELED)
            in_set_error(in, TARSTREAM_ERROR_CANCELLED, "cancelled");
        else
            in_set_error(in, TARSTREAM_ERROR_IO, "reading the stream failed: %s",
                         strerror((int)-r));
    }
}

static void *in_thread_main(void *arg)
{
    TarStreamIn *in = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (!in->stop && in->ring_size - (in->head - in->tail) < in->low_water) {
            in->prod_waiting = true;
            pthread_cond_wait(&in->cv_space, &in->mu);
            in->prod_waiting = false;
        }
        if (in->stop) {
            pthread_mutex_unlock(&in->mu);
            break;
        }
        size_t space = in->ring_size - (size_t)(in->head - in->tail);
        size_t idx = (size_t)(in->head % in->ring_size);
        size_t cap = MIN(space, in->ring_size - idx);
        pthread_mutex_unlock(&in->mu);

        ssize_t r = in_produce(in, in->ring + idx, cap);

        pthread_mutex_lock(&in->mu);
        if (r > 0)
            in->head += (uint64_t)r;
        else
            in_finish_producer(in, r);
        if (in->cons_waiting)
            pthread_cond_signal(&in->cv_data);
        pthread_mutex_unlock(&in->mu);
        if (r <= 0)
            break;
    }
    return NULL;
}

typedef struct MapCheck {
    const uint8_t *p;
    bool tar;
} MapCheck;

static void map_check(void *arg)
{
    MapCheck *c = arg;
    c->tar = tarstream_header_valid(c->p);
}

/* Maps an uncompressed tar file: the whole stream is there at once. */
static bool in_map(TarStreamIn *in, const TarStreamInConfig *cfg)
{
    struct stat st;
    off_t at = lseek(cfg->fd, 0, SEEK_CUR);
    if (at < 0 || fstat(cfg->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size < at + TARSTREAM_BLOCK || (uint64_t)st.st_size > SIZE_MAX)
        return false;
    if (cfg->compression != TARSTREAM_COMPRESSION_AUTO &&
        cfg->compression != TARSTREAM_COMPRESSION_NONE)
        return false;
    size_t len = (size_t)st.st_size;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, cfg->fd, 0);
    if (m == MAP_FAILED)
        return false;
    /* Only an uncompressed archive (a tar header first) stays mapped: a
     * compressed one is read and decompressed as a stream. */
    MapCheck c = {.p = (const uint8_t *)m + at};
    if (memguard_run(map_check, &c) < 0 || !c.tar) {
        munmap(m, len);
        return false;
    }
    madvise(m, len, MADV_SEQUENTIAL);
    in->mapped = true;
    in->map = m;
    in->map_len = len;
    in->ring = (uint8_t *)m + at;
    in->ring_size = len - (size_t)at;
    in->head = in->ring_size;
    in->eof = true;
    in->detected = true;
    in->comp = TARSTREAM_COMPRESSION_NONE;
    in->threaded = false;
    return true;
}

TarStreamIn *tarstream_in_new(const TarStreamInConfig *cfg)
{
    TarStreamIn *in = xnew0(TarStreamIn, 1);
    in->fd = cfg->fd;
    in->read_fn = cfg->read;
    in->read_ctx = cfg->read_ctx;
    in->comp = cfg->compression;
    in->threaded = cfg->threaded;
    in->cancel = cfg->cancel;
    in->wake[0] = in->wake[1] = -1;
    if (cfg->map && !cfg->read && cfg->fd >= 0 && in_map(in, cfg))
        return in;
    /* Small enough that data read ahead is still in cache when it is used. */
    in->ring_size = cfg->buffer_size ? cfg->buffer_size : (in->threaded ? 2 * MiB : 256 * KiB);
    if (in->ring_size < 4 * KiB)
        in->ring_size = 4 * KiB;
    in->low_water = in->ring_size / 4;
    in->ring = xmalloc_page(in->ring_size);
    in->raw = xmalloc_page(IN_RAW_SIZE);
    if (in->threaded) {
        if (pipe2(in->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
            in->threaded = false;
        } else {
            pthread_mutex_init(&in->mu, NULL);
            pthread_condattr_t ca;
            pthread_condattr_init(&ca);
            pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
            pthread_cond_init(&in->cv_data, &ca);
            pthread_cond_init(&in->cv_space, &ca);
            pthread_condattr_destroy(&ca);
            if (pthread_create(&in->thread, NULL, in_thread_main, in) == 0) {
                in->thread_started = true;
            } else {
                in->threaded = false;
            }
        }
    }
    return in;
}

void tarstream_in_free(TarStreamIn *in)
{
    if (!in)
        return;
    if (in->thread_started) {
        pthread_mutex_lock(&in->mu);
        in->stop = true;
        pthread_cond_signal(&in->cv_space);
        pthread_mutex_unlock(&in->mu);
        if (write(in->wake[1], "x", 1) < 0) {
            /* the pipe is non-blocking and empty: cannot fail in practice */
        }
        pthread_join(in->thread, NULL);
    }
    if (in->wake[0] >= 0) {
        pthread_mutex_destroy(&in->mu);
        pthread_cond_destroy(&in->cv_data);
        pthread_cond_destroy(&in->cv_space);
        close(in->wake[0]);
        close(in->wake[1]);
    }
    if (in->z_ready)
        inflateEnd(&in->z);
    ZSTD_freeDCtx(in->zd);
    if (in->mapped)
        munmap(in->map, in->map_len);
    else
        free(in->ring);
    free(in->raw);
    free(in);
}

bool tarstream_in_stable(const TarStreamIn *in)
{
    return in->mapped;
}

static bool cancelled(const atomic_bool *c)
{
    return c && atomic_load_explicit(c, memory_order_relaxed);
}

/* Waits on cv with a 100 ms period so that a cancel request is noticed. */
static int wait_cancellable(pthread_cond_t *cv, pthread_mutex_t *mu, const atomic_bool *cancel)
{
    if (!cancel) {
        pthread_cond_wait(cv, mu);
        return 0;
    }
    if (cancelled(cancel))
        return -ECANCELED;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, mu, &ts);
    return cancelled(cancel) ? -ECANCELED : 0;
}

ssize_t tarstream_in_peek(TarStreamIn *in, const uint8_t **p, size_t max)
{
    if (in->cons_err)
        return in->cons_err;
    if (max == 0)
        max = SIZE_MAX;
    if (in->threaded) {
        pthread_mutex_lock(&in->mu);
        while (in->head == in->tail && !in->eof) {
            in->cons_waiting = true;
            int r = wait_cancellable(&in->cv_data, &in->mu, in->cancel);
            in->cons_waiting = false;
            if (r < 0) {
                pthread_mutex_unlock(&in->mu);
                in->cons_err = r;
                return r;
            }
        }
    } else if (in->head == in->tail && !in->eof) {
        if (cancelled(in->cancel)) {
            in->cons_err = -ECANCELED;
            return -ECANCELED;
        }
        size_t idx = (size_t)(in->head % in->ring_size);
        ssize_t r = in_produce(in, in->ring + idx, in->ring_size - idx);
        if (r > 0)
            in->head += (uint64_t)r;
        else
            in_finish_producer(in, r);
    }
    ssize_t ret;
    if (in->head == in->tail) {
        ret = in->err;
    } else {
        size_t idx = (size_t)(in->tail % in->ring_size);
        size_t n = (size_t)MIN(in->head - in->tail, (uint64_t)(in->ring_size - idx));
        n = MIN(n, max);
        *p = in->ring + idx;
        ret = (ssize_t)n;
    }
    if (in->threaded)
        pthread_mutex_unlock(&in->mu);
    return ret;
}

void tarstream_in_advance(TarStreamIn *in, size_t n)
{
    if (in->threaded) {
        pthread_mutex_lock(&in->mu);
        in->tail += n;
        if (in->prod_waiting && in->ring_size - (in->head - in->tail) >= in->low_water)
            pthread_cond_signal(&in->cv_space);
        pthread_mutex_unlock(&in->mu);
    } else {
        in->tail += n;
    }
}

typedef struct MapCopy {
    void *dst;
    const void *src;
    size_t n;
} MapCopy;

static void map_copy(void *arg)
{
    MapCopy *c = arg;
    memcpy(c->dst, c->src, c->n);
}

/* Reads up to len bytes, stopping early only at the end: count or -errno. */
static ssize_t in_read_upto(TarStreamIn *in, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        const uint8_t *p;
        ssize_t r = tarstream_in_peek(in, &p, len - got);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        MapCopy c = {(uint8_t *)buf + got, p, (size_t)r};
        if (!in->mapped) {
            map_copy(&c);
        } else if (memguard_run(map_copy, &c) < 0) {
            in_set_error(in, TARSTREAM_ERROR_IO,
                         "reading the file failed: it shrank while being read, or its disk "
                         "failed");
            in->cons_err = -EIO;
            return -EIO;
        }
        tarstream_in_advance(in, (size_t)r);
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int tarstream_in_read(TarStreamIn *in, void *buf, size_t len)
{
    ssize_t r = in_read_upto(in, buf, len);
    if (r < 0)
        return (int)r;
    return (size_t)r == len ? 0 : -ENODATA;
}

int tarstream_in_skip(TarStreamIn *in, uint64_t len)
{
    while (len > 0) {
        const uint8_t *p;
        ssize_t r = tarstream_in_peek(in, &p, (size_t)MIN(len, (uint64_t)SIZE_MAX));
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -ENODATA;
        tarstream_in_advance(in, (size_t)r);
        len -= (uint64_t)r;
    }
    return 0;
}

uint64_t tarstream_in_offset(const TarStreamIn *in)
{
    return in->tail;
}

TarStreamCompression tarstream_in_compression(const TarStreamIn *in)
{
    return in->detected ? in->comp : TARSTREAM_COMPRESSION_AUTO;
}

TarStreamErrorKind tarstream_in_error(const TarStreamIn *in, const char **message)
{
    if (in->cons_err == -ECANCELED) {
        if (message)
            *message = "cancelled";
        return TARSTREAM_ERROR_CANCELLED;
    }
    if (message)
        *message = in->errmsg;
    return in->err_kind;
}

/* Bounds on extended headers: a pax record set, a GNU long name. */
#define PAX_MAX (64 * 1024)
#define EXT_HEADERS_MAX 8

static int pax_parse(const char *buf, size_t len, char *name, bool *have_name, uint64_t *size,
                     bool *have_size, const char **why)
{
    size_t pos = 0;
    while (pos < len) {
        if (buf[pos] == '\0')
            break; /* trailing padding */
        /* "%d %s=%s\n", the length counting the whole record */
        size_t rl = 0, i = pos;
        while (i < len && buf[i] >= '0' && buf[i] <= '9' && i - pos < 8)
            rl = rl * 10 + (size_t)(buf[i++] - '0');
        if (i == pos || i >= len || buf[i] != ' ' || rl <= i - pos + 1 || rl > len - pos ||
            buf[pos + rl - 1] != '\n') {
            *why = "malformed pax extended header record";
            return -EBADMSG;
        }
        const char *kv = buf + i + 1;
        size_t kvlen = pos + rl - 1 - (i + 1);
        const char *eq = memchr(kv, '=', kvlen);
        if (!eq) {
            *why = "malformed pax extended header record";
            return -EBADMSG;
        }
        size_t klen = (size_t)(eq - kv), vlen = kvlen - klen - 1;
        const char *val = eq + 1;
        if (klen == 4 && memcmp(kv, "path", 4) == 0) {
            if (vlen == 0 || vlen > TARSTREAM_NAME_MAX || memchr(val, '\0', vlen)) {
                *why = "unusable pax path (empty, too long or containing NUL)";
                return -EBADMSG;
            }
            memcpy(name, val, vlen);
            name[vlen] = '\0';
            *have_name = true;
        } else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
            uint64_t v = 0;
            if (vlen == 0 || vlen > 19) {
                *why = "unusable pax size";
                return -EBADMSG;
            }
            for (size_t k = 0; k < vlen; k++) {
                if (val[k] < '0' || val[k] > '9') {
                    *why = "unusable pax size";
                    return -EBADMSG;
                }
                v = v * 10 + (uint64_t)(val[k] - '0');
            }
            *size = v;
            *have_size = true;
        }
        pos += rl;
    }
    return 0;
}

static int in_read_ext(TarStreamIn *in, uint64_t size, uint64_t max, char **out, const char **why)
{
    if (size > max) {
        *why = "extended header too large";
        return -EBADMSG;
    }
    char *buf = xmalloc((size_t)size + 1);
    int r = tarstream_in_read(in, buf, (size_t)size);
    if (r == 0)
        r = tarstream_in_skip(in, tarstream_padding(size));
    if (r < 0) {
        free(buf);
        return r;
    }
    buf[size] = '\0';
    *out = buf;
    return 0;
}

int tarstream_in_next(TarStreamIn *in, TarStreamHeader *h, const char **why)
{
    uint8_t b[TARSTREAM_BLOCK];
    char ext_name[TARSTREAM_NAME_MAX + 1];
    bool have_name = false, have_size = false;
    uint64_t ext_size = 0;
    static const char *unused;
    if (!why)
        why = &unused;
    *why = NULL;

    for (int round = 0;; round++) {
        ssize_t r = in_read_upto(in, b, sizeof(b));
        if (r < 0)
            return (int)r;
        if (r == 0 && !have_name && !have_size && round == 0)
            return TARSTREAM_NEXT_EOF;
        if (r < TARSTREAM_BLOCK) {
            *why = "the stream ends inside a tar header";
            return -ENODATA;
        }
        if (block_is_zero(b)) {
            if (have_name || have_size) {
                *why = "extended header not followed by a member";
                return -EBADMSG;
            }
            return TARSTREAM_NEXT_END;
        }
        if (!tarstream_header_valid(b)) {
            *why = "invalid tar header (bad checksum or numeric field)";
            return -EBADMSG;
        }
        if (round >= EXT_HEADERS_MAX) {
            *why = "too many extended headers in a row";
            return -EBADMSG;
        }
        uint64_t size;
        get_number(b + H_SIZE, H_SIZE_LEN, &size);
        char type = (char)b[H_TYPE];
        if (type == 'L' || type == 'x' || type == 'g' || type == 'K') {
            char *data = NULL;
            int er = in_read_ext(in, size, type == 'L' ? TARSTREAM_NAME_MAX + 1 : PAX_MAX, &data, why);
            if (er < 0)
                return er;
            if (type == 'L') {
                size_t n = strnlen(data, (size_t)size);
                for (size_t k = n; k < size; k++) {
                    if (data[k] != '\0') {
                        free(data);
                        *why = "GNU long name contains NUL";
                        return -EBADMSG;
                    }
                }
                if (n == 0 || n > TARSTREAM_NAME_MAX) {
                    free(data);
                    *why = "unusable GNU long name";
                    return -EBADMSG;
                }
                memcpy(ext_name, data, n + 1);
                have_name = true;
            } else if (type == 'x') {
                er = pax_parse(data, (size_t)size, ext_name, &have_name, &ext_size, &have_size, why);
            }
            free(data);
            if (er < 0)
                return er;
            continue;
        }

        memset(h, 0, sizeof(*h));
        if (have_name) {
            memcpy(h->name, ext_name, strlen(ext_name) + 1);
        } else {
            size_t nlen = strnlen((const char *)b + H_NAME, H_NAME_LEN);
            bool posix = memcmp(b + H_MAGIC, "ustar", 6) == 0;
            size_t plen = posix ? strnlen((const char *)b + H_PREFIX, H_PREFIX_LEN) : 0;
            size_t pos = 0;
            if (plen) {
                memcpy(h->name, b + H_PREFIX, plen);
                h->name[plen] = '/';
                pos = plen + 1;
            }
            memcpy(h->name + pos, b + H_NAME, nlen);
            h->name[pos + nlen] = '\0';
        }
        uint64_t v;
        h->size = have_size ? ext_size : size;
        get_number(b + H_MTIME, H_MTIME_LEN, &v);
        h->mtime = v;
        get_number(b + H_MODE, H_MODE_LEN, &v);
        h->mode = (unsigned)(v & 07777);
        h->typeflag = type;
        if (type == '0' || type == '\0' || type == '7')
            h->type = TARSTREAM_TYPE_REGULAR;
        else if (type == '5')
            h->type = TARSTREAM_TYPE_DIRECTORY;
        else
            h->type = TARSTREAM_TYPE_OTHER;
        return TARSTREAM_NEXT_HEADER;
    }
}

/* ---------------------------------------------------------------- output */

/*
 * A slot: bytes copied into buf (headers, data read by the caller) and
 * memory attached by reference (tarstream_out_attach()), in stream order.
 */
#define SLOT_SEGS 64
typedef struct OutSlot {
    uint8_t *buf;
    size_t len;   /* bytes used in buf */
    size_t bytes; /* bytes in the slot, attached ones included */
    struct iovec seg[SLOT_SEGS];
    unsigned nseg;
    bool flush;   /* flush the compressor after this slot */
} OutSlot;

static void slot_reset(OutSlot *s)
{
    s->len = s->bytes = 0;
    s->nseg = 0;
    s->flush = false;
}

static void slot_add(OutSlot *s, const void *p, size_t n)
{
    if (n == 0)
        return;
    struct iovec *last = s->nseg ? &s->seg[s->nseg - 1] : NULL;
    if (last && (const uint8_t *)last->iov_base + last->iov_len == (const uint8_t *)p) {
        last->iov_len += n;
    } else {
        /* Callers make room first: there is always a free entry here. */
        s->seg[s->nseg].iov_base = (void *)(uintptr_t)p;
        s->seg[s->nseg].iov_len = n;
        s->nseg++;
    }
    s->bytes += n;
}

struct TarStreamOut {
    int fd;
    TarStreamCompression comp;
    int level;
    unsigned workers;
    const atomic_bool *cancel;

    size_t slot_size;
    unsigned nslots;
    OutSlot *slots;
    unsigned cur;     /* slot being filled by the caller */
    unsigned wr;      /* oldest queued slot (the writer's) */
    unsigned queued;  /* filled slots not yet written */
    bool done;
    int err;          /* first error; under mu */
    atomic_int err_fast;

    pthread_t thread;
    bool running;
    bool unthreaded;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_free;
    bool writer_waiting; /* signal only a thread that waits */
    bool filler_waiting;

    uint64_t bytes_in;
    uint64_t bytes_out;

    /* writer-only */
    z_stream z;
    bool z_ready;
    ZSTD_CCtx *zc;
    uint8_t *cbuf;
    size_t cbuf_size, cbuf_len;
    int sock;  /* -1 unknown, 0 no, 1 yes */
    bool fifo; /* a pipe: SIGPIPE is possible */
    /* A regular file: its offset, and how far its blocks are reserved. */
    bool file;
    bool prealloc_off; /* the file system declined, or the space ran out */
    uint64_t pos, prealloc_end;
};

/*
 * How far ahead of the writes a regular file's blocks are reserved. Writing
 * into reserved (unwritten) extents skips the file system's delayed
 * allocation on every write: on ext4 that is a third of the cost of a
 * buffered write, and a full disk shows up before the data is copied.
 */
#define PREALLOC_AHEAD (64 * MiB)

static void out_set_err(TarStreamOut *out, int err)
{
    pthread_mutex_lock(&out->mu);
    if (!out->err) {
        out->err = err;
        atomic_store(&out->err_fast, err);
    }
    pthread_cond_broadcast(&out->cv_free);
    pthread_mutex_unlock(&out->mu);
}

/*
 * writev() to a pipe on a thread that may not block SIGPIPE: SIGPIPE is
 * blocked for the call, and one it raised is consumed, so a broken pipe
 * is only EPIPE.
 */
static ssize_t writev_no_sigpipe(int fd, const struct iovec *iov, int n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t r = writev(fd, iov, n);
    int e = errno;
    if (r < 0 && e == EPIPE && !was_pending) {
        static const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

/* Reserves the file's blocks for the n iovecs about to be written, and more. */
static void out_prealloc(TarStreamOut *out, const struct iovec *v, unsigned n)
{
    uint64_t end = out->pos;
    for (unsigned i = 0; i < n; i++)
        end += v[i].iov_len;
    if (out->prealloc_off || end <= out->prealloc_end)
        return;
    uint64_t from = MAX(out->prealloc_end, out->pos);
    uint64_t to = end + PREALLOC_AHEAD;
    if (fallocate(out->fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) != 0) {
        /* Not supported here, or no room: the writes themselves tell. */
        out->prealloc_off = true;
        return;
    }
    out->prealloc_end = to;
}

/* Gives back the blocks reserved past the end of what was written. */
static void out_prealloc_release(TarStreamOut *out)
{
    struct stat st;
    if (!out->file || out->prealloc_end <= out->pos || fstat(out->fd, &st) != 0)
        return;
    out->prealloc_end = 0;
    /* Truncating to the size it has frees the blocks past it (ext4, xfs, tmpfs). */
    (void)!ftruncate(out->fd, st.st_size);
}

/* Writes n iovecs (n <= SLOT_SEGS) completely, whatever the fd is. */
static int out_writev_all(TarStreamOut *out, const struct iovec *iov_in, unsigned n)
{
    struct iovec v[SLOT_SEGS];
    memcpy(v, iov_in, n * sizeof(*v));
    unsigned i = 0;
    while (i < n && v[i].iov_len == 0)
        i++;
    if (out->file)
        out_prealloc(out, v, n);
    while (i < n) {
        ssize_t r;
        if (out->sock != 0) {
            struct msghdr m = {.msg_iov = v + i, .msg_iovlen = n - i};
            r = sendmsg(out->fd, &m, MSG_NOSIGNAL);
            if (r < 0 && errno == ENOTSOCK) {
                struct stat st;
                out->sock = 0;
                out->fifo = fstat(out->fd, &st) == 0 && S_ISFIFO(st.st_mode);
                continue;
            }
            if (r >= 0)
                out->sock = 1;
        } else if (out->fifo && out->unthreaded) {
            r = writev_no_sigpipe(out->fd, v + i, (int)(n - i));
        } else {
            r = writev(out->fd, v + i, (int)(n - i));
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pf = {.fd = out->fd, .events = POLLOUT};
                if (poll(&pf, 1, 1000) < 0 && errno != EINTR)
                    return -errno;
                if (atomic_load(&out->err_fast))
                    return atomic_load(&out->err_fast);
                continue;
            }
            return -errno;
        }
        if (r == 0)
            return -EIO;
        out->bytes_out += (uint64_t)r;
        out->pos += (uint64_t)r;
        size_t left = (size_t)r;
        while (i < n && left >= v[i].iov_len) {
            left -= v[i].iov_len;
            i++;
        }
        if (i < n) {
            v[i].iov_base = (uint8_t *)v[i].iov_base + left;
            v[i].iov_len -= left;
        }
        while (i < n && v[i].iov_len == 0)
            i++;
    }
    return 0;
}

static int out_write_all(TarStreamOut *out, const uint8_t *p, size_t n)
{
    struct iovec v = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
    return out_writev_all(out, &v, 1);
}

static int out_flush_cbuf(TarStreamOut *out)
{
    int r = out_write_all(out, out->cbuf, out->cbuf_len);
    out->cbuf_len = 0;
    return r;
}

typedef enum { EMIT_CONTINUE, EMIT_FLUSH, EMIT_END } EmitMode;

/* Writes or compresses n bytes; FLUSH and END also push out what the compressor holds. */
static int out_emit(TarStreamOut *out, const uint8_t *p, size_t n, EmitMode mode)
{
    bool push = mode != EMIT_CONTINUE;
    switch (out->comp) {
    case TARSTREAM_COMPRESSION_GZIP: {
        int flush = mode == EMIT_END ? Z_FINISH : mode == EMIT_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        out->z.next_in = (Bytef *)p;
        out->z.avail_in = (uInt)n;
        for (;;) {
            out->z.next_out = out->cbuf + out->cbuf_len;
            out->z.avail_out = (uInt)(out->cbuf_size - out->cbuf_len);
            int zr = deflate(&out->z, flush);
            out->cbuf_len = out->cbuf_size - out->z.avail_out;
            if (zr == Z_STREAM_ERROR)
                return -EIO;
            bool done = mode == EMIT_END ? zr == Z_STREAM_END
                                         : out->z.avail_in == 0 && out->z.avail_out != 0;
            if (out->cbuf_len == out->cbuf_size || (push && done && out->cbuf_len)) {
                int r = out_flush_cbuf(out);
                if (r < 0)
                    return r;
            }
            if (done)
                return 0;
        }
    }
    case TARSTREAM_COMPRESSION_ZSTD: {
        ZSTD_EndDirective dir = mode == EMIT_END     ? ZSTD_e_end
                                : mode == EMIT_FLUSH ? ZSTD_e_flush
                                                     : ZSTD_e_continue;
        ZSTD_inBuffer zin = {p, n, 0};
        for (;;) {
            ZSTD_outBuffer zout = {out->cbuf, out->cbuf_size, out->cbuf_len};
            size_t zr = ZSTD_compressStream2(out->zc, &zout, &zin, dir);
            out->cbuf_len = zout.pos;
            if (ZSTD_isError(zr))
                return -EIO;
            bool done = push ? zr == 0 : zin.pos == zin.size;
            if (out->cbuf_len == out->cbuf_size || (push && done && out->cbuf_len)) {
                int r = out_flush_cbuf(out);
                if (r < 0)
                    return r;
            }
            if (done)
                return 0;
        }
    }
    default:
        return n ? out_write_all(out, p, n) : 0;
    }
}

/* Writes (or compresses) a slot's segments in order. */
static int out_emit_slot(TarStreamOut *out, const OutSlot *s)
{
    if (out->comp == TARSTREAM_COMPRESSION_NONE)
        return out_writev_all(out, s->seg, s->nseg);
    for (unsigned i = 0; i < s->nseg; i++) {
        int r = out_emit(out, s->seg[i].iov_base, s->seg[i].iov_len, EMIT_CONTINUE);
        if (r < 0)
            return r;
    }
    return s->flush ? out_emit(out, NULL, 0, EMIT_FLUSH) : 0;
}

static void *out_thread_main(void *arg)
{
    TarStreamOut *out = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        pthread_mutex_lock(&out->mu);
        while (out->queued == 0 && !out->done) {
            out->writer_waiting = true;
            pthread_cond_wait(&out->cv_work, &out->mu);
            out->writer_waiting = false;
        }
        if (out->queued == 0) {
            pthread_mutex_unlock(&out->mu);
            break;
        }
        unsigned idx = out->wr;
        bool failed = out->err != 0;
        pthread_mutex_unlock(&out->mu);

        if (!failed) {
            int r = out_emit_slot(out, &out->slots[idx]);
            if (r < 0)
                out_set_err(out, r);
        }

        pthread_mutex_lock(&out->mu);
        out->wr = (out->wr + 1) % out->nslots;
        out->queued--;
        if (out->filler_waiting)
            pthread_cond_broadcast(&out->cv_free);
        pthread_mutex_unlock(&out->mu);
    }
    if (!atomic_load(&out->err_fast)) {
        int r = out_emit(out, NULL, 0, EMIT_END);
        if (r < 0)
            out_set_err(out, r);
    }
    return NULL;
}

TarStreamOut *tarstream_out_new(const TarStreamOutConfig *cfg, int *errp)
{
    TarStreamOut *out = xnew0(TarStreamOut, 1);
    out->fd = cfg->fd;
    out->comp = cfg->compression;
    out->cancel = cfg->cancel;
    out->sock = -1;
    struct stat fst;
    off_t at;
    if (fstat(cfg->fd, &fst) == 0 && S_ISREG(fst.st_mode) &&
        (at = lseek(cfg->fd, 0, SEEK_CUR)) >= 0) {
        out->file = true;
        out->sock = 0;
        out->pos = out->prealloc_end = (uint64_t)at;
    }
    /*
     * One 1 MiB block (with its headers and checksum member) per slot: a
     * block is read, hashed and written while it is still in the core's L2.
     * Larger slots cost up to three times the CPU on a busy machine.
     */
    out->slot_size = cfg->slot_size ? cfg->slot_size : 1 * MiB + 8 * KiB;
    out->nslots = cfg->slots ? cfg->slots : 3;
    if (out->nslots < 2)
        out->nslots = 2;
    out->slots = xnew0(OutSlot, out->nslots);
    for (unsigned i = 0; i < out->nslots; i++)
        out->slots[i].buf = xmalloc_page(out->slot_size);
    atomic_init(&out->err_fast, 0);
    pthread_mutex_init(&out->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&out->cv_work, &ca);
    pthread_cond_init(&out->cv_free, &ca);
    pthread_condattr_destroy(&ca);

    int err = 0;
    if (out->comp == TARSTREAM_COMPRESSION_GZIP) {
        int level = cfg->level ? cfg->level : 1;
        if (level < 1 || level > 9)
            err = -EINVAL;
        else if (deflateInit2(&out->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            err = -ENOMEM;
        else
            out->z_ready = true;
    } else if (out->comp == TARSTREAM_COMPRESSION_ZSTD) {
        int level = cfg->level ? cfg->level : 3;
        unsigned workers = cfg->zstd_workers ? cfg->zstd_workers : 2;
        out->zc = ZSTD_createCCtx();
        if (!out->zc)
            err = -ENOMEM;
        else if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel() ||
                 ZSTD_isError(ZSTD_CCtx_setParameter(out->zc, ZSTD_c_compressionLevel, level)))
            err = -EINVAL;
        else {
            ZSTD_CCtx_setParameter(out->zc, ZSTD_c_checksumFlag, 1);
            /* Fails harmlessly with a single-threaded libzstd. */
            ZSTD_CCtx_setParameter(out->zc, ZSTD_c_nbWorkers, (int)workers);
        }
    } else if (out->comp != TARSTREAM_COMPRESSION_NONE) {
        err = -EINVAL;
    }
    if (out->comp != TARSTREAM_COMPRESSION_NONE) {
        out->cbuf_size = 1 * MiB;
        out->cbuf = xmalloc_page(out->cbuf_size);
    }
    out->unthreaded = !cfg->threaded;
    if (!err && cfg->threaded) {
        int pr = pthread_create(&out->thread, NULL, out_thread_main, out);
        if (pr)
            err = -pr;
        else
            out->running = true;
    }
    if (err) {
        tarstream_out_free(out);
        if (errp)
            *errp = err;
        return NULL;
    }
    return out;
}

/* Queues the current slot and waits for the next one to be free. */
static int out_submit(TarStreamOut *out, bool flush)
{
    OutSlot *s = &out->slots[out->cur];
    if (s->bytes == 0 && !flush)
        return 0;
    s->flush = flush;
    if (out->unthreaded) {
        int r = out_emit_slot(out, s);
        slot_reset(s);
        if (r < 0)
            out_set_err(out, r);
        return r;
    }
    pthread_mutex_lock(&out->mu);
    out->queued++;
    out->cur = (out->cur + 1) % out->nslots;
    if (out->writer_waiting)
        pthread_cond_signal(&out->cv_work);
    int r = 0;
    while (out->queued == out->nslots && !out->err) {
        out->filler_waiting = true;
        r = wait_cancellable(&out->cv_free, &out->mu, out->cancel);
        out->filler_waiting = false;
        if (r < 0)
            break;
    }
    pthread_mutex_unlock(&out->mu);
    if (r < 0) {
        out_set_err(out, r);
        return r;
    }
    slot_reset(&out->slots[out->cur]);
    return atomic_load(&out->err_fast);
}

int tarstream_out_flush(TarStreamOut *out)
{
    int r = atomic_load(&out->err_fast);
    if (r)
        return r;
    return out_submit(out, true);
}

uint8_t *tarstream_out_reserve(TarStreamOut *out, size_t len)
{
    if (len > out->slot_size || atomic_load(&out->err_fast))
        return NULL;
    if (cancelled(out->cancel)) {
        out_set_err(out, -ECANCELED);
        return NULL;
    }
    OutSlot *s = &out->slots[out->cur];
    if (s->len + len > out->slot_size || s->nseg >= SLOT_SEGS) {
        if (out_submit(out, false) < 0)
            return NULL;
        s = &out->slots[out->cur];
    }
    return s->buf + s->len;
}

void tarstream_out_commit(TarStreamOut *out, size_t n)
{
    OutSlot *s = &out->slots[out->cur];
    slot_add(s, s->buf + s->len, n);
    s->len += n;
    out->bytes_in += n;
}

int tarstream_out_attach(TarStreamOut *out, const void *data, size_t len)
{
    int r = atomic_load(&out->err_fast);
    if (r)
        return r;
    if (len == 0)
        return 0;
    OutSlot *s = &out->slots[out->cur];
    if (s->nseg >= SLOT_SEGS || (s->bytes && s->bytes + len > out->slot_size)) {
        if ((r = out_submit(out, false)) < 0)
            return r;
        s = &out->slots[out->cur];
    }
    slot_add(s, data, len);
    out->bytes_in += len;
    return 0;
}

int tarstream_out_write(TarStreamOut *out, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t room = out->slot_size - out->slots[out->cur].len;
        if (room == 0)
            room = out->slot_size;
        size_t n = MIN(len, room);
        uint8_t *dst = tarstream_out_reserve(out, n);
        if (!dst)
            return tarstream_out_status(out) ? tarstream_out_status(out) : -EINVAL;
        memcpy(dst, p, n);
        tarstream_out_commit(out, n);
        p += n;
        len -= n;
    }
    return 0;
}

int tarstream_out_member(TarStreamOut *out, const char *name, const void *data, size_t len,
                         uint64_t mtime)
{
    uint8_t hdr[TARSTREAM_BLOCK];
    static const uint8_t zeros[TARSTREAM_BLOCK];
    int r = tarstream_header_encode(hdr, name, len, mtime, 0644);
    if (r < 0)
        return r;
    if ((r = tarstream_out_write(out, hdr, sizeof(hdr))) < 0 ||
        (r = tarstream_out_write(out, data, len)) < 0 ||
        (r = tarstream_out_write(out, zeros, tarstream_padding(len))) < 0)
        return r;
    return 0;
}

int tarstream_out_end(TarStreamOut *out)
{
    static const uint8_t zeros[2 * TARSTREAM_BLOCK];
    return tarstream_out_write(out, zeros, sizeof(zeros));
}

int tarstream_out_status(const TarStreamOut *out)
{
    return atomic_load(&((TarStreamOut *)out)->err_fast);
}

static void out_stop(TarStreamOut *out)
{
    if (!out->running)
        return;
    pthread_mutex_lock(&out->mu);
    out->done = true;
    pthread_cond_signal(&out->cv_work);
    pthread_mutex_unlock(&out->mu);
    pthread_join(out->thread, NULL);
    out->running = false;
}

int tarstream_out_finish(TarStreamOut *out)
{
    if (!atomic_load(&out->err_fast) && cancelled(out->cancel))
        out_set_err(out, -ECANCELED);
    if (out->unthreaded) {
        if (!atomic_load(&out->err_fast) && out_submit(out, false) == 0) {
            int r = out_emit(out, NULL, 0, EMIT_END);
            if (r < 0)
                out_set_err(out, r);
        }
        out_prealloc_release(out);
        return atomic_load(&out->err_fast);
    }
    if (!atomic_load(&out->err_fast) && out->slots[out->cur].bytes) {
        pthread_mutex_lock(&out->mu);
        out->queued++;
        out->cur = (out->cur + 1) % out->nslots;
        pthread_cond_signal(&out->cv_work);
        pthread_mutex_unlock(&out->mu);
    }
    out_stop(out);
    out_prealloc_release(out);
    return atomic_load(&out->err_fast);
}

uint64_t tarstream_out_bytes_in(const TarStreamOut *out)
{
    return out->bytes_in;
}

uint64_t tarstream_out_bytes_out(const TarStreamOut *out)
{
    return out->bytes_out;
}

void tarstream_out_free(TarStreamOut *out)
{
    if (!out)
        return;
    if (out->running) {
        out_set_err(out, -ECANCELED);
        out_stop(out);
    }
    out_prealloc_release(out);
    pthread_mutex_destroy(&out->mu);
    pthread_cond_destroy(&out->cv_work);
    pthread_cond_destroy(&out->cv_free);
    if (out->z_ready)
        deflateEnd(&out->z);
    ZSTD_freeCCtx(out->zc);
    for (unsigned i = 0; i < out->nslots; i++)
        free(out->slots[i].buf);
    free(out->slots);
    free(out->cbuf);
    free(out);
}
