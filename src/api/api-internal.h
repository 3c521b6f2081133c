/*
 * Declarations shared by the files of the API layer only.
 */
#ifndef HX_API_API_INTERNAL_H
#define HX_API_API_INTERNAL_H

#include "api/api.h"
#include "db/db.h"
#include "model/wire.h"

/* Writes a whole record / one field of o (derived fields included). */
void api_write_record(XvWriter *w, const DbObj *o);
void api_write_field(XvWriter *w, const DbObj *o, int field);

/* Generated (dispatch-gen.c): route class hooks to their ops functions. */
bool api_custom_setter(OpsCtx *ctx, const XsClass *cls, int field, const char *self,
                       const XsValue *value, XsError **errp);
bool api_create_hook(OpsCtx *ctx, const XsClass *cls, const XsValue *args, char **ret,
                     XsError **errp);
bool api_destroy_hook(OpsCtx *ctx, const XsClass *cls, const char *self, XsError **errp);
bool api_check_set_hook(OpsCtx *ctx, const XsClass *cls, DbTxn *txn, DbObj *obj, int field,
                        XsError **errp);

/* Counts running Async calls; begin fails when too many are pending. */
bool api_async_begin(Api *api);
void api_async_done(Api *api);


#include <pthread.h>
#include <time.h>
#include "util/hashmap.h"

typedef struct Session {
    char *ref;
    char *user;
    XsRole role;
    bool local_superuser;
    char *originator;
    time_t last_active;    /* CLOCK_MONOTONIC seconds */
    time_t last_db_update; /* when session.last_active was last written */
    time_t created;
    /* event.register / event.next */
    XsValue *subscriptions; /* XV_ARRAY of strings */
    uint64_t event_token;
} Session;

typedef struct LoginFailures {
    char *addr;
    int count;
    time_t window_start;
    time_t blocked_until;
    int blocks;
} LoginFailures;

struct Api {
    HxEnv *env;
    pthread_mutex_t lock; /* sessions, failures, async count */
    HashMap sessions;
    HashMap failures;
    int session_timeout;
    int async_running;
};

time_t api_now_mono(void);

#endif
