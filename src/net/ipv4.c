/*
 * IPv4 for host-internal networks: parsing, interface addresses, the default
 * route (the NAT uplink) and picking a subnet that collides with nothing on
 * this host. Reads and changes the kernel through rtnetlink and
 * /proc/sys/net; holds no state and makes no policy choice beyond the
 * documented candidate list.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include "net/net.h"
#include "net/nl.h"
#include "util/cleanup.h"
#include "util/xalloc.h"
#include "util/banned.h"

static uint32_t net_ipv4_mask(unsigned prefix)
{
    return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
}

int net_ipv4_parse(const char *s, NetIpv4 *out)
{
    if (!s)
        return -EINVAL;
    char buf[32];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    NetIpv4 r;
    if (inet_pton(AF_INET, buf, &r.addr) != 1)
        return -EINVAL;
    r.prefix = 32;
    if (slash) {
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || strlen(p) > 2)
            return -EINVAL;
        unsigned v = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > 32)
            return -EINVAL;
        r.prefix = v;
    }
    *out = r;
    return 0;
}

void net_ipv4_format(const NetIpv4 *a, char out[32])
{
    char s[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->addr, s, sizeof(s));
    snprintf(out, 32, "%s/%u", s, a->prefix);
}

struct in_addr net_ipv4_network(const NetIpv4 *a)
{
    struct in_addr r = {htonl(ntohl(a->addr.s_addr) & net_ipv4_mask(a->prefix))};
    return r;
}

struct in_addr net_ipv4_broadcast(const NetIpv4 *a)
{
    struct in_addr r = {htonl(ntohl(a->addr.s_addr) | ~net_ipv4_mask(a->prefix))};
    return r;
}

bool net_ipv4_overlap(const NetIpv4 *a, const NetIpv4 *b)
{
    unsigned p = MIN(a->prefix, b->prefix);
    uint32_t m = net_ipv4_mask(p);
    return (ntohl(a->addr.s_addr) & m) == (ntohl(b->addr.s_addr) & m);
}

struct in_addr net_ipv4_add(struct in_addr a, uint32_t n)
{
    struct in_addr r = {htonl(ntohl(a.s_addr) + n)};
    return r;
}

/* ---- addresses ---------------------------------------------------------- */

typedef struct NetIpv4Addr {
    int index;
    NetIpv4 a;
} NetIpv4Addr;

typedef struct NetIpv4AddrList {
    NetIpv4Addr *v;
    size_t n, alloc;
} NetIpv4AddrList;

static int net_ipv4_addr_attr_cb(const struct nlattr *attr, void *data)
{
    const struct nlattr **tb = data;
    if (mnl_attr_type_valid(attr, IFA_MAX) >= 0)
        tb[mnl_attr_get_type(attr)] = attr;
    return MNL_CB_OK;
}

static int net_ipv4_addr_cb(const struct nlmsghdr *nlh, void *data)
{
    NetIpv4AddrList *l = data;
    if (nlh->nlmsg_type != RTM_NEWADDR)
        return MNL_CB_OK;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    if (ifa->ifa_family != AF_INET)
        return MNL_CB_OK;
    const struct nlattr *tb[IFA_MAX + 1] = {0};
    mnl_attr_parse(nlh, sizeof(*ifa), net_ipv4_addr_attr_cb, tb);
    const struct nlattr *at = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (!at || mnl_attr_get_payload_len(at) != 4)
        return MNL_CB_OK;
    XGROW(l->v, l->n + 1, l->alloc);
    NetIpv4Addr *e = &l->v[l->n++];
    e->index = (int)ifa->ifa_index;
    memcpy(&e->a.addr, mnl_attr_get_payload(at), 4);
    e->a.prefix = ifa->ifa_prefixlen;
    return MNL_CB_OK;
}

static int net_ipv4_addr_dump(NetIpv4AddrList *l)
{
    char buf[NET_NL_REQSIZE];
    struct ifaddrmsg *ifa;
    struct nlmsghdr *nlh =
        net_nl_request(buf, RTM_GETADDR, NLM_F_DUMP, sizeof(*ifa), (void **)&ifa);
    ifa->ifa_family = AF_INET;
    memset(l, 0, sizeof(*l));
    int r = net_nl_talk(nlh, net_ipv4_addr_cb, l);
    if (r < 0) {
        free(l->v);
        memset(l, 0, sizeof(*l));
    }
    return r;
}

int net_ipv4_addr_list(const char *ifname, NetIpv4 **out, size_t *n)
{
    NetLinkInfo info;
    int r = net_link_get(ifname, &info);
    if (r < 0)
        return r;
    NetIpv4AddrList l;
    r = net_ipv4_addr_dump(&l);
    if (r < 0)
        return r;
    NetIpv4 *v = xnew0(NetIpv4, l.n + 1);
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].index == info.index)
            v[k++] = l.v[i].a;
    free(l.v);
    *out = v;
    *n = k;
    return 0;
}

int net_ipv4_addr_add(const char *ifname, const NetIpv4 *addr)
{
    NetLinkInfo info;
    int r = net_link_get(ifname, &info);
    if (r < 0)
        return r;
    if (addr->prefix > 32)
        return -EINVAL;
    char buf[NET_NL_REQSIZE];
    struct ifaddrmsg *ifa;
    struct nlmsghdr *nlh =
        net_nl_request(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifa), (void **)&ifa);
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)addr->prefix;
    ifa->ifa_index = (unsigned)info.index;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    mnl_attr_put(nlh, IFA_LOCAL, 4, &addr->addr);
    mnl_attr_put(nlh, IFA_ADDRESS, 4, &addr->addr);
    if (addr->prefix < 31) {
        struct in_addr bc = net_ipv4_broadcast(addr);
        mnl_attr_put(nlh, IFA_BROADCAST, 4, &bc);
    }
    r = net_nl_talk(nlh, NULL, NULL);
    return r == -EEXIST ? 0 : r;
}

/* ---- routes ------------------------------------------------------------- */

typedef struct NetIpv4Route {
    NetIpv4 dst;
    struct in_addr gw;
    int oif;
    unsigned table;
    unsigned type;
    unsigned priority;
} NetIpv4Route;

typedef struct NetIpv4RouteList {
    NetIpv4Route *v;
    size_t n, alloc;
} NetIpv4RouteList;

static int net_ipv4_route_attr_cb(const struct nlattr *attr, void *data)
{
    const struct nlattr **tb = data;
    if (mnl_attr_type_valid(attr, RTA_MAX) >= 0)
        tb[mnl_attr_get_type(attr)] = attr;
    return MNL_CB_OK;
}

static int net_ipv4_route_cb(const struct nlmsghdr *nlh, void *data)
{
    NetIpv4RouteList *l = data;
    if (nlh->nlmsg_type != RTM_NEWROUTE)
        return MNL_CB_OK;
    const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
    if (rtm->rtm_family != AF_INET)
        return MNL_CB_OK;
    const struct nlattr *tb[RTA_MAX + 1] = {0};
    mnl_attr_parse(nlh, sizeof(*rtm), net_ipv4_route_attr_cb, tb);
    XGROW(l->v, l->n + 1, l->alloc);
    NetIpv4Route *e = &l->v[l->n++];
    memset(e, 0, sizeof(*e));
    e->dst.prefix = rtm->rtm_dst_len;
    if (tb[RTA_DST] && mnl_attr_get_payload_len(tb[RTA_DST]) == 4)
        memcpy(&e->dst.addr, mnl_attr_get_payload(tb[RTA_DST]), 4);
    if (tb[RTA_GATEWAY] && mnl_attr_get_payload_len(tb[RTA_GATEWAY]) == 4)
        memcpy(&e->gw, mnl_attr_get_payload(tb[RTA_GATEWAY]), 4);
    if (tb[RTA_OIF] && mnl_attr_get_payload_len(tb[RTA_OIF]) == 4)
        e->oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
    e->table = rtm->rtm_table;
    if (tb[RTA_TABLE] && mnl_attr_get_payload_len(tb[RTA_TABLE]) == 4)
        e->table = mnl_attr_get_u32(tb[RTA_TABLE]);
    if (tb[RTA_PRIORITY] && mnl_attr_get_payload_len(tb[RTA_PRIORITY]) == 4)
        e->priority = mnl_attr_get_u32(tb[RTA_PRIORITY]);
    e->type = rtm->rtm_type;
    return MNL_CB_OK;
}

static int net_ipv4_route_dump(NetIpv4RouteList *l)
{
    char buf[NET_NL_REQSIZE];
    struct rtmsg *rtm;
    struct nlmsghdr *nlh =
        net_nl_request(buf, RTM_GETROUTE, NLM_F_DUMP, sizeof(*rtm), (void **)&rtm);
    rtm->rtm_family = AF_INET;
    memset(l, 0, sizeof(*l));
    int r = net_nl_talk(nlh, net_ipv4_route_cb, l);
    if (r < 0) {
        free(l->v);
        memset(l, 0, sizeof(*l));
    }
    return r;
}

int net_ipv4_default_route(char ifname[NET_IFNAME_MAX + 1], struct in_addr *gw)
{
    NetIpv4RouteList l;
    int r = net_ipv4_route_dump(&l);
    if (r < 0)
        return r;
    const NetIpv4Route *best = NULL;
    for (size_t i = 0; i < l.n; i++) {
        const NetIpv4Route *e = &l.v[i];
        if (e->table != RT_TABLE_MAIN || e->dst.prefix != 0 || e->type != RTN_UNICAST ||
            e->oif <= 0)
            continue;
        if (!best || e->priority < best->priority)
            best = e;
    }
    r = -ENOENT;
    if (best) {
        NetLinkInfo info;
        r = net_link_get_by_index(best->oif, &info);
        if (r == 0) {
            if (ifname)
                memcpy(ifname, info.name, sizeof(info.name));
            if (gw)
                *gw = best->gw;
        }
    }
    free(l.v);
    return r;
}

static bool net_ipv4_collides(const NetIpv4 *c, const NetIpv4RouteList *routes,
                              const NetIpv4AddrList *addrs, int own_index, const NetIpv4 *avoid,
                              size_t n_avoid)
{
    for (size_t i = 0; i < routes->n; i++) {
        const NetIpv4Route *e = &routes->v[i];
        if (e->dst.prefix == 0 || e->table == RT_TABLE_LOCAL)
            continue; /* default routes cover everything; local = our own addresses */
        if (own_index > 0 && e->oif == own_index)
            continue;
        if (net_ipv4_overlap(c, &e->dst))
            return true;
    }
    for (size_t i = 0; i < addrs->n; i++) {
        if (own_index > 0 && addrs->v[i].index == own_index)
            continue;
        if (net_ipv4_overlap(c, &addrs->v[i].a))
            return true;
    }
    for (size_t i = 0; i < n_avoid; i++)
        if (net_ipv4_overlap(c, &avoid[i]))
            return true;
    return false;
}

int net_ipv4_pick_subnet(const NetIpv4 *preferred, const char *own_bridge, const NetIpv4 *avoid,
                         size_t n_avoid, NetIpv4 *out)
{
    int own_index = 0;
    if (own_bridge) {
        NetLinkInfo info;
        if (net_link_get(own_bridge, &info) == 0)
            own_index = info.index;
    }
    NetIpv4RouteList routes;
    NetIpv4AddrList addrs;
    int r = net_ipv4_route_dump(&routes);
    if (r < 0)
        return r;
    r = net_ipv4_addr_dump(&addrs);
    if (r < 0) {
        free(routes.v);
        return r;
    }
    r = -EADDRINUSE;
    NetIpv4 c;
    if (preferred) {
        c.prefix = preferred->prefix;
        c.addr = net_ipv4_network(preferred);
        if (!net_ipv4_collides(&c, &routes, &addrs, own_index, avoid, n_avoid)) {
            *out = c;
            r = 0;
            goto done;
        }
    }
    for (int family = 0; family < 2; family++) {
        for (unsigned x = 122; x <= 254; x++) {
            char s[32];
            snprintf(s, sizeof(s), family == 0 ? "192.168.%u.0/24" : "10.%u.0.0/24", x);
            net_ipv4_parse(s, &c);
            if (!net_ipv4_collides(&c, &routes, &addrs, own_index, avoid, n_avoid)) {
                *out = c;
                r = 0;
                goto done;
            }
        }
    }
done:
    free(routes.v);
    free(addrs.v);
    return r;
}

int net_ipv4_enable_forwarding(void)
{
    static const char path[] = "/proc/sys/net/ipv4/ip_forward";
    _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char c = 0;
    if (read(fd, &c, 1) == 1 && c == '1')
        return 0;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    if (write(fd, "1\n", 2) != 2)
        return -errno;
    return 0;
}
