/*
 * What vm_lifecycle.c offers the rest of the ops layer, the HTTP handlers
 * and the daemon's start: the running QEMU of a VM for device changes, core
 * dumps, console files, and the reconciliation at start.
 */
#ifndef HX_OPS_VM_LIFECYCLE_H
#define HX_OPS_VM_LIFECYCLE_H

#include <stdbool.h>

#include "ops/ops.h"
#include "vmm/vmm.h"

/*
 * Claims a running (or paused) VM for op (a vm_operations name, shown in
 * current_operations) and returns its QEMU; NULL with VM_BAD_POWER_STATE or
 * OTHER_OPERATION_IN_PROGRESS. Give it back with ops_vm_release_running.
 */
Vmm *ops_vm_claim_running(OpsCtx *ctx, const char *vm, const char *op, char **token,
                          XsError **errp);
void ops_vm_release_running(OpsCtx *ctx, const char *vm, char *token);

/* Where the QEMU configuration of a suspended VM is kept for its resume
 * (malloc'd; a checkpoint revert writes it before resuming). */
char *ops_vm_suspend_config_path(HxEnv *env, const char *uuid);

/* Writes the guest's memory as an ELF core file at path (QMP dump-guest-memory). */
bool ops_vm_dump_core_to(OpsCtx *ctx, const char *vm, const char *path, XsError **errp);

/* Where the VM's VNC socket and serial console log are (malloc'd paths). */
bool ops_vm_console_paths(OpsCtx *ctx, const char *vm, char **vnc, char **log, XsError **errp);

/* At daemon start: adopts the QEMUs that outlived the last daemon and acts on
 * what happened to the others meanwhile; stops orphans. */
void ops_vm_reconcile(HxEnv *env);
/* At daemon start: devices of halted VMs still marked attached are released. */
void ops_vm_release_stale_devices(HxEnv *env);

#endif
