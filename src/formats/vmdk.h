/*
 * VMDK constants shared by the reader (vmdk.c) and the writer
 * (vmdk_write.c). Layout in shared/reference/formats.md section 2; binary
 * fields are little-endian, offsets and sizes in 512-byte sectors.
 */
#ifndef HX_FORMATS_VMDK_H
#define HX_FORMATS_VMDK_H

#define VMDK_MAGIC 0x564d444bu /* "KDMV" on disk */
#define VMDK_COWD_MAGIC 0x44574f43u
#define VMDK_GD_AT_END 0xffffffffffffffffULL

#define VMDK_FLAG_NL_DETECT (1u << 0)
#define VMDK_FLAG_RGD (1u << 1)
#define VMDK_FLAG_ZEROED_GTE (1u << 2)
#define VMDK_FLAG_COMPRESSED (1u << 16)
#define VMDK_FLAG_MARKERS (1u << 17)

#define VMDK_COMPRESS_DEFLATE 1

#define VMDK_MARKER_EOS 0
#define VMDK_MARKER_GT 1
#define VMDK_MARKER_GD 2
#define VMDK_MARKER_FOOTER 3

#endif
