/*
 * The VM side of storage (see vmdisk.h), over ops/vdi.h: VDIs attached to
 * and detached from QEMU, the VDIs the lifecycle makes, and the live hooks
 * storage calls to snapshot or grow the disk of a running VM.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ops/vdi.h"
#include "ops/vm_lifecycle.h"
#include "ops/vmdisk.h"
#include "ops/vmrt.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

bool vmdisk_attach(OpsCtx *ctx, const char *vm_ref, const char *vdi_ref, bool rw, VmDiskFile *f,
                   XsError **errp)
{
    memset(f, 0, sizeof(*f));
    OpsVdiAttachment a;
    if (!ops_vdi_attach(ctx, vdi_ref, vm_ref, rw, &a, errp))
        return false;
    f->path = a.path;
    a.path = NULL;
    f->format = a.format && strcmp(a.format, "qcow2") == 0 ? VMM_DISK_FORMAT_QCOW2
                                                           : VMM_DISK_FORMAT_RAW;
    f->read_only = a.read_only || !rw;
    ops_vdi_attachment_release(&a);
    return true;
}

void vmdisk_detach(OpsCtx *ctx, const char *vm_ref, const char *vdi_ref)
{
    ops_vdi_detach(ctx, vdi_ref, vm_ref);
}

void vmdisk_file_release(VmDiskFile *f)
{
    free(f->path);
    f->path = NULL;
}

bool vmdisk_create(OpsCtx *ctx, const char *sr_ref, int64_t size, const char *name,
                   const char *description, int type, const XsValue *sm_config, char **vdi_ref,
                   XsError **errp)
{
    OpsVdiSpec spec = {
        .sr = sr_ref,
        .virtual_size = size,
        .name_label = name,
        .name_description = description,
        .type = type,
        .sm_config = sm_config,
    };
    return ops_vdi_create_disk(ctx, &spec, vdi_ref, errp);
}

bool vmdisk_destroy(OpsCtx *ctx, const char *vdi_ref, XsError **errp)
{
    return ops_vdi_destroy_disk(ctx, vdi_ref, errp);
}

bool vmdisk_clone(OpsCtx *ctx, const char *vdi_ref, bool full_copy, const char *sr_ref,
                  char **new_vdi, XsError **errp)
{
    if (!full_copy) {
        XsValue *params = xv_struct();
        bool ok = ops_vdi_clone(ctx, vdi_ref, params, new_vdi, errp);
        xv_free(params);
        return ok;
    }
    char *sr = NULL;
    if (!sr_ref) {
        db_read_lock(ctx->db);
        DbObj *vdi = db_get_class(ctx->db, XS_CLASS_VDI, vdi_ref);
        sr = vdi ? xstrdup(db_str(vdi, F_VDI_SR)) : NULL;
        db_read_unlock(ctx->db);
        if (!sr) {
            xs_err_handle_invalid(errp, "VDI", vdi_ref);
            return false;
        }
    }
    bool ok = ops_vdi_copy(ctx, vdi_ref, sr_ref ? sr_ref : sr, "OpaqueRef:NULL", "OpaqueRef:NULL",
                           new_vdi, errp);
    free(sr);
    return ok;
}

bool vmdisk_create_from_file(OpsCtx *ctx, const char *sr_ref, const char *name, int type,
                             const char *path, char **vdi_ref, XsError **errp)
{
    OpsVdiSpec spec = {
        .sr = sr_ref,
        .virtual_size = 0,
        .name_label = name,
        .name_description = "",
        .type = type,
    };
    return ops_vdi_create_from_file(ctx, &spec, path, "raw", vdi_ref, errp);
}

bool vmdisk_export_raw(OpsCtx *ctx, const char *vdi_ref, const char *path, XsError **errp)
{
    char *src = NULL;
    const char *format = NULL;
    if (!ops_vdi_get_path(ctx, vdi_ref, &src, &format, errp))
        return false;
    const char *argv[] = {"qemu-img", "convert", "-q", "-f", format, "-O", "raw", src, path, NULL};
    SpawnOptions so = {.timeout_ms = 30 * 60 * 1000};
    SpawnResult res;
    int r = spawn_run(argv, &so, &res);
    bool ok = r == 0 && spawn_result_ok(&res);
    if (!ok) {
        StrBuf sb = STRBUF_INIT;
        if (r < 0)
            strbuf_adds(&sb, strerror(-r));
        else
            spawn_result_describe(&res, &sb);
        log_error("reading VDI %s (%s) into %s failed: %s", vdi_ref, src, path, sb.buf);
        xs_err_vdi_io_error(errp, sb.buf);
        strbuf_release(&sb);
        unlink(path);
    }
    spawn_result_release(&res);
    free(src);
    return ok;
}

/* ---- storage's hooks for disks of running VMs ------------------------------------------ */

typedef struct LiveDisk {
    char *vm;
    char *vdi;
    unsigned position;
} LiveDisk;

static bool live_disk(OpsCtx *ctx, const char *vbd_ref, LiveDisk *d, XsError **errp)
{
    memset(d, 0, sizeof(*d));
    db_read_lock(ctx->db);
    DbObj *vbd = db_get_class(ctx->db, XS_CLASS_VBD, vbd_ref);
    bool ok = vbd != NULL;
    if (vbd) {
        d->vm = xstrdup(db_str(vbd, F_VBD_VM));
        d->vdi = xstrdup(db_str(vbd, F_VBD_VDI));
        d->position = (unsigned)strtoul(db_str(vbd, F_VBD_USERDEVICE), NULL, 10);
    } else {
        xs_err_handle_invalid(errp, "VBD", vbd_ref);
    }
    db_read_unlock(ctx->db);
    return ok;
}

/* The QEMU that has the disk open; VDI_IN_USE when none can act (a busy VM,
 * or the control domain, which has no QEMU). Inside a VM operation of this
 * thread (VM.snapshot, VM.checkpoint) that VM is used as held: *token stays
 * NULL and release() leaves it to that operation. */
static Vmm *claim(OpsCtx *ctx, const LiveDisk *d, const char *op, char **token, XsError **errp)
{
    VmRt *rt = vmrt_get(ctx->env, d->vm);
    Vmm *held = rt ? vmrt_held_vmm(rt) : NULL;
    if (held) {
        *token = NULL;
        return held;
    }
    XsError *e = NULL;
    Vmm *h = ops_vm_claim_running(ctx, d->vm, strcmp(op, "snapshot") == 0
                                                  ? "snapshot"
                                                  : "update_allowed_operations",
                                  token, &e);
    if (!h) {
        xs_error_free(e);
        xs_err_vdi_in_use(errp, d->vdi, op);
    }
    return h;
}

static void release(OpsCtx *ctx, const LiveDisk *d, char *token)
{
    if (token)
        ops_vm_release_running(ctx, d->vm, token);
}

static bool live_snapshot(OpsCtx *ctx, const char *vbd, const char *new_active, XsError **errp)
{
    LiveDisk d;
    if (!live_disk(ctx, vbd, &d, errp))
        return false;
    char *token = NULL;
    Vmm *h = claim(ctx, &d, "snapshot", &token, errp);
    bool ok = false;
    if (h) {
        VmmSnapshotDisk sd = {.position = d.position, .overlay = new_active, .create = false};
        char *err = NULL;
        int r = vmm_snapshot_disks(h, &sd, 1, &err);
        if (r < 0) {
            log_error("VBD %s: the live snapshot failed: %s", vbd, err ? err : strerror(-r));
            xs_err_vdi_in_use(errp, d.vdi, "snapshot");
        }
        free(err);
        ok = r == 0;
        release(ctx, &d, token);
    }
    free(d.vm);
    free(d.vdi);
    return ok;
}

static bool live_resize(OpsCtx *ctx, const char *vbd, int64_t size, XsError **errp)
{
    LiveDisk d;
    if (!live_disk(ctx, vbd, &d, errp))
        return false;
    char *token = NULL;
    Vmm *h = claim(ctx, &d, "resize_online", &token, errp);
    bool ok = false;
    if (h) {
        /* The active layer's node (snapshots move it), from QEMU itself. */
        char node[128];
        snprintf(node, sizeof(node), "disk%u-fmt", d.position);
        VmmBlockInfo *info = NULL;
        size_t n = 0;
        if (vmm_query_disks(h, &info, &n, NULL) == 0) {
            for (size_t i = 0; i < n; i++)
                if (info[i].position == d.position && info[i].chain_len &&
                    info[i].chain[0].node_name)
                    snprintf(node, sizeof(node), "%s", info[i].chain[0].node_name);
            vmm_block_info_free(info, n);
        }
        struct json_object *args = json_object_new_object();
        json_object_object_add(args, "node-name", json_object_new_string(node));
        json_object_object_add(args, "size", json_object_new_int64(size));
        char *err = NULL;
        int r = vmm_qmp(h, "block_resize", args, 0, NULL, &err);
        json_object_put(args);
        if (r < 0) {
            log_error("VBD %s: growing the disk of the running VM failed: %s", vbd,
                      err ? err : strerror(-r));
            xs_err_vdi_in_use(errp, d.vdi, "resize_online");
        }
        free(err);
        ok = r == 0;
        release(ctx, &d, token);
    }
    free(d.vm);
    free(d.vdi);
    return ok;
}

static void merge_progress(uint64_t done, uint64_t total, void *opaque)
{
    if (total)
        ops_progress(opaque, (double)done / (double)total);
}

/* A merge of a chain the running VM uses: its own block job (commit) does the work. */
static bool live_merge(OpsCtx *ctx, const char *vbd, unsigned depth, const char *backing_name,
                       XsError **errp)
{
    LiveDisk d;
    if (!live_disk(ctx, vbd, &d, errp))
        return false;
    char *token = NULL;
    Vmm *h = claim(ctx, &d, "merge", &token, errp);
    bool ok = false;
    if (h) {
        char job[32];
        snprintf(job, sizeof(job), "hx-merge-%u", d.position);
        char *err = NULL;
        int r = vmm_job_commit_layer(h, d.position, depth, backing_name, job, &err);
        if (r == 0)
            r = vmm_job_wait(h, job, true, 30 * 60 * 1000, merge_progress, ctx, &err);
        if (r < 0) {
            log_error("VBD %s: merging layer %u of the running disk failed: %s", vbd, depth,
                      err ? err : strerror(-r));
            xs_err_vdi_in_use(errp, d.vdi, "merge");
        }
        free(err);
        ok = r == 0;
        release(ctx, &d, token);
    }
    free(d.vm);
    free(d.vdi);
    return ok;
}

void vmdisk_register_live_hooks(void)
{
    OpsVdiLiveHooks hooks = {.snapshot = live_snapshot, .resize = live_resize,
                             .merge = live_merge};
    ops_vdi_set_live_hooks(&hooks);
}
