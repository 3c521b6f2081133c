/*
 * libFuzzer target for the XVA readers: the same input goes through
 * xva_import() (the disks to expect are read from ova.xml lines of the form
 * "<id> <size>", so inputs steer the plan), xva_verify(), xva_import_raw_tar()
 * and, when short, the version-1 ova.xml parser. The sink checks that every
 * write and zero range lies inside the planned disk and traps otherwise.
 * Reads come from memory in odd-sized pieces to exercise buffer edges.
 *
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer); the unit tests also
 * link this file and feed it mutated archives.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/xva.h"
#include "formats/xva_v1.h"
#include "util/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct FuzzIn {
    const uint8_t *p;
    size_t len, pos, piece;
} FuzzIn;

static ssize_t fuzz_read(void *ctx, void *buf, size_t len)
{
    FuzzIn *in = ctx;
    size_t n = in->len - in->pos;
    if (n > len)
        n = len;
    if (n > in->piece)
        n = in->piece;
    memcpy(buf, in->p + in->pos, n);
    in->pos += n;
    return (ssize_t)n;
}

typedef struct FuzzSink {
    uint64_t sizes[64];
    size_t n;
    bool raw;
} FuzzSink;

static int fuzz_ova_xml(void *ctx, const char *xml, size_t len, XvaPlan *plan)
{
    FuzzSink *s = ctx;
    const char *p = xml, *end = xml + len;
    while (p < end && s->n < 64) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[128];
        if (ll < sizeof(line)) {
            memcpy(line, p, ll);
            line[ll] = '\0';
            char id[80];
            unsigned long long sz;
            if (sscanf(line, "%79s %llu", id, &sz) == 2) {
                int r = xva_plan_add_disk(plan, id, sz);
                if (r >= 0)
                    s->sizes[s->n++] = sz;
                else if (r == -EFBIG)
                    return r;
            }
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

static int fuzz_write(void *ctx, size_t disk, uint64_t off, const void *buf, size_t len)
{
    FuzzSink *s = ctx;
    if (disk >= s->n || off > s->sizes[disk] || len > s->sizes[disk] - off || len == 0)
        __builtin_trap();
    volatile uint8_t sink = ((const uint8_t *)buf)[0] ^ ((const uint8_t *)buf)[len - 1];
    (void)sink;
    return 0;
}

static int fuzz_zero(void *ctx, size_t disk, uint64_t off, uint64_t len)
{
    FuzzSink *s = ctx;
    if (disk >= s->n || off > s->sizes[disk] || len > s->sizes[disk] - off || len == 0)
        __builtin_trap();
    return 0;
}

static void check_error(int r, const XvaError *e)
{
    if (r < 0 && (e->kind == XVA_ERROR_NONE || e->code != r || !e->message[0]))
        __builtin_trap();
    if (r == 0 && e->kind != XVA_ERROR_NONE)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Odd-sized reads, from 1 byte up; larger for large inputs to stay fast. */
    size_t piece = (size ? 1 + data[size - 1] * 61u : 1) + size / 32;
    XvaImportOptions o = {.no_threads = true, .max_ova_xml = 1 << 20};
    XvaError err;

    {
        FuzzIn in = {data, size, 0, piece};
        FuzzSink s = {0};
        XvaImportSink sink = {.ctx = &s, .ova_xml = fuzz_ova_xml, .write = fuzz_write,
                              .zero = fuzz_zero};
        XvaInput xi = {.fd = -1, .ctx = &in, .read = fuzz_read};
        XvaImportStats st;
        int r = xva_import(&xi, &sink, &o, &st, &err);
        check_error(r, &err);
        o.force = true;
        in.pos = 0;
        memset(&s, 0, sizeof(s));
        r = xva_import(&xi, &sink, &o, &st, &err);
        check_error(r, &err);
        o.force = false;
    }
    {
        FuzzIn in = {data, size, 0, piece};
        XvaInput xi = {.fd = -1, .ctx = &in, .read = fuzz_read};
        XvaVerifyReport rep;
        int r = xva_verify(&xi, NULL, &o, &rep, &err);
        check_error(r, &err);
        if (r == 0)
            xva_verify_report_release(&rep);
    }
    {
        FuzzIn in = {data, size, 0, piece};
        FuzzSink s = {.n = 1, .sizes = {2 * 1024 * 1024 + 100}, .raw = true};
        XvaImportSink sink = {.ctx = &s, .write = fuzz_write, .zero = fuzz_zero};
        XvaInput xi = {.fd = -1, .ctx = &in, .read = fuzz_read};
        int r = xva_import_raw_tar(&xi, s.sizes[0], &sink, &o, NULL, &err);
        check_error(r, &err);
    }
    if (size < 65536) {
        XvaV1Appliance *app = NULL;
        int r = xva_v1_parse((const char *)data, size, &app, &err);
        check_error(r, &err);
        if (r == 0) {
            for (size_t i = 0; i < app->n_vbds; i++) {
                if (app->vbds[i].vdi >= app->n_vdis)
                    __builtin_trap();
            }
            xva_v1_appliance_free(app);
        }
    }
    return 0;
}
