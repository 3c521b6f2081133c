/*
 * HTTP PUT of a body read from a file descriptor as it is produced, and
 * GET into a file in large pieces (upload.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/upload.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

typedef struct Up {
    int fd;
    int read_errno;
    uint64_t sent;
    int64_t length;
    StrBuf body;
    XcTransferProgress progress;
    void *opaque;
} Up;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    Up *u = userdata;
    for (;;) {
        ssize_t k = read(u->fd, buf, size * nitems);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            u->read_errno = errno;
            return CURL_READFUNC_ABORT;
        }
        u->sent += (uint64_t)k;
        return (size_t)k;
    }
}

static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Up *u = userdata;
    if (u->body.len < 65536)
        strbuf_add(&u->body, ptr, size * nmemb);
    return size * nmemb;
}

static int xferinfo(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
    Up *u = p;
    if (!u->progress)
        return 0;
    return u->progress(u->opaque, u->sent, u->length > 0 ? (uint64_t)u->length : 0) ? 0 : 1;
}

bool xc_http_put_fd(XcConn *c, const char *path_query, int fd, int64_t length,
                    XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    Up u = {.fd = fd, .length = length, .progress = progress, .opaque = opaque};
    strbuf_init(&u.body, 0);
    CURL *h = xc_transfer_handle(c, path_query);
    if (!h) {
        res->error = xstrdup("cannot set up the transfer");
        return false;
    }
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, &u);
    if (length >= 0)
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)length);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &u);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &u);
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
    if (length < 0)
        hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->http_status);
    if (u.read_errno)
        res->error = xasprintf("cannot read the data to send: %s", strerror(u.read_errno));
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        res->error = xstrdup("cancelled");
    else if (rc != CURLE_OK)
        res->error = xasprintf("transfer failed: %s", curl_easy_strerror(rc));
    res->body = strbuf_detach(&u.body, NULL);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return !res->error && res->http_status == 200;
}

/* ---- GET into a file ------------------------------------------------------------------- */

#define OUT_BUFFER (1024 * 1024)
/* Pieces at least this large are written without copying them first. */
#define OUT_DIRECT (128 * 1024)

typedef struct Down {
    int fd;
    uint8_t *buf;
    uint8_t *buf_ptr; /* what flush_out writes when not buf */
    size_t len;
    long status;
    CURL *h;
    int write_errno;
    uint64_t got;
    StrBuf body; /* the reply of a failed request */
    XcTransferProgress progress;
    void *opaque;
} Down;

static bool flush_out(Down *d)
{
    const uint8_t *p = d->buf_ptr ? d->buf_ptr : d->buf;
    size_t done = 0;
    while (done < d->len) {
        ssize_t k = write(d->fd, p + done, d->len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            d->write_errno = k < 0 ? errno : EIO;
            return false;
        }
        done += (size_t)k;
    }
    d->len = 0;
    return true;
}

static size_t down_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Down *d = userdata;
    size_t n = size * nmemb;
    if (!d->status)
        curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &d->status);
    if (d->status != 200) {
        if (d->body.len < 65536)
            strbuf_add(&d->body, ptr, n);
        return n;
    }
    size_t done = 0;
    if (d->len == 0 && n >= OUT_DIRECT) {
        /* A large piece: straight from curl's buffer, no copy. */
        d->buf_ptr = (uint8_t *)ptr;
        d->len = n;
        bool ok = flush_out(d);
        d->buf_ptr = NULL;
        if (!ok)
            return 0;
        d->got += n;
        return n;
    }
    while (done < n) {
        size_t k = n - done < OUT_BUFFER - d->len ? n - done : OUT_BUFFER - d->len;
        memcpy(d->buf + d->len, ptr + done, k);
        d->len += k;
        done += k;
        if (d->len == OUT_BUFFER && !flush_out(d))
            return 0;
    }
    d->got += n;
    return n;
}

static int down_info(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                     curl_off_t ulnow)
{
    Down *d = p;
    if (!d->progress)
        return 0;
    return d->progress(d->opaque, (uint64_t)dlnow, dltotal > 0 ? (uint64_t)dltotal : 0) ? 0 : 1;
}

bool xc_http_get_stream(XcConn *c, const char *path_query, const char *filename,
                        XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    bool to_stdout = strcmp(filename, "-") == 0;
    Down d = {.progress = progress, .opaque = opaque};
    strbuf_init(&d.body, 0);
    d.fd = to_stdout ? STDOUT_FILENO
                     : open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (d.fd < 0) {
        res->error = xasprintf("cannot create %s: %s", filename, strerror(errno));
        return false;
    }
    d.h = xc_transfer_handle(c, path_query);
    if (!d.h) {
        if (!to_stdout)
            close(d.fd);
        res->error = xstrdup("cannot set up the transfer");
        return false;
    }
    d.buf = xmalloc(OUT_BUFFER);
    curl_easy_setopt(d.h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, down_cb);
    curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(d.h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(d.h, CURLOPT_XFERINFOFUNCTION, down_info);
    curl_easy_setopt(d.h, CURLOPT_XFERINFODATA, &d);
    curl_easy_setopt(d.h, CURLOPT_BUFFERSIZE, 512L * 1024);
    CURLcode rc = curl_easy_perform(d.h);
    curl_easy_getinfo(d.h, CURLINFO_RESPONSE_CODE, &res->http_status);
    if (rc == CURLE_OK && res->http_status == 200)
        flush_out(&d);
    if (d.write_errno)
        res->error = xasprintf("cannot write %s: %s", filename, strerror(d.write_errno));
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        res->error = xstrdup("cancelled");
    else if (rc != CURLE_OK)
        res->error = xasprintf("transfer failed: %s", curl_easy_strerror(rc));
    res->body = strbuf_detach(&d.body, NULL);
    curl_easy_cleanup(d.h);
    free(d.buf);
    bool ok = !res->error && res->http_status == 200;
    if (!to_stdout && close(d.fd) != 0 && ok) {
        res->error = xasprintf("cannot write %s: %s", filename, strerror(errno));
        ok = false;
    }
    if (!ok && !to_stdout)
        unlink(filename);
    return ok;
}
