#!/usr/bin/env python3
"""File-level tests of the XVA code through xva-tool.

1. Round trips: random sparse raw disks (several, sizes not multiples of
   1 MiB, an empty one, one of exactly one block, ids whose string order
   differs from their numeric order) exported with every compression and
   checksum kind, checked by the independent reader xva_check.py, then
   imported (planned from ova.xml, and discovered) and compared.
2. Archives written the way XenServer writes them, by a Python model of
   xapi's Stream_vdi.send_one using tarfile: SHA-1 ".checksum" members,
   skipped blocks, empty keep-alive members that shift the numbering,
   Ref:10 before Ref:9, ustar/GNU/pax headers, gzip and zstd compression,
   a metadata-only export, and the short-first-member quirk.
3. A legacy version-1 directory.
4. Bad inputs: each must end with exit status 1 and a clear message, never
   a signal.

usage: test_xva_files.py XVA_TOOL
"""
import gzip
import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xva_check  # noqa: E402
from xxh64 import xxh64_hex  # noqa: E402

MiB = 1 << 20
TOOL = None
TMP = None
failures = 0
count = 0


def ok(cond, what):
    global failures, count
    count += 1
    if cond:
        print(f"ok {count} - {what}")
    else:
        failures += 1
        print(f"not ok {count} - {what}")


def run(*args, **kw):
    return subprocess.run([TOOL, *args], capture_output=True, text=True, **kw)


def p(name):
    return os.path.join(TMP, name)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def sparse_disk(path, size, rnd, extents):
    """A sparse file with random data in a few extents (some left zero)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for _ in range(extents):
            if size == 0:
                break
            off = rnd.randrange(size)
            n = min(size - off, rnd.randint(1, 2 * MiB))
            f.seek(off)
            f.write(rnd.randbytes(n) if rnd.random() < 0.8 else b"\0" * n)
    return read(path)


# ---------------------------------------------------------------- round trips

def test_roundtrips():
    rnd = random.Random(42)
    ids = ["Ref:9", "Ref:10", "Ref:11", "Ref:2", "Ref:100", "Ref:3"]
    sizes = [3 * MiB + 1234, 5 * MiB, 0, 1 * MiB, 7 * MiB + 1, 200000]
    srcs = {}
    for i, (ident, size) in enumerate(zip(ids, sizes)):
        path = p(f"disk{i}.raw")
        sparse_disk(path, size, rnd, 4)
        srcs[ident] = path
    args = [srcs[i] for i in ids]
    for opts, csum in (([], "xxhash"), (["--gzip"], "xxhash"), (["--zstd"], "xxhash"),
                       (["--sha1"], "sha1"), (["--zstd", "--level", "19", "--sha1"], "sha1"),
                       (["--no-map"], "xxhash"), (["--no-map", "--no-threads", "--sha1"], "sha1")):
        tag = "-".join(o.strip("-") for o in opts) or "plain"
        out = p(f"rt-{tag}.xva")
        r = run("export", *opts, "--ids", ",".join(ids), out, *args)
        ok(r.returncode == 0, f"export {tag}: {r.stderr.strip()}")
        try:
            s = xva_check.check(out, srcs, csum)
            ok(True, f"independent reader accepts the {tag} export ({s['compression']})")
        except xva_check.Bad as e:
            ok(False, f"independent reader on {tag}: {e}")
        for mode in ([], ["--discover"], ["--no-threads"]):
            d = p(f"imp-{tag}{''.join(mode)}")
            r = run("import", *mode, out, d)
            ok(r.returncode == 0, f"import {tag} {mode}: {r.stderr.strip()}")
            same = all(read(os.path.join(d, f"{i}.img")) == read(srcs[i])
                       for i in ids if os.path.getsize(srcs[i]) or not mode)
            ok(same, f"import {tag} {mode} reproduces every disk")
        r = run("verify", out)
        ok(r.returncode == 0 and "disks=5" in r.stdout, f"verify {tag}")
    ok(read(p("rt-plain.xva"))[1024:] == read(p("rt-no-map.xva"))[1024:],
       "mapped and read exports are identical past ova.xml")
    # Through stdin/stdout pipes.
    r = subprocess.run(f"'{TOOL}' export --zstd --ids {','.join(ids)} - {' '.join(args)} | "
                       f"'{TOOL}' import - '{p('imp-pipe')}'", shell=True, capture_output=True,
                       text=True)
    ok(r.returncode == 0 and all(read(os.path.join(p("imp-pipe"), f"{i}.img")) == read(srcs[i])
                                 for i in ids), f"export | import through a pipe {r.stderr}")
    # Raw VDI tar.
    out = p("raw.tar")
    r = run("export-raw", out, srcs["Ref:9"])
    ok(r.returncode == 0, "export-raw")
    try:
        xva_check.check(out, {"vdi": srcs["Ref:9"]}, "sha1", raw_tar=True)
        ok(True, "independent reader accepts the raw tar (vdi/, SHA-1)")
    except xva_check.Bad as e:
        ok(False, f"raw tar: {e}")
    r = run("import-raw", out, str(sizes[0]), p("raw.img"))
    ok(r.returncode == 0 and read(p("raw.img")) == read(srcs["Ref:9"]), "import-raw")


# ---------------------------------------------------------- XenServer-style

def ova_xml(vdis):
    """ova.xml as xapi writes it: one line, no declaration, untyped values."""
    def member(n, v):
        return f"<member><name>{n}</name><value>{v}</value></member>"
    objs = [f"<value><struct>{member('class', 'VM')}{member('id', 'Ref:0')}"
            f"<member><name>snapshot</name><value><struct>{member('name_label', 'vm')}"
            f"</struct></value></member></struct></value>"]
    for ident, size in vdis:
        objs.append(f"<value><struct>{member('class', 'VDI')}{member('id', ident)}"
                    f"<member><name>snapshot</name><value><struct>"
                    f"{member('virtual_size', size)}{member('SR', 'Ref:99')}"
                    f"{member('type', 'system')}</struct></value></member></struct></value>")
    version = "".join(member(k, v) for k, v in (
        ("hostname", "xs1"), ("date", "2016-05-01"), ("product_version", "7.0.0"),
        ("product_brand", "XenServer"), ("build_number", "125380c"), ("xapi_major", "1"),
        ("xapi_minor", "9"), ("export_vsn", "2")))
    return (f"<value><struct><member><name>version</name><value><struct>{version}</struct>"
            f"</value></member><member><name>objects</name><value><array><data>"
            f"{''.join(objs)}</data></array></value></member></struct></value>").encode()


def xs_disk(ident, data, checksum="xxhash", keepalive_before=()):
    """Members as xapi's Stream_vdi.send_one (raw path) emits them.
    keepalive_before: block offsets (in MiB) before whose processing the
    5-second keep-alive fires (an empty member, numbering shifts by one)."""
    out = []
    size = len(data)
    number, offset = 0, 0
    pending = set(keepalive_before)

    def add(name, blk):
        out.append((name, blk))
        if checksum == "xxhash":
            out.append((name + ".xxhash", xxh64_hex(blk).encode()))
        else:
            out.append((name + ".checksum", hashlib.sha1(blk).hexdigest().encode()))

    while offset < size:
        this = min(MiB, size - offset)
        first_or_last = number == 0 or this == size - offset
        if offset // MiB in pending and not first_or_last:
            pending.discard(offset // MiB)
            add(f"{ident}/{number:08d}", b"")
            number += 1
            continue
        blk = data[offset:offset + this]
        if first_or_last or blk.count(0) != len(blk):
            add(f"{ident}/{number:08d}", blk)
        number += 1
        offset += MiB
    return out


def xs_tar(members, fmt=tarfile.USTAR_FORMAT, mtime=1462000000, mode=0o400):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=fmt) as tf:
        for i, (name, data) in enumerate(members):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = mtime if i == 0 else 0
            ti.mode = mode
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tf.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def disk_content(rnd, size, pattern):
    """pattern: per MiB block, 'd' random data, 'z' zeros."""
    b = bytearray(size)
    for i, c in enumerate(pattern):
        lo, hi = i * MiB, min(size, (i + 1) * MiB)
        if c == "d" and lo < size:
            b[lo:hi] = rnd.randbytes(hi - lo)
    return bytes(b)


def expect_import(xva, disks, what, extra=()):
    d = p("imp-" + os.path.basename(xva))
    shutil.rmtree(d, ignore_errors=True)
    r = run("import", "--stats", *extra, xva, d)
    good = r.returncode == 0
    for ident, data in disks:
        good = good and read(os.path.join(d, f"{ident}.img")) == data
    ok(good, f"{what} {r.stderr.strip().splitlines()[:1]}")
    return r


def test_xenserver_style():
    rnd = random.Random(7)
    d10 = disk_content(rnd, 6 * MiB + 1000, "dzdzzdz")   # last block: 1000 zero bytes
    d9 = disk_content(rnd, 3 * MiB, "zzz")                # all zero: blocks 0 and 2 only
    d9 = b"\x01" + d9[1:]
    vdis = [("Ref:9", len(d9)), ("Ref:10", len(d10))]
    ms10 = xs_disk("Ref:10", d10, "sha1", keepalive_before=(1, 4))
    ms9 = xs_disk("Ref:9", d9, "sha1")
    names = [m[0] for m in ms10]
    ok("Ref:10/00000001" in names and dict(ms10)["Ref:10/00000001"] == b"" and
       "Ref:10/00000007" in names, "the model emits keep-alives that shift numbers")
    members = [("ova.xml", ova_xml(vdis))] + ms10 + ms9
    for fmt, tag in ((tarfile.USTAR_FORMAT, "ustar"), (tarfile.GNU_FORMAT, "gnu"),
                     (tarfile.PAX_FORMAT, "pax")):
        x = p(f"xs-sha1-{tag}.xva")
        write(x, xs_tar(members, fmt))
        r = expect_import(x, [("Ref:9", d9), ("Ref:10", d10)],
                          f"XenServer-style SHA-1 archive ({tag}) imports")
        ok("checksums_sha1=8" in r.stderr and "keepalives=2" in r.stderr,
           f"SHA-1 members verified and keep-alives counted ({tag})")
    raw = xs_tar([("ova.xml", ova_xml(vdis))] + xs_disk("Ref:10", d10) + xs_disk("Ref:9", d9))
    write(p("xs.xva.gz"), gzip.compress(raw))
    expect_import(p("xs.xva.gz"), [("Ref:9", d9), ("Ref:10", d10)], "gzip-compressed archive")
    # use_compression=true output as gzip writes it, concatenated members included
    write(p("xs2.xva.gz"), gzip.compress(raw[:700000]) + gzip.compress(raw[700000:]))
    expect_import(p("xs2.xva.gz"), [("Ref:9", d9), ("Ref:10", d10)],
                  "gzip stream of two members")
    subprocess.run(["zstd", "-q", "-f", "-T0", p("xs-sha1-ustar.xva"), "-o", p("xs.xva.zst")],
                   check=True)
    r = expect_import(p("xs.xva.zst"), [("Ref:9", d9), ("Ref:10", d10)], "zstd-compressed archive")
    ok("compression=zstd" in r.stderr, "zstd detected")
    r = run("verify", p("xs.xva.zst"))
    ok(r.returncode == 0 and "disk Ref:10 size=6292456" in r.stdout, "verify a XenServer archive")
    # Metadata only.
    write(p("meta.xva"), xs_tar([("ova.xml", ova_xml([]))]))
    r = run("import", p("meta.xva"), p("imp-meta"))
    ok(r.returncode == 0 and os.path.exists(p("imp-meta/ova.xml")), "metadata-only archive")
    # xapi's quirk: a first disk under 1 MiB makes its size the gap unit for later
    # disks, so an archive that skips blocks after it cannot be read as intended.
    small = b"\x05" * 4096
    big = disk_content(rnd, 3 * MiB, "dzd")
    q = [("ova.xml", ova_xml([("Ref:1", len(small)), ("Ref:2", len(big))]))]
    q += xs_disk("Ref:1", small) + xs_disk("Ref:2", big)
    write(p("quirk.xva"), xs_tar(q))
    r = run("import", p("quirk.xva"), p("imp-quirk"))
    ok(r.returncode == 1 and "[truncated]" in r.stderr and "Ref:2" in r.stderr,
       f"gap unit = first member size, as xapi: {r.stderr.strip()}")
    # Our writer avoids the quirk by writing every block after a short first member.
    write(p("small.raw"), small)
    write(p("big.raw"), big)
    r = run("export", p("noquirk.xva"), p("small.raw"), p("big.raw"))
    expect_import(p("noquirk.xva"), [("Ref:1", small), ("Ref:2", big)],
                  "our export with a short first disk imports")
    try:
        xva_check.check(p("noquirk.xva"), {"Ref:1": p("small.raw"), "Ref:2": p("big.raw")})
        ok(False, "the checker should see a written zero middle block")
    except xva_check.Bad as e:
        ok("all-zero middle block" in str(e), "short first member: every later block written")


# ---------------------------------------------------------- version 1

V1_XML = """<?xml version="1.0" encoding="UTF-8"?>
<appliance version="0.1">
  <vm name="vm">
    <label>Debian Sarge</label>
    <shortdesc>An old guest</shortdesc>
    <config mem_set="268435456" vcpus="1"/>
    <hacks is_hvm="false" kernel_boot_cmdline="root=/dev/sda1 ro"/>
    <vbd device="sda" function="root" mode="w" vdi="vdi_sda"/>
    <vbd device="sdb" function="swap" mode="rw" vdi="vdi_sdb"/>
  </vm>
  <vdi name="vdi_sda" size="2500000" source="file://sda" type="dir-gzipped-chunks" variety="system"/>
  <vdi name="vdi_sdb" size="1500000" source="file://sdb" type="dir-gzipped-chunks" variety="user"/>
</appliance>
"""


def test_v1():
    rnd = random.Random(3)
    d = p("v1dir")
    os.makedirs(os.path.join(d, "sda"))
    os.makedirs(os.path.join(d, "sdb"))
    write(os.path.join(d, "ova.xml"), V1_XML.encode())
    sda = rnd.randbytes(2500000)
    sdb = rnd.randbytes(700000) + b"\0" * 800000
    for i in range(3):  # 1,000,000-byte chunks, the last shorter
        write(os.path.join(d, "sda", f"chunk-{i:09d}.gz"), gzip.compress(sda[i * 1000000:(i + 1) * 1000000]))
    write(os.path.join(d, "sdb", "chunk000000000.gz"), gzip.compress(sdb[:700000]))  # the doc's spelling
    for path in (d, os.path.join(d, "ova.xml")):
        out = p("v1out")
        shutil.rmtree(out, ignore_errors=True)
        r = run("v1", path, out)
        ok(r.returncode == 0, f"v1 import of {os.path.basename(path)}: {r.stderr.strip()}")
        ok("label=Debian Sarge" in r.stdout and "is_hvm=false" in r.stdout and
           "kernel_boot_cmdline=root=/dev/sda1 ro" in r.stdout and
           "vbd device=sda function=root bootable=true mode=RW vdi=vdi_sda" in r.stdout and
           "vdi name=vdi_sdb size=1500000 source=file://sdb type=dir-gzipped-chunks variety=user"
           in r.stdout, "v1 ova.xml fields")
        ok(read(os.path.join(out, "vdi_sda.img")) == sda and
           read(os.path.join(out, "vdi_sdb.img")) == sdb, "v1 disks rebuilt (short one zero-filled)")
    write(os.path.join(d, "ova.xml"), V1_XML.replace('mode="w"', 'mode="ro"').encode())
    r = run("v1", d, p("v1bad"))
    ok(r.returncode == 1 and "Unknown mode: ro" in r.stderr, "v1: mode ro refused as xapi did")


# ---------------------------------------------------------- bad inputs

def expect_fail(args, kind, needle, what):
    r = run(*args)
    good = r.returncode == 1 and f"[{kind}]" in r.stderr and needle in r.stderr
    ok(good, f"{what}: {r.stderr.strip().splitlines()[0] if r.stderr.strip() else r.returncode}")
    return r


def test_bad_inputs():
    rnd = random.Random(11)
    data = disk_content(rnd, 3 * MiB + 5, "dzd")
    vdis = [("Ref:1", len(data))]
    good = [("ova.xml", ova_xml(vdis))] + xs_disk("Ref:1", data)
    raw = xs_tar(good)
    write(p("good.xva"), raw)
    expect_import(p("good.xva"), [("Ref:1", data)], "the base archive imports")

    def bad(name, content):
        write(p(name), content)
        return p(name)

    expect_fail(["import", bad("trunc.xva", raw[:len(raw) // 2]), p("o")], "truncated",
                "ends", "truncated stream")
    expect_fail(["import", bad("trunc.gz", gzip.compress(raw)[:300000]), p("o")], "compression",
                "truncated", "truncated gzip stream")
    # A wrong checksum: refused, accepted with --force.
    flipped = bytearray(raw)
    off = raw.index(b"Ref:1/00000000") + 512 + 1000
    flipped[off] ^= 1
    x = bad("badsum.xva", bytes(flipped))
    expect_fail(["import", x, p("o")], "checksum", "Block Ref:1/00000000 checksum failed",
                "wrong checksum")
    r = run("import", "--force", "--stats", x, p("o-force"))
    ok(r.returncode == 0 and "checksum_mismatches=1" in r.stderr, "wrong checksum with --force")
    expect_fail(["verify", x], "checksum", "checksum failed", "verify finds the bad block")
    # ova.xml missing / not first / misnamed.
    r = expect_fail(["import", bad("noova.xva", xs_tar(good[1:])), p("o")], "unexpected-file",
                    "must be ova.xml", "missing ova.xml")
    ok("expected=ova.xml found=Ref:1/00000000" in r.stderr, "IMPORT_ERROR_UNEXPECTED_FILE params")
    expect_fail(["import", bad("late.xva", xs_tar([("README", b"hi")] + good)), p("o")],
                "unexpected-file", "found 'README'", "ova.xml not first")
    expect_fail(["import", bad("dot.xva", xs_tar([("./ova.xml", good[0][1])] + good[1:])), p("o")],
                "unexpected-file", "./ova.xml", "ova.xml with a ./ prefix")
    # Sizes.
    expect_fail(["import", bad("absurd.xva", xs_tar([("ova.xml", ova_xml([("Ref:1", 10**20)]))]
                                                     + good[1:])), p("o")],
                "callback", "refused", "absurd virtual size")
    expect_fail(["import", bad("short.xva", xs_tar([("ova.xml", ova_xml([("Ref:1", len(data) + 1)]))]
                                                    + good[1:])), p("o")],
                "truncated", "before disk Ref:1 is complete", "data shorter than the virtual size")
    expect_fail(["import", bad("long.xva", xs_tar([("ova.xml", ova_xml([("Ref:1", len(data) - 1)]))]
                                                   + good[1:])), p("o")],
                "invalid", "goes past the end", "data longer than the virtual size")
    past = good[:3] + [("Ref:1/00000900", data[:MiB]), ("Ref:1/00000900.xxhash",
                                                          xxh64_hex(data[:MiB]).encode())]
    expect_fail(["import", bad("past.xva", xs_tar(past)), p("o")], "invalid",
                "beyond its virtual size", "a block past the end")
    # Path tricks and non-regular members.
    for trick in ("../../etc/passwd", "/etc/passwd", "Ref:1/../../x", "Ref:1/./00000001"):
        m = good[:3] + [(trick, b"x" * 100), (trick + ".xxhash", xxh64_hex(b"x" * 100).encode())]
        expect_fail(["import", bad("trick.xva", xs_tar(m, fmt=tarfile.GNU_FORMAT)), p("o")],
                    "invalid", "unsafe member name", f"path trick {trick!r}")
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo("ova.xml")
        ti.size = len(good[0][1])
        tf.addfile(ti, io.BytesIO(good[0][1]))
        ti = tarfile.TarInfo("Ref:1")
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)
    expect_fail(["import", bad("dir.xva", bio.getvalue()), p("o")], "invalid", "is a directory",
                "a directory entry")
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo("ova.xml")
        ti.size = len(good[0][1])
        tf.addfile(ti, io.BytesIO(good[0][1]))
        ti = tarfile.TarInfo("Ref:1/00000000")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "/etc/shadow"
        tf.addfile(ti)
    expect_fail(["import", bad("sym.xva", bio.getvalue()), p("o")], "invalid",
                "not a regular file", "a symbolic link")
    # Garbage.
    expect_fail(["import", bad("garbage.xva", bytes(rnd.randrange(1, 256) | 1 for _ in range(5000))),
                 p("o")], "compression", "neither a tar archive", "garbage")
    expect_fail(["import", bad("zgarbage.xva", b"\x28\xb5\x2f\xfd" + rnd.randbytes(5000)), p("o")],
                "compression", "zstd", "garbage after the zstd magic")
    expect_fail(["import", bad("empty.xva", b""), p("o")], "truncated", "empty", "empty input")
    used = (len(raw.rstrip(b"\0")) + 511) // 512 * 512
    expect_fail(["verify", bad("noend.xva", raw[:used])], "truncated", "end-of-archive",
                "verify: no end-of-archive marker")


def main():
    global TOOL, TMP
    TOOL = os.path.abspath(sys.argv[1])
    TMP = tempfile.mkdtemp(prefix="xva-files-")
    try:
        test_roundtrips()
        test_xenserver_style()
        test_v1()
        test_bad_inputs()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"1..{count}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
