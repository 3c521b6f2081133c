/*
 * Tests of the image.h interface itself (the file-format checks are in
 * test_formats.py): callback sources, writing to pipes and sinks (checked
 * with qemu-img compare when it is installed), progress and
 * cancellation, concurrent reads, block status of the top layer. Prints
 * TAP-like lines and "N passed, N failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/image.h"
#include "util/memguard.h"
#include "util/xalloc.h"
#include "util/banned.h"

static int passed, failed;
static char tmpdir[256];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
            printf("ok - ");                                                                       \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("not ok - ");                                                                   \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

/* A synthetic disk: 40 MiB, data in [1 MiB, 3 MiB) and [30 MiB, 30 MiB + 100 KiB),
 * an explicit zero run at [10 MiB, 12 MiB), the rest unallocated. */
#define DISK (40 * MiB)

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)((off * 2654435761u) >> 13) | 1;
}

static bool in_data(uint64_t off)
{
    return (off >= 1 * MiB && off < 3 * MiB) || (off >= 30 * MiB && off < 30 * MiB + 100 * KiB);
}

typedef struct {
    uint64_t reads;
    uint64_t bytes_read;
} PatternSource;

static int pat_read(void *opaque, uint64_t off, size_t len, void *buf, ImgError *err)
{
    PatternSource *ps = opaque;
    uint8_t *b = buf;
    ps->reads++;
    ps->bytes_read += len;
    for (size_t i = 0; i < len; i++)
        b[i] = in_data(off + i) ? pattern(off + i) : 0;
    return 0;
}

static int pat_status(void *opaque, uint64_t off, uint64_t maxlen, ImgExtent *ext, ImgError *err)
{
    static const struct {
        uint64_t start, end;
        ImgExtentKind kind;
    } map[] = {
        {0, 1 * MiB, IMG_EXTENT_UNALLOCATED},
        {1 * MiB, 3 * MiB, IMG_EXTENT_DATA},
        {3 * MiB, 10 * MiB, IMG_EXTENT_UNALLOCATED},
        {10 * MiB, 12 * MiB, IMG_EXTENT_ZERO},
        {12 * MiB, 30 * MiB, IMG_EXTENT_UNALLOCATED},
        {30 * MiB, 30 * MiB + 100 * KiB, IMG_EXTENT_DATA},
        {30 * MiB + 100 * KiB, DISK, IMG_EXTENT_UNALLOCATED},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        if (off >= map[i].start && off < map[i].end) {
            ext->offset = off;
            ext->length = MIN(maxlen, map[i].end - off);
            ext->kind = map[i].kind;
            return 0;
        }
    }
    return img_error_set(err, EINVAL, "offset out of range");
}

static bool verify_reader(ImgReader *r, uint64_t size)
{
    uint8_t *buf = xmalloc(MiB);
    ImgError err;
    bool ok = true;
    for (uint64_t off = 0; off < size && ok; off += MiB) {
        ssize_t n = img_read(r, off, MiB, buf, &err);
        if (n != (ssize_t)MIN(MiB, size - off)) {
            ok = false;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            uint8_t want = (off + i < DISK && in_data(off + i)) ? pattern(off + i) : 0;
            if (buf[i] != want) {
                ok = false;
                break;
            }
        }
    }
    free(buf);
    return ok;
}

typedef struct {
    const char *name;
    ImgFormat fmt;
    ImgSubformat sub;
} Case;

static const Case cases[] = {
    {"raw", IMG_FORMAT_RAW, IMG_SUBFORMAT_DEFAULT},
    {"vhd-dynamic", IMG_FORMAT_VHD, IMG_SUBFORMAT_VHD_DYNAMIC},
    {"vhd-fixed", IMG_FORMAT_VHD, IMG_SUBFORMAT_VHD_FIXED},
    {"vmdk-stream", IMG_FORMAT_VMDK, IMG_SUBFORMAT_VMDK_STREAM_OPTIMIZED},
};

/* Writes the pattern source through a pipe (a child drains it into a file). */
static int write_via_pipe(const Case *c, const char *path, ImgError *err)
{
    int p[2];
    if (pipe(p) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[1]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        char buf[65536];
        ssize_t n;
        while ((n = read(p[0], buf, sizeof(buf))) > 0)
            if (write(fd, buf, (size_t)n) != n)
                _exit(1);
        _exit(n < 0);
    }
    close(p[0]);
    PatternSource ps = {0};
    ImgSource src = {DISK, &ps, pat_read, pat_status};
    ImgWriteOptions o;
    img_write_options_init(&o);
    o.subformat = c->sub;
    o.vhd_force_size = true;
    int ret = img_write(&src, c->fmt, &o, p[1], NULL, err);
    close(p[1]);
    int status;
    waitpid(pid, &status, 0);
    if (ret == 0 && (!WIFEXITED(status) || WEXITSTATUS(status)))
        ret = -EIO;
    /* The writer read only the data runs (+ unit rounding). */
    if (ret == 0 && ps.bytes_read > 8 * MiB)
        ret = -E2BIG;
    return ret;
}

static void test_pipes(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/pipe-%s", tmpdir, cases[i].name);
        ImgError err = {0};
        int ret = write_via_pipe(&cases[i], path, &err);
        CHECK(ret == 0, "callback source to a pipe as %s (%s)", cases[i].name, err.msg);
        if (ret)
            continue;
        ImgOpenOptions oo = {.format = cases[i].fmt};
        ImgReader *r = img_open(path, &oo, &err);
        CHECK(r != NULL, "reopen %s (%s)", cases[i].name, r ? "" : err.msg);
        if (!r)
            continue;
        CHECK(img_reader_virtual_size(r) == DISK, "%s keeps the size", cases[i].name);
        CHECK(verify_reader(r, DISK), "%s reads back the pattern", cases[i].name);
        img_reader_free(r);
    }
}

static void test_qcow2_backing_and_top(void)
{
    /* Base: the pattern as qcow2; top: an overlay whose source is the
     * pattern's ZERO run only (top-only semantics). */
    char base[512], top[512];
    snprintf(base, sizeof(base), "%s/base.qcow2", tmpdir);
    snprintf(top, sizeof(top), "%s/top.qcow2", tmpdir);
    int fd = open(base, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    PatternSource ps = {0};
    ImgSource src = {DISK, &ps, pat_read, pat_status};
    ImgError err = {0};
    int ret = img_write(&src, IMG_FORMAT_QCOW2, NULL, fd, NULL, &err);
    close(fd);
    CHECK(ret == 0, "qcow2 from a callback source (%s)", err.msg);
    ImgWriteOptions o;
    img_write_options_init(&o);
    o.backing_file = "base.qcow2";
    o.backing_format = "qcow2";
    ret = img_create(top, IMG_FORMAT_QCOW2, DISK, &o, &err);
    CHECK(ret == 0, "qcow2 overlay created (%s)", err.msg);
    ImgReader *r = img_open(top, NULL, &err);
    CHECK(r != NULL && img_reader_parent(r) != NULL, "overlay opens with its parent");
    if (!r)
        return;
    CHECK(verify_reader(r, DISK), "overlay reads the base's content");
    ImgExtent e;
    ret = img_block_status(r, 1 * MiB, DISK, IMG_STATUS_TOP_ONLY, &e, &err);
    CHECK(ret == 0 && e.kind == IMG_EXTENT_UNALLOCATED, "top-only status: unallocated");
    ret = img_block_status(r, 1 * MiB, DISK, 0, &e, &err);
    CHECK(ret == 0 && e.kind == IMG_EXTENT_DATA && e.length == 2 * MiB,
          "chain status: 2 MiB of data from the base (got %llu)", (unsigned long long)e.length);
    ret = img_block_status(r, 5 * MiB, DISK, 0, &e, &err);
    CHECK(ret == 0 && e.kind == IMG_EXTENT_UNALLOCATED, "chain status: hole");
    img_reader_free(r);

    /* Opening with IMG_OPEN_NO_EXTERNAL refuses the backing reference. */
    ImgOpenOptions oo = {.flags = IMG_OPEN_NO_EXTERNAL};
    r = img_open(top, &oo, &err);
    CHECK(r == NULL && err.code == EPERM, "NO_EXTERNAL refuses a backing file (%s)", err.msg);
    img_reader_free(r);
}

static void progress_fn(void *opaque, uint64_t done, uint64_t total)
{
    uint64_t *calls = opaque;
    calls[0]++;
    if (done < calls[1] || done > total)
        calls[2]++; /* went backwards or past the end */
    calls[1] = done;
}

static void cancel_fn(void *opaque, uint64_t done, uint64_t total)
{
    atomic_bool *cancel = opaque;
    if (done > 0)
        atomic_store(cancel, true);
}

static void test_progress_cancel(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/progress.raw", tmpdir);
    uint64_t calls[3] = {0, 0, 0};
    ImgProgress pr = {.fn = progress_fn, .opaque = calls};
    PatternSource ps = {0};
    ImgSource src = {DISK, &ps, pat_read, pat_status};
    ImgError err = {0};
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ret = img_write(&src, IMG_FORMAT_RAW, NULL, fd, &pr, &err);
    close(fd);
    CHECK(ret == 0 && calls[0] > 1 && calls[1] == DISK && calls[2] == 0,
          "progress reported monotonically up to the total (%llu calls)",
          (unsigned long long)calls[0]);
    static const ImgFormat fmts[] = {IMG_FORMAT_RAW, IMG_FORMAT_QCOW2, IMG_FORMAT_VHD,
                                     IMG_FORMAT_VMDK};
    for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
        atomic_bool cancel;
        atomic_init(&cancel, false);
        ImgProgress pc = {.fn = cancel_fn, .opaque = &cancel, .cancel = &cancel};
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ret = img_write(&src, fmts[i], NULL, fd, &pc, &err);
        close(fd);
        CHECK(ret == -ECANCELED, "%s write stops when cancelled (%d)", img_format_name(fmts[i]),
              ret);
    }
}

typedef struct {
    ImgReader *r;
    int id;
    bool ok;
} ThreadArg;

static void *reader_thread(void *arg)
{
    ThreadArg *t = arg;
    uint8_t *buf = xmalloc(256 * KiB);
    ImgError err;
    t->ok = true;
    for (int round = 0; round < 40 && t->ok; round++) {
        uint64_t off = ((uint64_t)(t->id * 7919 + round * 104729) % (DISK / 4096)) * 4096;
        size_t len = (size_t)MIN(256 * KiB, DISK - off);
        if (img_read(t->r, off, len, buf, &err) != (ssize_t)len) {
            t->ok = false;
            break;
        }
        for (size_t i = 0; i < len; i++)
            if (buf[i] != (in_data(off + i) ? pattern(off + i) : 0)) {
                t->ok = false;
                break;
            }
    }
    free(buf);
    return NULL;
}

static void test_concurrent_reads(void)
{
    static const char *const files[] = {"base.qcow2", "pipe-vhd-dynamic", "pipe-vmdk-stream"};
    static const ImgFormat fmts[] = {IMG_FORMAT_QCOW2, IMG_FORMAT_VHD, IMG_FORMAT_VMDK};
    for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, files[f]);
        ImgError err;
        ImgOpenOptions oo = {.format = fmts[f]};
        ImgReader *r = img_open(path, &oo, &err);
        if (!r) {
            CHECK(false, "open %s: %s", path, err.msg);
            continue;
        }
        pthread_t th[4];
        ThreadArg args[4];
        for (int i = 0; i < 4; i++) {
            args[i] = (ThreadArg){r, i, false};
            pthread_create(&th[i], NULL, reader_thread, &args[i]);
        }
        bool ok = true;
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            ok &= args[i].ok;
        }
        CHECK(ok, "4 threads reading %s at once see the right bytes", files[f]);
        img_reader_free(r);
    }
}

/* A sink that stores its pieces in a file (holes for the gaps) and checks
 * their order. */
typedef struct {
    int fd;
    uint64_t end;       /* end of the last piece */
    uint64_t carried;   /* bytes handed over */
    uint64_t pieces;
    uint64_t fail_after; /* return -EIO once this many bytes came (0: never) */
    bool backwards;
} FileSink;

static int file_sink_write(void *opaque, uint64_t off, const void *buf, size_t len,
                           ImgError *err)
{
    FileSink *fs = opaque;
    if (off < fs->end || len == 0)
        fs->backwards = true;
    if (fs->fail_after && fs->carried + len > fs->fail_after)
        return img_error_set(err, EIO, "the sink gives up");
    if (pwrite(fs->fd, buf, len, (off_t)off) != (ssize_t)len)
        return -errno;
    fs->end = off + len;
    fs->carried += len;
    fs->pieces++;
    return 0;
}

static bool run_cmd(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_sink(void)
{
    /* The oracle's reference: the pattern as a raw file. */
    char raw[512];
    snprintf(raw, sizeof(raw), "%s/sink-ref.raw", tmpdir);
    int rfd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    PatternSource rps = {0};
    ImgSource rsrc = {DISK, &rps, pat_read, pat_status};
    ImgError err = {0};
    CHECK(rfd >= 0 && img_write(&rsrc, IMG_FORMAT_RAW, NULL, rfd, NULL, &err) == 0,
          "reference raw file (%s)", err.msg);
    close(rfd);
    bool have_qemu_img = run_cmd("qemu-img --version >/dev/null 2>&1");
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/sink-%s", tmpdir, cases[i].name);
        FileSink fs = {.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)};
        PatternSource ps = {0};
        ImgSource src = {DISK, &ps, pat_read, pat_status};
        ImgWriteOptions o;
        img_write_options_init(&o);
        o.subformat = cases[i].sub;
        o.vhd_force_size = true;
        ImgSink sink = {&fs, file_sink_write};
        uint64_t length = 0;
        memset(&err, 0, sizeof(err));
        int ret = img_write_sink(&src, cases[i].fmt, &o, &sink, NULL, &length, &err);
        CHECK(ret == 0, "%s into a sink (%s)", cases[i].name, err.msg);
        CHECK(!fs.backwards, "%s: pieces in increasing order, none empty", cases[i].name);
        CHECK(length >= fs.end, "%s: the length covers every piece", cases[i].name);
        /* Only the data travels (2.1 MiB of pattern; VMDK grains are compressed). */
        CHECK(fs.carried < 3 * MiB && (cases[i].fmt != IMG_FORMAT_RAW || length == DISK),
              "%s: %llu bytes carried for a %llu-byte file", cases[i].name,
              (unsigned long long)fs.carried, (unsigned long long)length);
        CHECK(ftruncate(fs.fd, (off_t)length) == 0, "%s: file length", cases[i].name);
        close(fs.fd);
        if (ret)
            continue;
        ImgOpenOptions oo = {.format = cases[i].fmt};
        ImgReader *r = img_open(path, &oo, &err);
        CHECK(r && verify_reader(r, DISK), "%s from a sink reads back the pattern",
              cases[i].name);
        img_reader_free(r);
        if (have_qemu_img) {
            char cmd[1400];
            snprintf(cmd, sizeof(cmd), "qemu-img compare -q -f %s -F raw '%s' '%s'",
                     cases[i].fmt == IMG_FORMAT_VHD ? "vpc" : img_format_name(cases[i].fmt),
                     path, raw);
            CHECK(run_cmd(cmd), "qemu-img compare: %s from a sink equals the pattern",
                  cases[i].name);
            if (cases[i].fmt == IMG_FORMAT_VMDK) {
                snprintf(cmd, sizeof(cmd), "qemu-img check -q -f vmdk '%s'", path);
                CHECK(run_cmd(cmd), "qemu-img check: %s from a sink", cases[i].name);
            }
        }
    }
    /* A failing sink stops the writer with its error. */
    char path[512];
    snprintf(path, sizeof(path), "%s/sink-fail", tmpdir);
    FileSink fs = {.fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644), .fail_after = MiB};
    PatternSource ps = {0};
    ImgSource src = {DISK, &ps, pat_read, pat_status};
    ImgSink sink = {&fs, file_sink_write};
    memset(&err, 0, sizeof(err));
    int ret = img_write_sink(&src, IMG_FORMAT_VHD, NULL, &sink, NULL, NULL, &err);
    CHECK(ret == -EIO && strstr(err.msg, "gives up"), "a sink's error stops the writer (%d, %s)",
          ret, err.msg);
    /* qcow2 needs to seek. */
    memset(&err, 0, sizeof(err));
    ret = img_write_sink(&src, IMG_FORMAT_QCOW2, NULL, &sink, NULL, NULL, &err);
    CHECK(ret == -ESPIPE, "qcow2 cannot be written to a sink (%s)", err.msg);
    close(fs.fd);
}

/* img_map() against img_read(): raw files, qcow2 data clusters, a qcow2
 * overlay that leaves its data to the base. */
static bool map_matches(ImgReader *r, uint64_t off, size_t len, ssize_t *got)
{
    const void *p = NULL;
    ImgError err = {0};
    *got = img_map(r, off, len, &p, &err);
    if (*got <= 0)
        return false;
    uint8_t *buf = xmalloc((size_t)*got);
    bool same = img_read(r, off, (size_t)*got, buf, &err) == *got &&
                memcmp(buf, p, (size_t)*got) == 0;
    free(buf);
    return same;
}

static void test_map(void)
{
    char raw[512], q[512], top[512];
    snprintf(raw, sizeof(raw), "%s/map.raw", tmpdir);
    snprintf(q, sizeof(q), "%s/map.qcow2", tmpdir);
    snprintf(top, sizeof(top), "%s/map-top.qcow2", tmpdir);
    ImgError err = {0};
    PatternSource ps = {0};
    ImgSource src = {DISK, &ps, pat_read, pat_status};
    int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(img_write(&src, IMG_FORMAT_RAW, NULL, fd, NULL, &err) == 0, "map: raw file");
    close(fd);
    fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(img_write(&src, IMG_FORMAT_QCOW2, NULL, fd, NULL, &err) == 0, "map: qcow2 file");
    close(fd);
    ImgWriteOptions o;
    img_write_options_init(&o);
    o.backing_file = "map.qcow2";
    o.backing_format = "qcow2";
    CHECK(img_create(top, IMG_FORMAT_QCOW2, DISK, &o, &err) == 0, "map: overlay");

    ImgOpenOptions ro = {.format = IMG_FORMAT_RAW};
    ImgReader *r = img_open(raw, &ro, &err);
    ssize_t got = 0;
    CHECK(r && map_matches(r, 1 * MiB + 5, 100 * KiB, &got) && got == (ssize_t)(100 * KiB),
          "raw: mapped bytes equal the read ones (%zd)", got);
    img_reader_free(r);

    r = img_open(q, NULL, &err);
    CHECK(r && map_matches(r, 1 * MiB, 4 * MiB, &got) && got > 0 && got <= (ssize_t)(2 * MiB),
          "qcow2: a run of data clusters is mapped (%zd bytes, at most the 2 MiB run)", got);
    const void *p = NULL;
    CHECK(r && img_map(r, 5 * MiB, MiB, &p, &err) == 0, "qcow2: nothing mapped in a hole");
    CHECK(r && img_map(r, DISK, MiB, &p, &err) == 0, "qcow2: nothing mapped past the end");
    img_reader_free(r);

    r = img_open(top, NULL, &err);
    CHECK(r && map_matches(r, 30 * MiB, 100 * KiB, &got) && got == (ssize_t)(100 * KiB),
          "overlay: the base's clusters are mapped through it (%zd)", got);
    img_reader_free(r);
}

typedef struct {
    const uint8_t *p;
    size_t n;
    unsigned sum;
} SumArgs;

static void sum_bytes(void *arg)
{
    SumArgs *a = arg;
    for (size_t i = 0; i < a->n; i += 4096)
        a->sum += ((const volatile uint8_t *)a->p)[i];
}

/* The guarded read of a shrunk mapping on a thread that blocks every
 * signal, as the workers of the formats layer do. */
static void *guarded_blocked(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    SumArgs *a = arg;
    int r = memguard_run(sum_bytes, a);
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    a->sum = r == -EFAULT && sigismember(&now, SIGBUS) ? 1u : 0u;
    return NULL;
}

/* A mapped file that shrinks: the read faults, memguard_run() says so. */
static void test_memguard(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/shrinks.raw", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    uint8_t *buf = xmalloc(MiB);
    memset(buf, 7, MiB);
    CHECK(fd >= 0 && write(fd, buf, MiB) == (ssize_t)MiB, "memguard: a 1 MiB file");
    free(buf);
    ImgOpenOptions ro = {.format = IMG_FORMAT_RAW};
    ImgError err = {0};
    ImgReader *r = img_open(path, &ro, &err);
    const void *p = NULL;
    ssize_t n = r ? img_map(r, 0, MiB, &p, &err) : -1;
    SumArgs a = {p, (size_t)MAX(n, 0), 0};
    CHECK(n == (ssize_t)MiB && memguard_run(sum_bytes, &a) == 0 && a.sum == 7 * 256,
          "memguard: reading the mapping works");
    CHECK(ftruncate(fd, 4096) == 0, "memguard: the file shrinks to 4 KiB");
    a.sum = 0;
    CHECK(memguard_run(sum_bytes, &a) == -EFAULT, "memguard: the read past the end is an error");
    pthread_t t;
    SumArgs b = a;
    CHECK(pthread_create(&t, NULL, guarded_blocked, &b) == 0 && pthread_join(t, NULL) == 0 &&
              b.sum == 1,
          "memguard: the same on a thread that blocks every signal (mask restored after)");
    a.n = 4096;
    a.sum = 0;
    CHECK(memguard_run(sum_bytes, &a) == 0 && a.sum == 7,
          "memguard: what is left still reads");
    img_reader_free(r);
    close(fd);
}

/* A pushed qcow2: it reads back the pattern, qemu-img agrees, no blocks
 * are left reserved past its end. */
static void check_pushed(const char *what, const char *path, const char *raw)
{
    ImgError err = {0};
    struct stat st;
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size + 64 * KiB,
          "%s: no blocks reserved past the end (%lld bytes on disk for %lld)", what,
          (long long)st.st_blocks * 512, (long long)st.st_size);
    ImgReader *r = img_open(path, NULL, &err);
    CHECK(r && img_reader_format(r) == IMG_FORMAT_QCOW2 && verify_reader(r, DISK),
          "%s: the qcow2 reads back the pattern", what);
    img_reader_free(r);
    if (run_cmd("qemu-img --version >/dev/null 2>&1")) {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "qemu-img check -q -f qcow2 '%s'", path);
        CHECK(run_cmd(cmd), "qemu-img check: %s", what);
        snprintf(cmd, sizeof(cmd), "qemu-img compare -q -f qcow2 -F raw '%s' '%s'", path, raw);
        CHECK(run_cmd(cmd), "qemu-img compare: %s equals the pattern", what);
    }
}

/* The pushed qcow2 writer: pieces of every shape, gaps, clusters in bits. */
static void test_qcow2_stream(void)
{
    char path[512], raw[512];
    snprintf(path, sizeof(path), "%s/pushed.qcow2", tmpdir);
    snprintf(raw, sizeof(raw), "%s/pushed-ref.raw", tmpdir);
    PatternSource ps = {0};
    ImgError err = {0};
    int rfd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ImgSource rsrc = {DISK, &ps, pat_read, pat_status};
    CHECK(img_write(&rsrc, IMG_FORMAT_RAW, NULL, rfd, NULL, &err) == 0, "stream: reference");
    close(rfd);

    /* The pattern's data runs in pieces of 1, 3000, 4 KiB, 64 KiB + 7, ...
     * bytes, each flushed at once (the buffer is reused). */
    static const size_t steps[] = {1, 3000, 4096, 65543, 200000, 1048576, 512};
    static const uint64_t runs[][2] = {{1 * MiB, 3 * MiB}, {30 * MiB, 30 * MiB + 100 * KiB}};
    uint8_t *buf = xmalloc(MiB);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ImgQcow2Stream *s = img_qcow2_stream_new(fd, DISK, NULL, NULL, &err);
    CHECK(s != NULL, "stream: created (%s)", err.msg);
    int ret = s ? 0 : -EIO;
    size_t k = 0;
    for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(runs); i++) {
        for (uint64_t off = runs[i][0]; ret == 0 && off < runs[i][1];) {
            size_t n = (size_t)MIN(steps[k++ % ARRAY_SIZE(steps)], runs[i][1] - off);
            pat_read(&ps, off, n, buf, &err);
            ret = img_qcow2_stream_write(s, off, buf, n);
            if (ret == 0)
                ret = img_qcow2_stream_flush(s);
            off += n;
        }
    }
    ret = ret ? ret : img_qcow2_stream_finish(s);
    CHECK(ret == 0, "stream: %zu odd pieces pushed and finished (%s)", k, err.msg);
    img_qcow2_stream_free(s);
    close(fd);
    check_pushed("odd pieces", path, raw);

    /* Whole buffers kept until the flush: written by reference. */
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    s = img_qcow2_stream_new(fd, DISK, NULL, NULL, &err);
    uint8_t *a = xmalloc(2 * MiB), *b = xmalloc(100 * KiB);
    pat_read(&ps, 1 * MiB, 2 * MiB, a, &err);
    pat_read(&ps, 30 * MiB, 100 * KiB, b, &err);
    ret = img_qcow2_stream_write(s, 1 * MiB, a, 3 * KiB);
    ret = ret ? ret : img_qcow2_stream_write(s, 1 * MiB + 3 * KiB, a + 3 * KiB, 2 * MiB - 3 * KiB);
    ret = ret ? ret : img_qcow2_stream_write(s, 30 * MiB, b, 100 * KiB);
    ret = ret ? ret : img_qcow2_stream_finish(s);
    CHECK(ret == 0, "stream: gathered buffers written (%s)", err.msg);
    img_qcow2_stream_free(s);
    close(fd);
    check_pushed("gathered buffers", path, raw);

    /* Offsets never go back; the stream then stays failed. */
    memset(&err, 0, sizeof(err));
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    s = img_qcow2_stream_new(fd, DISK, NULL, NULL, &err);
    ret = img_qcow2_stream_write(s, 3 * MiB, a, 100);
    CHECK(ret == 0 && img_qcow2_stream_write(s, 2 * MiB, a, 10) == -EINVAL && err.msg[0],
          "stream: going back is refused (%s)", err.msg);
    CHECK(img_qcow2_stream_finish(s) < 0, "stream: a failed stream does not finish");
    CHECK(img_qcow2_stream_write(s, 4 * MiB, a, 10) < 0, "stream: nor takes more data");
    img_qcow2_stream_free(s);
    close(fd);
    free(a);
    free(b);
    free(buf);
}

static void test_names(void)
{
    CHECK(img_format_from_name("vpc") == IMG_FORMAT_VHD, "vpc is VHD");
    CHECK(img_format_from_name("nope") == IMG_FORMAT__MAX, "unknown format name");
    CHECK(img_subformat_from_name("streamOptimized") == IMG_SUBFORMAT_VMDK_STREAM_OPTIMIZED,
          "subformat names");
    CHECK(img_format_can_stream(IMG_FORMAT_VHD, IMG_SUBFORMAT_VHD_FIXED) &&
              !img_format_can_stream(IMG_FORMAT_QCOW2, IMG_SUBFORMAT_DEFAULT),
          "streaming formats");
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hxe-image-api-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_names();
    test_pipes();
    test_sink();
    test_qcow2_backing_and_top();
    test_progress_cancel();
    test_concurrent_reads();
    test_map();
    test_memguard();
    test_qcow2_stream();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
