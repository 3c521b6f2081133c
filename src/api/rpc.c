/*
 * The RPC endpoints: decode a request, call api_call, and wrap the result
 * in the envelope of the protocol that was used. See rpc.h.
 */
#include <stdlib.h>
#include <string.h>

#include "api/rpc.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

static void fill_peer(HttpRequest *req, ApiPeer *peer)
{
    peer->addr = req->peer;
    peer->is_unix = req->is_unix;
    peer->is_root = req->peer_is_root;
    peer->agent = http_header(req, "User-Agent");
}

static void xmlrpc_error_array(XvWriter *w, const XsError *err)
{
    xvw_begin_array(w);
    xvw_string(w, err->code);
    for (size_t i = 0; i < err->nparams; i++)
        xvw_string(w, err->params[i]);
    xvw_end_array(w);
}

void rpc_xmlrpc_failure(StrBuf *out, const XsError *err)
{
    XvWriter w;
    strbuf_adds(out, "<?xml version=\"1.0\"?>\n<methodResponse><params><param>");
    xvw_init(&w, XV_FMT_XMLRPC, out);
    xvw_begin_struct(&w);
    xvw_key(&w, "Status");
    xvw_string(&w, "Failure");
    xvw_key(&w, "ErrorDescription");
    xmlrpc_error_array(&w, err);
    xvw_end_struct(&w);
    strbuf_adds(out, "</param></params></methodResponse>\n");
}

static void log_call(const char *proto, const char *peer, const char *method, const XsError *err)
{
    if (err)
        log_info("%s %s %s -> %s", proto, peer, method, err->code);
    else
        log_debug("%s %s %s -> ok", proto, peer, method);
}

static void handle_xmlrpc(HttpRequest *req, HttpReply *reply)
{
    Api *api = http_user(req);
    XmlRpcCall call;
    char *perr = NULL;
    if (!xmlrpc_parse_call(req->body.buf, req->body.len, &call, &perr)) {
        http_reply_error_page(reply, 500, perr);
        log_info("xmlrpc %s: malformed request: %s", req->peer, perr);
        free(perr);
        return;
    }
    reply->content_type = "text/xml";
    StrBuf *out = &reply->body;
    if (strcmp(call.method, "system.listMethods") == 0) {
        XsValue *m = api_list_methods(api);
        strbuf_adds(out, "<?xml version=\"1.0\"?>\n<methodResponse><params><param>");
        xv_to_xmlrpc(out, m);
        strbuf_adds(out, "</param></params></methodResponse>\n");
        xv_free(m);
        xmlrpc_call_release(&call);
        return;
    }
    ApiPeer peer;
    fill_peer(req, &peer);
    StrBuf value = STRBUF_INIT;
    XsError *err = NULL;
    if (api_call(api, &peer, call.method, call.params, XV_FMT_XMLRPC, &value, &err)) {
        strbuf_adds(out, "<?xml version=\"1.0\"?>\n<methodResponse><params><param><value><struct>"
                         "<member><name>Status</name><value>Success</value></member>"
                         "<member><name>Value</name>");
        strbuf_add(out, value.buf, value.len);
        strbuf_adds(out, "</member></struct></value></param></params></methodResponse>\n");
    } else {
        rpc_xmlrpc_failure(out, err);
    }
    log_call("xmlrpc", req->peer, call.method, err);
    xs_error_free(err);
    strbuf_release(&value);
    xmlrpc_call_release(&call);
}

static void json_id(StrBuf *out, const XsValue *id)
{
    if (id)
        xv_to_json(out, id);
    else
        strbuf_adds(out, "null");
}

static void handle_jsonrpc(HttpRequest *req, HttpReply *reply)
{
    Api *api = http_user(req);
    char *perr = NULL;
    XsValue *v = xv_from_json(req->body.buf, req->body.len, &perr);
    if (!v) {
        http_reply_error_page(reply, 500, perr);
        log_info("jsonrpc %s: malformed request: %s", req->peer, perr);
        free(perr);
        return;
    }
    const XsValue *method = xv_struct_get(v, "method");
    const XsValue *params = xv_struct_get(v, "params");
    const XsValue *id = xv_struct_get(v, "id");
    const XsValue *version = xv_struct_get(v, "jsonrpc");
    bool v2 = version && version->kind == XV_STRING && strcmp(version->s, "2.0") == 0;
    if (v->kind != XV_STRUCT || !method || method->kind != XV_STRING ||
        (params && params->kind != XV_ARRAY) || !id || id->kind == XV_NULL ||
        (version && !v2)) {
        http_reply_error_page(reply, 500,
                              "Jsonrpc.Malformed_method_request: a JSON-RPC request needs "
                              "\"method\" (string), \"params\" (array) and a non-null \"id\"");
        xv_free(v);
        return;
    }
    reply->content_type = "application/json";
    StrBuf *out = &reply->body;
    XsValue *empty = NULL;
    if (!params)
        params = empty = xv_array();
    XsValue *pcopy = xv_copy(params);
    ApiPeer peer;
    fill_peer(req, &peer);
    StrBuf value = STRBUF_INIT;
    XsError *err = NULL;
    bool ok;
    if (strcmp(method->s, "system.listMethods") == 0) {
        XsValue *m = api_list_methods(api);
        xv_to_json(&value, m);
        xv_free(m);
        ok = true;
    } else {
        ok = api_call(api, &peer, method->s, pcopy, XV_FMT_JSON, &value, &err);
    }
    if (v2)
        strbuf_adds(out, "{\"jsonrpc\":\"2.0\",");
    else
        strbuf_adds(out, "{");
    if (ok) {
        strbuf_adds(out, "\"result\":");
        strbuf_add(out, value.buf, value.len);
        if (!v2)
            strbuf_adds(out, ",\"error\":null");
    } else if (v2) {
        strbuf_adds(out, "\"error\":{\"code\":1,\"message\":");
        strbuf_add_json_string(out, err->code);
        strbuf_adds(out, ",\"data\":[");
        for (size_t i = 0; i < err->nparams; i++) {
            if (i)
                strbuf_addch(out, ',');
            strbuf_add_json_string(out, err->params[i]);
        }
        strbuf_adds(out, "]}");
    } else {
        strbuf_adds(out, "\"result\":null,\"error\":[");
        strbuf_add_json_string(out, err->code);
        for (size_t i = 0; i < err->nparams; i++) {
            strbuf_addch(out, ',');
            strbuf_add_json_string(out, err->params[i]);
        }
        strbuf_adds(out, "]");
    }
    strbuf_adds(out, ",\"id\":");
    json_id(out, id);
    strbuf_adds(out, "}\n");
    log_call("jsonrpc", req->peer, method->s, err);
    xs_error_free(err);
    strbuf_release(&value);
    xv_free(pcopy);
    xv_free(empty);
    xv_free(v);
}

const HttpRoute rpc_routes[] = {
    {"POST", "/", HTTP_ROUTE_BUFFERED, RPC_MAX_BODY, NULL, handle_xmlrpc, NULL},
    {"POST", "/RPC2", HTTP_ROUTE_BUFFERED, RPC_MAX_BODY, NULL, handle_xmlrpc, NULL},
    {"POST", "/jsonrpc", HTTP_ROUTE_BUFFERED, RPC_MAX_BODY, NULL, handle_jsonrpc, NULL},
};
const size_t rpc_nroutes = ARRAY_SIZE(rpc_routes);
