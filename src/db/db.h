/*
 * The object database: every XenAPI object lives in memory (for speed) and in
 * SQLite (for durability, WAL mode). It is the one place that knows the
 * schema's storage: one table per persistent class, one column per stored
 * field, sets and maps as JSON text. Derived fields (VM.VBDs from VBD.VM and
 * the like) are computed from indices, never stored.
 *
 * Concurrency: a readers-writer lock. Readers take db_read_lock() and may use
 * DbObj pointers until they unlock. Writers open a transaction (db_begin),
 * which holds the write lock until db_commit or db_abort: keep transactions
 * short and never do I/O other than the database inside one. A commit writes
 * every touched object in one SQLite transaction; if that fails the in-memory
 * changes are rolled back too, so memory and disk always agree.
 *
 * Every commit advances a generation counter; event.from and friends wait on
 * it (db_wait_generation) and collect what changed (db_changes_since).
 *
 * This layer knows nothing of sessions, RBAC or HTTP.
 */
#ifndef HX_DB_DB_H
#define HX_DB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model-gen.h"
#include "model/value.h"
#include "util/error.h"

typedef struct Db Db;
typedef struct DbTxn DbTxn;
typedef struct DbBackrefs DbBackrefs;

typedef struct DbObj {
    const XsClass *cls;
    char *ref; /* "OpaqueRef:<uuid>" */
    uint64_t gen;         /* generation of the last change (including derived fields) */
    uint64_t created_gen; /* generation of the commit that created it */
    DbBackrefs *backrefs; /* one list per derived field */
    bool deleted;         /* destroyed in the open transaction */
    XsValue fields[];     /* cls->nfields values; derived ones stay XV_NULL */
} DbObj;

/* Opens (creating if needed) the database file; path ":memory:" for tests. */
Db *db_open(const char *path, XsError **errp);
void db_close(Db *db);

/* ---- reading (hold the read lock, or be inside a transaction) ---------- */
void db_read_lock(Db *db);
void db_read_unlock(Db *db);

DbObj *db_get(Db *db, const char *ref);
DbObj *db_get_class(Db *db, int cls, const char *ref);
DbObj *db_get_by_uuid(Db *db, int cls, const char *uuid);
/* The objects of a class in creation order; valid until the lock is released. */
DbObj *const *db_list(Db *db, int cls, size_t *n);

/*
 * The value of a field. For a derived field the set of refs is built into
 * *scratch (which the caller must xv_clear) and a pointer to it returned.
 */
const XsValue *db_field(const DbObj *obj, int field, XsValue *scratch);
const char *db_str(const DbObj *obj, int field);
int64_t db_int(const DbObj *obj, int field);
bool db_bool(const DbObj *obj, int field);
double db_float(const DbObj *obj, int field);
/* Index of an enum field's value in its enum. */
int db_enum(const DbObj *obj, int field);
/* Number of objects referring to obj through a derived field, and the i-th. */
size_t db_backref_count(const DbObj *obj, int field);
DbObj *db_backref(const DbObj *obj, int field, size_t i);

/* A deep copy of the whole record (derived fields included) as a struct
 * keyed by field name: what get_record returns. */
XsValue *db_record(const DbObj *obj);

/* ---- writing ------------------------------------------------------------ */
DbTxn *db_begin(Db *db);
Db *db_txn_db(DbTxn *txn);
/*
 * Creates an object with every field at its datamodel default; ref and uuid
 * are generated when NULL. Fails (NULL) only if the ref or uuid is taken.
 */
DbObj *db_create(DbTxn *txn, int cls, const char *ref, const char *uuid, XsError **errp);
/* Sets a stored field; consumes v. */
void db_set(DbTxn *txn, DbObj *obj, int field, XsValue *v);
void db_set_str(DbTxn *txn, DbObj *obj, int field, const char *s);
void db_set_int(DbTxn *txn, DbObj *obj, int field, int64_t i);
void db_set_bool(DbTxn *txn, DbObj *obj, int field, bool b);
void db_set_float(DbTxn *txn, DbObj *obj, int field, double f);
void db_set_datetime(DbTxn *txn, DbObj *obj, int field, int64_t t);
void db_set_enum(DbTxn *txn, DbObj *obj, int field, int value);
/* Map and set fields edited in place. */
void db_map_set(DbTxn *txn, DbObj *obj, int field, const char *key, const char *value);
bool db_map_remove(DbTxn *txn, DbObj *obj, int field, const char *key);
void db_set_add(DbTxn *txn, DbObj *obj, int field, const char *value);
bool db_set_remove(DbTxn *txn, DbObj *obj, int field, const char *value);
void db_delete(DbTxn *txn, DbObj *obj);
/* Marks obj as changed for event watchers without changing a field. */
void db_touch(DbTxn *txn, DbObj *obj);
/* Persists and publishes; on failure rolls back and sets *errp. Frees txn. */
bool db_commit(DbTxn *txn, XsError **errp);
/* Rolls every change back. Frees txn. */
void db_abort(DbTxn *txn);

/*
 * Changes a field outside any transaction, in memory only and without an
 * event (session.last_active and similar bookkeeping). Takes the write lock.
 */
void db_set_volatile(Db *db, const char *ref, int field, XsValue *v);

/* ---- private key/value metadata (never exposed through the API) --------- */
char *db_meta_get(Db *db, const char *key);
bool db_meta_set(Db *db, const char *key, const char *value, XsError **errp);

/* ---- events ------------------------------------------------------------- */
uint64_t db_generation(Db *db);
/*
 * Waits until the generation exceeds since or timeout seconds pass; returns
 * the current generation. timeout <= 0 returns at once.
 */
uint64_t db_wait_generation(Db *db, uint64_t since, double timeout);

typedef enum { DB_CHANGE_ADD, DB_CHANGE_MOD, DB_CHANGE_DEL } DbChangeKind;
/*
 * Calls fn for every object of the classes in mask (bit per XsClassId; all
 * if mask is 0) changed after generation since, with obj NULL for deletions
 * (then cls and ref identify it). Call with the read lock held.
 */
typedef void (*DbChangeFn)(void *ctx, DbChangeKind kind, int cls, const char *ref,
                           const DbObj *obj, uint64_t gen);
void db_changes_since(Db *db, uint64_t since, uint64_t mask, DbChangeFn fn, void *ctx);

/* Test hook: make the next commit fail as if the disk failed. */
void db_inject_commit_failure(Db *db);

#endif
