/*
 * hyperxe-img: a small command-line front end to the format layer, for
 * tests, benchmarks and people: info, map, convert and create. It only
 * parses arguments and prints; all work is done through image.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/image.h"
#include "util/xalloc.h"
#include "util/banned.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hyperxe-img info [-f FMT] [OPEN-OPTIONS] FILE\n"
            "       hyperxe-img map [-f FMT] [--top-only] [OPEN-OPTIONS] FILE\n"
            "       hyperxe-img convert [-f FMT] -O FMT [-o OPT=V,...] [-p] [--stats]\n"
            "                   [--top-only] [OPEN-OPTIONS] SRC DST|-\n"
            "       hyperxe-img create -O FMT [-o OPT=V,...] FILE [SIZE]\n"
            "formats: raw, qcow2, vhd (or vpc), vmdk\n"
            "open options: --parent PATH, --parent-format FMT, --no-backing, --lenient\n"
            "              (ignore VHD checksum mismatches), --confine\n"
            "write options (-o): subformat=dynamic|fixed|streamOptimized|monolithicSparse,\n"
            "  force_size=on|off, cluster_size=N, backing_file=F, backing_fmt=FMT,\n"
            "  compression_level=N, threads=N, adapter_type=ide|lsilogic|buslogic\n");
}

static int die(const char *fmt, const char *arg)
{
    fprintf(stderr, "hyperxe-img: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 1;
}

static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    uint64_t mul = 1;
    switch (*end) {
    case 0:
        break;
    case 'k':
    case 'K':
        mul = KiB;
        end++;
        break;
    case 'M':
        mul = MiB;
        end++;
        break;
    case 'G':
        mul = GiB;
        end++;
        break;
    case 'T':
        mul = GiB * 1024;
        end++;
        break;
    default:
        return false;
    }
    if (*end || (v && mul > UINT64_MAX / v))
        return false;
    *out = v * mul;
    return true;
}

static bool parse_write_opts(char *s, ImgWriteOptions *wo)
{
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            return false;
        *eq = 0;
        const char *k = tok, *v = eq + 1;
        uint64_t n;
        if (STREQ(k, "subformat")) {
            wo->subformat = img_subformat_from_name(v);
            if (wo->subformat == IMG_SUBFORMAT__MAX)
                return false;
        } else if (STREQ(k, "force_size")) {
            wo->vhd_force_size = STREQ(v, "on") || STREQ(v, "true") || STREQ(v, "1");
        } else if (STREQ(k, "cluster_size")) {
            if (!parse_size(v, &n) || n > UINT32_MAX)
                return false;
            wo->cluster_size = (uint32_t)n;
        } else if (STREQ(k, "backing_file")) {
            wo->backing_file = v;
        } else if (STREQ(k, "backing_fmt")) {
            wo->backing_format = v;
        } else if (STREQ(k, "compression_level")) {
            wo->compression_level = atoi(v);
        } else if (STREQ(k, "threads")) {
            wo->threads = (unsigned)atoi(v);
        } else if (STREQ(k, "adapter_type")) {
            wo->vmdk_adapter_type = v;
        } else {
            return false;
        }
    }
    return true;
}

static void progress_cb(void *opaque, uint64_t done, uint64_t total)
{
    int *last = opaque;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct != *last) {
        *last = pct;
        fprintf(stderr, "\r    (%d/100%%)", pct);
        if (pct == 100)
            fprintf(stderr, "\n");
    }
}

enum { OPT_PARENT = 256, OPT_PARENT_FMT, OPT_NO_BACKING, OPT_LENIENT, OPT_CONFINE, OPT_TOP,
       OPT_STATS };

static const struct option long_opts[] = {
    {"parent", required_argument, NULL, OPT_PARENT},
    {"parent-format", required_argument, NULL, OPT_PARENT_FMT},
    {"no-backing", no_argument, NULL, OPT_NO_BACKING},
    {"lenient", no_argument, NULL, OPT_LENIENT},
    {"confine", no_argument, NULL, OPT_CONFINE},
    {"top-only", no_argument, NULL, OPT_TOP},
    {"stats", no_argument, NULL, OPT_STATS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int cmd_info(ImgReader *r)
{
    int depth = 0;
    for (ImgReader *p = r; p; p = img_reader_parent(p), depth++) {
        const char *ind = depth ? "  " : "";
        if (depth)
            printf("parent:\n");
        printf("%simage: %s\n", ind, img_reader_path(p));
        printf("%sformat: %s\n", ind, img_format_name(img_reader_format(p)));
        printf("%ssubformat: %s\n", ind, img_reader_subformat(p));
        printf("%svirtual size: %" PRIu64 "\n", ind, img_reader_virtual_size(p));
        printf("%sallocated: %" PRIu64 "\n", ind, img_reader_allocated_bytes(p));
        if (img_reader_parent_name(p))
            printf("%sparent name: %s\n", ind, img_reader_parent_name(p));
    }
    return 0;
}

static int cmd_map(ImgReader *r, unsigned flags)
{
    uint64_t size = img_reader_virtual_size(r), off = 0;
    ImgExtent cur = {0, 0, IMG_EXTENT__MAX};
    ImgError err;
    while (off < size) {
        ImgExtent e;
        if (img_block_status(r, off, size - off, flags, &e, &err) < 0)
            return die("%s", err.msg);
        if (cur.length && cur.kind == e.kind) {
            cur.length += e.length;
        } else {
            if (cur.length)
                printf("%" PRIu64 " %" PRIu64 " %s\n", cur.offset, cur.length,
                       img_extent_kind_name(cur.kind));
            cur = e;
        }
        off += e.length;
    }
    if (cur.length)
        printf("%" PRIu64 " %" PRIu64 " %s\n", cur.offset, cur.length,
               img_extent_kind_name(cur.kind));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (STREQ(cmd, "-h") || STREQ(cmd, "--help") || STREQ(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    ImgOpenOptions oo = {0};
    ImgWriteOptions wo;
    img_write_options_init(&wo);
    ImgFormat out_fmt = IMG_FORMAT__MAX;
    bool progress = false, stats = false, top_only = false;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "f:O:o:ph", long_opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            oo.format = img_format_from_name(optarg);
            if (oo.format == IMG_FORMAT__MAX)
                return die("unknown format '%s'", optarg);
            break;
        case 'O':
            out_fmt = img_format_from_name(optarg);
            if (out_fmt == IMG_FORMAT__MAX || out_fmt == IMG_FORMAT_PROBE)
                return die("unknown output format '%s'", optarg);
            break;
        case 'o':
            if (!parse_write_opts(optarg, &wo))
                return die("invalid -o option in '%s'", optarg);
            break;
        case 'p':
            progress = true;
            break;
        case OPT_PARENT:
            oo.parent = optarg;
            break;
        case OPT_PARENT_FMT:
            oo.parent_format = img_format_from_name(optarg);
            if (oo.parent_format == IMG_FORMAT__MAX)
                return die("unknown format '%s'", optarg);
            break;
        case OPT_NO_BACKING:
            oo.flags |= IMG_OPEN_NO_BACKING;
            break;
        case OPT_LENIENT:
            oo.flags |= IMG_OPEN_IGNORE_CHECKSUMS;
            break;
        case OPT_CONFINE:
            oo.flags |= IMG_OPEN_CONFINE;
            break;
        case OPT_TOP:
            top_only = true;
            break;
        case OPT_STATS:
            stats = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int nargs = argc - optind;
    ImgError err = {0};

    if (STREQ(cmd, "create")) {
        uint64_t size = 0;
        if (nargs < 1 || nargs > 2 || out_fmt == IMG_FORMAT__MAX ||
            (nargs == 1 && !wo.backing_file))
            return die("%s", "create needs -O FMT, a file and a size");
        if (nargs == 2 && !parse_size(argv[optind + 1], &size))
            return die("invalid size '%s'", argv[optind + 1]);
        if (img_create(argv[optind], out_fmt, size, &wo, &err) < 0)
            return die("%s", err.msg);
        return 0;
    }

    if (!STREQ(cmd, "info") && !STREQ(cmd, "map") && !STREQ(cmd, "convert"))
        return die("unknown command '%s'", cmd);
    if (nargs != (STREQ(cmd, "convert") ? 2 : 1)) {
        usage(stderr);
        return 2;
    }
    _cleanup_img_reader_ ImgReader *r = img_open(argv[optind], &oo, &err);
    if (!r)
        return die("%s", err.msg);
    if (STREQ(cmd, "info"))
        return cmd_info(r);
    if (STREQ(cmd, "map"))
        return cmd_map(r, top_only ? IMG_STATUS_TOP_ONLY : 0);

    if (out_fmt == IMG_FORMAT__MAX)
        return die("%s", "convert needs -O FMT");
    const char *dst = argv[optind + 1];
    int fd = 1;
    struct stat dst_st;
    if (!STREQ(dst, "-") && stat(dst, &dst_st) == 0) {
        for (ImgReader *p = r; p; p = img_reader_parent(p)) {
            struct stat st;
            if (stat(img_reader_path(p), &st) == 0 && st.st_dev == dst_st.st_dev &&
                st.st_ino == dst_st.st_ino)
                return die("%s is the source image (or one of its parents); refusing to "
                           "overwrite it",
                           dst);
        }
    }
    if (!STREQ(dst, "-")) {
        fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "hyperxe-img: cannot create %s: %s\n", dst, strerror(errno));
            return 1;
        }
    }
    int last = -1;
    ImgProgress pr = {.fn = progress ? progress_cb : NULL, .opaque = &last};
    ImgSource src;
    img_source_from_reader(&src, r, top_only);
    int ret = img_write(&src, out_fmt, &wo, fd, &pr, &err);
    if (ret == 0 && fd != 1 && close(fd) < 0) {
        ret = -errno;
        snprintf(err.msg, sizeof(err.msg), "closing %s: %s", dst, strerror(errno));
    }
    if (stats) {
        ImgReadStats st;
        img_reader_stats(r, &st);
        fprintf(stderr, "read-bytes: %" PRIu64 "\nread-calls: %" PRIu64 "\n", st.bytes,
                st.calls);
    }
    if (ret < 0) {
        if (fd != 1)
            unlink(dst);
        return die("%s", err.msg);
    }
    return 0;
}
