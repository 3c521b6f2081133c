/*
 * Guest-agent replies to VM_guest_metrics fields. See guest_metrics.h.
 *
 * The keys follow what XenServer's Linux guest agent wrote to xenstore and
 * xapi copied (ocaml/xapi/xapi_guest_agent.ml): os_version name, uname,
 * distro, major, minor; PV_drivers_version major, minor, micro (and
 * application); networks <vif>/ip, <vif>/ipv4/<n>, <vif>/ipv6/<n>; memory
 * total and free in KiB (XenServer's meminfo_total/meminfo_free); other
 * feature-* flags set to "1". disks has no XenServer precedent worth
 * copying (always empty there): here <userdevice>/<filesystem>/mount, type,
 * total, used.
 *
 * Nothing from the guest is trusted: strings are cut to a bounded length and
 * cleaned of control characters and invalid UTF-8, numbers range-checked,
 * addresses parsed with inet_pton, counts capped.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "ops/guest_metrics.h"
#include "util/macros.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define GM_MAX_STRING      255
#define GM_MAX_INTERFACES  64
#define GM_MAX_ADDRESSES   32
#define GM_MAX_FILESYSTEMS 64
#define GM_MAX_NAME        32

/* ---- bounded reading of the agent's JSON -------------------------------------------- */

static struct json_object *member(struct json_object *o, const char *key, json_type t)
{
    struct json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, t))
        return NULL;
    return v;
}

static const char *member_str(struct json_object *o, const char *key)
{
    struct json_object *v = member(o, key, json_type_string);
    return v ? json_object_get_string(v) : NULL;
}

/* An integer member (JSON ints only; doubles and strings are not numbers here). */
static bool member_int(struct json_object *o, const char *key, int64_t *out)
{
    struct json_object *v = member(o, key, json_type_int);
    if (!v)
        return false;
    *out = json_object_get_int64(v);
    return true;
}

static size_t array_len(struct json_object *a)
{
    return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    uint32_t cp = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A copy of s fit for a XenAPI string: at most max bytes, no control
 * characters, valid UTF-8 (anything else becomes '?'). */
static char *clean_str(const char *s, size_t max)
{
    StrBuf sb = STRBUF_INIT;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n && sb.len < max;) {
        if (p[i] < 0x80) {
            strbuf_addch(&sb, p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i]);
            i++;
            continue;
        }
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0) {
            strbuf_addch(&sb, '?');
            i++;
            continue;
        }
        if (sb.len + l > max)
            break; /* never half a character */
        strbuf_add(&sb, (const char *)p + i, l);
        i += l;
    }
    return strbuf_detach(&sb, NULL);
}

static void map_put(XsValue *map, const char *key, const char *value)
{
    char *v = clean_str(value, GM_MAX_STRING);
    xv_struct_set(map, key, xv_string_take(v));
}

static void map_put_int(XsValue *map, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    xv_struct_set_string(map, key, buf);
}

/* A name usable inside a key: [A-Za-z0-9._-], at most GM_MAX_NAME characters. */
static bool key_name(const char *s, char out[GM_MAX_NAME + 1])
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > GM_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
        if (!okc)
            return false;
        out[i] = c;
    }
    out[n] = '\0';
    return strcmp(out, ".") != 0 && strcmp(out, "..") != 0;
}

/* ---- the fields ---------------------------------------------------------------------- */

bool guest_metrics_has_command(struct json_object *info, const char *command)
{
    struct json_object *cmds = member(info, "supported_commands", json_type_array);
    size_t n = array_len(cmds);
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(cmds, i);
        const char *name = member_str(c, "name");
        struct json_object *en = member(c, "enabled", json_type_boolean);
        if (name && strcmp(name, command) == 0)
            return !en || json_object_get_boolean(en);
    }
    return false;
}

/* "12.5.1" -> 12, 5 (digits only; NULL parts stay absent). */
static void put_version(XsValue *map, const char *version, const char *k1, const char *k2,
                        const char *k3)
{
    const char *keys[] = {k1, k2, k3};
    const char *p = version;
    for (size_t i = 0; i < ARRAY_SIZE(keys) && keys[i] && p && *p; i++) {
        if (*p < '0' || *p > '9')
            break;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end - p > 9)
            break;
        map_put_int(map, keys[i], (int64_t)v);
        if (*end != '.')
            break;
        p = end + 1;
    }
}

static XsValue *os_version_of(struct json_object *os)
{
    XsValue *m = xv_struct();
    if (!os)
        return m;
    const char *pretty = member_str(os, "pretty-name");
    const char *name = member_str(os, "name");
    const char *version = member_str(os, "version");
    if (pretty && *pretty) {
        map_put(m, "name", pretty);
    } else if (name && *name) {
        char *s = xasprintf("%s%s%s", name, version ? " " : "", version ? version : "");
        map_put(m, "name", s);
        free(s);
    }
    const char *uname = member_str(os, "kernel-release");
    if (uname && *uname)
        map_put(m, "uname", uname);
    const char *id = member_str(os, "id");
    if (id && *id)
        map_put(m, "distro", id);
    const char *vid = member_str(os, "version-id");
    if (vid)
        put_version(m, vid, "major", "minor", NULL);
    return m;
}

static XsValue *pv_version_of(struct json_object *info)
{
    XsValue *m = xv_struct();
    const char *v = member_str(info, "version");
    if (!v)
        return m;
    put_version(m, v, "major", "minor", "micro");
    if (!xv_struct_get(m, "micro"))
        xv_struct_set_string(m, "micro", "-1"); /* as xapi does when the agent gives none */
    xv_struct_set_string(m, "application",
                         guest_metrics_has_command(info, "hyperxe-get-memory")
                             ? "hyperxe-agent"
                             : "qemu-guest-agent");
    return m;
}

static bool mac_equal(const char *a, const char *b)
{
    return a && b && strlen(a) == 17 && strcasecmp(a, b) == 0;
}

static XsValue *networks_of(struct json_object *ifs, const GmVif *vifs, size_t n_vifs)
{
    XsValue *m = xv_struct();
    size_t n = MIN(array_len(ifs), (size_t)GM_MAX_INTERFACES);
    for (size_t i = 0; i < n; i++) {
        struct json_object *itf = json_object_array_get_idx(ifs, i);
        const char *mac = member_str(itf, "hardware-address");
        const char *dev = NULL;
        for (size_t k = 0; k < n_vifs && !dev; k++)
            if (mac_equal(mac, vifs[k].mac))
                dev = vifs[k].device;
        char devkey[GM_MAX_NAME + 1];
        if (!dev || !key_name(dev, devkey))
            continue; /* lo, and interfaces that are no VIF of ours */
        struct json_object *addrs = member(itf, "ip-addresses", json_type_array);
        size_t na = MIN(array_len(addrs), (size_t)GM_MAX_ADDRESSES);
        int n4 = 0, n6 = 0;
        for (size_t a = 0; a < na; a++) {
            struct json_object *ad = json_object_array_get_idx(addrs, a);
            const char *ip = member_str(ad, "ip-address");
            const char *type = member_str(ad, "ip-address-type");
            if (!ip || !type || strlen(ip) >= INET6_ADDRSTRLEN)
                continue;
            unsigned char bin[16];
            char key[64];
            if (strcmp(type, "ipv4") == 0 && inet_pton(AF_INET, ip, bin) == 1) {
                if (n4 == 0) {
                    snprintf(key, sizeof(key), "%s/ip", devkey);
                    xv_struct_set_string(m, key, ip);
                }
                snprintf(key, sizeof(key), "%s/ipv4/%d", devkey, n4++);
                xv_struct_set_string(m, key, ip);
            } else if (strcmp(type, "ipv6") == 0 && inet_pton(AF_INET6, ip, bin) == 1) {
                if (bin[0] == 0xfe && (bin[1] & 0xc0) == 0x80)
                    continue; /* link-local: every interface has one, nobody can reach it */
                char canon[INET6_ADDRSTRLEN];
                inet_ntop(AF_INET6, bin, canon, sizeof(canon));
                snprintf(key, sizeof(key), "%s/ipv6/%d", devkey, n6++);
                xv_struct_set_string(m, key, canon);
            }
        }
    }
    return m;
}

static XsValue *memory_of(struct json_object *mem, struct json_object *balloon)
{
    XsValue *m = xv_struct();
    int64_t total = -1, avail = -1;
    if (mem) {
        if (!member_int(mem, "total-bytes", &total))
            total = -1;
        if (!member_int(mem, "available-bytes", &avail) && !member_int(mem, "free-bytes", &avail))
            avail = -1;
    } else if (balloon) {
        struct json_object *st = member(balloon, "stats", json_type_object);
        int64_t last = 0;
        if (st && member_int(balloon, "last-update", &last) && last > 0) {
            if (!member_int(st, "stat-total-memory", &total))
                total = -1;
            if (!member_int(st, "stat-available-memory", &avail) || avail < 0) {
                if (!member_int(st, "stat-free-memory", &avail))
                    avail = -1;
            }
        }
    }
    /* At most 16 TiB: a guest claiming more is not believed. */
    const int64_t max = (int64_t)16 << 40;
    if (total > 0 && total <= max) {
        map_put_int(m, "total", total / 1024);
        if (avail >= 0 && avail <= total)
            map_put_int(m, "free", avail / 1024);
    }
    return m;
}

/* The VBD position of a disk fsinfo describes, or -1. */
static int disk_position(struct json_object *d, const GmDisk *disks, size_t n_disks)
{
    const char *bus = member_str(d, "bus-type");
    if (!bus)
        return -1;
    int64_t slot = -1, b = -1, target = -1, unit = -1;
    struct json_object *pci = member(d, "pci-controller", json_type_object);
    if (pci && !member_int(pci, "slot", &slot))
        slot = -1;
    if (!member_int(d, "bus", &b))
        b = -1;
    if (!member_int(d, "target", &target))
        target = -1;
    if (!member_int(d, "unit", &unit))
        unit = -1;
    for (size_t i = 0; i < n_disks; i++) {
        const GmDisk *k = &disks[i];
        if (!k->bus || strcmp(k->bus, bus) != 0)
            continue;
        if (strcmp(bus, "virtio") == 0 && k->pci_slot >= 0 && slot == k->pci_slot)
            return (int)k->position;
        if (strcmp(bus, "ide") == 0 && b >= 0 && unit >= 0 && b * 2 + unit == k->position)
            return (int)k->position;
        if (strcmp(bus, "scsi") == 0 && target == k->position)
            return (int)k->position;
    }
    return -1;
}

static XsValue *disks_of(struct json_object *fs, const GmDisk *disks, size_t n_disks)
{
    XsValue *m = xv_struct();
    size_t n = MIN(array_len(fs), (size_t)GM_MAX_FILESYSTEMS);
    for (size_t i = 0; i < n; i++) {
        struct json_object *f = json_object_array_get_idx(fs, i);
        char name[GM_MAX_NAME + 1];
        const char *mnt = member_str(f, "mountpoint");
        if (!key_name(member_str(f, "name"), name) || !mnt)
            continue;
        struct json_object *dl = member(f, "disk", json_type_array);
        int pos = -1;
        for (size_t k = 0; k < MIN(array_len(dl), (size_t)16) && pos < 0; k++)
            pos = disk_position(json_object_array_get_idx(dl, k), disks, n_disks);
        if (pos < 0)
            continue;
        char key[96];
        snprintf(key, sizeof(key), "%d/%s/mount", pos, name);
        map_put(m, key, mnt);
        const char *type = member_str(f, "type");
        if (type) {
            snprintf(key, sizeof(key), "%d/%s/type", pos, name);
            map_put(m, key, type);
        }
        int64_t v;
        if (member_int(f, "total-bytes", &v) && v >= 0) {
            snprintf(key, sizeof(key), "%d/%s/total", pos, name);
            map_put_int(m, key, v);
        }
        if (member_int(f, "used-bytes", &v) && v >= 0) {
            snprintf(key, sizeof(key), "%d/%s/used", pos, name);
            map_put_int(m, key, v);
        }
    }
    return m;
}

static XsValue *other_of(const GmFacts *f)
{
    XsValue *m = xv_struct();
    if (guest_metrics_has_command(f->info, "guest-shutdown")) {
        xv_struct_set_string(m, "feature-shutdown", "1");
        xv_struct_set_string(m, "feature-poweroff", "1");
        xv_struct_set_string(m, "feature-reboot", "1");
    }
    if (guest_metrics_has_command(f->info, "guest-fsfreeze-freeze") &&
        guest_metrics_has_command(f->info, "guest-fsfreeze-thaw"))
        xv_struct_set_string(m, "feature-quiesce", "1");
    if (guest_metrics_has_command(f->info, "guest-set-vcpus"))
        xv_struct_set_string(m, "feature-vcpu-hotplug", "1");
    if (f->balloon_driver)
        xv_struct_set_string(m, "feature-balloon", "1");
    return m;
}

void guest_metrics_build(const GmFacts *facts, const GmVif *vifs, size_t n_vifs,
                         const GmDisk *disks, size_t n_disks, GmFields *out)
{
    out->os_version = os_version_of(facts->osinfo);
    out->pv_drivers_version = pv_version_of(facts->info);
    out->networks = networks_of(facts->interfaces, vifs, n_vifs);
    out->memory = memory_of(facts->memory, facts->balloon);
    out->disks = disks_of(facts->fsinfo, disks, n_disks);
    out->other = other_of(facts);
    out->pv_drivers_detected = facts->pv_io;
}

void guest_metrics_release(GmFields *f)
{
    xv_free(f->os_version);
    xv_free(f->pv_drivers_version);
    xv_free(f->networks);
    xv_free(f->memory);
    xv_free(f->disks);
    xv_free(f->other);
    memset(f, 0, sizeof(*f));
}

const char *guest_metrics_first_ip(const XsValue *networks)
{
    if (!networks || networks->kind != XV_STRUCT)
        return NULL;
    for (size_t i = 0; i < networks->n; i++) {
        const char *k = xv_struct_key(networks, i);
        const XsValue *v = xv_struct_val(networks, i);
        size_t l = strlen(k);
        if (l > 3 && strcmp(k + l - 3, "/ip") == 0 && v->kind == XV_STRING)
            return v->s;
    }
    return NULL;
}

bool guest_metrics_memory_changed(const XsValue *a, const XsValue *b)
{
    if (!a || !b || a->kind != XV_STRUCT || b->kind != XV_STRUCT || a->n != b->n)
        return true;
    for (size_t i = 0; i < a->n; i++) {
        const char *bv = xv_struct_get_string(b, xv_struct_key(a, i));
        const XsValue *av = xv_struct_val(a, i);
        if (!bv || av->kind != XV_STRING)
            return true;
        long long x = strtoll(av->s, NULL, 10), y = strtoll(bv, NULL, 10);
        if (llabs(x - y) > 1024) /* KiB */
            return true;
    }
    return false;
}
