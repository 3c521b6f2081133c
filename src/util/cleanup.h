/*
 * Scope-bound cleanup (systemd's _cleanup_ idiom): a variable declared with
 * one of these attributes is released when it goes out of scope. steal_ptr()
 * hands ownership to the caller and leaves NULL behind.
 */
#ifndef HX_UTIL_CLEANUP_H
#define HX_UTIL_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>

#define DEFINE_CLEANUP_FUNC(type, func)                                                            \
    static inline void func##p(type **p)                                                           \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
    free(*(void **)p);
}

static inline void closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

static inline void strvfreep(char ***v)
{
    if (*v) {
        for (char **p = *v; *p; p++)
            free(*p);
        free(*v);
    }
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_strv_ _cleanup_(strvfreep)

/* Returns *pp and sets *pp to NULL: ownership moves to the caller. */
#define steal_ptr(pp)                                                                              \
    ({                                                                                             \
        __typeof__(*(pp)) _tmp = *(pp);                                                            \
        *(pp) = NULL;                                                                              \
        _tmp;                                                                                      \
    })

/* Returns *fdp and sets *fdp to -1. */
#define steal_fd(fdp)                                                                              \
    ({                                                                                             \
        int _tmp = *(fdp);                                                                         \
        *(fdp) = -1;                                                                               \
        _tmp;                                                                                      \
    })

#endif
