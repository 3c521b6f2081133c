/*
 * Unit tests of the generated model: table invariants the dispatcher relies
 * on (sorted messages and errors for bsearch, uuid first, inverse fields
 * pointing at ref fields), default literals and type coercion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "model-gen.h"
#include "model/wire.h"

static void test_tables_sorted(void **state)
{
    for (size_t i = 1; i < xs_nmessages; i++)
        assert_true(strcmp(xs_messages[i - 1].wire_name, xs_messages[i].wire_name) < 0);
    for (size_t i = 1; i < xs_nerror_defs; i++)
        assert_true(strcmp(xs_error_defs[i - 1].code, xs_error_defs[i].code) < 0);
    for (size_t i = 0; i < xs_nmessages; i++)
        assert_ptr_equal(xs_message_find(xs_messages[i].wire_name), &xs_messages[i]);
    assert_null(xs_message_find("VM.no_such_message"));
}

static void test_class_invariants(void **state)
{
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        const XsClass *cls = xs_classes[c];
        assert_int_equal(cls->id, c);
        assert_string_equal(cls->fields[0].name, "uuid");
        for (size_t i = 0; i < cls->nfields; i++) {
            const XsField *f = &cls->fields[i];
            if (!(f->flags & XS_FIELD_DERIVED))
                continue;
            assert_int_equal(f->type->kind, XS_T_SET);
            const XsField *src = &xs_classes[f->inverse_class]->fields[f->inverse_field];
            assert_int_equal(src->type->kind, XS_T_REF);
            assert_int_equal(src->type->cls, c);
        }
    }
}

static void test_defaults(void **state)
{
    XsValue *v = xs_default_value(&xs_type_string, "\"\"");
    assert_string_equal(v->s, "");
    xv_free(v);
    v = xs_default_value(&xs_type_string__string_map, "{\"address\" -> \"localhost\", "
                                                     "\"port\" -> \"27000\"}");
    assert_int_equal(v->n, 2);
    assert_string_equal(xv_struct_get_string(v, "port"), "27000");
    xv_free(v);
    v = xs_default_value(&xs_type_vm_ref, "Null");
    assert_string_equal(v->s, "OpaqueRef:NULL");
    xv_free(v);
    v = xs_default_value(&xs_type_int_set, "{0}");
    assert_int_equal(v->n, 1);
    assert_int_equal(v->items[0].i, 0);
    xv_free(v);
}

static void test_coerce(void **state)
{
    XsError *err = NULL;
    XsValue *s = xv_string("42");
    XsValue *i = xs_value_coerce(&xs_type_int, s, "x", &err);
    assert_non_null(i);
    assert_int_equal(i->kind, XV_INT);
    assert_int_equal(i->i, 42);
    xv_free(i);
    xv_free(s);

    XsValue *b = xv_string("true");
    assert_null(xs_value_coerce(&xs_type_bool, b, "flag", &err));
    assert_non_null(err);
    assert_string_equal(err->code, "FIELD_TYPE_ERROR");
    assert_string_equal(err->params[0], "flag");
    xs_error_free(err);
    err = NULL;
    xv_free(b);

    XsValue *e = xv_string("Sleeping");
    assert_null(xs_value_coerce(&xs_type_enum_vm_power_state, e, "power_state", &err));
    xs_error_free(err);
    err = NULL;
    xv_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_sorted),
        cmocka_unit_test(test_class_invariants),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_coerce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
