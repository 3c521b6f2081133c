/*
 * xe's snapshot commands: vm-snapshot, vm-snapshot-with-quiesce,
 * vm-checkpoint, snapshot-revert, snapshot-clone, snapshot-copy,
 * snapshot-destroy, snapshot-uninstall and snapshot-disk-list, with
 * XenServer's parameters and output (snapshot-list and snapshot-param-* are
 * the generic class commands; snapshot-export-to-template is with the other
 * exports in importexport.c).
 * Long calls run as tasks with a progress bar on a terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* Prints the uuid of the VM ref (consumed) and returns 0, or 1. */
static int print_vm_uuid(Cli *cli, XsValue *ref)
{
    if (!ref)
        return 1;
    XsValue *u = cli_call1(cli, "VM.get_uuid", ref->s);
    xv_free(ref);
    if (!u)
        return 1;
    const char *items[] = {u->s};
    cli_print_list(cli, items, 1);
    xv_free(u);
    return 0;
}

static bool set_description(Cli *cli, const char *ref)
{
    const char *desc = cli_param(cli, "new-name-description");
    if (!desc)
        return true;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    xv_array_push_string(p, desc);
    XsValue *r = cli_call(cli, "VM.set_name_description", p);
    xv_free(r);
    return r != NULL;
}

/* The snapshot named by snapshot-uuid= or uuid= (ref, malloc'd); prints the error. */
static char *find_snapshot(Cli *cli)
{
    const char *u = cli_param(cli, "snapshot-uuid");
    if (!u)
        u = cli_param(cli, "uuid");
    if (!u) {
        cli_fail(cli, "Required parameter not found: snapshot-uuid\nFor usage run: 'xe help'");
        return NULL;
    }
    char *ref = cli_ref_by_uuid(cli, "VM", u);
    if (!ref)
        return NULL;
    const XsValue *r = cli_record(cli, XS_CLASS_VM, ref);
    if (!r || !cli_rec_bool(r, "is_a_snapshot")) {
        cli_fail(cli, "The VM %s is not a snapshot (snapshot-list shows the snapshots).", u);
        free(ref);
        return NULL;
    }
    return ref;
}

/* ---- taking snapshots ---------------------------------------------------------------------- */

static int take(Cli *cli, const CliCommand *cmd, const char *method, bool ignore)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, 0, &sel))
        return 1;
    int rc = 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, sel.refs[0]);
    xv_array_push_string(p, cli_param(cli, "new-name-label"));
    const char *ign = ignore ? cli_param(cli, "ignore-vdi-uuids") : NULL;
    if (ign) {
        XsValue *set = xv_array();
        char *copy = xstrdup(ign);
        bool ok = true;
        for (char *s = copy, *e; ok && s && *s; s = e) {
            e = strchr(s, ',');
            if (e)
                *e++ = '\0';
            if (!*s)
                continue;
            char *ref = cli_ref_by_uuid(cli, "VDI", s);
            ok = ref != NULL;
            if (ref)
                xv_array_push(set, xv_string_take(ref));
        }
        free(copy);
        if (!ok) {
            xv_free(set);
            xv_free(p);
            goto out;
        }
        xv_array_push(p, set);
    }
    XsValue *snap = cli_call_async(cli, method, p, "snapshot");
    if (snap && !set_description(cli, snap->s)) {
        xv_free(snap);
        goto out;
    }
    rc = print_vm_uuid(cli, snap);
out:
    cli_selection_release(&sel);
    return rc;
}

static int cmd_vm_snapshot(Cli *cli, const CliCommand *cmd)
{
    return take(cli, cmd, "VM.snapshot", true);
}

static int cmd_vm_snapshot_with_quiesce(Cli *cli, const CliCommand *cmd)
{
    return take(cli, cmd, "VM.snapshot_with_quiesce", false);
}

static int cmd_vm_checkpoint(Cli *cli, const CliCommand *cmd)
{
    return take(cli, cmd, "VM.checkpoint", false);
}

/* ---- using them ------------------------------------------------------------------------------ */

static int cmd_snapshot_revert(Cli *cli, const CliCommand *cmd)
{
    char *snap = find_snapshot(cli);
    if (!snap)
        return 1;
    /* vm= (hyperxe): the VM meant to be reverted, checked against the snapshot's own. */
    const char *vm = cli_param(cli, "vm");
    if (vm) {
        const XsValue *s = cli_record(cli, XS_CLASS_VM, snap);
        const XsValue *of = cli_record(cli, XS_CLASS_VM, cli_rec_str(s, "snapshot_of"));
        const char *u = of ? cli_rec_str(of, "uuid") : "";
        const char *n = of ? cli_rec_str(of, "name_label") : "";
        if (strcmp(u, vm) != 0 && strcmp(n, vm) != 0) {
            int rc = cli_fail(cli, "The snapshot %s is a snapshot of VM %s (%s), not of %s: "
                                   "nothing was reverted.",
                              cli_rec_str(s, "uuid"), *u ? u : "<not in database>", n, vm);
            free(snap);
            return rc;
        }
    }
    XsValue *r = cli_call_async(cli, "VM.revert", cli_args1(snap), "revert");
    free(snap);
    xv_free(r);
    return r ? 0 : 1;
}

static int clone_or_copy(Cli *cli, bool copy)
{
    char *snap = find_snapshot(cli);
    if (!snap)
        return 1;
    char *sr = NULL;
    int rc = 1;
    if (copy && cli_param(cli, "sr-uuid") &&
        !(sr = cli_ref_by_uuid(cli, "SR", cli_param(cli, "sr-uuid"))))
        goto out;
    XsValue *p = xv_array();
    xv_array_push_string(p, snap);
    xv_array_push_string(p, cli_param(cli, "new-name-label"));
    if (copy)
        xv_array_push_string(p, sr ? sr : "OpaqueRef:NULL");
    XsValue *t = cli_call_async(cli, copy ? "VM.copy" : "VM.clone", p, copy ? "copy" : "clone");
    if (t && !set_description(cli, t->s)) {
        xv_free(t);
        goto out;
    }
    rc = print_vm_uuid(cli, t);
out:
    free(sr);
    free(snap);
    return rc;
}

static int cmd_snapshot_clone(Cli *cli, const CliCommand *cmd)
{
    return clone_or_copy(cli, false);
}

static int cmd_snapshot_copy(Cli *cli, const CliCommand *cmd)
{
    return clone_or_copy(cli, true);
}

static int cmd_snapshot_destroy(Cli *cli, const CliCommand *cmd)
{
    char *snap = find_snapshot(cli);
    if (!snap)
        return 1;
    XsValue *r = cli_call(cli, "VM.destroy", cli_args1(snap));
    free(snap);
    xv_free(r);
    return r ? 0 : 1;
}

static void add_ref(char ***v, size_t *n, const char *ref)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], ref) == 0)
            return;
    *v = xreallocarray(*v, *n + 1, sizeof(char *));
    (*v)[(*n)++] = xstrdup(ref);
}

static bool is_ref(const char *r)
{
    return r && *r && strcmp(r, "OpaqueRef:NULL") != 0;
}

/* The snapshot's disks that nothing else uses, and its memory image. */
static size_t doomed_vdis(Cli *cli, const char *snap, char ***out)
{
    char **v = NULL;
    size_t n = 0;
    const XsValue *r = cli_record(cli, XS_CLASS_VM, snap);
    const XsValue *vbds = r ? xv_struct_get(r, "VBDs") : NULL;
    for (uint32_t i = 0; vbds && i < vbds->n; i++) {
        const XsValue *b = cli_record(cli, XS_CLASS_VBD, vbds->items[i].s);
        if (!b || strcmp(cli_rec_str(b, "type"), "CD") == 0 ||
            strcmp(cli_rec_str(b, "mode"), "RW") != 0)
            continue;
        const char *vdi = cli_rec_str(b, "VDI");
        const XsValue *d = is_ref(vdi) ? cli_record(cli, XS_CLASS_VDI, vdi) : NULL;
        const XsValue *users = d ? xv_struct_get(d, "VBDs") : NULL;
        if (d && users && users->n == 1)
            add_ref(&v, &n, vdi);
    }
    const char *sv = r ? cli_rec_str(r, "suspend_VDI") : "";
    if (is_ref(sv))
        add_ref(&v, &n, sv);
    *out = v;
    return n;
}

static int cmd_snapshot_uninstall(Cli *cli, const CliCommand *cmd)
{
    char *snap = find_snapshot(cli);
    if (!snap)
        return 1;
    char **vdis = NULL;
    size_t n = doomed_vdis(cli, snap, &vdis);
    int rc = 1;
    if (!cli->force) {
        const XsValue *r = cli_record(cli, XS_CLASS_VM, snap);
        cli_print_line(cli, "The following items are about to be destroyed");
        char *l = xasprintf("VM : %s (%s)", cli_rec_str(r, "uuid"), cli_rec_str(r, "name_label"));
        cli_print_line(cli, l);
        free(l);
        for (size_t i = 0; i < n; i++) {
            const XsValue *d = cli_record(cli, XS_CLASS_VDI, vdis[i]);
            l = xasprintf("VDI: %s (%s)", d ? cli_rec_str(d, "uuid") : vdis[i],
                          d ? cli_rec_str(d, "name_label") : "");
            cli_print_line(cli, l);
            free(l);
        }
        fflush(cli->out);
        fprintf(stderr, "Type 'yes' to continue\n");
        char line[64];
        if (!fgets(line, sizeof(line), stdin) || strncmp(line, "yes", 3) != 0 ||
            (line[3] != '\n' && line[3] != '\0' && line[3] != '\r')) {
            cli_print_line(cli, "Aborted");
            goto out;
        }
    }
    XsValue *x = cli_call(cli, "VM.destroy", cli_args1(snap));
    if (!x)
        goto out;
    xv_free(x);
    for (size_t i = 0; i < n; i++) {
        /* Each destroy merges what it leaves of the chain, with progress. */
        x = cli_call_async(cli, "VDI.destroy", cli_args1(vdis[i]), "destroy");
        if (!x)
            goto out;
        xv_free(x);
    }
    cli_print_line(cli, "All objects destroyed");
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(vdis[i]);
    free(vdis);
    free(snap);
    return rc;
}

static int cmd_snapshot_disk_list(Cli *cli, const CliCommand *cmd)
{
    char *snap = find_snapshot(cli);
    if (!snap)
        return 1;
    const char *vp = cli_param(cli, "vbd-params");
    const char *dp = cli_param(cli, "vdi-params");
    const XsValue *r = cli_record(cli, XS_CLASS_VM, snap);
    const XsValue *vbds = r ? xv_struct_get(r, "VBDs") : NULL;
    size_t k = 0;
    for (uint32_t i = 0; vbds && i < vbds->n; i++) {
        char *ref = vbds->items[i].s;
        const XsValue *b = cli_record(cli, XS_CLASS_VBD, ref);
        if (!b || strcmp(cli_rec_str(b, "type"), "Disk") != 0)
            continue;
        char *h = xasprintf("Disk %zu VBD:", k);
        cli_print_line(cli, h);
        free(h);
        cli_print_records(cli, &xs_class_VBD, &ref, 1, vp ? vp : "uuid,vm-name-label,userdevice");
        const char *vdi = cli_rec_str(b, "VDI");
        if (is_ref(vdi)) {
            h = xasprintf("Disk %zu VDI:", k);
            cli_print_line(cli, h);
            free(h);
            char *v[] = {(char *)vdi};
            cli_print_records(cli, &xs_class_VDI, v, 1,
                              dp ? dp : "uuid,name-label,virtual-size,sr-name-label");
        }
        k++;
    }
    free(snap);
    return 0;
}

static const CliCommand snapshot_commands[] = {
    {"snapshot-clone", "new-name-label", "uuid,snapshot-uuid,new-name-description",
     "Create a new template by cloning an existing snapshot, using storage-level fast disk "
     "clone operation where available.",
     cmd_snapshot_clone},
    {"snapshot-copy", "new-name-label", "uuid,snapshot-uuid,new-name-description,sr-uuid",
     "Create a new template by copying an existing snapshot, but without using storage-level "
     "fast disk clone operation (even if this is available). The disk images of the copied "
     "snapshot are guaranteed to be 'full images' - that is, not part of a CoW chain.",
     cmd_snapshot_copy},
    {"snapshot-destroy", NULL, "uuid,snapshot-uuid,force",
     "Destroy a snapshot. This leaves the storage associated with the snapshot intact. To "
     "delete storage too, use snapshot-uninstall.",
     cmd_snapshot_destroy},
    {"snapshot-disk-list", NULL, "uuid,snapshot-uuid,vbd-params,vdi-params",
     "List the disks on the selected snapshot.", cmd_snapshot_disk_list},
    {"snapshot-revert", NULL, "uuid,snapshot-uuid,vm",
     "Revert an existing VM to a previous checkpointed or snapshotted state. With vm=, check "
     "first that the snapshot is one of that VM (name or uuid).",
     cmd_snapshot_revert},
    {"snapshot-uninstall", NULL, "uuid,snapshot-uuid,force",
     "Uninstall a snapshot. This operation will destroy those VDIs that are marked RW and "
     "connected to this snapshot only. To simply destroy the VM record, use snapshot-destroy.",
     cmd_snapshot_uninstall},
    {"vm-checkpoint", "new-name-label", "new-name-description",
     "Checkpoint an existing VM, using storage-level fast disk snapshot operation where "
     "available; the memory of a running VM is saved too, and a revert resumes it.",
     cmd_vm_checkpoint},
    {"vm-snapshot", "new-name-label", "new-name-description,ignore-vdi-uuids",
     "Snapshot an existing VM, using storage-level fast disk snapshot operation where "
     "available.",
     cmd_vm_snapshot},
    {"vm-snapshot-with-quiesce", "new-name-label", "new-name-description",
     "Snapshot an existing VM with quiesce, using storage-level fast disk snapshot operation "
     "where available; the guest agent freezes the guest's file systems meanwhile.",
     cmd_vm_snapshot_with_quiesce},
};

void cli_snapshot_commands(CliCommandList *l)
{
    cli_register(l, snapshot_commands, ARRAY_SIZE(snapshot_commands));
}
