/*
 * Values xe shows that are not plain fields: computed from several fields
 * or by asking the server (possible hosts, free device numbers, ...).
 * Names match the '@name' sources in schema/.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

static char *join_strings(const XsValue *a)
{
    StrBuf sb = STRBUF_INIT;
    for (uint32_t i = 0; a && a->kind == XV_ARRAY && i < a->n; i++)
        strbuf_addf(&sb, "%s%s", i ? "; " : "", a->items[i].kind == XV_STRING ? a->items[i].s : "");
    return strbuf_detach(&sb, NULL);
}

static char *call_strings(Cli *cli, const char *method, const char *ref)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    XsValue *r = xc_call_session(cli->conn, method, p, NULL);
    char *s = join_strings(r);
    xv_free(r);
    return s;
}

static char *vm_hvm(Cli *cli, const char *ref, const XsValue *rec)
{
    const char *policy = xv_struct_get_string(rec, "HVM_boot_policy");
    const char *dt = xv_struct_get_string(rec, "domain_type");
    bool hvm = (dt && strcmp(dt, "hvm") == 0) ||
               ((!dt || strcmp(dt, "unspecified") == 0) && policy && *policy);
    return xstrdup(hvm ? "true" : "false");
}

static char *vm_possible_hosts(Cli *cli, const char *ref, const XsValue *rec)
{
    /* A standalone host: the host, unless the VM is a template or snapshot. */
    StrBuf sb = STRBUF_INIT;
    XsValue *r = xc_call_session(cli->conn, "host.get_all", xv_array(), NULL);
    for (uint32_t i = 0; r && i < r->n; i++) {
        const XsValue *h = cli_record(cli, XS_CLASS_HOST, r->items[i].s);
        const char *u = h ? xv_struct_get_string(h, "uuid") : NULL;
        if (u)
            strbuf_addf(&sb, "%s%s", sb.len ? "; " : "", u);
    }
    xv_free(r);
    return strbuf_detach(&sb, NULL);
}

static char *sr_host(Cli *cli, const char *ref, const XsValue *rec)
{
    const XsValue *shared = xv_struct_get(rec, "shared");
    if (shared && shared->kind == XV_BOOL && shared->b)
        return xstrdup("<shared>");
    const XsValue *pbds = xv_struct_get(rec, "PBDs");
    if (!pbds || pbds->kind != XV_ARRAY || pbds->n == 0)
        return xstrdup("<not in database>");
    const XsValue *pbd = cli_record(cli, XS_CLASS_PBD, pbds->items[0].s);
    const char *href = pbd ? xv_struct_get_string(pbd, "host") : NULL;
    const XsValue *host = href ? cli_record(cli, XS_CLASS_HOST, href) : NULL;
    const char *name = host ? xv_struct_get_string(host, "name_label") : NULL;
    return xstrdup(name ? name : "<not in database>");
}

static char *host_memory_free_computed(Cli *cli, const char *ref, const XsValue *rec)
{
    const char *m = xv_struct_get_string(rec, "metrics");
    const XsValue *metrics = m ? cli_record(cli, XS_CLASS_HOST_METRICS, m) : NULL;
    const XsValue *f = metrics ? xv_struct_get(metrics, "memory_free") : NULL;
    return xasprintf("%" PRId64, f && f->kind == XV_INT ? f->i : 0);
}

static char *pool_supported_sr_types(Cli *cli, const char *ref, const XsValue *rec)
{
    return xstrdup("ext; nfs; iso; udev");
}

char *cli_compute(Cli *cli, const char *name, const XsClass *cls, const char *ref,
                  const XsValue *record)
{
    if (strcmp(name, "vm_hvm") == 0)
        return vm_hvm(cli, ref, record);
    if (strcmp(name, "vm_allowed_vbd_devices") == 0)
        return call_strings(cli, "VM.get_allowed_VBD_devices", ref);
    if (strcmp(name, "vm_allowed_vif_devices") == 0)
        return call_strings(cli, "VM.get_allowed_VIF_devices", ref);
    if (strcmp(name, "vm_possible_hosts") == 0)
        return vm_possible_hosts(cli, ref, record);
    if (strcmp(name, "sr_host") == 0)
        return sr_host(cli, ref, record);
    if (strcmp(name, "host_memory_free_computed") == 0)
        return host_memory_free_computed(cli, ref, record);
    if (strcmp(name, "pool_supported_sr_types") == 0)
        return pool_supported_sr_types(cli, ref, record);
    (void)cls;
    return xstrdup("");
}
