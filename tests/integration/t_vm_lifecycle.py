#!/usr/bin/env python3
"""Real guests under QEMU (TCG) through xe: the test guest
(scripts/build-test-guest) booted by SeaBIOS from a disk VDI and directly
from its kernel; clean (ACPI) and hard shutdown, reboots, suspend and resume
with the guest's workload going on, pause and unpause; a guest crash (sysrq
c) under actions-after-crash preserve, destroy, coredump_and_destroy and
restart; a network install from a local Debian-netboot-shaped repository
whose kernel sees its PV-args; a disk, a CD and a NIC hot-plugged into the
running guest and seen from inside; and hyperxed killed with SIGKILL while
VMs run. What the guest sees comes from its serial console (TEST-MARKER,
TEST-HEARTBEAT, TEST-HOTPLUG lines)."""

import base64
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from hxtest import SOURCE_DIR, Daemon, ok, run_tests

D = None
GUEST = os.environ.get("HX_TEST_GUEST", os.path.join(SOURCE_DIR, ".cache", "guest"))
TMP = tempfile.mkdtemp(prefix="hx-vm-")
BOOT = 120  # seconds a TCG boot may take on a loaded two-core machine
PV_ARGS = "console=ttyS0,115200 quiet panic=-1"
SKIP = 77


def xe(*args, check=True):
    return D.xe(*args, check=check)


def out(*args):
    return xe(*args).stdout.strip()


def param(cls, uuid, name, key=None):
    a = ["%s-param-get" % cls, "uuid=" + uuid, "param-name=" + name]
    if key:
        a.append("param-key=" + key)
    return out(*a)


def power(vm):
    return param("vm", vm, "power-state")


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


def wait_console(vm, regex, what, count=1, timeout=BOOT):
    r = re.compile(regex)
    return wait(lambda: len(r.findall(console(vm))) >= count or None, what, timeout)


def heartbeat(vm):
    n = re.findall(r"TEST-HEARTBEAT (\d+)", console(vm))
    return int(n[-1]) if n else 0


def messages(vm, name):
    s, sess = D.login()
    return [m for m in ok(s.message.get_all_records(sess)).values()
            if m["obj_uuid"] == vm and m["name"] == name]


def pv_vm(name, args, template="Other install media"):
    vm = out("vm-install", "template=" + template, "new-name-label=" + name)
    xe("vm-param-set", "uuid=" + vm, "HVM-boot-policy=", "domain-type=pv", "PV-bootloader=",
       "PV-kernel=" + os.path.join(GUEST, "vmlinuz"),
       "PV-ramdisk=" + os.path.join(GUEST, "initrd.img"), "PV-args=%s %s" % (PV_ARGS, args))
    return vm


def qemu_pids(vm):
    r = subprocess.run(["pgrep", "-f", "[-]uuid %s" % vm], capture_output=True, text=True)
    return r.stdout.split()


# ---- BIOS boot from a disk VDI and the power operations ----------------------------------------

def test_bios_boot_and_power_operations():
    # An HVM Linux template: SeaBIOS boots the disk (syslinux, then the guest's kernel).
    vm = out("vm-install", "template=Debian Jessie 8.0", "new-name-label=bios")
    vdi = param("vbd", out("vbd-list", "vm-uuid=" + vm, "userdevice=0", "params=uuid",
                           "--minimal"), "vdi-uuid")
    xe("vdi-import", "uuid=" + vdi, "filename=" + os.path.join(GUEST, "disk.qcow2"),
       "format=qcow2")
    xe("vm-start", "uuid=" + vm)
    assert power(vm) == "running"
    wait_console(vm, r"TEST-MARKER: READY", "the BIOS boot")
    assert "TEST-MARKER: READY" in out("console", "uuid=" + vm)
    argv = open(os.path.join(D.run_dir, vm, "qemu.argv")).read()
    assert "-accel tcg" in argv and "-kernel" not in argv and "virtio-blk-pci" in argv
    assert "vhost" not in argv

    # pause: the workload stops; unpause: it goes on
    wait(lambda: heartbeat(vm) >= 1, "a heartbeat")
    xe("vm-pause", "uuid=" + vm)
    assert power(vm) == "paused"
    n = heartbeat(vm)
    time.sleep(2.5)
    assert heartbeat(vm) <= n + 1, "the guest ran while paused"
    xe("vm-unpause", "uuid=" + vm)
    wait(lambda: heartbeat(vm) >= n + 3, "heartbeats after unpause")

    # suspend and resume: memory in a suspend VDI; the same boot goes on
    boots = console(vm).count("TEST-MARKER: READY")
    before = heartbeat(vm)
    xe("vm-suspend", "uuid=" + vm)
    assert power(vm) == "suspended" and not qemu_pids(vm)
    sv = param("vm", vm, "suspend-VDI-uuid")
    assert int(param("vdi", sv, "virtual-size")) > 0
    xe("vm-resume", "uuid=" + vm)
    assert power(vm) == "running"
    wait(lambda: heartbeat(vm) >= before + 3, "heartbeats after resume")
    assert console(vm).count("TEST-MARKER: READY") == boots, "the guest rebooted on resume"

    # clean reboot (no agent: ACPI power-off, then a new boot), hard reboot
    xe("vm-reboot", "uuid=" + vm)
    wait_console(vm, r"TEST-MARKER: READY", "the boot after a clean reboot")
    assert "TEST-MARKER: power button" in open(
        os.path.join(D.run_dir, vm, "console.log.old"), errors="replace").read()
    xe("vm-reboot", "uuid=" + vm, "--force")
    wait_console(vm, r"TEST-MARKER: READY", "the boot after a hard reboot")

    # clean shutdown through the ACPI power button
    xe("vm-shutdown", "uuid=" + vm)
    assert power(vm) == "halted" and not qemu_pids(vm)
    assert "TEST-MARKER: power button" in console(vm)

    # xe-edit-bootloader (troubleshooting 2): the guest's syslinux.cfg edited in place
    editor = os.path.join(TMP, "editor")
    with open(editor, "w") as f:
        f.write("#!/bin/sh\nsed -i 's/test=wait/test=wait edited-by=xe-edit-bootloader/' \"$1\"\n")
    os.chmod(editor, 0o755)
    env = dict(os.environ, HYPERXE_RUN_DIR=D.run_dir, HOME=D.tmp, EDITOR=editor,
               XE=os.environ.get("XE", "xe"))
    r = subprocess.run([os.path.join(SOURCE_DIR, "src", "cli", "xe-edit-bootloader"),
                        "-n", "bios", "-p", "1"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "syslinux.cfg written back" in r.stdout, r.stdout + r.stderr
    # left running for the restart test
    xe("vm-start", "uuid=" + vm)
    wait_console(vm, r"TEST-MARKER: READY", "the boot")
    assert "edited-by=xe-edit-bootloader" in re.search(r"TEST-INFO: cmdline=(.*)",
                                                       console(vm)).group(1)

    # the graphical console: a WebSocket to QEMU's VNC server, which speaks RFB
    s, sess = D.login()
    rfb = ok(s.console.get_by_uuid(sess, out("console-list", "vm-uuid=" + vm, "protocol=RFB",
                                             "--minimal")))
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(os.path.join(D.run_dir, "hyperxed.sock"))
    sock.sendall(("GET /console?ref=%s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n"
                  % (rfb, base64.b64encode(os.urandom(16)).decode())).encode())
    data = b""
    while b"RFB 003.008" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 101"), data
    sock.close()
    assert not [l for l in open("/proc/net/tcp").read().splitlines()[1:]
                if l.split()[3] == "0A" and int(l.split()[1].split(":")[1], 16) in
                range(5900, 6000)], "VNC listens on TCP"


# ---- guest crashes ------------------------------------------------------------------------------

def test_guest_crashes():
    args = "test=crash test.crash_after=1"
    vms = {a: pv_vm("crash-" + a, args)
           for a in ("preserve", "destroy", "coredump_and_destroy", "restart")}
    for a, vm in vms.items():
        xe("vm-param-set", "uuid=" + vm, "actions-after-crash=" + a)
    # and a guest that never gets past its firmware (an empty disk): reported, not waited on
    stuck = out("vm-install", "template=Debian Jessie 8.0", "new-name-label=stuck")
    xe("vm-param-set", "uuid=" + stuck, "other-config:hyperxe-boot-timeout=20")
    xe("vm-start", "uuid=" + stuck)
    for vm in vms.values():
        xe("vm-start", "uuid=" + vm)

    # preserve: paused as it crashed, for analysis (its memory can be dumped)
    vm = vms["preserve"]
    wait(lambda: power(vm) == "paused", "the preserved crash")
    assert "TEST-MARKER: crashing" in console(vm)
    core = os.path.join(TMP, "preserved.core")
    xe("vm-dump-core", "uuid=" + vm, "filename=" + core)
    with open(core, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert os.path.getsize(core) > 100 << 20  # the guest's 256 MiB
    xe("vm-shutdown", "uuid=" + vm, "--force")
    os.unlink(core)

    # destroy: halted
    vm = vms["destroy"]
    wait(lambda: power(vm) == "halted", "the destroyed crash")
    assert messages(vm, "VM_CRASHED")

    # coredump_and_destroy: halted, with a core dump named in the message
    vm = vms["coredump_and_destroy"]
    wait(lambda: power(vm) == "halted", "the dumped crash")
    body = messages(vm, "VM_CRASHED")[0]["body"]
    path = re.search(r"core dump: (\S+)", body).group(1)
    with open(path, "rb") as f:
        assert f.read(4) == b"\x7fELF"

    # restart: boots again (and crashes again), until three quick crashes stop it
    vm = vms["restart"]
    wait(lambda: any("not restarted" in m["body"] for m in messages(vm, "VM_CRASHED")),
         "the crash loop to stop", timeout=3 * BOOT)
    assert len(messages(vm, "VM_CRASHED")) >= 3
    wait(lambda: power(vm) == "halted", "halted after the loop")
    for vm in vms.values():
        xe("vm-uninstall", "uuid=" + vm, "--force")

    wait(lambda: messages(stuck, "VM_STUCK"), "the stuck guest's report")
    assert "no sign of an OS" in messages(stuck, "VM_STUCK")[0]["body"], messages(stuck,
                                                                                "VM_STUCK")
    assert power(stuck) == "running"
    xe("vm-uninstall", "uuid=" + stuck, "--force")


# ---- network install and hot-plug ----------------------------------------------------------

class Repo:
    """A Debian mirror as the installer's netboot needs it, serving the test guest."""

    def __init__(self):
        self.root = os.path.join(TMP, "mirror")
        d = os.path.join(self.root, "debian", "dists", "squeeze", "main", "installer-amd64",
                         "current", "images", "netboot", "debian-installer", "amd64")
        os.makedirs(d)
        shutil.copy(os.path.join(GUEST, "vmlinuz"), os.path.join(d, "linux"))
        shutil.copy(os.path.join(GUEST, "initrd.img"), os.path.join(d, "initrd.gz"))
        root = self.root

        class H(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=root, **k)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/debian" % self.srv.server_address[1]


def iso_name():
    """An ISO in an ISO SR: the tools ISO, or one made here."""
    cds = out("cd-list", "params=name-label", "--minimal").split(",")
    if "guest-tools.iso" in cds:
        return "guest-tools.iso"
    d = os.path.join(TMP, "isos")
    os.makedirs(d)
    src = os.path.join(TMP, "isosrc")
    os.makedirs(src)
    open(os.path.join(src, "hello.txt"), "w").write("hello\n")
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", os.path.join(d, "test.iso"),
                    src], check=True)
    sr = out("sr-create", "name-label=isos", "type=iso", "content-type=iso",
             "device-config:location=" + d)
    xe("sr-scan", "uuid=" + sr)
    return "test.iso"


def test_network_install_and_hotplug():
    repo = Repo()
    vm = out("vm-install", "template=Debian Squeeze 6.0 (64-bit)", "new-name-label=netinst")
    xe("vm-param-set", "uuid=" + vm, "other-config:install-repository=" + repo.url,
       "PV-args=%s test=wait preseed/url=http://example.com/preseed.cfg" % PV_ARGS)
    # an empty CD drive, and a NIC on the default network
    xe("vbd-create", "vm-uuid=" + vm, "device=3", "type=CD", "mode=RO")
    net = out("network-list", "bridge=xenbr0", "--minimal")
    xe("vm-start", "uuid=" + vm)
    wait_console(vm, r"TEST-MARKER: READY", "the installer's boot")
    info = re.search(r"TEST-INFO: cmdline=(.*)", console(vm)).group(1)
    assert "preseed/url=http://example.com/preseed.cfg" in info, info
    assert param("vm", vm, "PV-bootloader") == "pygrub"

    # a disk
    xe("vm-disk-add", "uuid=" + vm, "disk-size=64MiB", "device=1")
    wait_console(vm, r"TEST-HOTPLUG: blockdevs=.*vdb", "the new disk in the guest")
    disk = out("vbd-list", "vm-uuid=" + vm, "userdevice=1", "params=uuid", "--minimal")
    xe("vbd-unplug", "uuid=" + disk)
    wait(lambda: re.findall(r"TEST-HOTPLUG: blockdevs=(.*)", console(vm))[-1].find("vdb") < 0,
         "the disk gone from the guest")
    # a CD, inserted and ejected
    iso = iso_name()
    xe("vm-cd-insert", "uuid=" + vm, "cd-name=" + iso)
    wait_console(vm, r"TEST-HOTPLUG: cdmedia=sr0=[1-9]", "the CD in the guest")
    xe("vm-cd-eject", "uuid=" + vm)
    wait_console(vm, r"TEST-HOTPLUG: cdmedia=sr0=0", "the CD ejected in the guest")
    # a NIC
    vif = out("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "mac=random", "device=0")
    xe("vif-plug", "uuid=" + vif)
    wait_console(vm, r"TEST-HOTPLUG: netdevs=.*eth0", "the NIC in the guest")
    assert param("vif", vif, "currently-attached") == "true"
    xe("vif-unplug", "uuid=" + vif)
    wait(lambda: re.findall(r"TEST-HOTPLUG: netdevs=(.*)", console(vm))[-1].find("eth0") < 0,
         "the NIC gone from the guest")
    repo.srv.shutdown()
    # left running for the restart test


# ---- clean shutdown and reboot through the guest agent -----------------------------------------

def agent_guest():
    """The test guest with hyperxe-agent started at boot (as tests/guest builds it)."""
    agent = os.path.join(os.environ.get("HX_BUILD_DIR", ""), "src", "agent", "hyperxe-agent")
    if not os.path.exists(agent):
        return None
    out_dir = os.path.join(os.environ["HX_BUILD_DIR"], "tests", "integration", "agent-guest")
    env = dict(os.environ, HX_GUEST_EXTRA="%s:/usr/sbin/hyperxe-agent %s:/etc/rc.guest" % (
        agent, os.path.join(SOURCE_DIR, "tests", "guest", "rc.agent")))
    r = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "build-test-guest"), out_dir],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    return out_dir


def test_guest_agent_shutdown_and_reboot():
    g = agent_guest()
    if not g:
        print("# skipped: no hyperxe-agent in the build")
        return
    vm = pv_vm("agent", "test=wait")
    xe("vm-param-set", "uuid=" + vm, "PV-ramdisk=" + os.path.join(g, "initrd.img"))
    xe("vm-start", "uuid=" + vm)
    wait_console(vm, r"hyperxe-agent started \(rc=0\)", "the agent")
    wait_console(vm, r"TEST-MARKER: READY", "the boot")
    pid = qemu_pids(vm)
    # a clean reboot is the agent's: the guest reboots in place, in the same QEMU
    xe("vm-reboot", "uuid=" + vm)
    wait_console(vm, r"TEST-MARKER: READY", "the second boot", count=2)
    assert "TEST-MARKER: reboot" in console(vm) and qemu_pids(vm) == pid
    assert power(vm) == "running"
    # a clean shutdown too: the agent powers the guest off (not the power button)
    wait_console(vm, r"hyperxe-agent started \(rc=0\)", "the agent again", count=2)
    xe("vm-shutdown", "uuid=" + vm)
    assert power(vm) == "halted"
    log = console(vm)
    assert "TEST-MARKER: poweroff" in log and "power button" not in log, log[-500:]
    xe("vm-uninstall", "uuid=" + vm, "--force")


# ---- the daemon killed while VMs run ----------------------------------------------------------

def test_daemon_killed_while_vms_run():
    vms = [out("vm-list", "name-label=bios", "--minimal"),
           out("vm-list", "name-label=netinst", "--minimal")]
    pids = {vm: qemu_pids(vm) for vm in vms}
    for vm in vms:
        assert power(vm) == "running" and len(pids[vm]) == 1, pids
    D.stop(signal.SIGKILL)
    hb = {vm: heartbeat(vm) for vm in vms}
    D.start()
    for vm in vms:
        assert power(vm) == "running"
        assert qemu_pids(vm) == pids[vm], "the QEMU was replaced or duplicated"
        wait(lambda: heartbeat(vm) > hb[vm] + 1, "the guest's heartbeat")
    # still managed: a clean shutdown through the adopted QEMU
    xe("vm-shutdown", "uuid=" + vms[1])
    assert power(vms[1]) == "halted" and not qemu_pids(vms[1])
    # a QEMU that dies while no daemon watches is a crash: restarted at the next start
    D.stop(signal.SIGKILL)
    os.kill(int(pids[vms[0]][0]), signal.SIGKILL)
    wait(lambda: not qemu_pids(vms[0]), "the QEMU to die")
    D.start()
    wait(lambda: len(qemu_pids(vms[0])) == 1 and power(vms[0]) == "running", "the restart")
    assert qemu_pids(vms[0]) != pids[vms[0]]
    wait_console(vms[0], r"TEST-MARKER: READY", "the boot after the restart")
    assert messages(vms[0], "VM_CRASHED")
    for vm in vms:
        xe("vm-uninstall", "uuid=" + vm, "--force")
        assert not qemu_pids(vm)


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
        run_tests([test_bios_boot_and_power_operations, test_guest_crashes,
                   test_network_install_and_hotplug, test_guest_agent_shutdown_and_reboot,
                   test_daemon_killed_while_vms_run])
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
