#!/usr/bin/env python3
"""Export a VM with two disks, a CD and two VIFs, import it, boot the copy
under QEMU (TCG): the test guest (scripts/build-test-guest) must reach
TEST-MARKER: READY from the imported boot disk, and every imported disk
must be identical to its original (qemu-img compare)."""

import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

from hxtest import SOURCE_DIR, Daemon, ok, run_tests

D = None
GUEST = os.environ.get("HX_TEST_GUEST", os.path.join(SOURCE_DIR, ".cache", "guest"))
TMP = tempfile.mkdtemp(prefix="hx-xva-vm-")
BOOT = 120
SKIP = 77
MiB = 1 << 20


def xe(*args, check=True):
    return D.xe(*args, check=check)


def out(*args):
    return xe(*args).stdout.strip()


def console(vm):
    try:
        with open(os.path.join(D.run_dir, vm, "console.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait(pred, what, timeout=BOOT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s" % what)


def vdi_file(s, sess, vdi):
    sr = ok(s.VDI.get_SR(sess, vdi))
    d = [ok(s.PBD.get_device_config(sess, p)).get("path") for p in ok(s.SR.get_PBDs(sess, sr))][0]
    return os.path.join(d, ok(s.VDI.get_uuid(sess, vdi)) + ".qcow2")


def disks(s, sess, vm):
    """{userdevice: VDI ref} of the VM's disks, and its CD's VDI."""
    res, cd = {}, None
    for b in ok(s.VM.get_VBDs(sess, vm)):
        r = ok(s.VBD.get_record(sess, b))
        if r["type"] == "CD":
            cd = r["VDI"]
        else:
            res[r["userdevice"]] = r["VDI"]
    return res, cd


def test_round_trip_boots():
    s, sess = D.login()
    vm = out("vm-install", "template=Debian Jessie 8.0", "new-name-label=xva-boot")
    vref = ok(s.VM.get_by_uuid(sess, vm))
    d0 = disks(s, sess, vref)[0]["0"]
    xe("vdi-import", "uuid=" + ok(s.VDI.get_uuid(sess, d0)),
       "filename=" + os.path.join(GUEST, "disk.qcow2"), "format=qcow2")
    # A data disk with scattered random content.
    rnd = random.Random(4)
    raw = os.path.join(TMP, "data.raw")
    with open(raw, "wb") as f:
        f.truncate(24 * MiB)
        for off in (0, 5 * MiB + 4096, 17 * MiB, 24 * MiB - 65536):
            f.seek(off)
            f.write(rnd.randbytes(65536))
    pool = ok(s.pool.get_all(sess))[0]
    sr = ok(s.pool.get_default_SR(sess, pool))
    d1 = ok(s.VDI.create(sess, {"name_label": "data", "SR": sr, "virtual_size": str(24 * MiB),
                                "type": "user", "sharable": False, "read_only": False,
                                "other_config": {}}))
    xe("vdi-import", "uuid=" + ok(s.VDI.get_uuid(sess, d1)), "filename=" + raw)
    ok(s.VBD.create(sess, {"VM": vref, "VDI": d1, "userdevice": "1", "bootable": False,
                           "mode": "RW", "type": "Disk", "unpluggable": True, "empty": False,
                           "other_config": {}, "qos_algorithm_type": "",
                           "qos_algorithm_params": {}}))
    iso = [r for r, v in ok(s.VDI.get_all_records(sess)).items()
           if v["name_label"] == "guest-tools.iso"][0]
    ok(s.VBD.create(sess, {"VM": vref, "VDI": iso, "userdevice": "3", "bootable": False,
                           "mode": "RO", "type": "CD", "unpluggable": True, "empty": False,
                           "other_config": {}, "qos_algorithm_type": "",
                           "qos_algorithm_params": {}}))
    net = [r for r, v in ok(s.network.get_all_records(sess)).items() if v["bridge"] == "xenbr0"][0]
    nu = ok(s.network.get_uuid(sess, net))
    for dev in ("0", "1"):
        xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + nu, "device=" + dev)
    x = os.path.join(TMP, "boot.xva")
    r = xe("vm-export", "vm=" + vm, "filename=" + x, "compress=zstd")
    assert "Export succeeded" in r.stdout
    new = out("vm-import", "filename=" + x)
    nref = ok(s.VM.get_by_uuid(sess, new))
    nd, ncd = disks(s, sess, nref)
    od, _ = disks(s, sess, vref)
    assert sorted(nd) == ["0", "1"] and ncd == iso, (nd, ncd)
    for dev in ("0", "1"):
        assert nd[dev] != od[dev]
        r = subprocess.run(["qemu-img", "compare", "-q", vdi_file(s, sess, od[dev]),
                            vdi_file(s, sess, nd[dev])])
        assert r.returncode == 0, "disk %s differs after the round trip" % dev
    assert len(ok(s.VM.get_VIFs(sess, nref))) == 2
    # The copy boots from its imported disk.
    xe("vm-start", "uuid=" + new)
    wait(lambda: "TEST-MARKER: READY" in console(new), "the imported VM to boot")
    argv = open(os.path.join(D.run_dir, new, "qemu.argv")).read()
    assert argv.count("-netdev") == 2 and "guest-tools.iso" in argv, argv
    xe("vm-shutdown", "uuid=" + new, "--force")
    assert out("vm-param-get", "uuid=" + new, "param-name=power-state") == "halted"
    r = subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", raw,
                        vdi_file(s, sess, nd["1"])])
    assert r.returncode == 0, "the data disk changed"


def heartbeats(vm):
    return [int(m) for m in re.findall(r"TEST-HEARTBEAT (\d+)", console(vm))]


def test_suspended_round_trip_resumes():
    """A suspended VM exported with its memory (preserve-power-state=true)
    imports suspended and resumes: the guest's heartbeat counter goes on
    from where it was, in the copy."""
    s, sess = D.login()
    vm = out("vm-install", "template=Debian Jessie 8.0", "new-name-label=xva-susp")
    vref = ok(s.VM.get_by_uuid(sess, vm))
    d0 = disks(s, sess, vref)[0]["0"]
    xe("vdi-import", "uuid=" + ok(s.VDI.get_uuid(sess, d0)),
       "filename=" + os.path.join(GUEST, "disk.qcow2"), "format=qcow2")
    xe("vm-start", "uuid=" + vm)
    wait(lambda: len(heartbeats(vm)) >= 2, "heartbeats of the original")
    xe("vm-suspend", "uuid=" + vm)
    last = max(heartbeats(vm))
    x = os.path.join(TMP, "susp.xva")
    xe("vm-export", "vm=" + vm, "filename=" + x, "preserve-power-state=true")
    new = out("vm-import", "filename=" + x)
    assert out("vm-param-get", "uuid=" + new, "param-name=power-state") == "suspended"
    xe("vm-resume", "uuid=" + new)
    assert out("vm-param-get", "uuid=" + new, "param-name=power-state") == "running"
    # The copy's console starts empty: its first heartbeats follow the original's last.
    beats = wait(lambda: heartbeats(new) if len(heartbeats(new)) >= 2 else None,
                 "heartbeats of the resumed copy")
    assert beats[0] > last >= 1 and beats[0] <= last + 30, (last, beats)
    assert "TEST-MARKER: READY" not in console(new), "the copy booted instead of resuming"
    xe("vm-shutdown", "uuid=" + new, "--force")
    xe("vm-resume", "uuid=" + vm)
    xe("vm-shutdown", "uuid=" + vm, "--force")


def main():
    global D
    if not shutil.which("qemu-system-x86_64"):
        print("SKIP: qemu-system-x86_64 is not installed")
        raise SystemExit(SKIP)
    if not os.path.exists(os.path.join(GUEST, "disk.qcow2")):
        r = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "build-test-guest"), GUEST],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print(r.stdout)
            raise SystemExit(1)
    D = Daemon()
    try:
        run_tests([test_round_trip_boots, test_suspended_round_trip_resumes])
    finally:
        for line in subprocess.run(["pgrep", "-f", D.run_dir], capture_output=True,
                                   text=True).stdout.split():
            if int(line) != os.getpid():
                try:
                    os.kill(int(line), signal.SIGKILL)
                except OSError:
                    pass
        D.cleanup()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
