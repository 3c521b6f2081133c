/*
 * HTTP PUT and GET of files through libcurl for xe, and the hand-over of the
 * file descriptor itself to a local server. See transfer.h.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/transfer.h"
#include "util/macros.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define XFER_BUFFER (2 * 1024 * 1024)

/* Downloads are written in pieces of this size (fewer, larger writes). */
#define GET_BUFFER (4 * 1024 * 1024)

typedef struct Xfer {
    char *buf; /* GET: bytes not yet written */
    size_t buffered;
    uint64_t buf_off; /* sparse framing: file offset of buf[0] */
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
    /* GET in the sparse framing: records {offset u64, length u32} + bytes */
    bool framed, frame_end, have_size;
    uint8_t fh[12];
    size_t fh_have;
    uint64_t rec_left;
    uint64_t file_size;
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

#define HOLE_UNIT (64 * 1024)

static bool zero_block(const char *p, size_t n)
{
    static const char z[4096];
    for (; n >= sizeof(z); p += sizeof(z), n -= sizeof(z))
        if (memcmp(p, z, sizeof(z)) != 0)
            return false;
    return n == 0 || memcmp(p, z, n) == 0;
}

static bool put(Xfer *x, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = x->seekable ? pwrite(x->fd, p, n, (off_t)x->pos) : write(x->fd, p, n);
        if (k <= 0) {
            x->write_errno = k < 0 ? errno : EIO;
            return false;
        }
        x->pos += (uint64_t)k;
        p += k;
        n -= (size_t)k;
        if (x->pos > x->extent)
            x->extent = x->pos;
    }
    return true;
}

/* Writes data (starting at x->pos), leaving holes for aligned 64 KiB blocks of
 * zeros (smaller ones are not worth the calls). */
static bool flush_data(Xfer *x, const char *ptr, size_t n)
{
    if (!x->seekable)
        return put(x, ptr, n);
    size_t done = 0, run = 0; /* run: start of pending data in ptr */
    while (done < n) {
        size_t chunk = HOLE_UNIT - (size_t)((x->pos + (done - run)) % HOLE_UNIT);
        if (chunk > n - done)
            chunk = n - done;
        if (chunk == HOLE_UNIT && zero_block(ptr + done, chunk)) {
            if (done > run && !put(x, ptr + run, done - run))
                return false;
            x->pos += chunk;
            done += chunk;
            run = done;
            continue;
        }
        done += chunk;
    }
    return done <= run || put(x, ptr + run, done - run);
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Writes the gathered bytes (file offset x->buf_off) and empties the buffer. */
static bool flush_framed(Xfer *x)
{
    if (!x->buffered)
        return true;
    if (!x->seekable && x->pos < x->buf_off) {
        /* A pipe cannot have holes: the zeros are written. */
        static const char z[65536];
        while (x->pos < x->buf_off)
            if (!put(x, z, (size_t)MIN(x->buf_off - x->pos, (uint64_t)sizeof(z))))
                return false;
    }
    x->pos = x->buf_off;
    bool ok = put(x, x->buf, x->buffered);
    x->buf_off += x->buffered;
    x->buffered = 0;
    return ok;
}

/* Sparse framing: each record's bytes go to their offset, gathered into large
 * writes; the gaps between records stay holes. */
static size_t framed_cb(Xfer *x, const char *ptr, size_t n)
{
    size_t done = 0;
    while (done < n) {
        if (x->frame_end) {
            x->write_errno = EPROTO;
            return 0;
        }
        if (x->rec_left == 0) {
            size_t k = MIN(n - done, sizeof(x->fh) - x->fh_have);
            memcpy(x->fh + x->fh_have, ptr + done, k);
            x->fh_have += k;
            done += k;
            if (x->fh_have < sizeof(x->fh))
                continue;
            x->fh_have = 0;
            uint64_t off = get_le(x->fh, 8);
            uint64_t len = get_le(x->fh + 8, 4);
            if (off == 0 && len == 0) {
                x->frame_end = true;
            } else if (len == 0) {
                x->file_size = off;
                x->have_size = true;
            } else {
                if (off < x->buf_off + x->buffered) {
                    x->write_errno = EPROTO;
                    return 0;
                }
                /* A gap: what is gathered goes out, the new run starts at off. */
                if (off != x->buf_off + x->buffered) {
                    if (!flush_framed(x))
                        return 0;
                    x->buf_off = off;
                }
                x->rec_left = len;
            }
            continue;
        }
        size_t k = (size_t)MIN((uint64_t)(n - done), x->rec_left);
        k = MIN(k, GET_BUFFER - x->buffered);
        memcpy(x->buf + x->buffered, ptr + done, k);
        x->buffered += k;
        x->rec_left -= k;
        done += k;
        if (x->buffered == GET_BUFFER && !flush_framed(x))
            return 0;
    }
    return n;
}

static size_t file_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Xfer *x = userdata;
    size_t n = size * nmemb;
    if (!x->status)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status != 200)
        return body_cb(ptr, size, nmemb, userdata);
    if (x->framed)
        return framed_cb(x, ptr, n);
    /* Gather small pieces (the server's chunks) into big writes. */
    size_t done = 0;
    while (done < n) {
        size_t k = MIN(n - done, GET_BUFFER - x->buffered);
        memcpy(x->buf + x->buffered, ptr + done, k);
        x->buffered += k;
        done += k;
        if (x->buffered == GET_BUFFER) {
            if (!flush_data(x, x->buf, x->buffered))
                return 0;
            x->buffered = 0;
        }
    }
    return n;
}

static int bulk_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    int size = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return CURL_SOCKOPT_OK;
}

static bool perform(Xfer *x, XcTransferResult *res)
{
    curl_easy_setopt(x->h, CURLOPT_SOCKOPTFUNCTION, bulk_sockopt);
    curl_easy_setopt(x->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(x->h, CURLOPT_XFERINFOFUNCTION, xferinfo);
    curl_easy_setopt(x->h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(x->h, CURLOPT_BUFFERSIZE, 2L * 1024 * 1024);
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

/* ---- sparse uploads: XenServer's chunked framing ---- */

#define SPARSE_RECORD (16u * 1024 * 1024)

typedef struct Extent {
    uint64_t off, len;
} Extent;

typedef struct SparseReader {
    int fd;
    uint64_t size;
    Extent *ext;
    size_t n, i;       /* extents and the current one */
    uint64_t done;     /* bytes of the current extent already sent */
    uint8_t hdr[12];
    size_t hdr_len, hdr_sent;
    uint64_t rec_left; /* data bytes of the current record still to send */
    int stage;         /* 0: records, 1: length marker, 2: terminator, 3: done */
    int error;
} SparseReader;

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void set_hdr(SparseReader *r, uint64_t off, uint32_t len)
{
    put_le(r->hdr, off, 8);
    put_le(r->hdr + 8, len, 4);
    r->hdr_len = 12;
    r->hdr_sent = 0;
}

/* The data extents of fd (holes skipped); the whole file if the file system cannot tell. */
static bool file_extents(int fd, uint64_t size, Extent **out, size_t *n)
{
    size_t alloc = 0;
    *out = NULL;
    *n = 0;
    uint64_t pos = 0;
    while (pos < size) {
        off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
        if (d < 0) {
            if (errno == ENXIO)
                break;
            free(*out);
            *out = xnew0(Extent, 1);
            (*out)[0] = (Extent){0, size};
            *n = size ? 1 : 0;
            return true;
        }
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            h = (off_t)size;
        XGROW(*out, *n + 1, alloc);
        (*out)[(*n)++] = (Extent){(uint64_t)d, (uint64_t)h - (uint64_t)d};
        pos = (uint64_t)h;
    }
    return true;
}

static size_t sparse_read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    SparseReader *r = userdata;
    size_t max = size * nitems, out = 0;
    while (out < max && r->stage < 3) {
        if (r->hdr_sent < r->hdr_len) {
            size_t k = MIN(max - out, r->hdr_len - r->hdr_sent);
            memcpy(buf + out, r->hdr + r->hdr_sent, k);
            r->hdr_sent += k;
            out += k;
            continue;
        }
        if (r->rec_left) {
            size_t k = (size_t)MIN((uint64_t)(max - out), r->rec_left);
            ssize_t got = pread(r->fd, buf + out, k, (off_t)(r->ext[r->i].off + r->done));
            if (got <= 0) {
                r->error = got < 0 ? errno : EIO;
                return CURL_READFUNC_ABORT;
            }
            out += (size_t)got;
            r->done += (uint64_t)got;
            r->rec_left -= (uint64_t)got;
            if (r->done == r->ext[r->i].len) {
                r->i++;
                r->done = 0;
            }
            continue;
        }
        if (r->stage == 0 && r->i < r->n) {
            uint64_t len = MIN(r->ext[r->i].len - r->done, (uint64_t)SPARSE_RECORD);
            set_hdr(r, r->ext[r->i].off + r->done, (uint32_t)len);
            r->rec_left = len;
        } else if (r->stage == 0) {
            set_hdr(r, r->size, 0); /* the file's length */
            r->stage = 1;
        } else if (r->stage == 1) {
            set_hdr(r, 0, 0);
            r->stage = 2;
        } else {
            r->stage = 3;
        }
    }
    return out;
}

bool xc_http_put_file_sparse(XcConn *c, const char *path_query, const char *filename,
                             XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    SparseReader sr = {.fd = open(filename, O_RDONLY | O_CLOEXEC)};
    if (sr.fd < 0) {
        res->error = xasprintf("cannot open %s: %s", filename, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(sr.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        res->error = xasprintf("%s is not a regular file", filename);
        close(sr.fd);
        return false;
    }
    sr.size = (uint64_t)st.st_size;
    file_extents(sr.fd, sr.size, &sr.ext, &sr.n);
    uint64_t body = 2 * 12;
    for (size_t i = 0; i < sr.n; i++)
        body += sr.ext[i].len + 12 * ((sr.ext[i].len + SPARSE_RECORD - 1) / SPARSE_RECORD);
    Xfer x = {.fd = -1, .progress = progress, .opaque = opaque};
    strbuf_init(&x.body, 0);
    x.h = xc_transfer_handle(c, path_query);
    if (!x.h) {
        close(sr.fd);
        free(sr.ext);
        res->error = xstrdup("cannot set up the transfer");
        return false;
    }
    curl_easy_setopt(x.h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x.h, CURLOPT_READFUNCTION, sparse_read_cb);
    curl_easy_setopt(x.h, CURLOPT_READDATA, &sr);
    curl_easy_setopt(x.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body);
    curl_easy_setopt(x.h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x);
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
    curl_easy_setopt(x.h, CURLOPT_HTTPHEADER, hdr);
    bool ok = perform(&x, res);
    if (sr.error && !res->error)
        res->error = xasprintf("cannot read %s: %s", filename, strerror(sr.error));
    curl_slist_free_all(hdr);
    close(sr.fd);
    free(sr.ext);
    return ok && !sr.error;
}

static bool get_file(XcConn *c, const char *path_query, const char *filename, bool framed,
                     XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    Xfer x = {.progress = progress, .opaque = opaque, .framed = framed};
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
    x.buf = xmalloc(GET_BUFFER);
    bool ok = perform(&x, res);
    if (ok && framed && !flush_framed(&x)) {
        res->error = xasprintf("cannot write %s: %s", filename, strerror(x.write_errno));
        ok = false;
    } else if (ok && !framed && x.buffered && !flush_data(&x, x.buf, x.buffered)) {
        res->error = xasprintf("cannot write %s: %s", filename, strerror(x.write_errno));
        ok = false;
    }
    free(x.buf);
    if (ok && framed && !x.frame_end) {
        res->error = xstrdup("the server's sparse stream ended early");
        ok = false;
    }
    if (ok && framed)
        x.pos = x.file_size;
    if (ok && framed && !x.seekable && x.pos > x.extent) {
        /* A pipe: the trailing zeros must be written. */
        static const char z[65536];
        uint64_t left = x.pos - x.extent;
        x.pos = x.extent;
        while (ok && left) {
            size_t k = (size_t)MIN(left, (uint64_t)sizeof(z));
            ok = put(&x, z, k);
            left -= k;
        }
    }
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

bool xc_http_get_file(XcConn *c, const char *path_query, const char *filename,
                      XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    return get_file(c, path_query, filename, false, progress, opaque, res);
}

bool xc_http_get_file_sparse(XcConn *c, const char *path_query, const char *filename,
                             XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    return get_file(c, path_query, filename, true, progress, opaque, res);
}

/* ---- handing the file itself to a local server ---- */

/* The protocol of the switch (HTTP/1.1 Upgrade) that hands a descriptor over. */
#define FD_UPGRADE "hyperxe-fd"
/* Bound on what we keep of a reply head or body. */
#define FD_REPLY_MAX (64 * 1024)

bool xc_transfer_can_pass_fd(XcConn *c)
{
    return xc_unix_path(c) != NULL && geteuid() == 0;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    return s;
}

static bool send_all(int s, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(s, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Reads the reply head into head (up to and without the blank line; what came
 * after it stays in head past *head_len). Returns the status, 0 on failure. */
static long read_reply_head(int s, StrBuf *head, size_t *head_len)
{
    char buf[4096];
    for (;;) {
        char *end = head->len ? strstr(head->buf, "\r\n\r\n") : NULL;
        if (end) {
            *head_len = (size_t)(end - head->buf);
            long status = 0;
            if (sscanf(head->buf, "HTTP/%*d.%*d %ld", &status) != 1)
                return 0;
            return status;
        }
        if (head->len > FD_REPLY_MAX)
            return 0;
        ssize_t k = recv(s, buf, sizeof(buf), 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        strbuf_add(head, buf, (size_t)k);
    }
}

/* The value of header name in a reply head, or -1. */
static long long head_number(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = head; p && p < head + len;) {
        const char *eol = memchr(p, '\n', (size_t)(head + len - p));
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return strtoll(p + nl + 1, NULL, 10);
        p = eol ? eol + 1 : NULL;
    }
    return -1;
}

static bool send_fd(int s, int fd)
{
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                        .msg_controllen = sizeof(cm.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t k;
    do
        k = sendmsg(s, &mh, MSG_NOSIGNAL);
    while (k < 0 && errno == EINTR);
    return k == 1;
}

/* One transfer by descriptor: the request, the switch, the descriptor, then
 * the outcome line while the server works (progress is polled meanwhile). */
static bool fd_transfer(XcConn *c, const char *method, const char *path_query, int file_fd,
                        XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    int s = connect_unix(xc_unix_path(c));
    if (s < 0) {
        res->error = xasprintf("cannot connect to %s: %s", xc_where(c), strerror(errno));
        return false;
    }
    char *req = xasprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: xe-cli/hyperxe\r\n"
                          "Upgrade: " FD_UPGRADE "\r\nConnection: Upgrade\r\n%s\r\n",
                          method, path_query,
                          strcmp(method, "PUT") == 0 ? "Content-Length: 0\r\n" : "");
    bool sent = send_all(s, req, strlen(req));
    free(req);
    StrBuf in;
    strbuf_init(&in, 0);
    size_t head_len = 0;
    long status = sent ? read_reply_head(s, &in, &head_len) : 0;
    bool ok = false;
    if (!status) {
        res->error = xasprintf("no valid reply from %s", xc_where(c));
    } else if (status != 101) {
        /* Refused: the body says why (in XenAPI terms). */
        res->http_status = status;
        long long want = head_number(in.buf, head_len, "Content-Length");
        size_t have = in.len - head_len - 4;
        char buf[4096];
        while ((want < 0 || (long long)have < want) && have < FD_REPLY_MAX) {
            ssize_t k = recv(s, buf, sizeof(buf), 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            strbuf_add(&in, buf, (size_t)k);
            have += (size_t)k;
        }
        res->body = xstrndup(in.buf + head_len + 4, have);
    } else if (in.len != head_len + 4 || !send_fd(s, file_fd)) {
        res->error = xasprintf("cannot hand the file to %s: %s", xc_where(c),
                               in.len != head_len + 4 ? "unexpected bytes" : strerror(errno));
    } else {
        /* The server works on the file; its outcome comes as one line. */
        strbuf_reset(&in);
        char buf[512];
        for (;;) {
            struct pollfd p = {.fd = s, .events = POLLIN};
            int n = poll(&p, 1, 200);
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0) {
                if (progress)
                    progress(opaque, 0, 0);
                continue;
            }
            ssize_t k = recv(s, buf, sizeof(buf), 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0 || in.len > FD_REPLY_MAX)
                break;
            strbuf_add(&in, buf, (size_t)k);
        }
        while (in.len && (in.buf[in.len - 1] == '\n' || in.buf[in.len - 1] == '\r'))
            in.buf[--in.len] = '\0';
        if (in.len >= 2 && strncmp(in.buf, "OK", 2) == 0) {
            res->http_status = 200;
            ok = true;
        } else if (in.len) {
            res->http_status = 500;
            res->body = xstrdup(in.buf);
        } else {
            res->error = xasprintf("%s closed the connection before the end", xc_where(c));
        }
    }
    strbuf_release(&in);
    close(s);
    return ok;
}

bool xc_fd_put_file(XcConn *c, const char *path_query, const char *filename,
                    XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    int fd = open(filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        res->error = xasprintf("cannot open %s: %s", filename, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        res->error = xasprintf("%s is not a regular file", filename);
        close(fd);
        return false;
    }
    bool ok = fd_transfer(c, "PUT", path_query, fd, progress, opaque, res);
    close(fd);
    return ok;
}

bool xc_fd_get_file(XcConn *c, const char *path_query, const char *filename,
                    XcTransferProgress progress, void *opaque, XcTransferResult *res)
{
    memset(res, 0, sizeof(*res));
    int fd = open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        res->error = xasprintf("cannot create %s: %s", filename, strerror(errno));
        return false;
    }
    bool ok = fd_transfer(c, "GET", path_query, fd, progress, opaque, res);
    if (close(fd) != 0 && ok) {
        res->error = xasprintf("cannot write %s: %s", filename, strerror(errno));
        ok = false;
    }
    if (!ok)
        unlink(filename);
    return ok;
}
