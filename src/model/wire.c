/*
 * XML-RPC and JSON encoding and decoding of XsValue. See wire.h. Parsing
 * XML-RPC uses libxml2 (no network, no entity expansion, no DTD); JSON is
 * parsed by json.c; writing is hand-rolled into a StrBuf for speed.
 */
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/wire.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* ---- writing -------------------------------------------------------- */

void xvw_init(XvWriter *w, XvFormat fmt, StrBuf *sb)
{
    memset(w, 0, sizeof(*w));
    w->fmt = fmt;
    w->sb = sb;
}

/* Called before every value: JSON array separators. */
static void value_begin(XvWriter *w)
{
    if (w->fmt == XV_FMT_JSON && w->depth > 0 && w->stack[w->depth - 1].kind == 'a') {
        if (!w->stack[w->depth - 1].first)
            strbuf_addch(w->sb, ',');
        w->stack[w->depth - 1].first = false;
    }
    if (w->fmt == XV_FMT_XMLRPC)
        strbuf_adds(w->sb, "<value>");
}

/* Called after every value: closes the XML-RPC struct member it belongs to. */
static void value_end(XvWriter *w)
{
    if (w->fmt == XV_FMT_XMLRPC) {
        strbuf_adds(w->sb, "</value>");
        if (w->depth > 0 && w->stack[w->depth - 1].kind == 's')
            strbuf_adds(w->sb, "</member>");
    }
}

static void push(XvWriter *w, char kind)
{
    if (w->depth >= XV_MAX_DEPTH)
        abort(); /* our own output is never this deep */
    w->stack[w->depth].kind = kind;
    w->stack[w->depth].first = true;
    w->depth++;
}

void xvw_begin_struct(XvWriter *w)
{
    value_begin(w);
    strbuf_adds(w->sb, w->fmt == XV_FMT_JSON ? "{" : "<struct>");
    push(w, 's');
}

void xvw_key(XvWriter *w, const char *key)
{
    if (w->fmt == XV_FMT_JSON) {
        if (!w->stack[w->depth - 1].first)
            strbuf_addch(w->sb, ',');
        w->stack[w->depth - 1].first = false;
        strbuf_add_json_string(w->sb, key);
        strbuf_addch(w->sb, ':');
    } else {
        strbuf_adds(w->sb, "<member><name>");
        strbuf_add_xml_escaped(w->sb, key);
        strbuf_adds(w->sb, "</name>");
    }
}

void xvw_end_struct(XvWriter *w)
{
    w->depth--;
    strbuf_adds(w->sb, w->fmt == XV_FMT_JSON ? "}" : "</struct>");
    value_end(w);
}

void xvw_begin_array(XvWriter *w)
{
    value_begin(w);
    strbuf_adds(w->sb, w->fmt == XV_FMT_JSON ? "[" : "<array><data>");
    push(w, 'a');
}

void xvw_end_array(XvWriter *w)
{
    w->depth--;
    strbuf_adds(w->sb, w->fmt == XV_FMT_JSON ? "]" : "</data></array>");
    value_end(w);
}

void xvw_string(XvWriter *w, const char *s)
{
    value_begin(w);
    if (w->fmt == XV_FMT_JSON)
        strbuf_add_json_string(w->sb, s);
    else
        strbuf_add_xml_escaped(w->sb, s);
    value_end(w);
}

void xvw_int(XvWriter *w, int64_t i)
{
    value_begin(w);
    strbuf_addf(w->sb, "%" PRId64, i);
    value_end(w);
}

void xvw_float(XvWriter *w, double f)
{
    value_begin(w);
    if (w->fmt == XV_FMT_JSON) {
        if (isfinite(f))
            strbuf_addf(w->sb, "%.16g", f);
        else
            strbuf_adds(w->sb, "null");
    } else {
        strbuf_addf(w->sb, "<double>%.16g</double>", f);
    }
    value_end(w);
}

void xvw_bool(XvWriter *w, bool b)
{
    value_begin(w);
    if (w->fmt == XV_FMT_JSON)
        strbuf_adds(w->sb, b ? "true" : "false");
    else
        strbuf_adds(w->sb, b ? "<boolean>1</boolean>" : "<boolean>0</boolean>");
    value_end(w);
}

void xvw_datetime(XvWriter *w, int64_t t)
{
    char buf[32];
    xs_datetime_format(t, buf, sizeof(buf));
    value_begin(w);
    if (w->fmt == XV_FMT_JSON)
        strbuf_add_json_string(w->sb, buf);
    else
        strbuf_addf(w->sb, "<dateTime.iso8601>%s</dateTime.iso8601>", buf);
    value_end(w);
}

void xvw_null(XvWriter *w)
{
    value_begin(w);
    if (w->fmt == XV_FMT_JSON)
        strbuf_adds(w->sb, "null");
    /* XML-RPC as xapi writes it: void is the empty string */
    value_end(w);
}

void xvw_value(XvWriter *w, const XsValue *v)
{
    switch (v->kind) {
    case XV_NULL:
        xvw_null(w);
        break;
    case XV_STRING:
        xvw_string(w, v->s);
        break;
    case XV_INT:
        xvw_int(w, v->i);
        break;
    case XV_FLOAT:
        xvw_float(w, v->f);
        break;
    case XV_BOOL:
        xvw_bool(w, v->b);
        break;
    case XV_DATETIME:
        xvw_datetime(w, v->i);
        break;
    case XV_ARRAY:
        xvw_begin_array(w);
        for (uint32_t i = 0; i < v->n; i++)
            xvw_value(w, &v->items[i]);
        xvw_end_array(w);
        break;
    case XV_STRUCT:
        xvw_begin_struct(w);
        for (uint32_t i = 0; i < v->n; i++) {
            xvw_key(w, xv_struct_key(v, i));
            xvw_value(w, xv_struct_val(v, i));
        }
        xvw_end_struct(w);
        break;
    }
}

void xv_to_xmlrpc(StrBuf *sb, const XsValue *v)
{
    XvWriter w;
    xvw_init(&w, XV_FMT_XMLRPC, sb);
    xvw_value(&w, v);
}

void xv_to_json(StrBuf *sb, const XsValue *v)
{
    XvWriter w;
    xvw_init(&w, XV_FMT_JSON, sb);
    xvw_value(&w, v);
}

/* ---- XML-RPC parsing -------------------------------------------------- */

static bool is_elem(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *first_elem(const xmlNode *n)
{
    for (n = n ? n->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static const xmlNode *next_elem(const xmlNode *n)
{
    for (n = n->next; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static char *node_text(const xmlNode *n)
{
    xmlChar *c = xmlNodeGetContent(n);
    char *s = xstrdup(c ? (const char *)c : "");
    xmlFree(c);
    return s;
}

static bool parse_int(const char *s, int64_t *out)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (!*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static XsValue *parse_value(const xmlNode *v, int depth, char **err)
{
    if (depth > XV_MAX_DEPTH) {
        *err = xstrdup("XML-RPC value nested too deeply");
        return NULL;
    }
    const xmlNode *t = first_elem(v);
    if (!t)
        return xv_string_take(node_text(v)); /* untyped = string */
    const char *tn = (const char *)t->name;
    if (strcmp(tn, "string") == 0)
        return xv_string_take(node_text(t));
    if (strcmp(tn, "i4") == 0 || strcmp(tn, "int") == 0 || strcmp(tn, "i8") == 0) {
        char *s = node_text(t);
        int64_t i;
        bool ok = parse_int(s, &i);
        free(s);
        if (!ok) {
            *err = xstrdup("XML-RPC: malformed integer");
            return NULL;
        }
        return xv_int(i);
    }
    if (strcmp(tn, "boolean") == 0) {
        char *s = node_text(t);
        bool ok = strcmp(s, "1") == 0 || strcmp(s, "0") == 0 || strcmp(s, "true") == 0 ||
                  strcmp(s, "false") == 0;
        bool b = strcmp(s, "1") == 0 || strcmp(s, "true") == 0;
        free(s);
        if (!ok) {
            *err = xstrdup("XML-RPC: malformed boolean");
            return NULL;
        }
        return xv_bool(b);
    }
    if (strcmp(tn, "double") == 0) {
        char *s = node_text(t);
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        bool ok = *s && !*end && !errno;
        free(s);
        if (!ok) {
            *err = xstrdup("XML-RPC: malformed double");
            return NULL;
        }
        return xv_float(d);
    }
    if (strcmp(tn, "dateTime.iso8601") == 0) {
        char *s = node_text(t);
        int64_t d;
        bool ok = xs_datetime_parse(s, &d);
        free(s);
        if (!ok) {
            *err = xstrdup("XML-RPC: malformed dateTime.iso8601");
            return NULL;
        }
        return xv_datetime(d);
    }
    if (strcmp(tn, "nil") == 0)
        return xv_null();
    if (strcmp(tn, "array") == 0) {
        const xmlNode *data = first_elem(t);
        if (!is_elem(data, "data")) {
            *err = xstrdup("XML-RPC: <array> without <data>");
            return NULL;
        }
        XsValue *a = xv_array();
        for (const xmlNode *c = first_elem(data); c; c = next_elem(c)) {
            if (!is_elem(c, "value")) {
                *err = xstrdup("XML-RPC: unexpected element in <data>");
                xv_free(a);
                return NULL;
            }
            XsValue *item = parse_value(c, depth + 1, err);
            if (!item) {
                xv_free(a);
                return NULL;
            }
            xv_array_push(a, item);
        }
        return a;
    }
    if (strcmp(tn, "struct") == 0) {
        XsValue *s = xv_struct();
        for (const xmlNode *m = first_elem(t); m; m = next_elem(m)) {
            const xmlNode *name = first_elem(m);
            const xmlNode *val = name ? next_elem(name) : NULL;
            if (!is_elem(m, "member") || !is_elem(name, "name") || !is_elem(val, "value")) {
                *err = xstrdup("XML-RPC: malformed <member>");
                xv_free(s);
                return NULL;
            }
            XsValue *item = parse_value(val, depth + 1, err);
            if (!item) {
                xv_free(s);
                return NULL;
            }
            char *key = node_text(name);
            xv_struct_set(s, key, item);
            free(key);
        }
        return s;
    }
    if (strcmp(tn, "base64") == 0)
        return xv_string_take(node_text(t));
    *err = xasprintf("XML-RPC: unknown value type <%s>", tn);
    return NULL;
}

static xmlDoc *read_doc(const char *text, size_t len, char **err)
{
    if (len > INT32_MAX) {
        *err = xstrdup("XML document too large");
        return NULL;
    }
    xmlDoc *doc = xmlReadMemory(text, (int)len, "request.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                    XML_PARSE_NOBLANKS);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        *err = xasprintf("XML parse error: %s",
                         e && e->message ? e->message : "malformed document");
        size_t l = strlen(*err);
        if (l && (*err)[l - 1] == '\n')
            (*err)[l - 1] = '\0';
        return NULL;
    }
    if (doc->intSubset || doc->extSubset) {
        *err = xstrdup("XML parse error: document type declarations are not accepted");
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

bool xmlrpc_parse_call(const char *text, size_t len, XmlRpcCall *out, char **err)
{
    memset(out, 0, sizeof(*out));
    xmlDoc *doc = read_doc(text, len, err);
    if (!doc)
        return false;
    const xmlNode *root = xmlDocGetRootElement(doc);
    const xmlNode *mn = NULL, *params = NULL;
    if (!is_elem(root, "methodCall")) {
        *err = xstrdup("XML-RPC: the root element is not <methodCall>");
        goto fail;
    }
    for (const xmlNode *c = first_elem(root); c; c = next_elem(c)) {
        if (is_elem(c, "methodName"))
            mn = c;
        else if (is_elem(c, "params"))
            params = c;
    }
    if (!mn) {
        *err = xstrdup("XML-RPC: <methodName> missing");
        goto fail;
    }
    out->method = node_text(mn);
    out->params = xv_array();
    if (params) {
        for (const xmlNode *p = first_elem(params); p; p = next_elem(p)) {
            const xmlNode *v = first_elem(p);
            if (!is_elem(p, "param") || !is_elem(v, "value")) {
                *err = xstrdup("XML-RPC: malformed <param>");
                goto fail;
            }
            XsValue *item = parse_value(v, 0, err);
            if (!item)
                goto fail;
            xv_array_push(out->params, item);
        }
    }
    xmlFreeDoc(doc);
    return true;
fail:
    xmlFreeDoc(doc);
    xmlrpc_call_release(out);
    return false;
}

void xmlrpc_call_release(XmlRpcCall *c)
{
    free(c->method);
    xv_free(c->params);
    memset(c, 0, sizeof(*c));
}

void xmlrpc_write_call(StrBuf *sb, const char *method, const XsValue *params)
{
    strbuf_adds(sb, "<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    strbuf_add_xml_escaped(sb, method);
    strbuf_adds(sb, "</methodName><params>");
    for (uint32_t i = 0; i < params->n; i++) {
        strbuf_adds(sb, "<param>");
        xv_to_xmlrpc(sb, &params->items[i]);
        strbuf_adds(sb, "</param>");
    }
    strbuf_adds(sb, "</params></methodCall>\n");
}

XsValue *xmlrpc_parse_response(const char *text, size_t len, char **err)
{
    xmlDoc *doc = read_doc(text, len, err);
    if (!doc)
        return NULL;
    XsValue *res = NULL;
    const xmlNode *root = xmlDocGetRootElement(doc);
    const xmlNode *params = first_elem(root);
    const xmlNode *param = params ? first_elem(params) : NULL;
    const xmlNode *v = param ? first_elem(param) : NULL;
    if (!is_elem(root, "methodResponse") || !is_elem(params, "params") ||
        !is_elem(param, "param") || !is_elem(v, "value"))
        *err = xstrdup("XML-RPC: malformed methodResponse");
    else
        res = parse_value(v, 0, err);
    xmlFreeDoc(doc);
    return res;
}

XsValue *xmlrpc_parse_value_document(const char *text, size_t len, char **err)
{
    xmlDoc *doc = read_doc(text, len, err);
    if (!doc)
        return NULL;
    XsValue *res = NULL;
    const xmlNode *root = xmlDocGetRootElement(doc);
    if (!is_elem(root, "value"))
        *err = xstrdup("XML-RPC: the root element is not <value>");
    else
        res = parse_value(root, 0, err);
    xmlFreeDoc(doc);
    return res;
}

/* ---- datetimes -------------------------------------------------------- */

bool xs_datetime_parse(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int n = 0;
    if (sscanf(s, "%4d%2d%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 &&
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return false;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh = 0, mm = 0, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &k) == 2 ||
            sscanf(p + 1, "%2d%2d%n", &hh, &mm, &k) == 2) {
            offset = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
            p += 1 + k;
        } else {
            return false;
        }
    }
    if (*p)
        return false;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm) - offset;
    return true;
}

void xs_datetime_format(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y%m%dT%H:%M:%SZ", &tm);
}

void xs_datetime_format_rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
