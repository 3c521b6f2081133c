/*
 * Integration tests (suite "vm"): boot the test guest under QEMU/TCG and drive
 * its power: BIOS boot from disk.qcow2 with VNC, ACPI power-down, pause and
 * unpause (the guest's heartbeat stops and goes on), reset, hard stop, start
 * paused, and the errors of a start that cannot work (missing kernel, an
 * option QEMU refuses, a VM already running).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include "vm_helpers.h"

static void t_bios_powerdown(void *data)
{
    const char *uuid = "a0000000-0000-4000-8000-000000000001";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    vmm_config_init(&c);
    snprintf(c.uuid, sizeof(c.uuid), "%s", uuid);
    c.name = xstrdup("bios");
    c.memory_mib = 128;
    c.vnc = VMM_VNC_UNIX;
    free(c.boot_order);
    c.boot_order = xstrdup("c");
    char *disk = vmt_overlay("bios.qcow2");
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, disk, VMM_DISK_FORMAT_QCOW2);
    Vmm *vm = NULL;
    char *err = NULL;
    int r = vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err);
    CHECK_MSG(r == 0, "start: %s", err);
    REQUIRE(vm);
    CHECK(vmm_pid(vm) > 0);

    /* VNC on the unix socket answers with the RFB greeting */
    char *addr = NULL;
    CHECK_INT(vmm_vnc_address(vm, &addr, &err), 0);
    CHECK(addr && strncmp(addr, "unix:", 5) == 0);
    if (addr) {
        int fd = vmm_unix_connect(addr + 5);
        CHECK(fd >= 0);
        char greet[13] = "";
        if (fd >= 0) {
            CHECK(read(fd, greet, 12) == 12);
            close(fd);
        }
        CHECK(strncmp(greet, "RFB 003.008", 11) == 0);
    }
    free(addr);

    CHECK(vmt_wait_console(vmt_run, uuid, "TEST-MARKER: READY", VMT_BOOT_MS));
    char *console = vmt_console(vmt_run, uuid);
    CHECK_CONTAINS(console, "SYSLINUX"); /* really booted through the BIOS and the disk */
    free(console);
    CHECK(vmt_wait_event(&log, VMM_EVENT_BOOTED, 0, 20000) >= 0);
    char **running = NULL;
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 1);
    CHECK(running && running[0] && strcmp(running[0], uuid) == 0);
    vmm_strv_free(running);

    CHECK_INT(vmm_powerdown(vm, &err), 0);
    int i = vmt_wait_event(&log, VMM_EVENT_POWERDOWN, 0, 20000);
    CHECK(i >= 0);
    int s = vmt_wait_event(&log, VMM_EVENT_SHUTDOWN, 0, 60000);
    CHECK(s > i);
    if (s >= 0) {
        CHECK(log.ev[s].guest);
        CHECK_STR(log.ev[s].reason, "guest-shutdown");
    }
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 30000);
    CHECK(x > s);
    if (x >= 0) {
        CHECK_INT(log.ev[x].exit_code, 0);
        CHECK_INT(log.ev[x].exit_signal, 0);
    }
    int code = -2, sig = -2;
    CHECK_INT(vmm_wait_exit(vm, 10000, &code, &sig), 0);
    CHECK_INT(code, 0);
    pid_t pid = vmm_pid(vm);
    CHECK(!qemu_process_alive(pid));
    char *pidfile = vmm_path(vmt_run, uuid, "qemu.pid");
    char *qmp = vmm_path(vmt_run, uuid, "qmp.sock");
    CHECK(access(pidfile, F_OK) != 0);
    CHECK(access(qmp, F_OK) != 0);
    free(pidfile);
    free(qmp);
    VmmRunState st;
    CHECK_INT(vmm_query_status(vm, &st, &err), -ESRCH);
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 0);
    vmm_strv_free(running);
    vmm_close(vm);
    CHECK_INT(vmm_cleanup(vmt_run, uuid, &err), 0);
    vmm_config_release(&c);
    free(disk);
    free(err);
}

static void t_pause_reset_destroy(void *data)
{
    const char *uuid = "a0000000-0000-4000-8000-000000000002";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    vmt_config(&c, uuid, "wait");
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    REQUIRE(vmt_wait_heartbeat(vmt_run, uuid, 1, VMT_BOOT_MS));

    /* a second start of the same VM is refused */
    Vmm *vm2 = NULL;
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm2, &err), -EEXIST);
    CHECK_CONTAINS(err, "already running");

    CHECK_INT(vmm_pause(vm, &err), 0);
    VmmRunState st;
    CHECK_INT(vmm_query_status(vm, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_PAUSED);
    CHECK(vmt_wait_event(&log, VMM_EVENT_STOP, 0, 5000) >= 0);
    vmm_sleep_ms(300); /* a line being written when the CPU stopped */
    int hb = vmt_last_heartbeat(vmt_run, uuid);
    vmm_sleep_ms(2500);
    CHECK_INT(vmt_last_heartbeat(vmt_run, uuid), hb); /* frozen */
    CHECK_INT(vmm_unpause(vm, &err), 0);
    CHECK(vmt_wait_event(&log, VMM_EVENT_RESUME, 0, 5000) >= 0);
    CHECK(vmt_wait_heartbeat(vmt_run, uuid, hb + 1, 30000)); /* going on */
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_RUNNING);

    int before = vmt_count(&log);
    CHECK_INT(vmm_reset(vm, &err), 0);
    int rs = vmt_wait_event(&log, VMM_EVENT_RESET, before, 10000);
    CHECK(rs >= 0);
    if (rs >= 0)
        CHECK(!log.ev[rs].guest);
    CHECK(vmt_wait_console_n(vmt_run, uuid, "TEST-MARKER: READY", 2, VMT_BOOT_MS));
    CHECK(vmt_wait_event(&log, VMM_EVENT_BOOTED, rs + 1, 30000) > rs); /* boot seen again */

    pid_t pid = vmm_pid(vm);
    CHECK_INT(vmm_destroy(vm, 10000, &err), 0);
    CHECK(!qemu_process_alive(pid));
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 10000);
    CHECK(x >= 0);
    int s = vmt_wait_event(&log, VMM_EVENT_SHUTDOWN, before, 1);
    CHECK(s >= 0 && s < x);
    if (s >= 0) {
        CHECK(!log.ev[s].guest);
        CHECK_STR(log.ev[s].reason, "host-qmp-quit");
    }
    CHECK_INT(vmm_pause(vm, &err), -ESRCH);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
}

static void t_start_paused(void *data)
{
    const char *uuid = "a0000000-0000-4000-8000-000000000003";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    vmt_config(&c, uuid, "poweroff");
    c.start_paused = true;
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    VmmRunState st;
    CHECK_INT(vmm_query_status(vm, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_PRELAUNCH);
    vmm_sleep_ms(1000);
    char *console = vmt_console(vmt_run, uuid);
    CHECK_INT(strlen(console), 0); /* nothing ran */
    free(console);
    CHECK_INT(vmm_unpause(vm, &err), 0);
    /* test=poweroff: the guest powers off by itself once READY */
    CHECK(vmt_wait_console(vmt_run, uuid, "TEST-MARKER: READY", VMT_BOOT_MS));
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 60000);
    CHECK(x >= 0);
    int s = vmt_wait_event(&log, VMM_EVENT_SHUTDOWN, 0, 1);
    CHECK(s >= 0 && s < x && log.ev[s].guest);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
}

static void t_start_errors(void *data)
{
    const char *uuid = "a0000000-0000-4000-8000-000000000004";
    VmmConfig c;
    vmt_config(&c, uuid, "wait");
    free(c.kernel);
    c.kernel = vmt_path("no-such-vmlinuz");
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), -ENOENT);
    CHECK_CONTAINS(err, "kernel file");
    CHECK_CONTAINS(err, "no-such-vmlinuz");
    CHECK_CONTAINS(err, "does not exist");
    CHECK(vm == NULL);
    vmm_config_release(&c);

    /* QEMU itself refuses: its own words come back */
    vmt_config(&c, uuid, "wait");
    c.extra_args = xnew0(char *, 3);
    c.extra_args[0] = xstrdup("-device");
    c.extra_args[1] = xstrdup("no-such-device-model");
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), -EIO);
    CHECK_CONTAINS(err, "exited during startup");
    CHECK_CONTAINS(err, "no-such-device-model");
    CHECK(vm == NULL);
    char **running = NULL;
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 0);
    vmm_strv_free(running);
    char *pidfile = vmm_path(vmt_run, uuid, "qemu.pid");
    CHECK(access(pidfile, F_OK) != 0);
    free(pidfile);
    vmm_config_release(&c);

    /* the disk image is missing */
    vmt_config(&c, uuid, "wait");
    char *gone = vmt_path("gone.qcow2");
    vmm_config_add_disk(&c, 1, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, gone, VMM_DISK_FORMAT_QCOW2);
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), -ENOENT);
    CHECK_CONTAINS(err, "disk image (position 1)");
    free(gone);
    vmm_config_release(&c);

    /* a missing QEMU binary */
    vmt_config(&c, uuid, "wait");
    vmm_set_qemu_binary("/nonexistent/qemu-system-x86_64");
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), -ENOENT);
    CHECK_CONTAINS(err, "not found");
    vmm_set_qemu_binary(NULL);
    vmm_config_release(&c);
    free(err);
}

/* Each hardware shape of the golden argv tests, with real files, must be accepted by QEMU
 * (started paused: nothing boots). Taps are left out: they would touch the host's network. */
static void t_shapes_accepted(void *data)
{
    const char *uuid = "a0000000-0000-4000-8000-000000000005";
    char *err = NULL;
    char *disk = vmt_overlay("shape.qcow2");
    char *raw = vmt_path("shape.raw");
    char *iso = vmt_path("shape.iso");
    char *nvram = vmt_path("nvram.fd");
    vmt_sh("truncate -s 8M '%s' && truncate -s 1M '%s'", raw, iso);
    for (int shape = 0; shape < 5; shape++) {
        VmmConfig c;
        vmm_config_init(&c);
        snprintf(c.uuid, sizeof(c.uuid), "%s", uuid);
        c.name = xasprintf("shape,%d", shape);
        c.memory_mib = 64;
        c.start_paused = true;
        VmmNic *n;
        switch (shape) {
        case 0: /* BIOS disk boot, VNC socket, SMBIOS, RTC offset */
            c.vcpus = c.vcpus_max = 2;
            c.memory_target_mib = 48;
            vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, disk,
                                VMM_DISK_FORMAT_QCOW2);
            vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, NULL, 0);
            c.vnc = VMM_VNC_UNIX;
            vmm_config_add_smbios(&c, "system-manufacturer", "Acme, Inc.");
            vmm_config_add_smbios(&c, "oem-1", "first");
            vmm_config_add_smbios(&c, "enclosure-asset-tag", "A-42");
            c.rtc_offset_s = 3600;
            break;
        case 1: /* direct kernel, user net with a forward, console socket */
            vmm_config_release(&c);
            vmt_config(&c, uuid, "wait");
            c.memory_mib = 64;
            c.start_paused = true;
            c.vcpus_max = 4;
            c.tcg_tb_size_mib = 16;
            c.serial_socket = true;
            n = vmm_config_add_nic(&c, 1, "52:54:00:aa:bb:01", VMM_NIC_MODEL_VIRTIO);
            n->hostfwd = xnew0(char *, 2);
            n->hostfwd[0] = xstrdup("tcp:127.0.0.1:0-:80");
            vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, raw,
                                VMM_DISK_FORMAT_RAW)->serial = xstrdup("hx-root");
            break;
        case 2: /* IDE disk and CD, e1000 and rtl8139, no ACPI, USB tablet, VNC port */
            vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_IDE, raw, VMM_DISK_FORMAT_RAW);
            vmm_config_add_disk(&c, 2, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, iso, 0);
            vmm_config_add_nic(&c, 0, "52:54:00:00:00:01", VMM_NIC_MODEL_E1000);
            vmm_config_add_nic(&c, 1, "52:54:00:00:00:02", VMM_NIC_MODEL_RTL8139);
            c.acpi = false;
            c.usb_tablet = true;
            c.vnc = VMM_VNC_TCP;
            c.vga = xstrdup("cirrus");
            c.qga = c.pvpanic = false;
            c.reboot_is_shutdown = true;
            free(c.boot_order);
            c.boot_order = xstrdup("dcn");
            break;
        case 3: /* SCSI disk and empty SCSI CD, read-only virtio disk */
            vmm_config_add_disk(&c, 1, VMM_DISK_TYPE_DISK, VMM_BUS_SCSI, disk,
                                VMM_DISK_FORMAT_QCOW2);
            vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_SCSI, NULL, 0);
            vmm_config_add_disk(&c, 2, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, raw,
                                VMM_DISK_FORMAT_RAW)->read_only = true;
            c.keep_on_shutdown = true;
            break;
        case 4: /* UEFI on q35 (TCG here) */
            c.machine = VMM_MACHINE_Q35;
            c.firmware = VMM_FIRMWARE_UEFI;
            c.nvram_path = xstrdup(nvram);
            c.memory_mib = 128;
            vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, disk,
                                VMM_DISK_FORMAT_QCOW2)->bootindex = 7;
            vmm_config_add_disk(&c, 4, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, iso, 0);
            vmm_config_add_nic(&c, 0, "52:54:00:de:ad:01", VMM_NIC_MODEL_VIRTIO);
            break;
        }
        Vmm *vm = NULL;
        int r = vmm_start(vmt_run, &c, NULL, NULL, &vm, &err);
        CHECK_MSG(r == 0, "shape %d refused: %s", shape, err);
        if (vm) {
            char *addr = NULL;
            if (c.vnc == VMM_VNC_TCP) {
                CHECK_INT(vmm_vnc_address(vm, &addr, &err), 0);
                CHECK(addr && strncmp(addr, "127.0.0.1:59", 12) == 0);
                free(addr);
            }
            if (shape == 4)
                CHECK(access(nvram, R_OK | W_OK) == 0); /* made from OVMF's template */
            CHECK_INT(vmm_destroy(vm, 5000, &err), 0);
            vmm_close(vm);
        }
        vmm_config_release(&c);
    }
    free(disk);
    free(raw);
    free(iso);
    free(nvram);
    free(err);
}

int main(void)
{
    if (!vmt_setup()) {
        printf("1..0 # SKIP the test guest cannot be built\n");
        return 0;
    }
    test_run("BIOS boot from disk.qcow2, VNC socket, ACPI power-down -> SHUTDOWN, EXITED",
             t_bios_powerdown, NULL);
    test_run("pause stops the heartbeat, unpause resumes it, reset reboots, destroy",
             t_pause_reset_destroy, NULL);
    test_run("start paused runs nothing until unpaused", t_start_paused, NULL);
    test_run("start errors name their cause", t_start_errors, NULL);
    test_run("every hardware shape of the golden tests is accepted by QEMU", t_shapes_accepted,
             NULL);
    vmt_teardown();
    return test_done();
}
