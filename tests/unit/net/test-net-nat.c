/*
 * NAT network test with real traffic, in private namespaces (netns.h) plus
 * two more network namespaces standing in for "the outside" (behind the
 * uplink) and "a guest" (a veth on the bridge). The guest side takes a lease
 * from the network's dnsmasq with busybox udhcpc, then: it reaches a server
 * outside, which sees the uplink's address (masquerading works); the outside
 * cannot open a connection to the guest (forwarding policy), while the host
 * can. Skipped (77) where namespaces, python3 or busybox are missing.
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/xalloc.h"
#include "netns.h"
#include "util/banned.h"

#define PYTHON "/usr/bin/python3"

static char run_dir[] = "/tmp/hx-net-nat-XXXXXX";

/* Serves connections for 30 s, answering each with the peer's address. */
static const char py_server[] = "import socket, sys\n"
                                "s = socket.socket()\n"
                                "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                                "s.bind(('0.0.0.0', int(sys.argv[1])))\n"
                                "s.listen(8)\n"
                                "s.settimeout(30)\n"
                                "while True:\n"
                                "    try:\n"
                                "        c, a = s.accept()\n"
                                "    except socket.timeout:\n"
                                "        break\n"
                                "    c.sendall(a[0].encode())\n"
                                "    c.close()\n";

/* Connects, prints what the server says; exit status 1 if it cannot. */
static const char py_client[] =
    "import socket, sys\n"
    "try:\n"
    "    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "    print(c.recv(100).decode())\n"
    "except OSError as e:\n"
    "    print('error', e)\n"
    "    sys.exit(1)\n";

static const char udhcpc_script[] = "#!/bin/sh\n"
                                    "case \"$1\" in\n"
                                    "bound|renew)\n"
                                    "    ip addr flush dev \"$interface\"\n"
                                    "    ip addr add \"$ip/$mask\" dev \"$interface\"\n"
                                    "    ip route add default via \"${router%% *}\"\n"
                                    "    ;;\n"
                                    "esac\n"
                                    "exit 0\n";

/* A process sitting in a network namespace of its own, until killed. */
static pid_t holder_new(void)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char ok = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
        ssize_t HX_UNUSED w = write(p[1], &ok, 1);
        for (;;)
            pause();
    }
    close(p[1]);
    char ok = 0;
    assert_int_equal(read(p[0], &ok, 1), 1);
    close(p[0]);
    assert_int_equal(ok, 'y');
    return pid;
}

/* Runs argv in holder's network namespace; returns the result (caller releases). */
static int in_ns(pid_t holder, const char *const *argv, SpawnResult *res)
{
    char netarg[64];
    snprintf(netarg, sizeof(netarg), "--net=/proc/%d/ns/net", (int)holder);
    const char *v[32] = {"nsenter", netarg};
    size_t n = 2;
    for (size_t i = 0; argv[i] && n < 31; i++)
        v[n++] = argv[i];
    v[n] = NULL;
    SpawnOptions o = {.timeout_ms = 20000};
    return spawn_run(v, &o, res);
}

static void must(pid_t holder, const char *const *argv)
{
    SpawnResult res;
    int r = holder ? in_ns(holder, argv, &res) : spawn_run(argv, NULL, &res);
    assert_int_equal(r, 0);
    if (!spawn_result_ok(&res))
        fprintf(stderr, "# %s %s: %s\n", argv[0], argv[1], res.err.buf);
    assert_true(spawn_result_ok(&res));
    spawn_result_release(&res);
}

/* Starts the server in holder's namespace in the background. */
static pid_t server_start(pid_t holder, const char *port)
{
    char netarg[64];
    snprintf(netarg, sizeof(netarg), "--net=/proc/%d/ns/net", (int)holder);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        execlp("nsenter", "nsenter", netarg, PYTHON, "-c", py_server, port, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Connects from holder's namespace (0: ours); returns what the server said,
 * or NULL if no connection could be made. Retries for a while if asked
 * (the server may still be starting). */
static char *client(pid_t holder, const char *addr, const char *port, int tries)
{
    const char *argv[] = {PYTHON, "-c", py_client, addr, port, NULL};
    for (int i = 0; i < tries; i++) {
        SpawnResult res;
        int r = holder ? in_ns(holder, argv, &res) : spawn_run(argv, NULL, &res);
        assert_int_equal(r, 0);
        if (spawn_result_ok(&res)) {
            strbuf_trim_trailing_newline(&res.out);
            char *out = strbuf_detach(&res.out, NULL);
            spawn_result_release(&res);
            return out;
        }
        spawn_result_release(&res);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_nat_traffic(void **state)
{
    pid_t outside = holder_new(), guest = holder_new();
    char outside_s[16], guest_s[16];
    snprintf(outside_s, sizeof(outside_s), "%d", (int)outside);
    snprintf(guest_s, sizeof(guest_s), "%d", (int)guest);

    /* Uplink: wan0 here (203.0.113.1, default route), wan1 outside (.254).
     * The outside has no route to the guests' subnet. */
    const char *a1[] = {"ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan1", NULL};
    const char *a2[] = {"ip", "link", "set", "wan1", "netns", outside_s, NULL};
    const char *a3[] = {"ip", "addr", "add", "203.0.113.1/24", "dev", "wan0", NULL};
    const char *a4[] = {"ip", "link", "set", "wan0", "up", NULL};
    const char *a5[] = {"ip", "route", "add", "default", "via", "203.0.113.254", NULL};
    const char *o1[] = {"ip", "addr", "add", "203.0.113.254/24", "dev", "wan1", NULL};
    const char *o2[] = {"ip", "link", "set", "wan1", "up", NULL};
    const char *o3[] = {"ip", "link", "set", "lo", "up", NULL};
    must(0, a1);
    must(0, a2);
    must(0, a3);
    must(0, a4);
    must(0, a5);
    must(outside, o1);
    must(outside, o2);
    must(outside, o3);

    _cleanup_strbuf_ StrBuf err = STRBUF_INIT;
    NetNetworkSpec spec = {.bridge = "xenbr0", .mode = NET_MODE_NAT, .run_dir = run_dir};
    NetNetworkStatus st;
    int r = net_network_start(&spec, &st, &err);
    if (r < 0)
        fprintf(stderr, "# %s\n", err.buf);
    assert_int_equal(r, 0);
    assert_string_equal(st.uplink, "wan0");
    char addr_s[32];
    net_ipv4_format(&st.address, addr_s);
    assert_string_equal(addr_s, "192.168.122.1/24");

    /* The "guest": a veth whose one end is a port of xenbr0. */
    const char *g1[] = {"ip", "link", "add", "gst0", "type", "veth", "peer", "name", "gst1", NULL};
    const char *g2[] = {"ip", "link", "set", "gst1", "netns", guest_s, NULL};
    must(0, g1);
    assert_int_equal(net_bridge_add_port("xenbr0", "gst0"), 0);
    assert_int_equal(net_link_set_up("gst0", true), 0);
    must(0, g2);
    const char *g3[] = {"ip", "link", "set", "gst1", "up", NULL};
    must(guest, g3);
    must(guest, o3);

    /* DHCP from the network's dnsmasq, gateway included. */
    _cleanup_free_ char *script = xasprintf("%s/udhcpc.sh", run_dir);
    int fd = open(script, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, udhcpc_script, strlen(udhcpc_script)),
                     (ssize_t)strlen(udhcpc_script));
    close(fd);
    const char *dhcp[] = {"busybox", "udhcpc", "-i", "gst1", "-q",   "-n", "-t",
                          "10",      "-T",     "1",  "-s",   script, NULL};
    must(guest, dhcp);
    const char *show[] = {"ip", "-4", "-o", "addr", "show", "dev", "gst1", NULL};
    SpawnResult res;
    assert_int_equal(in_ns(guest, show, &res), 0);
    char *inet = strstr(res.out.buf, "inet 192.168.122.");
    assert_non_null(inet);
    char guest_ip[32] = "";
    sscanf(inet + 5, "%31[0-9.]", guest_ip);
    spawn_result_release(&res);
    /* The lease is on record under the guest's MAC. */
    const char *lk[] = {"ip", "-o", "link", "show", "gst1", NULL};
    assert_int_equal(in_ns(guest, lk, &res), 0);
    char *ether = strstr(res.out.buf, "link/ether ");
    assert_non_null(ether);
    char mac_s[NET_MAC_STRLEN] = "";
    sscanf(ether + 11, "%17s", mac_s);
    spawn_result_release(&res);
    NetMac gmac;
    assert_int_equal(net_mac_parse(mac_s, &gmac, NULL), 0);
    _cleanup_free_ char *leases = net_dnsmasq_lease_path(run_dir, "xenbr0");
    _cleanup_strv_ char **ips = NULL;
    assert_int_equal(net_dnsmasq_lease_lookup(leases, &gmac, &ips), 0);
    assert_non_null(ips[0]);
    assert_string_equal(ips[0], guest_ip);

    /* Out: the server outside sees the uplink's address, not the guest's. */
    server_start(outside, "8080");
    _cleanup_free_ char *seen = client(guest, "203.0.113.254", "8080", 50);
    assert_non_null(seen);
    assert_string_equal(seen, "203.0.113.1");

    /* In: the outside (given a route) cannot open a connection to the guest;
     * the host can. */
    server_start(guest, "8081");
    _cleanup_free_ char *from_host = client(0, guest_ip, "8081", 50);
    assert_non_null(from_host);
    assert_string_equal(from_host, "192.168.122.1");
    const char *o4[] = {"ip", "route", "add", "192.168.122.0/24", "via", "203.0.113.1", NULL};
    must(outside, o4);
    _cleanup_free_ char *from_outside = client(outside, guest_ip, "8081", 1);
    assert_null(from_outside);

    /* Without our rules the same connection goes through: the test can fail. */
    assert_int_equal(net_nft_network_remove("xenbr0", &err), 0);
    _cleanup_free_ char *unfiltered = client(outside, guest_ip, "8081", 5);
    assert_non_null(unfiltered);
    assert_string_equal(unfiltered, "203.0.113.254");

    assert_int_equal(net_network_stop("xenbr0", run_dir, &err), 0);
}

static int teardown(void **state)
{
    net_dnsmasq_stop(run_dir, "xenbr0");
    const char *rm[] = {"rm", "-rf", run_dir, NULL};
    SpawnResult res;
    if (spawn_run(rm, NULL, &res) == 0)
        spawn_result_release(&res);
    return 0;
}

int main(void)
{
    if (access(PYTHON, X_OK) != 0) {
        printf("1..0 # SKIP %s is missing\n", PYTHON);
        return 77;
    }
    char *bb = spawn_find_program("busybox");
    if (!bb) {
        printf("1..0 # SKIP busybox is missing\n");
        return 77;
    }
    free(bb);
    netns_enter("test-net-nat");
    if (!mkdtemp(run_dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nat_traffic),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
