/*
 * Authentication and task tracking for HTTP handlers. See http_call.h.
 */
#include <stdlib.h>
#include <string.h>

#include "api/http_call.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

void api_http_error_reply(HttpReply *reply, unsigned status, const XsError *err)
{
    reply->status = status;
    reply->content_type = "text/plain";
    strbuf_reset(&reply->body);
    strbuf_adds(&reply->body, err->code);
    for (size_t i = 0; i < err->nparams; i++)
        strbuf_addf(&reply->body, "%s%s", i ? ", " : ": ", err->params[i]);
    strbuf_addch(&reply->body, '\n');
}

static void release(ApiHttpCall *call)
{
    if (call->temp_session && call->session)
        api_session_destroy(call->api, call->session);
    api_session_info_release(&call->info);
    free(call->session);
    free(call->task);
    memset(call, 0, sizeof(*call));
}

bool api_http_call_begin(HttpRequest *req, HttpReply *reply, const char *label, XsRole role,
                         ApiHttpCall *call)
{
    memset(call, 0, sizeof(*call));
    call->api = http_user(req);
    call->peer.addr = req->peer;
    call->peer.is_unix = req->is_unix;
    call->peer.is_root = req->peer_is_root;
    XsError *err = NULL;
    const char *sid = http_query(req, "session_id");
    if (!sid)
        sid = http_cookie(req, "session_id");
    char *user = NULL, *pw = NULL;
    if (sid) {
        call->session = xstrdup(sid);
    } else if (http_basic_auth(req, &user, &pw)) {
        /* Log in as a client would, with the same rate limiting. */
        HxEnv *env = api_env(call->api);
        OpsCtx lctx = {.env = env, .db = env->db, .api = call->api, .peer = &call->peer};
        char *ref = NULL;
        if (!api_session_login_with_password(&lctx, user, pw, "", "http", &ref, &err)) {
            free(user);
            free(pw);
            api_http_error_reply(reply, 401, err);
            http_reply_add_header(reply, "WWW-Authenticate", "Basic realm=\"xapi\"");
            xs_error_free(err);
            release(call);
            return false;
        }
        call->session = ref;
        call->temp_session = true;
    } else if (req->is_unix && req->peer_is_root) {
        call->session = api_session_login_local(call->api, "http", &err);
        call->temp_session = call->session != NULL;
    }
    free(user);
    free(pw);
    if (!call->session) {
        if (!err)
            xs_err_session_invalid(&err, "");
        api_http_error_reply(reply, 401, err);
        http_reply_add_header(reply, "WWW-Authenticate", "Basic realm=\"xapi\"");
        xs_error_free(err);
        release(call);
        return false;
    }
    if (!api_session_check(call->api, call->session, &call->info, &err)) {
        api_http_error_reply(reply, 401, err);
        xs_error_free(err);
        release(call);
        return false;
    }
    if (call->info.role < role) {
        xs_err_rbac_permission_denied(&err, label, "The session's role does not allow this.");
        api_http_error_reply(reply, 403, err);
        xs_error_free(err);
        release(call);
        return false;
    }
    HxEnv *env = api_env(call->api);
    const char *tid = http_query(req, "task_id");
    if (tid) {
        db_read_lock(env->db);
        bool known = db_get_class(env->db, XS_CLASS_TASK, tid) != NULL;
        db_read_unlock(env->db);
        if (!known) {
            xs_err_handle_invalid(&err, "task", tid);
            api_http_error_reply(reply, 404, err);
            xs_error_free(err);
            release(call);
            return false;
        }
        call->task = xstrdup(tid);
    } else {
        call->task = api_task_new(call->api, call->session, label, "", &err);
        if (!call->task) {
            api_http_error_reply(reply, 500, err);
            xs_error_free(err);
            release(call);
            return false;
        }
    }
    http_reply_add_header(reply, "task-id", call->task);
    call->ctx = (OpsCtx){
        .env = env,
        .db = env->db,
        .session = call->session,
        .task = call->task,
        .role = call->info.role,
        .user = call->info.user,
        .api = call->api,
        .peer = &call->peer,
    };
    return true;
}

void api_http_call_end(ApiHttpCall *call, const XsValue *result, const XsError *err)
{
    if (call->task)
        api_task_finish(call->api, call->task, result, err);
    release(call);
}
