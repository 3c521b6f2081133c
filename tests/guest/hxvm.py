"""Helpers for tests that boot real guests under QEMU (TCG).

Vm       one qemu-system-x86_64 process with a serial console on a socket
         (read into serial.log by a thread; wait_serial() waits for a regex),
         an optional QEMU guest-agent channel and a QMP socket.
Qga      a host-side QEMU guest-agent client: guest-sync-delimited handshake
         with resends, commands with deadlines, stale replies skipped.
Qmp      a tiny QMP client (events skipped while waiting for a reply).
build_guest()  runs scripts/build-test-guest with extra files.

Only the standard library; nothing here depends on timing except the
deadlines that turn a hung guest into a test failure.
"""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

SKIP = 77  # meson: test skipped

QGA_PORT = "org.qemu.guest_agent.0"


class QgaError(Exception):
    def __init__(self, cls, desc):
        super().__init__(f"{cls}: {desc}")
        self.cls = cls
        self.desc = desc


def skip(msg):
    print(f"SKIP: {msg}")
    sys.exit(SKIP)


def require_qemu():
    if not shutil.which("qemu-system-x86_64"):
        skip("qemu-system-x86_64 is not installed")


def build_guest(source_root, out_dir, extra=None):
    """Builds the test guest into out_dir with extra {src: dst} files."""
    env = dict(os.environ)
    if extra:
        env["HX_GUEST_EXTRA"] = " ".join(f"{s}:{d}" for s, d in extra.items())
    script = os.path.join(source_root, "scripts", "build-test-guest")
    r = subprocess.run([script, out_dir], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(r.stdout)
        if "cannot find linux-image" in r.stdout or "Unable to locate" in r.stdout:
            skip("the guest kernel package cannot be downloaded")
        raise RuntimeError("build-test-guest failed")
    return out_dir


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect_unix(path, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Qga:
    """Host side of the QEMU guest-agent protocol over a unix socket."""

    def __init__(self, path, timeout=10):
        self.path = path
        self.sock = _connect_unix(path, timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("guest agent did not answer")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("guest agent did not answer") from None
        if not chunk:
            raise EOFError("guest agent channel closed")
        self.buf += chunk

    def _line(self, deadline):
        while b"\n" not in self.buf:
            self._recv(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def send(self, obj, sentinel=False):
        data = json.dumps(obj).encode() + b"\n"
        self.sock.sendall((b"\xff" if sentinel else b"") + data)

    def sync(self, timeout=60, resend=2.0):
        """guest-sync-delimited until the agent answers; returns seconds taken."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            ident = random.randrange(1, 2**62)
            self.send({"execute": "guest-sync-delimited", "arguments": {"id": ident}},
                      sentinel=True)
            attempt = min(deadline, time.monotonic() + resend)
            try:
                while True:
                    # Drop everything before the sentinel, then parse one reply.
                    while b"\xff" not in self.buf:
                        self.buf = b""
                        self._recv(attempt)
                    self.buf = self.buf[self.buf.index(b"\xff") + 1:]
                    line = self._line(attempt)
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if r.get("return") == ident:
                        return time.monotonic() - start
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def cmd(self, name, args=None, timeout=30):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        self.send(req)
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline).lstrip(b"\xff")
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if "error" in r:
                raise QgaError(r["error"].get("class"), r["error"].get("desc"))
            if "return" in r:
                return r["return"]

    def cmd_noreply(self, name, args=None):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        self.send(req)

    def exec(self, path, args=(), input_data=None, timeout=60):
        """guest-exec with capture, waits; returns (exitcode, stdout, stderr) as bytes."""
        import base64

        a = {"path": path, "arg": list(args), "capture-output": True}
        if input_data is not None:
            a["input-data"] = base64.b64encode(input_data).decode()
        pid = self.cmd("guest-exec", a)["pid"]
        deadline = time.monotonic() + timeout
        while True:
            st = self.cmd("guest-exec-status", {"pid": pid})
            if st["exited"]:
                out = base64.b64decode(st.get("out-data", ""))
                err = base64.b64decode(st.get("err-data", ""))
                code = st.get("exitcode", 128 + st.get("signal", 0))
                return code, out, err
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest-exec {path} did not end")
            time.sleep(0.1)

    def sh(self, script, check=True, timeout=60):
        code, out, err = self.exec("/bin/sh", ["-c", script], timeout=timeout)
        if check and code != 0:
            raise AssertionError(f"guest sh -c {script!r}: exit {code}: {err.decode()}")
        return out.decode()


class Qmp:
    def __init__(self, path, timeout=10):
        self.sock = _connect_unix(path, timeout)
        self.f = self.sock.makefile("rb")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QMP closed")
            r = json.loads(line)
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            return r.get("return")

    def close(self):
        self.f.close()
        self.sock.close()


class Vm:
    """One QEMU guest. Call start(), then use serial/qga/qmp; always stop()."""

    def __init__(self, workdir, kernel=None, initrd=None, append="", disk=None, mem=256,
                 smp=1, agent=True, net=None, disks=(), cdrom=None, mac="52:54:00:12:34:56",
                 no_reboot=True, extra_args=()):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.serial_sock = os.path.join(workdir, "serial.sock")
        self.qga_sock = os.path.join(workdir, "qga.sock")
        self.qmp_sock = os.path.join(workdir, "qmp.sock")
        self.serial_log = os.path.join(workdir, "serial.log")
        for p in (self.serial_sock, self.qga_sock, self.qmp_sock):
            if os.path.exists(p):
                os.unlink(p)
        args = ["qemu-system-x86_64", "-accel", "tcg", "-m", str(mem), "-smp", str(smp),
                "-nodefaults", "-display", "none",
                "-chardev", f"socket,id=ser0,path={self.serial_sock},server=on,wait=on",
                "-serial", "chardev:ser0",
                "-qmp", f"unix:{self.qmp_sock},server=on,wait=off"]
        if no_reboot:
            args.append("-no-reboot")
        if kernel:
            args += ["-kernel", kernel, "-initrd", initrd,
                     "-append", f"console=ttyS0,115200 quiet panic=-1 {append}".strip()]
        if disk:
            fmt = "qcow2" if disk.endswith(".qcow2") else "raw"
            args += ["-drive", f"file={disk},format={fmt},if=none,id=disk0",
                     "-device", "virtio-blk-pci,drive=disk0,addr=0x5"]
        for i, d in enumerate(disks):
            fmt = "qcow2" if d.endswith(".qcow2") else "raw"
            args += ["-drive", f"file={d},format={fmt},if=none,id=xdisk{i}",
                     "-device", f"virtio-blk-pci,drive=xdisk{i},addr={0x6 + i:#x}"]
        if cdrom:
            args += ["-drive", f"file={cdrom},media=cdrom,if=ide,index=2,readonly=on"]
        if agent:
            args += ["-device", "virtio-serial-pci,id=vser0",
                     "-chardev", f"socket,path={self.qga_sock},server=on,wait=off,id=qga0",
                     "-device", f"virtserialport,chardev=qga0,name={QGA_PORT}"]
        if net is not None:
            args += ["-netdev", f"user,id=net0{',' + net if net else ''}",
                     "-device", f"virtio-net-pci,netdev=net0,mac={mac}"]
        args += list(extra_args)
        self.args = args
        self.proc = None
        self.serial = None
        self.text = ""
        self.lock = threading.Condition()
        self.reader = None
        self.start_time = None

    def start(self):
        with open(os.path.join(self.workdir, "qemu.cmd"), "w") as f:
            f.write(" ".join(self.args) + "\n")
        self.qemu_err = open(os.path.join(self.workdir, "qemu.err"), "wb")
        self.start_time = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self.qemu_err, stderr=self.qemu_err)
        self.serial = _connect_unix(self.serial_sock, 30)
        self.reader = threading.Thread(target=self._read_serial, daemon=True)
        self.reader.start()
        return self

    def _read_serial(self):
        with open(self.serial_log, "wb") as log:
            while True:
                try:
                    chunk = self.serial.recv(4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    with self.lock:
                        self.lock.notify_all()
                    return
                log.write(chunk)
                log.flush()
                with self.lock:
                    self.text += chunk.decode("utf-8", errors="replace")
                    self.lock.notify_all()

    def wait_serial(self, pattern, timeout=60, start=0):
        """Waits until regex pattern matches the console text after offset start."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                m = rx.search(self.text, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    tail = self.text[-2000:]
                    raise TimeoutError(f"console never showed {pattern!r}; last output:\n{tail}")
                self.lock.wait(min(left, 0.5))

    def serial_pos(self):
        with self.lock:
            return len(self.text)

    def serial_write(self, text):
        self.serial.sendall(text.encode() if isinstance(text, str) else text)

    def qga(self, timeout=10):
        return Qga(self.qga_sock, timeout)

    def qmp(self):
        return Qmp(self.qmp_sock)

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError("QEMU did not exit") from None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.serial:
            try:
                self.serial.close()
            except OSError:
                pass
        if self.reader:
            self.reader.join(timeout=5)
        if getattr(self, "qemu_err", None):
            self.qemu_err.close()
