/*
 * The object database. See db.h for the model; this file keeps the indices
 * (ref, uuid, derived back-references), the undo log that makes transactions
 * atomic in memory, and the SQLite persistence that makes them durable.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "model/wire.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define MAX_TOMBSTONES 65536

typedef struct ObjList {
    DbObj **items;
    size_t n, alloc;
} ObjList;

struct DbBackrefs {
    ObjList lists[1]; /* really cls->nderived */
};

typedef struct Relation {
    int src_cls, src_field; /* the forward ref field, e.g. VBD.VM */
    int dst_cls, dst_field; /* the derived set, e.g. VM.VBDs */
} Relation;

typedef struct ClassStore {
    ObjList objs;
    HashMap by_uuid;
    int nderived;
    int *derived_slot; /* per field: index into backrefs, or -1 */
    sqlite3_stmt *upsert;
    sqlite3_stmt *del;
} ClassStore;

typedef struct Tombstone {
    int cls;
    char *ref;
    uint64_t gen;
} Tombstone;

struct Db {
    pthread_rwlock_t lock;
    pthread_mutex_t gen_lock;
    pthread_cond_t gen_cond;
    uint64_t gen;
    sqlite3 *sql;
    HashMap by_ref;
    ClassStore cls[XS_CLASS__MAX];
    Relation *rels;
    size_t nrels;
    Tombstone *tombs;
    size_t ntombs, tomb_alloc;
    bool fail_next_commit;
    sqlite3_stmt *meta_get;
    sqlite3_stmt *meta_set;
    pthread_mutex_t meta_lock;
};

typedef enum { U_SET, U_CREATE, U_DELETE } UndoKind;

typedef struct Undo {
    UndoKind kind;
    DbObj *obj;
    int field;
    XsValue old;
} Undo;

struct DbTxn {
    Db *db;
    Undo *undo;
    size_t nundo, undo_alloc;
    ObjList touched; /* to persist and publish */
    ObjList evonly;  /* derived fields changed: publish only */
};

/* ---- small helpers ------------------------------------------------------ */

static void list_add(ObjList *l, DbObj *o)
{
    XGROW(l->items, l->n + 1, l->alloc);
    l->items[l->n++] = o;
}

static bool list_remove(ObjList *l, DbObj *o)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i] == o) {
            memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof(DbObj *));
            l->n--;
            return true;
        }
    }
    return false;
}

static bool list_contains(const ObjList *l, const DbObj *o)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i] == o)
            return true;
    return false;
}

static const char *obj_uuid(const DbObj *o)
{
    return o->fields[0].s; /* uuid is always field 0 (checked by the generator) */
}

static DbObj *obj_new(const XsClass *cls, const char *ref, const char *uuid)
{
    DbObj *o = xcalloc(1, sizeof(DbObj) + cls->nfields * sizeof(XsValue));
    o->cls = cls;
    o->ref = xstrdup(ref);
    for (size_t i = 0; i < cls->nfields; i++) {
        const XsField *f = &cls->fields[i];
        if (f->flags & XS_FIELD_DERIVED)
            continue;
        xv_move_into(&o->fields[i], xs_default_value(f->type, f->default_literal));
    }
    xv_clear(&o->fields[0]);
    o->fields[0].kind = XV_STRING;
    o->fields[0].s = xstrdup(uuid);
    return o;
}

static void obj_free(Db *db, DbObj *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->cls->nfields; i++)
        xv_clear(&o->fields[i]);
    if (o->backrefs) {
        for (int i = 0; i < db->cls[o->cls->id].nderived; i++)
            free(o->backrefs->lists[i].items);
        free(o->backrefs);
    }
    free(o->ref);
    free(o);
}

static ObjList *backref_list(Db *db, DbObj *target, int field)
{
    ClassStore *cs = &db->cls[target->cls->id];
    int slot = cs->derived_slot[field];
    if (slot < 0)
        return NULL;
    if (!target->backrefs)
        target->backrefs = xcalloc(1, sizeof(ObjList) * (size_t)cs->nderived);
    return &target->backrefs->lists[slot];
}

/* Looks up the live target of a forward ref value. */
static DbObj *ref_target(Db *db, const XsValue *v, int cls)
{
    if (v->kind != XV_STRING)
        return NULL;
    DbObj *t = hashmap_get(&db->by_ref, v->s);
    return t && t->cls->id == cls && !t->deleted ? t : NULL;
}

static void mark_evonly(DbTxn *txn, DbObj *o)
{
    if (txn && !list_contains(&txn->evonly, o))
        list_add(&txn->evonly, o);
}

/* obj's forward field changed from old to new: fix the targets' backrefs. */
static void relink(Db *db, DbTxn *txn, DbObj *obj, int field, const XsValue *old,
                   const XsValue *new)
{
    for (size_t r = 0; r < db->nrels; r++) {
        const Relation *rel = &db->rels[r];
        if (rel->src_cls != obj->cls->id || rel->src_field != field)
            continue;
        DbObj *t;
        ObjList *l;
        if (old && (t = ref_target(db, old, rel->dst_cls)) &&
            (l = backref_list(db, t, rel->dst_field))) {
            list_remove(l, obj);
            mark_evonly(txn, t);
        }
        if (new && (t = ref_target(db, new, rel->dst_cls)) &&
            (l = backref_list(db, t, rel->dst_field))) {
            list_add(l, obj);
            mark_evonly(txn, t);
        }
    }
}

/* Links or unlinks every forward ref of obj. */
static void relink_all(Db *db, DbTxn *txn, DbObj *obj, bool add)
{
    for (size_t r = 0; r < db->nrels; r++) {
        const Relation *rel = &db->rels[r];
        if (rel->src_cls != obj->cls->id)
            continue;
        const XsValue *v = &obj->fields[rel->src_field];
        relink(db, txn, obj, rel->src_field, add ? NULL : v, add ? v : NULL);
    }
}

/* Rebuilds the backrefs of a (re)appearing object by scanning its sources. */
static void rebuild_backrefs(Db *db, DbObj *obj)
{
    for (size_t r = 0; r < db->nrels; r++) {
        const Relation *rel = &db->rels[r];
        if (rel->dst_cls != obj->cls->id)
            continue;
        ObjList *l = backref_list(db, obj, rel->dst_field);
        if (!l)
            continue;
        l->n = 0;
        ClassStore *src = &db->cls[rel->src_cls];
        for (size_t i = 0; i < src->objs.n; i++) {
            DbObj *s = src->objs.items[i];
            const XsValue *v = &s->fields[rel->src_field];
            if (!s->deleted && v->kind == XV_STRING && strcmp(v->s, obj->ref) == 0)
                list_add(l, s);
        }
    }
}

static void index_add(Db *db, DbObj *o)
{
    hashmap_put(&db->by_ref, o->ref, o);
    hashmap_put(&db->cls[o->cls->id].by_uuid, obj_uuid(o), o);
    list_add(&db->cls[o->cls->id].objs, o);
}

static void index_remove(Db *db, DbObj *o)
{
    hashmap_remove(&db->by_ref, o->ref);
    hashmap_remove(&db->cls[o->cls->id].by_uuid, obj_uuid(o));
    list_remove(&db->cls[o->cls->id].objs, o);
}

/* ---- SQLite ------------------------------------------------------------- */

static bool sql_exec(Db *db, const char *sql, XsError **errp)
{
    char *msg = NULL;
    if (sqlite3_exec(db->sql, sql, NULL, NULL, &msg) != SQLITE_OK) {
        xs_error_internal(errp, "database: %s (in %.60s)", msg ? msg : "error", sql);
        sqlite3_free(msg);
        return false;
    }
    return true;
}

static bool field_stored(const XsClass *cls, size_t i)
{
    return !(cls->fields[i].flags & (XS_FIELD_DERIVED | XS_FIELD_NOPERSIST));
}

static const char *sql_type(const XsType *t)
{
    switch (t->kind) {
    case XS_T_INT:
    case XS_T_BOOL:
    case XS_T_DATETIME:
        return "INTEGER";
    case XS_T_FLOAT:
        return "REAL";
    default:
        return "TEXT";
    }
}

static bool prepare_class(Db *db, const XsClass *cls, XsError **errp)
{
    StrBuf sb = STRBUF_INIT;
    bool ok = false;
    strbuf_addf(&sb, "CREATE TABLE IF NOT EXISTS \"%s\" (ref TEXT PRIMARY KEY", cls->name);
    for (size_t i = 0; i < cls->nfields; i++)
        if (field_stored(cls, i))
            strbuf_addf(&sb, ", \"%s\" %s", cls->fields[i].name, sql_type(cls->fields[i].type));
    strbuf_adds(&sb, ")");
    if (!sql_exec(db, sb.buf, errp))
        goto out;

    /* Add the columns of fields that are newer than the file. */
    strbuf_reset(&sb);
    strbuf_addf(&sb, "PRAGMA table_info(\"%s\")", cls->name);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->sql, sb.buf, -1, &st, NULL) != SQLITE_OK) {
        xs_error_internal(errp, "database: %s", sqlite3_errmsg(db->sql));
        goto out;
    }
    bool *have = xcalloc(cls->nfields, sizeof(bool));
    while (sqlite3_step(st) == SQLITE_ROW) {
        int i = xs_field_index(cls, (const char *)sqlite3_column_text(st, 1));
        if (i >= 0)
            have[i] = true;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < cls->nfields; i++) {
        if (!field_stored(cls, i) || have[i])
            continue;
        strbuf_reset(&sb);
        strbuf_addf(&sb, "ALTER TABLE \"%s\" ADD COLUMN \"%s\" %s", cls->name,
                    cls->fields[i].name, sql_type(cls->fields[i].type));
        if (!sql_exec(db, sb.buf, errp)) {
            free(have);
            goto out;
        }
    }
    free(have);

    strbuf_reset(&sb);
    strbuf_addf(&sb, "INSERT OR REPLACE INTO \"%s\" (ref", cls->name);
    int ncols = 1;
    for (size_t i = 0; i < cls->nfields; i++)
        if (field_stored(cls, i)) {
            strbuf_addf(&sb, ", \"%s\"", cls->fields[i].name);
            ncols++;
        }
    strbuf_adds(&sb, ") VALUES (?");
    for (int i = 1; i < ncols; i++)
        strbuf_adds(&sb, ", ?");
    strbuf_adds(&sb, ")");
    ClassStore *cs = &db->cls[cls->id];
    if (sqlite3_prepare_v3(db->sql, sb.buf, -1, SQLITE_PREPARE_PERSISTENT, &cs->upsert, NULL) !=
        SQLITE_OK) {
        xs_error_internal(errp, "database: %s", sqlite3_errmsg(db->sql));
        goto out;
    }
    strbuf_reset(&sb);
    strbuf_addf(&sb, "DELETE FROM \"%s\" WHERE ref = ?", cls->name);
    if (sqlite3_prepare_v3(db->sql, sb.buf, -1, SQLITE_PREPARE_PERSISTENT, &cs->del, NULL) !=
        SQLITE_OK) {
        xs_error_internal(errp, "database: %s", sqlite3_errmsg(db->sql));
        goto out;
    }
    ok = true;
out:
    strbuf_release(&sb);
    return ok;
}

static void bind_value(sqlite3_stmt *st, int col, const XsType *t, const XsValue *v,
                       StrBuf *scratch)
{
    switch (t->kind) {
    case XS_T_INT:
    case XS_T_DATETIME:
        sqlite3_bind_int64(st, col, v->kind == XV_INT || v->kind == XV_DATETIME ? v->i : 0);
        break;
    case XS_T_BOOL:
        sqlite3_bind_int(st, col, v->kind == XV_BOOL && v->b);
        break;
    case XS_T_FLOAT:
        sqlite3_bind_double(st, col, v->kind == XV_FLOAT ? v->f : 0.0);
        break;
    case XS_T_SET:
    case XS_T_MAP:
    case XS_T_RECORD:
        strbuf_reset(scratch);
        xv_to_json(scratch, v);
        sqlite3_bind_text(st, col, scratch->buf, (int)scratch->len, SQLITE_TRANSIENT);
        break;
    default:
        sqlite3_bind_text(st, col, v->kind == XV_STRING ? v->s : "", -1, SQLITE_TRANSIENT);
        break;
    }
}

static bool persist_obj(Db *db, DbObj *o, XsError **errp)
{
    ClassStore *cs = &db->cls[o->cls->id];
    if (!(o->cls->flags & XS_CLASS_PERSIST))
        return true;
    sqlite3_stmt *st = o->deleted ? cs->del : cs->upsert;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_text(st, 1, o->ref, -1, SQLITE_STATIC);
    if (!o->deleted) {
        StrBuf scratch = STRBUF_INIT;
        int col = 2;
        for (size_t i = 0; i < o->cls->nfields; i++)
            if (field_stored(o->cls, i))
                bind_value(st, col++, o->cls->fields[i].type, &o->fields[i], &scratch);
        strbuf_release(&scratch);
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        xs_error_internal(errp, "database write failed: %s", sqlite3_errmsg(db->sql));
        return false;
    }
    return true;
}

static XsValue *load_value(sqlite3_stmt *st, int col, const XsField *f)
{
    const XsType *t = f->type;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return xs_default_value(t, f->default_literal);
    switch (t->kind) {
    case XS_T_INT:
        return xv_int(sqlite3_column_int64(st, col));
    case XS_T_DATETIME:
        return xv_datetime(sqlite3_column_int64(st, col));
    case XS_T_BOOL:
        return xv_bool(sqlite3_column_int(st, col) != 0);
    case XS_T_FLOAT:
        return xv_float(sqlite3_column_double(st, col));
    case XS_T_SET:
    case XS_T_MAP:
    case XS_T_RECORD: {
        const char *text = (const char *)sqlite3_column_text(st, col);
        char *err = NULL;
        XsValue *raw = xv_from_json(text, strlen(text), &err);
        XsValue *v = raw ? xs_value_coerce(t, raw, f->name, NULL) : NULL;
        xv_free(raw);
        if (!v) {
            log_warn("field %s: stored value unreadable (%s); using the default", f->name,
                     err ? err : "type mismatch");
            v = xs_default_value(t, f->default_literal);
        }
        free(err);
        return v;
    }
    default:
        return xv_string((const char *)sqlite3_column_text(st, col));
    }
}

static bool load_class(Db *db, const XsClass *cls, XsError **errp)
{
    char *sql = xasprintf("SELECT * FROM \"%s\" ORDER BY rowid", cls->name);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL);
    free(sql);
    if (rc != SQLITE_OK) {
        xs_error_internal(errp, "database: %s", sqlite3_errmsg(db->sql));
        return false;
    }
    int ncol = sqlite3_column_count(st);
    int *colfield = xcalloc((size_t)ncol, sizeof(int));
    for (int c = 0; c < ncol; c++) {
        const char *name = sqlite3_column_name(st, c);
        int i = xs_field_index(cls, name);
        colfield[c] = i >= 0 && field_stored(cls, (size_t)i) ? i : -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ref = (const char *)sqlite3_column_text(st, 0);
        const char *uuid = NULL;
        for (int c = 0; c < ncol; c++)
            if (colfield[c] == 0)
                uuid = (const char *)sqlite3_column_text(st, c);
        if (!ref || !uuid || hashmap_get(&db->by_ref, ref)) {
            log_warn("database: skipping a malformed or duplicate %s row", cls->name);
            continue;
        }
        DbObj *o = obj_new(cls, ref, uuid);
        for (int c = 0; c < ncol; c++)
            if (colfield[c] > 0)
                xv_move_into(&o->fields[colfield[c]],
                             load_value(st, c, &cls->fields[colfield[c]]));
        index_add(db, o);
    }
    free(colfield);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        xs_error_internal(errp, "database read failed: %s", sqlite3_errmsg(db->sql));
        return false;
    }
    return true;
}

Db *db_open(const char *path, XsError **errp)
{
    Db *db = xnew0(Db, 1);
    pthread_rwlock_init(&db->lock, NULL);
    pthread_mutex_init(&db->gen_lock, NULL);
    pthread_mutex_init(&db->meta_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->gen_cond, &ca);
    pthread_condattr_destroy(&ca);
    db->gen = 1;

    if (sqlite3_open_v2(path, &db->sql,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        xs_error_internal(errp, "cannot open database %s: %s", path,
                          db->sql ? sqlite3_errmsg(db->sql) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(db->sql, 5000);
    if (!sql_exec(db, "PRAGMA journal_mode=WAL", errp) ||
        !sql_exec(db, "PRAGMA synchronous=NORMAL", errp) ||
        !sql_exec(db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
                  errp))
        goto fail;
    if (sqlite3_prepare_v3(db->sql, "SELECT value FROM meta WHERE key = ?", -1,
                           SQLITE_PREPARE_PERSISTENT, &db->meta_get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db->sql, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1,
                           SQLITE_PREPARE_PERSISTENT, &db->meta_set, NULL) != SQLITE_OK) {
        xs_error_internal(errp, "database: %s", sqlite3_errmsg(db->sql));
        goto fail;
    }

    /* Relations and derived slots. */
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        const XsClass *cls = xs_classes[c];
        ClassStore *cs = &db->cls[c];
        hashmap_init(&cs->by_uuid);
        cs->derived_slot = xcalloc(cls->nfields, sizeof(int));
        for (size_t i = 0; i < cls->nfields; i++) {
            const XsField *f = &cls->fields[i];
            cs->derived_slot[i] = -1;
            if (f->flags & XS_FIELD_DERIVED) {
                cs->derived_slot[i] = cs->nderived++;
                db->rels = xreallocarray(db->rels, db->nrels + 1, sizeof(Relation));
                db->rels[db->nrels++] =
                    (Relation){f->inverse_class, f->inverse_field, c, (int)i};
            }
        }
    }
    for (int c = 0; c < XS_CLASS__MAX; c++)
        if ((xs_classes[c]->flags & XS_CLASS_PERSIST) && !prepare_class(db, xs_classes[c], errp))
            goto fail;
    for (int c = 0; c < XS_CLASS__MAX; c++)
        if ((xs_classes[c]->flags & XS_CLASS_PERSIST) && !load_class(db, xs_classes[c], errp))
            goto fail;
    for (int c = 0; c < XS_CLASS__MAX; c++)
        for (size_t i = 0; i < db->cls[c].objs.n; i++)
            relink_all(db, NULL, db->cls[c].objs.items[i], true);
    return db;
fail:
    db_close(db);
    return NULL;
}

void db_close(Db *db)
{
    if (!db)
        return;
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        ClassStore *cs = &db->cls[c];
        for (size_t i = 0; i < cs->objs.n; i++)
            obj_free(db, cs->objs.items[i]);
        free(cs->objs.items);
        hashmap_release(&cs->by_uuid);
        free(cs->derived_slot);
        sqlite3_finalize(cs->upsert);
        sqlite3_finalize(cs->del);
    }
    for (size_t i = 0; i < db->ntombs; i++)
        free(db->tombs[i].ref);
    free(db->tombs);
    free(db->rels);
    hashmap_release(&db->by_ref);
    sqlite3_finalize(db->meta_get);
    sqlite3_finalize(db->meta_set);
    if (db->sql)
        sqlite3_close(db->sql);
    pthread_rwlock_destroy(&db->lock);
    pthread_mutex_destroy(&db->gen_lock);
    pthread_mutex_destroy(&db->meta_lock);
    pthread_cond_destroy(&db->gen_cond);
    free(db);
}

/* ---- reading ------------------------------------------------------------ */

void db_read_lock(Db *db)
{
    pthread_rwlock_rdlock(&db->lock);
}

void db_read_unlock(Db *db)
{
    pthread_rwlock_unlock(&db->lock);
}

DbObj *db_get(Db *db, const char *ref)
{
    return ref ? hashmap_get(&db->by_ref, ref) : NULL;
}

DbObj *db_get_class(Db *db, int cls, const char *ref)
{
    DbObj *o = db_get(db, ref);
    return o && o->cls->id == cls ? o : NULL;
}

DbObj *db_get_by_uuid(Db *db, int cls, const char *uuid)
{
    return uuid ? hashmap_get(&db->cls[cls].by_uuid, uuid) : NULL;
}

DbObj *const *db_list(Db *db, int cls, size_t *n)
{
    *n = db->cls[cls].objs.n;
    return db->cls[cls].objs.items;
}

const XsValue *db_field(const DbObj *obj, int field, XsValue *scratch)
{
    const XsField *f = &obj->cls->fields[field];
    if (!(f->flags & XS_FIELD_DERIVED))
        return &obj->fields[field];
    scratch->kind = XV_ARRAY;
    scratch->n = scratch->alloc = 0;
    scratch->items = NULL;
    XsValue *arr = xv_array();
    size_t n = db_backref_count(obj, field);
    for (size_t i = 0; i < n; i++)
        xv_array_push_string(arr, db_backref(obj, field, i)->ref);
    xv_move_into(scratch, arr);
    return scratch;
}

const char *db_str(const DbObj *obj, int field)
{
    const XsValue *v = &obj->fields[field];
    return v->kind == XV_STRING ? v->s : "";
}

int64_t db_int(const DbObj *obj, int field)
{
    const XsValue *v = &obj->fields[field];
    return v->kind == XV_INT || v->kind == XV_DATETIME ? v->i : 0;
}

bool db_bool(const DbObj *obj, int field)
{
    const XsValue *v = &obj->fields[field];
    return v->kind == XV_BOOL && v->b;
}

double db_float(const DbObj *obj, int field)
{
    const XsValue *v = &obj->fields[field];
    return v->kind == XV_FLOAT ? v->f : 0.0;
}

int db_enum(const DbObj *obj, int field)
{
    const XsType *t = obj->cls->fields[field].type;
    return t->kind == XS_T_ENUM ? xs_enum_index(t->enumt, db_str(obj, field)) : -1;
}

size_t db_backref_count(const DbObj *obj, int field)
{
    if (!obj->backrefs)
        return 0;
    /* The slot table lives in the Db; recompute it from the class. */
    int slot = 0;
    for (int i = 0; i < field; i++)
        if (obj->cls->fields[i].flags & XS_FIELD_DERIVED)
            slot++;
    return obj->backrefs->lists[slot].n;
}

DbObj *db_backref(const DbObj *obj, int field, size_t i)
{
    int slot = 0;
    for (int k = 0; k < field; k++)
        if (obj->cls->fields[k].flags & XS_FIELD_DERIVED)
            slot++;
    return obj->backrefs->lists[slot].items[i];
}

XsValue *db_record(const DbObj *obj)
{
    XsValue *r = xv_struct();
    for (size_t i = 0; i < obj->cls->nfields; i++) {
        const XsField *f = &obj->cls->fields[i];
        if (f->flags & XS_FIELD_HIDDEN)
            continue;
        XsValue scratch = {0};
        const XsValue *v = db_field(obj, (int)i, &scratch);
        xv_struct_set(r, f->name, xv_copy(v));
        xv_clear(&scratch);
    }
    return r;
}

/* ---- writing ------------------------------------------------------------ */

DbTxn *db_begin(Db *db)
{
    pthread_rwlock_wrlock(&db->lock);
    DbTxn *txn = xnew0(DbTxn, 1);
    txn->db = db;
    return txn;
}

Db *db_txn_db(DbTxn *txn)
{
    return txn->db;
}

static Undo *undo_push(DbTxn *txn, UndoKind kind, DbObj *obj)
{
    XGROW(txn->undo, txn->nundo + 1, txn->undo_alloc);
    Undo *u = &txn->undo[txn->nundo++];
    memset(u, 0, sizeof(*u));
    u->kind = kind;
    u->obj = obj;
    return u;
}

static void touch(DbTxn *txn, DbObj *obj)
{
    if (!list_contains(&txn->touched, obj))
        list_add(&txn->touched, obj);
}

DbObj *db_create(DbTxn *txn, int cls, const char *ref, const char *uuid, XsError **errp)
{
    Db *db = txn->db;
    char ubuf[UUID_STR_LEN];
    if (!uuid) {
        uuid_generate_str(ubuf);
        uuid = ubuf;
    }
    char *rbuf = NULL;
    if (!ref)
        ref = rbuf = xasprintf("OpaqueRef:%s", uuid);
    if (hashmap_get(&db->by_ref, ref) || hashmap_get(&db->cls[cls].by_uuid, uuid)) {
        xs_err_invalid_value(errp, "uuid", uuid);
        free(rbuf);
        return NULL;
    }
    DbObj *o = obj_new(xs_classes[cls], ref, uuid);
    free(rbuf);
    index_add(db, o);
    undo_push(txn, U_CREATE, o);
    rebuild_backrefs(db, o);
    relink_all(db, txn, o, true);
    touch(txn, o);
    return o;
}

void db_set(DbTxn *txn, DbObj *obj, int field, XsValue *v)
{
    Undo *u = undo_push(txn, U_SET, obj);
    u->field = field;
    u->old = obj->fields[field];
    obj->fields[field] = *v;
    free(v);
    if (field == 0) {
        hashmap_remove(&txn->db->cls[obj->cls->id].by_uuid, u->old.s);
        hashmap_put(&txn->db->cls[obj->cls->id].by_uuid, obj_uuid(obj), obj);
    }
    relink(txn->db, txn, obj, field, &u->old, &obj->fields[field]);
    touch(txn, obj);
}

void db_set_str(DbTxn *txn, DbObj *obj, int field, const char *s)
{
    db_set(txn, obj, field, xv_string(s));
}

void db_set_int(DbTxn *txn, DbObj *obj, int field, int64_t i)
{
    db_set(txn, obj, field, xv_int(i));
}

void db_set_bool(DbTxn *txn, DbObj *obj, int field, bool b)
{
    db_set(txn, obj, field, xv_bool(b));
}

void db_set_float(DbTxn *txn, DbObj *obj, int field, double f)
{
    db_set(txn, obj, field, xv_float(f));
}

void db_set_datetime(DbTxn *txn, DbObj *obj, int field, int64_t t)
{
    db_set(txn, obj, field, xv_datetime(t));
}

void db_set_enum(DbTxn *txn, DbObj *obj, int field, int value)
{
    db_set(txn, obj, field, xv_string(obj->cls->fields[field].type->enumt->values[value]));
}

void db_map_set(DbTxn *txn, DbObj *obj, int field, const char *key, const char *value)
{
    XsValue *m = xv_copy(&obj->fields[field]);
    xv_struct_set_string(m, key, value);
    db_set(txn, obj, field, m);
}

bool db_map_remove(DbTxn *txn, DbObj *obj, int field, const char *key)
{
    if (!xv_struct_get(&obj->fields[field], key))
        return false;
    XsValue *m = xv_copy(&obj->fields[field]);
    xv_struct_remove(m, key);
    db_set(txn, obj, field, m);
    return true;
}

void db_set_add(DbTxn *txn, DbObj *obj, int field, const char *value)
{
    if (xv_array_contains_string(&obj->fields[field], value))
        return;
    XsValue *a = xv_copy(&obj->fields[field]);
    xv_array_push_string(a, value);
    db_set(txn, obj, field, a);
}

bool db_set_remove(DbTxn *txn, DbObj *obj, int field, const char *value)
{
    if (!xv_array_contains_string(&obj->fields[field], value))
        return false;
    XsValue *a = xv_copy(&obj->fields[field]);
    xv_array_remove_string(a, value);
    db_set(txn, obj, field, a);
    return true;
}

void db_delete(DbTxn *txn, DbObj *obj)
{
    if (obj->deleted)
        return;
    relink_all(txn->db, txn, obj, false);
    index_remove(txn->db, obj);
    obj->deleted = true;
    undo_push(txn, U_DELETE, obj);
    touch(txn, obj);
}

void db_touch(DbTxn *txn, DbObj *obj)
{
    mark_evonly(txn, obj);
}

static void txn_free(DbTxn *txn)
{
    free(txn->undo);
    free(txn->touched.items);
    free(txn->evonly.items);
    free(txn);
}

static void rollback(DbTxn *txn)
{
    Db *db = txn->db;
    for (size_t k = txn->nundo; k-- > 0;) {
        Undo *u = &txn->undo[k];
        DbObj *o = u->obj;
        switch (u->kind) {
        case U_SET: {
            XsValue cur = o->fields[u->field];
            relink(db, NULL, o, u->field, &cur, &u->old);
            if (u->field == 0) {
                hashmap_remove(&db->cls[o->cls->id].by_uuid, cur.s);
                o->fields[0] = u->old;
                hashmap_put(&db->cls[o->cls->id].by_uuid, obj_uuid(o), o);
            } else {
                o->fields[u->field] = u->old;
            }
            xv_clear(&cur);
            u->old.kind = XV_NULL;
            break;
        }
        case U_CREATE:
            relink_all(db, NULL, o, false);
            index_remove(db, o);
            obj_free(db, o);
            break;
        case U_DELETE:
            o->deleted = false;
            index_add(db, o);
            rebuild_backrefs(db, o);
            relink_all(db, NULL, o, true);
            break;
        }
    }
}

static void add_tombstone(Db *db, DbObj *o, uint64_t gen)
{
    if (db->ntombs == MAX_TOMBSTONES) {
        free(db->tombs[0].ref);
        memmove(&db->tombs[0], &db->tombs[1], (db->ntombs - 1) * sizeof(Tombstone));
        db->ntombs--;
    }
    XGROW(db->tombs, db->ntombs + 1, db->tomb_alloc);
    db->tombs[db->ntombs++] = (Tombstone){o->cls->id, xstrdup(o->ref), gen};
}

bool db_commit(DbTxn *txn, XsError **errp)
{
    Db *db = txn->db;
    bool ok = true;
    bool need_sql = false;
    for (size_t i = 0; i < txn->touched.n; i++)
        if (txn->touched.items[i]->cls->flags & XS_CLASS_PERSIST)
            need_sql = true;

    if (need_sql) {
        XsError *err = NULL;
        ok = sql_exec(db, "BEGIN IMMEDIATE", &err);
        for (size_t i = 0; ok && i < txn->touched.n; i++) {
            DbObj *o = txn->touched.items[i];
            /* created and deleted in the same transaction: nothing to write */
            bool created = false;
            for (size_t k = 0; k < txn->nundo; k++)
                if (txn->undo[k].kind == U_CREATE && txn->undo[k].obj == o)
                    created = true;
            if (o->deleted && created)
                continue;
            ok = persist_obj(db, o, &err);
        }
        if (ok && db->fail_next_commit) {
            db->fail_next_commit = false;
            xs_error_internal(&err, "database write failed: injected failure");
            ok = false;
        }
        if (ok)
            ok = sql_exec(db, "COMMIT", &err);
        if (!ok) {
            sql_exec(db, "ROLLBACK", NULL);
            xs_error_propagate(errp, err);
        }
    }

    if (!ok) {
        rollback(txn);
        pthread_rwlock_unlock(&db->lock);
        txn_free(txn);
        return false;
    }

    pthread_mutex_lock(&db->gen_lock);
    uint64_t gen = ++db->gen;
    pthread_mutex_unlock(&db->gen_lock);

    for (size_t k = 0; k < txn->nundo; k++) {
        Undo *u = &txn->undo[k];
        if (u->kind == U_SET)
            xv_clear(&u->old);
        else if (u->kind == U_CREATE)
            u->obj->created_gen = gen;
    }
    for (size_t i = 0; i < txn->evonly.n; i++)
        txn->evonly.items[i]->gen = gen;
    for (size_t i = 0; i < txn->touched.n; i++) {
        DbObj *o = txn->touched.items[i];
        o->gen = gen;
    }
    /* Free deleted objects last: evonly may list them. */
    for (size_t i = 0; i < txn->touched.n; i++) {
        DbObj *o = txn->touched.items[i];
        if (o->deleted) {
            add_tombstone(db, o, gen);
            obj_free(db, o);
        }
    }
    pthread_rwlock_unlock(&db->lock);

    pthread_mutex_lock(&db->gen_lock);
    pthread_cond_broadcast(&db->gen_cond);
    pthread_mutex_unlock(&db->gen_lock);
    txn_free(txn);
    return true;
}

void db_abort(DbTxn *txn)
{
    rollback(txn);
    pthread_rwlock_unlock(&txn->db->lock);
    txn_free(txn);
}

void db_set_volatile(Db *db, const char *ref, int field, XsValue *v)
{
    pthread_rwlock_wrlock(&db->lock);
    DbObj *o = db_get(db, ref);
    if (o)
        xv_move_into(&o->fields[field], v);
    else
        xv_free(v);
    pthread_rwlock_unlock(&db->lock);
}

/* ---- metadata ----------------------------------------------------------- */

char *db_meta_get(Db *db, const char *key)
{
    char *r = NULL;
    pthread_mutex_lock(&db->meta_lock);
    sqlite3_reset(db->meta_get);
    sqlite3_bind_text(db->meta_get, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(db->meta_get) == SQLITE_ROW)
        r = xstrdup((const char *)sqlite3_column_text(db->meta_get, 0));
    sqlite3_reset(db->meta_get);
    pthread_mutex_unlock(&db->meta_lock);
    return r;
}

bool db_meta_set(Db *db, const char *key, const char *value, XsError **errp)
{
    pthread_mutex_lock(&db->meta_lock);
    sqlite3_reset(db->meta_set);
    sqlite3_bind_text(db->meta_set, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(db->meta_set, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(db->meta_set);
    sqlite3_reset(db->meta_set);
    pthread_mutex_unlock(&db->meta_lock);
    if (rc != SQLITE_DONE) {
        xs_error_internal(errp, "database write failed: %s", sqlite3_errmsg(db->sql));
        return false;
    }
    return true;
}

/* ---- events ------------------------------------------------------------- */

uint64_t db_generation(Db *db)
{
    pthread_mutex_lock(&db->gen_lock);
    uint64_t g = db->gen;
    pthread_mutex_unlock(&db->gen_lock);
    return g;
}

uint64_t db_wait_generation(Db *db, uint64_t since, double timeout)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout > 0) {
        if (timeout > 86400.0 * 365)
            timeout = 86400.0 * 365;
        deadline.tv_sec += (time_t)timeout;
        deadline.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&db->gen_lock);
    while (db->gen <= since && timeout > 0) {
        if (pthread_cond_timedwait(&db->gen_cond, &db->gen_lock, &deadline) == ETIMEDOUT)
            break;
    }
    uint64_t g = db->gen;
    pthread_mutex_unlock(&db->gen_lock);
    return g;
}

typedef struct Change {
    DbChangeKind kind;
    int cls;
    const char *ref;
    const DbObj *obj;
    uint64_t gen;
} Change;

static int change_cmp(const void *a, const void *b)
{
    const Change *x = a, *y = b;
    return x->gen < y->gen ? -1 : x->gen > y->gen;
}

void db_changes_since(Db *db, uint64_t since, uint64_t mask, DbChangeFn fn, void *ctx)
{
    Change *ch = NULL;
    size_t n = 0, alloc = 0;
    for (int c = 0; c < XS_CLASS__MAX; c++) {
        if (mask && !(mask & (1ULL << c)))
            continue;
        ClassStore *cs = &db->cls[c];
        for (size_t i = 0; i < cs->objs.n; i++) {
            DbObj *o = cs->objs.items[i];
            if (o->gen <= since)
                continue;
            XGROW(ch, n + 1, alloc);
            ch[n++] = (Change){o->created_gen > since ? DB_CHANGE_ADD : DB_CHANGE_MOD, c, o->ref,
                               o, o->gen};
        }
    }
    for (size_t i = 0; i < db->ntombs; i++) {
        Tombstone *t = &db->tombs[i];
        if (t->gen <= since || (mask && !(mask & (1ULL << t->cls))))
            continue;
        XGROW(ch, n + 1, alloc);
        ch[n++] = (Change){DB_CHANGE_DEL, t->cls, t->ref, NULL, t->gen};
    }
    qsort(ch, n, sizeof(Change), change_cmp);
    for (size_t i = 0; i < n; i++)
        fn(ctx, ch[i].kind, ch[i].cls, ch[i].ref, ch[i].obj, ch[i].gen);
    free(ch);
}

void db_inject_commit_failure(Db *db)
{
    db->fail_next_commit = true;
}
