/*
 * File helpers. See agent_io.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_io.h"
#include "util/cleanup.h"
#include "util/xalloc.h"

#include "util/banned.h"

int agent_io_read_file(const char *path, size_t max, StrBuf *out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    for (;;) {
        strbuf_grow(out, 4096);
        size_t room = out->alloc - out->len - 1;
        if (room > max - got + 1)
            room = max - got + 1;
        ssize_t n = read(fd, out->buf + out->len, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        strbuf_setlen(out, out->len + (size_t)n);
        if (got > max) {
            strbuf_setlen(out, out->len - (got - max));
            return -EFBIG;
        }
    }
    return 0;
}

int agent_io_read_line(const char *path, StrBuf *out)
{
    StrBuf tmp = STRBUF_INIT;
    int r = agent_io_read_file(path, 4096, &tmp);
    if (r < 0 && r != -EFBIG) {
        strbuf_release(&tmp);
        return r;
    }
    size_t n = 0;
    while (n < tmp.len && tmp.buf[n] != '\n')
        n++;
    strbuf_add(out, tmp.buf, n);
    strbuf_release(&tmp);
    return 0;
}

int agent_io_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

char *agent_io_path(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

int64_t agent_io_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
