/* Minimal test helpers: every CHECK counts, a failing CHECK prints where and
 * why, and test_done() turns the tally into the exit status.  Also the PRNG,
 * size picker and block pattern that several tests share. */
#ifndef HAK_TESTUTIL_H
#define HAK_TESTUTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_checks, t_failures;

/* Starts HAKMEM's background thread now: it starts at a malloc slow path
 * that finds more than 8 MiB held, and pthread_create's few blocks (its
 * thread's TLS) then count as in use.  Tests that compare bytes in use
 * before and after call this before their baseline.  Needs hakmem.h. */
#define start_background()                                                    \
    do {                                                                      \
        void *a_ = hak_malloc((size_t)9 << 20), *b_ = hak_malloc((size_t)9 << 20); \
        hak_free(a_);                                                         \
        hak_free(b_);                                                         \
    } while (0)

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        t_checks++;                                                           \
        if (!(cond)) {                                                        \
            t_failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

static inline int test_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, t_checks, t_failures);
    return t_failures == 0 && t_checks > 0 ? 0 : 1;
}

/* xorshift64 (13, 7, 17): deterministic for a given seed; never seed it 0. */
static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Log-uniform size in [lo, hi]: a random power-of-two bucket, uniform inside it. */
static inline size_t rand_log_size(uint64_t *r, size_t lo, size_t hi)
{
    int lb = 63 - __builtin_clzll(lo ? lo : 1), hb = 63 - __builtin_clzll(hi);
    int b = lb + (int)(xorshift64(r) % (uint64_t)(hb - lb + 1));
    size_t base = (size_t)1 << b;
    size_t s = base + (size_t)(xorshift64(r) % base);
    if (s < lo) s = lo;
    if (s > hi) s = hi;
    return s;
}

/* Block pattern with seed s: byte i is byte (i & 7) of pattern_word(s, i >> 3). */
static inline uint64_t pattern_word(uint64_t s, size_t k) { return s + (uint64_t)k * 0x9E3779B97F4A7C15ull; }

/* Byte i of the pattern with seed s. */
static inline unsigned char pattern_byte(uint64_t s, size_t i)
{
    return (unsigned char)(pattern_word(s, i >> 3) >> (8 * (i & 7)));
}

/* Writes the pattern with seed s over bytes [from, to) of the block. */
static inline void pattern_fill(void *vp, size_t from, size_t to, uint64_t s)
{
    unsigned char *p = (unsigned char *)vp;
    size_t i = from;
    while (i < to && (i & 7)) { p[i] = pattern_byte(s, i); i++; }
    for (; i + 8 <= to; i += 8) { uint64_t w = pattern_word(s, i >> 3); memcpy(p + i, &w, 8); }
    for (; i < to; i++) p[i] = pattern_byte(s, i);
}

/* The offset of the first byte in [0, n) that breaks the pattern, or -1. */
static inline long pattern_check(const void *vp, size_t n, uint64_t s)
{
    const unsigned char *p = (const unsigned char *)vp;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w; memcpy(&w, p + i, 8);
        if (w != pattern_word(s, i >> 3)) break;
    }
    for (; i < n; i++) if (p[i] != pattern_byte(s, i)) return (long)i;
    return -1;
}

/* The offset of the first non-zero byte in [0, n), or -1. */
static inline long first_nonzero(const void *vp, size_t n)
{
    const unsigned char *p = (const unsigned char *)vp;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { uint64_t w; memcpy(&w, p + i, 8); if (w) break; }
    for (; i < n; i++) if (p[i]) return (long)i;
    return -1;
}
#endif
