"""Storage: SRs and VDIs through xe and the XenAPI against a real hyperxed,
with qemu-img as the independent oracle for image content and structure.

Covers vdi-create/-destroy with sizes, imports and exports in every format
(round trips compared with qemu-img compare), VHDs written by qemu-img and
the samples of other software, copy-on-write clones and snapshots (data
written through a child never shows in its parent or siblings; merging
keeps content), resize, copy, forget/introduce, sr-scan reconciliation,
on-boot=reset overlays, ISO and udev SRs, hostile images, and the SR
lifecycle (sr-create, pbd-unplug, sr-destroy).
"""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import PASSWORD, Daemon, ok, fails, run_tests  # noqa: E402

SAMPLES = os.environ.get("HX_SAMPLES_DIR",
                         os.path.join(os.path.dirname(os.environ.get("HX_SOURCE_DIR", ".")),
                                      "shared", "samples"))
if not os.path.isdir(SAMPLES):
    SAMPLES = "/work/shared/samples"

D = None
TMP = None
MiB = 1 << 20


# HX_XE_VIA=tcp: imports and exports go over TCP, where the file's bytes stream
# through HTTP (on the unix socket, xe as root hands the file itself over).
VIA_TCP = os.environ.get("HX_XE_VIA") == "tcp"


def xe(*args, check=True):
    """xe against the test daemon; output decoded leniently (a bug could print bytes)."""
    e = dict(os.environ, HYPERXE_RUN_DIR=D.run_dir, HOME=D.tmp)
    e.pop("XE_EXTRA_ARGS", None)
    if VIA_TCP and args and args[0] in ("vdi-import", "vdi-export"):
        args = ("-s", "127.0.0.1", "-p", str(D.port), "--nossl", "-u", "root", "-pw",
                PASSWORD) + tuple(args)
    r = subprocess.run([os.environ.get("XE", "xe")] + list(args), env=e, capture_output=True,
                       timeout=300)
    raw_err = r.stderr
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    if "\ufffd" in r.stderr or "\ufffd" in r.stdout:
        raise AssertionError("xe %s printed bytes that are not UTF-8 (rc %d): %r" %
                             (" ".join(args), r.returncode, raw_err[:400]))
    if check and r.returncode != 0:
        raise AssertionError("xe %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                          r.stdout, r.stderr))
    return r


def xe_out(*args):
    return xe(*args).stdout.strip()


def xe_fails(*args):
    r = xe(*args, check=False)
    assert r.returncode != 0, "xe %s should have failed: %s" % (" ".join(args), r.stdout)
    return r.stderr


def local_sr():
    return xe_out("sr-list", "name-label=Local storage", "--minimal")


def sr_dir(sr_uuid):
    pbd = xe_out("pbd-list", "sr-uuid=" + sr_uuid, "--minimal")
    dc = xe_out("pbd-param-get", "uuid=" + pbd, "param-name=device-config", "param-key=path")
    return dc


def vdi_param(uuid, name):
    return xe_out("vdi-param-get", "uuid=" + uuid, "param-name=" + name)


def new_vdi(size="64MiB", name="t", sr=None):
    return xe_out("vdi-create", "sr-uuid=" + (sr or local_sr()), "name-label=" + name,
                  "virtual-size=" + size)


def qimg(*args):
    r = subprocess.run(["qemu-img"] + list(args), capture_output=True, text=True)
    assert r.returncode == 0, "qemu-img %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
    return r.stdout


def make_raw(path, size, seed=1, chunks=((1 * MiB, 3 * MiB),)):
    """A sparse raw file with random data in the given (offset, length) runs."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, ln in chunks:
            f.seek(off)
            f.write(bytes(rnd.getrandbits(8) for _ in range(min(ln, 4096))) * (ln // 4096) +
                    b"\x5a" * (ln % 4096))
        f.seek(size - 512)
        f.write(b"LAST SECTOR " * 4)


def sha(path, size=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while True:
            b = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
                if left == 0:
                    break
    return h.hexdigest()


def export_raw(uuid, name):
    out = os.path.join(TMP, name)
    xe("vdi-export", "uuid=" + uuid, "filename=" + out, "format=raw")
    return out


def files_of(sr_uuid):
    return sorted(os.listdir(sr_dir(sr_uuid)))


# ---- tests ------------------------------------------------------------------------------

def test_create_sizes_and_destroy():
    sr = local_sr()
    before = files_of(sr)
    for size, want in (("10GiB", 10 << 30), ("512MiB", 512 << 20), ("1048576", 1 << 20),
                       ("2 GiB", 2 << 30)):
        u = new_vdi(size)
        assert int(vdi_param(u, "virtual-size")) == want
        path = os.path.join(sr_dir(sr), u + ".qcow2")
        info = qimg("info", "--output=json", path)
        assert '"virtual-size": %d' % want in info, info
        qimg("check", path)
        assert vdi_param(u, "location") == u
        xe("vdi-destroy", "uuid=" + u)
        assert not os.path.exists(path)
    assert files_of(sr) == before
    err = xe_fails("vdi-create", "sr-uuid=" + sr, "name-label=x", "virtual-size=lots")
    assert "virtual-size" in err
    # A disk bigger than VHD's 2 TiB limit is fine: qcow2 goes to 1 PiB.
    u = new_vdi("16TiB")
    assert int(vdi_param(u, "virtual-size")) == 16 << 40
    xe("vdi-destroy", "uuid=" + u)


def test_round_trip_every_format():
    src = os.path.join(TMP, "rt.raw")
    make_raw(src, 48 * MiB, seed=2, chunks=((0, 64 << 10), (5 * MiB, 3 * MiB + 512),
                                             (30 * MiB, 1 * MiB)))
    u = new_vdi("48MiB")
    xe("vdi-import", "uuid=" + u, "filename=" + src, "format=raw")
    # The stored file is a valid, sparse qcow2.
    path = os.path.join(sr_dir(local_sr()), u + ".qcow2")
    qimg("check", path)
    assert os.stat(path).st_blocks * 512 < 12 * MiB
    for fmt, qfmt in (("raw", "raw"), ("vhd", "vpc"), ("vmdk", "vmdk"), ("qcow2", "qcow2")):
        out = os.path.join(TMP, "rt." + fmt)
        xe("vdi-export", "uuid=" + u, "filename=" + out, "format=" + fmt)
        if qfmt in ("qcow2", "vmdk"):
            qimg("check", "-f", qfmt, out)
        if qfmt == "vpc":
            info = qimg("info", "-f", "vpc", "--output=json", out)
            assert '"virtual-size": %d' % (48 * MiB) in info, info
        r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", qfmt, src, out],
                           capture_output=True, text=True)
        assert r.returncode == 0, (fmt, r.stdout, r.stderr)
        # ... and each of them imports back to the same content.
        v = new_vdi("48MiB")
        xe("vdi-import", "uuid=" + v, "filename=" + out, "format=" + fmt)
        back = export_raw(v, "rt-back-%s.raw" % fmt)
        assert sha(back) == sha(src), fmt
        xe("vdi-destroy", "uuid=" + v)
    # Exports are sparse: the raw file has holes.
    raw = os.path.join(TMP, "rt.raw")
    assert os.stat(os.path.join(TMP, "rt.raw")).st_size == 48 * MiB
    assert os.stat(raw).st_blocks * 512 < 16 * MiB
    xe("vdi-destroy", "uuid=" + u)


def test_qemu_img_vhds():
    src = os.path.join(TMP, "q.raw")
    make_raw(src, 20 * MiB, seed=3, chunks=((2 * MiB, 1 * MiB), (9 * MiB + 4096, 2 * MiB)))
    for sub in ("fixed", "dynamic"):
        for force in ("on", "off"):
            vhd = os.path.join(TMP, "q-%s-%s.vhd" % (sub, force))
            qimg("convert", "-f", "raw", "-O", "vpc", "-o",
                 "subformat=%s,force_size=%s" % (sub, force), src, vhd)
            # Without force_size the size is rounded up to a CHS geometry.
            vsize = int(qimg("info", "-f", "vpc", "--output=json", vhd)
                        .split('"virtual-size": ')[1].split(",")[0])
            u = new_vdi(str(vsize))
            xe("vdi-import", "uuid=" + u, "filename=" + vhd, "format=vhd")
            out = export_raw(u, "q-back.raw")
            r = subprocess.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", vhd, out],
                               capture_output=True, text=True)
            assert r.returncode == 0, (sub, force, r.stdout, r.stderr)
            assert sha(out, 20 * MiB) == sha(src)
            xe("vdi-destroy", "uuid=" + u)


SAMPLE_HASHES = {
    "qemu-fixed.vhd": "a00f60416fb09143d1d13ce389cf0793f1c0251e911878533d5d11f1fe6fb639",
    "qemu-dynamic.vhd": "a00f60416fb09143d1d13ce389cf0793f1c0251e911878533d5d11f1fe6fb639",
    "dfvfs-ext2-qemu-dynamic.vhd":
        "870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99",
    "tsk-image-qemu-dynamic.vhd":
        "84c172cd6e864e2a2ca00b60b531a3c7b1376e5257174bfdc4987f3f6312ad3c",
    # A differencing VHD whose parent is not included, applied to a VDI of zeros.
    "dfvfs-fat-differential-windows.vhd":
        "9e96fac774e2e3606e0e3d5f1152844ca3c6a45ed45e61f36586b2cd60b19d3f",
}
SAMPLE_SIZES = {"qemu-fixed.vhd": 10485760, "qemu-dynamic.vhd": 10485760,
                "dfvfs-ext2-qemu-dynamic.vhd": 4212736, "tsk-image-qemu-dynamic.vhd": 104448,
                "dfvfs-fat-differential-windows.vhd": 4194304}


def test_sample_vhds():
    d = os.path.join(SAMPLES, "vhd")
    if not os.path.isdir(d):
        print("# no samples at %s" % d)
        return
    for name, want in SAMPLE_HASHES.items():
        u = new_vdi(str(SAMPLE_SIZES[name]))
        xe("vdi-import", "uuid=" + u, "filename=" + os.path.join(d, name), "format=vhd")
        out = export_raw(u, "sample.raw")
        assert os.path.getsize(out) == SAMPLE_SIZES[name]
        assert sha(out) == want, name
        xe("vdi-destroy", "uuid=" + u)
    # Damaged files (wrong checksums) are refused with a clear error.
    u = new_vdi("1MiB")
    for bad in ("dfvfs-image-parent.vhd", "dfvfs-image-differential.vhd"):
        err = xe_fails("vdi-import", "uuid=" + u, "filename=" + os.path.join(d, bad),
                       "format=vhd")
        assert "checksum" in err, err
    xe("vdi-destroy", "uuid=" + u)


def vhd_checksum(b):
    return (~sum(b)) & 0xFFFFFFFF


def make_diff_vhd(path, parent_vhd, size, writes, block=2 * MiB):
    """A differencing VHD (written here, byte by byte from the specification)
    on parent_vhd whose sectors `writes` ({sector: 512 bytes}) differ."""
    with open(parent_vhd, "rb") as f:
        f.seek(-512, 2)
        parent_uuid = f.read(512)[68:84]

    def footer(data_offset):
        b = bytearray(512)
        b[0:8] = b"conectix"
        b[8:12] = (2).to_bytes(4, "big")
        b[12:16] = (0x00010000).to_bytes(4, "big")
        b[16:24] = data_offset.to_bytes(8, "big")
        b[28:32] = b"win "
        b[32:36] = (0x000A0000).to_bytes(4, "big")
        b[36:40] = b"Wi2k"
        b[40:48] = size.to_bytes(8, "big")
        b[48:56] = size.to_bytes(8, "big")
        b[56:60] = bytes([0xFF, 0xFF, 16, 255])
        b[60:64] = (4).to_bytes(4, "big")
        b[68:84] = bytes(random.Random(11).getrandbits(8) for _ in range(16))
        b[64:68] = vhd_checksum(b).to_bytes(4, "big")
        return bytes(b)

    nblocks = (size + block - 1) // block
    bat_bytes = ((nblocks * 4 + 511) // 512) * 512
    hdr = bytearray(1024)
    hdr[0:8] = b"cxsparse"
    hdr[8:16] = (0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    hdr[16:24] = (512 + 1024).to_bytes(8, "big")
    hdr[24:28] = (0x00010000).to_bytes(4, "big")
    hdr[28:32] = nblocks.to_bytes(4, "big")
    hdr[32:36] = block.to_bytes(4, "big")
    hdr[40:56] = parent_uuid
    name = "p.vhd".encode("utf-16-be")
    hdr[64:64 + len(name)] = name
    hdr[36:40] = vhd_checksum(hdr).to_bytes(4, "big")
    spb = block // 512
    bitmap_bytes = ((spb // 8 + 511) // 512) * 512
    bat = [0xFFFFFFFF] * nblocks
    blocks = {}
    for sec, data in writes.items():
        blocks.setdefault(sec // spb, {})[sec % spb] = data
    pos = 512 + 1024 + bat_bytes
    body = bytearray()
    for blk in sorted(blocks):
        bat[blk] = (pos + len(body)) // 512
        bm = bytearray(bitmap_bytes)
        data = bytearray(block)
        for s_in, d in blocks[blk].items():
            bm[s_in // 8] |= 0x80 >> (s_in % 8)
            data[s_in * 512:(s_in + 1) * 512] = d
        body += bm + data
    with open(path, "wb") as f:
        f.write(footer(512))
        f.write(hdr)
        f.write(b"".join(x.to_bytes(4, "big") for x in bat).ljust(bat_bytes, b"\xff"))
        f.write(body)
        f.write(footer(512))


def test_vhd_differencing_on_parent():
    """A differencing VHD imported into a VDI holding its parent gives parent + delta."""
    base = os.path.join(TMP, "p.raw")
    size = 16 * MiB
    make_raw(base, size, seed=4, chunks=((0, 4 * MiB),))
    parent = os.path.join(TMP, "p.vhd")
    qimg("convert", "-f", "raw", "-O", "vpc", "-o", "force_size=on", base, parent)
    writes = {1: b"\x77" * 512, 2049: b"\x78" * 512, 4096 * 3 + 5: b"\x79" * 512,
              size // 512 - 1: b"\x7a" * 512}
    child = os.path.join(TMP, "c.vhd")
    make_diff_vhd(child, parent, size, writes)
    want = bytearray(open(base, "rb").read())
    for sec, data in writes.items():
        want[sec * 512:(sec + 1) * 512] = data
    u = new_vdi("16MiB")
    xe("vdi-import", "uuid=" + u, "filename=" + parent, "format=vhd")
    xe("vdi-import", "uuid=" + u, "filename=" + child, "format=vhd")
    out = export_raw(u, "diff.raw")
    assert open(out, "rb").read() == bytes(want)
    # The old content was merged into the new file: one file, no chain.
    assert "vhd-parent" not in vdi_param(u, "sm-config")
    assert sorted(f for f in files_of(local_sr()) if u in f) == [u + ".qcow2"]
    xe("vdi-destroy", "uuid=" + u)


def test_other_formats_import():
    d = os.path.join(SAMPLES, "vmdk")
    if os.path.isdir(d):
        u = new_vdi("10MiB")
        for name in ("qemu-streamOptimized.vmdk", "qemu-monolithicSparse-lsilogic.vmdk"):
            xe("vdi-import", "uuid=" + u, "filename=" + os.path.join(d, name), "format=vmdk")
            out = export_raw(u, "vmdk.raw")
            assert sha(out) == SAMPLE_HASHES["qemu-dynamic.vhd"], name
        err = xe_fails("vdi-import", "uuid=" + u, "format=vmdk", "filename=" +
                       os.path.join(d, "govmomi-ttylinux-ovftool-streamOptimized-TRUNCATED.vmdk"))
        assert "VDI" in err or "import" in err.lower(), err
        xe("vdi-destroy", "uuid=" + u)
    # qcow2 written by qemu-img, with zero clusters and compression.
    src = os.path.join(TMP, "o.raw")
    make_raw(src, 8 * MiB, seed=5)
    q = os.path.join(TMP, "o.qcow2")
    qimg("convert", "-c", "-f", "raw", "-O", "qcow2", src, q)
    u = new_vdi("8MiB")
    xe("vdi-import", "uuid=" + u, "filename=" + q, "format=qcow2")
    assert sha(export_raw(u, "o-back.raw")) == sha(src)
    # A qcow2 overlay is a delta: applied onto the VDI's content (its backing
    # file is never opened).
    q2 = os.path.join(TMP, "o2.qcow2")
    qimg("create", "-f", "qcow2", "-b", q, "-F", "qcow2", q2)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 3M 128k", q2], check=True,
                   capture_output=True)
    want = os.path.join(TMP, "o2.raw")
    qimg("convert", "-f", "qcow2", "-O", "raw", q2, want)
    os.rename(q, q + ".moved")  # the upload alone must do
    xe("vdi-import", "uuid=" + u, "filename=" + q2, "format=qcow2")
    assert sha(export_raw(u, "o2-back.raw")) == sha(want)
    xe("vdi-destroy", "uuid=" + u)


def test_hostile_images():
    sr = local_sr()
    before = files_of(sr)
    u = new_vdi("4MiB")
    good = os.path.join(TMP, "h.vhd")
    raw = os.path.join(TMP, "h.raw")
    make_raw(raw, 4 * MiB, seed=6)
    qimg("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, good)
    data = open(good, "rb").read()
    cases = {}
    cases["truncated"] = data[: len(data) // 2]
    cases["empty"] = b""
    cases["garbage"] = bytes(random.Random(7).getrandbits(8) for _ in range(8192))
    # BAT entry pointing far outside the file (with the header checksum still right:
    # the BAT has no checksum).
    bat_off = int.from_bytes(data[512 + 16:512 + 24], "big")
    hostile = bytearray(data)
    hostile[bat_off:bat_off + 4] = (0x7FFFFFF0).to_bytes(4, "big")
    cases["bat-outside"] = bytes(hostile)
    # BAT entry whose block starts inside the file but ends past it.
    hostile = bytearray(data)
    hostile[bat_off:bat_off + 4] = ((len(data) - 4096) // 512).to_bytes(4, "big")
    cases["bat-past-end"] = bytes(hostile)
    # Header: absurd block size and table size (checksum fixed up).
    hostile = bytearray(data)
    hostile[512 + 32:512 + 36] = (1 << 31).to_bytes(4, "big")
    hostile[512 + 28:512 + 32] = (0xFFFFFFF).to_bytes(4, "big")
    hostile[512 + 36:512 + 40] = bytes(4)
    hostile[512 + 36:512 + 40] = vhd_checksum(hostile[512:1536]).to_bytes(4, "big")
    cases["header-absurd"] = bytes(hostile)
    # A size far bigger than the VDI.
    big = os.path.join(TMP, "big.vhd")
    qimg("create", "-f", "vpc", "-o", "force_size=on", big, "64M")
    cases["too-big"] = open(big, "rb").read()
    for name, content in cases.items():
        p = os.path.join(TMP, "hostile-" + name + ".vhd")
        with open(p, "wb") as f:
            f.write(content)
        err = xe_fails("vdi-import", "uuid=" + u, "filename=" + p, "format=vhd")
        assert err.strip(), name
        assert "INTERNAL" not in err, (name, err)
    assert "minimum size" in xe_fails("vdi-import", "uuid=" + u, "format=vhd",
                                      "filename=" + os.path.join(TMP, "hostile-too-big.vhd"))
    # Raw bigger than the VDI, and an unknown format.
    big_raw = os.path.join(TMP, "big.raw")
    with open(big_raw, "wb") as f:
        f.truncate(8 * MiB)
    assert "minimum size" in xe_fails("vdi-import", "uuid=" + u, "filename=" + big_raw)
    assert xe_fails("vdi-import", "uuid=" + u, "filename=" + raw, "format=dmg")
    # The VDI still reads as it did (zeros) and nothing was left behind.
    out = export_raw(u, "h-back.raw")
    assert open(out, "rb").read() == bytes(4 * MiB)
    xe("vdi-destroy", "uuid=" + u)
    assert files_of(sr) == before
    assert D.xe("task-list", "status=pending", "--minimal").stdout.strip() == ""


def http(method, path, body=None):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=120)
    s, sess = D.login()
    sep = "&" if "?" in path else "?"
    c.request(method, path + sep + "session_id=" + sess, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test_plain_http_bodies():
    """Other clients send and fetch plain bodies (no sparse framing)."""
    src = os.path.join(TMP, "plain.raw")
    make_raw(src, 6 * MiB, seed=12)
    u = new_vdi("6MiB")
    with open(src, "rb") as f:
        st, body = http("PUT", "/import_raw_vdi?vdi=%s&format=raw" % u, f.read())
    assert st == 200, (st, body)
    st, data = http("GET", "/export_raw_vdi?vdi=%s&format=raw" % u)
    assert st == 200 and hashlib.sha256(data).hexdigest() == sha(src)
    # A fixed VHD (streamed: its length is known) and a dynamic one, as plain bodies.
    for sub in ("fixed", "dynamic"):
        vhd = os.path.join(TMP, "plain-%s.vhd" % sub)
        qimg("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=%s,force_size=on" % sub,
             src, vhd)
        v = new_vdi("6MiB")
        with open(vhd, "rb") as f:
            st, body = http("PUT", "/import_raw_vdi?vdi=%s&format=vhd" % v, f.read())
        assert st == 200, (sub, st, body)
        assert sha(export_raw(v, "plain-back.raw")) == sha(src), sub
        st, data = http("GET", "/export_raw_vdi?vdi=%s&format=vhd" % v)
        out = os.path.join(TMP, "plain-out.vhd")
        with open(out, "wb") as f:
            f.write(data)
        r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "vpc", src, out],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        xe("vdi-destroy", "uuid=" + v)
    # Errors as XenServer gives them: unknown format 404, unknown VDI 404.
    st, body = http("GET", "/export_raw_vdi?vdi=%s&format=dmg" % u)
    assert st == 404, st
    st, body = http("GET", "/export_raw_vdi?vdi=nothing&format=raw")
    assert st == 404 and b"HANDLE_INVALID" in body, (st, body)
    # A raw upload with sr_id and no vdi makes a new VDI.
    with open(src, "rb") as f:
        st, body = http("PUT", "/import_raw_vdi?sr_id=%s&format=raw" % local_sr(), f.read())
    assert st == 200, (st, body)
    ref = body.decode().strip()
    s, sess = D.login()
    new = ok(s.VDI.get_uuid(sess, ref))
    assert vdi_param(new, "name-label") == "Imported VDI"
    assert sha(export_raw(new, "plain-new.raw")) == sha(src)
    for v in (u, new):
        xe("vdi-destroy", "uuid=" + v)


def test_copy_on_write():
    sr = local_sr()
    base_raw = os.path.join(TMP, "cow.raw")
    make_raw(base_raw, 32 * MiB, seed=8, chunks=((0, 2 * MiB), (16 * MiB, 2 * MiB)))
    a = new_vdi("32MiB", "cow-a")
    xe("vdi-import", "uuid=" + a, "filename=" + base_raw)
    s = xe_out("vdi-snapshot", "uuid=" + a)
    c = xe_out("vdi-clone", "uuid=" + a, "new-name-label=cow-c")
    assert vdi_param(s, "is-a-snapshot") == "true"
    assert vdi_param(s, "snapshot-of") == a
    assert vdi_param(c, "name-label") == "cow-c"
    base = vdi_param(a, "sm-config").split("vhd-parent: ")[1].split(";")[0].strip()
    assert vdi_param(base, "name-label") == "base copy"
    assert vdi_param(base, "managed") == "false"
    assert vdi_param(base, "read-only") == "true"
    # Write through the clone (a VDI import replaces its content) and through A.
    other = os.path.join(TMP, "cow-other.raw")
    make_raw(other, 32 * MiB, seed=9, chunks=((8 * MiB, 1 * MiB),))
    xe("vdi-import", "uuid=" + c, "filename=" + other)
    # qemu-io writes into A's overlay directly (the VDI is not attached).
    d = sr_dir(sr)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x33 0 64k",
                    os.path.join(d, a + ".qcow2")], check=True, capture_output=True)
    assert sha(export_raw(s, "cow-s.raw")) == sha(base_raw)
    assert sha(export_raw(c, "cow-c.raw")) == sha(other)
    a_out = export_raw(a, "cow-a.raw")
    with open(a_out, "rb") as f:
        assert f.read(65536) == b"\x33" * 65536
    # The base copy still has the original data.
    assert sha(export_raw(base, "cow-base.raw")) == sha(base_raw)
    # The import made the clone standalone; destroying the snapshot leaves the
    # base copy with A alone, and it is merged into A: content kept.
    before = sha(a_out)
    assert "vhd-parent" not in vdi_param(c, "sm-config")
    xe("vdi-destroy", "uuid=" + c)
    assert vdi_param(a, "sm-config").find("vhd-parent") >= 0  # A and the snapshot remain
    xe("vdi-destroy", "uuid=" + s)
    assert vdi_param(a, "sm-config").find("vhd-parent") < 0
    assert vdi_param(a, "sm-config").find("chain-depth: 1") >= 0
    assert xe("vdi-list", "uuid=" + base, "--minimal").stdout.strip() == ""
    assert sha(export_raw(a, "cow-a2.raw")) == before
    assert sorted(f for f in files_of(sr) if f.startswith(a)) == [a + ".qcow2"]
    qimg("check", os.path.join(d, a + ".qcow2"))
    xe("vdi-destroy", "uuid=" + a)


def test_snapshot_is_o1_and_chain_bounded():
    a = new_vdi("100GiB", "big")
    snaps = []
    for i in range(3):
        snaps.append(xe_out("vdi-snapshot", "uuid=" + a))
    # Snapshots of an untouched overlay share its parent: no new base copy each time.
    depth = int(vdi_param(a, "sm-config").split("chain-depth: ")[1].split(";")[0])
    assert depth == 2, depth
    c = xe_out("vdi-clone", "uuid=" + a)
    assert "chain-depth: 2" in vdi_param(c, "sm-config")
    # The chain is bounded: keep snapshotting (each after a write) until refused.
    d = sr_dir(local_sr())
    refused = None
    for i in range(40):
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write 0 4k",
                        os.path.join(d, a + ".qcow2")], check=True, capture_output=True)
        r = xe("vdi-snapshot", "uuid=" + a, check=False)
        if r.returncode != 0:
            refused = r.stderr
            break
        snaps.append(r.stdout.strip())
    assert refused and "chain is too long" in refused, refused
    for s in snaps + [c]:
        xe("vdi-destroy", "uuid=" + s)
    assert "chain-depth: 1" in vdi_param(a, "sm-config")
    xe("vdi-destroy", "uuid=" + a)


def test_copy_resize_forget_introduce():
    sr = local_sr()
    src = os.path.join(TMP, "cp.raw")
    make_raw(src, 24 * MiB, seed=10)
    a = new_vdi("24MiB", "cp-a")
    xe("vdi-import", "uuid=" + a, "filename=" + src)
    s = xe_out("vdi-snapshot", "uuid=" + a)
    b = xe_out("vdi-copy", "uuid=" + s, "sr-uuid=" + sr)
    assert "vhd-parent" not in vdi_param(b, "sm-config")
    assert sha(export_raw(b, "cp-b.raw")) == sha(src)
    # Copy into an existing (bigger) VDI.
    t = new_vdi("32MiB", "cp-into")
    xe("vdi-copy", "uuid=" + a, "into-vdi-uuid=" + t)
    assert sha(export_raw(t, "cp-t.raw"), 24 * MiB) == sha(src)
    assert "VDI is too small" in xe_fails("vdi-copy", "uuid=" + t, "into-vdi-uuid=" + a)
    # Grow; shrinking is refused.
    xe("vdi-resize", "uuid=" + b, "disk-size=40MiB")
    assert int(vdi_param(b, "virtual-size")) == 40 * MiB
    out = export_raw(b, "cp-grown.raw")
    assert os.path.getsize(out) == 40 * MiB and sha(out, 24 * MiB) == sha(src)
    assert "shrinking" in xe_fails("vdi-resize", "uuid=" + b, "disk-size=8MiB")
    # Forget keeps the file; sr-scan brings it back; introduce works too.
    path = os.path.join(sr_dir(sr), b + ".qcow2")
    xe("vdi-forget", "uuid=" + b)
    assert os.path.exists(path)
    assert xe("vdi-list", "uuid=" + b, "--minimal").stdout.strip() == ""
    xe("sr-scan", "uuid=" + sr)
    assert int(vdi_param(b, "virtual-size")) == 40 * MiB
    xe("vdi-forget", "uuid=" + b)
    u = xe_out("vdi-introduce", "uuid=" + b, "sr-uuid=" + sr, "type=user", "location=" + b,
               "name-label=back")
    assert u == b and vdi_param(b, "name-label") == "back"
    assert "LOCATION_NOT_UNIQUE" in xe_fails("vdi-introduce", "uuid=" + b, "sr-uuid=" + sr,
                                             "type=user", "location=" + b)
    for v in (s, a, b, t):
        xe("vdi-destroy", "uuid=" + v)


def test_scan_reconciles():
    sr = local_sr()
    d = sr_dir(sr)
    # An orphan qcow2 named by a uuid becomes a VDI; a missing file is reported.
    orphan = "6f1c9a52-5d7e-4c44-9d8e-0123456789ab"
    qimg("create", "-f", "qcow2", os.path.join(d, orphan + ".qcow2"), "5M")
    gone = new_vdi("1MiB", "gone")
    os.unlink(os.path.join(d, gone + ".qcow2"))
    # Leftovers of interrupted operations go.
    junk = os.path.join(d, ".hx-tmp-11111111-2222-3333-4444-555555555555.qcow2")
    open(junk, "wb").close()
    xe("sr-scan", "uuid=" + sr)
    assert int(vdi_param(orphan, "virtual-size")) == 5 * MiB
    assert vdi_param(gone, "missing") == "true"
    assert not os.path.exists(junk)
    err = xe_fails("vdi-export", "uuid=" + gone, "filename=" + os.path.join(TMP, "g.raw"))
    assert "no file" in err or "VDI_MISSING" in err, err
    xe("vdi-forget", "uuid=" + gone)
    xe("vdi-destroy", "uuid=" + orphan)


def test_on_boot_reset_and_in_use():
    s, sess = D.login()
    a = new_vdi("8MiB", "reset")
    xe("vdi-param-set", "uuid=" + a, "on-boot=reset")
    assert vdi_param(a, "on-boot") == "reset"
    vdi = ok(s.VDI.get_by_uuid(sess, a))
    vm = ok(s.VM.get_all(sess))[0]
    # A VBD currently attached makes the VDI in use.
    vbd = ok(s.VBD.create(sess, {"VM": vm, "VDI": vdi, "userdevice": "5", "bootable": False,
                                 "mode": "RW", "type": "Disk", "empty": False,
                                 "other_config": {}, "qos_algorithm_type": "",
                                 "qos_algorithm_params": {}, "currently_attached": True}))
    assert ok(s.VBD.get_currently_attached(sess, vbd))
    fails(s.VDI.destroy(sess, vdi), "VDI_IN_USE")
    fails(s.VDI.resize(sess, vdi, str(16 * MiB)), "VDI_IN_USE")
    fails(s.VDI.set_on_boot(sess, vdi, "persist"), "VDI_IN_USE")
    assert "in use" in xe_fails("vdi-import", "uuid=" + a,
                                "filename=" + os.path.join(TMP, "o.raw"))
    pool = ok(s.pool.get_all(sess))[0]
    fails(s.PBD.unplug(sess, ok(s.SR.get_PBDs(sess, ok(s.VDI.get_SR(sess, vdi))))[0]),
          "VDI_IN_USE")
    ok(s.VBD.destroy(sess, vbd))
    ok(s.VDI.destroy(sess, vdi))
    del pool


def test_iso_and_udev_srs():
    iso_dir = os.path.join(TMP, "isos")
    os.makedirs(iso_dir, exist_ok=True)
    with open(os.path.join(iso_dir, "a.iso"), "wb") as f:
        f.write(b"\0" * 4096)
    open(os.path.join(iso_dir, "notes.txt"), "w").close()
    sr = xe_out("sr-create", "name-label=isos", "type=iso", "content-type=iso",
                "device-config:location=" + iso_dir)
    assert xe_out("sr-param-get", "uuid=" + sr, "param-name=content-type") == "iso"
    cds = xe_out("cd-list", "params=name-label", "--minimal").split(",")
    assert "a.iso" in cds and "guest-tools.iso" in cds, cds
    tools = xe_out("vdi-list", "name-label=guest-tools.iso", "params=is-tools-iso", "--minimal")
    assert tools == "true"
    # New files appear on a scan; ISO SRs are read-only.
    with open(os.path.join(iso_dir, "b.iso"), "wb") as f:
        f.write(b"\1" * 2048)
    xe("sr-scan", "uuid=" + sr)
    b = xe_out("vdi-list", "sr-uuid=" + sr, "name-label=b.iso", "--minimal")
    assert b and vdi_param(b, "virtual-size") == "2048"
    assert xe_fails("vdi-create", "sr-uuid=" + sr, "name-label=x", "virtual-size=1MiB")
    # Remote libraries need mount(8): a clear error where it cannot work.
    err = xe_fails("sr-create", "name-label=nfs-isos", "type=iso",
                   "device-config:location=192.0.2.1:/nothing")
    assert "mount" in err, err
    # The guide's helper: a local library, then a remote one where nothing listens.
    helper = os.path.join(os.environ.get("HX_SOURCE_DIR", "."), "src", "cli", "xe-mount-iso-sr")
    env = dict(os.environ, XE=os.environ.get("XE", "xe"), HYPERXE_RUN_DIR=D.run_dir, HOME=D.tmp)
    r = subprocess.run([helper, iso_dir], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib = r.stdout.strip()
    assert xe_out("sr-param-get", "uuid=" + lib, "param-name=name-label") == \
        "Remote ISO Library on: " + iso_dir
    assert xe_out("vdi-list", "sr-uuid=" + lib, "name-label=a.iso", "--minimal")
    r = subprocess.run([helper, "//192.0.2.1/isos", "-t", "cifs", "-o", "username=me/wg"],
                       env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "mount" in r.stderr, r.stderr
    xe("pbd-unplug", "uuid=" + xe_out("pbd-list", "sr-uuid=" + lib, "--minimal"))
    xe("sr-forget", "uuid=" + lib)
    # The DVD drives SR works without drives.
    udev = xe_out("sr-list", "type=udev", "--minimal")
    xe("sr-scan", "uuid=" + udev)
    pbd = xe_out("pbd-list", "sr-uuid=" + sr, "--minimal")
    xe("pbd-unplug", "uuid=" + pbd)
    xe("sr-forget", "uuid=" + sr)
    assert os.path.exists(os.path.join(iso_dir, "a.iso"))


def test_sr_lifecycle():
    d = os.path.join(TMP, "ext-sr")
    sr = xe_out("sr-create", "name-label=mine", "type=ext", "device-config:path=" + d)
    assert xe_out("sr-param-get", "uuid=" + sr, "param-name=type") == "ext"
    u = new_vdi("4MiB", "in-mine", sr=sr)
    assert os.path.exists(os.path.join(d, u + ".qcow2"))
    assert int(xe_out("sr-param-get", "uuid=" + sr, "param-name=virtual-allocation")) == 4 * MiB
    assert int(xe_out("sr-param-get", "uuid=" + sr, "param-name=physical-size")) > 0
    assert "SR_HAS_PBD" in xe_fails("sr-destroy", "uuid=" + sr)
    pbd = xe_out("pbd-list", "sr-uuid=" + sr, "--minimal")
    xe("pbd-unplug", "uuid=" + pbd)
    assert xe_fails("vdi-create", "sr-uuid=" + sr, "name-label=x", "virtual-size=1MiB")
    xe("pbd-plug", "uuid=" + pbd)
    xe("pbd-unplug", "uuid=" + pbd)
    xe("sr-destroy", "uuid=" + sr)
    assert not os.path.exists(d)
    assert xe("vdi-list", "uuid=" + u, "--minimal").stdout.strip() == ""
    # nfs with an already mounted directory (a plain directory stands in for it).
    n = os.path.join(TMP, "nfs-root")
    os.makedirs(n, exist_ok=True)
    sr = xe_out("sr-create", "name-label=shared", "type=nfs", "device-config:path=" + n)
    assert xe_out("sr-param-get", "uuid=" + sr, "param-name=shared") == "true"
    u = new_vdi("4MiB", "on-nfs", sr=sr)
    assert os.path.exists(os.path.join(n, sr, u + ".qcow2"))
    pbd = xe_out("pbd-list", "sr-uuid=" + sr, "--minimal")
    xe("pbd-unplug", "uuid=" + pbd)
    xe("sr-destroy", "uuid=" + sr)
    assert not os.path.exists(os.path.join(n, sr))
    err = xe_fails("sr-create", "name-label=x", "type=lvmoiscsi")
    assert "driver" in err, err


def test_restart_keeps_everything():
    sr = local_sr()
    a = new_vdi("8MiB", "persist")
    s = xe_out("vdi-snapshot", "uuid=" + a)
    D.restart()
    assert vdi_param(a, "missing") == "false"
    assert vdi_param(s, "snapshot-of") == a
    xe("vdi-destroy", "uuid=" + s)
    xe("vdi-destroy", "uuid=" + a)
    assert [f for f in files_of(sr) if not f.startswith(".")] == \
        sorted(f for f in files_of(sr) if not f.startswith("."))


def main():
    global D, TMP
    TMP = tempfile.mkdtemp(prefix="hx-storage-")
    code = 0
    try:
        with Daemon() as d:
            D = d
            try:
                    run_tests([test_create_sizes_and_destroy, test_round_trip_every_format,
                           test_qemu_img_vhds, test_sample_vhds, test_vhd_differencing_on_parent,
                           test_other_formats_import, test_hostile_images,
                           test_plain_http_bodies, test_copy_on_write,
                           test_snapshot_is_o1_and_chain_bounded,
                           test_copy_resize_forget_introduce, test_scan_reconciles,
                           test_on_boot_reset_and_in_use, test_iso_and_udev_srs, test_sr_lifecycle, test_restart_keeps_everything])
            except SystemExit as e:
                code = e.code
                if code:
                    if os.environ.get("HX_KEEP_LOG"):
                        shutil.copy(os.path.join(d.state_dir, "log"), os.environ["HX_KEEP_LOG"])
                    sys.stdout.write("# ---- hyperxed log ----\n# " +
                                     d.log().replace("\n", "\n# ") + "\n")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
