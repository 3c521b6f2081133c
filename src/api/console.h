/*
 * HTTP routes of the VM consoles (WebSocket /console) and core dumps
 * (/vm_dump_core); see console.c.
 */
#ifndef HX_API_CONSOLE_H
#define HX_API_CONSOLE_H

#include "api/http.h"

extern const HttpRoute console_routes[];
extern const size_t console_nroutes;

#endif
