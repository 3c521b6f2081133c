/*
 * Unit tests of the object database: transactions commit atomically or roll
 * back completely (also when the disk write fails), state survives a
 * reopen, derived fields follow their forward refs, and the change feed
 * reports adds, mods and deletions in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "util/xalloc.h"

static char *tmp_db(void)
{
    char tmpl[] = "/tmp/hx-test-db-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return xasprintf("%s/db.sqlite", dir);
}

static DbObj *make_vm(Db *db, const char *name, char **ref)
{
    DbTxn *txn = db_begin(db);
    DbObj *vm = db_create(txn, XS_CLASS_VM, NULL, NULL, NULL);
    assert_non_null(vm);
    db_set_str(txn, vm, F_VM_NAME_LABEL, name);
    db_set_int(txn, vm, F_VM_MEMORY_STATIC_MAX, 1 << 30);
    *ref = xstrdup(vm->ref);
    assert_true(db_commit(txn, NULL));
    return vm;
}

static void test_commit_and_reopen(void **state)
{
    char *path = tmp_db();
    Db *db = db_open(path, NULL);
    assert_non_null(db);
    char *ref;
    make_vm(db, "alpha", &ref);
    DbTxn *txn = db_begin(db);
    DbObj *vm = db_get(db, ref);
    db_map_set(txn, vm, F_VM_OTHER_CONFIG, "k", "v");
    db_set_add(txn, vm, F_VM_TAGS, "t1");
    assert_true(db_commit(txn, NULL));
    db_close(db);

    db = db_open(path, NULL);
    assert_non_null(db);
    db_read_lock(db);
    vm = db_get_class(db, XS_CLASS_VM, ref);
    assert_non_null(vm);
    assert_string_equal(db_str(vm, F_VM_NAME_LABEL), "alpha");
    assert_int_equal(db_int(vm, F_VM_MEMORY_STATIC_MAX), 1 << 30);
    assert_string_equal(xv_struct_get_string(&vm->fields[F_VM_OTHER_CONFIG], "k"), "v");
    assert_true(xv_array_contains_string(&vm->fields[F_VM_TAGS], "t1"));
    assert_ptr_equal(db_get_by_uuid(db, XS_CLASS_VM, db_str(vm, 0)), vm);
    db_read_unlock(db);
    db_close(db);
    free(ref);
    free(path);
}

static void test_abort_restores_everything(void **state)
{
    Db *db = db_open(":memory:", NULL);
    char *ref;
    make_vm(db, "alpha", &ref);
    DbTxn *txn = db_begin(db);
    DbObj *vm = db_get(db, ref);
    db_set_str(txn, vm, F_VM_NAME_LABEL, "changed");
    DbObj *vbd = db_create(txn, XS_CLASS_VBD, NULL, NULL, NULL);
    db_set_str(txn, vbd, F_VBD_VM, ref);
    assert_int_equal(db_backref_count(vm, F_VM_VBDS), 1);
    char *vbdref = xstrdup(vbd->ref);
    db_abort(txn);
    db_read_lock(db);
    vm = db_get(db, ref);
    assert_string_equal(db_str(vm, F_VM_NAME_LABEL), "alpha");
    assert_null(db_get(db, vbdref));
    assert_int_equal(db_backref_count(vm, F_VM_VBDS), 0);
    db_read_unlock(db);
    free(vbdref);
    free(ref);
    db_close(db);
}

static void test_failed_commit_rolls_back(void **state)
{
    char *path = tmp_db();
    Db *db = db_open(path, NULL);
    char *ref;
    make_vm(db, "alpha", &ref);
    uint64_t gen = db_generation(db);
    db_inject_commit_failure(db);
    DbTxn *txn = db_begin(db);
    DbObj *vm = db_get(db, ref);
    db_set_str(txn, vm, F_VM_NAME_LABEL, "lost");
    db_delete(txn, vm);
    XsError *err = NULL;
    assert_false(db_commit(txn, &err));
    assert_non_null(err);
    assert_string_equal(err->code, "INTERNAL_ERROR");
    xs_error_free(err);
    assert_int_equal(db_generation(db), gen);
    db_read_lock(db);
    vm = db_get(db, ref);
    assert_non_null(vm);
    assert_string_equal(db_str(vm, F_VM_NAME_LABEL), "alpha");
    db_read_unlock(db);
    db_close(db);
    /* and the disk agrees */
    db = db_open(path, NULL);
    db_read_lock(db);
    assert_string_equal(db_str(db_get(db, ref), F_VM_NAME_LABEL), "alpha");
    db_read_unlock(db);
    db_close(db);
    free(ref);
    free(path);
}

static void test_derived_fields(void **state)
{
    Db *db = db_open(":memory:", NULL);
    char *a, *b;
    make_vm(db, "a", &a);
    make_vm(db, "b", &b);
    DbTxn *txn = db_begin(db);
    DbObj *vbd = db_create(txn, XS_CLASS_VBD, NULL, NULL, NULL);
    db_set_str(txn, vbd, F_VBD_VM, a);
    char *vbdref = xstrdup(vbd->ref);
    assert_true(db_commit(txn, NULL));

    db_read_lock(db);
    XsValue scratch = {0};
    const XsValue *v = db_field(db_get(db, a), F_VM_VBDS, &scratch);
    assert_int_equal(v->n, 1);
    assert_string_equal(v->items[0].s, vbdref);
    xv_clear(&scratch);
    db_read_unlock(db);

    /* moving the VBD moves the back-reference */
    txn = db_begin(db);
    db_set_str(txn, db_get(db, vbdref), F_VBD_VM, b);
    assert_true(db_commit(txn, NULL));
    db_read_lock(db);
    assert_int_equal(db_backref_count(db_get(db, a), F_VM_VBDS), 0);
    assert_int_equal(db_backref_count(db_get(db, b), F_VM_VBDS), 1);
    db_read_unlock(db);

    /* deleting it clears it */
    txn = db_begin(db);
    db_delete(txn, db_get(db, vbdref));
    assert_true(db_commit(txn, NULL));
    db_read_lock(db);
    assert_int_equal(db_backref_count(db_get(db, b), F_VM_VBDS), 0);
    db_read_unlock(db);
    free(a);
    free(b);
    free(vbdref);
    db_close(db);
}

typedef struct Seen {
    int adds, mods, dels;
    uint64_t last_gen;
    bool ordered;
} Seen;

static void seen_cb(void *ctx, DbChangeKind kind, int cls, const char *ref, const DbObj *obj,
                    uint64_t gen)
{
    Seen *s = ctx;
    if (gen < s->last_gen)
        s->ordered = false;
    s->last_gen = gen;
    if (kind == DB_CHANGE_ADD)
        s->adds++;
    else if (kind == DB_CHANGE_MOD)
        s->mods++;
    else
        s->dels++;
}

static void test_change_feed(void **state)
{
    Db *db = db_open(":memory:", NULL);
    uint64_t start = db_generation(db);
    char *a, *b;
    make_vm(db, "a", &a);
    uint64_t mid = db_generation(db);
    make_vm(db, "b", &b);
    DbTxn *txn = db_begin(db);
    db_set_str(txn, db_get(db, a), F_VM_NAME_LABEL, "a2");
    db_delete(txn, db_get(db, b));
    assert_true(db_commit(txn, NULL));

    Seen s = {0, 0, 0, 0, true};
    db_read_lock(db);
    db_changes_since(db, start, 1ULL << XS_CLASS_VM, seen_cb, &s);
    db_read_unlock(db);
    assert_int_equal(s.adds, 1); /* a; b was added and deleted */
    assert_int_equal(s.dels, 1);
    assert_true(s.ordered);

    Seen t = {0, 0, 0, 0, true};
    db_read_lock(db);
    db_changes_since(db, mid, 1ULL << XS_CLASS_VM, seen_cb, &t);
    db_read_unlock(db);
    assert_int_equal(t.mods, 1);
    assert_int_equal(t.dels, 1);
    assert_int_equal(t.adds, 0);

    /* waiting returns at once when there is news, after the timeout if not */
    assert_true(db_wait_generation(db, start, 5.0) > start);
    uint64_t now = db_generation(db);
    assert_int_equal(db_wait_generation(db, now, 0.05), now);
    free(a);
    free(b);
    db_close(db);
}

static void test_duplicate_uuid_refused(void **state)
{
    Db *db = db_open(":memory:", NULL);
    DbTxn *txn = db_begin(db);
    assert_non_null(db_create(txn, XS_CLASS_VM, NULL, "11111111-2222-3333-4444-555555555555", NULL));
    XsError *err = NULL;
    assert_null(db_create(txn, XS_CLASS_VM, NULL, "11111111-2222-3333-4444-555555555555", &err));
    assert_non_null(err);
    xs_error_free(err);
    assert_true(db_commit(txn, NULL));
    db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_and_reopen),
        cmocka_unit_test(test_abort_restores_everything),
        cmocka_unit_test(test_failed_commit_rolls_back),
        cmocka_unit_test(test_derived_fields),
        cmocka_unit_test(test_change_feed),
        cmocka_unit_test(test_duplicate_uuid_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
