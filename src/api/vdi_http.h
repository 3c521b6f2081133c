/*
 * HTTP routes for VDI content: PUT /import_raw_vdi and GET /export_raw_vdi
 * (vdi_http.c).
 */
#ifndef HX_API_VDI_HTTP_H
#define HX_API_VDI_HTTP_H

#include <stddef.h>

#include "api/http.h"

extern const HttpRoute vdi_http_routes[];
extern const size_t vdi_http_nroutes;

#endif
