/*
 * Every HTTP route hyperxed serves, gathered from the modules that define
 * them (XenAPI RPC, import and export handlers, the console).
 */
#ifndef HX_API_ROUTES_H
#define HX_API_ROUTES_H

#include "api/http.h"

/* A table built once; valid for the life of the process. */
const HttpRoute *api_routes(size_t *n);

#endif
