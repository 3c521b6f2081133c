/*
 * What the ops layer does when hyperxed starts and stops, in order, and
 * the table of classes that keep allowed_operations.
 */
#include "ops/ops.h"
#include "ops/storage_int.h"
#include "ops/vm.h"
#include "util/log.h"
#include "util/banned.h"

const OpsAllowedUpdater ops_allowed_updaters[] = {
    {XS_CLASS_VM, ops_vm_update_allowed},
    {XS_CLASS_SR, ops_sr_update_allowed},
    {XS_CLASS_VDI, ops_vdi_update_allowed},
};
const size_t ops_allowed_updaters_count = ARRAY_SIZE(ops_allowed_updaters);

bool ops_startup(HxEnv *env, XsError **errp)
{
    ops_clear_stale_operations(env->db);
    if (!ops_storage_startup(env, errp))
        return false;
    return true;
}

void ops_shutdown(HxEnv *env)
{
    ops_storage_shutdown(env);
}
