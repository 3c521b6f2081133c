/*
 * Running VMs as the ops layer sees them: one VmRt per VM that runs (or ran)
 * under this daemon, holding its QEMU handle (src/vmm), who is allowed to
 * change it now, and the facts QEMU reported since it started (the guest
 * powered off, rebooted, crashed; the process died). vm_lifecycle.c owns the
 * state machine; vbd.c, vif.c and the console use the handle while they own
 * the VM. Nothing here touches the database except the small helpers named so.
 *
 * Ownership: at most one thread changes a running VM at a time. API calls
 * claim it with vmrt_claim() (refused with OTHER_OPERATION_IN_PROGRESS when
 * taken) and give it back with vmrt_release(); the event callback never
 * changes the VM itself but records facts, and when nobody owns the VM it
 * starts a worker that applies actions-after-shutdown/reboot/crash. A fact
 * that arrives while an API call owns the VM is handled after the release.
 */
#ifndef HX_OPS_VMRT_H
#define HX_OPS_VMRT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ops/ops.h"
#include "vmm/vmm.h"

typedef enum {
    VMRT_FREE,
    VMRT_API,  /* an API call */
    VMRT_AUTO, /* the worker applying actions-after-* */
} VmRtOwner;

typedef struct VmRt {
    HxEnv *env;
    char *ref;
    char uuid[VMM_UUID_LEN + 1];

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    VmRtOwner owner;
    char owner_op[32]; /* vm_operations name, for OTHER_OPERATION_IN_PROGRESS */
    char owner_token[96];
    pthread_t owner_thread; /* the thread of an API owner (owner == VMRT_API) */

    Vmm *vmm;      /* the QEMU of the current boot; NULL when none */
    bool starting; /* vmm_start() in progress: its first events adopt the handle */
    /* Facts since the current QEMU started. */
    bool guest_off;   /* the guest powered itself off */
    bool guest_reset; /* the guest rebooted (in place) */
    bool crashed;     /* panic or internal error; the process is still there */
    char crash_reason[512];
    bool exited;      /* the process is gone */
    bool expect_exit; /* ... because we stopped it */
    char exit_reason[512];
    bool booted;       /* the OS showed signs of life */
    bool install_boot; /* this boot runs an installer kernel (eliloader) */
    bool fresh_reboot; /* a guest reboot needs a new QEMU (reset disks, installer) */
    bool pending;      /* a fact waits for vmrt's worker */
    int64_t started_at;   /* CLOCK_MONOTONIC seconds */
    int quick_crashes;    /* crashes soon after start, in a row */
    int64_t rtc_base;     /* platform:timeoffset given to this boot */
    int64_t last_balloon; /* last memory_actual recorded (bytes) */
    struct GuestAgent *agent; /* the guest-agent session of the current QEMU (guest_agent.c) */
} VmRt;

/* ---- the table (vmrt.c) ---------------------------------------------------- */

bool vmrt_init(HxEnv *env);
/* Lets go of every QEMU (they keep running) and frees the table. */
void vmrt_shutdown(HxEnv *env);
/* The VmRt of vm_ref, made on first use; NULL if no such VM. Valid until
 * vmrt_shutdown(). */
VmRt *vmrt_get(HxEnv *env, const char *vm_ref);
/* The next free domain id (small running numbers, as Xen's). */
int64_t vmrt_next_domid(HxEnv *env);
void vmrt_note_domid(HxEnv *env, int64_t domid);
/* Runs fn(arg) on a detached thread counted by the table (vmrt_shutdown waits
 * for them). */
void vmrt_spawn(HxEnv *env, void *(*fn)(void *), void *arg);
bool vmrt_stopping(HxEnv *env);

/* ---- ownership --------------------------------------------------------------- */

/* Claims rt for an API call doing op (a vm_operations name); refuses with
 * OTHER_OPERATION_IN_PROGRESS when someone else owns it. */
bool vmrt_claim(VmRt *rt, const char *op, XsError **errp);
/*
 * The QEMU of rt when the calling thread owns rt for an API call, else NULL:
 * lets code called from inside a VM operation (storage's live hooks during
 * VM.snapshot) use the VM that operation holds instead of claiming it again.
 */
Vmm *vmrt_held_vmm(VmRt *rt);
/* Waits until rt is free, then claims it for the worker. */
void vmrt_claim_auto(VmRt *rt, const char *op);
/* Gives rt back; starts the worker if a fact is pending. */
void vmrt_release(VmRt *rt);
/* Forgets the facts of the current boot (under the owner). */
void vmrt_reset_facts(VmRt *rt);

/* The worker (vm_lifecycle.c), started by vmrt_release() and the callback. */
void *ops_vm_auto_worker(void *rt);
/* The event callback given to vmm_start/vmm_attach (vm_lifecycle.c). */
void ops_vm_on_event(Vmm *vm, const VmmEvent *ev, void *opaque);

/* An internal caller's context (no task, no session, full rights). */
void vmrt_ctx(HxEnv *env, OpsCtx *ctx);

#endif
