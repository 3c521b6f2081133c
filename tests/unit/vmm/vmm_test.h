/*
 * A tiny test helper for the src/vmm tests: test_run() runs one case and
 * prints a TAP line; CHECK() records a failure with its location and lets the
 * case go on; REQUIRE() ends the case. Header-only so that each test is one C
 * program. Not for production code.
 */
#ifndef HX_TESTS_VMM_TEST_H
#define HX_TESTS_VMM_TEST_H

/* not every test uses every helper */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_count;
static int test_failed_total;
static bool test_failed;
static jmp_buf test_jmp;

static inline void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# %s:%d: ", file, line);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    test_failed = true;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail(__FILE__, __LINE__, "check failed: %s", #cond);                             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                                            \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b)                                                                              \
            test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, _a, #b, _b);      \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                                     \
            test_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, _a ? _a : "(null)", \
                      _b ? _b : "(null)");                                                         \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *_h = (hay), *_n = (needle);                                                    \
        if (!_h || !strstr(_h, _n))                                                                \
            test_fail(__FILE__, __LINE__, "%s == \"%s\" does not contain \"%s\"", #hay,            \
                      _h ? _h : "(null)", _n);                                                     \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_fail(__FILE__, __LINE__, "requirement failed: %s", #cond);                       \
            longjmp(test_jmp, 1);                                                                  \
        }                                                                                          \
    } while (0)

static inline void test_run(const char *title, void (*fn)(void *), void *data)
{
    test_count++;
    test_failed = false;
    if (setjmp(test_jmp) == 0)
        fn(data);
    printf("%s %d - %s\n", test_failed ? "not ok" : "ok", test_count, title);
    fflush(stdout);
    if (test_failed)
        test_failed_total++;
}

static inline void test_skip(const char *title, const char *why)
{
    test_count++;
    printf("ok %d - %s # SKIP %s\n", test_count, title, why);
    fflush(stdout);
}

static inline int test_done(void)
{
    printf("1..%d\n", test_count);
    return test_failed_total ? 1 : 0;
}

#endif
