/*
 * The files of VDIs in an SR directory: names, creation under a temporary
 * name and publication, trash, O(1) snapshots with hard links and qcow2
 * overlays, coalescing a parent into its only child, growing, and running
 * qemu-img for the metadata operations it does best (commit, resize).
 *
 * Every change is ordered so that a crash leaves names from which the
 * records decide what to finish or undo (see storage.h). Nothing here
 * touches a file a running VM has open: the caller checks that.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/image.h"
#include "storage/storage.h"
#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/strbuf.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define TMP_PREFIX ".hx-tmp-"
#define TRASH_PREFIX ".hx-trash-"
#define RESET_PREFIX ".hx-reset-"
#define SUFFIX ".qcow2"

char *vdi_file_path(const char *dir, const char *uuid, VdiNameKind kind)
{
    switch (kind) {
    case VDI_NAME_TMP:
        return xasprintf("%s/" TMP_PREFIX "%s" SUFFIX, dir, uuid);
    case VDI_NAME_TRASH:
        return xasprintf("%s/" TRASH_PREFIX "%s" SUFFIX, dir, uuid);
    default:
        return xasprintf("%s/%s" SUFFIX, dir, uuid);
    }
}

char *vdi_file_reset_path(const char *dir, const char *vdi_uuid, const char *vm_uuid)
{
    return xasprintf("%s/" RESET_PREFIX "%s-%s" SUFFIX, dir, vdi_uuid, vm_uuid);
}

static bool take_uuid(const char *s, size_t len, char *out)
{
    if (len != UUID_STR_LEN - 1)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return uuid_is_valid(out);
}

bool vdi_file_parse_name(const char *name, VdiNameKind *kind, char *uuid_out, bool *is_reset)
{
    size_t l = strlen(name);
    size_t sl = strlen(SUFFIX);
    *is_reset = false;
    if (l <= sl || strcmp(name + l - sl, SUFFIX) != 0)
        return false;
    l -= sl;
    if (STRPREFIX(name, TMP_PREFIX)) {
        *kind = VDI_NAME_TMP;
        return take_uuid(name + strlen(TMP_PREFIX), l - strlen(TMP_PREFIX), uuid_out);
    }
    if (STRPREFIX(name, TRASH_PREFIX)) {
        *kind = VDI_NAME_TRASH;
        return take_uuid(name + strlen(TRASH_PREFIX), l - strlen(TRASH_PREFIX), uuid_out);
    }
    if (STRPREFIX(name, RESET_PREFIX)) {
        *kind = VDI_NAME__MAX;
        *is_reset = true;
        return take_uuid(name + strlen(RESET_PREFIX), MIN(l - strlen(RESET_PREFIX), 36),
                         uuid_out);
    }
    *kind = VDI_NAME_FINAL;
    return take_uuid(name, l, uuid_out);
}

static int set_err(char **err, int code, const char *fmt, ...) HX_PRINTF(3, 4);
static int set_err(char **err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        *err = xvasprintf(fmt, ap);
        va_end(ap);
    }
    return code > 0 ? -code : code;
}

int vdi_file_info(const char *path, VdiFileInfo *info, char **err)
{
    memset(info, 0, sizeof(*info));
    ImgError ie = {0};
    ImgOpenOptions o = {.format = IMG_FORMAT_PROBE, .flags = IMG_OPEN_NO_BACKING};
    ImgReader *r = img_open(path, &o, &ie);
    if (!r)
        return set_err(err, ie.code ? ie.code : EIO, "%s", ie.msg);
    info->virtual_size = img_reader_virtual_size(r);
    info->allocated = img_reader_allocated_bytes(r);
    snprintf(info->format, sizeof(info->format), "%s", img_format_name(img_reader_format(r)));
    const char *pn = img_reader_parent_name(r);
    if (pn && *pn) {
        info->has_backing = true;
        size_t l = strlen(pn);
        size_t sl = strlen(SUFFIX);
        char u[UUID_STR_LEN];
        if (!strchr(pn, '/') && l > sl && strcmp(pn + l - sl, SUFFIX) == 0 &&
            take_uuid(pn, l - sl, u))
            snprintf(info->parent_uuid, sizeof(info->parent_uuid), "%s", u);
    }
    img_reader_free(r);
    return 0;
}

void storage_crash_point(const char *point)
{
    const char *want = getenv("HYPERXE_CRASH_AT");
    if (want && strcmp(want, point) == 0) {
        fprintf(stderr, "crash point %s reached: killing myself\n", point);
        raise(SIGKILL);
    }
}

uint64_t vdi_file_metadata_size(uint64_t virtual_size)
{
    /* Header, L1 (8 bytes per 512 MiB), refcount table and first block, and
     * room for the L2 tables of a full disk (8 bytes per 64 KiB cluster),
     * which a thin SR must be able to grow into: counted only as the tables
     * of the first GiB here. */
    uint64_t l1 = (virtual_size / (512 * MiB) + 1) * 8;
    return 4 * 64 * KiB + ((l1 + 64 * KiB - 1) / (64 * KiB)) * 64 * KiB;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

static int create_overlay(const char *path, uint64_t size, const char *parent_uuid, char **err)
{
    ImgWriteOptions wo;
    img_write_options_init(&wo);
    char *backing = NULL;
    if (parent_uuid && *parent_uuid) {
        backing = xasprintf("%s" SUFFIX, parent_uuid);
        wo.backing_file = backing;
        wo.backing_format = "qcow2";
    }
    ImgError ie = {0};
    int r = img_create(path, IMG_FORMAT_QCOW2, size, &wo, &ie);
    free(backing);
    if (r < 0)
        return set_err(err, r, "%s", ie.msg);
    return 0;
}

int vdi_file_create_tmp(const char *dir, const char *uuid, uint64_t size, const char *parent_uuid,
                        char **err)
{
    _cleanup_free_ char *tmp = vdi_file_path(dir, uuid, VDI_NAME_TMP);
    unlink(tmp);
    return create_overlay(tmp, size, parent_uuid, err);
}

int vdi_file_publish(const char *dir, const char *uuid, char **err)
{
    _cleanup_free_ char *tmp = vdi_file_path(dir, uuid, VDI_NAME_TMP);
    _cleanup_free_ char *fin = vdi_file_path(dir, uuid, VDI_NAME_FINAL);
    _cleanup_free_ char *tr = vdi_file_path(dir, uuid, VDI_NAME_TRASH);
    /* No fsync of the data: the same durability as the database (SQLite WAL,
     * synchronous=NORMAL): nothing is lost when the process dies; a power
     * failure may lose the last seconds, and the next start reconciles.
     * A file renamed over another is written out at once by ext4
     * (auto_da_alloc: about a second per few GiB of new data), so an old
     * final file first moves to the trash name and is unlinked after. A
     * crash in between leaves names the reconciliation repairs: a trash file
     * is put back only where no final file is, and a tmp file is published
     * where the record expects it. */
    bool trashed = access(fin, F_OK) == 0 && rename(fin, tr) == 0;
    if (trashed)
        storage_crash_point("publish-trashed");
    if (rename(tmp, fin) != 0) {
        int e = errno;
        if (trashed)
            (void)rename(tr, fin);
        return set_err(err, e, "cannot rename %s to %s: %s", tmp, fin, strerror(e));
    }
    if (trashed)
        unlink(tr);
    fsync_path(dir);
    return 0;
}

void vdi_file_discard_tmp(const char *dir, const char *uuid)
{
    _cleanup_free_ char *tmp = vdi_file_path(dir, uuid, VDI_NAME_TMP);
    unlink(tmp);
}

int vdi_file_trash(const char *dir, const char *uuid, char **err)
{
    _cleanup_free_ char *fin = vdi_file_path(dir, uuid, VDI_NAME_FINAL);
    _cleanup_free_ char *tr = vdi_file_path(dir, uuid, VDI_NAME_TRASH);
    if (rename(fin, tr) != 0) {
        if (errno == ENOENT)
            return 0; /* nothing to remove: the record alone goes */
        return set_err(err, errno, "cannot remove %s: %s", fin, strerror(errno));
    }
    return 0;
}

int vdi_file_untrash(const char *dir, const char *uuid, char **err)
{
    _cleanup_free_ char *fin = vdi_file_path(dir, uuid, VDI_NAME_FINAL);
    _cleanup_free_ char *tr = vdi_file_path(dir, uuid, VDI_NAME_TRASH);
    if (access(fin, F_OK) == 0) {
        /* A newer file took the name meanwhile (a publish cut short). */
        unlink(tr);
        return 0;
    }
    if (rename(tr, fin) != 0 && errno != ENOENT)
        return set_err(err, errno, "cannot restore %s: %s", fin, strerror(errno));
    return 0;
}

void vdi_file_purge(const char *dir, const char *uuid)
{
    _cleanup_free_ char *tr = vdi_file_path(dir, uuid, VDI_NAME_TRASH);
    unlink(tr);
}

void vdi_file_snapshot_abort(const char *dir, const char *leaf, const char *base,
                             const char *const *new_uuids, size_t n)
{
    vdi_file_discard_tmp(dir, base);
    vdi_file_discard_tmp(dir, leaf);
    for (size_t i = 0; i < n; i++)
        vdi_file_discard_tmp(dir, new_uuids[i]);
}

int vdi_file_snapshot_tmp(const char *dir, const char *leaf, const char *base,
                          const char *const *new_uuids, size_t n, uint64_t size, char **err)
{
    _cleanup_free_ char *fin = vdi_file_path(dir, leaf, VDI_NAME_FINAL);
    _cleanup_free_ char *btmp = vdi_file_path(dir, base, VDI_NAME_TMP);
    if (link(fin, btmp) != 0)
        return set_err(err, errno, "cannot link %s as %s: %s", fin, btmp, strerror(errno));
    int r = vdi_file_create_tmp(dir, leaf, size, base, err);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = vdi_file_create_tmp(dir, new_uuids[i], size, base, err);
    if (r < 0)
        vdi_file_snapshot_abort(dir, leaf, base, new_uuids, n);
    return r;
}

int vdi_file_is_empty_overlay(const char *path, bool *empty, char **err)
{
    ImgError ie = {0};
    ImgOpenOptions o = {.format = IMG_FORMAT_QCOW2, .flags = IMG_OPEN_NO_BACKING};
    ImgReader *r = img_open(path, &o, &ie);
    if (!r)
        return set_err(err, ie.code ? ie.code : EIO, "%s", ie.msg);
    uint64_t size = img_reader_virtual_size(r);
    *empty = true;
    int ret = 0;
    for (uint64_t off = 0; off < size && *empty;) {
        ImgExtent e;
        ret = img_block_status(r, off, size - off, IMG_STATUS_TOP_ONLY, &e, &ie);
        if (ret < 0) {
            set_err(err, ret, "%s", ie.msg);
            break;
        }
        if (e.kind != IMG_EXTENT_UNALLOCATED)
            *empty = false;
        off += e.length;
    }
    img_reader_free(r);
    return ret;
}

/* ---- qemu-img ------------------------------------------------------------------ */

static void parse_progress(StrBuf *line, VdiProgressFn progress, void *opaque)
{
    /* "    (12.34/100%)" */
    const char *p = strrchr(line->buf, '(');
    if (!p || !progress)
        return;
    char *end = NULL;
    double v = strtod(p + 1, &end);
    if (end && strncmp(end, "/100%", 5) == 0)
        progress(opaque, v / 100.0);
}

int storage_qemu_img(const char *const *args, VdiProgressFn progress, void *opaque, char **msg)
{
    _cleanup_free_ char *prog = spawn_find_program("qemu-img");
    if (!prog)
        return set_err(msg, ENOENT, "qemu-img is not installed (package qemu-utils)");
    size_t nargs = 0;
    while (args[nargs])
        nargs++;
    const char **argv = xcalloc(nargs + 2, sizeof(char *));
    argv[0] = prog;
    for (size_t i = 0; i < nargs; i++)
        argv[i + 1] = args[i];
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        free(argv);
        return set_err(msg, errno, "cannot run qemu-img: %s", strerror(errno));
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        if (devnull >= 0)
            close(devnull);
        free(argv);
        return set_err(msg, e, "cannot run qemu-img: %s", strerror(e));
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here on. */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        syscall(SYS_close_range, 3u, ~0u, 0u);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    close(pfd[1]);
    if (devnull >= 0)
        close(devnull);
    StrBuf out = STRBUF_INIT, line = STRBUF_INIT;
    char buf[4096];
    for (;;) {
        ssize_t k = read(pfd[0], buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        for (ssize_t i = 0; i < k; i++) {
            char c = buf[i];
            if (c == '\r' || c == '\n') {
                parse_progress(&line, progress, opaque);
                if (c == '\n' && out.len < 16384 && !strchr(line.buf, '%'))
                    strbuf_addf(&out, "%s\n", line.buf);
                strbuf_reset(&line);
            } else if (line.len < 1024) {
                strbuf_addch(&line, c);
            }
        }
    }
    if (line.len && out.len < 16384)
        strbuf_addf(&out, "%s\n", line.buf);
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int r = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        strbuf_trim_trailing_newline(&out);
        r = set_err(msg, EIO, "qemu-img %s failed: %s", args[0], out.len ? out.buf : "no output");
    }
    strbuf_release(&out);
    strbuf_release(&line);
    return r;
}

int vdi_file_resize(const char *path, uint64_t size, char **err)
{
    char sz[32];
    snprintf(sz, sizeof(sz), "%" PRIu64, size);
    const char *args[] = {"resize", "-q", "-f", "qcow2", path, sz, NULL};
    return storage_qemu_img(args, NULL, NULL, err);
}

int vdi_file_coalesce_live(const char *dir, const char *child, const char *parent,
                           VdiCommitFn commit, void *opaque, char **err)
{
    _cleanup_free_ char *cpath = vdi_file_path(dir, child, VDI_NAME_FINAL);
    _cleanup_free_ char *ppath = vdi_file_path(dir, parent, VDI_NAME_FINAL);
    VdiFileInfo ci;
    int r = vdi_file_info(cpath, &ci, err);
    if (r < 0)
        return r;
    if (strcmp(ci.parent_uuid, parent) != 0)
        return set_err(err, EINVAL, "%s is not an overlay on %s", cpath, ppath);
    /* The VM reopens the parent read-write for the job: base copies are read-only. */
    chmod(ppath, 0644);
    r = commit(opaque, err);
    if (r < 0)
        return r;
    storage_crash_point("coalesce-committed");
    r = fsync_path(ppath);
    if (r < 0)
        return set_err(err, r, "cannot flush %s: %s", ppath, strerror(-r));
    if (rename(ppath, cpath) != 0)
        return set_err(err, errno, "cannot rename %s to %s: %s", ppath, cpath, strerror(errno));
    fsync_path(dir);
    storage_crash_point("coalesce-renamed");
    return 0;
}

int vdi_file_coalesce(const char *dir, const char *child, const char *parent,
                      VdiProgressFn progress, void *opaque, char **err)
{
    _cleanup_free_ char *cpath = vdi_file_path(dir, child, VDI_NAME_FINAL);
    _cleanup_free_ char *ppath = vdi_file_path(dir, parent, VDI_NAME_FINAL);
    VdiFileInfo ci;
    int r = vdi_file_info(cpath, &ci, err);
    if (r < 0)
        return r;
    if (strcmp(ci.parent_uuid, parent) != 0)
        return set_err(err, EINVAL, "%s is not an overlay on %s", cpath, ppath);
    /* The parent may be read-only on disk: base copies are. */
    chmod(ppath, 0644);
    const char *args[] = {"commit", "-p", "-d", "-f", "qcow2", cpath, NULL};
    r = storage_qemu_img(args, progress, opaque, err);
    if (r < 0)
        return r;
    storage_crash_point("coalesce-committed");
    r = fsync_path(ppath);
    if (r < 0)
        return set_err(err, r, "cannot flush %s: %s", ppath, strerror(-r));
    if (rename(ppath, cpath) != 0)
        return set_err(err, errno, "cannot rename %s to %s: %s", ppath, cpath, strerror(errno));
    fsync_path(dir);
    storage_crash_point("coalesce-renamed");
    return 0;
}
