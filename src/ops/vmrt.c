/*
 * The table of running VMs (see vmrt.h): one VmRt per VM, found by ref, kept
 * for the life of the daemon; domain ids; the detached worker threads and
 * their orderly end at shutdown. It holds no database state: power states
 * live in the database, QEMU handles here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/guest_agent.h"
#include "ops/vmrt.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

struct OpsRuntime {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    VmRt **vms;
    size_t n, alloc;
    int64_t next_domid;
    int workers;
    bool stopping;
};

bool vmrt_init(HxEnv *env)
{
    OpsRuntime *t = xnew0(OpsRuntime, 1);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->next_domid = 1;
    env->rt = t;
    return true;
}

void vmrt_shutdown(HxEnv *env)
{
    OpsRuntime *t = env->rt;
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    while (t->workers > 0) {
        if (pthread_cond_timedwait(&t->cond, &t->mu, &ts) == ETIMEDOUT) {
            log_warn("%d VM worker(s) still busy at shutdown", t->workers);
            break;
        }
    }
    bool busy = t->workers > 0;
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < t->n; i++) {
        VmRt *rt = t->vms[i];
        guest_agent_stop(rt, false); /* the VM runs on: its guest metrics stay as they are */
        pthread_mutex_lock(&rt->mu);
        Vmm *h = rt->vmm;
        rt->vmm = NULL;
        pthread_mutex_unlock(&rt->mu);
        if (h)
            vmm_close(h); /* the VM keeps running */
        if (busy)
            continue; /* a worker may still use it: leave the memory to exit */
        pthread_mutex_destroy(&rt->mu);
        pthread_cond_destroy(&rt->cond);
        free(rt->ref);
        free(rt);
    }
    if (busy)
        return;
    free(t->vms);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cond);
    free(t);
    env->rt = NULL;
}

VmRt *vmrt_get(HxEnv *env, const char *vm_ref)
{
    OpsRuntime *t = env->rt;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->vms[i]->ref, vm_ref) == 0) {
            VmRt *rt = t->vms[i];
            pthread_mutex_unlock(&t->mu);
            return rt;
        }
    }
    db_read_lock(env->db);
    DbObj *vm = db_get_class(env->db, XS_CLASS_VM, vm_ref);
    char uuid[VMM_UUID_LEN + 1] = "";
    if (vm)
        snprintf(uuid, sizeof(uuid), "%s", db_str(vm, F_VM_UUID));
    db_read_unlock(env->db);
    if (!vm) {
        pthread_mutex_unlock(&t->mu);
        return NULL;
    }
    VmRt *rt = xnew0(VmRt, 1);
    rt->env = env;
    rt->ref = xstrdup(vm_ref);
    memcpy(rt->uuid, uuid, sizeof(uuid));
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->cond, NULL);
    XGROW(t->vms, t->n + 1, t->alloc);
    t->vms[t->n++] = rt;
    pthread_mutex_unlock(&t->mu);
    return rt;
}

int64_t vmrt_next_domid(HxEnv *env)
{
    OpsRuntime *t = env->rt;
    pthread_mutex_lock(&t->mu);
    int64_t d = t->next_domid++;
    pthread_mutex_unlock(&t->mu);
    return d;
}

void vmrt_note_domid(HxEnv *env, int64_t domid)
{
    OpsRuntime *t = env->rt;
    pthread_mutex_lock(&t->mu);
    if (domid >= t->next_domid)
        t->next_domid = domid + 1;
    pthread_mutex_unlock(&t->mu);
}

typedef struct Spawned {
    HxEnv *env;
    void *(*fn)(void *);
    void *arg;
} Spawned;

static void *spawned_main(void *p)
{
    Spawned s = *(Spawned *)p;
    free(p);
    s.fn(s.arg);
    OpsRuntime *t = s.env->rt;
    pthread_mutex_lock(&t->mu);
    t->workers--;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

void vmrt_spawn(HxEnv *env, void *(*fn)(void *), void *arg)
{
    OpsRuntime *t = env->rt;
    Spawned *s = xnew0(Spawned, 1);
    *s = (Spawned){env, fn, arg};
    pthread_mutex_lock(&t->mu);
    t->workers++;
    pthread_mutex_unlock(&t->mu);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    if (pthread_create(&th, &attr, spawned_main, s) != 0) {
        log_error("cannot start a VM worker thread: %s", strerror(errno));
        free(s);
        pthread_mutex_lock(&t->mu);
        t->workers--;
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_attr_destroy(&attr);
}

bool vmrt_stopping(HxEnv *env)
{
    OpsRuntime *t = env->rt;
    pthread_mutex_lock(&t->mu);
    bool s = t->stopping;
    pthread_mutex_unlock(&t->mu);
    return s;
}

bool vmrt_claim(VmRt *rt, const char *op, XsError **errp)
{
    pthread_mutex_lock(&rt->mu);
    if (rt->owner != VMRT_FREE) {
        char opname[32], token[96];
        snprintf(opname, sizeof(opname), "%s", rt->owner_op);
        snprintf(token, sizeof(token), "%s", rt->owner_token);
        pthread_mutex_unlock(&rt->mu);
        xs_err_other_operation_in_progress(errp, "VM", rt->ref, opname, token);
        return false;
    }
    rt->owner = VMRT_API;
    rt->owner_thread = pthread_self();
    snprintf(rt->owner_op, sizeof(rt->owner_op), "%s", op);
    rt->owner_token[0] = '\0';
    pthread_mutex_unlock(&rt->mu);
    return true;
}

Vmm *vmrt_held_vmm(VmRt *rt)
{
    pthread_mutex_lock(&rt->mu);
    Vmm *h = rt->owner == VMRT_API && pthread_equal(rt->owner_thread, pthread_self()) ? rt->vmm
                                                                                     : NULL;
    pthread_mutex_unlock(&rt->mu);
    return h;
}

void vmrt_claim_auto(VmRt *rt, const char *op)
{
    pthread_mutex_lock(&rt->mu);
    while (rt->owner != VMRT_FREE)
        pthread_cond_wait(&rt->cond, &rt->mu);
    rt->owner = VMRT_AUTO;
    snprintf(rt->owner_op, sizeof(rt->owner_op), "%s", op);
    rt->owner_token[0] = '\0';
    pthread_mutex_unlock(&rt->mu);
}

void vmrt_release(VmRt *rt)
{
    pthread_mutex_lock(&rt->mu);
    bool spawn = rt->pending && !vmrt_stopping(rt->env);
    rt->owner = spawn ? VMRT_AUTO : VMRT_FREE;
    snprintf(rt->owner_op, sizeof(rt->owner_op), "%s", spawn ? "hard_reboot" : "");
    rt->owner_token[0] = '\0';
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->mu);
    if (spawn)
        vmrt_spawn(rt->env, ops_vm_auto_worker, rt);
}

void vmrt_reset_facts(VmRt *rt)
{
    pthread_mutex_lock(&rt->mu);
    rt->guest_off = rt->guest_reset = rt->crashed = rt->exited = rt->expect_exit = false;
    rt->booted = rt->pending = false;
    rt->crash_reason[0] = rt->exit_reason[0] = '\0';
    pthread_mutex_unlock(&rt->mu);
}

void vmrt_ctx(HxEnv *env, OpsCtx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->env = env;
    ctx->db = env->db;
    ctx->role = XS_ROLE_POOL_ADMIN;
    ctx->user = "root";
}
