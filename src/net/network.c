/*
 * A whole network brought up or torn down in one call: bridge, address,
 * forwarding, nftables rules, dnsmasq, uplink port, in that order. Every step
 * is idempotent, so starting a network that is already up (e.g. after a
 * daemon restart) checks and repairs rather than duplicates. This file
 * composes the other net_* families; it must not talk to the kernel itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/banned.h"

static const char *const net_mode_names[NET_MODE__MAX] = {
    [NET_MODE_NAT] = "nat",
    [NET_MODE_INTERNAL] = "internal",
    [NET_MODE_BRIDGED] = "bridged",
};

const char *net_mode_to_string(NetMode mode)
{
    return mode >= 0 && mode < NET_MODE__MAX ? net_mode_names[mode] : "unknown";
}

int net_mode_from_string(const char *s)
{
    for (int m = 0; m < NET_MODE__MAX; m++)
        if (s && strcmp(s, net_mode_names[m]) == 0)
            return m;
    return -EINVAL;
}

static int net_network_fail(StrBuf *err, int r, const char *what, const char *bridge)
{
    if (err && r < 0)
        strbuf_addf(err, "%s for network bridge %s failed: %s", what, bridge, strerror(-r));
    return r;
}

/* Gives the bridge its address: keeps one already there, else picks a subnet. */
static int net_network_address(const NetNetworkSpec *spec, NetIpv4 *out, StrBuf *err)
{
    _cleanup_free_ NetIpv4 *have = NULL;
    size_t n = 0;
    int r = net_ipv4_addr_list(spec->bridge, &have, &n);
    if (r < 0)
        return net_network_fail(err, r, "reading addresses", spec->bridge);
    for (size_t i = 0; i < n; i++) {
        if (!spec->subnet ||
            (have[i].prefix == spec->subnet->prefix && net_ipv4_overlap(&have[i], spec->subnet))) {
            *out = have[i];
            return 0;
        }
    }
    if (n > 0) {
        char a[32], b[32];
        net_ipv4_format(&have[0], a);
        net_ipv4_format(spec->subnet, b);
        if (err)
            strbuf_addf(err,
                        "bridge %s already has address %s, not in the requested subnet %s; "
                        "destroy the network first",
                        spec->bridge, a, b);
        return -EADDRINUSE;
    }
    NetIpv4 subnet;
    r = net_ipv4_pick_subnet(spec->subnet, spec->bridge, spec->avoid, spec->n_avoid, &subnet);
    if (r == 0 && spec->subnet && spec->subnet_fixed &&
        (subnet.prefix != spec->subnet->prefix || !net_ipv4_overlap(&subnet, spec->subnet)))
        r = -EADDRINUSE;
    if (r < 0) {
        if (err) {
            if (r == -EADDRINUSE && spec->subnet) {
                char b[32];
                net_ipv4_format(spec->subnet, b);
                strbuf_addf(err,
                            "subnet %s for bridge %s collides with a route or address on this "
                            "host; choose another subnet",
                            b, spec->bridge);
            } else {
                net_network_fail(err, r, "choosing a subnet", spec->bridge);
            }
        }
        return r;
    }
    NetIpv4 addr = {net_ipv4_add(net_ipv4_network(&subnet), 1), subnet.prefix};
    r = net_ipv4_addr_add(spec->bridge, &addr);
    if (r < 0)
        return net_network_fail(err, r, "adding the address", spec->bridge);
    *out = addr;
    return 0;
}

int net_network_start(const NetNetworkSpec *spec, NetNetworkStatus *status, StrBuf *err)
{
    memset(status, 0, sizeof(*status));
    if (!spec || !net_link_name_valid(spec->bridge) || spec->mode < 0 ||
        spec->mode >= NET_MODE__MAX) {
        if (err)
            strbuf_adds(err, "invalid network specification (bridge name or mode)");
        return -EINVAL;
    }
    const char *br = spec->bridge;
    bool nat = spec->mode == NET_MODE_NAT;
    bool dhcp = nat || (spec->mode == NET_MODE_INTERNAL && spec->dhcp);
    bool want_addr = nat || (spec->mode == NET_MODE_INTERNAL && (spec->has_address || dhcp));
    if (dhcp && (!spec->run_dir || !*spec->run_dir)) {
        if (err)
            strbuf_addf(err, "network bridge %s needs a run directory for dnsmasq", br);
        return -EINVAL;
    }
    NetLinkInfo up;
    if (spec->mode == NET_MODE_BRIDGED) {
        if (!spec->uplink || net_link_get(spec->uplink, &up) < 0) {
            if (err)
                strbuf_addf(err, "bridged network %s needs an existing NIC to bridge (got %s)", br,
                            spec->uplink ? spec->uplink : "none");
            return -ENODEV;
        }
        if (strcmp(up.kind, "bridge") == 0 || strcmp(spec->uplink, br) == 0) {
            if (err)
                strbuf_addf(err, "%s is a bridge, not a NIC", spec->uplink);
            return -EINVAL;
        }
        _cleanup_free_ NetIpv4 *addrs = NULL;
        size_t na = 0;
        if (net_ipv4_addr_list(spec->uplink, &addrs, &na) == 0 && na > 0) {
            char a[32];
            net_ipv4_format(&addrs[0], a);
            if (err)
                strbuf_addf(err,
                            "NIC %s carries the host address %s; bridging it would cut the host "
                            "off: move the address or choose a NIC without one",
                            spec->uplink, a);
            return -EBUSY;
        }
    }

    int r = net_bridge_create(br, spec->mtu ? spec->mtu : 1500);
    if (r < 0) {
        if (err && r == -EEXIST)
            strbuf_addf(err, "%s exists and is not a bridge; choose another bridge name", br);
        else
            net_network_fail(err, r, "creating the bridge", br);
        return r;
    }

    if (spec->mode == NET_MODE_BRIDGED) {
        /* Nothing host-internal remains from an earlier mode. */
        if (spec->run_dir)
            net_dnsmasq_stop(spec->run_dir, br);
        net_nft_network_remove(br, NULL);
        r = net_bridge_add_port(br, spec->uplink);
        if (r == 0)
            r = net_link_set_up(spec->uplink, true);
        if (r < 0)
            return net_network_fail(err, r, "attaching the NIC", br);
        snprintf(status->uplink, sizeof(status->uplink), "%s", spec->uplink);
        return 0;
    }

    if (want_addr) {
        r = net_network_address(spec, &status->address, err);
        if (r < 0)
            return r;
        status->has_address = true;
    }
    if (nat) {
        if (spec->uplink && *spec->uplink)
            snprintf(status->uplink, sizeof(status->uplink), "%s", spec->uplink);
        else if (net_ipv4_default_route(status->uplink, NULL) < 0)
            status->uplink[0] = '\0'; /* no default route: masquerade out of anything */
        r = net_ipv4_enable_forwarding();
        if (r < 0)
            return net_network_fail(err, r, "enabling IPv4 forwarding", br);
    }
    _cleanup_strbuf_ StrBuf nerr = STRBUF_INIT;
    NetIpv4 subnet = {net_ipv4_network(&status->address), status->address.prefix};
    r = net_nft_network_add(br, nat ? NET_NFT_NAT : NET_NFT_ISOLATED,
                            status->has_address ? &subnet : NULL, status->uplink, &nerr);
    if (r < 0) {
        if (err)
            strbuf_addf(err, "installing nftables rules for network bridge %s failed: %s", br,
                        nerr.buf);
        return r;
    }
    if (dhcp) {
        NetDnsmasqConfig dc = {
            .bridge = br,
            .run_dir = spec->run_dir,
            .address = status->address,
            .router = nat,
            .dns_upstream = nat,
        };
        r = net_dnsmasq_start(&dc, &status->dnsmasq_pid, &status->dnsmasq_adopted, err);
        if (r < 0)
            return r;
    } else if (spec->run_dir) {
        net_dnsmasq_stop(spec->run_dir, br);
    }
    return 0;
}

int net_network_stop(const char *bridge, const char *run_dir, StrBuf *err)
{
    if (!net_link_name_valid(bridge))
        return -EINVAL;
    int first = 0, r;
    if (run_dir && (r = net_dnsmasq_stop(run_dir, bridge)) < 0) {
        first = first ? first : r;
        net_network_fail(err, r, "stopping dnsmasq", bridge);
    }
    _cleanup_strbuf_ StrBuf nerr = STRBUF_INIT;
    if ((r = net_nft_network_remove(bridge, &nerr)) < 0) {
        first = first ? first : r;
        if (err)
            strbuf_addf(err, "%sremoving nftables rules for %s failed: %s", err->len ? "; " : "",
                        bridge, nerr.buf);
    }
    if ((r = net_bridge_delete(bridge)) < 0) {
        first = first ? first : r;
        if (err && err->len)
            strbuf_adds(err, "; ");
        net_network_fail(err, r, "deleting the bridge", bridge);
    }
    return first;
}
