#!/usr/bin/env python3
"""Guest agents in real guests under TCG, seen through hyperxed and xe:

- the tools CD: the test guest (scripts/build-test-guest, no agent) with
  guest-tools.iso from the "hyperxe Tools" SR in its CD drive installs the
  agent at boot (Linux/install.sh); the VM then starts reporting: live,
  os-version, networks, PV-drivers-version;
- compatibility: the same guest running Debian's stock qemu-guest-agent
  (binary and libraries from the Debian package, as tests/guest's
  agent-compat-vm builds it) and one running hyperxe-agent report the same
  fields (os-version, the IPv4 networks, memory: the balloon's statistics
  for the stock agent, hyperxe-get-memory for ours); a clean shutdown goes
  through the stock agent too."""

import importlib.util
import os
import shutil
import subprocess
import sys
import time

from hxtest import SOURCE_DIR, Daemon, run_tests

SKIP = 77
BUILD = os.environ.get("HX_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
WORK = os.path.join(BUILD, "tests", "integration", "agent-vm")
GUEST = os.environ.get("HX_TEST_GUEST", os.path.join(SOURCE_DIR, ".cache", "guest"))
HERE = os.path.join(SOURCE_DIR, "tests", "guest")
PV_ARGS = "console=ttyS0,115200 quiet panic=-1 test=wait test.net=dhcp test.hostname=gm"
D = None


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


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
    text = param(vm, name)
    if not text or text == "<not in database>":
        return {}
    return dict(kv.split(": ", 1) for kv in text.split("; "))


def console(vm):
    try:
        with open(os.path.join(D.run_dir, vm, "console.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait(pred, what, vm=None, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s\n%s" % (what, console(vm)[-2000:] if vm else ""))


def build_guest(name, extra):
    out_dir = os.path.join(WORK, name)
    env = dict(os.environ, HX_GUEST_EXTRA=" ".join("%s:%s" % kv for kv in extra.items()))
    r = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "build-test-guest"), out_dir],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    return out_dir


def new_vm(name, guest, args=PV_ARGS):
    vm = out("vm-install", "template=Other install media", "new-name-label=" + name)
    xe("vm-param-set", "uuid=" + vm, "HVM-boot-policy=", "domain-type=pv", "PV-bootloader=",
       "PV-kernel=" + os.path.join(guest, "vmlinuz"),
       "PV-ramdisk=" + os.path.join(guest, "initrd.img"), "PV-args=" + args)
    xe("vm-memory-limits-set", "uuid=" + vm, "static-min=192MiB", "static-max=192MiB",
       "dynamic-min=192MiB", "dynamic-max=192MiB")
    net = out("network-list", "bridge=xenbr0", "--minimal")
    xe("vif-create", "vm-uuid=" + vm, "network-uuid=" + net, "device=0")
    return vm


def reporting(vm):
    return param(vm, "live") == "true" and "0/ip" in pmap(vm, "networks") and \
        "free" in pmap(vm, "memory")


# ---- the checks ---------------------------------------------------------------------------------

def test_tools_iso_installs_the_agent():
    vm = new_vm("tools", GUEST, PV_ARGS + " test.tools=install")
    iso = out("cd-list", "name-label=guest-tools.iso", "--minimal")
    assert iso, out("cd-list")
    xe("vm-cd-add", "uuid=" + vm, "cd-name=guest-tools.iso", "device=3")
    xe("vm-start", "uuid=" + vm)
    wait(lambda: "TEST-MARKER: tools installed" in console(vm), "the installation", vm)
    wait(lambda: reporting(vm), "the installed agent to report", vm)
    osv = pmap(vm, "os-version")  # the plain test guest has no /etc/os-release: uname only
    kver = open(os.path.join(GUEST, "kernel-version")).read().strip()
    assert osv == {"uname": kver}, osv
    assert param(vm, "networks", "0/ip") == "10.0.2.15"
    assert pmap(vm, "PV-drivers-version")["application"] == "hyperxe-agent"
    xe("vm-shutdown", "uuid=" + vm)
    assert "TEST-MARKER: poweroff" in console(vm) and "power button" not in console(vm)
    xe("vm-uninstall", "uuid=" + vm, "--force")


def load_compat():
    spec = importlib.util.spec_from_file_location("agent_compat",
                                                  os.path.join(HERE, "test-agent-compat.py"))
    m = importlib.util.module_from_spec(spec)
    sys.path.insert(0, HERE)
    spec.loader.exec_module(m)
    return m


def test_stock_qemu_guest_agent_reports_the_same():
    compat = load_compat()
    os.makedirs(WORK, exist_ok=True)
    try:
        ga = compat.fetch_qemu_ga(WORK)
    except SystemExit:
        print("# skipped: qemu-guest-agent cannot be downloaded")
        return
    extra = {ga: "/usr/sbin/qemu-ga",
             os.path.join(HERE, "compat", "rc.qga"): "/etc/rc.guest",
             os.path.join(HERE, "compat", "shutdown"): "/sbin/shutdown",
             os.path.join(HERE, "os-release"): "/etc/os-release"}
    for lib in compat.libraries(ga):
        extra[lib] = lib
    stock_guest = build_guest("stock", extra)
    ours_guest = build_guest("ours", {
        os.environ.get("HX_AGENT", os.path.join(BUILD, "src", "agent", "hyperxe-agent")):
            "/usr/sbin/hyperxe-agent",
        os.path.join(HERE, "rc.agent"): "/etc/rc.guest",
        os.path.join(HERE, "os-release"): "/etc/os-release"})
    stock = new_vm("stock", stock_guest)
    ours = new_vm("ours", ours_guest)
    xe("vm-start", "uuid=" + stock)
    xe("vm-start", "uuid=" + ours)
    for vm in (stock, ours):
        wait(lambda: reporting(vm), "the agent of %s to report" % param(vm, "name-label"), vm)
    a, b = {}, {}
    for vm, d in ((stock, a), (ours, b)):
        for f in ("os-version", "networks", "memory", "PV-drivers-version", "other"):
            d[f] = pmap(vm, f)
    print("# qemu-ga:       %s" % a)
    print("# hyperxe-agent: %s" % b)
    assert a["os-version"] == b["os-version"], (a["os-version"], b["os-version"])
    v4 = lambda m: {k: v for k, v in m.items() if "ipv6" not in k}  # noqa: E731
    assert v4(a["networks"]) == v4(b["networks"]) == {"0/ip": "10.0.2.15",
                                                      "0/ipv4/0": "10.0.2.15"}
    assert set(a["memory"]) == set(b["memory"]) == {"total", "free"}
    # the same kernel in the same memory: the balloon's MemTotal is the agent's
    assert abs(int(a["memory"]["total"]) - int(b["memory"]["total"])) <= 1024, (a, b)
    assert a["PV-drivers-version"]["application"] == "qemu-guest-agent"
    assert set(a["PV-drivers-version"]) == set(b["PV-drivers-version"])
    for k in ("feature-shutdown", "feature-reboot", "feature-quiesce"):
        assert a["other"].get(k) == b["other"].get(k) == "1", (a["other"], b["other"])
    for vm in (stock, ours):
        assert param(vm, "PV-drivers-detected") == "true"
    # the stock agent shuts its guest down cleanly too
    xe("vm-shutdown", "uuid=" + stock)
    assert param(stock, "power-state") == "halted"
    assert "power button" not in console(stock), console(stock)[-1000:]
    xe("vm-shutdown", "uuid=" + ours, "--force")
    for vm in (stock, ours):
        xe("vm-uninstall", "uuid=" + vm, "--force")


def main():
    global D
    if not shutil.which("qemu-system-x86_64"):
        skip("qemu-system-x86_64 is not installed")
    if not os.path.exists(os.path.join(GUEST, "vmlinuz")):
        r = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "build-test-guest"), GUEST],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print(r.stdout)
            raise SystemExit(1)
    D = Daemon()
    try:
        run_tests([test_tools_iso_installs_the_agent,
                   test_stock_qemu_guest_agent_reports_the_same])
    finally:
        for p in subprocess.run(["pgrep", "-f", D.run_dir], capture_output=True,
                                text=True).stdout.split():
            try:
                if int(p) != D.pid():
                    os.kill(int(p), 9)
            except (OSError, ValueError):
                pass
        D.cleanup()


if __name__ == "__main__":
    main()
