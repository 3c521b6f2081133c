/*
 * The VM class (virtual machines, templates and snapshots): record
 * creation and destruction, the validated setters (memory limits, VCPUs,
 * delays, BIOS strings), allowed operations, and free device numbers.
 * Power operations live in vm_lifecycle.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/vm.h"
#include "ops/vm_lifecycle.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmm/vmm.h"
#include "util/banned.h"

#define MAX_VCPUS 64
#define MAX_VBD_DEVICES 16
#define MAX_VIF_DEVICES 7
#define BIOS_STRING_MAX 512

bool ops_vm_require_power_state(DbObj *vm, unsigned allowed_mask, XsError **errp)
{
    int ps = db_enum(vm, F_VM_POWER_STATE);
    if (ps >= 0 && (allowed_mask & (1u << ps)))
        return true;
    char expected[64] = "";
    for (int s = 0; s < VM_POWER_STATE__MAX; s++) {
        if (!(allowed_mask & (1u << s)))
            continue;
        size_t l = strlen(expected);
        snprintf(expected + l, sizeof(expected) - l, "%s%s", l ? ", " : "",
                 ops_power_state_lower(s));
    }
    xs_err_vm_bad_power_state(errp, vm->ref, expected, ops_power_state_lower(ps));
    return false;
}

bool ops_vm_check_operable(DbObj *vm, const char *op, unsigned allowed_mask,
                           const char *dom0_why, XsError **errp)
{
    if (db_bool(vm, F_VM_IS_A_SNAPSHOT)) {
        xs_err_vm_is_snapshot(errp, vm->ref, op);
        return false;
    }
    if (db_bool(vm, F_VM_IS_A_TEMPLATE)) {
        xs_err_vm_is_template(errp, vm->ref, op);
        return false;
    }
    if (db_bool(vm, F_VM_IS_CONTROL_DOMAIN)) {
        xs_err_operation_not_allowed(errp, dom0_why);
        return false;
    }
    const char *blocked = xv_struct_get_string(&vm->fields[F_VM_BLOCKED_OPERATIONS], op);
    if (blocked) {
        xs_err_operation_blocked(errp, vm->ref, blocked);
        return false;
    }
    return ops_vm_require_power_state(vm, allowed_mask, errp);
}

static const int halted_ops[] = {
    VM_OPERATIONS_CHANGING_DYNAMIC_RANGE, VM_OPERATIONS_CHANGING_STATIC_RANGE,
    VM_OPERATIONS_CHANGING_MEMORY_LIMITS, VM_OPERATIONS_CHANGING_SHADOW_MEMORY,
    VM_OPERATIONS_CHANGING_VCPUS,         VM_OPERATIONS_CHANGING_NVRAM,
    VM_OPERATIONS_MAKE_INTO_TEMPLATE,     VM_OPERATIONS_PROVISION,
    VM_OPERATIONS_START,                  VM_OPERATIONS_START_ON,
    VM_OPERATIONS_CLONE,                  VM_OPERATIONS_COPY,
    VM_OPERATIONS_SNAPSHOT,               VM_OPERATIONS_EXPORT,
    VM_OPERATIONS_METADATA_EXPORT,        VM_OPERATIONS_DESTROY,
    VM_OPERATIONS_MIGRATE_SEND,           -1,
};
static const int running_ops[] = {
    VM_OPERATIONS_CHANGING_DYNAMIC_RANGE, VM_OPERATIONS_CLEAN_REBOOT,
    VM_OPERATIONS_CLEAN_SHUTDOWN,         VM_OPERATIONS_HARD_REBOOT,
    VM_OPERATIONS_HARD_SHUTDOWN,          VM_OPERATIONS_SHUTDOWN,
    VM_OPERATIONS_PAUSE,                  VM_OPERATIONS_SUSPEND,
    VM_OPERATIONS_SNAPSHOT,               VM_OPERATIONS_CHECKPOINT,
    VM_OPERATIONS_SNAPSHOT_WITH_QUIESCE,
    VM_OPERATIONS_CHANGING_VCPUS_LIVE,    VM_OPERATIONS_POOL_MIGRATE,
    VM_OPERATIONS_MIGRATE_SEND,           VM_OPERATIONS_SEND_SYSRQ,
    VM_OPERATIONS_SEND_TRIGGER,           VM_OPERATIONS_METADATA_EXPORT,
    -1,
};
static const int paused_ops[] = {
    VM_OPERATIONS_UNPAUSE,       VM_OPERATIONS_HARD_SHUTDOWN, VM_OPERATIONS_HARD_REBOOT,
    VM_OPERATIONS_SHUTDOWN,      VM_OPERATIONS_SNAPSHOT,      VM_OPERATIONS_CHECKPOINT,
    VM_OPERATIONS_CHANGING_DYNAMIC_RANGE,                     VM_OPERATIONS_METADATA_EXPORT,
    -1,
};
static const int suspended_ops[] = {
    VM_OPERATIONS_RESUME,   VM_OPERATIONS_RESUME_ON, VM_OPERATIONS_HARD_SHUTDOWN,
    VM_OPERATIONS_SNAPSHOT, VM_OPERATIONS_CLONE,     VM_OPERATIONS_COPY,
    VM_OPERATIONS_EXPORT,   VM_OPERATIONS_METADATA_EXPORT, VM_OPERATIONS_DESTROY,
    -1,
};
static const int template_ops[] = {
    VM_OPERATIONS_CLONE,           VM_OPERATIONS_COPY,    VM_OPERATIONS_EXPORT,
    VM_OPERATIONS_METADATA_EXPORT, VM_OPERATIONS_PROVISION, VM_OPERATIONS_DESTROY,
    VM_OPERATIONS_MIGRATE_SEND,    VM_OPERATIONS_CHANGING_DYNAMIC_RANGE,
    VM_OPERATIONS_CHANGING_STATIC_RANGE, VM_OPERATIONS_CHANGING_MEMORY_LIMITS,
    VM_OPERATIONS_CHANGING_VCPUS,  -1,
};
static const int snapshot_ops[] = {
    VM_OPERATIONS_REVERT, VM_OPERATIONS_CLONE,   VM_OPERATIONS_COPY,
    VM_OPERATIONS_EXPORT, VM_OPERATIONS_DESTROY, VM_OPERATIONS_METADATA_EXPORT,
    -1,
};

XsValue *ops_vm_allowed_operations(const DbObj *vm)
{
    const int *ops;
    if (db_bool(vm, F_VM_IS_A_SNAPSHOT))
        ops = snapshot_ops;
    else if (db_bool(vm, F_VM_IS_A_TEMPLATE))
        ops = template_ops;
    else {
        switch (db_enum(vm, F_VM_POWER_STATE)) {
        case VM_POWER_STATE_RUNNING:
            ops = running_ops;
            break;
        case VM_POWER_STATE_PAUSED:
            ops = paused_ops;
            break;
        case VM_POWER_STATE_SUSPENDED:
            ops = suspended_ops;
            break;
        default:
            ops = halted_ops;
        }
    }
    bool busy = vm->fields[F_VM_CURRENT_OPERATIONS].n > 0;
    XsValue *a = xv_array();
    if (!busy)
        for (; *ops >= 0; ops++)
            xv_array_push_string(a, xs_enum_vm_operations.values[*ops]);
    return a;
}

static bool falsy(const char *v)
{
    return v && (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0);
}

/*
 * What the guest agent decides (docs/agent.md, "Operations that need the
 * agent"): a quiesced snapshot needs an agent that can freeze file systems
 * (feature-quiesce, as XenServer); a clean shutdown or reboot of a VM without
 * ACPI needs an agent that can shut the guest down (feature-shutdown).
 */
static void filter_agent_ops(Db *db, const DbObj *vm, XsValue *a)
{
    if (db_enum(vm, F_VM_POWER_STATE) != VM_POWER_STATE_RUNNING || db_bool(vm, F_VM_IS_A_TEMPLATE))
        return;
    DbObj *gm = db_get_class(db, XS_CLASS_VM_GUEST_METRICS, db_str(vm, F_VM_GUEST_METRICS));
    bool live = gm && db_bool(gm, F_VM_GUEST_METRICS_LIVE);
    const XsValue *other = gm ? &gm->fields[F_VM_GUEST_METRICS_OTHER] : NULL;
    if (!(live && xv_struct_get(other, "feature-quiesce")))
        xv_array_remove_string(a, "snapshot_with_quiesce");
    bool acpi = !falsy(xv_struct_get_string(&vm->fields[F_VM_PLATFORM], "acpi"));
    if (!acpi && !(live && xv_struct_get(other, "feature-shutdown"))) {
        xv_array_remove_string(a, "clean_shutdown");
        xv_array_remove_string(a, "clean_reboot");
    }
}

void ops_vm_update_allowed(DbTxn *txn, DbObj *vm)
{
    XsValue *a = ops_vm_allowed_operations(vm);
    filter_agent_ops(db_txn_db(txn), vm, a);
    if (xv_equal(a, &vm->fields[F_VM_ALLOWED_OPERATIONS]))
        xv_free(a);
    else
        db_set(txn, vm, F_VM_ALLOWED_OPERATIONS, a);
}

/* ---- memory and VCPUs -------------------------------------------------------- */

typedef struct MemLimits {
    int64_t static_min, dynamic_min, dynamic_max, static_max;
} MemLimits;

static MemLimits mem_of(const DbObj *vm)
{
    return (MemLimits){db_int(vm, F_VM_MEMORY_STATIC_MIN), db_int(vm, F_VM_MEMORY_DYNAMIC_MIN),
                       db_int(vm, F_VM_MEMORY_DYNAMIC_MAX), db_int(vm, F_VM_MEMORY_STATIC_MAX)};
}

bool ops_vm_check_memory(int64_t static_min, int64_t dynamic_min, int64_t dynamic_max,
                         int64_t static_max, XsError **errp)
{
    if (static_min < 0 || !(static_min <= dynamic_min && dynamic_min <= dynamic_max &&
                            dynamic_max <= static_max)) {
        xs_err_memory_constraint_violation_order(errp);
        return false;
    }
    return true;
}

static bool apply_memory(OpsCtx *ctx, const char *self, MemLimits (*change)(MemLimits, void *),
                         void *arg, bool needs_halted, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, self);
    if (!vm) {
        db_abort(txn);
        xs_err_handle_invalid(errp, "VM", self);
        return false;
    }
    if (needs_halted && !db_bool(vm, F_VM_IS_A_TEMPLATE) &&
        !ops_vm_require_power_state(vm, 1u << VM_POWER_STATE_HALTED, errp)) {
        db_abort(txn);
        return false;
    }
    MemLimits m = change(mem_of(vm), arg);
    if (!ops_vm_check_memory(m.static_min, m.dynamic_min, m.dynamic_max, m.static_max, errp)) {
        db_abort(txn);
        return false;
    }
    db_set_int(txn, vm, F_VM_MEMORY_STATIC_MIN, m.static_min);
    db_set_int(txn, vm, F_VM_MEMORY_DYNAMIC_MIN, m.dynamic_min);
    db_set_int(txn, vm, F_VM_MEMORY_DYNAMIC_MAX, m.dynamic_max);
    db_set_int(txn, vm, F_VM_MEMORY_STATIC_MAX, m.static_max);
    return db_commit(txn, errp);
}

static MemLimits ch_static_max(MemLimits m, void *a)
{
    m.static_max = *(int64_t *)a;
    return m;
}
static MemLimits ch_static_min(MemLimits m, void *a)
{
    m.static_min = *(int64_t *)a;
    return m;
}
static MemLimits ch_dynamic_max(MemLimits m, void *a)
{
    m.dynamic_max = *(int64_t *)a;
    return m;
}
static MemLimits ch_dynamic_min(MemLimits m, void *a)
{
    m.dynamic_min = *(int64_t *)a;
    return m;
}
static MemLimits ch_all(MemLimits m, void *a)
{
    return *(MemLimits *)a;
}
static MemLimits ch_static_range(MemLimits m, void *a)
{
    m.static_min = ((int64_t *)a)[0];
    m.static_max = ((int64_t *)a)[1];
    return m;
}
static MemLimits ch_dynamic_range(MemLimits m, void *a)
{
    m.dynamic_min = ((int64_t *)a)[0];
    m.dynamic_max = ((int64_t *)a)[1];
    return m;
}
static MemLimits ch_memory(MemLimits m, void *a)
{
    m.static_max = m.dynamic_min = m.dynamic_max = *(int64_t *)a;
    if (m.static_min > m.static_max)
        m.static_min = m.static_max;
    return m;
}

bool ops_vm_set_memory_static_max(OpsCtx *ctx, const char *self, const XsValue *value,
                                  XsError **errp)
{
    int64_t v = value->i;
    return apply_memory(ctx, self, ch_static_max, &v, true, errp);
}

bool ops_vm_set_memory_static_min(OpsCtx *ctx, const char *self, const XsValue *value,
                                  XsError **errp)
{
    int64_t v = value->i;
    return apply_memory(ctx, self, ch_static_min, &v, true, errp);
}

/* A running VM follows a new dynamic maximum at once: its balloon's target. */
static bool balloon_to_target(OpsCtx *ctx, const char *self, XsError **errp)
{
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, self);
    int ps = vm ? db_enum(vm, F_VM_POWER_STATE) : -1;
    int64_t target = vm ? db_int(vm, F_VM_MEMORY_DYNAMIC_MAX) : 0;
    db_read_unlock(ctx->db);
    if (ps != VM_POWER_STATE_RUNNING && ps != VM_POWER_STATE_PAUSED)
        return true;
    char *token = NULL;
    Vmm *h = ops_vm_claim_running(ctx, self, "changing_memory_live", &token, errp);
    if (!h)
        return false;
    char *err = NULL;
    int r = vmm_set_memory_target(h, (uint64_t)target / MiB, &err);
    if (r < 0) {
        log_warn("VM %s: cannot set the balloon's target: %s", self, err ? err : strerror(-r));
        xs_err_vm_missing_pv_drivers(errp, self);
    }
    free(err);
    ops_vm_release_running(ctx, self, token);
    return r == 0;
}

bool ops_vm_set_memory_dynamic_max(OpsCtx *ctx, const char *self, const XsValue *value,
                                   XsError **errp)
{
    int64_t v = value->i;
    return apply_memory(ctx, self, ch_dynamic_max, &v, false, errp) &&
           balloon_to_target(ctx, self, errp);
}

bool ops_vm_set_memory_dynamic_min(OpsCtx *ctx, const char *self, const XsValue *value,
                                   XsError **errp)
{
    int64_t v = value->i;
    return apply_memory(ctx, self, ch_dynamic_min, &v, false, errp);
}

bool ops_vm_set_memory_limits(OpsCtx *ctx, const char *self, int64_t static_min,
                              int64_t static_max, int64_t dynamic_min, int64_t dynamic_max,
                              XsError **errp)
{
    MemLimits m = {static_min, dynamic_min, dynamic_max, static_max};
    return apply_memory(ctx, self, ch_all, &m, true, errp);
}

bool ops_vm_set_memory_static_range(OpsCtx *ctx, const char *self, int64_t min, int64_t max,
                                    XsError **errp)
{
    int64_t r[2] = {min, max};
    return apply_memory(ctx, self, ch_static_range, r, true, errp);
}

bool ops_vm_set_memory_dynamic_range(OpsCtx *ctx, const char *self, int64_t min, int64_t max,
                                     XsError **errp)
{
    int64_t r[2] = {min, max};
    return apply_memory(ctx, self, ch_dynamic_range, r, false, errp) &&
           balloon_to_target(ctx, self, errp);
}

bool ops_vm_set_memory(OpsCtx *ctx, const char *self, int64_t value, XsError **errp)
{
    return apply_memory(ctx, self, ch_memory, &value, true, errp);
}

static bool check_cores_per_socket(DbObj *vm, int64_t vcpus_max, XsError **errp)
{
    const char *cps = xv_struct_get_string(&vm->fields[F_VM_PLATFORM], "cores-per-socket");
    if (!cps || !*cps)
        return true;
    long c = strtol(cps, NULL, 10);
    if (c > 0 && vcpus_max % c == 0)
        return true;
    char v[24];
    snprintf(v, sizeof(v), "%" PRId64, vcpus_max);
    xs_err_vcpu_max_not_cores_per_socket_multiple(errp, v, cps);
    return false;
}

static bool set_vcpus(OpsCtx *ctx, const char *self, int64_t value, bool max, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, self);
    if (!db_bool(vm, F_VM_IS_A_TEMPLATE) &&
        !ops_vm_require_power_state(vm, 1u << VM_POWER_STATE_HALTED, errp))
        goto fail;
    char v[24];
    snprintf(v, sizeof(v), "%" PRId64, value);
    if (value < 1) {
        xs_err_invalid_value(errp, max ? "VCPUs_max" : "VCPUs_at_startup", v);
        goto fail;
    }
    if (value > MAX_VCPUS) {
        xs_err_vm_too_many_vcpus(errp, vm->ref);
        goto fail;
    }
    if (max) {
        if (value < db_int(vm, F_VM_VCPUS_AT_STARTUP)) {
            xs_err_value_not_supported(errp, "VCPUs_max", v,
                                       "VCPUs_max must not be below VCPUs_at_startup.");
            goto fail;
        }
        if (!check_cores_per_socket(vm, value, errp))
            goto fail;
        db_set_int(txn, vm, F_VM_VCPUS_MAX, value);
    } else {
        if (value > db_int(vm, F_VM_VCPUS_MAX)) {
            xs_err_value_not_supported(errp, "VCPUs_at_startup", v,
                                       "VCPUs_at_startup must not exceed VCPUs_max.");
            goto fail;
        }
        db_set_int(txn, vm, F_VM_VCPUS_AT_STARTUP, value);
    }
    return db_commit(txn, errp);
fail:
    db_abort(txn);
    return false;
}

bool ops_vm_set_VCPUs_max(OpsCtx *ctx, const char *self, const XsValue *value, XsError **errp)
{
    return set_vcpus(ctx, self, value->i, true, errp);
}

bool ops_vm_set_VCPUs_at_startup(OpsCtx *ctx, const char *self, const XsValue *value,
                                 XsError **errp)
{
    return set_vcpus(ctx, self, value->i, false, errp);
}

static bool set_nonnegative(OpsCtx *ctx, const char *self, int field, const char *name,
                            int64_t value, XsError **errp)
{
    if (value < 0) {
        char v[24];
        snprintf(v, sizeof(v), "%" PRId64, value);
        xs_err_invalid_value(errp, name, v);
        return false;
    }
    DbTxn *txn = db_begin(ctx->db);
    db_set_int(txn, db_get_class(ctx->db, XS_CLASS_VM, self), field, value);
    return db_commit(txn, errp);
}

bool ops_vm_set_start_delay(OpsCtx *ctx, const char *self, const XsValue *value, XsError **errp)
{
    return set_nonnegative(ctx, self, F_VM_START_DELAY, "start_delay", value->i, errp);
}

bool ops_vm_set_shutdown_delay(OpsCtx *ctx, const char *self, const XsValue *value,
                               XsError **errp)
{
    return set_nonnegative(ctx, self, F_VM_SHUTDOWN_DELAY, "shutdown_delay", value->i, errp);
}

bool ops_vm_set_order(OpsCtx *ctx, const char *self, const XsValue *value, XsError **errp)
{
    return set_nonnegative(ctx, self, F_VM_ORDER, "order", value->i, errp);
}

static const char *const bios_keys[] = {
    "bios-vendor",          "bios-version",          "system-manufacturer",
    "system-product-name",  "system-version",        "system-serial-number",
    "baseboard-manufacturer", "baseboard-product-name", "baseboard-version",
    "baseboard-serial-number", "baseboard-asset-tag", "baseboard-location-in-chassis",
    "enclosure-asset-tag",  "hp-rombios",            "oem-1",
    "oem-2",
};

bool ops_vm_set_bios_strings(OpsCtx *ctx, const char *self, const XsValue *value, XsError **errp)
{
    for (uint32_t i = 0; i < value->n; i++) {
        const char *k = xv_struct_key(value, i);
        const char *v = xv_struct_val(value, i)->s;
        bool known = false;
        for (size_t j = 0; j < ARRAY_SIZE(bios_keys); j++)
            known |= strcmp(k, bios_keys[j]) == 0;
        if (!known || strlen(v) > BIOS_STRING_MAX) {
            xs_err_invalid_value(errp, k, v);
            return false;
        }
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
                xs_err_invalid_value(errp, k, v);
                return false;
            }
    }
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, self);
    if (vm->fields[F_VM_BIOS_STRINGS].n > 0) {
        db_abort(txn);
        xs_err_vm_bios_strings_already_set(errp);
        return false;
    }
    db_set(txn, vm, F_VM_BIOS_STRINGS, xv_copy(value));
    return db_commit(txn, errp);
}

/* ---- create, destroy, generic setters -------------------------------------- */

bool ops_vm_new_metrics(DbTxn *txn, DbObj *vm, XsError **errp)
{
    DbObj *m = db_create(txn, XS_CLASS_VM_METRICS, NULL, NULL, errp);
    if (!m)
        return false;
    db_set_int(txn, m, F_VM_METRICS_MEMORY_ACTUAL, 0);
    db_set_int(txn, m, F_VM_METRICS_VCPUS_NUMBER, 0);
    db_set_str(txn, vm, F_VM_METRICS, m->ref);
    return true;
}

static bool create_fixup(OpsCtx *ctx, DbTxn *txn, DbObj *vm, XsError **errp)
{
    MemLimits m = mem_of(vm);
    if (!ops_vm_check_memory(m.static_min, m.dynamic_min, m.dynamic_max, m.static_max, errp))
        return false;
    int64_t max = db_int(vm, F_VM_VCPUS_MAX), start = db_int(vm, F_VM_VCPUS_AT_STARTUP);
    if (start < 1 || start > max) {
        char v[24];
        snprintf(v, sizeof(v), "%" PRId64, start);
        xs_err_value_not_supported(errp, "VCPUs_at_startup", v,
                                   "VCPUs_at_startup must be between 1 and VCPUs_max.");
        return false;
    }
    if (max > MAX_VCPUS) {
        xs_err_vm_too_many_vcpus(errp, vm->ref);
        return false;
    }
    db_set_enum(txn, vm, F_VM_POWER_STATE, VM_POWER_STATE_HALTED);
    db_set_int(txn, vm, F_VM_DOMID, -1);
    if (!ops_vm_new_metrics(txn, vm, errp))
        return false;
    ops_vm_update_allowed(txn, vm);
    return true;
}

bool ops_vm_create(OpsCtx *ctx, const XsValue *args, char **ret, XsError **errp)
{
    return ops_create_from_record(ctx, &xs_class_VM, args, create_fixup, ret, errp);
}

void ops_vm_delete_records(DbTxn *txn, DbObj *vm)
{
    Db *db = db_txn_db(txn);
    static const int children[] = {F_VM_VBDS, F_VM_VIFS, F_VM_CONSOLES};
    for (size_t c = 0; c < ARRAY_SIZE(children); c++) {
        /* Deleting changes the backref list: take from the end. */
        size_t n;
        while ((n = db_backref_count(vm, children[c])) > 0)
            db_delete(txn, db_backref(vm, children[c], n - 1));
    }
    DbObj *m = db_get_class(db, XS_CLASS_VM_METRICS, db_str(vm, F_VM_METRICS));
    if (m)
        db_delete(txn, m);
    DbObj *g = db_get_class(db, XS_CLASS_VM_GUEST_METRICS, db_str(vm, F_VM_GUEST_METRICS));
    if (g)
        db_delete(txn, g);
    db_delete(txn, vm);
}

bool ops_vm_destroy(OpsCtx *ctx, const char *self, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, self);
    if (db_bool(vm, F_VM_IS_DEFAULT_TEMPLATE)) {
        db_abort(txn);
        xs_err_vm_cannot_delete_default_template(errp, self);
        return false;
    }
    if (db_bool(vm, F_VM_IS_CONTROL_DOMAIN)) {
        db_abort(txn);
        xs_err_permission_denied(errp, "The control domain stands for the host itself and "
                                       "cannot be destroyed.");
        return false;
    }
    if (!ops_vm_require_power_state(
            vm, (1u << VM_POWER_STATE_HALTED) | (1u << VM_POWER_STATE_SUSPENDED), errp)) {
        db_abort(txn);
        return false;
    }
    const XsValue *cur = &vm->fields[F_VM_CURRENT_OPERATIONS];
    if (cur->n) {
        xs_err_other_operation_in_progress(errp, "VM", self, xv_struct_val(cur, 0)->s,
                                           xv_struct_key(cur, 0));
        db_abort(txn);
        return false;
    }
    char uuid[VMM_UUID_LEN + 1];
    snprintf(uuid, sizeof(uuid), "%s", db_str(vm, F_VM_UUID));
    ops_vm_delete_records(txn, vm);
    if (!db_commit(txn, errp))
        return false;
    /* Its logs and sockets go with it. */
    vmm_cleanup(ctx->env->run_dir, uuid, NULL);
    return true;
}

bool ops_vm_after_set(OpsCtx *ctx, DbTxn *txn, DbObj *vm, int field, XsError **errp)
{
    switch (field) {
    case F_VM_IS_A_TEMPLATE:
        if (db_bool(vm, F_VM_IS_A_TEMPLATE) &&
            !ops_vm_require_power_state(vm, 1u << VM_POWER_STATE_HALTED, errp))
            return false;
        if (!db_bool(vm, F_VM_IS_A_TEMPLATE) && db_bool(vm, F_VM_IS_DEFAULT_TEMPLATE)) {
            xs_err_operation_not_allowed(
                errp, "A built-in template cannot be turned into a VM; clone it instead.");
            return false;
        }
        ops_vm_update_allowed(txn, vm);
        return true;
    case F_VM_NAME_LABEL:
        if (db_bool(vm, F_VM_IS_CONTROL_DOMAIN)) {
            xs_err_permission_denied(errp, "The control domain is named after its host and "
                                           "cannot be renamed.");
            return false;
        }
        return true;
    default:
        return true;
    }
}

static bool allowed_devices(OpsCtx *ctx, const char *vmref, int backfield, int devfield, int max,
                            XsValue **ret)
{
    bool used[MAX_VBD_DEVICES + 1] = {false};
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, vmref);
    size_t n = vm ? db_backref_count(vm, backfield) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *d = db_str(db_backref(vm, backfield, i), devfield);
        char *end;
        long v = strtol(d, &end, 10);
        if (*d && !*end && v >= 0 && v < max)
            used[v] = true;
    }
    db_read_unlock(ctx->db);
    XsValue *a = xv_array();
    for (int i = 0; i < max; i++)
        if (!used[i])
            xv_array_push(a, xv_string_take(xasprintf("%d", i)));
    *ret = a;
    return true;
}

bool ops_vm_get_allowed_VBD_devices(OpsCtx *ctx, const char *vm, XsValue **ret, XsError **errp)
{
    return allowed_devices(ctx, vm, F_VM_VBDS, F_VBD_USERDEVICE, MAX_VBD_DEVICES, ret);
}

bool ops_vm_get_allowed_VIF_devices(OpsCtx *ctx, const char *vm, XsValue **ret, XsError **errp)
{
    return allowed_devices(ctx, vm, F_VM_VIFS, F_VIF_DEVICE, MAX_VIF_DEVICES, ret);
}
