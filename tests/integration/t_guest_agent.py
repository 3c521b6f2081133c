#!/usr/bin/env python3
"""The guest-agent session of hyperxed without booting anything: a fake QEMU
(fake-qemu-system-agent) with a scripted guest agent behind its agent channel.

- VM_guest_metrics as XenServer fills them: os-version, networks keyed by the
  VIF's device (matched by MAC; lo and foreign interfaces left out, link-local
  IPv6 too), memory, disks, PV-drivers-version and -detected, other's
  feature flags, live, last-updated; kept (live false) after the VM stops.
- A stock qemu-guest-agent (no hyperxe-get-memory): memory from the balloon.
- Clean shutdown through the agent, ACPI when it is silent; a quiesced
  snapshot's freeze and thaw through the same session; and
  VM_MISSING_PV_DRIVERS / VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED when the VM
  has neither; allowed-operations say the same beforehand.
- Bad agents (garbage, a 4 MiB reply, an endless flood, silence): the daemon
  neither hangs nor crashes, answers other calls at once, marks the agent not
  live, and picks it up again once it behaves.
- A daemon restart takes the session back."""

import os
import re
import shutil
import subprocess
import tempfile
import time

from hxtest import SOURCE_DIR, Daemon, run_tests

FAKE = os.path.join(SOURCE_DIR, "tests", "integration", "fake-qemu-system-agent")
TMP = tempfile.mkdtemp(prefix="hx-ga-")
KERNEL = os.path.join(TMP, "vmlinuz")
D = None


def xe(*args, check=True):
    return D.xe(*args, check=check)


def out(*args):
    return xe(*args).stdout.strip()


def param(vm, name, key=None):
    a = ["vm-param-get", "uuid=" + vm, "param-name=" + name]
    if key:
        a.append("param-key=" + key)
    return out(*a)


def pmap(vm, name):
    """A map parameter as a dict ('k: v; k: v')."""
    text = param(vm, name)
    if not text or text == "<not in database>":
        return {}
    return dict(kv.split(": ", 1) for kv in text.split("; "))


def wait(pred, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def set_agent(vm, mode):
    with open(os.path.join(D.run_dir, vm, "fake-agent"), "w") as f:
        f.write(mode)


def fake_log(vm):
    try:
        with open(os.path.join(D.run_dir, vm, "fake.log")) as f:
            return f.read()
    except OSError:
        return ""


def new_vm(name, acpi=True):
    vm = out("vm-install", "template=Other install media", "new-name-label=" + name)
    xe("vm-param-set", "uuid=" + vm, "HVM-boot-policy=", "domain-type=pv", "PV-bootloader=",
       "PV-kernel=" + KERNEL)
    if not acpi:
        xe("vm-param-set", "uuid=" + vm, "platform:acpi=false")
    net = out("network-list", "bridge=xenbr0", "--minimal")
    xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0")
    xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=2")
    xe("vm-disk-add", "uuid=" + vm, "disk-size=16MiB", "device=0")
    return vm


def live(vm):
    return param(vm, "live") == "true"


def mac(vm, device):
    vif = out("vif-list", "vm-uuid=" + vm, "device=%d" % device, "--minimal")
    return out("vif-param-get", "uuid=" + vif, "param-name=MAC")


def responsive():
    """The daemon answers a call at once, whatever an agent does."""
    t = time.monotonic()
    out("vm-list", "params=uuid", "--minimal")
    took = time.monotonic() - t
    assert took < 2, "xe vm-list took %.1f s" % took


# ---- the checks ---------------------------------------------------------------------------------

def test_metrics_from_hyperxe_agent():
    vm = new_vm("gm")
    assert param(vm, "live") in ("false", "<not in database>")
    xe("vm-start", "uuid=" + vm)
    wait(lambda: live(vm), "the agent to be live")
    osv = pmap(vm, "os-version")
    assert osv == {"name": "Fake Linux 3.14 (test)", "uname": "6.1.0-fake-amd64",
                   "distro": "fakelinux", "major": "3", "minor": "14"}, osv
    # networks: VIF devices 0 and 2 by MAC (the first reported in upper case), never lo,
    # docker0 or link-local addresses
    nets = wait(lambda: pmap(vm, "networks") if "2/ip" in pmap(vm, "networks") else None,
                "both VIFs in networks")
    assert nets == {"0/ip": "10.0.0.5", "0/ipv4/0": "10.0.0.5", "0/ipv4/1": "10.0.0.6",
                    "0/ipv6/0": "2001:db8::0:5".replace("::0:", "::"),
                    "2/ip": "10.0.1.5", "2/ipv4/0": "10.0.1.5", "2/ipv4/1": "10.0.1.6",
                    "2/ipv6/0": "2001:db8::1:5"}, nets
    assert param(vm, "networks", "0/ip") == "10.0.0.5"
    assert pmap(vm, "memory") == {"total": "262144", "free": "131072"}, pmap(vm, "memory")
    disks = pmap(vm, "disks")
    assert disks == {"0/vda1/mount": "/", "0/vda1/type": "ext4",
                     "0/vda1/total": str(480 << 20), "0/vda1/used": str(100 << 20)}, disks
    assert pmap(vm, "PV-drivers-version") == {"major": "0", "minor": "1", "micro": "0",
                                              "application": "hyperxe-agent"}
    assert param(vm, "PV-drivers-detected") == "true"
    other = pmap(vm, "other")
    for k in ("feature-shutdown", "feature-poweroff", "feature-reboot", "feature-quiesce",
              "feature-balloon"):
        assert other.get(k) == "1", other
    assert re.match(r"\d{4}-?\d\d-?\d\dT\d\d:\d\d:\d\dZ", param(vm, "guest-metrics-last-updated"))
    assert "snapshot_with_quiesce" in param(vm, "allowed-operations")
    # the record as XenAPI has it
    s, sess = D.login()
    ref = s.VM.get_by_uuid(sess, vm)["Value"]
    gm = s.VM.get_guest_metrics(sess, ref)["Value"]
    rec = s.VM_guest_metrics.get_record(sess, gm)["Value"]
    assert rec["live"] is True and rec["PV_drivers_detected"] is True, rec
    assert rec["can_use_hotplug_vbd"] == "yes" and rec["networks"]["0/ip"] == "10.0.0.5", rec
    # a quiesced snapshot borrows the same channel: freeze, then thaw (the fake QEMU cannot
    # switch disks, so the snapshot itself fails; the guest must not stay frozen)
    xe("vm-snapshot-with-quiesce", "uuid=" + vm, "new-name-label=quiet", check=False)
    log = fake_log(vm)
    assert "guest-fsfreeze-freeze\nguest-fsfreeze-thaw\n" in log, log
    # clean shutdown: the agent powers the guest off (not the ACPI button)
    xe("vm-shutdown", "uuid=" + vm)
    assert param(vm, "power-state") == "halted"
    assert "agent powerdown" in fake_log(vm) and "acpi" not in fake_log(vm), fake_log(vm)
    # kept after the stop, not live
    assert param(vm, "live") == "false"
    assert param(vm, "networks", "0/ip") == "10.0.0.5"
    assert s.VM.get_guest_metrics(sess, ref)["Value"] == gm
    xe("vm-uninstall", "uuid=" + vm, "--force")
    assert s.VM_guest_metrics.get_record(sess, gm)["Status"] == "Failure"


def test_stock_agent_memory_from_balloon():
    vm = new_vm("stock")
    xe("vm-start", "uuid=" + vm)
    set_agent(vm, "stock")
    wait(lambda: live(vm), "the stock agent")
    assert wait(lambda: pmap(vm, "memory") or None, "memory") == \
        {"total": str(200 << 10), "free": str(150 << 10)}, pmap(vm, "memory")
    assert pmap(vm, "os-version")["major"] == "3" and "minor" not in pmap(vm, "os-version")
    assert pmap(vm, "PV-drivers-version") == {"major": "7", "minor": "2", "micro": "22",
                                              "application": "qemu-guest-agent"}
    assert param(vm, "networks", "0/ip") == "10.0.0.5"
    xe("vm-shutdown", "uuid=" + vm, "--force")
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_bad_agents():
    vm = new_vm("bad")
    xe("vm-start", "uuid=" + vm)
    wait(lambda: live(vm), "the agent")
    for m in ("garbage", "huge", "flood", "silent"):
        set_agent(vm, m)
        wait(lambda: not live(vm), "the %s agent to be marked not live" % m, timeout=40)
        responsive()
        assert D.pid() and param(vm, "power-state") == "running"
        # it behaves again: reported again
        set_agent(vm, "hyperxe")
        wait(lambda: live(vm), "the agent back after %s" % m, timeout=40)
    log = open(os.path.join(D.state_dir, "log")).read()
    assert "does not answer" in log
    # a silent agent: the clean shutdown falls back to ACPI within its timeouts
    set_agent(vm, "silent")
    t = time.monotonic()
    xe("vm-shutdown", "uuid=" + vm)
    assert time.monotonic() - t < 30
    assert "acpi powerdown" in fake_log(vm), fake_log(vm)
    assert param(vm, "power-state") == "halted"
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_operations_that_need_the_agent():
    vm = new_vm("noacpi", acpi=False)
    xe("vm-start", "uuid=" + vm)
    set_agent(vm, "none")
    time.sleep(1.5)
    ops = param(vm, "allowed-operations")
    assert "hard_shutdown" in ops and "clean_shutdown" not in ops, ops
    assert "snapshot_with_quiesce" not in ops, ops
    r = xe("vm-shutdown", "uuid=" + vm, check=False)
    assert r.returncode != 0 and "VM_MISSING_PV_DRIVERS" in r.stderr + r.stdout, r
    r = xe("vm-snapshot-with-quiesce", "uuid=" + vm, "new-name-label=q", check=False)
    assert r.returncode != 0 and "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED" in r.stderr + r.stdout
    # the agent comes up: the operations are allowed, and the shutdown is the agent's
    set_agent(vm, "hyperxe")
    wait(lambda: "clean_shutdown" in param(vm, "allowed-operations"), "clean_shutdown allowed")
    assert "snapshot_with_quiesce" in param(vm, "allowed-operations")
    xe("vm-shutdown", "uuid=" + vm)
    assert "agent powerdown" in fake_log(vm)
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_daemon_restart():
    vm = new_vm("restart")
    xe("vm-start", "uuid=" + vm)
    wait(lambda: live(vm), "the agent")
    D.restart()
    assert live(vm)  # a running VM's record is not touched by the restart
    set_agent(vm, "none")
    wait(lambda: not live(vm), "the adopted VM's session to see the agent go")
    set_agent(vm, "hyperxe")
    wait(lambda: live(vm), "the adopted VM's agent again")
    # the daemon stops while the VM runs: the next start finds the VM halted -> not live
    xe("vm-shutdown", "uuid=" + vm, "--force")
    assert param(vm, "live") == "false"
    xe("vm-uninstall", "uuid=" + vm, "--force")


def main():
    global D
    with open(KERNEL, "wb") as f:
        f.write(b"kernel")
    # polls every half second instead of every five (the test's pace, not its outcome)
    D = Daemon(env={"HX_QEMU": FAKE, "HX_AGENT_POLL_MS": "500"})
    try:
        run_tests([test_metrics_from_hyperxe_agent, test_stock_agent_memory_from_balloon,
                   test_bad_agents, test_operations_that_need_the_agent, test_daemon_restart])
    finally:
        for p in subprocess.run(["pgrep", "-f", D.run_dir], capture_output=True,
                                text=True).stdout.split():
            try:
                if int(p) != D.pid():
                    os.kill(int(p), 9)
            except (OSError, ValueError):
                pass
        D.cleanup()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
