/*
 * xe: the command-line client, with XenServer's syntax and output. The
 * command table is built from the schema's CLI records (the generic
 * <class>-list and <class>-param-* commands of every class) plus the
 * hand-written commands of each family (cli/<family>.c). Output goes through
 * the record printer so that layout is byte-for-byte XenServer's.
 */
#ifndef HX_CLI_CLI_H
#define HX_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "client/client.h"
#include "model-gen.h"
#include "util/error.h"
#include "util/strbuf.h"

typedef struct CliParam {
    char *key;
    char *value;
} CliParam;

typedef struct Cli Cli;
typedef struct CliCommand CliCommand;

typedef int (*CliRun)(Cli *cli, const CliCommand *cmd);

enum {
    CLI_CMD_NO_LOGIN = 1 << 0, /* help and friends */
    CLI_CMD_HIDDEN = 1 << 1,   /* not listed by help */
};

struct CliCommand {
    const char *name;
    const char *reqd; /* comma-separated required parameters */
    const char *optn; /* comma-separated optional parameters */
    const char *help;
    CliRun run;
    unsigned flags;
    /* Generic class commands. */
    const XsClass *cls;
    const XsCliView *view;
};

struct Cli {
    XcConn *conn;
    CliParam *params;
    size_t nparams;
    bool minimal;
    bool force;
    bool multiple;
    const char *command;
    FILE *out;
    /* ref -> record caches, one per class (see record.c) */
    struct CliCache *cache;
    bool interactive; /* stdout is a terminal: progress bars */
};

/* ---- parameters (params.c) ---------------------------------------------- */
const char *cli_param(Cli *cli, const char *key);
bool cli_has(Cli *cli, const char *key);
/* Parses true/t/yes/y/1/false/f/no/n/0 (any case). */
bool cli_parse_bool(const char *s, bool *out);
/* Parses "10GiB", "512 MiB", "1024" (binary multiples, as xe). */
bool cli_parse_size(const char *s, int64_t *out);
/* True for the parameters every command accepts. */
bool cli_is_std_param(const char *key);

/* ---- output and errors ---------------------------------------------------- */
typedef struct CliRow {
    char **labels;
    char **values;
    size_t n, alloc;
} CliRow;

void cli_row_add(CliRow *r, const char *label, const char *value);
void cli_row_release(CliRow *r);
/* Prints records as xe does (aligned labels, two blank lines after each),
 * or with --minimal the first value of each, comma-joined. */
void cli_print_table(Cli *cli, CliRow *rows, size_t n);
/* Prints a list (uuids of created objects etc.): one per line, or
 * comma-joined with --minimal. */
void cli_print_list(Cli *cli, const char *const *items, size_t n);
void cli_print_line(Cli *cli, const char *s);
/* Prints a XenAPI error as xe does and returns 1. */
int cli_error(Cli *cli, const XsError *err);
/* Prints a message on stderr and returns 1. */
int cli_fail(Cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- calls ---------------------------------------------------------------- */
/* Calls with the session prepended; prints the error and returns NULL. */
XsValue *cli_call(Cli *cli, const char *method, XsValue *params);
/* Waits for an async task, showing progress on a terminal, and returns its
 * decoded result (or NULL after printing the error). The task stays: its
 * owner destroys it (cli_task_destroy). */
XsValue *cli_wait_task(Cli *cli, const char *task, const char *what);
/* Draws a progress bar (0..1) on stderr when it is a terminal; done erases it. */
void cli_progress(Cli *cli, double fraction, bool done);
/* Calls Async.<method> and waits for it. */
XsValue *cli_call_async(Cli *cli, const char *method, XsValue *params, const char *what);

/* ---- records (record.c) ---------------------------------------------------- */
/* The record of ref (class cls), fetched once and cached. */
const XsValue *cli_record(Cli *cli, int cls, const char *ref);
void cli_cache_invalidate(Cli *cli, int cls);
void cli_cache_free(Cli *cli);
/* The formatted value of a CLI field of a record, as xe prints it. */
char *cli_field_value(Cli *cli, const XsClass *cls, const char *ref, const XsValue *record,
                      const XsCliField *cf);
/* "name-label ( RW)" etc. */
char *cli_field_label(const XsClass *cls, const XsCliField *cf);
const XsCliField *cli_find_field(const XsClass *cls, const char *name);
bool cli_field_is_map(const XsClass *cls, const XsCliField *cf);
bool cli_field_is_set(const XsClass *cls, const XsCliField *cf);
bool cli_field_writable(const XsClass *cls, const XsCliField *cf);
/* The API field behind a CLI field, or NULL for computed/indirect ones. */
const XsField *cli_api_field(const XsClass *cls, const XsCliField *cf);
/* Converts a CLI string to the API value of field f (sizes, enums, refs by uuid). */
XsValue *cli_parse_field_value(Cli *cli, const XsClass *cls, const XsField *f,
                               const char *text, XsError **errp);
/* Formats a value of type t as xe prints it. */
char *cli_format_value(Cli *cli, const XsType *t, const XsValue *v, const char *field);

/* Computed fields (compute.c). */
char *cli_compute(Cli *cli, const char *name, const XsClass *cls, const char *ref,
                  const XsValue *record);

/* Records of cls matching filters ("k=v,k2=v2" defaults plus the command
 * line's), as (ref, record) pairs. */
typedef struct CliSelection {
    char **refs;
    const XsValue **records;
    size_t n;
} CliSelection;
bool cli_select(Cli *cli, const XsClass *cls, const char *default_filters, bool use_cmdline,
                CliSelection *sel);
void cli_selection_release(CliSelection *sel);

/* VM selectors (select.c): vm=<name or uuid> and VM fields as filters. */
enum {
    CLI_VMS_TEMPLATES = 1 << 0,   /* templates too */
    CLI_VMS_SNAPSHOTS = 1 << 1,   /* snapshots too */
    CLI_VMS_DOM0 = 1 << 2,        /* the control domain too */
    CLI_VMS_MULTIPLE_OK = 1 << 3, /* several matches without --multiple */
};
bool cli_select_vms(Cli *cli, const CliCommand *cmd, unsigned flags, CliSelection *sel);

/* ---- commands ---------------------------------------------------------------- */
/* Each family file registers its commands. */
typedef struct CliCommandList {
    CliCommand *items;
    size_t n, alloc;
} CliCommandList;

void cli_register(CliCommandList *l, const CliCommand *cmds, size_t n);
void cli_generic_commands(CliCommandList *l);
void cli_help_commands(CliCommandList *l);
void cli_vm_commands(CliCommandList *l);     /* vm.c */
void cli_device_commands(CliCommandList *l); /* devices.c */
void cli_storage_commands(CliCommandList *l);
void cli_snapshot_commands(CliCommandList *l); /* snapshot.c */
void cli_importexport_commands(CliCommandList *l);
const CliCommandList *cli_all_commands(void);

#endif
