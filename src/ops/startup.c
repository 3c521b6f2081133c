/*
 * What the ops layer does when hyperxed starts and stops, in order, and
 * the table of classes that keep allowed_operations.
 *
 * Start: operations interrupted by the last stop are cleared; the SRs
 * plugged; the host's BIOS strings read; missing built-in templates
 * created; devices of VMs recorded halted released; networks in use brought
 * up; guest metrics of VMs that no longer run marked not live; then every VM recorded
 * running is taken back from the QEMU that outlived the last daemon (or handled per
 * actions-after-* if its QEMU ended meanwhile), its guest agent polled again.
 * Stop: QEMU handles are let go; the VMs keep running.
 */
#include "ops/guest_agent.h"
#include "ops/ops.h"
#include "ops/storage_int.h"
#include "ops/vm.h"
#include "ops/vm_install.h"
#include "ops/vm_lifecycle.h"
#include "ops/vmdisk.h"
#include "ops/vmnet.h"
#include "ops/vmrt.h"
#include "util/log.h"
#include "util/banned.h"

const OpsAllowedUpdater ops_allowed_updaters[] = {
    {XS_CLASS_VM, ops_vm_update_allowed},
    {XS_CLASS_VBD, ops_vbd_update_allowed},
    {XS_CLASS_VIF, ops_vif_update_allowed},
    {XS_CLASS_SR, ops_sr_update_allowed},
    {XS_CLASS_VDI, ops_vdi_update_allowed},
};
const size_t ops_allowed_updaters_count = ARRAY_SIZE(ops_allowed_updaters);

bool ops_startup(HxEnv *env, XsError **errp)
{
    ops_clear_stale_operations(env->db);
    if (!ops_storage_startup(env, errp))
        return false;
    vmrt_init(env);
    vmdisk_register_live_hooks();
    ops_host_refresh_bios_strings(env);
    if (!ops_templates_install(env, errp))
        return false;
    ops_vm_release_stale_devices(env);
    vmnet_startup(env);
    guest_agent_startup(env);
    ops_vm_reconcile(env);
    return true;
}

void ops_shutdown(HxEnv *env)
{
    vmrt_shutdown(env);
    ops_storage_shutdown(env);
}
