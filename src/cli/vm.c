/*
 * xe's VM commands: installation from templates (vm-install, vm-uninstall,
 * template-uninstall, vm-clone, vm-copy, vm-destroy), the power operations
 * (vm-start, vm-shutdown, vm-reboot, vm-suspend, vm-resume, vm-pause,
 * vm-unpause, vm-reset-powerstate), vCPUs and memory, BIOS strings, core
 * dumps and the serial console, with XenServer's parameters and messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "client/transfer.h"
#include "model/wire.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* ---- vm-install --------------------------------------------------------------------- */

/* The template named by template=, template-uuid= or template-name(-label)=. */
static char *find_template(Cli *cli)
{
    const char *want = cli_param(cli, "template");
    const char *uuid = cli_param(cli, "template-uuid");
    const char *name = cli_param(cli, "template-name-label");
    if (!name)
        name = cli_param(cli, "template-name");
    if (!want && !uuid && !name) {
        cli_fail(cli, "Required parameter not found: template\nFor usage run: 'xe help'");
        return NULL;
    }
    CliSelection all;
    if (!cli_select(cli, &xs_class_VM, "", false, &all))
        return NULL;
    char *found = NULL;
    int matches = 0;
    for (size_t i = 0; i < all.n; i++) {
        const XsValue *r = all.records[i];
        if (!cli_rec_bool(r, "is_a_template") || cli_rec_bool(r, "is_control_domain"))
            continue;
        const char *u = cli_rec_str(r, "uuid");
        const char *n = cli_rec_str(r, "name_label");
        bool hit = (want && (strcmp(u, want) == 0 || strcmp(n, want) == 0)) ||
                   (uuid && strcmp(u, uuid) == 0) || (name && strcmp(n, name) == 0);
        if (!hit)
            continue;
        matches++;
        free(found);
        found = xstrdup(all.refs[i]);
    }
    cli_selection_release(&all);
    if (matches == 0) {
        cli_fail(cli, "Template not found");
        return NULL;
    }
    if (matches > 1) {
        free(found);
        cli_fail(cli, "More than one matching template found. Use template-uuid to say which.");
        return NULL;
    }
    return found;
}

/* The SR named by sr-uuid= or sr-name-label=; NULL without either (or on error: *err). */
static char *find_sr(Cli *cli, bool *err)
{
    *err = false;
    const char *uuid = cli_param(cli, "sr-uuid");
    const char *name = cli_param(cli, "sr-name-label");
    if (uuid) {
        char *ref = cli_ref_by_uuid(cli, "SR", uuid);
        *err = !ref;
        return ref;
    }
    if (!name)
        return NULL;
    XsValue *r = cli_call1(cli, "SR.get_by_name_label", name);
    if (!r) {
        *err = true;
        return NULL;
    }
    char *ref = r->n == 1 ? xstrdup(r->items[0].s) : NULL;
    if (!ref) {
        cli_fail(cli, r->n ? "Multiple SRs with the name '%s' found. Use sr-uuid instead."
                           : "No SR with the name '%s' found.",
                 name);
        *err = true;
    }
    xv_free(r);
    return ref;
}

/* Rewrites every sr="..." of the provisioning XML to sr_uuid. */
static char *rewrite_disks(const char *xml, const char *sr_uuid)
{
    StrBuf sb = STRBUF_INIT;
    const char *p = xml;
    const char *m;
    while ((m = strstr(p, "sr=\""))) {
        strbuf_add(&sb, p, (size_t)(m - p));
        strbuf_addf(&sb, "sr=\"%s\"", sr_uuid);
        const char *end = strchr(m + 4, '"');
        if (!end)
            break;
        p = end + 1;
    }
    strbuf_adds(&sb, p);
    return strbuf_detach(&sb, NULL);
}

static bool set_field(Cli *cli, const char *method, const char *ref, XsValue *v)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    xv_array_push(p, v);
    XsValue *r = cli_call(cli, method, p);
    bool ok = r != NULL;
    xv_free(r);
    return ok;
}

static int cmd_vm_install(Cli *cli, const CliCommand *cmd)
{
    char *tmpl = find_template(cli);
    if (!tmpl)
        return 1;
    bool sr_err;
    char *sr = find_sr(cli, &sr_err);
    if (sr_err) {
        free(tmpl);
        return 1;
    }
    const XsValue *trec = cli_record(cli, XS_CLASS_VM, tmpl);
    const XsValue *toc = trec ? xv_struct_get(trec, "other_config") : NULL;
    const char *disks = toc ? xv_struct_get_string(toc, "disks") : NULL;
    char *sr_uuid = NULL;
    if (disks && *disks) {
        char *use = sr;
        if (!use) {
            XsValue *pools = cli_call(cli, "pool.get_all", xv_array());
            XsValue *def = pools && pools->n ? cli_call1(cli, "pool.get_default_SR",
                                                         pools->items[0].s)
                                             : NULL;
            xv_free(pools);
            XsValue *u = def && strcmp(def->s, "OpaqueRef:NULL") ? cli_call1(cli, "SR.get_uuid",
                                                                             def->s)
                                                                  : NULL;
            if (u)
                sr_uuid = xstrdup(u->s);
            xv_free(def);
            xv_free(u);
            if (!sr_uuid) {
                free(tmpl);
                return cli_fail(cli, "Failed to find a valid default SR for the Pool. Please "
                                     "provide an sr-name-label or sr-uuid parameter.");
            }
        } else {
            XsValue *u = cli_call1(cli, "SR.get_uuid", use);
            sr_uuid = u ? xstrdup(u->s) : NULL;
            xv_free(u);
        }
    }
    const char *host = cli_param(cli, "copy-bios-strings-from");
    char *host_ref = NULL;
    if (host && !(host_ref = cli_ref_by_uuid(cli, "host", host))) {
        free(tmpl);
        free(sr);
        free(sr_uuid);
        return 1;
    }

    /* Clone (or copy into the SR), then provision the disks. */
    XsValue *p = xv_array();
    xv_array_push_string(p, tmpl);
    xv_array_push_string(p, cli_param(cli, "new-name-label"));
    if (sr)
        xv_array_push_string(p, sr);
    XsValue *vm = cli_call_async(cli, sr ? "VM.copy" : "VM.clone", p, "install");
    int rc = 1;
    if (!vm)
        goto out;
    bool ok = set_field(cli, "VM.set_name_description", vm->s, xv_string("Installed via xe CLI"));
    if (ok && sr)
        ok = set_field(cli, "VM.set_suspend_SR", vm->s, xv_string(sr));
    if (ok && disks && *disks && sr_uuid) {
        char *nd = rewrite_disks(disks, sr_uuid);
        XsValue *a = xv_array();
        xv_array_push_string(a, vm->s);
        xv_array_push_string(a, "disks");
        XsValue *r = cli_call(cli, "VM.remove_from_other_config", a);
        ok = r != NULL;
        xv_free(r);
        if (ok) {
            a = xv_array();
            xv_array_push_string(a, vm->s);
            xv_array_push_string(a, "disks");
            xv_array_push_string(a, nd);
            r = cli_call(cli, "VM.add_to_other_config", a);
            ok = r != NULL;
            xv_free(r);
        }
        free(nd);
    }
    const char *recs = trec ? cli_rec_str(trec, "recommendations") : "";
    if (ok && strstr(recs, "\"has-vendor-device\" value=\"true\""))
        ok = set_field(cli, "VM.set_has_vendor_device", vm->s, xv_bool(true));
    if (ok) {
        XsValue *a = xv_array();
        xv_array_push_string(a, vm->s);
        XsValue *r = cli_call_async(cli, "VM.provision", a, "provision");
        ok = r != NULL;
        xv_free(r);
    }
    if (ok && host_ref) {
        XsValue *a = xv_array();
        xv_array_push_string(a, vm->s);
        xv_array_push_string(a, host_ref);
        XsValue *r = cli_call(cli, "VM.copy_bios_strings", a);
        ok = r != NULL;
        xv_free(r);
    }
    if (!ok) {
        /* Nothing is left behind: provision removed its disks, the VM goes too. */
        XsValue *r = xc_callv(cli->conn, NULL, "VM.destroy", vm->s, NULL);
        xv_free(r);
        goto out;
    }
    XsValue *u = cli_call1(cli, "VM.get_uuid", vm->s);
    if (u) {
        const char *items[] = {u->s};
        cli_print_list(cli, items, 1);
        rc = 0;
    }
    xv_free(u);
out:
    xv_free(vm);
    free(tmpl);
    free(sr);
    free(sr_uuid);
    free(host_ref);
    return rc;
}

/* ---- uninstall and destroy ------------------------------------------------------------ */

static bool user_says_yes(Cli *cli)
{
    fflush(cli->out);
    fprintf(stderr, "Type 'yes' to continue\n");
    char line[64];
    if (!fgets(line, sizeof(line), stdin))
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "yes") != 0) {
        cli_print_line(cli, "Aborted");
        return false;
    }
    return true;
}

typedef struct Doomed {
    char **vms;
    size_t n_vms;
    char **vdis;
    size_t n_vdis;
} Doomed;

static void doomed_add(char ***v, size_t *n, const char *ref)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], ref) == 0)
            return;
    *v = xreallocarray(*v, *n + 1, sizeof(char *));
    (*v)[(*n)++] = xstrdup(ref);
}

/* The VM, its snapshots and the disks it owns (VBD other_config:owner). */
static void collect(Cli *cli, const char *vm, Doomed *d)
{
    doomed_add(&d->vms, &d->n_vms, vm);
    const XsValue *r = cli_record(cli, XS_CLASS_VM, vm);
    if (!r)
        return;
    const XsValue *vbds = xv_struct_get(r, "VBDs");
    for (uint32_t i = 0; vbds && i < vbds->n; i++) {
        const XsValue *b = cli_record(cli, XS_CLASS_VBD, vbds->items[i].s);
        const XsValue *oc = b ? xv_struct_get(b, "other_config") : NULL;
        const char *vdi = b ? cli_rec_str(b, "VDI") : "";
        if (oc && xv_struct_get(oc, "owner") && strcmp(vdi, "OpaqueRef:NULL") != 0 && *vdi)
            doomed_add(&d->vdis, &d->n_vdis, vdi);
    }
    const char *sv = cli_rec_str(r, "suspend_VDI");
    if (*sv && strcmp(sv, "OpaqueRef:NULL") != 0)
        doomed_add(&d->vdis, &d->n_vdis, sv);
    const XsValue *snaps = xv_struct_get(r, "snapshots");
    for (uint32_t i = 0; snaps && i < snaps->n; i++)
        collect(cli, snaps->items[i].s, d);
}

static int uninstall(Cli *cli, const char *vm)
{
    Doomed d = {0};
    collect(cli, vm, &d);
    int rc = 1;
    if (!cli->force) {
        cli_print_line(cli, "The following items are about to be destroyed");
        for (size_t i = 0; i < d.n_vms; i++) {
            const XsValue *r = cli_record(cli, XS_CLASS_VM, d.vms[i]);
            char *l = xasprintf("VM : %s (%s)", r ? cli_rec_str(r, "uuid") : d.vms[i],
                                r ? cli_rec_str(r, "name_label") : "");
            cli_print_line(cli, l);
            free(l);
        }
        for (size_t i = 0; i < d.n_vdis; i++) {
            const XsValue *r = cli_record(cli, XS_CLASS_VDI, d.vdis[i]);
            char *l = xasprintf("VDI: %s (%s)", r ? cli_rec_str(r, "uuid") : d.vdis[i],
                                r ? cli_rec_str(r, "name_label") : "");
            cli_print_line(cli, l);
            free(l);
        }
        if (!user_says_yes(cli)) {
            rc = 0; /* declined, not failed */
            goto out;
        }
    }
    const XsValue *r = cli_record(cli, XS_CLASS_VM, vm);
    const char *ps = r ? cli_rec_str(r, "power_state") : "Halted";
    if (strcmp(ps, "Halted") != 0) {
        XsValue *x = cli_call_async(cli, "VM.hard_shutdown", cli_args1(vm), "shutdown");
        if (!x)
            goto out;
        xv_free(x);
    }
    for (size_t i = d.n_vms; i-- > 0;) {
        XsValue *x = cli_call(cli, "VM.destroy", cli_args1(d.vms[i]));
        if (!x)
            goto out;
        xv_free(x);
    }
    for (size_t i = 0; i < d.n_vdis; i++) {
        XsValue *x = cli_call_async(cli, "VDI.destroy", cli_args1(d.vdis[i]), "destroy");
        if (!x)
            goto out;
        xv_free(x);
    }
    cli_print_line(cli, "All objects destroyed");
    rc = 0;
out:
    for (size_t i = 0; i < d.n_vms; i++)
        free(d.vms[i]);
    free(d.vms);
    for (size_t i = 0; i < d.n_vdis; i++)
        free(d.vdis[i]);
    free(d.vdis);
    return rc;
}

static int cmd_vm_uninstall(Cli *cli, const CliCommand *cmd)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, 0, &sel))
        return 1;
    int rc = 0;
    for (size_t i = 0; i < sel.n; i++)
        rc |= uninstall(cli, sel.refs[i]);
    cli_selection_release(&sel);
    return rc;
}

static int cmd_template_uninstall(Cli *cli, const CliCommand *cmd)
{
    char *ref = cli_ref_by_uuid(cli, "VM", cli_param(cli, "template-uuid"));
    if (!ref)
        return 1;
    int rc = uninstall(cli, ref);
    free(ref);
    return rc;
}

static int cmd_vm_destroy(Cli *cli, const CliCommand *cmd)
{
    char *ref = cli_ref_by_uuid(cli, "VM", cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    XsValue *r = cli_call(cli, "VM.destroy", cli_args1(ref));
    free(ref);
    xv_free(r);
    return r ? 0 : 1;
}

static int clone_or_copy(Cli *cli, const CliCommand *cmd, bool copy)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, CLI_VMS_TEMPLATES | CLI_VMS_SNAPSHOTS, &sel))
        return 1;
    int rc = 1;
    char *sr = NULL;
    if (copy && cli_param(cli, "sr-uuid") &&
        !(sr = cli_ref_by_uuid(cli, "SR", cli_param(cli, "sr-uuid"))))
        goto out;
    XsValue *p = xv_array();
    xv_array_push_string(p, sel.refs[0]);
    xv_array_push_string(p, cli_param(cli, "new-name-label"));
    if (copy)
        xv_array_push_string(p, sr ? sr : "OpaqueRef:NULL");
    XsValue *vm = cli_call_async(cli, copy ? "VM.copy" : "VM.clone", p, copy ? "copy" : "clone");
    if (!vm)
        goto out;
    const char *desc = cli_param(cli, "new-name-description");
    if (desc)
        set_field(cli, "VM.set_name_description", vm->s, xv_string(desc));
    XsValue *u = cli_call1(cli, "VM.get_uuid", vm->s);
    if (u) {
        const char *items[] = {u->s};
        cli_print_list(cli, items, 1);
        rc = 0;
    }
    xv_free(u);
    xv_free(vm);
out:
    free(sr);
    cli_selection_release(&sel);
    return rc;
}

static int cmd_vm_clone(Cli *cli, const CliCommand *cmd)
{
    return clone_or_copy(cli, cmd, false);
}

static int cmd_vm_copy(Cli *cli, const CliCommand *cmd)
{
    return clone_or_copy(cli, cmd, true);
}

/* ---- power ------------------------------------------------------------------------------ */

typedef XsValue *(*VmArgs)(Cli *cli, const char *vm);

/* Runs method on every selected VM (Async, with progress). */
static int each_vm(Cli *cli, const CliCommand *cmd, unsigned flags, const char *method,
                   VmArgs args)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, flags, &sel))
        return 1;
    int rc = 0;
    for (size_t i = 0; i < sel.n; i++) {
        XsValue *p = args ? args(cli, sel.refs[i]) : cli_args1(sel.refs[i]);
        if (!p) {
            rc = 1;
            continue;
        }
        XsValue *r = cli_call_async(cli, method, p, method);
        if (!r)
            rc = 1;
        xv_free(r);
    }
    cli_selection_release(&sel);
    return rc;
}

static bool param_bool(Cli *cli, const char *key)
{
    bool b = false;
    const char *v = cli_param(cli, key);
    return v && cli_parse_bool(v, &b) && b;
}

static char *host_ref_of(Cli *cli, const char *on)
{
    XsValue *all = cli_call(cli, "host.get_all", xv_array());
    char *found = NULL;
    for (uint32_t i = 0; all && i < all->n && !found; i++) {
        const XsValue *h = cli_record(cli, XS_CLASS_HOST, all->items[i].s);
        if (h && (strcmp(cli_rec_str(h, "uuid"), on) == 0 ||
                  strcmp(cli_rec_str(h, "name_label"), on) == 0 ||
                  strcmp(cli_rec_str(h, "hostname"), on) == 0))
            found = xstrdup(all->items[i].s);
    }
    xv_free(all);
    if (!found)
        cli_fail(cli, "No matching host found for '%s'.", on);
    return found;
}

static XsValue *start_args(Cli *cli, const char *vm)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, vm);
    const char *on = cli_param(cli, "on");
    if (on) {
        char *h = host_ref_of(cli, on);
        if (!h) {
            xv_free(p);
            return NULL;
        }
        xv_array_push(p, xv_string_take(h));
    }
    xv_array_push(p, xv_bool(param_bool(cli, "paused")));
    xv_array_push(p, xv_bool(cli->force));
    return p;
}

static int cmd_vm_start(Cli *cli, const CliCommand *cmd)
{
    return each_vm(cli, cmd, 0, cli_param(cli, "on") ? "VM.start_on" : "VM.start", start_args);
}

static int cmd_vm_shutdown(Cli *cli, const CliCommand *cmd)
{
    return each_vm(cli, cmd, 0, cli->force ? "VM.hard_shutdown" : "VM.clean_shutdown", NULL);
}

static int cmd_vm_reboot(Cli *cli, const CliCommand *cmd)
{
    return each_vm(cli, cmd, 0, cli->force ? "VM.hard_reboot" : "VM.clean_reboot", NULL);
}

static int cmd_vm_suspend(Cli *cli, const CliCommand *cmd)
{
    return each_vm(cli, cmd, 0, "VM.suspend", NULL);
}

static XsValue *resume_args(Cli *cli, const char *vm)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, vm);
    const char *on = cli_param(cli, "on");
    if (on) {
        char *h = host_ref_of(cli, on);
        if (!h) {
            xv_free(p);
            return NULL;
        }
        xv_array_push(p, xv_string_take(h));
    }
    xv_array_push(p, xv_bool(false));
    xv_array_push(p, xv_bool(cli->force));
    return p;
}

static int cmd_vm_resume(Cli *cli, const CliCommand *cmd)
{
    return each_vm(cli, cmd, 0, cli_param(cli, "on") ? "VM.resume_on" : "VM.resume",
                   resume_args);
}

static int cmd_vm_pause(Cli *cli, const CliCommand *cmd)
{
    return each_vm(cli, cmd, 0, "VM.pause", NULL);
}

static int cmd_vm_unpause(Cli *cli, const CliCommand *cmd)
{
    return each_vm(cli, cmd, 0, "VM.unpause", NULL);
}

static int cmd_vm_reset_powerstate(Cli *cli, const CliCommand *cmd)
{
    if (!cli->force)
        return cli_fail(cli, "This operation is extremely dangerous and may cause data loss. "
                             "This operation must be forced (use --force).");
    return each_vm(cli, cmd, 0, "VM.power_state_reset", NULL);
}

/* ---- vCPUs and memory ------------------------------------------------------------------- */

static int each_vm_sync(Cli *cli, const CliCommand *cmd, unsigned flags, const char *method,
                        const int64_t *ints, size_t n_ints)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, flags, &sel))
        return 1;
    int rc = 0;
    for (size_t i = 0; i < sel.n; i++) {
        XsValue *p = xv_array();
        xv_array_push_string(p, sel.refs[i]);
        for (size_t k = 0; k < n_ints; k++)
            xv_array_push(p, xv_int(ints[k]));
        XsValue *r = cli_call(cli, method, p);
        if (!r)
            rc = 1;
        xv_free(r);
    }
    cli_selection_release(&sel);
    return rc;
}

static bool size_param(Cli *cli, const char *key, int64_t *out)
{
    const char *v = cli_param(cli, key);
    if (!v || !cli_parse_size(v, out)) {
        cli_fail(cli, "Invalid size for %s: '%s'", key, v ? v : "");
        return false;
    }
    return true;
}

static int cmd_vm_vcpu_hotplug(Cli *cli, const CliCommand *cmd)
{
    const char *v = cli_param(cli, "new-vcpus");
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < 1)
        return cli_fail(cli, "Invalid value for new-vcpus: '%s'", v);
    int64_t a[] = {n};
    return each_vm_sync(cli, cmd, 0, "VM.set_VCPUs_number_live", a, 1);
}

static int cmd_vm_memory_set(Cli *cli, const CliCommand *cmd)
{
    int64_t a[1];
    if (!size_param(cli, "memory", &a[0]))
        return 1;
    return each_vm_sync(cli, cmd, CLI_VMS_TEMPLATES, "VM.set_memory", a, 1);
}

static int cmd_vm_memory_limits_set(Cli *cli, const CliCommand *cmd)
{
    int64_t a[4];
    if (!size_param(cli, "static-min", &a[0]) || !size_param(cli, "static-max", &a[1]) ||
        !size_param(cli, "dynamic-min", &a[2]) || !size_param(cli, "dynamic-max", &a[3]))
        return 1;
    return each_vm_sync(cli, cmd, CLI_VMS_TEMPLATES, "VM.set_memory_limits", a, 4);
}

static int cmd_vm_memory_static_range_set(Cli *cli, const CliCommand *cmd)
{
    int64_t a[2];
    if (!size_param(cli, "min", &a[0]) || !size_param(cli, "max", &a[1]))
        return 1;
    return each_vm_sync(cli, cmd, CLI_VMS_TEMPLATES, "VM.set_memory_static_range", a, 2);
}

static int cmd_vm_memory_dynamic_range_set(Cli *cli, const CliCommand *cmd)
{
    int64_t a[2];
    if (!size_param(cli, "min", &a[0]) || !size_param(cli, "max", &a[1]))
        return 1;
    return each_vm_sync(cli, cmd, CLI_VMS_TEMPLATES, "VM.set_memory_dynamic_range", a, 2);
}

/* ---- BIOS strings ---------------------------------------------------------------------- */

static int cmd_vm_is_bios_customized(Cli *cli, const CliCommand *cmd)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, CLI_VMS_TEMPLATES, &sel))
        return 1;
    for (size_t i = 0; i < sel.n; i++) {
        const XsValue *bs = xv_struct_get(sel.records[i], "bios_strings");
        if (!bs || bs->n == 0) {
            cli_print_line(cli, "The BIOS strings of this VM have not yet been set.");
            continue;
        }
        const char *vendor = xv_struct_get_string(bs, "bios-vendor");
        const char *maker = xv_struct_get_string(bs, "system-manufacturer");
        const char *product = xv_struct_get_string(bs, "system-product-name");
        bool generic = vendor && strcmp(vendor, "Xen") == 0 && maker &&
                       strcmp(maker, "Xen") == 0 && product && strcmp(product, "HVM domU") == 0;
        cli_print_line(cli, generic ? "This VM is BIOS-generic." : "This VM is BIOS-customized.");
    }
    cli_selection_release(&sel);
    return 0;
}

static int cmd_vm_copy_bios_strings(Cli *cli, const CliCommand *cmd)
{
    char *host = cli_ref_by_uuid(cli, "host", cli_param(cli, "host-uuid"));
    if (!host)
        return 1;
    CliSelection sel;
    int rc = 1;
    if (cli_select_vms(cli, cmd, CLI_VMS_TEMPLATES, &sel)) {
        rc = 0;
        for (size_t i = 0; i < sel.n; i++) {
            XsValue *p = xv_array();
            xv_array_push_string(p, sel.refs[i]);
            xv_array_push_string(p, host);
            XsValue *r = cli_call(cli, "VM.copy_bios_strings", p);
            rc |= r ? 0 : 1;
            xv_free(r);
        }
        cli_selection_release(&sel);
    }
    free(host);
    return rc;
}

/* ---- core dumps and the console ------------------------------------------------------------ */

/* A failure of the server's HTTP handlers ("CODE: p1, p2") printed as xe prints errors. */
static int transfer_error(Cli *cli, const XcTransferResult *res)
{
    if (res->error && !res->http_status)
        return cli_fail(cli, "%s", res->error);
    char *body = xstrdup(res->body ? res->body : "");
    XsError *err = NULL;
    XsValue *j = body[0] == '[' ? xv_from_json(body, strlen(body), NULL) : NULL;
    if (j && j->kind == XV_ARRAY && j->n > 0 && j->items[0].kind == XV_STRING) {
        /* [code, params...] */
        const char *params[16];
        size_t n = 0;
        for (uint32_t i = 1; i < j->n && n < 16; i++)
            params[n++] = j->items[i].kind == XV_STRING ? j->items[i].s : "";
        xs_error_setv(&err, j->items[0].s, n, params);
        xv_free(j);
        int rc = cli_error(cli, err);
        xs_error_free(err);
        free(body);
        return rc;
    }
    xv_free(j);
    body[strcspn(body, "\n")] = '\0';
    char *colon = strstr(body, ": ");
    if (colon) {
        *colon = '\0';
        const char *params[16];
        size_t n = 0;
        for (char *p = colon + 2; p && n < 16;) {
            char *next = strstr(p, ", ");
            if (next)
                *next = '\0';
            params[n++] = p;
            p = next ? next + 2 : NULL;
        }
        xs_error_setv(&err, body, n, params);
    } else if (*body && !strchr(body, ' ') && !strchr(body, '<')) {
        xs_error_set(&err, body, 0);
    } else {
        char *m = xasprintf("The server answered HTTP %ld", res->http_status);
        xs_error_set(&err, "CLI_ERROR", 1, m);
        free(m);
    }
    int rc = cli_error(cli, err);
    xs_error_free(err);
    free(body);
    return rc;
}

static int download(Cli *cli, const char *path, const char *filename)
{
    fflush(cli->out);
    char *pq = xasprintf("%s&session_id=%s", path, xc_session(cli->conn));
    XcTransferResult res = {0};
    bool ok = xc_http_get_file(cli->conn, pq, filename, NULL, NULL, &res);
    free(pq);
    int rc = ok ? 0 : transfer_error(cli, &res);
    if (!ok && strcmp(filename, "-") != 0)
        unlink(filename);
    xc_transfer_result_release(&res);
    return rc;
}

static int cmd_vm_dump_core(Cli *cli, const CliCommand *cmd)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, 0, &sel))
        return 1;
    char *path = xasprintf("/vm_dump_core?ref=%s", sel.refs[0]);
    int rc = download(cli, path, cli_param(cli, "filename"));
    free(path);
    cli_selection_release(&sel);
    return rc;
}

static int cmd_console(Cli *cli, const CliCommand *cmd)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, 0, &sel))
        return 1;
    int rc = 1;
    const XsValue *cons = xv_struct_get(sel.records[0], "consoles");
    const char *vt100 = NULL;
    for (uint32_t i = 0; cons && i < cons->n; i++) {
        const XsValue *c = cli_record(cli, XS_CLASS_CONSOLE, cons->items[i].s);
        if (c && strcmp(cli_rec_str(c, "protocol"), "vt100") == 0)
            vt100 = cons->items[i].s;
    }
    if (!vt100) {
        rc = cli_fail(cli, "No text console found for this VM: it is not running.");
    } else {
        char *path = xasprintf("/console?ref=%s", vt100);
        rc = download(cli, path, "-");
        free(path);
    }
    cli_selection_release(&sel);
    return rc;
}

static const CliCommand vm_commands[] = {
    {"console", NULL, "", "Print what the VM wrote on its serial console.", cmd_console},
    {"template-uninstall", "template-uuid", "force",
     "Destroy a custom template and the disks it owns.", cmd_template_uninstall},
    {"vm-clone", "new-name-label", "new-name-description",
     "Clone an existing VM, using storage-level fast disk clone where available.",
     cmd_vm_clone},
    {"vm-copy", "new-name-label", "new-name-description,sr-uuid",
     "Copy an existing VM, with full copies of its disks.", cmd_vm_copy},
    {"vm-copy-bios-strings", "host-uuid", "",
     "Copy the BIOS strings of the given host to the VM.", cmd_vm_copy_bios_strings},
    {"vm-destroy", "uuid", "", "Destroy a VM record (its disks stay).", cmd_vm_destroy},
    {"vm-dump-core", "filename", "",
     "Write the memory of a running VM to a local file as an ELF core dump.", cmd_vm_dump_core},
    {"vm-install", "new-name-label",
     "template,template-uuid,template-name,template-name-label,sr-uuid,sr-name-label,"
     "copy-bios-strings-from",
     "Install a new VM from a template. The template parameter can match either the "
     "template name or the uuid.",
     cmd_vm_install},
    {"vm-is-bios-customized", NULL, "", "Indicate whether the BIOS strings of the VM have "
     "been customized.", cmd_vm_is_bios_customized},
    {"vm-memory-dynamic-range-set", "min,max", "", "Configure the dynamic memory range of a VM.",
     cmd_vm_memory_dynamic_range_set},
    {"vm-memory-limits-set", "static-min,static-max,dynamic-min,dynamic-max", "",
     "Configure the memory limits of a VM.", cmd_vm_memory_limits_set},
    {"vm-memory-set", "memory", "", "Configure the memory allocation of a VM.",
     cmd_vm_memory_set},
    {"vm-memory-static-range-set", "min,max", "", "Configure the static memory range of a VM.",
     cmd_vm_memory_static_range_set},
    {"vm-pause", NULL, "", "Pause a running VM.", cmd_vm_pause},
    {"vm-reboot", NULL, "force", "Reboot the selected VM(s).", cmd_vm_reboot},
    {"vm-reset-powerstate", NULL, "force",
     "Force the VM's power state to halted in the database (its QEMU, if any, is stopped).",
     cmd_vm_reset_powerstate},
    {"vm-resume", NULL, "force,on", "Resume the selected VM(s).", cmd_vm_resume},
    {"vm-shutdown", NULL, "force", "Shut down the selected VM(s).", cmd_vm_shutdown},
    {"vm-start", NULL, "force,on,paused", "Start the selected VM(s).", cmd_vm_start},
    {"vm-suspend", NULL, "", "Suspend the selected VM(s).", cmd_vm_suspend},
    {"vm-uninstall", NULL, "force", "Uninstall a VM, destroying its disks (those VDIs that "
     "are marked as owned by the VM).", cmd_vm_uninstall},
    {"vm-unpause", NULL, "", "Unpause a paused VM.", cmd_vm_unpause},
    {"vm-vcpu-hotplug", "new-vcpus", "", "Dynamically adjust the number of VCPUs available to "
     "a running VM.", cmd_vm_vcpu_hotplug},
};

void cli_vm_commands(CliCommandList *l)
{
    cli_register(l, vm_commands, ARRAY_SIZE(vm_commands));
}
