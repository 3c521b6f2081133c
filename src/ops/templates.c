/*
 * The built-in templates (data/templates/, turned into JSON records by
 * scripts/gen-templates.py at build time): at each start, those missing
 * from the database are created with their fixed uuids, marked
 * is_default_template. A template already there is left as it is, so that
 * changes made with template-param-set survive restarts.
 */
#include <stdlib.h>
#include <string.h>

#include "model/wire.h"
#include "ops/ops.h"
#include "ops/vm.h"
#include "ops/vm_install.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

extern const char *const ops_templates_json[];
extern const size_t ops_templates_count;

static bool make_template(DbTxn *txn, const XsValue *rec, XsError **errp)
{
    Db *db = db_txn_db(txn);
    const char *uuid = xv_struct_get_string(rec, "uuid");
    if (!uuid || !uuid_is_valid(uuid)) {
        xs_error_internal(errp, "a built-in template has no valid uuid");
        return false;
    }
    if (db_get_by_uuid(db, XS_CLASS_VM, uuid))
        return true;
    DbObj *vm = db_create(txn, XS_CLASS_VM, NULL, uuid, errp);
    if (!vm)
        return false;
    for (uint32_t i = 0; i < rec->n; i++) {
        const char *k = xv_struct_key(rec, i);
        if (strcmp(k, "uuid") == 0)
            continue;
        int f = xs_field_index(&xs_class_VM, k);
        if (f < 0) {
            xs_error_internal(errp, "built-in template %s: unknown field %s", uuid, k);
            return false;
        }
        XsValue *v = xs_value_coerce(xs_class_VM.fields[f].type, xv_struct_val(rec, i), k, errp);
        if (!v)
            return false;
        db_set(txn, vm, f, v);
    }
    char seed[UUID_STR_LEN];
    uuid_generate_str(seed);
    db_map_set(txn, vm, F_VM_OTHER_CONFIG, "mac_seed", seed);
    db_set_bool(txn, vm, F_VM_IS_DEFAULT_TEMPLATE, true);
    db_set_enum(txn, vm, F_VM_POWER_STATE, VM_POWER_STATE_HALTED);
    db_set_int(txn, vm, F_VM_DOMID, -1);
    if (!ops_vm_new_metrics(txn, vm, errp))
        return false;
    ops_vm_update_allowed(txn, vm);
    return true;
}

bool ops_templates_install(HxEnv *env, XsError **errp)
{
    DbTxn *txn = db_begin(env->db);
    size_t made = 0;
    size_t before;
    db_list(env->db, XS_CLASS_VM, &before);
    for (size_t i = 0; i < ops_templates_count; i++) {
        char *err = NULL;
        XsValue *rec = xv_from_json(ops_templates_json[i], strlen(ops_templates_json[i]), &err);
        if (!rec || rec->kind != XV_STRUCT) {
            xs_error_internal(errp, "built-in template %zu is not valid JSON: %s", i,
                              err ? err : "?");
            free(err);
            xv_free(rec);
            db_abort(txn);
            return false;
        }
        bool ok = make_template(txn, rec, errp);
        xv_free(rec);
        if (!ok) {
            db_abort(txn);
            return false;
        }
    }
    size_t after;
    db_list(env->db, XS_CLASS_VM, &after);
    made = after - before;
    if (!db_commit(txn, errp))
        return false;
    if (made)
        log_info("created %zu built-in template(s)", made);
    return true;
}
