/*
 * Unit tests of the where-expression language.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "model/where.h"
#include "util/xalloc.h"

static char *getter(void *ctx, const char *field)
{
    if (strcmp(field, "name_label") == 0)
        return xstrdup("web");
    if (strcmp(field, "power_state") == 0)
        return xstrdup("Running");
    return NULL;
}

static bool eval(const char *text)
{
    char *err = NULL;
    WhereExpr *e = where_parse(text, &err);
    assert_non_null(e);
    bool r = where_eval(e, getter, NULL);
    where_free(e);
    return r;
}

static void test_eval(void **state)
{
    assert_true(eval("true"));
    assert_false(eval("false"));
    assert_true(eval("field \"name__label\" = \"web\""));
    assert_false(eval("field \"name__label\" = \"db\""));
    assert_true(eval("field \"power_state\"=\"Running\" and not (field \"name__label\"=\"db\")"));
    assert_true(eval("field \"name__label\" = \"db\" or field \"power_state\" = \"Running\""));
    assert_true(eval("field \"name__label\" <> \"db\""));
    assert_false(eval("field \"nosuchfield\" = \"\""));
    assert_true(eval("\"web\" = field \"name__label\""));
    assert_true(eval("NOT false AND TRUE"));
}

static void test_syntax_errors(void **state)
{
    static const char *const bad[] = {"", "field", "field \"a\"", "field \"a\" = ",
                                      "(true", "true and", "field \"a\" = \"b\" junk",
                                      "field \"unterminated = \"x\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *err = NULL;
        assert_null(where_parse(bad[i], &err));
        assert_non_null(err);
        free(err);
    }
}

static void test_depth_bounded(void **state)
{
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        buf[n++] = '(';
    buf[n] = '\0';
    char *err = NULL;
    assert_null(where_parse(buf, &err));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_depth_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
