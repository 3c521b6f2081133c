/*
 * What a guest agent said, turned into the fields of a VM_guest_metrics
 * record as XenServer fills them (reference/xapi.md §2.3): os_version,
 * PV_drivers_version, networks keyed by the VIF's device number, memory,
 * disks keyed by the VBD's userdevice, other (the feature-* flags),
 * PV_drivers_detected. Pure: JSON in, XsValue maps out, no I/O, no
 * database, no globals; every member of the agent's replies is treated as
 * optional and bounded (hostile guests), so anything is accepted and at
 * worst ignored.
 */
#ifndef HX_OPS_GUEST_METRICS_H
#define HX_OPS_GUEST_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/value.h"

struct json_object;

/* A VIF of the VM: its MAC (any case) and device number ("0".."6"). */
typedef struct GmVif {
    const char *mac;
    const char *device;
} GmVif;

/* A disk of the VM as QEMU shows it: bus ("virtio", "ide", "scsi"), position
 * (the VBD's userdevice) and, for virtio, the PCI slot it sits in (else -1). */
typedef struct GmDisk {
    const char *bus;
    unsigned position;
    int pci_slot;
} GmDisk;

/* The agent's replies (borrowed; any may be NULL when not asked or refused). */
typedef struct GmFacts {
    struct json_object *info;       /* guest-info */
    struct json_object *osinfo;     /* guest-get-osinfo */
    struct json_object *interfaces; /* guest-network-get-interfaces */
    struct json_object *fsinfo;     /* guest-get-fsinfo */
    struct json_object *memory;     /* hyperxe-get-memory */
    struct json_object *balloon;    /* QMP qom-get guest-stats of the balloon */
    bool pv_io;                     /* a virtio disk or NIC has its guest driver (DRIVER_OK) */
    bool balloon_driver;            /* the balloon has its guest driver */
} GmFacts;

/* The fields derived (heap values the caller owns; see guest_metrics_release). */
typedef struct GmFields {
    XsValue *os_version;
    XsValue *pv_drivers_version;
    XsValue *networks;
    XsValue *memory;
    XsValue *disks;
    XsValue *other;
    bool pv_drivers_detected;
} GmFields;

/* Fills out from facts; vifs and disks describe the VM (for the keys). */
void guest_metrics_build(const GmFacts *facts, const GmVif *vifs, size_t n_vifs,
                         const GmDisk *disks, size_t n_disks, GmFields *out);
void guest_metrics_release(GmFields *f);

/* True if guest-info lists command as enabled. */
bool guest_metrics_has_command(struct json_object *info, const char *command);
/* The first IPv4 address in a networks map ("0/ip" and the like), or NULL. */
const char *guest_metrics_first_ip(const XsValue *networks);
/* True if two memory maps differ by more than 1 MiB in some value (or in their keys). */
bool guest_metrics_memory_changed(const XsValue *a, const XsValue *b);

#endif
