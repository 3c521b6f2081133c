#!/usr/bin/env python3
"""VM test: the Demo Linux Virtual Appliance, as a newcomer would use it.

Builds the demo disk (scripts/build-demo-image), boots a qcow2 overlay of it
from its own BIOS disk under TCG with user-mode networking (the web server
forwarded to the host), the agent channel and a blank second disk. Then:
answers the first-boot password prompt on the serial console (a mismatch
first), checks the IP line and logs in with the new password; fetches the
demo page through the forward and checks its disk list; formats the blank
disk through guest-exec, presses Mount (the CGI) and checks the page shows
the mounted filesystem, agreeing with the agent's guest-get-fsinfo; reboots
through the agent and checks that no password is asked the second time and
the password still works; powers off through the agent.

Usage: test-demo-vm.py SOURCE_ROOT WORK_DIR AGENT_BINARY
"""
import html.parser
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hxvm  # noqa: E402

PASSWORD = "demo-Pass 1"


def ok(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok - {name}")


class Rows(html.parser.HTMLParser):
    """Collects table rows as lists of cell texts, and the forms' fields."""

    def __init__(self):
        super().__init__()
        self.rows, self.forms = [], []
        self.row = self.cell = None
        self.title = ""
        self.in_h1 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""
        elif tag == "form":
            self.forms.append({"url": a.get("action")})
        elif tag == "input" and self.forms:
            self.forms[-1][a.get("name")] = a.get("value")
        elif tag == "h1":
            self.in_h1 = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None
        elif tag == "h1":
            self.in_h1 = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.in_h1:
            self.title += data


def get_page(port, data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/" if data is None else
                                 f"http://127.0.0.1:{port}/cgi-bin/mount.cgi",
                                 data=urllib.parse.urlencode(data).encode() if data else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read().decode()
        status, url = r.status, r.url
    p = Rows()
    p.feed(body)
    return status, url, body, p


def row_of(page, dev):
    rows = [r for r in page.rows if r and r[0] == dev]
    return rows[0] if rows else None


def login(vm, start):
    vm.wait_serial(r"login: ", start=start, timeout=60)
    pos = vm.serial_pos()
    vm.serial_write("root\n")
    vm.wait_serial(r"Password: ", start=pos, timeout=30)
    vm.serial_write(PASSWORD + "\n")
    vm.wait_serial(r"root@hxdemo:~# ", start=pos, timeout=30)
    pos = vm.serial_pos()
    vm.serial_write("echo LOGGED-IN-$((6 * 7)); exit\n")
    vm.wait_serial(r"LOGGED-IN-42", start=pos, timeout=30)


def main():
    src, work, agent = (os.path.abspath(a) for a in sys.argv[1:4])
    hxvm.require_qemu()
    image = os.path.join(work, "image")
    r = subprocess.run([os.path.join(src, "scripts", "build-demo-image"), image, agent],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(r.stdout)
        if "cannot find linux-image" in r.stdout:
            hxvm.skip("the guest kernel package cannot be downloaded")
        raise RuntimeError("build-demo-image failed")
    kver = open(os.path.join(image, "kernel-version")).read().strip()
    out = subprocess.run(["qemu-img", "check", os.path.join(image, "demo.qcow2")],
                         capture_output=True, text=True)
    ok("demo.qcow2 passes qemu-img check", out.returncode == 0, out.stdout + out.stderr)
    out = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2",
                          os.path.join(image, "demo.img"), os.path.join(image, "demo.qcow2")],
                         capture_output=True, text=True)
    ok("demo.qcow2 holds the same disk as demo.img", out.returncode == 0, out.stdout)

    disk = os.path.join(work, "run.qcow2")
    blank = os.path.join(work, "blank.qcow2")
    for f in (disk, blank):
        if os.path.exists(f):
            os.unlink(f)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    os.path.join(image, "demo.qcow2"), disk], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", blank, "64M"], check=True)

    port = hxvm.free_port()
    vm = hxvm.Vm(os.path.join(work, "vm"), disk=disk, disks=[blank],
                 net=f"hostfwd=tcp:127.0.0.1:{port}-:80", no_reboot=False)
    t0 = time.monotonic()
    vm.start()
    try:
        # -- first boot: the password dialogue on the serial console --------
        vm.wait_serial(r"SYSLINUX", timeout=60)
        vm.wait_serial(r"Demonstration Linux Virtual Machine", timeout=90)
        vm.wait_serial(r"New root password: ", timeout=60)
        ok(f"first boot asks for a root password ({time.monotonic() - t0:.1f}s)", True)
        pos = vm.serial_pos()
        vm.serial_write("one\n")
        vm.wait_serial(r"Retype the root password: ", start=pos)
        vm.serial_write("two\n")
        vm.wait_serial(r"do not match", start=pos)
        vm.wait_serial(r"New root password: ", start=pos + 1)
        ok("a mismatch asks again", True)
        pos = vm.serial_pos()
        vm.serial_write(PASSWORD + "\n")
        vm.wait_serial(r"Retype the root password: ", start=pos)
        vm.serial_write(PASSWORD + "\n")
        vm.wait_serial(r"The root password has been set\.", start=pos)
        ok("the password is stored", PASSWORD not in vm.text, "password echoed on the console")
        m = vm.wait_serial(r"IP address: (\S+)\r?\n", start=pos, timeout=90)
        ok(f"the console shows the IP address ({time.monotonic() - t0:.1f}s)",
           m.group(1) == "10.0.2.15", m.group(0))
        login(vm, pos)
        ok("root logs in on the serial console with the new password", True)

        # -- the agent ---------------------------------------------------------
        qga = vm.qga()
        qga.sync(timeout=60)
        osinfo = qga.cmd("guest-get-osinfo")
        ok("agent: osinfo", osinfo.get("id") == "hxdemo" and osinfo.get("kernel-release") == kver,
           osinfo)
        ifs = qga.cmd("guest-network-get-interfaces")
        addrs = [a["ip-address"] for i in ifs for a in i.get("ip-addresses", [])]
        ok("agent: the IP address", "10.0.2.15" in addrs, ifs)
        ok("agent: host name", qga.cmd("guest-get-host-name") == {"host-name": "hxdemo"})
        shadow = qga.sh("cut -d: -f1,2 /etc/shadow | grep ^root:")
        h = shadow.strip().split(":", 1)[1]
        want = subprocess.run(["openssl", "passwd", "-6", "-salt", h.split("$")[2], PASSWORD],
                              capture_output=True, text=True, check=True).stdout.strip()
        ok("/etc/shadow holds the SHA-512 crypt of the password", h == want, (h, want))
        tools = qga.sh("for t in traceroute tracepath ping ifconfig netstat; do command -v $t; done | wc -l;"
                       " ping -c 1 -W 5 127.0.0.1 > /dev/null && echo ping-ok;"
                       " ifconfig eth0 | grep -o 'inet addr:[0-9.]*';"
                       " netstat -tln | grep -c ':80 '", check=False).split()
        ok("network tools: traceroute, tracepath, ping, ifconfig, netstat",
           tools == ["5", "ping-ok", "inet", "addr:10.0.2.15", "1"], tools)

        # -- the web page --------------------------------------------------
        status, _, body, page = get_page(port)
        ok("web page served through the forward", status == 200)
        ok("web page title", page.title == "Demonstration Linux Virtual Machine", page.title)
        root = row_of(page, "/dev/vda2")
        ok("page lists the root filesystem", root and root[2] == "ext4" and root[3] == "/", root)
        boot = row_of(page, "/dev/vda1")
        ok("page lists the boot partition", boot and boot[2] == "vfat" and boot[3] == "/boot", boot)
        vdb = row_of(page, "/dev/vdb")
        ok("page lists the blank disk without a filesystem",
           vdb and vdb[1] == "64.0 MiB" and "no filesystem" in vdb[3], vdb)
        fsinfo = {f["mountpoint"]: f for f in qga.cmd("guest-get-fsinfo")}
        df = qga.sh("df -P -k / | tail -1").split()
        ok("page usage of / agrees with df", f"{int(df[4].rstrip('%'))}%" in root[6], (root, df))
        ok("agent sees the same root", fsinfo["/"]["name"] == "vda2", fsinfo)

        # -- format from the console (here: through the agent), then Mount ----
        code, _, err = qga.exec("mkfs.ext4", ["-q", "-L", "demo-data", "/dev/vdb"])
        ok("mkfs.ext4 /dev/vdb in the guest", code == 0, err)
        _, _, body, page = get_page(port)
        vdb = row_of(page, "/dev/vdb")
        ok("after formatting the page offers Mount", vdb and vdb[2] == "ext4" and
           any(f.get("dev") == "vdb" and f.get("action") == "mount" for f in page.forms), vdb)
        status, url, body, page = get_page(port, {"dev": "vdb", "action": "mount"})
        ok("Mount redirects back to the page", status == 200 and url.endswith(f":{port}/"), url)
        vdb = row_of(page, "/dev/vdb")
        ok("the page shows the mounted filesystem", vdb and vdb[2] == "ext4" and
           vdb[3] == "/mnt/vdb" and re.search(r"^\d+\.\d [KM]iB of \d+\.\d MiB$", vdb[4]), vdb)
        fs = {f["mountpoint"]: f for f in qga.cmd("guest-get-fsinfo")}.get("/mnt/vdb")
        ok("the agent sees /mnt/vdb", fs and fs["type"] == "ext4" and fs["name"] == "vdb", fs)
        free_mib = (fs["total-bytes"] - fs["used-bytes"]) / 2**20
        ok("page and agent agree on its free space", vdb[5] == f"{free_mib:.1f} MiB",
           (vdb, free_mib))
        _, _, body, page = get_page(port, {"dev": "vdb;reboot", "action": "mount"})
        ok("mount.cgi refuses a bad device name", "No such disk" in body, body)

        # -- reboot: no second password prompt, the password still works -----
        pos = vm.serial_pos()
        qga.cmd_noreply("guest-shutdown", {"mode": "reboot"})
        vm.wait_serial(r"SYSLINUX", start=pos, timeout=90)
        m = vm.wait_serial(r"IP address: (\S+)\r?\n", start=pos, timeout=120)
        ok("after the reboot the console shows the IP address", m.group(1) == "10.0.2.15")
        ok("and asks no password the second time", "New root password" not in vm.text[pos:])
        login(vm, pos)
        ok("the stored password still logs in", True)
        qga.close()
        qga = vm.qga()
        qga.sync(timeout=60)
        ok("the agent is back after the reboot", qga.cmd("guest-ping") == {})
        qga.cmd_noreply("guest-shutdown", {"mode": "powerdown"})
        ok("guest-shutdown powers the appliance off", vm.wait_exit(60) == 0)
        print(f"# total {time.monotonic() - t0:.1f}s")
    except BaseException:
        print("--- console ---")
        print(vm.text[-5000:])
        raise
    finally:
        vm.stop()


if __name__ == "__main__":
    main()
