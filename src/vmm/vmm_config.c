/*
 * VmmConfig: defaults, copies, validation and the JSON form kept in
 * <vm dir>/config.json, plus the names of the enum values. Pure data: nothing
 * here touches the file system or QEMU (file checks happen at start).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/xalloc.h"
#include "vmm/qmp_cmd.h"
#include "vmm/vmm.h"
#include "vmm/vmm_internal.h"
#include "vmm/vmm_util.h"
#include "util/banned.h"

/* ---- enum names ---------------------------------------------------------- */

static int vmm_enum_parse(const char *const *names, int n, const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < n; i++)
        if (names[i] && STREQ(names[i], s))
            return i;
    return -1;
}

#define VMM_ENUM_STRINGS(fn, Type, MAXV, ...)                                                      \
    static const char *const fn##_names[MAXV] = {__VA_ARGS__};                                     \
    const char *vmm_##fn##_to_string(Type v)                                                       \
    {                                                                                              \
        return (unsigned)v < (unsigned)(MAXV) ? fn##_names[v] : "?";                               \
    }                                                                                              \
    int vmm_##fn##_from_string(const char *s)                                                      \
    {                                                                                              \
        return vmm_enum_parse(fn##_names, (int)(MAXV), s);                                         \
    }

VMM_ENUM_STRINGS(accel, VmmAccel, VMM_ACCEL__MAX, "tcg", "kvm")
VMM_ENUM_STRINGS(machine, VmmMachine, VMM_MACHINE__MAX, "pc", "q35")
VMM_ENUM_STRINGS(firmware, VmmFirmware, VMM_FIRMWARE__MAX, "bios", "uefi")
VMM_ENUM_STRINGS(disk_format, VmmDiskFormat, VMM_DISK_FORMAT__MAX, "raw", "qcow2")
VMM_ENUM_STRINGS(bus, VmmBus, VMM_BUS__MAX, "virtio", "ide", "scsi")
VMM_ENUM_STRINGS(disk_type, VmmDiskType, VMM_DISK_TYPE__MAX, "disk", "cdrom")
VMM_ENUM_STRINGS(nic_model, VmmNicModel, VMM_NIC_MODEL__MAX, "virtio", "e1000", "rtl8139")
VMM_ENUM_STRINGS(net_backend, VmmNetBackend, VMM_NET__MAX, "tap", "user")
VMM_ENUM_STRINGS(vnc_mode, VmmVncMode, VMM_VNC__MAX, "none", "unix", "tcp")
VMM_ENUM_STRINGS(incoming, VmmIncomingKind, VMM_INCOMING__MAX, "none", "file", "uri")
VMM_ENUM_STRINGS(backend, VmmBackend, VMM_BACKEND__MAX, "qemu", "sim")
VMM_ENUM_STRINGS(run_state, VmmRunState, VMM_RUN_STATE__MAX, "unknown", "debug",
                 "finish-migrate", "guest-panicked", "inmigrate", "internal-error", "io-error",
                 "paused", "postmigrate", "prelaunch", "restore-vm", "running", "save-vm",
                 "shutdown", "suspended", "watchdog", "colo", "dead")

static const char *const event_names[VMM_EVENT__MAX] = {
    "SHUTDOWN",  "RESET",          "STOP",           "RESUME",
    "POWERDOWN", "GUEST_PANICKED", "RTC_CHANGE",     "DEVICE_DELETED",
    "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR", "BLOCK_JOB_READY",
    "MIGRATION", "BALLOON_CHANGE", "DUMP_COMPLETED", "BOOTED",
    "STUCK",     "EXITED",
};

const char *vmm_event_type_to_string(VmmEventType t)
{
    return (unsigned)t < VMM_EVENT__MAX && event_names[t] ? event_names[t] : "?";
}

/* ---- building ------------------------------------------------------------ */

void vmm_config_init(VmmConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->accel = VMM_ACCEL_TCG;
    cfg->machine = VMM_MACHINE_PC;
    cfg->vcpus = 1;
    cfg->vcpus_max = 1;
    cfg->memory_mib = 256;
    cfg->firmware = VMM_FIRMWARE_BIOS;
    cfg->boot_order = xstrdup("cd");
    cfg->vnc = VMM_VNC_NONE;
    cfg->vnc_display = -1;
    cfg->qga = true;
    cfg->pvpanic = true;
    cfg->balloon = true;
    cfg->acpi = true;
}

static void vmm_strv_release(char ***v)
{
    if (*v) {
        for (char **p = *v; *p; p++)
            free(*p);
        free(*v);
    }
    *v = NULL;
}

static char **vmm_strv_copy(char *const *v)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **r = xnew0(char *, n + 1);
    for (size_t i = 0; i < n; i++)
        r[i] = xstrdup(v[i]);
    return r;
}

void vmm_strv_free(char **v)
{
    vmm_strv_release(&v);
}

void vmm_disk_release(VmmDisk *d)
{
    free(d->path);
    free(d->serial);
    memset(d, 0, sizeof(*d));
}

void vmm_disk_copy(VmmDisk *dst, const VmmDisk *src)
{
    *dst = *src;
    dst->path = xstrdup_or_null(src->path);
    dst->serial = xstrdup_or_null(src->serial);
}

void vmm_nic_release(VmmNic *n)
{
    free(n->ifname);
    free(n->user_reason);
    vmm_strv_release(&n->hostfwd);
    memset(n, 0, sizeof(*n));
}

void vmm_nic_copy(VmmNic *dst, const VmmNic *src)
{
    *dst = *src;
    dst->ifname = xstrdup_or_null(src->ifname);
    dst->user_reason = xstrdup_or_null(src->user_reason);
    dst->hostfwd = vmm_strv_copy(src->hostfwd);
}

void vmm_config_release(VmmConfig *cfg)
{
    free(cfg->name);
    free(cfg->cpu_model);
    free(cfg->nvram_path);
    free(cfg->boot_order);
    free(cfg->kernel);
    free(cfg->initrd);
    free(cfg->cmdline);
    for (size_t i = 0; i < cfg->n_disks; i++)
        vmm_disk_release(&cfg->disks[i]);
    free(cfg->disks);
    for (size_t i = 0; i < cfg->n_nics; i++)
        vmm_nic_release(&cfg->nics[i]);
    free(cfg->nics);
    for (size_t i = 0; i < cfg->n_smbios; i++) {
        free(cfg->smbios[i].key);
        free(cfg->smbios[i].value);
    }
    free(cfg->smbios);
    free(cfg->vga);
    free(cfg->incoming_path);
    free(cfg->incoming_uri);
    free(cfg->boot_marker);
    vmm_strv_release(&cfg->extra_args);
    memset(cfg, 0, sizeof(*cfg));
}

void vmm_config_copy(VmmConfig *dst, const VmmConfig *src)
{
    *dst = *src;
    dst->name = xstrdup_or_null(src->name);
    dst->cpu_model = xstrdup_or_null(src->cpu_model);
    dst->nvram_path = xstrdup_or_null(src->nvram_path);
    dst->boot_order = xstrdup_or_null(src->boot_order);
    dst->kernel = xstrdup_or_null(src->kernel);
    dst->initrd = xstrdup_or_null(src->initrd);
    dst->cmdline = xstrdup_or_null(src->cmdline);
    dst->disks = src->n_disks ? xnew0(VmmDisk, src->n_disks) : NULL;
    for (size_t i = 0; i < src->n_disks; i++)
        vmm_disk_copy(&dst->disks[i], &src->disks[i]);
    dst->nics = src->n_nics ? xnew0(VmmNic, src->n_nics) : NULL;
    for (size_t i = 0; i < src->n_nics; i++)
        vmm_nic_copy(&dst->nics[i], &src->nics[i]);
    dst->smbios = src->n_smbios ? xnew0(VmmKeyValue, src->n_smbios) : NULL;
    for (size_t i = 0; i < src->n_smbios; i++) {
        dst->smbios[i].key = xstrdup(src->smbios[i].key);
        dst->smbios[i].value = xstrdup(src->smbios[i].value);
    }
    dst->vga = xstrdup_or_null(src->vga);
    dst->incoming_path = xstrdup_or_null(src->incoming_path);
    dst->incoming_uri = xstrdup_or_null(src->incoming_uri);
    dst->boot_marker = xstrdup_or_null(src->boot_marker);
    dst->extra_args = vmm_strv_copy(src->extra_args);
}

VmmDisk *vmm_config_add_disk(VmmConfig *cfg, unsigned position, VmmDiskType type, VmmBus bus,
                             const char *path, VmmDiskFormat format)
{
    cfg->disks = xreallocarray(cfg->disks, cfg->n_disks + 1, sizeof(VmmDisk));
    VmmDisk *d = &cfg->disks[cfg->n_disks++];
    memset(d, 0, sizeof(*d));
    d->position = position;
    d->type = type;
    d->bus = bus;
    d->path = xstrdup_or_null(path);
    d->format = format;
    d->read_only = type == VMM_DISK_TYPE_CDROM;
    d->bootindex = -1;
    return d;
}

VmmNic *vmm_config_add_nic(VmmConfig *cfg, unsigned position, const char *mac, VmmNicModel model)
{
    cfg->nics = xreallocarray(cfg->nics, cfg->n_nics + 1, sizeof(VmmNic));
    VmmNic *n = &cfg->nics[cfg->n_nics++];
    memset(n, 0, sizeof(*n));
    n->position = position;
    snprintf(n->mac, sizeof(n->mac), "%s", mac ? mac : "");
    n->model = model;
    n->backend = VMM_NET_USER;
    n->bootindex = -1;
    return n;
}

void vmm_config_add_smbios(VmmConfig *cfg, const char *key, const char *value)
{
    cfg->smbios = xreallocarray(cfg->smbios, cfg->n_smbios + 1, sizeof(VmmKeyValue));
    cfg->smbios[cfg->n_smbios].key = xstrdup(key);
    cfg->smbios[cfg->n_smbios].value = xstrdup(value);
    cfg->n_smbios++;
}

/* ---- validation ---------------------------------------------------------- */

static bool vmm_mac_valid(const char *mac)
{
    if (strlen(mac) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (mac[i] != ':')
                return false;
        } else if (!isxdigit((unsigned char)mac[i])) {
            return false;
        }
    }
    /* multicast bit: QEMU refuses it and the guest would misbehave */
    unsigned first;
    return sscanf(mac, "%2x", &first) == 1 && !(first & 1);
}

static bool vmm_chars_ok(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return false;
    return true;
}

/* Sorted: the XenServer bios_strings keys this layer maps to SMBIOS. */
static const char *const smbios_keys[] = {
    "baseboard-asset-tag", "baseboard-location-in-chassis", "baseboard-manufacturer",
    "baseboard-product-name", "baseboard-serial-number", "baseboard-version",
    "bios-vendor", "bios-version", "enclosure-asset-tag", "hp-rombios", "oem-1", "oem-2",
    "system-manufacturer", "system-product-name", "system-serial-number", "system-version",
};

static int vmm_str_cmp(const void *a, const void *b)
{
    return strcmp(a, *(const char *const *)b);
}

bool vmm_smbios_key_known(const char *key)
{
    return bsearch(key, smbios_keys, ARRAY_SIZE(smbios_keys), sizeof(smbios_keys[0]),
                   vmm_str_cmp) != NULL;
}

int vmm_config_validate(const VmmConfig *cfg, char **err)
{
    if (!vmm_uuid_valid(cfg->uuid))
        return vmm_error(err, -EINVAL, "VM uuid '%s' is not a lower-case canonical UUID",
                         cfg->uuid);
    const char *u = cfg->uuid;
    if ((unsigned)cfg->accel >= VMM_ACCEL__MAX || (unsigned)cfg->machine >= VMM_MACHINE__MAX ||
        (unsigned)cfg->firmware >= VMM_FIRMWARE__MAX || (unsigned)cfg->vnc >= VMM_VNC__MAX ||
        (unsigned)cfg->incoming >= VMM_INCOMING__MAX)
        return vmm_error(err, -EINVAL, "VM %s: an enum field is out of range", u);
    if (cfg->name && strlen(cfg->name) > 1024)
        return vmm_error(err, -EINVAL, "VM %s: name longer than 1024 characters", u);
    if (cfg->vcpus < 1 || cfg->vcpus > VMM_MAX_VCPUS)
        return vmm_error(err, -EINVAL, "VM %s: %u vCPUs at startup; allowed 1..%d", u,
                         cfg->vcpus, VMM_MAX_VCPUS);
    if (cfg->vcpus_max && (cfg->vcpus_max < cfg->vcpus || cfg->vcpus_max > VMM_MAX_VCPUS))
        return vmm_error(err, -EINVAL, "VM %s: VCPUs-max %u must be between VCPUs-at-startup "
                         "%u and %d", u, cfg->vcpus_max, cfg->vcpus, VMM_MAX_VCPUS);
    if (cfg->memory_mib < 16 || cfg->memory_mib > 1024 * 1024)
        return vmm_error(err, -EINVAL, "VM %s: memory %llu MiB; allowed 16 MiB..1 TiB", u,
                         (unsigned long long)cfg->memory_mib);
    if (cfg->memory_target_mib > cfg->memory_mib)
        return vmm_error(err, -EINVAL, "VM %s: memory target %llu MiB above the static "
                         "maximum %llu MiB", u, (unsigned long long)cfg->memory_target_mib,
                         (unsigned long long)cfg->memory_mib);
    if (cfg->tcg_tb_size_mib > 4096)
        return vmm_error(err, -EINVAL, "VM %s: tb-size %u MiB is too large", u,
                         cfg->tcg_tb_size_mib);
    if (cfg->cpu_model && (!*cfg->cpu_model || strlen(cfg->cpu_model) > 256 ||
                           !vmm_chars_ok(cfg->cpu_model, "-_.,+=")))
        return vmm_error(err, -EINVAL, "VM %s: bad CPU model '%s'", u, cfg->cpu_model);
    if (cfg->boot_order) {
        if (strlen(cfg->boot_order) > 8)
            return vmm_error(err, -EINVAL, "VM %s: boot order '%s' is too long", u,
                             cfg->boot_order);
        for (const char *p = cfg->boot_order; *p; p++)
            if (!strchr("cdnCDN", *p))
                return vmm_error(err, -EINVAL, "VM %s: boot order '%s': use only c (disk), "
                                 "d (CD) and n (network)", u, cfg->boot_order);
    }
    if (!cfg->kernel && (cfg->initrd || cfg->cmdline))
        return vmm_error(err, -EINVAL, "VM %s: an initrd or kernel command line needs a kernel",
                         u);
    if (cfg->cmdline && strlen(cfg->cmdline) > 4096)
        return vmm_error(err, -EINVAL, "VM %s: kernel command line longer than 4096 bytes", u);
    if (cfg->firmware == VMM_FIRMWARE_UEFI && !cfg->nvram_path)
        return vmm_error(err, -EINVAL, "VM %s: UEFI firmware needs an NVRAM file path", u);
    if (cfg->vnc == VMM_VNC_TCP && (cfg->vnc_display < -1 || cfg->vnc_display > 99))
        return vmm_error(err, -EINVAL, "VM %s: VNC display %d; allowed -1 (auto) or 0..99", u,
                         cfg->vnc_display);
    if (cfg->vga && !STREQ(cfg->vga, "std") && !STREQ(cfg->vga, "cirrus") &&
        !STREQ(cfg->vga, "none"))
        return vmm_error(err, -EINVAL, "VM %s: vga '%s'; use std, cirrus or none", u, cfg->vga);
    if (cfg->rtc_offset_s > 3155760000LL || cfg->rtc_offset_s < -3155760000LL)
        return vmm_error(err, -EINVAL, "VM %s: RTC offset beyond 100 years", u);
    if (cfg->incoming == VMM_INCOMING_FILE && !cfg->incoming_path)
        return vmm_error(err, -EINVAL, "VM %s: resume needs the suspend image path", u);
    if (cfg->incoming == VMM_INCOMING_URI &&
        (!cfg->incoming_uri ||
         !(STRPREFIX(cfg->incoming_uri, "tcp:") || STRPREFIX(cfg->incoming_uri, "unix:"))))
        return vmm_error(err, -EINVAL, "VM %s: incoming migration URI must be tcp:HOST:PORT "
                         "or unix:PATH", u);
    if (cfg->boot_marker && (!*cfg->boot_marker || strlen(cfg->boot_marker) > 256))
        return vmm_error(err, -EINVAL, "VM %s: boot marker must be 1..256 bytes", u);

    bool disk_seen[VMM_MAX_DISKS] = {false};
    for (size_t i = 0; i < cfg->n_disks; i++) {
        const VmmDisk *d = &cfg->disks[i];
        if (d->position >= VMM_MAX_DISKS)
            return vmm_error(err, -EINVAL, "VM %s: disk position %u; allowed 0..%d", u,
                             d->position, VMM_MAX_DISKS - 1);
        if (disk_seen[d->position])
            return vmm_error(err, -EINVAL, "VM %s: two disks at position %u", u, d->position);
        disk_seen[d->position] = true;
        if ((unsigned)d->type >= VMM_DISK_TYPE__MAX || (unsigned)d->bus >= VMM_BUS__MAX ||
            (unsigned)d->format >= VMM_DISK_FORMAT__MAX)
            return vmm_error(err, -EINVAL, "VM %s: disk %u: an enum field is out of range", u,
                             d->position);
        if (d->type == VMM_DISK_TYPE_DISK && !d->path)
            return vmm_error(err, -EINVAL, "VM %s: disk %u has no image file", u, d->position);
        if (d->type == VMM_DISK_TYPE_CDROM && d->bus == VMM_BUS_VIRTIO)
            return vmm_error(err, -EINVAL, "VM %s: CD drive %u cannot be on virtio; use ide or "
                             "scsi", u, d->position);
        if (d->bus == VMM_BUS_IDE) {
            unsigned max = cfg->machine == VMM_MACHINE_Q35 ? 6 : 4;
            if (d->position >= max)
                return vmm_error(err, -EINVAL, "VM %s: IDE disk at position %u; this machine "
                                 "has IDE positions 0..%u only", u, d->position, max - 1);
        }
        if (d->path && (!*d->path || strlen(d->path) > 4096))
            return vmm_error(err, -EINVAL, "VM %s: disk %u: bad path", u, d->position);
        if (d->serial && (strlen(d->serial) > 20 || !vmm_chars_ok(d->serial, "-_.")))
            return vmm_error(err, -EINVAL, "VM %s: disk %u: serial must be up to 20 letters, "
                             "digits, '-', '_' or '.'", u, d->position);
        if (d->bootindex < -1 || d->bootindex > 1000)
            return vmm_error(err, -EINVAL, "VM %s: disk %u: bootindex %d", u, d->position,
                             d->bootindex);
    }
    bool nic_seen[VMM_MAX_NICS] = {false};
    for (size_t i = 0; i < cfg->n_nics; i++) {
        const VmmNic *n = &cfg->nics[i];
        if (n->position >= VMM_MAX_NICS)
            return vmm_error(err, -EINVAL, "VM %s: NIC position %u; allowed 0..%d", u,
                             n->position, VMM_MAX_NICS - 1);
        if (nic_seen[n->position])
            return vmm_error(err, -EINVAL, "VM %s: two NICs at position %u", u, n->position);
        nic_seen[n->position] = true;
        if ((unsigned)n->model >= VMM_NIC_MODEL__MAX || (unsigned)n->backend >= VMM_NET__MAX)
            return vmm_error(err, -EINVAL, "VM %s: NIC %u: an enum field is out of range", u,
                             n->position);
        if (!vmm_mac_valid(n->mac))
            return vmm_error(err, -EINVAL, "VM %s: NIC %u: MAC '%s' is not a unicast "
                             "xx:xx:xx:xx:xx:xx address", u, n->position, n->mac);
        if (n->backend == VMM_NET_TAP &&
            (!n->ifname || !*n->ifname || strlen(n->ifname) > 15 ||
             !vmm_chars_ok(n->ifname, "-_.")))
            return vmm_error(err, -EINVAL, "VM %s: NIC %u: a tap NIC needs an interface name "
                             "of up to 15 letters, digits, '-', '_' or '.'", u, n->position);
        for (char **h = n->hostfwd; h && *h; h++)
            if (strlen(*h) > 256 || !vmm_chars_ok(*h, ":.-"))
                return vmm_error(err, -EINVAL, "VM %s: NIC %u: bad hostfwd rule '%s'", u,
                                 n->position, *h);
        if (n->bootindex < -1 || n->bootindex > 1000)
            return vmm_error(err, -EINVAL, "VM %s: NIC %u: bootindex %d", u, n->position,
                             n->bootindex);
    }
    if (cfg->n_smbios > VMM_MAX_SMBIOS)
        return vmm_error(err, -EINVAL, "VM %s: more than %d BIOS strings", u, VMM_MAX_SMBIOS);
    for (size_t i = 0; i < cfg->n_smbios; i++) {
        const VmmKeyValue *kv = &cfg->smbios[i];
        if (!vmm_smbios_key_known(kv->key))
            return vmm_error(err, -EINVAL, "VM %s: unknown BIOS string key '%s'", u, kv->key);
        if (strlen(kv->value) > VMM_SMBIOS_VALUE_MAX)
            return vmm_error(err, -EINVAL, "VM %s: BIOS string %s longer than %d characters",
                             u, kv->key, VMM_SMBIOS_VALUE_MAX);
        for (const char *p = kv->value; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return vmm_error(err, -EINVAL, "VM %s: BIOS string %s has control characters",
                                 u, kv->key);
    }
    return 0;
}

/* ---- JSON ---------------------------------------------------------------- */

static void js_add_str(struct json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

static void js_add_int(struct json_object *o, const char *k, int64_t v)
{
    json_object_object_add(o, k, json_object_new_int64(v));
}

static void js_add_bool(struct json_object *o, const char *k, bool v)
{
    json_object_object_add(o, k, json_object_new_boolean(v));
}

static void js_add_strv(struct json_object *o, const char *k, char *const *v)
{
    if (!v)
        return;
    struct json_object *a = json_object_new_array();
    for (; *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    json_object_object_add(o, k, a);
}

struct json_object *vmm_config_to_json(const VmmConfig *cfg)
{
    struct json_object *o = json_object_new_object();
    js_add_str(o, "uuid", cfg->uuid);
    js_add_str(o, "name", cfg->name);
    js_add_str(o, "accel", vmm_accel_to_string(cfg->accel));
    js_add_str(o, "machine", vmm_machine_to_string(cfg->machine));
    js_add_str(o, "cpu_model", cfg->cpu_model);
    js_add_int(o, "tcg_tb_size_mib", cfg->tcg_tb_size_mib);
    js_add_int(o, "vcpus", cfg->vcpus);
    js_add_int(o, "vcpus_max", cfg->vcpus_max);
    js_add_int(o, "memory_mib", (int64_t)cfg->memory_mib);
    js_add_int(o, "memory_target_mib", (int64_t)cfg->memory_target_mib);
    js_add_str(o, "firmware", vmm_firmware_to_string(cfg->firmware));
    js_add_str(o, "nvram_path", cfg->nvram_path);
    js_add_str(o, "boot_order", cfg->boot_order);
    js_add_str(o, "kernel", cfg->kernel);
    js_add_str(o, "initrd", cfg->initrd);
    js_add_str(o, "cmdline", cfg->cmdline);
    struct json_object *disks = json_object_new_array();
    for (size_t i = 0; i < cfg->n_disks; i++) {
        const VmmDisk *d = &cfg->disks[i];
        struct json_object *j = json_object_new_object();
        js_add_int(j, "position", d->position);
        js_add_str(j, "type", vmm_disk_type_to_string(d->type));
        js_add_str(j, "bus", vmm_bus_to_string(d->bus));
        js_add_str(j, "path", d->path);
        js_add_str(j, "format", vmm_disk_format_to_string(d->format));
        js_add_bool(j, "read_only", d->read_only);
        js_add_int(j, "bootindex", d->bootindex);
        js_add_str(j, "serial", d->serial);
        json_object_array_add(disks, j);
    }
    json_object_object_add(o, "disks", disks);
    struct json_object *nics = json_object_new_array();
    for (size_t i = 0; i < cfg->n_nics; i++) {
        const VmmNic *n = &cfg->nics[i];
        struct json_object *j = json_object_new_object();
        js_add_int(j, "position", n->position);
        js_add_str(j, "mac", n->mac);
        js_add_str(j, "model", vmm_nic_model_to_string(n->model));
        js_add_str(j, "backend", vmm_net_backend_to_string(n->backend));
        js_add_str(j, "ifname", n->ifname);
        js_add_str(j, "user_reason", n->user_reason);
        js_add_strv(j, "hostfwd", n->hostfwd);
        js_add_int(j, "bootindex", n->bootindex);
        json_object_array_add(nics, j);
    }
    json_object_object_add(o, "nics", nics);
    js_add_bool(o, "serial_socket", cfg->serial_socket);
    js_add_str(o, "vnc", vmm_vnc_mode_to_string(cfg->vnc));
    js_add_int(o, "vnc_display", cfg->vnc_display);
    js_add_bool(o, "qga", cfg->qga);
    js_add_bool(o, "pvpanic", cfg->pvpanic);
    js_add_bool(o, "balloon", cfg->balloon);
    js_add_bool(o, "acpi", cfg->acpi);
    js_add_bool(o, "usb_tablet", cfg->usb_tablet);
    js_add_str(o, "vga", cfg->vga);
    struct json_object *sm = json_object_new_object();
    for (size_t i = 0; i < cfg->n_smbios; i++)
        js_add_str(sm, cfg->smbios[i].key, cfg->smbios[i].value);
    json_object_object_add(o, "smbios", sm);
    js_add_int(o, "rtc_offset_s", cfg->rtc_offset_s);
    js_add_bool(o, "start_paused", cfg->start_paused);
    js_add_bool(o, "reboot_is_shutdown", cfg->reboot_is_shutdown);
    js_add_bool(o, "keep_on_shutdown", cfg->keep_on_shutdown);
    js_add_str(o, "incoming", vmm_incoming_to_string(cfg->incoming));
    js_add_str(o, "incoming_path", cfg->incoming_path);
    js_add_str(o, "incoming_uri", cfg->incoming_uri);
    js_add_int(o, "boot_timeout_s", cfg->boot_timeout_s);
    js_add_str(o, "boot_marker", cfg->boot_marker);
    js_add_strv(o, "extra_args", cfg->extra_args);
    return o;
}

typedef struct JsReader {
    struct json_object *obj;
    const char *where;
    char **err;
    int rc;
} JsReader;

static struct json_object *js_member(JsReader *r, const char *k, json_type t)
{
    struct json_object *v;
    if (r->rc < 0 || !json_object_object_get_ex(r->obj, k, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    if (!json_object_is_type(v, t)) {
        r->rc = vmm_error(r->err, -EINVAL, "%s: member %s has the wrong type", r->where, k);
        return NULL;
    }
    return v;
}

static char *js_str(JsReader *r, const char *k)
{
    struct json_object *v = js_member(r, k, json_type_string);
    return v ? xstrdup(json_object_get_string(v)) : NULL;
}

static int64_t js_int(JsReader *r, const char *k, int64_t def, int64_t min, int64_t max)
{
    struct json_object *v = js_member(r, k, json_type_int);
    if (!v)
        return def;
    int64_t x = json_object_get_int64(v);
    if (x < min || x > max) {
        r->rc = vmm_error(r->err, -EINVAL, "%s: member %s out of range", r->where, k);
        return def;
    }
    return x;
}

static bool js_bool(JsReader *r, const char *k, bool def)
{
    struct json_object *v = js_member(r, k, json_type_boolean);
    return v ? json_object_get_boolean(v) : def;
}

static int js_enum(JsReader *r, const char *k, int def, int (*parse)(const char *))
{
    struct json_object *v = js_member(r, k, json_type_string);
    if (!v)
        return def;
    int x = parse(json_object_get_string(v));
    if (x < 0) {
        r->rc = vmm_error(r->err, -EINVAL, "%s: member %s has an unknown value '%s'", r->where,
                          k, json_object_get_string(v));
        return def;
    }
    return x;
}

static char **js_strv(JsReader *r, const char *k)
{
    struct json_object *a = js_member(r, k, json_type_array);
    if (!a)
        return NULL;
    size_t n = json_object_array_length(a);
    if (n > 4096) {
        r->rc = vmm_error(r->err, -EINVAL, "%s: member %s is too long", r->where, k);
        return NULL;
    }
    char **v = xnew0(char *, n + 1);
    size_t k2 = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(a, i);
        if (json_object_is_type(e, json_type_string))
            v[k2++] = xstrdup(json_object_get_string(e));
    }
    return v;
}

int vmm_config_from_json(struct json_object *obj, VmmConfig *cfg, char **err)
{
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        memset(cfg, 0, sizeof(*cfg));
        return vmm_error(err, -EINVAL, "VM configuration: not a JSON object");
    }
    vmm_config_init(cfg);
    JsReader r = {.obj = obj, .where = "VM configuration", .err = err};
    _cleanup_free_ char *uuid = js_str(&r, "uuid");
    snprintf(cfg->uuid, sizeof(cfg->uuid), "%s", uuid ? uuid : "");
    cfg->name = js_str(&r, "name");
    cfg->accel = (VmmAccel)js_enum(&r, "accel", VMM_ACCEL_TCG, vmm_accel_from_string);
    cfg->machine = (VmmMachine)js_enum(&r, "machine", VMM_MACHINE_PC, vmm_machine_from_string);
    cfg->cpu_model = js_str(&r, "cpu_model");
    cfg->tcg_tb_size_mib = (unsigned)js_int(&r, "tcg_tb_size_mib", 0, 0, 1 << 20);
    cfg->vcpus = (unsigned)js_int(&r, "vcpus", 1, 0, 1 << 20);
    cfg->vcpus_max = (unsigned)js_int(&r, "vcpus_max", cfg->vcpus, 0, 1 << 20);
    cfg->memory_mib = (uint64_t)js_int(&r, "memory_mib", 256, 0, INT64_MAX);
    cfg->memory_target_mib = (uint64_t)js_int(&r, "memory_target_mib", 0, 0, INT64_MAX);
    cfg->firmware = (VmmFirmware)js_enum(&r, "firmware", VMM_FIRMWARE_BIOS,
                                         vmm_firmware_from_string);
    cfg->nvram_path = js_str(&r, "nvram_path");
    free(cfg->boot_order);
    cfg->boot_order = js_str(&r, "boot_order");
    cfg->kernel = js_str(&r, "kernel");
    cfg->initrd = js_str(&r, "initrd");
    cfg->cmdline = js_str(&r, "cmdline");

    struct json_object *disks = js_member(&r, "disks", json_type_array);
    for (size_t i = 0; disks && r.rc == 0 && i < json_object_array_length(disks); i++) {
        if (i >= VMM_MAX_DISKS) {
            r.rc = vmm_error(err, -EINVAL, "VM configuration: too many disks");
            break;
        }
        JsReader d = {.obj = json_object_array_get_idx(disks, i), .where = "disk", .err = err};
        if (!json_object_is_type(d.obj, json_type_object)) {
            r.rc = vmm_error(err, -EINVAL, "VM configuration: a disk is not an object");
            break;
        }
        VmmDisk *disk = vmm_config_add_disk(cfg, 0, VMM_DISK_TYPE_DISK, VMM_BUS_VIRTIO, NULL,
                                            VMM_DISK_FORMAT_RAW);
        disk->position = (unsigned)js_int(&d, "position", 0, 0, 1 << 20);
        disk->type = (VmmDiskType)js_enum(&d, "type", 0, vmm_disk_type_from_string);
        disk->bus = (VmmBus)js_enum(&d, "bus", 0, vmm_bus_from_string);
        disk->path = js_str(&d, "path");
        disk->format = (VmmDiskFormat)js_enum(&d, "format", 0, vmm_disk_format_from_string);
        disk->read_only = js_bool(&d, "read_only", false);
        disk->bootindex = (int)js_int(&d, "bootindex", -1, -1, 1000);
        disk->serial = js_str(&d, "serial");
        r.rc = d.rc;
    }
    struct json_object *nics = js_member(&r, "nics", json_type_array);
    for (size_t i = 0; nics && r.rc == 0 && i < json_object_array_length(nics); i++) {
        if (i >= VMM_MAX_NICS) {
            r.rc = vmm_error(err, -EINVAL, "VM configuration: too many NICs");
            break;
        }
        JsReader d = {.obj = json_object_array_get_idx(nics, i), .where = "NIC", .err = err};
        if (!json_object_is_type(d.obj, json_type_object)) {
            r.rc = vmm_error(err, -EINVAL, "VM configuration: a NIC is not an object");
            break;
        }
        _cleanup_free_ char *mac = js_str(&d, "mac");
        VmmNic *n = vmm_config_add_nic(cfg, 0, mac, VMM_NIC_MODEL_VIRTIO);
        n->position = (unsigned)js_int(&d, "position", 0, 0, 1 << 20);
        n->model = (VmmNicModel)js_enum(&d, "model", 0, vmm_nic_model_from_string);
        n->backend = (VmmNetBackend)js_enum(&d, "backend", 0, vmm_net_backend_from_string);
        n->ifname = js_str(&d, "ifname");
        n->user_reason = js_str(&d, "user_reason");
        n->hostfwd = js_strv(&d, "hostfwd");
        n->bootindex = (int)js_int(&d, "bootindex", -1, -1, 1000);
        r.rc = d.rc;
    }
    cfg->serial_socket = js_bool(&r, "serial_socket", false);
    cfg->vnc = (VmmVncMode)js_enum(&r, "vnc", VMM_VNC_NONE, vmm_vnc_mode_from_string);
    cfg->vnc_display = (int)js_int(&r, "vnc_display", -1, -1, 99);
    cfg->qga = js_bool(&r, "qga", true);
    cfg->pvpanic = js_bool(&r, "pvpanic", true);
    cfg->balloon = js_bool(&r, "balloon", true);
    cfg->acpi = js_bool(&r, "acpi", true);
    cfg->usb_tablet = js_bool(&r, "usb_tablet", false);
    cfg->vga = js_str(&r, "vga");
    struct json_object *sm = js_member(&r, "smbios", json_type_object);
    if (sm) {
        json_object_object_foreach(sm, key, val)
        {
            if (cfg->n_smbios >= VMM_MAX_SMBIOS || !json_object_is_type(val, json_type_string))
                continue;
            vmm_config_add_smbios(cfg, key, json_object_get_string(val));
        }
    }
    cfg->rtc_offset_s = js_int(&r, "rtc_offset_s", 0, INT64_MIN, INT64_MAX);
    cfg->start_paused = js_bool(&r, "start_paused", false);
    cfg->reboot_is_shutdown = js_bool(&r, "reboot_is_shutdown", false);
    cfg->keep_on_shutdown = js_bool(&r, "keep_on_shutdown", false);
    cfg->incoming = (VmmIncomingKind)js_enum(&r, "incoming", VMM_INCOMING_NONE,
                                             vmm_incoming_from_string);
    cfg->incoming_path = js_str(&r, "incoming_path");
    cfg->incoming_uri = js_str(&r, "incoming_uri");
    cfg->boot_timeout_s = (unsigned)js_int(&r, "boot_timeout_s", 0, 0, 1 << 30);
    cfg->boot_marker = js_str(&r, "boot_marker");
    cfg->extra_args = js_strv(&r, "extra_args");
    if (r.rc == 0)
        r.rc = vmm_config_validate(cfg, err);
    if (r.rc < 0)
        vmm_config_release(cfg);
    return r.rc;
}
