/*
 * The semantics layer: one file per XenAPI class (vm.c, vdi.c, sr.c, ...)
 * implements the messages declared in schema/ (ops-gen.h lists their
 * prototypes). An ops function gets an OpsCtx that says who is calling and,
 * for asynchronous calls, which task reports its progress. It reads and
 * writes the database and drives the subsystems below (storage, vmm, net);
 * it never sees HTTP or the wire encoding.
 *
 * Adding a XenAPI message:
 *   1. declare it in schema/<Class>.py (parameters, result, role);
 *   2. implement ops_<class>_<message>() in src/ops/<class>.c;
 *   3. if it touches VMs, make it work on the simulated VMM too;
 *   4. add a unit test, a wire fixture, an xe golden output and an
 *      integration case.
 */
#ifndef HX_OPS_OPS_H
#define HX_OPS_OPS_H

#include <stdbool.h>

#include "db/db.h"
#include "ops-gen.h"

typedef struct OpsRuntime OpsRuntime;

typedef struct HxEnv {
    Db *db;
    char *state_dir;
    char *run_dir;
    char *host_ref; /* this host */
    char *pool_ref;
    char *accel;    /* "kvm" or "tcg" */
    char *hostname;
    /* VIFs use QEMU user-mode networking and no bridge, tap, NAT or dnsmasq is
     * made (hyperxed --user-networking, or when bridges cannot be made). */
    bool user_networking;
    char *user_networking_reason;
    /* Running VMs and everything the ops layer keeps between calls
     * (vm_runtime.c); made by ops_startup, freed by ops_shutdown. */
    OpsRuntime *rt;
} HxEnv;

struct OpsCtx {
    HxEnv *env;
    Db *db;
    const char *session;
    const char *task; /* NULL for synchronous calls */
    XsRole role;
    const char *user;
    /* Opaque to ops: the API layer's own state for this call. */
    void *api;
    const void *peer;
};

/* Reports progress (0..1) on the call's task, if any; rate-limited. */
void ops_progress(OpsCtx *ctx, double fraction);
/* True once someone asked to cancel the call's task. */
bool ops_cancelled(OpsCtx *ctx);

/* UUID of any object, for error parameters; "" if unknown. Caller frees. */
char *ops_uuid_of(OpsCtx *ctx, const char *ref);


/*
 * Creates an object of cls from a XenAPI create record (constructor and
 * read-write fields; fields without a datamodel default are required). The
 * optional fixup runs inside the transaction before the commit and may
 * refuse. Returns the new ref.
 */
typedef bool (*OpsCreateFixup)(OpsCtx *ctx, DbTxn *txn, DbObj *obj, XsError **errp);
bool ops_create_from_record(OpsCtx *ctx, const XsClass *cls, const XsValue *args,
                            OpsCreateFixup fixup, char **ret, XsError **errp);

/* "halted", "running", ... as VM_BAD_POWER_STATE reports power states. */
const char *ops_power_state_lower(int state);

/*
 * Operations in progress (oplock.c). ops_op_begin refuses with
 * OTHER_OPERATION_IN_PROGRESS when the object is busy, else records op in
 * its current_operations under a token (the task, or a fresh ref) that
 * ops_op_end removes. The _ref forms run their own transaction.
 */
bool ops_op_begin(OpsCtx *ctx, DbTxn *txn, DbObj *obj, const char *op, char **token,
                  XsError **errp);
bool ops_op_begin_ref(OpsCtx *ctx, int cls, const char *ref, const char *op, char **token,
                      XsError **errp);
void ops_op_end_txn(DbTxn *txn, DbObj *obj, const char *token);
void ops_op_end(OpsCtx *ctx, int cls, const char *ref, const char *token);
/* At start: nothing is running any more. */
void ops_clear_stale_operations(Db *db);

/* Recomputes obj's allowed_operations, for classes that keep them. */
void ops_update_allowed(DbTxn *txn, DbObj *obj);
typedef struct OpsAllowedUpdater {
    int cls;
    void (*fn)(DbTxn *txn, DbObj *obj);
} OpsAllowedUpdater;
/* One entry per class that maintains allowed_operations (startup.c). */
extern const OpsAllowedUpdater ops_allowed_updaters[];
extern const size_t ops_allowed_updaters_count;

/*
 * Start and stop of the subsystems (startup.c): called by the daemon once
 * the database is open and the host's objects exist, and before it exits.
 */
bool ops_startup(HxEnv *env, XsError **errp);
void ops_shutdown(HxEnv *env);

#endif
