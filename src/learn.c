/* ELO: size bands of big blocks, and where two of them are placed.
 *
 * Mallocs of more than 64 KiB are counted per size band, one per doubling
 * (64-128 KiB, ..., 16-32 MiB, then everything bigger): how many and their
 * bytes, how many a cache served (a heap's Large cache, the Huge cache), the
 * bytes handed out from pages that were not resident (each page a fault at
 * its first touch), the system calls their mallocs and Huge frees made, and
 * the bytes of cached Huge mappings of the band's size that the background
 * thread unmapped.
 *
 * Blocks of 512 KiB to 2 MiB may live in either of two places: a Large slab
 * of SuperSlab pages, whose freed pages serve any size and are purged page
 * by page, or a mapping of their own, whose freed mappings wait in the Huge
 * cache for blocks of about their size and can grow in place by realloc.
 * Mappings start in force: measured against Large slabs (docs/BENCHMARKS.md)
 * they were as fast or faster on every workload tried and leaner on most
 * (a 1.9 MiB buffer freed before a kept 100 KiB block, which as Large slabs
 * takes pages of the freed run so that the next buffer faults in fresh
 * ones: 0.32 s against 0.54, half the peak RSS).  They lose where the Huge
 * cache cannot keep what the band frees (its capacity, its 32 entries, each
 * a whole 4 MiB chunk) while pool pages could.  So each of the two bands
 * keeps ELO ratings of the two places, as two players.  The incumbent (the
 * better rated) places the band's blocks, in epochs of EPOCH allocations.
 * A trial of the challenger costs: it starts cold, and what it faults in
 * before its cache fills may be all it hands out.  So the challenger is
 * tried only once the incumbent has paid for it: after at least
 * EXPLORE_GAP epochs, when the incumbent's churn since the last trial (its
 * faults, counted in 4 KiB pages, and system calls, beyond what the bytes
 * in slabs and Huge blocks grew by: growth is paid in either place) adds up
 * to TRIAL_COST epochs' bytes, and its last epoch churned at that rate too.
 * (Trials every 8 epochs regardless, on bench/comprehensive, whose 1-2 MiB
 * blocks fault in 1% of their bytes in either place: 137k page faults
 * against 82k without.)  The challenger places two epochs, the first to fill
 * its cache, the second scored, and the scored epoch and the incumbent's
 * last play a match:
 *   time: page-sized faults to come (bytes not resident / 4 KiB) plus system
 *         calls, per epoch; the lower wins if it is lower by a tenth and by
 *         half a fault per allocation;
 *   else memory: the bytes HAKMEM may have resident (SuperSlab pages not
 *         purged, live and cached Huge mappings) on average at the epoch's
 *         allocations; the lower by a twentieth and 1 MiB wins;
 *   else a draw.
 * The winner takes K * (score - expected) points from the loser (expected
 * from the rating difference on the usual logistic curve, 400 points for
 * odds of 10 to 1); the challenger becomes the incumbent once it is rated
 * above it.  The further apart the ratings, the rarer the trials (up to 8
 * times).  Everything here runs in the slow paths of big mallocs: counters
 * are relaxed atomics, an epoch's end takes the band's lock.
 * HAKMEM_MAP_THRESHOLD_KB fixes the placement instead.  A mapping the OS
 * refuses (address space or commit limits: it takes a whole 4 MiB chunk)
 * leaves the block to a Large slab (heap.c).
 */
#include <errno.h>
#include "hakmem.h"
#include "types.h"

#define EPOCH 32            /* a band's allocations per epoch                 */
#define EXPLORE_GAP 16      /* incumbent epochs between trials, at equal ratings */
#define ELO_K 32
#define TRIAL_COST 2        /* epochs' bytes a trial may fault in: its two epochs */
#define FIRST_LEARNED 3     /* 512 KiB - 1 MiB and 1 - 2 MiB                  */
#define LAST_LEARNED 4

enum { TRIAL_NONE, TRIAL_WARM, TRIAL_SCORED };

typedef struct {
    _Atomic size_t n[HAK_BAND_NSTAT];
    _Atomic size_t held_sum;            /* bytes resident, summed at allocations */
    _Atomic int arm;                    /* HAK_ARM_* placing the band's blocks now */
    hak_lock_t lock;                    /* the fields below                       */
    int rating[HAK_ARMS];               /* above or below HAK_ELO_START: 0 at first */
    int incumbent;                      /* HAK_ARM_MAP (0) at first                */
    int trial;                          /* TRIAL_*                                 */
    unsigned played;                    /* incumbent epochs since the last trial   */
    size_t switches, matches;
    size_t mark_cost, mark_held, mark_bytes;  /* figures at the epoch's start     */
    size_t used_then;                   /* bytes in slabs and Huge blocks then    */
    size_t played_cost, played_bytes;   /* of the incumbent since the last trial  */
    struct { size_t cost, held; } last[HAK_ARMS];   /* each place's last scored epoch */
} band_t;

static band_t bands[HAK_NBANDS];

static bool band_learned(unsigned b) { return b >= FIRST_LEARNED && b <= LAST_LEARNED; }

/* Fork: the bands' locks are held across it (init.c), so that a child never
 * inherits a match half played. */
void hak_band_lock_all(void)
{
    for (unsigned b = 0; b < HAK_NBANDS; b++)
        hak_lock(&bands[b].lock);
}

void hak_band_unlock_all(bool child)
{
    for (unsigned b = 0; b < HAK_NBANDS; b++) {
        if (child)
            hak_lock_reset(&bands[b].lock);
        else
            hak_unlock(&bands[b].lock);
    }
}

void hak_band_count(unsigned b, int stat, size_t v)
{
    atomic_fetch_add_explicit(&bands[b].n[stat], v, memory_order_relaxed);
}

bool hak_band_maps(size_t n)
{
    long fixed = hak_option(HAK_OPT_MAP_THRESHOLD_KB);
    if (fixed != 0)
        return n > (size_t)fixed << 10;
    unsigned b = hak_band_of(n);
    return band_learned(b) &&
           atomic_load_explicit(&bands[b].arm, memory_order_relaxed) == HAK_ARM_MAP;
}

/* The expected score of a player rated d points above the other, in
 * thousandths: 1000 / (1 + 10^(-d/400)), at every 50 points from 0 to 800. */
static const int expected_permille[17] = {
    500, 571, 640, 703, 760, 808, 849, 882, 909, 930, 947, 959, 969, 977, 983, 987, 990,
};
static int expected(int d)
{
    int a = d < 0 ? -d : d;
    int e = expected_permille[a / 50 < 16 ? a / 50 : 16];
    return d < 0 ? 1000 - e : e;
}

/* +1 if the epoch (ca, ha) beats (cb, hb), -1 if it loses, 0 a draw. */
static int outcome(size_t ca, size_t ha, size_t cb, size_t hb)
{
    size_t tmargin = (ca > cb ? ca : cb) / 10 + EPOCH / 2;
    if (ca + tmargin < cb)
        return 1;
    if (cb + tmargin < ca)
        return -1;
    size_t hmargin = (ha > hb ? ha : hb) / 20 + ((size_t)1 << 20);
    if (ha + hmargin < hb)
        return 1;
    if (hb + hmargin < ha)
        return -1;
    return 0;
}

/* A match of the challenger's scored epoch against the incumbent's last. */
static void play(band_t *s)
{
    int ch = 1 - s->incumbent, inc = s->incumbent;
    int r = outcome(s->last[ch].cost, s->last[ch].held, s->last[inc].cost, s->last[inc].held);
    int delta = ELO_K * ((r + 1) * 500 - expected(s->rating[ch] - s->rating[inc])) / 1000;
    s->rating[ch] += delta;
    s->rating[inc] -= delta;
    hak_assert(s->rating[HAK_ARM_LARGE] + s->rating[HAK_ARM_MAP] == 0);
    s->matches++;
    if (s->rating[ch] > s->rating[inc]) {
        s->incumbent = ch;
        s->switches++;
    }
}

/* Whether faults and calls (cost) made for bytes, over epochs epochs, add up
 * to what a trial may cost: TRIAL_COST epochs' bytes, all faulted in. */
static bool paying(size_t cost, size_t bytes, unsigned epochs)
{
    return cost * HAK_OS_PAGE * epochs >= bytes * TRIAL_COST;
}

/* The band's epoch ended: score it and choose who places the next. */
static void epoch_end(band_t *s)
{
    size_t used = atomic_load_explicit(&hak_stat[HAK_STAT_IN_SLABS], memory_order_relaxed) +
                  atomic_load_explicit(&hak_stat[HAK_STAT_HUGE_BYTES], memory_order_relaxed);
    size_t cost = atomic_load_explicit(&s->n[HAK_BAND_FRESH], memory_order_relaxed) / HAK_OS_PAGE +
                  atomic_load_explicit(&s->n[HAK_BAND_OS_CALLS], memory_order_relaxed);
    size_t held = atomic_load_explicit(&s->held_sum, memory_order_relaxed);
    size_t bytes = atomic_load_explicit(&s->n[HAK_BAND_BYTES], memory_order_relaxed);
    size_t ecost = cost - s->mark_cost, eheld = (held - s->mark_held) / EPOCH;
    size_t ebytes = bytes - s->mark_bytes;
    s->mark_cost = cost;
    s->mark_held = held;
    s->mark_bytes = bytes;
    /* Faults beyond what the bytes in slabs and Huge blocks grew by: churn,
     * which a better place may spare, where growth is paid in either. */
    size_t grown = used > s->used_then ? (used - s->used_then) / HAK_OS_PAGE : 0;
    size_t churn = ecost > grown ? ecost - grown : 0;
    s->used_then = used;
    int arm = atomic_load_explicit(&s->arm, memory_order_relaxed);
    switch (s->trial) {
    case TRIAL_NONE: {
        s->last[arm].cost = ecost;
        s->last[arm].held = eheld;
        s->played_cost += churn;
        s->played_bytes += ebytes;
        int gap = s->rating[arm] - s->rating[1 - arm];
        unsigned shift = gap <= 0 ? 0 : gap / 50 < 3 ? (unsigned)gap / 50 : 3;
        if (++s->played >= (unsigned)EXPLORE_GAP << shift &&
            paying(s->played_cost, s->played_bytes, s->played) &&
            paying(churn, ebytes, s->played)) {
            s->trial = TRIAL_WARM;
            arm = 1 - arm;
        }
        break;
    }
    case TRIAL_WARM:
        s->trial = TRIAL_SCORED;
        break;
    default:
        s->last[arm].cost = ecost;
        s->last[arm].held = eheld;
        play(s);
        s->trial = TRIAL_NONE;
        s->played = 0;
        s->played_cost = s->played_bytes = 0;
        arm = s->incumbent;
        break;
    }
    atomic_store_explicit(&s->arm, arm, memory_order_relaxed);
}

void hak_band_allocated(size_t n, unsigned long calls_before)
{
    band_t *s = &bands[hak_band_of(n)];
    if (hak_os_calls != calls_before)
        atomic_fetch_add_explicit(&s->n[HAK_BAND_OS_CALLS], hak_os_calls - calls_before,
                                  memory_order_relaxed);
    size_t held = hak_committed_now() + hak_huge_cached();
    atomic_fetch_add_explicit(&s->held_sum, held, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->n[HAK_BAND_BYTES], n, memory_order_relaxed);
    size_t k = atomic_fetch_add_explicit(&s->n[HAK_BAND_ALLOCS], 1, memory_order_relaxed) + 1;
    if (k % EPOCH != 0 || !band_learned((unsigned)(s - bands)) ||
        hak_option(HAK_OPT_MAP_THRESHOLD_KB) != 0)
        return;
    hak_lock(&s->lock);
    epoch_end(s);
    hak_unlock(&s->lock);
}

int hak_stats_band(int band, struct hak_band_stats *out)
{
    hak_init();
    if (band < 0 || band >= HAK_NBANDS) {
        errno = EINVAL;
        return -1;
    }
    band_t *s = &bands[band];
    out->size_min = HAK_BAND_MIN << band;
    out->size_max = band == HAK_NBANDS - 1 ? 0 : HAK_BAND_MIN << (band + 1);
    long fixed = hak_option(HAK_OPT_MAP_THRESHOLD_KB);
    out->learned = fixed == 0 && band_learned((unsigned)band);
    out->maps = out->size_min >= HAK_LARGE_MAX ||
                (fixed != 0 ? out->size_min >= (size_t)fixed << 10
                            : out->learned && atomic_load(&s->arm) == HAK_ARM_MAP);
    hak_lock(&s->lock);
    out->rating_large = HAK_ELO_START + s->rating[HAK_ARM_LARGE];
    out->rating_map = HAK_ELO_START + s->rating[HAK_ARM_MAP];
    out->switches = s->switches;
    out->matches = s->matches;
    hak_unlock(&s->lock);
    out->allocs = atomic_load(&s->n[HAK_BAND_ALLOCS]);
    out->bytes = atomic_load(&s->n[HAK_BAND_BYTES]);
    out->reused = atomic_load(&s->n[HAK_BAND_REUSED]);
    out->fresh_bytes = atomic_load(&s->n[HAK_BAND_FRESH]);
    out->os_calls = atomic_load(&s->n[HAK_BAND_OS_CALLS]);
    out->released_bytes = atomic_load(&s->n[HAK_BAND_RELEASED]);
    return 0;
}
