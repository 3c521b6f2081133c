/*
 * Legacy XVA version 1 directories (see xva_v1.h): ova.xml parsing with
 * libxml2, following the rules of xapi's former Xva.of_xml, and streaming
 * of gzip chunk files to an XvaImportSink.
 *
 * Must not read outside the given directory, nor create VMs or VDIs: the
 * caller maps the parsed struct to objects.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "formats/tarstream.h"
#include "formats/xva_internal.h"
#include "formats/xva_v1.h"
#include "util/cleanup.h"
#include "util/macros.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

const char *xva_v1_mode_name(XvaV1Mode mode)
{
    return mode == XVA_V1_MODE_RO ? "RO" : "RW";
}

static const char *const variety_names[XVA_V1_VARIETY__MAX] = {
    [XVA_V1_VARIETY_SYSTEM] = "system",       [XVA_V1_VARIETY_EPHEMERAL] = "ephemeral",
    [XVA_V1_VARIETY_USER] = "user",           [XVA_V1_VARIETY_SUSPEND] = "suspend",
    [XVA_V1_VARIETY_CRASHDUMP] = "crashdump", [XVA_V1_VARIETY_METADATA] = "metadata",
};

const char *xva_v1_variety_name(XvaV1Variety v)
{
    return (unsigned)v < XVA_V1_VARIETY__MAX ? variety_names[v] : "?";
}

void xva_v1_appliance_free(XvaV1Appliance *app)
{
    if (!app)
        return;
    free(app->dir);
    free(app->vm_name);
    free(app->label);
    free(app->shortdesc);
    free(app->distrib);
    free(app->distrib_version);
    free(app->kernel_boot_cmdline);
    for (size_t i = 0; i < app->n_vbds; i++) {
        free(app->vbds[i].device);
        free(app->vbds[i].function);
    }
    free(app->vbds);
    for (size_t i = 0; i < app->n_vdis; i++) {
        free(app->vdis[i].name);
        free(app->vdis[i].source);
        free(app->vdis[i].path);
        free(app->vdis[i].type);
    }
    free(app->vdis);
    free(app);
}

/* ----------------------------------------------------------------- parsing */

typedef struct Parse {
    XvaError *err;
    int r;
} Parse;

static int v1_fail(Parse *ps, const char *fmt, ...) HX_PRINTF(2, 3);
static int v1_fail(Parse *ps, const char *fmt, ...)
{
    if (ps->r == 0) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        xva_error_set(ps->err, XVA_ERROR_INVALID, -EBADMSG, "XVA version 1 ova.xml: %s", msg);
        ps->r = -EBADMSG;
    }
    return -EBADMSG;
}

static bool is_elem(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && STREQ((const char *)n->name, name);
}

static xmlNode *first_child(const xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent->children; c; c = c->next) {
        if (is_elem(c, name))
            return c;
    }
    return NULL;
}

/* The attribute as a malloc'd string, or NULL. */
static char *attr(const xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    if (!v)
        return NULL;
    char *s = xstrdup((const char *)v);
    xmlFree(v);
    return s;
}

static char *req_attr(Parse *ps, const xmlNode *n, const char *name)
{
    char *v = attr(n, name);
    if (!v) {
        char esc[80];
        xva_escape_name(esc, sizeof(esc), (const char *)n->name);
        v1_fail(ps, "<%s> has no %s attribute", esc, name);
    }
    return v;
}

/* Text of an element with only text inside, whitespace-trimmed; NULL (and failure) otherwise. */
static char *child_string(Parse *ps, const xmlNode *n)
{
    StrBuf sb = STRBUF_INIT;
    for (xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            strbuf_release(&sb);
            v1_fail(ps, "<%s> must contain text only", (const char *)n->name);
            return NULL;
        }
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
            strbuf_adds(&sb, (const char *)c->content);
    }
    size_t b = 0, e = sb.len;
    while (b < e && strchr(" \t\r\n\f\v", sb.buf[b]))
        b++;
    while (e > b && strchr(" \t\r\n\f\v", sb.buf[e - 1]))
        e--;
    char *s = xstrndup(sb.buf + b, e - b);
    strbuf_release(&sb);
    return s;
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || (s[0] != '-' && (s[0] < '0' || s[0] > '9')))
        return false;
    *out = v;
    return true;
}

/* Rejects sources that leave the directory: absolute, "..", empty. */
static bool path_safe(const char *p)
{
    if (!*p || p[0] == '/')
        return false;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return false;
        s += n + (e ? 1 : 0);
    }
    for (const unsigned char *s = (const unsigned char *)p; *s; s++) {
        if (*s < 0x20)
            return false;
    }
    return true;
}

static int parse_vdi(Parse *ps, const xmlNode *n, XvaV1Vdi *v)
{
    v->name = req_attr(ps, n, "name");
    char *size = req_attr(ps, n, "size");
    v->source = req_attr(ps, n, "source");
    v->type = req_attr(ps, n, "type");
    char *variety = req_attr(ps, n, "variety");
    int64_t sz = 0;
    if (ps->r == 0 && (!parse_i64(size, &sz) || sz < 0 || (uint64_t)sz > XVA_READ_MAX_DISK_SIZE))
        v1_fail(ps, "vdi %s: size '%s' is not a usable byte count", v->name, size);
    v->size = (uint64_t)sz;
    if (ps->r == 0) {
        bool found = false;
        for (int i = 0; i < XVA_V1_VARIETY__MAX; i++) {
            if (strcasecmp(variety, variety_names[i]) == 0) {
                v->variety = (XvaV1Variety)i;
                found = true;
            }
        }
        if (!found)
            v1_fail(ps, "Unknown variety: %s", variety);
    }
    if (ps->r == 0) {
        if (strncmp(v->source, "file://", 7) != 0)
            v1_fail(ps, "vdi %s: VDI source must be a file:// URL (got '%s')", v->name, v->source);
        else if (!path_safe(v->source + 7))
            v1_fail(ps, "vdi %s: source '%s' leaves the XVA directory", v->name, v->source);
        else
            v->path = xstrdup(v->source + 7);
    }
    free(size);
    free(variety);
    return ps->r;
}

static int parse_vm(Parse *ps, const xmlNode *vm, XvaV1Appliance *app, bool keep)
{
    static const char *const required[] = {"label", "shortdesc", "config", "hacks"};
    const xmlNode *el[ARRAY_SIZE(required)];
    for (size_t i = 0; i < ARRAY_SIZE(required); i++) {
        el[i] = first_child(vm, required[i]);
        if (!el[i])
            return v1_fail(ps, "Failed to find element: %s", required[i]);
    }
    char *label = child_string(ps, el[0]);
    char *desc = child_string(ps, el[1]);
    char *mem = req_attr(ps, el[2], "mem_set");
    char *vcpus = req_attr(ps, el[2], "vcpus");
    int64_t memv = 0, vcpuv = 0;
    if (ps->r == 0 && (!parse_i64(mem, &memv) || memv < 0))
        v1_fail(ps, "mem_set '%s' is not a byte count", mem);
    if (ps->r == 0 && !parse_i64(vcpus, &vcpuv))
        v1_fail(ps, "vcpus '%s' is not a number", vcpus);
    char *is_hvm = attr(el[3], "is_hvm");
    char *cmdline = attr(el[3], "kernel_boot_cmdline");

    /* VBDs: every attribute required, the vdi must exist, the mode known. */
    size_t nvbd = 0;
    for (xmlNode *c = vm->children; c; c = c->next)
        nvbd += is_elem(c, "vbd");
    XvaV1Vbd *vbds = xnew0(XvaV1Vbd, nvbd ? nvbd : 1);
    size_t k = 0;
    for (xmlNode *c = vm->children; c && ps->r == 0; c = c->next) {
        if (!is_elem(c, "vbd"))
            continue;
        XvaV1Vbd *b = &vbds[k++];
        b->device = req_attr(ps, c, "device");
        b->function = req_attr(ps, c, "function");
        char *mode = req_attr(ps, c, "mode");
        char *vdi = req_attr(ps, c, "vdi");
        if (ps->r == 0) {
            if (strcasecmp(mode, "rw") == 0 || strcasecmp(mode, "w") == 0)
                b->mode = XVA_V1_MODE_RW;
            else if (strcasecmp(mode, "r") == 0)
                b->mode = XVA_V1_MODE_RO;
            else
                v1_fail(ps, "Unknown mode: %s", mode);
        }
        if (ps->r == 0) {
            b->bootable = strcasecmp(b->function, "root") == 0;
            bool found = false;
            for (size_t i = 0; i < app->n_vdis && !found; i++) {
                if (STREQ(app->vdis[i].name, vdi)) {
                    b->vdi = i;
                    found = true;
                }
            }
            if (!found)
                v1_fail(ps, "vbd %s refers to vdi '%s', which is not defined", b->device, vdi);
        }
        free(mode);
        free(vdi);
    }

    if (ps->r == 0 && keep) {
        app->vm_name = attr(vm, "name");
        app->label = steal_ptr(&label);
        app->shortdesc = steal_ptr(&desc);
        app->mem_set = (uint64_t)memv;
        app->vcpus = vcpuv;
        app->distrib = attr(el[2], "distrib");
        app->distrib_version = attr(el[2], "distrib_version");
        app->is_hvm = is_hvm ? strcasecmp(is_hvm, "true") == 0 : true;
        app->kernel_boot_cmdline = cmdline ? steal_ptr(&cmdline) : xstrdup("");
        app->vbds = steal_ptr(&vbds);
        app->n_vbds = nvbd;
    }
    if (vbds) {
        for (size_t i = 0; i < nvbd; i++) {
            free(vbds[i].device);
            free(vbds[i].function);
        }
        free(vbds);
    }
    free(label);
    free(desc);
    free(mem);
    free(vcpus);
    free(is_hvm);
    free(cmdline);
    return ps->r;
}

int xva_v1_parse(const char *xml, size_t len, XvaV1Appliance **out, XvaError *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
    *out = NULL;
    if (len > XVA_V1_MAX_OVA_XML)
        return xva_error_set(err, XVA_ERROR_LIMIT, -EFBIG,
                             "ova.xml is %zu bytes; at most %u are accepted", len,
                             XVA_V1_MAX_OVA_XML);
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "ova.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *xe = xmlGetLastError();
        char msg[200] = "not well-formed";
        if (xe && xe->message) {
            snprintf(msg, sizeof(msg), "%s", xe->message);
            size_t n = strlen(msg);
            while (n && msg[n - 1] == '\n')
                msg[--n] = '\0';
        }
        return xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                             "ova.xml is not well-formed XML: %s", msg);
    }
    Parse ps = {.err = err};
    XvaV1Appliance *app = xnew0(XvaV1Appliance, 1);
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root || !is_elem(root, "appliance")) {
        char esc[80];
        xva_escape_name(esc, sizeof(esc), root ? (const char *)root->name : "");
        v1_fail(&ps, "expected appliance or vm, found <%s>", esc);
        goto out;
    }
    char *version = attr(root, "version");
    if (!version || !STREQ(version, "0.1")) {
        char esc[80];
        xva_escape_name(esc, sizeof(esc), version ? version : "(none)");
        free(version);
        v1_fail(&ps, "unsupported appliance version '%s' (Version_mismatch: only 0.1 exists)",
                esc);
        goto out;
    }
    free(version);

    size_t nvdi = 0;
    for (xmlNode *c = root->children; c; c = c->next)
        nvdi += is_elem(c, "vdi");
    app->vdis = xnew0(XvaV1Vdi, nvdi ? nvdi : 1);
    for (xmlNode *c = root->children; c && ps.r == 0; c = c->next) {
        if (is_elem(c, "vdi") && parse_vdi(&ps, c, &app->vdis[app->n_vdis++]) < 0)
            goto out;
    }
    for (xmlNode *c = root->children; c && ps.r == 0; c = c->next) {
        if (!is_elem(c, "vm"))
            continue;
        if (parse_vm(&ps, c, app, app->n_vms == 0) < 0)
            goto out;
        app->n_vms++;
    }
    if (app->n_vms == 0)
        v1_fail(&ps, "no <vm> element");

out:
    xmlFreeDoc(doc);
    if (ps.r < 0) {
        xva_v1_appliance_free(app);
        return ps.r;
    }
    *out = app;
    return 0;
}

/* ----------------------------------------------------------------- files */

static int read_small_file(int dirfd, const char *path, size_t max, char **buf, size_t *len)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((uint64_t)st.st_size > max)
        return -EFBIG;
    char *b = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(b);
            return r < 0 ? -errno : -EIO;
        }
        got += (size_t)r;
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    return 0;
}

/* Splits path into the directory and the ova.xml file. */
static int v1_locate(const char *path, char **dir, char **xmlpath)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode)) {
        *dir = xstrdup(path);
        *xmlpath = xasprintf("%s/%s", path, XVA_OVA_XML);
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    const char *slash = strrchr(path, '/');
    *dir = slash ? (slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path)))
                 : xstrdup(".");
    *xmlpath = xstrdup(path);
    return 0;
}

bool xva_v1_detect(const char *path)
{
    _cleanup_free_ char *dir = NULL, *xmlpath = NULL, *buf = NULL;
    size_t len = 0;
    if (v1_locate(path, &dir, &xmlpath) < 0 ||
        read_small_file(AT_FDCWD, xmlpath, XVA_V1_MAX_OVA_XML, &buf, &len) < 0)
        return false;
    xmlDoc *doc = xmlReadMemory(buf, (int)len, "ova.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return false;
    xmlNode *root = xmlDocGetRootElement(doc);
    bool ok = root && is_elem(root, "appliance");
    xmlFreeDoc(doc);
    return ok;
}

int xva_v1_open(const char *path, XvaV1Appliance **out, XvaError *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
    *out = NULL;
    _cleanup_free_ char *dir = NULL, *xmlpath = NULL, *buf = NULL;
    size_t len = 0;
    int r = v1_locate(path, &dir, &xmlpath);
    if (r < 0)
        return xva_error_set(err, XVA_ERROR_IO, r, "cannot open %s: %s", path, strerror(-r));
    r = read_small_file(AT_FDCWD, xmlpath, XVA_V1_MAX_OVA_XML, &buf, &len);
    if (r == -EFBIG)
        return xva_error_set(err, XVA_ERROR_LIMIT, r, "%s is larger than %u bytes", xmlpath,
                             XVA_V1_MAX_OVA_XML);
    if (r < 0)
        return xva_error_set(err, XVA_ERROR_IO, r, "cannot read %s: %s", xmlpath, strerror(-r));
    r = xva_v1_parse(buf, len, out, err);
    if (r < 0)
        return r;
    (*out)->dir = steal_ptr(&dir);
    return 0;
}

/* ----------------------------------------------------------------- import */

typedef struct ChunkRead {
    int fd;
} ChunkRead;

static ssize_t chunk_read(void *ctx, void *buf, size_t len)
{
    ChunkRead *c = ctx;
    for (;;) {
        ssize_t r = read(c->fd, buf, len);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

/* Index of a chunk file name in either spelling, or -1. */
static long chunk_index(const char *name)
{
    const char *p;
    if (strncmp(name, "chunk-", 6) == 0)
        p = name + 6;
    else if (strncmp(name, "chunk", 5) == 0)
        p = name + 5;
    else
        return -1;
    size_t n = strspn(p, "0123456789");
    if (n != 9 || !STREQ(p + n, ".gz"))
        return -1;
    return strtol(p, NULL, 10);
}

static int v1_disk(const XvaV1Appliance *app, size_t index, XvaSinkWriter *w,
                   const XvaImportOptions *opts, uint64_t done_before, uint64_t total)
{
    const XvaV1Vdi *v = &app->vdis[index];
    XvaError *err = w->err;
    if (!STREQ(v->type, "dir-gzipped-chunks"))
        return xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                             "vdi %s has type '%s'; only dir-gzipped-chunks can be read", v->name,
                             v->type);
    _cleanup_free_ char *dirpath = xasprintf("%s/%s", app->dir ? app->dir : ".", v->path);
    _cleanup_close_ int dfd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return xva_error_set(err, XVA_ERROR_IO, -errno,
                             "cannot open the chunk directory %s of vdi %s: %s", dirpath, v->name,
                             strerror(errno));
    const XvaImportSink *sink = w->sink;
    if (sink->disk_begin) {
        int r = sink->disk_begin(sink->ctx, index, v->name, v->size);
        if (r < 0)
            return xva_error_set(err, XVA_ERROR_CALLBACK, r, "starting disk %s failed: %s",
                                 v->name, strerror(-r));
    }

    bool dash = faccessat(dfd, "chunk-000000000.gz", F_OK, 0) == 0;
    uint64_t off = 0;
    long n = 0;
    for (;; n++) {
        if (opts->cancel && atomic_load(opts->cancel))
            return xva_error_set(err, XVA_ERROR_CANCELLED, -ECANCELED, "the import was cancelled");
        char name[32];
        snprintf(name, sizeof(name), dash ? "chunk-%09ld.gz" : "chunk%09ld.gz", n);
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            if (errno == ENOENT)
                break;
            return xva_error_set(err, XVA_ERROR_IO, -errno, "cannot open %s/%s: %s", dirpath,
                                 name, strerror(errno));
        }
        ChunkRead cr = {.fd = fd};
        TarStreamInConfig cfg = {.read = chunk_read,
                                 .read_ctx = &cr,
                                 .compression = TARSTREAM_COMPRESSION_GZIP,
                                 .buffer_size = 1 * MiB,
                                 .cancel = opts->cancel};
        TarStreamIn *in = tarstream_in_new(&cfg);
        int r = 0;
        for (;;) {
            const uint8_t *p;
            ssize_t got = tarstream_in_peek(in, &p, 1 * MiB);
            if (got < 0) {
                const char *msg = "";
                TarStreamErrorKind k = tarstream_in_error(in, &msg);
                r = xva_error_set(err,
                                  k == TARSTREAM_ERROR_COMPRESSION ? XVA_ERROR_COMPRESSION
                                  : k == TARSTREAM_ERROR_CANCELLED ? XVA_ERROR_CANCELLED
                                                                   : XVA_ERROR_IO,
                                  (int)got, "%s/%s: %s", dirpath, name, msg);
                break;
            }
            if (got == 0)
                break;
            if ((uint64_t)got > v->size - off) {
                r = xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                                  "the chunks of vdi %s hold more than its size of %" PRIu64
                                  " bytes (in %s)",
                                  v->name, v->size, name);
                break;
            }
            r = xva_sink_data(w, index, v->name, off, p, (size_t)got);
            if (r < 0)
                break;
            tarstream_in_advance(in, (size_t)got);
            off += (uint64_t)got;
            if (opts->progress)
                opts->progress(opts->progress_ctx, done_before + off, total);
        }
        tarstream_in_free(in);
        if (r < 0)
            return r;
    }

    /* A chunk after a missing one means the directory is incomplete. */
    int dfd2 = dup(dfd);
    DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!d) {
        if (dfd2 >= 0)
            close(dfd2);
        return xva_error_set(err, XVA_ERROR_IO, -errno, "cannot list %s: %s", dirpath,
                             strerror(errno));
    }
    long stray = -1;
    for (struct dirent *e; (e = readdir(d));) {
        long i = chunk_index(e->d_name);
        if (i >= n && (stray < 0 || i < stray))
            stray = i;
    }
    closedir(d);
    if (stray >= 0)
        return xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                             "vdi %s: chunk %ld is missing but chunk %ld exists in %s", v->name,
                             n, stray, dirpath);
    if (n == 0 && v->size > 0)
        return xva_error_set(err, XVA_ERROR_INVALID, -EBADMSG,
                             "vdi %s: no chunk-NNNNNNNNN.gz files in %s", v->name, dirpath);

    int r = xva_sink_zero(w, index, v->name, off, v->size - off);
    if (r == 0)
        r = xva_sink_flush(w, v->name);
    if (r == 0 && sink->disk_end) {
        r = sink->disk_end(sink->ctx, index, v->size);
        if (r < 0)
            r = xva_error_set(err, XVA_ERROR_CALLBACK, r, "finishing disk %s failed: %s",
                              v->name, strerror(-r));
    }
    return r;
}

int xva_v1_import(const XvaV1Appliance *app, const XvaImportSink *sink,
                  const XvaImportOptions *opts_in, XvaImportStats *stats, XvaError *err)
{
    static const XvaImportOptions defaults;
    const XvaImportOptions *opts = opts_in ? opts_in : &defaults;
    if (err)
        memset(err, 0, sizeof(*err));
    XvaImportStats st = {.compression = XVA_COMPRESSION_GZIP};
    if (!sink || !sink->write)
        return xva_error_set(err, XVA_ERROR_ARGUMENT, -EINVAL, "an import needs a write callback");
    XvaSinkWriter w = {.sink = sink, .err = err, .st = &st};
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < app->n_vdis; i++)
        total += app->vdis[i].size;
    int r = 0;
    for (size_t i = 0; i < app->n_vdis && r == 0; i++) {
        r = v1_disk(app, i, &w, opts, done, total);
        done += app->vdis[i].size;
    }
    if (stats)
        *stats = st;
    return r;
}
