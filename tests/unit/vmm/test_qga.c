/*
 * Tests of the guest-agent client (qga.c) against a fake agent on a
 * socketpair: the usual commands and their decoding, resynchronisation
 * through guest-sync-delimited past garbage and stale replies, replies
 * longer than the line limit, an agent that answers garbage, stays silent or
 * goes away. Every call must come back within its timeout.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "vmm/qga.h"
#include "vmm/qmp_cmd.h"
#include "vmm/vmm_util.h"
#include "vmm_test.h"

typedef enum {
    AGENT_NORMAL,
    AGENT_GARBAGE_BEFORE_SYNC, /* junk and a stale reply before the sentinel */
    AGENT_HUGE_FSINFO,         /* guest-get-fsinfo answers 2 MiB on one line */
    AGENT_FLOOD_INFO,          /* guest-info answers 3 MiB without a newline, then a line */
    AGENT_GARBAGE_PING,        /* the first guest-ping gets garbage */
    AGENT_SILENT,              /* answers sync, then nothing */
    AGENT_CLOSE_ON_PING,       /* closes the channel on guest-ping */
    AGENT_MUTE,                /* answers nothing at all */
} AgentMode;

typedef struct Agent {
    int fd;
    AgentMode mode;
    pthread_t thread;
    int pings;
    int syncs;
    char *password_seen;
} Agent;

static void agent_send(Agent *a, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(a->fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

static void agent_line(Agent *a, const char *s)
{
    agent_send(a, s, strlen(s));
    agent_send(a, "\n", 1);
}

static void agent_big(Agent *a, size_t n, bool newline)
{
    char *b = xmalloc(n + 1);
    memset(b, 'y', n);
    b[n] = '\n';
    agent_send(a, b, n + (newline ? 1 : 0));
    free(b);
}

static void agent_handle(Agent *a, const char *line)
{
    struct json_object *req = json_tokener_parse(line);
    const char *cmd = qmp_cmd_get_str(req, "execute");
    struct json_object *args = qmp_cmd_get_obj(req, "arguments");
    if (!cmd) {
        json_object_put(req);
        return;
    }
    if (strcmp(cmd, "guest-sync-delimited") == 0) {
        int64_t id = 0;
        qmp_cmd_get_int(args, "id", &id);
        a->syncs++;
        if (a->mode == AGENT_MUTE) {
            json_object_put(req);
            return;
        }
        if (a->mode == AGENT_GARBAGE_BEFORE_SYNC && a->syncs == 1) {
            agent_line(a, "{\"return\": {\"stale\": true}}");
            agent_line(a, "@@@ not json @@@");
            agent_send(a, "\xff", 1);
            agent_line(a, "{\"return\": 12345}"); /* a stale sync reply */
            agent_line(a, "\x01\x02 binary junk");
        }
        char buf[64];
        snprintf(buf, sizeof(buf), "\xff{\"return\": %lld}", (long long)id);
        agent_line(a, buf);
    } else if (a->mode == AGENT_SILENT) {
        /* swallow */
    } else if (strcmp(cmd, "guest-ping") == 0) {
        a->pings++;
        if (a->mode == AGENT_CLOSE_ON_PING) {
            shutdown(a->fd, SHUT_RDWR);
        } else if (a->mode == AGENT_GARBAGE_PING && a->pings == 1) {
            agent_line(a, "garbage garbage");
        } else {
            agent_line(a, "{\"return\": {}}");
        }
    } else if (strcmp(cmd, "guest-info") == 0) {
        if (a->mode == AGENT_FLOOD_INFO)
            agent_big(a, 3 * 1024 * 1024, false);
        agent_line(a, "{\"return\": {\"version\": \"7.2.22\", \"supported_commands\": []}}");
    } else if (strcmp(cmd, "guest-get-host-name") == 0) {
        agent_line(a, "{\"return\": {\"host-name\": \"guest-one\"}}");
    } else if (strcmp(cmd, "guest-get-osinfo") == 0) {
        agent_line(a, "{\"return\": {\"id\": \"debian\", \"kernel-release\": \"6.1.0\"}}");
    } else if (strcmp(cmd, "guest-network-get-interfaces") == 0) {
        agent_line(a, "{\"return\": [{\"name\": \"eth0\", \"hardware-address\": "
                      "\"52:54:00:12:34:56\", \"ip-addresses\": [{\"ip-address\": \"10.0.2.15\", "
                      "\"ip-address-type\": \"ipv4\", \"prefix\": 24}]}]}");
    } else if (strcmp(cmd, "guest-get-fsinfo") == 0) {
        if (a->mode == AGENT_HUGE_FSINFO) {
            agent_send(a, "{\"return\": \"", 12);
            agent_big(a, 2 * 1024 * 1024, false);
            agent_line(a, "\"}");
        } else {
            agent_line(a, "{\"return\": [{\"name\": \"vda1\", \"mountpoint\": \"/\", \"type\": "
                          "\"ext4\", \"disk\": []}]}");
        }
    } else if (strcmp(cmd, "guest-get-users") == 0) {
        agent_line(a, "{\"return\": [{\"user\": \"root\", \"login-time\": 1.5}]}");
    } else if (strcmp(cmd, "guest-fsfreeze-freeze") == 0 ||
               strcmp(cmd, "guest-fsfreeze-thaw") == 0) {
        agent_line(a, "{\"return\": 2}");
    } else if (strcmp(cmd, "guest-fsfreeze-status") == 0) {
        agent_line(a, "{\"return\": \"thawed\"}");
    } else if (strcmp(cmd, "guest-set-user-password") == 0) {
        free(a->password_seen);
        a->password_seen = xstrdup_or_null(qmp_cmd_get_str(args, "password"));
        agent_line(a, "{\"return\": {}}");
    } else if (strcmp(cmd, "guest-exec") == 0) {
        agent_line(a, "{\"return\": {\"pid\": 4242}}");
    } else if (strcmp(cmd, "guest-exec-status") == 0) {
        /* "hello\n" and "oops" */
        agent_line(a, "{\"return\": {\"exited\": true, \"exitcode\": 3, \"out-data\": "
                      "\"aGVsbG8K\", \"err-data\": \"b29wcw==\"}}");
    } else if (strcmp(cmd, "guest-shutdown") == 0) {
        const char *mode = qmp_cmd_get_str(args, "mode");
        if (mode && strcmp(mode, "reboot") == 0)
            agent_line(a, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"reboot "
                          "refused\"}}");
        /* success: no reply, as the real agent */
    } else {
        char buf[256];
        snprintf(buf, sizeof(buf), "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                                   "\"The command %s has not been found\"}}", cmd);
        agent_line(a, buf);
    }
    json_object_put(req);
}

static void *agent_main(void *p)
{
    Agent *a = p;
    StrBuf buf = STRBUF_INIT;
    for (;;) {
        char chunk[4096];
        ssize_t n = read(a->fd, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)chunk[i] != 0xff) /* the client's parser reset */
                strbuf_addch(&buf, chunk[i]);
        char *nl;
        while ((nl = memchr(buf.buf, '\n', buf.len))) {
            *nl = '\0';
            agent_handle(a, buf.buf);
            size_t rest = buf.len - (size_t)(nl - buf.buf) - 1;
            memmove(buf.buf, nl + 1, rest);
            strbuf_setlen(&buf, rest);
        }
    }
    strbuf_release(&buf);
    return NULL;
}

static QgaClient *agent_start(Agent *a, AgentMode mode)
{
    memset(a, 0, sizeof(*a));
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return NULL;
    a->fd = sv[0];
    a->mode = mode;
    pthread_create(&a->thread, NULL, agent_main, a);
    return qga_open_fd(sv[1]);
}

static void agent_stop(Agent *a, QgaClient *c)
{
    qga_close(c);
    pthread_join(a->thread, NULL);
    close(a->fd);
    free(a->password_seen);
}

static void t_commands(void *data)
{
    Agent a;
    QgaClient *c = agent_start(&a, AGENT_NORMAL);
    REQUIRE(c);
    char *err = NULL;
    CHECK_INT(qga_ping(c, 2000, &err), 0);
    CHECK_INT(a.syncs, 1);
    CHECK_INT(qga_ping(c, 2000, &err), 0);
    CHECK_INT(a.syncs, 1); /* in sync: no new sync */
    struct json_object *o = NULL;
    CHECK_INT(qga_info(c, 2000, &o, &err), 0);
    CHECK_STR(qmp_cmd_get_str(o, "version"), "7.2.22");
    json_object_put(o);
    char *host = NULL;
    CHECK_INT(qga_get_host_name(c, 2000, &host, &err), 0);
    CHECK_STR(host, "guest-one");
    free(host);
    CHECK_INT(qga_get_osinfo(c, 2000, &o, &err), 0);
    CHECK_STR(qmp_cmd_get_str(o, "id"), "debian");
    json_object_put(o);
    CHECK_INT(qga_network_get_interfaces(c, 2000, &o, &err), 0);
    CHECK(o && json_object_array_length(o) == 1);
    json_object_put(o);
    CHECK_INT(qga_get_fsinfo(c, 2000, &o, &err), 0);
    json_object_put(o);
    CHECK_INT(qga_get_users(c, 2000, &o, &err), 0);
    json_object_put(o);
    CHECK_INT(qga_fsfreeze_freeze(c, 2000, &err), 2);
    char *st = NULL;
    CHECK_INT(qga_fsfreeze_status(c, 2000, &st, &err), 0);
    CHECK_STR(st, "thawed");
    free(st);
    CHECK_INT(qga_fsfreeze_thaw(c, 2000, &err), 2);
    CHECK_INT(qga_set_user_password(c, "root", "s3cret!", false, 2000, &err), 0);
    CHECK_STR(a.password_seen, "czNjcmV0IQ==");
    char *argv[] = {(char *)"/bin/echo", (char *)"hello", NULL};
    int64_t pid = 0;
    CHECK_INT(qga_exec(c, argv, true, 2000, &pid, &err), 0);
    CHECK_INT(pid, 4242);
    QgaExecStatus es;
    CHECK_INT(qga_exec_status(c, pid, 2000, &es, &err), 0);
    CHECK(es.exited);
    CHECK_INT(es.exit_code, 3);
    CHECK_INT(es.out_len, 6);
    CHECK_STR(es.out, "hello\n");
    CHECK_STR(es.err, "oops");
    qga_exec_status_release(&es);
    CHECK_INT(qga_execute(c, "guest-frobnicate", NULL, 2000, NULL, &err), -ENOSYS);
    CHECK_CONTAINS(err, "guest-frobnicate");
    /* guest-shutdown answers nothing on success, an error otherwise */
    CHECK_INT(qga_shutdown(c, "powerdown", 2000, &err), 0);
    CHECK_INT(qga_shutdown(c, "reboot", 2000, &err), -EIO);
    CHECK_CONTAINS(err, "reboot refused");
    CHECK_INT(qga_shutdown(c, "explode", 2000, &err), -EINVAL);
    CHECK_INT(qga_ping(c, 2000, &err), 0); /* still usable afterwards */
    agent_stop(&a, c);
    free(err);
}

static void t_resync(void *data)
{
    Agent a;
    QgaClient *c = agent_start(&a, AGENT_GARBAGE_BEFORE_SYNC);
    REQUIRE(c);
    char *err = NULL;
    CHECK_MSG(qga_ping(c, 2000, &err) == 0, "ping: %s", err);
    char *host = NULL;
    CHECK_INT(qga_get_host_name(c, 2000, &host, &err), 0);
    CHECK_STR(host, "guest-one");
    free(host);
    agent_stop(&a, c);

    /* a garbage reply fails that call; the next one resynchronises */
    c = agent_start(&a, AGENT_GARBAGE_PING);
    CHECK_INT(qga_ping(c, 2000, &err), -EPROTO);
    CHECK_INT(qga_ping(c, 2000, &err), 0);
    CHECK_INT(a.syncs, 2);
    agent_stop(&a, c);
    free(err);
}

static void t_huge(void *data)
{
    Agent a;
    QgaClient *c = agent_start(&a, AGENT_HUGE_FSINFO);
    REQUIRE(c);
    char *err = NULL;
    struct json_object *o = NULL;
    CHECK_INT(qga_get_fsinfo(c, 5000, &o, &err), -EMSGSIZE);
    CHECK(o == NULL);
    CHECK_CONTAINS(err, "longer than");
    CHECK_INT(qga_ping(c, 5000, &err), 0);
    /* a larger limit lets it through */
    qga_set_max_line(c, 4 * 1024 * 1024);
    CHECK_INT(qga_get_fsinfo(c, 5000, &o, &err), -EPROTO); /* a string, not a list */
    json_object_put(o);
    agent_stop(&a, c);

    c = agent_start(&a, AGENT_FLOOD_INFO);
    CHECK_INT(qga_info(c, 5000, &o, &err), -EMSGSIZE);
    CHECK_INT(qga_ping(c, 5000, &err), 0);
    agent_stop(&a, c);
    free(err);
}

static void t_silence(void *data)
{
    Agent a;
    char *err = NULL;
    QgaClient *c = agent_start(&a, AGENT_SILENT);
    REQUIRE(c);
    int64_t t0 = vmm_now_ms();
    CHECK_INT(qga_ping(c, 300, &err), -ETIMEDOUT);
    CHECK(vmm_now_ms() - t0 < 3000);
    CHECK_CONTAINS(err, "is the agent running");
    agent_stop(&a, c);

    c = agent_start(&a, AGENT_MUTE);
    t0 = vmm_now_ms();
    CHECK_INT(qga_ping(c, 300, &err), -ETIMEDOUT);
    CHECK_INT(qga_sync(c, 300, &err), -ETIMEDOUT);
    CHECK(vmm_now_ms() - t0 < 5000);
    agent_stop(&a, c);

    c = agent_start(&a, AGENT_CLOSE_ON_PING);
    CHECK_INT(qga_ping(c, 2000, &err), -ECONNRESET);
    CHECK_INT(qga_ping(c, 2000, &err), -ECONNRESET);
    agent_stop(&a, c);

    CHECK_INT(qga_connect("/nonexistent/qga.sock", &c, &err), -ENOENT);
    CHECK_CONTAINS(err, "/nonexistent/qga.sock");
    free(err);
}

/* A channel held by another client (QEMU accepts one at a time, its listen backlog
 * is full): connecting fails at once instead of waiting for the holder to let go. */
static void t_busy(void *data)
{
    (void)data;
    char dir[] = "/tmp/hx-qga-busy-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/qga.sock", dir);
    int l = vmm_unix_listen(path);
    REQUIRE(l >= 0);
    REQUIRE(listen(l, 0) == 0); /* QEMU's backlog: the one pending client */
    int held[4];
    int n = 0, r = 0;
    while (n < 4 && (r = vmm_unix_connect(path)) >= 0)
        held[n++] = r; /* queued, never accepted */
    CHECK(n >= 1);
    CHECK_INT(r, -EAGAIN);
    QgaClient *c = NULL;
    char *err = NULL;
    int64_t t0 = vmm_now_ms();
    CHECK_INT(qga_connect(path, &c, &err), -EAGAIN);
    CHECK(vmm_now_ms() - t0 < 1000);
    CHECK_CONTAINS(err, "held by another client");
    free(err);
    for (int i = 0; i < n; i++)
        close(held[i]);
    close(l);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    test_run("commands and their replies", t_commands, NULL);
    test_run("resync past garbage and stale replies", t_resync, NULL);
    test_run("replies beyond the line limit are refused, the channel recovers", t_huge, NULL);
    test_run("silent, mute and vanishing agents: bounded errors", t_silence, NULL);
    test_run("a channel held by another client: an error at once", t_busy, NULL);
    return test_done();
}
