/*
 * VM export and import as XVA files (the /export, /export_metadata,
 * /import and /import_metadata HTTP handlers, and VM.import), and the
 * import of a single disk image as a new VM.
 *
 * Exports produce the XVA as a byte stream that the caller pulls (an HTTP
 * reply); imports take the file as pushed chunks (an HTTP upload). Both run
 * the container code (formats/xva.h) on a thread of their own and keep
 * memory constant whatever the size; neither ever makes a temporary copy
 * of the file. Progress and cancellation follow ctx's task. An import
 * creates its VMs, VBDs, VIFs and VDIs in one transaction once every disk
 * has been received; whatever fails before leaves nothing behind.
 */
#ifndef HX_OPS_VM_XVA_H
#define HX_OPS_VM_XVA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "formats/xva.h"
#include "ops/ops.h"
#include "util/strbuf.h"

/* The xapi version our ova.xml claims: XenServer 7.0's (xapi 1.9), so that
 * every XenServer from 7.0 on and every XCP-ng accepts our files (xapi
 * refuses exports from a newer xapi than its own). */
#define HX_XVA_XAPI_MAJOR 1
#define HX_XVA_XAPI_MINOR 9
/* The newest xapi whose files we read (newer: IMPORT_INCOMPATIBLE_VERSION).
 * We read every field we know and ignore the others, so only versions no
 * xapi will reach for years are refused. */
#define HX_XVA_IMPORT_MAX_MAJOR 99
#define HX_XVA_IMPORT_MAX_MINOR 999

/* The virtual size of the disk made from a version-1 vdi of size bytes:
 * rounded up to a whole sector (xe streams it padded with zeros). */
static inline uint64_t xva_v1_disk_size(uint64_t size)
{
    return (size + 511) / 512 * 512;
}

/* ---- export ---------------------------------------------------------------------------- */

typedef struct OpsVmExportOptions {
    XvaCompression compression;
    bool preserve_power_state; /* a suspended VM stays suspended, with its memory image */
    bool metadata_only;        /* ova.xml alone (/export_metadata, xe ... metadata=true) */
    bool include_snapshots;    /* metadata exports: the VM's snapshots too */
} OpsVmExportOptions;

typedef struct OpsVmExport OpsVmExport;

/*
 * Starts exporting vm (a VM that is halted or suspended, a template or a
 * snapshot; any VM for a metadata export). Marks the VM and its disks busy
 * until ops_vm_export_finish. ctx must stay valid until then.
 */
OpsVmExport *ops_vm_export_begin(OpsCtx *ctx, const char *vm, const OpsVmExportOptions *o,
                                 XsError **errp);
/* Size of the stream if known in advance (metadata exports), else -1. */
int64_t ops_vm_export_size(const OpsVmExport *e);
/* The next bytes: > 0, 0 at the end, -1 when the export failed. */
ssize_t ops_vm_export_read(OpsVmExport *e, char *buf, size_t max);
/* Ends the export (early if the reader went away) and frees e; false with
 * *errp unless the whole stream was produced and read. */
bool ops_vm_export_finish(OpsVmExport *e, XsError **errp);
/* "name.xva" for the Content-Disposition of the reply (a static buffer per
 * export; valid until finish). */
const char *ops_vm_export_filename(const OpsVmExport *e);

/*
 * The same export written straight into fd, on the calling thread (no pipe,
 * no copy): a regular file that a local client handed over, whose content
 * is replaced. Returns when the file is complete (or the export failed, the
 * file then holds what was written so far); marks, progress and
 * cancellation as above.
 */
bool ops_vm_export_fd(OpsCtx *ctx, const char *vm, const OpsVmExportOptions *o, int fd,
                      XsError **errp);

/* The ova.xml of an export of vm, as bytes (tests, and metadata). */
bool ops_vm_export_ova_xml(OpsCtx *ctx, const char *vm, const OpsVmExportOptions *o,
                           StrBuf *out, XsError **errp);

/* ---- import ------------------------------------------------------------------------------ */

typedef enum {
    OPS_IMPORT_XVA,      /* an XVA (version 2; or a version-1 ova.xml with its disks as members) */
    OPS_IMPORT_METADATA, /* ova.xml alone; disks are found, not created (/import_metadata) */
    OPS_IMPORT_IMAGE,    /* one disk as a raw VDI tar stream ("vdi/NNNNNNNN"): a new VM around it */
    OPS_IMPORT__MAX
} OpsImportKind;

/* A VM made around a disk image (OPS_IMPORT_IMAGE). */
typedef struct OpsImageVm {
    const char *name_label;   /* NULL: "Imported VM" */
    int64_t virtual_size;     /* of the disk (> 0) */
    int64_t vcpus;            /* 0: 1 */
    int64_t memory;           /* bytes; 0: 1 GiB */
    const char *network;      /* network ref; NULL: the default network; "" : no VIF */
    const char *disk_bus;     /* "ide" (default), "virtio", "scsi" */
    const char *source;       /* what the disk was, for the VM's description ("image.vhd") */
} OpsImageVm;

typedef struct OpsVmImportOptions {
    OpsImportKind kind;
    const char *sr;       /* target SR ref; NULL: the pool's default SR */
    bool restore;         /* keep MACs (and the VM's identity) */
    bool force;           /* accept checksum errors */
    OpsImageVm image;     /* OPS_IMPORT_IMAGE */
} OpsVmImportOptions;

typedef struct OpsVmImport OpsVmImport;

/* Starts an import of a stream of length bytes (-1 if unknown). */
OpsVmImport *ops_vm_import_begin(OpsCtx *ctx, const OpsVmImportOptions *o, int64_t length,
                                 XsError **errp);
/* The next bytes of the file; false once the import has failed (finish
 * tells why) and the rest of the stream can be dropped. */
bool ops_vm_import_data(OpsVmImport *im, const void *data, size_t len);
/* The stream is complete: waits for the import to end. On success *result
 * is the set of the new VMs' refs (the XenAPI "VM ref set"; snapshots
 * excluded). Frees im. */
bool ops_vm_import_finish(OpsVmImport *im, XsValue **result, XsError **errp);
/* The stream was cut off: undoes everything. Frees im. */
void ops_vm_import_abort(OpsVmImport *im);

/*
 * The import of the XVA (or ova.xml tar) in fd, read from its start on the
 * calling thread: a regular file that a local client handed over. o->kind
 * is OPS_IMPORT_XVA or OPS_IMPORT_METADATA. As ops_vm_import_finish.
 */
bool ops_vm_import_fd(OpsCtx *ctx, const OpsVmImportOptions *o, int fd, XsValue **result,
                      XsError **errp);

#endif
