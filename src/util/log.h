/*
 * Logging with levels to stderr and, once log_open_file() is called, to a
 * file as well. Thread-safe; each line carries a timestamp, the level and
 * the calling thread's tag. Never used for what a client must see: that is
 * an XsError.
 */
#ifndef HX_UTIL_LOG_H
#define HX_UTIL_LOG_H

#include <stdbool.h>
#include "util/macros.h"

typedef enum {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL__MAX,
} LogLevel;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns -1 if unknown. */
int log_level_from_string(const char *s);
/* Also writes to path (appending); returns -errno on failure. */
int log_open_file(const char *path);
void log_set_stderr(bool on);
void log_close(void);

void log_msg(LogLevel level, const char *func, const char *fmt, ...) HX_PRINTF(3, 4);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                                    \
            log_msg(LOG_LEVEL_DEBUG, __func__, __VA_ARGS__);                                       \
    } while (0)

#endif
