/*
 * The QEMU backend: one qemu-system-x86_64 process per VM, started by
 * qemu_process.c from the argv of qemu_argv.c and driven over QMP (qmp.c,
 * qmp_cmd.c). Also watches the VM: run state (internal-error is reported as
 * STUCK, never waited on), boot progress (console marker or an OS-only
 * virtio driver reaching DRIVER_OK), and the process itself (EXITED with how
 * it ended).
 *
 * Threads: QMP events arrive on the monitor's reader thread
 * (qemu_vm_on_event), which only records state and queues; the watcher
 * thread runs qemu_vm_tick/qemu_vm_internal; operations run on the caller's
 * thread. Shared fields are under vm->lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qemu_argv.h"
#include "vmm/qemu_process.h"
#include "vmm/qmp.h"
#include "vmm/qmp_cmd.h"
#include "vmm/vmm_internal.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

#define QEMU_STATUS_POLL_MS 5000
#define QEMU_VIRTIO_POLL_MS 1000
#define QEMU_LOG_TAIL 2048
#define QEMU_MAX_WATCH 16

typedef struct QemuVm {
    QmpMonitor *mon;
    pid_t reaper;
    /* under vm->lock */
    bool gone_handled;
    bool lost_reported;
    char *watch_ids[QEMU_MAX_WATCH];
    bool watch_done[QEMU_MAX_WATCH];
    char mig_status[32];
    bool reset_seen;
    bool status_poll_due;
    /* watcher thread only */
    bool booted;
    int64_t running_ms;
    int64_t last_tick_ms;
    int64_t last_status_poll_ms;
    int64_t last_virtio_ms;
    off_t console_off;
    char carry[256];
    size_t carry_len;
    bool stuck_error;
    bool stuck_boot;
} QemuVm;

static QemuVm *qvm(Vmm *vm)
{
    return vm->priv;
}

/* ---- helpers -------------------------------------------------------------- */

/* The monitor if QEMU is still there, else NULL with -ESRCH in *rc. */
static QmpMonitor *qemu_vm_mon(Vmm *vm, int *rc, char **err)
{
    QemuVm *q = qvm(vm);
    if (!q || !q->mon || !qmp_is_connected(q->mon)) {
        *rc = vmm_error(err, -ESRCH, "VM %s is not running (its QEMU process is gone)",
                        vm->uuid);
        return NULL;
    }
    return q->mon;
}

/* After a failed command: a vanished QEMU becomes -ESRCH. */
static int qemu_vm_fail(Vmm *vm, int r, char **err)
{
    QemuVm *q = qvm(vm);
    if ((r == -ECONNRESET || r == -EPIPE) && (!q->mon || !qmp_is_connected(q->mon)))
        return vmm_error(err, -ESRCH, "VM %s: QEMU went away during the operation", vm->uuid);
    return r;
}

static int qemu_vm_run(Vmm *vm, const char *cmd, struct json_object *args, unsigned timeout_ms,
                       char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon) {
        json_object_put(args);
        return r;
    }
    r = qmp_cmd_run_take(mon, cmd, args, timeout_ms, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

static struct json_object *qemu_args1(const char *k, const char *v)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, k, json_object_new_string(v));
    return a;
}

static int qemu_copy_file(const char *src, const char *dst)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return -errno;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -errno;
            off += w;
        }
    }
}

static const char *qemu_ovmf_code(const char **vars)
{
    static const char *const code[] = {"/usr/share/OVMF/OVMF_CODE_4M.fd",
                                       "/usr/share/OVMF/OVMF_CODE.fd"};
    static const char *const tmpl[] = {"/usr/share/OVMF/OVMF_VARS_4M.fd",
                                       "/usr/share/OVMF/OVMF_VARS.fd"};
    for (size_t i = 0; i < ARRAY_SIZE(code); i++) {
        if (vmm_file_exists(code[i]) && vmm_file_exists(tmpl[i])) {
            if (vars)
                *vars = tmpl[i];
            return code[i];
        }
    }
    return NULL;
}

static void qemu_rotate(const char *dir, const char *name, off_t limit)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    _cleanup_free_ char *old = xasprintf("%s/%s.old", dir, name);
    struct stat st;
    if (stat(p, &st) == 0 && st.st_size > limit)
        rename(p, old);
}

/* ---- device-removal watch ---------------------------------------------------- */

static int qemu_watch_add(Vmm *vm, const char *id)
{
    QemuVm *q = qvm(vm);
    pthread_mutex_lock(&vm->lock);
    int slot = -1;
    for (int i = 0; i < QEMU_MAX_WATCH; i++) {
        if (!q->watch_ids[i]) {
            slot = i;
            q->watch_ids[i] = xstrdup(id);
            q->watch_done[i] = false;
            break;
        }
    }
    pthread_mutex_unlock(&vm->lock);
    return slot;
}

static void qemu_watch_remove(Vmm *vm, int slot)
{
    QemuVm *q = qvm(vm);
    pthread_mutex_lock(&vm->lock);
    free(q->watch_ids[slot]);
    q->watch_ids[slot] = NULL;
    pthread_mutex_unlock(&vm->lock);
}

/* Waits until DEVICE_DELETED arrived for the watch in slot; frees the slot. */
static bool qemu_watch_wait(Vmm *vm, int slot, unsigned timeout_ms)
{
    QemuVm *q = qvm(vm);
    int64_t deadline = vmm_now_ms() + timeout_ms;
    pthread_mutex_lock(&vm->lock);
    while (!q->watch_done[slot] && !vm->exited && vmm_now_ms() < deadline)
        vmm_cond_wait_until(vm, deadline);
    bool done = q->watch_done[slot];
    free(q->watch_ids[slot]);
    q->watch_ids[slot] = NULL;
    pthread_mutex_unlock(&vm->lock);
    return done;
}

/* device_del, then wait for the guest to let go. */
static int qemu_device_unplug(Vmm *vm, const char *id, unsigned timeout_ms, char **err)
{
    int slot = qemu_watch_add(vm, id);
    if (slot < 0)
        return vmm_error(err, -EBUSY, "VM %s: too many unplugs in progress", vm->uuid);
    int r = qemu_vm_run(vm, "device_del", qemu_args1("id", id), 0, err);
    if (r < 0) {
        qemu_watch_remove(vm, slot);
        return r;
    }
    if (!qemu_watch_wait(vm, slot, timeout_ms))
        return vmm_error(err, -ETIMEDOUT, "VM %s: the guest did not release %s within %u ms "
                         "(it may still do so later)", vm->uuid, id, timeout_ms);
    return 0;
}

/* ---- events from the monitor (reader thread) -------------------------------- */

static void qemu_vm_on_event(void *opaque, const char *name, struct json_object *data,
                             int64_t time_us)
{
    Vmm *vm = opaque;
    QemuVm *q = qvm(vm);
    VmmEvent ev;
    if (!qmp_cmd_parse_event(name, data, time_us, &ev))
        return;
    pthread_mutex_lock(&vm->lock);
    switch (ev.type) {
    case VMM_EVENT_STOP:
        if (vm->state == VMM_RUN_STATE_RUNNING)
            vm->state = VMM_RUN_STATE_PAUSED; /* refined by the next status poll */
        q->status_poll_due = true;
        break;
    case VMM_EVENT_RESUME:
        vm->state = VMM_RUN_STATE_RUNNING;
        break;
    case VMM_EVENT_SHUTDOWN:
        vm->state = VMM_RUN_STATE_SHUTDOWN;
        q->status_poll_due = true;
        break;
    case VMM_EVENT_GUEST_PANICKED:
        vm->state = VMM_RUN_STATE_GUEST_PANICKED;
        break;
    case VMM_EVENT_RESET:
        q->reset_seen = true;
        break;
    case VMM_EVENT_DEVICE_DELETED:
        for (int i = 0; ev.device && i < QEMU_MAX_WATCH; i++)
            if (q->watch_ids[i] && STREQ(q->watch_ids[i], ev.device))
                q->watch_done[i] = true;
        break;
    case VMM_EVENT_MIGRATION:
        snprintf(q->mig_status, sizeof(q->mig_status), "%s", ev.status ? ev.status : "");
        break;
    default:
        break;
    }
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    vmm_event_post(vm, &ev);
}

static void qemu_vm_on_closed(void *opaque, int err)
{
    Vmm *vm = opaque;
    log_debug("VM %s: QMP connection closed (%d)", vm->uuid, err);
    vmm_event_post_internal(vm, VMM_INTERNAL_MONITOR_CLOSED);
    pthread_mutex_lock(&vm->lock);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

/* ---- the end of a QEMU process -------------------------------------------- */

/*
 * If QEMU is gone (waiting up to wait_ms), records how it ended, cleans its
 * sockets and pidfile, and posts EXITED, all once. Any thread.
 */
static bool qemu_vm_handle_gone(Vmm *vm, unsigned wait_ms)
{
    QemuVm *q = qvm(vm);
    pthread_mutex_lock(&vm->lock);
    bool done = q->gone_handled;
    pthread_mutex_unlock(&vm->lock);
    if (done)
        return true;
    if (vm->pid > 0 && qemu_process_wait_gone(vm->pid, wait_ms) < 0)
        return false;
    pthread_mutex_lock(&vm->lock);
    done = q->gone_handled;
    q->gone_handled = true;
    pthread_mutex_unlock(&vm->lock);
    if (done)
        return true;

    int code = -1, sig = 0;
    bool known = qemu_process_exit_status(vm->dir, 2000, &code, &sig) == 0;
    qemu_process_cleanup(vm->dir);
    qemu_process_reap(q->reaper);
    _cleanup_free_ char *tail = NULL;
    _cleanup_strbuf_ StrBuf why = STRBUF_INIT;
    if (!known) {
        strbuf_adds(&why, "QEMU is gone; how it ended is unknown");
    } else if (sig) {
        strbuf_addf(&why, "QEMU was killed by signal %d (%s)", sig, strsignal(sig));
    } else {
        strbuf_addf(&why, "QEMU exited with status %d", code);
    }
    if (!known || sig || code != 0) {
        tail = qemu_process_log_tail(vm->dir, 512);
        if (tail)
            strbuf_addf(&why, "; its last words: %s", tail);
    }
    log_info("VM %s: %s", vm->uuid, why.buf);
    vmm_mark_exited(vm, code, sig);
    VmmEvent ev = {.type = VMM_EVENT_EXITED, .name = "EXITED", .reason = why.buf,
                   .exit_code = code, .exit_signal = sig};
    vmm_event_post(vm, &ev);
    return true;
}

static void qemu_vm_internal(Vmm *vm, int code)
{
    QemuVm *q = qvm(vm);
    if (code == VMM_INTERNAL_MONITOR_CLOSED) {
        if (q->mon && qmp_is_connected(q->mon))
            return;
        if (!qemu_vm_handle_gone(vm, 5000)) {
            pthread_mutex_lock(&vm->lock);
            bool first = !q->lost_reported;
            q->lost_reported = true;
            pthread_mutex_unlock(&vm->lock);
            if (first) {
                _cleanup_free_ char *why = xasprintf(
                    "lost the QMP connection while QEMU (pid %d) still runs; destroy the VM",
                    (int)vm->pid);
                vmm_event_emit(vm, VMM_EVENT_STUCK, why, "unknown");
            }
        }
    } else if (code == VMM_INTERNAL_STATUS_CHANGED) {
        pthread_mutex_lock(&vm->lock);
        q->status_poll_due = true;
        pthread_mutex_unlock(&vm->lock);
    }
}

/* ---- watcher tick: run state and boot progress ----------------------------- */

static void qemu_vm_poll_status(Vmm *vm)
{
    QemuVm *q = qvm(vm);
    VmmRunState st;
    if (qmp_cmd_query_status(q->mon, &st, NULL) < 0)
        return;
    vmm_set_state(vm, st);
    if (st == VMM_RUN_STATE_INTERNAL_ERROR) {
        if (!q->stuck_error) {
            q->stuck_error = true;
            _cleanup_free_ char *why = xasprintf(
                "QEMU stopped the guest with an internal error (%s accelerator); the process "
                "is alive but the guest will not run again: destroy it%s",
                vmm_accel_to_string(vm->cfg.accel),
                vm->cfg.accel == VMM_ACCEL_KVM ? " and use --accel tcg on this host" : "");
            log_warn("VM %s: %s", vm->uuid, why);
            vmm_event_emit(vm, VMM_EVENT_STUCK, why, vmm_run_state_to_string(st));
        }
    } else {
        q->stuck_error = false;
    }
}

/* Looks for the boot marker in what the console got since the last look. */
static bool qemu_vm_console_marker(Vmm *vm, const char *marker)
{
    QemuVm *q = qvm(vm);
    _cleanup_free_ char *path = xasprintf("%s/console.log", vm->dir);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    if (st.st_size < q->console_off) {
        q->console_off = 0;
        q->carry_len = 0;
    }
    size_t mlen = strlen(marker);
    char buf[65536 + sizeof(q->carry)];
    memcpy(buf, q->carry, q->carry_len);
    ssize_t n = pread(fd, buf + q->carry_len, 65536, q->console_off);
    if (n <= 0)
        return false;
    q->console_off += n;
    size_t len = q->carry_len + (size_t)n;
    bool found = memmem(buf, len, marker, mlen) != NULL;
    size_t keep = MIN(len, MIN(mlen - 1, sizeof(q->carry)));
    memcpy(q->carry, buf + len - keep, keep);
    q->carry_len = keep;
    return found;
}

static void qemu_vm_tick(Vmm *vm)
{
    QemuVm *q = qvm(vm);
    pthread_mutex_lock(&vm->lock);
    bool gone = q->gone_handled;
    bool reset = q->reset_seen;
    q->reset_seen = false;
    bool poll_due = q->status_poll_due;
    q->status_poll_due = false;
    VmmRunState state = vm->state;
    pthread_mutex_unlock(&vm->lock);
    if (gone || !q->mon)
        return;
    if (!qmp_is_connected(q->mon)) {
        if (!qemu_process_alive(vm->pid))
            qemu_vm_handle_gone(vm, 0);
        return;
    }
    int64_t now = vmm_now_ms();
    if (state == VMM_RUN_STATE_RUNNING && q->last_tick_ms)
        q->running_ms += now - q->last_tick_ms;
    q->last_tick_ms = now;
    if (reset) {
        q->booted = false;
        q->stuck_boot = false;
        q->running_ms = 0;
        q->carry_len = 0;
        struct stat st;
        _cleanup_free_ char *path = xasprintf("%s/console.log", vm->dir);
        q->console_off = stat(path, &st) == 0 ? st.st_size : 0;
    }
    if (poll_due || now - q->last_status_poll_ms >= QEMU_STATUS_POLL_MS) {
        q->last_status_poll_ms = now;
        qemu_vm_poll_status(vm);
    }
    if (q->booted)
        return;
    const VmmConfig *cfg = &vm->cfg; /* only hot-plug changes it, not these fields */
    bool booted = false;
    if (cfg->boot_marker && qemu_vm_console_marker(vm, cfg->boot_marker))
        booted = true;
    if (!booted && (cfg->balloon || cfg->qga) && now - q->last_virtio_ms >= QEMU_VIRTIO_POLL_MS) {
        q->last_virtio_ms = now;
        bool ok = false;
        if (cfg->balloon)
            qmp_cmd_virtio_driver_ok(q->mon, "/machine/peripheral/balloon0/virtio-backend", &ok,
                                     NULL);
        if (!ok && cfg->qga)
            qmp_cmd_virtio_driver_ok(q->mon, "/machine/peripheral/vser0/virtio-backend", &ok,
                                     NULL);
        booted = ok;
    }
    if (booted) {
        q->booted = true;
        log_info("VM %s: the guest OS is up (after %lld ms of running)", vm->uuid,
                 (long long)q->running_ms);
        vmm_event_emit(vm, VMM_EVENT_BOOTED, NULL, NULL);
        return;
    }
    if (cfg->boot_timeout_s && !q->stuck_boot &&
        q->running_ms > (int64_t)cfg->boot_timeout_s * 1000) {
        q->stuck_boot = true;
        _cleanup_free_ char *why = xasprintf(
            "the guest showed no sign of an OS within %u s of running (still in the firmware or "
            "boot loader?)", cfg->boot_timeout_s);
        log_warn("VM %s: %s", vm->uuid, why);
        vmm_event_emit(vm, VMM_EVENT_STUCK, why, vmm_run_state_to_string(state));
    }
}

/* ---- start, attach, close ------------------------------------------------ */

static QmpCallbacks qemu_vm_callbacks(Vmm *vm)
{
    QmpCallbacks cb = {.event = qemu_vm_on_event, .closed = qemu_vm_on_closed, .opaque = vm};
    return cb;
}

static int qemu_wait_migration(Vmm *vm, QmpMonitor *mon, int64_t deadline,
                               VmmProgressFn progress, void *opaque, QmpMigrateInfo *out,
                               char **err)
{
    unsigned sleep_ms = 20;
    for (;;) {
        QmpMigrateInfo mi;
        int r = qmp_cmd_query_migrate(mon, &mi, err);
        if (r < 0)
            return qemu_vm_fail(vm, r, err);
        if (progress && mi.total)
            progress(mi.transferred, mi.total, opaque);
        if (STREQ(mi.status, "completed") || STREQ(mi.status, "failed") ||
            STREQ(mi.status, "cancelled")) {
            *out = mi;
            return 0;
        }
        qmp_cmd_migrate_info_release(&mi);
        if (vmm_now_ms() >= deadline)
            return vmm_error(err, -ETIMEDOUT, "VM %s: migration did not finish in time",
                             vm->uuid);
        vmm_sleep_ms(sleep_ms);
        sleep_ms = MIN(sleep_ms * 2, 200);
    }
}

static int qemu_incoming_file(Vmm *vm, QmpMonitor *mon, const char *path, char **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vmm_error(err, -errno, "cannot open suspend image %s: %s", path,
                         strerror(errno));
    int r = qmp_cmd_migrate_set_capability(mon, "events", true, err);
    if (r < 0)
        return r;
    struct json_object *a = qemu_args1("fdname", "hx-incoming");
    r = qmp_execute_fd(mon, "getfd", a, fd, 10000, NULL, err);
    json_object_put(a);
    if (r < 0)
        return r;
    r = qmp_cmd_run_take(mon, "migrate-incoming", qemu_args1("uri", "fd:hx-incoming"), 0, err);
    if (r < 0)
        return r;
    QmpMigrateInfo mi;
    r = qemu_wait_migration(vm, mon, vmm_now_ms() + 30 * 60 * 1000, NULL, NULL, &mi, err);
    if (r < 0)
        return r;
    if (!STREQ(mi.status, "completed"))
        r = vmm_error(err, -EIO, "loading the suspend image %s failed: %s", path,
                      mi.error ? mi.error : mi.status);
    qmp_cmd_migrate_info_release(&mi);
    return r;
}

static void qemu_kill_now(Vmm *vm)
{
    if (vm->pid <= 0)
        return;
    qemu_process_kill(vm->pid, vm->uuid, SIGKILL);
    qemu_process_wait_gone(vm->pid, 5000);
    qemu_process_reap(qvm(vm)->reaper);
    qemu_process_cleanup(vm->dir);
}

static int qemu_vm_start(Vmm *vm, char **err)
{
    VmmConfig *cfg = &vm->cfg;
    QemuVm *q = xnew0(QemuVm, 1);
    vm->priv = q;
    pid_t old;
    if (qemu_process_read_pidfile(vm->dir, &old) == 0 && qemu_process_matches(old, vm->uuid))
        return vmm_error(err, -EEXIST, "VM %s is already running (QEMU pid %d)", vm->uuid,
                         (int)old);
    int r = vmm_preflight(cfg, err);
    if (r < 0)
        return r;
    const char *vars_tmpl = NULL;
    const char *ovmf = qemu_ovmf_code(&vars_tmpl);
    if (cfg->firmware == VMM_FIRMWARE_UEFI) {
        if (!ovmf)
            return vmm_error(err, -ENOENT, "VM %s needs UEFI but OVMF is not installed (install "
                             "the ovmf package)", vm->uuid);
        if (!vmm_file_exists(cfg->nvram_path)) {
            r = qemu_copy_file(vars_tmpl, cfg->nvram_path);
            if (r < 0)
                return vmm_error(err, r, "cannot create the NVRAM file %s of VM %s: %s",
                                 cfg->nvram_path, vm->uuid, strerror(-r));
        }
    }
    qemu_process_cleanup(vm->dir);
    if (cfg->incoming != VMM_INCOMING_FILE)
        qemu_rotate(vm->dir, "console.log", 0);
    qemu_rotate(vm->dir, "qemu.log", 1024 * 1024);

    _cleanup_free_ char *sock = xasprintf("%s/qmp.sock", vm->dir);
    _cleanup_close_ int lfd = vmm_unix_listen(sock);
    if (lfd < 0)
        return vmm_error(err, lfd, "cannot create the QMP socket %s: %s", sock, strerror(-lfd));
    QemuArgvEnv env = {.qemu_binary = vmm_get_qemu_binary(), .vm_dir = vm->dir, .qmp_fd = 3,
                       .now = time(NULL), .ovmf_code = ovmf};
    _cleanup_strv_ char **argv = qemu_argv_build(cfg, &env, err);
    if (!argv)
        return -EINVAL;
    _cleanup_free_ char *line = qemu_argv_to_string(argv);
    log_info("VM %s: starting %s", vm->uuid, line);
    _cleanup_free_ char *argv_path = xasprintf("%s/qemu.argv", vm->dir);
    vmm_write_file_atomic(argv_path, line, strlen(line), 0600);
    for (size_t i = 0; i < cfg->n_nics; i++)
        if (cfg->nics[i].backend == VMM_NET_USER)
            log_info("VM %s: NIC %u uses QEMU user-mode networking: %s", vm->uuid,
                     cfg->nics[i].position,
                     cfg->nics[i].user_reason ? cfg->nics[i].user_reason : "no reason given");
    if (cfg->boot_timeout_s && !cfg->boot_marker && !cfg->balloon && !cfg->qga)
        log_warn("VM %s: a boot timeout without boot marker, balloon or agent channel cannot "
                 "see the guest boot; only internal errors will be detected", vm->uuid);

    /* connect first: the connection waits in the backlog until QEMU takes the socket over */
    int cfd = vmm_unix_connect(sock);
    if (cfd < 0)
        return vmm_error(err, cfd, "cannot connect to %s: %s", sock, strerror(-cfd));
    r = qemu_process_spawn(argv, vm->dir, lfd, &vm->pid, &q->reaper, err);
    close(steal_fd(&lfd));
    if (r < 0) {
        close(cfd);
        qemu_process_cleanup(vm->dir);
        return r;
    }
    QmpCallbacks cb = qemu_vm_callbacks(vm);
    r = qmp_open(cfd, &cb, vmm_get_start_timeout(), &q->mon, err);
    if (r < 0) {
        bool gone = qemu_process_wait_gone(vm->pid, 3000) == 0;
        if (!gone)
            qemu_kill_now(vm);
        int code = -1, sig = 0;
        qemu_process_exit_status(vm->dir, gone ? 2000 : 0, &code, &sig);
        qemu_process_reap(q->reaper);
        qemu_process_cleanup(vm->dir);
        _cleanup_free_ char *tail = qemu_process_log_tail(vm->dir, QEMU_LOG_TAIL);
        if (gone)
            return vmm_error(err, -EIO, "QEMU for VM %s exited during startup (%s %d): %s",
                             vm->uuid, sig ? "signal" : "status", sig ? sig : code,
                             tail ? tail : "no message");
        vmm_error_prefix(err, "QEMU for VM %s did not come up and was killed", vm->uuid);
        return r == -ETIMEDOUT ? -ETIMEDOUT : r;
    }
    if (cfg->incoming == VMM_INCOMING_FILE) {
        r = qemu_incoming_file(vm, q->mon, cfg->incoming_path, err);
        if (r < 0)
            vmm_error_prefix(err, "cannot resume VM %s from the suspend image %s", vm->uuid,
                             cfg->incoming_path);
        /* the image was taken from a paused guest, so QEMU restores it paused */
        if (r == 0 && !cfg->start_paused)
            r = qmp_cmd_run(q->mon, "cont", NULL, 0, err);
    } else if (cfg->incoming == VMM_INCOMING_URI) {
        r = qmp_cmd_migrate_set_capability(q->mon, "events", true, err);
        if (r == 0)
            r = qmp_cmd_run_take(q->mon, "migrate-incoming",
                                 qemu_args1("uri", cfg->incoming_uri), 0, err);
    }
    if (r == 0 && cfg->balloon && cfg->memory_target_mib &&
        cfg->memory_target_mib < cfg->memory_mib)
        r = qmp_cmd_balloon(q->mon, cfg->memory_target_mib * MiB, err);
    VmmRunState st = VMM_RUN_STATE_UNKNOWN;
    if (r == 0)
        r = qmp_cmd_query_status(q->mon, &st, err);
    if (r < 0) {
        qmp_close(q->mon);
        q->mon = NULL;
        qemu_process_wait_gone(vm->pid, 1000);
        qemu_kill_now(vm);
        _cleanup_free_ char *tail = qemu_process_log_tail(vm->dir, 512);
        if (tail && err && *err) {
            char *m = xasprintf("%s; QEMU said: %s", *err, tail);
            free(*err);
            *err = m;
        }
        return r == -ECONNRESET || r == -ESRCH ? -EIO : r;
    }
    vmm_set_state(vm, st);
    log_info("VM %s: QEMU pid %d is up, state %s", vm->uuid, (int)vm->pid,
             vmm_run_state_to_string(st));
    return 0;
}

static int qemu_vm_attach(Vmm *vm, char **err)
{
    QemuVm *q = xnew0(QemuVm, 1);
    vm->priv = q;
    pid_t pid;
    if (qemu_process_read_pidfile(vm->dir, &pid) < 0 || !qemu_process_matches(pid, vm->uuid)) {
        qemu_process_cleanup(vm->dir);
        return vmm_error(err, -ESRCH, "VM %s is not running (no live QEMU for it under %s)",
                         vm->uuid, vm->dir);
    }
    vm->pid = pid;
    _cleanup_free_ char *cfg_path = xasprintf("%s/config.json", vm->dir);
    _cleanup_free_ char *buf = NULL;
    ssize_t n = vmm_read_file(cfg_path, 4 * 1024 * 1024, false, &buf);
    const char *why = NULL;
    struct json_object *j = n > 0 ? vmm_json_parse(buf, (size_t)n, 64, &why) : NULL;
    char *cerr = NULL;
    if (!j || vmm_config_from_json(j, &vm->cfg, &cerr) < 0) {
        log_warn("VM %s: cannot read %s (%s); carrying on with defaults", vm->uuid, cfg_path,
                 cerr ? cerr : why ? why : strerror((int)-n));
        vmm_config_release(&vm->cfg);
        vmm_config_init(&vm->cfg);
        snprintf(vm->cfg.uuid, sizeof(vm->cfg.uuid), "%s", vm->uuid);
    }
    free(cerr);
    json_object_put(j);
    _cleanup_free_ char *sock = xasprintf("%s/qmp.sock", vm->dir);
    QmpCallbacks cb = qemu_vm_callbacks(vm);
    int r = qmp_connect(sock, &cb, 10000, &q->mon, err);
    if (r < 0) {
        vmm_error_prefix(err, "VM %s runs (QEMU pid %d) but its monitor does not answer (is "
                         "another program connected to %s?)", vm->uuid, (int)pid, sock);
        return r == -ETIMEDOUT ? -EBUSY : r;
    }
    VmmRunState st;
    r = qmp_cmd_query_status(q->mon, &st, err);
    if (r < 0)
        return r;
    vmm_set_state(vm, st);
    log_info("VM %s: attached to QEMU pid %d, state %s", vm->uuid, (int)pid,
             vmm_run_state_to_string(st));
    return 0;
}

/* Stops monitor I/O; the watcher may still be finishing a tick, so nothing is freed. */
static void qemu_vm_shutdown(Vmm *vm)
{
    QemuVm *q = qvm(vm);
    if (q && q->mon)
        qmp_disconnect(q->mon);
}

static void qemu_vm_free_priv(Vmm *vm)
{
    QemuVm *q = qvm(vm);
    if (!q)
        return;
    qmp_close(q->mon);
    q->mon = NULL;
    for (int i = 0; i < QEMU_MAX_WATCH; i++)
        free(q->watch_ids[i]);
    free(q);
    vm->priv = NULL;
}

/* ---- power ------------------------------------------------------------------ */

static int qemu_vm_powerdown(Vmm *vm, char **err)
{
    if (!vm->cfg.acpi)
        return vmm_error(err, -ENOTSUP, "VM %s has ACPI off, so it has no power button; use a "
                         "hard shutdown", vm->uuid);
    return qemu_vm_run(vm, "system_powerdown", NULL, 0, err);
}

static int qemu_vm_reset(Vmm *vm, char **err)
{
    return qemu_vm_run(vm, "system_reset", NULL, 0, err);
}

static int qemu_vm_pause(Vmm *vm, char **err)
{
    int r = qemu_vm_run(vm, "stop", NULL, 0, err);
    if (r == 0)
        vmm_set_state(vm, VMM_RUN_STATE_PAUSED);
    return r;
}

static int qemu_vm_unpause(Vmm *vm, char **err)
{
    int r = qemu_vm_run(vm, "cont", NULL, 0, err);
    if (r == 0)
        vmm_set_state(vm, VMM_RUN_STATE_RUNNING);
    return r;
}

static int qemu_vm_query_status(Vmm *vm, VmmRunState *state, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon) {
        *state = VMM_RUN_STATE_DEAD;
        return r;
    }
    r = qmp_cmd_query_status(mon, state, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    vmm_set_state(vm, *state);
    return 0;
}

static int qemu_vm_destroy(Vmm *vm, unsigned timeout_ms, char **err)
{
    QemuVm *q = qvm(vm);
    unsigned part = MAX(timeout_ms / 3, 500);
    if (vm->pid > 0 && qemu_process_alive(vm->pid)) {
        if (q->mon && qmp_is_connected(q->mon)) {
            char *e = NULL;
            if (qmp_cmd_run(q->mon, "quit", NULL, part, &e) < 0)
                log_debug("VM %s: quit: %s", vm->uuid, e);
            free(e);
        }
        if (qemu_process_wait_gone(vm->pid, part) < 0) {
            log_warn("VM %s: QEMU pid %d ignored quit; sending SIGTERM", vm->uuid, (int)vm->pid);
            qemu_process_kill(vm->pid, vm->uuid, SIGTERM);
            if (qemu_process_wait_gone(vm->pid, part) < 0) {
                log_warn("VM %s: QEMU pid %d ignored SIGTERM; sending SIGKILL", vm->uuid,
                         (int)vm->pid);
                qemu_process_kill(vm->pid, vm->uuid, SIGKILL);
                if (qemu_process_wait_gone(vm->pid, 5000) < 0)
                    return vmm_error(err, -ETIMEDOUT, "VM %s: QEMU pid %d survives SIGKILL "
                                     "(stuck in the kernel?)", vm->uuid, (int)vm->pid);
            }
        }
    }
    qemu_vm_handle_gone(vm, 0);
    return 0;
}

/* ---- suspend, migrate, dump ----------------------------------------------- */

static int qemu_vm_migrate_to(Vmm *vm, QmpMonitor *mon, const char *uri, int fd,
                              const VmmMigrateOptions *opts, VmmProgressFn progress,
                              void *opaque, char **err)
{
    int r = qmp_cmd_migrate_set_capability(mon, "events", true, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    struct json_object *p = json_object_new_object();
    if (opts->max_bandwidth)
        json_object_object_add(p, "max-bandwidth",
                               json_object_new_int64((int64_t)MIN(opts->max_bandwidth,
                                                                  (uint64_t)INT64_MAX)));
    if (opts->downtime_ms)
        json_object_object_add(p, "downtime-limit", json_object_new_int64(opts->downtime_ms));
    if (json_object_object_length(p) > 0) {
        r = qmp_cmd_run_take(mon, "migrate-set-parameters", p, 0, err);
        if (r < 0)
            return qemu_vm_fail(vm, r, err);
    } else {
        json_object_put(p);
    }
    if (fd >= 0) {
        struct json_object *a = qemu_args1("fdname", "hx-outgoing");
        r = qmp_execute_fd(mon, "getfd", a, fd, 10000, NULL, err);
        json_object_put(a);
        if (r < 0)
            return qemu_vm_fail(vm, r, err);
    }
    r = qmp_cmd_run_take(mon, "migrate", qemu_args1("uri", uri), 0, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    int64_t deadline = opts->timeout_ms ? vmm_now_ms() + opts->timeout_ms : INT64_MAX;
    QmpMigrateInfo mi;
    r = qemu_wait_migration(vm, mon, deadline, progress, opaque, &mi, err);
    if (r == -ETIMEDOUT)
        qmp_cmd_run(mon, "migrate_cancel", NULL, 0, NULL);
    if (r < 0)
        return r;
    if (!STREQ(mi.status, "completed"))
        r = vmm_error(err, -EIO, "VM %s: migration %s: %s", vm->uuid, mi.status,
                      mi.error ? mi.error : "no reason given");
    else if (progress)
        progress(mi.total, mi.total, opaque);
    qmp_cmd_migrate_info_release(&mi);
    return r;
}

static int qemu_vm_suspend(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                           char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    VmmRunState st;
    r = qmp_cmd_query_status(mon, &st, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    if (st != VMM_RUN_STATE_RUNNING && st != VMM_RUN_STATE_PAUSED)
        return vmm_error(err, -EBUSY, "VM %s cannot be suspended in state %s", vm->uuid,
                         vmm_run_state_to_string(st));
    bool was_running = st == VMM_RUN_STATE_RUNNING;
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return vmm_error(err, -errno, "cannot create suspend image %s: %s", path,
                         strerror(errno));
    if (was_running && (r = qmp_cmd_run(mon, "stop", NULL, 0, err)) < 0)
        return qemu_vm_fail(vm, r, err);
    /* the guest is paused: nothing to converge, so no bandwidth cap */
    VmmMigrateOptions opts = {.max_bandwidth = (uint64_t)INT64_MAX / 2};
    r = qemu_vm_migrate_to(vm, mon, "fd:hx-outgoing", fd, &opts, progress, opaque, err);
    if (r == 0 && fsync(fd) < 0)
        r = vmm_error(err, -errno, "cannot sync suspend image %s: %s", path, strerror(errno));
    if (r < 0) {
        if (was_running)
            qmp_cmd_run(mon, "cont", NULL, 0, NULL);
        unlink(path);
        return r;
    }
    log_info("VM %s: suspended to %s", vm->uuid, path);
    return qemu_vm_destroy(vm, 10000, err);
}

static int qemu_vm_save_state(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                              char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    VmmRunState st;
    r = qmp_cmd_query_status(mon, &st, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    if (st != VMM_RUN_STATE_PAUSED)
        return vmm_error(err, -EBUSY, "VM %s: its state can be saved only while it is paused "
                         "(state %s)", vm->uuid, vmm_run_state_to_string(st));
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return vmm_error(err, -errno, "cannot create state image %s: %s", path,
                         strerror(errno));
    VmmMigrateOptions opts = {.max_bandwidth = (uint64_t)INT64_MAX / 2};
    r = qemu_vm_migrate_to(vm, mon, "fd:hx-outgoing", fd, &opts, progress, opaque, err);
    if (r == 0 && fsync(fd) < 0)
        r = vmm_error(err, -errno, "cannot sync state image %s: %s", path, strerror(errno));
    if (r < 0) {
        unlink(path);
        return r;
    }
    /* QEMU is now in "postmigrate" with its disks let go; cont takes them back. */
    log_info("VM %s: state saved to %s", vm->uuid, path);
    return 0;
}

static int qemu_vm_migrate(Vmm *vm, const char *uri, const VmmMigrateOptions *opts,
                           VmmProgressFn progress, void *opaque, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    return qemu_vm_migrate_to(vm, mon, uri, -1, opts, progress, opaque, err);
}

static int qemu_vm_wait_incoming(Vmm *vm, unsigned timeout_ms, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    QmpMigrateInfo mi;
    r = qemu_wait_migration(vm, mon, vmm_now_ms() + (timeout_ms ? timeout_ms : 600000), NULL,
                            NULL, &mi, err);
    if (r < 0)
        return r;
    if (!STREQ(mi.status, "completed"))
        r = vmm_error(err, -EIO, "VM %s: incoming migration %s: %s", vm->uuid, mi.status,
                      mi.error ? mi.error : "no reason given");
    qmp_cmd_migrate_info_release(&mi);
    return r;
}

static int qemu_vm_dump_core(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                             char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    _cleanup_free_ char *proto = xasprintf("file:%s", path);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "paging", json_object_new_boolean(false));
    json_object_object_add(a, "protocol", json_object_new_string(proto));
    json_object_object_add(a, "detach", json_object_new_boolean(true));
    r = qmp_cmd_run_take(mon, "dump-guest-memory", a, 0, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    for (unsigned sleep_ms = 20;; sleep_ms = MIN(sleep_ms * 2, 200)) {
        QmpDumpInfo di;
        r = qmp_cmd_query_dump(mon, &di, err);
        if (r < 0)
            return qemu_vm_fail(vm, r, err);
        if (progress && di.total)
            progress(di.completed, di.total, opaque);
        if (STREQ(di.status, "completed"))
            return 0;
        if (STREQ(di.status, "failed") || STREQ(di.status, "none"))
            return vmm_error(err, -EIO, "VM %s: writing the core dump %s failed (see %s/qemu.log)",
                             vm->uuid, path, vm->dir);
        vmm_sleep_ms(sleep_ms);
    }
}

/* ---- disks ------------------------------------------------------------------ */

static int qemu_validate_with(Vmm *vm, const VmmDisk *disk, const VmmNic *nic, char **err)
{
    VmmConfig tmp;
    pthread_mutex_lock(&vm->lock);
    vmm_config_copy(&tmp, &vm->cfg);
    pthread_mutex_unlock(&vm->lock);
    if (disk)
        vmm_disk_copy(vmm_config_add_disk(&tmp, 0, 0, 0, NULL, 0), disk);
    if (nic)
        vmm_nic_copy(vmm_config_add_nic(&tmp, 0, NULL, 0), nic);
    int r = vmm_config_validate(&tmp, err);
    vmm_config_release(&tmp);
    return r;
}

/*
 * Deletes our block nodes ("disk*") that nothing uses any more: those of an
 * unplugged disk or ejected CD, an overlay the caller added that an active
 * commit pivoted away from. QEMU refuses to delete a node that is still
 * referenced (a device's root, a backing file), so trying them all is safe.
 * position < 0: all disks; else only "disk<position>-*".
 */
static void qemu_gc_nodes(Vmm *vm, int position)
{
    QemuVm *q = qvm(vm);
    char prefix[24];
    if (position >= 0)
        snprintf(prefix, sizeof(prefix), "disk%d-", position);
    else
        snprintf(prefix, sizeof(prefix), "disk");
    for (int round = 0; round < 8 && q->mon; round++) {
        _cleanup_strv_ char **names = NULL;
        if (qmp_cmd_list_nodes(q->mon, &names, NULL) < 0)
            return;
        bool progress = false;
        for (char **n = names; *n; n++)
            if (STRPREFIX(*n, prefix) && qmp_cmd_blockdev_del(q->mon, *n, NULL) == 0) {
                log_debug("VM %s: released block node %s", vm->uuid, *n);
                progress = true;
            }
        if (!progress)
            return;
    }
}

static bool qemu_has_device(QmpMonitor *mon, const char *id)
{
    struct json_object *ret = NULL;
    struct json_object *a = qemu_args1("path", "/machine/peripheral");
    int r = qmp_execute(mon, "qom-list", a, 10000, &ret, NULL);
    json_object_put(a);
    bool found = false;
    if (r == 0 && json_object_is_type(ret, json_type_array))
        for (size_t i = 0; i < json_object_array_length(ret); i++) {
            const char *name = qmp_cmd_get_str(json_object_array_get_idx(ret, i), "name");
            found |= name && STREQ(name, id);
        }
    json_object_put(ret);
    return found;
}

static int qemu_vm_disk_attach(Vmm *vm, const VmmDisk *disk, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    if (vm->cfg.machine == VMM_MACHINE_Q35)
        return vmm_error(err, -ENOTSUP, "VM %s: hot-plug is supported on machine pc only",
                         vm->uuid);
    if (disk->bus == VMM_BUS_IDE)
        return vmm_error(err, -ENOTSUP, "VM %s: IDE disks cannot be hot-plugged; use virtio or "
                         "scsi, or attach it while the VM is halted", vm->uuid);
    pthread_mutex_lock(&vm->lock);
    bool taken = vmm_cfg_disk(vm, disk->position) != NULL;
    bool scsi_present = false;
    for (size_t i = 0; i < vm->cfg.n_disks; i++)
        scsi_present |= vm->cfg.disks[i].bus == VMM_BUS_SCSI;
    pthread_mutex_unlock(&vm->lock);
    if (taken)
        return vmm_error(err, -EEXIST, "VM %s already has a disk at position %u", vm->uuid,
                         disk->position);
    if ((r = qemu_validate_with(vm, disk, NULL, err)) < 0)
        return r;
    if (disk->path) {
        char what[48];
        snprintf(what, sizeof(what), "disk image (position %u)", disk->position);
        bool cd = disk->type == VMM_DISK_TYPE_CDROM;
        if ((r = vmm_check_file(vm->uuid, what, disk->path, !cd && !disk->read_only, err)))
            return r;
    }
    _cleanup_free_ char *id = qemu_argv_disk_id(disk->position);
    if (qemu_has_device(mon, id))
        return vmm_error(err, -EBUSY, "VM %s: %s is still present in QEMU (an earlier unplug "
                         "has not finished)", vm->uuid, id);
    if (disk->bus == VMM_BUS_SCSI && !scsi_present && !qemu_has_device(mon, "scsi0")) {
        char slot[8];
        snprintf(slot, sizeof(slot), "0x%x", QEMU_SLOT_SCSI);
        struct json_object *c = qemu_args1("driver", "virtio-scsi-pci");
        json_object_object_add(c, "id", json_object_new_string("scsi0"));
        json_object_object_add(c, "addr", json_object_new_string(slot));
        if ((r = qmp_cmd_run_take(mon, "device_add", c, 0, err)) < 0)
            return qemu_vm_fail(vm, r, err);
    }
    qemu_gc_nodes(vm, (int)disk->position); /* leftovers of an earlier late unplug */
    if (disk->path) {
        r = qmp_cmd_run_take(mon, "blockdev-add", qemu_argv_disk_file_node(disk), 30000, err);
        if (r < 0)
            return qemu_vm_fail(vm, r, err);
        r = qmp_cmd_run_take(mon, "blockdev-add", qemu_argv_disk_format_node(disk), 30000, err);
        if (r < 0) {
            qemu_gc_nodes(vm, (int)disk->position);
            return qemu_vm_fail(vm, r, err);
        }
    }
    r = qmp_cmd_run_take(mon, "device_add",
                         qemu_argv_disk_device(vm->cfg.machine, disk, disk->bootindex), 0, err);
    if (r < 0) {
        qemu_gc_nodes(vm, (int)disk->position);
        return qemu_vm_fail(vm, r, err);
    }
    pthread_mutex_lock(&vm->lock);
    VmmDisk *d = vmm_config_add_disk(&vm->cfg, 0, 0, 0, NULL, 0);
    vmm_disk_copy(d, disk);
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    log_info("VM %s: hot-plugged %s (%s)", vm->uuid, id, disk->path ? disk->path : "empty");
    return 0;
}

static int qemu_vm_disk_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err)
{
    int r = 0;
    if (!qemu_vm_mon(vm, &r, err))
        return r;
    pthread_mutex_lock(&vm->lock);
    VmmDisk *d = vmm_cfg_disk(vm, position);
    VmmBus bus = d ? d->bus : VMM_BUS_VIRTIO;
    pthread_mutex_unlock(&vm->lock);
    if (!d)
        return vmm_error(err, -ENODEV, "VM %s has no disk at position %u", vm->uuid, position);
    if (bus == VMM_BUS_IDE)
        return vmm_error(err, -ENOTSUP, "VM %s: IDE disk %u cannot be unplugged while running",
                         vm->uuid, position);
    _cleanup_free_ char *id = qemu_argv_disk_id(position);
    r = qemu_device_unplug(vm, id, timeout_ms, err);
    if (r < 0)
        return r;
    qemu_gc_nodes(vm, (int)position);
    pthread_mutex_lock(&vm->lock);
    vmm_cfg_remove_disk(vm, position);
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    log_info("VM %s: unplugged %s", vm->uuid, id);
    return 0;
}

static int qemu_cd_check(Vmm *vm, unsigned position, char **err)
{
    pthread_mutex_lock(&vm->lock);
    VmmDisk *d = vmm_cfg_disk(vm, position);
    bool cd = d && d->type == VMM_DISK_TYPE_CDROM;
    pthread_mutex_unlock(&vm->lock);
    if (!d)
        return vmm_error(err, -ENODEV, "VM %s has no CD drive at position %u", vm->uuid,
                         position);
    if (!cd)
        return vmm_error(err, -EINVAL, "VM %s: the device at position %u is a disk, not a CD "
                         "drive", vm->uuid, position);
    return 0;
}

static void qemu_cd_set(Vmm *vm, unsigned position, const char *path)
{
    pthread_mutex_lock(&vm->lock);
    VmmDisk *d = vmm_cfg_disk(vm, position);
    if (d) {
        free(d->path);
        d->path = xstrdup_or_null(path);
        vmm_save_config_locked(vm);
    }
    pthread_mutex_unlock(&vm->lock);
}

static int qemu_vm_cd_insert(Vmm *vm, unsigned position, const char *path, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    if ((r = qemu_cd_check(vm, position, err)) < 0 ||
        (r = vmm_check_file(vm->uuid, "CD image", path, false, err)) < 0)
        return r;
    _cleanup_free_ char *id = qemu_argv_disk_id(position);
    r = qmp_cmd_change_medium(mon, id, path, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    qemu_gc_nodes(vm, (int)position);
    qemu_cd_set(vm, position, path);
    return 0;
}

static int qemu_vm_cd_eject(Vmm *vm, unsigned position, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    if ((r = qemu_cd_check(vm, position, err)) < 0)
        return r;
    _cleanup_free_ char *id = qemu_argv_disk_id(position);
    r = qmp_cmd_eject(mon, id, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    qemu_gc_nodes(vm, (int)position);
    qemu_cd_set(vm, position, NULL);
    return 0;
}

/* ---- NICs ------------------------------------------------------------------- */

static int qemu_vm_nic_attach(Vmm *vm, const VmmNic *nic, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    if (vm->cfg.machine == VMM_MACHINE_Q35)
        return vmm_error(err, -ENOTSUP, "VM %s: hot-plug is supported on machine pc only",
                         vm->uuid);
    pthread_mutex_lock(&vm->lock);
    bool taken = vmm_cfg_nic(vm, nic->position) != NULL;
    pthread_mutex_unlock(&vm->lock);
    if (taken)
        return vmm_error(err, -EEXIST, "VM %s already has a NIC at position %u", vm->uuid,
                         nic->position);
    if ((r = qemu_validate_with(vm, NULL, nic, err)) < 0)
        return r;
    if (nic->backend == VMM_NET_USER)
        log_info("VM %s: NIC %u uses QEMU user-mode networking: %s", vm->uuid, nic->position,
                 nic->user_reason ? nic->user_reason : "no reason given");
    r = qmp_cmd_run_take(mon, "netdev_add", qemu_argv_nic_netdev(nic), 0, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    r = qmp_cmd_run_take(mon, "device_add", qemu_argv_nic_device(nic, nic->bootindex), 0, err);
    if (r < 0) {
        char netdev[16];
        snprintf(netdev, sizeof(netdev), "net%u", nic->position);
        qmp_cmd_netdev_del(mon, netdev, NULL);
        return qemu_vm_fail(vm, r, err);
    }
    pthread_mutex_lock(&vm->lock);
    vmm_nic_copy(vmm_config_add_nic(&vm->cfg, 0, NULL, 0), nic);
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    log_info("VM %s: hot-plugged nic%u (%s)", vm->uuid, nic->position, nic->mac);
    return 0;
}

static int qemu_vm_nic_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    pthread_mutex_lock(&vm->lock);
    bool present = vmm_cfg_nic(vm, position) != NULL;
    pthread_mutex_unlock(&vm->lock);
    if (!present)
        return vmm_error(err, -ENODEV, "VM %s has no NIC at position %u", vm->uuid, position);
    char id[16], netdev[16];
    snprintf(id, sizeof(id), "nic%u", position);
    snprintf(netdev, sizeof(netdev), "net%u", position);
    r = qemu_device_unplug(vm, id, timeout_ms, err);
    if (r < 0)
        return r;
    qmp_cmd_netdev_del(mon, netdev, NULL);
    pthread_mutex_lock(&vm->lock);
    vmm_cfg_remove_nic(vm, position);
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

/* ---- vCPUs and memory ------------------------------------------------------ */

static int qemu_vm_get_vcpus(Vmm *vm, unsigned *count, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    QmpCpuSlot *slots;
    size_t n;
    r = qmp_cmd_query_hotpluggable_cpus(mon, &slots, &n, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    unsigned c = 0;
    for (size_t i = 0; i < n; i++)
        c += slots[i].qom_path != NULL;
    qmp_cmd_cpu_slots_free(slots, n);
    *count = c;
    return 0;
}

static int qemu_vm_set_vcpus(Vmm *vm, unsigned count, unsigned timeout_ms, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    unsigned maxc = vm->cfg.vcpus_max ? vm->cfg.vcpus_max : vm->cfg.vcpus;
    if (count < 1 || count > maxc)
        return vmm_error(err, -EINVAL, "VM %s: %u vCPUs requested; allowed 1..%u (VCPUs-max)",
                         vm->uuid, count, maxc);
    QmpCpuSlot *slots;
    size_t n;
    r = qmp_cmd_query_hotpluggable_cpus(mon, &slots, &n, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    unsigned present = 0;
    for (size_t i = 0; i < n; i++)
        present += slots[i].qom_path != NULL;
    /* plug in ascending socket order, unplug in descending order */
    while (r == 0 && present < count) {
        QmpCpuSlot *best = NULL;
        for (size_t i = 0; i < n; i++)
            if (!slots[i].qom_path && (!best || slots[i].socket_id < best->socket_id))
                best = &slots[i];
        if (!best)
            break;
        char id[24];
        snprintf(id, sizeof(id), "cpu%lld", (long long)best->socket_id);
        struct json_object *a = qemu_args1("driver", best->type);
        json_object_object_add(a, "id", json_object_new_string(id));
        if (best->socket_id >= 0)
            json_object_object_add(a, "socket-id", json_object_new_int64(best->socket_id));
        if (best->core_id >= 0)
            json_object_object_add(a, "core-id", json_object_new_int64(best->core_id));
        if (best->thread_id >= 0)
            json_object_object_add(a, "thread-id", json_object_new_int64(best->thread_id));
        r = qmp_cmd_run_take(mon, "device_add", a, 0, err);
        if (r == 0) {
            best->qom_path = xasprintf("/machine/peripheral/%s", id);
            present++;
        }
    }
    while (r == 0 && present > count) {
        QmpCpuSlot *best = NULL;
        for (size_t i = 0; i < n; i++)
            if (slots[i].qom_path && STRPREFIX(slots[i].qom_path, "/machine/peripheral/") &&
                (!best || slots[i].socket_id > best->socket_id))
                best = &slots[i];
        if (!best) {
            r = vmm_error(err, -ENOTSUP, "VM %s: only vCPUs added while running can be removed "
                          "(%u present, %u wanted)", vm->uuid, present, count);
            break;
        }
        const char *id = best->qom_path + strlen("/machine/peripheral/");
        r = qemu_device_unplug(vm, id, timeout_ms, err);
        if (r == 0) {
            free(best->qom_path);
            best->qom_path = NULL;
            present--;
        }
    }
    qmp_cmd_cpu_slots_free(slots, n);
    pthread_mutex_lock(&vm->lock);
    vm->cfg.vcpus = present;
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

static int qemu_vm_set_memory_target(Vmm *vm, uint64_t target_mib, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    if (!vm->cfg.balloon)
        return vmm_error(err, -ENOTSUP, "VM %s has no balloon device", vm->uuid);
    if (target_mib < 16 || target_mib > vm->cfg.memory_mib)
        return vmm_error(err, -EINVAL, "VM %s: memory target %llu MiB; allowed 16..%llu MiB",
                         vm->uuid, (unsigned long long)target_mib,
                         (unsigned long long)vm->cfg.memory_mib);
    r = qmp_cmd_balloon(mon, target_mib * MiB, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    pthread_mutex_lock(&vm->lock);
    vm->cfg.memory_target_mib = target_mib;
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static int qemu_vm_get_memory_actual(Vmm *vm, uint64_t *bytes, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    r = qmp_cmd_query_balloon(mon, bytes, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

/* ---- block queries, snapshots, jobs ---------------------------------------- */

static int qemu_vm_query_disks(Vmm *vm, VmmBlockInfo **info, size_t *n, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    r = qmp_cmd_query_block(mon, info, n, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

static void qemu_vm_refresh(Vmm *vm)
{
    QemuVm *q = qvm(vm);
    VmmBlockInfo *info;
    size_t n;
    if (!q->mon || !qmp_is_connected(q->mon))
        return;
    qemu_gc_nodes(vm, -1);
    if (qmp_cmd_query_block(q->mon, &info, &n, NULL) < 0)
        return;
    pthread_mutex_lock(&vm->lock);
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        VmmDisk *d = vmm_cfg_disk(vm, info[i].position);
        if (!d || d->type != VMM_DISK_TYPE_DISK || info[i].chain_len == 0)
            continue;
        const VmmBlockImage *top = &info[i].chain[0];
        if (!d->path || !STREQ(d->path, top->filename)) {
            free(d->path);
            d->path = xstrdup(top->filename);
            changed = true;
        }
        int f = top->format ? vmm_disk_format_from_string(top->format) : -1;
        if (f >= 0 && (VmmDiskFormat)f != d->format) {
            d->format = (VmmDiskFormat)f;
            changed = true;
        }
    }
    if (changed)
        vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    vmm_block_info_free(info, n);
}

static unsigned qemu_next_snap_index(QmpMonitor *mon)
{
    _cleanup_strv_ char **names = NULL;
    unsigned next = 1;
    if (qmp_cmd_list_nodes(mon, &names, NULL) < 0)
        return (unsigned)(vmm_now_ms() % 100000);
    for (char **n = names; *n; n++) {
        unsigned pos, k;
        if (sscanf(*n, "disk%u-snap%u", &pos, &k) == 2 && k >= next)
            next = k + 1;
    }
    return next;
}

static int qemu_vm_snapshot_disks(Vmm *vm, const VmmSnapshotDisk *disks, size_t n, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    unsigned k = qemu_next_snap_index(mon);
    struct json_object *actions = json_object_new_array();
    char added[VMM_MAX_DISKS][2][32];
    size_t n_added = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        const VmmSnapshotDisk *s = &disks[i];
        pthread_mutex_lock(&vm->lock);
        VmmDisk *d = vmm_cfg_disk(vm, s->position);
        bool ok = d && d->type == VMM_DISK_TYPE_DISK && !d->read_only;
        pthread_mutex_unlock(&vm->lock);
        if (!ok) {
            r = vmm_error(err, -ENODEV, "VM %s has no writable disk at position %u to snapshot",
                          vm->uuid, s->position);
            break;
        }
        _cleanup_free_ char *top = qmp_cmd_disk_top_node(mon, s->position, err);
        if (!top) {
            r = -ENODEV;
            break;
        }
        char node[32], file[32];
        snprintf(node, sizeof(node), "disk%u-snap%u", s->position, k);
        snprintf(file, sizeof(file), "disk%u-snap%u-file", s->position, k);
        struct json_object *act = json_object_new_object();
        struct json_object *data = json_object_new_object();
        if (s->create) {
            if (vmm_file_exists(s->overlay)) {
                json_object_put(act);
                json_object_put(data);
                r = vmm_error(err, -EEXIST, "VM %s: snapshot overlay %s already exists",
                              vm->uuid, s->overlay);
                break;
            }
            json_object_object_add(act, "type", json_object_new_string("blockdev-snapshot-sync"));
            json_object_object_add(data, "node-name", json_object_new_string(top));
            json_object_object_add(data, "snapshot-file", json_object_new_string(s->overlay));
            json_object_object_add(data, "snapshot-node-name", json_object_new_string(node));
            json_object_object_add(data, "format", json_object_new_string("qcow2"));
            json_object_object_add(data, "mode", json_object_new_string("absolute-paths"));
        } else {
            if ((r = vmm_check_file(vm->uuid, "snapshot overlay", s->overlay, true, err)) < 0) {
                json_object_put(act);
                json_object_put(data);
                break;
            }
            struct json_object *f = qemu_args1("driver", "file");
            json_object_object_add(f, "filename", json_object_new_string(s->overlay));
            json_object_object_add(f, "node-name", json_object_new_string(file));
            r = qmp_cmd_run_take(mon, "blockdev-add", f, 30000, err);
            struct json_object *o = NULL;
            if (r == 0) {
                snprintf(added[n_added][1], 32, "%s", file);
                added[n_added][0][0] = '\0';
                n_added++;
                o = qemu_args1("driver", "qcow2");
                json_object_object_add(o, "file", json_object_new_string(file));
                json_object_object_add(o, "node-name", json_object_new_string(node));
                json_object_object_add(o, "backing", NULL);
                r = qmp_cmd_run_take(mon, "blockdev-add", o, 30000, err);
                if (r == 0)
                    snprintf(added[n_added - 1][0], 32, "%s", node);
            }
            if (r < 0) {
                json_object_put(act);
                json_object_put(data);
                break;
            }
            json_object_object_add(act, "type", json_object_new_string("blockdev-snapshot"));
            json_object_object_add(data, "node", json_object_new_string(top));
            json_object_object_add(data, "overlay", json_object_new_string(node));
        }
        json_object_object_add(act, "data", data);
        json_object_array_add(actions, act);
    }
    if (r == 0) {
        struct json_object *a = json_object_new_object();
        json_object_object_add(a, "actions", json_object_get(actions));
        int64_t t0 = vmm_now_ms();
        r = qmp_cmd_run_take(mon, "transaction", a, 60000, err);
        log_info("VM %s: snapshot of %zu disk(s) %s in %lld ms", vm->uuid, n,
                 r == 0 ? "switched" : "failed", (long long)(vmm_now_ms() - t0));
    }
    json_object_put(actions);
    if (r < 0) {
        for (size_t i = n_added; i-- > 0;) {
            if (added[i][0][0])
                qmp_cmd_blockdev_del(mon, added[i][0], NULL);
            qmp_cmd_blockdev_del(mon, added[i][1], NULL);
        }
        return qemu_vm_fail(vm, r, err);
    }
    pthread_mutex_lock(&vm->lock);
    for (size_t i = 0; i < n; i++) {
        VmmDisk *d = vmm_cfg_disk(vm, disks[i].position);
        if (d) {
            free(d->path);
            d->path = xstrdup(disks[i].overlay);
            d->format = VMM_DISK_FORMAT_QCOW2;
        }
    }
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

/* The chain of disk position, with its top node; -ENODEV if it has none. */
static int qemu_disk_chain(Vmm *vm, QmpMonitor *mon, unsigned position, VmmBlockInfo **all,
                           size_t *n, VmmBlockInfo **one, char **err)
{
    int r = qmp_cmd_query_block(mon, all, n, err);
    if (r < 0)
        return qemu_vm_fail(vm, r, err);
    for (size_t i = 0; i < *n; i++) {
        if ((*all)[i].position == position && (*all)[i].chain_len > 0 &&
            (*all)[i].chain[0].node_name) {
            *one = &(*all)[i];
            return 0;
        }
    }
    vmm_block_info_free(*all, *n);
    *all = NULL;
    return vmm_error(err, -ENODEV, "VM %s has no disk with an image at position %u", vm->uuid,
                     position);
}

static bool qemu_chain_has(const VmmBlockInfo *bi, const char *file, size_t from)
{
    for (size_t i = from; i < bi->chain_len; i++)
        if (STREQ(bi->chain[i].filename, file))
            return true;
    return false;
}

static int qemu_vm_job_commit(Vmm *vm, unsigned position, const char *top, const char *base,
                              const char *job_id, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    VmmBlockInfo *all, *bi;
    size_t n;
    if ((r = qemu_disk_chain(vm, mon, position, &all, &n, &bi, err)) < 0)
        return r;
    size_t top_i = 0;
    if (top) {
        for (top_i = 0; top_i < bi->chain_len; top_i++)
            if (STREQ(bi->chain[top_i].filename, top))
                break;
        if (top_i == bi->chain_len) {
            vmm_block_info_free(all, n);
            return vmm_error(err, -ENOENT, "VM %s: %s is not in the chain of disk %u", vm->uuid,
                             top, position);
        }
    }
    if (top_i + 1 >= bi->chain_len) {
        r = vmm_error(err, -EINVAL, "VM %s: disk %u has no backing file below %s to commit into",
                      vm->uuid, position, bi->chain[top_i].filename);
        vmm_block_info_free(all, n);
        return r;
    }
    if (base && !qemu_chain_has(bi, base, top_i + 1)) {
        r = vmm_error(err, -ENOENT, "VM %s: %s is not below %s in the chain of disk %u",
                      vm->uuid, base, bi->chain[top_i].filename, position);
        vmm_block_info_free(all, n);
        return r;
    }
    struct json_object *a = qemu_args1("job-id", job_id);
    json_object_object_add(a, "device", json_object_new_string(bi->chain[0].node_name));
    json_object_object_add(a, "base",
                           json_object_new_string(base ? base : bi->chain[top_i + 1].filename));
    if (top_i > 0)
        json_object_object_add(a, "top", json_object_new_string(bi->chain[top_i].filename));
    json_object_object_add(a, "auto-dismiss", json_object_new_boolean(false));
    vmm_block_info_free(all, n);
    r = qmp_cmd_run_take(mon, "block-commit", a, 0, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

/*
 * The node of layer depth of a chain (QEMU names only the top layer in query-block, and
 * gives the others as file names or json: descriptions): among the format nodes this
 * layer named for the disk (disk<N>-fmt, disk<N>-snap<k>), the one with that many layers
 * below it. Layers QEMU opened by itself (backing files of the image at start) have no
 * such name: -ENODEV.
 */
static char *qemu_layer_node(Vmm *vm, QmpMonitor *mon, const VmmBlockInfo *bi, size_t depth,
                             char **err)
{
    /* Not flat: each node's image then shows its backing chain as QEMU has it open. */
    struct json_object *a = json_object_new_object(), *ret = NULL;
    json_object_object_add(a, "flat", json_object_new_boolean(false));
    int r = qmp_execute(mon, "query-named-block-nodes", a, 10000, &ret, err);
    json_object_put(a);
    if (r < 0)
        return NULL;
    char *found = NULL;
    int matches = 0;
    int64_t want = (int64_t)(bi->chain_len - 1 - depth);
    char prefix[24];
    snprintf(prefix, sizeof(prefix), "disk%u-", bi->position);
    for (size_t i = 0; json_object_is_type(ret, json_type_array) &&
                       i < json_object_array_length(ret); i++) {
        struct json_object *e = json_object_array_get_idx(ret, i);
        const char *name = qmp_cmd_get_str(e, "node-name");
        const char *drv = qmp_cmd_get_str(e, "drv");
        int64_t d = 0;
        struct json_object *img = NULL, *below = NULL;
        json_object_object_get_ex(e, "image", &img);
        while (img && json_object_object_get_ex(img, "backing-image", &below) && d < 256) {
            img = below;
            d++;
        }
        if (!name || !drv || STREQ(drv, "file") || !STRPREFIX(name, prefix) || d != want)
            continue;
        matches++;
        free(found);
        found = xstrdup(name);
    }
    json_object_put(ret);
    if (matches != 1) {
        free(found);
        vmm_error(err, -ENODEV, "VM %s: layer %zu of disk %u (%s) is not one block node (%d "
                  "found)", vm->uuid, depth, bi->position, bi->chain[depth].filename, matches);
        return NULL;
    }
    return found;
}

static int qemu_vm_job_commit_layer(Vmm *vm, unsigned position, unsigned top_depth,
                                    const char *backing_file, const char *job_id, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    VmmBlockInfo *all, *bi;
    size_t n;
    if ((r = qemu_disk_chain(vm, mon, position, &all, &n, &bi, err)) < 0)
        return r;
    char *top = NULL, *base = NULL;
    if ((size_t)top_depth + 1 >= bi->chain_len) {
        r = vmm_error(err, -ENODEV, "VM %s: disk %u has no layer below layer %u", vm->uuid,
                      position, top_depth);
    } else if (!(top = top_depth ? qemu_layer_node(vm, mon, bi, top_depth, err)
                                 : xstrdup(bi->chain[0].node_name)) ||
               !(base = qemu_layer_node(vm, mon, bi, top_depth + 1, err))) {
        r = -ENODEV;
    }
    unsigned p, k;
    char tail;
    if (r == 0 && sscanf(base, "disk%u-snap%u%c", &p, &k, &tail) != 2)
        r = vmm_error(err, -EBUSY, "VM %s: layer %u of disk %u (%s) was not added by a "
                      "snapshot: QEMU would reopen its file by name to write into it",
                      vm->uuid, top_depth + 1, position, base);
    if (r == 0) {
        struct json_object *a = qemu_args1("job-id", job_id);
        json_object_object_add(a, "device", json_object_new_string(bi->chain[0].node_name));
        json_object_object_add(a, "base-node", json_object_new_string(base));
        if (top_depth > 0) {
            json_object_object_add(a, "top-node", json_object_new_string(top));
            if (backing_file)
                json_object_object_add(a, "backing-file", json_object_new_string(backing_file));
        }
        json_object_object_add(a, "auto-dismiss", json_object_new_boolean(false));
        r = qmp_cmd_run_take(mon, "block-commit", a, 0, err);
        if (r < 0)
            r = qemu_vm_fail(vm, r, err);
        else
            log_info("VM %s: committing layer %u of disk %u (%s) into %s", vm->uuid, top_depth,
                     position, top, base);
    }
    free(top);
    free(base);
    vmm_block_info_free(all, n);
    return r;
}

static int qemu_vm_job_stream(Vmm *vm, unsigned position, const char *base, const char *job_id,
                              char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    VmmBlockInfo *all, *bi;
    size_t n;
    if ((r = qemu_disk_chain(vm, mon, position, &all, &n, &bi, err)) < 0)
        return r;
    if (base && !qemu_chain_has(bi, base, 1)) {
        vmm_block_info_free(all, n);
        return vmm_error(err, -ENOENT, "VM %s: %s is not a backing file of disk %u", vm->uuid,
                         base, position);
    }
    struct json_object *a = qemu_args1("job-id", job_id);
    json_object_object_add(a, "device", json_object_new_string(bi->chain[0].node_name));
    if (base)
        json_object_object_add(a, "base", json_object_new_string(base));
    json_object_object_add(a, "auto-dismiss", json_object_new_boolean(false));
    vmm_block_info_free(all, n);
    r = qmp_cmd_run_take(mon, "block-stream", a, 0, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

static int qemu_vm_job_query(Vmm *vm, const char *job_id, VmmJobInfo *info, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    r = qmp_cmd_query_job(mon, job_id, info, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

static int qemu_vm_job_complete(Vmm *vm, const char *job_id, char **err)
{
    return qemu_vm_run(vm, "job-complete", qemu_args1("id", job_id), 0, err);
}

static int qemu_vm_job_cancel(Vmm *vm, const char *job_id, char **err)
{
    return qemu_vm_run(vm, "job-cancel", qemu_args1("id", job_id), 0, err);
}

static int qemu_vm_job_dismiss(Vmm *vm, const char *job_id, char **err)
{
    return qemu_vm_run(vm, "job-dismiss", qemu_args1("id", job_id), 0, err);
}

/* ---- misc ------------------------------------------------------------------- */

static int qemu_vm_vnc_address(Vmm *vm, char **addr, char **err)
{
    if (vm->cfg.vnc == VMM_VNC_NONE)
        return vmm_error(err, -ENOENT, "VM %s has no VNC console", vm->uuid);
    if (vm->cfg.vnc == VMM_VNC_UNIX) {
        *addr = xasprintf("unix:%s/vnc.sock", vm->dir);
        return 0;
    }
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    r = qmp_cmd_query_vnc(mon, addr, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

static int qemu_vm_qmp(Vmm *vm, const char *command, struct json_object *args,
                       unsigned timeout_ms, struct json_object **ret, char **err)
{
    int r = 0;
    QmpMonitor *mon = qemu_vm_mon(vm, &r, err);
    if (!mon)
        return r;
    r = qmp_execute(mon, command, args, timeout_ms, ret, err);
    return r < 0 ? qemu_vm_fail(vm, r, err) : 0;
}

const VmmOps vmm_qemu_ops = {
    .start = qemu_vm_start,
    .attach = qemu_vm_attach,
    .shutdown = qemu_vm_shutdown,
    .free_priv = qemu_vm_free_priv,
    .tick = qemu_vm_tick,
    .internal = qemu_vm_internal,
    .refresh = qemu_vm_refresh,
    .powerdown = qemu_vm_powerdown,
    .reset = qemu_vm_reset,
    .pause = qemu_vm_pause,
    .unpause = qemu_vm_unpause,
    .destroy = qemu_vm_destroy,
    .query_status = qemu_vm_query_status,
    .suspend = qemu_vm_suspend,
    .save_state = qemu_vm_save_state,
    .migrate = qemu_vm_migrate,
    .wait_incoming = qemu_vm_wait_incoming,
    .dump_core = qemu_vm_dump_core,
    .disk_attach = qemu_vm_disk_attach,
    .disk_detach = qemu_vm_disk_detach,
    .cd_insert = qemu_vm_cd_insert,
    .cd_eject = qemu_vm_cd_eject,
    .nic_attach = qemu_vm_nic_attach,
    .nic_detach = qemu_vm_nic_detach,
    .set_vcpus = qemu_vm_set_vcpus,
    .get_vcpus = qemu_vm_get_vcpus,
    .set_memory_target = qemu_vm_set_memory_target,
    .get_memory_actual = qemu_vm_get_memory_actual,
    .query_disks = qemu_vm_query_disks,
    .snapshot_disks = qemu_vm_snapshot_disks,
    .job_commit = qemu_vm_job_commit,
    .job_commit_layer = qemu_vm_job_commit_layer,
    .job_stream = qemu_vm_job_stream,
    .job_query = qemu_vm_job_query,
    .job_complete = qemu_vm_job_complete,
    .job_cancel = qemu_vm_job_cancel,
    .job_dismiss = qemu_vm_job_dismiss,
    .vnc_address = qemu_vm_vnc_address,
    .qmp = qemu_vm_qmp,
};
