#!/usr/bin/env python3
"""VM test: the host side works the same with Debian's stock qemu-guest-agent.

Takes qemu-ga from the Debian package (apt-get download + dpkg-deb -x) and
the shared libraries it needs from this Debian host (resolved with ldd),
builds the test guest with them (plus /sbin/shutdown and chpasswd shims for
the busybox guest, which qemu-ga calls), boots it and runs the same
host-side checks as the hyperxe-agent VM test (tests/guest/qga_checks.py).
Then boots the guest with hyperxe-agent and runs the read-only checks again,
and compares the member names each agent returned, command by command.

Usage: test-agent-compat.py SOURCE_ROOT WORK_DIR AGENT_BINARY
"""
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hxvm  # noqa: E402
from qga_checks import Checker, HOSTNAME, MAC  # noqa: E402


def fetch_qemu_ga(work):
    """Extracts the qemu-guest-agent package; returns the qemu-ga path."""
    pkg = os.path.join(work, "pkg")
    ga = os.path.join(pkg, "root", "usr", "sbin", "qemu-ga")
    if os.path.exists(ga):
        return ga
    os.makedirs(pkg, exist_ok=True)
    r = subprocess.run(["apt-get", "download", "-q", "qemu-guest-agent"], cwd=pkg,
                       capture_output=True, text=True)
    debs = glob.glob(os.path.join(pkg, "qemu-guest-agent_*.deb"))
    if r.returncode != 0 or not debs:
        hxvm.skip(f"cannot download qemu-guest-agent: {r.stderr.strip()}")
    subprocess.run(["dpkg-deb", "-x", debs[0], os.path.join(pkg, "root")], check=True)
    return ga


def libraries(binary):
    """Host paths of the shared objects binary needs, loader included."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            path = parts[parts.index("=>") + 1]
            if path.startswith("/"):
                libs.append(path)
            elif path == "not":
                raise RuntimeError(f"{binary}: missing library: {line.strip()}")
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def boot(src, work, name, extra, kver_holder):
    guest = hxvm.build_guest(src, os.path.join(work, name), extra)
    kver_holder.append(open(os.path.join(guest, "kernel-version")).read().strip())
    data = os.path.join(work, f"{name}-data.img")
    if os.path.exists(data):
        os.unlink(data)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", data, "16M"], check=True)
    vm = hxvm.Vm(os.path.join(work, f"{name}-vm"), kernel=os.path.join(guest, "vmlinuz"),
                 initrd=os.path.join(guest, "initrd.img"),
                 append=f"test=wait test.net=dhcp test.hostname={HOSTNAME}",
                 smp=2, net="", disks=[data], mac=MAC)
    return vm.start()


def run(vm, kver, full, label):
    print(f"# --- {label} ---")
    qga = vm.qga()
    took = qga.sync(timeout=90)
    print(f"ok - {label} answered guest-sync-delimited ({took:.1f}s after connecting)")
    c = Checker(vm, qga, kver, log=lambda m: print(f"{m} [{label}]"))
    c.info()
    c.osinfo()
    c.time_and_cpus(2)
    c.network()
    c.exec()
    c.fsinfo()
    if full:
        c.freeze(hold=2.0)
        c.password()
        c.reconnect()
    c.shutdown()
    return c.seen


def main():
    src, work, agent = (os.path.abspath(a) for a in sys.argv[1:4])
    hxvm.require_qemu()
    here = os.path.join(src, "tests", "guest")
    os.makedirs(work, exist_ok=True)
    ga = fetch_qemu_ga(work)
    extra = {
        ga: "/usr/sbin/qemu-ga",
        os.path.join(here, "compat", "rc.qga"): "/etc/rc.guest",
        os.path.join(here, "compat", "shutdown"): "/sbin/shutdown",
        os.path.join(here, "compat", "chpasswd"): "/usr/sbin/chpasswd",
        os.path.join(here, "os-release"): "/etc/os-release",
    }
    for lib in libraries(ga):
        extra[lib] = lib
    print(f"# qemu-ga with {len(extra) - 5} shared objects from the host")

    kv = []
    vm = boot(src, work, "stock", extra, kv)
    try:
        stock = run(vm, kv[-1], True, "qemu-ga")
    except BaseException:
        print(vm.text[-4000:])
        raise
    finally:
        vm.stop()

    vm = boot(src, work, "hyperxe", {
        agent: "/usr/sbin/hyperxe-agent",
        os.path.join(here, "rc.agent"): "/etc/rc.guest",
        os.path.join(here, "os-release"): "/etc/os-release",
    }, kv)
    try:
        ours = run(vm, kv[-1], False, "hyperxe-agent")
    except BaseException:
        print(vm.text[-4000:])
        raise
    finally:
        vm.stop()

    bad = []
    for k in sorted(set(stock) & set(ours)):
        same = json.dumps(stock[k], sort_keys=True) == json.dumps(ours[k], sort_keys=True)
        print(f"{'ok' if same else 'not ok'} - same members from both agents: {k}")
        if not same:
            print(f"#   qemu-ga:       {stock[k]}\n#   hyperxe-agent: {ours[k]}")
            bad.append(k)
    missing = sorted(set(stock) ^ set(ours))
    if bad or missing:
        raise AssertionError(f"the agents differ in {bad}; only one checked {missing}")


if __name__ == "__main__":
    main()
