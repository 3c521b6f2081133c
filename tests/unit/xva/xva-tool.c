/*
 * xva-tool: a small driver of the XVA container code for tests and
 * benchmarks. It exports raw disk files to an XVA, imports an XVA into raw
 * sparse files, verifies an XVA, and reads legacy version-1 directories.
 * The ova.xml it writes is a minimal stand-in (version header plus VDI and
 * SR objects), enough for its own import to find the disk sizes; it is not
 * what the daemon writes.
 *
 *   xva-tool export [--gzip|--zstd] [--level N] [--sha1] [--keepalive-ms N]
 *                   [--ids ID,ID,...] [--mtime T] [--no-threads] [--no-map] [--stats]
 *                   [--progress] OUT DISK...
 *     (disks are mmap'ed and handed over with the zero-copy map callback
 *     unless --no-map; then they are read with pread)
 *   xva-tool export-raw [--xxhash] [--gzip|--zstd] [--stats] OUT DISK
 *   xva-tool import [--force] [--discover] [--no-threads] [--stats] IN OUTDIR
 *   xva-tool import-raw [--force] [--stats] IN SIZE OUTFILE
 *   xva-tool verify IN
 *   xva-tool v1 PATH OUTDIR
 *
 * OUT or IN "-" means stdout or stdin. Imported disks are OUTDIR/<id>.img.
 * Exit status 0 on success, 1 on an XVA error (printed as
 * "xva-tool: error [kind]: message"), 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "formats/xva.h"
#include "formats/xva_v1.h"
#include "util/cleanup.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

static bool opt_stats, opt_progress;

static void HX_NORETURN usage(void)
{
    fprintf(stderr,
            "usage: xva-tool export [--gzip|--zstd] [--level N] [--sha1] [--keepalive-ms N]\n"
            "                       [--ids ID,...] [--mtime T] [--no-threads] [--no-map] [--stats]\n"
            "                       [--progress] OUT DISK...\n"
            "       xva-tool export-raw [--xxhash] [--gzip|--zstd] [--stats] OUT DISK\n"
            "       xva-tool import [--force] [--discover] [--no-threads] [--stats] IN OUTDIR\n"
            "       xva-tool import-raw [--force] [--stats] IN SIZE OUTFILE\n"
            "       xva-tool verify IN\n"
            "       xva-tool v1 PATH OUTDIR\n");
    exit(2);
}

static int fail(const XvaError *e)
{
    fprintf(stderr, "xva-tool: error [%s]: %s\n", xva_error_kind_name(e->kind), e->message);
    if (e->kind == XVA_ERROR_UNEXPECTED_FILE)
        fprintf(stderr, "xva-tool: expected=%s found=%s\n", e->expected, e->found);
    return 1;
}

static void progress_cb(void *ctx, uint64_t done, uint64_t total)
{
    static int last = -1;
    int pct = total ? (int)(done * 100 / total) : 0;
    if (pct != last) {
        fprintf(stderr, "\rprogress %3d%%", pct);
        if (pct == 100)
            fputc('\n', stderr);
        last = pct;
    }
}

/* ----------------------------------------------------------------- sources */

typedef struct RawSource {
    int fd;
    uint64_t size;
    const uint8_t *base; /* read-only mapping of the whole file, or NULL */
} RawSource;

/* Zero copy: the block is hashed and written straight from the page cache. */
static ssize_t raw_map(void *ctx, uint64_t offset, size_t len, const void **ptr)
{
    RawSource *s = ctx;
    if (!s->base || offset >= s->size)
        return 0;
    if (offset % (8 * MiB) == 0 && offset + 8 * MiB < s->size)
        madvise((void *)(uintptr_t)(s->base + offset + 8 * MiB),
                (size_t)MIN(8 * MiB, s->size - offset - 8 * MiB), MADV_WILLNEED);
    *ptr = s->base + offset;
    return (ssize_t)MIN((uint64_t)len, s->size - offset);
}

static int raw_read(void *ctx, uint64_t offset, size_t len, void *buf)
{
    RawSource *s = ctx;
    size_t got = 0;
    /* Ask for the next few MiB early: cheap when cached, a deep queue when not. */
    if (offset % (8 * MiB) == 0)
        posix_fadvise(s->fd, (off_t)(offset + 8 * MiB), 8 * MiB, POSIX_FADV_WILLNEED);
    while (got < len) {
        ssize_t r = pread(s->fd, (char *)buf + got, len - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0) { /* beyond EOF: zeros */
            memset((char *)buf + got, 0, len - got);
            break;
        }
        got += (size_t)r;
    }
    return 0;
}

static int raw_block_status(void *ctx, uint64_t offset, uint64_t len, bool *allocated,
                            uint64_t *run)
{
    RawSource *s = ctx;
    off_t d = lseek(s->fd, (off_t)offset, SEEK_DATA);
    if (d < 0) {
        if (errno != ENXIO) { /* no SEEK_DATA here: say allocated */
            *allocated = true;
            *run = len;
            return 0;
        }
        *allocated = false;
        *run = len;
        return 0;
    }
    if ((uint64_t)d > offset) {
        *allocated = false;
        *run = MIN(len, (uint64_t)d - offset);
        return 0;
    }
    off_t h = lseek(s->fd, (off_t)offset, SEEK_HOLE);
    *allocated = true;
    *run = h < 0 ? len : MIN(len, (uint64_t)h - offset);
    if (*run == 0)
        *run = len;
    return 0;
}

static int open_out(const char *path)
{
    if (STREQ(path, "-"))
        return STDOUT_FILENO;
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

static int open_in(const char *path)
{
    if (STREQ(path, "-"))
        return STDIN_FILENO;
    return open(path, O_RDONLY | O_CLOEXEC);
}

static void print_export_stats(const XvaExportStats *st)
{
    if (!opt_stats)
        return;
    fprintf(stderr,
            "blocks=%" PRIu64 "\nblocks_zero=%" PRIu64 "\nkeepalives=%" PRIu64
            "\nbytes_read=%" PRIu64 "\nbytes_tar=%" PRIu64 "\nbytes_written=%" PRIu64 "\n",
            st->blocks, st->blocks_zero, st->keepalives, st->bytes_read, st->bytes_tar,
            st->bytes_written);
}

static void print_import_stats(const XvaImportStats *st)
{
    static const char *const comp[] = {"none", "gzip", "zstd"};
    if (!opt_stats)
        return;
    fprintf(stderr,
            "compression=%s\nblocks=%" PRIu64 "\nkeepalives=%" PRIu64
            "\nchecksums_xxhash=%" PRIu64 "\nchecksums_sha1=%" PRIu64
            "\nchecksum_mismatches=%" PRIu64 "\nbytes_data=%" PRIu64 "\nbytes_zero=%" PRIu64
            "\nbytes_in=%" PRIu64 "\n",
            comp[st->compression], st->blocks, st->keepalives, st->checksums_xxhash,
            st->checksums_sha1, st->checksum_mismatches, st->bytes_data, st->bytes_zero,
            st->bytes_in);
}

/* A stand-in ova.xml in xapi's encoding: version header, one VDI per disk, one SR. */
static char *make_ova_xml(XvaExportDisk *disks, size_t n, char **names, int64_t mtime)
{
    StrBuf sb = STRBUF_INIT;
    strbuf_adds(&sb, "<value><struct><member><name>version</name><value><struct>"
                     "<member><name>hostname</name><value>xva-tool</value></member>"
                     "<member><name>date</name><value>1970-01-01</value></member>"
                     "<member><name>product_version</name><value>0.1.0</value></member>"
                     "<member><name>product_brand</name><value>hyperxe</value></member>"
                     "<member><name>build_number</name><value>0</value></member>"
                     "<member><name>xapi_major</name><value>1</value></member>"
                     "<member><name>xapi_minor</name><value>0</value></member>"
                     "<member><name>export_vsn</name><value>2</value></member>"
                     "</struct></value></member><member><name>objects</name><value><array><data>");
    for (size_t i = 0; i < n; i++) {
        strbuf_addf(&sb,
                    "<value><struct><member><name>class</name><value>VDI</value></member>"
                    "<member><name>id</name><value>%s</value></member>"
                    "<member><name>snapshot</name><value><struct>"
                    "<member><name>name_label</name><value>",
                    disks[i].id);
        strbuf_add_xml_escaped(&sb, names[i]);
        strbuf_addf(&sb,
                    "</value></member>"
                    "<member><name>virtual_size</name><value>%" PRIu64 "</value></member>"
                    "<member><name>type</name><value>user</value></member>"
                    "<member><name>SR</name><value>Ref:SR</value></member>"
                    "</struct></value></member></struct></value>",
                    disks[i].size);
    }
    strbuf_addf(&sb,
                "<value><struct><member><name>class</name><value>SR</value></member>"
                "<member><name>id</name><value>Ref:SR</value></member>"
                "<member><name>snapshot</name><value><struct>"
                "<member><name>content_type</name><value>user</value></member>"
                "</struct></value></member></struct></value>"
                "</data></array></value></member></struct></value>");
    (void)mtime;
    return strbuf_detach(&sb, NULL);
}

static int cmd_export(int argc, char **argv, bool raw)
{
    XvaExportOptions o = {0};
    const char *ids = NULL;
    bool no_map = false;
    static const struct option lo[] = {
        {"gzip", no_argument, NULL, 'g'},    {"zstd", no_argument, NULL, 'z'},
        {"level", required_argument, NULL, 'l'}, {"sha1", no_argument, NULL, 's'},
        {"xxhash", no_argument, NULL, 'x'},  {"keepalive-ms", required_argument, NULL, 'k'},
        {"ids", required_argument, NULL, 'i'}, {"mtime", required_argument, NULL, 'm'},
        {"stats", no_argument, NULL, 'S'},   {"progress", no_argument, NULL, 'P'},
        {"workers", required_argument, NULL, 'w'}, {"no-threads", no_argument, NULL, 'n'},
        {"no-map", no_argument, NULL, 'M'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'g': o.compression = XVA_COMPRESSION_GZIP; break;
        case 'z': o.compression = XVA_COMPRESSION_ZSTD; break;
        case 'l': o.level = atoi(optarg); break;
        case 's': o.checksum = XVA_CHECKSUM_SHA1; break;
        case 'x': o.checksum = XVA_CHECKSUM_XXHASH; break;
        case 'k': o.keepalive_ms = (unsigned)atoi(optarg); break;
        case 'i': ids = optarg; break;
        case 'm': o.mtime = atoll(optarg); break;
        case 'S': opt_stats = true; break;
        case 'P': opt_progress = true; break;
        case 'w': o.zstd_workers = (unsigned)atoi(optarg); break;
        case 'n': o.no_threads = true; break;
        case 'M': no_map = true; break;
        default: usage();
        }
    }
    if (argc - optind < 2 || (raw && argc - optind != 2))
        usage();
    if (opt_progress)
        o.progress = progress_cb;
    const char *outp = argv[optind];
    size_t n = (size_t)(argc - optind - 1);
    XvaExportDisk *disks = xnew0(XvaExportDisk, n);
    RawSource *src = xnew0(RawSource, n);
    char **names = xnew0(char *, n);
    char **idv = xnew0(char *, n);
    _cleanup_free_ char *idcopy = ids ? xstrdup(ids) : NULL;
    char *save = NULL, *tok = idcopy ? strtok_r(idcopy, ",", &save) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *path = argv[optind + 1 + i];
        src[i].fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (src[i].fd < 0 || fstat(src[i].fd, &st) < 0) {
            fprintf(stderr, "xva-tool: %s: %s\n", path, strerror(errno));
            return 2;
        }
        posix_fadvise(src[i].fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        src[i].size = (uint64_t)st.st_size;
        if (!no_map && src[i].size) {
            void *m = mmap(NULL, (size_t)src[i].size, PROT_READ, MAP_SHARED, src[i].fd, 0);
            if (m != MAP_FAILED) {
                madvise(m, (size_t)src[i].size, MADV_SEQUENTIAL);
                src[i].base = m;
            }
        }
        if (tok) {
            idv[i] = xstrdup(tok);
            tok = strtok_r(NULL, ",", &save);
        } else {
            idv[i] = xasprintf("Ref:%zu", i + 1);
        }
        const char *base = strrchr(path, '/');
        names[i] = xstrdup(base ? base + 1 : path);
        disks[i] = (XvaExportDisk){.id = idv[i],
                                   .size = src[i].size,
                                   .source = {.ctx = &src[i], .read = raw_read,
                                              .block_status = raw_block_status,
                                              .map = raw_map}};
    }
    int fd = open_out(outp);
    if (fd < 0) {
        fprintf(stderr, "xva-tool: %s: %s\n", outp, strerror(errno));
        return 2;
    }
    XvaExportStats st;
    XvaError err;
    int r;
    if (raw) {
        r = xva_export_raw_tar(fd, &disks[0], &o, &st, &err);
    } else {
        _cleanup_free_ char *xml = make_ova_xml(disks, n, names, o.mtime);
        r = xva_export(fd, xml, strlen(xml), disks, n, &o, &st, &err);
    }
    if (fd != STDOUT_FILENO && close(fd) < 0 && r == 0) {
        fprintf(stderr, "xva-tool: %s: %s\n", outp, strerror(errno));
        r = -errno;
    }
    for (size_t i = 0; i < n; i++) {
        if (src[i].base)
            munmap((void *)(uintptr_t)src[i].base, (size_t)src[i].size);
        close(src[i].fd);
        free(names[i]);
        free(idv[i]);
    }
    free(names);
    free(idv);
    free(src);
    free(disks);
    if (r < 0)
        return fail(&err);
    print_export_stats(&st);
    return 0;
}

/* ----------------------------------------------------------------- import */

typedef struct ImportCtx {
    const char *outdir;
    int *fds;
    size_t nfds;
    char **ids;
    bool plan_from_xml;
} ImportCtx;

static char *xml_text(xmlNode *n)
{
    xmlChar *c = xmlNodeGetContent(n);
    char *s = xstrdup(c ? (const char *)c : "");
    xmlFree(c);
    return s;
}

/* The <value> of the member called name in a <struct>, or NULL. */
static xmlNode *struct_member(xmlNode *st, const char *name)
{
    for (xmlNode *m = st ? st->children : NULL; m; m = m->next) {
        if (m->type != XML_ELEMENT_NODE || !STREQ((const char *)m->name, "member"))
            continue;
        xmlNode *nm = NULL, *val = NULL;
        for (xmlNode *k = m->children; k; k = k->next) {
            if (k->type != XML_ELEMENT_NODE)
                continue;
            if (STREQ((const char *)k->name, "name"))
                nm = k;
            else if (STREQ((const char *)k->name, "value"))
                val = k;
        }
        if (nm && val) {
            _cleanup_free_ char *t = xml_text(nm);
            if (STREQ(t, name))
                return val;
        }
    }
    return NULL;
}

static xmlNode *child_elem(xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && STREQ((const char *)c->name, name))
            return c;
    }
    return NULL;
}

/* Plans every VDI object of ova.xml (id + snapshot.virtual_size). */
static int plan_from_ova(const char *xml, size_t len, XvaPlan *plan)
{
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "ova.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                    XML_PARSE_NOBLANKS);
    if (!doc)
        return -EINVAL;
    int r = 0;
    xmlNode *top = child_elem(xmlDocGetRootElement(doc), "struct");
    xmlNode *objs = child_elem(child_elem(struct_member(top, "objects"), "array"), "data");
    for (xmlNode *v = objs ? objs->children : NULL; v && r >= 0; v = v->next) {
        if (v->type != XML_ELEMENT_NODE)
            continue;
        xmlNode *st = child_elem(v, "struct");
        xmlNode *cls = struct_member(st, "class"), *id = struct_member(st, "id");
        xmlNode *snap = child_elem(struct_member(st, "snapshot"), "struct");
        if (!cls || !id || !snap)
            continue;
        _cleanup_free_ char *c = xml_text(cls), *i = xml_text(id);
        if (!STREQ(c, "VDI"))
            continue;
        xmlNode *vs = struct_member(snap, "virtual_size");
        if (!vs) {
            r = -EINVAL;
            break;
        }
        _cleanup_free_ char *s = xml_text(vs);
        char *end;
        errno = 0;
        unsigned long long size = strtoull(s, &end, 10);
        if (errno || *end || end == s) {
            r = -EINVAL;
            break;
        }
        r = xva_plan_add_disk(plan, i, size);
    }
    xmlFreeDoc(doc);
    return r < 0 ? r : 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (write(fd, data, len) != (ssize_t)len)
        return -EIO;
    return 0;
}

static int imp_ova_xml(void *ctx, const char *xml, size_t len, XvaPlan *plan)
{
    ImportCtx *c = ctx;
    _cleanup_free_ char *p = xasprintf("%s/ova.xml", c->outdir);
    int r = write_file(p, xml, len);
    if (r < 0)
        return r;
    return c->plan_from_xml ? plan_from_ova(xml, len, plan) : 0;
}

static int imp_disk_begin(void *ctx, size_t disk, const char *id, uint64_t size)
{
    ImportCtx *c = ctx;
    if (disk >= c->nfds) {
        size_t old = c->nfds;
        c->nfds = disk + 1;
        c->fds = xreallocarray(c->fds, c->nfds, sizeof(int));
        c->ids = xreallocarray(c->ids, c->nfds, sizeof(char *));
        for (size_t i = old; i < c->nfds; i++) {
            c->fds[i] = -1;
            c->ids[i] = NULL;
        }
    }
    _cleanup_free_ char *p = xasprintf("%s/%s.img", c->outdir, id);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (size && ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return -errno;
    }
    c->fds[disk] = fd;
    free(c->ids[disk]);
    c->ids[disk] = xstrdup(id);
    return 0;
}

static int imp_write(void *ctx, size_t disk, uint64_t offset, const void *buf, size_t len)
{
    ImportCtx *c = ctx;
    if (disk >= c->nfds || c->fds[disk] < 0)
        return -EBADF;
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(c->fds[disk], (const char *)buf + done, len - done,
                           (off_t)(offset + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        done += (size_t)r;
    }
    return 0;
}

static int imp_zero(void *ctx, size_t disk, uint64_t offset, uint64_t len)
{
    return 0; /* the files are new and sparse: holes read as zeros */
}

static int imp_disk_end(void *ctx, size_t disk, uint64_t size)
{
    ImportCtx *c = ctx;
    if (ftruncate(c->fds[disk], (off_t)size) < 0)
        return -errno;
    int r = close(c->fds[disk]) < 0 ? -errno : 0;
    c->fds[disk] = -1;
    return r;
}

static void import_ctx_release(ImportCtx *c)
{
    for (size_t i = 0; i < c->nfds; i++) {
        if (c->fds[i] >= 0)
            close(c->fds[i]);
        free(c->ids[i]);
    }
    free(c->fds);
    free(c->ids);
}

static int cmd_import(int argc, char **argv, bool raw)
{
    XvaImportOptions o = {0};
    bool discover = false;
    static const struct option lo[] = {{"force", no_argument, NULL, 'f'},
                                       {"discover", no_argument, NULL, 'd'},
                                       {"no-threads", no_argument, NULL, 'n'},
                                       {"stats", no_argument, NULL, 'S'},
                                       {"progress", no_argument, NULL, 'P'},
                                       {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'f': o.force = true; break;
        case 'd': discover = true; break;
        case 'n': o.no_threads = true; break;
        case 'S': opt_stats = true; break;
        case 'P': opt_progress = true; break;
        default: usage();
        }
    }
    if (argc - optind != (raw ? 3 : 2))
        usage();
    if (opt_progress)
        o.progress = progress_cb;
    int fd = open_in(argv[optind]);
    if (fd < 0) {
        fprintf(stderr, "xva-tool: %s: %s\n", argv[optind], strerror(errno));
        return 2;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    ImportCtx ctx = {.plan_from_xml = !discover};
    XvaImportSink sink = {.ctx = &ctx,
                          .ova_xml = imp_ova_xml,
                          .disk_begin = imp_disk_begin,
                          .write = imp_write,
                          .zero = imp_zero,
                          .disk_end = imp_disk_end};
    XvaInput in = {.fd = fd};
    XvaError err;
    XvaImportStats st = {0};
    int r;
    if (raw) {
        char *end;
        unsigned long long size = strtoull(argv[optind + 1], &end, 10);
        if (*end)
            usage();
        /* Write straight to OUTFILE: use its directory and name it by hand. */
        ctx.outdir = ".";
        int ofd = open(argv[optind + 2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ofd < 0 || ftruncate(ofd, (off_t)size) < 0) {
            fprintf(stderr, "xva-tool: %s: %s\n", argv[optind + 2], strerror(errno));
            return 2;
        }
        ctx.fds = xnew0(int, 1);
        ctx.ids = xnew0(char *, 1);
        ctx.fds[0] = ofd;
        ctx.nfds = 1;
        sink.disk_begin = NULL;
        r = xva_import_raw_tar(&in, size, &sink, &o, &st, &err);
    } else {
        ctx.outdir = argv[optind + 1];
        if (mkdir(ctx.outdir, 0755) < 0 && errno != EEXIST) {
            fprintf(stderr, "xva-tool: %s: %s\n", ctx.outdir, strerror(errno));
            return 2;
        }
        if (discover) {
            XvaVerifyReport rep;
            r = xva_verify(&in, &sink, &o, &rep, &err);
            if (r == 0)
                xva_verify_report_release(&rep);
        } else {
            r = xva_import(&in, &sink, &o, &st, &err);
        }
    }
    import_ctx_release(&ctx);
    if (fd != STDIN_FILENO)
        close(fd);
    if (r < 0)
        return fail(&err);
    print_import_stats(&st);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    if (argc != 2)
        usage();
    int fd = open_in(argv[1]);
    if (fd < 0) {
        fprintf(stderr, "xva-tool: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    XvaInput in = {.fd = fd};
    XvaVerifyReport rep;
    XvaError err;
    int r = xva_verify(&in, NULL, NULL, &rep, &err);
    if (fd != STDIN_FILENO)
        close(fd);
    if (r < 0)
        return fail(&err);
    static const char *const comp[] = {"none", "gzip", "zstd"};
    printf("compression=%s\nova_xml=%zu\nchecksums=%" PRIu64 "\ndisks=%zu\n",
           comp[rep.compression], rep.ova_xml_len, rep.checksums, rep.n_disks);
    for (size_t i = 0; i < rep.n_disks; i++)
        printf("disk %s size=%" PRIu64 " blocks=%" PRIu64 "\n", rep.disks[i].id,
               rep.disks[i].size, rep.disks[i].blocks);
    xva_verify_report_release(&rep);
    return 0;
}

static int cmd_v1(int argc, char **argv)
{
    if (argc != 3)
        usage();
    XvaV1Appliance *app;
    XvaError err;
    if (xva_v1_open(argv[1], &app, &err) < 0)
        return fail(&err);
    printf("vm_name=%s\nlabel=%s\nshortdesc=%s\nmem_set=%" PRIu64 "\nvcpus=%" PRId64
           "\ndistrib=%s\ndistrib_version=%s\nis_hvm=%s\nkernel_boot_cmdline=%s\nvms=%zu\n",
           app->vm_name ? app->vm_name : "", app->label, app->shortdesc, app->mem_set,
           app->vcpus, app->distrib ? app->distrib : "",
           app->distrib_version ? app->distrib_version : "", app->is_hvm ? "true" : "false",
           app->kernel_boot_cmdline, app->n_vms);
    for (size_t i = 0; i < app->n_vbds; i++) {
        const XvaV1Vbd *b = &app->vbds[i];
        printf("vbd device=%s function=%s bootable=%s mode=%s vdi=%s\n", b->device, b->function,
               b->bootable ? "true" : "false", xva_v1_mode_name(b->mode),
               app->vdis[b->vdi].name);
    }
    for (size_t i = 0; i < app->n_vdis; i++) {
        const XvaV1Vdi *v = &app->vdis[i];
        printf("vdi name=%s size=%" PRIu64 " source=%s type=%s variety=%s\n", v->name, v->size,
               v->source, v->type, xva_v1_variety_name(v->variety));
    }
    fflush(stdout);
    if (mkdir(argv[2], 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "xva-tool: %s: %s\n", argv[2], strerror(errno));
        xva_v1_appliance_free(app);
        return 2;
    }
    ImportCtx ctx = {.outdir = argv[2]};
    XvaImportSink sink = {.ctx = &ctx,
                          .disk_begin = imp_disk_begin,
                          .write = imp_write,
                          .zero = imp_zero,
                          .disk_end = imp_disk_end};
    XvaImportStats st;
    int r = xva_v1_import(app, &sink, NULL, &st, &err);
    import_ctx_release(&ctx);
    xva_v1_appliance_free(app);
    if (r < 0)
        return fail(&err);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (STREQ(cmd, "export"))
        return cmd_export(argc, argv, false);
    if (STREQ(cmd, "export-raw"))
        return cmd_export(argc, argv, true);
    if (STREQ(cmd, "import"))
        return cmd_import(argc, argv, false);
    if (STREQ(cmd, "import-raw"))
        return cmd_import(argc, argv, true);
    if (STREQ(cmd, "verify"))
        return cmd_verify(argc, argv);
    if (STREQ(cmd, "v1"))
        return cmd_v1(argc, argv);
    usage();
}
