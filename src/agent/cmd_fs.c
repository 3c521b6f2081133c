/*
 * Filesystem commands: guest-get-fsinfo (mounted block-device filesystems,
 * their usage and the disks under them, found through sysfs) and
 * guest-fsfreeze-* (FIFREEZE/FITHAW on every such filesystem, with an
 * automatic thaw after a safety timeout so a lost host cannot leave the
 * guest frozen). Freezing is refused in --stdio mode, where the
 * filesystems would be the test machine's own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/agent_io.h"
#include "agent/cmd.h"
#include "agent/qga_json.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/xalloc.h"

#include "util/banned.h"

/* Mounts considered at most, and how deep stacked devices are followed. */
#define CMD_FS_MAX_MOUNTS 4096
#define CMD_FS_MAX_DEPTH  8

struct FreezeState {
    int frozen;          /* filesystems frozen by the last freeze */
    int64_t deadline_ms; /* automatic thaw time (CLOCK_MONOTONIC) */
};

typedef struct CmdFsMount {
    char *mountpoint;
    char *fstype;
    char *source;
    dev_t dev; /* block device; 0 when none */
} CmdFsMount;

typedef struct CmdFsMounts {
    CmdFsMount *v;
    size_t n, alloc;
} CmdFsMounts;

static void cmd_fs_mounts_release(CmdFsMounts *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].mountpoint);
        free(m->v[i].fstype);
        free(m->v[i].source);
    }
    free(m->v);
    m->v = NULL;
    m->n = m->alloc = 0;
}

/* Decodes the \ooo escapes of /proc/self/mountinfo in place. */
static char *cmd_fs_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return s;
}

/* Splits the next space-separated field off *p. */
static char *cmd_fs_field(char **p)
{
    char *s = *p;
    if (!s)
        return NULL;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    char *e = strchr(s, ' ');
    if (e) {
        *e = '\0';
        *p = e + 1;
    } else {
        *p = NULL;
    }
    return s;
}

/* Reads the mounts backed by a block device, in mount order. */
static int cmd_fs_read_mounts(CmdFsMounts *m)
{
    StrBuf text = STRBUF_INIT;
    int r = agent_io_read_file("/proc/self/mountinfo", 4 * 1024 * 1024, &text);
    if (r < 0 && r != -EFBIG) {
        strbuf_release(&text);
        return r;
    }
    char *line = text.buf;
    while (line && *line && m->n < CMD_FS_MAX_MOUNTS) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *p = line;
        char *f[5];
        bool ok = true;
        for (int i = 0; i < 5 && ok; i++)
            ok = (f[i] = cmd_fs_field(&p)) != NULL;
        char *sep;
        while (ok && (sep = cmd_fs_field(&p)) && !STREQ(sep, "-"))
            ;
        char *fstype = ok ? cmd_fs_field(&p) : NULL;
        char *source = fstype ? cmd_fs_field(&p) : NULL;
        unsigned maj, min;
        if (fstype && source && sscanf(f[2], "%u:%u", &maj, &min) == 2) {
            dev_t dev = maj != 0 ? makedev(maj, min) : 0;
            cmd_fs_unescape(source);
            if (maj == 0 && source[0] == '/') {
                /* btrfs and friends show an anonymous device: use the source. */
                struct stat st;
                if (stat(source, &st) == 0 && S_ISBLK(st.st_mode))
                    dev = st.st_rdev;
            }
            if (dev != 0) {
                XGROW(m->v, m->n + 1, m->alloc);
                m->v[m->n].mountpoint = xstrdup(cmd_fs_unescape(f[4]));
                m->v[m->n].fstype = xstrdup(cmd_fs_unescape(fstype));
                m->v[m->n].source = xstrdup(source);
                m->v[m->n].dev = dev;
                m->n++;
            }
        }
        line = next;
    }
    strbuf_release(&text);
    return 0;
}

/* -- disks ----------------------------------------------------------------- */

static bool cmd_fs_parse_pci(const char *comp, int *dom, int *bus, int *slot, int *fn)
{
    unsigned a, b, c, d;
    char tail;
    if (strlen(comp) != 12 || sscanf(comp, "%4x:%2x:%2x.%1x%c", &a, &b, &c, &d, &tail) != 4)
        return false;
    *dom = (int)a, *bus = (int)b, *slot = (int)c, *fn = (int)d;
    return true;
}

static bool cmd_fs_parse_hctl(const char *comp, int *h, int *c, int *t, int *l)
{
    char tail;
    return sscanf(comp, "%d:%d:%d:%d%c", h, c, t, l, &tail) == 4;
}

/* The driver bound to the PCI device at sysfs path pci_dir, or "". */
static void cmd_fs_pci_driver(const char *pci_dir, char *out, size_t outlen)
{
    out[0] = '\0';
    _cleanup_free_ char *link = xasprintf("%s/driver", pci_dir);
    char target[PATH_MAX];
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t len = strlen(base);
    if (len >= outlen)
        return;
    memcpy(out, base, len + 1);
}

/* Describes the whole disk at /sys/block/<name> (real path real). */
static struct json_object *cmd_fs_disk_address(const char *name, const char *real)
{
    int dom = -1, bus = -1, slot = -1, fn = -1;
    int h = 0, c = 0, t = 0, l = 0;
    bool hctl = false;
    char pci_dir[PATH_MAX] = "";
    bool usb = false;

    /* Walk the path components: the last PCI address, any H:C:T:L, usb. */
    _cleanup_free_ char *copy = xstrdup(real);
    size_t off = 0;
    for (char *p = copy; p && *p;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        int d0, d1, d2, d3;
        if (cmd_fs_parse_pci(p, &d0, &d1, &d2, &d3)) {
            dom = d0, bus = d1, slot = d2, fn = d3;
            snprintf(pci_dir, sizeof(pci_dir), "%.*s%s", (int)off, real, p);
        } else if (cmd_fs_parse_hctl(p, &d0, &d1, &d2, &d3)) {
            h = d0, c = d1, t = d2, l = d3;
            hctl = true;
        } else if (STRPREFIX(p, "usb")) {
            usb = true;
        }
        off += strlen(p) + 1;
        p = slash ? slash + 1 : NULL;
    }

    char driver[64] = "";
    if (pci_dir[0])
        cmd_fs_pci_driver(pci_dir, driver, sizeof(driver));

    const char *type = "unknown";
    if (usb)
        type = "usb";
    else if (hctl && (STREQ(driver, "ata_piix") || STREQ(driver, "pata_acpi")))
        type = "ide";
    else if (hctl && STREQ(driver, "ahci"))
        type = "sata";
    else if (hctl)
        type = "scsi";
    else if (STRPREFIX(name, "vd"))
        type = "virtio";
    else if (STRPREFIX(name, "xvd"))
        type = "xen";
    else if (STRPREFIX(name, "mmcblk"))
        type = "sd";

    struct json_object *pci = json_object_new_object();
    qga_json_add_int(pci, "domain", dom);
    qga_json_add_int(pci, "bus", bus);
    qga_json_add_int(pci, "slot", slot);
    qga_json_add_int(pci, "function", fn);

    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "pci-controller", pci);
    qga_json_add_str(d, "bus-type", type);
    /* IDE: the channel is the SCSI host; elsewhere the SCSI channel. */
    qga_json_add_int(d, "bus", !hctl ? 0 : STREQ(type, "ide") ? h : c);
    qga_json_add_int(d, "target", hctl ? t : 0);
    qga_json_add_int(d, "unit", hctl ? l : 0);

    _cleanup_free_ char *serial_path = xasprintf("/sys/block/%s/serial", name);
    StrBuf serial = STRBUF_INIT;
    if (agent_io_read_line(serial_path, &serial) != 0 || serial.len == 0) {
        strbuf_reset(&serial);
        _cleanup_free_ char *p2 = xasprintf("/sys/block/%s/device/serial", name);
        agent_io_read_line(p2, &serial);
    }
    if (serial.len)
        qga_json_add_str(d, "serial", serial.buf);
    strbuf_release(&serial);

    _cleanup_free_ char *dev = xasprintf("/dev/%s", name);
    qga_json_add_str(d, "dev", dev);
    return d;
}

/*
 * Adds to disks the whole disks under the block device whose sysfs directory
 * is dir: a partition's parent disk, a device-mapper or md device's slaves
 * (recursively), or the disk itself.
 */
static void cmd_fs_add_disks(struct json_object *disks, const char *dir, int depth)
{
    char real[PATH_MAX];
    if (depth > CMD_FS_MAX_DEPTH || !realpath(dir, real))
        return;

    _cleanup_free_ char *slaves = xasprintf("%s/slaves", real);
    DIR *sd = opendir(slaves);
    if (sd) {
        struct dirent *de;
        bool any = false;
        while ((de = readdir(sd))) {
            if (de->d_name[0] == '.')
                continue;
            _cleanup_free_ char *sub = xasprintf("%s/%s", slaves, de->d_name);
            cmd_fs_add_disks(disks, sub, depth + 1);
            any = true;
        }
        closedir(sd);
        if (any)
            return;
    }

    _cleanup_free_ char *part = xasprintf("%s/partition", real);
    if (access(part, F_OK) == 0) {
        char *slash = strrchr(real, '/');
        if (slash)
            *slash = '\0';
    }
    const char *name = strrchr(real, '/');
    name = name ? name + 1 : real;
    if (json_object_array_length(disks) < 64)
        json_object_array_add(disks, cmd_fs_disk_address(name, real));
}

CMD_HANDLER(cmd_fs_info)
{
    CmdFsMounts m = {NULL, 0, 0};
    int r = cmd_fs_read_mounts(&m);
    if (r < 0)
        return qga_error_errno(err, r, "cannot read /proc/self/mountinfo");

    struct json_object *list = json_object_new_array();
    for (size_t i = 0; i < m.n; i++) {
        CmdFsMount *mt = &m.v[i];
        _cleanup_free_ char *sys =
            xasprintf("/sys/dev/block/%u:%u", major(mt->dev), minor(mt->dev));
        char real[PATH_MAX];
        const char *name = mt->source;
        if (realpath(sys, real)) {
            const char *b = strrchr(real, '/');
            name = b ? b + 1 : real;
        }
        struct json_object *fs = json_object_new_object();
        qga_json_add_str(fs, "name", name);
        qga_json_add_str(fs, "mountpoint", mt->mountpoint);
        qga_json_add_str(fs, "type", mt->fstype);
        struct statvfs sv;
        if (statvfs(mt->mountpoint, &sv) == 0) {
            uint64_t used = (uint64_t)(sv.f_blocks - sv.f_bfree);
            uint64_t total = used + sv.f_bavail;
            qga_json_add_uint(fs, "used-bytes", used * sv.f_frsize);
            qga_json_add_uint(fs, "total-bytes", total * sv.f_frsize);
        }
        struct json_object *disks = json_object_new_array();
        cmd_fs_add_disks(disks, sys, 0);
        json_object_object_add(fs, "disk", disks);
        json_object_array_add(list, fs);
    }
    cmd_fs_mounts_release(&m);
    *ret = list;
    return true;
}

/* -- freeze ---------------------------------------------------------------- */

void cmd_fs_init(Agent *ag)
{
    ag->freeze = xnew0(FreezeState, 1);
}

void cmd_fs_release(Agent *ag)
{
    free(ag->freeze);
    ag->freeze = NULL;
}

bool cmd_fs_frozen(const Agent *ag)
{
    return ag->freeze && ag->freeze->frozen > 0;
}

int cmd_fs_timeout_ms(const Agent *ag)
{
    if (!cmd_fs_frozen(ag))
        return -1;
    int64_t left = ag->freeze->deadline_ms - agent_io_now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Issues ioctl req on the filesystem mounted at path; returns -errno. */
static int cmd_fs_ioctl(const char *path, unsigned long req)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    if (ioctl(fd, req, 0) < 0)
        return -errno;
    return 0;
}

int cmd_fs_thaw_all(Agent *ag)
{
    CmdFsMounts m = {NULL, 0, 0};
    if (cmd_fs_read_mounts(&m) < 0)
        return -1;
    int thawed = 0;
    for (size_t i = m.n; i-- > 0;)
        if (cmd_fs_ioctl(m.v[i].mountpoint, FITHAW) == 0)
            thawed++;
    cmd_fs_mounts_release(&m);
    if (ag->freeze)
        ag->freeze->frozen = 0;
    return thawed;
}

void cmd_fs_tick(Agent *ag)
{
    if (cmd_fs_frozen(ag) && cmd_fs_timeout_ms(ag) == 0) {
        int n = cmd_fs_thaw_all(ag);
        log_warn("filesystems were frozen for %u s without a thaw; thawed %d", ag->freeze_timeout,
                 n);
    }
}

static bool cmd_fs_listed(struct json_object *list, const char *mountpoint)
{
    if (!list)
        return true;
    for (size_t i = 0; i < json_object_array_length(list); i++)
        if (STREQ(json_object_get_string(json_object_array_get_idx(list, i)), mountpoint))
            return true;
    return false;
}

static bool cmd_fs_do_freeze(Agent *ag, struct json_object *only, struct json_object **ret,
                             QgaError *err)
{
    if (ag->stdio)
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "freezing is refused in --stdio mode: it would freeze this "
                             "machine's own filesystems");
    if (cmd_fs_frozen(ag))
        return qga_error_set(err, QGA_ERROR_GENERIC, "The filesystems are already frozen");
    CmdFsMounts m = {NULL, 0, 0};
    int r = cmd_fs_read_mounts(&m);
    if (r < 0)
        return qga_error_errno(err, r, "cannot read /proc/self/mountinfo");

    sync();
    int frozen = 0;
    bool ok = true;
    /* Deepest mounts first, so a parent is never frozen before its children. */
    for (size_t i = m.n; i-- > 0 && ok;) {
        if (!cmd_fs_listed(only, m.v[i].mountpoint))
            continue;
        r = cmd_fs_ioctl(m.v[i].mountpoint, FIFREEZE);
        if (r == 0)
            frozen++;
        else if (r != -EOPNOTSUPP && r != -EBUSY && r != -ENOTTY)
            ok = qga_error_errno(err, r, "failed to freeze %s", m.v[i].mountpoint);
    }
    cmd_fs_mounts_release(&m);
    if (!ok) {
        cmd_fs_thaw_all(ag);
        return false;
    }
    ag->freeze->frozen = frozen;
    ag->freeze->deadline_ms = agent_io_now_ms() + (int64_t)ag->freeze_timeout * 1000;
    *ret = json_object_new_int(frozen);
    return true;
}

CMD_HANDLER(cmd_fs_freeze)
{
    return cmd_fs_do_freeze(ag, NULL, ret, err);
}

CMD_HANDLER(cmd_fs_freeze_list)
{
    struct json_object *list = NULL;
    if (qga_arg_has(args, "mountpoints"))
        json_object_object_get_ex(args, "mountpoints", &list);
    return cmd_fs_do_freeze(ag, list, ret, err);
}

CMD_HANDLER(cmd_fs_thaw)
{
    if (ag->stdio)
        return qga_error_set(err, QGA_ERROR_GENERIC, "thawing is refused in --stdio mode");
    int n = cmd_fs_thaw_all(ag);
    if (n < 0)
        return qga_error_set(err, QGA_ERROR_GENERIC, "cannot read /proc/self/mountinfo");
    *ret = json_object_new_int(n);
    return true;
}

CMD_HANDLER(cmd_fs_status)
{
    *ret = json_object_new_string(cmd_fs_frozen(ag) ? "frozen" : "thawed");
    return true;
}
