/*
 * The state of one hyperxe-agent process, shared by the command handlers and
 * the main loop: configuration from the command line plus the little state
 * commands keep between requests (running guest-exec children, frozen
 * filesystems, a pending shutdown). Holds no I/O of its own.
 */
#ifndef HX_AGENT_AGENT_H
#define HX_AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ExecTable ExecTable;     /* cmd_exec.c */
typedef struct FreezeState FreezeState; /* cmd_fs.c */

typedef enum {
    AGENT_POWER_NONE,
    AGENT_POWER_POWERDOWN,
    AGENT_POWER_REBOOT,
    AGENT_POWER_HALT,
    AGENT_POWER__MAX,
} AgentPower;

typedef struct Agent {
    /* Configuration (never changed by commands). */
    bool stdio;              /* --stdio: talking to a test, not to a host */
    const char *sysconfdir;  /* where os-release, passwd and shadow live ("/etc") */
    bool sysconfdir_given;   /* --sysconfdir was passed */
    const char *power_cmd;   /* --power-cmd: run "CMD MODE" instead of shutting down */
    unsigned freeze_timeout; /* seconds before frozen filesystems thaw by themselves */
    char **disabled;         /* NULL-terminated command names refused (--disable) */

    /* State kept between requests. */
    ExecTable *exec;
    FreezeState *freeze;
    AgentPower pending_power; /* acted on once the reply (if any) has been sent */
} Agent;

#endif
