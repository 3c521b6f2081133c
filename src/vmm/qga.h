/*
 * Guest-agent client: speaks the QEMU guest agent protocol (QGA) over the
 * VM's virtio-serial channel, <vm dir>/qga.sock (see vmm_path()), to
 * qemu-guest-agent or hyperxe-agent inside the guest.
 *
 * The stream is resynchronised with guest-sync-delimited (the agent answers
 * after a 0xFF sentinel, and everything before it is stale) on connect and
 * after any timeout or garbage. Every call is bounded by its timeout, lines
 * by a maximum length; an agent that sends garbage, floods, or stays silent
 * gets an error, never a hang or a crash. A client is for one thread at a
 * time; QEMU accepts one client per socket.
 */
#ifndef HX_VMM_QGA_H
#define HX_VMM_QGA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define QGA_DEFAULT_MAX_LINE (1024u * 1024)

typedef struct QgaClient QgaClient;

/* Connects to the agent socket (does not talk to the agent yet). */
int qga_connect(const char *socket_path, QgaClient **out, char **err);
/* Uses an already connected stream socket (taken over; closed on failure too). */
QgaClient *qga_open_fd(int fd);
void qga_close(QgaClient *c);
/* Longest reply line accepted (default QGA_DEFAULT_MAX_LINE). */
void qga_set_max_line(QgaClient *c, size_t max);

/* guest-sync-delimited with a fresh id: after it, the next reply belongs to the next command.
 * Done automatically before the first command and after any failure. */
int qga_sync(QgaClient *c, unsigned timeout_ms, char **err);

/*
 * Runs an agent command (args borrowed, may be NULL) and waits up to
 * timeout_ms in all (including a resync when needed). *ret gets a new
 * reference to "return". Errors: -ETIMEDOUT (agent silent), -EPROTO (garbage),
 * -EMSGSIZE (reply too long), -ECONNRESET, -EIO (the agent's "error", whose
 * description is in the message).
 */
int qga_execute(QgaClient *c, const char *command, struct json_object *args,
                unsigned timeout_ms, struct json_object **ret, char **err);
/* For commands that do not answer on success (guest-shutdown, guest-suspend-*): sends, then
 * waits grace_ms for an error reply; silence is success. */
int qga_execute_noreply(QgaClient *c, const char *command, struct json_object *args,
                        unsigned timeout_ms, unsigned grace_ms, char **err);

/* ---- the usual commands (replies are the agent's JSON, new references) ---- */
int qga_ping(QgaClient *c, unsigned timeout_ms, char **err);
int qga_info(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err);
int qga_get_osinfo(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err);
int qga_get_host_name(QgaClient *c, unsigned timeout_ms, char **host_name, char **err);
int qga_network_get_interfaces(QgaClient *c, unsigned timeout_ms, struct json_object **ret,
                               char **err);
int qga_get_fsinfo(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err);
int qga_get_users(QgaClient *c, unsigned timeout_ms, struct json_object **ret, char **err);
/* mode: "powerdown", "reboot" or "halt". */
int qga_shutdown(QgaClient *c, const char *mode, unsigned timeout_ms, char **err);
/* Returns the number of file systems frozen / thawed. */
int qga_fsfreeze_freeze(QgaClient *c, unsigned timeout_ms, char **err);
int qga_fsfreeze_thaw(QgaClient *c, unsigned timeout_ms, char **err);
/* *status: "thawed" or "frozen" (malloc'd). */
int qga_fsfreeze_status(QgaClient *c, unsigned timeout_ms, char **status, char **err);
int qga_set_user_password(QgaClient *c, const char *user, const char *password, bool crypted,
                          unsigned timeout_ms, char **err);

typedef struct QgaExecStatus {
    bool exited;
    int exit_code; /* -1 if not exited normally */
    int signal;    /* 0 if none */
    char *out;     /* decoded stdout (NUL-terminated, may hold NULs: see out_len) */
    size_t out_len;
    char *err;
    size_t err_len;
    bool truncated;
} QgaExecStatus;

/* Starts argv[0] with argv (NULL-terminated) in the guest; returns its pid (>0). */
int qga_exec(QgaClient *c, char *const argv[], bool capture_output, unsigned timeout_ms,
             int64_t *pid, char **err);
int qga_exec_status(QgaClient *c, int64_t pid, unsigned timeout_ms, QgaExecStatus *st,
                    char **err);
void qga_exec_status_release(QgaExecStatus *st);

#endif
