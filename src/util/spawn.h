/*
 * Running a helper program (nft, dnsmasq, qemu-img, ...) and collecting its
 * result: argv is passed to execve() as it is, never through a shell, so no
 * word splitting, globbing or quoting happens anywhere. The child gets its own
 * process group, a clean signal mask, /dev/null or the given bytes on stdin,
 * and no file descriptors but 0, 1 and 2. Its stdout and stderr are captured
 * up to a cap (the rest is read and dropped, so the child never blocks on a
 * full pipe), and a timeout kills the whole process group.
 *
 * This file must not grow policy: it knows nothing about which programs are
 * run or what their output means.
 */
#ifndef HX_UTIL_SPAWN_H
#define HX_UTIL_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

#include "util/strbuf.h"

/* Capture cap per stream when SpawnOptions.output_max is 0. */
#define SPAWN_OUTPUT_MAX_DEFAULT (64 * 1024)
/* Timeout when SpawnOptions.timeout_ms is 0. */
#define SPAWN_TIMEOUT_DEFAULT_MS 30000

typedef struct SpawnOptions {
    /* Environment of the child (NULL-terminated); NULL inherits the caller's. */
    const char *const *envp;
    /* Working directory of the child; NULL keeps the caller's. */
    const char *cwd;
    /* Bytes written to the child's stdin, which is then closed. NULL: stdin is /dev/null. */
    const void *input;
    size_t input_len;
    /* At most this many bytes of stdout and of stderr are kept; 0: the default. */
    size_t output_max;
    /* Milliseconds before the child's process group gets SIGKILL: 0 means
     * SPAWN_TIMEOUT_DEFAULT_MS, a negative value means no timeout. */
    int timeout_ms;
} SpawnOptions;

typedef struct SpawnResult {
    /* Exit code (0..255) if the child exited, -1 if a signal ended it or if a
     * SIGCHLD handler of the caller reaped it first (then the status is lost). */
    int exit_status;
    /* The signal that ended the child, 0 if it exited. */
    int term_signal;
    /* The timeout expired and the child was killed (term_signal is SIGKILL). */
    bool timed_out;
    /* Captured output; always NUL-terminated, may contain NULs. */
    StrBuf out;
    StrBuf err;
    /* More output than output_max arrived on that stream and was dropped. */
    bool out_truncated;
    bool err_truncated;
} SpawnResult;

/*
 * Runs argv[0] with the arguments argv[1..] (argv is NULL-terminated) and
 * waits for it to end or time out. argv[0] without a '/' is looked up with
 * spawn_find_program(). opts may be NULL for all defaults.
 *
 * Returns 0 when the program ran, whatever its exit status: res is then
 * filled in and must be released with spawn_result_release(). Returns -errno
 * when it could not be started (-ENOENT: no such program, -EACCES: not
 * executable, -ENOEXEC: not a binary or script the kernel can run; nothing is
 * retried through /bin/sh); res is then empty but may still be released.
 * The child inherits nothing beyond stdin/stdout/stderr. Thread-safe: the
 * calling thread's SIGPIPE is blocked while input is written.
 */
int spawn_run(const char *const *argv, const SpawnOptions *opts, SpawnResult *res);

/* True if the program exited with status 0 (and did not time out). */
bool spawn_result_ok(const SpawnResult *res);

/*
 * Appends a one-line description of how the child ended, for error messages:
 * "exited with status 1: <first line of stderr>", "was killed by signal 9",
 * "timed out after ... and was killed".
 */
void spawn_result_describe(const SpawnResult *res, StrBuf *sb);

/* Frees the captured output; res is left empty. */
void spawn_result_release(SpawnResult *res);

/*
 * Finds an executable regular file called name in $PATH, then in the usual
 * system directories (/usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin,
 * /sbin, /bin), so that tools in sbin are found for unprivileged PATHs too.
 * A name containing '/' is checked as it is. Returns a malloc'd path the
 * caller owns, or NULL (errno set to ENOENT or EACCES).
 */
char *spawn_find_program(const char *name);

#endif
