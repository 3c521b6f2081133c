/*
 * Commands about the agent and the guest as a whole: guest-sync, guest-ping,
 * guest-info, guest-get-osinfo, guest-get-host-name, guest-get-time,
 * guest-get-vcpus, guest-get-users and the vendor command
 * hyperxe-get-memory. All read-only: they read /proc, /sys, utmp and
 * os-release and change nothing in the guest.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <utmpx.h>

#include "config.h"
#include "agent/agent_io.h"
#include "agent/cmd.h"
#include "agent/qga_json.h"
#include "util/cleanup.h"
#include "util/xalloc.h"

#include "util/banned.h"

CMD_HANDLER(cmd_system_sync)
{
    *ret = json_object_new_int64(qga_arg_int(args, "id", 0));
    return true;
}

CMD_HANDLER(cmd_system_ping)
{
    return true;
}

CMD_HANDLER(cmd_system_info)
{
    size_t n;
    const QgaCommand *cmds = qga_dispatch_commands(&n);
    struct json_object *list = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_new_object();
        qga_json_add_bool(c, "enabled", qga_dispatch_enabled(ag, &cmds[i]));
        qga_json_add_str(c, "name", cmds[i].name);
        qga_json_add_bool(c, "success-response", cmds[i].success_response);
        json_object_array_add(list, c);
    }
    struct json_object *o = json_object_new_object();
    qga_json_add_str(o, "version", HX_VERSION);
    json_object_object_add(o, "supported_commands", list);
    *ret = o;
    return true;
}

/* -- os-release ------------------------------------------------------------ */

/*
 * Unquotes an os-release value in place (shell-like: "..." with backslash
 * escapes, '...' verbatim, or a bare word). Returns v.
 */
static char *cmd_system_unquote(char *v)
{
    char *w = v;
    const char *r = v;
    if (*r == '"') {
        r++;
        while (*r && *r != '"') {
            if (*r == '\\' && r[1])
                r++;
            *w++ = *r++;
        }
    } else if (*r == '\'') {
        r++;
        while (*r && *r != '\'')
            *w++ = *r++;
    } else {
        while (*r && !isspace((unsigned char)*r))
            *w++ = *r++;
    }
    *w = '\0';
    return v;
}

static const struct {
    const char *key;
    const char *field;
} cmd_system_os_fields[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"PRETTY_NAME", "pretty-name"},
    {"VERSION", "version"},
    {"VERSION_ID", "version-id"},
    {"VARIANT", "variant"},
    {"VARIANT_ID", "variant-id"},
};

static void cmd_system_parse_os_release(StrBuf *text, struct json_object *o)
{
    char *line = text->buf;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        while (isspace((unsigned char)*line))
            line++;
        char *eq = strchr(line, '=');
        if (*line != '#' && eq) {
            *eq = '\0';
            for (size_t i = 0; i < ARRAY_SIZE(cmd_system_os_fields); i++)
                if (STREQ(line, cmd_system_os_fields[i].key))
                    qga_json_add_str(o, cmd_system_os_fields[i].field, cmd_system_unquote(eq + 1));
        }
        line = next;
    }
}

CMD_HANDLER(cmd_system_osinfo)
{
    struct json_object *o = json_object_new_object();
    struct utsname u;
    if (uname(&u) == 0) {
        qga_json_add_str(o, "kernel-release", u.release);
        qga_json_add_str(o, "kernel-version", u.version);
        qga_json_add_str(o, "machine", u.machine);
    }
    _cleanup_free_ char *p1 = agent_io_path(ag->sysconfdir, "os-release");
    StrBuf text = STRBUF_INIT;
    int r = agent_io_read_file(p1, 64 * 1024, &text);
    if (r < 0 && r != -EFBIG && !ag->sysconfdir_given) {
        strbuf_reset(&text);
        r = agent_io_read_file("/usr/lib/os-release", 64 * 1024, &text);
    }
    if (r == 0 || r == -EFBIG)
        cmd_system_parse_os_release(&text, o);
    strbuf_release(&text);
    *ret = o;
    return true;
}

CMD_HANDLER(cmd_system_host_name)
{
    char name[HOST_NAME_MAX + 1];
    if (gethostname(name, sizeof(name)) < 0)
        return qga_error_errno(err, -errno, "cannot read the host name");
    name[HOST_NAME_MAX] = '\0';
    *ret = qga_json_add_str(json_object_new_object(), "host-name", name);
    return true;
}

CMD_HANDLER(cmd_system_time)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *ret = json_object_new_int64((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    return true;
}

/* -- vcpus ----------------------------------------------------------------- */

static int cmd_system_cmp_int(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

CMD_HANDLER(cmd_system_vcpus)
{
    DIR *d = opendir("/sys/devices/system/cpu");
    if (!d)
        return qga_error_errno(err, -errno, "cannot list /sys/devices/system/cpu");
    long *ids = NULL;
    size_t n = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 65536) {
        const char *s = de->d_name;
        if (strncmp(s, "cpu", 3) != 0 || !isdigit((unsigned char)s[3]))
            continue;
        char *end;
        long id = strtol(s + 3, &end, 10);
        if (*end || id < 0)
            continue;
        XGROW(ids, n + 1, alloc);
        ids[n++] = id;
    }
    closedir(d);
    if (n)
        qsort(ids, n, sizeof(*ids), cmd_system_cmp_int);

    struct json_object *list = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *path = xasprintf("/sys/devices/system/cpu/cpu%ld/online", ids[i]);
        StrBuf line = STRBUF_INIT;
        bool has_online = agent_io_read_line(path, &line) == 0;
        bool online = !has_online || STREQ(line.buf, "1");
        strbuf_release(&line);
        struct json_object *c = json_object_new_object();
        qga_json_add_int(c, "logical-id", ids[i]);
        qga_json_add_bool(c, "online", online);
        qga_json_add_bool(c, "can-offline", has_online);
        json_object_array_add(list, c);
    }
    free(ids);
    *ret = list;
    return true;
}

/* -- users ----------------------------------------------------------------- */

CMD_HANDLER(cmd_system_users)
{
    struct json_object *list = json_object_new_array();
    struct json_object *seen = json_object_new_object(); /* user -> entry */
    setutxent();
    struct utmpx *u;
    size_t count = 0;
    while ((u = getutxent()) && count < 4096) {
        if (u->ut_type != USER_PROCESS)
            continue;
        char user[sizeof(u->ut_user) + 1];
        memcpy(user, u->ut_user, sizeof(u->ut_user));
        user[sizeof(u->ut_user)] = '\0';
        if (!user[0])
            continue;
        double t = (double)u->ut_tv.tv_sec + (double)u->ut_tv.tv_usec / 1e6;
        struct json_object *e;
        if (json_object_object_get_ex(seen, user, &e)) {
            struct json_object *old;
            if (json_object_object_get_ex(e, "login-time", &old) && t < json_object_get_double(old))
                json_object_object_add(e, "login-time", json_object_new_double(t));
            continue;
        }
        e = json_object_new_object();
        qga_json_add_str(e, "user", user);
        json_object_object_add(e, "login-time", json_object_new_double(t));
        json_object_array_add(list, e);
        json_object_object_add(seen, user, json_object_get(e));
        count++;
    }
    endutxent();
    json_object_put(seen);
    *ret = list;
    return true;
}

/* -- memory (vendor) ------------------------------------------------------- */

static const struct {
    const char *key;   /* in /proc/meminfo */
    const char *field; /* in the reply */
} cmd_system_mem_fields[] = {
    {"MemTotal", "total-bytes"},         {"MemFree", "free-bytes"},
    {"MemAvailable", "available-bytes"}, {"Buffers", "buffers-bytes"},
    {"Cached", "cached-bytes"},          {"SwapTotal", "swap-total-bytes"},
    {"SwapFree", "swap-free-bytes"},
};

/*
 * hyperxe-get-memory: {"total-bytes", "free-bytes", "available-bytes",
 * "buffers-bytes", "cached-bytes", "swap-total-bytes", "swap-free-bytes"},
 * all in bytes, from /proc/meminfo. available-bytes is estimated as
 * free + buffers + cached on kernels without MemAvailable.
 */
CMD_HANDLER(cmd_system_memory)
{
    StrBuf text = STRBUF_INIT;
    int r = agent_io_read_file("/proc/meminfo", 256 * 1024, &text);
    if (r < 0 && r != -EFBIG) {
        strbuf_release(&text);
        return qga_error_errno(err, r, "cannot read /proc/meminfo");
    }
    uint64_t val[ARRAY_SIZE(cmd_system_mem_fields)];
    bool have[ARRAY_SIZE(cmd_system_mem_fields)] = {false};
    char *line = text.buf;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            for (size_t i = 0; i < ARRAY_SIZE(cmd_system_mem_fields); i++) {
                if (STREQ(line, cmd_system_mem_fields[i].key)) {
                    unsigned long long kb = strtoull(colon + 1, NULL, 10);
                    val[i] = kb > UINT64_MAX / 1024 ? UINT64_MAX : kb * 1024;
                    have[i] = true;
                }
            }
        }
        line = next;
    }
    strbuf_release(&text);
    if (!have[0] || !have[1])
        return qga_error_set(err, QGA_ERROR_GENERIC, "/proc/meminfo lacks MemTotal or MemFree");
    if (!have[2]) {
        val[2] = val[1] + (have[3] ? val[3] : 0) + (have[4] ? val[4] : 0);
        have[2] = true;
    }
    struct json_object *o = json_object_new_object();
    for (size_t i = 0; i < ARRAY_SIZE(cmd_system_mem_fields); i++)
        qga_json_add_uint(o, cmd_system_mem_fields[i].field, have[i] ? val[i] : 0);
    *ret = o;
    return true;
}
