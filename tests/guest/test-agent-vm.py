#!/usr/bin/env python3
"""VM test: hyperxe-agent inside the test guest, queried from the host.

Builds the test guest with the static agent, os-release and an rc.guest that
starts it, boots it under TCG with user-mode networking (DHCP gives
10.0.2.15), a QGA virtio-serial channel and an ext4 data disk, then checks
every command from the host side (tests/guest/qga_checks.py), the vendor
command, the automatic thaw, reconnects, and finally guest-shutdown.

Usage: test-agent-vm.py SOURCE_ROOT WORK_DIR AGENT_BINARY
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hxvm  # noqa: E402
from qga_checks import Checker, HOSTNAME, MAC  # noqa: E402


def main():
    src, work, agent = (os.path.abspath(a) for a in sys.argv[1:4])
    hxvm.require_qemu()
    here = os.path.join(src, "tests", "guest")
    guest = hxvm.build_guest(src, os.path.join(work, "guest"), {
        agent: "/usr/sbin/hyperxe-agent",
        os.path.join(here, "rc.agent"): "/etc/rc.guest",
        os.path.join(here, "os-release"): "/etc/os-release",
    })
    kver = open(os.path.join(guest, "kernel-version")).read().strip()

    data = os.path.join(work, "data.img")
    if os.path.exists(data):
        os.unlink(data)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "data", data, "16M"], check=True)

    vm = hxvm.Vm(os.path.join(work, "vm"), kernel=os.path.join(guest, "vmlinuz"),
                 initrd=os.path.join(guest, "initrd.img"),
                 append=f"test=wait test.net=dhcp test.hostname={HOSTNAME}",
                 smp=2, net="", disks=[data], mac=MAC)
    t0 = time.monotonic()
    vm.start()
    try:
        qga = vm.qga()
        took = qga.sync(timeout=90)
        print(f"ok - agent answered guest-sync-delimited {took:.1f}s after QEMU started")
        c = Checker(vm, qga, kver)
        info = c.info()
        c.ok("guest-info is hyperxe-agent's", info["version"] == agent_version(agent), info)
        c.ok("guest-info lists the vendor command",
             "hyperxe-get-memory" in {x["name"] for x in info["supported_commands"]})
        c.osinfo()
        c.time_and_cpus(2)
        c.network()
        mem = qga.cmd("hyperxe-get-memory")
        meminfo = {}
        for line in qga.sh("cat /proc/meminfo").splitlines():
            k, v = line.split(":")
            meminfo[k] = int(v.split()[0]) * 1024
        c.ok("hyperxe-get-memory total = MemTotal", mem["total-bytes"] == meminfo["MemTotal"],
             (mem, meminfo["MemTotal"]))
        c.ok("hyperxe-get-memory plausible", 150 << 20 < mem["total-bytes"] <= 256 << 20 and
             0 < mem["free-bytes"] <= mem["available-bytes"] <= mem["total-bytes"], mem)
        c.exec()
        c.fsinfo()
        c.freeze(hold=2.0)
        try:
            qga.cmd("guest-fsfreeze-freeze")
            qga.cmd("guest-exec", {"path": "true"})
            c.ok("exec refused while frozen", False)
        except hxvm.QgaError as e:
            c.ok("exec refused while frozen", "disabled" in e.desc, e)
        qga.cmd("guest-fsfreeze-thaw")
        c.freeze(hold=1.0, auto_thaw=8)
        c.password()
        c.reconnect()
        c.shutdown()
        c.ok("serial shows the poweroff", "TEST-MARKER: poweroff" in vm.text)
        print(f"# total {time.monotonic() - t0:.1f}s")
    except BaseException:
        print("--- console ---")
        print(vm.text[-4000:])
        raise
    finally:
        vm.stop()


def agent_version(agent):
    out = subprocess.run([agent, "--version"], capture_output=True, text=True).stdout
    return out.split()[-1]


if __name__ == "__main__":
    main()
