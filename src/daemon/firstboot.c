/*
 * The objects every hyperxe host has: the pool (one per pool), this host
 * with its metrics and CPUs, the control domain record, "Local storage"
 * (an ext SR under the state directory, the pool's default SR), the
 * "hyperxe Tools" ISO SR, the "DVD drives" SR and the default network
 * (bridge xenbr0). Created once; refreshed at each start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "daemon/daemon.h"
#include "ops/vm.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define API_VERSION_MAJOR 2
#define API_VERSION_MINOR 23

static char *read_file_line_value(const char *path, const char *key)
{
    _cleanup_fclose_ FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[1024];
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) != 0)
            continue;
        char *p = line + kl;
        while (*p == ' ' || *p == '\t' || *p == ':')
            p++;
        p[strcspn(p, "\n")] = '\0';
        return xstrdup(p);
    }
    return NULL;
}

static int64_t meminfo_bytes(const char *key)
{
    char *v = read_file_line_value("/proc/meminfo", key);
    int64_t kb = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return kb * 1024;
}

char *daemon_management_address(void)
{
    /* The interface of the default route, from /proc/net/route. */
    char iface[IF_NAMESIZE + 1] = "";
    FILE *f = fopen("/proc/net/route", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f)) {
            char name[IF_NAMESIZE + 1];
            unsigned long dest;
            if (sscanf(line, "%16s %lx", name, &dest) == 2 && dest == 0) {
                snprintf(iface, sizeof(iface), "%s", name);
                break;
            }
        }
        fclose(f);
    }
    struct ifaddrs *ifa = NULL;
    char *addr = NULL;
    if (getifaddrs(&ifa) == 0) {
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
                continue;
            if (iface[0] ? strcmp(i->ifa_name, iface) != 0 : (i->ifa_flags & IFF_LOOPBACK))
                continue;
            char buf[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, sizeof(buf));
            addr = xstrdup(buf);
            break;
        }
        freeifaddrs(ifa);
    }
    return addr ? addr : xstrdup("");
}

static void set_map_entry(XsValue *m, const char *k, const char *v)
{
    xv_struct_set_string(m, k, v ? v : "");
}

static DbObj *first_of(Db *db, int cls)
{
    size_t n;
    DbObj *const *l = db_list(db, cls, &n);
    return n ? l[0] : NULL;
}

static DbObj *make_sr(DbTxn *txn, HxEnv *env, DbObj *host, const char *name, const char *desc,
                      const char *type, const char *content_type, const char *path,
                      const char *key, XsError **errp)
{
    DbObj *sr = db_create(txn, XS_CLASS_SR, NULL, NULL, errp);
    if (!sr)
        return NULL;
    db_set_str(txn, sr, F_SR_NAME_LABEL, name);
    db_set_str(txn, sr, F_SR_NAME_DESCRIPTION, desc);
    db_set_str(txn, sr, F_SR_TYPE, type);
    db_set_str(txn, sr, F_SR_CONTENT_TYPE, content_type);
    if (key)
        db_map_set(txn, sr, F_SR_OTHER_CONFIG, key, "true");
    DbObj *pbd = db_create(txn, XS_CLASS_PBD, NULL, NULL, errp);
    if (!pbd)
        return NULL;
    db_set_str(txn, pbd, F_PBD_HOST, host->ref);
    db_set_str(txn, pbd, F_PBD_SR, sr->ref);
    XsValue *dc = xv_struct();
    if (path) {
        mkdir(path, 0755);
        xv_struct_set_string(dc, strcmp(type, "iso") == 0 ? "location" : "path", path);
    }
    db_set(txn, pbd, F_PBD_DEVICE_CONFIG, dc);
    db_set_bool(txn, pbd, F_PBD_CURRENTLY_ATTACHED, true);
    (void)env;
    return sr;
}

static void refresh_host(DbTxn *txn, HxEnv *env, DbObj *host, DbObj *metrics)
{
    char hostname[256] = "localhost";
    gethostname(hostname, sizeof(hostname) - 1);
    _cleanup_free_ char *address = daemon_management_address();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    _cleanup_free_ char *model = read_file_line_value("/proc/cpuinfo", "model name");
    _cleanup_free_ char *vendor = read_file_line_value("/proc/cpuinfo", "vendor_id");
    _cleanup_free_ char *family = read_file_line_value("/proc/cpuinfo", "cpu family");
    _cleanup_free_ char *cpumodel = read_file_line_value("/proc/cpuinfo", "model\t");
    _cleanup_free_ char *stepping = read_file_line_value("/proc/cpuinfo", "stepping");
    _cleanup_free_ char *mhz = read_file_line_value("/proc/cpuinfo", "cpu MHz");
    _cleanup_free_ char *flags = read_file_line_value("/proc/cpuinfo", "flags");

    if (!*db_str(host, F_HOST_NAME_LABEL))
        db_set_str(txn, host, F_HOST_NAME_LABEL, hostname);
    db_set_str(txn, host, F_HOST_HOSTNAME, hostname);
    db_set_str(txn, host, F_HOST_ADDRESS, *address ? address : "127.0.0.1");
    db_set_int(txn, host, F_HOST_API_VERSION_MAJOR, API_VERSION_MAJOR);
    db_set_int(txn, host, F_HOST_API_VERSION_MINOR, API_VERSION_MINOR);
    db_set_str(txn, host, F_HOST_API_VERSION_VENDOR, "hyperxe");
    db_set_bool(txn, host, F_HOST_ENABLED, true);
    db_set_str(txn, host, F_HOST_SCHED_POLICY, "credit");

    XsValue *sv = xv_struct();
    set_map_entry(sv, "product_brand", "hyperxe");
    set_map_entry(sv, "product_version", HX_VERSION);
    set_map_entry(sv, "build_number", HX_VERSION);
    set_map_entry(sv, "platform_name", "hyperxe");
    set_map_entry(sv, "platform_version", HX_VERSION);
    set_map_entry(sv, "xapi", "1.9");
    set_map_entry(sv, "hostname", hostname);
    set_map_entry(sv, "accelerator", env->accel);
    set_map_entry(sv, "hypervisor", strcmp(env->accel, "kvm") == 0 ? "KVM" : "QEMU TCG");
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%d", gmtime(&now));
    set_map_entry(sv, "date", date);
    db_set(txn, host, F_HOST_SOFTWARE_VERSION, sv);

    XsValue *ci = xv_struct();
    char n[32];
    snprintf(n, sizeof(n), "%ld", ncpu);
    set_map_entry(ci, "cpu_count", n);
    set_map_entry(ci, "socket_count", "1");
    set_map_entry(ci, "vendor", vendor);
    set_map_entry(ci, "speed", mhz);
    set_map_entry(ci, "modelname", model);
    set_map_entry(ci, "family", family);
    set_map_entry(ci, "model", cpumodel);
    set_map_entry(ci, "stepping", stepping);
    set_map_entry(ci, "flags", flags);
    db_set(txn, host, F_HOST_CPU_INFO, ci);

    XsValue *caps = xv_array();
    xv_array_push_string(caps, "hvm-3.0-x86_64");
    xv_array_push_string(caps, "hvm-3.0-x86_32");
    db_set(txn, host, F_HOST_CAPABILITIES, caps);
    XsValue *bl = xv_array();
    xv_array_push_string(bl, "pygrub");
    xv_array_push_string(bl, "eliloader");
    db_set(txn, host, F_HOST_SUPPORTED_BOOTLOADERS, bl);

    db_set_int(txn, metrics, F_HOST_METRICS_MEMORY_TOTAL, meminfo_bytes("MemTotal"));
    db_set_int(txn, metrics, F_HOST_METRICS_MEMORY_FREE, meminfo_bytes("MemAvailable"));
    db_set_bool(txn, metrics, F_HOST_METRICS_LIVE, true);
    db_set_datetime(txn, metrics, F_HOST_METRICS_LAST_UPDATED, (int64_t)now);
    db_set_str(txn, host, F_HOST_METRICS, metrics->ref);

    /* One host_cpu object per online CPU. */
    Db *db = db_txn_db(txn);
    size_t have = db_backref_count(host, F_HOST_HOST_CPUS);
    for (size_t i = have; i < (size_t)ncpu; i++) {
        DbObj *c = db_create(txn, XS_CLASS_HOST_CPU, NULL, NULL, NULL);
        if (!c)
            break;
        db_set_str(txn, c, F_HOST_CPU_HOST, host->ref);
        db_set_int(txn, c, F_HOST_CPU_NUMBER, (int64_t)i);
    }
    have = db_backref_count(host, F_HOST_HOST_CPUS);
    for (size_t i = 0; i < have; i++) {
        DbObj *c = db_backref(host, F_HOST_HOST_CPUS, i);
        db_set_str(txn, c, F_HOST_CPU_VENDOR, vendor ? vendor : "");
        db_set_str(txn, c, F_HOST_CPU_MODELNAME, model ? model : "");
        db_set_int(txn, c, F_HOST_CPU_SPEED, mhz ? strtoll(mhz, NULL, 10) : 0);
        db_set_int(txn, c, F_HOST_CPU_FAMILY, family ? strtoll(family, NULL, 10) : 0);
        db_set_int(txn, c, F_HOST_CPU_MODEL, cpumodel ? strtoll(cpumodel, NULL, 10) : 0);
        db_set_str(txn, c, F_HOST_CPU_STEPPING, stepping ? stepping : "");
        db_set_str(txn, c, F_HOST_CPU_FLAGS, flags ? flags : "");
    }
    (void)db;

    /* The control domain stands for the host itself, as dom0 does. */
    DbObj *dom0 = db_get_class(db, XS_CLASS_VM, db_str(host, F_HOST_CONTROL_DOMAIN));
    if (!dom0) {
        dom0 = db_create(txn, XS_CLASS_VM, NULL, NULL, NULL);
        if (!dom0)
            return;
        db_set_bool(txn, dom0, F_VM_IS_CONTROL_DOMAIN, true);
        db_set_str(txn, host, F_HOST_CONTROL_DOMAIN, dom0->ref);
        ops_vm_new_metrics(txn, dom0, NULL);
    }
    char *label = xasprintf("Control domain on host: %s", hostname);
    db_set_str(txn, dom0, F_VM_NAME_LABEL, label);
    free(label);
    db_set_str(txn, dom0, F_VM_NAME_DESCRIPTION, "The domain which manages physical devices "
                                                 "and manages other domains");
    db_set_enum(txn, dom0, F_VM_POWER_STATE, VM_POWER_STATE_RUNNING);
    db_set_str(txn, dom0, F_VM_RESIDENT_ON, host->ref);
    db_set_int(txn, dom0, F_VM_DOMID, 0);
    db_set_int(txn, dom0, F_VM_VCPUS_MAX, ncpu);
    db_set_int(txn, dom0, F_VM_VCPUS_AT_STARTUP, ncpu);
    int64_t mem = meminfo_bytes("MemTotal");
    db_set_int(txn, dom0, F_VM_MEMORY_STATIC_MIN, mem);
    db_set_int(txn, dom0, F_VM_MEMORY_DYNAMIC_MIN, mem);
    db_set_int(txn, dom0, F_VM_MEMORY_DYNAMIC_MAX, mem);
    db_set_int(txn, dom0, F_VM_MEMORY_STATIC_MAX, mem);
    db_set_int(txn, dom0, F_VM_USER_VERSION, 1);
    db_set(txn, dom0, F_VM_ALLOWED_OPERATIONS, xv_array());
}

static void refresh_sr_sizes(DbTxn *txn, Db *db)
{
    size_t n;
    DbObj *const *pbds = db_list(db, XS_CLASS_PBD, &n);
    for (size_t i = 0; i < n; i++) {
        const char *path = xv_struct_get_string(&pbds[i]->fields[F_PBD_DEVICE_CONFIG], "path");
        if (!path)
            path = xv_struct_get_string(&pbds[i]->fields[F_PBD_DEVICE_CONFIG], "location");
        DbObj *sr = db_get_class(db, XS_CLASS_SR, db_str(pbds[i], F_PBD_SR));
        struct statvfs st;
        if (!sr || !path || statvfs(path, &st) != 0)
            continue;
        int64_t size = (int64_t)st.f_blocks * (int64_t)st.f_frsize;
        int64_t used = size - (int64_t)st.f_bavail * (int64_t)st.f_frsize;
        if (db_int(sr, F_SR_PHYSICAL_SIZE) != size)
            db_set_int(txn, sr, F_SR_PHYSICAL_SIZE, size);
        if (db_int(sr, F_SR_PHYSICAL_UTILISATION) != used)
            db_set_int(txn, sr, F_SR_PHYSICAL_UTILISATION, used);
    }
}

bool daemon_init_objects(HxEnv *env, XsError **errp)
{
    Db *db = env->db;
    DbTxn *txn = db_begin(db);
    DbObj *pool = first_of(db, XS_CLASS_POOL);
    DbObj *host = first_of(db, XS_CLASS_HOST);
    bool first = !pool || !host;
    if (first) {
        log_info("first start: creating the pool, this host, its storage and network");
        host = host ? host : db_create(txn, XS_CLASS_HOST, NULL, NULL, errp);
        pool = pool ? pool : db_create(txn, XS_CLASS_POOL, NULL, NULL, errp);
        if (!host || !pool)
            goto fail;
        db_set_str(txn, pool, F_POOL_MASTER, host->ref);
        DbObj *metrics = db_create(txn, XS_CLASS_HOST_METRICS, NULL, NULL, errp);
        if (!metrics)
            goto fail;
        db_set_str(txn, host, F_HOST_METRICS, metrics->ref);

        char *sr_root = xasprintf("%s/sr", env->state_dir);
        mkdir(sr_root, 0755);
        char uuid_dir[512];
        DbObj *local = make_sr(txn, env, host, "Local storage", "", "ext", "user", NULL,
                               "i18n-key-local-storage", errp);
        if (!local) {
            free(sr_root);
            goto fail;
        }
        snprintf(uuid_dir, sizeof(uuid_dir), "%s/%s", sr_root, db_str(local, 0));
        mkdir(uuid_dir, 0755);
        DbObj *pbd = db_backref(local, F_SR_PBDS, 0);
        XsValue *dc = xv_struct();
        xv_struct_set_string(dc, "path", uuid_dir);
        db_set(txn, pbd, F_PBD_DEVICE_CONFIG, dc);
        db_set_str(txn, pool, F_POOL_DEFAULT_SR, local->ref);
        db_set_str(txn, pool, F_POOL_SUSPEND_IMAGE_SR, local->ref);
        db_set_str(txn, pool, F_POOL_CRASH_DUMP_SR, local->ref);
        db_set_str(txn, host, F_HOST_SUSPEND_IMAGE_SR, local->ref);
        db_set_str(txn, host, F_HOST_CRASH_DUMP_SR, local->ref);

        char *tools_dir = xasprintf("%s/tools", sr_root);
        DbObj *tools = make_sr(txn, env, host, "hyperxe Tools", "hyperxe Tools ISOs", "iso",
                               "iso", tools_dir, "xenserver_tools_sr", errp);
        free(tools_dir);
        DbObj *dvd = make_sr(txn, env, host, "DVD drives", "Physical DVD drives", "udev", "iso",
                             NULL, NULL, errp);
        free(sr_root);
        if (!tools || !dvd)
            goto fail;
        db_set_bool(txn, tools, F_SR_SHARED, true);
        XsValue *sm = xv_struct();
        xv_struct_set_string(sm, "type", "cd");
        db_set(txn, dvd, F_SR_SM_CONFIG, sm);

        DbObj *net = db_create(txn, XS_CLASS_NETWORK, NULL, NULL, errp);
        if (!net)
            goto fail;
        db_set_str(txn, net, F_NETWORK_NAME_LABEL, "Pool-wide network associated with eth0");
        db_set_str(txn, net, F_NETWORK_NAME_DESCRIPTION,
                   "Default network: host-internal bridge with NAT to the host's uplink and "
                   "DHCP");
        db_set_str(txn, net, F_NETWORK_BRIDGE, "xenbr0");
        db_map_set(txn, net, F_NETWORK_OTHER_CONFIG, "automatic", "true");
        db_map_set(txn, net, F_NETWORK_OTHER_CONFIG, "hyperxe-default", "true");
    }
    DbObj *metrics = db_get_class(db, XS_CLASS_HOST_METRICS, db_str(host, F_HOST_METRICS));
    if (!metrics) {
        metrics = db_create(txn, XS_CLASS_HOST_METRICS, NULL, NULL, errp);
        if (!metrics)
            goto fail;
    }
    refresh_host(txn, env, host, metrics);
    refresh_sr_sizes(txn, db);
    env->host_ref = xstrdup(host->ref);
    env->pool_ref = xstrdup(pool->ref);
    return db_commit(txn, errp);
fail:
    db_abort(txn);
    return false;
}

void daemon_refresh_metrics(HxEnv *env)
{
    Db *db = env->db;
    DbTxn *txn = db_begin(db);
    DbObj *host = db_get_class(db, XS_CLASS_HOST, env->host_ref);
    DbObj *m = host ? db_get_class(db, XS_CLASS_HOST_METRICS, db_str(host, F_HOST_METRICS)) : NULL;
    int64_t free_mem = meminfo_bytes("MemAvailable");
    /* Only real changes (more than 1 MiB) make an event. */
    if (m && llabs(db_int(m, F_HOST_METRICS_MEMORY_FREE) - free_mem) > 1024 * 1024) {
        db_set_int(txn, m, F_HOST_METRICS_MEMORY_FREE, free_mem);
        db_set_datetime(txn, m, F_HOST_METRICS_LAST_UPDATED, (int64_t)time(NULL));
    }
    refresh_sr_sizes(txn, db);
    db_commit(txn, NULL);
}
