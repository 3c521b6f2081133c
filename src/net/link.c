/*
 * Operations on any network interface through rtnetlink: look-up, listing,
 * up/down, MTU, bridge membership, deletion. Knows no policy; bridge.c and
 * tap.c build on it. Works in whatever network namespace the calling thread
 * is in (sysfs is never read: it shows the namespace it was mounted in).
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000 /* <linux/if.h>, which clashes with <net/if.h> */
#endif

#include "net/net.h"
#include "net/nl.h"
#include "util/xalloc.h"
#include "util/banned.h"

bool net_link_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > NET_IFNAME_MAX)
        return false;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == '/' || c == ':' || c >= 0x7f)
            return false;
    }
    return true;
}

static int net_link_attr_cb(const struct nlattr *attr, void *data)
{
    const struct nlattr **tb = data;
    int type = mnl_attr_get_type(attr);
    if (mnl_attr_type_valid(attr, IFLA_MAX) < 0)
        return MNL_CB_OK;
    tb[type] = attr;
    return MNL_CB_OK;
}

static int net_link_info_attr_cb(const struct nlattr *attr, void *data)
{
    const struct nlattr **tb = data;
    int type = mnl_attr_get_type(attr);
    if (mnl_attr_type_valid(attr, IFLA_INFO_MAX) < 0)
        return MNL_CB_OK;
    tb[type] = attr;
    return MNL_CB_OK;
}

static void net_link_parse(const struct nlmsghdr *nlh, NetLinkInfo *info)
{
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    const struct nlattr *tb[IFLA_MAX + 1] = {0};
    mnl_attr_parse(nlh, sizeof(*ifm), net_link_attr_cb, tb);
    memset(info, 0, sizeof(*info));
    info->index = ifm->ifi_index;
    info->arp_type = ifm->ifi_type;
    info->up = (ifm->ifi_flags & IFF_UP) != 0;
    info->carrier = (ifm->ifi_flags & IFF_LOWER_UP) != 0;
    if (tb[IFLA_IFNAME])
        snprintf(info->name, sizeof(info->name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
    if (tb[IFLA_MTU] && mnl_attr_get_payload_len(tb[IFLA_MTU]) >= 4)
        info->mtu = mnl_attr_get_u32(tb[IFLA_MTU]);
    if (tb[IFLA_MASTER] && mnl_attr_get_payload_len(tb[IFLA_MASTER]) >= 4)
        info->master_index = (int)mnl_attr_get_u32(tb[IFLA_MASTER]);
    if (tb[IFLA_ADDRESS] && mnl_attr_get_payload_len(tb[IFLA_ADDRESS]) == 6) {
        memcpy(info->mac.b, mnl_attr_get_payload(tb[IFLA_ADDRESS]), 6);
        info->has_mac = true;
    }
    if (tb[IFLA_PARENT_DEV_NAME])
        info->has_parent_dev = true;
    if (tb[IFLA_LINKINFO]) {
        const struct nlattr *li[IFLA_INFO_MAX + 1] = {0};
        mnl_attr_parse_nested(tb[IFLA_LINKINFO], net_link_info_attr_cb, li);
        if (li[IFLA_INFO_KIND])
            snprintf(info->kind, sizeof(info->kind), "%s", mnl_attr_get_str(li[IFLA_INFO_KIND]));
    }
}

static int net_link_one_cb(const struct nlmsghdr *nlh, void *data)
{
    if (nlh->nlmsg_type == RTM_NEWLINK)
        net_link_parse(nlh, data);
    return MNL_CB_OK;
}

static int net_link_query(const char *name, int index, NetLinkInfo *info)
{
    char buf[NET_NL_REQSIZE];
    struct ifinfomsg *ifm;
    struct nlmsghdr *nlh = net_nl_request(buf, RTM_GETLINK, 0, sizeof(*ifm), (void **)&ifm);
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = index;
    if (name)
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    memset(info, 0, sizeof(*info));
    int r = net_nl_talk(nlh, net_link_one_cb, info);
    if (r < 0)
        return r;
    return info->index > 0 ? 0 : -ENODEV;
}

int net_link_get(const char *name, NetLinkInfo *info)
{
    if (!net_link_name_valid(name))
        return -EINVAL;
    return net_link_query(name, 0, info);
}

int net_link_get_by_index(int index, NetLinkInfo *info)
{
    if (index <= 0)
        return -EINVAL;
    return net_link_query(NULL, index, info);
}

bool net_link_exists(const char *name)
{
    NetLinkInfo info;
    return net_link_get(name, &info) == 0;
}

typedef struct NetLinkList {
    NetLinkInfo *v;
    size_t n, alloc;
} NetLinkList;

static int net_link_list_cb(const struct nlmsghdr *nlh, void *data)
{
    NetLinkList *l = data;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    XGROW(l->v, l->n + 1, l->alloc);
    net_link_parse(nlh, &l->v[l->n++]);
    return MNL_CB_OK;
}

static int net_link_cmp_index(const void *a, const void *b)
{
    const NetLinkInfo *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

int net_link_list(NetLinkInfo **out, size_t *n)
{
    char buf[NET_NL_REQSIZE];
    struct ifinfomsg *ifm;
    struct nlmsghdr *nlh =
        net_nl_request(buf, RTM_GETLINK, NLM_F_DUMP, sizeof(*ifm), (void **)&ifm);
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    NetLinkList l = {0};
    int r = net_nl_talk(nlh, net_link_list_cb, &l);
    if (r < 0) {
        free(l.v);
        return r;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(*l.v), net_link_cmp_index);
    *out = l.v ? l.v : xnew0(NetLinkInfo, 1);
    *n = l.n;
    return 0;
}

/* RTM_NEWLINK on an existing interface, found by name. */
static struct nlmsghdr *net_link_change_req(char *buf, const char *name, struct ifinfomsg **ifm)
{
    struct nlmsghdr *nlh = net_nl_request(buf, RTM_NEWLINK, 0, sizeof(**ifm), (void **)ifm);
    (*ifm)->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    return nlh;
}

int net_link_set_up(const char *name, bool up)
{
    if (!net_link_name_valid(name))
        return -EINVAL;
    char buf[NET_NL_REQSIZE];
    struct ifinfomsg *ifm;
    struct nlmsghdr *nlh = net_link_change_req(buf, name, &ifm);
    ifm->ifi_change = IFF_UP;
    ifm->ifi_flags = up ? IFF_UP : 0;
    return net_nl_talk(nlh, NULL, NULL);
}

int net_link_set_mtu(const char *name, unsigned mtu)
{
    if (!net_link_name_valid(name))
        return -EINVAL;
    if (mtu < 68 || mtu > 65535)
        return -ERANGE;
    char buf[NET_NL_REQSIZE];
    struct ifinfomsg *ifm;
    struct nlmsghdr *nlh = net_link_change_req(buf, name, &ifm);
    mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    return net_nl_talk(nlh, NULL, NULL);
}

int net_link_set_master(const char *name, const char *master)
{
    if (!net_link_name_valid(name))
        return -EINVAL;
    int master_index = 0;
    if (master) {
        NetLinkInfo mi;
        int r = net_link_get(master, &mi);
        if (r < 0)
            return r;
        master_index = mi.index;
    }
    char buf[NET_NL_REQSIZE];
    struct ifinfomsg *ifm;
    struct nlmsghdr *nlh = net_link_change_req(buf, name, &ifm);
    mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master_index);
    return net_nl_talk(nlh, NULL, NULL);
}

int net_link_delete(const char *name)
{
    if (!net_link_name_valid(name))
        return -EINVAL;
    char buf[NET_NL_REQSIZE];
    struct ifinfomsg *ifm;
    struct nlmsghdr *nlh = net_nl_request(buf, RTM_DELLINK, 0, sizeof(*ifm), (void **)&ifm);
    ifm->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    int r = net_nl_talk(nlh, NULL, NULL);
    return r == -ENODEV ? 0 : r;
}
