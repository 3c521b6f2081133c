#!/usr/bin/env python3
"""The VM lifecycle through xe and XenAPI on the simulated VMM (hyperxed
--vmm sim): built-in templates, vm-install and provisioning, the power-state
machine with allowed and current operations, actions-after-shutdown/reboot/
crash (the simulated guest's panics, power-offs and reboots), the RTC offset,
devices and networks, BIOS strings, consoles (text and WebSocket), core
dumps, the installer fetched from a network repository, a daemon killed
while VMs run, and bad input. The same code paths boot real guests in the
vm suite (t_vm_lifecycle.py); here every check takes milliseconds."""

import base64
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from hxtest import Daemon, ok, fails, run_tests

D = None
TMP = tempfile.mkdtemp(prefix="hx-lc-")
KERNEL = os.path.join(TMP, "vmlinuz")
INITRD = os.path.join(TMP, "initrd.img")
OTHER_MEDIA = "552bce37-51b2-445d-84f2-5f33fa112d7e"
WIN10 = "7774689b-4ca1-4dea-8545-dddd6b64c17f"


def xe(*args, check=True, stdin=None):
    e = dict(os.environ, HYPERXE_RUN_DIR=D.run_dir, HOME=D.tmp)
    e.pop("XE_EXTRA_ARGS", None)
    r = subprocess.run([os.environ.get("XE", "xe")] + list(args), env=e, capture_output=True,
                       text=True, timeout=120, input=stdin)
    if check and r.returncode != 0:
        raise AssertionError("xe %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                          r.stdout, r.stderr))
    return r


def out(*args):
    return xe(*args).stdout.strip()


def xe_fails(*args):
    r = xe(*args, check=False)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    return r.stderr


def param(cls, uuid, name, key=None):
    a = ["%s-param-get" % cls, "uuid=" + uuid, "param-name=" + name]
    if key:
        a.append("param-key=" + key)
    return out(*a)


def wait(pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def api():
    return D.login()


def ref_of(s, sess, uuid):
    return ok(s.VM.get_by_uuid(sess, uuid))


def new_pv_vm(name, template="Debian Squeeze 6.0 (64-bit)"):
    """A PV VM booting KERNEL directly, installed from a template."""
    vm = out("vm-install", "template=" + template, "new-name-label=" + name)
    xe("vm-param-set", "uuid=" + vm, "PV-bootloader=", "PV-kernel=" + KERNEL,
       "PV-ramdisk=" + INITRD, "PV-args=console=ttyS0 test=wait")
    return vm


def inject(vm, what):
    s, sess = api()
    ok(s.VM.sim_inject(sess, ref_of(s, sess, vm), what))


def power(vm):
    return param("vm", vm, "power-state")


def count(cls, **filters):
    a = ["%s-list" % cls, "--minimal"] + ["%s=%s" % kv for kv in filters.items()]
    o = out(*a)
    return len(o.split(",")) if o else 0


def messages(vm, name):
    s, sess = api()
    return [m for m in ok(s.message.get_all_records(sess)).values()
            if m["obj_uuid"] == vm and m["name"] == name]


# ---- templates --------------------------------------------------------------------------

def test_builtin_templates():
    names = out("template-list", "params=name-label", "--minimal").split(",")
    for want in ["Windows 7 (32-bit)", "Windows 7 (64-bit)", "Windows 8 (64-bit)",
                 "Windows 10 (64-bit)", "Windows Server 2008 (64-bit)",
                 "Windows Server 2008 R2 (64-bit)", "Windows Server 2012 (64-bit)",
                 "Windows Server 2012 R2 (64-bit)", "Windows Vista (32-bit)",
                 "Citrix XenApp on Windows Server 2008 R2 (64-bit)", "CentOS 4.5 (32-bit)",
                 "CentOS 7", "Red Hat Enterprise Linux 6 (64-bit)", "Oracle Linux 7",
                 "Scientific Linux 7", "SUSE Linux Enterprise Server 10 SP1 (32-bit)",
                 "SUSE Linux Enterprise Desktop 12 (64-bit)", "Debian Squeeze 6.0 (32-bit)",
                 "Debian Wheezy 7.0 (64-bit)", "Debian Jessie 8.0",
                 "Ubuntu Lucid Lynx 10.04 (64-bit)", "Ubuntu Xenial Xerus 16.04", "CoreOS",
                 "Other install media"]:
        assert want in names, want
    # XenServer's fixed uuids
    assert param("template", OTHER_MEDIA, "name-label") == "Other install media"
    assert param("template", WIN10, "name-label") == "Windows 10 (64-bit)"
    assert param("template", WIN10, "is-default-template") == "true"
    # the guide's table: Windows 10 (64-bit) needs 2 GiB, supports 1.5 TiB, 24 GiB of disk
    assert param("template", WIN10, "memory-static-min") == str(2 << 30)
    assert param("template", WIN10, "memory-static-max") == str(4 << 30)
    rec = param("template", WIN10, "recommendations")
    assert 'field="memory-static-max" max="%d"' % (1536 << 30) in rec, rec
    assert 'field="has-vendor-device" value="true"' in rec
    assert 'size="%d"' % (24 << 30) in param("template", WIN10, "other-config", "disks")
    assert param("template", WIN10, "HVM-boot-params", "order") == "dc"
    assert param("template", WIN10, "platform", "viridian") == "true"
    deb = out("template-list", "name-label=Debian Squeeze 6.0 (64-bit)", "--minimal")
    assert param("template", deb, "PV-bootloader") == "eliloader"
    assert param("template", deb, "other-config", "install-distro") == "debianlike"
    assert param("template", deb, "HVM-boot-policy") == ""
    # templates cannot start, and built-in ones cannot go
    err = xe_fails("vm-start", "uuid=" + WIN10)
    assert "No matching VMs found" in err  # vm-start selects VMs, not templates
    s, sess = api()
    assert fails(s.VM.start(sess, ref_of(s, sess, WIN10), False, False),
                 "VM_IS_TEMPLATE") == [ref_of(s, sess, WIN10), "start"]
    fails(s.VM.destroy(sess, ref_of(s, sess, WIN10)), "VM_CANNOT_DELETE_DEFAULT_TEMPLATE")
    err = xe_fails("template-param-set", "uuid=" + WIN10, "is-a-template=false")
    assert "not allowed" in err


def test_vm_install_and_uninstall():
    vdis_before = count("vdi")
    vm = out("vm-install", "template=Debian Squeeze 6.0 (64-bit)", "new-name-label=inst1")
    assert re.fullmatch(r"[0-9a-f-]{36}", vm), vm
    assert param("vm", vm, "name-description") == "Installed via xe CLI"
    assert param("vm", vm, "is-a-template") == "false"
    assert param("vm", vm, "power-state") == "halted"
    # provisioned: one 8 GiB disk named after its device, owned by the VM
    disks = out("vm-disk-list", "vm=inst1")
    assert "Disk 0 VBD:" in disks and "Disk 0 VDI:" in disks, disks
    vbd = out("vbd-list", "vm-uuid=" + vm, "userdevice=0", "params=uuid", "--minimal")
    vdi = param("vbd", vbd, "vdi-uuid")
    assert param("vdi", vdi, "name-label") == "0"
    assert param("vdi", vdi, "virtual-size") == str(8 << 30)
    assert param("vbd", vbd, "bootable") == "true"
    assert "owner" in param("vbd", vbd, "other-config")
    assert "disks" not in param("vm", vm, "other-config")
    assert count("vdi") == vdis_before + 1
    # by name of SR, and the SR's uuid lands in the disks
    vm2 = out("vm-install", "template=Debian Squeeze 6.0 (64-bit)", "new-name-label=inst2",
              "sr-name-label=Local storage")
    assert count("vdi") == vdis_before + 2
    # uninstall asks, and takes the owned disks along
    r = xe("vm-uninstall", "vm=inst2", stdin="no\n")
    assert "The following items are about to be destroyed" in r.stdout
    assert "Type 'yes' to continue" in r.stderr and "Aborted" in r.stdout
    assert count("vm", uuid=vm2) == 1
    r = xe("vm-uninstall", "vm=inst2", stdin="yes\n")
    assert "All objects destroyed" in r.stdout
    assert count("vm", uuid=vm2) == 0 and count("vdi") == vdis_before + 1
    xe("vm-uninstall", "uuid=" + vm, "--force")
    assert count("vdi") == vdis_before
    # an unknown template, an unknown SR
    assert "Template not found" in xe_fails("vm-install", "template=No such OS",
                                            "new-name-label=x")
    xe_fails("vm-install", "template=CentOS 7", "new-name-label=x", "sr-uuid=nope")
    assert count("vm", **{"name-label": "x"}) == 0


def test_vm_install_leaves_nothing_on_failure():
    vms, vdis = count("vm"), count("vdi")
    # a template whose provision script lives outside the allowed directory
    t = out("vm-clone", "uuid=" + out("template-list", "name-label=CentOS 7", "--minimal"),
            "new-name-label=evil")
    evil = os.path.join(TMP, "evil.sh")
    with open(evil, "w") as f:
        f.write("#!/bin/sh\ntouch %s/ran\n" % TMP)
    os.chmod(evil, 0o755)
    xe("template-param-set", "uuid=" + t, "other-config:postinstall=" + evil)
    err = xe_fails("vm-install", "template=evil", "new-name-label=victim")
    assert "Caller not allowed to perform this operation." in err
    assert "illegal provision script" in err, err
    assert not os.path.exists(os.path.join(TMP, "ran"))
    # a disk on an SR that does not exist
    xe("template-param-set", "uuid=" + t, "other-config:postinstall=")
    xe("template-param-remove", "uuid=" + t, "param-name=other-config", "param-key=postinstall")
    xe("template-param-set", "uuid=" + t, "other-config:disks="
       '<provision><disk device="0" size="1073741824" sr="" bootable="true" type="system"/>'
       '<disk device="1" size="1073741824" sr="00000000-0000-0000-0000-000000000000" '
       'bootable="false" type="system"/></provision>')
    s, sess = api()
    vm = ok(s.VM.clone(sess, ok(s.VM.get_by_uuid(sess, t)), "victim2"))
    p = fails(s.VM.provision(sess, vm), "UUID_INVALID")
    assert p == ["SR", "00000000-0000-0000-0000-000000000000"], p
    assert ok(s.VM.get_VBDs(sess, vm)) == []
    ok(s.VM.destroy(sess, vm))
    xe("template-uninstall", "template-uuid=" + t, "--force")
    assert count("vm") == vms and count("vdi") == vdis, (count("vm"), vms, count("vdi"), vdis)


def test_template_round_trip():
    vm = new_pv_vm("tmpl-rt")
    xe("vm-param-set", "uuid=" + vm, "is-a-template=true")
    assert count("template", uuid=vm) == 1 and count("vm", uuid=vm) == 0
    s, sess = api()
    assert fails(s.VM.start(sess, ref_of(s, sess, vm), False, False),
                 "VM_IS_TEMPLATE")[1] == "start"
    xe("template-param-set", "uuid=" + vm, "is-a-template=false")
    xe("vm-start", "uuid=" + vm)
    err = xe_fails("vm-param-set", "uuid=" + vm, "is-a-template=true")
    assert "expected: halted" in err and "actual: running" in err
    xe("vm-shutdown", "uuid=" + vm, "--force")
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- power states -----------------------------------------------------------------------

def allowed(vm):
    return set(param("vm", vm, "allowed-operations").split("; "))


def test_power_state_machine():
    vm = new_pv_vm("psm")
    assert {"start", "clone", "destroy"} <= allowed(vm)
    assert "clean_shutdown" not in allowed(vm)
    xe("vm-start", "uuid=" + vm)
    assert power(vm) == "running"
    assert param("vm", vm, "dom-id") != "-1"
    assert param("vm", vm, "resident-on") == out("host-list", "--minimal")
    assert {"clean_shutdown", "hard_shutdown", "pause", "suspend", "clean_reboot"} <= allowed(vm)
    assert "start" not in allowed(vm)
    # a wrong state: XenServer's error with its parameters
    s, sess = api()
    ref = ref_of(s, sess, vm)
    assert fails(s.VM.start(sess, ref, False, False), "VM_BAD_POWER_STATE") == \
        [ref, "halted", "running"]
    assert fails(s.VM.unpause(sess, ref), "VM_BAD_POWER_STATE") == [ref, "paused", "running"]
    err = xe_fails("vm-start", "uuid=" + vm)
    assert "expected: halted" in err and "actual: running" in err
    # pause / unpause
    xe("vm-pause", "uuid=" + vm)
    assert power(vm) == "paused" and "unpause" in allowed(vm)
    assert fails(s.VM.clean_shutdown(sess, ref), "VM_BAD_POWER_STATE") == \
        [ref, "running", "paused"]
    xe("vm-unpause", "uuid=" + vm)
    assert power(vm) == "running"
    # metrics and consoles of a running VM
    assert param("vm", vm, "VCPUs-number") == "1"
    consoles = out("console-list", "vm-uuid=" + vm, "params=protocol", "--minimal")
    assert sorted(consoles.split(",")) == ["RFB", "VT100"], consoles
    # suspend and resume through a suspend VDI
    xe("vm-suspend", "uuid=" + vm)
    assert power(vm) == "suspended"
    sv = param("vm", vm, "suspend-VDI-uuid")
    assert param("vdi", sv, "type") == "Suspend"
    assert {"resume", "hard_shutdown"} <= allowed(vm)
    assert count("console", **{"vm-uuid": vm}) == 0
    xe("vm-resume", "uuid=" + vm)
    assert power(vm) == "running"
    assert count("vdi", uuid=sv) == 0
    assert param("vm", vm, "suspend-VDI-uuid") == "<not in database>"
    # reboots: the clean one powers off (ACPI) and starts again
    dom = param("vm", vm, "dom-id")
    xe("vm-reboot", "uuid=" + vm)
    assert power(vm) == "running" and param("vm", vm, "dom-id") != dom
    xe("vm-reboot", "uuid=" + vm, "--force")
    assert power(vm) == "running"
    # clean shutdown, then a hard one from suspended
    xe("vm-shutdown", "uuid=" + vm)
    assert power(vm) == "halted" and param("vm", vm, "dom-id") == "-1"
    assert count("console", **{"vm-uuid": vm}) == 0
    xe("vm-start", "uuid=" + vm, "--paused")
    assert power(vm) == "paused"
    xe("vm-unpause", "uuid=" + vm)
    xe("vm-suspend", "uuid=" + vm)
    xe("vm-shutdown", "uuid=" + vm, "--force")
    assert power(vm) == "halted" and count("vdi", type="Suspend") == 0
    # reset-powerstate needs --force and stops whatever ran
    xe("vm-start", "uuid=" + vm)
    assert "must be forced" in xe_fails("vm-reset-powerstate", "uuid=" + vm)
    xe("vm-reset-powerstate", "uuid=" + vm, "--force")
    assert power(vm) == "halted"
    assert not os.path.exists(os.path.join(D.run_dir, vm, "sim.json")) or \
        not json.load(open(os.path.join(D.run_dir, vm, "sim.json")))["running"]
    msgs = {m["name"] for m in ok(s.message.get_all_records(sess)).values()
            if m["obj_uuid"] == vm}
    assert {"VM_STARTED", "VM_SHUTDOWN", "VM_SUSPENDED", "VM_RESUMED", "VM_REBOOTED"} <= msgs, msgs
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_operations_in_progress():
    vm = new_pv_vm("busy")
    xe("vm-param-set", "uuid=" + vm, "start-delay=2")
    s, sess = api()
    ref = ref_of(s, sess, vm)
    task = ok(s.Async.VM.start(sess, ref, False, False))
    wait(lambda: ok(s.VM.get_current_operations(sess, ref)), "the start to show")
    assert list(ok(s.VM.get_current_operations(sess, ref)).values()) == ["start"]
    assert ok(s.VM.get_allowed_operations(sess, ref)) == []
    p = fails(s.VM.hard_shutdown(sess, ref), "OTHER_OPERATION_IN_PROGRESS")
    assert p[0] == "VM" and p[1] == ref and p[2] == "start", p
    wait(lambda: ok(s.task.get_status(sess, task)) != "pending", "the start")
    assert ok(s.task.get_status(sess, task)) == "success"
    assert ok(s.VM.get_current_operations(sess, ref)) == {}
    xe("vm-param-set", "uuid=" + vm, "start-delay=0")
    xe("vm-shutdown", "uuid=" + vm, "--force")
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- actions after the guest's events --------------------------------------------------------

def test_actions_after_shutdown_and_reboot():
    vm = new_pv_vm("after")
    xe("vm-start", "uuid=" + vm)
    # the guest powers itself off: destroy (default) -> halted
    inject(vm, "poweroff")
    wait(lambda: power(vm) == "halted", "halted after poweroff")
    # restart -> running again, in a new QEMU
    xe("vm-param-set", "uuid=" + vm, "actions-after-shutdown=restart")
    xe("vm-start", "uuid=" + vm)
    dom = param("vm", vm, "dom-id")
    inject(vm, "poweroff")
    wait(lambda: power(vm) == "running" and param("vm", vm, "dom-id") != dom,
         "restart after poweroff")
    # a guest reboot is done in place (restart) or halts (destroy)
    dom = param("vm", vm, "dom-id")
    inject(vm, "reboot")
    wait(lambda: messages(vm, "VM_REBOOTED"), "the reboot's message")
    assert power(vm) == "running"
    xe("vm-param-set", "uuid=" + vm, "actions-after-reboot=destroy")
    inject(vm, "reboot")
    wait(lambda: power(vm) == "halted", "halted after reboot")
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_actions_after_crash():
    vm = new_pv_vm("crashy")
    s, sess = api()
    # restart (the default): a new domain
    xe("vm-start", "uuid=" + vm)
    dom = param("vm", vm, "dom-id")
    inject(vm, "panic")
    wait(lambda: param("vm", vm, "dom-id") != dom and power(vm) == "running", "restart")
    assert messages(vm, "VM_CRASHED")
    # preserve: paused for analysis; the core can be dumped, then shut down
    xe("vm-param-set", "uuid=" + vm, "actions-after-crash=preserve")
    inject(vm, "panic")
    wait(lambda: power(vm) == "paused", "preserved")
    core = os.path.join(TMP, "preserved.core")
    xe("vm-dump-core", "uuid=" + vm, "filename=" + core)
    assert open(core, "rb").read(4) == b"\x7fELF"
    xe("vm-shutdown", "uuid=" + vm, "--force")
    # destroy: halted
    xe("vm-param-set", "uuid=" + vm, "actions-after-crash=destroy")
    xe("vm-start", "uuid=" + vm)
    inject(vm, "panic")
    wait(lambda: power(vm) == "halted", "destroyed")
    # coredump_and_destroy: a core file in the crash dump directory, named in the message
    xe("vm-param-set", "uuid=" + vm, "actions-after-crash=coredump_and_destroy")
    xe("vm-start", "uuid=" + vm)
    n = len(messages(vm, "VM_CRASHED"))
    inject(vm, "panic")
    wait(lambda: power(vm) == "halted", "dumped and destroyed")
    body = [m["body"] for m in messages(vm, "VM_CRASHED")]
    assert len(body) == n + 1
    dump = re.search(r"core dump: (\S+)", max(body, key=len)).group(1)
    assert open(dump, "rb").read(4) == b"\x7fELF"
    # coredump_and_restart, and the process dying: restarted
    xe("vm-param-set", "uuid=" + vm, "actions-after-crash=coredump_and_restart")
    xe("vm-start", "uuid=" + vm)
    dom = param("vm", vm, "dom-id")
    inject(vm, "crash")
    wait(lambda: param("vm", vm, "dom-id") != dom and power(vm) == "running",
         "restart after QEMU died")
    # an internal error of QEMU is a crash too
    xe("vm-param-set", "uuid=" + vm, "actions-after-crash=destroy")
    inject(vm, "internal-error")
    wait(lambda: power(vm) == "halted", "halted after an internal error")
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_stuck_guest_reported():
    vm = new_pv_vm("stuck")
    xe("vm-start", "uuid=" + vm)
    inject(vm, "boot-timeout")
    wait(lambda: messages(vm, "VM_STUCK"), "the report")
    assert "no sign of an OS" in messages(vm, "VM_STUCK")[0]["body"]
    assert power(vm) == "running"
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_crash_loops_stop():
    vm = new_pv_vm("loop")
    xe("vm-start", "uuid=" + vm)
    for _ in range(3):
        dom = param("vm", vm, "dom-id")
        inject(vm, "panic")
        wait(lambda: param("vm", vm, "dom-id") != dom or power(vm) == "halted", "a restart")
    wait(lambda: power(vm) == "halted", "the loop to stop")
    assert any("not restarted" in m["body"] for m in messages(vm, "VM_CRASHED"))
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_rtc_offset():
    vm = new_pv_vm("clock")
    xe("vm-start", "uuid=" + vm)
    inject(vm, "rtc 3600")
    wait(lambda: param("vm", vm, "platform").find("timeoffset: 3600") >= 0, "timeoffset")
    # applied at the next start: later changes add up
    xe("vm-reboot", "uuid=" + vm, "--force")
    cfg = json.load(open(os.path.join(D.run_dir, vm, "config.json")))
    assert cfg["rtc_offset_s"] == 3600, cfg.get("rtc_offset_s")
    inject(vm, "rtc -60")
    wait(lambda: param("vm", vm, "platform", "timeoffset") == "3540", "timeoffset 3540")
    xe("vm-shutdown", "uuid=" + vm, "--force")
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- boot modes and device models -------------------------------------------------------------

def config(vm):
    return json.load(open(os.path.join(D.run_dir, vm, "config.json")))


def test_boot_modes_and_devices():
    make_iso_sr() if not out("cd-list", "params=name-label", "--minimal").count("install.iso") \
        else None
    # HVM without PV drivers: IDE disks, an e1000 NIC, HVM-boot-params:order
    win = out("vm-install", "template=Windows 7 (64-bit)", "new-name-label=win")
    net0 = out("network-list", "bridge=xenbr0", "--minimal")
    xe("vif-create", "vm-uuid=" + win, "network-uuid=" + net0, "device=0")
    xe("vm-cd-add", "uuid=" + win, "cd-name=install.iso", "device=3")
    xe("vm-start", "uuid=" + win)
    c = config(win)
    assert c["boot_order"] == "dc" and c.get("kernel") is None, c
    disks = {d["position"]: d for d in c["disks"]}
    assert disks[0]["bus"] == "ide" and disks[3]["type"] == "cdrom", disks
    assert c["nics"][0]["model"] == "e1000" and c["nics"][0]["backend"] == "user"
    assert c["usb_tablet"] and c["vnc"] == "unix", c
    xe("vm-shutdown", "uuid=" + win, "--force")
    xe("vm-param-set", "uuid=" + win, "platform:hyperxe-disk-bus=virtio",
       "platform:hyperxe-nic-model=rtl8139", "HVM-boot-params:order=cdn")
    xe("vm-start", "uuid=" + win)
    c = config(win)
    assert c["boot_order"] == "cdn" and c["nics"][0]["model"] == "rtl8139"
    assert {d["position"]: d["bus"] for d in c["disks"]} == {0: "virtio", 3: "ide"}
    xe("vm-shutdown", "uuid=" + win, "--force")
    xe("vm-uninstall", "uuid=" + win, "--force")
    # a Linux HVM template: virtio
    deb = out("vm-install", "template=Debian Jessie 8.0", "new-name-label=jessie")
    xe("vm-start", "uuid=" + deb)
    assert config(deb)["disks"][0]["bus"] == "virtio" and config(deb)["boot_order"] == "cdn"
    xe("vm-shutdown", "uuid=" + deb, "--force")
    xe("vm-uninstall", "uuid=" + deb, "--force")
    # PV with install-repository=cdrom: the firmware boots the bootable CD first (guide 5.2)
    pv = out("vm-install", "template=Debian Squeeze 6.0 (64-bit)", "new-name-label=cdinst")
    root = out("vbd-list", "vm-uuid=" + pv, "userdevice=0", "params=uuid", "--minimal")
    xe("vbd-param-set", "uuid=" + root, "bootable=false")
    xe("vm-cd-add", "uuid=" + pv, "cd-name=install.iso", "device=3")
    cd = out("vbd-list", "vm-uuid=" + pv, "type=CD", "params=uuid", "--minimal")
    xe("vbd-param-set", "uuid=" + cd, "bootable=true")
    xe("vm-param-set", "uuid=" + pv, "other-config:install-repository=cdrom")
    xe("vm-start", "uuid=" + pv)
    c = config(pv)
    assert c.get("kernel") is None and c["boot_order"] == "", c
    boot = {d["position"]: d["bootindex"] for d in c["disks"]}
    assert boot == {0: -1, 3: 1}, boot
    xe("vm-shutdown", "uuid=" + pv, "--force")
    # pygrub: the bootable disk
    xe("vm-param-set", "uuid=" + pv, "PV-bootloader=pygrub")
    xe("vbd-param-set", "uuid=" + root, "bootable=true")
    xe("vm-start", "uuid=" + pv)
    boot = {d["position"]: d["bootindex"] for d in config(pv)["disks"]}
    assert boot[0] == 1, boot
    xe("vm-shutdown", "uuid=" + pv, "--force")
    xe("vm-uninstall", "uuid=" + pv, "--force")


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_input():
    vm = new_pv_vm("bad")
    s, sess = api()
    ref = ref_of(s, sess, vm)
    # memory outside the template's recommendations: refused unless forced
    xe("vm-memory-limits-set", "uuid=" + vm, "static-min=64MiB", "static-max=64MiB",
       "dynamic-min=64MiB", "dynamic-max=64MiB")
    assert fails(s.VM.start(sess, ref, False, False), "VM_MEMORY_SIZE_TOO_LOW") == [ref]
    assert "too little memory" in xe_fails("vm-start", "uuid=" + vm)
    xe("vm-start", "uuid=" + vm, "--force")
    xe("vm-shutdown", "uuid=" + vm, "--force")
    xe("vm-memory-limits-set", "uuid=" + vm, "static-min=128MiB", "static-max=64GiB",
       "dynamic-min=256MiB", "dynamic-max=256MiB")
    p = fails(s.VM.start(sess, ref, False, False), "MEMORY_CONSTRAINT_VIOLATION")
    assert "memory_static_max <= %d" % (32 << 30) in p[0], p
    assert power(vm) == "halted"
    xe("vm-memory-set", "uuid=" + vm, "memory=256MiB")
    # impossible limits and vCPUs are refused when set
    fails(s.VM.set_memory_limits(sess, ref, str(512 << 20), str(256 << 20), str(256 << 20),
                                 str(256 << 20)), "MEMORY_CONSTRAINT_VIOLATION_ORDER")
    fails(s.VM.set_VCPUs_max(sess, ref, "65"), "VM_TOO_MANY_VCPUS")
    fails(s.VM.set_VCPUs_at_startup(sess, ref, "2"), "VALUE_NOT_SUPPORTED")
    # a missing kernel
    xe("vm-param-set", "uuid=" + vm, "PV-kernel=/nonexistent/vmlinuz")
    p = fails(s.VM.start(sess, ref, False, False), "BOOTLOADER_FAILED")
    assert "/nonexistent/vmlinuz" in p[1]
    assert power(vm) == "halted" and ok(s.VM.get_current_operations(sess, ref)) == {}
    # an unknown bootloader
    xe("vm-param-set", "uuid=" + vm, "PV-bootloader=grub4dos")
    assert fails(s.VM.start(sess, ref, False, False), "UNKNOWN_BOOTLOADER") == [ref, "grub4dos"]
    # an unreachable repository
    xe("vm-param-set", "uuid=" + vm, "PV-bootloader=eliloader",
       "other-config:install-repository=http://127.0.0.1:9/debian")
    p = fails(s.VM.start(sess, ref, False, False), "BOOTLOADER_FAILED")
    assert "127.0.0.1:9" in p[1], p
    xe("vm-param-set", "uuid=" + vm, "other-config:install-repository=gopher://x/")
    assert "not an http" in fails(s.VM.start(sess, ref, False, False), "BOOTLOADER_FAILED")[1]
    # no bootable device for a firmware boot
    xe("vm-param-remove", "uuid=" + vm, "param-name=other-config", "param-key=install-repository")
    vbd = out("vbd-list", "vm-uuid=" + vm, "params=uuid", "--minimal")
    xe("vbd-param-set", "uuid=" + vbd, "bootable=false")
    assert "no bootable disk" in fails(s.VM.start(sess, ref, False, False), "BOOTLOADER_FAILED")[1]
    assert power(vm) == "halted"
    assert not os.path.exists(os.path.join(D.run_dir, "boot-" + vm))
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- the installer from a network repository ---------------------------------------------------

class Repo:
    """A local HTTP server with Debian-netboot and RHEL-pxeboot shaped trees."""

    def __init__(self):
        self.root = os.path.join(TMP, "repo")
        self.requests = []
        deb = os.path.join(self.root, "debian", "dists", "squeeze", "main", "installer-amd64",
                           "current", "images", "netboot", "debian-installer", "amd64")
        rh = os.path.join(self.root, "centos", "images", "pxeboot")
        for d, k, i in [(deb, "linux", "initrd.gz"), (rh, "vmlinuz", "initrd.img")]:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, k), "wb") as f:
                f.write(b"kernel of " + d.encode())
            with open(os.path.join(d, i), "wb") as f:
                f.write(b"initrd of " + d.encode())
        repo = self

        class H(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=repo.root, **k)

            def log_message(self, *a):
                repo.requests.append(self.path)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path)


def test_network_install():
    repo = Repo()
    # Debian: the netboot kernel and initrd, booted with PV-args
    vm = out("vm-install", "template=Debian Squeeze 6.0 (64-bit)", "new-name-label=netinst")
    xe("vm-param-set", "uuid=" + vm, "other-config:install-repository=" + repo.url("debian"),
       "PV-args=auto=true priority=critical url=http://example/preseed.cfg")
    xe("vm-start", "uuid=" + vm)
    cfg = json.load(open(os.path.join(D.run_dir, vm, "config.json")))
    assert cfg["cmdline"] == "auto=true priority=critical url=http://example/preseed.cfg", cfg
    assert open(cfg["kernel"], "rb").read().startswith(b"kernel of "), cfg["kernel"]
    assert any("debian-installer/amd64/linux" in r for r in repo.requests), repo.requests
    # eliloader is one-shot: the installed system boots from its disk next time
    assert param("vm", vm, "PV-bootloader") == "pygrub"
    xe("vm-shutdown", "uuid=" + vm, "--force")
    assert not os.path.exists(cfg["kernel"])
    xe("vm-uninstall", "uuid=" + vm, "--force")
    # Red Hat: images/pxeboot, and the repository handed to the installer
    vm = out("vm-install", "template=CentOS 6 (64-bit)", "new-name-label=rhinst")
    xe("vm-param-set", "uuid=" + vm, "other-config:install-repository=" + repo.url("centos"),
       "PV-args=ks=http://example/ks.cfg ksdevice=eth0")
    xe("vm-start", "uuid=" + vm)
    cfg = json.load(open(os.path.join(D.run_dir, vm, "config.json")))
    assert cfg["cmdline"] == "ks=http://example/ks.cfg ksdevice=eth0 repo=" + \
        repo.url("centos"), cfg["cmdline"]
    assert any("images/pxeboot/vmlinuz" in r for r in repo.requests)
    xe("vm-shutdown", "uuid=" + vm, "--force")
    xe("vm-uninstall", "uuid=" + vm, "--force")
    # a repository without an installer: a clear error, nothing left
    vm = out("vm-install", "template=CentOS 6 (64-bit)", "new-name-label=noinst")
    xe("vm-param-set", "uuid=" + vm, "other-config:install-repository=" + repo.url("nothing"))
    err = xe_fails("vm-start", "uuid=" + vm)
    assert "no installer kernel and initrd found" in err and "404" in err, err
    assert power(vm) == "halted"
    xe("vm-uninstall", "uuid=" + vm, "--force")
    repo.srv.shutdown()


# ---- devices -----------------------------------------------------------------------------------

def make_iso_sr():
    d = os.path.join(TMP, "isos")
    os.makedirs(d, exist_ok=True)
    for name in ("install.iso", "drivers.iso"):
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"\0" * 2048 * 16)
    sr = out("sr-create", "name-label=lc-isos", "type=iso", "content-type=iso",
             "device-config:location=" + d)
    xe("sr-scan", "uuid=" + sr)
    return sr


def test_disks_and_cds():
    make_iso_sr()
    vm = new_pv_vm("devs")
    # CDs on a halted VM
    xe("vm-cd-add", "vm=devs", "cd-name=install.iso", "device=3")
    cd = out("vbd-list", "vm-uuid=" + vm, "type=CD", "params=uuid", "--minimal")
    assert param("vbd", cd, "mode") == "RO" and param("vbd", cd, "empty") == "false"
    assert "CD 0 VBD:" in out("vm-cd-list", "vm=devs")
    xe("vm-cd-eject", "vm=devs")
    assert param("vbd", cd, "empty") == "true"
    xe("vm-cd-insert", "vm=devs", "cd-name=drivers.iso")
    assert param("vbd", cd, "vdi-name-label") == "drivers.iso"
    assert "not empty" in xe_fails("vbd-insert", "uuid=" + cd, "vdi-uuid=" +
                                   param("vbd", cd, "vdi-uuid"))
    xe("vm-cd-eject", "vm=devs")
    # XenServer's rules on VBDs
    s, sess = api()
    ref = ref_of(s, sess, vm)
    rec = {"VM": ref, "VDI": "OpaqueRef:NULL", "userdevice": "5", "bootable": False,
           "mode": "RW", "type": "CD", "empty": True, "other_config": {},
           "qos_algorithm_type": "", "qos_algorithm_params": {}}
    fails(s.VBD.create(sess, rec), "VBD_CDS_MUST_BE_READONLY")
    rec.update(mode="RW", type="Disk")
    assert fails(s.VBD.create(sess, rec), "VBD_NOT_REMOVABLE_MEDIA") == ["in constructor"]
    rec.update(mode="RO", type="CD", userdevice="0")
    assert fails(s.VBD.create(sess, rec), "DEVICE_ALREADY_EXISTS") == ["0"]
    rec.update(userdevice="xvdq")
    fails(s.VBD.create(sess, rec), "INVALID_DEVICE")
    rec.update(userdevice="autodetect")
    auto = ok(s.VBD.create(sess, rec))
    assert ok(s.VBD.get_userdevice(sess, auto)) not in ("0", "3")
    ok(s.VBD.destroy(sess, auto))
    # hot-plug on the running VM
    xe("vm-start", "uuid=" + vm)
    assert param("vbd", cd, "currently-attached") == "true"
    assert param("vbd", cd, "device") == "hdd"
    xe("vm-cd-insert", "vm=devs", "cd-name=install.iso")
    assert param("vbd", cd, "vdi-name-label") == "install.iso"
    xe("vm-cd-eject", "vm=devs")
    assert param("vbd", cd, "empty") == "true"
    assert "VM has no empty CD drive" not in xe("vm-cd-insert", "vm=devs",
                                                  "cd-name=install.iso").stderr
    assert "no empty CD drive" in xe_fails("vm-cd-insert", "vm=devs", "cd-name=drivers.iso")
    xe("vm-disk-add", "vm=devs", "disk-size=1GiB", "device=1")
    disk = out("vbd-list", "vm-uuid=" + vm, "userdevice=1", "params=uuid", "--minimal")
    assert param("vbd", disk, "currently-attached") == "true"
    assert param("vbd", disk, "device") == "xvdb"
    assert "attached to a running VM" in xe_fails("vbd-destroy", "uuid=" + disk)
    xe("vbd-unplug", "uuid=" + disk)
    assert param("vbd", disk, "currently-attached") == "false"
    err = xe_fails("vbd-unplug", "uuid=" + disk)
    assert "not currently attached" in err
    xe("vbd-plug", "uuid=" + disk)
    assert param("vbd", disk, "currently-attached") == "true"
    vdis = count("vdi")
    xe("vm-disk-remove", "vm=devs", "device=1")
    assert count("vdi") == vdis - 1
    xe("vm-shutdown", "uuid=" + vm, "--force")
    assert param("vbd", cd, "currently-attached") == "false"
    xe("vm-uninstall", "uuid=" + vm, "--force")


def test_vifs_and_networks():
    vm = new_pv_vm("nets")
    net0 = out("network-list", "bridge=xenbr0", "--minimal")
    assert net0
    vif = out("vif-create", "vm-uuid=" + vm, "network-uuid=" + net0, "mac=random", "device=0")
    mac = param("vif", vif, "MAC")
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac), mac
    assert int(mac[:2], 16) & 0x02 and not int(mac[:2], 16) & 0x01  # local, unicast
    assert param("vif", vif, "MTU") == "1500"
    # from the VM's MAC seed when no MAC is given; unique anyway
    vif1 = out("vif-create", "vm-uuid=" + vm, "network-uuid=" + net0, "device=1")
    assert param("vif", vif1, "MAC-autogenerated") == "true"
    assert param("vif", vif1, "MAC") != mac
    s, sess = api()
    base = {"VM": ref_of(s, sess, vm), "network": ok(s.network.get_by_uuid(sess, net0)),
            "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
            "qos_algorithm_params": {}}
    assert fails(s.VIF.create(sess, dict(base, device="0", MAC="")),
                 "DEVICE_ALREADY_EXISTS") == ["0"]
    fails(s.VIF.create(sess, dict(base, device="eth2", MAC="")), "INVALID_DEVICE")
    assert fails(s.VIF.create(sess, dict(base, device="2", MAC="01:00:5e:00:00:01")),
                 "MAC_INVALID") == ["01:00:5e:00:00:01"]
    vifs = out("vm-vif-list", "vm=nets")
    assert re.search(r"device \( RO\): 0\n", vifs) and mac in vifs, vifs
    # networks: a new one gets xapi<N>; used ones cannot go; the default one stays
    net = out("network-create", "name-label=lab", "MTU=9000")
    assert re.fullmatch(r"xapi\d+", param("network", net, "bridge"))
    assert param("network", net, "MTU") == "9000"
    v2 = out("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=2")
    assert param("vif", v2, "MTU") == "9000"
    assert "contains active VIFs" in xe_fails("network-destroy", "uuid=" + net)
    # hot-plug (user-mode networking here, said in other-config)
    xe("vif-destroy", "uuid=" + v2)
    xe("vm-start", "uuid=" + vm)
    assert param("vif", vif, "currently-attached") == "true"
    assert "user-mode" in param("vif", vif, "other-config", "hyperxe-networking")
    v2 = out("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=2")
    assert param("vif", v2, "currently-attached") == "false"
    xe("vif-plug", "uuid=" + v2)
    assert param("vif", v2, "currently-attached") == "true"
    xe("vif-unplug", "uuid=" + v2)
    assert param("vif", v2, "currently-attached") == "false"
    xe("vif-destroy", "uuid=" + v2)
    xe("network-destroy", "uuid=" + net)
    err = xe_fails("network-destroy", "uuid=" + net0)
    assert "OPERATION_NOT_ALLOWED" in err and "cannot be destroyed" in err, err
    xe("vm-shutdown", "uuid=" + vm, "--force")
    xe("vm-uninstall", "uuid=" + vm, "--force")
    err = xe_fails("network-destroy", "uuid=" + net0)
    assert "default network" in err, err


def test_vcpus_live():
    vm = new_pv_vm("cpus")
    xe("vm-param-set", "uuid=" + vm, "VCPUs-max=4")
    xe("vm-start", "uuid=" + vm)
    xe("vm-vcpu-hotplug", "uuid=" + vm, "new-vcpus=3")
    assert param("vm", vm, "VCPUs-number") == "3"
    assert param("vm", vm, "VCPUs-at-startup") == "3"
    assert "between 1 and VCPUs-max" in xe_fails("vm-vcpu-hotplug", "uuid=" + vm, "new-vcpus=5")
    # the dynamic range of a running VM moves its balloon
    xe("vm-memory-dynamic-range-set", "uuid=" + vm, "min=128MiB", "max=192MiB")
    wait(lambda: param("vm", vm, "memory-actual") == str(192 << 20), "the balloon")
    cfg = json.load(open(os.path.join(D.run_dir, vm, "config.json")))
    assert cfg["memory_target_mib"] == 192 and cfg["memory_mib"] == 256, cfg
    xe("vm-shutdown", "uuid=" + vm, "--force")
    assert "expected: running" in xe_fails("vm-vcpu-hotplug", "uuid=" + vm, "new-vcpus=2")
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- BIOS strings ----------------------------------------------------------------------------

def test_bios_strings():
    host = out("host-list", "--minimal")
    vm = out("vm-install", "template=Windows 7 (64-bit)", "new-name-label=rok",
             "copy-bios-strings-from=" + host)
    assert out("vm-is-bios-customized", "uuid=" + vm) == "This VM is BIOS-customized."
    xe("vm-param-set", "uuid=" + vm, "has-vendor-device=false")
    assert "already been set" in xe_fails("vm-copy-bios-strings", "uuid=" + vm,
                                          "host-uuid=" + host)
    # the host's strings reach QEMU's SMBIOS tables
    s, sess = api()
    hs = ok(s.host.get_bios_strings(sess, ok(s.host.get_by_uuid(sess, host))))
    xe("vm-param-set", "uuid=" + vm, "HVM-boot-policy=", "PV-kernel=" + KERNEL)
    xe("vm-start", "uuid=" + vm, "--force")
    sm = json.load(open(os.path.join(D.run_dir, vm, "config.json")))["smbios"]
    assert sm["system-manufacturer"] == hs["system-manufacturer"] != "Xen", (sm, hs)
    assert sm["system-serial-number"] == hs["system-serial-number"]
    xe("vm-shutdown", "uuid=" + vm, "--force")
    plain = out("vm-install", "template=Windows 7 (64-bit)", "new-name-label=plain")
    assert out("vm-is-bios-customized", "uuid=" + plain) == \
        "The BIOS strings of this VM have not yet been set."
    # the first start makes it BIOS-generic
    xe("vm-param-set", "uuid=" + plain, "HVM-boot-policy=", "PV-kernel=" + KERNEL)
    xe("vm-start", "uuid=" + plain, "--force")
    xe("vm-shutdown", "uuid=" + plain, "--force")
    assert out("vm-is-bios-customized", "uuid=" + plain) == "This VM is BIOS-generic."
    for v in (vm, plain):
        xe("vm-uninstall", "uuid=" + v, "--force")


# ---- consoles ------------------------------------------------------------------------------------

def ws_connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(os.path.join(D.run_dir, "hyperxed.sock"))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: binary\r\n\r\n" % (path, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        assert c, head
        head += c
    return s, key, head.decode()


def ws_recv(s):
    h = s.recv(2)
    n = h[1] & 0x7f
    if n == 126:
        n = struct.unpack(">H", s.recv(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", s.recv(8))[0]
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    return h[0] & 0x0f, data


def test_consoles():
    vm = new_pv_vm("cons")
    xe("vm-start", "uuid=" + vm)
    text = out("console", "vm=cons")
    assert "booted" in text, text
    vt = out("console-list", "vm-uuid=" + vm, "protocol=VT100", "--minimal")
    rfb = out("console-list", "vm-uuid=" + vm, "protocol=RFB", "--minimal")
    s, sess = api()
    vt_ref = ok(s.console.get_by_uuid(sess, vt))
    loc = ok(s.console.get_location(sess, vt_ref))
    assert loc.startswith("https://") and loc.endswith("/console?ref=" + vt_ref), loc
    # the text console as a WebSocket: what the guest wrote, then what it writes
    sock, key, head = ws_connect("/console?ref=" + vt_ref)
    assert head.startswith("HTTP/1.1 101"), head
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                           .encode()).digest()).decode()
    assert "Sec-WebSocket-Accept: " + accept in head, head
    op, data = ws_recv(sock)
    assert op == 2 and b"booted" in data, data
    with open(os.path.join(D.run_dir, vm, "console.log"), "a") as f:
        f.write("TEST-MARKER: more output\n")
    op, data = ws_recv(sock)
    assert b"more output" in data, data
    # a masked close gets its close back
    sock.sendall(bytes([0x88, 0x82]) + b"\x01\x02\x03\x04" + bytes([0x03 ^ 1, 0xe8 ^ 2]))
    op, _ = ws_recv(sock)
    assert op == 8
    sock.close()
    # unauthenticated over TCP: refused
    c = socket.create_connection(("127.0.0.1", D.port), timeout=20)
    c.sendall(("GET /console?ref=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % vt_ref).encode())
    assert c.recv(100).startswith(b"HTTP/1.1 401"), "no session must be refused"
    c.close()
    # the graphical console is a WebSocket only
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        "--unix-socket", os.path.join(D.run_dir, "hyperxed.sock"),
                        "http://localhost/console?ref=" + ok(s.console.get_by_uuid(sess, rfb))],
                       capture_output=True, text=True)
    assert r.stdout == "400", r.stdout
    xe("vm-shutdown", "uuid=" + vm, "--force")
    assert "not running" in xe_fails("console", "vm=cons")
    err = xe_fails("vm-dump-core", "uuid=" + vm, "filename=" + os.path.join(TMP, "x.core"))
    assert "expected: paused, running" in err and "actual: halted" in err, err
    assert not os.path.exists(os.path.join(TMP, "x.core"))
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- a daemon killed while VMs run ---------------------------------------------------------------

def test_restart_keeps_vms():
    a = new_pv_vm("keep-a")
    b = new_pv_vm("keep-b")
    c = new_pv_vm("keep-c")
    for v in (a, b, c):
        xe("vm-start", "uuid=" + v)
    xe("vm-pause", "uuid=" + b)
    doms = {v: param("vm", v, "dom-id") for v in (a, b, c)}
    # c's QEMU ends while no daemon watches (its guest powered off)
    D.stop(signal.SIGKILL)
    simf = os.path.join(D.run_dir, c, "sim.json")
    st = json.load(open(simf))
    st["running"] = False
    json.dump(st, open(simf, "w"))
    D.start()
    assert power(a) == "running" and param("vm", a, "dom-id") == doms[a]
    assert power(b) == "paused" and param("vm", b, "dom-id") == doms[b]
    # c: gone meanwhile, so it crashed: restarted (actions-after-crash restart)
    wait(lambda: power(c) == "running" and param("vm", c, "dom-id") not in doms.values(),
         "c restarted")
    # still managed, nothing duplicated
    xe("vm-unpause", "uuid=" + b)
    new = out("vm-install", "template=Other install media", "new-name-label=after-restart")
    xe("vm-param-set", "uuid=" + new, "HVM-boot-policy=", "PV-kernel=" + KERNEL)
    xe("vm-start", "uuid=" + new)
    assert param("vm", new, "dom-id") not in [param("vm", v, "dom-id") for v in (a, b, c)]
    for v in (a, b, c, new):
        xe("vm-shutdown", "uuid=" + v)
        assert power(v) == "halted"
        xe("vm-uninstall", "uuid=" + v, "--force")


def main():
    global D
    for p in (KERNEL, INITRD):
        with open(p, "wb") as f:
            f.write(b"not really a kernel")
    D = Daemon(vmm="sim")
    try:
        run_tests([test_builtin_templates, test_vm_install_and_uninstall,
                   test_vm_install_leaves_nothing_on_failure, test_template_round_trip,
                   test_power_state_machine, test_operations_in_progress,
                   test_actions_after_shutdown_and_reboot, test_actions_after_crash,
                   test_stuck_guest_reported, test_crash_loops_stop, test_rtc_offset, test_boot_modes_and_devices,
                   test_bad_input,
                   test_network_install, test_disks_and_cds, test_vifs_and_networks,
                   test_vcpus_live, test_bios_strings, test_consoles,
                   test_restart_keeps_vms])
    finally:
        D.cleanup()
        subprocess.run(["rm", "-rf", TMP])


if __name__ == "__main__":
    main()
