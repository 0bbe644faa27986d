/*
 * Fragmentation stress: long-lived and short-lived objects interleaved, with
 * the size mix changing from round to round.  Reports time and memory.
 *
 *   fragment_stress <rounds> <seed>
 *
 * Each round allocates 40000 objects from one size mix, chosen by the round
 * number in turn:
 *
 *   small    16 B .. 256 B, uniform
 *   medium   512 B .. 8 KiB, log-uniform (each doubling equally likely)
 *   mixed    16 B .. 32 KiB, log-uniform
 *   odd      sizes just above the powers of two from 64 B to 16 KiB
 *            (2^k + 1 .. 2^k + 2^k/8), the worst case for power-of-two classes
 *
 * One object in 16 becomes long-lived: it joins a pool of up to 16384 objects
 * that survives from round to round (once the pool is full, a new long-lived
 * object replaces a random old one, which is freed).  The others are
 * short-lived: at most 4096 of them are live at a time (past that, a random
 * one is freed to make room) and the rest are freed at the end of the round.
 * So every round leaves a sprinkling of survivors across the memory its size
 * mix used, and the next round wants different sizes.  After the last round
 * everything is freed and the resident size is read, without malloc_trim.
 *
 * Every object is touched as a program would: an 8-byte tag at the start, a
 * byte every 64 B of its first 4 KiB, a byte every 4 KiB after that, and the
 * last byte; all of it is checked before the object is freed.  A mismatch or
 * a NULL exits with status 2 and one line on stderr.
 *
 * Output: one line on stdout,
 *   result: ops=<mallocs+frees> seconds=<wall> ops_per_sec=<ops/wall> peak_rss_kb=<VmHWM> final_rss_kb=<VmRSS>
 * peak_rss_kb is the process's high-water mark over the whole run (the
 * program's own fixed tables included); final_rss_kb the resident size after
 * everything has been freed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define PER_ROUND 40000
#define KEEP_EVERY 16
#define LONG_CAP 16384
#define SHORT_CAP 4096
#define NMIXES 4

struct obj {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
};

/* Static, so the tables themselves are not allocations and do not depend on
 * the allocator under test. */
static struct obj g_long[LONG_CAP];
static struct obj g_short[SHORT_CAP];
static size_t g_nlong, g_nshort;
static uint64_t g_mallocs, g_frees, g_serial, g_seed;

/* log-uniform in [lo, hi): a random doubling of lo, then uniform inside it */
static size_t log_uniform(uint64_t r, size_t lo, unsigned doublings)
{
    unsigned k = (unsigned)(r % doublings);
    size_t base = lo << k;
    return base + (size_t)((r >> 8) % base);
}

static size_t pick_size(unsigned mix, uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    switch (mix) {
    case 0: /* small */
        return 16 + (size_t)(r % (256 - 16 + 1));
    case 1: /* medium: 512 B .. 8 KiB */
        return log_uniform(r, 512, 4);
    case 2: /* mixed: 16 B .. 32 KiB */
        return log_uniform(r, 16, 11);
    default: { /* odd: just past 64 B .. 16 KiB */
        size_t base = (size_t)64 << (r % 9);
        return base + 1 + (size_t)((r >> 8) % (base / 8));
    }
    }
}

static void die_corrupt(const struct obj *o, const char *what)
{
    fprintf(stderr, "fragment_stress: corrupted block %p (size %zu): %s\n",
            (void *)o->ptr, o->size, what);
    exit(2);
}

static void release(struct obj *o)
{
    const char *bad = stamp_mismatch(o->ptr, o->size, 8, o->tag);
    if (bad != NULL)
        die_corrupt(o, bad);
    free(o->ptr);
    o->ptr = NULL;
    g_frees++;
}

static struct obj make(size_t size)
{
    struct obj o;
    o.ptr = malloc(size); /* sizes are at least 16 */
    if (!malloc_ok("fragment_stress", o.ptr, size))
        exit(2);
    o.size = size;
    o.tag = mix64(++g_serial ^ g_seed);
    stamp_put(o.ptr, size, 8, o.tag);
    g_mallocs++;
    return o;
}

static void run_round(unsigned long long round, uint64_t *rng)
{
    unsigned mix = (unsigned)(round % NMIXES);
    for (unsigned i = 0; i < PER_ROUND; i++) {
        struct obj o = make(pick_size(mix, rng));
        uint64_t r = rng_next(rng);
        if (r % KEEP_EVERY == 0) {
            if (g_nlong < LONG_CAP) {
                g_long[g_nlong++] = o;
            } else {
                size_t victim = (size_t)((r >> 16) % LONG_CAP);
                release(&g_long[victim]);
                g_long[victim] = o;
            }
        } else {
            if (g_nshort == SHORT_CAP) {
                /* free a random short-lived object; the last one takes its place */
                size_t victim = (size_t)((r >> 16) % SHORT_CAP);
                release(&g_short[victim]);
                g_short[victim] = g_short[--g_nshort];
            }
            g_short[g_nshort++] = o;
        }
    }
    /* end of round: the short-lived objects go, oldest first */
    for (size_t i = 0; i < g_nshort; i++)
        release(&g_short[i]);
    g_nshort = 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fragment_stress <rounds> <seed>\n"
            "  each round allocates 40000 objects of one size mix; e.g. fragment_stress 100 42\n");
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long long rounds, seed;
    if (argc != 3 ||
        !parse_ulong(argv[1], 1, 1ULL << 32, &rounds) ||
        !parse_ulong(argv[2], 0, UINT64_MAX, &seed))
        usage();
    g_seed = mix64(seed);
    uint64_t rng = mix64(seed ^ 0xF4A6ULL) | 1;

    double start = now_seconds();
    for (unsigned long long round = 0; round < rounds; round++)
        run_round(round, &rng);
    for (size_t i = 0; i < g_nlong; i++)
        release(&g_long[i]);
    g_nlong = 0;
    double elapsed = now_seconds() - start;

    long final_kb = status_kb("VmRSS");
    long peak_kb = status_kb("VmHWM");
    if (final_kb < 0 || peak_kb < 0) {
        fprintf(stderr, "fragment_stress: cannot read VmRSS/VmHWM from /proc/self/status\n");
        return 1;
    }
    char rss[80];
    snprintf(rss, sizeof rss, " peak_rss_kb=%ld final_rss_kb=%ld", peak_kb, final_kb);
    print_result(g_mallocs + g_frees, elapsed, rss);
    return 0;
}
