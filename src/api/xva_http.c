/*
 * The HTTP handlers for VM export and import, as xapi has them:
 *
 *   GET /export?uuid=|ref=[&use_compression=true|gzip|zstd][&preserve_power_state=true]
 *   GET /export_metadata?uuid=|ref=[&export_snapshots=false]
 *   PUT /import[?sr_id=|sr_uuid=][&restore=true][&force=true]      body: an XVA
 *   PUT /import_metadata[?restore=true][&force=true]               body: ova.xml in a tar
 *
 * and a hyperxe extension for `xe vm-import` of a disk image, which xe
 * streams as a raw VDI tar:
 *
 *   PUT /import_image?virtual_size=N[&sr_id=][&name_label=][&vcpus=][&memory=]
 *       [&network=<ref or uuid; empty: no NIC>][&disk_bus=ide|virtio|scsi][&source=]
 *
 * Authentication (session_id, Basic, local root) and the task (task_id, or
 * a new one named in the task-id reply header) come from http_call.h. The
 * work is in ops/vm_export.c and ops/vm_import.c; this file only speaks
 * HTTP, and memory stays constant whatever the size of the transfer.
 *
 * Local root on the unix socket may hand its open file over instead of its
 * bytes, on /export, /export_metadata, /import and /import_metadata
 * (api/http_fd.h): the daemon then writes or reads the file itself.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/http_call.h"
#include "api/http_fd.h"
#include "api/xva_http.h"
#include "ops/vm_xva.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

static bool query_bool(HttpRequest *req, const char *name, bool dflt)
{
    const char *v = http_query(req, name);
    if (!v)
        return dflt;
    return !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
           !strcasecmp(v, "on");
}

/* An object of class cls named by ref or uuid (malloc'd ref), or NULL. */
static char *find_obj(HxEnv *env, int cls, const char *v)
{
    if (!v || !*v)
        return NULL;
    db_read_lock(env->db);
    DbObj *o = db_get_class(env->db, cls, v);
    if (!o)
        o = db_get_by_uuid(env->db, cls, v);
    char *r = o ? xstrdup(o->ref) : NULL;
    db_read_unlock(env->db);
    return r;
}

/* ---- export ---------------------------------------------------------------------------------- */

typedef struct ExportState {
    ApiHttpCall call;
    OpsVmExport *exp;
} ExportState;

static ssize_t export_stream(void *ctx, uint64_t pos, char *buf, size_t max)
{
    ExportState *st = ctx;
    (void)pos;
    return ops_vm_export_read(st->exp, buf, max);
}

static void export_done(void *ctx)
{
    ExportState *st = ctx;
    XsError *err = NULL;
    if (ops_vm_export_finish(st->exp, &err)) {
        XsValue *res = xv_string("");
        api_http_call_end(&st->call, res, NULL);
        xv_free(res);
    } else {
        api_http_call_end(&st->call, NULL, err);
    }
    xs_error_free(err);
    free(st);
}

/* An export into a file handed over. */
typedef struct ExportFd {
    ApiHttpCall call;
    bool call_open;
    char *vm;
    OpsVmExportOptions o;
    char peer[64];
} ExportFd;

static void export_fd_free(void *ctx)
{
    ExportFd *x = ctx;
    if (x->call_open) {
        /* The connection ended before the switch. */
        XsError *err = NULL;
        xs_err_client_error(&err, "the client left before handing its file over");
        api_http_call_end(&x->call, NULL, err);
        xs_error_free(err);
    }
    free(x->vm);
    free(x);
}

static XsValue *export_fd_work(void *ctx, int fd, XsError **errp)
{
    ExportFd *x = ctx;
    return ops_vm_export_fd(&x->call.ctx, x->vm, &x->o, fd, errp) ? xv_string("") : NULL;
}

static void export_fd_upgrade(void *ctx, int sock, const char *extra, size_t extra_len)
{
    ExportFd *x = ctx;
    (void)extra;
    http_fd_serve(sock, extra_len, true, &x->call, &x->call_open, xs_err_client_error,
                  export_fd_work, x);
}

static void export_common(HttpRequest *req, HttpReply *reply, bool metadata)
{
    ExportState *st = xnew0(ExportState, 1);
    if (!api_http_call_begin(req, reply, metadata ? "Export of VM metadata" : "Export of VM",
                             XS_ROLE_VM_ADMIN, &st->call)) {
        free(st);
        return;
    }
    HxEnv *env = api_env(st->call.api);
    XsError *err = NULL;
    unsigned status = 500;
    const char *v = http_query(req, "uuid");
    if (!v)
        v = http_query(req, "ref");
    char *vm = find_obj(env, XS_CLASS_VM, v);
    if (!vm) {
        xs_err_handle_invalid(&err, "VM", v ? v : "");
        status = 404;
    } else {
        OpsVmExportOptions o = {.metadata_only = metadata,
                                .preserve_power_state = query_bool(req, "preserve_power_state",
                                                                   false),
                                .include_snapshots = query_bool(req, "export_snapshots", true)};
        const char *c = http_query(req, "use_compression");
        if (c && (!strcasecmp(c, "true") || !strcasecmp(c, "gzip")))
            o.compression = XVA_COMPRESSION_GZIP;
        else if (c && !strcasecmp(c, "zstd"))
            o.compression = XVA_COMPRESSION_ZSTD;
        if (http_fd_wanted(req)) {
            if (!http_fd_allowed(req, &err)) {
                api_http_error_reply(reply, 403, err);
                api_http_call_end(&st->call, NULL, err);
                xs_error_free(err);
                free(vm);
                free(st);
                return;
            }
            ExportFd *x = xnew0(ExportFd, 1);
            x->call = st->call;
            x->call_open = true;
            x->call.ctx.peer = &x->call.peer;
            x->vm = vm;
            x->o = o;
            free(st);
            http_fd_reply(req, reply, export_fd_upgrade, export_fd_free, x, &x->call, x->peer);
            return;
        }
        st->exp = ops_vm_export_begin(&st->call.ctx, vm, &o, &err);
        if (!st->exp && err && (xs_error_is(err, "VM_BAD_POWER_STATE") ||
                                xs_error_is(err, "OTHER_OPERATION_IN_PROGRESS")))
            status = 409;
    }
    free(vm);
    if (!st->exp) {
        api_http_error_reply(reply, status, err);
        api_http_call_end(&st->call, NULL, err);
        xs_error_free(err);
        free(st);
        return;
    }
    char *disp = xasprintf("attachment; filename=\"%s\"", ops_vm_export_filename(st->exp));
    reply->status = 200;
    reply->content_type = "application/octet-stream";
    http_reply_add_header(reply, "Content-Disposition", disp);
    free(disp);
    reply->stream = export_stream;
    reply->stream_free = export_done;
    reply->stream_ctx = st;
    reply->stream_size = ops_vm_export_size(st->exp);
}

static void export_handle(HttpRequest *req, HttpReply *reply)
{
    export_common(req, reply, false);
}

static void export_metadata_handle(HttpRequest *req, HttpReply *reply)
{
    export_common(req, reply, true);
}

/* ---- import ---------------------------------------------------------------------------------- */

typedef struct ImportState {
    ApiHttpCall call;
    bool call_open;
    OpsVmImport *imp;
    char *sr;
    char *network;
    bool by_fd; /* the client hands its file over (no body) */
    OpsVmImportOptions o;
    char peer[64];
} ImportState;

static void import_fail(HttpRequest *req, ImportState *st, unsigned status, XsError *err)
{
    api_http_error_reply(&req->early, status, err);
    if (st->call_open) {
        api_http_call_end(&st->call, NULL, err);
        st->call_open = false;
    }
    xs_error_free(err);
}

static bool parse_int_arg(HttpRequest *req, const char *name, int64_t *out, XsError **errp)
{
    const char *v = http_query(req, name);
    *out = 0;
    if (!v || !*v)
        return true;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || x < 0) {
        xs_err_invalid_value(errp, name, v);
        return false;
    }
    *out = x;
    return true;
}

static bool import_start(HttpRequest *req, OpsImportKind kind)
{
    ImportState *st = xnew0(ImportState, 1);
    req->state = st;
    static const char *const labels[] = {"VM import", "VM metadata import", "VM import (disk image)"};
    if (!api_http_call_begin(req, &req->early, labels[kind], XS_ROLE_VM_ADMIN, &st->call))
        return false;
    st->call_open = true;
    HxEnv *env = api_env(st->call.api);
    XsError *err = NULL;
    const char *te = http_header(req, "Transfer-Encoding");
    /* xapi refuses chunked uploads of XVAs; xe streams disk images chunked. */
    if (te && !strcasecmp(te, "chunked") && kind != OPS_IMPORT_IMAGE) {
        xs_err_import_error_cannot_handle_chunked(&err);
        import_fail(req, st, 403, err);
        return false;
    }
    const char *cl = http_header(req, "Content-Length");
    int64_t length = cl ? strtoll(cl, NULL, 10) : -1;
    OpsVmImportOptions o = {.kind = kind, .restore = query_bool(req, "restore", false),
                            .force = query_bool(req, "force", false)};
    const char *srq = http_query(req, "sr_id");
    if (!srq)
        srq = http_query(req, "sr_uuid");
    if (srq && *srq) {
        st->sr = find_obj(env, XS_CLASS_SR, srq);
        if (!st->sr) {
            xs_err_handle_invalid(&err, "SR", srq);
            import_fail(req, st, 404, err);
            return false;
        }
        o.sr = st->sr;
    }
    if (kind == OPS_IMPORT_IMAGE) {
        OpsImageVm *g = &o.image;
        if (!parse_int_arg(req, "virtual_size", &g->virtual_size, &err) ||
            !parse_int_arg(req, "vcpus", &g->vcpus, &err) ||
            !parse_int_arg(req, "memory", &g->memory, &err)) {
            import_fail(req, st, 400, err);
            return false;
        }
        g->name_label = http_query(req, "name_label");
        g->disk_bus = http_query(req, "disk_bus");
        g->source = http_query(req, "source");
        const char *net = http_query(req, "network");
        if (net && *net) {
            st->network = find_obj(env, XS_CLASS_NETWORK, net);
            if (!st->network) {
                xs_err_handle_invalid(&err, "network", net);
                import_fail(req, st, 404, err);
                return false;
            }
            g->network = st->network;
        } else {
            g->network = net; /* NULL: the default network; "": no NIC */
        }
    }
    if (http_fd_wanted(req)) {
        /* The file comes after the switch: no body. */
        if (!http_fd_allowed(req, &err)) {
            import_fail(req, st, 403, err);
            return false;
        }
        if (kind == OPS_IMPORT_IMAGE || length > 0 || (te && *te)) {
            xs_err_import_error(&err, "a request that hands a file over has no body (and "
                                      "/import_image takes none)");
            import_fail(req, st, 400, err);
            return false;
        }
        st->by_fd = true;
        st->o = o;
        return true;
    }
    st->imp = ops_vm_import_begin(&st->call.ctx, &o, length, &err);
    if (!st->imp) {
        import_fail(req, st, 400, err);
        return false;
    }
    return true;
}

static bool import_data(HttpRequest *req, const char *data, size_t len)
{
    ImportState *st = req->state;
    if (!st || !st->imp)
        return false;
    if (ops_vm_import_data(st->imp, data, len))
        return true;
    /* The import failed: say why now, and drop the rest of the body. */
    XsError *err = NULL;
    XsValue *res = NULL;
    ops_vm_import_finish(st->imp, &res, &err);
    st->imp = NULL;
    xv_free(res);
    if (!err)
        xs_err_import_error(&err, "the import failed");
    import_fail(req, st, 500, err);
    return false;
}

static bool import_on_data(HttpRequest *req, const char *data, size_t len)
{
    if (!data)
        return import_start(req, OPS_IMPORT_XVA);
    return import_data(req, data, len);
}

static bool import_metadata_on_data(HttpRequest *req, const char *data, size_t len)
{
    if (!data)
        return import_start(req, OPS_IMPORT_METADATA);
    return import_data(req, data, len);
}

static bool import_image_on_data(HttpRequest *req, const char *data, size_t len)
{
    if (!data)
        return import_start(req, OPS_IMPORT_IMAGE);
    return import_data(req, data, len);
}

static void import_state_free(void *ctx);

/* After the switch: the import from the client's file. */
static XsValue *import_fd_work(void *ctx, int fd, XsError **errp)
{
    ImportState *st = ctx;
    XsValue *res = NULL;
    ops_vm_import_fd(&st->call.ctx, &st->o, fd, &res, errp);
    return res;
}

static void import_fd_upgrade(void *ctx, int sock, const char *extra, size_t extra_len)
{
    ImportState *st = ctx;
    (void)extra;
    http_fd_serve(sock, extra_len, false, &st->call, &st->call_open, xs_err_import_error,
                  import_fd_work, st);
}

static void import_handle(HttpRequest *req, HttpReply *reply)
{
    ImportState *st = req->state;
    if (st && st->by_fd && st->call_open) {
        http_fd_reply(req, reply, import_fd_upgrade, import_state_free, st, &st->call, st->peer);
        return;
    }
    if (!st || !st->imp) {
        http_reply_error_page(reply, 500, "The import was not started.");
        return;
    }
    XsError *err = NULL;
    XsValue *res = NULL;
    bool ok = ops_vm_import_finish(st->imp, &res, &err);
    st->imp = NULL;
    http_reply_add_header(reply, "task-id", st->call.task);
    if (!ok) {
        api_http_error_reply(reply, 500, err);
        api_http_call_end(&st->call, NULL, err);
        st->call_open = false;
        xs_error_free(err);
        return;
    }
    StrBuf body = STRBUF_INIT;
    for (uint32_t i = 0; i < res->n; i++)
        strbuf_addf(&body, "%s%s", i ? "," : "", res->items[i].s);
    http_reply_text(reply, 200, "text/plain", body.buf ? body.buf : "");
    strbuf_release(&body);
    api_http_call_end(&st->call, res, NULL);
    st->call_open = false;
    xv_free(res);
}

static void import_state_free(void *ctx)
{
    ImportState *st = ctx;
    if (st->imp) {
        ops_vm_import_abort(st->imp);
        st->imp = NULL;
    }
    if (st->call_open) {
        XsError *err = NULL;
        if (ops_cancelled(&st->call.ctx))
            xs_err_task_cancelled(&err, st->call.task);
        else
            xs_err_import_error_premature_eof(&err);
        api_http_call_end(&st->call, NULL, err);
        xs_error_free(err);
    }
    free(st->sr);
    free(st->network);
    free(st);
}

static void import_cleanup(HttpRequest *req)
{
    if (req->state)
        import_state_free(req->state);
    req->state = NULL;
}

const HttpRoute xva_http_routes[] = {
    {"GET", "/export", HTTP_ROUTE_BUFFERED, 0, NULL, export_handle, NULL},
    {"GET", "/export_metadata", HTTP_ROUTE_BUFFERED, 0, NULL, export_metadata_handle, NULL},
    {"PUT", "/import", HTTP_ROUTE_STREAM, 0, import_on_data, import_handle, import_cleanup},
    {"PUT", "/import_metadata", HTTP_ROUTE_STREAM, 0, import_metadata_on_data, import_handle,
     import_cleanup},
    {"PUT", "/import_image", HTTP_ROUTE_STREAM, 0, import_image_on_data, import_handle,
     import_cleanup},
};
const size_t xva_http_nroutes = ARRAY_SIZE(xva_http_routes);
