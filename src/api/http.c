/*
 * HTTP servers on libmicrohttpd. See http.h. We create and bind the
 * listening sockets ourselves (TCP, or a unix socket whose peers we identify
 * with SO_PEERCRED) and hand them to MHD, which runs one thread per
 * connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

struct HttpServer {
    struct MHD_Daemon *d;
    HttpServerConfig cfg;
    int fd;
    bool is_unix;
    char *unix_path;
    unsigned port;
    char *key;
    char *cert;
};

void http_reply_init(HttpReply *r)
{
    memset(r, 0, sizeof(*r));
    r->status = 200;
    strbuf_init(&r->body, 0);
    strbuf_init(&r->headers, 0);
    r->stream_size = -1;
}

void http_reply_release(HttpReply *r)
{
    if (r->upgrade_free && r->upgrade_ctx)
        r->upgrade_free(r->upgrade_ctx);
    r->upgrade = NULL;
    r->upgrade_ctx = NULL;
    strbuf_release(&r->body);
    strbuf_release(&r->headers);
    if (r->stream_free && r->stream_ctx)
        r->stream_free(r->stream_ctx);
    r->stream = NULL;
    r->stream_ctx = NULL;
}

void http_reply_text(HttpReply *r, unsigned status, const char *content_type, const char *text)
{
    r->status = status;
    r->content_type = content_type;
    strbuf_reset(&r->body);
    strbuf_adds(&r->body, text);
}

void http_reply_add_header(HttpReply *r, const char *name, const char *value)
{
    strbuf_addf(&r->headers, "%s: %s\n", name, value);
}

void http_reply_error_page(HttpReply *r, unsigned status, const char *message)
{
    r->status = status;
    r->content_type = "text/html";
    strbuf_reset(&r->body);
    strbuf_adds(&r->body, "<html><body><h1>HTTP ");
    strbuf_addf(&r->body, "%u</h1><p>", status);
    strbuf_add_xml_escaped(&r->body, message);
    strbuf_adds(&r->body, "</p></body></html>\n");
}

void *http_user(HttpRequest *req)
{
    return req->server->cfg.user;
}

const char *http_query(HttpRequest *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(HttpRequest *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(HttpRequest *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

bool http_basic_auth(HttpRequest *req, char **user, char **password)
{
    char *pw = NULL;
    char *u = MHD_basic_auth_get_username_password(req->conn, &pw);
    if (!u) {
        MHD_free(pw);
        return false;
    }
    *user = xstrdup(u);
    *password = xstrdup(pw ? pw : "");
    MHD_free(u);
    MHD_free(pw);
    return true;
}

static const HttpRoute *find_route(HttpServer *s, const char *method, const char *url)
{
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const HttpRoute *r = &s->cfg.routes[i];
        if (strcmp(r->path, url) != 0)
            continue;
        if (r->method && strcmp(r->method, method) != 0)
            continue;
        return r;
    }
    return NULL;
}

static void fill_peer(HttpServer *s, HttpRequest *req, struct MHD_Connection *conn)
{
    if (s->is_unix) {
        req->is_unix = true;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            req->peer_is_root = cred.uid == 0;
            snprintf(req->peer, sizeof(req->peer), "unix:%u", (unsigned)cred.uid);
        } else {
            snprintf(req->peer, sizeof(req->peer), "unix:?");
        }
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->peer,
                      sizeof(req->peer));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->peer,
                      sizeof(req->peer));
    }
    if (!req->peer[0])
        snprintf(req->peer, sizeof(req->peer), "?");
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    HttpReply *r = cls;
    ssize_t n = r->stream(r->stream_ctx, pos, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free_cb(void *cls)
{
    HttpReply *r = cls;
    http_reply_release(r);
    free(r);
}

/* ---- protocol switches (WebSocket) ------------------------------------------------ */

static pthread_mutex_t upgrade_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t upgrade_cond = PTHREAD_COND_INITIALIZER;
static int upgrades_active;
static bool upgrades_stopping;

bool http_upgrade_should_stop(void)
{
    pthread_mutex_lock(&upgrade_lock);
    bool s = upgrades_stopping;
    pthread_mutex_unlock(&upgrade_lock);
    return s;
}

typedef struct Upgrade {
    HttpUpgradeFn fn;
    void *ctx;
    HttpStreamFree free_ctx;
    int fd;
    char *extra;
    size_t extra_len;
    struct MHD_UpgradeResponseHandle *urh;
} Upgrade;

static void *upgrade_thread(void *arg)
{
    Upgrade *u = arg;
    u->fn(u->ctx, u->fd, u->extra, u->extra_len);
    MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
    if (u->free_ctx)
        u->free_ctx(u->ctx);
    free(u->extra);
    free(u);
    pthread_mutex_lock(&upgrade_lock);
    upgrades_active--;
    pthread_cond_broadcast(&upgrade_cond);
    pthread_mutex_unlock(&upgrade_lock);
    return NULL;
}

static void upgrade_cb(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    Upgrade *u = cls;
    u->fd = sock;
    u->urh = urh;
    u->extra = extra_in_size ? xmemdup(extra_in, extra_in_size) : NULL;
    u->extra_len = extra_in_size;
    pthread_mutex_lock(&upgrade_lock);
    upgrades_active++;
    pthread_mutex_unlock(&upgrade_lock);
    /* Not on this thread: MHD forwards TLS for the socket once we return. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    if (pthread_create(&th, &attr, upgrade_thread, u) != 0) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        if (u->free_ctx)
            u->free_ctx(u->ctx);
        free(u->extra);
        free(u);
        pthread_mutex_lock(&upgrade_lock);
        upgrades_active--;
        pthread_mutex_unlock(&upgrade_lock);
    }
    pthread_attr_destroy(&attr);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, HttpReply *reply)
{
    struct MHD_Response *resp;
    HttpReply *owned = NULL;
    if (reply->upgrade) {
        Upgrade *u = xnew0(Upgrade, 1);
        u->fn = reply->upgrade;
        u->ctx = reply->upgrade_ctx;
        u->free_ctx = reply->upgrade_free;
        reply->upgrade = NULL;
        reply->upgrade_ctx = NULL;
        reply->upgrade_free = NULL;
        resp = MHD_create_response_for_upgrade(upgrade_cb, u);
        if (!resp) {
            if (u->free_ctx)
                u->free_ctx(u->ctx);
            free(u);
            return MHD_NO;
        }
    } else if (reply->stream) {
        owned = xmemdup(reply, sizeof(*reply));
        /* The strbufs now belong to owned. */
        strbuf_init(&reply->body, 0);
        strbuf_init(&reply->headers, 0);
        reply->stream_ctx = NULL;
        reply->stream_free = NULL;
        resp = MHD_create_response_from_callback(
            owned->stream_size < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)owned->stream_size, 256 * 1024,
            stream_cb, owned, stream_free_cb);
    } else {
        size_t len;
        char *body = strbuf_detach(&reply->body, &len);
        resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    }
    if (!resp) {
        if (owned)
            stream_free_cb(owned);
        return MHD_NO;
    }
    HttpReply *hdr = owned ? owned : reply;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            hdr->content_type ? hdr->content_type : "text/plain");
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    char *line = hdr->headers.buf;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            const char *val = colon + 1;
            while (*val == ' ')
                val++;
            MHD_add_response_header(resp, line, val);
        }
        line = nl ? nl + 1 : NULL;
    }
    enum MHD_Result rc = MHD_queue_response(conn, hdr->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    HttpServer *s = cls;
    HttpRequest *req = *con_cls;

    if (!req) {
        req = xnew0(HttpRequest, 1);
        req->method = method;
        req->url = url;
        req->conn = conn;
        req->server = s;
        strbuf_init(&req->body, 0);
        http_reply_init(&req->early);
        fill_peer(s, req, conn);
        req->route = find_route(s, method, url);
        *con_cls = req;
        if (req->route && req->route->kind == HTTP_ROUTE_STREAM && req->route->on_data &&
            !req->route->on_data(req, NULL, 0))
            req->refused = true;
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        req->received += n;
        if (!req->route || req->refused)
            return MHD_YES;
        if (req->route->kind == HTTP_ROUTE_BUFFERED) {
            if (req->body_too_large || req->body.len + n > req->route->max_body)
                req->body_too_large = true;
            else
                strbuf_add(&req->body, upload_data, n);
        } else if (!req->route->on_data(req, upload_data, n)) {
            req->refused = true;
        }
        return MHD_YES;
    }

    HttpReply reply;
    http_reply_init(&reply);
    if (req->refused) {
        http_reply_release(&reply);
        reply = req->early;
        http_reply_init(&req->early);
    } else if (!req->route) {
        if (strcmp(method, "OPTIONS") == 0) {
            reply.status = 200;
            http_reply_add_header(&reply, "Access-Control-Allow-Methods", "POST, GET, OPTIONS");
            http_reply_add_header(&reply, "Access-Control-Allow-Headers",
                                  "Content-Type, Authorization");
        } else {
            http_reply_error_page(&reply, 404, "No such resource.");
        }
    } else if (req->body_too_large) {
        http_reply_error_page(&reply, 413, "The request body exceeds the size limit.");
    } else {
        req->route->handle(req, &reply);
    }
    enum MHD_Result rc = send_reply(conn, &reply);
    http_reply_release(&reply);
    return rc;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    HttpRequest *req = *con_cls;
    if (!req)
        return;
    if (req->route && req->route->cleanup)
        req->route->cleanup(req);
    strbuf_release(&req->body);
    http_reply_release(&req->early);
    free(req);
    *con_cls = NULL;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_debug("http: %s", buf);
}

static int listen_tcp(const char *spec, unsigned *port_out, char **err)
{
    _cleanup_free_ char *host = NULL;
    const char *port;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end || end[1] != ':') {
            *err = xasprintf("bad listen address '%s' (use [ADDR]:PORT)", spec);
            return -1;
        }
        host = xstrndup(spec + 1, (size_t)(end - spec - 1));
        port = end + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon) {
            *err = xasprintf("bad listen address '%s' (use ADDR:PORT)", spec);
            return -1;
        }
        host = xstrndup(spec, (size_t)(colon - spec));
        port = colon + 1;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(*host && strcmp(host, "*") != 0 ? host : NULL, port, &hints, &ai);
    if (rc != 0) {
        *err = xasprintf("cannot resolve listen address '%s': %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = xasprintf("socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        *err = xasprintf("cannot listen on %s: %s", spec, strerror(errno));
        close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static int listen_unix(const char *path, char **err)
{
    struct sockaddr_un sa = {0};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        *err = xasprintf("unix socket path too long: %s", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = xasprintf("socket: %s", strerror(errno));
        return -1;
    }
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
        *err = xasprintf("cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* Anyone may connect; only root peers are trusted without a password. */
    chmod(path, 0666);
    return fd;
}

HttpServer *http_server_start(const char *listen, const HttpServerConfig *cfg,
                              const char *tls_key_pem, const char *tls_cert_pem, char **err)
{
    HttpServer *s = xnew0(HttpServer, 1);
    s->cfg = *cfg;
    bool tls = false;
    if (strncmp(listen, "unix:", 5) == 0) {
        s->is_unix = true;
        s->unix_path = xstrdup(listen + 5);
        s->fd = listen_unix(s->unix_path, err);
    } else {
        if (strncmp(listen, "https://", 8) == 0) {
            tls = true;
            listen += 8;
        } else if (strncmp(listen, "http://", 7) == 0) {
            listen += 7;
        }
        s->fd = listen_tcp(listen, &s->port, err);
    }
    if (s->fd < 0) {
        free(s->unix_path);
        free(s);
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
    if (tls) {
        if (!tls_key_pem || !tls_cert_pem) {
            *err = xstrdup("TLS listener requested but no certificate is available");
            close(s->fd);
            free(s);
            return NULL;
        }
        flags |= MHD_USE_TLS;
        s->key = xstrdup(tls_key_pem);
        s->cert = xstrdup(tls_cert_pem);
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_LISTEN_SOCKET, s->fd, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg->connection_limit ? cfg->connection_limit : 4096, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout ? cfg->connection_timeout : 300,
         NULL},
        {MHD_OPTION_THREAD_STACK_SIZE,
         (intptr_t)(cfg->thread_stack_size ? cfg->thread_stack_size : 512 * 1024), NULL},
        /* Bigger reads for uploads (import handlers): 32 KiB by default. */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 512 * 1024, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed_cb, NULL},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL},
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, s->key},
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->cert},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, access_handler, s, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
    if (!s->d) {
        *err = xasprintf("cannot start the HTTP server on %s", listen);
        close(s->fd);
        free(s->key);
        free(s->cert);
        free(s->unix_path);
        free(s);
        return NULL;
    }
    return s;
}

void http_server_stop(HttpServer *s)
{
    if (!s)
        return;
    /* Upgraded connections end first (their threads watch the flag). */
    pthread_mutex_lock(&upgrade_lock);
    upgrades_stopping = true;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (upgrades_active > 0 &&
           pthread_cond_timedwait(&upgrade_cond, &upgrade_lock, &ts) == 0) {
    }
    pthread_mutex_unlock(&upgrade_lock);
    MHD_stop_daemon(s->d);
    close(s->fd);
    if (s->unix_path)
        unlink(s->unix_path);
    free(s->unix_path);
    free(s->key);
    free(s->cert);
    free(s);
}

unsigned http_server_port(HttpServer *s)
{
    return s->port;
}
