/*
 * The SR class: creating, introducing, destroying and forgetting storage
 * repositories, scanning them (which also repairs what a crash interrupted),
 * their sizes and allowed operations, and the start-up of storage (plugging
 * every PBD of this host, the tools ISO). The SR drivers themselves are in
 * src/storage/; this file keeps the records and the map from SR to the
 * directory its files are in.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ops/ops.h"
#include "ops/storage_int.h"
#include "util/cleanup.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* ---- directories of plugged SRs and chain locks ------------------------------------- */

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static HashMap dirs = HASHMAP_INIT;  /* sr uuid -> malloc'd dir */
static HashMap locks = HASHMAP_INIT; /* sr uuid -> pthread_mutex_t* (never freed) */
static HashMap keys;                 /* keys owned here */

static const char *own_key(const char *k)
{
    /* hashmap keys must outlive the entries: keep one copy per uuid. */
    const char *have = hashmap_get(&keys, k);
    if (have)
        return have;
    char *c = xstrdup(k);
    hashmap_put(&keys, c, c);
    return c;
}

void ops_sr_set_dir(const char *sr_uuid, const char *dir)
{
    pthread_mutex_lock(&map_lock);
    char *old = dir ? hashmap_put(&dirs, own_key(sr_uuid), xstrdup(dir))
                    : hashmap_remove(&dirs, sr_uuid);
    pthread_mutex_unlock(&map_lock);
    free(old);
}

char *ops_sr_dir_by_uuid(const char *sr_uuid)
{
    pthread_mutex_lock(&map_lock);
    const char *d = hashmap_get(&dirs, sr_uuid);
    char *r = d ? xstrdup(d) : NULL;
    pthread_mutex_unlock(&map_lock);
    return r;
}

void ops_sr_lock(const char *sr_uuid)
{
    pthread_mutex_lock(&map_lock);
    pthread_mutex_t *m = hashmap_get(&locks, sr_uuid);
    if (!m) {
        m = xnew0(pthread_mutex_t, 1);
        pthread_mutex_init(m, NULL);
        hashmap_put(&locks, own_key(sr_uuid), m);
    }
    pthread_mutex_unlock(&map_lock);
    pthread_mutex_lock(m);
}

void ops_sr_unlock(const char *sr_uuid)
{
    pthread_mutex_lock(&map_lock);
    pthread_mutex_t *m = hashmap_get(&locks, sr_uuid);
    pthread_mutex_unlock(&map_lock);
    if (m)
        pthread_mutex_unlock(m);
}

const SrDriver *ops_sr_driver(const DbObj *sr)
{
    return sr_driver_find(db_str(sr, F_SR_TYPE));
}

char *ops_sr_dir(OpsCtx *ctx, const char *sr_ref, XsError **errp)
{
    db_read_lock(ctx->db);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
    char *uuid = sr ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    const SrDriver *drv = sr ? ops_sr_driver(sr) : NULL;
    db_read_unlock(ctx->db);
    if (!uuid) {
        xs_err_handle_invalid(errp, "SR", sr_ref);
        return NULL;
    }
    if (drv && (drv->caps & SR_CAP_DEVICES)) {
        free(uuid);
        xs_err_sr_operation_not_supported(errp, sr_ref);
        return NULL;
    }
    char *d = ops_sr_dir_by_uuid(uuid);
    free(uuid);
    if (!d)
        xs_err_sr_not_attached(errp, sr_ref);
    return d;
}

bool ops_sr_check_file_sr(const DbObj *sr, XsError **errp)
{
    const SrDriver *drv = ops_sr_driver(sr);
    if (!drv || !(drv->caps & SR_CAP_VDI_CREATE)) {
        xs_err_sr_operation_not_supported(errp, sr->ref);
        return false;
    }
    return true;
}

bool ops_sr_check_space(const char *sr_ref, const char *dir, uint64_t need, XsError **errp)
{
    uint64_t size, avail;
    if (sr_space(dir, &size, &avail) < 0)
        return true; /* the write itself will tell */
    /* Keep a little room for metadata growth and the database. */
    uint64_t reserve = MIN(size / 100, 64 * MiB);
    uint64_t usable = avail > reserve ? avail - reserve : 0;
    if (need <= usable)
        return true;
    char rq[32], mx[32];
    snprintf(rq, sizeof(rq), "%" PRIu64, need);
    snprintf(mx, sizeof(mx), "%" PRIu64, usable);
    xs_err_sr_full(errp, rq, mx);
    return false;
}

void ops_sr_io_error(XsError **errp, int code, const char *dir, const char *msg)
{
    if (code == -ENOSPC || code == -EDQUOT) {
        uint64_t size = 0, avail = 0;
        sr_space(dir, &size, &avail);
        char mx[32];
        snprintf(mx, sizeof(mx), "%" PRIu64, avail);
        xs_err_sr_full(errp, "unknown", mx);
        return;
    }
    if (code == -ECANCELED) {
        xs_err_task_cancelled(errp, "");
        return;
    }
    char st[16];
    snprintf(st, sizeof(st), "%d", code < 0 ? -code : code);
    xs_err_sr_backend_failure(errp, st, "", msg ? msg : strerror(code < 0 ? -code : code));
}

/* ---- sizes --------------------------------------------------------------------------- */

void ops_sr_refresh_sizes_txn(DbTxn *txn, DbObj *sr, const char *dir)
{
    int64_t virt = 0;
    size_t n = db_backref_count(sr, F_SR_VDIS);
    for (size_t i = 0; i < n; i++) {
        DbObj *v = db_backref(sr, F_SR_VDIS, i);
        if (db_bool(v, F_VDI_MANAGED))
            virt += db_int(v, F_VDI_VIRTUAL_SIZE);
    }
    if (db_int(sr, F_SR_VIRTUAL_ALLOCATION) != virt)
        db_set_int(txn, sr, F_SR_VIRTUAL_ALLOCATION, virt);
    uint64_t size, avail;
    if (dir && sr_space(dir, &size, &avail) == 0) {
        if (db_int(sr, F_SR_PHYSICAL_SIZE) != (int64_t)size)
            db_set_int(txn, sr, F_SR_PHYSICAL_SIZE, (int64_t)size);
        if (db_int(sr, F_SR_PHYSICAL_UTILISATION) != (int64_t)(size - avail))
            db_set_int(txn, sr, F_SR_PHYSICAL_UTILISATION, (int64_t)(size - avail));
    } else if (!dir) {
        int64_t used = 0;
        for (size_t i = 0; i < n; i++)
            used += db_int(db_backref(sr, F_SR_VDIS, i), F_VDI_PHYSICAL_UTILISATION);
        if (db_int(sr, F_SR_PHYSICAL_UTILISATION) != used)
            db_set_int(txn, sr, F_SR_PHYSICAL_UTILISATION, used);
        if (db_int(sr, F_SR_PHYSICAL_SIZE) != used)
            db_set_int(txn, sr, F_SR_PHYSICAL_SIZE, used);
    }
}

void ops_sr_refresh_sizes(OpsCtx *ctx, const char *sr_ref)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
    if (sr) {
        char *dir = ops_sr_dir_by_uuid(db_str(sr, F_SR_UUID));
        ops_sr_refresh_sizes_txn(txn, sr, dir);
        free(dir);
    }
    db_commit(txn, NULL);
}

/* ---- allowed operations ------------------------------------------------------------------ */

void ops_sr_update_allowed(DbTxn *txn, DbObj *sr)
{
    XsValue *a = xv_array();
    if (sr->fields[F_SR_CURRENT_OPERATIONS].n == 0) {
        const SrDriver *drv = ops_sr_driver(sr);
        bool files = drv && (drv->caps & SR_CAP_VDI_CREATE);
        bool plugged = false;
        size_t np = db_backref_count(sr, F_SR_PBDS);
        for (size_t i = 0; i < np; i++)
            plugged = plugged || db_bool(db_backref(sr, F_SR_PBDS, i), F_PBD_CURRENTLY_ATTACHED);
        static const int always[] = {STORAGE_OPERATIONS_PBD_CREATE, STORAGE_OPERATIONS_PBD_DESTROY,
                                     STORAGE_OPERATIONS_PLUG, STORAGE_OPERATIONS_UNPLUG};
        static const int attached[] = {STORAGE_OPERATIONS_SCAN, STORAGE_OPERATIONS_UPDATE,
                                       STORAGE_OPERATIONS_VDI_INTRODUCE};
        static const int file_ops[] = {
            STORAGE_OPERATIONS_VDI_CREATE,   STORAGE_OPERATIONS_VDI_DESTROY,
            STORAGE_OPERATIONS_VDI_RESIZE,   STORAGE_OPERATIONS_VDI_CLONE,
            STORAGE_OPERATIONS_VDI_SNAPSHOT, STORAGE_OPERATIONS_VDI_SET_ON_BOOT};
        if (!plugged) {
            xv_array_push_string(a, xs_enum_storage_operations.values[STORAGE_OPERATIONS_DESTROY]);
            xv_array_push_string(a, xs_enum_storage_operations.values[STORAGE_OPERATIONS_FORGET]);
        }
        for (size_t i = 0; i < ARRAY_SIZE(always); i++)
            xv_array_push_string(a, xs_enum_storage_operations.values[always[i]]);
        for (size_t i = 0; plugged && i < ARRAY_SIZE(attached); i++)
            xv_array_push_string(a, xs_enum_storage_operations.values[attached[i]]);
        for (size_t i = 0; plugged && files && i < ARRAY_SIZE(file_ops); i++)
            xv_array_push_string(a, xs_enum_storage_operations.values[file_ops[i]]);
    }
    if (xv_equal(a, &sr->fields[F_SR_ALLOWED_OPERATIONS]))
        xv_free(a);
    else
        db_set(txn, sr, F_SR_ALLOWED_OPERATIONS, a);
}

/* ---- reconciliation --------------------------------------------------------------------------- */

typedef struct DirEntry {
    char uuid[UUID_STR_LEN];
    VdiNameKind kind;
    bool reset;
    char *name;
} DirEntry;

static int list_dir(const char *dir, DirEntry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t alloc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        DirEntry e = {0};
        if (!vdi_file_parse_name(de->d_name, &e.kind, e.uuid, &e.reset))
            continue;
        e.name = xstrdup(de->d_name);
        XGROW(*out, *n + 1, alloc);
        (*out)[(*n)++] = e;
    }
    closedir(d);
    return 0;
}

static bool has_entry(const DirEntry *e, size_t n, const char *uuid, VdiNameKind kind)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].kind == kind && !e[i].reset && strcmp(e[i].uuid, uuid) == 0)
            return true;
    return false;
}

/* Is a reset overlay (.hx-reset-<vdi>-<vm>.qcow2) still used by a running VM? */
static bool reset_overlay_in_use(Db *db, const char *name)
{
    const char *p = name + strlen(".hx-reset-");
    char vdi_uuid[UUID_STR_LEN], vm_uuid[UUID_STR_LEN];
    if (strlen(p) < 2 * 36 + 1 + 6)
        return false;
    memcpy(vdi_uuid, p, 36);
    vdi_uuid[36] = '\0';
    memcpy(vm_uuid, p + 37, 36);
    vm_uuid[36] = '\0';
    DbObj *vdi = db_get_by_uuid(db, XS_CLASS_VDI, vdi_uuid);
    DbObj *vm = db_get_by_uuid(db, XS_CLASS_VM, vm_uuid);
    if (!vdi || !vm)
        return false;
    size_t n = db_backref_count(vdi, F_VDI_VBDS);
    for (size_t i = 0; i < n; i++) {
        DbObj *vbd = db_backref(vdi, F_VDI_VBDS, i);
        if (strcmp(db_str(vbd, F_VBD_VM), vm->ref) == 0 &&
            db_bool(vbd, F_VBD_CURRENTLY_ATTACHED))
            return true;
    }
    return false;
}

/* Records the file-level repairs first (names), then the record-level ones. */
static void reconcile_files(OpsCtx *ctx, const char *sr_ref, const char *dir, bool at_startup)
{
    Db *db = ctx->db;
    DirEntry *ents;
    size_t n;
    if (list_dir(dir, &ents, &n) < 0)
        return;
    db_read_lock(db);
    for (size_t i = 0; i < n; i++) {
        DirEntry *e = &ents[i];
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, e->name);
        if (e->reset) {
            if (!reset_overlay_in_use(db, e->name)) {
                log_info("removing the on-boot=reset overlay %s of a VM that is not running",
                         path);
                unlink(path);
            }
            continue;
        }
        DbObj *v = db_get_by_uuid(db, XS_CLASS_VDI, e->uuid);
        bool ours = v && strcmp(db_str(v, F_VDI_SR), sr_ref) == 0;
        if (e->kind == VDI_NAME_TRASH) {
            if (ours && !has_entry(ents, n, e->uuid, VDI_NAME_FINAL)) {
                log_warn("restoring %s: its VDI still exists", path);
                vdi_file_untrash(dir, e->uuid, NULL);
            } else {
                log_info("removing %s, left by an interrupted destroy", path);
                unlink(path);
            }
        } else if (e->kind == VDI_NAME_TMP) {
            /* Publish a file the committed record expects, drop anything else. */
            bool publish = false;
            if (ours) {
                VdiFileInfo ti;
                const char *want = ops_vdi_parent_uuid(v);
                bool tmp_ok = vdi_file_info(path, &ti, NULL) == 0 &&
                              strcmp(ti.parent_uuid, want) == 0;
                if (!has_entry(ents, n, e->uuid, VDI_NAME_FINAL)) {
                    publish = tmp_ok;
                } else {
                    _cleanup_free_ char *fin = vdi_file_path(dir, e->uuid, VDI_NAME_FINAL);
                    VdiFileInfo fi;
                    bool fin_ok = vdi_file_info(fin, &fi, NULL) == 0 &&
                                  strcmp(fi.parent_uuid, want) == 0;
                    publish = tmp_ok && !fin_ok;
                }
            }
            if (publish) {
                log_warn("finishing an interrupted change: publishing %s", path);
                vdi_file_publish(dir, e->uuid, NULL);
            } else {
                log_info("removing %s, left by an interrupted operation", path);
                unlink(path);
            }
        }
    }
    db_read_unlock(db);
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    (void)at_startup;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const DirEntry *)a)->uuid, ((const DirEntry *)b)->uuid);
}

/* Orphans become VDIs, records without files become missing, parents follow the files. */
static bool reconcile_records(OpsCtx *ctx, const char *sr_ref, const char *dir, XsError **errp)
{
    Db *db = ctx->db;
    DirEntry *ents;
    size_t n;
    int r = list_dir(dir, &ents, &n);
    if (r < 0) {
        ops_sr_io_error(errp, r, dir, "cannot list the SR directory");
        return false;
    }
    if (n)
        qsort(ents, n, sizeof(DirEntry), entry_cmp);
    /* File facts, read outside the transaction. */
    VdiFileInfo *info = xcalloc(n ? n : 1, sizeof(VdiFileInfo));
    bool *valid = xcalloc(n ? n : 1, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        if (ents[i].kind != VDI_NAME_FINAL || ents[i].reset)
            continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, ents[i].name);
        char *msg = NULL;
        valid[i] = vdi_file_info(p, &info[i], &msg) == 0 && strcmp(info[i].format, "qcow2") == 0;
        if (!valid[i])
            log_warn("ignoring %s: %s", p, msg ? msg : "not a qcow2 image");
        free(msg);
    }
    DbTxn *txn = db_begin(db);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    if (!sr) {
        db_abort(txn);
        xs_err_handle_invalid(errp, "SR", sr_ref);
        goto out;
    }
    /* Orphans (sorted so that parents come first is not needed: parents are by uuid). */
    for (size_t i = 0; i < n; i++) {
        if (!valid[i])
            continue;
        DbObj *v = db_get_by_uuid(db, XS_CLASS_VDI, ents[i].uuid);
        if (v)
            continue;
        bool is_parent = false;
        for (size_t j = 0; j < n && !is_parent; j++)
            is_parent = valid[j] && strcmp(info[j].parent_uuid, ents[i].uuid) == 0;
        v = db_create(txn, XS_CLASS_VDI, NULL, ents[i].uuid, NULL);
        if (!v)
            continue;
        OpsVdiSpec spec = {.type = VDI_TYPE_USER,
                           .virtual_size = (int64_t)info[i].virtual_size,
                           .name_label = is_parent ? OPS_BASE_COPY_NAME : "",
                           .read_only = is_parent};
        ops_vdi_init_record(txn, v, sr, &spec, info[i].parent_uuid);
        db_set_bool(txn, v, F_VDI_MANAGED, !is_parent);
        db_set_int(txn, v, F_VDI_PHYSICAL_UTILISATION, (int64_t)info[i].allocated);
        log_info("sr-scan: the file %s/%s becomes VDI %s", dir, ents[i].name, ents[i].uuid);
    }
    /* Records: missing files, parents and sizes from the files. */
    size_t nv = db_backref_count(sr, F_SR_VDIS);
    for (size_t k = 0; k < nv; k++) {
        DbObj *v = db_backref(sr, F_SR_VDIS, k);
        DirEntry key = {0};
        snprintf(key.uuid, sizeof(key.uuid), "%s", db_str(v, F_VDI_UUID));
        DirEntry *e = n ? bsearch(&key, ents, n, sizeof(DirEntry), entry_cmp) : NULL;
        /* bsearch may land on a tmp/trash entry of the same uuid: look around. */
        ssize_t idx = -1;
        if (e) {
            size_t at = (size_t)(e - ents);
            size_t lo = at, hi = at;
            while (lo > 0 && strcmp(ents[lo - 1].uuid, key.uuid) == 0)
                lo--;
            while (hi + 1 < n && strcmp(ents[hi + 1].uuid, key.uuid) == 0)
                hi++;
            for (size_t j = lo; j <= hi; j++)
                if (valid[j])
                    idx = (ssize_t)j;
        }
        bool missing = idx < 0;
        if (db_bool(v, F_VDI_MISSING) != missing) {
            db_set_bool(txn, v, F_VDI_MISSING, missing);
            if (missing)
                log_warn("VDI %s has no file in %s: marked missing", key.uuid, dir);
        }
        if (missing)
            continue;
        const VdiFileInfo *fi = &info[idx];
        if (strcmp(ops_vdi_parent_uuid(v), fi->parent_uuid) != 0) {
            log_warn("VDI %s: its file's parent is \"%s\", the record said \"%s\": following "
                     "the file", key.uuid, fi->parent_uuid, ops_vdi_parent_uuid(v));
            if (*fi->parent_uuid)
                db_map_set(txn, v, F_VDI_SM_CONFIG, "vhd-parent", fi->parent_uuid);
            else
                db_map_remove(txn, v, F_VDI_SM_CONFIG, "vhd-parent");
        }
        if (db_int(v, F_VDI_PHYSICAL_UTILISATION) != (int64_t)fi->allocated)
            db_set_int(txn, v, F_VDI_PHYSICAL_UTILISATION, (int64_t)fi->allocated);
        if (db_int(v, F_VDI_VIRTUAL_SIZE) != (int64_t)fi->virtual_size)
            db_set_int(txn, v, F_VDI_VIRTUAL_SIZE, (int64_t)fi->virtual_size);
    }
    /* Base copies that lost their file and have no children: gone. */
    nv = db_backref_count(sr, F_SR_VDIS);
    for (size_t k = nv; k-- > 0;) {
        DbObj *v = db_backref(sr, F_SR_VDIS, k);
        if (!db_bool(v, F_VDI_MANAGED) && db_bool(v, F_VDI_MISSING) &&
            ops_vdi_children(db, sr, db_str(v, F_VDI_UUID), NULL) == 0) {
            log_warn("removing the record of base copy %s: its file is gone and nothing uses it",
                     db_str(v, F_VDI_UUID));
            db_delete(txn, v);
        }
    }
    nv = db_backref_count(sr, F_SR_VDIS);
    for (size_t k = 0; k < nv; k++) {
        DbObj *v = db_backref(sr, F_SR_VDIS, k);
        if (!*ops_vdi_parent_uuid(v))
            ops_vdi_update_depths_txn(txn, sr, v);
    }
    ops_sr_refresh_sizes_txn(txn, sr, dir);
    if (!db_commit(txn, errp))
        goto out;
    free(info);
    free(valid);
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    return true;
out:
    free(info);
    free(valid);
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    return false;
}

/* ISO and udev SRs: one VDI per item, matched by location. */
static bool reconcile_items(OpsCtx *ctx, const char *sr_ref, const SrItem *items, size_t n,
                            XsError **errp)
{
    Db *db = ctx->db;
    DbTxn *txn = db_begin(db);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    if (!sr) {
        db_abort(txn);
        xs_err_handle_invalid(errp, "SR", sr_ref);
        return false;
    }
    bool tools = xv_struct_get_string(&sr->fields[F_SR_OTHER_CONFIG], "xenserver_tools_sr") != NULL;
    bool *seen = xcalloc(n ? n : 1, sizeof(bool));
    size_t nv = db_backref_count(sr, F_SR_VDIS);
    for (size_t k = 0; k < nv; k++) {
        DbObj *v = db_backref(sr, F_SR_VDIS, k);
        const char *loc = db_str(v, F_VDI_LOCATION);
        ssize_t idx = -1;
        for (size_t i = 0; i < n && idx < 0; i++)
            if (strcmp(items[i].location, loc) == 0)
                idx = (ssize_t)i;
        bool missing = idx < 0;
        if (db_bool(v, F_VDI_MISSING) != missing)
            db_set_bool(txn, v, F_VDI_MISSING, missing);
        if (missing)
            continue;
        seen[idx] = true;
        if (db_int(v, F_VDI_VIRTUAL_SIZE) != (int64_t)items[idx].size)
            db_set_int(txn, v, F_VDI_VIRTUAL_SIZE, (int64_t)items[idx].size);
        if (db_int(v, F_VDI_PHYSICAL_UTILISATION) != (int64_t)items[idx].allocated)
            db_set_int(txn, v, F_VDI_PHYSICAL_UTILISATION, (int64_t)items[idx].allocated);
    }
    for (size_t i = 0; i < n; i++) {
        if (seen[i])
            continue;
        DbObj *v = db_create(txn, XS_CLASS_VDI, NULL, NULL, NULL);
        if (!v)
            continue;
        db_set_str(txn, v, F_VDI_SR, sr->ref);
        db_set_str(txn, v, F_VDI_NAME_LABEL, items[i].name);
        db_set_str(txn, v, F_VDI_LOCATION, items[i].location);
        db_set_int(txn, v, F_VDI_VIRTUAL_SIZE, (int64_t)items[i].size);
        db_set_int(txn, v, F_VDI_PHYSICAL_UTILISATION, (int64_t)items[i].allocated);
        db_set_enum(txn, v, F_VDI_TYPE, VDI_TYPE_USER);
        db_set_bool(txn, v, F_VDI_READ_ONLY, true);
        db_set_bool(txn, v, F_VDI_SHARABLE, true);
        db_set_bool(txn, v, F_VDI_MANAGED, true);
        if (tools && strcmp(items[i].location, "guest-tools.iso") == 0)
            db_set_bool(txn, v, F_VDI_IS_TOOLS_ISO, true);
        ops_vdi_update_allowed(txn, v);
    }
    free(seen);
    ops_sr_refresh_sizes_txn(txn, sr, NULL);
    return db_commit(txn, errp);
}

bool ops_sr_reconcile(OpsCtx *ctx, const char *sr_ref, bool at_startup, XsError **errp)
{
    db_read_lock(ctx->db);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
    const SrDriver *drv = sr ? ops_sr_driver(sr) : NULL;
    char *uuid = sr ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    char *type = sr ? xstrdup(db_str(sr, F_SR_TYPE)) : NULL;
    db_read_unlock(ctx->db);
    if (!uuid) {
        xs_err_handle_invalid(errp, "SR", sr_ref);
        return false;
    }
    if (!drv) {
        xs_err_sr_unknown_driver(errp, type);
        free(uuid);
        free(type);
        return false;
    }
    free(type);
    bool ok;
    if (drv->caps & SR_CAP_DEVICES) {
        SrItem *items;
        size_t n;
        sr_udev_list(NULL, NULL, &items, &n);
        ok = reconcile_items(ctx, sr_ref, items, n, errp);
        sr_items_free(items, n);
        free(uuid);
        return ok;
    }
    char *dir = ops_sr_dir(ctx, sr_ref, errp);
    if (!dir) {
        free(uuid);
        return false;
    }
    if (drv->caps & SR_CAP_ISO) {
        SrItem *items;
        size_t n;
        char *msg = NULL;
        int r = sr_iso_list(dir, &items, &n, &msg);
        if (r < 0) {
            ops_sr_io_error(errp, r, dir, msg);
            free(msg);
            ok = false;
        } else {
            ok = reconcile_items(ctx, sr_ref, items, n, errp);
            sr_items_free(items, n);
        }
    } else {
        ops_sr_lock(uuid);
        reconcile_files(ctx, sr_ref, dir, at_startup);
        ok = reconcile_records(ctx, sr_ref, dir, errp);
        if (ok) {
            /* Chains left mergeable (an interrupted or deferred merge). */
            db_read_lock(ctx->db);
            sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
            size_t nv = sr ? db_backref_count(sr, F_SR_VDIS) : 0;
            char **bases = xcalloc(nv + 1, sizeof(char *));
            size_t nb = 0;
            for (size_t k = 0; k < nv; k++) {
                DbObj *v = db_backref(sr, F_SR_VDIS, k);
                if (!db_bool(v, F_VDI_MANAGED) &&
                    ops_vdi_children(ctx->db, sr, db_str(v, F_VDI_UUID), NULL) < 2)
                    bases[nb++] = xstrdup(db_str(v, F_VDI_UUID));
            }
            db_read_unlock(ctx->db);
            for (size_t k = 0; k < nb; k++) {
                ops_vdi_chain_gc(ctx, sr_ref, dir, bases[k]);
                free(bases[k]);
            }
            free(bases);
        }
        ops_sr_unlock(uuid);
    }
    free(dir);
    free(uuid);
    return ok;
}

/* ---- XenAPI messages ----------------------------------------------------------------------- */

typedef struct MapLookup {
    const XsValue *map;
} MapLookup;

static const char *map_config(void *opaque, const char *key)
{
    return xv_struct_get_string(((MapLookup *)opaque)->map, key);
}

static void rm_rf_sr_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        VdiNameKind k;
        char u[UUID_STR_LEN];
        bool reset;
        if (vdi_file_parse_name(de->d_name, &k, u, &reset))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

bool ops_sr_create(OpsCtx *ctx, const char *host, const XsValue *device_config,
                   int64_t physical_size, const char *name_label, const char *name_description,
                   const char *type, const char *content_type, bool shared,
                   const XsValue *sm_config, char **ret, XsError **errp)
{
    const SrDriver *drv = sr_driver_find(type);
    if (!drv) {
        xs_err_sr_unknown_driver(errp, type);
        return false;
    }
    char uuid[UUID_STR_LEN];
    uuid_generate_str(uuid);
    XsValue *dc = xv_copy(device_config);
    bool made_dir = false;
    if (strcmp(drv->type, "ext") == 0 && !xv_struct_get_string(dc, "path")) {
        char *p = xasprintf("%s/sr/%s", ctx->env->state_dir, uuid);
        xv_struct_set_string(dc, "path", p);
        free(p);
        made_dir = true;
    }
    MapLookup ml = {dc};
    SrAttachArgs aa = {.sr_uuid = uuid, .state_dir = ctx->env->state_dir, .config = map_config,
                       .opaque = &ml};
    char *msg = NULL;
    char *dir = NULL;
    struct stat st;
    const char *path = xv_struct_get_string(dc, "path");
    bool existed = path && stat(path, &st) == 0;
    int r = drv->create ? drv->create(&aa, &msg) : 0;
    if (r == 0)
        r = drv->attach(&aa, &dir, &msg);
    if (r < 0) {
        xs_err_sr_backend_failure(errp, "", "", msg ? msg : strerror(-r));
        free(msg);
        xv_free(dc);
        return false;
    }
    made_dir = made_dir || (strcmp(drv->type, "ext") == 0 && !existed);
    DbTxn *txn = db_begin(ctx->db);
    DbObj *sr = db_create(txn, XS_CLASS_SR, NULL, uuid, errp);
    DbObj *pbd = sr ? db_create(txn, XS_CLASS_PBD, NULL, NULL, errp) : NULL;
    if (!pbd) {
        db_abort(txn);
        goto fail;
    }
    db_set_str(txn, sr, F_SR_NAME_LABEL, name_label);
    db_set_str(txn, sr, F_SR_NAME_DESCRIPTION, name_description);
    db_set_str(txn, sr, F_SR_TYPE, drv->type);
    db_set_str(txn, sr, F_SR_CONTENT_TYPE, *content_type ? content_type : drv->content_type);
    db_set_bool(txn, sr, F_SR_SHARED, shared || (drv->caps & SR_CAP_SHARED));
    db_set(txn, sr, F_SR_SM_CONFIG, xv_copy(sm_config));
    db_set_str(txn, pbd, F_PBD_HOST, host);
    db_set_str(txn, pbd, F_PBD_SR, sr->ref);
    db_set(txn, pbd, F_PBD_DEVICE_CONFIG, dc);
    dc = NULL;
    db_set_bool(txn, pbd, F_PBD_CURRENTLY_ATTACHED, true);
    ops_sr_refresh_sizes_txn(txn, sr, dir);
    ops_sr_update_allowed(txn, sr);
    char *ref = xstrdup(sr->ref);
    if (!db_commit(txn, errp)) {
        free(ref);
        goto fail;
    }
    if (dir)
        ops_sr_set_dir(uuid, dir);
    free(dir);
    (void)physical_size;
    XsError *serr = NULL;
    if (!ops_sr_reconcile(ctx, ref, false, &serr)) {
        log_warn("scan of the new SR %s failed: %s", uuid, serr ? serr->code : "?");
        xs_error_free(serr);
    }
    *ret = ref;
    return true;
fail:
    if (drv->detach)
        drv->detach(&aa, NULL);
    if (made_dir && dir)
        rmdir(dir);
    free(dir);
    xv_free(dc);
    return false;
}

bool ops_sr_introduce(OpsCtx *ctx, const char *uuid, const char *name_label,
                      const char *name_description, const char *type, const char *content_type,
                      bool shared, const XsValue *sm_config, char **ret, XsError **errp)
{
    const SrDriver *drv = sr_driver_find(type);
    if (!drv) {
        xs_err_sr_unknown_driver(errp, type);
        return false;
    }
    char gen[UUID_STR_LEN];
    if (!*uuid) {
        uuid_generate_str(gen);
        uuid = gen;
    }
    if (!uuid_is_valid(uuid)) {
        xs_err_invalid_value(errp, "uuid", uuid);
        return false;
    }
    DbTxn *txn = db_begin(ctx->db);
    if (db_get_by_uuid(ctx->db, XS_CLASS_SR, uuid)) {
        db_abort(txn);
        xs_err_sr_uuid_exists(errp, uuid);
        return false;
    }
    DbObj *sr = db_create(txn, XS_CLASS_SR, NULL, uuid, errp);
    if (!sr) {
        db_abort(txn);
        return false;
    }
    db_set_str(txn, sr, F_SR_NAME_LABEL, name_label);
    db_set_str(txn, sr, F_SR_NAME_DESCRIPTION, name_description);
    db_set_str(txn, sr, F_SR_TYPE, drv->type);
    db_set_str(txn, sr, F_SR_CONTENT_TYPE, *content_type ? content_type : drv->content_type);
    db_set_bool(txn, sr, F_SR_SHARED, shared);
    db_set(txn, sr, F_SR_SM_CONFIG, xv_copy(sm_config));
    ops_sr_update_allowed(txn, sr);
    char *ref = xstrdup(sr->ref);
    if (!db_commit(txn, errp)) {
        free(ref);
        return false;
    }
    *ret = ref;
    return true;
}

/* Common checks of destroy and forget: no PBD plugged, no VDI in use. */
static bool check_unplugged(Db *db, DbObj *sr, XsError **errp)
{
    size_t np = db_backref_count(sr, F_SR_PBDS);
    for (size_t i = 0; i < np; i++)
        if (db_bool(db_backref(sr, F_SR_PBDS, i), F_PBD_CURRENTLY_ATTACHED)) {
            xs_err_sr_has_pbd(errp, sr->ref);
            return false;
        }
    size_t nv = db_backref_count(sr, F_SR_VDIS);
    for (size_t i = 0; i < nv; i++)
        if (!ops_vdi_check_not_attached(db, db_backref(sr, F_SR_VDIS, i), "destroy", errp))
            return false;
    return true;
}

static void delete_sr_records(DbTxn *txn, Db *db, DbObj *sr)
{
    size_t n;
    while ((n = db_backref_count(sr, F_SR_VDIS)) > 0) {
        DbObj *v = db_backref(sr, F_SR_VDIS, n - 1);
        size_t nb;
        while ((nb = db_backref_count(v, F_VDI_VBDS)) > 0) {
            DbObj *vbd = db_backref(v, F_VDI_VBDS, nb - 1);
            /* A CD drive keeps existing, empty. */
            if (db_enum(vbd, F_VBD_TYPE) == VBD_TYPE_CD) {
                db_set_str(txn, vbd, F_VBD_VDI, "OpaqueRef:NULL");
                db_set_bool(txn, vbd, F_VBD_EMPTY, true);
            } else {
                db_delete(txn, vbd);
            }
        }
        db_delete(txn, v);
    }
    while ((n = db_backref_count(sr, F_SR_PBDS)) > 0)
        db_delete(txn, db_backref(sr, F_SR_PBDS, n - 1));
    /* References from the pool and hosts go too. */
    static const struct {
        int cls, field;
    } refs[] = {
        {XS_CLASS_POOL, F_POOL_DEFAULT_SR},
        {XS_CLASS_POOL, F_POOL_SUSPEND_IMAGE_SR},
        {XS_CLASS_POOL, F_POOL_CRASH_DUMP_SR},
        {XS_CLASS_HOST, F_HOST_SUSPEND_IMAGE_SR},
        {XS_CLASS_HOST, F_HOST_CRASH_DUMP_SR},
    };
    for (size_t k = 0; k < ARRAY_SIZE(refs); k++) {
        DbObj *const *objs = db_list(db, refs[k].cls, &n);
        for (size_t i = 0; i < n; i++)
            if (strcmp(db_str(objs[i], refs[k].field), sr->ref) == 0)
                db_set_str(txn, objs[i], refs[k].field, "OpaqueRef:NULL");
    }
    db_delete(txn, sr);
}

static bool is_tools_sr(const DbObj *sr)
{
    return xv_struct_get_string(&sr->fields[F_SR_OTHER_CONFIG], "xenserver_tools_sr") != NULL;
}

bool ops_sr_forget(OpsCtx *ctx, const char *sr_ref, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
    if (!check_unplugged(ctx->db, sr, errp)) {
        db_abort(txn);
        return false;
    }
    if (is_tools_sr(sr)) {
        db_abort(txn);
        xs_err_operation_not_allowed(errp, "The hyperxe Tools SR belongs to the host and cannot "
                                           "be forgotten or destroyed.");
        return false;
    }
    delete_sr_records(txn, ctx->db, sr);
    return db_commit(txn, errp);
}

bool ops_sr_destroy(OpsCtx *ctx, const char *sr_ref, XsError **errp)
{
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    bool ok = check_unplugged(db, sr, errp);
    if (ok && is_tools_sr(sr)) {
        xs_err_operation_not_allowed(errp, "The hyperxe Tools SR belongs to the host and cannot "
                                           "be forgotten or destroyed.");
        ok = false;
    }
    const SrDriver *drv = ok ? ops_sr_driver(sr) : NULL;
    char *uuid = xstrdup(db_str(sr, F_SR_UUID));
    XsValue *dc = NULL;
    if (ok && db_backref_count(sr, F_SR_PBDS) > 0)
        dc = xv_copy(&db_backref(sr, F_SR_PBDS, 0)->fields[F_PBD_DEVICE_CONFIG]);
    db_read_unlock(db);
    if (!ok) {
        free(uuid);
        return false;
    }
    /* Files SRs: attach for a moment to delete the VDI files. */
    if (drv && (drv->caps & SR_CAP_VDI_CREATE) && dc) {
        MapLookup ml = {dc};
        SrAttachArgs aa = {.sr_uuid = uuid, .state_dir = ctx->env->state_dir,
                           .config = map_config, .opaque = &ml};
        char *dir = NULL, *msg = NULL;
        int r = drv->attach(&aa, &dir, &msg);
        if (r < 0) {
            xs_err_sr_backend_failure(errp, "", "", msg ? msg : strerror(-r));
            free(msg);
            free(uuid);
            xv_free(dc);
            return false;
        }
        ops_sr_lock(uuid);
        rm_rf_sr_files(dir);
        if (rmdir(dir) != 0 && errno != ENOENT)
            log_info("left the SR directory %s in place: %s", dir, strerror(errno));
        ops_sr_unlock(uuid);
        if (drv->detach)
            drv->detach(&aa, NULL);
        free(dir);
    }
    xv_free(dc);
    DbTxn *txn = db_begin(db);
    sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    if (sr)
        delete_sr_records(txn, db, sr);
    free(uuid);
    return db_commit(txn, errp);
}

bool ops_sr_scan(OpsCtx *ctx, const char *sr, XsError **errp)
{
    return ops_sr_reconcile(ctx, sr, false, errp);
}

bool ops_sr_update(OpsCtx *ctx, const char *sr, XsError **errp)
{
    ops_sr_refresh_sizes(ctx, sr);
    return true;
}

bool ops_sr_get_supported_types(OpsCtx *ctx, XsValue **ret, XsError **errp)
{
    XsValue *a = xv_array();
    for (const SrDriver *const *d = sr_drivers(); *d; d++)
        xv_array_push_string(a, (*d)->type);
    *ret = a;
    return true;
}

/* ---- start-up -------------------------------------------------------------------------------- */

/* Where guest-tools.iso comes from: the build tree when running from it. */
static char *tools_iso_source(void)
{
    const char *env = getenv("HYPERXE_TOOLS_ISO");
    if (env && *env)
        return xstrdup(env);
    char exe[4096];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (l > 0) {
        exe[l] = '\0';
        if (STRPREFIX(exe, HX_BUILD_ROOT "/")) {
            char *p = xasprintf("%s/src/agent/guest-tools.iso", HX_BUILD_ROOT);
            if (access(p, R_OK) == 0)
                return p;
            free(p);
        }
    }
    char *p = xasprintf("%s/guest-tools.iso", HX_DATADIR);
    if (access(p, R_OK) == 0)
        return p;
    free(p);
    return NULL;
}

/* Puts guest-tools.iso into the tools SR directory (a copy, replaced when it changed). */
static void install_tools_iso(const char *dir)
{
    _cleanup_free_ char *src = tools_iso_source();
    if (!src) {
        log_info("no guest-tools.iso found (build it, or install hyperxe): the hyperxe Tools SR "
                 "stays empty");
        return;
    }
    _cleanup_free_ char *dst = xasprintf("%s/guest-tools.iso", dir);
    struct stat ss, ds;
    if (stat(src, &ss) != 0)
        return;
    if (stat(dst, &ds) == 0 && ds.st_size == ss.st_size && ds.st_mtime >= ss.st_mtime)
        return;
    _cleanup_free_ char *tmp = xasprintf("%s/.guest-tools.iso.tmp", dir);
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || out < 0) {
        log_warn("cannot install %s into %s: %s", src, dir, strerror(errno));
        return;
    }
    char buf[65536];
    ssize_t k;
    bool ok = true;
    while ((k = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)k) != k) {
            ok = false;
            break;
        }
    if (k < 0 || !ok || fsync(out) != 0 || rename(tmp, dst) != 0) {
        log_warn("cannot install %s into %s: %s", src, dir, strerror(errno));
        unlink(tmp);
        return;
    }
    log_info("installed %s as %s", src, dst);
}

bool ops_storage_startup(HxEnv *env, XsError **errp)
{
    OpsCtx ctx = {.env = env, .db = env->db, .role = XS_ROLE_POOL_ADMIN, .user = "root"};
    Db *db = env->db;
    /* Plug every PBD of this host that should be plugged. */
    db_read_lock(db);
    size_t n;
    DbObj *const *pbds = db_list(db, XS_CLASS_PBD, &n);
    char **refs = xcalloc(n + 1, sizeof(char *));
    size_t nr = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(db_str(pbds[i], F_PBD_HOST), env->host_ref) == 0 &&
            db_bool(pbds[i], F_PBD_CURRENTLY_ATTACHED))
            refs[nr++] = xstrdup(pbds[i]->ref);
    db_read_unlock(db);
    for (size_t i = 0; i < nr; i++) {
        XsError *err = NULL;
        if (!ops_pbd_plug_ref(&ctx, refs[i], &err)) {
            log_error("cannot plug PBD %s at start: %s %s", refs[i], err ? err->code : "",
                      err && err->nparams ? err->params[err->nparams - 1] : "");
            xs_error_free(err);
            DbTxn *txn = db_begin(db);
            DbObj *p = db_get_class(db, XS_CLASS_PBD, refs[i]);
            if (p) {
                db_set_bool(txn, p, F_PBD_CURRENTLY_ATTACHED, false);
                DbObj *sr = db_get_class(db, XS_CLASS_SR, db_str(p, F_PBD_SR));
                if (sr)
                    ops_sr_update_allowed(txn, sr);
            }
            db_commit(txn, NULL);
        }
        free(refs[i]);
    }
    free(refs);
    /* The tools ISO, then a scan of the tools SR so that its VDI appears. */
    db_read_lock(db);
    DbObj *const *srs = db_list(db, XS_CLASS_SR, &n);
    char *tools = NULL;
    for (size_t i = 0; i < n && !tools; i++)
        if (is_tools_sr(srs[i]))
            tools = xstrdup(srs[i]->ref);
    db_read_unlock(db);
    if (tools) {
        char *dir = ops_sr_dir(&ctx, tools, NULL);
        if (dir) {
            install_tools_iso(dir);
            XsError *err = NULL;
            if (!ops_sr_reconcile(&ctx, tools, true, &err))
                xs_error_free(err);
        }
        free(dir);
        free(tools);
    }
    /* allowed_operations of everything storage. */
    DbTxn *txn = db_begin(db);
    srs = db_list(db, XS_CLASS_SR, &n);
    for (size_t i = 0; i < n; i++)
        ops_sr_update_allowed(txn, srs[i]);
    DbObj *const *vdis = db_list(db, XS_CLASS_VDI, &n);
    for (size_t i = 0; i < n; i++)
        ops_vdi_update_allowed(txn, vdis[i]);
    db_commit(txn, NULL);
    (void)errp;
    return true;
}

void ops_storage_shutdown(HxEnv *env)
{
    (void)env;
}
