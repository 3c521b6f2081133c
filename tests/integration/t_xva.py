#!/usr/bin/env python3
"""XVA export and import against a real daemon (no QEMU).

- Round trip of a VM with two disks, a CD and two VIFs, uncompressed, gzip
  and zstd: our files checked by the independent reader
  (tests/unit/xva/xva_check.py: tarfile, XXH64, SHA-1), ova.xml checked
  against xapi's rules, the import compared disk by disk with qemu-img.
- Templates, metadata-only exports and imports, verify=true.
- Files written the way XenServer writes them (tests/integration/xvafix.py):
  SHA-1 .checksum members, skipped blocks, keep-alive members, Ref:10
  before Ref:9, gzip and zstd, fields we do not know and fields missing;
  networks matched by name, then bridge, else the default; CDs matched by
  ISO name, else left empty; MACs regenerated unless preserve=true.
- Version-1 directories; VHD and VMDK disk images of every subformat the
  formats layer reads (tests/data/samples), and broken ones; URLs.
- Bad input of every kind: a clear error, no VM, VDI or file left behind.
- Cancellation of imports and exports.
- Both paths of xe: as root on the unix socket xe hands the file itself to
  the daemon (HTTP Upgrade "hyperxe-fd", then SCM_RIGHTS); with
  HYPERXE_XE_STREAM=1 (t_xva_stream runs every test so) or over TCP the
  bytes stream. The checks on handed-over descriptors.

usage: t_xva.py            the tests above
       t_xva.py sr_full    the disk-full test (run inside `unshare -m` as root)
"""

import http.client
import http.server
import io
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request

from hxtest import PASSWORD, SOURCE_DIR, UUID_RE, XE, Daemon, ok, run_tests
from t_api_sdk import vm_record
import xvafix as X

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "unit", "xva"))
import xva_check  # noqa: E402

MiB = 1 << 20
SAMPLES = os.path.join(SOURCE_DIR, "tests", "data", "samples")
D = None
S = None
SESS = None
TMP = None
ENV = {}


def p(name):
    return os.path.join(TMP, name)


def xe(*args, check=True):
    return D.xe(*args, check=check)


def xe_fails(*args, code=None, needle=None):
    r = D.xe(*args, check=False)
    assert r.returncode != 0, "xe %s should have failed: %s" % (" ".join(args), r.stdout)
    if code:
        assert code in r.stderr, "expected %s from xe %s, got: %s" % (code, args, r.stderr)
    if needle:
        assert needle in r.stderr, "expected %r in: %s" % (needle, r.stderr)
    return r.stderr


def new_uuids(stdout):
    u = stdout.strip().split(",")
    assert all(UUID_RE.fullmatch(x) for x in u), stdout
    return u


def vm_ref(uuid):
    return ok(S.VM.get_by_uuid(SESS, uuid))


def sr_dir(sr):
    for pbd in ok(S.SR.get_PBDs(SESS, sr)):
        dc = ok(S.PBD.get_device_config(SESS, pbd))
        if "path" in dc:
            return dc["path"]
    raise AssertionError("no directory for SR %s" % sr)


def vdi_file(vdi):
    return os.path.join(sr_dir(ok(S.VDI.get_SR(SESS, vdi))), ok(S.VDI.get_uuid(SESS, vdi)) + ".qcow2")


def same_disk(raw, vdi):
    r = subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", raw, vdi_file(vdi)],
                       capture_output=True, text=True)
    return r.returncode == 0


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def state():
    """Everything an import may leave behind."""
    vms = set(ok(S.VM.get_all(SESS)))
    vdis = set(ok(S.VDI.get_all(SESS)))
    files = set()
    for sr in ok(S.SR.get_all(SESS)):
        if ok(S.SR.get_content_type(SESS, sr)) == "iso":
            continue
        try:
            d = sr_dir(sr)
        except AssertionError:
            continue
        files |= {os.path.join(d, f) for f in os.listdir(d)}
    return vms, vdis, files


def nothing_left(before, what):
    # Files go right after the task ends; give the server a moment.
    for _ in range(50):
        after = state()
        if after == before:
            return
        time.sleep(0.1)
    raise AssertionError("%s left behind: VMs %s, VDIs %s, files %s" % (
        what, after[0] - before[0], after[1] - before[1], after[2] ^ before[2]))


def mkdisk(name, data):
    """A VDI holding data (a raw image, size a multiple of 512); returns (vdi, raw path)."""
    raw = write(p(name + ".raw"), data)
    vdi = ok(S.VDI.create(SESS, {"name_label": name, "SR": ENV["sr"],
                                  "virtual_size": str(len(data)), "type": "user",
                                  "sharable": False, "read_only": False, "other_config": {}}))
    xe("vdi-import", "uuid=" + ok(S.VDI.get_uuid(SESS, vdi)), "filename=" + raw)
    return vdi, raw


def vbd(vm, vdi, userdevice, kind="Disk", bootable=False):
    return ok(S.VBD.create(SESS, {
        "VM": vm, "VDI": vdi, "userdevice": userdevice, "bootable": bootable,
        "mode": "RO" if kind == "CD" else "RW", "type": kind, "unpluggable": True,
        "empty": vdi == X.NULL, "other_config": {}, "qos_algorithm_type": "",
        "qos_algorithm_params": {}}))


def vif(vm, net, device, mac=""):
    return ok(S.VIF.create(SESS, {"device": device, "network": net, "VM": vm, "MAC": mac,
                                  "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                                  "qos_algorithm_params": {}}))


def devices(vm):
    """{userdevice: (type, vdi, bootable)} and {device: (network, MAC)}."""
    vbds = {}
    for b in ok(S.VM.get_VBDs(SESS, vm)):
        r = ok(S.VBD.get_record(SESS, b))
        vbds[r["userdevice"]] = (r["type"], r["VDI"], r["bootable"], r["empty"])
    vifs = {}
    for v in ok(S.VM.get_VIFs(SESS, vm)):
        r = ok(S.VIF.get_record(SESS, v))
        vifs[r["device"]] = (r["network"], r["MAC"])
    return vbds, vifs


def setup():
    global S, SESS
    S, SESS = D.login()
    pool = ok(S.pool.get_all(SESS))[0]
    ENV["sr"] = ok(S.pool.get_default_SR(SESS, pool))
    nets = ok(S.network.get_all_records(SESS))
    ENV["net0"] = [r for r, v in nets.items() if v["bridge"] == "xenbr0"][0]
    ENV["net2"] = ok(S.network.create(SESS, {"name_label": "net2", "name_description": "",
                                             "MTU": "1500", "other_config": {},
                                             "bridge": "xapi2"}))
    ENV["net2_bridge"] = ok(S.network.get_bridge(SESS, ENV["net2"]))
    isos = [r for r, v in ok(S.VDI.get_all_records(SESS)).items()
            if v["name_label"] == "guest-tools.iso"]
    ENV["iso"] = isos[0]


# ------------------------------------------------------------------------------ round trip

REQUIRED = {  # fields without a datamodel default (xapi refuses records without them)
    "VM": ["uuid", "user_version", "is_a_template", "resident_on", "affinity",
           "memory_static_max", "memory_dynamic_max", "memory_dynamic_min", "memory_static_min",
           "VCPUs_params", "VCPUs_max", "VCPUs_at_startup", "actions_after_shutdown",
           "actions_after_reboot", "actions_after_crash", "PV_bootloader", "PV_kernel",
           "PV_ramdisk", "PV_args", "PV_bootloader_args", "PV_legacy_args", "HVM_boot_policy",
           "HVM_boot_params", "platform", "other_config", "domid", "domarch",
           "is_control_domain", "metrics", "guest_metrics", "recommendations"],
    "VBD": ["uuid", "VM", "VDI", "userdevice", "bootable", "mode", "type", "storage_lock",
            "empty", "other_config", "status_code", "status_detail", "runtime_properties",
            "qos_algorithm_type", "qos_algorithm_params", "qos_supported_algorithms"],
    "VDI": ["uuid", "SR", "virtual_size", "physical_utilisation", "type", "sharable",
            "read_only", "other_config", "storage_lock", "managed", "missing", "parent"],
    "VIF": ["uuid", "device", "network", "VM", "MAC", "MTU", "other_config", "status_code",
            "status_detail", "runtime_properties", "qos_algorithm_type",
            "qos_algorithm_params", "qos_supported_algorithms"],
    "SR": ["uuid", "virtual_allocation", "physical_utilisation", "physical_size", "type",
           "content_type", "shared", "other_config"],
    "network": ["uuid", "other_config"],
}


def all_strings(v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from all_strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from all_strings(x)
    elif isinstance(v, str):
        yield v


def check_ova(path, vm_uuid):
    raw, doc, names, mtime = X.read_ova(path)
    assert names[0] == "ova.xml" and mtime != 0, (names[:2], mtime)
    assert not raw.startswith(b"<?xml") and raw.startswith(b"<value><struct>"), raw[:40]
    v = doc["version"]
    assert v["export_vsn"] == "2" and int(v["xapi_major"]) >= 1 and "xapi_minor" in v, v
    objs = doc["objects"]
    classes = [o["class"] for o in objs]
    order = ["VM", "VM_metrics", "VM_guest_metrics", "VBD", "VIF", "network", "VDI", "SR"]
    assert classes == sorted(classes, key=order.index), classes
    assert [o["id"] for o in objs] == ["Ref:%d" % i for i in range(len(objs))], objs
    assert objs[0]["class"] == "VM" and objs[0]["snapshot"]["uuid"] == vm_uuid
    ids = {o["id"] for o in objs}
    for o in objs:
        for s in all_strings(o["snapshot"]):
            assert not s.startswith("OpaqueRef:") or s == X.NULL, (o["class"], s)
        for f in REQUIRED.get(o["class"], []):
            assert f in o["snapshot"], "%s %s lacks %s" % (o["class"], o["id"], f)
    vm = objs[0]["snapshot"]
    assert vm["power_state"] == "Halted" and vm["current_operations"] == {}, vm["power_state"]
    assert set(vm["VBDs"]) <= ids and len(vm["VBDs"]) == 3 and len(vm["VIFs"]) == 2
    for o in objs:
        if o["class"] == "VDI":
            assert o["snapshot"]["SR"] in ids, o
            assert not {"vhd-parent", "image-format"} & set(o["snapshot"]["sm_config"]), o
    return doc, names


def test_round_trip():
    rnd = random.Random(1)
    d0 = X.disk_content(rnd, 40 * MiB, "dzdddzzzzzzdzzzzzzzzzzzzzzzzzzzzzzzzzzzd")
    # Many small extents at unaligned offsets: data and zeros inside clusters.
    d1 = bytearray(9 * MiB + 3 * 512)
    for _ in range(300):
        off = rnd.randrange(len(d1))
        n = min(len(d1) - off, rnd.randint(1, 200 * 1024))
        d1[off:off + n] = rnd.randbytes(n) if rnd.random() < 0.8 else bytes(n)
    d1 = bytes(d1)
    v0, raw0 = mkdisk("rt-disk0", d0)
    v1, raw1 = mkdisk("rt-disk1", d1)
    vm = ok(S.VM.create(SESS, vm_record("rt-vm", VCPUs_max="2", VCPUs_at_startup="2")))
    vbd(vm, v0, "0", bootable=True)
    vbd(vm, v1, "1")
    vbd(vm, ENV["iso"], "3", kind="CD")
    vif(vm, ENV["net0"], "0", "aa:00:00:00:01:00")
    vif(vm, ENV["net2"], "1", "aa:00:00:00:01:01")
    vm_uuid = ok(S.VM.get_uuid(SESS, vm))
    old_vbds, old_vifs = devices(vm)
    for comp in ("false", "gzip", "zstd"):
        x = p("rt-%s.xva" % comp)
        r = xe("vm-export", "vm=" + vm_uuid, "filename=" + x, "compress=" + comp, "verify=true")
        assert "Export succeeded" in r.stdout and "Verify succeeded: 2 disk(s)" in r.stdout, r.stdout
        doc, names = check_ova(x, vm_uuid)
        # The independent reader: disks by the ids ova.xml gives them.
        src = {}
        for o in doc["objects"]:
            if o["class"] == "VDI" and o["snapshot"]["name_label"] in ("rt-disk0", "rt-disk1"):
                src[o["id"]] = raw0 if o["snapshot"]["name_label"] == "rt-disk0" else raw1
        summary = xva_check.check(x, src)
        assert summary["compression"] == {"false": "none"}.get(comp, comp), summary
        # Zero blocks are not in the file.
        assert summary["disks"][[i for i in src if src[i] == raw0][0]]["blocks"] < 15, summary
        out = xe("vm-import", "filename=" + x).stdout
        (new,) = new_uuids(out)
        nvm = vm_ref(new)
        assert new != vm_uuid and ok(S.VM.get_name_label(SESS, nvm)) == "rt-vm"
        assert ok(S.VM.get_VCPUs_max(SESS, nvm)) == "2"
        vbds, vifs = devices(nvm)
        assert sorted(vbds) == ["0", "1", "3"], vbds
        assert vbds["0"][0] == "Disk" and vbds["0"][2] and not vbds["1"][2]
        assert same_disk(raw0, vbds["0"][1]) and same_disk(raw1, vbds["1"][1])
        assert vbds["0"][1] != old_vbds["0"][1]
        assert vbds["3"][0] == "CD" and vbds["3"][1] == ENV["iso"]
        assert vifs["0"][0] == ENV["net0"] and vifs["1"][0] == ENV["net2"], vifs
        assert vifs["0"][1] != old_vifs["0"][1] and vifs["1"][1] != old_vifs["1"][1]
        # The new disks are standalone qcow2 files with no trace of the import.
        info = subprocess.run(["qemu-img", "info", vdi_file(vbds["0"][1])],
                              capture_output=True, text=True).stdout
        assert "backing file" not in info, info
    # preserve=true keeps the MAC addresses.
    (new,) = new_uuids(xe("vm-import", "filename=" + p("rt-zstd.xva"), "preserve=true").stdout)
    _, vifs = devices(vm_ref(new))
    assert vifs["0"][1] == old_vifs["0"][1] and vifs["1"][1] == old_vifs["1"][1], vifs
    ENV["rt_vm"] = vm
    ENV["rt_xva"] = p("rt-false.xva")
    ENV["rt_raw"] = (raw0, raw1)


def test_templates_metadata_and_http():
    vm = ENV["rt_vm"]
    uuid = ok(S.VM.get_uuid(SESS, vm))
    # Metadata only: a tar holding ova.xml alone, served with its length.
    x = p("meta.xva")
    xe("vm-export", "uuid=" + uuid, "filename=" + x, "metadata=true")
    _, doc, names, _ = X.read_ova(x)
    assert names == ["ova.xml"], names
    url = "http://127.0.0.1:%d/export_metadata?session_id=%s&uuid=%s" % (D.port, SESS, uuid)
    with urllib.request.urlopen(url) as r:
        assert int(r.headers["Content-Length"]) == len(r.read())
        assert r.headers["task-id"].startswith("OpaqueRef:")
    # Importing metadata finds the existing disks instead of making new ones.
    (new,) = new_uuids(xe("vm-import", "filename=" + x, "metadata=true").stdout)
    vbds, _ = devices(vm_ref(new))
    old, _ = devices(vm)
    assert vbds["0"][1] == old["0"][1] and vbds["1"][1] == old["1"][1], (vbds, old)
    # A metadata file is not a full export.
    before = state()
    xe_fails("vm-import", "filename=" + x, code="IMPORT_ERROR_PREMATURE_EOF")
    nothing_left(before, "a full import of a metadata file")
    # Templates export and import as templates.
    t = ok(S.VM.create(SESS, vm_record("tmpl", is_a_template=True)))
    vbd(t, ok(S.VBD.get_VDI(SESS, ok(S.VM.get_VBDs(SESS, vm))[0])), "0", bootable=True)
    tu = ok(S.VM.get_uuid(SESS, t))
    xe("template-export", "template-uuid=" + tu, "filename=" + p("t.xva"))
    (new,) = new_uuids(xe("vm-import", "filename=" + p("t.xva")).stdout)
    assert ok(S.VM.get_is_a_template(SESS, vm_ref(new))) is True
    xe_fails("template-export", "template-uuid=" + uuid, "filename=" + p("x.xva"),
             needle="can only be performed on a VM template")
    xe_fails("snapshot-export-to-template", "snapshot-uuid=" + tu, "filename=" + p("x.xva"),
             needle="can only be performed on a VM snapshot")
    # The VM is free again after its exports.
    assert "export" in ok(S.VM.get_allowed_operations(SESS, vm))
    # HTTP errors: an unknown VM, the control domain, a chunked upload.
    for q, status in (("uuid=nope", 404),):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/export?session_id=%s&%s" % (D.port, SESS, q))
            raise AssertionError("export of %s succeeded" % q)
        except urllib.error.HTTPError as e:
            assert e.code == status and b"HANDLE_INVALID" in e.read(), e
    dom0 = [r for r, v in ok(S.VM.get_all_records(SESS)).items() if v["is_control_domain"]][0]
    xe_fails("vm-export", "uuid=" + ok(S.VM.get_uuid(SESS, dom0)), "filename=" + p("d0.xva"))
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=30)
    c.putrequest("PUT", "/import?session_id=" + SESS)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    c.send(b"5\r\nhello\r\n0\r\n\r\n")
    r = c.getresponse()
    body = r.read()
    assert r.status == 403 and b"IMPORT_ERROR_CANNOT_HANDLE_CHUNKED" in body, (r.status, body)
    c.close()


def test_snapshots():
    """A VM with a snapshot (as a metadata export from XenServer carries it), the
    snapshot exported as a template, and metadata exports with snapshots."""
    rnd = random.Random(8)
    base = X.disk_content(rnd, 3 * MiB, "dzd")
    snapd = X.disk_content(rnd, 3 * MiB, "ddz")
    objs = [
        ("VM", "Ref:0", X.vm_rec("has-snapshot", ["Ref:1"], [], metrics=X.NULL,
                                 snapshots=["Ref:3"])),
        ("VBD", "Ref:1", X.vbd_rec("Ref:0", "Ref:2", "0", "xvda", bootable=True)),
        ("VDI", "Ref:2", X.vdi_rec("base-disk", "Ref:6", len(base), ["Ref:1"])),
        ("VM", "Ref:3", X.vm_rec("snap1", ["Ref:4"], [], metrics=X.NULL, is_a_snapshot=True,
                                 is_a_template=True, snapshot_of="Ref:0",
                                 snapshot_time=X.DT("20240102T03:04:05Z"))),
        ("VBD", "Ref:4", X.vbd_rec("Ref:3", "Ref:5", "0", "xvda", bootable=True)),
        ("VDI", "Ref:5", X.vdi_rec("snap-disk", "Ref:6", len(snapd), ["Ref:4"],
                                   is_a_snapshot=True, snapshot_of="Ref:2")),
        ("SR", "Ref:6", X.sr_rec("sr")),
    ]
    x = write(p("with-snap.xva"), X.xva(objs, {"Ref:2": base, "Ref:5": snapd}))
    (new,) = new_uuids(xe("vm-import", "filename=" + x).stdout)  # snapshots are not listed
    vm = vm_ref(new)
    (snap,) = ok(S.VM.get_snapshots(SESS, vm))
    srec = ok(S.VM.get_record(SESS, snap))
    assert srec["is_a_snapshot"] and srec["snapshot_of"] == vm and srec["name_label"] == "snap1"
    assert same_disk(write(p("snapd.raw"), snapd), devices(snap)[0]["0"][1])
    su = srec["uuid"]
    # A metadata export carries the snapshot, linked by id.
    xe("vm-export", "uuid=" + new, "filename=" + p("meta-snap.xva"), "metadata=true",
       "include-snapshots=true")
    _, doc, _, _ = X.read_ova(p("meta-snap.xva"))
    vms = [o for o in doc["objects"] if o["class"] == "VM"]
    assert len(vms) == 2 and vms[1]["snapshot"]["snapshot_of"] == "Ref:0", vms
    assert vms[1]["snapshot"]["is_a_snapshot"] is True
    # snapshot-export-to-template: the snapshot becomes a template elsewhere.
    xe("snapshot-export-to-template", "snapshot-uuid=" + su, "filename=" + p("s.xva"))
    (t,) = new_uuids(xe("vm-import", "filename=" + p("s.xva")).stdout)
    trec = ok(S.VM.get_record(SESS, vm_ref(t)))
    assert trec["is_a_template"] and not trec["is_a_snapshot"] and trec["snapshot_of"] == X.NULL
    assert same_disk(p("snapd.raw"), devices(vm_ref(t))[0]["0"][1])


def test_power_states():
    """On the simulated VMM: a running VM cannot be exported; a suspended one
    exports halted, or suspended with its memory image (preserve-power-state),
    which the copy gets as its suspend VDI."""
    kernel = write(p("vmlinuz"), b"\0" * 4096)
    with Daemon(vmm="sim") as d:
        def sx(*args, check=True):
            return d.xe(*args, check=check)
        s, sess = d.login()
        vm = sx("vm-install", "template=Debian Squeeze 6.0 (64-bit)",
                "new-name-label=susp").stdout.strip()
        sx("vm-param-set", "uuid=" + vm, "PV-bootloader=", "PV-kernel=" + kernel,
           "PV-args=console=ttyS0")
        sx("vm-start", "uuid=" + vm)
        r = sx("vm-export", "uuid=" + vm, "filename=" + p("run.xva"), check=False)
        assert r.returncode and "VM_BAD_POWER_STATE" in r.stderr, r.stderr
        assert not os.path.exists(p("run.xva"))
        sx("vm-suspend", "uuid=" + vm)
        sv = sx("vm-param-get", "uuid=" + vm, "param-name=suspend-VDI-uuid").stdout.strip()
        sx("vm-export", "uuid=" + vm, "filename=" + p("halted.xva"))
        sx("vm-export", "uuid=" + vm, "filename=" + p("susp.xva"), "preserve-power-state=true")
        _, doc, names, _ = X.read_ova(p("halted.xva"))
        vmrec = doc["objects"][0]["snapshot"]
        assert vmrec["power_state"] == "Halted" and vmrec["suspend_VDI"] == X.NULL
        halted_disks = {n.split("/")[0] for n in names[1:]}
        _, doc, names, _ = X.read_ova(p("susp.xva"))
        vmrec = doc["objects"][0]["snapshot"]
        assert vmrec["power_state"] == "Suspended", vmrec["power_state"]
        sid = vmrec["suspend_VDI"]
        susp = [o for o in doc["objects"] if o["id"] == sid][0]["snapshot"]
        assert susp["type"] == "suspend" and susp["uuid"] == sv
        assert {n.split("/")[0] for n in names[1:]} == halted_disks | {sid}
        new = sx("vm-import", "filename=" + p("susp.xva")).stdout.strip()
        assert sx("vm-param-get", "uuid=" + new, "param-name=power-state").stdout.strip() == \
            "suspended"
        nsv = sx("vm-param-get", "uuid=" + new, "param-name=suspend-VDI-uuid").stdout.strip()
        assert nsv != sv and UUID_RE.fullmatch(nsv)
        nsr = ok(s.VDI.get_by_uuid(sess, nsv))
        osr = ok(s.VDI.get_by_uuid(sess, sv))
        files = []
        for v in (osr, nsr):
            sr = ok(s.VDI.get_SR(sess, v))
            dd = [ok(s.PBD.get_device_config(sess, q))["path"] for q in ok(s.SR.get_PBDs(sess, sr))][0]
            files.append(os.path.join(dd, ok(s.VDI.get_uuid(sess, v)) + ".qcow2"))
        assert subprocess.run(["qemu-img", "compare", "-q"] + files).returncode == 0
        assert ok(s.VDI.get_type(sess, nsr)) == "suspend"
        # The copy resumes with its own identity (the configuration saved at
        # suspend time travels in last_booted_record).
        sx("vm-resume", "uuid=" + new)
        assert sx("vm-param-get", "uuid=" + new, "param-name=power-state").stdout.strip() == \
            "running"
        assert sx("vdi-list", "uuid=" + nsv, "--minimal").stdout.strip() == ""
        new2 = sx("vm-import", "filename=" + p("halted.xva")).stdout.strip()
        assert sx("vm-param-get", "uuid=" + new2, "param-name=power-state").stdout.strip() == \
            "halted"
        for v in (vm, new):
            sx("vm-shutdown", "uuid=" + v, "--force")


# ------------------------------------------------------------------------ XenServer's files

def xs_objects(ref_sr="Ref:30", iso_name="guest-tools.iso", disk_sizes=(0, 0)):
    vbds = ["Ref:2", "Ref:3", "Ref:4", "Ref:5"]
    vifs = ["Ref:6", "Ref:7", "Ref:8"]
    objs = [
        ("host", "Ref:40", {"uuid": "x", "name_label": "xs70"}),
        ("VM", "Ref:0", X.vm_rec("xs-vm", vbds, vifs, affinity="Ref:40")),
        ("VM_metrics", "Ref:1", X.metrics_rec()),
        ("VBD", "Ref:2", X.vbd_rec("Ref:0", "Ref:9", "0", "xvda", bootable=True)),
        ("VBD", "Ref:3", X.vbd_rec("Ref:0", "Ref:10", "1", "xvdb")),
        ("VBD", "Ref:4", X.vbd_rec("Ref:0", "Ref:20", "3", "xvdd", kind="CD", mode="RO")),
        ("VBD", "Ref:5", X.vbd_rec("Ref:0", "Ref:21", "4", "xvde", kind="CD", mode="RO")),
        ("VIF", "Ref:6", X.vif_rec("Ref:0", "Ref:11", "0", "a2:10:00:00:00:01")),
        ("VIF", "Ref:7", X.vif_rec("Ref:0", "Ref:12", "1", "a2:10:00:00:00:02")),
        ("VIF", "Ref:8", X.vif_rec("Ref:0", "Ref:13", "2", "a2:10:00:00:00:03")),
        ("network", "Ref:11", X.net_rec("net2", "xenbr7", ["Ref:6"])),
        ("network", "Ref:12", X.net_rec("Network 12", ENV["net2_bridge"], ["Ref:7"])),
        ("network", "Ref:13", X.net_rec("Network 13", "xenbr13", ["Ref:8"])),
        ("VDI", "Ref:9", X.vdi_rec("xs-disk0", ref_sr, disk_sizes[0], ["Ref:2"], kind="system")),
        ("VDI", "Ref:10", X.vdi_rec("xs-disk1", ref_sr, disk_sizes[1], ["Ref:3"])),
        ("VDI", "Ref:20", X.vdi_rec(iso_name, "Ref:31", 1 << 20, ["Ref:4"],
                                    location=iso_name)),
        ("VDI", "Ref:21", X.vdi_rec("win7.iso", "Ref:31", 1 << 30, ["Ref:5"],
                                    location="win7.iso")),
        ("SR", "Ref:30", X.sr_rec("Local storage", "user", "lvm")),
        ("SR", "Ref:31", X.sr_rec("ISOs", "iso", "iso")),
    ]
    return objs


def xs_disks():
    rnd = random.Random(9)
    d9 = X.disk_content(rnd, 5 * MiB + 512, "dzzdz")
    d10 = X.disk_content(rnd, 9 * MiB, "dzzzzzdzd")
    return {"Ref:9": d9, "Ref:10": d10}


def test_xenserver_files():
    disks = xs_disks()
    objs = xs_objects(disk_sizes=(len(disks["Ref:9"]), len(disks["Ref:10"])))
    raw9 = write(p("xs9.raw"), disks["Ref:9"])
    raw10 = write(p("xs10.raw"), disks["Ref:10"])
    variants = [
        ("sha1", None, tarfile.USTAR_FORMAT, "sha1-plain"),
        ("sha1", "gzip", tarfile.GNU_FORMAT, "sha1-gzip"),
        ("xxhash", "zstd", tarfile.PAX_FORMAT, "xxhash-zstd"),
    ]
    for checksum, comp, fmt, tag in variants:
        data = X.xva(objs, disks, checksum, keepalive={"Ref:10": (2, 5)}, compress=comp, fmt=fmt)
        if comp is None:
            # The model: Ref:10 streams before Ref:9, keep-alives shift the numbering.
            names = [m.name for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers()]
            assert names.index("Ref:10/00000000") < names.index("Ref:9/00000000"), names
            assert "Ref:10/00000002" in names and "Ref:10/00000010" in names, names
            assert any(n.endswith(".checksum") for n in names)
        x = write(p("xs-%s.xva" % tag), data)
        (new,) = new_uuids(xe("vm-import", "filename=" + x).stdout)
        vm = vm_ref(new)
        rec = ok(S.VM.get_record(SESS, vm))
        assert rec["name_label"] == "xs-vm" and rec["memory_static_max"] == "536870912", rec
        assert rec["VCPUs_max"] == "2" and rec["HVM_boot_params"] == {"order": "dc"}
        assert rec["platform"]["device_id"] == "0002" and rec["tags"] == ["imported"]
        assert rec["power_state"] == "Halted" and rec["affinity"] == X.NULL
        # Fields a 7.0 export lacks take their defaults.
        assert rec["actions_after_softreboot"] == "soft_reboot" and rec["domain_type"]
        assert rec["other_config"]["mac_seed"] != "0b9e4d49-6e1c-5c5e-b1f4-3c2e6b7a8d90"
        vbds, vifs = devices(vm)
        assert sorted(vbds) == ["0", "1", "3", "4"], vbds
        assert same_disk(raw9, vbds["0"][1]) and same_disk(raw10, vbds["1"][1]), tag
        sm = ok(S.VDI.get_sm_config(SESS, vbds["0"][1]))
        assert "vhd-parent" not in sm, sm
        assert ok(S.VDI.get_type(SESS, vbds["0"][1])) == "system"
        assert vbds["3"][1] == ENV["iso"], "the CD is matched to our ISO by name"
        assert vbds["4"][1] == X.NULL and vbds["4"][3], "an unknown ISO leaves the drive empty"
        assert vifs["0"][0] == ENV["net2"], "network by name"
        assert vifs["1"][0] == ENV["net2"], "network by bridge"
        assert vifs["2"][0] == ENV["net0"], "else the default network"
        assert not {v[1] for v in vifs.values()} & {"a2:10:00:00:00:01", "a2:10:00:00:00:02",
                                                     "a2:10:00:00:00:03"}, vifs
    (new,) = new_uuids(xe("vm-import", "filename=" + p("xs-sha1-plain.xva"), "preserve=true").stdout)
    _, vifs = devices(vm_ref(new))
    assert [vifs[d][1] for d in "012"] == ["a2:10:00:00:00:01", "a2:10:00:00:00:02",
                                           "a2:10:00:00:00:03"], vifs
    # Xen Orchestra's ids, and a template installer's pretty-printed ova.xml.
    o2 = [(c, i.replace("Ref:", "Ref:0"), r) for c, i, r in xs_objects(
        disk_sizes=(len(disks["Ref:9"]), len(disks["Ref:10"])))]
    ren = {"Ref:%d" % k: "Ref:0%d" % k for k in range(100)}

    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return ren.get(v, v) if isinstance(v, str) else v
    o2 = [(c, i, fix(r)) for c, i, r in o2]
    x = write(p("xo.xva"), X.xva(o2, {"Ref:09": disks["Ref:9"], "Ref:010": disks["Ref:10"]}))
    (new,) = new_uuids(xe("vm-import", "filename=" + x).stdout)
    vbds, _ = devices(vm_ref(new))
    assert same_disk(raw9, vbds["0"][1]) and same_disk(raw10, vbds["1"][1])


# --------------------------------------------------------------------------------- version 1

V1_XML = """<?xml version="1.0" encoding="UTF-8"?>
<appliance version="0.1">
  <vm name="vm">
    <label>Debian Sarge</label>
    <shortdesc>An old guest</shortdesc>
    <config mem_set="268435456" vcpus="1"/>
    <hacks is_hvm="false" kernel_boot_cmdline="root=/dev/sda1 ro"/>
    <vbd device="sda" function="root" mode="w" vdi="vdi_sda"/>
    <vbd device="sdb" function="swap" mode="rw" vdi="vdi_sdb"/>
  </vm>
  <vdi name="vdi_sda" size="2500000" source="file://sda" type="dir-gzipped-chunks" variety="system"/>
  <vdi name="vdi_sdb" size="1500000" source="file://sdb" type="dir-gzipped-chunks" variety="user"/>
</appliance>
"""


def test_version1():
    import gzip
    rnd = random.Random(3)
    d = p("v1dir")
    os.makedirs(os.path.join(d, "sda"))
    os.makedirs(os.path.join(d, "sdb"))
    write(os.path.join(d, "ova.xml"), V1_XML.encode())
    sda = rnd.randbytes(2500000)
    sdb = rnd.randbytes(700000)
    for i in range(3):
        write(os.path.join(d, "sda", "chunk-%09d.gz" % i), gzip.compress(sda[i * 1000000:(i + 1) * 1000000]))
    write(os.path.join(d, "sdb", "chunk000000000.gz"), gzip.compress(sdb))
    # The disks as the import makes them: whole sectors, the rest zeros.
    raw_a = write(p("v1a.raw"), sda + b"\0" * (2500096 - 2500000))
    raw_b = write(p("v1b.raw"), sdb + b"\0" * (1500160 - 700000))
    for how in (["filename=" + d], ["filename=" + os.path.join(d, "ova.xml")],
                ["url=file://" + d]):
        (new,) = new_uuids(xe("vm-import", *how).stdout)
        vm = vm_ref(new)
        rec = ok(S.VM.get_record(SESS, vm))
        assert rec["name_label"] == "Debian Sarge import", rec["name_label"]
        assert rec["name_description"] == "An old guest"
        assert rec["PV_bootloader"] == "pygrub" and rec["PV_legacy_args"] == "root=/dev/sda1 ro"
        assert rec["memory_static_max"] == "268435456" and rec["HVM_boot_policy"] == ""
        vbds, _ = devices(vm)
        assert sorted(vbds) == ["0", "1", "3"] and vbds["0"][2] and not vbds["1"][2], vbds
        assert vbds["3"][0] == "CD" and vbds["3"][3]
        assert same_disk(raw_a, vbds["0"][1]) and same_disk(raw_b, vbds["1"][1]), how
    # A version-1 appliance with a missing chunk in the middle.
    os.unlink(os.path.join(d, "sda", "chunk-000000001.gz"))
    before = state()
    xe_fails("vm-import", "url=file://" + d)
    nothing_left(before, "a broken version-1 import")


# ------------------------------------------------------------------------------ disk images

IMAGES = [  # (path under samples, qemu-img format, VM name)
    ("vhd/qemu-fixed.vhd", "vpc"),
    ("vhd/qemu-dynamic.vhd", "vpc"),
    ("vhd/dfvfs-ext2-qemu-dynamic.vhd", "vpc"),
    ("vhd/tsk-image-qemu-dynamic.vhd", "vpc"),
    ("vmdk/qemu-monolithicSparse-lsilogic.vmdk", "vmdk"),
    ("vmdk/qemu-streamOptimized.vmdk", "vmdk"),
    ("vmdk/qemu-monolithicFlat/qemu-monolithicFlat.vmdk", "vmdk"),
    ("vmdk/qemu-twoGbMaxExtentSparse/qemu-twoGbSparse.vmdk", "vmdk"),
    ("vmdk/dfvfs-ext2-monolithicSparse.vmdk", "vmdk"),
    ("vmdk/tsk-image-monolithicSparse.vmdk", "vmdk"),
]


def test_disk_images():
    for i, (rel, fmt) in enumerate(IMAGES):
        src = os.path.join(SAMPLES, rel)
        raw = p("img%d.raw" % i)
        subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", src, raw], check=True)
        args = ["vm-import", "filename=" + src]
        if i == 1:
            args += ["name-label=imported vhd", "vcpus=2", "memory=512MiB",
                     "network-uuid=" + ok(S.network.get_uuid(SESS, ENV["net2"])),
                     "disk-bus=virtio"]
        (new,) = new_uuids(xe(*args).stdout)
        vm = vm_ref(new)
        rec = ok(S.VM.get_record(SESS, vm))
        assert rec["HVM_boot_policy"] == "BIOS order" and rec["HVM_boot_params"]["order"] == "cd"
        assert rec["HVM_boot_params"].get("firmware", "bios") == "bios"
        assert rec["domain_type"] == "hvm", rec["domain_type"]
        vbds, vifs = devices(vm)
        assert vbds["0"][0] == "Disk" and vbds["0"][2] and vbds["3"][0] == "CD" and vbds["3"][3]
        assert same_disk(raw, vbds["0"][1]), rel
        if i == 1:
            assert rec["name_label"] == "imported vhd" and rec["VCPUs_max"] == "2"
            assert rec["memory_static_max"] == str(512 << 20)
            assert rec["platform"]["hyperxe-disk-bus"] == "virtio"
            assert vifs["0"][0] == ENV["net2"]
        else:
            expect = os.path.basename(rel).rsplit(".", 1)[0]
            assert rec["name_label"] == expect, (rec["name_label"], expect)
            assert rec["platform"]["hyperxe-disk-bus"] == "ide", "IDE for foreign images"
            assert vifs["0"][0] == ENV["net0"]
    # Broken images: a clear error, nothing made.
    trunc = p("trunc.vhd")
    with open(os.path.join(SAMPLES, "vhd/qemu-dynamic.vhd"), "rb") as f:
        write(trunc, f.read()[:3 * MiB])
    broken = [
        (os.path.join(SAMPLES, "vmdk/govmomi-ttylinux-ovftool-streamOptimized-TRUNCATED.vmdk"), ""),
        (os.path.join(SAMPLES, "vhd/dfvfs-fat-differential-windows.vhd"), "parent"),
        (os.path.join(SAMPLES, "vmdk/virtmanager-esx-vmfs-descriptor.vmdk"), "ESX4.0-rhel4u8-32b-flat.vmdk"),
        (trunc, ""),
        (write(p("junk.img"), b"just some text\n" * 100), "not an XVA file"),
    ]
    for path, needle in broken:
        before = state()
        err = xe_fails("vm-import", "filename=" + path, needle=needle)
        assert len(err.strip().splitlines()) >= 1, err
        nothing_left(before, "a broken image (%s)" % path)


# ------------------------------------------------------------------------------------- URLs

def test_urls():
    d = os.path.dirname(ENV["rt_xva"])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=d, **kw)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        base = "http://127.0.0.1:%d/" % srv.server_address[1]
        name = os.path.basename(ENV["rt_xva"])
        (new,) = new_uuids(xe("vm-import", "filename=" + base + name).stdout)
        vbds, _ = devices(vm_ref(new))
        assert same_disk(ENV["rt_raw"][0], vbds["0"][1])
        before = state()
        xe_fails("vm-import", "url=" + base + "nope.xva", code="IMPORT_ERROR",
                 needle="404")
        nothing_left(before, "a failed download")
    finally:
        srv.shutdown()
    (new,) = new_uuids(xe("vm-import", "filename=file://" + p("rt-gzip.xva")).stdout)
    assert ok(S.VM.get_name_label(SESS, vm_ref(new))) == "rt-vm"
    xe_fails("vm-import", "url=gopher://x/y", code="INVALID_VALUE")
    # xe on another machine: HTTPS with a password, and plain HTTP.
    env = dict(os.environ, HOME=D.tmp)
    env.pop("HYPERXE_RUN_DIR", None)
    login = ["-s", "127.0.0.1", "-u", "root", "-pw", PASSWORD]
    x = p("remote.xva")
    r = subprocess.run([XE] + login + ["-p", str(D.tls_port), "vm-export",
                                       "uuid=" + ok(S.VM.get_uuid(SESS, ENV["rt_vm"])),
                                       "filename=" + x, "compress=zstd"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "Export succeeded" in r.stdout, r.stderr
    r = subprocess.run([XE] + login + ["-p", str(D.tls_port), "vm-import", "filename=" + x],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and UUID_RE.fullmatch(r.stdout.strip()), r.stderr
    r = subprocess.run([XE] + login + ["-p", str(D.port), "--nossl", "vm-import",
                                       "filename=" + os.path.join(SAMPLES, "vmdk",
                                                                  "qemu-streamOptimized.vmdk")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and UUID_RE.fullmatch(r.stdout.strip()), r.stderr


# ------------------------------------------------------------------------------- bad input

def test_bad_input():
    rnd = random.Random(5)
    data = X.disk_content(rnd, 3 * MiB + 1024, "dzd")
    raw = write(p("bad.raw"), data)

    def objs(size=len(data), **vm):
        return [("VM", "Ref:0", X.vm_rec("bad-vm", ["Ref:1"], [], metrics=X.NULL, **vm)),
                ("VBD", "Ref:1", X.vbd_rec("Ref:0", "Ref:2", "0", "xvda", bootable=True)),
                ("VDI", "Ref:2", X.vdi_rec("bad-disk", "Ref:3", size, ["Ref:1"])),
                ("SR", "Ref:3", X.sr_rec("sr"))]
    good_members = [("ova.xml", X.ova_xml(objs()))] + X.xs_disk("Ref:2", data)
    good = X.xs_tar(good_members)
    (new,) = new_uuids(xe("vm-import", "filename=" + write(p("good.xva"), good)).stdout)
    assert same_disk(raw, devices(vm_ref(new))[0]["0"][1])

    def tar(members):
        return X.xs_tar(members)

    flipped = bytearray(good)
    flipped[good.index(b"Ref:2/00000002") + 512 + 77] ^= 0x40
    old_ver = X.version(100, 0)
    no_mem = X.vm_rec("bad-vm", ["Ref:1"], [], metrics=X.NULL)
    del no_mem["memory_static_max"]
    past = good_members[:3] + [("Ref:2/00000900", data[:MiB]),
                               ("Ref:2/00000900.xxhash", X.xxh64_hex(data[:MiB]).encode())]
    cases = [
        ("truncated", good[:len(good) // 2], "IMPORT_ERROR_PREMATURE_EOF", None),
        ("wrong checksum", bytes(flipped), "IMPORT_ERROR_SOME_CHECKSUMS_FAILED", None),
        ("no ova.xml", tar(good_members[1:]), "IMPORT_ERROR_UNEXPECTED_FILE", "Ref:2/00000000"),
        ("ova.xml not first", tar([("README", b"hi")] + good_members),
         "IMPORT_ERROR_UNEXPECTED_FILE", "README"),
        ("unknown class", tar([("ova.xml", X.ova_xml(objs() + [("Frobnicator", "Ref:9", {})]))]
                              + good_members[1:]), "IMPORT_ERROR", "unknown class"),
        ("negative size", tar([("ova.xml", X.ova_xml(objs(-4096)))] + good_members[1:]),
         "IMPORT_ERROR", "absurd virtual size"),
        ("huge size", tar([("ova.xml", X.ova_xml(objs(10 ** 20)))] + good_members[1:]),
         "IMPORT_ERROR", "absurd virtual size"),
        ("odd size", tar([("ova.xml", X.ova_xml(objs(len(data) - 100)))] + good_members[1:]),
         "IMPORT_ERROR", "absurd virtual size"),
        ("data short of the size", tar([("ova.xml", X.ova_xml(objs(len(data) + 512)))]
                                       + good_members[1:]), "IMPORT_ERROR_PREMATURE_EOF", None),
        ("data beyond the size", tar([("ova.xml", X.ova_xml(objs(len(data) - 512)))]
                                     + good_members[1:]), "IMPORT_ERROR", "past the end"),
        ("block past the end", tar(past), "IMPORT_ERROR", "beyond its virtual size"),
        ("absolute member", tar(good_members[:3] + [("/etc/passwd", b"x"),
                                                    ("/etc/passwd.xxhash", b"0")]),
         "IMPORT_ERROR", "unsafe member name"),
        ("dot-dot member", tar(good_members[:3] + [("Ref:2/../../x", b"x"),
                                                   ("Ref:2/../../x.xxhash", b"0")]),
         "IMPORT_ERROR", "unsafe member name"),
        ("dot-dot disk id", tar([("ova.xml", X.ova_xml([(c, "../x" if i == "Ref:2" else i,
                                                         dict(r, VDI="../x") if c == "VBD" else r)
                                                        for c, i, r in objs()]))]),
         "IMPORT_ERROR", "cannot name a member"),
        ("newer version", tar([("ova.xml", X.ova_xml(objs(), old_ver))] + good_members[1:]),
         "IMPORT_INCOMPATIBLE_VERSION", None),
        ("dangling reference", tar([("ova.xml", X.ova_xml(objs()[:1] + [
            ("VBD", "Ref:1", X.vbd_rec("Ref:0", "Ref:77", "0", "xvda"))]))]),
         "IMPORT_ERROR_FAILED_TO_FIND_OBJECT", "Ref:77"),
        ("missing field", tar([("ova.xml", X.ova_xml([("VM", "Ref:0", no_mem)] + objs()[1:]))]
                              + good_members[1:]), "IMPORT_ERROR", "memory_static_max"),
        ("not XML-RPC", tar([("ova.xml", b"<value><struct><member>")] + good_members[1:]),
         "IMPORT_ERROR", "ova.xml"),
        ("gzip cut short", __import__("gzip").compress(good)[:40000],
         "IMPORT_ERROR", "truncated"),
    ]
    for what, content, code, needle in cases:
        x = write(p("bad-%s.xva" % what.replace(" ", "-")), content)
        before = state()
        xe_fails("vm-import", "filename=" + x, code=code, needle=needle)
        nothing_left(before, what)
    # force=true accepts the damaged block, as xapi does.
    (new,) = new_uuids(xe("vm-import", "filename=" + p("bad-wrong-checksum.xva"),
                          "force=true").stdout)
    assert not same_disk(raw, devices(vm_ref(new))[0]["0"][1])
    # Garbage straight to the handler (xe refuses to send what is not an XVA).
    before = state()
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=60)
    junk = bytes(rnd.randrange(1, 256) | 1 for _ in range(100000))
    c.request("PUT", "/import?session_id=" + SESS, body=junk)
    r = c.getresponse()
    body = r.read()
    assert r.status == 500 and b"IMPORT_ERROR" in body, (r.status, body)
    c.close()
    nothing_left(before, "garbage")
    # The upload stopping half-way (the client dies).
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=60)
    c.putrequest("PUT", "/import?session_id=" + SESS)
    c.putheader("Content-Length", str(len(good)))
    c.endheaders()
    c.send(good[:len(good) - 100000])
    time.sleep(0.5)
    c.sock.close()
    nothing_left(before, "a cut-off upload")


# -------------------------------------------------------------------------------- cancel

def big_xva(name, mib):
    rnd = random.Random(mib)
    data = rnd.randbytes(mib * MiB)
    objs = [("VM", "Ref:0", X.vm_rec(name, ["Ref:1"], [], metrics=X.NULL)),
            ("VBD", "Ref:1", X.vbd_rec("Ref:0", "Ref:2", "0", "xvda", bootable=True)),
            ("VDI", "Ref:2", X.vdi_rec(name, "Ref:3", len(data), ["Ref:1"])),
            ("SR", "Ref:3", X.sr_rec("sr"))]
    return X.xva(objs, {"Ref:2": data}), data


def wait_task(task, states, timeout=30):
    for _ in range(timeout * 10):
        st = ok(S.task.get_status(SESS, task))
        if st in states:
            return st
        time.sleep(0.1)
    raise AssertionError("task %s still %s" % (task, st))


def test_cancel_import():
    data, _ = big_xva("cancel-me", 96)
    before = state()
    task = ok(S.task.create(SESS, "VM import", ""))
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=60)
    c.putrequest("PUT", "/import?session_id=%s&task_id=%s" % (SESS, task))
    c.putheader("Content-Length", str(len(data)))
    c.endheaders()
    c.send(data[:24 * MiB])
    # Progress shows in the task while the data comes.
    for _ in range(100):
        if float(ok(S.task.get_progress(SESS, task))) > 0:
            break
        time.sleep(0.1)
    assert float(ok(S.task.get_progress(SESS, task))) > 0
    ok(S.task.cancel(SESS, task))
    # The client stalls; the import stops anyway and removes what it made.
    nothing_left(before, "a cancelled import (client still connected)")
    c.sock.close()
    assert wait_task(task, ("cancelled", "failure")) == "cancelled"
    assert ok(S.task.get_error_info(SESS, task))[0] == "TASK_CANCELLED"
    nothing_left(before, "a cancelled import")


def test_cancel_export():
    data, _ = big_xva("export-cancel", 128)
    (new,) = new_uuids(xe("vm-import", "filename=" + write(p("big.xva"), data)).stdout)
    vm = vm_ref(new)
    task = ok(S.task.create(SESS, "Export of VM", new))
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=60)
    c.request("GET", "/export?session_id=%s&task_id=%s&uuid=%s" % (SESS, task, new))
    r = c.getresponse()
    assert r.status == 200
    got = len(r.read(2 * MiB))
    ok(S.task.cancel(SESS, task))
    try:
        while True:
            b = r.read(MiB)
            if not b:
                break
            got += len(b)
    except (http.client.HTTPException, OSError):
        pass
    c.close()
    assert got < len(data), "the export went to its end despite the cancel"
    assert wait_task(task, ("cancelled", "failure")) == "cancelled"
    for _ in range(50):
        if "export" in ok(S.VM.get_allowed_operations(SESS, vm)):
            break
        time.sleep(0.1)
    assert "export" in ok(S.VM.get_allowed_operations(SESS, vm)), "the VM is still marked busy"
    # And xe task-cancel on a task that is not running says so.
    r = xe("task-cancel", "uuid=" + ok(S.task.get_uuid(SESS, task)), check=False)
    assert r.returncode != 0


# ----------------------------------------------------------------------------- both paths

STREAM = {"HYPERXE_XE_STREAM": "1"}


def fd_request(method, query, fds):
    """An Upgrade request on the unix socket, then fds with one byte; returns
    (status, the outcome line or the reply)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(D.run_dir, "hyperxed.sock"))
    s.settimeout(120)
    extra = "Content-Length: 0\r\n" if method == "PUT" else ""
    s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: hyperxe-fd\r\n"
               "Connection: Upgrade\r\n%s\r\n" % (method, query, extra)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        if not b:
            break
        head += b
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status != 101:
        s.close()
        return status, head.decode("utf-8", "replace")
    socket.send_fds(s, [b"F"], fds)
    line = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        line += b
    s.close()
    return status, line.decode().strip()


def daemon_log():
    with open(os.path.join(D.state_dir, "log")) as f:
        return f.read()


def test_both_paths():
    vm = ENV["rt_vm"]
    vm_uuid = ok(S.VM.get_uuid(SESS, vm))
    raw0, raw1 = ENV["rt_raw"]
    for name, env in (("fd", {"HYPERXE_XE_STREAM": "0"}), ("stream", STREAM)):
        for comp in ("false", "zstd"):
            x = p("both-%s-%s.xva" % (name, comp))
            mark = len(daemon_log())
            r = D.xe("vm-export", "vm=" + vm_uuid, "filename=" + x, "compress=" + comp,
                     env=env)
            assert "Export succeeded" in r.stdout, r.stdout
            log = daemon_log()[mark:]
            assert ("into a local file" in log) == (name == "fd"), (name, log)
            doc, _ = check_ova(x, vm_uuid)
            src = {}
            for o in doc["objects"]:
                if o["class"] == "VDI" and o["snapshot"]["name_label"] in ("rt-disk0", "rt-disk1"):
                    src[o["id"]] = raw0 if o["snapshot"]["name_label"] == "rt-disk0" else raw1
            xva_check.check(x, src)
            # ... and back in, on the same path.
            (new,) = new_uuids(D.xe("vm-import", "filename=" + x, env=env).stdout)
            vbds, _ = devices(vm_ref(new))
            assert same_disk(raw0, vbds["0"][1]) and same_disk(raw1, vbds["1"][1]), (name, comp)
            ok(S.VM.destroy(SESS, vm_ref(new)))
            for u in ("0", "1"):
                ok(S.VDI.destroy(SESS, vbds[u][1]))
    # Exporting over an existing, longer file replaces its content.
    x = p("both-over.xva")
    write(x, b"\xff" * (64 * MiB))
    D.xe("vm-export", "vm=" + vm_uuid, "filename=" + x, env={"HYPERXE_XE_STREAM": "0"})
    check_ova(x, vm_uuid)
    assert os.path.getsize(x) < 64 * MiB
    # A special file cannot be handed over: xe sends the bytes.
    xe("vm-export", "vm=" + vm_uuid, "filename=/dev/null")
    # Bad files on the fd path: a clear error, nothing left behind.
    before = state()
    bad = write(p("both-bad.xva"), b"ova.xml".ljust(512, b"\0") + b"garbage" * 1000)
    xe_fails("vm-import", "filename=" + bad)
    nothing_left(before, "a bad file handed over")
    # The descriptor checks: an export into a read-only descriptor, an import from a
    # pipe; the VM stays free and the tasks say why.
    q = "session_id=%s&uuid=%s" % (SESS, vm_uuid)
    ro = os.open(x, os.O_RDONLY)
    task = ok(S.task.create(SESS, "Export of VM", ""))
    st, line = fd_request("GET", "/export?%s&task_id=%s" % (q, task), [ro])
    os.close(ro)
    assert st == 101 and line.startswith("ERROR "), (st, line)
    assert "not open for writing" in " ".join(ok(S.task.get_error_info(SESS, task)))
    assert "export" in ok(S.VM.get_allowed_operations(SESS, vm))
    rp, wp = os.pipe()
    os.close(wp)
    task = ok(S.task.create(SESS, "VM import", ""))
    st, line = fd_request("PUT", "/import?session_id=%s&task_id=%s" % (SESS, task), [rp])
    os.close(rp)
    assert st == 101 and line.startswith("ERROR "), (st, line)
    assert "not a regular file" in " ".join(ok(S.task.get_error_info(SESS, task)))
    # Over TCP the switch is refused (the bytes must travel).
    for method, path in (("GET", "/export?" + q), ("PUT", "/import?session_id=" + SESS)):
        c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=60)
        c.request(method, path, headers={"Upgrade": "hyperxe-fd", "Connection": "Upgrade",
                                         "Content-Length": "0"})
        resp = c.getresponse()
        body = resp.read().decode()
        c.close()
        assert resp.status == 403 and "PERMISSION_DENIED" in body, (method, resp.status, body)
    nothing_left(before, "refused hand-overs")


# ----------------------------------------------------------------------------- disk full

def sr_full():
    """A 48 MiB SR filled by an import of a 96 MiB disk: SR_FULL, nothing left."""
    global D, TMP
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root (tmpfs mount)")
        return 0
    TMP = tempfile.mkdtemp(prefix="hx-xva-full-")
    mnt = p("small-sr")
    os.makedirs(mnt)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt], check=True)
    try:
        with Daemon() as d:
            D = d
            setup()
            sr = xe("sr-create", "name-label=small", "type=ext", "device-config:path=" + mnt).stdout.strip()
            srref = ok(S.SR.get_by_uuid(SESS, sr))
            data, _ = big_xva("too-big", 96)
            x = write(p("too-big.xva"), data)
            before = state()
            xe_fails("vm-import", "filename=" + x, "sr-uuid=" + sr, code="SR_FULL")
            nothing_left(before, "an import into a full SR")
            assert not [f for f in os.listdir(mnt) if f.endswith(".qcow2")], os.listdir(mnt)
            # The SR still works afterwards.
            small, _ = big_xva("fits", 8)
            (new,) = new_uuids(xe("vm-import", "filename=" + write(p("fits.xva"), small),
                                  "sr-uuid=" + sr).stdout)
            vdi = devices(vm_ref(new))[0]["0"][1]
            assert ok(S.VDI.get_SR(SESS, vdi)) == srref
            # An export into a file system too small for it, on both paths of xe:
            # an error, no file left, the VM free again.
            out_dir = p("small-out")
            os.makedirs(out_dir)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", out_dir], check=True)
            try:
                (big,) = new_uuids(xe("vm-import", "filename=" + x).stdout)
                for env in ({"HYPERXE_XE_STREAM": "0"}, {"HYPERXE_XE_STREAM": "1"}):
                    out = os.path.join(out_dir, "big.xva")
                    r = D.xe("vm-export", "vm=" + big, "filename=" + out, check=False, env=env)
                    assert r.returncode != 0, (env, r.stdout)
                    assert not os.listdir(out_dir), (env, os.listdir(out_dir))
                    assert "export" in ok(S.VM.get_allowed_operations(SESS, vm_ref(big))), env
            finally:
                subprocess.run(["umount", "-l", out_dir])
        print("1..1\nok 1 - SR_FULL and nothing left behind")
        return 0
    except Exception:
        import traceback
        traceback.print_exc(file=sys.stdout)
        print("1..1\nnot ok 1 - SR_FULL and nothing left behind")
        return 1
    finally:
        subprocess.run(["umount", "-l", mnt])
        shutil.rmtree(TMP, ignore_errors=True)


def main():
    global D, TMP
    if sys.argv[1:] == ["sr_full"]:
        sys.exit(sr_full())
    TMP = tempfile.mkdtemp(prefix="hx-xva-")
    try:
        with Daemon() as d:
            D = d
            setup()
            run_tests([test_round_trip, test_templates_metadata_and_http, test_snapshots,
                       test_power_states, test_both_paths,
                       test_xenserver_files,
                       test_version1, test_disk_images, test_urls, test_bad_input,
                       test_cancel_import, test_cancel_export])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
