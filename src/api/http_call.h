/*
 * XenAPI semantics for plain HTTP handlers (import, export, console): the
 * caller is authenticated by session_id (query or cookie), by HTTP Basic
 * credentials (a session made for the request and closed after it), or as
 * local root on the unix socket; the work is tracked by a task, either the
 * one the client passed as task_id or a new one, whose ref goes back in a
 * "task-id" header. Handlers then call ops functions with call->ctx.
 */
#ifndef HX_API_HTTP_CALL_H
#define HX_API_HTTP_CALL_H

#include "api/api.h"
#include "api/http.h"

typedef struct ApiHttpCall {
    Api *api;
    OpsCtx ctx;
    SessionInfo info;
    ApiPeer peer;
    char *session;
    char *task;
    bool temp_session;
} ApiHttpCall;

/*
 * Authenticates the request and opens its task (label e.g. "Export of VM").
 * On failure fills reply (401/403 with a XenAPI error in the body) and
 * returns false; call is then released.
 */
bool api_http_call_begin(HttpRequest *req, HttpReply *reply, const char *label, XsRole role,
                         ApiHttpCall *call);
/* Records the outcome in the task (result NULL for void) and releases call. */
void api_http_call_end(ApiHttpCall *call, const XsValue *result, const XsError *err);
/* Replies with the error as XenServer does for HTTP handlers. */
void api_http_error_reply(HttpReply *reply, unsigned status, const XsError *err);

#endif
