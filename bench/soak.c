/*
 * Soak: RSS over time under a steady mixed workload.
 *
 *   soak [seconds [interval [rate]]]
 *
 * Defaults: 60 s, a sample every seconds/30 s (1..10), at most 100000
 * operations per second per thread (0: as fast as possible).  The rate limit
 * keeps the workload the same over time on a shared machine: how much freed
 * memory an allocator holds at a given moment depends on how fast memory is
 * being freed, so an unthrottled run's RSS follows the machine's load.
 *
 * Four threads run until the time is up.  Each keeps a private working set
 * of about 16 MiB (4096 Tiny slots, 256 Mid, 8 Large, 1 Huge; ~64 MiB over
 * the four threads) and churns it: a random slot of a random tier is freed
 * and reallocated (or realloc'd) with a new size of the same tier.  New sizes
 * are biased so that the thread's live bytes stay within 2% of its target:
 * the working set is steady, only its layout changes.  On top of that the
 * threads form a ring of producer/consumer hand-offs: each allocates small
 * and medium blocks (occasionally Large) for the next thread, which frees
 * them, or keeps some in its own working set in place of one of its blocks.
 *
 * Every block is written in full when allocated and carries a tag (its first
 * 8 bytes and, above 8 bytes, its last byte) checked when it is freed or
 * reallocated; a bad tag or a NULL exits with status 2 and one line on stderr.
 *
 * Main reads VmRSS (from /proc/self/status) every 100 ms and prints a sample
 * every interval: the mean of the readings since the previous sample (and
 * the last reading).  Then a summary over the samples after the warm-up (the
 * first 20% of the run):
 *   result: seconds=.. samples=.. rss_first_kb=.. rss_last_kb=.. rss_min_kb=..
 *           rss_max_kb=.. rss_peak_kb=.. growth_kb=.. growth_pct=..
 * where first/last are the first and last samples after the warm-up, growth
 * is last minus first, and peak is the highest single reading.
 *
 * Standard malloc API only: the same binary runs under any allocator through
 * LD_PRELOAD.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

#define NTHREADS 4
#define RING 64              /* hand-off ring per thread */

enum { TINY, MID, LARGE, HUGE_T, NTIERS };
static const struct tier {
    size_t lo, hi;           /* size range */
    int slots;               /* private slots per thread */
    int weight;              /* share of churn operations, per mille */
} tiers[NTIERS] = {
    [TINY]   = { 8, 1 * KiB, 4096, 800 },
    [MID]    = { 1 * KiB + 1, 64 * KiB, 256, 195 },
    [LARGE]  = { 64 * KiB + 1, 2 * MiB, 8, 4 },
    [HUGE_T] = { 2 * MiB + 1, 3 * MiB, 1, 1 },
};

static inline uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* roughly log-uniform in [lo, hi], lo >= 1 */
static size_t rnd_size(uint64_t *r, size_t lo, size_t hi)
{
    if (hi <= lo) return lo;
    int lb = 63 - __builtin_clzll(lo), hb = 63 - __builtin_clzll(hi);
    int b = lb + (int)(rnd(r) % (uint64_t)(hb - lb + 1));
    size_t base = (size_t)1 << b;
    size_t s = base + (size_t)(rnd(r) % base);
    return s < lo ? lo : s > hi ? hi : s;
}

static int tier_of(size_t s)
{
    return s <= 1 * KiB ? TINY : s <= 64 * KiB ? MID : s <= 2 * MiB ? LARGE : HUGE_T;
}

/* ------------------------------------------------------------ block tags */

static inline uint64_t tag_of(const void *p, size_t size)
{
    return ((uint64_t)(uintptr_t)p ^ ((uint64_t)size << 20) ^ (uint64_t)size) * 0x9E3779B97F4A7C15ull;
}

static void die(const char *what, const void *p, size_t size)
{
    fprintf(stderr, "soak: %s (block %p, size %zu)\n", what, p, size);
    exit(2);
}

/* write the whole block, then the tag */
static void blk_init(unsigned char *p, size_t size)
{
    memset(p, (int)(size & 0xff) | 1, size);
    uint64_t t = tag_of(p, size);
    memcpy(p, &t, 8);
    if (size > 8) p[size - 1] = (unsigned char)(size * 7 + 3);
}

static void blk_check(const unsigned char *p, size_t size)
{
    uint64_t t;
    memcpy(&t, p, 8);
    if (t != tag_of(p, size) || (size > 8 && p[size - 1] != (unsigned char)(size * 7 + 3)))
        die("block tag damaged", p, size);
}

static unsigned char *blk_new(size_t size)
{
    unsigned char *p = malloc(size);
    if (!p) die("malloc returned NULL", NULL, size);
    blk_init(p, size);
    return p;
}

/* ----------------------------------------------------------------- rings */

struct handoff { unsigned char *p; size_t size; };

/* single producer (thread i-1), single consumer (thread i) */
struct ring {
    _Alignas(64) atomic_size_t head;     /* consumer */
    _Alignas(64) atomic_size_t tail;     /* producer */
    struct handoff item[RING];
};

static int ring_push(struct ring *r, struct handoff h)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t - atomic_load_explicit(&r->head, memory_order_acquire) == RING) return 0;
    r->item[t % RING] = h;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return 1;
}

static int ring_pop(struct ring *r, struct handoff *h)
{
    size_t hd = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (hd == atomic_load_explicit(&r->tail, memory_order_acquire)) return 0;
    *h = r->item[hd % RING];
    atomic_store_explicit(&r->head, hd + 1, memory_order_release);
    return 1;
}

/* ---------------------------------------------------------------- workers */

struct slot { unsigned char *p; size_t size; };

struct worker {
    pthread_t th;
    int id;
    uint64_t rng;
    struct slot *set[NTIERS];
    size_t live, target;
    struct ring *in, *out;
    _Alignas(64) atomic_long ops;
};

static struct worker g_w[NTHREADS];
static struct ring g_ring[NTHREADS];
static atomic_int g_stop;
static size_t g_target_total;

/* A new size for a slot of tier t replacing old_size, pulling the thread's
 * live bytes back into [target - 2%, target + 2%]. */
static size_t new_size(struct worker *w, int t, size_t old_size)
{
    const struct tier *T = &tiers[t];
    size_t s = rnd_size(&w->rng, T->lo, T->hi);
    size_t band = w->target / 50;
    size_t after = w->live - old_size + s;
    if (after > w->target + band && s > old_size)
        s = rnd_size(&w->rng, T->lo, old_size);
    else if (after + band < w->target && s < old_size)
        s = rnd_size(&w->rng, old_size, T->hi);
    return s;
}

static int pick_tier(uint64_t *r)
{
    int d = (int)(rnd(r) % 1000);
    for (int t = 0; t < NTIERS; t++) {
        if (d < tiers[t].weight) return t;
        d -= tiers[t].weight;
    }
    return TINY;
}

static void churn(struct worker *w)
{
    int t = pick_tier(&w->rng);
    struct slot *s = &w->set[t][rnd(&w->rng) % (uint64_t)tiers[t].slots];
    size_t ns = new_size(w, t, s->size);
    blk_check(s->p, s->size);
    if (rnd(&w->rng) % 5 == 0) {                /* realloc */
        uint64_t old_tag = tag_of(s->p, s->size);
        unsigned char *np = realloc(s->p, ns);
        if (!np) die("realloc returned NULL", s->p, ns);
        uint64_t t0;
        memcpy(&t0, np, 8);
        if (t0 != old_tag) die("realloc lost the block's contents", np, ns);
        blk_init(np, ns);
        s->p = np;
    } else {
        free(s->p);
        s->p = blk_new(ns);
    }
    w->live = w->live - s->size + ns;
    s->size = ns;
}

static void produce(struct worker *w)
{
    int d = (int)(rnd(&w->rng) % 1000);
    size_t size = d < 850 ? rnd_size(&w->rng, 8, 1 * KiB)
                : d < 995 ? rnd_size(&w->rng, 1 * KiB + 1, 64 * KiB)
                          : rnd_size(&w->rng, 64 * KiB + 1, 512 * KiB);
    struct handoff h = { blk_new(size), size };
    if (!ring_push(w->out, h)) free(h.p);      /* consumer is behind */
}

static void consume(struct worker *w)
{
    struct handoff h;
    for (int n = 0; n < 64 && ring_pop(w->in, &h); n++) {
        blk_check(h.p, h.size);
        int t = tier_of(h.size);
        if (rnd(&w->rng) % 5 == 0 && t != HUGE_T) {
            /* keep it, in place of one of ours of the same tier */
            struct slot *s = &w->set[t][rnd(&w->rng) % (uint64_t)tiers[t].slots];
            blk_check(s->p, s->size);
            free(s->p);
            w->live = w->live - s->size + h.size;
            s->p = h.p;
            s->size = h.size;
        } else {
            free(h.p);
        }
    }
}

static void worker_fill(struct worker *w);
static double now_s(void);
static void sleep_until(double t);
static pthread_barrier_t g_start;
static double g_rate;       /* churn operations per second per thread, 0: no limit */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    worker_fill(w);                 /* each thread allocates its own set */
    pthread_barrier_wait(&g_start);
    double next = now_s();
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        for (int i = 0; i < 256; i++) {
            churn(w);
            if (i % 4 == 0) produce(w);
            if (i % 16 == 0) consume(w);
        }
        atomic_fetch_add_explicit(&w->ops, 256, memory_order_relaxed);
        if (g_rate > 0) {       /* keep to the rate; a thread that fell behind does not catch up */
            next += 256 / g_rate;
            double now = now_s();
            if (next > now) sleep_until(next);
            else if (next < now - 0.05) next = now;
        }
    }
    consume(w);
    return NULL;
}

static void worker_fill(struct worker *w)
{
    w->live = 0;
    for (int t = 0; t < NTIERS; t++) {
        w->set[t] = calloc((size_t)tiers[t].slots, sizeof(struct slot));
        if (!w->set[t]) die("calloc returned NULL", NULL, 0);
        for (int i = 0; i < tiers[t].slots; i++) {
            size_t s = new_size(w, t, 0);
            w->set[t][i] = (struct slot){ blk_new(s), s };
            w->live += s;
        }
    }
}

static void worker_free(struct worker *w)
{
    for (int t = 0; t < NTIERS; t++) {
        for (int i = 0; i < tiers[t].slots; i++) {
            blk_check(w->set[t][i].p, w->set[t][i].size);
            free(w->set[t][i].p);
        }
        free(w->set[t]);
    }
}

/* ------------------------------------------------------------------- main */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double t)
{
    for (;;) {
        double d = t - now_s();
        if (d <= 0) return;
        struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
        nanosleep(&ts, NULL);
    }
}

static long total_ops(void)
{
    long n = 0;
    for (int i = 0; i < NTHREADS; i++) n += atomic_load_explicit(&g_w[i].ops, memory_order_relaxed);
    return n;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    long seconds = argc > 1 ? strtol(argv[1], NULL, 10) : 60;
    if (seconds < 1) seconds = 1;
    double interval = argc > 2 ? strtod(argv[2], NULL) : (double)seconds / 30;
    if (argc <= 2) interval = interval < 1 ? 1 : interval > 10 ? 10 : interval;
    if (interval < 0.1) interval = 0.1;
    g_rate = argc > 3 ? strtod(argv[3], NULL) : 100000;
    if (g_rate < 0) g_rate = 0;

    /* per-thread target: the expected bytes of the private working set */
    size_t target = 0;
    for (int t = 0; t < NTIERS; t++) {
        double lo = (double)tiers[t].lo, hi = (double)tiers[t].hi, mean = 0;
        /* mean of rnd_size: average over its power-of-two buckets */
        int lb = 63 - __builtin_clzll(tiers[t].lo), hb = 63 - __builtin_clzll(tiers[t].hi);
        for (int b = lb; b <= hb; b++) {
            double a = (double)((size_t)1 << b), z = 2 * a - 1;
            if (a < lo) a = lo;
            if (z > hi) z = hi;
            mean += (a + z) / 2;
        }
        mean /= (hb - lb + 1);
        target += (size_t)(mean * tiers[t].slots);
    }
    g_target_total = target * NTHREADS;
    printf("soak: %d threads, %ld s, sample every %.1f s, working set ~%.1f MiB, warm-up %.0f s, ",
           NTHREADS, seconds, interval, (double)g_target_total / (double)MiB, 0.2 * (double)seconds);
    if (g_rate > 0) printf("at most %.0f ops/s per thread\n", g_rate);
    else printf("no rate limit\n");

    long rss0 = rss_kb();
    for (int i = 0; i < NTHREADS; i++) {
        struct worker *w = &g_w[i];
        w->id = i;
        w->rng = 0x50A4ull * (uint64_t)(i + 1) + 0x9E3779B97F4A7C15ull;
        w->target = target;
        w->in = &g_ring[i];
        w->out = &g_ring[(i + 1) % NTHREADS];
    }
    pthread_barrier_init(&g_start, NULL, NTHREADS + 1);
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&g_w[i].th, NULL, worker_main, &g_w[i]) != 0) {
            fprintf(stderr, "soak: pthread_create failed\n");
            return 1;
        }
    pthread_barrier_wait(&g_start);  /* working sets allocated */
    double t0 = now_s();

    /* RSS is read every 100 ms; a sample is the mean of the readings since
     * the previous one, so a single block freed or allocated at the moment
     * of reading does not decide the figure. */
    long first = -1, last = -1, mn = -1, mx = -1, peak = -1, samples = 0;
    double first_t = 0, last_t = 0, warm = 0.2 * (double)seconds;
    printf("%8s %10s %10s %12s\n", "time_s", "rss_mib", "now_mib", "ops");
    printf("%8s %10s %10.1f %12s   (before the working sets were allocated)\n", "start", "-",
           rss0 / 1024.0, "-");
    double sum = 0, next_read = t0;
    long nread = 0;
    for (long k = 0;; k++) {
        double t = (double)k * interval;
        if (t > (double)seconds + 1e-9) break;
        long kb = 0;
        for (;;) {                  /* readings up to and including time t */
            double at = next_read < t0 + t ? next_read : t0 + t;
            sleep_until(at);
            kb = rss_kb();
            sum += (double)kb;
            nread++;
            if (t >= warm && kb > peak) peak = kb;
            if (at >= t0 + t) break;
            next_read += 0.1;
        }
        next_read = t0 + t + 0.1;
        long mean = (long)(sum / (double)nread);
        sum = 0;
        nread = 0;
        double el = now_s() - t0;
        printf("%8.1f %10.1f %10.1f %12ld%s\n", el, mean / 1024.0, kb / 1024.0, total_ops(),
               t < warm ? "   (warm-up)" : "");
        if (t >= warm) {
            if (first < 0) { first = mean; first_t = el; }
            last = mean; last_t = el;
            if (mn < 0 || mean < mn) mn = mean;
            if (mean > mx) mx = mean;
            samples++;
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < NTHREADS; i++) pthread_join(g_w[i].th, NULL);
    struct handoff h;
    for (int i = 0; i < NTHREADS; i++)
        while (ring_pop(&g_ring[i], &h)) {
            blk_check(h.p, h.size);
            free(h.p);
        }
    size_t live = 0;
    for (int i = 0; i < NTHREADS; i++) live += g_w[i].live;
    for (int i = 0; i < NTHREADS; i++) worker_free(&g_w[i]);
    long rss_end = rss_kb();

    long growth = last - first;
    double pct = first > 0 ? 100.0 * (double)growth / (double)first : 0;
    printf("after warm-up (%.0f s .. %.0f s, %ld samples): RSS min %.1f MiB, max %.1f MiB "
           "(peak reading %.1f MiB), growth %+.1f MiB (%+.1f%%) from %.1f MiB to %.1f MiB; "
           "live at the end %.1f MiB; RSS after freeing everything %.1f MiB; %ld ops\n",
           first_t, last_t, samples, mn / 1024.0, mx / 1024.0, peak / 1024.0, growth / 1024.0, pct,
           first / 1024.0, last / 1024.0, (double)live / (double)MiB, rss_end / 1024.0, total_ops());
    printf("result: seconds=%ld samples=%ld rss_first_kb=%ld rss_last_kb=%ld rss_min_kb=%ld "
           "rss_max_kb=%ld rss_peak_kb=%ld growth_kb=%ld growth_pct=%.2f\n",
           seconds, samples, first, last, mn, mx, peak, growth, pct);
    return 0;
}
