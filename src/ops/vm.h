/*
 * VM helpers shared by the ops files (lifecycle, snapshots, import).
 */
#ifndef HX_OPS_VM_H
#define HX_OPS_VM_H

#include "ops/ops.h"

/* Fails with VM_BAD_POWER_STATE unless vm's state is in the mask (bits of
 * VM_POWER_STATE_*). */
bool ops_vm_require_power_state(DbObj *vm, unsigned allowed_mask, XsError **errp);
/* The checks every operation on a VM's run makes (inside a transaction): not a
 * snapshot, template or the control domain (dom0_why says what to do instead),
 * op not in blocked_operations, state in the mask. */
bool ops_vm_check_operable(DbObj *vm, const char *op, unsigned allowed_mask,
                           const char *dom0_why, XsError **errp);
XsValue *ops_vm_allowed_operations(const DbObj *vm);
/* Recomputes allowed_operations inside txn. */
void ops_vm_update_allowed(DbTxn *txn, DbObj *vm);
bool ops_vm_check_memory(int64_t static_min, int64_t dynamic_min, int64_t dynamic_max,
                         int64_t static_max, XsError **errp);
/* Creates a VM_metrics object for vm. */
bool ops_vm_new_metrics(DbTxn *txn, DbObj *vm, XsError **errp);
/* Deletes vm with its VBD, VIF, console and metrics records (not its disks). */
void ops_vm_delete_records(DbTxn *txn, DbObj *vm);

/* allowed_operations of devices (vbd.c, vif.c). */
void ops_vbd_update_allowed(DbTxn *txn, DbObj *vbd);
void ops_vif_update_allowed(DbTxn *txn, DbObj *vif);

#endif
