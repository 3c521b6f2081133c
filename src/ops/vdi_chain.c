/*
 * VDI chains: a clone or snapshot turns a VDI's data into a hidden,
 * read-only base copy with qcow2 overlays on it. This file walks chains
 * (parents, children, depth) and keeps them short: a base copy left without
 * children is removed, and one left with a single child is merged into it at
 * once, as part of the operation that caused it (with progress on its
 * task), so that no merge work piles up in the background. A merge that
 * cannot run because the child's chain is in use by a running VM is done
 * when the VM releases it (ops_vdi_detach) or at the next sr-scan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/storage_int.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

const char *ops_vdi_parent_uuid(const DbObj *vdi)
{
    const char *p = xv_struct_get_string(&vdi->fields[F_VDI_SM_CONFIG], "vhd-parent");
    return p ? p : "";
}

int ops_vdi_chain_depth(Db *db, const DbObj *vdi)
{
    int depth = 1;
    const DbObj *v = vdi;
    while (depth <= 64) {
        const char *p = ops_vdi_parent_uuid(v);
        if (!*p)
            break;
        const DbObj *parent = db_get_by_uuid(db, XS_CLASS_VDI, p);
        depth++;
        if (!parent)
            break;
        v = parent;
    }
    return depth;
}

size_t ops_vdi_children(Db *db, const DbObj *sr, const char *uuid, DbObj **first)
{
    size_t count = 0;
    size_t n = db_backref_count(sr, F_SR_VDIS);
    if (first)
        *first = NULL;
    for (size_t i = 0; i < n; i++) {
        DbObj *v = db_backref(sr, F_SR_VDIS, i);
        if (strcmp(ops_vdi_parent_uuid(v), uuid) == 0) {
            if (first && !*first)
                *first = v;
            count++;
        }
    }
    (void)db;
    return count;
}

bool ops_vdi_subtree_attached(Db *db, const DbObj *sr, const DbObj *vdi)
{
    if (ops_vdi_is_attached(db, vdi))
        return true;
    size_t n = db_backref_count(sr, F_SR_VDIS);
    const char *uuid = db_str(vdi, F_VDI_UUID);
    for (size_t i = 0; i < n; i++) {
        DbObj *v = db_backref(sr, F_SR_VDIS, i);
        if (strcmp(ops_vdi_parent_uuid(v), uuid) == 0 && ops_vdi_subtree_attached(db, sr, v))
            return true;
    }
    return false;
}

static void set_depth(DbTxn *txn, DbObj *sr, DbObj *v, int depth, int guard)
{
    char d[16];
    snprintf(d, sizeof(d), "%d", depth);
    const char *have = xv_struct_get_string(&v->fields[F_VDI_SM_CONFIG], "chain-depth");
    if (!have || strcmp(have, d) != 0)
        db_map_set(txn, v, F_VDI_SM_CONFIG, "chain-depth", d);
    if (guard > 64)
        return;
    size_t n = db_backref_count(sr, F_SR_VDIS);
    const char *uuid = db_str(v, F_VDI_UUID);
    for (size_t i = 0; i < n; i++) {
        DbObj *c = db_backref(sr, F_SR_VDIS, i);
        if (c != v && strcmp(ops_vdi_parent_uuid(c), uuid) == 0)
            set_depth(txn, sr, c, depth + 1, guard + 1);
    }
}

void ops_vdi_update_depths_txn(DbTxn *txn, DbObj *sr, DbObj *vdi)
{
    set_depth(txn, sr, vdi, ops_vdi_chain_depth(db_txn_db(txn), vdi), 0);
}

typedef struct GcProgress {
    OpsCtx *ctx;
} GcProgress;

static void gc_progress(void *opaque, double f)
{
    ops_progress(((GcProgress *)opaque)->ctx, f);
}

/* Removes the childless base copy uuid; returns its parent's uuid (malloc'd) or NULL. */
static char *gc_remove(OpsCtx *ctx, const char *dir, const char *uuid)
{
    char *msg = NULL;
    if (vdi_file_trash(dir, uuid, &msg) < 0) {
        log_warn("cannot remove the unused base copy %s: %s", uuid, msg);
        free(msg);
        return NULL;
    }
    DbTxn *txn = db_begin(ctx->db);
    DbObj *b = db_get_by_uuid(ctx->db, XS_CLASS_VDI, uuid);
    char *parent = b && *ops_vdi_parent_uuid(b) ? xstrdup(ops_vdi_parent_uuid(b)) : NULL;
    DbObj *sr = b ? db_get_class(ctx->db, XS_CLASS_SR, db_str(b, F_VDI_SR)) : NULL;
    if (b)
        db_delete(txn, b);
    if (sr)
        ops_sr_refresh_sizes_txn(txn, sr, dir);
    if (!db_commit(txn, NULL)) {
        vdi_file_untrash(dir, uuid, NULL);
        free(parent);
        return NULL;
    }
    vdi_file_purge(dir, uuid);
    log_info("removed base copy %s: nothing uses it any more", uuid);
    return parent;
}

/*
 * The running VM that uses the chain below vdi: when exactly one VBD has a VDI of that
 * subtree attached, *vbd (malloc'd) is it and *depth how many layers its active layer is
 * above vdi. Read lock held.
 */
static void live_users(Db *db, const DbObj *sr, const DbObj *vdi, unsigned level, char **vbd,
                       unsigned *depth, int *users)
{
    if (level > 64)
        return;
    size_t nb = db_backref_count(vdi, F_VDI_VBDS);
    for (size_t i = 0; i < nb; i++) {
        DbObj *b = db_backref(vdi, F_VDI_VBDS, i);
        if (!db_bool(b, F_VBD_CURRENTLY_ATTACHED))
            continue;
        if ((*users)++ == 0) {
            *vbd = xstrdup(b->ref);
            *depth = level;
        }
    }
    size_t n = db_backref_count(sr, F_SR_VDIS);
    const char *uuid = db_str(vdi, F_VDI_UUID);
    for (size_t i = 0; i < n; i++) {
        DbObj *c = db_backref(sr, F_SR_VDIS, i);
        if (c != vdi && strcmp(ops_vdi_parent_uuid(c), uuid) == 0)
            live_users(db, sr, c, level + 1, vbd, depth, users);
    }
}

typedef struct LiveCommit {
    OpsCtx *ctx;
    OpsVdiLiveHooks hooks;
    const char *vbd;
    unsigned depth;
    char backing[64];
} LiveCommit;

static int live_commit(void *opaque, char **err)
{
    LiveCommit *lc = opaque;
    XsError *e = NULL;
    if (lc->hooks.merge(lc->ctx, lc->vbd, lc->depth, lc->depth ? lc->backing : NULL, &e))
        return 0;
    if (err)
        *err = xs_error_to_string(e);
    xs_error_free(e);
    return -EIO;
}

/* Merges base copy uuid into its only child; through the VM (vbd, depth) when it runs. */
static void gc_merge(OpsCtx *ctx, const char *sr_ref, const char *dir, const char *uuid,
                     const char *child_ref, const char *vbd, unsigned depth)
{
    char *ctok = NULL, *btok = NULL;
    XsError *err = NULL;
    db_read_lock(ctx->db);
    DbObj *b = db_get_by_uuid(ctx->db, XS_CLASS_VDI, uuid);
    DbObj *c = db_get_class(ctx->db, XS_CLASS_VDI, child_ref);
    char *bref = b ? xstrdup(b->ref) : NULL;
    char *cuuid = c ? xstrdup(db_str(c, F_VDI_UUID)) : NULL;
    db_read_unlock(ctx->db);
    if (!bref || !cuuid)
        goto out;
    if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, child_ref, "update", &ctok, &err))
        goto out;
    if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, bref, "destroy", &btok, &err))
        goto out;
    log_info("merging base copy %s into its only child %s%s", uuid, cuuid,
             vbd ? " under the running VM" : "");
    GcProgress gp = {ctx};
    char *msg = NULL;
    int r;
    if (vbd) {
        LiveCommit lc = {.ctx = ctx, .hooks = ops_vdi_live_hooks(), .vbd = vbd, .depth = depth};
        snprintf(lc.backing, sizeof(lc.backing), "%s.qcow2", cuuid);
        r = vdi_file_coalesce_live(dir, cuuid, uuid, live_commit, &lc, &msg);
    } else {
        r = vdi_file_coalesce(dir, cuuid, uuid, gc_progress, &gp, &msg);
    }
    if (r < 0) {
        log_warn("merging %s into %s failed (the chain is left as it was): %s", uuid, cuuid, msg);
        free(msg);
        goto out;
    }
    VdiFileInfo fi;
    char *cpath = vdi_file_path(dir, cuuid, VDI_NAME_FINAL);
    bool have_info = vdi_file_info(cpath, &fi, NULL) == 0;
    free(cpath);
    DbTxn *txn = db_begin(ctx->db);
    b = db_get_class(ctx->db, XS_CLASS_VDI, bref);
    c = db_get_class(ctx->db, XS_CLASS_VDI, child_ref);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
    if (b && c && sr) {
        const char *pp = ops_vdi_parent_uuid(b);
        if (*pp)
            db_map_set(txn, c, F_VDI_SM_CONFIG, "vhd-parent", pp);
        else
            db_map_remove(txn, c, F_VDI_SM_CONFIG, "vhd-parent");
        if (have_info)
            db_set_int(txn, c, F_VDI_PHYSICAL_UTILISATION, (int64_t)fi.allocated);
        ops_op_end_txn(txn, c, ctok);
        db_delete(txn, b);
        ops_vdi_update_depths_txn(txn, sr, c);
        ops_sr_refresh_sizes_txn(txn, sr, dir);
    }
    free(ctok);
    ctok = NULL;
    free(btok);
    btok = NULL;
    if (!db_commit(txn, NULL))
        log_error("the merge of %s into %s is done on disk but could not be recorded; sr-scan "
                  "will record it", uuid, cuuid);
out:
    if (ctok)
        ops_op_end(ctx, XS_CLASS_VDI, child_ref, ctok);
    if (btok && bref)
        ops_op_end(ctx, XS_CLASS_VDI, bref, btok);
    free(ctok);
    free(btok);
    if (err) {
        log_info("merge of %s put off: %s", uuid, err->code);
        xs_error_free(err);
    }
    free(bref);
    free(cuuid);
}

void ops_vdi_chain_gc(OpsCtx *ctx, const char *sr_ref, const char *dir, const char *base_uuid)
{
    char *uuid = base_uuid && *base_uuid ? xstrdup(base_uuid) : NULL;
    for (int guard = 0; uuid && guard < 64; guard++) {
        db_read_lock(ctx->db);
        DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
        DbObj *b = db_get_by_uuid(ctx->db, XS_CLASS_VDI, uuid);
        DbObj *child = NULL;
        size_t nc = 0;
        bool base = sr && b && !db_bool(b, F_VDI_MANAGED) &&
                    strcmp(db_str(b, F_VDI_SR), sr_ref) == 0;
        bool busy = false, live = false;
        char *child_ref = NULL, *vbd = NULL;
        unsigned depth = 0;
        /* After a merge the parent may be left with one child in turn (put-off merges). */
        char *up = base && *ops_vdi_parent_uuid(b) ? xstrdup(ops_vdi_parent_uuid(b)) : NULL;
        if (base) {
            nc = ops_vdi_children(ctx->db, sr, uuid, &child);
            if (nc == 1) {
                bool ops = child->fields[F_VDI_CURRENT_OPERATIONS].n > 0;
                busy = ops_vdi_subtree_attached(ctx->db, sr, child) || ops;
                child_ref = xstrdup(child->ref);
                /* One running VM uses the chain: it can merge it itself. */
                int users = 0;
                if (busy && !ops && ops_vdi_live_hooks().merge)
                    live_users(ctx->db, sr, child, 0, &vbd, &depth, &users);
                live = users == 1;
            }
        }
        db_read_unlock(ctx->db);
        char *next = NULL;
        if (base && nc == 0) {
            next = gc_remove(ctx, dir, uuid);
        } else if (base && nc == 1 && (!busy || live)) {
            gc_merge(ctx, sr_ref, dir, uuid, child_ref, live ? vbd : NULL, depth);
            next = up;
            up = NULL;
        } else if (base && nc == 1) {
            log_info("base copy %s has one child left, which is in use: it will be merged when "
                     "the disk is released", uuid);
        }
        free(child_ref);
        free(vbd);
        free(up);
        free(uuid);
        uuid = next;
    }
    free(uuid);
}
