/*
 * A XenAPI client over JSON-RPC (libcurl), used by xe and the tests: to the
 * local unix socket (where root is trusted) or to HTTP/HTTPS. One
 * connection is kept alive across calls. Results come back as XsValue;
 * failures as XsError with the server's code and parameters.
 */
#ifndef HX_CLIENT_CLIENT_H
#define HX_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "model/value.h"
#include "util/error.h"

typedef struct XcConn XcConn;

typedef struct XcTarget {
    const char *unix_path; /* if set, used instead of host/port */
    const char *host;
    int port;       /* 0: 443 with TLS, 80 without */
    bool tls;
    bool verify;    /* verify the server certificate */
} XcTarget;

XcConn *xc_new(const XcTarget *t);
void xc_free(XcConn *c);

/* Logs in; the session is then passed automatically by xc_call_session. */
bool xc_login(XcConn *c, const char *user, const char *password, const char *originator,
              XsError **errp);
void xc_logout(XcConn *c);
const char *xc_session(XcConn *c);

/* Calls method with params (an XV_ARRAY, consumed). Returns the result
 * (never NULL on success: void gives XV_NULL). */
XsValue *xc_call(XcConn *c, const char *method, XsValue *params, XsError **errp);
/* Same, with the session prepended to params. */
XsValue *xc_call_session(XcConn *c, const char *method, XsValue *params, XsError **errp);

/* Convenience: call with the session and up to three string arguments
 * (NULL-terminated). */
XsValue *xc_callv(XcConn *c, XsError **errp, const char *method, ...);

/* A description of where the connection goes, for error messages. */
const char *xc_where(XcConn *c);
/* The server's unix socket when the connection uses one, else NULL. */
const char *xc_unix_path(XcConn *c);

#endif
