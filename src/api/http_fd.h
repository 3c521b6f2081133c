/*
 * Files handed over by local root instead of their bytes, for the import
 * and export handlers (vdi_http.c, xva_http.c).
 *
 * A request with "Upgrade: hyperxe-fd" from local root on the unix socket is
 * answered "101 Switching Protocols"; the client then sends one byte with its
 * open file attached (SCM_RIGHTS), the handler does the import or export on
 * that file, records the outcome in the task and answers one line, "OK" or
 * "ERROR <code>", before the connection closes. The file must be a regular
 * file open for reading (import) or for writing without O_APPEND (export):
 * the rights the kernel granted the client when it opened the file, nothing
 * more. Anyone else asking for the switch is refused (the bytes must then
 * travel). This module only speaks the protocol; it does no import or export.
 */
#ifndef HX_API_HTTP_FD_H
#define HX_API_HTTP_FD_H

#include <stdbool.h>

#include "api/http.h"
#include "api/http_call.h"

#define HTTP_FD_UPGRADE "hyperxe-fd"

/* The request asks to hand a file over. */
bool http_fd_wanted(HttpRequest *req);
/* The request may (local root on the unix socket); else PERMISSION_DENIED. */
bool http_fd_allowed(HttpRequest *req, XsError **errp);
/*
 * Replies with the switch. ctx (the request's state; req->state is cleared)
 * then belongs to the upgraded connection, which runs fn on a thread of its
 * own and frees ctx with free_fn afterwards (also when the switch never
 * happens). The request is gone by then: call->peer is pointed at peer, the
 * state's own copy of the client's address.
 */
void http_fd_reply(HttpRequest *req, HttpReply *reply, HttpUpgradeFn fn, HttpStreamFree free_fn,
                   void *ctx, ApiHttpCall *call, char peer[64]);
/* The work on the handed-over file (in fn): the task's result, or NULL with *errp. */
typedef XsValue *(*HttpFdWork)(void *ctx, int fd, XsError **errp);
/* The XenAPI error for a descriptor that cannot be used (why says what is wrong). */
typedef void (*HttpFdRefusal)(XsError **errp, const char *why);

/*
 * The whole transfer after the switch, for the HttpUpgradeFn of a handler:
 * receives the client's descriptor (within 30 s; exactly one, a regular file
 * with the access needed, nothing else sent: else refuse() names why), runs
 * work on it while a watch cancels call's task if the client goes away
 * (xe interrupted: the work stops and leaves nothing behind, as when a
 * streamed transfer is cut off), ends call with the outcome (*call_open
 * becomes false) and answers the client one line.
 */
void http_fd_serve(int sock, size_t extra_len, bool for_writing, ApiHttpCall *call,
                   bool *call_open, HttpFdRefusal refuse, HttpFdWork work, void *ctx);

#endif
