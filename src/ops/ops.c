/*
 * Helpers shared by the ops files: task progress and cancellation, generic
 * creation from a record, and small formatting helpers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

void ops_progress(OpsCtx *ctx, double fraction)
{
    if (!ctx->task)
        return;
    if (fraction < 0)
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *t = db_get_class(db, XS_CLASS_TASK, ctx->task);
    bool update = t && fabs(db_float(t, F_TASK_PROGRESS) - fraction) >= 0.01;
    db_read_unlock(db);
    if (!update)
        return;
    DbTxn *txn = db_begin(db);
    t = db_get_class(db, XS_CLASS_TASK, ctx->task);
    if (t)
        db_set_float(txn, t, F_TASK_PROGRESS, fraction);
    db_commit(txn, NULL);
}

bool ops_cancelled(OpsCtx *ctx)
{
    if (!ctx->task)
        return false;
    db_read_lock(ctx->db);
    DbObj *t = db_get_class(ctx->db, XS_CLASS_TASK, ctx->task);
    bool c = t && db_enum(t, F_TASK_STATUS) == TASK_STATUS_TYPE_CANCELLING;
    db_read_unlock(ctx->db);
    return c;
}

char *ops_uuid_of(OpsCtx *ctx, const char *ref)
{
    db_read_lock(ctx->db);
    DbObj *o = db_get(ctx->db, ref);
    char *u = xstrdup(o ? db_str(o, 0) : "");
    db_read_unlock(ctx->db);
    return u;
}

const char *ops_power_state_lower(int state)
{
    static const char *const names[] = {"halted", "paused", "running", "suspended"};
    return state >= 0 && state < (int)ARRAY_SIZE(names) ? names[state] : "unknown";
}

bool ops_create_from_record(OpsCtx *ctx, const XsClass *cls, const XsValue *args,
                            OpsCreateFixup fixup, char **ret, XsError **errp)
{
    Db *db = ctx->db;
    XsValue **vals = xcalloc(cls->nfields, sizeof(XsValue *));
    bool ok = false;
    DbTxn *txn = NULL;
    for (size_t i = 1; i < cls->nfields; i++) {
        const XsField *f = &cls->fields[i];
        if (f->qual == XS_QUAL_RO_RUNTIME || (f->flags & XS_FIELD_DERIVED))
            continue;
        const XsValue *v = xv_struct_get(args, f->name);
        if (!v) {
            if (!f->default_literal) {
                xs_err_field_type_error(errp, f->name);
                goto out;
            }
            continue;
        }
        vals[i] = xs_value_coerce(f->type, v, f->name, errp);
        if (!vals[i])
            goto out;
    }
    txn = db_begin(db);
    for (size_t i = 1; i < cls->nfields; i++) {
        const XsField *f = &cls->fields[i];
        if (vals[i] && f->type->kind == XS_T_REF && strcmp(vals[i]->s, "OpaqueRef:NULL") != 0 &&
            !db_get_class(db, f->type->cls, vals[i]->s)) {
            xs_err_handle_invalid(errp, xs_classes[f->type->cls]->name, vals[i]->s);
            goto out;
        }
    }
    DbObj *o = db_create(txn, cls->id, NULL, NULL, errp);
    if (!o)
        goto out;
    for (size_t i = 1; i < cls->nfields; i++) {
        if (vals[i]) {
            db_set(txn, o, (int)i, vals[i]);
            vals[i] = NULL;
        }
    }
    if (fixup && !fixup(ctx, txn, o, errp))
        goto out;
    char *ref = xstrdup(o->ref);
    DbTxn *t = txn;
    txn = NULL;
    if (!db_commit(t, errp)) {
        free(ref);
        goto out;
    }
    *ret = ref;
    ok = true;
out:
    if (txn)
        db_abort(txn);
    for (size_t i = 0; i < cls->nfields; i++)
        xv_free(vals[i]);
    free(vals);
    return ok;
}
