/*
 * Method dispatch. A call "Class.message" (optionally "Async.Class.message")
 * is checked in this order, as xapi does: the class and message exist
 * (MESSAGE_METHOD_UNKNOWN), the session is valid (SESSION_INVALID), the
 * number of parameters (MESSAGE_PARAMETER_COUNT_MISMATCH), the caller's role
 * (RBAC_PERMISSION_DENIED), the parameter types (FIELD_TYPE_ERROR) and the
 * objects they refer to (HANDLE_INVALID). Then either the generated wrapper
 * of an explicit message runs, or one of the implicit messages every class
 * has (get_all, get_record, get_<field>, set_<field>, ...), implemented
 * here once for all classes over the database.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api-internal.h"
#include "model/where.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* ---- writing records ------------------------------------------------------ */

void api_write_field(XvWriter *w, const DbObj *o, int field)
{
    XsValue scratch = {0};
    xvw_value(w, db_field(o, field, &scratch));
    xv_clear(&scratch);
}

void api_write_record(XvWriter *w, const DbObj *o)
{
    xvw_begin_struct(w);
    for (size_t i = 0; i < o->cls->nfields; i++) {
        if (o->cls->fields[i].flags & XS_FIELD_HIDDEN)
            continue;
        xvw_key(w, o->cls->fields[i].name);
        api_write_field(w, o, (int)i);
    }
    xvw_end_struct(w);
}

/* ---- implicit messages ------------------------------------------------------ */

typedef enum {
    IM_GET_ALL,
    IM_GET_ALL_RECORDS,
    IM_GET_ALL_WHERE,
    IM_GET_ALL_RECORDS_WHERE,
    IM_GET_RECORD,
    IM_GET_BY_UUID,
    IM_GET_BY_NAME_LABEL,
    IM_GET_FIELD,
    IM_SET_FIELD,
    IM_ADD_TO_MAP,
    IM_REMOVE_FROM_MAP,
    IM_ADD_TO_SET,
    IM_REMOVE_FROM_SET,
    IM_CREATE,
    IM_DESTROY,
} ImplicitKind;

typedef struct Implicit {
    ImplicitKind kind;
    const XsClass *cls;
    int field;
    size_t nargs; /* excluding the session */
    XsRole role;
    const XsType *arg_types[3];
    const char *arg_names[3];
} Implicit;

static const XsType t_string = {XS_T_STRING, "string", NULL, NULL, NULL, -1};
static const XsType t_struct = {XS_T_RECORD, "struct", NULL, NULL, NULL, -1};

static bool is_map(const XsField *f)
{
    return f->type->kind == XS_T_MAP;
}

static bool is_set(const XsField *f)
{
    return f->type->kind == XS_T_SET;
}

static bool writable(const XsField *f)
{
    return f->qual == XS_QUAL_RW || (f->flags & XS_FIELD_SETTER);
}

/* Resolves "get_power_state" etc. on cls. */
static bool find_implicit(const XsClass *cls, const char *name, Implicit *im)
{
    static const XsType t_ref_self = {XS_T_REF, "ref", NULL, NULL, NULL, -1};
    memset(im, 0, sizeof(*im));
    im->cls = cls;
    im->field = -1;
    im->role = XS_ROLE_READ_ONLY;
    if (!(cls->flags & XS_CLASS_IMPLICIT))
        return false;
#define ARG(i, t, n) (im->arg_types[i] = (t), im->arg_names[i] = (n))
    if (strcmp(name, "get_all") == 0) {
        im->kind = IM_GET_ALL;
        return true;
    }
    if (strcmp(name, "get_all_records") == 0) {
        im->kind = IM_GET_ALL_RECORDS;
        return true;
    }
    if (strcmp(name, "get_all_where") == 0 || strcmp(name, "get_all_records_where") == 0) {
        im->kind = strcmp(name, "get_all_where") == 0 ? IM_GET_ALL_WHERE : IM_GET_ALL_RECORDS_WHERE;
        im->nargs = 1;
        ARG(0, &t_string, "expr");
        return true;
    }
    if (strcmp(name, "get_record") == 0) {
        im->kind = IM_GET_RECORD;
        im->nargs = 1;
        ARG(0, &t_ref_self, "self");
        return true;
    }
    if (strcmp(name, "get_by_uuid") == 0) {
        im->kind = IM_GET_BY_UUID;
        im->nargs = 1;
        ARG(0, &t_string, "uuid");
        return true;
    }
    if (strcmp(name, "get_by_name_label") == 0 && cls->name_label_field >= 0) {
        im->kind = IM_GET_BY_NAME_LABEL;
        im->nargs = 1;
        ARG(0, &t_string, "label");
        return true;
    }
    if (strcmp(name, "create") == 0 && (cls->flags & XS_CLASS_HAS_CREATE)) {
        im->kind = IM_CREATE;
        im->nargs = 1;
        im->role = cls->create_role;
        ARG(0, &t_struct, "args");
        return true;
    }
    if (strcmp(name, "destroy") == 0 && (cls->flags & XS_CLASS_HAS_DESTROY)) {
        im->kind = IM_DESTROY;
        im->nargs = 1;
        im->role = cls->destroy_role;
        ARG(0, &t_ref_self, "self");
        return true;
    }
    static const struct {
        const char *prefix;
        ImplicitKind kind;
    } prefixes[] = {
        {"get_", IM_GET_FIELD},          {"set_", IM_SET_FIELD},
        {"add_to_", IM_ADD_TO_MAP},      {"remove_from_", IM_REMOVE_FROM_MAP},
        {"add_", IM_ADD_TO_SET},         {"remove_", IM_REMOVE_FROM_SET},
    };
    for (size_t p = 0; p < ARRAY_SIZE(prefixes); p++) {
        size_t pl = strlen(prefixes[p].prefix);
        if (strncmp(name, prefixes[p].prefix, pl) != 0)
            continue;
        int fi = xs_field_index(cls, name + pl);
        if (fi < 0)
            continue;
        const XsField *f = &cls->fields[fi];
        ImplicitKind k = prefixes[p].kind;
        im->kind = k;
        im->field = fi;
        im->arg_types[0] = &t_ref_self;
        im->arg_names[0] = "self";
        switch (k) {
        case IM_GET_FIELD:
            if (f->flags & XS_FIELD_HIDDEN)
                return false;
            im->nargs = 1;
            return true;
        case IM_SET_FIELD:
            if (!writable(f) || (f->flags & XS_FIELD_DERIVED))
                return false;
            im->nargs = 2;
            im->role = f->write_role;
            ARG(1, f->type, "value");
            return true;
        case IM_ADD_TO_MAP:
        case IM_REMOVE_FROM_MAP:
            if (!is_map(f) || !writable(f))
                return false;
            im->role = f->write_role;
            im->nargs = k == IM_ADD_TO_MAP ? 3 : 2;
            /* map keys travel as strings whatever their type */
            ARG(1, &t_string, "key");
            if (k == IM_ADD_TO_MAP)
                ARG(2, f->type->elem, "value");
            return true;
        case IM_ADD_TO_SET:
        case IM_REMOVE_FROM_SET:
            if (!is_set(f) || !writable(f))
                return false;
            im->role = f->write_role;
            im->nargs = 2;
            ARG(1, f->type->elem, "value");
            return true;
        default:
            return false;
        }
    }
#undef ARG
    return false;
}

typedef struct WhereCtx {
    const DbObj *obj;
} WhereCtx;

static char *where_get(void *vctx, const char *field)
{
    WhereCtx *ctx = vctx;
    int fi = xs_field_index(ctx->obj->cls, field);
    if (fi < 0)
        return NULL;
    XsValue scratch = {0};
    char *s = xs_value_to_plain_string(db_field(ctx->obj, fi, &scratch));
    xv_clear(&scratch);
    return s;
}

static bool check_ref(Db *db, const XsClass *cls, const char *ref, XsError **errp)
{
    if (!db_get_class(db, cls->id, ref)) {
        xs_err_handle_invalid(errp, cls->name, ref);
        return false;
    }
    return true;
}

static bool implicit_read(Api *api, const Implicit *im, XsValue *const *a, XvWriter *w,
                          XsError **errp)
{
    Db *db = api_env(api)->db;
    const XsClass *cls = im->cls;
    bool ok = true;
    WhereExpr *expr = NULL;
    if (im->kind == IM_GET_ALL_WHERE || im->kind == IM_GET_ALL_RECORDS_WHERE) {
        char *perr = NULL;
        expr = where_parse(a[0]->s, &perr);
        if (!expr) {
            xs_err_invalid_value(errp, "expr", perr ? perr : a[0]->s);
            free(perr);
            return false;
        }
    }
    db_read_lock(db);
    switch (im->kind) {
    case IM_GET_ALL:
    case IM_GET_ALL_WHERE:
    case IM_GET_ALL_RECORDS:
    case IM_GET_ALL_RECORDS_WHERE: {
        bool records = im->kind == IM_GET_ALL_RECORDS || im->kind == IM_GET_ALL_RECORDS_WHERE;
        size_t n;
        DbObj *const *objs = db_list(db, cls->id, &n);
        if (records)
            xvw_begin_struct(w);
        else
            xvw_begin_array(w);
        for (size_t i = 0; i < n; i++) {
            if (expr) {
                WhereCtx wc = {objs[i]};
                if (!where_eval(expr, where_get, &wc))
                    continue;
            }
            if (records) {
                xvw_key(w, objs[i]->ref);
                api_write_record(w, objs[i]);
            } else {
                xvw_string(w, objs[i]->ref);
            }
        }
        if (records)
            xvw_end_struct(w);
        else
            xvw_end_array(w);
        break;
    }
    case IM_GET_RECORD: {
        DbObj *o = db_get_class(db, cls->id, a[0]->s);
        if (!o) {
            xs_err_handle_invalid(errp, cls->name, a[0]->s);
            ok = false;
            break;
        }
        api_write_record(w, o);
        break;
    }
    case IM_GET_FIELD: {
        DbObj *o = db_get_class(db, cls->id, a[0]->s);
        if (!o) {
            xs_err_handle_invalid(errp, cls->name, a[0]->s);
            ok = false;
            break;
        }
        api_write_field(w, o, im->field);
        break;
    }
    case IM_GET_BY_UUID: {
        DbObj *o = db_get_by_uuid(db, cls->id, a[0]->s);
        if (!o) {
            xs_err_uuid_invalid(errp, cls->name, a[0]->s);
            ok = false;
            break;
        }
        xvw_string(w, o->ref);
        break;
    }
    case IM_GET_BY_NAME_LABEL: {
        size_t n;
        DbObj *const *objs = db_list(db, cls->id, &n);
        xvw_begin_array(w);
        for (size_t i = 0; i < n; i++)
            if (strcmp(db_str(objs[i], cls->name_label_field), a[0]->s) == 0)
                xvw_string(w, objs[i]->ref);
        xvw_end_array(w);
        break;
    }
    default:
        ok = false;
        xs_error_internal(errp, "not a read message");
    }
    db_read_unlock(db);
    where_free(expr);
    return ok;
}

static bool generic_write(OpsCtx *ctx, const Implicit *im, XsValue *const *a, XsError **errp)
{
    Db *db = ctx->db;
    const XsClass *cls = im->cls;
    const XsField *f = im->field >= 0 ? &cls->fields[im->field] : NULL;

    if (im->kind == IM_SET_FIELD && (f->flags & XS_FIELD_SETTER_CUSTOM))
        return api_custom_setter(ctx, cls, im->field, a[0]->s, a[1], errp);

    DbTxn *txn = db_begin(db);
    DbObj *o = db_get_class(db, cls->id, a[0]->s);
    if (!o) {
        xs_err_handle_invalid(errp, cls->name, a[0]->s);
        db_abort(txn);
        return false;
    }
    XsValue *newv = NULL;
    switch (im->kind) {
    case IM_SET_FIELD:
        if (f->type->kind == XS_T_REF && strcmp(a[1]->s, "OpaqueRef:NULL") != 0 &&
            !db_get_class(db, f->type->cls, a[1]->s)) {
            xs_err_handle_invalid(errp, xs_classes[f->type->cls]->name, a[1]->s);
            db_abort(txn);
            return false;
        }
        newv = xv_copy(a[1]);
        break;
    case IM_ADD_TO_MAP:
        if (xv_struct_get(&o->fields[im->field], a[1]->s)) {
            xs_err_map_duplicate_key(errp, cls->name, f->name, db_str(o, 0), a[1]->s);
            db_abort(txn);
            return false;
        }
        newv = xv_copy(&o->fields[im->field]);
        xv_struct_set(newv, a[1]->s, xv_copy(a[2]));
        break;
    case IM_REMOVE_FROM_MAP:
        newv = xv_copy(&o->fields[im->field]);
        xv_struct_remove(newv, a[1]->s);
        break;
    case IM_ADD_TO_SET:
        newv = xv_copy(&o->fields[im->field]);
        {
            bool present = false;
            for (uint32_t i = 0; i < newv->n; i++)
                if (xv_equal(&newv->items[i], a[1]))
                    present = true;
            if (!present)
                xv_array_push(newv, xv_copy(a[1]));
        }
        break;
    case IM_REMOVE_FROM_SET: {
        newv = xv_array();
        const XsValue *cur = &o->fields[im->field];
        for (uint32_t i = 0; i < cur->n; i++)
            if (!xv_equal(&cur->items[i], a[1]))
                xv_array_push(newv, xv_copy(&cur->items[i]));
        break;
    }
    default:
        break;
    }
    db_set(txn, o, im->field, newv);
    if ((cls->flags & XS_CLASS_HOOK_SET) &&
        !api_check_set_hook(ctx, cls, txn, o, im->field, errp)) {
        db_abort(txn);
        return false;
    }
    return db_commit(txn, errp);
}

static bool generic_destroy(OpsCtx *ctx, const XsClass *cls, const char *ref, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *o = db_get_class(ctx->db, cls->id, ref);
    if (!o) {
        xs_err_handle_invalid(errp, cls->name, ref);
        db_abort(txn);
        return false;
    }
    db_delete(txn, o);
    return db_commit(txn, errp);
}

static bool implicit_write(OpsCtx *ctx, const Implicit *im, XsValue *const *a, XsValue **result,
                           XsError **errp)
{
    const XsClass *cls = im->cls;
    *result = NULL;
    switch (im->kind) {
    case IM_CREATE: {
        char *ref = NULL;
        bool ok = (cls->flags & XS_CLASS_HOOK_CREATE)
                      ? api_create_hook(ctx, cls, a[0], &ref, errp)
                      : ops_create_from_record(ctx, cls, a[0], NULL, &ref, errp);
        if (ok)
            *result = xv_string_take(ref);
        else
            free(ref);
        return ok;
    }
    case IM_DESTROY:
        if (cls->flags & XS_CLASS_HOOK_DESTROY)
            return api_destroy_hook(ctx, cls, a[0]->s, errp);
        return generic_destroy(ctx, cls, a[0]->s, errp);
    default:
        return generic_write(ctx, im, a, errp);
    }
}

/* ---- the call ------------------------------------------------------------ */

typedef struct CallPlan {
    const XsMessage *msg; /* explicit message, or NULL */
    Implicit im;          /* implicit message */
    bool async;
    size_t nargs, nrequired;
    XsRole role;
} CallPlan;

static const XsType *plan_arg_type(const CallPlan *p, size_t i)
{
    return p->msg ? p->msg->params[i].type : p->im.arg_types[i];
}

static const char *plan_arg_name(const CallPlan *p, size_t i)
{
    return p->msg ? p->msg->params[i].name : p->im.arg_names[i];
}

static bool plan_is_read(const CallPlan *p)
{
    return !p->msg && p->im.kind <= IM_GET_FIELD;
}

static bool resolve(const char *method, CallPlan *p, XsError **errp)
{
    memset(p, 0, sizeof(*p));
    const char *m = method;
    if (strncmp(m, "Async.", 6) == 0) {
        p->async = true;
        m += 6;
    }
    const char *dot = strchr(m, '.');
    if (!dot) {
        xs_err_message_method_unknown(errp, method);
        return false;
    }
    char *clsname = xstrndup(m, (size_t)(dot - m));
    const XsClass *cls = xs_class_by_name(clsname);
    free(clsname);
    if (!cls) {
        xs_err_message_method_unknown(errp, method);
        return false;
    }
    p->msg = xs_message_find(m);
    if (p->msg) {
        if (p->async && !(p->msg->flags & XS_MSG_ASYNC)) {
            xs_err_message_method_unknown(errp, method);
            return false;
        }
        p->nargs = p->msg->nparams;
        p->nrequired = p->msg->nrequired;
        p->role = p->msg->role;
        return true;
    }
    if (!find_implicit(cls, dot + 1, &p->im) ||
        (p->async && p->im.kind != IM_CREATE && p->im.kind != IM_DESTROY)) {
        xs_err_message_method_unknown(errp, method);
        return false;
    }
    p->nargs = p->nrequired = p->im.nargs;
    p->role = p->im.role;
    return true;
}

typedef struct AsyncJob {
    Api *api;
    CallPlan plan;
    XsValue **args;
    size_t nargs;
    char *task;
    char *session;
    SessionInfo info;
    ApiPeer peer;
    char *peer_addr;
} AsyncJob;

static bool run_plan(Api *api, OpsCtx *ctx, const CallPlan *p, XsValue *const *args,
                     XsValue **result, XsError **errp)
{
    if (p->msg)
        return api_handlers[p->msg - xs_messages](ctx, args, result, errp);
    return implicit_write(ctx, &p->im, args, result, errp);
}

static void *async_main(void *arg)
{
    AsyncJob *job = arg;
    OpsCtx ctx = {
        .env = api_env(job->api),
        .db = api_env(job->api)->db,
        .session = job->session,
        .task = job->task,
        .role = job->info.role,
        .user = job->info.user,
        .api = job->api,
        .peer = &job->peer,
    };
    XsValue *result = NULL;
    XsError *err = NULL;
    run_plan(job->api, &ctx, &job->plan, job->args, &result, &err);
    api_task_finish(job->api, job->task, result, err);
    xv_free(result);
    xs_error_free(err);
    for (size_t i = 0; i < job->nargs; i++)
        xv_free(job->args[i]);
    free(job->args);
    free(job->task);
    free(job->session);
    free(job->peer_addr);
    api_session_info_release(&job->info);
    api_async_done(job->api);
    free(job);
    return NULL;
}

bool api_call(Api *api, const ApiPeer *peer, const char *method, XsValue *params, XvFormat fmt,
              StrBuf *out, XsError **errp)
{
    CallPlan p;
    if (!resolve(method, &p, errp))
        return false;

    bool needs_session = !(p.msg && (p.msg->flags & XS_MSG_NO_SESSION));
    size_t first = needs_session ? 1 : 0;
    SessionInfo info = {0};
    const char *session = NULL;
    if (needs_session) {
        if (params->n < 1 || params->items[0].kind != XV_STRING) {
            xs_err_session_invalid(errp, params->n ? "" : "");
            return false;
        }
        session = params->items[0].s;
        if (!api_session_check(api, session, &info, errp))
            return false;
    }
    size_t received = params->n - first;
    if (received < p.nrequired || received > p.nargs) {
        char exp[24], rec[24];
        snprintf(exp, sizeof(exp), "%zu", p.nrequired);
        snprintf(rec, sizeof(rec), "%zu", received);
        xs_err_message_parameter_count_mismatch(errp, method, exp, rec);
        api_session_info_release(&info);
        return false;
    }
    if (needs_session && info.role < p.role) {
        char *msg = xasprintf("The '%s' role is required; this session has '%s'.",
                              xs_role_name(p.role), xs_role_name(info.role));
        xs_err_rbac_permission_denied(errp, method, msg);
        free(msg);
        api_session_info_release(&info);
        return false;
    }

    /* Check and normalise the arguments; fill in defaults. */
    XsValue **args = xcalloc(p.nargs ? p.nargs : 1, sizeof(XsValue *));
    bool ok = true;
    for (size_t i = 0; i < p.nargs && ok; i++) {
        const XsType *t = plan_arg_type(&p, i);
        if (i < received) {
            args[i] = xs_value_coerce(t, &params->items[first + i], plan_arg_name(&p, i), errp);
            ok = args[i] != NULL;
        } else {
            args[i] = xs_default_value(t, p.msg->params[i].default_literal);
        }
    }
    /* Refs must name live objects of the right class (NULL is the callee's
     * business: some messages accept it). */
    if (ok) {
        Db *db = api_env(api)->db;
        db_read_lock(db);
        for (size_t i = 0; i < p.nargs && ok; i++) {
            const XsType *t = plan_arg_type(&p, i);
            int cls = t->cls >= 0 ? t->cls : (p.msg ? -1 : p.im.cls->id);
            if (t->kind != XS_T_REF || cls < 0 || strcmp(args[i]->s, "OpaqueRef:NULL") == 0)
                continue;
            /* Implicit reads report missing objects themselves. */
            if (!p.msg && plan_is_read(&p))
                continue;
            ok = check_ref(db, xs_classes[cls], args[i]->s, errp);
        }
        db_read_unlock(db);
    }

    if (ok) {
        if (!p.msg && plan_is_read(&p)) {
            XvWriter w;
            xvw_init(&w, fmt, out);
            ok = implicit_read(api, &p.im, args, &w, errp);
        } else if (p.async) {
            char *label = xstrdup(method);
            char *task = api_task_new(api, session, label, "", errp);
            free(label);
            ok = task != NULL;
            if (ok && !api_async_begin(api)) {
                xs_err_too_many_pending_tasks(errp);
                api_task_finish(api, task, NULL, *errp);
                free(task);
                ok = false;
            }
            if (ok) {
                AsyncJob *job = xnew0(AsyncJob, 1);
                job->api = api;
                job->plan = p;
                job->args = args;
                job->nargs = p.nargs;
                /* The job's own copy: the thread may finish (and free it) before the
                 * reply below is written. */
                job->task = xstrdup(task);
                job->session = xstrdup(session);
                job->info = info;
                job->peer_addr = xstrdup(peer && peer->addr ? peer->addr : "");
                job->peer.addr = job->peer_addr;
                job->peer.is_unix = peer && peer->is_unix;
                job->peer.is_root = peer && peer->is_root;
                memset(&info, 0, sizeof(info));
                args = NULL;
                pthread_t th;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&th, &attr, async_main, job) != 0) {
                    xs_error_internal(errp, "cannot start a thread for %s", method);
                    api_task_finish(api, task, NULL, *errp);
                    api_async_done(api);
                    ok = false;
                }
                pthread_attr_destroy(&attr);
                if (ok) {
                    XvWriter w;
                    xvw_init(&w, fmt, out);
                    xvw_string(&w, task);
                }
                free(task);
            }
        } else {
            OpsCtx ctx = {
                .env = api_env(api),
                .db = api_env(api)->db,
                .session = session,
                .role = needs_session ? info.role : XS_ROLE_READ_ONLY,
                .user = info.user,
                .api = api,
                .peer = peer,
            };
            XsValue *result = NULL;
            ok = run_plan(api, &ctx, &p, args, &result, errp);
            if (ok) {
                XvWriter w;
                xvw_init(&w, fmt, out);
                if (result)
                    xvw_value(&w, result);
                else
                    xvw_null(&w);
            }
            xv_free(result);
        }
    }
    if (args) {
        for (size_t i = 0; i < p.nargs; i++)
            xv_free(args[i]);
        free(args);
    }
    api_session_info_release(&info);
    return ok;
}

XsValue *api_list_methods(Api *api)
{
    static const char *const reads[] = {"get_all", "get_all_records", "get_all_records_where",
                                        "get_all_where", "get_record", "get_by_uuid"};
    XsValue *a = xv_array();
    for (size_t i = 0; i < xs_nmessages; i++) {
        if (xs_messages[i].flags & XS_MSG_HIDDEN)
            continue;
        xv_array_push_string(a, xs_messages[i].wire_name);
        if (xs_messages[i].flags & XS_MSG_ASYNC)
            xv_array_push(a, xv_string_take(xasprintf("Async.%s", xs_messages[i].wire_name)));
    }
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        const XsClass *cls = xs_classes[c];
        if (!(cls->flags & XS_CLASS_IMPLICIT))
            continue;
        for (size_t r = 0; r < ARRAY_SIZE(reads); r++)
            xv_array_push(a, xv_string_take(xasprintf("%s.%s", cls->name, reads[r])));
        if (cls->name_label_field >= 0)
            xv_array_push(a, xv_string_take(xasprintf("%s.get_by_name_label", cls->name)));
        if (cls->flags & XS_CLASS_HAS_CREATE)
            xv_array_push(a, xv_string_take(xasprintf("%s.create", cls->name)));
        if (cls->flags & XS_CLASS_HAS_DESTROY)
            xv_array_push(a, xv_string_take(xasprintf("%s.destroy", cls->name)));
        for (size_t i = 0; i < cls->nfields; i++) {
            const XsField *f = &cls->fields[i];
            if (f->flags & XS_FIELD_HIDDEN)
                continue;
            xv_array_push(a, xv_string_take(xasprintf("%s.get_%s", cls->name, f->name)));
            if (!writable(f) || (f->flags & XS_FIELD_DERIVED))
                continue;
            xv_array_push(a, xv_string_take(xasprintf("%s.set_%s", cls->name, f->name)));
            if (is_map(f)) {
                xv_array_push(a, xv_string_take(xasprintf("%s.add_to_%s", cls->name, f->name)));
                xv_array_push(a,
                              xv_string_take(xasprintf("%s.remove_from_%s", cls->name, f->name)));
            } else if (is_set(f)) {
                xv_array_push(a, xv_string_take(xasprintf("%s.add_%s", cls->name, f->name)));
                xv_array_push(a, xv_string_take(xasprintf("%s.remove_%s", cls->name, f->name)));
            }
        }
    }
    (void)api;
    return a;
}
