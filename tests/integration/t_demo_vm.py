#!/usr/bin/env python3
"""The Demo Linux Virtual Appliance through hyperxed, as ./scripts/demo and
the guide's chapter 11 use it: hyperxe-demo.xva (scripts/build-demo-xva)
imported with xe vm-import, started with xe vm-start under TCG on the
default network (bridge, NAT, DHCP; the whole test runs in a network
namespace of its own), and then, from the host:

- the agent reports through xe vm-param-get: networks (the DHCP address,
  keyed by VIF device 0), os-version, memory, disks, PV drivers;
- the console asks for the root password (first boot);
- the "Demonstration Linux Virtual Machine" page answers on the guest's IP;
- a disk added with xe vm-disk-add and formatted in the guest is mounted
  with the page's Mount button, and the guest metrics show it;
- a quiesced snapshot freezes and thaws the guest's file systems;
- xe vm-shutdown is clean, through the agent.

The time from xe vm-start to the IP in the guest metrics is printed (the
benchmark bench/demo-start-to-ip compares it with a QEMU run by hand)."""

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from hxtest import SOURCE_DIR, Daemon, run_tests

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "guest"))
import hxvm  # noqa: E402

CLONE_NEWNET = 0x40000000
SKIP = 77
BUILD = os.environ.get("HX_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
D = None
VM = None


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def xe(*args, check=True):
    return D.xe(*args, check=check)


def out(*args):
    return xe(*args).stdout.strip()


def param(name, key=None, uuid=None):
    a = ["vm-param-get", "uuid=" + (uuid or VM), "param-name=" + name]
    if key:
        a.append("param-key=" + key)
    return out(*a)


def pmap(name):
    text = param(name)
    if not text or text == "<not in database>":
        return {}
    return dict(kv.split(": ", 1) for kv in text.split("; "))


def console():
    try:
        with open(os.path.join(D.run_dir, VM, "console.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait(pred, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s\n%s" % (what, console()[-2000:]))


def fetch(url, data=None):
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def demo_xva():
    """The appliance's XVA: $HX_DEMO_XVA, else built (again when the agent is newer)."""
    if os.environ.get("HX_DEMO_XVA"):
        return os.environ["HX_DEMO_XVA"]
    xva = os.path.join(BUILD, "tests", "integration", "demo-xva", "hyperxe-demo.xva")
    agent = os.path.join(BUILD, "src", "agent", "hyperxe-agent")
    if not os.path.exists(xva) or os.path.getmtime(xva) < os.path.getmtime(agent):
        os.makedirs(os.path.dirname(xva), exist_ok=True)
        r = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "build-demo-xva"), xva],
                           env=dict(os.environ, HX_BUILD_DIR=BUILD), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print(r.stdout)
            if "cannot find linux-image" in r.stdout or "Unable to locate" in r.stdout:
                skip("the kernel package cannot be downloaded")
            raise AssertionError("build-demo-xva failed")
    return xva


# ---- the checks ---------------------------------------------------------------------------------

def test_import_start_and_metrics():
    global VM
    VM = out("vm-import", "filename=" + demo_xva())
    assert re.fullmatch(r"[0-9a-f-]{36}", VM), VM
    assert param("name-label") == "Demo Linux VM"
    vif = out("vif-list", "vm-uuid=" + VM, "params=uuid", "--minimal")
    net = out("vif-param-get", "uuid=" + vif, "param-name=network-uuid")
    assert out("network-param-get", "uuid=" + net, "param-name=bridge") == "xenbr0"
    t0 = time.monotonic()
    xe("vm-start", "uuid=" + VM)
    ip = wait(lambda: param("networks", "0/ip") if "0/ip" in pmap("networks") else None,
              "the agent to report the guest's IP")
    took = time.monotonic() - t0
    print("# xe vm-start to the IP in the guest metrics: %.1f s" % took)
    addr = out("network-param-get", "uuid=" + net, "param-name=other-config",
               "param-key=hyperxe-address")
    assert ip.rsplit(".", 1)[0] == addr.rsplit(".", 1)[0], (ip, addr)
    assert param("live") == "true"
    osv = pmap("os-version")
    kver = out("vm-param-get", "uuid=" + VM, "param-name=os-version", "param-key=uname")
    assert osv["name"] == "hyperxe Demo Linux 1.0" and osv["distro"] == "hxdemo", osv
    assert osv["major"] == "1" and osv["minor"] == "0" and kver.endswith("-cloud-amd64"), osv
    mem = wait(lambda: pmap("memory") if "free" in pmap("memory") else None, "memory")
    total, free = int(mem["total"]), int(mem["free"])
    assert 180 * 1024 < total <= 256 * 1024 and 0 < free < total, mem
    assert param("PV-drivers-detected") == "true"
    assert pmap("PV-drivers-version")["application"] == "hyperxe-agent"
    disks = wait(lambda: pmap("disks") if "0/vda2/mount" in pmap("disks") else None,
                 "the root filesystem in disks")
    assert disks["0/vda2/mount"] == "/" and disks["0/vda2/type"] == "ext4", disks
    assert "feature-shutdown" in pmap("other")
    # the console: first boot asks for a root password
    wait(lambda: "New root password" in console(), "the first-boot password prompt")


def test_demo_page_and_mount_button():
    ip = param("networks", "0/ip")
    page = wait(lambda: fetch("http://%s/" % ip), "the demo page", timeout=60)
    assert "Demonstration Linux Virtual Machine" in page, page[:500]
    assert "/dev/vda2" in page or "vda2" in page, page
    # a new disk: hot-plugged, formatted from inside the guest, mounted with the button
    xe("vm-disk-add", "uuid=" + VM, "disk-size=32MiB", "device=1")
    q = hxvm.Qga(os.path.join(D.run_dir, VM, "qga.sock"), timeout=30)
    try:
        q.sync(timeout=60)
        q.sh("i=0; while [ ! -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
             "mkfs.ext4 -q /dev/vdb")
    finally:
        q.close()
    page = wait(lambda: (lambda p: p if p and "vdb" in p and "Mount" in p else None)(
        fetch("http://%s/" % ip)), "the new disk with a Mount button")
    body = urllib.parse.urlencode({"dev": "vdb", "action": "mount"}).encode()
    fetch("http://%s/cgi-bin/mount.cgi" % ip, data=body)
    page = wait(lambda: (lambda p: p if p and "/mnt/vdb" in p else None)(
        fetch("http://%s/" % ip)), "the disk mounted on /mnt/vdb")
    disks = wait(lambda: pmap("disks") if "1/vdb/mount" in pmap("disks") else None,
                 "the new disk in the guest metrics", timeout=60)
    assert disks["1/vdb/mount"] == "/mnt/vdb" and disks["1/vdb/type"] == "ext4", disks


def test_quiesced_snapshot():
    snap = out("vm-snapshot-with-quiesce", "uuid=" + VM, "new-name-label=quiet")
    info = out("snapshot-param-get", "uuid=" + snap, "param-name=snapshot-info")
    assert "disk-snapshot-type: quiesced" in info, info
    log = open(os.path.join(D.state_dir, "log")).read()
    assert re.search(r"\d+ file system\(s\) frozen for a quiesced snapshot", log)
    assert re.search(r"\d+ file system\(s\) thawed", log)
    # thawed: the guest writes again (the page mounts and unmounts under /mnt)
    ip = param("networks", "0/ip")
    body = urllib.parse.urlencode({"dev": "vdb", "action": "umount"}).encode()
    fetch("http://%s/cgi-bin/mount.cgi" % ip, data=body)
    wait(lambda: (lambda p: p if p and "/mnt/vdb" not in p else None)(
        fetch("http://%s/" % ip)), "the disk unmounted")
    xe("snapshot-uninstall", "uuid=" + snap, "--force")


def test_clean_shutdown_through_the_agent():
    xe("vm-shutdown", "uuid=" + VM)
    assert param("power-state") == "halted"
    log = open(os.path.join(D.state_dir, "log")).read()
    assert "the guest agent accepted the powerdown request" in log
    assert param("live") == "false"
    assert param("networks", "0/ip")  # kept, as XenServer keeps them


def main():
    global D
    if os.geteuid() != 0:
        skip("needs root to make bridges")
    if not shutil.which("qemu-system-x86_64") or not os.path.exists("/usr/sbin/dnsmasq"):
        skip("needs qemu-system-x86_64 and dnsmasq")
    xva = demo_xva()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        skip("cannot make a network namespace: %s" % os.strerror(ctypes.get_errno()))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ["no_proxy"] = "*"
    os.environ["HX_DEMO_XVA"] = xva
    D = Daemon(host_networking=True)
    try:
        run_tests([test_import_start_and_metrics, test_demo_page_and_mount_button,
                   test_quiesced_snapshot, test_clean_shutdown_through_the_agent])
    finally:
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
