#!/usr/bin/env python3
"""Networks as bridges, VIFs as taps, with a real guest: the whole test runs
in a network namespace of its own (so the host's networking is never
touched), with a hyperxed that makes bridges. The default network xenbr0 is
NAT with DHCP: the guest takes a lease and its web page is fetched from the
host through the bridge. A second, internal network comes up when a VIF on it
is hot-plugged. At shutdown the taps go."""

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from hxtest import SOURCE_DIR, Daemon, run_tests

CLONE_NEWNET = 0x40000000
GUEST = os.environ.get("HX_TEST_GUEST", os.path.join(SOURCE_DIR, ".cache", "guest"))
D = None
SKIP = 77
BOOT = 150


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def out(*args):
    return D.xe(*args).stdout.strip()


def param(cls, uuid, name, key=None):
    a = ["%s-param-get" % cls, "uuid=" + uuid, "param-name=" + name]
    if key:
        a.append("param-key=" + key)
    return out(*a)


def console(vm):
    try:
        return open(os.path.join(D.run_dir, vm, "console.log"), errors="replace").read()
    except OSError:
        return ""


def wait(pred, what, timeout=BOOT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def ports(bridge):
    r = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                       text=True)
    return re.findall(r"^\d+: ([^:@]+)", r.stdout, re.M)


def test_nat_dhcp_and_taps():
    net = out("network-list", "bridge=xenbr0", "--minimal")
    addr = param("network", net, "other-config", "hyperxe-address")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.1/\d+", addr), addr
    assert subprocess.run(["ip", "link", "show", "xenbr0"], capture_output=True).returncode == 0
    vm = out("vm-install", "template=Other install media", "new-name-label=net")
    D.xe("vm-param-set", "uuid=" + vm, "HVM-boot-policy=", "domain-type=pv", "PV-bootloader=",
         "PV-kernel=" + os.path.join(GUEST, "vmlinuz"),
         "PV-ramdisk=" + os.path.join(GUEST, "initrd.img"),
         "PV-args=console=ttyS0,115200 quiet panic=-1 test=wait test.net=dhcp")
    vif = out("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0")
    D.xe("vm-start", "uuid=" + vm)
    dom = param("vm", vm, "dom-id")
    assert ports("xenbr0") == ["vif%s.0" % dom], ports("xenbr0")
    assert "hyperxe-networking" not in param("vif", vif, "other-config")
    ip = wait(lambda: re.search(r"TEST-INFO: ip=(\d+\.\d+\.\d+\.\d+)/", console(vm)),
              "the guest's DHCP lease").group(1)
    assert ip.rsplit(".", 1)[0] == addr.rsplit(".", 1)[0], (ip, addr)
    page = wait(lambda: fetch("http://%s/" % ip), "the guest's web page", timeout=30)
    assert "hello from the test guest" in page

    # an internal network comes up when a VIF on it is plugged
    lab = out("network-create", "name-label=lab")
    bridge = param("network", lab, "bridge")
    v2 = out("vif-create", "vm-uuid=" + vm, "network-uuid=" + lab, "device=1")
    D.xe("vif-plug", "uuid=" + v2)
    assert ports(bridge) == ["vif%s.1" % dom], ports(bridge)
    wait(lambda: re.search(r"TEST-HOTPLUG: netdevs=.*eth1", console(vm)), "eth1 in the guest")

    D.xe("vm-shutdown", "uuid=" + vm, "--force")
    assert ports("xenbr0") == [] and ports(bridge) == []
    D.xe("vm-uninstall", "uuid=" + vm, "--force")
    D.xe("network-destroy", "uuid=" + lab)
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.read().decode()
    except OSError:
        return None


def main():
    global D
    if os.geteuid() != 0:
        skip("needs root to make bridges")
    if not shutil.which("qemu-system-x86_64") or not os.path.exists("/usr/sbin/dnsmasq"):
        skip("needs qemu-system-x86_64 and dnsmasq")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        skip("cannot make a network namespace: %s" % os.strerror(ctypes.get_errno()))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ["no_proxy"] = "*"
    if not os.path.exists(os.path.join(GUEST, "vmlinuz")):
        subprocess.run([os.path.join(SOURCE_DIR, "scripts", "build-test-guest"), GUEST],
                       check=True)
    D = Daemon(host_networking=True)
    try:
        run_tests([test_nat_dhcp_and_taps])
    finally:
        # dnsmasq outlives the daemon by design: end it (and any QEMU) by pid
        for f in os.listdir(D.run_dir):
            if f.startswith("dnsmasq-") and f.endswith(".pid"):
                try:
                    os.kill(int(open(os.path.join(D.run_dir, f)).read()), signal.SIGTERM)
                except (OSError, ValueError):
                    pass
        for p in subprocess.run(["pgrep", "-f", D.run_dir], capture_output=True,
                                text=True).stdout.split():
            try:
                if int(p) != D.pid():
                    os.kill(int(p), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        D.cleanup()


if __name__ == "__main__":
    main()
