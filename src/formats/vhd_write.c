/*
 * VHD writer: fixed (data then footer) and dynamic (footer copy, header,
 * BAT, blocks in order, footer). Both are written in one pass and work on
 * pipes: the dynamic BAT comes from a pre-pass over the source's block
 * status, so only blocks holding data are stored. Sizes follow qemu-img:
 * by default the size is rounded up to a CHS geometry; with force_size the
 * exact size is kept and the geometry is the maximum (which every reader,
 * qemu included, takes as "use current size"). More than 2040 GiB is
 * refused. Differencing disks are not written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "formats/image_int.h"
#include "formats/vhd.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define VHD_BLOCK_SIZE (2u * 1024 * 1024)

static void make_footer(uint8_t *f, uint32_t type, uint64_t size, uint16_t c, uint8_t h,
                        uint8_t s)
{
    memset(f, 0, VHD_FOOTER_SIZE);
    memcpy(f, "conectix", 8);
    img_put_be32(f + 8, 2);
    img_put_be32(f + 12, 0x00010000);
    img_put_be64(f + 16, type == VHD_TYPE_FIXED ? ~0ULL : VHD_FOOTER_SIZE);
    time_t now = time(NULL);
    img_put_be32(f + 24, now > VHD_EPOCH ? (uint32_t)(now - VHD_EPOCH) : 0);
    memcpy(f + 28, "hxe ", 4);
    img_put_be32(f + 32, 0x00000001);
    memcpy(f + 36, "Wi2k", 4);
    img_put_be64(f + 40, size);
    img_put_be64(f + 48, size);
    img_put_be16(f + 56, c);
    f[58] = h;
    f[59] = s;
    img_put_be32(f + 60, type);
    uint8_t *u = f + 68;
    if (getrandom(u, 16, 0) != 16) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (int i = 0; i < 16; i++)
            u[i] = (uint8_t)((uint64_t)ts.tv_nsec >> (i % 8 * 4)) ^ (uint8_t)(i * 37);
    }
    u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
    u[8] = (u[8] & 0x3f) | 0x80;
    img_put_be32(f + 64, vhd_checksum(f, VHD_FOOTER_SIZE, 64));
}

/* The geometry and the disk size the file will have (qemu-img's rules). */
static int vhd_size(uint64_t want, bool force, uint64_t *size, uint16_t *c, uint8_t *h,
                    uint8_t *s, ImgError *err)
{
    uint64_t sectors = (want + 511) / 512;
    if (sectors > VHD_MAX_SECTORS)
        return img_error_set(err, EFBIG,
                             "a %llu-byte disk is larger than VHD allows (2040 GiB)",
                             (unsigned long long)want);
    if (force) {
        *c = 65535;
        *h = 16;
        *s = 255;
    } else {
        uint64_t total = MIN(VHD_MAX_GEOMETRY, sectors);
        *c = 0;
        *h = 0;
        *s = 0;
        for (uint64_t i = 0; total > (uint64_t)*c * *h * *s; i++)
            vhd_geometry(total + i, c, h, s);
    }
    uint64_t chs = (uint64_t)*c * *h * *s;
    *size = (chs == VHD_MAX_GEOMETRY ? sectors : chs) * 512;
    if (*size / 512 > VHD_MAX_SECTORS)
        return img_error_set(err, EFBIG, "the disk is larger than VHD allows (2040 GiB)");
    return 0;
}

static int write_fixed(const ImgSource *src, ImgOut *out, const uint8_t *footer, uint64_t size,
                       ImgError *err)
{
    int ret = raw_write(src, NULL, out, err);
    if (ret < 0)
        return ret;
    ret = img_out_zeros(out, size - src->virtual_size);
    if (ret < 0)
        return ret;
    return img_out_write(out, footer, VHD_FOOTER_SIZE);
}

static int write_dynamic(const ImgSource *src, ImgOut *out, const uint8_t *footer, uint64_t size,
                         ImgError *err)
{
    const uint64_t bs = VHD_BLOCK_SIZE;
    const uint64_t entries = (size + bs - 1) / bs;
    const uint64_t bat_bytes = (entries * 4 + 511) & ~511ULL;
    uint8_t *bat = xmalloc(bat_bytes);
    memset(bat, 0xff, bat_bytes);
    int ret;

    /* Pre-pass: which blocks hold data. */
    uint64_t sector = (VHD_FOOTER_SIZE + VHD_HEADER_SIZE + bat_bytes) / 512;
    uint64_t nblocks = 0;
    ImgScan scan;
    img_scan_init(&scan, src, bs, false);
    uint64_t start, count;
    ImgUnitKind kind;
    while ((ret = img_scan_next(&scan, &start, &count, &kind, err)) > 0) {
        if (kind != IMG_UNIT_DATA)
            continue;
        for (uint64_t b = start / bs; b < start / bs + count; b++) {
            img_put_be32(bat + 4 * b, (uint32_t)sector);
            sector += (512 + bs) / 512;
            nblocks++;
        }
    }
    if (ret < 0)
        goto out;
    if (sector > UINT32_MAX) {
        ret = img_error_set(err, EFBIG, "the VHD would be larger than its 32-bit BAT allows");
        goto out;
    }

    uint8_t hdr[VHD_HEADER_SIZE];
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, "cxsparse", 8);
    img_put_be64(hdr + 8, ~0ULL);
    img_put_be64(hdr + 16, VHD_FOOTER_SIZE + VHD_HEADER_SIZE);
    img_put_be32(hdr + 24, 0x00010000);
    img_put_be32(hdr + 28, (uint32_t)entries);
    img_put_be32(hdr + 32, (uint32_t)bs);
    img_put_be32(hdr + 36, vhd_checksum(hdr, sizeof(hdr), 36));

    if ((ret = img_out_write(out, footer, VHD_FOOTER_SIZE)) < 0 ||
        (ret = img_out_write(out, hdr, sizeof(hdr))) < 0 ||
        (ret = img_out_write(out, bat, bat_bytes)) < 0)
        goto out;

    uint8_t bitmap[512];
    memset(bitmap, 0xff, sizeof(bitmap));
    /* The same scan again, now reading: its DATA blocks are the BAT's. */
    ImgPump *pump = img_pump_start(src, bs, false, bs, err);
    if (!pump) {
        ret = -EAGAIN;
        goto out;
    }
    ImgPumpItem it;
    uint64_t written = 0;
    while ((ret = img_pump_next(pump, &it, err)) > 0) {
        if (it.kind != IMG_UNIT_DATA)
            continue;
        if (it.span != bs || img_be32(bat + 4 * (it.start / bs)) == VHD_BAT_UNUSED) {
            ret = img_error_set(err, EIO, "the source changed while the VHD was written");
            break;
        }
        if ((ret = img_out_write(out, bitmap, sizeof(bitmap))) < 0 ||
            (ret = img_out_write_sparse(out, it.buf, bs)) < 0)
            break;
        written++;
        ret = img_out_tick(out, it.start + bs);
        if (ret < 0)
            break;
    }
    img_pump_free(pump);
    if (ret == 0 && written != nblocks)
        ret = img_error_set(err, EIO, "the source changed while the VHD was written");
    if (ret < 0)
        goto out;
    ret = img_out_write(out, footer, VHD_FOOTER_SIZE);
out:
    free(bat);
    return ret < 0 ? ret : 0;
}

int vhd_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err)
{
    uint64_t size = 0;
    uint16_t c = 0;
    uint8_t h = 0, s = 0;
    int ret = vhd_size(src->virtual_size, o->vhd_force_size, &size, &c, &h, &s, err);
    if (ret < 0)
        return ret;
    uint8_t footer[VHD_FOOTER_SIZE];
    switch (o->subformat) {
    case IMG_SUBFORMAT_DEFAULT:
    case IMG_SUBFORMAT_VHD_DYNAMIC:
        make_footer(footer, VHD_TYPE_DYNAMIC, size, c, h, s);
        return write_dynamic(src, out, footer, size, err);
    case IMG_SUBFORMAT_VHD_FIXED:
        make_footer(footer, VHD_TYPE_FIXED, size, c, h, s);
        return write_fixed(src, out, footer, size, err);
    default:
        return img_error_set(err, EINVAL, "VHD subformat %s is not supported",
                             img_subformat_name(o->subformat));
    }
}
