/*
 * The per-VM guest-agent session (see guest_agent.h): a poller thread per
 * running QEMU, the VM_guest_metrics record it keeps, and the borrowing of
 * the agent channel by the other users.
 *
 * A poll: QEMU says whether a guest program holds its end of the channel
 * (query-chardev, frontend-open); if so the session connects, synchronises
 * (guest-sync-delimited) and asks guest-info, guest-get-osinfo,
 * guest-network-get-interfaces, the memory (hyperxe-get-memory, else the
 * balloon's statistics over QMP) and guest-get-fsinfo, then disconnects. A
 * command the agent does not have (CommandNotFound, or an error) leaves its
 * part empty; garbage, a reply over the client's bound, silence or a closed
 * channel abort the poll, and two such polls in a row make the record not
 * live. Whether the guest drives its virtio disks and NICs (XenServer's PV
 * drivers) and its balloon comes from QMP (x-query-virtio-status).
 *
 * The database is written only when something changed (the free memory
 * only when it moved by more than 1 MiB, or after a minute), in one short
 * transaction; allowed_operations follow the agent's features.
 *
 * Locks: rt->mu guards rt->agent (the pointer), a->mu the session's state;
 * rt->mu may be taken before a->mu, never the other way round. The poller
 * takes no VM lock and never blocks without a deadline.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "ops/guest_agent.h"
#include "ops/guest_metrics.h"
#include "ops/vm.h"
#include "ops/vmrt.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/vmm.h"
#include "util/banned.h"

#define POLL_BOOT_MS      250   /* looking for the agent in the first minutes after start */
#define POLL_FAST_MS      1000  /* still no agent; or no IPv4 yet */
#define POLL_MS           5000  /* then */
#define POLL_IDLE_MS      10000 /* no agent for a long time */
#define FAST_IP_WINDOW_MS 120000
#define BOOT_WINDOW_MS    120000 /* POLL_BOOT_MS for this long after start */
#define NO_AGENT_FAST_MS  600000 /* then POLL_FAST_MS for this long */
#define SYNC_MS           2000
#define CMD_MS            3000
#define QMP_MS            2000
#define MEMORY_REFRESH_MS 60000
#define FAILURES_NOT_LIVE 2
#define AGENT_MAX_LINE    (512u * 1024)
/* Where QEMU puts virtio disks (docs/vmm.md, "Fixed PCI slots"): slot 8 + position. */
#define VIRTIO_DISK_SLOT0 8
#define BALLOON_PATH      "/machine/peripheral/balloon0"

typedef struct GuestAgent {
    HxEnv *env;
    Vmm *vmm;
    char *ref;
    char uuid[VMM_UUID_LEN + 1];
    char *sock;
    pthread_t thread;

    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cond;
    bool stop;
    bool kick;
    bool busy;   /* the channel is borrowed (by the poller or a user) */
    int waiters; /* users waiting to borrow it */
    bool live;   /* the last poll got answers */
    bool recorded_live;
    bool ever; /* the agent answered once in this session */
    bool have_ip;
    int failures;
    int64_t started_ms;
    int64_t first_answer_ms;
    int64_t poll_ms; /* POLL_MS, or $HX_AGENT_POLL_MS (tests) */
    /* the poller's own (no lock needed: only the poller uses them) */
    bool balloon_polling;
    bool pv_io;
    bool balloon_driver;
    unsigned polls;
    XsValue *last_memory;
    int64_t last_memory_ms;
    char last_error[256];
} GuestAgent;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_ts(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- QEMU's side ------------------------------------------------------------------- */

/* True if a guest program holds the guest end of the agent channel. */
static bool channel_open(Vmm *vmm)
{
    struct json_object *ret = NULL;
    if (vmm_qmp(vmm, "query-chardev", NULL, QMP_MS, &ret, NULL) < 0)
        return false;
    bool open = false;
    size_t n = json_object_is_type(ret, json_type_array) ? json_object_array_length(ret) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(ret, i), *v;
        if (json_object_object_get_ex(c, "label", &v) && json_object_is_type(v, json_type_string) &&
            strcmp(json_object_get_string(v), "charqga0") == 0 &&
            json_object_object_get_ex(c, "frontend-open", &v))
            open = json_object_get_boolean(v);
    }
    json_object_put(ret);
    return open;
}

/* True if the guest's driver of the virtio device with QOM id `id` is up. */
static bool virtio_driver_ok(Vmm *vmm, const char *id)
{
    _cleanup_free_ char *path = xasprintf("/machine/peripheral/%s/virtio-backend", id);
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "path", json_object_new_string(path));
    struct json_object *ret = NULL;
    int r = vmm_qmp(vmm, "x-query-virtio-status", args, QMP_MS, &ret, NULL);
    json_object_put(args);
    if (r < 0)
        return false;
    bool ok = false;
    struct json_object *st, *list;
    if (json_object_object_get_ex(ret, "status", &st) &&
        json_object_object_get_ex(st, "statuses", &list) &&
        json_object_is_type(list, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            const char *s = json_object_get_string(json_object_array_get_idx(list, i));
            if (s && strncmp(s, "VIRTIO_CONFIG_S_DRIVER_OK", 25) == 0)
                ok = true;
        }
    }
    json_object_put(ret);
    return ok;
}

/* The balloon's guest statistics (QMP qom-get guest-stats), asking QEMU to collect
 * them first; NULL if there is no balloon or no statistics yet. */
static struct json_object *balloon_stats(GuestAgent *a)
{
    if (!a->balloon_polling) {
        struct json_object *args = json_object_new_object();
        json_object_object_add(args, "path", json_object_new_string(BALLOON_PATH));
        json_object_object_add(args, "property",
                               json_object_new_string("guest-stats-polling-interval"));
        json_object_object_add(args, "value", json_object_new_int(2));
        int r = vmm_qmp(a->vmm, "qom-set", args, QMP_MS, NULL, NULL);
        json_object_put(args);
        if (r < 0)
            return NULL;
        a->balloon_polling = true;
    }
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "path", json_object_new_string(BALLOON_PATH));
    json_object_object_add(args, "property", json_object_new_string("guest-stats"));
    struct json_object *ret = NULL;
    int r = vmm_qmp(a->vmm, "qom-get", args, QMP_MS, &ret, NULL);
    json_object_put(args);
    if (r < 0 || !json_object_is_type(ret, json_type_object)) {
        json_object_put(ret);
        return NULL;
    }
    return ret;
}

/* What the guest drives: virtio disks and NICs (PV drivers), the balloon. Checked at
 * every poll until seen (DRIVER_OK stays until the guest resets), then now and then. */
static void check_drivers(GuestAgent *a, const VmmConfig *cfg)
{
    bool recheck = a->polls % 12 == 0;
    if (!a->pv_io || recheck) {
        bool any = false;
        for (size_t i = 0; i < cfg->n_disks && !any; i++) {
            if (cfg->disks[i].bus != VMM_BUS_VIRTIO || cfg->disks[i].type == VMM_DISK_TYPE_CDROM)
                continue;
            char id[16];
            snprintf(id, sizeof(id), "disk%u", cfg->disks[i].position);
            any = virtio_driver_ok(a->vmm, id);
        }
        for (size_t i = 0; i < cfg->n_nics && !any; i++) {
            if (cfg->nics[i].model != VMM_NIC_MODEL_VIRTIO)
                continue;
            char id[16];
            snprintf(id, sizeof(id), "nic%u", cfg->nics[i].position);
            any = virtio_driver_ok(a->vmm, id);
        }
        a->pv_io = any;
    }
    if (cfg->balloon && (!a->balloon_driver || recheck))
        a->balloon_driver = virtio_driver_ok(a->vmm, "balloon0");
}

/* ---- the database ------------------------------------------------------------------- */

static bool set_if_changed(DbTxn *txn, DbObj *gm, int field, const XsValue *v)
{
    if (xv_equal(&gm->fields[field], v))
        return false;
    db_set(txn, gm, field, xv_copy(v));
    return true;
}

static void log_first_update(GuestAgent *a, const GmFields *f)
{
    StrBuf sb = STRBUF_INIT;
    const XsValue *maps[] = {f->os_version, f->pv_drivers_version, f->networks};
    const char *names[] = {"os_version", "PV_drivers_version", "networks"};
    for (size_t m = 0; m < ARRAY_SIZE(maps); m++) {
        strbuf_addf(&sb, "%s%s = [", m ? "; " : "", names[m]);
        for (size_t i = 0; i < maps[m]->n; i++)
            strbuf_addf(&sb, "%s%s: %s", i ? ", " : " ", xv_struct_key(maps[m], i),
                        xv_struct_val(maps[m], i)->kind == XV_STRING ? xv_struct_val(maps[m], i)->s
                                                                     : "?");
        strbuf_adds(&sb, " ]");
    }
    log_info("VM %s: first answer of its guest agent; %s", a->uuid, sb.buf);
    strbuf_release(&sb);
}

/* Records what a poll found (live), in one transaction when something changed. */
static void record_fields(GuestAgent *a, const GmFields *f)
{
    Db *db = a->env->db;
    DbTxn *txn = db_begin(db);
    DbObj *vm = db_get_class(db, XS_CLASS_VM, a->ref);
    if (!vm) {
        db_abort(txn);
        return;
    }
    DbObj *gm = db_get_class(db, XS_CLASS_VM_GUEST_METRICS, db_str(vm, F_VM_GUEST_METRICS));
    bool created = false;
    if (!gm) {
        gm = db_create(txn, XS_CLASS_VM_GUEST_METRICS, NULL, NULL, NULL);
        if (!gm) {
            db_abort(txn);
            return;
        }
        db_set_str(txn, vm, F_VM_GUEST_METRICS, gm->ref);
        created = true;
    }
    bool changed = created;
    changed |= set_if_changed(txn, gm, F_VM_GUEST_METRICS_OS_VERSION, f->os_version);
    changed |=
        set_if_changed(txn, gm, F_VM_GUEST_METRICS_PV_DRIVERS_VERSION, f->pv_drivers_version);
    changed |= set_if_changed(txn, gm, F_VM_GUEST_METRICS_NETWORKS, f->networks);
    changed |= set_if_changed(txn, gm, F_VM_GUEST_METRICS_DISKS, f->disks);
    bool other = set_if_changed(txn, gm, F_VM_GUEST_METRICS_OTHER, f->other);
    changed |= other;
    int64_t now = now_ms();
    const XsValue *mem = &gm->fields[F_VM_GUEST_METRICS_MEMORY];
    if (!xv_equal(mem, f->memory) && (guest_metrics_memory_changed(mem, f->memory) ||
                                      now - a->last_memory_ms >= MEMORY_REFRESH_MS)) {
        db_set(txn, gm, F_VM_GUEST_METRICS_MEMORY, xv_copy(f->memory));
        a->last_memory_ms = now;
        changed = true;
    }
    bool live_change = !db_bool(gm, F_VM_GUEST_METRICS_LIVE);
    if (live_change)
        db_set_bool(txn, gm, F_VM_GUEST_METRICS_LIVE, true);
    if (db_bool(gm, F_VM_GUEST_METRICS_PV_DRIVERS_DETECTED) != f->pv_drivers_detected) {
        db_set_bool(txn, gm, F_VM_GUEST_METRICS_PV_DRIVERS_DETECTED, f->pv_drivers_detected);
        db_set_bool(txn, gm, F_VM_GUEST_METRICS_PV_DRIVERS_UP_TO_DATE, f->pv_drivers_detected);
        int tri = f->pv_drivers_detected ? TRISTATE_TYPE_YES : TRISTATE_TYPE_UNSPECIFIED;
        db_set_enum(txn, gm, F_VM_GUEST_METRICS_CAN_USE_HOTPLUG_VBD, tri);
        db_set_enum(txn, gm, F_VM_GUEST_METRICS_CAN_USE_HOTPLUG_VIF, tri);
        changed = true;
    }
    if (!(changed || live_change)) {
        db_abort(txn);
        return;
    }
    db_set_datetime(txn, gm, F_VM_GUEST_METRICS_LAST_UPDATED, (int64_t)time(NULL));
    if (other || live_change || created)
        ops_vm_update_allowed(txn, vm);
    XsError *e = NULL;
    if (!db_commit(txn, &e)) {
        log_warn("VM %s: cannot record its guest metrics", a->uuid);
        xs_error_free(e);
        return;
    }
    if (created || live_change)
        log_first_update(a, f);
}

/* Marks the VM's guest metrics not live (if they exist and say live). */
static void record_not_live(Db *db, const char *vm_ref)
{
    DbTxn *txn = db_begin(db);
    DbObj *vm = db_get_class(db, XS_CLASS_VM, vm_ref);
    DbObj *gm =
        vm ? db_get_class(db, XS_CLASS_VM_GUEST_METRICS, db_str(vm, F_VM_GUEST_METRICS)) : NULL;
    if (!gm || !db_bool(gm, F_VM_GUEST_METRICS_LIVE)) {
        db_abort(txn);
        return;
    }
    db_set_bool(txn, gm, F_VM_GUEST_METRICS_LIVE, false);
    db_set_datetime(txn, gm, F_VM_GUEST_METRICS_LAST_UPDATED, (int64_t)time(NULL));
    ops_vm_update_allowed(txn, vm);
    db_commit(txn, NULL);
}

void guest_agent_startup(HxEnv *env)
{
    DbTxn *txn = db_begin(env->db);
    size_t n;
    DbObj *const *vms = db_list(env->db, XS_CLASS_VM, &n);
    int fixed = 0;
    for (size_t i = 0; i < n; i++) {
        int ps = db_enum(vms[i], F_VM_POWER_STATE);
        if (ps == VM_POWER_STATE_RUNNING || ps == VM_POWER_STATE_PAUSED)
            continue;
        DbObj *gm =
            db_get_class(env->db, XS_CLASS_VM_GUEST_METRICS, db_str(vms[i], F_VM_GUEST_METRICS));
        if (gm && db_bool(gm, F_VM_GUEST_METRICS_LIVE)) {
            db_set_bool(txn, gm, F_VM_GUEST_METRICS_LIVE, false);
            fixed++;
        }
    }
    if (fixed)
        db_commit(txn, NULL);
    else
        db_abort(txn);
}

/* ---- a poll ------------------------------------------------------------------------- */

static bool stop_or_yield(GuestAgent *a)
{
    pthread_mutex_lock(&a->mu);
    bool s = a->stop || a->waiters > 0;
    pthread_mutex_unlock(&a->mu);
    return s;
}

/* A command whose absence is no failure: 0 with *ret (or NULL when the agent has
 * no such command or refused it); <0 when the agent misbehaved. */
static int optional_cmd(QgaClient *c, const char *cmd, json_type want, struct json_object **ret,
                        char **err)
{
    *ret = NULL;
    struct json_object *v = NULL;
    char *e = NULL;
    int r = qga_execute(c, cmd, NULL, CMD_MS, &v, &e);
    if (r == -ENOSYS || r == -EIO) {
        free(e);
        return 0;
    }
    if (r < 0) {
        free(*err);
        *err = e;
        return r;
    }
    free(e);
    if (!json_object_is_type(v, want)) {
        json_object_put(v);
        free(*err);
        *err = xasprintf("guest agent: %s returned the wrong type", cmd);
        return -EPROTO;
    }
    *ret = v;
    return 0;
}

typedef enum {
    POLL_OK,
    POLL_NO_AGENT,  /* nothing holds the guest end of the channel */
    POLL_FAILED,    /* the agent misbehaved or stayed silent */
    POLL_ABANDONED, /* a user wants the channel, or the session ends */
} PollResult;

static PollResult poll_once(GuestAgent *a)
{
    if (!channel_open(a->vmm)) {
        snprintf(a->last_error, sizeof(a->last_error), "no agent holds the channel");
        return POLL_NO_AGENT;
    }
    QgaClient *c = NULL;
    char *err = NULL;
    PollResult res = POLL_FAILED;
    GmFacts f = {0};
    VmmConfig cfg;
    bool have_cfg = false;
    if (qga_connect(a->sock, &c, &err) < 0)
        goto out;
    qga_set_max_line(c, AGENT_MAX_LINE);
    if (qga_sync(c, SYNC_MS, &err) < 0 || qga_info(c, CMD_MS, &f.info, &err) < 0)
        goto out;
    if (stop_or_yield(a)) {
        res = POLL_ABANDONED;
        goto out;
    }
    if (optional_cmd(c, "guest-get-osinfo", json_type_object, &f.osinfo, &err) < 0 ||
        optional_cmd(c, "guest-network-get-interfaces", json_type_array, &f.interfaces, &err) < 0)
        goto out;
    if (stop_or_yield(a)) {
        res = POLL_ABANDONED;
        goto out;
    }
    if (guest_metrics_has_command(f.info, "hyperxe-get-memory") &&
        optional_cmd(c, "hyperxe-get-memory", json_type_object, &f.memory, &err) < 0)
        goto out;
    if (optional_cmd(c, "guest-get-fsinfo", json_type_array, &f.fsinfo, &err) < 0)
        goto out;
    qga_close(c);
    c = NULL;
    vmm_get_config(a->vmm, &cfg);
    have_cfg = true;
    if (!f.memory && cfg.balloon)
        f.balloon = balloon_stats(a);
    check_drivers(a, &cfg);
    f.pv_io = a->pv_io;
    f.balloon_driver = a->balloon_driver;
    a->polls++;

    GmVif *vifs = xcalloc(cfg.n_nics + 1, sizeof(GmVif));
    char(*devs)[8] = xcalloc(cfg.n_nics + 1, sizeof(*devs));
    for (size_t i = 0; i < cfg.n_nics; i++) {
        snprintf(devs[i], sizeof(devs[i]), "%u", cfg.nics[i].position);
        vifs[i] = (GmVif){cfg.nics[i].mac, devs[i]};
    }
    GmDisk *disks = xcalloc(cfg.n_disks + 1, sizeof(GmDisk));
    for (size_t i = 0; i < cfg.n_disks; i++) {
        const VmmDisk *d = &cfg.disks[i];
        disks[i].bus = d->bus == VMM_BUS_VIRTIO ? "virtio" : d->bus == VMM_BUS_IDE ? "ide" : "scsi";
        disks[i].position = d->position;
        disks[i].pci_slot = d->bus == VMM_BUS_VIRTIO ? VIRTIO_DISK_SLOT0 + (int)d->position : -1;
    }
    GmFields fields;
    guest_metrics_build(&f, vifs, cfg.n_nics, disks, cfg.n_disks, &fields);
    free(vifs);
    free(devs);
    free(disks);
    record_fields(a, &fields);
    bool ip = guest_metrics_first_ip(fields.networks) != NULL;
    guest_metrics_release(&fields);
    pthread_mutex_lock(&a->mu);
    a->have_ip = ip;
    pthread_mutex_unlock(&a->mu);
    res = POLL_OK;
out:
    if (res == POLL_FAILED)
        snprintf(a->last_error, sizeof(a->last_error), "%s", err ? err : "no answer");
    if (c)
        qga_close(c);
    if (have_cfg)
        vmm_config_release(&cfg);
    free(err);
    json_object_put(f.info);
    json_object_put(f.osinfo);
    json_object_put(f.interfaces);
    json_object_put(f.fsinfo);
    json_object_put(f.memory);
    json_object_put(f.balloon);
    return res;
}

/* After a poll: the state, and the record when the agent stopped answering. */
static void poll_done(GuestAgent *a, PollResult r)
{
    bool not_live = false;
    pthread_mutex_lock(&a->mu);
    switch (r) {
    case POLL_OK:
        if (!a->ever)
            a->first_answer_ms = now_ms();
        a->ever = a->live = a->recorded_live = true;
        a->failures = 0;
        break;
    case POLL_NO_AGENT:
        not_live = a->recorded_live;
        a->live = a->recorded_live = false;
        break;
    case POLL_FAILED:
        a->failures++;
        if (a->failures == FAILURES_NOT_LIVE)
            log_info("VM %s: its guest agent does not answer (%s)", a->uuid, a->last_error);
        if (a->failures >= FAILURES_NOT_LIVE) {
            not_live = a->recorded_live;
            a->live = a->recorded_live = false;
        }
        break;
    case POLL_ABANDONED:
        break;
    }
    pthread_mutex_unlock(&a->mu);
    if (not_live)
        record_not_live(a->env->db, a->ref);
}

static int64_t next_delay(GuestAgent *a)
{
    int64_t now = now_ms();
    if (a->kick)
        return 0;
    int64_t fast = MIN(POLL_FAST_MS, a->poll_ms);
    if (!a->ever) {
        int64_t up = now - a->started_ms;
        return up < BOOT_WINDOW_MS     ? MIN(POLL_BOOT_MS, a->poll_ms)
               : up < NO_AGENT_FAST_MS ? fast
                                       : MAX(POLL_IDLE_MS, a->poll_ms);
    }
    if (!a->have_ip && now - a->first_answer_ms < FAST_IP_WINDOW_MS)
        return MIN(POLL_FAST_MS / 2, a->poll_ms);
    return a->poll_ms;
}

static void *agent_main(void *arg)
{
    GuestAgent *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        int64_t delay = next_delay(a);
        if (delay > 0) {
            struct timespec ts;
            deadline_ts(&ts, delay);
            while (!a->stop && !a->kick) {
                if (pthread_cond_timedwait(&a->cond, &a->mu, &ts) == ETIMEDOUT)
                    break;
            }
        }
        if (a->stop)
            break;
        a->kick = false;
        if (a->busy || a->waiters > 0)
            continue; /* a user has the channel; poll later */
        a->busy = true;
        pthread_mutex_unlock(&a->mu);
        PollResult r = poll_once(a);
        poll_done(a, r);
        pthread_mutex_lock(&a->mu);
        a->busy = false;
        pthread_cond_broadcast(&a->cond);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- the session -------------------------------------------------------------------- */

void guest_agent_start(VmRt *rt)
{
    if (vmm_get_backend() != VMM_BACKEND_QEMU)
        return;
    pthread_mutex_lock(&rt->mu);
    if (rt->agent || !rt->vmm) {
        pthread_mutex_unlock(&rt->mu);
        return;
    }
    GuestAgent *a = xnew0(GuestAgent, 1);
    a->env = rt->env;
    a->vmm = rt->vmm;
    a->ref = xstrdup(rt->ref);
    memcpy(a->uuid, rt->uuid, sizeof(a->uuid));
    a->sock = vmm_path(rt->env->run_dir, rt->uuid, "qga.sock");
    a->started_ms = now_ms();
    a->last_memory_ms = 0;
    const char *p = getenv("HX_AGENT_POLL_MS");
    long v = p ? strtol(p, NULL, 10) : 0;
    a->poll_ms = v >= 100 && v <= 600000 ? v : POLL_MS;
    /* Unknown: the record may say live (an adopted VM); the first poll that finds no
     * agent makes sure it does not. */
    a->recorded_live = true;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cond, NULL);
    if (pthread_create(&a->thread, NULL, agent_main, a) != 0) {
        log_error("VM %s: cannot start its guest-agent thread", rt->uuid);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cond);
        free(a->ref);
        free(a->sock);
        free(a);
    } else {
        rt->agent = a;
    }
    pthread_mutex_unlock(&rt->mu);
}

void guest_agent_stop(VmRt *rt, bool record)
{
    pthread_mutex_lock(&rt->mu);
    GuestAgent *a = rt->agent;
    if (a) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&rt->mu);
    if (!a)
        return;
    pthread_join(a->thread, NULL);
    /* A user that borrowed the channel gives it back within its own timeouts; the
     * session stays findable until then, so that guest_agent_release finds it. */
    pthread_mutex_lock(&a->mu);
    while (a->busy || a->waiters > 0)
        pthread_cond_wait(&a->cond, &a->mu);
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_lock(&rt->mu);
    rt->agent = NULL;
    pthread_mutex_unlock(&rt->mu);
    if (record)
        record_not_live(a->env->db, a->ref);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cond);
    xv_free(a->last_memory);
    free(a->ref);
    free(a->sock);
    free(a);
}

void guest_agent_kick(VmRt *rt)
{
    pthread_mutex_lock(&rt->mu);
    GuestAgent *a = rt->agent;
    if (a) {
        pthread_mutex_lock(&a->mu);
        a->kick = true;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&rt->mu);
}

bool guest_agent_live(VmRt *rt)
{
    pthread_mutex_lock(&rt->mu);
    GuestAgent *a = rt->agent;
    bool live = false;
    if (a) {
        pthread_mutex_lock(&a->mu);
        live = a->live;
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&rt->mu);
    return live;
}

static GuestAgent *session_of(VmRt *rt)
{
    pthread_mutex_lock(&rt->mu);
    GuestAgent *a = rt->agent;
    pthread_mutex_unlock(&rt->mu);
    return a;
}

static void give_back(GuestAgent *a, bool ok)
{
    pthread_mutex_lock(&a->mu);
    a->busy = false;
    if (!ok)
        a->kick = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
}

QgaClient *guest_agent_acquire(VmRt *rt, unsigned wait_ms, unsigned sync_ms, char **err)
{
    /* Counted as a waiter before rt->mu is let go: the session cannot end meanwhile. */
    pthread_mutex_lock(&rt->mu);
    GuestAgent *a = rt->agent;
    if (a) {
        pthread_mutex_lock(&a->mu);
        a->waiters++;
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&rt->mu);
    if (!a) {
        *err = xstrdup("no guest agent session (the VM does not run under QEMU)");
        return NULL;
    }
    struct timespec ts;
    deadline_ts(&ts, wait_ms);
    pthread_mutex_lock(&a->mu);
    int w = 0;
    while (a->busy && w != ETIMEDOUT)
        w = pthread_cond_timedwait(&a->cond, &a->mu, &ts);
    a->waiters--;
    bool got = !a->busy && !a->stop;
    if (got)
        a->busy = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    if (!got) {
        *err = xstrdup(a->stop ? "the VM is stopping" : "the guest agent channel stayed busy");
        return NULL;
    }
    if (!channel_open(a->vmm)) {
        give_back(a, true);
        *err = xstrdup("no guest agent runs in the VM (nothing holds its end of the channel)");
        return NULL;
    }
    QgaClient *c = NULL;
    if (qga_connect(a->sock, &c, err) < 0) {
        give_back(a, false);
        return NULL;
    }
    qga_set_max_line(c, AGENT_MAX_LINE);
    if (qga_sync(c, sync_ms, err) < 0) {
        qga_close(c);
        give_back(a, false);
        return NULL;
    }
    return c;
}

void guest_agent_release(VmRt *rt, QgaClient *c, bool ok)
{
    qga_close(c);
    GuestAgent *a = session_of(rt);
    if (a)
        give_back(a, ok);
}

int guest_agent_shutdown(VmRt *rt, const char *mode, char **err)
{
    QgaClient *c = guest_agent_acquire(rt, 2 * CMD_MS, SYNC_MS, err);
    if (!c)
        return -ENOTCONN;
    int r = qga_shutdown(c, mode, SYNC_MS, err);
    guest_agent_release(rt, c, r == 0);
    return r;
}
