/*
 * xe commands that move whole VMs in and out: vm-export, template-export,
 * snapshot-export-to-template, vm-import (XVA files, version-1 appliance
 * directories, VHD and VMDK disk images, and URLs the server fetches), and
 * task-cancel.
 *
 * xe is a thick client: it talks to the server's HTTP handlers (/export,
 * /export_metadata, /import, /import_image) directly with libcurl, so the
 * file goes between this machine and the server without ever being stored
 * on the server's disk. What needs reading files here (a version-1
 * directory, a disk image and its parents or extents) is read with the
 * formats layer and streamed as an XVA or a raw VDI tar. As root on the
 * server's unix socket, xe hands an XVA file itself to the server instead
 * (transfer.h: xc_fd_get_file, xc_fd_put_file), which then writes or reads
 * it directly: no byte crosses the socket. A progress bar is
 * drawn on a terminal; a task cancelled elsewhere (xe task-cancel) stops
 * the transfer.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "client/transfer.h"
#include "client/upload.h"
#include "formats/image.h"
#include "formats/xva.h"
#include "formats/xva_v1.h"
#include "model/wire.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *esc(const char *s)
{
    char *e = curl_easy_escape(NULL, s ? s : "", 0);
    char *r = xstrdup(e ? e : "");
    curl_free(e);
    return r;
}

static bool param_bool(Cli *cli, const char *key)
{
    const char *v = cli_param(cli, key);
    bool b = false;
    return v && cli_parse_bool(v, &b) && b;
}

static char *call_string(Cli *cli, const char *method, const char *arg)
{
    XsValue *p = xv_array();
    if (arg)
        xv_array_push_string(p, arg);
    XsValue *r = cli_call(cli, method, p);
    if (!r)
        return NULL;
    char *s = r->kind == XV_STRING ? xstrdup(r->s) : NULL;
    xv_free(r);
    return s;
}

/* ---- progress while a transfer runs ---------------------------------------------------------- */

typedef struct Watch {
    Cli *cli;
    const char *task;
    struct timespec last;
    double shown;
    bool use_bytes;             /* the transfer's own counts make the bar */
    const _Atomic uint64_t *done; /* or a producer's counter of this size */
    uint64_t total;
} Watch;

static bool watch_cb(void *opaque, uint64_t done, uint64_t total)
{
    Watch *w = opaque;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - w->last.tv_sec) + (now.tv_nsec - w->last.tv_nsec) / 1e9;
    if (dt < 0.3)
        return true;
    w->last = now;
    double f = w->shown;
    char status[16];
    double tp = 0;
    if (cli_task_state(w->cli, w->task, status, &tp)) {
        /* Failed or cancelled on the server: stop sending or receiving. */
        if (strcmp(status, "pending") && strcmp(status, "success"))
            return false;
        f = tp;
    }
    if (w->done && w->total)
        f = (double)atomic_load(w->done) / (double)w->total;
    else if (w->use_bytes && total)
        f = (double)done / (double)total;
    if (f > w->shown + 0.004 || f < w->shown) {
        w->shown = f;
        cli_progress(w->cli, f, false);
    }
    return true;
}

/*
 * After a transfer: the task's outcome. Prints the XenAPI error if the task
 * failed; if the server never took the task over (it answered with an error
 * before), prints its answer. Returns the task's result (NULL on failure).
 */
static XsValue *task_outcome(Cli *cli, const char *task, const XcTransferResult *res,
                             const char *filename)
{
    /* The handler finishes the task as the transfer ends; give it a moment.
     * A transfer we stopped because the task failed has its story there. */
    for (int i = 0;; i++) {
        char status[16];
        double p;
        if (!cli_task_state(cli, task, status, &p))
            break;
        if (strcmp(status, "pending") && strcmp(status, "cancelling"))
            return cli_wait_task(cli, task, NULL);
        if (res->http_status == 200 && i >= 30)
            return cli_wait_task(cli, task, NULL); /* still working: wait for it */
        if (res->http_status != 200 && i >= 30)
            break; /* the server never took the task over */
        usleep(100 * 1000);
    }
    if (!res->http_status) {
        cli_fail(cli, "%s: %s", filename, res->error ? res->error : "no answer from the server");
        return NULL;
    }
    const char *body = res->body && *res->body ? res->body : "the server refused the transfer";
    cli_fail(cli, "%s", body);
    return NULL;
}

/* ---- export --------------------------------------------------------------------------------- */

static const char *compression_arg(Cli *cli, bool *ok)
{
    const char *c = cli_param(cli, "compress");
    *ok = true;
    if (!c)
        return "false";
    bool b;
    if (!strcasecmp(c, "gzip") || !strcasecmp(c, "zstd"))
        return c;
    if (cli_parse_bool(c, &b))
        return b ? "gzip" : "false";
    *ok = false;
    return NULL;
}

/* Re-reads the file and checks every checksum (XenCenter's "verify export"). */
static int verify_file(Cli *cli, const char *filename)
{
    int fd = open(filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cli_fail(cli, "Cannot read %s to verify it: %s", filename, strerror(errno));
    XvaInput in = {.fd = fd};
    XvaVerifyReport rep = {0};
    XvaError xe = {0};
    int r = xva_verify(&in, NULL, NULL, &rep, &xe);
    close(fd);
    if (r < 0) {
        xva_verify_report_release(&rep);
        return cli_fail(cli, "Verification of %s failed: %s", filename, xe.message);
    }
    char line[160];
    snprintf(line, sizeof(line), "Verify succeeded: %zu disk(s), %" PRIu64 " checksums",
             rep.n_disks, rep.checksums);
    cli_print_line(cli, line);
    xva_verify_report_release(&rep);
    return 0;
}

static int export_one(Cli *cli, const char *vm_ref, const char *vm_uuid, const char *filename)
{
    bool comp_ok;
    const char *comp = compression_arg(cli, &comp_ok);
    if (!comp_ok)
        return cli_fail(cli, "compress must be true, false, gzip or zstd");
    bool metadata = param_bool(cli, "metadata");
    char *task = cli_task_create(cli, "Export of VM", vm_uuid);
    if (!task)
        return 1;
    char *sid = esc(xc_session(cli->conn)), *tid = esc(task), *ref = esc(vm_ref);
    char *path = xasprintf("/%s?session_id=%s&task_id=%s&ref=%s&use_compression=%s"
                           "&preserve_power_state=%s&export_snapshots=%s",
                           metadata ? "export_metadata" : "export", sid, tid, ref, comp,
                           param_bool(cli, "preserve-power-state") ? "true" : "false",
                           param_bool(cli, "include-snapshots") ? "true" : "false");
    free(sid);
    free(tid);
    free(ref);
    Watch w = {.cli = cli, .task = task};
    XcTransferResult res;
    bool ok = cli_transfer_by_fd(cli, filename, false)
                  ? xc_fd_get_file(cli->conn, path, filename, watch_cb, &w, &res)
                  : xc_http_get_stream(cli->conn, path, filename, watch_cb, &w, &res);
    free(path);
    if (w.shown > 0)
        cli_progress(cli, 1.0, true);
    XsValue *r = task_outcome(cli, task, &res, filename);
    int rc = 0;
    if (!r) {
        rc = 1;
        if (strcmp(filename, "-"))
            unlink(filename);
    } else if (!ok) {
        rc = cli_fail(cli, "Export failed: %s", res.error ? res.error : "unknown error");
        if (strcmp(filename, "-"))
            unlink(filename);
    } else {
        cli_print_line(cli, "Export succeeded");
        if (param_bool(cli, "verify") && strcmp(filename, "-"))
            rc = verify_file(cli, filename);
    }
    xv_free(r);
    xc_transfer_result_release(&res);
    cli_task_destroy(cli, task);
    free(task);
    return rc;
}

static int cmd_vm_export(Cli *cli, const CliCommand *cmd)
{
    CliSelection sel;
    if (!cli_select_vms(cli, cmd, CLI_VMS_TEMPLATES | CLI_VMS_SNAPSHOTS, &sel))
        return 1;
    const char *filename = cli_param(cli, "filename");
    int rc = 0;
    for (size_t i = 0; i < sel.n && !rc; i++) {
        char *f = i == 0 ? xstrdup(filename) : xasprintf("%s%zu", filename, i + 1);
        rc = export_one(cli, sel.refs[i], xv_struct_get_string(sel.records[i], "uuid"), f);
        free(f);
    }
    cli_selection_release(&sel);
    return rc;
}

/* template-export and snapshot-export-to-template: one VM by uuid, of a kind. */
static int export_kind(Cli *cli, const char *uuid_param, const char *kind)
{
    const char *uuid = cli_param(cli, uuid_param);
    char *ref = call_string(cli, "VM.get_by_uuid", uuid);
    if (!ref)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    XsValue *rec = cli_call(cli, "VM.get_record", p);
    if (!rec) {
        free(ref);
        return 1;
    }
    const XsValue *t = xv_struct_get(rec, !strcmp(kind, "template") ? "is_a_template"
                                                                     : "is_a_snapshot");
    int rc;
    if (!t || t->kind != XV_BOOL || !t->b)
        rc = cli_fail(cli, "This operation can only be performed on a VM %s. %s is not a VM %s.",
                      kind, uuid, kind);
    else
        rc = export_one(cli, ref, uuid, cli_param(cli, "filename"));
    xv_free(rec);
    free(ref);
    return rc;
}

static int cmd_template_export(Cli *cli, const CliCommand *cmd)
{
    return export_kind(cli, "template-uuid", "template");
}

static int cmd_snapshot_export(Cli *cli, const CliCommand *cmd)
{
    return export_kind(cli, "snapshot-uuid", "snapshot");
}

/* ---- import: common ------------------------------------------------------------------------------ */

/* Prints the uuids of the VMs of an import result (a VM ref set). */
static int print_vms(Cli *cli, const XsValue *refs)
{
    if (!refs || refs->kind != XV_ARRAY)
        return cli_fail(cli, "The import returned no VM.");
    StrBuf sb = STRBUF_INIT;
    for (uint32_t i = 0; i < refs->n; i++) {
        char *u = call_string(cli, "VM.get_uuid", refs->items[i].s);
        if (!u) {
            strbuf_release(&sb);
            return 1;
        }
        strbuf_addf(&sb, "%s%s", i ? "," : "", u);
        free(u);
    }
    cli_print_line(cli, sb.buf ? sb.buf : "");
    strbuf_release(&sb);
    return 0;
}

/* "/import?session_id=..&task_id=..&restore=..&force=..[&sr_id=..]" plus extra. */
static char *import_path(Cli *cli, const char *handler, const char *task, const char *sr,
                         const char *extra)
{
    char *sid = esc(xc_session(cli->conn)), *tid = esc(task);
    char *srq = sr ? esc(sr) : NULL;
    char *p = xasprintf("/%s?session_id=%s&task_id=%s&restore=%s&force=%s%s%s%s", handler, sid,
                        tid, param_bool(cli, "preserve") ? "true" : "false",
                        param_bool(cli, "force") ? "true" : "false", srq ? "&sr_id=" : "",
                        srq ? srq : "", extra ? extra : "");
    free(sid);
    free(tid);
    free(srq);
    return p;
}

/* The SR of sr-uuid= (ref), NULL for the default; *failed on a bad uuid. */
static char *import_sr(Cli *cli, bool *failed)
{
    *failed = false;
    const char *u = cli_param(cli, "sr-uuid");
    if (!u)
        return NULL;
    char *r = call_string(cli, "SR.get_by_uuid", u);
    *failed = r == NULL;
    return r;
}

/* ---- import: a file as it is (XVA) ------------------------------------------------------------ */

static int import_xva_file(Cli *cli, const char *filename, const char *sr)
{
    char *task = cli_task_create(cli, "VM import", filename);
    if (!task)
        return 1;
    char *path = import_path(cli, param_bool(cli, "metadata") ? "import_metadata" : "import",
                             task, sr, NULL);
    Watch w = {.cli = cli, .task = task, .use_bytes = true};
    XcTransferResult res;
    bool ok = cli_transfer_by_fd(cli, filename, true)
                  ? xc_fd_put_file(cli->conn, path, filename, watch_cb, &w, &res)
                  : xc_http_put_file(cli->conn, path, filename, watch_cb, &w, &res);
    free(path);
    if (w.shown > 0)
        cli_progress(cli, 1.0, true);
    XsValue *r = task_outcome(cli, task, &res, filename);
    int rc = r ? (ok ? print_vms(cli, r) : cli_fail(cli, "%s", res.error ? res.error : "failed"))
               : 1;
    xv_free(r);
    xc_transfer_result_release(&res);
    cli_task_destroy(cli, task);
    free(task);
    return rc;
}

/* ---- import: streams made here ---------------------------------------------------------------- */

typedef struct Producer {
    int fd;
    int result;
    XvaError xe;
    /* The sources' own account of a failure, and a rewind between the count and the send. */
    const char *(*detail)(void *ctx);
    void (*rewind)(void *ctx);
    void *hook_ctx;
    /* XVA of a version-1 appliance */
    const char *ova;
    size_t ova_len;
    XvaExportDisk *disks;
    size_t n_disks;
    /* raw VDI tar of an image */
    XvaExportDisk image;
    bool raw;
    XvaExportStats stats;
    _Atomic uint64_t done;
    uint64_t total;
    atomic_bool cancel;
} Producer;

static void producer_progress(void *opaque, uint64_t done, uint64_t total)
{
    Producer *p = opaque;
    atomic_store(&p->done, done);
}

static int produce(Producer *p, int fd)
{
    XvaExportOptions o = {.progress = producer_progress, .progress_ctx = p,
                          .cancel = &p->cancel, .mtime = 0};
    if (p->raw)
        return xva_export_raw_tar(fd, &p->image, &o, &p->stats, &p->xe);
    return xva_export(fd, p->ova, p->ova_len, p->disks, p->n_disks, &o, &p->stats, &p->xe);
}

static void *producer_thread(void *arg)
{
    Producer *p = arg;
    p->result = produce(p, p->fd);
    close(p->fd);
    return NULL;
}

/*
 * Sends what p produces to handler (length given: counted first, as /import
 * needs a Content-Length; else chunked). Prints the new VMs.
 */
static const char *producer_why(Producer *p)
{
    const char *d = p->detail ? p->detail(p->hook_ctx) : NULL;
    return d && *d ? d : p->xe.message;
}

static int upload_produced(Cli *cli, Producer *p, const char *handler, const char *extra,
                           const char *sr, const char *what, bool need_length)
{
    int64_t length = -1;
    if (need_length) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null < 0)
            return cli_fail(cli, "cannot open /dev/null: %s", strerror(errno));
        Producer q = *p;
        atomic_init(&q.done, 0);
        atomic_init(&q.cancel, false);
        int r = produce(&q, null);
        close(null);
        if (r < 0)
            return cli_fail(cli, "%s: %s", what, producer_why(&q));
        length = (int64_t)q.stats.bytes_written;
        if (p->rewind)
            p->rewind(p->hook_ctx);
    }
    char *task = cli_task_create(cli, "VM import", what);
    if (!task)
        return 1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        cli_task_destroy(cli, task);
        free(task);
        return cli_fail(cli, "pipe: %s", strerror(errno));
    }
    p->fd = fds[1];
    atomic_init(&p->done, 0);
    atomic_init(&p->cancel, false);
    pthread_t th;
    if (pthread_create(&th, NULL, producer_thread, p) != 0) {
        close(fds[0]);
        close(fds[1]);
        cli_task_destroy(cli, task);
        free(task);
        return cli_fail(cli, "cannot start a thread");
    }
    char *path = import_path(cli, handler, task, sr, extra);
    Watch w = {.cli = cli, .task = task, .done = &p->done, .total = p->total};
    XcTransferResult res;
    bool ok = xc_http_put_fd(cli->conn, path, fds[0], length, watch_cb, &w, &res);
    free(path);
    atomic_store(&p->cancel, true);
    close(fds[0]); /* a producer still writing stops */
    pthread_join(th, NULL);
    if (w.shown > 0)
        cli_progress(cli, 1.0, true);
    int rc;
    if (p->result < 0 && p->xe.kind != XVA_ERROR_CANCELLED &&
        !(p->xe.kind == XVA_ERROR_IO && p->xe.code == -EPIPE)) {
        /* Our side failed (a truncated image, a missing chunk): that is the story. */
        rc = cli_fail(cli, "%s: %s", what, producer_why(p));
        char status[16];
        double pr;
        for (int i = 0; i < 50 && cli_task_state(cli, task, status, &pr) && !strcmp(status, "pending");
             i++)
            usleep(100 * 1000);
    } else {
        XsValue *r = task_outcome(cli, task, &res, what);
        rc = r ? (ok ? print_vms(cli, r) : cli_fail(cli, "%s", res.error ? res.error : "failed"))
               : 1;
        xv_free(r);
    }
    xc_transfer_result_release(&res);
    cli_task_destroy(cli, task);
    free(task);
    return rc;
}

/* -- version 1: the gunzipped chunks of a vdi, read in order ------------------------------------- */

typedef struct V1Disk {
    char *dir;        /* the chunk directory */
    gzFile gz;
    unsigned chunk;   /* number of the open chunk */
    uint64_t pos;     /* bytes delivered */
    bool end;         /* no more chunks */
    char msg[256];
} V1Disk;

static gzFile open_chunk(const char *dir, unsigned n)
{
    char *p = xasprintf("%s/chunk-%09u.gz", dir, n);
    gzFile g = gzopen(p, "rb");
    free(p);
    if (!g) {
        p = xasprintf("%s/chunk%09u.gz", dir, n);
        g = gzopen(p, "rb");
        free(p);
    }
    if (g)
        gzbuffer(g, 256 * 1024);
    return g;
}

static int v1_read(void *ctx, uint64_t offset, size_t len, void *buf)
{
    V1Disk *d = ctx;
    uint8_t *out = buf;
    if (offset != d->pos)
        return -EINVAL;
    while (len) {
        if (!d->gz && !d->end) {
            d->gz = open_chunk(d->dir, d->chunk);
            if (!d->gz)
                d->end = true;
        }
        if (d->end) {
            memset(out, 0, len); /* short data: the rest is zeros */
            d->pos += len;
            return 0;
        }
        unsigned want = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int k = gzread(d->gz, out, want);
        if (k < 0) {
            int e;
            snprintf(d->msg, sizeof(d->msg), "%s/chunk-%09u.gz: %s", d->dir, d->chunk,
                     gzerror(d->gz, &e));
            return -EIO;
        }
        if (k == 0) {
            gzclose(d->gz);
            d->gz = NULL;
            d->chunk++;
            continue;
        }
        out += k;
        len -= (size_t)k;
        d->pos += (uint64_t)k;
    }
    return 0;
}

static void v1_disk_reset(V1Disk *d)
{
    if (d->gz)
        gzclose(d->gz);
    d->gz = NULL;
    d->chunk = 0;
    d->pos = 0;
    d->end = false;
}

typedef struct V1Set {
    V1Disk *d;
    size_t n;
} V1Set;

static const char *v1_detail(void *ctx)
{
    V1Set *s = ctx;
    for (size_t i = 0; i < s->n; i++)
        if (s->d[i].msg[0])
            return s->d[i].msg;
    return NULL;
}

static void v1_rewind(void *ctx)
{
    V1Set *s = ctx;
    for (size_t i = 0; i < s->n; i++)
        v1_disk_reset(&s->d[i]);
}

static int import_v1(Cli *cli, const char *path, const char *sr)
{
    XvaV1Appliance *app = NULL;
    XvaError xe = {0};
    if (xva_v1_open(path, &app, &xe) < 0)
        return cli_fail(cli, "%s: %s", path, xe.message);
    char *xmlpath = xasprintf("%s/ova.xml", app->dir);
    char *xml = NULL;
    size_t xml_len = 0;
    FILE *f = fopen(xmlpath, "rb");
    if (f) {
        StrBuf sb = STRBUF_INIT;
        char buf[65536];
        size_t k;
        while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
            strbuf_add(&sb, buf, k);
        fclose(f);
        xml = strbuf_detach(&sb, &xml_len);
    }
    int rc;
    if (!xml) {
        rc = cli_fail(cli, "Cannot read %s", xmlpath);
    } else {
        V1Disk *dd = xcalloc(app->n_vdis + 1, sizeof(V1Disk));
        XvaExportDisk *disks = xcalloc(app->n_vdis + 1, sizeof(XvaExportDisk));
        Producer p = {.ova = xml, .ova_len = xml_len, .disks = disks, .n_disks = app->n_vdis};
        for (size_t i = 0; i < app->n_vdis; i++) {
            dd[i].dir = xasprintf("%s/%s", app->dir, app->vdis[i].path);
            /* Sectors, as the server makes the disk (ops/vm_xva.h: xva_v1_disk_size). */
            uint64_t size = (app->vdis[i].size + 511) / 512 * 512;
            disks[i] = (XvaExportDisk){.id = app->vdis[i].name, .size = size,
                                       .source = {.ctx = &dd[i], .read = v1_read}};
            p.total += app->vdis[i].size;
        }
        V1Set set = {dd, app->n_vdis};
        p.detail = v1_detail;
        p.rewind = v1_rewind;
        p.hook_ctx = &set;
        rc = upload_produced(cli, &p, param_bool(cli, "metadata") ? "import_metadata" : "import",
                             NULL, sr, path, true);
        for (size_t i = 0; i < app->n_vdis; i++) {
            v1_disk_reset(&dd[i]);
            free(dd[i].dir);
        }
        free(dd);
        free(disks);
    }
    free(xml);
    free(xmlpath);
    xva_v1_appliance_free(app);
    return rc;
}

/* -- a disk image: a raw VDI tar of its virtual disk ----------------------------------------------- */

typedef struct ImgSrc {
    ImgReader *r;
    uint64_t size; /* the reader's */
    ImgError *ie;
} ImgSrc;

static int img_src_read(void *ctx, uint64_t off, size_t len, void *buf)
{
    ImgSrc *s = ctx;
    size_t head = off < s->size ? (size_t)MIN((uint64_t)len, s->size - off) : 0;
    if (head) {
        ssize_t k = img_read(s->r, off, head, buf, s->ie);
        if (k < 0)
            return (int)k;
        if ((size_t)k != head) {
            img_error_set(s->ie, EIO, "%s: short read at offset %" PRIu64 " (truncated?)",
                          img_reader_path(s->r), off);
            return -EIO;
        }
    }
    memset((uint8_t *)buf + head, 0, len - head);
    return 0;
}

static int img_src_status(void *ctx, uint64_t off, uint64_t len, bool *allocated, uint64_t *run)
{
    ImgSrc *s = ctx;
    if (off >= s->size) {
        *allocated = false;
        *run = len;
        return 0;
    }
    ImgExtent e;
    int r = img_block_status(s->r, off, MIN(len, s->size - off), 0, &e, s->ie);
    if (r < 0)
        return r;
    *allocated = e.kind == IMG_EXTENT_DATA;
    *run = e.length;
    return 0;
}

static const char *img_detail(void *ctx)
{
    return ((ImgError *)ctx)->msg;
}

static int import_image(Cli *cli, const char *filename, ImgReader *r, const char *sr)
{
    int64_t mem = 0;
    const char *m = cli_param(cli, "memory");
    if (m && (!cli_parse_size(m, &mem) || mem <= 0))
        return cli_fail(cli, "memory: '%s' is not a size (e.g. 2GiB)", m);
    const char *v = cli_param(cli, "vcpus");
    long vcpus = 0;
    if (v) {
        char *end;
        vcpus = strtol(v, &end, 10);
        if (*end || vcpus < 1 || vcpus > 64)
            return cli_fail(cli, "vcpus: '%s' is not a number of VCPUs (1 to 64)", v);
    }
    char *net = NULL;
    const char *nu = cli_param(cli, "network-uuid");
    if (nu && *nu) {
        net = call_string(cli, "network.get_by_uuid", nu);
        if (!net)
            return 1;
    }
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    char *label = xstrdup(cli_param(cli, "name-label") ? cli_param(cli, "name-label") : base);
    if (!cli_param(cli, "name-label")) {
        char *dot = strrchr(label, '.');
        if (dot && dot != label)
            *dot = '\0';
    }
    uint64_t vsize = img_reader_virtual_size(r);
    uint64_t size = (vsize + 511) / 512 * 512;
    StrBuf q = STRBUF_INIT;
    char *e;
    strbuf_addf(&q, "&virtual_size=%" PRIu64, size);
    strbuf_addf(&q, "&name_label=%s", e = esc(label));
    free(e);
    strbuf_addf(&q, "&source=%s", e = esc(base));
    free(e);
    if (net) {
        strbuf_addf(&q, "&network=%s", e = esc(net));
        free(e);
    }
    if (vcpus)
        strbuf_addf(&q, "&vcpus=%ld", vcpus);
    if (mem)
        strbuf_addf(&q, "&memory=%" PRId64, mem);
    if (cli_param(cli, "disk-bus")) {
        strbuf_addf(&q, "&disk_bus=%s", e = esc(cli_param(cli, "disk-bus")));
        free(e);
    }
    char *extra = strbuf_detach(&q, NULL);
    ImgError ie = {0};
    ImgSrc src = {.r = r, .size = vsize, .ie = &ie};
    Producer p = {.raw = true, .total = size, .detail = img_detail, .hook_ctx = &ie};
    p.image = (XvaExportDisk){.id = "vdi", .size = size,
                              .source = {.ctx = &src, .read = img_src_read,
                                         .block_status = img_src_status}};
    int rc = upload_produced(cli, &p, "import_image", extra, sr, filename, false);
    free(extra);
    free(net);
    free(label);
    return rc;
}

/* ---- vm-import -------------------------------------------------------------------------------------- */

static bool is_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8) || !strncmp(s, "ftp://", 6) ||
           !strncmp(s, "file://", 7);
}

static int import_url(Cli *cli, const char *url, const char *sr)
{
    XsValue *p = xv_array();
    xv_array_push_string(p, url);
    xv_array_push_string(p, sr ? sr : "OpaqueRef:NULL");
    xv_array_push(p, xv_bool(param_bool(cli, "preserve")));
    xv_array_push(p, xv_bool(param_bool(cli, "force")));
    XsValue *r = cli_call_async(cli, "VM.import", p, "VM import");
    if (!r)
        return 1;
    int rc = print_vms(cli, r);
    xv_free(r);
    return rc;
}

static bool looks_like_xva(const char *filename)
{
    int fd = open(filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    uint8_t b[512];
    ssize_t n = read(fd, b, sizeof(b));
    close(fd);
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return true;
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
        return true;
    /* Any tar archive: the server says whether it is an XVA. */
    return n == 512 && (!memcmp(b + 257, "ustar", 5) || !memcmp(b, "ova.xml", 8));
}

static int cmd_vm_import(Cli *cli, const CliCommand *cmd)
{
    const char *filename = cli_param(cli, "filename");
    const char *url = cli_param(cli, "url");
    if (url && filename)
        return cli_fail(cli, "Invalid arguments. The 'url' and 'filename' parameters should not "
                             "both be specified.");
    if (!url && !filename)
        return cli_fail(cli, "Required parameter not found: filename");
    bool failed;
    char *sr = import_sr(cli, &failed);
    if (failed)
        return 1;
    int rc;
    if (url || is_url(filename)) {
        rc = import_url(cli, url ? url : filename, sr);
        free(sr);
        return rc;
    }
    /* filename=<dir>/ova.xml means the directory (a version-1 appliance). */
    char *path = xstrdup(filename);
    size_t l = strlen(path);
    struct stat st;
    if (l >= 7 && !strcasecmp(path + l - 7, "ova.xml") && xva_v1_detect(path)) {
        path[l - 7] = '\0';
        if (!*path) {
            free(path);
            path = xstrdup(".");
        }
    }
    if (stat(path, &st) != 0) {
        rc = cli_fail(cli, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        rc = xva_v1_detect(path) ? import_v1(cli, path, sr)
                                 : cli_fail(cli, "%s is a directory without a version-1 ova.xml",
                                            path);
    } else if (looks_like_xva(path)) {
        rc = import_xva_file(cli, path, sr);
    } else {
        ImgOpenOptions oo = {.format = IMG_FORMAT_PROBE};
        ImgError ie = {0};
        ImgReader *r = img_open(path, &oo, &ie);
        if (!r) {
            rc = cli_fail(cli, "%s", ie.msg);
        } else {
            ImgFormat f = img_reader_format(r);
            if (f == IMG_FORMAT_VHD || f == IMG_FORMAT_VMDK)
                rc = import_image(cli, path, r, sr);
            else
                rc = cli_fail(cli, "%s is not an XVA file, a version-1 appliance, a VHD or a "
                                   "VMDK image", path);
            img_reader_free(r);
        }
    }
    free(path);
    free(sr);
    return rc;
}

/* ---- task-cancel ------------------------------------------------------------------------------------ */

static int cmd_task_cancel(Cli *cli, const CliCommand *cmd)
{
    char *ref = call_string(cli, "task.get_by_uuid", cli_param(cli, "uuid"));
    if (!ref)
        return 1;
    XsValue *p = xv_array();
    xv_array_push_string(p, ref);
    XsValue *r = cli_call(cli, "task.cancel", p);
    free(ref);
    if (!r)
        return 1;
    xv_free(r);
    return 0;
}

static const CliCommand commands[] = {
    {"snapshot-export-to-template", "filename,snapshot-uuid",
     "preserve-power-state,compress,metadata,excluded-device-types,verify",
     "Export a snapshot to <filename>.", cmd_snapshot_export},
    {"task-cancel", "uuid", "", "Set a task to cancelling and return.", cmd_task_cancel},
    {"template-export", "filename,template-uuid", "compress,metadata,excluded-device-types,verify",
     "Export a template to <filename>.", cmd_template_export},
    {"vm-export", "filename",
     "preserve-power-state,compress,metadata,excluded-device-types,include-snapshots,verify",
     "Export a VM to <filename> (compress=true|gzip|zstd; verify=true re-reads the file and "
     "checks every checksum).",
     cmd_vm_export},
    {"vm-import", "",
     "filename,url,preserve,sr-uuid,force,metadata,name-label,vcpus,memory,network-uuid,"
     "disk-bus",
     "Import a VM from an XVA file, a version-1 appliance (its directory or ova.xml), a VHD or "
     "VMDK disk image (a new HVM VM around it: name-label, vcpus, memory, network-uuid, "
     "disk-bus=ide|virtio|scsi), or a URL (http, https, ftp, file) the server fetches. "
     "preserve=true keeps the MAC addresses; force=true accepts checksum errors. Prints the "
     "uuids of the new VMs.",
     cmd_vm_import},
};

void cli_importexport_commands(CliCommandList *l)
{
    cli_register(l, commands, ARRAY_SIZE(commands));
}
