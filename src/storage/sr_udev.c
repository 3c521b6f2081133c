/*
 * The "udev" SR: the host's physical CD/DVD drives (/dev/sr*), one VDI per
 * drive, its location the device path and its name the drive's model from
 * sysfs. A host without drives has an empty SR; nothing here may fail
 * because of that.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/storage.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define UDEV_MAX_DRIVES 64

static int udev_attach(const SrAttachArgs *a, char **dir, char **err)
{
    *dir = NULL;
    return 0;
}

static char *read_sys(const char *sysdir, const char *dev, const char *what)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/device/%s", sysdir, dev, what);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[128];
    char *r = NULL;
    if (fgets(buf, sizeof(buf), f)) {
        size_t l = strcspn(buf, "\n");
        while (l > 0 && buf[l - 1] == ' ')
            l--;
        buf[l] = '\0';
        if (*buf)
            r = xstrdup(buf);
    }
    fclose(f);
    return r;
}

static int item_cmp(const void *x, const void *y)
{
    return strcmp(((const SrItem *)x)->location, ((const SrItem *)y)->location);
}

int sr_udev_list(const char *devdir, const char *sysdir, SrItem **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    devdir = devdir ? devdir : "/dev";
    sysdir = sysdir ? sysdir : "/sys/block";
    DIR *d = opendir(devdir);
    if (!d)
        return 0;
    size_t alloc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && *n < UDEV_MAX_DRIVES) {
        if (strncmp(de->d_name, "sr", 2) != 0 || !de->d_name[2])
            continue;
        bool digits = true;
        for (const char *p = de->d_name + 2; *p; p++)
            digits = digits && *p >= '0' && *p <= '9';
        struct stat st;
        if (!digits || fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISBLK(st.st_mode))
            continue;
        XGROW(*items, *n + 1, alloc);
        SrItem *it = &(*items)[(*n)++];
        it->location = xasprintf("%s/%s", devdir, de->d_name);
        char *vendor = read_sys(sysdir, de->d_name, "vendor");
        char *model = read_sys(sysdir, de->d_name, "model");
        if (vendor || model)
            it->name = xasprintf("%s%s%s", vendor ? vendor : "", vendor && model ? " " : "",
                                 model ? model : "");
        else
            it->name = xasprintf("DVD drive %s", de->d_name + 2);
        free(vendor);
        free(model);
        it->size = 0;
        it->allocated = 0;
    }
    closedir(d);
    if (*n)
        qsort(*items, *n, sizeof(SrItem), item_cmp);
    return 0;
}

const SrDriver sr_driver_udev = {
    .type = "udev",
    .description = "The host's CD/DVD drives",
    .content_type = "iso",
    .caps = SR_CAP_DEVICES,
    .create = NULL,
    .attach = udev_attach,
    .detach = NULL,
};
