/*
 * xe help, xe help <command>, xe help --all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

static const char *const common[] = {
    "cd-list",        "help",          "host-list",      "network-list", "sr-list",
    "template-list",  "vdi-list",      "vm-cd-add",      "vm-cd-insert", "vm-export",
    "vm-import",      "vm-install",    "vm-list",        "vm-param-get", "vm-param-list",
    "vm-param-set",   "vm-reboot",     "vm-shutdown",    "vm-start",     "vm-uninstall",
    "snapshot-list",  "vm-snapshot",   "vm-clone",       "vif-create",   "vdi-create",
};

static void list_commands(Cli *cli, bool all)
{
    const CliCommandList *l = cli_all_commands();
    StrBuf line = STRBUF_INIT;
    for (size_t i = 0; i < l->n; i++) {
        const CliCommand *c = &l->items[i];
        if (c->flags & CLI_CMD_HIDDEN)
            continue;
        if (!all) {
            bool is_common = false;
            for (size_t k = 0; k < ARRAY_SIZE(common); k++)
                is_common |= strcmp(common[k], c->name) == 0;
            if (!is_common)
                continue;
        }
        if (cli->minimal) {
            fprintf(cli->out, "%s%s", line.len ? "," : "", c->name);
            strbuf_adds(&line, "x");
            continue;
        }
        if (line.len && line.len + strlen(c->name) + 2 > 74) {
            fprintf(cli->out, "%s,\n", line.buf);
            strbuf_reset(&line);
        }
        strbuf_addf(&line, "%s%s", line.len ? ", " : "    ", c->name);
    }
    if (cli->minimal)
        fputc('\n', cli->out);
    else if (line.len)
        fprintf(cli->out, "%s\n", line.buf);
    strbuf_release(&line);
}

/* "a,b" -> "a, b" */
static void add_list(StrBuf *sb, const char *list)
{
    for (const char *p = list; p && *p; p++) {
        if (*p == ',')
            strbuf_adds(sb, ", ");
        else
            strbuf_addch(sb, *p);
    }
}

static int help_one(Cli *cli, const char *name)
{
    const CliCommandList *l = cli_all_commands();
    for (size_t i = 0; i < l->n; i++) {
        const CliCommand *c = &l->items[i];
        if (strcmp(c->name, name) != 0)
            continue;
        CliRow row = {0};
        StrBuf reqd = STRBUF_INIT, optn = STRBUF_INIT;
        add_list(&reqd, c->reqd);
        add_list(&optn, c->optn);
        cli_row_add(&row, "command name        ", c->name);
        cli_row_add(&row, "reqd params     ", reqd.buf);
        cli_row_add(&row, "optional params ", optn.buf);
        cli_row_add(&row, "description     ", c->help ? c->help : "");
        cli_print_table(cli, &row, 1);
        cli_row_release(&row);
        strbuf_release(&reqd);
        strbuf_release(&optn);
        return 0;
    }
    return cli_fail(cli, "Unknown command '%s'", name);
}

static int cmd_help(Cli *cli, const CliCommand *cmd)
{
    int rc = 0;
    bool any = false;
    for (size_t i = 0; i < cli->nparams; i++) {
        if (cli->params[i].value)
            continue;
        any = true;
        rc |= help_one(cli, cli->params[i].key);
    }
    if (any)
        return rc;
    bool all = cli_has(cli, "all");
    if (!cli->minimal) {
        fprintf(cli->out,
                "Usage:\n"
                "  xe <command>\n"
                "    [ -s <server> ]            hyperxe host (default: the local socket)\n"
                "    [ -p <port> ]              port number\n"
                "    [ -u <username> -pw <password> | -pwf <password file> ]\n"
                "                               user name and password, or a file holding\n"
                "                               them on two lines\n"
                "    [ --nossl ]                plain HTTP instead of HTTPS\n"
                "    [ <other arguments> ... ]  command-specific parameters, name=value\n"
                "\n"
                "To get help on a specific command:\n"
                "  xe help <command>\n\n");
        if (all)
            fprintf(cli->out, "Full command list\n-----------------\n");
        else
            fprintf(cli->out, "To get a full listing of commands:\n  xe help --all\n\n"
                              "Common command list\n-------------------\n");
    }
    list_commands(cli, all);
    return 0;
}

static const CliCommand help_cmds[] = {
    {"help", "", "all", "Shows help on xe, or on the commands named.", cmd_help,
     CLI_CMD_NO_LOGIN, NULL, NULL},
};

void cli_help_commands(CliCommandList *l)
{
    cli_register(l, help_cmds, ARRAY_SIZE(help_cmds));
}
