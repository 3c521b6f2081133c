/*
 * The VM side of storage: VDIs as the disks and CDs of running VMs, and the
 * VDIs the lifecycle makes (provisioned disks, suspend images). A thin layer
 * over ops/vdi.h so that the lifecycle code speaks of QEMU's terms (a file
 * and its format) and storage keeps its own rules (on-boot=reset overlays,
 * VDI_IN_USE, chains). Every function runs its own transactions: call it
 * outside any.
 */
#ifndef HX_OPS_VMDISK_H
#define HX_OPS_VMDISK_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/ops.h"
#include "vmm/vmm.h"

typedef struct VmDiskFile {
    char *path;
    VmmDiskFormat format;
    bool read_only;
} VmDiskFile;

/* Makes vdi ready for QEMU in vm (a fresh overlay for on-boot=reset). */
bool vmdisk_attach(OpsCtx *ctx, const char *vm_ref, const char *vdi_ref, bool rw, VmDiskFile *f,
                   XsError **errp);
/* After QEMU closed it: discards the on-boot=reset overlay. Never fails. */
void vmdisk_detach(OpsCtx *ctx, const char *vm_ref, const char *vdi_ref);
void vmdisk_file_release(VmDiskFile *f);

/* A new empty VDI (and its file) in sr (NULL: the pool's default SR). */
bool vmdisk_create(OpsCtx *ctx, const char *sr_ref, int64_t size, const char *name,
                   const char *description, int type, const XsValue *sm_config, char **vdi_ref,
                   XsError **errp);
bool vmdisk_destroy(OpsCtx *ctx, const char *vdi_ref, XsError **errp);
/* A clone (copy-on-write) or a full copy (into sr, NULL: the same SR) of a VDI. */
bool vmdisk_clone(OpsCtx *ctx, const char *vdi_ref, bool full_copy, const char *sr_ref,
                  char **new_vdi, XsError **errp);
/* A new VDI holding the bytes of a local file (suspend images). */
bool vmdisk_create_from_file(OpsCtx *ctx, const char *sr_ref, const char *name, int type,
                             const char *path, char **vdi_ref, XsError **errp);
/* Writes the bytes of a VDI into a new local raw file. */
bool vmdisk_export_raw(OpsCtx *ctx, const char *vdi_ref, const char *path, XsError **errp);

/* Gives storage the hooks that snapshot and grow disks of running VMs. */
void vmdisk_register_live_hooks(void);

#endif
