/*
 * Sessions: login with the root password (a salted SHA-512 crypt(3) hash is
 * all that is stored), trusted login for root on the local unix socket,
 * logout, 24-hour idle expiry, per-originator limits, and rate limiting of
 * failed logins per client address. A session is both an entry in the API's
 * own table (checked on every call, without touching the database lock for
 * writing) and a non-persistent `session` object for the XenAPI getters.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api-internal.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define AUTH_KEY "auth.root"
#define MAX_FAILURES 5
#define FAILURE_WINDOW 60
#define MAX_SESSIONS_PER_ORIGINATOR 500
#define DB_ACTIVE_UPDATE_INTERVAL 60

static char *hash_password(const char *password)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)))
        return NULL;
    struct crypt_data data;
    memset(&data, 0, sizeof(data));
    const char *h = crypt_rn(password, salt, &data, sizeof(data));
    return h && h[0] != '*' ? xstrdup(h) : NULL;
}

static bool verify_password(const char *password, const char *hash)
{
    struct crypt_data data;
    memset(&data, 0, sizeof(data));
    const char *h = crypt_rn(password, hash, &data, sizeof(data));
    if (!h || h[0] == '*')
        return false;
    size_t n = strlen(hash);
    if (strlen(h) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(h[i] ^ hash[i]);
    return diff == 0;
}

bool api_auth_init(Api *api, const char *initial_password, XsError **errp)
{
    Db *db = api->env->db;
    char *cur = db_meta_get(db, AUTH_KEY);
    if (cur) {
        free(cur);
        return true;
    }
    char *h = hash_password(initial_password);
    if (!h) {
        xs_error_internal(errp, "cannot hash the root password");
        return false;
    }
    bool ok = db_meta_set(db, AUTH_KEY, h, errp);
    free(h);
    return ok;
}

static void session_free(Session *s)
{
    free(s->ref);
    free(s->user);
    free(s->originator);
    xv_free(s->subscriptions);
    free(s);
}

/* Removes the entry and the database object. Called without api->lock. */
static void drop_session(Api *api, const char *ref)
{
    pthread_mutex_lock(&api->lock);
    Session *s = hashmap_remove(&api->sessions, ref);
    pthread_mutex_unlock(&api->lock);
    if (!s)
        return;
    DbTxn *txn = db_begin(api->env->db);
    DbObj *o = db_get_class(api->env->db, XS_CLASS_SESSION, s->ref);
    if (o)
        db_delete(txn, o);
    db_commit(txn, NULL);
    session_free(s);
}

void api_session_destroy(Api *api, const char *ref)
{
    drop_session(api, ref);
}

static char *create_session(Api *api, const char *user, bool superuser, const char *originator,
                            XsError **errp)
{
    HxEnv *env = api->env;
    DbTxn *txn = db_begin(env->db);
    DbObj *o = db_create(txn, XS_CLASS_SESSION, NULL, NULL, errp);
    if (!o) {
        db_abort(txn);
        return NULL;
    }
    if (env->host_ref)
        db_set_str(txn, o, F_SESSION_THIS_HOST, env->host_ref);
    db_set_datetime(txn, o, F_SESSION_LAST_ACTIVE, (int64_t)time(NULL));
    db_set_datetime(txn, o, F_SESSION_VALIDATION_TIME, (int64_t)time(NULL));
    db_set_bool(txn, o, F_SESSION_IS_LOCAL_SUPERUSER, superuser);
    db_set_str(txn, o, F_SESSION_ORIGINATOR, originator ? originator : "");
    char *ref = xstrdup(o->ref);
    if (!db_commit(txn, errp)) {
        free(ref);
        return NULL;
    }

    Session *s = xnew0(Session, 1);
    s->ref = xstrdup(ref);
    s->user = xstrdup(user);
    s->role = XS_ROLE_POOL_ADMIN;
    s->local_superuser = superuser;
    s->originator = xstrdup(originator ? originator : "");
    s->last_active = s->last_db_update = s->created = api_now_mono();
    s->subscriptions = xv_array();

    /* Keep at most MAX_SESSIONS_PER_ORIGINATOR: drop the oldest. */
    char *victim = NULL;
    pthread_mutex_lock(&api->lock);
    hashmap_put(&api->sessions, s->ref, s);
    size_t same = 0;
    Session *oldest = NULL;
    const char *k;
    void *v;
    for (size_t it = 0; hashmap_next(&api->sessions, &it, &k, &v);) {
        Session *x = v;
        if (strcmp(x->originator, s->originator) != 0)
            continue;
        same++;
        if (!oldest || x->last_active < oldest->last_active)
            oldest = x;
    }
    if (same > MAX_SESSIONS_PER_ORIGINATOR && oldest && oldest != s)
        victim = xstrdup(oldest->ref);
    pthread_mutex_unlock(&api->lock);
    if (victim) {
        log_info("session limit for originator '%s' reached: dropping %s", s->originator, victim);
        drop_session(api, victim);
        free(victim);
    }
    return ref;
}

char *api_session_login_local(Api *api, const char *originator, XsError **errp)
{
    return create_session(api, "root", true, originator, errp);
}

/* Returns seconds the address must still wait, or 0. */
static long login_blocked(Api *api, const char *addr)
{
    time_t now = api_now_mono();
    long wait = 0;
    pthread_mutex_lock(&api->lock);
    LoginFailures *f = hashmap_get(&api->failures, addr);
    if (f && f->blocked_until > now)
        wait = (long)(f->blocked_until - now);
    pthread_mutex_unlock(&api->lock);
    return wait;
}

static void login_failed(Api *api, const char *addr)
{
    time_t now = api_now_mono();
    pthread_mutex_lock(&api->lock);
    LoginFailures *f = hashmap_get(&api->failures, addr);
    if (!f) {
        f = xnew0(LoginFailures, 1);
        f->addr = xstrdup(addr);
        f->window_start = now;
        hashmap_put(&api->failures, f->addr, f);
    }
    if (now - f->window_start > FAILURE_WINDOW) {
        f->window_start = now;
        f->count = 0;
    }
    if (++f->count >= MAX_FAILURES) {
        int secs = 30 << (f->blocks < 5 ? f->blocks : 5);
        if (secs > 600)
            secs = 600;
        f->blocked_until = now + secs;
        f->blocks++;
        f->count = 0;
        log_warn("login: %d failed attempts from %s; refusing logins for %d s", MAX_FAILURES,
                 addr, secs);
    }
    pthread_mutex_unlock(&api->lock);
}

static void login_succeeded(Api *api, const char *addr)
{
    pthread_mutex_lock(&api->lock);
    LoginFailures *f = hashmap_remove(&api->failures, addr);
    pthread_mutex_unlock(&api->lock);
    if (f) {
        free(f->addr);
        free(f);
    }
}

bool api_session_login_with_password(OpsCtx *ctx, const char *uname, const char *pwd,
                                     const char *version, const char *originator, char **ret,
                                     XsError **errp)
{
    Api *api = api_from_ctx(ctx);
    const ApiPeer *peer = api_ctx_peer(ctx);
    const char *addr = peer && peer->addr ? peer->addr : "?";

    if (peer && peer->is_unix && peer->is_root) {
        *ret = create_session(api, "root", true, originator, errp);
        return *ret != NULL;
    }
    long wait = login_blocked(api, addr);
    if (wait > 0) {
        char *msg = xasprintf("Too many failed logins from %s; try again in %ld seconds.", addr,
                              wait);
        xs_err_session_authentication_failed(errp, uname, msg);
        free(msg);
        return false;
    }
    char *hash = db_meta_get(api->env->db, AUTH_KEY);
    bool ok = strcmp(uname, "root") == 0 && hash && verify_password(pwd, hash);
    free(hash);
    if (!ok) {
        login_failed(api, addr);
        log_info("login: authentication failure for '%s' from %s", uname, addr);
        xs_err_session_authentication_failed(errp, uname, "Authentication failure");
        return false;
    }
    login_succeeded(api, addr);
    *ret = create_session(api, "root", true, originator, errp);
    return *ret != NULL;
}

bool api_session_logout(OpsCtx *ctx, XsError **errp)
{
    Api *api = api_from_ctx(ctx);
    api_event_session_gone(api, ctx->session);
    drop_session(api, ctx->session);
    return true;
}

bool api_session_local_logout(OpsCtx *ctx, XsError **errp)
{
    return api_session_logout(ctx, errp);
}

bool api_session_change_password(OpsCtx *ctx, const char *old_pwd, const char *new_pwd,
                                 XsError **errp)
{
    Api *api = api_from_ctx(ctx);
    const ApiPeer *peer = api_ctx_peer(ctx);
    char *hash = db_meta_get(api->env->db, AUTH_KEY);
    bool trusted = peer && peer->is_unix && peer->is_root;
    bool ok = trusted || (hash && verify_password(old_pwd, hash));
    free(hash);
    if (!ok) {
        xs_err_session_authentication_failed(errp, ctx->user ? ctx->user : "root",
                                             "The old password is not correct.");
        return false;
    }
    if (!*new_pwd) {
        xs_err_invalid_value(errp, "new_pwd", "");
        return false;
    }
    char *h = hash_password(new_pwd);
    if (!h) {
        xs_error_internal(errp, "cannot hash the new password");
        return false;
    }
    ok = db_meta_set(api->env->db, AUTH_KEY, h, errp);
    free(h);
    if (ok)
        log_info("the root password was changed");
    return ok;
}

bool api_session_check(Api *api, const char *ref, SessionInfo *info, XsError **errp)
{
    time_t now = api_now_mono();
    bool expired = false, found = false, update_db = false;
    pthread_mutex_lock(&api->lock);
    Session *s = hashmap_get(&api->sessions, ref);
    if (s) {
        if (now - s->last_active > api->session_timeout) {
            expired = true;
        } else {
            found = true;
            s->last_active = now;
            if (now - s->last_db_update >= DB_ACTIVE_UPDATE_INTERVAL) {
                s->last_db_update = now;
                update_db = true;
            }
            if (info) {
                info->role = s->role;
                info->user = xstrdup(s->user);
                info->local_superuser = s->local_superuser;
            }
        }
    }
    pthread_mutex_unlock(&api->lock);
    if (expired) {
        log_info("session %s expired after %d s idle", ref, api->session_timeout);
        api_event_session_gone(api, ref);
        drop_session(api, ref);
    }
    if (!found) {
        xs_err_session_invalid(errp, ref);
        return false;
    }
    if (update_db)
        db_set_volatile(api->env->db, ref, F_SESSION_LAST_ACTIVE, xv_datetime(time(NULL)));
    return true;
}

void api_session_info_release(SessionInfo *info)
{
    free(info->user);
    memset(info, 0, sizeof(*info));
}

int api_session_reap(Api *api)
{
    time_t now = api_now_mono();
    int n = 0;
    for (;;) {
        char *victim = NULL;
        pthread_mutex_lock(&api->lock);
        const char *k;
        void *v;
        for (size_t it = 0; hashmap_next(&api->sessions, &it, &k, &v);) {
            Session *s = v;
            if (now - s->last_active > api->session_timeout) {
                victim = xstrdup(s->ref);
                break;
            }
        }
        pthread_mutex_unlock(&api->lock);
        if (!victim)
            break;
        api_event_session_gone(api, victim);
        drop_session(api, victim);
        free(victim);
        n++;
    }
    return n;
}

void api_session_set_timeout(Api *api, int seconds)
{
    pthread_mutex_lock(&api->lock);
    api->session_timeout = seconds;
    pthread_mutex_unlock(&api->lock);
}
