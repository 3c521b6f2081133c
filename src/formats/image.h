/*
 * Disk images: one interface over raw, qcow2, VHD and VMDK files.
 *
 * An ImgReader is an open image (and, for qcow2 backing files and VHD
 * differencing disks, its chain of parents). It answers two questions about
 * the virtual disk: what bytes are at an offset (img_read) and what kind of
 * run starts there (img_block_status: DATA, ZERO or UNALLOCATED). Writers
 * consume an ImgSource, which is the same two operations behind callbacks, so
 * any reader or any producer (an HTTP upload, a test pattern) can be written
 * out in any format. Streaming formats (raw, VHD, VMDK streamOptimized) are
 * written in one pass and work on pipes and sockets.
 *
 * This layer is pure: paths, file descriptors and callbacks in, bytes out. It
 * keeps no global state, starts no daemon work and knows nothing of VDIs or
 * XenAPI. Every parser treats its input as hostile: malformed files give an
 * error (a negative errno and a message), never a crash or an unbounded
 * allocation.
 */
#ifndef HX_FORMATS_IMAGE_H
#define HX_FORMATS_IMAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/cleanup.h"
#include "util/macros.h"

/* ------------------------------------------------------------------------ */
/* Formats                                                                    */

typedef enum {
    IMG_FORMAT_PROBE = 0, /* open: detect from the file's contents */
    IMG_FORMAT_RAW,
    IMG_FORMAT_QCOW2,
    IMG_FORMAT_VHD,
    IMG_FORMAT_VMDK,
    IMG_FORMAT__MAX,
} ImgFormat;

/* Variants a writer can produce (IMG_SUBFORMAT_DEFAULT picks the first listed
 * for the format: VHD dynamic, VMDK streamOptimized). */
typedef enum {
    IMG_SUBFORMAT_DEFAULT = 0,
    IMG_SUBFORMAT_VHD_DYNAMIC,
    IMG_SUBFORMAT_VHD_FIXED,
    IMG_SUBFORMAT_VMDK_STREAM_OPTIMIZED,
    IMG_SUBFORMAT_VMDK_MONOLITHIC_SPARSE,
    IMG_SUBFORMAT__MAX,
} ImgSubformat;

/* "raw", "qcow2", "vhd" (also "vpc", qemu's name), "vmdk"; NULL if unknown. */
const char *img_format_name(ImgFormat fmt);
/* Returns IMG_FORMAT__MAX for an unknown name. */
ImgFormat img_format_from_name(const char *name);
/* "dynamic", "fixed", "streamOptimized", "monolithicSparse"; __MAX if unknown. */
ImgSubformat img_subformat_from_name(const char *name);
const char *img_subformat_name(ImgSubformat sub);

/* Largest virtual size any format here accepts (1 PiB); VHD is further
 * limited to IMG_VHD_MAX_SIZE. */
#define IMG_MAX_VIRTUAL_SIZE (1ULL << 50)
/* 0xff000000 sectors = 2040 GiB, the VHD limit qemu and others enforce. */
#define IMG_VHD_MAX_SIZE (0xff000000ULL * 512)

/* ------------------------------------------------------------------------ */
/* Errors                                                                     */

/*
 * Filled by a failing call (when not NULL): code is a positive errno, msg a
 * sentence naming the file and the problem, e.g. "VHD footer checksum
 * mismatch in /x/y.vhd". Lives on the caller's stack: no allocation, safe to
 * use from several threads with one ImgError each.
 */
typedef struct ImgError {
    int code;
    char msg[512];
} ImgError;

/* Sets *err (if not NULL) and returns -code. */
int img_error_set(ImgError *err, int code, const char *fmt, ...) HX_PRINTF(3, 4);

/* ------------------------------------------------------------------------ */
/* Readers                                                                    */

typedef struct ImgReader ImgReader;

enum {
    /* Open only the top layer: what a missing parent would provide reads as
     * zeros. Used to inspect a delta on its own. */
    IMG_OPEN_NO_BACKING = 1u << 0,
    /* Accept VHD footer/header checksum mismatches (structure is still
     * checked). Off by default: a bad checksum means a damaged file. */
    IMG_OPEN_IGNORE_CHECKSUMS = 1u << 1,
    /* Files an image names (backing files, VHD parents, VMDK extents) must be
     * in the image's own directory: only the base name of a reference is
     * used. For images that come from outside (uploads, OVA members), so
     * that a crafted reference cannot expose another file of the host. */
    IMG_OPEN_CONFINE = 1u << 2,
    /* Refuse images that name any other file at all. */
    IMG_OPEN_NO_EXTERNAL = 1u << 3,
};

typedef struct ImgOpenOptions {
    ImgFormat format;       /* IMG_FORMAT_PROBE to detect */
    unsigned flags;         /* IMG_OPEN_* */
    const char *parent;     /* explicit parent / backing file (overrides the
                               image's own reference), or NULL */
    ImgFormat parent_format; /* IMG_FORMAT_PROBE to detect */
} ImgOpenOptions;

/*
 * Opens path read-only. opts may be NULL (probe, defaults). Probing never
 * reports raw for a file that starts like another format; a file that
 * matches no format is raw. Callers handling untrusted raw data must pass the
 * format explicitly (a guest can write a qcow2 header into its raw disk).
 * Returns NULL and fills err on failure. The reader owns its file
 * descriptors and parents; free it with img_reader_free().
 */
ImgReader *img_open(const char *path, const ImgOpenOptions *opts, ImgError *err);
/* Same on an open descriptor (duplicated; the caller keeps fd). name is used
 * in messages and to resolve relative references (may be NULL: then the
 * image may not refer to other files). */
ImgReader *img_open_fd(int fd, const char *name, const ImgOpenOptions *opts, ImgError *err);
void img_reader_free(ImgReader *r);
DEFINE_CLEANUP_FUNC(ImgReader, img_reader_free)
#define _cleanup_img_reader_ _cleanup_(img_reader_freep)

uint64_t img_reader_virtual_size(const ImgReader *r);
ImgFormat img_reader_format(const ImgReader *r);
/* Subformat as a word: "v3", "dynamic", "streamOptimized", ... */
const char *img_reader_subformat(const ImgReader *r);
const char *img_reader_path(const ImgReader *r);
/* The parent layer (borrowed), or NULL. */
ImgReader *img_reader_parent(const ImgReader *r);
/* The reference as recorded in the image (e.g. the qcow2 backing file
 * string), or NULL. */
const char *img_reader_parent_name(const ImgReader *r);
/* Bytes the image's own files occupy on disk (st_blocks), parents excluded. */
uint64_t img_reader_allocated_bytes(const ImgReader *r);

typedef struct ImgReadStats {
    uint64_t bytes; /* bytes read from files, this layer and its parents */
    uint64_t calls; /* preads issued */
} ImgReadStats;
void img_reader_stats(const ImgReader *r, ImgReadStats *st);

/*
 * Reads len bytes of the virtual disk at offset into buf, resolving through
 * parents (pread-like: returns the number of bytes read, short only at the
 * end of the disk, 0 at or past it; -errno on error). Safe to call from
 * several threads at once on one reader.
 */
ssize_t img_read(ImgReader *r, uint64_t offset, size_t len, void *buf, ImgError *err);

/*
 * Points *ptr at the bytes of the virtual disk at offset where they lie as
 * they are in an image file (the data of a raw file, a run of contiguous
 * qcow2 data clusters, in r or the parent that holds them), in a read-only
 * mapping of that file kept until img_reader_free(). Returns their length
 * (1..len), 0 where they are not stored as such (zeros, compressed
 * clusters, formats without mapping, past the end of the file: use
 * img_read()), or -errno. Reading the mapping raises SIGBUS if the file
 * shrinks meanwhile or its disk fails: read it under memguard_run().
 */
ssize_t img_map(ImgReader *r, uint64_t offset, size_t len, const void **ptr, ImgError *err);

typedef enum {
    IMG_EXTENT_DATA,        /* allocated; may hold non-zero bytes */
    IMG_EXTENT_ZERO,        /* allocated, or known, as zeros */
    IMG_EXTENT_UNALLOCATED, /* in no layer (reads as zeros); with
                               IMG_STATUS_TOP_ONLY: not in the top layer */
    IMG_EXTENT__MAX,
} ImgExtentKind;

typedef struct ImgExtent {
    uint64_t offset;
    uint64_t length;
    ImgExtentKind kind;
} ImgExtent;

const char *img_extent_kind_name(ImgExtentKind kind); /* "data", "zero", "unallocated" */

enum {
    /* Report the top layer only: UNALLOCATED then means "comes from the
     * parent"; what a delta export must carry is DATA and ZERO. */
    IMG_STATUS_TOP_ONLY = 1u << 0,
};

/*
 * Describes the run that starts at offset (< virtual size): ext->offset =
 * offset, 0 < ext->length <= maxlen, all of one kind. Runs are as long as
 * the image's tables allow cheaply; adjacent runs may have the same kind.
 * Returns 0 or -errno.
 */
int img_block_status(ImgReader *r, uint64_t offset, uint64_t maxlen, unsigned flags,
                     ImgExtent *ext, ImgError *err);

/* ------------------------------------------------------------------------ */
/* Sources and writers                                                        */

/*
 * What a writer consumes. read() must fill exactly len bytes (0 or -errno);
 * block_status() has img_block_status()'s contract. UNALLOCATED in a source
 * means "not provided": a writer that writes an image with a backing file
 * leaves such runs to the backing file; every other writer writes zeros.
 * The callbacks are called from one thread at a time, never concurrently,
 * but not necessarily the caller's: writers read ahead on a thread of their
 * own. Reads come in increasing offset order.
 */
typedef struct ImgSource {
    uint64_t virtual_size;
    void *opaque;
    int (*read)(void *opaque, uint64_t offset, size_t len, void *buf, ImgError *err);
    int (*block_status)(void *opaque, uint64_t offset, uint64_t maxlen, ImgExtent *ext,
                        ImgError *err);
} ImgSource;

/* Fills src so that it reads r. top_only: block status of the top layer only
 * (the delta), reads still resolve through the chain. r must outlive src. */
void img_source_from_reader(ImgSource *src, ImgReader *r, bool top_only);

typedef struct ImgWriteOptions {
    ImgSubformat subformat;
    /* VHD: keep the exact size (geometry 65535/16/255), as qemu's
     * force_size=on; otherwise the size is rounded up to a CHS geometry as
     * qemu-img does by default. */
    bool vhd_force_size;
    /* qcow2: cluster size (power of two, 512 B .. 2 MiB); 0 = 64 KiB. */
    uint32_t cluster_size;
    /* qcow2: backing file recorded in the new image and its format name (may
     * be NULL); UNALLOCATED runs of the source are left to it. */
    const char *backing_file;
    const char *backing_format;
    /* VMDK: zlib level for streamOptimized grains, -1 = default (1: a third
     * of the CPU of qemu's 6 for ~8% more bytes; see vmdk_write.c). */
    int compression_level;
    /* VMDK streamOptimized: compression threads, 0 = 2. */
    unsigned threads;
    /* VMDK: ddb.adapterType, NULL = "ide". */
    const char *vmdk_adapter_type;
} ImgWriteOptions;

/* Defaults: DEFAULT subformat, compression_level -1, everything else 0. */
void img_write_options_init(ImgWriteOptions *o);

typedef void (*ImgProgressFn)(void *opaque, uint64_t done, uint64_t total);

/* Progress reports (done/total in bytes of the virtual disk) and a cancel
 * flag checked between blocks (a cancelled write returns -ECANCELED). */
typedef struct ImgProgress {
    ImgProgressFn fn; /* may be NULL */
    void *opaque;
    const atomic_bool *cancel; /* may be NULL */
} ImgProgress;

/* True if fmt/sub can be written to a pipe or socket (raw, VHD fixed and
 * dynamic, VMDK streamOptimized); qcow2 and monolithicSparse VMDK need a
 * seekable file. */
bool img_format_can_stream(ImgFormat fmt, ImgSubformat sub);

/*
 * Writes the image of src in format fmt to out_fd, starting at its current
 * position; on success the position is left just after the image. On a
 * regular file, holes are left where the format allows it. opts and
 * progress may be NULL. Returns 0 or -errno (-ESPIPE: the format needs a
 * seekable fd; -ECANCELED: cancelled; -EFBIG: too large for the format).
 */
int img_write(const ImgSource *src, ImgFormat fmt, const ImgWriteOptions *opts, int out_fd,
              const ImgProgress *progress, ImgError *err);

/*
 * A destination that is not a file descriptor (an HTTP reply, a socket with a
 * framing of its own): the image file arrives as pieces in increasing offset
 * order, and what no piece covers (the gaps, and the end up to the length
 * img_write_sink() reports) is zeros. Writers leave out what they know to be
 * zeros (unallocated runs, 64 KiB steps of zeros in data), so a sink sees only
 * the bytes a sparse transfer has to carry. Only streaming formats
 * (img_format_can_stream) can be written to a sink.
 */
typedef struct ImgSink {
    void *opaque;
    /* Bytes [offset, offset + len) of the image file (len > 0); offset is at
     * or past the end of the previous piece. buf is valid during the call
     * only. Returns 0, or -errno to stop the writer (which then returns it);
     * may fill err. Called from the writer's thread. */
    int (*write)(void *opaque, uint64_t offset, const void *buf, size_t len, ImgError *err);
} ImgSink;

/* img_write() into a sink; *length (if not NULL) gets the length of the whole
 * image file. -ESPIPE for formats that need a seekable file. */
int img_write_sink(const ImgSource *src, ImgFormat fmt, const ImgWriteOptions *opts,
                   const ImgSink *sink, const ImgProgress *progress, uint64_t *length,
                   ImgError *err);

/*
 * A qcow2 image without a backing file written from data pushed in
 * increasing virtual offsets, on the caller's thread, into a regular file
 * from its current position (it must be empty past it). Whole clusters are
 * written straight from the caller's buffers (all-zero ones left out),
 * gathered into one pwritev() per flush; a cluster that arrives in pieces
 * is assembled in a buffer first. What is never pushed reads as zeros.
 * progress may be NULL; its cancel flag is checked on each write.
 *
 *   s = img_qcow2_stream_new(fd, size, opts, progress, &err)
 *   img_qcow2_stream_write(s, offset, buf, len)...   offsets never go back;
 *                                                     buf valid until the flush
 *   img_qcow2_stream_flush(s)                        written: the buffers are free
 *   img_qcow2_stream_finish(s)                       tables and header
 *   img_qcow2_stream_free(s)
 *
 * Calls return 0 or -errno with err (given to _new) filled; after a failure
 * every call fails.
 */
typedef struct ImgQcow2Stream ImgQcow2Stream;
ImgQcow2Stream *img_qcow2_stream_new(int fd, uint64_t size, const ImgWriteOptions *opts,
                                     const ImgProgress *progress, ImgError *err);
int img_qcow2_stream_write(ImgQcow2Stream *s, uint64_t offset, const void *buf, size_t len);
int img_qcow2_stream_flush(ImgQcow2Stream *s);
int img_qcow2_stream_finish(ImgQcow2Stream *s);
void img_qcow2_stream_free(ImgQcow2Stream *s);

/* img_write() of the whole chain of src (flattened). */
int img_convert(ImgReader *src, ImgFormat dst_format, const ImgWriteOptions *opts, int out_fd,
                const ImgProgress *progress, ImgError *err);

/* Creates path (which must not exist) as an empty image of size bytes. For
 * qcow2 with opts->backing_file this is an overlay on that file (a relative
 * name is relative to path's directory); size 0 then means the backing
 * file's size. */
int img_create(const char *path, ImgFormat fmt, uint64_t size, const ImgWriteOptions *opts,
               ImgError *err);

#endif
