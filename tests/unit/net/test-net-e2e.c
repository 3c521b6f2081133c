/*
 * End-to-end test of src/net with a real guest: an internal network with DHCP
 * (bridge, address, nftables rules, dnsmasq), a tap plugged into it, and the
 * test guest booted under TCG on that tap with test.net=dhcp. Asserts that
 * dnsmasq leased the guest an address (found by MAC in the lease file) and
 * that the guest's web page is reachable from the host side of the bridge.
 * Runs in private namespaces (netns.h); skipped (77) if they cannot be made,
 * or if QEMU or the test guest are unavailable.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "net/net.h"
#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/xalloc.h"
#include "netns.h"
#include "util/banned.h"

#define E2E_BRIDGE "hxe2e0"
#define E2E_PAGE   "hello from the test guest"

static char run_dir[] = "/tmp/hx-net-e2e-XXXXXX";
static char *guest_dir;

/*
 * The guest's /init runs `udhcpc -s /bin/true-dhcp`; an image without that
 * script gets a lease but never configures it. Append a small cpio archive
 * carrying a standard udhcpc event script to the initramfs (the kernel
 * unpacks concatenated archives in order), so the guest uses its lease.
 */
static const char dhcp_script[] = "#!/bin/sh\n"
                                  "case \"$1\" in\n"
                                  "bound|renew)\n"
                                  "    ip addr flush dev \"$interface\"\n"
                                  "    ip addr add \"$ip/${mask:-24}\" dev \"$interface\"\n"
                                  "    if [ -n \"$router\" ]; then\n"
                                  "        ip route add default via \"${router%% *}\"\n"
                                  "    fi\n"
                                  "    ;;\n"
                                  "deconfig)\n"
                                  "    ip addr flush dev \"$interface\"\n"
                                  "    ;;\n"
                                  "esac\n"
                                  "exit 0\n";

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    StrBuf sb = STRBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        strbuf_add(&sb, buf, n);
    fclose(f);
    return strbuf_detach(&sb, len);
}

static char *make_initrd(void)
{
    _cleanup_free_ char *ov = xasprintf("%s/overlay", run_dir);
    _cleanup_free_ char *bin = xasprintf("%s/bin", ov);
    _cleanup_free_ char *script = xasprintf("%s/true-dhcp", bin);
    assert_int_equal(mkdir(ov, 0755), 0);
    assert_int_equal(mkdir(bin, 0755), 0);
    write_file(script, dhcp_script, strlen(dhcp_script), 0755);
    const char *cpio[] = {"cpio", "--quiet", "-o", "-H", "newc", NULL};
    static const char list[] = "bin/true-dhcp\n";
    SpawnOptions o = {.cwd = ov, .input = list, .input_len = strlen(list)};
    SpawnResult res;
    assert_int_equal(spawn_run(cpio, &o, &res), 0);
    assert_true(spawn_result_ok(&res));

    _cleanup_free_ char *base_path = xasprintf("%s/initrd.img", guest_dir);
    size_t blen = 0;
    _cleanup_free_ char *base = read_file(base_path, &blen);
    assert_non_null(base);
    StrBuf all = STRBUF_INIT;
    strbuf_add(&all, base, blen);
    while (all.len % 4) /* an uncompressed archive must start 4-byte aligned */
        strbuf_addch(&all, '\0');
    strbuf_add(&all, res.out.buf, res.out.len);
    spawn_result_release(&res);
    char *path = xasprintf("%s/initrd-e2e.img", run_dir);
    write_file(path, all.buf, all.len, 0644);
    strbuf_release(&all);
    return path;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void show_serial(const char *log)
{
    size_t n = 0;
    _cleanup_free_ char *s = read_file(log, &n);
    fprintf(stderr, "# guest serial console:\n%s\n", s ? s : "(none)");
}

static void test_guest_dhcp_and_http(void **state)
{
    _cleanup_strbuf_ StrBuf err = STRBUF_INIT;
    NetIpv4 pref;
    assert_int_equal(net_ipv4_parse("192.168.150.0/24", &pref), 0);
    NetNetworkSpec spec = {
        .bridge = E2E_BRIDGE,
        .mode = NET_MODE_INTERNAL,
        .run_dir = run_dir,
        .has_address = true,
        .subnet = &pref,
        .dhcp = true,
    };
    NetNetworkStatus st;
    int r = net_network_start(&spec, &st, &err);
    if (r < 0)
        fprintf(stderr, "# %s\n", err.buf);
    assert_int_equal(r, 0);
    assert_true(st.dnsmasq_pid > 1);

    char tap[NET_IFNAME_MAX + 1];
    assert_int_equal(net_tap_name(1, 0, tap), 0);
    assert_int_equal(net_tap_plug(tap, E2E_BRIDGE, 1500, -1), 0);
    NetMac mac;
    assert_int_equal(net_mac_from_seed("hyperxe-e2e-seed", 0, &mac), 0);
    char mac_s[NET_MAC_STRLEN];
    net_mac_format(&mac, mac_s);

    _cleanup_free_ char *initrd = make_initrd();
    _cleanup_free_ char *kernel = xasprintf("%s/vmlinuz", guest_dir);
    _cleanup_free_ char *log = xasprintf("%s/serial.log", run_dir);
    _cleanup_free_ char *pidfile = xasprintf("%s/qemu.pid", run_dir);
    _cleanup_free_ char *serial = xasprintf("file:%s", log);
    _cleanup_free_ char *netdev = xasprintf("tap,id=n0,ifname=%s,script=no,downscript=no", tap);
    _cleanup_free_ char *device = xasprintf("virtio-net-pci,netdev=n0,mac=%s", mac_s);
    const char *qemu[] = {"qemu-system-x86_64",
                          "-accel",
                          "tcg",
                          "-m",
                          "256",
                          "-nodefaults",
                          "-display",
                          "none",
                          "-serial",
                          serial,
                          "-kernel",
                          kernel,
                          "-initrd",
                          initrd,
                          "-append",
                          "console=ttyS0 quiet panic=-1 test=wait test.net=dhcp",
                          "-netdev",
                          netdev,
                          "-device",
                          device,
                          "-daemonize",
                          "-pidfile",
                          pidfile,
                          NULL};
    double t0 = now_s();
    SpawnResult res;
    assert_int_equal(spawn_run(qemu, NULL, &res), 0);
    if (!spawn_result_ok(&res))
        fprintf(stderr, "# qemu: %s\n", res.err.buf);
    assert_true(spawn_result_ok(&res));
    spawn_result_release(&res);

    /* The lease, found by MAC. */
    _cleanup_free_ char *leases = net_dnsmasq_lease_path(run_dir, E2E_BRIDGE);
    char **ips = NULL;
    double t_lease = 0;
    while (now_s() - t0 < 40) {
        char **v = NULL;
        if (net_dnsmasq_lease_lookup(leases, &mac, &v) == 0 && v[0]) {
            ips = v;
            t_lease = now_s() - t0;
            break;
        }
        strvfreep(&v);
        sleep_ms(200);
    }
    if (!ips) {
        show_serial(log);
        fail_msg("no DHCP lease for %s within 40 s", mac_s);
        return;
    }
    NetIpv4 leased = {.prefix = 32};
    assert_int_equal(net_ipv4_parse(ips[0], &leased), 0);
    assert_true(net_ipv4_overlap(&leased, &st.address)); /* in the bridge's subnet */
    printf("# guest %s leased %s after %.1f s\n", mac_s, ips[0], t_lease);

    /* Its web server, from the host side of the bridge. */
    _cleanup_free_ char *url = xasprintf("http://%s/", ips[0]);
    /* curl if there is one, else busybox wget (whose -T crashes in 1.35: the
     * spawn timeout bounds it instead). */
    const char *curl[] = {"curl", "-s", "--max-time", "3", url, NULL};
    const char *wget[] = {"busybox", "wget", "-q", "-O", "-", url, NULL};
    char *curl_path = spawn_find_program("curl");
    const char *const *fetch = curl_path ? curl : wget;
    free(curl_path);
    bool got = false;
    while (!got && now_s() - t0 < 55) {
        SpawnOptions o = {.timeout_ms = 5000};
        if (spawn_run(fetch, &o, &res) == 0) {
            got = spawn_result_ok(&res) && strstr(res.out.buf, E2E_PAGE);
            spawn_result_release(&res);
        }
        if (!got)
            sleep_ms(300);
    }
    if (!got)
        show_serial(log);
    assert_true(got);
    printf("# page fetched from %s after %.1f s\n", url, now_s() - t0);
    for (char **p = ips; *p; p++)
        free(*p);
    free(ips);

    /* Tear down: QEMU, tap, network; nothing of ours is left. */
    size_t n = 0;
    _cleanup_free_ char *pid_s = read_file(pidfile, &n);
    assert_non_null(pid_s);
    pid_t qpid = (pid_t)atoi(pid_s);
    assert_true(qpid > 1);
    assert_int_equal(kill(qpid, SIGTERM), 0);
    for (int i = 0; i < 500 && kill(qpid, 0) == 0; i++)
        sleep_ms(10);
    assert_int_equal(net_tap_delete(tap), 0);
    assert_int_equal(net_network_stop(E2E_BRIDGE, run_dir, &err), 0);
    assert_false(net_link_exists(E2E_BRIDGE));
    assert_false(net_link_exists(tap));
    assert_false(net_nft_network_present(E2E_BRIDGE));
}

static int teardown(void **state)
{
    net_dnsmasq_stop(run_dir, E2E_BRIDGE);
    const char *rm[] = {"rm", "-rf", run_dir, NULL};
    SpawnResult res;
    if (spawn_run(rm, NULL, &res) == 0)
        spawn_result_release(&res);
    return 0;
}

/* Makes sure the test guest exists (building it needs the network, so this
 * runs before entering the namespaces). Exits 77 if it cannot. */
static void ensure_guest(void)
{
    const char *dir = getenv("HX_GUEST_DIR");
    guest_dir = dir ? xstrdup(dir) : xstrdup(HX_SOURCE_ROOT "/.cache/guest");
    _cleanup_free_ char *k = xasprintf("%s/vmlinuz", guest_dir);
    _cleanup_free_ char *i = xasprintf("%s/initrd.img", guest_dir);
    if (access(k, R_OK) == 0 && access(i, R_OK) == 0)
        return;
    const char *build[] = {HX_SOURCE_ROOT "/scripts/build-test-guest", guest_dir, NULL};
    SpawnOptions o = {.timeout_ms = 900000, .output_max = 1 << 20};
    SpawnResult res;
    int r = spawn_run(build, &o, &res);
    if (r < 0 || !spawn_result_ok(&res) || access(k, R_OK) != 0) {
        printf("1..0 # SKIP cannot build the test guest in %s: %s\n", guest_dir,
               r < 0 ? strerror(-r) : res.err.buf);
        exit(77);
    }
    spawn_result_release(&res);
}

int main(void)
{
    char *qemu = spawn_find_program("qemu-system-x86_64");
    if (!qemu) {
        printf("1..0 # SKIP qemu-system-x86_64 is not installed\n");
        return 77;
    }
    free(qemu);
    ensure_guest();
    netns_enter("test-net-e2e");
    if (!mkdtemp(run_dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guest_dhcp_and_http),
    };
    int rc = cmocka_run_group_tests(tests, NULL, teardown);
    free(guest_dir);
    return rc;
}
