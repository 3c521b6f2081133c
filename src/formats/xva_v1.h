/*
 * Legacy XVA version 1 ("Zurich/Geneva"): a directory holding ova.xml
 * (<appliance version="0.1">) and, per disk, a directory of
 * "chunk-NNNNNNNNN.gz" files whose gunzipped contents, concatenated, are
 * the disk. This module parses that ova.xml into a small struct, refusing
 * what xapi's parser refused, and streams each disk to the same callbacks
 * as the version-2 reader (xva.h).
 *
 * It reads only below the directory it is given and never follows paths
 * out of it ("..", absolute sources). It parses with libxml2: a program
 * that parses on several threads calls xmlInitParser() once at start.
 */
#ifndef HX_FORMATS_XVA_V1_H
#define HX_FORMATS_XVA_V1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/xva.h"

/* Bytes in each chunk file (decimal GB); the last one may be shorter. */
#define XVA_V1_CHUNK_SIZE 1000000000ull
/* Largest ova.xml accepted. */
#define XVA_V1_MAX_OVA_XML (4u * 1024u * 1024u)

typedef enum {
    XVA_V1_MODE_RW, /* "w" or "rw" (any case) */
    XVA_V1_MODE_RO, /* "r" (the documented "ro" was refused by xapi, and is here too) */
    XVA_V1_MODE__MAX
} XvaV1Mode;

typedef enum {
    XVA_V1_VARIETY_SYSTEM,
    XVA_V1_VARIETY_EPHEMERAL,
    XVA_V1_VARIETY_USER,
    XVA_V1_VARIETY_SUSPEND,
    XVA_V1_VARIETY_CRASHDUMP,
    XVA_V1_VARIETY_METADATA,
    XVA_V1_VARIETY__MAX
} XvaV1Variety;

typedef struct XvaV1Vdi {
    char *name;   /* <vdi name=>, referenced by vbds */
    uint64_t size;
    char *source; /* as written: "file://sda" */
    char *path;   /* source without "file://": the chunk directory, relative */
    char *type;   /* "dir-gzipped-chunks" (the only type xva_v1_import() reads) */
    XvaV1Variety variety;
} XvaV1Vdi;

typedef struct XvaV1Vbd {
    char *device;   /* "sda", "xvda", ... (the userdevice of the VBD) */
    char *function; /* "root" makes the VBD bootable; anything else is kept as is */
    bool bootable;
    XvaV1Mode mode;
    size_t vdi;     /* index into XvaV1Appliance.vdis */
} XvaV1Vbd;

typedef struct XvaV1Appliance {
    char *dir;         /* directory holding ova.xml (set by xva_v1_open(); NULL after parse) */
    char *vm_name;     /* <vm name=...> or NULL */
    char *label;       /* <label>, whitespace-trimmed */
    char *shortdesc;   /* <shortdesc>, whitespace-trimmed */
    uint64_t mem_set;  /* bytes */
    int64_t vcpus;
    char *distrib;         /* optional, NULL if absent */
    char *distrib_version; /* optional, NULL if absent */
    bool is_hvm;           /* <hacks is_hvm=> is "true" (any case); true when absent */
    char *kernel_boot_cmdline; /* "" when absent */
    XvaV1Vbd *vbds;
    size_t n_vbds;
    XvaV1Vdi *vdis;
    size_t n_vdis;
    size_t n_vms; /* <vm> elements; only the first is described (as xe did) */
} XvaV1Appliance;

const char *xva_v1_mode_name(XvaV1Mode mode);       /* "RW", "RO" */
const char *xva_v1_variety_name(XvaV1Variety v);    /* "system", ... */

/*
 * Parses a version-1 ova.xml. Refused (XVA_ERROR_INVALID with a message):
 * a root other than <appliance>, version other than "0.1", no <vm>, a <vm>
 * without <label>, <shortdesc>, <config mem_set vcpus> or <hacks>, a <vbd>
 * without device/function/mode/vdi or naming an unknown vdi, an unknown
 * mode (e.g. "ro") or variety, a <vdi> without name/size/source/type/
 * variety, a source not starting with "file://", or a path in it that
 * leaves the directory. Returns 0 and *out (free with
 * xva_v1_appliance_free()), or a negative errno with *err.
 */
int xva_v1_parse(const char *xml, size_t len, XvaV1Appliance **out, XvaError *err);
void xva_v1_appliance_free(XvaV1Appliance *app);

/* True if path is a directory holding ova.xml, or an ova.xml, with an <appliance> root. */
bool xva_v1_detect(const char *path);

/* Reads and parses <path>/ova.xml, or path itself if it is a file; sets app->dir. */
int xva_v1_open(const char *path, XvaV1Appliance **out, XvaError *err);

/*
 * Streams every vdi of app (disk index = position in app->vdis, id = its
 * name) from <app->dir>/<vdi path>/chunk-NNNNNNNNN.gz (or chunkNNNNNNNNN.gz)
 * to sink->write/zero, with disk_begin/disk_end around each. Data beyond
 * the vdi size, a missing chunk in the sequence or corrupt gzip data are
 * errors; data shorter than the size leaves the rest zero (zero callback).
 * sink->ova_xml is not used.
 */
int xva_v1_import(const XvaV1Appliance *app, const XvaImportSink *sink,
                  const XvaImportOptions *opts, XvaImportStats *stats, XvaError *err);

#endif
