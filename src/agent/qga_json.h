/*
 * JSON output in the exact style of QEMU's guest agent ({"return": 1},
 * ", " and ": " separators, ASCII only with \uXXXX escapes), so that a host
 * cannot tell our replies from the stock agent's by their bytes apart from
 * member order. Parsing is json-c's job; this file only writes.
 */
#ifndef HX_AGENT_QGA_JSON_H
#define HX_AGENT_QGA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "util/strbuf.h"

/* Appends obj (NULL prints null). */
void qga_json_append(StrBuf *sb, struct json_object *obj);

/*
 * Appends s[0..len) as a JSON string literal. Non-ASCII UTF-8 becomes
 * \uXXXX (surrogate pairs above U+FFFF); bytes that are not valid UTF-8
 * become \uFFFD, so the output is always valid JSON.
 */
void qga_json_append_string(StrBuf *sb, const char *s, size_t len);

/* Small builders that keep handler code short. All add to obj and return it. */
struct json_object *qga_json_add_str(struct json_object *obj, const char *key, const char *val);
struct json_object *qga_json_add_int(struct json_object *obj, const char *key, int64_t val);
struct json_object *qga_json_add_uint(struct json_object *obj, const char *key, uint64_t val);
struct json_object *qga_json_add_bool(struct json_object *obj, const char *key, bool val);

#endif
