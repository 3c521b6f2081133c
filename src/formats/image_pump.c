/*
 * The source pump of image_int.h: one thread per write that runs the block
 * status scan and reads data chunks ahead into a small ring of buffers, so
 * that the writer's thread only processes and writes. Source callbacks are
 * called from this thread only. Holds no state beyond one write.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "formats/image_int.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define PUMP_BUFS 4
#define PUMP_QUEUE 64

struct ImgPump {
    const ImgSource *src;
    ImgScan scan;
    uint64_t chunk;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint8_t *bufs[PUMP_BUFS];
    bool busy[PUMP_BUFS];
    struct {
        ImgPumpItem it;
        int buf;
    } q[PUMP_QUEUE];
    unsigned qhead, qlen;
    int held; /* buffer the consumer holds, -1 */
    bool done, stop;
    int error;
    ImgError err;
};

/* Waits for queue room (and a free buffer if want_buf); returns the buffer
 * index, or -1 if told to stop. Called with the lock held. */
static int wait_room(ImgPump *p, bool want_buf)
{
    for (;;) {
        if (p->stop)
            return -1;
        if (p->qlen < PUMP_QUEUE) {
            if (!want_buf)
                return 0;
            for (int i = 0; i < PUMP_BUFS; i++)
                if (!p->busy[i])
                    return i;
        }
        pthread_cond_wait(&p->cv, &p->lock);
    }
}

static void push(ImgPump *p, const ImgPumpItem *it, int buf)
{
    unsigned i = (p->qhead + p->qlen) % PUMP_QUEUE;
    p->q[i].it = *it;
    p->q[i].buf = buf;
    p->qlen++;
    pthread_cond_broadcast(&p->cv);
}

static void *pump_thread(void *arg)
{
    ImgPump *p = arg;
    const uint64_t size = p->src->virtual_size;
    ImgError err = {0};
    int ret;
    uint64_t start, count;
    ImgUnitKind kind;
    while ((ret = img_scan_next(&p->scan, &start, &count, &kind, &err)) > 0) {
        uint64_t end = MIN(start + count * p->scan.unit, size);
        if (kind != IMG_UNIT_DATA) {
            ImgPumpItem it = {kind, start, end - start, end - start, NULL};
            pthread_mutex_lock(&p->lock);
            int ok = wait_room(p, false);
            if (ok >= 0)
                push(p, &it, -1);
            pthread_mutex_unlock(&p->lock);
            if (ok < 0)
                return NULL;
            continue;
        }
        for (uint64_t pos = start; pos < end;) {
            uint64_t span = MIN(p->chunk, start + count * p->scan.unit - pos);
            uint64_t len = MIN(span, end - pos);
            pthread_mutex_lock(&p->lock);
            int b = wait_room(p, true);
            if (b >= 0)
                p->busy[b] = true;
            pthread_mutex_unlock(&p->lock);
            if (b < 0)
                return NULL;
            ret = p->src->read(p->src->opaque, pos, (size_t)len, p->bufs[b], &err);
            if (ret < 0)
                goto fail;
            if (span > len)
                memset(p->bufs[b] + len, 0, (size_t)(span - len));
            ImgPumpItem it = {IMG_UNIT_DATA, pos, len, span, p->bufs[b]};
            pthread_mutex_lock(&p->lock);
            push(p, &it, b);
            pthread_mutex_unlock(&p->lock);
            pos += span;
        }
    }
    if (ret == 0) {
        pthread_mutex_lock(&p->lock);
        p->done = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->lock);
        return NULL;
    }
fail:
    pthread_mutex_lock(&p->lock);
    p->error = ret;
    p->err = err;
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

ImgPump *img_pump_start(const ImgSource *src, uint64_t unit, bool keep_unalloc, uint64_t chunk,
                        ImgError *err)
{
    ImgPump *p = xnew0(ImgPump, 1);
    p->src = src;
    p->chunk = MAX(unit, chunk / unit * unit);
    p->held = -1;
    img_scan_init(&p->scan, src, unit, keep_unalloc);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < PUMP_BUFS; i++)
        p->bufs[i] = xmalloc((size_t)p->chunk);
    if (pthread_create(&p->thread, NULL, pump_thread, p) != 0) {
        for (int i = 0; i < PUMP_BUFS; i++)
            free(p->bufs[i]);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cv);
        free(p);
        img_error_set(err, EAGAIN, "cannot start a reader thread");
        return NULL;
    }
    return p;
}

int img_pump_next(ImgPump *p, ImgPumpItem *it, ImgError *err)
{
    pthread_mutex_lock(&p->lock);
    if (p->held >= 0) {
        p->busy[p->held] = false;
        p->held = -1;
        pthread_cond_broadcast(&p->cv);
    }
    while (p->qlen == 0 && !p->done)
        pthread_cond_wait(&p->cv, &p->lock);
    int ret;
    if (p->qlen) {
        *it = p->q[p->qhead].it;
        p->held = p->q[p->qhead].buf;
        p->qhead = (p->qhead + 1) % PUMP_QUEUE;
        p->qlen--;
        pthread_cond_broadcast(&p->cv);
        ret = 1;
    } else if (p->error) {
        if (err)
            *err = p->err;
        ret = p->error;
    } else {
        ret = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return ret;
}

void img_pump_free(ImgPump *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < PUMP_BUFS; i++)
        free(p->bufs[i]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cv);
    free(p);
}
