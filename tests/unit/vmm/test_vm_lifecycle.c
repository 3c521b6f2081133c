/*
 * Integration tests (suite "vm"): the life of a QEMU process around the
 * guest. Suspend to a file and resume (the heartbeat numbering goes on, no
 * reboot); a "daemon" that starts a VM and is SIGKILLed, and another process
 * that attaches and controls the VM; QEMU killed with SIGKILL is reported; a
 * guest panic through pvpanic is reported and can be dumped; a guest that
 * never leaves the firmware is reported stuck.
 */
#include <fcntl.h>

#include "vm_helpers.h"

static uint64_t last_done, last_total;

static void progress(uint64_t done, uint64_t total, void *opaque)
{
    last_done = done;
    last_total = total;
}

static void t_suspend_resume(void *data)
{
    const char *uuid = "b0000000-0000-4000-8000-000000000001";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    vmt_config(&c, uuid, "wait");
    char *disk = vmt_overlay("suspend.qcow2");
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, disk, VMM_DISK_FORMAT_QCOW2);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    REQUIRE(vmt_wait_heartbeat(vmt_run, uuid, 2, VMT_BOOT_MS));

    char *image = vmt_path("suspend.img");
    last_done = last_total = 0;
    int r = vmm_suspend(vm, image, progress, NULL, &err);
    CHECK_MSG(r == 0, "suspend: %s", err);
    CHECK(last_total > 0 && last_done == last_total);
    CHECK(vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 10000) >= 0);
    struct stat st;
    CHECK(stat(image, &st) == 0 && st.st_size > 1024 * 1024);
    pid_t pid = vmm_pid(vm);
    CHECK(!qemu_process_alive(pid));
    vmm_sleep_ms(300);
    int hb = vmt_last_heartbeat(vmt_run, uuid);
    CHECK(hb >= 2);
    vmm_close(vm);

    /* resume: same configuration, incoming from the image */
    VmtLog log2;
    vmt_log_init(&log2);
    c.incoming = VMM_INCOMING_FILE;
    c.incoming_path = xstrdup(image);
    r = vmm_start(vmt_run, &c, vmt_on_event, &log2, &vm, &err);
    CHECK_MSG(r == 0, "resume: %s", err);
    REQUIRE(vm);
    VmmRunState s;
    CHECK_INT(vmm_query_status(vm, &s, &err), 0);
    CHECK_INT(s, VMM_RUN_STATE_RUNNING);
    CHECK(vmt_wait_heartbeat(vmt_run, uuid, hb + 2, 30000));
    char *console = vmt_console(vmt_run, uuid);
    CHECK_INT(vmt_count_str(console, "TEST-MARKER: READY"), 1); /* not booted again */
    char *next = xasprintf("TEST-HEARTBEAT %d ", hb + 1);
    CHECK_CONTAINS(console, next); /* the numbering goes on */
    free(next);
    free(console);
    /* what is kept of the configuration describes the VM, not the resume */
    VmmConfig now;
    vmm_get_config(vm, &now);
    CHECK_INT(now.incoming, VMM_INCOMING_NONE);
    vmm_config_release(&now);

    /* a bad image is refused with a message and leaves nothing running */
    CHECK_INT(vmm_destroy(vm, 10000, &err), 0);
    vmm_close(vm);
    char *bad = vmt_path("bad.img");
    vmm_write_file_atomic(bad, "not a migration stream", 22, 0600);
    free(c.incoming_path);
    c.incoming_path = bad;
    r = vmm_start(vmt_run, &c, NULL, NULL, &vm, &err);
    CHECK_INT(r, -EIO);
    CHECK_CONTAINS(err, "cannot resume VM");
    CHECK_CONTAINS(err, "Not a migration stream"); /* QEMU's own words */
    char **running = NULL;
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 0);
    vmm_strv_free(running);
    vmm_config_release(&c);
    free(image);
    free(disk);
    free(err);
}

/* The "old daemon": starts the VM, reports its pid, waits to be killed. */
static void old_daemon(const char *uuid, int report_fd)
{
    VmmConfig c;
    vmt_config(&c, uuid, "wait");
    Vmm *vm = NULL;
    char *err = NULL;
    int r = vmm_start(vmt_run, &c, NULL, NULL, &vm, &err);
    pid_t pid = r == 0 ? vmm_pid(vm) : -1;
    if (write(report_fd, &pid, sizeof(pid)) != sizeof(pid))
        _exit(2);
    for (;;)
        pause();
}

static void t_attach_after_restart(void *data)
{
    const char *uuid = "b0000000-0000-4000-8000-000000000002";
    int p[2];
    REQUIRE(pipe(p) == 0);
    pid_t daemon = fork();
    REQUIRE(daemon >= 0);
    if (daemon == 0) {
        close(p[0]);
        old_daemon(uuid, p[1]);
        _exit(0);
    }
    close(p[1]);
    pid_t qemu = -1;
    CHECK(read(p[0], &qemu, sizeof(qemu)) == sizeof(qemu));
    close(p[0]);
    REQUIRE(qemu > 0);
    REQUIRE(vmt_wait_heartbeat(vmt_run, uuid, 1, VMT_BOOT_MS));
    /* the daemon dies hard; QEMU must not care */
    kill(daemon, SIGKILL);
    waitpid(daemon, NULL, 0);
    int hb = vmt_last_heartbeat(vmt_run, uuid);
    CHECK(vmt_wait_heartbeat(vmt_run, uuid, hb + 1, 30000));
    CHECK(qemu_process_alive(qemu));
    CHECK(getppid() != qemu);

    /* the new daemon finds and takes it back */
    char **running = NULL;
    char *err = NULL;
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 1);
    CHECK(running && running[0] && strcmp(running[0], uuid) == 0);
    vmm_strv_free(running);
    VmtLog log;
    vmt_log_init(&log);
    Vmm *vm = NULL;
    int r = vmm_attach(vmt_run, uuid, vmt_on_event, &log, &vm, &err);
    CHECK_MSG(r == 0, "attach: %s", err);
    REQUIRE(vm);
    CHECK_INT(vmm_pid(vm), qemu);
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_RUNNING);
    VmmConfig cfg;
    vmm_get_config(vm, &cfg);
    CHECK_STR(cfg.name, "test-wait"); /* read back from config.json */
    CHECK_STR(cfg.boot_marker, "TEST-MARKER: READY");
    vmm_config_release(&cfg);
    CHECK_INT(vmm_pause(vm, &err), 0);
    CHECK(vmt_wait_event(&log, VMM_EVENT_STOP, 0, 5000) >= 0);
    CHECK_INT(vmm_unpause(vm, &err), 0);
    CHECK(vmt_wait_event(&log, VMM_EVENT_RESUME, 0, 5000) >= 0);
    /* closing the handle leaves the VM running; attach again */
    vmm_close(vm);
    CHECK(qemu_process_alive(qemu));
    vmt_log_init(&log);
    r = vmm_attach(vmt_run, uuid, vmt_on_event, &log, &vm, &err);
    CHECK_MSG(r == 0, "second attach: %s", err);
    REQUIRE(vm);
    CHECK_INT(vmm_powerdown(vm, &err), 0);
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 60000);
    CHECK(x >= 0);
    if (x >= 0)
        CHECK_INT(log.ev[x].exit_code, 0); /* known although QEMU was not our child */
    vmm_close(vm);
    /* nothing left to attach to */
    CHECK_INT(vmm_attach(vmt_run, uuid, NULL, NULL, &vm, &err), -ESRCH);
    free(err);
}

static void t_kill9(void *data)
{
    const char *uuid = "b0000000-0000-4000-8000-000000000003";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    vmt_config(&c, uuid, "idle");
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    REQUIRE(vmt_wait_console(vmt_run, uuid, "TEST-MARKER: READY", VMT_BOOT_MS));
    kill(vmm_pid(vm), SIGKILL);
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 20000);
    CHECK(x >= 0);
    if (x >= 0) {
        CHECK_INT(log.ev[x].exit_signal, SIGKILL);
        CHECK_CONTAINS(log.ev[x].reason, "signal 9");
    }
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_DEAD);
    CHECK_INT(vmm_powerdown(vm, &err), -ESRCH);
    CHECK_CONTAINS(err, "not running");
    char *qmp = vmm_path(vmt_run, uuid, "qmp.sock");
    CHECK(access(qmp, F_OK) != 0);
    free(qmp);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
}

static void t_panic_and_dump(void *data)
{
    const char *uuid = "b0000000-0000-4000-8000-000000000004";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    vmt_config(&c, uuid, "crash");
    free(c.cmdline);
    c.cmdline = xstrdup("console=ttyS0,115200 quiet panic=-1 test=crash test.crash_after=1");
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    int p = vmt_wait_event(&log, VMM_EVENT_GUEST_PANICKED, 0, VMT_BOOT_MS);
    CHECK(p >= 0);
    if (p >= 0)
        CHECK_STR(log.ev[p].reason, "pause");
    VmmRunState st;
    CHECK_INT(vmm_query_status(vm, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_GUEST_PANICKED);
    CHECK(qemu_process_alive(vmm_pid(vm))); /* preserved for the caller to decide */
    char *console = vmt_console(vmt_run, uuid);
    CHECK_CONTAINS(console, "TEST-MARKER: crashing");
    free(console);

    char *core = vmt_path("guest.core");
    last_total = 0;
    int r = vmm_dump_core(vm, core, progress, NULL, &err);
    CHECK_MSG(r == 0, "dump: %s", err);
    int fd = open(core, O_RDONLY);
    char magic[4] = "";
    if (fd >= 0) {
        CHECK(read(fd, magic, 4) == 4);
        close(fd);
    }
    CHECK(memcmp(magic, "\177ELF", 4) == 0);
    struct stat sb;
    CHECK(stat(core, &sb) == 0 && sb.st_size >= 100 * 1024 * 1024); /* 128 MiB of RAM */
    CHECK(last_total > 0);
    CHECK_INT(vmm_destroy(vm, 10000, &err), 0);
    vmm_close(vm);
    unlink(core);
    free(core);
    vmm_config_release(&c);
    free(err);
}

static void t_boot_timeout(void *data)
{
    const char *uuid = "b0000000-0000-4000-8000-000000000005";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    vmm_config_init(&c);
    snprintf(c.uuid, sizeof(c.uuid), "%s", uuid);
    c.memory_mib = 64;
    c.boot_timeout_s = 3;
    free(c.boot_order);
    c.boot_order = xstrdup("c");
    char *blank = vmt_path("blank.raw");
    vmt_sh("truncate -s 1M '%s'", blank);
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, blank, VMM_DISK_FORMAT_RAW);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    int s = vmt_wait_event(&log, VMM_EVENT_STUCK, 0, 60000);
    CHECK(s >= 0);
    if (s >= 0) {
        CHECK_CONTAINS(log.ev[s].reason, "no sign of an OS within 3 s");
        CHECK_STR(log.ev[s].status, "running");
    }
    CHECK(vmt_wait_event(&log, VMM_EVENT_BOOTED, 0, 1) < 0);
    /* reported once per episode */
    vmm_sleep_ms(1000);
    CHECK(vmt_wait_event(&log, VMM_EVENT_STUCK, s + 1, 1) < 0);
    CHECK_INT(vmm_destroy(vm, 10000, &err), 0);
    vmm_close(vm);
    free(blank);
    vmm_config_release(&c);
    free(err);
}

int main(void)
{
    if (!vmt_setup()) {
        printf("1..0 # SKIP the test guest cannot be built\n");
        return 0;
    }
    test_run("suspend to a file, resume: heartbeat numbering goes on", t_suspend_resume, NULL);
    test_run("QEMU survives SIGKILL of its daemon; another process attaches", t_attach_after_restart,
             NULL);
    test_run("QEMU killed with SIGKILL -> EXITED with the signal", t_kill9, NULL);
    test_run("guest panic with pvpanic -> GUEST_PANICKED, core dump", t_panic_and_dump, NULL);
    test_run("a guest stuck in the firmware -> STUCK after the boot timeout", t_boot_timeout, NULL);
    vmt_teardown();
    return test_done();
}
