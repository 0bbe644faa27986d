/* Fault injection: HAKMEM's OS mapping calls made to fail on purpose
 * (hak_fault_inject, HAKMEM_FAULT_EVERY, HAKMEM_FAULT_BUDGET_MB).
 *
 * Tier by tier (Tiny, Mid, Large, Huge, aligned, calloc, realloc growth), each
 * in a fresh child process, blocks are allocated and filled while every Nth
 * mapping call fails (N = 1, 2, 3, 7) or while the bytes HAKMEM maps are held
 * to a budget just above what it maps already (1 MiB and 24 MiB of slack).
 * Every call must return a usable block or NULL with errno ENOMEM, and NULL
 * must actually happen; every live block keeps its contents; a failed realloc
 * leaves the old block as it was; memory HAKMEM already holds keeps serving
 * (free a block, ask for the same size again: it must come back, failures
 * or not); and with injection off again, allocation works and everything
 * frees, leaving the in-use figure where it started.
 *
 * Tiny/Mid/Large blocks come from arenas of SuperSlabs (4 MiB, then twice
 * the last, up to 64 MiB), and a failed arena is retried as a single 4 MiB
 * SuperSlab: those tiers meet a failure only once the current arena is used
 * up (so each child allocates well past 64 MiB), and with N >= 2 the retry
 * is the next call, which succeeds.
 * Huge blocks (and alignments above 64 KiB) map each block, but may reuse a
 * freed mapping HAKMEM kept.  NULL is therefore certain in every tier with
 * N = 1 and with a budget, and each tier must see it; with N >= 2 the same
 * properties are checked however often the failures land.
 *
 * Also: 4 threads allocating mixed sizes under every-3rd failure, handing
 * blocks to each other; and the test binary re-executed with
 * HAKMEM_FAULT_EVERY=2 (also =1, and HAKMEM_FAULT_BUDGET_MB=1) in its
 * environment, to show that the setting works from start-up and that the
 * first allocations succeed or fail cleanly. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define SLAB_ALIGN_MAX (64 * KiB)    /* larger alignments get their own mapping */
#define LARGE_MAX (2 * MiB)          /* larger blocks get their own mapping     */

/* ---- patterns ----------------------------------------------------------------- */
/* Byte i of a block filled with seed is byte i % 8 of mix(seed, i / 8): the
 * pattern depends on the offset only, so a block grown by realloc keeps a
 * valid prefix and only the new part needs filling. */
static inline uint64_t mix(uint64_t seed, uint64_t k)
{
    uint64_t x = seed ^ (k * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return x;
}

static inline unsigned char byte_at(uint64_t seed, size_t i)
{
    return (unsigned char)(mix(seed, i >> 3) >> ((i & 7) * 8));
}

static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t seed)
{
    size_t i = from;
    for (; i < to && (i & 7); i++)
        p[i] = byte_at(seed, i);
    for (; i + 8 <= to; i += 8)
        *(uint64_t *)(void *)(p + i) = mix(seed, i >> 3);
    for (; i < to; i++)
        p[i] = byte_at(seed, i);
}

/* 1 if bytes [from, to) of p hold the pattern of seed. */
static int range_ok(const unsigned char *p, size_t from, size_t to, uint64_t seed)
{
    size_t i = from;
    for (; i < to && (i & 7); i++)
        if (p[i] != byte_at(seed, i))
            return 0;
    for (; i + 8 <= to; i += 8)
        if (*(const uint64_t *)(const void *)(p + i) != mix(seed, i >> 3))
            return 0;
    for (; i < to; i++)
        if (p[i] != byte_at(seed, i))
            return 0;
    return 1;
}

/* ---- blocks and their bookkeeping ------------------------------------------------ */
struct blk {
    unsigned char *p;
    size_t n;          /* bytes requested (all filled)             */
    size_t align;      /* alignment asked for (0: plain malloc)   */
    uint64_t seed;
};

/* What one child saw; the parent turns it into CHECKs and the summary. */
struct tally {
    unsigned long calls, nulls;      /* allocation calls made with injection on */
    unsigned long bad_errno;         /* NULL with errno != ENOMEM               */
    unsigned long bad_block;         /* misaligned, too small, calloc not zero  */
    unsigned long corrupt;           /* a live block lost its pattern           */
    unsigned long realloc_nulls;     /* realloc calls that failed               */
    unsigned long realloc_kept_bad;  /* ... and did not leave the old block     */
    unsigned long reserve_checks, reserve_bad; /* free one, ask again: must work */
    unsigned long new_maps;          /* mappings made under a 1 MiB budget ...  */
    unsigned long unmaps;            /* ... and unmappings that made room        */
    size_t over_budget;              /* mapped bytes beyond the budget at the end */
    int first_errno;
    size_t first_bad_size;
};

static void note_null(struct tally *t, int err, size_t n)
{
    t->nulls++;
    if (err != ENOMEM) {
        if (t->bad_errno++ == 0) {
            t->first_errno = err;
            t->first_bad_size = n;
        }
    }
}

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* A size in [lo, hi]: a power-of-two bucket at random, uniform within it. */
static size_t pick_size(uint64_t *rng, size_t lo, size_t hi)
{
    unsigned a = 63u - (unsigned)__builtin_clzl(lo), b = 63u - (unsigned)__builtin_clzl(hi);
    unsigned e = a + (unsigned)(rng_next(rng) % (b - a + 1));
    size_t base = (size_t)1 << e;
    size_t n = base + (size_t)((rng_next(rng) << 31 | rng_next(rng)) % base);
    return n < lo ? lo : n > hi ? hi : n;
}

static const size_t aligns[] = { 16, 32, 64, 256, 4096, 64 * KiB, 128 * KiB, 1 * MiB, 4 * MiB };
#define NALIGNS (sizeof aligns / sizeof aligns[0])

/* The allocation kinds a tier uses. */
enum how { USE_MALLOC, USE_ALIGNED, USE_CALLOC, USE_REALLOC };

/* One allocation of n bytes in the manner of `how` (aligned: *align is
 * chosen here).  Returns the block or NULL with errno as the call left it. */
static void *alloc_one(enum how how, size_t n, size_t *align, uint64_t *rng)
{
    void *p = NULL;
    *align = 0;
    switch (how) {
    case USE_MALLOC:
    case USE_REALLOC:
        return malloc(n);
    case USE_CALLOC:
        if (n % 16 == 0 && rng_next(rng) % 2)
            return calloc(n / 16, 16);
        return calloc(1, n);
    case USE_ALIGNED: {
        size_t a = aligns[rng_next(rng) % NALIGNS];
        *align = a;
        switch (rng_next(rng) % 3) {
        case 0:
            return aligned_alloc(a, n);
        case 1: {
            int rc = posix_memalign(&p, a, n);
            if (rc != 0) {
                errno = rc;      /* posix_memalign reports through its result */
                return NULL;
            }
            return p;
        }
        default:
            return memalign(a, n);
        }
    }
    }
    return NULL;
}

/* The same request again (for the "memory held keeps serving" check). */
static void *alloc_again(enum how how, const struct blk *b)
{
    if (b->align)
        return aligned_alloc(b->align, b->n);
    return how == USE_CALLOC ? calloc(1, b->n) : malloc(b->n);
}

/* Checks a fresh block: alignment, usable size, zeroes for calloc. */
static int fresh_ok(enum how how, const unsigned char *p, size_t n, size_t align)
{
    if ((uintptr_t)p % (align ? align : 16) != 0)
        return 0;
    if (malloc_usable_size((void *)p) < n)
        return 0;
    if (how == USE_CALLOC) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0)
                return 0;
    }
    return 1;
}

/* Does this block live in a slab (not in a mapping of its own)? */
static int slab_backed(const struct blk *b)
{
    return b->n <= LARGE_MAX && b->align <= SLAB_ALIGN_MAX;
}

#define MAXB (1u << 19)
static struct blk tab[MAXB];
static size_t ntab;

static void tab_free(size_t i, struct tally *t)
{
    if (!range_ok(tab[i].p, 0, tab[i].n, tab[i].seed))
        t->corrupt++;
    free(tab[i].p);
    tab[i] = tab[--ntab];
}

static void verify_all(struct tally *t)
{
    for (size_t i = 0; i < ntab; i++)
        if (!range_ok(tab[i].p, 0, tab[i].n, tab[i].seed))
            t->corrupt++;
}

/* ---- the shared page: how children report ------------------------------------- */
struct report {
    int done, checks, failures;
    struct tally t;
};
static struct report *rep;

/* ---- one tier under one injection mode ----------------------------------------- */
struct tier {
    const char *name;
    size_t lo, hi;           /* request sizes                                  */
    enum how how;
    size_t total;            /* bytes to allocate while injecting              */
    size_t max_live;         /* live blocks kept at most (Huge: RSS)            */
    int preload;             /* blocks allocated before injection starts        */
};

struct mode {
    const char *name;
    size_t every;            /* every Nth mapping fails                         */
    size_t slack;            /* budget = mapped now + slack (when every == 0)   */
};

struct job {
    const struct tier *tier;
    const struct mode *mode;
};

static size_t mapped_now(void)
{
    struct hak_stats st;
    hak_stats_get(&st);
    return st.mapped;
}

static size_t os_maps_now(void)
{
    struct hak_stats st;
    hak_stats_get(&st);
    return st.os_maps;
}

static size_t os_unmaps_now(void)
{
    struct hak_stats st;
    hak_stats_get(&st);
    return st.os_unmaps;
}

static size_t budget;

/* Starts injection as the mode says. */
static void inject(const struct mode *m)
{
    budget = m->every ? 0 : mapped_now() + m->slack;
    hak_fault_inject(m->every, budget);
}

/* Ends the injected phase.  The mapped figure (all HAKMEM holds) must be
 * within the budget.  Under a budget of 1 MiB above what was mapped, a new
 * mapping fits only where an unmapping made room (the smallest HAKMEM makes
 * in one thread, for a SuperSlab or a Huge block, is 4 MiB or more). */
static void end_injection(const struct mode *m, size_t maps_before, size_t unmaps_before,
                          struct tally *t)
{
    if (budget && mapped_now() > budget)
        t->over_budget = mapped_now() - budget;
    if (m->every == 0 && m->slack < 4 * MiB) {
        t->new_maps = os_maps_now() - maps_before;
        t->unmaps = os_unmaps_now() - unmaps_before;
    }
    hak_fault_inject(0, 0);
}

static void add_block(const struct tier *tr, unsigned char *p, size_t n, size_t align, uint64_t *rng,
                      struct tally *t)
{
    if (!fresh_ok(tr->how, p, n, align))
        t->bad_block++;
    uint64_t seed = rng_next(rng) << 32 | rng_next(rng);
    fill_range(p, 0, n, seed);
    tab[ntab++] = (struct blk){ p, n, align, seed };
}

/* Allocates (preload) blocks with injection off; they must all succeed. */
static void preload(const struct tier *tr, uint64_t *rng, struct tally *t)
{
    int missing = 0;
    for (int i = 0; i < tr->preload; i++) {
        size_t align, n = pick_size(rng, tr->lo, tr->hi);
        unsigned char *p = alloc_one(tr->how, n, &align, rng);
        if (p == NULL)
            missing++;
        else
            add_block(tr, p, n, align, rng, t);
    }
    CHECK(missing == 0, "%s: %d of %d allocations failed with injection off", tr->name, missing,
          tr->preload);
}

/* Injection off: the tier must work again, and everything must free. */
static void recover_and_free_all(const struct tier *tr, const char *label, uint64_t *rng,
                                 struct tally *t, size_t in_use_before)
{
    verify_all(t);
    int failed = 0;
    for (int i = 0; i < 32; i++) {
        size_t align, n = pick_size(rng, tr->lo, tr->hi);
        errno = 0;
        unsigned char *p = alloc_one(tr->how, n, &align, rng);
        if (p == NULL) {
            if (failed++ == 0)
                fprintf(stderr, "%s: %zu bytes (align %zu) failed after injection off, errno %d\n",
                        label, n, align, errno);
            continue;
        }
        add_block(tr, p, n, align, rng, t);
        if (tr->max_live && ntab > tr->max_live)
            tab_free(0, t);
    }
    CHECK(failed == 0, "%s: %d of 32 allocations failed with injection off", label, failed);
    while (ntab > 0)
        tab_free(ntab - 1, t);
    struct hak_stats st;
    hak_stats_get(&st);
    CHECK(st.in_use == in_use_before, "%s: in-use bytes %zu after freeing everything, %zu before",
          label, st.in_use, in_use_before);
}

static void tier_child(const void *arg)
{
    const struct job *job = arg;
    const struct tier *tr = job->tier;
    const struct mode *m = job->mode;
    struct tally *t = &rep->t;
    char label[96];
    snprintf(label, sizeof label, "%s, %s", tr->name, m->name);
    uint64_t rng = 0x1234567 + (uint64_t)tr->lo * 7 + m->every * 131 + m->slack;
    struct hak_stats st0;
    hak_stats_get(&st0);

    ntab = 0;
    preload(tr, &rng, t);
    size_t maps_before = os_maps_now(), unmaps_before = os_unmaps_now();
    inject(m);
    size_t total = 0, iters = 0;
    while (total < tr->total && t->nulls < 64 && ntab < MAXB && iters++ < 4000000) {
        /* Keep about a quarter of what was allocated freed again (fragmentation, reuse). */
        if (ntab > 0 && (rng_next(&rng) % 4 == 0 || (tr->max_live && ntab >= tr->max_live)))
            tab_free(rng_next(&rng) % ntab, t);
        size_t align, n = pick_size(&rng, tr->lo, tr->hi);
        errno = 0;
        t->calls++;
        unsigned char *p = alloc_one(tr->how, n, &align, &rng);
        if (p == NULL) {
            note_null(t, errno, n);
            /* What HAKMEM holds must keep serving: free a slab block, ask for
             * the same again. */
            if (t->reserve_checks < 16) {
                size_t start = ntab ? rng_next(&rng) % ntab : 0;
                for (size_t i = 0; i < ntab; i++) {
                    size_t k = (start + i) % ntab;
                    if (!slab_backed(&tab[k]))
                        continue;
                    struct blk b = tab[k];
                    tab_free(k, t);
                    t->reserve_checks++;
                    unsigned char *q = alloc_again(tr->how, &b);
                    if (q == NULL) {
                        if (t->reserve_bad++ == 0)
                            fprintf(stderr, "%s: %zu bytes (align %zu) freed and asked again: NULL\n",
                                    label, b.n, b.align);
                    } else {
                        add_block(tr, q, b.n, b.align, &rng, t);
                    }
                    break;
                }
            }
            continue;
        }
        add_block(tr, p, n, align, &rng, t);
        total += n;
    }
    verify_all(t);
    end_injection(m, maps_before, unmaps_before, t);
    recover_and_free_all(tr, label, &rng, t, st0.in_use);
}

/* ---- realloc growth across the tiers ------------------------------------------- */
#define CHAINS 16
#define CHAIN_MAX (32 * MiB)

static void realloc_child(const void *arg)
{
    const struct job *job = arg;
    const struct tier *tr = job->tier;
    const struct mode *m = job->mode;
    struct tally *t = &rep->t;
    char label[96];
    snprintf(label, sizeof label, "%s, %s", tr->name, m->name);
    uint64_t rng = 0xabcdef + m->every * 17 + m->slack;
    struct hak_stats st0;
    hak_stats_get(&st0);
    struct blk chain[CHAINS];
    memset(chain, 0, sizeof chain);

    ntab = 0;
    preload(tr, &rng, t);
    size_t maps_before = os_maps_now(), unmaps_before = os_unmaps_now();
    inject(m);
    /* Ballast: use up the current arena (and some more), so that growing a
     * block inside the slab tiers needs new mappings too. */
    for (int i = 0; i < 96; i++) {
        size_t align, n = MiB;
        errno = 0;
        t->calls++;
        unsigned char *p = alloc_one(USE_MALLOC, n, &align, &rng);
        if (p == NULL) {
            note_null(t, errno, n);
            break;
        }
        add_block(tr, p, n, 0, &rng, t);
    }
    for (int op = 0; op < 300; op++) {
        struct blk *b = &chain[rng_next(&rng) % CHAINS];
        if (b->p == NULL) {
            size_t n = pick_size(&rng, 16, 1024);
            errno = 0;
            t->calls++;
            b->p = malloc(n);
            if (b->p == NULL) {
                note_null(t, errno, n);
                continue;
            }
            b->n = n;
            b->seed = rng_next(&rng) << 32 | rng_next(&rng);
            fill_range(b->p, 0, n, b->seed);
            continue;
        }
        unsigned r = (unsigned)(rng_next(&rng) % 8);
        size_t n;
        if (r == 0) {                               /* done with it */
            if (!range_ok(b->p, 0, b->n, b->seed))
                t->corrupt++;
            free(b->p);
            b->p = NULL;
            continue;
        }
        if (r == 1 || b->n >= CHAIN_MAX / 2)        /* shrink, often across tiers */
            n = pick_size(&rng, 16, b->n / 2 > 16 ? b->n / 2 : 16);
        else                                        /* grow 2x .. 7x */
            n = b->n * (2 + rng_next(&rng) % 6);
        if (n > CHAIN_MAX)
            n = CHAIN_MAX;
        errno = 0;
        t->calls++;
        unsigned char *q = realloc(b->p, n);
        if (q == NULL) {
            note_null(t, errno, n);
            t->realloc_nulls++;
            /* The old block must be untouched and still usable. */
            if (!range_ok(b->p, 0, b->n, b->seed) || malloc_usable_size(b->p) < b->n) {
                if (t->realloc_kept_bad++ == 0)
                    fprintf(stderr, "%s: failed realloc %zu -> %zu left the old block changed\n",
                            label, b->n, n);
            }
            continue;
        }
        size_t keep = n < b->n ? n : b->n;
        if (!range_ok(q, 0, keep, b->seed) || malloc_usable_size(q) < n || (uintptr_t)q % 16)
            t->corrupt++;
        if (n > b->n)
            fill_range(q, b->n, n, b->seed);
        b->p = q;
        b->n = n;
    }
    for (int i = 0; i < CHAINS; i++)
        if (chain[i].p && !range_ok(chain[i].p, 0, chain[i].n, chain[i].seed))
            t->corrupt++;
    verify_all(t);
    end_injection(m, maps_before, unmaps_before, t);
    /* Injection off: every chain must grow to Huge and shrink to Tiny again. */
    int failed = 0;
    for (int i = 0; i < CHAINS; i++) {
        struct blk *b = &chain[i];
        const size_t steps[] = { 3000, 200000, 5 * MiB, 40, 0 };
        for (int s = 0; steps[s]; s++) {
            unsigned char *q = realloc(b->p, steps[s]);
            if (q == NULL) {
                failed++;
                break;
            }
            if (b->p == NULL) {
                b->seed = (uint64_t)i * 977 + 1;
                b->n = 0;
            }
            size_t keep = steps[s] < b->n ? steps[s] : b->n;
            if (!range_ok(q, 0, keep, b->seed))
                t->corrupt++;
            if (steps[s] > b->n)
                fill_range(q, b->n, steps[s], b->seed);
            b->p = q;
            b->n = steps[s];
        }
    }
    CHECK(failed == 0, "%s: %d realloc chains failed with injection off", label, failed);
    for (int i = 0; i < CHAINS; i++) {
        if (chain[i].p && !range_ok(chain[i].p, 0, chain[i].n, chain[i].seed))
            t->corrupt++;
        free(chain[i].p);
    }
    recover_and_free_all(tr, label, &rng, t, st0.in_use);
}

/* ---- children ------------------------------------------------------------------- */
static const char *status_text(int st, char *buf, size_t len)
{
    if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit code %d", WEXITSTATUS(st));
    else
        snprintf(buf, len, "status %#x", st);
    return buf;
}

/* Runs fn(arg) in a fresh child; adds its checks to ours; 0 if it ran to the end. */
static int run_in_child(const char *label, void (*fn)(const void *), const void *arg)
{
    memset(rep, 0, sizeof *rep);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "%s: fork failed", label);
        return -1;
    }
    if (pid == 0) {
        alarm(300);
        t_checks = t_failures = 0;
        start_background();             /* the child's own, before any baseline */
        fn(arg);
        rep->checks = t_checks;
        rep->failures = t_failures;
        rep->done = 1;
        _exit(0);
    }
    int st = 0;
    char why[96];
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && rep->done, "%s: child %s", label,
          status_text(st, why, sizeof why));
    t_checks += rep->checks;
    t_failures += rep->failures;
    return rep->done ? 0 : -1;
}

/* The checks every child's tally must pass. */
static void check_tally(const char *label, const struct tally *t, int null_expected)
{
    CHECK(t->bad_errno == 0, "%s: %lu NULL results with errno != ENOMEM (first: errno %d, %zu bytes)",
          label, t->bad_errno, t->first_errno, t->first_bad_size);
    CHECK(t->bad_block == 0, "%s: %lu blocks misaligned, too small or (calloc) not zero", label,
          t->bad_block);
    CHECK(t->corrupt == 0, "%s: %lu live blocks lost their contents", label, t->corrupt);
    CHECK(t->realloc_kept_bad == 0, "%s: %lu failed reallocs changed the old block", label,
          t->realloc_kept_bad);
    CHECK(t->reserve_bad == 0, "%s: %lu of %lu freed-and-asked-again requests failed", label,
          t->reserve_bad, t->reserve_checks);
    CHECK(t->new_maps <= t->unmaps, "%s: %lu mappings made under a budget 1 MiB above what was "
          "mapped, with %lu unmappings", label, t->new_maps, t->unmaps);
    CHECK(t->over_budget == 0, "%s: %zu bytes mapped beyond the budget", label, t->over_budget);
    if (null_expected)
        CHECK(t->nulls > 0, "%s: injection never bit (%lu calls, no NULL)", label, t->calls);
}

static const struct tier tiers[] = {
    { "Tiny 16..1024 B", 16, 1024, USE_MALLOC, 160 * MiB, 0, 64 },
    { "Mid 1..64 KiB", 1025, 64 * KiB, USE_MALLOC, 160 * MiB, 0, 32 },
    { "Large 64 KiB..2 MiB", 64 * KiB + 1, 2 * MiB, USE_MALLOC, 160 * MiB, 0, 8 },
    { "Huge 3..64 MiB", 3 * MiB, 64 * MiB, USE_MALLOC, 384 * MiB, 4, 2 },
    { "aligned (16 B..4 MiB)", 16, 3 * MiB, USE_ALIGNED, 160 * MiB, 0, 32 },
    { "calloc 16 B..8 MiB", 16, 8 * MiB, USE_CALLOC, 160 * MiB, 0, 32 },
    { "realloc growth", 16, 1024, USE_REALLOC, 0, 0, 16 },
};
#define NTIERS (sizeof tiers / sizeof tiers[0])

static const struct mode modes[] = {
    { "every 1st mapping fails", 1, 0 },
    { "every 2nd mapping fails", 2, 0 },
    { "every 3rd mapping fails", 3, 0 },
    { "every 7th mapping fails", 7, 0 },
    { "budget mapped+1 MiB", 0, 1 * MiB },
    { "budget mapped+24 MiB", 0, 24 * MiB },
};
#define NMODES (sizeof modes / sizeof modes[0])

/* ---- threads ------------------------------------------------------------------------ */
#define NTHREADS 4
#define TSLOTS 256
#define TOPS 8000
#define MAILBOX 64

struct mailbox {
    pthread_mutex_t lock;
    struct blk items[MAILBOX];
    int n;
};

struct worker {
    int id;
    struct tally t;
};

static struct mailbox boxes[NTHREADS];
static pthread_barrier_t start_line;

static size_t mixed_size(uint64_t *rng)
{
    unsigned r = (unsigned)(rng_next(rng) % 100);
    if (r < 50)
        return pick_size(rng, 16, 1024);
    if (r < 80)
        return pick_size(rng, 1025, 64 * KiB);
    if (r < 98)
        return pick_size(rng, 64 * KiB + 1, 2 * MiB);
    return pick_size(rng, 2 * MiB + 1, 5 * MiB);
}

static void drain_box(struct mailbox *box, struct tally *t)
{
    struct blk got[MAILBOX];
    pthread_mutex_lock(&box->lock);
    int n = box->n;
    memcpy(got, box->items, sizeof(struct blk) * (size_t)n);
    box->n = 0;
    pthread_mutex_unlock(&box->lock);
    for (int i = 0; i < n; i++) {
        if (!range_ok(got[i].p, 0, got[i].n, got[i].seed))
            t->corrupt++;
        free(got[i].p);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct tally *t = &w->t;
    uint64_t rng = 777 + (uint64_t)w->id * 1000003;
    struct blk *slot = calloc(TSLOTS, sizeof *slot);   /* before injection starts */
    pthread_barrier_wait(&start_line);                 /* main turns injection on */
    pthread_barrier_wait(&start_line);
    if (slot == NULL)
        return NULL;
    for (int op = 0; op < TOPS; op++) {
        struct blk *b = &slot[rng_next(&rng) % TSLOTS];
        unsigned r = (unsigned)(rng_next(&rng) % 100);
        if (op % 64 == 0)
            drain_box(&boxes[w->id], t);
        if (b->p != NULL) {
            if (!range_ok(b->p, 0, b->n, b->seed))
                t->corrupt++;
            if (r < 20) {                       /* realloc to another size */
                size_t n = mixed_size(&rng);
                errno = 0;
                t->calls++;
                unsigned char *q = realloc(b->p, n);
                if (q == NULL) {
                    note_null(t, errno, n);
                    t->realloc_nulls++;
                    if (!range_ok(b->p, 0, b->n, b->seed))
                        t->realloc_kept_bad++;
                    continue;
                }
                size_t keep = n < b->n ? n : b->n;
                if (!range_ok(q, 0, keep, b->seed))
                    t->corrupt++;
                if (n > b->n)
                    fill_range(q, b->n, n, b->seed);
                b->p = q;
                b->n = n;
                continue;
            }
            if (r < 30) {                       /* hand it to the next thread */
                struct mailbox *box = &boxes[(w->id + 1) % NTHREADS];
                pthread_mutex_lock(&box->lock);
                if (box->n < MAILBOX) {
                    box->items[box->n++] = *b;
                    b->p = NULL;
                }
                pthread_mutex_unlock(&box->lock);
                if (b->p == NULL)
                    continue;
            }
            free(b->p);
            b->p = NULL;
            continue;
        }
        size_t n = mixed_size(&rng), align = 0;
        errno = 0;
        t->calls++;
        unsigned char *p;
        if (r < 60) {
            p = malloc(n);
        } else if (r < 75) {
            p = calloc(1, n);
        } else if (r < 90) {
            align = aligns[rng_next(&rng) % NALIGNS];
            p = aligned_alloc(align, n);
        } else {
            void *q = NULL;
            align = aligns[rng_next(&rng) % 6];
            int rc = posix_memalign(&q, align, n);
            errno = rc;
            p = rc ? NULL : q;
        }
        if (p == NULL) {
            note_null(t, errno, n);
            continue;
        }
        if (!fresh_ok(r >= 60 && r < 75 ? USE_CALLOC : USE_MALLOC, p, n, align))
            t->bad_block++;
        b->p = p;
        b->n = n;
        b->align = align;
        b->seed = rng_next(&rng) << 32 | rng_next(&rng);
        fill_range(p, 0, n, b->seed);
    }
    for (int i = 0; i < TSLOTS; i++) {
        if (slot[i].p == NULL)
            continue;
        if (!range_ok(slot[i].p, 0, slot[i].n, slot[i].seed))
            t->corrupt++;
        free(slot[i].p);
    }
    free(slot);
    return NULL;
}

static void threads_child(const void *arg)
{
    (void)arg;
    struct tally *t = &rep->t;
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    pthread_barrier_init(&start_line, NULL, NTHREADS + 1);
    int started = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_mutex_init(&boxes[i].lock, NULL);
        boxes[i].n = 0;
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
    }
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) == 0)
            started++;
    CHECK(started == NTHREADS, "only %d of %d threads started", started, NTHREADS);
    if (started != NTHREADS)
        _exit(3);                 /* the barrier would never open */
    pthread_barrier_wait(&start_line);   /* every thread has its heap */
    hak_fault_inject(3, 0);
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        drain_box(&boxes[i], t);  /* blocks handed over after their thread last looked */
    hak_fault_inject(0, 0);
    for (int i = 0; i < NTHREADS; i++) {
        struct tally *wt = &w[i].t;
        t->calls += wt->calls;
        t->nulls += wt->nulls;
        t->corrupt += wt->corrupt;
        t->bad_block += wt->bad_block;
        t->realloc_nulls += wt->realloc_nulls;
        t->realloc_kept_bad += wt->realloc_kept_bad;
        if (wt->bad_errno && t->bad_errno == 0) {
            t->first_errno = wt->first_errno;
            t->first_bad_size = wt->first_bad_size;
        }
        t->bad_errno += wt->bad_errno;
    }
    /* Injection off: mixed sizes work again, from this thread. */
    uint64_t rng = 4242;
    int failed = 0;
    void *keep[64];
    for (int i = 0; i < 64; i++) {
        size_t n = mixed_size(&rng);
        keep[i] = malloc(n);
        if (keep[i] == NULL)
            failed++;
        else
            memset(keep[i], 0x5a, n);
    }
    CHECK(failed == 0, "threads: %d of 64 allocations failed with injection off", failed);
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    /* (No in-use comparison here: the C library keeps a small block per
     * exited thread, for the thread's stack it caches.) */
}

/* ---- HAKMEM_FAULT_* from the environment at start-up ------------------------------- */
/* Runs in the re-executed binary: HAKMEM_FAULT_EVERY=2 (or =1, or a budget)
 * was set before exec, so injection is on from the first mapping HAKMEM
 * makes.  With every mapping failing, or a budget of 1 MiB, nothing can be
 * had at all: every call must fail cleanly, from the very first. */
static int env_child(const char *what)
{
    int nothing_fits = strcmp(what, "every=2") != 0;
    unsigned long nulls = 0, bad_errno = 0, bad_block = 0, ok = 0;
    /* The first allocations of each kind: a valid block or NULL with ENOMEM. */
    const size_t sizes[] = { 16, 100, 1000, 5000, 100000, 1500000, 3 * MiB, 10 * MiB };
    void *keep[3][8];
    uint64_t seeds = 99;
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < 3; k++) {
            errno = 0;
            void *p = k == 0 ? malloc(sizes[i]) : k == 1 ? calloc(1, sizes[i])
                                                          : aligned_alloc(4096, sizes[i]);
            keep[k][i] = p;
            if (p == NULL) {
                nulls++;
                bad_errno += errno != ENOMEM;
                continue;
            }
            ok++;
            if (!fresh_ok(k == 1 ? USE_CALLOC : USE_MALLOC, p, sizes[i], k == 2 ? 4096 : 0))
                bad_block++;
            fill_range(p, 0, sizes[i], seeds + (uint64_t)(i * 3 + k));
        }
    }
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 3; k++)
            if (keep[k][i]) {
                CHECK(range_ok(keep[k][i], 0, sizes[i], seeds + (uint64_t)(i * 3 + k)),
                      "env %s: block of %zu bytes changed", what, sizes[i]);
                free(keep[k][i]);
            }
    CHECK(bad_errno == 0, "env %s: %lu NULL results without ENOMEM", what, bad_errno);
    CHECK(bad_block == 0, "env %s: %lu bad blocks", what, bad_block);
    /* A Huge block too big to be kept for reuse (40 MiB) is one mapping
     * call: with every 2nd failing, some of eight in a row fail and some
     * succeed; within the budget, none fit. */
    unsigned long huge_null = 0, huge_ok = 0;
    for (int i = 0; i < 8; i++) {
        errno = 0;
        unsigned char *p = malloc(40 * MiB);
        if (p == NULL) {
            huge_null++;
            CHECK(errno == ENOMEM, "env %s: Huge NULL with errno %d", what, errno);
        } else {
            huge_ok++;
            fill_range(p, 0, 64 * KiB, 5);
            fill_range(p, 40 * MiB - 64 * KiB, 40 * MiB, 5);
            CHECK(range_ok(p, 0, 64 * KiB, 5) && range_ok(p, 40 * MiB - 64 * KiB, 40 * MiB, 5),
                  "env %s: Huge block changed", what);
            free(p);
        }
    }
    if (nothing_fits) {
        CHECK(ok == 0, "env %s: %lu of the first allocations succeeded", what, ok);
        CHECK(huge_ok == 0, "env %s: %lu of 8 Huge blocks mapped", what, huge_ok);
    } else {
        CHECK(huge_null > 0, "env every=2: no Huge allocation failed (%lu ok)", huge_ok);
        CHECK(huge_ok > 0, "env every=2: every Huge allocation failed");
    }
    /* Injection off: all of it works. */
    hak_fault_inject(0, 0);
    int failed = 0;
    for (int i = 0; i < 8; i++) {
        void *p = malloc(sizes[i]);
        void *q = calloc(1, sizes[i]);
        failed += (p == NULL) + (q == NULL);
        free(p);
        free(q);
    }
    CHECK(failed == 0, "env %s: %d allocations failed with injection off", what, failed);
    printf("env %s: %lu of %lu first allocations NULL, %lu of 8 Huge NULL\n", what, nulls,
           nulls + ok, huge_null);
    return test_done("env-child");
}

/* Re-executes this binary with var=value set; adds the child's checks to ours. */
static void run_env_child(const char *var, const char *value, const char *what)
{
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(0, "pipe failed");
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "fork failed");
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        unsetenv("HAKMEM_FAULT_EVERY");
        unsetenv("HAKMEM_FAULT_BUDGET_MB");
        setenv(var, value, 1);
        alarm(120);
        char *args[] = { "test_faults", "--env-child", (char *)what, NULL };
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + len, sizeof out - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            if (len == sizeof out - 1)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    out[len] = 0;
    close(fds[0]);
    int st = 0;
    char why[96];
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s=%s: child %s; its output: \"%s\"", var, value,
          status_text(st, why, sizeof why), out);
    int checks = -1, failures = -1;
    const char *line = strstr(out, "env-child: ");
    CHECK(line && sscanf(line, "env-child: %d checks, %d failed", &checks, &failures) == 2,
          "%s=%s: no check counts in the child's output \"%s\"", var, value, out);
    if (checks >= 0) {
        t_checks += checks;
        t_failures += failures;
    }
    const char *first = strstr(out, "env ");
    if (first)
        printf("  %.*s", (int)(strchr(first, '\n') ? strchr(first, '\n') - first + 1 : 0), first);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--env-child") == 0)
        return env_child(argv[2]);

    rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rep == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (size_t i = 0; i < NTIERS; i++) {
        const struct tier *tr = &tiers[i];
        unsigned long tier_nulls = 0, tier_realloc_nulls = 0;
        for (size_t j = 0; j < NMODES; j++) {
            const struct mode *m = &modes[j];
            char label[128];
            snprintf(label, sizeof label, "%s, %s", tr->name, m->name);
            struct job job = { tr, m };
            if (run_in_child(label, tr->how == USE_REALLOC ? realloc_child : tier_child, &job) != 0)
                continue;
            /* Certain to bite: every mapping failing, or a budget.  (Every
             * Nth: slab tiers retry a failed arena at once; Huge blocks may
             * reuse a cached mapping.  The tier as a whole must see NULL.) */
            int certain = m->every == 1 || m->every == 0;
            check_tally(label, &rep->t, certain);
            if (tr->how == USE_REALLOC && certain)
                CHECK(rep->t.realloc_nulls > 0, "%s: no realloc failed", label);
            tier_nulls += rep->t.nulls;
            tier_realloc_nulls += rep->t.realloc_nulls;
            printf("  %-48s %8lu calls, %6lu NULL\n", label, rep->t.calls, rep->t.nulls);
        }
        CHECK(tier_nulls > 0, "%s: no NULL in any mode", tr->name);
        if (tr->how == USE_REALLOC)
            CHECK(tier_realloc_nulls > 0, "%s: no realloc ever failed", tr->name);
    }

    if (run_in_child("4 threads, every 3rd mapping fails", threads_child, NULL) == 0) {
        check_tally("4 threads", &rep->t, 1);
        printf("  %-48s %8lu calls, %6lu NULL\n", "4 threads, every 3rd mapping fails", rep->t.calls,
               rep->t.nulls);
    }

    run_env_child("HAKMEM_FAULT_EVERY", "2", "every=2");
    run_env_child("HAKMEM_FAULT_EVERY", "1", "every=1");
    run_env_child("HAKMEM_FAULT_BUDGET_MB", "1", "budget");
    return test_done("test_faults");
}
