/*
 * The "iso" SR: an ISO library, read-only. device-config:location is a local
 * directory, an NFS export (host:/volume) or a CIFS share (//server/share,
 * with device-config:username and :cifspassword or :options); remote ones
 * are mounted read-only with mount(8). Each *.iso file directly in the
 * directory is one VDI whose location is its file name.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define ISO_LIST_MAX 100000

static bool iso_is_remote(const char *loc, const char **fstype)
{
    if (strncmp(loc, "//", 2) == 0) {
        *fstype = "cifs";
        return true;
    }
    if (loc[0] != '/' && strchr(loc, ':')) {
        *fstype = "nfs";
        return true;
    }
    return false;
}

static int iso_attach(const SrAttachArgs *a, char **dir, char **err)
{
    const char *loc = a->config(a->opaque, "location");
    if (!loc || !*loc) {
        if (err)
            *err = xstrdup("an iso SR needs device-config:location=<directory | host:/volume | "
                           "//server/share>");
        return -EINVAL;
    }
    const char *fstype = NULL;
    bool remote = iso_is_remote(loc, &fstype);
    const char *t = a->config(a->opaque, "type");
    if (remote && t && (strcmp(t, "nfs") == 0 || strcmp(t, "cifs") == 0))
        fstype = t;
    if (!remote) {
        struct stat st;
        if (stat(loc, &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (err)
                *err = xasprintf("the ISO library %s is not a directory", loc);
            return -ENOENT;
        }
        *dir = xstrdup(loc);
        return 0;
    }
    StrBuf o = STRBUF_INIT;
    const char *opts = a->config(a->opaque, "options");
    if (opts && *opts)
        strbuf_adds(&o, opts);
    if (strcmp(fstype, "cifs") == 0) {
        const char *user = a->config(a->opaque, "username");
        const char *pw = a->config(a->opaque, "cifspassword");
        if (!pw)
            pw = a->config(a->opaque, "password");
        if (user)
            strbuf_addf(&o, "%susername=%s", o.len ? "," : "", user);
        if (pw)
            strbuf_addf(&o, "%spassword=%s", o.len ? "," : "", pw);
    }
    int r = sr_mount(a, loc, fstype, o.buf, true, dir, err);
    strbuf_release(&o);
    return r;
}

static int iso_detach(const SrAttachArgs *a, char **err)
{
    const char *loc = a->config(a->opaque, "location");
    const char *fstype;
    if (!loc || !iso_is_remote(loc, &fstype))
        return 0;
    return sr_umount(a, err);
}

static int item_cmp(const void *x, const void *y)
{
    return strcmp(((const SrItem *)x)->location, ((const SrItem *)y)->location);
}

int sr_iso_list(const char *dir, SrItem **items, size_t *n, char **err)
{
    *items = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        if (err)
            *err = xasprintf("cannot list the ISO library %s: %s", dir, strerror(e));
        return -e;
    }
    size_t alloc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && *n < ISO_LIST_MAX) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 5 || strcasecmp(de->d_name + l - 4, ".iso") != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
            continue;
        XGROW(*items, *n + 1, alloc);
        SrItem *it = &(*items)[(*n)++];
        it->location = xstrdup(de->d_name);
        it->name = xstrdup(de->d_name);
        it->size = (uint64_t)st.st_size;
        it->allocated = (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    if (*n)
        qsort(*items, *n, sizeof(SrItem), item_cmp);
    return 0;
}

void sr_items_free(SrItem *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].location);
        free(items[i].name);
    }
    free(items);
}

const SrDriver sr_driver_iso = {
    .type = "iso",
    .description = "ISO library: a directory (local, NFS or CIFS) of .iso files",
    .content_type = "iso",
    .caps = SR_CAP_ISO | SR_CAP_MOUNTS,
    .create = NULL,
    .attach = iso_attach,
    .detach = iso_detach,
};
