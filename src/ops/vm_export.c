/*
 * VM export as XVA (vm_xva.h): what goes into ova.xml and which disks are
 * streamed, as xapi's Export module decides it, then the stream itself.
 *
 * ova.xml: objects in xapi's class order (VM, VM_metrics,
 * VM_guest_metrics, VBD, VIF, network, VDI, SR), ids "Ref:N" from 0 in that
 * order (the VM first), every reference rewritten to an id or to
 * OpaqueRef:NULL, sets losing the members that are not exported; a normal
 * export scrubs what makes no sense elsewhere (power state, snapshot links,
 * operations, attachment). Disks: the VDIs of the VM's non-CD VBDs outside
 * ISO SRs (plus the suspend image when the power state is preserved), read
 * through the formats layer so that unallocated clusters are never read.
 *
 * The container is written by formats/xva.c on a thread of this module
 * into a pipe that the reader (the HTTP reply) drains. Nothing here knows
 * HTTP.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "formats/image.h"
#include "model/wire.h"
#include "ops/cancel_watch.h"
#include "ops/vdi.h"
#include "ops/vm_xva.h"
#include "util/cleanup.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define PIPE_BYTES (1u << 20)

/* ---- the object table -------------------------------------------------------------------- */

/* xapi's order of classes in ova.xml (Export.make_all). */
static const int class_order[] = {
    XS_CLASS_VM,  XS_CLASS_VM_METRICS, XS_CLASS_VM_GUEST_METRICS, XS_CLASS_VBD,
    XS_CLASS_VIF, XS_CLASS_NETWORK,    XS_CLASS_VDI,              XS_CLASS_SR,
};

typedef struct ExpTable {
    DbObj **objs; /* in insertion order */
    size_t n, alloc;
    char **ids;   /* parallel to the final order */
    DbObj **order;
    HashMap by_ref; /* ref -> id (owned by ids) */
    HashMap seen;   /* ref -> obj */
} ExpTable;

static void table_init(ExpTable *t)
{
    memset(t, 0, sizeof(*t));
    hashmap_init(&t->by_ref);
    hashmap_init(&t->seen);
}

static void table_release(ExpTable *t)
{
    for (size_t i = 0; t->ids && i < t->n; i++)
        free(t->ids[i]);
    free(t->ids);
    free(t->order);
    free(t->objs);
    hashmap_release(&t->by_ref);
    hashmap_release(&t->seen);
}

static void table_add(ExpTable *t, DbObj *o)
{
    if (!o || hashmap_get(&t->seen, o->ref))
        return;
    if (t->n == t->alloc) {
        t->alloc = t->alloc ? 2 * t->alloc : 16;
        t->objs = xreallocarray(t->objs, t->alloc, sizeof(DbObj *));
    }
    t->objs[t->n++] = o;
    hashmap_put(&t->seen, o->ref, o);
}

/* Puts the objects in class order and numbers them. */
static void table_number(ExpTable *t)
{
    t->order = xcalloc(t->n ? t->n : 1, sizeof(DbObj *));
    t->ids = xcalloc(t->n ? t->n : 1, sizeof(char *));
    size_t k = 0;
    for (size_t c = 0; c < ARRAY_SIZE(class_order); c++)
        for (size_t i = 0; i < t->n; i++)
            if (t->objs[i]->cls->id == class_order[c]) {
                t->order[k] = t->objs[i];
                t->ids[k] = xasprintf("Ref:%zu", k);
                hashmap_put(&t->by_ref, t->order[k]->ref, t->ids[k]);
                k++;
            }
    t->n = k;
}

static const char *table_id(const ExpTable *t, const char *ref)
{
    return ref ? hashmap_get(&t->by_ref, ref) : NULL;
}

/* A value with its references rewritten to export ids (dropped from sets
 * and maps when not exported). */
static XsValue *export_value(const ExpTable *t, const XsType *type, const XsValue *v)
{
    if (type->kind == XS_T_REF && v->kind == XV_STRING) {
        const char *id = table_id(t, v->s);
        return xv_string(id ? id : "OpaqueRef:NULL");
    }
    if (type->kind == XS_T_SET && type->elem->kind == XS_T_REF && v->kind == XV_ARRAY) {
        XsValue *a = xv_array();
        for (uint32_t i = 0; i < v->n; i++) {
            const char *id = v->items[i].kind == XV_STRING ? table_id(t, v->items[i].s) : NULL;
            if (id)
                xv_array_push_string(a, id);
        }
        return a;
    }
    if (type->kind == XS_T_MAP && v->kind == XV_STRUCT &&
        (type->key->kind == XS_T_REF || type->elem->kind == XS_T_REF)) {
        XsValue *m = xv_struct();
        for (uint32_t i = 0; i < v->n; i++) {
            const char *k = xv_struct_key(v, i);
            if (type->key->kind == XS_T_REF && !(k = table_id(t, k)))
                continue;
            const XsValue *val = xv_struct_val(v, i);
            XsValue *nv = type->elem->kind == XS_T_REF ? export_value(t, type->elem, val)
                                                       : xv_copy(val);
            xv_struct_append(m, xstrdup(k), nv);
        }
        return m;
    }
    return xv_copy(v);
}

static XsValue *export_record(const ExpTable *t, const DbObj *o)
{
    XsValue *r = xv_struct();
    for (size_t i = 0; i < o->cls->nfields; i++) {
        const XsField *f = &o->cls->fields[i];
        if (f->flags & XS_FIELD_HIDDEN)
            continue;
        XsValue scratch = {0};
        const XsValue *v = db_field(o, (int)i, &scratch);
        xv_struct_append(r, xstrdup(f->name), export_value(t, f->type, v));
        xv_clear(&scratch);
    }
    return r;
}

/* What a normal export leaves out (Export.make_* in xapi). */
static void scrub(XsValue *rec, int cls, const OpsVmExportOptions *o, bool suspended_kept)
{
    if (o->metadata_only)
        return;
    switch (cls) {
    case XS_CLASS_VM:
        if (!suspended_kept) {
            xv_struct_set(rec, "power_state", xv_string("Halted"));
            xv_struct_set(rec, "suspend_VDI", xv_string("OpaqueRef:NULL"));
        }
        xv_struct_set(rec, "is_a_snapshot", xv_bool(false));
        xv_struct_set(rec, "snapshot_of", xv_string("OpaqueRef:NULL"));
        xv_struct_set(rec, "parent", xv_string("OpaqueRef:NULL"));
        xv_struct_set(rec, "snapshots", xv_array());
        xv_struct_set(rec, "children", xv_array());
        xv_struct_set(rec, "snapshot_time", xv_datetime(0));
        xv_struct_set(rec, "transportable_snapshot_id", xv_string(""));
        xv_struct_set(rec, "snapshot_info", xv_struct());
        xv_struct_set(rec, "snapshot_metadata", xv_string(""));
        xv_struct_set(rec, "current_operations", xv_struct());
        xv_struct_set(rec, "allowed_operations", xv_array());
        xv_struct_set(rec, "consoles", xv_array());
        xv_struct_set(rec, "resident_on", xv_string("OpaqueRef:NULL"));
        xv_struct_set(rec, "scheduled_to_be_resident_on", xv_string("OpaqueRef:NULL"));
        if (!suspended_kept)
            xv_struct_set(rec, "domid", xv_int(-1));
        break;
    case XS_CLASS_VBD:
    case XS_CLASS_VIF:
        if (!suspended_kept)
            xv_struct_set(rec, "currently_attached", xv_bool(false));
        xv_struct_set(rec, "current_operations", xv_struct());
        xv_struct_set(rec, "allowed_operations", xv_array());
        break;
    case XS_CLASS_VDI: {
        /* Our chain bookkeeping means nothing to another host's storage. */
        XsValue *sm = (XsValue *)xv_struct_get(rec, "sm_config");
        if (sm && sm->kind == XV_STRUCT) {
            xv_struct_remove(sm, "vhd-parent");
            xv_struct_remove(sm, "chain-depth");
            xv_struct_remove(sm, "image-format");
        }
    }
        /* fall through */
    case XS_CLASS_SR:
    case XS_CLASS_NETWORK:
        xv_struct_set(rec, "current_operations", xv_struct());
        xv_struct_set(rec, "allowed_operations", xv_array());
        break;
    default:
        break;
    }
}

/* ---- what an export contains ------------------------------------------------------------------- */

typedef struct ExpDisk {
    char *vdi_ref;
    char *id;
    uint64_t size;
} ExpDisk;

typedef struct ExpPlan {
    StrBuf ova;
    ExpDisk *disks;
    size_t n_disks;
    char *vm_name;
} ExpPlan;

static void plan_release(ExpPlan *p)
{
    strbuf_release(&p->ova);
    for (size_t i = 0; i < p->n_disks; i++) {
        free(p->disks[i].vdi_ref);
        free(p->disks[i].id);
    }
    free(p->disks);
    free(p->vm_name);
    memset(p, 0, sizeof(*p));
}

/* xapi's rule, which importers apply to the SR records of the file: data
 * is streamed for disks outside SRs whose content type is "iso". */
static bool sr_is_iso(const DbObj *sr)
{
    return !sr || strcmp(db_str(sr, F_SR_CONTENT_TYPE), "iso") == 0;
}

/* The VDI of a VBD whose data an export carries, or NULL. */
static DbObj *streamed_vdi(Db *db, const DbObj *vbd)
{
    if (db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD || db_bool(vbd, F_VBD_EMPTY))
        return NULL;
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, db_str(vbd, F_VBD_VDI));
    if (!vdi)
        return NULL;
    DbObj *sr = db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR));
    return sr_is_iso(sr) ? NULL : vdi;
}

static void add_vm_objects(Db *db, ExpTable *t, DbObj *vm, bool with_suspend)
{
    table_add(t, vm);
    table_add(t, db_get_class(db, XS_CLASS_VM_METRICS, db_str(vm, F_VM_METRICS)));
    table_add(t, db_get_class(db, XS_CLASS_VM_GUEST_METRICS, db_str(vm, F_VM_GUEST_METRICS)));
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VBDS); i++) {
        DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
        table_add(t, vbd);
        DbObj *vdi = db_get_class(db, XS_CLASS_VDI, db_str(vbd, F_VBD_VDI));
        if (vdi && !db_bool(vbd, F_VBD_EMPTY)) {
            table_add(t, vdi);
            table_add(t, db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR)));
        }
    }
    for (size_t i = 0; i < db_backref_count(vm, F_VM_VIFS); i++) {
        DbObj *vif = db_backref(vm, F_VM_VIFS, i);
        table_add(t, vif);
        table_add(t, db_get_class(db, XS_CLASS_NETWORK, db_str(vif, F_VIF_NETWORK)));
    }
    if (with_suspend) {
        DbObj *vdi = db_get_class(db, XS_CLASS_VDI, db_str(vm, F_VM_SUSPEND_VDI));
        if (vdi) {
            table_add(t, vdi);
            table_add(t, db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR)));
        }
    }
}

static void write_version(XvWriter *w, const char *hostname)
{
    char date[32];
    xs_datetime_format((int64_t)time(NULL), date, sizeof(date));
    xvw_begin_struct(w);
    xvw_key(w, "hostname");
    xvw_string(w, hostname ? hostname : "");
    xvw_key(w, "date");
    xvw_string(w, date);
    xvw_key(w, "product_version");
    xvw_string(w, HX_VERSION);
    xvw_key(w, "product_brand");
    xvw_string(w, "hyperxe");
    xvw_key(w, "build_number");
    xvw_string(w, HX_VERSION);
    xvw_key(w, "xapi_major");
    xvw_int(w, HX_XVA_XAPI_MAJOR);
    xvw_key(w, "xapi_minor");
    xvw_int(w, HX_XVA_XAPI_MINOR);
    xvw_key(w, "export_vsn");
    xvw_int(w, 2);
    xvw_end_struct(w);
}

/* Builds ova.xml and the list of disks; read lock held. */
static bool build_plan(OpsCtx *ctx, DbObj *vm, const OpsVmExportOptions *o, ExpPlan *p,
                       XsError **errp)
{
    Db *db = ctx->db;
    bool suspended = db_enum(vm, F_VM_POWER_STATE) == VM_POWER_STATE_SUSPENDED;
    bool keep_suspend = suspended && o->preserve_power_state;
    ExpTable t;
    table_init(&t);
    add_vm_objects(db, &t, vm, keep_suspend || o->metadata_only);
    if (o->metadata_only && o->include_snapshots) {
        for (size_t i = 0; i < db_backref_count(vm, F_VM_SNAPSHOTS); i++)
            add_vm_objects(db, &t, db_backref(vm, F_VM_SNAPSHOTS, i), true);
    }
    table_number(&t);

    /* Disks: non-CD VBDs of the VM (not of its snapshots), and the suspend image. */
    if (!o->metadata_only) {
        size_t nv = db_backref_count(vm, F_VM_VBDS);
        p->disks = xcalloc(nv + 1, sizeof(ExpDisk));
        for (size_t i = 0; i <= nv; i++) {
            DbObj *vdi;
            if (i < nv) {
                vdi = streamed_vdi(db, db_backref(vm, F_VM_VBDS, i));
            } else {
                vdi = keep_suspend ? db_get_class(db, XS_CLASS_VDI, db_str(vm, F_VM_SUSPEND_VDI))
                                   : NULL;
            }
            if (!vdi)
                continue;
            bool dup = false;
            for (size_t k = 0; k < p->n_disks; k++)
                dup |= strcmp(p->disks[k].vdi_ref, vdi->ref) == 0;
            if (dup)
                continue;
            int64_t size = db_int(vdi, F_VDI_VIRTUAL_SIZE);
            if (size < 0 || (uint64_t)size > XVA_WRITE_MAX_DISK_SIZE) {
                char m[32];
                snprintf(m, sizeof(m), "%llu", (unsigned long long)XVA_WRITE_MAX_DISK_SIZE);
                xs_err_vdi_too_large(errp, vdi->ref, m);
                table_release(&t);
                return false;
            }
            ExpDisk *d = &p->disks[p->n_disks++];
            d->vdi_ref = xstrdup(vdi->ref);
            d->id = xstrdup(table_id(&t, vdi->ref));
            d->size = (uint64_t)size;
        }
    }

    XvWriter w;
    strbuf_init(&p->ova, 64 * 1024);
    xvw_init(&w, XV_FMT_XMLRPC, &p->ova);
    xvw_begin_struct(&w);
    xvw_key(&w, "version");
    write_version(&w, ctx->env->hostname);
    xvw_key(&w, "objects");
    xvw_begin_array(&w);
    for (size_t i = 0; i < t.n; i++) {
        DbObj *obj = t.order[i];
        XsValue *rec = export_record(&t, obj);
        scrub(rec, obj->cls->id, o, keep_suspend);
        xvw_begin_struct(&w);
        xvw_key(&w, "class");
        xvw_string(&w, obj->cls->name);
        xvw_key(&w, "id");
        xvw_string(&w, t.ids[i]);
        xvw_key(&w, "snapshot");
        xvw_value(&w, rec);
        xvw_end_struct(&w);
        xv_free(rec);
    }
    xvw_end_array(&w);
    xvw_end_struct(&w);
    p->vm_name = xstrdup(db_str(vm, F_VM_NAME_LABEL));
    table_release(&t);
    return true;
}

/* Checks that vm can be exported and plans it; takes the read lock. */
static bool plan_export(OpsCtx *ctx, const char *vm_ref, const OpsVmExportOptions *o, ExpPlan *p,
                        XsError **errp)
{
    memset(p, 0, sizeof(*p));
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
    bool ok = false;
    if (!vm) {
        xs_err_handle_invalid(errp, "VM", vm_ref);
    } else if (db_bool(vm, F_VM_IS_CONTROL_DOMAIN)) {
        xs_err_operation_not_allowed(errp, "The control domain stands for the host itself and "
                                           "cannot be exported.");
    } else {
        int ps = db_enum(vm, F_VM_POWER_STATE);
        if (!o->metadata_only && ps != VM_POWER_STATE_HALTED && ps != VM_POWER_STATE_SUSPENDED)
            xs_err_vm_bad_power_state(errp, vm->ref, "halted, suspended",
                                      ops_power_state_lower(ps));
        else
            ok = build_plan(ctx, vm, o, p, errp);
    }
    db_read_unlock(ctx->db);
    if (!ok)
        plan_release(p);
    return ok;
}

bool ops_vm_export_ova_xml(OpsCtx *ctx, const char *vm, const OpsVmExportOptions *o,
                           StrBuf *out, XsError **errp)
{
    ExpPlan p;
    if (!plan_export(ctx, vm, o, &p, errp))
        return false;
    strbuf_add(out, p.ova.buf, p.ova.len);
    plan_release(&p);
    return true;
}

/* ---- the stream -------------------------------------------------------------------------------- */

typedef struct ExpSource {
    ImgReader *r;
    ImgError ie;
} ExpSource;

struct OpsVmExport {
    OpsCtx *ctx;
    ExpPlan plan;
    char *vm_ref;
    char *vm_token;
    char **vdi_tokens;
    ExpSource *src;
    XvaExportDisk *disks;
    XvaExportOptions xo;
    atomic_bool cancel;
    bool task_cancelled;
    OpsCancelWatch *watch;
    struct timespec last_poll;
    int pipe_r, pipe_w;
    int mem_fd; /* metadata exports: the whole tar, made at once */
    int64_t size;
    pthread_t thread;
    bool thread_started;
    int result;
    XvaError xerr;
    XvaExportStats stats;
    bool at_end;
    char filename[64];
};

static int src_read(void *opaque, uint64_t off, size_t len, void *buf)
{
    ExpSource *s = opaque;
    ssize_t n = img_read(s->r, off, len, buf, &s->ie);
    if (n < 0)
        return (int)n;
    if ((size_t)n != len) {
        img_error_set(&s->ie, EIO, "short read at %" PRIu64 " of %s", off, img_reader_path(s->r));
        return -EIO;
    }
    return 0;
}

static ssize_t src_map(void *opaque, uint64_t off, size_t len, const void **ptr)
{
    ExpSource *s = opaque;
    ssize_t n = img_map(s->r, off, len, ptr, &s->ie);
    if (n < 0) {
        /* The block is read instead, which reports the problem. */
        memset(&s->ie, 0, sizeof(s->ie));
        return 0;
    }
    return n;
}

static int src_status(void *opaque, uint64_t off, uint64_t len, bool *allocated, uint64_t *run)
{
    ExpSource *s = opaque;
    ImgExtent e;
    int r = img_block_status(s->r, off, len, 0, &e, &s->ie);
    if (r < 0)
        return r;
    *allocated = e.kind == IMG_EXTENT_DATA;
    *run = e.length;
    return 0;
}

static void export_progress(void *opaque, uint64_t done, uint64_t total)
{
    OpsVmExport *e = opaque;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - e->last_poll.tv_sec) +
                (double)(now.tv_nsec - e->last_poll.tv_nsec) / 1e9;
    if (dt < 0.25 && done < total)
        return;
    e->last_poll = now;
    if (!e->ctx->task)
        return;
    ops_progress(e->ctx, total ? (double)done / (double)total : 1.0);
    if (ops_cancelled(e->ctx)) {
        e->task_cancelled = true;
        atomic_store(&e->cancel, true);
    }
}

static void *export_thread(void *arg)
{
    OpsVmExport *e = arg;
    e->result = xva_export(e->pipe_w, e->plan.ova.buf, e->plan.ova.len, e->disks,
                           e->plan.n_disks, &e->xo, &e->stats, &e->xerr);
    close(e->pipe_w);
    e->pipe_w = -1;
    return NULL;
}

static void release_marks(OpsVmExport *e)
{
    for (size_t i = 0; i < e->plan.n_disks; i++) {
        if (e->vdi_tokens && e->vdi_tokens[i])
            ops_op_end(e->ctx, XS_CLASS_VDI, e->plan.disks[i].vdi_ref, e->vdi_tokens[i]);
        if (e->vdi_tokens)
            free(e->vdi_tokens[i]);
    }
    free(e->vdi_tokens);
    e->vdi_tokens = NULL;
    if (e->vm_token)
        ops_op_end(e->ctx, XS_CLASS_VM, e->vm_ref, e->vm_token);
    free(e->vm_token);
    e->vm_token = NULL;
}

static void export_free(OpsVmExport *e)
{
    release_marks(e);
    for (size_t i = 0; e->src && i < e->plan.n_disks; i++)
        img_reader_free(e->src[i].r);
    free(e->src);
    free(e->disks);
    if (e->pipe_r >= 0)
        close(e->pipe_r);
    if (e->pipe_w >= 0)
        close(e->pipe_w);
    if (e->mem_fd >= 0)
        close(e->mem_fd);
    plan_release(&e->plan);
    free(e->vm_ref);
    free(e);
}

/* An export with its plan made, the VM and its disks marked and opened:
 * everything but where the stream goes. */
static OpsVmExport *export_prepare(OpsCtx *ctx, const char *vm, const OpsVmExportOptions *o,
                                   XsError **errp)
{
    OpsVmExport *e = xnew0(OpsVmExport, 1);
    e->ctx = ctx;
    e->pipe_r = e->pipe_w = e->mem_fd = -1;
    e->size = -1;
    e->vm_ref = xstrdup(vm);
    atomic_init(&e->cancel, false);
    snprintf(e->filename, sizeof(e->filename), "export.xva");
    if (!plan_export(ctx, vm, o, &e->plan, errp))
        goto fail;
    if (!ops_op_begin_ref(ctx, XS_CLASS_VM, vm, o->metadata_only ? "metadata_export" : "export",
                          &e->vm_token, errp))
        goto fail;
    /* The VM may have started between the plan and the mark. */
    if (!o->metadata_only) {
        db_read_lock(ctx->db);
        DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
        int ps = v ? db_enum(v, F_VM_POWER_STATE) : VM_POWER_STATE_HALTED;
        db_read_unlock(ctx->db);
        if (ps != VM_POWER_STATE_HALTED && ps != VM_POWER_STATE_SUSPENDED) {
            xs_err_vm_bad_power_state(errp, vm, "halted, suspended", ops_power_state_lower(ps));
            goto fail;
        }
    }
    size_t n = e->plan.n_disks;
    e->vdi_tokens = xcalloc(n ? n : 1, sizeof(char *));
    e->src = xcalloc(n ? n : 1, sizeof(ExpSource));
    e->disks = xcalloc(n ? n : 1, sizeof(XvaExportDisk));
    for (size_t i = 0; i < n; i++) {
        ExpDisk *d = &e->plan.disks[i];
        if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, d->vdi_ref, "copy", &e->vdi_tokens[i], errp))
            goto fail;
        char *path = NULL;
        const char *fmt = NULL;
        if (!ops_vdi_get_path(ctx, d->vdi_ref, &path, &fmt, errp))
            goto fail;
        ImgOpenOptions oo = {.format = img_format_from_name(fmt)};
        ImgError ie = {0};
        e->src[i].r = img_open(path, &oo, &ie);
        free(path);
        if (!e->src[i].r) {
            xs_err_vdi_io_error(errp, ie.msg);
            goto fail;
        }
        e->disks[i] = (XvaExportDisk){.id = d->id, .size = d->size,
                                      .source = {.ctx = &e->src[i], .read = src_read,
                                                 .block_status = src_status,
                                                 .map = src_map}};
    }
    e->xo = (XvaExportOptions){.compression = o->compression, .keepalive_ms = 5000,
                               .progress = export_progress, .progress_ctx = e,
                               .cancel = &e->cancel};
    return e;
fail:
    export_free(e);
    return NULL;
}

static const char *compression_name(XvaCompression c)
{
    return c == XVA_COMPRESSION_ZSTD ? "zstd" : c == XVA_COMPRESSION_GZIP ? "gzip" : "uncompressed";
}

OpsVmExport *ops_vm_export_begin(OpsCtx *ctx, const char *vm, const OpsVmExportOptions *o,
                                 XsError **errp)
{
    OpsVmExport *e = export_prepare(ctx, vm, o, errp);
    if (!e)
        return NULL;
    if (o->metadata_only) {
        /* A small tar served with its length, as xapi does. */
        e->mem_fd = memfd_create("ova", MFD_CLOEXEC);
        if (e->mem_fd < 0) {
            xs_err_internal_error(errp, strerror(errno));
            goto fail;
        }
        XvaExportOptions mo = {.compression = XVA_COMPRESSION_NONE};
        int r = xva_export(e->mem_fd, e->plan.ova.buf, e->plan.ova.len, NULL, 0, &mo, NULL,
                           &e->xerr);
        if (r < 0) {
            xs_err_internal_error(errp, e->xerr.message);
            goto fail;
        }
        e->size = (int64_t)lseek(e->mem_fd, 0, SEEK_END);
        lseek(e->mem_fd, 0, SEEK_SET);
        release_marks(e);
        return e;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        xs_err_internal_error(errp, strerror(errno));
        goto fail;
    }
    fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
    e->pipe_r = p[0];
    e->pipe_w = p[1];
    if (pthread_create(&e->thread, NULL, export_thread, e) != 0) {
        xs_err_internal_error(errp, "cannot start the export thread");
        goto fail;
    }
    e->thread_started = true;
    e->watch = ops_cancel_watch_start(ctx, &e->cancel);
    log_info("exporting VM %s: %zu disk(s), %s", e->plan.vm_name, e->plan.n_disks,
             compression_name(o->compression));
    return e;
fail:
    export_free(e);
    return NULL;
}

bool ops_vm_export_fd(OpsCtx *ctx, const char *vm, const OpsVmExportOptions *o, int fd,
                      XsError **errp)
{
    OpsVmExport *e = export_prepare(ctx, vm, o, errp);
    if (!e)
        return false;
    if (o->metadata_only)
        release_marks(e);
    /* The file's content is replaced: the XVA starts at its offset 0. An empty
     * file is not truncated: on ext4 that would make its last close write the
     * whole file out (auto_da_alloc), a second per few GiB. */
    struct stat fst;
    if (lseek(fd, 0, SEEK_SET) < 0 || fstat(fd, &fst) < 0 ||
        (fst.st_size > 0 && ftruncate(fd, 0) < 0)) {
        xs_err_client_error(errp, strerror(errno));
        export_free(e);
        return false;
    }
    log_info("exporting VM %s into a local file: %zu disk(s), %s", e->plan.vm_name,
             e->plan.n_disks, compression_name(o->compression));
    XvaExportOptions mo = {.compression = XVA_COMPRESSION_NONE};
    e->watch = ops_cancel_watch_start(ctx, &e->cancel);
    e->result = xva_export(fd, e->plan.ova.buf, e->plan.ova.len, e->disks, e->plan.n_disks,
                           o->metadata_only ? &mo : &e->xo, &e->stats, &e->xerr);
    e->at_end = true;
    if (e->result < 0 && e->xerr.kind == XVA_ERROR_IO && e->xerr.code == -ENOSPC)
        xs_err_client_error(errp, "no space left for the exported file");
    return ops_vm_export_finish(e, errp);
}

int64_t ops_vm_export_size(const OpsVmExport *e)
{
    return e->size;
}

const char *ops_vm_export_filename(const OpsVmExport *e)
{
    return e->filename;
}

ssize_t ops_vm_export_read(OpsVmExport *e, char *buf, size_t max)
{
    int fd = e->pipe_r >= 0 ? e->pipe_r : e->mem_fd;
    for (;;) {
        ssize_t k = read(fd, buf, max);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0) {
            if (e->thread_started) {
                pthread_join(e->thread, NULL);
                e->thread_started = false;
            }
            if (e->result < 0)
                return -1;
            e->at_end = true;
        }
        return k;
    }
}

bool ops_vm_export_finish(OpsVmExport *e, XsError **errp)
{
    if (ops_cancel_watch_stop(e->watch))
        e->task_cancelled = true;
    e->watch = NULL;
    if (e->thread_started) {
        /* The reader went away before the end. */
        atomic_store(&e->cancel, true);
        close(e->pipe_r);
        e->pipe_r = -1;
        pthread_join(e->thread, NULL);
        e->thread_started = false;
    }
    if (e->mem_fd >= 0 && !e->at_end) {
        off_t pos = lseek(e->mem_fd, 0, SEEK_CUR);
        e->at_end = pos == e->size;
    }
    bool ok = e->at_end && e->result == 0;
    if (!ok && errp && !*errp) {
        if (e->task_cancelled) {
            xs_err_task_cancelled(errp, e->ctx->task ? e->ctx->task : "");
        } else if (e->result < 0 && e->xerr.kind == XVA_ERROR_IO && e->xerr.code != -EPIPE) {
            const char *why = e->xerr.message;
            for (size_t i = 0; i < e->plan.n_disks; i++)
                if (e->src && e->src[i].ie.msg[0])
                    why = e->src[i].ie.msg;
            xs_err_vdi_io_error(errp, why);
        } else if (e->result < 0 && e->xerr.kind != XVA_ERROR_IO &&
                   e->xerr.kind != XVA_ERROR_CANCELLED) {
            xs_err_internal_error(errp, e->xerr.message);
        } else {
            xs_err_client_error(errp, "the client stopped reading the export");
        }
    }
    if (ok)
        log_info("exported VM %s: %" PRIu64 " blocks (%" PRIu64 " skipped), %" PRIu64
                 " bytes", e->plan.vm_name, e->stats.blocks, e->stats.blocks_zero,
                 e->stats.bytes_written);
    export_free(e);
    return ok;
}
