/*
 * What the storage ops files (sr.c, pbd.c, vdi.c, vdi_chain.c, vdi_io.c)
 * share and nobody else needs: where an attached SR's files are, the
 * per-SR lock that serialises changes to VDI chains, space checks, and the
 * conventions of VDI records.
 *
 * VDI records of file SRs (ext, nfs): location = uuid, the file is
 * <sr dir>/<uuid>.qcow2; sm_config:vhd-parent = the uuid of the base copy
 * the file is an overlay on (absent for a standalone file),
 * sm_config:image-format = qcow2, sm_config:chain-depth = files in the
 * chain. Base copies: name-label "base copy", managed=false,
 * read-only=true.
 */
#ifndef HX_OPS_STORAGE_INT_H
#define HX_OPS_STORAGE_INT_H

#include <stdint.h>

#include "ops/ops.h"
#include "ops/vdi.h"
#include "storage/storage.h"

/* Longest chain (files, leaf included) a VDI may have; snapshots beyond it
 * are refused. Below the formats layer's own limit of 32. */
#define OPS_VDI_MAX_CHAIN 30
#define OPS_BASE_COPY_NAME "base copy"

/* ---- SRs (sr.c) ---------------------------------------------------------------- */

/* The directory of an attached SR (malloc'd); NULL with SR_NOT_ATTACHED if
 * no PBD of this host is plugged, or SR_OPERATION_NOT_SUPPORTED for udev. */
char *ops_sr_dir(OpsCtx *ctx, const char *sr_ref, XsError **errp);
/* Same by uuid, without errors (NULL if unknown). */
char *ops_sr_dir_by_uuid(const char *sr_uuid);
/* Records the directory of a plugged SR (NULL: unplugged). */
void ops_sr_set_dir(const char *sr_uuid, const char *dir);
const SrDriver *ops_sr_driver(const DbObj *sr);

/* Serialises chain changes (snapshot, clone, destroy, coalesce, resize,
 * import, scan) within one SR. Not held across VM operations. */
void ops_sr_lock(const char *sr_uuid);
void ops_sr_unlock(const char *sr_uuid);

/* SR_FULL unless dir's file system has need bytes free. */
bool ops_sr_check_space(const char *sr_ref, const char *dir, uint64_t need, XsError **errp);
/* Maps -ENOSPC/-EDQUOT to SR_FULL, others to msg as SR_BACKEND_FAILURE. */
void ops_sr_io_error(XsError **errp, int code, const char *dir, const char *msg);

/* Recomputes physical_size, physical_utilisation and virtual_allocation. */
void ops_sr_refresh_sizes_txn(DbTxn *txn, DbObj *sr, const char *dir);
void ops_sr_refresh_sizes(OpsCtx *ctx, const char *sr_ref);

/* Reconciles an attached SR with its directory (crash recovery and scan):
 * finishes or undoes interrupted changes, introduces orphan files, marks
 * records whose file is gone missing, merges chains left mergeable. */
bool ops_sr_reconcile(OpsCtx *ctx, const char *sr_ref, bool at_startup, XsError **errp);

/* Plug/unplug a PBD (pbd.c) and the start-up of all storage (sr.c). */
bool ops_pbd_plug_ref(OpsCtx *ctx, const char *pbd, XsError **errp);
bool ops_storage_startup(HxEnv *env, XsError **errp);
void ops_storage_shutdown(HxEnv *env);

/* allowed_operations of SRs and VDIs (startup.c table). */
void ops_sr_update_allowed(DbTxn *txn, DbObj *sr);
void ops_vdi_update_allowed(DbTxn *txn, DbObj *vdi);

/* ---- VDI chains (vdi_chain.c) ------------------------------------------------------ */

/* The parent (base copy) uuid of a VDI record, "" if none. */
const char *ops_vdi_parent_uuid(const DbObj *vdi);
/* Number of files in vdi's chain, counting vdi (1 = standalone). */
int ops_vdi_chain_depth(Db *db, const DbObj *vdi);
/* Children (records whose vhd-parent is uuid) within sr: count, and the first. */
size_t ops_vdi_children(Db *db, const DbObj *sr, const char *uuid, DbObj **first);
/* True if vdi or any VDI whose chain goes through it is attached. */
bool ops_vdi_subtree_attached(Db *db, const DbObj *sr, const DbObj *vdi);
/*
 * After a chain lost a member: walks up from the base copy uuid, removing
 * base copies left without children and merging those left with one child
 * (when nobody uses that child's chain; otherwise it is done at detach).
 * Caller holds the SR lock. Progress goes to ctx's task.
 */
void ops_vdi_chain_gc(OpsCtx *ctx, const char *sr_ref, const char *dir, const char *base_uuid);
/* The VM side's hooks for attached VDIs (vdi.c). */
OpsVdiLiveHooks ops_vdi_live_hooks(void);
/* Sets sm_config:chain-depth of vdi and every VDI below it. */
void ops_vdi_update_depths_txn(DbTxn *txn, DbObj *sr, DbObj *vdi);

/* ---- VDI records (vdi.c) -------------------------------------------------------------- */

/* Fills the fields of a fresh VDI record for a file of the SR. */
void ops_vdi_init_record(DbTxn *txn, DbObj *vdi, DbObj *sr, const OpsVdiSpec *spec,
                         const char *parent_uuid);
/* physical_utilisation (and virtual_size) from the file. */
void ops_vdi_refresh_from_file(DbTxn *txn, DbObj *vdi, const char *dir);
/* VDI_IN_USE unless nothing has vdi attached. Read lock or txn held. */
bool ops_vdi_check_not_attached(Db *db, const DbObj *vdi, const char *op, XsError **errp);
/* SR_OPERATION_NOT_SUPPORTED unless sr holds qcow2 VDI files. */
bool ops_sr_check_file_sr(const DbObj *sr, XsError **errp);

#endif
