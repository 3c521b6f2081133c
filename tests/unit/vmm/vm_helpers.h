/*
 * Helpers for the integration tests that boot the test guest under QEMU/TCG
 * (suite "vm"): finding or building the guest, a private run directory, an
 * event recorder with waits, and readers of the guest's serial console
 * (TEST-MARKER / TEST-HEARTBEAT / TEST-HOTPLUG lines). Test code only.
 */
#ifndef HX_TESTS_VM_HELPERS_H
#define HX_TESTS_VM_HELPERS_H

/* not every test uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qemu_process.h"
#include "vmm/vmm.h"
#include "vmm/vmm_util.h"
#include "vmm_test.h"

#define VMT_BOOT_MS 90000 /* generous: two guests may boot at once on two shared cores */

static char vmt_guest[512];
static char vmt_tmp[256];
static char *vmt_run;

/* Finds .cache/guest (building or updating it) and makes a private temp directory. */
static bool vmt_setup(void)
{
    log_set_level(getenv("HX_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
    const char *g = getenv("HX_TEST_GUEST");
    snprintf(vmt_guest, sizeof(vmt_guest), "%s", g ? g : HX_SOURCE_ROOT "/.cache/guest");
    /* The script rebuilds only what changed (the init, the kernel), so an
     * image left by an older tree is brought up to date. */
    char *cmd = xasprintf("'%s/scripts/build-test-guest' '%s' >&2", HX_SOURCE_ROOT, vmt_guest);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0)
        return false;
    snprintf(vmt_tmp, sizeof(vmt_tmp), "/tmp/hxvm-XXXXXX");
    if (!mkdtemp(vmt_tmp))
        return false;
    vmt_run = xasprintf("%s/run", vmt_tmp);
    return true;
}

static void vmt_teardown(void)
{
    if (!getenv("HX_TEST_KEEP"))
        vmm_rm_rf(vmt_tmp);
    free(vmt_run);
}

static char *vmt_path(const char *name)
{
    return xasprintf("%s/%s", vmt_tmp, name);
}

static char *vmt_guest_file(const char *name)
{
    return xasprintf("%s/%s", vmt_guest, name);
}

static int vmt_sh(const char *fmt, ...) HX_PRINTF(1, 2);
static int vmt_sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = xvasprintf(fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0 && getenv("HX_TEST_DEBUG"))
        printf("# command exited with %d: %s\n", rc, cmd);
    free(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* A qcow2 overlay on the guest's disk.qcow2, private to the test. */
static char *vmt_overlay(const char *name)
{
    char *base = vmt_guest_file("disk.qcow2");
    char *path = vmt_path(name);
    vmt_sh("qemu-img create -q -f qcow2 -b '%s' -F qcow2 '%s'", base, path);
    free(base);
    return path;
}

/* A config for a direct kernel boot of the test guest in mode `mode`. */
static void vmt_config(VmmConfig *c, const char *uuid, const char *mode)
{
    vmm_config_init(c);
    snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
    c->name = xasprintf("test-%s", mode);
    c->memory_mib = 128;
    c->kernel = vmt_guest_file("vmlinuz");
    c->initrd = vmt_guest_file("initrd.img");
    c->cmdline = xasprintf("console=ttyS0,115200 quiet panic=-1 test=%s", mode);
    c->boot_marker = xstrdup("TEST-MARKER: READY");
}

/* ---- events ------------------------------------------------------------------- */

typedef struct VmtEvent {
    VmmEventType type;
    bool guest;
    char reason[512];
    char device[64];
    char status[64];
    int exit_code, exit_signal;
    int64_t offset;
} VmtEvent;

typedef struct VmtLog {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    VmtEvent ev[256];
    int n;
} VmtLog;

static void vmt_log_init(VmtLog *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
}

static void vmt_on_event(Vmm *vm, const VmmEvent *ev, void *opaque)
{
    VmtLog *l = opaque;
    if (getenv("HX_TEST_DEBUG"))
        printf("# event %s guest=%d reason=%s status=%s device=%s\n",
               vmm_event_type_to_string(ev->type), ev->guest, ev->reason ? ev->reason : "",
               ev->status ? ev->status : "", ev->device ? ev->device : "");
    pthread_mutex_lock(&l->lock);
    if (l->n < 256) {
        VmtEvent *e = &l->ev[l->n++];
        e->type = ev->type;
        e->guest = ev->guest;
        snprintf(e->reason, sizeof(e->reason), "%s", ev->reason ? ev->reason : "");
        snprintf(e->device, sizeof(e->device), "%s", ev->device ? ev->device : "");
        snprintf(e->status, sizeof(e->status), "%s", ev->status ? ev->status : "");
        e->exit_code = ev->exit_code;
        e->exit_signal = ev->exit_signal;
        e->offset = ev->offset;
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* Waits for an event of type at index >= from; returns its index or -1. */
static int vmt_wait_event(VmtLog *l, VmmEventType type, int from, unsigned timeout_ms)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        for (int i = from; i < l->n; i++) {
            if (l->ev[i].type == type) {
                pthread_mutex_unlock(&l->lock);
                return i;
            }
        }
        int64_t left = deadline - vmm_now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cond, &l->lock, &ts);
    }
    pthread_mutex_unlock(&l->lock);
    return -1;
}

static int vmt_count(VmtLog *l)
{
    pthread_mutex_lock(&l->lock);
    int n = l->n;
    pthread_mutex_unlock(&l->lock);
    return n;
}

/* ---- console ------------------------------------------------------------------ */

static char *vmt_console(const char *run, const char *uuid)
{
    char *out = NULL;
    if (vmm_console_read(run, uuid, 1 << 20, &out, NULL) < 0)
        return xstrdup("");
    return out;
}

static int vmt_count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Waits until the console holds at least `count` occurrences of text. */
static bool vmt_wait_console_n(const char *run, const char *uuid, const char *text, int count,
                               unsigned timeout_ms)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    for (;;) {
        char *c = vmt_console(run, uuid);
        int n = vmt_count_str(c, text);
        free(c);
        if (n >= count)
            return true;
        if (vmm_now_ms() >= deadline) {
            printf("# console of %s never showed '%s' x%d\n", uuid, text, count);
            return false;
        }
        vmm_sleep_ms(100);
    }
}

static bool vmt_wait_console(const char *run, const char *uuid, const char *text,
                             unsigned timeout_ms)
{
    return vmt_wait_console_n(run, uuid, text, 1, timeout_ms);
}

/* The number of the last TEST-HEARTBEAT line, or 0. */
static int vmt_last_heartbeat(const char *run, const char *uuid)
{
    char *c = vmt_console(run, uuid);
    int last = 0;
    for (const char *p = c; (p = strstr(p, "TEST-HEARTBEAT ")); p++)
        last = atoi(p + strlen("TEST-HEARTBEAT "));
    free(c);
    return last;
}

static bool vmt_wait_heartbeat(const char *run, const char *uuid, int above, unsigned timeout_ms)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    while (vmt_last_heartbeat(run, uuid) <= above) {
        if (vmm_now_ms() >= deadline) {
            printf("# no heartbeat above %d on %s\n", above, uuid);
            return false;
        }
        vmm_sleep_ms(100);
    }
    return true;
}

/* The last TEST-HOTPLUG line starting with prefix ("blockdevs=", ...), malloc'd or NULL. */
static char *vmt_last_hotplug(const char *run, const char *uuid, const char *prefix)
{
    char *c = vmt_console(run, uuid);
    char *want = xasprintf("TEST-HOTPLUG: %s", prefix);
    char *last = NULL;
    for (char *p = c; (p = strstr(p, want)); p++) {
        char *end = strchr(p, '\n');
        free(last);
        last = end ? xstrndup(p + strlen("TEST-HOTPLUG: "), (size_t)(end - p) - strlen("TEST-HOTPLUG: "))
                   : xstrdup(p + strlen("TEST-HOTPLUG: "));
        size_t len = strlen(last);
        while (len && (last[len - 1] == '\r' || last[len - 1] == ' '))
            last[--len] = '\0';
    }
    free(want);
    free(c);
    return last;
}

static bool vmt_wait_hotplug(const char *run, const char *uuid, const char *expect,
                             unsigned timeout_ms)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    const char *eq = strchr(expect, '=');
    char *prefix = xstrndup(expect, eq ? (size_t)(eq - expect + 1) : strlen(expect));
    bool ok = false;
    char *last = NULL;
    for (;;) {
        free(last);
        last = vmt_last_hotplug(run, uuid, prefix);
        if (last && strcmp(last, expect) == 0) {
            ok = true;
            break;
        }
        if (vmm_now_ms() >= deadline)
            break;
        vmm_sleep_ms(100);
    }
    if (!ok)
        printf("# guest never reported 'TEST-HOTPLUG: %s' (last: %s)\n", expect,
               last ? last : "none");
    free(last);
    free(prefix);
    return ok;
}

#endif
