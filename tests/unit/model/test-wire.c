/*
 * Unit tests of the wire encodings: XML-RPC as xapi writes it, JSON, the
 * parsers' refusal of malformed or hostile input, and datetimes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "model/wire.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static void test_xmlrpc_encoding_is_xapi_style(void **state)
{
    XsValue *s = xv_struct();
    xv_struct_set_string(s, "name", "a<b>&");
    xv_struct_set(s, "n", xv_int(-7));
    xv_struct_set(s, "ok", xv_bool(true));
    xv_struct_set(s, "f", xv_float(1.0));
    xv_struct_set(s, "d", xv_datetime(0));
    xv_struct_set(s, "set", xv_array());
    StrBuf sb = STRBUF_INIT;
    xv_to_xmlrpc(&sb, s);
    assert_string_equal(sb.buf,
                        "<value><struct>"
                        "<member><name>name</name><value>a&lt;b&gt;&amp;</value></member>"
                        "<member><name>n</name><value>-7</value></member>"
                        "<member><name>ok</name><value><boolean>1</boolean></value></member>"
                        "<member><name>f</name><value><double>1</double></value></member>"
                        "<member><name>d</name><value><dateTime.iso8601>19700101T00:00:00Z"
                        "</dateTime.iso8601></value></member>"
                        "<member><name>set</name><value><array><data></data></array></value>"
                        "</member></struct></value>");
    char *err = NULL;
    XsValue *back = xmlrpc_parse_value_document(sb.buf, sb.len, &err);
    assert_non_null(back);
    /* ints come back as strings (untyped), the rest typed */
    assert_string_equal(xv_struct_get_string(back, "n"), "-7");
    assert_true(xv_struct_get(back, "ok")->b);
    assert_int_equal(xv_struct_get(back, "d")->kind, XV_DATETIME);
    xv_free(back);
    strbuf_release(&sb);
    xv_free(s);
}

static void test_json_round_trip(void **state)
{
    const char *text = "{\"a\":[1,\"two\",true,null,2.5],\"b\":{\"c\":\"\\u00e9\\n\"}}";
    char *err = NULL;
    XsValue *v = xv_from_json(text, strlen(text), &err);
    assert_non_null(v);
    StrBuf sb = STRBUF_INIT;
    xv_to_json(&sb, v);
    XsValue *again = xv_from_json(sb.buf, sb.len, &err);
    assert_non_null(again);
    assert_true(xv_equal(v, again));
    xv_free(v);
    xv_free(again);
    strbuf_release(&sb);
}

static void test_json_rejects_garbage(void **state)
{
    static const char *const bad[] = {"", "{", "{\"a\":}", "[1,2", "nul", "{} x", "\"\\u12"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *err = NULL;
        XsValue *v = xv_from_json(bad[i], strlen(bad[i]), &err);
        assert_null(v);
        assert_non_null(err);
        free(err);
    }
}

static void test_json_depth_limit(void **state)
{
    StrBuf sb = STRBUF_INIT;
    for (int i = 0; i < 10000; i++)
        strbuf_addch(&sb, '[');
    char *err = NULL;
    assert_null(xv_from_json(sb.buf, sb.len, &err));
    free(err);
    strbuf_release(&sb);
}

static void test_xmlrpc_call_parse(void **state)
{
    const char *req = "<?xml version=\"1.0\"?><methodCall><methodName>VM.start</methodName>"
                      "<params><param><value><string>OpaqueRef:s</string></value></param>"
                      "<param><value><i4>12</i4></value></param>"
                      "<param><value><boolean>0</boolean></value></param>"
                      "<param><value><struct><member><name>k</name><value>v</value></member>"
                      "</struct></value></param></params></methodCall>";
    XmlRpcCall c;
    char *err = NULL;
    assert_true(xmlrpc_parse_call(req, strlen(req), &c, &err));
    assert_string_equal(c.method, "VM.start");
    assert_int_equal(c.params->n, 4);
    assert_string_equal(c.params->items[0].s, "OpaqueRef:s");
    assert_int_equal(c.params->items[1].i, 12);
    assert_false(c.params->items[2].b);
    assert_string_equal(xv_struct_get_string(&c.params->items[3], "k"), "v");
    xmlrpc_call_release(&c);
}

static void test_xmlrpc_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "<methodCall>",
        "<notacall/>",
        "<methodCall><params/></methodCall>",
        "<methodCall><methodName>x</methodName><params><param><value><i4>x</i4></value></param>"
        "</params></methodCall>",
        "<methodCall><methodName>x</methodName><params><param><value><boolean>2</boolean>"
        "</value></param></params></methodCall>",
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><methodCall><methodName>&a;"
        "</methodName></methodCall>",
        "<methodCall><methodName>x</methodName><params><param><value><struct><member><name>a"
        "</name></member></struct></value></param></params></methodCall>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        XmlRpcCall c;
        char *err = NULL;
        assert_false(xmlrpc_parse_call(bad[i], strlen(bad[i]), &c, &err));
        assert_non_null(err);
        free(err);
    }
}

static void test_datetimes(void **state)
{
    int64_t t;
    assert_true(xs_datetime_parse("20240102T03:04:05Z", &t));
    assert_int_equal(t, 1704164645);
    assert_true(xs_datetime_parse("2024-01-02T03:04:05Z", &t));
    assert_int_equal(t, 1704164645);
    assert_true(xs_datetime_parse("2024-01-02T04:04:05+01:00", &t));
    assert_int_equal(t, 1704164645);
    assert_true(xs_datetime_parse("20240102T03:04:05.123Z", &t));
    assert_false(xs_datetime_parse("yesterday", &t));
    assert_false(xs_datetime_parse("20241302T03:04:05Z", &t));
    char buf[32];
    xs_datetime_format(1704164645, buf, sizeof(buf));
    assert_string_equal(buf, "20240102T03:04:05Z");
    xs_datetime_format_rfc3339(1704164645, buf, sizeof(buf));
    assert_string_equal(buf, "2024-01-02T03:04:05Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xmlrpc_encoding_is_xapi_style),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_rejects_garbage),
        cmocka_unit_test(test_json_depth_limit),
        cmocka_unit_test(test_xmlrpc_call_parse),
        cmocka_unit_test(test_xmlrpc_rejects_malformed),
        cmocka_unit_test(test_datetimes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
