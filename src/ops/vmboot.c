/*
 * A VM's records turned into the QEMU that runs it (see vmboot.h): the
 * checks made before a start, the choice of boot mode and devices, and the
 * preparation (disks attached, installer fetched, taps plugged) with its
 * undo.
 */
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/net.h"
#include "ops/repo.h"
#include "ops/vmboot.h"
#include "ops/vmdisk.h"
#include "ops/vmnet.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define MIN_MEMORY ((int64_t)(16 * MiB))
#define DEFAULT_BOOT_TIMEOUT_S 300

static const struct {
    const char *key, *value;
} generic_bios[] = {
    {"bios-vendor", "Xen"},
    {"bios-version", ""},
    {"system-manufacturer", "Xen"},
    {"system-product-name", "HVM domU"},
    {"system-version", ""},
    {"system-serial-number", ""},
    {"hp-rombios", ""},
    {"oem-1", "Xen"},
    {"oem-2", "MS_VM_CERT/SHA1/bdbeb6e0a816d43fa6d3fe8aaef04c2bad9d3e3d"},
};

XsValue *vmboot_generic_bios_strings(void)
{
    XsValue *m = xv_struct();
    for (size_t i = 0; i < ARRAY_SIZE(generic_bios); i++)
        xv_struct_set_string(m, generic_bios[i].key, generic_bios[i].value);
    return m;
}

void vmboot_tap_name(int64_t domid, unsigned dev, char name[16])
{
    if (domid < 0 || net_tap_name((unsigned)domid, dev, name) < 0)
        snprintf(name, 16, "vif-bad");
}

static bool truthy(const char *v)
{
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0);
}

static bool falsy(const char *v)
{
    return v && (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0);
}

/* ---- the template's recommendations ----------------------------------------- */

typedef struct Recs {
    int64_t mem_max, mem_min, vcpus_max;
} Recs;

static void parse_recommendations(const char *xml, Recs *r)
{
    memset(r, 0, sizeof(*r));
    if (!xml || !*xml || strlen(xml) > 64 * 1024)
        return;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "recommendations.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    for (xmlNodePtr n = root ? root->children : NULL; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "restriction") != 0)
            continue;
        xmlChar *field = xmlGetProp(n, BAD_CAST "field");
        xmlChar *max = xmlGetProp(n, BAD_CAST "max");
        xmlChar *min = xmlGetProp(n, BAD_CAST "min");
        if (field && strcmp((char *)field, "memory-static-max") == 0 && max)
            r->mem_max = strtoll((char *)max, NULL, 10);
        if (field && strcmp((char *)field, "memory-static-min") == 0 && min)
            r->mem_min = strtoll((char *)min, NULL, 10);
        if (field && strcmp((char *)field, "vcpus-max") == 0 && max)
            r->vcpus_max = strtoll((char *)max, NULL, 10);
        xmlFree(field);
        xmlFree(max);
        xmlFree(min);
    }
    xmlFreeDoc(doc);
}

/* ---- device models ------------------------------------------------------------- */

bool vmboot_devices_of(const DbObj *vm, bool *hvm, bool *pv_drivers, VmmBus *disk_bus,
                       VmmNicModel *nic_model, XsError **errp)
{
    const XsValue *platform = &vm->fields[F_VM_PLATFORM];
    const XsValue *oc = &vm->fields[F_VM_OTHER_CONFIG];
    int dt = db_enum(vm, F_VM_DOMAIN_TYPE);
    *hvm = dt == DOMAIN_TYPE_HVM ||
           (dt != DOMAIN_TYPE_PV && dt != DOMAIN_TYPE_PV_IN_PVH && dt != DOMAIN_TYPE_PVH &&
            *db_str(vm, F_VM_HVM_BOOT_POLICY));
    *pv_drivers = !*hvm || truthy(xv_struct_get_string(oc, "linux_template"));
    *disk_bus = *pv_drivers ? VMM_BUS_VIRTIO : VMM_BUS_IDE;
    *nic_model = *pv_drivers ? VMM_NIC_MODEL_VIRTIO : VMM_NIC_MODEL_E1000;
    const char *bus = xv_struct_get_string(platform, "hyperxe-disk-bus");
    if (bus && *bus) {
        int b = vmm_bus_from_string(bus);
        if (b < 0) {
            xs_err_invalid_value(errp, "platform:hyperxe-disk-bus", bus);
            return false;
        }
        *disk_bus = (VmmBus)b;
    }
    const char *nicm = xv_struct_get_string(platform, "hyperxe-nic-model");
    if (nicm && *nicm) {
        int m = vmm_nic_model_from_string(nicm);
        if (m < 0) {
            xs_err_invalid_value(errp, "platform:hyperxe-nic-model", nicm);
            return false;
        }
        *nic_model = (VmmNicModel)m;
    }
    return true;
}

VmmBus vmboot_bus_for(VmmBus disk_bus, unsigned position, bool cd)
{
    if (cd)
        return position < 4 ? VMM_BUS_IDE : VMM_BUS_SCSI;
    if (disk_bus == VMM_BUS_IDE && position >= 4)
        return VMM_BUS_VIRTIO; /* only four IDE devices; XenServer's too */
    return disk_bus;
}

/* ---- gathering ----------------------------------------------------------------- */

static bool parse_position(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v >= (long)max)
        return false;
    *out = (unsigned)v;
    return true;
}

static char *dup_field(const DbObj *o, int f)
{
    return xstrdup(db_str(o, f));
}

static bool gather_locked(OpsCtx *ctx, DbObj *vm, bool force, VmSpec *s, XsError **errp)
{
    Db *db = ctx->db;
    s->ref = xstrdup(vm->ref);
    snprintf(s->uuid, sizeof(s->uuid), "%s", db_str(vm, F_VM_UUID));
    s->name = dup_field(vm, F_VM_NAME_LABEL);
    s->static_min = db_int(vm, F_VM_MEMORY_STATIC_MIN);
    s->static_max = db_int(vm, F_VM_MEMORY_STATIC_MAX);
    s->dynamic_min = db_int(vm, F_VM_MEMORY_DYNAMIC_MIN);
    s->dynamic_max = db_int(vm, F_VM_MEMORY_DYNAMIC_MAX);
    s->vcpus = db_int(vm, F_VM_VCPUS_AT_STARTUP);
    s->vcpus_max = db_int(vm, F_VM_VCPUS_MAX);

    if (s->vcpus < 1) {
        xs_err_vm_no_vcpus(errp, vm->ref);
        return false;
    }
    if (s->vcpus_max > VMM_MAX_VCPUS || s->vcpus > s->vcpus_max) {
        xs_err_vm_too_many_vcpus(errp, vm->ref);
        return false;
    }
    if (s->static_min < 0 || !(s->static_min <= s->dynamic_min &&
                               s->dynamic_min <= s->dynamic_max &&
                               s->dynamic_max <= s->static_max)) {
        xs_err_memory_constraint_violation_order(errp);
        return false;
    }
    if (s->static_max < MIN_MEMORY || s->dynamic_max < MIN_MEMORY) {
        xs_err_vm_memory_size_too_low(errp, vm->ref);
        return false;
    }
    if (!force) {
        Recs r;
        parse_recommendations(db_str(vm, F_VM_RECOMMENDATIONS), &r);
        if (r.mem_min > 0 && s->static_max < r.mem_min) {
            xs_err_vm_memory_size_too_low(errp, vm->ref);
            return false;
        }
        if (r.mem_max > 0 && s->static_max > r.mem_max) {
            char c[128];
            snprintf(c, sizeof(c), "memory_static_max <= %" PRId64 " (the most the guest "
                     "supports; start with --force to override)", r.mem_max);
            xs_err_memory_constraint_violation(errp, c);
            return false;
        }
        if (r.vcpus_max > 0 && s->vcpus_max > r.vcpus_max) {
            xs_err_vm_too_many_vcpus(errp, vm->ref);
            return false;
        }
    }

    const XsValue *platform = &vm->fields[F_VM_PLATFORM];
    const XsValue *oc = &vm->fields[F_VM_OTHER_CONFIG];
    if (!vmboot_devices_of(vm, &s->hvm, &s->pv_drivers, &s->disk_bus, &s->nic_model, errp))
        return false;
    const XsValue *hbp = &vm->fields[F_VM_HVM_BOOT_PARAMS];
    const char *order = xv_struct_get_string(hbp, "order");
    s->order = xstrdup(order && *order ? order : "cd");
    for (const char *o = s->order; *o; o++) {
        if (!strchr("cdnCDN", *o)) {
            xs_err_invalid_value(errp, "HVM-boot-params:order", s->order);
            return false;
        }
    }
    const char *fw = xv_struct_get_string(hbp, "firmware");
    s->uefi = s->hvm && fw && strcmp(fw, "uefi") == 0;
    s->bootloader = dup_field(vm, F_VM_PV_BOOTLOADER);
    s->kernel = dup_field(vm, F_VM_PV_KERNEL);
    s->ramdisk = dup_field(vm, F_VM_PV_RAMDISK);
    s->args = dup_field(vm, F_VM_PV_ARGS);
    if (!s->hvm && *s->bootloader && strcmp(s->bootloader, "pygrub") != 0 &&
        strcmp(s->bootloader, "eliloader") != 0) {
        xs_err_unknown_bootloader(errp, vm->ref, s->bootloader);
        return false;
    }
    const char *repo = xv_struct_get_string(oc, "install-repository");
    if (!s->hvm && strcmp(s->bootloader, "eliloader") == 0 && repo && *repo)
        s->install_repo = xstrdup(repo);
    s->install_distro = xstrdup_or_null(xv_struct_get_string(oc, "install-distro"));
    s->install_arch = xstrdup_or_null(xv_struct_get_string(oc, "install-arch"));
    s->debian_release = xstrdup_or_null(xv_struct_get_string(oc, "debian-release"));
    const char *toff = xv_struct_get_string(platform, "timeoffset");
    s->timeoffset = toff ? strtoll(toff, NULL, 10) : 0;
    const char *bt = xv_struct_get_string(oc, "hyperxe-boot-timeout");
    long btv = bt ? strtol(bt, NULL, 10) : DEFAULT_BOOT_TIMEOUT_S;
    s->boot_timeout_s = s->pv_drivers && btv > 0 ? (unsigned)MIN(btv, 86400) : 0;
    s->acpi = !falsy(xv_struct_get_string(platform, "acpi"));
    s->usb_tablet = s->hvm && !falsy(xv_struct_get_string(platform, "usb_tablet")) &&
                    !falsy(xv_struct_get_string(platform, "usb"));
    const char *vga = xv_struct_get_string(platform, "vga");
    s->vga = xstrdup(vga && strcmp(vga, "cirrus") == 0 ? "cirrus" : "std");
    s->bios_strings = xv_copy(&vm->fields[F_VM_BIOS_STRINGS]);

    /* Disks and CDs. */
    size_t nvbd = db_backref_count(vm, F_VM_VBDS);
    s->disks = xcalloc(nvbd + 1, sizeof(VmBootDisk));
    DbObj *seen[VMM_MAX_DISKS] = {NULL};
    for (size_t i = 0; i < nvbd; i++) {
        DbObj *vbd = db_backref(vm, F_VM_VBDS, i);
        int type = db_enum(vbd, F_VBD_TYPE);
        if (type == VBD_TYPE_FLOPPY)
            continue;
        unsigned pos;
        const char *ud = db_str(vbd, F_VBD_USERDEVICE);
        if (!parse_position(ud, VMM_MAX_DISKS, &pos)) {
            xs_err_invalid_device(errp, ud);
            return false;
        }
        if (seen[pos]) {
            xs_err_vm_duplicate_vbd_device(errp, vm->ref, vbd->ref, ud);
            return false;
        }
        seen[pos] = vbd;
        VmBootDisk *d = &s->disks[s->n_disks++];
        d->vbd_ref = xstrdup(vbd->ref);
        d->position = pos;
        d->cd = type == VBD_TYPE_CD;
        d->rw = !d->cd && db_enum(vbd, F_VBD_MODE) == VBD_MODE_RW;
        d->bootable = db_bool(vbd, F_VBD_BOOTABLE);
        const char *vdi = db_str(vbd, F_VBD_VDI);
        if (!db_bool(vbd, F_VBD_EMPTY) && db_get_class(db, XS_CLASS_VDI, vdi))
            d->vdi_ref = xstrdup(vdi);
        else if (!d->cd) {
            xs_err_vm_requires_vdi(errp, vm->ref, vdi);
            return false;
        }
    }

    /* NICs. */
    size_t nvif = db_backref_count(vm, F_VM_VIFS);
    s->nics = xcalloc(nvif + 1, sizeof(VmBootNic));
    bool nic_seen[VMM_MAX_NICS] = {false};
    for (size_t i = 0; i < nvif; i++) {
        DbObj *vif = db_backref(vm, F_VM_VIFS, i);
        unsigned dev;
        const char *ds = db_str(vif, F_VIF_DEVICE);
        if (!parse_position(ds, VMM_MAX_NICS, &dev)) {
            xs_err_invalid_device(errp, ds);
            return false;
        }
        if (nic_seen[dev]) {
            xs_err_device_already_exists(errp, ds);
            return false;
        }
        nic_seen[dev] = true;
        DbObj *net = db_get_class(db, XS_CLASS_NETWORK, db_str(vif, F_VIF_NETWORK));
        if (!net) {
            xs_err_vm_requires_network(errp, vm->ref, db_str(vif, F_VIF_NETWORK));
            return false;
        }
        char mac[NET_MAC_STRLEN];
        if (net_mac_normalize(db_str(vif, F_VIF_MAC), mac, NULL) < 0) {
            xs_err_mac_invalid(errp, db_str(vif, F_VIF_MAC));
            return false;
        }
        VmBootNic *n = &s->nics[s->n_nics++];
        n->vif_ref = xstrdup(vif->ref);
        n->network_ref = xstrdup(net->ref);
        n->device = dev;
        memcpy(n->mac, mac, sizeof(n->mac));
        int64_t mtu = db_int(vif, F_VIF_MTU);
        if (mtu < 68 || mtu > 65535)
            mtu = db_int(net, F_NETWORK_MTU);
        n->mtu = mtu >= 68 && mtu <= 65535 ? (unsigned)mtu : 1500;
        n->bridge = dup_field(net, F_NETWORK_BRIDGE);
    }
    return true;
}

bool vmboot_gather(OpsCtx *ctx, const char *vm_ref, bool force, VmSpec *spec, XsError **errp)
{
    memset(spec, 0, sizeof(*spec));
    db_read_lock(ctx->db);
    DbObj *vm = db_get_class(ctx->db, XS_CLASS_VM, vm_ref);
    bool ok = vm && gather_locked(ctx, vm, force, spec, errp);
    db_read_unlock(ctx->db);
    if (!vm)
        xs_err_handle_invalid(errp, "VM", vm_ref);
    if (!ok)
        vmboot_spec_release(spec);
    return ok;
}

void vmboot_spec_release(VmSpec *s)
{
    free(s->ref);
    free(s->name);
    free(s->order);
    free(s->bootloader);
    free(s->kernel);
    free(s->ramdisk);
    free(s->args);
    free(s->install_repo);
    free(s->install_distro);
    free(s->install_arch);
    free(s->debian_release);
    free(s->vga);
    xv_free(s->bios_strings);
    for (size_t i = 0; i < s->n_disks; i++) {
        free(s->disks[i].vbd_ref);
        free(s->disks[i].vdi_ref);
    }
    free(s->disks);
    for (size_t i = 0; i < s->n_nics; i++) {
        free(s->nics[i].vif_ref);
        free(s->nics[i].network_ref);
        free(s->nics[i].bridge);
    }
    free(s->nics);
    memset(s, 0, sizeof(*s));
}

/* ---- preparing ------------------------------------------------------------------- */

static void st_add(char ***v, size_t *n, const char *s)
{
    *v = xreallocarray(*v, *n + 1, sizeof(char *));
    (*v)[(*n)++] = xstrdup(s);
}

void vmboot_state_release(VmBootState *st)
{
    for (size_t i = 0; i < st->n_vdis; i++)
        free(st->vdis[i]);
    free(st->vdis);
    for (size_t i = 0; i < st->n_taps; i++)
        free(st->taps[i]);
    free(st->taps);
    free(st->boot_dir);
    memset(st, 0, sizeof(*st));
}

static void remove_boot_dir(const char *dir)
{
    if (!dir)
        return;
    _cleanup_free_ char *k = xasprintf("%s/installer-kernel", dir);
    _cleanup_free_ char *i = xasprintf("%s/installer-initrd", dir);
    unlink(k);
    unlink(i);
    rmdir(dir);
}

void vmboot_undo(OpsCtx *ctx, const char *vm_ref, VmBootState *st)
{
    for (size_t i = 0; i < st->n_taps; i++)
        vmnet_tap_unplug(st->taps[i]);
    for (size_t i = 0; i < st->n_vdis; i++)
        vmdisk_detach(ctx, vm_ref, st->vdis[i]);
    remove_boot_dir(st->boot_dir);
    vmboot_state_release(st);
}

static bool file_ok(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Direct kernel boot from PV_kernel/PV_ramdisk, or the installer. */
static bool prepare_kernel(OpsCtx *ctx, const VmSpec *s, VmmConfig *cfg, VmBootState *st,
                           XsError **errp)
{
    if (s->install_repo && strcmp(s->install_repo, "cdrom") != 0) {
        st->boot_dir = xasprintf("%s/boot-%s", ctx->env->run_dir, s->uuid);
        mkdir(st->boot_dir, 0700);
        RepoRequest req = {
            .url = s->install_repo,
            .distro = s->install_distro,
            .arch = s->install_arch,
            .release = s->debian_release,
            .dest_dir = st->boot_dir,
        };
        RepoInstaller inst;
        char *why = NULL;
        if (!repo_fetch_installer(&req, &inst, &why)) {
            xs_err_bootloader_failed(errp, s->ref, why);
            free(why);
            return false;
        }
        log_info("VM %s: booting the %s installer from %s", s->uuid, inst.layout,
                 s->install_repo);
        cfg->kernel = xstrdup(inst.kernel);
        cfg->initrd = xstrdup(inst.initrd);
        bool has_repo = strstr(s->args, "repo=") || strstr(s->args, "method=") ||
                        strstr(s->args, "install=");
        cfg->cmdline = *inst.args && !has_repo ? xasprintf("%s%s%s", s->args, *s->args ? " " : "",
                                                           inst.args)
                                               : xstrdup(s->args);
        st->install_boot = true;
        repo_installer_release(&inst);
        return true;
    }
    if (!file_ok(s->kernel)) {
        char *m = xasprintf("the kernel %s (PV-kernel) does not exist on this host", s->kernel);
        xs_err_bootloader_failed(errp, s->ref, m);
        free(m);
        return false;
    }
    if (*s->ramdisk && !file_ok(s->ramdisk)) {
        char *m = xasprintf("the ramdisk %s (PV-ramdisk) does not exist on this host",
                            s->ramdisk);
        xs_err_bootloader_failed(errp, s->ref, m);
        free(m);
        return false;
    }
    cfg->kernel = xstrdup(s->kernel);
    cfg->initrd = *s->ramdisk ? xstrdup(s->ramdisk) : NULL;
    cfg->cmdline = xstrdup(s->args);
    return true;
}

bool vmboot_prepare(OpsCtx *ctx, const VmSpec *s, int64_t domid, VmmConfig *cfg,
                    VmBootState *st, XsError **errp)
{
    HxEnv *env = ctx->env;
    memset(st, 0, sizeof(*st));
    snprintf(cfg->uuid, sizeof(cfg->uuid), "%s", s->uuid);
    cfg->name = xstrdup(s->name);
    cfg->accel = env->accel && strcmp(env->accel, "kvm") == 0 ? VMM_ACCEL_KVM : VMM_ACCEL_TCG;
    cfg->machine = VMM_MACHINE_PC;
    cfg->vcpus = (unsigned)s->vcpus;
    cfg->vcpus_max = (unsigned)s->vcpus_max;
    cfg->memory_mib = ((uint64_t)s->static_max + MiB - 1) / MiB;
    uint64_t target = ((uint64_t)s->dynamic_max + MiB - 1) / MiB;
    cfg->memory_target_mib = target < cfg->memory_mib ? target : 0;
    if (s->uefi) {
        cfg->firmware = VMM_FIRMWARE_UEFI;
        _cleanup_free_ char *dir = xasprintf("%s/nvram", env->state_dir);
        mkdir(dir, 0700);
        cfg->nvram_path = xasprintf("%s/%s.fd", dir, s->uuid);
    }
    cfg->acpi = s->acpi;
    cfg->usb_tablet = s->usb_tablet;
    cfg->vga = xstrdup(s->vga);
    cfg->vnc = VMM_VNC_UNIX;
    cfg->qga = true;
    cfg->pvpanic = true;
    cfg->balloon = true;
    cfg->keep_on_shutdown = true;
    cfg->reboot_is_shutdown = false;
    cfg->boot_timeout_s = s->boot_timeout_s;
    cfg->rtc_offset_s = s->timeoffset;
    if (s->bios_strings && s->bios_strings->n) {
        for (uint32_t i = 0; i < s->bios_strings->n; i++)
            vmm_config_add_smbios(cfg, xv_struct_key(s->bios_strings, i),
                                  xv_struct_val(s->bios_strings, i)->s);
    } else {
        for (size_t i = 0; i < ARRAY_SIZE(generic_bios); i++)
            vmm_config_add_smbios(cfg, generic_bios[i].key, generic_bios[i].value);
    }

    /* Boot mode. */
    bool direct = !s->hvm && (s->install_repo ? strcmp(s->install_repo, "cdrom") != 0
                                              : !*s->bootloader && *s->kernel);
    bool firmware_by_flags = !s->hvm && !direct;
    if (s->hvm) {
        free(cfg->boot_order);
        cfg->boot_order = xstrdup(s->order);
    } else {
        free(cfg->boot_order);
        cfg->boot_order = xstrdup("");
        if (direct && !prepare_kernel(ctx, s, cfg, st, errp))
            goto fail;
    }

    /* Disks and CDs. */
    bool cd_first = s->install_repo && strcmp(s->install_repo, "cdrom") == 0;
    bool any_bootable = false;
    for (size_t i = 0; i < s->n_disks; i++)
        any_bootable |= s->disks[i].bootable;
    if (firmware_by_flags && !any_bootable) {
        xs_err_bootloader_failed(errp, s->ref,
                                 "no bootable disk or CD: set bootable=true on a VBD "
                                 "(vbd-param-set), or give a PV-kernel");
        goto fail;
    }
    int next_boot = 1;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < s->n_disks; i++) {
            const VmBootDisk *d = &s->disks[i];
            if ((pass == 0) != (d->cd == cd_first))
                continue;
            VmDiskFile f = {0};
            if (d->vdi_ref) {
                if (!vmdisk_attach(ctx, s->ref, d->vdi_ref, d->rw, &f, errp))
                    goto fail;
                st_add(&st->vdis, &st->n_vdis, d->vdi_ref);
            }
            VmmDisk *vd = vmm_config_add_disk(cfg, d->position,
                                              d->cd ? VMM_DISK_TYPE_CDROM : VMM_DISK_TYPE_DISK,
                                              vmboot_bus_for(s->disk_bus, d->position, d->cd), f.path,
                                              f.format);
            vd->read_only = d->cd || f.read_only;
            if (firmware_by_flags && d->bootable)
                vd->bootindex = next_boot++;
            vmdisk_file_release(&f);
        }
    }

    /* NICs. */
    for (size_t i = 0; i < s->n_nics; i++) {
        const VmBootNic *n = &s->nics[i];
        VmmNic *vn = vmm_config_add_nic(cfg, n->device, n->mac, s->nic_model);
        if (env->user_networking) {
            vn->backend = VMM_NET_USER;
            vn->user_reason = xstrdup(vmnet_user_reason(env));
            continue;
        }
        if (!vmnet_network_up(ctx, n->network_ref, errp))
            goto fail;
        char tap[16];
        vmboot_tap_name(domid, n->device, tap);
        if (!vmnet_tap_plug(ctx, tap, n->bridge, n->mtu, errp))
            goto fail;
        st_add(&st->taps, &st->n_taps, tap);
        vn = &cfg->nics[cfg->n_nics - 1];
        vn->backend = VMM_NET_TAP;
        vn->ifname = xstrdup(tap);
    }

    char *why = NULL;
    if (vmm_config_validate(cfg, &why) < 0) {
        xs_err_domain_builder_error(errp, "configuration", "EINVAL", why ? why : "invalid");
        free(why);
        goto fail;
    }
    return true;
fail:
    vmboot_undo(ctx, s->ref, st);
    return false;
}
