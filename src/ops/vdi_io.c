/*
 * VDI data movement: VDI.copy, filling a VDI from a local image file, and
 * the streaming uploads and downloads behind /import_raw_vdi and
 * /export_raw_vdi (vdi_io.h). Every conversion goes through the formats
 * layer (src/formats/image.h) into a fresh qcow2 written under a temporary
 * name; only a complete file replaces or becomes a VDI's file. Progress and
 * cancellation follow the caller's task.
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
#include "formats/vhd_stream.h"
#include "ops/ops.h"
#include "ops/storage_int.h"
#include "ops/vdi.h"
#include "ops/vdi_io.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

char *ops_vdi_spec_sr(OpsCtx *ctx, const OpsVdiSpec *spec, XsError **errp);

/* ---- progress and cancel --------------------------------------------------------------------- */

typedef struct IoProgress {
    OpsCtx *ctx;
    atomic_bool cancel;
    double base, span;
    struct timespec last;
    const char *crash_point; /* reached once 4 MiB are done (crash tests) */
} IoProgress;

static void io_progress(void *opaque, uint64_t done, uint64_t total)
{
    IoProgress *p = opaque;
    if (p->crash_point && done >= 4 * MiB)
        storage_crash_point(p->crash_point);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - p->last.tv_sec) + (now.tv_nsec - p->last.tv_nsec) / 1e9;
    if (dt < 0.2 && done < total)
        return;
    p->last = now;
    if (p->ctx && p->ctx->task) {
        ops_progress(p->ctx, p->base + p->span * (total ? (double)done / (double)total : 1.0));
        if (ops_cancelled(p->ctx))
            atomic_store(&p->cancel, true);
    }
}

static void io_progress_init(IoProgress *p, OpsCtx *ctx, double base, double span)
{
    memset(p, 0, sizeof(*p));
    p->ctx = ctx;
    p->base = base;
    p->span = span;
    atomic_init(&p->cancel, false);
}

static ImgProgress img_progress_of(IoProgress *p)
{
    return (ImgProgress){.fn = io_progress, .opaque = p, .cancel = &p->cancel};
}

/* ---- sources -------------------------------------------------------------------------------------- */

/* A source of `size` bytes whose start is another source (the rest: zeros). */
typedef struct PadSource {
    const ImgSource *inner;
    bool delta; /* beyond the inner source and its holes: left to a backing file */
} PadSource;

static int pad_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    PadSource *p = opaque;
    uint64_t isz = p->inner->virtual_size;
    size_t head = off < isz ? (size_t)MIN((uint64_t)len, isz - off) : 0;
    if (head) {
        int r = p->inner->read(p->inner->opaque, off, head, buf, err);
        if (r < 0)
            return r;
    }
    memset((char *)buf + head, 0, len - head);
    return 0;
}

static int pad_status(void *opaque, uint64_t off, uint64_t maxlen, ImgExtent *ext, ImgError *err)
{
    PadSource *p = opaque;
    uint64_t isz = p->inner->virtual_size;
    if (off >= isz) {
        *ext = (ImgExtent){off, maxlen, p->delta ? IMG_EXTENT_UNALLOCATED : IMG_EXTENT_ZERO};
        return 0;
    }
    int r = p->inner->block_status(p->inner->opaque, off, MIN(maxlen, isz - off), ext, err);
    if (r == 0 && ext->kind == IMG_EXTENT_UNALLOCATED && !p->delta)
        ext->kind = IMG_EXTENT_ZERO;
    return r;
}

/* A delta (the top layer of top) over base: status from the delta, reads from
 * whichever layer holds each run, so that a cluster the delta covers only in
 * part is written whole and right. */
typedef struct MergeSource {
    ImgReader *top;
    ImgReader *base;
} MergeSource;

static int merge_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    MergeSource *m = opaque;
    uint64_t tsz = img_reader_virtual_size(m->top);
    uint64_t bsz = img_reader_virtual_size(m->base);
    uint8_t *p = buf;
    while (len > 0) {
        ImgExtent e = {off, len, IMG_EXTENT_UNALLOCATED};
        if (off < tsz) {
            int r = img_block_status(m->top, off, MIN((uint64_t)len, tsz - off),
                                     IMG_STATUS_TOP_ONLY, &e, err);
            if (r < 0)
                return r;
        }
        size_t n = (size_t)MIN(e.length, (uint64_t)len);
        ImgReader *from = e.kind == IMG_EXTENT_UNALLOCATED ? m->base : m->top;
        uint64_t fsz = from == m->base ? bsz : tsz;
        size_t have = off < fsz ? (size_t)MIN((uint64_t)n, fsz - off) : 0;
        if (have) {
            ssize_t k = img_read(from, off, have, p, err);
            if (k < 0)
                return (int)k;
            if ((size_t)k < have)
                memset(p + k, 0, have - (size_t)k);
        }
        memset(p + have, 0, n - have);
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int merge_status(void *opaque, uint64_t off, uint64_t maxlen, ImgExtent *ext,
                        ImgError *err)
{
    MergeSource *m = opaque;
    uint64_t tsz = img_reader_virtual_size(m->top);
    if (off >= tsz) {
        *ext = (ImgExtent){off, maxlen, IMG_EXTENT_UNALLOCATED};
        return 0;
    }
    return img_block_status(m->top, off, MIN(maxlen, tsz - off), IMG_STATUS_TOP_ONLY, ext, err);
}

/* ---- writing a fresh qcow2 ------------------------------------------------------------------------- */

/* Writes src as the tmp file of uuid in dir. On failure the file is removed and
 * *errp set (SR_FULL for a full disk, TASK_CANCELLED, VDI_IO_ERROR...). */
static bool write_tmp_backed(OpsCtx *ctx, const char *dir, const char *uuid,
                             const ImgSource *src, const char *backing_uuid, IoProgress *prog,
                             XsError **errp)
{
    _cleanup_free_ char *tmp = vdi_file_path(dir, uuid, VDI_NAME_TMP);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        ops_sr_io_error(errp, -errno, dir, strerror(errno));
        return false;
    }
    ImgWriteOptions wo;
    img_write_options_init(&wo);
    char *backing = backing_uuid ? xasprintf("%s.qcow2", backing_uuid) : NULL;
    wo.backing_file = backing;
    wo.backing_format = backing ? "qcow2" : NULL;
    ImgProgress ip = img_progress_of(prog);
    ImgError ie = {0};
    int r = img_write(src, IMG_FORMAT_QCOW2, &wo, fd, &ip, &ie);
    free(backing);
    if (r == 0 && close(fd) != 0)
        r = -errno;
    else if (r < 0)
        close(fd);
    if (r < 0) {
        unlink(tmp);
        if (r == -ECANCELED && ctx->task)
            xs_err_task_cancelled(errp, ctx->task);
        else if (r == -ENOSPC || r == -EDQUOT)
            ops_sr_io_error(errp, r, dir, ie.msg);
        else if (r == -ENODATA)
            xs_err_import_error_premature_eof(errp);
        else
            xs_err_vdi_io_error(errp, ie.msg[0] ? ie.msg : strerror(-r));
        return false;
    }
    return true;
}

static bool write_tmp(OpsCtx *ctx, const char *dir, const char *uuid, const ImgSource *src,
                      IoProgress *prog, XsError **errp)
{
    return write_tmp_backed(ctx, dir, uuid, src, NULL, prog, errp);
}

/* Bytes a conversion of r may write at most: the allocation of its files. */
static uint64_t chain_allocation(ImgReader *r)
{
    uint64_t sum = 0;
    for (ImgReader *p = r; p; p = img_reader_parent(p))
        sum += img_reader_allocated_bytes(p);
    return MIN(sum, img_reader_virtual_size(r) + vdi_file_metadata_size(img_reader_virtual_size(r)));
}

static ImgReader *open_image(const char *path, ImgFormat fmt, unsigned flags, XsError **errp);

/* ---- VDI checks ----------------------------------------------------------------------------------------- */

typedef struct Target {
    char *vdi_ref;
    char *uuid;
    char *sr_ref;
    char *sr_uuid;
    char *dir;
    uint64_t size;
    char *token;
} Target;

static void target_release(OpsCtx *ctx, Target *t)
{
    if (t->token)
        ops_op_end(ctx, XS_CLASS_VDI, t->vdi_ref, t->token);
    free(t->token);
    free(t->vdi_ref);
    free(t->uuid);
    free(t->sr_ref);
    free(t->sr_uuid);
    free(t->dir);
    memset(t, 0, sizeof(*t));
}

/* A VDI whose content is about to be replaced: file SR, managed, not in use; marks it busy. */
static bool target_open(OpsCtx *ctx, const char *vdi_ref, const char *op, Target *t,
                        XsError **errp)
{
    memset(t, 0, sizeof(*t));
    Db *db = ctx->db;
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, vdi_ref);
    DbObj *sr = vdi ? db_get_class(db, XS_CLASS_SR, db_str(vdi, F_VDI_SR)) : NULL;
    bool ok = true;
    if (!vdi || !sr) {
        xs_err_handle_invalid(errp, "VDI", vdi_ref);
        ok = false;
    } else if (strcmp(db_str(sr, F_SR_CONTENT_TYPE), "iso") == 0 ||
               !ops_sr_check_file_sr(sr, errp)) {
        if (strcmp(db_str(sr, F_SR_CONTENT_TYPE), "iso") == 0)
            xs_err_sr_operation_not_supported(errp, sr->ref);
        ok = false;
    } else if (!db_bool(vdi, F_VDI_MANAGED)) {
        xs_err_vdi_not_managed(errp, vdi_ref);
        ok = false;
    } else if (!ops_vdi_check_not_attached(db, vdi, op, errp)) {
        ok = false;
    }
    if (ok) {
        t->vdi_ref = xstrdup(vdi_ref);
        t->uuid = xstrdup(db_str(vdi, F_VDI_UUID));
        t->sr_ref = xstrdup(sr->ref);
        t->sr_uuid = xstrdup(db_str(sr, F_SR_UUID));
        t->size = (uint64_t)db_int(vdi, F_VDI_VIRTUAL_SIZE);
    }
    db_read_unlock(db);
    if (!ok)
        return false;
    t->dir = ops_sr_dir(ctx, t->sr_ref, errp);
    if (!t->dir || !ops_op_begin_ref(ctx, XS_CLASS_VDI, vdi_ref, op, &t->token, errp)) {
        target_release(ctx, t);
        return false;
    }
    return true;
}

/* Publishes the tmp file of t over its file and records the new standalone content. */
static bool target_commit(OpsCtx *ctx, Target *t, XsError **errp)
{
    Db *db = ctx->db;
    ops_sr_lock(t->sr_uuid);
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, t->vdi_ref);
    bool busy = vdi && ops_vdi_is_attached(db, vdi);
    char *old_parent = vdi ? xstrdup(ops_vdi_parent_uuid(vdi)) : NULL;
    db_read_unlock(db);
    if (!vdi || busy) {
        ops_sr_unlock(t->sr_uuid);
        vdi_file_discard_tmp(t->dir, t->uuid);
        if (busy)
            xs_err_vdi_in_use(errp, t->vdi_ref, "import");
        else
            xs_err_handle_invalid(errp, "VDI", t->vdi_ref);
        free(old_parent);
        return false;
    }
    char *msg = NULL;
    storage_crash_point("import-written");
    int r = vdi_file_publish(t->dir, t->uuid, &msg);
    if (r < 0) {
        ops_sr_unlock(t->sr_uuid);
        vdi_file_discard_tmp(t->dir, t->uuid);
        ops_sr_io_error(errp, r, t->dir, msg);
        free(msg);
        free(old_parent);
        return false;
    }
    DbTxn *txn = db_begin(db);
    vdi = db_get_class(db, XS_CLASS_VDI, t->vdi_ref);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, t->sr_ref);
    if (vdi && sr) {
        db_map_remove(txn, vdi, F_VDI_SM_CONFIG, "vhd-parent");
        ops_vdi_refresh_from_file(txn, vdi, t->dir);
        ops_vdi_update_depths_txn(txn, sr, vdi);
        ops_sr_refresh_sizes_txn(txn, sr, t->dir);
    }
    bool ok = db_commit(txn, errp);
    if (old_parent && *old_parent)
        ops_vdi_chain_gc(ctx, t->sr_ref, t->dir, old_parent);
    ops_sr_unlock(t->sr_uuid);
    free(old_parent);
    return ok;
}

/* Writes src into t (padded to the VDI's size) and publishes it. */
static bool target_fill(OpsCtx *ctx, Target *t, const ImgSource *src, XsError **errp)
{
    if (src->virtual_size > t->size) {
        char m[32];
        snprintf(m, sizeof(m), "%" PRIu64, src->virtual_size);
        xs_err_vdi_too_small(errp, t->vdi_ref, m);
        return false;
    }
    PadSource ps = {src};
    ImgSource padded = {.virtual_size = t->size, .opaque = &ps, .read = pad_read,
                        .block_status = pad_status};
    IoProgress prog;
    io_progress_init(&prog, ctx, 0, 1);
    if (!write_tmp(ctx, t->dir, t->uuid, &padded, &prog, errp))
        return false;
    return target_commit(ctx, t, errp);
}

/*
 * Applies a delta image (the top layer of a differencing VHD or an image with a
 * backing file) onto t's current content: t's data becomes a base copy, a new
 * overlay holds the delta, and the base copy is then merged into it (cost: the
 * delta's size). Releases t's operation.
 */
static bool target_apply_delta(OpsCtx *ctx, Target *t, ImgReader *r, XsError **errp)
{
    Db *db = ctx->db;
    uint64_t dsize = img_reader_virtual_size(r);
    if (dsize > t->size) {
        char m[32];
        snprintf(m, sizeof(m), "%" PRIu64, dsize);
        xs_err_vdi_too_small(errp, t->vdi_ref, m);
        return false;
    }
    _cleanup_free_ char *cur = vdi_file_path(t->dir, t->uuid, VDI_NAME_FINAL);
    ImgReader *base = open_image(cur, IMG_FORMAT_QCOW2, 0, errp);
    if (!base)
        return false;
    MergeSource ms = {r, base};
    ImgSource padded = {.virtual_size = t->size, .opaque = &ms, .read = merge_read,
                        .block_status = merge_status};
    char buuid[UUID_STR_LEN];
    uuid_generate_str(buuid);
    ops_sr_lock(t->sr_uuid);
    db_read_lock(db);
    DbObj *vdi = db_get_class(db, XS_CLASS_VDI, t->vdi_ref);
    bool busy = !vdi || ops_vdi_is_attached(db, vdi);
    char *old_parent = vdi ? xstrdup(ops_vdi_parent_uuid(vdi)) : NULL;
    db_read_unlock(db);
    bool ok = false;
    char *msg = NULL;
    if (busy) {
        xs_err_vdi_in_use(errp, t->vdi_ref, "import");
        goto out;
    }
    int rc = vdi_file_snapshot_tmp(t->dir, t->uuid, buuid, NULL, 0, t->size, &msg);
    if (rc < 0) {
        ops_sr_io_error(errp, rc, t->dir, msg);
        free(msg);
        goto out;
    }
    IoProgress prog;
    io_progress_init(&prog, ctx, 0.5, 0.3);
    if (!write_tmp_backed(ctx, t->dir, t->uuid, &padded, buuid, &prog, errp)) {
        vdi_file_snapshot_abort(t->dir, t->uuid, buuid, NULL, 0);
        goto out;
    }
    DbTxn *txn = db_begin(db);
    vdi = db_get_class(db, XS_CLASS_VDI, t->vdi_ref);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, t->sr_ref);
    DbObj *b = vdi && sr ? db_create(txn, XS_CLASS_VDI, NULL, buuid, errp) : NULL;
    if (!b) {
        db_abort(txn);
        vdi_file_snapshot_abort(t->dir, t->uuid, buuid, NULL, 0);
        goto out;
    }
    OpsVdiSpec bs = {.virtual_size = (int64_t)t->size, .name_label = OPS_BASE_COPY_NAME,
                     .type = db_enum(vdi, F_VDI_TYPE), .read_only = true};
    ops_vdi_init_record(txn, b, sr, &bs, old_parent);
    db_set_bool(txn, b, F_VDI_MANAGED, false);
    db_map_set(txn, vdi, F_VDI_SM_CONFIG, "vhd-parent", buuid);
    ops_vdi_update_depths_txn(txn, sr, vdi);
    if (!db_commit(txn, errp)) {
        vdi_file_snapshot_abort(t->dir, t->uuid, buuid, NULL, 0);
        goto out;
    }
    storage_crash_point("delta-committed");
    if (vdi_file_publish(t->dir, buuid, &msg) < 0 || vdi_file_publish(t->dir, t->uuid, &msg) < 0) {
        log_error("VDI %s: applying a delta: %s (sr-scan finishes it)", t->uuid, msg);
        free(msg);
    }
    /* Merge the old content into the new overlay now (the VDI must not look busy). */
    ops_op_end(ctx, XS_CLASS_VDI, t->vdi_ref, t->token);
    free(t->token);
    t->token = NULL;
    ops_vdi_chain_gc(ctx, t->sr_ref, t->dir, buuid);
    txn = db_begin(db);
    vdi = db_get_class(db, XS_CLASS_VDI, t->vdi_ref);
    sr = db_get_class(db, XS_CLASS_SR, t->sr_ref);
    if (vdi)
        ops_vdi_refresh_from_file(txn, vdi, t->dir);
    if (sr)
        ops_sr_refresh_sizes_txn(txn, sr, t->dir);
    db_commit(txn, NULL);
    ok = true;
out:
    ops_sr_unlock(t->sr_uuid);
    img_reader_free(base);
    free(old_parent);
    return ok;
}

/* Creates a VDI in sr from src (virtual size: spec's or src's). */
static bool new_vdi_from_source(OpsCtx *ctx, const char *sr_ref, const OpsVdiSpec *spec_in,
                                const ImgSource *src, uint64_t need, char **ret, XsError **errp)
{
    Db *db = ctx->db;
    OpsVdiSpec spec = *spec_in;
    /* Disks are whole sectors: a raw file of any length is padded with zeros. */
    if (spec.virtual_size <= 0)
        spec.virtual_size = (int64_t)((src->virtual_size + 511) & ~(uint64_t)511);
    if ((uint64_t)spec.virtual_size < src->virtual_size) {
        char m[32];
        snprintf(m, sizeof(m), "%" PRIu64, src->virtual_size);
        xs_err_vdi_too_small(errp, "OpaqueRef:NULL", m);
        return false;
    }
    db_read_lock(db);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    bool ok = sr && ops_sr_check_file_sr(sr, errp);
    char *sr_uuid = ok ? xstrdup(db_str(sr, F_SR_UUID)) : NULL;
    db_read_unlock(db);
    if (!sr)
        xs_err_handle_invalid(errp, "SR", sr_ref);
    if (!ok)
        return false;
    char *dir = ops_sr_dir(ctx, sr_ref, errp);
    if (!dir || !ops_sr_check_space(sr_ref, dir, need, errp)) {
        free(dir);
        free(sr_uuid);
        return false;
    }
    char uuid[UUID_STR_LEN];
    uuid_generate_str(uuid);
    PadSource ps = {src};
    ImgSource padded = {.virtual_size = (uint64_t)spec.virtual_size, .opaque = &ps,
                        .read = pad_read, .block_status = pad_status};
    IoProgress prog;
    io_progress_init(&prog, ctx, 0, 1);
    if (!write_tmp(ctx, dir, uuid, &padded, &prog, errp)) {
        free(dir);
        free(sr_uuid);
        return false;
    }
    storage_crash_point("copy-written");
    DbTxn *txn = db_begin(db);
    sr = db_get_class(db, XS_CLASS_SR, sr_ref);
    DbObj *v = sr ? db_create(txn, XS_CLASS_VDI, NULL, uuid, errp) : NULL;
    if (!v) {
        db_abort(txn);
        vdi_file_discard_tmp(dir, uuid);
        free(dir);
        free(sr_uuid);
        return false;
    }
    ops_vdi_init_record(txn, v, sr, &spec, NULL);
    _cleanup_free_ char *tmp = vdi_file_path(dir, uuid, VDI_NAME_TMP);
    struct stat st;
    if (stat(tmp, &st) == 0)
        db_set_int(txn, v, F_VDI_PHYSICAL_UTILISATION, (int64_t)st.st_blocks * 512);
    ops_sr_refresh_sizes_txn(txn, sr, dir);
    char *ref = xstrdup(v->ref);
    if (!db_commit(txn, errp)) {
        vdi_file_discard_tmp(dir, uuid);
        free(ref);
        free(dir);
        free(sr_uuid);
        return false;
    }
    storage_crash_point("copy-committed");
    char *msg = NULL;
    if (vdi_file_publish(dir, uuid, &msg) < 0) {
        log_error("new VDI %s: %s", uuid, msg);
        free(msg);
    }
    free(dir);
    free(sr_uuid);
    *ret = ref;
    return true;
}

/* ---- opening sources ------------------------------------------------------------------------------ */

static bool parse_format(const char *format, ImgFormat *fmt, XsError **errp)
{
    if (!format || !*format) {
        *fmt = IMG_FORMAT_PROBE;
        return true;
    }
    *fmt = img_format_from_name(format);
    if (*fmt == IMG_FORMAT__MAX || *fmt == IMG_FORMAT_PROBE) {
        xs_err_invalid_value(errp, "format", format);
        return false;
    }
    return true;
}

static ImgReader *open_image(const char *path, ImgFormat fmt, unsigned flags, XsError **errp)
{
    ImgError ie = {0};
    ImgOpenOptions o = {.format = fmt, .flags = flags};
    ImgReader *r = img_open(path, &o, &ie);
    if (!r) {
        if (ie.code == ENOENT)
            xs_err_import_error(errp, ie.msg);
        else
            xs_err_import_error(errp, ie.msg[0] ? ie.msg : "the image cannot be read");
    }
    return r;
}

/* ---- VDI.copy ------------------------------------------------------------------------------------------ */

bool ops_vdi_copy(OpsCtx *ctx, const char *vdi, const char *sr, const char *base_vdi,
                  const char *into_vdi, char **ret, XsError **errp)
{
    Db *db = ctx->db;
    bool into = into_vdi && strcmp(into_vdi, "OpaqueRef:NULL") != 0;
    bool to_sr = sr && strcmp(sr, "OpaqueRef:NULL") != 0;
    if (into == to_sr) {
        xs_err_invalid_value(errp, into ? "sr" : "into_vdi",
                             "give exactly one of a destination SR and a VDI to copy into");
        return false;
    }
    db_read_lock(db);
    DbObj *src = db_get_class(db, XS_CLASS_VDI, vdi);
    bool managed = src && db_bool(src, F_VDI_MANAGED);
    OpsVdiSpec spec = {0};
    XsValue *oc = NULL, *sm = NULL;
    char *name = NULL, *desc = NULL;
    if (src) {
        name = xstrdup(db_str(src, F_VDI_NAME_LABEL));
        desc = xstrdup(db_str(src, F_VDI_NAME_DESCRIPTION));
        oc = xv_copy(&src->fields[F_VDI_OTHER_CONFIG]);
        sm = xv_copy(&src->fields[F_VDI_SM_CONFIG]);
        xv_struct_remove(sm, "vhd-parent");
        xv_struct_remove(sm, "chain-depth");
        spec = (OpsVdiSpec){.virtual_size = db_int(src, F_VDI_VIRTUAL_SIZE),
                            .name_label = name, .name_description = desc,
                            .type = db_enum(src, F_VDI_TYPE),
                            .sharable = db_bool(src, F_VDI_SHARABLE),
                            .read_only = db_bool(src, F_VDI_READ_ONLY),
                            .other_config = oc, .sm_config = sm};
    }
    db_read_unlock(db);
    bool ok = false;
    char *path = NULL, *token = NULL;
    const char *format = NULL;
    ImgReader *r = NULL;
    Target t = {0};
    if (!managed) {
        xs_err_vdi_not_managed(errp, vdi);
        goto out;
    }
    if (!ops_vdi_get_path(ctx, vdi, &path, &format, errp))
        goto out;
    if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, vdi, "copy", &token, errp))
        goto out;
    r = open_image(path, img_format_from_name(format), 0, errp);
    if (!r)
        goto out;
    ImgSource s;
    img_source_from_reader(&s, r, false);
    if (into) {
        if (!target_open(ctx, into_vdi, "copy", &t, errp))
            goto out;
        if (!ops_sr_check_space(t.sr_ref, t.dir, chain_allocation(r), errp))
            goto out;
        ok = target_fill(ctx, &t, &s, errp);
        if (ok)
            *ret = xstrdup(into_vdi);
    } else {
        ok = new_vdi_from_source(ctx, sr, &spec, &s, chain_allocation(r), ret, errp);
    }
out:
    target_release(ctx, &t);
    img_reader_free(r);
    if (token)
        ops_op_end(ctx, XS_CLASS_VDI, vdi, token);
    free(token);
    free(path);
    free(name);
    free(desc);
    xv_free(oc);
    xv_free(sm);
    (void)base_vdi;
    return ok;
}

/* ---- local files ---------------------------------------------------------------------------------------- */

bool ops_vdi_import_file(OpsCtx *ctx, const char *vdi, const char *path, const char *format,
                         XsError **errp)
{
    ImgFormat fmt;
    if (!parse_format(format, &fmt, errp))
        return false;
    ImgReader *r = open_image(path, fmt, IMG_OPEN_CONFINE, errp);
    if (!r)
        return false;
    Target t;
    bool ok = false;
    if (target_open(ctx, vdi, "update", &t, errp)) {
        ImgSource s;
        img_source_from_reader(&s, r, false);
        ok = ops_sr_check_space(t.sr_ref, t.dir, chain_allocation(r), errp) &&
             target_fill(ctx, &t, &s, errp);
        target_release(ctx, &t);
    }
    img_reader_free(r);
    return ok;
}

bool ops_vdi_create_from_file(OpsCtx *ctx, const OpsVdiSpec *spec, const char *path,
                              const char *format, char **ret, XsError **errp)
{
    ImgFormat fmt;
    if (!parse_format(format, &fmt, errp))
        return false;
    char *sr = ops_vdi_spec_sr(ctx, spec, errp);
    if (!sr)
        return false;
    ImgReader *r = open_image(path, fmt, IMG_OPEN_CONFINE, errp);
    bool ok = false;
    if (r) {
        ImgSource s;
        img_source_from_reader(&s, r, false);
        ok = new_vdi_from_source(ctx, sr, spec, &s, chain_allocation(r), ret, errp);
        img_reader_free(r);
    }
    free(sr);
    return ok;
}

/* ---- uploads ---------------------------------------------------------------------------------------------- */

/*
 * An upload is a sequence of (offset, bytes) pieces of the image file, in
 * increasing order: the body itself, or with chunked=true XenServer's sparse
 * framing (12-byte little-endian headers {offset u64, length u32}, then the
 * bytes; {0, 0} ends it), where the gaps are zeros. Raw images and VHDs
 * whose blocks are in disk order are converted while they arrive, by a
 * thread that takes each piece straight out of the HTTP buffer (a handoff:
 * one copy, no pipe). Everything else is spooled into a sparse file of the
 * SR and converted from it.
 */
#define SPOOL_HOLE (64 * 1024)

struct OpsVdiUpload {
    OpsCtx *ctx;
    Target t;
    ImgFormat fmt;
    int64_t length;    /* HTTP body length, -1 if unknown */
    uint64_t received; /* body bytes */
    uint64_t end;      /* end of the image file so far */
    uint64_t limit;    /* largest image file accepted */
    IoProgress prog;
    XsError *err;  /* the HTTP side's */
    XsError *terr; /* the converting thread's */
    bool failed;
    /* chunked framing */
    bool chunked, framing_done;
    uint8_t hdr[12];
    size_t hdr_have;
    uint64_t rec_off;
    uint64_t rec_left;
    /* the handoff to the converting thread */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool threaded;
    pthread_t thread;
    const uint8_t *piece;
    size_t piece_len;
    uint64_t piece_off;
    bool eof;           /* no more pieces */
    bool consumer_done; /* the thread stopped taking pieces */
    uint64_t cpos;      /* the thread's position in the file */
    bool raw_tail_zero; /* raw: what the upload does not cover reads as zeros */
    bool ok;            /* the thread's outcome */
    /* spool */
    int spool_fd;
    char spool_uuid[UUID_STR_LEN];
};

static bool all_zero(const uint8_t *p, size_t n)
{
    static const uint8_t z[4096];
    while (n >= sizeof(z)) {
        if (memcmp(p, z, sizeof(z)) != 0)
            return false;
        p += sizeof(z);
        n -= sizeof(z);
    }
    return n == 0 || memcmp(p, z, n) == 0;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---- the consumer side (converting thread) ---- */

/* Waits for a piece or the end; lock held. */
static void wait_piece(OpsVdiUpload *u)
{
    while (!u->piece_len && !u->eof)
        pthread_cond_wait(&u->cv, &u->lock);
}

static void take(OpsVdiUpload *u, size_t n)
{
    u->piece += n;
    u->piece_off += n;
    u->piece_len -= n;
    if (!u->piece_len)
        pthread_cond_broadcast(&u->cv);
}

/* File bytes [off, off+len) into buf (gaps and the part after the end: zeros). */
static int file_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    OpsVdiUpload *u = opaque;
    uint8_t *p = buf;
    pthread_mutex_lock(&u->lock);
    if (off < u->cpos) {
        pthread_mutex_unlock(&u->lock);
        return img_error_set(err, EINVAL, "the upload is read backwards");
    }
    while (len > 0) {
        wait_piece(u);
        if (!u->piece_len) { /* the end: the file is u->end bytes long */
            if (off + len > u->end && !u->raw_tail_zero) {
                pthread_mutex_unlock(&u->lock);
                return img_error_set(err, ENODATA,
                                     "the uploaded file ends at %" PRIu64 " bytes, before the "
                                     "image it describes is complete (truncated?)",
                                     u->end);
            }
            memset(p, 0, len);
            break;
        }
        if (u->piece_off + u->piece_len <= off) {
            take(u, u->piece_len);
            continue;
        }
        if (u->piece_off < off) {
            take(u, (size_t)(off - u->piece_off));
            continue;
        }
        if (u->piece_off > off) {
            size_t z = (size_t)MIN((uint64_t)len, u->piece_off - off);
            memset(p, 0, z);
            p += z;
            off += z;
            len -= z;
            continue;
        }
        size_t n = MIN(len, u->piece_len);
        memcpy(p, u->piece, n);
        take(u, n);
        p += n;
        off += n;
        len -= n;
    }
    u->cpos = off;
    pthread_mutex_unlock(&u->lock);
    return 0;
}

/* Raw: the disk is the file; what lies before the next piece is known to be zeros. */
static int raw_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    return file_read(opaque, off, len, buf, err);
}

static int raw_status(void *opaque, uint64_t off, uint64_t maxlen, ImgExtent *ext,
                      ImgError *err)
{
    OpsVdiUpload *u = opaque;
    pthread_mutex_lock(&u->lock);
    /* Only wait when the current piece is used up (the producer can then send). */
    if (!u->piece_len)
        wait_piece(u);
    if (!u->piece_len)
        *ext = (ImgExtent){off, maxlen, IMG_EXTENT_ZERO};
    else if (u->piece_off > off)
        *ext = (ImgExtent){off, MIN(maxlen, u->piece_off - off), IMG_EXTENT_ZERO};
    else if (u->piece_off + u->piece_len > off)
        *ext = (ImgExtent){off, MIN(maxlen, u->piece_off + u->piece_len - off),
                           IMG_EXTENT_DATA};
    else /* beyond a piece not taken yet: unknown, read it */
        *ext = (ImgExtent){off, MIN(maxlen, (uint64_t)(4 * MiB)), IMG_EXTENT_DATA};
    pthread_mutex_unlock(&u->lock);
    return 0;
}

/* Everything that is left of the stream goes into the spool (after prefix). */
static bool spool_rest(OpsVdiUpload *u, const uint8_t *prefix, size_t plen)
{
    if (plen && pwrite(u->spool_fd, prefix, plen, 0) != (ssize_t)plen) {
        ops_sr_io_error(&u->terr, -errno, u->t.dir, "cannot spool the upload");
        return false;
    }
    uint64_t pos = plen;
    pthread_mutex_lock(&u->lock);
    for (;;) {
        wait_piece(u);
        if (!u->piece_len)
            break;
        if (u->piece_off + u->piece_len <= pos) {
            take(u, u->piece_len);
            continue;
        }
        if (u->piece_off < pos) {
            take(u, (size_t)(pos - u->piece_off));
            continue;
        }
        /* Write the piece without the lock: the producer waits for it anyway. */
        const uint8_t *p = u->piece;
        size_t n = u->piece_len;
        uint64_t off = u->piece_off;
        pthread_mutex_unlock(&u->lock);
        ssize_t k = pwrite(u->spool_fd, p, n, (off_t)off);
        pthread_mutex_lock(&u->lock);
        if (k != (ssize_t)n) {
            pthread_mutex_unlock(&u->lock);
            ops_sr_io_error(&u->terr, k < 0 ? -errno : -ENOSPC, u->t.dir,
                            "cannot spool the upload");
            return false;
        }
        take(u, n);
        pos = off + n;
    }
    pthread_mutex_unlock(&u->lock);
    return true;
}

static bool convert_spool(OpsVdiUpload *u, XsError **errp);

static void *upload_thread(void *arg)
{
    OpsVdiUpload *u = arg;
    bool ok = false;
    if (u->fmt == IMG_FORMAT_RAW) {
        ImgSource s = {.virtual_size = u->t.size, .opaque = u, .read = raw_read,
                       .block_status = raw_status};
        ok = write_tmp(u->ctx, u->t.dir, u->t.uuid, &s, &u->prog, &u->terr);
    } else {
        /* VHD: streamed when its layout allows, else spooled like the others. */
        ImgVhdStream *vs = NULL;
        ImgError ie = {0};
        uint64_t fsize = !u->chunked && u->length > 0 ? (uint64_t)u->length : 0;
        int r = img_vhd_stream_open(file_read, u, fsize, 0, &vs, &ie);
        if (r == 0) {
            ImgSource s;
            img_vhd_stream_source(vs, &s);
            if (s.virtual_size > u->t.size) {
                char m[32];
                snprintf(m, sizeof(m), "%" PRIu64, s.virtual_size);
                xs_err_vdi_too_small(&u->terr, u->t.vdi_ref, m);
            } else {
                PadSource ps = {&s, false};
                ImgSource padded = {.virtual_size = u->t.size, .opaque = &ps, .read = pad_read,
                                    .block_status = pad_status};
                ok = write_tmp(u->ctx, u->t.dir, u->t.uuid, &padded, &u->prog, &u->terr);
                if (ok && (r = img_vhd_stream_finish(vs, &ie)) < 0) {
                    xs_err_import_error(&u->terr, ie.msg);
                    vdi_file_discard_tmp(u->t.dir, u->t.uuid);
                    ok = false;
                }
            }
        } else if (r == -ENOTSUP) {
            size_t plen;
            const uint8_t *prefix = img_vhd_stream_prefix(vs, &plen);
            ok = spool_rest(u, prefix, plen);
            if (ok) {
                /* The stream is over: the rest is converted after finish. */
                img_vhd_stream_free(vs);
                pthread_mutex_lock(&u->lock);
                u->consumer_done = true;
                pthread_cond_broadcast(&u->cv);
                pthread_mutex_unlock(&u->lock);
                u->ok = convert_spool(u, &u->terr);
                return NULL;
            }
        } else {
            xs_err_import_error(&u->terr, ie.msg[0] ? ie.msg : "the VHD cannot be read");
        }
        img_vhd_stream_free(vs);
    }
    pthread_mutex_lock(&u->lock);
    u->consumer_done = true;
    u->ok = ok;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

/* ---- the producer side (HTTP thread) ---- */

/* Hands bytes [off, off+len) of the file to the consumer and waits until taken. */
static bool deliver(OpsVdiUpload *u, uint64_t off, const uint8_t *p, size_t len)
{
    if (off < u->end) {
        xs_err_import_error(&u->err, "the pieces of a chunked upload must come in order");
        return false;
    }
    if (off > u->limit || len > u->limit - off) {
        char m[32];
        snprintf(m, sizeof(m), "%" PRIu64, off + len);
        if (u->fmt == IMG_FORMAT_RAW)
            xs_err_vdi_too_small(&u->err, u->t.vdi_ref, m);
        else
            xs_err_import_error(&u->err, "the image file is larger than any image of this VDI");
        return false;
    }
    u->end = off + len;
    if (!len)
        return true;
    if (!u->threaded) {
        /* Spool: aligned 64 KiB blocks of zeros become holes. */
        size_t done = 0, run = 0;
        while (done <= len) {
            size_t chunk = done < len ? (size_t)MIN((uint64_t)(len - done),
                                                    SPOOL_HOLE - (off + done) % SPOOL_HOLE)
                                      : 0;
            bool hole = chunk == SPOOL_HOLE && all_zero(p + done, chunk);
            if ((hole || done == len) && done > run) {
                ssize_t k = pwrite(u->spool_fd, p + run, done - run, (off_t)(off + run));
                if (k != (ssize_t)(done - run)) {
                    ops_sr_io_error(&u->err, k < 0 ? -errno : -ENOSPC, u->t.dir,
                                    "cannot spool the upload");
                    return false;
                }
            }
            if (done == len)
                break;
            done += chunk;
            if (hole)
                run = done;
        }
        return true;
    }
    pthread_mutex_lock(&u->lock);
    while (u->piece_len && !u->consumer_done)
        pthread_cond_wait(&u->cv, &u->lock);
    if (!u->consumer_done) {
        u->piece = p;
        u->piece_len = len;
        u->piece_off = off;
        pthread_cond_broadcast(&u->cv);
        while (u->piece_len && !u->consumer_done)
            pthread_cond_wait(&u->cv, &u->lock);
    }
    bool ok = !u->consumer_done || u->ok;
    if (u->consumer_done)
        u->piece_len = 0;
    pthread_mutex_unlock(&u->lock);
    return ok; /* false: the converter stopped (finish tells why) */
}

static void end_of_stream(OpsVdiUpload *u)
{
    if (!u->threaded)
        return;
    pthread_mutex_lock(&u->lock);
    u->eof = true;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->lock);
}

OpsVdiUpload *ops_vdi_upload_begin(OpsCtx *ctx, const char *vdi, const char *format,
                                   int64_t length, bool chunked, XsError **errp)
{
    ImgFormat fmt;
    if (!format || !*format)
        format = "raw";
    if (!parse_format(format, &fmt, errp))
        return NULL;
    OpsVdiUpload *u = xnew0(OpsVdiUpload, 1);
    u->ctx = ctx;
    u->fmt = fmt;
    u->length = length;
    u->chunked = chunked;
    u->spool_fd = -1;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->cv, NULL);
    io_progress_init(&u->prog, ctx, 0, 1);
    if (!target_open(ctx, vdi, "update", &u->t, errp)) {
        pthread_mutex_destroy(&u->lock);
        pthread_cond_destroy(&u->cv);
        free(u);
        return NULL;
    }
    /* A raw image is at most the VDI; other formats carry some metadata. */
    u->limit = fmt == IMG_FORMAT_RAW ? u->t.size : u->t.size + u->t.size / 16 + 256 * MiB;
    if (fmt == IMG_FORMAT_RAW && !chunked && length > 0 && (uint64_t)length > u->t.size) {
        char m[32];
        snprintf(m, sizeof(m), "%" PRId64, length);
        xs_err_vdi_too_small(errp, vdi, m);
        goto fail;
    }
    if (length > 0 && !ops_sr_check_space(u->t.sr_ref, u->t.dir, (uint64_t)length, errp))
        goto fail;
    if (fmt != IMG_FORMAT_RAW) {
        uuid_generate_str(u->spool_uuid);
        _cleanup_free_ char *sp = vdi_file_path(u->t.dir, u->spool_uuid, VDI_NAME_TMP);
        u->spool_fd = open(sp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (u->spool_fd < 0) {
            ops_sr_io_error(errp, -errno, u->t.dir, strerror(errno));
            goto fail;
        }
    }
    u->raw_tail_zero = fmt == IMG_FORMAT_RAW;
    if (fmt == IMG_FORMAT_RAW || fmt == IMG_FORMAT_VHD) {
        if (pthread_create(&u->thread, NULL, upload_thread, u) != 0) {
            xs_err_internal_error(errp, "cannot start the import thread");
            goto fail;
        }
        u->threaded = true;
    }
    return u;
fail:
    if (u->spool_fd >= 0) {
        close(u->spool_fd);
        vdi_file_discard_tmp(u->t.dir, u->spool_uuid);
    }
    target_release(ctx, &u->t);
    pthread_mutex_destroy(&u->lock);
    pthread_cond_destroy(&u->cv);
    free(u);
    return NULL;
}


bool ops_vdi_upload_data(OpsVdiUpload *u, const void *data, size_t len)
{
    if (u->failed)
        return false;
    if (u->length >= 0 && u->received + len > (uint64_t)u->length) {
        xs_err_import_error(&u->err, "more data than the Content-Length announced");
        u->failed = true;
        return false;
    }
    if (u->received < 4 * MiB && u->received + len >= 4 * MiB)
        storage_crash_point("import-streaming");
    const uint8_t *p = data;
    size_t left = len;
    bool ok = true;
    if (!u->chunked) {
        ok = deliver(u, u->received, p, left);
        left = 0;
    }
    while (ok && left > 0) {
        if (u->framing_done) {
            xs_err_import_error(&u->err, "data after the end of a chunked upload");
            ok = false;
            break;
        }
        if (u->rec_left == 0) {
            size_t k = MIN(left, sizeof(u->hdr) - u->hdr_have);
            memcpy(u->hdr + u->hdr_have, p, k);
            u->hdr_have += k;
            p += k;
            left -= k;
            if (u->hdr_have == sizeof(u->hdr)) {
                u->hdr_have = 0;
                uint64_t off = le64(u->hdr);
                uint32_t n = (uint32_t)(le64(u->hdr + 8) & 0xffffffffu);
                if (off == 0 && n == 0)
                    u->framing_done = true;
                else if (n == 0)
                    ok = deliver(u, off, NULL, 0); /* marks the file's length */
                u->rec_off = off;
                u->rec_left = n;
            }
            continue;
        }
        size_t k = (size_t)MIN((uint64_t)left, u->rec_left);
        ok = deliver(u, u->rec_off, p, k);
        u->rec_off += k;
        u->rec_left -= k;
        p += k;
        left -= k;
    }
    u->received += len;
    if (!u->threaded && u->length > 0)
        io_progress(&u->prog, u->received / 2, (uint64_t)u->length);
    if (ok && u->ctx->task && ops_cancelled(u->ctx)) {
        atomic_store(&u->prog.cancel, true);
        xs_err_task_cancelled(&u->err, u->ctx->task);
        ok = false;
    }
    if (!ok)
        u->failed = true;
    return ok;
}

static void upload_free(OpsVdiUpload *u)
{
    if (u->threaded) {
        end_of_stream(u);
        pthread_join(u->thread, NULL);
        u->threaded = false;
    }
    if (u->spool_fd >= 0) {
        close(u->spool_fd);
        vdi_file_discard_tmp(u->t.dir, u->spool_uuid);
    }
    xs_error_free(u->err);
    xs_error_free(u->terr);
    target_release(u->ctx, &u->t);
    pthread_mutex_destroy(&u->lock);
    pthread_cond_destroy(&u->cv);
    free(u);
}

void ops_vdi_upload_abort(OpsVdiUpload *u)
{
    atomic_store(&u->prog.cancel, true);
    if (u->threaded) {
        end_of_stream(u);
        pthread_join(u->thread, NULL);
        u->threaded = false;
    }
    vdi_file_discard_tmp(u->t.dir, u->t.uuid);
    log_info("import into VDI %s cut off after %" PRIu64 " bytes: nothing kept", u->t.uuid,
             u->received);
    upload_free(u);
}

/*
 * Converts the image r (its top layer: an image that names a parent is a
 * delta, applied onto t's current content) into t's tmp file. A delta is
 * recorded at once (t's operation is then released: t->token is NULL);
 * otherwise the caller commits the tmp file with target_commit().
 */
static bool import_reader(OpsCtx *ctx, Target *t, ImgReader *r, IoProgress *prog,
                          XsError **errp)
{
    const char *pn = img_reader_parent_name(r);
    bool delta = (pn && *pn) || strcmp(img_reader_subformat(r), "differencing") == 0;
    if (delta)
        return target_apply_delta(ctx, t, r, errp);
    ImgSource s;
    img_source_from_reader(&s, r, false);
    if (s.virtual_size > t->size) {
        char m[32];
        snprintf(m, sizeof(m), "%" PRIu64, s.virtual_size);
        xs_err_vdi_too_small(errp, t->vdi_ref, m);
        return false;
    }
    PadSource ps = {&s, false};
    ImgSource padded = {.virtual_size = t->size, .opaque = &ps, .read = pad_read,
                        .block_status = pad_status};
    return write_tmp(ctx, t->dir, t->uuid, &padded, prog, errp);
}

/* Opens the image in fd (its top layer alone: no other file of the host is
 * ever opened) for an import. */
static ImgReader *open_upload(int fd, ImgFormat fmt, XsError **errp)
{
    ImgError ie = {0};
    ImgOpenOptions o = {.format = fmt, .flags = IMG_OPEN_NO_BACKING};
    ImgReader *r = img_open_fd(fd, "the uploaded image", &o, &ie);
    if (!r)
        xs_err_import_error(errp, ie.msg[0] ? ie.msg : "the image cannot be read");
    return r;
}

/* Converts the complete spool into the VDI (a delta when the image names a parent). */
static bool convert_spool(OpsVdiUpload *u, XsError **errp)
{
    if (ftruncate(u->spool_fd, (off_t)u->end) != 0) {
        ops_sr_io_error(errp, -errno, u->t.dir, "cannot spool the upload");
        return false;
    }
    ImgReader *r = open_upload(u->spool_fd, u->fmt, errp);
    if (!r)
        return false;
    io_progress_init(&u->prog, u->ctx, 0.5, 0.5);
    bool ok = import_reader(u->ctx, &u->t, r, &u->prog, errp);
    img_reader_free(r);
    return ok;
}

bool ops_vdi_upload_finish(OpsVdiUpload *u, XsError **errp)
{
    bool ok = false, delta_done = false;
    if (!u->failed && u->length >= 0 && u->received < (uint64_t)u->length) {
        xs_err_import_error_premature_eof(&u->err);
        u->failed = true;
    }
    if (!u->failed && u->chunked && !u->framing_done) {
        xs_err_import_error_premature_eof(&u->err);
        u->failed = true;
    }
    if (u->failed)
        atomic_store(&u->prog.cancel, true);
    if (u->threaded) {
        end_of_stream(u);
        pthread_join(u->thread, NULL);
        u->threaded = false;
        ok = !u->failed && u->ok;
        delta_done = ok && !u->t.token && u->fmt != IMG_FORMAT_RAW;
    } else if (!u->failed) {
        log_info("import into VDI %s: %" PRIu64 " bytes received; converting", u->t.uuid,
                 u->received);
        ok = convert_spool(u, &u->err);
        delta_done = ok && !u->t.token;
    }
    if (ok && !delta_done)
        ok = target_commit(u->ctx, &u->t, &u->err);
    else if (!ok)
        vdi_file_discard_tmp(u->t.dir, u->t.uuid);
    if (!ok) {
        /* The first cause: the HTTP side's if any, else the converter's. */
        XsError **e = u->err ? &u->err : &u->terr;
        if (*e) {
            xs_error_propagate(errp, *e);
            *e = NULL;
        } else if (errp && !*errp) {
            xs_err_import_error(errp, "the import failed");
        }
    }
    upload_free(u);
    return ok;
}

/* ---- downloads ---------------------------------------------------------------------------------------------- */

/*
 * A download sends the image file as pieces (offset, bytes): in the sparse
 * framing each piece is a record, in a plain body the gaps between pieces
 * are sent as zeros. Streaming formats come from a converting thread that
 * writes into an ImgSink: each piece it hands over is copied straight into
 * the HTTP reply (no pipe, no buffer of ours), and what the writer knows to
 * be zeros never becomes a piece. qcow2 is converted into a temporary file
 * of the SR first, whose non-zero runs are then the pieces.
 */
struct OpsVdiDownload {
    OpsCtx *ctx;
    char *vdi_ref;
    char *token;
    ImgReader *reader;
    ImgFormat fmt;
    ImgWriteOptions wo;
    IoProgress prog;
    bool chunked;
    int64_t size;      /* of the HTTP body, if known in advance */
    uint64_t length;   /* of the image file, once known */
    /* streaming formats: the converter's handoff */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started;
    const uint8_t *piece; /* the converter's piece, until released */
    uint64_t piece_off;
    size_t piece_len;
    bool piece_taken;
    bool conv_done;  /* the converter returned (result, length set) */
    bool stop;       /* nobody reads any more: the converter stops */
    int result;
    ImgError ie;
    /* qcow2: converted into a file first, then read */
    int file_fd;
    uint8_t *in;       /* file bytes read, not yet sent */
    size_t in_len, in_at;
    uint64_t in_off;   /* file offset of in[0] */
    /* what is being sent */
    const uint8_t *cur;
    uint64_t cur_off;
    size_t cur_len;
    bool cur_handoff;  /* cur is the converter's piece (released when sent) */
    uint64_t pos;      /* file offset reached (plain bodies: zeros sent up to cur_off) */
    uint64_t rec_end;  /* chunked: end of the record being sent */
    uint8_t hdr[12];
    size_t hdr_len, hdr_at;
    bool ended;        /* no more pieces: what follows is the end */
    int tail;          /* chunked: 0 length to send, 1 end to send, 2 done */
    bool at_end;
    uint64_t delivered;
};

#define FRAME_BUF (4 * 1024 * 1024)
#define FRAME_HOLE (64 * 1024)
/* Longest record of the sparse framing we send (its length field is 32 bits). */
#define FRAME_RECORD (16u * 1024 * 1024)

static void put_le_bytes(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* The converter's sink: hands each piece over and waits until it is sent. */
static int download_sink(void *opaque, uint64_t off, const void *buf, size_t len, ImgError *err)
{
    OpsVdiDownload *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->piece = buf;
    d->piece_off = off;
    d->piece_len = len;
    d->piece_taken = false;
    pthread_cond_broadcast(&d->cv);
    while (d->piece && !d->stop)
        pthread_cond_wait(&d->cv, &d->lock);
    bool stop = d->stop;
    d->piece = NULL;
    pthread_mutex_unlock(&d->lock);
    if (stop)
        return img_error_set(err, EPIPE, "the export was cut off before its end");
    return 0;
}

static void *download_thread(void *arg)
{
    OpsVdiDownload *d = arg;
    ImgProgress ip = img_progress_of(&d->prog);
    ImgSource src;
    img_source_from_reader(&src, d->reader, false);
    ImgSink sink = {.opaque = d, .write = download_sink};
    uint64_t length = 0;
    int r = img_write_sink(&src, d->fmt, &d->wo, &sink, &ip, &length, &d->ie);
    pthread_mutex_lock(&d->lock);
    d->result = r;
    d->length = length;
    d->conv_done = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

const char *ops_vdi_format_content_type(const char *format)
{
    if (!format || !*format || strcmp(format, "raw") == 0)
        return "application/octet-stream";
    if (strcmp(format, "vhd") == 0)
        return "application/vhd";
    if (strcmp(format, "vmdk") == 0)
        return "application/x-vmdk";
    if (strcmp(format, "qcow2") == 0)
        return "application/x-qemu-disk";
    return NULL;
}

/* Opens vdi for reading its content in format fmt: path, "copy" operation, reader. */
static bool export_open(OpsCtx *ctx, const char *vdi, ImgFormat fmt, char **token, char **path,
                        ImgReader **reader, ImgWriteOptions *wo, XsError **errp)
{
    const char *vfmt = NULL;
    img_write_options_init(wo);
    if (!ops_vdi_get_path(ctx, vdi, path, &vfmt, errp))
        return false;
    if (!ops_op_begin_ref(ctx, XS_CLASS_VDI, vdi, "copy", token, errp))
        return false;
    *reader = open_image(*path, img_format_from_name(vfmt), 0, errp);
    if (!*reader)
        return false;
    if (fmt == IMG_FORMAT_VHD && img_reader_virtual_size(*reader) > IMG_VHD_MAX_SIZE) {
        char m[32];
        snprintf(m, sizeof(m), "%llu", (unsigned long long)IMG_VHD_MAX_SIZE);
        xs_err_vdi_too_large(errp, vdi, m);
        return false;
    }
    if (fmt == IMG_FORMAT_VHD)
        wo->vhd_force_size = true; /* the exact size of the VDI */
    return true;
}

OpsVdiDownload *ops_vdi_download_begin(OpsCtx *ctx, const char *vdi, const char *format,
                                       bool chunked, XsError **errp)
{
    ImgFormat fmt;
    if (!format || !*format)
        format = "raw";
    if (!parse_format(format, &fmt, errp))
        return NULL;
    OpsVdiDownload *d = xnew0(OpsVdiDownload, 1);
    d->ctx = ctx;
    d->fmt = fmt;
    d->file_fd = -1;
    d->size = -1;
    d->vdi_ref = xstrdup(vdi);
    d->chunked = chunked;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cv, NULL);
    io_progress_init(&d->prog, ctx, 0, 1);
    char *path = NULL;
    if (!export_open(ctx, vdi, fmt, &d->token, &path, &d->reader, &d->wo, errp))
        goto fail;
    if (img_format_can_stream(fmt, IMG_SUBFORMAT_DEFAULT)) {
        if (fmt == IMG_FORMAT_RAW && !chunked)
            d->size = (int64_t)img_reader_virtual_size(d->reader);
        if (pthread_create(&d->thread, NULL, download_thread, d) != 0) {
            xs_err_internal_error(errp, "cannot start the export thread");
            goto fail;
        }
        d->thread_started = true;
    } else {
        /* A seekable format: convert into a temporary file of the SR, then send it. */
        _cleanup_free_ char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        char tuuid[UUID_STR_LEN];
        uuid_generate_str(tuuid);
        _cleanup_free_ char *tmp = vdi_file_path(dir, tuuid, VDI_NAME_TMP);
        d->file_fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (d->file_fd < 0) {
            ops_sr_io_error(errp, -errno, dir, strerror(errno));
            goto fail;
        }
        unlink(tmp); /* nothing to clean up whatever happens */
        ImgProgress ip = img_progress_of(&d->prog);
        int r = img_convert(d->reader, fmt, &d->wo, d->file_fd, &ip, &d->ie);
        struct stat st;
        if (r == 0 && fstat(d->file_fd, &st) != 0)
            r = -errno;
        if (r < 0) {
            ops_sr_io_error(errp, r, dir, d->ie.msg[0] ? d->ie.msg : strerror(-r));
            goto fail;
        }
        d->length = (uint64_t)st.st_size;
        d->size = chunked ? -1 : st.st_size;
        d->in = xmalloc(FRAME_BUF);
    }
    free(path);
    return d;
fail:
    free(path);
    ops_vdi_download_finish(d, NULL);
    return NULL;
}

int64_t ops_vdi_download_size(const OpsVdiDownload *d)
{
    return d->size;
}

/* The next run of the converted file that holds data (plain bodies: every
 * byte) into d->cur. 1: a piece, 0: the end, -1: error. */
static int next_file_piece(OpsVdiDownload *d)
{
    for (;;) {
        if (d->in_at == d->in_len) {
            d->in_off += d->in_len;
            d->in_len = d->in_at = 0;
            if (d->in_off >= d->length)
                return 0;
            size_t want = (size_t)MIN((uint64_t)FRAME_BUF, d->length - d->in_off);
            ssize_t k = pread(d->file_fd, d->in, want, (off_t)d->in_off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                d->result = k < 0 ? -errno : -EIO;
                snprintf(d->ie.msg, sizeof(d->ie.msg), "reading the converted image: %s",
                         k < 0 ? strerror(errno) : "the file is shorter than it was");
                return -1;
            }
            d->in_len = (size_t)k;
        }
        /* Leave out aligned 64 KiB blocks of zeros (chunked only), take the run up to the
         * next one. */
        size_t start = d->in_at, end = start;
        while (end < d->in_len) {
            uint64_t abs = d->in_off + end;
            size_t blk = (size_t)MIN((uint64_t)(d->in_len - end), FRAME_HOLE - abs % FRAME_HOLE);
            bool zero = d->chunked && blk == FRAME_HOLE && all_zero(d->in + end, blk);
            if (zero && end == start) {
                start = end = end + blk;
                continue;
            }
            if (zero)
                break;
            end += blk;
        }
        d->in_at = end;
        if (end == start)
            continue;
        d->cur = d->in + start;
        d->cur_off = d->in_off + start;
        d->cur_len = end - start;
        d->cur_handoff = false;
        return 1;
    }
}

/* The converter's next piece into d->cur; with wait false, 2 when none is ready yet.
 * 1: a piece, 0: the end (d->length set), -1: error. */
static int next_stream_piece(OpsVdiDownload *d, bool wait)
{
    pthread_mutex_lock(&d->lock);
    while (!(d->piece && !d->piece_taken) && !d->conv_done) {
        if (!wait) {
            pthread_mutex_unlock(&d->lock);
            return 2;
        }
        pthread_cond_wait(&d->cv, &d->lock);
    }
    if (d->piece && !d->piece_taken) {
        d->piece_taken = true;
        d->cur = d->piece;
        d->cur_off = d->piece_off;
        d->cur_len = d->piece_len;
        d->cur_handoff = true;
        pthread_mutex_unlock(&d->lock);
        return 1;
    }
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    d->thread_started = false;
    return d->result < 0 ? -1 : 0;
}

/* The current piece is sent: the converter may go on. */
static void release_piece(OpsVdiDownload *d)
{
    d->cur = NULL;
    if (!d->cur_handoff)
        return;
    d->cur_handoff = false;
    pthread_mutex_lock(&d->lock);
    d->piece = NULL;
    d->piece_taken = false;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->lock);
}

static void set_record(OpsVdiDownload *d, uint64_t off, uint32_t len)
{
    put_le_bytes(d->hdr, off, 8);
    put_le_bytes(d->hdr + 8, len, 4);
    d->hdr_len = 12;
    d->hdr_at = 0;
}

ssize_t ops_vdi_download_read(OpsVdiDownload *d, char *buf, size_t max)
{
    size_t out = 0;
    while (out < max && !d->at_end) {
        if (d->hdr_at < d->hdr_len) {
            size_t k = MIN(max - out, d->hdr_len - d->hdr_at);
            memcpy(buf + out, d->hdr + d->hdr_at, k);
            d->hdr_at += k;
            out += k;
            continue;
        }
        if (d->cur && !d->chunked && d->pos < d->cur_off) {
            /* A plain body carries the gaps as zeros. */
            size_t k = (size_t)MIN((uint64_t)(max - out), d->cur_off - d->pos);
            memset(buf + out, 0, k);
            d->pos += k;
            out += k;
            continue;
        }
        if (d->cur && d->pos < d->cur_off + d->cur_len) {
            if (d->chunked && d->pos == d->rec_end) {
                /* The next record of this piece. */
                uint64_t n = MIN(d->cur_off + d->cur_len - d->pos, (uint64_t)FRAME_RECORD);
                set_record(d, d->pos, (uint32_t)n);
                d->rec_end = d->pos + n;
                continue;
            }
            uint64_t lim = d->chunked ? d->rec_end : d->cur_off + d->cur_len;
            size_t k = (size_t)MIN((uint64_t)(max - out), lim - d->pos);
            memcpy(buf + out, d->cur + (d->pos - d->cur_off), k);
            d->pos += k;
            out += k;
            continue;
        }
        if (d->cur)
            release_piece(d);
        if (d->ended) {
            if (!d->chunked && d->pos < d->length) {
                /* Plain: the zeros after the last piece, up to the file's length. */
                size_t k = (size_t)MIN((uint64_t)(max - out), d->length - d->pos);
                memset(buf + out, 0, k);
                d->pos += k;
                out += k;
            } else if (d->chunked && d->tail == 0) {
                /* {file length, 0} marks the length (an empty file: the end alone). */
                if (d->length > 0)
                    set_record(d, d->length, 0);
                d->tail = 1;
            } else if (d->chunked && d->tail == 1) {
                set_record(d, 0, 0);
                d->tail = 2;
            } else {
                d->at_end = true;
            }
            continue;
        }
        int r = d->file_fd >= 0 ? next_file_piece(d) : next_stream_piece(d, out == 0);
        if (r == 2)
            break; /* send what we have; the converter is still at work */
        if (r < 0)
            return out ? (ssize_t)out : -1;
        if (r == 0) {
            d->ended = true;
            continue;
        }
        if (d->chunked)
            d->rec_end = d->pos = d->cur_off;
    }
    d->delivered += out;
    return (ssize_t)out;
}

bool ops_vdi_download_finish(OpsVdiDownload *d, XsError **errp)
{
    if (d->thread_started && d->size >= 0 && d->delivered >= (uint64_t)d->size) {
        /* Everything was sent: the converter ends on its own. */
        if (d->cur)
            release_piece(d);
        pthread_join(d->thread, NULL);
        d->thread_started = false;
        d->at_end = true;
    }
    if (d->thread_started) {
        atomic_store(&d->prog.cancel, true);
        pthread_mutex_lock(&d->lock);
        d->stop = true;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
        d->thread_started = false;
    }
    bool ok = d->at_end && d->result >= 0;
    if (!ok && errp && !*errp) {
        if (d->result < 0)
            xs_err_vdi_io_error(errp, d->ie.msg[0] ? d->ie.msg : strerror(-d->result));
        else
            xs_err_vdi_io_error(errp, "the export was cut off before its end");
    }
    if (d->file_fd >= 0)
        close(d->file_fd);
    img_reader_free(d->reader);
    if (d->token)
        ops_op_end(d->ctx, XS_CLASS_VDI, d->vdi_ref, d->token);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cv);
    free(d->token);
    free(d->vdi_ref);
    free(d->in);
    free(d);
    return ok;
}

/* ---- descriptors passed by a local client ------------------------------------------------------------ */

bool ops_vdi_import_fd(OpsCtx *ctx, const char *vdi, const char *format, int fd, XsError **errp)
{
    ImgFormat fmt;
    if (!format || !*format)
        format = "raw";
    if (!parse_format(format, &fmt, errp))
        return false;
    Target t;
    if (!target_open(ctx, vdi, "update", &t, errp))
        return false;
    bool ok = false;
    ImgReader *r = open_upload(fd, fmt, errp);
    if (r && fmt == IMG_FORMAT_RAW && img_reader_virtual_size(r) > t.size) {
        char m[32];
        snprintf(m, sizeof(m), "%" PRIu64, img_reader_virtual_size(r));
        xs_err_vdi_too_small(errp, vdi, m);
    } else if (r && ops_sr_check_space(t.sr_ref, t.dir, chain_allocation(r), errp)) {
        log_info("import into VDI %s from a local file (%s)", t.uuid, format);
        IoProgress prog;
        io_progress_init(&prog, ctx, 0, 1);
        prog.crash_point = "import-streaming";
        ok = import_reader(ctx, &t, r, &prog, errp);
        /* A delta records itself (and releases the operation). */
        if (ok && t.token)
            ok = target_commit(ctx, &t, errp);
        else if (!ok)
            vdi_file_discard_tmp(t.dir, t.uuid);
    }
    img_reader_free(r);
    target_release(ctx, &t);
    return ok;
}

bool ops_vdi_export_fd(OpsCtx *ctx, const char *vdi, const char *format, int fd, XsError **errp)
{
    ImgFormat fmt;
    if (!format || !*format)
        format = "raw";
    if (!parse_format(format, &fmt, errp))
        return false;
    char *token = NULL, *path = NULL;
    ImgReader *r = NULL;
    ImgWriteOptions wo;
    bool ok = false;
    if (export_open(ctx, vdi, fmt, &token, &path, &r, &wo, errp)) {
        IoProgress prog;
        io_progress_init(&prog, ctx, 0, 1);
        ImgProgress ip = img_progress_of(&prog);
        ImgError ie = {0};
        /* The file's content is replaced: the image starts at its offset 0. An
         * empty file is not truncated: on ext4 that would make its last close
         * write the whole file out (auto_da_alloc), a second per few GiB. */
        struct stat fst;
        int rc = lseek(fd, 0, SEEK_SET) < 0 || fstat(fd, &fst) < 0 ||
                         (fst.st_size > 0 && ftruncate(fd, 0) < 0)
                     ? -errno
                     : 0;
        if (rc == 0)
            rc = img_convert(r, fmt, &wo, fd, &ip, &ie);
        if (rc == -ECANCELED && ctx->task)
            xs_err_task_cancelled(errp, ctx->task);
        else if (rc < 0)
            xs_err_vdi_io_error(errp, ie.msg[0] ? ie.msg : strerror(-rc));
        ok = rc == 0;
    }
    img_reader_free(r);
    if (token)
        ops_op_end(ctx, XS_CLASS_VDI, vdi, token);
    free(token);
    free(path);
    return ok;
}
