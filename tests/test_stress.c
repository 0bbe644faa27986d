/* Multithreaded stress of the malloc family across all four tiers.
 *
 * Many threads at once (32 by default, far more than the cores) run random
 * mixes of malloc, calloc, posix_memalign, realloc and free over sizes in
 * every tier (mostly Tiny, some Mid, a few Large, very few Huge).  Every block
 * carries a pattern computed from its own 64-bit cookie and its byte offsets;
 * the whole block is verified when it is freed, and the preserved prefix when
 * it is reallocated, so lost writes, overlapping blocks, a block handed out
 * twice or moved contents all show up as pattern errors.  calloc'd blocks are
 * checked to be all zero before they are written.
 *
 * Blocks move between threads through a shared transfer array: a thread swaps
 * one of its blocks into a random slot and takes out whatever was there,
 * which it either verifies and frees or keeps (and later reallocates or frees).
 * Threads are short-lived: each runs a fixed number of operations, then frees
 * half of its blocks and leaves the other half in the transfer array, where
 * they outlive it and are freed by later threads (or by main at the end).
 * Main joins the threads one after the other and starts a replacement for
 * each (a "wave" is one pass over all thread slots) until the time is up.
 *
 * Standard names only (malloc/free/realloc/calloc/posix_memalign): linked
 * against HAKMEM they are HAKMEM.
 *
 *   test_stress [seconds [threads]]      default 8 s, 32 threads
 *   HAKTEST_STRESS_SECONDS, HAKTEST_STRESS_THREADS do the same.
 *
 * The duration only decides how many waves run; every checked property is
 * deterministic: no pattern errors, no non-zero calloc memory, no NULL
 * returns, every block allocated is freed, every thread created is joined. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

#define MAX_THREADS 256
#define LOCAL_SLOTS 64          /* blocks a thread holds */
#define TRANSFER_SLOTS 1024     /* shared hand-over array */
#define MAX_SERIAL (1u << 22)   /* threads we can remember as exited */

/* ------------------------------------------------------------ randomness */

static inline uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x ? x : 1;
}

/* roughly log-uniform in [lo, hi] (lo >= 1) */
static size_t rnd_size(uint64_t *r, size_t lo, size_t hi)
{
    int lb = 63 - __builtin_clzll(lo), hb = 63 - __builtin_clzll(hi);
    int b = lb + (int)(rnd(r) % (uint64_t)(hb - lb + 1));
    size_t base = (size_t)1 << b;
    size_t s = base + (size_t)(rnd(r) % base);
    return s < lo ? lo : s > hi ? hi : s;
}

enum { TINY, MID, LARGE, HUGE_T, NTIERS };
static const char *const tier_name[NTIERS] = { "tiny", "mid", "large", "huge" };

static int tier_of(size_t s)
{
    return s <= 1 * KiB ? TINY : s <= 64 * KiB ? MID : s <= 2 * MiB ? LARGE : HUGE_T;
}

/* 84.8% Tiny (a few of them 0 bytes), 11% Mid, 4% Large, 0.2% Huge */
static size_t pick_size(uint64_t *r)
{
    unsigned d = (unsigned)(rnd(r) % 1000);
    if (d < 2) return 0;
    if (d < 850) return rnd_size(r, 1, 1 * KiB);
    if (d < 960) return rnd_size(r, 1 * KiB + 1, 64 * KiB);
    if (d < 998) return rnd_size(r, 64 * KiB + 1, 2 * MiB);
    return rnd_size(r, 2 * MiB + 1, 6 * MiB);
}

/* ---------------------------------------------------------------- pattern */

/* Byte i of a block holds byte (i & 7) of pat_word(cookie, i / 8). */
static inline uint64_t pat_word(uint64_t cookie, size_t w)
{
    uint64_t x = (cookie + w) * 0xFF51AFD7ED558CCDull;
    return x ^ (x >> 33);
}

static inline unsigned char pat_byte(uint64_t cookie, size_t i)
{
    return (unsigned char)(pat_word(cookie, i >> 3) >> ((i & 7) * 8));
}

static void pat_fill(unsigned char *p, size_t lo, size_t hi, uint64_t cookie)
{
    size_t i = lo;
    for (; i < hi && (i & 7); i++) p[i] = pat_byte(cookie, i);
    for (; i + 8 <= hi; i += 8) {
        uint64_t v = pat_word(cookie, i >> 3);
        memcpy(p + i, &v, 8);
    }
    for (; i < hi; i++) p[i] = pat_byte(cookie, i);
}

/* offset of the first wrong byte in [0, n), or SIZE_MAX */
static size_t pat_first_bad(const unsigned char *p, size_t n, uint64_t cookie)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = pat_word(cookie, i >> 3);
        if (memcmp(p + i, &v, 8) != 0) break;
    }
    for (; i < n; i++)
        if (p[i] != pat_byte(cookie, i)) return i;
    return SIZE_MAX;
}

/* --------------------------------------------------------------- counters */

struct stats {
    long allocs, frees, reallocs, callocs, aligned, realloc_null;
    long given, taken, orphan_frees, orphan_reallocs;
    long nulls, pattern_errors, calloc_dirty, misaligned, short_usable;
    long tier[NTIERS];
};

static struct stats g_tot;
static pthread_mutex_t g_tot_mu = PTHREAD_MUTEX_INITIALIZER;

static void stats_merge(const struct stats *s)
{
    pthread_mutex_lock(&g_tot_mu);
    long *d = (long *)&g_tot;
    const long *a = (const long *)s;
    for (size_t i = 0; i < sizeof(struct stats) / sizeof(long); i++) d[i] += a[i];
    pthread_mutex_unlock(&g_tot_mu);
}

static atomic_long g_reports;

static void report(const char *what, const void *p, size_t size, uint64_t cookie, size_t off)
{
    if (atomic_fetch_add(&g_reports, 1) >= 20) return;
    if (off != SIZE_MAX)
        fprintf(stderr, "  %s: block %p size %zu cookie %016llx: byte %zu is %02x, expected %02x\n",
                what, p, size, (unsigned long long)cookie, off, ((const unsigned char *)p)[off],
                pat_byte(cookie, off));
    else
        fprintf(stderr, "  %s: block %p size %zu cookie %016llx\n", what, p, size,
                (unsigned long long)cookie);
}

/* ----------------------------------------------------------------- blocks */

struct blk {
    unsigned char *p;
    size_t size;
    uint64_t cookie;
    unsigned owner;     /* serial of the thread that allocated it */
};

/* main sets g_exited[serial] after joining that thread */
static _Atomic unsigned char g_exited[MAX_SERIAL];

static int owner_exited(const struct blk *b)
{
    return b->owner < MAX_SERIAL &&
           atomic_load_explicit(&g_exited[b->owner], memory_order_acquire);
}

static void blk_check(const struct blk *b, size_t n, const char *where, struct stats *st)
{
    size_t bad = pat_first_bad(b->p, n, b->cookie);
    if (bad != SIZE_MAX) {
        st->pattern_errors++;
        report(where, b->p, b->size, b->cookie, bad);
    }
}

static void blk_free(struct blk *b, const char *where, struct stats *st)
{
    blk_check(b, b->size, where, st);
    if (owner_exited(b)) st->orphan_frees++;
    free(b->p);
    st->frees++;
    b->p = NULL;
}

struct worker {
    pthread_t th;
    unsigned serial;
    long ops;
    int running;
    uint64_t rng;
    uint64_t next_cookie;
    struct stats st;
};

static void check_new(const struct blk *b, size_t align, struct stats *st)
{
    if ((uintptr_t)b->p & (align - 1)) {
        st->misaligned++;
        report("misaligned block", b->p, b->size, align, SIZE_MAX);
    }
    if (malloc_usable_size(b->p) < b->size) {
        st->short_usable++;
        report("usable size below request", b->p, b->size, b->cookie, SIZE_MAX);
    }
}

/* Allocate a fresh block into b (empty) with one of the allocation calls. */
static void blk_alloc(struct worker *w, struct blk *b)
{
    struct stats *st = &w->st;
    size_t size = pick_size(&w->rng);
    unsigned d = (unsigned)(rnd(&w->rng) % 100);
    void *p = NULL;
    size_t align = size >= 16 ? 16 : 8;
    int zeroed = 0;

    if (d < 65) {
        p = malloc(size);
    } else if (d < 82) {
        /* split into count x elem when it divides evenly */
        size_t elem = (size % 16 == 0 && size) ? 16 : 1;
        p = calloc(size / elem ? size / elem : 1, size ? elem : 0);
        zeroed = 1;
        st->callocs++;
    } else if (d < 95) {
        align = (size_t)16 << (rnd(&w->rng) % 13);      /* 16 .. 64 KiB */
        if (posix_memalign(&p, align, size) != 0) p = NULL;
        st->aligned++;
    } else {
        p = realloc(NULL, size);
    }
    if (!p) {
        st->nulls++;
        return;
    }
    b->p = p;
    b->size = size;
    b->cookie = mix64(w->next_cookie++);
    b->owner = w->serial;
    st->allocs++;
    st->tier[tier_of(size)]++;
    check_new(b, align, st);
    if (zeroed) {
        for (size_t i = 0; i < size; i++)
            if (b->p[i]) {
                st->calloc_dirty++;
                report("calloc not zeroed", b->p, size, 0, SIZE_MAX);
                break;
            }
    }
    pat_fill(b->p, 0, size, b->cookie);
}

/* Resize b in place or elsewhere; the prefix must survive. */
static void blk_realloc(struct worker *w, struct blk *b)
{
    struct stats *st = &w->st;
    size_t ns;
    if (rnd(&w->rng) & 1) {                 /* near the current size */
        size_t q = b->size / 4 + 1;
        ns = b->size - q / 2 + (size_t)(rnd(&w->rng) % (q + 1));
        if (ns == 0) ns = 1;
    } else {                                /* anywhere, often another tier */
        ns = pick_size(&w->rng);
        if (ns == 0) ns = 1;                /* realloc(p, 0) would free */
    }
    int orphan = owner_exited(b);
    unsigned char *np = realloc(b->p, ns);
    if (!np) {                              /* the old block stays valid */
        st->nulls++;
        return;
    }
    st->reallocs++;
    if (orphan) st->orphan_reallocs++;
    st->tier[tier_of(ns)]++;
    size_t keep = ns < b->size ? ns : b->size;
    size_t old = b->size;
    b->p = np;
    b->size = ns;
    blk_check(b, keep, "realloc lost contents", st);
    if (ns > old) pat_fill(np, old, ns, b->cookie);
    check_new(b, ns >= 16 ? 16 : 8, st);
}

/* ------------------------------------------------------- transfer array */

struct xslot {
    pthread_mutex_t mu;
    struct blk b;
};
static struct xslot g_xfer[TRANSFER_SLOTS];

static struct blk xfer_swap(size_t i, struct blk in)
{
    struct xslot *s = &g_xfer[i % TRANSFER_SLOTS];
    pthread_mutex_lock(&s->mu);
    struct blk out = s->b;
    s->b = in;
    pthread_mutex_unlock(&s->mu);
    return out;
}

/* ---------------------------------------------------------------- workers */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct blk local[LOCAL_SLOTS];
    memset(local, 0, sizeof local);
    struct stats *st = &w->st;

    for (long op = 0; op < w->ops; op++) {
        struct blk *b = &local[rnd(&w->rng) % LOCAL_SLOTS];
        if (!b->p) {
            blk_alloc(w, b);
            continue;
        }
        unsigned d = (unsigned)(rnd(&w->rng) % 100);
        if (d < 33) {
            blk_free(b, "free", st);
        } else if (d < 50) {
            blk_realloc(w, b);
        } else if (d < 75) {                /* hand over, take one back */
            struct blk got = xfer_swap((size_t)rnd(&w->rng), *b);
            st->given++;
            b->p = NULL;
            if (got.p) {
                st->taken++;
                if (rnd(&w->rng) & 1) blk_free(&got, "free of a transferred block", st);
                else *b = got;
            }
        } else {                            /* replace */
            blk_free(b, "free before replace", st);
            blk_alloc(w, b);
        }
        if (d == 99) free(NULL);
    }

    /* exit: free half, leave the rest to outlive this thread */
    for (int i = 0; i < LOCAL_SLOTS; i++) {
        struct blk *b = &local[i];
        if (!b->p) continue;
        if (rnd(&w->rng) & 1) {
            blk_free(b, "free at thread exit", st);
        } else {
            struct blk got = xfer_swap((size_t)rnd(&w->rng), *b);
            st->given++;
            b->p = NULL;
            if (got.p) {
                st->taken++;
                blk_free(&got, "free of a transferred block at thread exit", st);
            }
        }
    }
    stats_merge(st);
    return NULL;
}

/* ------------------------------------------------------------------- main */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct worker g_w[MAX_THREADS];
static unsigned g_serial;
static long g_created, g_joined, g_create_failed;

static void start_worker(struct worker *w)
{
    unsigned serial = g_serial++;
    memset(w, 0, sizeof *w);
    w->serial = serial;
    w->rng = mix64(0x57E55ull ^ ((uint64_t)serial << 20));
    w->next_cookie = (uint64_t)serial << 36;
    /* every fourth thread is very short-lived */
    w->ops = (serial % 4 == 3) ? 20 + (long)(rnd(&w->rng) % 300)
                               : 400 + (long)(rnd(&w->rng) % 1600);
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    if (rc != 0) {
        g_create_failed++;
        if (g_create_failed <= 5) fprintf(stderr, "pthread_create: %s\n", strerror(rc));
        return;
    }
    w->running = 1;
    g_created++;
}

static void join_worker(struct worker *w)
{
    if (!w->running) return;
    if (pthread_join(w->th, NULL) == 0) {
        g_joined++;
        if (w->serial < MAX_SERIAL)
            atomic_store_explicit(&g_exited[w->serial], 1, memory_order_release);
    }
    w->running = 0;
}

static long arg_long(const char *s, long dflt, long lo, long hi)
{
    if (!s || !*s) return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) {
        fprintf(stderr, "bad value %s (expected %ld..%ld); using %ld\n", s, lo, hi, dflt);
        return dflt;
    }
    return v;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    long seconds = arg_long(argc > 1 ? argv[1] : getenv("HAKTEST_STRESS_SECONDS"), 8, 1, 86400);
    long nthreads = arg_long(argc > 2 ? argv[2] : getenv("HAKTEST_STRESS_THREADS"), 32, 1, MAX_THREADS);
    for (int i = 0; i < TRANSFER_SLOTS; i++) pthread_mutex_init(&g_xfer[i].mu, NULL);
    printf("stress: %ld threads at a time for %ld s, %d blocks each, %d transfer slots\n",
           nthreads, seconds, LOCAL_SLOTS, TRANSFER_SLOTS);

    double t0 = now_s(), deadline = t0 + (double)seconds, next_note = t0 + 30;
    long waves = 0;
    for (int i = 0; i < nthreads; i++) start_worker(&g_w[i]);
    /* Rolling waves: join each slot's thread and start its replacement at
     * once, so threads exit while others run.  At least two waves. */
    for (int done = 0; !done;) {
        for (int i = 0; i < nthreads; i++) {
            join_worker(&g_w[i]);
            if (waves >= 2 && now_s() >= deadline) {
                done = 1;
                continue;       /* keep joining, start nothing new */
            }
            start_worker(&g_w[i]);
        }
        if (!done) waves++;
        if (now_s() >= next_note) {
            next_note += 30;
            pthread_mutex_lock(&g_tot_mu);
            printf("  %.0f s: %ld threads, %ld allocations, %ld pattern errors\n", now_s() - t0,
                   g_created, g_tot.allocs, g_tot.pattern_errors);
            pthread_mutex_unlock(&g_tot_mu);
        }
    }
    for (int i = 0; i < nthreads; i++) join_worker(&g_w[i]);

    /* every allocating thread has exited: free what is left in the array */
    struct stats st;
    memset(&st, 0, sizeof st);
    long left = 0;
    for (int i = 0; i < TRANSFER_SLOTS; i++) {
        struct blk b = xfer_swap((size_t)i, (struct blk){ 0 });
        if (b.p) {
            left++;
            blk_free(&b, "free of a leftover block by main", &st);
        }
    }
    stats_merge(&st);
    double elapsed = now_s() - t0;

    struct stats *t = &g_tot;
    printf("stress: %.1f s, %ld waves, %ld threads created, %ld joined\n", elapsed, waves,
           g_created, g_joined);
    printf("  %ld allocations (%ld %s, %ld %s, %ld %s, %ld %s; %ld calloc, %ld posix_memalign), "
           "%ld reallocs, %ld frees\n",
           t->allocs, t->tier[TINY], tier_name[TINY], t->tier[MID], tier_name[MID], t->tier[LARGE],
           tier_name[LARGE], t->tier[HUGE_T], tier_name[HUGE_T], t->callocs, t->aligned,
           t->reallocs, t->frees);
    printf("  %ld blocks handed over, %ld taken back; %ld frees and %ld reallocs of blocks whose "
           "thread had exited; %ld left for main\n",
           t->given, t->taken, t->orphan_frees, t->orphan_reallocs, left);
    printf("  %ld pattern errors, %ld non-zero calloc, %ld NULL, %ld misaligned, %ld short usable size\n",
           t->pattern_errors, t->calloc_dirty, t->nulls, t->misaligned, t->short_usable);

    CHECK(t->pattern_errors == 0, "%ld pattern errors", t->pattern_errors);
    CHECK(t->calloc_dirty == 0, "%ld calloc blocks not zeroed", t->calloc_dirty);
    CHECK(t->nulls == 0, "%ld allocation calls returned NULL", t->nulls);
    CHECK(t->misaligned == 0, "%ld misaligned blocks", t->misaligned);
    CHECK(t->short_usable == 0, "%ld blocks with malloc_usable_size below the request",
          t->short_usable);
    CHECK(t->allocs == t->frees, "%ld blocks allocated, %ld freed", t->allocs, t->frees);
    CHECK(g_create_failed == 0, "%ld pthread_create calls failed", g_create_failed);
    CHECK(g_created == g_joined, "%ld threads created, %ld joined", g_created, g_joined);
    CHECK(waves >= 2, "only %ld waves", waves);
    CHECK(t->given == t->taken + left, "%ld handed over, %ld taken + %ld left", t->given, t->taken,
          left);
    CHECK(t->orphan_frees > 0, "no block was freed after its thread exited");
    for (int i = 0; i < NTIERS; i++)
        CHECK(t->tier[i] > 0, "no %s block was allocated", tier_name[i]);
    return test_done("test_stress");
}
