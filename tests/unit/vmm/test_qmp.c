/*
 * Tests of the QMP transport (qmp.c) against scripted fake monitors replaying
 * recorded transcripts: events before replies, replies out of order, partial
 * lines, garbage, over-long lines, a monitor that closes or stays silent, fd
 * passing. Also the reply and event decoding of qmp_cmd.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/log.h"
#include "util/xalloc.h"
#include "vmm/qmp.h"
#include "vmm/qmp_cmd.h"
#include "vmm/vmm_util.h"
#include "fake_monitor.h"
#include "vmm_test.h"

static const char *data_dir;

typedef struct Recorder {
    pthread_mutex_t lock;
    char names[64][32];
    int64_t times[64];
    int n;
    int closed;
    int closed_err;
} Recorder;

static void rec_event(void *opaque, const char *name, struct json_object *data, int64_t time_us)
{
    Recorder *r = opaque;
    pthread_mutex_lock(&r->lock);
    if (r->n < 64) {
        snprintf(r->names[r->n], sizeof(r->names[0]), "%s", name);
        r->times[r->n] = time_us;
        r->n++;
    }
    pthread_mutex_unlock(&r->lock);
}

static void rec_closed(void *opaque, int err)
{
    Recorder *r = opaque;
    pthread_mutex_lock(&r->lock);
    r->closed++;
    r->closed_err = err;
    pthread_mutex_unlock(&r->lock);
}

static void rec_init(Recorder *r, QmpCallbacks *cb)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    cb->event = rec_event;
    cb->closed = rec_closed;
    cb->opaque = r;
}

static char *script(const char *name)
{
    return xasprintf("%s/%s", data_dir, name);
}

/* Opens a monitor on a fake playing `name`. */
static QmpMonitor *open_fake(const char *name, Recorder *rec, FakeMonitor **fm, int *rc,
                             char **err)
{
    QmpCallbacks cb;
    rec_init(rec, &cb);
    char *path = script(name);
    int fd = -1;
    *fm = fake_monitor_start(path, &fd);
    free(path);
    QmpMonitor *mon = NULL;
    *rc = qmp_open(fd, &cb, 2000, &mon, err);
    return mon;
}

static void finish_fake(FakeMonitor *fm)
{
    char *failure = fake_monitor_finish(fm);
    CHECK_MSG(!failure, "fake monitor: %s", failure);
    free(failure);
}

static void t_basic(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-basic.txt", &rec, &fm, &rc, &err);
    CHECK_MSG(rc == 0, "open: %s", err);
    REQUIRE(mon);
    CHECK_INT(qmp_version(mon), 70222);
    VmmRunState st = VMM_RUN_STATE_UNKNOWN;
    CHECK_INT(qmp_cmd_query_status(mon, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_RUNNING);
    CHECK_INT(qmp_cmd_run(mon, "system_powerdown", NULL, 2000, &err), 0);
    CHECK_INT(qmp_cmd_query_status(mon, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_SHUTDOWN);
    CHECK_INT(qmp_cmd_run(mon, "quit", NULL, 2000, &err), 0);
    /* the peer closes after quit: the reader notices */
    for (int i = 0; i < 200 && qmp_is_connected(mon); i++)
        vmm_sleep_ms(10);
    CHECK(!qmp_is_connected(mon));
    pthread_mutex_lock(&rec.lock);
    CHECK_INT(rec.n, 4);
    CHECK_STR(rec.names[0], "POWERDOWN");
    CHECK_STR(rec.names[1], "SHUTDOWN");
    CHECK_STR(rec.names[2], "STOP");
    CHECK_STR(rec.names[3], "SHUTDOWN");
    CHECK_INT(rec.times[0], 1795776231269563LL);
    CHECK_INT(rec.closed, 1);
    pthread_mutex_unlock(&rec.lock);
    /* commands on a closed monitor fail at once */
    CHECK_INT(qmp_cmd_run(mon, "cont", NULL, 2000, &err), -ECONNRESET);
    qmp_close(mon);
    finish_fake(fm);
    free(err);
}

static void t_garbage(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-garbage.txt", &rec, &fm, &rc, &err);
    REQUIRE(mon);
    VmmRunState st = VMM_RUN_STATE_UNKNOWN;
    CHECK_INT(qmp_cmd_query_status(mon, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_RUNNING);
    /* replies of the wrong shape are errors, not crashes */
    CHECK_INT(qmp_cmd_query_status(mon, &st, &err), -EPROTO);
    CHECK_CONTAINS(err, "query-status");
    CHECK_INT(qmp_cmd_query_status(mon, &st, &err), -EPROTO);
    pthread_mutex_lock(&rec.lock);
    CHECK_INT(rec.n, 1); /* the RESUME with a bad timestamp; the nameless event is dropped */
    CHECK_STR(rec.names[0], "RESUME");
    CHECK(rec.times[0] > 0);
    pthread_mutex_unlock(&rec.lock);
    qmp_close(mon);
    finish_fake(fm);
    CHECK_INT(rec.closed, 0); /* no callback for our own close */
    free(err);
}

static void t_close(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-close.txt", &rec, &fm, &rc, &err);
    REQUIRE(mon);
    VmmRunState st;
    CHECK_INT(qmp_cmd_query_status(mon, &st, &err), -ECONNRESET);
    CHECK_CONTAINS(err, "closed the monitor");
    for (int i = 0; i < 200 && !rec.closed; i++)
        vmm_sleep_ms(10);
    CHECK_INT(rec.closed, 1);
    qmp_close(mon);
    finish_fake(fm);
    free(err);
}

static void t_silent(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-silent.txt", &rec, &fm, &rc, &err);
    REQUIRE(mon);
    int64_t t0 = vmm_now_ms();
    CHECK_INT(qmp_execute(mon, "query-status", NULL, 300, NULL, &err), -ETIMEDOUT);
    CHECK(vmm_now_ms() - t0 < 5000);
    CHECK_CONTAINS(err, "no answer");
    CHECK(qmp_is_connected(mon)); /* a timeout does not close the monitor */
    qmp_close(mon);
    finish_fake(fm);
    free(err);
}

static void t_errors(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-error.txt", &rec, &fm, &rc, &err);
    REQUIRE(mon);
    CHECK_INT(qmp_cmd_device_del(mon, "disk9", &err), -ENODEV);
    CHECK_CONTAINS(err, "Device 'disk9' not found");
    uint64_t actual;
    CHECK_INT(qmp_cmd_query_balloon(mon, &actual, &err), -EIO);
    CHECK_CONTAINS(err, "No balloon device");
    CHECK_INT(qmp_cmd_run(mon, "frobnicate", NULL, 0, &err), -ENOSYS);
    CHECK_INT(qmp_cmd_run(mon, "query-status", NULL, 0, &err), -EPROTO);
    qmp_close(mon);
    finish_fake(fm);
    free(err);
}

static void t_huge(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-huge.txt", &rec, &fm, &rc, &err);
    REQUIRE(mon);
    VmmRunState st = VMM_RUN_STATE_UNKNOWN;
    CHECK_INT(qmp_cmd_query_status(mon, &st, &err), 0);
    CHECK_INT(st, VMM_RUN_STATE_RUNNING);
    qmp_close(mon);
    finish_fake(fm);
    free(err);
}

static void t_open_failures(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-not-qmp.txt", &rec, &fm, &rc, &err);
    CHECK(!mon);
    CHECK_INT(rc, -EPROTO);
    CHECK_CONTAINS(err, "not a QMP monitor");
    finish_fake(fm);
    mon = open_fake("qmp-no-greeting.txt", &rec, &fm, &rc, &err);
    CHECK(!mon);
    CHECK_INT(rc, -ECONNRESET);
    finish_fake(fm);
    /* a peer that never greets: the open times out */
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    QmpCallbacks cb;
    rec_init(&rec, &cb);
    rc = qmp_open(sv[1], &cb, 200, &mon, &err);
    CHECK_INT(rc, -ETIMEDOUT);
    close(sv[0]);
    free(err);
}

static void t_getfd(void *data)
{
    Recorder rec;
    FakeMonitor *fm;
    int rc;
    char *err = NULL;
    QmpMonitor *mon = open_fake("qmp-getfd.txt", &rec, &fm, &rc, &err);
    REQUIRE(mon);
    int fd = dup(1);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "fdname", json_object_new_string("x"));
    CHECK_INT(qmp_execute_fd(mon, "getfd", a, fd, 2000, NULL, &err), 0);
    json_object_put(a);
    close(fd);
    qmp_close(mon);
    finish_fake(fm);
    free(err);
}

/* Two threads wait at once; the monitor answers the later command first. */
typedef struct OooArg {
    QmpMonitor *mon;
    const char *cmd;
    char *got;
    int rc;
} OooArg;

static void *ooo_client(void *p)
{
    OooArg *a = p;
    struct json_object *ret = NULL;
    a->rc = qmp_execute(a->mon, a->cmd, NULL, 5000, &ret, NULL);
    if (ret && json_object_is_type(ret, json_type_string))
        a->got = xstrdup(json_object_get_string(ret));
    json_object_put(ret);
    return NULL;
}

static void ooo_reply(int fd, const char *line, bool name_as_return)
{
    struct json_object *req = json_tokener_parse(line);
    struct json_object *ex = NULL, *rid = NULL;
    if (!req || !json_object_object_get_ex(req, "execute", &ex) ||
        !json_object_object_get_ex(req, "id", &rid)) {
        json_object_put(req);
        return;
    }
    char *r = name_as_return
                  ? xasprintf("{\"return\": \"%s\", \"id\": %lld}\n", json_object_get_string(ex),
                              (long long)json_object_get_int64(rid))
                  : xasprintf("{\"return\": {}, \"id\": %lld}\n",
                              (long long)json_object_get_int64(rid));
    if (write(fd, r, strlen(r)) != (ssize_t)strlen(r))
        perror("write");
    free(r);
    json_object_put(req);
}

/* Server: greets, answers capabilities, then reads two commands and answers them in
 * reverse order. */
static void *ooo_server(void *p)
{
    FakeMonitor *fm = p;
    const char *greet = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
                        "\"major\": 7}}, \"capabilities\": []}}\n";
    fake_send(fm, greet, strlen(greet));
    char *caps = fake_recv_line(fm);
    if (caps)
        ooo_reply(fm->fd, caps, false);
    char *l1 = fake_recv_line(fm), *l2 = fake_recv_line(fm);
    if (l1 && l2) {
        ooo_reply(fm->fd, l2, true);
        ooo_reply(fm->fd, l1, true);
    } else {
        fm->failure = xstrdup("the two commands did not arrive");
    }
    free(caps);
    free(l1);
    free(l2);
    return NULL;
}

static void t_out_of_order(void *data)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    FakeMonitor fm = {.fd = sv[0]};
    pthread_t server;
    pthread_create(&server, NULL, ooo_server, &fm);
    Recorder rec;
    QmpCallbacks cb;
    rec_init(&rec, &cb);
    QmpMonitor *mon = NULL;
    char *err = NULL;
    int rc = qmp_open(sv[1], &cb, 5000, &mon, &err);
    CHECK_MSG(rc == 0, "open: %s", err);
    if (mon) {
        OooArg a1 = {mon, "query-name", NULL, -1}, a2 = {mon, "query-uuid", NULL, -1};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, ooo_client, &a1);
        pthread_create(&t2, NULL, ooo_client, &a2);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        CHECK_INT(a1.rc, 0);
        CHECK_INT(a2.rc, 0);
        CHECK_STR(a1.got, "query-name");
        CHECK_STR(a2.got, "query-uuid");
        free(a1.got);
        free(a2.got);
    }
    pthread_join(server, NULL);
    CHECK_MSG(!fm.failure, "server: %s", fm.failure);
    free(fm.failure);
    qmp_close(mon);
    close(sv[0]);
    free(err);
}

/* ---- decoding --------------------------------------------------------------- */

static struct json_object *parse(const char *s)
{
    return json_tokener_parse(s);
}

static void t_events(void *data)
{
    CHECK(qmp_cmd_event_table_sorted());
    VmmEvent ev;
    struct json_object *d = parse("{\"guest\": true, \"reason\": \"guest-shutdown\"}");
    CHECK(qmp_cmd_parse_event("SHUTDOWN", d, 5, &ev));
    CHECK_INT(ev.type, VMM_EVENT_SHUTDOWN);
    CHECK(ev.guest);
    CHECK_STR(ev.reason, "guest-shutdown");
    CHECK_INT(ev.time_us, 5);
    json_object_put(d);

    d = parse("{\"offset\": -3600, \"qom-path\": \"/machine/unattached/device[2]\"}");
    CHECK(qmp_cmd_parse_event("RTC_CHANGE", d, 1, &ev));
    CHECK_INT(ev.offset, -3600);
    json_object_put(d);

    d = parse("{\"device\": \"disk2\", \"path\": \"/machine/peripheral/disk2\"}");
    CHECK(qmp_cmd_parse_event("DEVICE_DELETED", d, 1, &ev));
    CHECK_STR(ev.device, "disk2");
    json_object_put(d);
    d = parse("{\"path\": \"/machine/peripheral/disk2/virtio-backend\"}");
    CHECK(qmp_cmd_parse_event("DEVICE_DELETED", d, 1, &ev));
    CHECK_STR(ev.device, "/machine/peripheral/disk2/virtio-backend");
    json_object_put(d);

    d = parse("{\"device\": \"commit0\", \"type\": \"commit\", \"len\": 100, \"offset\": 40, "
              "\"speed\": 0, \"error\": \"No space left on device\"}");
    CHECK(qmp_cmd_parse_event("BLOCK_JOB_COMPLETED", d, 1, &ev));
    CHECK_INT(ev.type, VMM_EVENT_BLOCK_JOB_COMPLETED);
    CHECK_STR(ev.device, "commit0");
    CHECK_STR(ev.error, "No space left on device");
    CHECK_INT(ev.len, 100);
    CHECK_INT(ev.offset, 40);
    json_object_put(d);

    d = parse("{\"action\": \"pause\", \"info\": {\"type\": \"hyper-v\"}}");
    CHECK(qmp_cmd_parse_event("GUEST_PANICKED", d, 1, &ev));
    CHECK_STR(ev.reason, "pause");
    json_object_put(d);

    d = parse("{\"status\": \"completed\"}");
    CHECK(qmp_cmd_parse_event("MIGRATION", d, 1, &ev));
    CHECK_STR(ev.status, "completed");
    json_object_put(d);

    d = parse("{\"result\": {\"status\": \"completed\", \"completed\": 9, \"total\": 9}}");
    CHECK(qmp_cmd_parse_event("DUMP_COMPLETED", d, 1, &ev));
    CHECK_STR(ev.status, "completed");
    CHECK_INT(ev.len, 9);
    json_object_put(d);

    /* wrong types and missing data: defaults, no crash */
    d = parse("{\"guest\": \"yes\", \"reason\": 7}");
    CHECK(qmp_cmd_parse_event("RESET", d, 1, &ev));
    CHECK(!ev.guest);
    CHECK(ev.reason == NULL);
    json_object_put(d);
    CHECK(qmp_cmd_parse_event("STOP", NULL, 1, &ev));
    CHECK(qmp_cmd_parse_event("BLOCK_JOB_READY", NULL, 1, &ev));
    CHECK(ev.device == NULL);

    /* unknown and deliberately ignored events */
    CHECK(!qmp_cmd_parse_event("NO_SUCH_EVENT", NULL, 1, &ev));
    CHECK(!qmp_cmd_parse_event("DEVICE_TRAY_MOVED", NULL, 1, &ev));
    CHECK(!qmp_cmd_parse_event("", NULL, 1, &ev));
}

static void t_block_info(void *data)
{
    char *path = script("query-block.json");
    char *buf = NULL;
    ssize_t n = vmm_read_file(path, 1 << 20, false, &buf);
    free(path);
    REQUIRE(n > 0);
    struct json_object *ret = json_tokener_parse(buf);
    free(buf);
    REQUIRE(ret);
    VmmBlockInfo *info = NULL;
    size_t count = 0;
    CHECK_INT(qmp_cmd_parse_block_info(ret, &info, &count, NULL), 0);
    CHECK_INT(count, 4);
    if (count == 4) {
        CHECK_STR(info[0].device, "disk0");
        CHECK_INT(info[0].chain_len, 2);
        CHECK_STR(info[0].chain[0].filename, "/tmp/qt/ov.qcow2");
        CHECK_STR(info[0].chain[0].node_name, "disk0-fmt");
        CHECK_STR(info[0].chain[1].filename, "/work/guest/disk.qcow2");
        CHECK(info[0].chain[1].node_name == NULL);
        CHECK(!info[0].removable);
        CHECK_INT(info[1].position, 3);
        CHECK(info[1].removable && info[1].tray_open);
        CHECK_INT(info[1].chain_len, 0);
        CHECK_INT(info[2].position, 5);
        CHECK_INT(info[2].chain_len, 1);
        CHECK(info[2].read_only);
        CHECK_STR(info[2].chain[0].filename, "/tmp/qt/t.iso");
        CHECK_INT(info[3].position, 7); /* mistyped members: defaults */
        CHECK(!info[3].removable);
        CHECK_INT(info[3].chain_len, 0);
    }
    vmm_block_info_free(info, count);
    json_object_put(ret);

    struct json_object *notlist = parse("{\"a\": 1}");
    CHECK_INT(qmp_cmd_parse_block_info(notlist, &info, &count, NULL), -EPROTO);
    json_object_put(notlist);

    CHECK_INT(qmp_cmd_disk_position("disk12"), 12);
    CHECK_INT(qmp_cmd_disk_position("/machine/peripheral/disk3/virtio-backend"), 3);
    CHECK_INT(qmp_cmd_disk_position("disk16"), -1);
    CHECK_INT(qmp_cmd_disk_position("disk"), -1);
    CHECK_INT(qmp_cmd_disk_position("disk1x"), -1);
    CHECK_INT(qmp_cmd_disk_position("nic0"), -1);
    CHECK_INT(qmp_cmd_disk_position("disk99999999999"), -1);
}

static void t_migrate_info(void *data)
{
    QmpMigrateInfo mi;
    struct json_object *r = parse("{}");
    qmp_cmd_parse_migrate_info(r, &mi);
    CHECK_STR(mi.status, "none");
    json_object_put(r);
    r = parse("{\"status\": \"active\", \"ram\": {\"transferred\": 100, \"total\": 400, "
              "\"remaining\": -5}}");
    qmp_cmd_parse_migrate_info(r, &mi);
    CHECK_STR(mi.status, "active");
    CHECK_INT(mi.transferred, 100);
    CHECK_INT(mi.total, 400);
    CHECK_INT(mi.remaining, 0);
    json_object_put(r);
    r = parse("{\"status\": \"failed\", \"error-desc\": \"Unable to write to socket\"}");
    qmp_cmd_parse_migrate_info(r, &mi);
    CHECK_STR(mi.error, "Unable to write to socket");
    qmp_cmd_migrate_info_release(&mi);
    json_object_put(r);

    VmmJobInfo ji;
    r = parse("{\"current-progress\": 5, \"status\": \"ready\", \"total-progress\": 10, "
              "\"type\": \"commit\", \"id\": \"c1\"}");
    CHECK_INT(qmp_cmd_parse_job(r, &ji), 0);
    CHECK(ji.ready);
    CHECK_INT(ji.len, 10);
    vmm_job_info_release(&ji);
    json_object_put(r);
    r = parse("{\"status\": \"ready\"}");
    CHECK_INT(qmp_cmd_parse_job(r, &ji), -EPROTO);
    json_object_put(r);
}

int main(int argc, char **argv)
{
    data_dir = argc > 1 ? argv[1] : "data";
    log_set_level(LOG_LEVEL_ERROR);
    test_run("transcript: greeting, events around replies, quit", t_basic, NULL);
    test_run("transcript: garbage, foreign replies, split line", t_garbage, NULL);
    test_run("transcript: monitor closes during a command", t_close, NULL);
    test_run("transcript: monitor never answers -> timeout", t_silent, NULL);
    test_run("transcript: error replies and their classes", t_errors, NULL);
    test_run("transcript: over-long line dropped, stream continues", t_huge, NULL);
    test_run("open: not QMP, closed, no greeting", t_open_failures, NULL);
    test_run("transcript: getfd passes a descriptor", t_getfd, NULL);
    test_run("replies out of order reach the right waiters", t_out_of_order, NULL);
    test_run("event decoding", t_events, NULL);
    test_run("query-block decoding", t_block_info, NULL);
    test_run("query-migrate and job decoding", t_migrate_info, NULL);
    return test_done();
}
