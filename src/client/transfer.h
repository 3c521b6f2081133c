/*
 * File transfers over the XenAPI HTTP handlers (xe vdi-import, vdi-export):
 * a local file PUT to, or fetched by GET from, a path of the server the
 * connection talks to, with a progress callback. Holes: a download skips
 * runs of zeros (the file stays sparse).
 */
#ifndef HX_CLIENT_TRANSFER_H
#define HX_CLIENT_TRANSFER_H

#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"

/* total 0 when unknown. Return false to stop the transfer. */
typedef bool (*XcTransferProgress)(void *opaque, uint64_t done, uint64_t total);

typedef struct XcTransferResult {
    long http_status; /* 0 if no answer */
    char *body;       /* the reply body of a PUT, or the error text (malloc'd) */
    char *error;      /* transport failure, or NULL (malloc'd) */
} XcTransferResult;

void xc_transfer_result_release(XcTransferResult *r);

/* PUT filename's content to path_query ("/import_raw_vdi?..."). */
bool xc_http_put_file(XcConn *c, const char *path_query, const char *filename,
                      XcTransferProgress progress, void *opaque, XcTransferResult *res);
/* PUT of filename's data extents only, in XenServer's chunked framing
 * (/import_raw_vdi?...&chunked=true): holes are not sent. */
bool xc_http_put_file_sparse(XcConn *c, const char *path_query, const char *filename,
                             XcTransferProgress progress, void *opaque, XcTransferResult *res);
/* GET path_query into filename (created or truncated; "-" = stdout). */
bool xc_http_get_file(XcConn *c, const char *path_query, const char *filename,
                      XcTransferProgress progress, void *opaque, XcTransferResult *res);

/* GET of path_query?...&chunked=true: the reply is in the sparse framing
 * (only non-zero runs are sent); the file gets holes for the rest. */
bool xc_http_get_file_sparse(XcConn *c, const char *path_query, const char *filename,
                             XcTransferProgress progress, void *opaque, XcTransferResult *res);

/*
 * Local root on the server's unix socket may hand the open file itself to
 * the server instead of its bytes (HTTP/1.1 Upgrade "hyperxe-fd", then the
 * descriptor as SCM_RIGHTS): the server reads or writes the file directly,
 * so no byte of it crosses the socket. xc_transfer_can_pass_fd() tells
 * whether the connection allows it. The put hands filename over for the
 * server to read (an image, an XVA); the get creates or truncates filename
 * (a regular file, not "-") and the server writes into it (images sparse).
 * path_query as for the functions above (without chunked=). progress is
 * called with total 0 about five times a second while the server works (the
 * task knows how far it is); if the client goes away, the server cancels
 * the task.
 */
bool xc_transfer_can_pass_fd(XcConn *c);
bool xc_fd_put_file(XcConn *c, const char *path_query, const char *filename,
                    XcTransferProgress progress, void *opaque, XcTransferResult *res);
bool xc_fd_get_file(XcConn *c, const char *path_query, const char *filename,
                    XcTransferProgress progress, void *opaque, XcTransferResult *res);

/* A libcurl easy handle (CURL *) with the connection's transport settings
 * and URL path_query (client.c). */
void *xc_transfer_handle(XcConn *c, const char *path_query);

#endif
