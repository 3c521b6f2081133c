/*
 * The per-VM watcher thread: delivers queued events to the caller's callback
 * in order, runs the backend's internal notifications, and calls the
 * backend's tick every VMM_TICK_MS for health checks. Producers (the QMP
 * reader, backend code on any thread) only append to the queue, so they
 * never wait for the callback. Must not know about QEMU.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "util/log.h"
#include "util/xalloc.h"
#include "vmm/vmm_internal.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

struct VmmEventItem {
    int internal; /* 0: ev is for the caller */
    VmmEvent ev;  /* strings below are owned copies */
    char *name, *reason, *device, *status, *error;
    struct VmmEventItem *next;
};

static void vmm_event_item_free(VmmEventItem *it)
{
    free(it->name);
    free(it->reason);
    free(it->device);
    free(it->status);
    free(it->error);
    json_object_put(it->ev.data);
    free(it);
}

static void vmm_event_item_free(VmmEventItem *it);

static void vmm_event_enqueue(Vmm *vm, VmmEventItem *it)
{
    pthread_mutex_lock(&vm->lock);
    /* a flood must not exhaust memory; what says QEMU is gone is always kept */
    if (vm->q_len >= VMM_EVENT_QUEUE_MAX && !it->internal && it->ev.type != VMM_EVENT_EXITED) {
        if (vm->q_dropped++ % 1000 == 0)
            log_warn("VM %s: the event callback is too slow; dropping %s (and later ones)",
                     vm->uuid, vmm_event_type_to_string(it->ev.type));
        pthread_mutex_unlock(&vm->lock);
        vmm_event_item_free(it);
        return;
    }
    vm->q_len++;
    if (vm->q_tail)
        vm->q_tail->next = it;
    else
        vm->q_head = it;
    vm->q_tail = it;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

void vmm_event_post(Vmm *vm, const VmmEvent *ev)
{
    VmmEventItem *it = xnew0(VmmEventItem, 1);
    it->ev = *ev;
    it->ev.name = it->name = xstrdup_or_null(ev->name);
    it->ev.reason = it->reason = xstrdup_or_null(ev->reason);
    it->ev.device = it->device = xstrdup_or_null(ev->device);
    it->ev.status = it->status = xstrdup_or_null(ev->status);
    it->ev.error = it->error = xstrdup_or_null(ev->error);
    it->ev.data = ev->data ? json_object_get(ev->data) : NULL;
    if (!it->ev.time_us)
        it->ev.time_us = vmm_wall_us();
    vmm_event_enqueue(vm, it);
}

void vmm_event_post_internal(Vmm *vm, int code)
{
    VmmEventItem *it = xnew0(VmmEventItem, 1);
    it->internal = code;
    vmm_event_enqueue(vm, it);
}

void vmm_event_emit(Vmm *vm, VmmEventType type, const char *reason, const char *status)
{
    VmmEvent ev = {.type = type, .name = vmm_event_type_to_string(type), .reason = reason,
                   .status = status, .exit_code = -1};
    vmm_event_post(vm, &ev);
}

static void vmm_event_free_vm(Vmm *vm);

static void *vmm_event_main(void *arg)
{
    Vmm *vm = arg;
    int64_t next_tick = vmm_now_ms() + VMM_TICK_MS;
    pthread_mutex_lock(&vm->lock);
    while (!vm->stopping && !vm->close_deferred) {
        VmmEventItem *it = vm->q_head;
        if (it) {
            vm->q_head = it->next;
            if (!vm->q_head)
                vm->q_tail = NULL;
            vm->q_len--;
            pthread_mutex_unlock(&vm->lock);
            if (it->internal) {
                if (vm->ops->internal)
                    vm->ops->internal(vm, it->internal);
            } else {
                log_debug("VM %s: event %s", vm->uuid, vmm_event_type_to_string(it->ev.type));
                if (vm->cb)
                    vm->cb(vm, &it->ev, vm->cb_opaque);
            }
            vmm_event_item_free(it);
            pthread_mutex_lock(&vm->lock);
            continue;
        }
        int64_t now = vmm_now_ms();
        if (now >= next_tick) {
            next_tick = now + VMM_TICK_MS;
            pthread_mutex_unlock(&vm->lock);
            if (vm->ops->tick)
                vm->ops->tick(vm);
            pthread_mutex_lock(&vm->lock);
            continue;
        }
        vmm_cond_wait_until(vm, next_tick);
    }
    bool deferred = vm->close_deferred && !vm->stopping;
    pthread_mutex_unlock(&vm->lock);
    if (deferred) {
        /* vmm_close() was called from a callback: finish it here */
        pthread_detach(pthread_self());
        vm->have_watcher = false;
        vmm_event_free_vm(vm);
    }
    return NULL;
}

void vmm_event_start(Vmm *vm)
{
    int r = pthread_create(&vm->watcher, NULL, vmm_event_main, vm);
    if (r != 0) {
        log_error("VM %s: cannot start the watcher thread: %s", vm->uuid, strerror(r));
        abort();
    }
    vm->have_watcher = true;
}

bool vmm_event_on_watcher(Vmm *vm)
{
    return vm->have_watcher && pthread_equal(pthread_self(), vm->watcher);
}

void vmm_event_stop(Vmm *vm)
{
    if (!vm->have_watcher)
        return;
    pthread_mutex_lock(&vm->lock);
    vm->stopping = true;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    pthread_join(vm->watcher, NULL);
    vm->have_watcher = false;
}

void vmm_event_drain(Vmm *vm)
{
    pthread_mutex_lock(&vm->lock);
    VmmEventItem *it = vm->q_head;
    vm->q_head = vm->q_tail = NULL;
    vm->q_len = 0;
    pthread_mutex_unlock(&vm->lock);
    while (it) {
        VmmEventItem *next = it->next;
        vmm_event_item_free(it);
        it = next;
    }
}

static void vmm_event_free_vm(Vmm *vm)
{
    if (vm->ops->shutdown)
        vm->ops->shutdown(vm);
    vmm_event_drain(vm);
    vmm_free_handle(vm);
}
