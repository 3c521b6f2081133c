/*
 * Integration tests (suite "vm"): storage of a running guest and live
 * migration. External snapshots (overlay made by QEMU, and by the caller)
 * while the guest keeps running; an active commit, an intermediate commit and
 * a stream merge the chain back. Data written into the disk at each stage
 * (through QEMU's qemu-io, as guest writes would land) must be found by the
 * independent qemu-io/qemu-img tools afterwards, and qemu-img check must be
 * clean. Then a live migration to a second QEMU over loopback TCP.
 */
#include <json-c/json.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "vm_helpers.h"

#define UUID "d0000000-0000-4000-8000-000000000001"

/* Writes a pattern into disk0 through QEMU (as if the guest wrote it). */
static int guest_write(Vmm *vm, int pattern, unsigned offset_k)
{
    char *line = xasprintf("qemu-io -d /machine/peripheral/disk0/virtio-backend \"write -P 0x%02x %uk 64k\"", pattern, offset_k);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "command-line", json_object_new_string(line));
    struct json_object *ret = NULL;
    char *err = NULL;
    int r = vmm_qmp(vm, "human-monitor-command", a, 0, &ret, &err);
    if (r == 0 && json_object_is_type(ret, json_type_string) &&
        strlen(json_object_get_string(ret)) > 0 && !strstr(json_object_get_string(ret), "wrote"))
        r = -EIO; /* HMP reports failures as text */
    if (r < 0)
        printf("# qemu-io in QEMU: %s %s\n", err ? err : "",
               ret ? json_object_get_string(ret) : "");
    json_object_put(ret);
    json_object_put(a);
    free(line);
    free(err);
    return r;
}

static char **chain_of(Vmm *vm, size_t *len)
{
    VmmBlockInfo *info = NULL;
    size_t n = 0;
    *len = 0;
    if (vmm_query_disks(vm, &info, &n, NULL) < 0)
        return NULL;
    char **v = NULL;
    for (size_t i = 0; i < n; i++) {
        if (info[i].position != 0)
            continue;
        v = xnew0(char *, info[i].chain_len + 1);
        for (size_t k = 0; k < info[i].chain_len; k++)
            v[k] = xstrdup(info[i].chain[k].filename);
        *len = info[i].chain_len;
    }
    vmm_block_info_free(info, n);
    return v;
}

static bool chain_is(Vmm *vm, const char *a, const char *b, const char *c, const char *d)
{
    const char *want[] = {a, b, c, d};
    size_t len;
    char **got = chain_of(vm, &len);
    bool ok = got != NULL;
    size_t k = 0;
    for (; ok && k < 4 && want[k]; k++)
        ok = k < len && strcmp(got[k], want[k]) == 0;
    ok = ok && len == k;
    if (!ok) {
        printf("# chain is:");
        for (size_t i = 0; got && i < len; i++)
            printf(" %s", got[i]);
        printf("\n");
    }
    vmm_strv_free(got);
    return ok;
}

static void t_snapshots_and_jobs(void *data)
{
    char *err = NULL;
    char *guest_base = vmt_guest_file("disk.qcow2");
    char *base = vmt_path("base.qcow2");
    char *a = vmt_path("a.qcow2");
    char *b = vmt_path("b.qcow2");
    char *c = vmt_path("c.qcow2");
    REQUIRE(vmt_sh("cp '%s' '%s' && qemu-img create -q -f qcow2 -b '%s' -F qcow2 '%s'",
                   guest_base, base, base, a) == 0);
    VmtLog log;
    vmt_log_init(&log);
    VmmConfig cfg;
    vmt_config(&cfg, UUID, "wait");
    vmm_config_add_disk(&cfg, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, a, VMM_DISK_FORMAT_QCOW2);
    Vmm *vm = NULL;
    CHECK_MSG(vmm_start(vmt_run, &cfg, vmt_on_event, &log, &vm, &err) == 0, "start: %s", err);
    REQUIRE(vm);
    REQUIRE(vmt_wait_heartbeat(vmt_run, UUID, 1, VMT_BOOT_MS));
    CHECK_INT(guest_write(vm, 0x11, 0), 0);

    /* snapshot 1: QEMU makes the overlay */
    VmmSnapshotDisk s1 = {.position = 0, .overlay = b, .create = true};
    int64_t t0 = vmm_now_ms();
    CHECK_MSG(vmm_snapshot_disks(vm, &s1, 1, &err) == 0, "snapshot: %s", err);
    printf("# snapshot switch took %lld ms (QMP round trip included)\n",
           (long long)(vmm_now_ms() - t0));
    CHECK(chain_is(vm, b, a, base, NULL));
    CHECK_INT(vmm_last_state(vm), VMM_RUN_STATE_RUNNING);
    int hb = vmt_last_heartbeat(vmt_run, UUID);
    CHECK(vmt_wait_heartbeat(vmt_run, UUID, hb, 20000)); /* the guest keeps running */
    /* the old active file is now a consistent read-only backing file */
    CHECK_INT(vmt_sh("qemu-img check -q -U '%s'", a), 0);
    CHECK_INT(vmt_sh("qemu-img info -U '%s' | grep -q 'backing file: %s'", b, a), 0);
    CHECK_INT(vmm_snapshot_disks(vm, &s1, 1, &err), -EEXIST); /* overlay exists */
    CHECK_INT(guest_write(vm, 0x22, 64), 0);

    /* snapshot 2: the caller made the overlay */
    REQUIRE(vmt_sh("qemu-img create -q -f qcow2 -u -b '%s' -F qcow2 '%s' 64M", b, c) == 0);
    VmmSnapshotDisk s2 = {.position = 0, .overlay = c, .create = false};
    CHECK_MSG(vmm_snapshot_disks(vm, &s2, 1, &err) == 0, "snapshot 2: %s", err);
    CHECK(chain_is(vm, c, b, a, base));
    CHECK_INT(guest_write(vm, 0x33, 128), 0);
    VmmConfig now;
    vmm_get_config(vm, &now);
    CHECK_STR(now.disks[0].path, c);
    vmm_config_release(&now);

    /* active commit c -> b: ready, then completed by the wait */
    int before = vmt_count(&log);
    CHECK_MSG(vmm_job_commit(vm, 0, NULL, NULL, "commit-active", &err) == 0, "commit: %s", err);
    CHECK_MSG(vmm_job_wait(vm, "commit-active", true, 60000, NULL, NULL, &err) == 0,
              "commit wait: %s", err);
    CHECK(vmt_wait_event(&log, VMM_EVENT_BLOCK_JOB_READY, before, 5000) >= 0);
    int done = vmt_wait_event(&log, VMM_EVENT_BLOCK_JOB_COMPLETED, before, 5000);
    CHECK(done >= 0);
    if (done >= 0)
        CHECK_STR(log.ev[done].device, "commit-active");
    CHECK(chain_is(vm, b, a, base, NULL));
    vmm_get_config(vm, &now);
    CHECK_STR(now.disks[0].path, b); /* the configuration follows the pivot */
    vmm_config_release(&now);
    CHECK_INT(vmm_job_query(vm, "commit-active", &(VmmJobInfo){0}, &err), -ENOENT);

    /* intermediate commit a -> base */
    CHECK_MSG(vmm_job_commit(vm, 0, a, base, "commit-mid", &err) == 0, "commit 2: %s", err);
    CHECK_MSG(vmm_job_wait(vm, "commit-mid", true, 60000, NULL, NULL, &err) == 0,
              "commit 2 wait: %s", err);
    CHECK(chain_is(vm, b, base, NULL, NULL));
    CHECK_INT(vmm_job_commit(vm, 0, NULL, "/not/in/chain", "x1", &err), -ENOENT);
    CHECK_INT(vmm_job_stream(vm, 0, "/not/in/chain", "x1", &err), -ENOENT);

    /* stream the rest into the active layer */
    uint64_t total = 0;
    CHECK_MSG(vmm_job_stream(vm, 0, NULL, "stream-all", &err) == 0, "stream: %s", err);
    CHECK_MSG(vmm_job_wait(vm, "stream-all", false, 60000, NULL, NULL, &err) == 0,
              "stream wait: %s", err);
    (void)total;
    CHECK(chain_is(vm, b, NULL, NULL, NULL));

    /* refusals */
    CHECK_INT(vmm_job_commit(vm, 0, NULL, NULL, "nothing-below", &err), -EINVAL);
    CHECK_INT(vmm_job_commit(vm, 0, NULL, NULL, "bad id!", &err), -EINVAL);
    CHECK_INT(vmm_job_stream(vm, 5, NULL, "x2", &err), -ENODEV);

    CHECK_INT(vmm_destroy(vm, 10000, &err), 0);
    vmm_close(vm);
    /* independent checks on the files QEMU left */
    CHECK_INT(vmt_sh("qemu-img check -q '%s'", b), 0);
    CHECK_INT(vmt_sh("qemu-img info '%s' | grep -q 'backing file'", b), 1); /* standalone */
    CHECK_INT(vmt_sh("qemu-io -r -f qcow2 -c 'read -q -P 0x11 0 64k' -c 'read -q -P 0x22 64k 64k'"
                     " -c 'read -q -P 0x33 128k 64k' '%s' | grep -q 'Pattern verification "
                     "failed'", b), 1);
    CHECK_INT(vmt_sh("qemu-io -r -f qcow2 -c 'read -P 0x33 128k 64k' '%s' | grep -q 'read 65536'",
                     b), 0);
    /* the intermediate commit put 0x11 into the private base */
    CHECK_INT(vmt_sh("qemu-io -r -f qcow2 -c 'read -P 0x11 0 64k' '%s' | grep -q 'read 65536'",
                     base), 0);
    CHECK_INT(vmt_sh("qemu-img check -q '%s'", base), 0);
    /* the disk still boots the guest */
    CHECK_INT(vmt_sh("qemu-img compare -q -f qcow2 -F qcow2 '%s' '%s' >/dev/null; test $? -le 1",
                     b, guest_base), 0);
    vmm_config_release(&cfg);
    free(guest_base);
    free(base);
    free(a);
    free(b);
    free(c);
    free(err);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static uint64_t mig_done, mig_total;

static void mig_progress(uint64_t done, uint64_t total, void *opaque)
{
    mig_done = done;
    mig_total = total;
}

static void t_migrate(void *data)
{
    const char *uuid = "d0000000-0000-4000-8000-000000000002";
    char *err = NULL;
    char *disk = vmt_overlay("mig.qcow2");
    char *run2 = vmt_path("run2");
    VmmConfig cfg;
    vmt_config(&cfg, uuid, "wait");
    vmm_config_add_disk(&cfg, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, disk, VMM_DISK_FORMAT_QCOW2);
    VmtLog slog, dlog;
    vmt_log_init(&slog);
    vmt_log_init(&dlog);
    Vmm *src = NULL, *dst = NULL;
    CHECK_MSG(vmm_start(vmt_run, &cfg, vmt_on_event, &slog, &src, &err) == 0, "start: %s", err);
    REQUIRE(src);
    REQUIRE(vmt_wait_heartbeat(vmt_run, uuid, 2, VMT_BOOT_MS));

    int port = free_port();
    REQUIRE(port > 0);
    VmmConfig in;
    vmm_config_copy(&in, &cfg);
    in.incoming = VMM_INCOMING_URI;
    in.incoming_uri = xasprintf("tcp:127.0.0.1:%d", port);
    CHECK_MSG(vmm_start(run2, &in, vmt_on_event, &dlog, &dst, &err) == 0, "target: %s", err);
    REQUIRE(dst);
    VmmRunState st;
    CHECK_INT(vmm_query_status(dst, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_INMIGRATE);

    VmmMigrateOptions opts = {.max_bandwidth = 1ULL << 30, .timeout_ms = 120000};
    int r = vmm_migrate(src, in.incoming_uri, &opts, mig_progress, NULL, &err);
    CHECK_MSG(r == 0, "migrate: %s", err);
    CHECK(mig_total > 0 && mig_done == mig_total);
    CHECK_MSG(vmm_wait_incoming(dst, 60000, &err) == 0, "incoming: %s", err);
    CHECK_INT(vmm_query_status(src, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_POSTMIGRATE);
    CHECK_INT(vmm_query_status(dst, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_RUNNING);
    CHECK(vmt_wait_event(&slog, VMM_EVENT_MIGRATION, 0, 5000) >= 0);
    /* the guest goes on in the target: its heartbeat numbering continues there */
    int hb = vmt_last_heartbeat(vmt_run, uuid);
    CHECK(vmt_wait_heartbeat(run2, uuid, hb, 30000));
    char *console = vmt_console(run2, uuid);
    CHECK_INT(vmt_count_str(console, "TEST-MARKER: READY"), 0);
    free(console);
    CHECK_INT(vmm_destroy(src, 10000, &err), 0);
    CHECK_INT(vmm_powerdown(dst, &err), 0);
    CHECK(vmt_wait_event(&dlog, VMM_EVENT_EXITED, 0, 60000) >= 0);
    vmm_close(src);
    vmm_close(dst);
    CHECK_INT(vmt_sh("qemu-img check -q '%s'", disk), 0);
    vmm_config_release(&in);
    vmm_config_release(&cfg);
    free(disk);
    free(run2);
    free(err);
}

int main(void)
{
    if (!vmt_setup()) {
        printf("1..0 # SKIP the test guest cannot be built\n");
        return 0;
    }
    test_run("external snapshots of a running guest, commit and stream back", t_snapshots_and_jobs,
             NULL);
    test_run("live migration to a second QEMU over loopback TCP", t_migrate, NULL);
    vmt_teardown();
    return test_done();
}
