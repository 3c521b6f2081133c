/*
 * hyperxed's own pieces: configuration, first-start initialisation of the
 * pool, host, storage repositories and networks, the host certificate, and
 * periodic housekeeping.
 */
#ifndef HX_DAEMON_DAEMON_H
#define HX_DAEMON_DAEMON_H

#include <stdbool.h>

#include "ops/ops.h"

/* Loads (creating on first use) the host certificate as PEM strings. */
bool daemon_tls_load(const char *path, const char *hostname, const char *address, char **key_pem,
                     char **cert_pem, char **err);

/*
 * Creates the pool, this host, "Local storage", the tools and DVD SRs and the
 * default network on first start; on every start refreshes what the host
 * reports (hostname, CPUs, memory, versions, accelerator). Fills env's
 * host_ref and pool_ref.
 */
bool daemon_init_objects(HxEnv *env, XsError **errp);

/* Updates host metrics (free memory) and the like; called periodically. */
void daemon_refresh_metrics(HxEnv *env);

/* The host's management address (the default route's interface), or "". */
char *daemon_management_address(void);

#endif
