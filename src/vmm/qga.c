/*
 * Guest-agent client. See qga.h.
 *
 * Framing: one JSON object per line each way. Before a command the client
 * makes sure the stream is in sync: it sends a 0xFF byte (which makes the
 * agent drop any half-parsed input), then guest-sync-delimited with a random
 * id, skips everything up to the agent's 0xFF sentinel and waits for the
 * reply carrying that id. A timeout, an over-long line or garbage marks the
 * stream out of sync again. Nothing read from the agent is trusted: sizes
 * are capped, types checked, base64 decoded with bounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qga.h"
#include "vmm/qmp_cmd.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

#define QGA_MAX_DEPTH 64

struct QgaClient {
    int fd;
    bool synced;
    size_t max_line;
    StrBuf rbuf;
};

QgaClient *qga_open_fd(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    QgaClient *c = xnew0(QgaClient, 1);
    c->fd = fd;
    c->max_line = QGA_DEFAULT_MAX_LINE;
    strbuf_init(&c->rbuf, 0);
    return c;
}

int qga_connect(const char *socket_path, QgaClient **out, char **err)
{
    int fd = vmm_unix_connect(socket_path);
    if (fd == -EAGAIN)
        return vmm_error(err, fd, "the guest agent socket %s is held by another client "
                         "(QEMU serves one at a time)", socket_path);
    if (fd < 0)
        return vmm_error(err, fd, "cannot connect to the guest agent socket %s: %s",
                         socket_path, strerror(-fd));
    *out = qga_open_fd(fd);
    return 0;
}

void qga_close(QgaClient *c)
{
    if (!c)
        return;
    close(c->fd);
    strbuf_release(&c->rbuf);
    free(c);
}

void qga_set_max_line(QgaClient *c, size_t max)
{
    c->max_line = max ? max : QGA_DEFAULT_MAX_LINE;
}

/* ---- I/O ------------------------------------------------------------------ */

static int qga_write(QgaClient *c, const void *buf, size_t len, int64_t deadline)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return errno == EPIPE ? -ECONNRESET : -errno;
            int64_t left = deadline - vmm_now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
            poll(&pfd, 1, (int)left);
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into rbuf: >0, or -ETIMEDOUT / -ECONNRESET / -errno. */
static int qga_fill(QgaClient *c, int64_t deadline)
{
    for (;;) {
        char chunk[16384];
        ssize_t n = read(c->fd, chunk, sizeof(chunk));
        if (n > 0) {
            strbuf_add(&c->rbuf, chunk, (size_t)n);
            return (int)n;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int64_t left = deadline - vmm_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        poll(&pfd, 1, (int)MIN(left, 1000));
    }
}

static void qga_consume(QgaClient *c, size_t n)
{
    size_t rest = c->rbuf.len - n;
    memmove(c->rbuf.buf, c->rbuf.buf + n, rest);
    strbuf_setlen(&c->rbuf, rest);
}

/*
 * Next line (without the newline; caller frees), or an error. An over-long
 * line gives -EMSGSIZE and leaves the stream out of sync.
 */
static int qga_read_line(QgaClient *c, int64_t deadline, char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(c->rbuf.buf, '\n', c->rbuf.len);
        if (nl) {
            size_t n = (size_t)(nl - c->rbuf.buf);
            if (n > c->max_line) {
                qga_consume(c, n + 1);
                return -EMSGSIZE;
            }
            *line = xmemdup(c->rbuf.buf, n + 1);
            (*line)[n] = '\0';
            *len = n;
            qga_consume(c, n + 1);
            return 0;
        }
        if (c->rbuf.len > c->max_line) {
            strbuf_reset(&c->rbuf);
            return -EMSGSIZE;
        }
        int r = qga_fill(c, deadline);
        if (r < 0)
            return r;
    }
}

static int qga_send_command(QgaClient *c, const char *command, struct json_object *args,
                            int64_t deadline)
{
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "execute", json_object_new_string(command));
    if (args)
        json_object_object_add(req, "arguments", json_object_get(args));
    _cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
    strbuf_adds(&sb, vmm_json_str(req));
    strbuf_addch(&sb, '\n');
    json_object_put(req);
    return qga_write(c, sb.buf, sb.len, deadline);
}

static int qga_io_error(QgaClient *c, int r, const char *what, char **err)
{
    c->synced = false;
    switch (r) {
    case -ETIMEDOUT:
        return vmm_error(err, r, "guest agent: no answer to %s in time (is the agent running "
                         "in the guest?)", what);
    case -EMSGSIZE:
        return vmm_error(err, r, "guest agent: the reply to %s is longer than %zu bytes", what,
                         c->max_line);
    case -ECONNRESET:
        return vmm_error(err, r, "guest agent: the channel closed during %s", what);
    default:
        return vmm_error(err, r, "guest agent: %s: %s", what, strerror(-r));
    }
}

/* ---- sync ------------------------------------------------------------------ */

int qga_sync(QgaClient *c, unsigned timeout_ms, char **err)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    uint32_t id;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint32_t)vmm_now_ms();
    id &= 0x3fffffff;
    c->synced = false;
    strbuf_reset(&c->rbuf); /* whatever is buffered is stale */
    static const unsigned char flush = 0xff;
    int r = qga_write(c, &flush, 1, deadline);
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "id", json_object_new_int64(id));
    if (r == 0)
        r = qga_send_command(c, "guest-sync-delimited", args, deadline);
    json_object_put(args);
    if (r < 0)
        return qga_io_error(c, r, "guest-sync-delimited", err);

    for (;;) {
        /* skip to the sentinel */
        char *ff = memchr(c->rbuf.buf, 0xff, c->rbuf.len);
        if (!ff) {
            strbuf_reset(&c->rbuf);
            r = qga_fill(c, deadline);
            if (r < 0)
                return qga_io_error(c, r, "guest-sync-delimited", err);
            continue;
        }
        qga_consume(c, (size_t)(ff - c->rbuf.buf) + 1);
        /* the reply follows; a stale one (other id) means: look for the next sentinel */
        for (;;) {
            char *line;
            size_t len;
            r = qga_read_line(c, deadline, &line, &len);
            if (r < 0)
                return qga_io_error(c, r, "guest-sync-delimited", err);
            if (memchr(line, 0xff, len)) {
                /* another sentinel inside: restart from it */
                char *p = memchr(line, 0xff, len);
                StrBuf rest = STRBUF_INIT;
                strbuf_add(&rest, p, len - (size_t)(p - line));
                strbuf_addch(&rest, '\n');
                strbuf_add(&rest, c->rbuf.buf, c->rbuf.len);
                strbuf_release(&c->rbuf);
                c->rbuf = rest;
                free(line);
                break;
            }
            const char *why;
            struct json_object *o = vmm_json_parse(line, len, QGA_MAX_DEPTH, &why);
            free(line);
            if (!o)
                continue; /* blank or garbage before the reply */
            int64_t got;
            bool match = qmp_cmd_get_int(o, "return", &got) && got == (int64_t)id;
            json_object_put(o);
            if (match) {
                c->synced = true;
                return 0;
            }
        }
    }
}

/* ---- commands ----------------------------------------------------------------- */

static int qga_read_reply(QgaClient *c, const char *command, int64_t deadline,
                          struct json_object **ret, char **err)
{
    for (;;) {
        char *line;
        size_t len;
        int r = qga_read_line(c, deadline, &line, &len);
        if (r < 0)
            return qga_io_error(c, r, command, err);
        const char *why = NULL;
        struct json_object *o = vmm_json_parse(line, len, QGA_MAX_DEPTH, &why);
        if (!o) {
            bool blank = why && STREQ(why, "empty");
            if (!blank)
                log_debug("guest agent: garbage instead of a reply to %s: %.100s", command,
                          line);
            free(line);
            if (blank)
                continue;
            c->synced = false;
            return vmm_error(err, -EPROTO, "guest agent: garbage instead of a reply to %s",
                             command);
        }
        free(line);
        struct json_object *v;
        if (!json_object_is_type(o, json_type_object)) {
            json_object_put(o);
            c->synced = false;
            return vmm_error(err, -EPROTO, "guest agent: a reply to %s that is not an object",
                             command);
        }
        if (json_object_object_get_ex(o, "return", &v)) {
            if (ret)
                *ret = json_object_get(v);
            json_object_put(o);
            return 0;
        }
        struct json_object *e = qmp_cmd_get_obj(o, "error");
        if (e) {
            const char *desc = qmp_cmd_get_str(e, "desc");
            const char *cls = qmp_cmd_get_str(e, "class");
            int code = cls && STREQ(cls, "CommandNotFound") ? -ENOSYS : -EIO;
            r = vmm_error(err, code, "guest agent refused %s: %s", command,
                          desc ? desc : "no description");
            json_object_put(o);
            return r;
        }
        json_object_put(o);
        c->synced = false;
        return vmm_error(err, -EPROTO, "guest agent: a reply to %s without return or error",
                         command);
    }
}

int qga_execute(QgaClient *c, const char *command, struct json_object *args,
                unsigned timeout_ms, struct json_object **ret, char **err)
{
    int64_t deadline = vmm_now_ms() + timeout_ms;
    if (!c->synced) {
        int r = qga_sync(c, timeout_ms, err);
        if (r < 0)
            return r;
    }
    int r = qga_send_command(c, command, args, deadline);
    if (r < 0)
        return qga_io_error(c, r, command, err);
    return qga_read_reply(c, command, deadline, ret, err);
}

int qga_execute_noreply(QgaClient *c, const char *command, struct json_object *args,
                        unsigned timeout_ms, unsigned grace_ms, char **err)
{
    if (!c->synced) {
        int r = qga_sync(c, timeout_ms, err);
        if (r < 0)
            return r;
    }
    int r = qga_send_command(c, command, args, vmm_now_ms() + timeout_ms);
    if (r < 0)
        return qga_io_error(c, r, command, err);
    char *e2 = NULL;
    r = qga_read_reply(c, command, vmm_now_ms() + grace_ms, NULL, &e2);
    c->synced = false; /* whatever comes later belongs to nobody */
    if (r == -ETIMEDOUT || r == -ECONNRESET || r == 0) {
        free(e2);
        return 0;
    }
    if (err) {
        free(*err);
        *err = e2;
    } else {
        free(e2);
    }
    return r;
}

/* ---- the usual commands ---------------------------------------------------- */

int qga_ping(QgaClient *c, unsigned timeout_ms, char **err)
{
    return qga_execute(c, "guest-ping", NULL, timeout_ms, NULL, err);
}

static int qga_get_object(QgaClient *c, const char *cmd, json_type want, unsigned timeout_ms,
                          struct json_object **ret, char **err)
{
    struct json_object *v = NULL;
    int r = qga_execute(c, cmd, NULL, timeout_ms, &v, err);
    if (r < 0)
        return r;
    if (!json_object_is_type(v, want)) {
        json_object_put(v);
        return vmm_error(err, -EPROTO, "guest agent: %s returned the wrong type", cmd);
    }
    *ret = v;
    return 0;
}

int qga_info(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err)
{
    return qga_get_object(c, "guest-info", json_type_object, timeout_ms, ret, err);
}

int qga_get_osinfo(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err)
{
    return qga_get_object(c, "guest-get-osinfo", json_type_object, timeout_ms, ret, err);
}

int qga_get_host_name(QgaClient *c, unsigned timeout_ms, char **host_name, char **err)
{
    struct json_object *v = NULL;
    int r = qga_get_object(c, "guest-get-host-name", json_type_object, timeout_ms, &v, err);
    if (r < 0)
        return r;
    const char *h = qmp_cmd_get_str(v, "host-name");
    if (!h || strlen(h) > 255)
        r = vmm_error(err, -EPROTO, "guest agent: guest-get-host-name gave no usable name");
    else
        *host_name = xstrdup(h);
    json_object_put(v);
    return r;
}

int qga_network_get_interfaces(QgaClient *c, unsigned timeout_ms, struct json_object **ret,
                               char **err)
{
    return qga_get_object(c, "guest-network-get-interfaces", json_type_array, timeout_ms, ret,
                          err);
}

int qga_get_fsinfo(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err)
{
    return qga_get_object(c, "guest-get-fsinfo", json_type_array, timeout_ms, ret, err);
}

int qga_get_users(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err)
{
    return qga_get_object(c, "guest-get-users", json_type_array, timeout_ms, ret, err);
}

int qga_shutdown(QgaClient *c, const char *mode, unsigned timeout_ms, char **err)
{
    if (!mode || !(STREQ(mode, "powerdown") || STREQ(mode, "reboot") || STREQ(mode, "halt")))
        return vmm_error(err, -EINVAL, "guest shutdown mode must be powerdown, reboot or halt");
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "mode", json_object_new_string(mode));
    int r = qga_execute_noreply(c, "guest-shutdown", a, timeout_ms, MIN(timeout_ms, 1000), err);
    json_object_put(a);
    return r;
}

static int qga_int_command(QgaClient *c, const char *cmd, unsigned timeout_ms, char **err)
{
    struct json_object *v = NULL;
    int r = qga_execute(c, cmd, NULL, timeout_ms, &v, err);
    if (r < 0)
        return r;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
        json_object_get_int64(v) > 1000000)
        r = vmm_error(err, -EPROTO, "guest agent: %s did not return a count", cmd);
    else
        r = (int)json_object_get_int64(v);
    json_object_put(v);
    return r;
}

int qga_fsfreeze_freeze(QgaClient *c, unsigned timeout_ms, char **err)
{
    return qga_int_command(c, "guest-fsfreeze-freeze", timeout_ms, err);
}

int qga_fsfreeze_thaw(QgaClient *c, unsigned timeout_ms, char **err)
{
    return qga_int_command(c, "guest-fsfreeze-thaw", timeout_ms, err);
}

int qga_fsfreeze_status(QgaClient *c, unsigned timeout_ms, char **status, char **err)
{
    struct json_object *v = NULL;
    int r = qga_execute(c, "guest-fsfreeze-status", NULL, timeout_ms, &v, err);
    if (r < 0)
        return r;
    if (!json_object_is_type(v, json_type_string) ||
        !(STREQ(json_object_get_string(v), "thawed") || STREQ(json_object_get_string(v), "frozen")))
        r = vmm_error(err, -EPROTO, "guest agent: guest-fsfreeze-status gave no status");
    else
        *status = xstrdup(json_object_get_string(v));
    json_object_put(v);
    return r;
}

static char *qga_base64_encode(const void *data, size_t len)
{
    if (len > 64 * 1024 * 1024)
        return NULL;
    size_t out_len = 4 * ((len + 2) / 3) + 1;
    unsigned char *out = xmalloc(out_len);
    EVP_EncodeBlock(out, data, (int)len);
    return (char *)out;
}

/* Decodes base64 text of at most max_in characters; NULL if invalid. */
static char *qga_base64_decode(const char *in, size_t max_in, size_t *out_len)
{
    size_t n = strlen(in);
    if (n > max_in || n % 4 != 0)
        return NULL;
    unsigned char *out = xmalloc(n / 4 * 3 + 1);
    int r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (r < 0) {
        free(out);
        return NULL;
    }
    size_t len = (size_t)r;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (n >= 1 && in[n - 1] == '=')
        len--;
    if (n >= 2 && in[n - 2] == '=')
        len--;
    out[len] = '\0';
    *out_len = len;
    return (char *)out;
}

int qga_set_user_password(QgaClient *c, const char *user, const char *password, bool crypted,
                          unsigned timeout_ms, char **err)
{
    if (!user || !*user || strlen(user) > 256 || !password || strlen(password) > 4096)
        return vmm_error(err, -EINVAL, "guest agent: bad user name or password length");
    _cleanup_free_ char *b64 = qga_base64_encode(password, strlen(password));
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "username", json_object_new_string(user));
    json_object_object_add(a, "password", json_object_new_string(b64));
    json_object_object_add(a, "crypted", json_object_new_boolean(crypted));
    int r = qga_execute(c, "guest-set-user-password", a, timeout_ms, NULL, err);
    json_object_put(a);
    return r;
}

int qga_exec(QgaClient *c, char *const argv[], bool capture_output, unsigned timeout_ms,
             int64_t *pid, char **err)
{
    if (!argv || !argv[0])
        return vmm_error(err, -EINVAL, "guest agent: nothing to execute");
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "path", json_object_new_string(argv[0]));
    struct json_object *args = json_object_new_array();
    for (size_t i = 1; argv[i]; i++)
        json_object_array_add(args, json_object_new_string(argv[i]));
    json_object_object_add(a, "arg", args);
    json_object_object_add(a, "capture-output", json_object_new_boolean(capture_output));
    struct json_object *v = NULL;
    int r = qga_execute(c, "guest-exec", a, timeout_ms, &v, err);
    json_object_put(a);
    if (r < 0)
        return r;
    int64_t p;
    if (!qmp_cmd_get_int(v, "pid", &p) || p <= 0)
        r = vmm_error(err, -EPROTO, "guest agent: guest-exec gave no pid");
    else
        *pid = p;
    json_object_put(v);
    return r;
}

int qga_exec_status(QgaClient *c, int64_t pid, unsigned timeout_ms, QgaExecStatus *st,
                    char **err)
{
    memset(st, 0, sizeof(*st));
    st->exit_code = -1;
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "pid", json_object_new_int64(pid));
    struct json_object *v = NULL;
    int r = qga_execute(c, "guest-exec-status", a, timeout_ms, &v, err);
    json_object_put(a);
    if (r < 0)
        return r;
    if (!qmp_cmd_get_bool(v, "exited", &st->exited)) {
        json_object_put(v);
        return vmm_error(err, -EPROTO, "guest agent: guest-exec-status without 'exited'");
    }
    int64_t x;
    if (qmp_cmd_get_int(v, "exitcode", &x) && x >= 0 && x < 256)
        st->exit_code = (int)x;
    if (qmp_cmd_get_int(v, "signal", &x) && x > 0 && x < 256)
        st->signal = (int)x;
    bool t = false;
    qmp_cmd_get_bool(v, "out-truncated", &t);
    st->truncated = t;
    qmp_cmd_get_bool(v, "err-truncated", &t);
    st->truncated |= t;
    const char *o = qmp_cmd_get_str(v, "out-data");
    const char *e = qmp_cmd_get_str(v, "err-data");
    if (o && !(st->out = qga_base64_decode(o, c->max_line, &st->out_len)))
        r = vmm_error(err, -EPROTO, "guest agent: out-data is not base64");
    if (r == 0 && e && !(st->err = qga_base64_decode(e, c->max_line, &st->err_len)))
        r = vmm_error(err, -EPROTO, "guest agent: err-data is not base64");
    json_object_put(v);
    if (r < 0)
        qga_exec_status_release(st);
    return r;
}

void qga_exec_status_release(QgaExecStatus *st)
{
    free(st->out);
    free(st->err);
    st->out = st->err = NULL;
    st->out_len = st->err_len = 0;
}
