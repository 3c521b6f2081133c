/*
 * Tasks: the objects that track Async.* calls and other long operations.
 * A task is created pending, reports progress (ops_progress, in ops/), and
 * finishes as success (with its result serialised as XML-RPC, as xapi
 * does), failure (error_info = [code, params...]) or cancelled. Tasks left
 * pending by a crash are failed at the next start; finished tasks are
 * garbage-collected after 65 minutes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api-internal.h"
#include "model/wire.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define COMPLETED_TASK_TTL (65 * 60)
#define PENDING_TASK_TTL (24 * 3600)
#define MAX_COMPLETED_TASKS 200

char *api_task_new(Api *api, const char *session, const char *label, const char *description,
                      XsError **errp)
{
    Db *db = api->env->db;
    DbTxn *txn = db_begin(db);
    DbObj *t = db_create(txn, XS_CLASS_TASK, NULL, NULL, errp);
    if (!t) {
        db_abort(txn);
        return NULL;
    }
    db_set_str(txn, t, F_TASK_NAME_LABEL, label);
    db_set_str(txn, t, F_TASK_NAME_DESCRIPTION, description);
    db_set_enum(txn, t, F_TASK_STATUS, TASK_STATUS_TYPE_PENDING);
    db_set_datetime(txn, t, F_TASK_CREATED, (int64_t)time(NULL));
    db_set_float(txn, t, F_TASK_PROGRESS, 0.0);
    XsValue *ops = xv_array();
    xv_array_push_string(ops, "cancel");
    db_set(txn, t, F_TASK_ALLOWED_OPERATIONS, ops);
    if (api->env->host_ref)
        db_set_str(txn, t, F_TASK_RESIDENT_ON, api->env->host_ref);
    if (session)
        db_map_set(txn, t, F_TASK_OTHER_CONFIG, "session", session);
    char *ref = xstrdup(t->ref);
    if (!db_commit(txn, errp)) {
        free(ref);
        return NULL;
    }
    return ref;
}

void api_task_finish(Api *api, const char *task, const XsValue *result, const XsError *err)
{
    Db *db = api->env->db;
    DbTxn *txn = db_begin(db);
    DbObj *t = db_get_class(db, XS_CLASS_TASK, task);
    if (!t) {
        /* destroyed while running: nothing to report to */
        db_abort(txn);
        return;
    }
    bool cancelling = db_enum(t, F_TASK_STATUS) == TASK_STATUS_TYPE_CANCELLING;
    if (err) {
        XsValue *info = xv_array();
        xv_array_push_string(info, err->code);
        for (size_t i = 0; i < err->nparams; i++)
            xv_array_push_string(info, err->params[i]);
        db_set(txn, t, F_TASK_ERROR_INFO, info);
        db_set_enum(txn, t, F_TASK_STATUS,
                    cancelling && xs_error_is(err, "TASK_CANCELLED") ? TASK_STATUS_TYPE_CANCELLED
                                                                      : TASK_STATUS_TYPE_FAILURE);
    } else {
        StrBuf sb = STRBUF_INIT;
        if (result)
            xv_to_xmlrpc(&sb, result);
        db_set_str(txn, t, F_TASK_RESULT, sb.buf);
        strbuf_release(&sb);
        db_set_enum(txn, t, F_TASK_STATUS, TASK_STATUS_TYPE_SUCCESS);
    }
    db_set_float(txn, t, F_TASK_PROGRESS, 1.0);
    db_set_datetime(txn, t, F_TASK_FINISHED, (int64_t)time(NULL));
    db_set(txn, t, F_TASK_ALLOWED_OPERATIONS, xv_array());
    if (!db_commit(txn, NULL))
        log_error("cannot record the outcome of task %s", task);
}

void api_task_reconcile(Api *api)
{
    Db *db = api->env->db;
    DbTxn *txn = db_begin(db);
    size_t n;
    DbObj *const *tasks = db_list(db, XS_CLASS_TASK, &n);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        DbObj *t = tasks[i];
        int st = db_enum(t, F_TASK_STATUS);
        if (st != TASK_STATUS_TYPE_PENDING && st != TASK_STATUS_TYPE_CANCELLING)
            continue;
        XsValue *info = xv_array();
        xv_array_push_string(info, "INTERNAL_ERROR");
        xv_array_push_string(info,
                             "hyperxed restarted while this task was running; the operation did "
                             "not complete. Check the objects it was working on and retry.");
        db_set(txn, t, F_TASK_ERROR_INFO, info);
        db_set_enum(txn, t, F_TASK_STATUS, TASK_STATUS_TYPE_FAILURE);
        db_set_datetime(txn, t, F_TASK_FINISHED, (int64_t)time(NULL));
        db_set(txn, t, F_TASK_ALLOWED_OPERATIONS, xv_array());
        failed++;
    }
    if (db_commit(txn, NULL) && failed)
        log_warn("%d task(s) interrupted by the last shutdown marked as failed", failed);
}

void api_task_gc(Api *api)
{
    Db *db = api->env->db;
    int64_t now = (int64_t)time(NULL);
    DbTxn *txn = db_begin(db);
    size_t n;
    DbObj *const *tasks = db_list(db, XS_CLASS_TASK, &n);
    size_t completed = 0;
    for (size_t i = 0; i < n; i++)
        if (db_enum(tasks[i], F_TASK_STATUS) != TASK_STATUS_TYPE_PENDING &&
            db_enum(tasks[i], F_TASK_STATUS) != TASK_STATUS_TYPE_CANCELLING)
            completed++;
    /* db_list is in creation order: the oldest come first. */
    DbObj **victims = xcalloc(n + 1, sizeof(DbObj *));
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        DbObj *t = tasks[i];
        int st = db_enum(t, F_TASK_STATUS);
        bool pending = st == TASK_STATUS_TYPE_PENDING || st == TASK_STATUS_TYPE_CANCELLING;
        if (pending) {
            if (now - db_int(t, F_TASK_CREATED) > PENDING_TASK_TTL &&
                !xv_struct_get(&t->fields[F_TASK_OTHER_CONFIG], "session"))
                victims[nv++] = t;
        } else if (now - db_int(t, F_TASK_FINISHED) > COMPLETED_TASK_TTL ||
                   completed > MAX_COMPLETED_TASKS) {
            victims[nv++] = t;
            completed--;
        }
    }
    for (size_t i = 0; i < nv; i++)
        db_delete(txn, victims[i]);
    free(victims);
    db_commit(txn, NULL);
}

/* ---- the task messages ---------------------------------------------------- */

bool api_task_create(OpsCtx *ctx, const char *label, const char *description, char **ret,
                     XsError **errp)
{
    *ret = api_task_new(api_from_ctx(ctx), ctx->session, label, description, errp);
    return *ret != NULL;
}

bool api_task_destroy(OpsCtx *ctx, const char *self, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *t = db_get_class(ctx->db, XS_CLASS_TASK, self);
    if (t)
        db_delete(txn, t);
    return db_commit(txn, errp);
}

bool api_task_cancel(OpsCtx *ctx, const char *task, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *t = db_get_class(ctx->db, XS_CLASS_TASK, task);
    int st = db_enum(t, F_TASK_STATUS);
    if (st != TASK_STATUS_TYPE_PENDING) {
        db_abort(txn);
        if (st == TASK_STATUS_TYPE_CANCELLING)
            return true;
        xs_err_operation_not_allowed(errp, "The task has already finished.");
        return false;
    }
    db_set_enum(txn, t, F_TASK_STATUS, TASK_STATUS_TYPE_CANCELLING);
    return db_commit(txn, errp);
}

bool api_task_set_status(OpsCtx *ctx, const char *self, int value, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *t = db_get_class(ctx->db, XS_CLASS_TASK, self);
    db_set_enum(txn, t, F_TASK_STATUS, value);
    if (value != TASK_STATUS_TYPE_PENDING)
        db_set_datetime(txn, t, F_TASK_FINISHED, (int64_t)time(NULL));
    return db_commit(txn, errp);
}

bool api_task_set_progress(OpsCtx *ctx, const char *self, double value, XsError **errp)
{
    if (value < 0 || value > 1) {
        xs_err_invalid_value(errp, "value", "progress must be between 0 and 1");
        return false;
    }
    DbTxn *txn = db_begin(ctx->db);
    DbObj *t = db_get_class(ctx->db, XS_CLASS_TASK, self);
    db_set_float(txn, t, F_TASK_PROGRESS, value);
    return db_commit(txn, errp);
}
