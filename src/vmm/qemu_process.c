/*
 * QEMU processes. See qemu_process.h.
 *
 * The code between fork() and exec() runs in a copy of a multi-threaded
 * daemon, so it calls only async-signal-safe functions and allocates
 * nothing: everything it needs is prepared before the fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qemu_process.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* Finds an executable in PATH (or takes a path with a slash as is). */
static char *qemu_process_find(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchrnul(path, ':');
        _cleanup_free_ char *cand = xasprintf("%.*s/%s", (int)(end - path), path, name);
        if (end > path && access(cand, X_OK) == 0)
            return steal_ptr(&cand);
        path = *end ? end + 1 : end;
    }
    return NULL;
}

/* Async-signal-safe: formats "word N\n" into buf. */
static size_t qemu_process_fmt_status(char *buf, size_t size, const char *word, int n)
{
    size_t k = 0;
    for (const char *w = word; *w && k < size - 1; w++)
        buf[k++] = *w;
    if (k < size - 1)
        buf[k++] = ' ';
    if (n < 0 && k < size - 1) {
        buf[k++] = '-';
        n = -n;
    }
    char digits[16];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + n % 10);
        n /= 10;
    } while (n && nd < 15);
    while (nd && k < size - 1)
        buf[k++] = digits[--nd];
    if (k < size - 1)
        buf[k++] = '\n';
    return k;
}

static void qemu_process_mark_cloexec_from(int first)
{
    if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    for (int fd = first; fd < 4096; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void qemu_process_reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
}

static ssize_t qemu_process_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = vmm_now_ms() + timeout_ms;
    while (got < len) {
        int64_t left = deadline - vmm_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int qemu_process_spawn(char *const argv[], const char *vm_dir, int keep_fd, pid_t *pid,
                       pid_t *reaper_pid, char **err)
{
    _cleanup_free_ char *exe = qemu_process_find(argv[0]);
    if (!exe)
        return vmm_error(err, -ENOENT, "%s not found: install qemu-system-x86 or set the QEMU "
                         "binary", argv[0]);
    _cleanup_free_ char *log_path = xasprintf("%s/qemu.log", vm_dir);
    _cleanup_free_ char *status_path = xasprintf("%s/exit-status", vm_dir);
    unlink(status_path);
    _cleanup_close_ int logfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (logfd < 0)
        return vmm_error(err, -errno, "cannot open %s: %s", log_path, strerror(errno));
    _cleanup_close_ int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0)
        return vmm_error(err, -errno, "cannot open /dev/null: %s", strerror(errno));
    /* pidpipe: the reaper tells QEMU's pid; execpipe: QEMU's errno if exec fails, EOF
     * (close-on-exec) once it succeeded */
    int pidpipe[2], execpipe[2];
    if (pipe2(pidpipe, O_CLOEXEC) < 0)
        return vmm_error(err, -errno, "pipe: %s", strerror(errno));
    if (pipe2(execpipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(pidpipe[0]);
        close(pidpipe[1]);
        return vmm_error(err, -e, "pipe: %s", strerror(e));
    }

    pid_t reaper = fork();
    if (reaper < 0) {
        int e = errno;
        close(pidpipe[0]);
        close(pidpipe[1]);
        close(execpipe[0]);
        close(execpipe[1]);
        return vmm_error(err, -e, "fork: %s", strerror(e));
    }
    if (reaper == 0) {
        /* ---- reaper: async-signal-safe code only ---- */
        close(pidpipe[0]);
        close(execpipe[0]);
        setsid();
        prctl(PR_SET_NAME, "hx-qemu-reaper", 0, 0, 0);
        qemu_process_reset_signals();
        pid_t q = fork();
        if (q < 0) {
            int e = errno;
            (void)!write(execpipe[1], &e, sizeof(e));
            _exit(1);
        }
        if (q == 0) {
            /* ---- QEMU ---- */
            if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
                goto fail;
            if (keep_fd >= 0) {
                if (keep_fd == 3) {
                    if (fcntl(3, F_SETFD, 0) < 0)
                        goto fail;
                } else if (dup2(keep_fd, 3) < 0) {
                    goto fail;
                }
                qemu_process_mark_cloexec_from(4);
            } else {
                qemu_process_mark_cloexec_from(3);
            }
            execve(exe, argv, environ);
        fail: {
            int e = errno;
            (void)!write(execpipe[1], &e, sizeof(e));
            _exit(127);
        }
        }
        (void)!write(pidpipe[1], &q, sizeof(q));
        /* Hold nothing of the daemon's: above all not the QMP listening socket, whose
         * closing tells the daemon that QEMU is gone. */
        dup2(nullfd, 0);
        dup2(nullfd, 1);
        dup2(nullfd, 2);
        if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
            for (int fd = 3; fd < 4096; fd++)
                close(fd);
        int st;
        while (waitpid(q, &st, 0) < 0 && errno == EINTR) {
        }
        char buf[32];
        size_t n = WIFSIGNALED(st) ? qemu_process_fmt_status(buf, sizeof(buf), "signal",
                                                              WTERMSIG(st))
                                   : qemu_process_fmt_status(buf, sizeof(buf), "exited",
                                                             WEXITSTATUS(st));
        int fd = open(status_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            (void)!write(fd, buf, n);
            close(fd);
        }
        _exit(0);
    }

    close(pidpipe[1]);
    close(execpipe[1]);
    pid_t q = 0;
    int e = 0;
    ssize_t n = qemu_process_read_full(execpipe[0], &e, sizeof(e), 30000);
    if (n == (ssize_t)sizeof(e))
        e = e > 0 ? e : EPROTO; /* exec (or the second fork) failed */
    else if (n < 0)
        e = (int)-n;
    else
        e = 0; /* EOF: exec succeeded */
    if (e == 0 && qemu_process_read_full(pidpipe[0], &q, sizeof(q), 5000) != (ssize_t)sizeof(q))
        e = EPROTO;
    close(pidpipe[0]);
    close(execpipe[0]);
    if (e != 0 || q <= 0) {
        /* the reaper ends right after a failed exec (or fork) */
        while (waitpid(reaper, NULL, 0) < 0 && errno == EINTR) {
        }
        return vmm_error(err, -(e ? e : EPROTO), "cannot start %s: %s", exe,
                         strerror(e ? e : EPROTO));
    }
    *pid = q;
    if (reaper_pid)
        *reaper_pid = reaper;
    return 0;
}

void qemu_process_reap(pid_t reaper_pid)
{
    if (reaper_pid <= 0)
        return;
    /* it ends right after writing exit-status: give it a moment, never block on it */
    for (int i = 0; i < 50; i++) {
        pid_t r = waitpid(reaper_pid, NULL, WNOHANG);
        if (r == reaper_pid || (r < 0 && errno == ECHILD))
            return;
        if (r < 0 && errno == EINTR)
            continue;
        vmm_sleep_ms(10);
    }
}

int qemu_process_read_pidfile(const char *vm_dir, pid_t *pid)
{
    _cleanup_free_ char *path = xasprintf("%s/qemu.pid", vm_dir);
    _cleanup_free_ char *buf = NULL;
    ssize_t n = vmm_read_file(path, 64, false, &buf);
    if (n < 0)
        return (int)n;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || v <= 1 || v > 0x7fffffffL || (*end && *end != '\n'))
        return -EINVAL;
    *pid = (pid_t)v;
    return 0;
}

bool qemu_process_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    if (kill(pid, 0) < 0 && errno != EPERM)
        return false;
    /* a zombie has exited already */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *stat = NULL;
    if (vmm_read_file(path, 4096, false, &stat) < 0)
        return false;
    const char *rp = strrchr(stat, ')');
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

bool qemu_process_matches(pid_t pid, const char *uuid)
{
    if (!qemu_process_alive(pid))
        return false;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *buf = NULL;
    ssize_t n = vmm_read_file(path, 1024 * 1024, false, &buf);
    if (n <= 0)
        return false;
    /* argv[0] is QEMU; argv[1] when an interpreter runs a wrapper script */
    bool qemu = false;
    const char *arg = buf;
    for (int i = 0; i < 2 && arg < buf + n; i++, arg += strlen(arg) + 1) {
        const char *base = strrchr(arg, '/');
        qemu |= strstr(base ? base + 1 : arg, "qemu-system") != NULL;
    }
    if (!qemu)
        return false;
    for (const char *p = buf; p < buf + n; p += strlen(p) + 1) {
        const char *next = p + strlen(p) + 1;
        if (STREQ(p, "-uuid") && next < buf + n && STREQ(next, uuid))
            return true;
    }
    return false;
}

int qemu_process_wait_gone(pid_t pid, unsigned timeout_ms)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0 && errno == ESRCH)
        return 0;
    while (qemu_process_alive(pid)) {
        int64_t left = deadline - vmm_now_ms();
        if (left <= 0) {
            if (pfd >= 0)
                close(pfd);
            return -ETIMEDOUT;
        }
        if (pfd >= 0) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            poll(&p, 1, (int)MIN(left, 200));
        } else {
            vmm_sleep_ms((unsigned)MIN(left, 20));
        }
    }
    if (pfd >= 0)
        close(pfd);
    return 0;
}

int qemu_process_kill(pid_t pid, const char *uuid, int sig)
{
    if (!qemu_process_matches(pid, uuid))
        return -ESRCH;
    return kill(pid, sig) < 0 ? -errno : 0;
}

int qemu_process_exit_status(const char *vm_dir, unsigned wait_ms, int *code, int *sig)
{
    _cleanup_free_ char *path = xasprintf("%s/exit-status", vm_dir);
    int64_t deadline = vmm_now_ms() + wait_ms;
    *code = -1;
    *sig = 0;
    for (;;) {
        _cleanup_free_ char *buf = NULL;
        ssize_t n = vmm_read_file(path, 64, false, &buf);
        if (n > 0 && buf[n - 1] == '\n') {
            int v;
            if (sscanf(buf, "exited %d", &v) == 1) {
                *code = v;
                return 0;
            }
            if (sscanf(buf, "signal %d", &v) == 1) {
                *sig = v;
                return 0;
            }
            return -EINVAL;
        }
        if (vmm_now_ms() >= deadline)
            return -ENOENT;
        vmm_sleep_ms(10);
    }
}

char *qemu_process_log_tail(const char *vm_dir, size_t max)
{
    _cleanup_free_ char *path = xasprintf("%s/qemu.log", vm_dir);
    char *buf = NULL;
    ssize_t n = vmm_read_file(path, max, true, &buf);
    if (n <= 0) {
        free(buf);
        return NULL;
    }
    /* start at a line boundary when the read began mid-line, drop the last newline */
    char *start = buf;
    if ((size_t)n == max) {
        char *nl = strchr(buf, '\n');
        if (nl && nl[1])
            start = nl + 1;
    }
    size_t len = strlen(start);
    while (len && (start[len - 1] == '\n' || start[len - 1] == '\r'))
        start[--len] = '\0';
    /* drop the timestamps of -msg timestamp=on ("2026-11-27T11:09:11.886899Z ") */
    StrBuf out = STRBUF_INIT;
    for (char *line = start; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        const char *text = line;
        const char *sp = memchr(line, ' ', ll);
        if (sp && sp - line >= 20 && sp[-1] == 'Z' && line[4] == '-' && line[10] == 'T')
            text = sp + 1;
        if (out.len)
            strbuf_addch(&out, '\n');
        strbuf_add(&out, text, ll - (size_t)(text - line));
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    return strbuf_detach(&out, NULL);
}

void qemu_process_cleanup(const char *vm_dir)
{
    static const char *const files[] = {"qmp.sock", "qmp-aux.sock", "qga.sock", "vnc.sock",
                                        "console.sock", "qemu.pid"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", vm_dir, files[i]);
        unlink(p);
    }
}
