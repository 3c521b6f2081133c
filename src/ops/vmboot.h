/*
 * From a VM's records to the QEMU it runs as: a VmSpec is everything a boot
 * needs, read from the database in one go (and checked); vmboot_prepare()
 * then does the work outside any lock (disks attached, the installer's
 * kernel fetched, taps plugged) and fills a VmmConfig, recording in a
 * VmBootState what must be undone if the start fails. The boot modes:
 *
 *   HVM  (domain_type hvm, or HVM_boot_policy set): firmware (SeaBIOS, or
 *        OVMF for HVM_boot_params:firmware=uefi) with HVM_boot_params:order;
 *   PV   PV_bootloader "" and PV_kernel set: direct kernel boot with
 *        PV_ramdisk and PV_args;
 *        "eliloader" with other_config:install-repository=<URL>: the
 *        installer's kernel and initrd fetched from the repository
 *        (repo.c) and booted once with PV_args; =cdrom: boot the CD;
 *        "pygrub" (and eliloader after the installation): firmware boot of
 *        the bootable disk, which holds the installed system's own loader.
 *
 * Guests with PV drivers (PV guests and HVM Linux templates) get virtio
 * disks and NICs; the others emulated IDE disks and an e1000 NIC, as
 * XenServer gives HVM guests without tools. platform:hyperxe-disk-bus and
 * platform:hyperxe-nic-model override the choice.
 */
#ifndef HX_OPS_VMBOOT_H
#define HX_OPS_VMBOOT_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/ops.h"
#include "vmm/vmm.h"

typedef struct VmBootDisk {
    char *vbd_ref;
    char *vdi_ref; /* NULL for an empty drive */
    unsigned position;
    bool cd;
    bool rw;
    bool bootable;
} VmBootDisk;

typedef struct VmBootNic {
    char *vif_ref;
    char *network_ref;
    unsigned device;
    char mac[18];
    unsigned mtu;
    char *bridge;
} VmBootNic;

typedef struct VmSpec {
    char *ref;
    char uuid[VMM_UUID_LEN + 1];
    char *name;
    int64_t static_min, static_max, dynamic_min, dynamic_max;
    int64_t vcpus, vcpus_max;
    bool hvm;
    bool pv_drivers; /* virtio devices */
    VmmBus disk_bus;
    VmmNicModel nic_model;
    char *order;    /* HVM_boot_params:order */
    bool uefi;
    char *bootloader, *kernel, *ramdisk, *args;
    char *install_repo;   /* other_config:install-repository, if the installer must run */
    char *install_distro; /* other_config:install-distro */
    char *install_arch;   /* other_config:install-arch */
    char *debian_release; /* other_config:debian-release */
    int64_t timeoffset;
    unsigned boot_timeout_s;
    bool acpi;
    bool usb_tablet;
    char *vga;
    XsValue *bios_strings; /* copy; empty: the generic ones are set at this start */
    VmBootDisk *disks;
    size_t n_disks;
    VmBootNic *nics;
    size_t n_nics;
} VmSpec;

/* What vmboot_prepare() did, for vmboot_undo(). */
typedef struct VmBootState {
    char **vdis; /* attached VDIs */
    size_t n_vdis;
    char **taps; /* taps made */
    size_t n_taps;
    bool install_boot; /* booting an installer fetched from a repository */
    char *boot_dir;    /* where the installer's files are */
} VmBootState;

/* The VM's kind and device models (read lock held). */
bool vmboot_devices_of(const DbObj *vm, bool *hvm, bool *pv_drivers, VmmBus *disk_bus,
                       VmmNicModel *nic_model, XsError **errp);
/* The bus of the device at position: CDs on IDE (SCSI past 3), disks on the
 * VM's bus (virtio past the four IDE places). */
VmmBus vmboot_bus_for(VmmBus disk_bus, unsigned position, bool cd);

/* The generic BIOS strings a VM gets at its first start when it has none. */
XsValue *vmboot_generic_bios_strings(void);

/*
 * Reads and checks everything a start needs (VM_NO_VCPUS, memory order,
 * VM_DUPLICATE_VBD_DEVICE, the template's recommendations unless force,
 * UNKNOWN_BOOTLOADER, ...). Takes the read lock itself.
 */
bool vmboot_gather(OpsCtx *ctx, const char *vm_ref, bool force, VmSpec *spec, XsError **errp);
void vmboot_spec_release(VmSpec *spec);

/*
 * Prepares the boot outside any lock and fills cfg (vmm_config_init()
 * first). On failure everything done is undone.
 */
bool vmboot_prepare(OpsCtx *ctx, const VmSpec *spec, int64_t domid, VmmConfig *cfg,
                    VmBootState *st, XsError **errp);
/* Undoes a prepared boot that did not start (or has stopped): taps removed,
 * disks detached, the installer's files deleted. Frees st's contents. */
void vmboot_undo(OpsCtx *ctx, const char *vm_ref, VmBootState *st);
void vmboot_state_release(VmBootState *st);

/* The tap name of VIF device dev of the VM running as domid. */
void vmboot_tap_name(int64_t domid, unsigned dev, char name[16]);

#endif
