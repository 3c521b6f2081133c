/*
 * Unit tests of XsValue: construction, copying, equality, struct and array
 * editing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "model/value.h"

static void test_struct_set_replace_remove(void **state)
{
    XsValue *s = xv_struct();
    xv_struct_set_string(s, "a", "1");
    xv_struct_set_string(s, "b", "2");
    xv_struct_set_string(s, "a", "3");
    assert_int_equal(s->n, 2);
    assert_string_equal(xv_struct_get_string(s, "a"), "3");
    assert_true(xv_struct_remove(s, "a"));
    assert_false(xv_struct_remove(s, "a"));
    assert_null(xv_struct_get(s, "a"));
    assert_string_equal(xv_struct_key(s, 0), "b");
    xv_free(s);
}

static void test_copy_equal(void **state)
{
    XsValue *a = xv_struct();
    XsValue *arr = xv_array();
    xv_array_push_string(arr, "x");
    xv_array_push(arr, xv_int(42));
    xv_struct_set(a, "list", arr);
    xv_struct_set(a, "f", xv_float(1.5));
    xv_struct_set(a, "t", xv_datetime(86400));
    XsValue *b = xv_copy(a);
    assert_true(xv_equal(a, b));
    xv_struct_set(b, "f", xv_float(2.5));
    assert_false(xv_equal(a, b));
    xv_free(a);
    xv_free(b);
}

static void test_struct_equal_ignores_order(void **state)
{
    XsValue *a = xv_struct(), *b = xv_struct();
    xv_struct_set_string(a, "k1", "v1");
    xv_struct_set_string(a, "k2", "v2");
    xv_struct_set_string(b, "k2", "v2");
    xv_struct_set_string(b, "k1", "v1");
    assert_true(xv_equal(a, b));
    xv_free(a);
    xv_free(b);
}

static void test_array_remove_string(void **state)
{
    XsValue *a = xv_array();
    xv_array_push_string(a, "a");
    xv_array_push_string(a, "b");
    xv_array_push_string(a, "a");
    assert_int_equal(xv_array_remove_string(a, "a"), 2);
    assert_int_equal(a->n, 1);
    assert_string_equal(a->items[0].s, "b");
    assert_false(xv_array_contains_string(a, "a"));
    xv_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_struct_set_replace_remove),
        cmocka_unit_test(test_copy_equal),
        cmocka_unit_test(test_struct_equal_ignores_order),
        cmocka_unit_test(test_array_remove_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
