/*
 * xe commands for storage: SRs (sr-create, sr-destroy, sr-forget,
 * sr-introduce, sr-scan, sr-update), PBDs (pbd-create, pbd-destroy,
 * pbd-plug, pbd-unplug), VDIs (vdi-create, vdi-destroy, vdi-forget,
 * vdi-introduce, vdi-update, vdi-copy, vdi-clone, vdi-snapshot, vdi-resize,
 * vdi-import, vdi-export) and cd-list, with XenServer's parameters and
 * output. Imports and exports go over HTTP to /import_raw_vdi and
 * /export_raw_vdi with a progress bar on a terminal.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "client/transfer.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* ref of the object of class cls with uuid (printing the error). */
static char *ref_of(Cli *cli, const char *cls, const char *uuid)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, uuid);
    char *m = xasprintf("%s.get_by_uuid", cls);
    XsValue *r = cli_call(cli, m, p);
    free(m);
    if (!r)
        return NULL;
    char *ref = xstrdup(r->s);
    xv_free(r);
    return ref;
}

static char *uuid_of(Cli *cli, const char *cls, const char *ref)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    char *m = xasprintf("%s.get_uuid", cls);
    XsValue *r = cli_call(cli, m, p);
    free(m);
    if (!r)
        return NULL;
    char *u = xstrdup(r->s);
    xv_free(r);
    return u;
}

/* Prints the uuid of a new object of cls given its ref (consumed). */
static int print_new(Cli *cli, const char *cls, XsValue *ref)
{
    if (!ref)
        return 1;
    char *u = uuid_of(cli, cls, ref->s);
    xv_free(ref);
    if (!u)
        return 1;
    const char *items[] = {u};
    cli_print_list(cli, items, 1);
    free(u);
    return 0;
}

/* A map from the "name:key=value" parameters (also legacy "name-key=value"). */
static XsValue *map_param(Cli *cli, const char *name)
{
    XsValue *m = xv_struct();
    size_t nl = strlen(name);
    for (size_t i = 0; i < cli->nparams; i++) {
        const char *k = cli->params[i].key;
        if (strncmp(k, name, nl) == 0 && k[nl] == ':' && k[nl + 1])
            xv_struct_set_string(m, k + nl + 1, cli->params[i].value ? cli->params[i].value : "");
    }
    return m;
}

static bool bool_param(Cli *cli, const char *key, bool dflt, bool *out)
{
    const char *v = cli_param(cli, key);
    *out = dflt;
    if (!v)
        return true;
    if (!cli_parse_bool(v, out)) {
        cli_fail(cli, "Failed to parse parameter '%s': expecting a boolean (true or false)", key);
        return false;
    }
    return true;
}

static bool size_param(Cli *cli, const char *key, int64_t *out)
{
    const char *v = cli_param(cli, key);
    if (!v || !cli_parse_size(v, out) || *out < 0) {
        cli_fail(cli, "Failed to parse parameter '%s': expecting a size such as 10GiB, 512MiB "
                      "or a number of bytes", key);
        return false;
    }
    return true;
}

/* Simple "Class.message(ref of uuid=...)" commands. */
static int call_on_uuid(Cli *cli, const char *cls, const char *msg, bool async, const char *what)
{
    char *ref = ref_of(cli, cls, cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    free(ref);
    char *m = xasprintf("%s.%s", cls, msg);
    XsValue *r = async ? cli_call_async(cli, m, p, what) : cli_call(cli, m, p);
    free(m);
    if (!r)
        return 1;
    xv_free(r);
    return 0;
}

/* ---- SRs ------------------------------------------------------------------------------- */

static char *default_host(Cli *cli)
{
    const char *hu = cli_param(cli, "host-uuid");
    if (hu)
        return ref_of(cli, "host", hu);
    XsValue *pools = cli_call(cli, "pool.get_all", xv_array());
    if (!pools || pools->n == 0) {
        xv_free(pools);
        cli_fail(cli, "No pool found.");
        return NULL;
    }
    XsValue *p = xv_array();
    xv_array_push_string(p, pools->items[0].s);
    xv_free(pools);
    XsValue *m = cli_call(cli, "pool.get_master", p);
    if (!m)
        return NULL;
    char *r = xstrdup(m->s);
    xv_free(m);
    return r;
}

static int cmd_sr_create(Cli *cli, const CliCommand *cmd)
{
    bool shared;
    if (!bool_param(cli, "shared", false, &shared))
        return 1;
    int64_t psize = 0;
    if (cli_has(cli, "physical-size") && !size_param(cli, "physical-size", &psize))
        return 1;
    char *host = default_host(cli);
    if (!host)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, host);
    free(host);
    xv_array_push(p, map_param(cli, "device-config"));
    xv_array_push(p, xv_int(psize));
    xv_array_push_string(p, cli_param(cli, "name-label"));
    const char *desc = cli_param(cli, "name-description");
    xv_array_push_string(p, desc ? desc : "");
    xv_array_push_string(p, cli_param(cli, "type"));
    const char *ct = cli_param(cli, "content-type");
    xv_array_push_string(p, ct ? ct : "");
    xv_array_push(p, xv_bool(shared));
    xv_array_push(p, map_param(cli, "sm-config"));
    return print_new(cli, "SR", cli_call(cli, "SR.create", p));
}

static int cmd_sr_introduce(Cli *cli, const CliCommand *cmd)
{
    bool shared;
    if (!bool_param(cli, "shared", false, &shared))
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, cli_param(cli, "uuid"));
    xv_array_push_string(p, cli_param(cli, "name-label"));
    const char *desc = cli_param(cli, "name-description");
    xv_array_push_string(p, desc ? desc : "");
    xv_array_push_string(p, cli_param(cli, "type"));
    const char *ct = cli_param(cli, "content-type");
    xv_array_push_string(p, ct ? ct : "");
    xv_array_push(p, xv_bool(shared));
    xv_array_push(p, map_param(cli, "sm-config"));
    return print_new(cli, "SR", cli_call(cli, "SR.introduce", p));
}

static int cmd_sr_destroy(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "SR", "destroy", true, "Destroying SR");
}

static int cmd_sr_forget(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "SR", "forget", false, NULL);
}

static int cmd_sr_scan(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "SR", "scan", true, "Scanning SR");
}

static int cmd_sr_update(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "SR", "update", false, NULL);
}

/* ---- PBDs --------------------------------------------------------------------------------- */

static int cmd_pbd_create(Cli *cli, const CliCommand *cmd)
{
    char *host = ref_of(cli, "host", cli_param(cli, "host-uuid"));
    char *sr = host ? ref_of(cli, "SR", cli_param(cli, "sr-uuid")) : NULL;
    if (!sr) {
        free(host);
        return 1;
    }
    XsValue *rec = xv_struct();
    xv_struct_set_string(rec, "host", host);
    xv_struct_set_string(rec, "SR", sr);
    xv_struct_set(rec, "device_config", map_param(cli, "device-config"));
    xv_struct_set(rec, "other_config", xv_struct());
    free(host);
    free(sr);
    XsValue *p = xv_array();
    xv_array_push(p, rec);
    return print_new(cli, "PBD", cli_call(cli, "PBD.create", p));
}

static int cmd_pbd_destroy(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "PBD", "destroy", false, NULL);
}

static int cmd_pbd_plug(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "PBD", "plug", false, NULL);
}

static int cmd_pbd_unplug(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "PBD", "unplug", false, NULL);
}

/* ---- VDIs ------------------------------------------------------------------------------------ */

static int cmd_vdi_create(Cli *cli, const CliCommand *cmd)
{
    int64_t size;
    if (!size_param(cli, "virtual-size", &size))
        return 1;
    const char *type = cli_param(cli, "type");
    if (!type)
        type = "user";
    if (strcmp(type, "system") != 0 && strcmp(type, "user") != 0 &&
        strcmp(type, "suspend") != 0 && strcmp(type, "crashdump") != 0)
        return cli_fail(cli, "Invalid type '%s': use system, user, suspend or crashdump.", type);
    bool sharable, ro;
    if (!bool_param(cli, "sharable", false, &sharable) ||
        !bool_param(cli, "read-only", false, &ro))
        return 1;
    char *sr = ref_of(cli, "SR", cli_param(cli, "sr-uuid"));
    if (!sr)
        return 1;
    XsValue *rec = xv_struct();
    xv_struct_set_string(rec, "name_label", cli_param(cli, "name-label"));
    const char *desc = cli_param(cli, "name-description");
    xv_struct_set_string(rec, "name_description", desc ? desc : "");
    xv_struct_set_string(rec, "SR", sr);
    free(sr);
    xv_struct_set(rec, "virtual_size", xv_int(size));
    xv_struct_set_string(rec, "type", type);
    xv_struct_set(rec, "sharable", xv_bool(sharable));
    xv_struct_set(rec, "read_only", xv_bool(ro));
    xv_struct_set(rec, "other_config", map_param(cli, "other-config"));
    xv_struct_set(rec, "sm_config", map_param(cli, "sm-config"));
    XsValue *tags = xv_array();
    XsValue *tm = map_param(cli, "tags");
    for (uint32_t i = 0; i < tm->n; i++)
        xv_array_push_string(tags, xv_struct_key(tm, i));
    xv_free(tm);
    xv_struct_set(rec, "tags", tags);
    XsValue *p = xv_array();
    xv_array_push(p, rec);
    return print_new(cli, "VDI", cli_call(cli, "VDI.create", p));
}

static int cmd_vdi_destroy(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "VDI", "destroy", true, "Destroying VDI");
}

static int cmd_vdi_forget(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "VDI", "forget", false, NULL);
}

static int cmd_vdi_update(Cli *cli, const CliCommand *cmd)
{
    return call_on_uuid(cli, "VDI", "update", false, NULL);
}

static int cmd_vdi_introduce(Cli *cli, const CliCommand *cmd)
{
    bool sharable, ro, managed;
    if (!bool_param(cli, "sharable", false, &sharable) ||
        !bool_param(cli, "read-only", false, &ro) || !bool_param(cli, "managed", true, &managed))
        return 1;
    char *sr = ref_of(cli, "SR", cli_param(cli, "sr-uuid"));
    if (!sr)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, cli_param(cli, "uuid"));
    const char *nl = cli_param(cli, "name-label");
    const char *nd = cli_param(cli, "name-description");
    xv_array_push_string(p, nl ? nl : "");
    xv_array_push_string(p, nd ? nd : "");
    xv_array_push_string(p, sr);
    free(sr);
    xv_array_push_string(p, cli_param(cli, "type"));
    xv_array_push(p, xv_bool(sharable));
    xv_array_push(p, xv_bool(ro));
    xv_array_push(p, map_param(cli, "other-config"));
    xv_array_push_string(p, cli_param(cli, "location"));
    xv_array_push(p, map_param(cli, "xenstore-data"));
    xv_array_push(p, map_param(cli, "sm-config"));
    xv_array_push(p, xv_bool(managed));
    return print_new(cli, "VDI", cli_call(cli, "VDI.introduce", p));
}

static XsValue *driver_params(Cli *cli)
{
    XsValue *m = xv_struct();
    for (size_t i = 0; i < cli->nparams; i++)
        if (STRPREFIX(cli->params[i].key, "driver-params-") || STRPREFIX(cli->params[i].key, "driver-params:"))
            xv_struct_set_string(m, cli->params[i].key + strlen("driver-params-"),
                                 cli->params[i].value ? cli->params[i].value : "");
    return m;
}

static bool set_string_field(Cli *cli, const char *ref, const char *setter, const char *value)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    xv_array_push_string(p, value);
    XsValue *r = cli_call(cli, setter, p);
    xv_free(r);
    return r != NULL;
}

static int cmd_vdi_clone(Cli *cli, const CliCommand *cmd)
{
    char *ref = ref_of(cli, "VDI", cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    xv_array_push(p, driver_params(cli));
    free(ref);
    XsValue *r = cli_call(cli, "VDI.clone", p);
    if (!r)
        return 1;
    const char *nl = cli_param(cli, "new-name-label");
    const char *nd = cli_param(cli, "new-name-description");
    if ((nl && !set_string_field(cli, r->s, "VDI.set_name_label", nl)) ||
        (nd && !set_string_field(cli, r->s, "VDI.set_name_description", nd))) {
        xv_free(r);
        return 1;
    }
    return print_new(cli, "VDI", r);
}

static int cmd_vdi_snapshot(Cli *cli, const CliCommand *cmd)
{
    char *ref = ref_of(cli, "VDI", cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    xv_array_push(p, driver_params(cli));
    free(ref);
    return print_new(cli, "VDI", cli_call(cli, "VDI.snapshot", p));
}

static int cmd_vdi_copy(Cli *cli, const CliCommand *cmd)
{
    const char *sr_uuid = cli_param(cli, "sr-uuid");
    const char *into_uuid = cli_param(cli, "into-vdi-uuid");
    if ((sr_uuid != NULL) == (into_uuid != NULL))
        return cli_fail(cli, "Give exactly one of sr-uuid (copy into a new VDI) and "
                             "into-vdi-uuid (copy into an existing VDI).");
    char *ref = ref_of(cli, "VDI", cli_param(cli, "uuid"));
    char *sr = NULL, *into = NULL, *base = NULL;
    int rc = 1;
    if (!ref)
        goto out;
    if (sr_uuid && !(sr = ref_of(cli, "SR", sr_uuid)))
        goto out;
    if (into_uuid && !(into = ref_of(cli, "VDI", into_uuid)))
        goto out;
    if (cli_param(cli, "base-vdi-uuid") && !(base = ref_of(cli, "VDI", cli_param(cli, "base-vdi-uuid"))))
        goto out;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    xv_array_push_string(p, sr ? sr : "OpaqueRef:NULL");
    xv_array_push_string(p, base ? base : "OpaqueRef:NULL");
    xv_array_push_string(p, into ? into : "OpaqueRef:NULL");
    rc = print_new(cli, "VDI", cli_call_async(cli, "VDI.copy", p, "Copying VDI"));
out:
    free(ref);
    free(sr);
    free(into);
    free(base);
    return rc;
}

static int cmd_vdi_resize(Cli *cli, const CliCommand *cmd)
{
    int64_t size;
    if (!size_param(cli, "disk-size", &size))
        return 1;
    bool online;
    if (!bool_param(cli, "online", false, &online))
        return 1;
    char *ref = ref_of(cli, "VDI", cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    xv_array_push(p, xv_int(size));
    free(ref);
    XsValue *r = cli_call(cli, online ? "VDI.resize_online" : "VDI.resize", p);
    if (!r)
        return 1;
    xv_free(r);
    return 0;
}

/* ---- import and export ---------------------------------------------------------------------------- */

typedef struct XferUi {
    Cli *cli;
    const char *task;
    struct timespec last;
    double shown;
} XferUi;

static bool xfer_progress(void *opaque, uint64_t done, uint64_t total)
{
    XferUi *u = opaque;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - u->last.tv_sec) + (now.tv_nsec - u->last.tv_nsec) / 1e9;
    if (dt < 0.2)
        return true;
    u->last = now;
    double f = u->shown;
    if (total) {
        f = (double)done / (double)total;
    } else if (u->task) {
        /* Unknown length (a converted stream): the task knows. */
        XsValue *p = xv_array();
        xv_array_push_string(p, u->task);
        XsError *err = NULL;
        XsValue *r = xc_call_session(u->cli->conn, "task.get_progress", p, &err);
        xs_error_free(err);
        if (r && r->kind == XV_FLOAT)
            f = r->f;
        xv_free(r);
    }
    if (f != u->shown) {
        u->shown = f;
        cli_progress(u->cli, f, false);
    }
    return true;
}

static char *url_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = xstrdup(e ? e : "");
    curl_free(e);
    return r;
}

static int transfer(Cli *cli, bool import)
{
    const char *format = cli_param(cli, "format");
    const char *filename = cli_param(cli, "filename");
    char *ref = ref_of(cli, "VDI", cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    char *task = cli_task_create(cli, import ? "VDI import" : "VDI export", NULL);
    if (!task) {
        free(ref);
        return 1;
    }
    char *sid = url_escape(xc_session(cli->conn));
    char *tid = url_escape(task);
    char *vid = url_escape(ref);
    char *fmt = url_escape(format ? format : "raw");
    /* Local root on the unix socket hands the file itself to the daemon: no byte
     * crosses the socket. Otherwise only the file's data travels (XenServer's
     * sparse "chunked" framing, which hyperxe also speaks for downloads). */
    bool by_fd = cli_transfer_by_fd(cli, filename, import);
    char *path = xasprintf("/%s?session_id=%s&task_id=%s&vdi=%s&format=%s%s",
                           import ? "import_raw_vdi" : "export_raw_vdi", sid, tid, vid, fmt,
                           by_fd ? "" : "&chunked=true");
    free(sid);
    free(tid);
    free(vid);
    free(fmt);
    XferUi ui = {.cli = cli, .task = task};
    XcTransferResult res;
    bool ok;
    if (by_fd)
        ok = import ? xc_fd_put_file(cli->conn, path, filename, xfer_progress, &ui, &res)
                    : xc_fd_get_file(cli->conn, path, filename, xfer_progress, &ui, &res);
    else
        ok = import ? xc_http_put_file_sparse(cli->conn, path, filename, xfer_progress, &ui,
                                              &res)
                    : xc_http_get_file_sparse(cli->conn, path, filename, xfer_progress, &ui,
                                              &res);
    free(path);
    if (ui.shown > 0)
        cli_progress(cli, 1.0, true);
    int rc = 0;
    if (res.error && !res.http_status) {
        rc = cli_fail(cli, "%s: %s", filename, res.error);
    } else {
        /* The task has the outcome in XenAPI terms. */
        XsValue *r = cli_wait_task(cli, task, NULL);
        if (!r)
            rc = 1;
        else if (!ok)
            rc = cli_fail(cli, "%s", res.error ? res.error : "The transfer failed.");
        xv_free(r);
    }
    xc_transfer_result_release(&res);
    cli_task_destroy(cli, task);
    free(task);
    free(ref);
    return rc;
}

static int cmd_vdi_import(Cli *cli, const CliCommand *cmd)
{
    return transfer(cli, true);
}

static int cmd_vdi_export(Cli *cli, const CliCommand *cmd)
{
    if (cli_has(cli, "base"))
        return cli_fail(cli, "Differencing exports (base=) are not supported: export the whole "
                             "VDI (leave out base=).");
    return transfer(cli, false);
}

/* ---- cd-list ------------------------------------------------------------------------------------------ */

static int cmd_cd_list(Cli *cli, const CliCommand *cmd)
{
    XsValue *srs = cli_call(cli, "SR.get_all_records", xv_array());
    if (!srs)
        return 1;
    XsValue *vdis = cli_call(cli, "VDI.get_all_records", xv_array());
    if (!vdis) {
        xv_free(srs);
        return 1;
    }
    const char *params = cli_param(cli, "params");
    bool all = params && strcmp(params, "all") == 0;
    CliRow *rows = xcalloc(vdis->n + 1, sizeof(CliRow));
    size_t nrows = 0;
    for (uint32_t i = 0; i < vdis->n; i++) {
        const XsValue *v = xv_struct_val(vdis, i);
        const XsValue *sr = xv_struct_get(srs, xv_struct_get_string(v, "SR"));
        const char *ct = sr ? xv_struct_get_string(sr, "content_type") : NULL;
        if (!ct || strcmp(ct, "iso") != 0)
            continue;
        const char *ref = xv_struct_key(vdis, i);
        CliRow *row = &rows[nrows++];
        for (size_t k = 0; k < xs_class_VDI.ncli_fields; k++) {
            const XsCliField *cf = &xs_class_VDI.cli_fields[k];
            bool want = all ? !(cf->flags & XS_CLI_HIDDEN)
                            : (params ? false : (strcmp(cf->name, "uuid") == 0 ||
                                                 strcmp(cf->name, "name-label") == 0));
            if (params && !all) {
                const char *p = params;
                size_t l = strlen(cf->name);
                while (p && *p && !want) {
                    const char *e = strchr(p, ',');
                    size_t pl = e ? (size_t)(e - p) : strlen(p);
                    want = pl == l && strncmp(p, cf->name, l) == 0;
                    p = e ? e + 1 : NULL;
                }
            }
            if (!want)
                continue;
            char *label = cli_field_label(&xs_class_VDI, cf);
            char *val = cli_field_value(cli, &xs_class_VDI, ref, v, cf);
            cli_row_add(row, label, val);
            free(label);
            free(val);
        }
    }
    cli_print_table(cli, rows, nrows);
    for (size_t i = 0; i < nrows; i++)
        cli_row_release(&rows[i]);
    free(rows);
    xv_free(srs);
    xv_free(vdis);
    return 0;
}

static const CliCommand storage_commands[] = {
    {"cd-list", NULL, "params", "List the CDs and ISOs (make sure the ISO SRs are scanned).",
     cmd_cd_list},
    {"pbd-create", "host-uuid,sr-uuid", "device-config:",
     "Create a PBD. The read-only device-config parameter can only be set on creation.",
     cmd_pbd_create},
    {"pbd-destroy", "uuid", NULL, "Destroy the PBD.", cmd_pbd_destroy},
    {"pbd-plug", "uuid", NULL, "Attempt to plug in the PBD to the host.", cmd_pbd_plug},
    {"pbd-unplug", "uuid", NULL, "Attempt to unplug the PBD from the host.", cmd_pbd_unplug},
    {"sr-create", "name-label,type",
     "name-description,host-uuid,device-config:,shared,physical-size,content-type,sm-config:",
     "Create an SR: type ext (device-config:path=DIR), nfs (device-config:server= "
     "device-config:serverpath=, or device-config:path=), iso (device-config:location=).",
     cmd_sr_create},
    {"sr-destroy", "uuid", NULL, "Destroy the SR and its disks (unplug its PBDs first).",
     cmd_sr_destroy},
    {"sr-forget", "uuid", NULL, "Forget the SR: its records go, its files stay.", cmd_sr_forget},
    {"sr-introduce", "name-label,type,uuid", "name-description,shared,content-type,sm-config:",
     "Introduce an SR (but does not create any PBDs).", cmd_sr_introduce},
    {"sr-scan", "uuid", NULL, "Force an SR scan, syncing the database with its files.",
     cmd_sr_scan},
    {"sr-update", "uuid", NULL, "Refresh the fields of the SR object in the database.",
     cmd_sr_update},
    {"vdi-clone", "uuid", "driver-params-,new-name-label,new-name-description",
     "Clone a specified VDI.", cmd_vdi_clone},
    {"vdi-copy", "uuid", "sr-uuid,base-vdi-uuid,into-vdi-uuid",
     "Copy a VDI into a new VDI of sr-uuid, or into the existing VDI into-vdi-uuid.",
     cmd_vdi_copy},
    {"vdi-create", "sr-uuid,name-label,virtual-size",
     "sm-config:,sharable,read-only,tags:,type,name-description,other-config:",
     "Create a VDI; prints its uuid.", cmd_vdi_create},
    {"vdi-destroy", "uuid", NULL, "Destroy a VDI.", cmd_vdi_destroy},
    {"vdi-export", "uuid,filename", "format,base,progress",
     "Export a VDI (format raw, vhd, vmdk or qcow2).", cmd_vdi_export},
    {"vdi-forget", "uuid", NULL, "Forget about a VDI (its file stays).", cmd_vdi_forget},
    {"vdi-import", "uuid,filename", "format,progress",
     "Import an image (format raw, vhd, vmdk or qcow2) into a VDI.", cmd_vdi_import},
    {"vdi-introduce", "uuid,sr-uuid,type,location",
     "name-label,name-description,sharable,read-only,managed,other-config:,xenstore-data:,"
     "sm-config:",
     "Create a VDI object representing an existing storage device.", cmd_vdi_introduce},
    {"vdi-resize", "uuid,disk-size", "online", "Resize a VDI (grow only).", cmd_vdi_resize},
    {"vdi-snapshot", "uuid", "driver-params-", "Snapshot a VDI; prints the snapshot's uuid.",
     cmd_vdi_snapshot},
    {"vdi-update", "uuid", NULL, "Refresh the fields of the VDI object in the database.",
     cmd_vdi_update},
};

void cli_storage_commands(CliCommandList *l)
{
    cli_register(l, storage_commands, ARRAY_SIZE(storage_commands));
}
