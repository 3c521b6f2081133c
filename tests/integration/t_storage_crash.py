"""Storage under failure: the daemon killed (SIGKILL, from a crash point set
with HYPERXE_CRASH_AT) at each step of import, copy, snapshot, destroy and
merge, then restarted: no orphan file, no dangling record, every file passes
qemu-img check and holds the content of either the state before or the state
after the operation. And a full disk (an SR on a small tmpfs): SR_FULL,
nothing half-made.
"""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import PASSWORD, Daemon, run_tests  # noqa: E402

D = None
TMP = None
MiB = 1 << 20


def xe(*args, check=True):
    return D.xe(*args, check=check)


def xe_out(*args):
    return xe(*args).stdout.strip()


def local_sr():
    return xe_out("sr-list", "name-label=Local storage", "--minimal")


def sr_dir(sr):
    pbd = xe_out("pbd-list", "sr-uuid=" + sr, "--minimal")
    return xe_out("pbd-param-get", "uuid=" + pbd, "param-name=device-config", "param-key=path")


def make_random(path, size, seed):
    rnd = random.Random(seed)
    block = bytes(rnd.getrandbits(8) for _ in range(65536))
    with open(path, "wb") as f:
        for i in range(size // 65536):
            f.write(block[i % 7:] + block[:i % 7])


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def content(uuid):
    out = os.path.join(TMP, "content.raw")
    xe("vdi-export", "uuid=" + uuid, "filename=" + out)
    return sha_file(out)


def wait_dead():
    for _ in range(400):
        try:
            os.kill(D.pid(), 0)
        except (ProcessLookupError, OSError, ValueError):
            return
        time.sleep(0.05)
    raise AssertionError("the daemon did not reach its crash point")


def crash(point, *action):
    """Runs action (xe arguments) with the daemon set to die at point, then restarts it."""
    D.env["HYPERXE_CRASH_AT"] = point
    D.restart()
    r = xe(*action, check=False)
    wait_dead()
    del D.env["HYPERXE_CRASH_AT"]
    D.start()
    return r


def check_invariants():
    sr = local_sr()
    d = sr_dir(sr)
    names = sorted(os.listdir(d))
    assert not [n for n in names if n.startswith(".hx-")], names
    files = {n[:-len(".qcow2")] for n in names if n.endswith(".qcow2")}
    records = set(xe_out("vdi-list", "sr-uuid=" + sr, "--minimal").split(",")) - {""}
    assert files == records, (files, records)
    for u in records:
        assert xe_out("vdi-param-get", "uuid=" + u, "param-name=missing") == "false"
        r = subprocess.run(["qemu-img", "check", os.path.join(d, u + ".qcow2")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    assert xe_out("task-list", "status=pending", "--minimal") == ""
    return records


def fresh_vdi(data):
    u = xe_out("vdi-create", "sr-uuid=" + local_sr(), "name-label=crash", "virtual-size=16MiB")
    xe("vdi-import", "uuid=" + u, "filename=" + data)
    return u


def cleanup_all():
    for u in xe_out("vdi-list", "sr-uuid=" + local_sr(), "managed=true", "--minimal").split(","):
        if u:
            xe("vdi-destroy", "uuid=" + u)
    assert check_invariants() == set()


X = Y = None


def tcp():
    """xe over TCP: the file's bytes stream through HTTP (on the unix socket, xe as
    root hands the file itself over)."""
    return ["-s", "127.0.0.1", "-p", str(D.port), "--nossl", "-u", "root", "-pw", PASSWORD]


def test_import_crashes():
    for via in ([], tcp()):
        for point in ("import-streaming", "import-written"):
            u = fresh_vdi(X)
            crash(point, *via, "vdi-import", "uuid=" + u, "filename=" + Y)
            check_invariants()
            assert content(u) == sha_file(X), (point, via)
            cleanup_all()
    # Between the two renames of a publish over an existing file (the old file
    # under the trash name, the new one still under its tmp name): the record is
    # committed, either content is whole.
    for via in ([], tcp()):
        u = fresh_vdi(X)
        crash("publish-trashed", *via, "vdi-import", "uuid=" + u, "filename=" + Y)
        check_invariants()
        assert content(u) in (sha_file(X), sha_file(Y)), via
        cleanup_all()


def test_copy_crashes():
    for point, survives in (("copy-written", False), ("copy-committed", True)):
        u = fresh_vdi(X)
        before = check_invariants()
        crash(point, "vdi-copy", "uuid=" + u, "sr-uuid=" + local_sr())
        after = check_invariants()
        new = after - before
        assert len(new) == (1 if survives else 0), (point, new)
        for n in new:
            assert content(n) == sha_file(X)
        cleanup_all()


def test_snapshot_crashes():
    for point, survives in (("snapshot-files", False), ("snapshot-committed", True),
                            ("snapshot-half-published", True)):
        u = fresh_vdi(X)
        before = check_invariants()
        crash(point, "vdi-snapshot", "uuid=" + u)
        after = check_invariants()
        assert len(after - before) == (2 if survives else 0), (point, after - before)
        assert content(u) == sha_file(X)
        for n in after - before:
            assert content(n) == sha_file(X)
        cleanup_all()


def test_destroy_and_merge_crashes():
    for point in ("destroy-trashed", "destroy-committed", "coalesce-committed",
                  "coalesce-renamed"):
        u = fresh_vdi(X)
        s = xe_out("vdi-snapshot", "uuid=" + u)
        crash(point, "vdi-destroy", "uuid=" + s)
        left = check_invariants()
        assert u in left
        if point == "destroy-trashed":
            assert left == {u, s} | {xe_out("vdi-list", "managed=false", "--minimal")}
            assert content(s) == sha_file(X)
        else:
            # Destroyed, and the base copy merged into u during the restart.
            assert left == {u}, (point, left)
            assert "vhd-parent" not in xe_out("vdi-param-get", "uuid=" + u,
                                              "param-name=sm-config")
        assert content(u) == sha_file(X)
        cleanup_all()


def test_disk_full():
    mnt = os.path.join(TMP, "small")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("# skipped: cannot mount a tmpfs here (%s)" % r.stderr.strip())
        return
    try:
        d = os.path.join(mnt, "sr")
        sr = xe_out("sr-create", "name-label=small", "type=ext", "device-config:path=" + d)
        u = xe_out("vdi-create", "sr-uuid=" + sr, "name-label=big", "virtual-size=64MiB")
        base = sorted(os.listdir(d))
        big = os.path.join(TMP, "big.raw")
        make_random(big, 32 * MiB, seed=3)
        for via in ([], tcp()):
            r = xe(*via, "vdi-import", "uuid=" + u, "filename=" + big, check=False)
            assert r.returncode != 0 and "SR is full" in r.stderr, (via, r.stderr)
            assert sorted(os.listdir(d)) == base
        # A copy of a VDI holding more data than the SR has room for.
        src = fresh_vdi(X)
        xe("vdi-resize", "uuid=" + src, "disk-size=64MiB")
        r = xe("vdi-import", "uuid=" + src, "filename=" + big, check=False)
        assert r.returncode == 0, r.stderr
        r = xe("vdi-copy", "uuid=" + src, "sr-uuid=" + sr, check=False)
        assert r.returncode != 0 and "SR is full" in r.stderr, r.stderr
        assert sorted(os.listdir(d)) == base
        # An image whose upload passes the first check (it is small: compressed) but
        # whose content fills the disk while it is written.
        vmdk = os.path.join(TMP, "pattern.vmdk")
        pattern = os.path.join(TMP, "pattern.raw")
        with open(pattern, "wb") as f:
            f.write(b"\x5a" * (30 * MiB))
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                        "subformat=streamOptimized", pattern, vmdk], check=True)
        assert os.path.getsize(vmdk) < 4 * MiB
        for via in ([], tcp()):
            r = xe(*via, "vdi-import", "uuid=" + u, "filename=" + vmdk, "format=vmdk",
                   check=False)
            assert r.returncode != 0 and "SR is full" in r.stderr, (via, r.stderr)
            assert sorted(os.listdir(d)) == base
        # Creating disks still works where there is room, and the SR is intact.
        assert xe_out("vdi-param-get", "uuid=" + u, "param-name=missing") == "false"
        xe("vdi-destroy", "uuid=" + u)
        xe("vdi-destroy", "uuid=" + src)
        pbd = xe_out("pbd-list", "sr-uuid=" + sr, "--minimal")
        xe("pbd-unplug", "uuid=" + pbd)
        xe("sr-destroy", "uuid=" + sr)
        assert xe_out("task-list", "status=pending", "--minimal") == ""
    finally:
        subprocess.run(["umount", mnt], capture_output=True)


def main():
    global D, TMP, X, Y
    TMP = tempfile.mkdtemp(prefix="hx-crash-")
    X = os.path.join(TMP, "x.raw")
    Y = os.path.join(TMP, "y.raw")
    make_random(X, 16 * MiB, seed=1)
    make_random(Y, 16 * MiB, seed=2)
    code = 0
    try:
        with Daemon() as d:
            D = d
            try:
                run_tests([test_import_crashes, test_copy_crashes, test_snapshot_crashes,
                           test_destroy_and_merge_crashes, test_disk_full])
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
