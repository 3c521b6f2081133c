/*
 * Fetching an installer's kernel and initrd from a network repository (see
 * repo.h). Downloads are bounded (size, connect and stall timeouts) and go
 * to files in the caller's directory; a failed fetch leaves nothing there.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <nfsc/libnfs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/repo.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define REPO_MAX_FILE (1024LL * 1024 * 1024) /* an installer's initrd is far smaller */
#define REPO_CONNECT_TIMEOUT_S 10
#define REPO_STALL_TIMEOUT_S 30
#define REPO_NFS_TIMEOUT_MS 15000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool is_nfs(const char *url)
{
    return strncmp(url, "nfs:", 4) == 0;
}

bool repo_url_supported(const char *url)
{
    return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0 ||
           strncmp(url, "ftp://", 6) == 0 || is_nfs(url);
}

typedef struct Sink {
    int fd;
    int64_t written;
    bool too_big;
} Sink;

static size_t sink_write(char *data, size_t size, size_t nmemb, void *p)
{
    Sink *s = p;
    size_t n = size * nmemb;
    if (s->written + (int64_t)n > REPO_MAX_FILE) {
        s->too_big = true;
        return 0;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(s->fd, data + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        done += (size_t)w;
    }
    s->written += (int64_t)n;
    return n;
}

/* Downloads url into path; on failure appends the reason to why and removes path. */
static bool fetch_curl(const char *url, const char *path, StrBuf *why)
{
    pthread_once(&curl_once, curl_init_once);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        strbuf_addf(why, "cannot create %s: %s", path, strerror(errno));
        return false;
    }
    Sink s = {.fd = fd};
    CURL *c = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,ftp");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https,ftp");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)REPO_CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)REPO_STALL_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)REPO_MAX_FILE);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hyperxe-installer-fetch");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    bool ok = rc == CURLE_OK && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        strbuf_addf(why, "%s: %s", url,
                    s.too_big ? "larger than 1 GiB" : errbuf[0] ? errbuf : curl_easy_strerror(rc));
        unlink(path);
    }
    return ok;
}

typedef struct NfsTarget {
    char *server;
    char *export;
} NfsTarget;

/* "nfs://server/path" or "nfs:server:/path". */
static bool nfs_split(const char *url, NfsTarget *t)
{
    const char *rest;
    const char *slash;
    if (strncmp(url, "nfs://", 6) == 0) {
        rest = url + 6;
        slash = strchr(rest, '/');
        if (!slash || slash == rest)
            return false;
        t->server = xstrndup(rest, (size_t)(slash - rest));
        t->export = xstrdup(slash);
    } else {
        rest = url + 4;
        const char *colon = strchr(rest, ':');
        if (!colon || colon == rest || colon[1] != '/')
            return false;
        t->server = xstrndup(rest, (size_t)(colon - rest));
        t->export = xstrdup(colon + 1);
    }
    size_t n = strlen(t->export);
    while (n > 1 && t->export[n - 1] == '/')
        t->export[--n] = '\0';
    return true;
}

/* Copies file rel (relative to the export) into path. */
static bool fetch_nfs(const NfsTarget *t, const char *rel, const char *path, StrBuf *why)
{
    struct nfs_context *nfs = nfs_init_context();
    if (!nfs) {
        strbuf_adds(why, "cannot make an NFS client");
        return false;
    }
    nfs_set_timeout(nfs, REPO_NFS_TIMEOUT_MS);
    bool ok = false;
    struct nfsfh *fh = NULL;
    int fd = -1;
    _cleanup_free_ char *abs = xasprintf("/%s", rel);
    if (nfs_mount(nfs, t->server, t->export) != 0) {
        strbuf_addf(why, "nfs:%s:%s: %s", t->server, t->export, nfs_get_error(nfs));
        goto out;
    }
    if (nfs_open(nfs, abs, O_RDONLY, &fh) != 0) {
        strbuf_addf(why, "nfs:%s:%s%s: %s", t->server, t->export, abs, nfs_get_error(nfs));
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        strbuf_addf(why, "cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    char *buf = xmalloc(256 * 1024);
    Sink s = {.fd = fd};
    for (;;) {
        int n = nfs_read(nfs, fh, 256 * 1024, buf);
        if (n < 0) {
            strbuf_addf(why, "nfs:%s:%s%s: %s", t->server, t->export, abs, nfs_get_error(nfs));
            break;
        }
        if (n == 0) {
            ok = fsync(fd) == 0;
            break;
        }
        if (sink_write(buf, 1, (size_t)n, &s) != (size_t)n) {
            strbuf_addf(why, "nfs:%s:%s%s: %s", t->server, t->export, abs,
                        s.too_big ? "larger than 1 GiB" : strerror(errno));
            break;
        }
    }
    free(buf);
out:
    if (fd >= 0)
        close(fd);
    if (!ok && fd >= 0)
        unlink(path);
    if (fh)
        nfs_close(nfs, fh);
    nfs_destroy_context(nfs);
    return ok;
}

typedef struct Layout {
    const char *name;
    const char *distro; /* matches other_config:install-distro */
    const char *kernel; /* printf-style: %1$s release, %2$s arch (Debian names) */
    const char *initrd;
} Layout;

static const char *debian_arch(const char *arch)
{
    if (!arch || !*arch || strcmp(arch, "x86_64") == 0 || strcmp(arch, "amd64") == 0)
        return "amd64";
    return strcmp(arch, "i686") == 0 || strcmp(arch, "i386") == 0 ? "i386" : arch;
}

static const char *rpm_arch(const char *arch)
{
    if (!arch || !*arch || strcmp(arch, "amd64") == 0)
        return "x86_64";
    return strcmp(arch, "i686") == 0 ? "i386" : arch;
}

static char *layout_path(const char *kind, const char *release, const char *arch, bool kernel)
{
    if (strcmp(kind, "debian") == 0 || strcmp(kind, "ubuntu") == 0)
        return xasprintf("dists/%s/main/installer-%s/current/images/netboot/%s-installer/%s/%s",
                         release, debian_arch(arch), kind, debian_arch(arch),
                         kernel ? "linux" : "initrd.gz");
    if (strcmp(kind, "pxeboot") == 0)
        return xstrdup(kernel ? "images/pxeboot/vmlinuz" : "images/pxeboot/initrd.img");
    if (strcmp(kind, "xen") == 0)
        return xstrdup(kernel ? "images/xen/vmlinuz" : "images/xen/initrd.img");
    return xasprintf("boot/%s/loader/%s", rpm_arch(arch), kernel ? "linux" : "initrd");
}

static char *join_url(const char *base, const char *rel)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return xasprintf("%.*s/%s", (int)n, base, rel);
}

static char *installer_args(const char *url, const char *distro)
{
    if (distro && strcmp(distro, "rhlike") == 0)
        return xasprintf("repo=%s", url);
    if (distro && strcmp(distro, "sleslike") == 0)
        return xasprintf("install=%s", url);
    return xstrdup("");
}

bool repo_fetch_installer(const RepoRequest *req, RepoInstaller *out, char **why)
{
    memset(out, 0, sizeof(*out));
    StrBuf reasons = STRBUF_INIT;
    if (!repo_url_supported(req->url)) {
        *why = xasprintf("install-repository '%s' is not an http://, https://, ftp:// or nfs "
                         "URL (or \"cdrom\")",
                         req->url);
        return false;
    }
    NfsTarget nt = {0};
    if (is_nfs(req->url) && !nfs_split(req->url, &nt)) {
        *why = xasprintf("install-repository '%s': use nfs://server/path or nfs:server:/path",
                         req->url);
        return false;
    }
    const char *d = req->distro && *req->distro ? req->distro : NULL;
    const char *release = req->release && *req->release ? req->release : "stable";
    /* The layouts to try, the distribution's own first. */
    const char *order_deb[] = {"debian", "ubuntu", NULL};
    const char *order_rh[] = {"pxeboot", "xen", NULL};
    const char *order_sles[] = {"sles", NULL};
    const char *order_all[] = {"debian", "ubuntu", "pxeboot", "xen", "sles", NULL};
    const char **order = !d                              ? order_all
                         : strcmp(d, "debianlike") == 0 ? order_deb
                         : strcmp(d, "rhlike") == 0     ? order_rh
                         : strcmp(d, "sleslike") == 0   ? order_sles
                                                        : order_all;
    _cleanup_free_ char *kpath = xasprintf("%s/installer-kernel", req->dest_dir);
    _cleanup_free_ char *ipath = xasprintf("%s/installer-initrd", req->dest_dir);
    bool ok = false;
    for (size_t i = 0; order[i] && !ok; i++) {
        _cleanup_free_ char *krel = layout_path(order[i], release, req->arch, true);
        _cleanup_free_ char *irel = layout_path(order[i], release, req->arch, false);
        if (reasons.len)
            strbuf_adds(&reasons, "; ");
        bool k, r = false;
        if (nt.server) {
            k = fetch_nfs(&nt, krel, kpath, &reasons);
            if (k)
                r = fetch_nfs(&nt, irel, ipath, &reasons);
        } else {
            _cleanup_free_ char *ku = join_url(req->url, krel);
            _cleanup_free_ char *iu = join_url(req->url, irel);
            k = fetch_curl(ku, kpath, &reasons);
            if (k)
                r = fetch_curl(iu, ipath, &reasons);
        }
        if (k && r) {
            ok = true;
            out->layout = xstrdup(order[i]);
        } else if (k) {
            unlink(kpath);
        }
    }
    free(nt.server);
    free(nt.export);
    if (!ok) {
        *why = xasprintf("no installer kernel and initrd found in %s (%s)", req->url, reasons.buf);
        strbuf_release(&reasons);
        return false;
    }
    strbuf_release(&reasons);
    out->kernel = xstrdup(kpath);
    out->initrd = xstrdup(ipath);
    const char *dist = d ? d
                       : strcmp(out->layout, "pxeboot") == 0 || strcmp(out->layout, "xen") == 0
                           ? "rhlike"
                       : strcmp(out->layout, "sles") == 0 ? "sleslike"
                                                          : "debianlike";
    out->args = installer_args(req->url, dist);
    return true;
}

void repo_installer_release(RepoInstaller *inst)
{
    free(inst->kernel);
    free(inst->initrd);
    free(inst->args);
    free(inst->layout);
    memset(inst, 0, sizeof(*inst));
}
