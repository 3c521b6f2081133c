/*
 * The virtual machine monitor interface: runs one VM as one QEMU process
 * driven over QMP (or, for fast tests, as a simulated state machine with the
 * same interface). The caller describes a VM with a plain VmmConfig built
 * from its own records; this layer knows nothing of XenAPI, the database or
 * HTTP, and the caller knows nothing of QEMU.
 *
 * Errors: every fallible function returns 0 (or a count >= 0) on success and
 * -errno on failure. When `err` is not NULL it then receives a malloc'd
 * message that names the object and the cause (free() it); on success *err is
 * left untouched. Common codes: -ENOENT (a file the VM needs is missing),
 * -EEXIST (already running), -ESRCH (QEMU is gone), -ETIMEDOUT (QEMU did not
 * answer in time), -ENODEV (no such device), -ENOTSUP (not possible with this
 * configuration), -EBUSY (a conflicting operation or device state), -EIO
 * (QEMU refused; the message carries its reason).
 *
 * Threading: all functions are thread-safe and may be called from any thread,
 * including from inside an event callback (for any VM, including the one the
 * event is about). Each handle owns two threads: a monitor reader and a
 * watcher that delivers events, in order, to the callback given at start or
 * attach. See docs/vmm.md.
 *
 * Process model: QEMU is started in its own session, not as a child of the
 * caller, with stdout/stderr going to a log file, so it survives a restart or
 * SIGKILL of the daemon; vmm_attach() takes it back. Everything a running VM
 * needs lives in its own directory <run_dir>/<uuid>/ (see vmm_path()).
 */
#ifndef HX_VMM_VMM_H
#define HX_VMM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

/* ---- limits ------------------------------------------------------------ */

#define VMM_UUID_LEN 36
#define VMM_MAX_DISKS 16     /* positions 0..15 (XenServer userdevice) */
#define VMM_MAX_NICS 7       /* positions 0..6 (VIF device) */
#define VMM_MAX_VCPUS 64
#define VMM_MAX_SMBIOS 32
#define VMM_SMBIOS_VALUE_MAX 512

/* ---- enums ------------------------------------------------------------- */

typedef enum {
    VMM_BACKEND_QEMU, /* the real thing (default) */
    VMM_BACKEND_SIM,  /* in-process state machine, no QEMU */
    VMM_BACKEND__MAX,
} VmmBackend;

typedef enum {
    VMM_ACCEL_TCG,
    VMM_ACCEL_KVM,
    VMM_ACCEL__MAX,
} VmmAccel;

typedef enum {
    VMM_MACHINE_PC,  /* i440FX + PIIX: IDE, ACPI PCI hotplug */
    VMM_MACHINE_Q35, /* Q35: AHCI for "ide", hotplug through PCIe root ports */
    VMM_MACHINE__MAX,
} VmmMachine;

typedef enum {
    VMM_FIRMWARE_BIOS, /* SeaBIOS */
    VMM_FIRMWARE_UEFI, /* OVMF with a per-VM NVRAM (vars) file */
    VMM_FIRMWARE__MAX,
} VmmFirmware;

typedef enum {
    VMM_DISK_FORMAT_RAW,
    VMM_DISK_FORMAT_QCOW2,
    VMM_DISK_FORMAT__MAX,
} VmmDiskFormat;

typedef enum {
    VMM_BUS_VIRTIO,
    VMM_BUS_IDE,
    VMM_BUS_SCSI, /* virtio-scsi */
    VMM_BUS__MAX,
} VmmBus;

typedef enum {
    VMM_DISK_TYPE_DISK,
    VMM_DISK_TYPE_CDROM,
    VMM_DISK_TYPE__MAX,
} VmmDiskType;

typedef enum {
    VMM_NIC_MODEL_VIRTIO,
    VMM_NIC_MODEL_E1000,
    VMM_NIC_MODEL_RTL8139,
    VMM_NIC_MODEL__MAX,
} VmmNicModel;

typedef enum {
    VMM_NET_TAP,  /* an existing (or QEMU-created) tap; script=no, never vhost */
    VMM_NET_USER, /* QEMU user-mode networking (slirp) */
    VMM_NET__MAX,
} VmmNetBackend;

typedef enum {
    VMM_VNC_NONE,
    VMM_VNC_UNIX, /* <vm dir>/vnc.sock */
    VMM_VNC_TCP,  /* 127.0.0.1 only, port 5900 + display */
    VMM_VNC__MAX,
} VmmVncMode;

typedef enum {
    VMM_INCOMING_NONE,
    VMM_INCOMING_FILE, /* resume from a vmm_suspend() image */
    VMM_INCOMING_URI,  /* live migration target: "tcp:HOST:PORT" or "unix:PATH" */
    VMM_INCOMING__MAX,
} VmmIncomingKind;

/* QEMU's run states (query-status), plus UNKNOWN and, for a gone process, DEAD. */
typedef enum {
    VMM_RUN_STATE_UNKNOWN,
    VMM_RUN_STATE_DEBUG,
    VMM_RUN_STATE_FINISH_MIGRATE,
    VMM_RUN_STATE_GUEST_PANICKED,
    VMM_RUN_STATE_INMIGRATE,
    VMM_RUN_STATE_INTERNAL_ERROR,
    VMM_RUN_STATE_IO_ERROR,
    VMM_RUN_STATE_PAUSED,
    VMM_RUN_STATE_POSTMIGRATE,
    VMM_RUN_STATE_PRELAUNCH,
    VMM_RUN_STATE_RESTORE_VM,
    VMM_RUN_STATE_RUNNING,
    VMM_RUN_STATE_SAVE_VM,
    VMM_RUN_STATE_SHUTDOWN,
    VMM_RUN_STATE_SUSPENDED,
    VMM_RUN_STATE_WATCHDOG,
    VMM_RUN_STATE_COLO,
    VMM_RUN_STATE_DEAD,
    VMM_RUN_STATE__MAX,
} VmmRunState;

/* ---- configuration ----------------------------------------------------- */

/*
 * One disk or CD drive. `position` (XenServer's userdevice) names the device:
 * QEMU device id "disk<position>", block nodes "disk<position>-...". It also
 * places IDE devices: position N is IDE bus N/2 unit N%2 (positions 0..3).
 */
typedef struct VmmDisk {
    unsigned position;
    VmmDiskType type;
    VmmBus bus;
    char *path;           /* image file; NULL for an empty CD drive */
    VmmDiskFormat format; /* ignored for CDs (always raw) */
    bool read_only;       /* CDs are always read-only */
    int bootindex;        /* -1: derived from VmmConfig.boot_order */
    char *serial;         /* optional, up to 20 characters */
} VmmDisk;

typedef struct VmmNic {
    unsigned position; /* device id "nic<position>", netdev "net<position>" */
    char mac[18];      /* "52:54:00:12:34:56" */
    VmmNicModel model;
    VmmNetBackend backend;
    char *ifname;      /* VMM_NET_TAP: tap interface name (made by QEMU if absent) */
    char *user_reason; /* VMM_NET_USER: why user-mode networking is used (logged) */
    char **hostfwd;    /* VMM_NET_USER: NULL-terminated "tcp:127.0.0.1:8080-:80" rules */
    int bootindex;     /* -1: derived from VmmConfig.boot_order */
} VmmNic;

typedef struct VmmKeyValue {
    char *key;
    char *value;
} VmmKeyValue;

typedef struct VmmConfig {
    char uuid[VMM_UUID_LEN + 1]; /* lower-case canonical form */
    char *name;                  /* shown in the process name and the log */

    VmmAccel accel;
    VmmMachine machine;
    char *cpu_model;           /* NULL: "qemu64" under TCG, "host" under KVM */
    unsigned tcg_tb_size_mib;  /* 0: QEMU's default translation cache size */
    unsigned vcpus;            /* at startup, >= 1 */
    unsigned vcpus_max;        /* >= vcpus; the rest can be hot-plugged */
    uint64_t memory_mib;       /* static max: what the guest sees */
    uint64_t memory_target_mib; /* balloon target at start; 0 = memory_mib */

    VmmFirmware firmware;
    char *nvram_path; /* UEFI: per-VM vars file, created from OVMF's template if missing */
    char *boot_order; /* XenServer HVM-boot-params:order: 'c' disk, 'd' CD, 'n' network */
    char *kernel;     /* direct kernel boot when set */
    char *initrd;
    char *cmdline;

    VmmDisk *disks;
    size_t n_disks;
    VmmNic *nics;
    size_t n_nics;

    bool serial_socket; /* besides console.log, offer the console on console.sock */
    VmmVncMode vnc;
    int vnc_display;    /* VMM_VNC_TCP: display number, -1 = first free in 0..99 */
    bool qga;           /* virtio-serial port org.qemu.guest_agent.0 on qga.sock */
    bool pvpanic;       /* pvpanic-pci: a guest panic becomes GUEST_PANICKED */
    bool balloon;       /* virtio-balloon-pci */
    bool acpi;          /* default true; needed for vmm_powerdown() */
    bool usb_tablet;    /* USB controller + tablet (absolute pointer for VNC) */
    char *vga;          /* "std" (default when VNC is on), "cirrus", "none" */

    VmmKeyValue *smbios; /* XenServer bios_strings keys: bios-vendor, system-*, ... */
    size_t n_smbios;
    int64_t rtc_offset_s; /* platform:timeoffset, seconds from UTC */

    bool start_paused;
    bool reboot_is_shutdown; /* guest reboot stops the VM (SHUTDOWN reason guest-reset) */
    bool keep_on_shutdown;   /* QEMU stays (state "shutdown") after the guest powers off */
    VmmIncomingKind incoming;
    char *incoming_path; /* VMM_INCOMING_FILE: image written by vmm_suspend() */
    char *incoming_uri;  /* VMM_INCOMING_URI */

    unsigned boot_timeout_s; /* 0: off. Else STUCK if the guest OS shows no sign of life */
    char *boot_marker;       /* sign of life: this text on the console (optional) */

    char **extra_args; /* NULL-terminated raw QEMU arguments appended last (tests) */
} VmmConfig;

/* Zeroes cfg and sets the defaults: TCG, pc, 1 vCPU, 256 MiB, BIOS, order "cd", ACPI on,
 * balloon, pvpanic and the guest-agent channel on, VNC off, vnc_display -1. */
void vmm_config_init(VmmConfig *cfg);
/* Frees everything cfg owns and zeroes it (call vmm_config_init() to reuse it). */
void vmm_config_release(VmmConfig *cfg);
/* Deep copy of src into dst (dst is overwritten, not released). */
void vmm_config_copy(VmmConfig *dst, const VmmConfig *src);
/* Appends a zeroed disk (bootindex -1) / NIC (bootindex -1) / SMBIOS pair; the returned
 * pointer is valid until the next append. The strings are copied. */
VmmDisk *vmm_config_add_disk(VmmConfig *cfg, unsigned position, VmmDiskType type, VmmBus bus,
                             const char *path, VmmDiskFormat format);
VmmNic *vmm_config_add_nic(VmmConfig *cfg, unsigned position, const char *mac, VmmNicModel model);
void vmm_config_add_smbios(VmmConfig *cfg, const char *key, const char *value);
void vmm_disk_release(VmmDisk *disk);
void vmm_disk_copy(VmmDisk *dst, const VmmDisk *src);
void vmm_nic_release(VmmNic *nic);
void vmm_nic_copy(VmmNic *dst, const VmmNic *src);
/* Checks a configuration without touching the system (files are checked at start):
 * ranges, duplicate positions, bus/type combinations, MACs, SMBIOS keys. */
int vmm_config_validate(const VmmConfig *cfg, char **err);
/* JSON form of a configuration (as stored in <vm dir>/config.json). */
struct json_object *vmm_config_to_json(const VmmConfig *cfg);
/* Fills cfg (overwritten, not released) from JSON and validates it; on failure cfg is left
 * zeroed. */
int vmm_config_from_json(struct json_object *obj, VmmConfig *cfg, char **err);

/* Names of the enum values as used in JSON and logs; parsers return -1 if unknown. */
const char *vmm_accel_to_string(VmmAccel v);
int vmm_accel_from_string(const char *s);
const char *vmm_machine_to_string(VmmMachine v);
int vmm_machine_from_string(const char *s);
const char *vmm_firmware_to_string(VmmFirmware v);
int vmm_firmware_from_string(const char *s);
const char *vmm_disk_format_to_string(VmmDiskFormat v);
int vmm_disk_format_from_string(const char *s);
const char *vmm_bus_to_string(VmmBus v);
int vmm_bus_from_string(const char *s);
const char *vmm_disk_type_to_string(VmmDiskType v);
int vmm_disk_type_from_string(const char *s);
const char *vmm_nic_model_to_string(VmmNicModel v);
int vmm_nic_model_from_string(const char *s);
const char *vmm_net_backend_to_string(VmmNetBackend v);
int vmm_net_backend_from_string(const char *s);
const char *vmm_vnc_mode_to_string(VmmVncMode v);
int vmm_vnc_mode_from_string(const char *s);
const char *vmm_incoming_to_string(VmmIncomingKind v);
int vmm_incoming_from_string(const char *s);
/* QEMU's spelling: "running", "internal-error", ... ("dead" for VMM_RUN_STATE_DEAD). */
const char *vmm_run_state_to_string(VmmRunState v);
int vmm_run_state_from_string(const char *s);
const char *vmm_backend_to_string(VmmBackend v);
int vmm_backend_from_string(const char *s);

/* ---- process-wide settings --------------------------------------------- */

/* Selects the backend used by later vmm_start/attach/list calls (default QEMU;
 * the environment variable HX_VMM_BACKEND=sim|qemu sets the initial value). */
void vmm_set_backend(VmmBackend backend);
VmmBackend vmm_get_backend(void);
/* The QEMU binary (default "qemu-system-x86_64" from PATH, or $HX_QEMU). */
void vmm_set_qemu_binary(const char *path);
const char *vmm_get_qemu_binary(void);
/* How long vmm_start() waits for QEMU's QMP greeting (default 30000 ms). */
void vmm_set_start_timeout(unsigned ms);
unsigned vmm_get_start_timeout(void);

/*
 * `--accel auto`: KVM only when /dev/kvm opens read-write AND /proc/cpuinfo
 * lists vmx or svm; TCG otherwise (a PVM-backed /dev/kvm without hardware
 * virtualisation cannot boot ordinary guests). *why (optional, malloc'd)
 * explains the choice for the log.
 */
VmmAccel vmm_accel_detect(char **why);

/* ---- events ------------------------------------------------------------ */

typedef enum {
    VMM_EVENT_SHUTDOWN,       /* guest, reason ("guest-shutdown", "host-qmp-quit", ...) */
    VMM_EVENT_RESET,          /* guest, reason */
    VMM_EVENT_STOP,
    VMM_EVENT_RESUME,
    VMM_EVENT_POWERDOWN,      /* ACPI power button pressed (vmm_powerdown) */
    VMM_EVENT_GUEST_PANICKED, /* reason = action ("pause", "poweroff", "run") */
    VMM_EVENT_RTC_CHANGE,     /* offset: guest RTC minus the RTC base given at start, s */
    VMM_EVENT_DEVICE_DELETED, /* device = QEMU device id ("disk2", "nic1", "cpu3") */
    VMM_EVENT_BLOCK_JOB_COMPLETED, /* device = job id, offset/len, error if failed */
    VMM_EVENT_BLOCK_JOB_CANCELLED,
    VMM_EVENT_BLOCK_JOB_ERROR,
    VMM_EVENT_BLOCK_JOB_READY, /* an active commit may now be completed */
    VMM_EVENT_MIGRATION,       /* status ("setup", "active", "completed", "failed", ...) */
    VMM_EVENT_BALLOON_CHANGE,  /* offset = actual guest memory, bytes */
    VMM_EVENT_DUMP_COMPLETED,  /* error if failed */
    VMM_EVENT_BOOTED,          /* the guest OS showed its first sign of life */
    VMM_EVENT_STUCK,           /* status = run state, reason = explanation (internal error,
                                * boot timeout, monitor lost). Reported once per episode. */
    VMM_EVENT_EXITED,          /* the QEMU process is gone; exit_code/exit_signal if known,
                                * reason = description and the tail of its stderr */
    VMM_EVENT__MAX,
} VmmEventType;

typedef struct VmmEvent {
    VmmEventType type;
    const char *name;  /* QMP event name, or "BOOTED", "STUCK", "EXITED" */
    int64_t time_us;   /* wall clock, microseconds since the epoch */
    bool guest;        /* SHUTDOWN, RESET: initiated by the guest */
    const char *reason;
    const char *device;
    const char *status;
    const char *error;
    int64_t offset;
    int64_t len;
    int exit_code;   /* EXITED: exit status, or -1 */
    int exit_signal; /* EXITED: killing signal, or 0 */
    struct json_object *data; /* raw QMP "data", borrowed for the callback's duration */
} VmmEvent;

typedef struct Vmm Vmm;

/*
 * Called on the VM's watcher thread, in order of arrival. May call any vmm_*
 * function (even vmm_close() on `vm`, which then takes effect when the
 * callback returns). A slow callback delays only this VM's later events.
 */
typedef void (*VmmEventFn)(Vmm *vm, const VmmEvent *ev, void *opaque);

const char *vmm_event_type_to_string(VmmEventType t);

/* Progress of a long operation: done out of total units (bytes); total 0 = unknown. */
typedef void (*VmmProgressFn)(uint64_t done, uint64_t total, void *opaque);

/* ---- lifecycle --------------------------------------------------------- */

/*
 * Starts the VM described by cfg with its files under <run_dir>/<uuid>/.
 * Returns once QEMU runs and QMP is negotiated (and, for VMM_INCOMING_FILE,
 * once the image is loaded); the guest then runs, or stays paused when
 * cfg->start_paused. cb (may be NULL) receives the VM's events from now on.
 * On failure nothing is left running and *err says why (a missing kernel
 * file, QEMU's own complaint from its stderr, a QMP timeout...).
 */
int vmm_start(const char *run_dir, const VmmConfig *cfg, VmmEventFn cb, void *opaque, Vmm **out,
              char **err);
/*
 * Takes back a VM started earlier (by this or a previous daemon process):
 * checks the pidfile, that /proc/PID/cmdline is QEMU for this uuid, and
 * reconnects to QMP. The configuration is read back from config.json.
 * -ESRCH if it is not running (its files are then cleaned up).
 */
int vmm_attach(const char *run_dir, const char *uuid, VmmEventFn cb, void *opaque, Vmm **out,
               char **err);
/* UUIDs of the VMs running under run_dir (NULL-terminated, free with vmm_strv_free). */
int vmm_list_running(const char *run_dir, char ***uuids, char **err);
void vmm_strv_free(char **v);

/* Stops watching and frees the handle; the VM keeps running (attach again to resume). */
void vmm_close(Vmm *vm);

const char *vmm_uuid(const Vmm *vm);
VmmBackend vmm_backend(const Vmm *vm);
pid_t vmm_pid(const Vmm *vm); /* 0 for the simulated backend */
/* The configuration as currently applied (hot-plugs included); copied into *cfg. */
void vmm_get_config(Vmm *vm, VmmConfig *cfg);

/* Files of a VM under run_dir; `what` is one of "qmp.sock", "qga.sock", "vnc.sock",
 * "console.sock", "console.log", "qemu.log", "qemu.pid", "config.json"; NULL: the dir. */
char *vmm_path(const char *run_dir, const char *uuid, const char *what);
/* The last (up to) max_bytes the guest wrote on its serial console, running or not.
 * Returns the byte count, stores a NUL-terminated malloc'd buffer in *out. */
ssize_t vmm_console_read(const char *run_dir, const char *uuid, size_t max_bytes, char **out,
                         char **err);
/* How to reach VNC: "unix:/path/vnc.sock" or "127.0.0.1:5901" (malloc'd); -ENOENT if off. */
int vmm_vnc_address(Vmm *vm, char **addr, char **err);
/* Removes <run_dir>/<uuid> and everything in it; -EBUSY if the VM is running. */
int vmm_cleanup(const char *run_dir, const char *uuid, char **err);

/* ---- power ------------------------------------------------------------- */

int vmm_powerdown(Vmm *vm, char **err); /* ACPI power button; the guest decides */
int vmm_reset(Vmm *vm, char **err);     /* hard reset */
int vmm_pause(Vmm *vm, char **err);
int vmm_unpause(Vmm *vm, char **err);
/* Hard stop: QMP quit, then SIGTERM, then SIGKILL, each given part of timeout_ms
 * (0 = 10 s); then removes sockets and pidfile. The EXITED event follows. */
int vmm_destroy(Vmm *vm, unsigned timeout_ms, char **err);
/* Waits until the QEMU process is gone (0) or timeout_ms passes (-ETIMEDOUT). */
int vmm_wait_exit(Vmm *vm, unsigned timeout_ms, int *exit_code, int *exit_signal);
int vmm_query_status(Vmm *vm, VmmRunState *state, char **err);
/* Last state seen by the watcher (no QMP round trip). */
VmmRunState vmm_last_state(Vmm *vm);

/* ---- state save, migration, dumps ------------------------------------- */

/*
 * Suspend: pauses the guest, writes its whole state to `path` (a migration
 * stream) and stops QEMU. Resume with a VmmConfig equal to the one that
 * started the VM plus incoming = VMM_INCOMING_FILE, incoming_path = path.
 * On failure the guest is left running as before.
 */
int vmm_suspend(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque, char **err);

/*
 * Checkpoint: writes the whole state of a VM stopped by vmm_pause() to
 * `path` (the image vmm_suspend() writes, resumed the same way) and keeps
 * QEMU. The guest stays paused; vmm_unpause() runs it on and gives it its
 * disks back (nothing else may touch the disks in between). -EBUSY unless
 * the VM is paused. On failure the image is removed.
 */
int vmm_save_state(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque, char **err);

typedef struct VmmMigrateOptions {
    uint64_t max_bandwidth; /* bytes/s, 0 = QEMU's default (128 MiB/s) */
    unsigned downtime_ms;   /* 0 = QEMU's default (300 ms) */
    unsigned timeout_ms;    /* 0 = none */
} VmmMigrateOptions;

/* Live migration to a target started with VMM_INCOMING_URI. On success the source
 * is left in state postmigrate (destroy it). */
int vmm_migrate(Vmm *vm, const char *uri, const VmmMigrateOptions *opts, VmmProgressFn progress,
                void *opaque, char **err);
/* On a VMM_INCOMING_URI target: waits until the incoming migration finished (0) or failed. */
int vmm_wait_incoming(Vmm *vm, unsigned timeout_ms, char **err);

/* Writes the guest's memory as an ELF core file (the guest pauses meanwhile). */
int vmm_dump_core(Vmm *vm, const char *path, VmmProgressFn progress, void *opaque, char **err);

/* ---- devices ----------------------------------------------------------- */

/* Hot-plugs a disk (virtio or scsi; IDE cannot be hot-plugged: -ENOTSUP). */
int vmm_disk_attach(Vmm *vm, const VmmDisk *disk, char **err);
/* Asks the guest to release the disk and waits for QEMU to confirm
 * (DEVICE_DELETED) up to timeout_ms (0 = 10 s): -ETIMEDOUT if the guest ignores it. */
int vmm_disk_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err);
/* Puts an ISO into the CD drive at position (replacing what was there). */
int vmm_cd_insert(Vmm *vm, unsigned position, const char *path, char **err);
int vmm_cd_eject(Vmm *vm, unsigned position, char **err);
int vmm_nic_attach(Vmm *vm, const VmmNic *nic, char **err);
int vmm_nic_detach(Vmm *vm, unsigned position, unsigned timeout_ms, char **err);
/* Hot-plugs or unplugs vCPUs until `count` are present (1..vcpus_max). Unplug waits for
 * the guest up to timeout_ms (0 = 10 s). */
int vmm_set_vcpus(Vmm *vm, unsigned count, unsigned timeout_ms, char **err);
/* Number of vCPUs QEMU currently has. */
int vmm_get_vcpus(Vmm *vm, unsigned *count, char **err);
/* Balloon: asks the guest to give memory back down to target_mib. */
int vmm_set_memory_target(Vmm *vm, uint64_t target_mib, char **err);
int vmm_get_memory_actual(Vmm *vm, uint64_t *bytes, char **err);

typedef struct VmmBlockImage {
    char *filename;
    char *format;    /* "qcow2", "raw", ... */
    char *node_name; /* QEMU's block node */
} VmmBlockImage;

typedef struct VmmBlockInfo {
    char *device;       /* "disk<N>" */
    unsigned position;
    bool removable;     /* a CD drive */
    bool tray_open;
    bool read_only;
    VmmBlockImage *chain; /* chain[0] is the active layer, then its backing files */
    size_t chain_len;     /* 0: no medium */
} VmmBlockInfo;

/* The disks QEMU has, with their backing chains. Free with vmm_block_info_free. */
int vmm_query_disks(Vmm *vm, VmmBlockInfo **info, size_t *n, char **err);
void vmm_block_info_free(VmmBlockInfo *info, size_t n);

/* ---- snapshots and block jobs ----------------------------------------- */

typedef struct VmmSnapshotDisk {
    unsigned position;
    const char *overlay; /* new active layer for this disk */
    bool create;         /* true: QEMU creates the qcow2 overlay (backing = current active
                            file, absolute path); false: the caller made it, with the
                            current active file as backing */
} VmmSnapshotDisk;

/*
 * External snapshot of a running VM: every listed disk switches atomically
 * (one QMP transaction) to its new overlay; the former active files become
 * read-only backing files that can be copied. The guest pauses only for the
 * switch, independent of disk size.
 */
int vmm_snapshot_disks(Vmm *vm, const VmmSnapshotDisk *disks, size_t n, char **err);

typedef enum {
    VMM_JOB_COMMIT,
    VMM_JOB_STREAM,
    VMM_JOB__MAX,
} VmmJobType;

typedef struct VmmJobInfo {
    char *id;
    VmmJobType type;
    char *status; /* "running", "ready", "concluded", ... */
    uint64_t offset, len;
    bool ready;
    char *error;
} VmmJobInfo;

/*
 * Starts a job on disk `position` and names it job_id:
 *  commit: merges `top` (NULL = the active layer) down into `base` (a file name from
 *          the chain; NULL = the next one below top). Committing the active layer
 *          becomes "ready" and needs vmm_job_complete() to pivot onto `base`.
 *  stream: pulls everything above `base` (NULL = whole chain) into the active layer.
 */
int vmm_job_commit(Vmm *vm, unsigned position, const char *top, const char *base,
                   const char *job_id, char **err);
/*
 * The same commit with the layers named by their place in the chain rather than by file
 * name, for callers that rename image files under a running VM (QEMU's file names are
 * then stale): layer top_depth (0 = the active layer) is committed into the layer just
 * below it. backing_file (top_depth > 0 only; NULL = QEMU's idea of the base's name) is
 * the backing file string written into the layer above top when the job ends. -ENODEV
 * when the chain has no such layers. The base must be a layer a snapshot of this VM
 * added (vmm_snapshot_disks): QEMU keeps those open read-write, whereas it reopens the
 * others (the image the VM started with and its backing files) by file name to write
 * into them, which after a rename would be another file: -EBUSY for those.
 */
int vmm_job_commit_layer(Vmm *vm, unsigned position, unsigned top_depth, const char *backing_file,
                         const char *job_id, char **err);
int vmm_job_stream(Vmm *vm, unsigned position, const char *base, const char *job_id, char **err);
/* -ENOENT when no such job exists (it may have finished). */
int vmm_job_query(Vmm *vm, const char *job_id, VmmJobInfo *info, char **err);
void vmm_job_info_release(VmmJobInfo *info);
int vmm_job_complete(Vmm *vm, const char *job_id, char **err);
int vmm_job_cancel(Vmm *vm, const char *job_id, char **err);
/* Waits for the job to end (completing it when it becomes ready, if `complete_ready`),
 * reporting progress; timeout_ms 0 = none. Fails with the job's error if it failed. */
int vmm_job_wait(Vmm *vm, const char *job_id, bool complete_ready, unsigned timeout_ms,
                 VmmProgressFn progress, void *opaque, char **err);

/* ---- escape hatch ------------------------------------------------------ */

/* Runs one QMP command (args borrowed, may be NULL); *ret gets a new reference to the
 * "return" value. timeout_ms 0 = 10 s. -ENOTSUP on the simulated backend. */
int vmm_qmp(Vmm *vm, const char *command, struct json_object *args, unsigned timeout_ms,
            struct json_object **ret, char **err);

/* ---- simulated backend controls (for tests of the layers above) -------- */

/* Makes a simulated VM behave as if the guest did something: "panic", "internal-error",
 * "poweroff", "reboot", "crash" (process death), "rtc <seconds>". -ENOTSUP for QEMU. */
int vmm_sim_inject(Vmm *vm, const char *what, char **err);

#endif
