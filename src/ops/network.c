/*
 * The network class: creation gives a network its bridge (xapi<N>, as
 * XenServer names internal networks, unless one is asked for); destruction
 * refuses while VIFs or PIFs use it and takes the bridge down. Networks come
 * up on the host when a VIF needs them (vmnet.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "ops/ops.h"
#include "ops/vmnet.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

static bool bridge_taken(Db *db, const DbObj *self, const char *bridge)
{
    size_t n;
    DbObj *const *nets = db_list(db, XS_CLASS_NETWORK, &n);
    for (size_t i = 0; i < n; i++)
        if (nets[i] != self && !nets[i]->deleted &&
            strcmp(db_str(nets[i], F_NETWORK_BRIDGE), bridge) == 0)
            return true;
    return false;
}

static bool create_fixup(OpsCtx *ctx, DbTxn *txn, DbObj *net, XsError **errp)
{
    Db *db = db_txn_db(txn);
    const char *bridge = db_str(net, F_NETWORK_BRIDGE);
    if (!*bridge) {
        for (int i = 0; i < 10000; i++) {
            char b[16];
            snprintf(b, sizeof(b), "xapi%d", i);
            if (!bridge_taken(db, net, b) && !net_link_exists(b)) {
                db_set_str(txn, net, F_NETWORK_BRIDGE, b);
                break;
            }
        }
        bridge = db_str(net, F_NETWORK_BRIDGE);
    }
    if (!net_link_name_valid(bridge) || bridge_taken(db, net, bridge)) {
        xs_err_invalid_value(errp, "bridge", bridge);
        return false;
    }
    int64_t mtu = db_int(net, F_NETWORK_MTU);
    if (mtu < 68 || mtu > 65535) {
        char v[24];
        snprintf(v, sizeof(v), "%ld", (long)mtu);
        xs_err_invalid_value(errp, "MTU", v);
        return false;
    }
    return true;
}

bool ops_network_create(OpsCtx *ctx, const XsValue *args, char **ret, XsError **errp)
{
    return ops_create_from_record(ctx, &xs_class_network, args, create_fixup, ret, errp);
}

bool ops_network_destroy(OpsCtx *ctx, const char *self, XsError **errp)
{
    DbTxn *txn = db_begin(ctx->db);
    DbObj *net = db_get_class(ctx->db, XS_CLASS_NETWORK, self);
    const char *def = xv_struct_get_string(&net->fields[F_NETWORK_OTHER_CONFIG], "hyperxe-default");
    if (def && strcmp(def, "true") == 0) {
        db_abort(txn);
        xs_err_operation_not_allowed(errp, "The default network of the host cannot be "
                                           "destroyed.");
        return false;
    }
    size_t nv = db_backref_count(net, F_NETWORK_VIFS);
    if (nv) {
        StrBuf sb = STRBUF_INIT;
        for (size_t i = 0; i < nv; i++)
            strbuf_addf(&sb, "%s%s", i ? "," : "", db_backref(net, F_NETWORK_VIFS, i)->ref);
        db_abort(txn);
        xs_err_network_contains_vif(errp, sb.buf);
        strbuf_release(&sb);
        return false;
    }
    size_t np = db_backref_count(net, F_NETWORK_PIFS);
    if (np) {
        char *p = xstrdup(db_backref(net, F_NETWORK_PIFS, 0)->ref);
        db_abort(txn);
        xs_err_network_contains_pif(errp, p);
        free(p);
        return false;
    }
    char *bridge = xstrdup(db_str(net, F_NETWORK_BRIDGE));
    db_delete(txn, net);
    bool ok = db_commit(txn, errp);
    if (ok)
        vmnet_network_down(ctx->env, bridge);
    free(bridge);
    return ok;
}
