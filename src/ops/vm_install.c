/*
 * Making VMs from templates: VM.clone and VM.copy (the record, its VIFs and
 * VBDs, the disks cloned or copied by storage), VM.provision (the disks of
 * other_config:disks and the optional post-install script), BIOS strings
 * copied from a host, and the host's own BIOS strings. Long work (disks)
 * runs outside any transaction; on failure what was made is removed.
 */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "net/net.h"
#include "ops/ops.h"
#include "ops/vm.h"
#include "ops/vm_install.h"
#include "ops/vmboot.h"
#include "ops/vmdisk.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/strbuf.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define MAX_PROVISION_DISKS 16
#define POSTINSTALL_TIMEOUT_MS (10 * 60 * 1000)

/* ---- host BIOS strings ------------------------------------------------------------- */

static char *dmi_value(const char *name)
{
    _cleanup_free_ char *path = xasprintf("/sys/class/dmi/id/%s", name);
    _cleanup_fclose_ FILE *f = fopen(path, "r");
    char buf[513];
    if (!f || !fgets(buf, sizeof(buf), f))
        return NULL;
    buf[strcspn(buf, "\n")] = '\0';
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = ' ';
    return xstrdup(buf);
}

void ops_host_refresh_bios_strings(HxEnv *env)
{
    static const struct {
        const char *key, *dmi;
    } map[] = {
        {"bios-vendor", "bios_vendor"},
        {"bios-version", "bios_version"},
        {"system-manufacturer", "sys_vendor"},
        {"system-product-name", "product_name"},
        {"system-version", "product_version"},
        {"system-serial-number", "product_serial"},
        {"baseboard-manufacturer", "board_vendor"},
        {"baseboard-product-name", "board_name"},
        {"baseboard-version", "board_version"},
        {"baseboard-serial-number", "board_serial"},
        {"baseboard-asset-tag", "board_asset_tag"},
        {"enclosure-asset-tag", "chassis_asset_tag"},
    };
    XsValue *m = xv_struct();
    bool any = false;
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        char *v = dmi_value(map[i].dmi);
        any |= v != NULL;
        xv_struct_set_string(m, map[i].key, v ? v : "");
        free(v);
    }
    DbTxn *txn = db_begin(env->db);
    DbObj *host = db_get_class(env->db, XS_CLASS_HOST, env->host_ref);
    if (!any && host) {
        /* No SMBIOS tables here (a virtual machine without DMI): this host's own strings. */
        xv_struct_set_string(m, "bios-vendor", "hyperxe");
        xv_struct_set_string(m, "bios-version", HX_VERSION);
        xv_struct_set_string(m, "system-manufacturer", "hyperxe");
        xv_struct_set_string(m, "system-product-name", "hyperxe host");
        xv_struct_set_string(m, "system-version", HX_VERSION);
        xv_struct_set_string(m, "system-serial-number", db_str(host, F_HOST_UUID));
    }
    xv_struct_set_string(m, "hp-rombios", "");
    xv_struct_set_string(m, "oem-1", "Xen");
    xv_struct_set_string(m, "oem-2", "MS_VM_CERT/SHA1/bdbeb6e0a816d43fa6d3fe8aaef04c2bad9d3e3d");
    if (host && !xv_equal(m, &host->fields[F_HOST_BIOS_STRINGS])) {
        db_set(txn, host, F_HOST_BIOS_STRINGS, m);
        m = NULL;
    }
    xv_free(m);
    db_commit(txn, NULL);
}

bool ops_vm_copy_bios_strings(OpsCtx *ctx, const char *vm, const char *host, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
    DbObj *h = db_get_class(ctx->db, XS_CLASS_HOST, host);
    if (!db_bool(v, F_VM_IS_A_TEMPLATE) &&
        !ops_vm_require_power_state(v, 1u << VM_POWER_STATE_HALTED, errp)) {
        db_abort(txn);
        return false;
    }
    if (v->fields[F_VM_BIOS_STRINGS].n > 0) {
        db_abort(txn);
        xs_err_vm_bios_strings_already_set(errp);
        return false;
    }
    db_set(txn, v, F_VM_BIOS_STRINGS, xv_copy(&h->fields[F_HOST_BIOS_STRINGS]));
    return db_commit(txn, errp);
}

/* ---- clone and copy ------------------------------------------------------------------ */

typedef struct SrcDisk {
    char *vbd;
    char *vdi; /* NULL: empty drive */
    bool is_disk;
    char *new_vdi;
} SrcDisk;

typedef struct SrcVm {
    XsValue *record; /* the VM's fields by index (copies) */
    SrcDisk *disks;
    size_t n_disks;
    char **vifs;
    size_t n_vifs;
} SrcVm;

static void src_release(SrcVm *s)
{
    xv_free(s->record);
    for (size_t i = 0; i < s->n_disks; i++) {
        free(s->disks[i].vbd);
        free(s->disks[i].vdi);
        free(s->disks[i].new_vdi);
    }
    free(s->disks);
    for (size_t i = 0; i < s->n_vifs; i++)
        free(s->vifs[i]);
    free(s->vifs);
}

static bool copy_field(const XsField *f, int idx)
{
    if (f->flags & XS_FIELD_DERIVED)
        return false;
    if (idx == F_VM_BIOS_STRINGS)
        return true;
    return f->qual != XS_QUAL_RO_RUNTIME;
}

/* The new VM's record (inside txn): the source's fields, a fresh identity. */
static DbObj *new_vm_record(DbTxn *txn, DbObj *src, const char *name, XsError **errp)
{
    DbObj *vm = db_create(txn, XS_CLASS_VM, NULL, NULL, errp);
    if (!vm)
        return NULL;
    for (size_t i = 1; i < xs_class_VM.nfields; i++)
        if (copy_field(&xs_class_VM.fields[i], (int)i))
            db_set(txn, vm, (int)i, xv_copy(&src->fields[i]));
    db_set_str(txn, vm, F_VM_NAME_LABEL, name);
    db_set_enum(txn, vm, F_VM_POWER_STATE, VM_POWER_STATE_HALTED);
    db_set_str(txn, vm, F_VM_SUSPEND_VDI, "OpaqueRef:NULL");
    db_set_int(txn, vm, F_VM_DOMID, -1);
    db_set_bool(txn, vm, F_VM_IS_DEFAULT_TEMPLATE, false);
    db_set_str(txn, vm, F_VM_APPLIANCE, "OpaqueRef:NULL");
    db_set(txn, vm, F_VM_BLOCKED_OPERATIONS, xv_struct());
    /* A new MAC seed, so that the clones' VIFs get MACs of their own. */
    if (xv_struct_get(&vm->fields[F_VM_OTHER_CONFIG], "mac_seed")) {
        char u[UUID_STR_LEN];
        uuid_generate_str(u);
        db_map_set(txn, vm, F_VM_OTHER_CONFIG, "mac_seed", u);
    }
    if (!ops_vm_new_metrics(txn, vm, errp))
        return NULL;
    DbObj *m = db_get_class(db_txn_db(txn), XS_CLASS_VM_METRICS, db_str(vm, F_VM_METRICS));
    if (m)
        db_set_datetime(txn, m, F_VM_METRICS_INSTALL_TIME, (int64_t)time(NULL));
    ops_vm_update_allowed(txn, vm);
    return vm;
}

static bool gather_source(OpsCtx *ctx, const char *vm_ref, SrcVm *s, XsError **errp)
{
    memset(s, 0, sizeof(*s));
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
    bool ok = vm != NULL;
    if (vm) {
        size_t nb = db_backref_count(vm, F_VM_VBDS);
        s->disks = xcalloc(nb + 1, sizeof(SrcDisk));
        for (size_t i = 0; i < nb; i++) {
            DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
            SrcDisk *d = &s->disks[s->n_disks++];
            d->vbd = xstrdup(vbd->ref);
            const char *vdi = db_str(vbd, F_VBD_VDI);
            d->vdi = db_get_class(ctx->db, XS_CLASS_VDI, vdi) ? xstrdup(vdi) : NULL;
            d->is_disk = d->vdi && db_enum(vbd, F_VBD_TYPE) != VBD_TYPE_CD;
        }
        size_t nv = db_backref_count(vm, F_VM_VIFS);
        s->vifs = xcalloc(nv + 1, sizeof(char *));
        for (size_t i = 0; i < nv; i++)
            s->vifs[s->n_vifs++] = xstrdup(db_backref(vm, F_VM_VIFS, i)->ref);
    } else {
        xs_err_handle_invalid(errp, "VM", vm_ref);
    }
    db_read_unlock(ctx->db);
    return ok;
}

static void destroy_new_disks(OpsCtx *ctx, SrcVm *s)
{
    for (size_t i = 0; i < s->n_disks; i++) {
        if (!s->disks[i].new_vdi)
            continue;
        XsError *e = NULL;
        vmdisk_destroy(ctx, s->disks[i].new_vdi, &e);
        xs_error_free(e);
        free(s->disks[i].new_vdi);
        s->disks[i].new_vdi = NULL;
    }
}

static bool clone_or_copy(OpsCtx *ctx, const char *vm_ref, const char *name, const char *sr,
                          bool copy, char **ret, XsError **errp)
{
    const char *op = copy ? "copy" : "clone";
    char *token = NULL;
    DbTxn *txn = db_begin(ctx->db);
    DbObj *src = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
    if (!db_bool(src, F_VM_IS_A_TEMPLATE) && !db_bool(src, F_VM_IS_A_SNAPSHOT) &&
        !ops_vm_require_power_state(src, 1u << VM_POWER_STATE_HALTED, errp)) {
        db_abort(txn);
        return false;
    }
    if (db_bool(src, F_VM_IS_CONTROL_DOMAIN)) {
        db_abort(txn);
        xs_err_operation_not_allowed(errp, "The control domain cannot be cloned.");
        return false;
    }
    if (!ops_op_begin(ctx, txn, src, op, &token, errp)) {
        db_abort(txn);
        return false;
    }
    if (!db_commit(txn, errp)) {
        free(token);
        return false;
    }
    SrcVm s;
    bool ok = gather_source(ctx, vm_ref, &s, errp);
    for (size_t i = 0; ok && i < s.n_disks; i++) {
        SrcDisk *d = &s.disks[i];
        if (!d->is_disk)
            continue;
        ok = vmdisk_clone(ctx, d->vdi, copy, sr, &d->new_vdi, errp);
        ops_progress(ctx, 0.9 * (double)(i + 1) / (double)s.n_disks);
    }
    DbObj *vm = NULL;
    if (ok) {
        txn = db_begin(ctx->db);
        src = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
        vm = src ? new_vm_record(txn, src, name, errp) : NULL;
        for (size_t i = 0; vm && i < s.n_disks; i++) {
            DbObj *o = db_get_class(ctx->db, XS_CLASS_VBD, s.disks[i].vbd);
            DbObj *n = o ? db_create(txn, XS_CLASS_VBD, NULL, NULL, errp) : NULL;
            if (!o)
                continue;
            if (!n) {
                vm = NULL;
                break;
            }
            for (size_t f = 1; f < xs_class_VBD.nfields; f++)
                if (copy_field(&xs_class_VBD.fields[f], (int)f))
                    db_set(txn, n, (int)f, xv_copy(&o->fields[f]));
            db_set_str(txn, n, F_VBD_VM, vm->ref);
            if (s.disks[i].new_vdi)
                db_set_str(txn, n, F_VBD_VDI, s.disks[i].new_vdi);
            db_set_bool(txn, n, F_VBD_CURRENTLY_ATTACHED, false);
            ops_update_allowed(txn, n);
        }
        for (size_t i = 0; vm && i < s.n_vifs; i++) {
            DbObj *o = db_get_class(ctx->db, XS_CLASS_VIF, s.vifs[i]);
            DbObj *n = o ? db_create(txn, XS_CLASS_VIF, NULL, NULL, errp) : NULL;
            if (!o)
                continue;
            if (!n) {
                vm = NULL;
                break;
            }
            for (size_t f = 1; f < xs_class_VIF.nfields; f++)
                if (copy_field(&xs_class_VIF.fields[f], (int)f))
                    db_set(txn, n, (int)f, xv_copy(&o->fields[f]));
            db_set_str(txn, n, F_VIF_VM, vm->ref);
            db_set_bool(txn, n, F_VIF_CURRENTLY_ATTACHED, false);
            /* A MAC of its own (from the new seed, else random). */
            char mac[NET_MAC_STRLEN];
            NetMac m;
            unsigned dev = (unsigned)strtoul(db_str(n, F_VIF_DEVICE), NULL, 10);
            const char *seed = xv_struct_get_string(&vm->fields[F_VM_OTHER_CONFIG], "mac_seed");
            if (!seed || net_mac_from_seed(seed, dev, &m) < 0)
                net_mac_random(&m);
            net_mac_format(&m, mac);
            db_set_str(txn, n, F_VIF_MAC, mac);
            db_set_bool(txn, n, F_VIF_MAC_AUTOGENERATED, true);
            ops_update_allowed(txn, n);
        }
        if (vm) {
            char *ref = xstrdup(vm->ref);
            ok = db_commit(txn, errp);
            if (ok)
                *ret = ref;
            else
                free(ref);
        } else {
            db_abort(txn);
            ok = false;
        }
    }
    if (!ok)
        destroy_new_disks(ctx, &s);
    src_release(&s);
    ops_op_end(ctx, XS_CLASS_VM, vm_ref, token);
    free(token);
    return ok;
}

bool ops_vm_clone(OpsCtx *ctx, const char *vm, const char *new_name, char **ret, XsError **errp)
{
    return clone_or_copy(ctx, vm, new_name, NULL, false, ret, errp);
}

bool ops_vm_copy(OpsCtx *ctx, const char *vm, const char *new_name, const char *sr, char **ret,
                 XsError **errp)
{
    return clone_or_copy(ctx, vm, new_name, sr && strcmp(sr, "OpaqueRef:NULL") ? sr : NULL, true,
                         ret, errp);
}

/* ---- provision ------------------------------------------------------------------------ */

typedef struct ProvDisk {
    char device[8];
    int64_t size;
    char *sr; /* SR ref, NULL: the pool's default */
    bool bootable;
    int type;
    char *vdi; /* made */
} ProvDisk;

static bool parse_bool_attr(const char *v, bool dflt)
{
    if (!v)
        return dflt;
    return strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

/* Parses other_config:disks (read lock held). */
static bool parse_disks(Db *db, const char *vm_ref, const char *xml, ProvDisk *disks, size_t *n,
                        XsError **errp)
{
    *n = 0;
    if (!xml || !*xml)
        return true;
    xmlDocPtr doc = strlen(xml) < 64 * 1024
                        ? xmlReadMemory(xml, (int)strlen(xml), "disks.xml", NULL,
                                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)
                        : NULL;
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!root || xmlStrcmp(root->name, BAD_CAST "provision") != 0) {
        xmlFreeDoc(doc);
        xs_err_invalid_value(errp, "other_config:disks", xml);
        return false;
    }
    bool ok = true;
    for (xmlNodePtr d = root->children; d && ok; d = d->next) {
        if (d->type != XML_ELEMENT_NODE || xmlStrcmp(d->name, BAD_CAST "disk") != 0)
            continue;
        if (*n == MAX_PROVISION_DISKS) {
            xs_err_invalid_value(errp, "other_config:disks", "too many disks");
            ok = false;
            break;
        }
        ProvDisk *p = &disks[*n];
        memset(p, 0, sizeof(*p));
        char *dev = (char *)xmlGetProp(d, BAD_CAST "device");
        char *size = (char *)xmlGetProp(d, BAD_CAST "size");
        char *sr = (char *)xmlGetProp(d, BAD_CAST "sr");
        char *boot = (char *)xmlGetProp(d, BAD_CAST "bootable");
        char *type = (char *)xmlGetProp(d, BAD_CAST "type");
        char *end = NULL;
        long long sz = size ? strtoll(size, &end, 10) : -1;
        long dv = dev ? strtol(dev, NULL, 10) : -1;
        if (!dev || dv < 0 || dv >= 16 || !size || *end || sz <= 0) {
            xs_err_invalid_value(errp, "other_config:disks", xml);
            ok = false;
        } else {
            snprintf(p->device, sizeof(p->device), "%ld", dv);
            p->size = sz;
            p->bootable = parse_bool_attr(boot, false);
            int t = type ? xs_enum_index(&xs_enum_vdi_type, type) : VDI_TYPE_SYSTEM;
            p->type = t >= 0 ? t : VDI_TYPE_SYSTEM;
            if (sr && *sr) {
                DbObj *o = db_get_by_uuid(db, XS_CLASS_SR, sr);
                if (!o) {
                    xs_err_uuid_invalid(errp, "SR", sr);
                    ok = false;
                } else {
                    p->sr = xstrdup(o->ref);
                }
            }
            if (ok)
                (*n)++;
        }
        xmlFree(dev);
        xmlFree(size);
        xmlFree(sr);
        xmlFree(boot);
        xmlFree(type);
    }
    xmlFreeDoc(doc);
    return ok;
}

/* The post-install script must live in the directory hyperxe installs them to. */
static bool check_postinstall(const char *vm_ref, const char *script, char **resolved,
                              XsError **errp)
{
    *resolved = NULL;
    char buf[PATH_MAX];
    const char *dir = HX_DATADIR "/post-install-scripts/";
    if (!realpath(script, buf) || strncmp(buf, dir, strlen(dir)) != 0) {
        char *m = xasprintf("illegal provision script %s", script);
        xs_err_permission_denied(errp, m);
        free(m);
        return false;
    }
    *resolved = xstrdup(buf);
    return true;
}

bool ops_vm_provision(OpsCtx *ctx, const char *vm, XsError **errp)
{
    char *token = NULL;
    DbTxn *txn = db_begin(ctx->db);
    DbObj *v = db_get_class(ctx->db, XS_CLASS_VM, vm);
    if (!db_bool(v, F_VM_IS_A_TEMPLATE) &&
        !ops_vm_require_power_state(v, 1u << VM_POWER_STATE_HALTED, errp)) {
        db_abort(txn);
        return false;
    }
    if (!ops_op_begin(ctx, txn, v, "provision", &token, errp)) {
        db_abort(txn);
        return false;
    }
    if (!db_commit(txn, errp)) {
        free(token);
        return false;
    }

    ProvDisk disks[MAX_PROVISION_DISKS];
    size_t n = 0;
    char *script = NULL, *uuid = NULL, *default_sr = NULL;
    bool ok;
    db_read_lock(ctx->db);
    v = db_get_class(ctx->db, XS_CLASS_VM, vm);
    const XsValue *oc = &v->fields[F_VM_OTHER_CONFIG];
    ok = parse_disks(ctx->db, vm, xv_struct_get_string(oc, "disks"), disks, &n, errp);
    const char *post = xv_struct_get_string(oc, "postinstall");
    script = post && *post ? xstrdup(post) : NULL;
    uuid = xstrdup(db_str(v, F_VM_UUID));
    DbObj *pool = db_get_class(ctx->db, XS_CLASS_POOL, ctx->env->pool_ref);
    if (pool) {
        const char *d = db_str(pool, F_POOL_DEFAULT_SR);
        default_sr = db_get_class(ctx->db, XS_CLASS_SR, d) ? xstrdup(d) : NULL;
    }
    const char *pool_sr = pool ? db_str(pool, F_POOL_DEFAULT_SR) : "OpaqueRef:NULL";
    char *pool_sr_copy = xstrdup(pool_sr);
    db_read_unlock(ctx->db);

    char *resolved = NULL;
    if (ok && script)
        ok = check_postinstall(vm, script, &resolved, errp);
    for (size_t i = 0; ok && i < n; i++) {
        if (!disks[i].sr && !default_sr) {
            xs_err_default_sr_not_found(errp, pool_sr_copy);
            ok = false;
        }
    }
    /* The disks, named after their device, as XenServer names them. */
    XsValue *smc = xv_struct();
    xv_struct_set_string(smc, "vmhint", uuid);
    for (size_t i = 0; ok && i < n; i++) {
        ok = vmdisk_create(ctx, disks[i].sr ? disks[i].sr : default_sr, disks[i].size,
                           disks[i].device, "Created by template provisioner", disks[i].type, smc,
                           &disks[i].vdi, errp);
        ops_progress(ctx, 0.8 * (double)(i + 1) / (double)n);
    }
    xv_free(smc);
    if (ok) {
        txn = db_begin(ctx->db);
        v = db_get_class(ctx->db, XS_CLASS_VM, vm);
        for (size_t i = 0; v && ok && i < n; i++) {
            DbObj *vbd = db_create(txn, XS_CLASS_VBD, NULL, NULL, errp);
            if (!vbd) {
                ok = false;
                break;
            }
            db_set_str(txn, vbd, F_VBD_VM, vm);
            db_set_str(txn, vbd, F_VBD_VDI, disks[i].vdi);
            db_set_str(txn, vbd, F_VBD_USERDEVICE, disks[i].device);
            db_set_bool(txn, vbd, F_VBD_BOOTABLE, disks[i].bootable);
            db_set_enum(txn, vbd, F_VBD_MODE, VBD_MODE_RW);
            db_set_enum(txn, vbd, F_VBD_TYPE, VBD_TYPE_DISK);
            db_set_bool(txn, vbd, F_VBD_UNPLUGGABLE, disks[i].type != VDI_TYPE_SYSTEM);
            db_set_bool(txn, vbd, F_VBD_EMPTY, false);
            db_map_set(txn, vbd, F_VBD_OTHER_CONFIG, "owner", "true");
            ops_update_allowed(txn, vbd);
        }
        if (v && ok) {
            db_map_remove(txn, v, F_VM_OTHER_CONFIG, "disks");
            db_map_remove(txn, v, F_VM_OTHER_CONFIG, "postinstall");
            db_set_bool(txn, v, F_VM_IS_A_TEMPLATE, false);
            ops_vm_update_allowed(txn, v);
        }
        if (ok && v)
            ok = db_commit(txn, errp);
        else {
            if (!v)
                xs_err_handle_invalid(errp, "VM", vm);
            db_abort(txn);
            ok = false;
        }
    }
    if (ok && resolved) {
        const char *argv[] = {resolved, uuid, NULL};
        SpawnOptions so = {.timeout_ms = POSTINSTALL_TIMEOUT_MS};
        SpawnResult res;
        int r = spawn_run(argv, &so, &res);
        if (r < 0 || !spawn_result_ok(&res)) {
            StrBuf sb = STRBUF_INIT;
            if (r < 0)
                strbuf_addf(&sb, "%s", strerror(-r));
            else
                spawn_result_describe(&res, &sb);
            xs_error_internal(errp, "the provision script %s failed: %s", resolved, sb.buf);
            strbuf_release(&sb);
            ok = false;
        }
        spawn_result_release(&res);
    }
    if (!ok) {
        /* Nothing half-made: the VBDs and disks go again. */
        txn = db_begin(ctx->db);
        for (size_t i = 0; i < n; i++) {
            DbObj *vdi = disks[i].vdi ? db_get_class(ctx->db, XS_CLASS_VDI, disks[i].vdi) : NULL;
            for (size_t j = vdi ? db_backref_count(vdi, F_VDI_VBDS) : 0; j > 0; j--) {
                DbObj *vbd = db_backref(vdi, F_VDI_VBDS, j - 1);
                if (strcmp(db_str(vbd, F_VBD_VM), vm) == 0)
                    db_delete(txn, vbd);
            }
        }
        db_commit(txn, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        if (!ok && disks[i].vdi) {
            XsError *e = NULL;
            vmdisk_destroy(ctx, disks[i].vdi, &e);
            xs_error_free(e);
        }
        free(disks[i].vdi);
        free(disks[i].sr);
    }
    free(script);
    free(resolved);
    free(uuid);
    free(default_sr);
    free(pool_sr_copy);
    ops_op_end(ctx, XS_CLASS_VM, vm, token);
    free(token);
    return ok;
}
