/* SuperSlabs: the region map, arenas of SuperSlabs, and the page pool that
 * hands slabs to heaps and takes them back.
 *
 * Address space is reserved in arenas of SuperSlabs, each twice the one
 * before up to ARENA_MAX (64 MiB), so that a big heap needs few mappings
 * (the seeds' Larson runs died at the kernel's limit on mappings) and a
 * small program's address space stays small (VmSize, ulimit -v).  Arenas are never unmapped: a SuperSlab whose pages are
 * free is purged with madvise and stays HAKMEM's, so the region map never
 * has to forget it and a racing reader of a slab descriptor never faults.
 *
 * Free pages stay resident ("dirty") while their SuperSlab is busy, so that
 * a slab freed and needed again soon costs no page faults; a SuperSlab whose
 * slabs have not been freed for HAKMEM_RETAIN_MS has its free pages purged,
 * and beyond a cap (DIRTY_MAX to start with) everything free is purged at
 * once.
 * Purges happen when slabs are freed and in the background thread, never
 * when one is taken: a program taking slabs after a pause is about to reuse
 * those very pages (resident pages are handed out first), and purging them
 * then had it fault them all back in (rptest at 1 thread: 2560 -> 1990
 * faults, its timed loops 40 -> 30 ms).  For the same reason a slab free
 * counts their age from the end of the last pause (pool_called).
 * Empty SuperSlabs stay dirty up to RETAIN_EMPTY of them, or up to half the
 * bytes in slabs if that is more; one more is purged at once, so a program
 * that frees everything returns near its starting RSS.
 *
 * While the background thread runs (background.c), which releases free
 * pages when their time is up even if the program makes no call, the
 * retention adapts.  Purges by retention are watched: if the program then
 * takes back clean pages, without growing past where it was, worth half of
 * what was purged, the purge was regretted (a heap that swings more slowly
 * than the retention faults those pages back in), and the retention grows
 * (doublings of HAKMEM_RETAIN_MS, up to RETAIN_SHIFT_MAX) to twice the age
 * the pages would have had at their reuse; and the empty-SuperSlab allowance
 * stops purging at once.  A watch as long as the longest retention with
 * little regret halves it again.  Purges by the cap are watched the same way:
 * the cap counts whole free pages, of which a program that writes a little
 * of each big block (a buffer sized for the worst case) has few resident,
 * so where the program takes back what the cap purged, the cap grows to
 * twice the free pages those purges found (up to CAP_SHIFT_MAX doublings);
 * a watch as long as the longest retention with little regret halves it.
 * (Asking the kernel what is resident, mincore, costs 1.7 us a slab here,
 * more than the purges it would spare.)
 * An empty SuperSlab's purge takes its descriptor pages too.
 */
#include <errno.h>
#include "types.h"
#ifdef HAK_ASAN
#include <sanitizer/asan_interface.h>   /* make asan: see api.c */
#endif

uint64_t hak_region_map[HAK_MAP_ENTRIES];

#define CLAIM_TRIES 8      /* mappings kept aside while looking for free indexes */

bool hak_region_claim(const char *p, size_t size, unsigned kind)
{
    for (const char *q = p; q < p + size; q += HAK_SS_SIZE) {
        uintptr_t c = (uintptr_t)q >> HAK_SS_SHIFT;
        uint64_t none = 0;
        if (!__atomic_compare_exchange_n(hak_region_slot(c), &none, hak_region_entry(c, kind),
                                         false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            hak_region_release(p, q);
            return false;
        }
    }
    return true;
}

void hak_region_set(const char *p, unsigned kind)
{
    uintptr_t c = (uintptr_t)p >> HAK_SS_SHIFT;
    __atomic_store_n(hak_region_slot(c), hak_region_entry(c, kind), __ATOMIC_RELAXED);
}

void hak_region_release(const char *from, const char *to)
{
    for (const char *q = from; q < to; q += HAK_SS_SIZE)
        __atomic_store_n(hak_region_slot((uintptr_t)q >> HAK_SS_SHIFT), 0, __ATOMIC_RELAXED);
}

/* Mappings whose indexes are taken are held while the next is made, so that
 * the OS hands out another address, and given back at the end. */
char *hak_region_map_new(size_t size, size_t align, size_t offset, bool reserve_only, unsigned kind)
{
    char *held[CLAIM_TRIES];
    unsigned n = 0;
    char *p;
    for (;;) {
        p = hak_os_map_aligned(size, align, offset, reserve_only);
        if (p == NULL || hak_region_claim(p, size, kind))
            break;
        if (n == CLAIM_TRIES) {
            hak_os_unmap(p, size);
            p = NULL;
            break;
        }
        held[n++] = p;
    }
    while (n > 0)
        hak_os_unmap(held[--n], size);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

#define ARENA_MAX    (16 * HAK_SS_SIZE)
#define DIRTY_MAX    ((size_t)64 << 20)   /* purge at once beyond this much: the cap's start */
#define RETAIN_EMPTY 4                    /* empty SuperSlabs kept resident  */
#define FULL_PAGES   (~(uint64_t)0)

static hak_lock_t pool_lock;
uint64_t hak_pool_waits(void) { return atomic_load_explicit(&pool_lock.waits, memory_order_relaxed); }
/* The pool's record of a SuperSlab, apart from it: the pool walks the
 * records of the SuperSlabs with free pages for every slab it hands out, and
 * fields in the headers (4 MiB apart: one cache set, one TLB entry each)
 * made each step of the walk a miss.  Records are carved from chunks of
 * their own, never moved or freed, so a SuperSlab keeps its record. */
typedef struct hak_ss_pool {
    uint64_t used_pages;            /* bit i: page i belongs to a slab (bit 0: header) */
    uint64_t dirty_pages;           /* bit i: free page that may still be resident */
    uint64_t last_free_ms;          /* when a slab of it was last freed          */
    hak_superslab_t *ss;
    struct hak_ss_pool *avail_prev, *avail_next; /* SuperSlabs with free pages */
    uint8_t on_avail;
    uint8_t empty_dirty;            /* no slab, some pages still resident         */
    uint8_t run_free, run_dirty;    /* longest runs of free pages and of free dirty
                                       pages: rec_runs after every change       */
    uint8_t page_band[HAK_SS_PAGES];/* 1 + the size band of the Large slab freed
                                       last on page i (0: a smaller slab's), so
                                       that the background thread's purges count
                                       per band (hak_stats_band)                */
} pool_rec_t;
#define REC_CHUNK 1024              /* records mapped at once */

static pool_rec_t *avail_head;            /* SuperSlabs with a free page      */
static pool_rec_t *rec_chunk;             /* records not yet given out...     */
static unsigned rec_chunk_used = REC_CHUNK; /* ... from here                 */
static hak_superslab_t *all_head;         /* every SuperSlab carved           */
static unsigned empty_dirty_count;        /* SuperSlabs with empty_dirty set  */
static size_t slab_pages;                 /* pages in slabs, all SuperSlabs   */
static char *arena_next, *arena_end;      /* carving cursor                   */
static size_t arena_bytes;                /* address space reserved           */
static size_t arena_size = HAK_SS_SIZE;   /* the next arena's                 */
static size_t dirty_bytes;                /* free pages not yet purged        */
static size_t committed_pages;            /* header, slab and dirty pages     */
static uint64_t last_purge_ms;
static uint64_t last_take_ms;             /* when a slab was last handed out   */
static uint64_t last_call_ms;             /* the last slab handed out or freed */
static uint64_t resume_ms;                /* the first after a pause: see pool_called */

#define RETAIN_SHIFT_MAX 6                /* retention up to 64 x the setting */
/* retention = HAKMEM_RETAIN_MS << this.  Atomic: the Huge cache reads it and
 * raises it without the pool's lock (hak_retain_ms, hak_retain_regret). */
static _Atomic unsigned retain_shift;
typedef struct {
    uint64_t start;                       /* the first purge watched            */
    size_t purged, regretted;             /* pages purged, taken back clean since */
    size_t level;                         /* slab + dirty pages before the purges */
    size_t dirty;                         /* the most dirty pages before one    */
} purge_watch_t;
static purge_watch_t watch;               /* purges by retention                */
static purge_watch_t cap_watch;           /* purges past the cap                */
#define CAP_SHIFT_MAX 6                   /* the cap up to 64 x DIRTY_MAX       */
static _Atomic unsigned cap_shift;        /* cap = DIRTY_MAX << this; the report reads it */

static unsigned shift_now(void) { return atomic_load_explicit(&retain_shift, memory_order_relaxed); }
static uint64_t retain_ms(void) { return (uint64_t)hak_option(HAK_OPT_RETAIN_MS) << shift_now(); }
uint64_t hak_retain_ms(void) { return retain_ms(); }

/* Raises the retention to at least twice age_ms (up to the longest): the
 * pages released that long after their free were wanted again. */
void hak_retain_regret(uint64_t age_ms)
{
    uint64_t base = (uint64_t)hak_option(HAK_OPT_RETAIN_MS);
    unsigned before = shift_now(), shift = before;
    while (shift < RETAIN_SHIFT_MAX && base << shift < 2 * age_ms)
        shift++;
    if (shift != before && atomic_compare_exchange_strong_explicit(&retain_shift, &before, shift,
                                                                    memory_order_relaxed,
                                                                    memory_order_relaxed))
        hak_stat_add(HAK_STAT_RETAIN_CHANGES, 1);
}


#define LOCK_SPINS 256   /* pauses before sleeping: a few microseconds */

void hak_lock_slow(hak_lock_t *l)
{
    atomic_fetch_add_explicit(&l->waits, 1, memory_order_relaxed);
    for (unsigned spins = 0; spins < LOCK_SPINS; spins++) {
        int free_ = 0;
        if (atomic_load_explicit(&l->held, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->held, &free_, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        __builtin_ia32_pause();
    }
    /* Taken with 2 from here on: we cannot know whether others sleep. */
    while (atomic_exchange_explicit(&l->held, 2, memory_order_acquire) != 0)
        hak_os_wait(&l->held, 2);
}

void hak_lock_wake(hak_lock_t *l) { hak_os_wake(&l->held); }

static inline uint64_t run_mask(unsigned first, unsigned n)
{
    uint64_t m = n >= 64 ? FULL_PAGES : (((uint64_t)1 << n) - 1);
    return m << first;
}

/* The longest run of set bits in x. */
static unsigned longest_run(uint64_t x)
{
    unsigned best = 0;
    while (x) {
        unsigned i = (unsigned)__builtin_ctzll(x);
        uint64_t rest = ~(x >> i);
        unsigned n = rest ? (unsigned)__builtin_ctzll(rest) : HAK_SS_PAGES - i;
        if (n > best)
            best = n;
        x &= x + ((uint64_t)1 << i);            /* drop this run */
    }
    return best;
}

/* Kept with the bitmaps, so that the pool's walk for a run of k pages passes
 * over the SuperSlabs that have none without searching their bitmaps (a
 * heap of Large slabs kept ~200 SuperSlabs on the list, and the walk was 14%
 * of bench/phases' shift loop). */
static void rec_runs(pool_rec_t *r)
{
    r->run_free = (uint8_t)longest_run(~r->used_pages);
    r->run_dirty = (uint8_t)longest_run(~r->used_pages & r->dirty_pages);
}

#ifdef HAK_DEBUG
static bool rec_runs_true(const pool_rec_t *r)
{
    pool_rec_t fresh = *r;
    rec_runs(&fresh);
    return fresh.run_free == r->run_free && fresh.run_dirty == r->run_dirty;
}
#endif

/* First run of k free pages, or -1. */
static int find_run(uint64_t used, unsigned k)
{
    uint64_t m = run_mask(0, k);
    uint64_t free = ~used;
    while (free) {
        unsigned i = (unsigned)__builtin_ctzll(free);
        if (i + k > HAK_SS_PAGES)
            return -1;
        if (((free >> i) & m) == m)
            return (int)i;
        free &= free + ((uint64_t)1 << i);   /* drop this run of free pages */
    }
    return -1;
}

static void avail_add(hak_superslab_t *ss)
{
    pool_rec_t *r = ss->pool;
    if (r->on_avail)
        return;
    r->avail_prev = NULL;
    r->avail_next = avail_head;
    if (avail_head)
        avail_head->avail_prev = r;
    avail_head = r;
    r->on_avail = 1;
}

static void avail_remove(hak_superslab_t *ss)
{
    pool_rec_t *r = ss->pool;
    if (!r->on_avail)
        return;
    if (r->avail_prev)
        r->avail_prev->avail_next = r->avail_next;
    else
        avail_head = r->avail_next;
    if (r->avail_next)
        r->avail_next->avail_prev = r->avail_prev;
    r->on_avail = 0;
}

static void set_empty_dirty(hak_superslab_t *ss, bool on)
{
    if (ss->pool->empty_dirty == on)
        return;
    ss->pool->empty_dirty = on;
    if (on)
        empty_dirty_count++;
    else
        empty_dirty_count--;
}

/* committed_pages += d, published for the statistics. */
static void committed_add(size_t d)
{
    committed_pages += d;
    atomic_store_explicit(&hak_stat[HAK_STAT_POOL_COMMITTED], committed_pages * HAK_PAGE_SIZE,
                          memory_order_relaxed);
    hak_stat_note_committed();
}

static bool purging_in_background;        /* hak_pool_release's purges (pool lock) */

/* Purges every dirty page of ss, one madvise per run. */
static void ss_purge(hak_superslab_t *ss)
{
    uint64_t d = ss->pool->dirty_pages;
    while (d) {
        unsigned i = (unsigned)__builtin_ctzll(d);
        unsigned n = (unsigned)__builtin_ctzll(~(d >> i));
        if (i + n > HAK_SS_PAGES)
            n = HAK_SS_PAGES - i;
        hak_os_purge((char *)ss + (size_t)i * HAK_PAGE_SIZE, (size_t)n * HAK_PAGE_SIZE);
        for (unsigned j = i; purging_in_background && j < i + n; j++)
            if (ss->pool->page_band[j])
                hak_band_count(ss->pool->page_band[j] - 1u, HAK_BAND_RELEASED, HAK_PAGE_SIZE);
        d &= ~run_mask(i, n);
        dirty_bytes -= (size_t)n * HAK_PAGE_SIZE;
        committed_add((size_t)0 - n);
    }
    ss->pool->dirty_pages = 0;
    rec_runs(ss->pool);
    set_empty_dirty(ss, false);
    /* An empty SuperSlab's descriptors go too (about a fifth of a GiB's
     * worth of slab pages that stays resident otherwise): they read back as
     * zero, HAK_SLAB_FREE with no owner, as fresh ones do; first_page and
     * the pointer to the pool's record, after them, stay. */
    if (ss->pool->used_pages == 1)
        hak_os_purge(ss, sizeof ss->slabs);
}

static unsigned cap_shift_now(void) { return atomic_load_explicit(&cap_shift, memory_order_relaxed); }
static size_t dirty_cap(void) { return DIRTY_MAX << cap_shift_now(); }
size_t hak_pool_dirty_cap(void) { return dirty_cap(); }

/* A purge of ss by retention or the cap (not by trim), watched by w for
 * regret. */
static void purge_watched(purge_watch_t *w, hak_superslab_t *ss, uint64_t now)
{
    size_t before = dirty_bytes / HAK_PAGE_SIZE;
    if (w->purged == 0) {
        w->start = now;
        w->level = w->dirty = 0;
    }
    if (w->level < slab_pages + before)
        w->level = slab_pages + before;
    if (w->dirty < before)
        w->dirty = before;
    ss_purge(ss);
    w->purged += before - dirty_bytes / HAK_PAGE_SIZE;
}

/* k clean pages taken: whether w's purges are now regretted (the program,
 * not grown past where it was, took back half of what they purged). */
static bool watch_regret(purge_watch_t *w, size_t k)
{
    if (w->purged == 0 || slab_pages > w->level)
        return false;
    w->regretted += k;
    if (w->regretted * 2 < w->purged)
        return false;
    w->purged = w->regretted = 0;
    return true;
}

/* A watch as long as horizon: whether it saw little regret. */
static bool watch_quiet(purge_watch_t *w, uint64_t now, uint64_t horizon)
{
    if (w->purged == 0 || now - w->start < horizon)
        return false;
    bool quiet = w->regretted * 8 < w->purged;
    w->purged = w->regretted = 0;
    return quiet;
}

/* k clean pages taken.  Regret, if a watch is open and the program has not
 * grown past where it was: once half of what was purged has come back, the
 * retention grows to twice what would have kept it (the pages were at least
 * one retention old when purged). */
static void watch_take(size_t k, uint64_t now)
{
    if (k == 0 || atomic_load_explicit(&hak_bg_state, memory_order_relaxed) != HAK_BG_RUNNING)
        return;
    uint64_t start = watch.start;
    if (watch_regret(&watch, k))
        hak_retain_regret(now - start + retain_ms());
    size_t dirty = cap_watch.dirty * HAK_PAGE_SIZE;
    unsigned shift = cap_shift_now();
    if (watch_regret(&cap_watch, k) && shift < CAP_SHIFT_MAX) {
        do                              /* to twice what the regretted purges found */
            shift++;
        while (shift < CAP_SHIFT_MAX && DIRTY_MAX << shift < 2 * dirty);
        atomic_store_explicit(&cap_shift, shift, memory_order_relaxed);
        hak_stat_add(HAK_STAT_DIRTY_CAP_CHANGES, 1);
    }
}

/* A watch as long as the longest retention, with little regret, halves the
 * retention (the background thread's turn). */
static void watch_learn(uint64_t now)
{
    uint64_t horizon = (uint64_t)hak_option(HAK_OPT_RETAIN_MS) << RETAIN_SHIFT_MAX;
    if (watch_quiet(&watch, now, horizon) && shift_now() > 0) {
        atomic_fetch_sub_explicit(&retain_shift, 1, memory_order_relaxed);
        hak_stat_add(HAK_STAT_RETAIN_CHANGES, 1);
    }
    if (watch_quiet(&cap_watch, now, horizon) && cap_shift_now() > 0) {
        atomic_fetch_sub_explicit(&cap_shift, 1, memory_order_relaxed);
        hak_stat_add(HAK_STAT_DIRTY_CAP_CHANGES, 1);
    }
}

/* A slab taken or freed at now.  After a pause of a retention or more (the
 * program waited, or ran without needing slabs), the slow paths count the
 * age of free pages from now: the pause was the time to release them (the
 * background thread's), and a purge as the program comes back is of pages
 * it is about to reuse (rptest at 1 thread, which holds too little to start
 * the thread, faulted back after each pause what its first free purged). */
static void pool_called(uint64_t now)
{
    if (now - last_call_ms >= retain_ms())
        resume_ms = now;
    __atomic_store_n(&last_call_ms, now, __ATOMIC_RELAXED);   /* hak_pool_last_call_ms */
}

/* When a slab was last handed out or freed, read without the lock. */
uint64_t hak_pool_last_call_ms(void) { return __atomic_load_n(&last_call_ms, __ATOMIC_RELAXED); }

/* Purges the free pages of SuperSlabs that no slab has been freed into for
 * the retention, counted from since at the earliest (all: every one);
 * watched by w (NULL: a trim, not watched). */
static void purge_old(uint64_t now, uint64_t since, bool all, purge_watch_t *w)
{
    uint64_t retain = retain_ms();
    last_purge_ms = now;
    for (pool_rec_t *r = avail_head; r; r = r->avail_next) {
        uint64_t from = r->last_free_ms > since ? r->last_free_ms : since;   /* age counted from */
        if (r->dirty_pages && (all || now - from >= retain)) {
            if (w == NULL)
                ss_purge(r->ss);
            else
                purge_watched(w, r->ss, now);
        }
    }
}

/* Keeps the empty SuperSlabs left resident within their allowance. */
static void purge_extra_empty(uint64_t now)
{
    if (shift_now() > 0)
        return;                   /* such purges were regretted: retention decides */
    size_t allow = slab_pages * HAK_PAGE_SIZE / 2 / HAK_SS_SIZE;
    if (allow < RETAIN_EMPTY)
        allow = RETAIN_EMPTY;
    for (pool_rec_t *r = avail_head; r && empty_dirty_count > allow; r = r->avail_next)
        if (r->empty_dirty)
            purge_watched(&watch, r->ss, now);
}

static void maybe_purge(uint64_t now)
{
    if (dirty_bytes == 0)
        return;
    if (dirty_bytes > dirty_cap())
        purge_old(now, 0, true, &cap_watch);
    else if (now - last_purge_ms >= retain_ms() / 2)
        purge_old(now, resume_ms, false, &watch);
}

/* A SuperSlab from the current arena, reserving a new arena if needed. */
static hak_superslab_t *ss_carve(void)
{
    if (arena_next == arena_end) {
        size_t size = arena_size;
        if (arena_size < ARENA_MAX)
            arena_size *= 2;
        char *p = hak_region_map_new(size, HAK_SS_SIZE, 0, true, HAK_REGION_SS);
        if (p == NULL) {
            size = HAK_SS_SIZE;   /* short of address space: one at a time */
            p = hak_region_map_new(size, HAK_SS_SIZE, 0, true, HAK_REGION_SS);
            if (p == NULL)
                return NULL;
        }
        arena_next = p;
        arena_end = p + size;
        arena_bytes += size;
    }
    if (rec_chunk_used == REC_CHUNK) {
        pool_rec_t *c = hak_os_map(REC_CHUNK * sizeof(pool_rec_t), false);
        if (c == NULL)
            return NULL;
        rec_chunk = c;
        rec_chunk_used = 0;
    }
    hak_superslab_t *ss = (hak_superslab_t *)arena_next;
    arena_next += HAK_SS_SIZE;
    ss->pool = &rec_chunk[rec_chunk_used++];
    ss->pool->ss = ss;
    /* Fresh memory reads as zero: every descriptor is HAK_SLAB_FREE, owner 0. */
    ss->slabs[0].state = HAK_SLAB_HEADER;
    for (unsigned i = 0; i < HAK_SS_PAGES; i++)
        ss->first_page[i] = (uint8_t)i;
    ss->pool->used_pages = 1;
    rec_runs(ss->pool);
    committed_add(1);
    ss->all_next = all_head;
    __atomic_store_n(&all_head, ss, __ATOMIC_RELEASE);    /* hak_superslab_first */
    return ss;
}

static void slab_init(hak_superslab_t *ss, unsigned first, unsigned cls, uintptr_t owner)
{
    hak_slab_t *s = &ss->slabs[first];
    unsigned k = hak_classes[cls].pages;
    uint32_t bsize = hak_classes[cls].size;
    s->free = NULL;
    s->used = 0;
    s->start = (char *)ss + (size_t)first * HAK_PAGE_SIZE;
    s->bump = s->start;
    s->end = s->start + ((size_t)k * HAK_PAGE_SIZE) / bsize * bsize;
    s->boundary_mul = hak_boundary_mul(bsize);
    s->prev = s->next = NULL;
    s->seen_free = NULL;
    s->released = NULL;
    s->released_bytes = 0;
    s->bsize = bsize;
    s->cls = (uint8_t)cls;
    hak_slab_set_list(s, HAK_LIST_NONE);
    s->npages = (uint8_t)k;
    atomic_store(&s->remote, NULL);
    atomic_store(&s->remote_n, 0);
    hak_slab_set_parked(s, 0);
    for (unsigned j = first; j < first + k; j++)
        ss->first_page[j] = (uint8_t)first;
    hak_block_page_set(s, true);
#ifdef HAK_ASAN
    __asan_poison_memory_region(s->start, (size_t)k * HAK_PAGE_SIZE);
#endif
    /* Last the owner, then the state: a thread that sees this owner sees an
     * initialised slab, and one that sees it ACTIVE sees its owner, not the
     * one it had in the pool (hak_slab_ownerless). */
    atomic_store(&s->owner, owner);
    __atomic_store_n(&s->state, HAK_SLAB_ACTIVE, __ATOMIC_RELEASE);
}

hak_slab_t *hak_pool_slab_alloc(unsigned cls, uintptr_t owner, bool resident_only)
{
    unsigned k = hak_classes[cls].pages;
    hak_superslab_t *ss;
    int first = -1;
    hak_lock(&pool_lock);
    /* Free pages still resident first: they cost no page faults and no RSS
     * that other free pages do not already cost. */
    pool_rec_t *r = NULL;
    if (dirty_bytes >= (size_t)k * HAK_PAGE_SIZE)
        for (r = avail_head; r; r = r->avail_next) {
            hak_assert(rec_runs_true(r));
            if (r->run_dirty >= k && (first = find_run(r->used_pages | ~r->dirty_pages, k)) >= 0)
                break;
        }
    if (r == NULL && resident_only) {
        hak_unlock(&pool_lock);
        return NULL;
    }
    if (r == NULL)
        for (r = avail_head; r; r = r->avail_next)
            if (r->run_free >= k && (first = find_run(r->used_pages, k)) >= 0)
                break;
    if (r == NULL) {
        ss = ss_carve();
        if (ss == NULL) {
            hak_unlock(&pool_lock);
            return NULL;
        }
        avail_add(ss);
        r = ss->pool;
        first = find_run(r->used_pages, k);
    }
    ss = r->ss;
    uint64_t m = run_mask((unsigned)first, k);
    uint64_t now = hak_now_ms();
    last_take_ms = now;
    pool_called(now);
    size_t clean = (size_t)__builtin_popcountll(m & ~r->dirty_pages);
    /* A Large block: its band's cost (a class holds the sizes up to its own,
     * all in its band). */
    if (hak_classes[cls].size > HAK_MID_MAX)
        hak_band_count(hak_band_of(hak_classes[cls].size), HAK_BAND_FRESH, clean * HAK_PAGE_SIZE);
    set_empty_dirty(ss, false);
    r->used_pages |= m;
    slab_pages += k;
    atomic_store_explicit(&hak_stat[HAK_STAT_IN_SLABS], slab_pages * HAK_PAGE_SIZE, memory_order_relaxed);
    hak_stat_raise(HAK_STAT_PEAK_IN_SLABS, slab_pages * HAK_PAGE_SIZE);
    committed_add(clean);
    watch_take(clean, now);
    bool zeroed = (r->dirty_pages & m) == 0;
    if (!zeroed) {
        dirty_bytes -= (size_t)__builtin_popcountll(r->dirty_pages & m) * HAK_PAGE_SIZE;
        r->dirty_pages &= ~m;
    }
    rec_runs(r);
    if (r->used_pages == FULL_PAGES)
        avail_remove(ss);
    slab_init(ss, (unsigned)first, cls, owner);
    ss->slabs[first].zeroed = zeroed;
    hak_unlock(&pool_lock);
    return &ss->slabs[first];
}

void hak_pool_slab_free(hak_slab_t *s)
{
    hak_superslab_t *ss = hak_ss_of(s);
    unsigned first = (unsigned)(s - ss->slabs), k = s->npages;
    uint64_t m = run_mask(first, k);
    hak_lock(&pool_lock);
    pool_rec_t *r = ss->pool;
    hak_assert(s->state == HAK_SLAB_ACTIVE && (r->used_pages & m) == m &&
               atomic_load(&s->owner) == HAK_OWNER_DYING);
    __atomic_store_n(&s->state, HAK_SLAB_FREE, __ATOMIC_RELAXED);  /* read by hak_slab_ownerless */
    hak_slab_set_list(s, HAK_LIST_NONE);    /* owner stays HAK_OWNER_DYING */
    hak_block_page_set(s, false);
    for (unsigned j = first; j < first + k; j++)
        ss->first_page[j] = (uint8_t)j;
    uint64_t now = hak_now_ms();
    pool_called(now);
    r->last_free_ms = now;
    r->used_pages &= ~m;
    for (unsigned j = first; j < first + k; j++)
        r->page_band[j] = (uint8_t)(s->bsize > HAK_MID_MAX ? hak_band_of(s->bsize) + 1 : 0);
    slab_pages -= k;
    atomic_store_explicit(&hak_stat[HAK_STAT_IN_SLABS], slab_pages * HAK_PAGE_SIZE, memory_order_relaxed);
    r->dirty_pages |= m;
    rec_runs(r);
    dirty_bytes += (size_t)k * HAK_PAGE_SIZE;
    avail_add(ss);
    if (r->used_pages == 1)
        set_empty_dirty(ss, true);
    purge_extra_empty(now);
    maybe_purge(now);
    hak_unlock(&pool_lock);
    hak_background_wake();
}

uint64_t hak_pool_release(void)
{
    uint64_t next = HAK_NEVER;
    hak_lock(&pool_lock);
    uint64_t now = hak_now_ms();    /* under the lock: no last_free_ms is later */
    size_t dirty_before = dirty_bytes;
    watch_learn(now);
    purging_in_background = true;
    purge_old(now, 0, false, &watch);
    purging_in_background = false;
    hak_stat_add(HAK_STAT_BG_RELEASED, dirty_before - dirty_bytes);
    uint64_t retain = retain_ms();
    for (pool_rec_t *r = avail_head; r; r = r->avail_next)
        if (r->dirty_pages && r->last_free_ms + retain - now < next)
            next = r->last_free_ms + retain - now;
    hak_unlock(&pool_lock);
    return next;
}

/* Free pages kept for reuse must not add to a footprint that has moved to
 * Huge blocks (a program past its slab phase): as many bytes as were just
 * mapped for one go, from the SuperSlabs freed into longest ago.  Not while
 * slabs are still being taken (within HAKMEM_RETAIN_MS): those pages are in
 * use for slabs and Huge blocks alike (a mixed Large and Huge churn). */
void hak_pool_yield_room(size_t bytes)
{
    hak_lock(&pool_lock);
    if (hak_now_ms() - last_take_ms < (uint64_t)hak_option(HAK_OPT_RETAIN_MS)) {
        hak_unlock(&pool_lock);
        return;
    }
    size_t goal = dirty_bytes > bytes ? dirty_bytes - bytes : 0;
    while (dirty_bytes > goal) {
        pool_rec_t *oldest = NULL;
        for (pool_rec_t *r = avail_head; r; r = r->avail_next)
            if (r->dirty_pages && (oldest == NULL || r->last_free_ms < oldest->last_free_ms))
                oldest = r;
        ss_purge(oldest->ss);
    }
    hak_unlock(&pool_lock);
}

int hak_pool_trim(void)
{
    hak_lock(&pool_lock);
    size_t before = dirty_bytes;
    purge_old(hak_now_ms(), 0, true, NULL);
    hak_unlock(&pool_lock);
    return before != 0;
}

void hak_pool_lock_all(void) { hak_lock(&pool_lock); }

void hak_pool_unlock_all(bool child)
{
    if (child) {
        hak_lock_reset(&pool_lock);
        watch.purged = watch.regretted = 0;   /* the parent's purges are not the child's */
        cap_watch.purged = cap_watch.regretted = 0;
    }
    else
        hak_unlock(&pool_lock);
}

/* The SuperSlab carved last; all_next leads to every earlier one.  Without
 * the pool lock: the list only grows at its head, and a SuperSlab's header
 * is never unmapped (a purged one reads as free descriptors). */
hak_superslab_t *hak_superslab_first(void)
{
    return __atomic_load_n(&all_head, __ATOMIC_ACQUIRE);
}

void hak_pool_visit(hak_slab_visitor fn, void *arg)
{
    for (hak_superslab_t *ss = all_head; ss; ss = ss->all_next)
        for (unsigned i = 1; i < HAK_SS_PAGES; i++)
            if (ss->slabs[i].state == HAK_SLAB_ACTIVE)
                fn(&ss->slabs[i], arg);
}

void hak_pool_walk(hak_slab_visitor fn, void *arg)
{
    hak_lock(&pool_lock);
    hak_pool_visit(fn, arg);
    hak_unlock(&pool_lock);
}

void hak_pool_figures(size_t *mapped, size_t *committed, size_t *superslabs,
                      size_t *slabs, size_t *in_use)
{
    size_t c = 0, n_ss = 0, n_slabs = 0, bytes = 0;
    hak_lock(&pool_lock);
    for (hak_superslab_t *ss = all_head; ss; ss = ss->all_next) {
        c += HAK_PAGE_SIZE;   /* header page */
        c += (size_t)__builtin_popcountll((ss->pool->used_pages | ss->pool->dirty_pages) & ~(uint64_t)1) * HAK_PAGE_SIZE;
        if (ss->pool->used_pages != 1)
            n_ss++;
        for (unsigned i = 1; i < HAK_SS_PAGES; i++) {
            hak_slab_t *s = &ss->slabs[i];
            if (s->state != HAK_SLAB_ACTIVE)
                continue;
            n_slabs++;
            bytes += (size_t)hak_slab_out_snapshot(s) * s->bsize;
        }
    }
    *mapped = arena_bytes;
    hak_assert(c == committed_pages * HAK_PAGE_SIZE);
    hak_unlock(&pool_lock);
    *committed = c;
    *superslabs = n_ss;
    *slabs = n_slabs;
    *in_use = bytes;
}
