"""VDI transfers on each of their paths, with qemu-img as the oracle: xe on
the unix socket as root (the file itself is handed to the daemon, SCM_RIGHTS
after an HTTP Upgrade), xe over TCP and TLS (the bytes stream, in XenServer's
sparse framing) and plain HTTP bodies; what crosses the wire (only data, in order);
the checks on handed-over descriptors (regular files, the right access mode,
local root only); and exports cut off halfway (nothing stays busy).
"""

import hashlib
import http.client
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import PASSWORD, Daemon, run_tests  # noqa: E402

D = None
TMP = None
MiB = 1 << 20
QFMT = {"raw": "raw", "vhd": "vpc", "vmdk": "vmdk", "qcow2": "qcow2"}


def xe(*args, check=True):
    return D.xe(*args, check=check)


def xe_out(*args):
    return xe(*args).stdout.strip()


def tcp():
    """xe over TCP: no descriptor can be handed over, the bytes travel."""
    return ["-s", "127.0.0.1", "-p", str(D.port), "--nossl", "-u", "root", "-pw", PASSWORD]


def tls():
    """xe over TLS: the bytes travel, encrypted."""
    return ["-s", "127.0.0.1", "-p", str(D.tls_port), "-u", "root", "-pw", PASSWORD]


VIAS = (("unix", []), ("tcp", None), ("tls", "tls"))


def via_args(v):
    return tcp() if v is None else tls() if v == "tls" else v


def local_sr():
    return xe_out("sr-list", "name-label=Local storage", "--minimal")


def sr_dir():
    pbd = xe_out("pbd-list", "sr-uuid=" + local_sr(), "--minimal")
    return xe_out("pbd-param-get", "uuid=" + pbd, "param-name=device-config", "param-key=path")


def vdi_file(u):
    return os.path.join(sr_dir(), u + ".qcow2")


def new_vdi(size="40MiB"):
    return xe_out("vdi-create", "sr-uuid=" + local_sr(), "name-label=t", "virtual-size=" + size)


def qimg(*args, check=True):
    r = subprocess.run(["qemu-img"] + list(args), capture_output=True, text=True)
    if check:
        assert r.returncode == 0, "qemu-img %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
    return r


def same(a, fa, b, fb):
    r = qimg("compare", "-f", fa, "-F", fb, a, b, check=False)
    return r.returncode == 0


DATA = ((0, 64 << 10), (3 * MiB, 2 * MiB + 4096), (17 * MiB + 512, 300 << 10), (39 * MiB, MiB))
DATA_BYTES = sum(n for _, n in DATA)


def make_raw(path, size=40 * MiB, seed=1):
    """Random data in the runs of DATA, holes elsewhere."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, n in DATA:
            f.seek(off)
            f.write(rnd.randbytes(n))


def login():
    s, sess = D.login()
    return sess


def task_record(sess, task):
    s = D.xmlrpc()
    return s.task.get_record(sess, task)["Value"]


def new_task(sess):
    s = D.xmlrpc()
    return s.task.create(sess, "transfer test", "")["Value"]


# ---- xe on both paths --------------------------------------------------------------------

def test_exports_and_imports_on_both_paths():
    src = os.path.join(TMP, "src.raw")
    make_raw(src)
    u = new_vdi()
    xe("vdi-import", "uuid=" + u, "filename=" + src, "format=raw")
    assert same(src, "raw", vdi_file(u), "qcow2")
    for name, v in VIAS:
        for fmt, q in QFMT.items():
            out = os.path.join(TMP, "out-%s.%s" % (name, fmt))
            xe(*via_args(v), "vdi-export", "uuid=" + u, "filename=" + out, "format=" + fmt)
            assert same(src, "raw", out, q), (name, fmt)
            if q in ("qcow2", "vmdk"):
                qimg("check", "-f", q, out)
            # Sparse where the format allows it: the holes of the disk stay holes.
            if fmt in ("raw", "vhd"):
                assert os.stat(out).st_blocks * 512 < DATA_BYTES + 4 * MiB, (name, fmt)
            # ... and back in, on the same path.
            w = new_vdi()
            xe(*via_args(v), "vdi-import", "uuid=" + w, "filename=" + out, "format=" + fmt)
            assert same(src, "raw", vdi_file(w), "qcow2"), (name, fmt)
            qimg("check", vdi_file(w))
            xe("vdi-destroy", "uuid=" + w)
    # Exporting over an existing, longer file replaces its content.
    out = os.path.join(TMP, "over.raw")
    with open(out, "wb") as f:
        f.write(b"\xff" * (64 * MiB))
    xe("vdi-export", "uuid=" + u, "filename=" + out, "format=raw")
    assert os.path.getsize(out) == 40 * MiB and same(src, "raw", out, "raw")
    # A raw image larger than the VDI is refused on both paths, nothing changes.
    big = os.path.join(TMP, "big.raw")
    with open(big, "wb") as f:
        f.truncate(41 * MiB)
    for name, v in VIAS:
        r = xe(*via_args(v), "vdi-import", "uuid=" + u, "filename=" + big, check=False)
        assert r.returncode != 0 and "VDI_TOO_SMALL" in r.stderr, (name, r.stderr)
        assert same(src, "raw", vdi_file(u), "qcow2")
    assert not [n for n in os.listdir(sr_dir()) if n.startswith(".hx-")]
    xe("vdi-destroy", "uuid=" + u)


def test_xe_to_special_files():
    """A pipe or a device cannot be handed over: xe sends the bytes instead."""
    src = os.path.join(TMP, "sp.raw")
    make_raw(src, seed=4)
    u = new_vdi()
    xe("vdi-import", "uuid=" + u, "filename=" + src)
    r = xe("vdi-export", "uuid=" + u, "filename=/dev/null")
    assert r.returncode == 0
    env = dict(os.environ, HYPERXE_RUN_DIR=D.run_dir, HOME=D.tmp)
    env.pop("XE_EXTRA_ARGS", None)
    p = subprocess.run([os.environ.get("XE", "xe"), "vdi-export", "uuid=" + u, "filename=-"],
                       env=env, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256(p.stdout).hexdigest() == hashlib.sha256(open(src, "rb").read()).hexdigest()
    xe("vdi-destroy", "uuid=" + u)


# ---- what crosses the wire -----------------------------------------------------------------

def get_framed(path):
    """GET path with chunked=true over TCP; returns the records [(offset, bytes)] and the
    length record, checking the framing as it goes."""
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=120)
    c.request("GET", path + "&chunked=true&session_id=" + login())
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    wire = r.read()
    c.close()
    recs, length, i, end = [], None, 0, 0
    while True:
        off, n = struct.unpack_from("<QI", wire, i)
        i += 12
        if off == 0 and n == 0:
            break
        if n == 0:
            length = off
            continue
        assert off >= end and length is None, "records out of order"
        recs.append((off, wire[i:i + n]))
        end = off + n
        i += n
    assert i == len(wire), "bytes after the end record"
    return recs, length, len(wire)


def test_only_data_crosses_the_wire():
    src = os.path.join(TMP, "wire.raw")
    make_raw(src, seed=5)
    u = new_vdi()
    xe("vdi-import", "uuid=" + u, "filename=" + src)
    for fmt in ("raw", "vhd", "vmdk", "qcow2"):
        recs, length, wire = get_framed("/export_raw_vdi?vdi=%s&format=%s" % (u, fmt))
        out = os.path.join(TMP, "wire." + fmt)
        with open(out, "wb") as f:
            for off, b in recs:
                f.seek(off)
                f.write(b)
            f.truncate(length)
        assert same(src, "raw", out, QFMT[fmt]), fmt
        # Only the data and the image's metadata travel: no run of zeros of 64 KiB.
        assert wire < DATA_BYTES + 2 * MiB, (fmt, wire)
        for off, b in recs:
            assert fmt not in ("raw", "vhd") or b"\0" * 65536 not in b, (fmt, off)
    # Plain bodies carry everything, zeros included.
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=120)
    c.request("GET", "/export_raw_vdi?vdi=%s&format=vhd&session_id=%s" % (u, login()))
    r = c.getresponse()
    body = r.read()
    c.close()
    out = os.path.join(TMP, "plain.vhd")
    with open(out, "wb") as f:
        f.write(body)
    assert r.status == 200 and same(src, "raw", out, "vpc")
    xe("vdi-destroy", "uuid=" + u)


def test_cut_off_export():
    """A client that leaves halfway: the converter stops, the VDI is free again."""
    src = os.path.join(TMP, "cut.raw")
    with open(src, "wb") as f:
        f.write(random.Random(6).randbytes(40 * MiB))
    u = new_vdi()
    xe("vdi-import", "uuid=" + u, "filename=" + src)
    for fmt in ("raw", "vhd", "qcow2"):
        for chunked in ("&chunked=true", ""):
            s = socket.create_connection(("127.0.0.1", D.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(("GET /export_raw_vdi?vdi=%s&format=%s%s&session_id=%s HTTP/1.1\r\n"
                       "Host: x\r\n\r\n" % (u, fmt, chunked, login())).encode())
            got = 0
            while got < 256 << 10:
                b = s.recv(65536)
                assert b, "the export ended early"
                got += len(b)
            s.close()
            for _ in range(100):
                if xe_out("vdi-param-get", "uuid=" + u, "param-name=current-operations") == "":
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the VDI stayed busy after a cut-off export")
    out = os.path.join(TMP, "cut-after.raw")
    xe("vdi-export", "uuid=" + u, "filename=" + out)
    assert same(src, "raw", out, "raw")
    assert xe_out("task-list", "status=pending", "--minimal") == ""
    xe("vdi-destroy", "uuid=" + u)


# ---- descriptors handed over -------------------------------------------------------------

def fd_request(method, query, fds, sock_path=None, send_byte=True):
    """An Upgrade request on the unix socket, then fds sent with one byte; returns
    (status, reply head + body or the outcome line)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path or os.path.join(D.run_dir, "hyperxed.sock"))
    s.settimeout(60)
    extra = "Content-Length: 0\r\n" if method == "PUT" else ""
    s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: hyperxe-fd\r\n"
               "Connection: Upgrade\r\n%s\r\n" % (method, query, extra)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        if not b:
            break
        head += b
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status != 101:
        # The reply's body, by its length (the connection may stay open).
        end = head.index(b"\r\n\r\n") + 4 if b"\r\n\r\n" in head else len(head)
        want = None
        for line in head[:end].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                want = int(line.split(b":", 1)[1])
        rest = head
        while want is None or len(rest) < end + want:
            b = s.recv(4096)
            if not b:
                break
            rest += b
        s.close()
        return status, rest.decode("utf-8", "replace")
    if send_byte:
        socket.send_fds(s, [b"F"], fds)
    line = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        line += b
    s.close()
    return status, line.decode().strip()


def test_descriptor_checks():
    src = os.path.join(TMP, "fd.raw")
    make_raw(src, seed=7)
    u = new_vdi()
    xe("vdi-import", "uuid=" + u, "filename=" + src)
    sess = login()
    q = "vdi=%s&format=raw&session_id=%s" % (u, sess)

    def export(fds, task=None, **kw):
        t = "&task_id=" + task if task else ""
        return fd_request("GET", "/export_raw_vdi?" + q + t, fds, **kw)

    def import_(fds, task=None, **kw):
        t = "&task_id=" + task if task else ""
        return fd_request("PUT", "/import_raw_vdi?" + q + t, fds, **kw)

    # The good cases: a file open for writing (export), for reading (import).
    out = os.path.join(TMP, "fd-out.raw")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    assert export([fd]) == (101, "OK")
    os.close(fd)
    assert same(src, "raw", out, "raw")
    fd = os.open(out, os.O_RDONLY)
    assert import_([fd]) == (101, "OK")
    os.close(fd)
    assert same(src, "raw", vdi_file(u), "qcow2")

    # What is refused, each time with the VDI left as it was and free.
    r, w = os.pipe()
    ro = os.open(out, os.O_RDONLY)
    wo = os.open(out, os.O_WRONLY)
    ap = os.open(out, os.O_WRONLY | os.O_APPEND)
    dfd = os.open(TMP, os.O_RDONLY | os.O_DIRECTORY)
    pfd = os.open(out, os.O_PATH)
    dev = os.open("/dev/zero", os.O_RDONLY)
    cases = [
        ("export into a read-only descriptor", export, [ro], "not open for writing"),
        ("export into an O_APPEND descriptor", export, [ap], "O_APPEND"),
        ("export into a pipe", export, [w], "not a regular file"),
        ("export into a directory", export, [dfd], "not a regular file"),
        ("export into an O_PATH descriptor", export, [pfd], "cannot be used"),
        ("import from a write-only descriptor", import_, [wo], "not open for reading"),
        ("import from a pipe", import_, [r], "not a regular file"),
        ("import from a device", import_, [dev], "not a regular file"),
        ("import from two descriptors", import_, [ro, ro], "one file descriptor"),
        ("import with no descriptor", import_, [], "one file descriptor"),
    ]
    nfds = len(os.listdir("/proc/%d/fd" % D.pid()))
    for what, fn, fds, why in cases:
        t = new_task(sess)
        st, line = fn(fds, task=t)
        assert st == 101 and line.startswith("ERROR "), (what, st, line)
        rec = task_record(sess, t)
        assert rec["status"] == "failure" and why in " ".join(rec["error_info"]), (what, rec)
        assert xe_out("vdi-param-get", "uuid=" + u, "param-name=current-operations") == "", what
    for fd in (r, w, ro, wo, ap, dfd, pfd, dev):
        os.close(fd)
    # None of the descriptors stayed open in the daemon.
    for _ in range(50):
        left = len(os.listdir("/proc/%d/fd" % D.pid()))
        if left <= nfds:
            break
        time.sleep(0.1)
    assert left <= nfds, (nfds, left)
    assert same(src, "raw", vdi_file(u), "qcow2")
    # A client that never sends its descriptor: the connection ends, the VDI is free.
    st, line = fd_request("GET", "/export_raw_vdi?" + q, [], send_byte=False)
    # (closing our end makes the daemon give up at once)
    for _ in range(100):
        if xe_out("vdi-param-get", "uuid=" + u, "param-name=current-operations") == "":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the VDI stayed busy")

    # Only local root on the unix socket: over TCP the switch is refused ...
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=60)
    c.request("GET", "/export_raw_vdi?" + q, headers={"Upgrade": "hyperxe-fd",
                                                      "Connection": "Upgrade"})
    resp = c.getresponse()
    body = resp.read().decode()
    c.close()
    assert resp.status == 403 and "PERMISSION_DENIED" in body, (resp.status, body)
    # ... and over TLS ...
    c = http.client.HTTPSConnection("127.0.0.1", D.tls_port, timeout=60,
                                    context=ssl._create_unverified_context())
    c.request("GET", "/export_raw_vdi?" + q, headers={"Upgrade": "hyperxe-fd",
                                                      "Connection": "Upgrade"})
    resp = c.getresponse()
    body = resp.read().decode()
    c.close()
    assert resp.status == 403 and "PERMISSION_DENIED" in body, (resp.status, body)
    # ... and so it is for another user on the unix socket, even with root's session
    # (the socket reached through a link: the run directory is root's alone).
    link = os.path.join(TMP, "sock")
    os.link(os.path.join(D.run_dir, "hyperxed.sock"), link)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            st, text = fd_request("GET", "/export_raw_vdi?" + q, [], sock_path=link)
            code = 0 if st == 403 and "PERMISSION_DENIED" in text else 2
            st, text = fd_request("PUT", "/import_raw_vdi?" + q, [], sock_path=link)
            code = code or (0 if st == 403 and "PERMISSION_DENIED" in text else 3)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    # An import that hands a file over carries no body.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(os.path.join(D.run_dir, "hyperxed.sock"))
    c.sendall(("PUT /import_raw_vdi?%s HTTP/1.1\r\nHost: x\r\nUpgrade: hyperxe-fd\r\n"
               "Connection: Upgrade\r\nContent-Length: 5\r\n\r\nhello" % q).encode())
    reply = c.recv(4096)
    c.close()
    assert reply.startswith(b"HTTP/1.1 403"), reply
    assert same(src, "raw", vdi_file(u), "qcow2")
    assert xe_out("task-list", "status=pending", "--minimal") == ""
    xe("vdi-destroy", "uuid=" + u)


def main():
    global D, TMP
    TMP = tempfile.mkdtemp(prefix="hx-xfer-")
    os.chmod(TMP, 0o755)
    code = 0
    try:
        with Daemon() as d:
            D = d
            try:
                run_tests([test_exports_and_imports_on_both_paths, test_xe_to_special_files,
                           test_only_data_crosses_the_wire, test_cut_off_export,
                           test_descriptor_checks])
            except SystemExit as e:
                code = e.code
                if code:
                    sys.stdout.write("# ---- hyperxed log ----\n# " +
                                     d.log().replace("\n", "\n# ") + "\n")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
