/*
 * Host networking for VMs: the public interface of src/net.
 *
 * A XenServer network is a Linux bridge here ("xenbr0" for the default
 * network), and every VIF of a running VM is a persistent tap device attached
 * to that bridge, which QEMU opens by name (-netdev tap,ifname=...,script=no;
 * never vhost). A network is one of
 *   - NAT:      host-internal bridge with an address, IPv4 forwarding and
 *               masquerading out of the host's uplink, DHCP and DNS from a
 *               dnsmasq of its own (libvirt's "default" network);
 *   - internal: host-internal bridge, no forwarding in or out, optionally with
 *               an address and DHCP;
 *   - bridged:  a physical NIC is a port of the bridge (guests on the LAN).
 * Where this process cannot make bridges and taps, net_cap_check() says why,
 * and the VM side falls back to QEMU user-mode networking.
 *
 * This layer knows nothing about XenAPI or the database: callers pass plain
 * C values (names, numbers, addresses) and get -errno back, plus a message in
 * a StrBuf where the reason is not obvious from the errno. Nothing here
 * keeps state in memory between calls: the kernel (links, addresses, nftables)
 * and the run directory (dnsmasq files) are the state, so every "create" is
 * idempotent and a restarted daemon picks up where the last one left off.
 *
 * Function families (one source file each, named by the second word):
 *   net_mac_*      MAC addresses: random, derived from a VM's mac_seed, parsing
 *   net_link_*     any network interface: look-up, up/down, MTU, master, delete
 *   net_bridge_*   bridges and their ports
 *   net_tap_*      persistent taps and their names
 *   net_ipv4_*     addresses, routes, forwarding, picking a free subnet
 *   net_nft_*      the nftables table "inet hyperxe" (NAT and isolation)
 *   net_dnsmasq_*  one dnsmasq per network with DHCP; lease look-up
 *   net_hostif_*   the host's NICs, for PIF records
 *   net_cap_*      can this process make bridges and taps at all?
 *   net_network_*  a whole network brought up or down in one call
 * Interface names are at most NET_IFNAME_MAX characters (IFNAMSIZ - 1).
 * docs/net.md has the design, the naming scheme and the nftables layout.
 */
#ifndef HX_NET_NET_H
#define HX_NET_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/strbuf.h"

#define NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */

/* ------------------------------------------------------------------------ */
/* MAC addresses (mac.c)                                                     */

#define NET_MAC_STRLEN 18 /* "xx:xx:xx:xx:xx:xx" and NUL */

typedef struct NetMac {
    uint8_t b[6];
} NetMac;

/* A random locally administered unicast MAC (first octet: bit 1 set, bit 0 clear). */
void net_mac_random(NetMac *mac);

/* Largest VIF device number net_mac_from_seed() accepts (its cost grows with it). */
#define NET_MAC_SEED_DEVICE_MAX 65535u

/*
 * The MAC XenServer gives VIF `device` of a VM whose other_config has
 * mac_seed=seed: h1 = MD5 applied 2*device+1 times to the seed, h2 = MD5(h1),
 * MAC = h1[0..3] h2[1] h2[2], then made locally administered and unicast.
 * Same seed and device give the same MAC on every host. Returns 0, or
 * -ERANGE if device > NET_MAC_SEED_DEVICE_MAX.
 */
int net_mac_from_seed(const char *seed, unsigned device, NetMac *mac);

/*
 * Parses a user-given MAC: six groups of two hex digits separated by ':' (or
 * all by '-'), either case. Refuses multicast/broadcast addresses (bit 0 of
 * the first octet) and 00:00:00:00:00:00, which no NIC can use. Returns 0 or
 * -EINVAL; *why (if why is not NULL) then says what is wrong, for MAC_INVALID.
 */
int net_mac_parse(const char *s, NetMac *mac, const char **why);

/* Formats as lowercase "xx:xx:xx:xx:xx:xx". */
void net_mac_format(const NetMac *mac, char out[NET_MAC_STRLEN]);

/* net_mac_parse() then net_mac_format(): the canonical form, or -EINVAL. */
int net_mac_normalize(const char *s, char out[NET_MAC_STRLEN], const char **why);

bool net_mac_equal(const NetMac *a, const NetMac *b);

/* ------------------------------------------------------------------------ */
/* Any interface (link.c), through rtnetlink                                 */

typedef struct NetLinkInfo {
    char name[NET_IFNAME_MAX + 1];
    int index;
    unsigned arp_type; /* ARPHRD_ETHER for Ethernet-like links (taps too) */
    char kind[32];     /* "bridge", "tun", "veth", ...; "" for a plain NIC */
    int master_index;  /* bridge it is a port of, 0 if none */
    unsigned mtu;
    bool up;      /* administratively up (IFF_UP) */
    bool carrier; /* lower layer up (IFF_LOWER_UP) */
    bool has_mac;
    NetMac mac;
    bool has_parent_dev; /* backed by a bus device (a physical NIC) */
} NetLinkInfo;

/* Valid interface name: 1..15 characters, no '/', ':', whitespace; not "." or "..". */
bool net_link_name_valid(const char *name);

/* Fills info for name. -ENODEV if there is no such interface. */
int net_link_get(const char *name, NetLinkInfo *info);
/* Like net_link_get() by index. */
int net_link_get_by_index(int index, NetLinkInfo *info);
/* All interfaces, in index order; *out is malloc'd (free it), *n its length. */
int net_link_list(NetLinkInfo **out, size_t *n);
bool net_link_exists(const char *name);
int net_link_set_up(const char *name, bool up);
int net_link_set_mtu(const char *name, unsigned mtu);
/* Makes name a port of master, or of no bridge if master is NULL. */
int net_link_set_master(const char *name, const char *master);
/* Deletes the interface; 0 if it did not exist. */
int net_link_delete(const char *name);

/* ------------------------------------------------------------------------ */
/* Bridges (bridge.c)                                                        */

/*
 * Creates bridge name (STP off, forwarding delay 0, a fixed random local MAC
 * so that it does not change as ports come and go) with the given MTU (0:
 * kernel default), and brings it up. Idempotent: an existing bridge of that
 * name is kept (its MTU set, brought up). -EEXIST if name exists and is not a
 * bridge, -EPERM without CAP_NET_ADMIN.
 */
int net_bridge_create(const char *name, unsigned mtu);
/* Deletes the bridge (its ports are detached, not deleted). 0 if absent,
 * -EINVAL if name is not a bridge. */
int net_bridge_delete(const char *name);
bool net_bridge_exists(const char *name);
/* Attaches/detaches port (idempotent). -ENODEV if either is missing;
 * detaching a port that is on another bridge is -EINVAL. */
int net_bridge_add_port(const char *bridge, const char *port);
int net_bridge_remove_port(const char *bridge, const char *port);
/* The names of the bridge's ports, sorted: a NULL-terminated malloc'd
 * vector the caller frees with each element (strvfreep in util/cleanup.h). */
int net_bridge_list_ports(const char *bridge, char ***ports);

/* ------------------------------------------------------------------------ */
/* Taps (tap.c)                                                              */

/*
 * Tap naming: "vif<domid>.<device>" as Xen names its VIF backends, e.g.
 * vif12.0. domid is the VM's small running number, device the VIF device.
 * Returns 0, or -ENAMETOOLONG if it would not fit in 15 characters (domid and
 * device together may have at most 11 digits).
 */
int net_tap_name(unsigned domid, unsigned device, char name[NET_IFNAME_MAX + 1]);
/* The reverse, for reconciling taps left from before a restart. */
bool net_tap_name_parse(const char *name, unsigned *domid, unsigned *device);

/*
 * Creates a persistent tap (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, TUNSETPERSIST)
 * owned by uid (or by nobody in particular if uid is -1). Idempotent: an
 * existing tap of that name is kept. -EEXIST if name exists as another kind.
 */
int net_tap_create(const char *name, int uid);
/*
 * The whole VIF plug: create the tap (if needed), set its MTU (0: leave),
 * attach it to bridge and bring it up. QEMU then opens it by name.
 */
int net_tap_plug(const char *name, const char *bridge, unsigned mtu, int uid);
/* Deletes the tap (persistent or not); 0 if absent, -EINVAL if not a tap. */
int net_tap_delete(const char *name);

/* ------------------------------------------------------------------------ */
/* IPv4 (ipv4.c)                                                             */

/* An IPv4 network or interface address with its prefix length; addr is in
 * network byte order. */
typedef struct NetIpv4 {
    struct in_addr addr;
    unsigned prefix;
} NetIpv4;

/* Parses "a.b.c.d/n" (or "a.b.c.d", prefix 32). -EINVAL if malformed. */
int net_ipv4_parse(const char *s, NetIpv4 *out);
/* Formats as "a.b.c.d/n". */
void net_ipv4_format(const NetIpv4 *a, char out[32]);
/* The network (host bits cleared) and the broadcast address of a. */
struct in_addr net_ipv4_network(const NetIpv4 *a);
struct in_addr net_ipv4_broadcast(const NetIpv4 *a);
bool net_ipv4_overlap(const NetIpv4 *a, const NetIpv4 *b);
/* a + n (host order arithmetic), e.g. the first host of a network is +1. */
struct in_addr net_ipv4_add(struct in_addr a, uint32_t n);

/* Adds addr/prefix to ifname (idempotent). */
int net_ipv4_addr_add(const char *ifname, const NetIpv4 *addr);
/* The IPv4 addresses of ifname (malloc'd array; free it). */
int net_ipv4_addr_list(const char *ifname, NetIpv4 **out, size_t *n);

/* Interface and gateway of the IPv4 default route (main table, lowest metric).
 * -ENOENT if there is none. gw is 0.0.0.0 for a device route. */
int net_ipv4_default_route(char ifname[NET_IFNAME_MAX + 1], struct in_addr *gw);

/*
 * Picks a subnet for a host-internal bridge that collides with no route and
 * no address on this host (other than those on `own_bridge`, which may be
 * NULL) nor with any of avoid[0..n_avoid). Tries `preferred` first (if not
 * NULL), then 192.168.122.0/24 .. 192.168.254.0/24, then 10.122.0.0/24 ..
 * 10.254.0.0/24. -EADDRINUSE if all collide.
 */
int net_ipv4_pick_subnet(const NetIpv4 *preferred, const char *own_bridge, const NetIpv4 *avoid,
                         size_t n_avoid, NetIpv4 *out);

/* Sets /proc/sys/net/ipv4/ip_forward to 1 (no-op if already). */
int net_ipv4_enable_forwarding(void);

/* ------------------------------------------------------------------------ */
/* nftables (nft.c): table "inet hyperxe", one set of base chains per bridge */

typedef enum {
    NET_NFT_NAT,      /* guests reach out (masqueraded), nothing new reaches in */
    NET_NFT_ISOLATED, /* nothing is forwarded to or from the bridge */
    NET_NFT__MAX,
} NetNftMode;

/* Name of the table hyperxe owns. */
#define NET_NFT_TABLE "hyperxe"

/*
 * Installs (or replaces) the rules of one network, atomically: forwarding
 * policy for `bridge` per mode, DHCP and DNS from the bridge to the host
 * accepted, and for NET_NFT_NAT masquerading of `subnet` out of `uplink` (or
 * out of any interface but the bridge if uplink is NULL or ""). Creates the
 * table if needed. err gets nft's message on failure.
 */
int net_nft_network_add(const char *bridge, NetNftMode mode, const NetIpv4 *subnet,
                        const char *uplink, StrBuf *err);
/* Removes one network's rules (idempotent); removes the table when it was
 * the last network in it. */
int net_nft_network_remove(const char *bridge, StrBuf *err);
/* True if the network's rules are installed. */
bool net_nft_network_present(const char *bridge);
/* Removes the whole table (idempotent). */
int net_nft_table_remove(StrBuf *err);

/* ------------------------------------------------------------------------ */
/* dnsmasq (dnsmasq.c)                                                       */

#define NET_DNSMASQ_PATH "/usr/sbin/dnsmasq"

typedef struct NetDnsmasqConfig {
    const char *bridge;         /* the only interface it serves */
    const char *run_dir;        /* holds dnsmasq-<bridge>.{conf,pid,leases,log} */
    NetIpv4 address;            /* the bridge's address (e.g. 192.168.122.1/24) */
    struct in_addr range_start; /* DHCP pool; both 0: .2 .. last host of the subnet */
    struct in_addr range_end;
    unsigned lease_seconds; /* 0: 3600 */
    bool router;            /* offer the bridge address as default gateway */
    bool dns_upstream;      /* forward DNS to /etc/resolv.conf's servers;
                             * false: answer only local names */
    const char *domain;     /* NULL: none */
    const char *binary;     /* NULL: NET_DNSMASQ_PATH */
} NetDnsmasqConfig;

/*
 * Makes sure a dnsmasq with exactly this configuration runs for the bridge.
 * If one from an earlier start (even by another process) is running with the
 * same configuration, it is adopted (*adopted = true) rather than started a
 * second time; one with another configuration is stopped and replaced.
 * dnsmasq runs detached (own session), so it survives the daemon. *pid gets
 * its pid (either may be NULL). err says what went wrong.
 */
int net_dnsmasq_start(const NetDnsmasqConfig *cfg, pid_t *pid, bool *adopted, StrBuf *err);
/* The pid of the running dnsmasq of bridge, or -ESRCH. */
pid_t net_dnsmasq_pid(const char *run_dir, const char *bridge);
/* Stops it (SIGTERM, then SIGKILL after 5 s) and removes its pid and conf
 * files; the lease file stays. 0 if it was not running. */
int net_dnsmasq_stop(const char *run_dir, const char *bridge);
/* The lease file's path (malloc'd). */
char *net_dnsmasq_lease_path(const char *run_dir, const char *bridge);
/*
 * The IPv4 addresses leased to mac according to the lease file at path,
 * newest expiry first: a NULL-terminated malloc'd vector (free with each
 * element), empty if none. -ENOENT if there is no lease file.
 */
int net_dnsmasq_lease_lookup(const char *lease_path, const NetMac *mac, char ***ips);

/* ------------------------------------------------------------------------ */
/* Host interfaces (hostif.c), for PIF records                               */

typedef struct NetHostIf {
    char device[NET_IFNAME_MAX + 1];
    NetMac mac;
    unsigned mtu;
    bool physical; /* a NIC on a bus, not a bridge/tap/veth/... */
    bool up;
    bool carrier;
    bool has_ipv4; /* first IPv4 address of the interface: */
    NetIpv4 ipv4;
    struct in_addr netmask;
    struct in_addr gateway; /* of the default route through it, else 0 */
    bool default_route;     /* carries the IPv4 default route */
} NetHostIf;

/*
 * The host's Ethernet interfaces, sorted by name: physical NICs only, or also
 * virtual ones (bridges, veth, ...; never loopback) if include_virtual.
 * *out is malloc'd; free it.
 */
int net_hostif_list(bool include_virtual, NetHostIf **out, size_t *n);

/* ------------------------------------------------------------------------ */
/* Capability (cap.c)                                                        */

typedef struct NetCap {
    bool bridges;     /* bridges and taps can be made: use tap networking */
    char reason[256]; /* if not: why, one line, for the VIF's other_config */
} NetCap;

/* Checks CAP_NET_ADMIN, /dev/net/tun and rtnetlink; never changes anything. */
void net_cap_check(NetCap *cap);

/* ------------------------------------------------------------------------ */
/* Whole networks (network.c)                                                */

typedef enum {
    NET_MODE_NAT,
    NET_MODE_INTERNAL,
    NET_MODE_BRIDGED,
    NET_MODE__MAX,
} NetMode;

typedef struct NetNetworkSpec {
    const char *bridge; /* e.g. "xenbr0" */
    NetMode mode;
    unsigned mtu;        /* 0: 1500 */
    const char *run_dir; /* for dnsmasq's files (NAT, or INTERNAL with dhcp) */
    /* NAT and INTERNAL: */
    bool has_address;      /* NAT always has one; INTERNAL only if set */
    const NetIpv4 *subnet; /* preferred subnet, NULL: pick one */
    bool subnet_fixed;     /* fail with -EADDRINUSE rather than pick another */
    const NetIpv4 *avoid;  /* subnets of other networks not to collide with */
    size_t n_avoid;
    bool dhcp; /* NAT always; INTERNAL only if set (needs an address) */
    /* NAT: uplink to masquerade out of; NULL: that of the default route now.
     * BRIDGED: the NIC to make a port of the bridge (required). */
    const char *uplink;
} NetNetworkSpec;

typedef struct NetNetworkStatus {
    bool has_address;
    NetIpv4 address; /* bridge address, e.g. 192.168.122.1/24 */
    char uplink[NET_IFNAME_MAX + 1];
    pid_t dnsmasq_pid; /* 0 if none */
    bool dnsmasq_adopted;
} NetNetworkStatus;

const char *net_mode_to_string(NetMode mode);
int net_mode_from_string(const char *s); /* -EINVAL if unknown */

/*
 * Brings the network up, idempotently: bridge (MTU, up), then by mode the
 * address (an address already on the bridge is kept), forwarding, nftables
 * rules, dnsmasq, or the NIC as a port. On failure what this call made is
 * left for net_network_stop() to remove; err says what failed and why.
 */
int net_network_start(const NetNetworkSpec *spec, NetNetworkStatus *status, StrBuf *err);
/* Tears it down: dnsmasq, nftables rules, bridge. Idempotent. */
int net_network_stop(const char *bridge, const char *run_dir, StrBuf *err);

#endif
