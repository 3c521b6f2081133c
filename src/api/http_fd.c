/*
 * The hand-over of a client's open file on the unix socket (HTTP/1.1
 * Upgrade, then SCM_RIGHTS). See http_fd.h. No import or export here.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/http_fd.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* How long the client has to send its descriptor after the switch. */
#define FD_WAIT_MS 30000
/* Descriptors received at once (only one is used; the others are closed). */
#define FD_MAX_RECEIVED 8

bool http_fd_wanted(HttpRequest *req)
{
    const char *u = http_header(req, "Upgrade");
    return u && strcasecmp(u, HTTP_FD_UPGRADE) == 0;
}

bool http_fd_allowed(HttpRequest *req, XsError **errp)
{
    if (req->is_unix && req->peer_is_root)
        return true;
    xs_err_permission_denied(errp, "Only local root on the unix socket may hand a file over "
                                   "(Upgrade: " HTTP_FD_UPGRADE "); send the file's content "
                                   "instead.");
    return false;
}

void http_fd_reply(HttpRequest *req, HttpReply *reply, HttpUpgradeFn fn, HttpStreamFree free_fn,
                   void *ctx, ApiHttpCall *call, char peer[64])
{
    snprintf(peer, 64, "%s", req->peer);
    call->peer.addr = peer;
    req->state = NULL;
    reply->status = 101;
    http_reply_add_header(reply, "Upgrade", HTTP_FD_UPGRADE);
    reply->upgrade = fn;
    reply->upgrade_ctx = ctx;
    reply->upgrade_free = free_fn;
}

/* The client's descriptor, checked; -1 with *why set. */
static int fd_receive(int sock, size_t extra_len, bool for_writing, const char **why)
{
    if (extra_len) {
        *why = "the file descriptor must come alone";
        return -1;
    }
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int n;
    do
        n = poll(&p, 1, FD_WAIT_MS);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        *why = "no file descriptor came";
        return -1;
    }
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    /* Room for a few, so that every descriptor a confused client sends is seen
     * and closed (those that do not fit are never installed: MSG_CTRUNC). */
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(FD_MAX_RECEIVED * sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                        .msg_controllen = sizeof(cm.buf)};
    ssize_t k;
    do
        k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (k < 0 && errno == EINTR);
    int fd = -1;
    unsigned nfds = 0;
    for (struct cmsghdr *c = k > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (nfds++ == 0)
                fd = got;
            else
                close(got);
        }
    }
    if (k != 1 || nfds != 1 || (mh.msg_flags & MSG_CTRUNC)) {
        if (fd >= 0)
            close(fd);
        *why = "expected one file descriptor";
        return -1;
    }
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    int mode = fl & O_ACCMODE;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = "the file descriptor is not a regular file";
    } else if (fl < 0 || (fl & O_PATH)) {
        *why = "the file descriptor cannot be used";
    } else if (for_writing && (mode == O_RDONLY || (fl & O_APPEND))) {
        *why = "the file descriptor is not open for writing (without O_APPEND)";
    } else if (!for_writing && mode == O_WRONLY) {
        *why = "the file descriptor is not open for reading";
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

static void fd_answer(int sock, const XsError *err)
{
    char line[160];
    if (err)
        snprintf(line, sizeof(line), "ERROR %s\n", err->code);
    else
        snprintf(line, sizeof(line), "OK\n");
    (void)!send(sock, line, strlen(line), MSG_NOSIGNAL);
}

/* ---- the client going away ---- */

typedef struct HttpFdWatch {
    int sock;
    int wake; /* eventfd: stop() ends the wait at once */
    ApiHttpCall *call;
    pthread_t thread;
    atomic_bool stop;
} HttpFdWatch;

static void *watch_thread(void *arg)
{
    HttpFdWatch *w = arg;
    while (!atomic_load(&w->stop)) {
        struct pollfd p[2] = {{.fd = w->sock, .events = POLLIN | POLLRDHUP},
                              {.fd = w->wake, .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n <= 0 || p[1].revents)
            continue;
        /* The client sends nothing more: anything but silence is its end. */
        char c;
        ssize_t k = recv(w->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k > 0 && !(p[0].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            (void)!recv(w->sock, &c, 1, MSG_DONTWAIT); /* drop the stray byte */
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w->call->task) {
            log_info("the client of task %s went away: cancelling it", w->call->task);
            XsError *err = NULL;
            api_task_cancel(&w->call->ctx, w->call->task, &err);
            xs_error_free(err);
        }
        break;
    }
    return NULL;
}

static HttpFdWatch *watch_start(int sock, ApiHttpCall *call)
{
    HttpFdWatch *w = xnew0(HttpFdWatch, 1);
    w->sock = sock;
    w->call = call;
    w->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_init(&w->stop, false);
    if (w->wake < 0 || pthread_create(&w->thread, NULL, watch_thread, w) != 0) {
        if (w->wake >= 0)
            close(w->wake);
        free(w);
        return NULL;
    }
    return w;
}

static void watch_stop(HttpFdWatch *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, true);
    uint64_t one = 1;
    (void)!write(w->wake, &one, sizeof(one));
    pthread_join(w->thread, NULL);
    close(w->wake);
    free(w);
}

void http_fd_serve(int sock, size_t extra_len, bool for_writing, ApiHttpCall *call,
                   bool *call_open, HttpFdRefusal refuse, HttpFdWork work, void *ctx)
{
    XsError *err = NULL;
    XsValue *res = NULL;
    const char *why = NULL;
    int fd = fd_receive(sock, extra_len, for_writing, &why);
    if (fd < 0) {
        refuse(&err, why);
    } else {
        HttpFdWatch *watch = watch_start(sock, call);
        res = work(ctx, fd, &err);
        watch_stop(watch);
        close(fd);
    }
    api_http_call_end(call, res, err);
    *call_open = false;
    xv_free(res);
    fd_answer(sock, err);
    xs_error_free(err);
}
