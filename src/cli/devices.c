/*
 * xe's device and network commands: vbd-*, vif-*, network-create and
 * network-destroy, and the VM-centred forms XenServer offers (vm-disk-*,
 * vm-cd-*, vm-vif-list), with XenServer's parameters and output.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

static void print_uuid_of(Cli *cli, const char *cls, const char *ref)
{
    char *m = xasprintf("%s.get_uuid", cls);
    XsValue *u = cli_call1(cli, m, ref);
    free(m);
    if (u) {
        const char *items[] = {u->s};
        cli_print_list(cli, items, 1);
    }
    xv_free(u);
}

static bool bool_param(Cli *cli, const char *key, bool dflt, bool *out)
{
    const char *v = cli_param(cli, key);
    *out = dflt;
    if (v && !cli_parse_bool(v, out)) {
        cli_fail(cli, "Invalid boolean for %s: '%s'", key, v);
        return false;
    }
    return true;
}

/* Calls method(ref) on the object uuid= names, as Async. */
static int on_uuid(Cli *cli, const char *cls, const char *method)
{
    char *ref = cli_ref_by_uuid(cli, cls, cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    XsValue *r = cli_call_async(cli, method, cli_args1(ref), method);
    free(ref);
    xv_free(r);
    return r ? 0 : 1;
}

/* ---- VBDs ------------------------------------------------------------------------------ */

static XsValue *vbd_record(const char *vm, const char *vdi, const char *device, bool bootable,
                           const char *mode, const char *type, bool unpluggable, bool owner)
{
    XsValue *r = xv_struct();
    xv_struct_set_string(r, "VM", vm);
    xv_struct_set_string(r, "VDI", vdi ? vdi : "OpaqueRef:NULL");
    xv_struct_set_string(r, "userdevice", device);
    xv_struct_set(r, "bootable", xv_bool(bootable));
    xv_struct_set_string(r, "mode", mode);
    xv_struct_set_string(r, "type", type);
    xv_struct_set(r, "unpluggable", xv_bool(unpluggable));
    xv_struct_set(r, "empty", xv_bool(vdi == NULL));
    XsValue *oc = xv_struct();
    if (owner)
        xv_struct_set_string(oc, "owner", "true");
    xv_struct_set(r, "other_config", oc);
    xv_struct_set_string(r, "qos_algorithm_type", "");
    xv_struct_set(r, "qos_algorithm_params", xv_struct());
    return r;
}

static XsValue *create(Cli *cli, const char *method, XsValue *record)
{
    XsValue *p = xv_array();
    xv_array_push(p, record);
    return cli_call(cli, method, p);
}

static int cmd_vbd_create(Cli *cli, const CliCommand *cmd)
{
    char *vm = cli_ref_by_uuid(cli, "VM", cli_param(cli, "vm-uuid"));
    if (!vm)
        return 1;
    char *vdi = NULL;
    int rc = 1;
    if (cli_param(cli, "vdi-uuid") && !(vdi = cli_ref_by_uuid(cli, "VDI", cli_param(cli, "vdi-uuid"))))
        goto out;
    bool bootable, unpluggable;
    if (!bool_param(cli, "bootable", false, &bootable) ||
        !bool_param(cli, "unpluggable", true, &unpluggable))
        goto out;
    const char *type = cli_param(cli, "type") ? cli_param(cli, "type") : "Disk";
    const char *mode = cli_param(cli, "mode") ? cli_param(cli, "mode") : "RW";
    XsValue *vbd = create(cli, "VBD.create",
                          vbd_record(vm, vdi, cli_param(cli, "device"), bootable, mode, type,
                                     unpluggable, false));
    if (vbd) {
        print_uuid_of(cli, "VBD", vbd->s);
        rc = 0;
    }
    xv_free(vbd);
out:
    free(vm);
    free(vdi);
    return rc;
}

static int cmd_vbd_destroy(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "VBD", "VBD.destroy");
}

static int cmd_vbd_plug(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "VBD", "VBD.plug");
}

static int cmd_vbd_unplug(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "VBD", cli->force ? "VBD.unplug_force" : "VBD.unplug");
}

static int cmd_vbd_eject(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "VBD", "VBD.eject");
}

static int cmd_vbd_insert(Cli *cli, const CliCommand *cmd)
{
    char *vbd = cli_ref_by_uuid(cli, "VBD", cli_param(cli, "uuid"));
    char *vdi = vbd ? cli_ref_by_uuid(cli, "VDI", cli_param(cli, "vdi-uuid")) : NULL;
    int rc = 1;
    if (vdi) {
        XsValue *p = xv_array();
        xv_array_push_string(p, vbd);
        xv_array_push_string(p, vdi);
        XsValue *r = cli_call_async(cli, "VBD.insert", p, "insert");
        rc = r ? 0 : 1;
        xv_free(r);
    }
    free(vbd);
    free(vdi);
    return rc;
}

/* ---- VIFs and networks ------------------------------------------------------------------ */

static void random_mac(char out[18])
{
    unsigned char b[6] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)rand();
    if (fd >= 0)
        close(fd);
    b[0] = (unsigned char)((b[0] & 0xfe) | 0x02); /* unicast, locally administered */
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static int cmd_vif_create(Cli *cli, const CliCommand *cmd)
{
    char *vm = cli_ref_by_uuid(cli, "VM", cli_param(cli, "vm-uuid"));
    char *net = vm ? cli_ref_by_uuid(cli, "network", cli_param(cli, "network-uuid")) : NULL;
    int rc = 1;
    if (!net)
        goto out;
    const XsValue *nrec = cli_record(cli, XS_CLASS_NETWORK, net);
    const XsValue *mtu = nrec ? xv_struct_get(nrec, "MTU") : NULL;
    const char *mac = cli_param(cli, "mac");
    char rnd[18];
    if (mac && strcmp(mac, "random") == 0) {
        random_mac(rnd);
        mac = rnd;
    }
    XsValue *r = xv_struct();
    xv_struct_set_string(r, "device", cli_param(cli, "device"));
    xv_struct_set_string(r, "network", net);
    xv_struct_set_string(r, "VM", vm);
    xv_struct_set_string(r, "MAC", mac ? mac : "");
    xv_struct_set(r, "MTU", xv_int(mtu && mtu->kind == XV_INT ? mtu->i : 1500));
    xv_struct_set(r, "other_config", xv_struct());
    xv_struct_set_string(r, "qos_algorithm_type", "");
    xv_struct_set(r, "qos_algorithm_params", xv_struct());
    XsValue *vif = create(cli, "VIF.create", r);
    if (vif) {
        print_uuid_of(cli, "VIF", vif->s);
        rc = 0;
    }
    xv_free(vif);
out:
    free(vm);
    free(net);
    return rc;
}

static int cmd_vif_destroy(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "VIF", "VIF.destroy");
}

static int cmd_vif_plug(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "VIF", "VIF.plug");
}

static int cmd_vif_unplug(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "VIF", cli->force ? "VIF.unplug_force" : "VIF.unplug");
}

static int cmd_network_create(Cli *cli, const CliCommand *cmd)
{
    int64_t mtu = 1500;
    const char *m = cli_param(cli, "MTU");
    if (m) {
        char *end;
        mtu = strtoll(m, &end, 10);
        if (!*m || *end)
            return cli_fail(cli, "Invalid MTU: '%s'", m);
    }
    bool managed;
    if (!bool_param(cli, "managed", true, &managed))
        return 1;
    XsValue *r = xv_struct();
    xv_struct_set_string(r, "name_label", cli_param(cli, "name-label"));
    const char *d = cli_param(cli, "name-description");
    xv_struct_set_string(r, "name_description", d ? d : "");
    xv_struct_set(r, "MTU", xv_int(mtu));
    xv_struct_set(r, "other_config", xv_struct());
    const char *bridge = cli_param(cli, "bridge");
    xv_struct_set_string(r, "bridge", bridge ? bridge : "");
    xv_struct_set(r, "managed", xv_bool(managed));
    xv_struct_set(r, "tags", xv_array());
    XsValue *net = create(cli, "network.create", r);
    if (!net)
        return 1;
    print_uuid_of(cli, "network", net->s);
    xv_free(net);
    return 0;
}

static int cmd_network_destroy(Cli *cli, const CliCommand *cmd)
{
    return on_uuid(cli, "network", "network.destroy");
}

/* ---- vm-disk-*, vm-cd-* ------------------------------------------------------------------ */

/* The VBDs of vm of the given type ("Disk" or "CD"), by userdevice. */
static size_t vbds_of(Cli *cli, const XsValue *vmrec, const char *type, char ***out)
{
    const XsValue *vbds = xv_struct_get(vmrec, "VBDs");
    size_t n = 0;
    *out = xcalloc((vbds ? vbds->n : 0) + 1, sizeof(char *));
    for (uint32_t i = 0; vbds && i < vbds->n; i++) {
        const XsValue *b = cli_record(cli, XS_CLASS_VBD, vbds->items[i].s);
        if (b && strcmp(cli_rec_str(b, "type"), type) == 0)
            (*out)[n++] = xstrdup(vbds->items[i].s);
    }
    /* by userdevice */
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            long a = strtol(cli_rec_str(cli_record(cli, XS_CLASS_VBD, (*out)[j - 1]), "userdevice"),
                            NULL, 10);
            long b = strtol(cli_rec_str(cli_record(cli, XS_CLASS_VBD, (*out)[j]), "userdevice"),
                            NULL, 10);
            if (a <= b)
                break;
            char *t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    }
    return n;
}

static void free_refs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int device_list(Cli *cli, const CliCommand *cmd, const char *type, const char *label,
                       const char *vbd_cols)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, CLI_VMS_TEMPLATES | CLI_VMS_MULTIPLE_OK, &sel))
        return 1;
    const char *vp = cli_param(cli, "vbd-params");
    const char *dp = cli_param(cli, "vdi-params");
    const char *vbdc = vp ? vp : vbd_cols;
    const char *vdic = dp ? dp : "uuid,name-label,virtual-size,sr-name-label";
    for (size_t i = 0; i < sel.n; i++) {
        char **vbds;
        size_t n = vbds_of(cli, sel.records[i], type, &vbds);
        for (size_t k = 0; k < n; k++) {
            const XsValue *b = cli_record(cli, XS_CLASS_VBD, vbds[k]);
            char *h = xasprintf("%s %zu VBD:", label, k);
            cli_print_line(cli, h);
            free(h);
            cli_print_records(cli, &xs_class_VBD, &vbds[k], 1, vbdc);
            const char *vdi = cli_rec_str(b, "VDI");
            if (*vdi && strcmp(vdi, "OpaqueRef:NULL") != 0) {
                h = xasprintf("%s %zu VDI:", label, k);
                cli_print_line(cli, h);
                free(h);
                char *v[] = {(char *)vdi};
                cli_print_records(cli, &xs_class_VDI, v, 1, vdic);
            }
        }
        free_refs(vbds, n);
    }
    cli_selection_release(&sel);
    return 0;
}

static int cmd_vm_disk_list(Cli *cli, const CliCommand *cmd)
{
    return device_list(cli, cmd, "Disk", "Disk", "uuid,vm-name-label,userdevice");
}

static int cmd_vm_cd_list(Cli *cli, const CliCommand *cmd)
{
    return device_list(cli, cmd, "CD", "CD", "uuid,vm-name-label,userdevice,empty");
}

static char *one_vm(Cli *cli, const CliCommand *cmd, const XsValue **rec)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, 0, &sel))
        return NULL;
    char *ref = xstrdup(sel.refs[0]);
    *rec = cli_record(cli, XS_CLASS_VM, ref);
    cli_selection_release(&sel);
    return ref;
}

static void try_plug(Cli *cli, const char *vbd)
{
    /* As xe does: plugging fails harmlessly on a VM that is not running. */
    XsValue *r = xc_call_session(cli->conn, "VBD.plug", cli_args1(vbd), NULL);
    xv_free(r);
}

static int cmd_vm_disk_add(Cli *cli, const CliCommand *cmd)
{
    const XsValue *vmrec;
    char *vm = one_vm(cli, cmd, &vmrec);
    if (!vm)
        return 1;
    int rc = 1;
    int64_t size;
    char *sr = NULL;
    const char *sz = cli_param(cli, "disk-size");
    if (!cli_parse_size(sz, &size) || size <= 0) {
        cli_fail(cli, "Invalid disk-size: '%s'", sz);
        goto out;
    }
    if (cli_param(cli, "sr-uuid")) {
        if (!(sr = cli_ref_by_uuid(cli, "SR", cli_param(cli, "sr-uuid"))))
            goto out;
    } else {
        XsValue *pools = cli_call(cli, "pool.get_all", xv_array());
        XsValue *def = pools && pools->n ? cli_call1(cli, "pool.get_default_SR", pools->items[0].s)
                                         : NULL;
        xv_free(pools);
        if (!def || strcmp(def->s, "OpaqueRef:NULL") == 0) {
            xv_free(def);
            cli_fail(cli, "No default SR: give sr-uuid.");
            goto out;
        }
        sr = xstrdup(def->s);
        xv_free(def);
    }
    XsValue *r = xv_struct();
    xv_struct_set_string(r, "name_label", "Created by xe");
    xv_struct_set_string(r, "name_description", "");
    xv_struct_set_string(r, "SR", sr);
    xv_struct_set(r, "virtual_size", xv_int(size));
    xv_struct_set_string(r, "type", "user");
    xv_struct_set(r, "sharable", xv_bool(false));
    xv_struct_set(r, "read_only", xv_bool(false));
    xv_struct_set(r, "other_config", xv_struct());
    XsValue *smc = xv_struct();
    xv_struct_set_string(smc, "vmhint", cli_rec_str(vmrec, "uuid"));
    xv_struct_set(r, "sm_config", smc);
    XsValue *vdi = create(cli, "VDI.create", r);
    if (!vdi)
        goto out;
    XsValue *vbd = create(cli, "VBD.create",
                          vbd_record(vm, vdi->s, cli_param(cli, "device"), false, "RW", "Disk",
                                     true, true));
    if (!vbd) {
        XsValue *x = xc_call_session(cli->conn, "VDI.destroy", cli_args1(vdi->s), NULL);
        xv_free(x);
        xv_free(vdi);
        goto out;
    }
    try_plug(cli, vbd->s);
    xv_free(vbd);
    xv_free(vdi);
    rc = 0;
out:
    free(sr);
    free(vm);
    return rc;
}

static int cmd_vm_disk_remove(Cli *cli, const CliCommand *cmd)
{
    const XsValue *vmrec;
    char *vm = one_vm(cli, cmd, &vmrec);
    if (!vm)
        return 1;
    char **vbds;
    size_t n = vbds_of(cli, vmrec, "Disk", &vbds);
    const char *dev = cli_param(cli, "device");
    int rc = 1;
    const char *hit = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(cli_rec_str(cli_record(cli, XS_CLASS_VBD, vbds[i]), "userdevice"), dev) == 0)
            hit = vbds[i];
    if (!hit) {
        cli_fail(cli, "No disk found at device %s of this VM.", dev);
    } else {
        const XsValue *b = cli_record(cli, XS_CLASS_VBD, hit);
        char *vdi = xstrdup(cli_rec_str(b, "VDI"));
        if (cli_rec_bool(b, "currently_attached")) {
            XsValue *u = cli_call_async(cli, "VBD.unplug", cli_args1(hit), "unplug");
            if (!u)
                goto done;
            xv_free(u);
        }
        XsValue *r = cli_call(cli, "VBD.destroy", cli_args1(hit));
        if (r && strcmp(vdi, "OpaqueRef:NULL") != 0) {
            xv_free(r);
            r = cli_call_async(cli, "VDI.destroy", cli_args1(vdi), "destroy");
        }
        rc = r ? 0 : 1;
        xv_free(r);
    done:
        free(vdi);
    }
    free_refs(vbds, n);
    free(vm);
    return rc;
}

/* The ISO VDI named cd-name in an SR of content type iso. */
static char *find_cd(Cli *cli, const char *name)
{
    XsValue *vdis = cli_call1(cli, "VDI.get_by_name_label", name);
    char *found = NULL;
    for (uint32_t i = 0; vdis && i < vdis->n && !found; i++) {
        const XsValue *v = cli_record(cli, XS_CLASS_VDI, vdis->items[i].s);
        const XsValue *sr = v ? cli_record(cli, XS_CLASS_SR, cli_rec_str(v, "SR")) : NULL;
        if (sr && strcmp(cli_rec_str(sr, "content_type"), "iso") == 0)
            found = xstrdup(vdis->items[i].s);
    }
    if (vdis && !found)
        cli_fail(cli, "No CD named '%s' was found: see xe cd-list.", name);
    xv_free(vdis);
    return found;
}

static int cmd_vm_cd_add(Cli *cli, const CliCommand *cmd)
{
    const XsValue *vmrec;
    char *vm = one_vm(cli, cmd, &vmrec);
    if (!vm)
        return 1;
    int rc = 1;
    char *cd = find_cd(cli, cli_param(cli, "cd-name"));
    if (cd) {
        XsValue *vbd = create(cli, "VBD.create",
                              vbd_record(vm, cd, cli_param(cli, "device"), false, "RO", "CD",
                                         true, false));
        if (vbd) {
            try_plug(cli, vbd->s);
            rc = 0;
        }
        xv_free(vbd);
    }
    free(cd);
    free(vm);
    return rc;
}

static int cmd_vm_cd_remove(Cli *cli, const CliCommand *cmd)
{
    const XsValue *vmrec;
    char *vm = one_vm(cli, cmd, &vmrec);
    if (!vm)
        return 1;
    char **vbds;
    size_t n = vbds_of(cli, vmrec, "CD", &vbds);
    const char *name = cli_param(cli, "cd-name");
    const char *hit = NULL;
    for (size_t i = 0; i < n && !hit; i++) {
        const XsValue *b = cli_record(cli, XS_CLASS_VBD, vbds[i]);
        const char *vdi = cli_rec_str(b, "VDI");
        const XsValue *v = strcmp(vdi, "OpaqueRef:NULL") ? cli_record(cli, XS_CLASS_VDI, vdi) : NULL;
        const char *label = v ? cli_rec_str(v, "name_label") : "<EMPTY>";
        if (strcmp(label, name) == 0)
            hit = vbds[i];
    }
    int rc = 1;
    if (!hit) {
        cli_fail(cli, "No CD drive with '%s' found in this VM.", name);
    } else {
        const XsValue *b = cli_record(cli, XS_CLASS_VBD, hit);
        if (cli_rec_bool(b, "currently_attached")) {
            XsValue *u = xc_call_session(cli->conn, "VBD.unplug", cli_args1(hit), NULL);
            xv_free(u);
        }
        XsValue *r = cli_call(cli, "VBD.destroy", cli_args1(hit));
        rc = r ? 0 : 1;
        xv_free(r);
    }
    free_refs(vbds, n);
    free(vm);
    return rc;
}

static int cmd_vm_cd_insert(Cli *cli, const CliCommand *cmd)
{
    const XsValue *vmrec;
    char *vm = one_vm(cli, cmd, &vmrec);
    if (!vm)
        return 1;
    char **vbds;
    size_t n = vbds_of(cli, vmrec, "CD", &vbds);
    const char *empty = NULL;
    size_t n_empty = 0;
    for (size_t i = 0; i < n; i++) {
        if (cli_rec_bool(cli_record(cli, XS_CLASS_VBD, vbds[i]), "empty")) {
            empty = vbds[i];
            n_empty++;
        }
    }
    int rc = 1;
    char *cd = NULL;
    if (n_empty == 0) {
        XsError *e = NULL;
        xs_error_set(&e, "VM_NO_EMPTY_CD_VBD", 1, vm);
        cli_error(cli, e);
        xs_error_free(e);
    } else if (n_empty > 1) {
        cli_fail(cli, "This VM has more than one empty CD drive: use vbd-insert.");
    } else if ((cd = find_cd(cli, cli_param(cli, "cd-name")))) {
        XsValue *p = xv_array();
        xv_array_push_string(p, empty);
        xv_array_push_string(p, cd);
        XsValue *r = cli_call_async(cli, "VBD.insert", p, "insert");
        rc = r ? 0 : 1;
        xv_free(r);
    }
    free(cd);
    free_refs(vbds, n);
    free(vm);
    return rc;
}

static int cmd_vm_cd_eject(Cli *cli, const CliCommand *cmd)
{
    const XsValue *vmrec;
    char *vm = one_vm(cli, cmd, &vmrec);
    if (!vm)
        return 1;
    char **vbds;
    size_t n = vbds_of(cli, vmrec, "CD", &vbds);
    int rc = 1;
    if (n == 0)
        cli_fail(cli, "This VM has no CD drive.");
    else if (n > 1)
        cli_fail(cli, "This VM has more than one CD drive: use vbd-eject.");
    else {
        XsValue *r = cli_call_async(cli, "VBD.eject", cli_args1(vbds[0]), "eject");
        rc = r ? 0 : 1;
        xv_free(r);
    }
    free_refs(vbds, n);
    free(vm);
    return rc;
}

static int cmd_vm_vif_list(Cli *cli, const CliCommand *cmd)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, CLI_VMS_TEMPLATES | CLI_VMS_MULTIPLE_OK, &sel))
        return 1;
    const char *params = cli_param(cli, "params");
    for (size_t i = 0; i < sel.n; i++) {
        const XsValue *vifs = xv_struct_get(sel.records[i], "VIFs");
        size_t n = vifs ? vifs->n : 0;
        char **refs = xcalloc(n + 1, sizeof(char *));
        for (size_t k = 0; k < n; k++)
            refs[k] = vifs->items[k].s;
        cli_print_records(cli, &xs_class_VIF, refs, n,
                          params ? params
                                 : "uuid,vm-name-label,device,MAC,network-uuid,network-name-label");
        free(refs);
    }
    cli_selection_release(&sel);
    return 0;
}

static const CliCommand device_commands[] = {
    {"network-create", "name-label", "name-description,MTU,bridge,managed",
     "Create a new network.", cmd_network_create},
    {"network-destroy", "uuid", "", "Delete an existing network.", cmd_network_destroy},
    {"vbd-create", "vm-uuid,device", "vdi-uuid,bootable,type,mode,unpluggable",
     "Create a VBD. Leave vdi-uuid out for an empty CD drive (type=CD).", cmd_vbd_create},
    {"vbd-destroy", "uuid", "", "Destroy a VBD.", cmd_vbd_destroy},
    {"vbd-eject", "uuid", "", "Remove the media from the drive of this VBD.", cmd_vbd_eject},
    {"vbd-insert", "uuid,vdi-uuid", "", "Insert new media into the drive of this VBD.",
     cmd_vbd_insert},
    {"vbd-plug", "uuid", "", "Attempt to attach the VBD while the VM is running.", cmd_vbd_plug},
    {"vbd-unplug", "uuid", "force,timeout",
     "Attempt to detach the VBD from the running VM.", cmd_vbd_unplug},
    {"vif-create", "device,network-uuid,vm-uuid", "mac",
     "Create a VIF. mac=random gives a random MAC; without mac, one is derived from the VM's "
     "MAC seed.",
     cmd_vif_create},
    {"vif-destroy", "uuid", "", "Destroy a VIF.", cmd_vif_destroy},
    {"vif-plug", "uuid", "", "Attempt to attach the VIF while the VM is running.", cmd_vif_plug},
    {"vif-unplug", "uuid", "force", "Attempt to detach the VIF from the running VM.",
     cmd_vif_unplug},
    {"vm-cd-add", "cd-name,device", "", "Add a CD drive holding the named CD to the VM.",
     cmd_vm_cd_add},
    {"vm-cd-eject", NULL, "", "Eject the CD from the VM's CD drive.", cmd_vm_cd_eject},
    {"vm-cd-insert", "cd-name", "", "Insert a CD into the VM's empty CD drive.",
     cmd_vm_cd_insert},
    {"vm-cd-list", NULL, "vbd-params,vdi-params", "List the CDs of the VM.", cmd_vm_cd_list},
    {"vm-cd-remove", "cd-name", "", "Remove the CD drive holding the named CD.",
     cmd_vm_cd_remove},
    {"vm-disk-add", "disk-size,device", "sr-uuid", "Add a new disk to the VM.",
     cmd_vm_disk_add},
    {"vm-disk-list", NULL, "vbd-params,vdi-params", "List the disks of the VM.",
     cmd_vm_disk_list},
    {"vm-disk-remove", "device", "", "Remove a disk from the VM and destroy it.",
     cmd_vm_disk_remove},
    {"vm-vif-list", NULL, "params", "List the VIFs of the VM(s).", cmd_vm_vif_list},
};

void cli_device_commands(CliCommandList *l)
{
    cli_register(l, device_commands, ARRAY_SIZE(device_commands));
}
