/*
 * The consoles of running VMs over HTTP, and their core dumps:
 *
 *   GET /console?ref=<console>            with "Upgrade: websocket": the
 *       console as a WebSocket (RFC 6455, binary frames): an rfb console is
 *       proxied to QEMU's VNC server (a unix socket; VNC never listens on
 *       the network), so a browser VNC client (noVNC) can use it; a vt100
 *       console streams what the guest writes on its serial port.
 *   GET /console?ref=<vt100 console>      without upgrade: the serial
 *       console's log as text (xe console).
 *   GET /vm_dump_core?ref=<VM>            the guest's memory as an ELF core
 *       file (QMP dump-guest-memory), streamed (xe vm-dump-core).
 *
 * Callers are authenticated as for every HTTP handler (http_call.h):
 * session_id, Basic credentials, or local root on the unix socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/console.h"
#include "api/http_call.h"
#include "ops/vm_lifecycle.h"
#include "util/log.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define WS_MAX_FRAME (1024 * 1024)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define LOG_TEXT_MAX (4 * 1024 * 1024)

/* ---- WebSocket framing ---------------------------------------------------------------- */

static bool write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            if (poll(&pf, 1, 5000) <= 0)
                return false;
            continue;
        }
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static bool ws_send(int fd, int opcode, const void *data, size_t len)
{
    unsigned char h[10];
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    return write_all(fd, h, hl) && (len == 0 || write_all(fd, data, len));
}

/* Incoming frames are parsed from a buffer that grows with what arrives. */
typedef struct WsIn {
    unsigned char *buf;
    size_t len, cap;
} WsIn;

static void ws_in_add(WsIn *in, const void *data, size_t n)
{
    if (in->len + n > in->cap) {
        in->cap = (in->len + n) * 2;
        in->buf = xrealloc(in->buf, in->cap);
    }
    memcpy(in->buf + in->len, data, n);
    in->len += n;
}

/*
 * Takes one complete frame off the buffer: 1 with *opcode and the unmasked
 * payload (in place), 0 if more bytes are needed, -1 on a protocol error.
 */
static int ws_take(WsIn *in, int *opcode, unsigned char **payload, size_t *plen, size_t *used)
{
    if (in->len < 2)
        return 0;
    unsigned char *b = in->buf;
    bool masked = b[1] & 0x80;
    uint64_t len = b[1] & 0x7f;
    size_t off = 2;
    if (len == 126) {
        if (in->len < 4)
            return 0;
        len = ((uint64_t)b[2] << 8) | b[3];
        off = 4;
    } else if (len == 127) {
        if (in->len < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | b[2 + i];
        off = 10;
    }
    if (!masked || len > WS_MAX_FRAME)
        return -1; /* clients must mask; frames are bounded */
    if (in->len < off + 4 + len)
        return 0;
    unsigned char *mask = b + off;
    unsigned char *p = b + off + 4;
    for (uint64_t i = 0; i < len; i++)
        p[i] ^= mask[i % 4];
    *opcode = b[0] & 0x0f;
    *payload = p;
    *plen = (size_t)len;
    *used = off + 4 + (size_t)len;
    return 1;
}

static void ws_consume(WsIn *in, size_t used)
{
    memmove(in->buf, in->buf + used, in->len - used);
    in->len -= used;
}

/* ---- the two kinds of console --------------------------------------------------------- */

typedef struct ConsoleSession {
    bool rfb;
    char *vnc;
    char *log;
} ConsoleSession;

static void session_free(void *p)
{
    ConsoleSession *s = p;
    free(s->vnc);
    free(s->log);
    free(s);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Feeds what the client sent to backend (rfb) or drops it (vt100). Returns false at the end. */
static bool client_input(int ws, WsIn *in, int backend)
{
    for (;;) {
        int op;
        unsigned char *p;
        size_t n, used;
        int r = ws_take(in, &op, &p, &n, &used);
        if (r < 0) {
            unsigned char code[2] = {1002 >> 8, 1002 & 0xff};
            ws_send(ws, 8, code, 2);
            return false;
        }
        if (r == 0)
            return true;
        bool go_on = true;
        switch (op) {
        case 0: /* continuation */
        case 1: /* text */
        case 2: /* binary */
            if (backend >= 0 && n)
                go_on = write_all(backend, p, n);
            break;
        case 8: /* close */
            ws_send(ws, 8, p, n >= 2 ? 2 : 0);
            go_on = false;
            break;
        case 9: /* ping */
            go_on = ws_send(ws, 10, p, n);
            break;
        default:
            break;
        }
        ws_consume(in, used);
        if (!go_on)
            return false;
    }
}

static void console_run(void *ctx, int ws, const char *extra, size_t extra_len)
{
    ConsoleSession *s = ctx;
    WsIn in = {0};
    if (extra_len)
        ws_in_add(&in, extra, extra_len);
    int backend = -1, logfd = -1;
    if (s->rfb) {
        backend = connect_unix(s->vnc);
        if (backend < 0) {
            log_warn("console: cannot reach the VNC server at %s: %s", s->vnc,
                     strerror(-backend));
            unsigned char code[2] = {1011 >> 8, 1011 & 0xff};
            ws_send(ws, 8, code, 2);
            free(in.buf);
            return;
        }
    } else {
        logfd = open(s->log, O_RDONLY | O_CLOEXEC);
    }
    char *buf = xmalloc(65536);
    bool go = client_input(ws, &in, backend);
    while (go && !http_upgrade_should_stop()) {
        struct pollfd pf[2] = {{.fd = ws, .events = POLLIN}, {.fd = backend, .events = POLLIN}};
        int r = poll(pf, backend >= 0 ? 2 : 1, 250);
        if (r < 0 && errno != EINTR)
            break;
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(ws, buf, 65536, 0);
            if (n <= 0)
                break;
            ws_in_add(&in, buf, (size_t)n);
            if (in.len > 2 * WS_MAX_FRAME)
                break;
            go = client_input(ws, &in, backend);
        }
        if (backend >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = recv(backend, buf, 65536, 0);
            if (n <= 0)
                break;
            go = ws_send(ws, 2, buf, (size_t)n);
        }
        if (logfd >= 0) {
            /* tail -f of the serial log */
            ssize_t n;
            while (go && (n = read(logfd, buf, 65536)) > 0)
                go = ws_send(ws, 2, buf, (size_t)n);
        }
    }
    free(buf);
    free(in.buf);
    if (backend >= 0)
        close(backend);
    if (logfd >= 0)
        close(logfd);
}

/* ---- handlers ----------------------------------------------------------------------------- */

static bool header_has(HttpRequest *req, const char *name, const char *token)
{
    const char *v = http_header(req, name);
    if (!v)
        return false;
    size_t n = strlen(token);
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p + strcspn(p, ",");
        size_t l = (size_t)(e - p);
        while (l && p[l - 1] == ' ')
            l--;
        if (l == n && strncasecmp(p, token, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* The error as a JSON array [code, params...]: parameters may hold commas. */
static void reply_xs_error(HttpReply *reply, unsigned status, const XsError *err)
{
    reply->status = status;
    reply->content_type = "application/json";
    strbuf_reset(&reply->body);
    strbuf_addch(&reply->body, '[');
    strbuf_add_json_string(&reply->body, err->code);
    for (size_t i = 0; i < err->nparams; i++) {
        strbuf_addch(&reply->body, ',');
        strbuf_add_json_string(&reply->body, err->params[i]);
    }
    strbuf_adds(&reply->body, "]\n");
}

/* The console record behind ref: its VM and protocol (read lock taken inside). */
static bool console_target(OpsCtx *ctx, const char *ref, char **vm, bool *rfb, XsError **errp)
{
    db_read_lock(ctx->db);
    DbObj *c = db_get_class(ctx->db, XS_CLASS_CONSOLE, ref);
    DbObj *v = c ? db_get_class(ctx->db, XS_CLASS_VM, db_str(c, F_CONSOLE_VM)) : NULL;
    bool ok = false;
    if (!c) {
        xs_err_handle_invalid(errp, "console", ref ? ref : "");
    } else if (!v) {
        xs_err_handle_invalid(errp, "VM", db_str(c, F_CONSOLE_VM));
    } else {
        int ps = db_enum(v, F_VM_POWER_STATE);
        if (ps != VM_POWER_STATE_RUNNING && ps != VM_POWER_STATE_PAUSED) {
            xs_err_vm_bad_power_state(errp, v->ref, "running", ops_power_state_lower(ps));
        } else {
            *vm = xstrdup(v->ref);
            *rfb = db_enum(c, F_CONSOLE_PROTOCOL) == CONSOLE_PROTOCOL_RFB;
            ok = true;
        }
    }
    db_read_unlock(ctx->db);
    return ok;
}

static void console_text(HttpReply *reply, const char *log)
{
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0) {
        off_t start = sb.st_size > LOG_TEXT_MAX ? sb.st_size - LOG_TEXT_MAX : 0;
        char *buf = xmalloc(65536);
        ssize_t n;
        while ((n = pread(fd, buf, 65536, start)) > 0) {
            strbuf_add(&reply->body, buf, (size_t)n);
            start += n;
            if (reply->body.len >= LOG_TEXT_MAX)
                break;
        }
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    reply->status = 200;
    reply->content_type = "text/plain; charset=utf-8";
}

static void handle_console(HttpRequest *req, HttpReply *reply)
{
    ApiHttpCall call;
    if (!api_http_call_begin(req, reply, "Connection to console", XS_ROLE_VM_OPERATOR, &call))
        return;
    XsError *err = NULL;
    char *vm = NULL, *vnc = NULL, *log = NULL;
    bool rfb = false;
    const char *ref = http_query(req, "ref");
    bool upgrade = header_has(req, "Connection", "upgrade") &&
                   header_has(req, "Upgrade", "websocket");
    if (!console_target(&call.ctx, ref, &vm, &rfb, &err) ||
        !ops_vm_console_paths(&call.ctx, vm, &vnc, &log, &err)) {
        reply_xs_error(reply, 404, err);
        api_http_call_end(&call, NULL, err);
        goto out;
    }
    if (!upgrade) {
        if (rfb) {
            xs_err_operation_not_allowed(&err, "A graphical console is reached as a WebSocket "
                                               "(Upgrade: websocket).");
            reply_xs_error(reply, 400, err);
        } else {
            console_text(reply, log);
        }
        api_http_call_end(&call, NULL, err);
        goto out;
    }
    const char *key = http_header(req, "Sec-WebSocket-Key");
    const char *version = http_header(req, "Sec-WebSocket-Version");
    if (!key || strlen(key) > 64 || !version || strcmp(version, "13") != 0) {
        xs_err_operation_not_allowed(&err, "Only WebSocket version 13 with a key is spoken here.");
        reply_xs_error(reply, 400, err);
        api_http_call_end(&call, NULL, err);
        goto out;
    }
    char *cat = xasprintf("%s" WS_GUID, key);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, strlen(cat), digest);
    free(cat);
    unsigned char accept[64];
    EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH);
    reply->status = 101;
    http_reply_add_header(reply, "Upgrade", "websocket");
    http_reply_add_header(reply, "Sec-WebSocket-Accept", (const char *)accept);
    if (header_has(req, "Sec-WebSocket-Protocol", "binary"))
        http_reply_add_header(reply, "Sec-WebSocket-Protocol", "binary");
    ConsoleSession *s = xnew0(ConsoleSession, 1);
    s->rfb = rfb;
    s->vnc = vnc;
    s->log = log;
    vnc = log = NULL;
    reply->upgrade = console_run;
    reply->upgrade_ctx = s;
    reply->upgrade_free = session_free;
    api_http_call_end(&call, NULL, NULL);
out:
    xs_error_free(err);
    free(vm);
    free(vnc);
    free(log);
}

/* ---- core dumps ----------------------------------------------------------------------------- */

typedef struct DumpStream {
    int fd;
} DumpStream;

static ssize_t dump_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    DumpStream *d = ctx;
    ssize_t n;
    do
        n = pread(d->fd, buf, max, (off_t)pos);
    while (n < 0 && errno == EINTR);
    return n;
}

static void dump_free(void *ctx)
{
    DumpStream *d = ctx;
    close(d->fd);
    free(d);
}

static void handle_dump_core(HttpRequest *req, HttpReply *reply)
{
    ApiHttpCall call;
    if (!api_http_call_begin(req, reply, "Core dump of VM", XS_ROLE_VM_POWER_ADMIN, &call))
        return;
    XsError *err = NULL;
    const char *ref = http_query(req, "ref");
    char *vm = NULL;
    db_read_lock(call.ctx.db);
    DbObj *v = ref ? db_get_class(call.ctx.db, XS_CLASS_VM, ref) : NULL;
    if (!v && ref && uuid_is_valid(ref))
        v = db_get_by_uuid(call.ctx.db, XS_CLASS_VM, ref);
    if (v)
        vm = xstrdup(v->ref);
    db_read_unlock(call.ctx.db);
    if (!vm) {
        xs_err_handle_invalid(&err, "VM", ref ? ref : "");
        reply_xs_error(reply, 404, err);
        api_http_call_end(&call, NULL, err);
        xs_error_free(err);
        return;
    }
    HxEnv *env = call.ctx.env;
    char *dir = xasprintf("%s/crashdumps", env->state_dir);
    mkdir(dir, 0700);
    char u[UUID_STR_LEN];
    uuid_generate_str(u);
    char *path = xasprintf("%s/download-%s.core", dir, u);
    free(dir);
    if (!ops_vm_dump_core_to(&call.ctx, vm, path, &err)) {
        reply_xs_error(reply, 500, err);
        api_http_call_end(&call, NULL, err);
        xs_error_free(err);
        free(path);
        free(vm);
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    bool ok = fd >= 0 && fstat(fd, &sb) == 0;
    unlink(path); /* the open descriptor keeps it until the download ends */
    free(path);
    free(vm);
    if (!ok) {
        if (fd >= 0)
            close(fd);
        xs_error_internal(&err, "the core dump file vanished");
        reply_xs_error(reply, 500, err);
        api_http_call_end(&call, NULL, err);
        xs_error_free(err);
        return;
    }
    DumpStream *d = xnew0(DumpStream, 1);
    d->fd = fd;
    reply->status = 200;
    reply->content_type = "application/octet-stream";
    reply->stream = dump_read;
    reply->stream_free = dump_free;
    reply->stream_ctx = d;
    reply->stream_size = sb.st_size;
    api_http_call_end(&call, NULL, NULL);
}

const HttpRoute console_routes[] = {
    {"GET", "/console", HTTP_ROUTE_BUFFERED, 0, NULL, handle_console, NULL},
    {"GET", "/vm_dump_core", HTTP_ROUTE_BUFFERED, 0, NULL, handle_dump_core, NULL},
};
const size_t console_nroutes = ARRAY_SIZE(console_routes);
