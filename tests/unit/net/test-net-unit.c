/*
 * Unit tests of src/net that need no privileges: MAC generation, derivation
 * and validation, tap naming, IPv4 helpers, dnsmasq lease-file look-up.
 * Nothing here touches the host's networking.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/xalloc.h"
#include "util/banned.h"

static bool mac_local_unicast(const NetMac *m)
{
    return (m->b[0] & 0x02) && !(m->b[0] & 0x01);
}

static void test_mac_random(void **state)
{
    enum { N = 4000 };
    NetMac *v = xnew0(NetMac, N);
    unsigned ones[48] = {0};
    for (int i = 0; i < N; i++) {
        net_mac_random(&v[i]);
        assert_true(mac_local_unicast(&v[i]));
        for (int bit = 0; bit < 48; bit++)
            ones[bit] += (v[i].b[bit / 8] >> (bit % 8)) & 1;
    }
    /* Every free bit is set about half the time (13 standard deviations of
     * slack: this fails only for a broken generator). */
    for (int bit = 0; bit < 48; bit++) {
        if (bit == 0) {
            assert_int_equal(ones[bit], 0); /* multicast bit always clear */
        } else if (bit == 1) {
            assert_int_equal(ones[bit], N); /* local bit always set */
        } else {
            assert_in_range(ones[bit], N * 35 / 100, N * 65 / 100);
        }
    }
    /* No two alike among 4000 (collision chance about 1e-7). */
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            assert_false(net_mac_equal(&v[i], &v[j]));
    free(v);
}

/* Expected values from an independent implementation of xapi's gen_mac:
 *   h = md5(seed); repeat 2*dev times: h = md5(h); h2 = md5(h)
 *   mac = h[0..3] + h2[1..2]; mac[0] = (mac[0] | 2) & ~1
 * (python3 hashlib). */
static void test_mac_from_seed(void **state)
{
    static const struct {
        const char *seed;
        unsigned dev;
        const char *mac;
    } cases[] = {
        {"2bd7e4a6-7d36-4d32-b9a6-7f0e3a1c1e55", 0, "46:fb:9e:b1:33:be"},
        {"2bd7e4a6-7d36-4d32-b9a6-7f0e3a1c1e55", 1, "4e:ee:28:34:95:fa"},
        {"2bd7e4a6-7d36-4d32-b9a6-7f0e3a1c1e55", 6, "e2:7f:7b:34:6f:04"},
        {"", 0, "d6:1d:8c:d9:ad:b2"},
        {"seed", 3, "d2:4b:04:6a:49:d8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        NetMac m;
        char s[NET_MAC_STRLEN];
        assert_int_equal(net_mac_from_seed(cases[i].seed, cases[i].dev, &m), 0);
        net_mac_format(&m, s);
        assert_string_equal(s, cases[i].mac);
        assert_true(mac_local_unicast(&m));
    }
    /* Deterministic, and distinct across devices and seeds. */
    NetMac a, b;
    assert_int_equal(net_mac_from_seed("vm-seed", 2, &a), 0);
    assert_int_equal(net_mac_from_seed("vm-seed", 2, &b), 0);
    assert_true(net_mac_equal(&a, &b));
    NetMac seen[64];
    for (unsigned d = 0; d < 64; d++) {
        assert_int_equal(net_mac_from_seed("vm-seed", d, &seen[d]), 0);
        assert_true(mac_local_unicast(&seen[d]));
        for (unsigned e = 0; e < d; e++)
            assert_false(net_mac_equal(&seen[d], &seen[e]));
    }
    assert_int_equal(net_mac_from_seed("other-seed", 2, &b), 0);
    assert_false(net_mac_equal(&a, &b));
    assert_int_equal(net_mac_from_seed("s", NET_MAC_SEED_DEVICE_MAX + 1, &b), -ERANGE);
    assert_int_equal(net_mac_from_seed("s", NET_MAC_SEED_DEVICE_MAX, &b), 0);
}

static void test_mac_parse(void **state)
{
    char out[NET_MAC_STRLEN];
    const char *why = "unset";
    assert_int_equal(net_mac_normalize("52:54:00:AB:cd:Ef", out, &why), 0);
    assert_string_equal(out, "52:54:00:ab:cd:ef");
    assert_null(why);
    assert_int_equal(net_mac_normalize("02-00-00-00-00-01", out, NULL), 0);
    assert_string_equal(out, "02:00:00:00:00:01");
    assert_int_equal(net_mac_normalize("00:16:3e:00:00:01", out, NULL), 0);

    static const char *bad[] = {
        "",
        "52:54:00:ab:cd",
        "52:54:00:ab:cd:ef:01",
        "52:54:00:ab:cd:eg",
        "52-54:00:ab:cd:ef",
        "5254.00ab.cdef",
        "525400abcdef",
        " 52:54:00:ab:cd:ef",
        "52:54:00:ab:cd:ef ",
        "52:54:0:ab:cd:eff",
        "52:54:00:ab:cd:e",
        "01:00:5e:00:00:01", /* multicast */
        "ff:ff:ff:ff:ff:ff", /* broadcast */
        "00:00:00:00:00:00",
        "g2:54:00:ab:cd:ef",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        NetMac m;
        assert_int_equal(net_mac_parse(bad[i], &m, &why), -EINVAL);
        assert_non_null(why);
    }
    NetMac m;
    assert_int_equal(net_mac_parse(NULL, &m, NULL), -EINVAL);
    net_mac_parse("01:00:5e:00:00:01", &m, &why);
    assert_non_null(strstr(why, "multicast"));
}

static void test_tap_name(void **state)
{
    char n[NET_IFNAME_MAX + 1];
    assert_int_equal(net_tap_name(12, 0, n), 0);
    assert_string_equal(n, "vif12.0");
    assert_int_equal(net_tap_name(0, 7, n), 0);
    assert_string_equal(n, "vif0.7");
    assert_int_equal(net_tap_name(99999999, 999, n), 0); /* 11 digits: fits */
    assert_string_equal(n, "vif99999999.999");
    assert_int_equal(strlen(n), NET_IFNAME_MAX);
    assert_int_equal(net_tap_name(999999999, 999, n), -ENAMETOOLONG);
    assert_int_equal(net_tap_name(4294967295u, 10, n), -ENAMETOOLONG);
    assert_int_equal(net_tap_name(4294967295u, 0, n), 0);
    assert_true(net_link_name_valid("vif99999999.999"));

    unsigned d, v;
    for (unsigned dom = 0; dom < 2000; dom += 7)
        for (unsigned dev = 0; dev < 12; dev++) {
            assert_int_equal(net_tap_name(dom, dev, n), 0);
            assert_true(net_link_name_valid(n));
            assert_true(net_tap_name_parse(n, &d, &v));
            assert_int_equal(d, dom);
            assert_int_equal(v, dev);
        }
    static const char *bad[] = {
        "vif",     "vif1",     "vif1.",   "vif.1",  "vif01.1",          "vif1.01",
        "vif1.2x", "vif1.2.3", "vif-1.2", "tap1.2", "vif99999999999.1", "vif4294967296.0",
        ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(net_tap_name_parse(bad[i], &d, &v));
    assert_true(net_tap_name_parse("vif4294967295.0", &d, &v));
    assert_int_equal(d, 4294967295u);

    assert_false(net_link_name_valid(""));
    assert_false(net_link_name_valid("0123456789abcdef")); /* 16 */
    assert_false(net_link_name_valid("a b"));
    assert_false(net_link_name_valid("a/b"));
    assert_false(net_link_name_valid("a:b"));
    assert_false(net_link_name_valid(".."));
    assert_true(net_link_name_valid("xenbr0"));
}

static void test_ipv4(void **state)
{
    NetIpv4 a, b;
    char s[32];
    assert_int_equal(net_ipv4_parse("192.168.122.1/24", &a), 0);
    assert_int_equal(a.prefix, 24);
    net_ipv4_format(&a, s);
    assert_string_equal(s, "192.168.122.1/24");
    struct in_addr net = net_ipv4_network(&a), bc = net_ipv4_broadcast(&a);
    assert_string_equal(inet_ntoa(net), "192.168.122.0");
    assert_string_equal(inet_ntoa(bc), "192.168.122.255");
    assert_string_equal(inet_ntoa(net_ipv4_add(net, 2)), "192.168.122.2");
    assert_int_equal(net_ipv4_parse("10.0.0.5", &b), 0);
    assert_int_equal(b.prefix, 32);
    assert_int_equal(net_ipv4_parse("10.0.0.0/8", &b), 0);
    assert_false(net_ipv4_overlap(&a, &b));
    assert_int_equal(net_ipv4_parse("192.168.0.0/16", &b), 0);
    assert_true(net_ipv4_overlap(&a, &b));
    assert_true(net_ipv4_overlap(&b, &a));
    assert_int_equal(net_ipv4_parse("192.168.122.128/25", &b), 0);
    assert_true(net_ipv4_overlap(&a, &b));
    assert_int_equal(net_ipv4_parse("192.168.123.0/24", &b), 0);
    assert_false(net_ipv4_overlap(&a, &b));
    assert_int_equal(net_ipv4_parse("0.0.0.0/0", &b), 0);
    assert_true(net_ipv4_overlap(&a, &b));
    static const char *bad[] = {"",           "1.2.3",       "1.2.3.4/33",  "1.2.3.4/",
                                "1.2.3.4/-1", "1.2.3.4/24x", "300.1.1.1/8", "a.b.c.d/8",
                                "1.2.3.4 /8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(net_ipv4_parse(bad[i], &b), -EINVAL);
}

static void test_lease_lookup(void **state)
{
    char path[] = "/tmp/hx-leases-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char leases[] =
        "1700000100 52:54:00:12:34:56 192.168.122.10 guest1 01:52:54:00:12:34:56\n"
        "1700000300 02:aa:bb:cc:dd:ee 192.168.122.11 * *\n"
        "garbage line\n"
        "1700000500 52:54:00:12:34:56 192.168.122.12 guest1 *\n"
        "duid 00:01:00:01:2c:00:00:00:52:54:00:12:34:56\n"
        "1700000600 1234 fd00::10 guest1 00:01:00:01\n"
        "1700000050 52:54:00:12:34:56 999.1.1.1 bad *\n"
        "0 52:54:00:12:34:56 192.168.122.13 infinite *\n";
    assert_int_equal(write(fd, leases, sizeof(leases) - 1), (ssize_t)(sizeof(leases) - 1));
    close(fd);

    NetMac m;
    assert_int_equal(net_mac_parse("52:54:00:12:34:56", &m, NULL), 0);
    _cleanup_strv_ char **ips = NULL;
    assert_int_equal(net_dnsmasq_lease_lookup(path, &m, &ips), 0);
    /* Infinite (0) first, then newest expiry first; the bad address is skipped. */
    assert_non_null(ips);
    assert_string_equal(ips[0], "192.168.122.13");
    assert_string_equal(ips[1], "192.168.122.12");
    assert_string_equal(ips[2], "192.168.122.10");
    assert_null(ips[3]);

    _cleanup_strv_ char **none = NULL;
    assert_int_equal(net_mac_parse("02:00:00:00:00:99", &m, NULL), 0);
    assert_int_equal(net_dnsmasq_lease_lookup(path, &m, &none), 0);
    assert_null(none[0]);

    _cleanup_strv_ char **upper = NULL;
    assert_int_equal(net_mac_parse("02:AA:BB:CC:DD:EE", &m, NULL), 0);
    assert_int_equal(net_dnsmasq_lease_lookup(path, &m, &upper), 0);
    assert_string_equal(upper[0], "192.168.122.11");
    assert_null(upper[1]);
    unlink(path);

    char **missing = NULL;
    assert_int_equal(net_dnsmasq_lease_lookup("/nonexistent/leases", &m, &missing), -ENOENT);
    assert_null(missing);
}

static void test_mode_names(void **state)
{
    for (int m = 0; m < NET_MODE__MAX; m++)
        assert_int_equal(net_mode_from_string(net_mode_to_string((NetMode)m)), m);
    assert_int_equal(net_mode_from_string("bogus"), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac_random), cmocka_unit_test(test_mac_from_seed),
        cmocka_unit_test(test_mac_parse),  cmocka_unit_test(test_tap_name),
        cmocka_unit_test(test_ipv4),       cmocka_unit_test(test_lease_lookup),
        cmocka_unit_test(test_mode_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
