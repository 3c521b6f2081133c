#!/usr/bin/env python3
"""Format layer tests, run against hyperxe-img with qemu-img as the oracle.

usage: test_formats.py HYPERXE_IMG SAMPLES_DIR GROUP
groups: samples, qemu, writers, hostile, sparse

Each check prints "ok - NAME" or "not ok - NAME: why"; the last line is
"N passed, N failed". A crash of hyperxe-img (signal, sanitizer report) is a
failure even where an error was expected.
"""
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

IMG = SAMPLES = TMP = None
passed = failed = 0

ENV = dict(os.environ)
ENV.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
ENV.setdefault("UBSAN_OPTIONS", "halt_on_error=1:abort_on_error=1:print_stacktrace=1")


def report(name, ok, why=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {name}")
    else:
        failed += 1
        print(f"not ok - {name}: {why}")
    sys.stdout.flush()


def run(args, **kw):
    return subprocess.run(args, capture_output=True, env=ENV, **kw)


def crashed(p):
    err = p.stderr.decode(errors="replace")
    return p.returncode < 0 or p.returncode > 2 or "Sanitizer" in err or "runtime error" in err


def hxe(*args, **kw):
    return run([IMG] + list(args), **kw)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def hxe_raw_sha(path, *opts):
    """sha256 of the raw content hyperxe-img decodes, or (None, stderr)."""
    out = os.path.join(TMP, "decoded.raw")
    p = hxe("convert", *opts, "-O", "raw", path, out)
    if p.returncode != 0 or crashed(p):
        return None, p
    return sha256_file(out), p


def qemu_raw_sha(path, fmt=None):
    out = os.path.join(TMP, "qemu.raw")
    args = ["qemu-img", "convert"] + (["-f", fmt] if fmt else []) + ["-O", "raw", path, out]
    subprocess.run(args, check=True, capture_output=True)
    return sha256_file(out)


def expect_sha(name, path, want, *opts):
    got, p = hxe_raw_sha(path, *opts)
    if got is None:
        report(name, False, f"rc={p.returncode} {p.stderr.decode(errors='replace').strip()}")
    else:
        report(name, got == want, f"sha256 {got} != {want}")


def expect_error(name, path, words, *opts, cmd="convert"):
    if cmd == "convert":
        p = hxe("convert", *opts, "-O", "raw", path, os.path.join(TMP, "err.raw"))
    else:
        p = hxe(cmd, *opts, path)
    err = p.stderr.decode(errors="replace")
    if crashed(p):
        report(name, False, f"crashed (rc={p.returncode}): {err[-400:]}")
    elif p.returncode == 0:
        report(name, False, "accepted a file that must be refused")
    else:
        missing = [w for w in words if w.lower() not in err.lower()]
        report(name, not missing, f"message {err.strip()!r} lacks {missing}")


def make_pattern(path, size, seed=1, chunks=None):
    """A sparse raw file with a few chunks of random and text data."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, n in chunks or []:
            f.seek(off)
            if rnd.random() < 0.5:
                f.write(bytes(rnd.getrandbits(8) for _ in range(n)))
            else:
                f.write((b"hyperxe %d " % off * (n // 10 + 1))[:n])


STD_CHUNKS = [(0, 70000), (510, 2), (3 << 20 | 12345, 40000), (7 << 20, 65536),
              ((24 << 20) - 512, 512)]


# --------------------------------------------------------------------------
# samples written by other software

SRC_SHA = "a00f60416fb09143d1d13ce389cf0793f1c0251e911878533d5d11f1fe6fb639"

VHD_SAMPLES = [
    ("qemu-fixed.vhd", SRC_SHA, []),
    ("qemu-dynamic.vhd", SRC_SHA, []),
    ("dfvfs-ext2-qemu-dynamic.vhd",
     "870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99", []),
    ("tsk-image-qemu-dynamic.vhd",
     "84c172cd6e864e2a2ca00b60b531a3c7b1376e5257174bfdc4987f3f6312ad3c", []),
    ("dfvfs-image-parent.vhd",
     "c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25", ["--lenient"]),
    ("dfvfs-image-differential.vhd",
     "c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25",
     ["--lenient", "--parent", "@vhd/dfvfs-image-parent.vhd"]),
    ("dfvfs-fat-differential-windows.vhd",
     "9e96fac774e2e3606e0e3d5f1152844ca3c6a45ed45e61f36586b2cd60b19d3f", ["--no-backing"]),
]

VMDK_SAMPLES = [
    ("qemu-monolithicSparse-lsilogic.vmdk", SRC_SHA),
    ("qemu-streamOptimized.vmdk", SRC_SHA),
    ("qemu-monolithicFlat/qemu-monolithicFlat.vmdk", SRC_SHA),
    ("qemu-twoGbMaxExtentSparse/qemu-twoGbSparse.vmdk", SRC_SHA),
    ("dfvfs-ext2-monolithicSparse.vmdk",
     "a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80"),
    ("tsk-image-monolithicSparse.vmdk",
     "854c3db1c4a07a241e2ed9fbd8892adf2adc662c7862a75deed26f3483f414c9"),
    ("../ovf/ganeti/new_disk.vmdk",
     "16fa66a7dc98d93f2a4c5d20baf5177f59c4c37fc62face65690c11c15fe6ff9"),
]


def sample(rel):
    return os.path.join(SAMPLES, rel)


def group_samples():
    for name, want, opts in VHD_SAMPLES:
        opts = [sample(o[1:]) if o.startswith("@") else o for o in opts]
        expect_sha(f"vhd sample {name} {' '.join(opts)}", sample("vhd/" + name), want, *opts)
    # Strict checksum handling and missing parents.
    expect_error("vhd dfvfs-image-parent refused without --lenient",
                 sample("vhd/dfvfs-image-parent.vhd"), ["checksum"])
    expect_error("vhd dfvfs-image-differential refused without --lenient",
                 sample("vhd/dfvfs-image-differential.vhd"), ["checksum"])
    expect_error("vhd dfvfs-image-differential: parent image.vhd missing",
                 sample("vhd/dfvfs-image-differential.vhd"), ["parent", "image.vhd"], "--lenient")
    expect_error("vhd windows differencing: parent missing",
                 sample("vhd/dfvfs-fat-differential-windows.vhd"),
                 ["parent", "fat-parent.vhd", "5fa21a55"])
    # The Windows child finds a parent through its W2ru locator, and the UUID is checked.
    d = tempfile.mkdtemp(dir=TMP)
    shutil.copy(sample("vhd/dfvfs-fat-differential-windows.vhd"), d)
    shutil.copy(sample("vhd/qemu-fixed.vhd"), os.path.join(d, "fat-parent.vhd"))
    expect_error("vhd windows differencing: parent UUID mismatch",
                 os.path.join(d, "dfvfs-fat-differential-windows.vhd"), ["UUID"])
    # A parent with the right UUID found by locator name.
    pp = os.path.join(d, "fat-parent.vhd")
    with open(pp, "r+b") as f:
        f.seek(-512, 2)
        foot = bytearray(f.read(512))
        foot[68:84] = bytes.fromhex("5fa21a55f394aa4d99581951a67d5540")
        foot[64:68] = b"\0\0\0\0"
        s = (~sum(foot)) & 0xffffffff
        foot[64:68] = struct.pack(">I", s)
        f.seek(-512, 2)
        f.write(foot)
    got, p = hxe_raw_sha(os.path.join(d, "dfvfs-fat-differential-windows.vhd"))
    ok = got is not None and got != qemu_raw_sha(pp, "vpc")
    report("vhd windows differencing: parent found via locator, child data on top", ok,
           p.stderr.decode(errors="replace"))
    # VMDK
    for name, want in VMDK_SAMPLES:
        expect_sha(f"vmdk sample {name}", sample("vmdk/" + name), want)
    expect_error("vmdk vmfs descriptor: missing extent",
                 sample("vmdk/virtmanager-esx-vmfs-descriptor.vmdk"),
                 ["ESX4.0-rhel4u8-32b-flat.vmdk"])
    p = hxe("info", sample("vmdk/virtmanager-esx-vmfs-descriptor.vmdk"))
    report("vmdk vmfs descriptor: info fails cleanly", p.returncode == 1 and not crashed(p),
           p.stderr.decode(errors="replace"))
    expect_error("vmdk truncated streamOptimized refused",
                 sample("vmdk/govmomi-ttylinux-ovftool-streamOptimized-TRUNCATED.vmdk"),
                 ["truncated"])


# --------------------------------------------------------------------------
# files written by qemu-img read to the same content

def group_qemu():
    src = os.path.join(TMP, "src.raw")
    make_pattern(src, 24 << 20, 2, STD_CHUNKS)
    want = sha256_file(src)
    cases = [
        ("vpc", ["-o", "subformat=fixed,force_size=on"]),
        ("vpc", ["-o", "subformat=fixed"]),
        ("vpc", ["-o", "subformat=dynamic,force_size=on"]),
        ("vpc", ["-o", "subformat=dynamic"]),
        ("vmdk", ["-o", "subformat=monolithicSparse"]),
        ("vmdk", ["-o", "subformat=streamOptimized"]),
        ("vmdk", ["-o", "subformat=monolithicFlat"]),
        ("vmdk", ["-o", "subformat=twoGbMaxExtentSparse"]),
        ("vmdk", ["-o", "subformat=twoGbMaxExtentFlat"]),
        ("qcow2", ["-o", "compat=0.10"]),
        ("qcow2", ["-o", "compat=1.1"]),
        ("qcow2", ["-c"]),
        ("qcow2", ["-o", "cluster_size=4096"]),
        ("qcow2", ["-c", "-o", "cluster_size=2M"]),
    ]
    for i, (fmt, opts) in enumerate(cases):
        d = tempfile.mkdtemp(dir=TMP)
        dst = os.path.join(d, f"img{i}.{fmt}")
        subprocess.run(["qemu-img", "convert", "-O", fmt] + opts + [src, dst], check=True,
                       capture_output=True)
        ref = qemu_raw_sha(dst, fmt)
        label = f"qemu-img {fmt} {' '.join(opts)}"
        f = ["-f", fmt] if fmt == "vpc" else []
        expect_sha(label, dst, ref, *f)
        if fmt != "vpc" or "force_size=on" in opts:
            report(f"{label}: content equals the source", ref == want, "qemu disagrees")
    # qcow2 chains: v2 base, v3 overlays, zero clusters, raw base, relative names.
    d = tempfile.mkdtemp(dir=TMP)
    base = os.path.join(d, "base.qcow2")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", "-o", "compat=0.10", src, base],
                   check=True, capture_output=True)
    os.mkdir(os.path.join(d, "sub"))
    mid = os.path.join(d, "sub", "mid.qcow2")
    top = os.path.join(d, "sub", "top.qcow2")
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2",
                    mid], check=True, capture_output=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x33 4M 1M", "-c", "write -z 0 64k",
                    "-c", "write -P 0x44 7M 4k", mid], check=True, capture_output=True)
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top,
                    "32M"], check=True, capture_output=True)
    subprocess.run(["qemu-io", "-c", "write -z 3M 1M", "-c", "write -P 0x55 30M 64k", top],
                   check=True, capture_output=True)
    expect_sha("qcow2 chain of 3 (v2 base, relative names, zero clusters, larger top)", top,
               qemu_raw_sha(top))
    rawbase = os.path.join(d, "rawbase.img")
    shutil.copy(src, rawbase)
    ov = os.path.join(d, "ov.qcow2")
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", "rawbase.img", "-F", "raw", ov],
                   check=True, capture_output=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x66 100k 8k", ov], check=True,
                   capture_output=True)
    expect_sha("qcow2 overlay on a raw base", ov, qemu_raw_sha(ov))
    vb, vc = os.path.join(d, "vbase.vmdk"), os.path.join(d, "vchild.vmdk")
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", src, vb], check=True,
                   capture_output=True)
    subprocess.run(["qemu-img", "create", "-f", "vmdk", "-b", "vbase.vmdk", "-F", "vmdk", vc],
                   check=True, capture_output=True)
    subprocess.run(["qemu-io", "-c", "write -P 9 1M 64k", vc], check=True, capture_output=True)
    expect_sha("vmdk delta on a vmdk parent (parentFileNameHint)", vc, qemu_raw_sha(vc))
    # Block status of the chain and of the top layer alone.
    p = hxe("map", "--top-only", top)
    lines = p.stdout.decode().split()
    report("map --top-only shows the top's zero and data runs",
           p.returncode == 0 and "zero" in lines and "data" in lines,
           p.stdout.decode() + p.stderr.decode())
    os.unlink(rawbase)
    expect_error("qcow2 with missing backing file", ov, ["rawbase.img"])


# --------------------------------------------------------------------------
# files we write pass qemu-img check and compare

def qemu_check(name, path, fmt):
    p = run(["qemu-img", "check", "-f", fmt, path])
    out = (p.stdout + p.stderr).decode(errors="replace")
    ok = p.returncode == 0 or "does not support checks" in out
    report(f"{name}: qemu-img check", ok, out.strip())


def qemu_compare(name, a, fa, b, fb):
    p = run(["qemu-img", "compare", "-f", fa, "-F", fb, a, b])
    report(f"{name}: qemu-img compare", p.returncode == 0,
           (p.stdout + p.stderr).decode(errors="replace").strip())


WRITE_CASES = [
    ("raw", "raw", []),
    ("qcow2", "qcow2", []),
    ("qcow2", "qcow2", ["-o", "cluster_size=4096"]),
    ("vhd", "vpc", ["-o", "subformat=dynamic"]),
    ("vhd", "vpc", ["-o", "subformat=dynamic,force_size=on"]),
    ("vhd", "vpc", ["-o", "subformat=fixed"]),
    ("vhd", "vpc", ["-o", "subformat=fixed,force_size=on"]),
    ("vmdk", "vmdk", ["-o", "subformat=streamOptimized"]),
    ("vmdk", "vmdk", ["-o", "subformat=monolithicSparse"]),
]


def group_writers():
    src = os.path.join(TMP, "src.raw")
    make_pattern(src, (24 << 20) + 4096, 3, STD_CHUNKS)
    # Source: a qcow2 overlay (chain) so that conversion flattens it.
    base = os.path.join(TMP, "wbase.qcow2")
    top = os.path.join(TMP, "wtop.qcow2")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", src, base], check=True)
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "qcow2", top],
                   check=True, capture_output=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 9M 300k", "-c", "write -z 0 4k", top],
                   check=True, capture_output=True)
    for fmt, qfmt, opts in WRITE_CASES:
        name = f"write {fmt} {' '.join(opts)}".strip()
        out = os.path.join(TMP, f"out.{fmt}")
        p = hxe("convert", "-O", fmt, *opts, top, out)
        if p.returncode != 0 or crashed(p):
            report(name, False, p.stderr.decode(errors="replace"))
            continue
        report(name, True)
        qemu_check(name, out, qfmt)
        qemu_compare(name, out, qfmt, top, "qcow2")
        expect_sha(f"{name}: reads back", out, qemu_raw_sha(out, qfmt),
                   *(["-f", fmt] if fmt == "raw" else []))
        # Streaming formats also go through a pipe, byte for byte the same
        # content (timestamps and UUIDs aside: compare decoded content).
        if fmt in ("raw", "vhd") or "streamOptimized" in " ".join(opts):
            piped = os.path.join(TMP, f"piped.{fmt}")
            with open(piped, "wb") as f:
                p1 = subprocess.Popen([IMG, "convert", "-O", fmt] + opts + [top, "-"],
                                      stdout=subprocess.PIPE, env=ENV)
                p2 = subprocess.Popen(["cat"], stdin=p1.stdout, stdout=f)
                p1.stdout.close()
                r1, r2 = p1.wait(), p2.wait()
            ok = r1 == 0 and r2 == 0
            report(f"{name}: to a pipe", ok, f"rc={r1}")
            if ok:
                qemu_compare(f"{name} (piped)", piped, qfmt, top, "qcow2")
    # The stream has VMware's layout, grain by grain.
    out = os.path.join(TMP, "layout.vmdk")
    p = hxe("convert", "-O", "vmdk", top, out)
    probs = check_vmware_stream(out) if p.returncode == 0 else [p.stderr.decode()]
    report("streamOptimized output has VMware's layout (markers, GT/GD, footer, EOS)",
           not probs, "; ".join(probs[:5]))
    # The parser agrees on the VMware sample's header (the part that is there).
    hdr = open(sample("vmdk/govmomi-ttylinux-ovftool-streamOptimized-TRUNCATED.vmdk"),
               "rb").read(512)
    ours = open(out, "rb").read(512)
    report("streamOptimized header matches ovftool's (flags, version, gtes, overhead)",
           hdr[4:12] == ours[4:12] and hdr[44:48] == ours[44:48] and
           hdr[56:72] == ours[56:72] and hdr[73:79] == ours[73:79], "")
    # Non-streaming formats refuse a pipe with a clear error.
    p1 = subprocess.Popen([IMG, "convert", "-O", "qcow2", top, "-"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=ENV)
    _, err = p1.communicate()
    report("qcow2 to a pipe is refused", p1.returncode == 1 and b"regular file" in err,
           err.decode(errors="replace"))
    # Delta export: the top layer alone becomes an overlay on a copy of the base.
    delta = os.path.join(TMP, "delta.qcow2")
    p = hxe("convert", "--top-only", "-O", "qcow2", "-o",
            f"backing_file={base},backing_fmt=qcow2", top, delta)
    report("delta export to a qcow2 overlay", p.returncode == 0, p.stderr.decode())
    qemu_check("delta overlay", delta, "qcow2")
    qemu_compare("delta overlay", delta, "qcow2", top, "qcow2")
    # Empty images.
    for fmt, qfmt, opts in WRITE_CASES:
        out = os.path.join(TMP, f"empty-{len(opts)}.{fmt}")
        if os.path.exists(out):
            os.unlink(out)
        p = hxe("create", "-O", fmt, *opts, out, "100M")
        name = f"create empty {fmt} {' '.join(opts)}"
        if p.returncode != 0:
            report(name, False, p.stderr.decode())
            continue
        qemu_check(name, out, qfmt)
        q = run(["qemu-img", "info", "-f", qfmt, "--output=json", out])
        report(f"{name}: qemu-img info", q.returncode == 0 and b"virtual-size" in q.stdout,
               q.stderr.decode())
    # Overlay creation.
    ov = os.path.join(TMP, "overlay.qcow2")
    p = hxe("create", "-O", "qcow2", "-o", f"backing_file={top},backing_fmt=qcow2", ov, "30M")
    report("create qcow2 overlay", p.returncode == 0, p.stderr.decode())
    qemu_check("overlay", ov, "qcow2")
    qemu_compare("overlay", ov, "qcow2", top, "qcow2")
    ov2 = os.path.join(TMP, "overlay2.qcow2")
    p = hxe("create", "-O", "qcow2", "-o", "backing_file=wtop.qcow2,backing_fmt=qcow2", ov2)
    q = run(["qemu-img", "info", "--output=json", ov2])
    import json
    ok = p.returncode == 0 and q.returncode == 0 and \
        json.loads(q.stdout)["virtual-size"] == os.path.getsize(src)
    report("create qcow2 overlay without a size takes the backing file's", ok,
           p.stderr.decode() + q.stderr.decode())
    qemu_compare("overlay without size", ov2, "qcow2", top, "qcow2")
    # Converting an image onto itself (or its parent) is refused, the file intact.
    before = sha256_file(base)
    p = hxe("convert", "-O", "qcow2", top, base)
    report("convert onto its own backing file is refused",
           p.returncode == 1 and b"refusing" in p.stderr and sha256_file(base) == before,
           p.stderr.decode())
    # VHD size limit.
    p = hxe("create", "-O", "vhd", os.path.join(TMP, "huge.vhd"), "2041G")
    report("VHD larger than 2040 GiB refused", p.returncode == 1 and b"2040" in p.stderr,
           p.stderr.decode())


def check_vmware_stream(path):
    """Walks a streamOptimized VMDK as VMware lays it out (header with
    GD_AT_END, grain markers in LBA order, GT/GD/footer markers, EOS) and
    returns a list of problems."""
    import zlib
    data = open(path, "rb").read()
    bad = []
    hdr = data[:512]
    magic, version, flags, capacity, grain = struct.unpack_from("<IIIQQ", hdr, 0)
    desc_off, desc_size, gtes, rgd, gd, overhead = struct.unpack_from("<QQIQQQ", hdr, 28)
    if (magic, version, flags, gtes, rgd) != (0x564D444B, 3, 0x30001, 512, 0):
        bad.append(f"header fields {magic:#x} v{version} flags {flags:#x} gtes {gtes} rgd {rgd}")
    if gd != 0xFFFFFFFFFFFFFFFF:
        bad.append("header gdOffset is not GD_AT_END")
    if hdr[73:77] != b"\n \r\n" or struct.unpack_from("<H", hdr, 77)[0] != 1:
        bad.append("newline check bytes or compression algorithm")
    desc = data[desc_off * 512:(desc_off + desc_size) * 512].rstrip(b"\0").decode()
    if 'createType="streamOptimized"' not in desc or f"RW {capacity} SPARSE" not in desc:
        bad.append("embedded descriptor: " + desc)
    pos = overhead * 512
    last_lba = -1
    grains, gts, gd_sec, footer = {}, {}, None, None
    while pos + 512 <= len(data):
        val, size = struct.unpack_from("<QI", data, pos)
        if size:
            if val <= last_lba or val % grain:
                bad.append(f"grain LBA {val} out of order at {pos}")
            last_lba = val
            out = zlib.decompress(data[pos + 12:pos + 12 + size])
            if len(out) != grain * 512:
                bad.append(f"grain at LBA {val} inflates to {len(out)} bytes")
            grains[pos // 512] = val
            pos += (12 + size + 511) // 512 * 512
            continue
        mtype = struct.unpack_from("<I", data, pos + 12)[0]
        if mtype == 0:
            if pos + 512 != len(data):
                bad.append("EOS marker is not the last sector")
            break
        body = pos + 512
        if mtype == 1:
            if val != 4:
                bad.append("GT marker size")
            gts[body // 512] = struct.unpack_from("<512I", data, body)
        elif mtype == 2:
            gd_sec = body // 512
        elif mtype == 3:
            footer = data[body:body + 512]
        pos = body + val * 512
    else:
        bad.append("no EOS marker")
    if footer is None or footer[:4] != b"KDMV":
        return bad + ["no footer"]
    if struct.unpack_from("<Q", footer, 56)[0] != gd_sec:
        bad.append("footer gdOffset does not point at the GD")
    if footer[:56] != hdr[:56] or footer[64:] != hdr[64:]:
        bad.append("footer differs from the header beyond gdOffset")
    ngd = (capacity + grain * 512 - 1) // (grain * 512)
    gd_entries = struct.unpack_from(f"<{ngd}I", data, gd_sec * 512)
    seen = 0
    for i, gt_sec in enumerate(gd_entries):
        if gt_sec == 0:
            continue
        if gt_sec not in gts:
            bad.append(f"GD entry {i} -> {gt_sec} is not a GT")
            continue
        for j, g in enumerate(gts[gt_sec]):
            if g == 0:
                continue
            seen += 1
            if grains.get(g) != (i * 512 + j) * grain:
                bad.append(f"GT {i} entry {j} -> sector {g} is not the grain of that LBA")
    if seen != len(grains):
        bad.append(f"{len(grains)} grains written, {seen} referenced")
    return bad


# --------------------------------------------------------------------------
# hostile inputs

def mutate(src, dst, edits, truncate=None):
    data = bytearray(open(src, "rb").read())
    for off, val in edits:
        if off < 0:
            off += len(data)
        data[off:off + len(val)] = val
    if truncate is not None:
        data = data[:truncate]
    with open(dst, "wb") as f:
        f.write(data)
    return dst


def vhd_fix_footer(path, at_end=True, at_start=False):
    data = bytearray(open(path, "rb").read())
    for start in ([len(data) - 512] if at_end else []) + ([0] if at_start else []):
        foot = data[start:start + 512]
        foot[64:68] = b"\0\0\0\0"
        foot[64:68] = struct.pack(">I", (~sum(foot)) & 0xffffffff)
        data[start:start + 512] = foot
    open(path, "wb").write(data)


def vhd_fix_header(path, hoff=512):
    data = bytearray(open(path, "rb").read())
    h = data[hoff:hoff + 1024]
    h[36:40] = b"\0\0\0\0"
    h[36:40] = struct.pack(">I", (~sum(h)) & 0xffffffff)
    data[hoff:hoff + 1024] = h
    open(path, "wb").write(data)


def hostile_read_all(name, path, words=(), *opts):
    """The file must be refused (or read) without a crash."""
    p = hxe("convert", *opts, "-O", "raw", path, os.path.join(TMP, "h.raw"))
    err = p.stderr.decode(errors="replace")
    if crashed(p):
        report(name, False, f"crashed rc={p.returncode}: {err[-600:]}")
        return
    if words:
        ok = p.returncode == 1 and all(w.lower() in err.lower() for w in words)
        report(name, ok, f"rc={p.returncode} {err.strip()!r}")
    else:
        report(name, True)
    for cmd in ("info", "map"):
        q = hxe(cmd, *opts, path)
        if crashed(q):
            report(f"{name} ({cmd})", False, q.stderr.decode(errors="replace")[-600:])


def group_hostile():
    src = os.path.join(TMP, "src.raw")
    make_pattern(src, 8 << 20, 4, [(0, 5000), (3 << 20, 70000)])
    H = os.path.join(TMP, "h")
    os.mkdir(H)
    # qcow2
    q = os.path.join(H, "good.qcow2")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", src, q], check=True)
    qc = os.path.join(H, "comp.qcow2")
    subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", src, qc], check=True)
    hdr = open(q, "rb").read(112)
    l1_off = struct.unpack(">Q", hdr[40:48])[0]
    l1 = struct.unpack(">Q", open(q, "rb").read()[l1_off:l1_off + 8])[0] & 0x00fffffffffffe00
    cases = [
        ("qcow2 bad version", [(4, struct.pack(">I", 7))], None, ["version"]),
        ("qcow2 huge cluster bits", [(20, struct.pack(">I", 40))], None, ["cluster"]),
        ("qcow2 huge size", [(24, struct.pack(">Q", 1 << 62))], None, ["size"]),
        ("qcow2 huge L1", [(36, struct.pack(">I", 0x7fffffff))], None, ["L1"]),
        ("qcow2 L1 outside file", [(40, struct.pack(">Q", 1 << 40))], None, ["L1"]),
        ("qcow2 encrypted", [(32, struct.pack(">I", 1))], None, ["encrypt"]),
        ("qcow2 unknown incompatible feature", [(72, struct.pack(">Q", 1 << 40))], None,
         ["incompatible"]),
        ("qcow2 external data file", [(72, struct.pack(">Q", 4))], None, ["external"]),
        ("qcow2 L2 outside file", [(l1_off, struct.pack(">Q", (1 << 63) | (1 << 45)))], None,
         ["L2"]),
        ("qcow2 data cluster outside file", [(l1, struct.pack(">Q", (1 << 63) | (1 << 44)))],
         None, ["past the end"]),
        ("qcow2 truncated", [], 100000, ["truncated"]),
        ("qcow2 backing name too long", [(8, struct.pack(">Q", 200)),
                                         (16, struct.pack(">I", 5000))], None, ["backing"]),
        ("qcow2 backing name to itself", [(8, struct.pack(">Q", 0x200)),
                                          (16, struct.pack(">I", 7)),
                                          (0x200, b"x.qcow2")], None, ["loop"]),
    ]
    for name, edits, trunc, words in cases:
        hostile_read_all(name, mutate(q, os.path.join(H, "x.qcow2"), edits, trunc), words)
    # Two images backing each other.
    a, b = os.path.join(H, "a.qcow2"), os.path.join(H, "b.qcow2")
    mutate(q, a, [(8, struct.pack(">Q", 0x200)), (16, struct.pack(">I", 7)),
                  (0x200, b"b.qcow2")])
    mutate(q, b, [(8, struct.pack(">Q", 0x200)), (16, struct.pack(">I", 7)),
                  (0x200, b"a.qcow2")])
    hostile_read_all("qcow2 backing loop a->b->a", a, ["loop"])
    # Confinement: a backing reference outside the directory is reduced to its base name.
    c = mutate(q, os.path.join(H, "conf.qcow2"), [(8, struct.pack(">Q", 0x200)),
                                                  (16, struct.pack(">I", 11)),
                                                  (0x200, b"/etc/passwd")])
    hostile_read_all("qcow2 --confine refuses /etc/passwd as backing", c, ["passwd"],
                     "--confine")
    # Corrupt compressed cluster.
    data = bytearray(open(qc, "rb").read())
    l1o = struct.unpack(">Q", data[40:48])[0]
    l2o = struct.unpack(">Q", data[l1o:l1o + 8])[0] & 0x00fffffffffffe00
    e = struct.unpack(">Q", data[l2o:l2o + 8])[0]
    coff = e & ((1 << 62 - 8) - 1)
    data[coff:coff + 64] = b"\xff" * 64
    open(os.path.join(H, "cc.qcow2"), "wb").write(data)
    hostile_read_all("qcow2 corrupt compressed cluster", os.path.join(H, "cc.qcow2"),
                     ["compress"])
    # VHD
    dyn = os.path.join(H, "good.vhd")
    subprocess.run(["qemu-img", "convert", "-O", "vpc", "-o", "force_size=on", src, dyn],
                   check=True)
    fixed = os.path.join(H, "fixed.vhd")
    subprocess.run(["qemu-img", "convert", "-O", "vpc", "-o", "subformat=fixed,force_size=on",
                    src, fixed], check=True)
    vcases = [
        ("vhd bad footer checksum", dyn, [(-512 + 64, b"\1\2\3\4"), (64, b"\1\2\3\4")], None,
         ["checksum"], False, False),
        ("vhd size over 2040 GiB", dyn, [(-512 + 48, struct.pack(">Q", 2041 << 30)),
                                         (48, struct.pack(">Q", 2041 << 30))], None, ["2040"],
         True, False),
        ("vhd header outside file", dyn, [(-512 + 16, struct.pack(">Q", 1 << 50)),
                                          (16, struct.pack(">Q", 1 << 50))], None, ["header"],
         True, False),
        ("vhd BAT outside file", dyn, [(512 + 16, struct.pack(">Q", 1 << 40))], None,
         ["allocation table"], False, True),
        ("vhd BAT too large", dyn, [(512 + 28, struct.pack(">I", 0xffffffff))], None,
         ["table"], False, True),
        ("vhd BAT entry past end of file", dyn, [(1536, struct.pack(">I", 0x7fffffff))], None,
         ["past the end"], False, False),
        ("vhd bad block size", dyn, [(512 + 32, struct.pack(">I", 3000))], None,
         ["block size"], False, True),
        ("vhd dynamic truncated", dyn, [], 600000, ["truncated"], False, False),
        ("vhd fixed truncated", fixed, [], 5 << 20, [], False, False),
        ("vhd unknown disk type", fixed, [(-512 + 60, struct.pack(">I", 9))], None,
         ["type"], True, False),
        ("vhd header checksum", dyn, [(512 + 36, b"\0\0\0\1")], None, ["checksum"], False,
         False),
    ]
    for name, base, edits, trunc, words, fixfoot, fixhdr in vcases:
        x = mutate(base, os.path.join(H, "x.vhd"), edits, trunc)
        if fixfoot:
            vhd_fix_footer(x, True, base == dyn)
        if fixhdr:
            vhd_fix_header(x)
        hostile_read_all(name, x, words, "-f", "vhd")
    # A differencing VHD that is its own parent, and a parent loop of two.
    diff = bytearray(open(dyn, "rb").read())
    uuid = diff[68:84]
    for off in (60, len(diff) - 512 + 60):
        diff[off:off + 4] = struct.pack(">I", 4)
    h = 512
    diff[h + 40:h + 56] = uuid
    name16 = "self.vhd".encode("utf-16-be")
    diff[h + 64:h + 64 + 512] = name16 + b"\0" * (512 - len(name16))
    open(os.path.join(H, "self.vhd"), "wb").write(diff)
    vhd_fix_footer(os.path.join(H, "self.vhd"), True, True)
    vhd_fix_header(os.path.join(H, "self.vhd"))
    hostile_read_all("vhd differencing disk that is its own parent", os.path.join(H, "self.vhd"),
                     ["loop"])
    # VMDK
    sp = os.path.join(H, "good.vmdk")
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", src, sp], check=True)
    st = os.path.join(H, "stream.vmdk")
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    src, st], check=True)
    mcases = [
        ("vmdk huge capacity", sp, [(12, struct.pack("<Q", 1 << 62))], None, ["capacity"]),
        ("vmdk bad grain size", sp, [(20, struct.pack("<Q", 3))], None, ["grain"]),
        ("vmdk GD outside file", sp, [(56, struct.pack("<Q", 1 << 40))], None, ["grain dir"]),
        ("vmdk GT outside file", sp, [(26 * 512, struct.pack("<I", 0x7ffffff0))], None,
         ["grain table"]),
        ("vmdk grain outside file", sp, [(27 * 512, struct.pack("<I", 0x7ffffff0))], None,
         ["grain"]),
        ("vmdk huge GT count", sp, [(44, struct.pack("<I", 0xffffffff))], None, ["grain"]),
        ("vmdk truncated", sp, [], 70000, ["truncated"]),
        ("vmdk descriptor garbage", sp, [(512, b"RW 99999999999999999999 SPARSE \"x\"\n")],
         None, []),
        ("vmdk stream corrupt grain", st, [(128 * 512 + 12, b"\xff" * 40)], None, ["grain"]),
        ("vmdk stream grain size huge", st, [(128 * 512 + 8, struct.pack("<I", 0x7fffffff))],
         None, ["grain"]),
        ("vmdk stream truncated", st, [], 128 * 512 + 100, ["truncated"]),
    ]
    for name, base, edits, trunc, words in mcases:
        hostile_read_all(name, mutate(base, os.path.join(H, "x.vmdk"), edits, trunc), words)
    # Descriptor files: extent outside directory, self reference, absurd sizes.
    desc = os.path.join(H, "d.vmdk")
    for name, text, words, opts in [
        ("vmdk descriptor naming /etc/passwd with --confine",
         'RW 16 FLAT "/etc/passwd" 0', ["passwd"], ["--confine"]),
        ("vmdk descriptor naming itself", 'RW 16 SPARSE "d.vmdk"', ["d.vmdk"], []),
        ("vmdk descriptor huge extent", 'RW 18446744073709551615 ZERO', ["size"], []),
        ("vmdk descriptor many extents", "\n".join(['RW 1 ZERO'] * 5000), ["extent"], []),
        ("vmdk descriptor unknown extent type", 'RW 16 VMFSSPARSE "x-delta.vmdk"',
         ["VMFSSPARSE"], []),
    ]:
        with open(desc, "w") as f:
            f.write('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                    'createType="monolithicFlat"\n' + text + '\n')
        hostile_read_all(name, desc, words, *opts)
    # Random garbage after a valid magic, for each format.
    rnd = random.Random(7)
    for magic, fmt in [(b"QFI\xfb\0\0\0\3", "qcow2"), (b"KDMV\3\0\0\0", "vmdk"),
                       (b"conectix", "vhd")]:
        for i in range(30):
            g = magic + bytes(rnd.getrandbits(8) for _ in range(rnd.choice([50, 600, 4096])))
            path = os.path.join(H, f"g.{fmt}")
            open(path, "wb").write(g)
            p = hxe("convert", "-O", "raw", path, os.path.join(H, "g.raw"))
            if crashed(p):
                report(f"garbage {fmt} #{i}", False, p.stderr.decode(errors="replace")[-600:])
                break
        else:
            report(f"garbage {fmt} x30: no crash", True)


# --------------------------------------------------------------------------
# large sparse disks convert in time proportional to their data

def group_sparse():
    d = tempfile.mkdtemp(dir=TMP)
    data = os.path.join(d, "data.raw")
    make_pattern(data, 4 << 20, 5, [(0, 4 << 20)])
    for fmt, opts in [("vmdk", []), ("vmdk", ["-o", "subformat=streamOptimized"]),
                      ("qcow2", []), ("vpc", ["-o", "force_size=on"])]:
        img = os.path.join(d, f"big.{fmt}")
        if os.path.exists(img):
            os.unlink(img)
        size = "100G" if fmt != "vpc" else "1000G"
        subprocess.run(["qemu-img", "create", "-f", fmt] + opts + [img, size], check=True,
                       capture_output=True)
        if "subformat=streamOptimized" in opts:
            # streamOptimized images are written once: convert a sparse raw into it.
            big_raw = os.path.join(d, "big.raw")
            with open(big_raw, "wb") as f:
                f.truncate(100 << 30)
                for off in (0, 50 << 30, (100 << 30) - (4 << 20)):
                    f.seek(off)
                    f.write(open(data, "rb").read())
            os.unlink(img)
            subprocess.run(["qemu-img", "convert", "-O", "vmdk"] + opts + [big_raw, img],
                           check=True, capture_output=True)
            os.unlink(big_raw)
        else:
            for off in ("0", "50G", "99G"):
                subprocess.run(["qemu-io", "-f", fmt, "-c",
                                f"write -P 0x{ord(off[0]):02x} {off} 4M", img],
                               check=True, capture_output=True)
        for ofmt, oopts in [("raw", []), ("qcow2", []), ("vmdk", []),
                            ("vmdk", ["-o", "subformat=monolithicSparse"]), ("vhd", [])]:
            if ofmt == "vhd" and fmt != "vpc":
                continue
            out = os.path.join(d, f"out.{ofmt}")
            p = hxe("convert", "--stats", "-O", ofmt, *oopts, img, out)
            name = f"sparse {size} {fmt} {' '.join(opts)} -> {ofmt} {' '.join(oopts)}"
            if p.returncode != 0:
                report(name, False, p.stderr.decode())
                continue
            stats = dict(l.split(": ") for l in p.stderr.decode().splitlines() if ": " in l)
            rb = int(stats.get("read-bytes", "-1"))
            # 12 MiB of data plus metadata; block by block it would be 100 GiB.
            report(f"{name}: read {rb} bytes", 0 < rb < 64 << 20, f"read {rb} bytes")
            alloc = os.stat(out).st_blocks * 512
            # monolithicSparse preallocates 2 x 4 bytes of grain table per 64 KiB grain.
            limit = 64 << 20
            if "monolithicSparse" in oopts[-1:] or "subformat=monolithicSparse" in oopts:
                limit += img_size_bytes(size) // 8192
            report(f"{name}: output allocates {alloc} bytes", alloc < limit,
                   f"{alloc} bytes allocated")
            if ofmt == "raw":
                ok = run(["qemu-img", "compare", "-f", "raw", "-F",
                          "vpc" if fmt == "vpc" else fmt, out, img])
                report(f"{name}: content", ok.returncode == 0, ok.stdout.decode())
            os.unlink(out)
        os.unlink(img)


def img_size_bytes(s):
    return int(s[:-1]) << 30


def main():
    global IMG, SAMPLES, TMP
    IMG, SAMPLES, group = sys.argv[1], sys.argv[2], sys.argv[3]
    TMP = tempfile.mkdtemp(prefix=f"hxe-formats-{group}-")
    try:
        {"samples": group_samples, "qemu": group_qemu, "writers": group_writers,
         "hostile": group_hostile, "sparse": group_sparse}[group]()
    except subprocess.CalledProcessError as e:
        report("setup", False, f"{e.cmd}: {e.stderr}")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
