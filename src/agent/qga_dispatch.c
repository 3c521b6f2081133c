/*
 * Request handling and the command table. See qga_dispatch.h. Everything
 * here treats the request as hostile: wrong types, unknown members, missing
 * arguments and bad JSON all become QGA error replies, never a crash.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cmd.h"
#include "agent/qga_dispatch.h"
#include "agent/qga_json.h"
#include "util/xalloc.h"

#include "util/banned.h"

/* JSON nesting accepted in a request. */
#define QGA_DISPATCH_MAX_DEPTH 32

static const QgaParam qga_params_none[] = {{NULL, QGA_ARG__MAX, false}};
static const QgaParam qga_params_sync[] = {
    {"id", QGA_ARG_INT, true},
    {NULL, QGA_ARG__MAX, false},
};
static const QgaParam qga_params_shutdown[] = {
    {"mode", QGA_ARG_STR, false},
    {NULL, QGA_ARG__MAX, false},
};
static const QgaParam qga_params_freeze_list[] = {
    {"mountpoints", QGA_ARG_STR_LIST, false},
    {NULL, QGA_ARG__MAX, false},
};
static const QgaParam qga_params_passwd[] = {
    {"username", QGA_ARG_STR, true},
    {"password", QGA_ARG_STR, true},
    {"crypted", QGA_ARG_BOOL, true},
    {NULL, QGA_ARG__MAX, false},
};
static const QgaParam qga_params_exec[] = {
    {"path", QGA_ARG_STR, true},
    {"arg", QGA_ARG_STR_LIST, false},
    {"env", QGA_ARG_STR_LIST, false},
    {"input-data", QGA_ARG_STR, false},
    {"capture-output", QGA_ARG_ANY, false},
    {NULL, QGA_ARG__MAX, false},
};
static const QgaParam qga_params_exec_status[] = {
    {"pid", QGA_ARG_INT, true},
    {NULL, QGA_ARG__MAX, false},
};

/* Sorted by name (strcmp order): found with bsearch, checked by a unit test. */
static const QgaCommand qga_commands[] = {
    {"guest-exec", cmd_exec_start, qga_params_exec, true, false},
    {"guest-exec-status", cmd_exec_status, qga_params_exec_status, true, true},
    {"guest-fsfreeze-freeze", cmd_fs_freeze, qga_params_none, true, false},
    {"guest-fsfreeze-freeze-list", cmd_fs_freeze_list, qga_params_freeze_list, true, false},
    {"guest-fsfreeze-status", cmd_fs_status, qga_params_none, true, true},
    {"guest-fsfreeze-thaw", cmd_fs_thaw, qga_params_none, true, true},
    {"guest-get-fsinfo", cmd_fs_info, qga_params_none, true, true},
    {"guest-get-host-name", cmd_system_host_name, qga_params_none, true, true},
    {"guest-get-osinfo", cmd_system_osinfo, qga_params_none, true, true},
    {"guest-get-time", cmd_system_time, qga_params_none, true, true},
    {"guest-get-users", cmd_system_users, qga_params_none, true, true},
    {"guest-get-vcpus", cmd_system_vcpus, qga_params_none, true, true},
    {"guest-info", cmd_system_info, qga_params_none, true, true},
    {"guest-network-get-interfaces", cmd_net_interfaces, qga_params_none, true, true},
    {"guest-ping", cmd_system_ping, qga_params_none, true, true},
    {"guest-set-user-password", cmd_passwd_set, qga_params_passwd, true, false},
    {"guest-shutdown", cmd_power_shutdown, qga_params_shutdown, false, false},
    {"guest-sync", cmd_system_sync, qga_params_sync, true, true},
    {"guest-sync-delimited", cmd_system_sync, qga_params_sync, true, true},
    {"hyperxe-get-memory", cmd_system_memory, qga_params_none, true, true},
};

const QgaCommand *qga_dispatch_commands(size_t *n)
{
    *n = ARRAY_SIZE(qga_commands);
    return qga_commands;
}

static int qga_dispatch_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const QgaCommand *)elem)->name);
}

const QgaCommand *qga_dispatch_find(const char *name)
{
    return bsearch(name, qga_commands, ARRAY_SIZE(qga_commands), sizeof(qga_commands[0]),
                   qga_dispatch_cmp);
}

bool qga_dispatch_enabled(const Agent *ag, const QgaCommand *cmd)
{
    for (char **d = ag->disabled; d && *d; d++)
        if (STREQ(*d, cmd->name))
            return false;
    return true;
}

/* -- errors ---------------------------------------------------------------- */

static const char *const qga_error_classes[QGA_ERROR__MAX] = {
    [QGA_ERROR_GENERIC] = "GenericError",
    [QGA_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
};

const char *qga_error_class_name(QgaErrorClass cls)
{
    return cls < QGA_ERROR__MAX ? qga_error_classes[cls] : "GenericError";
}

bool qga_error_set(QgaError *err, QgaErrorClass cls, const char *fmt, ...)
{
    if (err->desc)
        return false;
    va_list ap;
    va_start(ap, fmt);
    err->desc = xvasprintf(fmt, ap);
    va_end(ap);
    err->cls = cls;
    return false;
}

bool qga_error_errno(QgaError *err, int neg_errno, const char *fmt, ...)
{
    if (err->desc)
        return false;
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    err->desc = xasprintf("%s: %s", msg, strerror(-neg_errno));
    err->cls = QGA_ERROR_GENERIC;
    free(msg);
    return false;
}

void qga_error_release(QgaError *err)
{
    free(err->desc);
    err->desc = NULL;
}

/* -- replies --------------------------------------------------------------- */

static void qga_dispatch_write_error(StrBuf *out, const QgaError *err, struct json_object *id)
{
    strbuf_adds(out, "{\"error\": {\"class\": ");
    const char *cls = qga_error_class_name(err->cls);
    qga_json_append_string(out, cls, strlen(cls));
    strbuf_adds(out, ", \"desc\": ");
    const char *desc = err->desc ? err->desc : "unknown error";
    qga_json_append_string(out, desc, strlen(desc));
    strbuf_addch(out, '}');
    if (id) {
        strbuf_adds(out, ", \"id\": ");
        qga_json_append(out, id);
    }
    strbuf_adds(out, "}\n");
}

void qga_dispatch_parse_error(StrBuf *out, const char *what)
{
    QgaError err = {QGA_ERROR_GENERIC, NULL};
    qga_error_set(&err, QGA_ERROR_GENERIC, "JSON parse error, %s", what);
    qga_dispatch_write_error(out, &err, NULL);
    qga_error_release(&err);
}

/* -- arguments ------------------------------------------------------------- */

static const char *qga_dispatch_type_name(QgaArgType t)
{
    switch (t) {
    case QGA_ARG_INT:
        return "integer";
    case QGA_ARG_STR:
        return "string";
    case QGA_ARG_BOOL:
        return "boolean";
    case QGA_ARG_STR_LIST:
        return "array";
    default:
        return "value";
    }
}

/* A string with an embedded NUL cannot reach a C API intact: refuse it. */
static bool qga_dispatch_clean_string(struct json_object *v)
{
    const char *s = json_object_get_string(v);
    return strlen(s) == (size_t)json_object_get_string_len(v);
}

static bool qga_dispatch_check_args(const QgaCommand *cmd, struct json_object *args, QgaError *err)
{
    for (const QgaParam *p = cmd->params; p->name; p++) {
        struct json_object *v;
        if (!json_object_object_get_ex(args, p->name, &v)) {
            if (p->required)
                return qga_error_set(err, QGA_ERROR_GENERIC, "Parameter '%s' is missing", p->name);
            continue;
        }
        bool ok = true;
        switch (p->type) {
        case QGA_ARG_INT:
            ok = json_object_is_type(v, json_type_int);
            if (ok && json_object_get_int64(v) == INT64_MAX &&
                json_object_get_uint64(v) > INT64_MAX)
                return qga_error_set(err, QGA_ERROR_GENERIC,
                                     "Parameter '%s' expects a value between %lld and %lld",
                                     p->name, (long long)INT64_MIN, (long long)INT64_MAX);
            break;
        case QGA_ARG_STR:
            ok = json_object_is_type(v, json_type_string);
            if (ok && !qga_dispatch_clean_string(v))
                return qga_error_set(err, QGA_ERROR_GENERIC, "Invalid parameter '%s'", p->name);
            break;
        case QGA_ARG_BOOL:
            ok = json_object_is_type(v, json_type_boolean);
            break;
        case QGA_ARG_STR_LIST:
            ok = json_object_is_type(v, json_type_array);
            for (size_t i = 0; ok && i < json_object_array_length(v); i++) {
                struct json_object *e = json_object_array_get_idx(v, i);
                if (!json_object_is_type(e, json_type_string))
                    return qga_error_set(err, QGA_ERROR_GENERIC,
                                         "Invalid parameter type for '%s[%zu]', expected: string",
                                         p->name, i);
                if (!qga_dispatch_clean_string(e))
                    return qga_error_set(err, QGA_ERROR_GENERIC, "Invalid parameter '%s[%zu]'",
                                         p->name, i);
            }
            break;
        default:
            break;
        }
        if (!ok)
            return qga_error_set(err, QGA_ERROR_GENERIC,
                                 "Invalid parameter type for '%s', expected: %s", p->name,
                                 qga_dispatch_type_name(p->type));
    }
    json_object_object_foreach(args, key, val)
    {
        (void)val;
        bool known = false;
        for (const QgaParam *p = cmd->params; p->name && !known; p++)
            known = STREQ(p->name, key);
        if (!known)
            return qga_error_set(err, QGA_ERROR_GENERIC, "Parameter '%s' is unexpected", key);
    }
    return true;
}

const char *qga_arg_str(struct json_object *args, const char *name)
{
    struct json_object *v;
    if (!args || !json_object_object_get_ex(args, name, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

bool qga_arg_has(struct json_object *args, const char *name)
{
    return args && json_object_object_get_ex(args, name, NULL);
}

int64_t qga_arg_int(struct json_object *args, const char *name, int64_t dflt)
{
    struct json_object *v;
    if (!args || !json_object_object_get_ex(args, name, &v) ||
        !json_object_is_type(v, json_type_int))
        return dflt;
    return json_object_get_int64(v);
}

bool qga_arg_bool(struct json_object *args, const char *name, bool dflt)
{
    struct json_object *v;
    if (!args || !json_object_object_get_ex(args, name, &v) ||
        !json_object_is_type(v, json_type_boolean))
        return dflt;
    return json_object_get_boolean(v);
}

/* -- requests -------------------------------------------------------------- */

static struct json_object *qga_dispatch_parse(const char *text, size_t len, QgaError *err)
{
    struct json_tokener *tok = json_tokener_new_ex(QGA_DISPATCH_MAX_DEPTH);
    if (!tok)
        abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_success && (size_t)json_tokener_get_parse_end(tok) != len) {
        json_object_put(obj);
        obj = NULL;
        qga_error_set(err, QGA_ERROR_GENERIC, "JSON parse error, trailing data");
    } else if (jerr != json_tokener_success) {
        json_object_put(obj);
        obj = NULL;
        qga_error_set(err, QGA_ERROR_GENERIC, "JSON parse error, %s",
                      jerr == json_tokener_continue ? "unexpected end of input"
                                                    : json_tokener_error_desc(jerr));
    }
    json_tokener_free(tok);
    return obj;
}

static bool qga_dispatch_envelope(struct json_object *req, const char **name,
                                  struct json_object **args, struct json_object **id, QgaError *err)
{
    if (!json_object_is_type(req, json_type_object))
        return qga_error_set(err, QGA_ERROR_GENERIC, "QMP input must be a JSON object");
    json_object_object_foreach(req, key, val)
    {
        if (STREQ(key, "execute")) {
            if (!json_object_is_type(val, json_type_string))
                return qga_error_set(err, QGA_ERROR_GENERIC,
                                     "QMP input member 'execute' must be a string");
            *name = json_object_get_string(val);
        } else if (STREQ(key, "arguments")) {
            if (!json_object_is_type(val, json_type_object))
                return qga_error_set(err, QGA_ERROR_GENERIC,
                                     "QMP input member 'arguments' must be an object");
            *args = val;
        } else if (STREQ(key, "id")) {
            *id = val;
        } else {
            return qga_error_set(err, QGA_ERROR_GENERIC, "QMP input member '%s' is unexpected",
                                 key);
        }
    }
    if (!*name)
        return qga_error_set(err, QGA_ERROR_GENERIC, "QMP input lacks member 'execute'");
    return true;
}

void qga_dispatch_request(Agent *ag, const char *text, size_t len, StrBuf *out)
{
    QgaError err = {QGA_ERROR_GENERIC, NULL};
    struct json_object *req = qga_dispatch_parse(text, len, &err);
    struct json_object *id = NULL;
    struct json_object *args = NULL;
    struct json_object *ret = NULL;
    const char *name = NULL;
    const QgaCommand *cmd = NULL;
    bool ok = false;

    if (!req || !qga_dispatch_envelope(req, &name, &args, &id, &err))
        goto reply;
    if (STREQ(name, "guest-sync-delimited"))
        strbuf_addch(out, (char)0xFF);
    cmd = qga_dispatch_find(name);
    if (!cmd) {
        qga_error_set(&err, QGA_ERROR_COMMAND_NOT_FOUND, "The command %s has not been found", name);
        goto reply;
    }
    if (!qga_dispatch_enabled(ag, cmd) || (!cmd->while_frozen && cmd_fs_frozen(ag))) {
        qga_error_set(&err, QGA_ERROR_GENERIC, "The command %s has been disabled for this instance",
                      name);
        goto reply;
    }
    struct json_object *empty = NULL;
    if (!args)
        args = empty = json_object_new_object();
    ok = qga_dispatch_check_args(cmd, args, &err) && cmd->handler(ag, args, &ret, &err);
    json_object_put(empty);

reply:
    if (ok && !cmd->success_response) {
        /* guest-shutdown: QEMU's agent sends nothing on success. */
    } else if (ok) {
        strbuf_adds(out, "{\"return\": ");
        if (ret)
            qga_json_append(out, ret);
        else
            strbuf_adds(out, "{}");
        if (id) {
            strbuf_adds(out, ", \"id\": ");
            qga_json_append(out, id);
        }
        strbuf_adds(out, "}\n");
    } else {
        qga_dispatch_write_error(out, &err, id);
    }
    json_object_put(ret);
    json_object_put(req);
    qga_error_release(&err);
}
