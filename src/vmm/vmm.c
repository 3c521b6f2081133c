/*
 * The generic part of the VMM interface: process-wide settings, handles,
 * start/attach/list/close, files of a VM, and dispatch of every operation to
 * the handle's backend (QEMU or simulated). Backend-specific behaviour lives
 * in vmm_qemu.c and vmm_sim.c; this file must not speak QMP.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmm/qemu_process.h"
#include "vmm/vmm_internal.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

/* ---- settings ------------------------------------------------------------ */

static pthread_mutex_t vmm_settings_lock = PTHREAD_MUTEX_INITIALIZER;
static int vmm_backend_setting = -1;
static char *vmm_qemu_binary;
static unsigned vmm_start_timeout_ms = 30000;

void vmm_set_backend(VmmBackend backend)
{
    pthread_mutex_lock(&vmm_settings_lock);
    vmm_backend_setting = backend;
    pthread_mutex_unlock(&vmm_settings_lock);
}

VmmBackend vmm_get_backend(void)
{
    pthread_mutex_lock(&vmm_settings_lock);
    if (vmm_backend_setting < 0) {
        const char *env = getenv("HX_VMM_BACKEND");
        int b = env ? vmm_backend_from_string(env) : -1;
        vmm_backend_setting = b < 0 ? VMM_BACKEND_QEMU : b;
    }
    VmmBackend b = (VmmBackend)vmm_backend_setting;
    pthread_mutex_unlock(&vmm_settings_lock);
    return b;
}

void vmm_set_qemu_binary(const char *path)
{
    pthread_mutex_lock(&vmm_settings_lock);
    free(vmm_qemu_binary);
    vmm_qemu_binary = xstrdup_or_null(path);
    pthread_mutex_unlock(&vmm_settings_lock);
}

const char *vmm_get_qemu_binary(void)
{
    pthread_mutex_lock(&vmm_settings_lock);
    if (!vmm_qemu_binary) {
        const char *env = getenv("HX_QEMU");
        vmm_qemu_binary = xstrdup(env && *env ? env : "qemu-system-x86_64");
    }
    const char *b = vmm_qemu_binary;
    pthread_mutex_unlock(&vmm_settings_lock);
    return b;
}

void vmm_set_start_timeout(unsigned ms)
{
    pthread_mutex_lock(&vmm_settings_lock);
    vmm_start_timeout_ms = ms ? ms : 30000;
    pthread_mutex_unlock(&vmm_settings_lock);
}

unsigned vmm_get_start_timeout(void)
{
    pthread_mutex_lock(&vmm_settings_lock);
    unsigned ms = vmm_start_timeout_ms;
    pthread_mutex_unlock(&vmm_settings_lock);
    return ms;
}

static bool vmm_cpuinfo_has_virt(void)
{
    _cleanup_free_ char *buf = NULL;
    if (vmm_read_file("/proc/cpuinfo", 4 * 1024 * 1024, false, &buf) < 0)
        return false;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (STRPREFIX(line, "flags")) {
            char *colon = strchr(line, ':');
            for (char *w = colon ? colon + 1 : line; w && *w;) {
                while (*w == ' ' || *w == '\t')
                    w++;
                size_t n = strcspn(w, " \t");
                if ((n == 3 && (strncmp(w, "vmx", 3) == 0 || strncmp(w, "svm", 3) == 0)))
                    return true;
                w += n;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

VmmAccel vmm_accel_detect(char **why)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (why)
            *why = xasprintf("TCG: /dev/kvm cannot be opened (%s)", strerror(errno));
        return VMM_ACCEL_TCG;
    }
    close(fd);
    if (!vmm_cpuinfo_has_virt()) {
        if (why)
            *why = xstrdup("TCG: /dev/kvm opens but the CPU flags have neither vmx nor svm, "
                           "so KVM would emulate the guest kernel and fail");
        return VMM_ACCEL_TCG;
    }
    if (why)
        *why = xstrdup("KVM: /dev/kvm opens and the CPU has hardware virtualisation");
    return VMM_ACCEL_KVM;
}

/* ---- handles -------------------------------------------------------------- */

static const VmmOps *vmm_ops_for(VmmBackend b)
{
    return b == VMM_BACKEND_SIM ? &vmm_sim_ops : &vmm_qemu_ops;
}

char *vmm_path(const char *run_dir, const char *uuid, const char *what)
{
    return what ? xasprintf("%s/%s/%s", run_dir, uuid, what) : xasprintf("%s/%s", run_dir, uuid);
}

static Vmm *vmm_handle_new(const char *run_dir, const char *uuid, VmmBackend backend,
                           VmmEventFn cb, void *opaque)
{
    Vmm *vm = xnew0(Vmm, 1);
    vm->backend = backend;
    vm->ops = vmm_ops_for(backend);
    snprintf(vm->uuid, sizeof(vm->uuid), "%s", uuid);
    vm->run_dir = xstrdup(run_dir);
    vm->dir = vmm_path(run_dir, uuid, NULL);
    pthread_mutex_init(&vm->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&vm->cond, &attr);
    pthread_condattr_destroy(&attr);
    vm->state = VMM_RUN_STATE_UNKNOWN;
    vm->exit_code = -1;
    vm->cb = cb;
    vm->cb_opaque = opaque;
    return vm;
}

void vmm_free_handle(Vmm *vm)
{
    if (vm->ops->free_priv)
        vm->ops->free_priv(vm);
    vmm_event_drain(vm); /* what the reader queued while it stopped */
    vmm_config_release(&vm->cfg);
    free(vm->run_dir);
    free(vm->dir);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}

static int vmm_check_run_dir(const char *run_dir, const char *uuid, char **err)
{
    if (!run_dir || !*run_dir)
        return vmm_error(err, -EINVAL, "no run directory given");
    /* the longest socket path must fit in sun_path (108 bytes) */
    size_t len = strlen(run_dir) + 1 + VMM_UUID_LEN + strlen("/qmp-aux.sock");
    if (len >= 108)
        return vmm_error(err, -ENAMETOOLONG, "run directory %s is too long for unix socket "
                         "paths of VM %s; use a shorter --run-dir", run_dir, uuid);
    return 0;
}

int vmm_start(const char *run_dir, const VmmConfig *cfg, VmmEventFn cb, void *opaque, Vmm **out,
              char **err)
{
    int r = vmm_config_validate(cfg, err);
    if (r < 0)
        return r;
    r = vmm_check_run_dir(run_dir, cfg->uuid, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *dir = vmm_path(run_dir, cfg->uuid, NULL);
    r = vmm_mkdir_p(dir, 0700);
    if (r < 0)
        return vmm_error(err, r, "cannot create %s: %s", dir, strerror(-r));

    Vmm *vm = vmm_handle_new(run_dir, cfg->uuid, vmm_get_backend(), cb, opaque);
    vmm_config_copy(&vm->cfg, cfg);
    r = vm->ops->start(vm, err);
    if (r < 0) {
        if (vm->ops->shutdown)
            vm->ops->shutdown(vm);
        vmm_event_drain(vm);
        vmm_free_handle(vm);
        return r;
    }
    /* what is kept describes the VM, not how this start happened */
    pthread_mutex_lock(&vm->lock);
    vm->cfg.incoming = VMM_INCOMING_NONE;
    free(vm->cfg.incoming_path);
    free(vm->cfg.incoming_uri);
    vm->cfg.incoming_path = vm->cfg.incoming_uri = NULL;
    vm->cfg.start_paused = false;
    vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    vmm_event_start(vm);
    *out = vm;
    return 0;
}

int vmm_attach(const char *run_dir, const char *uuid, VmmEventFn cb, void *opaque, Vmm **out,
               char **err)
{
    if (!vmm_uuid_valid(uuid))
        return vmm_error(err, -EINVAL, "'%s' is not a VM uuid", uuid);
    int r = vmm_check_run_dir(run_dir, uuid, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *sim = vmm_path(run_dir, uuid, "sim.json");
    VmmBackend b = vmm_file_exists(sim) ? VMM_BACKEND_SIM : VMM_BACKEND_QEMU;
    Vmm *vm = vmm_handle_new(run_dir, uuid, b, cb, opaque);
    r = vm->ops->attach(vm, err);
    if (r < 0) {
        if (vm->ops->shutdown)
            vm->ops->shutdown(vm);
        vmm_event_drain(vm);
        vmm_free_handle(vm);
        return r;
    }
    vmm_event_start(vm);
    *out = vm;
    return 0;
}

static bool vmm_dir_running(const char *run_dir, const char *uuid)
{
    _cleanup_free_ char *dir = vmm_path(run_dir, uuid, NULL);
    _cleanup_free_ char *sim = vmm_path(run_dir, uuid, "sim.json");
    if (vmm_file_exists(sim))
        return vmm_sim_is_running(dir);
    pid_t pid;
    return qemu_process_read_pidfile(dir, &pid) == 0 && qemu_process_matches(pid, uuid);
}

int vmm_list_running(const char *run_dir, char ***uuids, char **err)
{
    DIR *d = opendir(run_dir);
    if (!d) {
        if (errno == ENOENT) {
            *uuids = xnew0(char *, 1);
            return 0;
        }
        return vmm_error(err, -errno, "cannot read run directory %s: %s", run_dir,
                         strerror(errno));
    }
    char **v = NULL;
    size_t n = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!vmm_uuid_valid(de->d_name) || !vmm_dir_running(run_dir, de->d_name))
            continue;
        XGROW(v, n + 2, alloc);
        v[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (!v)
        v = xnew0(char *, 1);
    v[n] = NULL;
    *uuids = v;
    return (int)n;
}

void vmm_close(Vmm *vm)
{
    if (!vm)
        return;
    if (vmm_event_on_watcher(vm)) {
        pthread_mutex_lock(&vm->lock);
        vm->close_deferred = true;
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
        return;
    }
    if (vm->ops->shutdown)
        vm->ops->shutdown(vm);
    vmm_event_stop(vm);
    vmm_event_drain(vm);
    vmm_free_handle(vm);
}

const char *vmm_uuid(const Vmm *vm)
{
    return vm->uuid;
}

VmmBackend vmm_backend(const Vmm *vm)
{
    return vm->backend;
}

pid_t vmm_pid(const Vmm *vm)
{
    return vm->pid;
}

void vmm_get_config(Vmm *vm, VmmConfig *cfg)
{
    pthread_mutex_lock(&vm->lock);
    vmm_config_copy(cfg, &vm->cfg);
    pthread_mutex_unlock(&vm->lock);
}

ssize_t vmm_console_read(const char *run_dir, const char *uuid, size_t max_bytes, char **out,
                         char **err)
{
    _cleanup_free_ char *path = vmm_path(run_dir, uuid, "console.log");
    ssize_t n = vmm_read_file(path, max_bytes, true, out);
    if (n == -ENOENT) {
        *out = xstrdup("");
        return 0;
    }
    if (n < 0)
        return vmm_error(err, (int)n, "cannot read the console of VM %s: %s", uuid,
                         strerror((int)-n));
    return n;
}

int vmm_cleanup(const char *run_dir, const char *uuid, char **err)
{
    if (!vmm_uuid_valid(uuid))
        return vmm_error(err, -EINVAL, "'%s' is not a VM uuid", uuid);
    if (vmm_dir_running(run_dir, uuid))
        return vmm_error(err, -EBUSY, "VM %s is still running; stop it first", uuid);
    _cleanup_free_ char *dir = vmm_path(run_dir, uuid, NULL);
    int r = vmm_rm_rf(dir);
    if (r < 0)
        return vmm_error(err, r, "cannot remove %s: %s", dir, strerror(-r));
    return 0;
}

/* ---- checks shared by the backends ------------------------------------------ */

int vmm_check_file(const char *uuid, const char *what, const char *path, bool write,
                           char **err)
{
    if (access(path, F_OK) < 0)
        return vmm_error(err, -ENOENT, "%s %s of VM %s does not exist", what, path, uuid);
    if (access(path, write ? R_OK | W_OK : R_OK) < 0)
        return vmm_error(err, -errno, "%s %s of VM %s cannot be %s: %s", what, path, uuid,
                         write ? "written" : "read", strerror(errno));
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return vmm_error(err, -EISDIR, "%s %s of VM %s is a directory", what, path, uuid);
    return 0;
}

int vmm_preflight(const VmmConfig *cfg, char **err)
{
    int r = 0;
    if (cfg->kernel && (r = vmm_check_file(cfg->uuid, "kernel file", cfg->kernel, false, err)))
        return r;
    if (cfg->initrd && (r = vmm_check_file(cfg->uuid, "initrd file", cfg->initrd, false, err)))
        return r;
    for (size_t i = 0; i < cfg->n_disks; i++) {
        const VmmDisk *d = &cfg->disks[i];
        if (!d->path)
            continue;
        bool cd = d->type == VMM_DISK_TYPE_CDROM;
        char what[48];
        snprintf(what, sizeof(what), cd ? "CD image (position %u)" : "disk image (position %u)",
                 d->position);
        if ((r = vmm_check_file(cfg->uuid, what, d->path, !cd && !d->read_only, err)))
            return r;
    }
    if (cfg->incoming == VMM_INCOMING_FILE &&
        (r = vmm_check_file(cfg->uuid, "suspend image", cfg->incoming_path, false, err)))
        return r;
    return 0;
}

/* ---- state helpers for the backends --------------------------------------- */

bool vmm_cond_wait_until(Vmm *vm, int64_t deadline_ms)
{
    if (vmm_now_ms() >= deadline_ms)
        return false;
    struct timespec ts = {.tv_sec = deadline_ms / 1000,
                          .tv_nsec = (deadline_ms % 1000) * 1000000L};
    return pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) != ETIMEDOUT;
}

void vmm_set_state(Vmm *vm, VmmRunState st)
{
    pthread_mutex_lock(&vm->lock);
    vm->state = st;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

bool vmm_mark_exited(Vmm *vm, int code, int sig)
{
    pthread_mutex_lock(&vm->lock);
    bool first = !vm->exited;
    if (first) {
        vm->exited = true;
        vm->exit_code = code;
        vm->exit_signal = sig;
        vm->state = VMM_RUN_STATE_DEAD;
        pthread_cond_broadcast(&vm->cond);
    }
    pthread_mutex_unlock(&vm->lock);
    return first;
}

int vmm_save_config_locked(Vmm *vm)
{
    _cleanup_free_ char *path = vmm_path(vm->run_dir, vm->uuid, "config.json");
    struct json_object *j = vmm_config_to_json(&vm->cfg);
    const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    int r = vmm_write_file_atomic(path, s, strlen(s), 0600);
    json_object_put(j);
    if (r < 0)
        log_warn("VM %s: cannot write %s: %s", vm->uuid, path, strerror(-r));
    return r;
}

int vmm_save_config(Vmm *vm)
{
    pthread_mutex_lock(&vm->lock);
    int r = vmm_save_config_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

VmmDisk *vmm_cfg_disk(Vmm *vm, unsigned position)
{
    for (size_t i = 0; i < vm->cfg.n_disks; i++)
        if (vm->cfg.disks[i].position == position)
            return &vm->cfg.disks[i];
    return NULL;
}

VmmNic *vmm_cfg_nic(Vmm *vm, unsigned position)
{
    for (size_t i = 0; i < vm->cfg.n_nics; i++)
        if (vm->cfg.nics[i].position == position)
            return &vm->cfg.nics[i];
    return NULL;
}

void vmm_cfg_remove_disk(Vmm *vm, unsigned position)
{
    for (size_t i = 0; i < vm->cfg.n_disks; i++) {
        if (vm->cfg.disks[i].position != position)
            continue;
        vmm_disk_release(&vm->cfg.disks[i]);
        memmove(&vm->cfg.disks[i], &vm->cfg.disks[i + 1],
                (vm->cfg.n_disks - i - 1) * sizeof(VmmDisk));
        vm->cfg.n_disks--;
        return;
    }
}

void vmm_cfg_remove_nic(Vmm *vm, unsigned position)
{
    for (size_t i = 0; i < vm->cfg.n_nics; i++) {
        if (vm->cfg.nics[i].position != position)
            continue;
        vmm_nic_release(&vm->cfg.nics[i]);
        memmove(&vm->cfg.nics[i], &vm->cfg.nics[i + 1],
                (vm->cfg.n_nics - i - 1) * sizeof(VmmNic));
        vm->cfg.n_nics--;
        return;
    }
}

VmmRunState vmm_last_state(Vmm *vm)
{
    pthread_mutex_lock(&vm->lock);
    VmmRunState s = vm->state;
    pthread_mutex_unlock(&vm->lock);
    return s;
}

int vmm_wait_exit(Vmm *vm, unsigned timeout_ms, int *exit_code, int *exit_signal)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    bool on_watcher = vmm_event_on_watcher(vm);
    pthread_mutex_lock(&vm->lock);
    while (!vm->exited) {
        if (vmm_now_ms() >= deadline)
            break;
        if (on_watcher) {
            /* the watcher cannot process the death notice while we block it: look
             * ourselves */
            pthread_mutex_unlock(&vm->lock);
            if (vm->ops->internal)
                vm->ops->internal(vm, VMM_INTERNAL_MONITOR_CLOSED);
            pthread_mutex_lock(&vm->lock);
            if (vm->exited)
                break;
            vmm_cond_wait_until(vm, MIN(deadline, vmm_now_ms() + 100));
        } else {
            vmm_cond_wait_until(vm, deadline);
        }
    }
    bool exited = vm->exited;
    if (exit_code)
        *exit_code = vm->exit_code;
    if (exit_signal)
        *exit_signal = vm->exit_signal;
    pthread_mutex_unlock(&vm->lock);
    return exited ? 0 : -ETIMEDOUT;
}

/* ---- dispatch -------------------------------------------------------------- */

#define VMM_DISPATCH(op, ...)                                                                      \
    (vm->ops->op ? vm->ops->op(vm, __VA_ARGS__)                                                    \
                 : vmm_error(err, -ENOTSUP, "VM %s: %s is not supported by the %s backend",        \
                             vm->uuid, #op, vmm_backend_to_string(vm->backend)))

int vmm_powerdown(Vmm *vm, char **err)
{
    return VMM_DISPATCH(powerdown, err);
}

int vmm_reset(Vmm *vm, char **err)
{
    return VMM_DISPATCH(reset, err);
}

int vmm_pause(Vmm *vm, char **err)
{
    return VMM_DISPATCH(pause, err);
}

int vmm_unpause(Vmm *vm, char **err)
{
    return VMM_DISPATCH(unpause, err);
}

int vmm_destroy(Vmm *vm, unsigned timeout_ms, char **err)
{
    return VMM_DISPATCH(destroy, timeout_ms ? timeout_ms : 10000, err);
}

int vmm_query_status(Vmm *vm, VmmRunState *state, char **err)
{
    return VMM_DISPATCH(query_status, state, err);
}

int vmm_suspend(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque, char **err)
{
    if (!path || path[0] != '/')
        return vmm_error(err, -EINVAL, "VM %s: the suspend image path must be absolute",
                         vm->uuid);
    return VMM_DISPATCH(suspend, path, progress, opaque, err);
}

int vmm_save_state(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque, char **err)
{
    if (!path || path[0] != '/')
        return vmm_error(err, -EINVAL, "VM %s: the state image path must be absolute",
                         vm->uuid);
    return VMM_DISPATCH(save_state, path, progress, opaque, err);
}

int vmm_migrate(Vmm *vm, const char *uri, const VmmMigrateOptions *opts, VmmProgressFn progress,
                void *opaque, char **err)
{
    if (!uri || !(STRPREFIX(uri, "tcp:") || STRPREFIX(uri, "unix:")))
        return vmm_error(err, -EINVAL, "VM %s: migration URI must be tcp:HOST:PORT or "
                         "unix:PATH", vm->uuid);
    VmmMigrateOptions none = {0};
    return VMM_DISPATCH(migrate, uri, opts ? opts : &none, progress, opaque, err);
}

int vmm_wait_incoming(Vmm *vm, unsigned timeout_ms, char **err)
{
    return VMM_DISPATCH(wait_incoming, timeout_ms, err);
}

int vmm_dump_core(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque, char **err)
{
    if (!path || path[0] != '/')
        return vmm_error(err, -EINVAL, "VM %s: the core dump path must be absolute", vm->uuid);
    return VMM_DISPATCH(dump_core, path, progress, opaque, err);
}

int vmm_disk_attach(Vmm *vm, const VmmDisk *disk, char **err)
{
    return VMM_DISPATCH(disk_attach, disk, err);
}

int vmm_disk_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err)
{
    return VMM_DISPATCH(disk_detach, position, timeout_ms ? timeout_ms : 10000, err);
}

int vmm_cd_insert(Vmm *vm, unsigned position, const char *path, char **err)
{
    if (!path || !*path)
        return vmm_error(err, -EINVAL, "VM %s: no ISO given to insert", vm->uuid);
    return VMM_DISPATCH(cd_insert, position, path, err);
}

int vmm_cd_eject(Vmm *vm, unsigned position, char **err)
{
    return VMM_DISPATCH(cd_eject, position, err);
}

int vmm_nic_attach(Vmm *vm, const VmmNic *nic, char **err)
{
    return VMM_DISPATCH(nic_attach, nic, err);
}

int vmm_nic_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err)
{
    return VMM_DISPATCH(nic_detach, position, timeout_ms ? timeout_ms : 10000, err);
}

int vmm_set_vcpus(Vmm *vm, unsigned count, unsigned timeout_ms, char **err)
{
    return VMM_DISPATCH(set_vcpus, count, timeout_ms ? timeout_ms : 10000, err);
}

int vmm_get_vcpus(Vmm *vm, unsigned *count, char **err)
{
    return VMM_DISPATCH(get_vcpus, count, err);
}

int vmm_set_memory_target(Vmm *vm, uint64_t target_mib, char **err)
{
    return VMM_DISPATCH(set_memory_target, target_mib, err);
}

int vmm_get_memory_actual(Vmm *vm, uint64_t *bytes, char **err)
{
    return VMM_DISPATCH(get_memory_actual, bytes, err);
}

int vmm_query_disks(Vmm *vm, VmmBlockInfo **info, size_t *n, char **err)
{
    return VMM_DISPATCH(query_disks, info, n, err);
}

void vmm_block_info_free(VmmBlockInfo *info, size_t n)
{
    if (!info)
        return;
    for (size_t i = 0; i < n; i++) {
        free(info[i].device);
        for (size_t k = 0; k < info[i].chain_len; k++) {
            free(info[i].chain[k].filename);
            free(info[i].chain[k].format);
            free(info[i].chain[k].node_name);
        }
        free(info[i].chain);
    }
    free(info);
}

int vmm_snapshot_disks(Vmm *vm, const VmmSnapshotDisk *disks, size_t n, char **err)
{
    if (n == 0 || n > VMM_MAX_DISKS)
        return vmm_error(err, -EINVAL, "VM %s: snapshot of %zu disks", vm->uuid, n);
    for (size_t i = 0; i < n; i++)
        if (!disks[i].overlay || disks[i].overlay[0] != '/')
            return vmm_error(err, -EINVAL, "VM %s: snapshot overlay paths must be absolute",
                             vm->uuid);
    return VMM_DISPATCH(snapshot_disks, disks, n, err);
}

static bool vmm_job_id_valid(const char *id)
{
    if (!id || !*id || strlen(id) > 64)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return (id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z');
}

int vmm_job_commit(Vmm *vm, unsigned position, const char *top, const char *base,
                   const char *job_id, char **err)
{
    if (!vmm_job_id_valid(job_id))
        return vmm_error(err, -EINVAL, "VM %s: job id must start with a letter and use letters, "
                         "digits, '-', '_', '.'", vm->uuid);
    return VMM_DISPATCH(job_commit, position, top, base, job_id, err);
}

int vmm_job_commit_layer(Vmm *vm, unsigned position, unsigned top_depth, const char *backing_file,
                         const char *job_id, char **err)
{
    if (!job_id || !*job_id)
        return vmm_error(err, -EINVAL, "VM %s: a block job needs an id", vm->uuid);
    if (top_depth == 0 && backing_file)
        return vmm_error(err, -EINVAL, "VM %s: committing the active layer rewrites no backing "
                         "file", vm->uuid);
    return VMM_DISPATCH(job_commit_layer, position, top_depth, backing_file, job_id, err);
}

int vmm_job_stream(Vmm *vm, unsigned position, const char *base, const char *job_id, char **err)
{
    if (!vmm_job_id_valid(job_id))
        return vmm_error(err, -EINVAL, "VM %s: job id must start with a letter and use letters, "
                         "digits, '-', '_', '.'", vm->uuid);
    return VMM_DISPATCH(job_stream, position, base, job_id, err);
}

int vmm_job_query(Vmm *vm, const char *job_id, VmmJobInfo *info, char **err)
{
    return VMM_DISPATCH(job_query, job_id, info, err);
}

void vmm_job_info_release(VmmJobInfo *info)
{
    free(info->id);
    free(info->status);
    free(info->error);
    memset(info, 0, sizeof(*info));
}

int vmm_job_complete(Vmm *vm, const char *job_id, char **err)
{
    return VMM_DISPATCH(job_complete, job_id, err);
}

int vmm_job_cancel(Vmm *vm, const char *job_id, char **err)
{
    return VMM_DISPATCH(job_cancel, job_id, err);
}

int vmm_job_wait(Vmm *vm, const char *job_id, bool complete_ready, unsigned timeout_ms,
                 VmmProgressFn progress, void *opaque, char **err)
{
    int64_t deadline = timeout_ms ? vmm_now_ms() + timeout_ms : INT64_MAX;
    bool completing = false;
    for (;;) {
        VmmJobInfo info;
        int r = vmm_job_query(vm, job_id, &info, err);
        if (r < 0)
            return r;
        if (progress)
            progress(info.offset, info.len, opaque);
        bool concluded = STREQ(info.status, "concluded") || STREQ(info.status, "null");
        if (concluded) {
            r = 0;
            if (info.error)
                r = vmm_error(err, -EIO, "VM %s: block job %s failed: %s", vm->uuid, job_id,
                              info.error);
            vmm_job_info_release(&info);
            /* jobs are started with auto-dismiss off so that their error can be read */
            char *e2 = NULL;
            if (vm->ops->job_dismiss)
                vm->ops->job_dismiss(vm, job_id, &e2);
            free(e2);
            if (vm->ops->refresh)
                vm->ops->refresh(vm);
            return r;
        }
        if (info.ready && complete_ready && !completing) {
            r = vmm_job_complete(vm, job_id, err);
            if (r < 0) {
                vmm_job_info_release(&info);
                return r;
            }
            completing = true;
        }
        vmm_job_info_release(&info);
        if (vmm_now_ms() >= deadline)
            return vmm_error(err, -ETIMEDOUT, "VM %s: block job %s did not finish within %u ms",
                             vm->uuid, job_id, timeout_ms);
        vmm_sleep_ms(100);
    }
}

int vmm_vnc_address(Vmm *vm, char **addr, char **err)
{
    return VMM_DISPATCH(vnc_address, addr, err);
}

int vmm_qmp(Vmm *vm, const char *command, struct json_object *args, unsigned timeout_ms,
            struct json_object **ret, char **err)
{
    return VMM_DISPATCH(qmp, command, args, timeout_ms ? timeout_ms : 10000, ret, err);
}

int vmm_sim_inject(Vmm *vm, const char *what, char **err)
{
    return VMM_DISPATCH(sim_inject, what, err);
}
