#!/usr/bin/env python3
"""The lifecycle on the QEMU backend with a QEMU that misbehaves (the fake
QEMU of the vmm tests, tests/unit/vmm/fake-qemu-system-x86_64): a QEMU that
dies at start, one that stops its guest with an internal error, one that
exits while running, and host memory that cannot hold the VM. Each must give
a clear error or act per actions-after-crash, and leave a consistent state:
no QEMU left over, the VM halted, nothing attached."""

import os
import subprocess
import tempfile
import time

from hxtest import SOURCE_DIR, Daemon, fails, ok, run_tests

FAKE = os.path.join(SOURCE_DIR, "tests", "unit", "vmm", "fake-qemu-system-x86_64")
TMP = tempfile.mkdtemp(prefix="hx-lcq-")
KERNEL = os.path.join(TMP, "vmlinuz")


def daemon(mode):
    return Daemon(env={"HX_QEMU": FAKE, "HX_FAKE_QEMU_MODE": mode})


os.environ.setdefault("HX_QEMU", FAKE)  # test_accel_auto's daemon: the fake too


def make_vm(s, sess, name):
    tmpl = ok(s.VM.get_by_name_label(sess, "Other install media"))[0]
    vm = ok(s.VM.clone(sess, tmpl, name))
    ok(s.VM.provision(sess, vm))
    ok(s.VM.set_HVM_boot_policy(sess, vm, ""))
    ok(s.VM.set_PV_kernel(sess, vm, KERNEL))
    return vm


def wait(pred, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def qemus(d):
    """Fake QEMU processes of this daemon still alive."""
    r = subprocess.run(["pgrep", "-f", d.run_dir], capture_output=True, text=True)
    return [p for p in r.stdout.split() if p and int(p) != d.pid()]


def test_qemu_fails_to_start():
    with daemon("fail") as d:
        s, sess = d.login()
        vm = make_vm(s, sess, "dies-at-start")
        p = fails(s.VM.start(sess, vm, False, False), "DOMAIN_BUILDER_ERROR")
        assert "'frob' is not a valid device model name" in p[2], p
        assert ok(s.VM.get_power_state(sess, vm)) == "Halted"
        assert ok(s.VM.get_domid(sess, vm)) == "-1"
        assert ok(s.VM.get_current_operations(sess, vm)) == {}
        assert ok(s.VM.get_consoles(sess, vm)) == []
        assert not qemus(d)
        r = d.xe("vm-start", "vm=dies-at-start", check=False)
        assert r.returncode == 1 and "not a valid device model name" in r.stderr, r.stderr


def test_internal_error_is_a_crash():
    with daemon("internal-error") as d:
        s, sess = d.login()
        vm = make_vm(s, sess, "internal")
        ok(s.VM.set_actions_after_crash(sess, vm, "destroy"))
        ok(s.VM.start(sess, vm, False, False))
        wait(lambda: ok(s.VM.get_power_state(sess, vm)) == "Halted", "halted")
        uuid = ok(s.VM.get_uuid(sess, vm))
        msgs = [m for m in ok(s.message.get_all_records(sess)).values()
                if m["obj_uuid"] == uuid and m["name"] == "VM_CRASHED"]
        assert msgs and "internal error" in msgs[0]["body"], msgs
        wait(lambda: not qemus(d), "the QEMU to be stopped")
        # preserve keeps it, stopped, for a look; a hard shutdown ends it
        ok(s.VM.set_actions_after_crash(sess, vm, "preserve"))
        ok(s.VM.start(sess, vm, False, False))
        wait(lambda: ok(s.VM.get_power_state(sess, vm)) == "Paused", "paused")
        assert qemus(d)
        ok(s.VM.hard_shutdown(sess, vm))
        assert ok(s.VM.get_power_state(sess, vm)) == "Halted"
        wait(lambda: not qemus(d), "the QEMU to be stopped")


def test_qemu_exits_while_running():
    with daemon("exit3") as d:
        s, sess = d.login()
        vm = make_vm(s, sess, "exits")
        ok(s.VM.set_actions_after_crash(sess, vm, "destroy"))
        ok(s.VM.start(sess, vm, False, False))
        wait(lambda: ok(s.VM.get_power_state(sess, vm)) == "Halted", "halted")
        uuid = ok(s.VM.get_uuid(sess, vm))
        body = [m["body"] for m in ok(s.message.get_all_records(sess)).values()
                if m["obj_uuid"] == uuid and m["name"] == "VM_CRASHED"]
        assert body and "status 3" in body[0], body
        # restart: it comes back, dies again, and after three quick crashes stays down
        ok(s.VM.set_actions_after_crash(sess, vm, "restart"))
        ok(s.VM.start(sess, vm, False, False))
        wait(lambda: any("not restarted" in m["body"]
                         for m in ok(s.message.get_all_records(sess)).values()
                         if m["obj_uuid"] == uuid), "the crash loop to stop")
        wait(lambda: ok(s.VM.get_power_state(sess, vm)) == "Halted", "halted")


def test_not_enough_memory():
    with daemon("normal") as d:
        s, sess = d.login()
        vm = make_vm(s, sess, "huge")
        t = str(4 << 40)
        ok(s.VM.set_memory_limits(sess, vm, t, t, t, t))
        p = fails(s.VM.start(sess, vm, False, True), "HOST_NOT_ENOUGH_FREE_MEMORY")
        assert p[0] == t and 0 < int(p[1]) < int(t), p
        assert ok(s.VM.get_power_state(sess, vm)) == "Halted"
        assert not qemus(d)
        # a sane VM on the same (fake) QEMU runs and stops
        vm2 = make_vm(s, sess, "fine")
        ok(s.VM.start(sess, vm2, False, False))
        assert ok(s.VM.get_power_state(sess, vm2)) == "Running"
        ok(s.VM.hard_shutdown(sess, vm2))
        wait(lambda: not qemus(d), "no QEMU")


def test_accel_auto():
    """--accel auto: KVM only if /dev/kvm opens and the CPU has vmx or svm (not on PVM hosts)."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        kvm = " vmx" in open("/proc/cpuinfo").read() or " svm" in open("/proc/cpuinfo").read()
    except OSError:
        kvm = False
    d = Daemon(accel="auto")
    try:
        s, sess = d.login()
        host = ok(s.host.get_all(sess))[0]
        sv = ok(s.host.get_software_version(sess, host))
        assert sv["accelerator"] == ("kvm" if kvm else "tcg"), sv
        r = d.xe("host-param-get", "uuid=" + ok(s.host.get_uuid(sess, host)),
                 "param-name=software-version", "param-key=accelerator")
        assert r.stdout.strip() == sv["accelerator"]
        vm = make_vm(s, sess, "accel")
        ok(s.VM.start(sess, vm, False, False))
        uuid = ok(s.VM.get_uuid(sess, vm))
        argv = open(os.path.join(d.run_dir, uuid, "qemu.argv")).read()
        assert "-accel %s" % sv["accelerator"] in argv, argv
        ok(s.VM.hard_shutdown(sess, vm))
    finally:
        d.cleanup()


def main():
    with open(KERNEL, "wb") as f:
        f.write(b"kernel")
    try:
        run_tests([test_qemu_fails_to_start, test_internal_error_is_a_crash,
                   test_qemu_exits_while_running, test_not_enough_memory, test_accel_auto])
    finally:
        subprocess.run(["rm", "-rf", TMP])


if __name__ == "__main__":
    main()
