/*
 * What the two files of VM import share (vm_import.c: the plan made from
 * ova.xml, the data sinks, the creation of everything; vm_import_io.c: the
 * sources: uploads, local files, URLs, version-1 directories, disk images).
 * Nothing outside them uses this; the interface is vm_xva.h.
 */
#ifndef HX_OPS_VM_IMPORT_INT_H
#define HX_OPS_VM_IMPORT_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "formats/xva.h"
#include "formats/xva_v1.h"
#include "ops/vdi_stream.h"
#include "ops/vm_xva.h"
#include "util/hashmap.h"
#include "util/macros.h"

#define PIPE_BYTES (1u << 20)
/* ova.xml is parsed into memory whole: 16 MiB describes thousands of snapshots. */
#define MAX_OVA_XML (16u * 1024 * 1024)

typedef enum { ACT_IGNORE, ACT_CREATE, ACT_EXISTING } ImpAction;

typedef struct ImpObj {
    const char *cls_name;
    int cls; /* XS_CLASS_* or -1 */
    char *id;
    const XsValue *snap; /* the record in the file (or made up) */
    ImpAction action;
    char *ref;    /* existing object, or the created one */
    XsValue *rec; /* to create: field name -> value (references still as ids) */
    /* VMs */
    bool is_snapshot;
    /* VDIs streamed in */
    int disk;
    uint64_t size;
    OpsVdiWriter *writer;
} ImpObj;

typedef struct Importer {
    OpsCtx *ctx;
    OpsImportKind kind;
    bool restore, force;
    char *sr_ref; /* target SR (resolved when disks are planned) */
    const char *sr_given;
    OpsImageVm image;
    bool made_up; /* the objects were made here (version 1, disk image), not read */
    XsValue *doc; /* parsed ova.xml, or the made-up objects */
    ImpObj *objs;
    size_t n, alloc;
    HashMap by_id;
    ImpObj **disks;
    size_t n_disks;
    XsError *err;
    /* progress and cancel */
    atomic_bool cancel;
    bool task_cancelled;
    struct timespec last_poll;
    double base, span;
    /* result */
    XsValue *result;
} Importer;

void vm_import_init(Importer *im, OpsCtx *ctx, const OpsVmImportOptions *o);
/* Frees everything the import holds; the files of writers not published go. */
void vm_import_release(Importer *im);
/* The object a file id names, or NULL. */
ImpObj *vm_import_find(Importer *im, const char *id);
/* IMPORT_ERROR with a formatted message. */
void vm_import_error(Importer *im, XsError **errp, const char *fmt, ...) HX_PRINTF(3, 4);

/* Plans from ova.xml (either version) or, for disk images, from the made-up
 * objects; the disks to expect are then im->disks[0..n_disks). */
bool vm_import_plan(Importer *im, const char *xml, size_t len, XsError **errp);
/* A version-1 appliance as objects (then plan them with the next). */
bool vm_import_made_up_v1(Importer *im, const XvaV1Appliance *app, XsError **errp);
/* Decides the fate of every object; takes nothing, read lock held by the caller. */
bool vm_import_plan_objects(Importer *im, XsError **errp);

/* formats/xva.h sink callbacks; ctx is the Importer. */
int vm_import_sink_ova_xml(void *ctx, const char *xml, size_t len, XvaPlan *plan);
int vm_import_sink_disk_begin(void *ctx, size_t disk, const char *id, uint64_t size);
int vm_import_sink_write(void *ctx, size_t disk, uint64_t offset, const void *buf, size_t len);
int vm_import_sink_write_ref(void *ctx, size_t disk, uint64_t offset, const void *buf,
                             size_t len);
void vm_import_sink_stop(void *ctx);
int vm_import_sink_disk_end(void *ctx, size_t disk, uint64_t size);
/* Progress of the data (virtual bytes) on the task. */
void vm_import_progress(void *opaque, uint64_t done, uint64_t total);
/* The XenAPI error for a failed read of the container. */
void vm_import_map_xva_error(Importer *im, int r, const XvaError *xe, XsError **errp);

/* Everything in one transaction, then the files take their names; sets
 * im->result. */
bool vm_import_create_all(Importer *im, XsError **errp);
/* Removes the files of a failed import at once. */
void vm_import_drop_files(Importer *im);

#endif
