/*
 * Internals shared by the image drivers (raw, qcow2, vhd, vmdk) and the
 * generic code in image.c: the driver table, the reader structure, checked
 * file reads, output streams and the source scanner used by writers.
 * Not for use outside src/formats.
 */
#ifndef HX_FORMATS_IMAGE_INT_H
#define HX_FORMATS_IMAGE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "formats/image.h"

/* Longest chain of parents (and VMDK descriptor extents) we follow. */
#define IMG_MAX_CHAIN 32
/* Bound on any metadata table we load (L1, BAT, GD): 64 MiB. */
#define IMG_MAX_TABLE_BYTES (64u * 1024 * 1024)

/* Files already open in a chain, to refuse loops. */
typedef struct ImgChain {
    unsigned depth;
    dev_t dev[IMG_MAX_CHAIN];
    ino_t ino[IMG_MAX_CHAIN];
} ImgChain;

typedef struct ImgDriver ImgDriver;

struct ImgReader {
    const ImgDriver *drv;
    char *path;      /* for messages */
    char *dir;       /* directory for relative references, or NULL */
    int fd;
    uint64_t file_size;
    uint64_t virtual_size;
    char subformat[32];
    unsigned flags; /* IMG_OPEN_* */
    ImgReader *parent;
    char *parent_name;
    uint64_t extra_allocated; /* st_blocks of extra files (VMDK extents) */
    atomic_uint_fast64_t bytes_read;
    atomic_uint_fast64_t read_calls;
    _Atomic(uint8_t *) map; /* the whole file, read-only, once mapped (img_file_map) */
    void *priv;
};

struct ImgDriver {
    const char *name;
    ImgFormat format;
    /* Score 0 (not this format) .. 100 (certain) from the first bytes. */
    int (*probe)(const uint8_t *head, size_t len, uint64_t file_size, int fd);
    /* r->fd, path, dir, file_size, flags are set. Sets virtual_size,
     * subformat, priv; opens parents with img_open_parent(). */
    int (*open)(ImgReader *r, const ImgOpenOptions *o, ImgChain *chain, ImgError *err);
    /* Reads [off, off+len) within the virtual size, through parents. */
    int (*read)(ImgReader *r, uint64_t off, size_t len, uint8_t *buf, ImgError *err);
    /* Top-layer status at off (< virtual size), length <= maxlen. */
    int (*status)(ImgReader *r, uint64_t off, uint64_t maxlen, ImgExtent *ext, ImgError *err);
    /* Optional: img_map() of [off, off+len) within the virtual size. */
    ssize_t (*map)(ImgReader *r, uint64_t off, size_t len, const void **ptr, ImgError *err);
    void (*close)(ImgReader *r);
};

extern const ImgDriver img_driver_raw;
extern const ImgDriver img_driver_qcow2;
extern const ImgDriver img_driver_vhd;
extern const ImgDriver img_driver_vmdk;

/* Reads exactly len bytes at off of fd; a short file is an error naming
 * what was being read. Counts into r's statistics. */
int img_pread(ImgReader *r, int fd, void *buf, size_t len, uint64_t off, const char *what,
              ImgError *err);
/* Same, but bytes past the end of the file read as zeros. */
int img_pread_zfill(ImgReader *r, int fd, void *buf, size_t len, uint64_t off, ImgError *err);

/* Reads [off, off+len) from r's parent, zeros where there is no parent or
 * beyond its size. */
int img_read_parent(ImgReader *r, uint64_t off, size_t len, uint8_t *buf, ImgError *err);

/*
 * Opens ref (a reference recorded in r: backing file, parent, extent) with
 * the rules of r's flags: relative to r->dir, CONFINE keeps only the base
 * name, NO_EXTERNAL refuses. Loops and over-long chains are refused. With
 * as_reader false only resolves and opens the file (returned in *fd_out,
 * path in *path_out) for extents; otherwise opens an ImgReader.
 */
ImgReader *img_open_parent(ImgReader *r, const char *ref, ImgFormat fmt, ImgChain *chain,
                           ImgError *err);
int img_open_extent(ImgReader *r, const char *ref, ImgChain *chain, int *fd_out,
                    char **path_out, ImgError *err);
/* Resolves ref against r as img_open_parent() would; caller frees. NULL with
 * err set if the flags forbid it. */
/* Opens path as given (the caller chose it), with r's flags and the loop
 * checks of chain. */
ImgReader *img_open_explicit(ImgReader *r, const char *path, ImgFormat fmt, ImgChain *chain,
                             ImgError *err);
char *img_resolve_ref(ImgReader *r, const char *ref, ImgError *err);

bool img_is_zero(const void *buf, size_t len);

/* r's file mapped read-only (its first r->file_size bytes), made on first
 * use and kept until the reader is freed; NULL if it cannot be mapped. */
const uint8_t *img_file_map(ImgReader *r);

/* The length (<= len, > 0) of the run at host offset off of fd that is all
 * data or all hole; *hole tells which. Where the file system cannot say,
 * the whole range is data. */
uint64_t img_host_run(int fd, uint64_t off, uint64_t len, bool *hole);

static inline uint16_t img_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t img_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t img_be64(const uint8_t *p)
{
    return (uint64_t)img_be32(p) << 32 | img_be32(p + 4);
}
static inline uint32_t img_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static inline uint64_t img_le64(const uint8_t *p)
{
    return (uint64_t)img_le32(p + 4) << 32 | img_le32(p);
}
static inline void img_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}
static inline void img_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = (v >> 16) & 0xff;
    p[2] = (v >> 8) & 0xff;
    p[3] = v & 0xff;
}
static inline void img_put_be64(uint8_t *p, uint64_t v)
{
    img_put_be32(p, v >> 32);
    img_put_be32(p + 4, v & 0xffffffff);
}
static inline void img_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
    p[2] = (v >> 16) & 0xff;
    p[3] = v >> 24;
}
static inline void img_put_le64(uint8_t *p, uint64_t v)
{
    img_put_le32(p, v & 0xffffffff);
    img_put_le32(p + 4, v >> 32);
}

/* ------------------------------------------------------------------------ */
/* Output streams for writers                                                 */

typedef struct ImgOut {
    int fd;            /* -1 with a sink */
    const ImgSink *sink; /* pieces to a callback: holes allowed, no going back */
    bool seekable;     /* a regular file: pwrite and holes allowed */
    uint64_t base;     /* fd offset where the image starts */
    uint64_t pos;      /* bytes of the image produced so far */
    uint64_t end;      /* highest byte written (seekable) */
    const ImgProgress *progress;
    uint64_t total;    /* virtual size, for progress */
    ImgError *err;
    /* Seekable, written densely (qcow2): the file's blocks are reserved
     * ahead of the writes (fallocate, KEEP_SIZE) up to prealloc_end. */
    bool prealloc;
    uint64_t prealloc_end;
} ImgOut;

int img_out_init(ImgOut *o, int fd, const ImgProgress *p, uint64_t total, ImgError *err);
void img_out_init_sink(ImgOut *o, const ImgSink *sink, const ImgProgress *p, uint64_t total,
                       ImgError *err);
/* Appends at pos. */
int img_out_write(ImgOut *o, const void *buf, size_t len);
/* Appends the n pieces of iov at pos (iov is consumed). */
int img_out_writev(ImgOut *o, struct iovec *iov, int n);
/* Appends buf, leaving holes for 64 KiB runs of zeros on seekable outputs and
 * sinks. */
int img_out_write_sparse(ImgOut *o, const void *buf, size_t len);
/* Appends len zero bytes (a hole on seekable outputs and sinks). */
int img_out_zeros(ImgOut *o, uint64_t len);
/* Writes at image offset off (seekable outputs only); does not move pos. */
int img_out_pwrite(ImgOut *o, const void *buf, size_t len, uint64_t off);
/* Makes the file at least pos long and leaves the fd offset after the image. */
int img_out_finish(ImgOut *o);
/* Gives back the blocks reserved past the end of the file (prealloc); done by
 * img_out_finish(), needed after a failure. */
void img_out_release(ImgOut *o);
/* Progress report and cancel check: returns -ECANCELED when cancelled. */
int img_out_tick(ImgOut *o, uint64_t done);

/* ------------------------------------------------------------------------ */
/* Walking a source in fixed units (clusters, grains, blocks)                 */

typedef enum {
    IMG_UNIT_DATA,    /* must be read (some data, or mixed) */
    IMG_UNIT_ZERO,    /* all explicitly zero */
    IMG_UNIT_UNALLOC, /* all unallocated */
} ImgUnitKind;

typedef struct ImgScan {
    const ImgSource *src;
    uint64_t unit;
    uint64_t pos; /* next unit-aligned offset */
    bool keep_unalloc; /* distinguish UNALLOC from ZERO (backing present) */
} ImgScan;

void img_scan_init(ImgScan *s, const ImgSource *src, uint64_t unit, bool keep_unalloc);
/* Next run of units of one kind: *start (unit aligned), *count units.
 * Returns 1, 0 at the end, -errno on error. */
int img_scan_next(ImgScan *s, uint64_t *start, uint64_t *count, ImgUnitKind *kind,
                  ImgError *err);

/*
 * A source pump: a thread that walks a source in units (as ImgScan) and reads
 * its DATA runs ahead in chunks, so that reading overlaps the writer's work.
 * Items come out in disk order. A DATA item's buffer holds len valid bytes
 * and is zero-filled up to span (a whole number of units, <= chunk); it
 * stays valid until the next img_pump_next() call. Non-data items have no
 * buffer and len = span = the run's length (clipped to the disk size).
 */
typedef struct ImgPump ImgPump;
typedef struct ImgPumpItem {
    ImgUnitKind kind;
    uint64_t start;
    uint64_t len;
    uint64_t span;
    uint8_t *buf;
} ImgPumpItem;

/* chunk: a multiple of unit. Returns NULL (err set) if no thread starts. */
ImgPump *img_pump_start(const ImgSource *src, uint64_t unit, bool keep_unalloc, uint64_t chunk,
                        ImgError *err);
/* Returns 1 with *it filled, 0 at the end, -errno on a source error. */
int img_pump_next(ImgPump *p, ImgPumpItem *it, ImgError *err);
/* Stops the thread (early or at the end) and frees everything. */
void img_pump_free(ImgPump *p);

/* Writers (in their format's file). */
int raw_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err);
int qcow2_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err);
int vhd_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err);
int vmdk_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err);

/* Largest buffer a writer reads from its source at once. */
#define IMG_IO_CHUNK (4u * 1024 * 1024)
/* How far ahead of the writes a dense output's blocks are reserved. */
#define IMG_PREALLOC_AHEAD (64u * 1024 * 1024)

#endif
