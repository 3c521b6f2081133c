/*
 * Small helpers shared by the files of src/vmm: error messages, monotonic
 * time, bounded file reads, atomic file writes, unix sockets and parsing one
 * JSON text from a line. Internal to this layer; nothing here knows QEMU.
 */
#ifndef HX_VMM_VMM_UTIL_H
#define HX_VMM_VMM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/macros.h"

struct json_object;

/* Stores a formatted message in *err (if err is not NULL) and returns code
 * (a negative errno), so that `return vmm_error(err, -ENOENT, "...")` reads well. */
int vmm_error(char **err, int code, const char *fmt, ...) HX_PRINTF(3, 4);
/* Prefixes an existing message: *err = "prefix: *err". */
void vmm_error_prefix(char **err, const char *fmt, ...) HX_PRINTF(2, 3);

/* CLOCK_MONOTONIC in milliseconds / microseconds. */
int64_t vmm_now_ms(void);
/* Wall clock in microseconds since the epoch. */
int64_t vmm_wall_us(void);
/* Sleeps ms milliseconds (restarting on EINTR). */
void vmm_sleep_ms(unsigned ms);

/* Reads at most max bytes of path (NUL-terminated); -errno on failure. If the file is
 * longer and tail is true, returns its last max bytes, else its first max bytes. */
ssize_t vmm_read_file(const char *path, size_t max, bool tail, char **out);
/* Writes data to path through a temporary file and rename(); mode as for open(). */
int vmm_write_file_atomic(const char *path, const void *data, size_t len, int mode);
/* mkdir -p with mode for the created directories. */
int vmm_mkdir_p(const char *path, int mode);
/* Removes a directory tree (best effort, returns the first error). */
int vmm_rm_rf(const char *path);
bool vmm_file_exists(const char *path);

/* A connected AF_UNIX stream socket (CLOEXEC, blocking), or -errno. -ENAMETOOLONG if path
 * does not fit in sun_path; -EAGAIN at once, never a wait, when the listener's backlog is
 * full (QEMU's chardev sockets take one client at a time: another one holds it). */
int vmm_unix_connect(const char *path);
/* A listening AF_UNIX stream socket bound to path (any old file there is removed). */
int vmm_unix_listen(const char *path);

/* Parses exactly one JSON value from buf[0..len) (surrounding whitespace allowed), with
 * nesting bounded by max_depth. NULL (and *why, static text) if it is not valid JSON. */
struct json_object *vmm_json_parse(const char *buf, size_t len, int max_depth, const char **why);
/* Compact one-line form of obj, owned by obj (valid until obj changes or is freed). */
const char *vmm_json_str(struct json_object *obj);

/* True if s is a canonical lower-case UUID. */
bool vmm_uuid_valid(const char *s);

#endif
