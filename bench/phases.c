/*
 * phases: one process through the phases a long-running program goes
 * through, in an order and with sizes fixed by a seed, so that a policy
 * tuned for one phase pays for it in the others (issue 10's proof).
 *
 *   burst   ~`mib` MiB of mixed sizes (16 B .. 64 KiB), then 90% freed in a
 *           shuffled order: survivors scattered over the heap
 *   idle    no allocator call for `idle_ms`: how long RSS takes to settle
 *           (within 10% + 2 MiB of its lowest value in the phase)
 *   churn   16 live buffers of 64 KiB .. 8 MiB, one replaced at a time, each
 *           written on every page
 *   shift   the working set moves from small blocks (64 B .. 1 KiB) to large
 *           ones (16 .. 256 KiB) and back, in steps
 *   relay   producer and consumer threads, created and destroyed in waves,
 *           passing blocks of 32 B .. 4 KiB through a queue
 * The order of the phases after the burst is a permutation chosen by the
 * seed.  A sampler thread reads /proc/self/statm every 10 ms: peak and
 * time-averaged RSS.
 *
 *   phases [mib] [seed] [idle_ms]
 *   result: ops=<mallocs+frees> seconds=<wall, idle excluded> ops_per_sec=... peak_rss_kb=...
 *           avg_rss_kb=<time-averaged> faults=<minor> settle_ms=<idle settle> <phase>_s=...
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"

static const char *who = "phases";
static void die(int code) { _exit(code); }

/* ---- RSS sampler ------------------------------------------------------------ */
static volatile int sampler_stop;
static volatile long rss_now_kb;
static double rss_sum_kb_s;         /* integral of RSS over time, KiB x s */
static long rss_peak_kb;
static double sampler_start;

static void *sampler(void *arg)
{
    (void)arg;
    double last = now_seconds();
    while (!sampler_stop) {
        long kb = statm_rss_kb();
        double t = now_seconds();
        rss_sum_kb_s += (double)kb * (t - last);
        last = t;
        rss_now_kb = kb;
        if (kb > rss_peak_kb)
            rss_peak_kb = kb;
        usleep(10000);
    }
    return NULL;
}

static uint64_t ops;

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!malloc_ok(who, p, n))
        die(2);
    ops++;
    return p;
}

static void xfree(void *p)
{
    if (p)
        ops++;
    free(p);
}

/* ---- burst -------------------------------------------------------------------- */
static void **survivors;
static size_t nsurvivors;

static void phase_burst(size_t mib, uint64_t *rng)
{
    size_t cap = mib * 1024 * 1024 / 2048 + 1024, n = 0, bytes = 0;
    void **all = malloc(cap * sizeof *all);
    if (all == NULL)
        die(2);
    while (bytes < mib * 1024 * 1024 && n < cap) {
        size_t s = (rng_next(rng) & 7) == 0 ? rng_between(rng, 4096, 65536) : rng_between(rng, 16, 1024);
        char *p = xmalloc(s);
        memset(p, (int)(n & 0xff), s);
        all[n++] = p;
        bytes += s;
    }
    for (size_t i = n; i > 1; i--) {          /* shuffle, then keep the first tenth */
        size_t j = (size_t)(rng_next(rng) % i);
        void *t = all[i - 1];
        all[i - 1] = all[j];
        all[j] = t;
    }
    nsurvivors = n / 10;
    for (size_t i = nsurvivors; i < n; i++)
        xfree(all[i]);
    survivors = all;
}

/* ---- idle ---------------------------------------------------------------------- */
static double settle_ms;
#define IDLE_SAMPLES 60001                  /* idle_ms <= 600000, one per 10 ms */
static struct { double t; long kb; } idle_sample[IDLE_SAMPLES];

/* Samples RSS every 10 ms; settled: the time of the last sample above the
 * phase's lowest RSS + 10% + 2 MiB. */
static void phase_idle(unsigned idle_ms)
{
    double t0 = now_seconds();
    size_t n = 0;
    long low = -1;
    while (n < IDLE_SAMPLES && (now_seconds() - t0) * 1000 < idle_ms) {
        usleep(10000);
        long kb = statm_rss_kb();
        idle_sample[n].t = now_seconds() - t0;
        idle_sample[n++].kb = kb;
        if (low < 0 || kb < low)
            low = kb;
    }
    settle_ms = 0;
    for (size_t i = 0; i < n; i++)
        if (idle_sample[i].kb > low + low / 10 + 2048)
            settle_ms = idle_sample[i].t * 1000;
}

/* ---- churn ---------------------------------------------------------------------- */
static void phase_churn(uint64_t *rng)
{
    char *live[16] = { 0 };
    for (int i = 0; i < 3000; i++) {
        int k = (int)(rng_next(rng) % 16);
        unsigned sh = 16 + (unsigned)(rng_next(rng) % 7);
        size_t n = ((size_t)1 << sh) + (size_t)(rng_next(rng) % ((size_t)1 << sh));
        xfree(live[k]);
        live[k] = xmalloc(n);
        for (size_t o = 0; o < n; o += 4096)
            live[k][o] = (char)i;
    }
    for (int k = 0; k < 16; k++)
        xfree(live[k]);
}

/* ---- shift ---------------------------------------------------------------------- */
static void phase_shift(uint64_t *rng)
{
    enum { SLOTS = 4096 };
    static char *slot[SLOTS];
    for (int step = 0; step <= 20; step++) {
        /* share of large blocks: 0% .. 100% .. 0% */
        int large_pct = step <= 10 ? step * 10 : (20 - step) * 10;
        for (int i = 0; i < SLOTS * 4; i++) {
            int k = (int)(rng_next(rng) % SLOTS);
            bool large = (int)(rng_next(rng) % 100) < large_pct;
            size_t n = large ? rng_between(rng, 16384, 262144) : rng_between(rng, 64, 1024);
            xfree(slot[k]);
            slot[k] = xmalloc(n);
            memset(slot[k], 1, n < 256 ? n : 256);
        }
    }
    for (int k = 0; k < SLOTS; k++) {
        xfree(slot[k]);
        slot[k] = NULL;
    }
}

/* ---- relay ---------------------------------------------------------------------- */
#define QCAP 4096
static struct {
    pthread_mutex_t m;
    pthread_cond_t cv;
    void *item[QCAP];
    size_t head, tail;
    int producers_left;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, 0, 0, 0 };
static _Atomic uint64_t relay_ops;

static void *producer(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < 20000; i++) {
        size_t n = rng_between(&rng, 32, 4096);
        char *p = malloc(n);
        if (!malloc_ok(who, p, n))
            die(2);
        p[0] = 1;
        pthread_mutex_lock(&q.m);
        while (q.tail - q.head == QCAP)
            pthread_cond_wait(&q.cv, &q.m);
        q.item[q.tail++ % QCAP] = p;
        pthread_cond_broadcast(&q.cv);
        pthread_mutex_unlock(&q.m);
    }
    pthread_mutex_lock(&q.m);
    q.producers_left--;
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.m);
    relay_ops += 20000;
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    uint64_t n = 0;
    for (;;) {
        pthread_mutex_lock(&q.m);
        while (q.tail == q.head && q.producers_left > 0)
            pthread_cond_wait(&q.cv, &q.m);
        if (q.tail == q.head) {
            pthread_mutex_unlock(&q.m);
            break;
        }
        void *p = q.item[q.head++ % QCAP];
        pthread_cond_broadcast(&q.cv);
        pthread_mutex_unlock(&q.m);
        free(p);
        n++;
    }
    relay_ops += n;
    return NULL;
}

static void phase_relay(void)
{
    for (int wave = 0; wave < 8; wave++) {
        pthread_t p[2], c[2];
        q.producers_left = 2;
        for (int i = 0; i < 2; i++) {
            if (pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)(wave * 2 + i + 1)) ||
                pthread_create(&c[i], NULL, consumer, NULL)) {
                fprintf(stderr, "%s: pthread_create failed\n", who);
                die(2);
            }
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(p[i], NULL);
            pthread_join(c[i], NULL);
        }
    }
    ops += relay_ops;
}

int main(int argc, char **argv)
{
    unsigned long long mib = 1024, seed = 42, idle_ms = 1000;
    if ((argc > 1 && !parse_ulong(argv[1], 1, 1 << 20, &mib)) ||
        (argc > 2 && !parse_ulong(argv[2], 1, ~0ull, &seed)) ||
        (argc > 3 && !parse_ulong(argv[3], 0, 600000, &idle_ms))) {
        fprintf(stderr, "usage: phases [mib] [seed] [idle_ms]\n");
        return 2;
    }
    uint64_t rng = mix64(seed) | 1;
    pthread_t s;
    sampler_start = now_seconds();
    if (pthread_create(&s, NULL, sampler, NULL) != 0)
        return 2;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);

    const char *names[5] = { "burst", "idle", "churn", "shift", "relay" };
    double took[5] = { 0 };
    int order[4] = { 1, 2, 3, 4 };                /* after the burst, seeded order */
    for (int i = 3; i > 0; i--) {
        int j = (int)(rng_next(&rng) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double t0 = now_seconds();
    phase_burst((size_t)mib, &rng);
    took[0] = now_seconds() - t0;
    for (int i = 0; i < 4; i++) {
        double t = now_seconds();
        switch (order[i]) {
        case 1: phase_idle((unsigned)idle_ms); break;
        case 2: phase_churn(&rng); break;
        case 3: phase_shift(&rng); break;
        case 4: phase_relay(); break;
        }
        took[order[i]] = now_seconds() - t;
    }
    for (size_t i = 0; i < nsurvivors; i++)
        xfree(survivors[i]);
    free(survivors);
    double total = now_seconds() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    sampler_stop = 1;
    pthread_join(s, NULL);
    double span = now_seconds() - sampler_start;

    char extra[512];
    int len = snprintf(extra, sizeof extra,
                       " peak_rss_kb=%ld avg_rss_kb=%.0f faults=%ld settle_ms=%.0f order=%s,%s,%s,%s",
                       rss_peak_kb, span > 0 ? rss_sum_kb_s / span : 0.0,
                       ru1.ru_minflt - ru0.ru_minflt, settle_ms, names[order[0]], names[order[1]],
                       names[order[2]], names[order[3]]);
    for (int i = 0; i < 5 && len < (int)sizeof extra; i++)
        len += snprintf(extra + len, sizeof extra - (size_t)len, " %s_s=%.3f", names[i], took[i]);
    /* the idle phase's wall time is a constant, not the allocator's */
    print_result(ops, total - took[1], extra);
    return 0;
}
