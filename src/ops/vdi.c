/*
 * The VDI class: create and destroy (record and qcow2 file together),
 * clone and snapshot (O(1) qcow2 overlays on a new base copy), resize,
 * forget, introduce, update, on-boot, allowed operations, and the C
 * interface of ops/vdi.h for the VM side (paths, attach and detach, live
 * hooks). Copies, imports and exports, which move data, are in vdi_io.c;
 * chain upkeep is in vdi_chain.c.
 *
 * Order of every change: files under temporary names first, then the
 * records in one transaction, then the files are published; on failure what
 * was made is removed. A crash in between is repaired from the names by
 * ops_sr_reconcile().
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/image.h"
#include "ops/ops.h"
#include "ops/storage_int.h"
#include "ops/vdi.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static OpsVdiLiveHooks live_hooks;

void ops_vdi_set_live_hooks(const OpsVdiLiveHooks *hooks)
{
    pthread_mutex_lock(&hooks_lock);
    live_hooks = *hooks;
    pthread_mutex_unlock(&hooks_lock);
}

static OpsVdiLiveHooks get_hooks(void)
{
    pthread_mutex_lock(&hooks_lock);
    OpsVdiLiveHooks h = live_hooks;
    pthread_mutex_unlock(&hooks_lock);
    return h;
}

OpsVdiLiveHooks ops_vdi_live_hooks(void)
{
    return get_hooks();
}

/* ---- small helpers ---------------------------------------------------------------------- */

bool ops_vdi_is_attached(Db *db, const DbObj *vdi)
{
    size_t n = db_backref_count(vdi, F_VDI_VBDS);
    for (size_t i = 0; i < n; i++)
        if (db_bool(db_backref(vdi, F_VDI_VBDS, i), F_VBD_CURRENTLY_ATTACHED))
            return true;
    (void)db;
    return false;
}

/* The first attached VBD of vdi (ref, malloc'd) or NULL. */
static char *attached_vbd(const DbObj *vdi)
{
    size_t n = db_backref_count(vdi, F_VDI_VBDS);
    for (size_t i = 0; i < n; i++) {
        DbObj *vbd = db_backref(vdi, F_VDI_VBDS, i);
        if (db_bool(vbd, F_VBD_CURRENTLY_ATTACHED))
            return xstrdup(vbd->ref);
    }
    return NULL;
}

bool ops_vdi_check_not_attached(Db *db, const DbObj *vdi, const char *op, XsError **errp)
{
    if (!ops_vdi_is_attached(db, vdi))
        return true;
    xs_err_vdi_in_use(errp, vdi->ref, op);
    return false;
}

static bool is_file_vdi(Db *db, const DbObj *vdi, DbObj **sr_out)
{
    DbObj *sr = db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR));
    if (sr_out)
        *sr_out = sr;
    const SrDriver *drv = sr ? ops_sr_driver(sr) : NULL;
    return drv && (drv->caps & SR_CAP_VDI_CREATE);
}

static void set_sm(DbTxn *txn, DbObj *v, const char *k, const char *val)
{
    const char *have = xv_struct_get_string(&v->fields[F_VDI_SM_CONFIG], k);
    if (val && (!have || strcmp(have, val) != 0))
        db_map_set(txn, v, F_VDI_SM_CONFIG, k, val);
    else if (!val && have)
        db_map_remove(txn, v, F_VDI_SM_CONFIG, k);
}

void ops_vdi_init_record(DbTxn *txn, DbObj *vdi, DbObj *sr, const OpsVdiSpec *spec,
                         const char *parent_uuid)
{
    db_set_str(txn, vdi, F_VDI_SR, sr->ref);
    db_set_str(txn, vdi, F_VDI_NAME_LABEL, spec->name_label ? spec->name_label : "");
    db_set_str(txn, vdi, F_VDI_NAME_DESCRIPTION,
               spec->name_description ? spec->name_description : "");
    db_set_int(txn, vdi, F_VDI_VIRTUAL_SIZE, spec->virtual_size);
    db_set_enum(txn, vdi, F_VDI_TYPE, spec->type);
    db_set_bool(txn, vdi, F_VDI_SHARABLE, spec->sharable);
    db_set_bool(txn, vdi, F_VDI_READ_ONLY, spec->read_only);
    db_set_bool(txn, vdi, F_VDI_MANAGED, true);
    db_set_bool(txn, vdi, F_VDI_MISSING, false);
    db_set_str(txn, vdi, F_VDI_LOCATION, db_str(vdi, F_VDI_UUID));
    if (spec->other_config)
        db_set(txn, vdi, F_VDI_OTHER_CONFIG, xv_copy(spec->other_config));
    if (spec->sm_config)
        db_set(txn, vdi, F_VDI_SM_CONFIG, xv_copy(spec->sm_config));
    set_sm(txn, vdi, "image-format", "qcow2");
    set_sm(txn, vdi, "vhd-parent", parent_uuid && *parent_uuid ? parent_uuid : NULL);
    ops_vdi_update_depths_txn(txn, sr, vdi);
    ops_vdi_update_allowed(txn, vdi);
}

void ops_vdi_refresh_from_file(DbTxn *txn, DbObj *vdi, const char *dir)
{
    _cleanup_free_ char *path = vdi_file_path(dir, db_str(vdi, F_VDI_UUID), VDI_NAME_FINAL);
    VdiFileInfo fi;
    if (vdi_file_info(path, &fi, NULL) < 0)
        return;
    if (db_int(vdi, F_VDI_PHYSICAL_UTILISATION) != (int64_t)fi.allocated)
        db_set_int(txn, vdi, F_VDI_PHYSICAL_UTILISATION, (int64_t)fi.allocated);
    if (db_int(vdi, F_VDI_VIRTUAL_SIZE) != (int64_t)fi.virtual_size)
        db_set_int(txn, vdi, F_VDI_VIRTUAL_SIZE, (int64_t)fi.virtual_size);
}

/* ---- allowed operations ---------------------------------------------------------------------- */

void ops_vdi_update_allowed(DbTxn *txn, DbObj *vdi)
{
    Db *db = db_txn_db(txn);
    XsValue *a = xv_array();
    DbObj *sr = NULL;
    bool files = is_file_vdi(db, vdi, &sr);
    if (vdi->fields[F_VDI_CURRENT_OPERATIONS].n == 0 && files && db_bool(vdi, F_VDI_MANAGED) &&
        !db_bool(vdi, F_VDI_MISSING)) {
        OpsVdiLiveHooks h = get_hooks();
        bool attached = ops_vdi_is_attached(db, vdi);
        int ops[16];
        size_t n = 0;
        if (!attached || h.snapshot) {
            ops[n++] = VDI_OPERATIONS_CLONE;
            ops[n++] = VDI_OPERATIONS_SNAPSHOT;
        }
        ops[n++] = VDI_OPERATIONS_COPY;
        ops[n++] = VDI_OPERATIONS_UPDATE;
        ops[n++] = VDI_OPERATIONS_GENERATE_CONFIG;
        if (!attached) {
            ops[n++] = VDI_OPERATIONS_DESTROY;
            ops[n++] = VDI_OPERATIONS_FORGET;
            ops[n++] = VDI_OPERATIONS_RESIZE;
            ops[n++] = VDI_OPERATIONS_SET_ON_BOOT;
        } else if (h.resize) {
            ops[n++] = VDI_OPERATIONS_RESIZE_ONLINE;
        }
        for (size_t i = 0; i < n; i++)
            xv_array_push_string(a, xs_enum_vdi_operations.values[ops[i]]);
    } else if (vdi->fields[F_VDI_CURRENT_OPERATIONS].n == 0 && !files && sr) {
        if (!ops_vdi_is_attached(db, vdi))
            xv_array_push_string(a, xs_enum_vdi_operations.values[VDI_OPERATIONS_FORGET]);
    }
    if (xv_equal(a, &vdi->fields[F_VDI_ALLOWED_OPERATIONS]))
        xv_free(a);
    else
        db_set(txn, vdi, F_VDI_ALLOWED_OPERATIONS, a);
}

/* ---- create ------------------------------------------------------------------------------------ */

/* What the create fixup made, for the caller (one create per thread at a time). */
static __thread struct {
    char uuid[UUID_STR_LEN];
    char *dir;
} create_state;

static bool create_fixup(OpsCtx *ctx, DbTxn *txn, DbObj *vdi, XsError **errp)
{
    Db *db = ctx->db;
    DbObj *sr = db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR));
    if (!sr) {
        xs_err_handle_invalid(errp, "SR", db_str(vdi, F_VDI_SR));
        return false;
    }
    if (!ops_sr_check_file_sr(sr, errp))
        return false;
    int64_t size = db_int(vdi, F_VDI_VIRTUAL_SIZE);
    if (size <= 0 || (uint64_t)size > IMG_MAX_VIRTUAL_SIZE) {
        char v[32];
        snprintf(v, sizeof(v), "%" PRId64, size);
        xs_err_invalid_value(errp, "virtual_size", v);
        return false;
    }
    char *dir = ops_sr_dir_by_uuid(db_str(sr, F_SR_UUID));
    if (!dir) {
        xs_err_sr_not_attached(errp, sr->ref);
        return false;
    }
    if (!ops_sr_check_space(sr->ref, dir, vdi_file_metadata_size((uint64_t)size), errp)) {
        free(dir);
        return false;
    }
    const char *uuid = db_str(vdi, F_VDI_UUID);
    char *msg = NULL;
    int r = vdi_file_create_tmp(dir, uuid, (uint64_t)size, NULL, &msg);
    if (r < 0) {
        ops_sr_io_error(errp, r, dir, msg);
        free(msg);
        free(dir);
        return false;
    }
    OpsVdiSpec spec = {
        .virtual_size = size,
        .name_label = db_str(vdi, F_VDI_NAME_LABEL),
        .name_description = db_str(vdi, F_VDI_NAME_DESCRIPTION),
        .type = db_enum(vdi, F_VDI_TYPE),
        .sharable = db_bool(vdi, F_VDI_SHARABLE),
        .read_only = db_bool(vdi, F_VDI_READ_ONLY),
    };
    ops_vdi_init_record(txn, vdi, sr, &spec, NULL);
    _cleanup_free_ char *tmp = vdi_file_path(dir, uuid, VDI_NAME_TMP);
    struct stat st;
    if (stat(tmp, &st) == 0)
        db_set_int(txn, vdi, F_VDI_PHYSICAL_UTILISATION, (int64_t)st.st_blocks * 512);
    ops_sr_refresh_sizes_txn(txn, sr, dir);
    snprintf(create_state.uuid, sizeof(create_state.uuid), "%s", uuid);
    free(create_state.dir);
    create_state.dir = dir;
    return true;
}

bool ops_vdi_create(OpsCtx *ctx, const XsValue *args, char **ret, XsError **errp)
{
    create_state.uuid[0] = '\0';
    free(create_state.dir);
    create_state.dir = NULL;
    char *ref = NULL;
    bool ok = ops_create_from_record(ctx, &xs_class_VDI, args, create_fixup, &ref, errp);
    char *dir = create_state.dir;
    create_state.dir = NULL;
    if (!ok) {
        if (dir && create_state.uuid[0])
            vdi_file_discard_tmp(dir, create_state.uuid);
        free(dir);
        return false;
    }
    char *msg = NULL;
    if (vdi_file_publish(dir, create_state.uuid, &msg) < 0) {
        log_error("cannot publish the file of new VDI %s: %s", create_state.uuid, msg);
        vdi_file_discard_tmp(dir, create_state.uuid);
        DbTxn *txn = db_begin(ctx->db);
        DbObj *v = db_get_class(ctx->db, XS_CLASS_VDI, ref);
        if (v)
            db_delete(txn, v);
        db_commit(txn, NULL);
        ops_sr_io_error(errp, -EIO, dir, msg);
        free(msg);
        free(dir);
        free(ref);
        return false;
    }
    free(dir);
    *ret = ref;
    return true;
}

static XsValue *spec_to_args(const OpsVdiSpec *spec, const char *sr)
{
    XsValue *a = xv_struct();
    xv_struct_set_string(a, "name_label", spec->name_label ? spec->name_label : "");
    xv_struct_set_string(a, "name_description",
                         spec->name_description ? spec->name_description : "");
    xv_struct_set_string(a, "SR", sr);
    xv_struct_set(a, "virtual_size", xv_int(spec->virtual_size));
    xv_struct_set_string(a, "type", xs_enum_vdi_type.values[spec->type]);
    xv_struct_set(a, "sharable", xv_bool(spec->sharable));
    xv_struct_set(a, "read_only", xv_bool(spec->read_only));
    xv_struct_set(a, "other_config", spec->other_config ? xv_copy(spec->other_config)
                                                        : xv_struct());
    if (spec->sm_config)
        xv_struct_set(a, "sm_config", xv_copy(spec->sm_config));
    return a;
}

/* spec->sr, or the pool's default SR (malloc'd). */
char *ops_vdi_spec_sr(OpsCtx *ctx, const OpsVdiSpec *spec, XsError **errp);
char *ops_vdi_spec_sr(OpsCtx *ctx, const OpsVdiSpec *spec, XsError **errp)
{
    if (spec->sr && strcmp(spec->sr, "OpaqueRef:NULL") != 0)
        return xstrdup(spec->sr);
    db_read_lock(ctx->db);
    DbObj *pool = db_get_class(ctx->db, XS_CLASS_POOL, ctx->env->pool_ref);
    const char *d = pool ? db_str(pool, F_POOL_DEFAULT_SR) : "OpaqueRef:NULL";
    char *r = db_get_class(ctx->db, XS_CLASS_SR, d) ? xstrdup(d) : NULL;
    db_read_unlock(ctx->db);
    if (!r)
        xs_err_default_sr_not_found(errp, d);
    return r;
}

bool ops_vdi_create_disk(OpsCtx *ctx, const OpsVdiSpec *spec, char **ret, XsError **errp)
{
    if (spec->type < 0 || spec->type >= VDI_TYPE__MAX) {
        xs_err_invalid_value(errp, "type", "");
        return false;
    }
    char *sr = ops_vdi_spec_sr(ctx, spec, errp);
    if (!sr)
        return false;
    XsValue *args = spec_to_args(spec, sr);
    bool ok = ops_vdi_create(ctx, args, ret, errp);
    xv_free(args);
    free(sr);
    return ok;
}

/* ---- destroy and forget ---------------------------------------------------------------------------- */

/* Deletes the VBDs of vdi that are not attached (CD drives become empty). */
static void drop_vbds(DbTxn *txn, DbObj *vdi)
{
    size_t n;
    for (size_t i = db_backref_count(vdi, F_VDI_VBDS); i-- > 0;) {
        DbObj *vbd = db_backref(vdi, F_VDI_VBDS, i);
        if (db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD) {
            db_set_str(txn, vbd, F_VBD_VDI, "OpaqueRef:NULL");
            db_set_bool(txn, vbd, F_VBD_EMPTY, true);
        } else {
            db_delete(txn, vbd);
        }
    }
    (void)n;
}

bool ops_vdi_destroy(OpsCtx *ctx, const char *self, XsError **errp)
{
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, self);
    DbObj *sr = NULL;
    bool files = is_file_vdi(db, vdi, &sr);
    bool ok = true;
    if (!sr) {
        xs_err_handle_invalid(errp, "SR", db_str(vdi, F_VDI_SR));
        ok = false;
    } else if (!files) {
        xs_err_sr_operation_not_supported(errp, sr->ref);
        ok = false;
    } else if (!ops_vdi_check_not_attached(db, vdi, "destroy", errp)) {
        ok = false;
    } else if (!db_bool(vdi, F_VDI_MANAGED) &&
               ops_vdi_children(db, sr, db_str(vdi, F_VDI_UUID), NULL) > 0) {
        xs_err_vdi_not_managed(errp, self);
        ok = false;
    }
    char *uuid = ok ? xstrdup(db_str(vdi, F_VDI_UUID)) : NULL;
    char *sr_uuid = ok ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    char *sr_ref = ok ? xstrdup(sr->ref) : NULL;
    char *parent = ok ? xstrdup(ops_vdi_parent_uuid(vdi)) : NULL;
    db_read_unlock(db);
    if (!ok)
        return false;
    char *token = NULL;
    char *dir = NULL;
    if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, self, "destroy", &token, errp))
        goto fail;
    dir = ops_sr_dir(ctx, sr_ref, errp);
    if (!dir)
        goto fail;
    ops_sr_lock(sr_uuid);
    char *msg = NULL;
    int r = vdi_file_trash(dir, uuid, &msg);
    if (r < 0) {
        ops_sr_unlock(sr_uuid);
        ops_sr_io_error(errp, r, dir, msg);
        free(msg);
        goto fail;
    }
    storage_crash_point("destroy-trashed");
    DbTxn *txn = db_begin(db);
    vdi = db_get_class(db, XS_CLASS_VDI, self);
    sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    if (vdi && ops_vdi_is_attached(db, vdi)) {
        /* Attached meanwhile: put it back. */
        db_abort(txn);
        vdi_file_untrash(dir, uuid, NULL);
        ops_sr_unlock(sr_uuid);
        xs_err_vdi_in_use(errp, self, "destroy");
        goto fail;
    }
    if (vdi) {
        drop_vbds(txn, vdi);
        db_delete(txn, vdi);
    }
    if (sr)
        ops_sr_refresh_sizes_txn(txn, sr, dir);
    if (!db_commit(txn, errp)) {
        vdi_file_untrash(dir, uuid, NULL);
        ops_sr_unlock(sr_uuid);
        goto fail;
    }
    storage_crash_point("destroy-committed");
    vdi_file_purge(dir, uuid);
    free(token);
    token = NULL;
    /* The chain it hung from may now be mergeable. */
    ops_vdi_chain_gc(ctx, sr_ref, dir, parent);
    ops_sr_refresh_sizes(ctx, sr_ref);
    ops_sr_unlock(sr_uuid);
    free(dir);
    free(uuid);
    free(sr_uuid);
    free(sr_ref);
    free(parent);
    return true;
fail:
    if (token)
        ops_op_end(ctx, XS_CLASS_VDI, self, token);
    free(token);
    free(dir);
    free(uuid);
    free(sr_uuid);
    free(sr_ref);
    free(parent);
    return false;
}

bool ops_vdi_destroy_disk(OpsCtx *ctx, const char *vdi, XsError **errp)
{
    return ops_vdi_destroy(ctx, vdi, errp);
}

bool ops_vdi_forget(OpsCtx *ctx, const char *self, XsError **errp)
{
    Db *db = ctx->db;
    DbTxn *txn = db_begin(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, self);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR));
    if (!ops_vdi_check_not_attached(db, vdi, "forget", errp)) {
        db_abort(txn);
        return false;
    }
    if (vdi->fields[F_VDI_CURRENT_OPERATIONS].n > 0) {
        const XsValue *cur = &vdi->fields[F_VDI_CURRENT_OPERATIONS];
        xs_err_other_operation_in_progress(errp, "VDI", self, xv_struct_val(cur, 0)->s,
                                           xv_struct_key(cur, 0));
        db_abort(txn);
        return false;
    }
    if (sr && ops_vdi_children(db, sr, db_str(vdi, F_VDI_UUID), NULL) > 0) {
        db_abort(txn);
        xs_err_vdi_not_managed(errp, self);
        return false;
    }
    drop_vbds(txn, vdi);
    db_delete(txn, vdi);
    if (sr)
        ops_sr_refresh_sizes_txn(txn, sr, NULL);
    return db_commit(txn, errp);
}

/* ---- paths, attach, detach ------------------------------------------------------------------------ */

bool ops_vdi_get_path(OpsCtx *ctx, const char *vdi_ref, char **path, const char **format,
                      XsError **errp)
{
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, vdi_ref);
    DbObj *sr = vdi ? db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR)) : NULL;
    const SrDriver *drv = sr ? ops_sr_driver(sr) : NULL;
    char *loc = vdi ? xstrdup(db_str(vdi, F_VDI_LOCATION)) : NULL;
    char *sr_uuid = sr ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    char *sr_ref = sr ? xstrdup(sr->ref) : NULL;
    bool missing = vdi && db_bool(vdi, F_VDI_MISSING);
    db_read_unlock(db);
    bool ok = false;
    if (!vdi) {
        xs_err_handle_invalid(errp, "VDI", vdi_ref);
    } else if (!drv) {
        xs_err_sr_unknown_driver(errp, sr ? "" : "(no SR)");
    } else if (missing) {
        xs_err_vdi_missing(errp, sr_ref, vdi_ref);
    } else if (drv->caps & SR_CAP_DEVICES) {
        *path = xstrdup(loc);
        *format = "raw";
        ok = true;
    } else {
        char *dir = ops_sr_dir_by_uuid(sr_uuid);
        if (!dir) {
            xs_err_sr_not_attached(errp, sr_ref);
        } else if (drv->caps & SR_CAP_ISO) {
            if (strchr(loc, '/') || !*loc || loc[0] == '.') {
                xs_err_vdi_location_missing(errp, sr_ref, loc);
            } else {
                *path = xasprintf("%s/%s", dir, loc);
                *format = "raw";
                ok = true;
            }
        } else {
            *path = vdi_file_path(dir, loc, VDI_NAME_FINAL);
            *format = "qcow2";
            ok = true;
        }
        free(dir);
    }
    if (ok && access(*path, F_OK) != 0) {
        free(*path);
        *path = NULL;
        xs_err_vdi_missing(errp, sr_ref, vdi_ref);
        ok = false;
    }
    free(loc);
    free(sr_uuid);
    free(sr_ref);
    return ok;
}

void ops_vdi_attachment_release(OpsVdiAttachment *a)
{
    free(a->path);
    memset(a, 0, sizeof(*a));
}

bool ops_vdi_attach(OpsCtx *ctx, const char *vdi_ref, const char *vm, bool rw,
                    OpsVdiAttachment *out, XsError **errp)
{
    memset(out, 0, sizeof(*out));
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, vdi_ref);
    DbObj *vmo = db_get_class(db, XS_CLASS_VM, vm);
    bool ok = true;
    if (!vdi || !vmo) {
        xs_err_handle_invalid(errp, vdi ? "VM" : "VDI", vdi ? vm : vdi_ref);
        ok = false;
    } else if (!db_bool(vdi, F_VDI_MANAGED)) {
        xs_err_vdi_not_managed(errp, vdi_ref);
        ok = false;
    } else if (vdi->fields[F_VDI_CURRENT_OPERATIONS].n > 0) {
        const XsValue *cur = &vdi->fields[F_VDI_CURRENT_OPERATIONS];
        xs_err_other_operation_in_progress(errp, "VDI", vdi_ref, xv_struct_val(cur, 0)->s,
                                           xv_struct_key(cur, 0));
        ok = false;
    } else if (rw && db_bool(vdi, F_VDI_READ_ONLY) && is_file_vdi(db, vdi, NULL)) {
        xs_err_vdi_readonly(errp, vdi_ref);
        ok = false;
    } else if (rw && !db_bool(vdi, F_VDI_SHARABLE)) {
        size_t n = db_backref_count(vdi, F_VDI_VBDS);
        for (size_t i = 0; i < n && ok; i++) {
            DbObj *vbd = db_backref(vdi, F_VDI_VBDS, i);
            if (db_bool(vbd, F_VBD_CURRENTLY_ATTACHED) && strcmp(db_str(vbd, F_VBD_VM), vm) != 0) {
                xs_err_vdi_in_use(errp, vdi_ref, "attach");
                ok = false;
            }
        }
    }
    bool reset = ok && db_enum(vdi, F_VDI_ON_BOOT) == ON_BOOT_RESET && is_file_vdi(db, vdi, NULL);
    bool vdi_ro = ok && db_bool(vdi, F_VDI_READ_ONLY);
    char *vdi_uuid = ok ? xstrdup(db_str(vdi, F_VDI_UUID)) : NULL;
    char *vm_uuid = ok ? xstrdup(db_str(vmo, F_VM_UUID)) : NULL;
    uint64_t size = ok ? (uint64_t)db_int(vdi, F_VDI_VIRTUAL_SIZE) : 0;
    db_read_unlock(db);
    if (!ok)
        return false;
    char *path = NULL;
    const char *format = NULL;
    if (!ops_vdi_get_path(ctx, vdi_ref, &path, &format, errp)) {
        free(vdi_uuid);
        free(vm_uuid);
        return false;
    }
    out->format = format;
    out->read_only = !rw || vdi_ro || strcmp(format, "raw") == 0;
    if (reset) {
        /* A fresh overlay for this run; the VDI's own file is left untouched. */
        char *copy = xstrdup(path);
        char *slash = strrchr(copy, '/');
        *slash = '\0';
        char *rpath = vdi_file_reset_path(copy, vdi_uuid, vm_uuid);
        unlink(rpath);
        ImgWriteOptions wo;
        img_write_options_init(&wo);
        char *backing = xasprintf("%s.qcow2", vdi_uuid);
        wo.backing_file = backing;
        wo.backing_format = "qcow2";
        ImgError ie = {0};
        int r = img_create(rpath, IMG_FORMAT_QCOW2, size, &wo, &ie);
        free(backing);
        if (r < 0) {
            ops_sr_io_error(errp, r, copy, ie.msg);
            free(copy);
            free(rpath);
            free(path);
            free(vdi_uuid);
            free(vm_uuid);
            return false;
        }
        free(copy);
        free(path);
        path = rpath;
        out->ephemeral = true;
        out->read_only = !rw;
    }
    out->path = path;
    free(vdi_uuid);
    free(vm_uuid);
    return true;
}

void ops_vdi_detach(OpsCtx *ctx, const char *vdi_ref, const char *vm)
{
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, vdi_ref);
    DbObj *vmo = db_get_class(db, XS_CLASS_VM, vm);
    DbObj *sr = NULL;
    bool files = vdi && is_file_vdi(db, vdi, &sr);
    char *vdi_uuid = files ? xstrdup(db_str(vdi, F_VDI_UUID)) : NULL;
    char *vm_uuid = files && vmo ? xstrdup(db_str(vmo, F_VM_UUID)) : NULL;
    char *sr_uuid = files ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    char *sr_ref = files ? xstrdup(sr->ref) : NULL;
    char *parent = files ? xstrdup(ops_vdi_parent_uuid(vdi)) : NULL;
    if (vdi) {
        db_read_unlock(db);
        DbTxn *txn = db_begin(db);
        vdi = db_get_class(db, XS_CLASS_VDI, vdi_ref);
        if (vdi)
            ops_vdi_update_allowed(txn, vdi);
        db_commit(txn, NULL);
    } else {
        db_read_unlock(db);
    }
    char *dir = files ? ops_sr_dir_by_uuid(sr_uuid) : NULL;
    if (dir && vm_uuid) {
        char *rpath = vdi_file_reset_path(dir, vdi_uuid, vm_uuid);
        if (unlink(rpath) == 0)
            log_info("discarded the on-boot=reset overlay %s", rpath);
        free(rpath);
    }
    if (dir && parent && *parent) {
        ops_sr_lock(sr_uuid);
        ops_vdi_chain_gc(ctx, sr_ref, dir, parent);
        ops_sr_unlock(sr_uuid);
    }
    free(dir);
    free(vdi_uuid);
    free(vm_uuid);
    free(sr_uuid);
    free(sr_ref);
    free(parent);
}

/* ---- clone and snapshot ------------------------------------------------------------------------------- */

static bool clone_common(OpsCtx *ctx, const char *self, bool snapshot, char **ret,
                         XsError **errp)
{
    Db *db = ctx->db;
    const char *opname = snapshot ? "snapshot" : "clone";
    OpsVdiLiveHooks hooks = get_hooks();
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, self);
    DbObj *sr = NULL;
    bool ok = true;
    if (!is_file_vdi(db, vdi, &sr)) {
        xs_err_sr_operation_not_supported(errp, sr ? sr->ref : "");
        ok = false;
    } else if (!db_bool(vdi, F_VDI_MANAGED)) {
        xs_err_vdi_not_managed(errp, self);
        ok = false;
    } else if (db_bool(vdi, F_VDI_MISSING)) {
        xs_err_vdi_missing(errp, sr->ref, self);
        ok = false;
    } else if (ops_vdi_chain_depth(db, vdi) + 1 > OPS_VDI_MAX_CHAIN) {
        char depth[16];
        snprintf(depth, sizeof(depth), "%d", ops_vdi_chain_depth(db, vdi));
        char *m = xasprintf("The snapshot chain of VDI %s is too long (%s files, at most %d)",
                            db_str(vdi, F_VDI_UUID), depth, OPS_VDI_MAX_CHAIN);
        xs_err_sr_backend_failure_109(errp, "", m, "");
        free(m);
        ok = false;
    }
    char *vbd = ok ? attached_vbd(vdi) : NULL;
    if (ok && vbd && !hooks.snapshot) {
        xs_err_vdi_in_use(errp, self, opname);
        ok = false;
    }
    char *uuid = ok ? xstrdup(db_str(vdi, F_VDI_UUID)) : NULL;
    char *sr_uuid = ok ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    char *sr_ref = ok ? xstrdup(sr->ref) : NULL;
    db_read_unlock(db);
    if (!ok) {
        free(vbd);
        return false;
    }
    char *token = NULL, *dir = NULL, *parent = NULL, *apath = NULL, *tn = NULL;
    bool done = false;
    if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, self, opname, &token, errp))
        goto out;
    dir = ops_sr_dir(ctx, sr_ref, errp);
    if (!dir)
        goto out;
    ops_sr_lock(sr_uuid);
    db_read_lock(db);
    vdi = db_get_class(db, XS_CLASS_VDI, self);
    parent = xstrdup(ops_vdi_parent_uuid(vdi));
    uint64_t size = (uint64_t)db_int(vdi, F_VDI_VIRTUAL_SIZE);
    db_read_unlock(db);

    char nuuid[UUID_STR_LEN], buuid[UUID_STR_LEN];
    uuid_generate_str(nuuid);
    uuid_generate_str(buuid);
    const char *news[] = {nuuid};
    apath = vdi_file_path(dir, uuid, VDI_NAME_FINAL);
    /* An overlay with no data of its own needs no new base: the new VDI is its sibling. */
    bool sibling = false;
    if (!vbd && *parent) {
        bool empty = false;
        sibling = vdi_file_is_empty_overlay(apath, &empty, NULL) == 0 && empty;
    }
    char *msg = NULL;
    int r;
    if (sibling)
        r = vdi_file_create_tmp(dir, nuuid, size, parent, &msg);
    else
        r = vdi_file_snapshot_tmp(dir, uuid, buuid, news, 1, size, &msg);
    if (r < 0) {
        ops_sr_io_error(errp, r, dir, msg);
        free(msg);
        goto unlock;
    }
    storage_crash_point("snapshot-files");
    if (vbd && !sibling) {
        _cleanup_free_ char *tmp_leaf = vdi_file_path(dir, uuid, VDI_NAME_TMP);
        if (!hooks.snapshot(ctx, vbd, tmp_leaf, errp)) {
            vdi_file_snapshot_abort(dir, uuid, buuid, news, 1);
            goto unlock;
        }
    }
    struct stat st;
    DbTxn *txn = db_begin(db);
    vdi = db_get_class(db, XS_CLASS_VDI, self);
    sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    if (!vdi || !sr) {
        db_abort(txn);
        xs_err_handle_invalid(errp, "VDI", self);
        goto abort_files;
    }
    const char *new_parent = sibling ? parent : buuid;
    if (!sibling) {
        DbObj *b = db_create(txn, XS_CLASS_VDI, NULL, buuid, errp);
        if (!b) {
            db_abort(txn);
            goto abort_files;
        }
        OpsVdiSpec bs = {.virtual_size = (int64_t)size, .name_label = OPS_BASE_COPY_NAME,
                         .type = db_enum(vdi, F_VDI_TYPE), .read_only = true};
        ops_vdi_init_record(txn, b, sr, &bs, parent);
        db_set_bool(txn, b, F_VDI_MANAGED, false);
        db_set_int(txn, b, F_VDI_PHYSICAL_UTILISATION, db_int(vdi, F_VDI_PHYSICAL_UTILISATION));
        set_sm(txn, vdi, "vhd-parent", buuid);
        _cleanup_free_ char *tl = vdi_file_path(dir, uuid, VDI_NAME_TMP);
        if (stat(tl, &st) == 0)
            db_set_int(txn, vdi, F_VDI_PHYSICAL_UTILISATION, (int64_t)st.st_blocks * 512);
    }
    DbObj *n = db_create(txn, XS_CLASS_VDI, NULL, nuuid, errp);
    if (!n) {
        db_abort(txn);
        goto abort_files;
    }
    OpsVdiSpec ns = {.virtual_size = (int64_t)size,
                     .name_label = db_str(vdi, F_VDI_NAME_LABEL),
                     .name_description = db_str(vdi, F_VDI_NAME_DESCRIPTION),
                     .type = db_enum(vdi, F_VDI_TYPE),
                     .sharable = db_bool(vdi, F_VDI_SHARABLE),
                     .read_only = db_bool(vdi, F_VDI_READ_ONLY),
                     .other_config = &vdi->fields[F_VDI_OTHER_CONFIG],
                     .sm_config = &vdi->fields[F_VDI_SM_CONFIG]};
    ops_vdi_init_record(txn, n, sr, &ns, new_parent);
    db_set(txn, n, F_VDI_XENSTORE_DATA, xv_copy(&vdi->fields[F_VDI_XENSTORE_DATA]));
    db_set_enum(txn, n, F_VDI_ON_BOOT, db_enum(vdi, F_VDI_ON_BOOT));
    db_set_bool(txn, n, F_VDI_ALLOW_CACHING, db_bool(vdi, F_VDI_ALLOW_CACHING));
    tn = vdi_file_path(dir, nuuid, VDI_NAME_TMP);
    if (stat(tn, &st) == 0)
        db_set_int(txn, n, F_VDI_PHYSICAL_UTILISATION, (int64_t)st.st_blocks * 512);
    if (snapshot) {
        db_set_bool(txn, n, F_VDI_IS_A_SNAPSHOT, true);
        db_set_str(txn, n, F_VDI_SNAPSHOT_OF, vdi->ref);
        db_set_datetime(txn, n, F_VDI_SNAPSHOT_TIME, (int64_t)time(NULL));
    }
    ops_vdi_update_depths_txn(txn, sr, vdi);
    ops_sr_refresh_sizes_txn(txn, sr, dir);
    char *nref = xstrdup(n->ref);
    if (!db_commit(txn, errp)) {
        free(nref);
        if (vbd && !sibling) {
            /* The VM already writes to the new overlay: keep the files consistent; sr-scan
             * will record the base copy. */
            log_error("VDI %s: the live snapshot happened but could not be recorded", uuid);
            vdi_file_publish(dir, buuid, NULL);
            vdi_file_publish(dir, uuid, NULL);
            vdi_file_discard_tmp(dir, nuuid);
            goto unlock;
        }
        goto abort_files;
    }
    storage_crash_point("snapshot-committed");
    r = 0;
    if (!sibling) {
        r = vdi_file_publish(dir, buuid, &msg);
        if (r == 0)
            storage_crash_point("snapshot-half-published");
        if (r == 0)
            r = vdi_file_publish(dir, uuid, &msg);
    }
    if (r == 0)
        r = vdi_file_publish(dir, nuuid, &msg);
    if (r < 0) {
        /* Records are in; sr-scan finishes what a rename could not do now. */
        log_error("VDI %s %s: %s", uuid, opname, msg);
        free(msg);
    }
    *ret = nref;
    done = true;
    goto unlock;
abort_files:
    if (sibling)
        vdi_file_discard_tmp(dir, nuuid);
    else
        vdi_file_snapshot_abort(dir, uuid, buuid, news, 1);
unlock:
    ops_sr_unlock(sr_uuid);
out:
    if (token)
        ops_op_end(ctx, XS_CLASS_VDI, self, token);
    free(token);
    free(parent);
    free(apath);
    free(tn);
    free(dir);
    free(vbd);
    free(uuid);
    free(sr_uuid);
    free(sr_ref);
    return done;
}

bool ops_vdi_clone(OpsCtx *ctx, const char *vdi, const XsValue *driver_params, char **ret,
                   XsError **errp)
{
    return clone_common(ctx, vdi, false, ret, errp);
}

bool ops_vdi_snapshot(OpsCtx *ctx, const char *vdi, const XsValue *driver_params, char **ret,
                      XsError **errp)
{
    return clone_common(ctx, vdi, true, ret, errp);
}

/* ---- resize ---------------------------------------------------------------------------------------------- */

static bool resize_common(OpsCtx *ctx, const char *self, int64_t size, bool online,
                          XsError **errp)
{
    Db *db = ctx->db;
    OpsVdiLiveHooks hooks = get_hooks();
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, self);
    DbObj *sr = NULL;
    bool ok = true;
    int64_t cur = db_int(vdi, F_VDI_VIRTUAL_SIZE);
    if (!is_file_vdi(db, vdi, &sr)) {
        xs_err_sr_operation_not_supported(errp, sr ? sr->ref : "");
        ok = false;
    } else if (!db_bool(vdi, F_VDI_MANAGED)) {
        xs_err_vdi_not_managed(errp, self);
        ok = false;
    } else if (db_bool(vdi, F_VDI_MISSING)) {
        xs_err_vdi_missing(errp, sr->ref, self);
        ok = false;
    } else if (size < cur) {
        char *m = xasprintf("VDI %s is %" PRId64 " bytes: shrinking it to %" PRId64
                            " bytes is not supported, as data at its end would be lost. Copy "
                            "what you need into a smaller VDI instead.",
                            db_str(vdi, F_VDI_UUID), cur, size);
        xs_err_operation_not_allowed(errp, m);
        free(m);
        ok = false;
    } else if ((uint64_t)size > IMG_MAX_VIRTUAL_SIZE) {
        char v[32];
        snprintf(v, sizeof(v), "%" PRId64, size);
        xs_err_invalid_value(errp, "size", v);
        ok = false;
    }
    char *vbd = ok ? attached_vbd(vdi) : NULL;
    if (ok && vbd && !hooks.resize) {
        xs_err_vdi_in_use(errp, self, online ? "resize_online" : "resize");
        ok = false;
    }
    char *uuid = ok ? xstrdup(db_str(vdi, F_VDI_UUID)) : NULL;
    char *sr_uuid = ok ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    char *sr_ref = ok ? xstrdup(sr->ref) : NULL;
    db_read_unlock(db);
    if (!ok) {
        free(vbd);
        return false;
    }
    bool done = false;
    char *token = NULL, *dir = NULL;
    if (size == cur) {
        done = true;
        goto out;
    }
    if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, self, online ? "resize_online" : "resize", &token,
                          errp))
        goto out;
    dir = ops_sr_dir(ctx, sr_ref, errp);
    if (!dir)
        goto out;
    ops_sr_lock(sr_uuid);
    if (vbd) {
        ok = hooks.resize(ctx, vbd, size, errp);
    } else {
        _cleanup_free_ char *path = vdi_file_path(dir, uuid, VDI_NAME_FINAL);
        char *msg = NULL;
        int r = vdi_file_resize(path, (uint64_t)size, &msg);
        if (r < 0) {
            ops_sr_io_error(errp, r, dir, msg);
            free(msg);
        }
        ok = r == 0;
    }
    if (ok) {
        DbTxn *txn = db_begin(db);
        vdi = db_get_class(db, XS_CLASS_VDI, self);
        sr = db_get_class(db, XS_CLASS_SR, sr_ref);
        if (vdi) {
            db_set_int(txn, vdi, F_VDI_VIRTUAL_SIZE, size);
            if (!vbd)
                ops_vdi_refresh_from_file(txn, vdi, dir);
        }
        if (sr)
            ops_sr_refresh_sizes_txn(txn, sr, dir);
        done = db_commit(txn, errp);
    }
    ops_sr_unlock(sr_uuid);
out:
    if (token)
        ops_op_end(ctx, XS_CLASS_VDI, self, token);
    free(token);
    free(dir);
    free(vbd);
    free(uuid);
    free(sr_uuid);
    free(sr_ref);
    return done;
}

bool ops_vdi_resize(OpsCtx *ctx, const char *vdi, int64_t size, XsError **errp)
{
    return resize_common(ctx, vdi, size, false, errp);
}

bool ops_vdi_resize_online(OpsCtx *ctx, const char *vdi, int64_t size, XsError **errp)
{
    return resize_common(ctx, vdi, size, true, errp);
}

/* ---- introduce, update, setters -------------------------------------------------------------------------- */

bool ops_vdi_introduce(OpsCtx *ctx, const char *uuid, const char *name_label,
                       const char *name_description, const char *sr_ref, int type, bool sharable,
                       bool read_only, const XsValue *other_config, const char *location,
                       const XsValue *xenstore_data, const XsValue *sm_config, bool managed,
                       int64_t virtual_size, int64_t physical_utilisation,
                       const char *metadata_of_pool, bool is_a_snapshot, int64_t snapshot_time,
                       const char *snapshot_of, char **ret, XsError **errp)
{
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    const SrDriver *drv = sr ? ops_sr_driver(sr) : NULL;
    char *sr_uuid = sr ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    db_read_unlock(db);
    if (!drv) {
        free(sr_uuid);
        xs_err_sr_unknown_driver(errp, "");
        return false;
    }
    char gen[UUID_STR_LEN];
    bool files = drv->caps & SR_CAP_VDI_CREATE;
    if (files) {
        /* The file is named by the VDI's uuid: location and uuid are one. */
        if (!*uuid)
            uuid = location;
        if (*location && strcmp(location, uuid) != 0) {
            free(sr_uuid);
            xs_err_invalid_value(errp, "location", location);
            return false;
        }
        location = uuid;
    } else if (!*uuid) {
        uuid_generate_str(gen);
        uuid = gen;
    }
    if (!uuid_is_valid(uuid)) {
        free(sr_uuid);
        xs_err_invalid_value(errp, "uuid", uuid);
        return false;
    }
    char *path = NULL;
    char *dir = (drv->caps & SR_CAP_DEVICES) ? NULL : ops_sr_dir(ctx, sr_ref, errp);
    if (!dir && !(drv->caps & SR_CAP_DEVICES)) {
        free(sr_uuid);
        return false;
    }
    if (files)
        path = vdi_file_path(dir, location, VDI_NAME_FINAL);
    else if (drv->caps & SR_CAP_ISO)
        path = strchr(location, '/') ? NULL : xasprintf("%s/%s", dir, location);
    else
        path = xstrdup(location);
    VdiFileInfo fi = {0};
    struct stat st;
    bool exists = path && stat(path, &st) == 0;
    if (exists && files && vdi_file_info(path, &fi, NULL) < 0)
        exists = false;
    free(path);
    if (!exists) {
        xs_err_vdi_location_missing(errp, sr_ref, location);
        free(dir);
        free(sr_uuid);
        return false;
    }
    DbTxn *txn = db_begin(db);
    sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    size_t nv = sr ? db_backref_count(sr, F_SR_VDIS) : 0;
    for (size_t i = 0; i < nv; i++)
        if (strcmp(db_str(db_backref(sr, F_SR_VDIS, i), F_VDI_LOCATION), location) == 0) {
            db_abort(txn);
            xs_err_location_not_unique(errp, sr_ref, location);
            free(dir);
            free(sr_uuid);
            return false;
        }
    DbObj *v = sr ? db_create(txn, XS_CLASS_VDI, NULL, uuid, errp) : NULL;
    if (!v) {
        db_abort(txn);
        free(dir);
        free(sr_uuid);
        return false;
    }
    OpsVdiSpec spec = {.virtual_size = files ? (int64_t)fi.virtual_size : (int64_t)st.st_size,
                       .name_label = name_label, .name_description = name_description,
                       .type = type, .sharable = sharable, .read_only = read_only,
                       .other_config = other_config, .sm_config = sm_config};
    if (files) {
        ops_vdi_init_record(txn, v, sr, &spec, fi.parent_uuid);
        db_set_int(txn, v, F_VDI_PHYSICAL_UTILISATION, (int64_t)fi.allocated);
        db_set_bool(txn, v, F_VDI_MANAGED, managed);
    } else {
        db_set_str(txn, v, F_VDI_SR, sr->ref);
        db_set_str(txn, v, F_VDI_NAME_LABEL, name_label);
        db_set_str(txn, v, F_VDI_NAME_DESCRIPTION, name_description);
        db_set_str(txn, v, F_VDI_LOCATION, location);
        db_set_int(txn, v, F_VDI_VIRTUAL_SIZE, spec.virtual_size);
        db_set_enum(txn, v, F_VDI_TYPE, type);
        db_set_bool(txn, v, F_VDI_READ_ONLY, true);
        db_set_bool(txn, v, F_VDI_SHARABLE, true);
        db_set_bool(txn, v, F_VDI_MANAGED, managed);
        db_set(txn, v, F_VDI_OTHER_CONFIG, xv_copy(other_config));
        ops_vdi_update_allowed(txn, v);
    }
    db_set(txn, v, F_VDI_XENSTORE_DATA, xv_copy(xenstore_data));
    if (is_a_snapshot) {
        db_set_bool(txn, v, F_VDI_IS_A_SNAPSHOT, true);
        db_set_datetime(txn, v, F_VDI_SNAPSHOT_TIME, snapshot_time);
        if (db_get_class(db, XS_CLASS_VDI, snapshot_of))
            db_set_str(txn, v, F_VDI_SNAPSHOT_OF, snapshot_of);
    }
    ops_sr_refresh_sizes_txn(txn, sr, dir);
    char *ref = xstrdup(v->ref);
    free(dir);
    free(sr_uuid);
    (void)virtual_size;
    (void)physical_utilisation;
    (void)metadata_of_pool;
    if (!db_commit(txn, errp)) {
        free(ref);
        return false;
    }
    *ret = ref;
    return true;
}

bool ops_vdi_update(OpsCtx *ctx, const char *self, XsError **errp)
{
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, self);
    DbObj *sr = NULL;
    bool files = is_file_vdi(db, vdi, &sr);
    char *sr_ref = sr ? xstrdup(sr->ref) : NULL;
    db_read_unlock(db);
    if (!files) {
        bool ok = sr_ref && ops_sr_reconcile(ctx, sr_ref, false, errp);
        free(sr_ref);
        return ok;
    }
    char *dir = ops_sr_dir(ctx, sr_ref, errp);
    free(sr_ref);
    if (!dir)
        return false;
    DbTxn *txn = db_begin(db);
    vdi = db_get_class(db, XS_CLASS_VDI, self);
    if (vdi)
        ops_vdi_refresh_from_file(txn, vdi, dir);
    free(dir);
    return db_commit(txn, errp);
}

bool ops_vdi_set_on_boot(OpsCtx *ctx, const char *self, const XsValue *value, XsError **errp)
{
    int v = value->kind == XV_STRING ? xs_enum_index(&xs_enum_on_boot, value->s) : (int)value->i;
    if (v < 0 || v >= ON_BOOT__MAX) {
        xs_err_invalid_value(errp, "on_boot", value->kind == XV_STRING ? value->s : "");
        return false;
    }
    Db *db = ctx->db;
    DbTxn *txn = db_begin(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, self);
    DbObj *sr = NULL;
    if (!is_file_vdi(db, vdi, &sr)) {
        db_abort(txn);
        xs_err_sr_operation_not_supported(errp, sr ? sr->ref : "");
        return false;
    }
    if (!ops_vdi_check_not_attached(db, vdi, "set_on_boot", errp)) {
        db_abort(txn);
        return false;
    }
    db_set_enum(txn, vdi, F_VDI_ON_BOOT, v);
    return db_commit(txn, errp);
}

bool ops_vdi_after_set(OpsCtx *ctx, DbTxn *txn, DbObj *vdi, int field, XsError **errp)
{
    if (field == F_VDI_READ_ONLY && !db_bool(vdi, F_VDI_MANAGED) && !db_bool(vdi, F_VDI_READ_ONLY)) {
        xs_err_vdi_not_managed(errp, vdi->ref);
        return false;
    }
    ops_vdi_update_allowed(txn, vdi);
    return true;
}
