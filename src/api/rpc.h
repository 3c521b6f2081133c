/*
 * XenAPI over HTTP: XML-RPC on / and /RPC2, JSON-RPC 1.0 and 2.0 on
 * /jsonrpc, with xapi's exact envelopes. Malformed requests get HTTP 500
 * with an HTML body; API errors are HTTP 200 with a failure envelope.
 */
#ifndef HX_API_RPC_H
#define HX_API_RPC_H

#include "api/api.h"
#include "api/http.h"

#define RPC_MAX_BODY (1024 * 1024)

/* The RPC routes; the server's user pointer must be the Api. */
extern const HttpRoute rpc_routes[];
extern const size_t rpc_nroutes;

/* Encodes a failure envelope (used by tests and other handlers). */
void rpc_xmlrpc_failure(StrBuf *out, const XsError *err);

#endif
