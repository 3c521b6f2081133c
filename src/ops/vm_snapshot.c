/*
 * Snapshots of VMs and reverts: VM.snapshot, VM.snapshot_with_quiesce,
 * VM.checkpoint and VM.revert.
 *
 * A snapshot is a VM record with is_a_snapshot and is_a_template set,
 * snapshot_of its VM, and VDIs of its own made by storage's VDI.snapshot
 * (O(1) qcow2 overlays). The disks of a running VM are switched to new
 * external overlays through QMP by storage's live hook, which uses the VM
 * this file holds; never an internal qcow2 snapshot. A VM with several disks
 * is paused around the switches so that they show one instant; with one
 * disk the QMP transaction alone is atomic. A quiesced snapshot freezes the
 * guest's file systems through the guest agent around the switch. A
 * checkpoint pauses the guest, switches its disks, writes its memory
 * (QEMU keeps running) and lets it run on; the memory becomes the
 * snapshot's suspend VDI and QEMU's configuration its last_booted_record.
 *
 * Revert makes the VM a copy of the snapshot: the snapshot's disks are
 * cloned (O(1)) first, a running VM is then stopped, the VM's records are
 * switched in one transaction, and the disks they replace are destroyed
 * last (their chains merge, with progress on the task); a checkpoint is
 * then resumed. Later snapshots have disks of their own and stay valid.
 *
 * Long work runs outside any transaction. Nothing is left half-made: a
 * failure removes the VDIs and records it made, and a failed revert leaves
 * the VM as it was (except a resume that fails after the switch: the VM is
 * then suspended in the reverted state). HYPERXE_FAIL_AT=<point> makes the
 * named step fail, for the tests of those paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ops/guest_agent.h"
#include "ops/ops.h"
#include "ops/vdi.h"
#include "ops/vm.h"
#include "ops/vm_lifecycle.h"
#include "ops/vmdisk.h"
#include "ops/vmrt.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define PS(s) (1u << VM_POWER_STATE_##s)
#define AGENT_SYNC_MS 2000
#define AGENT_WAIT_MS 8000
#define FREEZE_TIMEOUT_MS 30000
#define THAW_TIMEOUT_MS 10000
/* The guest's QEMU configuration a checkpoint keeps (JSON), at most. */
#define MAX_CONFIG_JSON (1024 * 1024)

typedef enum {
    KIND_SNAPSHOT,
    KIND_QUIESCE,
    KIND_CHECKPOINT,
} SnapKind;

/* True when HYPERXE_FAIL_AT names this step: the tests make it fail there. */
static bool fail_point(const char *name)
{
    const char *want = getenv("HYPERXE_FAIL_AT");
    if (!want || strcmp(want, name) != 0)
        return false;
    log_warn("failing at %s as HYPERXE_FAIL_AT asks", name);
    return true;
}

static bool failed_at(const char *name, XsError **errp)
{
    if (!fail_point(name))
        return false;
    xs_error_internal(errp, "injected failure at %s (HYPERXE_FAIL_AT)", name);
    return true;
}

static void destroy_vdi_quietly(OpsCtx *ctx, const char *vdi, const char *why)
{
    XsError *e = NULL;
    if (!ops_vdi_destroy_disk(ctx, vdi, &e)) {
        _cleanup_free_ char *s = xs_error_to_string(e);
        log_warn("cannot remove VDI %s (%s): %s", vdi, why, s);
    }
    xs_error_free(e);
}

/* ---- holding a VM ------------------------------------------------------------------ */

/* The checks every snapshot operation makes on its VM (inside a transaction). */
static bool check_source(DbObj *vm, const char *op, unsigned mask, XsError **errp)
{
    return ops_vm_check_operable(vm, op, mask,
                                 "The control domain stands for the host itself and "
                                 "cannot be snapshotted.",
                                 errp);
}

/* XenServer refuses snapshots of VMs with on-boot=reset disks: their writes are thrown away. */
static bool check_no_reset_disks(Db *db, DbObj *vm, XsError **errp)
{
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VBDS); i++) {
        DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
        DbObj *vdi = db_get_class(db, XS_CLASS_VDI, db_str(vbd, F_VBD_VDI));
        if (vdi && db_enum(vbd, F_VBD_TYPE) != VBD_TYPE_CD &&
            db_enum(vdi, F_VDI_ON_BOOT) == ON_BOOT_RESET) {
            xs_err_vdi_on_boot_mode_incompatible_with_operation(errp);
            return false;
        }
    }
    return true;
}

typedef struct Held {
    VmRt *rt;
    char *token;
    int power; /* power state when taken */
    char uuid[VMM_UUID_LEN + 1];
} Held;

/*
 * Takes vm for op: its runtime (no power operation meanwhile) and its
 * current_operations. mask: the power states op accepts. A VM recorded
 * running must have a QEMU.
 */
static bool hold_vm(OpsCtx *ctx, const char *vm, const char *op, unsigned mask, bool snapshot,
                    Held *h, XsError **errp)
{
    memset(h, 0, sizeof(*h));
    h->rt = vmrt_get(ctx->env, vm);
    if (!h->rt) {
        xs_err_handle_invalid(errp, "VM", vm);
        return false;
    }
    if (!vmrt_claim(h->rt, op, errp)) {
        h->rt = NULL;
        return false;
    }
    DbTxn *txn = db_begin(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
    bool ok = v && check_source(v, op, mask, errp) &&
              (!snapshot || check_no_reset_disks(ctx->db, v, errp)) &&
              ops_op_begin(ctx, txn, v, op, &h->token, errp);
    if (!v)
        xs_err_handle_invalid(errp, "VM", vm);
    if (ok) {
        h->power = db_enum(v, F_VM_POWER_STATE);
        snprintf(h->uuid, sizeof(h->uuid), "%s", db_str(v, F_VM_UUID));
        ok = db_commit(txn, errp);
        if (!ok) {
            free(h->token);
            h->token = NULL;
        }
    } else {
        db_abort(txn);
    }
    bool have = false;
    if (ok) {
        pthread_mutex_lock(&h->rt->mu);
        have = h->rt->vmm != NULL;
        snprintf(h->rt->owner_token, sizeof(h->rt->owner_token), "%s", h->token);
        pthread_mutex_unlock(&h->rt->mu);
    }
    if (ok && (h->power == VM_POWER_STATE_RUNNING || h->power == VM_POWER_STATE_PAUSED)) {
        if (!have) {
            /* The record says it runs but no QEMU is known: refuse rather than guess. */
            xs_err_vm_bad_power_state(errp, vm, "running", "halted");
            ops_op_end(ctx, XS_CLASS_VM, vm, h->token);
            free(h->token);
            h->token = NULL;
            ok = false;
        }
    }
    if (!ok) {
        vmrt_release(h->rt);
        h->rt = NULL;
    }
    return ok;
}

static void release_vm(OpsCtx *ctx, Held *h)
{
    if (!h->rt)
        return;
    ops_op_end(ctx, XS_CLASS_VM, h->rt->ref, h->token);
    free(h->token);
    h->token = NULL;
    vmrt_release(h->rt);
    h->rt = NULL;
}

static Vmm *held_vmm(Held *h)
{
    pthread_mutex_lock(&h->rt->mu);
    Vmm *v = h->rt->vmm;
    pthread_mutex_unlock(&h->rt->mu);
    return v;
}

/* ---- copying records ------------------------------------------------------------------- */

/* The fields a copy of a record takes: those the API sets at creation or later. */
static bool copied_field(const XsClass *cls, size_t idx)
{
    const XsField *f = &cls->fields[idx];
    if (f->flags & XS_FIELD_DERIVED)
        return false;
    if (cls == &xs_class_VM && (int)idx == F_VM_BIOS_STRINGS)
        return true;
    return f->qual != XS_QUAL_RO_RUNTIME;
}

static void copy_fields(DbTxn *txn, const XsClass *cls, DbObj *dst, const DbObj *src)
{
    for (size_t i = 1; i < cls->nfields; i++)
        if (copied_field(cls, i) && !xv_equal(&dst->fields[i], &src->fields[i]))
            db_set(txn, dst, (int)i, xv_copy(&src->fields[i]));
}

/* A copy of VBD o for vm with vdi (NULL: empty drive). */
static bool copy_vbd(DbTxn *txn, DbObj *o, DbObj *vm, const char *vdi, bool owned,
                     XsError **errp)
{
    DbObj *n = db_create(txn, XS_CLASS_VBD, NULL, NULL, errp);
    if (!n)
        return false;
    copy_fields(txn, &xs_class_VBD, n, o);
    db_set_str(txn, n, F_VBD_VM, vm->ref);
    db_set_str(txn, n, F_VBD_VDI, vdi ? vdi : "OpaqueRef:NULL");
    db_set_bool(txn, n, F_VBD_EMPTY, vdi == NULL);
    db_set_bool(txn, n, F_VBD_CURRENTLY_ATTACHED, false);
    /* The copies of disks belong to the VM they are made for (removed with it). */
    if (owned && !xv_struct_get(&n->fields[F_VBD_OTHER_CONFIG], "owner"))
        db_map_set(txn, n, F_VBD_OTHER_CONFIG, "owner", "");
    ops_update_allowed(txn, n);
    return true;
}

/* A copy of VIF o for vm, with the same MAC. */
static bool copy_vif(DbTxn *txn, DbObj *o, DbObj *vm, XsError **errp)
{
    DbObj *n = db_create(txn, XS_CLASS_VIF, NULL, NULL, errp);
    if (!n)
        return false;
    copy_fields(txn, &xs_class_VIF, n, o);
    db_set_str(txn, n, F_VIF_VM, vm->ref);
    db_set_str(txn, n, F_VIF_MAC, db_str(o, F_VIF_MAC));
    db_set_bool(txn, n, F_VIF_MAC_AUTOGENERATED, db_bool(o, F_VIF_MAC_AUTOGENERATED));
    db_set_bool(txn, n, F_VIF_CURRENTLY_ATTACHED, false);
    ops_update_allowed(txn, n);
    return true;
}

/* ---- taking a snapshot ------------------------------------------------------------------- */

typedef struct SnapDisk {
    char *vbd;     /* the VM's VBD */
    char *vdi;     /* its VDI; NULL: an empty drive */
    bool take;     /* a disk to snapshot (not a CD, not ignored) */
    bool skip;     /* ignored: the snapshot gets no VBD for it */
    char *new_vdi; /* the snapshot's VDI */
} SnapDisk;

typedef struct SnapJob {
    const char *vm;
    SnapKind kind;
    Held held;
    SnapDisk *disks;
    size_t n_disks;
    size_t n_take;
    char *mem_vdi;     /* checkpoint: the memory image's VDI */
    char *config_json; /* checkpoint: QEMU's configuration */
    char *suspend_sr;  /* checkpoint: where the memory goes */
    bool with_memory;  /* checkpoint of a running VM */
} SnapJob;

static void job_release(SnapJob *j)
{
    for (size_t i = 0; i < j->n_disks; i++) {
        free(j->disks[i].vbd);
        free(j->disks[i].vdi);
        free(j->disks[i].new_vdi);
    }
    free(j->disks);
    free(j->mem_vdi);
    free(j->config_json);
    free(j->suspend_sr);
}

/* The SR for a checkpoint's memory: the VM's suspend SR, the host's, the pool's. */
static char *suspend_sr_of(Db *db, HxEnv *env, DbObj *vm)
{
    const char *sr = db_str(vm, F_VM_SUSPEND_SR);
    if (db_get_class(db, XS_CLASS_SR, sr))
        return xstrdup(sr);
    DbObj *host = db_get_class(db, XS_CLASS_HOST, env->host_ref);
    if (host && db_get_class(db, XS_CLASS_SR, db_str(host, F_HOST_SUSPEND_IMAGE_SR)))
        return xstrdup(db_str(host, F_HOST_SUSPEND_IMAGE_SR));
    DbObj *pool = db_get_class(db, XS_CLASS_POOL, env->pool_ref);
    if (pool && db_get_class(db, XS_CLASS_SR, db_str(pool, F_POOL_SUSPEND_IMAGE_SR)))
        return xstrdup(db_str(pool, F_POOL_SUSPEND_IMAGE_SR));
    if (pool && db_get_class(db, XS_CLASS_SR, db_str(pool, F_POOL_DEFAULT_SR)))
        return xstrdup(db_str(pool, F_POOL_DEFAULT_SR));
    return NULL;
}

/* Lists the VM's drives and which of them to snapshot. */
static bool gather_disks(OpsCtx *ctx, SnapJob *j, const XsValue *ignore, XsError **errp)
{
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, j->vm);
    bool ok = vm != NULL;
    if (!vm) {
        xs_err_handle_invalid(errp, "VM", j->vm);
    } else {
        size_t n = db_backref_count(vm, F_VM_VBDS);
        j->disks = xcalloc(n + 1, sizeof(SnapDisk));
        for (size_t i = 0; i < n; i++) {
            DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
            SnapDisk *d = &j->disks[j->n_disks++];
            d->vbd = xstrdup(vbd->ref);
            const char *vdi = db_str(vbd, F_VBD_VDI);
            if (db_get_class(ctx->db, XS_CLASS_VDI, vdi))
                d->vdi = xstrdup(vdi);
            bool cd = db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD;
            d->skip = d->vdi && !cd && ignore && xv_array_contains_string(ignore, d->vdi);
            d->take = d->vdi && !cd && !d->skip;
            j->n_take += d->take;
        }
        if (j->kind == KIND_CHECKPOINT && j->with_memory) {
            j->suspend_sr = suspend_sr_of(ctx->db, ctx->env, vm);
            if (!j->suspend_sr) {
                xs_err_vm_no_suspend_sr(errp, j->vm);
                ok = false;
            }
        }
    }
    db_read_unlock(ctx->db);
    return ok;
}

static void destroy_made(OpsCtx *ctx, SnapJob *j)
{
    for (size_t i = 0; i < j->n_disks; i++) {
        if (j->disks[i].new_vdi)
            destroy_vdi_quietly(ctx, j->disks[i].new_vdi, "an unfinished snapshot");
        free(j->disks[i].new_vdi);
        j->disks[i].new_vdi = NULL;
    }
    if (j->mem_vdi)
        destroy_vdi_quietly(ctx, j->mem_vdi, "the memory of an unfinished checkpoint");
    free(j->mem_vdi);
    j->mem_vdi = NULL;
}

/* Snapshots every disk to take (live through storage's hook when attached). */
static bool snapshot_disks(OpsCtx *ctx, SnapJob *j, double from, double span, XsError **errp)
{
    size_t done = 0;
    for (size_t i = 0; i < j->n_disks; i++) {
        SnapDisk *d = &j->disks[i];
        if (!d->take)
            continue;
        if (ops_cancelled(ctx)) {
            xs_err_task_cancelled(errp, ctx->task ? ctx->task : "");
            return false;
        }
        XsValue *params = xv_struct();
        bool ok = ops_vdi_snapshot(ctx, d->vdi, params, &d->new_vdi, errp);
        xv_free(params);
        if (!ok)
            return false;
        done++;
        ops_progress(ctx, from + span * (double)done / (double)j->n_take);
    }
    return true;
}

/* Asks the guest agent to freeze the guest's file systems. */
static bool quiesce(OpsCtx *ctx, SnapJob *j, QgaClient **out, XsError **errp)
{
    *out = NULL;
    if (vmm_get_backend() != VMM_BACKEND_QEMU) {
        xs_err_vm_snapshot_with_quiesce_not_supported(errp, j->vm, "no guest agent (simulated VM)");
        return false;
    }
    /* The channel is borrowed from the VM's guest-agent session (guest_agent.c). */
    VmRt *rt = vmrt_get(ctx->env, j->vm);
    char *err = NULL;
    QgaClient *c = rt ? guest_agent_acquire(rt, AGENT_WAIT_MS, AGENT_SYNC_MS, &err) : NULL;
    if (!c) {
        log_info("VM %s: no guest agent answers (%s): no quiesced snapshot", j->held.uuid,
                 err ? err : "?");
        xs_err_vm_snapshot_with_quiesce_not_supported(errp, j->vm,
                                                      err ? err : "no guest agent answers");
        free(err);
        return false;
    }
    int r = qga_fsfreeze_freeze(c, FREEZE_TIMEOUT_MS, &err);
    if (r < 0) {
        log_error("VM %s: the guest agent could not freeze the file systems: %s", j->held.uuid,
                  err ? err : strerror(-r));
        free(err);
        err = NULL;
        /* Whatever it froze is thawed again. */
        if (qga_fsfreeze_thaw(c, THAW_TIMEOUT_MS, &err) < 0)
            log_warn("VM %s: thaw after a failed freeze: %s", j->held.uuid, err ? err : "?");
        free(err);
        guest_agent_release(rt, c, false);
        if (r == -ETIMEDOUT)
            xs_err_vm_snapshot_with_quiesce_timeout(errp, j->vm);
        else
            xs_err_vm_snapshot_with_quiesce_failed(errp, j->vm);
        return false;
    }
    log_info("VM %s: %d file system(s) frozen for a quiesced snapshot", j->held.uuid, r);
    *out = c;
    return true;
}

static void thaw(OpsCtx *ctx, SnapJob *j, QgaClient *c)
{
    if (!c)
        return;
    char *err = NULL;
    int r = qga_fsfreeze_thaw(c, THAW_TIMEOUT_MS, &err);
    if (r < 0)
        log_error("VM %s: the guest agent could not thaw the file systems (its own timeout "
                  "will): %s", j->held.uuid, err ? err : strerror(-r));
    else
        log_info("VM %s: %d file system(s) thawed", j->held.uuid, r);
    free(err);
    VmRt *rt = vmrt_get(ctx->env, j->vm);
    if (rt)
        guest_agent_release(rt, c, r >= 0);
    else
        qga_close(c);
}

typedef struct SaveProgress {
    OpsCtx *ctx;
} SaveProgress;

static void save_progress(uint64_t done, uint64_t total, void *opaque)
{
    SaveProgress *p = opaque;
    if (total)
        ops_progress(p->ctx, 0.3 + 0.3 * (double)done / (double)total);
}

/*
 * The disks and, for a checkpoint of a running VM, the memory. A running VM
 * with several disks (and any checkpointed VM) is paused meanwhile.
 */
static bool take(OpsCtx *ctx, SnapJob *j, XsError **errp)
{
    Vmm *h = NULL;
    bool live = j->held.power == VM_POWER_STATE_RUNNING || j->held.power == VM_POWER_STATE_PAUSED;
    if (live)
        h = held_vmm(&j->held);
    bool pause = j->held.power == VM_POWER_STATE_RUNNING && (j->with_memory || j->n_take > 1);
    QgaClient *agent = NULL;
    if (j->kind == KIND_QUIESCE && !quiesce(ctx, j, &agent, errp))
        return false;
    char *err = NULL;
    int64_t t0 = 0;
    if (pause) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t0 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        int r = vmm_pause(h, &err);
        if (r < 0) {
            log_error("VM %s: cannot pause it for the snapshot: %s", j->held.uuid,
                      err ? err : strerror(-r));
            free(err);
            thaw(ctx, j, agent);
            if (j->with_memory)
                xs_err_vm_checkpoint_suspend_failed(errp, j->vm);
            else
                xs_error_internal(errp, "VM %s could not be paused for the snapshot of its disks",
                                  j->held.uuid);
            return false;
        }
    }
    bool ok = snapshot_disks(ctx, j, 0.05, j->with_memory ? 0.25 : 0.8, errp);
    _cleanup_free_ char *image = NULL;
    if (ok && j->with_memory) {
        VmmConfig cfg;
        vmm_get_config(h, &cfg);
        struct json_object *jc = vmm_config_to_json(&cfg);
        vmm_config_release(&cfg);
        j->config_json = xstrdup(json_object_to_json_string_ext(jc, JSON_C_TO_STRING_PLAIN));
        json_object_put(jc);
        _cleanup_free_ char *dir = xasprintf("%s/suspend", ctx->env->state_dir);
        mkdir(dir, 0700);
        image = xasprintf("%s/checkpoint-%s.img", dir, j->held.uuid);
        SaveProgress sp = {ctx};
        int r = fail_point("checkpoint-save") ? -EIO
                                              : vmm_save_state(h, image, save_progress, &sp, &err);
        if (r < 0) {
            log_error("VM %s: saving its memory for the checkpoint failed: %s", j->held.uuid,
                      err ? err : strerror(-r));
            xs_err_vm_checkpoint_suspend_failed(errp, j->vm);
            free(err);
            err = NULL;
            ok = false;
        }
    }
    if (pause) {
        int r = vmm_unpause(h, &err);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t held_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - t0;
        log_info("VM %s: paused %" PRId64 " ms for the %s of %zu disk(s)%s", j->held.uuid,
                 held_ms, j->with_memory ? "checkpoint" : "snapshot", j->n_take,
                 j->with_memory ? " and its memory" : "");
        if (r < 0) {
            /* The guest stays paused: the record says so, so that nothing pretends. */
            log_error("VM %s: cannot run it on after the snapshot: %s", j->held.uuid,
                      err ? err : strerror(-r));
            DbTxn *txn = db_begin(ctx->db);
            DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, j->vm);
            if (v) {
                db_set_enum(txn, v, F_VM_POWER_STATE, VM_POWER_STATE_PAUSED);
                ops_vm_update_allowed(txn, v);
            }
            db_commit(txn, NULL);
        }
        free(err);
        err = NULL;
    }
    thaw(ctx, j, agent);
    if (ok && j->with_memory) {
        /* The memory goes into a suspend VDI while the guest runs on, padded with zeros to
         * whole sectors so that the end of the stream is kept (QEMU ignores what follows). */
        struct stat st;
        if (stat(image, &st) == 0 && st.st_size % 512 != 0 &&
            truncate(image, (st.st_size / 512 + 1) * 512) < 0)
            log_warn("VM %s: cannot pad the memory image: %s", j->held.uuid, strerror(errno));
        _cleanup_free_ char *name = xasprintf("Suspend image of %s", j->held.uuid);
        ok = vmdisk_create_from_file(ctx, j->suspend_sr, name, VDI_TYPE_SUSPEND, image,
                                     &j->mem_vdi, errp);
        ops_progress(ctx, 0.85);
    }
    if (image)
        unlink(image);
    return ok;
}

static const char *power_name(int ps)
{
    return ps >= 0 && ps < VM_POWER_STATE__MAX ? xs_enum_vm_power_state.values[ps] : "Halted";
}

/* The snapshot's record, its VBDs and VIFs (one transaction). */
static bool record_snapshot(OpsCtx *ctx, SnapJob *j, const char *name, char **ret,
                            XsError **errp)
{
    if (failed_at("snapshot-record", errp))
        return false;
    DbTxn *txn = db_begin(ctx->db);
    DbObj *src = db_get_class(ctx->db, XS_CLASS_VM, j->vm);
    DbObj *s = src ? db_create(txn, XS_CLASS_VM, NULL, NULL, errp) : NULL;
    if (!src)
        xs_err_handle_invalid(errp, "VM", j->vm);
    if (!s) {
        db_abort(txn);
        return false;
    }
    copy_fields(txn, &xs_class_VM, s, src);
    bool memory = j->mem_vdi != NULL;
    db_set_str(txn, s, F_VM_NAME_LABEL, name);
    db_set_bool(txn, s, F_VM_IS_A_SNAPSHOT, true);
    db_set_bool(txn, s, F_VM_IS_A_TEMPLATE, true);
    db_set_bool(txn, s, F_VM_IS_DEFAULT_TEMPLATE, false);
    db_set_str(txn, s, F_VM_SNAPSHOT_OF, src->ref);
    db_set_datetime(txn, s, F_VM_SNAPSHOT_TIME, (int64_t)time(NULL));
    XsValue *info = xv_struct();
    xv_struct_set_string(info, "power-state-at-snapshot", power_name(j->held.power));
    xv_struct_set_string(info, "disk-snapshot-type",
                         j->kind == KIND_QUIESCE ? "quiesced" : "crash_consistent");
    db_set(txn, s, F_VM_SNAPSHOT_INFO, info);
    /* Who the VM was, so that a revert can bring it back once it is destroyed. */
    struct json_object *meta = json_object_new_object();
    json_object_object_add(meta, "uuid", json_object_new_string(db_str(src, F_VM_UUID)));
    json_object_object_add(meta, "name_label",
                           json_object_new_string(db_str(src, F_VM_NAME_LABEL)));
    db_set_str(txn, s, F_VM_SNAPSHOT_METADATA,
               json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN));
    json_object_put(meta);
    db_set_enum(txn, s, F_VM_POWER_STATE,
                memory ? VM_POWER_STATE_SUSPENDED : VM_POWER_STATE_HALTED);
    db_set_str(txn, s, F_VM_SUSPEND_VDI, memory ? j->mem_vdi : "OpaqueRef:NULL");
    db_set_str(txn, s, F_VM_LAST_BOOTED_RECORD, memory ? j->config_json : "");
    db_set_int(txn, s, F_VM_DOMID, -1);
    db_set_str(txn, s, F_VM_RESIDENT_ON, "OpaqueRef:NULL");
    db_set_bool(txn, s, F_VM_HA_ALWAYS_RUN, false);
    db_set_str(txn, s, F_VM_APPLIANCE, "OpaqueRef:NULL");
    db_set_int(txn, s, F_VM_START_DELAY, 0);
    db_set_int(txn, s, F_VM_SHUTDOWN_DELAY, 0);
    db_set_int(txn, s, F_VM_ORDER, 0);
    db_set_str(txn, s, F_VM_SUSPEND_SR, "OpaqueRef:NULL");
    db_set(txn, s, F_VM_BLOCKED_OPERATIONS, xv_struct());
    /* The snapshot tree: the snapshot hangs where the VM was, the VM now hangs from it. */
    db_set_str(txn, s, F_VM_PARENT, db_str(src, F_VM_PARENT));
    db_set_str(txn, src, F_VM_PARENT, s->ref);
    bool ok = ops_vm_new_metrics(txn, s, errp);
    for (size_t i = 0; ok && i < j->n_disks; i++) {
        SnapDisk *d = &j->disks[i];
        DbObj *o = db_get_class(ctx->db, XS_CLASS_VBD, d->vbd);
        if (!o || d->skip)
            continue;
        ok = copy_vbd(txn, o, s, d->take ? d->new_vdi : d->vdi, d->take, errp);
    }
    for (size_t i = 0; ok && i < db_backref_count(src, F_VM_VIFS); i++)
        ok = copy_vif(txn, db_backref(src, F_VM_VIFS, i), s, errp);
    if (!ok) {
        db_abort(txn);
        return false;
    }
    ops_vm_update_allowed(txn, s);
    char *ref = xstrdup(s->ref);
    if (!db_commit(txn, errp)) {
        free(ref);
        return false;
    }
    *ret = ref;
    return true;
}

static bool do_snapshot(OpsCtx *ctx, const char *vm, const char *name, SnapKind kind,
                        const XsValue *ignore, char **ret, XsError **errp)
{
    static const char *const ops[] = {"snapshot", "snapshot_with_quiesce", "checkpoint"};
    unsigned mask = kind == KIND_SNAPSHOT
                        ? PS(HALTED) | PS(RUNNING) | PS(PAUSED) | PS(SUSPENDED)
                        : kind == KIND_QUIESCE ? PS(RUNNING) : PS(RUNNING) | PS(PAUSED);
    SnapJob j = {.vm = vm, .kind = kind};
    if (!hold_vm(ctx, vm, ops[kind], mask, true, &j.held, errp))
        return false;
    /* A paused VM's checkpoint holds its disks only, as XenServer's does. */
    j.with_memory = kind == KIND_CHECKPOINT && j.held.power == VM_POWER_STATE_RUNNING;
    bool ok = gather_disks(ctx, &j, ignore, errp) && take(ctx, &j, errp);
    if (ok && failed_at("snapshot-disks", errp))
        ok = false;
    if (ok) {
        ok = record_snapshot(ctx, &j, name, ret, errp);
        ops_progress(ctx, 1.0);
    }
    if (!ok)
        destroy_made(ctx, &j);
    release_vm(ctx, &j.held);
    if (ok)
        log_info("VM %s: %s %s taken", j.held.uuid, ops[kind], *ret);
    job_release(&j);
    return ok;
}

bool ops_vm_snapshot(OpsCtx *ctx, const char *vm, const char *new_name, const XsValue *ignore_vdis,
                     char **ret, XsError **errp)
{
    bool ok = true;
    db_read_lock(ctx->db);
    for (uint32_t i = 0; ok && ignore_vdis && i < ignore_vdis->n; i++) {
        const char *r = ignore_vdis->items[i].s;
        if (ignore_vdis->items[i].kind != XV_STRING || !db_get_class(ctx->db, XS_CLASS_VDI, r)) {
            xs_err_handle_invalid(errp, "VDI", r ? r : "");
            ok = false;
        }
    }
    db_read_unlock(ctx->db);
    if (!ok)
        return false;
    return do_snapshot(ctx, vm, new_name, KIND_SNAPSHOT, ignore_vdis, ret, errp);
}

bool ops_vm_snapshot_with_quiesce(OpsCtx *ctx, const char *vm, const char *new_name, char **ret,
                                  XsError **errp)
{
    return do_snapshot(ctx, vm, new_name, KIND_QUIESCE, NULL, ret, errp);
}

bool ops_vm_checkpoint(OpsCtx *ctx, const char *vm, const char *new_name, char **ret,
                       XsError **errp)
{
    return do_snapshot(ctx, vm, new_name, KIND_CHECKPOINT, NULL, ret, errp);
}

/* ---- revert ------------------------------------------------------------------------------ */

typedef struct RevDisk {
    char *vbd;      /* the snapshot's VBD */
    char *vdi;      /* its VDI (NULL: empty) */
    bool clone;     /* a disk: the VM gets a clone of it */
    char *of;       /* the VDI it is a snapshot of (the VM's disk then) */
    char *new_vdi;  /* the clone */
} RevDisk;

typedef struct RevJob {
    char *snapshot;
    char *vm;
    char vm_uuid[VMM_UUID_LEN + 1];
    RevDisk *disks;
    size_t n_disks;
    char *suspend_vdi;     /* the snapshot's memory */
    char *new_suspend_vdi; /* its clone for the VM */
    char *config_json;     /* QEMU's configuration at the checkpoint */
    char **doomed;         /* the VM's disks the revert replaces */
    size_t n_doomed;
} RevJob;

static void rev_release(RevJob *j)
{
    for (size_t i = 0; i < j->n_disks; i++) {
        free(j->disks[i].vbd);
        free(j->disks[i].vdi);
        free(j->disks[i].of);
        free(j->disks[i].new_vdi);
    }
    free(j->disks);
    free(j->snapshot);
    free(j->vm);
    free(j->suspend_vdi);
    free(j->new_suspend_vdi);
    free(j->config_json);
    for (size_t i = 0; i < j->n_doomed; i++)
        free(j->doomed[i]);
    free(j->doomed);
}

static void rev_destroy_clones(OpsCtx *ctx, RevJob *j)
{
    for (size_t i = 0; i < j->n_disks; i++) {
        if (j->disks[i].new_vdi)
            destroy_vdi_quietly(ctx, j->disks[i].new_vdi, "an unfinished revert");
        free(j->disks[i].new_vdi);
        j->disks[i].new_vdi = NULL;
    }
    if (j->new_suspend_vdi)
        destroy_vdi_quietly(ctx, j->new_suspend_vdi, "an unfinished revert");
    free(j->new_suspend_vdi);
    j->new_suspend_vdi = NULL;
}

/* Reads what the revert needs from the snapshot (read lock). */
static bool rev_gather(OpsCtx *ctx, RevJob *j, XsError **errp)
{
    db_read_lock(ctx->db);
    DbObj *s = db_get_class(ctx->db, XS_CLASS_VM, j->snapshot);
    DbObj *vm = s ? db_get_class(ctx->db, XS_CLASS_VM, db_str(s, F_VM_SNAPSHOT_OF)) : NULL;
    bool ok = false;
    if (!s) {
        xs_err_handle_invalid(errp, "VM", j->snapshot);
    } else if (!db_bool(s, F_VM_IS_A_SNAPSHOT)) {
        xs_err_revert_only_allowed_on_snapshot(errp);
    } else if (!vm || db_bool(vm, F_VM_IS_A_SNAPSHOT)) {
        log_error("snapshot %s: the VM it was taken of (%s) no longer exists",
                  db_str(s, F_VM_UUID), db_str(s, F_VM_SNAPSHOT_OF));
        xs_err_vm_revert_failed(errp, db_str(s, F_VM_SNAPSHOT_OF), j->snapshot);
    } else {
        ok = true;
        j->vm = xstrdup(vm->ref);
        snprintf(j->vm_uuid, sizeof(j->vm_uuid), "%s", db_str(vm, F_VM_UUID));
        size_t n = db_backref_count(s, F_VM_VBDS);
        j->disks = xcalloc(n + 1, sizeof(RevDisk));
        for (size_t i = 0; i < n; i++) {
            DbObj *vbd = db_backref(s, F_VM_VBDS, i);
            RevDisk *d = &j->disks[j->n_disks++];
            d->vbd = xstrdup(vbd->ref);
            DbObj *vdi = db_get_class(ctx->db, XS_CLASS_VDI, db_str(vbd, F_VBD_VDI));
            if (vdi) {
                d->vdi = xstrdup(vdi->ref);
                d->clone = db_enum(vbd, F_VBD_TYPE) != VBD_TYPE_CD;
                d->of = xstrdup(db_str(vdi, F_VDI_SNAPSHOT_OF));
            }
        }
        if (db_enum(s, F_VM_POWER_STATE) == VM_POWER_STATE_SUSPENDED) {
            const char *sv = db_str(s, F_VM_SUSPEND_VDI);
            const char *cfg = db_str(s, F_VM_LAST_BOOTED_RECORD);
            if (!db_get_class(ctx->db, XS_CLASS_VDI, sv) || !*cfg) {
                log_error("checkpoint %s has no memory image or configuration to resume",
                          db_str(s, F_VM_UUID));
                xs_err_vm_has_no_suspend_vdi(errp, j->snapshot);
                ok = false;
            } else {
                j->suspend_vdi = xstrdup(sv);
                j->config_json = xstrdup(cfg);
            }
        }
    }
    db_read_unlock(ctx->db);
    return ok;
}

/* Writes the checkpoint's QEMU configuration where resume looks for it. */
static bool write_resume_config(OpsCtx *ctx, RevJob *j, XsError **errp)
{
    struct json_object *jc = strlen(j->config_json) < MAX_CONFIG_JSON
                                 ? json_tokener_parse(j->config_json)
                                 : NULL;
    VmmConfig cfg;
    char *why = NULL;
    if (!jc || vmm_config_from_json(jc, &cfg, &why) < 0) {
        log_error("checkpoint of VM %s: its QEMU configuration cannot be read back: %s",
                  j->vm_uuid, why ? why : "not JSON");
        free(why);
        json_object_put(jc);
        xs_err_vm_revert_failed(errp, j->vm, j->snapshot);
        return false;
    }
    vmm_config_release(&cfg);
    _cleanup_free_ char *dir = xasprintf("%s/suspend", ctx->env->state_dir);
    mkdir(dir, 0700);
    _cleanup_free_ char *path = ops_vm_suspend_config_path(ctx->env, j->vm_uuid);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    bool ok = json_object_to_file_ext(tmp, jc, JSON_C_TO_STRING_PLAIN) == 0 &&
              rename(tmp, path) == 0;
    json_object_put(jc);
    if (!ok) {
        log_error("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        xs_error_internal(errp, "cannot write the resume configuration %s", path);
    }
    return ok;
}

/* Switches the VM's records to the snapshot's (one transaction). */
static bool rev_switch(OpsCtx *ctx, RevJob *j, XsError **errp)
{
    if (failed_at("revert-switch", errp))
        return false;
    DbTxn *txn = db_begin(ctx->db);
    DbObj *s = db_get_class(ctx->db, XS_CLASS_VM, j->snapshot);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, j->vm);
    if (!s || !vm) {
        db_abort(txn);
        xs_err_vm_revert_failed(errp, j->vm, j->snapshot);
        return false;
    }
    /* The VM's disks that the snapshot has a copy of go; the others stay, unattached. */
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VBDS); i++) {
        DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
        const char *vdi = db_str(vbd, F_VBD_VDI);
        if (db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD || !db_get_class(ctx->db, XS_CLASS_VDI, vdi))
            continue;
        for (size_t k = 0; k < j->n_disks; k++) {
            if (j->disks[k].clone && strcmp(j->disks[k].of, vdi) == 0) {
                j->doomed = xreallocarray(j->doomed, j->n_doomed + 1, sizeof(char *));
                j->doomed[j->n_doomed++] = xstrdup(vdi);
                break;
            }
        }
    }
    size_t n;
    while ((n = db_backref_count(vm, F_VM_VBDS)) > 0)
        db_delete(txn, db_backref(vm, F_VM_VBDS, n - 1));
    while ((n = db_backref_count(vm, F_VM_VIFS)) > 0)
        db_delete(txn, db_backref(vm, F_VM_VIFS, n - 1));
    bool ok = true;
    for (size_t k = 0; ok && k < j->n_disks; k++) {
        RevDisk *d = &j->disks[k];
        DbObj *o = db_get_class(ctx->db, XS_CLASS_VBD, d->vbd);
        if (o)
            ok = copy_vbd(txn, o, vm, d->clone ? d->new_vdi : d->vdi, false, errp);
        /* The snapshots of the disk the clone replaces are now snapshots of the clone. */
        if (ok && d->clone && *d->of) {
            size_t nv;
            DbObj *const *vdis = db_list(ctx->db, XS_CLASS_VDI, &nv);
            for (size_t i = 0; i < nv; i++)
                if (strcmp(db_str(vdis[i], F_VDI_SNAPSHOT_OF), d->of) == 0)
                    db_set_str(txn, vdis[i], F_VDI_SNAPSHOT_OF, d->new_vdi);
        }
    }
    for (size_t i = 0; ok && i < db_backref_count(s, F_VM_VIFS); i++)
        ok = copy_vif(txn, db_backref(s, F_VM_VIFS, i), vm, errp);
    if (!ok) {
        db_abort(txn);
        return false;
    }
    /* The VM's settings as they were, except what makes it this VM. */
    static const int keep[] = {
        F_VM_NAME_LABEL,       F_VM_IS_A_TEMPLATE, F_VM_TAGS,          F_VM_AFFINITY,
        F_VM_POWER_STATE,      F_VM_SUSPEND_VDI,   F_VM_APPLIANCE,     F_VM_START_DELAY,
        F_VM_SHUTDOWN_DELAY,   F_VM_ORDER,         F_VM_SUSPEND_SR,    F_VM_HA_ALWAYS_RUN,
        F_VM_HA_RESTART_PRIORITY, F_VM_IS_VMSS_SNAPSHOT, F_VM_BLOCKED_OPERATIONS,
    };
    for (size_t i = 1; i < xs_class_VM.nfields; i++) {
        bool skip = !copied_field(&xs_class_VM, i);
        for (size_t k = 0; !skip && k < ARRAY_SIZE(keep); k++)
            skip = (int)i == keep[k];
        if (!skip && !xv_equal(&vm->fields[i], &s->fields[i]))
            db_set(txn, vm, (int)i, xv_copy(&s->fields[i]));
    }
    bool suspended = j->new_suspend_vdi != NULL;
    db_set_enum(txn, vm, F_VM_POWER_STATE,
                suspended ? VM_POWER_STATE_SUSPENDED : VM_POWER_STATE_HALTED);
    db_set_str(txn, vm, F_VM_SUSPEND_VDI, suspended ? j->new_suspend_vdi : "OpaqueRef:NULL");
    db_set_str(txn, vm, F_VM_LAST_BOOTED_RECORD, "");
    db_set_str(txn, vm, F_VM_PARENT, s->ref);
    ops_vm_update_allowed(txn, vm);
    return db_commit(txn, errp);
}

/*
 * A snapshot whose VM was destroyed: as xapi does, the VM comes back under its
 * old reference and UUID (from the snapshot's metadata) with its name and the
 * snapshot's settings, halted and without devices, for the revert to fill.
 * *created is its reference, NULL when nothing was needed or possible (then
 * rev_gather says what is wrong).
 */
static bool rev_recreate_vm(OpsCtx *ctx, const char *snapshot, char **created, XsError **errp)
{
    *created = NULL;
    DbTxn *txn = db_begin(ctx->db);
    DbObj *s = db_get_class(ctx->db, XS_CLASS_VM, snapshot);
    const char *of = s ? db_str(s, F_VM_SNAPSHOT_OF) : "";
    if (!s || !db_bool(s, F_VM_IS_A_SNAPSHOT) || db_get_class(ctx->db, XS_CLASS_VM, of) ||
        strncmp(of, "OpaqueRef:", 10) != 0 || strcmp(of, "OpaqueRef:NULL") == 0) {
        db_abort(txn);
        return true;
    }
    struct json_object *meta = json_tokener_parse(db_str(s, F_VM_SNAPSHOT_METADATA));
    struct json_object *v;
    const char *uuid = meta && json_object_object_get_ex(meta, "uuid", &v)
                           ? json_object_get_string(v)
                           : of + 10;
    const char *name = meta && json_object_object_get_ex(meta, "name_label", &v)
                           ? json_object_get_string(v)
                           : db_str(s, F_VM_NAME_LABEL);
    DbObj *vm = db_create(txn, XS_CLASS_VM, of, uuid && uuid_is_valid(uuid) ? uuid : NULL, errp);
    if (!vm) {
        json_object_put(meta);
        db_abort(txn);
        return false;
    }
    copy_fields(txn, &xs_class_VM, vm, s);
    db_set_str(txn, vm, F_VM_NAME_LABEL, name ? name : "");
    json_object_put(meta);
    db_set_bool(txn, vm, F_VM_IS_A_SNAPSHOT, false);
    db_set_bool(txn, vm, F_VM_IS_A_TEMPLATE, false);
    db_set_bool(txn, vm, F_VM_IS_DEFAULT_TEMPLATE, false);
    db_set_enum(txn, vm, F_VM_POWER_STATE, VM_POWER_STATE_HALTED);
    db_set_int(txn, vm, F_VM_DOMID, -1);
    bool ok = ops_vm_new_metrics(txn, vm, errp);
    if (ok)
        ops_vm_update_allowed(txn, vm);
    char *ref = xstrdup(vm->ref);
    if (!ok || !db_commit(txn, errp)) {
        if (!ok)
            db_abort(txn);
        free(ref);
        return false;
    }
    log_info("snapshot %s: its VM %s was destroyed; recreated it to revert it", snapshot, ref);
    *created = ref;
    return true;
}

bool ops_vm_revert(OpsCtx *ctx, const char *snapshot, XsError **errp)
{
    RevJob j = {.snapshot = xstrdup(snapshot)};
    char *stok = NULL;
    Held held = {0};
    char *created = NULL;
    bool ok = rev_recreate_vm(ctx, snapshot, &created, errp) && rev_gather(ctx, &j, errp) &&
              ops_op_begin_ref(ctx, XS_CLASS_VM, snapshot, "revert", &stok, errp);
    if (!ok)
        goto undo_created;
    /* 1. The snapshot's disks (and memory) cloned for the VM: O(1), nothing changed yet. */
    for (size_t i = 0; ok && i < j.n_disks; i++) {
        RevDisk *d = &j.disks[i];
        if (!d->clone)
            continue;
        XsValue *params = xv_struct();
        ok = ops_vdi_clone(ctx, d->vdi, params, &d->new_vdi, errp);
        xv_free(params);
    }
    if (ok && j.suspend_vdi) {
        XsValue *params = xv_struct();
        ok = ops_vdi_clone(ctx, j.suspend_vdi, params, &j.new_suspend_vdi, errp);
        xv_free(params);
    }
    ops_progress(ctx, 0.2);
    if (!ok)
        goto undo;
    /* 2. A VM that runs (or is suspended) is stopped: its state is about to be replaced. */
    db_read_lock(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, j.vm);
    int ps = v ? db_enum(v, F_VM_POWER_STATE) : VM_POWER_STATE_HALTED;
    db_read_unlock(ctx->db);
    if (ps != VM_POWER_STATE_HALTED) {
        log_info("VM %s: stopping it to revert it to snapshot %s", j.vm_uuid, snapshot);
        if (!ops_vm_hard_shutdown(ctx, j.vm, errp))
            goto undo;
    }
    ops_progress(ctx, 0.4);
    /* 3. The records switched while the VM is held. */
    if (!hold_vm(ctx, j.vm, "reverting", PS(HALTED), false, &held, errp))
        goto undo;
    if (j.config_json && !write_resume_config(ctx, &j, errp))
        goto undo;
    if (!rev_switch(ctx, &j, errp)) {
        if (j.config_json) {
            _cleanup_free_ char *path = ops_vm_suspend_config_path(ctx->env, j.vm_uuid);
            unlink(path);
        }
        goto undo;
    }
    release_vm(ctx, &held);
    ops_op_end(ctx, XS_CLASS_VM, snapshot, stok);
    free(stok);
    stok = NULL;
    log_info("VM %s reverted to snapshot %s", j.vm_uuid, snapshot);
    ops_progress(ctx, 0.6);
    /* 4. The disks the VM no longer uses go (their chains merge, with progress). */
    for (size_t i = 0; i < j.n_doomed; i++) {
        db_read_lock(ctx->db);
        DbObj *vdi = db_get_class(ctx->db, XS_CLASS_VDI, j.doomed[i]);
        bool used = vdi && db_backref_count(vdi, F_VDI_VBDS) > 0;
        db_read_unlock(ctx->db);
        if (vdi && !used)
            destroy_vdi_quietly(ctx, j.doomed[i], "replaced by a revert");
    }
    ops_progress(ctx, 0.8);
    /* 5. A checkpoint runs on where it was. */
    if (j.new_suspend_vdi) {
        XsError *e = NULL;
        if (!ops_vm_resume(ctx, j.vm, false, false, &e)) {
            _cleanup_free_ char *s = xs_error_to_string(e);
            log_error("VM %s: resuming the checkpoint failed: %s", j.vm_uuid, s);
            xs_error_free(e);
            xs_err_vm_checkpoint_resume_failed(errp, j.vm);
            ok = false;
        }
    }
    ops_progress(ctx, 1.0);
    goto out;
undo:
    ok = false;
    release_vm(ctx, &held);
    rev_destroy_clones(ctx, &j);
undo_created:
    if (created) { /* the recreated VM goes again: nothing half-made stays */
        XsError *e = NULL;
        if (!ops_vm_destroy(ctx, created, &e)) {
            _cleanup_free_ char *m = xs_error_to_string(e);
            log_error("VM %s, recreated for a revert that failed: cannot remove it: %s",
                      created, m);
        }
        xs_error_free(e);
    }
out:
    if (stok)
        ops_op_end(ctx, XS_CLASS_VM, snapshot, stok);
    free(stok);
    free(created);
    rev_release(&j);
    return ok;
}
