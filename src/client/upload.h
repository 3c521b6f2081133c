/*
 * An HTTP PUT of a body produced while it is sent (xe vm-import of a disk
 * image or a version-1 appliance, converted on the fly): the producer
 * writes into a file descriptor (a pipe) from a thread of its own and this
 * sends what it reads, with a known length or chunked. Memory stays
 * constant. See transfer.h for plain files.
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

#endif
