/*
 * Privileged tests of src/net, run inside private network/mount/PID
 * namespaces that the program makes for itself (netns.h): bridges and taps,
 * addresses and subnet choice, the nftables table, dnsmasq adoption across
 * processes, whole networks, host interfaces. Results are checked with the
 * independent tools where there are some (`ip`, `nft`, /proc). The host's
 * networking is never touched; skipped (77) where namespaces are impossible.
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
#include <dirent.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/xalloc.h"
#include "netns.h"
#include "util/banned.h"

static char run_dir[] = "/tmp/hx-net-ns-XXXXXX";

static bool contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static char *ip_link_show(const char *dev)
{
    const char *argv[] = {"ip", "-d", "link", "show", "dev", dev, NULL};
    return netns_cmd(argv);
}

static void test_bridge_tap(void **state)
{
    assert_int_equal(net_bridge_create("hxbr0", 1400), 0);
    assert_true(net_bridge_exists("hxbr0"));
    NetLinkInfo b;
    assert_int_equal(net_link_get("hxbr0", &b), 0);
    assert_string_equal(b.kind, "bridge");
    assert_int_equal(b.mtu, 1400);
    assert_true(b.up);
    assert_true(b.has_mac);
    assert_true((b.mac.b[0] & 3) == 2);
    _cleanup_free_ char *shown = ip_link_show("hxbr0");
    assert_true(contains(shown, "bridge forward_delay 0"));
    assert_true(contains(shown, "stp_state 0"));
    assert_true(contains(shown, "mtu 1400"));

    /* Idempotent; the MTU follows the latest request. */
    assert_int_equal(net_bridge_create("hxbr0", 1450), 0);
    NetLinkInfo b2;
    assert_int_equal(net_link_get("hxbr0", &b2), 0);
    assert_int_equal(b2.index, b.index);
    assert_int_equal(b2.mtu, 1450);

    char tap0[NET_IFNAME_MAX + 1], tap1[NET_IFNAME_MAX + 1];
    assert_int_equal(net_tap_name(3, 0, tap0), 0);
    assert_int_equal(net_tap_name(3, 1, tap1), 0);
    assert_int_equal(net_tap_create(tap0, -1), 0);
    assert_int_equal(net_tap_create(tap0, -1), 0); /* idempotent */
    _cleanup_free_ char *tshown = ip_link_show(tap0);
    assert_true(contains(tshown, "tun type tap"));
    assert_true(contains(tshown, "vnet_hdr on"));
    assert_true(contains(tshown, "persist on"));
    assert_true(contains(tshown, "pi off"));

    assert_int_equal(net_tap_plug(tap0, "hxbr0", 1450, -1), 0);
    assert_int_equal(net_tap_plug(tap1, "hxbr0", 1450, 0), 0);
    assert_int_equal(net_tap_plug(tap1, "hxbr0", 1450, 0), 0); /* idempotent */
    NetLinkInfo t;
    assert_int_equal(net_link_get(tap1, &t), 0);
    assert_int_equal(t.master_index, b.index);
    assert_int_equal(t.mtu, 1450);
    assert_true(t.up);
    _cleanup_free_ char *t1shown = ip_link_show(tap1);
    assert_true(contains(t1shown, "master hxbr0"));
    assert_true(contains(t1shown, "user root"));

    _cleanup_strv_ char **ports = NULL;
    assert_int_equal(net_bridge_list_ports("hxbr0", &ports), 0);
    assert_string_equal(ports[0], "vif3.0");
    assert_string_equal(ports[1], "vif3.1");
    assert_null(ports[2]);

    /* The bridge's MAC does not follow its ports. */
    assert_int_equal(net_link_get("hxbr0", &b2), 0);
    assert_true(net_mac_equal(&b.mac, &b2.mac));

    /* Detach (idempotent), list again. */
    assert_int_equal(net_bridge_remove_port("hxbr0", tap0), 0);
    assert_int_equal(net_bridge_remove_port("hxbr0", tap0), 0);
    _cleanup_strv_ char **ports2 = NULL;
    assert_int_equal(net_bridge_list_ports("hxbr0", &ports2), 0);
    assert_string_equal(ports2[0], "vif3.1");
    assert_null(ports2[1]);
    assert_int_equal(net_bridge_add_port("hxbr0", tap0), 0);
    assert_int_equal(net_bridge_add_port("hxbr0", tap0), 0);

    /* Wrong kinds and missing things. */
    assert_int_equal(net_bridge_create(tap0, 0), -EEXIST);
    assert_int_equal(net_bridge_delete(tap0), -EINVAL);
    assert_int_equal(net_tap_create("hxbr0", -1), -EEXIST);
    assert_int_equal(net_tap_delete("hxbr0"), -EINVAL);
    assert_int_equal(net_bridge_add_port("hxbr0", "nosuchdev"), -ENODEV);
    assert_int_equal(net_bridge_add_port("nosuchbr", tap0), -ENODEV);
    assert_int_equal(net_bridge_create("bad name", 0), -EINVAL);
    assert_int_equal(net_bridge_create("0123456789abcdef", 0), -EINVAL);
    assert_false(net_link_exists("nosuchdev"));

    /* A second bridge: moving a port there, and detaching it from the wrong one. */
    assert_int_equal(net_bridge_create("hxbr1", 0), 0);
    assert_int_equal(net_bridge_add_port("hxbr1", tap1), 0);
    assert_int_equal(net_bridge_remove_port("hxbr0", tap1), -EINVAL);
    _cleanup_strv_ char **ports3 = NULL;
    assert_int_equal(net_bridge_list_ports("hxbr1", &ports3), 0);
    assert_string_equal(ports3[0], "vif3.1");
    assert_null(ports3[1]);

    /* Deleting the bridge keeps its taps; deleting taps; all idempotent. */
    assert_int_equal(net_bridge_delete("hxbr0"), 0);
    assert_false(net_bridge_exists("hxbr0"));
    assert_true(net_link_exists(tap0));
    assert_int_equal(net_link_get(tap0, &t), 0);
    assert_int_equal(t.master_index, 0);
    assert_int_equal(net_bridge_delete("hxbr0"), 0);
    assert_int_equal(net_tap_delete(tap0), 0);
    assert_int_equal(net_tap_delete(tap0), 0);
    assert_int_equal(net_tap_delete(tap1), 0);
    assert_int_equal(net_bridge_delete("hxbr1"), 0);
    assert_false(net_link_exists(tap0));
    assert_false(net_link_exists(tap1));
    const char *argv[] = {"ip", "-o", "link", "show", NULL};
    _cleanup_free_ char *all = netns_cmd(argv);
    assert_false(contains(all, "vif3."));
    assert_false(contains(all, "hxbr"));
}

/* An "uplink" for this namespace: veth pair up0/up1, 192.168.122.5/24 on
 * up0 and a default route through it, made with the ip tool. */
static void make_uplink(void)
{
    if (net_link_exists("up0"))
        return;
    const char *a[] = {"ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", NULL};
    const char *b[] = {"ip", "addr", "add", "192.168.122.5/24", "dev", "up0", NULL};
    const char *c[] = {"ip", "link", "set", "up0", "up", NULL};
    const char *d[] = {"ip", "link", "set", "up1", "up", NULL};
    const char *e[] = {"ip", "route", "add", "default", "via", "192.168.122.254", NULL};
    const char *const *cmds[] = {a, b, c, d, e};
    for (size_t i = 0; i < 5; i++) {
        char *out = netns_cmd(cmds[i]);
        assert_non_null(out);
        free(out);
    }
}

static void test_ipv4(void **state)
{
    make_uplink();
    char dev[NET_IFNAME_MAX + 1];
    struct in_addr gw;
    assert_int_equal(net_ipv4_default_route(dev, &gw), 0);
    assert_string_equal(dev, "up0");
    assert_string_equal(inet_ntoa(gw), "192.168.122.254");

    NetIpv4 got, pref, avoid[2];
    char s[32];
    /* 192.168.122.0/24 is taken by up0. */
    assert_int_equal(net_ipv4_pick_subnet(NULL, NULL, NULL, 0, &got), 0);
    net_ipv4_format(&got, s);
    assert_string_equal(s, "192.168.123.0/24");
    assert_int_equal(net_ipv4_parse("192.168.122.0/24", &pref), 0);
    assert_int_equal(net_ipv4_pick_subnet(&pref, NULL, NULL, 0, &got), 0);
    net_ipv4_format(&got, s);
    assert_string_equal(s, "192.168.123.0/24");
    assert_int_equal(net_ipv4_parse("10.50.7.9/16", &pref), 0);
    assert_int_equal(net_ipv4_pick_subnet(&pref, NULL, NULL, 0, &got), 0);
    net_ipv4_format(&got, s);
    assert_string_equal(s, "10.50.0.0/16");
    assert_int_equal(net_ipv4_parse("192.168.123.0/24", &avoid[0]), 0);
    assert_int_equal(net_ipv4_parse("192.168.124.0/23", &avoid[1]), 0);
    assert_int_equal(net_ipv4_pick_subnet(NULL, NULL, avoid, 2, &got), 0);
    net_ipv4_format(&got, s);
    assert_string_equal(s, "192.168.126.0/24");
    /* A route (not only an address) also counts. */
    const char *r[] = {"ip", "route", "add", "192.168.123.0/24", "via", "192.168.122.1", NULL};
    _cleanup_free_ char *o = netns_cmd(r);
    assert_non_null(o);
    assert_int_equal(net_ipv4_pick_subnet(NULL, NULL, NULL, 0, &got), 0);
    net_ipv4_format(&got, s);
    assert_string_equal(s, "192.168.124.0/24");
    const char *rd[] = {"ip", "route", "del", "192.168.123.0/24", NULL};
    _cleanup_free_ char *o2 = netns_cmd(rd);
    assert_non_null(o2);

    /* Addresses: add (idempotent), list, and our own bridge does not collide with itself. */
    assert_int_equal(net_bridge_create("hxbr2", 0), 0);
    NetIpv4 a;
    assert_int_equal(net_ipv4_parse("192.168.123.1/24", &a), 0);
    assert_int_equal(net_ipv4_addr_add("hxbr2", &a), 0);
    assert_int_equal(net_ipv4_addr_add("hxbr2", &a), 0);
    _cleanup_free_ NetIpv4 *list = NULL;
    size_t n = 0;
    assert_int_equal(net_ipv4_addr_list("hxbr2", &list, &n), 0);
    assert_int_equal(n, 1);
    net_ipv4_format(&list[0], s);
    assert_string_equal(s, "192.168.123.1/24");
    const char *sh[] = {"ip", "-4", "-o", "addr", "show", "dev", "hxbr2", NULL};
    _cleanup_free_ char *shown = netns_cmd(sh);
    assert_true(contains(shown, "inet 192.168.123.1/24 brd 192.168.123.255"));
    assert_int_equal(net_ipv4_parse("192.168.123.0/24", &pref), 0);
    assert_int_equal(net_ipv4_pick_subnet(&pref, "hxbr2", NULL, 0, &got), 0);
    net_ipv4_format(&got, s);
    assert_string_equal(s, "192.168.123.0/24");
    assert_int_equal(net_ipv4_pick_subnet(&pref, NULL, NULL, 0, &got), 0);
    net_ipv4_format(&got, s);
    assert_string_equal(s, "192.168.124.0/24");
    assert_int_equal(net_bridge_delete("hxbr2"), 0);

    /* Forwarding is per namespace here. */
    assert_int_equal(net_ipv4_enable_forwarding(), 0);
    const char *fw[] = {"cat", "/proc/sys/net/ipv4/ip_forward", NULL};
    _cleanup_free_ char *fwd = netns_cmd(fw);
    assert_string_equal(fwd, "1\n");
}

static char *nft_list(void)
{
    const char *argv[] = {"nft", "list", "table", "inet", "hyperxe", NULL};
    SpawnResult res;
    if (spawn_run(argv, NULL, &res) < 0)
        return NULL;
    char *out = spawn_result_ok(&res) ? strbuf_detach(&res.out, NULL) : NULL;
    spawn_result_release(&res);
    return out;
}

static void test_nft(void **state)
{
    _cleanup_strbuf_ StrBuf err = STRBUF_INIT;
    NetIpv4 sub;
    assert_int_equal(net_ipv4_parse("192.168.130.1/24", &sub), 0);
    assert_false(net_nft_network_present("hxnat0"));
    assert_null(nft_list());

    assert_int_equal(net_nft_network_add("hxnat0", NET_NFT_NAT, &sub, "up0", &err), 0);
    assert_true(net_nft_network_present("hxnat0"));
    _cleanup_free_ char *t1 = nft_list();
    assert_non_null(t1);
    assert_true(contains(t1, "chain postrouting-hxnat0"));
    assert_true(contains(t1, "type nat hook postrouting priority srcnat"));
    assert_true(contains(t1, "ip saddr 192.168.130.0/24 ip daddr != 192.168.130.0/24 oifname "
                             "\"up0\" masquerade"));
    assert_true(contains(t1, "iifname \"hxnat0\" udp dport { 53, 67 } accept"));
    assert_true(contains(t1, "oifname \"hxnat0\" ct state established,related accept"));

    /* Idempotent: the same rules once, not twice. */
    assert_int_equal(net_nft_network_add("hxnat0", NET_NFT_NAT, &sub, "up0", &err), 0);
    _cleanup_free_ char *t2 = nft_list();
    assert_int_equal(count_substr(t2, "masquerade"), 1);
    assert_int_equal(count_substr(t2, "chain forward-hxnat0"), 1);

    /* No uplink: masquerade out of anything but the bridge. */
    assert_int_equal(net_nft_network_add("hxnat0", NET_NFT_NAT, &sub, NULL, &err), 0);
    _cleanup_free_ char *t2b = nft_list();
    assert_true(contains(t2b, "oifname != \"hxnat0\" masquerade"));
    assert_int_equal(count_substr(t2b, "masquerade"), 1);

    /* Same bridge switched to isolated: the NAT chain goes. */
    assert_int_equal(net_nft_network_add("hxnat0", NET_NFT_ISOLATED, NULL, NULL, &err), 0);
    _cleanup_free_ char *t3 = nft_list();
    assert_false(contains(t3, "masquerade"));
    assert_false(contains(t3, "postrouting-hxnat0"));
    assert_true(contains(t3, "iifname \"hxnat0\" reject"));

    /* Two networks; removing one leaves the other and the table. */
    assert_int_equal(net_nft_network_add("hxnat1", NET_NFT_NAT, &sub, "up0", &err), 0);
    assert_int_equal(net_nft_network_remove("hxnat0", &err), 0);
    assert_false(net_nft_network_present("hxnat0"));
    assert_true(net_nft_network_present("hxnat1"));
    _cleanup_free_ char *t4 = nft_list();
    assert_non_null(t4);
    assert_false(contains(t4, "hxnat0"));
    assert_int_equal(net_nft_network_remove("hxnat0", &err), 0);
    /* Removing the last one removes the table. */
    assert_int_equal(net_nft_network_remove("hxnat1", &err), 0);
    assert_null(nft_list());
    assert_int_equal(net_nft_network_remove("hxnat1", &err), 0);
    assert_int_equal(net_nft_table_remove(&err), 0);

    /* Names that cannot go into nft unquoted are refused, not injected. */
    assert_int_equal(net_nft_network_add("a\"b", NET_NFT_ISOLATED, NULL, NULL, &err), -EINVAL);
    assert_int_equal(net_nft_network_add("x;y", NET_NFT_ISOLATED, NULL, NULL, &err), -EINVAL);
    assert_int_equal(net_nft_network_add("hx", NET_NFT_NAT, &sub, "u\"p", &err), -EINVAL);
    assert_int_equal(net_nft_network_add("hx", NET_NFT_NAT, NULL, NULL, &err), -EINVAL);
}

/* Number of live processes whose command line has arg. */
static int count_procs_with_arg(const char *arg)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], stat[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[len] = '\0';
        char *rp = strrchr(stat, ')');
        if (!rp || rp[2] == 'Z')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        char buf[4096];
        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        for (char *p = buf; p < buf + len; p += strlen(p) + 1)
            if (strcmp(p, arg) == 0) {
                n++;
                break;
            }
    }
    closedir(d);
    return n;
}

/* Starts dnsmasq for cfg in a separate process that then exits, as a daemon
 * would; returns the pid it reported, negative if it failed. */
static pid_t start_in_child(const NetDnsmasqConfig *cfg, bool *adopted)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(p[0]);
        StrBuf err = STRBUF_INIT;
        pid_t pid = 0;
        bool ad = false;
        int r = net_dnsmasq_start(cfg, &pid, &ad, &err);
        if (r < 0)
            fprintf(stderr, "# dnsmasq start: %s\n", err.buf);
        long msg[2] = {r < 0 ? r : pid, ad};
        ssize_t HX_UNUSED w = write(p[1], msg, sizeof(msg));
        _exit(0);
    }
    close(p[1]);
    long msg[2] = {-EIO, 0};
    assert_int_equal(read(p[0], msg, sizeof(msg)), sizeof(msg));
    close(p[0]);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    *adopted = msg[1] != 0;
    return (pid_t)msg[0];
}

static void test_dnsmasq(void **state)
{
    assert_int_equal(net_bridge_create("hxdhcp0", 0), 0);
    NetIpv4 a;
    assert_int_equal(net_ipv4_parse("192.168.140.1/24", &a), 0);
    assert_int_equal(net_ipv4_addr_add("hxdhcp0", &a), 0);
    NetDnsmasqConfig cfg = {.bridge = "hxdhcp0", .run_dir = run_dir, .address = a};
    _cleanup_free_ char *conf = xasprintf("%s/dnsmasq-hxdhcp0.conf", run_dir);
    _cleanup_free_ char *conf_arg = xasprintf("--conf-file=%s", conf);

    assert_int_equal(net_dnsmasq_pid(run_dir, "hxdhcp0"), -ESRCH);
    bool adopted = true;
    pid_t p1 = start_in_child(&cfg, &adopted);
    assert_true(p1 > 1);
    assert_false(adopted);
    assert_int_equal(kill(p1, 0), 0);
    assert_int_equal(net_dnsmasq_pid(run_dir, "hxdhcp0"), p1);
    assert_int_equal(count_procs_with_arg(conf_arg), 1);

    /* The configuration it got. */
    _cleanup_fclose_ FILE *f = fopen(conf, "r");
    assert_non_null(f);
    char text[4096];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    assert_true(contains(text, "interface=hxdhcp0\n"));
    assert_true(contains(text, "bind-interfaces\n"));
    assert_true(contains(text, "except-interface=lo\n"));
    assert_true(contains(text, "no-hosts\n"));
    assert_true(contains(text, "no-resolv\n"));
    assert_true(contains(text, "dhcp-range=192.168.140.2,192.168.140.254,255.255.255.0,3600\n"));
    assert_true(contains(text, "dhcp-option=option:router\n")); /* router off */

    /* It listens on the bridge only: DNS and DHCP sockets per `ss`, if present. */
    const char *ss[] = {"ss", "-Hlnup", NULL};
    _cleanup_free_ char *sockets = netns_cmd(ss);
    if (sockets) {
        assert_true(contains(sockets, "192.168.140.1:53"));
        assert_true(contains(sockets, "%hxdhcp0:67"));
        assert_false(contains(sockets, "0.0.0.0:53"));
    }

    /* A "restarted daemon" (another process) adopts it: no second dnsmasq. */
    pid_t p2 = start_in_child(&cfg, &adopted);
    assert_int_equal(p2, p1);
    assert_true(adopted);
    assert_int_equal(count_procs_with_arg(conf_arg), 1);

    /* A changed configuration replaces it. */
    cfg.lease_seconds = 600;
    cfg.router = true;
    pid_t p3 = start_in_child(&cfg, &adopted);
    assert_true(p3 > 1);
    assert_false(adopted);
    assert_int_not_equal(p3, p1);
    assert_int_equal(count_procs_with_arg(conf_arg), 1);
    assert_int_equal(net_dnsmasq_pid(run_dir, "hxdhcp0"), p3);

    /* A stale pid file naming some other process is not adopted. */
    _cleanup_free_ char *pidfile = xasprintf("%s/dnsmasq-hxdhcp0.pid", run_dir);
    assert_int_equal(net_dnsmasq_stop(run_dir, "hxdhcp0"), 0);
    assert_int_equal(count_procs_with_arg(conf_arg), 0);
    assert_int_equal(access(pidfile, F_OK), -1);
    assert_int_equal(access(conf, F_OK), -1);
    assert_int_equal(net_dnsmasq_stop(run_dir, "hxdhcp0"), 0);
    FILE *pf = fopen(pidfile, "w");
    assert_non_null(pf);
    fprintf(pf, "%d\n", (int)getpid());
    fclose(pf);
    assert_int_equal(net_dnsmasq_pid(run_dir, "hxdhcp0"), -ESRCH);
    pid_t p4 = start_in_child(&cfg, &adopted);
    assert_true(p4 > 1);
    assert_false(adopted);
    assert_int_not_equal(p4, getpid());
    assert_int_equal(net_dnsmasq_stop(run_dir, "hxdhcp0"), 0);
    assert_int_equal(count_procs_with_arg(conf_arg), 0);

    /* Bad input never reaches the conf file. */
    _cleanup_strbuf_ StrBuf err = STRBUF_INIT;
    NetDnsmasqConfig bad = cfg;
    bad.domain = "x\nconf-file=/etc/passwd";
    assert_int_equal(net_dnsmasq_start(&bad, NULL, NULL, &err), -EINVAL);
    bad = cfg;
    bad.run_dir = "/tmp/a\nb";
    assert_int_equal(net_dnsmasq_start(&bad, NULL, NULL, &err), -EINVAL);
    assert_int_equal(net_bridge_delete("hxdhcp0"), 0);
}

static void test_network(void **state)
{
    make_uplink();
    _cleanup_strbuf_ StrBuf err = STRBUF_INIT;
    NetNetworkSpec spec = {.bridge = "xenbr0", .mode = NET_MODE_NAT, .run_dir = run_dir};
    NetNetworkStatus st;
    assert_int_equal(net_network_start(&spec, &st, &err), 0);
    char s[32];
    net_ipv4_format(&st.address, s);
    assert_string_equal(s, "192.168.123.1/24"); /* .122 is up0's */
    assert_string_equal(st.uplink, "up0");
    assert_true(st.dnsmasq_pid > 1);
    assert_false(st.dnsmasq_adopted);
    assert_true(net_nft_network_present("xenbr0"));
    _cleanup_free_ char *t = nft_list();
    assert_true(contains(t, "ip saddr 192.168.123.0/24 ip daddr != 192.168.123.0/24 oifname "
                            "\"up0\" masquerade"));

    /* Again (a restarted daemon): the same address, the same dnsmasq. */
    NetNetworkStatus st2;
    assert_int_equal(net_network_start(&spec, &st2, &err), 0);
    assert_int_equal(st2.address.addr.s_addr, st.address.addr.s_addr);
    assert_int_equal(st2.dnsmasq_pid, st.dnsmasq_pid);
    assert_true(st2.dnsmasq_adopted);

    assert_int_equal(net_network_stop("xenbr0", run_dir, &err), 0);
    assert_false(net_link_exists("xenbr0"));
    assert_false(net_nft_network_present("xenbr0"));
    assert_int_equal(net_dnsmasq_pid(run_dir, "xenbr0"), -ESRCH);
    assert_int_equal(net_network_stop("xenbr0", run_dir, &err), 0);

    /* A fixed subnet that collides is refused with a message. */
    NetIpv4 want;
    assert_int_equal(net_ipv4_parse("192.168.122.0/24", &want), 0);
    spec.subnet = &want;
    spec.subnet_fixed = true;
    strbuf_reset(&err);
    assert_int_equal(net_network_start(&spec, &st, &err), -EADDRINUSE);
    assert_true(contains(err.buf, "collides"));
    assert_int_equal(net_network_stop("xenbr0", run_dir, NULL), 0);

    /* Internal, no address: isolated, no dnsmasq. */
    NetNetworkSpec in = {
        .bridge = "hxint0", .mode = NET_MODE_INTERNAL, .run_dir = run_dir, .mtu = 9000};
    assert_int_equal(net_network_start(&in, &st, &err), 0);
    assert_false(st.has_address);
    assert_int_equal(st.dnsmasq_pid, 0);
    NetLinkInfo li;
    assert_int_equal(net_link_get("hxint0", &li), 0);
    assert_int_equal(li.mtu, 9000);
    _cleanup_free_ char *t2 = nft_list();
    assert_true(contains(t2, "iifname \"hxint0\" reject"));
    assert_false(contains(t2, "masquerade"));
    assert_int_equal(net_network_stop("hxint0", run_dir, &err), 0);

    /* Bridged: the NIC becomes a port; a NIC with the host's address is refused. */
    NetNetworkSpec br = {.bridge = "hxbr5", .mode = NET_MODE_BRIDGED, .uplink = "up1"};
    assert_int_equal(net_network_start(&br, &st, &err), 0);
    assert_int_equal(net_link_get("up1", &li), 0);
    NetLinkInfo bi;
    assert_int_equal(net_link_get("hxbr5", &bi), 0);
    assert_int_equal(li.master_index, bi.index);
    assert_int_equal(net_network_stop("hxbr5", NULL, &err), 0);
    assert_int_equal(net_link_get("up1", &li), 0);
    assert_int_equal(li.master_index, 0);
    br.uplink = "up0";
    strbuf_reset(&err);
    assert_int_equal(net_network_start(&br, &st, &err), -EBUSY);
    assert_true(contains(err.buf, "192.168.122.5/24"));
    br.uplink = "nosuch";
    assert_int_equal(net_network_start(&br, &st, &err), -ENODEV);
    assert_false(net_link_exists("hxbr5"));
}

static void test_hostif(void **state)
{
    make_uplink();
    _cleanup_free_ NetHostIf *v = NULL;
    size_t n = 0;
    assert_int_equal(net_hostif_list(false, &v, &n), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(v[i].physical); /* veth is not */
    free(v);
    v = NULL;
    assert_int_equal(net_hostif_list(true, &v, &n), 0);
    const NetHostIf *up0 = NULL, *up1 = NULL;
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(v[i].device, "lo");
        if (strcmp(v[i].device, "up0") == 0)
            up0 = &v[i];
        if (strcmp(v[i].device, "up1") == 0)
            up1 = &v[i];
        if (i > 0)
            assert_true(strcmp(v[i - 1].device, v[i].device) < 0);
    }
    assert_non_null(up0);
    assert_non_null(up1);
    if (!up0 || !up1)
        return;
    assert_false(up0->physical);
    assert_true(up0->up);
    assert_true(up0->carrier); /* its peer is up */
    assert_int_equal(up0->mtu, 1500);
    assert_true(up0->has_ipv4);
    char s[32];
    net_ipv4_format(&up0->ipv4, s);
    assert_string_equal(s, "192.168.122.5/24");
    assert_string_equal(inet_ntoa(up0->netmask), "255.255.255.0");
    assert_true(up0->default_route);
    assert_string_equal(inet_ntoa(up0->gateway), "192.168.122.254");
    assert_false(up1->has_ipv4);
    assert_false(up1->default_route);
    /* MAC as `ip` shows it. */
    char mac[NET_MAC_STRLEN];
    net_mac_format(&up0->mac, mac);
    _cleanup_free_ char *shown = ip_link_show("up0");
    assert_true(contains(shown, mac));
}

static void test_cap(void **state)
{
    NetCap cap;
    net_cap_check(&cap);
    assert_true(cap.bridges);
    assert_string_equal(cap.reason, "");

    /* Without CAP_NET_ADMIN (as nobody): no bridges, and a reason. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        NetCap c;
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
            _exit(2);
        net_cap_check(&c);
        ssize_t HX_UNUSED w = write(p[1], &c, sizeof(c));
        _exit(0);
    }
    close(p[1]);
    NetCap c;
    assert_int_equal(read(p[0], &c, sizeof(c)), sizeof(c));
    close(p[0]);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_false(c.bridges);
    assert_non_null(strstr(c.reason, "CAP_NET_ADMIN"));
    assert_non_null(strstr(c.reason, "user-mode networking"));
}

static int teardown(void **state)
{
    net_dnsmasq_stop(run_dir, "hxdhcp0");
    net_dnsmasq_stop(run_dir, "xenbr0");
    const char *rm[] = {"rm", "-rf", run_dir, NULL};
    SpawnResult res;
    if (spawn_run(rm, NULL, &res) == 0)
        spawn_result_release(&res);
    return 0;
}

int main(void)
{
    netns_enter("test-net-ns");
    if (!mkdtemp(run_dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bridge_tap), cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_nft),        cmocka_unit_test(test_dnsmasq),
        cmocka_unit_test(test_network),    cmocka_unit_test(test_hostif),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
