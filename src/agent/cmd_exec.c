/*
 * guest-exec and guest-exec-status: start a program in the guest, feed it
 * input-data, capture its stdout/stderr (bounded, base64 in the status as
 * QEMU's agent does) and report its exit code or signal once it has ended.
 * The children run in their own session with default signal handling; the
 * main loop polls their pipes and reaps them on SIGCHLD. Output beyond the
 * bound is dropped and flagged "truncated", never buffered without limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/b64.h"
#include "agent/cmd.h"
#include "agent/qga_json.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/xalloc.h"

#include "util/banned.h"

/* Per stream, as QEMU's agent. */
#define CMD_EXEC_MAX_OUTPUT (16u * 1024 * 1024)
/* Children tracked at once (running, or ended and not yet asked about). */
#define CMD_EXEC_MAX_PROCS 256
/* Arguments and environment entries accepted. */
#define CMD_EXEC_MAX_ARGS 4096

typedef enum {
    CMD_EXEC_STDIN,
    CMD_EXEC_STDOUT,
    CMD_EXEC_STDERR,
    CMD_EXEC_STREAM__MAX,
} CmdExecStream;

typedef struct CmdExecProc {
    pid_t pid;
    bool exited;
    int status;                         /* from waitpid */
    bool capture[CMD_EXEC_STREAM__MAX]; /* stdout/stderr captured */
    int fd[CMD_EXEC_STREAM__MAX];       /* our ends of the pipes, -1 when closed */
    StrBuf data[CMD_EXEC_STREAM__MAX];  /* input to send / output received */
    size_t input_off;
    bool truncated[CMD_EXEC_STREAM__MAX];
    uint64_t seq; /* start order, to drop the oldest ended entry when full */
} CmdExecProc;

struct ExecTable {
    CmdExecProc *procs[CMD_EXEC_MAX_PROCS];
    uint64_t next_seq;
};

void cmd_exec_init(Agent *ag)
{
    ag->exec = xnew0(ExecTable, 1);
}

static void cmd_exec_close(CmdExecProc *p, CmdExecStream s)
{
    if (p->fd[s] >= 0)
        close(p->fd[s]);
    p->fd[s] = -1;
}

static void cmd_exec_proc_free(CmdExecProc *p)
{
    if (!p)
        return;
    for (int s = 0; s < CMD_EXEC_STREAM__MAX; s++) {
        cmd_exec_close(p, (CmdExecStream)s);
        strbuf_release(&p->data[s]);
    }
    free(p);
}

void cmd_exec_release(Agent *ag)
{
    if (!ag->exec)
        return;
    for (size_t i = 0; i < CMD_EXEC_MAX_PROCS; i++)
        cmd_exec_proc_free(ag->exec->procs[i]);
    free(ag->exec);
    ag->exec = NULL;
}

/* A free slot, dropping the oldest ended entry if none is free; -1 if full. */
static int cmd_exec_slot(ExecTable *t)
{
    int oldest = -1;
    for (int i = 0; i < CMD_EXEC_MAX_PROCS; i++) {
        if (!t->procs[i])
            return i;
        if (t->procs[i]->exited && (oldest < 0 || t->procs[i]->seq < t->procs[oldest]->seq))
            oldest = i;
    }
    if (oldest >= 0) {
        log_warn("forgetting the status of process %d: too many unclaimed statuses",
                 (int)t->procs[oldest]->pid);
        cmd_exec_proc_free(t->procs[oldest]);
        t->procs[oldest] = NULL;
    }
    return oldest;
}

static char **cmd_exec_strv(const char *first, struct json_object *list)
{
    size_t n = list ? json_object_array_length(list) : 0;
    char **v = xnew0(char *, n + 2);
    size_t k = 0;
    if (first)
        v[k++] = xstrdup(first);
    for (size_t i = 0; i < n; i++)
        v[k++] = xstrdup(json_object_get_string(json_object_array_get_idx(list, i)));
    return v;
}

/* The child side of fork(): never returns. Reports exec failure on errfd. */
static void cmd_exec_child(int in_fd, int out_fd, int err_fd, int errfd, char **argv, char **envp)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    setsid();
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        goto fail;
    for (int fd = 3; fd < 1024; fd++)
        if (fd != errfd)
            close(fd);
    if (envp)
        execvpe(argv[0], argv, envp);
    else
        execvp(argv[0], argv);
fail:;
    int e = errno;
    ssize_t w = write(errfd, &e, sizeof(e));
    (void)w;
    _exit(127);
}

static bool cmd_exec_capture_mode(struct json_object *args, bool *out, bool *errs, bool *merged,
                                  QgaError *err)
{
    struct json_object *v;
    *out = *errs = *merged = false;
    if (!json_object_object_get_ex(args, "capture-output", &v))
        return true;
    if (json_object_is_type(v, json_type_boolean)) {
        *out = *errs = json_object_get_boolean(v);
        return true;
    }
    /* QEMU 8.1 also takes a mode name. */
    const char *m = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    if (STREQ(m, "none"))
        return true;
    if (STREQ(m, "stdout"))
        *out = true;
    else if (STREQ(m, "stderr"))
        *errs = true;
    else if (STREQ(m, "separated"))
        *out = *errs = true;
    else if (STREQ(m, "merged"))
        *out = *merged = true;
    else
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "Invalid parameter 'capture-output': expected a boolean or one of "
                             "none, stdout, stderr, separated, merged");
    return true;
}

static void cmd_exec_close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

CMD_HANDLER(cmd_exec_start)
{
    ExecTable *t = ag->exec;
    const char *path = qga_arg_str(args, "path");
    struct json_object *arg = NULL, *env = NULL;
    json_object_object_get_ex(args, "arg", &arg);
    json_object_object_get_ex(args, "env", &env);
    if ((arg && json_object_array_length(arg) > CMD_EXEC_MAX_ARGS) ||
        (env && json_object_array_length(env) > CMD_EXEC_MAX_ARGS))
        return qga_error_set(err, QGA_ERROR_GENERIC, "too many arguments or environment entries");
    if (!path[0])
        return qga_error_set(err, QGA_ERROR_GENERIC, "Invalid parameter 'path'");

    bool cap_out, cap_err, merged;
    if (!cmd_exec_capture_mode(args, &cap_out, &cap_err, &merged, err))
        return false;

    StrBuf input = STRBUF_INIT;
    bool has_input = qga_arg_has(args, "input-data");
    if (has_input && !b64_decode(&input, qga_arg_str(args, "input-data"))) {
        strbuf_release(&input);
        return qga_error_set(err, QGA_ERROR_GENERIC, "Invalid parameter 'input-data': not base64");
    }

    int slot = cmd_exec_slot(t);
    if (slot < 0) {
        strbuf_release(&input);
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "too many processes started by guest-exec are still running");
    }

    /* fds: [0,1] stdin pipe, [2,3] stdout, [4,5] stderr, [6,7] exec status, 8 /dev/null */
    int fds[9];
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        fds[i] = -1;
    int r = 0;
    fds[8] = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fds[8] < 0 || (has_input && pipe2(&fds[0], O_CLOEXEC) < 0) ||
        (cap_out && pipe2(&fds[2], O_CLOEXEC) < 0) || (cap_err && pipe2(&fds[4], O_CLOEXEC) < 0) ||
        pipe2(&fds[6], O_CLOEXEC) < 0)
        r = -errno;
    if (r < 0) {
        cmd_exec_close_all(fds, ARRAY_SIZE(fds));
        strbuf_release(&input);
        return qga_error_errno(err, r, "cannot create pipes for %s", path);
    }

    _cleanup_strv_ char **argv = cmd_exec_strv(path, arg);
    _cleanup_strv_ char **envp = env ? cmd_exec_strv(NULL, env) : NULL;
    int child_in = has_input ? fds[0] : fds[8];
    int child_out = cap_out ? fds[3] : fds[8];
    int child_err = cap_err ? fds[5] : merged ? fds[3] : fds[8];

    pid_t pid = fork();
    if (pid < 0) {
        r = -errno;
        cmd_exec_close_all(fds, ARRAY_SIZE(fds));
        strbuf_release(&input);
        return qga_error_errno(err, r, "cannot start %s", path);
    }
    if (pid == 0)
        cmd_exec_child(child_in, child_out, child_err, fds[7], argv, envp);

    /* Parent: keep our ends, learn whether exec worked. */
    close(fds[7]);
    fds[7] = -1;
    int child_errno = 0;
    ssize_t n;
    do
        n = read(fds[6], &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    close(fds[6]);
    fds[6] = -1;
    if (n == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        cmd_exec_close_all(fds, ARRAY_SIZE(fds));
        strbuf_release(&input);
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "Guest agent command failed, error was 'Failed to execute child "
                             "process \"%s\" (%s)'",
                             path, strerror(child_errno));
    }

    CmdExecProc *p = xnew0(CmdExecProc, 1);
    p->pid = pid;
    p->seq = t->next_seq++;
    for (int s = 0; s < CMD_EXEC_STREAM__MAX; s++) {
        p->fd[s] = -1;
        strbuf_init(&p->data[s], 0);
    }
    p->capture[CMD_EXEC_STDOUT] = cap_out;
    p->capture[CMD_EXEC_STDERR] = cap_err;
    if (has_input && input.len > 0) {
        p->fd[CMD_EXEC_STDIN] = steal_fd(&fds[1]);
        fcntl(p->fd[CMD_EXEC_STDIN], F_SETFL, O_NONBLOCK);
        p->data[CMD_EXEC_STDIN] = input;
        strbuf_init(&input, 0);
    }
    if (cap_out) {
        p->fd[CMD_EXEC_STDOUT] = steal_fd(&fds[2]);
        fcntl(p->fd[CMD_EXEC_STDOUT], F_SETFL, O_NONBLOCK);
    }
    if (cap_err) {
        p->fd[CMD_EXEC_STDERR] = steal_fd(&fds[4]);
        fcntl(p->fd[CMD_EXEC_STDERR], F_SETFL, O_NONBLOCK);
    }
    /* Closes the child's ends, an empty stdin's write end (EOF), /dev/null. */
    cmd_exec_close_all(fds, ARRAY_SIZE(fds));
    strbuf_release(&input);
    t->procs[slot] = p;

    *ret = qga_json_add_int(json_object_new_object(), "pid", pid);
    return true;
}

/* Reads what is available on an output pipe; closes it on EOF or error. */
static void cmd_exec_drain(CmdExecProc *p, CmdExecStream s)
{
    char buf[65536];
    while (p->fd[s] >= 0) {
        ssize_t n = read(p->fd[s], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            cmd_exec_close(p, s);
            return;
        }
        size_t room = CMD_EXEC_MAX_OUTPUT - p->data[s].len;
        if ((size_t)n > room) {
            p->truncated[s] = true;
            n = (ssize_t)room;
        }
        strbuf_add(&p->data[s], buf, (size_t)n);
    }
}

static void cmd_exec_feed(CmdExecProc *p)
{
    StrBuf *in = &p->data[CMD_EXEC_STDIN];
    while (p->fd[CMD_EXEC_STDIN] >= 0 && p->input_off < in->len) {
        ssize_t n = write(p->fd[CMD_EXEC_STDIN], in->buf + p->input_off, in->len - p->input_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) /* EPIPE: the child does not read its input */
            break;
        p->input_off += (size_t)n;
    }
    cmd_exec_close(p, CMD_EXEC_STDIN);
    strbuf_release(in);
}

size_t cmd_exec_pollfds(Agent *ag, struct pollfd *fds, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < CMD_EXEC_MAX_PROCS; i++) {
        CmdExecProc *p = ag->exec->procs[i];
        for (int s = 0; p && s < CMD_EXEC_STREAM__MAX && k < max; s++) {
            if (p->fd[s] < 0)
                continue;
            fds[k].fd = p->fd[s];
            fds[k].events = s == CMD_EXEC_STDIN ? POLLOUT : POLLIN;
            fds[k].revents = 0;
            k++;
        }
    }
    return k;
}

void cmd_exec_handle(Agent *ag, const struct pollfd *fds, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!fds[k].revents)
            continue;
        for (size_t i = 0; i < CMD_EXEC_MAX_PROCS; i++) {
            CmdExecProc *p = ag->exec->procs[i];
            for (int s = 0; p && s < CMD_EXEC_STREAM__MAX; s++) {
                if (p->fd[s] != fds[k].fd)
                    continue;
                if (s == CMD_EXEC_STDIN)
                    cmd_exec_feed(p);
                else
                    cmd_exec_drain(p, (CmdExecStream)s);
            }
        }
    }
}

void cmd_exec_reap(Agent *ag)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; ag->exec && i < CMD_EXEC_MAX_PROCS; i++) {
            CmdExecProc *p = ag->exec->procs[i];
            if (!p || p->pid != pid)
                continue;
            p->exited = true;
            p->status = status;
            /*
             * Everything the child wrote is in the pipes now: take it and
             * close them, so a background grandchild keeping them open
             * cannot hold the status back.
             */
            cmd_exec_drain(p, CMD_EXEC_STDOUT);
            cmd_exec_drain(p, CMD_EXEC_STDERR);
            cmd_exec_close(p, CMD_EXEC_STDOUT);
            cmd_exec_close(p, CMD_EXEC_STDERR);
            cmd_exec_close(p, CMD_EXEC_STDIN);
        }
    }
}

CMD_HANDLER(cmd_exec_status)
{
    int64_t pid = qga_arg_int(args, "pid", 0);
    CmdExecProc *p = NULL;
    size_t slot = 0;
    for (size_t i = 0; i < CMD_EXEC_MAX_PROCS && !p; i++) {
        if (ag->exec->procs[i] && pid > 0 && ag->exec->procs[i]->pid == pid) {
            p = ag->exec->procs[i];
            slot = i;
        }
    }
    if (!p)
        return qga_error_set(err, QGA_ERROR_GENERIC, "Invalid parameter 'pid'");

    struct json_object *o = json_object_new_object();
    qga_json_add_bool(o, "exited", p->exited);
    if (!p->exited) {
        *ret = o;
        return true;
    }
    if (WIFEXITED(p->status))
        qga_json_add_int(o, "exitcode", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        qga_json_add_int(o, "signal", WTERMSIG(p->status));
    static const char *const names[CMD_EXEC_STREAM__MAX][2] = {
        {NULL, NULL},
        {"out-data", "out-truncated"},
        {"err-data", "err-truncated"},
    };
    for (int s = CMD_EXEC_STDOUT; s < CMD_EXEC_STREAM__MAX; s++) {
        if (!p->capture[s])
            continue;
        /* As QEMU's agent: data and its truncated flag only if there was output. */
        if (p->data[s].len == 0)
            continue;
        StrBuf enc = STRBUF_INIT;
        b64_encode(&enc, p->data[s].buf, p->data[s].len);
        json_object_object_add(o, names[s][0], json_object_new_string_len(enc.buf, (int)enc.len));
        strbuf_release(&enc);
        qga_json_add_bool(o, names[s][1], p->truncated[s]);
    }
    cmd_exec_proc_free(p);
    ag->exec->procs[slot] = NULL;
    *ret = o;
    return true;
}
