/*
 * One dnsmasq per network with DHCP, bound to its bridge only. All of its
 * files live in the run directory given by the caller: dnsmasq-<bridge>.conf
 * (everything it is told; the command line is only --conf-file), .pid,
 * .leases and .log. dnsmasq daemonizes into its own session, so it outlives
 * the daemon that started it; the next start finds it through the pid file
 * and /proc/<pid>/cmdline and adopts it instead of starting a second one.
 * This file must not decide addresses or ranges: the caller passes them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/spawn.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define NET_DNSMASQ_LOG_MAX          (1024 * 1024)
#define NET_DNSMASQ_LEASES_MAX_LINES 100000

static char *net_dnsmasq_file(const char *run_dir, const char *bridge, const char *ext)
{
    return xasprintf("%s/dnsmasq-%s.%s", run_dir, bridge, ext);
}

char *net_dnsmasq_lease_path(const char *run_dir, const char *bridge)
{
    return net_dnsmasq_file(run_dir, bridge, "leases");
}

/* No newlines or other control characters may reach the conf file. */
static bool net_dnsmasq_text_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            return false;
    return true;
}

static bool net_dnsmasq_domain_ok(const char *d)
{
    if (!*d || strlen(d) > 253)
        return false;
    for (const char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return false;
    return true;
}

/* Reads a whole small file; NULL if missing or larger than max. */
static char *net_dnsmasq_read_file(const char *path, size_t max)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    StrBuf sb = STRBUF_INIT;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || sb.len + (size_t)n > max) {
            strbuf_release(&sb);
            return NULL;
        }
        if (n == 0)
            break;
        strbuf_add(&sb, buf, (size_t)n);
    }
    return strbuf_detach(&sb, NULL);
}

static int net_dnsmasq_write_file(const char *path, const char *text)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return -e;
        }
        done += (size_t)n;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

/* Is pid a live dnsmasq started with --conf-file=conf? */
static bool net_dnsmasq_is_ours(pid_t pid, const char *conf)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *stat = net_dnsmasq_read_file(path, 4096);
    if (!stat)
        return false;
    const char *rp = strrchr(stat, ')');
    if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char cmd[8192];
    ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
    if (n <= 0)
        return false;
    cmd[n] = '\0';
    /* argv strings are NUL-separated; look at each one. */
    _cleanup_free_ char *want = xasprintf("--conf-file=%s", conf);
    for (char *p = cmd; p < cmd + n; p += strlen(p) + 1)
        if (strcmp(p, want) == 0)
            return true;
    return false;
}

static pid_t net_dnsmasq_read_pid(const char *pidfile)
{
    _cleanup_free_ char *s = net_dnsmasq_read_file(pidfile, 64);
    if (!s)
        return -ENOENT;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v <= 1 || v > 0x3fffffff)
        return -EINVAL;
    return (pid_t)v;
}

pid_t net_dnsmasq_pid(const char *run_dir, const char *bridge)
{
    _cleanup_free_ char *pidfile = net_dnsmasq_file(run_dir, bridge, "pid");
    _cleanup_free_ char *conf = net_dnsmasq_file(run_dir, bridge, "conf");
    pid_t pid = net_dnsmasq_read_pid(pidfile);
    if (pid > 0 && net_dnsmasq_is_ours(pid, conf))
        return pid;
    return -ESRCH;
}

static void net_dnsmasq_build_conf(const NetDnsmasqConfig *cfg, const char *pidfile,
                                   const char *leases, const char *logfile, StrBuf *sb)
{
    char addr[INET_ADDRSTRLEN], start[INET_ADDRSTRLEN], end[INET_ADDRSTRLEN], mask[INET_ADDRSTRLEN];
    struct in_addr rs = cfg->range_start, re = cfg->range_end;
    if (rs.s_addr == 0 && re.s_addr == 0) {
        rs = net_ipv4_add(net_ipv4_network(&cfg->address), 2);
        re = net_ipv4_add(net_ipv4_broadcast(&cfg->address), (uint32_t)-1);
    }
    struct in_addr m = {htonl(cfg->address.prefix ? 0xffffffffu << (32 - cfg->address.prefix) : 0)};
    inet_ntop(AF_INET, &cfg->address.addr, addr, sizeof(addr));
    inet_ntop(AF_INET, &rs, start, sizeof(start));
    inet_ntop(AF_INET, &re, end, sizeof(end));
    inet_ntop(AF_INET, &m, mask, sizeof(mask));
    uint32_t count =
        ntohl(re.s_addr) >= ntohl(rs.s_addr) ? ntohl(re.s_addr) - ntohl(rs.s_addr) + 1 : 1;

    strbuf_addf(sb, "# dnsmasq for the hyperxe network on bridge %s; rewritten on every start.\n",
                cfg->bridge);
    strbuf_addf(sb, "pid-file=%s\n", pidfile);
    strbuf_addf(sb, "interface=%s\n", cfg->bridge);
    strbuf_adds(sb, "except-interface=lo\nbind-interfaces\n");
    strbuf_addf(sb, "listen-address=%s\n", addr);
    /* Nothing from the host's own files except, if asked, its upstream DNS servers. */
    strbuf_adds(sb, "no-hosts\nstrict-order\ndomain-needed\nbogus-priv\n");
    if (cfg->dns_upstream)
        strbuf_adds(sb, "resolv-file=/etc/resolv.conf\n");
    else
        strbuf_adds(sb, "no-resolv\n");
    if (cfg->domain) {
        strbuf_addf(sb, "domain=%s\n", cfg->domain);
        strbuf_addf(sb, "local=/%s/\n", cfg->domain);
    }
    strbuf_addf(sb, "dhcp-range=%s,%s,%s,%u\n", start, end, mask,
                cfg->lease_seconds ? cfg->lease_seconds : 3600);
    strbuf_addf(sb, "dhcp-lease-max=%u\n", count);
    strbuf_addf(sb, "dhcp-leasefile=%s\n", leases);
    strbuf_adds(sb, "dhcp-authoritative\ndhcp-no-override\n");
    if (!cfg->router)
        strbuf_adds(sb, "dhcp-option=option:router\n");
    strbuf_addf(sb, "log-facility=%s\n", logfile);
}

static void net_dnsmasq_rotate_log(const char *logfile)
{
    struct stat st;
    if (stat(logfile, &st) == 0 && st.st_size > NET_DNSMASQ_LOG_MAX) {
        _cleanup_free_ char *old = xasprintf("%s.old", logfile);
        if (rename(logfile, old) < 0)
            log_warn("cannot rotate %s: %s", logfile, strerror(errno));
    }
}

/* Waits up to ms for pid to be gone (or a zombie). */
static bool net_dnsmasq_wait_gone(pid_t pid, int ms)
{
    for (int waited = 0; waited <= ms; waited += 10) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        _cleanup_free_ char *stat = net_dnsmasq_read_file(path, 4096);
        if (!stat)
            return true;
        const char *rp = strrchr(stat, ')');
        if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static int net_dnsmasq_kill(pid_t pid)
{
    if (kill(pid, SIGTERM) < 0)
        return errno == ESRCH ? 0 : -errno;
    if (net_dnsmasq_wait_gone(pid, 5000))
        return 0;
    log_warn("dnsmasq %d ignored SIGTERM for 5 s; killing it", (int)pid);
    if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
        return -errno;
    return net_dnsmasq_wait_gone(pid, 5000) ? 0 : -ETIMEDOUT;
}

int net_dnsmasq_start(const NetDnsmasqConfig *cfg, pid_t *pid_out, bool *adopted, StrBuf *err)
{
    if (pid_out)
        *pid_out = 0;
    if (adopted)
        *adopted = false;
    if (!cfg || !net_link_name_valid(cfg->bridge) || !cfg->run_dir || !*cfg->run_dir ||
        !net_dnsmasq_text_ok(cfg->run_dir) || !net_dnsmasq_text_ok(cfg->bridge) ||
        cfg->address.prefix > 30 || (cfg->domain && !net_dnsmasq_domain_ok(cfg->domain))) {
        if (err)
            strbuf_adds(err, "invalid dnsmasq configuration (bridge, run directory, address or "
                             "domain)");
        return -EINVAL;
    }
    if (mkdir(cfg->run_dir, 0755) < 0 && errno != EEXIST) {
        int e = errno;
        if (err)
            strbuf_addf(err, "cannot create %s: %s", cfg->run_dir, strerror(e));
        return -e;
    }
    _cleanup_free_ char *conf = net_dnsmasq_file(cfg->run_dir, cfg->bridge, "conf");
    _cleanup_free_ char *pidfile = net_dnsmasq_file(cfg->run_dir, cfg->bridge, "pid");
    _cleanup_free_ char *leases = net_dnsmasq_file(cfg->run_dir, cfg->bridge, "leases");
    _cleanup_free_ char *logfile = net_dnsmasq_file(cfg->run_dir, cfg->bridge, "log");
    _cleanup_strbuf_ StrBuf text = STRBUF_INIT;
    net_dnsmasq_build_conf(cfg, pidfile, leases, logfile, &text);

    pid_t running = net_dnsmasq_pid(cfg->run_dir, cfg->bridge);
    if (running > 0) {
        _cleanup_free_ char *old = net_dnsmasq_read_file(conf, 1 << 20);
        if (old && strcmp(old, text.buf) == 0) {
            log_debug("adopting dnsmasq %d for %s", (int)running, cfg->bridge);
            if (pid_out)
                *pid_out = running;
            if (adopted)
                *adopted = true;
            return 0;
        }
        log_info("dnsmasq %d for %s has another configuration; restarting it", (int)running,
                 cfg->bridge);
        int r = net_dnsmasq_kill(running);
        if (r < 0) {
            if (err)
                strbuf_addf(err, "cannot stop the old dnsmasq %d: %s", (int)running, strerror(-r));
            return r;
        }
    }

    int r = net_dnsmasq_write_file(conf, text.buf);
    if (r < 0) {
        if (err)
            strbuf_addf(err, "cannot write %s: %s", conf, strerror(-r));
        return r;
    }
    unlink(pidfile);
    net_dnsmasq_rotate_log(logfile);
    /* dnsmasq opens the lease file itself, but fails if its directory is
     * missing; make sure the file exists so that look-ups find it. */
    int lfd = open(leases, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (lfd >= 0)
        close(lfd);

    _cleanup_free_ char *conf_arg = xasprintf("--conf-file=%s", conf);
    const char *argv[] = {cfg->binary ? cfg->binary : NET_DNSMASQ_PATH, conf_arg, NULL};
    SpawnOptions o = {.timeout_ms = 20000};
    SpawnResult res;
    r = spawn_run(argv, &o, &res);
    if (r < 0) {
        if (err)
            strbuf_addf(err, "cannot run %s: %s (install dnsmasq-base)", argv[0], strerror(-r));
        spawn_result_release(&res);
        return r;
    }
    if (!spawn_result_ok(&res)) {
        if (err) {
            strbuf_adds(err, "dnsmasq for ");
            strbuf_adds(err, cfg->bridge);
            strbuf_adds(err, " ");
            spawn_result_describe(&res, err);
        }
        spawn_result_release(&res);
        return -EIO;
    }
    spawn_result_release(&res);

    /* The daemon wrote its pid file before the parent exited; allow a little slack. */
    pid_t pid = -ESRCH;
    for (int i = 0; i < 200 && pid <= 0; i++) {
        pid = net_dnsmasq_pid(cfg->run_dir, cfg->bridge);
        if (pid <= 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (pid <= 0) {
        if (err)
            strbuf_addf(err, "dnsmasq for %s started but is not running; see %s", cfg->bridge,
                        logfile);
        return -ESRCH;
    }
    log_info("started dnsmasq %d for %s", (int)pid, cfg->bridge);
    if (pid_out)
        *pid_out = pid;
    return 0;
}

int net_dnsmasq_stop(const char *run_dir, const char *bridge)
{
    if (!net_link_name_valid(bridge) || !run_dir)
        return -EINVAL;
    pid_t pid = net_dnsmasq_pid(run_dir, bridge);
    if (pid > 0) {
        int r = net_dnsmasq_kill(pid);
        if (r < 0)
            return r;
    }
    _cleanup_free_ char *pidfile = net_dnsmasq_file(run_dir, bridge, "pid");
    _cleanup_free_ char *conf = net_dnsmasq_file(run_dir, bridge, "conf");
    unlink(pidfile);
    unlink(conf);
    return 0;
}

typedef struct NetLease {
    unsigned long long expiry; /* 0 = infinite */
    char ip[INET_ADDRSTRLEN];
} NetLease;

static int net_dnsmasq_lease_cmp(const void *a, const void *b)
{
    const NetLease *x = a, *y = b;
    /* infinite first, then the newest expiry */
    unsigned long long ex = x->expiry ? x->expiry : ~0ULL;
    unsigned long long ey = y->expiry ? y->expiry : ~0ULL;
    return (ex < ey) - (ex > ey);
}

int net_dnsmasq_lease_lookup(const char *lease_path, const NetMac *mac, char ***ips)
{
    *ips = NULL;
    _cleanup_fclose_ FILE *f = fopen(lease_path, "re");
    if (!f)
        return -errno;
    NetLease *v = NULL;
    size_t n = 0, alloc = 0;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    for (int lines = 0; lines < NET_DNSMASQ_LEASES_MAX_LINES; lines++) {
        ssize_t len = getline(&line, &cap, f);
        if (len < 0)
            break;
        if (len > 4096)
            continue;
        char exp_s[32], mac_s[64], ip_s[64];
        if (sscanf(line, "%31s %63s %63s", exp_s, mac_s, ip_s) != 3)
            continue;
        char *end;
        errno = 0;
        unsigned long long expiry = strtoull(exp_s, &end, 10);
        if (*end || errno || exp_s[0] == '-')
            continue;
        NetMac m;
        if (net_mac_parse(mac_s, &m, NULL) < 0 || !net_mac_equal(&m, mac))
            continue;
        struct in_addr a;
        if (inet_pton(AF_INET, ip_s, &a) != 1)
            continue;
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].ip, ip_s) == 0) {
                dup = true;
                break;
            }
        if (dup)
            continue;
        XGROW(v, n + 1, alloc);
        v[n].expiry = expiry;
        inet_ntop(AF_INET, &a, v[n].ip, sizeof(v[n].ip));
        n++;
    }
    if (n)
        qsort(v, n, sizeof(*v), net_dnsmasq_lease_cmp);
    char **out = xnew0(char *, n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i].ip);
    free(v);
    *ips = out;
    return 0;
}
