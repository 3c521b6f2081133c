/*
 * Unit tests of src/ops/guest_metrics.c: guest-agent replies (as hyperxe-agent
 * and Debian's qemu-guest-agent write them, and as a hostile guest might)
 * turned into VM_guest_metrics fields. No daemon, no database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "ops/guest_metrics.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static const GmVif vifs[] = {{"52:54:00:12:34:56", "0"}, {"0e:8b:da:55:e2:24", "3"}};
static const GmDisk disks[] = {{"virtio", 0, 8}, {"ide", 3, -1}, {"virtio", 1, 9}};

static struct json_object *j(const char *text)
{
    struct json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static const char *get(const XsValue *m, const char *k)
{
    return xv_struct_get_string(m, k);
}

static void build(GmFacts *f, GmFields *out)
{
    guest_metrics_build(f, vifs, 2, disks, 3, out);
}

static void facts_release(GmFacts *f)
{
    json_object_put(f->info);
    json_object_put(f->osinfo);
    json_object_put(f->interfaces);
    json_object_put(f->fsinfo);
    json_object_put(f->memory);
    json_object_put(f->balloon);
}

static const char *info_hyperxe = "{\"version\": \"0.1.0\", \"supported_commands\": ["
                                  "{\"name\": \"guest-shutdown\", \"enabled\": true},"
                                  "{\"name\": \"guest-fsfreeze-freeze\", \"enabled\": true},"
                                  "{\"name\": \"guest-fsfreeze-thaw\", \"enabled\": true},"
                                  "{\"name\": \"hyperxe-get-memory\", \"enabled\": true}]}";

static void test_hyperxe_agent(void **state)
{
    (void)state;
    GmFacts f = {0};
    f.info = j(info_hyperxe);
    f.osinfo = j("{\"id\": \"debian\", \"name\": \"Debian GNU/Linux\", \"pretty-name\": "
                 "\"Debian GNU/Linux 12 (bookworm)\", \"version-id\": \"12.5\", "
                 "\"kernel-release\": \"6.1.0-18-cloud-amd64\"}");
    f.interfaces =
        j("[{\"name\": \"lo\", \"hardware-address\": \"00:00:00:00:00:00\", "
          "\"ip-addresses\": [{\"ip-address\": \"127.0.0.1\", \"ip-address-type\": "
          "\"ipv4\", \"prefix\": 8}]},"
          "{\"name\": \"eth0\", \"hardware-address\": \"0E:8B:DA:55:E2:24\", "
          "\"ip-addresses\": ["
          "{\"ip-address\": \"fe80::c8b:daff:fe55:e224\", \"ip-address-type\": \"ipv6\"},"
          "{\"ip-address\": \"192.168.122.9\", \"ip-address-type\": \"ipv4\"},"
          "{\"ip-address\": \"2001:db8:0:0::9\", \"ip-address-type\": \"ipv6\"}]}]");
    f.memory = j("{\"total-bytes\": 268435456, \"available-bytes\": 134217728, "
                 "\"free-bytes\": 1}");
    f.fsinfo = j("[{\"name\": \"vda2\", \"mountpoint\": \"/\", \"type\": \"ext4\", "
                 "\"used-bytes\": 5, \"total-bytes\": 10, \"disk\": [{\"pci-controller\": "
                 "{\"domain\": 0, \"bus\": 0, \"slot\": 9, \"function\": 0}, \"bus-type\": "
                 "\"virtio\", \"bus\": 0, \"target\": 0, \"unit\": 0}]},"
                 "{\"name\": \"sr0\", \"mountpoint\": \"/mnt\", \"type\": \"iso9660\", "
                 "\"disk\": [{\"bus-type\": \"ide\", \"bus\": 1, \"target\": 0, \"unit\": 1}]},"
                 "{\"name\": \"sda1\", \"mountpoint\": \"/x\", \"disk\": [{\"bus-type\": "
                 "\"usb\", \"bus\": 0, \"target\": 0, \"unit\": 0}]}]");
    f.pv_io = true;
    f.balloon_driver = true;
    GmFields o;
    build(&f, &o);
    assert_string_equal(get(o.os_version, "name"), "Debian GNU/Linux 12 (bookworm)");
    assert_string_equal(get(o.os_version, "uname"), "6.1.0-18-cloud-amd64");
    assert_string_equal(get(o.os_version, "distro"), "debian");
    assert_string_equal(get(o.os_version, "major"), "12");
    assert_string_equal(get(o.os_version, "minor"), "5");
    assert_string_equal(get(o.pv_drivers_version, "major"), "0");
    assert_string_equal(get(o.pv_drivers_version, "minor"), "1");
    assert_string_equal(get(o.pv_drivers_version, "micro"), "0");
    assert_string_equal(get(o.pv_drivers_version, "application"), "hyperxe-agent");
    /* by MAC (case ignored): the VIF with device 3; lo skipped, link-local skipped */
    assert_int_equal(o.networks->n, 3);
    assert_string_equal(get(o.networks, "3/ip"), "192.168.122.9");
    assert_string_equal(get(o.networks, "3/ipv4/0"), "192.168.122.9");
    assert_string_equal(get(o.networks, "3/ipv6/0"), "2001:db8::9");
    assert_string_equal(guest_metrics_first_ip(o.networks), "192.168.122.9");
    assert_string_equal(get(o.memory, "total"), "262144");
    assert_string_equal(get(o.memory, "free"), "131072");
    /* disks: virtio slot 9 is position 1; IDE bus 1 unit 1 is position 3; USB unknown */
    assert_string_equal(get(o.disks, "1/vda2/mount"), "/");
    assert_string_equal(get(o.disks, "1/vda2/type"), "ext4");
    assert_string_equal(get(o.disks, "1/vda2/total"), "10");
    assert_string_equal(get(o.disks, "1/vda2/used"), "5");
    assert_string_equal(get(o.disks, "3/sr0/mount"), "/mnt");
    assert_null(get(o.disks, "3/sr0/total"));
    assert_int_equal(o.disks->n, 6);
    assert_string_equal(get(o.other, "feature-shutdown"), "1");
    assert_string_equal(get(o.other, "feature-reboot"), "1");
    assert_string_equal(get(o.other, "feature-quiesce"), "1");
    assert_string_equal(get(o.other, "feature-balloon"), "1");
    assert_null(get(o.other, "feature-vcpu-hotplug"));
    assert_true(o.pv_drivers_detected);
    guest_metrics_release(&o);
    facts_release(&f);
}

static void test_stock_agent_and_balloon(void **state)
{
    (void)state;
    GmFacts f = {0};
    f.info = j("{\"version\": \"7.2.22\", \"supported_commands\": ["
               "{\"name\": \"guest-shutdown\", \"enabled\": false},"
               "{\"name\": \"guest-set-vcpus\", \"enabled\": true}]}");
    f.osinfo = j("{\"name\": \"Alpine\", \"version\": \"3.19\"}");
    f.balloon = j("{\"stats\": {\"stat-total-memory\": 2097152, \"stat-free-memory\": 1048576,"
                  " \"stat-available-memory\": -1}, \"last-update\": 1700000000}");
    GmFields o;
    build(&f, &o);
    assert_string_equal(get(o.os_version, "name"), "Alpine 3.19");
    assert_null(get(o.os_version, "major"));
    assert_string_equal(get(o.pv_drivers_version, "micro"), "22");
    assert_string_equal(get(o.pv_drivers_version, "application"), "qemu-guest-agent");
    assert_string_equal(get(o.memory, "total"), "2048");
    assert_string_equal(get(o.memory, "free"), "1024");
    assert_null(get(o.other, "feature-shutdown")); /* disabled */
    assert_string_equal(get(o.other, "feature-vcpu-hotplug"), "1");
    assert_int_equal(o.networks->n, 0);
    assert_false(o.pv_drivers_detected);
    guest_metrics_release(&o);
    facts_release(&f);

    /* no statistics yet (last-update 0): no memory */
    memset(&f, 0, sizeof(f));
    f.balloon = j("{\"stats\": {\"stat-total-memory\": 2097152}, \"last-update\": 0}");
    build(&f, &o);
    assert_int_equal(o.memory->n, 0);
    assert_int_equal(o.pv_drivers_version->n, 0);
    guest_metrics_release(&o);
    facts_release(&f);
}

static void test_hostile_guest(void **state)
{
    (void)state;
    StrBuf long_name = STRBUF_INIT;
    strbuf_adds(&long_name, "{\"pretty-name\": \"");
    for (int i = 0; i < 10000; i++)
        strbuf_adds(&long_name, "\\u00e9");
    strbuf_adds(&long_name, "\", \"kernel-release\": \"a\\u0001b\\nc\", \"id\": 5, "
                            "\"version-id\": \"99999999999999999999.1\"}");
    GmFacts f = {0};
    f.osinfo = j(long_name.buf);
    strbuf_release(&long_name);
    f.info = j("{\"version\": [1], \"supported_commands\": {\"name\": \"guest-shutdown\"}}");
    f.interfaces = j("[1, \"x\", {\"hardware-address\": \"52:54:00:12:34:56\", \"ip-addresses\":"
                     " [{\"ip-address\": \"300.1.1.1\", \"ip-address-type\": \"ipv4\"},"
                     " {\"ip-address\": \"10.0.0.1; rm -rf /\", \"ip-address-type\": \"ipv4\"},"
                     " {\"ip-address\": 7, \"ip-address-type\": \"ipv4\"},"
                     " {\"ip-address\": \"10.1.2.3\", \"ip-address-type\": \"ipv6\"},"
                     " {\"ip-address\": \"10.9.9.9\", \"ip-address-type\": \"ipv4\"}]},"
                     " {\"hardware-address\": \"52:54:00:12:34:5\", \"ip-addresses\": "
                     "[{\"ip-address\": \"10.7.7.7\", \"ip-address-type\": \"ipv4\"}]}]");
    f.memory = j("{\"total-bytes\": 99999999999999999, \"available-bytes\": 1}");
    f.fsinfo = j("[{\"name\": \"../../etc\", \"mountpoint\": \"/\", \"disk\": [{\"bus-type\": "
                 "\"virtio\", \"pci-controller\": {\"slot\": 8}}]},"
                 "{\"name\": \"vda\", \"mountpoint\": \"/\", \"disk\": [{\"bus-type\": \"virtio\","
                 " \"pci-controller\": {\"slot\": \"8\"}}]}, null]");
    GmFields o;
    build(&f, &o);
    const char *name = get(o.os_version, "name");
    assert_non_null(name);
    assert_true(strlen(name) <= 255);
    assert_true(strlen(name) % 2 == 0); /* whole two-byte characters only */
    assert_string_equal(get(o.os_version, "uname"), "a?b?c");
    assert_null(get(o.os_version, "distro"));
    assert_null(get(o.os_version, "major")); /* too many digits */
    assert_int_equal(o.pv_drivers_version->n, 0);
    /* only the valid IPv4 address of the matching interface (the short MAC does not match) */
    assert_int_equal(o.networks->n, 2);
    assert_string_equal(get(o.networks, "0/ip"), "10.9.9.9");
    assert_int_equal(o.memory->n, 0); /* over 16 TiB: not believed */
    assert_int_equal(o.disks->n, 0);  /* bad names, a slot that is no number */
    assert_int_equal(o.other->n, 0);
    guest_metrics_release(&o);
    facts_release(&f);

    /* invalid UTF-8 becomes '?' */
    memset(&f, 0, sizeof(f));
    struct json_object *os = json_object_new_object();
    json_object_object_add(os, "pretty-name", json_object_new_string("ok \xff\xc3\x28 \xe2\x82"));
    f.osinfo = os;
    build(&f, &o);
    assert_string_equal(get(o.os_version, "name"), "ok ?"
                                                   "?( ??");
    guest_metrics_release(&o);
    facts_release(&f);
}

static void test_memory_changed(void **state)
{
    (void)state;
    XsValue *a = xv_struct(), *b = xv_struct();
    xv_struct_set_string(a, "total", "262144");
    xv_struct_set_string(a, "free", "100000");
    xv_struct_set_string(b, "total", "262144");
    xv_struct_set_string(b, "free", "100900");
    assert_false(guest_metrics_memory_changed(a, b));
    xv_struct_set_string(b, "free", "102000");
    assert_true(guest_metrics_memory_changed(a, b));
    xv_struct_remove(b, "free");
    assert_true(guest_metrics_memory_changed(a, b));
    xv_free(a);
    xv_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hyperxe_agent),
        cmocka_unit_test(test_stock_agent_and_balloon),
        cmocka_unit_test(test_hostile_guest),
        cmocka_unit_test(test_memory_changed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
