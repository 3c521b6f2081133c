/*
 * What the backends (vmm_qemu.c, vmm_sim.c) share with the generic part
 * (vmm.c, vmm_event.c): the handle, the backend operation table and the
 * event queue. Not for use outside src/vmm.
 */
#ifndef HX_VMM_VMM_INTERNAL_H
#define HX_VMM_VMM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "vmm/vmm.h"

/* How often the watcher runs the backend's tick (health checks, boot detection). */
#define VMM_TICK_MS 250
/* Events queued for a slow callback beyond this are dropped (and counted in the log). */
#define VMM_EVENT_QUEUE_MAX 4096

typedef struct VmmEventItem VmmEventItem;

/* Internal notifications handled on the watcher thread (never shown to the caller). */
enum {
    VMM_INTERNAL_MONITOR_CLOSED = 1, /* QMP reader saw EOF */
    VMM_INTERNAL_STATUS_CHANGED,     /* poll query-status soon */
};

typedef struct VmmOps {
    /* vm has uuid, dirs, cfg; the backend fills vm->priv (and vm->pid). */
    int (*start)(Vmm *vm, char **err);
    int (*attach)(Vmm *vm, char **err); /* also loads vm->cfg */
    void (*shutdown)(Vmm *vm);          /* stop I/O: calls in flight fail fast; frees nothing */
    void (*free_priv)(Vmm *vm);         /* after the watcher stopped: join, close, free */
    void (*tick)(Vmm *vm);              /* watcher thread */
    void (*internal)(Vmm *vm, int code); /* watcher thread */
    void (*refresh)(Vmm *vm);            /* re-read disk chains into vm->cfg after a job */

    int (*powerdown)(Vmm *vm, char **err);
    int (*reset)(Vmm *vm, char **err);
    int (*pause)(Vmm *vm, char **err);
    int (*unpause)(Vmm *vm, char **err);
    int (*destroy)(Vmm *vm, unsigned timeout_ms, char **err);
    int (*query_status)(Vmm *vm, VmmRunState *state, char **err);
    int (*suspend)(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque, char **err);
    int (*save_state)(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                      char **err);
    int (*migrate)(Vmm *vm, const char *uri, const VmmMigrateOptions *opts,
                   VmmProgressFn progress, void *opaque, char **err);
    int (*wait_incoming)(Vmm *vm, unsigned timeout_ms, char **err);
    int (*dump_core)(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque,
                     char **err);
    int (*disk_attach)(Vmm *vm, const VmmDisk *disk, char **err);
    int (*disk_detach)(Vmm *vm, unsigned position, unsigned timeout_ms, char **err);
    int (*cd_insert)(Vmm *vm, unsigned position, const char *path, char **err);
    int (*cd_eject)(Vmm *vm, unsigned position, char **err);
    int (*nic_attach)(Vmm *vm, const VmmNic *nic, char **err);
    int (*nic_detach)(Vmm *vm, unsigned position, unsigned timeout_ms, char **err);
    int (*set_vcpus)(Vmm *vm, unsigned count, unsigned timeout_ms, char **err);
    int (*get_vcpus)(Vmm *vm, unsigned *count, char **err);
    int (*set_memory_target)(Vmm *vm, uint64_t target_mib, char **err);
    int (*get_memory_actual)(Vmm *vm, uint64_t *bytes, char **err);
    int (*query_disks)(Vmm *vm, VmmBlockInfo **info, size_t *n, char **err);
    int (*snapshot_disks)(Vmm *vm, const VmmSnapshotDisk *disks, size_t n, char **err);
    int (*job_commit)(Vmm *vm, unsigned position, const char *top, const char *base,
                      const char *job_id, char **err);
    int (*job_commit_layer)(Vmm *vm, unsigned position, unsigned top_depth,
                            const char *backing_file, const char *job_id, char **err);
    int (*job_stream)(Vmm *vm, unsigned position, const char *base, const char *job_id,
                      char **err);
    int (*job_query)(Vmm *vm, const char *job_id, VmmJobInfo *info, char **err);
    int (*job_complete)(Vmm *vm, const char *job_id, char **err);
    int (*job_cancel)(Vmm *vm, const char *job_id, char **err);
    int (*job_dismiss)(Vmm *vm, const char *job_id, char **err);
    int (*vnc_address)(Vmm *vm, char **addr, char **err);
    int (*qmp)(Vmm *vm, const char *command, struct json_object *args, unsigned timeout_ms,
               struct json_object **ret, char **err);
    int (*sim_inject)(Vmm *vm, const char *what, char **err);
} VmmOps;

struct Vmm {
    const VmmOps *ops;
    VmmBackend backend;
    char uuid[VMM_UUID_LEN + 1];
    char *run_dir; /* as given */
    char *dir;     /* <run_dir>/<uuid> */
    pid_t pid;

    pthread_mutex_t lock; /* protects everything below, and backend fields that say so */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC; broadcast on any change below */
    VmmConfig cfg;
    VmmRunState state;
    bool exited;
    int exit_code, exit_signal;

    VmmEventFn cb;
    void *cb_opaque;
    pthread_t watcher;
    bool have_watcher;
    VmmEventItem *q_head, *q_tail;
    size_t q_len;
    size_t q_dropped;
    bool stopping;
    bool close_deferred;

    void *priv;
};

extern const VmmOps vmm_qemu_ops;
extern const VmmOps vmm_sim_ops;

/* ---- vmm_event.c ---- */
void vmm_event_start(Vmm *vm);
/* Queues a copy of ev for the caller's callback. */
void vmm_event_post(Vmm *vm, const VmmEvent *ev);
void vmm_event_post_internal(Vmm *vm, int code);
/* Stops the watcher and waits for it (must not be called on the watcher thread). */
void vmm_event_stop(Vmm *vm);
bool vmm_event_on_watcher(Vmm *vm);
/* Drops queued items (after the watcher stopped). */
void vmm_event_drain(Vmm *vm);
/* Builds and posts a synthetic event. */
void vmm_event_emit(Vmm *vm, VmmEventType type, const char *reason, const char *status);

/* ---- vmm.c ---- */
/* Checks that a file the VM needs exists and can be read (and written): -ENOENT etc. */
int vmm_check_file(const char *uuid, const char *what, const char *path, bool write,
                   char **err);
/* Checks every file cfg names (kernel, initrd, images, suspend image). */
int vmm_preflight(const VmmConfig *cfg, char **err);
/* Frees the handle (backend already shut down, watcher stopped or exiting). */
void vmm_free_handle(Vmm *vm);
void vmm_set_state(Vmm *vm, VmmRunState st);
/* Marks the VM as exited (once) and wakes vmm_wait_exit(). Returns false if it already was. */
bool vmm_mark_exited(Vmm *vm, int code, int sig);
/* Waits on vm->cond until deadline (monotonic ms); returns false on timeout. Call with
 * vm->lock held. */
bool vmm_cond_wait_until(Vmm *vm, int64_t deadline_ms);
/* Writes vm->cfg to <dir>/config.json (lock held or not: takes a snapshot itself). */
int vmm_save_config(Vmm *vm);
int vmm_save_config_locked(Vmm *vm);
/* The disk / NIC at position in vm->cfg (lock held), or NULL. */
VmmDisk *vmm_cfg_disk(Vmm *vm, unsigned position);
VmmNic *vmm_cfg_nic(Vmm *vm, unsigned position);
void vmm_cfg_remove_disk(Vmm *vm, unsigned position);
void vmm_cfg_remove_nic(Vmm *vm, unsigned position);

/* ---- vmm_sim.c ---- */
/* True if the simulated VM whose directory is dir is running. */
bool vmm_sim_is_running(const char *dir);

/* ---- vmm_config.c ---- */
bool vmm_smbios_key_known(const char *key);

#endif
