/*
 * QEMU processes: spawning one so that it outlives the daemon, finding it
 * again (pidfile + /proc/PID/cmdline), waiting for it to go, killing it and
 * reading how it ended. Knows nothing of QMP.
 *
 * Spawn model: the daemon forks a small reaper which starts its own session
 * and forks QEMU; the reaper waits for QEMU and writes "exited N" or "signal N"
 * to <vm dir>/exit-status, so the end of a QEMU that is not our child is still
 * known. QEMU's stdin is /dev/null and stdout/stderr go to <vm dir>/qemu.log;
 * nothing links it to the daemon, which may restart or die at any time.
 */
#ifndef HX_VMM_QEMU_PROCESS_H
#define HX_VMM_QEMU_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * Starts argv[0] with argv. If keep_fd >= 0 it is given to QEMU as fd 3 (and
 * argv must say "fd=3"). Returns 0 with *pid set once exec succeeded, or
 * -errno with *err naming the cause (e.g. "qemu-system-x86_64 not found").
 * *reaper_pid (optional) is the reaper, a child of the caller: collect it with
 * qemu_process_reap() once QEMU is gone.
 */
int qemu_process_spawn(char *const argv[], const char *vm_dir, int keep_fd, pid_t *pid,
                       pid_t *reaper_pid, char **err);
/* Collects the reaper once it has ended (waits at most half a second for it). */
void qemu_process_reap(pid_t reaper_pid);

/* The pid in <vm dir>/qemu.pid, or -errno (-ENOENT, -EINVAL). */
int qemu_process_read_pidfile(const char *vm_dir, pid_t *pid);
/* True if pid is alive and /proc/pid/cmdline is a QEMU (argv[0], or argv[1] for a wrapper run
 * by an interpreter, names qemu-system*) started with "-uuid uuid". */
bool qemu_process_matches(pid_t pid, const char *uuid);
bool qemu_process_alive(pid_t pid);
/* Waits until pid is gone: 0, or -ETIMEDOUT. Uses a pidfd where possible. */
int qemu_process_wait_gone(pid_t pid, unsigned timeout_ms);
/* Signals pid if it is still the QEMU for uuid. */
int qemu_process_kill(pid_t pid, const char *uuid, int sig);
/* Reads <vm dir>/exit-status: 0 with *code (or -1) and *sig (or 0); -ENOENT if absent.
 * Waits up to wait_ms for the reaper to write it. */
int qemu_process_exit_status(const char *vm_dir, unsigned wait_ms, int *code, int *sig);
/* The last lines of <vm dir>/qemu.log without their timestamps (malloc'd, at most max
 * bytes), or NULL. */
char *qemu_process_log_tail(const char *vm_dir, size_t max);
/* Removes sockets and the pidfile from vm_dir (keeps logs and config). */
void qemu_process_cleanup(const char *vm_dir);

#endif
