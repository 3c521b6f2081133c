/*
 * nftables rules for host-internal networks, in the table "inet hyperxe",
 * which nothing else writes to. Each network (bridge B) owns the base chains
 * forward-B, input-B and (NAT only) postrouting-B; a network's rules are
 * replaced in one atomic `nft -f -` transaction, and the table goes away with
 * its last network. The layout is described in docs/net.md.
 *
 * The rules are handed to the nft program (through spawn, never a shell)
 * rather than built with libnftables: the text is what an administrator
 * reads with `nft list table inet hyperxe`, it is logged on failure, and the
 * nft command is installed anyway. This file must not touch other tables.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/banned.h"

/* Bridge names go into chain names unquoted: keep them to a safe alphabet. */
static bool net_nft_name_ok(const char *bridge)
{
    if (!net_link_name_valid(bridge))
        return false;
    for (const char *p = bridge; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return (bridge[0] >= 'a' && bridge[0] <= 'z') || (bridge[0] >= 'A' && bridge[0] <= 'Z');
}

static int net_nft_run(const char *const *argv, const char *input, StrBuf *out, StrBuf *err)
{
    SpawnOptions o = {.timeout_ms = 20000};
    if (input) {
        o.input = input;
        o.input_len = strlen(input);
    }
    SpawnResult res;
    int r = spawn_run(argv, &o, &res);
    if (r < 0) {
        if (err)
            strbuf_addf(err, "cannot run nft (%s): install the nftables package", strerror(-r));
        spawn_result_release(&res);
        return r;
    }
    if (!spawn_result_ok(&res)) {
        if (err) {
            strbuf_adds(err, "nft ");
            spawn_result_describe(&res, err);
        }
        if (input)
            log_debug("nft input was:\n%s", input);
        spawn_result_release(&res);
        return -EIO;
    }
    if (out)
        strbuf_add(out, res.out.buf, res.out.len);
    spawn_result_release(&res);
    return 0;
}

static const char *const net_nft_hooks[][2] = {
    {"forward", "type filter hook forward priority filter; policy accept;"},
    {"input", "type filter hook input priority filter; policy accept;"},
    {"postrouting", "type nat hook postrouting priority srcnat; policy accept;"},
};

/* Script lines that remove bridge's chains whether or not they exist. */
static void net_nft_remove_script(StrBuf *sb, const char *bridge)
{
    strbuf_adds(sb, "add table inet " NET_NFT_TABLE "\n");
    for (size_t i = 0; i < sizeof(net_nft_hooks) / sizeof(net_nft_hooks[0]); i++) {
        const char *hook = net_nft_hooks[i][0], *spec = net_nft_hooks[i][1];
        strbuf_addf(sb, "add chain inet " NET_NFT_TABLE " %s-%s { %s }\n", hook, bridge, spec);
        strbuf_addf(sb, "flush chain inet " NET_NFT_TABLE " %s-%s\n", hook, bridge);
        strbuf_addf(sb, "delete chain inet " NET_NFT_TABLE " %s-%s\n", hook, bridge);
    }
}

int net_nft_network_add(const char *bridge, NetNftMode mode, const NetIpv4 *subnet,
                        const char *uplink, StrBuf *err)
{
    if (!net_nft_name_ok(bridge) || mode < 0 || mode >= NET_NFT__MAX)
        return -EINVAL;
    /* The uplink only appears inside a quoted string. */
    if (uplink && *uplink &&
        (!net_link_name_valid(uplink) || strchr(uplink, '"') || strchr(uplink, '\\')))
        return -EINVAL;
    if (mode == NET_NFT_NAT && !subnet)
        return -EINVAL;
    char net[32] = "";
    if (subnet) {
        NetIpv4 n = {net_ipv4_network(subnet), subnet->prefix};
        net_ipv4_format(&n, net);
    }
    const char *T = "inet " NET_NFT_TABLE;
    _cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
    net_nft_remove_script(&sb, bridge);

    /* Forwarding: replies may come back in; nothing new enters; guests may
     * leave (NAT: from their own subnet only, no spoofing). */
    strbuf_addf(&sb, "add chain %s forward-%s { %s }\n", T, bridge, net_nft_hooks[0][1]);
    strbuf_addf(&sb, "add rule %s forward-%s oifname \"%s\" ct state established,related accept\n",
                T, bridge, bridge);
    strbuf_addf(&sb, "add rule %s forward-%s oifname \"%s\" reject\n", T, bridge, bridge);
    if (mode == NET_NFT_NAT)
        strbuf_addf(&sb, "add rule %s forward-%s iifname \"%s\" ip saddr %s accept\n", T, bridge,
                    bridge, net);
    strbuf_addf(&sb, "add rule %s forward-%s iifname \"%s\" reject\n", T, bridge, bridge);

    /* The host's DHCP and DNS server for the bridge. */
    strbuf_addf(&sb, "add chain %s input-%s { %s }\n", T, bridge, net_nft_hooks[1][1]);
    strbuf_addf(&sb, "add rule %s input-%s iifname \"%s\" udp dport { 53, 67 } accept\n", T, bridge,
                bridge);
    strbuf_addf(&sb, "add rule %s input-%s iifname \"%s\" tcp dport 53 accept\n", T, bridge,
                bridge);

    if (mode == NET_NFT_NAT) {
        strbuf_addf(&sb, "add chain %s postrouting-%s { %s }\n", T, bridge, net_nft_hooks[2][1]);
        /* Multicast and broadcast stay local; everything else leaving the subnet is masqueraded. */
        strbuf_addf(&sb, "add rule %s postrouting-%s ip saddr %s ip daddr 224.0.0.0/24 return\n", T,
                    bridge, net);
        strbuf_addf(&sb, "add rule %s postrouting-%s ip saddr %s ip daddr 255.255.255.255 return\n",
                    T, bridge, net);
        if (uplink && *uplink)
            strbuf_addf(&sb,
                        "add rule %s postrouting-%s ip saddr %s ip daddr != %s oifname \"%s\" "
                        "masquerade\n",
                        T, bridge, net, net, uplink);
        else
            strbuf_addf(&sb,
                        "add rule %s postrouting-%s ip saddr %s ip daddr != %s oifname != \"%s\" "
                        "masquerade\n",
                        T, bridge, net, net, bridge);
    }
    const char *argv[] = {"nft", "-f", "-", NULL};
    return net_nft_run(argv, sb.buf, NULL, err);
}

/* Does the table still hold any chain? -ENOENT if there is no table. */
static int net_nft_table_has_chains(void)
{
    _cleanup_strbuf_ StrBuf out = STRBUF_INIT;
    const char *argv[] = {"nft", "-t", "list", "table", "inet", NET_NFT_TABLE, NULL};
    int r = net_nft_run(argv, NULL, &out, NULL);
    if (r < 0)
        return -ENOENT;
    return strstr(out.buf, "chain ") != NULL;
}

int net_nft_network_remove(const char *bridge, StrBuf *err)
{
    if (!net_nft_name_ok(bridge))
        return -EINVAL;
    if (net_nft_table_has_chains() == -ENOENT)
        return 0;
    _cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
    net_nft_remove_script(&sb, bridge);
    const char *argv[] = {"nft", "-f", "-", NULL};
    int r = net_nft_run(argv, sb.buf, NULL, err);
    if (r < 0)
        return r;
    if (net_nft_table_has_chains() == 0)
        return net_nft_table_remove(err);
    return 0;
}

bool net_nft_network_present(const char *bridge)
{
    if (!net_nft_name_ok(bridge))
        return false;
    char chain[64];
    snprintf(chain, sizeof(chain), "forward-%s", bridge);
    const char *argv[] = {"nft", "-t", "list", "chain", "inet", NET_NFT_TABLE, chain, NULL};
    return net_nft_run(argv, NULL, NULL, NULL) == 0;
}

int net_nft_table_remove(StrBuf *err)
{
    const char *script = "add table inet " NET_NFT_TABLE "\ndelete table inet " NET_NFT_TABLE "\n";
    const char *argv[] = {"nft", "-f", "-", NULL};
    return net_nft_run(argv, script, NULL, err);
}
