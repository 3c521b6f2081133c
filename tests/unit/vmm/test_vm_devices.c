/*
 * Integration tests (suite "vm"): devices of a running guest, each change
 * checked from inside the guest (its TEST-HOTPLUG console lines) and from
 * QEMU's side (vmm_query_disks): virtio and SCSI disk hot-plug and unplug,
 * CD insert and eject, NIC hot-plug and unplug, vCPU hot-plug, the balloon,
 * and the refusals (IDE hot-plug, taken or empty positions).
 */
#include <json-c/json.h>

#include "vm_helpers.h"
#include "vmm/qga.h"

#define UUID "c0000000-0000-4000-8000-000000000001"

static const VmmBlockInfo *find_disk(const VmmBlockInfo *info, size_t n, unsigned pos)
{
    for (size_t i = 0; i < n; i++)
        if (info[i].position == pos)
            return &info[i];
    return NULL;
}

static Vmm *vm;
static VmtLog vlog;

static void t_disks(void *data)
{
    char *err = NULL;
    char *img = vmt_path("hot.qcow2");
    vmt_sh("qemu-img create -q -f qcow2 '%s' 8M", img);
    VmmDisk d = {.position = 1, .type = VMM_DISK_TYPE_DISK, .bus = VMM_BUS_VIRTIO, .path = img,
                 .format = VMM_DISK_FORMAT_QCOW2, .bootindex = -1};
    CHECK_MSG(vmm_disk_attach(vm, &d, &err) == 0, "attach: %s", err);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "blockdevs=sr0 vda", 30000));
    VmmBlockInfo *info = NULL;
    size_t n = 0;
    CHECK_INT(vmm_query_disks(vm, &info, &n, &err), 0);
    const VmmBlockInfo *bi = find_disk(info, n, 1);
    CHECK(bi && bi->chain_len == 1 && strcmp(bi->chain[0].filename, img) == 0);
    vmm_block_info_free(info, n);
    VmmConfig cfg;
    vmm_get_config(vm, &cfg);
    CHECK_INT(cfg.n_disks, 2);
    vmm_config_release(&cfg);

    /* refusals */
    CHECK_INT(vmm_disk_attach(vm, &d, &err), -EEXIST);
    VmmDisk ide = d;
    ide.position = 2;
    ide.bus = VMM_BUS_IDE;
    CHECK_INT(vmm_disk_attach(vm, &ide, &err), -ENOTSUP);
    CHECK_CONTAINS(err, "IDE");
    VmmDisk missing = d;
    missing.position = 4;
    missing.path = (char *)"/nonexistent/disk.qcow2";
    CHECK_INT(vmm_disk_attach(vm, &missing, &err), -ENOENT);
    CHECK_INT(vmm_disk_detach(vm, 9, 1000, &err), -ENODEV);

    int before = vmt_count(&vlog);
    CHECK_MSG(vmm_disk_detach(vm, 1, 20000, &err) == 0, "detach: %s", err);
    int e = vmt_wait_event(&vlog, VMM_EVENT_DEVICE_DELETED, before, 5000);
    CHECK(e >= 0);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "blockdevs=sr0", 30000));
    CHECK_INT(vmm_query_disks(vm, &info, &n, &err), 0);
    CHECK(find_disk(info, n, 1) == NULL);
    vmm_block_info_free(info, n);

    /* the same position again, now on SCSI: the controller comes with it */
    VmmDisk s = d;
    s.bus = VMM_BUS_SCSI;
    s.position = 2;
    CHECK_MSG(vmm_disk_attach(vm, &s, &err) == 0, "scsi attach: %s", err);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "blockdevs=sda sr0", 30000));
    CHECK_MSG(vmm_disk_detach(vm, 2, 20000, &err) == 0, "scsi detach: %s", err);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "blockdevs=sr0", 30000));
    /* and a virtio disk again at the first position: no node left behind */
    CHECK_MSG(vmm_disk_attach(vm, &d, &err) == 0, "re-attach: %s", err);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "blockdevs=sr0 vda", 30000));
    CHECK_MSG(vmm_disk_detach(vm, 1, 20000, &err) == 0, "re-detach: %s", err);
    free(img);
    free(err);
}

static void t_cd(void *data)
{
    char *err = NULL;
    char *dir = vmt_path("isodir");
    char *iso = vmt_path("data.iso");
    mkdir(dir, 0700);
    vmt_sh("head -c 300000 /dev/urandom > '%s/payload' && xorriso -as mkisofs -quiet -o '%s' "
           "-V HXTEST '%s' 2>/dev/null", dir, iso, dir);
    struct stat st;
    REQUIRE(stat(iso, &st) == 0);
    CHECK_MSG(vmm_cd_insert(vm, 3, iso, &err) == 0, "insert: %s", err);
    VmmBlockInfo *info = NULL;
    size_t n = 0;
    CHECK_INT(vmm_query_disks(vm, &info, &n, &err), 0);
    const VmmBlockInfo *bi = find_disk(info, n, 3);
    CHECK(bi && bi->removable && !bi->tray_open && bi->chain_len == 1 &&
          strcmp(bi->chain[0].filename, iso) == 0);
    vmm_block_info_free(info, n);
    /* the guest sees the medium: sr0 size in 512-byte sectors */
    char *want = xasprintf("cdmedia=sr0=%lld", (long long)st.st_size / 512);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, want, 30000));
    free(want);
    VmmConfig cfg;
    vmm_get_config(vm, &cfg);
    CHECK(cfg.n_disks == 1 && cfg.disks[0].path && strcmp(cfg.disks[0].path, iso) == 0);
    vmm_config_release(&cfg);

    CHECK_MSG(vmm_cd_eject(vm, 3, &err) == 0, "eject: %s", err);
    CHECK_INT(vmm_query_disks(vm, &info, &n, &err), 0);
    bi = find_disk(info, n, 3);
    CHECK(bi && bi->chain_len == 0);
    vmm_block_info_free(info, n);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "cdmedia=sr0=0", 30000));
    CHECK_INT(vmm_cd_insert(vm, 5, iso, &err), -ENODEV);
    CHECK_INT(vmm_cd_insert(vm, 3, "/nonexistent.iso", &err), -ENOENT);
    free(dir);
    free(iso);
    free(err);
}

static void t_nic(void *data)
{
    char *err = NULL;
    VmmNic nic = {.position = 0, .mac = "52:54:00:65:43:21", .model = VMM_NIC_MODEL_VIRTIO,
                  .backend = VMM_NET_USER, .user_reason = (char *)"test without a bridge",
                  .bootindex = -1};
    CHECK_MSG(vmm_nic_attach(vm, &nic, &err) == 0, "attach: %s", err);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "netdevs=eth0", 30000));
    struct json_object *ret = NULL;
    CHECK_INT(vmm_qmp(vm, "query-rx-filter", NULL, 0, &ret, &err), 0);
    CHECK_CONTAINS(ret ? json_object_to_json_string(ret) : "", "52:54:00:65:43:21");
    json_object_put(ret);
    CHECK_INT(vmm_nic_attach(vm, &nic, &err), -EEXIST);
    VmmNic bad = nic;
    bad.position = 1;
    snprintf(bad.mac, sizeof(bad.mac), "zz:54:00:65:43:21");
    CHECK_INT(vmm_nic_attach(vm, &bad, &err), -EINVAL);
    CHECK_MSG(vmm_nic_detach(vm, 0, 20000, &err) == 0, "detach: %s", err);
    CHECK(vmt_wait_hotplug(vmt_run, UUID, "netdevs=", 30000));
    CHECK_INT(vmm_nic_detach(vm, 0, 1000, &err), -ENODEV);
    free(err);
}

static void t_vcpus_balloon(void *data)
{
    char *err = NULL;
    unsigned count = 0;
    CHECK_INT(vmm_get_vcpus(vm, &count, &err), 0);
    CHECK_INT(count, 1);
    CHECK_MSG(vmm_set_vcpus(vm, 2, 20000, &err) == 0, "plug: %s", err);
    CHECK_INT(vmm_get_vcpus(vm, &count, &err), 0);
    CHECK_INT(count, 2);
    CHECK_INT(vmm_set_vcpus(vm, 3, 1000, &err), -EINVAL);
    CHECK_CONTAINS(err, "VCPUs-max");

    CHECK_MSG(vmm_set_memory_target(vm, 96, &err) == 0, "balloon: %s", err);
    uint64_t actual = 0;
    for (int i = 0; i < 300; i++) {
        CHECK_INT(vmm_get_memory_actual(vm, &actual, &err), 0);
        if (actual <= 96 * MiB)
            break;
        vmm_sleep_ms(100);
    }
    CHECK_INT(actual, 96 * MiB); /* the guest's balloon driver gave the memory back */
    CHECK_INT(vmm_set_memory_target(vm, 4096, &err), -EINVAL);
    free(err);
}

/* The agent channel reaches the guest; the test guest runs no agent, so the client must
 * give up within its timeout instead of hanging. */
static void t_agent_channel(void *data)
{
    char *err = NULL;
    char *sock = vmm_path(vmt_run, UUID, "qga.sock");
    QgaClient *c = NULL;
    CHECK_MSG(qga_connect(sock, &c, &err) == 0, "connect: %s", err);
    if (c) {
        int64_t t0 = vmm_now_ms();
        CHECK_INT(qga_ping(c, 500, &err), -ETIMEDOUT);
        CHECK(vmm_now_ms() - t0 < 5000);
        qga_close(c);
    }
    free(sock);
    free(err);
}

int main(void)
{
    if (!vmt_setup()) {
        printf("1..0 # SKIP the test guest cannot be built\n");
        return 0;
    }
    vmt_log_init(&vlog);
    VmmConfig c;
    vmt_config(&c, UUID, "wait");
    c.vcpus = 1;
    c.vcpus_max = 2;
    vmm_config_add_disk(&c, 3, VMM_DISK_TYPE_CDROM, VMM_BUS_IDE, NULL, VMM_DISK_FORMAT_RAW);
    char *err = NULL;
    int r = vmm_start(vmt_run, &c, vmt_on_event, &vlog, &vm, &err);
    if (r < 0 || !vmt_wait_heartbeat(vmt_run, UUID, 1, VMT_BOOT_MS)) {
        printf("not ok 1 - the guest boots # %s\n", err ? err : "no heartbeat");
        printf("1..1\n");
        return 1;
    }
    test_run("virtio and SCSI disk hot-plug and unplug", t_disks, NULL);
    test_run("CD insert and eject", t_cd, NULL);
    test_run("NIC hot-plug and unplug", t_nic, NULL);
    test_run("vCPU hot-plug and balloon", t_vcpus_balloon, NULL);
    test_run("agent channel without an agent: bounded timeout", t_agent_channel, NULL);
    vmm_destroy(vm, 10000, NULL);
    vmm_close(vm);
    vmm_config_release(&c);
    free(err);
    vmt_teardown();
    return test_done();
}
