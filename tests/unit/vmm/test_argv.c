/*
 * Golden tests of the QEMU command-line builder: each configuration below
 * must produce exactly data/argv-NAME.golden (one argument per line). With
 * HX_REGEN_GOLDEN=1 the files are rewritten for review instead. Also checks
 * the invariants that hold for every argv (no vhost, no kvm:tcg fallback,
 * VNC on loopback only) and the refusals of bad configurations.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qemu_argv.h"
#include "vmm_test.h"

static const char *data_dir;

#define UUID "0f3c6d2a-5b1e-4c77-9a0e-2d4b8f6e1a90"
#define NOW 1795776000 /* 2026-11-27T00:00:00Z */

static QemuArgvEnv test_env(void)
{
    QemuArgvEnv env = {.qemu_binary = "qemu-system-x86_64",
                       .vm_dir = "/run/hyperxe/" UUID,
                       .qmp_fd = 3,
                       .now = NOW,
                       .ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd"};
    return env;
}

static void base_config(VmmConfig *c, const char *name)
{
    vmm_config_init(c);
    snprintf(c->uuid, sizeof(c->uuid), "%s", UUID);
    c->name = xstrdup(name);
}

static void check_invariants(char **argv)
{
    for (size_t i = 0; argv[i]; i++) {
        CHECK_MSG(!strstr(argv[i], "vhost"), "argument %zu mentions vhost: %s", i, argv[i]);
        if (i > 0 && strcmp(argv[i - 1], "-accel") == 0)
            CHECK_MSG(!strchr(argv[i], ':'), "accelerator fallback list: %s", argv[i]);
        if (i > 0 && strcmp(argv[i - 1], "-vnc") == 0)
            CHECK_MSG(strncmp(argv[i], "unix:", 5) == 0 || strncmp(argv[i], "127.0.0.1:", 10) == 0,
                      "VNC not on loopback: %s", argv[i]);
        CHECK_MSG(strcmp(argv[i], "-enable-kvm") != 0, "-enable-kvm used");
    }
}

static void check_golden(const char *name, char **argv)
{
    StrBuf got = STRBUF_INIT;
    for (size_t i = 0; argv[i]; i++) {
        strbuf_adds(&got, argv[i]);
        strbuf_addch(&got, '\n');
    }
    char *path = xasprintf("%s/argv-%s.golden", data_dir, name);
    if (getenv("HX_REGEN_GOLDEN")) {
        FILE *f = fopen(path, "w");
        REQUIRE(f);
        fwrite(got.buf, 1, got.len, f);
        fclose(f);
        printf("# regenerated %s\n", path);
    } else {
        FILE *f = fopen(path, "r");
        CHECK_MSG(f, "missing golden file %s (run with HX_REGEN_GOLDEN=1)", path);
        if (f) {
            StrBuf want = STRBUF_INIT;
            char buf[4096];
            size_t n;
            while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
                strbuf_add(&want, buf, n);
            fclose(f);
            if (strcmp(want.buf, got.buf) != 0) {
                /* show the first differing line */
                const char *a = want.buf, *b = got.buf;
                int line = 1;
                while (*a && *a == *b) {
                    if (*a == '\n')
                        line++;
                    a++;
                    b++;
                }
                test_fail(__FILE__, __LINE__, "%s differs at line %d:\n#  want: %.200s\n#  got:  %.200s",
                          path, line, a, b);
            }
            strbuf_release(&want);
        }
    }
    free(path);
    strbuf_release(&got);
}

static void run_golden(const char *name, VmmConfig *c)
{
    QemuArgvEnv env = test_env();
    char *err = NULL;
    char **argv = qemu_argv_build(c, &env, &err);
    CHECK_MSG(argv, "argv build failed: %s", err ? err : "?");
    if (argv) {
        check_invariants(argv);
        check_golden(name, argv);
        vmm_strv_free(argv);
    }
    free(err);
    vmm_config_release(c);
}

/* BIOS boot from a qcow2 virtio disk, empty IDE CD, tap NIC, VNC on a unix socket,
 * BIOS strings (with a comma to escape) and an RTC offset. */
static void t_bios_disk(void *data)
{
    VmmConfig c;
    base_config(&c, "web,server 1");
    c.vcpus = 2;
    c.vcpus_max = 2;
    c.memory_mib = 512;
    c.memory_target_mib = 384;
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/srv/sr/a b,c.qcow2",
                        VMM_DISK_FORMAT_QCOW2);
    vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, NULL, VMM_DISK_FORMAT_RAW);
    VmmNic *n = vmm_config_add_nic(&c, 0, "52:54:00:12:34:56", VMM_NIC_MODEL_VIRTIO);
    n->backend = VMM_NET_TAP;
    n->ifname = xstrdup("hxtap0");
    c.vnc = VMM_VNC_UNIX;
    vmm_config_add_smbios(&c, "bios-vendor", "Xen");
    vmm_config_add_smbios(&c, "system-product-name", "HVM domU");
    vmm_config_add_smbios(&c, "system-manufacturer", "Acme, Inc.");
    vmm_config_add_smbios(&c, "enclosure-asset-tag", "A-42");
    vmm_config_add_smbios(&c, "oem-1", "first");
    vmm_config_add_smbios(&c, "oem-2", "second");
    vmm_config_add_smbios(&c, "hp-rombios", "");
    c.rtc_offset_s = 3600;
    free(c.boot_order);
    c.boot_order = xstrdup("cdn");
    run_golden("bios-disk", &c);
}

/* Direct kernel boot, user-mode networking with a forward, console socket, paused start,
 * vCPU hot-plug room, small translation cache. */
static void t_direct_kernel(void *data)
{
    VmmConfig c;
    base_config(&c, "pv-guest");
    c.kernel = xstrdup("/var/lib/hyperxe/kernels/vmlinuz");
    c.initrd = xstrdup("/var/lib/hyperxe/kernels/initrd.img");
    c.cmdline = xstrdup("console=ttyS0 root=/dev/vda1 opts=a,b");
    c.vcpus = 1;
    c.vcpus_max = 4;
    c.memory_mib = 128;
    c.tcg_tb_size_mib = 16;
    c.start_paused = true;
    c.serial_socket = true;
    c.balloon = false;
    VmmNic *n = vmm_config_add_nic(&c, 1, "52:54:00:aa:bb:01", VMM_NIC_MODEL_VIRTIO);
    n->backend = VMM_NET_USER;
    n->user_reason = xstrdup("no bridge can be made without root");
    n->hostfwd = xnew0(char *, 2);
    n->hostfwd[0] = xstrdup("tcp:127.0.0.1:18080-:80");
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/srv/sr/root.raw",
                        VMM_DISK_FORMAT_RAW)->serial = xstrdup("hx-root");
    run_golden("direct-kernel", &c);
}

/* Emulated hardware: IDE disk, IDE CD with an ISO, e1000 and rtl8139, ACPI off, USB tablet,
 * VNC on a TCP port, cirrus VGA, boot from CD first. */
static void t_ide_e1000(void *data)
{
    VmmConfig c;
    base_config(&c, "legacy");
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_IDE, "/srv/sr/legacy.img",
                        VMM_DISK_FORMAT_RAW);
    vmm_config_add_disk(&c, 2, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, "/srv/iso/install.iso",
                        VMM_DISK_FORMAT_RAW);
    VmmNic *n = vmm_config_add_nic(&c, 0, "52:54:00:00:00:01", VMM_NIC_MODEL_E1000);
    n->backend = VMM_NET_TAP;
    n->ifname = xstrdup("vif1.0");
    n = vmm_config_add_nic(&c, 1, "52:54:00:00:00:02", VMM_NIC_MODEL_RTL8139);
    n->backend = VMM_NET_TAP;
    n->ifname = xstrdup("vif1.1");
    c.acpi = false;
    c.usb_tablet = true;
    c.vnc = VMM_VNC_TCP;
    c.vnc_display = 5;
    c.vga = xstrdup("cirrus");
    c.qga = false;
    c.pvpanic = false;
    free(c.boot_order);
    c.boot_order = xstrdup("dcn");
    c.reboot_is_shutdown = true;
    run_golden("ide-e1000", &c);
}

/* An empty CD drive on SCSI next to a SCSI disk: the controller appears, the empty drive
 * still gets its boot index and no block nodes. */
static void t_cdrom_empty(void *data)
{
    VmmConfig c;
    base_config(&c, "installer");
    vmm_config_add_disk(&c, 1, VMM_DISK_TYPE_DISK, VMM_BUS_SCSI, "/srv/sr/d1.qcow2",
                        VMM_DISK_FORMAT_QCOW2);
    vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_SCSI, NULL, VMM_DISK_FORMAT_RAW);
    vmm_config_add_disk(&c, 2, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/srv/sr/d2.raw",
                        VMM_DISK_FORMAT_RAW)->read_only = true;
    free(c.boot_order);
    c.boot_order = xstrdup("dc");
    c.vnc = VMM_VNC_TCP; /* auto display */
    c.keep_on_shutdown = true;
    run_golden("cdrom-empty", &c);
}

/* User-mode networking only, UEFI with its NVRAM, q35, KVM, resume from a file. */
static void t_user_net(void *data)
{
    VmmConfig c;
    base_config(&c, "uefi-guest");
    c.accel = VMM_ACCEL_KVM;
    c.machine = VMM_MACHINE_Q35;
    c.firmware = VMM_FIRMWARE_UEFI;
    c.nvram_path = xstrdup("/var/lib/hyperxe/nvram/" UUID ".fd");
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/srv/sr/u.qcow2",
                        VMM_DISK_FORMAT_QCOW2)->bootindex = 7;
    VmmNic *n = vmm_config_add_nic(&c, 0, "52:54:00:de:ad:01", VMM_NIC_MODEL_VIRTIO);
    n->user_reason = xstrdup("network has no bridge on this host");
    c.incoming = VMM_INCOMING_FILE;
    c.incoming_path = xstrdup("/var/lib/hyperxe/suspend/x.img");
    run_golden("user-net", &c);
}

typedef struct BadCase {
    const char *title;
    void (*make)(VmmConfig *c);
    const char *msg;
} BadCase;

static void bad_ide_ro(VmmConfig *c)
{
    vmm_config_add_disk(c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_IDE, "/x", 0)->read_only = true;
}
static void bad_cd_virtio(VmmConfig *c)
{
    vmm_config_add_disk(c, 0, VMM_DISK_TYPE_CDROM, VMM_BUS_VIRTIO, NULL, 0);
}
static void bad_dup_disk(VmmConfig *c)
{
    vmm_config_add_disk(c, 1, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/a", 0);
    vmm_config_add_disk(c, 1, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/b", 0);
}
static void bad_mac(VmmConfig *c)
{
    vmm_config_add_nic(c, 0, "01:00:5e:00:00:01", VMM_NIC_MODEL_VIRTIO);
}
static void bad_tap_name(VmmConfig *c)
{
    VmmNic *n = vmm_config_add_nic(c, 0, "52:54:00:00:00:09", VMM_NIC_MODEL_VIRTIO);
    n->backend = VMM_NET_TAP;
    n->ifname = xstrdup("tap0,vhost=on");
}
static void bad_smbios(VmmConfig *c)
{
    vmm_config_add_smbios(c, "bios-colour", "blue");
}
static void bad_ide_pos(VmmConfig *c)
{
    vmm_config_add_disk(c, 5, VMM_DISK_TYPE_DISK, VMM_BUS_IDE, "/x", 0);
}
static void bad_order(VmmConfig *c)
{
    free(c->boot_order);
    c->boot_order = xstrdup("cx");
}
static void bad_initrd_alone(VmmConfig *c)
{
    c->initrd = xstrdup("/boot/initrd");
}
static void bad_vcpus(VmmConfig *c)
{
    c->vcpus = 4;
    c->vcpus_max = 2;
}
static void bad_uefi(VmmConfig *c)
{
    c->firmware = VMM_FIRMWARE_UEFI;
}
static void bad_nic_pos(VmmConfig *c)
{
    vmm_config_add_nic(c, 7, "52:54:00:00:00:09", VMM_NIC_MODEL_VIRTIO);
}

static const BadCase bad_cases[] = {
    {"read-only IDE disk", bad_ide_ro, "IDE hard disks cannot be read-only"},
    {"CD on virtio", bad_cd_virtio, "cannot be on virtio"},
    {"two disks at one position", bad_dup_disk, "two disks at position 1"},
    {"multicast MAC", bad_mac, "not a unicast"},
    {"tap name with options", bad_tap_name, "interface name"},
    {"unknown BIOS string", bad_smbios, "unknown BIOS string key 'bios-colour'"},
    {"IDE position 5 on pc", bad_ide_pos, "IDE positions 0..3"},
    {"boot order letter", bad_order, "use only c (disk)"},
    {"initrd without kernel", bad_initrd_alone, "needs a kernel"},
    {"VCPUs-max below startup", bad_vcpus, "VCPUs-max"},
    {"UEFI without NVRAM", bad_uefi, "NVRAM"},
    {"NIC position 7", bad_nic_pos, "NIC position 7"},
};

static void t_bad(void *data)
{
    const BadCase *bc = data;
    VmmConfig c;
    base_config(&c, "bad");
    bc->make(&c);
    QemuArgvEnv env = test_env();
    char *err = NULL;
    char **argv = qemu_argv_build(&c, &env, &err);
    CHECK(argv == NULL);
    CHECK_CONTAINS(err, bc->msg);
    CHECK_CONTAINS(err, UUID);
    vmm_strv_free(argv);
    free(err);
    vmm_config_release(&c);
}

static void t_uefi_without_ovmf(void *data)
{
    VmmConfig c;
    base_config(&c, "u");
    c.firmware = VMM_FIRMWARE_UEFI;
    c.nvram_path = xstrdup("/tmp/vars.fd");
    QemuArgvEnv env = test_env();
    env.ovmf_code = NULL;
    char *err = NULL;
    char **argv = qemu_argv_build(&c, &env, &err);
    CHECK(argv == NULL);
    CHECK_CONTAINS(err, "OVMF");
    free(err);
    vmm_config_release(&c);
}

static void t_boot_order(void *data)
{
    VmmConfig c;
    base_config(&c, "order");
    VmmDisk *d0 = vmm_config_add_disk(&c, 1, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/a", 0);
    (void)d0;
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, "/b", 0);
    vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, NULL, 0);
    vmm_config_add_nic(&c, 0, "52:54:00:00:00:01", VMM_NIC_MODEL_VIRTIO);
    free(c.boot_order);
    c.boot_order = xstrdup("ndc");
    /* n first, then the CD, then disks by position */
    CHECK_INT(qemu_argv_nic_bootindex(&c, &c.nics[0]), 1);
    CHECK_INT(qemu_argv_disk_bootindex(&c, &c.disks[2]), 2);
    CHECK_INT(qemu_argv_disk_bootindex(&c, &c.disks[1]), 3);
    CHECK_INT(qemu_argv_disk_bootindex(&c, &c.disks[0]), 4);
    /* an explicit index wins and the derived ones go above it */
    c.disks[0].bootindex = 5;
    CHECK_INT(qemu_argv_disk_bootindex(&c, &c.disks[0]), 5);
    CHECK_INT(qemu_argv_nic_bootindex(&c, &c.nics[0]), 6);
    /* a class missing from the order is not bootable */
    free(c.boot_order);
    c.boot_order = xstrdup("c");
    c.disks[0].bootindex = -1;
    CHECK_INT(qemu_argv_nic_bootindex(&c, &c.nics[0]), -1);
    CHECK_INT(qemu_argv_disk_bootindex(&c, &c.disks[2]), -1);
    CHECK_INT(qemu_argv_disk_bootindex(&c, &c.disks[1]), 1);
    vmm_config_release(&c);
}

static void t_to_string(void *data)
{
    char a0[] = "qemu", a1[] = "-append", a2[] = "console=ttyS0 x='y'", a3[] = "-name",
         a4[] = "a,b", a5[] = "";
    char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    char *s = qemu_argv_to_string(argv);
    CHECK_STR(s, "qemu -append 'console=ttyS0 x='\\''y'\\''' -name a,b ''");
    free(s);
}

static void t_qmp_fd_absent(void *data)
{
    VmmConfig c;
    base_config(&c, "x");
    QemuArgvEnv env = test_env();
    env.qmp_fd = -1;
    char **argv = qemu_argv_build(&c, &env, NULL);
    REQUIRE(argv);
    bool found = false;
    for (size_t i = 0; argv[i]; i++)
        found |= strstr(argv[i], "path=/run/hyperxe/" UUID "/qmp.sock,server=on") != NULL;
    CHECK(found);
    vmm_strv_free(argv);
    vmm_config_release(&c);
}

int main(int argc, char **argv)
{
    data_dir = argc > 1 ? argv[1] : "data";
    test_run("golden: BIOS disk boot, tap, VNC socket, SMBIOS, RTC offset", t_bios_disk, NULL);
    test_run("golden: direct kernel boot, user net, paused, hot-plug room", t_direct_kernel, NULL);
    test_run("golden: IDE disk and CD, e1000, rtl8139, ACPI off, VNC port", t_ide_e1000, NULL);
    test_run("golden: empty SCSI CD drive, boot order dc", t_cdrom_empty, NULL);
    test_run("golden: user-mode net, UEFI, q35, KVM, resume from file", t_user_net, NULL);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        char *title = xasprintf("refused: %s", bad_cases[i].title);
        test_run(title, t_bad, (void *)&bad_cases[i]);
        free(title);
    }
    test_run("refused: UEFI when OVMF is missing", t_uefi_without_ovmf, NULL);
    test_run("boot order to boot indexes", t_boot_order, NULL);
    test_run("argv as a shell line", t_to_string, NULL);
    test_run("QMP socket path when no fd is inherited", t_qmp_fd_absent, NULL);
    return test_done();
}
