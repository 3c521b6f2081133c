/*
 * qcow2 on-disk constants shared by the reader (qcow2.c) and the writer
 * (qcow2_write.c). Layout per qemu's docs/interop/qcow2.txt; all fields are
 * big-endian. No code here.
 */
#ifndef HX_FORMATS_QCOW2_H
#define HX_FORMATS_QCOW2_H

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_HEADER_V3_LEN 112

#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ULL
#define QCOW2_COPIED (1ULL << 63)
#define QCOW2_COMPRESSED (1ULL << 62)
#define QCOW2_ZERO_FLAG 1ULL

#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)

#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u

#endif
