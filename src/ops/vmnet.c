/*
 * Networks and VIFs on the host (see vmnet.h): the network record turned
 * into a NetNetworkSpec for net_network_start(), serialized by one lock
 * (bring-ups are rare and quick); taps plugged and unplugged for VIFs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "ops/vmnet.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

static pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;

const char *vmnet_user_reason(HxEnv *env)
{
    return env->user_networking_reason ? env->user_networking_reason
                                       : "QEMU user-mode networking (hyperxed --user-networking)";
}

static bool oc_true(const XsValue *oc, const char *key)
{
    const char *v = xv_struct_get_string(oc, key);
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0);
}

typedef struct NetPlan {
    char bridge[NET_IFNAME_MAX + 1];
    NetMode mode;
    unsigned mtu;
    bool dhcp;
    bool has_subnet;
    NetIpv4 subnet;
    char *uplink;
    NetIpv4 *avoid;
    size_t n_avoid;
} NetPlan;

static void plan_release(NetPlan *p)
{
    free(p->uplink);
    free(p->avoid);
}

/* Reads the network's record (read lock held). */
static bool plan_from_record(Db *db, DbObj *net, NetPlan *p, XsError **errp)
{
    memset(p, 0, sizeof(*p));
    const char *bridge = db_str(net, F_NETWORK_BRIDGE);
    if (!net_link_name_valid(bridge)) {
        xs_err_invalid_value(errp, "bridge", bridge);
        return false;
    }
    snprintf(p->bridge, sizeof(p->bridge), "%s", bridge);
    const XsValue *oc = &net->fields[F_NETWORK_OTHER_CONFIG];
    const char *mode = xv_struct_get_string(oc, "hyperxe-mode");
    if (oc_true(oc, "hyperxe-default"))
        p->mode = NET_MODE_NAT;
    else if (mode && net_mode_from_string(mode) >= 0)
        p->mode = (NetMode)net_mode_from_string(mode);
    else if (mode && *mode) {
        xs_err_invalid_value(errp, "other-config:hyperxe-mode", mode);
        return false;
    } else
        p->mode = NET_MODE_INTERNAL;
    int64_t mtu = db_int(net, F_NETWORK_MTU);
    p->mtu = mtu >= 68 && mtu <= 65535 ? (unsigned)mtu : 1500;
    p->dhcp = p->mode == NET_MODE_NAT || oc_true(oc, "hyperxe-dhcp");
    const char *sub = xv_struct_get_string(oc, "hyperxe-subnet");
    if (!sub || !*sub)
        sub = xv_struct_get_string(oc, "hyperxe-address");
    if (sub && *sub) {
        if (net_ipv4_parse(sub, &p->subnet) < 0 || p->subnet.prefix < 8 ||
            p->subnet.prefix > 30) {
            xs_err_invalid_value(errp, "other-config:hyperxe-subnet", sub);
            return false;
        }
        p->has_subnet = true;
    }
    const char *up = xv_struct_get_string(oc, "hyperxe-uplink");
    if (up && *up) {
        if (!net_link_name_valid(up)) {
            xs_err_invalid_value(errp, "other-config:hyperxe-uplink", up);
            return false;
        }
        p->uplink = xstrdup(up);
    }
    if (p->mode == NET_MODE_BRIDGED && !p->uplink) {
        xs_err_value_not_supported(errp, "other-config:hyperxe-uplink", "",
                                   "A bridged network needs the NIC to bridge to.");
        return false;
    }
    /* Other networks' subnets, so that none collides. */
    size_t n;
    DbObj *const *nets = db_list(db, XS_CLASS_NETWORK, &n);
    for (size_t i = 0; i < n; i++) {
        if (nets[i] == net)
            continue;
        const XsValue *o = &nets[i]->fields[F_NETWORK_OTHER_CONFIG];
        const char *s = xv_struct_get_string(o, "hyperxe-address");
        if (!s || !*s)
            s = xv_struct_get_string(o, "hyperxe-subnet");
        NetIpv4 a;
        if (s && net_ipv4_parse(s, &a) == 0) {
            p->avoid = xreallocarray(p->avoid, p->n_avoid + 1, sizeof(NetIpv4));
            p->avoid[p->n_avoid++] = a;
        }
    }
    return true;
}

bool vmnet_network_up(OpsCtx *ctx, const char *net_ref, XsError **errp)
{
    HxEnv *env = ctx->env;
    if (env->user_networking)
        return true;
    NetPlan p;
    db_read_lock(ctx->db);
    DbObj *net = db_get_class(ctx->db, XS_CLASS_NETWORK, net_ref);
    bool ok = net && plan_from_record(ctx->db, net, &p, errp);
    db_read_unlock(ctx->db);
    if (!net) {
        xs_err_handle_invalid(errp, "network", net_ref);
        return false;
    }
    if (!ok)
        return false;
    NetNetworkSpec spec = {
        .bridge = p.bridge,
        .mode = p.mode,
        .mtu = p.mtu,
        .run_dir = env->run_dir,
        .has_address = p.mode == NET_MODE_NAT || p.dhcp,
        .subnet = p.has_subnet ? &p.subnet : NULL,
        .avoid = p.avoid,
        .n_avoid = p.n_avoid,
        .dhcp = p.dhcp,
        .uplink = p.uplink,
    };
    NetNetworkStatus st = {0};
    StrBuf err = STRBUF_INIT;
    pthread_mutex_lock(&net_lock);
    int r = net_network_start(&spec, &st, &err);
    pthread_mutex_unlock(&net_lock);
    if (r < 0) {
        log_error("network %s (bridge %s): %s", net_ref, p.bridge, err.buf);
        strbuf_release(&err);
        plan_release(&p);
        xs_err_host_cannot_attach_network(errp, env->host_ref, net_ref);
        return false;
    }
    strbuf_release(&err);
    if (st.has_address) {
        char a[32];
        net_ipv4_format(&st.address, a);
        DbTxn *txn = db_begin(ctx->db);
        net = db_get_class(ctx->db, XS_CLASS_NETWORK, net_ref);
        const char *cur =
            net ? xv_struct_get_string(&net->fields[F_NETWORK_OTHER_CONFIG], "hyperxe-address")
                : NULL;
        if (net && (!cur || strcmp(cur, a) != 0))
            db_map_set(txn, net, F_NETWORK_OTHER_CONFIG, "hyperxe-address", a);
        db_commit(txn, NULL);
        log_info("network %s is up on %s (%s, %s)", p.bridge, a, net_mode_to_string(p.mode),
                 st.dnsmasq_pid ? "DHCP" : "no DHCP");
    } else {
        log_info("network %s is up (%s)", p.bridge, net_mode_to_string(p.mode));
    }
    plan_release(&p);
    return true;
}

void vmnet_network_down(HxEnv *env, const char *bridge)
{
    if (env->user_networking || !net_link_name_valid(bridge))
        return;
    StrBuf err = STRBUF_INIT;
    pthread_mutex_lock(&net_lock);
    if (net_network_stop(bridge, env->run_dir, &err) < 0)
        log_warn("cannot take network %s down: %s", bridge, err.buf);
    pthread_mutex_unlock(&net_lock);
    strbuf_release(&err);
}

void vmnet_startup(HxEnv *env)
{
    if (!env->user_networking) {
        NetCap cap;
        net_cap_check(&cap);
        if (!cap.bridges) {
            env->user_networking = true;
            env->user_networking_reason = xstrdup(cap.reason);
            log_warn("%s", cap.reason);
        }
    }
    if (env->user_networking) {
        log_info("VIFs use QEMU user-mode networking: no bridges are made");
        return;
    }
    OpsCtx ctx = {.env = env, .db = env->db, .role = XS_ROLE_POOL_ADMIN};
    db_read_lock(env->db);
    size_t n;
    DbObj *const *nets = db_list(env->db, XS_CLASS_NETWORK, &n);
    char **refs = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const XsValue *oc = &nets[i]->fields[F_NETWORK_OTHER_CONFIG];
        bool used = false;
        for (size_t j = 0; j < db_backref_count(nets[i], F_NETWORK_VIFS); j++)
            used |= db_bool(db_backref(nets[i], F_NETWORK_VIFS, j), F_VIF_CURRENTLY_ATTACHED);
        if (oc_true(oc, "hyperxe-default") || used)
            refs[k++] = xstrdup(nets[i]->ref);
    }
    db_read_unlock(env->db);
    for (size_t i = 0; i < k; i++) {
        XsError *err = NULL;
        if (!vmnet_network_up(&ctx, refs[i], &err))
            log_error("cannot bring network %s up at start", refs[i]);
        xs_error_free(err);
        free(refs[i]);
    }
    free(refs);
}

bool vmnet_tap_plug(OpsCtx *ctx, const char *tap, const char *bridge, unsigned mtu,
                    XsError **errp)
{
    int r = net_tap_plug(tap, bridge, mtu, -1);
    if (r < 0) {
        log_error("cannot plug tap %s into %s: %s", tap, bridge, strerror(-r));
        xs_err_internal_error(errp, "cannot plug the VIF's tap into its bridge");
        return false;
    }
    return true;
}

void vmnet_tap_unplug(const char *tap)
{
    int r = net_tap_delete(tap);
    if (r < 0)
        log_warn("cannot delete tap %s: %s", tap, strerror(-r));
}
