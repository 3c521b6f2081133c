/*
 * HTTP PUT and GET of files through libcurl for xe. See transfer.h.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/transfer.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define XFER_BUFFER (2 * 1024 * 1024)

typedef struct Xfer {
    int fd;
    bool seekable;
    uint64_t pos;    /* bytes written (GET) */
    uint64_t extent; /* end of the file as written, holes included */
    StrBuf body;     /* reply body of a PUT, or of a failed GET */
    long status;
    CURL *h;
    int write_errno;
    XcTransferProgress progress;
    void *opaque;
} Xfer;

void xc_transfer_result_release(XcTransferResult *r)
{
    free(r->body);
    free(r->error);
    memset(r, 0, sizeof(*r));
}

static int xferinfo(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
    Xfer *x = p;
    if (!x->progress)
        return 0;
    bool up = ultotal > 0;
    uint64_t done = (uint64_t)(up ? ulnow : dlnow);
    uint64_t total = (uint64_t)(up ? ultotal : dltotal);
    return x->progress(x->opaque, done, total) ? 0 : 1;
}

static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Xfer *x = userdata;
    if (x->body.len < 65536)
        strbuf_add(&x->body, ptr, size * nmemb);
    return size * nmemb;
}

static bool zero_block(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static size_t file_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Xfer *x = userdata;
    size_t n = size * nmemb;
    if (!x->status)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status != 200)
        return body_cb(ptr, size, nmemb, userdata);
    size_t done = 0;
    while (done < n) {
        /* 4 KiB aligned blocks of zeros become holes on regular files. */
        size_t chunk = 4096 - (size_t)(x->pos % 4096);
        if (chunk > n - done)
            chunk = n - done;
        if (x->seekable && chunk == 4096 && zero_block(ptr + done, chunk)) {
            x->pos += chunk;
            done += chunk;
            continue;
        }
        ssize_t k = x->seekable ? pwrite(x->fd, ptr + done, chunk, (off_t)x->pos)
                                : write(x->fd, ptr + done, chunk);
        if (k <= 0) {
            x->write_errno = k < 0 ? errno : EIO;
            return 0;
        }
        x->pos += (uint64_t)k;
        done += (size_t)k;
        if (x->pos > x->extent)
            x->extent = x->pos;
    }
    return n;
}

static bool perform(Xfer *x, XcTransferResult *res)
{
    curl_easy_setopt(x->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(x->h, CURLOPT_XFERINFOFUNCTION, xferinfo);
    curl_easy_setopt(x->h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(x->h, CURLOPT_BUFFERSIZE, 512L * 1024);
    CURLcode rc = curl_easy_perform(x->h);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &res->http_status);
    if (x->write_errno)
        res->error = xasprintf("cannot write the file: %s", strerror(x->write_errno));
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        res->error = xstrdup("cancelled");
    else if (rc != CURLE_OK)
        res->error = xasprintf("transfer failed: %s", curl_easy_strerror(rc));
    res->body = strbuf_detach(&x->body, NULL);
    curl_easy_cleanup(x->h);
    return !res->error && res->http_status == 200;
}

bool xc_http_put_file(XcConn *c, const char *path_query, const char *filename,
                      XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    FILE *f = fopen(filename, "rb");
    if (!f) {
        res->error = xasprintf("cannot open %s: %s", filename, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        res->error = xasprintf("%s is not a regular file", filename);
        fclose(f);
        return false;
    }
    setvbuf(f, NULL, _IOFBF, XFER_BUFFER);
    Xfer x = {.fd = -1, .progress = progress, .opaque = opaque};
    strbuf_init(&x.body, 0);
    x.h = xc_transfer_handle(c, path_query);
    if (!x.h) {
        fclose(f);
        res->error = xstrdup("cannot set up the transfer");
        return false;
    }
    curl_easy_setopt(x.h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x.h, CURLOPT_READDATA, f);
    curl_easy_setopt(x.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    curl_easy_setopt(x.h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x);
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
    curl_easy_setopt(x.h, CURLOPT_HTTPHEADER, hdr);
    bool ok = perform(&x, res);
    curl_slist_free_all(hdr);
    fclose(f);
    return ok;
}

bool xc_http_get_file(XcConn *c, const char *path_query, const char *filename,
                      XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    Xfer x = {.progress = progress, .opaque = opaque};
    strbuf_init(&x.body, 0);
    bool to_stdout = strcmp(filename, "-") == 0;
    x.fd = to_stdout ? STDOUT_FILENO
                     : open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (x.fd < 0) {
        res->error = xasprintf("cannot create %s: %s", filename, strerror(errno));
        return false;
    }
    struct stat st;
    x.seekable = !to_stdout && fstat(x.fd, &st) == 0 && S_ISREG(st.st_mode);
    x.h = xc_transfer_handle(c, path_query);
    if (!x.h) {
        if (!to_stdout)
            close(x.fd);
        res->error = xstrdup("cannot set up the transfer");
        return false;
    }
    curl_easy_setopt(x.h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, file_cb);
    curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x);
    bool ok = perform(&x, res);
    if (ok && x.seekable && x.pos > x.extent && ftruncate(x.fd, (off_t)x.pos) != 0) {
        res->error = xasprintf("cannot write %s: %s", filename, strerror(errno));
        ok = false;
    }
    if (!to_stdout && close(x.fd) != 0 && ok) {
        res->error = xasprintf("cannot write %s: %s", filename, strerror(errno));
        ok = false;
    }
    if (!ok && !to_stdout)
        unlink(filename);
    return ok;
}
