/*
 * Storage repositories on the host: the SR drivers (ext, nfs, iso, udev; one
 * file each) and the files of VDIs inside an SR directory (vdi_file.c).
 *
 * This layer works on directories and files only. It knows the naming rules
 * of an SR directory and the order in which files must change so that a
 * crash at any instant can be repaired, but it keeps no records: the ops
 * layer owns the VDI and SR objects and calls in here. It never includes
 * ops/ or api/ and reports upward only through return values.
 *
 * Errors: functions return 0 or -errno and, when err is not NULL, a malloc'd
 * sentence naming the file and the cause (the caller frees it).
 *
 * An SR directory (ext, nfs) holds:
 *   <uuid>.qcow2              the file of VDI <uuid> (leaves and base copies);
 *                             a base copy's children name it as their backing
 *                             file by this relative name
 *   .hx-tmp-<uuid>.qcow2      a file being made for VDI <uuid>; published
 *                             (renamed to <uuid>.qcow2) once its record is
 *                             committed, removed otherwise
 *   .hx-trash-<uuid>.qcow2    a file being destroyed; unlinked once the
 *                             record is gone, put back otherwise
 *   .hx-reset-<vdi>-<vm>.qcow2  the throw-away overlay of an on-boot=reset
 *                             VDI for one VM run
 * Recovery after a crash compares these names with the records (ops/sr.c).
 */
#ifndef HX_STORAGE_STORAGE_H
#define HX_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- SR drivers ---------------------------------------------------------- */

enum {
    SR_CAP_VDI_CREATE = 1u << 0, /* VDIs are qcow2 files we create (ext, nfs) */
    SR_CAP_ISO = 1u << 1,        /* content is .iso files, read-only */
    SR_CAP_DEVICES = 1u << 2,    /* content is host devices (udev) */
    SR_CAP_SHARED = 1u << 3,     /* reachable from every host of a pool */
    SR_CAP_MOUNTS = 1u << 4,     /* may mount something at attach */
};

/* What a driver needs to attach an SR. */
typedef struct SrAttachArgs {
    const char *sr_uuid;
    const char *state_dir; /* mount points go under <state_dir>/sr/mnt/<sr_uuid> */
    /* device_config lookup: value of key or NULL. */
    const char *(*config)(void *opaque, const char *key);
    void *opaque;
} SrAttachArgs;

typedef struct SrDriver {
    const char *type;         /* "ext" */
    const char *description;  /* for get_supported_types / docs */
    const char *content_type; /* default content type */
    unsigned caps;
    /*
     * Prepares new storage at sr-create time (makes the directory). May be
     * NULL. On failure nothing is left behind.
     */
    int (*create)(const SrAttachArgs *a, char **err);
    /* Makes the SR reachable (mounting if needed); *dir gets the directory
     * holding its files (malloc'd; NULL for udev). */
    int (*attach)(const SrAttachArgs *a, char **dir, char **err);
    /* Undoes attach (unmounts what attach mounted). May be NULL. */
    int (*detach)(const SrAttachArgs *a, char **err);
} SrDriver;

/* The driver for type, or NULL. */
const SrDriver *sr_driver_find(const char *type);
/* All drivers, NULL-terminated. */
const SrDriver *const *sr_drivers(void);

extern const SrDriver sr_driver_ext;
extern const SrDriver sr_driver_nfs;
extern const SrDriver sr_driver_iso;
extern const SrDriver sr_driver_udev;

/* Mount helpers (sr_mount.c): mount(8) of "host:/path" (nfs) or
 * "//server/share" (cifs) read-only or not on <state_dir>/sr/mnt/<sr_uuid>. */
char *sr_mount_point(const SrAttachArgs *a);
int sr_mount(const SrAttachArgs *a, const char *source, const char *fstype, const char *options,
             bool read_only, char **mountpoint, char **err);
int sr_umount(const SrAttachArgs *a, char **err);
/* True if path is a mount point. */
bool sr_is_mounted(const char *path);

/* statvfs of dir: total and available bytes. */
int sr_space(const char *dir, uint64_t *size, uint64_t *avail);

/* ---- ISO libraries and drives ------------------------------------------------- */

typedef struct SrItem {
    char *location; /* file name in the directory, or the device path */
    char *name;     /* name-label */
    uint64_t size;
    uint64_t allocated;
} SrItem;

/* The .iso files directly in dir (sorted by name). */
int sr_iso_list(const char *dir, SrItem **items, size_t *n, char **err);
/* The host's optical drives (/dev/sr*), with a name from sysfs. devdir and
 * sysdir may be NULL for "/dev" and "/sys/block". */
int sr_udev_list(const char *devdir, const char *sysdir, SrItem **items, size_t *n);
void sr_items_free(SrItem *items, size_t n);

/* ---- VDI files ------------------------------------------------------------------ */

typedef enum {
    VDI_NAME_FINAL, /* <uuid>.qcow2 */
    VDI_NAME_TMP,   /* .hx-tmp-<uuid>.qcow2 */
    VDI_NAME_TRASH, /* .hx-trash-<uuid>.qcow2 */
    VDI_NAME__MAX,
} VdiNameKind;

/* dir/<name for uuid> (malloc'd). */
char *vdi_file_path(const char *dir, const char *uuid, VdiNameKind kind);
/* Parses a directory entry: kind and uuid (uuid_out has room for 37). Reset
 * overlays give VDI_NAME__MAX with *is_reset set. False for other names. */
bool vdi_file_parse_name(const char *name, VdiNameKind *kind, char *uuid_out, bool *is_reset);
char *vdi_file_reset_path(const char *dir, const char *vdi_uuid, const char *vm_uuid);

typedef struct VdiFileInfo {
    uint64_t virtual_size;
    uint64_t allocated;     /* st_blocks of the file itself */
    char parent_uuid[40];   /* backing "<uuid>.qcow2" in the same directory, or "" */
    bool has_backing;       /* a backing file is recorded (even a foreign one) */
    char format[16];        /* "qcow2", or what the file really is */
} VdiFileInfo;

/* Reads the header of path (no parents opened). */
int vdi_file_info(const char *path, VdiFileInfo *info, char **err);

/* Creates the empty qcow2 of a new VDI under its tmp name; the caller
 * commits the record, then vdi_file_publish(). parent_uuid: an overlay on
 * <parent>.qcow2 (size may then be 0: the parent's). */
int vdi_file_create_tmp(const char *dir, const char *uuid, uint64_t size, const char *parent_uuid,
                        char **err);
/* Renames the tmp file to the final name and fsyncs dir (the data itself is
 * not flushed: the durability of the database, see vdi_file.c). An old
 * final file goes through the trash name, and is then unlinked. */
int vdi_file_publish(const char *dir, const char *uuid, char **err);
/* Removes whatever tmp file exists for uuid. */
void vdi_file_discard_tmp(const char *dir, const char *uuid);
/* Moves the final file to the trash name (before the record goes). */
int vdi_file_trash(const char *dir, const char *uuid, char **err);
/* Puts a trashed file back (the record could not be removed); if a final
 * file exists meanwhile, the trashed one is removed instead. */
int vdi_file_untrash(const char *dir, const char *uuid, char **err);
/* Unlinks the trash file. */
void vdi_file_purge(const char *dir, const char *uuid);

/*
 * Snapshot/clone of leaf, in the tmp namespace: base gets a hard link to
 * leaf's file (its data, now frozen), and leaf and each of new_uuids get an
 * empty overlay on base. After the caller commits the records, publish base
 * first, then leaf, then the new VDIs. On failure everything made is
 * removed. O(1) in the disk size.
 */
int vdi_file_snapshot_tmp(const char *dir, const char *leaf, const char *base,
                          const char *const *new_uuids, size_t n, uint64_t size, char **err);
/* Undo of a snapshot whose records could not be committed. */
void vdi_file_snapshot_abort(const char *dir, const char *leaf, const char *base,
                             const char *const *new_uuids, size_t n);

/* True if the file holds no data of its own (a fresh overlay). */
int vdi_file_is_empty_overlay(const char *path, bool *empty, char **err);

typedef void (*VdiProgressFn)(void *opaque, double fraction);

/*
 * Merges child (an overlay) into its parent's file, then renames the parent's
 * file to the child's name: afterwards <child>.qcow2 holds the merged data
 * with the parent's parent as backing, and <parent>.qcow2 is gone. Cost:
 * the child's data. Safe at any instant: before the rename the pair reads
 * as before. cancel (may be NULL) is polled between steps.
 */
int vdi_file_coalesce(const char *dir, const char *child, const char *parent,
                      VdiProgressFn progress, void *opaque, char **err);

/*
 * The same merge for a chain a running VM has open: commit(opaque, err) moves the
 * child's data into the parent's file (the VM's own block job, which leaves the VM on
 * the parent's file when the child was its active layer); then the parent's file is
 * renamed to the child's name as above (the VM keeps its descriptors). Returns
 * commit's error, or -errno.
 */
typedef int (*VdiCommitFn)(void *opaque, char **err);
int vdi_file_coalesce_live(const char *dir, const char *child, const char *parent,
                           VdiCommitFn commit, void *opaque, char **err);

/* Grows the virtual size of a file no VM has open (qemu-img resize). */
int vdi_file_resize(const char *path, uint64_t size, char **err);

/* qemu-img for metadata operations: the program and a runner with progress
 * (-p output parsed); out/err output captured into *msg on failure. */
int storage_qemu_img(const char *const *args, VdiProgressFn progress, void *opaque, char **msg);

/*
 * Test hook: when the environment variable HYPERXE_CRASH_AT names point, the
 * process kills itself there with SIGKILL, as a crash would. Used by the
 * crash tests to stop an operation at each step deterministically.
 */
void storage_crash_point(const char *point);

/* Space a new empty qcow2 of size bytes needs (header, tables). */
uint64_t vdi_file_metadata_size(uint64_t virtual_size);

#endif
