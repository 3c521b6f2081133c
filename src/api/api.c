/*
 * The Api object: construction, teardown and the small shared helpers of the
 * API layer.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api-internal.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define MAX_ASYNC 1000

Api *api_new(HxEnv *env)
{
    Api *api = xnew0(Api, 1);
    api->env = env;
    pthread_mutex_init(&api->lock, NULL);
    hashmap_init(&api->sessions);
    hashmap_init(&api->failures);
    api->session_timeout = 24 * 3600;
    return api;
}

void api_free(Api *api)
{
    if (!api)
        return;
    const char *k;
    void *v;
    for (size_t it = 0; hashmap_next(&api->sessions, &it, &k, &v);) {
        Session *s = v;
        free(s->ref);
        free(s->user);
        free(s->originator);
        xv_free(s->subscriptions);
        free(s);
    }
    for (size_t it = 0; hashmap_next(&api->failures, &it, &k, &v);) {
        LoginFailures *f = v;
        free(f->addr);
        free(f);
    }
    hashmap_release(&api->sessions);
    hashmap_release(&api->failures);
    pthread_mutex_destroy(&api->lock);
    free(api);
}

HxEnv *api_env(Api *api)
{
    return api->env;
}

Api *api_from_ctx(OpsCtx *ctx)
{
    return ctx->api;
}

const ApiPeer *api_ctx_peer(OpsCtx *ctx)
{
    return ctx->peer;
}

time_t api_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

bool api_async_begin(Api *api)
{
    pthread_mutex_lock(&api->lock);
    bool ok = api->async_running < MAX_ASYNC;
    if (ok)
        api->async_running++;
    pthread_mutex_unlock(&api->lock);
    return ok;
}

void api_async_done(Api *api)
{
    pthread_mutex_lock(&api->lock);
    api->async_running--;
    pthread_mutex_unlock(&api->lock);
}
