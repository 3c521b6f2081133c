/*
 * Linux bridges for networks: create (idempotent), delete, ports. A bridge
 * here is plain: no STP, no forwarding delay, no VLAN filtering. It does not
 * decide names, addresses or firewalling (network.c, ipv4.c, nft.c do).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "net/net.h"
#include "net/nl.h"
#include "util/cleanup.h"
#include "util/xalloc.h"
#include "util/banned.h"

static int net_bridge_new(const char *name, unsigned mtu)
{
    char buf[NET_NL_REQSIZE];
    struct ifinfomsg *ifm;
    struct nlmsghdr *nlh =
        net_nl_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifm), (void **)&ifm);
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (mtu)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    /* A bridge takes the lowest MAC of its ports unless given one, and so
     * would change address as taps come and go: fix it. */
    NetMac mac;
    net_mac_random(&mac);
    mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(mac.b), mac.b);
    struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    mnl_attr_put_u32(nlh, IFLA_BR_FORWARD_DELAY, 0);
    mnl_attr_put_u32(nlh, IFLA_BR_STP_STATE, 0);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, li);
    return net_nl_talk(nlh, NULL, NULL);
}

int net_bridge_create(const char *name, unsigned mtu)
{
    if (!net_link_name_valid(name))
        return -EINVAL;
    int r = net_bridge_new(name, mtu);
    if (r == -EEXIST) {
        NetLinkInfo info;
        r = net_link_get(name, &info);
        if (r < 0)
            return r;
        if (strcmp(info.kind, "bridge") != 0)
            return -EEXIST;
        if (mtu && info.mtu != mtu) {
            r = net_link_set_mtu(name, mtu);
            if (r < 0)
                return r;
        }
    } else if (r < 0) {
        return r;
    }
    return net_link_set_up(name, true);
}

bool net_bridge_exists(const char *name)
{
    NetLinkInfo info;
    return net_link_get(name, &info) == 0 && strcmp(info.kind, "bridge") == 0;
}

int net_bridge_delete(const char *name)
{
    NetLinkInfo info;
    int r = net_link_get(name, &info);
    if (r == -ENODEV)
        return 0;
    if (r < 0)
        return r;
    if (strcmp(info.kind, "bridge") != 0)
        return -EINVAL;
    return net_link_delete(name);
}

int net_bridge_add_port(const char *bridge, const char *port)
{
    NetLinkInfo b, p;
    int r = net_link_get(bridge, &b);
    if (r < 0)
        return r;
    if (strcmp(b.kind, "bridge") != 0)
        return -EINVAL;
    r = net_link_get(port, &p);
    if (r < 0)
        return r;
    if (p.master_index == b.index)
        return 0;
    return net_link_set_master(port, bridge);
}

int net_bridge_remove_port(const char *bridge, const char *port)
{
    NetLinkInfo b, p;
    int r = net_link_get(bridge, &b);
    if (r < 0)
        return r;
    r = net_link_get(port, &p);
    if (r < 0)
        return r;
    if (p.master_index == 0)
        return 0;
    if (p.master_index != b.index)
        return -EINVAL;
    return net_link_set_master(port, NULL);
}

static int net_bridge_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int net_bridge_list_ports(const char *bridge, char ***ports)
{
    NetLinkInfo b;
    int r = net_link_get(bridge, &b);
    if (r < 0)
        return r;
    if (strcmp(b.kind, "bridge") != 0)
        return -EINVAL;
    _cleanup_free_ NetLinkInfo *links = NULL;
    size_t n = 0;
    r = net_link_list(&links, &n);
    if (r < 0)
        return r;
    char **v = xnew0(char *, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (links[i].master_index == b.index)
            v[k++] = xstrdup(links[i].name);
    qsort(v, k, sizeof(*v), net_bridge_cmp_str);
    *ports = v;
    return 0;
}
