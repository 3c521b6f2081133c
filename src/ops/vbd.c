/*
 * The VBD class: a VM's disk or CD drive. Creation checks what XenServer
 * checks (CDs read-only, only CDs empty, one device per userdevice);
 * plug/unplug change a running VM's disks at once (QMP device_add/del);
 * insert/eject change the medium of a CD drive, running or not.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/vm.h"
#include "ops/vm_lifecycle.h"
#include "ops/vmboot.h"
#include "ops/vmdisk.h"
#include "ops/vmrt.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define UNPLUG_TIMEOUT_MS 10000

/* ---- allowed operations ----------------------------------------------------------- */

void ops_vbd_update_allowed(DbTxn *txn, DbObj *vbd)
{
    Db *db = db_txn_db(txn);
    DbObj *vm = db_get_class(db, XS_CLASS_VM, db_str(vbd, F_VBD_VM));
    int ps = vm ? db_enum(vm, F_VM_POWER_STATE) : VM_POWER_STATE_HALTED;
    bool running = ps == VM_POWER_STATE_RUNNING || ps == VM_POWER_STATE_PAUSED;
    bool cd = db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD;
    bool empty = db_bool(vbd, F_VBD_EMPTY);
    bool attached = db_bool(vbd, F_VBD_CURRENTLY_ATTACHED);
    XsValue *a = xv_array();
    if (vbd->fields[F_VBD_CURRENT_OPERATIONS].n == 0) {
        if (running && attached) {
            xv_array_push_string(a, "unplug");
            xv_array_push_string(a, "unplug_force");
        } else if (running) {
            xv_array_push_string(a, "plug");
        } else {
            xv_array_push_string(a, "attach");
        }
        if (cd && empty)
            xv_array_push_string(a, "insert");
        if (cd && !empty)
            xv_array_push_string(a, "eject");
    }
    if (xv_equal(a, &vbd->fields[F_VBD_ALLOWED_OPERATIONS]))
        xv_free(a);
    else
        db_set(txn, vbd, F_VBD_ALLOWED_OPERATIONS, a);
}

/* ---- create, destroy, setters ------------------------------------------------------ */

static bool userdevice_ok(const char *ud)
{
    char *end;
    long v = strtol(ud, &end, 10);
    return *ud && !*end && v >= 0 && v < VMM_MAX_DISKS;
}

static bool userdevice_taken(DbObj *vm, DbObj *self, const char *ud)
{
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VBDS); i++) {
        DbObj *o = db_backref(vm, F_VM_VBDS, i);
        if (o != self && !o->deleted && strcmp(db_str(o, F_VBD_USERDEVICE), ud) == 0)
            return true;
    }
    return false;
}

static bool check_vbd(DbTxn *txn, DbObj *vbd, XsError **errp)
{
    Db *db = db_txn_db(txn);
    DbObj *vm = db_get_class(db, XS_CLASS_VM, db_str(vbd, F_VBD_VM));
    if (!vm) {
        xs_err_handle_invalid(errp, "VM", db_str(vbd, F_VBD_VM));
        return false;
    }
    int type = db_enum(vbd, F_VBD_TYPE);
    bool has_vdi = db_get_class(db, XS_CLASS_VDI, db_str(vbd, F_VBD_VDI)) != NULL;
    if (type == VBD_TYPE_CD && db_enum(vbd, F_VBD_MODE) != VBD_MODE_RO) {
        xs_err_vbd_cds_must_be_readonly(errp);
        return false;
    }
    if (!has_vdi && type != VBD_TYPE_CD) {
        xs_err_vbd_not_removable_media(errp, "in constructor");
        return false;
    }
    if (db_bool(vbd, F_VBD_EMPTY) && type != VBD_TYPE_CD) {
        xs_err_vbd_not_removable_media(errp, "in constructor");
        return false;
    }
    const char *ud = db_str(vbd, F_VBD_USERDEVICE);
    if (strcmp(ud, "autodetect") == 0) {
        for (int i = 0; i < VMM_MAX_DISKS; i++) {
            char d[8];
            snprintf(d, sizeof(d), "%d", i);
            if (!userdevice_taken(vm, vbd, d)) {
                db_set_str(txn, vbd, F_VBD_USERDEVICE, d);
                break;
            }
        }
        ud = db_str(vbd, F_VBD_USERDEVICE);
    }
    if (!userdevice_ok(ud)) {
        xs_err_invalid_device(errp, ud);
        return false;
    }
    if (userdevice_taken(vm, vbd, ud)) {
        xs_err_device_already_exists(errp, ud);
        return false;
    }
    return true;
}

static bool create_fixup(OpsCtx *ctx, DbTxn *txn, DbObj *vbd, XsError **errp)
{
    Db *db = db_txn_db(txn);
    if (!db_get_class(db, XS_CLASS_VDI, db_str(vbd, F_VBD_VDI))) {
        db_set_str(txn, vbd, F_VBD_VDI, "OpaqueRef:NULL");
        if (db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD)
            db_set_bool(txn, vbd, F_VBD_EMPTY, true);
    }
    if (!check_vbd(txn, vbd, errp))
        return false;
    ops_vbd_update_allowed(txn, vbd);
    return true;
}

bool ops_vbd_create(OpsCtx *ctx, const XsValue *args, char **ret, XsError **errp)
{
    return ops_create_from_record(ctx, &xs_class_VBD, args, create_fixup, ret, errp);
}

bool ops_vbd_destroy(OpsCtx *ctx, const char *self, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vbd = db_get_class(ctx->db, XS_CLASS_VBD, self);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, db_str(vbd, F_VBD_VM));
    int ps = vm ? db_enum(vm, F_VM_POWER_STATE) : VM_POWER_STATE_HALTED;
    bool live = vm && !db_bool(vm, F_VM_IS_CONTROL_DOMAIN) &&
                (ps == VM_POWER_STATE_RUNNING || ps == VM_POWER_STATE_PAUSED);
    if (live && db_bool(vbd, F_VBD_CURRENTLY_ATTACHED)) {
        db_abort(txn);
        xs_err_operation_not_allowed(errp, "The VBD is attached to a running VM; unplug it "
                                           "(vbd-unplug) or stop the VM first.");
        return false;
    }
    if (vbd->fields[F_VBD_CURRENT_OPERATIONS].n) {
        const XsValue *cur = &vbd->fields[F_VBD_CURRENT_OPERATIONS];
        xs_err_other_operation_in_progress(errp, "VBD", self, xv_struct_val(cur, 0)->s,
                                           xv_struct_key(cur, 0));
        db_abort(txn);
        return false;
    }
    db_delete(txn, vbd);
    return db_commit(txn, errp);
}

bool ops_vbd_after_set(OpsCtx *ctx, DbTxn *txn, DbObj *vbd, int field, XsError **errp)
{
    switch (field) {
    case F_VBD_USERDEVICE:
    case F_VBD_TYPE:
        if (db_bool(vbd, F_VBD_CURRENTLY_ATTACHED)) {
            xs_err_operation_not_allowed(errp, "The VBD is attached to a running VM; unplug "
                                               "it first.");
            return false;
        }
        if (!check_vbd(txn, vbd, errp))
            return false;
        ops_vbd_update_allowed(txn, vbd);
        return true;
    default:
        return true;
    }
}

/* ---- running VMs ------------------------------------------------------------------------ */

typedef struct VbdInfo {
    char *vm;
    char *vdi;
    unsigned position;
    bool cd, rw, empty, attached, unpluggable;
    VmmBus bus;
    int ps;
} VbdInfo;

static void info_release(VbdInfo *i)
{
    free(i->vm);
    free(i->vdi);
}

static bool vbd_info(OpsCtx *ctx, const char *self, VbdInfo *i, XsError **errp)
{
    memset(i, 0, sizeof(*i));
    bool ok = false;
    db_read_lock(ctx->db);
    DbObj *vbd = db_get_class(ctx->db, XS_CLASS_VBD, self);
    DbObj *vm = vbd ? db_get_class(ctx->db, XS_CLASS_VM, db_str(vbd, F_VBD_VM)) : NULL;
    if (vm) {
        i->vm = xstrdup(vm->ref);
        const char *vdi = db_str(vbd, F_VBD_VDI);
        i->vdi = db_get_class(ctx->db, XS_CLASS_VDI, vdi) ? xstrdup(vdi) : NULL;
        i->cd = db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD;
        i->rw = !i->cd && db_enum(vbd, F_VBD_MODE) == VBD_MODE_RW;
        i->empty = db_bool(vbd, F_VBD_EMPTY) || !i->vdi;
        i->attached = db_bool(vbd, F_VBD_CURRENTLY_ATTACHED);
        i->unpluggable = db_bool(vbd, F_VBD_UNPLUGGABLE);
        i->ps = db_enum(vm, F_VM_POWER_STATE);
        bool hvm, pv;
        VmmBus bus;
        VmmNicModel nic;
        ok = userdevice_ok(db_str(vbd, F_VBD_USERDEVICE)) &&
             vmboot_devices_of(vm, &hvm, &pv, &bus, &nic, errp);
        if (ok) {
            i->position = (unsigned)strtoul(db_str(vbd, F_VBD_USERDEVICE), NULL, 10);
            i->bus = vmboot_bus_for(bus, i->position, i->cd);
        } else if (!userdevice_ok(db_str(vbd, F_VBD_USERDEVICE))) {
            xs_err_invalid_device(errp, db_str(vbd, F_VBD_USERDEVICE));
        }
    } else {
        xs_err_handle_invalid(errp, "VBD", self);
    }
    db_read_unlock(ctx->db);
    if (!ok)
        info_release(i);
    return ok;
}

static bool set_attached(OpsCtx *ctx, const char *self, bool attached, VmmBus bus,
                         unsigned position, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vbd = db_get_class(ctx->db, XS_CLASS_VBD, self);
    if (vbd) {
        db_set_bool(txn, vbd, F_VBD_CURRENTLY_ATTACHED, attached);
        if (attached) {
            const char *pre = bus == VMM_BUS_IDE ? "hd" : bus == VMM_BUS_SCSI ? "sd" : "xvd";
            char dev[8];
            snprintf(dev, sizeof(dev), "%s%c", pre, (char)('a' + position % 26));
            db_set_str(txn, vbd, F_VBD_DEVICE, dev);
        }
        ops_vbd_update_allowed(txn, vbd);
    }
    return db_commit(txn, errp);
}

static void vmm_error_to_xs(XsError **errp, const char *self, int r, const char *msg)
{
    if (r == -ENOTSUP)
        xs_err_not_supported_by_device_model(errp, self, msg ? msg : "not possible");
    else if (r == -ETIMEDOUT)
        xs_err_device_detach_rejected(errp, "VBD", self,
                                      msg ? msg : "the guest did not release the device");
    else
        xs_err_internal_error(errp, msg ? msg : strerror(-r));
}

bool ops_vbd_plug(OpsCtx *ctx, const char *self, XsError **errp)
{
    VbdInfo i;
    if (!vbd_info(ctx, self, &i, errp))
        return false;
    bool ok = false;
    char *token = NULL;
    if (i.attached) {
        xs_err_device_already_attached(errp, self);
        goto out;
    }
    if (i.ps != VM_POWER_STATE_RUNNING && i.ps != VM_POWER_STATE_PAUSED) {
        xs_err_vm_bad_power_state(errp, i.vm, "running", ops_power_state_lower(i.ps));
        goto out;
    }
    Vmm *h = ops_vm_claim_running(ctx, i.vm, "update_allowed_operations", &token, errp);
    if (!h)
        goto out;
    VmDiskFile f = {0};
    if (!i.empty && !vmdisk_attach(ctx, i.vm, i.vdi, i.rw, &f, errp))
        goto release;
    VmmDisk d = {
        .position = i.position,
        .type = i.cd ? VMM_DISK_TYPE_CDROM : VMM_DISK_TYPE_DISK,
        .bus = i.bus,
        .path = f.path,
        .format = f.format,
        .read_only = i.cd || f.read_only,
        .bootindex = -1,
    };
    char *err = NULL;
    int r = vmm_disk_attach(h, &d, &err);
    if (r < 0) {
        log_warn("VBD %s: %s", self, err ? err : strerror(-r));
        vmm_error_to_xs(errp, self, r, err);
        free(err);
        vmdisk_file_release(&f);
        if (!i.empty)
            vmdisk_detach(ctx, i.vm, i.vdi);
        goto release;
    }
    vmdisk_file_release(&f);
    ok = set_attached(ctx, self, true, i.bus, i.position, errp);
release:
    ops_vm_release_running(ctx, i.vm, token);
out:
    info_release(&i);
    return ok;
}

static bool unplug(OpsCtx *ctx, const char *self, bool force, XsError **errp)
{
    VbdInfo i;
    if (!vbd_info(ctx, self, &i, errp))
        return false;
    bool ok = false;
    char *token = NULL;
    if (!i.attached) {
        xs_err_device_already_detached(errp, self);
        goto out;
    }
    if (!force && !i.unpluggable) {
        xs_err_vbd_not_unpluggable(errp, self);
        goto out;
    }
    Vmm *h = ops_vm_claim_running(ctx, i.vm, "update_allowed_operations", &token, errp);
    if (!h)
        goto out;
    char *err = NULL;
    int r = vmm_disk_detach(h, i.position, UNPLUG_TIMEOUT_MS, &err);
    if (r < 0 && r != -ENODEV) {
        log_warn("VBD %s: %s", self, err ? err : strerror(-r));
        if (r == -ETIMEDOUT && force)
            xs_err_device_detach_timeout(errp, "VBD", self);
        else
            vmm_error_to_xs(errp, self, r, err);
        free(err);
        goto release;
    }
    free(err);
    ok = set_attached(ctx, self, false, i.bus, i.position, errp);
    if (ok && !i.empty)
        vmdisk_detach(ctx, i.vm, i.vdi);
release:
    ops_vm_release_running(ctx, i.vm, token);
out:
    info_release(&i);
    return ok;
}

bool ops_vbd_unplug(OpsCtx *ctx, const char *self, XsError **errp)
{
    return unplug(ctx, self, false, errp);
}

bool ops_vbd_unplug_force(OpsCtx *ctx, const char *self, XsError **errp)
{
    return unplug(ctx, self, true, errp);
}

static bool set_medium(OpsCtx *ctx, const char *self, const char *vdi, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vbd = db_get_class(ctx->db, XS_CLASS_VBD, self);
    if (vbd) {
        db_set_str(txn, vbd, F_VBD_VDI, vdi ? vdi : "OpaqueRef:NULL");
        db_set_bool(txn, vbd, F_VBD_EMPTY, vdi == NULL);
        ops_vbd_update_allowed(txn, vbd);
    }
    return db_commit(txn, errp);
}

bool ops_vbd_insert(OpsCtx *ctx, const char *vbd, const char *vdi, XsError **errp)
{
    VbdInfo i;
    if (!vbd_info(ctx, vbd, &i, errp))
        return false;
    bool ok = false;
    char *token = NULL;
    if (!i.cd) {
        xs_err_vbd_not_removable_media(errp, vbd);
        goto out;
    }
    if (!i.empty) {
        xs_err_vbd_not_empty(errp, vbd);
        goto out;
    }
    bool live = i.attached && (i.ps == VM_POWER_STATE_RUNNING || i.ps == VM_POWER_STATE_PAUSED);
    if (!live) {
        ok = set_medium(ctx, vbd, vdi, errp);
        goto out;
    }
    Vmm *h = ops_vm_claim_running(ctx, i.vm, "update_allowed_operations", &token, errp);
    if (!h)
        goto out;
    VmDiskFile f;
    if (!vmdisk_attach(ctx, i.vm, vdi, false, &f, errp))
        goto release;
    char *err = NULL;
    int r = vmm_cd_insert(h, i.position, f.path, &err);
    vmdisk_file_release(&f);
    if (r < 0) {
        log_warn("VBD %s: %s", vbd, err ? err : strerror(-r));
        vmm_error_to_xs(errp, vbd, r, err);
        free(err);
        vmdisk_detach(ctx, i.vm, vdi);
        goto release;
    }
    ok = set_medium(ctx, vbd, vdi, errp);
release:
    ops_vm_release_running(ctx, i.vm, token);
out:
    info_release(&i);
    return ok;
}

bool ops_vbd_eject(OpsCtx *ctx, const char *vbd, XsError **errp)
{
    VbdInfo i;
    if (!vbd_info(ctx, vbd, &i, errp))
        return false;
    bool ok = false;
    char *token = NULL;
    if (!i.cd) {
        xs_err_vbd_not_removable_media(errp, vbd);
        goto out;
    }
    if (i.empty) {
        xs_err_vbd_is_empty(errp, vbd);
        goto out;
    }
    bool live = i.attached && (i.ps == VM_POWER_STATE_RUNNING || i.ps == VM_POWER_STATE_PAUSED);
    if (!live) {
        ok = set_medium(ctx, vbd, NULL, errp);
        goto out;
    }
    Vmm *h = ops_vm_claim_running(ctx, i.vm, "update_allowed_operations", &token, errp);
    if (!h)
        goto out;
    char *err = NULL;
    int r = vmm_cd_eject(h, i.position, &err);
    if (r < 0) {
        log_warn("VBD %s: %s", vbd, err ? err : strerror(-r));
        vmm_error_to_xs(errp, vbd, r, err);
        free(err);
        goto release;
    }
    ok = set_medium(ctx, vbd, NULL, errp);
    if (ok)
        vmdisk_detach(ctx, i.vm, i.vdi);
release:
    ops_vm_release_running(ctx, i.vm, token);
out:
    info_release(&i);
    return ok;
}
