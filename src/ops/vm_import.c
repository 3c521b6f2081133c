/*
 * VM import (vm_xva.h): an XVA stream (or a version-1 appliance, or a
 * single disk image) becomes new VMs, VBDs, VIFs and VDIs, as xapi's
 * Import module does it.
 *
 * The work goes in three steps. When ova.xml arrives, it is checked and
 * turned into a plan: every object of the file is either to be created,
 * mapped onto an existing one (networks by name then bridge, else the
 * default network; CDs onto ISOs by name then location; default templates
 * onto the local one), or ignored; records are coerced to our schema
 * (unknown fields ignored, missing fields that have a default take it,
 * missing fields without one refused). Then the disks stream into new qcow2
 * files (vdi_stream.h) that no record refers to yet. Finally everything is
 * created in one transaction and the files published. A failure at any
 * step, a cancelled task or a cut-off upload removes the files made so far;
 * nothing else exists yet.
 *
 * Version-1 appliances and disk images are turned into the same kind of
 * object list (a VM, its VBDs, VDIs and VIFs) so that one code path
 * creates everything. Where the bytes come from (uploads, files, URLs) is
 * vm_import_io.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/image.h"
#include "formats/xva_v1.h"
#include "model/wire.h"
#include "net/net.h"
#include "ops/cancel_watch.h"
#include "ops/storage_int.h"
#include "ops/vdi_stream.h"
#include "ops/vm.h"
#include "ops/vm_import_int.h"
#include "ops/vm_xva.h"
#include "util/cleanup.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define MAX_OBJECTS 100000
/* Classes xapi writes into ova.xml; anything else is refused. */
static const char *const known_classes[] = {
    "host", "VM",  "VM_metrics", "VM_guest_metrics", "VBD",      "VIF",      "network", "VDI",
    "SR",   "VGPU_type", "VGPU", "GPU_group",        "PVS_proxy", "PVS_site", "VTPM",
};

/* ---- the objects of an import -------------------------------------------------------------- */

void vm_import_init(Importer *im, OpsCtx *ctx, const OpsVmImportOptions *o)
{
    memset(im, 0, sizeof(*im));
    im->ctx = ctx;
    im->kind = o->kind;
    im->restore = o->restore;
    im->force = o->force;
    im->sr_given = o->sr && *o->sr && strcmp(o->sr, "OpaqueRef:NULL") != 0 ? o->sr : NULL;
    im->image = o->image;
    im->span = 1.0;
    hashmap_init(&im->by_id);
    atomic_init(&im->cancel, false);
}

void vm_import_release(Importer *im)
{
    for (size_t i = 0; i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        ops_vdi_writer_free(o->writer);
        free(o->id);
        free(o->ref);
        xv_free(o->rec);
    }
    free(im->objs);
    free(im->disks);
    hashmap_release(&im->by_id);
    xv_free(im->doc);
    xs_error_free(im->err);
    xv_free(im->result);
    free(im->sr_ref);
}

ImpObj *vm_import_find(Importer *im, const char *id)
{
    return id ? hashmap_get(&im->by_id, id) : NULL;
}

static bool is_null_ref(const char *s)
{
    return !s || !*s || strcmp(s, "OpaqueRef:NULL") == 0;
}

/* The field of a record as a string ("" if absent or not a string). */
static const char *snap_str(const XsValue *snap, const char *field)
{
    const char *s = xv_struct_get_string(snap, field);
    return s ? s : "";
}

static bool snap_bool(const XsValue *snap, const char *field)
{
    const XsValue *v = xv_struct_get(snap, field);
    if (!v)
        return false;
    if (v->kind == XV_BOOL)
        return v->b;
    if (v->kind == XV_STRING)
        return strcmp(v->s, "true") == 0 || strcmp(v->s, "1") == 0;
    return false;
}

static bool snap_int(const XsValue *snap, const char *field, int64_t *out)
{
    const XsValue *v = xv_struct_get(snap, field);
    if (!v)
        return false;
    if (v->kind == XV_INT) {
        *out = v->i;
        return true;
    }
    if (v->kind != XV_STRING || !*v->s)
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(v->s, &end, 10);
    if (*end || errno)
        return false;
    *out = x;
    return true;
}

void vm_import_error(Importer *im, XsError **errp, const char *fmt, ...) HX_PRINTF(3, 4);
void vm_import_error(Importer *im, XsError **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = xvasprintf(fmt, ap);
    va_end(ap);
    xs_err_import_error(errp, m);
    free(m);
    (void)im;
}

/* ---- values of records ------------------------------------------------------------------- */

/* True for the fields whose values are references (or hold them). */
static bool holds_refs(const XsType *t)
{
    if (t->kind == XS_T_REF)
        return true;
    if (t->kind == XS_T_SET)
        return t->elem->kind == XS_T_REF;
    if (t->kind == XS_T_MAP)
        return t->key->kind == XS_T_REF || t->elem->kind == XS_T_REF;
    return false;
}

static bool has_enum(const XsType *t)
{
    if (t->kind == XS_T_ENUM)
        return true;
    if (t->kind == XS_T_SET)
        return has_enum(t->elem);
    if (t->kind == XS_T_MAP)
        return has_enum(t->key) || has_enum(t->elem);
    return false;
}

/*
 * A value of the file coerced to field f's type. Lenient where other
 * writers differ (typed ints for strings, "true" for booleans); enum
 * values this host does not know fall back to the default (a newer
 * writer's). NULL if it cannot be made to fit.
 */
static XsValue *coerce_field(const XsField *f, const XsValue *v)
{
    XsValue *r = xs_value_coerce(f->type, v, f->name, NULL);
    if (r)
        return r;
    switch (f->type->kind) {
    case XS_T_STRING:
        if (v->kind == XV_INT)
            return xv_string_take(xasprintf("%" PRId64, v->i));
        if (v->kind == XV_NULL)
            return xv_string("");
        break;
    case XS_T_BOOL:
        if (v->kind == XV_STRING && (!strcmp(v->s, "true") || !strcmp(v->s, "1")))
            return xv_bool(true);
        if (v->kind == XV_STRING && (!strcmp(v->s, "false") || !strcmp(v->s, "0")))
            return xv_bool(false);
        if (v->kind == XV_INT)
            return xv_bool(v->i != 0);
        break;
    default:
        break;
    }
    if (has_enum(f->type)) {
        log_warn("import: unknown value in field %s; using its default", f->name);
        return xs_default_value(f->type, f->default_literal);
    }
    return NULL;
}

/* Fields never taken from the file (recomputed, or set by the import itself). */
static bool field_skipped(int cls, const char *name)
{
    static const char *const common[] = {"uuid", "allowed_operations", "current_operations"};
    static const char *const vm[] = {
        "power_state", "suspend_VDI", "resident_on", "scheduled_to_be_resident_on",
        "affinity", "domid", "metrics", "guest_metrics", "is_default_template",
        "is_control_domain", "appliance", "suspend_SR", "requires_reboot", "memory_overhead"};
    static const char *const vbd[] = {"currently_attached", "empty", "storage_lock",
                                      "status_code", "status_detail", "runtime_properties",
                                      "qos_supported_algorithms"};
    static const char *const vif[] = {"currently_attached", "MAC", "MAC_autogenerated",
                                      "status_code", "status_detail", "runtime_properties",
                                      "qos_supported_algorithms"};
    for (size_t i = 0; i < ARRAY_SIZE(common); i++)
        if (!strcmp(name, common[i]))
            return true;
    const char *const *list = NULL;
    size_t n = 0;
    if (cls == XS_CLASS_VM) {
        list = vm;
        n = ARRAY_SIZE(vm);
    } else if (cls == XS_CLASS_VBD) {
        list = vbd;
        n = ARRAY_SIZE(vbd);
    } else if (cls == XS_CLASS_VIF) {
        list = vif;
        n = ARRAY_SIZE(vif);
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, list[i]))
            return true;
    return false;
}

/*
 * The record to create for o: every stored field of the class that the
 * file gives, coerced; references kept as the file's ids (resolved when
 * the objects exist). made_up: the record was made here, not read.
 */
static bool prepare_record(Importer *im, ImpObj *o, XsError **errp)
{
    bool made_up = im->made_up;
    const XsClass *cls = xs_classes[o->cls];
    XsValue *rec = xv_struct();
    for (size_t i = 0; i < cls->nfields; i++) {
        const XsField *f = &cls->fields[i];
        if ((f->flags & (XS_FIELD_DERIVED | XS_FIELD_HIDDEN)))
            continue;
        const XsValue *v = xv_struct_get(o->snap, f->name);
        if (!v) {
            if (!f->default_literal && !made_up && strcmp(f->name, "uuid") != 0) {
                xv_free(rec);
                vm_import_error(im, errp, "%s %s in ova.xml lacks the field %s, which has no "
                             "default: the file is damaged or was not written by XenServer",
                             cls->name, o->id, f->name);
                return false;
            }
            continue;
        }
        if (field_skipped(o->cls, f->name))
            continue;
        XsValue *c;
        if (holds_refs(f->type))
            c = xv_copy(v); /* checked when resolved */
        else
            c = coerce_field(f, v);
        if (!c) {
            xv_free(rec);
            vm_import_error(im, errp, "%s %s in ova.xml: the field %s does not hold a %s",
                         cls->name, o->id, f->name, f->type->spelling);
            return false;
        }
        xv_struct_append(rec, xstrdup(f->name), c);
    }
    o->rec = rec;
    return true;
}

/* ---- lookups in the database (read lock held) ----------------------------------------------- */

static DbObj *default_network(Db *db)
{
    size_t n;
    DbObj *const *nets = db_list(db, XS_CLASS_NETWORK, &n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(db_str(nets[i], F_NETWORK_BRIDGE), "xenbr0"))
            return nets[i];
    for (size_t i = 0; i < n; i++) {
        const XsValue *oc = &nets[i]->fields[F_NETWORK_OTHER_CONFIG];
        const char *a = xv_struct_get_string(oc, "is_host_internal_management_network");
        const char *b = xv_struct_get_string(oc, "is_guest_installer_network");
        if (!(a && !strcmp(a, "true")) && !(b && !strcmp(b, "true")))
            return nets[i];
    }
    return NULL;
}

static DbObj *find_network(Db *db, const char *name, const char *bridge)
{
    size_t n;
    DbObj *const *nets = db_list(db, XS_CLASS_NETWORK, &n);
    if (name && *name)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(db_str(nets[i], F_NETWORK_NAME_LABEL), name))
                return nets[i];
    if (bridge && *bridge)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(db_str(nets[i], F_NETWORK_BRIDGE), bridge))
                return nets[i];
    return default_network(db);
}

static bool is_iso_library(const DbObj *sr)
{
    return !strcmp(db_str(sr, F_SR_CONTENT_TYPE), "iso") && strcmp(db_str(sr, F_SR_TYPE), "udev");
}

/* An ISO of this host for a CD of the file: same name, else same location. */
static DbObj *find_iso(Db *db, const char *name, const char *location)
{
    size_t n;
    DbObj *const *vdis = db_list(db, XS_CLASS_VDI, &n);
    for (int pass = 0; pass < 2; pass++) {
        const char *want = pass == 0 ? name : location;
        if (!want || !*want)
            continue;
        for (size_t i = 0; i < n; i++) {
            DbObj *sr = db_get_class(db, XS_CLASS_SR, db_str(vdis[i], F_VDI_SR));
            if (!sr || !is_iso_library(sr))
                continue;
            const char *have = db_str(vdis[i], pass == 0 ? F_VDI_NAME_LABEL : F_VDI_LOCATION);
            if (!strcmp(have, want))
                return vdis[i];
        }
    }
    return NULL;
}

static DbObj *pool_default_sr(Db *db, char **given)
{
    size_t n;
    DbObj *const *pools = db_list(db, XS_CLASS_POOL, &n);
    if (!n)
        return NULL;
    const char *r = db_str(pools[0], F_POOL_DEFAULT_SR);
    *given = xstrdup(r);
    return db_get_class(db, XS_CLASS_SR, r);
}

/* ---- planning ------------------------------------------------------------------------------------ */

static ImpObj *add_obj(Importer *im, const char *cls_name, const char *id, const XsValue *snap)
{
    if (im->n == im->alloc) {
        /* Pointers into objs are kept in by_id: grow only before the table is built. */
        im->alloc = im->alloc ? 2 * im->alloc : 16;
        im->objs = xreallocarray(im->objs, im->alloc, sizeof(ImpObj));
    }
    ImpObj *o = &im->objs[im->n++];
    memset(o, 0, sizeof(*o));
    o->cls_name = cls_name;
    const XsClass *c = xs_class_by_name(cls_name);
    o->cls = c ? c->id : -1;
    o->id = xstrdup(id);
    o->snap = snap;
    o->disk = -1;
    return o;
}

static void index_objs(Importer *im)
{
    hashmap_release(&im->by_id);
    hashmap_init(&im->by_id);
    for (size_t i = 0; i < im->n; i++)
        hashmap_put(&im->by_id, im->objs[i].id, &im->objs[i]);
}

/* The object a reference of the file names; the file must contain it. */
static ImpObj *must_find(Importer *im, const char *id, XsError **errp)
{
    ImpObj *o = vm_import_find(im, id);
    if (!o)
        xs_err_import_error_failed_to_find_object(errp, id ? id : "");
    return o;
}

/* The VDIs whose data the stream carries (xapi's non_cdrom_vdis): those of
 * non-CD VBDs outside ISO SRs, and suspend images. */
static bool vdi_is_streamed(Importer *im, ImpObj *vdi)
{
    if (!strcmp(snap_str(vdi->snap, "type"), "suspend"))
        return true;
    for (size_t i = 0; i < im->n; i++) {
        ImpObj *b = &im->objs[i];
        if (b->cls != XS_CLASS_VBD || strcmp(snap_str(b->snap, "VDI"), vdi->id))
            continue;
        if (strcmp(snap_str(b->snap, "type"), "CD") != 0)
            return true;
    }
    return false;
}

static bool plan_vdi(Importer *im, ImpObj *o, XsError **errp)
{
    Db *db = im->ctx->db;
    ImpObj *sr = must_find(im, snap_str(o->snap, "SR"), errp);
    if (!sr)
        return false;
    if (!strcmp(snap_str(sr->snap, "content_type"), "iso")) {
        DbObj *iso = find_iso(db, snap_str(o->snap, "name_label"), snap_str(o->snap, "location"));
        if (iso) {
            o->action = ACT_EXISTING;
            o->ref = xstrdup(iso->ref);
        } else {
            log_info("import: no ISO named '%s' here: its CD drive is left empty",
                     snap_str(o->snap, "name_label"));
        }
        return true;
    }
    if (im->kind == OPS_IMPORT_METADATA) {
        DbObj *v = db_get_by_uuid(db, XS_CLASS_VDI, snap_str(o->snap, "uuid"));
        if (v) {
            o->action = ACT_EXISTING;
            o->ref = xstrdup(v->ref);
        } else if (!im->force) {
            xs_err_vdi_location_missing(errp, "OpaqueRef:NULL", snap_str(o->snap, "location"));
            return false;
        }
        return true;
    }
    if (!vdi_is_streamed(im, o))
        return true;
    int64_t size;
    if (!snap_int(o->snap, "virtual_size", &size)) {
        vm_import_error(im, errp, "VDI %s in ova.xml has an absurd virtual size ('%.40s'): a disk "
                     "has a positive size, a multiple of 512, of at most 1 PiB", o->id,
                     snap_str(o->snap, "virtual_size"));
        return false;
    }
    if (size <= 0 || size % 512 || (uint64_t)size > XVA_READ_MAX_DISK_SIZE) {
        vm_import_error(im, errp, "VDI %s in ova.xml has an absurd virtual size (%" PRId64 " bytes): "
                     "a disk has a positive size, a multiple of 512, of at most 1 PiB",
                     o->id, size);
        return false;
    }
    if (!prepare_record(im, o, errp))
        return false;
    o->action = ACT_CREATE;
    o->size = (uint64_t)size;
    return true;
}

static bool plan_vm(Importer *im, ImpObj *o, XsError **errp)
{
    Db *db = im->ctx->db;
    const XsValue *oc = xv_struct_get(o->snap, "other_config");
    const char *dt = oc && oc->kind == XV_STRUCT ? xv_struct_get_string(oc, "default_template")
                                                 : NULL;
    if (snap_bool(o->snap, "is_a_template") && dt && !strcmp(dt, "true")) {
        /* A built-in template: use ours of the same name. */
        size_t n;
        DbObj *const *vms = db_list(db, XS_CLASS_VM, &n);
        for (size_t i = 0; i < n; i++)
            if (db_bool(vms[i], F_VM_IS_DEFAULT_TEMPLATE) &&
                !strcmp(db_str(vms[i], F_VM_NAME_LABEL), snap_str(o->snap, "name_label"))) {
                o->action = ACT_EXISTING;
                o->ref = xstrdup(vms[i]->ref);
            }
        return true;
    }
    if (!prepare_record(im, o, errp))
        return false;
    o->is_snapshot = snap_bool(o->snap, "is_a_snapshot");
    o->action = ACT_CREATE;
    return true;
}

static bool plan_vbd(Importer *im, ImpObj *o, XsError **errp)
{
    ImpObj *vm = must_find(im, snap_str(o->snap, "VM"), errp);
    if (!vm)
        return false;
    if (vm->action != ACT_CREATE)
        return true; /* devices of a template that exists already stay as they are */
    const char *vdi_id = snap_str(o->snap, "VDI");
    ImpObj *vdi = is_null_ref(vdi_id) ? NULL : must_find(im, vdi_id, errp);
    if (!is_null_ref(vdi_id) && !vdi)
        return false;
    bool cd = !strcmp(snap_str(o->snap, "type"), "CD");
    if ((!vdi || vdi->action == ACT_IGNORE) && !cd && !snap_bool(o->snap, "empty")) {
        if (vdi && im->kind != OPS_IMPORT_METADATA) {
            log_warn("import: disk %s of the VM has no data in the file: left out", vdi_id);
            return true;
        }
        if (vdi) /* metadata import with force: the disk is not here */
            return true;
    }
    if (!prepare_record(im, o, errp))
        return false;
    o->action = ACT_CREATE;
    return true;
}

static bool plan_vif(Importer *im, ImpObj *o, XsError **errp)
{
    ImpObj *vm = must_find(im, snap_str(o->snap, "VM"), errp);
    if (!vm)
        return false;
    if (vm->action != ACT_CREATE)
        return true;
    ImpObj *net = must_find(im, snap_str(o->snap, "network"), errp);
    if (!net)
        return false;
    if (!net->ref) {
        vm_import_error(im, errp, "no network of this host can take the VIF %s: create one "
                     "(network-create) and import again", o->id);
        return false;
    }
    const char *dev = snap_str(o->snap, "device");
    char *end;
    long d = strtol(dev, &end, 10);
    if (!*dev || *end || d < 0 || d > 6) {
        vm_import_error(im, errp, "VIF %s in ova.xml has the device number '%s' (0 to 6 here)",
                     o->id, dev);
        return false;
    }
    if (im->restore && snap_str(o->snap, "MAC")[0] &&
        net_mac_normalize(snap_str(o->snap, "MAC"), (char[NET_MAC_STRLEN]){0}, NULL) < 0) {
        xs_err_mac_invalid(errp, snap_str(o->snap, "MAC"));
        return false;
    }
    if (!prepare_record(im, o, errp))
        return false;
    o->action = ACT_CREATE;
    return true;
}

/* The target SR of the disks: the one given, else the pool's default. */
static bool resolve_sr(Importer *im, XsError **errp)
{
    Db *db = im->ctx->db;
    DbObj *sr;
    if (im->sr_given) {
        sr = db_get_class(db, XS_CLASS_SR, im->sr_given);
        if (!sr) {
            xs_err_handle_invalid(errp, "SR", im->sr_given);
            return false;
        }
    } else {
        char *r = NULL;
        sr = pool_default_sr(db, &r);
        if (!sr) {
            xs_err_default_sr_not_found(errp, r ? r : "OpaqueRef:NULL");
            free(r);
            return false;
        }
        free(r);
    }
    if (!strcmp(db_str(sr, F_SR_CONTENT_TYPE), "iso")) {
        xs_err_sr_operation_not_supported(errp, sr->ref);
        return false;
    }
    if (!ops_sr_check_file_sr(sr, errp))
        return false;
    free(im->sr_ref);
    im->sr_ref = xstrdup(sr->ref);
    return true;
}

/* Decides the fate of every object (xapi's handler order). Read lock held. */
bool vm_import_plan_objects(Importer *im, XsError **errp)
{
    bool made_up = im->made_up;
    Db *db = im->ctx->db;
    index_objs(im);
    /* SRs and networks first: they are only mapped. */
    for (size_t i = 0; i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        if (o->cls == XS_CLASS_NETWORK) {
            DbObj *net = find_network(db, snap_str(o->snap, "name_label"),
                                      snap_str(o->snap, "bridge"));
            if (im->image.network && *im->image.network && made_up)
                net = db_get_class(db, XS_CLASS_NETWORK, im->image.network);
            if (net) {
                o->action = ACT_EXISTING;
                o->ref = xstrdup(net->ref);
            }
        }
    }
    static const int order[] = {XS_CLASS_VDI, XS_CLASS_VM, XS_CLASS_VBD, XS_CLASS_VIF};
    for (size_t k = 0; k < ARRAY_SIZE(order); k++) {
        for (size_t i = 0; i < im->n; i++) {
            ImpObj *o = &im->objs[i];
            if (o->cls != order[k])
                continue;
            bool ok = true;
            switch (o->cls) {
            case XS_CLASS_VDI:
                ok = plan_vdi(im, o, errp);
                break;
            case XS_CLASS_VM:
                ok = plan_vm(im, o, errp);
                break;
            case XS_CLASS_VBD:
                ok = plan_vbd(im, o, errp);
                break;
            case XS_CLASS_VIF:
                ok = plan_vif(im, o, errp);
                break;
            }
            if (!ok)
                return false;
        }
    }
    size_t vms = 0;
    for (size_t i = 0; i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        if (o->cls == XS_CLASS_VM && o->action != ACT_IGNORE)
            vms++;
        if (o->cls == XS_CLASS_VDI && o->action == ACT_CREATE)
            im->n_disks++;
    }
    if (!vms) {
        vm_import_error(im, errp, "the file describes no VM");
        return false;
    }
    if (im->n_disks && !resolve_sr(im, errp))
        return false;
    return true;
}

/* ova.xml of an XVA (version 2): checks and reads the objects. */
static bool read_ova(Importer *im, const char *xml, size_t len, XsError **errp)
{
    char *perr = NULL;
    im->doc = xmlrpc_parse_value_document(xml, len, &perr);
    if (!im->doc) {
        vm_import_error(im, errp, "ova.xml cannot be read: %s", perr ? perr : "not XML-RPC");
        free(perr);
        return false;
    }
    if (im->doc->kind != XV_STRUCT) {
        vm_import_error(im, errp, "ova.xml does not hold a struct of version and objects");
        return false;
    }
    const XsValue *ver = xv_struct_get(im->doc, "version");
    int64_t major, minor;
    if (!ver || ver->kind != XV_STRUCT || !snap_int(ver, "xapi_major", &major) ||
        !snap_int(ver, "xapi_minor", &minor)) {
        vm_import_error(im, errp, "ova.xml has no version (xapi_major, xapi_minor)");
        return false;
    }
    if (major > HX_XVA_IMPORT_MAX_MAJOR ||
        (major == HX_XVA_IMPORT_MAX_MAJOR && minor > HX_XVA_IMPORT_MAX_MINOR)) {
        log_warn("import: the file claims xapi %" PRId64 ".%" PRId64 ", newer than %d.%d",
                 major, minor, HX_XVA_IMPORT_MAX_MAJOR, HX_XVA_IMPORT_MAX_MINOR);
        xs_err_import_incompatible_version(errp);
        return false;
    }
    const XsValue *objs = xv_struct_get(im->doc, "objects");
    if (!objs || objs->kind != XV_ARRAY) {
        vm_import_error(im, errp, "ova.xml has no list of objects");
        return false;
    }
    if (objs->n > MAX_OBJECTS) {
        vm_import_error(im, errp, "ova.xml lists %u objects (at most %d)", objs->n, MAX_OBJECTS);
        return false;
    }
    im->objs = xcalloc(objs->n ? objs->n : 1, sizeof(ImpObj));
    im->alloc = objs->n ? objs->n : 1;
    HashMap seen;
    hashmap_init(&seen);
    bool ok = true;
    for (uint32_t i = 0; ok && i < objs->n; i++) {
        const XsValue *ob = &objs->items[i];
        const char *cls = ob->kind == XV_STRUCT ? xv_struct_get_string(ob, "class") : NULL;
        const char *id = ob->kind == XV_STRUCT ? xv_struct_get_string(ob, "id") : NULL;
        const XsValue *snap = ob->kind == XV_STRUCT ? xv_struct_get(ob, "snapshot") : NULL;
        if (!cls || !id || !*id || !snap || snap->kind != XV_STRUCT) {
            vm_import_error(im, errp, "object %u of ova.xml lacks its class, id or snapshot", i);
            ok = false;
            break;
        }
        bool known = false;
        for (size_t k = 0; k < ARRAY_SIZE(known_classes); k++)
            known |= !strcmp(cls, known_classes[k]);
        if (!known) {
            vm_import_error(im, errp, "object %s of ova.xml has the unknown class '%.64s'", id, cls);
            ok = false;
            break;
        }
        if (hashmap_get(&seen, id)) {
            vm_import_error(im, errp, "ova.xml has two objects with the id %.64s", id);
            ok = false;
            break;
        }
        ImpObj *o = add_obj(im, cls, id, snap);
        hashmap_put(&seen, o->id, o);
        if (!strcmp(cls, "VGPU") || !strcmp(cls, "VTPM") || !strcmp(cls, "PVS_proxy"))
            log_warn("import: the %s %s of the file is left out (not supported here)", cls, id);
    }
    hashmap_release(&seen);
    return ok;
}

/* ---- made-up objects (version 1, disk images) ------------------------------------------------ */

static XsValue *map_of(const char *const *kv)
{
    XsValue *m = xv_struct();
    for (; kv && kv[0]; kv += 2)
        xv_struct_append(m, xstrdup(kv[0]), xv_string(kv[1]));
    return m;
}

static void set_s(XsValue *r, const char *k, const char *v)
{
    xv_struct_append(r, xstrdup(k), xv_string(v));
}

static void set_i(XsValue *r, const char *k, int64_t v)
{
    xv_struct_append(r, xstrdup(k), xv_int(v));
}

static void set_b(XsValue *r, const char *k, bool v)
{
    xv_struct_append(r, xstrdup(k), xv_bool(v));
}

/* The VM record of a made-up import. */
static XsValue *made_up_vm(const char *name, const char *desc, int64_t memory, int64_t vcpus,
                           bool hvm, const char *pv_args, const char *const *platform)
{
    XsValue *r = xv_struct();
    set_s(r, "name_label", name);
    set_s(r, "name_description", desc);
    set_i(r, "user_version", 1);
    set_b(r, "is_a_template", false);
    int64_t smin = MIN(memory, (int64_t)(16 * MiB));
    set_i(r, "memory_static_max", memory);
    set_i(r, "memory_dynamic_max", memory);
    set_i(r, "memory_dynamic_min", memory);
    set_i(r, "memory_static_min", smin);
    set_i(r, "memory_target", memory);
    xv_struct_append(r, xstrdup("VCPUs_params"), xv_struct());
    set_i(r, "VCPUs_max", vcpus);
    set_i(r, "VCPUs_at_startup", vcpus);
    set_s(r, "actions_after_shutdown", "destroy");
    set_s(r, "actions_after_reboot", "restart");
    set_s(r, "actions_after_crash", "restart");
    set_s(r, "PV_bootloader", hvm ? "" : "pygrub");
    set_s(r, "PV_kernel", "");
    set_s(r, "PV_ramdisk", "");
    set_s(r, "PV_args", "");
    set_s(r, "PV_bootloader_args", "");
    set_s(r, "PV_legacy_args", hvm ? "" : pv_args);
    set_s(r, "HVM_boot_policy", hvm ? "BIOS order" : "");
    static const char *const hbp[] = {"order", "cd", "firmware", "bios", NULL};
    xv_struct_append(r, xstrdup("HVM_boot_params"), hvm ? map_of(hbp) : xv_struct());
    xv_struct_append(r, xstrdup("platform"), map_of(platform));
    xv_struct_append(r, xstrdup("other_config"), xv_struct());
    set_s(r, "recommendations", "");
    set_s(r, "domain_type", hvm ? "hvm" : "pv");
    return r;
}

static XsValue *made_up_vbd(const char *vm, const char *vdi, const char *userdevice, bool cd,
                            bool bootable, bool ro)
{
    XsValue *r = xv_struct();
    set_s(r, "VM", vm);
    set_s(r, "VDI", vdi ? vdi : "OpaqueRef:NULL");
    set_s(r, "userdevice", userdevice);
    set_b(r, "bootable", bootable);
    set_s(r, "mode", ro || cd ? "RO" : "RW");
    set_s(r, "type", cd ? "CD" : "Disk");
    set_b(r, "unpluggable", true);
    set_b(r, "empty", vdi == NULL);
    xv_struct_append(r, xstrdup("other_config"), xv_struct());
    set_s(r, "qos_algorithm_type", "");
    xv_struct_append(r, xstrdup("qos_algorithm_params"), xv_struct());
    return r;
}

static XsValue *made_up_vdi(const char *name, const char *desc, uint64_t size, const char *type)
{
    XsValue *r = xv_struct();
    set_s(r, "name_label", name);
    set_s(r, "name_description", desc);
    set_s(r, "SR", "Ref:sr");
    set_i(r, "virtual_size", (int64_t)size);
    set_s(r, "type", type);
    set_b(r, "sharable", false);
    set_b(r, "read_only", false);
    xv_struct_append(r, xstrdup("other_config"), xv_struct());
    xv_struct_append(r, xstrdup("sm_config"), xv_struct());
    return r;
}

/* The made-up objects live in im->doc: an array of {class, id, snapshot}. */
static void made_up_add(Importer *im, const char *cls, const char *id, XsValue *snap)
{
    if (!im->doc)
        im->doc = xv_array();
    XsValue *o = xv_struct();
    set_s(o, "class", cls);
    set_s(o, "id", id);
    xv_struct_append(o, xstrdup("snapshot"), snap);
    xv_array_push(im->doc, o);
}

/* Turns im->doc (made-up objects) into the object table. */
static void made_up_load(Importer *im)
{
    im->alloc = im->doc->n;
    im->objs = xcalloc(im->alloc, sizeof(ImpObj));
    for (uint32_t i = 0; i < im->doc->n; i++) {
        const XsValue *ob = &im->doc->items[i];
        add_obj(im, xv_struct_get_string(ob, "class"), xv_struct_get_string(ob, "id"),
                xv_struct_get(ob, "snapshot"));
    }
}

static const char *v1_variety_type(XvaV1Variety v)
{
    switch (v) {
    case XVA_V1_VARIETY_SYSTEM:
        return "system";
    case XVA_V1_VARIETY_EPHEMERAL:
        return "ephemeral";
    case XVA_V1_VARIETY_SUSPEND:
        return "suspend";
    case XVA_V1_VARIETY_CRASHDUMP:
        return "crashdump";
    case XVA_V1_VARIETY_METADATA:
        return "metadata";
    default:
        return "user";
    }
}

/* "sda", "xvdb", "hdc" -> "0", "1", "2"; a number stays as it is. */
static void v1_userdevice(const char *dev, char out[8], size_t fallback)
{
    size_t l = strlen(dev);
    char *end;
    long n = strtol(dev, &end, 10);
    if (l && !*end && n >= 0 && n < 16) {
        snprintf(out, 8, "%ld", n);
        return;
    }
    char c = l ? dev[l - 1] : 0;
    if (c >= 'a' && c <= 'p')
        snprintf(out, 8, "%d", c - 'a');
    else
        snprintf(out, 8, "%u", (unsigned)(fallback % 16));
}

/* A version-1 appliance as objects (xapi's former Import_xva). */
bool vm_import_made_up_v1(Importer *im, const XvaV1Appliance *app, XsError **errp)
{
    bool win2k = app->distrib_version && !strcmp(app->distrib_version, "win2k");
    const char *plat[] = {"acpi", win2k ? "false" : "true", "apic", win2k ? "false" : "true",
                          "nx", "false", "pae", "true", NULL};
    char *name = xasprintf("%s import", app->label);
    int64_t vcpus = app->vcpus >= 1 && app->vcpus <= 64 ? app->vcpus : 1;
    if (app->mem_set < 16 * MiB || app->mem_set > 1024 * GiB) {
        vm_import_error(im, errp, "the appliance's memory (%" PRIu64 " bytes) is not usable",
                     app->mem_set);
        free(name);
        return false;
    }
    made_up_add(im, "VM", "Ref:vm",
                made_up_vm(name, app->shortdesc, (int64_t)app->mem_set, vcpus, app->is_hvm,
                           app->kernel_boot_cmdline, plat));
    free(name);
    XsValue *sr = xv_struct();
    set_s(sr, "content_type", "");
    made_up_add(im, "SR", "Ref:sr", sr);
    for (size_t i = 0; i < app->n_vdis; i++) {
        const XvaV1Vdi *d = &app->vdis[i];
        if (d->size == 0 || d->size > XVA_READ_MAX_DISK_SIZE) {
            vm_import_error(im, errp, "vdi '%s' of the appliance has an absurd size (%" PRIu64 ")",
                         d->name, d->size);
            return false;
        }
        /* Version 1 sizes are any byte count: the disk is rounded up to a sector. */
        made_up_add(im, "VDI", d->name, made_up_vdi(d->name, "", xva_v1_disk_size(d->size),
                                                     v1_variety_type(d->variety)));
    }
    bool used[16] = {false};
    for (size_t i = 0; i < app->n_vbds; i++) {
        const XvaV1Vbd *b = &app->vbds[i];
        char ud[8];
        v1_userdevice(b->device, ud, i);
        used[atoi(ud) % 16] = true;
        char id[32];
        snprintf(id, sizeof(id), "Ref:vbd%zu", i);
        made_up_add(im, "VBD", id, made_up_vbd("Ref:vm", app->vdis[b->vdi].name, ud, false,
                                               b->bootable, b->mode == XVA_V1_MODE_RO));
    }
    /* An empty CD drive, as xapi gave such VMs. */
    int cd = 3;
    while (cd < 15 && used[cd])
        cd++;
    char ud[8];
    snprintf(ud, sizeof(ud), "%d", cd);
    made_up_add(im, "VBD", "Ref:cd", made_up_vbd("Ref:vm", NULL, ud, true, false, true));
    made_up_load(im);
    return true;
}

/* A VM around one disk image: HVM, BIOS boot from the disk, the disk on
 * IDE unless told otherwise, an empty CD drive and one NIC. */
static bool made_up_image(Importer *im, XsError **errp)
{
    const OpsImageVm *g = &im->image;
    int64_t mem = g->memory > 0 ? g->memory : (int64_t)GiB;
    int64_t vcpus = g->vcpus > 0 ? g->vcpus : 1;
    if (mem < 16 * (int64_t)MiB || vcpus > 64) {
        vm_import_error(im, errp, "a VM needs at least 16 MiB of memory and at most 64 VCPUs");
        return false;
    }
    const char *bus = g->disk_bus && *g->disk_bus ? g->disk_bus : "ide";
    if (strcmp(bus, "ide") && strcmp(bus, "virtio") && strcmp(bus, "scsi")) {
        xs_err_invalid_value(errp, "disk-bus", bus);
        return false;
    }
    if (g->virtual_size <= 0 || g->virtual_size % 512 ||
        (uint64_t)g->virtual_size > IMG_MAX_VIRTUAL_SIZE) {
        char v[32];
        snprintf(v, sizeof(v), "%" PRId64, g->virtual_size);
        xs_err_invalid_value(errp, "virtual_size", v);
        return false;
    }
    const char *plat[] = {"acpi", "1", "apic", "true", "pae", "true", "nx", "true",
                          "viridian", "false", "hyperxe-disk-bus", bus, NULL};
    const char *name = g->name_label && *g->name_label ? g->name_label : "Imported VM";
    char *desc = xasprintf("Imported from the disk image %s", g->source ? g->source : "");
    XsValue *vm = made_up_vm(name, desc, mem, vcpus, true, "", plat);
    static const char *const hbp[] = {"order", "cd", "firmware", "bios", NULL};
    xv_struct_set(vm, "HVM_boot_params", map_of(hbp));
    made_up_add(im, "VM", "Ref:vm", vm);
    XsValue *sr = xv_struct();
    set_s(sr, "content_type", "");
    made_up_add(im, "SR", "Ref:sr", sr);
    made_up_add(im, "VDI", "Ref:disk",
                made_up_vdi(g->source && *g->source ? g->source : "Imported disk", desc,
                            (uint64_t)g->virtual_size, "system"));
    free(desc);
    made_up_add(im, "VBD", "Ref:vbd0", made_up_vbd("Ref:vm", "Ref:disk", "0", false, true, false));
    made_up_add(im, "VBD", "Ref:cd", made_up_vbd("Ref:vm", NULL, "3", true, false, true));
    if (!g->network || *g->network) {
        XsValue *net = xv_struct();
        set_s(net, "name_label", "");
        set_s(net, "bridge", "");
        made_up_add(im, "network", "Ref:net", net);
        XsValue *vif = xv_struct();
        set_s(vif, "device", "0");
        set_s(vif, "network", "Ref:net");
        set_s(vif, "VM", "Ref:vm");
        set_s(vif, "MAC", "");
        set_i(vif, "MTU", 0);
        xv_struct_append(vif, xstrdup("other_config"), xv_struct());
        set_s(vif, "qos_algorithm_type", "");
        xv_struct_append(vif, xstrdup("qos_algorithm_params"), xv_struct());
        made_up_add(im, "VIF", "Ref:vif0", vif);
    }
    made_up_load(im);
    return true;
}

/* True if the document's root element is <appliance> (version 1). */
static bool is_v1_xml(const char *xml, size_t len)
{
    size_t i = 0;
    for (;;) {
        while (i < len && (xml[i] == ' ' || xml[i] == '\n' || xml[i] == '\r' || xml[i] == '\t'))
            i++;
        if (len - i >= 2 && (!strncmp(xml + i, "<?", 2) || !strncmp(xml + i, "<!", 2))) {
            /* A declaration, a comment or a doctype: skip to its end. */
            const char *end = memchr(xml + i, '>', len - i);
            if (!end)
                return false;
            i = (size_t)(end - xml) + 1;
            continue;
        }
        return len - i >= 10 && !strncmp(xml + i, "<appliance", 10);
    }
}

/* ---- the plan, whatever the source -------------------------------------------------------------- */

/* ova.xml (either version), or the made-up objects: plans under the read
 * lock. Disks to expect are then im->disks[0..n_disks). */
bool vm_import_plan(Importer *im, const char *xml, size_t len, XsError **errp)
{
    bool made_up = im->kind == OPS_IMPORT_IMAGE;
    bool ok;
    if (im->kind == OPS_IMPORT_IMAGE) {
        ok = made_up_image(im, errp);
    } else {
        if (is_v1_xml(xml, len)) {
            XvaV1Appliance *app = NULL;
            XvaError xe = {0};
            if (xva_v1_parse(xml, len, &app, &xe) < 0) {
                vm_import_error(im, errp, "version-1 ova.xml: %s", xe.message);
                return false;
            }
            made_up = true;
            ok = vm_import_made_up_v1(im, app, errp);
            xva_v1_appliance_free(app);
        } else {
            ok = read_ova(im, xml, len, errp);
        }
    }
    if (!ok)
        return false;
    im->made_up = made_up;
    db_read_lock(im->ctx->db);
    ok = vm_import_plan_objects(im, errp);
    db_read_unlock(im->ctx->db);
    if (!ok)
        return false;
    im->disks = xcalloc(im->n_disks ? im->n_disks : 1, sizeof(ImpObj *));
    size_t k = 0;
    for (size_t j = 0; j < im->n; j++)
        if (im->objs[j].cls == XS_CLASS_VDI && im->objs[j].action == ACT_CREATE)
            im->disks[k++] = &im->objs[j];
    return true;
}

/* ---- data ---------------------------------------------------------------------------------- */

static void set_err(Importer *im, XsError *e)
{
    if (!im->err)
        im->err = e;
    else
        xs_error_free(e);
}

int vm_import_sink_ova_xml(void *ctx, const char *xml, size_t len, XvaPlan *plan)
{
    Importer *im = ctx;
    XsError *e = NULL;
    if (!vm_import_plan(im, xml, len, &e)) {
        set_err(im, e);
        return -EINVAL;
    }
    for (size_t i = 0; i < im->n_disks; i++) {
        int r = xva_plan_add_disk(plan, im->disks[i]->id, im->disks[i]->size);
        if (r < 0) {
            vm_import_error(im, &e, "the disk %.64s of ova.xml cannot be read from the file: %s",
                         im->disks[i]->id,
                         r == -EINVAL ? "its id cannot name a member of the archive"
                                      : strerror(-r));
            set_err(im, e);
            return r;
        }
        im->disks[i]->disk = r;
    }
    return 0;
}

int vm_import_sink_disk_begin(void *ctx, size_t disk, const char *id, uint64_t size)
{
    Importer *im = ctx;
    ImpObj *o = disk < im->n_disks ? im->disks[disk] : NULL;
    if (!o)
        return -EINVAL;
    XsError *e = NULL;
    o->writer = ops_vdi_writer_new(im->ctx, im->sr_ref, o->size, &e);
    if (!o->writer) {
        set_err(im, e);
        return -EIO;
    }
    (void)id;
    (void)size;
    return 0;
}

static int writer_failed(Importer *im, ImpObj *o, int r)
{
    XsError *e = NULL;
    if (!ops_vdi_writer_close(o->writer, &e))
        set_err(im, e);
    return r < 0 ? r : -EIO;
}

int vm_import_sink_write(void *ctx, size_t disk, uint64_t offset, const void *buf, size_t len)
{
    Importer *im = ctx;
    ImpObj *o = im->disks[disk];
    int r = ops_vdi_writer_write(o->writer, offset, buf, len);
    return r < 0 ? writer_failed(im, o, r) : 0;
}

int vm_import_sink_write_ref(void *ctx, size_t disk, uint64_t offset, const void *buf,
                             size_t len)
{
    Importer *im = ctx;
    ImpObj *o = im->disks[disk];
    int r = ops_vdi_writer_write_ref(o->writer, offset, buf, len);
    return r < 0 ? writer_failed(im, o, r) : 0;
}

void vm_import_sink_stop(void *ctx)
{
    Importer *im = ctx;
    for (size_t i = 0; i < im->n_disks; i++)
        if (im->disks[i])
            ops_vdi_writer_stop(im->disks[i]->writer);
}

int vm_import_sink_disk_end(void *ctx, size_t disk, uint64_t size)
{
    Importer *im = ctx;
    ImpObj *o = im->disks[disk];
    XsError *e = NULL;
    if (!o->writer || !ops_vdi_writer_close(o->writer, &e)) {
        set_err(im, e);
        return -EIO;
    }
    (void)size;
    return 0;
}

void vm_import_progress(void *opaque, uint64_t done, uint64_t total)
{
    Importer *im = opaque;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - im->last_poll.tv_sec) +
                (double)(now.tv_nsec - im->last_poll.tv_nsec) / 1e9;
    if (dt < 0.25 && done < total)
        return;
    im->last_poll = now;
    if (!im->ctx->task)
        return;
    ops_progress(im->ctx, im->base + im->span * (total ? (double)done / (double)total : 1.0));
    if (ops_cancelled(im->ctx)) {
        im->task_cancelled = true;
        atomic_store(&im->cancel, true);
    }
}

/* The XenAPI error for a failed read of the container. */
void vm_import_map_xva_error(Importer *im, int r, const XvaError *xe, XsError **errp)
{
    if (im->task_cancelled || xe->kind == XVA_ERROR_CANCELLED) {
        xs_err_task_cancelled(errp, im->ctx->task ? im->ctx->task : "");
        return;
    }
    if (xe->kind == XVA_ERROR_CALLBACK && im->err) {
        xs_error_propagate(errp, im->err);
        im->err = NULL;
        return;
    }
    switch (xe->kind) {
    case XVA_ERROR_UNEXPECTED_FILE:
        xs_err_import_error_unexpected_file(errp, xe->expected, xe->found);
        break;
    case XVA_ERROR_TRUNCATED:
        xs_err_import_error_premature_eof(errp);
        break;
    case XVA_ERROR_CHECKSUM:
        log_warn("import: %s", xe->message);
        xs_err_import_error_some_checksums_failed(errp);
        break;
    case XVA_ERROR_IO:
        if (xe->code == -EPIPE || xe->code == -ECONNRESET)
            xs_err_import_error_premature_eof(errp);
        else
            vm_import_error(im, errp, "%s", xe->message);
        break;
    default:
        vm_import_error(im, errp, "%s", xe->message[0] ? xe->message : strerror(-r));
        break;
    }
}

/* ---- creating everything ------------------------------------------------------------------------- */

/* The new ref of the object a file id names, or OpaqueRef:NULL. */
static const char *resolved(Importer *im, const XsValue *v)
{
    if (!v || v->kind != XV_STRING)
        return "OpaqueRef:NULL";
    ImpObj *o = vm_import_find(im, v->s);
    return o && o->ref ? o->ref : "OpaqueRef:NULL";
}

static XsValue *resolve_value(Importer *im, const XsType *t, const XsValue *v)
{
    if (t->kind == XS_T_REF)
        return xv_string(resolved(im, v));
    if (t->kind == XS_T_SET) {
        XsValue *a = xv_array();
        for (uint32_t i = 0; v->kind == XV_ARRAY && i < v->n; i++) {
            const char *r = resolved(im, &v->items[i]);
            if (!is_null_ref(r))
                xv_array_push_string(a, r);
        }
        return a;
    }
    return xv_struct(); /* maps with references: nothing to keep across hosts */
}

/* Sets the prepared fields of o on obj. */
static void set_fields(Importer *im, DbTxn *txn, ImpObj *o, DbObj *obj)
{
    const XsClass *cls = obj->cls;
    for (uint32_t i = 0; i < o->rec->n; i++) {
        int fi = xs_field_index(cls, xv_struct_key(o->rec, i));
        if (fi <= 0)
            continue;
        const XsField *f = &cls->fields[fi];
        const XsValue *v = xv_struct_val(o->rec, i);
        if (holds_refs(f->type))
            db_set(txn, obj, fi, resolve_value(im, f->type, v));
        else
            db_set(txn, obj, fi, xv_copy(v));
    }
}

static void fresh_generation_id(char out[48])
{
    uint32_t r[2];
    random_bytes(r, sizeof(r));
    snprintf(out, 48, "%u:%u", r[0] % 1000000000u, r[1] % 1000000000u);
}

static bool mac_taken(Db *db, const DbObj *self, const char *mac)
{
    size_t n;
    DbObj *const *vifs = db_list(db, XS_CLASS_VIF, &n);
    for (size_t i = 0; i < n; i++) {
        char other[NET_MAC_STRLEN];
        if (vifs[i] != self && !vifs[i]->deleted &&
            net_mac_normalize(db_str(vifs[i], F_VIF_MAC), other, NULL) == 0 &&
            !strcmp(other, mac))
            return true;
    }
    return false;
}

static void finish_vm(Importer *im, DbTxn *txn, ImpObj *o, DbObj *vm)
{
    db_set_int(txn, vm, F_VM_DOMID, -1);
    /* A suspended VM stays suspended only with its memory image. */
    const char *ps = snap_str(o->snap, "power_state");
    ImpObj *sv = vm_import_find(im, snap_str(o->snap, "suspend_VDI"));
    if (!strcmp(ps, "Suspended") && sv && sv->ref) {
        db_set_enum(txn, vm, F_VM_POWER_STATE, VM_POWER_STATE_SUSPENDED);
        db_set_str(txn, vm, F_VM_SUSPEND_VDI, sv->ref);
    } else {
        db_set_enum(txn, vm, F_VM_POWER_STATE, VM_POWER_STATE_HALTED);
    }
    if (!im->restore) {
        char seed[UUID_STR_LEN];
        uuid_generate_str(seed);
        db_map_set(txn, vm, F_VM_OTHER_CONFIG, "mac_seed", seed);
    }
    db_map_remove(txn, vm, F_VM_OTHER_CONFIG, "default_template");
    char gen[48];
    fresh_generation_id(gen);
    db_set_str(txn, vm, F_VM_GENERATION_ID, gen);
    int64_t v = 0;
    snap_int(o->snap, "version", &v);
    db_set_int(txn, vm, F_VM_VERSION, im->restore ? v + 1 : 0);
    /* A suspend SR that is not here is forgotten. */
    int64_t smin = db_int(vm, F_VM_MEMORY_STATIC_MIN), smax = db_int(vm, F_VM_MEMORY_STATIC_MAX);
    int64_t dmin = db_int(vm, F_VM_MEMORY_DYNAMIC_MIN), dmax = db_int(vm, F_VM_MEMORY_DYNAMIC_MAX);
    if (!ops_vm_check_memory(smin, dmin, dmax, smax, NULL)) {
        /* As xapi does for exports from before dynamic memory: all at static_max. */
        if (smax <= 0)
            smax = (int64_t)(256 * MiB);
        db_set_int(txn, vm, F_VM_MEMORY_STATIC_MAX, smax);
        db_set_int(txn, vm, F_VM_MEMORY_DYNAMIC_MAX, smax);
        db_set_int(txn, vm, F_VM_MEMORY_DYNAMIC_MIN, smax);
        db_set_int(txn, vm, F_VM_MEMORY_STATIC_MIN, MIN(MAX(smin, 0), smax));
    }
    int64_t vmax = db_int(vm, F_VM_VCPUS_MAX), vstart = db_int(vm, F_VM_VCPUS_AT_STARTUP);
    if (vmax < 1)
        db_set_int(txn, vm, F_VM_VCPUS_MAX, vmax = 1);
    if (vstart < 1 || vstart > vmax)
        db_set_int(txn, vm, F_VM_VCPUS_AT_STARTUP, vmax);
}

static bool finish_vif(Importer *im, DbTxn *txn, ImpObj *o, DbObj *vif, DbObj *vm, XsError **errp)
{
    Db *db = db_txn_db(txn);
    char mac[NET_MAC_STRLEN] = "";
    const char *given = snap_str(o->snap, "MAC");
    if (im->restore && *given && net_mac_normalize(given, mac, NULL) == 0) {
        db_set_bool(txn, vif, F_VIF_MAC_AUTOGENERATED, snap_bool(o->snap, "MAC_autogenerated"));
    } else {
        const char *seed = xv_struct_get_string(&vm->fields[F_VM_OTHER_CONFIG], "mac_seed");
        unsigned dev = (unsigned)strtoul(db_str(vif, F_VIF_DEVICE), NULL, 10);
        NetMac m;
        bool made = false;
        if (seed && *seed && net_mac_from_seed(seed, dev, &m) == 0) {
            net_mac_format(&m, mac);
            made = !mac_taken(db, vif, mac);
        }
        for (int tries = 0; !made && tries < 100; tries++) {
            net_mac_random(&m);
            net_mac_format(&m, mac);
            made = !mac_taken(db, vif, mac);
        }
        db_set_bool(txn, vif, F_VIF_MAC_AUTOGENERATED, true);
    }
    db_set_str(txn, vif, F_VIF_MAC, mac);
    DbObj *net = db_get_class(db, XS_CLASS_NETWORK, db_str(vif, F_VIF_NETWORK));
    if (!net) {
        xs_err_handle_invalid(errp, "network", db_str(vif, F_VIF_NETWORK));
        return false;
    }
    int64_t mtu = db_int(vif, F_VIF_MTU);
    if (mtu < 68 || mtu > 65535)
        db_set_int(txn, vif, F_VIF_MTU, db_int(net, F_NETWORK_MTU));
    return true;
}

/* Everything in one transaction; then the files take their names. */
bool vm_import_create_all(Importer *im, XsError **errp)
{
    Db *db = im->ctx->db;
    DbTxn *txn = db_begin(db);
    bool ok = true;
    /* Objects first (refs for every cross reference), then their fields. */
    for (size_t i = 0; ok && i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        if (o->action != ACT_CREATE)
            continue;
        DbObj *obj = NULL;
        if (o->cls == XS_CLASS_VDI) {
            OpsVdiSpec spec = {
                .name_label = snap_str(o->snap, "name_label"),
                .name_description = snap_str(o->snap, "name_description"),
                .type = VDI_TYPE_USER,
            };
            const XsValue *t = xv_struct_get(o->rec, "type");
            if (t && t->kind == XV_STRING && xs_enum_index(&xs_enum_vdi_type, t->s) >= 0)
                spec.type = xs_enum_index(&xs_enum_vdi_type, t->s);
            spec.sharable = snap_bool(o->snap, "sharable");
            spec.read_only = snap_bool(o->snap, "read_only");
            const XsValue *oc = xv_struct_get(o->rec, "other_config");
            spec.other_config = oc && oc->kind == XV_STRUCT ? oc : NULL;
            XsValue *sm = xv_struct();
            const XsValue *osm = xv_struct_get(o->rec, "sm_config");
            for (uint32_t k = 0; osm && osm->kind == XV_STRUCT && k < osm->n; k++) {
                const char *key = xv_struct_key(osm, k);
                if (strcmp(key, "vhd-parent") && strcmp(key, "chain-depth") &&
                    strcmp(key, "image-format") && strcmp(key, "import_task") &&
                    xv_struct_val(osm, k)->kind == XV_STRING)
                    xv_struct_set_string(sm, key, xv_struct_val(osm, k)->s);
            }
            if (im->ctx->task)
                xv_struct_set_string(sm, "import_task", im->ctx->task);
            spec.sm_config = sm;
            obj = ops_vdi_writer_record(o->writer, txn, &spec, errp);
            xv_free(sm);
            if (obj) {
                const XsValue *tags = xv_struct_get(o->rec, "tags");
                if (tags)
                    db_set(txn, obj, F_VDI_TAGS, xv_copy(tags));
                const XsValue *ob = xv_struct_get(o->rec, "on_boot");
                if (ob)
                    db_set(txn, obj, F_VDI_ON_BOOT, xv_copy(ob));
                const XsValue *ac = xv_struct_get(o->rec, "allow_caching");
                if (ac)
                    db_set(txn, obj, F_VDI_ALLOW_CACHING, xv_copy(ac));
                const XsValue *xd = xv_struct_get(o->rec, "xenstore_data");
                if (xd)
                    db_set(txn, obj, F_VDI_XENSTORE_DATA, xv_copy(xd));
            }
        } else {
            const char *uuid = NULL;
            if (im->restore && o->cls == XS_CLASS_VM) {
                const char *u = snap_str(o->snap, "uuid");
                if (uuid_is_valid(u) && !db_get_by_uuid(db, XS_CLASS_VM, u))
                    uuid = u;
            }
            obj = db_create(txn, o->cls, NULL, uuid, errp);
        }
        if (!obj) {
            ok = false;
            break;
        }
        free(o->ref);
        o->ref = xstrdup(obj->ref);
    }
    for (size_t i = 0; ok && i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        if (o->action != ACT_CREATE || o->cls == XS_CLASS_VDI)
            continue;
        DbObj *obj = db_get(db, o->ref);
        set_fields(im, txn, o, obj);
        if (o->cls == XS_CLASS_VM) {
            finish_vm(im, txn, o, obj);
            ok = ops_vm_new_metrics(txn, obj, errp);
        }
    }
    for (size_t i = 0; ok && i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        if (o->action != ACT_CREATE)
            continue;
        DbObj *obj = db_get(db, o->ref);
        if (o->cls == XS_CLASS_VBD) {
            DbObj *vm = db_get_class(db, XS_CLASS_VM, db_str(obj, F_VBD_VM));
            bool has_vdi = db_get_class(db, XS_CLASS_VDI, db_str(obj, F_VBD_VDI)) != NULL;
            db_set_bool(txn, obj, F_VBD_EMPTY, !has_vdi);
            bool susp = vm && db_enum(vm, F_VM_POWER_STATE) == VM_POWER_STATE_SUSPENDED;
            db_set_bool(txn, obj, F_VBD_CURRENTLY_ATTACHED,
                        susp && snap_bool(o->snap, "currently_attached"));
            if (!has_vdi && db_enum(obj, F_VBD_TYPE) != VBD_TYPE_CD) {
                vm_import_error(im, errp, "VBD %s has no disk", o->id);
                ok = false;
            }
        } else if (o->cls == XS_CLASS_VIF) {
            DbObj *vm = db_get_class(db, XS_CLASS_VM, db_str(obj, F_VIF_VM));
            ok = vm && finish_vif(im, txn, o, obj, vm, errp);
            bool susp = vm && db_enum(vm, F_VM_POWER_STATE) == VM_POWER_STATE_SUSPENDED;
            db_set_bool(txn, obj, F_VIF_CURRENTLY_ATTACHED,
                        susp && snap_bool(o->snap, "currently_attached"));
        }
    }
    for (size_t i = 0; ok && i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        if (o->action == ACT_CREATE)
            ops_update_allowed(txn, db_get(db, o->ref));
    }
    if (!ok) {
        db_abort(txn);
        return false;
    }
    if (!db_commit(txn, errp))
        return false;
    /* The records exist: the files take their final names. */
    for (size_t i = 0; i < im->n_disks; i++) {
        XsError *e = NULL;
        if (!ops_vdi_writer_publish(im->disks[i]->writer, &e)) {
            /* Undo: the records must not name files that are not there. */
            log_error("import: cannot publish the file of VDI %s: undoing the import",
                      ops_vdi_writer_uuid(im->disks[i]->writer));
            DbTxn *t2 = db_begin(db);
            for (size_t j = im->n; j-- > 0;) {
                ImpObj *o = &im->objs[j];
                DbObj *obj = o->action == ACT_CREATE ? db_get(db, o->ref) : NULL;
                if (!obj)
                    continue;
                if (o->cls == XS_CLASS_VM) {
                    DbObj *m = db_get_class(db, XS_CLASS_VM_METRICS, db_str(obj, F_VM_METRICS));
                    if (m)
                        db_delete(t2, m);
                }
                db_delete(t2, obj);
            }
            db_commit(t2, NULL);
            for (size_t j = 0; j < i; j++)
                ops_vdi_writer_unpublish(im->disks[j]->writer);
            xs_error_propagate(errp, e);
            return false;
        }
    }
    XsValue *vms = xv_array();
    for (size_t i = 0; i < im->n; i++) {
        ImpObj *o = &im->objs[i];
        if (o->cls == XS_CLASS_VM && o->action == ACT_CREATE && !o->is_snapshot)
            xv_array_push_string(vms, o->ref);
    }
    im->result = vms;
    return true;
}

/* Removes the files of a failed import (records never existed). */
void vm_import_drop_files(Importer *im)
{
    for (size_t i = 0; i < im->n; i++) {
        ops_vdi_writer_free(im->objs[i].writer);
        im->objs[i].writer = NULL;
    }
}

