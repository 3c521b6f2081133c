/*
 * Tests of the simulated backend (the same interface without QEMU, for the
 * daemon's fast tests) and of the configuration helpers: lifecycle and
 * events in the order QEMU gives them, attach after a restart, suspend and
 * resume, devices with the same refusals as the real backend, snapshot
 * chains and jobs, guest actions played by vmm_sim_inject(), the JSON form
 * of a configuration and the enum names.
 */
#include <json-c/json.h>

#include "vm_helpers.h"

static void sim_cfg(VmmConfig *c, const char *uuid)
{
    vmm_config_init(c);
    snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
    c->name = xstrdup("sim");
    c->memory_mib = 512;
    c->vcpus_max = 4;
}

static int order_of(VmtLog *l, VmmEventType t, int from)
{
    return vmt_wait_event(l, t, from, 5000);
}

static void t_lifecycle(void *data)
{
    const char *uuid = "f0000000-0000-4000-8000-000000000001";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    sim_cfg(&c, uuid);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_MSG(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    CHECK_INT(vmm_backend(vm), VMM_BACKEND_SIM);
    CHECK_INT(vmm_pid(vm), 0);
    CHECK(order_of(&log, VMM_EVENT_BOOTED, 0) >= 0);
    VmmRunState st;
    CHECK_INT(vmm_query_status(vm, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_RUNNING);
    char **running = NULL;
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 1);
    vmm_strv_free(running);
    Vmm *dup = NULL;
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &dup, &err), -EEXIST);
    char *console = vmt_console(vmt_run, uuid);
    CHECK_CONTAINS(console, "booted");
    free(console);

    CHECK_INT(vmm_pause(vm, &err), 0);
    CHECK(order_of(&log, VMM_EVENT_STOP, 0) >= 0);
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_PAUSED);
    CHECK_INT(vmm_unpause(vm, &err), 0);
    CHECK(order_of(&log, VMM_EVENT_RESUME, 0) >= 0);
    CHECK_INT(vmm_reset(vm, &err), 0);
    CHECK(order_of(&log, VMM_EVENT_RESET, 0) >= 0);
    char *addr = NULL;
    CHECK_INT(vmm_vnc_address(vm, &addr, &err), -ENOENT);
    CHECK_INT(vmm_qmp(vm, "query-status", NULL, 0, NULL, &err), -ENOTSUP);

    CHECK_INT(vmm_powerdown(vm, &err), 0);
    int p = order_of(&log, VMM_EVENT_POWERDOWN, 0);
    int s = order_of(&log, VMM_EVENT_SHUTDOWN, 0);
    int x = order_of(&log, VMM_EVENT_EXITED, 0);
    CHECK(p >= 0 && s > p && x > s);
    if (s >= 0) {
        CHECK(log.ev[s].guest);
        CHECK_STR(log.ev[s].reason, "guest-shutdown");
    }
    int code = -2;
    CHECK_INT(vmm_wait_exit(vm, 1000, &code, NULL), 0);
    CHECK_INT(code, 0);
    CHECK_INT(vmm_pause(vm, &err), -ESRCH);
    CHECK_INT(vmm_list_running(vmt_run, &running, &err), 0);
    vmm_strv_free(running);
    vmm_close(vm);

    /* the same refusals as the real backend */
    free(c.kernel);
    c.kernel = xstrdup("/nonexistent/vmlinuz");
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), -ENOENT);
    CHECK_CONTAINS(err, "kernel file /nonexistent/vmlinuz");
    vmm_config_release(&c);
    free(err);
}

static void t_attach_suspend_resume(void *data)
{
    const char *uuid = "f0000000-0000-4000-8000-000000000002";
    VmmConfig c;
    sim_cfg(&c, uuid);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_INT(vmm_start(vmt_run, &c, NULL, NULL, &vm, &err), 0);
    REQUIRE(vm);
    CHECK_INT(vmm_pause(vm, &err), 0);
    VmmDisk d = {.position = 1, .type = VMM_DISK_TYPE_CDROM, .bus = VMM_BUS_SCSI,
                 .bootindex = -1};
    CHECK_INT(vmm_disk_attach(vm, &d, &err), 0);
    vmm_close(vm); /* "daemon restart" */
    VmtLog log;
    vmt_log_init(&log);
    CHECK_MSG(vmm_attach(vmt_run, uuid, vmt_on_event, &log, &vm, &err) == 0, "attach: %s", err);
    REQUIRE(vm);
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_PAUSED);
    VmmConfig got;
    vmm_get_config(vm, &got);
    CHECK_INT(got.n_disks, 1);
    vmm_config_release(&got);
    CHECK_INT(vmm_unpause(vm, &err), 0);

    char *image = vmt_path("sim-suspend.img");
    CHECK_INT(vmm_suspend(vm, image, NULL, NULL, &err), 0);
    CHECK(order_of(&log, VMM_EVENT_EXITED, 0) >= 0);
    vmm_close(vm);
    CHECK_INT(vmm_attach(vmt_run, uuid, NULL, NULL, &vm, &err), -ESRCH);
    VmmConfig r;
    vmm_config_copy(&r, &c);
    r.incoming = VMM_INCOMING_FILE;
    r.incoming_path = xstrdup(image);
    CHECK_MSG(vmm_start(vmt_run, &r, NULL, NULL, &vm, &err) == 0, "resume: %s", err);
    VmmRunState st;
    CHECK_INT(vmm_query_status(vm, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_RUNNING);
    CHECK_INT(vmm_destroy(vm, 0, &err), 0);
    vmm_close(vm);
    /* as with QEMU, another VM (a copy) resumes from the image */
    const char *other = "f0000000-0000-4000-8000-000000000099";
    snprintf(r.uuid, sizeof(r.uuid), "%s", other);
    CHECK_MSG(vmm_start(vmt_run, &r, NULL, NULL, &vm, &err) == 0, "resume a copy: %s", err);
    CHECK_INT(vmm_destroy(vm, 0, &err), 0);
    vmm_close(vm);
    /* a file that is no suspend image is refused */
    char *junk = vmt_path("sim-junk.img");
    vmm_write_file_atomic(junk, "{\"not\": 1}\n", 11, 0600);
    free(r.incoming_path);
    r.incoming_path = junk;
    CHECK_INT(vmm_start(vmt_run, &r, NULL, NULL, &vm, &err), -EIO);
    CHECK_CONTAINS(err, "not a suspend image");
    vmm_config_release(&r);
    vmm_config_release(&c);
    free(image);
    free(err);
}

static void t_devices_and_jobs(void *data)
{
    const char *uuid = "f0000000-0000-4000-8000-000000000003";
    char *base = vmt_path("sim-base.qcow2");
    char *s1 = vmt_path("sim-s1.qcow2");
    char *s2 = vmt_path("sim-s2.qcow2");
    vmm_write_file_atomic(base, "", 0, 0600);
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    sim_cfg(&c, uuid);
    vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, base, VMM_DISK_FORMAT_QCOW2);
    vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, NULL, VMM_DISK_FORMAT_RAW);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_INT(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err), 0);
    REQUIRE(vm);

    VmmDisk ide = {.position = 2, .type = VMM_DISK_TYPE_DISK, .bus = VMM_BUS_IDE, .path = base,
                   .bootindex = -1};
    CHECK_INT(vmm_disk_attach(vm, &ide, &err), -ENOTSUP);
    VmmDisk dup = ide;
    dup.bus = VMM_BUS_VIRTIO;
    dup.position = 0;
    CHECK_INT(vmm_disk_attach(vm, &dup, &err), -EEXIST);
    CHECK_INT(vmm_disk_detach(vm, 3, 0, &err), -ENOTSUP); /* IDE */
    CHECK_INT(vmm_disk_detach(vm, 9, 0, &err), -ENODEV);
    CHECK_INT(vmm_cd_insert(vm, 0, base, &err), -EINVAL);
    CHECK_INT(vmm_cd_insert(vm, 3, "/nonexistent.iso", &err), -ENOENT);
    CHECK_INT(vmm_cd_insert(vm, 3, base, &err), 0);
    CHECK_INT(vmm_cd_eject(vm, 3, &err), 0);
    VmmNic nic = {.position = 0, .mac = "52:54:00:00:00:01", .backend = VMM_NET_USER,
                  .bootindex = -1};
    CHECK_INT(vmm_nic_attach(vm, &nic, &err), 0);
    CHECK_INT(vmm_nic_attach(vm, &nic, &err), -EEXIST);
    CHECK_INT(vmm_nic_detach(vm, 0, 0, &err), 0);
    int dd = order_of(&log, VMM_EVENT_DEVICE_DELETED, 0);
    CHECK(dd >= 0);
    if (dd >= 0)
        CHECK_STR(log.ev[dd].device, "nic0");
    CHECK_INT(vmm_set_vcpus(vm, 3, 0, &err), 0);
    unsigned n = 0;
    CHECK_INT(vmm_get_vcpus(vm, &n, &err), 0);
    CHECK_INT(n, 3);
    CHECK_INT(vmm_set_vcpus(vm, 5, 0, &err), -EINVAL);
    int before = vmt_count(&log);
    CHECK_INT(vmm_set_vcpus(vm, 1, 0, &err), 0);
    int cpu = order_of(&log, VMM_EVENT_DEVICE_DELETED, before);
    CHECK(cpu >= 0 && strcmp(log.ev[cpu].device, "cpu2") == 0);
    CHECK_INT(vmm_get_vcpus(vm, &n, &err), 0);
    CHECK_INT(n, 1);
    CHECK_INT(vmm_set_memory_target(vm, 256, &err), 0);
    uint64_t actual = 0;
    CHECK_INT(vmm_get_memory_actual(vm, &actual, &err), 0);
    CHECK_INT(actual, 256 * MiB);

    VmmSnapshotDisk snap = {.position = 0, .overlay = s1, .create = true};
    CHECK_INT(vmm_snapshot_disks(vm, &snap, 1, &err), 0);
    snap.overlay = s2;
    CHECK_INT(vmm_snapshot_disks(vm, &snap, 1, &err), 0);
    VmmBlockInfo *info = NULL;
    size_t count = 0;
    CHECK_INT(vmm_query_disks(vm, &info, &count, &err), 0);
    CHECK(count == 2 && info[0].position == 0 && info[0].chain_len == 3);
    if (count == 2 && info[0].chain_len == 3) {
        CHECK_STR(info[0].chain[0].filename, s2);
        CHECK_STR(info[0].chain[2].filename, base);
        CHECK(info[1].removable && info[1].tray_open);
    }
    vmm_block_info_free(info, count);
    CHECK_INT(vmm_job_commit(vm, 0, NULL, NULL, "c1", &err), 0);
    CHECK_INT(vmm_job_wait(vm, "c1", true, 5000, NULL, NULL, &err), 0);
    CHECK(order_of(&log, VMM_EVENT_BLOCK_JOB_READY, 0) >= 0);
    CHECK(order_of(&log, VMM_EVENT_BLOCK_JOB_COMPLETED, 0) >= 0);
    CHECK_INT(vmm_job_stream(vm, 0, NULL, "s1", &err), 0);
    CHECK_INT(vmm_job_wait(vm, "s1", false, 5000, NULL, NULL, &err), 0);
    CHECK_INT(vmm_query_disks(vm, &info, &count, &err), 0);
    CHECK(count >= 1 && info[0].chain_len == 1 && strcmp(info[0].chain[0].filename, s1) == 0);
    vmm_block_info_free(info, count);
    CHECK_INT(vmm_job_commit(vm, 0, NULL, NULL, "c2", &err), -EINVAL);
    CHECK_INT(vmm_job_query(vm, "c1", &(VmmJobInfo){0}, &err), -ENOENT);
    CHECK_INT(vmm_destroy(vm, 0, &err), 0);
    vmm_close(vm);
    vmm_config_release(&c);
    free(base);
    free(s1);
    free(s2);
    free(err);
}

static void t_inject(void *data)
{
    const char *uuid = "f0000000-0000-4000-8000-000000000004";
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig c;
    sim_cfg(&c, uuid);
    Vmm *vm = NULL;
    char *err = NULL;
    CHECK_INT(vmm_start(vmt_run, &c, vmt_on_event, &log, &vm, &err), 0);
    REQUIRE(vm);
    CHECK_INT(vmm_sim_inject(vm, "rtc -3600", &err), 0);
    int r = order_of(&log, VMM_EVENT_RTC_CHANGE, 0);
    CHECK(r >= 0 && log.ev[r].offset == -3600);
    CHECK_INT(vmm_sim_inject(vm, "panic", &err), 0);
    CHECK(order_of(&log, VMM_EVENT_GUEST_PANICKED, 0) >= 0);
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_GUEST_PANICKED);
    char *core = vmt_path("sim.core");
    CHECK_INT(vmm_dump_core(vm, core, NULL, NULL, &err), 0);
    CHECK(access(core, R_OK) == 0);
    free(core);
    CHECK_INT(vmm_sim_inject(vm, "internal-error", &err), 0);
    int s = order_of(&log, VMM_EVENT_STUCK, 0);
    CHECK(s >= 0 && strcmp(log.ev[s].status, "internal-error") == 0);
    CHECK_INT(vmm_unpause(vm, &err), -EIO);
    CHECK_INT(vmm_sim_inject(vm, "frobnicate", &err), -EINVAL);
    CHECK_INT(vmm_sim_inject(vm, "crash", &err), 0);
    int x = order_of(&log, VMM_EVENT_EXITED, 0);
    CHECK(x >= 0 && log.ev[x].exit_signal == 9);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
}

static void t_config_json(void *data)
{
    VmmConfig c;
    vmm_config_init(&c);
    snprintf(c.uuid, sizeof(c.uuid), "0f3c6d2a-5b1e-4c77-9a0e-2d4b8f6e1a90");
    c.name = xstrdup("json \"quoted\", name");
    c.vcpus = 2;
    c.vcpus_max = 8;
    c.firmware = VMM_FIRMWARE_UEFI;
    c.nvram_path = xstrdup("/var/nvram.fd");
    c.kernel = xstrdup("/k");
    c.cmdline = xstrdup("a=b c");
    vmm_config_add_disk(&c, 2, VMM_DISK_TYPE_DISK, VMM_BUS_SCSI, "/d.qcow2",
                        VMM_DISK_FORMAT_QCOW2)->serial = xstrdup("S1");
    vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, NULL, VMM_DISK_FORMAT_RAW);
    VmmNic *n = vmm_config_add_nic(&c, 1, "52:54:00:00:00:07", VMM_NIC_MODEL_E1000);
    n->backend = VMM_NET_TAP;
    n->ifname = xstrdup("tap7");
    n = vmm_config_add_nic(&c, 2, "52:54:00:00:00:08", VMM_NIC_MODEL_VIRTIO);
    n->hostfwd = xnew0(char *, 2);
    n->hostfwd[0] = xstrdup("tcp:127.0.0.1:2222-:22");
    vmm_config_add_smbios(&c, "bios-vendor", "Xen");
    c.rtc_offset_s = -7200;
    c.vnc = VMM_VNC_TCP;
    c.vnc_display = 3;
    c.boot_timeout_s = 60;
    c.extra_args = xnew0(char *, 2);
    c.extra_args[0] = xstrdup("-S");
    struct json_object *j1 = vmm_config_to_json(&c);
    char *s1 = xstrdup(json_object_to_json_string(j1));
    struct json_object *p = json_tokener_parse(s1);
    VmmConfig back;
    char *err = NULL;
    CHECK_MSG(vmm_config_from_json(p, &back, &err) == 0, "from_json: %s", err);
    struct json_object *j2 = vmm_config_to_json(&back);
    CHECK_STR(json_object_to_json_string(j2), s1);
    CHECK_STR(back.name, "json \"quoted\", name");
    CHECK_STR(back.nics[1].hostfwd[0], "tcp:127.0.0.1:2222-:22");
    VmmConfig copy;
    vmm_config_copy(&copy, &back);
    struct json_object *j3 = vmm_config_to_json(&copy);
    CHECK_STR(json_object_to_json_string(j3), s1);
    json_object_put(j1);
    json_object_put(j2);
    json_object_put(j3);
    json_object_put(p);
    vmm_config_release(&copy);
    vmm_config_release(&back);
    vmm_config_release(&c);
    free(s1);

    /* hostile JSON: errors, never crashes */
    static const char *const bad[] = {
        "[]",
        "{\"uuid\": 5}",
        "{\"uuid\": \"0f3c6d2a-5b1e-4c77-9a0e-2d4b8f6e1a90\", \"accel\": \"warp\"}",
        "{\"uuid\": \"0f3c6d2a-5b1e-4c77-9a0e-2d4b8f6e1a90\", \"disks\": [5]}",
        "{\"uuid\": \"0f3c6d2a-5b1e-4c77-9a0e-2d4b8f6e1a90\", \"vcpus\": 1e99}",
        "{\"uuid\": \"0f3c6d2a-5b1e-4c77-9a0e-2d4b8f6e1a90\", \"memory_mib\": -1}",
        "{\"uuid\": \"0f3c6d2a-5b1e-4c77-9a0e-2d4b8f6e1a90\", \"nics\": [{\"mac\": \"x\"}]}",
        "{\"uuid\": \"NOT-A-UUID\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct json_object *o = json_tokener_parse(bad[i]);
        VmmConfig x;
        CHECK_MSG(vmm_config_from_json(o, &x, &err) < 0, "accepted %s", bad[i]);
        CHECK(err && *err);
        CHECK(x.name == NULL && x.n_disks == 0);
        json_object_put(o);
    }
    free(err);
}

static void t_names(void *data)
{
    for (int i = 0; i < VMM_RUN_STATE__MAX; i++)
        CHECK_INT(vmm_run_state_from_string(vmm_run_state_to_string(i)), i);
    CHECK_INT(vmm_run_state_from_string("internal-error"), VMM_RUN_STATE_INTERNAL_ERROR);
    CHECK_INT(vmm_run_state_from_string("nonsense"), -1);
    CHECK_INT(vmm_run_state_from_string(NULL), -1);
    for (int i = 0; i < VMM_EVENT__MAX; i++)
        CHECK(strcmp(vmm_event_type_to_string(i), "?") != 0);
    CHECK_STR(vmm_event_type_to_string(VMM_EVENT__MAX), "?");
    CHECK_INT(vmm_accel_from_string("kvm"), VMM_ACCEL_KVM);
    CHECK_INT(vmm_accel_from_string("kvm:tcg"), -1);
    CHECK_INT(vmm_backend_from_string("sim"), VMM_BACKEND_SIM);
    CHECK_INT(vmm_bus_from_string("scsi"), VMM_BUS_SCSI);
    CHECK_INT(vmm_nic_model_from_string("rtl8139"), VMM_NIC_MODEL_RTL8139);
    CHECK_STR(vmm_disk_type_to_string(VMM_DISK_TYPE_CDROM), "cdrom");
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    snprintf(vmt_tmp, sizeof(vmt_tmp), "/tmp/hxsim-XXXXXX");
    if (!mkdtemp(vmt_tmp))
        return 1;
    vmt_run = xasprintf("%s/run", vmt_tmp);
    vmm_set_backend(VMM_BACKEND_SIM);
    test_run("simulated lifecycle and events", t_lifecycle, NULL);
    test_run("simulated attach after restart, suspend and resume", t_attach_suspend_resume, NULL);
    test_run("simulated devices, snapshots and jobs", t_devices_and_jobs, NULL);
    test_run("simulated guest actions", t_inject, NULL);
    test_run("configuration JSON round trip and hostile JSON", t_config_json, NULL);
    test_run("enum names", t_names, NULL);
    vmt_teardown();
    return test_done();
}
