/*
 * Small macros used everywhere: array sizes, min/max, attribute shorthands.
 * Nothing here allocates or has side effects of its own.
 */
#ifndef HX_UTIL_MACROS_H
#define HX_UTIL_MACROS_H

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define HX_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define HX_NORETURN __attribute__((noreturn))
#define HX_UNUSED __attribute__((unused))
#define HX_WARN_UNUSED __attribute__((warn_unused_result))

#define STREQ(a, b) (strcmp((a), (b)) == 0)
#define STRPREFIX(s, p) (strncmp((s), (p), strlen(p)) == 0)

/* Whether short-lived programs should free everything before exiting: only
 * worth the time under a leak checker. */
#if defined(__SANITIZE_ADDRESS__)
#define HX_FREE_AT_EXIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HX_FREE_AT_EXIT 1
#endif
#endif
#ifndef HX_FREE_AT_EXIT
#define HX_FREE_AT_EXIT 0
#endif

#define KiB (1024ULL)
#define MiB (1024ULL * 1024)
#define GiB (1024ULL * 1024 * 1024)

#endif
