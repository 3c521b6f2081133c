"""XXH64 (seed 0 by default) in pure Python, written from the published
algorithm, as an oracle independent of libxxhash for the XVA tests.

xxh64(b"") == 0xEF46DB3751D8E999; xxh64_hex() gives xapi's "%016LX" form.
"""
import struct

_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_M = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc, lane):
    acc = (acc + lane * _P2) & _M
    acc = ((acc << 31) | (acc >> 33)) & _M
    return (acc * _P1) & _M


def _merge(h, v):
    h ^= _round(0, v)
    return (h * _P1 + _P4) & _M


def xxh64(data, seed=0):
    data = memoryview(data).cast("B")
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed & _M
        v4 = (seed - _P1) & _M
        stripes = n // 32
        w = struct.unpack_from("<%dQ" % (stripes * 4), data, 0)
        P1, P2, M = _P1, _P2, _M
        for k in range(0, stripes * 4, 4):
            a = (v1 + w[k] * P2) & M
            v1 = ((((a << 31) | (a >> 33)) & M) * P1) & M
            a = (v2 + w[k + 1] * P2) & M
            v2 = ((((a << 31) | (a >> 33)) & M) * P1) & M
            a = (v3 + w[k + 2] * P2) & M
            v3 = ((((a << 31) | (a >> 33)) & M) * P1) & M
            a = (v4 + w[k + 3] * P2) & M
            v4 = ((((a << 31) | (a >> 33)) & M) * P1) & M
        i = stripes * 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        (lane,) = struct.unpack_from("<Q", data, i)
        h ^= _round(0, lane)
        h = (_rotl(h, 27) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, i)
        h ^= (lane * _P1) & _M
        h = (_rotl(h, 23) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M
        h = (_rotl(h, 11) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


def xxh64_hex(data):
    return "%016X" % xxh64(data)


if __name__ == "__main__":
    import sys
    with open(sys.argv[1], "rb") as f:
        print(xxh64_hex(f.read()))
