/*
 * The route table: the concatenation of each module's routes. A module
 * that serves HTTP adds its table here.
 */
#include <pthread.h>
#include <string.h>

#include "api/console.h"
#include "api/routes.h"
#include "api/rpc.h"
#include "api/vdi_http.h"
#include "api/xva_http.h"
#include "util/xalloc.h"
#include "util/banned.h"

static const struct {
    const HttpRoute *routes;
    const size_t *n;
} modules[] = {
    {rpc_routes, &rpc_nroutes},
    {console_routes, &console_nroutes},
    {vdi_http_routes, &vdi_http_nroutes},
    {xva_http_routes, &xva_http_nroutes},
};

static HttpRoute *table;
static size_t ntable;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    for (size_t m = 0; m < ARRAY_SIZE(modules); m++)
        ntable += *modules[m].n;
    table = xcalloc(ntable ? ntable : 1, sizeof(HttpRoute));
    size_t k = 0;
    for (size_t m = 0; m < ARRAY_SIZE(modules); m++)
        for (size_t i = 0; i < *modules[m].n; i++)
            table[k++] = modules[m].routes[i];
}

const HttpRoute *api_routes(size_t *n)
{
    pthread_once(&once, build);
    *n = ntable;
    return table;
}
