/*
 * xe's VM selectors: vm=<name or uuid> plus any VM field as a filter
 * (uuid=, name-label=, power-state=, other-config:key=value, ...), as
 * XenServer's commands that act on VMs accept them. Templates, snapshots and
 * the control domain are left out unless the command asks for them. No
 * match, or several without --multiple, is an error.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

static bool listed(const char *list, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, key, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

bool cli_select_vms(Cli *cli, const CliCommand *cmd, unsigned flags, CliSelection *sel)
{
    memset(sel, 0, sizeof(*sel));
    StrBuf filters = STRBUF_INIT;
    if (!(flags & CLI_VMS_TEMPLATES))
        strbuf_adds(&filters, "is-a-template=false");
    const char *vm = cli_param(cli, "vm");
    CliSelection all;
    bool ok = false;
    /* Every parameter the command does not use itself is a filter. */
    Cli sub = *cli;
    CliParam *kept = xcalloc(cli->nparams + 1, sizeof(CliParam));
    sub.params = kept;
    sub.nparams = 0;
    for (size_t i = 0; i < cli->nparams; i++) {
        const char *k = cli->params[i].key;
        if (!cli->params[i].value || strcmp(k, "vm") == 0 || cli_is_std_param(k) ||
            listed(cmd->reqd, k) || listed(cmd->optn, k))
            continue;
        kept[sub.nparams++] = cli->params[i];
    }
    bool selected = cli_select(&sub, &xs_class_VM, filters.buf, true, &all);
    cli->cache = sub.cache; /* records fetched for sub are the command's cache too */
    if (selected) {
        for (size_t i = 0; i < all.n; i++) {
            const XsValue *r = all.records[i];
            const XsValue *snap = xv_struct_get(r, "is_a_snapshot");
            const XsValue *dom0 = xv_struct_get(r, "is_control_domain");
            if (!(flags & CLI_VMS_SNAPSHOTS) && snap && snap->b && !(flags & CLI_VMS_TEMPLATES))
                continue;
            if (!(flags & CLI_VMS_DOM0) && dom0 && dom0->b)
                continue;
            if (vm) {
                const char *u = xv_struct_get_string(r, "uuid");
                const char *n = xv_struct_get_string(r, "name_label");
                if (!(u && strcmp(u, vm) == 0) && !(n && strcmp(n, vm) == 0))
                    continue;
            }
            sel->refs = xreallocarray(sel->refs, sel->n + 1, sizeof(char *));
            sel->records = xreallocarray(sel->records, sel->n + 1, sizeof(XsValue *));
            sel->refs[sel->n] = xstrdup(all.refs[i]);
            sel->records[sel->n++] = r;
        }
        cli_selection_release(&all);
        if (sel->n == 0)
            cli_fail(cli, "No matching VMs found");
        else if (sel->n > 1 && !cli->multiple && !(flags & CLI_VMS_MULTIPLE_OK))
            cli_fail(cli, "Multiple matches VMs found. --multiple required to complete the "
                          "operation");
        else
            ok = true;
    }
    free(kept);
    strbuf_release(&filters);
    if (!ok)
        cli_selection_release(sel);
    return ok;
}
