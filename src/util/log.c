/*
 * Logging. See log.h. One mutex serialises writers so lines never interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static LogLevel log_level = LOG_LEVEL_INFO;
static int log_fd = -1;
static bool log_to_stderr = true;

static const char *const level_names[LOG_LEVEL__MAX] = {"error", "warn", "info", "debug"};

void log_set_level(LogLevel level)
{
    log_level = level;
}

LogLevel log_get_level(void)
{
    return log_level;
}

int log_level_from_string(const char *s)
{
    for (int i = 0; i < LOG_LEVEL__MAX; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

int log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    pthread_mutex_lock(&log_lock);
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void log_set_stderr(bool on)
{
    log_to_stderr = on;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    pthread_mutex_unlock(&log_lock);
}

void log_msg(LogLevel level, const char *func, const char *fmt, ...)
{
    if (level > log_level)
        return;

    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], func);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';

    pthread_mutex_lock(&log_lock);
    if (log_to_stderr && write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nothing sensible to do */
    }
    if (log_fd >= 0 && write(log_fd, line, (size_t)n) < 0) {
        /* nothing sensible to do */
    }
    pthread_mutex_unlock(&log_lock);
}
