/*
 * Persistent tap devices, one per plugged VIF, and their names. The tap is
 * made here and QEMU opens it by name (script=no, never vhost); it must not
 * start or know about QEMU itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <net/if.h> /* before the <linux/...> headers, which then skip <linux/if.h> */
#include <linux/if_arp.h>
#include <linux/if_tun.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/banned.h"

int net_tap_name(unsigned domid, unsigned device, char name[NET_IFNAME_MAX + 1])
{
    char tmp[64];
    int n = snprintf(tmp, sizeof(tmp), "vif%u.%u", domid, device);
    if (n < 0 || n > NET_IFNAME_MAX) {
        name[0] = '\0';
        return -ENAMETOOLONG;
    }
    memcpy(name, tmp, (size_t)n + 1);
    return 0;
}

/* Parses a decimal without sign, leading zeros or overflow; returns the end or NULL. */
static const char *net_tap_parse_uint(const char *p, unsigned *out)
{
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return NULL;
    unsigned long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > UINT_MAX)
            return NULL;
        p++;
    }
    *out = (unsigned)v;
    return p;
}

bool net_tap_name_parse(const char *name, unsigned *domid, unsigned *device)
{
    if (!name || strncmp(name, "vif", 3) != 0)
        return false;
    unsigned d, v;
    const char *p = net_tap_parse_uint(name + 3, &d);
    if (!p || *p != '.')
        return false;
    p = net_tap_parse_uint(p + 1, &v);
    if (!p || *p)
        return false;
    *domid = d;
    *device = v;
    return true;
}

static int net_tap_check_existing(const char *name)
{
    NetLinkInfo info;
    int r = net_link_get(name, &info);
    if (r < 0)
        return r;
    if (strcmp(info.kind, "tun") != 0 || info.arp_type != ARPHRD_ETHER)
        return -EEXIST; /* something else, or a layer-3 tun */
    return 0;
}

int net_tap_create(const char *name, int uid)
{
    if (!net_link_name_valid(name))
        return -EINVAL;
    _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, strlen(name) + 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        /* EBUSY: a tap of that name is open (QEMU has it); EINVAL: exists
         * with other flags or as another kind of device. */
        if (e == EBUSY || e == EINVAL || e == EEXIST) {
            int r = net_tap_check_existing(name);
            return r == -ENODEV ? -e : r;
        }
        return -e;
    }
    if (uid >= 0 && ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0)
        return -errno;
    if (ioctl(fd, TUNSETPERSIST, 1UL) < 0)
        return -errno;
    return 0;
}

int net_tap_plug(const char *name, const char *bridge, unsigned mtu, int uid)
{
    int r = net_tap_create(name, uid);
    if (r < 0)
        return r;
    if (mtu) {
        NetLinkInfo info;
        r = net_link_get(name, &info);
        if (r < 0)
            return r;
        if (info.mtu != mtu && (r = net_link_set_mtu(name, mtu)) < 0)
            return r;
    }
    r = net_bridge_add_port(bridge, name);
    if (r < 0)
        return r;
    return net_link_set_up(name, true);
}

int net_tap_delete(const char *name)
{
    NetLinkInfo info;
    int r = net_link_get(name, &info);
    if (r == -ENODEV)
        return 0;
    if (r < 0)
        return r;
    if (strcmp(info.kind, "tun") != 0)
        return -EINVAL;
    return net_link_delete(name);
}
