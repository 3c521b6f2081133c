/*
 * JSON-RPC 2.0 client on libcurl. See client.h.
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "client/client.h"
#include "client/transfer.h"
#include "model/wire.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

struct XcConn {
    CURL *curl;
    char *url;
    char *where;
    char *unix_path; /* the server's unix socket, or NULL */
    char *session;
    struct curl_slist *headers;
    int64_t next_id;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    StrBuf *sb = userdata;
    strbuf_add(sb, ptr, size * nmemb);
    return size * nmemb;
}

XcConn *xc_new(const XcTarget *t)
{
    static bool inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = true;
    }
    XcConn *c = xnew0(XcConn, 1);
    c->curl = curl_easy_init();
    if (t->unix_path) {
        c->url = xstrdup("http://localhost/jsonrpc");
        c->where = xasprintf("unix:%s", t->unix_path);
        c->unix_path = xstrdup(t->unix_path);
        curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, t->unix_path);
    } else {
        int port = t->port ? t->port : (t->tls ? 443 : 80);
        bool v6 = strchr(t->host, ':') != NULL;
        c->url = xasprintf("%s://%s%s%s:%d/jsonrpc", t->tls ? "https" : "http", v6 ? "[" : "",
                           t->host, v6 ? "]" : "", port);
        c->where = xasprintf("%s%s%s:%d", v6 ? "[" : "", t->host, v6 ? "]" : "", port);
        if (t->tls && !t->verify) {
            curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    }
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "xe-cli/hyperxe/" HX_VERSION);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    c->next_id = 1;
    return c;
}

void xc_free(XcConn *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->url);
    free(c->where);
    free(c->unix_path);
    free(c->session);
    free(c);
}

const char *xc_where(XcConn *c)
{
    return c->where;
}

const char *xc_unix_path(XcConn *c)
{
    return c->unix_path;
}

const char *xc_session(XcConn *c)
{
    return c->session ? c->session : "";
}

static XsError *decode_error(const XsValue *e)
{
    XsError *err = NULL;
    const char *code = xv_struct_get_string(e, "message");
    const XsValue *data = xv_struct_get(e, "data");
    const char *p[16];
    size_t n = 0;
    if (data && data->kind == XV_ARRAY)
        for (uint32_t i = 0; i < data->n && n < 16; i++)
            p[n++] = data->items[i].kind == XV_STRING ? data->items[i].s : "";
    xs_error_setv(&err, code ? code : "INTERNAL_ERROR", n, p);
    return err;
}

XsValue *xc_call(XcConn *c, const char *method, XsValue *params, XsError **errp)
{
    StrBuf req = STRBUF_INIT, resp = STRBUF_INIT;
    strbuf_adds(&req, "{\"jsonrpc\":\"2.0\",\"method\":");
    strbuf_add_json_string(&req, method);
    strbuf_adds(&req, ",\"params\":");
    xv_to_json(&req, params);
    strbuf_addf(&req, ",\"id\":%lld}", (long long)c->next_id++);
    xv_free(params);

    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, req.buf);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)req.len);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &resp);
    CURLcode rc = curl_easy_perform(c->curl);
    XsValue *result = NULL;
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        char *msg = xasprintf("Cannot reach the server at %s: %s", c->where,
                              curl_easy_strerror(rc));
        xs_error_set(errp, "CONNECTION_FAILED", 1, msg);
        free(msg);
        goto out;
    }
    if (status != 200) {
        char *msg = xasprintf("The server at %s answered HTTP %ld", c->where, status);
        xs_error_set(errp, "CONNECTION_FAILED", 1, msg);
        free(msg);
        goto out;
    }
    char *perr = NULL;
    XsValue *v = xv_from_json(resp.buf, resp.len, &perr);
    if (!v) {
        xs_error_internal(errp, "malformed reply from %s: %s", c->where, perr);
        free(perr);
        goto out;
    }
    const XsValue *e = xv_struct_get(v, "error");
    const XsValue *r = xv_struct_get(v, "result");
    if (e && e->kind == XV_STRUCT) {
        xs_error_propagate(errp, decode_error(e));
    } else if (r) {
        result = xv_copy(r);
    } else {
        xs_error_internal(errp, "reply from %s has neither result nor error", c->where);
    }
    xv_free(v);
out:
    strbuf_release(&req);
    strbuf_release(&resp);
    return result;
}

XsValue *xc_call_session(XcConn *c, const char *method, XsValue *params, XsError **errp)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, xc_session(c));
    for (uint32_t i = 0; i < params->n; i++)
        xv_array_push(p, xv_copy(&params->items[i]));
    xv_free(params);
    return xc_call(c, method, p, errp);
}

XsValue *xc_callv(XcConn *c, XsError **errp, const char *method, ...)
{
    XsValue *p = xv_array();
    va_list ap;
    va_start(ap, method);
    const char *s;
    while ((s = va_arg(ap, const char *)))
        xv_array_push_string(p, s);
    va_end(ap);
    return xc_call_session(c, method, p, errp);
}

bool xc_login(XcConn *c, const char *user, const char *password, const char *originator,
              XsError **errp)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, user);
    xv_array_push_string(p, password);
    xv_array_push_string(p, "2.23");
    xv_array_push_string(p, originator);
    XsValue *r = xc_call(c, "session.login_with_password", p, errp);
    if (!r)
        return false;
    if (r->kind != XV_STRING) {
        xv_free(r);
        xs_error_internal(errp, "login returned no session");
        return false;
    }
    free(c->session);
    c->session = xstrdup(r->s);
    xv_free(r);
    return true;
}

void xc_logout(XcConn *c)
{
    if (!c->session)
        return;
    XsValue *r = xc_call_session(c, "session.logout", xv_array(), NULL);
    xv_free(r);
    free(c->session);
    c->session = NULL;
}

void *xc_transfer_handle(XcConn *c, const char *path_query)
{
    CURL *h = curl_easy_duphandle(c->curl);
    if (!h)
        return NULL;
    /* c->url ends in "/jsonrpc": the same server, another path. */
    size_t base = strlen(c->url) - strlen("/jsonrpc");
    char *url = xasprintf("%.*s%s", (int)base, c->url, path_query);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    free(url);
    return h;
}
