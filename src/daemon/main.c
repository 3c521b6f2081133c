/*
 * hyperxed: the host daemon. Parses its options, prepares the state and run
 * directories, opens the object database, creates the host's objects on
 * first start, and serves XenAPI on the unix socket and the configured
 * HTTP/HTTPS addresses until SIGTERM. Without --foreground it daemonises
 * and returns only once it serves requests (or failed to).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libxml/parser.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "api/http.h"
#include "api/routes.h"
#include "config.h"
#include "daemon/daemon.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/uuid.h"
#include "util/xalloc.h"
#include "vmm/vmm.h"
#include "util/banned.h"

#define MAX_LISTEN 16
#define HOUSEKEEPING_INTERVAL 30

typedef struct Options {
    char *state_dir;
    char *run_dir;
    const char *listen[MAX_LISTEN];
    int nlisten;
    const char *accel;
    bool foreground;
    const char *password_file;
    const char *log_level;
    const char *vmm;
    bool user_networking;
} Options;

static volatile sig_atomic_t stop_requested;
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    stop_requested = sig;
    if (signal_pipe[1] >= 0) {
        char c = 1;
        if (write(signal_pipe[1], &c, 1) < 0) {
            /* nothing to do */
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: hyperxed [OPTION]...\n"
            "The hyperxe host daemon: serves XenAPI and runs VMs on QEMU.\n\n"
            "  --state-dir DIR        database, storage and certificates\n"
            "                         (default /var/lib/hyperxe as root,\n"
            "                         $XDG_STATE_HOME/hyperxe otherwise)\n"
            "  --run-dir DIR          sockets and pid files (default /run/hyperxe as\n"
            "                         root, $XDG_RUNTIME_DIR/hyperxe otherwise)\n"
            "  --listen ADDR:PORT     serve HTTP there; https://ADDR:PORT for HTTPS;\n"
            "                         repeatable (default as root: [::]:80 and\n"
            "                         https://[::]:443; otherwise only the unix socket)\n"
            "  --accel auto|kvm|tcg   the QEMU accelerator (default auto)\n"
            "  --foreground           do not daemonise; log to stderr too\n"
            "  --initial-password-file FILE\n"
            "                         root's password on first start (else one is\n"
            "                         generated into <state-dir>/initial-password)\n"
            "  --log-level LEVEL      error, warn, info (default) or debug\n"
            "  --user-networking      VIFs use QEMU user-mode networking: no bridge,\n"
            "                         tap, NAT or DHCP server is made on the host\n"
            "  --help, --version\n");
}

static char *default_dir(const char *root_dir, const char *xdg_env, const char *fallback)
{
    if (geteuid() == 0)
        return xstrdup(root_dir);
    const char *xdg = getenv(xdg_env);
    if (xdg && *xdg)
        return xasprintf("%s/hyperxe", xdg);
    const char *home = getenv("HOME");
    return xasprintf("%s/%s/hyperxe", home ? home : "/tmp", fallback);
}

static bool parse_options(int argc, char **argv, Options *o)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"run-dir", required_argument, NULL, 'r'},
        {"listen", required_argument, NULL, 'l'},
        {"accel", required_argument, NULL, 'a'},
        {"foreground", no_argument, NULL, 'f'},
        {"initial-password-file", required_argument, NULL, 'p'},
        {"log-level", required_argument, NULL, 'L'},
        {"user-networking", no_argument, NULL, 'U'},
        {"vmm", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->accel = "auto";
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->state_dir = xstrdup(optarg);
            break;
        case 'r':
            o->run_dir = xstrdup(optarg);
            break;
        case 'l':
            if (o->nlisten == MAX_LISTEN) {
                fprintf(stderr, "hyperxed: at most %d --listen options\n", MAX_LISTEN);
                return false;
            }
            o->listen[o->nlisten++] = optarg;
            break;
        case 'a':
            if (strcmp(optarg, "auto") && strcmp(optarg, "kvm") && strcmp(optarg, "tcg")) {
                fprintf(stderr, "hyperxed: --accel must be auto, kvm or tcg\n");
                return false;
            }
            o->accel = optarg;
            break;
        case 'f':
            o->foreground = true;
            break;
        case 'p':
            o->password_file = optarg;
            break;
        case 'L':
            if (log_level_from_string(optarg) < 0) {
                fprintf(stderr, "hyperxed: unknown log level '%s'\n", optarg);
                return false;
            }
            o->log_level = optarg;
            break;
        case 'U':
            o->user_networking = true;
            break;
        case 'M':
            /* Hidden: "sim" runs simulated VMs (fast tests of the layers above QEMU). */
            if (vmm_backend_from_string(optarg) < 0) {
                fprintf(stderr, "hyperxed: --vmm must be qemu or sim\n");
                return false;
            }
            o->vmm = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("hyperxed %s\n", HX_VERSION);
            exit(0);
        default:
            usage(stderr);
            return false;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hyperxed: unexpected argument '%s'\n", argv[optind]);
        return false;
    }
    if (!o->state_dir)
        o->state_dir = default_dir("/var/lib/hyperxe", "XDG_STATE_HOME", ".local/state");
    if (!o->run_dir)
        o->run_dir = default_dir("/run/hyperxe", "XDG_RUNTIME_DIR", ".cache/run");
    if (o->nlisten == 0 && geteuid() == 0) {
        o->listen[o->nlisten++] = "[::]:80";
        o->listen[o->nlisten++] = "https://[::]:443";
    }
    return true;
}

static bool mkdir_p(const char *path, mode_t mode)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            free(p);
            return false;
        }
        *s = '/';
    }
    bool ok = mkdir(p, mode) == 0 || errno == EEXIST;
    free(p);
    return ok;
}

/* The accelerator: KVM only if /dev/kvm opens and the CPU has vmx or svm. */
static const char *choose_accel(const char *want)
{
    if (strcmp(want, "auto") != 0)
        return want;
    char *why = NULL;
    VmmAccel a = vmm_accel_detect(&why);
    log_info("--accel auto: %s", why ? why : vmm_accel_to_string(a));
    free(why);
    return vmm_accel_to_string(a);
}

static char *initial_password(const Options *o, XsError **errp)
{
    if (o->password_file) {
        _cleanup_fclose_ FILE *f = fopen(o->password_file, "r");
        char line[512];
        if (!f || !fgets(line, sizeof(line), f)) {
            xs_error_internal(errp, "cannot read the password file %s", o->password_file);
            return NULL;
        }
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) {
            xs_error_internal(errp, "the password file %s is empty", o->password_file);
            return NULL;
        }
        return xstrdup(line);
    }
    static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char rnd[16];
    random_bytes(rnd, sizeof(rnd));
    char pw[sizeof(rnd) + 1];
    for (size_t i = 0; i < sizeof(rnd); i++)
        pw[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    pw[sizeof(rnd)] = '\0';
    char *path = xasprintf("%s/initial-password", o->state_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, pw, strlen(pw)) == (ssize_t)strlen(pw) &&
              write(fd, "\n", 1) == 1;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        xs_error_internal(errp, "cannot write %s", path);
        free(path);
        return NULL;
    }
    log_info("the root password is in %s", path);
    free(path);
    return xstrdup(pw);
}

typedef struct Housekeeper {
    Api *api;
    HxEnv *env;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
} Housekeeper;

static void *housekeeping_main(void *arg)
{
    Housekeeper *hk = arg;
    pthread_mutex_lock(&hk->lock);
    while (!hk->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += HOUSEKEEPING_INTERVAL;
        pthread_cond_timedwait(&hk->cond, &hk->lock, &ts);
        if (hk->stop)
            break;
        pthread_mutex_unlock(&hk->lock);
        api_session_reap(hk->api);
        api_task_gc(hk->api);
        daemon_refresh_metrics(hk->env);
        pthread_mutex_lock(&hk->lock);
    }
    pthread_mutex_unlock(&hk->lock);
    return NULL;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Forks; the parent waits until the child reports readiness on a pipe. */
static int daemonise(int *ready_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char status = 1;
        ssize_t n = read(p[0], &status, 1);
        if (n != 1) {
            int ws;
            waitpid(pid, &ws, 0);
            _exit(1);
        }
        _exit(status == 0 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > 2)
            close(null);
    }
    *ready_fd = p[1];
    return 0;
}

static void report_ready(int *ready_fd, bool ok)
{
    if (*ready_fd < 0)
        return;
    char c = ok ? 0 : 1;
    if (write(*ready_fd, &c, 1) < 0) {
        /* the parent is gone */
    }
    close(*ready_fd);
    *ready_fd = -1;
}

int main(int argc, char **argv)
{
    Options o;
    if (!parse_options(argc, argv, &o))
        return 2;
    umask(022);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    xmlInitParser();

    if (!mkdir_p(o.state_dir, 0755) || !mkdir_p(o.run_dir, 0755)) {
        fprintf(stderr, "hyperxed: cannot create %s or %s: %s\n", o.state_dir, o.run_dir,
                strerror(errno));
        return 1;
    }

    /* One daemon per run directory. */
    char *pidpath = xasprintf("%s/hyperxed.pid", o.run_dir);
    int pidfd = open(pidpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (pidfd < 0 || flock(pidfd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "hyperxed: another hyperxed is running with run directory %s\n",
                o.run_dir);
        return 1;
    }

    int ready_fd = -1;
    if (!o.foreground && daemonise(&ready_fd) < 0) {
        fprintf(stderr, "hyperxed: cannot daemonise: %s\n", strerror(errno));
        return 1;
    }
    /* The lock belongs to this (possibly forked) process now. */
    if (flock(pidfd, LOCK_EX | LOCK_NB) < 0) {
        report_ready(&ready_fd, false);
        return 1;
    }
    if (ftruncate(pidfd, 0) == 0) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
        if (write(pidfd, buf, (size_t)n) < 0) {
            /* not fatal */
        }
    }

    if (o.log_level)
        log_set_level((LogLevel)log_level_from_string(o.log_level));
    char *logpath = xasprintf("%s/log", o.state_dir);
    if (log_open_file(logpath) < 0)
        fprintf(stderr, "hyperxed: cannot open %s\n", logpath);
    log_set_stderr(o.foreground);
    log_info("hyperxed %s starting (state %s, run %s)", HX_VERSION, o.state_dir, o.run_dir);

    HxEnv env = {0};
    env.state_dir = o.state_dir;
    env.run_dir = o.run_dir;
    env.accel = xstrdup(choose_accel(o.accel));
    env.user_networking = o.user_networking;
    if (o.vmm) {
        vmm_set_backend((VmmBackend)vmm_backend_from_string(o.vmm));
        log_info("VMs run on the %s backend", o.vmm);
    }
    char hostname[256] = "localhost";
    gethostname(hostname, sizeof(hostname) - 1);
    env.hostname = xstrdup(hostname);
    log_info("accelerator: %s", env.accel);

    XsError *err = NULL;
    char *dbpath = xasprintf("%s/db.sqlite", o.state_dir);
    env.db = db_open(dbpath, &err);
    if (!env.db || !daemon_init_objects(&env, &err)) {
        log_error("cannot initialise the database %s: %s", dbpath,
                  err && err->nparams ? err->params[0] : "?");
        report_ready(&ready_fd, false);
        return 1;
    }
    if (!ops_startup(&env, &err)) {
        log_error("cannot start: %s", err && err->nparams ? err->params[0] : err ? err->code : "?");
        report_ready(&ready_fd, false);
        return 1;
    }
    Api *api = api_new(&env);
    char *pw = initial_password(&o, &err);
    if (!pw || !api_auth_init(api, pw, &err)) {
        log_error("cannot set the root password: %s", err && err->nparams ? err->params[0] : "?");
        report_ready(&ready_fd, false);
        return 1;
    }
    free(pw);
    api_task_reconcile(api);

    char *key = NULL, *cert = NULL, *terr = NULL;
    char *certpath = xasprintf("%s/xapi-ssl.pem", o.state_dir);
    char *address = daemon_management_address();
    bool want_tls = false;
    for (int i = 0; i < o.nlisten; i++)
        want_tls |= strncmp(o.listen[i], "https://", 8) == 0;
    if (want_tls && !daemon_tls_load(certpath, hostname, address, &key, &cert, &terr)) {
        log_error("%s", terr);
        report_ready(&ready_fd, false);
        return 1;
    }

    size_t nroutes;
    const HttpRoute *routes = api_routes(&nroutes);
    HttpServerConfig cfg = {
        .routes = routes,
        .nroutes = nroutes,
        .connection_limit = 8192,
        .connection_timeout = 300,
        .user = api,
    };
    HttpServer *servers[MAX_LISTEN + 1];
    int nservers = 0;
    char *sock = xasprintf("unix:%s/hyperxed.sock", o.run_dir);
    const char *all[MAX_LISTEN + 1];
    all[0] = sock;
    for (int i = 0; i < o.nlisten; i++)
        all[i + 1] = o.listen[i];
    for (int i = 0; i <= o.nlisten; i++) {
        char *serr = NULL;
        HttpServer *s = http_server_start(all[i], &cfg, key, cert, &serr);
        if (!s && strstr(all[i], "[::]")) {
            /* No IPv6 here: fall back to IPv4. */
            free(serr);
            serr = NULL;
            StrBuf alt = STRBUF_INIT;
            const char *p = strstr(all[i], "[::]");
            strbuf_add(&alt, all[i], (size_t)(p - all[i]));
            strbuf_adds(&alt, "0.0.0.0");
            strbuf_adds(&alt, p + 4);
            s = http_server_start(alt.buf, &cfg, key, cert, &serr);
            strbuf_release(&alt);
        }
        if (!s) {
            log_error("%s", serr);
            free(serr);
            report_ready(&ready_fd, false);
            return 1;
        }
        log_info("serving XenAPI on %s", all[i]);
        servers[nservers++] = s;
    }

    if (pipe2(signal_pipe, O_CLOEXEC) < 0) {
        log_error("pipe: %s", strerror(errno));
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    Housekeeper hk = {.api = api, .env = &env};
    pthread_mutex_init(&hk.lock, NULL);
    pthread_cond_init(&hk.cond, NULL);
    pthread_t hk_thread;
    pthread_create(&hk_thread, NULL, housekeeping_main, &hk);

    log_info("hyperxed ready");
    report_ready(&ready_fd, true);

    while (!stop_requested) {
        char c;
        if (read(signal_pipe[0], &c, 1) < 0 && errno != EINTR)
            break;
    }
    log_info("stopping on signal %d", (int)stop_requested);
    pthread_mutex_lock(&hk.lock);
    hk.stop = true;
    pthread_cond_signal(&hk.cond);
    pthread_mutex_unlock(&hk.lock);
    pthread_join(hk_thread, NULL);
    for (int i = 0; i < nservers; i++)
        http_server_stop(servers[i]);
    ops_shutdown(&env);
    api_free(api);
    db_close(env.db);
    unlink(pidpath);
    log_info("stopped");
    log_close();
    free(sock);
    free(certpath);
    free(address);
    free(key);
    free(cert);
    free(dbpath);
    free(logpath);
    free(pidpath);
    free(env.accel);
    free(env.user_networking_reason);
    free(env.hostname);
    free(env.host_ref);
    free(env.pool_ref);
    free(o.state_dir);
    free(o.run_dir);
    return 0;
}
