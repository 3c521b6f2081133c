/*
 * Events: event.from (blocking until a matching change or a timeout, tokens
 * are database generations), the legacy event.register/next/unregister
 * (per-session subscriptions), get_current_id and inject. Subscriptions are
 * "*", a class name (any case) or "<class>/<ref>".
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api-internal.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define MAX_EVENT_TIMEOUT (24.0 * 3600)

typedef struct Subs {
    uint64_t mask;     /* classes subscribed as a whole; all bits for "*" */
    uint64_t refmask;  /* classes with per-object subscriptions */
    char **refs;       /* "<ref>" of per-object subscriptions */
    int *ref_cls;
    size_t nrefs;
} Subs;

static void subs_release(Subs *s)
{
    for (size_t i = 0; i < s->nrefs; i++)
        free(s->refs[i]);
    free(s->refs);
    free(s->ref_cls);
    memset(s, 0, sizeof(*s));
}

static bool subs_parse(const XsValue *classes, Subs *s, XsError **errp)
{
    memset(s, 0, sizeof(*s));
    for (uint32_t i = 0; i < classes->n; i++) {
        const char *c = classes->items[i].s;
        if (strcmp(c, "*") == 0) {
            s->mask = ~0ULL;
            continue;
        }
        const char *slash = strchr(c, '/');
        char *name = slash ? xstrndup(c, (size_t)(slash - c)) : xstrdup(c);
        const XsClass *cls = xs_class_by_name_ci(name);
        free(name);
        if (!cls || !(cls->flags & XS_CLASS_IMPLICIT) || (slash && !slash[1])) {
            xs_err_event_subscription_parse_failure(errp, c);
            subs_release(s);
            return false;
        }
        if (!slash) {
            s->mask |= 1ULL << cls->id;
        } else {
            s->refs = xreallocarray(s->refs, s->nrefs + 1, sizeof(char *));
            s->ref_cls = xreallocarray(s->ref_cls, s->nrefs + 1, sizeof(int));
            s->refs[s->nrefs] = xstrdup(slash + 1);
            s->ref_cls[s->nrefs++] = cls->id;
            s->refmask |= 1ULL << cls->id;
        }
    }
    return true;
}

static bool subs_match(const Subs *s, int cls, const char *ref)
{
    if (s->mask & (1ULL << cls))
        return true;
    for (size_t i = 0; i < s->nrefs; i++)
        if (s->ref_cls[i] == cls && strcmp(s->refs[i], ref) == 0)
            return true;
    return false;
}

typedef struct Collect {
    const Subs *subs;
    XsValue *events; /* NULL: just count */
    size_t count;
    bool with_obj_uuid;
} Collect;

static const char *op_name(DbChangeKind k)
{
    return k == DB_CHANGE_ADD ? "add" : k == DB_CHANGE_DEL ? "del" : "mod";
}

static void collect_cb(void *vctx, DbChangeKind kind, int cls, const char *ref, const DbObj *obj,
                       uint64_t gen)
{
    Collect *c = vctx;
    if (!subs_match(c->subs, cls, ref))
        return;
    c->count++;
    if (!c->events)
        return;
    XsValue *ev = xv_struct();
    xv_struct_set(ev, "id", xv_int((int64_t)gen));
    xv_struct_set(ev, "timestamp", xv_string_take(xasprintf("%" PRId64 ".000000",
                                                            (int64_t)time(NULL))));
    xv_struct_set(ev, "class", xv_string(xs_classes[cls]->lname));
    xv_struct_set(ev, "operation", xv_string(op_name(kind)));
    xv_struct_set(ev, "ref", xv_string(ref));
    if (c->with_obj_uuid)
        xv_struct_set(ev, "obj_uuid", xv_string(obj ? db_str(obj, 0) : ""));
    if (obj)
        xv_struct_set(ev, "snapshot", db_record(obj));
    xv_array_push(c->events, ev);
}

static bool parse_token(const char *token, uint64_t *out)
{
    if (!*token) {
        *out = 0;
        return true;
    }
    char *end;
    unsigned long long v = strtoull(token, &end, 10);
    if (*end && *end != ',')
        return false;
    *out = v;
    return true;
}

/* Collects the changes after since; returns how many matched. */
static size_t changes(Db *db, const Subs *subs, uint64_t since, XsValue *events, bool obj_uuid)
{
    Collect c = {subs, events, 0, obj_uuid};
    db_changes_since(db, since, subs->mask == ~0ULL ? 0 : subs->mask | subs->refmask, collect_cb,
                     &c);
    return c.count;
}

bool api_event_from(OpsCtx *ctx, const XsValue *classes, const char *token, double timeout,
                    XsValue **ret, XsError **errp)
{
    Db *db = ctx->db;
    Subs subs;
    uint64_t since;
    if (!parse_token(token, &since)) {
        xs_err_event_from_token_parse_failure(errp, token);
        return false;
    }
    if (!subs_parse(classes, &subs, errp))
        return false;
    if (!(timeout >= 0))
        timeout = 0;
    if (timeout > MAX_EVENT_TIMEOUT)
        timeout = MAX_EVENT_TIMEOUT;

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint64_t gen;
    for (;;) {
        db_read_lock(db);
        gen = db_generation(db);
        size_t n = changes(db, &subs, since, NULL, false);
        db_read_unlock(db);
        if (n)
            break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = timeout - ((double)(now.tv_sec - start.tv_sec) +
                                 (double)(now.tv_nsec - start.tv_nsec) / 1e9);
        if (left <= 0)
            break;
        db_wait_generation(db, gen, left);
    }

    XsValue *batch = xv_struct();
    XsValue *events = xv_array();
    XsValue *counts = xv_struct();
    db_read_lock(db);
    gen = db_generation(db);
    changes(db, &subs, since, events, false);
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        if (!((subs.mask | subs.refmask) & (1ULL << c)) ||
            !(xs_classes[c]->flags & XS_CLASS_IMPLICIT))
            continue;
        size_t n;
        db_list(db, c, &n);
        xv_struct_set(counts, xs_classes[c]->lname, xv_int((int64_t)n));
    }
    db_read_unlock(db);
    subs_release(&subs);
    xv_struct_set(batch, "events", events);
    xv_struct_set(batch, "valid_ref_counts", counts);
    xv_struct_set(batch, "token", xv_string_take(xasprintf("%020" PRIu64, gen)));
    *ret = batch;
    return true;
}

/* ---- legacy register/next ------------------------------------------------- */

static Session *find_session(Api *api, const char *ref)
{
    return hashmap_get(&api->sessions, ref);
}

bool api_event_register(OpsCtx *ctx, const XsValue *classes, XsError **errp)
{
    Subs check;
    if (!subs_parse(classes, &check, errp))
        return false;
    subs_release(&check);
    Api *api = api_from_ctx(ctx);
    uint64_t gen = db_generation(ctx->db);
    pthread_mutex_lock(&api->lock);
    Session *s = find_session(api, ctx->session);
    if (s) {
        if (s->subscriptions->n == 0)
            s->event_token = gen;
        for (uint32_t i = 0; i < classes->n; i++)
            if (!xv_array_contains_string(s->subscriptions, classes->items[i].s))
                xv_array_push_string(s->subscriptions, classes->items[i].s);
    }
    pthread_mutex_unlock(&api->lock);
    return true;
}

bool api_event_unregister(OpsCtx *ctx, const XsValue *classes, XsError **errp)
{
    Api *api = api_from_ctx(ctx);
    pthread_mutex_lock(&api->lock);
    Session *s = find_session(api, ctx->session);
    if (s)
        for (uint32_t i = 0; i < classes->n; i++)
            xv_array_remove_string(s->subscriptions, classes->items[i].s);
    pthread_mutex_unlock(&api->lock);
    return true;
}

bool api_event_next(OpsCtx *ctx, XsValue **ret, XsError **errp)
{
    Api *api = api_from_ctx(ctx);
    Db *db = ctx->db;
    XsValue *subs_v = NULL;
    uint64_t since = 0;
    pthread_mutex_lock(&api->lock);
    Session *s = find_session(api, ctx->session);
    if (s && s->subscriptions->n) {
        subs_v = xv_copy(s->subscriptions);
        since = s->event_token;
    }
    pthread_mutex_unlock(&api->lock);
    if (!subs_v) {
        xs_err_session_not_registered(errp, ctx->session);
        return false;
    }
    Subs subs;
    bool ok = subs_parse(subs_v, &subs, errp);
    xv_free(subs_v);
    if (!ok)
        return false;
    uint64_t gen;
    for (;;) {
        db_read_lock(db);
        gen = db_generation(db);
        size_t n = changes(db, &subs, since, NULL, true);
        db_read_unlock(db);
        if (n)
            break;
        /* Wake up periodically so a logged-out session does not wait forever. */
        db_wait_generation(db, gen, 30.0);
        if (!api_session_check(api, ctx->session, NULL, errp)) {
            subs_release(&subs);
            return false;
        }
    }
    XsValue *events = xv_array();
    db_read_lock(db);
    gen = db_generation(db);
    changes(db, &subs, since, events, true);
    db_read_unlock(db);
    subs_release(&subs);
    pthread_mutex_lock(&api->lock);
    s = find_session(api, ctx->session);
    if (s)
        s->event_token = gen;
    pthread_mutex_unlock(&api->lock);
    *ret = events;
    return true;
}

bool api_event_get_current_id(OpsCtx *ctx, int64_t *ret, XsError **errp)
{
    *ret = (int64_t)db_generation(ctx->db);
    return true;
}

bool api_event_inject(OpsCtx *ctx, const char *cls_name, const char *ref, char **ret,
                      XsError **errp)
{
    const XsClass *cls = xs_class_by_name_ci(cls_name);
    if (!cls) {
        xs_err_event_subscription_parse_failure(errp, cls_name);
        return false;
    }
    DbTxn *txn = db_begin(ctx->db);
    DbObj *o = db_get_class(ctx->db, cls->id, ref);
    if (!o) {
        db_abort(txn);
        xs_err_handle_invalid(errp, cls->name, ref);
        return false;
    }
    db_touch(txn, o);
    if (!db_commit(txn, errp))
        return false;
    *ret = xasprintf("%020" PRIu64, db_generation(ctx->db));
    return true;
}

void api_event_session_gone(Api *api, const char *session)
{
    /* Subscriptions live in the Session entry and go with it; waiting
     * event.next calls notice through api_session_check. */
    (void)api;
    (void)session;
}
