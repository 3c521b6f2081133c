/*
 * QMP transport: one connection to a QEMU monitor socket. Reads the greeting,
 * negotiates capabilities, then a reader thread owns the receive side: it
 * splits the stream into lines (bounded length), hands events to a callback
 * and matches replies to waiting commands by id, so events arriving before a
 * reply and replies arriving out of order are both fine. Commands may be sent
 * from any thread and always give up after their timeout.
 *
 * This file knows the framing and the envelope ({"execute"}, {"return"},
 * {"error"}, {"event"}), never the meaning of a command: that is qmp_cmd.c.
 */
#ifndef HX_VMM_QMP_H
#define HX_VMM_QMP_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct json_object;

/* Longest line accepted from a monitor; longer ones are dropped and logged. */
#define QMP_MAX_LINE (16u * 1024 * 1024)
/* Deepest JSON nesting accepted (backing chains nest). */
#define QMP_MAX_DEPTH 256

typedef struct QmpMonitor QmpMonitor;

typedef struct QmpCallbacks {
    /* An event; data may be NULL. Runs on the reader thread: keep it short. */
    void (*event)(void *opaque, const char *name, struct json_object *data, int64_t time_us);
    /* The reader stopped because the peer closed (err 0) or failed (-errno); not called
     * after qmp_close(). Runs on the reader thread. */
    void (*closed)(void *opaque, int err);
    void *opaque;
} QmpCallbacks;

/*
 * Takes ownership of the connected socket fd (closed on failure too), waits up
 * to timeout_ms for the greeting, starts the reader and runs qmp_capabilities.
 * -EPROTO if the peer does not speak QMP, -ECONNRESET if it closed, -ETIMEDOUT.
 */
int qmp_open(int fd, const QmpCallbacks *cb, unsigned timeout_ms, QmpMonitor **out, char **err);
/* Connects to a unix socket path, then as qmp_open(). */
int qmp_connect(const char *path, const QmpCallbacks *cb, unsigned timeout_ms, QmpMonitor **out,
                char **err);
/* Shuts the connection down without freeing: commands in flight on other threads fail at
 * once with -ECONNRESET, the closed callback is not called. */
void qmp_disconnect(QmpMonitor *mon);
/* Disconnects, waits for the reader to stop, closes and frees. NULL ok. No other thread may
 * still be inside a call on mon. */
void qmp_close(QmpMonitor *mon);

/*
 * Runs `command` with `args` (borrowed; may be NULL) and waits up to
 * timeout_ms for its reply. On success *ret (if not NULL) receives a new
 * reference to the "return" member. Errors: -ETIMEDOUT, -ECONNRESET (monitor
 * gone), -EPROTO (malformed reply), or for an {"error"} reply a code from its
 * class: DeviceNotFound -ENODEV, CommandNotFound -ENOSYS, others -EIO; the
 * message then holds QEMU's description.
 */
int qmp_execute(QmpMonitor *mon, const char *command, struct json_object *args,
                unsigned timeout_ms, struct json_object **ret, char **err);
/* Same, passing file descriptor `fd` along with the command (SCM_RIGHTS), as
 * "getfd" and "add-fd" expect. */
int qmp_execute_fd(QmpMonitor *mon, const char *command, struct json_object *args, int fd,
                   unsigned timeout_ms, struct json_object **ret, char **err);

/* False once the peer closed or the reader failed. */
bool qmp_is_connected(QmpMonitor *mon);
/* QEMU's version from the greeting as major*10000 + minor*100 + micro (0 if unknown). */
unsigned qmp_version(QmpMonitor *mon);

#endif
