/* Huge blocks (above HAK_LARGE_MAX, and those of 512 KiB - 2 MiB that their
 * size band places here: learn.c): one mapping each.
 *
 * A Huge mapping starts on a 4 MiB boundary and covers whole 4 MiB chunks,
 * so no other HAKMEM block shares its region-map entries.  Its header sits
 * at the start of the mapping; the block starts 64 bytes later, or at the
 * requested alignment.  The region map marks the chunk holding the block's
 * start as HUGE_HEAD (header at this chunk's base) or HUGE_PREV (header one
 * chunk below, for alignments of 4 MiB and more); the other chunks are
 * HUGE_BODY, where no block starts.  Free finds the header from the address
 * and checks that it names this very pointer.
 *
 * Freed mappings (plain alignment, up to CACHE_MAX_BLOCK each) are kept for
 * HAKMEM_RETAIN_MS and reused by Huge allocations, so that a program that
 * allocates and frees big buffers in a loop does not pay for mapping and
 * faulting them in every time: the smallest that fits, its spare chunks
 * split off, or else the largest grown (mremap) and the grown part filled
 * with the pages of others, moved over (mremap again), so that only what
 * the cache lacks is faulted in.  The newest are kept, the oldest make
 * room; the background thread unmaps them when their time is up, or else
 * the next Huge call does.
 *
 * The cache's capacity is learned while the background thread runs: the
 * sizes of the last GHOSTS frees are remembered, and the bytes an
 * allocation had to fault in (the cache had nothing, or a smaller mapping
 * that was grown) are regretted when one of those frees would have served
 * it had the cache held everything freed since (that many bytes: the
 * distance), or when one of the last GHOSTS entries dropped for room would
 * have (distance: the capacity plus the entries dropped since, it
 * included): frees whose entries were taken by other blocks meanwhile are
 * not what a bigger cache would keep, drops are.  After EPOCH allocations
 * each regret's distance is a candidate capacity, scored by the bytes it
 * would have saved over EPOCHS_AHEAD such epochs (a raise is not undone
 * sooner) less the bytes it adds; the best, if it gains, becomes the
 * capacity (at most twice the most bytes in live Huge blocks during the
 * epoch: a churn with few Huge blocks live at a time still needs room for
 * the sizes it cycles through).  EPOCHS_AHEAD epochs in a row with no
 * regret, each using under half the capacity, halve it, down to CACHE_MIN
 * (one such epoch did: with 4 threads churning, a short lull or the
 * background thread's expiry halved it every few epochs, and what the halving
 * unmapped was faulted in again: 2.5x the page faults of a fixed capacity
 * the learning reached).  HAKMEM_HUGE_CACHE_MB
 * fixes the capacity instead.
 */
#include <errno.h>
#include <string.h>
#include "types.h"

#define HUGE_MAGIC 0x48414b4d48554745ull   /* "HAKMHUGE" */
#define CACHE_SLOTS 32
#define CACHE_MIN ((size_t)64 << 20)        /* the capacity before learning  */
#define CACHE_MAX_BLOCK ((size_t)32 << 20)
#define GHOSTS 32
#define EPOCH 32
#define THP_SIZE ((size_t)2 << 20)          /* the kernel's transparent huge page */
#define EPOCHS_AHEAD 8      /* a raised capacity lasts at least this long: its savings count so often */

hak_lock_t hak_huge_lock;                   /* the cache and its learning */
/* The 2 MiB pages [lo, hi) of a mapping (counted from its start) that may
 * carry MADV_HUGEPAGE (lo == hi: none): huge_pages_mark makes no call when
 * the flags it wants are there already.  In 2 MiB units: the header holds it
 * in 64 bytes. */
typedef struct { uint32_t lo, hi; } thp_range_t;
/* touched: how many of the mapping's first bytes blocks have written (may
 * be resident): what a block reaching further faults in (the bands' count). */
static struct { char *h; size_t map_size, touched; uint64_t freed_ms; thp_range_t thp; } cache[CACHE_SLOTS];
static unsigned cache_n;
static _Atomic size_t cache_bytes;         /* atomic for hak_huge_cached */
static size_t cache_cap = CACHE_MIN;
static size_t ghost[GHOSTS];                /* sizes of the last frees, newest at ghost_next - 1 */
static unsigned ghost_next;
static size_t evicted[GHOSTS];              /* sizes of the last entries dropped for room */
static unsigned evicted_next;
static struct { size_t size; uint64_t freed_ms; } expired[GHOSTS];   /* the last unmapped for age */
static unsigned expired_next;
static unsigned quiet_epochs;               /* in a row: no regret, under half the capacity used */
static struct {
    unsigned allocs, regrets;
    struct { size_t distance, bytes; } regret[EPOCH];
    size_t used;                            /* the most the cache held */
    size_t peak_live;                       /* the most bytes in live Huge blocks */
} epoch;

typedef struct {
    uint64_t magic;
    size_t map_size;     /* bytes mapped from the header on, whole chunks */
    char *user;          /* the block                                      */
    size_t usable;       /* bytes usable from user on                      */
    size_t asked;        /* bytes asked for (check mode's copies stay within) */
    size_t align;        /* alignment asked for (at least 16)              */
    size_t touched;      /* bytes from the header on that blocks reached    */
    thp_range_t thp;     /* the mapping's huge-page flags                   */
} huge_hdr_t;

/* The block starts 64 bytes into its mapping (plain alignment). */
_Static_assert(sizeof(huge_hdr_t) <= 64, "a Huge header fits before its block");

static size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

/* Bytes in live Huge blocks change by d (mod 2^64): the figure and its peaks. */
static void huge_bytes_changed(size_t d)
{
    size_t now = atomic_fetch_add_explicit(&hak_stat[HAK_STAT_HUGE_BYTES], d,
                                           memory_order_relaxed) + d;
    hak_stat_raise(HAK_STAT_PEAK_HUGE, now);
    hak_stat_note_committed();
}

/* The map entries of a mapping whose chunks are claimed (hak_region_map_new,
 * or kept in the cache): the block's first chunk names where its header is. */
static void map_mark(char *h, size_t map_size, char *user)
{
    for (char *c = h; c < h + map_size; c += HAK_SS_SIZE)
        hak_region_set(c, HAK_REGION_HUGE_BODY);
    hak_region_set(user, (size_t)(user - h) < HAK_SS_SIZE ? HAK_REGION_HUGE_HEAD
                                                          : HAK_REGION_HUGE_PREV);
}

/* Gives back the mapping [h, h + size) and its map entries: the entries
 * first, so that a new mapping at the same address cannot have its entries
 * wiped by us. */
static void mapping_unmap(char *h, size_t size)
{
    hak_region_release(h, h + size);
    hak_os_unmap(h, size);
}

static huge_hdr_t *huge_header(const void *p)
{
    uintptr_t chunk = (uintptr_t)p & ~(uintptr_t)HAK_SS_MASK;
    switch (hak_region_of((uintptr_t)p)) {
    case HAK_REGION_HUGE_HEAD: break;
    case HAK_REGION_HUGE_PREV: chunk -= HAK_SS_SIZE; break;
    default: return NULL;
    }
    huge_hdr_t *h = (huge_hdr_t *)chunk;
    return h->magic == HUGE_MAGIC && h->user == p ? h : NULL;
}

/* Entry i unmapped and removed; the caller holds hak_huge_lock. */
static void cache_drop(unsigned i)
{
    mapping_unmap(cache[i].h, cache[i].map_size);
    cache_bytes -= cache[i].map_size;
    cache[i] = cache[--cache_n];
}

static bool thp_none(thp_range_t r) { return r.lo == r.hi; }

/* The part of r below byte at, and the part from at on (seen from at); at
 * is a multiple of 2 MiB (a mapping's chunks are). */
static thp_range_t thp_below(thp_range_t r, size_t at)
{
    uint32_t u = (uint32_t)(at / THP_SIZE);
    thp_range_t b = { r.lo < u ? r.lo : u, r.hi < u ? r.hi : u };
    return b.lo < b.hi ? b : (thp_range_t){ 0, 0 };
}
static thp_range_t thp_above(thp_range_t r, size_t at)
{
    uint32_t u = (uint32_t)(at / THP_SIZE);
    thp_range_t a = { r.lo > u ? r.lo - u : 0, r.hi > u ? r.hi - u : 0 };
    return a.lo < a.hi ? a : (thp_range_t){ 0, 0 };
}

/* One range over r and o, o seen from byte shift on (a gap between them is
 * taken as flagged too: the next mark clears it). */
static thp_range_t thp_join(thp_range_t r, thp_range_t o, size_t shift)
{
    if (thp_none(o))
        return r;
    o.lo += (uint32_t)(shift / THP_SIZE);
    o.hi += (uint32_t)(shift / THP_SIZE);
    if (thp_none(r))
        return o;
    return (thp_range_t){ r.lo < o.lo ? r.lo : o.lo, r.hi > o.hi ? r.hi : o.hi };
}

/* A new entry; the caller holds hak_huge_lock and has found it room. */
static void cache_add(char *h, size_t size, size_t touched, thp_range_t thp, uint64_t freed_ms)
{
    cache[cache_n].h = h;
    cache[cache_n].thp = thp;
    cache[cache_n].map_size = size;
    cache[cache_n].touched = touched < size ? touched : size;
    cache[cache_n].freed_ms = freed_ms;
    cache_n++;
    cache_bytes += size;
}

/* Unmaps cached mappings freed more than HAKMEM_RETAIN_MS ago (all if
 * `all`); the caller holds hak_huge_lock. */
static void cache_expire(bool all, bool background)
{
    uint64_t now = hak_now_ms(), retain = hak_retain_ms();
    for (unsigned i = 0; i < cache_n;) {
        if (all || now - cache[i].freed_ms >= retain) {
            if (!all) {
                expired[expired_next % GHOSTS].size = cache[i].map_size;
                expired[expired_next++ % GHOSTS].freed_ms = cache[i].freed_ms;
            }
            if (background)
                hak_band_count(hak_band_of(cache[i].map_size), HAK_BAND_RELEASED, cache[i].map_size);
            cache_drop(i);
        } else {
            i++;
        }
    }
}

/* An allocation of need bytes that had to fault in need - reused of them:
 * if one of the last mappings unmapped for age would have served it, the
 * retention (the page pool's, one for all free memory) grows to twice that
 * mapping's age.  With a fixed 100 ms, malloc-large on a slow hour let every
 * mapping expire before its reuse: 21 s and 732k page faults, against 7.9 s
 * and 160k with HAKMEM_RETAIN_MS=1000.  The caller holds the lock. */
static void expiry_learn(size_t need, size_t reused)
{
    if (reused >= need || atomic_load_explicit(&hak_bg_state, memory_order_relaxed) != HAK_BG_RUNNING)
        return;
    for (unsigned k = 1; k <= GHOSTS; k++) {
        unsigned i = (expired_next - k) % GHOSTS;
        if (expired[i].size >= need) {
            hak_retain_regret(hak_now_ms() - expired[i].freed_ms);
            expired[i].size = 0;            /* one regret per expiry */
            return;
        }
    }
}

/* The mapping [h, h + size) grown to need bytes: in place if the address
 * space above is free, else its pages moved (mremap, nothing copied) to a
 * new region aligned to align, offset as hak_region_map_new takes it.  The
 * grown or moved mapping's chunks are claimed, the old ones released; its
 * address, or NULL (the mapping stays as it was). */
static char *mapping_grow(char *h, size_t size, size_t need, size_t align, size_t offset,
                          thp_range_t *thp)
{
    char *end = h + size;
    /* mremap takes one VMA only: the parts huge_pages_mark split the
     * mapping into join again under one flag (the caller marks it anew). */
    if (!thp_none(*thp)) {
        hak_os_huge_pages(h, size, false);
        *thp = (thp_range_t){ 0, 0 };
    }
    if (hak_os_grow(h, size, need)) {
        if (hak_region_claim(end, need - size, HAK_REGION_HUGE_BODY))
            return h;
        hak_os_unmap(end, need - size);     /* the new chunks' indexes are taken */
    }
    char *moved = hak_region_map_new(need, align, offset, true, HAK_REGION_HUGE_BODY);
    if (moved == NULL)
        return NULL;
    if (!hak_os_move(h, size, moved, need)) {
        mapping_unmap(moved, need);
        return NULL;
    }
    hak_region_release(h, end);             /* its pages are at moved now */
    return moved;
}

/* The 2 MiB pages of mapping h that lie wholly inside its block (h + off,
 * n bytes; the header's page counts as the block's) may be huge pages, the
 * rest may not: a huge page reaching past the block's end would be backed
 * whole at the program's first touch near that end.  Only with
 * HAKMEM_HUGE_PAGES=1: it pays where a 4 KiB fault is dear (20 us on this
 * VM once: a 16 MiB block written once spent 80 ms faulting, 5 ms with huge
 * pages), and costs where it is cheap (0.8 us later: finding and zeroing
 * 2 MiB pages made malloc-large 25% slower).  A mapping that held another
 * block (the cache, mremap) carries that block's flags, so both parts are
 * set; a fresh one has none.  Called before the block's first byte is
 * touched: a 2 MiB range with one small page mapped faults small pages
 * until khugepaged runs. */
static void huge_pages_mark(char *h, size_t off, size_t n, size_t map_size, bool fresh,
                            thp_range_t *thp)
{
    if (!hak_option(HAK_OPT_HUGE_PAGES))
        return;
    size_t from = off & ~(THP_SIZE - 1), to = (off + n) & ~(THP_SIZE - 1);
    /* The flags wanted are there already: no call (1 MiB blocks reusing
     * cached mappings made one each; 2 MiB ones, two). */
    thp_range_t want = { (uint32_t)(from / THP_SIZE), (uint32_t)(to / THP_SIZE) };
    if (from == to ? thp_none(*thp) : thp->lo == want.lo && thp->hi == want.hi)
        return;
    /* The flags split the mapping into VMAs, which join again for mremap
     * (mapping_grow) only if they share one anon_vma: the kernel gives a
     * VMA its anon_vma at its first written page, so one is written before
     * the split (a page outside the huge range: the header's, or the last). */
    if (fresh && (from > 0 || to < map_size))
        *(volatile char *)(from > 0 ? h : h + map_size - 1) = 0;
    hak_os_huge_pages(h + from, to - from, true);
    if (!thp_none(*thp)) {
        hak_os_huge_pages(h, from, false);
        hak_os_huge_pages(h + to, map_size - to, false);
    }
    *thp = from < to ? want : (thp_range_t){ 0, 0 };
}

/* HAKMEM_HUGE_CACHE_MB set: the capacity is that, not learned.  The caller
 * holds the lock. */
static bool cache_cap_fixed(void)
{
    long mb = hak_option(HAK_OPT_HUGE_CACHE_MB);
    if (mb > 0)
        cache_cap = (size_t)mb << 20;
    return mb > 0;
}

/* Adds to *distance the sizes in ring (newest at next - 1) from the newest
 * back to the first that holds need, it included; false if none does. */
static bool ghost_walk(const size_t *ring, unsigned next, size_t need, size_t *distance)
{
    for (unsigned k = 1; k <= GHOSTS; k++) {
        size_t g = ring[(next - k) % GHOSTS];
        *distance += g;
        if (g >= need)
            return true;
    }
    return false;
}

/* An allocation of need bytes that found reused bytes of a cached mapping
 * (0: none): what it says about the capacity.  The caller holds the lock. */
static void cache_learn(size_t need, size_t reused)
{
    if (cache_cap_fixed())
        return;
    if (atomic_load_explicit(&hak_bg_state, memory_order_relaxed) != HAK_BG_RUNNING) {
        cache_cap = CACHE_MIN;            /* without the thread nothing unmaps it idle */
        return;
    }
    size_t distance = 0;
    bool seen = reused < need && ghost_walk(ghost, ghost_next, need, &distance);
    if (!(seen && distance > cache_cap) && reused < need) {
        /* Or an entry dropped for room would have served it: kept by a
         * capacity that held it and every entry dropped after it. */
        distance = cache_cap;
        seen = ghost_walk(evicted, evicted_next, need, &distance);
    }
    if (seen && distance > cache_cap) {   /* bytes faulted in that it would have saved */
        epoch.regret[epoch.regrets].distance = distance;
        epoch.regret[epoch.regrets++].bytes = need - reused;
    }
    size_t live = atomic_load_explicit(&hak_stat[HAK_STAT_HUGE_BYTES], memory_order_relaxed);
    if (epoch.peak_live < live)
        epoch.peak_live = live;
    if (++epoch.allocs < EPOCH)
        return;
    /* The capacity that saves the most beyond what it adds: each regret's
     * distance is a candidate. */
    size_t limit = 2 * epoch.peak_live > CACHE_MIN ? 2 * epoch.peak_live : CACHE_MIN;
    size_t best = cache_cap, best_gain = 0;
    for (unsigned j = 0; j < epoch.regrets; j++) {
        size_t c = epoch.regret[j].distance, saved = 0;
        if (c > limit)
            continue;
        for (unsigned i = 0; i < epoch.regrets; i++)
            if (epoch.regret[i].distance <= c)
                saved += epoch.regret[i].bytes;
        saved *= EPOCHS_AHEAD;
        if (saved > c - cache_cap && saved - (c - cache_cap) > best_gain) {
            best_gain = saved - (c - cache_cap);
            best = c;
        }
    }
    quiet_epochs = epoch.regrets == 0 && epoch.used < cache_cap / 2 ? quiet_epochs + 1 : 0;
    if (best > cache_cap) {
        cache_cap = best;
        hak_stat_add(HAK_STAT_HUGE_CAP_CHANGES, 1);
    } else if (quiet_epochs >= EPOCHS_AHEAD && cache_cap / 2 >= CACHE_MIN) {
        cache_cap /= 2;
        quiet_epochs = 0;
        hak_stat_add(HAK_STAT_HUGE_CAP_CHANGES, 1);
    }
    memset(&epoch, 0, sizeof epoch);
}

size_t hak_huge_cache_cap(void)
{
    hak_lock(&hak_huge_lock);
    size_t c = cache_cap;
    hak_unlock(&hak_huge_lock);
    return c;
}

/* A cached mapping taken out of the cache for a block (its base, or pages
 * to move into it). */
typedef struct { char *h; size_t size, touched; thp_range_t thp; } piece_t;

/* Cached entry i out of the cache, as a piece of at most want bytes (whole
 * chunks): its chunks beyond want stay cached as an entry of their own
 * (their resident pages stay of use).  The caller holds the lock. */
static piece_t cache_remove(unsigned i, size_t want)
{
    piece_t q = { cache[i].h, cache[i].map_size, cache[i].touched, cache[i].thp };
    uint64_t freed_ms = cache[i].freed_ms;
    cache_bytes -= q.size;
    cache[i] = cache[--cache_n];
    if (q.size > want) {                    /* a slot was just freed */
        cache_add(q.h + want, q.size - want, q.touched > want ? q.touched - want : 0,
                  thp_above(q.thp, want), freed_ms);
        q.thp = thp_below(q.thp, want);
        q.touched = q.touched < want ? q.touched : want;
        q.size = want;
    }
    return q;
}

/* Takes out of the cache mappings that hold want bytes between them, or as
 * many as it has: the smallest that holds what is still wanted (its spare
 * chunks stay cached), else the largest and go on.  Returns how many, in p.
 * The caller holds the lock. */
static unsigned cache_gather(size_t want, piece_t *p)
{
    unsigned n = 0;
    while (want > 0 && cache_n > 0) {
        unsigned pick = 0;
        for (unsigned i = 1; i < cache_n; i++) {
            bool fits = cache[i].map_size >= want, pick_fits = cache[pick].map_size >= want;
            if (fits ? !pick_fits || cache[i].map_size < cache[pick].map_size
                     : !pick_fits && cache[i].map_size > cache[pick].map_size)
                pick = i;
        }
        p[n] = cache_remove(pick, want);
        want -= p[n++].size;
    }
    return n;
}

/* The pages of [from, from + size) moved onto [to, to + size), which they
 * replace (mremap: nothing copied, nothing faulted in), and the old chunks'
 * map entries released.  A range of several VMAs (pieces of two mappings
 * joined in the cache) moves chunk by chunk.  Returns how many bytes from
 * the start moved; the rest is unmapped. */
static size_t pages_move(char *from, size_t size, char *to)
{
    size_t done = 0;
    if (hak_os_move(from, size, to, size))
        done = size;
    while (done < size && hak_os_move(from + done, HAK_SS_SIZE, to + done, HAK_SS_SIZE))
        done += HAK_SS_SIZE;
    hak_region_release(from, from + done);
    if (done < size)
        mapping_unmap(from + done, size - done);
    return done;
}

/* Whether cached entry i, which holds the mapping a block needs, serves it
 * better than entry j, which holds it too; the block writes its mapping's
 * first reach bytes.  The smaller mapping; of two of one size (blocks of
 * 512 KiB - 2 MiB each take a 4 MiB chunk), the one whose written pages
 * cover reach with the fewest to spare, else the one that covers most: the
 * block faults in what its entry's blocks did not write. */
static bool entry_fits_better(unsigned i, unsigned j, size_t reach)
{
    if (cache[i].map_size != cache[j].map_size)
        return cache[i].map_size < cache[j].map_size;
    size_t ti = cache[i].touched, tj = cache[j].touched;
    if ((ti >= reach) != (tj >= reach))
        return ti >= reach;
    return ti >= reach ? ti < tj : ti > tj;
}

/* A cached mapping of need bytes (whole chunks), or NULL.  The smallest that
 * holds need, its spare chunks left in the cache as a mapping of their own
 * (their resident pages stay of use); else the largest, grown to need, with
 * the pages of other cached mappings moved into the grown part, so that only
 * what the cache lacks is faulted in (malloc-large, whose 5-25 MiB blocks
 * outgrow the mappings the cache holds, faulted in twice as many bytes as
 * tcmalloc's heap when the growth was all fresh).  *held: how many of its
 * first bytes came from the cache (the rest reads as zero); *touched: how
 * many of those earlier blocks reached. */
static char *cache_take(size_t need, size_t reach, size_t *held, size_t *touched,
                        thp_range_t *thp)
{
    hak_lock(&hak_huge_lock);
    cache_expire(false, false);
    unsigned best = CACHE_SLOTS, largest = CACHE_SLOTS;
    for (unsigned i = 0; i < cache_n; i++) {
        if (cache[i].map_size >= need && (best == CACHE_SLOTS || entry_fits_better(i, best, reach)))
            best = i;
        if (largest == CACHE_SLOTS || cache[i].map_size > cache[largest].map_size)
            largest = i;
    }
    if (best == CACHE_SLOTS)
        best = largest;
    char *h = NULL;
    size_t size = 0, reached = 0, reused = 0;
    piece_t pieces[CACHE_SLOTS];
    unsigned n_pieces = 0;
    if (best != CACHE_SLOTS) {
        piece_t base = cache_remove(best, need);
        h = base.h;
        size = base.size;
        reached = base.touched;
        *thp = base.thp;
        reused = size;
        if (size < need)
            n_pieces = cache_gather(need - size, pieces);
        for (unsigned i = 0; i < n_pieces; i++)
            reused += pieces[i].size;
    }
    cache_learn(need, reused);
    expiry_learn(need, reused);
    if (reused) {
        hak_stat_add(HAK_STAT_HUGE_REUSED, 1);
        hak_stat_add(HAK_STAT_HUGE_REUSED_BYTES, reused);
    }
    hak_unlock(&hak_huge_lock);
    if (h == NULL)
        return NULL;
    size_t filled = size;
    if (size < need) {
        char *grown = mapping_grow(h, size, need, HAK_SS_SIZE, 0, thp);
        if (grown == NULL) {
            /* mremap takes one VMA: a mapping pieces were moved into
             * before moves chunk by chunk onto a new one. */
            grown = hak_region_map_new(need, HAK_SS_SIZE, 0, true, HAK_REGION_HUGE_BODY);
            if (grown == NULL)
                mapping_unmap(h, size);
            else
                filled = pages_move(h, size, grown);
            reached = reached < filled ? reached : filled;
        }
        h = grown;
        /* The grown part takes the pieces' pages, one after another, while
         * they move whole: what held counts is one run from the start. */
        bool placing = h != NULL && filled == size;
        for (unsigned i = 0; i < n_pieces; i++) {
            piece_t *q = &pieces[i];
            if (!placing) {
                mapping_unmap(q->h, q->size);
                continue;
            }
            if (!thp_none(q->thp))          /* one VMA, for mremap */
                hak_os_huge_pages(q->h, q->size, false);
            size_t moved = pages_move(q->h, q->size, h + filled);
            if (reached == filled)          /* written pages run on into the piece's */
                reached = filled + (q->touched < moved ? q->touched : moved);
            filled += moved;
            placing = moved == q->size;
        }
        if (h == NULL)
            return NULL;
        hak_pool_yield_room(need - filled);
    }
    *held = filled;
    *touched = reached;
    return h;
}

/* The mapping [h, h + size) grown to need bytes over a cached mapping that
 * starts right above it: those chunks are ours, mapped and maybe still
 * resident, so the block takes them with no system call.  A buffer grown by
 * realloc step by step finds there the spare chunks its previous
 * incarnation left in the cache (cache_take split them off); growing with
 * mremap instead failed on them, moved the block and faulted the next
 * steps in.  What the entry holds beyond need stays cached.  False if no
 * entry above holds enough. */
static bool cache_take_above(char *h, size_t size, size_t need, size_t *touched, thp_range_t *thp)
{
    bool took = false;
    hak_lock(&hak_huge_lock);
    for (unsigned i = 0; i < cache_n; i++) {
        if (cache[i].h != h + size || size + cache[i].map_size < need)
            continue;
        size_t rest = size + cache[i].map_size - need, grow = need - size;
        size_t reached = cache[i].touched;
        uint64_t freed_ms = cache[i].freed_ms;
        thp_range_t entry = cache[i].thp;
        cache_bytes -= cache[i].map_size;
        cache[i] = cache[--cache_n];
        if (rest != 0)                                  /* a slot was just freed */
            cache_add(h + need, rest, reached > grow ? reached - grow : 0,
                      thp_above(entry, grow), freed_ms);
        *thp = thp_join(*thp, thp_below(entry, grow), size);
        if (*touched >= size)       /* the block's written pages run on into the entry's */
            *touched = size + (reached < grow ? reached : grow);
        hak_stat_add(HAK_STAT_HUGE_REUSED, 1);
        hak_stat_add(HAK_STAT_HUGE_REUSED_BYTES, need - size);
        took = true;
        break;
    }
    hak_unlock(&hak_huge_lock);
    return took;
}

/* Whether a cached mapping holds need bytes: a block that has to grow past
 * its mapping is then better copied into it (realloc's copy, which caches the
 * block's old mapping with its pages) than grown with fresh pages, each of
 * which faults in: about 20 us a page on this VM against 0.3 us to copy one.
 * Moving the block's pages onto the cached mapping's start instead (mremap)
 * copied nothing, but threw away the cached pages it replaced: bench/
 * realloc_grow 56k page faults and 1.95 s, against 13k and 0.50 s copying. */
static bool cache_holds(size_t need)
{
    bool holds = false;
    hak_lock(&hak_huge_lock);
    for (unsigned i = 0; i < cache_n && !holds; i++)
        holds = cache[i].map_size >= need;
    hak_unlock(&hak_huge_lock);
    return holds;
}

/* Keeps a freed mapping for reuse, blocks having written its first touched
 * bytes; false if it does not fit the cache. */
static bool cache_put(char *h, size_t map_size, size_t touched, thp_range_t thp)
{
    bool kept = false;
    if (map_size > CACHE_MAX_BLOCK)
        return false;
    hak_lock(&hak_huge_lock);
    ghost[ghost_next++ % GHOSTS] = map_size;
    cache_expire(false, false);
    /* Pieces of one mapping join again (the spare chunks split off when it
     * was taken, above it): one entry that fits bigger blocks.  Neighbours
     * from two mappings may join too; growing such an entry with mremap
     * fails and falls back to a new mapping. */
    for (unsigned i = 0; i < cache_n;) {
        if (cache[i].h == h + map_size || cache[i].h + cache[i].map_size == h) {
            /* the joined entry's written pages: the lower part's, and the
             * upper part's too where the lower part is written whole */
            if (cache[i].h < h) {
                touched = cache[i].touched < cache[i].map_size ? cache[i].touched
                                                               : cache[i].map_size + touched;
                thp = thp_join(cache[i].thp, thp, cache[i].map_size);
                h = cache[i].h;
            } else {
                if (touched >= map_size)
                    touched = map_size + cache[i].touched;
                thp = thp_join(thp, cache[i].thp, map_size);
            }
            map_size += cache[i].map_size;
            cache_bytes -= cache[i].map_size;
            cache[i] = cache[--cache_n];
            i = 0;
        } else {
            i++;
        }
    }
    cache_cap_fixed();
    /* The oldest make room: the newest is the likeliest to be reused. */
    while (cache_n > 0 && (cache_n == CACHE_SLOTS || cache_bytes + map_size > cache_cap)) {
        unsigned old = 0;
        for (unsigned i = 1; i < cache_n; i++)
            if (cache[i].freed_ms < cache[old].freed_ms)
                old = i;
        evicted[evicted_next++ % GHOSTS] = cache[old].map_size;
        cache_drop(old);
    }
    if (cache_n < CACHE_SLOTS && cache_bytes + map_size <= cache_cap) {
        cache_add(h, map_size, touched, thp, hak_now_ms());
        if (epoch.used < cache_bytes)
            epoch.used = cache_bytes;
        kept = true;
    }
    hak_unlock(&hak_huge_lock);
    if (kept)
        hak_background_wake();
    return kept;
}

uint64_t hak_huge_release(void)
{
    uint64_t next = HAK_NEVER;
    hak_lock(&hak_huge_lock);
    size_t before = cache_bytes;
    cache_expire(false, true);
    hak_stat_add(HAK_STAT_BG_RELEASED, before - cache_bytes);
    uint64_t now = hak_now_ms(), retain = hak_retain_ms();
    for (unsigned i = 0; i < cache_n; i++)
        if (cache[i].freed_ms + retain - now < next)
            next = cache[i].freed_ms + retain - now;
    hak_unlock(&hak_huge_lock);
    return next;
}

int hak_huge_trim(void)
{
    hak_lock(&hak_huge_lock);
    int released = cache_n != 0;
    cache_expire(true, false);
    hak_unlock(&hak_huge_lock);
    return released;
}

void *hak_huge_alloc(size_t n, size_t align, bool zero)
{
    hak_background_poke();
    if (align < 16)
        align = 16;
    size_t off = align <= 64 ? 64 : (align < HAK_SS_SIZE ? align : HAK_SS_SIZE);
    if (n > (SIZE_MAX >> 1) - off) {
        errno = ENOMEM;
        return NULL;
    }
    /* At least one byte, so that the block starts inside its mapping even
     * for size 0 at an offset of a whole chunk (alignment >= 4 MiB). */
    size_t map_size = round_up(off + (n ? n : 1), HAK_SS_SIZE);
    char *h = NULL;
    size_t held, touched = 0, reach = round_up(off + n, HAK_OS_PAGE);   /* the block's end */
    thp_range_t thp = { 0, 0 };
    if (off == 64 && (h = cache_take(map_size, reach, &held, &touched, &thp)) != NULL) {
        /* calloc: what the cache held is zeroed here, what a growth added
         * is zero untouched and, as a fresh mapping's, left on small pages
         * (below). */
        size_t dirty = zero && held - off < n ? held - off : n;
        huge_pages_mark(h, off, dirty, map_size, false, &thp);
        if (zero)
            memset(h + off, 0, dirty);
        if (n > HAK_MID_MAX) {
            hak_band_count(hak_band_of(n), HAK_BAND_REUSED, 1);
            if (reach > touched)
                hak_band_count(hak_band_of(n), HAK_BAND_FRESH, reach - touched);
        }
    } else {
        h = align > HAK_SS_SIZE
                ? hak_region_map_new(map_size, align, HAK_SS_SIZE, false, HAK_REGION_HUGE_BODY)
                : hak_region_map_new(map_size, HAK_SS_SIZE, 0, false, HAK_REGION_HUGE_BODY);
        if (h == NULL)
            return NULL;
        /* Not for calloc: a fresh mapping is zero untouched, and a program
         * that callocs a big table it uses sparsely would have every page
         * it touches backed by 2 MiB. */
        if (!zero)
            huge_pages_mark(h, off, n, map_size, true, &thp);
        /* What the block can make resident, not its whole chunks: a 600
         * KiB block in a 4 MiB mapping purged 4 MiB of pool pages. */
        hak_pool_yield_room(reach);
        if (n > HAK_MID_MAX)            /* (aligned blocks may be smaller) */
            hak_band_count(hak_band_of(n), HAK_BAND_FRESH, reach - off);
    }
    huge_hdr_t *hdr = (huge_hdr_t *)h;
    hdr->magic = HUGE_MAGIC;
    hdr->align = align;
    hdr->map_size = map_size;
    hdr->user = h + off;
    hdr->usable = reach - off;
    hdr->asked = n;
    hdr->touched = reach > touched ? reach : touched;
    hdr->thp = thp;
    map_mark(h, map_size, hdr->user);
    hak_stat_add(HAK_STAT_HUGE_BLOCKS, 1);
    huge_bytes_changed(hdr->usable);
    return hdr->user;
}

void hak_huge_free(void *p, const char *call)
{
    huge_hdr_t *h = huge_header(p);
    if (h == NULL)
        hak_fatal(call, "invalid pointer", p);
    size_t map_size = h->map_size, usable = h->usable;
    unsigned long calls = hak_os_calls;
    hak_stat_add(HAK_STAT_HUGE_BLOCKS, (size_t)-1);
    huge_bytes_changed((size_t)0 - usable);
    h->magic = 0;                   /* now no pointer names this header */
    if (h->align > 64 || !cache_put((char *)h, map_size, h->touched, h->thp))
        mapping_unmap((char *)h, map_size);
    if (usable > HAK_MID_MAX)
        hak_band_count(hak_band_of(usable), HAK_BAND_OS_CALLS, hak_os_calls - calls);
}

size_t hak_huge_cached(void) { return atomic_load_explicit(&cache_bytes, memory_order_relaxed); }

/* The bytes asked for of Huge block p (a valid one), and a new figure for
 * them: check mode asks for more than the program did, for a guard. */
size_t hak_huge_asked(const void *p) { return huge_header(p)->asked; }
void hak_huge_set_asked(void *p, size_t n) { huge_header(p)->asked = n; }

size_t hak_huge_usable(const void *p)
{
    huge_hdr_t *h = huge_header(p);
    return h ? h->usable : 0;
}

bool hak_huge_owns(const void *p) { return huge_header(p) != NULL; }

/* The Huge block holding address p, as its start and the bytes asked for:
 * false if p is in a Huge mapping but not in those bytes, or in none. */
bool hak_huge_extent(const void *p, char **user, size_t *asked)
{
    uintptr_t chunk = (uintptr_t)p & ~(uintptr_t)HAK_SS_MASK;
    for (;; chunk -= HAK_SS_SIZE) {
        unsigned kind = hak_region_of(chunk);
        if (kind == HAK_REGION_HUGE_BODY)
            continue;
        if (kind != HAK_REGION_HUGE_HEAD && kind != HAK_REGION_HUGE_PREV)
            return false;
        const huge_hdr_t *h = (const huge_hdr_t *)(kind == HAK_REGION_HUGE_HEAD ? chunk : chunk - HAK_SS_SIZE);
        if (h->magic != HUGE_MAGIC || (const char *)p < h->user || (const char *)p >= h->user + h->asked)
            return false;
        *user = h->user;
        *asked = h->asked;
        return true;
    }
}

/* Resizes a Huge block without copying where that costs no page faults:
 * shrinks in place (unmapping whole chunks no longer needed); grows over a
 * cached mapping right above it, or else, if the cache holds a mapping big
 * enough, leaves the block to be copied into it; or else grows in place if
 * the address space above is free, or moves the pages (mremap) to a new
 * region aligned as the block was.  Returns the block, or NULL if it has to
 * be copied. */
void *hak_huge_realloc(void *p, size_t n)
{
    huge_hdr_t *h = huge_header(p);
    size_t off = (size_t)(h->user - (char *)h);
    if (n > (SIZE_MAX >> 1) - off)
        return NULL;
    size_t need = round_up(off + n, HAK_SS_SIZE);
    size_t usable = round_up(off + n, HAK_OS_PAGE) - off;
    /* The huge-page flags change only with the mapping or with the 2 MiB
     * pages the block covers whole: a buffer grown a page at a time would
     * otherwise make two madvise calls per step. */
    bool remark = need != h->map_size ||
                  ((off + n) & ~(THP_SIZE - 1)) != ((off + h->asked) & ~(THP_SIZE - 1));
    if (need > h->map_size && cache_take_above((char *)h, h->map_size, need, &h->touched, &h->thp)) {
        h->map_size = need;
        map_mark((char *)h, need, h->user);
    } else if (need > h->map_size && h->align <= 64 && cache_holds(need)) {
        return NULL;                    /* copied into the cached mapping */
    } else if (need > h->map_size) {
        size_t align = h->align > HAK_SS_SIZE ? h->align : HAK_SS_SIZE;
        thp_range_t thp = h->thp;
        char *grown = mapping_grow((char *)h, h->map_size, need, align,
                                   h->align > HAK_SS_SIZE ? HAK_SS_SIZE : 0, &thp);
        if (grown == NULL) {
            h->thp = thp;
            return NULL;
        }
        h = (huge_hdr_t *)grown;
        h->thp = thp;
        h->user = grown + off;
        h->map_size = need;
        map_mark(grown, need, h->user);
    } else if (need < h->map_size) {
        mapping_unmap((char *)h + need, h->map_size - need);
        h->map_size = need;
        h->touched = h->touched < need ? h->touched : need;
        h->thp = thp_below(h->thp, need);
    }
    if (remark)
        huge_pages_mark((char *)h, off, n, h->map_size, false, &h->thp);
    huge_bytes_changed(usable - h->usable);
    h->usable = usable;
    h->asked = n;
    if (h->touched < off + usable)
        h->touched = off + usable;
    return h->user;
}
