"""Host-side checks of a guest agent running in the test guest.

The same checks run against hyperxe-agent and against Debian's stock
qemu-guest-agent (so the host side is known to work with either). Each check
asserts real behaviour against an independent source: the kernel version the
guest was built with, the MAC and address QEMU gave the NIC, busybox df,
openssl's crypt, a writer blocked by a frozen filesystem. Each returns what it
saw, so the compatibility test can compare the two agents field by field.
"""
import base64
import os
import subprocess
import time

from hxvm import QgaError

MAC = "52:54:00:12:34:56"
HOSTNAME = "hxguest"


class Checker:
    def __init__(self, vm, qga, kver, log=print):
        self.vm = vm
        self.qga = qga
        self.kver = kver
        self.log = log
        self.seen = {}  # check name -> shapes observed

    def ok(self, name, cond, detail=""):
        if not cond:
            raise AssertionError(f"{name}: {detail}")
        self.log(f"ok - {name}")

    # -- identity ---------------------------------------------------------

    def info(self):
        r = self.qga.cmd("guest-info")
        self.ok("guest-info version", isinstance(r["version"], str) and r["version"], r)
        names = {c["name"] for c in r["supported_commands"]}
        self.ok("guest-info commands", {"guest-sync", "guest-exec", "guest-get-fsinfo"} <= names)
        for c in r["supported_commands"]:
            self.ok(f"guest-info entry {c['name']}",
                    set(c) == {"name", "enabled", "success-response"}, c)
        self.seen["guest-info"] = sorted(r)
        self.ok("guest-ping", self.qga.cmd("guest-ping") == {})
        return r

    def osinfo(self):
        r = self.qga.cmd("guest-get-osinfo")
        self.ok("osinfo kernel-release", r.get("kernel-release") == self.kver, r)
        self.ok("osinfo machine", r.get("machine") == "x86_64", r)
        self.ok("osinfo kernel-version", "SMP" in r.get("kernel-version", ""), r)
        self.ok("osinfo id", r.get("id") == "hxtest", r)
        self.ok("osinfo name", r.get("name") == "hyperxe test guest", r)
        self.ok("osinfo pretty-name", r.get("pretty-name") == "hyperxe test guest (busybox)", r)
        self.ok("osinfo version-id", r.get("version-id") == "1", r)
        self.seen["guest-get-osinfo"] = sorted(r)
        h = self.qga.cmd("guest-get-host-name")
        self.ok("host-name", h == {"host-name": HOSTNAME}, h)
        self.seen["guest-get-host-name"] = sorted(h)

    def time_and_cpus(self, ncpus):
        t = self.qga.cmd("guest-get-time")
        self.ok("guest-get-time", isinstance(t, int) and abs(t - time.time_ns()) < 300 * 10**9, t)
        v = self.qga.cmd("guest-get-vcpus")
        self.ok("guest-get-vcpus count", sorted(c["logical-id"] for c in v) == list(range(ncpus)), v)
        self.ok("guest-get-vcpus online", all(c["online"] for c in v), v)
        self.seen["guest-get-vcpus"] = sorted({k for c in v for k in c})
        u = self.qga.cmd("guest-get-users")
        self.ok("guest-get-users", u == [], u)

    # -- network ----------------------------------------------------------

    def network(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            r = self.qga.cmd("guest-network-get-interfaces")
            by = {i["name"]: i for i in r}
            eth = by.get("eth0", {})
            v4 = [a for a in eth.get("ip-addresses", []) if a["ip-address-type"] == "ipv4"]
            if v4 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.ok("network eth0 mac", eth.get("hardware-address") == MAC, eth)
        self.ok("network eth0 ipv4", v4 == [{"ip-address-type": "ipv4",
                                             "ip-address": "10.0.2.15", "prefix": 24}], eth)
        lo = by.get("lo", {})
        self.ok("network lo", {"ip-address-type": "ipv4", "ip-address": "127.0.0.1",
                               "prefix": 8} in lo.get("ip-addresses", []), lo)
        st = eth.get("statistics", {})
        self.ok("network eth0 statistics", st.get("rx-packets", 0) > 0 and
                st.get("tx-packets", 0) > 0, eth)
        self.seen["guest-network-get-interfaces"] = {
            "interface": sorted(eth), "address": sorted(v4[0]), "statistics": sorted(st)}

    # -- exec -------------------------------------------------------------

    def exec(self):
        code, out, err = self.qga.exec("uname", ["-r"])
        self.ok("exec uname -r", (code, out, err) == (0, (self.kver + "\n").encode(), b""),
                (code, out, err))
        code, out, err = self.qga.exec("/bin/sh", ["-c", "echo out; echo err >&2; exit 7"])
        self.ok("exec exit code and streams", (code, out, err) == (7, b"out\n", b"err\n"),
                (code, out, err))
        data = os.urandom(3000)
        code, out, err = self.qga.exec("cat", [], input_data=data)
        self.ok("exec input-data", code == 0 and out == data, (code, len(out)))
        pid = self.qga.cmd("guest-exec", {"path": "sleep", "arg": ["1"]})["pid"]
        st = self.qga.cmd("guest-exec-status", {"pid": pid})
        self.ok("exec running status", st == {"exited": False}, st)
        while not st["exited"]:
            time.sleep(0.2)
            st = self.qga.cmd("guest-exec-status", {"pid": pid})
        self.ok("exec ended without capture", st == {"exited": True, "exitcode": 0}, st)
        pid = self.qga.cmd("guest-exec", {"path": "/bin/echo", "arg": ["x"],
                                          "capture-output": True})["pid"]
        while True:
            st = self.qga.cmd("guest-exec-status", {"pid": pid})
            if st["exited"]:
                break
            time.sleep(0.1)
        self.seen["guest-exec-status"] = sorted(st)
        try:
            self.qga.cmd("guest-exec", {"path": "/no/such/program"})
            self.ok("exec missing program fails", False)
        except QgaError as e:
            self.ok("exec missing program fails", e.cls == "GenericError", e)

    # -- filesystems ------------------------------------------------------

    def fsinfo(self, data_dev="vda", slot=6):
        self.qga.sh(f"mkdir -p /mnt/data && mount -t ext4 /dev/{data_dev} /mnt/data")
        r = self.qga.cmd("guest-get-fsinfo")
        fs = [f for f in r if f["mountpoint"] == "/mnt/data"]
        self.ok("fsinfo lists the data disk", len(fs) == 1, r)
        fs = fs[0]
        self.ok("fsinfo name/type", (fs["name"], fs["type"]) == (data_dev, "ext4"), fs)
        df = self.qga.sh("df -P -k /mnt/data | tail -1").split()
        used_k, avail_k = int(df[2]), int(df[3])
        self.ok("fsinfo used-bytes = df", fs["used-bytes"] == used_k * 1024, (fs, df))
        self.ok("fsinfo total-bytes = df used+avail",
                fs["total-bytes"] == (used_k + avail_k) * 1024, (fs, df))
        d = fs["disk"]
        self.ok("fsinfo disk", len(d) == 1 and d[0]["bus-type"] == "virtio" and
                d[0]["dev"] == f"/dev/{data_dev}" and d[0]["pci-controller"]["slot"] == slot and
                d[0]["pci-controller"]["bus"] == 0, d)
        self.seen["guest-get-fsinfo"] = {"fs": sorted(fs), "disk": sorted(d[0]),
                                         "pci": sorted(d[0]["pci-controller"])}

    def freeze(self, hold=2.0, auto_thaw=None):
        """Freezes while a writer appends to the data disk; its log must show the gap."""
        self.ok("fsfreeze-status before", self.qga.cmd("guest-fsfreeze-status") == "thawed")
        self.nfreeze = getattr(self, "nfreeze", 0) + 1
        wlog = f"/mnt/data/w{self.nfreeze}.log"
        writer = (f"i=0; while [ $i -lt 400 ]; do cut -d' ' -f1 /proc/uptime >> {wlog};"
                  " sync; i=$((i+1)); sleep 0.05; done")
        wpid = self.qga.cmd("guest-exec", {"path": "/bin/sh", "arg": ["-c", writer]})["pid"]
        self.qga.sh(f"while [ ! -s {wlog} ]; do sleep 0.05; done")
        n = self.qga.cmd("guest-fsfreeze-freeze")
        self.ok("fsfreeze-freeze count", n == 1, n)
        self.ok("fsfreeze-status frozen", self.qga.cmd("guest-fsfreeze-status") == "frozen")
        time.sleep(hold)
        if auto_thaw is None:
            n = self.qga.cmd("guest-fsfreeze-thaw")
            self.ok("fsfreeze-thaw count", n == 1, n)
        else:
            deadline = time.monotonic() + auto_thaw + 30
            while self.qga.cmd("guest-fsfreeze-status") == "frozen":
                if time.monotonic() > deadline:
                    self.ok("automatic thaw in time", False)
                time.sleep(0.5)
            self.ok("automatic thaw", True)
        self.ok("fsfreeze-status after", self.qga.cmd("guest-fsfreeze-status") == "thawed")
        self.qga.sh(f"kill {wpid} 2>/dev/null; true")
        log = self.qga.sh(f"cat {wlog}").split()
        times = [float(x) for x in log]
        gap = max(b - a for a, b in zip(times, times[1:]))
        self.ok(f"writer blocked while frozen (longest gap {gap:.2f}s)", gap >= hold * 0.75,
                log)
        n = self.qga.cmd("guest-fsfreeze-thaw")
        self.ok("second thaw thaws nothing", n == 0, n)

    # -- passwords --------------------------------------------------------

    def password(self):
        self.qga.sh("echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd; "
                    "echo 'root:*:19000:0:99999:7:::' > /etc/shadow; chmod 600 /etc/shadow")
        pw = "hyperxe pw"
        self.qga.cmd("guest-set-user-password", {
            "username": "root", "password": base64.b64encode(pw.encode()).decode(),
            "crypted": False})
        line = self.qga.sh("cat /etc/shadow").strip()
        f = line.split(":")
        h = f[1]
        alg = {"$1$": "-1", "$5$": "-5", "$6$": "-6"}.get(h[:3])
        self.ok("password stored", f[0] == "root" and h not in ("*", "") and alg, line)
        want = subprocess.run(["openssl", "passwd", alg, "-salt", h.split("$")[2], pw],
                              capture_output=True, text=True, check=True).stdout.strip()
        self.ok("password hash verifies (openssl)", h == want, (h, want))
        crypted = "$6$saltsalt$" + "A" * 86
        self.qga.cmd("guest-set-user-password", {
            "username": "root", "password": base64.b64encode(crypted.encode()).decode(),
            "crypted": True})
        self.ok("crypted password stored as given",
                self.qga.sh("cut -d: -f2 /etc/shadow").strip() == crypted)

    # -- reconnect and shutdown -------------------------------------------

    def reconnect(self):
        self.qga.close()
        self.qga = self.vm.qga()
        self.qga.sync(timeout=30)
        self.ok("reconnect and sync", self.qga.cmd("guest-ping") == {})
        # A client that dies half way through a request must not confuse the next.
        self.qga.sock.sendall(b'{"execute":"guest-sync","arguments":{"id":')
        self.qga.close()
        self.qga = self.vm.qga()
        self.qga.sync(timeout=30)
        self.ok("sync after a half request", self.qga.cmd("guest-sync", {"id": 99}) == 99)

    def shutdown(self, timeout=60):
        self.qga.cmd_noreply("guest-shutdown", {"mode": "powerdown"})
        rc = self.vm.wait_exit(timeout)
        self.ok("guest-shutdown powers the guest off", rc == 0, rc)
        # Anything the agent sent back before dying would be a reply: there must be none.
        rest = self.qga.buf
        try:
            while True:
                chunk = self.qga.sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except OSError:
            pass
        self.ok("guest-shutdown sends no reply", b"return" not in rest, rest)
