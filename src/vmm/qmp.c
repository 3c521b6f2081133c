/*
 * QMP transport. See qmp.h.
 *
 * Threads: the reader thread is the only one that reads the socket. Senders
 * take write_lock to put one whole command on the wire, then wait on `cond`
 * for the reader to file their reply under their id. `lock` protects the
 * pending list and the connection state. The socket is non-blocking; every
 * wait has a deadline. This file must not interpret commands or events.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qmp.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

typedef struct QmpPending {
    int64_t id;
    bool done;
    struct json_object *reply; /* the whole reply object */
    struct QmpPending *next;
} QmpPending;

struct QmpMonitor {
    int fd;
    QmpCallbacks cb;
    pthread_mutex_t lock;
    pthread_mutex_t write_lock;
    pthread_cond_t cond;
    QmpPending *pending;
    int64_t next_id;
    bool connected;   /* reader running and peer not gone */
    bool closing;     /* qmp_close() in progress */
    int reader_error; /* why the reader stopped */
    bool have_reader;
    pthread_t reader;
    unsigned version;
    /* receive buffer, used by the greeting reader and then the reader thread only */
    StrBuf rbuf;
    bool discarding; /* dropping the rest of an over-long line */
};

static void qmp_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

static void qmp_deadline(struct timespec *ts, int64_t deadline_ms)
{
    ts->tv_sec = deadline_ms / 1000;
    ts->tv_nsec = (deadline_ms % 1000) * 1000000L;
}

/* ---- receiving ---------------------------------------------------------- */

/*
 * Takes the next complete line out of rbuf into *line (caller frees) and
 * returns 1, or 0 if none is complete yet. Over-long lines are dropped.
 */
static int qmp_take_line(QmpMonitor *mon, char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(mon->rbuf.buf, '\n', mon->rbuf.len);
        if (!nl) {
            if (mon->rbuf.len > QMP_MAX_LINE) {
                log_warn("QMP: dropping a line longer than %u bytes", QMP_MAX_LINE);
                mon->discarding = true;
                strbuf_reset(&mon->rbuf);
            }
            return 0;
        }
        size_t n = (size_t)(nl - mon->rbuf.buf);
        bool drop = mon->discarding || n > QMP_MAX_LINE;
        if (!drop) {
            *line = xmemdup(mon->rbuf.buf, n + 1);
            (*line)[n] = '\0';
            *len = n;
        } else if (!mon->discarding) {
            log_warn("QMP: dropping a line longer than %u bytes", QMP_MAX_LINE);
        }
        mon->discarding = false;
        size_t rest = mon->rbuf.len - n - 1;
        memmove(mon->rbuf.buf, nl + 1, rest);
        strbuf_setlen(&mon->rbuf, rest);
        if (!drop)
            return 1;
    }
}

/* Reads what is available into rbuf: >0 bytes, 0 on EOF, -EAGAIN, -errno. */
static int qmp_fill(QmpMonitor *mon)
{
    char chunk[65536];
    ssize_t n;
    do {
        n = read(mon->fd, chunk, sizeof(chunk));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n > 0) {
        if (mon->discarding) {
            char *nl = memchr(chunk, '\n', (size_t)n);
            if (!nl)
                return (int)n;
            /* keep the newline so qmp_take_line ends the discarded line */
            strbuf_add(&mon->rbuf, nl, (size_t)(chunk + n - nl));
        } else {
            strbuf_add(&mon->rbuf, chunk, (size_t)n);
        }
    }
    return (int)n;
}

static bool qmp_get_int64(struct json_object *obj, const char *key, int64_t *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_int64(v);
    return true;
}

static void qmp_dispatch_line(QmpMonitor *mon, const char *line, size_t len)
{
    const char *why = NULL;
    struct json_object *msg = vmm_json_parse(line, len, QMP_MAX_DEPTH, &why);
    if (!msg) {
        if (why && !STREQ(why, "empty"))
            log_warn("QMP: ignoring a line that is not JSON (%s): %.200s", why, line);
        return;
    }
    if (!json_object_is_type(msg, json_type_object)) {
        log_warn("QMP: ignoring a message that is not an object: %.200s", line);
        json_object_put(msg);
        return;
    }
    struct json_object *v;
    if (json_object_object_get_ex(msg, "event", &v)) {
        if (!json_object_is_type(v, json_type_string)) {
            log_warn("QMP: ignoring an event without a name: %.200s", line);
            json_object_put(msg);
            return;
        }
        struct json_object *data = NULL, *ts = NULL;
        json_object_object_get_ex(msg, "data", &data);
        int64_t time_us = 0, sec, usec;
        if (json_object_object_get_ex(msg, "timestamp", &ts) &&
            json_object_is_type(ts, json_type_object) && qmp_get_int64(ts, "seconds", &sec) &&
            qmp_get_int64(ts, "microseconds", &usec) && sec >= 0 && sec < INT64_MAX / 2000000)
            time_us = sec * 1000000 + usec;
        if (!time_us)
            time_us = vmm_wall_us();
        log_debug("QMP event: %.500s", line);
        if (mon->cb.event)
            mon->cb.event(mon->cb.opaque, json_object_get_string(v), data, time_us);
        json_object_put(msg);
        return;
    }
    if (!json_object_object_get_ex(msg, "return", NULL) &&
        !json_object_object_get_ex(msg, "error", NULL)) {
        log_warn("QMP: ignoring a message that is neither event nor reply: %.200s", line);
        json_object_put(msg);
        return;
    }
    int64_t id;
    if (!qmp_get_int64(msg, "id", &id)) {
        log_warn("QMP: ignoring a reply without our id: %.200s", line);
        json_object_put(msg);
        return;
    }
    log_debug("QMP reply: %.500s", line);
    pthread_mutex_lock(&mon->lock);
    QmpPending *p;
    for (p = mon->pending; p; p = p->next)
        if (p->id == id && !p->done)
            break;
    if (p) {
        p->reply = msg;
        p->done = true;
        pthread_cond_broadcast(&mon->cond);
    }
    pthread_mutex_unlock(&mon->lock);
    if (!p) {
        log_warn("QMP: ignoring a reply to id %lld that nobody waits for (late?)",
                 (long long)id);
        json_object_put(msg);
    }
}

static void *qmp_reader_main(void *arg)
{
    QmpMonitor *mon = arg;
    int err = 0;
    for (;;) {
        char *line;
        size_t len;
        while (qmp_take_line(mon, &line, &len)) {
            qmp_dispatch_line(mon, line, len);
            free(line);
        }
        struct pollfd pfd = {.fd = mon->fd, .events = POLLIN};
        int r = poll(&pfd, 1, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        int n = qmp_fill(mon);
        if (n == -EAGAIN)
            continue;
        if (n < 0) {
            err = n == -ECONNRESET ? 0 : n;
            break;
        }
        if (n == 0)
            break;
    }
    pthread_mutex_lock(&mon->lock);
    mon->connected = false;
    mon->reader_error = err;
    bool closing = mon->closing;
    pthread_cond_broadcast(&mon->cond);
    pthread_mutex_unlock(&mon->lock);
    if (!closing) {
        log_debug("QMP: connection closed (%s)", err ? strerror(-err) : "EOF");
        if (mon->cb.closed)
            mon->cb.closed(mon->cb.opaque, err);
    }
    return NULL;
}

/* ---- sending ------------------------------------------------------------ */

static int qmp_write_all(QmpMonitor *mon, const char *buf, size_t len, int pass_fd,
                         int64_t deadline)
{
    bool fd_sent = pass_fd < 0;
    while (len > 0) {
        ssize_t n;
        if (!fd_sent) {
            struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
            union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
            } u;
            memset(&u, 0, sizeof(u));
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                                 .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
            n = sendmsg(mon->fd, &msg, MSG_NOSIGNAL);
        } else {
            n = send(mon->fd, buf, len, MSG_NOSIGNAL);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            int64_t left = deadline - vmm_now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            struct pollfd pfd = {.fd = mon->fd, .events = POLLOUT};
            poll(&pfd, 1, (int)MIN(left, 1000));
            continue;
        }
        fd_sent = true;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int qmp_error_code(const char *cls)
{
    if (!cls)
        return -EIO;
    if (STREQ(cls, "DeviceNotFound"))
        return -ENODEV;
    if (STREQ(cls, "CommandNotFound"))
        return -ENOSYS;
    return -EIO;
}

static int qmp_execute_internal(QmpMonitor *mon, const char *command, struct json_object *args,
                                int pass_fd, unsigned timeout_ms, struct json_object **ret,
                                char **err)
{
    int64_t deadline = vmm_now_ms() + (timeout_ms ? timeout_ms : 10000);
    QmpPending pend = {0};

    pthread_mutex_lock(&mon->lock);
    if (!mon->connected) {
        pthread_mutex_unlock(&mon->lock);
        return vmm_error(err, -ECONNRESET, "QMP command %s: the monitor connection is closed",
                         command);
    }
    pend.id = mon->next_id++;
    pend.next = mon->pending;
    mon->pending = &pend;
    pthread_mutex_unlock(&mon->lock);

    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "execute", json_object_new_string(command));
    if (args)
        json_object_object_add(req, "arguments", json_object_get(args));
    json_object_object_add(req, "id", json_object_new_int64(pend.id));
    _cleanup_strbuf_ StrBuf line = STRBUF_INIT;
    strbuf_adds(&line, vmm_json_str(req));
    log_debug("QMP send: %.500s", line.buf);
    strbuf_addch(&line, '\n');
    json_object_put(req);

    pthread_mutex_lock(&mon->write_lock);
    int r = qmp_write_all(mon, line.buf, line.len, pass_fd, deadline);
    pthread_mutex_unlock(&mon->write_lock);

    pthread_mutex_lock(&mon->lock);
    if (r == 0) {
        struct timespec ts;
        qmp_deadline(&ts, deadline);
        while (!pend.done && mon->connected) {
            if (pthread_cond_timedwait(&mon->cond, &mon->lock, &ts) == ETIMEDOUT)
                break;
        }
    }
    for (QmpPending **pp = &mon->pending; *pp; pp = &(*pp)->next) {
        if (*pp == &pend) {
            *pp = pend.next;
            break;
        }
    }
    bool connected = mon->connected;
    pthread_mutex_unlock(&mon->lock);

    if (r < 0)
        return vmm_error(err, r == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET,
                         "QMP command %s: cannot send it: %s", command, strerror(-r));
    if (!pend.done) {
        if (!connected)
            return vmm_error(err, -ECONNRESET,
                             "QMP command %s: QEMU closed the monitor before answering",
                             command);
        return vmm_error(err, -ETIMEDOUT, "QMP command %s: no answer from QEMU within %u ms",
                         command, timeout_ms ? timeout_ms : 10000);
    }

    struct json_object *reply = pend.reply, *v;
    int code = 0;
    if (json_object_object_get_ex(reply, "return", &v)) {
        if (ret)
            *ret = json_object_get(v);
    } else if (json_object_object_get_ex(reply, "error", &v) &&
               json_object_is_type(v, json_type_object)) {
        struct json_object *cls = NULL, *desc = NULL;
        json_object_object_get_ex(v, "class", &cls);
        json_object_object_get_ex(v, "desc", &desc);
        const char *c = cls && json_object_is_type(cls, json_type_string)
                            ? json_object_get_string(cls) : NULL;
        const char *d = desc && json_object_is_type(desc, json_type_string)
                            ? json_object_get_string(desc) : "no description";
        code = vmm_error(err, qmp_error_code(c), "QEMU refused %s: %s", command, d);
    } else {
        code = vmm_error(err, -EPROTO, "QMP command %s: malformed reply %.200s", command,
                         vmm_json_str(reply));
    }
    json_object_put(reply);
    return code;
}

int qmp_execute(QmpMonitor *mon, const char *command, struct json_object *args,
                unsigned timeout_ms, struct json_object **ret, char **err)
{
    return qmp_execute_internal(mon, command, args, -1, timeout_ms, ret, err);
}

int qmp_execute_fd(QmpMonitor *mon, const char *command, struct json_object *args, int fd,
                   unsigned timeout_ms, struct json_object **ret, char **err)
{
    if (fd < 0)
        return vmm_error(err, -EBADF, "QMP command %s: no file descriptor to pass", command);
    return qmp_execute_internal(mon, command, args, fd, timeout_ms, ret, err);
}

/* ---- opening and closing ---------------------------------------------- */

static int qmp_read_greeting(QmpMonitor *mon, int64_t deadline, char **err)
{
    for (;;) {
        char *line;
        size_t len;
        if (qmp_take_line(mon, &line, &len)) {
            const char *why = NULL;
            struct json_object *msg = vmm_json_parse(line, len, QMP_MAX_DEPTH, &why);
            struct json_object *qmp, *ver, *q;
            int r = 0;
            if (!msg || !json_object_is_type(msg, json_type_object) ||
                !json_object_object_get_ex(msg, "QMP", &qmp)) {
                r = vmm_error(err, -EPROTO, "not a QMP monitor: it greeted with %.120s", line);
            } else if (json_object_object_get_ex(qmp, "version", &ver) &&
                       json_object_object_get_ex(ver, "qemu", &q)) {
                int64_t ma = 0, mi = 0, mc = 0;
                qmp_get_int64(q, "major", &ma);
                qmp_get_int64(q, "minor", &mi);
                qmp_get_int64(q, "micro", &mc);
                if (ma >= 0 && ma < 1000 && mi >= 0 && mi < 100 && mc >= 0 && mc < 100)
                    mon->version = (unsigned)(ma * 10000 + mi * 100 + mc);
            }
            json_object_put(msg);
            free(line);
            return r;
        }
        int64_t left = deadline - vmm_now_ms();
        if (left <= 0)
            return vmm_error(err, -ETIMEDOUT, "QMP: no greeting from QEMU within the timeout");
        struct pollfd pfd = {.fd = mon->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)MIN(left, 1000));
        if (pr < 0 && errno != EINTR)
            return vmm_error(err, -errno, "QMP: poll: %s", strerror(errno));
        if (pr <= 0)
            continue;
        int n = qmp_fill(mon);
        if (n == -EAGAIN)
            continue;
        if (n == 0 || n == -ECONNRESET)
            return vmm_error(err, -ECONNRESET, "QMP: QEMU closed the monitor before greeting");
        if (n < 0)
            return vmm_error(err, n, "QMP: read: %s", strerror(-n));
    }
}

int qmp_open(int fd, const QmpCallbacks *cb, unsigned timeout_ms, QmpMonitor **out, char **err)
{
    int64_t deadline = vmm_now_ms() + (timeout_ms ? timeout_ms : 10000);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = -errno;
        close(fd);
        return vmm_error(err, e, "QMP: fcntl: %s", strerror(-e));
    }
    QmpMonitor *mon = xnew0(QmpMonitor, 1);
    mon->fd = fd;
    if (cb)
        mon->cb = *cb;
    mon->next_id = 1;
    strbuf_init(&mon->rbuf, 0);
    pthread_mutex_init(&mon->lock, NULL);
    pthread_mutex_init(&mon->write_lock, NULL);
    qmp_cond_init(&mon->cond);

    int r = qmp_read_greeting(mon, deadline, err);
    if (r < 0) {
        qmp_close(mon);
        return r;
    }
    mon->connected = true;
    r = pthread_create(&mon->reader, NULL, qmp_reader_main, mon);
    if (r != 0) {
        mon->connected = false;
        qmp_close(mon);
        return vmm_error(err, -r, "QMP: cannot start the reader thread: %s", strerror(r));
    }
    mon->have_reader = true;
    int64_t left = deadline - vmm_now_ms();
    r = qmp_execute(mon, "qmp_capabilities", NULL, (unsigned)MAX(left, 1), NULL, err);
    if (r < 0) {
        qmp_close(mon);
        return r;
    }
    *out = mon;
    return 0;
}

int qmp_connect(const char *path, const QmpCallbacks *cb, unsigned timeout_ms, QmpMonitor **out,
                char **err)
{
    int fd = vmm_unix_connect(path);
    if (fd < 0)
        return vmm_error(err, fd, "cannot connect to the QMP socket %s: %s", path,
                         strerror(-fd));
    return qmp_open(fd, cb, timeout_ms, out, err);
}

void qmp_disconnect(QmpMonitor *mon)
{
    if (!mon)
        return;
    pthread_mutex_lock(&mon->lock);
    mon->closing = true;
    mon->connected = false;
    pthread_cond_broadcast(&mon->cond);
    pthread_mutex_unlock(&mon->lock);
    shutdown(mon->fd, SHUT_RDWR);
}

void qmp_close(QmpMonitor *mon)
{
    if (!mon)
        return;
    qmp_disconnect(mon);
    if (mon->have_reader)
        pthread_join(mon->reader, NULL);
    close(mon->fd);
    /* Nobody may still wait here: closing while another thread runs a command is a bug
     * of the caller, but fail such waiters rather than leave them hanging. */
    pthread_mutex_lock(&mon->lock);
    mon->connected = false;
    pthread_cond_broadcast(&mon->cond);
    pthread_mutex_unlock(&mon->lock);
    strbuf_release(&mon->rbuf);
    pthread_cond_destroy(&mon->cond);
    pthread_mutex_destroy(&mon->write_lock);
    pthread_mutex_destroy(&mon->lock);
    free(mon);
}

bool qmp_is_connected(QmpMonitor *mon)
{
    pthread_mutex_lock(&mon->lock);
    bool c = mon->connected;
    pthread_mutex_unlock(&mon->lock);
    return c;
}

unsigned qmp_version(QmpMonitor *mon)
{
    return mon->version;
}
