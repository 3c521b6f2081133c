/*
 * The simulated backend: the same interface as the QEMU backend, backed by a
 * state machine and a few files, so that the layers above can be tested in
 * milliseconds without QEMU. It validates like the real one (same config
 * checks, same missing-file errors, same refusals such as IDE hot-plug),
 * delivers the same events in the same order on the watcher thread, and keeps
 * its state in <vm dir>/sim.json so that a restarted daemon can attach again.
 * It never starts a process; vmm_sim_inject() plays the guest's part.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmm/qmp_cmd.h"
#include "vmm/vmm_internal.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

#define SIM_MAX_CHAIN 32
#define SIM_MAX_JOBS 8

typedef struct SimChain {
    unsigned position;
    char *files[SIM_MAX_CHAIN]; /* files[0] is the active layer */
    size_t len;
} SimChain;

typedef struct SimJob {
    char *id;
    VmmJobType type;
    unsigned position;
    size_t top, base; /* chain indexes (commit: merge top..base-1 into base) */
    char *status;
    bool active;
} SimJob;

typedef struct SimVm {
    /* all under vm->lock */
    bool running; /* "the process" exists */
    SimChain chains[VMM_MAX_DISKS];
    SimJob jobs[SIM_MAX_JOBS];
    unsigned vcpus;
    uint64_t memory_actual;
} SimVm;

static SimVm *svm(Vmm *vm)
{
    return vm->priv;
}

/* ---- persistence ------------------------------------------------------------- */

static void sim_save_locked(Vmm *vm)
{
    SimVm *s = svm(vm);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "running", json_object_new_boolean(s->running));
    json_object_object_add(o, "state", json_object_new_string(vmm_run_state_to_string(vm->state)));
    json_object_object_add(o, "vcpus", json_object_new_int64(s->vcpus));
    json_object_object_add(o, "memory_actual", json_object_new_int64((int64_t)s->memory_actual));
    struct json_object *chains = json_object_new_object();
    for (unsigned p = 0; p < VMM_MAX_DISKS; p++) {
        if (!s->chains[p].len)
            continue;
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; i < s->chains[p].len; i++)
            json_object_array_add(a, json_object_new_string(s->chains[p].files[i]));
        char key[8];
        snprintf(key, sizeof(key), "%u", p);
        json_object_object_add(chains, key, a);
    }
    json_object_object_add(o, "chains", chains);
    _cleanup_free_ char *path = xasprintf("%s/sim.json", vm->dir);
    const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    vmm_write_file_atomic(path, txt, strlen(txt), 0600);
    json_object_put(o);
    vmm_save_config_locked(vm);
}

static struct json_object *sim_load(const char *dir)
{
    _cleanup_free_ char *path = xasprintf("%s/sim.json", dir);
    _cleanup_free_ char *buf = NULL;
    ssize_t n = vmm_read_file(path, 1024 * 1024, false, &buf);
    const char *why;
    return n > 0 ? vmm_json_parse(buf, (size_t)n, 32, &why) : NULL;
}

bool vmm_sim_is_running(const char *dir)
{
    struct json_object *o = sim_load(dir);
    bool running = false;
    qmp_cmd_get_bool(o, "running", &running);
    json_object_put(o);
    return running;
}

static void sim_console(Vmm *vm, const char *fmt, ...) HX_PRINTF(2, 3);
static void sim_console(Vmm *vm, const char *fmt, ...)
{
    _cleanup_free_ char *path = xasprintf("%s/console.log", vm->dir);
    FILE *f = fopen(path, "ae");
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

/* ---- events ------------------------------------------------------------------ */

static void sim_event(Vmm *vm, VmmEventType type, bool guest, const char *reason)
{
    VmmEvent ev = {.type = type, .name = vmm_event_type_to_string(type), .guest = guest,
                   .reason = reason, .exit_code = -1};
    vmm_event_post(vm, &ev);
}

static void sim_state(Vmm *vm, VmmRunState st)
{
    pthread_mutex_lock(&vm->lock);
    vm->state = st;
    sim_save_locked(vm);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

/* The simulated QEMU process ends. */
static void sim_exit(Vmm *vm, int code, int sig)
{
    SimVm *s = svm(vm);
    pthread_mutex_lock(&vm->lock);
    bool was = s->running;
    s->running = false;
    vm->state = VMM_RUN_STATE_DEAD;
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    if (!was)
        return;
    vmm_mark_exited(vm, code, sig);
    _cleanup_free_ char *why = sig ? xasprintf("QEMU was killed by signal %d (%s)", sig,
                                               strsignal(sig))
                                   : xasprintf("QEMU exited with status %d", code);
    VmmEvent ev = {.type = VMM_EVENT_EXITED, .name = "EXITED", .reason = why,
                   .exit_code = code, .exit_signal = sig};
    vmm_event_post(vm, &ev);
}

static int sim_alive(Vmm *vm, char **err)
{
    pthread_mutex_lock(&vm->lock);
    bool running = svm(vm)->running;
    pthread_mutex_unlock(&vm->lock);
    return running ? 0 : vmm_error(err, -ESRCH, "VM %s is not running (its QEMU process is "
                                   "gone)", vm->uuid);
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void sim_init_chains(Vmm *vm)
{
    SimVm *s = svm(vm);
    for (size_t i = 0; i < vm->cfg.n_disks; i++) {
        const VmmDisk *d = &vm->cfg.disks[i];
        SimChain *c = &s->chains[d->position];
        c->position = d->position;
        if (d->type == VMM_DISK_TYPE_DISK && d->path) {
            c->files[0] = xstrdup(d->path);
            c->len = 1;
        }
    }
}

static int sim_start(Vmm *vm, char **err)
{
    SimVm *s = xnew0(SimVm, 1);
    vm->priv = s;
    if (vmm_sim_is_running(vm->dir))
        return vmm_error(err, -EEXIST, "VM %s is already running (simulated)", vm->uuid);
    int r = vmm_preflight(&vm->cfg, err);
    if (r < 0)
        return r;
    if (vm->cfg.incoming == VMM_INCOMING_FILE) {
        struct json_object *img = NULL;
        _cleanup_free_ char *buf = NULL;
        ssize_t n = vmm_read_file(vm->cfg.incoming_path, 65536, false, &buf);
        const char *why;
        /* A suspend VDI read back is padded with zeros; QEMU ignores what follows the
         * stream, and so does the simulator. */
        img = n > 0 ? vmm_json_parse(buf, strnlen(buf, (size_t)n), 8, &why) : NULL;
        /* Any VM's image loads, as with QEMU: a copy of a suspended VM
         * (an XVA import) resumes under its own UUID. */
        const char *owner = qmp_cmd_get_str(img, "hx-sim-suspend");
        bool ok = owner && owner[0];
        json_object_put(img);
        if (!ok)
            return vmm_error(err, -EIO, "loading the suspend image %s failed: not a suspend "
                             "image", vm->cfg.incoming_path);
    }
    if (vm->cfg.incoming != VMM_INCOMING_FILE) {
        _cleanup_free_ char *log = xasprintf("%s/console.log", vm->dir);
        _cleanup_free_ char *old = xasprintf("%s/console.log.old", vm->dir);
        rename(log, old);
    }
    pthread_mutex_lock(&vm->lock);
    s->running = true;
    s->vcpus = vm->cfg.vcpus;
    uint64_t target = vm->cfg.memory_target_mib ? vm->cfg.memory_target_mib : vm->cfg.memory_mib;
    s->memory_actual = target * MiB;
    sim_init_chains(vm);
    vm->pid = 0;
    vm->state = vm->cfg.incoming == VMM_INCOMING_URI ? VMM_RUN_STATE_INMIGRATE
                : vm->cfg.start_paused                ? VMM_RUN_STATE_PAUSED
                                                      : VMM_RUN_STATE_RUNNING;
    sim_save_locked(vm);
    VmmRunState st = vm->state;
    pthread_mutex_unlock(&vm->lock);
    if (vm->cfg.incoming == VMM_INCOMING_URI) {
        /* the source's migrate() completes it at once */
        vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_MIGRATION, .name = "MIGRATION",
                                       .status = "completed", .exit_code = -1});
        sim_state(vm, vm->cfg.start_paused ? VMM_RUN_STATE_PAUSED : VMM_RUN_STATE_RUNNING);
        st = vm->state;
    }
    if (st == VMM_RUN_STATE_RUNNING) {
        sim_console(vm, "hyperxe simulated VM %s (%s) booted", vm->uuid,
                    vm->cfg.name ? vm->cfg.name : "");
        if (vm->cfg.boot_marker)
            sim_console(vm, "%s", vm->cfg.boot_marker);
        sim_event(vm, VMM_EVENT_BOOTED, false, NULL);
    }
    return 0;
}

static int sim_attach(Vmm *vm, char **err)
{
    SimVm *s = xnew0(SimVm, 1);
    vm->priv = s;
    struct json_object *o = sim_load(vm->dir);
    bool running = false;
    qmp_cmd_get_bool(o, "running", &running);
    if (!running) {
        json_object_put(o);
        return vmm_error(err, -ESRCH, "VM %s is not running (simulated)", vm->uuid);
    }
    _cleanup_free_ char *cfg_path = xasprintf("%s/config.json", vm->dir);
    _cleanup_free_ char *buf = NULL;
    ssize_t n = vmm_read_file(cfg_path, 4 * 1024 * 1024, false, &buf);
    const char *why;
    struct json_object *j = n > 0 ? vmm_json_parse(buf, (size_t)n, 64, &why) : NULL;
    int r = vmm_config_from_json(j, &vm->cfg, err);
    json_object_put(j);
    if (r < 0) {
        json_object_put(o);
        return r;
    }
    const char *st = qmp_cmd_get_str(o, "state");
    int sti = st ? vmm_run_state_from_string(st) : -1;
    int64_t v;
    s->running = true;
    s->vcpus = qmp_cmd_get_int(o, "vcpus", &v) && v > 0 && v <= VMM_MAX_VCPUS ? (unsigned)v
                                                                              : vm->cfg.vcpus;
    s->memory_actual = qmp_cmd_get_int(o, "memory_actual", &v) && v > 0 ? (uint64_t)v
                                                                         : vm->cfg.memory_mib * MiB;
    struct json_object *chains = qmp_cmd_get_obj(o, "chains");
    if (chains) {
        json_object_object_foreach(chains, key, val)
        {
            unsigned p = (unsigned)atoi(key);
            if (p >= VMM_MAX_DISKS || !json_object_is_type(val, json_type_array))
                continue;
            SimChain *c = &s->chains[p];
            c->position = p;
            for (size_t i = 0; i < json_object_array_length(val) && c->len < SIM_MAX_CHAIN; i++) {
                struct json_object *f = json_object_array_get_idx(val, i);
                if (json_object_is_type(f, json_type_string))
                    c->files[c->len++] = xstrdup(json_object_get_string(f));
            }
        }
    }
    json_object_put(o);
    vm->state = sti >= 0 ? (VmmRunState)sti : VMM_RUN_STATE_RUNNING;
    return 0;
}

static void sim_free_priv(Vmm *vm)
{
    SimVm *s = svm(vm);
    if (!s)
        return;
    for (unsigned p = 0; p < VMM_MAX_DISKS; p++)
        for (size_t i = 0; i < s->chains[p].len; i++)
            free(s->chains[p].files[i]);
    for (int j = 0; j < SIM_MAX_JOBS; j++) {
        free(s->jobs[j].id);
        free(s->jobs[j].status);
    }
    free(s);
    vm->priv = NULL;
}

/* ---- power ------------------------------------------------------------------- */

static void sim_guest_poweroff(Vmm *vm, const char *reason)
{
    sim_event(vm, VMM_EVENT_SHUTDOWN, true, reason);
    if (vm->cfg.keep_on_shutdown) {
        sim_event(vm, VMM_EVENT_STOP, false, NULL);
        sim_state(vm, VMM_RUN_STATE_SHUTDOWN);
    } else {
        sim_exit(vm, 0, 0);
    }
}

static int sim_powerdown(Vmm *vm, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    if (!vm->cfg.acpi)
        return vmm_error(err, -ENOTSUP, "VM %s has ACPI off, so it has no power button; use a "
                         "hard shutdown", vm->uuid);
    sim_event(vm, VMM_EVENT_POWERDOWN, false, NULL);
    if (vmm_last_state(vm) == VMM_RUN_STATE_RUNNING) /* a paused guest cannot react */
        sim_guest_poweroff(vm, "guest-shutdown");
    return 0;
}

static int sim_reset(Vmm *vm, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    sim_event(vm, VMM_EVENT_RESET, false, "host-qmp-system-reset");
    sim_console(vm, "hyperxe simulated VM %s reset", vm->uuid);
    return 0;
}

static int sim_pause(Vmm *vm, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    if (vmm_last_state(vm) == VMM_RUN_STATE_RUNNING)
        sim_event(vm, VMM_EVENT_STOP, false, NULL);
    sim_state(vm, VMM_RUN_STATE_PAUSED);
    return 0;
}

static int sim_unpause(Vmm *vm, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    VmmRunState st = vmm_last_state(vm);
    if (st == VMM_RUN_STATE_INTERNAL_ERROR || st == VMM_RUN_STATE_SHUTDOWN ||
        st == VMM_RUN_STATE_INMIGRATE)
        return vmm_error(err, -EIO, "QEMU refused cont: the guest cannot run in state %s",
                         vmm_run_state_to_string(st));
    if (st != VMM_RUN_STATE_RUNNING)
        sim_event(vm, VMM_EVENT_RESUME, false, NULL);
    sim_state(vm, VMM_RUN_STATE_RUNNING);
    return 0;
}

static int sim_destroy(Vmm *vm, unsigned timeout_ms, char **err)
{
    if (sim_alive(vm, NULL) < 0)
        return 0;
    sim_event(vm, VMM_EVENT_SHUTDOWN, false, "host-qmp-quit");
    sim_exit(vm, 0, 0);
    return 0;
}

static int sim_query_status(Vmm *vm, VmmRunState *state, char **err)
{
    int r = sim_alive(vm, err);
    *state = vmm_last_state(vm);
    return r;
}

/* ---- save, migrate, dump ----------------------------------------------------- */

static int sim_suspend(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                       char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    VmmRunState st = vmm_last_state(vm);
    if (st != VMM_RUN_STATE_RUNNING && st != VMM_RUN_STATE_PAUSED)
        return vmm_error(err, -EBUSY, "VM %s cannot be suspended in state %s", vm->uuid,
                         vmm_run_state_to_string(st));
    if (st == VMM_RUN_STATE_RUNNING)
        sim_event(vm, VMM_EVENT_STOP, false, NULL);
    _cleanup_free_ char *img = xasprintf("{\"hx-sim-suspend\": \"%s\"}\n", vm->uuid);
    r = vmm_write_file_atomic(path, img, strlen(img), 0600);
    if (r < 0) {
        if (st == VMM_RUN_STATE_RUNNING)
            sim_event(vm, VMM_EVENT_RESUME, false, NULL);
        return vmm_error(err, r, "cannot create suspend image %s: %s", path, strerror(-r));
    }
    uint64_t total = vm->cfg.memory_mib * MiB;
    if (progress) {
        progress(total / 2, total, opaque);
        progress(total, total, opaque);
    }
    sim_event(vm, VMM_EVENT_SHUTDOWN, false, "host-qmp-quit");
    sim_exit(vm, 0, 0);
    return 0;
}

static int sim_save_state(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                          char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    VmmRunState st = vmm_last_state(vm);
    if (st != VMM_RUN_STATE_PAUSED)
        return vmm_error(err, -EBUSY, "VM %s: its state can be saved only while it is paused "
                         "(state %s)", vm->uuid, vmm_run_state_to_string(st));
    _cleanup_free_ char *img = xasprintf("{\"hx-sim-suspend\": \"%s\"}\n", vm->uuid);
    r = vmm_write_file_atomic(path, img, strlen(img), 0600);
    if (r < 0)
        return vmm_error(err, r, "cannot create state image %s: %s", path, strerror(-r));
    uint64_t total = vm->cfg.memory_mib * MiB;
    if (progress)
        progress(total, total, opaque);
    return 0;
}

static int sim_migrate(Vmm *vm, const char *uri, const VmmMigrateOptions *opts,
                       VmmProgressFn progress, void *opaque, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    static const char *const steps[] = {"setup", "active", "completed"};
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++)
        vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_MIGRATION, .name = "MIGRATION",
                                       .status = steps[i], .exit_code = -1});
    uint64_t total = vm->cfg.memory_mib * MiB;
    if (progress)
        progress(total, total, opaque);
    if (vmm_last_state(vm) == VMM_RUN_STATE_RUNNING)
        sim_event(vm, VMM_EVENT_STOP, false, NULL);
    sim_state(vm, VMM_RUN_STATE_POSTMIGRATE);
    return 0;
}

static int sim_wait_incoming(Vmm *vm, unsigned timeout_ms, char **err)
{
    return sim_alive(vm, err);
}

static int sim_dump_core(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                         char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    static const char core[] = "\177ELF hyperxe simulated core\n";
    r = vmm_write_file_atomic(path, core, sizeof(core) - 1, 0600);
    if (r < 0)
        return vmm_error(err, r, "VM %s: writing the core dump %s failed: %s", vm->uuid, path,
                         strerror(-r));
    if (progress)
        progress(sizeof(core) - 1, sizeof(core) - 1, opaque);
    vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_DUMP_COMPLETED, .name = "DUMP_COMPLETED",
                                   .status = "completed", .exit_code = -1});
    return 0;
}

/* ---- devices ------------------------------------------------------------------- */

static int sim_validate_with(Vmm *vm, const VmmDisk *disk, const VmmNic *nic, char **err)
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

static int sim_disk_attach(Vmm *vm, const VmmDisk *disk, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    if (vm->cfg.machine == VMM_MACHINE_Q35)
        return vmm_error(err, -ENOTSUP, "VM %s: hot-plug is supported on machine pc only",
                         vm->uuid);
    if (disk->bus == VMM_BUS_IDE)
        return vmm_error(err, -ENOTSUP, "VM %s: IDE disks cannot be hot-plugged; use virtio or "
                         "scsi, or attach it while the VM is halted", vm->uuid);
    pthread_mutex_lock(&vm->lock);
    bool taken = vmm_cfg_disk(vm, disk->position) != NULL;
    pthread_mutex_unlock(&vm->lock);
    if (taken)
        return vmm_error(err, -EEXIST, "VM %s already has a disk at position %u", vm->uuid,
                         disk->position);
    if ((r = sim_validate_with(vm, disk, NULL, err)) < 0)
        return r;
    if (disk->path) {
        char what[48];
        snprintf(what, sizeof(what), "disk image (position %u)", disk->position);
        bool cd = disk->type == VMM_DISK_TYPE_CDROM;
        if ((r = vmm_check_file(vm->uuid, what, disk->path, !cd && !disk->read_only, err)))
            return r;
    }
    pthread_mutex_lock(&vm->lock);
    vmm_disk_copy(vmm_config_add_disk(&vm->cfg, 0, 0, 0, NULL, 0), disk);
    SimChain *c = &svm(vm)->chains[disk->position];
    c->position = disk->position;
    if (disk->type == VMM_DISK_TYPE_DISK && disk->path) {
        c->files[0] = xstrdup(disk->path);
        c->len = 1;
    }
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static void sim_chain_clear(SimChain *c)
{
    for (size_t i = 0; i < c->len; i++)
        free(c->files[i]);
    c->len = 0;
}

static int sim_disk_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
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
    char id[16];
    snprintf(id, sizeof(id), "disk%u", position);
    vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_DEVICE_DELETED, .name = "DEVICE_DELETED",
                                   .device = id, .exit_code = -1});
    pthread_mutex_lock(&vm->lock);
    vmm_cfg_remove_disk(vm, position);
    sim_chain_clear(&svm(vm)->chains[position]);
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static int sim_cd_change(Vmm *vm, unsigned position, const char *path, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
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
    if (path && (r = vmm_check_file(vm->uuid, "CD image", path, false, err)) < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    d = vmm_cfg_disk(vm, position);
    free(d->path);
    d->path = xstrdup_or_null(path);
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static int sim_cd_insert(Vmm *vm, unsigned position, const char *path, char **err)
{
    return sim_cd_change(vm, position, path, err);
}

static int sim_cd_eject(Vmm *vm, unsigned position, char **err)
{
    return sim_cd_change(vm, position, NULL, err);
}

static int sim_nic_attach(Vmm *vm, const VmmNic *nic, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
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
    if ((r = sim_validate_with(vm, NULL, nic, err)) < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    vmm_nic_copy(vmm_config_add_nic(&vm->cfg, 0, NULL, 0), nic);
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static int sim_nic_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    bool present = vmm_cfg_nic(vm, position) != NULL;
    pthread_mutex_unlock(&vm->lock);
    if (!present)
        return vmm_error(err, -ENODEV, "VM %s has no NIC at position %u", vm->uuid, position);
    char id[16];
    snprintf(id, sizeof(id), "nic%u", position);
    vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_DEVICE_DELETED, .name = "DEVICE_DELETED",
                                   .device = id, .exit_code = -1});
    pthread_mutex_lock(&vm->lock);
    vmm_cfg_remove_nic(vm, position);
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static int sim_set_vcpus(Vmm *vm, unsigned count, unsigned timeout_ms, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    unsigned maxc = vm->cfg.vcpus_max ? vm->cfg.vcpus_max : vm->cfg.vcpus;
    if (count < 1 || count > maxc)
        return vmm_error(err, -EINVAL, "VM %s: %u vCPUs requested; allowed 1..%u (VCPUs-max)",
                         vm->uuid, count, maxc);
    pthread_mutex_lock(&vm->lock);
    SimVm *s = svm(vm);
    unsigned before = s->vcpus;
    s->vcpus = count;
    vm->cfg.vcpus = count;
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    /* events are posted without the lock: posting takes it */
    for (unsigned c = before; c > count; c--) {
        char id[16];
        snprintf(id, sizeof(id), "cpu%u", c - 1);
        vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_DEVICE_DELETED,
                                       .name = "DEVICE_DELETED", .device = id, .exit_code = -1});
    }
    return 0;
}

static int sim_get_vcpus(Vmm *vm, unsigned *count, char **err)
{
    int r = sim_alive(vm, err);
    pthread_mutex_lock(&vm->lock);
    *count = svm(vm)->vcpus;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

static int sim_set_memory_target(Vmm *vm, uint64_t target_mib, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    if (!vm->cfg.balloon)
        return vmm_error(err, -ENOTSUP, "VM %s has no balloon device", vm->uuid);
    if (target_mib < 16 || target_mib > vm->cfg.memory_mib)
        return vmm_error(err, -EINVAL, "VM %s: memory target %llu MiB; allowed 16..%llu MiB",
                         vm->uuid, (unsigned long long)target_mib,
                         (unsigned long long)vm->cfg.memory_mib);
    pthread_mutex_lock(&vm->lock);
    svm(vm)->memory_actual = target_mib * MiB;
    vm->cfg.memory_target_mib = target_mib;
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_BALLOON_CHANGE, .name = "BALLOON_CHANGE",
                                   .offset = (int64_t)(target_mib * MiB), .exit_code = -1});
    return 0;
}

static int sim_get_memory_actual(Vmm *vm, uint64_t *bytes, char **err)
{
    int r = sim_alive(vm, err);
    pthread_mutex_lock(&vm->lock);
    *bytes = svm(vm)->memory_actual;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* ---- block ----------------------------------------------------------------------- */

static int sim_query_disks(Vmm *vm, VmmBlockInfo **info, size_t *n, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    SimVm *s = svm(vm);
    VmmBlockInfo *out = xnew0(VmmBlockInfo, vm->cfg.n_disks ? vm->cfg.n_disks : 1);
    size_t k = 0;
    for (unsigned p = 0; p < VMM_MAX_DISKS; p++) {
        VmmDisk *d = vmm_cfg_disk(vm, p);
        if (!d)
            continue;
        VmmBlockInfo *bi = &out[k++];
        bi->device = xasprintf("disk%u", p);
        bi->position = p;
        bi->removable = d->type == VMM_DISK_TYPE_CDROM;
        bi->read_only = d->read_only || bi->removable;
        bi->tray_open = bi->removable && !d->path;
        if (bi->removable) {
            if (d->path) {
                bi->chain = xnew0(VmmBlockImage, 1);
                bi->chain[0].filename = xstrdup(d->path);
                bi->chain[0].format = xstrdup("raw");
                bi->chain_len = 1;
            }
            continue;
        }
        SimChain *c = &s->chains[p];
        bi->chain = xnew0(VmmBlockImage, c->len ? c->len : 1);
        for (size_t i = 0; i < c->len; i++) {
            bi->chain[i].filename = xstrdup(c->files[i]);
            bi->chain[i].format = xstrdup(i == 0 ? vmm_disk_format_to_string(d->format)
                                                 : "qcow2");
            if (i == 0)
                bi->chain[i].node_name = xasprintf("disk%u-fmt", p);
        }
        bi->chain_len = c->len;
    }
    pthread_mutex_unlock(&vm->lock);
    *info = out;
    *n = k;
    return 0;
}

static int sim_snapshot_disks(Vmm *vm, const VmmSnapshotDisk *disks, size_t n, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&vm->lock);
        VmmDisk *d = vmm_cfg_disk(vm, disks[i].position);
        bool ok = d && d->type == VMM_DISK_TYPE_DISK && !d->read_only &&
                  svm(vm)->chains[disks[i].position].len < SIM_MAX_CHAIN;
        pthread_mutex_unlock(&vm->lock);
        if (!ok)
            return vmm_error(err, -ENODEV, "VM %s has no writable disk at position %u to "
                             "snapshot", vm->uuid, disks[i].position);
        if (disks[i].create && vmm_file_exists(disks[i].overlay))
            return vmm_error(err, -EEXIST, "VM %s: snapshot overlay %s already exists",
                             vm->uuid, disks[i].overlay);
        if (!disks[i].create &&
            (r = vmm_check_file(vm->uuid, "snapshot overlay", disks[i].overlay, true, err)) < 0)
            return r;
    }
    pthread_mutex_lock(&vm->lock);
    for (size_t i = 0; i < n; i++) {
        SimChain *c = &svm(vm)->chains[disks[i].position];
        memmove(&c->files[1], &c->files[0], c->len * sizeof(char *));
        c->files[0] = xstrdup(disks[i].overlay);
        c->len++;
        if (disks[i].create) {
            /* a stand-in overlay: the simulated guest never writes */
            vmm_write_file_atomic(disks[i].overlay, "", 0, 0600);
        }
        VmmDisk *d = vmm_cfg_disk(vm, disks[i].position);
        free(d->path);
        d->path = xstrdup(disks[i].overlay);
        d->format = VMM_DISK_FORMAT_QCOW2;
    }
    sim_save_locked(vm);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

static SimJob *sim_job_find(SimVm *s, const char *id)
{
    for (int j = 0; j < SIM_MAX_JOBS; j++)
        if (s->jobs[j].id && STREQ(s->jobs[j].id, id))
            return &s->jobs[j];
    return NULL;
}

/* Applies a finished job to the chain (lock held). */
static void sim_job_apply(Vmm *vm, SimJob *job)
{
    SimChain *c = &svm(vm)->chains[job->position];
    if (job->type == VMM_JOB_COMMIT) {
        /* drop layers top..base-1: their data is now in base */
        size_t drop = job->base - job->top;
        for (size_t i = job->top; i < job->base; i++)
            free(c->files[i]);
        memmove(&c->files[job->top], &c->files[job->base],
                (c->len - job->base) * sizeof(char *));
        c->len -= drop;
    } else {
        /* stream: layers 1..base-1 are pulled into the active one */
        size_t drop = job->base - 1;
        for (size_t i = 1; i < job->base; i++)
            free(c->files[i]);
        memmove(&c->files[1], &c->files[job->base], (c->len - job->base) * sizeof(char *));
        c->len -= drop;
    }
    VmmDisk *d = vmm_cfg_disk(vm, job->position);
    if (d && c->len) {
        free(d->path);
        d->path = xstrdup(c->files[0]);
    }
    free(job->status);
    job->status = xstrdup("concluded");
    sim_save_locked(vm);
}

/* layer >= 0: a commit of that layer of the chain (by place) into the one below. */
static int sim_job_start(Vmm *vm, VmmJobType type, unsigned position, const char *top,
                         const char *base, long layer, const char *job_id, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    SimVm *s = svm(vm);
    SimChain *c = position < VMM_MAX_DISKS ? &s->chains[position] : NULL;
    SimJob *slot = NULL;
    for (int j = 0; j < SIM_MAX_JOBS && !slot; j++)
        if (!s->jobs[j].id)
            slot = &s->jobs[j];
    size_t ti = 0, bi = 0;
    if (!c || !c->len) {
        r = vmm_error(err, -ENODEV, "VM %s has no disk with an image at position %u", vm->uuid,
                      position);
    } else if (sim_job_find(s, job_id)) {
        r = vmm_error(err, -EIO, "QEMU refused block job: job ID '%s' already in use", job_id);
    } else if (!slot) {
        r = vmm_error(err, -EBUSY, "VM %s: too many block jobs", vm->uuid);
    } else {
        if (top) {
            for (ti = 0; ti < c->len && !STREQ(c->files[ti], top); ti++) {
            }
        }
        if (layer >= 0) {
            ti = (size_t)layer;
            bi = ti + 1;
            if (bi >= c->len)
                r = vmm_error(err, -ENODEV, "VM %s: disk %u has no layer below layer %ld",
                              vm->uuid, position, layer);
            else if (bi == c->len - 1)
                r = vmm_error(err, -EBUSY, "VM %s: layer %zu of disk %u was not added by a "
                              "snapshot", vm->uuid, bi, position);
        } else if (type == VMM_JOB_STREAM) {
            ti = 0;
            bi = c->len;
            if (base)
                for (bi = 1; bi < c->len && !STREQ(c->files[bi], base); bi++) {
                }
        } else {
            bi = ti + 1;
            if (base)
                for (bi = ti + 1; bi < c->len && !STREQ(c->files[bi], base); bi++) {
                }
        }
        if (r == 0 && ti >= c->len)
            r = vmm_error(err, -ENOENT, "VM %s: %s is not in the chain of disk %u", vm->uuid,
                          top, position);
        else if (r == 0 && type == VMM_JOB_COMMIT && bi >= c->len)
            r = vmm_error(err, base ? -ENOENT : -EINVAL, "VM %s: disk %u has no backing file "
                          "to commit into", vm->uuid, position);
        else if (r == 0 && type == VMM_JOB_STREAM && base && bi >= c->len)
            r = vmm_error(err, -ENOENT, "VM %s: %s is not a backing file of disk %u", vm->uuid,
                          base, position);
    }
    if (r == 0) {
        slot->id = xstrdup(job_id);
        slot->type = type;
        slot->position = position;
        slot->top = ti;
        slot->base = bi;
        slot->active = type == VMM_JOB_COMMIT && ti == 0;
        slot->status = xstrdup(slot->active ? "ready" : "running");
        if (!slot->active)
            sim_job_apply(vm, slot);
    }
    pthread_mutex_unlock(&vm->lock);
    if (r == 0) {
        VmmEventType t = slot->active ? VMM_EVENT_BLOCK_JOB_READY : VMM_EVENT_BLOCK_JOB_COMPLETED;
        vmm_event_post(vm, &(VmmEvent){.type = t, .name = vmm_event_type_to_string(t),
                                       .device = job_id,
                                       .status = type == VMM_JOB_COMMIT ? "commit" : "stream",
                                       .exit_code = -1});
    }
    return r;
}

static int sim_job_commit(Vmm *vm, unsigned position, const char *top, const char *base,
                          const char *job_id, char **err)
{
    return sim_job_start(vm, VMM_JOB_COMMIT, position, top, base, -1, job_id, err);
}

static int sim_job_commit_layer(Vmm *vm, unsigned position, unsigned top_depth,
                                const char *backing_file, const char *job_id, char **err)
{
    return sim_job_start(vm, VMM_JOB_COMMIT, position, NULL, NULL, (long)top_depth, job_id, err);
}

static int sim_job_stream(Vmm *vm, unsigned position, const char *base, const char *job_id,
                          char **err)
{
    return sim_job_start(vm, VMM_JOB_STREAM, position, NULL, base, -1, job_id, err);
}

static int sim_job_query(Vmm *vm, const char *job_id, VmmJobInfo *info, char **err)
{
    pthread_mutex_lock(&vm->lock);
    SimJob *j = sim_job_find(svm(vm), job_id);
    if (j) {
        memset(info, 0, sizeof(*info));
        info->id = xstrdup(j->id);
        info->type = j->type;
        info->status = xstrdup(j->status);
        info->offset = info->len = 1;
        info->ready = STREQ(j->status, "ready");
    }
    pthread_mutex_unlock(&vm->lock);
    return j ? 0 : vmm_error(err, -ENOENT, "there is no block job %s", job_id);
}

static int sim_job_complete(Vmm *vm, const char *job_id, char **err)
{
    pthread_mutex_lock(&vm->lock);
    SimJob *j = sim_job_find(svm(vm), job_id);
    bool ok = j && STREQ(j->status, "ready");
    if (ok)
        sim_job_apply(vm, j);
    pthread_mutex_unlock(&vm->lock);
    if (!ok)
        return vmm_error(err, j ? -EBUSY : -ENOENT, "block job %s cannot be completed now",
                         job_id);
    vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_BLOCK_JOB_COMPLETED,
                                   .name = "BLOCK_JOB_COMPLETED", .device = job_id,
                                   .status = "commit", .exit_code = -1});
    return 0;
}

static int sim_job_cancel(Vmm *vm, const char *job_id, char **err)
{
    pthread_mutex_lock(&vm->lock);
    SimJob *j = sim_job_find(svm(vm), job_id);
    if (j) {
        free(j->status);
        j->status = xstrdup("concluded");
    }
    pthread_mutex_unlock(&vm->lock);
    if (!j)
        return vmm_error(err, -ENOENT, "there is no block job %s", job_id);
    vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_BLOCK_JOB_CANCELLED,
                                   .name = "BLOCK_JOB_CANCELLED", .device = job_id,
                                   .exit_code = -1});
    return 0;
}

static int sim_job_dismiss(Vmm *vm, const char *job_id, char **err)
{
    pthread_mutex_lock(&vm->lock);
    SimJob *j = sim_job_find(svm(vm), job_id);
    if (j) {
        free(j->id);
        free(j->status);
        memset(j, 0, sizeof(*j));
    }
    pthread_mutex_unlock(&vm->lock);
    return j ? 0 : vmm_error(err, -ENOENT, "there is no block job %s", job_id);
}

static int sim_vnc_address(Vmm *vm, char **addr, char **err)
{
    if (vm->cfg.vnc == VMM_VNC_NONE)
        return vmm_error(err, -ENOENT, "VM %s has no VNC console", vm->uuid);
    if (vm->cfg.vnc == VMM_VNC_UNIX)
        *addr = xasprintf("unix:%s/vnc.sock", vm->dir);
    else
        *addr = xasprintf("127.0.0.1:%d", 5900 + MAX(vm->cfg.vnc_display, 0));
    return 0;
}

/* ---- the guest's part ------------------------------------------------------------- */

static int sim_inject(Vmm *vm, const char *what, char **err)
{
    int r = sim_alive(vm, err);
    if (r < 0)
        return r;
    if (STREQ(what, "panic")) {
        if (!vm->cfg.pvpanic)
            return vmm_error(err, -ENOTSUP, "VM %s has no pvpanic device", vm->uuid);
        sim_event(vm, VMM_EVENT_GUEST_PANICKED, true, "pause");
        sim_event(vm, VMM_EVENT_STOP, false, NULL);
        sim_state(vm, VMM_RUN_STATE_GUEST_PANICKED);
    } else if (STREQ(what, "internal-error")) {
        sim_event(vm, VMM_EVENT_STOP, false, NULL);
        sim_state(vm, VMM_RUN_STATE_INTERNAL_ERROR);
        vmm_event_emit(vm, VMM_EVENT_STUCK,
                       "QEMU stopped the guest with an internal error (simulated)",
                       "internal-error");
    } else if (STREQ(what, "boot-timeout")) {
        vmm_event_emit(vm, VMM_EVENT_STUCK, "the guest showed no sign of an OS (simulated)",
                       vmm_run_state_to_string(vmm_last_state(vm)));
    } else if (STREQ(what, "poweroff")) {
        sim_guest_poweroff(vm, "guest-shutdown");
    } else if (STREQ(what, "reboot")) {
        if (vm->cfg.reboot_is_shutdown) {
            sim_guest_poweroff(vm, "guest-reset");
        } else {
            sim_event(vm, VMM_EVENT_RESET, true, "guest-reset");
            sim_event(vm, VMM_EVENT_BOOTED, false, NULL);
        }
    } else if (STREQ(what, "crash")) {
        sim_exit(vm, -1, 9);
    } else if (STRPREFIX(what, "rtc ")) {
        char *end;
        long long off = strtoll(what + 4, &end, 10);
        if (*end)
            return vmm_error(err, -EINVAL, "rtc wants a number of seconds");
        vmm_event_post(vm, &(VmmEvent){.type = VMM_EVENT_RTC_CHANGE, .name = "RTC_CHANGE",
                                       .offset = off, .exit_code = -1});
    } else {
        return vmm_error(err, -EINVAL, "unknown simulated guest action '%s'", what);
    }
    return 0;
}

const VmmOps vmm_sim_ops = {
    .start = sim_start,
    .attach = sim_attach,
    .free_priv = sim_free_priv,
    .powerdown = sim_powerdown,
    .reset = sim_reset,
    .pause = sim_pause,
    .unpause = sim_unpause,
    .destroy = sim_destroy,
    .query_status = sim_query_status,
    .suspend = sim_suspend,
    .save_state = sim_save_state,
    .migrate = sim_migrate,
    .wait_incoming = sim_wait_incoming,
    .dump_core = sim_dump_core,
    .disk_attach = sim_disk_attach,
    .disk_detach = sim_disk_detach,
    .cd_insert = sim_cd_insert,
    .cd_eject = sim_cd_eject,
    .nic_attach = sim_nic_attach,
    .nic_detach = sim_nic_detach,
    .set_vcpus = sim_set_vcpus,
    .get_vcpus = sim_get_vcpus,
    .set_memory_target = sim_set_memory_target,
    .get_memory_actual = sim_get_memory_actual,
    .query_disks = sim_query_disks,
    .snapshot_disks = sim_snapshot_disks,
    .job_commit = sim_job_commit,
    .job_commit_layer = sim_job_commit_layer,
    .job_stream = sim_job_stream,
    .job_query = sim_job_query,
    .job_complete = sim_job_complete,
    .job_cancel = sim_job_cancel,
    .job_dismiss = sim_job_dismiss,
    .vnc_address = sim_vnc_address,
    .sim_inject = sim_inject,
};
