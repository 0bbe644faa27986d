/* Statistics, and every message HAKMEM writes.  Messages are formatted into a
 * stack buffer and written with write(2) (hak_os_write): stdio may allocate
 * or lock, which an allocator reporting an error must not do. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hakmem.h"
#include "types.h"

_Atomic size_t hak_stat[HAK_STAT_COUNT];
__thread uint8_t hak_stat_local[HAK_STAT_COUNT];

size_t hak_stat_read(int which)
{
    return atomic_load_explicit(&hak_stat[which], memory_order_relaxed) + hak_stat_local[which];
}

void hak_stat_flush_thread(void)
{
    for (int i = 0; i < HAK_STAT_COUNT; i++) {
        if (hak_stat_local[i])
            hak_stat_add(i, hak_stat_local[i]);
        hak_stat_local[i] = 0;
    }
}

void hak_msg_ch(hak_msg_t *m, char c)
{
    if (m->len == sizeof m->buf - 1) {
        if (m->fd < 0)
            return;
        hak_os_write(m->fd, m->buf, m->len);
        m->len = 0;
    }
    m->buf[m->len++] = c;
}

void hak_msg_str(hak_msg_t *m, const char *s)
{
    while (*s)
        hak_msg_ch(m, *s++);
}

void hak_msg_dec(hak_msg_t *m, unsigned long v)
{
    char tmp[24];
    int i = 0;
    do tmp[i++] = (char)('0' + v % 10); while ((v /= 10) && i < 24);
    while (i > 0)
        hak_msg_ch(m, tmp[--i]);
}

static void put_signed(hak_msg_t *m, long v)
{
    if (v < 0) {
        hak_msg_str(m, "-");
        v = -v;
    }
    hak_msg_dec(m, (unsigned long)v);
}

/* As printf's %p: 0x and lowercase hex, or (nil). */
void hak_msg_ptr(hak_msg_t *m, const void *p)
{
    uintptr_t v = (uintptr_t)p;
    char tmp[20];
    int i = 0;
    if (v == 0) {
        hak_msg_str(m, "(nil)");
        return;
    }
    while (v) {
        tmp[i++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
    hak_msg_str(m, "0x");
    while (i > 0)
        hak_msg_ch(m, tmp[--i]);
}

/* What is left to m's fd, or to stderr for a message (fd < 0). */
void hak_msg_flush(hak_msg_t *m)
{
    hak_os_write(m->fd >= 0 ? m->fd : 2, m->buf, m->len);
    m->len = 0;
}

void hak_fatal(const char *call, const char *what, const void *p)
{
    hak_msg_t m = { .len = 0, .fd = -1 };
    hak_msg_str(&m, "HAKMEM: ");
    hak_msg_str(&m, call);
    hak_msg_str(&m, "(): ");
    hak_msg_str(&m, what);
    hak_msg_str(&m, " ");
    hak_msg_ptr(&m, p);
    hak_msg_str(&m, "\n");
    hak_msg_flush(&m);
    abort();
}

void hak_assert_fail(const char *file, int line, const char *expr)
{
    hak_msg_t m = { .len = 0, .fd = -1 };
    hak_msg_str(&m, "HAKMEM: assertion failed: ");
    hak_msg_str(&m, expr);
    hak_msg_str(&m, " (");
    hak_msg_str(&m, file);
    hak_msg_str(&m, ":");
    hak_msg_dec(&m, (unsigned long)line);
    hak_msg_str(&m, ")\n");
    hak_msg_flush(&m);
    abort();
}

void hak_warn_option(const char *env, const char *value, long min, long max, long dflt)
{
    hak_msg_t m = { .len = 0, .fd = -1 };
    hak_msg_str(&m, "HAKMEM: bad value ");
    hak_msg_str(&m, env);
    hak_msg_str(&m, "=");
    hak_msg_str(&m, value);
    hak_msg_str(&m, " (expected ");
    put_signed(&m, min);
    hak_msg_str(&m, "..");
    put_signed(&m, max);
    hak_msg_str(&m, "); using ");
    put_signed(&m, dflt);
    hak_msg_str(&m, "\n");
    hak_msg_flush(&m);
}

/* A TEXT setting's value longer than the room for it. */
void hak_warn_text_option(const char *env, size_t max)
{
    hak_msg_t m = { .len = 0, .fd = -1 };
    hak_msg_str(&m, "HAKMEM: bad value for ");
    hak_msg_str(&m, env);
    hak_msg_str(&m, " (expected at most ");
    hak_msg_dec(&m, max);
    hak_msg_str(&m, " bytes); ignored\n");
    hak_msg_flush(&m);
}

/* entry is NAME=value from the environment; closest may be NULL. */
void hak_warn_unknown_option(const char *entry, const char *closest)
{
    hak_msg_t m = { .len = 0, .fd = -1 };
    hak_msg_str(&m, "HAKMEM: unknown setting ");
    hak_msg_str(&m, entry);
    if (closest) {
        hak_msg_str(&m, " (did you mean ");
        hak_msg_str(&m, closest);
        hak_msg_str(&m, "?)");
    }
    hak_msg_str(&m, "; ignored\n");
    hak_msg_flush(&m);
}

void hak_stats_get(struct hak_stats *out)
{
    hak_init();
    /* The calling thread's cached free blocks back on their slabs first, so
     * that a thread sees its own frees counted (other threads' caches, a
     * few hundred KiB each at most, count as in use). */
    if (hak_tls.rec != NULL)
        hak_tc_flush(&hak_tls);
    hak_pool_figures(&out->mapped, &out->committed, &out->superslabs, &out->slabs, &out->in_use);
    out->huge_in_use = atomic_load(&hak_stat[HAK_STAT_HUGE_BYTES]);
    out->huge_blocks = atomic_load(&hak_stat[HAK_STAT_HUGE_BLOCKS]);
    out->in_use += out->huge_in_use;
    out->mapped = hak_os_mapped();  /* all of it: arenas, Huge blocks and their cache, records */
    out->committed += out->huge_in_use;
    out->os_maps = atomic_load(&hak_stat[HAK_STAT_OS_MAPS]);
    out->os_unmaps = atomic_load(&hak_stat[HAK_STAT_OS_UNMAPS]);
    out->os_purges = atomic_load(&hak_stat[HAK_STAT_OS_PURGES]);
    out->remote_frees = hak_stat_read(HAK_STAT_REMOTE_FREES);
    out->threads_started = atomic_load(&hak_stat[HAK_STAT_THREADS_STARTED]);
    out->threads_exited = atomic_load(&hak_stat[HAK_STAT_THREADS_EXITED]);
    out->idle_slabs_released = atomic_load(&hak_stat[HAK_STAT_IDLE_SLABS_RELEASED]);
}

void hak_stat_note_committed(void)
{
    hak_stat_raise(HAK_STAT_PEAK_COMMITTED, hak_committed_now());
}

void hak_stats_adaptive(struct hak_adaptive_stats *out)
{
    hak_init();
    out->background = atomic_load(&hak_bg_state) == HAK_BG_RUNNING;
    out->released_bytes = atomic_load(&hak_stat[HAK_STAT_BG_RELEASED]);
    out->retain_ms = (size_t)hak_retain_ms();
    out->retain_changes = atomic_load(&hak_stat[HAK_STAT_RETAIN_CHANGES]);
    out->huge_cache_cap = hak_huge_cache_cap();
    out->huge_cache_changes = atomic_load(&hak_stat[HAK_STAT_HUGE_CAP_CHANGES]);
    out->huge_reused = atomic_load(&hak_stat[HAK_STAT_HUGE_REUSED]);
    out->huge_reused_bytes = atomic_load(&hak_stat[HAK_STAT_HUGE_REUSED_BYTES]);
    out->block_pages_released = atomic_load(&hak_stat[HAK_STAT_BLOCK_PAGES_RELEASED]);
}

void hak_stats_peaks(struct hak_peaks *out)
{
    hak_init();
    out->mapped = atomic_load(&hak_stat[HAK_STAT_PEAK_MAPPED]);
    out->committed = atomic_load(&hak_stat[HAK_STAT_PEAK_COMMITTED]);
    out->in_slabs = atomic_load(&hak_stat[HAK_STAT_PEAK_IN_SLABS]);
    out->huge_in_use = atomic_load(&hak_stat[HAK_STAT_PEAK_HUGE]);
}

/* ---- the slab walk: per class and per heap ----------------------------------- */
#define HEAPS_MAX 64                /* heaps told apart in one walk; the rest summed */
typedef struct { uintptr_t owner; size_t slabs, slab_bytes, in_use; } heap_fig_t;
typedef struct {
    struct hak_class_stats cls[HAK_NCLASS];
    heap_fig_t heap[HEAPS_MAX + 1]; /* the last: every heap beyond HEAPS_MAX      */
    size_t nheap, heaps_beyond;
    size_t large_kept;              /* bytes of Large slabs kept in heaps' caches */
} walk_t;

static void walk_slab(hak_slab_t *s, void *arg)
{
    walk_t *w = arg;
    struct hak_class_stats *c = &w->cls[s->cls];
    size_t out = hak_slab_out_snapshot(s), bytes = (size_t)s->npages * HAK_PAGE_SIZE;
    c->blocks_in_use += out;
    c->blocks_total += (size_t)(s->end - s->start) / s->bsize;
    c->slabs++;
    c->slab_bytes += bytes;
    uintptr_t o = atomic_load_explicit(&s->owner, memory_order_relaxed);
    size_t h = 0;
    while (h < w->nheap && w->heap[h].owner != o)
        h++;
    if (h == w->nheap) {
        if (w->nheap < HEAPS_MAX) {
            w->heap[w->nheap++].owner = o;
        } else {
            h = HEAPS_MAX;
            w->heaps_beyond++;      /* counts slabs, not heaps: an upper bound */
        }
    }
    w->heap[h].slabs++;
    w->heap[h].slab_bytes += bytes;
    w->heap[h].in_use += out * s->bsize;
    /* A Large slab is on a partial list only while kept (heap.c): counted
     * here, not where slabs are kept, where a shared counter would be the
     * very cache line the cache keeps threads from contending for. */
    if (s->bsize > HAK_MID_MAX && __atomic_load_n(&s->list, __ATOMIC_RELAXED) == HAK_LIST_PARTIAL)
        w->large_kept += s->bsize;
}

static void walk(walk_t *w)
{
    memset(w, 0, sizeof *w);
    for (unsigned c = 0; c < HAK_NCLASS; c++)
        w->cls[c].block_size = hak_classes[c].size;
    hak_pool_walk(walk_slab, w);
}

int hak_stats_class(int cls, struct hak_class_stats *out)
{
    hak_init();
    if (cls < 0 || cls >= HAK_NCLASS) {
        errno = EINVAL;
        return -1;
    }
    walk_t w;
    walk(&w);
    *out = w.cls[cls];
    return 0;
}

/* Tiers by class number: Tiny, Mid, Large. */
static const struct { const char *name; unsigned first, end; } tiers[] = {
    { "tiny", 0, HAK_NCLASS_TINY },
    { "mid", HAK_NCLASS_TINY, HAK_NCLASS_TINY + HAK_NCLASS_MID },
    { "large", HAK_NCLASS_TINY + HAK_NCLASS_MID, HAK_NCLASS },
};

static struct hak_class_stats tier_sum(const walk_t *w, unsigned t, size_t *in_use)
{
    struct hak_class_stats sum = { 0 };
    *in_use = 0;
    for (unsigned c = tiers[t].first; c < tiers[t].end; c++) {
        sum.blocks_in_use += w->cls[c].blocks_in_use;
        sum.blocks_total += w->cls[c].blocks_total;
        sum.slabs += w->cls[c].slabs;
        sum.slab_bytes += w->cls[c].slab_bytes;
        *in_use += w->cls[c].blocks_in_use * w->cls[c].block_size;
    }
    return sum;
}

/* The heaps with the most slab bytes first (a few dozen: insertion sort). */
static void sort_heaps(walk_t *w)
{
    for (size_t i = 1; i < w->nheap; i++)
        for (size_t j = i; j > 0 && w->heap[j - 1].slab_bytes < w->heap[j].slab_bytes; j--) {
            heap_fig_t t = w->heap[j];
            w->heap[j] = w->heap[j - 1];
            w->heap[j - 1] = t;
        }
}

/* Fragmentation in per mille: slab bytes not in blocks handed out. */
static unsigned long frag_permille(size_t in_use, size_t slab_bytes)
{
    return slab_bytes ? (unsigned long)((slab_bytes - in_use) * 1000 / slab_bytes) : 0;
}

static void put_permille(hak_msg_t *m, unsigned long v)
{
    hak_msg_dec(m, v / 10);
    hak_msg_str(m, ".");
    hak_msg_dec(m, v % 10);
    hak_msg_str(m, "%");
}

#define HEAPS_SHOWN 8

/* Everything both reports say, gathered once: the figures in one table
 * (the text's label, the JSON key, whether it is a peak), after the walk. */
#define REPORT_ROWS 35
typedef struct {
    struct { const char *label, *key; size_t v; bool peak; } row[REPORT_ROWS];
    struct hak_stats st;
    walk_t w;
} report_t;

static void gather(report_t *r)
{
    struct hak_peaks pk;
    struct hak_adaptive_stats ad;
    hak_stats_get(&r->st);
    hak_stats_peaks(&pk);
    hak_stats_adaptive(&ad);
    const struct hak_stats *st = &r->st;
    walk(&r->w);
    sort_heaps(&r->w);
    size_t i = 0;
#define ROW(label_, key_, v_, peak_) \
    r->row[i].label = label_, r->row[i].key = key_, r->row[i].v = v_, r->row[i++].peak = peak_
    ROW("mapped bytes", "mapped", st->mapped, false);
    ROW("committed bytes", "committed", st->committed, false);
    ROW("in-use bytes", "in_use", st->in_use, false);
    ROW("huge in-use bytes", "huge_in_use", st->huge_in_use, false);
    ROW("huge blocks", "huge_blocks", st->huge_blocks, false);
    ROW("superslabs", "superslabs", st->superslabs, false);
    ROW("slabs", "slabs", st->slabs, false);
    ROW("os maps", "os_maps", st->os_maps, false);
    ROW("os unmaps", "os_unmaps", st->os_unmaps, false);
    ROW("os purges", "os_purges", st->os_purges, false);
    ROW("os remaps", "os_remaps", atomic_load(&hak_stat[HAK_STAT_OS_REMAPS]), false);
    ROW("remote frees", "remote_frees", st->remote_frees, false);
    ROW("remote batches", "remote_batches", hak_stat_read(HAK_STAT_REMOTE_BATCHES), false);
    ROW("remote drains", "remote_drains", hak_stat_read(HAK_STAT_REMOTE_DRAINS), false);
    ROW("large cache reuses", "large_reused", hak_stat_read(HAK_STAT_LARGE_REUSED), false);
    ROW("large cache kept bytes", "large_kept_bytes", r->w.large_kept, false);
    ROW("large cache budget changes", "large_budget_changes",
        atomic_load(&hak_stat[HAK_STAT_LARGE_BUDGET_CHANGES]), false);
    ROW("threads started", "threads_started", st->threads_started, false);
    ROW("threads exited", "threads_exited", st->threads_exited, false);
    ROW("idle slabs released", "idle_slabs_released", st->idle_slabs_released, false);
    ROW("background thread running", "background", (size_t)ad.background, false);
    ROW("background released bytes", "background_released", ad.released_bytes, false);
    ROW("free block pages released bytes", "block_pages_released", ad.block_pages_released, false);
    ROW("free page retention ms", "retain_ms", ad.retain_ms, false);
    ROW("retention changes", "retain_changes", ad.retain_changes, false);
    ROW("free page cap bytes", "dirty_cap", hak_pool_dirty_cap(), false);
    ROW("free page cap changes", "dirty_cap_changes",
        atomic_load(&hak_stat[HAK_STAT_DIRTY_CAP_CHANGES]), false);
    ROW("huge cache capacity bytes", "huge_cache_cap", ad.huge_cache_cap, false);
    ROW("huge cache capacity changes", "huge_cache_changes", ad.huge_cache_changes, false);
    ROW("huge cache reuses", "huge_reused", ad.huge_reused, false);
    ROW("huge cache reused bytes", "huge_reused_bytes", ad.huge_reused_bytes, false);
    ROW("peak mapped bytes", "mapped", pk.mapped, true);
    ROW("peak committed bytes", "committed", pk.committed, true);
    ROW("peak slab bytes", "slab_bytes", pk.in_slabs, true);
    ROW("peak huge in-use bytes", "huge_in_use", pk.huge_in_use, true);
#undef ROW
    hak_assert(i == REPORT_ROWS);
}

void hak_stats_print(int fd)
{
    report_t r;
    gather(&r);
    const walk_t *w = &r.w;
    hak_msg_t m = { .len = 0, .fd = fd };
    /* The pid tells apart the blocks of a program and its forked children. */
    hak_msg_str(&m, "HAKMEM statistics (pid ");
    hak_msg_dec(&m, (unsigned long)hak_os_pid());
    hak_msg_str(&m, ")\n");
    for (size_t i = 0; i < REPORT_ROWS; i++) {
        hak_msg_str(&m, "  ");
        hak_msg_str(&m, r.row[i].label);
        hak_msg_str(&m, ": ");
        hak_msg_dec(&m, r.row[i].v);
        hak_msg_str(&m, "\n");
    }
    hak_msg_str(&m, "  tier: blocks in use / blocks in slabs, slabs, slab bytes, in-use bytes, fragmentation\n");
    for (unsigned t = 0; t < 3; t++) {
        size_t in_use;
        struct hak_class_stats c = tier_sum(w, t, &in_use);
        hak_msg_str(&m, "    ");
        hak_msg_str(&m, tiers[t].name);
        hak_msg_str(&m, ": ");
        hak_msg_dec(&m, c.blocks_in_use);
        hak_msg_str(&m, " / ");
        hak_msg_dec(&m, c.blocks_total);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, c.slabs);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, c.slab_bytes);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, in_use);
        hak_msg_str(&m, ", ");
        put_permille(&m, frag_permille(in_use, c.slab_bytes));
        hak_msg_str(&m, "\n");
    }
    hak_msg_str(&m, "    huge: ");
    hak_msg_dec(&m, r.st.huge_blocks);
    hak_msg_str(&m, " blocks, ");
    hak_msg_dec(&m, r.st.huge_in_use);
    hak_msg_str(&m, " bytes\n");
    hak_msg_str(&m, "  class (block size): blocks in use / blocks in slabs, slabs, fragmentation\n");
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        const struct hak_class_stats *k = &w->cls[c];
        if (k->slabs == 0)
            continue;
        hak_msg_str(&m, "    ");
        hak_msg_dec(&m, c);
        hak_msg_str(&m, " (");
        hak_msg_dec(&m, k->block_size);
        hak_msg_str(&m, "): ");
        hak_msg_dec(&m, k->blocks_in_use);
        hak_msg_str(&m, " / ");
        hak_msg_dec(&m, k->blocks_total);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, k->slabs);
        hak_msg_str(&m, ", ");
        put_permille(&m, frag_permille(k->blocks_in_use * k->block_size, k->slab_bytes));
        hak_msg_str(&m, "\n");
    }
    hak_msg_str(&m, "  band (bytes): allocs, bytes, reused, fresh bytes, os calls, released bytes; place "
                    "(learned: ELO ratings large/map, matches, switches)\n");
    for (int b = 0; b < HAK_NBANDS; b++) {
        struct hak_band_stats k;
        hak_stats_band(b, &k);
        if (k.allocs == 0 && k.released_bytes == 0)
            continue;
        hak_msg_str(&m, "    ");
        hak_msg_dec(&m, k.size_min);
        hak_msg_str(&m, k.size_max ? "-" : "+");
        if (k.size_max)
            hak_msg_dec(&m, k.size_max);
        hak_msg_str(&m, ": ");
        hak_msg_dec(&m, k.allocs);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, k.bytes);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, k.reused);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, k.fresh_bytes);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, k.os_calls);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, k.released_bytes);
        hak_msg_str(&m, k.maps ? "; map" : "; large");
        if (k.learned) {
            hak_msg_str(&m, " (learned: ");
            hak_msg_dec(&m, (unsigned long)k.rating_large);
            hak_msg_str(&m, "/");
            hak_msg_dec(&m, (unsigned long)k.rating_map);
            hak_msg_str(&m, ", ");
            hak_msg_dec(&m, k.matches);
            hak_msg_str(&m, ", ");
            hak_msg_dec(&m, k.switches);
            hak_msg_str(&m, ")");
        }
        hak_msg_str(&m, "\n");
    }
    hak_msg_str(&m, "  heaps: ");
    hak_msg_dec(&m, w->nheap);
    hak_msg_str(&m, w->heaps_beyond ? " and more" : "");
    hak_msg_str(&m, " (owner: slabs, slab bytes, in-use bytes; most slab bytes first; (nil): no owner)\n");
    for (size_t h = 0; h < w->nheap && h < HEAPS_SHOWN; h++) {
        hak_msg_str(&m, "    ");
        hak_msg_ptr(&m, (const void *)w->heap[h].owner);
        hak_msg_str(&m, ": ");
        hak_msg_dec(&m, w->heap[h].slabs);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, w->heap[h].slab_bytes);
        hak_msg_str(&m, ", ");
        hak_msg_dec(&m, w->heap[h].in_use);
        hak_msg_str(&m, "\n");
    }
    hak_msg_flush(&m);
}

static void json_num(hak_msg_t *m, const char *key, size_t v, bool last)
{
    hak_msg_str(m, "\"");
    hak_msg_str(m, key);
    hak_msg_str(m, "\": ");
    hak_msg_dec(m, v);
    if (!last)
        hak_msg_str(m, ", ");
}

static void json_class(hak_msg_t *m, const struct hak_class_stats *c, size_t in_use)
{
    json_num(m, "blocks_in_use", c->blocks_in_use, false);
    json_num(m, "blocks_total", c->blocks_total, false);
    json_num(m, "slabs", c->slabs, false);
    json_num(m, "slab_bytes", c->slab_bytes, false);
    json_num(m, "in_use_bytes", in_use, true);
}

void hak_stats_print_json(int fd)
{
    report_t r;
    gather(&r);
    const walk_t *w = &r.w;
    hak_msg_t m = { .len = 0, .fd = fd };
    hak_msg_str(&m, "{");
    json_num(&m, "pid", (size_t)hak_os_pid(), false);
    for (size_t i = 0; i < REPORT_ROWS; i++)
        if (!r.row[i].peak)
            json_num(&m, r.row[i].key, r.row[i].v, false);
    hak_msg_str(&m, "\"peaks\": {");
    for (size_t i = 0, first = 1; i < REPORT_ROWS; i++)
        if (r.row[i].peak) {
            hak_msg_str(&m, first ? "" : ", ");
            json_num(&m, r.row[i].key, r.row[i].v, true);
            first = 0;
        }
    hak_msg_str(&m, "}, \"tiers\": {");
    for (unsigned t = 0; t < 3; t++) {
        size_t in_use;
        struct hak_class_stats c = tier_sum(w, t, &in_use);
        hak_msg_str(&m, "\"");
        hak_msg_str(&m, tiers[t].name);
        hak_msg_str(&m, "\": {");
        json_class(&m, &c, in_use);
        hak_msg_str(&m, "}, ");
    }
    hak_msg_str(&m, "\"huge\": {");
    json_num(&m, "blocks", r.st.huge_blocks, false);
    json_num(&m, "in_use_bytes", r.st.huge_in_use, true);
    hak_msg_str(&m, "}}, \"classes\": [");
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        hak_msg_str(&m, c ? ", {" : "{");
        json_num(&m, "class", c, false);
        json_num(&m, "block_size", w->cls[c].block_size, false);
        json_class(&m, &w->cls[c], w->cls[c].blocks_in_use * w->cls[c].block_size);
        hak_msg_str(&m, "}");
    }
    hak_msg_str(&m, "], \"bands\": [");
    for (int b = 0; b < HAK_NBANDS; b++) {
        struct hak_band_stats k;
        hak_stats_band(b, &k);
        hak_msg_str(&m, b ? ", {" : "{");
        json_num(&m, "size_min", k.size_min, false);
        json_num(&m, "size_max", k.size_max, false);
        json_num(&m, "learned", (size_t)k.learned, false);
        json_num(&m, "maps", (size_t)k.maps, false);
        json_num(&m, "rating_large", (size_t)k.rating_large, false);
        json_num(&m, "rating_map", (size_t)k.rating_map, false);
        json_num(&m, "matches", k.matches, false);
        json_num(&m, "switches", k.switches, false);
        json_num(&m, "allocs", k.allocs, false);
        json_num(&m, "bytes", k.bytes, false);
        json_num(&m, "reused", k.reused, false);
        json_num(&m, "fresh_bytes", k.fresh_bytes, false);
        json_num(&m, "os_calls", k.os_calls, false);
        json_num(&m, "released_bytes", k.released_bytes, true);
        hak_msg_str(&m, "}");
    }
    hak_msg_str(&m, "], \"heaps_more\": ");
    hak_msg_str(&m, w->heaps_beyond ? "true" : "false");
    hak_msg_str(&m, ", \"heaps\": [");
    for (size_t h = 0; h < w->nheap; h++) {
        hak_msg_str(&m, h ? ", {\"owner\": \"" : "{\"owner\": \"");
        hak_msg_ptr(&m, (const void *)w->heap[h].owner);
        hak_msg_str(&m, "\", ");
        json_num(&m, "slabs", w->heap[h].slabs, false);
        json_num(&m, "slab_bytes", w->heap[h].slab_bytes, false);
        json_num(&m, "in_use_bytes", w->heap[h].in_use, true);
        hak_msg_str(&m, "}");
    }
    hak_msg_str(&m, "]}\n");
    hak_msg_flush(&m);
}

/* Where the statistics go at exit: a copy of stderr taken at start-up, so
 * that they still arrive when the program closes stderr before it exits (as
 * the coreutils do); stderr itself when they were asked for later. */
static int stats_fd = 2;

void hak_stats_init(void)
{
    if (hak_option(HAK_OPT_STATS)) {
        int fd = hak_os_dup(2);
        if (fd >= 0)
            stats_fd = fd;
    }
}

__attribute__((destructor)) static void stats_at_exit(void)
{
    long how = hak_option(HAK_OPT_STATS);
    if (how == 1)
        hak_stats_print(stats_fd);
    else if (how == 2)
        hak_stats_print_json(stats_fd);
}
