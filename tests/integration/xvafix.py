"""Builders for the XVA tests: ova.xml written the way xapi writes it (one
line, no XML declaration, untyped strings and integers), VM/VBD/VIF/VDI/SR/
network records shaped like a XenServer 7.x export, and disks cut into
members as xapi's Stream_vdi.send_one does (tests/unit/xva/test_xva_files.py
has the member model: SHA-1 or XXH64, skipped zero blocks, keep-alives).
Also a reader for the ova.xml of our own exports.
"""

import datetime
import gzip
import io
import os
import subprocess
import sys
import tarfile
import uuid
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "unit", "xva"))
from test_xva_files import disk_content, xs_disk, xs_tar  # noqa: E402,F401
from xxh64 import xxh64_hex  # noqa: E402,F401

MiB = 1 << 20
NULL = "OpaqueRef:NULL"


class DT:
    """A dateTime.iso8601 value."""

    def __init__(self, s):
        self.s = s


def xml_value(v):
    if isinstance(v, bool):
        return "<value><boolean>%d</boolean></value>" % int(v)
    if isinstance(v, int):
        return "<value>%d</value>" % v
    if isinstance(v, float):
        return "<value><double>%r</double></value>" % v
    if isinstance(v, DT):
        return "<value><dateTime.iso8601>%s</dateTime.iso8601></value>" % v.s
    if isinstance(v, dict):
        return "<value><struct>%s</struct></value>" % "".join(
            "<member><name>%s</name>%s</member>" % (esc(k), xml_value(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "<value><array><data>%s</data></array></value>" % "".join(xml_value(x) for x in v)
    return "<value>%s</value>" % esc(str(v))


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def version(major=1, minor=9, vsn=2):
    return {"hostname": "xs70", "date": "2016-05-20", "product_version": "7.0.0",
            "product_brand": "XenServer", "build_number": "125380c", "xapi_major": major,
            "xapi_minor": minor, "export_vsn": vsn}


def ova_xml(objects, ver=None):
    """objects: [(class, id, record)]."""
    doc = {"version": ver or version(),
           "objects": [{"class": c, "id": i, "snapshot": r} for c, i, r in objects]}
    return xml_value(doc).encode()


# ---- records as XenServer 7.0 exports them ----------------------------------------------

def vm_rec(name, vbds, vifs, metrics="Ref:1", **kw):
    r = {
        "uuid": str(uuid.uuid4()), "allowed_operations": [],
        "current_operations": {}, "power_state": "Halted", "name_label": name,
        "name_description": "exported from XenServer", "user_version": 1,
        "is_a_template": False, "suspend_VDI": NULL, "resident_on": NULL, "affinity": NULL,
        "memory_overhead": 3145728, "memory_target": 536870912,
        "memory_static_max": 536870912, "memory_dynamic_max": 536870912,
        "memory_dynamic_min": 268435456, "memory_static_min": 134217728, "VCPUs_params": {},
        "VCPUs_max": 2, "VCPUs_at_startup": 2, "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "restart", "consoles": [],
        "VIFs": vifs, "VBDs": vbds, "crash_dumps": [], "VTPMs": [], "PV_bootloader": "",
        "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "",
        "PV_legacy_args": "", "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "dc"}, "HVM_shadow_multiplier": 1.0,
        "platform": {"acpi": "1", "apic": "true", "pae": "true", "viridian": "true",
                     "nx": "true", "device_id": "0002"},
        "PCI_bus": "", "other_config": {"mac_seed": "0b9e4d49-6e1c-5c5e-b1f4-3c2e6b7a8d90",
                                        "install-methods": "cdrom", "base_template_name":
                                        "Windows 7 (32-bit)"},
        "domid": -1, "domarch": "", "last_boot_CPU_flags": {}, "is_control_domain": False,
        "metrics": metrics, "guest_metrics": NULL, "last_booted_record": "",
        "recommendations": '<restrictions><restriction field="memory-static-max" '
                           'max="4294967296" /></restrictions>',
        "xenstore_data": {}, "ha_always_run": False, "ha_restart_priority": "",
        "is_a_snapshot": False, "snapshot_of": NULL, "snapshots": [],
        "snapshot_time": DT("19700101T00:00:00Z"), "transportable_snapshot_id": "",
        "blobs": {}, "tags": ["imported"], "blocked_operations": {}, "snapshot_info": {},
        "snapshot_metadata": "", "parent": NULL, "children": [], "bios_strings": {},
        "protection_policy": NULL, "is_snapshot_from_vmpp": False, "appliance": NULL,
        "start_delay": 0, "shutdown_delay": 0, "order": 0, "VGPUs": [], "attached_PCIs": [],
        "suspend_SR": NULL, "version": 0, "generation_id": "", "hardware_platform_version": 0,
        "has_vendor_device": False,
    }
    r.update(kw)
    return r


def vbd_rec(vm, vdi, userdevice, device, kind="Disk", bootable=False, mode="RW", **kw):
    r = {"uuid": str(uuid.uuid4()),
         "allowed_operations": [], "current_operations": {}, "VM": vm, "VDI": vdi,
         "device": device, "userdevice": userdevice, "bootable": bootable, "mode": mode,
         "type": kind, "unpluggable": True, "storage_lock": False, "empty": vdi == NULL,
         "other_config": {"owner": "true"} if kind == "Disk" else {},
         "currently_attached": False, "status_code": 0, "status_detail": "",
         "runtime_properties": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
         "qos_supported_algorithms": [], "metrics": NULL}
    r.update(kw)
    return r


def vif_rec(vm, net, device, mac, **kw):
    r = {"uuid": str(uuid.uuid4()),
         "allowed_operations": [], "current_operations": {}, "device": device,
         "network": net, "VM": vm, "MAC": mac, "MTU": 1500, "other_config": {},
         "currently_attached": False, "status_code": 0, "status_detail": "",
         "runtime_properties": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
         "qos_supported_algorithms": [], "metrics": NULL, "MAC_autogenerated": True,
         "locking_mode": "network_default", "ipv4_allowed": [], "ipv6_allowed": []}
    r.update(kw)
    return r


def net_rec(name, bridge, vifs=(), **kw):
    r = {"uuid": str(uuid.uuid4()),
         "name_label": name, "name_description": "", "allowed_operations": [],
         "current_operations": {}, "VIFs": list(vifs), "PIFs": [], "MTU": 1500,
         "other_config": {}, "bridge": bridge, "blobs": {}, "tags": [],
         "default_locking_mode": "unlocked"}
    r.update(kw)
    return r


def vdi_rec(name, sr, size, vbds=(), kind="user", location="", **kw):
    r = {"uuid": str(uuid.uuid4()),
         "name_label": name, "name_description": "Created by template provisioner",
         "allowed_operations": [], "current_operations": {}, "SR": sr, "VBDs": list(vbds),
         "crash_dumps": [], "virtual_size": size, "physical_utilisation": size, "type": kind,
         "sharable": False, "read_only": False, "other_config": {}, "storage_lock": False,
         "location": location, "managed": True, "missing": False, "parent": NULL,
         "xenstore_data": {}, "sm_config": {"vdi_type": "vhd", "vhd-parent": "x"},
         "is_a_snapshot": False, "snapshot_of": NULL, "snapshots": [],
         "snapshot_time": DT("19700101T00:00:00Z"), "tags": [], "allow_caching": False,
         "on_boot": "persist", "metadata_of_pool": NULL, "metadata_latest": False}
    r.update(kw)
    return r


def sr_rec(name, content_type="", kind="lvm", **kw):
    r = {"uuid": str(uuid.uuid4()),
         "name_label": name, "name_description": "", "allowed_operations": [],
         "current_operations": {}, "VDIs": [], "PBDs": [], "virtual_allocation": 0,
         "physical_utilisation": 0, "physical_size": 0, "type": kind,
         "content_type": content_type, "shared": False, "other_config": {}, "tags": [],
         "sm_config": {}, "blobs": {}, "local_cache_enabled": False, "introduced_by": NULL}
    r.update(kw)
    return r


def metrics_rec():
    return {"uuid": str(uuid.uuid4()), "memory_actual": 0,
            "VCPUs_number": 0, "VCPUs_utilisation": {}, "VCPUs_CPU": {}, "VCPUs_params": {},
            "VCPUs_flags": {}, "state": [], "start_time": DT("19700101T00:00:00Z"),
            "install_time": DT("20160520T10:00:00Z"), "last_updated": DT("19700101T00:00:00Z"),
            "other_config": {}}


# ---- archives ------------------------------------------------------------------------------------

def xva(objects, disks, checksum="xxhash", keepalive=None, compress=None, fmt=tarfile.USTAR_FORMAT,
        ver=None, order=None):
    """An XVA as XenServer writes it. disks: {id: bytes}; keepalive: {id: (MiB offsets)}.
    Disks go in lexicographic order of their ids, as xapi sends them."""
    members = [("ova.xml", ova_xml(objects, ver))]
    for ident in order or sorted(disks):
        members += xs_disk(ident, disks[ident], checksum, (keepalive or {}).get(ident, ()))
    raw = xs_tar(members, fmt)
    if compress == "gzip":
        return gzip.compress(raw, 1)
    if compress == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=raw, check=True,
                              stdout=subprocess.PIPE).stdout
    return raw


# ---- reading our own exports ---------------------------------------------------------------------

def decompress(data):
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-q", "-d", "-c"], input=data, check=True,
                              stdout=subprocess.PIPE).stdout
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    return data


def parse_value(e):
    """An XML-RPC <value> element as Python (untyped -> str)."""
    kids = list(e)
    if not kids:
        return e.text or ""
    c = kids[0]
    t = c.tag
    if t == "struct":
        return {m.find("name").text or "": parse_value(m.find("value")) for m in c}
    if t == "array":
        return [parse_value(v) for v in c.find("data")]
    if t == "boolean":
        return c.text == "1"
    if t in ("int", "i4", "i8"):
        return int(c.text)
    if t == "double":
        return float(c.text)
    if t == "dateTime.iso8601":
        return DT(c.text)
    return c.text or ""


def read_ova(path):
    """(raw ova.xml bytes, parsed document, tar member names, first member's mtime)."""
    with open(path, "rb") as f:
        data = decompress(f.read())
    tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    members = tf.getmembers()
    raw = tf.extractfile(members[0]).read()
    doc = parse_value(ET.fromstring(raw))
    return raw, doc, [m.name for m in members], members[0].mtime


def now_iso():
    return datetime.datetime.utcnow().strftime("%Y%m%dT%H:%M:%SZ")
