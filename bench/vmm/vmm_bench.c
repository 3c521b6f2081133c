/*
 * Figures for the VMM layer, each printed beside a baseline measured in the
 * same run (see bench/vmm-start-overhead and bench/vmm-memory):
 *
 *   vmm-bench start-overhead [ROUNDS]
 *       time from vmm_start() to the guest's "TEST-MARKER: READY" on its
 *       serial console, against the very same QEMU command line run by hand
 *       (fork+exec of the argv vmm_start() logged), alternating the two.
 *   vmm-bench memory
 *       RSS and PSS of idle test VMs (128 MiB, TCG) as started by vmm_start()
 *       with several tb-size values and a ballooned one, against a minimal
 *       hand-written QEMU command line, and how many would fit here.
 *   vmm-bench snapshot-pause
 *       how long vmm_snapshot_disks() holds a running VM (the QMP transaction,
 *       during which guest I/O is drained) on a 64 MiB and a 20 GiB disk, each
 *       right after 32 MiB were written to it, against a plain QMP round trip.
 *       The time measured is the whole call, an upper bound of the hold.
 *
 * Timing code: not a test, never run by meson test.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/vmm.h"
#include "vmm/vmm_util.h"

static char guest[512];
static char tmp[128];
static char *run;

static char *guest_file(const char *n)
{
    return xasprintf("%s/%s", guest, n);
}

static void base_config(VmmConfig *c, const char *uuid, const char *mode)
{
    vmm_config_init(c);
    snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
    c->name = xasprintf("bench-%s", mode);
    c->memory_mib = 128;
    c->kernel = guest_file("vmlinuz");
    c->initrd = guest_file("initrd.img");
    c->cmdline = xasprintf("console=ttyS0,115200 quiet panic=-1 test=%s", mode);
}

static bool console_has(const char *path, const char *text)
{
    char *buf = NULL;
    ssize_t n = vmm_read_file(path, 1 << 20, false, &buf);
    bool found = n > 0 && strstr(buf, text);
    free(buf);
    return found;
}

/* Polls path every 5 ms until text shows up; returns the elapsed ms since t0 or -1. */
static int64_t wait_text(const char *path, const char *text, int64_t t0, unsigned timeout_ms)
{
    while (!console_has(path, text)) {
        if (vmm_now_ms() - t0 > timeout_ms)
            return -1;
        vmm_sleep_ms(5);
    }
    return vmm_now_ms() - t0;
}

static int64_t vmm_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t median(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Splits the shell-quoted line vmm_start() wrote into argv (single quotes only). */
static char **split_line(const char *line)
{
    char **v = NULL;
    size_t n = 0, alloc = 0;
    const char *p = line;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        StrBuf sb = STRBUF_INIT;
        while (*p && *p != ' ') {
            if (*p == '\'') {
                p++;
                while (*p && *p != '\'')
                    strbuf_addch(&sb, *p++);
                if (*p)
                    p++;
            } else if (*p == '\\' && p[1]) {
                strbuf_addch(&sb, p[1]);
                p += 2;
            } else {
                strbuf_addch(&sb, *p++);
            }
        }
        XGROW(v, n + 2, alloc);
        v[n++] = strbuf_detach(&sb, NULL);
        v[n] = NULL;
    }
    return v;
}

static int start_overhead(int rounds)
{
    const char *uuid = "ba000000-0000-4000-8000-000000000001";
    VmmConfig c;
    base_config(&c, uuid, "idle");
    char *console = vmm_path(run, uuid, "console.log");
    char *argv_file = vmm_path(run, uuid, "qemu.argv");
    int64_t vmm_ready[32], vmm_up[32], hand_ready[32];
    char **hand_argv = NULL;
    printf("rounds: %d (each: one vmm_start() boot, then the same command line by hand)\n",
           rounds);
    for (int i = 0; i < rounds; i++) {
        /* through the VMM */
        Vmm *vm = NULL;
        char *err = NULL;
        int64_t t0 = vmm_now_ms();
        if (vmm_start(run, &c, NULL, NULL, &vm, &err) < 0) {
            fprintf(stderr, "vmm_start: %s\n", err);
            return 1;
        }
        vmm_up[i] = vmm_now_ms() - t0;
        vmm_ready[i] = wait_text(console, "TEST-MARKER: READY", t0, 120000);
        vmm_destroy(vm, 10000, NULL);
        vmm_close(vm);
        if (!hand_argv) {
            char *line = NULL;
            if (vmm_read_file(argv_file, 1 << 20, false, &line) < 0)
                return 1;
            printf("command line (as logged by vmm_start):\n  %s\n", line);
            hand_argv = split_line(line);
            free(line);
            if (!hand_argv)
                return 1;
            /* by hand there is no inherited socket: QEMU binds the monitor itself */
            char *sock = vmm_path(run, uuid, "qmp.sock");
            for (char **a = hand_argv; *a; a++) {
                if (strstr(*a, "id=charmonitor,fd=3")) {
                    free(*a);
                    *a = xasprintf("socket,id=charmonitor,path=%s,server=on,wait=off", sock);
                }
            }
            free(sock);
        }
        /* by hand: fork+exec of the same argv */
        unlink(console);
        t0 = vmm_now_ms();
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open("/dev/null", O_RDWR);
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            execvp(hand_argv[0], hand_argv);
            _exit(127);
        }
        hand_ready[i] = wait_text(console, "TEST-MARKER: READY", t0, 120000);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        printf("round %d: vmm_start() returned after %lld ms, READY after %lld ms; "
               "by hand READY after %lld ms\n", i + 1, (long long)vmm_up[i],
               (long long)vmm_ready[i], (long long)hand_ready[i]);
        fflush(stdout);
        free(err);
    }
    int64_t mv = median(vmm_ready, rounds), mh = median(hand_ready, rounds);
    printf("\nstart to READY (median of %d): vmm_start %lld ms   by hand %lld ms   "
           "ratio %.3f (target <= 1.2)\n", rounds, (long long)mv, (long long)mh,
           mh > 0 ? (double)mv / (double)mh : 0.0);
    printf("vmm_start() itself (QEMU up, QMP negotiated): median %lld ms\n",
           (long long)median(vmm_up, rounds));
    vmm_strv_free(hand_argv);
    vmm_config_release(&c);
    free(console);
    free(argv_file);
    return 0;
}

/* ---- memory -------------------------------------------------------------------- */

static long proc_kb(pid_t pid, const char *file, const char *key)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    char *buf = NULL;
    long v = -1;
    if (vmm_read_file(path, 1 << 20, false, &buf) > 0) {
        char *p = strstr(buf, key);
        if (p)
            v = strtol(p + strlen(key), NULL, 10);
    }
    free(buf);
    return v;
}

static pid_t parent_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *buf = NULL;
    pid_t pp = 0;
    if (vmm_read_file(path, 4096, false, &buf) > 0) {
        char *rp = strrchr(buf, ')');
        if (rp)
            sscanf(rp + 2, "%*c %d", &pp);
    }
    free(buf);
    return pp;
}

typedef struct MemCase {
    const char *label;
    unsigned tb;      /* tb-size MiB, 0 = default */
    unsigned balloon; /* balloon target MiB, 0 = none */
    bool by_hand;
    pid_t pid;
    Vmm *vm;
    char console[256];
} MemCase;

static int memory(void)
{
    MemCase cases[] = {
        {"by hand: minimal command line, default tb-size", 0, 0, true},
        {"by hand: minimal command line, tb-size=16", 16, 0, true},
        {"vmm_start: default tb-size", 0, 0, false},
        {"vmm_start: tb-size=32", 32, 0, false},
        {"vmm_start: tb-size=16", 16, 0, false},
        {"vmm_start: tb-size=16, balloon to 64 MiB", 16, 64, false},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    long avail_before = proc_kb(getpid(), "../meminfo", "MemAvailable:");
    for (size_t i = 0; i < n; i++) {
        MemCase *m = &cases[i];
        char uuid[37];
        snprintf(uuid, sizeof(uuid), "bb000000-0000-4000-8000-%012zu", i);
        if (m->by_hand) {
            char *dir = xasprintf("%s/hand%zu", tmp, i);
            vmm_mkdir_p(dir, 0700);
            snprintf(m->console, sizeof(m->console), "%s/console.log", dir);
            char *kernel = guest_file("vmlinuz"), *initrd = guest_file("initrd.img");
            char *serial = xasprintf("file:%s", m->console);
            char *accel = m->tb ? xasprintf("tcg,tb-size=%u", m->tb) : xstrdup("tcg");
            pid_t pid = fork();
            if (pid == 0) {
                int fd = open("/dev/null", O_RDWR);
                dup2(fd, 0);
                dup2(fd, 1);
                dup2(fd, 2);
                execlp("qemu-system-x86_64", "qemu-system-x86_64", "-accel", accel, "-m", "128",
                       "-nodefaults", "-display", "none", "-serial", serial, "-kernel", kernel,
                       "-initrd", initrd, "-append",
                       "console=ttyS0,115200 quiet panic=-1 test=idle", (char *)NULL);
                _exit(127);
            }
            m->pid = pid;
            free(dir);
            free(kernel);
            free(initrd);
            free(serial);
            free(accel);
        } else {
            VmmConfig c;
            base_config(&c, uuid, "idle");
            c.tcg_tb_size_mib = m->tb;
            char *err = NULL;
            if (vmm_start(run, &c, NULL, NULL, &m->vm, &err) < 0) {
                fprintf(stderr, "vmm_start: %s\n", err);
                return 1;
            }
            m->pid = vmm_pid(m->vm);
            char *p = vmm_path(run, uuid, "console.log");
            snprintf(m->console, sizeof(m->console), "%s", p);
            free(p);
            vmm_config_release(&c);
        }
    }
    printf("%zu idle test VMs (128 MiB, TCG) booting at once...\n", n);
    fflush(stdout);
    for (size_t i = 0; i < n; i++)
        if (wait_text(cases[i].console, "TEST-MARKER: READY", vmm_now_ms(), 180000) < 0)
            fprintf(stderr, "%s: no READY\n", cases[i].label);
    for (size_t i = 0; i < n; i++)
        if (cases[i].balloon)
            vmm_set_memory_target(cases[i].vm, cases[i].balloon, NULL);
    vmm_sleep_ms(15000); /* settle, as the reference measurement did */
    long avail_after = proc_kb(getpid(), "../meminfo", "MemAvailable:");
    long total = proc_kb(getpid(), "../meminfo", "MemTotal:");
    printf("\n%-48s %10s %10s %12s %10s\n", "", "RSS MiB", "PSS MiB", "+reaper PSS", "fit here");
    for (size_t i = 0; i < n; i++) {
        MemCase *m = &cases[i];
        long rss = proc_kb(m->pid, "status", "VmRSS:");
        long pss = proc_kb(m->pid, "smaps_rollup", "Pss:");
        long reaper = m->by_hand ? 0 : proc_kb(parent_of(m->pid), "smaps_rollup", "Pss:");
        long per_vm = pss + (reaper > 0 ? reaper : 0);
        printf("%-48s %10.1f %10.1f %12.1f %10ld\n", m->label, rss / 1024.0, pss / 1024.0,
               reaper / 1024.0, per_vm > 0 ? (long)(total * 0.9 / per_vm) : 0);
    }
    printf("\n(\"fit here\": 90%% of MemTotal %.1f GiB divided by PSS incl. the reaper;"
           " MemAvailable fell by %.0f MiB for the %zu VMs)\n", total / 1048576.0,
           (avail_before - avail_after) / 1024.0, n);
    for (size_t i = 0; i < n; i++) {
        if (cases[i].by_hand) {
            kill(cases[i].pid, SIGKILL);
            waitpid(cases[i].pid, NULL, 0);
        } else {
            vmm_destroy(cases[i].vm, 10000, NULL);
            vmm_close(cases[i].vm);
        }
    }
    return 0;
}

/* ---- snapshot pause --------------------------------------------------------------- */

static int hmp(Vmm *vm, const char *line)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "command-line", json_object_new_string(line));
    int r = vmm_qmp(vm, "human-monitor-command", a, 60000, NULL, NULL);
    json_object_put(a);
    return r;
}

static int snapshot_pause(void)
{
    static const char *const sizes[] = {"64M", "20G"};
    printf("%-10s %14s %14s %14s\n", "disk", "snapshot med", "snapshot max", "QMP round trip");
    for (size_t s = 0; s < 2; s++) {
        char uuid[37];
        snprintf(uuid, sizeof(uuid), "bc000000-0000-4000-8000-%012zu", s);
        char *disk = xasprintf("%s/disk-%s.qcow2", tmp, sizes[s]);
        char *cmd = xasprintf("qemu-img create -q -f qcow2 '%s' %s", disk, sizes[s]);
        if (system(cmd) != 0)
            return 1;
        free(cmd);
        VmmConfig c;
        vmm_config_init(&c);
        snprintf(c.uuid, sizeof(c.uuid), "%s", uuid);
        c.memory_mib = 64;
        vmm_config_add_disk(&c, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, disk,
                            VMM_DISK_FORMAT_QCOW2);
        Vmm *vm = NULL;
        char *err = NULL;
        if (vmm_start(run, &c, NULL, NULL, &vm, &err) < 0) {
            fprintf(stderr, "vmm_start: %s\n", err);
            return 1;
        }
        int64_t snap[5], rtt[5];
        for (int i = 0; i < 5; i++) {
            /* 32 MiB of fresh data in the active layer, as a busy guest would leave */
            char *w = xasprintf("qemu-io -d /machine/peripheral/disk0/virtio-backend "
                                "\"write -P 0x%02x 0 32M\"", i + 1);
            hmp(vm, w);
            free(w);
            char *ov = xasprintf("%s/ov-%s-%d.qcow2", tmp, sizes[s], i);
            VmmSnapshotDisk sd = {.position = 0, .overlay = ov, .create = true};
            int64_t t0 = vmm_now_us();
            if (vmm_snapshot_disks(vm, &sd, 1, &err) < 0)
                fprintf(stderr, "snapshot: %s\n", err);
            snap[i] = vmm_now_us() - t0;
            t0 = vmm_now_us();
            VmmRunState st;
            vmm_query_status(vm, &st, NULL);
            rtt[i] = vmm_now_us() - t0;
            free(ov);
        }
        int64_t mx = 0;
        for (int i = 0; i < 5; i++)
            mx = snap[i] > mx ? snap[i] : mx;
        printf("%-10s %11.1f ms %11.1f ms %11.2f ms\n", sizes[s], median(snap, 5) / 1000.0,
               mx / 1000.0, median(rtt, 5) / 1000.0);
        vmm_destroy(vm, 10000, NULL);
        vmm_close(vm);
        vmm_config_release(&c);
        free(disk);
        free(err);
    }
    printf("(target: the guest held < 100 ms whatever the disk size)\n");
    return 0;
}

int main(int argc, char **argv)
{
    log_set_level(getenv("HX_BENCH_LOG") ? LOG_LEVEL_INFO : LOG_LEVEL_ERROR);
    const char *g = getenv("HX_TEST_GUEST");
    snprintf(guest, sizeof(guest), "%s", g ? g : HX_SOURCE_ROOT "/.cache/guest");
    char *probe = guest_file("initrd.img");
    if (access(probe, R_OK) != 0) {
        char *cmd = xasprintf("'%s/scripts/build-test-guest' '%s' >&2", HX_SOURCE_ROOT, guest);
        if (system(cmd) != 0)
            return 1;
        free(cmd);
    }
    free(probe);
    snprintf(tmp, sizeof(tmp), "/tmp/hxbench-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    run = xasprintf("%s/run", tmp);
    int rc;
    if (argc > 1 && strcmp(argv[1], "start-overhead") == 0) {
        int rounds = argc > 2 ? atoi(argv[2]) : 5;
        rc = start_overhead(rounds < 1 ? 1 : rounds > 32 ? 32 : rounds);
    } else if (argc > 1 && strcmp(argv[1], "memory") == 0) {
        rc = memory();
    } else if (argc > 1 && strcmp(argv[1], "snapshot-pause") == 0) {
        rc = snapshot_pause();
    } else {
        fprintf(stderr, "usage: vmm-bench start-overhead [ROUNDS] | memory | snapshot-pause\n");
        rc = 2;
    }
    vmm_rm_rf(tmp);
    free(run);
    return rc;
}
