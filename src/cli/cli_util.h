/*
 * Small helpers of the hand-written xe command families: fields of cached
 * records, refs from uuids, one-argument calls. Errors are printed.
 */
#ifndef HX_CLI_CLI_UTIL_H
#define HX_CLI_CLI_UTIL_H

#include "cli/cli.h"

/* A string field of a record ("" if absent). */
const char *cli_rec_str(const XsValue *rec, const char *field);
bool cli_rec_bool(const XsValue *rec, const char *field);
/* The ref of the object of cls ("VM", "SR", ...) with this uuid; prints the error. */
char *cli_ref_by_uuid(Cli *cli, const char *cls, const char *uuid);
/* [arg] as call parameters. */
XsValue *cli_args1(const char *arg);
/* method(session, arg); prints the error. */
XsValue *cli_call1(Cli *cli, const char *method, const char *arg);
/* Prints records of cls (refs) with the given columns ("a,b,c"), as xe's lists do. */
void cli_print_records(Cli *cli, const XsClass *cls, char *const *refs, size_t n,
                       const char *columns);

/* A task made for an HTTP transfer (task.create); NULL after printing the error. */
char *cli_task_create(Cli *cli, const char *label, const char *description);
/* task.destroy, silently (the task may be gone already). */
void cli_task_destroy(Cli *cli, const char *task);
/* The progress field of a task record (0 if missing). */
double cli_task_progress(const XsValue *rec);
/* Status ("pending", "success", ...) and progress of a task; false if unreadable. */
bool cli_task_state(Cli *cli, const char *task, char status[16], double *progress);
/* Whether a transfer hands the file itself to the server: root on its unix
 * socket and a regular file (one to be made, for an export).
 * HYPERXE_XE_STREAM=1 makes the bytes travel anyway (tests of that path). */
bool cli_transfer_by_fd(Cli *cli, const char *filename, bool import);

#endif
