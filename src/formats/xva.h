/*
 * The XVA container (XenServer VM export, "export_vsn 2"): a tar stream with
 * ova.xml first, then every disk as 1 MiB block members "Ref:N/%08d", each
 * followed by its "Ref:N/%08d.xxhash" (XXH64) or ".checksum" (SHA-1) member,
 * optionally gzip- or zstd-compressed as a whole. Also the single-disk
 * "/export_raw_vdi?format=tar" variant (prefix "vdi", no ova.xml).
 *
 * The writer streams to a file descriptor that is never seeked (a pipe or
 * socket is fine); the reader consumes a stream in constant memory and
 * reproduces xapi's Stream_vdi.recv_all_vdi exactly (block numbers are
 * counters, gaps are multiples of the first data member's size).
 *
 * What ova.xml *means* is not this module's business: the writer takes it as
 * bytes and the reader hands it to a callback that answers with the disks to
 * expect. Disk data comes from and goes to callbacks; nothing here opens
 * disks or knows about VDIs, SRs or the database.
 *
 * Legacy version-1 directories are in xva_v1.h.
 */
#ifndef HX_FORMATS_XVA_H
#define HX_FORMATS_XVA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define XVA_BLOCK_SIZE (1024u * 1024u)
#define XVA_OVA_XML "ova.xml"
/* Prefix of /export_raw_vdi?format=tar streams. */
#define XVA_RAW_TAR_PREFIX "vdi"
/* Largest disk the writer accepts: xapi's 8-digit block names must sort. */
#define XVA_WRITE_MAX_DISK_SIZE (99999999ull * XVA_BLOCK_SIZE)
/* Largest virtual size the reader accepts (1 PiB). */
#define XVA_READ_MAX_DISK_SIZE (1ull << 50)
/* Default bound on the size of ova.xml when reading. */
#define XVA_DEFAULT_MAX_OVA_XML (64u * 1024u * 1024u)
/* Most disks in one archive; longest disk id. */
#define XVA_MAX_DISKS 4096
#define XVA_ID_MAX 64

typedef enum {
    XVA_COMPRESSION_NONE, /* writer default; reader: detect (see xva_import) */
    XVA_COMPRESSION_GZIP,
    XVA_COMPRESSION_ZSTD,
    XVA_COMPRESSION__MAX
} XvaCompression;

typedef enum {
    XVA_CHECKSUM_DEFAULT, /* XXH64 for XVA exports, SHA-1 for raw tar exports */
    XVA_CHECKSUM_XXHASH,  /* ".xxhash": XXH64 seed 0, 16 upper-case hex digits */
    XVA_CHECKSUM_SHA1,    /* ".checksum": SHA-1, 40 lower-case hex digits */
    XVA_CHECKSUM__MAX
} XvaChecksum;

/* ------------------------------------------------------------------ errors */

typedef enum {
    XVA_ERROR_NONE,
    XVA_ERROR_IO,              /* the fd or source failed; code = its -errno */
    XVA_ERROR_CALLBACK,        /* a caller's callback failed; code = its return value */
    XVA_ERROR_CANCELLED,       /* the cancel flag was set; code = -ECANCELED */
    XVA_ERROR_UNEXPECTED_FILE, /* IMPORT_ERROR_UNEXPECTED_FILE [expected, found]; -EBADMSG */
    XVA_ERROR_TRUNCATED,       /* the stream ended early; -ENODATA */
    XVA_ERROR_INVALID,         /* malformed tar or XVA structure; -EBADMSG */
    XVA_ERROR_CHECKSUM,        /* a block's checksum does not match; -EBADMSG */
    XVA_ERROR_COMPRESSION,     /* invalid gzip/zstd data; -EPROTO */
    XVA_ERROR_LIMIT,           /* a size or count beyond the bounds above; -EFBIG */
    XVA_ERROR_ARGUMENT,        /* bad arguments from the caller (ids, sizes); -EINVAL */
    XVA_ERROR__MAX
} XvaErrorKind;

typedef struct XvaError {
    XvaErrorKind kind;
    int code;            /* the negative value the function returned */
    char expected[64];   /* XVA_ERROR_UNEXPECTED_FILE: "ova.xml" */
    char found[256];     /* XVA_ERROR_UNEXPECTED_FILE: the member found (escaped) */
    char message[512];   /* for people: names the member or disk and what is wrong */
} XvaError;

/* "io", "callback", "cancelled", "unexpected-file", ... */
const char *xva_error_kind_name(XvaErrorKind kind);

/* ------------------------------------------------------------------ writer */

/*
 * Where a disk's bytes come from. Both callbacks are called from the thread
 * that called xva_export(), in increasing offset order.
 */
typedef struct XvaDiskSource {
    void *ctx;
    /* Fills buf with exactly len bytes at offset; 0 or -errno. */
    int (*read)(void *ctx, uint64_t offset, size_t len, void *buf);
    /*
     * Optional (NULL = everything allocated). Describes [offset, offset+len):
     * *allocated false means the first *run bytes read as zeros and need not
     * be read; 1 <= *run <= len. 0 or -errno.
     */
    int (*block_status)(void *ctx, uint64_t offset, uint64_t len, bool *allocated,
                        uint64_t *run);
    /*
     * Optional, tried before read: points *ptr at the bytes at offset in
     * memory the source already has (a read-only mmap of a raw image, the
     * data clusters of a mapped qcow2), so they are hashed and written
     * without a copy. Returns how many bytes are there (1..len; a block may
     * be gathered from several calls), 0 to have the block read with read()
     * instead, or -errno. The memory must stay valid and unchanged until
     * xva_export() returns (a file that could be truncated meanwhile would
     * raise SIGBUS: map only images nothing else writes).
     */
    ssize_t (*map)(void *ctx, uint64_t offset, size_t len, const void **ptr);
} XvaDiskSource;

typedef struct XvaExportDisk {
    const char *id; /* "Ref:N": the directory name; [A-Za-z0-9:._-], not "." or ".." */
    uint64_t size;  /* virtual size in bytes */
    XvaDiskSource source;
} XvaExportDisk;

typedef struct XvaExportOptions {
    XvaCompression compression;
    int level;             /* 0 = default: gzip 1, zstd 3 */
    unsigned zstd_workers; /* 0 = 2 */
    int64_t mtime;         /* ova.xml's mtime; 0 = now */
    XvaChecksum checksum;
    /*
     * If > 0: when nothing was emitted for this long while skipping zero
     * blocks, emit an empty keep-alive member as xapi does (5000 there), so
     * idle-connection firewalls do not cut the stream. 0 = never.
     */
    unsigned keepalive_ms;
    /* Progress in virtual bytes of all disks; called on the caller's thread. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    /* Checked between blocks; when set the export stops with -ECANCELED. */
    const atomic_bool *cancel;
    /*
     * Write (and compress) on the calling thread instead of a writer thread:
     * about 5% less CPU, no overlap of reading and writing (slower when a
     * second core is free).
     */
    bool no_threads;
} XvaExportOptions;

typedef struct XvaExportStats {
    uint64_t blocks;        /* data members written */
    uint64_t blocks_zero;   /* blocks skipped as zero or unallocated */
    uint64_t keepalives;    /* empty keep-alive members */
    uint64_t bytes_read;    /* bytes read from the disk sources */
    uint64_t bytes_tar;     /* size of the tar stream */
    uint64_t bytes_written; /* bytes written to fd (after compression) */
} XvaExportStats;

/*
 * Writes an XVA to fd: ova.xml (mtime opts->mtime), then the disks in
 * lexicographic order of their ids (Ref:10 before Ref:9), then the end of
 * archive. Blocks that are unallocated or read as all zeros are skipped,
 * except block 0 and the last block of each disk. n_disks may be 0 (a
 * metadata-only export). The fd is written sequentially; a closed pipe or
 * socket gives -EPIPE, never SIGPIPE.
 * Returns 0 or a negative errno with *err filled (err may be NULL); stats
 * may be NULL. On failure the stream written so far is incomplete.
 */
int xva_export(int fd, const void *ova_xml, size_t ova_xml_len, const XvaExportDisk *disks,
               size_t n_disks, const XvaExportOptions *opts, XvaExportStats *stats,
               XvaError *err);

/*
 * Writes one disk as an /export_raw_vdi?format=tar stream: members
 * "vdi/%08d" and their checksums (SHA-1 ".checksum" by default, as xapi's
 * vhd-tool writes them), no ova.xml; disk->id is ignored.
 */
int xva_export_raw_tar(int fd, const XvaExportDisk *disk, const XvaExportOptions *opts,
                       XvaExportStats *stats, XvaError *err);

/* ------------------------------------------------------------------ reader */

/* A stream to read: a file descriptor, or a read callback when read != NULL. */
typedef struct XvaInput {
    int fd;
    void *ctx;
    /* Reads up to len bytes: count, 0 at the end, or -errno. */
    ssize_t (*read)(void *ctx, void *buf, size_t len);
    /*
     * fd is a regular file that may be mapped instead of read (an
     * uncompressed archive, for a sink with write_ref): its data reaches
     * the sink without a copy. A file that shrinks meanwhile fails the
     * import (XVA_ERROR_IO) instead of raising SIGBUS.
     */
    bool map;
} XvaInput;

/* The disks the ova.xml callback expects; filled through xva_plan_add_disk(). */
typedef struct XvaPlan XvaPlan;

/*
 * Adds a disk to expect, with its id ("Ref:N") and virtual size. Returns its
 * disk index (0, 1, ... in the order added; the index passed to the write
 * and zero callbacks), or -EINVAL (bad id), -EEXIST (duplicate id), -EFBIG
 * (size beyond XVA_READ_MAX_DISK_SIZE), -E2BIG (too many disks).
 */
int xva_plan_add_disk(XvaPlan *plan, const char *id, uint64_t size);

/*
 * Callbacks of the reader, all called on the thread that called the import
 * function, one at a time, in stream order.
 */
typedef struct XvaImportSink {
    void *ctx;
    /*
     * Receives ova.xml (xml[len] == '\0'; it may contain other NULs) and adds
     * the disks to expect to plan. Returns 0, or a negative value that stops
     * the import (reported as XVA_ERROR_CALLBACK with that code). Required by
     * xva_import(); optional for xva_verify().
     */
    int (*ova_xml)(void *ctx, const char *xml, size_t len, XvaPlan *plan);
    /* Optional: a disk's data starts (size = virtual size, or 0 if not yet known). */
    int (*disk_begin)(void *ctx, size_t disk, const char *id, uint64_t size);
    /* Data at offset of disk; called with non-zero data only. Required for imports. */
    int (*write)(void *ctx, size_t disk, uint64_t offset, const void *buf, size_t len);
    /*
     * Optional, used instead of write when the input is mapped (XvaInput.map):
     * buf stays valid and unchanged until the disk's disk_end returns, or
     * until stop (below) returns when the import fails, so the sink may
     * keep a reference instead of copying. Reading it raises SIGBUS if the
     * file shrinks: only the kernel should read it (write(2) from it fails
     * with EFAULT instead), or code under memguard_run().
     */
    int (*write_ref)(void *ctx, size_t disk, uint64_t offset, const void *buf, size_t len);
    /* Optional, with write_ref: the import failed; stop using every buffer
     * given to write_ref before returning (the mapping goes away). */
    void (*stop)(void *ctx);
    /*
     * Optional: [offset, offset+len) of disk must read as zeros (skipped
     * blocks and all-zero runs of at least 4 KiB in data). A target created
     * zero-filled (a new sparse file) may do nothing. NULL = ignore.
     */
    int (*zero)(void *ctx, size_t disk, uint64_t offset, uint64_t len);
    /* Optional: a disk is complete; size is where its data ended. */
    int (*disk_end)(void *ctx, size_t disk, uint64_t size);
} XvaImportSink;

typedef struct XvaImportOptions {
    bool force;          /* a checksum mismatch is counted, not an error (xe vm-import force=true) */
    size_t max_ova_xml;  /* 0 = XVA_DEFAULT_MAX_OVA_XML */
    bool no_threads;     /* read on the calling thread instead of a read-ahead thread */
    void (*progress)(void *ctx, uint64_t done, uint64_t total); /* virtual bytes */
    void *progress_ctx;
    const atomic_bool *cancel; /* checked between members and while waiting for input */
} XvaImportOptions;

typedef struct XvaImportStats {
    XvaCompression compression; /* as detected */
    uint64_t blocks;             /* data members, keep-alives included */
    uint64_t keepalives;         /* empty data members */
    uint64_t checksums_xxhash;   /* verified .xxhash members */
    uint64_t checksums_sha1;     /* verified .checksum members */
    uint64_t checksum_mismatches; /* tolerated because of force */
    uint64_t bytes_data;         /* bytes given to the write callback */
    uint64_t bytes_zero;         /* bytes given to the zero callback */
    uint64_t bytes_in;           /* tar bytes consumed (decompressed) */
} XvaImportStats;

/*
 * Reads an XVA: gzip or zstd compression is detected when the first 512
 * bytes are not a tar header. ova.xml must be the first member (else
 * XVA_ERROR_UNEXPECTED_FILE with expected "ova.xml" and the name found); it
 * goes to sink->ova_xml, then the disks the callback planned are received
 * in lexicographic order of their ids, as xapi does: block numbers count up,
 * a gap of n numbers is n times the size of the first data member of the
 * archive, every data member is followed by its .xxhash or .checksum member,
 * and each disk's data must add up exactly to its virtual size. Reading
 * stops after the last block of the last disk (the end-of-archive marker is
 * not looked at, though up to 3 MiB beyond may have been read from the
 * fd, 1.25 MiB with no_threads). A disk of size 0 has no members.
 * Returns 0 or a negative errno with *err filled (err and stats may be NULL).
 */
int xva_import(const XvaInput *in, const XvaImportSink *sink, const XvaImportOptions *opts,
               XvaImportStats *stats, XvaError *err);

/*
 * Reads an /import_raw_vdi?format=tar stream of one disk of the given size
 * (members "vdi/NNNNNNNN"; checksums always verified unless opts->force).
 * Disk index 0; sink->ova_xml is not used.
 */
int xva_import_raw_tar(const XvaInput *in, uint64_t size, const XvaImportSink *sink,
                       const XvaImportOptions *opts, XvaImportStats *stats, XvaError *err);

/* ------------------------------------------------------------------ verify */

typedef struct XvaVerifyDisk {
    char id[XVA_ID_MAX + 1];
    uint64_t size;   /* bytes the members account for (gaps included) */
    uint64_t blocks; /* data members */
} XvaVerifyDisk;

typedef struct XvaVerifyReport {
    XvaCompression compression;
    size_t ova_xml_len;
    size_t n_disks;
    XvaVerifyDisk *disks; /* owned; release with xva_verify_report_release() */
    uint64_t checksums;   /* verified checksum members */
} XvaVerifyReport;

/*
 * Re-reads a whole XVA without knowing its disks: ova.xml first, then
 * directories in increasing id order, block numbers increasing, every
 * checksum right, the end-of-archive marker present and only zeros after
 * it. If sink is given, sink->ova_xml may plan disks; if it plans at least
 * one, the disks found must match the plan exactly (ids and sizes; planned
 * disks of size 0 have no blocks). sink->disk_begin/write/zero/disk_end
 * (all optional here) receive the data, disk indexes being plan indexes or,
 * without a plan, the order in which disks appear. force is ignored.
 * Returns 0 or a negative errno with *err.
 */
int xva_verify(const XvaInput *in, const XvaImportSink *sink, const XvaImportOptions *opts,
               XvaVerifyReport *report, XvaError *err);
void xva_verify_report_release(XvaVerifyReport *report);

/* True if id is usable as a disk id (directory name) in an archive. */
bool xva_id_valid(const char *id);

#endif
