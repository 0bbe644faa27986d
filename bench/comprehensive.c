/*
 * A fixed sweep through every size tier and every allocation call, single
 * thread, timed as a whole.
 *
 *   comprehensive <scale>
 *
 * scale 1 is the full run; every phase's operation count is multiplied by
 * <scale> (a positive number, so 0.1 is a tenth of the work; each phase does
 * at least one operation).  The phases, in order:
 *
 *   tiny     churn of 4096 slots, sizes 8 B .. 1 KiB
 *   mid      churn of 1024 slots, sizes 1 KiB .. 64 KiB
 *   large    churn of 64 slots, sizes 64 KiB .. 2 MiB
 *   huge     churn of 4 slots, sizes 3 MiB .. 64 MiB (far fewer operations)
 *   aligned  churn of 512 slots through posix_memalign and aligned_alloc,
 *            alignments 16 B .. 64 KiB, sizes 1 B .. 16 KiB (aligned_alloc
 *            rounds the size up to a multiple of the alignment)
 *   calloc   churn of 512 slots through calloc, 8 B .. 64 KiB (1 in 32 up
 *            to 1 MiB); the zeroing is checked wherever the block is touched
 *   realloc  four interleaved chains, each growing one buffer by 1.5x steps
 *            from 16 B past 8 MiB, then freeing it; the content written so
 *            far is verified after every step
 *
 * "Churn" means: pick a random slot, free its block (if any), allocate a new
 * one of random size in its place; each phase frees what is left at its end.
 *
 * Every block is touched where a program would touch it: an 8-byte tag at
 * the start, a byte every 64 B in the first 4 KiB, a byte every 4 KiB after
 * that, and the last byte.  All of it is checked before the block is freed;
 * a mismatch, a NULL, a misaligned block or a non-zero calloc byte exits with
 * status 2 and one line on stderr.
 *
 * Output: one line on stdout,
 *   result: ops=<allocation calls + frees> seconds=<wall> ops_per_sec=<ops/wall>
 * (calloc, posix_memalign and aligned_alloc count as allocations, realloc as
 * one operation).  COMPREHENSIVE_VERBOSE=1 adds one line per phase on stderr.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

enum kind { K_TINY, K_MID, K_LARGE, K_HUGE, K_ALIGNED, K_CALLOC };

struct phase {
    const char *name;
    enum kind kind;
    size_t nslots;
    double base_ops; /* iterations at scale 1 */
};

static const struct phase g_phases[] = {
    { "tiny",    K_TINY,    4096, 4000000 },
    { "mid",     K_MID,     1024,  500000 },
    { "large",   K_LARGE,     64,   20000 },
    { "huge",    K_HUGE,       4,      24 },
    { "aligned", K_ALIGNED,  512,  500000 },
    { "calloc",  K_CALLOC,   512,  250000 },
};
#define REALLOC_BASE_CHAINS 80 /* growth chains at scale 1 */
#define REALLOC_LIVE_CHAINS 4
#define REALLOC_FIRST ((size_t)16)
#define REALLOC_LAST (8 * MiB)

static uint64_t g_ops;
static int g_verbose;

static void fail(const char *phase, const char *what, const void *p, size_t size)
{
    fprintf(stderr, "comprehensive: %s phase: %s (block %p, size %zu)\n", phase, what, p, size);
    exit(2);
}

/* Exits with status 2 unless everything stamp_put wrote in the block is intact. */
static void check_block(const char *phase, const unsigned char *p, size_t size, uint64_t tag)
{
    const char *bad = stamp_mismatch(p, size, head_len(size), tag);
    if (bad != NULL) {
        char what[80];
        snprintf(what, sizeof what, "corrupted block: %s", bad);
        fail(phase, what, p, size);
    }
}

/* calloc: every byte stamp_put is about to write must be zero now. */
static void check_zero(const char *phase, const unsigned char *p, size_t size)
{
    size_t n = size < 8 ? size : 8;
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            fail(phase, "calloc block not zeroed at its start", p, size);
    size_t first = size < 4 * KiB ? size : 4 * KiB;
    for (size_t off = 64; off < first; off += 64)
        if (p[off] != 0)
            fail(phase, "calloc block not zeroed in its first 4 KiB", p, size);
    for (size_t off = 4 * KiB; off < size; off += 4 * KiB)
        if (p[off] != 0)
            fail(phase, "calloc block not zeroed (page stride)", p, size);
    if (p[size - 1] != 0)
        fail(phase, "calloc block not zeroed at its end", p, size);
}

static unsigned char *alloc_block(const struct phase *ph, uint64_t *rng, size_t *size_out)
{
    size_t size = 0, align = 0;
    void *p = NULL;
    switch (ph->kind) {
    case K_TINY:
        size = rng_between(rng, 8, 1 * KiB);
        p = malloc(size);
        break;
    case K_MID:
        size = rng_between(rng, 1 * KiB + 1, 64 * KiB);
        p = malloc(size);
        break;
    case K_LARGE:
        size = rng_between(rng, 64 * KiB + 1, 2 * MiB);
        p = malloc(size);
        break;
    case K_HUGE:
        size = rng_between(rng, 3 * MiB, 64 * MiB);
        p = malloc(size);
        break;
    case K_ALIGNED: {
        uint64_t r = rng_next(rng);
        align = (size_t)16 << (r % 13); /* 16 B .. 64 KiB */
        size = 1 + (size_t)((r >> 8) % (16 * KiB));
        if ((r >> 40) & 1) {
            int err = posix_memalign(&p, align, size);
            if (err != 0) {
                fprintf(stderr, "comprehensive: aligned phase: posix_memalign(%zu, %zu) failed: %s\n",
                        align, size, strerror(err));
                exit(2);
            }
        } else {
            /* aligned_alloc wants a multiple of the alignment (C11) */
            size = (size + align - 1) & ~(align - 1);
            p = aligned_alloc(align, size);
        }
        break;
    }
    case K_CALLOC: {
        static const size_t elem_sizes[] = { 1, 4, 8, 16, 24, 64 };
        uint64_t r = rng_next(rng);
        size_t elem = elem_sizes[r % 6];
        size_t max_total = ((r >> 8) & 31) == 0 ? 1 * MiB : 64 * KiB;
        size_t count = 1 + (size_t)((r >> 16) % (max_total / elem));
        if (count * elem < 8)
            count = (8 + elem - 1) / elem;
        size = count * elem;
        p = calloc(count, elem);
        if (p != NULL)
            check_zero(ph->name, p, size);
        break;
    }
    }
    if (p == NULL) {
        fprintf(stderr, "comprehensive: %s phase: allocation of %zu bytes returned NULL\n",
                ph->name, size);
        exit(2);
    }
    if (align != 0 && ((uintptr_t)p & (align - 1)) != 0) {
        fprintf(stderr, "comprehensive: aligned phase: %p is not %zu-byte aligned (size %zu)\n",
                p, align, size);
        exit(2);
    }
    if (align == 0 && size >= 16 && ((uintptr_t)p & 15) != 0) {
        fprintf(stderr, "comprehensive: %s phase: %p is not 16-byte aligned (size %zu)\n",
                ph->name, p, size);
        exit(2);
    }
    *size_out = size;
    return p;
}

static inline uint64_t slot_tag(unsigned phase, size_t index, uint64_t serial)
{
    return mix64(((uint64_t)phase << 56) ^ ((uint64_t)index << 36) ^ serial);
}

static void run_churn(unsigned phase_no, const struct phase *ph, uint64_t iterations)
{
    struct slot *slots = calloc(ph->nslots, sizeof *slots);
    if (slots == NULL) {
        fprintf(stderr, "comprehensive: cannot allocate the slot table\n");
        exit(1);
    }
    uint64_t rng = mix64(0xC0FFEEULL + phase_no) | 1;
    uint64_t ops = 0;
    for (uint64_t i = 0; i < iterations; i++) {
        size_t index = (size_t)(rng_next(&rng) % ph->nslots);
        struct slot *s = &slots[index];
        if (s->ptr != NULL) {
            check_block(ph->name, s->ptr, s->size, slot_tag(phase_no, index, s->serial));
            free(s->ptr);
            ops++;
        }
        s->ptr = alloc_block(ph, &rng, &s->size);
        s->serial++;
        stamp_put(s->ptr, s->size, head_len(s->size), slot_tag(phase_no, index, s->serial));
        ops++;
    }
    for (size_t index = 0; index < ph->nslots; index++) {
        struct slot *s = &slots[index];
        if (s->ptr != NULL) {
            check_block(ph->name, s->ptr, s->size, slot_tag(phase_no, index, s->serial));
            free(s->ptr);
            ops++;
        }
    }
    free(slots);
    g_ops += ops;
}

/* realloc chains.  Word k of a buffer (at offset 64 k) holds a value derived
 * from k and the chain's salt; after each step the words that fit in the old
 * size must have survived, then the new ones are written. */
struct chain {
    uint64_t *buf;
    size_t size;
    uint64_t salt;
};

static inline uint64_t chain_word(uint64_t salt, size_t k)
{
    return (k * 0x9E3779B97F4A7C15ULL) ^ salt;
}

/* number of stamped words in a buffer of `size` bytes */
static inline size_t chain_words(size_t size)
{
    return size / 64 + (size % 64 >= 8 ? 1 : 0);
}

static void chain_step(struct chain *c, uint64_t *started)
{
    size_t old = c->size;
    size_t next = old == 0 ? REALLOC_FIRST : old + old / 2;
    uint64_t *p = realloc(c->buf, next);
    g_ops++;
    if (p == NULL) {
        fprintf(stderr, "comprehensive: realloc phase: realloc(%p, %zu) returned NULL\n",
                (void *)c->buf, next);
        exit(2);
    }
    if (((uintptr_t)p & 15) != 0) {
        fprintf(stderr, "comprehensive: realloc phase: %p is not 16-byte aligned (size %zu)\n",
                (void *)p, next);
        exit(2);
    }
    if (old == 0)
        c->salt = mix64(0xA110CULL ^ ++*started);
    size_t have = chain_words(old), want = chain_words(next);
    for (size_t k = 0; k < have; k++)
        if (p[k * 8] != chain_word(c->salt, k)) {
            fprintf(stderr, "comprehensive: realloc phase: content lost growing %zu -> %zu bytes "
                    "(word at offset %zu, block %p)\n", old, next, k * 64, (void *)p);
            exit(2);
        }
    for (size_t k = have; k < want; k++)
        p[k * 8] = chain_word(c->salt, k);
    c->buf = p;
    c->size = next;
    if (next > REALLOC_LAST) { /* chain complete: start over */
        free(p);
        g_ops++;
        c->buf = NULL;
        c->size = 0;
    }
}

static void run_realloc(uint64_t chains_to_start)
{
    struct chain live[REALLOC_LIVE_CHAINS] = { { NULL, 0, 0 } };
    uint64_t started = 0;
    /* round-robin, so each chain's neighbours keep changing; once enough
     * chains have been started, the ones still growing finish */
    for (;;) {
        int busy = 0;
        for (int i = 0; i < REALLOC_LIVE_CHAINS; i++) {
            struct chain *c = &live[i];
            if (c->size == 0 && started >= chains_to_start)
                continue;
            chain_step(c, &started);
            busy = 1;
        }
        if (!busy)
            break;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: comprehensive <scale>\n"
            "  scale 1 is the full sweep, 0.1 a tenth of it (any positive number up to 1000)\n");
    exit(1);
}

static uint64_t scaled(double base, double scale)
{
    double v = round(base * scale);
    return v < 1 ? 1 : (uint64_t)v;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        usage();
    char *end;
    errno = 0;
    double scale = strtod(argv[1], &end);
    if (errno || end == argv[1] || *end != '\0' || !(scale > 0) || scale > 1000)
        usage();
    g_verbose = getenv("COMPREHENSIVE_VERBOSE") != NULL;

    double start = now_seconds();
    unsigned nphases = sizeof g_phases / sizeof g_phases[0];
    for (unsigned i = 0; i < nphases; i++) {
        double t0 = now_seconds();
        uint64_t ops0 = g_ops;
        run_churn(i, &g_phases[i], scaled(g_phases[i].base_ops, scale));
        if (g_verbose)
            fprintf(stderr, "comprehensive: %-8s %12llu ops %8.3f s\n", g_phases[i].name,
                    (unsigned long long)(g_ops - ops0), now_seconds() - t0);
    }
    double t0 = now_seconds();
    uint64_t ops0 = g_ops;
    run_realloc(scaled(REALLOC_BASE_CHAINS, scale));
    if (g_verbose)
        fprintf(stderr, "comprehensive: %-8s %12llu ops %8.3f s\n", "realloc",
                (unsigned long long)(g_ops - ops0), now_seconds() - t0);
    double elapsed = now_seconds() - start;

    print_result(g_ops, elapsed, "");
    return 0;
}
