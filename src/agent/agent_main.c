/*
 * hyperxe-agent: the guest agent that runs inside hyperxe guests, speaking
 * the QEMU guest-agent protocol on the virtio-serial port
 * org.qemu.guest_agent.0 (or on stdin/stdout with --stdio, for tests).
 *
 * This file owns the process: options, daemonising, the port (found through
 * /dev/virtio-ports or /sys/class/virtio-ports, reopened when it vanishes),
 * and the poll loop that feeds requests to the dispatcher and writes replies.
 * While no host is connected the port reads EOF (or polls HUP): the agent
 * then waits and tries again; it never exits for that. Command semantics
 * live in the cmd_*.c files, not here.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "agent/agent.h"
#include "agent/agent_io.h"
#include "agent/cmd.h"
#include "agent/qga_dispatch.h"
#include "agent/qga_stream.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include "util/banned.h"

#define AGENT_PORT_NAME "org.qemu.guest_agent.0"
/*
 * How long to wait before looking at a port with no host connected again
 * (the port polls HUP and reads EOF all that time), or at a missing port.
 */
#define AGENT_RETRY_MS         100
#define AGENT_MISSING_RETRY_MS 1000
/* Replies queued for a host that does not read are dropped beyond this. */
#define AGENT_MAX_OUTPUT  (128u * 1024 * 1024)
#define AGENT_MAX_POLLFDS 64

typedef struct AgentMain {
    Agent ag;
    const char *device; /* --device, or NULL to search */
    const char *pidfile;
    const char *log_file;
    char *disable_list; /* the -b arguments, joined */
    bool daemonize;
    int fd_in, fd_out; /* -1 while the port is closed */
    int sigfd;
    QgaStream stream;
    StrBuf out;
    size_t out_off;
    int64_t retry_at_ms; /* port: do not read before this time */
    bool warned_missing;
    bool quit;
} AgentMain;

static void agent_main_usage(FILE *f)
{
    fprintf(f,
            "Usage: hyperxe-agent [OPTION]...\n"
            "The hyperxe guest agent: answers QEMU guest-agent (QGA) requests from the host.\n"
            "\n"
            "  -p, --device PATH          port to use (default: the virtio-serial port\n"
            "                             " AGENT_PORT_NAME ", found in /dev/virtio-ports\n"
            "                             or /sys/class/virtio-ports)\n"
            "      --stdio                talk on stdin/stdout and exit at end of input (tests);\n"
            "                             refuses to freeze, shut down or change passwords\n"
            "                             unless told where (--power-cmd, --sysconfdir)\n"
            "  -d, --daemonize            run in the background\n"
            "  -f, --pidfile PATH         write the pid there; refuse to start twice\n"
            "  -l, --log-file PATH        append log lines there\n"
            "  -v, --verbose              log debug messages\n"
            "  -b, --disable CMD[,CMD]    refuse these commands\n"
            "  -t, --fsfreeze-timeout S   thaw frozen filesystems after S seconds (default 60)\n"
            "      --sysconfdir DIR       read os-release, passwd, shadow from DIR (default /etc)\n"
            "      --power-cmd PROGRAM    run \"PROGRAM MODE\" for guest-shutdown instead of\n"
            "                             asking init\n"
            "  -V, --version              print the version and exit\n"
            "  -h, --help                 print this help and exit\n");
}

/* -- the port -------------------------------------------------------------- */

/* The device node of the agent port, or NULL if the guest has none (yet). */
static char *agent_main_find_port(void)
{
    const char *link = "/dev/virtio-ports/" AGENT_PORT_NAME;
    if (access(link, F_OK) == 0)
        return xstrdup(link);
    glob_t g;
    char *found = NULL;
    if (glob("/sys/class/virtio-ports/*/name", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && !found; i++) {
            StrBuf name = STRBUF_INIT;
            if (agent_io_read_line(g.gl_pathv[i], &name) == 0 && STREQ(name.buf, AGENT_PORT_NAME)) {
                /* .../virtio-ports/vport0p1/name -> /dev/vport0p1 */
                char *dir = xstrdup(g.gl_pathv[i]);
                *strrchr(dir, '/') = '\0';
                found = xasprintf("/dev/%s", strrchr(dir, '/') + 1);
                free(dir);
            }
            strbuf_release(&name);
        }
        globfree(&g);
    }
    return found;
}

static void agent_main_close_port(AgentMain *m)
{
    if (m->fd_in >= 0 && m->fd_in != 0)
        close(m->fd_in);
    m->fd_in = m->fd_out = -1;
    qga_stream_reset(&m->stream);
    strbuf_reset(&m->out);
    m->out_off = 0;
}

static void agent_main_open_port(AgentMain *m)
{
    _cleanup_free_ char *path = m->device ? xstrdup(m->device) : agent_main_find_port();
    int fd = path ? open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY) : -1;
    if (fd < 0) {
        if (!m->warned_missing)
            log_warn("no guest agent port %s (%s); waiting for it", path ? path : AGENT_PORT_NAME,
                     path ? strerror(errno) : "not found");
        m->warned_missing = true;
        m->retry_at_ms = agent_io_now_ms() + AGENT_MISSING_RETRY_MS;
        return;
    }
    if (m->warned_missing)
        log_info("using %s", path);
    else
        log_debug("using %s", path);
    m->warned_missing = false;
    m->fd_in = m->fd_out = fd;
}

/*
 * No host is connected (HUP or EOF on the port): look again a little later.
 * Nothing is dropped: the port reports HUP until the guest has seen the
 * host's "port open" message, which can arrive after the host's first
 * request, so a reply must survive it. A new client starts with a 0xFF and
 * guest-sync-delimited (the QGA rule) and skips whatever stale bytes reach it.
 */
static void agent_main_no_host(AgentMain *m)
{
    m->retry_at_ms = agent_io_now_ms() + AGENT_RETRY_MS;
}

/* Writing failed for good: drop the replies. */
static void agent_main_drop_output(AgentMain *m)
{
    strbuf_reset(&m->out);
    m->out_off = 0;
    m->retry_at_ms = agent_io_now_ms() + AGENT_RETRY_MS;
}

/* -- requests and replies -------------------------------------------------- */

static void agent_main_feed(AgentMain *m, const char *data, size_t len)
{
    while (len > 0) {
        size_t used = 0;
        QgaStreamEvent ev = qga_stream_feed(&m->stream, data, len, &used);
        data += used;
        len -= used;
        switch (ev) {
        case QGA_STREAM_MESSAGE:
            qga_dispatch_request(&m->ag, m->stream.buf.buf, m->stream.buf.len, &m->out);
            break;
        case QGA_STREAM_JUNK:
            qga_dispatch_parse_error(&m->out, "invalid token");
            break;
        case QGA_STREAM_TOO_LONG:
            log_warn("request longer than %zu bytes dropped", m->stream.max);
            qga_dispatch_parse_error(&m->out, "request too long");
            break;
        default:
            break;
        }
        if (m->out.len > AGENT_MAX_OUTPUT) {
            log_warn("host does not read its replies; dropping %zu bytes", m->out.len);
            strbuf_reset(&m->out);
            m->out_off = 0;
        }
    }
}

/* Writes queued replies; returns false if the port failed. */
static bool agent_main_flush(AgentMain *m, bool blocking)
{
    while (m->out_off < m->out.len) {
        ssize_t n = write(m->fd_out, m->out.buf + m->out_off, m->out.len - m->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && !blocking)
            return true;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = m->fd_out, .events = POLLOUT};
            poll(&p, 1, 1000);
            continue;
        }
        if (n < 0)
            return false;
        m->out_off += (size_t)n;
    }
    strbuf_reset(&m->out);
    m->out_off = 0;
    return true;
}

static void agent_main_read(AgentMain *m)
{
    char buf[65536];
    ssize_t n = read(m->fd_in, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0) {
        agent_main_feed(m, buf, (size_t)n);
        return;
    }
    if (m->ag.stdio) {
        m->quit = true;
        return;
    }
    if (n == 0) {
        agent_main_no_host(m);
    } else {
        log_warn("reading the port failed: %s; reopening it", strerror(errno));
        agent_main_close_port(m);
        m->retry_at_ms = agent_io_now_ms() + AGENT_MISSING_RETRY_MS;
    }
}

/* -- signals --------------------------------------------------------------- */

static int agent_main_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void agent_main_handle_signals(AgentMain *m)
{
    struct signalfd_siginfo si;
    while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            cmd_exec_reap(&m->ag);
            break;
        case SIGHUP:
            break;
        default:
            log_debug("signal %u: exiting", si.ssi_signo);
            m->quit = true;
            break;
        }
    }
}

/* -- start-up -------------------------------------------------------------- */

static int agent_main_pidfile(const char *path)
{
    StrBuf old = STRBUF_INIT;
    if (agent_io_read_line(path, &old) == 0) {
        long pid = strtol(old.buf, NULL, 10);
        if (pid > 0 && pid != getpid() && kill((pid_t)pid, 0) == 0) {
            _cleanup_free_ char *exe = xasprintf("/proc/%ld/exe", pid);
            char target[4096];
            ssize_t n = readlink(exe, target, sizeof(target) - 1);
            target[n > 0 ? n : 0] = '\0';
            if (strstr(target, "hyperxe-agent")) {
                strbuf_release(&old);
                return -EEXIST;
            }
        }
    }
    strbuf_release(&old);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    char line[32];
    int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    return agent_io_write_all(fd, line, (size_t)n);
}

static int agent_main_daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    setsid();
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        return -errno;
    umask(022);
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

static char **agent_main_split(const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **v = xnew0(char *, n + 1);
    size_t k = 0;
    const char *s = list;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len)
            v[k++] = xstrndup(s, len);
        if (!e)
            break;
        s = e + 1;
    }
    return v;
}

enum {
    OPT_STDIO = 256,
    OPT_SYSCONFDIR,
    OPT_POWER_CMD,
};

static int agent_main_options(AgentMain *m, int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", required_argument, NULL, 'p'},
        {"stdio", no_argument, NULL, OPT_STDIO},
        {"daemonize", no_argument, NULL, 'd'},
        {"pidfile", required_argument, NULL, 'f'},
        {"log-file", required_argument, NULL, 'l'},
        {"verbose", no_argument, NULL, 'v'},
        {"disable", required_argument, NULL, 'b'},
        {"fsfreeze-timeout", required_argument, NULL, 't'},
        {"sysconfdir", required_argument, NULL, OPT_SYSCONFDIR},
        {"power-cmd", required_argument, NULL, OPT_POWER_CMD},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:df:l:vb:t:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            m->device = optarg;
            break;
        case OPT_STDIO:
            m->ag.stdio = true;
            break;
        case 'd':
            m->daemonize = true;
            break;
        case 'f':
            m->pidfile = optarg;
            break;
        case 'l':
            m->log_file = optarg;
            break;
        case 'v':
            log_set_level(LOG_LEVEL_DEBUG);
            break;
        case 'b': {
            /* Repeated -b options add up. */
            char *all =
                m->ag.disabled ? xasprintf("%s,%s", m->disable_list, optarg) : xstrdup(optarg);
            free(m->disable_list);
            m->disable_list = all;
            strvfreep(&m->ag.disabled);
            m->ag.disabled = agent_main_split(all);
            break;
        }
        case 't': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v == 0 || v > 86400) {
                fprintf(stderr, "hyperxe-agent: --fsfreeze-timeout wants 1..86400 seconds\n");
                return 2;
            }
            m->ag.freeze_timeout = (unsigned)v;
            break;
        }
        case OPT_SYSCONFDIR:
            m->ag.sysconfdir = optarg;
            m->ag.sysconfdir_given = true;
            break;
        case OPT_POWER_CMD:
            m->ag.power_cmd = optarg;
            break;
        case 'V':
            printf("hyperxe-agent %s\n", HX_VERSION);
            exit(0);
        case 'h':
            agent_main_usage(stdout);
            exit(0);
        default:
            agent_main_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hyperxe-agent: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (m->ag.stdio && (m->device || m->daemonize)) {
        fprintf(stderr, "hyperxe-agent: --stdio excludes --device and --daemonize\n");
        return 2;
    }
    return 0;
}

/* -- the loop -------------------------------------------------------------- */

static void agent_main_loop(AgentMain *m)
{
    struct pollfd fds[AGENT_MAX_POLLFDS];
    while (!m->quit) {
        int64_t now = agent_io_now_ms();
        if (m->fd_in < 0 && !m->ag.stdio && now >= m->retry_at_ms)
            agent_main_open_port(m);

        size_t n = 0;
        fds[n++] = (struct pollfd){.fd = m->sigfd, .events = POLLIN};
        size_t port_idx = SIZE_MAX;
        /* While no host is connected the port is left alone until retry_at_ms. */
        bool reading = m->fd_in >= 0 && now >= m->retry_at_ms;
        if (reading) {
            port_idx = n;
            fds[n++] = (struct pollfd){
                .fd = m->fd_in,
                .events = (short)(POLLIN |
                                  (m->out.len > m->out_off && m->fd_out == m->fd_in ? POLLOUT : 0)),
            };
        }
        size_t exec_idx = n;
        n += cmd_exec_pollfds(&m->ag, fds + n, AGENT_MAX_POLLFDS - n);

        int timeout = -1;
        if (m->fd_in < 0 || !reading) {
            int64_t wait = m->retry_at_ms - now;
            timeout = wait < 0 ? 0 : (int)wait;
        }
        int ft = cmd_fs_timeout_ms(&m->ag);
        if (ft >= 0 && (timeout < 0 || ft < timeout))
            timeout = ft;

        int r = poll(fds, n, timeout);
        if (r < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            break;
        }
        if (r > 0) {
            if (fds[0].revents)
                agent_main_handle_signals(m);
            if (port_idx != SIZE_MAX && fds[port_idx].revents) {
                short ev = fds[port_idx].revents;
                if (ev & POLLNVAL) {
                    agent_main_close_port(m);
                } else if (ev & POLLIN) {
                    agent_main_read(m);
                } else if (ev & (POLLHUP | POLLERR)) {
                    if (m->ag.stdio)
                        m->quit = true;
                    else
                        agent_main_no_host(m);
                }
            }
            cmd_exec_handle(&m->ag, fds + exec_idx, n - exec_idx);
        }
        if (m->fd_out >= 0 && m->out.len > m->out_off && (m->ag.stdio || reading) &&
            !agent_main_flush(m, m->ag.stdio)) {
            log_debug("writing a reply failed: %s", strerror(errno));
            agent_main_drop_output(m);
        }
        if (m->out.len == m->out_off)
            cmd_power_act(&m->ag);
        cmd_fs_tick(&m->ag);
    }
    if (m->fd_out >= 0 && m->ag.stdio)
        agent_main_flush(m, true);
}

int main(int argc, char **argv)
{
    AgentMain m = {
        .ag = {.sysconfdir = "/etc", .freeze_timeout = 60},
        .fd_in = -1,
        .fd_out = -1,
        .sigfd = -1,
    };
    int r = agent_main_options(&m, argc, argv);
    if (r)
        return r;

    if (m.log_file && log_open_file(m.log_file) < 0)
        fprintf(stderr, "hyperxe-agent: cannot open %s: %s\n", m.log_file, strerror(errno));
    if (m.daemonize) {
        r = agent_main_daemonize();
        if (r < 0) {
            log_error("cannot daemonize: %s", strerror(-r));
            return 1;
        }
        log_set_stderr(false);
    }
    if (m.pidfile) {
        r = agent_main_pidfile(m.pidfile);
        if (r == -EEXIST) {
            log_error("another hyperxe-agent is running (see %s)", m.pidfile);
            return 1;
        }
        if (r < 0)
            log_warn("cannot write %s: %s", m.pidfile, strerror(-r));
    }

    /*
     * json-c seeds its default string hash with getrandom(), which blocks
     * in a freshly booted guest until the kernel's random pool is ready
     * (more than a second under TCG): the first reply would wait for it.
     * The seedless hash is enough here; requests come from the hypervisor,
     * which owns the guest anyway, and are bounded in size.
     */
    json_global_set_string_hash(JSON_C_STR_HASH_PERLLIKE);
    m.sigfd = agent_main_signals();
    if (m.sigfd < 0) {
        log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    qga_stream_init(&m.stream, 0);
    strbuf_init(&m.out, 0);
    cmd_exec_init(&m.ag);
    cmd_fs_init(&m.ag);
    if (m.ag.stdio) {
        m.fd_in = 0;
        m.fd_out = 1;
    }
    log_info("hyperxe-agent %s started", HX_VERSION);

    agent_main_loop(&m);

    if (cmd_fs_frozen(&m.ag))
        cmd_fs_thaw_all(&m.ag);
    cmd_fs_release(&m.ag);
    cmd_exec_release(&m.ag);
    qga_stream_release(&m.stream);
    strbuf_release(&m.out);
    close(m.sigfd);
    if (m.pidfile)
        unlink(m.pidfile);
    strvfreep(&m.ag.disabled);
    free(m.disable_list);
    log_info("hyperxe-agent stopped");
    return 0;
}
