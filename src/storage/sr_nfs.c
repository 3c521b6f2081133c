/*
 * The "nfs" SR: shared storage every host of a pool reaches. Either
 * device-config:server and :serverpath (mounted with mount(8) under the
 * state directory) or device-config:path, a directory already mounted. As
 * with XenServer, the SR's files live in a sub-directory named by the SR's
 * uuid, so that several SRs can share one export.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* The root of the export as seen on this host (mounting it if needed). */
static int nfs_root(const SrAttachArgs *a, char **root, char **err)
{
    const char *path = a->config(a->opaque, "path");
    if (path) {
        struct stat st;
        if (path[0] != '/' || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (err)
                *err = xasprintf("device-config:path=%s is not a directory", path);
            return -ENOENT;
        }
        *root = xstrdup(path);
        return 0;
    }
    const char *server = a->config(a->opaque, "server");
    const char *spath = a->config(a->opaque, "serverpath");
    if (!server || !spath) {
        if (err)
            *err = xstrdup("an nfs SR needs device-config:server and device-config:serverpath "
                           "(or device-config:path of a directory already mounted)");
        return -EINVAL;
    }
    char *source = xasprintf("%s:%s", server, spath);
    const char *opts = a->config(a->opaque, "options");
    const char *vers = a->config(a->opaque, "nfsversion");
    char *o = vers ? xasprintf("%s%svers=%s", opts ? opts : "", opts ? "," : "", vers)
                   : xstrdup(opts ? opts : "");
    int r = sr_mount(a, source, "nfs", o, false, root, err);
    free(o);
    free(source);
    return r;
}

static int nfs_create(const SrAttachArgs *a, char **err)
{
    char *root = NULL;
    int r = nfs_root(a, &root, err);
    if (r < 0)
        return r;
    char *dir = xasprintf("%s/%s", root, a->sr_uuid);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        r = -errno;
        if (err)
            *err = xasprintf("cannot create %s on the NFS export: %s", dir, strerror(-r));
    }
    free(dir);
    free(root);
    if (r < 0 && !a->config(a->opaque, "path"))
        sr_umount(a, NULL);
    return r;
}

static int nfs_attach(const SrAttachArgs *a, char **dir, char **err)
{
    char *root = NULL;
    int r = nfs_root(a, &root, err);
    if (r < 0)
        return r;
    char *d = xasprintf("%s/%s", root, a->sr_uuid);
    free(root);
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (err)
            *err = xasprintf("the SR directory %s does not exist on the export", d);
        free(d);
        if (!a->config(a->opaque, "path"))
            sr_umount(a, NULL);
        return -ENOENT;
    }
    *dir = d;
    return 0;
}

static int nfs_detach(const SrAttachArgs *a, char **err)
{
    if (a->config(a->opaque, "path"))
        return 0;
    return sr_umount(a, err);
}

const SrDriver sr_driver_nfs = {
    .type = "nfs",
    .description = "Shared storage on NFS: a directory of qcow2 files",
    .content_type = "user",
    .caps = SR_CAP_VDI_CREATE | SR_CAP_SHARED | SR_CAP_MOUNTS,
    .create = nfs_create,
    .attach = nfs_attach,
    .detach = nfs_detach,
};
