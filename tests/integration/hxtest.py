"""Helpers for the integration tests: a hyperxed in a temporary state
directory, xe runs against it, XenAPI clients (Python's xmlrpc.client and
raw JSON-RPC), and output normalisation for golden files.

Environment (set by meson): HYPERXED, XE, HX_SOURCE_DIR, HX_BUILD_DIR.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

SOURCE_DIR = os.environ.get("HX_SOURCE_DIR", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
HYPERXED = os.environ.get("HYPERXED", "hyperxed")
XE = os.environ.get("XE", "xe")
PASSWORD = "hyperxe-test-password"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """A hyperxed with its own state and run directories."""

    def __init__(self, accel="tcg", extra_args=(), state_dir=None, env=None, vmm=None,
                 host_networking=False):
        self.tmp = tempfile.mkdtemp(prefix="hx-it-")
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        self.run_dir = os.path.join(self.tmp, "run")
        self.port = free_port()
        self.tls_port = free_port()
        self.pwfile = os.path.join(self.tmp, "password")
        with open(self.pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        self.accel = accel
        self.extra_args = list(extra_args)
        # VMs never touch the host's networking unless a test (in a network
        # namespace of its own) asks for bridges, NAT and DHCP.
        if not host_networking:
            self.extra_args.append("--user-networking")
        if vmm:
            self.extra_args += ["--vmm", vmm]
        self.env = dict(os.environ, **(env or {}))
        self.start()

    def args(self):
        return [HYPERXED, "--state-dir", self.state_dir, "--run-dir", self.run_dir,
                "--listen", "127.0.0.1:%d" % self.port,
                "--listen", "https://127.0.0.1:%d" % self.tls_port,
                "--initial-password-file", self.pwfile, "--accel", self.accel,
                "--log-level", "debug"] + self.extra_args

    def start(self):
        r = subprocess.run(self.args(), env=self.env, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("hyperxed failed to start: %s\n%s" % (r.stderr, self.log()))

    def pid(self):
        with open(os.path.join(self.run_dir, "hyperxed.pid")) as f:
            return int(f.read().strip())

    def stop(self, sig=signal.SIGTERM):
        try:
            pid = self.pid()
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def restart(self, sig=signal.SIGTERM):
        self.stop(sig)
        self.start()

    def log(self):
        try:
            with open(os.path.join(self.state_dir, "log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def kill_leftovers(self):
        """QEMU and dnsmasq outlive the daemon by design: stop the ones this
        daemon started, so that no test leaves processes behind."""
        import glob
        for pidfile in (glob.glob(os.path.join(self.run_dir, "*", "qemu.pid")) +
                        glob.glob(os.path.join(self.run_dir, "*.pid")) +
                        glob.glob(os.path.join(self.run_dir, "*", "*.pid"))):
            if pidfile.endswith("hyperxed.pid"):
                continue
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def cleanup(self):
        self.stop()
        self.kill_leftovers()
        keep = os.environ.get("HX_TEST_LOG_DIR")
        if keep:  # the whole daemon log, for a failure's post-mortem
            os.makedirs(keep, exist_ok=True)
            try:
                shutil.copy(os.path.join(self.state_dir, "log"),
                            os.path.join(keep, "hyperxed-%s.log" % os.path.basename(self.tmp)))
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- hyperxed log ----\n%s\n" % self.log())
        self.cleanup()

    # ---- clients ---------------------------------------------------------------
    def xmlrpc(self, tls=False):
        if tls:
            return xmlrpc.client.ServerProxy("https://127.0.0.1:%d/" % self.tls_port,
                                             context=ssl._create_unverified_context())
        return xmlrpc.client.ServerProxy("http://127.0.0.1:%d/" % self.port)

    def login(self, proxy=None):
        proxy = proxy or self.xmlrpc()
        r = proxy.session.login_with_password("root", PASSWORD, "2.23", "test")
        assert r["Status"] == "Success", r
        return proxy, r["Value"]

    def jsonrpc(self, method, params, version="2.0", ident=1):
        body = {"method": method, "params": params, "id": ident}
        if version:
            body["jsonrpc"] = version
        status, data = self.post("/jsonrpc", json.dumps(body).encode(), "application/json")
        assert status == 200, (status, data)
        return json.loads(data)

    def post(self, path, body, ctype="text/xml"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("POST", path, body=body, headers={"Content-Type": ctype})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def xe(self, *args, check=True, env=None):
        e = dict(os.environ, HYPERXE_RUN_DIR=self.run_dir, HOME=self.tmp)
        e.pop("XE_EXTRA_ARGS", None)
        e.update(env or {})
        r = subprocess.run([XE] + list(args), env=e, capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("xe %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                              r.stdout, r.stderr))
        return r


def ok(r):
    """Value of a successful XML-RPC envelope."""
    assert r["Status"] == "Success", r
    return r["Value"]


def fails(r, code):
    """Asserts an XML-RPC failure with code; returns the parameters."""
    assert r["Status"] == "Failure", r
    assert r["ErrorDescription"][0] == code, r
    return r["ErrorDescription"][1:]


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Normaliser:
    """Replaces run-dependent text by stable placeholders."""

    def __init__(self, fixed=None):
        self.names = {}
        self.fixed = dict(fixed or {})

    def __call__(self, text):
        for k, v in sorted(self.fixed.items(), key=lambda kv: -len(kv[0])):
            if k:
                text = text.replace(k, v)

        def uuid(m):
            u = m.group(0)
            if u not in self.names:
                self.names[u] = "<uuid-%d>" % (len(self.names) + 1)
            return self.names[u]
        return UUID_RE.sub(uuid, text)


def check_golden(name, actual):
    """Compares actual with tests/data/golden/name; HX_REGEN=1 rewrites it."""
    path = os.path.join(SOURCE_DIR, "tests", "data", "golden", name)
    if os.environ.get("HX_REGEN"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(actual)
        return
    with open(path) as f:
        expected = f.read()
    if expected != actual:
        import difflib
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            "expected/" + name, "actual/" + name))
        raise AssertionError("golden output %s differs:\n%s" % (name, diff))


def run_tests(tests):
    """Runs test functions, TAP-style; exits non-zero on failure."""
    failed = 0
    print("1..%d" % len(tests))
    for i, t in enumerate(tests, 1):
        try:
            t()
            print("ok %d - %s" % (i, t.__name__))
        except Exception:
            import traceback
            failed += 1
            print("not ok %d - %s" % (i, t.__name__))
            traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
    sys.exit(1 if failed else 0)
