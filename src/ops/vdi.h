/*
 * Virtual disks for the other ops files (VM lifecycle, snapshots, import):
 * make and destroy VDIs with their files, find the file QEMU must open,
 * prepare a VDI for a VM start and release it at the stop, and fill a VDI
 * from a local image file. The XenAPI messages of the VDI class
 * (ops_vdi_clone, ops_vdi_snapshot, ops_vdi_copy, ops_vdi_resize,
 * ops_vdi_destroy, ... in ops-gen.h) may be called directly too.
 *
 * Every function here runs its own short transactions: call it outside any
 * db_begin()/db_commit(). Long ones report progress on ctx's task and stop
 * with TASK_CANCELLED when it is cancelled. On failure nothing is left
 * behind (no file, no record).
 *
 * VBD.currently_attached is the VM side's to set: a VDI with a VBD that is
 * currently attached is "in use" (VDI_IN_USE for destroy, resize, import,
 * on-boot changes; snapshot and clone go through the live hooks below).
 */
#ifndef HX_OPS_VDI_H
#define HX_OPS_VDI_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/ops.h"

/* What a new VDI is. */
typedef struct OpsVdiSpec {
    const char *sr;               /* SR ref; NULL or OpaqueRef:NULL = the pool's default SR */
    int64_t virtual_size;         /* bytes (> 0; 0 with a source file = the image's size) */
    const char *name_label;       /* NULL = "" */
    const char *name_description; /* NULL = "" */
    int type;                     /* VDI_TYPE_USER, VDI_TYPE_SYSTEM, VDI_TYPE_SUSPEND, ... */
    bool sharable;
    bool read_only;
    const XsValue *sm_config;     /* (string -> string) map or NULL */
    const XsValue *other_config;  /* (string -> string) map or NULL */
} OpsVdiSpec;

/*
 * Creates a VDI and its empty qcow2 file in spec->sr (SR_FULL when the SR
 * cannot hold the file's metadata; SR_OPERATION_NOT_SUPPORTED for ISO and
 * udev SRs). *ret gets the new VDI ref (caller frees). VDI.create goes
 * through here.
 */
bool ops_vdi_create_disk(OpsCtx *ctx, const OpsVdiSpec *spec, char **ret, XsError **errp);

/*
 * Creates a VDI holding the content of a local image file (format "raw",
 * "qcow2", "vhd", "vmdk", or NULL to detect; references to other files are
 * confined to the image's directory). spec->virtual_size 0 takes the image's
 * size. The file is converted into a fresh qcow2 (never used in place).
 */
bool ops_vdi_create_from_file(OpsCtx *ctx, const OpsVdiSpec *spec, const char *path,
                              const char *format, char **ret, XsError **errp);

/*
 * Replaces the content of an existing VDI (not in use) by a local image
 * file, as vdi-import does. An image larger than the VDI gives
 * VDI_TOO_SMALL; a smaller one fills its start (the rest reads as zeros).
 */
bool ops_vdi_import_file(OpsCtx *ctx, const char *vdi, const char *path, const char *format,
                         XsError **errp);

/* VDI.destroy: removes the record and the file (VDI_IN_USE while attached);
 * a base copy left with one child is merged into it, with progress. Same as
 * ops_vdi_destroy(). */
bool ops_vdi_destroy_disk(OpsCtx *ctx, const char *vdi, XsError **errp);

/*
 * The file of a VDI as QEMU opens it (no on-boot=reset handling; use
 * ops_vdi_attach for a VM start). *path is malloc'd; *format is "qcow2"
 * for disks and "raw" for ISOs and host drives (a static string).
 * VDI_MISSING if the record has no file, SR_NOT_ATTACHED if its SR is not
 * plugged.
 */
bool ops_vdi_get_path(OpsCtx *ctx, const char *vdi, char **path, const char **format,
                      XsError **errp);

typedef struct OpsVdiAttachment {
    char *path;          /* the file QEMU must open (malloc'd) */
    const char *format;  /* "qcow2" or "raw" */
    bool read_only;      /* open it read-only (ISO, host drive, read-only VDI or RO VBD) */
    bool ephemeral;      /* path is an on-boot=reset overlay, discarded at detach */
} OpsVdiAttachment;

/*
 * Prepares vdi to be opened by QEMU when vm starts (or hot-plugs it):
 * checks that its file and chain are there, refuses VDI_IN_USE when another
 * running VM has it attached read-write (unless sharable), and for
 * on-boot=reset creates a fresh overlay for this run whose path is given
 * instead of the VDI's file. rw: the VBD's mode is RW. Call before QEMU
 * opens the disk; then set VBD.currently_attached. Release out with
 * ops_vdi_attachment_release().
 */
bool ops_vdi_attach(OpsCtx *ctx, const char *vdi, const char *vm, bool rw,
                    OpsVdiAttachment *out, XsError **errp);
void ops_vdi_attachment_release(OpsVdiAttachment *a);

/*
 * Releases vdi after QEMU has closed it (VM stopped, crashed, or disk
 * unplugged) and after VBD.currently_attached was cleared: discards the
 * on-boot=reset overlay of this run and merges any chain whose merge was
 * put off while the disk was in use. Never fails (problems are logged).
 * Also call it at start-up for every VBD found attached to a VM that is no
 * longer running.
 */
void ops_vdi_detach(OpsCtx *ctx, const char *vdi, const char *vm);

/* True if a VBD with currently_attached=true uses vdi (read lock held). */
bool ops_vdi_is_attached(Db *db, const DbObj *vdi);

/*
 * What storage needs from the VM side for a VDI attached to a running VM.
 * The VM lifecycle code registers them at start-up (ops_startup order does
 * not matter); a NULL member means the operation is refused with
 * VDI_IN_USE while the VDI is attached.
 */
typedef struct OpsVdiLiveHooks {
    /*
     * Snapshot and clone of an attached VDI: new_active is a qcow2 overlay
     * whose backing file is the file the VM has open now; the running VM
     * must switch that disk to it atomically (QMP blockdev-snapshot with an
     * existing overlay) before returning true. The overlay is then renamed
     * to the VDI's own file name (the VM keeps its descriptor): QEMU's idea
     * of file names is stale afterwards, so block jobs must go by node name.
     */
    bool (*snapshot)(OpsCtx *ctx, const char *vbd, const char *new_active, XsError **errp);
    /* Grows the disk of the running VM (QMP block_resize); VDI.resize_online. */
    bool (*resize)(OpsCtx *ctx, const char *vbd, int64_t size, XsError **errp);
    /*
     * A merge in a chain a running VM uses: the layer `depth` places below the active
     * layer of vbd's disk (0: the active layer itself) is an overlay whose parent has no
     * other child. The VM must commit that layer's data into its parent (a block job,
     * with progress on ctx's task) and, for depth > 0, write backing_name as the backing
     * file of the layer above it; for depth 0 it ends on the parent's file. Storage then
     * renames the parent's file to the layer's name. NULL: such merges wait until the VM
     * releases the disk (ops_vdi_detach).
     */
    bool (*merge)(OpsCtx *ctx, const char *vbd, unsigned depth, const char *backing_name,
                  XsError **errp);
} OpsVdiLiveHooks;

/* Registers hooks (copied). */
void ops_vdi_set_live_hooks(const OpsVdiLiveHooks *hooks);

#endif
