/*
 * Writing the file of a new VDI from data pushed in increasing offset order
 * (an XVA import, a disk image streamed by xe): the data is converted on
 * the fly into a fresh qcow2 under the SR's temporary name, in constant
 * memory, leaving out zeros. The VDI record is created later, in the
 * caller's own transaction together with whatever else it creates, and the
 * file published after that commit; so an import that fails anywhere
 * leaves neither a record nor a file.
 *
 *   w = ops_vdi_writer_new(ctx, sr, size)      file SR, attached, not ISO
 *   ops_vdi_writer_write(w, off, buf, len)... offsets increase; gaps are zeros
 *   ops_vdi_writer_close(w)                    the file is complete (SR_FULL ...)
 *   db_begin; ops_vdi_writer_record(w, txn, spec); ...; db_commit
 *   ops_vdi_writer_publish(w)                  after the commit
 *   ops_vdi_writer_free(w)                     removes the file unless published
 *
 * No function here takes the database write lock except _new (a read) and
 * _record (inside the caller's transaction). The conversion runs on a
 * thread of its own; a failure there (disk full) is returned by the next
 * _write or by _close.
 */
#ifndef HX_OPS_VDI_STREAM_H
#define HX_OPS_VDI_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"
#include "ops/vdi.h"

typedef struct OpsVdiWriter OpsVdiWriter;

/* Starts the file of a VDI of size bytes (> 0) in SR sr_ref; the VDI's
 * uuid is chosen now (ops_vdi_writer_uuid). */
OpsVdiWriter *ops_vdi_writer_new(OpsCtx *ctx, const char *sr_ref, uint64_t size,
                                 XsError **errp);
const char *ops_vdi_writer_uuid(const OpsVdiWriter *w);
/* Bytes at offset (>= the end of the previous write; the gap reads as
 * zeros; offset + len <= size). 0, or -errno once the conversion failed
 * (then _close tells why). */
int ops_vdi_writer_write(OpsVdiWriter *w, uint64_t offset, const void *buf, size_t len);
/* The same without a copy: buf is written from where it is, and must stay
 * valid and unchanged until _close or _stop returns. At most 8 MiB are
 * queued ahead of the file. */
int ops_vdi_writer_write_ref(OpsVdiWriter *w, uint64_t offset, const void *buf, size_t len);
/* Stops the conversion and waits for it: buffers given to _write_ref are no
 * longer used when it returns. _close then reports the stop. */
void ops_vdi_writer_stop(OpsVdiWriter *w);
/* The data is complete (the rest of the disk is zeros): waits for the
 * file. SR_FULL when the SR filled up, VDI_IO_ERROR, ... */
bool ops_vdi_writer_close(OpsVdiWriter *w, XsError **errp);
/* Creates the VDI record of the closed file inside txn (spec->sr and
 * spec->virtual_size are the writer's). Returns it, or NULL with *errp. */
DbObj *ops_vdi_writer_record(OpsVdiWriter *w, DbTxn *txn, const OpsVdiSpec *spec,
                             XsError **errp);
/* After the transaction that created the record committed: the file takes
 * its final name. */
bool ops_vdi_writer_publish(OpsVdiWriter *w, XsError **errp);
/* Removes a published file again (its record could not be kept). */
void ops_vdi_writer_unpublish(OpsVdiWriter *w);
/* Stops the conversion if it still runs and removes the file unless it was
 * published. Accepts NULL. */
void ops_vdi_writer_free(OpsVdiWriter *w);

/* Bytes a VDI of that size can take at most in its SR (data and qcow2
 * metadata), for space checks. */
uint64_t ops_vdi_writer_max_bytes(uint64_t size);

#endif
