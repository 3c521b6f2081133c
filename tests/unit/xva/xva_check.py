#!/usr/bin/env python3
"""An independent reader for the XVA files hyperxe writes (stdlib only:
tarfile, hashlib, gzip; zstd through the zstd command).

It checks what the writer promises: ova.xml first with that exact name and
a non-zero mtime, every other member with mtime 0; uid/gid 0; ustar
headers; regular files only, no directory entries; per disk, in
lexicographic order of the ids, members "ID/%08d" of exactly 1 MiB (the
last one shorter when the size is not a multiple of 1 MiB), each followed
immediately by "ID/%08d.xxhash" holding XXH64 as 16 upper-case hex digits
(or ".checksum" with lower-case SHA-1); block 0 and the last block present,
no other all-zero block; the archive ending with two zero blocks. It then
rebuilds each disk with xapi's running-offset rule and compares it with the
source file.

usage: xva_check.py XVA ID=RAWFILE... [--sha1] [--prefix-only PREFIX]
Exit status 0 if everything holds; prints the first problem otherwise.
"""
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xxh64 import xxh64_hex  # noqa: E402

MiB = 1 << 20


class Bad(Exception):
    pass


def decompress(raw):
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-q", "-d", "-c"], input=raw, check=True,
                              stdout=subprocess.PIPE).stdout, "zstd"
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw), "gzip"
    return raw, "none"


def check(path, sources, checksum="xxhash", raw_tar=False):
    """sources: dict id -> raw file path. Returns a summary dict; raises Bad."""
    with open(path, "rb") as f:
        data, comp = decompress(f.read())
    if len(data) % 512 or len(data) < 1024 or data[-1024:] != b"\0" * 1024:
        raise Bad("the archive does not end with two zero blocks")
    tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    members = tf.getmembers()
    # tarfile stops at the first zero block: everything after the last member must be zeros.
    last = members[-1]
    end = last.offset_data + ((last.size + 511) // 512) * 512
    if data[end:] != b"\0" * (len(data) - end) or len(data) - end < 1024:
        raise Bad("unexpected bytes after the last member")
    for m in members:
        if not m.isreg():
            raise Bad(f"{m.name}: not a regular file (type {m.type!r})")
        if m.uid != 0 or m.gid != 0:
            raise Bad(f"{m.name}: uid/gid {m.uid}/{m.gid}")
        hdr = data[m.offset:m.offset + 512]
        if hdr[257:263] != b"ustar\0" or hdr[263:265] != b"00":
            raise Bad(f"{m.name}: not a POSIX ustar header")
    if raw_tar:
        prefix_members = members
    else:
        if members[0].name != "ova.xml":
            raise Bad(f"first member is {members[0].name!r}, not ova.xml")
        if members[0].mtime == 0:
            raise Bad("ova.xml has mtime 0")
        prefix_members = members[1:]
    for m in prefix_members:
        if m.mtime != 0:
            raise Bad(f"{m.name}: mtime {m.mtime}, expected 0")

    ext = ".xxhash" if checksum == "xxhash" else ".checksum"
    # Group members by directory, in order of appearance.
    groups = []
    for m in prefix_members:
        d, _, rest = m.name.partition("/")
        if not rest or "/" in rest:
            raise Bad(f"unexpected member {m.name!r}")
        if not groups or groups[-1][0] != d:
            if any(g[0] == d for g in groups):
                raise Bad(f"members of {d} are not contiguous")
            groups.append((d, []))
        groups[-1][1].append(m)
    ids = [g[0] for g in groups]
    if ids != sorted(ids):
        raise Bad(f"disks not in lexicographic order: {ids}")
    want = sorted(i for i, p in sources.items() if os.path.getsize(p) > 0)
    if ids != want:
        raise Bad(f"disks in the archive {ids}, expected {want}")

    summary = {"compression": comp, "disks": {}}
    first_len = None
    for d, ms in groups:
        src = open(sources[d], "rb").read()
        size = len(src)
        if len(ms) % 2:
            raise Bad(f"{d}: odd number of members")
        nblocks = (size + MiB - 1) // MiB
        rebuilt = bytearray(size)
        offset, last = 0, -1
        seen = []
        for k in range(0, len(ms), 2):
            m, c = ms[k], ms[k + 1]
            num = m.name.split("/")[1]
            if len(num) != 8 or not num.isdigit():
                raise Bad(f"{m.name}: block name is not 8 decimal digits")
            if c.name != m.name + ext:
                raise Bad(f"{m.name} is followed by {c.name}, expected {m.name + ext}")
            n = int(num)
            if n <= last:
                raise Bad(f"{m.name}: block numbers must increase")
            blk = tf.extractfile(m).read()
            if first_len is None:
                first_len = len(blk)
            gap = n - last - 1
            offset += gap * first_len
            bno = offset // MiB
            want_len = min(MiB, size - offset)
            if offset % MiB or len(blk) != want_len:
                raise Bad(f"{m.name}: {len(blk)} bytes at offset {offset}, expected "
                          f"{want_len} at a 1 MiB boundary")
            if 0 < bno < nblocks - 1 and blk.count(0) == len(blk):
                raise Bad(f"{m.name}: an all-zero middle block was written")
            stored = tf.extractfile(c).read().decode("ascii")
            calc = xxh64_hex(blk) if checksum == "xxhash" else hashlib.sha1(blk).hexdigest()
            if stored != calc:
                raise Bad(f"{c.name}: {stored} but the block hashes to {calc}")
            rebuilt[offset:offset + len(blk)] = blk
            offset += len(blk)
            last = n
            seen.append(bno)
        if offset != size:
            raise Bad(f"{d}: data adds up to {offset} bytes, the disk has {size}")
        if seen[0] != 0 or seen[-1] != nblocks - 1:
            raise Bad(f"{d}: first or last block missing")
        if bytes(rebuilt) != src:
            bad = next(i for i in range(size) if rebuilt[i] != src[i])
            raise Bad(f"{d}: rebuilt disk differs from the source at byte {bad}")
        # Every skipped block must be zero in the source.
        for b in range(nblocks):
            if b not in seen and src[b * MiB:(b + 1) * MiB].count(0) != len(src[b * MiB:(b + 1) * MiB]):
                raise Bad(f"{d}: block {b} was skipped but is not zero")
        summary["disks"][d] = {"size": size, "blocks": len(seen)}
    return summary


def main():
    args = sys.argv[1:]
    checksum = "xxhash"
    raw_tar = False
    if "--sha1" in args:
        args.remove("--sha1")
        checksum = "sha1"
    if "--raw-tar" in args:
        args.remove("--raw-tar")
        raw_tar = True
    if len(args) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    sources = dict(a.split("=", 1) for a in args[1:])
    try:
        s = check(args[0], sources, checksum, raw_tar)
    except Bad as e:
        print(f"xva_check: {args[0]}: {e}", file=sys.stderr)
        return 1
    print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
