/*
 * A new VDI's file written from pushed data (vdi_stream.h). The formats
 * layer's qcow2 writer pulls its source (block status, then reads, in
 * increasing offsets, from a thread of its own); the importer pushes. In
 * between sits a bounded ring: the producer copies data in and queues
 * extents (data, or zeros for what it skipped), the writer's callbacks
 * answer block status from the queued extents and copy the data out. Zero
 * runs never enter the ring. The ring holds 8 MiB, more than the writer
 * ever asks for ahead of what it reads (one 4 MiB chunk plus one cluster),
 * so neither side can wait for the other forever.
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
#include <unistd.h>

#include "formats/image.h"
#include "ops/storage_int.h"
#include "ops/vdi_stream.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define RING_BYTES (8u * 1024 * 1024)
#define MAX_EXTENTS 1024
/* How often the free space of the SR is checked while writing. */
#define SPACE_CHECK_BYTES (64u * 1024 * 1024)

typedef struct Extent {
    uint64_t off, len;
    bool data;
    size_t rpos; /* data: where it starts in the ring (never wraps) */
} Extent;

struct OpsVdiWriter {
    OpsCtx *ctx;
    char *sr_ref;
    char *dir;
    char uuid[UUID_STR_LEN];
    uint64_t size;
    int fd;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint8_t *ring;
    size_t ring_head, ring_used;
    Extent q[MAX_EXTENTS];
    size_t qhead, qlen;
    uint64_t pushed_end; /* end of what the producer queued */
    bool closed;         /* the producer said everything */
    bool stop;           /* give up (abort) */
    bool done;           /* the conversion ended */
    int result;
    ImgError ie;
    XsError *err; /* the producer's own failure (space check) */
    atomic_bool cancel;

    uint64_t since_check;
    bool published;
};

/* ---- the queue (lock held) -------------------------------------------------------------- */

static Extent *qat(OpsVdiWriter *w, size_t i)
{
    return &w->q[(w->qhead + i) % MAX_EXTENTS];
}

static void drop_head(OpsVdiWriter *w)
{
    Extent *e = qat(w, 0);
    if (e->data) {
        w->ring_head = (w->ring_head + (size_t)e->len) % RING_BYTES;
        w->ring_used -= (size_t)e->len;
    }
    w->qhead = (w->qhead + 1) % MAX_EXTENTS;
    w->qlen--;
    pthread_cond_broadcast(&w->cv);
}

/* Drops the extents that end at or before off. */
static void drop_before(OpsVdiWriter *w, uint64_t off)
{
    while (w->qlen && qat(w, 0)->off + qat(w, 0)->len <= off)
        drop_head(w);
}

/* ---- the writer's source (its own thread) ------------------------------------------------- */

/* Drops the zero extents at the head that end at or before off. Data is
 * dropped by reads only: a status query may look past data not read yet
 * (the rest of a cluster). */
static void drop_zero_before(OpsVdiWriter *w, uint64_t off)
{
    while (w->qlen && !qat(w, 0)->data && qat(w, 0)->off + qat(w, 0)->len <= off)
        drop_head(w);
}

/* The index of the first queued extent that ends after off, waiting for
 * the producer if needed; -1 at the end (closed, nothing queued there),
 * -2 when told to stop. */
static long wait_for(OpsVdiWriter *w, uint64_t off, bool reading)
{
    for (;;) {
        if (w->stop)
            return -2;
        if (reading)
            drop_before(w, off);
        else
            drop_zero_before(w, off);
        for (size_t i = 0; i < w->qlen; i++)
            if (qat(w, i)->off + qat(w, i)->len > off)
                return (long)i;
        if (w->closed)
            return -1;
        pthread_cond_wait(&w->cv, &w->lock);
    }
}

static int src_status(void *opaque, uint64_t off, uint64_t maxlen, ImgExtent *ext, ImgError *err)
{
    OpsVdiWriter *w = opaque;
    pthread_mutex_lock(&w->lock);
    long i = wait_for(w, off, false);
    if (i == -2) {
        pthread_mutex_unlock(&w->lock);
        return img_error_set(err, ECANCELED, "the import was stopped");
    }
    uint64_t len;
    ImgExtentKind kind;
    if (i < 0) {
        len = maxlen; /* closed: the rest is zeros */
        kind = IMG_EXTENT_ZERO;
    } else if (off < qat(w, (size_t)i)->off) {
        len = qat(w, (size_t)i)->off - off;
        kind = IMG_EXTENT_ZERO;
    } else {
        Extent *e = qat(w, (size_t)i);
        bool data = e->data;
        uint64_t end = e->off + e->len;
        /* Longer runs: follow queued extents of the same kind. */
        for (size_t k = (size_t)i + 1; k < w->qlen; k++) {
            Extent *n = qat(w, k);
            if (n->data != data || (n->off != end && data))
                break;
            end = n->off + n->len;
        }
        len = end - off;
        kind = data ? IMG_EXTENT_DATA : IMG_EXTENT_ZERO;
    }
    pthread_mutex_unlock(&w->lock);
    *ext = (ImgExtent){off, MIN(len, maxlen), kind};
    return 0;
}

static int src_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    OpsVdiWriter *w = opaque;
    uint8_t *out = buf;
    pthread_mutex_lock(&w->lock);
    while (len) {
        long i = wait_for(w, off, true);
        if (i == -2) {
            pthread_mutex_unlock(&w->lock);
            return img_error_set(err, ECANCELED, "the import was stopped");
        }
        size_t n;
        if (i < 0) {
            n = len;
            memset(out, 0, n);
        } else if (off < qat(w, (size_t)i)->off) {
            n = (size_t)MIN((uint64_t)len, qat(w, (size_t)i)->off - off);
            memset(out, 0, n);
        } else {
            Extent *e = qat(w, (size_t)i);
            n = (size_t)MIN((uint64_t)len, e->off + e->len - off);
            if (e->data) {
                /* The producer never touches queued data: copy unlocked. */
                const uint8_t *src = w->ring + e->rpos + (off - e->off);
                pthread_mutex_unlock(&w->lock);
                memcpy(out, src, n);
                pthread_mutex_lock(&w->lock);
            } else {
                memset(out, 0, n);
            }
        }
        out += n;
        off += n;
        len -= n;
    }
    drop_before(w, off);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static void *writer_thread(void *arg)
{
    OpsVdiWriter *w = arg;
    ImgSource src = {.virtual_size = w->size, .opaque = w, .read = src_read,
                     .block_status = src_status};
    ImgWriteOptions wo;
    img_write_options_init(&wo);
    ImgProgress ip = {.cancel = &w->cancel};
    ImgError ie = {0};
    /* Not flushed: VDI files have the database's durability (vdi_file_publish). */
    int r = img_write(&src, IMG_FORMAT_QCOW2, &wo, w->fd, &ip, &ie);
    pthread_mutex_lock(&w->lock);
    w->result = r;
    w->ie = ie;
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- the producer -------------------------------------------------------------------------- */

uint64_t ops_vdi_writer_max_bytes(uint64_t size)
{
    return size + vdi_file_metadata_size(size);
}

OpsVdiWriter *ops_vdi_writer_new(OpsCtx *ctx, const char *sr_ref, uint64_t size, XsError **errp)
{
    if (size == 0 || size > IMG_MAX_VIRTUAL_SIZE) {
        char v[32];
        snprintf(v, sizeof(v), "%" PRIu64, size);
        xs_err_invalid_value(errp, "virtual_size", v);
        return NULL;
    }
    db_read_lock(ctx->db);
    DbObj *sr = db_get_class(ctx->db, XS_CLASS_SR, sr_ref);
    bool ok = sr && ops_sr_check_file_sr(sr, errp);
    db_read_unlock(ctx->db);
    if (!sr)
        xs_err_handle_invalid(errp, "SR", sr_ref);
    if (!ok)
        return NULL;
    char *dir = ops_sr_dir(ctx, sr_ref, errp);
    if (!dir)
        return NULL;
    OpsVdiWriter *w = xnew0(OpsVdiWriter, 1);
    w->ctx = ctx;
    w->sr_ref = xstrdup(sr_ref);
    w->dir = dir;
    w->size = size;
    w->fd = -1;
    uuid_generate_str(w->uuid);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_init(&w->cancel, false);
    _cleanup_free_ char *tmp = vdi_file_path(dir, w->uuid, VDI_NAME_TMP);
    w->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        ops_sr_io_error(errp, -errno, dir, strerror(errno));
        ops_vdi_writer_free(w);
        return NULL;
    }
    w->ring = xmalloc(RING_BYTES);
    if (pthread_create(&w->thread, NULL, writer_thread, w) != 0) {
        xs_err_internal_error(errp, "cannot start the VDI writer thread");
        ops_vdi_writer_free(w);
        return NULL;
    }
    w->thread_started = true;
    return w;
}

const char *ops_vdi_writer_uuid(const OpsVdiWriter *w)
{
    return w->uuid;
}

/* Waits for a free queue slot; lock held. 0, or the conversion's error. */
static int wait_slot(OpsVdiWriter *w)
{
    while (w->qlen == MAX_EXTENTS && !w->done && !w->stop)
        pthread_cond_wait(&w->cv, &w->lock);
    if (w->done || w->stop)
        return w->result < 0 ? w->result : -ECANCELED;
    return 0;
}

static int push_zero(OpsVdiWriter *w, uint64_t off, uint64_t len)
{
    if (w->qlen) {
        Extent *last = qat(w, w->qlen - 1);
        if (!last->data && last->off + last->len == off) {
            last->len += len;
            pthread_cond_broadcast(&w->cv);
            return 0;
        }
    }
    int r = wait_slot(w);
    if (r < 0)
        return r;
    *qat(w, w->qlen) = (Extent){off, len, false, 0};
    w->qlen++;
    pthread_cond_broadcast(&w->cv);
    return 0;
}

int ops_vdi_writer_write(OpsVdiWriter *w, uint64_t offset, const void *buf, size_t len)
{
    if (offset < w->pushed_end || offset > w->size || len > w->size - offset)
        return -EINVAL;
    w->since_check += len;
    if (w->since_check >= SPACE_CHECK_BYTES) {
        w->since_check = 0;
        XsError *e = NULL;
        if (!ops_sr_check_space(w->sr_ref, w->dir, SPACE_CHECK_BYTES, &e)) {
            pthread_mutex_lock(&w->lock);
            xs_error_free(w->err);
            w->err = e;
            w->stop = true;
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->lock);
            return -ENOSPC;
        }
    }
    const uint8_t *p = buf;
    pthread_mutex_lock(&w->lock);
    int r = 0;
    if (offset > w->pushed_end)
        r = push_zero(w, w->pushed_end, offset - w->pushed_end);
    w->pushed_end = offset;
    while (r == 0 && len) {
        /* Contiguous free room at the tail of the ring. */
        size_t tail = (w->ring_head + w->ring_used) % RING_BYTES;
        size_t room = w->ring_used == RING_BYTES ? 0
                      : tail >= w->ring_head ? RING_BYTES - tail
                                             : w->ring_head - tail;
        if (w->done || w->stop) {
            r = w->result < 0 ? w->result : -ECANCELED;
            break;
        }
        if (room == 0 || w->qlen == MAX_EXTENTS) {
            pthread_cond_wait(&w->cv, &w->lock);
            continue;
        }
        size_t n = MIN(room, len);
        pthread_mutex_unlock(&w->lock);
        memcpy(w->ring + tail, p, n);
        pthread_mutex_lock(&w->lock);
        Extent *last = w->qlen ? qat(w, w->qlen - 1) : NULL;
        if (last && last->data && last->off + last->len == offset &&
            last->rpos + last->len == tail) {
            last->len += n;
        } else {
            *qat(w, w->qlen) = (Extent){offset, n, true, tail};
            w->qlen++;
        }
        w->ring_used += n;
        w->pushed_end = offset + n;
        offset += n;
        p += n;
        len -= n;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->lock);
    return r;
}

static void set_failure(OpsVdiWriter *w, int r, XsError **errp)
{
    if (w->err) {
        xs_error_propagate(errp, w->err);
        w->err = NULL;
    } else if (r == -ECANCELED) {
        xs_err_task_cancelled(errp, w->ctx->task ? w->ctx->task : "");
    } else if (r == -ENOSPC || r == -EDQUOT) {
        ops_sr_io_error(errp, r, w->dir, w->ie.msg);
    } else {
        xs_err_vdi_io_error(errp, w->ie.msg[0] ? w->ie.msg : strerror(-r));
    }
}

bool ops_vdi_writer_close(OpsVdiWriter *w, XsError **errp)
{
    pthread_mutex_lock(&w->lock);
    w->closed = true;
    pthread_cond_broadcast(&w->cv);
    while (!w->done && !w->stop)
        pthread_cond_wait(&w->cv, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (w->stop && !w->done) {
        atomic_store(&w->cancel, true);
    }
    if (w->thread_started) {
        pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
    int r = w->stop && w->result == 0 ? -ECANCELED : w->result;
    if (w->fd >= 0 && close(w->fd) != 0 && r == 0)
        r = img_error_set(&w->ie, errno, "cannot write the new VDI file: %s", strerror(errno));
    w->fd = -1;
    if (r < 0 || w->err) {
        set_failure(w, r, errp);
        return false;
    }
    return true;
}

DbObj *ops_vdi_writer_record(OpsVdiWriter *w, DbTxn *txn, const OpsVdiSpec *spec,
                             XsError **errp)
{
    Db *db = db_txn_db(txn);
    DbObj *sr = db_get_class(db, XS_CLASS_SR, w->sr_ref);
    if (!sr) {
        xs_err_handle_invalid(errp, "SR", w->sr_ref);
        return NULL;
    }
    DbObj *v = db_create(txn, XS_CLASS_VDI, NULL, w->uuid, errp);
    if (!v)
        return NULL;
    OpsVdiSpec s = *spec;
    s.sr = w->sr_ref;
    s.virtual_size = (int64_t)w->size;
    ops_vdi_init_record(txn, v, sr, &s, NULL);
    _cleanup_free_ char *tmp = vdi_file_path(w->dir, w->uuid, VDI_NAME_TMP);
    struct stat st;
    if (stat(tmp, &st) == 0)
        db_set_int(txn, v, F_VDI_PHYSICAL_UTILISATION, (int64_t)st.st_blocks * 512);
    ops_sr_refresh_sizes_txn(txn, sr, w->dir);
    return v;
}

bool ops_vdi_writer_publish(OpsVdiWriter *w, XsError **errp)
{
    char *msg = NULL;
    int r = vdi_file_publish(w->dir, w->uuid, &msg);
    if (r < 0) {
        ops_sr_io_error(errp, r, w->dir, msg);
        free(msg);
        return false;
    }
    w->published = true;
    return true;
}

void ops_vdi_writer_unpublish(OpsVdiWriter *w)
{
    if (!w || !w->published)
        return;
    if (vdi_file_trash(w->dir, w->uuid, NULL) == 0)
        vdi_file_purge(w->dir, w->uuid);
    w->published = false;
}

void ops_vdi_writer_free(OpsVdiWriter *w)
{
    if (!w)
        return;
    if (w->thread_started) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->lock);
        atomic_store(&w->cancel, true);
        pthread_join(w->thread, NULL);
    }
    if (w->fd >= 0)
        close(w->fd);
    if (!w->published && w->dir)
        vdi_file_discard_tmp(w->dir, w->uuid);
    xs_error_free(w->err);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cv);
    free(w->ring);
    free(w->sr_ref);
    free(w->dir);
    free(w);
}
