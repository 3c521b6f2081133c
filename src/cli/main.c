/*
 * xe's entry point: settings from ~/.xe, XE_EXTRA_ARGS and the command line
 * (in increasing precedence), the connection (the local unix socket by
 * default, HTTPS with -s, plain HTTP with --nossl), login, and dispatch to
 * the command table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "cli/cli.h"
#include "util/cleanup.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

typedef struct Settings {
    char *server;
    char *port;
    char *username;
    char *password;
    char *passwordfile;
    bool nossl;
    bool debug;
} Settings;

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = xstrdup(v);
}

/* Applies a global setting; returns false if key is not one. */
static bool apply_setting(Settings *s, const char *key, const char *value)
{
    if (strcmp(key, "server") == 0)
        set_str(&s->server, value);
    else if (strcmp(key, "port") == 0)
        set_str(&s->port, value);
    else if (strcmp(key, "username") == 0)
        set_str(&s->username, value);
    else if (strcmp(key, "password") == 0)
        set_str(&s->password, value);
    else if (strcmp(key, "passwordfile") == 0)
        set_str(&s->passwordfile, value);
    else if (strcmp(key, "nossl") == 0)
        cli_parse_bool(value, &s->nossl);
    else if (strcmp(key, "debug") == 0 || strcmp(key, "debugonfail") == 0)
        cli_parse_bool(value, &s->debug);
    else
        return false;
    return true;
}

static void read_rc(Settings *s)
{
    const char *home = getenv("HOME");
    if (!home)
        return;
    char *path = xasprintf("%s/.xe", home);
    FILE *f = fopen(path, "r");
    free(path);
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#')
            continue;
        *eq = '\0';
        apply_setting(s, line, eq + 1);
    }
    fclose(f);
}

static void read_extra_args(Settings *s)
{
    const char *extra = getenv("XE_EXTRA_ARGS");
    if (!extra)
        return;
    StrBuf item = STRBUF_INIT;
    for (const char *p = extra;; p++) {
        if (*p == '\\' && p[1] == ',') {
            strbuf_addch(&item, ',');
            p++;
            continue;
        }
        if (*p == ',' || !*p) {
            char *eq = strchr(item.buf, '=');
            if (eq) {
                *eq = '\0';
                apply_setting(s, item.buf, eq + 1);
            }
            strbuf_reset(&item);
            if (!*p)
                break;
            continue;
        }
        strbuf_addch(&item, *p);
    }
    strbuf_release(&item);
}

static void add_param(Cli *cli, const char *key, const char *value)
{
    cli->params = xreallocarray(cli->params, cli->nparams + 1, sizeof(CliParam));
    cli->params[cli->nparams].key = xstrdup(key);
    cli->params[cli->nparams].value = value ? xstrdup(value) : NULL;
    cli->nparams++;
}

static char *default_socket(void)
{
    const char *rundir = getenv("HYPERXE_RUN_DIR");
    if (rundir && *rundir)
        return xasprintf("%s/hyperxed.sock", rundir);
    if (geteuid() == 0)
        return xstrdup("/run/hyperxe/hyperxed.sock");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg)
        return xasprintf("%s/hyperxe/hyperxed.sock", xdg);
    const char *home = getenv("HOME");
    return xasprintf("%s/.cache/run/hyperxe/hyperxed.sock", home ? home : "/tmp");
}

/* ---- the command table ------------------------------------------------------ */

static CliCommandList all_commands;

void cli_register(CliCommandList *l, const CliCommand *cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        XGROW(l->items, l->n + 1, l->alloc);
        l->items[l->n++] = cmds[i];
    }
}

static int cmd_cmp(const void *a, const void *b)
{
    return strcmp(((const CliCommand *)a)->name, ((const CliCommand *)b)->name);
}

const CliCommandList *cli_all_commands(void)
{
    return &all_commands;
}

static void build_table(void)
{
    cli_help_commands(&all_commands);
    cli_generic_commands(&all_commands);
    cli_vm_commands(&all_commands);
    cli_device_commands(&all_commands);
    cli_storage_commands(&all_commands);
    cli_snapshot_commands(&all_commands);
    cli_importexport_commands(&all_commands);
    qsort(all_commands.items, all_commands.n, sizeof(CliCommand), cmd_cmp);
}

static const CliCommand *find_command(const char *name)
{
    CliCommand key = {.name = name};
    return bsearch(&key, all_commands.items, all_commands.n, sizeof(CliCommand), cmd_cmp);
}

static bool check_required(Cli *cli, const CliCommand *cmd)
{
    if (!cmd->reqd)
        return true;
    char *copy = xstrdup(cmd->reqd);
    bool ok = true;
    for (char *tok = copy, *next; tok && *tok; tok = next) {
        next = strchr(tok, ',');
        if (next)
            *next++ = '\0';
        if (!cli_has(cli, tok)) {
            cli_fail(cli, "Required parameter not found: %s\nFor usage run: 'xe help'", tok);
            ok = false;
            break;
        }
    }
    free(copy);
    return ok;
}

int main(int argc, char **argv)
{
    Settings s = {0};
    Cli cli = {0};
    int rc = 1;
    cli.out = stdout;
    cli.interactive = isatty(STDERR_FILENO);
    read_rc(&s);
    read_extra_args(&s);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-s") == 0 || strcmp(a, "-h") == 0) && i + 1 < argc) {
            set_str(&s.server, argv[++i]);
        } else if (strcmp(a, "-p") == 0 && i + 1 < argc) {
            set_str(&s.port, argv[++i]);
        } else if (strcmp(a, "-u") == 0 && i + 1 < argc) {
            set_str(&s.username, argv[++i]);
        } else if (strcmp(a, "-pw") == 0 && i + 1 < argc) {
            set_str(&s.password, argv[++i]);
        } else if (strcmp(a, "-pwf") == 0 && i + 1 < argc) {
            set_str(&s.passwordfile, argv[++i]);
        } else if (strcmp(a, "--nossl") == 0) {
            s.nossl = true;
        } else if (strcmp(a, "--debug") == 0 || strcmp(a, "--debug-on-fail") == 0) {
            s.debug = true;
        } else if (strcmp(a, "-help") == 0 || strcmp(a, "--help") == 0) {
            cli.command = "help";
        } else if (strcmp(a, "-version") == 0 || strcmp(a, "--version") == 0) {
            printf("xe (hyperxe) %s\n", HX_VERSION);
            rc = 0;
            goto out;
        } else if (strncmp(a, "--", 2) == 0 && a[2]) {
            add_param(&cli, a + 2, "true");
        } else if (a[0] == '-' && a[1] && !strchr(a, '=')) {
            fprintf(stderr, "Unknown switch: %s\n", a);
            goto out;
        } else if (strchr(a, '=')) {
            const char *eq = strchr(a, '=');
            char *key = xstrndup(a, (size_t)(eq - a));
            if (!apply_setting(&s, key, eq + 1))
                add_param(&cli, key, eq + 1);
            free(key);
        } else if (!cli.command) {
            cli.command = a;
        } else {
            add_param(&cli, a, NULL);
        }
    }
    if (!cli.command)
        cli.command = "help";
    bool b;
    const char *v;
    if ((v = cli_param(&cli, "minimal")) && cli_parse_bool(v, &b))
        cli.minimal = b;
    if ((v = cli_param(&cli, "force")) && cli_parse_bool(v, &b))
        cli.force = b;
    if ((v = cli_param(&cli, "multiple")) && cli_parse_bool(v, &b))
        cli.multiple = b;

    build_table();
    const CliCommand *cmd = find_command(cli.command);
    if (!cmd) {
        fprintf(stderr, "Unknown command: %s\nFor usage run: 'xe help'\n", cli.command);
        goto out;
    }
    if (!check_required(&cli, cmd))
        goto out;

    if (!(cmd->flags & CLI_CMD_NO_LOGIN)) {
        if (s.passwordfile) {
            FILE *f = fopen(s.passwordfile, "r");
            char line[512];
            if (!f) {
                fprintf(stderr, "Cannot read the password file %s\n", s.passwordfile);
                goto out;
            }
            if (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = '\0';
                set_str(&s.username, line);
            }
            if (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = '\0';
                set_str(&s.password, line);
            }
            fclose(f);
        }
        XcTarget t = {0};
        char *sock = NULL;
        bool local = !s.server || (!s.port && (strcmp(s.server, "127.0.0.1") == 0 ||
                                               strcmp(s.server, "localhost") == 0));
        if (s.server && (s.server[0] == '/' || strncmp(s.server, "unix:", 5) == 0)) {
            sock = xstrdup(s.server[0] == '/' ? s.server : s.server + 5);
            t.unix_path = sock;
        } else if (local && access((sock = default_socket()), F_OK) == 0) {
            t.unix_path = sock;
        } else {
            t.host = s.server ? s.server : "127.0.0.1";
            t.tls = !s.nossl;
            t.port = s.port ? atoi(s.port) : 0;
        }
        cli.conn = xc_new(&t);
        free(sock);
        XsError *err = NULL;
        if (!xc_login(cli.conn, s.username ? s.username : "root",
                      s.password ? s.password : "", "cli", &err)) {
            rc = cli_error(&cli, err);
            xs_error_free(err);
            xc_free(cli.conn);
            cli.conn = NULL;
            goto out;
        }
    }
    rc = cmd->run(&cli, cmd);
    fflush(cli.out);
    if (cli.conn) {
        xc_logout(cli.conn);
        xc_free(cli.conn);
    }
out:
    if (!HX_FREE_AT_EXIT) {
        /* The process ends here: leave the memory to the kernel. */
        fflush(stdout);
        return rc;
    }
    cli_cache_free(&cli);
    for (size_t i = 0; i < cli.nparams; i++) {
        free(cli.params[i].key);
        free(cli.params[i].value);
    }
    free(cli.params);
    for (size_t i = 0; i < all_commands.n; i++) {
        if (all_commands.items[i].cls) {
            free((char *)all_commands.items[i].name);
            free((char *)all_commands.items[i].help);
        }
    }
    free(all_commands.items);
    free(s.server);
    free(s.port);
    free(s.username);
    free(s.password);
    free(s.passwordfile);
    return rc;
}
