/*
 * What XenServer's eliloader does for a first boot from a network
 * repository (other_config:install-repository): find the installer's kernel
 * and initrd in the repository's tree and copy them to the host, so that the
 * VM boots them directly with its PV_args. Trees understood:
 *
 *   Debian/Ubuntu  dists/<release>/main/installer-<arch>/current/images/
 *                  netboot/{debian,ubuntu}-installer/<arch>/{linux,initrd.gz}
 *   RHEL-like      images/pxeboot/{vmlinuz,initrd.img} (then images/xen/)
 *   SLES-like      boot/<arch>/loader/{linux,initrd}
 *
 * over http, https and ftp (libcurl) and NFS (libnfs: nfs://server/path or
 * XenServer's nfs:server:/path). Nothing here touches the database.
 */
#ifndef HX_OPS_REPO_H
#define HX_OPS_REPO_H

#include <stdbool.h>

typedef struct RepoRequest {
    const char *url;     /* the repository */
    const char *distro;  /* other_config:install-distro: debianlike, rhlike, sleslike, or NULL */
    const char *arch;    /* other_config:install-arch: x86_64 (default), i386, amd64 */
    const char *release; /* other_config:debian-release (Debian trees; default "stable") */
    const char *dest_dir;
} RepoRequest;

typedef struct RepoInstaller {
    char *kernel; /* files in dest_dir */
    char *initrd;
    char *args;   /* what the installer needs on its command line (e.g. repo=URL), or "" */
    char *layout; /* what was found, for the log */
} RepoInstaller;

/* Fetches the kernel and initrd. On failure *why says which URLs were tried and why. */
bool repo_fetch_installer(const RepoRequest *req, RepoInstaller *out, char **why);
void repo_installer_release(RepoInstaller *inst);
/* True if url is a repository URL this module can read. */
bool repo_url_supported(const char *url);

#endif
