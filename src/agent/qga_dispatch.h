/*
 * The guest-agent command table and request handling: parses one request
 * text, checks its envelope and arguments the way QEMU's agent does (same
 * error classes and messages), calls the handler and writes the reply line.
 * Handlers live in the cmd_*.c files; this file does no system work itself.
 *
 * Adding a command: write the handler in a cmd_*.c file, declare it in
 * cmd.h, add a row to qga_commands[] in qga_dispatch.c keeping the table
 * sorted by name (a unit test checks), and extend tests/unit/agent.
 */
#ifndef HX_AGENT_QGA_DISPATCH_H
#define HX_AGENT_QGA_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "agent/agent.h"
#include "util/strbuf.h"

typedef enum {
    QGA_ERROR_GENERIC,
    QGA_ERROR_COMMAND_NOT_FOUND,
    QGA_ERROR__MAX,
} QgaErrorClass;

typedef struct QgaError {
    QgaErrorClass cls;
    char *desc; /* NULL until set */
} QgaError;

/* Sets the error once (later calls are ignored); always returns false. */
bool qga_error_set(QgaError *err, QgaErrorClass cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, with ": strerror(-neg_errno)" appended. */
bool qga_error_errno(QgaError *err, int neg_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void qga_error_release(QgaError *err);
const char *qga_error_class_name(QgaErrorClass cls);

typedef enum {
    QGA_ARG_INT,
    QGA_ARG_STR,
    QGA_ARG_BOOL,
    QGA_ARG_STR_LIST,
    QGA_ARG_ANY, /* the handler checks it */
    QGA_ARG__MAX,
} QgaArgType;

typedef struct QgaParam {
    const char *name;
    QgaArgType type;
    bool required;
} QgaParam;

/*
 * A handler gets the checked arguments (an object, never NULL) and on success
 * stores the "return" value in *ret (NULL means {}). On failure it sets err
 * and returns false.
 */
typedef bool (*QgaHandler)(Agent *ag, struct json_object *args, struct json_object **ret,
                           QgaError *err);

typedef struct QgaCommand {
    const char *name;
    QgaHandler handler;
    const QgaParam *params; /* terminated by a NULL name */
    bool success_response;  /* false: no reply on success (guest-shutdown) */
    bool while_frozen;      /* allowed while filesystems are frozen */
} QgaCommand;

/* The sorted table and its length. */
const QgaCommand *qga_dispatch_commands(size_t *n);
const QgaCommand *qga_dispatch_find(const char *name);
bool qga_dispatch_enabled(const Agent *ag, const QgaCommand *cmd);

/*
 * Handles one request text; appends the reply line (with a leading 0xFF for
 * guest-sync-delimited) to out, or nothing when the command sends no reply.
 */
void qga_dispatch_request(Agent *ag, const char *text, size_t len, StrBuf *out);

/* Appends the error reply for input that is not JSON at all. */
void qga_dispatch_parse_error(StrBuf *out, const char *what);

/* Argument accessors for handlers: the dispatcher already checked types. */
const char *qga_arg_str(struct json_object *args, const char *name); /* NULL if absent */
bool qga_arg_has(struct json_object *args, const char *name);
int64_t qga_arg_int(struct json_object *args, const char *name, int64_t dflt);
bool qga_arg_bool(struct json_object *args, const char *name, bool dflt);

#endif
