/*
 * Small file helpers for the agent's command handlers: read a whole (small)
 * file with a bound, read the first line of a sysfs attribute, write all of
 * a buffer, read the monotonic clock. They return -errno and never allocate more than asked.
 */
#ifndef HX_AGENT_AGENT_IO_H
#define HX_AGENT_AGENT_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/strbuf.h"

/* Appends at most max bytes of path to out; -EFBIG if the file is longer. */
int agent_io_read_file(const char *path, size_t max, StrBuf *out);
/* Reads the first line of a small file (sysfs attribute) without its newline. */
int agent_io_read_line(const char *path, StrBuf *out);
/* Writes all of data, retrying on EINTR and short writes (blocking fd). */
int agent_io_write_all(int fd, const void *data, size_t len);
/* Milliseconds of CLOCK_MONOTONIC. */
int64_t agent_io_now_ms(void);
/* Builds "dir/name" into a new string. */
char *agent_io_path(const char *dir, const char *name);

#endif
