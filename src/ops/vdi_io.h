/*
 * Moving VDI data in and out as byte streams, for the HTTP handlers
 * /import_raw_vdi and /export_raw_vdi (src/api/vdi_http.c): an upload is fed
 * chunk by chunk and converted into a fresh qcow2 that replaces the VDI's
 * file only when complete; a download is produced by a thread converting
 * the VDI's chain into the requested format. Memory stays bounded whatever
 * the size; nothing is left behind by a transfer that fails or is cut off.
 */
#ifndef HX_OPS_VDI_IO_H
#define HX_OPS_VDI_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ops/ops.h"

typedef struct OpsVdiUpload OpsVdiUpload;

/*
 * Starts replacing the content of vdi with an image in format ("raw",
 * "vhd", "vmdk", "qcow2"; NULL = raw) sent as a body of length bytes (-1 if
 * unknown). chunked: the body is XenServer's sparse framing (records of a
 * 12-byte little-endian header {offset u64, length u32} and the bytes, ended
 * by {0, 0}; gaps are zeros; hyperxe accepts it for every format, a record
 * {file length, 0} marks the length of the file). Checks the VDI (not in
 * use, big enough for a raw image, space in its SR) and marks it busy. ctx
 * must stay valid until finish or abort.
 */
OpsVdiUpload *ops_vdi_upload_begin(OpsCtx *ctx, const char *vdi, const char *format,
                                   int64_t length, bool chunked, XsError **errp);
/* Feeds the next bytes; false once the upload has failed (see finish). */
bool ops_vdi_upload_data(OpsVdiUpload *u, const void *data, size_t len);
/* The body is complete: converts, publishes and records. Frees u. */
bool ops_vdi_upload_finish(OpsVdiUpload *u, XsError **errp);
/* The transfer was cut off: removes everything made. Frees u. */
void ops_vdi_upload_abort(OpsVdiUpload *u);

typedef struct OpsVdiDownload OpsVdiDownload;

/* Starts producing vdi's content in format ("raw", "vhd", "vmdk",
 * "qcow2"). chunked: the file is sent in the sparse framing of uploads
 * (records of its non-zero runs; aligned 64 KiB blocks of zeros left out, a
 * record {file length, 0} and the end {0, 0} last). */
OpsVdiDownload *ops_vdi_download_begin(OpsCtx *ctx, const char *vdi, const char *format,
                                       bool chunked, XsError **errp);
/* Size of the stream if known in advance, else -1. */
int64_t ops_vdi_download_size(const OpsVdiDownload *d);
/* Next bytes: > 0, 0 at the end, -1 on error (then finish tells). */
ssize_t ops_vdi_download_read(OpsVdiDownload *d, char *buf, size_t max);
/* Stops (early or at the end), releases the VDI and frees d; false with
 * *errp if the conversion failed or did not reach the end. */
bool ops_vdi_download_finish(OpsVdiDownload *d, XsError **errp);

/*
 * The same transfers on a file descriptor a local client passed (the daemon
 * reads or writes the client's file itself: nothing crosses a socket). The
 * caller has checked that fd is a regular file open for reading (import) or
 * writing (export). An import takes the whole file as the image (any format;
 * one that names a parent is a delta); an export replaces the file's content
 * with the image, leaving holes where it has zeros.
 */
bool ops_vdi_import_fd(OpsCtx *ctx, const char *vdi, const char *format, int fd, XsError **errp);
bool ops_vdi_export_fd(OpsCtx *ctx, const char *vdi, const char *format, int fd, XsError **errp);

/* Content-Type and file extension of an export format; NULL if unknown. */
const char *ops_vdi_format_content_type(const char *format);

#endif
