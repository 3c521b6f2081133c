/*
 * The table of SR drivers and what they share: free space from statvfs.
 * Each driver lives in its own file (sr_ext.c, sr_nfs.c, sr_iso.c,
 * sr_udev.c); this file only finds them.
 */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "storage/storage.h"
#include "util/banned.h"

static const SrDriver *const drivers[] = {
    &sr_driver_ext, &sr_driver_iso, &sr_driver_nfs, &sr_driver_udev, NULL,
};

const SrDriver *const *sr_drivers(void)
{
    return drivers;
}

const SrDriver *sr_driver_find(const char *type)
{
    if (!type)
        return NULL;
    for (size_t i = 0; drivers[i]; i++)
        if (strcmp(drivers[i]->type, type) == 0)
            return drivers[i];
    return NULL;
}

int sr_space(const char *dir, uint64_t *size, uint64_t *avail)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return -errno;
    *size = (uint64_t)st.f_blocks * st.f_frsize;
    *avail = (uint64_t)st.f_bavail * st.f_frsize;
    return 0;
}
