/*
 * The message class: alerts and notices about objects (XenServer's
 * "messages"), created by the toolstack or by clients, listed by time.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"
#include "util/xalloc.h"
#include "util/banned.h"

bool ops_message_create(OpsCtx *ctx, const char *name, int64_t priority, int cls,
                        const char *obj_uuid, const char *body, char **ret, XsError **errp)
{
    if (!*name) {
        xs_err_invalid_value(errp, "name", name);
        return false;
    }
    DbTxn *txn = db_begin(ctx->db);
    DbObj *m = db_create(txn, XS_CLASS_MESSAGE, NULL, NULL, errp);
    if (!m) {
        db_abort(txn);
        return false;
    }
    db_set_str(txn, m, F_MESSAGE_NAME, name);
    db_set_int(txn, m, F_MESSAGE_PRIORITY, priority);
    db_set_enum(txn, m, F_MESSAGE_CLS, cls);
    db_set_str(txn, m, F_MESSAGE_OBJ_UUID, obj_uuid);
    db_set_str(txn, m, F_MESSAGE_BODY, body);
    db_set_datetime(txn, m, F_MESSAGE_TIMESTAMP, (int64_t)time(NULL));
    *ret = xstrdup(m->ref);
    if (!db_commit(txn, errp)) {
        free(*ret);
        *ret = NULL;
        return false;
    }
    return true;
}

bool ops_message_destroy(OpsCtx *ctx, const char *self, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *m = db_get_class(ctx->db, XS_CLASS_MESSAGE, self);
    if (m)
        db_delete(txn, m);
    return db_commit(txn, errp);
}

static XsValue *select_messages(OpsCtx *ctx, int cls, const char *obj_uuid, int64_t since)
{
    XsValue *r = xv_struct();
    db_read_lock(ctx->db);
    size_t n;
    DbObj *const *ms = db_list(ctx->db, XS_CLASS_MESSAGE, &n);
    for (size_t i = 0; i < n; i++) {
        if (db_int(ms[i], F_MESSAGE_TIMESTAMP) <= since)
            continue;
        if (cls >= 0 && db_enum(ms[i], F_MESSAGE_CLS) != cls)
            continue;
        if (obj_uuid && strcmp(db_str(ms[i], F_MESSAGE_OBJ_UUID), obj_uuid) != 0)
            continue;
        xv_struct_set(r, ms[i]->ref, db_record(ms[i]));
    }
    db_read_unlock(ctx->db);
    return r;
}

bool ops_message_get_since(OpsCtx *ctx, int64_t since, XsValue **ret, XsError **errp)
{
    *ret = select_messages(ctx, -1, NULL, since);
    return true;
}

bool ops_message_get(OpsCtx *ctx, int cls, const char *obj_uuid, int64_t since, XsValue **ret,
                     XsError **errp)
{
    *ret = select_messages(ctx, cls, obj_uuid, since);
    return true;
}
