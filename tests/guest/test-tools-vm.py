#!/usr/bin/env python3
"""VM test: installing the agent from guest-tools.iso in a guest without one.

Boots the plain test guest (no agent inside) with the tools ISO as an IDE
CD-ROM and test.tools=install: its /init mounts /dev/sr0 and runs
Linux/install.sh, which must install and start the agent (rc.local flavour,
the guest being busybox-only). The host then talks QGA to it, runs the
installer a second time through guest-exec (nothing changes, the running
agent is kept) and shuts the guest down through the agent.

Usage: test-tools-vm.py SOURCE_ROOT WORK_DIR guest-tools.iso AGENT_BINARY
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hxvm  # noqa: E402


def ok(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok - {name}")


def main():
    src, work, iso, agent = (os.path.abspath(a) for a in sys.argv[1:5])
    hxvm.require_qemu()
    guest = hxvm.build_guest(src, os.path.join(work, "guest"))
    version = subprocess.run([agent, "--version"], capture_output=True,
                             text=True).stdout.split()[-1]

    vm = hxvm.Vm(os.path.join(work, "vm"), kernel=os.path.join(guest, "vmlinuz"),
                 initrd=os.path.join(guest, "initrd.img"),
                 append="test=wait test.tools=install", cdrom=iso)
    t0 = time.monotonic()
    vm.start()
    try:
        m = vm.wait_serial(r"TEST-MARKER: tools (installed|install failed.*)", timeout=120)
        ok("install.sh from the CD succeeded", m.group(1) == "installed", m.group(0))
        vm.wait_serial(r"hyperxe-agent: \S+ installed \(rclocal\)")
        ok("installer chose the rc.local hook", True)
        qga = vm.qga()
        took = qga.sync(timeout=60)
        ok(f"the guest answers QGA ({took:.1f}s after connecting)", True)
        info = qga.cmd("guest-info")
        ok("guest-info: the agent from the CD", info["version"] == version, info["version"])
        ok("agent installed in /usr/sbin",
           qga.sh("cmp /media/cdrom/Linux/hyperxe-agent /usr/sbin/hyperxe-agent && echo same")
           .strip() == "same")
        rc = qga.sh("cat /etc/rc.local")
        ok("rc.local starts it at boot", "/etc/init.d/hyperxe-agent start" in rc, rc)
        pid = qga.sh("cat /run/hyperxe-agent.pid").strip()
        status = qga.sh("/etc/init.d/hyperxe-agent status")
        ok("init script sees it running", f"running (pid {pid})" in status, status)
        out = qga.sh("sh /media/cdrom/Linux/install.sh")
        ok("second install changes nothing", "already installed (rclocal)" in out, out)
        ok("the running agent was kept", qga.sh("cat /run/hyperxe-agent.pid").strip() == pid)
        out = qga.sh("sh /media/cdrom/Linux/install.sh -n -d")
        ok("uninstall dry run lists the files", "would run: rm -f /usr/sbin/hyperxe-agent" in out,
           out)
        qga.cmd_noreply("guest-shutdown")
        ok("guest-shutdown powers off", vm.wait_exit(60) == 0)
        print(f"# total {time.monotonic() - t0:.1f}s")
    except BaseException:
        print("--- console ---")
        print(vm.text[-4000:])
        raise
    finally:
        vm.stop()


if __name__ == "__main__":
    main()
