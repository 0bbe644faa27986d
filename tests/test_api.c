/* Edge cases of the prefixed hak_* API (no libc malloc names for the blocks
 * under test, so that this file also runs under ASan+UBSan against the
 * library built without its malloc overrides). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Sizes pass through volatiles so the compiler cannot reason about them. */
static volatile size_t v_size_max = SIZE_MAX;

/* ---- deterministic PRNG (block patterns: testutil.h) ---------------------- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static size_t in_use(void)
{
    struct hak_stats st;
    memset(&st, 0xff, sizeof st);
    hak_stats_get(&st);
    return st.in_use;
}

/* Common properties of a block just returned for a request of n bytes. */
static void check_block(const char *what, void *p, size_t n)
{
    CHECK(p != NULL, "%s(%zu) returned NULL", what, n);
    if (!p) return;
    size_t align = n < 16 ? 8 : 16;
    CHECK(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p not %zu-aligned", what, n, p, align);
    CHECK(hak_owns(p) == 1, "%s(%zu) = %p: hak_owns != 1", what, n, p);
    size_t u = hak_usable_size(p);
    CHECK(u >= n, "%s(%zu) = %p: usable size %zu < %zu", what, n, p, u, n);
}

static const size_t tier_sizes[] = {
    0, 1, 7, 8, 15, 16, 17, 24, 100, 512, 1023, 1024, 1025, 4096, 65535, 65536, 65537,
    100000, 1 * MiB, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 3 * MiB, 3 * MiB + 1, 5 * MiB + 17, 64 * MiB,
};
#define NTIER (sizeof tier_sizes / sizeof tier_sizes[0])

/* ---- tiers -------------------------------------------------------------- */

static void test_tiers(void)
{
    void *p[NTIER];
    size_t u[NTIER];
    for (size_t i = 0; i < NTIER; i++) {
        p[i] = hak_malloc(tier_sizes[i]);
        check_block("hak_malloc", p[i], tier_sizes[i]);
        u[i] = p[i] ? hak_usable_size(p[i]) : 0;
        if (p[i]) pattern_fill(p[i], 0, u[i], 1000 + i);   /* whole usable area is writable */
    }
    /* All live at once: no block overlaps another. */
    for (size_t i = 0; i < NTIER; i++) {
        if (!p[i]) continue;
        long bad = pattern_check(p[i], u[i], 1000 + i);
        CHECK(bad < 0, "size %zu: pattern broken at %ld (overlap?)", tier_sizes[i], bad);
        CHECK(hak_usable_size(p[i]) == u[i], "size %zu: usable size changed", tier_sizes[i]);
    }
    for (size_t i = 0; i < NTIER; i++) hak_free(p[i]);

    /* Repeat the same sizes after the frees (blocks come from caches now). */
    for (size_t r = 0; r < 3; r++)
        for (size_t i = 0; i < NTIER; i++) {
            void *q = hak_malloc(tier_sizes[i]);
            check_block("hak_malloc (again)", q, tier_sizes[i]);
            if (q) { pattern_fill(q, 0, tier_sizes[i], 7); CHECK(pattern_check(q, tier_sizes[i], 7) < 0, "rewrite"); }
            hak_free(q);
        }

    /* Every size 0..5000 and a sweep of larger ones. */
    for (size_t n = 0; n <= 5000; n++) {
        void *q = hak_malloc(n);
        check_block("hak_malloc", q, n);
        if (q && n) { ((char *)q)[0] = 1; ((char *)q)[n - 1] = 2; }
        hak_free(q);
    }
    for (size_t n = 5001; n <= 3 * MiB; n = n * 9 / 8 + 1) {
        void *q = hak_malloc(n);
        check_block("hak_malloc", q, n);
        if (q) { ((char *)q)[0] = 1; ((char *)q)[n - 1] = 2; }
        hak_free(q);
    }
}

/* ---- malloc(0), NULL ---------------------------------------------------- */

static void test_zero_and_null(void)
{
    enum { N = 200 };
    void *z[N];
    for (int i = 0; i < N; i++) {
        z[i] = hak_malloc(0);
        check_block("hak_malloc", z[i], 0);
    }
    int dup = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (z[i] && z[i] == z[j]) dup++;
    CHECK(dup == 0, "hak_malloc(0) returned the same pointer %d times", dup);
    for (int i = 0; i < N; i++) hak_free(z[i]);

    CHECK(hak_usable_size(NULL) == 0, "hak_usable_size(NULL) = %zu", hak_usable_size(NULL));
    hak_free(NULL);
    hak_free_sized(NULL, 0);
    CHECK(1, "hak_free(NULL) returned");

    /* realloc(NULL, n) acts as malloc(n), including n == 0. */
    const size_t rs[] = { 0, 1, 100, 1024, 1025, 65537, 3 * MiB };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        void *q = hak_realloc(NULL, rs[i]);
        check_block("hak_realloc(NULL)", q, rs[i]);
        if (q) { pattern_fill(q, 0, rs[i], 3); CHECK(pattern_check(q, rs[i], 3) < 0, "realloc(NULL) block"); }
        hak_free(q);
    }
}

/* ---- alignment ---------------------------------------------------------- */

static void check_aligned(const char *what, void *p, size_t a, size_t n)
{
    CHECK(p != NULL, "%s(align %zu, size %zu) returned NULL", what, a, n);
    if (!p) return;
    CHECK(((uintptr_t)p & (a - 1)) == 0, "%s(align %zu, size %zu) = %p misaligned", what, a, n, p);
    CHECK(((uintptr_t)p & 15) == 0 || n < 16, "%s(align %zu, size %zu) = %p not 16-aligned", what, a, n, p);
    CHECK(hak_owns(p) == 1, "%s(align %zu, size %zu) = %p: hak_owns != 1", what, a, n, p);
    CHECK(hak_usable_size(p) >= n, "%s(align %zu, size %zu): usable %zu", what, a, n, hak_usable_size(p));
}

static void test_alignment(void)
{
    for (size_t a = 8; a <= 4 * MiB; a <<= 1) {
        const size_t sizes[] = { 1, a - 1, a + 1, 100000 };
        void *blk[12];
        size_t bsz[12];
        int bkind[12];
        uint64_t bseed[12];
        int nb = 0;
        for (int k = 0; k < 4; k++) {
            size_t n = sizes[k];
            void *ps[3];
            ps[0] = hak_aligned_alloc(a, n);
            check_aligned("hak_aligned_alloc", ps[0], a, n);
            ps[1] = (void *)0x1;
            int rc = hak_posix_memalign(&ps[1], a, n);
            CHECK(rc == 0, "hak_posix_memalign(align %zu, size %zu) = %d", a, n, rc);
            if (rc != 0) ps[1] = NULL;
            check_aligned("hak_posix_memalign", ps[1], a, n);
            ps[2] = hak_memalign(a, n);
            check_aligned("hak_memalign", ps[2], a, n);
            for (int j = 0; j < 3; j++) {
                if (!ps[j]) continue;
                blk[nb] = ps[j]; bsz[nb] = n; bkind[nb] = j; bseed[nb] = a * 16 + (uint64_t)(k * 3 + j);
                pattern_fill(ps[j], 0, n, bseed[nb]);
                nb++;
            }
        }
        /* Filled while all live: none overlaps another. */
        for (int i = 0; i < nb; i++) {
            long bad = pattern_check(blk[i], bsz[i], bseed[i]);
            CHECK(bad < 0, "align %zu size %zu: pattern broken at %ld", a, bsz[i], bad);
        }
        for (int i = 0; i < nb; i++) {
            if (bkind[i] == 0) hak_free_aligned_sized(blk[i], a, bsz[i]);
            else if (bkind[i] == 1) hak_free(blk[i]);
            else hak_free_sized(blk[i], bsz[i]);
        }
    }

    /* Plain allocations: 16-byte alignment (8 allowed below 16 bytes). */
    for (size_t n = 0; n < 300; n++) {
        void *p = hak_malloc(n);
        check_block("hak_malloc", p, n);
        void *q = hak_calloc(1, n);
        check_block("hak_calloc", q, n);
        hak_free(p);
        hak_free(q);
    }
}

/* ---- overflow / ENOMEM / EINVAL ------------------------------------------ */

static void test_errors_api(void)
{
    void *p;

    errno = 0; p = hak_malloc(v_size_max);
    CHECK(p == NULL && errno == ENOMEM, "hak_malloc(SIZE_MAX) = %p errno %d", p, errno);
    errno = 0; p = hak_malloc(v_size_max / 2);
    CHECK(p == NULL && errno == ENOMEM, "hak_malloc(SIZE_MAX/2) = %p errno %d", p, errno);
    errno = 0; p = hak_malloc(v_size_max - 4095);
    CHECK(p == NULL && errno == ENOMEM, "hak_malloc(SIZE_MAX-4095) = %p errno %d", p, errno);
    errno = 0; p = hak_calloc(v_size_max / 2, 3);
    CHECK(p == NULL && errno == ENOMEM, "hak_calloc(SIZE_MAX/2, 3) = %p errno %d", p, errno);
    errno = 0; p = hak_calloc(3, v_size_max / 2);
    CHECK(p == NULL && errno == ENOMEM, "hak_calloc(3, SIZE_MAX/2) = %p errno %d", p, errno);
    errno = 0; p = hak_calloc((size_t)1 << 33, (size_t)1 << 33);
    CHECK(p == NULL && errno == ENOMEM, "hak_calloc(2^33, 2^33) = %p errno %d", p, errno);
    errno = 0; p = hak_reallocarray(NULL, v_size_max / 2, 3);
    CHECK(p == NULL && errno == ENOMEM, "hak_reallocarray(NULL, SIZE_MAX/2, 3) = %p errno %d", p, errno);
    errno = 0; p = hak_aligned_alloc(64, v_size_max);
    CHECK(p == NULL && errno == ENOMEM, "hak_aligned_alloc(64, SIZE_MAX) = %p errno %d", p, errno);
    errno = 0; p = hak_memalign(4096, v_size_max - 100);
    CHECK(p == NULL && errno == ENOMEM, "hak_memalign(4096, SIZE_MAX-100) = %p errno %d", p, errno);
    {
        void *out = (void *)0x5a5a;
        int rc = hak_posix_memalign(&out, 64, v_size_max);
        CHECK(rc == ENOMEM, "hak_posix_memalign(64, SIZE_MAX) = %d", rc);
    }

    /* realloc / reallocarray failures leave the old block intact. */
    const size_t olds[] = { 1, 100, 1024, 5000, 65537, 3 * MiB };
    for (size_t i = 0; i < sizeof olds / sizeof olds[0]; i++) {
        size_t n = olds[i];
        void *o = hak_malloc(n);
        check_block("hak_malloc", o, n);
        if (!o) continue;
        pattern_fill(o, 0, n, 99 + i);
        errno = 0; p = hak_realloc(o, v_size_max);
        CHECK(p == NULL && errno == ENOMEM, "hak_realloc(%zu-byte block, SIZE_MAX) = %p errno %d", n, p, errno);
        errno = 0; p = hak_realloc(o, v_size_max / 2);
        CHECK(p == NULL && errno == ENOMEM, "hak_realloc(%zu-byte block, SIZE_MAX/2) = %p errno %d", n, p, errno);
        errno = 0; p = hak_reallocarray(o, v_size_max / 2, 3);
        CHECK(p == NULL && errno == ENOMEM, "hak_reallocarray(%zu-byte block, SIZE_MAX/2, 3) = %p errno %d", n, p, errno);
        CHECK(hak_owns(o) == 1, "old block %zu not owned after failed realloc", n);
        CHECK(hak_usable_size(o) >= n, "old block %zu: usable size shrank", n);
        long bad = pattern_check(o, n, 99 + i);
        CHECK(bad < 0, "old block %zu damaged by failed realloc at %ld", n, bad);
        /* reallocarray that does not overflow behaves as realloc(count*size). */
        p = hak_reallocarray(o, 2, n);
        check_block("hak_reallocarray", p, 2 * n);
        if (p) {
            bad = pattern_check(p, n, 99 + i);
            CHECK(bad < 0, "hak_reallocarray(%zu -> %zu) lost contents at %ld", n, 2 * n, bad);
            o = p;
        }
        hak_free(o);
    }

    /* posix_memalign with invalid alignment: EINVAL, *out untouched. */
    const size_t badal[] = { 0, 1, 2, 3, 4, 6, 24, 48, 100, 4097, (size_t)3 << 20, SIZE_MAX };
    for (size_t i = 0; i < sizeof badal / sizeof badal[0]; i++) {
        void *sentinel = (void *)(uintptr_t)0xdeadbeefcafe0000ull;
        void *out = sentinel;
        int rc = hak_posix_memalign(&out, badal[i], 64);
        CHECK(rc == EINVAL, "hak_posix_memalign(align %zu) = %d, want EINVAL", badal[i], rc);
        CHECK(out == sentinel, "hak_posix_memalign(align %zu) wrote *out = %p", badal[i], out);
    }
    /* aligned_alloc with a non power of two alignment: NULL, EINVAL. */
    const size_t badaa[] = { 3, 6, 24, 48, 100, 4097, (size_t)3 << 20, SIZE_MAX };
    for (size_t i = 0; i < sizeof badaa / sizeof badaa[0]; i++) {
        errno = 0;
        p = hak_aligned_alloc(badaa[i], 64);
        CHECK(p == NULL && errno == EINVAL, "hak_aligned_alloc(%zu, 64) = %p errno %d", badaa[i], p, errno);
    }
    /* memalign rounds a non power of two up to the next power of two. */
    const size_t ma[][2] = { { 3, 4 }, { 24, 32 }, { 48, 64 }, { 100, 128 }, { 1000, 1024 },
                             { 5000, 8192 }, { 100000, 131072 }, { 3 * MiB, 4 * MiB } };
    for (size_t i = 0; i < sizeof ma / sizeof ma[0]; i++) {
        const size_t ns[] = { 1, 100, 70000 };
        for (int k = 0; k < 3; k++) {
            p = hak_memalign(ma[i][0], ns[k]);
            check_aligned("hak_memalign", p, ma[i][1], ns[k]);
            if (p) memset(p, 0x11, ns[k]);
            hak_free(p);
        }
    }
    /* valloc: page aligned.  pvalloc: page aligned, usable >= size rounded to a page. */
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const size_t vs[] = { 1, 100, 4095, 4096, 4097, 65536, 100000, 3 * MiB + 1 };
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        p = hak_valloc(vs[i]);
        check_aligned("hak_valloc", p, pg, vs[i]);
        if (p) memset(p, 0x22, vs[i]);
        hak_free(p);
        p = hak_pvalloc(vs[i]);
        size_t want = (vs[i] + pg - 1) / pg * pg;
        check_aligned("hak_pvalloc", p, pg, want);
        if (p) memset(p, 0x33, want);
        hak_free(p);
    }
}

/* ---- calloc zeroes reused memory ---------------------------------------- */

static void test_calloc(void)
{
    const size_t sizes[] = { 1, 16, 24, 100, 1000, 1024, 1025, 5000, 65536, 65537,
                             300000, 2 * MiB, 2 * MiB + 1, 3 * MiB, 5 * MiB };
    enum { MAXN = 64 };
    void *blk[2 * MAXN];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        size_t cnt = (32 * MiB) / n;
        if (cnt > MAXN) cnt = MAXN;
        if (cnt < 4) cnt = 4;
        for (int round = 0; round < 3; round++) {
            for (size_t i = 0; i < cnt; i++) {
                blk[i] = hak_malloc(n);
                check_block("hak_malloc", blk[i], n);
                if (blk[i]) memset(blk[i], 0xAB, hak_usable_size(blk[i]));
            }
            /* free in a scrambled order */
            for (size_t i = 0; i < cnt; i++) {
                size_t j = (i * 7 + round) % cnt;
                size_t k = i;
                void *t = blk[j]; blk[j] = blk[k]; blk[k] = t;
            }
            for (size_t i = 0; i < cnt; i++) hak_free(blk[i]);
            int nonzero = 0;
            for (size_t i = 0; i < 2 * cnt; i++) {
                /* different spellings of the same byte count */
                if (i % 3 == 0) blk[i] = hak_calloc(1, n);
                else if (i % 3 == 1) blk[i] = hak_calloc(n, 1);
                else blk[i] = (n % 8 == 0) ? hak_calloc(n / 8, 8) : hak_calloc(1, n);
                check_block("hak_calloc", blk[i], n);
                if (blk[i] && first_nonzero(blk[i], n) >= 0) nonzero++;
                if (blk[i]) memset(blk[i], 0xAB, n);
            }
            CHECK(nonzero == 0, "hak_calloc(%zu): %d of %zu blocks not zeroed (round %d)", n, nonzero, 2 * cnt, round);
            for (size_t i = 0; i < 2 * cnt; i++) hak_free(blk[i]);
        }
        /* Immediate reuse: dirty, free, calloc at once. */
        int nonzero = 0;
        for (int i = 0; i < 16; i++) {
            void *d = hak_malloc(n);
            if (d) memset(d, 0xAB, hak_usable_size(d));
            hak_free(d);
            void *c = hak_calloc(1, n);
            check_block("hak_calloc", c, n);
            if (c && first_nonzero(c, n) >= 0) nonzero++;
            hak_free(c);
        }
        CHECK(nonzero == 0, "hak_calloc(%zu) after free: %d of 16 not zeroed", n, nonzero);
    }
}

/* ---- realloc ------------------------------------------------------------ */

static void realloc_chain(const size_t *chain, size_t len, int interleave, uint64_t seed)
{
    void *p = NULL;
    size_t cur = 0;
    void *spacer[64];
    size_t ns = 0;
    for (size_t i = 0; i < len; i++) {
        size_t n = chain[i];
        void *q = hak_realloc(p, n);
        check_block("hak_realloc", q, n);
        if (!q) { hak_free(p); p = NULL; cur = 0; continue; }
        size_t keep = cur < n ? cur : n;
        long bad = pattern_check(q, keep, seed);
        CHECK(bad < 0, "hak_realloc(%zu -> %zu) lost contents at %ld", cur, n, bad);
        pattern_fill(q, 0, n, seed);
        p = q; cur = n;
        if (interleave && ns < 64) spacer[ns++] = hak_malloc(n / 2 + 1);  /* blocks growth in place */
    }
    long bad = pattern_check(p, cur, seed);
    CHECK(bad < 0, "final block damaged at %ld", bad);
    hak_free(p);
    for (size_t i = 0; i < ns; i++) hak_free(spacer[i]);
}

static void test_realloc(void)
{
    const size_t up[] = { 1, 8, 24, 1000, 1024, 1025, 5000, 65536, 65537, 1 * MiB, 2 * MiB,
                          2 * MiB + 1, 8 * MiB };
    const size_t chain[] = { 1, 8, 24, 1000, 1024, 1025, 5000, 65536, 65537, 1 * MiB, 2 * MiB,
                             2 * MiB + 1, 8 * MiB, 2 * MiB + 1, 2 * MiB, 1 * MiB, 65537, 65536,
                             5000, 1025, 1024, 1000, 24, 8, 1 };
    size_t nup = sizeof up / sizeof up[0], nch = sizeof chain / sizeof chain[0];
    realloc_chain(chain, nch, 0, 11);
    realloc_chain(chain, nch, 1, 12);
    /* every pair of sizes, both directions */
    for (size_t i = 0; i < nup; i++)
        for (size_t j = 0; j < nup; j++) {
            size_t pair[2] = { up[i], up[j] };
            realloc_chain(pair, 2, (i + j) & 1, 100 + i * 16 + j);
        }
    /* same size and small steps inside a block */
    {
        const size_t steps[] = { 100, 100, 101, 99, 112, 1024, 1023, 1025, 1025, 70000, 69999, 70001,
                                 3 * MiB, 3 * MiB - 1, 3 * MiB + 4096, 3 * MiB };
        realloc_chain(steps, sizeof steps / sizeof steps[0], 0, 13);
    }

    /* realloc(p, 0) frees p and returns NULL. */
    const size_t zs[] = { 1, 100, 1024, 1025, 65536, 65537, 2 * MiB, 3 * MiB };
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        void *p = hak_malloc(zs[i]);
        check_block("hak_malloc", p, zs[i]);
        void *q = hak_realloc(p, 0);
        CHECK(q == NULL, "hak_realloc(%zu-byte block, 0) = %p, want NULL", zs[i], q);
        if (q) hak_free(q);
    }
    /* ... and really frees: 64 rounds of 1 MiB do not accumulate. */
    size_t before = in_use();
    for (int i = 0; i < 64; i++) {
        void *p = hak_malloc(MiB);
        if (p) memset(p, 1, 4096);
        void *q = hak_realloc(p, 0);
        if (q) hak_free(q);
    }
    size_t after = in_use();
    CHECK(after < before + MiB, "hak_realloc(p, 0) leaks: in_use %zu -> %zu", before, after);

    /* free_sized / free_aligned_sized free the block. */
    before = in_use();
    for (int i = 0; i < 64; i++) {
        void *p = hak_malloc(MiB);
        CHECK(p != NULL, "hak_malloc(1MiB)");
        hak_free_sized(p, MiB);
        p = hak_aligned_alloc(4096, MiB);
        CHECK(p != NULL, "hak_aligned_alloc(4096, 1MiB)");
        hak_free_aligned_sized(p, 4096, MiB);
        p = hak_malloc(100);
        hak_free_sized(p, 100);
        p = hak_aligned_alloc(64, 100);
        hak_free_aligned_sized(p, 64, 100);
    }
    after = in_use();
    CHECK(after < before + MiB, "free_sized/free_aligned_sized leak: in_use %zu -> %zu", before, after);
}

/* Every 4093rd byte of p[from, to): written from seed, or checked. */
static void fill_check(unsigned char *p, size_t from, size_t to, unsigned char seed, int fill)
{
    for (size_t i = from; i < to; i += 4093)
        if (fill)
            p[i] = (unsigned char)(seed + i);
        else if (p[i] != (unsigned char)(seed + i)) {
            CHECK(0, "byte %zu of %p: %u, want %u", i, (void *)p, p[i], (unsigned char)(seed + i));
            return;
        }
}

/* A Huge block grown by realloc over the Huge cache's mappings: into a
 * cached mapping right above it (in place), and, with a live block above,
 * copied into the cached mapping that holds the new size.  Both keep the
 * block's bytes; the layout follows from the cache's rules (the smallest
 * mapping that holds a block, its spare chunks split off above). */
static void test_huge_realloc_cached(void)
{
    long retain = 0;
    hak_setting_get("HAKMEM_RETAIN_MS", &retain);
    hak_setting_set("HAKMEM_RETAIN_MS", 600000);        /* nothing expires meanwhile */
    hak_trim(0);                                        /* an empty cache */
    unsigned char *z = hak_malloc(11 * MiB);            /* a 12 MiB mapping */
    CHECK(z != NULL, "hak_malloc(11 MiB)");
    hak_free(z);
    unsigned char *x = hak_malloc(3 * MiB);             /* its first 4 MiB */
    unsigned char *y = hak_malloc(7 * MiB);             /* the 8 MiB above x */
    CHECK(x == z && y == z + 4 * MiB, "x %p, y %p from the cached mapping of %p",
          (void *)x, (void *)y, (void *)z);
    fill_check(x, 0, 3 * MiB, 7, 1);
    hak_free(y);                                        /* cached again, right above x */
    unsigned char *x2 = hak_realloc(x, 7 * MiB);
    CHECK(x2 == x, "hak_realloc into the cached mapping above moved %p to %p", (void *)x,
          (void *)x2);
    fill_check(x2, 0, 3 * MiB, 7, 0);
    fill_check(x2, 3 * MiB, 7 * MiB, 9, 1);
    CHECK(hak_usable_size(x2) >= 7 * MiB, "usable %zu after growth", hak_usable_size(x2));
    /* Now with a live block above: x2 holds 8 MiB, so take 3 MiB blocks
     * until one sits right above it (the cache splits its 4 MiB off z's
     * last chunk), then cache a 12 MiB mapping elsewhere. */
    unsigned char *above = hak_malloc(3 * MiB);
    CHECK(above == x2 + 8 * MiB, "the block above %p is at %p", (void *)x2, (void *)above);
    unsigned char *w = hak_malloc(11 * MiB);            /* a fresh 12 MiB mapping */
    CHECK(w != NULL, "hak_malloc(11 MiB)");
    hak_free(w);
    unsigned char *x3 = hak_realloc(x2, 11 * MiB);      /* needs 12 MiB: w's mapping */
    CHECK(x3 == w, "hak_realloc with a live block above: %p, want the cached mapping %p",
          (void *)x3, (void *)w);
    fill_check(x3, 0, 3 * MiB, 7, 0);
    fill_check(x3, 3 * MiB, 7 * MiB, 9, 0);
    fill_check(x3, 7 * MiB, 11 * MiB, 11, 1);
    fill_check(x3, 7 * MiB, 11 * MiB, 11, 0);
    CHECK(hak_owns(x3) && !hak_owns(x2) && hak_owns(above), "ownership after the copy: %d %d %d",
          hak_owns(x3), hak_owns(x2), hak_owns(above));
    hak_free(above);
    hak_free(x3);
    hak_setting_set("HAKMEM_RETAIN_MS", retain);
}

/* ---- hak_owns ------------------------------------------------------------ */

static int a_global[64];

static void test_owns(void)
{
    int on_stack[16] = { 0 };
    CHECK(hak_owns(NULL) == 0, "hak_owns(NULL)");
    CHECK(hak_owns(on_stack) == 0, "hak_owns(stack %p)", (void *)on_stack);
    CHECK(hak_owns(&on_stack[4]) == 0, "hak_owns(stack+16)");
    CHECK(hak_owns(a_global) == 0, "hak_owns(global %p)", (void *)a_global);
    CHECK(hak_owns(&a_global[4]) == 0, "hak_owns(global+16)");
    CHECK(hak_owns((const void *)&test_owns) == 0, "hak_owns(function)");

    size_t len = 4 * MiB;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    if (m != MAP_FAILED) {
        CHECK(hak_owns(m) == 0, "hak_owns(private mmap %p)", (void *)m);
        CHECK(hak_owns(m + 16) == 0, "hak_owns(private mmap + 16)");
        CHECK(hak_owns(m + 4096) == 0, "hak_owns(private mmap + 4096)");
        CHECK(hak_owns(m + 2 * MiB) == 0, "hak_owns(private mmap + 2MiB)");
        munmap(m + 2 * MiB, 2 * MiB);
        /* an address that is not mapped at all */
        CHECK(hak_owns(m + 3 * MiB) == 0, "hak_owns(unmapped %p)", (void *)(m + 3 * MiB));
        munmap(m, 2 * MiB);
        CHECK(hak_owns(m) == 0, "hak_owns(unmapped %p)", (void *)m);
    }
    /* wild values must not fault */
    const uintptr_t wild[] = { 1, 8, 16, 4096, 65536, (uintptr_t)1 << 40, (uintptr_t)1 << 47,
                               UINTPTR_MAX & ~(uintptr_t)15, UINTPTR_MAX - 4095 };
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++)
        CHECK(hak_owns((const void *)wild[i]) == 0, "hak_owns(%#lx)", (unsigned long)wild[i]);

    /* The region map has one entry per 4 MiB chunk of a 1 TiB window: a chunk
     * a multiple of 1 TiB away from one of HAKMEM's (same index) must not
     * pass for it.  Memory of our own mapped there, at the same offset as a
     * Tiny and a Huge block: hak_owns says no, and hak_free (in a child)
     * reports an invalid pointer. */
    void *tiny = hak_malloc(48), *huge = hak_malloc(3 * MiB);
    int aliased = 0;
    for (int k = -3; k <= 3; k++) {
        for (int which = 0; which < 2 && k != 0; which++) {
            uintptr_t b = (uintptr_t)(which ? huge : tiny);
            uintptr_t chunk = (b & ~(uintptr_t)(4 * MiB - 1)) + (uintptr_t)k * ((uintptr_t)1 << 40);
            if ((intptr_t)chunk <= 0 || chunk >= ((uintptr_t)1 << 47) - 4 * MiB)
                continue;
            char *q = mmap((void *)chunk, 4 * MiB, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if (q == MAP_FAILED)
                continue;
            if ((uintptr_t)q != chunk) {    /* an old kernel took it as a hint */
                munmap(q, 4 * MiB);
                continue;
            }
            char *alias = q + (b & (4 * MiB - 1));
            aliased++;
            CHECK(hak_owns(alias) == 0, "hak_owns(%p), 1 TiB x %d from block %p", (void *)alias, k,
                  (void *)b);
            pid_t pid = fork();
            if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);
                dup2(devnull, 2);          /* the one-line report is test_errors' business */
                hak_free(alias);
                _exit(0);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                  "hak_free(%p), 1 TiB x %d from block %p: status %#x, not an abort",
                  (void *)alias, k, (void *)b, st);
            munmap(q, 4 * MiB);
        }
    }
    printf("  region map: %d mappings 1 TiB multiples away from HAKMEM's blocks, none taken for "
           "them\n", aliased);
    CHECK(aliased >= 2, "only %d of the aliasing mappings could be made", aliased);
    hak_free(tiny);
    hak_free(huge);

    /* p+1 is never the start of a block; interior of one-block regions either */
    const size_t sz[] = { 1, 8, 16, 24, 100, 1000, 1024, 1025, 5000, 65536, 65537, 1 * MiB, 3 * MiB };
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        char *p = hak_malloc(sz[i]);
        check_block("hak_malloc", p, sz[i]);
        if (!p) continue;
        CHECK(hak_owns(p + 1) == 0, "hak_owns(p+1) for %zu-byte block %p", sz[i], (void *)p);
        CHECK(hak_owns(p + 7) == 0, "hak_owns(p+7) for %zu-byte block %p", sz[i], (void *)p);
        if (sz[i] > 65536) {
            CHECK(hak_owns(p + 16) == 0, "hak_owns(p+16) for %zu-byte block", sz[i]);
            CHECK(hak_owns(p + 4096) == 0, "hak_owns(p+4096) for %zu-byte block", sz[i]);
        }
        hak_free(p);
    }

    /* Every interior offset of a block, for blocks of many sizes: the
     * boundary test is a multiply, not a division, and must never accept an
     * offset that is not a multiple of the block size.  The block after p (if
     * the slab carved one there) is the only other start in range. */
    long wrong = 0;
    for (size_t n = 16; n <= 2 * MiB; n += n < 1024 ? 16 : n / 5) {
        char *p = hak_malloc(n), *q = hak_malloc(n);
        if (!p || !q) { CHECK(0, "hak_malloc(%zu) failed", n); break; }
        size_t bs = hak_usable_size(p);
        size_t step = bs <= 8192 ? 1 : 7;
        for (size_t k = 1; k < bs; k += step)
            wrong += hak_owns(p + k) != 0;
        wrong += hak_owns(p) != 1;
        hak_free(p);
        hak_free(q);
    }
    CHECK(wrong == 0, "hak_owns accepted %ld interior offsets (or refused a block)", wrong);
}

/* ---- trim ---------------------------------------------------------------- */

static void test_trim(void)
{
    void *keep[256];
    for (int i = 0; i < 256; i++) {
        keep[i] = hak_malloc((size_t)(i * 997) % 300000);
        if (keep[i]) pattern_fill(keep[i], 0, (size_t)(i * 997) % 300000, i);
    }
    for (int i = 0; i < 256; i += 2) { hak_free(keep[i]); keep[i] = NULL; }
    int r = hak_trim(0);
    CHECK(r == 0 || r == 1, "hak_trim(0) = %d", r);
    for (int i = 1; i < 256; i += 2) {
        long bad = keep[i] ? pattern_check(keep[i], (size_t)(i * 997) % 300000, i) : -1;
        CHECK(bad < 0, "live block %d damaged by hak_trim at %ld", i, bad);
    }
    for (int i = 0; i < 256; i += 2) {
        size_t n = (size_t)(i * 1013) % 3000000;
        keep[i] = hak_malloc(n);
        check_block("hak_malloc after trim", keep[i], n);
        if (keep[i]) pattern_fill(keep[i], 0, n, i + 1);
    }
    for (int i = 0; i < 256; i++) {
        size_t n = (i & 1) ? (size_t)(i * 997) % 300000 : (size_t)(i * 1013) % 3000000;
        uint64_t s = (i & 1) ? (uint64_t)i : (uint64_t)i + 1;
        long bad = keep[i] ? pattern_check(keep[i], n, s) : -1;
        CHECK(bad < 0, "block %d damaged after trim at %ld", i, bad);
        hak_free(keep[i]);
    }
    r = hak_trim(0);
    CHECK(r == 0 || r == 1, "hak_trim(0) = %d", r);
}

/* ---- randomized soak ------------------------------------------------------ */

struct slot { void *p; size_t n; size_t align; uint64_t seed; };

static size_t soak_size(void)
{
    unsigned b = (unsigned)(rng() % 24);          /* 0 .. 23 */
    if (b == 0) return 0;
    if (b == 23) return 4 * MiB;
    size_t lo = (size_t)1 << (b - 1);             /* [2^(b-1), 2^b) up to 4 MiB - 1 */
    return lo + (size_t)(rng() % lo);
}

static void test_soak(void)
{
    enum { SLOTS = 1024, OPS = 200000 };
    const size_t cap = 192 * MiB;
    /* bookkeeping outside any allocator under test */
    struct slot *s = mmap(NULL, SLOTS * sizeof *s, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) { CHECK(0, "mmap for bookkeeping"); return; }
    size_t live = 0;
    uint64_t next_seed = 1;
    int bad_alloc = 0, bad_pat = 0, bad_zero = 0, bad_align = 0, bad_meta = 0;

    for (int op = 0; op < OPS; op++) {
        struct slot *e = &s[rng() % SLOTS];
        if (!e->p) {
            size_t n = soak_size();
            if (live + n > cap) n >>= 8;
            unsigned kind = (unsigned)(rng() % 5);
            size_t align = 0;
            void *p = NULL;
            switch (kind) {
            case 0: p = hak_malloc(n); break;
            case 1:
                if (n % 8 == 0 && (rng() & 1)) p = hak_calloc(n / 8, 8);
                else p = hak_calloc(1, n);
                break;
            case 2:
                align = (rng() % 16 == 0) ? (size_t)8 << (rng() % 18) : (size_t)8 << (rng() % 10);
                p = hak_aligned_alloc(align, n);
                break;
            case 3: p = hak_realloc(NULL, n); break;
            case 4:
                align = (size_t)8 << (rng() % 13);
                if (rng() & 1) { if (hak_posix_memalign(&p, align, n) != 0) p = NULL; }
                else p = hak_memalign(align, n);
                break;
            }
            if (!p) { bad_alloc++; continue; }
            if (hak_owns(p) != 1 || hak_usable_size(p) < n) bad_meta++;
            if (((uintptr_t)p & (n < 16 ? 7 : 15)) || (align && ((uintptr_t)p & (align - 1)))) bad_align++;
            if (kind == 1 && first_nonzero(p, n) >= 0) bad_zero++;
            e->p = p; e->n = n; e->align = align; e->seed = next_seed++ * 0x100000001B3ull;
            pattern_fill(p, 0, n, e->seed);
            live += n;
        } else {
            if (pattern_check(e->p, e->n, e->seed) >= 0) bad_pat++;
            if (hak_owns(e->p) != 1) bad_meta++;
            unsigned r = (unsigned)(rng() % 100);
            if (r < 55) {
                if (r < 10) hak_free_sized(e->p, e->n);
                else if (r < 20 && e->align) hak_free_aligned_sized(e->p, e->align, e->n);
                else hak_free(e->p);
                live -= e->n;
                e->p = NULL;
            } else {
                size_t n = soak_size();
                if (live - e->n + n > cap) n >>= 8;
                void *q = hak_realloc(e->p, n);
                live -= e->n;
                if (n == 0) {                    /* realloc(p, 0) frees */
                    if (q) { bad_alloc++; hak_free(q); }
                    e->p = NULL;
                    continue;
                }
                if (!q) { bad_alloc++; hak_free(e->p); e->p = NULL; continue; }
                if (hak_owns(q) != 1 || hak_usable_size(q) < n) bad_meta++;
                if ((uintptr_t)q & (n < 16 ? 7 : 15)) bad_align++;
                size_t keep = e->n < n ? e->n : n;
                if (pattern_check(q, keep, e->seed) >= 0) bad_pat++;
                pattern_fill(q, keep, n, e->seed);
                e->p = q; e->n = n; e->align = 0;
                live += n;
            }
        }
        if (op % 20000 == 19999)
            for (int i = 0; i < SLOTS; i++)
                if (s[i].p && pattern_check(s[i].p, s[i].n, s[i].seed) >= 0) bad_pat++;
    }
    for (int i = 0; i < SLOTS; i++) {
        if (!s[i].p) continue;
        if (pattern_check(s[i].p, s[i].n, s[i].seed) >= 0) bad_pat++;
        hak_free(s[i].p);
    }
    munmap(s, SLOTS * sizeof *s);
    CHECK(bad_alloc == 0, "soak: %d allocations failed", bad_alloc);
    CHECK(bad_meta == 0, "soak: %d blocks with wrong hak_owns/usable size", bad_meta);
    CHECK(bad_align == 0, "soak: %d misaligned blocks", bad_align);
    CHECK(bad_zero == 0, "soak: %d calloc blocks not zeroed", bad_zero);
    CHECK(bad_pat == 0, "soak: %d pattern mismatches", bad_pat);
}

int main(void)
{
    test_tiers();
    test_zero_and_null();
    test_alignment();
    test_errors_api();
    test_calloc();
    test_realloc();
    test_huge_realloc_cached();
    test_owns();
    test_trim();
    test_soak();
    return test_done("test_api");
}
