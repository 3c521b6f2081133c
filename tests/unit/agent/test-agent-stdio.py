#!/usr/bin/env python3
"""Black-box test of hyperxe-agent in --stdio mode.

Runs the real binary with pipes, sends every command it implements and checks
the shape of each reply against QEMU's guest-agent schema, then garbage,
overlong input, split and concatenated requests, and end of input. Commands
that would change the test machine (freeze, shutdown, passwords) are checked
to be refused unless pointed at a harmless target (--power-cmd, --sysconfdir).

Usage: test-agent-stdio.py PATH/TO/hyperxe-agent
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

AGENT = None


class Agent:
    """One agent process on pipes, with a line reader that has a deadline."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [AGENT, "--stdio", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""

    def send(self, data):
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode() + b"\n"
        elif isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _fill(self, deadline):
        import select

        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no reply from the agent")
        r, _, _ = select.select([self.proc.stdout], [], [], left)
        if r:
            chunk = self.proc.stdout.read(65536)
            if chunk == b"":
                raise EOFError("agent closed stdout")
            if chunk:
                self.buf += chunk

    def read_line(self, timeout=120):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def reply(self, timeout=120):
        line = self.read_line(timeout)
        return json.loads(line)

    def cmd(self, name, args=None, **kw):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        req.update(kw)
        self.send(req)
        return self.reply()

    def ret(self, name, args=None):
        r = self.cmd(name, args)
        if "return" not in r:
            raise AssertionError(f"{name}: {r}")
        return r["return"]

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait(timeout=60)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        # Sanitizer builds: any report is a failure.
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if bad in self.stderr:
                raise AssertionError("agent stderr:\n" + self.stderr)
        return rc


def slurp(path):
    with open(path) as f:
        return f.read()


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class AgentStdioTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.a = Agent("--sysconfdir", self.tmp.name, "--power-cmd",
                       os.path.join(self.tmp.name, "power"))

    def tearDown(self):
        rc = self.a.close()
        self.tmp.cleanup()
        self.assertEqual(rc, 0)

    def assertError(self, r, cls="GenericError", desc=None):
        self.assertIn("error", r, r)
        self.assertEqual(r["error"]["class"], cls)
        self.assertIsInstance(r["error"]["desc"], str)
        if desc is not None:
            self.assertIn(desc, r["error"]["desc"])

    # -- protocol ---------------------------------------------------------

    def test_sync_and_ping(self):
        self.assertEqual(self.a.ret("guest-sync", {"id": 123456789012}), 123456789012)
        self.assertEqual(self.a.ret("guest-ping"), {})
        r = self.a.cmd("guest-ping", id="abc")
        self.assertEqual(r, {"return": {}, "id": "abc"})

    def test_sync_delimited(self):
        self.a.send(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":42}}')
        line = self.a.read_line()
        self.assertEqual(line, b'\xff{"return": 42}')

    def test_unknown_command(self):
        r = self.a.cmd("guest-frobnicate")
        self.assertError(r, "CommandNotFound", "guest-frobnicate")

    def test_garbage(self):
        self.a.send(b"garbage\n")
        self.assertError(self.a.reply(), desc="JSON parse error")
        self.a.send(b'{"execute": "guest-ping"\n\x00\x01]]}\n')
        self.assertError(self.a.reply(), desc="JSON parse error")
        self.a.send(bytes(range(1, 255)).replace(b"\n", b"") + b"\xff\n")
        # Whatever errors that produced, the agent is still in sync:
        self.a.send(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":7}}\n')
        while True:
            line = self.a.read_line()
            if line.startswith(b"\xff"):
                break
            self.assertIn(b'"error"', line)
        self.assertEqual(json.loads(line[1:]), {"return": 7})
        self.assertEqual(self.a.ret("guest-ping"), {})

    def test_random_input(self):
        # Mutated requests and random bytes (fixed seed): the agent must keep
        # answering and end in sync; a sanitizer build reports any misstep.
        import random

        rnd = random.Random(1234)
        seeds = [b'{"execute":"guest-sync","arguments":{"id":1}}',
                 b'{"execute":"guest-exec","arguments":{"path":"true","arg":["a"],"env":[]}}',
                 b'{"execute":"guest-get-osinfo","id":[1,{"a":"\\u00e9"}]}',
                 b'{"execute":"guest-exec-status","arguments":{"pid":-1}}',
                 b'[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]',
                 b'{"execute":"guest-set-user-password","arguments":{"username":"x",'
                 b'"password":"!!","crypted":true}}']
        blob = bytearray()
        for _ in range(3000):
            m = bytearray(rnd.choice(seeds))
            for _ in range(rnd.randrange(4)):
                op = rnd.randrange(3)
                i = rnd.randrange(len(m))
                if op == 0:
                    m[i] = rnd.randrange(256)
                elif op == 1:
                    del m[i]
                else:
                    m.insert(i, rnd.choice(b'{}[]",:\\ \n'))
            blob += m + rnd.choice([b"", b"\n", b" "])
        self.a.send(bytes(blob))
        self.a.send(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":4242}}\n')
        while True:
            line = self.a.read_line(timeout=60)
            if line.startswith(b"\xff"):
                try:
                    if json.loads(line[1:]) == {"return": 4242}:
                        break
                except ValueError:
                    pass
            else:
                json.loads(line)  # every reply is valid JSON
        self.assertEqual(self.a.ret("guest-ping"), {})

    def test_split_and_concatenated(self):
        self.a.send('{"execute":')
        time.sleep(0.05)
        self.a.send('"guest-sync", "arguments": {"id": 1}}{"execute":"guest-sync",')
        self.a.send('"arguments":{"id":2}}\n')
        self.assertEqual(self.a.reply(), {"return": 1})
        self.assertEqual(self.a.reply(), {"return": 2})

    def test_sentinel_flushes_partial(self):
        self.a.send('{"execute":"guest-sync","arguments":{"id":')
        self.a.send(b'\xff{"execute":"guest-sync","arguments":{"id":9}}\n')
        self.assertEqual(self.a.reply(), {"return": 9})

    def test_overlong(self):
        big = '{"execute":"guest-ping","arguments":{"x":"' + "A" * (5 * 1024 * 1024) + '"}}'
        self.a.send(big + "\n")
        self.assertError(self.a.reply(), desc="too long")
        self.assertEqual(self.a.ret("guest-sync", {"id": 5}), 5)

    def test_bad_arguments(self):
        self.assertError(self.a.cmd("guest-sync"), desc="Parameter 'id' is missing")
        self.assertError(self.a.cmd("guest-sync", {"id": "x"}), desc="expected: integer")
        self.assertError(self.a.cmd("guest-ping", {"x": 1}), desc="Parameter 'x' is unexpected")
        self.assertError(self.a.cmd("guest-exec", {"path": 5}), desc="expected: string")
        self.assertError(self.a.cmd("guest-sync", {"id": 2**64}))

    def test_eof_exits(self):
        self.a.send('{"execute":"guest-ping"}\n')
        self.assertEqual(self.a.reply(), {"return": {}})
        # tearDown closes stdin and checks the exit status.

    def test_eof_mid_request(self):
        self.a.send('{"execute":"guest-ping"')

    # -- commands ---------------------------------------------------------

    def test_info(self):
        r = self.a.ret("guest-info")
        self.assertRegex(r["version"], r"^\d+\.\d+\.\d+")
        names = [c["name"] for c in r["supported_commands"]]
        for n in ["guest-sync", "guest-sync-delimited", "guest-ping", "guest-info",
                  "guest-get-osinfo", "guest-get-host-name", "guest-network-get-interfaces",
                  "guest-get-fsinfo", "guest-get-users", "guest-shutdown",
                  "guest-fsfreeze-freeze", "guest-fsfreeze-thaw", "guest-fsfreeze-status",
                  "guest-set-user-password", "guest-exec", "guest-exec-status",
                  "guest-get-vcpus", "guest-get-time", "hyperxe-get-memory"]:
            self.assertIn(n, names)
        for c in r["supported_commands"]:
            self.assertEqual(set(c), {"name", "enabled", "success-response"})
            self.assertEqual(c["success-response"], c["name"] != "guest-shutdown")

    def test_osinfo(self):
        with open(os.path.join(self.tmp.name, "os-release"), "w") as f:
            f.write('# comment\nNAME="Demo Linux"\nID=demo\nPRETTY_NAME="Demo \\"Linux\\" 1"\n'
                    "VERSION_ID='1.0'\nVARIANT=x y\n")
        r = self.a.ret("guest-get-osinfo")
        u = os.uname()
        self.assertEqual(r["kernel-release"], u.release)
        self.assertEqual(r["kernel-version"], u.version)
        self.assertEqual(r["machine"], u.machine)
        self.assertEqual(r["name"], "Demo Linux")
        self.assertEqual(r["id"], "demo")
        self.assertEqual(r["pretty-name"], 'Demo "Linux" 1')
        self.assertEqual(r["version-id"], "1.0")
        self.assertEqual(r["variant"], "x")
        self.assertNotIn("version", r)

    def test_host_name(self):
        self.assertEqual(self.a.ret("guest-get-host-name"), {"host-name": os.uname().nodename})

    def test_time(self):
        t = self.a.ret("guest-get-time")
        self.assertTrue(is_int(t))
        self.assertLess(abs(t - time.time_ns()), 10 * 10**9)

    def test_vcpus(self):
        r = self.a.ret("guest-get-vcpus")
        self.assertEqual(len(r), len([d for d in os.listdir("/sys/devices/system/cpu")
                                      if d[3:].isdigit() and d.startswith("cpu")]))
        self.assertEqual(sorted(c["logical-id"] for c in r), [c["logical-id"] for c in r])
        for c in r:
            self.assertEqual(set(c), {"logical-id", "online", "can-offline"})
            self.assertIsInstance(c["online"], bool)

    def test_users(self):
        r = self.a.ret("guest-get-users")
        self.assertIsInstance(r, list)
        for u in r:
            self.assertIsInstance(u["user"], str)
            self.assertIsInstance(u["login-time"], (int, float))

    def test_memory(self):
        r = self.a.ret("hyperxe-get-memory")
        self.assertEqual(set(r), {"total-bytes", "free-bytes", "available-bytes", "buffers-bytes",
                                  "cached-bytes", "swap-total-bytes", "swap-free-bytes"})
        meminfo = {}
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":")
                meminfo[k] = int(v.split()[0]) * 1024
        self.assertEqual(r["total-bytes"], meminfo["MemTotal"])
        self.assertLessEqual(r["free-bytes"], r["total-bytes"])
        self.assertLessEqual(r["available-bytes"], r["total-bytes"])
        self.assertGreater(r["free-bytes"], 0)

    def test_network(self):
        r = self.a.ret("guest-network-get-interfaces")
        names = [i["name"] for i in r]
        self.assertEqual(sorted(names), sorted(os.listdir("/sys/class/net")))
        lo = r[names.index("lo")]
        self.assertEqual(lo["hardware-address"], "00:00:00:00:00:00")
        self.assertIn({"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                      lo["ip-addresses"])
        for i in r:
            self.assertTrue(set(i) <= {"name", "hardware-address", "ip-addresses", "statistics"})
            with open(f"/sys/class/net/{i['name']}/address") as f:
                mac = f.read().strip()
            if mac and "hardware-address" in i:
                self.assertEqual(i["hardware-address"], mac)
            for a in i.get("ip-addresses", []):
                self.assertEqual(set(a), {"ip-address-type", "ip-address", "prefix"})
                self.assertIn(a["ip-address-type"], ("ipv4", "ipv6"))
            st = i.get("statistics")
            if st:
                self.assertEqual(set(st), {"rx-bytes", "rx-packets", "rx-errs", "rx-dropped",
                                           "tx-bytes", "tx-packets", "tx-errs", "tx-dropped"})

    def test_fsinfo(self):
        r = self.a.ret("guest-get-fsinfo")
        self.assertIsInstance(r, list)
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                p = line.split()
                if not p[2].startswith("0:"):
                    mounts.append(p[4])
        self.assertEqual([fs["mountpoint"] for fs in r][:len(mounts)], mounts)
        for fs in r:
            self.assertTrue({"name", "mountpoint", "type", "disk"} <= set(fs))
            st = os.statvfs(fs["mountpoint"])
            self.assertEqual(fs["total-bytes"],
                             (st.f_blocks - st.f_bfree + st.f_bavail) * st.f_frsize)
            for d in fs["disk"]:
                self.assertTrue({"pci-controller", "bus-type", "bus", "target", "unit"} <= set(d))
                self.assertEqual(set(d["pci-controller"]), {"domain", "bus", "slot", "function"})
                self.assertTrue(d["dev"].startswith("/dev/"))

    def test_fsfreeze_refused_in_stdio(self):
        self.assertEqual(self.a.ret("guest-fsfreeze-status"), "thawed")
        self.assertError(self.a.cmd("guest-fsfreeze-freeze"), desc="--stdio")
        self.assertError(self.a.cmd("guest-fsfreeze-freeze-list", {"mountpoints": ["/"]}),
                         desc="--stdio")
        self.assertError(self.a.cmd("guest-fsfreeze-thaw"), desc="--stdio")
        self.assertEqual(self.a.ret("guest-fsfreeze-status"), "thawed")

    # -- exec -------------------------------------------------------------

    def exec_wait(self, args):
        pid = self.a.ret("guest-exec", args)["pid"]
        self.assertTrue(is_int(pid))
        # Bounds against a hang, not a time limit: the machine may be busy.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            st = self.a.ret("guest-exec-status", {"pid": pid})
            if st["exited"]:
                # Reaped: asking again is an error.
                self.assertError(self.a.cmd("guest-exec-status", {"pid": pid}),
                                 desc="Invalid parameter 'pid'")
                return st
            self.assertEqual(st, {"exited": False})
            time.sleep(0.02)
        self.fail("process did not end")

    def test_exec_capture(self):
        st = self.exec_wait({"path": "/bin/sh", "arg": ["-c", "echo hi; echo err >&2; exit 3"],
                             "capture-output": True})
        self.assertEqual(st, {"exited": True, "exitcode": 3, "out-data": "aGkK",
                              "err-data": "ZXJyCg==", "out-truncated": False,
                              "err-truncated": False})

    def test_exec_no_output(self):
        # As QEMU's agent: no data, no truncated flags.
        st = self.exec_wait({"path": "true", "capture-output": True})
        self.assertEqual(st, {"exited": True, "exitcode": 0})
        st = self.exec_wait({"path": "sh", "arg": ["-c", "echo x >&2"], "capture-output": True})
        self.assertEqual(st, {"exited": True, "exitcode": 0, "err-data": "eAo=",
                              "err-truncated": False})
        st = self.exec_wait({"path": "sh", "arg": ["-c", "echo lost"]})
        self.assertEqual(st, {"exited": True, "exitcode": 0})

    def test_exec_signal(self):
        st = self.exec_wait({"path": "sh", "arg": ["-c", "kill -9 $$"]})
        self.assertEqual(st, {"exited": True, "signal": 9})

    def test_exec_input_env(self):
        data = bytes(range(256)) * 64
        st = self.exec_wait({"path": "sh", "arg": ["-c", "cat; echo $FOO >&2"],
                             "env": ["FOO=bar", "PATH=/usr/bin:/bin"],
                             "input-data": base64.b64encode(data).decode(),
                             "capture-output": True})
        self.assertEqual(base64.b64decode(st["out-data"]), data)
        self.assertEqual(base64.b64decode(st["err-data"]), b"bar\n")

    def test_exec_merged(self):
        st = self.exec_wait({"path": "sh", "arg": ["-c", "echo a; echo b >&2"],
                             "capture-output": "merged"})
        self.assertEqual(base64.b64decode(st["out-data"]), b"a\nb\n")
        self.assertNotIn("err-data", st)

    def test_exec_big_output_truncated(self):
        st = self.exec_wait({"path": "sh", "arg": ["-c", "head -c 20000000 /dev/zero"],
                             "capture-output": True})
        self.assertTrue(st["out-truncated"])
        self.assertEqual(len(base64.b64decode(st["out-data"])), 16 * 1024 * 1024)

    def test_exec_background_grandchild(self):
        # A grandchild holding stdout open must not hold the status back.
        st = self.exec_wait({"path": "sh", "arg": ["-c", "echo x; sleep 30 & exit 0"],
                             "capture-output": True})
        self.assertEqual(base64.b64decode(st["out-data"]), b"x\n")

    def test_exec_errors(self):
        self.assertError(self.a.cmd("guest-exec", {"path": "/nonexistent/prog"}),
                         desc="No such file or directory")
        self.assertError(self.a.cmd("guest-exec", {"path": "sh", "input-data": "!!"}),
                         desc="input-data")
        self.assertError(self.a.cmd("guest-exec-status", {"pid": 1}), desc="Invalid parameter")
        self.assertError(self.a.cmd("guest-exec", {"path": "true", "capture-output": "x"}))

    # -- shutdown and passwords -------------------------------------------

    def test_shutdown(self):
        power = os.path.join(self.tmp.name, "power")
        log = os.path.join(self.tmp.name, "power.log")
        with open(power, "w") as f:
            f.write(f"#!/bin/sh\necho \"$1\" >> {log}\n")
        os.chmod(power, 0o755)
        self.assertError(self.a.cmd("guest-shutdown", {"mode": "sideways"}), desc="mode is invalid")
        # No reply on success (as QEMU's agent): the next reply is the sync.
        for mode in ("reboot", "halt", None):
            self.a.send({"execute": "guest-shutdown", **({"arguments": {"mode": mode}} if mode else {})})
            self.assertEqual(self.a.ret("guest-sync", {"id": 1}), 1)
        for _ in range(200):
            if os.path.exists(log) and len(slurp(log).split()) == 3:
                break
            time.sleep(0.02)
        self.assertEqual(sorted(slurp(log).split()), ["halt", "powerdown", "reboot"])

    def test_shutdown_refused_without_power_cmd(self):
        a = Agent()
        try:
            a.send({"execute": "guest-shutdown"})
            self.assertError(a.reply(), desc="--power-cmd")
            a.send({"execute": "guest-set-user-password",
                    "arguments": {"username": "root", "password": "eA==", "crypted": False}})
            self.assertError(a.reply(), desc="--sysconfdir")
        finally:
            a.close()

    def test_disable_options_add_up(self):
        a = Agent("-b", "guest-ping", "--disable", "guest-exec,guest-get-time")
        try:
            a.send({"execute": "guest-info"})
            off = {c["name"] for c in a.reply()["return"]["supported_commands"]
                   if not c["enabled"]}
            self.assertEqual(off, {"guest-ping", "guest-exec", "guest-get-time"})
            a.send({"execute": "guest-ping"})
            self.assertError(a.reply(), desc="disabled")
        finally:
            self.assertEqual(a.close(), 0)

    def write_shadow(self):
        shadow = os.path.join(self.tmp.name, "shadow")
        with open(shadow, "w") as f:
            f.write("root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\nbob:x:1:2:3:4:5:6:\n")
        os.chmod(shadow, 0o640)
        return shadow

    def test_password_plain(self):
        shadow = self.write_shadow()
        pw = "s3cret: with spaces"
        self.assertEqual(self.a.ret("guest-set-user-password", {
            "username": "alice", "password": base64.b64encode(pw.encode()).decode(),
            "crypted": False}), {})
        lines = slurp(shadow).splitlines()
        self.assertEqual(lines[0], "root:*:19000:0:99999:7:::")
        self.assertEqual(lines[2], "bob:x:1:2:3:4:5:6:")
        f = lines[1].split(":")
        self.assertEqual(f[0], "alice")
        self.assertTrue(f[1].startswith("$6$"))
        self.assertEqual(int(f[2]), int(time.time() // 86400))
        self.assertEqual(f[3:], ["0", "99999", "7", "", "", ""])
        self.assertEqual(os.stat(shadow).st_mode & 0o777, 0o640)
        # Independent check of the hash.
        salt = f[1].split("$")[2]
        want = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, pw],
                              capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(f[1], want)

    def test_password_crypted(self):
        shadow = self.write_shadow()
        h = "$6$abc$0123456789"
        self.assertEqual(self.a.ret("guest-set-user-password", {
            "username": "root", "password": base64.b64encode(h.encode()).decode(),
            "crypted": True}), {})
        self.assertTrue(slurp(shadow).startswith("root:" + h + ":"))
        self.assertError(self.a.cmd("guest-set-user-password", {
            "username": "root", "password": base64.b64encode(b"a:b").decode(), "crypted": True}))
        self.assertError(self.a.cmd("guest-set-user-password", {
            "username": "nobody", "password": "eA==", "crypted": False}), desc="no entry")
        self.assertError(self.a.cmd("guest-set-user-password", {
            "username": "ro:ot", "password": "eA==", "crypted": False}), desc="username")
        self.assertTrue(slurp(shadow).startswith("root:" + h + ":"))

    def test_password_passwd_only(self):
        passwd = os.path.join(self.tmp.name, "passwd")
        with open(passwd, "w") as f:
            f.write("root::0:0:root:/root:/bin/sh\n")
        self.assertEqual(self.a.ret("guest-set-user-password", {
            "username": "root", "password": "eA==", "crypted": False}), {})
        f = slurp(passwd).split(":")
        self.assertTrue(f[1].startswith("$6$"))
        self.assertEqual(f[2:], ["0", "0", "root", "/root", "/bin/sh\n"])


def main():
    global AGENT
    AGENT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
