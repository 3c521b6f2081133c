"""Snapshots, checkpoints, reverts, clones, copies and templates against a
real hyperxed with the simulated VMM (no QEMU; suite "snapshots").

Disk content is written and checked on the host with qemu-io and qemu-img
(the independent oracles): a marker is written into a VM's disk, the VM is
snapshotted, another marker written; the snapshot keeps the first, a revert
brings it back, later snapshots stay valid, and deleting snapshots merges
the chains back with no file left over. Records are checked field by field
as XenServer keeps them (is-a-snapshot, snapshot-of, snapshot-time,
snapshots, parent, children, and the same for VDIs). Bad input gets a clear
error and changes nothing; injected failures (HYPERXE_FAIL_AT) leave
nothing half-made.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Daemon, fails, ok, run_tests  # noqa: E402

D = None
TMP = None
MiB = 1 << 20
SIZE = 16 * MiB


def xe(*args, **kw):
    return D.xe(*args, **kw)


def xe_out(*args):
    return xe(*args).stdout.strip()


def xe_fails(*args, code=None):
    r = xe(*args, check=False)
    assert r.returncode != 0, "xe %s should have failed: %s" % (" ".join(args), r.stdout)
    if code:
        assert r.stderr.startswith(code), (code, r.stderr)
    return r.stderr


def local_sr():
    return xe_out("sr-list", "name-label=Local storage", "--minimal")


def sr_dir(sr_uuid):
    pbd = xe_out("pbd-list", "sr-uuid=" + sr_uuid, "--minimal")
    return xe_out("pbd-param-get", "uuid=" + pbd, "param-name=device-config", "param-key=path")


def vm_param(uuid, name, key=None):
    args = ["vm-param-get", "uuid=" + uuid, "param-name=" + name]
    if key:
        args.append("param-key=" + key)
    return xe_out(*args)


def vdi_param(uuid, name):
    return xe_out("vdi-param-get", "uuid=" + uuid, "param-name=" + name)


def depth(vdi):
    sm = vdi_param(vdi, "sm-config")
    return int(sm.split("chain-depth: ")[1].split(";")[0])


def vdi_path(vdi):
    return os.path.join(sr_dir(xe_out("vdi-param-get", "uuid=" + vdi, "param-name=sr-uuid")),
                        vdi + ".qcow2")


def qio(path, cmd, ro=False):
    args = ["qemu-io", "-f", "qcow2"] + (["-r", "-U"] if ro else []) + ["-c", cmd, path]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def write_marker(vdi, byte, off=0, length=64 * 1024):
    qio(vdi_path(vdi), "write -P 0x%02x %d %d" % (byte, off, length))


def has_marker(vdi, byte, off=0, length=64 * 1024):
    out = qio(vdi_path(vdi), "read -P 0x%02x %d %d" % (byte, off, length), ro=True)
    return "Pattern verification failed" not in out


def first_bytes(vdi, offsets):
    """The first byte at each offset of the VDI, read by one qemu-io."""
    args = ["qemu-io", "-f", "qcow2", "-r", "-U"]
    for off in offsets:
        args += ["-c", "read -v %d 1" % off]
    r = subprocess.run(args + [vdi_path(vdi)], capture_output=True, text=True)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    got = [int(line.split()[1], 16) for line in r.stdout.splitlines()
           if line[:8].strip() and line[8:9] == ":" and len(line.split()) > 1]
    assert len(got) == len(offsets), r.stdout
    return got


def vm_disks(vm):
    """The VDIs of the VM's disks (VBD type Disk), by userdevice."""
    out = {}
    for vbd in filter(None, xe_out("vbd-list", "vm-uuid=" + vm, "type=Disk",
                                   "--minimal").split(",")):
        dev = xe_out("vbd-param-get", "uuid=" + vbd, "param-name=userdevice")
        out[dev] = xe_out("vbd-param-get", "uuid=" + vbd, "param-name=vdi-uuid")
    return out


def state():
    """Everything a failed operation must leave as it was."""
    vms = sorted(filter(None, xe_out("vm-list", "params=uuid", "--minimal").split(",")))
    snaps = sorted(filter(None, xe_out("snapshot-list", "--minimal").split(",")))
    vdis = sorted(filter(None, xe_out("vdi-list", "--minimal").split(",")))
    files = sorted(os.listdir(sr_dir(local_sr())))
    return vms, snaps, vdis, files


def check_sr_clean(sr=None):
    """No orphan or temporary file: exactly one file per VDI record, each sound."""
    sr = sr or local_sr()
    d = sr_dir(sr)
    files = sorted(os.listdir(d))
    vdis = sorted(filter(None, xe_out("vdi-list", "sr-uuid=" + sr, "--minimal").split(",")))
    assert files == sorted(v + ".qcow2" for v in vdis), (files, vdis)
    for f in files:
        r = subprocess.run(["qemu-img", "check", "-U", os.path.join(d, f)], capture_output=True,
                           text=True)
        assert r.returncode == 0, (f, r.stdout, r.stderr)


def new_vm(name, disks=1, vif=True, cd=False):
    vm = xe_out("vm-install", "template=Other install media", "new-name-label=" + name)
    for i in range(disks):
        xe("vm-disk-add", "uuid=" + vm, "disk-size=%d" % SIZE, "device=%d" % i)
    if vif:
        net = xe_out("network-list", "bridge=xenbr0", "--minimal")
        xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0")
    if cd:
        xe("vm-cd-add", "uuid=" + vm, "cd-name=guest-tools.iso", "device=3")
    return vm


def destroy_vm(vm):
    for s in filter(None, vm_param(vm, "snapshots").replace(";", " ").split()):
        xe("snapshot-uninstall", "uuid=" + s, "--force")
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- tests ------------------------------------------------------------------------------------

def test_snapshot_of_halted_vm_records():
    vm = new_vm("rec", disks=2, cd=True)
    disk = vm_disks(vm)["0"]
    write_marker(disk, 0xA1)
    t0 = time.time()
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=first",
                  "new-name-description=before the change")
    # The snapshot's record, as XenServer keeps it.
    assert vm_param(snap, "is-a-snapshot") == "true"
    assert vm_param(snap, "is-a-template") == "true"
    assert vm_param(snap, "snapshot-of") == vm
    assert vm_param(snap, "name-label") == "first"
    assert vm_param(snap, "name-description") == "before the change"
    assert vm_param(snap, "power-state") == "halted"
    info = vm_param(snap, "snapshot-info")
    assert "power-state-at-snapshot: Halted" in info, info
    assert "disk-snapshot-type: crash_consistent" in info, info
    st = time.mktime(time.strptime(vm_param(snap, "snapshot-time"), "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(st - time.timezone - t0) < 60, (st, t0)
    assert vm_param(vm, "snapshots") == snap
    assert vm_param(vm, "parent") == snap
    assert vm_param(snap, "children") == vm
    assert xe_out("snapshot-list", "snapshot-of=" + vm, "--minimal") == snap
    assert xe_out("template-list", "uuid=" + snap, "--minimal") == ""
    # Its disks: snapshots of the VM's, with their own records; the CD is the same ISO.
    sdisks = vm_disks(snap)
    assert sorted(sdisks) == ["0", "1"]
    for dev, sv in sdisks.items():
        assert sv != vm_disks(vm)[dev]
        assert vdi_param(sv, "is-a-snapshot") == "true"
        assert vdi_param(sv, "snapshot-of") == vm_disks(vm)[dev]
        assert vdi_param(vm_disks(vm)[dev], "snapshots") == sv
        assert vdi_param(sv, "snapshot-time") != "19700101T00:00:00Z"
    cd = xe_out("vbd-list", "vm-uuid=" + snap, "type=CD", "params=vdi-name-label", "--minimal")
    assert cd == "guest-tools.iso", cd
    vbd = xe_out("vbd-list", "vm-uuid=" + snap, "userdevice=0", "--minimal")
    assert xe_out("vbd-param-get", "uuid=" + vbd, "param-name=other-config") .startswith("owner")
    # The VIF keeps its MAC; the snapshot is not running anything.
    mac = xe_out("vif-list", "vm-uuid=" + vm, "params=MAC", "--minimal")
    assert xe_out("vif-list", "vm-uuid=" + snap, "params=MAC", "--minimal") == mac
    assert "revert" in vm_param(snap, "allowed-operations")
    fails_start = xe_fails("vm-start", "uuid=" + snap)
    assert "No matching VMs" in fails_start or "VM_IS" in fails_start, fails_start
    # Content: the snapshot keeps the first marker, the VM gets the second.
    write_marker(disk, 0xB2)
    assert has_marker(sdisks["0"], 0xA1)
    assert has_marker(disk, 0xB2)
    out = xe_out("snapshot-disk-list", "uuid=" + snap)
    assert out.count("VBD:") == 2 and sdisks["0"] in out, out
    check_sr_clean()
    destroy_vm(vm)
    check_sr_clean()


def test_revert_halted_keeps_later_snapshots():
    vm = new_vm("revert")
    disk0 = vm_disks(vm)["0"]
    write_marker(disk0, 0x11)
    s1 = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s1")
    write_marker(disk0, 0x22)
    s2 = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s2")
    write_marker(disk0, 0x33)
    mac = xe_out("vif-list", "vm-uuid=" + vm, "params=MAC", "--minimal")
    xe("vm-param-set", "uuid=" + vm, "memory-static-max=512MiB", "memory-dynamic-max=512MiB",
       "memory-dynamic-min=512MiB")
    xe("vm-param-set", "uuid=" + vm, "name-label=revert-renamed")
    xe("snapshot-revert", "snapshot-uuid=" + s1)
    disk = vm_disks(vm)["0"]
    assert disk != disk0
    assert has_marker(disk, 0x11)
    assert xe_out("vdi-list", "uuid=" + disk0, "--minimal") == ""  # replaced, destroyed
    assert vm_param(vm, "parent") == s1
    assert vm_param(vm, "power-state") == "halted"
    assert vm_param(vm, "name-label") == "revert-renamed"  # a VM keeps its name
    assert vm_param(vm, "memory-static-max") == str(256 * MiB)  # settings come back
    assert xe_out("vif-list", "vm-uuid=" + vm, "params=MAC", "--minimal") == mac
    # Later snapshots stay valid and now hang from the VM's new disk.
    s2disk = vm_disks(s2)["0"]
    assert has_marker(s2disk, 0x22)
    assert vdi_param(s2disk, "snapshot-of") == disk
    assert sorted(vm_param(vm, "snapshots").split("; ")) == sorted([s1, s2])
    # Revert forward to s2, then change and revert to s1 again.
    xe("snapshot-revert", "uuid=" + s2)
    assert has_marker(vm_disks(vm)["0"], 0x22)
    write_marker(vm_disks(vm)["0"], 0x44)
    xe("snapshot-revert", "snapshot-uuid=" + s1)
    assert has_marker(vm_disks(vm)["0"], 0x11)
    assert has_marker(vm_disks(s1)["0"], 0x11) and has_marker(vm_disks(s2)["0"], 0x22)
    check_sr_clean()
    destroy_vm(vm)
    check_sr_clean()


def test_revert_after_vm_destroyed():
    """As xapi does: reverting a snapshot whose VM record was destroyed
    (VM.destroy, xe vm-destroy) brings the VM back, with its UUID and name and
    the snapshot's disks and VIFs."""
    vm = new_vm("gone")
    disk0 = vm_disks(vm)["0"]
    write_marker(disk0, 0x5A)
    mac = xe_out("vif-list", "vm-uuid=" + vm, "params=MAC", "--minimal")
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=keep")
    write_marker(disk0, 0x6B)
    xe("vm-destroy", "uuid=" + vm)
    assert xe_out("vm-list", "uuid=" + vm, "--minimal") == ""
    assert vm_param(snap, "snapshot-of") == "<not in database>"
    xe("vdi-destroy", "uuid=" + disk0)  # the VM's own disk, left by vm-destroy
    xe("snapshot-revert", "snapshot-uuid=" + snap)
    assert xe_out("vm-list", "uuid=" + vm, "--minimal") == vm
    assert vm_param(vm, "name-label") == "gone"
    assert vm_param(vm, "power-state") == "halted"
    assert vm_param(vm, "is-a-snapshot") == "false" and vm_param(vm, "is-a-template") == "false"
    assert vm_param(snap, "snapshot-of") == vm
    assert vm_param(vm, "snapshots") == snap
    disk = vm_disks(vm)["0"]
    assert has_marker(disk, 0x5A)  # what it held at the snapshot, not 0x6B
    assert xe_out("vif-list", "vm-uuid=" + vm, "params=MAC", "--minimal") == mac
    destroy_vm(vm)
    check_sr_clean()


def test_running_vm_snapshot_checkpoint_revert():
    vm = new_vm("live", disks=2)
    xe("vm-start", "uuid=" + vm)
    assert vm_param(vm, "power-state") == "running"
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=live-snap")
    assert vm_param(vm, "power-state") == "running"
    assert vm_param(snap, "power-state") == "halted"
    assert "power-state-at-snapshot: Running" in vm_param(snap, "snapshot-info")
    for dev, sv in vm_disks(snap).items():
        assert vdi_param(sv, "snapshot-of") == vm_disks(vm)[dev]
    # Checkpoint: disks and memory; the VM runs on.
    ck = xe_out("vm-checkpoint", "uuid=" + vm, "new-name-label=ck")
    assert vm_param(vm, "power-state") == "running"
    assert vm_param(ck, "power-state") == "suspended"
    mem = vm_param(ck, "suspend-VDI-uuid")
    assert vdi_param(mem, "type") == "Suspend"
    assert vm_param(ck, "parent") == snap and vm_param(vm, "parent") == ck
    # Revert to the checkpoint: the VM is resumed, running.
    xe("snapshot-revert", "snapshot-uuid=" + ck)
    assert vm_param(vm, "power-state") == "running"
    assert vm_param(vm, "parent") == ck
    assert vm_param(vm, "suspend-VDI-uuid") == "<not in database>"
    # Snapshots deleted under the running VM: its chains merge back at once, except into
    # the image the VM (here: the resumed checkpoint) started with, which waits until the
    # VM stops.
    d0 = {depth(v) for v in vm_disks(vm).values()}
    extra = [xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=x%d" % i) for i in range(3)]
    assert {depth(v) for v in vm_disks(vm).values()} == {d + 3 for d in d0}
    for x in extra:
        xe("snapshot-uninstall", "uuid=" + x, "--force")
    assert {depth(v) for v in vm_disks(vm).values()} == {d + 1 for d in d0}
    assert "was not added by a snapshot" in D.log()
    check_sr_clean()
    # Revert to the disk snapshot of the running VM: the VM is stopped first.
    xe("snapshot-revert", "snapshot-uuid=" + snap)
    assert vm_param(vm, "power-state") == "halted"
    # Paused VMs can be snapshotted too; a paused VM's checkpoint holds its disks only.
    xe("vm-start", "uuid=" + vm)
    xe("vm-pause", "uuid=" + vm)
    ps = xe_out("vm-checkpoint", "uuid=" + vm, "new-name-label=paused")
    assert vm_param(ps, "power-state") == "halted"
    assert vm_param(vm, "power-state") == "paused"
    xe("vm-shutdown", "uuid=" + vm, "--force")
    check_sr_clean()
    destroy_vm(vm)
    check_sr_clean()


def test_bad_input_changes_nothing():
    vm = new_vm("bad")
    other = new_vm("other")
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s")
    osnap = xe_out("vm-snapshot", "uuid=" + other, "new-name-label=os")
    before = state()
    s, sess = D.login()
    vmref = ok(s.VM.get_by_uuid(sess, vm))
    snapref = ok(s.VM.get_by_uuid(sess, snap))
    # A checkpoint or a quiesced snapshot of a halted VM.
    fails(s.VM.checkpoint(sess, vmref, "x"), "VM_BAD_POWER_STATE")
    p = fails(s.VM.snapshot_with_quiesce(sess, vmref, "x"), "VM_BAD_POWER_STATE")
    assert p == [vmref, "running", "halted"], p
    # A snapshot of a snapshot, of a template.
    assert fails(s.VM.snapshot(sess, snapref, "x"), "VM_IS_SNAPSHOT") == [snapref, "snapshot"]
    tmpl = ok(s.VM.get_by_name_label(sess, "Other install media"))[0]
    fails(s.VM.snapshot(sess, tmpl, "x"), "VM_IS_TEMPLATE")
    # Reverting to something that is not a snapshot; xe's vm= names another VM.
    fails(s.VM.revert(sess, vmref), "REVERT_ONLY_ALLOWED_ON_SNAPSHOT")
    err = xe_fails("snapshot-revert", "snapshot-uuid=" + osnap, "vm=" + vm)
    assert "not of " + vm in err, err
    xe_fails("snapshot-revert", "snapshot-uuid=" + vm)
    # A quiesced snapshot without an agent.
    xe("vm-start", "uuid=" + vm)
    before_running = state()
    err = xe_fails("vm-snapshot-with-quiesce", "uuid=" + vm, "new-name-label=q",
                   code="VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED")
    assert "agent" in err
    assert state() == before_running
    assert vm_param(vm, "power-state") == "running"
    xe("vm-shutdown", "uuid=" + vm, "--force")
    # A blocked operation; a disk whose writes are thrown away (on-boot=reset).
    xe("vm-param-set", "uuid=" + vm, "blocked-operations:snapshot=no")
    fails(s.VM.snapshot(sess, vmref, "x"), "OPERATION_BLOCKED")
    xe("vm-param-remove", "uuid=" + vm, "param-name=blocked-operations", "param-key=snapshot")
    xe("vdi-param-set", "uuid=" + vm_disks(vm)["0"], "on-boot=reset")
    fails(s.VM.snapshot(sess, vmref, "x"), "VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION")
    xe("vdi-param-set", "uuid=" + vm_disks(vm)["0"], "on-boot=persist")
    # Wrong arity and types are refused before anything runs.
    fails(s.VM.revert(sess, snapref, "x"), "MESSAGE_PARAMETER_COUNT_MISMATCH")
    fails(s.VM.snapshot(sess, vmref, "x", ["OpaqueRef:nope"]), "HANDLE_INVALID")
    assert state() == before
    assert vm_param(vm, "parent") == snap
    destroy_vm(vm)
    destroy_vm(other)
    check_sr_clean()


def test_ignore_vdis_and_uninstall():
    vm = new_vm("ign", disks=2)
    d1 = vm_disks(vm)["1"]
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s", "ignore-vdi-uuids=" + d1)
    assert sorted(vm_disks(snap)) == ["0"]
    assert vdi_param(d1, "snapshots") == ""
    # snapshot-destroy keeps the storage; snapshot-uninstall removes it.
    sv = vm_disks(snap)["0"]
    xe("snapshot-destroy", "uuid=" + snap)
    assert xe_out("snapshot-list", "uuid=" + snap, "--minimal") == ""
    assert vdi_param(sv, "is-a-snapshot") == "true"
    xe("vdi-destroy", "uuid=" + sv)
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s2")
    svs = list(vm_disks(snap).values())
    e = dict(os.environ, HYPERXE_RUN_DIR=D.run_dir, HOME=D.tmp)
    out = subprocess.run([os.environ.get("XE", "xe"), "snapshot-uninstall", "uuid=" + snap],
                         env=e, input="no\n", capture_output=True, text=True, timeout=60)
    assert "about to be destroyed" in out.stdout and "Aborted" in out.stdout, out.stdout
    xe("snapshot-uninstall", "snapshot-uuid=" + snap, "--force")
    for sv in svs:
        assert xe_out("vdi-list", "uuid=" + sv, "--minimal") == ""
    # Everything merged back: the VM's disks are standalone files again.
    for v in vm_disks(vm).values():
        assert depth(v) == 1, vdi_param(v, "sm-config")
    check_sr_clean()
    destroy_vm(vm)


def test_many_snapshots_deleted_in_random_order():
    vm = new_vm("many", vif=False)
    disk = vm_disks(vm)["0"]
    snaps = []
    for i in range(20):
        write_marker(disk, 0x40 + i, off=i * 256 * 1024)
        snaps.append(xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=n%d" % i))
    write_marker(disk, 0x7f, off=20 * 256 * 1024)
    assert depth(vm_disks(vm)["0"]) == 21

    offsets = [k * 256 * 1024 for k in range(21)]

    def check(idx):
        want = [0x40 + k if k <= idx else 0 for k in range(21)]
        assert first_bytes(vm_disks(snaps[idx])["0"], offsets) == want, idx

    order = list(range(20))
    random.Random(7).shuffle(order)
    alive = set(range(20))
    for n, idx in enumerate(order):
        xe("snapshot-uninstall", "uuid=" + snaps[idx], "--force")
        alive.discard(idx)
        for k in sorted(alive)[:3] + sorted(alive)[-2:]:
            check(k)
        if n % 5 == 4:
            check_sr_clean()
    disk = vm_disks(vm)["0"]
    assert first_bytes(disk, offsets) == [0x40 + k for k in range(20)] + [0x7f]
    assert has_marker(disk, 0x7f, off=20 * 256 * 1024)
    assert depth(disk) == 1
    check_sr_clean()
    destroy_vm(vm)


def test_clone_copy_and_templates():
    vm = new_vm("orig")
    disk = vm_disks(vm)["0"]
    write_marker(disk, 0x5A)
    xe("vm-param-set", "uuid=" + vm, "other-config:mac_seed=" + "1" * 8 + "-1111-1111-1111-" +
       "1" * 12)
    mac = xe_out("vif-list", "vm-uuid=" + vm, "params=MAC", "--minimal")
    clone = xe_out("vm-clone", "uuid=" + vm, "new-name-label=clone",
                   "new-name-description=cloned")
    assert clone != vm
    assert vm_param(clone, "name-description") == "cloned"
    assert vm_param(clone, "parent") == "<not in database>"
    assert vm_param(clone, "is-a-snapshot") == "false"
    cmac = xe_out("vif-list", "vm-uuid=" + clone, "params=MAC", "--minimal")
    assert cmac and cmac != mac
    assert vm_param(clone, "other-config", "mac_seed") != vm_param(vm, "other-config", "mac_seed")
    cdisk = vm_disks(clone)["0"]
    assert cdisk != disk and depth(cdisk) == 2
    # A full copy into another SR: a standalone file.
    d2 = os.path.join(TMP, "sr2")
    sr2 = xe_out("sr-create", "name-label=second", "type=ext", "device-config:path=" + d2)
    copy = xe_out("vm-copy", "uuid=" + vm, "new-name-label=copy", "sr-uuid=" + sr2)
    kdisk = vm_disks(copy)["0"]
    assert vdi_param(kdisk, "sr-uuid") == sr2
    assert depth(kdisk) == 1 and "vhd-parent" not in vdi_param(kdisk, "sm-config")
    kmac = xe_out("vif-list", "vm-uuid=" + copy, "params=MAC", "--minimal")
    assert len({mac, cmac, kmac}) == 3
    subprocess.run(["qemu-img", "compare", "-U", vdi_path(disk), vdi_path(kdisk)], check=True,
                   capture_output=True)
    # Changes in one never reach another.
    write_marker(cdisk, 0xC1)
    write_marker(kdisk, 0xC2)
    write_marker(disk, 0xC3)
    assert has_marker(cdisk, 0xC1) and has_marker(kdisk, 0xC2) and has_marker(disk, 0xC3)
    # VM to template and back; a template fast-clones without its chain growing.
    xe("vm-param-set", "uuid=" + vm, "is-a-template=true")
    assert vm in xe_out("template-list", "--minimal")
    clones = [xe_out("vm-clone", "uuid=" + vm, "new-name-label=t%d" % i) for i in range(8)]
    # (the template's disk holds data of its own: its first clone put a base copy under it)
    depths = {depth(vm_disks(c)["0"]) for c in clones}
    assert depths == {depth(vm_disks(vm)["0"])}, depths
    assert len({xe_out("vif-list", "vm-uuid=" + c, "params=MAC", "--minimal")
                for c in clones}) == len(clones)
    fails_start = xe_fails("vm-start", "uuid=" + vm)
    assert fails_start
    xe("vm-param-set", "uuid=" + vm, "is-a-template=false")
    # A snapshot cloned or copied is a template.
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s")
    st = xe_out("snapshot-clone", "uuid=" + snap, "new-name-label=from-snap")
    assert vm_param(st, "is-a-template") == "true" and vm_param(st, "is-a-snapshot") == "false"
    assert has_marker(vm_disks(st)["0"], 0xC3)
    sc = xe_out("snapshot-copy", "uuid=" + snap, "new-name-label=copied", "sr-uuid=" + sr2)
    assert vm_param(sc, "is-a-template") == "true"
    assert depth(vm_disks(sc)["0"]) == 1
    assert has_marker(vm_disks(sc)["0"], 0xC3)
    for v in clones + [clone, copy, st, sc]:
        xe("vm-uninstall", "uuid=" + v, "--force") if vm_param(v, "is-a-template") == "false" \
            else xe("template-uninstall", "template-uuid=" + v, "--force")
    destroy_vm(vm)
    check_sr_clean()
    check_sr_clean(sr2)
    assert xe_out("vdi-list", "sr-uuid=" + sr2, "--minimal") == ""


def test_export_to_template():
    vm = new_vm("exp")
    write_marker(vm_disks(vm)["0"], 0x7E)
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=exported")
    xva = os.path.join(TMP, "snap.xva")
    xe("snapshot-export-to-template", "snapshot-uuid=" + snap, "filename=" + xva)
    t = xe_out("vm-import", "filename=" + xva)
    assert vm_param(t, "is-a-template") == "true" and vm_param(t, "is-a-snapshot") == "false"
    assert vm_param(t, "name-label") == "exported"
    assert has_marker(vm_disks(t)["0"], 0x7E)
    xe("template-uninstall", "template-uuid=" + t, "--force")
    destroy_vm(vm)
    check_sr_clean()


def test_failures_leave_nothing():
    vm = new_vm("fail", disks=2)
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s")
    disks = vm_disks(vm)
    write_marker(disks["0"], 0x99)
    for point, call in (("snapshot-disks", ("vm-snapshot", "new-name-label=x")),
                        ("snapshot-record", ("vm-snapshot", "new-name-label=x")),
                        ("revert-switch", None)):
        D.stop()
        D.env["HYPERXE_FAIL_AT"] = point
        D.start()
        try:
            before = state()
            if call:
                xe_fails(call[0], "uuid=" + vm, *call[1:], code="INTERNAL_ERROR")
            else:
                xe_fails("snapshot-revert", "snapshot-uuid=" + snap, code="INTERNAL_ERROR")
            assert state() == before, point
            assert vm_disks(vm) == disks
            assert has_marker(disks["0"], 0x99)
            assert vm_param(vm, "current-operations") == ""
            assert vm_param(snap, "current-operations") == ""
        finally:
            D.stop()
            D.env.pop("HYPERXE_FAIL_AT")
            D.start()
    # A checkpoint whose memory cannot be saved: the VM runs on, nothing is made. (The
    # layer the disk switched to stays under the running VM when it sits on the image the
    # VM started with: that merge waits until the VM stops.)
    before = state()
    xe("vm-start", "uuid=" + vm)
    D.stop()
    D.env["HYPERXE_FAIL_AT"] = "checkpoint-save"
    D.start()
    try:
        xe_fails("vm-checkpoint", "uuid=" + vm, "new-name-label=c",
                 code="VM_CHECKPOINT_SUSPEND_FAILED")
        assert vm_param(vm, "power-state") == "running"
        assert state()[:2] == before[:2]
        assert xe_out("vdi-list", "managed=true", "--minimal").count(",") == \
            len([v for v in before[2] if vdi_param(v, "managed") == "true"]) - 1
    finally:
        D.stop()
        D.env.pop("HYPERXE_FAIL_AT")
        D.start()
    xe("vm-shutdown", "uuid=" + vm, "--force")
    assert state() == before
    check_sr_clean()
    destroy_vm(vm)
    check_sr_clean()


def test_survives_restart():
    vm = new_vm("restart")
    write_marker(vm_disks(vm)["0"], 0x61)
    snap = xe_out("vm-snapshot", "uuid=" + vm, "new-name-label=s")
    D.restart()
    assert vm_param(snap, "snapshot-of") == vm
    assert vm_param(vm, "snapshots") == snap
    write_marker(vm_disks(vm)["0"], 0x62)
    xe("snapshot-revert", "uuid=" + snap)
    assert has_marker(vm_disks(vm)["0"], 0x61)
    destroy_vm(vm)
    check_sr_clean()


def timed(fn):
    def run():
        t0 = time.monotonic()
        try:
            fn()
        finally:
            print("# %s: %.1f s" % (fn.__name__, time.monotonic() - t0))
    run.__name__ = fn.__name__
    return run


def main():
    global D, TMP
    TMP = tempfile.mkdtemp(prefix="hx-snapshots-")
    code = 0
    try:
        with Daemon(extra_args=["--vmm", "sim", "--user-networking"]) as d:
            D = d
            try:
                run_tests([timed(t) for t in [test_snapshot_of_halted_vm_records,
                           test_revert_halted_keeps_later_snapshots,
                           test_revert_after_vm_destroyed,
                           test_running_vm_snapshot_checkpoint_revert,
                           test_bad_input_changes_nothing, test_ignore_vdis_and_uninstall,
                           test_many_snapshots_deleted_in_random_order,
                           test_clone_copy_and_templates, test_export_to_template,
                           test_failures_leave_nothing,
                           test_survives_restart]])
            except SystemExit as e:
                code = e.code
                if code:
                    sys.stdout.write("# ---- hyperxed log ----\n# " +
                                     d.log().replace("\n", "\n# ") + "\n")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
