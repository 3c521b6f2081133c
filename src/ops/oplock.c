/*
 * Operations in progress: an object's current_operations map holds one
 * entry (task or call token -> operation) per running operation, so that a
 * conflicting call is refused with OTHER_OPERATION_IN_PROGRESS and clients
 * can see what is happening. allowed_operations follows.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/vm.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

static int current_ops_field(const XsClass *cls)
{
    return xs_field_index(cls, "current_operations");
}

void ops_update_allowed(DbTxn *txn, DbObj *obj)
{
    for (size_t i = 0; i < ops_allowed_updaters_count; i++)
        if (ops_allowed_updaters[i].cls == obj->cls->id) {
            ops_allowed_updaters[i].fn(txn, obj);
            return;
        }
}

bool ops_op_begin(OpsCtx *ctx, DbTxn *txn, DbObj *obj, const char *op, char **token,
                  XsError **errp)
{
    int f = current_ops_field(obj->cls);
    if (f < 0) {
        *token = NULL;
        return true;
    }
    const XsValue *cur = &obj->fields[f];
    if (cur->n > 0) {
        xs_err_other_operation_in_progress(errp, obj->cls->name, obj->ref,
                                           xv_struct_val(cur, 0)->s, xv_struct_key(cur, 0));
        return false;
    }
    if (ctx->task) {
        *token = xstrdup(ctx->task);
    } else {
        char u[UUID_STR_LEN];
        uuid_generate_str(u);
        *token = xasprintf("OpaqueRef:%s", u);
    }
    db_map_set(txn, obj, f, *token, op);
    ops_update_allowed(txn, obj);
    return true;
}

bool ops_op_begin_ref(OpsCtx *ctx, int cls, const char *ref, const char *op, char **token,
                      XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *o = db_get_class(ctx->db, cls, ref);
    if (!o) {
        db_abort(txn);
        xs_err_handle_invalid(errp, xs_classes[cls]->name, ref);
        return false;
    }
    if (!ops_op_begin(ctx, txn, o, op, token, errp)) {
        db_abort(txn);
        return false;
    }
    if (!db_commit(txn, errp)) {
        free(*token);
        *token = NULL;
        return false;
    }
    return true;
}

void ops_op_end_txn(DbTxn *txn, DbObj *obj, const char *token)
{
    int f = current_ops_field(obj->cls);
    if (f < 0 || !token)
        return;
    if (db_map_remove(txn, obj, f, token))
        ops_update_allowed(txn, obj);
}

void ops_op_end(OpsCtx *ctx, int cls, const char *ref, const char *token)
{
    if (!token)
        return;
    DbTxn *txn = db_begin(ctx->db);
    DbObj *o = db_get_class(ctx->db, cls, ref);
    if (o)
        ops_op_end_txn(txn, o, token);
    if (!db_commit(txn, NULL))
        log_error("cannot clear the operation %s on %s", token, ref);
}

void ops_clear_stale_operations(Db *db)
{
    DbTxn *txn = db_begin(db);
    int cleared = 0;
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        int f = current_ops_field(xs_classes[c]);
        if (f < 0)
            continue;
        size_t n;
        DbObj *const *objs = db_list(db, c, &n);
        for (size_t i = 0; i < n; i++) {
            if (objs[i]->fields[f].n == 0)
                continue;
            db_set(txn, objs[i], f, xv_struct());
            ops_update_allowed(txn, objs[i]);
            cleared++;
        }
    }
    if (db_commit(txn, NULL) && cleared)
        log_warn("cleared the operations of %d object(s) interrupted by the last shutdown",
                 cleared);
}
