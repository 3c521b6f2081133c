/*
 * Helpers shared inside src/vmm. See vmm_util.h. Nothing here allocates
 * without bound: file reads take a maximum, JSON parsing a depth limit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/xalloc.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

int vmm_error(char **err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        free(*err);
        *err = msg;
    }
    return code;
}

void vmm_error_prefix(char **err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *prefix = xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = xasprintf("%s: %s", prefix, *err ? *err : "unknown error");
    free(*err);
    *err = msg;
}

int64_t vmm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vmm_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void vmm_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

ssize_t vmm_read_file(const char *path, size_t max, bool tail, char **out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (tail && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        if (lseek(fd, st.st_size - (off_t)max, SEEK_SET) < 0)
            return -errno;
    }
    size_t alloc = MIN(max, (size_t)64 * 1024) + 1;
    char *buf = xmalloc(alloc);
    size_t len = 0;
    while (len < max) {
        if (len + 1 >= alloc) {
            alloc = MIN(alloc * 2, max + 1);
            buf = xrealloc(buf, alloc);
        }
        ssize_t n = read(fd, buf + len, MIN(alloc - 1 - len, max - len));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            return e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    return (ssize_t)len;
}

int vmm_write_file_atomic(const char *path, const void *data, size_t len, int mode)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            unlink(tmp);
            return e;
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    if (rename(tmp, path) < 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

int vmm_mkdir_p(const char *path, int mode)
{
    _cleanup_free_ char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int vmm_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) < 0 ? -errno : 0;
    int ret = 0;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (STREQ(de->d_name, ".") || STREQ(de->d_name, ".."))
            continue;
        _cleanup_free_ char *child = xasprintf("%s/%s", path, de->d_name);
        int r = vmm_rm_rf(child);
        if (r < 0 && ret == 0)
            ret = r;
    }
    closedir(d);
    if (rmdir(path) < 0 && ret == 0)
        ret = -errno;
    return ret;
}

bool vmm_file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

int vmm_unix_connect(const char *path)
{
    struct sockaddr_un sa;
    int r = unix_addr(path, &sa);
    if (r < 0)
        return r;
    /* Non-blocking for the connect alone: a blocking connect to a listener whose
     * backlog is full waits until somebody else lets go, which may be never. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno == EWOULDBLOCK ? -EAGAIN : -errno;
        close(fd);
        return e;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int vmm_unix_listen(const char *path)
{
    struct sockaddr_un sa;
    int r = unix_addr(path, &sa);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

struct json_object *vmm_json_parse(const char *buf, size_t len, int max_depth, const char **why)
{
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                       buf[len - 1] == '\t'))
        len--;
    if (len == 0) {
        *why = "empty";
        return NULL;
    }
    if (len > (size_t)INT32_MAX || memchr(buf, '\0', len)) {
        *why = "binary data";
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new_ex(max_depth);
    if (!tok) {
        *why = "out of memory";
        return NULL;
    }
    struct json_object *obj = json_tokener_parse_ex(tok, buf, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!obj || jerr != json_tokener_success) {
        json_object_put(obj);
        *why = jerr == json_tokener_continue ? "incomplete JSON" : json_tokener_error_desc(jerr);
        return NULL;
    }
    for (; end < len; end++) {
        if (buf[end] != ' ' && buf[end] != '\t' && buf[end] != '\r' && buf[end] != '\n') {
            json_object_put(obj);
            *why = "trailing data after JSON";
            return NULL;
        }
    }
    return obj;
}

const char *vmm_json_str(struct json_object *obj)
{
    return json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
}

bool vmm_uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}
