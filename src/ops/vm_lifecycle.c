/*
 * The VM power-state machine on QEMU: VM.start, the shutdowns and reboots,
 * suspend and resume, pause and unpause, power_state_reset and live vCPUs;
 * QEMU's events turned into power states (actions-after-shutdown, -reboot
 * and -crash); the core dumps; and, at daemon start, the reconciliation of
 * every VM record with the QEMU processes that outlived the last daemon.
 *
 *   Halted --start--> Running (Paused with start_paused)
 *   Running --pause--> Paused --unpause--> Running
 *   Running --suspend--> Suspended --resume--> Running (or Paused)
 *   Running/Paused --hard_shutdown--> Halted; Suspended --hard_shutdown--> Halted
 *   Running --clean_shutdown--> Halted (ACPI power button, or the guest agent)
 *
 * A call checks the state and marks the operation in the database (short
 * transaction), does the work with no lock held, then records the outcome
 * (short transaction). QEMU runs with -no-shutdown: a guest that powers off
 * leaves QEMU stopped in state "shutdown", so the outcome is known even if
 * the daemon was down when it happened; a guest reboot is done in place by
 * QEMU, and replaced by a fresh QEMU when the next boot must differ (an
 * installer's first boot, on-boot=reset disks). Never does anything here
 * wait without a deadline on a guest.
 */
#include <errno.h>
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
#include "ops/vm.h"
#include "ops/vm_lifecycle.h"
#include "ops/vmboot.h"
#include "ops/vmdisk.h"
#include "ops/vmnet.h"
#include "ops/vmrt.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define DESTROY_TIMEOUT_MS 10000
#define SHUTDOWN_TIMEOUT_S 300
#define QUICK_CRASH_S 30
#define MAX_QUICK_CRASHES 3
#define AGENT_TIMEOUT_MS 1500

#define PS(s) (1u << VM_POWER_STATE_##s)

/* ---- small helpers ---------------------------------------------------------------- */

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void msg_add(DbTxn *txn, const char *name, int64_t priority, const char *uuid,
                    const char *body)
{
    DbObj *m = db_create(txn, XS_CLASS_MESSAGE, NULL, NULL, NULL);
    if (!m)
        return;
    db_set_str(txn, m, F_MESSAGE_NAME, name);
    db_set_int(txn, m, F_MESSAGE_PRIORITY, priority);
    db_set_enum(txn, m, F_MESSAGE_CLS, CLS_VM);
    db_set_str(txn, m, F_MESSAGE_OBJ_UUID, uuid);
    db_set_str(txn, m, F_MESSAGE_BODY, body);
    db_set_datetime(txn, m, F_MESSAGE_TIMESTAMP, (int64_t)time(NULL));
}

/* A message in its own transaction. */
static void message_now(HxEnv *env, const char *name, int64_t prio, const char *uuid,
                        const char *body)
{
    DbTxn *txn = db_begin(env->db);
    msg_add(txn, name, prio, uuid, body);
    db_commit(txn, NULL);
}

static unsigned other_config_seconds(Db *db, const char *vm_ref, const char *key, unsigned dflt)
{
    db_read_lock(db);
    DbObj *vm = db_get_class(db, XS_CLASS_VM, vm_ref);
    const char *v = vm ? xv_struct_get_string(&vm->fields[F_VM_OTHER_CONFIG], key) : NULL;
    long s = v ? strtol(v, NULL, 10) : -1;
    db_read_unlock(db);
    return s > 0 && s <= 86400 ? (unsigned)s : dflt;
}

static int power_state_of(Db *db, const char *vm_ref)
{
    db_read_lock(db);
    DbObj *vm = db_get_class(db, XS_CLASS_VM, vm_ref);
    int ps = vm ? db_enum(vm, F_VM_POWER_STATE) : -1;
    db_read_unlock(db);
    return ps;
}

static const char *errno_name(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ESRCH: return "ESRCH";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENODEV: return "ENODEV";
    case ENOTSUP: return "ENOTSUP";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    default: return "EFAULT";
    }
}

/* A vmm failure as a XenAPI error. */
static void vmm_failure(XsError **errp, const char *what, int r, const char *msg)
{
    xs_err_domain_builder_error(errp, what, errno_name(-r), msg && *msg ? msg : strerror(-r));
}

static void sleep_cancellable(OpsCtx *ctx, int64_t seconds)
{
    for (int64_t i = 0; i < seconds * 10 && !ops_cancelled(ctx); i++)
        usleep(100000);
}

/* ---- the start of an operation ------------------------------------------------- */

/*
 * Claims the VM for an API operation: the runtime (no other thread changes
 * it) and the database (current_operations), after the checks of
 * ops_vm_check_operable (not a template, snapshot or the control domain; not
 * blocked; state in mask). *token receives the database token for op_end.
 */
static VmRt *begin_op(OpsCtx *ctx, const char *vm_ref, const char *op, unsigned mask,
                      char **token, XsError **errp)
{
    *token = NULL;
    VmRt *rt = vmrt_get(ctx->env, vm_ref);
    if (!rt) {
        xs_err_handle_invalid(errp, "VM", vm_ref);
        return NULL;
    }
    if (!vmrt_claim(rt, op, errp))
        return NULL;
    if (!(mask & (PS(HALTED) | PS(SUSPENDED))) && !rt->vmm) {
        /* The record says it runs but no QEMU is known: refuse rather than guess. */
        int ps = power_state_of(ctx->db, vm_ref);
        if (ps == VM_POWER_STATE_RUNNING || ps == VM_POWER_STATE_PAUSED) {
            vmrt_release(rt);
            xs_err_vm_bad_power_state(errp, vm_ref, "running", "halted");
            return NULL;
        }
    }
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
    if (!vm ||
        !ops_vm_check_operable(vm, op, mask,
                               "The control domain stands for the host itself; "
                               "use host operations instead.",
                               errp) ||
        !ops_op_begin(ctx, txn, vm, op, token, errp)) {
        if (!vm)
            xs_err_handle_invalid(errp, "VM", vm_ref);
        db_abort(txn);
        vmrt_release(rt);
        return NULL;
    }
    if (!db_commit(txn, errp)) {
        free(*token);
        *token = NULL;
        vmrt_release(rt);
        return NULL;
    }
    pthread_mutex_lock(&rt->mu);
    snprintf(rt->owner_token, sizeof(rt->owner_token), "%s", *token ? *token : "");
    pthread_mutex_unlock(&rt->mu);
    return rt;
}

static void end_op(OpsCtx *ctx, VmRt *rt, char *token)
{
    ops_op_end(ctx, XS_CLASS_VM, rt->ref, token);
    free(token);
    vmrt_release(rt);
}

/* ---- recording the outcome ------------------------------------------------------- */

static const char *device_name(VmmBus bus, unsigned pos, char buf[8])
{
    const char *pre = bus == VMM_BUS_IDE ? "hd" : bus == VMM_BUS_SCSI ? "sd" : "xvd";
    snprintf(buf, 8, "%s%c", pre, (char)('a' + (pos % 26)));
    return buf;
}

static void delete_consoles(DbTxn *txn, DbObj *vm)
{
    size_t n;
    while ((n = db_backref_count(vm, F_VM_CONSOLES)) > 0)
        db_delete(txn, db_backref(vm, F_VM_CONSOLES, n - 1));
}

static void make_consoles(DbTxn *txn, HxEnv *env, DbObj *vm)
{
    Db *db = db_txn_db(txn);
    delete_consoles(txn, vm);
    DbObj *host = db_get_class(db, XS_CLASS_HOST, env->host_ref);
    const char *addr = host ? db_str(host, F_HOST_ADDRESS) : "";
    static const int protos[] = {CONSOLE_PROTOCOL_RFB, CONSOLE_PROTOCOL_VT100};
    for (size_t i = 0; i < ARRAY_SIZE(protos); i++) {
        DbObj *c = db_create(txn, XS_CLASS_CONSOLE, NULL, NULL, NULL);
        if (!c)
            continue;
        db_set_enum(txn, c, F_CONSOLE_PROTOCOL, protos[i]);
        db_set_str(txn, c, F_CONSOLE_VM, vm->ref);
        char *loc = xasprintf("https://%s/console?ref=%s", *addr ? addr : "localhost", c->ref);
        db_set_str(txn, c, F_CONSOLE_LOCATION, loc);
        free(loc);
    }
}

static DbObj *metrics_of(Db *db, DbObj *vm)
{
    return db_get_class(db, XS_CLASS_VM_METRICS, db_str(vm, F_VM_METRICS));
}

static void record_running(DbTxn *txn, HxEnv *env, DbObj *vm, int64_t domid, const VmmConfig *cfg,
                           bool paused, bool hvm, bool fresh_start)
{
    Db *db = db_txn_db(txn);
    db_set_enum(txn, vm, F_VM_POWER_STATE, paused ? VM_POWER_STATE_PAUSED : VM_POWER_STATE_RUNNING);
    db_set_int(txn, vm, F_VM_DOMID, domid);
    db_set_str(txn, vm, F_VM_RESIDENT_ON, env->host_ref);
    db_set_str(txn, vm, F_VM_SCHEDULED_TO_BE_RESIDENT_ON, "OpaqueRef:NULL");
    db_set_str(txn, vm, F_VM_DOMARCH, "x64");
    if (vm->fields[F_VM_BIOS_STRINGS].n == 0)
        db_set(txn, vm, F_VM_BIOS_STRINGS, vmboot_generic_bios_strings());
    DbObj *m = metrics_of(db, vm);
    if (m) {
        int64_t now = (int64_t)time(NULL);
        if (fresh_start)
            db_set_datetime(txn, m, F_VM_METRICS_START_TIME, now);
        db_set_datetime(txn, m, F_VM_METRICS_LAST_UPDATED, now);
        db_set_int(txn, m, F_VM_METRICS_VCPUS_NUMBER, cfg->vcpus);
        uint64_t mem = cfg->memory_target_mib ? cfg->memory_target_mib : cfg->memory_mib;
        db_set_int(txn, m, F_VM_METRICS_MEMORY_ACTUAL, (int64_t)(mem * MiB));
        db_set_bool(txn, m, F_VM_METRICS_HVM, hvm);
        db_set_enum(txn, m, F_VM_METRICS_CURRENT_DOMAIN_TYPE, hvm ? DOMAIN_TYPE_HVM : DOMAIN_TYPE_PV);
    }
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VBDS); i++) {
        DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
        const char *ud = db_str(vbd, F_VBD_USERDEVICE);
        for (size_t j = 0; j < cfg->n_disks; j++) {
            char pos[16];
            snprintf(pos, sizeof(pos), "%u", cfg->disks[j].position);
            if (strcmp(pos, ud) != 0)
                continue;
            char dev[8];
            db_set_bool(txn, vbd, F_VBD_CURRENTLY_ATTACHED, true);
            db_set_str(txn, vbd, F_VBD_DEVICE,
                       device_name(cfg->disks[j].bus, cfg->disks[j].position, dev));
            ops_update_allowed(txn, vbd);
        }
    }
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VIFS); i++) {
        DbObj *vif = db_backref(vm, F_VM_VIFS, i);
        db_set_bool(txn, vif, F_VIF_CURRENTLY_ATTACHED, true);
        const char *note =
            xv_struct_get_string(&vif->fields[F_VIF_OTHER_CONFIG], "hyperxe-networking");
        if (env->user_networking) {
            const char *why = vmnet_user_reason(env);
            if (!note || strcmp(note, why) != 0)
                db_map_set(txn, vif, F_VIF_OTHER_CONFIG, "hyperxe-networking", why);
        } else if (note) {
            db_map_remove(txn, vif, F_VIF_OTHER_CONFIG, "hyperxe-networking");
        }
        ops_update_allowed(txn, vif);
    }
    make_consoles(txn, env, vm);
    ops_vm_update_allowed(txn, vm);
}

static void record_stopped(DbTxn *txn, DbObj *vm, int state, const char *suspend_vdi)
{
    Db *db = db_txn_db(txn);
    db_set_enum(txn, vm, F_VM_POWER_STATE, state);
    db_set_int(txn, vm, F_VM_DOMID, -1);
    db_set_str(txn, vm, F_VM_RESIDENT_ON, "OpaqueRef:NULL");
    db_set_str(txn, vm, F_VM_SUSPEND_VDI, suspend_vdi ? suspend_vdi : "OpaqueRef:NULL");
    DbObj *m = metrics_of(db, vm);
    if (m) {
        db_set_int(txn, m, F_VM_METRICS_MEMORY_ACTUAL, 0);
        db_set_int(txn, m, F_VM_METRICS_VCPUS_NUMBER, 0);
        db_set_datetime(txn, m, F_VM_METRICS_LAST_UPDATED, (int64_t)time(NULL));
    }
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VBDS); i++) {
        DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
        if (db_bool(vbd, F_VBD_CURRENTLY_ATTACHED)) {
            db_set_bool(txn, vbd, F_VBD_CURRENTLY_ATTACHED, false);
            ops_update_allowed(txn, vbd);
        }
    }
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VIFS); i++) {
        DbObj *vif = db_backref(vm, F_VM_VIFS, i);
        if (db_bool(vif, F_VIF_CURRENTLY_ATTACHED)) {
            db_set_bool(txn, vif, F_VIF_CURRENTLY_ATTACHED, false);
            ops_update_allowed(txn, vif);
        }
    }
    delete_consoles(txn, vm);
    ops_vm_update_allowed(txn, vm);
}

/* ---- stopping QEMU ----------------------------------------------------------------- */

/* Stops the current QEMU (if any) and lets go of its handle. The owner calls it. */
static void kill_qemu(VmRt *rt)
{
    guest_agent_stop(rt, true);
    pthread_mutex_lock(&rt->mu);
    Vmm *h = rt->vmm;
    rt->expect_exit = true;
    pthread_mutex_unlock(&rt->mu);
    if (h) {
        char *err = NULL;
        if (vmm_destroy(h, DESTROY_TIMEOUT_MS, &err) < 0)
            log_warn("VM %s: %s", rt->uuid, err ? err : "cannot stop QEMU");
        free(err);
        vmm_wait_exit(h, 5000, NULL, NULL);
    }
    pthread_mutex_lock(&rt->mu);
    rt->vmm = NULL;
    pthread_mutex_unlock(&rt->mu);
    if (h)
        vmm_close(h);
}

typedef struct Devices {
    int64_t domid;
    char **vdis;
    size_t n_vdis;
    unsigned *vifs;
    size_t n_vifs;
} Devices;

static void devices_of(Db *db, const char *vm_ref, Devices *d)
{
    memset(d, 0, sizeof(*d));
    d->domid = -1;
    db_read_lock(db);
    DbObj *vm = db_get_class(db, XS_CLASS_VM, vm_ref);
    if (vm) {
        d->domid = db_int(vm, F_VM_DOMID);
        size_t nb = db_backref_count(vm, F_VM_VBDS);
        d->vdis = xcalloc(nb + 1, sizeof(char *));
        for (size_t i = 0; i < nb; i++) {
            DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
            if (db_get_class(db, XS_CLASS_VDI, db_str(vbd, F_VBD_VDI)))
                d->vdis[d->n_vdis++] = xstrdup(db_str(vbd, F_VBD_VDI));
        }
        size_t nv = db_backref_count(vm, F_VM_VIFS);
        d->vifs = xcalloc(nv + 1, sizeof(unsigned));
        for (size_t i = 0; i < nv; i++) {
            const char *dev = db_str(db_backref(vm, F_VM_VIFS, i), F_VIF_DEVICE);
            char *end;
            long v = strtol(dev, &end, 10);
            if (*dev && !*end && v >= 0 && v < VMM_MAX_NICS)
                d->vifs[d->n_vifs++] = (unsigned)v;
        }
    }
    db_read_unlock(db);
}

static void devices_release(OpsCtx *ctx, VmRt *rt, Devices *d)
{
    if (!ctx->env->user_networking && d->domid >= 0) {
        for (size_t i = 0; i < d->n_vifs; i++) {
            char tap[16];
            vmboot_tap_name(d->domid, d->vifs[i], tap);
            vmnet_tap_unplug(tap);
        }
    }
    for (size_t i = 0; i < d->n_vdis; i++) {
        vmdisk_detach(ctx, rt->ref, d->vdis[i]);
        free(d->vdis[i]);
    }
    free(d->vdis);
    free(d->vifs);
    _cleanup_free_ char *boot = xasprintf("%s/boot-%s", ctx->env->run_dir, rt->uuid);
    _cleanup_free_ char *k = xasprintf("%s/installer-kernel", boot);
    _cleanup_free_ char *i = xasprintf("%s/installer-initrd", boot);
    unlink(k);
    unlink(i);
    rmdir(boot);
}

/*
 * Stops QEMU and records the new state (Halted, or Suspended with its
 * image): devices let go after the VBDs stop being attached.
 */
static bool teardown(OpsCtx *ctx, VmRt *rt, int state, const char *suspend_vdi, const char *msg,
                     XsError **errp)
{
    Devices d;
    devices_of(ctx->db, rt->ref, &d);
    kill_qemu(rt);
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, rt->ref);
    if (vm) {
        record_stopped(txn, vm, state, suspend_vdi);
        if (msg)
            msg_add(txn, msg, 5, rt->uuid, "");
    }
    bool ok = db_commit(txn, errp);
    devices_release(ctx, rt, &d);
    vmrt_reset_facts(rt);
    return ok;
}

/* ---- starting QEMU ------------------------------------------------------------------ */

static int64_t host_memory_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    int64_t kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %" SCNd64, &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static bool any_reset_vdi(Db *db, const VmSpec *spec)
{
    bool any = false;
    db_read_lock(db);
    for (size_t i = 0; i < spec->n_disks; i++) {
        DbObj *vdi = spec->disks[i].vdi_ref
                         ? db_get_class(db, XS_CLASS_VDI, spec->disks[i].vdi_ref)
                         : NULL;
        any |= vdi && db_enum(vdi, F_VDI_ON_BOOT) == ON_BOOT_RESET;
    }
    db_read_unlock(db);
    return any;
}

static char *suspend_config_path(HxEnv *env, const char *uuid)
{
    return xasprintf("%s/suspend/%s.json", env->state_dir, uuid);
}

/*
 * Re-plugs what a suspended VM had (taps under a new domid, disks) into the
 * configuration saved at suspend time.
 */
static bool prepare_resume(OpsCtx *ctx, const VmSpec *spec, int64_t domid, VmmConfig *cfg,
                           VmBootState *st, XsError **errp)
{
    memset(st, 0, sizeof(*st));
    _cleanup_free_ char *path = suspend_config_path(ctx->env, spec->uuid);
    struct json_object *j = json_object_from_file(path);
    if (!j) {
        /* A VM suspended elsewhere (an XVA import) brings its configuration
         * in last_booted_record, as its suspend wrote it. */
        db_read_lock(ctx->db);
        DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, spec->ref);
        const char *rec = v ? db_str(v, F_VM_LAST_BOOTED_RECORD) : "";
        j = rec[0] == '{' ? json_tokener_parse(rec) : NULL;
        db_read_unlock(ctx->db);
    }
    char *why = NULL;
    vmm_config_release(cfg); /* from_json overwrites it */
    if (!j || vmm_config_from_json(j, cfg, &why) < 0) {
        json_object_put(j);
        log_error("VM %s: cannot read its suspended configuration %s: %s", spec->uuid, path,
                  why ? why : "missing");
        free(why);
        xs_err_vm_has_no_suspend_vdi(errp, spec->ref);
        return false;
    }
    json_object_put(j);
    /* The record's identity wins over the saved one's (a copy has its own). */
    snprintf(cfg->uuid, sizeof(cfg->uuid), "%s", spec->uuid);
    free(cfg->name);
    cfg->name = xstrdup(spec->name);
    for (size_t i = 0; i < spec->n_disks; i++) {
        const VmBootDisk *d = &spec->disks[i];
        if (!d->vdi_ref)
            continue;
        VmDiskFile f;
        if (!vmdisk_attach(ctx, spec->ref, d->vdi_ref, d->rw, &f, errp))
            goto fail;
        st->vdis = xreallocarray(st->vdis, st->n_vdis + 1, sizeof(char *));
        st->vdis[st->n_vdis++] = xstrdup(d->vdi_ref);
        for (size_t k = 0; k < cfg->n_disks; k++) {
            if (cfg->disks[k].position == d->position && cfg->disks[k].path) {
                free(cfg->disks[k].path);
                cfg->disks[k].path = xstrdup(f.path);
            }
        }
        vmdisk_file_release(&f);
    }
    for (size_t k = 0; k < cfg->n_nics; k++) {
        VmmNic *n = &cfg->nics[k];
        const VmBootNic *bn = NULL;
        for (size_t i = 0; i < spec->n_nics; i++)
            if (spec->nics[i].device == n->position)
                bn = &spec->nics[i];
        if (bn && bn->mac[0])
            snprintf(n->mac, sizeof(n->mac), "%s", bn->mac);
        if (!bn || n->backend != VMM_NET_TAP || ctx->env->user_networking)
            continue;
        if (!vmnet_network_up(ctx, bn->network_ref, errp))
            goto fail;
        char tap[16];
        vmboot_tap_name(domid, n->position, tap);
        if (!vmnet_tap_plug(ctx, tap, bn->bridge, bn->mtu, errp))
            goto fail;
        st->taps = xreallocarray(st->taps, st->n_taps + 1, sizeof(char *));
        st->taps[st->n_taps++] = xstrdup(tap);
        free(n->ifname);
        n->ifname = xstrdup(tap);
    }
    return true;
fail:
    vmboot_undo(ctx, spec->ref, st);
    return false;
}

/*
 * Boots the VM: a fresh start, or a resume from image (a raw migration
 * stream). The caller owns rt; the VM is recorded Running (or Paused).
 */
static bool boot(OpsCtx *ctx, VmRt *rt, bool paused, bool force, const char *image,
                 const char *msg, XsError **errp)
{
    HxEnv *env = ctx->env;
    VmSpec spec;
    if (!vmboot_gather(ctx, rt->ref, force, &spec, errp))
        return false;
    int64_t avail = host_memory_available();
    if (vmm_get_backend() == VMM_BACKEND_QEMU && avail >= 0 && spec.static_max > avail) {
        char need[32], have[32];
        snprintf(need, sizeof(need), "%" PRId64, spec.static_max);
        snprintf(have, sizeof(have), "%" PRId64, avail);
        xs_err_host_not_enough_free_memory(errp, need, have);
        vmboot_spec_release(&spec);
        return false;
    }
    int64_t domid = vmrt_next_domid(env);
    VmmConfig cfg;
    vmm_config_init(&cfg);
    VmBootState st;
    bool ok = image ? prepare_resume(ctx, &spec, domid, &cfg, &st, errp)
                    : vmboot_prepare(ctx, &spec, domid, &cfg, &st, errp);
    if (!ok) {
        vmm_config_release(&cfg);
        vmboot_spec_release(&spec);
        return false;
    }
    if (image) {
        cfg.incoming = VMM_INCOMING_FILE;
        free(cfg.incoming_path);
        cfg.incoming_path = xstrdup(image);
    } else {
        cfg.incoming = VMM_INCOMING_NONE;
    }
    cfg.start_paused = paused;
    bool fresh = st.install_boot || any_reset_vdi(ctx->db, &spec);

    vmrt_reset_facts(rt);
    pthread_mutex_lock(&rt->mu);
    rt->starting = true;
    rt->install_boot = st.install_boot;
    rt->fresh_reboot = fresh;
    rt->rtc_base = spec.timeoffset;
    rt->started_at = mono_s();
    rt->last_balloon = 0;
    pthread_mutex_unlock(&rt->mu);

    Vmm *h = NULL;
    char *err = NULL;
    int r = vmm_start(env->run_dir, &cfg, ops_vm_on_event, rt, &h, &err);
    pthread_mutex_lock(&rt->mu);
    rt->starting = false;
    rt->vmm = r == 0 ? h : NULL;
    pthread_mutex_unlock(&rt->mu);
    if (r < 0) {
        log_error("VM %s: %s", spec.uuid, err ? err : "QEMU did not start");
        if (r == -ENOENT && image)
            xs_err_vm_has_no_suspend_vdi(errp, rt->ref);
        else
            vmm_failure(errp, image ? "resume" : "qemu", r, err);
        free(err);
        vmboot_undo(ctx, rt->ref, &st);
        vmm_config_release(&cfg);
        vmboot_spec_release(&spec);
        return false;
    }

    DbTxn *txn = db_begin(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, rt->ref);
    if (vm) {
        record_running(txn, env, vm, domid, &cfg, paused, spec.hvm, true);
        if (st.install_boot)
            db_set_str(txn, vm, F_VM_PV_BOOTLOADER, "pygrub"); /* eliloader is one-shot */
        if (msg)
            msg_add(txn, msg, 5, rt->uuid, "");
    }
    ok = vm && db_commit(txn, errp);
    if (!vm) {
        db_abort(txn);
        xs_err_handle_invalid(errp, "VM", rt->ref);
    }
    if (!ok) {
        kill_qemu(rt);
        vmboot_undo(ctx, rt->ref, &st);
    } else {
        vmrt_note_domid(env, domid);
        vmboot_state_release(&st);
        guest_agent_start(rt);
        log_info("VM %s (%s) %s as domain %" PRId64 "%s", spec.uuid, spec.name,
                 image ? "resumed" : "started", domid, paused ? ", paused" : "");
    }
    vmm_config_release(&cfg);
    vmboot_spec_release(&spec);
    return ok;
}

/* A new QEMU for the same VM (hard reboot, restarts after crashes and the like). */
static bool restart(OpsCtx *ctx, VmRt *rt, const char *msg, XsError **errp)
{
    if (!teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, NULL, errp))
        return false;
    return boot(ctx, rt, false, true, NULL, msg, errp);
}

/* ---- the guest's events -------------------------------------------------------------- */

static void record_rtc(VmRt *rt, int64_t offset)
{
    HxEnv *env = rt->env;
    pthread_mutex_lock(&rt->mu);
    int64_t value = rt->rtc_base + offset;
    pthread_mutex_unlock(&rt->mu);
    char v[32];
    snprintf(v, sizeof(v), "%" PRId64, value);
    DbTxn *txn = db_begin(env->db);
    DbObj *vm = db_get_class(env->db, XS_CLASS_VM, rt->ref);
    if (vm) {
        const char *cur = xv_struct_get_string(&vm->fields[F_VM_PLATFORM], "timeoffset");
        if (!cur || strcmp(cur, v) != 0)
            db_map_set(txn, vm, F_VM_PLATFORM, "timeoffset", v);
    }
    db_commit(txn, NULL);
    log_info("VM %s: the guest moved its clock; platform:timeoffset is now %s", rt->uuid, v);
}

static void record_balloon(VmRt *rt, int64_t bytes)
{
    HxEnv *env = rt->env;
    pthread_mutex_lock(&rt->mu);
    bool change = llabs(rt->last_balloon - bytes) >= (int64_t)MiB;
    if (change)
        rt->last_balloon = bytes;
    pthread_mutex_unlock(&rt->mu);
    if (!change)
        return;
    DbTxn *txn = db_begin(env->db);
    DbObj *vm = db_get_class(env->db, XS_CLASS_VM, rt->ref);
    DbObj *m = vm ? metrics_of(env->db, vm) : NULL;
    if (m)
        db_set_int(txn, m, F_VM_METRICS_MEMORY_ACTUAL, bytes);
    db_commit(txn, NULL);
}

void ops_vm_on_event(Vmm *vm, const VmmEvent *ev, void *opaque)
{
    VmRt *rt = opaque;
    pthread_mutex_lock(&rt->mu);
    if (!rt->vmm && rt->starting)
        rt->vmm = vm;
    if (rt->vmm != vm) {
        pthread_mutex_unlock(&rt->mu);
        return;
    }
    bool fact = false;
    char stuck[512] = "";
    switch (ev->type) {
    case VMM_EVENT_SHUTDOWN:
        if (ev->guest) {
            rt->guest_off = true;
            fact = true;
        }
        break;
    case VMM_EVENT_RESET:
        if (ev->guest) {
            rt->guest_reset = true;
            fact = true;
        }
        break;
    case VMM_EVENT_GUEST_PANICKED:
        rt->crashed = true;
        snprintf(rt->crash_reason, sizeof(rt->crash_reason), "the guest kernel panicked");
        fact = true;
        break;
    case VMM_EVENT_STUCK:
        if (ev->status && strcmp(ev->status, "internal-error") == 0) {
            rt->crashed = true;
            snprintf(rt->crash_reason, sizeof(rt->crash_reason), "%s",
                     ev->reason ? ev->reason : "QEMU stopped the guest with an internal error");
            fact = true;
        } else {
            snprintf(stuck, sizeof(stuck), "%s", ev->reason ? ev->reason : "the VM is stuck");
        }
        break;
    case VMM_EVENT_EXITED:
        rt->exited = true;
        snprintf(rt->exit_reason, sizeof(rt->exit_reason), "%s",
                 ev->reason ? ev->reason : "QEMU exited");
        fact = !rt->expect_exit;
        break;
    case VMM_EVENT_BOOTED:
        rt->booted = true;
        break;
    default:
        break;
    }
    bool spawn = false;
    if (fact) {
        if (rt->owner == VMRT_FREE && !vmrt_stopping(rt->env)) {
            rt->owner = VMRT_AUTO;
            snprintf(rt->owner_op, sizeof(rt->owner_op), "hard_reboot");
            spawn = true;
        } else {
            rt->pending = true;
        }
    }
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->mu);

    if (ev->type == VMM_EVENT_RTC_CHANGE)
        record_rtc(rt, ev->offset);
    else if (ev->type == VMM_EVENT_BALLOON_CHANGE && ev->offset > 0)
        record_balloon(rt, ev->offset);
    if ((ev->type == VMM_EVENT_RESET && ev->guest) || ev->type == VMM_EVENT_BOOTED)
        guest_agent_kick(rt); /* a new boot: the agent starts again, the OS may differ */
    if (stuck[0]) {
        log_warn("VM %s: %s", rt->uuid, stuck);
        message_now(rt->env, "VM_STUCK", 3, rt->uuid, stuck);
    }
    if (spawn)
        vmrt_spawn(rt->env, ops_vm_auto_worker, rt);
}

/* ---- actions-after-* ----------------------------------------------------------------- */

typedef enum {
    FACT_NONE,
    FACT_DIED,    /* the process is gone */
    FACT_CRASHED, /* panic or internal error */
    FACT_OFF,     /* the guest powered off */
    FACT_RESET,   /* the guest rebooted */
} Fact;

/* Takes the most serious pending fact (under the owner). */
static Fact take_fact(VmRt *rt, char *reason, size_t len)
{
    Fact f = FACT_NONE;
    pthread_mutex_lock(&rt->mu);
    if (rt->exited && !rt->expect_exit) {
        f = FACT_DIED;
        snprintf(reason, len, "%s", rt->exit_reason);
        rt->exited = false;
    } else if (rt->crashed) {
        f = FACT_CRASHED;
        snprintf(reason, len, "%s", rt->crash_reason);
        rt->crashed = false;
    } else if (rt->guest_off) {
        f = FACT_OFF;
        rt->guest_off = false;
    } else if (rt->guest_reset) {
        f = FACT_RESET;
        rt->guest_reset = false;
    }
    rt->pending = false;
    pthread_mutex_unlock(&rt->mu);
    return f;
}

static void dump_dir(HxEnv *env, char *buf, size_t len)
{
    snprintf(buf, len, "%s/crashdumps", env->state_dir);
    mkdir(buf, 0700);
}

/* Writes the guest's memory into the crash dump directory; returns the file name. */
static char *crash_dump(OpsCtx *ctx, VmRt *rt)
{
    char dir[512];
    dump_dir(ctx->env, dir, sizeof(dir));
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    char *path = xasprintf("%s/%s-%s.core", dir, rt->uuid, stamp);
    char *err = NULL;
    int r = rt->vmm ? vmm_dump_core(rt->vmm, path, NULL, NULL, &err) : -ESRCH;
    if (r < 0) {
        log_error("VM %s: the core dump failed: %s", rt->uuid, err ? err : strerror(-r));
        free(err);
        free(path);
        return NULL;
    }
    return path;
}

static void act_on_fact(OpsCtx *ctx, VmRt *rt, Fact f, const char *reason)
{
    HxEnv *env = ctx->env;
    int after_shutdown = ON_NORMAL_EXIT_DESTROY, after_reboot = ON_NORMAL_EXIT_RESTART;
    int after_crash = ON_CRASH_BEHAVIOUR_RESTART;
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, rt->ref);
    int ps = vm ? db_enum(vm, F_VM_POWER_STATE) : -1;
    if (vm) {
        after_shutdown = db_enum(vm, F_VM_ACTIONS_AFTER_SHUTDOWN);
        after_reboot = db_enum(vm, F_VM_ACTIONS_AFTER_REBOOT);
        after_crash = db_enum(vm, F_VM_ACTIONS_AFTER_CRASH);
    }
    db_read_unlock(ctx->db);
    if (!vm || (ps != VM_POWER_STATE_RUNNING && ps != VM_POWER_STATE_PAUSED)) {
        /* The VM record went away or is no longer running: just let QEMU go. */
        kill_qemu(rt);
        return;
    }
    XsError *err = NULL;
    switch (f) {
    case FACT_OFF:
        log_info("VM %s: the guest powered off (actions-after-shutdown %s)", rt->uuid,
                 xs_enum_on_normal_exit.values[after_shutdown]);
        if (after_shutdown == ON_NORMAL_EXIT_RESTART)
            restart(ctx, rt, "VM_REBOOTED", &err);
        else
            teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, "VM_SHUTDOWN", &err);
        break;
    case FACT_RESET:
        log_info("VM %s: the guest rebooted (actions-after-reboot %s)", rt->uuid,
                 xs_enum_on_normal_exit.values[after_reboot]);
        if (after_reboot == ON_NORMAL_EXIT_DESTROY) {
            teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, "VM_SHUTDOWN", &err);
        } else if (rt->fresh_reboot) {
            restart(ctx, rt, "VM_REBOOTED", &err);
        } else {
            DbTxn *txn = db_begin(ctx->db);
            DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, rt->ref);
            DbObj *m = v ? metrics_of(ctx->db, v) : NULL;
            if (m)
                db_set_datetime(txn, m, F_VM_METRICS_START_TIME, (int64_t)time(NULL));
            if (v)
                msg_add(txn, "VM_REBOOTED", 5, rt->uuid, "");
            db_commit(txn, NULL);
        }
        break;
    case FACT_DIED:
    case FACT_CRASHED: {
        bool died = f == FACT_DIED;
        log_warn("VM %s crashed: %s (actions-after-crash %s)", rt->uuid, reason,
                 xs_enum_on_crash_behaviour.values[after_crash]);
        int64_t up = mono_s() - rt->started_at;
        rt->quick_crashes = up < QUICK_CRASH_S ? rt->quick_crashes + 1 : 0;
        StrBuf body = STRBUF_INIT;
        strbuf_adds(&body, reason);
        bool coredump = after_crash == ON_CRASH_BEHAVIOUR_COREDUMP_AND_DESTROY ||
                        after_crash == ON_CRASH_BEHAVIOUR_COREDUMP_AND_RESTART;
        if (coredump && !died) {
            char *file = crash_dump(ctx, rt);
            if (file) {
                strbuf_addf(&body, "; core dump: %s", file);
                log_info("VM %s: core dump written to %s", rt->uuid, file);
            }
            free(file);
        }
        bool restart_it = after_crash == ON_CRASH_BEHAVIOUR_RESTART ||
                          after_crash == ON_CRASH_BEHAVIOUR_COREDUMP_AND_RESTART ||
                          after_crash == ON_CRASH_BEHAVIOUR_RENAME_RESTART;
        if (restart_it && rt->quick_crashes >= MAX_QUICK_CRASHES) {
            strbuf_addf(&body, "; crashed %d times within %d s of starting: not restarted",
                        rt->quick_crashes, QUICK_CRASH_S);
            restart_it = false;
        }
        message_now(env, "VM_CRASHED", 2, rt->uuid, body.buf);
        strbuf_release(&body);
        if (after_crash == ON_CRASH_BEHAVIOUR_PRESERVE && !died) {
            /* Kept as it stopped, for analysis (vm-dump-core, then vm-shutdown --force). */
            DbTxn *txn = db_begin(ctx->db);
            DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, rt->ref);
            if (v) {
                db_set_enum(txn, v, F_VM_POWER_STATE, VM_POWER_STATE_PAUSED);
                ops_vm_update_allowed(txn, v);
            }
            db_commit(txn, NULL);
        } else if (restart_it) {
            restart(ctx, rt, NULL, &err);
        } else {
            teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, NULL, &err);
        }
        break;
    }
    default:
        break;
    }
    if (err) {
        _cleanup_free_ char *s = xs_error_to_string(err);
        log_error("VM %s: the action after the guest's event failed: %s", rt->uuid, s);
        /* Never leave a half-running VM: stop it and record it halted. */
        if (power_state_of(ctx->db, rt->ref) != VM_POWER_STATE_HALTED || rt->vmm) {
            XsError *e2 = NULL;
            teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, NULL, &e2);
            xs_error_free(e2);
        }
        message_now(env, "VM_CRASHED", 2, rt->uuid, s);
        xs_error_free(err);
    }
}

void *ops_vm_auto_worker(void *arg)
{
    VmRt *rt = arg;
    OpsCtx ctx;
    vmrt_ctx(rt->env, &ctx);
    /* Show the work in current_operations, as a call would. */
    char *token = NULL;
    for (int i = 0; i < 100; i++) {
        XsError *e = NULL;
        if (ops_op_begin_ref(&ctx, XS_CLASS_VM, rt->ref, "hard_reboot", &token, &e)) {
            xs_error_free(e);
            break;
        }
        bool gone = xs_error_is(e, "HANDLE_INVALID");
        xs_error_free(e);
        if (gone)
            break;
        usleep(100000);
    }
    for (;;) {
        char reason[512] = "";
        Fact f = take_fact(rt, reason, sizeof(reason));
        if (f == FACT_NONE || vmrt_stopping(rt->env))
            break;
        act_on_fact(&ctx, rt, f, reason);
    }
    ops_op_end(&ctx, XS_CLASS_VM, rt->ref, token);
    free(token);
    pthread_mutex_lock(&rt->mu);
    bool again = rt->pending;
    pthread_mutex_unlock(&rt->mu);
    if (again)
        return ops_vm_auto_worker(arg);
    vmrt_release(rt);
    return NULL;
}

/* ---- waiting for the guest ---------------------------------------------------------- */

typedef bool (*RtPred)(const VmRt *rt);

/* Waits until pred holds (0), timeout_s passes (-ETIMEDOUT) or the task is cancelled. */
static int wait_for(OpsCtx *ctx, VmRt *rt, RtPred pred, unsigned timeout_s)
{
    int64_t deadline = mono_s() + timeout_s;
    pthread_mutex_lock(&rt->mu);
    int r = 0;
    while (!pred(rt)) {
        if (mono_s() >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        pthread_mutex_unlock(&rt->mu);
        bool cancelled = ops_cancelled(ctx);
        pthread_mutex_lock(&rt->mu);
        if (cancelled) {
            r = -ECANCELED;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rt->cond, &rt->mu, &ts);
    }
    pthread_mutex_unlock(&rt->mu);
    return r;
}

static bool pred_off(const VmRt *rt)
{
    return rt->guest_off || rt->exited || rt->crashed;
}

static bool pred_off_or_reset(const VmRt *rt)
{
    return rt->guest_off || rt->exited || rt->crashed || rt->guest_reset;
}

/* Asks the guest agent, if one answers, to power off or reboot the guest
 * (through the VM's guest-agent session, guest_agent.c). */
static bool ask_agent(VmRt *rt, const char *mode)
{
    char *err = NULL;
    bool ok = guest_agent_shutdown(rt, mode, &err) == 0;
    if (!ok)
        log_debug("VM %s: no guest agent (%s); using ACPI", rt->uuid, err ? err : "?");
    else
        log_info("VM %s: the guest agent accepted the %s request", rt->uuid, mode);
    free(err);
    return ok;
}

/*
 * Asks the guest to power off (or reboot) and waits for it. On success the
 * guest is off (or rebooted in place: *rebooted). Facts it consumed are
 * cleared; a crash in the meantime stays pending.
 */
static bool clean_stop(OpsCtx *ctx, VmRt *rt, bool reboot, bool *rebooted, XsError **errp)
{
    *rebooted = false;
    unsigned timeout = other_config_seconds(ctx->db, rt->ref, "hyperxe-shutdown-timeout",
                                            SHUTDOWN_TIMEOUT_S);
    /*
     * The guest agent when one runs in the guest; else the ACPI power button.
     * A reboot needs the agent (ACPI has no reboot button): without one the
     * guest is powered off and started again.
     */
    bool agent = ask_agent(rt, reboot ? "reboot" : "powerdown");
    if (!agent) {
        char *err = NULL;
        int r = rt->vmm ? vmm_powerdown(rt->vmm, &err) : -ESRCH;
        if (r < 0) {
            log_info("VM %s: %s", rt->uuid, err ? err : strerror(-r));
            free(err);
            if (r != -ENOTSUP || !ask_agent(rt, "powerdown")) {
                if (r == -ENOTSUP)
                    xs_err_vm_missing_pv_drivers(errp, rt->ref);
                else
                    vmm_failure(errp, "powerdown", r, NULL);
                return false;
            }
        } else {
            free(err);
        }
    }
    int r = wait_for(ctx, rt, agent && reboot ? pred_off_or_reset : pred_off, timeout);
    if (r == -ECANCELED) {
        xs_err_task_cancelled(errp, ctx->task ? ctx->task : "");
        return false;
    }
    if (r == -ETIMEDOUT) {
        char t[16];
        snprintf(t, sizeof(t), "%u", timeout);
        xs_err_vm_shutdown_timeout(errp, rt->ref, t);
        return false;
    }
    pthread_mutex_lock(&rt->mu);
    bool crashed = rt->crashed || (rt->exited && !rt->guest_off);
    if (!crashed) {
        *rebooted = rt->guest_reset && !rt->guest_off;
        rt->guest_off = rt->guest_reset = false;
        if (rt->exited)
            rt->expect_exit = true;
        rt->pending = false; /* this call handles what it waited for */
    }
    pthread_mutex_unlock(&rt->mu);
    if (crashed) {
        xs_err_vm_crashed(errp, rt->ref);
        return false;
    }
    return true;
}

/* ---- the API ----------------------------------------------------------------------- */

static bool start_common(OpsCtx *ctx, const char *vm_ref, const char *op, bool paused, bool force,
                         XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm_ref, op, PS(HALTED), &token, errp);
    if (!rt)
        return false;
    rt->quick_crashes = 0;
    bool ok = boot(ctx, rt, paused, force, NULL, "VM_STARTED", errp);
    if (ok) {
        /* start_delay is part of the start (appliances wait for it). */
        unsigned delay = 0;
        db_read_lock(ctx->db);
        DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
        if (vm)
            delay = (unsigned)MIN(db_int(vm, F_VM_START_DELAY), 3600);
        db_read_unlock(ctx->db);
        sleep_cancellable(ctx, delay);
    }
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_start(OpsCtx *ctx, const char *vm, bool start_paused, bool force, XsError **errp)
{
    return start_common(ctx, vm, "start", start_paused, force, errp);
}

bool ops_vm_start_on(OpsCtx *ctx, const char *vm, const char *host, bool start_paused, bool force,
                     XsError **errp)
{
    if (strcmp(host, ctx->env->host_ref) != 0) {
        xs_err_vm_not_resident_here(errp, vm, host);
        return false;
    }
    return start_common(ctx, vm, "start_on", start_paused, force, errp);
}

static void shutdown_delay(OpsCtx *ctx, const char *vm_ref)
{
    unsigned delay = 0;
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
    if (vm)
        delay = (unsigned)MIN(db_int(vm, F_VM_SHUTDOWN_DELAY), 3600);
    db_read_unlock(ctx->db);
    sleep_cancellable(ctx, delay);
}

bool ops_vm_clean_shutdown(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "clean_shutdown", PS(RUNNING), &token, errp);
    if (!rt)
        return false;
    bool rebooted;
    bool ok = clean_stop(ctx, rt, false, &rebooted, errp) &&
              teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, "VM_SHUTDOWN", errp);
    if (ok)
        shutdown_delay(ctx, vm);
    end_op(ctx, rt, token);
    return ok;
}

static bool hard_stop(OpsCtx *ctx, VmRt *rt, XsError **errp)
{
    /* A suspended VM: its image goes. */
    char *suspend_vdi = NULL;
    db_read_lock(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, rt->ref);
    if (v && db_enum(v, F_VM_POWER_STATE) == VM_POWER_STATE_SUSPENDED &&
        db_get_class(ctx->db, XS_CLASS_VDI, db_str(v, F_VM_SUSPEND_VDI)))
        suspend_vdi = xstrdup(db_str(v, F_VM_SUSPEND_VDI));
    db_read_unlock(ctx->db);
    bool ok = teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, "VM_SHUTDOWN", errp);
    if (ok && suspend_vdi) {
        XsError *e = NULL;
        if (!vmdisk_destroy(ctx, suspend_vdi, &e))
            log_warn("VM %s: cannot remove the suspend image VDI %s", rt->uuid, suspend_vdi);
        xs_error_free(e);
        _cleanup_free_ char *cfg = suspend_config_path(ctx->env, rt->uuid);
        unlink(cfg);
    }
    free(suspend_vdi);
    return ok;
}

bool ops_vm_hard_shutdown(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "hard_shutdown", PS(RUNNING) | PS(PAUSED) | PS(SUSPENDED),
                        &token, errp);
    if (!rt)
        return false;
    bool ok = hard_stop(ctx, rt, errp);
    if (ok)
        shutdown_delay(ctx, vm);
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_shutdown(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "shutdown", PS(RUNNING) | PS(PAUSED) | PS(SUSPENDED), &token,
                        errp);
    if (!rt)
        return false;
    bool ok;
    if (power_state_of(ctx->db, vm) == VM_POWER_STATE_RUNNING) {
        XsError *e = NULL;
        bool rebooted;
        if (!clean_stop(ctx, rt, false, &rebooted, &e)) {
            _cleanup_free_ char *s = xs_error_to_string(e);
            log_info("VM %s: clean shutdown failed (%s); forcing it", rt->uuid, s);
        }
        xs_error_free(e);
    }
    ok = hard_stop(ctx, rt, errp);
    if (ok)
        shutdown_delay(ctx, vm);
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_clean_reboot(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "clean_reboot", PS(RUNNING), &token, errp);
    if (!rt)
        return false;
    bool rebooted = false;
    bool ok = clean_stop(ctx, rt, true, &rebooted, errp);
    if (ok) {
        if (rebooted && !rt->fresh_reboot) {
            DbTxn *txn = db_begin(ctx->db);
            DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
            DbObj *m = v ? metrics_of(ctx->db, v) : NULL;
            if (m)
                db_set_datetime(txn, m, F_VM_METRICS_START_TIME, (int64_t)time(NULL));
            if (v)
                msg_add(txn, "VM_REBOOTED", 5, rt->uuid, "");
            ok = db_commit(txn, errp);
        } else {
            ok = restart(ctx, rt, "VM_REBOOTED", errp);
        }
    }
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_hard_reboot(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "hard_reboot", PS(RUNNING) | PS(PAUSED), &token, errp);
    if (!rt)
        return false;
    bool ok = restart(ctx, rt, "VM_REBOOTED", errp);
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_pause(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "pause", PS(RUNNING), &token, errp);
    if (!rt)
        return false;
    char *err = NULL;
    int r = rt->vmm ? vmm_pause(rt->vmm, &err) : -ESRCH;
    bool ok = r == 0;
    if (!ok)
        vmm_failure(errp, "pause", r, err);
    free(err);
    if (ok) {
        DbTxn *txn = db_begin(ctx->db);
        DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
        if (v) {
            db_set_enum(txn, v, F_VM_POWER_STATE, VM_POWER_STATE_PAUSED);
            ops_vm_update_allowed(txn, v);
        }
        ok = db_commit(txn, errp);
    }
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_unpause(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "unpause", PS(PAUSED), &token, errp);
    if (!rt)
        return false;
    char *err = NULL;
    int r = rt->vmm ? vmm_unpause(rt->vmm, &err) : -ESRCH;
    bool ok = r == 0;
    if (!ok)
        vmm_failure(errp, "unpause", r, err);
    free(err);
    if (ok) {
        DbTxn *txn = db_begin(ctx->db);
        DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
        if (v) {
            db_set_enum(txn, v, F_VM_POWER_STATE, VM_POWER_STATE_RUNNING);
            ops_vm_update_allowed(txn, v);
        }
        ok = db_commit(txn, errp);
    }
    end_op(ctx, rt, token);
    return ok;
}

typedef struct SuspendProgress {
    OpsCtx *ctx;
} SuspendProgress;

static void suspend_progress(uint64_t done, uint64_t total, void *opaque)
{
    SuspendProgress *p = opaque;
    if (total)
        ops_progress(p->ctx, 0.9 * (double)done / (double)total);
}

static char *suspend_sr(Db *db, HxEnv *env, DbObj *vm)
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
    return NULL;
}

bool ops_vm_suspend(OpsCtx *ctx, const char *vm, XsError **errp)
{
    HxEnv *env = ctx->env;
    char *token;
    VmRt *rt = begin_op(ctx, vm, "suspend", PS(RUNNING), &token, errp);
    if (!rt)
        return false;
    bool ok = false;
    char *vdi = NULL;
    db_read_lock(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
    char *sr = v ? suspend_sr(ctx->db, env, v) : NULL;
    db_read_unlock(ctx->db);
    _cleanup_free_ char *dir = xasprintf("%s/suspend", env->state_dir);
    _cleanup_free_ char *image = xasprintf("%s/%s.img", dir, rt->uuid);
    _cleanup_free_ char *cfgpath = suspend_config_path(env, rt->uuid);
    _cleanup_free_ char *name = NULL;
    if (!sr) {
        xs_err_vm_no_suspend_sr(errp, vm);
        goto out;
    }
    if (!rt->vmm) {
        xs_err_vm_bad_power_state(errp, vm, "running", "halted");
        goto out;
    }
    mkdir(dir, 0700);
    /* The configuration that resume must reproduce. */
    VmmConfig cfg;
    vmm_get_config(rt->vmm, &cfg);
    struct json_object *j = vmm_config_to_json(&cfg);
    vmm_config_release(&cfg);
    bool saved = json_object_to_file_ext(cfgpath, j, JSON_C_TO_STRING_PLAIN) == 0;
    if (saved) {
        /* Also in the record, which travels with the VM (XVA export). */
        DbTxn *txn = db_begin(ctx->db);
        DbObj *vo = db_get_class(ctx->db, XS_CLASS_VM, vm);
        if (vo)
            db_set_str(txn, vo, F_VM_LAST_BOOTED_RECORD,
                       json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        db_commit(txn, NULL);
    }
    json_object_put(j);
    if (!saved) {
        xs_error_internal(errp, "cannot write %s", cfgpath);
        goto out;
    }
    SuspendProgress prog = {ctx};
    char *err = NULL;
    pthread_mutex_lock(&rt->mu);
    rt->expect_exit = true;
    pthread_mutex_unlock(&rt->mu);
    int r = vmm_suspend(rt->vmm, image, suspend_progress, &prog, &err);
    if (r < 0) {
        pthread_mutex_lock(&rt->mu);
        rt->expect_exit = false;
        pthread_mutex_unlock(&rt->mu);
        log_error("VM %s: suspend failed: %s", rt->uuid, err ? err : strerror(-r));
        vmm_failure(errp, "suspend", r, err);
        free(err);
        unlink(image);
        unlink(cfgpath);
        goto out;
    }
    free(err);
    /* QEMU is gone: the image goes into a suspend VDI in the SR, padded to whole
     * sectors (a disk image has no odd sizes); its true length is recorded. */
    struct stat isb;
    long long image_len = stat(image, &isb) == 0 ? (long long)isb.st_size : -1;
    if (image_len >= 0 && image_len % 512 && truncate(image, (off_t)((image_len + 511) / 512 * 512)))
        log_warn("VM %s: cannot pad the suspend image: %s", rt->uuid, strerror(errno));
    name = xasprintf("Suspend image of %s", rt->uuid);
    if (!vmdisk_create_from_file(ctx, sr, name, VDI_TYPE_SUSPEND, image, &vdi, errp)) {
        /* The memory is lost with the QEMU: the VM is halted, as after a crash. */
        XsError *e = NULL;
        teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, NULL, &e);
        xs_error_free(e);
        unlink(image);
        unlink(cfgpath);
        goto out;
    }
    {
        if (image_len >= 0) {
            char len[32];
            snprintf(len, sizeof(len), "%lld", image_len);
            DbTxn *txn = db_begin(ctx->db);
            DbObj *vo = db_get_class(ctx->db, XS_CLASS_VDI, vdi);
            if (vo)
                db_map_set(txn, vo, F_VDI_OTHER_CONFIG, "hyperxe-suspend-image-size", len);
            db_commit(txn, NULL);
        }
    }
    unlink(image);
    ops_progress(ctx, 0.95);
    ok = teardown(ctx, rt, VM_POWER_STATE_SUSPENDED, vdi, "VM_SUSPENDED", errp);
out:
    free(sr);
    free(vdi);
    end_op(ctx, rt, token);
    return ok;
}

static bool resume_common(OpsCtx *ctx, const char *vm, const char *op, bool paused, bool force,
                          XsError **errp)
{
    HxEnv *env = ctx->env;
    char *token;
    VmRt *rt = begin_op(ctx, vm, op, PS(SUSPENDED), &token, errp);
    if (!rt)
        return false;
    bool ok = false;
    db_read_lock(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
    const char *sv = v ? db_str(v, F_VM_SUSPEND_VDI) : "";
    char *vdi = db_get_class(ctx->db, XS_CLASS_VDI, sv) ? xstrdup(sv) : NULL;
    db_read_unlock(ctx->db);
    _cleanup_free_ char *image = xasprintf("%s/suspend/%s.img", env->state_dir, rt->uuid);
    if (!vdi) {
        xs_err_vm_has_no_suspend_vdi(errp, vm);
        goto out;
    }
    if (!vmdisk_export_raw(ctx, vdi, image, errp))
        goto out;
    db_read_lock(ctx->db);
    DbObj *vo = db_get_class(ctx->db, XS_CLASS_VDI, vdi);
    const char *len = vo ? xv_struct_get_string(&vo->fields[F_VDI_OTHER_CONFIG],
                                                "hyperxe-suspend-image-size")
                         : NULL;
    long long want = len ? strtoll(len, NULL, 10) : -1;
    db_read_unlock(ctx->db);
    if (want > 0 && truncate(image, (off_t)want) != 0)
        log_warn("VM %s: cannot trim the suspend image: %s", rt->uuid, strerror(errno));
    ops_progress(ctx, 0.3);
    ok = boot(ctx, rt, paused, force, image, "VM_RESUMED", errp);
    unlink(image);
    if (ok) {
        XsError *e = NULL;
        if (!vmdisk_destroy(ctx, vdi, &e))
            log_warn("VM %s: cannot remove its suspend image VDI %s", rt->uuid, vdi);
        xs_error_free(e);
        _cleanup_free_ char *cfg = suspend_config_path(env, rt->uuid);
        unlink(cfg);
    }
out:
    free(vdi);
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_resume(OpsCtx *ctx, const char *vm, bool start_paused, bool force, XsError **errp)
{
    return resume_common(ctx, vm, "resume", start_paused, force, errp);
}

bool ops_vm_resume_on(OpsCtx *ctx, const char *vm, const char *host, bool start_paused,
                      bool force, XsError **errp)
{
    if (strcmp(host, ctx->env->host_ref) != 0) {
        xs_err_vm_not_resident_here(errp, vm, host);
        return false;
    }
    return resume_common(ctx, vm, "resume_on", start_paused, force, errp);
}

bool ops_vm_power_state_reset(OpsCtx *ctx, const char *vm, XsError **errp)
{
    VmRt *rt = vmrt_get(ctx->env, vm);
    if (!rt) {
        xs_err_handle_invalid(errp, "VM", vm);
        return false;
    }
    if (!vmrt_claim(rt, "power_state_reset", errp))
        return false;
    db_read_lock(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
    bool bad = v && (db_bool(v, F_VM_IS_CONTROL_DOMAIN) || db_bool(v, F_VM_IS_A_TEMPLATE) ||
                     db_bool(v, F_VM_IS_A_SNAPSHOT));
    char *suspend_vdi = v && db_get_class(ctx->db, XS_CLASS_VDI, db_str(v, F_VM_SUSPEND_VDI))
                            ? xstrdup(db_str(v, F_VM_SUSPEND_VDI))
                            : NULL;
    db_read_unlock(ctx->db);
    if (bad) {
        free(suspend_vdi);
        vmrt_release(rt);
        xs_err_operation_not_allowed(errp, "Only the power state of an ordinary VM can be reset.");
        return false;
    }
    /* Whatever ran is stopped, so that the record and reality agree. */
    bool ok = teardown(ctx, rt, VM_POWER_STATE_HALTED, NULL, NULL, errp);
    if (ok) {
        DbTxn *txn = db_begin(ctx->db);
        v = db_get_class(ctx->db, XS_CLASS_VM, vm);
        if (v && v->fields[F_VM_CURRENT_OPERATIONS].n) {
            db_set(txn, v, F_VM_CURRENT_OPERATIONS, xv_struct());
            ops_vm_update_allowed(txn, v);
        }
        ok = db_commit(txn, errp);
    }
    if (ok && suspend_vdi) {
        XsError *e = NULL;
        vmdisk_destroy(ctx, suspend_vdi, &e);
        xs_error_free(e);
    }
    free(suspend_vdi);
    vmrt_release(rt);
    return ok;
}

bool ops_vm_set_VCPUs_number_live(OpsCtx *ctx, const char *self, int64_t nvcpu, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, self, "changing_VCPUs_live", PS(RUNNING), &token, errp);
    if (!rt)
        return false;
    bool ok = false;
    db_read_lock(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, self);
    int64_t max = v ? db_int(v, F_VM_VCPUS_MAX) : 0;
    db_read_unlock(ctx->db);
    if (nvcpu < 1 || nvcpu > max) {
        char n[24];
        snprintf(n, sizeof(n), "%" PRId64, nvcpu);
        xs_err_value_not_supported(errp, "nvcpu", n,
                                   "The number of vCPUs must be between 1 and VCPUs-max.");
        goto out;
    }
    char *err = NULL;
    int r = vmm_set_vcpus(rt->vmm, (unsigned)nvcpu, 0, &err);
    if (r < 0) {
        if (r == -ETIMEDOUT)
            xs_err_device_detach_timeout(errp, "cpu", self);
        else
            vmm_failure(errp, "vcpu-hotplug", r, err);
        free(err);
        goto out;
    }
    free(err);
    DbTxn *txn = db_begin(ctx->db);
    v = db_get_class(ctx->db, XS_CLASS_VM, self);
    if (v) {
        db_set_int(txn, v, F_VM_VCPUS_AT_STARTUP, nvcpu);
        DbObj *m = metrics_of(ctx->db, v);
        if (m)
            db_set_int(txn, m, F_VM_METRICS_VCPUS_NUMBER, nvcpu);
    }
    ok = db_commit(txn, errp);
out:
    end_op(ctx, rt, token);
    return ok;
}

bool ops_vm_sim_inject(OpsCtx *ctx, const char *vm, const char *what, XsError **errp)
{
    VmRt *rt = vmrt_get(ctx->env, vm);
    if (vmm_get_backend() != VMM_BACKEND_SIM || !rt) {
        xs_err_operation_not_allowed(errp, "Only a daemon started with --vmm sim simulates "
                                           "guests.");
        return false;
    }
    pthread_mutex_lock(&rt->mu);
    Vmm *h = rt->vmm;
    pthread_mutex_unlock(&rt->mu);
    char *err = NULL;
    int r = h ? vmm_sim_inject(h, what, &err) : -ESRCH;
    if (r < 0) {
        if (r == -ESRCH)
            xs_err_vm_bad_power_state(errp, vm, "running", "halted");
        else
            xs_err_invalid_value(errp, "what", err ? err : what);
        free(err);
        return false;
    }
    return true;
}

/* ---- for the HTTP handlers and the device ops --------------------------------------- */

char *ops_vm_suspend_config_path(HxEnv *env, const char *uuid)
{
    return suspend_config_path(env, uuid);
}

bool ops_vm_dump_core_to(OpsCtx *ctx, const char *vm, const char *path, XsError **errp)
{
    char *token;
    VmRt *rt = begin_op(ctx, vm, "data_source_op", PS(RUNNING) | PS(PAUSED), &token, errp);
    if (!rt)
        return false;
    char *err = NULL;
    int r = rt->vmm ? vmm_dump_core(rt->vmm, path, NULL, NULL, &err) : -ESRCH;
    if (r < 0) {
        vmm_failure(errp, "dump-guest-memory", r, err);
        unlink(path);
    }
    free(err);
    end_op(ctx, rt, token);
    return r == 0;
}

bool ops_vm_console_paths(OpsCtx *ctx, const char *vm, char **vnc, char **log, XsError **errp)
{
    VmRt *rt = vmrt_get(ctx->env, vm);
    if (!rt) {
        xs_err_handle_invalid(errp, "VM", vm);
        return false;
    }
    *vnc = vmm_path(ctx->env->run_dir, rt->uuid, "vnc.sock");
    *log = vmm_path(ctx->env->run_dir, rt->uuid, "console.log");
    return true;
}

Vmm *ops_vm_claim_running(OpsCtx *ctx, const char *vm, const char *op, char **token,
                          XsError **errp)
{
    VmRt *rt = begin_op(ctx, vm, op, PS(RUNNING) | PS(PAUSED), token, errp);
    if (!rt)
        return NULL;
    if (!rt->vmm) {
        end_op(ctx, rt, *token);
        *token = NULL;
        xs_err_vm_bad_power_state(errp, vm, "running", "halted");
        return NULL;
    }
    return rt->vmm;
}

void ops_vm_release_running(OpsCtx *ctx, const char *vm, char *token)
{
    VmRt *rt = vmrt_get(ctx->env, vm);
    if (rt)
        end_op(ctx, rt, token);
    else
        free(token);
}

/* ---- at daemon start ----------------------------------------------------------------- */

/* Adopts (or, if it has no business running, stops) each QEMU left by the last daemon. */
void ops_vm_reconcile(HxEnv *env)
{
    OpsCtx ctx;
    vmrt_ctx(env, &ctx);
    char **running = NULL;
    char *err = NULL;
    if (vmm_list_running(env->run_dir, &running, &err) < 0) {
        log_warn("cannot list running VMs: %s", err ? err : "?");
        free(err);
        err = NULL;
    }
    /* What the database says runs. */
    db_read_lock(env->db);
    size_t n;
    DbObj *const *vms = db_list(env->db, XS_CLASS_VM, &n);
    char **refs = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int ps = db_enum(vms[i], F_VM_POWER_STATE);
        if (db_bool(vms[i], F_VM_IS_CONTROL_DOMAIN) || db_bool(vms[i], F_VM_IS_A_TEMPLATE))
            continue;
        if (ps == VM_POWER_STATE_RUNNING || ps == VM_POWER_STATE_PAUSED)
            refs[k++] = xstrdup(vms[i]->ref);
        else if (db_int(vms[i], F_VM_DOMID) >= 0)
            vmrt_note_domid(env, db_int(vms[i], F_VM_DOMID));
    }
    db_read_unlock(env->db);

    int adopted = 0, lost = 0;
    for (size_t i = 0; i < k; i++) {
        VmRt *rt = vmrt_get(env, refs[i]);
        if (!rt)
            continue;
        vmrt_claim_auto(rt, "start");
        Vmm *h = NULL;
        pthread_mutex_lock(&rt->mu);
        rt->starting = true;
        pthread_mutex_unlock(&rt->mu);
        int r = vmm_attach(env->run_dir, rt->uuid, ops_vm_on_event, rt, &h, &err);
        int64_t domid = -1;
        db_read_lock(env->db);
        DbObj *v = db_get_class(env->db, XS_CLASS_VM, rt->ref);
        if (v)
            domid = db_int(v, F_VM_DOMID);
        db_read_unlock(env->db);
        vmrt_note_domid(env, domid);
        pthread_mutex_lock(&rt->mu);
        rt->starting = false;
        rt->vmm = r == 0 ? h : NULL;
        rt->started_at = mono_s();
        if (r < 0) {
            /* It ended while no daemon watched: as if the process died now. */
            rt->exited = true;
            snprintf(rt->exit_reason, sizeof(rt->exit_reason),
                     "QEMU ended while hyperxed was not running (%s)", err ? err : "gone");
        }
        pthread_mutex_unlock(&rt->mu);
        free(err);
        err = NULL;
        if (r == 0) {
            VmmRunState st = VMM_RUN_STATE_UNKNOWN;
            vmm_query_status(h, &st, NULL);
            pthread_mutex_lock(&rt->mu);
            if (st == VMM_RUN_STATE_SHUTDOWN)
                rt->guest_off = true;
            else if (st == VMM_RUN_STATE_GUEST_PANICKED &&
                     power_state_of(env->db, rt->ref) != VM_POWER_STATE_PAUSED) {
                /* (a Paused record means the crash was already preserved) */
                rt->crashed = true;
                snprintf(rt->crash_reason, sizeof(rt->crash_reason),
                         "the guest kernel panicked while hyperxed was not running");
            } else if (st == VMM_RUN_STATE_INTERNAL_ERROR) {
                rt->crashed = true;
                snprintf(rt->crash_reason, sizeof(rt->crash_reason),
                         "QEMU stopped the guest with an internal error");
            }
            pthread_mutex_unlock(&rt->mu);
            /* The record follows what QEMU says (pause state included). */
            DbTxn *txn = db_begin(env->db);
            v = db_get_class(env->db, XS_CLASS_VM, rt->ref);
            if (v && (st == VMM_RUN_STATE_RUNNING || st == VMM_RUN_STATE_PAUSED)) {
                int want = st == VMM_RUN_STATE_PAUSED ? VM_POWER_STATE_PAUSED
                                                      : VM_POWER_STATE_RUNNING;
                if (db_enum(v, F_VM_POWER_STATE) != want) {
                    db_set_enum(txn, v, F_VM_POWER_STATE, want);
                    ops_vm_update_allowed(txn, v);
                }
                if (strcmp(db_str(v, F_VM_RESIDENT_ON), env->host_ref) != 0)
                    db_set_str(txn, v, F_VM_RESIDENT_ON, env->host_ref);
            }
            db_commit(txn, NULL);
            guest_agent_start(rt);
            adopted++;
        } else {
            lost++;
        }
        pthread_mutex_lock(&rt->mu);
        rt->pending = rt->exited || rt->guest_off || rt->crashed;
        pthread_mutex_unlock(&rt->mu);
        vmrt_release(rt); /* starts the worker for what happened meanwhile */
    }

    /* QEMUs the database does not know as running: stopped. */
    int stopped = 0;
    for (size_t i = 0; running && running[i]; i++) {
        bool known = false;
        db_read_lock(env->db);
        DbObj *v = db_get_by_uuid(env->db, XS_CLASS_VM, running[i]);
        for (size_t j = 0; v && j < k; j++)
            known |= strcmp(refs[j], v->ref) == 0;
        db_read_unlock(env->db);
        if (known)
            continue;
        Vmm *h = NULL;
        if (vmm_attach(env->run_dir, running[i], NULL, NULL, &h, NULL) == 0) {
            log_warn("VM %s runs but its record says otherwise (an interrupted operation): "
                     "stopping it",
                     running[i]);
            vmm_destroy(h, DESTROY_TIMEOUT_MS, NULL);
            vmm_close(h);
            stopped++;
        }
    }
    if (adopted || lost || stopped)
        log_info("reconciled VMs: %d running adopted, %d found ended, %d orphan(s) stopped",
                 adopted, lost, stopped);
    for (size_t i = 0; i < k; i++)
        free(refs[i]);
    free(refs);
    vmm_strv_free(running);
}

/* Releases what VMs recorded halted still hold (after a crash of the daemon
 * between QEMU's end and the record). */
void ops_vm_release_stale_devices(HxEnv *env)
{
    OpsCtx ctx;
    vmrt_ctx(env, &ctx);
    DbTxn *txn = db_begin(env->db);
    size_t n;
    DbObj *const *vms = db_list(env->db, XS_CLASS_VM, &n);
    char **vdis = NULL;
    char **vm_of = NULL;
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        int ps = db_enum(vms[i], F_VM_POWER_STATE);
        if (ps == VM_POWER_STATE_RUNNING || ps == VM_POWER_STATE_PAUSED ||
            db_bool(vms[i], F_VM_IS_CONTROL_DOMAIN))
            continue;
        for (size_t j = 0; j < db_backref_count(vms[i], F_VM_VBDS); j++) {
            DbObj *vbd = db_backref(vms[i], F_VM_VBDS, j);
            if (!db_bool(vbd, F_VBD_CURRENTLY_ATTACHED))
                continue;
            db_set_bool(txn, vbd, F_VBD_CURRENTLY_ATTACHED, false);
            ops_update_allowed(txn, vbd);
            vdis = xreallocarray(vdis, nv + 1, sizeof(char *));
            vm_of = xreallocarray(vm_of, nv + 1, sizeof(char *));
            vdis[nv] = xstrdup(db_str(vbd, F_VBD_VDI));
            vm_of[nv++] = xstrdup(vms[i]->ref);
        }
        for (size_t j = 0; j < db_backref_count(vms[i], F_VM_VIFS); j++) {
            DbObj *vif = db_backref(vms[i], F_VM_VIFS, j);
            if (db_bool(vif, F_VIF_CURRENTLY_ATTACHED)) {
                db_set_bool(txn, vif, F_VIF_CURRENTLY_ATTACHED, false);
                ops_update_allowed(txn, vif);
            }
        }
        if (db_backref_count(vms[i], F_VM_CONSOLES))
            delete_consoles(txn, vms[i]);
    }
    db_commit(txn, NULL);
    for (size_t i = 0; i < nv; i++) {
        vmdisk_detach(&ctx, vm_of[i], vdis[i]);
        free(vdis[i]);
        free(vm_of[i]);
    }
    free(vdis);
    free(vm_of);
}
