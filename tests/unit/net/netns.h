/*
 * Puts a test program into private network, mount and PID namespaces of its
 * own, so that nothing it does (bridges, nftables, dnsmasq, QEMU) can touch
 * the host's networking, and everything it started dies with it: when the
 * test body ends, PID 1 of the new PID namespace exits and the kernel kills
 * every process left in it. Exits 77 (meson's "skipped") if the
 * namespaces cannot be made. Header-only, for tests in this directory.
 */
#ifndef HX_TESTS_NET_NETNS_H
#define HX_TESTS_NET_NETNS_H

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/spawn.h"

/* Waits for pid; exits with its status (or 1 if a signal ended it). */
static inline void netns_exit_with(pid_t pid, const char *prog)
{
    int status;
    for (;;) {
        pid_t w = waitpid(-1, &status, 0);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            perror("waitpid");
            exit(1);
        }
    }
    /* _exit: the original process cannot fork any more once PID 1 of the
     * namespace it unshared is gone, and exit-time leak checkers fork. */
    fflush(stdout);
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    fprintf(stderr, "%s: test process killed by signal %d\n", prog, WTERMSIG(status));
    _exit(1);
}

/*
 * Returns in a process that lives in the new namespaces. Its parent there is
 * PID 1, which only reaps orphans (dnsmasq, QEMU) and exits with the test's
 * status, whereupon the kernel kills whatever is left in the namespace. The
 * original process waits for PID 1. Never returns on failure.
 */
static inline void netns_enter(const char *prog)
{
    if (unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) < 0) {
        printf("1..0 # SKIP %s: cannot create private namespaces (%s); needs root or "
               "CAP_SYS_ADMIN\n",
               prog, strerror(errno));
        exit(77);
    }
    fflush(stdout);
    pid_t init = fork();
    if (init < 0) {
        perror("fork");
        exit(1);
    }
    if (init > 0)
        netns_exit_with(init, prog);

    /* PID 1 of the new PID namespace: dies with the original process. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        printf("1..0 # SKIP %s: cannot remount /proc in a private namespace (%s)\n", prog,
               strerror(errno));
        exit(77);
    }
    /* A fresh sysfs shows this network namespace (best effort). */
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    pid_t test = fork();
    if (test < 0) {
        perror("fork");
        exit(1);
    }
    if (test > 0)
        netns_exit_with(test, prog);

    /* The test process (PID 2). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char *lo[] = {"ip", "link", "set", "lo", "up", NULL};
    SpawnResult res;
    if (spawn_run(lo, NULL, &res) == 0)
        spawn_result_release(&res);
}

/* Runs argv (no shell); returns its stdout (malloc'd) if it exited 0, else NULL. */
static inline char *netns_cmd(const char *const *argv)
{
    SpawnResult res;
    if (spawn_run(argv, NULL, &res) < 0)
        return NULL;
    if (!spawn_result_ok(&res)) {
        fprintf(stderr, "# %s: %s", argv[0], res.err.buf);
        spawn_result_release(&res);
        return NULL;
    }
    char *out = strbuf_detach(&res.out, NULL);
    spawn_result_release(&res);
    return out;
}

#endif
