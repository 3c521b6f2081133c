/*
 * XsValue on the wire: XML-RPC as xapi writes it (strings and ints as bare
 * <value>text</value>, <boolean>, <double>, <dateTime.iso8601>, <array>,
 * <struct>) and JSON. Writers append to a StrBuf, either from a whole XsValue
 * or piece by piece (so large records are written without building them
 * first). Parsers are bounded: nesting depth and sizes are limited by the
 * caller's buffer and XV_MAX_DEPTH.
 */
#ifndef HX_MODEL_WIRE_H
#define HX_MODEL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/value.h"
#include "util/strbuf.h"

#define XV_MAX_DEPTH 64

typedef enum {
    XV_FMT_XMLRPC,
    XV_FMT_JSON,
} XvFormat;

typedef struct XvWriter {
    XvFormat fmt;
    StrBuf *sb;
    int depth;
    struct {
        char kind; /* 'a' array, 's' struct */
        bool first;
    } stack[XV_MAX_DEPTH];
} XvWriter;

void xvw_init(XvWriter *w, XvFormat fmt, StrBuf *sb);
void xvw_begin_struct(XvWriter *w);
/* Starts a struct member; the next value written is its value. */
void xvw_key(XvWriter *w, const char *key);
void xvw_end_struct(XvWriter *w);
void xvw_begin_array(XvWriter *w);
void xvw_end_array(XvWriter *w);
void xvw_string(XvWriter *w, const char *s);
void xvw_int(XvWriter *w, int64_t i);
void xvw_float(XvWriter *w, double f);
void xvw_bool(XvWriter *w, bool b);
void xvw_datetime(XvWriter *w, int64_t t);
void xvw_null(XvWriter *w);
void xvw_value(XvWriter *w, const XsValue *v);

/* Whole-value conveniences. */
void xv_to_xmlrpc(StrBuf *sb, const XsValue *v);
void xv_to_json(StrBuf *sb, const XsValue *v);

/*
 * Parses JSON text into a value. On error returns NULL and sets *err to a
 * malloc'd message.
 */
XsValue *xv_from_json(const char *text, size_t len, char **err);

/* An XML-RPC methodCall: method name and params (an XV_ARRAY). */
typedef struct XmlRpcCall {
    char *method;
    XsValue *params;
} XmlRpcCall;

bool xmlrpc_parse_call(const char *text, size_t len, XmlRpcCall *out, char **err);
void xmlrpc_call_release(XmlRpcCall *c);
void xmlrpc_write_call(StrBuf *sb, const char *method, const XsValue *params);
/* Parses a methodResponse and returns its single param value. */
XsValue *xmlrpc_parse_response(const char *text, size_t len, char **err);
/* Parses a document whose root element is <value> (ova.xml, task results). */
XsValue *xmlrpc_parse_value_document(const char *text, size_t len, char **err);

/* Datetimes: XenAPI's "20240101T12:00:00Z" (also accepts 2024-01-01T12:00:00Z,
 * fractions and numeric offsets). */
bool xs_datetime_parse(const char *s, int64_t *out);
/* "20240101T12:00:00Z" into buf (at least 32 bytes). */
void xs_datetime_format(int64_t t, char *buf, size_t len);
/* "2024-01-01T12:00:00Z" (how xe prints datetimes). */
void xs_datetime_format_rfc3339(int64_t t, char *buf, size_t len);

#endif
