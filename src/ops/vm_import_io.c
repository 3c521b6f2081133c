/*
 * Where the data of an import comes from (vm_xva.h, vm_import_int.h): an
 * XVA stream (an HTTP upload through a ring in memory, a local file, a
 * download), a version-1 directory of the host, or a disk image of the
 * host (VM.import of a file:// URL). The plan, the sinks and the creation
 * of the objects are vm_import.c's.
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

#include "formats/image.h"
#include "formats/xva_v1.h"
#include "ops/cancel_watch.h"
#include "ops/vm_import_int.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/banned.h"

/* ---- reading a stream ------------------------------------------------------------------------- */

static bool run_stream(Importer *im, const XvaInput *in, XsError **errp)
{
    XvaImportSink sink = {.ctx = im, .ova_xml = vm_import_sink_ova_xml, .disk_begin = vm_import_sink_disk_begin,
                          .write = vm_import_sink_write, .write_ref = vm_import_sink_write_ref,
                          .stop = vm_import_sink_stop, .disk_end = vm_import_sink_disk_end};
    XvaImportOptions xo = {.force = im->force, .progress = vm_import_progress,
                           .progress_ctx = im, .cancel = &im->cancel,
                           .max_ova_xml = MAX_OVA_XML};
    XvaImportStats st = {0};
    XvaError xe = {0};
    int r;
    if (im->kind == OPS_IMPORT_IMAGE) {
        if (!vm_import_plan(im, NULL, 0, errp))
            return false;
        r = xva_import_raw_tar(in, im->disks[0]->size, &sink, &xo, &st, &xe);
        if (r == 0 && !im->disks[0]->writer) {
            /* Every block was empty: still a disk. */
            if (vm_import_sink_disk_begin(im, 0, "", im->disks[0]->size) < 0 || vm_import_sink_disk_end(im, 0, 0) < 0)
                r = -EIO;
            xe.kind = XVA_ERROR_CALLBACK;
        }
    } else {
        r = xva_import(in, &sink, &xo, &st, &xe);
    }
    if (r < 0) {
        vm_import_map_xva_error(im, r, &xe, errp);
        return false;
    }
    if (st.checksum_mismatches)
        log_warn("import: %" PRIu64 " block(s) with a wrong checksum accepted (force)",
                 st.checksum_mismatches);
    log_info("import: %" PRIu64 " blocks (%s), %" PRIu64 " bytes of data",
             st.blocks, st.compression == XVA_COMPRESSION_ZSTD   ? "zstd"
                        : st.compression == XVA_COMPRESSION_GZIP ? "gzip"
                                                                 : "uncompressed",
             st.bytes_data);
    return vm_import_create_all(im, errp);
}

/* Version-1 disks read from a local directory: disk i of the appliance is
 * the object named after its vdi. */
typedef struct V1Sink {
    Importer *im;
    const XvaV1Appliance *app;
} V1Sink;

static ImpObj *v1_obj(V1Sink *s, size_t disk)
{
    ImpObj *o = disk < s->app->n_vdis ? vm_import_find(s->im, s->app->vdis[disk].name) : NULL;
    return o && o->action == ACT_CREATE ? o : NULL;
}

static int v1_begin(void *ctx, size_t disk, const char *id, uint64_t size)
{
    V1Sink *s = ctx;
    ImpObj *o = v1_obj(s, disk);
    return o ? vm_import_sink_disk_begin(s->im, (size_t)o->disk, id, size) : 0;
}

static int v1_write(void *ctx, size_t disk, uint64_t offset, const void *buf, size_t len)
{
    V1Sink *s = ctx;
    ImpObj *o = v1_obj(s, disk);
    return o ? vm_import_sink_write(s->im, (size_t)o->disk, offset, buf, len) : 0;
}

static int v1_end(void *ctx, size_t disk, uint64_t size)
{
    V1Sink *s = ctx;
    ImpObj *o = v1_obj(s, disk);
    return o ? vm_import_sink_disk_end(s->im, (size_t)o->disk, size) : 0;
}

static bool run_v1_dir(Importer *im, const char *path, XsError **errp)
{
    XvaV1Appliance *app = NULL;
    XvaError xe = {0};
    if (xva_v1_open(path, &app, &xe) < 0) {
        vm_import_error(im, errp, "%s", xe.message);
        return false;
    }
    bool ok = vm_import_made_up_v1(im, app, errp);
    if (ok) {
        im->made_up = true;
        db_read_lock(im->ctx->db);
        ok = vm_import_plan_objects(im, errp);
        db_read_unlock(im->ctx->db);
    }
    if (ok) {
        im->disks = xcalloc(im->n_disks ? im->n_disks : 1, sizeof(ImpObj *));
        size_t k = 0;
        for (size_t j = 0; j < im->n; j++)
            if (im->objs[j].cls == XS_CLASS_VDI && im->objs[j].action == ACT_CREATE) {
                im->objs[j].disk = (int)k;
                im->disks[k++] = &im->objs[j];
            }
        V1Sink vs = {im, app};
        XvaImportSink sink = {.ctx = &vs, .disk_begin = v1_begin, .write = v1_write,
                              .disk_end = v1_end};
        XvaImportOptions xo = {.progress = vm_import_progress, .progress_ctx = im,
                               .cancel = &im->cancel};
        int r = xva_v1_import(app, &sink, &xo, NULL, &xe);
        if (r < 0) {
            vm_import_map_xva_error(im, r, &xe, errp);
            ok = false;
        }
        for (size_t j = 0; ok && j < im->n_disks; j++)
            if (!im->disks[j]->writer) {
                vm_import_error(im, errp, "the data of vdi %s was not found", im->disks[j]->id);
                ok = false;
            }
    }
    xva_v1_appliance_free(app);
    return ok && vm_import_create_all(im, errp);
}

/* A local disk image (VHD, VMDK and their chains) as a new VM. */
static bool run_image_file(Importer *im, ImgReader *r, const char *path, XsError **errp)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    im->kind = OPS_IMPORT_IMAGE;
    if (!im->image.source)
        im->image.source = base;
    uint64_t size = img_reader_virtual_size(r);
    im->image.virtual_size = (int64_t)((size + 511) / 512 * 512);
    if (!vm_import_plan(im, NULL, 0, errp))
        return false;
    if (vm_import_sink_disk_begin(im, 0, "", size) < 0) {
        xs_error_propagate(errp, im->err);
        im->err = NULL;
        return false;
    }
    ImpObj *o = im->disks[0];
    size_t bufsz = 4 * MiB;
    uint8_t *buf = xmalloc(bufsz);
    bool ok = true;
    uint64_t off = 0;
    while (ok && off < size) {
        ImgExtent e;
        ImgError ie = {0};
        if (img_block_status(r, off, size - off, 0, &e, &ie) < 0) {
            vm_import_error(im, errp, "%s", ie.msg);
            ok = false;
            break;
        }
        if (e.kind == IMG_EXTENT_DATA) {
            uint64_t end = off + e.length;
            while (ok && off < end) {
                size_t n = (size_t)MIN((uint64_t)bufsz, end - off);
                ssize_t k = img_read(r, off, n, buf, &ie);
                if (k != (ssize_t)n) {
                    vm_import_error(im, errp, "%s", ie.msg[0] ? ie.msg : "the image is truncated");
                    ok = false;
                } else if (vm_import_sink_write(im, 0, off, buf, n) < 0) {
                    ok = false;
                }
                off += n;
            }
        } else {
            off += e.length;
        }
        vm_import_progress(im, off, size);
        if (atomic_load(&im->cancel)) {
            xs_err_task_cancelled(errp, im->ctx->task ? im->ctx->task : "");
            ok = false;
        }
    }
    free(buf);
    if (ok && vm_import_sink_disk_end(im, 0, size) < 0)
        ok = false;
    if (!ok && im->err && errp && !*errp) {
        xs_error_propagate(errp, im->err);
        im->err = NULL;
    }
    (void)o;
    return ok && vm_import_create_all(im, errp);
}

/* True if the first bytes are those of an XVA: a tar header naming ova.xml,
 * or gzip or zstd data. */
static bool looks_like_xva(const uint8_t *b, size_t n)
{
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return true;
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
        return true;
    return n >= 512 && !memcmp(b, "ova.xml", 8);
}

static bool run_local(Importer *im, const char *path, XsError **errp)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        vm_import_error(im, errp, "%s: %s", path, strerror(errno));
        return false;
    }
    if (xva_v1_detect(path))
        return run_v1_dir(im, path, errp);
    if (!S_ISREG(st.st_mode)) {
        vm_import_error(im, errp, "%s is neither an XVA file nor a version-1 appliance directory",
                     path);
        return false;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vm_import_error(im, errp, "%s: %s", path, strerror(errno));
        return false;
    }
    uint8_t head[512];
    ssize_t n = pread(fd, head, sizeof(head), 0);
    if (n > 0 && looks_like_xva(head, (size_t)n)) {
        XvaInput in = {.fd = fd, .map = true};
        bool ok = run_stream(im, &in, errp);
        close(fd);
        return ok;
    }
    close(fd);
    ImgOpenOptions oo = {.format = IMG_FORMAT_PROBE, .flags = IMG_OPEN_CONFINE};
    ImgError ie = {0};
    ImgReader *r = img_open(path, &oo, &ie);
    if (!r) {
        vm_import_error(im, errp, "%s", ie.msg);
        return false;
    }
    ImgFormat f = img_reader_format(r);
    bool ok = false;
    if (f != IMG_FORMAT_VHD && f != IMG_FORMAT_VMDK) {
        vm_import_error(im, errp, "%s is not an XVA, VHD or VMDK file", path);
    } else {
        ok = run_image_file(im, r, path, errp);
    }
    img_reader_free(r);
    return ok;
}

/* ---- fetching a URL (VM.import) ------------------------------------------------------------------- */

typedef struct Fetch {
    char *url;
    int fd; /* the pipe's write end */
    pthread_t thread;
    CURLcode rc;
    long status;
    char errbuf[CURL_ERROR_SIZE];
    bool write_failed;
} Fetch;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t fetch_write(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    Fetch *f = opaque;
    size_t n = size * nmemb, done = 0;
    while (done < n) {
        ssize_t k = write(f->fd, ptr + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            f->write_failed = true;
            return 0;
        }
        done += (size_t)k;
    }
    return n;
}

static void *fetch_thread(void *arg)
{
    Fetch *f = arg;
    CURL *c = curl_easy_init();
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, f->url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,ftp");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https,ftp");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 300L);
        curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, f->errbuf);
        f->rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
        curl_easy_cleanup(c);
    } else {
        f->rc = CURLE_FAILED_INIT;
    }
    close(f->fd);
    f->fd = -1;
    return NULL;
}

static bool run_url(Importer *im, const char *url, XsError **errp)
{
    pthread_once(&curl_once, curl_init_once);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        xs_err_internal_error(errp, strerror(errno));
        return false;
    }
    fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
    Fetch f = {.url = xstrdup(url), .fd = p[1]};
    if (pthread_create(&f.thread, NULL, fetch_thread, &f) != 0) {
        close(p[0]);
        close(p[1]);
        free(f.url);
        xs_err_internal_error(errp, "cannot start the download thread");
        return false;
    }
    XvaInput in = {.fd = p[0]};
    XsError *e = NULL;
    bool ok = run_stream(im, &in, &e);
    close(p[0]); /* a download still running stops on a write error */
    pthread_join(f.thread, NULL);
    if (f.rc != CURLE_OK && !f.write_failed) {
        /* The download failed: that is what to report. */
        xs_error_free(e);
        e = NULL;
        if (ok) {
            /* Everything needed arrived before the transfer failed. */
        } else {
            char *m = xasprintf("cannot fetch %s: %s", url,
                                f.errbuf[0] ? f.errbuf : curl_easy_strerror(f.rc));
            xs_err_import_error(&e, m);
            free(m);
        }
    }
    if (!ok)
        xs_error_propagate(errp, e);
    else
        xs_error_free(e);
    free(f.url);
    return ok;
}

bool ops_vm_import(OpsCtx *ctx, const char *url, const char *sr, bool full_restore, bool force,
                   XsValue **ret, XsError **errp)
{
    OpsVmImportOptions o = {.kind = OPS_IMPORT_XVA, .sr = sr, .restore = full_restore,
                            .force = force};
    Importer im;
    vm_import_init(&im, ctx, &o);
    bool ok = false;
    OpsCancelWatch *w = ops_cancel_watch_start(ctx, &im.cancel);
    if (!strncmp(url, "file://", 7)) {
        /* Any file of the host: only for those who administer it. */
        if (ctx->role < XS_ROLE_POOL_ADMIN) {
            xs_err_permission_denied(errp, "Importing a file of the host (file://) needs the "
                                           "pool-admin role; upload the file instead.");
        } else {
            const char *path = url + 7;
            if (!strncmp(path, "localhost/", 10))
                path += 9;
            if (*path != '/')
                xs_err_invalid_value(errp, "url", url);
            else
                ok = run_local(&im, path, errp);
        }
    } else if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8) ||
               !strncmp(url, "ftp://", 6)) {
        ok = run_url(&im, url, errp);
    } else {
        xs_err_invalid_value(errp, "url", url);
    }
    ops_cancel_watch_stop(w);
    if (ok) {
        *ret = im.result;
        im.result = NULL;
    }
    vm_import_release(&im);
    return ok;
}

/* ---- uploads (HTTP) ----------------------------------------------------------------------------- */

/*
 * The body of an upload goes from the HTTP thread to the import's reader
 * through a ring in memory: the HTTP thread copies each chunk in (waiting
 * when it is full), the reader copies out. No system call per chunk, and
 * the reader's wait is cut short by a cancel.
 */
#define FEED_BYTES (4u * 1024 * 1024)

typedef struct Feed {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint8_t *buf;
    size_t head, used;
    bool eof;    /* the writer said everything */
    bool closed; /* the reader went away */
    const atomic_bool *cancel;
} Feed;

static void feed_init(Feed *f, const atomic_bool *cancel)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->buf = xmalloc(FEED_BYTES);
    f->cancel = cancel;
}

static void feed_release(Feed *f)
{
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cv);
    free(f->buf);
}

/* Copies len bytes in; false once the reader is gone. */
static bool feed_push(Feed *f, const uint8_t *p, size_t len)
{
    pthread_mutex_lock(&f->lock);
    while (len) {
        while (!f->closed && f->used == FEED_BYTES)
            pthread_cond_wait(&f->cv, &f->lock);
        if (f->closed) {
            pthread_mutex_unlock(&f->lock);
            return false;
        }
        size_t tail = (f->head + f->used) % FEED_BYTES;
        size_t room = tail >= f->head ? FEED_BYTES - tail : f->head - tail;
        if (f->used == 0)
            room = FEED_BYTES - tail;
        size_t n = MIN(room, len);
        memcpy(f->buf + tail, p, n);
        bool was_empty = f->used == 0;
        f->used += n;
        p += n;
        len -= n;
        if (was_empty)
            pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->lock);
    return true;
}

static void feed_end(Feed *f, bool reader)
{
    pthread_mutex_lock(&f->lock);
    if (reader)
        f->closed = true;
    else
        f->eof = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->lock);
}

/* XvaInput.read: up to len bytes, 0 at the end, -ECANCELED on a cancel. */
static ssize_t feed_read(void *ctx, void *buf, size_t len)
{
    Feed *f = ctx;
    pthread_mutex_lock(&f->lock);
    while (!f->used && !f->eof) {
        if (f->cancel && atomic_load(f->cancel)) {
            pthread_mutex_unlock(&f->lock);
            return -ECANCELED;
        }
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 100 * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f->cv, &f->lock, &t);
    }
    size_t n = MIN(len, f->used);
    n = MIN(n, FEED_BYTES - f->head);
    bool was_full = f->used == FEED_BYTES;
    memcpy(buf, f->buf + f->head, n);
    f->head = (f->head + n) % FEED_BYTES;
    f->used -= n;
    if (was_full)
        pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->lock);
    return (ssize_t)n;
}

struct OpsVmImport {
    Importer im;
    Feed feed;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    bool done, ok; /* the import thread ended, and how */
    bool draining; /* everything needed arrived: the rest of the body is dropped */
    bool ended;    /* the writer side said the body is complete */
    XsError *err;
    int64_t length;
    uint64_t received;
};

static void *upload_thread(void *arg)
{
    OpsVmImport *u = arg;
    XvaInput in = {.fd = -1, .ctx = &u->feed, .read = feed_read};
    XsError *e = NULL;
    OpsCancelWatch *w = ops_cancel_watch_start(u->im.ctx, &u->im.cancel);
    bool ok = run_stream(&u->im, &in, &e);
    ops_cancel_watch_stop(w);
    if (!ok)
        vm_import_drop_files(&u->im); /* now, not when the client goes away */
    pthread_mutex_lock(&u->lock);
    u->done = true;
    u->ok = ok;
    u->err = e;
    pthread_mutex_unlock(&u->lock);
    feed_end(&u->feed, true); /* the uploader's next push fails */
    return NULL;
}

OpsVmImport *ops_vm_import_begin(OpsCtx *ctx, const OpsVmImportOptions *o, int64_t length,
                                 XsError **errp)
{
    if (o->kind == OPS_IMPORT_IMAGE && o->image.virtual_size <= 0) {
        xs_err_invalid_value(errp, "virtual_size", "");
        return NULL;
    }
    OpsVmImport *u = xnew0(OpsVmImport, 1);
    vm_import_init(&u->im, ctx, o);
    u->length = length;
    pthread_mutex_init(&u->lock, NULL);
    feed_init(&u->feed, &u->im.cancel);
    if (pthread_create(&u->thread, NULL, upload_thread, u) != 0) {
        feed_release(&u->feed);
        vm_import_release(&u->im);
        pthread_mutex_destroy(&u->lock);
        free(u);
        xs_err_internal_error(errp, "cannot start the import thread");
        return NULL;
    }
    u->thread_started = true;
    return u;
}

bool ops_vm_import_data(OpsVmImport *u, const void *data, size_t len)
{
    if (u->draining)
        return true;
    if (feed_push(&u->feed, data, len)) {
        u->received += len;
        return true;
    }
    /* The import thread stopped reading: finished, or failed. */
    if (u->thread_started) {
        pthread_join(u->thread, NULL);
        u->thread_started = false;
    }
    if (u->ok) {
        u->draining = true;
        return true;
    }
    return false;
}

static void upload_free(OpsVmImport *u)
{
    feed_end(&u->feed, false);
    if (u->thread_started)
        pthread_join(u->thread, NULL);
    u->thread_started = false;
    feed_release(&u->feed);
    xs_error_free(u->err);
    vm_import_release(&u->im);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

bool ops_vm_import_finish(OpsVmImport *u, XsValue **result, XsError **errp)
{
    /* End of the body: the reader sees the end of the stream. */
    feed_end(&u->feed, false);
    if (u->thread_started) {
        pthread_join(u->thread, NULL);
        u->thread_started = false;
    }
    bool ok = u->ok;
    if (ok) {
        *result = u->im.result;
        u->im.result = NULL;
    } else {
        if (u->err) {
            xs_error_propagate(errp, u->err);
            u->err = NULL;
        } else {
            xs_err_import_error(errp, "the import failed");
        }
    }
    upload_free(u);
    return ok;
}

void ops_vm_import_abort(OpsVmImport *u)
{
    atomic_store(&u->im.cancel, true);
    log_info("import cut off after %" PRIu64 " bytes: nothing kept", u->received);
    upload_free(u);
}

/* ---- a file handed over by a local client --------------------------------------------------- */

bool ops_vm_import_fd(OpsCtx *ctx, const OpsVmImportOptions *o, int fd, XsValue **result,
                      XsError **errp)
{
    if (o->kind != OPS_IMPORT_XVA && o->kind != OPS_IMPORT_METADATA) {
        xs_err_invalid_value(errp, "kind", "image");
        return false;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        xs_err_import_error(errp, strerror(errno));
        return false;
    }
    Importer im;
    vm_import_init(&im, ctx, o);
    OpsCancelWatch *w = ops_cancel_watch_start(ctx, &im.cancel);
    XvaInput in = {.fd = fd, .map = true};
    bool ok = run_stream(&im, &in, errp);
    ops_cancel_watch_stop(w);
    if (ok) {
        *result = im.result;
        im.result = NULL;
    }
    vm_import_release(&im);
    return ok;
}
