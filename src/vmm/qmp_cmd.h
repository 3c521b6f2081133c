/*
 * QMP encoding: builds the arguments of the commands this layer uses, checks
 * their replies (every field is optional until checked: a missing or
 * mistyped member is an error or a default, never a crash) and turns QMP
 * events into VmmEvents. Uses qmp.c for the transport; must not keep state.
 */
#ifndef HX_VMM_QMP_CMD_H
#define HX_VMM_QMP_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/qmp.h"
#include "vmm/vmm.h"

struct json_object;

/* Reading reply members: NULL / false if missing or of another type. */
const char *qmp_cmd_get_str(struct json_object *obj, const char *key);
bool qmp_cmd_get_int(struct json_object *obj, const char *key, int64_t *out);
bool qmp_cmd_get_bool(struct json_object *obj, const char *key, bool *out);
struct json_object *qmp_cmd_get_obj(struct json_object *obj, const char *key);
struct json_object *qmp_cmd_get_array(struct json_object *obj, const char *key);

/* Runs a command whose reply carries nothing we need ("stop", "cont", ...). */
int qmp_cmd_run(QmpMonitor *mon, const char *command, struct json_object *args,
                unsigned timeout_ms, char **err);
/* Same, consuming args (convenient with json builders). */
int qmp_cmd_run_take(QmpMonitor *mon, const char *command, struct json_object *args,
                     unsigned timeout_ms, char **err);

int qmp_cmd_query_status(QmpMonitor *mon, VmmRunState *state, char **err);

/* ---- devices and block nodes ---- */
int qmp_cmd_device_del(QmpMonitor *mon, const char *id, char **err);
int qmp_cmd_blockdev_del(QmpMonitor *mon, const char *node, char **err);
int qmp_cmd_netdev_del(QmpMonitor *mon, const char *id, char **err);
int qmp_cmd_change_medium(QmpMonitor *mon, const char *id, const char *path, char **err);
int qmp_cmd_eject(QmpMonitor *mon, const char *id, char **err);

/* Parses a query-block reply into VmmBlockInfos (only devices named "disk<N>"). */
int qmp_cmd_parse_block_info(struct json_object *ret, VmmBlockInfo **info, size_t *n,
                             char **err);
int qmp_cmd_query_block(QmpMonitor *mon, VmmBlockInfo **info, size_t *n, char **err);
/* The active (root) block node of device "disk<position>"; NULL if none. */
char *qmp_cmd_disk_top_node(QmpMonitor *mon, unsigned position, char **err);
/* Names of all block nodes (malloc'd NULL-terminated vector). */
int qmp_cmd_list_nodes(QmpMonitor *mon, char ***names, char **err);

typedef struct QmpCpuSlot {
    char *type;   /* CPU device type to device_add */
    char *qom_path; /* NULL: slot is empty */
    int64_t socket_id, core_id, thread_id;
} QmpCpuSlot;
int qmp_cmd_query_hotpluggable_cpus(QmpMonitor *mon, QmpCpuSlot **slots, size_t *n, char **err);
void qmp_cmd_cpu_slots_free(QmpCpuSlot *slots, size_t n);

/* ---- migration, dump, balloon, jobs ---- */
typedef struct QmpMigrateInfo {
    char status[32]; /* "none", "setup", "active", "completed", "failed", ... */
    uint64_t transferred, total, remaining;
    char *error; /* error-desc when failed */
} QmpMigrateInfo;
int qmp_cmd_parse_migrate_info(struct json_object *ret, QmpMigrateInfo *info);
int qmp_cmd_query_migrate(QmpMonitor *mon, QmpMigrateInfo *info, char **err);
void qmp_cmd_migrate_info_release(QmpMigrateInfo *info);
int qmp_cmd_migrate_set_capability(QmpMonitor *mon, const char *cap, bool on, char **err);

typedef struct QmpDumpInfo {
    char status[16]; /* "none", "active", "completed", "failed" */
    uint64_t completed, total;
} QmpDumpInfo;
int qmp_cmd_query_dump(QmpMonitor *mon, QmpDumpInfo *info, char **err);

int qmp_cmd_balloon(QmpMonitor *mon, uint64_t bytes, char **err);
int qmp_cmd_query_balloon(QmpMonitor *mon, uint64_t *actual, char **err);

/* Jobs: parse one entry of query-block-jobs. */
int qmp_cmd_parse_job(struct json_object *job, VmmJobInfo *info);
int qmp_cmd_query_job(QmpMonitor *mon, const char *id, VmmJobInfo *info, char **err);

/* ---- misc ---- */
/* query-vnc: "unix:PATH" or "HOST:PORT" for the VNC server; -ENOENT if disabled. */
int qmp_cmd_query_vnc(QmpMonitor *mon, char **addr, char **err);
/* Whether the guest driver of the virtio device at QOM path has reached DRIVER_OK. */
int qmp_cmd_virtio_driver_ok(QmpMonitor *mon, const char *qom_path, bool *ok, char **err);

/* ---- events ---- */
/* Fills ev from a QMP event (strings borrowed from name/data). Returns false for events
 * this layer ignores (unknown ones are also logged at debug level). */
bool qmp_cmd_parse_event(const char *name, struct json_object *data, int64_t time_us,
                         VmmEvent *ev);
/* For the unit test: the event table is sorted (checked with bsearch in mind). */
bool qmp_cmd_event_table_sorted(void);

/* "disk3" -> 3 (also accepts "/machine/peripheral/disk3/virtio-backend"); -1 if not ours. */
int qmp_cmd_disk_position(const char *qdev);

#endif
