/*
 * Running helper programs with argv, captured output and a timeout; see
 * spawn.h. The child side between fork() and execve() only makes
 * async-signal-safe calls, so this is usable from a threaded daemon: all
 * allocation (path lookup, environment) happens in the parent before fork().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/close_range.h>

#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/xalloc.h"
#include "util/banned.h"

extern char **environ;

static const char spawn_fallback_path[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static int spawn_check_exec(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EACCES;
    if (access(path, X_OK) < 0)
        return -errno;
    return 0;
}

static char *spawn_search_dirs(const char *dirs, const char *name, int *err)
{
    const char *p = dirs;
    while (p && *p) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        if (n > 0) {
            char *cand = xasprintf("%.*s/%s", (int)n, p, name);
            int r = spawn_check_exec(cand);
            if (r == 0)
                return cand;
            if (r == -EACCES)
                *err = EACCES;
            free(cand);
        }
        p = colon ? colon + 1 : NULL;
    }
    return NULL;
}

char *spawn_find_program(const char *name)
{
    if (!name || !*name) {
        errno = ENOENT;
        return NULL;
    }
    if (strchr(name, '/')) {
        int r = spawn_check_exec(name);
        if (r < 0) {
            errno = -r;
            return NULL;
        }
        return xstrdup(name);
    }
    int err = ENOENT;
    char *found = spawn_search_dirs(getenv("PATH"), name, &err);
    if (!found)
        found = spawn_search_dirs(spawn_fallback_path, name, &err);
    if (!found)
        errno = err;
    return found;
}

static int64_t spawn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spawn_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Child side of fork(): only async-signal-safe calls from here on. */
static HX_NORETURN void spawn_child(const char *path, const char *const *argv,
                                    const char *const *envp, const char *cwd, int in_fd, int out_fd,
                                    int err_fd, int report_fd)
{
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL); /* fails harmlessly for the reserved RT signals */
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0);

    /* Lift the three ends above 2 first, so that no dup2() below clobbers another. */
    in_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
    out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0)
        goto fail;
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        goto fail;
    if (cwd && chdir(cwd) < 0)
        goto fail;
    /* Everything else the caller has open stays behind. report_fd must stay
     * open until execve(), so mark the rest close-on-exec rather than closing. */
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < max && fd < 65536; fd++)
            if (fd != report_fd)
                close((int)fd);
    }
    execve(path, (char *const *)argv, (char *const *)envp);
fail:;
    int e = errno;
    ssize_t HX_UNUSED w = write(report_fd, &e, sizeof(e));
    _exit(127);
}

/* Appends what arrived on fd to sb, keeping at most max bytes. Returns false at EOF or error. */
static bool spawn_read(int fd, StrBuf *sb, size_t max, bool *truncated)
{
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    size_t room = sb->len < max ? max - sb->len : 0;
    if ((size_t)n > room)
        *truncated = true;
    strbuf_add(sb, buf, MIN((size_t)n, room));
    return true;
}

static void spawn_drain(int *fd, StrBuf *sb, size_t max, bool *truncated)
{
    if (*fd < 0)
        return;
    fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) | O_NONBLOCK);
    for (int i = 0; i < 1024; i++) {
        char buf[8192];
        ssize_t n = read(*fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t room = sb->len < max ? max - sb->len : 0;
        if ((size_t)n > room)
            *truncated = true;
        strbuf_add(sb, buf, MIN((size_t)n, room));
    }
    spawn_close(fd);
}

static void spawn_fill_status(SpawnResult *res, int status)
{
    if (WIFEXITED(status)) {
        res->exit_status = WEXITSTATUS(status);
        res->term_signal = 0;
    } else {
        res->exit_status = -1;
        res->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
}

int spawn_run(const char *const *argv, const SpawnOptions *opts, SpawnResult *res)
{
    static const SpawnOptions defaults;
    if (!opts)
        opts = &defaults;
    memset(res, 0, sizeof(*res));
    strbuf_init(&res->out, 0);
    strbuf_init(&res->err, 0);
    res->exit_status = -1;
    if (!argv || !argv[0])
        return -EINVAL;

    size_t max = opts->output_max ? opts->output_max : SPAWN_OUTPUT_MAX_DEFAULT;
    int timeout = opts->timeout_ms == 0 ? SPAWN_TIMEOUT_DEFAULT_MS : opts->timeout_ms;
    const char *const *envp = opts->envp ? opts->envp : (const char *const *)environ;

    _cleanup_free_ char *path = spawn_find_program(argv[0]);
    if (!path)
        return -errno;

    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    int report[2] = {-1, -1};
    int null_fd = -1, ret = 0;
    if (opts->input) {
        if (pipe2(in_pipe, O_CLOEXEC) < 0)
            goto fail_errno;
    } else {
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0)
            goto fail_errno;
    }
    if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 ||
        pipe2(report, O_CLOEXEC) < 0)
        goto fail_errno;

    /* Writing to a child that exited early must give EPIPE, not kill us. */
    sigset_t pipe_set, old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    bool pipe_was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    pid_t pid = fork();
    if (pid < 0) {
        ret = -errno;
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        goto out;
    }
    if (pid == 0)
        spawn_child(path, argv, envp, opts->cwd, opts->input ? in_pipe[0] : null_fd, out_pipe[1],
                    err_pipe[1], report[1]);

    spawn_close(&in_pipe[0]);
    spawn_close(&null_fd);
    spawn_close(&out_pipe[1]);
    spawn_close(&err_pipe[1]);
    spawn_close(&report[1]);

    /* Did execve() work? The report pipe closes on exec, or carries errno. */
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(report[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    spawn_close(&report[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        ret = -child_errno;
        goto restore_mask;
    }

    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    const unsigned char *input = opts->input;
    size_t input_left = opts->input ? opts->input_len : 0;
    if (in_pipe[1] >= 0) {
        fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
        if (input_left == 0)
            spawn_close(&in_pipe[1]);
    }
    int64_t deadline = timeout > 0 ? spawn_now_ms() + timeout : INT64_MAX;
    bool reaped = false, lost_status = false;
    int status = 0;

    while (!reaped) {
        struct pollfd pfd[4];
        int np = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
        if (in_pipe[1] >= 0) {
            i_in = np;
            pfd[np++] = (struct pollfd){.fd = in_pipe[1], .events = POLLOUT};
        }
        if (out_pipe[0] >= 0) {
            i_out = np;
            pfd[np++] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
        }
        if (err_pipe[0] >= 0) {
            i_err = np;
            pfd[np++] = (struct pollfd){.fd = err_pipe[0], .events = POLLIN};
        }
        if (pidfd >= 0) {
            i_pid = np;
            pfd[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        }
        int wait_ms = -1;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - spawn_now_ms();
            wait_ms = left > 0 ? (int)MIN(left, (int64_t)INT32_MAX) : 0;
        }
        if (pidfd < 0 && (wait_ms < 0 || wait_ms > 20))
            wait_ms = 20; /* no pidfd: look at the child now and then */
        int r = poll(pfd, (nfds_t)np, wait_ms);
        if (r < 0 && errno != EINTR) {
            ret = -errno;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            if (pidfd >= 0)
                close(pidfd);
            goto restore_mask;
        }
        if (r > 0) {
            if (i_in >= 0 && (pfd[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
                ssize_t w = write(in_pipe[1], input, MIN(input_left, (size_t)65536));
                if (w > 0) {
                    input += w;
                    input_left -= (size_t)w;
                }
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || input_left == 0)
                    spawn_close(&in_pipe[1]);
            }
            if (i_out >= 0 && (pfd[i_out].revents & (POLLIN | POLLERR | POLLHUP)))
                if (!spawn_read(out_pipe[0], &res->out, max, &res->out_truncated))
                    spawn_close(&out_pipe[0]);
            if (i_err >= 0 && (pfd[i_err].revents & (POLLIN | POLLERR | POLLHUP)))
                if (!spawn_read(err_pipe[0], &res->err, max, &res->err_truncated))
                    spawn_close(&err_pipe[0]);
        }
        if (i_pid < 0 || (r > 0 && (pfd[i_pid].revents & POLLIN))) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                reaped = true;
            } else if (w < 0 && errno == ECHILD) {
                /* A SIGCHLD handler of the caller reaped it: status unknown. */
                status = W_EXITCODE(255, 0);
                reaped = lost_status = true;
            }
        }
        if (!reaped && deadline != INT64_MAX && spawn_now_ms() >= deadline) {
            res->timed_out = true;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            status = SIGKILL; /* what waitpid() reports, unless someone else reaps it */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            reaped = true;
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    /* The child is gone: take what it left in the pipes, but do not wait for
     * descendants that may still hold them open. */
    spawn_drain(&out_pipe[0], &res->out, max, &res->out_truncated);
    spawn_drain(&err_pipe[0], &res->err, max, &res->err_truncated);
    spawn_fill_status(res, status);
    if (lost_status)
        res->exit_status = -1;

restore_mask:
    spawn_close(&in_pipe[1]);
    if (!pipe_was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    goto out;

fail_errno:
    ret = -errno;
out:
    spawn_close(&in_pipe[0]);
    spawn_close(&in_pipe[1]);
    spawn_close(&out_pipe[0]);
    spawn_close(&out_pipe[1]);
    spawn_close(&err_pipe[0]);
    spawn_close(&err_pipe[1]);
    spawn_close(&report[0]);
    spawn_close(&report[1]);
    spawn_close(&null_fd);
    return ret;
}

bool spawn_result_ok(const SpawnResult *res)
{
    return !res->timed_out && res->term_signal == 0 && res->exit_status == 0;
}

void spawn_result_describe(const SpawnResult *res, StrBuf *sb)
{
    if (res->timed_out) {
        strbuf_adds(sb, "timed out and was killed");
        return;
    }
    if (res->term_signal) {
        strbuf_addf(sb, "was killed by signal %d (%s)", res->term_signal,
                    strsignal(res->term_signal));
        return;
    }
    strbuf_addf(sb, "exited with status %d", res->exit_status);
    /* The first non-empty line of stderr (else stdout) usually says why. */
    const StrBuf *src = res->err.len ? &res->err : &res->out;
    const char *p = src->buf, *end = src->buf + src->len;
    while (p < end && (*p == '\n' || *p == '\r' || *p == ' '))
        p++;
    const char *eol = p;
    while (eol < end && *eol != '\n' && *eol != '\0')
        eol++;
    if (eol > p)
        strbuf_addf(sb, ": %.*s", (int)MIN(eol - p, 300), p);
}

void spawn_result_release(SpawnResult *res)
{
    strbuf_release(&res->out);
    strbuf_release(&res->err);
}
