/*
 * The command handlers of hyperxe-agent, one group per cmd_*.c file, plus
 * the hooks the main loop calls for commands that keep state (exec children,
 * frozen filesystems, a pending shutdown). The table that names them is in
 * qga_dispatch.c.
 */
#ifndef HX_AGENT_CMD_H
#define HX_AGENT_CMD_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "agent/agent.h"
#include "agent/qga_dispatch.h"

#define CMD_HANDLER(name)                                                                          \
    bool name(Agent *ag, struct json_object *args, struct json_object **ret, QgaError *err)

/* cmd_system.c: identity, time, CPUs, users, memory */
CMD_HANDLER(cmd_system_sync);
CMD_HANDLER(cmd_system_ping);
CMD_HANDLER(cmd_system_info);
CMD_HANDLER(cmd_system_osinfo);
CMD_HANDLER(cmd_system_host_name);
CMD_HANDLER(cmd_system_time);
CMD_HANDLER(cmd_system_vcpus);
CMD_HANDLER(cmd_system_users);
CMD_HANDLER(cmd_system_memory);

/* cmd_net.c */
CMD_HANDLER(cmd_net_interfaces);

/* cmd_fs.c: filesystem information and freezing */
CMD_HANDLER(cmd_fs_info);
CMD_HANDLER(cmd_fs_freeze);
CMD_HANDLER(cmd_fs_freeze_list);
CMD_HANDLER(cmd_fs_thaw);
CMD_HANDLER(cmd_fs_status);
void cmd_fs_init(Agent *ag);
void cmd_fs_release(Agent *ag);
bool cmd_fs_frozen(const Agent *ag);
/* Milliseconds until the automatic thaw is due, or -1 when nothing is frozen. */
int cmd_fs_timeout_ms(const Agent *ag);
/* Thaws everything if the safety timeout has passed. */
void cmd_fs_tick(Agent *ag);
/* Thaws everything now (agent exit); returns how many were thawed. */
int cmd_fs_thaw_all(Agent *ag);

/* cmd_exec.c: guest-exec children */
CMD_HANDLER(cmd_exec_start);
CMD_HANDLER(cmd_exec_status);
void cmd_exec_init(Agent *ag);
void cmd_exec_release(Agent *ag);
/* Adds the pipes to watch to fds[0..max); returns how many were added. */
size_t cmd_exec_pollfds(Agent *ag, struct pollfd *fds, size_t max);
/* Handles the revents of the entries cmd_exec_pollfds() added. */
void cmd_exec_handle(Agent *ag, const struct pollfd *fds, size_t n);
/* Reaps exited children (called on SIGCHLD). */
void cmd_exec_reap(Agent *ag);

/* cmd_power.c */
CMD_HANDLER(cmd_power_shutdown);
/* Carries out ag->pending_power, if any (after the reply went out). */
void cmd_power_act(Agent *ag);

/* cmd_passwd.c */
CMD_HANDLER(cmd_passwd_set);

#endif
