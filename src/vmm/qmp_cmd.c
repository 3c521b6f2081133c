/*
 * QMP encoding. See qmp_cmd.h. Every member of a reply is checked for
 * presence and type before use; this file never trusts QEMU's output to have
 * the documented shape. It keeps no state between calls.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmm/qmp_cmd.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

#define QMP_CMD_TIMEOUT 10000

/* ---- reply members ------------------------------------------------------ */

const char *qmp_cmd_get_str(struct json_object *obj, const char *key)
{
    struct json_object *v;
    if (!obj || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

bool qmp_cmd_get_int(struct json_object *obj, const char *key, int64_t *out)
{
    struct json_object *v;
    if (!obj || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_int64(v);
    return true;
}

bool qmp_cmd_get_bool(struct json_object *obj, const char *key, bool *out)
{
    struct json_object *v;
    if (!obj || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_boolean))
        return false;
    *out = json_object_get_boolean(v);
    return true;
}

struct json_object *qmp_cmd_get_obj(struct json_object *obj, const char *key)
{
    struct json_object *v;
    if (!obj || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

struct json_object *qmp_cmd_get_array(struct json_object *obj, const char *key)
{
    struct json_object *v;
    if (!obj || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_array))
        return NULL;
    return v;
}

static uint64_t qmp_cmd_get_u64(struct json_object *obj, const char *key)
{
    int64_t v;
    return qmp_cmd_get_int(obj, key, &v) && v > 0 ? (uint64_t)v : 0;
}

/* ---- simple commands ---------------------------------------------------- */

int qmp_cmd_run(QmpMonitor *mon, const char *command, struct json_object *args,
                unsigned timeout_ms, char **err)
{
    return qmp_execute(mon, command, args, timeout_ms ? timeout_ms : QMP_CMD_TIMEOUT, NULL, err);
}

int qmp_cmd_run_take(QmpMonitor *mon, const char *command, struct json_object *args,
                     unsigned timeout_ms, char **err)
{
    int r = qmp_cmd_run(mon, command, args, timeout_ms, err);
    json_object_put(args);
    return r;
}

int qmp_cmd_query_status(QmpMonitor *mon, VmmRunState *state, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-status", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    const char *s = qmp_cmd_get_str(ret, "status");
    int st = s ? vmm_run_state_from_string(s) : -1;
    if (st < 0 || st == VMM_RUN_STATE_DEAD) {
        r = vmm_error(err, -EPROTO, "query-status: unexpected reply %.200s", vmm_json_str(ret));
    } else {
        *state = (VmmRunState)st;
    }
    json_object_put(ret);
    return r;
}

static struct json_object *qmp_cmd_args1(const char *key, const char *value)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, key, json_object_new_string(value));
    return a;
}

int qmp_cmd_device_del(QmpMonitor *mon, const char *id, char **err)
{
    return qmp_cmd_run_take(mon, "device_del", qmp_cmd_args1("id", id), 0, err);
}

int qmp_cmd_blockdev_del(QmpMonitor *mon, const char *node, char **err)
{
    return qmp_cmd_run_take(mon, "blockdev-del", qmp_cmd_args1("node-name", node), 0, err);
}

int qmp_cmd_netdev_del(QmpMonitor *mon, const char *id, char **err)
{
    return qmp_cmd_run_take(mon, "netdev_del", qmp_cmd_args1("id", id), 0, err);
}

int qmp_cmd_change_medium(QmpMonitor *mon, const char *id, const char *path, char **err)
{
    struct json_object *a = qmp_cmd_args1("id", id);
    json_object_object_add(a, "filename", json_object_new_string(path));
    json_object_object_add(a, "format", json_object_new_string("raw"));
    json_object_object_add(a, "read-only-mode", json_object_new_string("read-only"));
    return qmp_cmd_run_take(mon, "blockdev-change-medium", a, 30000, err);
}

int qmp_cmd_eject(QmpMonitor *mon, const char *id, char **err)
{
    struct json_object *a = qmp_cmd_args1("id", id);
    /* force: a guest that locked the tray must not be able to keep the medium */
    json_object_object_add(a, "force", json_object_new_boolean(true));
    return qmp_cmd_run_take(mon, "eject", a, 0, err);
}

/* ---- block devices ------------------------------------------------------ */

int qmp_cmd_disk_position(const char *qdev)
{
    if (!qdev)
        return -1;
    const char *p = qdev;
    if (STRPREFIX(p, "/machine/peripheral/"))
        p += strlen("/machine/peripheral/");
    if (!STRPREFIX(p, "disk"))
        return -1;
    p += 4;
    int n = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 3) {
        n = n * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || (*p != '\0' && *p != '/') || n >= VMM_MAX_DISKS)
        return -1;
    return n;
}

static void qmp_cmd_parse_chain(struct json_object *image, const char *top_node,
                                VmmBlockInfo *bi)
{
    size_t alloc = 0;
    for (int depth = 0; image && depth < 64; depth++) {
        const char *fn = qmp_cmd_get_str(image, "filename");
        if (!fn)
            break;
        XGROW(bi->chain, bi->chain_len + 1, alloc);
        VmmBlockImage *img = &bi->chain[bi->chain_len++];
        img->filename = xstrdup(fn);
        img->format = xstrdup_or_null(qmp_cmd_get_str(image, "format"));
        img->node_name = depth == 0 ? xstrdup_or_null(top_node) : NULL;
        image = qmp_cmd_get_obj(image, "backing-image");
    }
}

int qmp_cmd_parse_block_info(struct json_object *ret, VmmBlockInfo **info, size_t *n, char **err)
{
    if (!ret || !json_object_is_type(ret, json_type_array))
        return vmm_error(err, -EPROTO, "query-block: the reply is not a list");
    size_t len = json_object_array_length(ret), count = 0;
    VmmBlockInfo *out = xnew0(VmmBlockInfo, len ? len : 1);
    for (size_t i = 0; i < len; i++) {
        struct json_object *e = json_object_array_get_idx(ret, i);
        int pos = qmp_cmd_disk_position(qmp_cmd_get_str(e, "qdev"));
        if (pos < 0)
            continue;
        VmmBlockInfo *bi = &out[count++];
        bi->position = (unsigned)pos;
        bi->device = xasprintf("disk%d", pos);
        qmp_cmd_get_bool(e, "removable", &bi->removable);
        qmp_cmd_get_bool(e, "tray_open", &bi->tray_open);
        struct json_object *ins = qmp_cmd_get_obj(e, "inserted");
        if (ins) {
            qmp_cmd_get_bool(ins, "ro", &bi->read_only);
            const char *node = qmp_cmd_get_str(ins, "node-name");
            struct json_object *image = qmp_cmd_get_obj(ins, "image");
            if (image) {
                qmp_cmd_parse_chain(image, node, bi);
            } else if (qmp_cmd_get_str(ins, "file")) {
                bi->chain = xnew0(VmmBlockImage, 1);
                bi->chain[0].filename = xstrdup(qmp_cmd_get_str(ins, "file"));
                bi->chain[0].format = xstrdup_or_null(qmp_cmd_get_str(ins, "drv"));
                bi->chain[0].node_name = xstrdup_or_null(node);
                bi->chain_len = 1;
            }
        }
    }
    *info = out;
    *n = count;
    return 0;
}

int qmp_cmd_query_block(QmpMonitor *mon, VmmBlockInfo **info, size_t *n, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-block", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    r = qmp_cmd_parse_block_info(ret, info, n, err);
    json_object_put(ret);
    return r;
}

char *qmp_cmd_disk_top_node(QmpMonitor *mon, unsigned position, char **err)
{
    VmmBlockInfo *info = NULL;
    size_t n = 0;
    if (qmp_cmd_query_block(mon, &info, &n, err) < 0)
        return NULL;
    char *node = NULL;
    for (size_t i = 0; i < n; i++)
        if (info[i].position == position && info[i].chain_len > 0 && info[i].chain[0].node_name)
            node = xstrdup(info[i].chain[0].node_name);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found |= info[i].position == position;
    vmm_block_info_free(info, n);
    if (!node)
        vmm_error(err, -ENODEV, found ? "disk%u has no medium" : "there is no disk%u in QEMU",
                  position);
    return node;
}

int qmp_cmd_list_nodes(QmpMonitor *mon, char ***names, char **err)
{
    struct json_object *a = json_object_new_object(), *ret = NULL;
    json_object_object_add(a, "flat", json_object_new_boolean(true));
    int r = qmp_execute(mon, "query-named-block-nodes", a, QMP_CMD_TIMEOUT, &ret, err);
    json_object_put(a);
    if (r < 0)
        return r;
    if (!json_object_is_type(ret, json_type_array)) {
        json_object_put(ret);
        return vmm_error(err, -EPROTO, "query-named-block-nodes: the reply is not a list");
    }
    size_t len = json_object_array_length(ret), k = 0;
    char **v = xnew0(char *, len + 1);
    for (size_t i = 0; i < len; i++) {
        const char *nn = qmp_cmd_get_str(json_object_array_get_idx(ret, i), "node-name");
        if (nn)
            v[k++] = xstrdup(nn);
    }
    json_object_put(ret);
    *names = v;
    return (int)k;
}

/* ---- CPUs --------------------------------------------------------------- */

int qmp_cmd_query_hotpluggable_cpus(QmpMonitor *mon, QmpCpuSlot **slots, size_t *n, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-hotpluggable-cpus", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    if (!json_object_is_type(ret, json_type_array)) {
        json_object_put(ret);
        return vmm_error(err, -EPROTO, "query-hotpluggable-cpus: the reply is not a list");
    }
    size_t len = json_object_array_length(ret), k = 0;
    QmpCpuSlot *s = xnew0(QmpCpuSlot, len ? len : 1);
    for (size_t i = 0; i < len; i++) {
        struct json_object *e = json_object_array_get_idx(ret, i);
        struct json_object *props = qmp_cmd_get_obj(e, "props");
        const char *type = qmp_cmd_get_str(e, "type");
        if (!props || !type)
            continue;
        QmpCpuSlot *c = &s[k++];
        c->type = xstrdup(type);
        c->qom_path = xstrdup_or_null(qmp_cmd_get_str(e, "qom-path"));
        c->socket_id = c->core_id = c->thread_id = -1;
        qmp_cmd_get_int(props, "socket-id", &c->socket_id);
        qmp_cmd_get_int(props, "core-id", &c->core_id);
        qmp_cmd_get_int(props, "thread-id", &c->thread_id);
    }
    json_object_put(ret);
    *slots = s;
    *n = k;
    return 0;
}

void qmp_cmd_cpu_slots_free(QmpCpuSlot *slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(slots[i].type);
        free(slots[i].qom_path);
    }
    free(slots);
}

/* ---- migration ---------------------------------------------------------- */

int qmp_cmd_parse_migrate_info(struct json_object *ret, QmpMigrateInfo *info)
{
    memset(info, 0, sizeof(*info));
    const char *st = qmp_cmd_get_str(ret, "status");
    snprintf(info->status, sizeof(info->status), "%s", st ? st : "none");
    struct json_object *ram = qmp_cmd_get_obj(ret, "ram");
    if (ram) {
        info->transferred = qmp_cmd_get_u64(ram, "transferred");
        info->total = qmp_cmd_get_u64(ram, "total");
        info->remaining = qmp_cmd_get_u64(ram, "remaining");
    }
    info->error = xstrdup_or_null(qmp_cmd_get_str(ret, "error-desc"));
    return 0;
}

int qmp_cmd_query_migrate(QmpMonitor *mon, QmpMigrateInfo *info, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-migrate", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    qmp_cmd_parse_migrate_info(ret, info);
    json_object_put(ret);
    return 0;
}

void qmp_cmd_migrate_info_release(QmpMigrateInfo *info)
{
    free(info->error);
    info->error = NULL;
}

int qmp_cmd_migrate_set_capability(QmpMonitor *mon, const char *cap, bool on, char **err)
{
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "capability", json_object_new_string(cap));
    json_object_object_add(c, "state", json_object_new_boolean(on));
    struct json_object *list = json_object_new_array();
    json_object_array_add(list, c);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "capabilities", list);
    return qmp_cmd_run_take(mon, "migrate-set-capabilities", a, 0, err);
}

int qmp_cmd_query_dump(QmpMonitor *mon, QmpDumpInfo *info, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-dump", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    memset(info, 0, sizeof(*info));
    const char *st = qmp_cmd_get_str(ret, "status");
    snprintf(info->status, sizeof(info->status), "%s", st ? st : "none");
    info->completed = qmp_cmd_get_u64(ret, "completed");
    info->total = qmp_cmd_get_u64(ret, "total");
    json_object_put(ret);
    return 0;
}

/* ---- balloon ------------------------------------------------------------ */

int qmp_cmd_balloon(QmpMonitor *mon, uint64_t bytes, char **err)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "value", json_object_new_int64((int64_t)bytes));
    return qmp_cmd_run_take(mon, "balloon", a, 0, err);
}

int qmp_cmd_query_balloon(QmpMonitor *mon, uint64_t *actual, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-balloon", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    int64_t v;
    if (!qmp_cmd_get_int(ret, "actual", &v) || v < 0)
        r = vmm_error(err, -EPROTO, "query-balloon: no actual size in %.200s",
                      vmm_json_str(ret));
    else
        *actual = (uint64_t)v;
    json_object_put(ret);
    return r;
}

/* ---- jobs --------------------------------------------------------------- */

int qmp_cmd_parse_job(struct json_object *job, VmmJobInfo *info)
{
    memset(info, 0, sizeof(*info));
    const char *id = qmp_cmd_get_str(job, "id");
    const char *type = qmp_cmd_get_str(job, "type");
    const char *status = qmp_cmd_get_str(job, "status");
    if (!id || !type || !status)
        return -EPROTO;
    info->id = xstrdup(id);
    info->type = STREQ(type, "stream") ? VMM_JOB_STREAM : VMM_JOB_COMMIT;
    info->status = xstrdup(status);
    info->offset = qmp_cmd_get_u64(job, "current-progress");
    info->len = qmp_cmd_get_u64(job, "total-progress");
    info->ready = STREQ(status, "ready");
    info->error = xstrdup_or_null(qmp_cmd_get_str(job, "error"));
    return 0;
}

int qmp_cmd_query_job(QmpMonitor *mon, const char *id, VmmJobInfo *info, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-jobs", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    r = vmm_error(err, -ENOENT, "there is no block job %s", id);
    if (json_object_is_type(ret, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(ret); i++) {
            struct json_object *j = json_object_array_get_idx(ret, i);
            const char *jid = qmp_cmd_get_str(j, "id");
            if (jid && STREQ(jid, id)) {
                r = qmp_cmd_parse_job(j, info) < 0
                        ? vmm_error(err, -EPROTO, "query-jobs: malformed entry %.200s",
                                    vmm_json_str(j))
                        : 0;
                break;
            }
        }
    }
    json_object_put(ret);
    return r;
}

/* ---- misc --------------------------------------------------------------- */

int qmp_cmd_query_vnc(QmpMonitor *mon, char **addr, char **err)
{
    struct json_object *ret = NULL;
    int r = qmp_execute(mon, "query-vnc", NULL, QMP_CMD_TIMEOUT, &ret, err);
    if (r < 0)
        return r;
    bool enabled = false;
    qmp_cmd_get_bool(ret, "enabled", &enabled);
    const char *host = qmp_cmd_get_str(ret, "host");
    const char *service = qmp_cmd_get_str(ret, "service");
    const char *family = qmp_cmd_get_str(ret, "family");
    if (!enabled || !service)
        r = vmm_error(err, -ENOENT, "VNC is not enabled for this VM");
    else if (family && STREQ(family, "unix"))
        *addr = xasprintf("unix:%s", service);
    else
        *addr = xasprintf("%s:%s", host ? host : "127.0.0.1", service);
    json_object_put(ret);
    return r;
}

int qmp_cmd_virtio_driver_ok(QmpMonitor *mon, const char *qom_path, bool *ok, char **err)
{
    struct json_object *ret = NULL;
    struct json_object *a = qmp_cmd_args1("path", qom_path);
    int r = qmp_execute(mon, "x-query-virtio-status", a, QMP_CMD_TIMEOUT, &ret, err);
    json_object_put(a);
    if (r < 0)
        return r;
    *ok = false;
    struct json_object *status = qmp_cmd_get_obj(ret, "status");
    struct json_object *list = qmp_cmd_get_array(status, "statuses");
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        struct json_object *s = json_object_array_get_idx(list, i);
        if (json_object_is_type(s, json_type_string) &&
            STRPREFIX(json_object_get_string(s), "VIRTIO_CONFIG_S_DRIVER_OK"))
            *ok = true;
    }
    json_object_put(ret);
    return 0;
}

/* ---- events ------------------------------------------------------------- */

typedef struct QmpEventMap {
    const char *name;
    int type; /* VmmEventType, or -1: known and ignored */
} QmpEventMap;

/* Sorted by name (bsearch). */
static const QmpEventMap qmp_events[] = {
    {"ACPI_DEVICE_OST", -1},
    {"BALLOON_CHANGE", VMM_EVENT_BALLOON_CHANGE},
    {"BLOCK_JOB_CANCELLED", VMM_EVENT_BLOCK_JOB_CANCELLED},
    {"BLOCK_JOB_COMPLETED", VMM_EVENT_BLOCK_JOB_COMPLETED},
    {"BLOCK_JOB_ERROR", VMM_EVENT_BLOCK_JOB_ERROR},
    {"BLOCK_JOB_PENDING", -1},
    {"BLOCK_JOB_READY", VMM_EVENT_BLOCK_JOB_READY},
    {"DEVICE_DELETED", VMM_EVENT_DEVICE_DELETED},
    {"DEVICE_TRAY_MOVED", -1},
    {"DUMP_COMPLETED", VMM_EVENT_DUMP_COMPLETED},
    {"GUEST_PANICKED", VMM_EVENT_GUEST_PANICKED},
    {"JOB_STATUS_CHANGE", -1},
    {"MIGRATION", VMM_EVENT_MIGRATION},
    {"MIGRATION_PASS", -1},
    {"NIC_RX_FILTER_CHANGED", -1},
    {"POWERDOWN", VMM_EVENT_POWERDOWN},
    {"RESET", VMM_EVENT_RESET},
    {"RESUME", VMM_EVENT_RESUME},
    {"RTC_CHANGE", VMM_EVENT_RTC_CHANGE},
    {"SHUTDOWN", VMM_EVENT_SHUTDOWN},
    {"STOP", VMM_EVENT_STOP},
    {"VSERPORT_CHANGE", -1},
};

static int qmp_event_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const QmpEventMap *)elem)->name);
}

bool qmp_cmd_event_table_sorted(void)
{
    for (size_t i = 1; i < ARRAY_SIZE(qmp_events); i++)
        if (strcmp(qmp_events[i - 1].name, qmp_events[i].name) >= 0)
            return false;
    return true;
}

bool qmp_cmd_parse_event(const char *name, struct json_object *data, int64_t time_us,
                         VmmEvent *ev)
{
    const QmpEventMap *m =
        bsearch(name, qmp_events, ARRAY_SIZE(qmp_events), sizeof(qmp_events[0]), qmp_event_cmp);
    if (!m) {
        log_debug("QMP: ignoring unknown event %s", name);
        return false;
    }
    if (m->type < 0)
        return false;
    memset(ev, 0, sizeof(*ev));
    ev->type = (VmmEventType)m->type;
    ev->name = name;
    ev->time_us = time_us;
    ev->data = data;
    ev->exit_code = -1;
    switch (ev->type) {
    case VMM_EVENT_SHUTDOWN:
    case VMM_EVENT_RESET:
        qmp_cmd_get_bool(data, "guest", &ev->guest);
        ev->reason = qmp_cmd_get_str(data, "reason");
        break;
    case VMM_EVENT_GUEST_PANICKED:
        ev->reason = qmp_cmd_get_str(data, "action");
        break;
    case VMM_EVENT_RTC_CHANGE:
        qmp_cmd_get_int(data, "offset", &ev->offset);
        break;
    case VMM_EVENT_DEVICE_DELETED:
        ev->device = qmp_cmd_get_str(data, "device");
        if (!ev->device) /* devices without an id: keep the QOM path */
            ev->device = qmp_cmd_get_str(data, "path");
        break;
    case VMM_EVENT_BLOCK_JOB_COMPLETED:
    case VMM_EVENT_BLOCK_JOB_CANCELLED:
    case VMM_EVENT_BLOCK_JOB_READY:
    case VMM_EVENT_BLOCK_JOB_ERROR:
        ev->device = qmp_cmd_get_str(data, "device");
        ev->status = qmp_cmd_get_str(data, "type");
        ev->error = qmp_cmd_get_str(data, "error");
        if (ev->type == VMM_EVENT_BLOCK_JOB_ERROR)
            ev->reason = qmp_cmd_get_str(data, "operation");
        qmp_cmd_get_int(data, "offset", &ev->offset);
        qmp_cmd_get_int(data, "len", &ev->len);
        break;
    case VMM_EVENT_MIGRATION:
        ev->status = qmp_cmd_get_str(data, "status");
        break;
    case VMM_EVENT_BALLOON_CHANGE:
        qmp_cmd_get_int(data, "actual", &ev->offset);
        break;
    case VMM_EVENT_DUMP_COMPLETED: {
        struct json_object *res = qmp_cmd_get_obj(data, "result");
        ev->status = qmp_cmd_get_str(res, "status");
        qmp_cmd_get_int(res, "completed", &ev->offset);
        qmp_cmd_get_int(res, "total", &ev->len);
        ev->error = qmp_cmd_get_str(data, "error");
        break;
    }
    default:
        break;
    }
    return true;
}
