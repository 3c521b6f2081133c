/*
 * Fast tests of the QEMU backend's process handling and watching, with a
 * fake QEMU (fake-qemu-system-x86_64, a script speaking QMP on the inherited
 * socket) instead of the real one: a guest QEMU stops with internal-error
 * while staying alive (reported STUCK, never waited on), QEMU failing at
 * startup, never greeting, exiting on its own, ignoring quit and SIGTERM, a
 * boot timeout, closing and re-attaching, and calls made from callbacks.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm_helpers.h"

static char *fake_qemu;

static void use_fake(const char *mode)
{
    setenv("HX_FAKE_QEMU_MODE", mode, 1);
    vmm_set_qemu_binary(fake_qemu);
}

static void fake_config(VmmConfig *c, const char *uuid)
{
    vmm_config_init(c);
    snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
    c->name = xstrdup("fake");
}

static void t_internal_error(void *data)
{
    const char *uuid = "e0000000-0000-4000-8000-000000000001";
    use_fake("internal-error");
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    fake_config(&c, uuid);
    c.accel = VMM_ACCEL_KVM;
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    int s = vmt_wait_event(&log, VMM_EVENT_STUCK, 0, 10000);
    CHECK(s >= 0);
    if (s >= 0) {
        CHECK_STR(log.ev[s].status, "internal-error");
        CHECK_CONTAINS(log.ev[s].reason, "internal error");
        CHECK_CONTAINS(log.ev[s].reason, "--accel tcg");
    }
    CHECK(vmt_wait_event(&log, VMM_EVENT_STOP, 0, 1) >= 0);
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_INTERNAL_ERROR);
    CHECK(qemu_process_alive(vmm_pid(vm))); /* QEMU is alive: only the watcher can tell */
    vmm_sleep_ms(1000); /* several watcher ticks */
    CHECK(vmt_wait_event(&log, VMM_EVENT_STUCK, s + 1, 1) < 0); /* once per episode */
    CHECK_INT(vmm_unpause(vm, &err), -EIO);
    CHECK_INT(vmm_destroy(vm, 5000, &err), 0);
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 5000);
    CHECK(x >= 0);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
}

static void t_fail_at_start(void *data)
{
    const char *uuid = "e0000000-0000-4000-8000-000000000002";
    VmmConfig c;
    fake_config(&c, uuid);
    Vmm *vm = NULL;
    char *err = NULL;
    use_fake("fail");
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), -EIO);
    CHECK_CONTAINS(err, "exited during startup (status 1)");
    CHECK_CONTAINS(err, "'frob' is not a valid device model name");
    CHECK(vm == NULL);

    use_fake("silent");
    vmm_set_start_timeout(500);
    int64_t t0 = vmm_now_ms();
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), -ETIMEDOUT);
    CHECK(vmm_now_ms() - t0 < 15000);
    CHECK_CONTAINS(err, "did not come up and was killed");
    vmm_set_start_timeout(0);
    char **running = NULL;
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 0);
    vmm_strv_free(running);
    vmm_config_release(&c);
    free(err);
}

static void t_exits_by_itself(void *data)
{
    const char *uuid = "e0000000-0000-4000-8000-000000000003";
    use_fake("exit3");
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    fake_config(&c, uuid);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 10000);
    CHECK(x >= 0);
    if (x >= 0) {
        CHECK_INT(log.ev[x].exit_code, 3);
        CHECK_CONTAINS(log.ev[x].reason, "status 3");
        CHECK_CONTAINS(log.ev[x].reason, "fake fatal error"); /* its stderr */
    }
    int code = 0, sig = 0;
    CHECK_INT(vmm_wait_exit(vm, 1000, &code, &sig), 0);
    CHECK_INT(code, 3);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
}

static void t_stubborn(void *data)
{
    const char *uuid = "e0000000-0000-4000-8000-000000000004";
    use_fake("stubborn");
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    fake_config(&c, uuid);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    pid_t pid = vmm_pid(vm);
    CHECK_INT(vmm_destroy(vm, 1500, &err), 0);
    CHECK(!qemu_process_alive(pid));
    int x = vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 5000);
    CHECK(x >= 0);
    if (x >= 0)
        CHECK_INT(log.ev[x].exit_signal, SIGKILL);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
}

/* On STUCK the callback destroys and closes the VM from the watcher thread. */
static volatile int cb_destroy_rc = 1;
static volatile bool cb_closed;

static void destroy_on_stuck(Vmm *vm, const VmmEvent *ev, void *opaque)
{
    vmt_on_event(vm, ev, opaque);
    if (ev->type == VMM_EVENT_STUCK) {
        cb_destroy_rc = vmm_destroy(vm, 5000, NULL);
        int code;
        vmm_wait_exit(vm, 5000, &code, NULL); /* must not deadlock on the watcher */
        vmm_close(vm);                        /* takes effect after the callback */
        cb_closed = true;
    }
}

static void t_boot_timeout_and_callbacks(void *data)
{
    const char *uuid = "e0000000-0000-4000-8000-000000000005";
    use_fake("normal");
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    fake_config(&c, uuid);
    c.boot_timeout_s = 1;
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, destroy_on_stuck, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    pid_t pid = vmm_pid(vm);
    int s = vmt_wait_event(&log, VMM_EVENT_STUCK, 0, 10000);
    CHECK(s >= 0);
    if (s >= 0)
        CHECK_CONTAINS(log.ev[s].reason, "no sign of an OS within 1 s");
    for (int i = 0; i < 100 && !cb_closed; i++)
        vmm_sleep_ms(50);
    CHECK(cb_closed);
    CHECK_INT(cb_destroy_rc, 0);
    CHECK(!qemu_process_alive(pid));
    /* vm was freed by the deferred close */
    vmm_config_release(&c);
    free(err);
}

static void t_close_and_attach(void *data)
{
    const char *uuid = "e0000000-0000-4000-8000-000000000006";
    use_fake("normal");
    VmmConfig c;
    fake_config(&c, uuid);
    c.memory_mib = 333;
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    pid_t pid = vmm_pid(vm);
    vmm_close(vm);
    CHECK(qemu_process_alive(pid));
    CHECK_INT(vmm_cleanup(vmt_run, uuid, &err), -EBUSY);
    VmtLog log;
    vmt_log_init(&log);
    CHECK_MSG(vmm_attach(vmt_run, uuid, vmt_on_event, &log, &vm, &err) == 0, "attach: %s", err);
    REQUIRE(vm);
    CHECK_INT(vmm_pid(vm), pid);
    VmmConfig got;
    vmm_get_config(vm, &got);
    CHECK_INT(got.memory_mib, 333);
    vmm_config_release(&got);
    CHECK_INT(vmm_attach(vmt_run, "not-a-uuid", NULL, NULL, &vm, &err), -EINVAL);
    CHECK_INT(vmm_destroy(vm, 5000, &err), 0);
    CHECK(vmt_wait_event(&log, VMM_EVENT_EXITED, 0, 5000) >= 0);
    vmm_close(vm);
    CHECK_INT(vmm_cleanup(vmt_run, uuid, &err), 0);
    char *dir = vmm_path(vmt_run, uuid, NULL);
    CHECK(access(dir, F_OK) != 0);
    free(dir);
    vmm_config_release(&c);
    free(err);
}

static void t_accel_detect(void *data)
{
    char *why = NULL;
    VmmAccel a = vmm_accel_detect(&why);
    printf("# %s\n", why);
    /* independent look at the CPU flags: no vmx/svm means TCG, whatever /dev/kvm says */
    int virt = vmt_sh("grep -qwE 'vmx|svm' /proc/cpuinfo");
    int kvm = access("/dev/kvm", R_OK | W_OK);
    if (virt != 0 || kvm != 0)
        CHECK_INT(a, VMM_ACCEL_TCG);
    else
        CHECK_INT(a, VMM_ACCEL_KVM);
    free(why);
}

int main(int argc, char **argv)
{
    log_set_level(LOG_LEVEL_ERROR);
    snprintf(vmt_tmp, sizeof(vmt_tmp), "/tmp/hxvmm-XXXXXX");
    if (!mkdtemp(vmt_tmp))
        return 1;
    vmt_run = xasprintf("%s/run", vmt_tmp);
    fake_qemu = xasprintf("%s/fake-qemu-system-x86_64", argc > 1 ? argv[1] : ".");
    test_run("internal-error with QEMU alive -> STUCK once, destroy works", t_internal_error,
             NULL);
    test_run("QEMU failing or silent at startup: clear errors, nothing left", t_fail_at_start,
             NULL);
    test_run("QEMU exiting by itself -> EXITED with status and stderr", t_exits_by_itself, NULL);
    test_run("QEMU ignoring quit and SIGTERM is killed", t_stubborn, NULL);
    test_run("boot timeout -> STUCK; destroy, wait and close from the callback",
             t_boot_timeout_and_callbacks, NULL);
    test_run("close keeps QEMU; attach takes it back with its config", t_close_and_attach, NULL);
    test_run("--accel auto picks TCG without vmx/svm", t_accel_detect, NULL);
    vmm_set_qemu_binary(NULL);
    free(fake_qemu);
    vmt_teardown();
    return test_done();
}
