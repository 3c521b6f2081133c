/*
 * The VM side of storage (see vmdisk.h). Until the storage layer provides
 * VDI files, a VDI is usable when its location names an existing image
 * file; creating VDIs is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/vmdisk.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/xalloc.h"
#include "util/banned.h"

static VmmDiskFormat probe_format(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char m[4] = {0};
    if (fd >= 0) {
        if (read(fd, m, 4) != 4)
            memset(m, 0, 4);
        close(fd);
    }
    return memcmp(m, "QFI\xfb", 4) == 0 ? VMM_DISK_FORMAT_QCOW2 : VMM_DISK_FORMAT_RAW;
}

bool vmdisk_attach(OpsCtx *ctx, const char *vm_ref, const char *vdi_ref, bool rw, VmDiskFile *f,
                   XsError **errp)
{
    memset(f, 0, sizeof(*f));
    db_read_lock(ctx->db);
    DbObj *vdi = db_get_class(ctx->db, XS_CLASS_VDI, vdi_ref);
    char *loc = vdi ? xstrdup(db_str(vdi, F_VDI_LOCATION)) : NULL;
    bool ro = vdi && db_bool(vdi, F_VDI_READ_ONLY);
    db_read_unlock(ctx->db);
    if (!vdi) {
        xs_err_handle_invalid(errp, "VDI", vdi_ref);
        return false;
    }
    if (!loc || loc[0] != '/' || access(loc, R_OK) != 0) {
        free(loc);
        xs_err_vm_requires_vdi(errp, vm_ref, vdi_ref);
        return false;
    }
    f->path = loc;
    f->format = probe_format(loc);
    f->read_only = ro || !rw;
    return true;
}

void vmdisk_detach(OpsCtx *ctx, const char *vm_ref, const char *vdi_ref)
{
    (void)ctx;
    (void)vm_ref;
    (void)vdi_ref;
}

void vmdisk_file_release(VmDiskFile *f)
{
    free(f->path);
    f->path = NULL;
}

bool vmdisk_create(OpsCtx *ctx, const char *sr_ref, int64_t size, const char *name,
                   const char *description, int type, const XsValue *sm_config, char **vdi_ref,
                   XsError **errp)
{
    xs_err_not_implemented(errp, "VDI files");
    return false;
}

bool vmdisk_destroy(OpsCtx *ctx, const char *vdi_ref, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *vdi = db_get_class(ctx->db, XS_CLASS_VDI, vdi_ref);
    if (vdi)
        db_delete(txn, vdi);
    return db_commit(txn, errp);
}

bool vmdisk_clone(OpsCtx *ctx, const char *vdi_ref, bool full_copy, const char *sr_ref,
                  char **new_vdi, XsError **errp)
{
    xs_err_not_implemented(errp, "VDI files");
    return false;
}

bool vmdisk_create_from_file(OpsCtx *ctx, const char *sr_ref, const char *name, int type,
                             const char *path, char **vdi_ref, XsError **errp)
{
    xs_err_not_implemented(errp, "VDI files");
    return false;
}

bool vmdisk_export_raw(OpsCtx *ctx, const char *vdi_ref, const char *path, XsError **errp)
{
    xs_err_not_implemented(errp, "VDI files");
    return false;
}
