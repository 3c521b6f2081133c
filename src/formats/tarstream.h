/*
 * Streaming tar plumbing for XVA and similar archives: POSIX ustar header
 * encoding and decoding, a buffered input that reads a file descriptor (a
 * pipe, socket or file, never seeked) or a read callback and undoes gzip or
 * zstd compression on the fly, and an output that writes block-sized
 * buffers, optionally compressing them, on the caller's thread or a worker
 * thread. Memory use is bounded and
 * fixed when a stream is created.
 *
 * This layer knows tar framing only: it does not know what members mean
 * (that is xva.c) and holds no global state.
 */
#ifndef HX_FORMATS_TARSTREAM_H
#define HX_FORMATS_TARSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TARSTREAM_BLOCK 512
/* Longest member name accepted from an archive (GNU/pax long names). */
#define TARSTREAM_NAME_MAX 1024

typedef enum {
    TARSTREAM_COMPRESSION_AUTO, /* input only: detect (tar header, zstd magic, else gzip) */
    TARSTREAM_COMPRESSION_NONE,
    TARSTREAM_COMPRESSION_GZIP,
    TARSTREAM_COMPRESSION_ZSTD,
    TARSTREAM_COMPRESSION__MAX
} TarStreamCompression;

/* "none", "gzip", "zstd" ("auto" for AUTO). */
const char *tarstream_compression_name(TarStreamCompression c);

/* Error classes an input stream can report (see tarstream_in_error()). */
typedef enum {
    TARSTREAM_ERROR_NONE,
    TARSTREAM_ERROR_IO,          /* the source failed: code is its -errno */
    TARSTREAM_ERROR_COMPRESSION, /* the gzip or zstd data is invalid or cut short */
    TARSTREAM_ERROR_CANCELLED,
    TARSTREAM_ERROR__MAX
} TarStreamErrorKind;

/* ---------------------------------------------------------------- headers */

typedef enum {
    TARSTREAM_TYPE_REGULAR,   /* '0', NUL or '7' */
    TARSTREAM_TYPE_DIRECTORY, /* '5' */
    TARSTREAM_TYPE_OTHER,     /* links, devices, fifos, sparse files, ... */
    TARSTREAM_TYPE__MAX
} TarStreamType;

typedef struct TarStreamHeader {
    char name[TARSTREAM_NAME_MAX + 1]; /* NUL-terminated, never contains NUL */
    uint64_t size;
    uint64_t mtime;
    unsigned mode;
    TarStreamType type;
    char typeflag; /* the raw type byte, for messages */
} TarStreamHeader;

/*
 * Fills a 512-byte POSIX ustar header for a regular file (uid/gid 0, no user
 * or group names). A name longer than 100 bytes is split at a '/' into the
 * ustar prefix field when it fits there; otherwise -ENAMETOOLONG. Names must
 * be non-empty and printable ASCII (-EINVAL); sizes must fit the 11-digit
 * octal field (-EFBIG). Returns 0 on success.
 */
int tarstream_header_encode(uint8_t out[TARSTREAM_BLOCK], const char *name, uint64_t size,
                            uint64_t mtime, unsigned mode);

/* Number of zero bytes that follow size bytes of member data. */
static inline size_t tarstream_padding(uint64_t size)
{
    return (size_t)((TARSTREAM_BLOCK - (size % TARSTREAM_BLOCK)) % TARSTREAM_BLOCK);
}

/* True if the 512 bytes are a well-formed header (checksum and fields). */
bool tarstream_header_valid(const uint8_t blk[TARSTREAM_BLOCK]);

/* ----------------------------------------------------------------- input */

typedef struct TarStreamIn TarStreamIn;

/* A pull source: reads up to len bytes, returns the count, 0 at the end, or -errno. */
typedef ssize_t (*TarStreamReadFn)(void *ctx, void *buf, size_t len);

typedef struct TarStreamInConfig {
    int fd;                      /* used when read is NULL */
    TarStreamReadFn read;        /* else this callback with read_ctx */
    void *read_ctx;
    TarStreamCompression compression; /* AUTO to detect */
    bool threaded;               /* read and decompress ahead on a worker thread */
    size_t buffer_size;          /* decompressed read-ahead; 0 = 2 MiB (threaded) or 256 KiB */
    const atomic_bool *cancel;   /* optional: waits give up with -ECANCELED once set */
    /*
     * fd may be read through a read-only mapping when it is a regular file
     * holding an uncompressed tar (from its current offset): no read-ahead
     * copy, and peeked bytes stay where they are until tarstream_in_free()
     * (tarstream_in_stable()). Reading them raises SIGBUS if the file
     * shrinks meanwhile: consumers read them under memguard_run() (this
     * stream's own reads do, and fail with -EIO).
     */
    bool map;
} TarStreamInConfig;

/* Creates an input stream; never fails (errors surface on the first read). */
TarStreamIn *tarstream_in_new(const TarStreamInConfig *cfg);
/* Stops the worker thread (if any) and frees everything; accepts NULL. */
void tarstream_in_free(TarStreamIn *in);
/* True if the stream is a mapped file: bytes returned by tarstream_in_peek()
 * stay valid and unchanged until tarstream_in_free(). */
bool tarstream_in_stable(const TarStreamIn *in);

/*
 * Points *p at the next available bytes (at most max, at least 1) without
 * consuming them. Returns the count, 0 at the end of the stream, or -errno
 * (details in tarstream_in_error()).
 */
ssize_t tarstream_in_peek(TarStreamIn *in, const uint8_t **p, size_t max);
/* Consumes n bytes returned by the last peek. */
void tarstream_in_advance(TarStreamIn *in, size_t n);
/* Reads exactly len bytes: 0, -ENODATA if the stream ends first, or -errno. */
int tarstream_in_read(TarStreamIn *in, void *buf, size_t len);
/* Discards exactly len bytes: 0, -ENODATA if the stream ends first, or -errno. */
int tarstream_in_skip(TarStreamIn *in, uint64_t len);

/* Bytes consumed so far (decompressed). */
uint64_t tarstream_in_offset(const TarStreamIn *in);
/* The compression in use (after detection; AUTO before the first read). */
TarStreamCompression tarstream_in_compression(const TarStreamIn *in);
/* The last error: its class and a message (empty if none). */
TarStreamErrorKind tarstream_in_error(const TarStreamIn *in, const char **message);

typedef enum {
    TARSTREAM_NEXT_HEADER, /* *h is filled; the member's data follows */
    TARSTREAM_NEXT_END,    /* a zero block: end of archive */
    TARSTREAM_NEXT_EOF,    /* the stream ended exactly at a header boundary */
    TARSTREAM_NEXT__MAX
} TarStreamNext;

/*
 * Reads the next member header, folding GNU long-name ('L') and pax ('x')
 * extended headers into it and skipping pax global headers ('g'). Returns a
 * TarStreamNext value, -ENODATA if the stream ends inside a header, -EBADMSG
 * for a malformed header (message in *why, a static string), or -errno.
 */
int tarstream_in_next(TarStreamIn *in, TarStreamHeader *h, const char **why);

/* ---------------------------------------------------------------- output */

typedef struct TarStreamOut TarStreamOut;

typedef struct TarStreamOutConfig {
    int fd;                          /* pipe, socket or file; written sequentially */
    TarStreamCompression compression; /* NONE, GZIP or ZSTD */
    int level;                       /* 0 = default: gzip 1, zstd 3 */
    unsigned zstd_workers;           /* 0 = 2 */
    size_t slot_size;                /* 0 = 1 MiB + 8 KiB (one XVA block and its checksum) */
    unsigned slots;                  /* 0 = 3 */
    const atomic_bool *cancel;       /* optional: waits give up with -ECANCELED */
    bool threaded;                   /* write from a worker thread (else on the caller's) */
} TarStreamOutConfig;

/*
 * Creates an output stream (and starts its writer thread if threaded);
 * NULL + *errp = -errno on failure. A broken pipe gives -EPIPE: the
 * writer thread blocks signals, sockets are written with MSG_NOSIGNAL, and
 * on the caller's thread SIGPIPE is blocked around each write to a pipe.
 */
TarStreamOut *tarstream_out_new(const TarStreamOutConfig *cfg, int *errp);
/*
 * Returns space for len bytes (len <= slot size) to be filled and then
 * committed; NULL on error (the writer failed, or cancel): see
 * tarstream_out_status().
 */
uint8_t *tarstream_out_reserve(TarStreamOut *out, size_t len);
/* Commits n bytes (n <= the reserved length) written at the reserved pointer. */
void tarstream_out_commit(TarStreamOut *out, size_t n);
/*
 * Appends len bytes by reference: the writer writes (or compresses) them
 * from data itself, which must stay valid and unchanged until
 * tarstream_out_finish() or tarstream_out_free() returns. 0 or -errno.
 */
int tarstream_out_attach(TarStreamOut *out, const void *data, size_t len);
/* Appends len bytes; 0 or -errno. */
int tarstream_out_write(TarStreamOut *out, const void *data, size_t len);
/* Appends a regular-file member (header, data, padding); 0 or -errno. */
int tarstream_out_member(TarStreamOut *out, const char *name, const void *data, size_t len,
                         uint64_t mtime);
/*
 * Hands everything appended so far to the writer thread, which writes it
 * and, when compressing, flushes the compressor (Z_SYNC_FLUSH, ZSTD_e_flush)
 * so that the bytes reach the fd now. Does not wait for the write.
 * 0 or -errno.
 */
int tarstream_out_flush(TarStreamOut *out);
/* Appends the end-of-archive marker (two zero blocks); 0 or -errno. */
int tarstream_out_end(TarStreamOut *out);
/* 0, or the first -errno the writer met (e.g. -EPIPE, -ENOSPC), or -ECANCELED. */
int tarstream_out_status(const TarStreamOut *out);
/* Flushes, ends the compressed stream and stops the thread; 0 or -errno. */
int tarstream_out_finish(TarStreamOut *out);
/* Bytes handed in so far, and bytes written to the fd (valid after finish). */
uint64_t tarstream_out_bytes_in(const TarStreamOut *out);
uint64_t tarstream_out_bytes_out(const TarStreamOut *out);
/* Stops the thread if still running (abandoning unwritten data); accepts NULL. */
void tarstream_out_free(TarStreamOut *out);

#endif
