/*
 * A new VDI's file written from pushed data (vdi_stream.h). The importer
 * pushes on its thread; a thread of the writer's own turns the data into
 * qcow2 (the formats layer's ImgQcow2Stream). In between sits a bounded
 * ring: the producer copies data in and queues extents (data, or zeros for
 * what it skipped); the writer writes the data extents from the ring
 * itself, about 2 MiB at a time in one pwritev(), and frees each batch as
 * it is written. Zero runs never enter the ring.
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
    size_t rpos;        /* data: where it starts in the ring (never wraps) */
    const uint8_t *ref; /* or the caller's memory (ops_vdi_writer_write_ref) */
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
    uint64_t ref_bytes; /* queued by reference, not written yet */
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
    if (e->data && e->ref) {
        w->ref_bytes -= e->len;
    } else if (e->data) {
        w->ring_head = (w->ring_head + (size_t)e->len) % RING_BYTES;
        w->ring_used -= (size_t)e->len;
    }
    w->qhead = (w->qhead + 1) % MAX_EXTENTS;
    w->qlen--;
    pthread_cond_broadcast(&w->cv);
}

/* ---- the writer (its own thread) ----------------------------------------------------------- */

/* Most bytes written at once: ring space comes back in steps this large. */
#define WRITE_STEP (2u * 1024 * 1024)
/* Most extents written at once. */
#define WRITE_PIECES 64

typedef struct Piece {
    uint64_t off;
    const uint8_t *p; /* NULL: a zero extent */
    size_t len;
} Piece;

/* The next batch from the head of the queue (lock held): data extents up to
 * WRITE_STEP bytes, zero extents between them. The producer only appends
 * extents or lengthens the last one, so the pieces stay as taken. */
static size_t take_batch(OpsVdiWriter *w, Piece *batch)
{
    size_t nb = 0, bytes = 0;
    for (size_t i = 0; i < w->qlen && nb < WRITE_PIECES; i++) {
        Extent *e = qat(w, i);
        if (!e->data) {
            batch[nb++] = (Piece){e->off, NULL, (size_t)e->len};
            continue;
        }
        size_t n = (size_t)e->len;
        if (nb == 0) {
            /* A long first extent: up to a 2 MiB boundary (whole clusters). */
            uint64_t end = (e->off + WRITE_STEP) / WRITE_STEP * WRITE_STEP;
            n = (size_t)MIN(e->len, end - e->off);
        } else if (bytes + n > WRITE_STEP) {
            break;
        }
        batch[nb++] = (Piece){e->off, e->ref ? e->ref : w->ring + e->rpos, n};
        bytes += n;
        if (n < e->len)
            break; /* the rest of it comes first next time */
    }
    return nb;
}

/* Frees the batch's pieces from the head of the queue (lock held). */
static void drop_batch(OpsVdiWriter *w, const Piece *batch, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        Extent *e = qat(w, 0);
        if (!batch[i].p) {
            drop_head(w); /* zeros, however long they grew */
            continue;
        }
        e->off += batch[i].len;
        e->len -= batch[i].len;
        if (e->ref) {
            e->ref += batch[i].len;
            w->ref_bytes -= batch[i].len;
        } else {
            e->rpos += batch[i].len;
            w->ring_head = (w->ring_head + batch[i].len) % RING_BYTES;
            w->ring_used -= batch[i].len;
        }
        if (e->len == 0) {
            e->data = false; /* its bytes are freed already */
            drop_head(w);
        }
    }
    pthread_cond_broadcast(&w->cv);
}

/* Writes the data extents as they come, straight from the ring; zero
 * extents are gaps the qcow2 stream leaves unallocated. */
static int write_queue(OpsVdiWriter *w, ImgQcow2Stream *s)
{
    Piece batch[WRITE_PIECES];
    pthread_mutex_lock(&w->lock);
    int r = 0;
    for (;;) {
        while (w->qlen == 0 && !w->closed && !w->stop)
            pthread_cond_wait(&w->cv, &w->lock);
        if (w->stop) {
            r = -ECANCELED;
            break;
        }
        if (w->qlen == 0)
            break; /* closed, and everything written */
        size_t nb = take_batch(w, batch);
        pthread_mutex_unlock(&w->lock);
        for (size_t i = 0; r == 0 && i < nb; i++) {
            if (batch[i].p)
                r = img_qcow2_stream_write(s, batch[i].off, batch[i].p, batch[i].len);
        }
        if (r == 0)
            r = img_qcow2_stream_flush(s);
        pthread_mutex_lock(&w->lock);
        if (r < 0)
            break;
        drop_batch(w, batch, nb);
    }
    pthread_mutex_unlock(&w->lock);
    return r;
}

static void *writer_thread(void *arg)
{
    OpsVdiWriter *w = arg;
    ImgWriteOptions wo;
    img_write_options_init(&wo);
    ImgProgress ip = {.cancel = &w->cancel};
    ImgError ie = {0};
    /* Not flushed: VDI files have the database's durability (vdi_file_publish). */
    ImgQcow2Stream *s = img_qcow2_stream_new(w->fd, w->size, &wo, &ip, &ie);
    int r = s ? write_queue(w, s) : -(ie.code ? ie.code : EIO);
    if (r == 0)
        r = img_qcow2_stream_finish(s);
    img_qcow2_stream_free(s);
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
    *qat(w, w->qlen) = (Extent){off, len, false, 0, NULL};
    w->qlen++;
    pthread_cond_broadcast(&w->cv);
    return 0;
}

/* Every SPACE_CHECK_BYTES pushed: is there still room in the SR? */
static int space_check(OpsVdiWriter *w, size_t len)
{
    w->since_check += len;
    if (w->since_check < SPACE_CHECK_BYTES)
        return 0;
    w->since_check = 0;
    XsError *e = NULL;
    if (ops_sr_check_space(w->sr_ref, w->dir, SPACE_CHECK_BYTES, &e))
        return 0;
    pthread_mutex_lock(&w->lock);
    xs_error_free(w->err);
    w->err = e;
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    return -ENOSPC;
}

/* Checks a push of len bytes at offset and queues the zeros between the
 * previous push and offset. Returns 0 or -errno, with the lock held either
 * way. */
static int push_begin(OpsVdiWriter *w, uint64_t offset, size_t len)
{
    int r = -EINVAL;
    if (offset >= w->pushed_end && offset <= w->size && len <= w->size - offset)
        r = space_check(w, len);
    pthread_mutex_lock(&w->lock);
    if (r == 0 && offset > w->pushed_end)
        r = push_zero(w, w->pushed_end, offset - w->pushed_end);
    if (r == 0)
        w->pushed_end = offset;
    return r;
}

int ops_vdi_writer_write(OpsVdiWriter *w, uint64_t offset, const void *buf, size_t len)
{
    int r = push_begin(w, offset, len);
    const uint8_t *p = buf;
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
        if (last && last->data && !last->ref && last->off + last->len == offset &&
            last->rpos + last->len == tail) {
            last->len += n;
        } else {
            *qat(w, w->qlen) = (Extent){offset, n, true, tail, NULL};
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

/* Most bytes queued by reference ahead of the writer: the data is still in
 * the CPU's cache when it is written. */
#define REF_AHEAD (8u * 1024 * 1024)

int ops_vdi_writer_write_ref(OpsVdiWriter *w, uint64_t offset, const void *buf, size_t len)
{
    int r = push_begin(w, offset, len);
    while (r == 0 && w->ref_bytes >= REF_AHEAD && !w->done && !w->stop)
        pthread_cond_wait(&w->cv, &w->lock);
    if (r == 0)
        r = wait_slot(w);
    if (r == 0) {
        Extent *last = w->qlen ? qat(w, w->qlen - 1) : NULL;
        if (last && last->data && last->ref && last->off + last->len == offset &&
            last->ref + last->len == (const uint8_t *)buf) {
            last->len += len;
        } else {
            *qat(w, w->qlen) = (Extent){offset, len, true, 0, buf};
            w->qlen++;
        }
        w->ref_bytes += len;
        w->pushed_end = offset + len;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->lock);
    return r;
}

void ops_vdi_writer_stop(OpsVdiWriter *w)
{
    if (!w || !w->thread_started)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
    atomic_store(&w->cancel, true);
    pthread_join(w->thread, NULL);
    w->thread_started = false;
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
    ops_vdi_writer_stop(w);
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
