/*
 * The HTTP(S) front door: libmicrohttpd servers on TCP, TLS and a unix
 * socket, one thread per connection (so a slow or blocking request never
 * holds up another), and a route table. Handlers either take a bounded,
 * fully-buffered body (RPC) or stream (import/export): the upload arrives in
 * chunks through on_data, and the reply may be produced by a callback.
 *
 * What is known about the peer (TCP address, or unix-socket credentials) is
 * passed to handlers so that local root can be trusted on the unix socket.
 * Nothing here knows XenAPI.
 */
#ifndef HX_API_HTTP_H
#define HX_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/strbuf.h"

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

/* A reply produced by a callback: returns bytes written into buf (up to max),
 * 0 at the end, or -1 on error (the connection is closed). */
typedef ssize_t (*HttpStreamFn)(void *ctx, uint64_t pos, char *buf, size_t max);
typedef void (*HttpStreamFree)(void *ctx);

/*
 * The connection after a protocol switch (101, e.g. a WebSocket): called on a
 * thread of its own once the reply's headers are sent, with the upgraded
 * connection fd (never close it) and the bytes the client already sent
 * after its request. The connection is closed when it returns; it must
 * return soon after http_upgrade_should_stop() becomes true.
 */
typedef void (*HttpUpgradeFn)(void *ctx, int fd, const char *extra, size_t extra_len);

typedef struct HttpReply {
    unsigned status;
    const char *content_type;
    StrBuf body;
    /* Streaming reply instead of body (body must then be empty). */
    HttpStreamFn stream;
    HttpStreamFree stream_free;
    void *stream_ctx;
    int64_t stream_size; /* -1: unknown (chunked) */
    /* Extra headers, "Name: value" lines joined by '\n'. */
    StrBuf headers;
    /* Protocol switch instead of a body (status 101); upgrade_free frees
     * upgrade_ctx after upgrade() returned, or if the switch never happens. */
    HttpUpgradeFn upgrade;
    void *upgrade_ctx;
    HttpStreamFree upgrade_free;
} HttpReply;

typedef enum {
    HTTP_ROUTE_BUFFERED, /* body collected (up to max_body) then handle() */
    HTTP_ROUTE_STREAM,   /* body chunks through on_data() then handle() */
} HttpRouteKind;

typedef struct HttpRoute {
    const char *method; /* "POST", "GET", "PUT", or NULL for any */
    const char *path;   /* exact path, without the query */
    HttpRouteKind kind;
    size_t max_body;
    /* Streaming routes: called once with the headers (data NULL, len 0),
     * then per chunk; return false to refuse (the reply in req is sent). */
    bool (*on_data)(HttpRequest *req, const char *data, size_t len);
    void (*handle)(HttpRequest *req, HttpReply *reply);
    /* Frees req's handler state (also on aborted connections). */
    void (*cleanup)(HttpRequest *req);
} HttpRoute;

struct HttpRequest {
    const char *method;
    const char *url; /* path only */
    const HttpRoute *route;
    StrBuf body;
    bool body_too_large;
    uint64_t received;
    void *state; /* the handler's */
    void *conn;  /* struct MHD_Connection */
    HttpServer *server;
    bool is_unix;      /* arrived on the unix socket */
    bool peer_is_root; /* unix socket peer with uid 0 */
    char peer[64];     /* client address or "unix:<uid>" */
    HttpReply early;   /* reply when on_data refuses */
    bool refused;
};

/* Query argument, header or cookie; NULL if absent. Valid during the request. */
const char *http_query(HttpRequest *req, const char *name);
const char *http_header(HttpRequest *req, const char *name);
const char *http_cookie(HttpRequest *req, const char *name);
/* HTTP Basic credentials, if the request carries them (caller frees both). */
bool http_basic_auth(HttpRequest *req, char **user, char **password);

/* The config's user pointer of the server the request arrived on. */
void *http_user(HttpRequest *req);

void http_reply_init(HttpReply *r);
void http_reply_release(HttpReply *r);
void http_reply_text(HttpReply *r, unsigned status, const char *content_type, const char *text);
void http_reply_add_header(HttpReply *r, const char *name, const char *value);
/* An HTML error page with status (e.g. 500 for malformed RPC). */
void http_reply_error_page(HttpReply *r, unsigned status, const char *message);

typedef struct HttpServerConfig {
    const HttpRoute *routes;
    size_t nroutes;
    unsigned connection_limit;
    unsigned connection_timeout; /* seconds of client inactivity */
    size_t thread_stack_size;
    void *user; /* handed to handlers: http_user() */
} HttpServerConfig;

/*
 * Starts a server on "ADDR:PORT" (plain), "https://ADDR:PORT" (TLS with the
 * given PEM key and certificate) or "unix:/path" (the socket file is
 * replaced; mode 0600 is up to the caller's umask... we set 0666 and rely on
 * peer credentials). Returns NULL with a message in *err.
 */
HttpServer *http_server_start(const char *listen, const HttpServerConfig *cfg,
                              const char *tls_key_pem, const char *tls_cert_pem, char **err);
void http_server_stop(HttpServer *s);
/* True once the servers are stopping: upgraded connections must end. */
bool http_upgrade_should_stop(void);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(HttpServer *s);

#endif
