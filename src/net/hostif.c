/*
 * The host's Ethernet interfaces as PIF records want them: device, MAC, MTU,
 * carrier, first IPv4 address and netmask, and the default route. Reads
 * rtnetlink only (sysfs would show the namespace it was mounted in, not
 * ours); changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/if_arp.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* Kernels before 5.16 do not report IFLA_PARENT_DEV_NAME: ask sysfs then. */
static bool net_hostif_sysfs_device(const char *name)
{
    char path[64];
    snprintf(path, sizeof(path), "/sys/class/net/%s/device", name);
    struct stat st;
    return stat(path, &st) == 0;
}

static int net_hostif_cmp(const void *a, const void *b)
{
    return strcmp(((const NetHostIf *)a)->device, ((const NetHostIf *)b)->device);
}

int net_hostif_list(bool include_virtual, NetHostIf **out, size_t *n)
{
    _cleanup_free_ NetLinkInfo *links = NULL;
    size_t nl = 0;
    int r = net_link_list(&links, &nl);
    if (r < 0)
        return r;
    bool kernel_reports_parent = false;
    for (size_t i = 0; i < nl; i++)
        kernel_reports_parent |= links[i].has_parent_dev;

    char def_if[NET_IFNAME_MAX + 1] = "";
    struct in_addr def_gw = {0};
    if (net_ipv4_default_route(def_if, &def_gw) < 0)
        def_if[0] = '\0';

    NetHostIf *v = xnew0(NetHostIf, nl + 1);
    size_t k = 0;
    for (size_t i = 0; i < nl; i++) {
        const NetLinkInfo *l = &links[i];
        if (l->arp_type != ARPHRD_ETHER || !l->has_mac)
            continue;
        bool physical =
            l->kind[0] == '\0' &&
            (l->has_parent_dev || (!kernel_reports_parent && net_hostif_sysfs_device(l->name)));
        if (!physical && !include_virtual)
            continue;
        NetHostIf *h = &v[k++];
        memcpy(h->device, l->name, sizeof(h->device));
        h->mac = l->mac;
        h->mtu = l->mtu;
        h->physical = physical;
        h->up = l->up;
        h->carrier = l->carrier;
        _cleanup_free_ NetIpv4 *addrs = NULL;
        size_t na = 0;
        if (net_ipv4_addr_list(l->name, &addrs, &na) == 0 && na > 0) {
            h->has_ipv4 = true;
            h->ipv4 = addrs[0];
            h->netmask.s_addr = htonl(addrs[0].prefix ? 0xffffffffu << (32 - addrs[0].prefix) : 0);
        }
        if (def_if[0] && strcmp(def_if, l->name) == 0) {
            h->default_route = true;
            h->gateway = def_gw;
        }
    }
    if (k)
        qsort(v, k, sizeof(*v), net_hostif_cmp);
    *out = v;
    *n = k;
    return 0;
}
