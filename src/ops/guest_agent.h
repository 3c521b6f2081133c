/*
 * The guest agent of each running VM, as the rest of the ops layer sees it:
 * one session per running QEMU, the only user of the VM's agent channel
 * (<run>/<uuid>/qga.sock) inside the daemon. QEMU serves that channel to one
 * client at a time, so the session connects only while it talks and lets
 * go in between: a test or an administrator may use the channel too.
 *
 * The session polls the agent (every second from the start until it
 * answers; then every few seconds, faster until the guest has an IPv4
 * address, and at once on events) and keeps the VM's VM_guest_metrics
 * record: created when the agent first answers, live while it answers,
 * kept (live=false) when the VM stops. Other users (clean shutdown and
 * reboot, quiesced snapshots) borrow the channel through guest_agent_acquire,
 * which waits for a running poll to end.
 *
 * It never changes the VM: no power operation, no claim of the VM; a guest
 * that sends garbage, floods or stays silent costs a bounded time per poll
 * (the client's timeouts) and is recorded as not live.
 */
#ifndef HX_OPS_GUEST_AGENT_H
#define HX_OPS_GUEST_AGENT_H

#include <stdbool.h>

#include "ops/ops.h"
#include "vmm/qga.h"

struct VmRt;

/* At daemon start, before VMs are adopted: guest metrics of VMs that do not
 * run any more are marked not live. */
void guest_agent_startup(HxEnv *env);

/* Starts the session of rt's current QEMU (rt->vmm); the owner of rt calls it
 * once the QEMU runs or was adopted. Does nothing on the simulated VMM. */
void guest_agent_start(struct VmRt *rt);
/*
 * Ends the session before its QEMU goes (waits for a running poll). With
 * record, the VM's guest metrics are marked not live (the VM stops); the
 * daemon's own stop leaves them as they are (the VM keeps running).
 */
void guest_agent_stop(struct VmRt *rt, bool record);
/* Asks for a poll now (the guest rebooted, a NIC came or went). */
void guest_agent_kick(struct VmRt *rt);

/*
 * Borrows the agent channel: waits up to wait_ms for the session's poll,
 * then connects and synchronises (sync_ms). Returns the client, or NULL
 * with a message in *err (no session, no agent holding its end of the
 * channel, or no answer). Give it back with guest_agent_release, which
 * closes it; ok=false says the agent misbehaved (the next poll checks).
 */
QgaClient *guest_agent_acquire(struct VmRt *rt, unsigned wait_ms, unsigned sync_ms, char **err);
void guest_agent_release(struct VmRt *rt, QgaClient *c, bool ok);

/* True if the session saw the agent answer at its last poll. */
bool guest_agent_live(struct VmRt *rt);

/* Asks the agent to power off ("powerdown"), reboot or halt the guest. 0, or
 * -errno with a message. */
int guest_agent_shutdown(struct VmRt *rt, const char *mode, char **err);

#endif
