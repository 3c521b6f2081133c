/*
 * The "ext" SR: local storage, a directory of qcow2 files named by VDI uuid
 * (device-config:path). "Local storage" is one, under the state directory.
 * Nothing is mounted and nothing is formatted: the directory is made if it
 * does not exist and must be writable.
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

static int ext_check_dir(const char *path, char **err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (err)
            *err = xasprintf("the SR directory %s cannot be used: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (err)
            *err = xasprintf("%s is not a directory; give device-config:path=<directory>", path);
        return -ENOTDIR;
    }
    if (access(path, W_OK | X_OK) != 0) {
        int e = errno;
        if (err)
            *err = xasprintf("the SR directory %s is not writable: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static int ext_create(const SrAttachArgs *a, char **err)
{
    const char *path = a->config(a->opaque, "path");
    if (!path || path[0] != '/') {
        if (err)
            *err = xstrdup("an ext SR needs device-config:path=<absolute directory>");
        return -EINVAL;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        if (err)
            *err = xasprintf("cannot create the SR directory %s: %s", path, strerror(e));
        return -e;
    }
    return ext_check_dir(path, err);
}

static int ext_attach(const SrAttachArgs *a, char **dir, char **err)
{
    const char *path = a->config(a->opaque, "path");
    if (!path || path[0] != '/') {
        if (err)
            *err = xstrdup("the PBD of this ext SR has no device-config:path");
        return -EINVAL;
    }
    int r = ext_check_dir(path, err);
    if (r < 0)
        return r;
    *dir = xstrdup(path);
    return 0;
}

const SrDriver sr_driver_ext = {
    .type = "ext",
    .description = "Local storage: a directory of qcow2 files",
    .content_type = "user",
    .caps = SR_CAP_VDI_CREATE,
    .create = ext_create,
    .attach = ext_attach,
    .detach = NULL,
};
