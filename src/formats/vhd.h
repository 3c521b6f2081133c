/*
 * VHD (Microsoft Virtual Hard Disk 1.0) constants and the helpers shared by
 * the reader (vhd.c) and the writer (vhd_write.c): checksums and the CHS
 * geometry of the specification's appendix. Layout in
 * shared/reference/formats.md section 1; all fields big-endian.
 */
#ifndef HX_FORMATS_VHD_H
#define HX_FORMATS_VHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHD_FOOTER_SIZE 512
#define VHD_HEADER_SIZE 1024
#define VHD_TYPE_FIXED 2
#define VHD_TYPE_DYNAMIC 3
#define VHD_TYPE_DIFF 4
#define VHD_BAT_UNUSED 0xffffffffu
#define VHD_MAX_SECTORS 0xff000000ULL
/* 65535 x 16 x 255: the largest CHS geometry, qemu's "use current size". */
#define VHD_MAX_GEOMETRY (65535ULL * 16 * 255)
/* Seconds from the Unix epoch to 2000-01-01 00:00:00 UTC. */
#define VHD_EPOCH 946684800

/* Ones' complement of the byte sum of buf[0..len), with the 4 bytes at
 * skip treated as zero. */
uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t skip);

/* The specification's geometry for total_sectors (capped at the maximum
 * geometry). */
void vhd_geometry(uint64_t total_sectors, uint16_t *cyls, uint8_t *heads, uint8_t *spt);

/* The virtual size a footer describes (the CHS geometry or the current size,
 * as qemu decides), and whether its checksum is right (blktap's hidden byte
 * accepted). */
uint64_t vhd_footer_size(const uint8_t *footer);
bool vhd_footer_checksum_ok(const uint8_t *footer);

#endif
