/*
 * The one QEMU command-line builder: turns a VmmConfig into the argv QEMU
 * runs, so that what runs is visible in one place (and logged as a whole).
 * The JSON device and block-node descriptions it uses for disks and NICs are
 * also what hot-plug sends over QMP, so cold- and hot-plugged devices look
 * the same. Pure: no file-system access, no clock (the caller passes "now").
 */
#ifndef HX_VMM_QEMU_ARGV_H
#define HX_VMM_QEMU_ARGV_H

#include <stdint.h>

#include "vmm/vmm.h"

struct json_object;

typedef struct QemuArgvEnv {
    const char *qemu_binary; /* argv[0] */
    const char *vm_dir;      /* <run_dir>/<uuid>: sockets, logs, pidfile */
    int qmp_fd;              /* inherited listening QMP socket; -1: QEMU binds qmp.sock */
    int64_t now;             /* wall clock (s) for the RTC base when rtc_offset_s != 0 */
    const char *ovmf_code;   /* UEFI firmware code (read-only) */
} QemuArgvEnv;

/* Fixed PCI slots on the root bus, so that a suspended or migrated VM finds each device
 * where it was, whatever was hot-plugged. */
enum {
    QEMU_SLOT_VGA = 2,
    QEMU_SLOT_BALLOON = 3,
    QEMU_SLOT_SERIAL = 4,
    QEMU_SLOT_PVPANIC = 5,
    QEMU_SLOT_USB = 6,
    QEMU_SLOT_SCSI = 7,
    QEMU_SLOT_DISK0 = 8,  /* virtio disks: 8 + position (8..23) */
    QEMU_SLOT_NIC0 = 24,  /* NICs: 24 + position (24..30) */
};

/* The NULL-terminated argv (free with vmm_strv_free), or NULL with *err set. Validates
 * cfg first. */
char **qemu_argv_build(const VmmConfig *cfg, const QemuArgvEnv *env, char **err);
/* One line, shell-quoted where needed (for logs and for running it by hand). */
char *qemu_argv_to_string(char *const *argv);

/* Boot indexes derived from cfg->boot_order (or explicit), -1 for not bootable. */
int qemu_argv_disk_bootindex(const VmmConfig *cfg, const VmmDisk *disk);
int qemu_argv_nic_bootindex(const VmmConfig *cfg, const VmmNic *nic);

/* Block nodes for a disk with a medium: the protocol ("file") node and the format node on
 * top of it, as -blockdev / blockdev-add take them. */
struct json_object *qemu_argv_disk_file_node(const VmmDisk *disk);
struct json_object *qemu_argv_disk_format_node(const VmmDisk *disk);
/* The device for a disk, as -device / device_add take it. */
struct json_object *qemu_argv_disk_device(VmmMachine machine, const VmmDisk *disk,
                                          int bootindex);
struct json_object *qemu_argv_nic_netdev(const VmmNic *nic);
struct json_object *qemu_argv_nic_device(const VmmNic *nic, int bootindex);

/* Names used for a disk's device and nodes (static buffers are not used: caller frees). */
char *qemu_argv_disk_id(unsigned position);          /* "disk3" */
char *qemu_argv_disk_node(unsigned position, const char *what); /* "disk3-fmt" */

/* Appends s to sb with QEMU's option escaping (',' doubled). */
struct StrBuf;
void qemu_argv_add_escaped(struct StrBuf *sb, const char *s);

#endif
