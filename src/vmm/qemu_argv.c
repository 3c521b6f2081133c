/*
 * The QEMU command-line builder. See qemu_argv.h.
 *
 * Rules kept here: TCG or KVM is always chosen explicitly (never "kvm:tcg"),
 * VNC listens on loopback or a unix socket only, taps are opened with
 * script=no and never with vhost, every user-supplied string that lands in a
 * key=value option has its commas escaped, devices sit at fixed PCI slots.
 * This file must not touch the file system, the clock or QEMU itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qemu_argv.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

typedef struct ArgV {
    char **v;
    size_t n, alloc;
} ArgV;

static void argv_add(ArgV *a, const char *s)
{
    XGROW(a->v, a->n + 2, a->alloc);
    a->v[a->n++] = xstrdup(s);
    a->v[a->n] = NULL;
}

static void HX_PRINTF(2, 3) argv_addf(ArgV *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    XGROW(a->v, a->n + 2, a->alloc);
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void argv_add2(ArgV *a, const char *opt, const char *val)
{
    argv_add(a, opt);
    argv_add(a, val);
}

/* Adds "opt" and the compact JSON of obj (consumed). */
static void argv_add_json(ArgV *a, const char *opt, struct json_object *obj)
{
    argv_add(a, opt);
    argv_add(a, vmm_json_str(obj));
    json_object_put(obj);
}

void qemu_argv_add_escaped(StrBuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            strbuf_addch(sb, ',');
        strbuf_addch(sb, *s);
    }
}

char *qemu_argv_disk_id(unsigned position)
{
    return xasprintf("disk%u", position);
}

char *qemu_argv_disk_node(unsigned position, const char *what)
{
    return xasprintf("disk%u-%s", position, what);
}

static char *qemu_argv_slot(unsigned slot)
{
    return xasprintf("0x%x", slot);
}

/* ---- boot order ----------------------------------------------------------- */

static int qemu_argv_max_explicit(const VmmConfig *cfg)
{
    int m = 0;
    for (size_t i = 0; i < cfg->n_disks; i++)
        m = MAX(m, cfg->disks[i].bootindex);
    for (size_t i = 0; i < cfg->n_nics; i++)
        m = MAX(m, cfg->nics[i].bootindex);
    return m;
}

/*
 * Walks the boot order the way the firmware should: for each letter, the
 * devices of that class by position. Returns the index given to (disk or nic)
 * or -1 if it gets none.
 */
static int qemu_argv_bootindex(const VmmConfig *cfg, const VmmDisk *want_disk,
                               const VmmNic *want_nic)
{
    if (want_disk && want_disk->bootindex >= 0)
        return want_disk->bootindex;
    if (want_nic && want_nic->bootindex >= 0)
        return want_nic->bootindex;
    int next = qemu_argv_max_explicit(cfg) + 1;
    bool used[3] = {false, false, false};
    for (const char *o = cfg->boot_order ? cfg->boot_order : ""; *o; o++) {
        char c = (char)(*o | 0x20);
        int cls = c == 'c' ? 0 : c == 'd' ? 1 : 2;
        if (used[cls])
            continue;
        used[cls] = true;
        if (cls == 2) {
            for (unsigned p = 0; p < VMM_MAX_NICS; p++) {
                for (size_t i = 0; i < cfg->n_nics; i++) {
                    const VmmNic *n = &cfg->nics[i];
                    if (n->position != p || n->bootindex >= 0)
                        continue;
                    if (n == want_nic)
                        return next;
                    next++;
                }
            }
            continue;
        }
        VmmDiskType t = cls == 0 ? VMM_DISK_TYPE_DISK : VMM_DISK_TYPE_CDROM;
        for (unsigned p = 0; p < VMM_MAX_DISKS; p++) {
            for (size_t i = 0; i < cfg->n_disks; i++) {
                const VmmDisk *d = &cfg->disks[i];
                if (d->position != p || d->type != t || d->bootindex >= 0)
                    continue;
                if (d == want_disk)
                    return next;
                next++;
            }
        }
    }
    return -1;
}

int qemu_argv_disk_bootindex(const VmmConfig *cfg, const VmmDisk *disk)
{
    return qemu_argv_bootindex(cfg, disk, NULL);
}

int qemu_argv_nic_bootindex(const VmmConfig *cfg, const VmmNic *nic)
{
    return qemu_argv_bootindex(cfg, NULL, nic);
}

/* ---- disks ---------------------------------------------------------------- */

static bool qemu_argv_disk_ro(const VmmDisk *d)
{
    return d->read_only || d->type == VMM_DISK_TYPE_CDROM;
}

struct json_object *qemu_argv_disk_file_node(const VmmDisk *d)
{
    _cleanup_free_ char *node = qemu_argv_disk_node(d->position, "file");
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "driver", json_object_new_string("file"));
    json_object_object_add(o, "filename", json_object_new_string(d->path));
    json_object_object_add(o, "node-name", json_object_new_string(node));
    json_object_object_add(o, "read-only", json_object_new_boolean(qemu_argv_disk_ro(d)));
    json_object_object_add(o, "auto-read-only", json_object_new_boolean(true));
    json_object_object_add(o, "discard", json_object_new_string("unmap"));
    return o;
}

struct json_object *qemu_argv_disk_format_node(const VmmDisk *d)
{
    _cleanup_free_ char *file = qemu_argv_disk_node(d->position, "file");
    _cleanup_free_ char *node = qemu_argv_disk_node(d->position, "fmt");
    bool cd = d->type == VMM_DISK_TYPE_CDROM;
    struct json_object *o = json_object_new_object();
    json_object_object_add(
        o, "driver",
        json_object_new_string(cd ? "raw" : vmm_disk_format_to_string(d->format)));
    json_object_object_add(o, "file", json_object_new_string(file));
    json_object_object_add(o, "node-name", json_object_new_string(node));
    json_object_object_add(o, "read-only", json_object_new_boolean(qemu_argv_disk_ro(d)));
    json_object_object_add(o, "discard", json_object_new_string("unmap"));
    return o;
}

struct json_object *qemu_argv_disk_device(VmmMachine machine, const VmmDisk *d, int bootindex)
{
    _cleanup_free_ char *id = qemu_argv_disk_id(d->position);
    _cleanup_free_ char *node = qemu_argv_disk_node(d->position, "fmt");
    bool cd = d->type == VMM_DISK_TYPE_CDROM;
    struct json_object *o = json_object_new_object();
    const char *driver;
    switch (d->bus) {
    case VMM_BUS_IDE:
        driver = cd ? "ide-cd" : "ide-hd";
        break;
    case VMM_BUS_SCSI:
        driver = cd ? "scsi-cd" : "scsi-hd";
        break;
    default:
        driver = "virtio-blk-pci";
        break;
    }
    json_object_object_add(o, "driver", json_object_new_string(driver));
    json_object_object_add(o, "id", json_object_new_string(id));
    if (d->path)
        json_object_object_add(o, "drive", json_object_new_string(node));
    if (d->bus == VMM_BUS_IDE) {
        char bus[16];
        if (machine == VMM_MACHINE_Q35) {
            snprintf(bus, sizeof(bus), "ide.%u", d->position);
            json_object_object_add(o, "bus", json_object_new_string(bus));
        } else {
            snprintf(bus, sizeof(bus), "ide.%u", d->position / 2);
            json_object_object_add(o, "bus", json_object_new_string(bus));
            json_object_object_add(o, "unit", json_object_new_int((int)(d->position % 2)));
        }
    } else if (d->bus == VMM_BUS_SCSI) {
        json_object_object_add(o, "bus", json_object_new_string("scsi0.0"));
        json_object_object_add(o, "channel", json_object_new_int(0));
        json_object_object_add(o, "scsi-id", json_object_new_int((int)d->position));
        json_object_object_add(o, "lun", json_object_new_int(0));
    } else {
        _cleanup_free_ char *slot = qemu_argv_slot(QEMU_SLOT_DISK0 + d->position);
        json_object_object_add(o, "addr", json_object_new_string(slot));
    }
    if (d->serial)
        json_object_object_add(o, "serial", json_object_new_string(d->serial));
    if (bootindex >= 0)
        json_object_object_add(o, "bootindex", json_object_new_int(bootindex));
    return o;
}

/* ---- NICs ----------------------------------------------------------------- */

struct json_object *qemu_argv_nic_netdev(const VmmNic *n)
{
    char id[16];
    snprintf(id, sizeof(id), "net%u", n->position);
    struct json_object *o = json_object_new_object();
    if (n->backend == VMM_NET_TAP) {
        json_object_object_add(o, "type", json_object_new_string("tap"));
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "ifname", json_object_new_string(n->ifname ? n->ifname : ""));
        json_object_object_add(o, "script", json_object_new_string("no"));
        json_object_object_add(o, "downscript", json_object_new_string("no"));
    } else {
        json_object_object_add(o, "type", json_object_new_string("user"));
        json_object_object_add(o, "id", json_object_new_string(id));
        if (n->hostfwd && n->hostfwd[0]) {
            struct json_object *list = json_object_new_array();
            for (char **h = n->hostfwd; *h; h++) {
                struct json_object *e = json_object_new_object();
                json_object_object_add(e, "str", json_object_new_string(*h));
                json_object_array_add(list, e);
            }
            json_object_object_add(o, "hostfwd", list);
        }
    }
    return o;
}

struct json_object *qemu_argv_nic_device(const VmmNic *n, int bootindex)
{
    static const char *const drivers[VMM_NIC_MODEL__MAX] = {"virtio-net-pci", "e1000",
                                                            "rtl8139"};
    char id[16], netdev[16];
    snprintf(id, sizeof(id), "nic%u", n->position);
    snprintf(netdev, sizeof(netdev), "net%u", n->position);
    _cleanup_free_ char *slot = qemu_argv_slot(QEMU_SLOT_NIC0 + n->position);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "driver", json_object_new_string(drivers[n->model]));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "netdev", json_object_new_string(netdev));
    json_object_object_add(o, "mac", json_object_new_string(n->mac));
    json_object_object_add(o, "addr", json_object_new_string(slot));
    if (bootindex >= 0)
        json_object_object_add(o, "bootindex", json_object_new_int(bootindex));
    return o;
}

/* ---- SMBIOS --------------------------------------------------------------- */

typedef struct SmbiosField {
    const char *key;
    int type;
    const char *field;
} SmbiosField;

/* XenServer bios_strings -> QEMU -smbios fields, in output order. */
static const SmbiosField smbios_fields[] = {
    {"bios-vendor", 0, "vendor"},
    {"bios-version", 0, "version"},
    {"system-manufacturer", 1, "manufacturer"},
    {"system-product-name", 1, "product"},
    {"system-version", 1, "version"},
    {"system-serial-number", 1, "serial"},
    {"baseboard-manufacturer", 2, "manufacturer"},
    {"baseboard-product-name", 2, "product"},
    {"baseboard-version", 2, "version"},
    {"baseboard-serial-number", 2, "serial"},
    {"baseboard-asset-tag", 2, "asset"},
    {"baseboard-location-in-chassis", 2, "location"},
    {"enclosure-asset-tag", 3, "asset"},
    {"oem-1", 11, "value"},
    {"oem-2", 11, "value"},
};

static const char *qemu_argv_smbios_value(const VmmConfig *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_smbios; i++)
        if (STREQ(cfg->smbios[i].key, key))
            return cfg->smbios[i].value;
    return NULL;
}

static void qemu_argv_smbios(ArgV *a, const VmmConfig *cfg)
{
    static const int types[] = {0, 1, 2, 3, 11};
    for (size_t t = 0; t < ARRAY_SIZE(types); t++) {
        _cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
        strbuf_addf(&sb, "type=%d", types[t]);
        size_t base = sb.len;
        for (size_t i = 0; i < ARRAY_SIZE(smbios_fields); i++) {
            const SmbiosField *f = &smbios_fields[i];
            const char *v = f->type == types[t] ? qemu_argv_smbios_value(cfg, f->key) : NULL;
            if (!v)
                continue;
            strbuf_addf(&sb, ",%s=", f->field);
            qemu_argv_add_escaped(&sb, v);
        }
        if (sb.len > base)
            argv_add2(a, "-smbios", sb.buf);
    }
}

/* ---- the whole command line ----------------------------------------------- */

static char *qemu_argv_path(const QemuArgvEnv *env, const char *name)
{
    return xasprintf("%s/%s", env->vm_dir, name);
}

/* "-chardev socket,id=ID,path=PATH,server=on,wait=off" with the path escaped. */
static void qemu_argv_socket_chardev(ArgV *a, const QemuArgvEnv *env, const char *id,
                                     const char *file, const char *logfile)
{
    _cleanup_free_ char *path = qemu_argv_path(env, file);
    _cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "socket,id=%s,path=", id);
    qemu_argv_add_escaped(&sb, path);
    strbuf_adds(&sb, ",server=on,wait=off");
    if (logfile) {
        _cleanup_free_ char *log = qemu_argv_path(env, logfile);
        strbuf_adds(&sb, ",logfile=");
        qemu_argv_add_escaped(&sb, log);
        strbuf_adds(&sb, ",logappend=on");
    }
    argv_add2(a, "-chardev", sb.buf);
}

static void qemu_argv_pflash(ArgV *a, const char *node, const char *path, bool ro)
{
    _cleanup_free_ char *file = xasprintf("%s-file", node);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "driver", json_object_new_string("file"));
    json_object_object_add(o, "filename", json_object_new_string(path));
    json_object_object_add(o, "node-name", json_object_new_string(file));
    json_object_object_add(o, "read-only", json_object_new_boolean(ro));
    argv_add_json(a, "-blockdev", o);
    o = json_object_new_object();
    json_object_object_add(o, "driver", json_object_new_string("raw"));
    json_object_object_add(o, "file", json_object_new_string(file));
    json_object_object_add(o, "node-name", json_object_new_string(node));
    json_object_object_add(o, "read-only", json_object_new_boolean(ro));
    argv_add_json(a, "-blockdev", o);
}

char **qemu_argv_build(const VmmConfig *cfg, const QemuArgvEnv *env, char **err)
{
    if (vmm_config_validate(cfg, err) < 0)
        return NULL;
    if (cfg->firmware == VMM_FIRMWARE_UEFI && !env->ovmf_code) {
        vmm_error(err, -ENOENT, "VM %s: UEFI firmware (OVMF) is not installed", cfg->uuid);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_disks; i++) {
        const VmmDisk *d = &cfg->disks[i];
        if (d->bus == VMM_BUS_IDE && d->type == VMM_DISK_TYPE_DISK && d->read_only) {
            vmm_error(err, -EINVAL, "VM %s: disk %u: IDE hard disks cannot be read-only; use "
                      "virtio or scsi", cfg->uuid, d->position);
            return NULL;
        }
    }

    ArgV a = {0};
    argv_add(&a, env->qemu_binary ? env->qemu_binary : "qemu-system-x86_64");

    _cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "guest=");
    qemu_argv_add_escaped(&sb, cfg->name && *cfg->name ? cfg->name : cfg->uuid);
    strbuf_addf(&sb, ",process=qemu-%.8s", cfg->uuid);
    argv_add2(&a, "-name", sb.buf);
    argv_add2(&a, "-uuid", cfg->uuid);
    argv_add(&a, "-no-user-config");
    argv_add(&a, "-nodefaults");
    argv_add2(&a, "-msg", "timestamp=on");

    strbuf_reset(&sb);
    strbuf_adds(&sb, cfg->machine == VMM_MACHINE_Q35 ? "q35" : "pc");
    strbuf_addf(&sb, ",acpi=%s", cfg->acpi ? "on" : "off");
    if (cfg->firmware == VMM_FIRMWARE_UEFI)
        strbuf_adds(&sb, ",pflash0=pflash0,pflash1=pflash1");
    argv_add2(&a, "-machine", sb.buf);
    if (cfg->accel == VMM_ACCEL_KVM) {
        argv_add2(&a, "-accel", "kvm");
    } else if (cfg->tcg_tb_size_mib) {
        argv_addf(&a, "-accel");
        argv_addf(&a, "tcg,tb-size=%u", cfg->tcg_tb_size_mib);
    } else {
        argv_add2(&a, "-accel", "tcg");
    }
    argv_add2(&a, "-cpu", cfg->cpu_model ? cfg->cpu_model
                                         : cfg->accel == VMM_ACCEL_KVM ? "host" : "qemu64");
    argv_add(&a, "-m");
    argv_addf(&a, "size=%lluM", (unsigned long long)cfg->memory_mib);
    unsigned maxc = cfg->vcpus_max ? cfg->vcpus_max : cfg->vcpus;
    argv_add(&a, "-smp");
    argv_addf(&a, "cpus=%u,maxcpus=%u,sockets=%u,cores=1,threads=1", cfg->vcpus, maxc, maxc);

    if (cfg->rtc_offset_s) {
        time_t t = (time_t)(env->now + cfg->rtc_offset_s);
        struct tm tm;
        gmtime_r(&t, &tm);
        char base[32];
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
        argv_add(&a, "-rtc");
        argv_addf(&a, "base=%s", base);
    } else {
        argv_add2(&a, "-rtc", "base=utc");
    }
    argv_add2(&a, "-action", "panic=pause");
    if (cfg->keep_on_shutdown)
        argv_add(&a, "-no-shutdown");
    if (cfg->reboot_is_shutdown)
        argv_add(&a, "-no-reboot");
    if (cfg->start_paused)
        argv_add(&a, "-S");

    /* monitors: the daemon's (inherited fd or qmp.sock) and a spare one for tools */
    if (env->qmp_fd >= 0) {
        argv_add(&a, "-chardev");
        argv_addf(&a, "socket,id=charmonitor,fd=%d,server=on,wait=off", env->qmp_fd);
    } else {
        qemu_argv_socket_chardev(&a, env, "charmonitor", "qmp.sock", NULL);
    }
    argv_add2(&a, "-mon", "chardev=charmonitor,id=monitor,mode=control");
    qemu_argv_socket_chardev(&a, env, "charaux", "qmp-aux.sock", NULL);
    argv_add2(&a, "-mon", "chardev=charaux,id=monitor-aux,mode=control");
    _cleanup_free_ char *pidfile = qemu_argv_path(env, "qemu.pid");
    argv_add2(&a, "-pidfile", pidfile);

    /* firmware and boot */
    if (cfg->firmware == VMM_FIRMWARE_UEFI) {
        qemu_argv_pflash(&a, "pflash0", env->ovmf_code, true);
        qemu_argv_pflash(&a, "pflash1", cfg->nvram_path, false);
    }
    if (cfg->kernel) {
        argv_add2(&a, "-kernel", cfg->kernel);
        if (cfg->initrd)
            argv_add2(&a, "-initrd", cfg->initrd);
        if (cfg->cmdline)
            argv_add2(&a, "-append", cfg->cmdline);
    }

    /* display */
    const char *vga = cfg->vga ? cfg->vga : cfg->vnc != VMM_VNC_NONE ? "std" : "none";
    argv_add2(&a, "-display", "none");
    if (cfg->vnc == VMM_VNC_UNIX) {
        _cleanup_free_ char *p = qemu_argv_path(env, "vnc.sock");
        strbuf_reset(&sb);
        strbuf_adds(&sb, "unix:");
        qemu_argv_add_escaped(&sb, p);
        argv_add2(&a, "-vnc", sb.buf);
    } else if (cfg->vnc == VMM_VNC_TCP) {
        argv_add(&a, "-vnc");
        if (cfg->vnc_display >= 0)
            argv_addf(&a, "127.0.0.1:%d", cfg->vnc_display);
        else
            argv_add(&a, "127.0.0.1:0,to=99");
    }
    if (!STREQ(vga, "none")) {
        argv_add(&a, "-device");
        argv_addf(&a, "%s,id=video0,addr=0x%x", STREQ(vga, "cirrus") ? "cirrus-vga" : "VGA",
                  QEMU_SLOT_VGA);
    }

    /* serial console: always logged to console.log */
    if (cfg->serial_socket) {
        qemu_argv_socket_chardev(&a, env, "charserial0", "console.sock", "console.log");
    } else {
        _cleanup_free_ char *log = qemu_argv_path(env, "console.log");
        strbuf_reset(&sb);
        strbuf_adds(&sb, "file,id=charserial0,path=");
        qemu_argv_add_escaped(&sb, log);
        strbuf_adds(&sb, ",append=on");
        argv_add2(&a, "-chardev", sb.buf);
    }
    argv_add2(&a, "-device", "isa-serial,chardev=charserial0,id=serial0");

    /* disks */
    bool scsi = false;
    for (size_t i = 0; i < cfg->n_disks; i++)
        scsi |= cfg->disks[i].bus == VMM_BUS_SCSI;
    if (scsi) {
        argv_add(&a, "-device");
        argv_addf(&a, "virtio-scsi-pci,id=scsi0,addr=0x%x", QEMU_SLOT_SCSI);
    }
    for (unsigned p = 0; p < VMM_MAX_DISKS; p++) {
        for (size_t i = 0; i < cfg->n_disks; i++) {
            const VmmDisk *d = &cfg->disks[i];
            if (d->position != p)
                continue;
            if (d->path) {
                argv_add_json(&a, "-blockdev", qemu_argv_disk_file_node(d));
                argv_add_json(&a, "-blockdev", qemu_argv_disk_format_node(d));
            }
            argv_add_json(&a, "-device",
                          qemu_argv_disk_device(cfg->machine, d, qemu_argv_disk_bootindex(cfg, d)));
        }
    }

    /* NICs */
    for (unsigned p = 0; p < VMM_MAX_NICS; p++) {
        for (size_t i = 0; i < cfg->n_nics; i++) {
            const VmmNic *n = &cfg->nics[i];
            if (n->position != p)
                continue;
            argv_add_json(&a, "-netdev", qemu_argv_nic_netdev(n));
            argv_add_json(&a, "-device", qemu_argv_nic_device(n, qemu_argv_nic_bootindex(cfg, n)));
        }
    }

    /* guest agent, panic, balloon, USB */
    if (cfg->qga) {
        argv_add(&a, "-device");
        argv_addf(&a, "virtio-serial-pci,id=vser0,addr=0x%x", QEMU_SLOT_SERIAL);
        qemu_argv_socket_chardev(&a, env, "charqga0", "qga.sock", NULL);
        argv_add2(&a, "-device", "virtserialport,bus=vser0.0,nr=1,chardev=charqga0,id=qga0,"
                                 "name=org.qemu.guest_agent.0");
    }
    if (cfg->pvpanic) {
        argv_add(&a, "-device");
        argv_addf(&a, "pvpanic-pci,id=pvpanic0,addr=0x%x", QEMU_SLOT_PVPANIC);
    }
    if (cfg->balloon) {
        argv_add(&a, "-device");
        argv_addf(&a, "virtio-balloon-pci,id=balloon0,addr=0x%x", QEMU_SLOT_BALLOON);
    }
    if (cfg->usb_tablet) {
        argv_add(&a, "-device");
        argv_addf(&a, "qemu-xhci,id=usb,addr=0x%x", QEMU_SLOT_USB);
        argv_add2(&a, "-device", "usb-tablet,id=tablet0,bus=usb.0");
    }
    qemu_argv_smbios(&a, cfg);

    /* migration target: the image or URI is handed over QMP once QEMU is up */
    if (cfg->incoming != VMM_INCOMING_NONE)
        argv_add2(&a, "-incoming", "defer");

    for (char **x = cfg->extra_args; x && *x; x++)
        argv_add(&a, *x);
    return a.v;
}

static bool qemu_argv_needs_quote(const char *s)
{
    if (!*s)
        return true;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    "-_./=:,+@%", *s))
            return true;
    return false;
}

char *qemu_argv_to_string(char *const *argv)
{
    _cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
    for (size_t i = 0; argv[i]; i++) {
        if (i)
            strbuf_addch(&sb, ' ');
        if (!qemu_argv_needs_quote(argv[i])) {
            strbuf_adds(&sb, argv[i]);
            continue;
        }
        strbuf_addch(&sb, '\'');
        for (const char *p = argv[i]; *p; p++) {
            if (*p == '\'')
                strbuf_adds(&sb, "'\\''");
            else
                strbuf_addch(&sb, *p);
        }
        strbuf_addch(&sb, '\'');
    }
    return strbuf_detach(&sb, NULL);
}
