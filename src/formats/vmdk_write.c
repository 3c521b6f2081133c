/*
 * VMDK writers.
 *
 * streamOptimized, the VMware way (what ovftool writes and VMware and
 * VirtualBox import): header with GD_AT_END, embedded descriptor, grain
 * markers with zlib-compressed grains in increasing LBA order, after each
 * grain table's range its GT marker and GT, then GD marker and GD, footer
 * marker and footer (the header with the real GD offset), EOS marker. One
 * pass, nothing rewritten, so it streams to a pipe. All-zero grains and
 * grain tables are left out. Grains are compressed by worker threads (2 by
 * default) while this thread reads the source and writes results in order.
 *
 * monolithicSparse (seekable files only): header, descriptor, redundant and
 * primary grain directories with preallocated grain tables (as qemu and
 * VMware lay them out), then uncompressed grains; metadata written last.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <zlib.h>

#include "formats/image_int.h"
#include "formats/vmdk.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "util/banned.h"

#define GRAIN_SECTORS 128ULL
#define GRAIN (GRAIN_SECTORS * 512)
#define GTES 512ULL
#define GT_COVER (GTES * GRAIN)
#define BATCH_GRAINS 64
#define SLOTS 6
/*
 * zlib level 1 by default. On a 4 GiB disk with 2 GiB of typical system
 * files, level 1 costs a third of the CPU time of level 6 (qemu's choice)
 * for 8% more output (828 vs 764 MiB): level 6 compresses at ~35 MB/s per
 * core, below a gigabit link, so exports from a host that also runs VMs
 * finish sooner at level 1. compression_level=6 gives qemu's output.
 */
#define VMDK_DEFAULT_LEVEL 1

static void make_descriptor(StrBuf *sb, const char *create_type, uint64_t sectors,
                            const char *adapter)
{
    uint32_t cid;
    if (getrandom(&cid, sizeof(cid), 0) != sizeof(cid))
        cid = 0x12345678;
    if (!adapter)
        adapter = "ide";
    unsigned heads = STREQ(adapter, "ide") ? 16 : 255;
    uint64_t cyls = sectors / (63ULL * heads);
    if (STREQ(adapter, "ide") && cyls > 16383)
        cyls = 16383;
    strbuf_addf(sb,
                "# Disk DescriptorFile\n"
                "version=1\n"
                "CID=%08x\n"
                "parentCID=ffffffff\n"
                "createType=\"%s\"\n"
                "\n"
                "# Extent description\n"
                "RW %llu SPARSE \"disk.vmdk\"\n"
                "\n"
                "# The Disk Data Base\n"
                "#DDB\n"
                "\n"
                "ddb.virtualHWVersion = \"4\"\n"
                "ddb.geometry.cylinders = \"%llu\"\n"
                "ddb.geometry.heads = \"%u\"\n"
                "ddb.geometry.sectors = \"63\"\n"
                "ddb.adapterType = \"%s\"\n",
                cid, create_type, (unsigned long long)sectors, (unsigned long long)cyls, heads,
                adapter);
}

static void make_header(uint8_t *h, uint32_t version, uint32_t flags, uint64_t capacity,
                        uint64_t desc_sectors, uint64_t rgd, uint64_t gd, uint64_t overhead,
                        bool compressed)
{
    memset(h, 0, 512);
    img_put_le32(h, VMDK_MAGIC);
    img_put_le32(h + 4, version);
    img_put_le32(h + 8, flags);
    img_put_le64(h + 12, capacity);
    img_put_le64(h + 20, GRAIN_SECTORS);
    img_put_le64(h + 28, 1);
    img_put_le64(h + 36, desc_sectors);
    img_put_le32(h + 44, GTES);
    img_put_le64(h + 48, rgd);
    img_put_le64(h + 56, gd);
    img_put_le64(h + 64, overhead);
    h[72] = 0;
    h[73] = '\n';
    h[74] = ' ';
    h[75] = '\r';
    h[76] = '\n';
    h[77] = compressed ? VMDK_COMPRESS_DEFLATE : 0;
}

static int check_size(uint64_t size, ImgError *err)
{
    if (size > (1ULL << 44)) /* 16 TiB: grain tables of 32-bit sectors */
        return img_error_set(err, EFBIG, "a %llu-byte disk is too large for a VMDK extent",
                             (unsigned long long)size);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* streamOptimized                                                            */

typedef struct {
    /* filled by the main thread */
    uint64_t lba0;     /* first grain's virtual byte offset */
    unsigned count;    /* grains in this batch */
    uint8_t *in;       /* BATCH_GRAINS * GRAIN */
    /* filled by workers */
    uint8_t *out[BATCH_GRAINS];
    size_t out_len[BATCH_GRAINS]; /* 0 = zero grain, skipped */
    unsigned next;     /* next grain to take */
    unsigned done;     /* grains finished */
    int error;
    bool busy;         /* submitted and not yet written */
} Slot;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* workers wait for grains */
    pthread_cond_t ready; /* main waits for finished batches */
    Slot slots[SLOTS];
    unsigned head;        /* oldest busy slot */
    unsigned nbusy;
    bool quit;
    int level;
    size_t out_cap;
} Pool;

static void *worker(void *arg)
{
    Pool *p = arg;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int zret = deflateInit(&zs, p->level);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        Slot *s = NULL;
        unsigned gi = 0;
        for (unsigned k = 0; k < p->nbusy; k++) {
            Slot *c = &p->slots[(p->head + k) % SLOTS];
            if (c->next < c->count) {
                s = c;
                gi = c->next++;
                break;
            }
        }
        if (!s) {
            if (p->quit)
                break;
            pthread_cond_wait(&p->work, &p->lock);
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        const uint8_t *g = s->in + (size_t)gi * GRAIN;
        size_t len = 0;
        int error = 0;
        if (!img_is_zero(g, GRAIN)) {
            if (zret != Z_OK) {
                error = ENOMEM;
            } else {
                deflateReset(&zs);
                zs.next_in = (Bytef *)g;
                zs.avail_in = GRAIN;
                zs.next_out = s->out[gi] + 12;
                zs.avail_out = (uInt)(p->out_cap - 12);
                if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
                    error = EIO;
                else
                    len = 12 + zs.total_out;
            }
        }
        pthread_mutex_lock(&p->lock);
        s->out_len[gi] = len;
        if (error)
            s->error = error;
        if (++s->done == s->count)
            pthread_cond_broadcast(&p->ready);
    }
    pthread_mutex_unlock(&p->lock);
    deflateEnd(&zs);
    return NULL;
}

typedef struct {
    ImgOut *out;
    uint32_t *gt;       /* current GT entries */
    uint64_t gt_index;  /* which GT they belong to */
    bool gt_used;
    uint32_t *gd;
    uint64_t gd_entries;
} StreamState;

static int marker(ImgOut *out, uint64_t sectors, uint32_t type)
{
    uint8_t m[512];
    memset(m, 0, sizeof(m));
    img_put_le64(m, sectors);
    img_put_le32(m + 12, type);
    return img_out_write(out, m, sizeof(m));
}

/* Writes the GT being filled (if it has grains) and starts GT idx. */
static int flush_gt(StreamState *st, uint64_t idx)
{
    if (idx == st->gt_index)
        return 0;
    if (st->gt_used) {
        int ret = marker(st->out, GTES * 4 / 512, VMDK_MARKER_GT);
        if (ret < 0)
            return ret;
        st->gd[st->gt_index] = (uint32_t)(st->out->pos / 512);
        uint8_t buf[GTES * 4];
        for (uint64_t i = 0; i < GTES; i++)
            img_put_le32(buf + 4 * i, st->gt[i]);
        ret = img_out_write(st->out, buf, sizeof(buf));
        if (ret < 0)
            return ret;
    }
    memset(st->gt, 0, GTES * 4);
    st->gt_used = false;
    st->gt_index = idx;
    return 0;
}

static int write_slot(StreamState *st, Slot *s, ImgError *err)
{
    static const uint8_t pad[512];
    if (s->error)
        return img_error_set(err, s->error, "compressing VMDK grains failed");
    for (unsigned i = 0; i < s->count; i++) {
        if (!s->out_len[i])
            continue;
        uint64_t voff = s->lba0 + (uint64_t)i * GRAIN;
        uint64_t g = voff / GRAIN;
        int ret = flush_gt(st, g / GTES);
        if (ret < 0)
            return ret;
        if (st->out->pos / 512 > UINT32_MAX)
            return img_error_set(err, EFBIG, "the VMDK stream is larger than its tables allow");
        st->gt[g % GTES] = (uint32_t)(st->out->pos / 512);
        st->gt_used = true;
        uint8_t *m = s->out[i];
        img_put_le64(m, voff / 512);
        img_put_le32(m + 8, (uint32_t)(s->out_len[i] - 12));
        ret = img_out_write(st->out, m, s->out_len[i]);
        if (ret < 0)
            return ret;
        size_t rem = s->out_len[i] % 512;
        if (rem && (ret = img_out_write(st->out, pad, 512 - rem)) < 0)
            return ret;
    }
    return img_out_tick(st->out, s->lba0 + (uint64_t)s->count * GRAIN);
}

static int write_stream(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out,
                        ImgError *err)
{
    const uint64_t size = src->virtual_size;
    const uint64_t sectors = (size + 511) / 512;
    StrBuf desc = STRBUF_INIT;
    make_descriptor(&desc, "streamOptimized", sectors, o->vmdk_adapter_type);
    uint64_t desc_sectors = (desc.len + 511) / 512;
    uint64_t overhead = MAX(GRAIN_SECTORS, (1 + desc_sectors + GRAIN_SECTORS - 1) /
                                               GRAIN_SECTORS * GRAIN_SECTORS);
    uint8_t hdr[512];
    make_header(hdr, 3, VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS, sectors,
                desc_sectors, 0, VMDK_GD_AT_END, overhead, true);
    int ret = img_out_write(out, hdr, sizeof(hdr));
    if (ret == 0) {
        uint8_t *d = xcalloc(1, desc_sectors * 512);
        memcpy(d, desc.buf, desc.len);
        ret = img_out_write(out, d, desc_sectors * 512);
        free(d);
    }
    strbuf_release(&desc);
    if (ret == 0)
        ret = img_out_zeros(out, (overhead - 1 - desc_sectors) * 512);
    if (ret < 0)
        return ret;

    ImgPump *pump = NULL;
    StreamState st = {.out = out, .gt_index = 0};
    st.gd_entries = (sectors * 512 + GT_COVER - 1) / GT_COVER;
    st.gd = xnew0(uint32_t, st.gd_entries ? st.gd_entries : 1);
    st.gt = xnew0(uint32_t, GTES);

    Pool *p = xnew0(Pool, 1);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->ready, NULL);
    p->level = o->compression_level >= 0 && o->compression_level <= 9 ? o->compression_level
                                                                       : VMDK_DEFAULT_LEVEL;
    p->out_cap = 12 + compressBound(GRAIN) + 512;
    for (int i = 0; i < SLOTS; i++) {
        p->slots[i].in = xmalloc(BATCH_GRAINS * GRAIN);
        for (int j = 0; j < BATCH_GRAINS; j++)
            p->slots[i].out[j] = xmalloc(p->out_cap);
    }
    unsigned nthreads = o->threads ? MIN(o->threads, 16u) : 2;
    pthread_t tids[16];
    unsigned started = 0;
    for (; started < nthreads; started++)
        if (pthread_create(&tids[started], NULL, worker, p) != 0)
            break;
    if (started == 0) {
        ret = img_error_set(err, EAGAIN, "cannot start compression threads");
        goto out;
    }

    /* A reader thread reads ahead; this thread hands grains to the
     * compressors and writes their results in order. */
    pump = img_pump_start(src, GRAIN, false, BATCH_GRAINS * GRAIN, err);
    if (!pump) {
        ret = -EAGAIN;
        goto out;
    }
    ImgPumpItem it;
    while ((ret = img_pump_next(pump, &it, err)) > 0) {
        if (it.kind != IMG_UNIT_DATA)
            continue;
        /* Wait for a free slot, writing out the oldest batch. */
        pthread_mutex_lock(&p->lock);
        if (p->nbusy == SLOTS) {
            Slot *old = &p->slots[p->head];
            while (old->done < old->count)
                pthread_cond_wait(&p->ready, &p->lock);
            pthread_mutex_unlock(&p->lock);
            ret = write_slot(&st, old, err);
            pthread_mutex_lock(&p->lock);
            old->busy = false;
            p->head = (p->head + 1) % SLOTS;
            p->nbusy--;
            if (ret < 0) {
                pthread_mutex_unlock(&p->lock);
                goto out;
            }
        }
        Slot *s = &p->slots[(p->head + p->nbusy) % SLOTS];
        pthread_mutex_unlock(&p->lock);
        memcpy(s->in, it.buf, it.span);
        pthread_mutex_lock(&p->lock);
        s->lba0 = it.start;
        s->count = (unsigned)(it.span / GRAIN);
        s->next = 0;
        s->done = 0;
        s->error = 0;
        s->busy = true;
        p->nbusy++;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
    }
    if (ret < 0)
        goto out;
    /* Drain. */
    while (p->nbusy) {
        pthread_mutex_lock(&p->lock);
        Slot *old = &p->slots[p->head];
        while (old->done < old->count)
            pthread_cond_wait(&p->ready, &p->lock);
        pthread_mutex_unlock(&p->lock);
        ret = write_slot(&st, old, err);
        pthread_mutex_lock(&p->lock);
        p->head = (p->head + 1) % SLOTS;
        p->nbusy--;
        pthread_mutex_unlock(&p->lock);
        if (ret < 0)
            goto out;
    }
    ret = flush_gt(&st, UINT64_MAX);
    if (ret < 0)
        goto out;
    /* Grain directory, footer, end of stream. */
    uint64_t gd_bytes = (st.gd_entries * 4 + 511) / 512 * 512;
    if (gd_bytes == 0)
        gd_bytes = 512;
    ret = marker(out, gd_bytes / 512, VMDK_MARKER_GD);
    if (ret < 0)
        goto out;
    uint64_t gd_sector = out->pos / 512;
    uint8_t *gd = xcalloc(1, gd_bytes);
    for (uint64_t i = 0; i < st.gd_entries; i++)
        img_put_le32(gd + 4 * i, st.gd[i]);
    ret = img_out_write(out, gd, gd_bytes);
    free(gd);
    if (ret < 0)
        goto out;
    ret = marker(out, 1, VMDK_MARKER_FOOTER);
    if (ret < 0)
        goto out;
    make_header(hdr, 3, VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS, sectors,
                desc_sectors, 0, gd_sector, overhead, true);
    ret = img_out_write(out, hdr, sizeof(hdr));
    if (ret < 0)
        goto out;
    ret = marker(out, 0, VMDK_MARKER_EOS);

out:
    img_pump_free(pump);
    /* Let workers finish what they hold, then stop them. */
    pthread_mutex_lock(&p->lock);
    for (unsigned k = 0; k < p->nbusy; k++) {
        Slot *s = &p->slots[(p->head + k) % SLOTS];
        s->next = s->count; /* nothing new to take */
    }
    p->quit = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    for (int i = 0; i < SLOTS; i++) {
        free(p->slots[i].in);
        for (int j = 0; j < BATCH_GRAINS; j++)
            free(p->slots[i].out[j]);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->ready);
    free(p);
    free(st.gd);
    free(st.gt);
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------------ */
/* monolithicSparse                                                           */

static int write_sparse(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out,
                        ImgError *err)
{
    const uint64_t size = src->virtual_size;
    const uint64_t sectors = (size + 511) / 512;
    const uint64_t gd_entries = (sectors * 512 + GT_COVER - 1) / GT_COVER;
    const uint64_t gd_sectors = (gd_entries * 4 + 511) / 512;
    const uint64_t gt_sectors = gd_entries * GTES * 4 / 512;
    if (gt_sectors * 512 * 2 > 512ULL * 1024 * 1024)
        return img_error_set(err, EFBIG, "the disk is too large for a monolithicSparse VMDK");
    const uint64_t desc_sectors = 20;
    const uint64_t rgd = 1 + desc_sectors;
    const uint64_t rgt = rgd + gd_sectors;
    const uint64_t gd = rgt + gt_sectors;
    const uint64_t gt = gd + gd_sectors;
    const uint64_t overhead = (gt + gt_sectors + GRAIN_SECTORS - 1) / GRAIN_SECTORS *
                              GRAIN_SECTORS;
    uint32_t *gte = xnew0(uint32_t, gd_entries * GTES + 1);
    int ret = img_out_zeros(out, overhead * 512);
    if (ret < 0)
        goto out;
    ImgPump *pump = img_pump_start(src, GRAIN, false, IMG_IO_CHUNK, err);
    if (!pump) {
        ret = -EAGAIN;
        goto out;
    }
    ImgPumpItem it;
    while ((ret = img_pump_next(pump, &it, err)) > 0) {
        if (it.kind == IMG_UNIT_DATA) {
            for (uint64_t i = 0; i < it.span; i += GRAIN) {
                if (img_is_zero(it.buf + i, GRAIN))
                    continue;
                if (out->pos / 512 > UINT32_MAX) {
                    ret = img_error_set(err, EFBIG, "the VMDK is larger than its tables allow");
                    break;
                }
                gte[(it.start + i) / GRAIN] = (uint32_t)(out->pos / 512);
                ret = img_out_write(out, it.buf + i, GRAIN);
                if (ret < 0)
                    break;
            }
            if (ret < 0)
                break;
        }
        ret = img_out_tick(out, it.start + it.len);
        if (ret < 0)
            break;
    }
    img_pump_free(pump);
    if (ret < 0)
        goto out;
    /* Metadata. */
    uint8_t hdr[512];
    make_header(hdr, 1, VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD, sectors, desc_sectors, rgd, gd,
                overhead, false);
    StrBuf desc = STRBUF_INIT;
    make_descriptor(&desc, "monolithicSparse", sectors, o->vmdk_adapter_type);
    size_t meta_len = (size_t)(overhead * 512);
    uint8_t *meta = xcalloc(1, meta_len);
    memcpy(meta, hdr, 512);
    memcpy(meta + 512, desc.buf, MIN(desc.len, desc_sectors * 512));
    strbuf_release(&desc);
    for (uint64_t i = 0; i < gd_entries; i++) {
        img_put_le32(meta + rgd * 512 + 4 * i, (uint32_t)(rgt + i * GTES * 4 / 512));
        img_put_le32(meta + gd * 512 + 4 * i, (uint32_t)(gt + i * GTES * 4 / 512));
    }
    for (uint64_t i = 0; i < gd_entries * GTES; i++) {
        img_put_le32(meta + rgt * 512 + 4 * i, gte[i]);
        img_put_le32(meta + gt * 512 + 4 * i, gte[i]);
    }
    ret = img_out_pwrite(out, meta, meta_len, 0);
    free(meta);
out:
    free(gte);
    return ret < 0 ? ret : 0;
}

int vmdk_write(const ImgSource *src, const ImgWriteOptions *o, ImgOut *out, ImgError *err)
{
    int ret = check_size(src->virtual_size, err);
    if (ret < 0)
        return ret;
    switch (o->subformat) {
    case IMG_SUBFORMAT_DEFAULT:
    case IMG_SUBFORMAT_VMDK_STREAM_OPTIMIZED:
        return write_stream(src, o, out, err);
    case IMG_SUBFORMAT_VMDK_MONOLITHIC_SPARSE:
        return write_sparse(src, o, out, err);
    default:
        return img_error_set(err, EINVAL, "VMDK subformat %s is not supported",
                             img_subformat_name(o->subformat));
    }
}
