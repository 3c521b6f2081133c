/*
 * The task watcher of cancel_watch.h: one thread per watched transfer,
 * polling every 200 ms, stopped through a condition variable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "ops/cancel_watch.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define POLL_MS 200

struct OpsCancelWatch {
    OpsCtx *ctx;
    atomic_bool *flag;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool stop;
    bool cancelled;
};

static void *watch_main(void *arg)
{
    OpsCancelWatch *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += POLL_MS * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->lock, &t);
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->lock);
        bool c = ops_cancelled(w->ctx);
        pthread_mutex_lock(&w->lock);
        if (c) {
            w->cancelled = true;
            atomic_store(w->flag, true);
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

OpsCancelWatch *ops_cancel_watch_start(OpsCtx *ctx, atomic_bool *flag)
{
    if (!ctx->task)
        return NULL;
    OpsCancelWatch *w = xnew0(OpsCancelWatch, 1);
    w->ctx = ctx;
    w->flag = flag;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

bool ops_cancel_watch_stop(OpsCancelWatch *w)
{
    if (!w)
        return false;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    bool c = w->cancelled;
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cv);
    free(w);
    return c;
}
