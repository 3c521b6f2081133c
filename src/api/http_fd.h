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
/*
 * In fn: the client's descriptor (after at most 30 s), checked; -1 with
 * *why set (the client sent something else, several or none, a file that
 * is not regular, or without the access needed). extra: what the client
 * sent after its request (must be nothing).
 */
int http_fd_receive(int sock, size_t extra_len, bool for_writing, const char **why);
/* In fn, at the end: the outcome line for the client. */
void http_fd_answer(int sock, const XsError *err);

/*
 * In fn, around the work: a thread that watches sock and cancels call's task
 * if the client goes away meanwhile (xe interrupted), so that the work stops
 * and leaves nothing behind, as when a streamed transfer is cut off.
 */
typedef struct HttpFdWatch HttpFdWatch;
HttpFdWatch *http_fd_watch_start(int sock, ApiHttpCall *call);
/* Stops and frees the watch (accepts NULL). */
void http_fd_watch_stop(HttpFdWatch *w);

#endif
