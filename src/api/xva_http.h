/*
 * HTTP routes for VM export and import: GET /export, GET /export_metadata,
 * PUT /import, PUT /import_metadata, PUT /import_image (xva_http.c).
 */
#ifndef HX_API_XVA_HTTP_H
#define HX_API_XVA_HTTP_H

#include <stddef.h>

#include "api/http.h"

extern const HttpRoute xva_http_routes[];
extern const size_t xva_http_nroutes;

#endif
