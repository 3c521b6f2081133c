/*
 * guest-set-user-password: sets a user's password from a base64 string,
 * either already crypt()ed or in clear (then hashed here as SHA-512 crypt,
 * "$6$", which glibc, busybox and shadow-utils all verify). The entry is
 * rewritten in <sysconfdir>/shadow (or passwd when the guest has no shadow
 * file) through a temporary file and rename(), keeping owner and mode, under
 * the shadow lock when <sysconfdir> is /etc. Never writes a line it did not
 * check: user names and hashes with ':' or newlines are refused.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <shadow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_io.h"
#include "agent/b64.h"
#include "agent/cmd.h"
#include "util/cleanup.h"
#include "util/xalloc.h"

#include "util/banned.h"

#define CMD_PASSWD_MAX_FILE  (8u * 1024 * 1024)
#define CMD_PASSWD_MAX_FIELD 4096

static bool cmd_passwd_field_ok(const char *s, size_t len)
{
    if (len == 0 || len > CMD_PASSWD_MAX_FIELD || strlen(s) != len)
        return false;
    return strpbrk(s, ":\n\r") == NULL;
}

/*
 * Replaces field 2 (and, if lastchg, field 3) of user's line in path.
 * Returns 0, -ENOENT if the user has no line, or another -errno.
 */
static int cmd_passwd_edit(const char *path, const char *user, const char *hash, bool lastchg)
{
    StrBuf text = STRBUF_INIT, out = STRBUF_INIT;
    _cleanup_free_ char *tmp = NULL;
    int r = agent_io_read_file(path, CMD_PASSWD_MAX_FILE, &text);
    if (r < 0)
        goto done;
    struct stat st;
    if (stat(path, &st) < 0) {
        r = -errno;
        goto done;
    }

    size_t ulen = strlen(user);
    bool found = false;
    long days = (long)(time(NULL) / 86400);
    for (char *line = text.buf; line && *line;) {
        char *next = strchr(line, '\n');
        size_t len = next ? (size_t)(next - line) : strlen(line);
        if (!found && len > ulen && strncmp(line, user, ulen) == 0 && line[ulen] == ':') {
            found = true;
            /* user:OLD:lastchg:rest... -> user:HASH:days:rest... */
            const char *f2 = line + ulen + 1;
            const char *end = line + len;
            const char *f2e = memchr(f2, ':', (size_t)(end - f2));
            strbuf_add(&out, line, ulen + 1);
            strbuf_adds(&out, hash);
            if (f2e) {
                const char *f3 = f2e + 1;
                const char *f3e = memchr(f3, ':', (size_t)(end - f3));
                if (lastchg && f3e) {
                    strbuf_addf(&out, ":%ld", days);
                    strbuf_add(&out, f3e, (size_t)(end - f3e));
                } else {
                    strbuf_add(&out, f2e, (size_t)(end - f2e));
                }
            }
        } else {
            strbuf_add(&out, line, len);
        }
        if (next)
            strbuf_addch(&out, '\n');
        line = next ? next + 1 : NULL;
    }
    if (!found) {
        r = -ENOENT;
        goto done;
    }

    tmp = xasprintf("%s+", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        r = -errno;
        goto done;
    }
    r = agent_io_write_all(fd, out.buf, out.len);
    if (r == 0 && (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, st.st_mode & 07777) < 0 ||
                   fsync(fd) < 0))
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
done:
    strbuf_release(&text);
    strbuf_release(&out);
    return r;
}

CMD_HANDLER(cmd_passwd_set)
{
    const char *user = qga_arg_str(args, "username");
    const char *b64 = qga_arg_str(args, "password");
    bool crypted = qga_arg_bool(args, "crypted", false);

    if (ag->stdio && !ag->sysconfdir_given)
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "guest-set-user-password is refused in --stdio mode without "
                             "--sysconfdir");
    if (!cmd_passwd_field_ok(user, strlen(user)))
        return qga_error_set(err, QGA_ERROR_GENERIC, "Invalid parameter 'username'");

    StrBuf pw = STRBUF_INIT;
    if (!b64_decode(&pw, b64) || pw.len > CMD_PASSWD_MAX_FIELD || strlen(pw.buf) != pw.len) {
        strbuf_release(&pw);
        return qga_error_set(err, QGA_ERROR_GENERIC,
                             "Invalid parameter 'password': not base64 of a text without NUL");
    }

    char *hash = NULL;
    if (crypted) {
        if (!cmd_passwd_field_ok(pw.buf, pw.len)) {
            strbuf_release(&pw);
            return qga_error_set(err, QGA_ERROR_GENERIC,
                                 "Invalid parameter 'password': a crypted password cannot "
                                 "contain ':' or newlines");
        }
        hash = xstrdup(pw.buf);
    } else {
        char *setting = crypt_gensalt_ra("$6$", 0, NULL, 0);
        void *data = NULL;
        int size = 0;
        const char *h = setting ? crypt_ra(pw.buf, setting, &data, &size) : NULL;
        if (h && h[0] != '*' && cmd_passwd_field_ok(h, strlen(h)))
            hash = xstrdup(h);
        free(setting);
        if (data) {
            explicit_bzero(data, (size_t)size);
            free(data);
        }
    }
    explicit_bzero(pw.buf, pw.len);
    strbuf_release(&pw);
    if (!hash)
        return qga_error_set(err, QGA_ERROR_GENERIC, "cannot hash the password");

    _cleanup_free_ char *shadow = agent_io_path(ag->sysconfdir, "shadow");
    _cleanup_free_ char *passwd = agent_io_path(ag->sysconfdir, "passwd");
    bool lock = STREQ(ag->sysconfdir, "/etc");
    if (lock && lckpwdf() < 0) {
        free(hash);
        return qga_error_errno(err, -errno, "cannot lock the password files");
    }
    bool have_shadow = access(shadow, F_OK) == 0;
    int r = cmd_passwd_edit(have_shadow ? shadow : passwd, user, hash, have_shadow);
    if (lock)
        ulckpwdf();
    free(hash);
    if (r == -ENOENT)
        return qga_error_set(err, QGA_ERROR_GENERIC, "user '%s' has no entry in %s", user,
                             have_shadow ? shadow : passwd);
    if (r < 0)
        return qga_error_errno(err, r, "cannot update %s", have_shadow ? shadow : passwd);
    return true;
}
