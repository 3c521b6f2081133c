/*
 * The XenAPI server core, independent of the transport: method dispatch
 * (explicit messages from the generated table, implicit per-class getters,
 * setters, create/destroy and queries), sessions and their roles, tasks for
 * Async.* calls, and events. rpc.c puts it on HTTP as XML-RPC and JSON-RPC.
 */
#ifndef HX_API_API_H
#define HX_API_API_H

#include <stdbool.h>

#include "model/wire.h"
#include "ops/ops.h"
#include "util/error.h"
#include "util/strbuf.h"

typedef struct Api Api;

/* Who is calling, as the transport knows it. */
typedef struct ApiPeer {
    const char *addr;  /* client address, for login rate limiting and logs */
    bool is_unix;      /* came in on the local socket */
    bool is_root;      /* ... from a uid-0 process: trusted without password */
    const char *agent; /* User-Agent, for the session's originator */
} ApiPeer;

Api *api_new(HxEnv *env);
void api_free(Api *api);
HxEnv *api_env(Api *api);

/*
 * Calls method with params (an XV_ARRAY whose first element is the session
 * for every method but login). On success the result is written, encoded as
 * fmt, to out and true is returned; on failure *errp is set.
 */
bool api_call(Api *api, const ApiPeer *peer, const char *method, XsValue *params, XvFormat fmt,
              StrBuf *out, XsError **errp);

/* The names of every method, for system.listMethods. */
XsValue *api_list_methods(Api *api);

/* ---- sessions (session.c) ------------------------------------------------ */

typedef struct SessionInfo {
    XsRole role;
    char *user;
    bool local_superuser;
} SessionInfo;

/* Checks that ref is a live session and refreshes its idle timer. */
bool api_session_check(Api *api, const char *ref, SessionInfo *info, XsError **errp);
void api_session_info_release(SessionInfo *info);
/* Logs in without a password (HTTP handlers on the local root socket). */
char *api_session_login_local(Api *api, const char *originator, XsError **errp);
void api_session_destroy(Api *api, const char *ref);
/* Drops sessions idle for longer than the timeout; returns how many. */
int api_session_reap(Api *api);
/* Sets the password hash of root if none is stored (first start). */
bool api_auth_init(Api *api, const char *initial_password, XsError **errp);
/* Test hook: shorten the idle timeout. */
void api_session_set_timeout(Api *api, int seconds);

/* ---- tasks (task.c) ------------------------------------------------------ */

/* Creates a pending task owned by session. Returns its ref. */
char *api_task_new(Api *api, const char *session, const char *label, const char *description,
                      XsError **errp);
/* Marks a task finished: success with an XML-RPC encoded result, or failure. */
void api_task_finish(Api *api, const char *task, const XsValue *result, const XsError *err);
/* Fails every task left pending by a previous run (called at start). */
void api_task_reconcile(Api *api);
/* Removes finished tasks older than the retention time. */
void api_task_gc(Api *api);

/* ---- internal glue shared by the api files -------------------------------- */

typedef bool (*ApiHandler)(OpsCtx *ctx, XsValue *const *args, XsValue **result, XsError **errp);
extern const ApiHandler api_handlers[];

/* Per-session event registrations for event.register/next (event.c). */
void api_event_session_gone(Api *api, const char *session);

struct ApiState;
Api *api_from_ctx(OpsCtx *ctx);
const ApiPeer *api_ctx_peer(OpsCtx *ctx);

#endif
