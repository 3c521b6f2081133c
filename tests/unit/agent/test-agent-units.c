/*
 * Unit tests of the agent's pure parts: request framing (qga_stream), base64,
 * the QEMU-style JSON writer and the dispatcher (table order, envelope and
 * argument errors, ids). No system calls of consequence: the commands used
 * here only read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent/agent.h"
#include "agent/b64.h"
#include "agent/cmd.h"
#include "agent/qga_dispatch.h"
#include "agent/qga_json.h"
#include "agent/qga_stream.h"
#include "util/strbuf.h"

/* Feeds all of s; records each event and its text as "EV:text|". */
static void feed_all(QgaStream *st, const char *s, size_t len, StrBuf *log)
{
    while (len > 0) {
        size_t used = 0;
        QgaStreamEvent ev = qga_stream_feed(st, s, len, &used);
        assert_true(used <= len);
        s += used;
        len -= used;
        switch (ev) {
        case QGA_STREAM_MESSAGE:
            strbuf_addf(log, "M:%s|", st->buf.buf);
            break;
        case QGA_STREAM_JUNK:
            strbuf_addf(log, "J:%s|", st->buf.buf);
            break;
        case QGA_STREAM_TOO_LONG:
            strbuf_adds(log, "L|");
            break;
        default:
            break;
        }
        if (ev == QGA_STREAM_NONE)
            assert_int_equal(len, 0);
    }
}

static void check_stream(const char *in, size_t max, const char *want)
{
    QgaStream st;
    qga_stream_init(&st, max);
    StrBuf log = STRBUF_INIT;
    feed_all(&st, in, strlen(in), &log);
    assert_string_equal(log.buf, want);
    /* Byte by byte gives the same result. */
    qga_stream_reset(&st);
    StrBuf log2 = STRBUF_INIT;
    for (const char *p = in; *p; p++)
        feed_all(&st, p, 1, &log2);
    assert_string_equal(log2.buf, want);
    strbuf_release(&log);
    strbuf_release(&log2);
    qga_stream_release(&st);
}

static void test_stream_basic(void **state)
{
    check_stream("{\"execute\":\"guest-ping\"}\n", 0, "M:{\"execute\":\"guest-ping\"}|");
    /* No separator needed between requests. */
    check_stream("{\"a\":1}{\"b\":[2,{}]}", 0, "M:{\"a\":1}|M:{\"b\":[2,{}]}|");
    /* Brackets and quotes inside strings do not count. */
    check_stream("{\"a\":\"}{\\\"]\"}", 0, "M:{\"a\":\"}{\\\"]\"}|");
    /* A request may span lines. */
    check_stream("{\n\"a\":\n1\n}\n", 0, "M:{\n\"a\":\n1\n}|");
    check_stream("[1, 2]", 0, "M:[1, 2]|");
}

static void test_stream_sentinel(void **state)
{
    /* 0xFF drops a partial request, even inside a string. */
    check_stream("{\"a\":\"xx\xff{\"b\":1}", 0, "M:{\"b\":1}|");
    check_stream("\xff\xff{\"b\":1}\xff", 0, "M:{\"b\":1}|");
}

static void test_stream_junk(void **state)
{
    check_stream("garbage {\"a\":1}", 0, "J:garbage|M:{\"a\":1}|");
    check_stream("12{\"a\":1}", 0, "J:12|M:{\"a\":1}|");
    check_stream("} ", 0, "J:}|");
    /* Unterminated junk waits for more input. */
    check_stream("abc", 0, "");
}

static void test_stream_too_long(void **state)
{
    /* Overlong: one error, then everything up to the newline is skipped. */
    check_stream("{\"a\":\"0123456789\"}\n{\"b\":1}", 8, "L|M:{\"b\":1}|");
    check_stream("{\"a\":\"0123456789 } {\"c\":1}\n{\"b\":1}", 8, "L|M:{\"b\":1}|");
    check_stream("aaaaaaaaaaaaaaaaaaaa\n{}", 8, "L|M:{}|");
    /* Exactly at the bound is fine. */
    check_stream("{\"a\":1}", 7, "M:{\"a\":1}|");
    check_stream("{\"a\":12}", 7, "L|");
}

static void test_b64(void **state)
{
    static const struct {
        const char *plain, *enc;
    } v[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        StrBuf e = STRBUF_INIT, d = STRBUF_INIT;
        b64_encode(&e, v[i].plain, strlen(v[i].plain));
        assert_string_equal(e.buf, v[i].enc);
        assert_true(b64_decode(&d, v[i].enc));
        assert_string_equal(d.buf, v[i].plain);
        strbuf_release(&e);
        strbuf_release(&d);
    }
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    StrBuf e = STRBUF_INIT, d = STRBUF_INIT;
    b64_encode(&e, all, sizeof(all));
    assert_true(b64_decode(&d, e.buf));
    assert_int_equal(d.len, 256);
    assert_memory_equal(d.buf, all, 256);
    strbuf_reset(&d);
    assert_true(b64_decode(&d, "Zm9v\nYmFy"));
    assert_string_equal(d.buf, "foobar");
    strbuf_reset(&d);
    assert_true(b64_decode(&d, "Zg"));
    assert_string_equal(d.buf, "f");
    strbuf_reset(&d);
    assert_false(b64_decode(&d, "Zm9v!"));
    assert_false(b64_decode(&d, "Z"));
    assert_false(b64_decode(&d, "Zg==Zg=="));
    assert_false(b64_decode(&d, "Zg==="));
    assert_int_equal(d.len, 0);
    strbuf_release(&e);
    strbuf_release(&d);
}

static void check_json_string(const char *in, size_t len, const char *want)
{
    StrBuf sb = STRBUF_INIT;
    qga_json_append_string(&sb, in, len);
    assert_string_equal(sb.buf, want);
    strbuf_release(&sb);
}

static void test_json(void **state)
{
    check_json_string("a\"b\\c/", 6, "\"a\\\"b\\\\c/\"");
    check_json_string("\n\t\r\b\f\x01", 6, "\"\\n\\t\\r\\b\\f\\u0001\"");
    check_json_string("\xe2\x80\x9c", 3, "\"\\u201c\"");               /* U+201C */
    check_json_string("\xf0\x9f\x98\x80", 4, "\"\\ud83d\\ude00\"");    /* U+1F600 */
    check_json_string("a\xffz", 3, "\"a\\ufffdz\"");                   /* invalid byte */
    check_json_string("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");            /* overlong */
    check_json_string("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    check_json_string("a\0b", 3, "\"a\\u0000b\"");

    struct json_object *o = json_object_new_object();
    qga_json_add_int(o, "a", -5);
    qga_json_add_uint(o, "b", UINT64_MAX);
    qga_json_add_bool(o, "c", true);
    struct json_object *arr = json_object_new_array();
    json_object_array_add(arr, json_object_new_string("x"));
    json_object_array_add(arr, NULL);
    json_object_array_add(arr, json_object_new_object());
    json_object_object_add(o, "d", arr);
    StrBuf sb = STRBUF_INIT;
    qga_json_append(&sb, o);
    assert_string_equal(
        sb.buf, "{\"a\": -5, \"b\": 18446744073709551615, \"c\": true, \"d\": [\"x\", null, {}]}");
    strbuf_release(&sb);
    json_object_put(o);
}

static void test_table_sorted(void **state)
{
    size_t n;
    const QgaCommand *c = qga_dispatch_commands(&n);
    assert_true(n > 10);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(c[i - 1].name, c[i].name) < 0);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(qga_dispatch_find(c[i].name), &c[i]);
        for (const QgaParam *p = c[i].params; p->name; p++)
            assert_true(p->type < QGA_ARG__MAX);
    }
    assert_null(qga_dispatch_find("guest-nope"));
    assert_null(qga_dispatch_find(""));
}

static Agent test_agent;

static int setup_agent(void **state)
{
    memset(&test_agent, 0, sizeof(test_agent));
    test_agent.sysconfdir = "/nonexistent";
    test_agent.sysconfdir_given = true;
    test_agent.stdio = true;
    test_agent.freeze_timeout = 60;
    cmd_exec_init(&test_agent);
    cmd_fs_init(&test_agent);
    return 0;
}

static int teardown_agent(void **state)
{
    cmd_exec_release(&test_agent);
    cmd_fs_release(&test_agent);
    return 0;
}

static void check_request(const char *req, const char *want)
{
    StrBuf out = STRBUF_INIT;
    qga_dispatch_request(&test_agent, req, strlen(req), &out);
    assert_string_equal(out.buf, want);
    strbuf_release(&out);
}

static void test_dispatch(void **state)
{
    check_request("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1234}}",
                  "{\"return\": 1234}\n");
    check_request("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":-9223372036854775808}}",
                  "{\"return\": -9223372036854775808}\n");
    check_request("{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":7}}",
                  "\xff{\"return\": 7}\n");
    check_request("{\"execute\":\"guest-ping\",\"id\":{\"x\":[1]}}",
                  "{\"return\": {}, \"id\": {\"x\": [1]}}\n");
    check_request("{\"execute\":\"guest-nope\"}",
                  "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-nope "
                  "has not been found\"}}\n");
    check_request("{\"execute\":\"guest-sync\"}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is "
                  "missing\"}}\n");
    check_request("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":\"x\"},\"id\":3}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type "
                  "for 'id', expected: integer\"}, \"id\": 3}\n");
    check_request("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1.5}}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type "
                  "for 'id', expected: integer\"}}\n");
    check_request("{\"execute\":\"guest-ping\",\"arguments\":{\"foo\":1}}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'foo' is "
                  "unexpected\"}}\n");
    check_request("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"x\",\"arg\":[1]}}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type "
                  "for 'arg[0]', expected: string\"}}\n");
    check_request("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"a\\u0000b\"}}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter "
                  "'path'\"}}\n");
    check_request("[1,2]", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must "
                           "be a JSON object\"}}\n");
    check_request("{\"foo\":1}", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input "
                                 "member 'foo' is unexpected\"}}\n");
    check_request("{\"arguments\":{}}", "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                                        "\"QMP input lacks member 'execute'\"}}\n");
    check_request("{\"execute\":3}", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP "
                                     "input member 'execute' must be a string\"}}\n");
    check_request("{\"execute\":\"guest-ping\",\"arguments\":null}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member "
                  "'arguments' must be an object\"}}\n");
    check_request("{\"execute\":\"guest-shutdown\",\"arguments\":{\"mode\":\"bogus\"}}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"mode is invalid (valid "
                  "values are: halt|powerdown|reboot\"}}\n");
    /* --stdio without --power-cmd: refused, never acted on. */
    check_request("{\"execute\":\"guest-shutdown\"}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"guest-shutdown is refused "
                  "in --stdio mode without --power-cmd\"}}\n");
    assert_int_equal(test_agent.pending_power, AGENT_POWER_NONE);
    check_request("{\"execute\":\"guest-fsfreeze-status\"}", "{\"return\": \"thawed\"}\n");
}

static void test_dispatch_bad_json(void **state)
{
    static const char *const bad[] = {
        "{",
        "{\"execute\":}",
        "{\"execute\":\"guest-ping\"",
        "{'execute':'guest-ping'}",
        "{\"execute\":\"guest-ping\"}}",
        "{\"a\":\"\xff\"}",
        /* Deeper than the parser accepts. */
        ("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        StrBuf out = STRBUF_INIT;
        qga_dispatch_request(&test_agent, bad[i], strlen(bad[i]), &out);
        assert_non_null(strstr(out.buf, "{\"error\": {\"class\": \"GenericError\", \"desc\": "));
        assert_int_equal(out.buf[out.len - 1], '\n');
        assert_null(strchr(out.buf, '\xff'));
        strbuf_release(&out);
    }
}

static void test_disabled(void **state)
{
    char name[] = "guest-get-time";
    char *disabled[] = {name, NULL};
    test_agent.disabled = disabled;
    check_request("{\"execute\":\"guest-get-time\"}",
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"The command "
                  "guest-get-time has been disabled for this instance\"}}\n");
    StrBuf out = STRBUF_INIT;
    const char *req = "{\"execute\":\"guest-info\"}";
    qga_dispatch_request(&test_agent, req, strlen(req), &out);
    assert_non_null(strstr(out.buf, "{\"enabled\": false, \"name\": \"guest-get-time\""));
    assert_non_null(strstr(out.buf, "{\"enabled\": true, \"name\": \"guest-ping\""));
    strbuf_release(&out);
    test_agent.disabled = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_basic),
        cmocka_unit_test(test_stream_sentinel),
        cmocka_unit_test(test_stream_junk),
        cmocka_unit_test(test_stream_too_long),
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_table_sorted),
        cmocka_unit_test_setup_teardown(test_dispatch, setup_agent, teardown_agent),
        cmocka_unit_test_setup_teardown(test_dispatch_bad_json, setup_agent, teardown_agent),
        cmocka_unit_test_setup_teardown(test_disabled, setup_agent, teardown_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
