/*
 * The PBD class: the connection of an SR to a host. Plugging attaches the
 * SR through its driver (mounting NFS or CIFS storage where needed), records
 * the directory of its files and scans it; unplugging refuses while a VDI of
 * the SR is attached to a VM, and undoes the attach.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/storage_int.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

typedef struct PbdInfo {
    char *sr_ref;
    char *sr_uuid;
    char *type;
    XsValue *dc;
} PbdInfo;

static const char *dc_lookup(void *opaque, const char *key)
{
    return xv_struct_get_string(opaque, key);
}

static bool pbd_info(OpsCtx *ctx, const char *pbd, PbdInfo *pi, XsError **errp)
{
    memset(pi, 0, sizeof(*pi));
    db_read_lock(ctx->db);
    DbObj *p = db_get_class(ctx->db, XS_CLASS_PBD, pbd);
    DbObj *sr = p ? db_get_class(ctx->db, XS_CLASS_SR, db_str(p, F_PBD_SR)) : NULL;
    if (sr) {
        pi->sr_ref = xstrdup(sr->ref);
        pi->sr_uuid = xstrdup(db_str(sr, F_SR_UUID));
        pi->type = xstrdup(db_str(sr, F_SR_TYPE));
        pi->dc = xv_copy(&p->fields[F_PBD_DEVICE_CONFIG]);
    }
    db_read_unlock(ctx->db);
    if (!sr) {
        xs_err_handle_invalid(errp, p ? "SR" : "PBD", p ? "" : pbd);
        return false;
    }
    return true;
}

static void pbd_info_release(PbdInfo *pi)
{
    free(pi->sr_ref);
    free(pi->sr_uuid);
    free(pi->type);
    xv_free(pi->dc);
}

static bool set_attached(OpsCtx *ctx, const char *pbd, bool on, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *p = db_get_class(ctx->db, XS_CLASS_PBD, pbd);
    if (p) {
        db_set_bool(txn, p, F_PBD_CURRENTLY_ATTACHED, on);
        DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, db_str(p, F_PBD_SR));
        if (sr)
            ops_sr_update_allowed(txn, sr);
    }
    return db_commit(txn, errp);
}

bool ops_pbd_plug_ref(OpsCtx *ctx, const char *pbd, XsError **errp)
{
    PbdInfo pi;
    if (!pbd_info(ctx, pbd, &pi, errp))
        return false;
    const SrDriver *drv = sr_driver_find(pi.type);
    if (!drv) {
        xs_err_sr_unknown_driver(errp, pi.type);
        pbd_info_release(&pi);
        return false;
    }
    SrAttachArgs aa = {.sr_uuid = pi.sr_uuid, .state_dir = ctx->env->state_dir,
                       .config = dc_lookup, .opaque = pi.dc};
    char *dir = NULL, *msg = NULL;
    int r = drv->attach(&aa, &dir, &msg);
    if (r < 0) {
        xs_err_sr_backend_failure(errp, "", "", msg ? msg : "attach failed");
        free(msg);
        pbd_info_release(&pi);
        return false;
    }
    ops_sr_set_dir(pi.sr_uuid, dir);
    free(dir);
    bool ok = set_attached(ctx, pbd, true, errp);
    if (ok) {
        XsError *serr = NULL;
        if (!ops_sr_reconcile(ctx, pi.sr_ref, true, &serr)) {
            log_warn("scan of SR %s after plugging failed: %s", pi.sr_uuid,
                     serr ? serr->code : "?");
            xs_error_free(serr);
        }
    } else {
        ops_sr_set_dir(pi.sr_uuid, NULL);
        if (drv->detach)
            drv->detach(&aa, NULL);
    }
    pbd_info_release(&pi);
    return ok;
}

bool ops_pbd_plug(OpsCtx *ctx, const char *self, XsError **errp)
{
    return ops_pbd_plug_ref(ctx, self, errp);
}

bool ops_pbd_unplug(OpsCtx *ctx, const char *self, XsError **errp)
{
    PbdInfo pi;
    if (!pbd_info(ctx, self, &pi, errp))
        return false;
    db_read_lock(ctx->db);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, pi.sr_ref);
    bool ok = true;
    size_t nv = sr ? db_backref_count(sr, F_SR_VDIS) : 0;
    for (size_t i = 0; i < nv && ok; i++)
        ok = ops_vdi_check_not_attached(ctx->db, db_backref(sr, F_SR_VDIS, i), "unplug", errp);
    db_read_unlock(ctx->db);
    if (!ok) {
        pbd_info_release(&pi);
        return false;
    }
    const SrDriver *drv = sr_driver_find(pi.type);
    SrAttachArgs aa = {.sr_uuid = pi.sr_uuid, .state_dir = ctx->env->state_dir,
                       .config = dc_lookup, .opaque = pi.dc};
    ops_sr_lock(pi.sr_uuid);
    char *msg = NULL;
    int r = drv && drv->detach ? drv->detach(&aa, &msg) : 0;
    if (r < 0) {
        ops_sr_unlock(pi.sr_uuid);
        xs_err_sr_backend_failure(errp, "", "", msg ? msg : "detach failed");
        free(msg);
        pbd_info_release(&pi);
        return false;
    }
    ops_sr_set_dir(pi.sr_uuid, NULL);
    ops_sr_unlock(pi.sr_uuid);
    ok = set_attached(ctx, self, false, errp);
    pbd_info_release(&pi);
    return ok;
}

static bool pbd_create_fixup(OpsCtx *ctx, DbTxn *txn, DbObj *pbd, XsError **errp)
{
    db_set_bool(txn, pbd, F_PBD_CURRENTLY_ATTACHED, false);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, db_str(pbd, F_PBD_SR));
    if (!sr || !db_get_class(ctx->db, XS_CLASS_HOST, db_str(pbd, F_PBD_HOST))) {
        xs_err_handle_invalid(errp, sr ? "host" : "SR", sr ? db_str(pbd, F_PBD_HOST) : "");
        return false;
    }
    ops_sr_update_allowed(txn, sr);
    return true;
}

bool ops_pbd_create(OpsCtx *ctx, const XsValue *args, char **ret, XsError **errp)
{
    return ops_create_from_record(ctx, &xs_class_PBD, args, pbd_create_fixup, ret, errp);
}

bool ops_pbd_destroy(OpsCtx *ctx, const char *self, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *p = db_get_class(ctx->db, XS_CLASS_PBD, self);
    if (db_bool(p, F_PBD_CURRENTLY_ATTACHED)) {
        db_abort(txn);
        xs_err_operation_not_allowed(errp, "The PBD is plugged: unplug it (pbd-unplug) first.");
        return false;
    }
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, db_str(p, F_PBD_SR));
    db_delete(txn, p);
    if (sr)
        ops_sr_update_allowed(txn, sr);
    return db_commit(txn, errp);
}
