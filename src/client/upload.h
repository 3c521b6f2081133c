/*
 * Streams for xe vm-export and vm-import, beside transfer.h's plain files:
 * an HTTP PUT of a body produced while it is sent (a disk image or a
 * version-1 appliance converted on the fly: the producer writes into a
 * pipe from a thread of its own, sent with a known length or chunked), and
 * a GET into a file written in large sequential pieces (an XVA has no
 * holes worth making, so nothing is probed for zeros). Memory stays
 * constant.
 */
#ifndef HX_CLIENT_UPLOAD_H
#define HX_CLIENT_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "client/transfer.h"

/*
 * PUTs what can be read from fd (until its end) to path_query. length: the
 * exact number of bytes fd will give (Content-Length), or -1 to send the
 * body chunked. progress is called with the bytes sent and length (0 when
 * unknown); returning false stops the transfer. fd is not closed.
 */
bool xc_http_put_fd(XcConn *c, const char *path_query, int fd, int64_t length,
                    XcTransferProgress progress, void *opaque, XcTransferResult *res);

/*
 * GETs path_query into filename (created or truncated; "-" = stdout),
 * writing 1 MiB at a time. On failure the file is removed. progress as
 * above (total 0 when the length is unknown).
 */
bool xc_http_get_stream(XcConn *c, const char *path_query, const char *filename,
                        XcTransferProgress progress, void *opaque, XcTransferResult *res);

#endif
