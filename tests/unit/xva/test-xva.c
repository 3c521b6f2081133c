/*
 * Unit tests of the XVA container code: tar header codec, writer/reader
 * round trips with random sparse disks (all compressions and checksum
 * kinds), the writer's rules (block order, skipping, keep-alives, the short
 * first member), fd errors, cancel, progress, and a long list of bad
 * archives built by hand, each of which must give a clear error. Ends with
 * a small mutation loop through the fuzz harness.
 *
 * Hand-built archives here use their own header writer, not
 * tarstream_header_encode(), so the reader is checked against an
 * independent encoder.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <xxhash.h>
#include <zlib.h>

#include "formats/tarstream.h"
#include "formats/xva.h"
#include "formats/xva_v1.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MB (1024u * 1024u)

/* ------------------------------------------------------------ random */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
    return lo + rnd() % (hi - lo + 1);
}

/* ------------------------------------------------------------ memory disks */

typedef struct Extent {
    uint64_t off, len;
} Extent;

typedef struct MemDisk {
    char id[32];
    uint64_t size;
    uint8_t *data;
    Extent ext[64]; /* allocated ranges, sorted, disjoint */
    size_t next;
    unsigned read_sleep_us;
    int map_mode; /* 0: no map callback; 1: whole blocks; 2: random pieces, sometimes declined */
} MemDisk;

static void memdisk_init(MemDisk *d, const char *id, uint64_t size)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->size = size;
    d->data = xcalloc(1, size ? size : 1);
}

/* Random allocated extents; most hold random bytes, some stay zero. */
static void memdisk_fill(MemDisk *d, unsigned max_extents)
{
    uint64_t pos = 0;
    unsigned n = (unsigned)rnd_range(0, max_extents);
    for (unsigned i = 0; i < n && pos < d->size && d->next < 64; i++) {
        uint64_t start = pos + rnd_range(0, 3 * MB);
        if (start >= d->size)
            break;
        uint64_t want = rnd_range(1, 2 * MB); /* MIN() evaluates twice */
        uint64_t len = MIN(d->size - start, want);
        d->ext[d->next++] = (Extent){start, len};
        if (rnd() % 5) {
            for (uint64_t k = 0; k < len; k++)
                d->data[start + k] = (uint8_t)(rnd() >> 24);
        }
        pos = start + len + 1;
    }
}

static void memdisk_release(MemDisk *d)
{
    free(d->data);
}

static int md_read(void *ctx, uint64_t offset, size_t len, void *buf)
{
    MemDisk *d = ctx;
    if (offset > d->size || len > d->size - offset)
        return -EINVAL;
    if (d->read_sleep_us)
        usleep(d->read_sleep_us);
    memcpy(buf, d->data + offset, len);
    return 0;
}

static int md_block_status(void *ctx, uint64_t offset, uint64_t len, bool *alloc, uint64_t *run)
{
    MemDisk *d = ctx;
    for (size_t i = 0; i < d->next; i++) {
        const Extent *e = &d->ext[i];
        if (offset < e->off) {
            *alloc = false;
            *run = MIN(len, e->off - offset);
            return 0;
        }
        if (offset < e->off + e->len) {
            *alloc = true;
            *run = MIN(len, e->off + e->len - offset);
            return 0;
        }
    }
    *alloc = false;
    *run = len;
    return 0;
}

static ssize_t md_map(void *ctx, uint64_t offset, size_t len, const void **ptr)
{
    MemDisk *d = ctx;
    assert_true(offset < d->size && len <= d->size - offset);
    if (d->map_mode == 2) {
        if (rnd() % 7 == 0)
            return 0; /* read this block instead */
        size_t piece = (size_t)rnd_range(1, 300 * 1024); /* MIN() evaluates twice */
        len = MIN(len, piece);
    }
    *ptr = d->data + offset;
    return (ssize_t)len;
}

static XvaExportDisk memdisk_export(MemDisk *d, bool with_status)
{
    return (XvaExportDisk){.id = d->id,
                           .size = d->size,
                           .source = {.ctx = d, .read = md_read,
                                      .block_status = with_status ? md_block_status : NULL,
                                      .map = d->map_mode ? md_map : NULL}};
}

/* ------------------------------------------------------------ memory sinks */

typedef struct MemSink {
    size_t n;
    char ids[16][32];
    uint64_t sizes[16];
    uint8_t *bufs[16];
    bool begun[16], ended[16];
    int writes, zeros;
    char *xml;
    size_t xml_len;
    int fail_write_after; /* >0: the Nth write fails with -EIO */
    uint64_t absurd_size;
} MemSink;

static int ms_ova_xml(void *ctx, const char *xml, size_t len, XvaPlan *plan)
{
    MemSink *s = ctx;
    assert_int_equal(xml[len], '\0');
    free(s->xml);
    s->xml = xmemdup(xml, len + 1);
    s->xml_len = len;
    if (s->absurd_size)
        return xva_plan_add_disk(plan, "Ref:1", s->absurd_size);
    for (size_t i = 0; i < s->n; i++) {
        int r = xva_plan_add_disk(plan, s->ids[i], s->sizes[i]);
        if (r < 0)
            return r;
        assert_int_equal(r, (int)i);
    }
    return 0;
}

static int ms_begin(void *ctx, size_t disk, const char *id, uint64_t size)
{
    MemSink *s = ctx;
    assert_true(disk < s->n);
    assert_string_equal(id, s->ids[disk]);
    assert_false(s->begun[disk]);
    s->begun[disk] = true;
    return 0;
}

static int ms_write(void *ctx, size_t disk, uint64_t off, const void *buf, size_t len)
{
    MemSink *s = ctx;
    assert_true(disk < s->n);
    assert_true(len > 0);
    assert_true(off <= s->sizes[disk] && len <= s->sizes[disk] - off);
    if (s->fail_write_after && ++s->writes >= s->fail_write_after)
        return -EIO;
    memcpy(s->bufs[disk] + off, buf, len);
    return 0;
}

static int ms_zero(void *ctx, size_t disk, uint64_t off, uint64_t len)
{
    MemSink *s = ctx;
    assert_true(disk < s->n);
    assert_true(len > 0);
    assert_true(off <= s->sizes[disk] && len <= s->sizes[disk] - off);
    memset(s->bufs[disk] + off, 0, len);
    s->zeros++;
    return 0;
}

static int ms_end(void *ctx, size_t disk, uint64_t size)
{
    MemSink *s = ctx;
    assert_true(s->begun[disk]);
    assert_int_equal(size, s->sizes[disk]);
    s->ended[disk] = true;
    return 0;
}

/* Expects the disks of ds; buffers start filled with 0xAA to catch unwritten holes. */
static void memsink_init(MemSink *s, MemDisk *ds, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        size_t l = strnlen(ds[i].id, sizeof(s->ids[i]) - 1);
        memcpy(s->ids[i], ds[i].id, l);
        s->ids[i][l] = '\0';
        s->sizes[i] = ds[i].size;
        s->bufs[i] = xmalloc(ds[i].size ? ds[i].size : 1);
        memset(s->bufs[i], 0xAA, ds[i].size);
    }
}

static void memsink_release(MemSink *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->bufs[i]);
    free(s->xml);
}

static XvaImportSink memsink_sink(MemSink *s)
{
    return (XvaImportSink){.ctx = s,
                           .ova_xml = ms_ova_xml,
                           .disk_begin = ms_begin,
                           .write = ms_write,
                           .zero = ms_zero,
                           .disk_end = ms_end};
}

static void memsink_check(MemSink *s, MemDisk *ds)
{
    for (size_t i = 0; i < s->n; i++) {
        assert_true(s->ended[i]);
        assert_memory_equal(s->bufs[i], ds[i].data, ds[i].size);
    }
}

/* ------------------------------------------------------------ memory streams */

static int memfd_new(void)
{
    int fd = memfd_create("xva-test", MFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static uint8_t *fd_slurp(int fd, size_t *len)
{
    off_t end = lseek(fd, 0, SEEK_END);
    assert_true(end >= 0);
    uint8_t *b = xmalloc((size_t)end + 1);
    assert_int_equal(pread(fd, b, (size_t)end, 0), end);
    *len = (size_t)end;
    return b;
}

typedef struct MemIn {
    const uint8_t *p;
    size_t len, pos, piece;
} MemIn;

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
    MemIn *m = ctx;
    size_t n = MIN(MIN(len, m->len - m->pos), m->piece ? m->piece : SIZE_MAX);
    memcpy(buf, m->p + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

/* Exports ds (all disks) to a memfd and returns its contents. */
static uint8_t *export_mem(MemDisk *ds, size_t n, const XvaExportOptions *o, XvaExportStats *st,
                           size_t *len)
{
    XvaExportDisk ed[16];
    for (size_t i = 0; i < n; i++)
        ed[i] = memdisk_export(&ds[i], true);
    int fd = memfd_new();
    XvaError err;
    static const char xml[] = "<value><struct/></value>";
    int r = xva_export(fd, xml, sizeof(xml) - 1, ed, n, o, st, &err);
    if (r < 0)
        fail_msg("export failed: %s", err.message);
    uint8_t *b = fd_slurp(fd, len);
    close(fd);
    return b;
}

/* Imports bytes into a fresh sink for ds; returns the result, err filled. */
static int import_mem(const uint8_t *b, size_t len, MemDisk *ds, size_t n, MemSink *s,
                      const XvaImportOptions *o, XvaImportStats *st, XvaError *err,
                      size_t piece)
{
    memsink_init(s, ds, n);
    MemIn mi = {b, len, 0, piece};
    XvaInput in = {.fd = -1, .ctx = &mi, .read = mem_read};
    XvaImportSink sink = memsink_sink(s);
    XvaImportOptions def = {.no_threads = true};
    return xva_import(&in, &sink, o ? o : &def, st, err);
}

/* ------------------------------------------------------------ hand-built tars */

/* An independent ustar/gnu header writer. */
static void tb_header(StrBuf *sb, const char *name, size_t namelen, uint64_t size, char type,
                      const char *magic)
{
    uint8_t h[512];
    memset(h, 0, sizeof(h));
    memcpy(h, name, MIN(namelen, (size_t)100));
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011" PRIo64, (uint64_t)(size & 077777777777ull));
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (uint8_t)type;
    memcpy(h + 257, magic, 8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    strbuf_add(sb, h, sizeof(h));
}

static void tb_pad(StrBuf *sb, size_t len)
{
    strbuf_addchars(sb, '\0', (512 - len % 512) % 512);
}

static void tb_file(StrBuf *sb, const char *name, const void *data, size_t len)
{
    tb_header(sb, name, strlen(name), len, '0', "ustar\00000");
    strbuf_add(sb, data, len);
    tb_pad(sb, len);
}

static void tb_block(StrBuf *sb, const char *name, const void *data, size_t len, bool sha1)
{
    tb_file(sb, name, data, len);
    char cname[256], sum[64];
    if (sha1) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen;
        EVP_Digest(data, len, md, &mdlen, EVP_sha1(), NULL);
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(sum + 2 * i, 3, "%02x", md[i]);
        snprintf(cname, sizeof(cname), "%s.checksum", name);
    } else {
        snprintf(sum, sizeof(sum), "%016" PRIX64, (uint64_t)XXH64(data, len, 0));
        snprintf(cname, sizeof(cname), "%s.xxhash", name);
    }
    tb_file(sb, cname, sum, strlen(sum));
}

static void tb_end(StrBuf *sb)
{
    strbuf_addchars(sb, '\0', 1024);
}

/* The plan used with hand-built archives: ova.xml lines "<id> <size>". */
static int plan_ova_xml(void *ctx, const char *xml, size_t len, XvaPlan *plan)
{
    char id[80];
    unsigned long long size;
    int off = 0, n;
    while (sscanf(xml + off, "%79s %llu%n", id, &size, &n) == 2) {
        int r = xva_plan_add_disk(plan, id, size);
        if (r < 0)
            return r;
        off += n;
    }
    return 0;
}

typedef struct Collect {
    uint8_t *disk[4];
    uint64_t size[4];
    uint64_t zero_bytes;
} Collect;

static int col_write(void *ctx, size_t d, uint64_t off, const void *buf, size_t len)
{
    Collect *c = ctx;
    assert_true(d < 4 && off + len <= c->size[d]);
    memcpy(c->disk[d] + off, buf, len);
    return 0;
}

static int col_zero(void *ctx, size_t d, uint64_t off, uint64_t len)
{
    Collect *c = ctx;
    assert_true(d < 4 && off + len <= c->size[d]);
    memset(c->disk[d] + off, 0, len);
    c->zero_bytes += len;
    return 0;
}

static int col_begin(void *ctx, size_t d, const char *id, uint64_t size)
{
    Collect *c = ctx;
    assert_true(d < 4);
    c->size[d] = size;
    free(c->disk[d]);
    c->disk[d] = xmalloc(size ? size : 1);
    memset(c->disk[d], 0xAA, size);
    return 0;
}

static void collect_release(Collect *c)
{
    for (int i = 0; i < 4; i++)
        free(c->disk[i]);
}

/* Imports a hand-built archive whose ova.xml plans the disks; piece = read size. */
static int import_planned(const StrBuf *sb, Collect *c, bool force, XvaImportStats *st,
                          XvaError *err)
{
    memset(c, 0, sizeof(*c));
    MemIn mi = {(const uint8_t *)sb->buf, sb->len, 0, 1000};
    XvaInput in = {.fd = -1, .ctx = &mi, .read = mem_read};
    XvaImportSink sink = {.ctx = c, .ova_xml = plan_ova_xml, .disk_begin = col_begin,
                          .write = col_write, .zero = col_zero};
    XvaImportOptions o = {.no_threads = true, .force = force};
    return xva_import(&in, &sink, &o, st, err);
}

static void expect_error(int r, const XvaError *err, XvaErrorKind kind, const char *needle)
{
    if (r >= 0)
        fail_msg("expected an error of kind %s, got success", xva_error_kind_name(kind));
    if (err->kind != kind || err->code != r || !strstr(err->message, needle))
        fail_msg("expected [%s] containing '%s', got [%s] %d: %s", xva_error_kind_name(kind),
                 needle, xva_error_kind_name(err->kind), r, err->message);
}

/* ========================================================= header codec */

static void test_header_codec(void **state)
{
    uint8_t h[512];
    assert_int_equal(tarstream_header_encode(h, "ova.xml", 1234, 1700000000, 0644), 0);
    assert_true(tarstream_header_valid(h));
    assert_memory_equal(h + 257, "ustar\0" "00", 8);
    assert_string_equal((char *)h, "ova.xml");
    /* uid/gid 0, regular file */
    assert_string_equal((char *)h + 108, "0000000");
    assert_int_equal(h[156], '0');

    /* A long name goes to the prefix field at a '/'. */
    char longname[200];
    memset(longname, 'a', sizeof(longname));
    memcpy(longname + 120, "/Ref:1/00000000", 15);
    longname[135] = '\0';
    assert_int_equal(tarstream_header_encode(h, longname, 1, 0, 0644), 0);
    assert_true(tarstream_header_valid(h));
    /* Read it back through the input stream. */
    StrBuf sb = STRBUF_INIT;
    strbuf_add(&sb, h, 512);
    strbuf_addchars(&sb, 'x', 1);
    tb_pad(&sb, 1);
    tb_end(&sb);
    MemIn mi = {(const uint8_t *)sb.buf, sb.len, 0, 0};
    TarStreamInConfig cfg = {.read = mem_read, .read_ctx = &mi};
    TarStreamIn *in = tarstream_in_new(&cfg);
    TarStreamHeader th;
    assert_int_equal(tarstream_in_next(in, &th, NULL), TARSTREAM_NEXT_HEADER);
    assert_string_equal(th.name, longname);
    assert_int_equal(th.size, 1);
    assert_int_equal(tarstream_in_skip(in, 512), 0);
    assert_int_equal(tarstream_in_next(in, &th, NULL), TARSTREAM_NEXT_END);
    tarstream_in_free(in);
    strbuf_release(&sb);

    /* No usable split: refused, not truncated. */
    memset(longname, 'b', 199);
    longname[199] = '\0';
    assert_int_equal(tarstream_header_encode(h, longname, 1, 0, 0644), -ENAMETOOLONG);
    assert_int_equal(tarstream_header_encode(h, "", 1, 0, 0644), -EINVAL);
    assert_int_equal(tarstream_header_encode(h, "a\nb", 1, 0, 0644), -EINVAL);
    assert_int_equal(tarstream_header_encode(h, "big", 1ull << 40, 0, 0644), -EFBIG);
    assert_int_equal(tarstream_header_encode(h, "ok", (1ull << 33) - 1, 0, 0644), 0);

    /* A corrupted checksum is detected. */
    assert_int_equal(tarstream_header_encode(h, "ova.xml", 1, 0, 0644), 0);
    h[0] = 'O';
    assert_false(tarstream_header_valid(h));
}

/* GNU long names and pax headers are folded into the member. */
static void test_header_extensions(void **state)
{
    StrBuf sb = STRBUF_INIT;
    char longname[300];
    memset(longname, 'n', 250);
    longname[250] = '\0';
    tb_header(&sb, "././@LongLink", 13, 251, 'L', "ustar  \0");
    strbuf_add(&sb, longname, 251);
    tb_pad(&sb, 251);
    tb_header(&sb, "short", 5, 3, '0', "ustar  \0");
    strbuf_add(&sb, "abc", 3);
    tb_pad(&sb, 3);
    const char pax[] = "30 path=Ref:1/00000000.xxhash\n11 size=16\n";
    tb_header(&sb, "PaxHeader", 9, sizeof(pax) - 1, 'x', "ustar\00000");
    strbuf_add(&sb, pax, sizeof(pax) - 1);
    tb_pad(&sb, sizeof(pax) - 1);
    tb_header(&sb, "ignored", 7, 99, '0', "ustar\00000"); /* size overridden by pax */
    strbuf_addchars(&sb, '7', 16);
    tb_pad(&sb, 16);
    tb_end(&sb);
    MemIn mi = {(const uint8_t *)sb.buf, sb.len, 0, 7};
    TarStreamInConfig cfg = {.read = mem_read, .read_ctx = &mi, .buffer_size = 4096};
    TarStreamIn *in = tarstream_in_new(&cfg);
    TarStreamHeader th;
    assert_int_equal(tarstream_in_next(in, &th, NULL), TARSTREAM_NEXT_HEADER);
    assert_string_equal(th.name, longname);
    assert_int_equal(th.size, 3);
    assert_int_equal(tarstream_in_skip(in, 512), 0);
    assert_int_equal(tarstream_in_next(in, &th, NULL), TARSTREAM_NEXT_HEADER);
    assert_string_equal(th.name, "Ref:1/00000000.xxhash");
    assert_int_equal(th.size, 16);
    assert_int_equal(tarstream_in_skip(in, 512), 0);
    assert_int_equal(tarstream_in_next(in, &th, NULL), TARSTREAM_NEXT_END);
    tarstream_in_free(in);
    strbuf_release(&sb);
}

/* ========================================================= round trips */

static void roundtrip_map(XvaCompression comp, XvaChecksum csum, bool threads_via_pipe,
                          int map_mode, bool no_threads)
{
    /* 12 disks: Ref:10..Ref:12 sort before Ref:2. */
    static const uint64_t sizes[12] = {
        3 * MB + 777, 0, 1 * MB, 5 * MB, 7 * MB + 1, 4096, 2 * MB + 513, 0,
        9 * MB + 100, 1 * MB + 1, 6 * MB, 12345,
    };
    MemDisk ds[12];
    for (int i = 0; i < 12; i++) {
        char id[16];
        snprintf(id, sizeof(id), "Ref:%d", i + 1);
        memdisk_init(&ds[i], id, sizes[i]);
        memdisk_fill(&ds[i], 6);
        ds[i].map_mode = map_mode;
    }
    XvaExportOptions o = {.compression = comp, .checksum = csum, .mtime = 1234567890,
                          .no_threads = no_threads};
    XvaExportStats est;
    size_t len;
    uint8_t *b = export_mem(ds, 12, &o, &est, &len);

    /* Expected block count: first, last and non-zero blocks. Ref:1 (3 MiB + 777)
     * is first in order and its first member is a full block. */
    uint64_t expect = 0;
    for (int i = 0; i < 12; i++) {
        uint64_t nb = (sizes[i] + MB - 1) / MB;
        for (uint64_t k = 0; k < nb; k++) {
            uint64_t off = k * MB, l = MIN((uint64_t)MB, sizes[i] - off);
            bool nz = false;
            for (uint64_t j = 0; j < l && !nz; j++)
                nz = ds[i].data[off + j] != 0;
            expect += (k == 0 || k == nb - 1 || nz);
        }
    }
    assert_int_equal(est.blocks, expect);
    assert_int_equal(est.bytes_written, len);

    /* Member order and names, straight from the stream. */
    {
        XvaInput in;
        MemIn mi = {b, len, 0, 0};
        in = (XvaInput){.fd = -1, .ctx = &mi, .read = mem_read};
        XvaVerifyReport rep;
        XvaError err;
        int r = xva_verify(&in, NULL, NULL, &rep, &err);
        if (r < 0)
            fail_msg("verify: %s", err.message);
        /* Disks with data, sorted as strings. */
        static const char *const order[] = {"Ref:1", "Ref:10", "Ref:11", "Ref:12", "Ref:3",
                                            "Ref:4", "Ref:5", "Ref:6", "Ref:7", "Ref:9"};
        assert_int_equal(rep.n_disks, ARRAY_SIZE(order));
        for (size_t i = 0; i < rep.n_disks; i++) {
            assert_string_equal(rep.disks[i].id, order[i]);
            int k = atoi(order[i] + 4) - 1;
            assert_int_equal(rep.disks[i].size, sizes[k]);
        }
        assert_int_equal(rep.checksums, expect);
        assert_int_equal(rep.compression, comp);
        xva_verify_report_release(&rep);
    }

    MemSink s;
    XvaImportStats ist;
    XvaError err;
    int r;
    if (threads_via_pipe) {
        /* Through a real pipe with the read-ahead thread. */
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            size_t off = 0;
            while (off < len) {
                ssize_t w = write(p[1], b + off, MIN(len - off, (size_t)70000));
                if (w <= 0)
                    _exit(1);
                off += (size_t)w;
            }
            _exit(0);
        }
        close(p[1]);
        memsink_init(&s, ds, 12);
        XvaInput in = {.fd = p[0]};
        XvaImportSink sink = memsink_sink(&s);
        r = xva_import(&in, &sink, NULL, &ist, &err);
        close(p[0]);
        int status;
        waitpid(pid, &status, 0);
    } else {
        r = import_mem(b, len, ds, 12, &s, NULL, &ist, &err, 1 + rnd() % 100000);
    }
    if (r < 0)
        fail_msg("import: %s", err.message);
    memsink_check(&s, ds);
    assert_int_equal(ist.compression, comp);
    assert_int_equal(ist.blocks, expect);
    assert_int_equal(csum == XVA_CHECKSUM_SHA1 ? ist.checksums_sha1 : ist.checksums_xxhash,
                     expect);
    assert_int_equal(ist.checksum_mismatches, 0);
    assert_string_equal(s.xml, "<value><struct/></value>");
    memsink_release(&s);
    for (int i = 0; i < 12; i++)
        memdisk_release(&ds[i]);
    free(b);
}

static void roundtrip(XvaCompression comp, XvaChecksum csum, bool threads_via_pipe)
{
    roundtrip_map(comp, csum, threads_via_pipe, 0, false);
}

/* The zero-copy map callback: whole blocks, then pieces with fallbacks to read. */
static void test_roundtrip_map(void **state)
{
    roundtrip_map(XVA_COMPRESSION_NONE, XVA_CHECKSUM_XXHASH, false, 1, false);
    roundtrip_map(XVA_COMPRESSION_NONE, XVA_CHECKSUM_XXHASH, true, 2, false);
    roundtrip_map(XVA_COMPRESSION_NONE, XVA_CHECKSUM_SHA1, false, 2, true);
    roundtrip_map(XVA_COMPRESSION_ZSTD, XVA_CHECKSUM_XXHASH, false, 2, false);
    roundtrip_map(XVA_COMPRESSION_GZIP, XVA_CHECKSUM_SHA1, false, 2, true);
}

static void test_roundtrip_none(void **state)
{
    roundtrip(XVA_COMPRESSION_NONE, XVA_CHECKSUM_DEFAULT, false);
}
static void test_roundtrip_none_sha1(void **state)
{
    roundtrip(XVA_COMPRESSION_NONE, XVA_CHECKSUM_SHA1, false);
}
static void test_roundtrip_gzip(void **state)
{
    roundtrip(XVA_COMPRESSION_GZIP, XVA_CHECKSUM_XXHASH, false);
}
static void test_roundtrip_zstd(void **state)
{
    roundtrip(XVA_COMPRESSION_ZSTD, XVA_CHECKSUM_XXHASH, false);
}
static void test_roundtrip_pipe(void **state)
{
    roundtrip(XVA_COMPRESSION_NONE, XVA_CHECKSUM_XXHASH, true);
}
static void test_roundtrip_pipe_zstd(void **state)
{
    roundtrip(XVA_COMPRESSION_ZSTD, XVA_CHECKSUM_SHA1, true);
}

/* The export on the caller's thread: same bytes as with the writer thread. */
static void test_export_no_threads(void **state)
{
    MemDisk ds[3];
    memdisk_init(&ds[0], "Ref:1", 5 * MB + 3);
    memdisk_init(&ds[1], "Ref:2", 2 * MB);
    memdisk_init(&ds[2], "Ref:3", 100);
    for (int i = 0; i < 3; i++)
        memdisk_fill(&ds[i], 5);
    for (int comp = 0; comp < 3; comp++) {
        XvaExportOptions o = {.compression = (XvaCompression)comp, .mtime = 99};
        size_t l1, l2;
        uint8_t *b1 = export_mem(ds, 3, &o, NULL, &l1);
        o.no_threads = true;
        uint8_t *b2 = export_mem(ds, 3, &o, NULL, &l2);
        if (comp == 0) {
            assert_int_equal(l1, l2);
            assert_memory_equal(b1, b2, l1);
        }
        MemSink s;
        XvaError err;
        assert_int_equal(import_mem(b2, l2, ds, 3, &s, NULL, NULL, &err, 0), 0);
        memsink_check(&s, ds);
        memsink_release(&s);
        free(b1);
        free(b2);
    }
    /* A closed pipe written from the caller's thread: -EPIPE, no SIGPIPE (the
     * test runs with SIGPIPE's default action, which would kill it). */
    XvaExportDisk e = memdisk_export(&ds[0], true);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    XvaExportOptions o = {.no_threads = true};
    XvaError err;
    int r = xva_export(p[1], "x", 1, &e, 1, &o, NULL, &err);
    close(p[1]);
    expect_error(r, &err, XVA_ERROR_IO, "Broken pipe");
    for (int i = 0; i < 3; i++)
        memdisk_release(&ds[i]);
}

/* A first disk shorter than a block: every later block is written (xapi's gap unit). */
static void test_short_first_member(void **state)
{
    MemDisk ds[2];
    memdisk_init(&ds[0], "Ref:1", 1000);
    memdisk_init(&ds[1], "Ref:2", 6 * MB);
    ds[0].data[5] = 1;
    ds[0].ext[ds[0].next++] = (Extent){0, 1000};
    ds[1].data[3 * MB] = 7;
    ds[1].ext[ds[1].next++] = (Extent){3 * MB, 1};
    XvaExportStats st;
    size_t len;
    uint8_t *b = export_mem(ds, 2, NULL, &st, &len);
    assert_int_equal(st.blocks, 1 + 6);
    MemSink s;
    XvaError err;
    int r = import_mem(b, len, ds, 2, &s, NULL, NULL, &err, 0);
    if (r < 0)
        fail_msg("import: %s", err.message);
    memsink_check(&s, ds);
    memsink_release(&s);
    /* A full-size first block lets later disks skip again. */
    free(b);
    memdisk_release(&ds[0]);
    memdisk_init(&ds[0], "Ref:1", 2 * MB);
    b = export_mem(ds, 2, NULL, &st, &len);
    assert_int_equal(st.blocks, 2 + 3);
    r = import_mem(b, len, ds, 2, &s, NULL, NULL, &err, 0);
    assert_int_equal(r, 0);
    memsink_check(&s, ds);
    memsink_release(&s);
    free(b);
    memdisk_release(&ds[0]);
    memdisk_release(&ds[1]);
}

/* Empty disks, one-block disks, a metadata-only export. */
static void test_edge_disks(void **state)
{
    MemDisk ds[3];
    memdisk_init(&ds[0], "Ref:1", 1 * MB);
    memdisk_init(&ds[1], "Ref:2", 0);
    memdisk_init(&ds[2], "Ref:3", 1);
    ds[2].data[0] = 0;
    XvaExportStats st;
    size_t len;
    uint8_t *b = export_mem(ds, 3, NULL, &st, &len);
    assert_int_equal(st.blocks, 2); /* one block each for Ref:1 and Ref:3 (even all-zero) */
    MemSink s;
    XvaError err;
    assert_int_equal(import_mem(b, len, ds, 3, &s, NULL, NULL, &err, 0), 0);
    memsink_check(&s, ds);
    memsink_release(&s);
    free(b);
    /* n_disks = 0: ova.xml and the end marker only. */
    b = export_mem(ds, 0, NULL, &st, &len);
    assert_int_equal(len, 512 + 512 + 1024);
    assert_int_equal(import_mem(b, len, ds, 0, &s, NULL, NULL, &err, 0), 0);
    memsink_release(&s);
    free(b);
    for (int i = 0; i < 3; i++)
        memdisk_release(&ds[i]);
}

static void test_bad_export_args(void **state)
{
    MemDisk d;
    memdisk_init(&d, "Ref:1", MB);
    XvaExportDisk e[2] = {memdisk_export(&d, true), memdisk_export(&d, true)};
    int fd = memfd_new();
    XvaError err;
    expect_error(xva_export(fd, "", 0, e, 2, NULL, NULL, &err), &err, XVA_ERROR_ARGUMENT,
                 "used twice");
    e[1].id = "../x";
    expect_error(xva_export(fd, "", 0, e, 2, NULL, NULL, &err), &err, XVA_ERROR_ARGUMENT,
                 "not usable");
    e[1].id = "Ref:2";
    e[1].size = XVA_WRITE_MAX_DISK_SIZE + 1;
    expect_error(xva_export(fd, "", 0, e, 2, NULL, NULL, &err), &err, XVA_ERROR_LIMIT,
                 "too large");
    XvaExportOptions o = {.compression = XVA_COMPRESSION_GZIP, .level = 42};
    expect_error(xva_export(fd, "", 0, e, 1, &o, NULL, &err), &err, XVA_ERROR_ARGUMENT,
                 "gzip");
    close(fd);
    memdisk_release(&d);
}

/* ========================================================= keep-alive */

static void test_keepalive(void **state)
{
    MemDisk ds[1];
    memdisk_init(&ds[0], "Ref:1", 6 * MB + 10);
    ds[0].data[0] = 1;
    ds[0].data[4 * MB] = 2;
    ds[0].data[6 * MB + 9] = 3;
    ds[0].read_sleep_us = 3000;
    XvaExportDisk e = memdisk_export(&ds[0], false); /* every block read; zeros found by content */
    int fd = memfd_new();
    XvaExportOptions o = {.keepalive_ms = 2};
    XvaExportStats st;
    XvaError err;
    assert_int_equal(xva_export(fd, "x", 1, &e, 1, &o, &st, &err), 0);
    /* Blocks 1, 2, 3 and 5 are zero, each read takes longer than the interval:
     * a keep-alive each, which shifts the numbers of the blocks after it. */
    assert_int_equal(st.blocks, 3);
    assert_int_equal(st.keepalives, 4);
    size_t len;
    uint8_t *b = fd_slurp(fd, &len);
    close(fd);
    MemSink s;
    XvaImportStats ist;
    assert_int_equal(import_mem(b, len, ds, 1, &s, NULL, &ist, &err, 0), 0);
    memsink_check(&s, ds);
    assert_int_equal(ist.keepalives, 4);
    assert_int_equal(ist.blocks, 3 + 4);
    memsink_release(&s);
    free(b);
    memdisk_release(&ds[0]);
}

/*
 * A keep-alive must leave at once, not wait in a half-full buffer: the read
 * of the block after it looks for it in the pipe (polling up to 10 s, so a
 * slow machine does not matter; without the flush it never arrives).
 */
typedef struct KaSource {
    MemDisk *d;
    int pipe_rd;
    StrBuf got;         /* drain thread only */
    atomic_bool seen;   /* the keep-alive member has come out of the pipe */
    bool seen_in_time;  /* ... before the block after it was read */
} KaSource;

/* Reads everything from the pipe, noting when the keep-alive shows up. */
static void *ka_drain(void *arg)
{
    KaSource *k = arg;
    for (;;) {
        char tmp[65536];
        ssize_t n = read(k->pipe_rd, tmp, sizeof(tmp));
        if (n <= 0)
            return NULL;
        strbuf_add(&k->got, tmp, (size_t)n);
        if (memmem(k->got.buf, k->got.len, "Ref:1/00000001.xxhash", 21))
            atomic_store(&k->seen, true);
    }
}

static int ka_read(void *ctx, uint64_t offset, size_t len, void *buf)
{
    KaSource *k = ctx;
    if (offset == 2 * MB) {
        for (int waited = 0; !atomic_load(&k->seen) && waited < 10000; waited += 10)
            usleep(10000);
        k->seen_in_time = atomic_load(&k->seen);
    }
    return md_read(k->d, offset, len, buf);
}

static void test_keepalive_flushed(void **state)
{
    for (int threaded = 0; threaded < 2; threaded++) {
        MemDisk d;
        memdisk_init(&d, "Ref:1", 4 * MB);
        d.data[0] = 1;
        d.data[3 * MB] = 1;
        d.read_sleep_us = 3000;
        int p[2];
        assert_int_equal(pipe(p), 0);
        KaSource k = {.d = &d, .pipe_rd = p[0]};
        atomic_init(&k.seen, false);
        strbuf_init(&k.got, 0);
        XvaExportDisk e = {.id = "Ref:1", .size = d.size, .source = {.ctx = &k, .read = ka_read}};
        XvaExportOptions o = {.keepalive_ms = 2, .no_threads = !threaded};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, ka_drain, &k), 0);
        XvaExportStats st;
        XvaError err;
        int r = xva_export(p[1], "x", 1, &e, 1, &o, &st, &err);
        close(p[1]);
        pthread_join(th, NULL);
        close(p[0]);
        if (r < 0)
            fail_msg("%s", err.message);
        assert_true(st.keepalives >= 1);
        assert_true(k.seen_in_time);
        strbuf_release(&k.got);
        memdisk_release(&d);
    }
    /* Keep-alives with gzip and zstd, flushed each time, still round-trip. */
    for (int comp = 1; comp < 3; comp++) {
        MemDisk ds[1];
        memdisk_init(&ds[0], "Ref:1", 5 * MB);
        ds[0].data[0] = 1;
        ds[0].data[5 * MB - 1] = 1;
        ds[0].read_sleep_us = 3000;
        XvaExportDisk e = memdisk_export(&ds[0], false);
        int fd = memfd_new();
        XvaExportOptions o = {.keepalive_ms = 2, .compression = (XvaCompression)comp};
        XvaExportStats st;
        XvaError err;
        assert_int_equal(xva_export(fd, "x", 1, &e, 1, &o, &st, &err), 0);
        assert_int_equal(st.keepalives, 3);
        size_t len;
        uint8_t *b = fd_slurp(fd, &len);
        close(fd);
        MemSink s;
        XvaImportStats ist;
        assert_int_equal(import_mem(b, len, ds, 1, &s, NULL, &ist, &err, 0), 0);
        memsink_check(&s, ds);
        assert_int_equal(ist.keepalives, 3);
        memsink_release(&s);
        free(b);
        memdisk_release(&ds[0]);
    }
}

/* ========================================================= fd errors, cancel, progress */

static void test_epipe(void **state)
{
    MemDisk d;
    memdisk_init(&d, "Ref:1", 8 * MB);
    memset(d.data, 0x5a, d.size);
    d.ext[d.next++] = (Extent){0, d.size};
    XvaExportDisk e = memdisk_export(&d, true);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    XvaError err;
    int r = xva_export(p[1], "x", 1, &e, 1, NULL, NULL, &err);
    expect_error(r, &err, XVA_ERROR_IO, "Broken pipe");
    assert_int_equal(r, -EPIPE);
    close(p[1]);
    /* Same through gzip. */
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    XvaExportOptions o = {.compression = XVA_COMPRESSION_GZIP};
    r = xva_export(p[1], "x", 1, &e, 1, &o, NULL, &err);
    assert_int_equal(r, -EPIPE);
    close(p[1]);
    memdisk_release(&d);
}

static void test_enospc(void **state)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        skip();
    MemDisk d;
    memdisk_init(&d, "Ref:1", 3 * MB);
    XvaExportDisk e = memdisk_export(&d, true);
    XvaError err;
    int r = xva_export(fd, "x", 1, &e, 1, NULL, NULL, &err);
    assert_int_equal(r, -ENOSPC);
    assert_int_equal(err.kind, XVA_ERROR_IO);
    close(fd);
    memdisk_release(&d);
}

typedef struct Prog {
    uint64_t last, total, calls;
    uint64_t cancel_at;
    atomic_bool cancel;
} Prog;

static void prog_cb(void *ctx, uint64_t done, uint64_t total)
{
    Prog *p = ctx;
    assert_true(done >= p->last);
    assert_true(done <= total);
    p->last = done;
    p->total = total;
    p->calls++;
    if (p->cancel_at && done >= p->cancel_at)
        atomic_store(&p->cancel, true);
}

static void test_progress_cancel(void **state)
{
    MemDisk ds[2];
    memdisk_init(&ds[0], "Ref:1", 10 * MB + 5);
    memdisk_init(&ds[1], "Ref:2", 3 * MB);
    memdisk_fill(&ds[0], 5);
    memdisk_fill(&ds[1], 5);
    Prog p = {0};
    atomic_init(&p.cancel, false);
    XvaExportOptions o = {.progress = prog_cb, .progress_ctx = &p, .cancel = &p.cancel};
    XvaExportStats st;
    size_t len;
    uint8_t *b = export_mem(ds, 2, &o, &st, &len);
    assert_int_equal(p.last, 13 * MB + 5);
    assert_int_equal(p.total, 13 * MB + 5);
    assert_true(p.calls >= 2);

    /* Import progress, then cancel half-way. */
    MemSink s;
    XvaError err;
    Prog ip = {0};
    atomic_init(&ip.cancel, false);
    XvaImportOptions io = {.no_threads = true, .progress = prog_cb, .progress_ctx = &ip,
                           .cancel = &ip.cancel};
    assert_int_equal(import_mem(b, len, ds, 2, &s, &io, NULL, &err, 0), 0);
    assert_int_equal(ip.last, 13 * MB + 5);
    memsink_release(&s);
    memset(&ip, 0, sizeof(ip));
    ip.cancel_at = 2 * MB;
    int r = import_mem(b, len, ds, 2, &s, &io, NULL, &err, 0);
    expect_error(r, &err, XVA_ERROR_CANCELLED, "cancelled");
    assert_int_equal(r, -ECANCELED);
    memsink_release(&s);

    /* Export cancel. */
    memset(&p, 0, sizeof(p));
    p.cancel_at = 1;
    XvaExportDisk e[2] = {memdisk_export(&ds[0], true), memdisk_export(&ds[1], true)};
    int fd = memfd_new();
    r = xva_export(fd, "x", 1, e, 2, &o, NULL, &err);
    expect_error(r, &err, XVA_ERROR_CANCELLED, "cancelled");
    close(fd);
    free(b);
    memdisk_release(&ds[0]);
    memdisk_release(&ds[1]);
}

/* A failing write callback stops the import with its code. */
static void test_sink_error(void **state)
{
    MemDisk ds[1];
    memdisk_init(&ds[0], "Ref:1", 4 * MB);
    memset(ds[0].data, 1, ds[0].size);
    ds[0].ext[ds[0].next++] = (Extent){0, ds[0].size};
    size_t len;
    uint8_t *b = export_mem(ds, 1, NULL, NULL, &len);
    MemSink s;
    XvaError err;
    memsink_init(&s, ds, 1);
    s.fail_write_after = 2;
    MemIn mi = {b, len, 0, 0};
    XvaInput in = {.fd = -1, .ctx = &mi, .read = mem_read};
    XvaImportSink sink = memsink_sink(&s);
    XvaImportOptions o = {.no_threads = true};
    int r = xva_import(&in, &sink, &o, NULL, &err);
    expect_error(r, &err, XVA_ERROR_CALLBACK, "writing disk Ref:1");
    assert_int_equal(r, -EIO);
    memsink_release(&s);
    free(b);
    memdisk_release(&ds[0]);
}

/* ========================================================= XenServer-style archives */

/* SHA-1 members, skipped blocks, keep-alives and Ref:10 before Ref:9, built by hand. */
static void test_xenserver_style(void **state)
{
    uint8_t *blk = xmalloc(MB);
    StrBuf sb = STRBUF_INIT;
    tb_file(&sb, "ova.xml", "Ref:9 3145000 Ref:10 5242880", 28);
    /* Ref:10: 5 MiB. Blocks 0, keep-alive 1, (2 skipped), 3 = data, 5 = last (offset 4 MiB). */
    memset(blk, 0x11, MB);
    tb_block(&sb, "Ref:10/00000000", blk, MB, true);
    tb_block(&sb, "Ref:10/00000001", "", 0, true); /* keep-alive: offset stays 1 MiB */
    memset(blk, 0x33, MB);
    tb_block(&sb, "Ref:10/00000003", blk, MB, true); /* gap of one block: offset 2 MiB */
    memset(blk, 0x55, MB);
    tb_block(&sb, "Ref:10/00000005", blk, MB, true); /* gap of one: offset 4 MiB */
    /* Ref:9: 3145000 bytes; xxhash members. */
    memset(blk, 0x99, MB);
    tb_block(&sb, "Ref:9/00000000", blk, MB, false);
    memset(blk, 0x9a, MB);
    tb_block(&sb, "Ref:9/00000002", blk, 3145000 - 2 * MB, false);
    tb_end(&sb);

    Collect c;
    XvaImportStats st;
    XvaError err;
    int r = import_planned(&sb, &c, false, &st, &err);
    if (r < 0)
        fail_msg("%s", err.message);
    /* Disk indexes follow the plan: 0 = Ref:9, 1 = Ref:10. */
    assert_int_equal(c.size[1], 5 * MB);
    for (uint64_t i = 0; i < 5 * MB; i++) {
        uint8_t want = i < MB ? 0x11 : i < 2 * MB ? 0 : i < 3 * MB ? 0x33 : i < 4 * MB ? 0 : 0x55;
        if (c.disk[1][i] != want)
            fail_msg("Ref:10 byte %" PRIu64 " is %#x, want %#x", i, c.disk[1][i], want);
    }
    for (uint64_t i = 0; i < 3145000; i++) {
        uint8_t want = i < MB ? 0x99 : i < 2 * MB ? 0 : 0x9a;
        if (c.disk[0][i] != want)
            fail_msg("Ref:9 byte %" PRIu64 " is %#x, want %#x", i, c.disk[0][i], want);
    }
    assert_int_equal(st.checksums_sha1, 4);
    assert_int_equal(st.checksums_xxhash, 2);
    assert_int_equal(st.keepalives, 1);
    assert_int_equal(c.zero_bytes, 2 * MB + MB);
    collect_release(&c);

    /* The same stream gzip'ed (as use_compression=true does) imports the same way. */
    uLongf zl = compressBound(sb.len) + 64;
    uint8_t *z = xmalloc(zl);
    z_stream zs = {0};
    deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)sb.buf;
    zs.avail_in = (uInt)sb.len;
    zs.next_out = z;
    zs.avail_out = (uInt)zl;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    StrBuf gz = STRBUF_INIT;
    strbuf_add(&gz, z, zs.total_out);
    deflateEnd(&zs);
    r = import_planned(&gz, &c, false, &st, &err);
    assert_int_equal(r, 0);
    assert_int_equal(st.compression, XVA_COMPRESSION_GZIP);
    collect_release(&c);
    strbuf_release(&gz);
    free(z);
    strbuf_release(&sb);
    free(blk);
}

/* ========================================================= bad archives */

static void build_valid(StrBuf *sb, const char *xml)
{
    uint8_t blk[4096];
    memset(blk, 0x42, sizeof(blk));
    tb_file(sb, "ova.xml", xml, strlen(xml));
    tb_block(sb, "Ref:1/00000000", blk, sizeof(blk), false);
    tb_block(sb, "Ref:1/00000002", blk, 100, false);
}

static void test_bad_archives(void **state)
{
    Collect c;
    XvaError err;
    XvaImportStats st;
    StrBuf sb = STRBUF_INIT;
    uint8_t blk[4096];
    memset(blk, 0x42, sizeof(blk));

    /* The valid base: 4096 + gap 4096 + 100 = 8292 bytes. */
    build_valid(&sb, "Ref:1 8292");
    tb_end(&sb);
    assert_int_equal(import_planned(&sb, &c, false, &st, &err), 0);
    collect_release(&c);

    /* Truncated anywhere before the last checksum: clear error. */
    size_t full = sb.len - 1024;
    for (size_t cut = 0; cut < full; cut += 97) {
        StrBuf t = STRBUF_INIT;
        strbuf_add(&t, sb.buf, cut);
        int r = import_planned(&t, &c, false, &st, &err);
        assert_true(r < 0);
        assert_true(err.kind == XVA_ERROR_TRUNCATED || err.kind == XVA_ERROR_COMPRESSION);
        collect_release(&c);
        strbuf_release(&t);
    }

    /* A wrong checksum: refused unless force. */
    {
        StrBuf t = STRBUF_INIT;
        strbuf_add(&t, sb.buf, sb.len);
        t.buf[3 * 512 + 100] ^= 1; /* a data byte of block 0 */
        int r = import_planned(&t, &c, false, &st, &err);
        expect_error(r, &err, XVA_ERROR_CHECKSUM, "Block Ref:1/00000000 checksum failed");
        collect_release(&c);
        r = import_planned(&t, &c, true, &st, &err);
        assert_int_equal(r, 0);
        assert_int_equal(st.checksum_mismatches, 1);
        collect_release(&c);
        strbuf_release(&t);
    }

#define CASE(kind_, needle_, ...)                                                                 \
    do {                                                                                       \
        StrBuf t = STRBUF_INIT;                                                                \
        __VA_ARGS__;                                                                           \
        int r_ = import_planned(&t, &c, false, &st, &err);                                     \
        expect_error(r_, &err, kind_, needle_);                                                \
        collect_release(&c);                                                                   \
        strbuf_release(&t);                                                                    \
    } while (0)

    /* Missing ova.xml. */
    CASE(XVA_ERROR_UNEXPECTED_FILE, "must be ova.xml", {
        tb_block(&t, "Ref:1/00000000", blk, 100, false);
        tb_end(&t);
    });
    assert_string_equal(err.expected, "ova.xml");
    assert_string_equal(err.found, "Ref:1/00000000");
    /* ova.xml not first. */
    CASE(XVA_ERROR_UNEXPECTED_FILE, "found 'notes.txt'", {
        tb_file(&t, "notes.txt", "hi", 2);
        build_valid(&t, "Ref:1 8292");
        tb_end(&t);
    });
    assert_string_equal(err.found, "notes.txt");
    /* "./ova.xml" is not "ova.xml". */
    CASE(XVA_ERROR_UNEXPECTED_FILE, "./ova.xml", {
        tb_file(&t, "./ova.xml", "x", 1);
        tb_end(&t);
    });
    /* Empty stream; archive with nothing in it. */
    CASE(XVA_ERROR_TRUNCATED, "empty", {});
    CASE(XVA_ERROR_UNEXPECTED_FILE, "empty", tb_end(&t));
    /* Absurd virtual size: refused by the plan. */
    CASE(XVA_ERROR_CALLBACK, "refused", {
        build_valid(&t, "Ref:1 99999999999999999");
        tb_end(&t);
    });
    assert_int_equal(err.code, -EFBIG);
    /* Data shorter than the virtual size. */
    CASE(XVA_ERROR_TRUNCATED, "before disk Ref:1 is complete", {
        build_valid(&t, "Ref:1 9000");
        tb_end(&t);
    });
    /* ... then followed by another disk's blocks. */
    CASE(XVA_ERROR_INVALID, "expected a block of disk Ref:1", {
        build_valid(&t, "Ref:1 9000 Ref:2 100");
        tb_block(&t, "Ref:2/00000000", blk, 100, false);
        tb_end(&t);
    });
    /* Data longer than the virtual size. */
    CASE(XVA_ERROR_INVALID, "goes past the end of disk Ref:1", {
        build_valid(&t, "Ref:1 8200");
        tb_end(&t);
    });
    /* A block far past the end. */
    CASE(XVA_ERROR_INVALID, "beyond its virtual size", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_block(&t, "Ref:1/00000000", blk, 4096, false);
        tb_block(&t, "Ref:1/09999999", blk, 100, false);
        tb_end(&t);
    });
    /* Path tricks. */
    const char *tricks[] = {"../etc/passwd", "/etc/passwd", "Ref:1/../Ref:1/00000001",
                            "Ref:1//00000001", "Ref:1/./00000001", "Ref:1/0000\x01"};
    for (size_t i = 0; i < ARRAY_SIZE(tricks); i++) {
        CASE(XVA_ERROR_INVALID, "unsafe member name", {
            tb_file(&t, "ova.xml", "Ref:1 8292", 10);
            tb_block(&t, tricks[i], blk, 4096, false);
            tb_end(&t);
        });
    }
    /* A NUL in a pax path. */
    CASE(XVA_ERROR_INVALID, "pax path", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        static const char pax[] = "22 path=Ref:1/0\0/../x\n";
        tb_header(&t, "pax", 3, sizeof(pax) - 1, 'x', "ustar\00000");
        strbuf_add(&t, pax, sizeof(pax) - 1);
        tb_pad(&t, sizeof(pax) - 1);
        tb_block(&t, "Ref:1/00000000", blk, 4096, false);
        tb_end(&t);
    });
    /* Members of another directory. */
    CASE(XVA_ERROR_INVALID, "expected a block of disk Ref:1", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_block(&t, "Ref:2/00000000", blk, 4096, false);
        tb_end(&t);
    });
    /* Non-regular files. */
    CASE(XVA_ERROR_INVALID, "is a directory", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_header(&t, "Ref:1/", 6, 0, '5', "ustar\00000");
        tb_end(&t);
    });
    CASE(XVA_ERROR_INVALID, "not a regular file", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_header(&t, "Ref:1/00000000", 14, 0, '2', "ustar\00000");
        tb_end(&t);
    });
    CASE(XVA_ERROR_INVALID, "ova.xml is not a regular file", {
        tb_header(&t, "ova.xml", 7, 0, '5', "ustar\00000");
        tb_end(&t);
    });
    /* Unsupported checksum member. */
    CASE(XVA_ERROR_INVALID, "Found unsupported checksum file: Ref:1/00000000.md5", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_file(&t, "Ref:1/00000000", blk, 4096);
        tb_file(&t, "Ref:1/00000000.md5", "0123", 4);
        tb_end(&t);
    });
    /* A checksum of another block. */
    CASE(XVA_ERROR_INVALID, "expected the checksum of block Ref:1/00000000", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_file(&t, "Ref:1/00000000", blk, 4096);
        tb_file(&t, "Ref:1/00000001.xxhash", "0123456789ABCDEF", 16);
        tb_end(&t);
    });
    /* Two data members in a row. */
    CASE(XVA_ERROR_INVALID, "expected the checksum", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_file(&t, "Ref:1/00000000", blk, 4096);
        tb_file(&t, "Ref:1/00000001", blk, 4096);
        tb_end(&t);
    });
    /* Block numbers not increasing, not numbers, huge checksum member. */
    CASE(XVA_ERROR_INVALID, "must increase", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_block(&t, "Ref:1/00000001", blk, 4096, false);
        tb_block(&t, "Ref:1/00000000", blk, 4096, false);
        tb_end(&t);
    });
    CASE(XVA_ERROR_INVALID, "neither a block nor its checksum", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_block(&t, "Ref:1/0x000001", blk, 4096, false);
        tb_end(&t);
    });
    CASE(XVA_ERROR_INVALID, "not a short regular file", {
        tb_file(&t, "ova.xml", "Ref:1 8292", 10);
        tb_file(&t, "Ref:1/00000000", blk, 4096);
        tb_file(&t, "Ref:1/00000000.xxhash", blk, 4096);
        tb_end(&t);
    });
    /* A bad header checksum and a garbage size field. */
    CASE(XVA_ERROR_INVALID, "invalid tar header", {
        build_valid(&t, "Ref:1 8292");
        tb_end(&t);
        t.buf[512 + 512 + 3] ^= 0x20; /* the name of Ref:1/00000000 */
    });
    CASE(XVA_ERROR_INVALID, "invalid tar header", {
        build_valid(&t, "Ref:1 8292");
        tb_end(&t);
        memcpy(t.buf + 1024 + 124, "9999", 4);
    });
    /* Garbage, or garbage after a zstd magic. */
    CASE(XVA_ERROR_COMPRESSION, "neither a tar archive nor gzip or zstd", {
        for (int i = 0; i < 2000; i++)
            strbuf_addch(&t, (char)(rnd() | 1));
    });
    CASE(XVA_ERROR_COMPRESSION, "zstd", {
        strbuf_add(&t, "\x28\xb5\x2f\xfd", 4);
        for (int i = 0; i < 2000; i++)
            strbuf_addch(&t, (char)rnd());
    });
    CASE(XVA_ERROR_COMPRESSION, "gzip", {
        strbuf_add(&t, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
        for (int i = 0; i < 2000; i++)
            strbuf_addch(&t, (char)rnd());
    });
    /* ova.xml beyond the bound. */
    {
        StrBuf t = STRBUF_INIT;
        build_valid(&t, "Ref:1 8292 ..............................................");
        tb_end(&t);
        MemIn mi = {(const uint8_t *)t.buf, t.len, 0, 0};
        XvaInput in = {.fd = -1, .ctx = &mi, .read = mem_read};
        memset(&c, 0, sizeof(c));
        XvaImportSink sink = {.ctx = &c, .ova_xml = plan_ova_xml, .disk_begin = col_begin,
                              .write = col_write};
        XvaImportOptions o = {.no_threads = true, .max_ova_xml = 40};
        int r = xva_import(&in, &sink, &o, NULL, &err);
        expect_error(r, &err, XVA_ERROR_LIMIT, "ova.xml is");
        collect_release(&c);
        strbuf_release(&t);
    }
#undef CASE
    strbuf_release(&sb);
}

/* ========================================================= raw tar */

static void test_raw_tar(void **state)
{
    MemDisk d;
    memdisk_init(&d, "vdi", 4 * MB + 3);
    memdisk_fill(&d, 5);
    XvaExportDisk e = memdisk_export(&d, true);
    for (int k = 0; k < 2; k++) {
        int fd = memfd_new();
        XvaExportOptions o = {.checksum = k ? XVA_CHECKSUM_XXHASH : XVA_CHECKSUM_DEFAULT};
        XvaError err;
        assert_int_equal(xva_export_raw_tar(fd, &e, &o, NULL, &err), 0);
        size_t len;
        uint8_t *b = fd_slurp(fd, &len);
        close(fd);
        /* "vdi/00000000" and, by default, a SHA-1 ".checksum" right after it. */
        assert_string_equal((char *)b, "vdi/00000000");
        assert_string_equal((char *)b + 512 + MB, k ? "vdi/00000000.xxhash" : "vdi/00000000.checksum");
        MemSink s;
        memsink_init(&s, &d, 1);
        MemIn mi = {b, len, 0, 0};
        XvaInput in = {.fd = -1, .ctx = &mi, .read = mem_read};
        XvaImportSink sink = memsink_sink(&s);
        sink.ova_xml = NULL;
        XvaImportStats st;
        XvaImportOptions io = {.no_threads = true};
        int r = xva_import_raw_tar(&in, d.size, &sink, &io, &st, &err);
        if (r < 0)
            fail_msg("%s", err.message);
        memsink_check(&s, &d);
        assert_true(k ? st.checksums_xxhash > 0 : st.checksums_sha1 > 0);
        memsink_release(&s);
        /* The wrong size is an error either way. */
        memsink_init(&s, &d, 1);
        mi.pos = 0;
        r = xva_import_raw_tar(&in, d.size - 1, &sink, &io, &st, &err);
        assert_true(r < 0);
        memsink_release(&s);
        free(b);
    }
    memdisk_release(&d);
}

/* ========================================================= verify */

static void test_verify(void **state)
{
    MemDisk ds[2];
    memdisk_init(&ds[0], "Ref:1", 3 * MB);
    memdisk_init(&ds[1], "Ref:2", 2 * MB + 1);
    memdisk_fill(&ds[0], 4);
    memdisk_fill(&ds[1], 4);
    size_t len;
    uint8_t *b = export_mem(ds, 2, NULL, NULL, &len);
    XvaError err;
    XvaVerifyReport rep;
    MemIn mi = {b, len, 0, 0};
    XvaInput in = {.fd = -1, .ctx = &mi, .read = mem_read};
    assert_int_equal(xva_verify(&in, NULL, NULL, &rep, &err), 0);
    assert_int_equal(rep.n_disks, 2);
    assert_int_equal(rep.disks[1].size, 2 * MB + 1);
    xva_verify_report_release(&rep);

    /* With a plan that disagrees on a size. */
    MemSink s;
    memsink_init(&s, ds, 2);
    s.sizes[1] = 2 * MB + 2;
    XvaImportSink sink = {.ctx = &s, .ova_xml = ms_ova_xml};
    mi.pos = 0;
    int r = xva_verify(&in, &sink, NULL, &rep, &err);
    expect_error(r, &err, XVA_ERROR_INVALID, "ova.xml says");
    memsink_release(&s);

    /* Missing end marker, trailing garbage, a flipped data bit. */
    mi = (MemIn){b, len - 1024, 0, 0};
    r = xva_verify(&in, NULL, NULL, &rep, &err);
    expect_error(r, &err, XVA_ERROR_TRUNCATED, "end-of-archive");
    uint8_t *b2 = xmalloc(len + 512);
    memcpy(b2, b, len);
    memset(b2 + len, 'z', 512);
    mi = (MemIn){b2, len + 512, 0, 0};
    r = xva_verify(&in, NULL, NULL, &rep, &err);
    expect_error(r, &err, XVA_ERROR_INVALID, "follows the end-of-archive");
    memcpy(b2, b, len);
    b2[512 + 512 + 512 + 7] ^= 4;
    mi = (MemIn){b2, len, 0, 0};
    r = xva_verify(&in, NULL, NULL, &rep, &err);
    expect_error(r, &err, XVA_ERROR_CHECKSUM, "checksum failed");
    free(b2);
    free(b);
    memdisk_release(&ds[0]);
    memdisk_release(&ds[1]);
}

/* ========================================================= version 1 */

static const char V1_OK[] =
    "<?xml version=\"1.0\"?>\n"
    "<appliance version=\"0.1\">\n"
    "  <vm name=\"vm\">\n"
    "    <label> My VM </label>\n"
    "    <shortdesc>desc</shortdesc>\n"
    "    <config mem_set=\"268435456\" vcpus=\"2\" distrib=\"windows\" distrib_version=\"win2k\"/>\n"
    "    <hacks is_hvm=\"FALSE\" kernel_boot_cmdline=\"root=/dev/sda1 ro\"/>\n"
    "    <vbd device=\"sda\" function=\"root\" mode=\"w\" vdi=\"vdi_sda\"/>\n"
    "    <vbd device=\"sdb\" function=\"data\" mode=\"R\" vdi=\"vdi_sdb\"/>\n"
    "  </vm>\n"
    "  <vdi name=\"vdi_sda\" size=\"5368709120\" source=\"file://sda\" type=\"dir-gzipped-chunks\" variety=\"system\"/>\n"
    "  <vdi name=\"vdi_sdb\" size=\"1000\" source=\"file://sdb\" type=\"dir-gzipped-chunks\" variety=\"User\"/>\n"
    "</appliance>\n";

static void test_v1_parse(void **state)
{
    XvaV1Appliance *app;
    XvaError err;
    int r = xva_v1_parse(V1_OK, strlen(V1_OK), &app, &err);
    if (r < 0)
        fail_msg("%s", err.message);
    assert_string_equal(app->vm_name, "vm");
    assert_string_equal(app->label, "My VM");
    assert_string_equal(app->shortdesc, "desc");
    assert_int_equal(app->mem_set, 268435456);
    assert_int_equal(app->vcpus, 2);
    assert_string_equal(app->distrib, "windows");
    assert_string_equal(app->distrib_version, "win2k");
    assert_false(app->is_hvm);
    assert_string_equal(app->kernel_boot_cmdline, "root=/dev/sda1 ro");
    assert_int_equal(app->n_vbds, 2);
    assert_true(app->vbds[0].bootable);
    assert_int_equal(app->vbds[0].mode, XVA_V1_MODE_RW);
    assert_false(app->vbds[1].bootable);
    assert_int_equal(app->vbds[1].mode, XVA_V1_MODE_RO);
    assert_int_equal(app->vbds[1].vdi, 1);
    assert_int_equal(app->n_vdis, 2);
    assert_int_equal(app->vdis[0].size, 5368709120ull);
    assert_string_equal(app->vdis[0].path, "sda");
    assert_int_equal(app->vdis[1].variety, XVA_V1_VARIETY_USER);
    xva_v1_appliance_free(app);

    /* Refusals, each with its reason. */
    struct {
        const char *from, *to, *needle;
    } bad[] = {
        {"version=\"0.1\"", "version=\"0.2\"", "Version_mismatch"},
        {"mode=\"w\"", "mode=\"ro\"", "Unknown mode: ro"},
        {"variety=\"system\"", "variety=\"ha_statefile\"", "Unknown variety"},
        {"variety=\"system\"", "", "no variety attribute"},
        {"<hacks", "<hackz", "Failed to find element: hacks"},
        {"<label> My VM </label>", "", "Failed to find element: label"},
        {"vcpus=\"2\"", "vcpus=\"two\"", "vcpus"},
        {"mem_set=\"268435456\"", "", "no mem_set attribute"},
        {"vdi=\"vdi_sdb\"", "vdi=\"nope\"", "not defined"},
        {"file://sda", "http://sda", "file:// URL"},
        {"file://sda", "file://../x", "leaves the XVA directory"},
        {"file://sda", "file:///etc", "leaves the XVA directory"},
        {"size=\"1000\"", "size=\"-5\"", "byte count"},
        {"<vm name=\"vm\">", "<vx>", ""},
        {"<shortdesc>desc</shortdesc>", "<shortdesc><b/></shortdesc>", "text only"},
        {"</appliance>", "</appliance", "well-formed"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        StrBuf sb = STRBUF_INIT;
        const char *at = strstr(V1_OK, bad[i].from);
        assert_non_null(at);
        strbuf_add(&sb, V1_OK, (size_t)(at - V1_OK));
        strbuf_adds(&sb, bad[i].to);
        strbuf_adds(&sb, at + strlen(bad[i].from));
        if (STREQ(bad[i].to, "<vx>")) {
            /* no <vm> at all */
            StrBuf t = STRBUF_INIT;
            strbuf_adds(&t, "<appliance version=\"0.1\"><vdi name=\"a\" size=\"1\" "
                            "source=\"file://a\" type=\"t\" variety=\"user\"/></appliance>");
            strbuf_release(&sb);
            sb = t;
            bad[i].needle = "no <vm>";
        }
        r = xva_v1_parse(sb.buf, sb.len, &app, &err);
        if (r >= 0 || err.kind != XVA_ERROR_INVALID || !strstr(err.message, bad[i].needle))
            fail_msg("case %zu: r=%d [%s] %s", i, r, xva_error_kind_name(err.kind), err.message);
        strbuf_release(&sb);
    }
    static const char other_root[] = "<vm version=\"0.1\"/>";
    r = xva_v1_parse(other_root, strlen(other_root), &app, &err);
    expect_error(r, &err, XVA_ERROR_INVALID, "expected appliance or vm, found <vm>");
}

static void test_v1_import(void **state)
{
    char dir[] = "/tmp/xva-v1-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof(path), "%s/ova.xml", dir);
    static const char xml[] =
        "<appliance version=\"0.1\"><vm name=\"vm\"><label>L</label><shortdesc/>"
        "<config mem_set=\"1\" vcpus=\"1\"/><hacks/>"
        "<vbd device=\"xvda\" function=\"root\" mode=\"rw\" vdi=\"a\"/></vm>"
        "<vdi name=\"a\" size=\"300000\" source=\"file://xvda\" type=\"dir-gzipped-chunks\" "
        "variety=\"system\"/></appliance>";
    FILE *f = fopen(path, "w");
    fputs(xml, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/xvda", dir);
    mkdir(path, 0755);
    /* Two chunks (each a gzip stream; the second made of two members). */
    uint8_t *raw = xcalloc(1, 300000);
    for (int i = 0; i < 250000; i++)
        raw[i] = (uint8_t)(i * 7);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof(path), "%s/xvda/chunk-%09d.gz", dir, k);
        gzFile g = gzopen(path, "wb");
        if (k == 0) {
            gzwrite(g, raw, 200000);
        } else {
            gzwrite(g, raw + 200000, 50000);
            gzclose(g);
            g = gzopen(path, "ab");
            gzwrite(g, raw + 250000, 10000);
        }
        gzclose(g);
    }
    XvaV1Appliance *app;
    XvaError err;
    assert_true(xva_v1_detect(dir));
    assert_int_equal(xva_v1_open(dir, &app, &err), 0);
    assert_string_equal(app->label, "L");
    assert_true(app->is_hvm);
    assert_string_equal(app->kernel_boot_cmdline, "");

    MemDisk d;
    memdisk_init(&d, "a", 300000);
    memcpy(d.data, raw, 300000);
    MemSink s;
    memsink_init(&s, &d, 1);
    XvaImportSink sink = memsink_sink(&s);
    XvaImportStats st;
    int r = xva_v1_import(app, &sink, NULL, &st, &err);
    if (r < 0)
        fail_msg("%s", err.message);
    memsink_check(&s, &d);
    memsink_release(&s);
    xva_v1_appliance_free(app);

    /* The path of ova.xml works too. A gap in the chunk sequence is an error. */
    snprintf(path, sizeof(path), "%s/ova.xml", dir);
    assert_int_equal(xva_v1_open(path, &app, &err), 0);
    char from[512], to[512];
    snprintf(from, sizeof(from), "%s/xvda/chunk-000000001.gz", dir);
    snprintf(to, sizeof(to), "%s/xvda/chunk-000000002.gz", dir);
    assert_int_equal(rename(from, to), 0);
    memsink_init(&s, &d, 1);
    r = xva_v1_import(app, &sink, NULL, &st, &err);
    expect_error(r, &err, XVA_ERROR_INVALID, "chunk 1 is missing but chunk 2 exists");
    memsink_release(&s);
    /* Corrupt gzip data. */
    assert_int_equal(rename(to, from), 0);
    f = fopen(from, "r+");
    fseek(f, 30, SEEK_SET);
    fputs("garbage garbage garbage", f);
    fclose(f);
    memsink_init(&s, &d, 1);
    r = xva_v1_import(app, &sink, NULL, &st, &err);
    expect_error(r, &err, XVA_ERROR_COMPRESSION, "chunk-000000001.gz");
    memsink_release(&s);
    xva_v1_appliance_free(app);
    memdisk_release(&d);
    free(raw);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ========================================================= mutation loop */

static void test_mutations(void **state)
{
    /* A small valid archive whose ova.xml plans its own disks for the harness. */
    MemDisk ds[2];
    memdisk_init(&ds[0], "Ref:1", 2 * MB + 300);
    memdisk_init(&ds[1], "Ref:10", 5000);
    memdisk_fill(&ds[0], 3);
    ds[1].data[10] = 1;
    XvaExportDisk e[2] = {memdisk_export(&ds[0], true), memdisk_export(&ds[1], true)};
    char xml[128];
    snprintf(xml, sizeof(xml), "Ref:1 %" PRIu64 "\nRef:10 5000\n", ds[0].size);
    for (int comp = 0; comp < 3; comp++) {
        int fd = memfd_new();
        XvaExportOptions o = {.compression = (XvaCompression)comp};
        XvaError err;
        assert_int_equal(xva_export(fd, xml, strlen(xml), e, 2, &o, NULL, &err), 0);
        size_t len;
        uint8_t *b = fd_slurp(fd, &len);
        close(fd);
        LLVMFuzzerTestOneInput(b, len);
        uint8_t *m = xmalloc(len + 64);
        int iters = comp == 0 ? 600 : 150;
        for (int it = 0; it < iters; it++) {
            memcpy(m, b, len);
            size_t mlen = len;
            int kind = (int)(rnd() % (len >= 2048 ? 4 : 2));
            if (kind == 0) { /* flip bytes, mostly in headers */
                for (int k = 0; k < 1 + (int)(rnd() % 4); k++) {
                    size_t at = rnd() % 2 && mlen >= 512 ? (rnd() % (mlen / 512)) * 512 + rnd() % 512
                                                         : rnd() % mlen;
                    m[at] ^= (uint8_t)(1u << (rnd() % 8));
                }
            } else if (kind == 1) { /* truncate */
                mlen = rnd() % mlen;
            } else if (kind == 2) { /* overwrite a numeric header field */
                size_t blkno = rnd() % (mlen / 512);
                memcpy(m + blkno * 512 + 124, "77777777777", 11);
            } else { /* splice a block elsewhere */
                size_t a = (rnd() % (mlen / 512)) * 512, bb = (rnd() % (mlen / 512)) * 512;
                memmove(m + a, m + bb, 512);
            }
            LLVMFuzzerTestOneInput(m, mlen);
        }
        free(m);
        free(b);
    }
    LLVMFuzzerTestOneInput((const uint8_t *)V1_OK, strlen(V1_OK));
    memdisk_release(&ds[0]);
    memdisk_release(&ds[1]);
}

/* ========================================================= mapped input */

typedef struct RefSink {
    MemSink ms;
    int fd;
    int refs;       /* write_ref calls */
    int copies;     /* write calls */
    int truncate_at; /* >0: the Nth write_ref cuts the file short */
    int stops;
} RefSink;

static int rs_write_ref(void *ctx, size_t disk, uint64_t off, const void *buf, size_t len)
{
    RefSink *r = ctx;
    r->refs++;
    if (r->truncate_at && r->refs == r->truncate_at) {
        assert_int_equal(ftruncate(r->fd, 4096), 0);
        return 0;
    }
    return ms_write(&r->ms, disk, off, buf, len);
}

static void rs_stop(void *ctx)
{
    ((RefSink *)ctx)->stops++;
}

static int rs_ova_xml(void *ctx, const char *xml, size_t len, XvaPlan *plan)
{
    return ms_ova_xml(&((RefSink *)ctx)->ms, xml, len, plan);
}

static int rs_begin(void *ctx, size_t disk, const char *id, uint64_t size)
{
    return ms_begin(&((RefSink *)ctx)->ms, disk, id, size);
}

static int rs_write(void *ctx, size_t disk, uint64_t off, const void *buf, size_t len)
{
    ((RefSink *)ctx)->copies++;
    return ms_write(&((RefSink *)ctx)->ms, disk, off, buf, len);
}

static int rs_zero(void *ctx, size_t disk, uint64_t off, uint64_t len)
{
    return ms_zero(&((RefSink *)ctx)->ms, disk, off, len);
}

static int rs_end(void *ctx, size_t disk, uint64_t size)
{
    return ms_end(&((RefSink *)ctx)->ms, disk, size);
}

/* An uncompressed archive in a file is mapped: its data reaches write_ref
 * where it lies; a file cut short under the import fails it cleanly. */
static void test_import_mapped(void **state)
{
    static const uint64_t sizes[3] = {5 * MB + 3, 2 * MB, 3 * MB};
    MemDisk ds[3];
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "Ref:%d", i + 1);
        memdisk_init(&ds[i], id, sizes[i]);
        memdisk_fill(&ds[i], 6);
    }
    XvaExportOptions o = {.mtime = 1234567890};
    size_t len;
    uint8_t *b = export_mem(ds, 3, &o, NULL, &len);
    for (int round = 0; round < 3; round++) {
        /* 0: mapped; 1: the file shrinks; 2: compressed (read, not mapped) */
        int fd = memfd_new();
        if (round == 2) {
            XvaExportDisk ed[3];
            for (int i = 0; i < 3; i++)
                ed[i] = memdisk_export(&ds[i], true);
            XvaExportOptions zo = {.compression = XVA_COMPRESSION_ZSTD};
            XvaError e;
            assert_int_equal(xva_export(fd, "<x/>", 4, ed, 3, &zo, NULL, &e), 0);
            assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        } else {
            assert_int_equal(write(fd, b, len), (ssize_t)len);
            /* The archive starts at the descriptor's offset, not the file's start. */
            assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        }
        RefSink rs = {.fd = fd, .truncate_at = round == 1 ? 1 : 0};
        memsink_init(&rs.ms, ds, 3);
        XvaImportSink sink = {.ctx = &rs, .ova_xml = rs_ova_xml, .disk_begin = rs_begin,
                              .write = rs_write, .write_ref = rs_write_ref, .stop = rs_stop,
                              .zero = rs_zero, .disk_end = rs_end};
        XvaInput in = {.fd = fd, .map = true};
        XvaImportStats st;
        XvaError err;
        int r = xva_import(&in, &sink, NULL, &st, &err);
        if (round == 0) {
            if (r < 0)
                fail_msg("mapped import: %s", err.message);
            assert_true(rs.refs > 0);
            assert_int_equal(rs.copies, 0);
            assert_int_equal(rs.stops, 0);
            memsink_check(&rs.ms, ds);
        } else if (round == 1) {
            assert_true(r < 0);
            assert_int_equal(err.kind, XVA_ERROR_IO);
            if (!strstr(err.message, "shrank"))
                fail_msg("unexpected error: %s", err.message);
            assert_int_equal(rs.stops, 1);
        } else {
            if (r < 0)
                fail_msg("compressed import from a file: %s", err.message);
            assert_int_equal(rs.refs, 0);
            assert_true(rs.copies > 0);
            memsink_check(&rs.ms, ds);
        }
        memsink_release(&rs.ms);
        close(fd);
    }
    for (int i = 0; i < 3; i++)
        memdisk_release(&ds[i]);
    free(b);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE must not be what saves test_epipe */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_codec),
        cmocka_unit_test(test_header_extensions),
        cmocka_unit_test(test_roundtrip_none),
        cmocka_unit_test(test_roundtrip_none_sha1),
        cmocka_unit_test(test_roundtrip_gzip),
        cmocka_unit_test(test_roundtrip_zstd),
        cmocka_unit_test(test_roundtrip_pipe),
        cmocka_unit_test(test_roundtrip_pipe_zstd),
        cmocka_unit_test(test_roundtrip_map),
        cmocka_unit_test(test_export_no_threads),
        cmocka_unit_test(test_short_first_member),
        cmocka_unit_test(test_edge_disks),
        cmocka_unit_test(test_bad_export_args),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_keepalive_flushed),
        cmocka_unit_test(test_epipe),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_progress_cancel),
        cmocka_unit_test(test_sink_error),
        cmocka_unit_test(test_xenserver_style),
        cmocka_unit_test(test_bad_archives),
        cmocka_unit_test(test_raw_tar),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_v1_parse),
        cmocka_unit_test(test_v1_import),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_import_mapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
