"""Snapshots of real guests under QEMU (suite "vm"): one test guest
(scripts/build-test-guest with hyperxe-agent) booted by hyperxed, reused
across the checks.

The guest writes markers on its disk through the guest agent (guest-exec);
a live snapshot keeps the first, a revert brings it back (read by the
rebooted guest itself and by qemu-io on the host). A checkpoint keeps the
guest's memory: after the revert the guest runs on where it was (its
heartbeat counter continues from the checkpoint, a file in its tmpfs is as
it was). A quiesced snapshot freezes and thaws through the agent. Twenty
live snapshots deleted in random order keep every content and the chains
merge back with no file left over. A clone and a copy boot next to each
other with MACs of their own, and a change in one reaches no other.

Usage: t_snapshots_vm.py (environment from meson: HYPERXED, XE, HX_AGENT,
HX_SOURCE_DIR, HX_WORK_DIR)
"""

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "guest"))
from hxtest import Daemon, run_tests  # noqa: E402
import hxvm  # noqa: E402

D = None
G = None  # the guest build
TMP = None
VM = None
MiB = 1 << 20


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


def sr_dir(sr):
    pbd = xe_out("pbd-list", "sr-uuid=" + sr, "--minimal")
    return xe_out("pbd-param-get", "uuid=" + pbd, "param-name=device-config", "param-key=path")


def vm_param(uuid, name):
    return xe_out("vm-param-get", "uuid=" + uuid, "param-name=" + name)


def vdi_param(uuid, name):
    return xe_out("vdi-param-get", "uuid=" + uuid, "param-name=" + name)


def depth(vdi):
    return int(vdi_param(vdi, "sm-config").split("chain-depth: ")[1].split(";")[0])


def disk_of(vm):
    return xe_out("vbd-list", "vm-uuid=" + vm, "type=Disk", "userdevice=0", "params=vdi-uuid",
                  "--minimal")


def vdi_path(vdi):
    return os.path.join(sr_dir(vdi_param(vdi, "sr-uuid")), vdi + ".qcow2")


def host_read(vdi, offsets, length=9):
    """Bytes at each offset of a VDI, read on the host by one qemu-io (shared lock)."""
    args = ["qemu-io", "-f", "qcow2", "-r", "-U"]
    for off in offsets:
        args += ["-c", "read -v %d %d" % (off, length)]
    r = subprocess.run(args + [vdi_path(vdi)], capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = []
    for line in r.stdout.splitlines():
        m = re.match(r"^[0-9a-f]{8}:\s+((?:[0-9a-f]{2} )+)", line)
        if m:
            out.append(bytes(int(x, 16) for x in m.group(1).split()[:length]))
    assert len(out) == len(offsets), r.stdout
    return out


def full_log():
    with open(os.path.join(D.state_dir, "log")) as f:
        return f.read()


def check_sr_clean(sr=None):
    sr = sr or local_sr()
    d = sr_dir(sr)
    files = sorted(os.listdir(d))
    vdis = sorted(filter(None, xe_out("vdi-list", "sr-uuid=" + sr, "--minimal").split(",")))
    assert files == sorted(v + ".qcow2" for v in vdis), (files, vdis)
    for f in files:
        subprocess.run(["qemu-img", "check", "-U", os.path.join(d, f)], check=True,
                       capture_output=True)


# ---- the guest --------------------------------------------------------------------------------

def new_vm(name):
    vm = xe_out("vm-install", "template=Other install media", "new-name-label=" + name)
    xe("vm-param-set", "uuid=" + vm, "domain-type=pv", "PV-bootloader=",
       "PV-kernel=" + os.path.join(G, "vmlinuz"), "PV-ramdisk=" + os.path.join(G, "initrd.img"),
       "PV-args=console=ttyS0 test=wait")
    xe("vm-memory-limits-set", "uuid=" + vm, "static-min=160MiB", "static-max=160MiB",
       "dynamic-min=160MiB", "dynamic-max=160MiB")
    xe("vm-disk-add", "uuid=" + vm, "disk-size=64MiB", "device=0")
    net = xe_out("network-list", "--minimal").split(",")[0]
    xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0")
    return vm


def agent(vm, timeout=90):
    q = hxvm.Qga(os.path.join(D.run_dir, vm, "qga.sock"), timeout=timeout)
    q.sync(timeout=timeout)
    return q


def start(vm):
    xe("vm-start", "uuid=" + vm)
    return agent(vm)


def console(vm):
    with open(os.path.join(D.run_dir, vm, "console.log"), "rb") as f:
        return f.read().decode(errors="replace")


def heartbeats(vm):
    return [int(n) for n in re.findall(r"TEST-HEARTBEAT (\d+) ", console(vm))]


def wait_heartbeat(vm, above, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hb = heartbeats(vm)
        if hb and hb[-1] > above:
            return hb[-1]
        time.sleep(0.2)
    raise AssertionError("no heartbeat above %d: %s" % (above, console(vm)[-1000:]))


def gwrite(q, text, off=0):
    """Writes text at byte offset off of the guest's disk, synchronously."""
    q.sh("printf '%s' | dd of=/dev/vda bs=1 seek=%d conv=notrunc,fsync 2>/dev/null" %
         (text, off))


def gread(q, off=0, n=9):
    return q.sh("dd if=/dev/vda bs=1 skip=%d count=%d 2>/dev/null" % (off, n))


# ---- checks -------------------------------------------------------------------------------------

def test_live_snapshot_checkpoint_quiesce_revert():
    global VM
    VM = new_vm("guest")
    q = start(VM)
    gwrite(q, "MARKER-A1")
    s1 = xe_out("vm-snapshot", "uuid=" + VM, "new-name-label=live")
    assert vm_param(VM, "power-state") == "running"
    gwrite(q, "MARKER-B2")
    assert gread(q) == "MARKER-B2"
    assert host_read(disk_of(s1), [0]) == [b"MARKER-A1"]
    # The switch held the guest's disk only for the transaction (logged by the VMM).
    held = [int(x) for x in re.findall(r"snapshot of 1 disk\(s\) switched in (\d+) ms",
                                         full_log())]
    print("# live snapshot switch: %s ms" % held)
    # Checkpoint: memory and disks; the guest runs on.
    q.sh("echo mem-one > /tmp/m")
    n = wait_heartbeat(VM, 0)
    ck = xe_out("vm-checkpoint", "uuid=" + VM, "new-name-label=ck")
    at = heartbeats(VM)[-1]
    assert at >= n
    assert vm_param(ck, "power-state") == "suspended"
    q.sh("echo mem-two > /tmp/m")
    gwrite(q, "MARKER-C3")
    later = wait_heartbeat(VM, at + 4)
    xe("snapshot-revert", "snapshot-uuid=" + ck)
    assert vm_param(VM, "power-state") == "running"
    # The guest continues where it was: its counter goes on from the checkpoint.
    cut = len(heartbeats(VM))
    wait_heartbeat(VM, 0)
    deadline = time.monotonic() + 30
    while len(heartbeats(VM)) <= cut and time.monotonic() < deadline:
        time.sleep(0.2)
    after = heartbeats(VM)[cut]
    assert at <= after <= at + 2 and after < later, (at, after, later)
    q.close()
    q = agent(VM)
    assert q.sh("cat /tmp/m") == "mem-one\n"
    assert gread(q) == "MARKER-B2"
    # Quiesced snapshot: the agent freezes and thaws the guest's file systems (QEMU serves
    # one agent client at a time: the test lets go of it meanwhile).
    q.close()
    qs = xe_out("vm-snapshot-with-quiesce", "uuid=" + VM, "new-name-label=quiet")
    assert "disk-snapshot-type: quiesced" in vm_param(qs, "snapshot-info")
    assert "frozen for a quiesced snapshot" in full_log()
    q = agent(VM)
    assert q.cmd("guest-fsfreeze-status") == "thawed"
    q.close()
    # Reverting the running VM to the first snapshot stops it; it boots with the first marker.
    xe("snapshot-revert", "snapshot-uuid=" + s1)
    assert vm_param(VM, "power-state") == "halted"
    assert host_read(disk_of(VM), [0]) == [b"MARKER-A1"]
    q = start(VM)
    assert gread(q) == "MARKER-A1"
    q.close()
    # Halted: snapshot, change, revert.
    xe("vm-shutdown", "uuid=" + VM, "--force")
    s2 = xe_out("vm-snapshot", "uuid=" + VM, "new-name-label=halted")
    q = start(VM)
    gwrite(q, "MARKER-D4")
    q.close()
    xe("vm-shutdown", "uuid=" + VM, "--force")
    xe("snapshot-revert", "snapshot-uuid=" + s2)
    q = start(VM)
    assert gread(q) == "MARKER-A1"
    q.close()
    for s in (s1, ck, qs, s2):
        xe("snapshot-uninstall", "uuid=" + s, "--force")


def test_twenty_live_snapshots_deleted_in_random_order():
    # VM runs (from the previous check).
    q = agent(VM)
    snaps = []
    offsets = [4096 * (i + 1) for i in range(20)]
    d0 = depth(disk_of(VM))
    for i in range(20):
        gwrite(q, "SNAP-%04d" % i, offsets[i])
        snaps.append(xe_out("vm-snapshot", "uuid=" + VM, "new-name-label=n%d" % i))
    gwrite(q, "LAST-MARK", 0)

    def check(i):
        want = [b"SNAP-%04d" % k if k <= i else bytes(9) for k in range(20)]
        got = host_read(disk_of(snaps[i]), offsets)
        assert got == want, (i, got, want)

    for i in range(20):
        check(i)
    order = list(range(20))
    random.Random(3).shuffle(order)
    alive = set(range(20))
    for idx in order:
        xe("snapshot-uninstall", "uuid=" + snaps[idx], "--force")
        alive.discard(idx)
        for k in sorted(alive)[:2] + sorted(alive)[-1:]:
            check(k)
    # The chains merged back under the running guest (its own block jobs), except into the
    # image the guest started with: QEMU would reopen that file by its old name. That one
    # layer is merged when the VM stops...
    disk = disk_of(VM)
    assert depth(disk) == d0 + 1, (d0, vdi_param(disk, "sm-config"))
    check_sr_clean()
    merges = len(re.findall(r"committing layer \d+ of disk 0", full_log()))
    print("# merges done by the running VM's block jobs: %d" % merges)
    assert merges >= 15, merges
    # ... and the guest still sees everything it wrote, also after a reboot.
    assert [gread(q, off) for off in offsets] == ["SNAP-%04d" % i for i in range(20)]
    assert gread(q, 0) == "LAST-MARK"
    q.close()
    xe("vm-shutdown", "uuid=" + VM)
    assert depth(disk) == 1, vdi_param(disk, "sm-config")
    assert host_read(disk, [0] + offsets) == [b"LAST-MARK"] + [b"SNAP-%04d" % i
                                                                for i in range(20)]
    check_sr_clean()
    q = start(VM)
    assert [gread(q, off) for off in offsets] == ["SNAP-%04d" % i for i in range(20)]
    q.close()
    xe("vm-shutdown", "uuid=" + VM, "--force")


def test_clone_and_copy_boot_independently():
    sr2 = xe_out("sr-create", "name-label=second", "type=ext",
                 "device-config:path=" + os.path.join(TMP, "sr2"))
    clone = xe_out("vm-clone", "uuid=" + VM, "new-name-label=clone")
    copy = xe_out("vm-copy", "uuid=" + VM, "new-name-label=copy", "sr-uuid=" + sr2)
    assert depth(disk_of(copy)) == 1
    macs = {}
    agents = {}
    for v in (clone, copy):
        xe("vm-start", "uuid=" + v)
    for v in (clone, copy):
        agents[v] = agent(v)
        macs[v] = agents[v].sh("cat /sys/class/net/eth0/address").strip()
        assert macs[v] == xe_out("vif-list", "vm-uuid=" + v, "params=MAC", "--minimal"), v
        assert agents[v].sh("dd if=/dev/vda bs=1 count=9 2>/dev/null") == "LAST-MARK"
    orig_mac = xe_out("vif-list", "vm-uuid=" + VM, "params=MAC", "--minimal")
    assert len({orig_mac, macs[clone], macs[copy]}) == 3, (orig_mac, macs)
    gwrite(agents[clone], "CLONE-ONE")
    gwrite(agents[copy], "COPY--TWO")
    assert gread(agents[copy]) == "COPY--TWO"
    assert gread(agents[clone]) == "CLONE-ONE"
    assert host_read(disk_of(VM), [0]) == [b"LAST-MARK"]
    for v in (clone, copy):
        agents[v].close()
        xe("vm-shutdown", "uuid=" + v, "--force")
    assert host_read(disk_of(clone), [0]) == [b"CLONE-ONE"]
    assert host_read(disk_of(copy), [0]) == [b"COPY--TWO"]
    for v in (clone, copy):
        xe("vm-uninstall", "uuid=" + v, "--force")
    xe("vm-uninstall", "uuid=" + VM, "--force")
    check_sr_clean()
    check_sr_clean(sr2)


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
    global D, G, TMP
    hxvm.require_qemu()
    src = os.environ.get("HX_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
    work = os.environ.get("HX_WORK_DIR") or tempfile.mkdtemp(prefix="hx-snapvm-")
    agent_bin = os.environ["HX_AGENT"]
    G = hxvm.build_guest(src, os.path.join(work, "guest"), {
        agent_bin: "/usr/sbin/hyperxe-agent",
        os.path.join(src, "tests", "guest", "rc.agent"): "/etc/rc.guest",
    })
    TMP = tempfile.mkdtemp(prefix="hx-snapvm-")
    code = 0
    try:
        with Daemon(extra_args=["--user-networking"]) as d:
            D = d
            try:
                run_tests([timed(t) for t in [test_live_snapshot_checkpoint_quiesce_revert,
                                              test_twenty_live_snapshots_deleted_in_random_order,
                                              test_clone_and_copy_boot_independently]])
            except SystemExit as e:
                code = e.code
                if code and os.environ.get("HX_TEST_KEEP"):
                    shutil.copy(os.path.join(d.state_dir, "log"), "/tmp/hx-snapvm-daemon.log")
                if code:
                    sys.stdout.write("# ---- hyperxed log ----\n# " +
                                     d.log().replace("\n", "\n# ") + "\n")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
