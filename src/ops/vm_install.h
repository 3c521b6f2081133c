/*
 * Installation helpers shared with the daemon's start: the host's BIOS
 * strings (read from SMBIOS) and the built-in templates (templates.c).
 */
#ifndef HX_OPS_VM_INSTALL_H
#define HX_OPS_VM_INSTALL_H

#include "ops/ops.h"

/* host.bios_strings from /sys/class/dmi/id (this host's own values if absent). */
void ops_host_refresh_bios_strings(HxEnv *env);
/* Creates the built-in templates that are missing (fixed uuids). */
bool ops_templates_install(HxEnv *env, XsError **errp);

#endif
