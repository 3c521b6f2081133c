/*
 * The HTTP handlers for VDI content, as xapi has them: PUT /import_raw_vdi
 * (the body is an image that replaces the VDI's content, or with sr_id and
 * no vdi a raw image that becomes a new VDI) and GET /export_raw_vdi (the
 * VDI's content in the asked format). Query arguments: session_id (or Basic
 * auth, or local root), task_id, vdi (ref or uuid), format = raw, vhd,
 * vmdk or qcow2. The work is in ops/vdi_io.c; this file only speaks HTTP,
 * and memory stays constant whatever the size of the transfer.
 *
 * Local root on the unix socket may hand its open file over instead of its
 * bytes (api/http_fd.h): the daemon then reads or writes the file
 * itself and nothing crosses the socket.
 */
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "api/http_call.h"
#include "api/http_fd.h"
#include "api/vdi_http.h"
#include "ops/vdi.h"
#include "ops/vdi_io.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* Big socket buffers for bulk transfers: fewer wake-ups per GiB. */
static void bulk_socket(HttpRequest *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    int size = 4 * 1024 * 1024;
    setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(ci->connect_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* A VDI named by ref or uuid (malloc'd ref), or NULL with HANDLE_INVALID/UUID_INVALID. */
static char *find_vdi(HxEnv *env, const char *v, XsError **errp)
{
    db_read_lock(env->db);
    DbObj *o = db_get_class(env->db, XS_CLASS_VDI, v);
    if (!o)
        o = db_get_by_uuid(env->db, XS_CLASS_VDI, v);
    char *r = o ? xstrdup(o->ref) : NULL;
    db_read_unlock(env->db);
    if (!r)
        xs_err_handle_invalid(errp, "VDI", v);
    return r;
}

static char *find_sr(HxEnv *env, HttpRequest *req, XsError **errp)
{
    const char *v = http_query(req, "sr_id");
    if (!v)
        v = http_query(req, "sr_uuid");
    if (!v)
        return NULL;
    db_read_lock(env->db);
    DbObj *o = db_get_class(env->db, XS_CLASS_SR, v);
    if (!o)
        o = db_get_by_uuid(env->db, XS_CLASS_SR, v);
    char *r = o ? xstrdup(o->ref) : NULL;
    db_read_unlock(env->db);
    if (!r)
        xs_err_handle_invalid(errp, "SR", v);
    return r;
}

static bool known_format(const char *f)
{
    return !f || ops_vdi_format_content_type(f) != NULL;
}

/* ---- import ------------------------------------------------------------------------------ */

typedef struct ImportState {
    ApiHttpCall call;
    bool call_open;
    OpsVdiUpload *up;
    char *vdi;
    bool created; /* the VDI was made for this upload (sr_id): destroyed on failure */
    XsError *err;
    bool by_fd;   /* the client hands its file over (no body) */
    char *format;
    char peer[64];
} ImportState;

static void import_fail(HttpRequest *req, ImportState *st, unsigned status, XsError *err)
{
    api_http_error_reply(&req->early, status, err);
    if (st->created && st->vdi) {
        XsError *e2 = NULL;
        ops_vdi_destroy(&st->call.ctx, st->vdi, &e2);
        xs_error_free(e2);
        st->created = false;
    }
    if (st->call_open) {
        api_http_call_end(&st->call, NULL, err);
        st->call_open = false;
    }
    xs_error_free(err);
}

static bool import_on_data(HttpRequest *req, const char *data, size_t len)
{
    ImportState *st = req->state;
    if (!data) {
        st = xnew0(ImportState, 1);
        req->state = st;
        bulk_socket(req);
        if (!api_http_call_begin(req, &req->early, "VDI import", XS_ROLE_VM_ADMIN, &st->call))
            return false;
        st->call_open = true;
        HxEnv *env = api_env(st->call.api);
        XsError *err = NULL;
        const char *format = http_query(req, "format");
        if (!known_format(format)) {
            xs_err_invalid_value(&err, "format", format);
            import_fail(req, st, 404, err);
            return false;
        }
        if (http_header(req, "Transfer-Encoding") &&
            strcasecmp(http_header(req, "Transfer-Encoding"), "chunked") == 0) {
            xs_error_set(&err, "IMPORT_ERROR_CANNOT_HANDLE_CHUNKED", 0);
            import_fail(req, st, 403, err);
            return false;
        }
        const char *cl = http_header(req, "Content-Length");
        int64_t length = cl ? strtoll(cl, NULL, 10) : -1;
        const char *v = http_query(req, "vdi");
        if (http_fd_wanted(req)) {
            /* The file comes after the switch: a VDI to fill, no body. */
            if (!http_fd_allowed(req, &err) || length > 0) {
                if (!err)
                    xs_err_import_error(&err, "a request that hands a file over has no body");
                import_fail(req, st, 403, err);
                return false;
            }
            if (!v) {
                xs_err_invalid_value(&err, "vdi", "");
                import_fail(req, st, 404, err);
                return false;
            }
            st->vdi = find_vdi(env, v, &err);
            if (!st->vdi) {
                import_fail(req, st, 404, err);
                return false;
            }
            st->by_fd = true;
            st->format = xstrdup(format ? format : "raw");
            return true;
        }
        if (v) {
            st->vdi = find_vdi(env, v, &err);
        } else {
            char *sr = find_sr(env, req, &err);
            if (sr && format && strcmp(format, "raw") != 0) {
                xs_err_sr_operation_not_supported(&err, sr);
            } else if (sr && length <= 0) {
                xs_err_import_error(&err, "a new VDI needs the image's size (Content-Length)");
            } else if (sr) {
                OpsVdiSpec spec = {.sr = sr, .virtual_size = length, .name_label = "Imported VDI",
                                   .type = VDI_TYPE_USER};
                st->created = ops_vdi_create_disk(&st->call.ctx, &spec, &st->vdi, &err);
            } else if (!err) {
                xs_err_invalid_value(&err, "vdi", "");
            }
            free(sr);
        }
        if (!st->vdi) {
            import_fail(req, st, 404, err);
            return false;
        }
        const char *ch = http_query(req, "chunked");
        bool chunked = ch && (strcmp(ch, "true") == 0 || strcmp(ch, "1") == 0);
        st->up = ops_vdi_upload_begin(&st->call.ctx, st->vdi, format, length, chunked, &err);
        if (!st->up) {
            import_fail(req, st, 500, err);
            return false;
        }
        return true;
    }
    if (!st->up) {
        if (st->by_fd) {
            xs_err_import_error(&st->err, "a request that hands a file over has no body");
            import_fail(req, st, 400, st->err);
            st->err = NULL;
        }
        return false;
    }
    if (!ops_vdi_upload_data(st->up, data, len)) {
        XsError *err = NULL;
        ops_vdi_upload_finish(st->up, &err);
        st->up = NULL;
        if (!err)
            xs_err_import_error(&err, "the import failed");
        import_fail(req, st, 500, err);
        return false;
    }
    return true;
}

static void import_state_free(void *ctx);

/* After the switch: the import from the client's file. */
static XsValue *import_fd_work(void *ctx, int fd, XsError **errp)
{
    ImportState *st = ctx;
    return ops_vdi_import_fd(&st->call.ctx, st->vdi, st->format, fd, errp) ? xv_string(st->vdi)
                                                                           : NULL;
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
    XsError *err = NULL;
    if (st && st->by_fd) {
        http_fd_reply(req, reply, import_fd_upgrade, import_state_free, st, &st->call, st->peer);
        return;
    }
    if (!st || !st->up) {
        http_reply_error_page(reply, 500, "The import was not started.");
        return;
    }
    bool ok = ops_vdi_upload_finish(st->up, &err);
    st->up = NULL;
    if (!ok) {
        api_http_error_reply(reply, 500, err);
        if (st->created) {
            XsError *e2 = NULL;
            ops_vdi_destroy(&st->call.ctx, st->vdi, &e2);
            xs_error_free(e2);
            st->created = false;
        }
        api_http_call_end(&st->call, NULL, err);
        st->call_open = false;
        xs_error_free(err);
        return;
    }
    XsValue *res = xv_string(st->vdi);
    http_reply_text(reply, 200, "text/plain", st->vdi);
    api_http_call_end(&st->call, res, NULL);
    st->call_open = false;
    xv_free(res);
}

static void import_state_free(void *ctx)
{
    ImportState *st = ctx;
    if (st->up) {
        ops_vdi_upload_abort(st->up);
        st->up = NULL;
    }
    if (st->call_open) {
        XsError *err = NULL;
        xs_err_import_error_premature_eof(&err);
        if (st->created) {
            XsError *e2 = NULL;
            ops_vdi_destroy(&st->call.ctx, st->vdi, &e2);
            xs_error_free(e2);
        }
        api_http_call_end(&st->call, NULL, err);
        xs_error_free(err);
    }
    free(st->vdi);
    free(st->format);
    xs_error_free(st->err);
    free(st);
}

static void import_cleanup(HttpRequest *req)
{
    if (req->state)
        import_state_free(req->state);
    req->state = NULL;
}

/* ---- export ------------------------------------------------------------------------------------ */

typedef struct ExportState {
    ApiHttpCall call;
    bool call_open;
    OpsVdiDownload *down;
    char *vdi;
    char *format; /* by descriptor */
    char peer[64];
} ExportState;

static ssize_t export_stream(void *ctx, uint64_t pos, char *buf, size_t max)
{
    ExportState *st = ctx;
    return ops_vdi_download_read(st->down, buf, max);
}

static void export_free(void *ctx)
{
    ExportState *st = ctx;
    XsError *err = NULL;
    bool ok = ops_vdi_download_finish(st->down, &err);
    if (ok) {
        XsValue *res = xv_string("");
        api_http_call_end(&st->call, res, NULL);
        xv_free(res);
    } else {
        api_http_call_end(&st->call, NULL, err);
    }
    xs_error_free(err);
    free(st->vdi);
    free(st);
}

/* After the switch: the export into the client's file. */
static XsValue *export_fd_work(void *ctx, int fd, XsError **errp)
{
    ExportState *st = ctx;
    return ops_vdi_export_fd(&st->call.ctx, st->vdi, st->format, fd, errp) ? xv_string("")
                                                                           : NULL;
}

static void export_fd_upgrade(void *ctx, int sock, const char *extra, size_t extra_len)
{
    ExportState *st = ctx;
    (void)extra;
    http_fd_serve(sock, extra_len, true, &st->call, &st->call_open, xs_err_vdi_io_error,
                  export_fd_work, st);
}

static void export_state_free(void *ctx)
{
    ExportState *st = ctx;
    if (st->call_open) {
        /* The connection ended before the switch. */
        XsError *err = NULL;
        xs_err_vdi_io_error(&err, "the client left before handing its file over");
        api_http_call_end(&st->call, NULL, err);
        xs_error_free(err);
    }
    free(st->vdi);
    free(st->format);
    free(st);
}

static void export_handle(HttpRequest *req, HttpReply *reply)
{
    ExportState *st = xnew0(ExportState, 1);
    if (!api_http_call_begin(req, reply, "VDI export", XS_ROLE_VM_ADMIN, &st->call)) {
        free(st);
        return;
    }
    HxEnv *env = api_env(st->call.api);
    XsError *err = NULL;
    const char *format = http_query(req, "format");
    unsigned status = 500;
    if (!format)
        format = "raw";
    const char *v = http_query(req, "vdi");
    if (!known_format(format)) {
        xs_err_invalid_value(&err, "format", format);
        status = 404;
    } else if (!v) {
        xs_err_invalid_value(&err, "vdi", "");
        status = 404;
    } else if (!(st->vdi = find_vdi(env, v, &err))) {
        status = 404;
    } else if (http_fd_wanted(req)) {
        if (http_fd_allowed(req, &err)) {
            st->format = xstrdup(format);
            st->call_open = true;
            http_fd_reply(req, reply, export_fd_upgrade, export_state_free, st, &st->call, st->peer);
            return;
        }
        status = 403;
    } else {
        const char *ch = http_query(req, "chunked");
        bool chunked = ch && (strcmp(ch, "true") == 0 || strcmp(ch, "1") == 0);
        st->down = ops_vdi_download_begin(&st->call.ctx, st->vdi, format, chunked, &err);
    }
    if (!st->down) {
        api_http_error_reply(reply, status, err);
        api_http_call_end(&st->call, NULL, err);
        xs_error_free(err);
        free(st->vdi);
        free(st);
        return;
    }
    db_read_lock(env->db);
    DbObj *o = db_get_class(env->db, XS_CLASS_VDI, st->vdi);
    char *disp = xasprintf("attachment; filename=\"%s.%s\"", o ? db_str(o, F_VDI_UUID) : "vdi",
                           format);
    db_read_unlock(env->db);
    bulk_socket(req);
    reply->status = 200;
    reply->content_type = ops_vdi_format_content_type(format);
    http_reply_add_header(reply, "Content-Disposition", disp);
    free(disp);
    reply->stream = export_stream;
    reply->stream_free = export_free;
    reply->stream_ctx = st;
    reply->stream_size = ops_vdi_download_size(st->down);
}

const HttpRoute vdi_http_routes[] = {
    {"PUT", "/import_raw_vdi", HTTP_ROUTE_STREAM, 0, import_on_data, import_handle,
     import_cleanup},
    {"GET", "/export_raw_vdi", HTTP_ROUTE_BUFFERED, 0, NULL, export_handle, NULL},
};
const size_t vdi_http_nroutes = ARRAY_SIZE(vdi_http_routes);
