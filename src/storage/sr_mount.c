/*
 * Mounting the storage of nfs and iso SRs with mount(8): one mount point per
 * SR under <state-dir>/sr/mnt/<sr-uuid>. Errors say what mount said, so that
 * a machine that cannot mount (no NFS client, no privileges, a container)
 * gives a clear reason instead of an empty SR.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"
#include "util/spawn.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

char *sr_mount_point(const SrAttachArgs *a)
{
    return xasprintf("%s/sr/mnt/%s", a->state_dir, a->sr_uuid);
}

bool sr_is_mounted(const char *path)
{
    struct stat st, pst;
    if (stat(path, &st) != 0)
        return false;
    char *copy = xstrdup(path);
    char *parent = dirname(copy);
    bool r = stat(parent, &pst) == 0 && (st.st_dev != pst.st_dev || st.st_ino == pst.st_ino);
    free(copy);
    return r;
}

static void mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    mkdir(p, 0755);
    free(p);
}

int sr_mount(const SrAttachArgs *a, const char *source, const char *fstype, const char *options,
             bool read_only, char **mountpoint, char **err)
{
    char *mp = sr_mount_point(a);
    mkdir_p(mp);
    if (sr_is_mounted(mp)) {
        *mountpoint = mp;
        return 0;
    }
    StrBuf o = STRBUF_INIT;
    strbuf_adds(&o, read_only ? "ro" : "rw");
    if (options && *options)
        strbuf_addf(&o, ",%s", options);
    const char *argv[] = {"mount", "-t", fstype, "-o", o.buf, source, mp, NULL};
    SpawnOptions so = {.timeout_ms = 60000};
    SpawnResult res = {0};
    int r = spawn_run(argv, &so, &res);
    if (r < 0) {
        if (err)
            *err = xasprintf("cannot mount %s: mount(8) cannot be run (%s)", source, strerror(-r));
    } else if (!spawn_result_ok(&res)) {
        StrBuf d = STRBUF_INIT;
        spawn_result_describe(&res, &d);
        if (err)
            *err = xasprintf("cannot mount %s (%s) on %s: mount %s", source, fstype, mp, d.buf);
        strbuf_release(&d);
        r = -EIO;
    }
    spawn_result_release(&res);
    strbuf_release(&o);
    if (r < 0) {
        rmdir(mp);
        free(mp);
        return r;
    }
    *mountpoint = mp;
    return 0;
}

int sr_umount(const SrAttachArgs *a, char **err)
{
    char *mp = sr_mount_point(a);
    int r = 0;
    if (sr_is_mounted(mp)) {
        const char *argv[] = {"umount", mp, NULL};
        SpawnResult res = {0};
        r = spawn_run(argv, NULL, &res);
        if (r == 0 && !spawn_result_ok(&res)) {
            StrBuf d = STRBUF_INIT;
            spawn_result_describe(&res, &d);
            if (err)
                *err = xasprintf("cannot unmount %s: umount %s", mp, d.buf);
            strbuf_release(&d);
            r = -EBUSY;
        }
        spawn_result_release(&res);
    }
    if (r == 0)
        rmdir(mp);
    free(mp);
    return r;
}
