/*
 * Networks and VIFs on the host (over src/net): a network record is a Linux
 * bridge brought up on demand, each plugged VIF a tap on it; where bridges
 * cannot be made (or hyperxed --user-networking), VIFs use QEMU user-mode
 * networking instead and say so in their other_config.
 *
 * A network's other_config chooses what it is:
 *   hyperxe-default=true     the default network (xenbr0): NAT to the host's
 *                            uplink with DHCP, as libvirt's default network
 *   hyperxe-mode=nat|internal|bridged   (default internal)
 *   hyperxe-uplink=<NIC>     bridged: the NIC made a port of the bridge;
 *                            nat: the interface to masquerade out of
 *   hyperxe-subnet=a.b.c.d/n the bridge's subnet (nat; internal with dhcp)
 *   hyperxe-dhcp=true        internal: an address on the bridge and DHCP
 * and gets hyperxe-address (the bridge's address) once it is up.
 */
#ifndef HX_OPS_VMNET_H
#define HX_OPS_VMNET_H

#include <stdbool.h>

#include "ops/ops.h"

/* Decides at start whether bridges can be made (sets env->user_networking
 * and its reason if not), then brings up the default network. */
void vmnet_startup(HxEnv *env);
/* Brings the network up (idempotent); HOST_CANNOT_ATTACH_NETWORK on failure. */
bool vmnet_network_up(OpsCtx *ctx, const char *net_ref, XsError **errp);
/* Tears a network's bridge down (its dnsmasq and rules too). */
void vmnet_network_down(HxEnv *env, const char *bridge);
/* The whole plug of a VIF's tap into bridge. */
bool vmnet_tap_plug(OpsCtx *ctx, const char *tap, const char *bridge, unsigned mtu,
                    XsError **errp);
void vmnet_tap_unplug(const char *tap);
/* The one-line note for other_config of VIFs on user-mode networking. */
const char *vmnet_user_reason(HxEnv *env);

#endif
