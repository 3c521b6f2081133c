/*
 * guest-network-get-interfaces: every network interface with its MAC
 * address, IPv4/IPv6 addresses with prefix lengths, and traffic counters
 * from /proc/net/dev, in the shape QEMU's agent returns. Read-only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_io.h"
#include "agent/cmd.h"
#include "agent/qga_json.h"
#include "util/xalloc.h"

#include "util/banned.h"

/* Interfaces reported at most (a guest with more is unusual). */
#define CMD_NET_MAX_IFACES 1024

static int cmd_net_prefix(const struct sockaddr *mask)
{
    const unsigned char *p;
    size_t n;
    if (!mask)
        return 0;
    if (mask->sa_family == AF_INET) {
        p = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr;
        n = 4;
    } else if (mask->sa_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)mask)->sin6_addr;
        n = 16;
    } else {
        return 0;
    }
    int bits = 0;
    for (size_t i = 0; i < n; i++)
        bits += __builtin_popcount(p[i]);
    return bits;
}

/* Finds or appends the entry for name in list. */
static struct json_object *cmd_net_iface(struct json_object *list, const char *name)
{
    size_t n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(list, i);
        struct json_object *nm;
        if (json_object_object_get_ex(e, "name", &nm) && STREQ(json_object_get_string(nm), name))
            return e;
    }
    if (n >= CMD_NET_MAX_IFACES)
        return NULL;
    struct json_object *e = qga_json_add_str(json_object_new_object(), "name", name);
    json_object_array_add(list, e);
    return e;
}

/* Adds "statistics" from /proc/net/dev to each interface found there. */
static void cmd_net_add_stats(struct json_object *list)
{
    StrBuf text = STRBUF_INIT;
    int r = agent_io_read_file("/proc/net/dev", 1024 * 1024, &text);
    if (r < 0 && r != -EFBIG) {
        strbuf_release(&text);
        return;
    }
    char *line = text.buf;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *name = line;
            while (*name == ' ')
                name++;
            unsigned long long v[16];
            int got = sscanf(colon + 1,
                             "%llu %llu %llu %llu %llu %llu %llu %llu "
                             "%llu %llu %llu %llu %llu %llu %llu %llu",
                             &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
                             &v[10], &v[11], &v[12], &v[13], &v[14], &v[15]);
            size_t n = json_object_array_length(list);
            for (size_t i = 0; got >= 12 && i < n; i++) {
                struct json_object *e = json_object_array_get_idx(list, i);
                struct json_object *nm;
                if (!json_object_object_get_ex(e, "name", &nm) ||
                    !STREQ(json_object_get_string(nm), name))
                    continue;
                struct json_object *s = json_object_new_object();
                qga_json_add_uint(s, "rx-bytes", v[0]);
                qga_json_add_uint(s, "rx-packets", v[1]);
                qga_json_add_uint(s, "rx-errs", v[2]);
                qga_json_add_uint(s, "rx-dropped", v[3]);
                qga_json_add_uint(s, "tx-bytes", v[8]);
                qga_json_add_uint(s, "tx-packets", v[9]);
                qga_json_add_uint(s, "tx-errs", v[10]);
                qga_json_add_uint(s, "tx-dropped", v[11]);
                json_object_object_add(e, "statistics", s);
            }
        }
        line = next;
    }
    strbuf_release(&text);
}

CMD_HANDLER(cmd_net_interfaces)
{
    struct ifaddrs *ifa_list;
    if (getifaddrs(&ifa_list) < 0)
        return qga_error_errno(err, -errno, "cannot list network interfaces");

    struct json_object *list = json_object_new_array();
    /* First pass: interfaces in kernel order with their link-layer address. */
    for (struct ifaddrs *ifa = ifa_list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_name || !ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_PACKET)
            continue;
        struct json_object *e = cmd_net_iface(list, ifa->ifa_name);
        const struct sockaddr_ll *ll = (const struct sockaddr_ll *)ifa->ifa_addr;
        if (!e || ll->sll_halen == 0 || ll->sll_halen > sizeof(ll->sll_addr))
            continue;
        StrBuf mac = STRBUF_INIT;
        for (unsigned i = 0; i < ll->sll_halen; i++)
            strbuf_addf(&mac, "%s%02x", i ? ":" : "", ll->sll_addr[i]);
        qga_json_add_str(e, "hardware-address", mac.buf);
        strbuf_release(&mac);
    }
    /* Second pass: addresses. */
    for (struct ifaddrs *ifa = ifa_list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_name || !ifa->ifa_addr)
            continue;
        int fam = ifa->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        char buf[INET6_ADDRSTRLEN];
        const void *a =
            fam == AF_INET ? (const void *)&((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr
                           : (const void *)&((const struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;
        if (!inet_ntop(fam, a, buf, sizeof(buf)))
            continue;
        struct json_object *e = cmd_net_iface(list, ifa->ifa_name);
        if (!e)
            continue;
        struct json_object *addrs;
        if (!json_object_object_get_ex(e, "ip-addresses", &addrs)) {
            addrs = json_object_new_array();
            json_object_object_add(e, "ip-addresses", addrs);
        }
        struct json_object *ip = json_object_new_object();
        qga_json_add_str(ip, "ip-address-type", fam == AF_INET ? "ipv4" : "ipv6");
        qga_json_add_str(ip, "ip-address", buf);
        qga_json_add_int(ip, "prefix", cmd_net_prefix(ifa->ifa_netmask));
        json_object_array_add(addrs, ip);
    }
    freeifaddrs(ifa_list);
    cmd_net_add_stats(list);
    *ret = list;
    return true;
}
