/*
 * Allocation that never returns NULL: on out-of-memory the process aborts
 * (there are no OOM branches in hyperxe). Sizes a client controls must be
 * bounded before they reach these functions.
 */
#ifndef HX_UTIL_XALLOC_H
#define HX_UTIL_XALLOC_H

#include <stddef.h>
#include <stdarg.h>
#include "util/macros.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Reallocates p to nmemb elements of size bytes, checking for overflow. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
/* Duplicates s, which may be NULL (then returns NULL). */
char *xstrdup_or_null(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) HX_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) HX_PRINTF(1, 0);

/* Allocates n zeroed objects of type T. */
#define xnew0(T, n) ((T *)xcalloc((n), sizeof(T)))

/*
 * Grows an array so that it holds at least need elements: *alloc is its
 * capacity, updated on growth. Amortised O(1) per append.
 */
#define XGROW(arr, need, alloc)                                                                    \
    do {                                                                                           \
        if ((size_t)(need) > (alloc)) {                                                            \
            size_t _n = (alloc) ? (alloc) * 2 : 8;                                                 \
            while (_n < (size_t)(need))                                                            \
                _n *= 2;                                                                           \
            (arr) = xreallocarray((arr), _n, sizeof(*(arr)));                                      \
            (alloc) = _n;                                                                          \
        }                                                                                          \
    } while (0)

#endif
