/* libFuzzer harness for HAKMEM's prefixed API.
 *
 * The input is read as a program: each operation is one opcode byte followed
 * by its operands (slot, size, alignment...), acting on a table of SLOTS live
 * blocks.  Every block is filled with a pattern derived from its slot and a
 * generation counter over its whole usable size, and checked in full before
 * it is freed or reallocated, after a realloc (the preserved prefix), after a
 * trim, and when the input ends (everything is freed then).  Any broken
 * promise -- content lost or clobbered, calloc memory not zero, usable size
 * below the request, misaligned block, blocks overlapping, a wrong errno or a
 * NULL where memory was available -- prints one line and traps.
 *
 * One opcode runs the next few operations on another thread, which then
 * exits (joined at once, so the run stays deterministic): blocks of the main
 * thread get freed remotely, and the thread's own blocks outlive it.
 *
 * Build (see tests/fuzz/build.sh):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -pthread \
 *         src/ *.c (without src/override.c) tests/fuzz/fuzz_alloc.c
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hakmem.h"

#define SLOTS           256
#define KB              ((size_t)1024)
#define MB              (1024 * KB)
#define LIVE_CAP        (256 * MB)  /* live bytes per input, beyond: smaller requests */
#define HUGE_PER_INPUT  4           /* Huge requests (> 2 MiB) per input         */
#define HUGE_MAX        (16 * MB)
#define THREADS_PER_INPUT 8
#define THREAD_OPS      24          /* operations run by one helper thread       */
#define ABSURD_ALIGN    ((size_t)1 << 40)  /* at or above: NULL is an acceptable answer */

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "fuzz_alloc: ");                                       \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        __builtin_trap();                                                      \
    } while (0)

/* ---- input reader ----------------------------------------------------------- */
struct reader {
    const uint8_t *p;
    size_t n, pos;
};

static int more(const struct reader *r) { return r->pos < r->n; }
static unsigned u8(struct reader *r) { return r->pos < r->n ? r->p[r->pos++] : 0; }
static unsigned u16(struct reader *r) { unsigned a = u8(r); return a | (u8(r) << 8); }
static uint32_t u24(struct reader *r) { uint32_t a = u16(r); return a | ((uint32_t)u8(r) << 16); }

/* ---- block patterns ------------------------------------------------------------ */
/* The loops that fill and scan blocks carry no coverage or ASan
 * instrumentation: they would only slow the run down (libFuzzer's compare
 * tracing in them took two thirds of the time), and HAKMEM's memory is not
 * ASan's to check anyway. */
#define HOT_LOOP __attribute__((no_sanitize("coverage", "address")))

/* Word k of the pattern of seed s is s + k * STEP (the last partial word
 * uses its low bytes): one add per word, and two seeds never agree on a word
 * unless their difference is a multiple of STEP by chance. */
#define STEP 0x9E3779B97F4A7C15ull

HOT_LOOP static void pat_fill(uint8_t *p, size_t n, uint64_t s)
{
    uint64_t w = s;
    size_t i = 0;
    for (; i + 8 <= n; i += 8, w += STEP)
        memcpy(p + i, &w, 8);
    if (i < n)
        memcpy(p + i, &w, n - i);
}

/* Offset of the first byte of [0, n) off the pattern, or -1. */
HOT_LOOP static long pat_find_bad(const uint8_t *p, size_t n, uint64_t s)
{
    uint64_t w = s, v;
    size_t i = 0;
    for (; i + 8 <= n; i += 8, w += STEP) {
        memcpy(&v, p + i, 8);
        if (v != w)
            break;
    }
    for (size_t k = 0; k < 8 && i + k < n; k++)
        if (p[i + k] != (uint8_t)(w >> (8 * k)))
            return (long)(i + k);
    return -1;
}

HOT_LOOP static long zero_find_bad(const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (v != 0)
            break;
    }
    for (; i < n; i++)
        if (p[i] != 0)
            return (long)i;
    return -1;
}

/* ---- the slot table ------------------------------------------------------------- */
struct slot {
    uint8_t *p;         /* NULL: empty */
    size_t req;         /* bytes asked for */
    size_t usable;      /* hak_usable_size at allocation; pattern covers all of it */
    size_t align;       /* alignment asked of an aligned call, 0 otherwise */
    uint64_t seed;
    const char *how;    /* the call that produced it */
};

static struct slot slots[SLOTS];
static uint64_t generation;
static size_t live_bytes;
static unsigned huge_count, thread_count;
static unsigned faulting;       /* operations left with OS mapping failures injected */
static int null_fd = -1;

/* Under injected mapping failures an allocation may fail, with ENOMEM. */
static int may_fail(int err) { return faulting > 0 && err == ENOMEM; }

static uint64_t new_seed(unsigned i)
{
    generation++;
    return ((uint64_t)i << 48) ^ (generation * 0x9E3779B97F4A7C15ull) ^ 0x5851F42D4C957F2Dull;
}

static void check_slot(unsigned i, const char *when)
{
    struct slot *s = &slots[i];
    if (s->p == NULL)
        return;
    long bad = pat_find_bad(s->p, s->usable, s->seed);
    if (bad >= 0)
        FAIL("%s: slot %u block %p (%s of %zu, usable %zu) corrupted at offset %ld", when, i,
             (void *)s->p, s->how, s->req, s->usable, bad);
}

static void check_all(const char *when)
{
    for (unsigned i = 0; i < SLOTS; i++)
        check_slot(i, when);
}

/* The live slot other than i whose block overlaps [p, p + u), or -1. */
HOT_LOOP static int find_overlap(unsigned i, const uint8_t *p, size_t u)
{
    for (unsigned j = 0; j < SLOTS; j++) {
        const struct slot *o = &slots[j];
        if (o->p != NULL && j != i && p < o->p + (o->usable ? o->usable : 1) &&
            o->p < p + (u ? u : 1))
            return (int)j;
    }
    return -1;
}

/* A new block p of req bytes (aligned to align) for slot i: checks the usable
 * size, the alignment, that no live block overlaps it, then fills it. */
static void adopt(unsigned i, void *vp, size_t req, size_t align, const char *how)
{
    uint8_t *p = vp;
    struct slot *s = &slots[i];
    if (align && ((uintptr_t)p & (align - 1)))
        FAIL("%s(%zu) with alignment %zu returned %p", how, req, align, vp);
    if (((uintptr_t)p & 7) != 0 || (req >= 16 && ((uintptr_t)p & 15) != 0))
        FAIL("%s(%zu) returned %p, below the minimum alignment", how, req, vp);
    if (hak_owns(p) != 1)
        FAIL("%s(%zu) returned %p, which hak_owns denies", how, req, vp);
    size_t u = hak_usable_size(p);
    if (u < req)
        FAIL("%s(%zu) returned %p with usable size %zu", how, req, vp, u);
    int j = find_overlap(i, p, u);
    if (j >= 0)
        FAIL("%s(%zu) returned %p (usable %zu), overlapping slot %d %p (usable %zu)", how, req,
             vp, u, j, (void *)slots[j].p, slots[j].usable);
    s->p = p;
    s->req = req;
    s->usable = u;
    s->align = align;
    s->how = how;
    s->seed = new_seed(i);
    pat_fill(p, u, s->seed);
    live_bytes += u;
}

static void drop(unsigned i)
{
    struct slot *s = &slots[i];
    live_bytes -= s->usable;
    s->p = NULL;
    s->req = s->usable = s->align = 0;
}

/* Checks and frees slot i, with one of the freeing calls. */
static void release(unsigned i, unsigned how)
{
    struct slot *s = &slots[i];
    if (s->p == NULL)
        return;
    check_slot(i, "before free");
    uint8_t *p = s->p;
    size_t req = s->req, align = s->align;
    drop(i);
    switch (how % 5) {
    case 0:
    case 1: hak_free(p); break;
    case 2: hak_free_sized(p, req); break;
    case 3:
        if (align)
            hak_free_aligned_sized(p, align, req);
        else
            hak_free_sized(p, req);
        break;
    default: {
        /* realloc to 0 frees (and returns NULL, as glibc) */
        errno = 0;
        void *q = hak_realloc(p, 0);
        if (q != NULL)
            FAIL("hak_realloc(%p, 0) returned %p, expected NULL", (void *)p, q);
        break;
    }
    }
}

/* ---- operand decoding ------------------------------------------------------------ */
static const size_t boundary_sizes[] = {
    0, 1, 7, 8, 15, 16, 17, 24, 31, 32, 33, 127, 128, 129, 1023, 1024, 1025, 1280,
    2047, 2048, 2049, 4095, 4096, 4097, 65535, 65536, 65537, 81920, 131072, 131073,
    1048576, 2097151, 2097152, 2097153, 2097152 + 4096, 4194304 - 64, 4194304,
};
#define NBOUNDARY (sizeof boundary_sizes / sizeof boundary_sizes[0])

/* A request size: 0, Tiny, Mid, Large, the boundaries between them, and now
 * and then Huge (at most HUGE_PER_INPUT per input; live bytes capped). */
static size_t decode_size(struct reader *r)
{
    unsigned c = u8(r);
    size_t n;
    if (c < 16)
        n = 0;
    else if (c < 112)
        n = 1 + u8(r) % 64;                          /* small Tiny, the common case */
    else if (c < 160)
        n = 1 + u16(r) % 1024;                       /* Tiny 1 .. 1024 */
    else if (c < 200)
        n = 1025 + u16(r) % (64 * KB - 1024);        /* Mid 1025 .. 65536 */
    else if (c < 230)
        n = 64 * KB + 1 + u24(r) % (2 * MB - 64 * KB); /* Large 65537 .. 2 MiB */
    else if (c < 254)
        n = boundary_sizes[u8(r) % NBOUNDARY];
    else
        n = 2 * MB + 1 + u24(r) % (HUGE_MAX - 2 * MB);  /* Huge */
    if (n > 2 * MB) {
        if (huge_count >= HUGE_PER_INPUT)
            n &= 0x1fffff;                           /* back into Large */
        else
            huge_count++;
    }
    if (live_bytes + n > LIVE_CAP)
        n &= 0xffff;
    return n;
}

static size_t next_pow2(size_t a)
{
    size_t p = 1;
    while (p < a)
        p <<= 1;
    return p;
}

static int is_pow2(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

static const size_t odd_alignments[] = {
    0, 3, 5, 12, 24, 48, 96, 100, 4095, 4097, 65537, 3 * MB, 8 * MB, 64 * MB,
    ABSURD_ALIGN, (size_t)1 << 62, (size_t)1 << 63, ((size_t)1 << 63) + 1, SIZE_MAX,
};
#define NODD (sizeof odd_alignments / sizeof odd_alignments[0])

/* Alignments 1 .. 4 MiB (powers of two) most of the time, else odd ones:
 * zero, not powers of two, above 4 MiB, absurd. */
static size_t decode_align(struct reader *r)
{
    unsigned c = u8(r);
    if (c < 200)
        return (size_t)1 << (c % 23);                /* 1 .. 4 MiB */
    return odd_alignments[c % NODD];
}

/* ---- operations ------------------------------------------------------------------ */
static void op_malloc(unsigned i, size_t n)
{
    release(i, 0);
    errno = 0;
    void *p = hak_malloc(n);
    if (p == NULL && may_fail(errno))
        return;
    if (p == NULL)
        FAIL("hak_malloc(%zu) returned NULL (errno %d)", n, errno);
    adopt(i, p, n, 0, "hak_malloc");
}

static void op_calloc(struct reader *r, unsigned i)
{
    release(i, 0);
    unsigned c = u8(r);
    size_t count, size;
    if (c < 8) {                                     /* overflowing product */
        count = ((size_t)1 << 33) + c;
        size = ((size_t)1 << 31) + u8(r);
        errno = 0;
        void *p = hak_calloc(count, size);
        if (p != NULL || errno != ENOMEM)
            FAIL("hak_calloc(%zu, %zu) overflows: got %p errno %d", count, size, p, errno);
        p = hak_calloc(size, count);
        if (p != NULL)
            FAIL("hak_calloc(%zu, %zu) overflows: got %p", size, count, p);
        return;
    }
    count = 1 + c % 16;
    size = decode_size(r) / count;
    if (c & 1) {                                     /* swap the arguments */
        size_t t = count;
        count = size;
        size = t;
    }
    errno = 0;
    void *p = hak_calloc(count, size);
    if (p == NULL && may_fail(errno))
        return;
    if (p == NULL)
        FAIL("hak_calloc(%zu, %zu) returned NULL (errno %d)", count, size, errno);
    long bad = zero_find_bad(p, count * size);
    if (bad >= 0)
        FAIL("hak_calloc(%zu, %zu) = %p: byte %ld not zero", count, size, p, bad);
    adopt(i, p, count * size, 0, "hak_calloc");
}

static void op_realloc(unsigned i, size_t n, int array)
{
    struct slot *s = &slots[i];
    check_slot(i, "before realloc");
    uint8_t *old = s->p;
    size_t old_req = s->req, old_usable = s->usable;
    uint64_t old_seed = s->seed;
    void *q;
    errno = 0;
    if (array && n >= 2 && !(n & 1))
        q = hak_reallocarray(old, 2, n / 2);
    else
        q = array ? hak_reallocarray(old, n, 1) : hak_realloc(old, n);
    if (old != NULL && n == 0) {
        if (q != NULL)
            FAIL("realloc(%p, 0) returned %p, expected NULL", (void *)old, q);
        drop(i);
        return;
    }
    if (q == NULL) {
        /* The old block must be intact (and still its owner's to free). */
        int err = errno;
        check_slot(i, "after failed realloc");
        if (old != NULL && hak_usable_size(old) != old_usable)
            FAIL("failed realloc(%p, %zu) changed the usable size", (void *)old, n);
        if (may_fail(err))
            return;
        FAIL("realloc(%p, %zu) returned NULL (errno %d)", (void *)old, n, errno);
    }
    size_t keep = old_req < n ? old_req : n;
    long bad = pat_find_bad(q, keep, old_seed);
    if (bad >= 0)
        FAIL("realloc(%p [req %zu usable %zu], %zu) = %p: byte %ld of the kept prefix %zu lost",
             (void *)old, old_req, old_usable, n, q, bad, keep);
    if (old != NULL)
        drop(i);
    adopt(i, q, n, 0, array ? "hak_reallocarray" : "hak_realloc");
}

static void op_reallocarray_overflow(unsigned i)
{
    struct slot *s = &slots[i];
    errno = 0;
    void *q = hak_reallocarray(s->p, (size_t)1 << 40, (size_t)1 << 30);
    if (q != NULL || errno != ENOMEM)
        FAIL("hak_reallocarray overflow: got %p errno %d", q, errno);
    check_slot(i, "after overflowing reallocarray");
}

/* The alignment a call must honour, 0 if the call must fail with EINVAL. */
static size_t effective_align(int call, size_t a)
{
    switch (call) {
    case 0: return is_pow2(a) ? a : 0;                           /* aligned_alloc */
    case 1: return is_pow2(a) && a >= sizeof(void *) ? a : 0;    /* posix_memalign */
    default:                                                     /* memalign */
        if (is_pow2(a))
            return a;
        if (a > ((size_t)1 << 63))
            return 0;
        return a == 0 ? 1 : next_pow2(a);
    }
}

static void op_aligned(struct reader *r, unsigned i, int call)
{
    static const char *const names[] = { "hak_aligned_alloc", "hak_posix_memalign", "hak_memalign" };
    release(i, 1);
    size_t a = decode_align(r), n = decode_size(r);
    size_t eff = effective_align(call, a);
    void *p = (void *)0x1;                           /* posix_memalign must not touch it on error */
    int ret = 0;
    errno = 0;
    switch (call) {
    case 0: p = hak_aligned_alloc(a, n); break;
    case 1: ret = hak_posix_memalign(&p, a, n); if (ret) p = (void *)0x1; break;
    default: p = hak_memalign(a, n); break;
    }
    int err = call == 1 ? ret : errno;
    if (eff == 0) {
        if ((call == 1 ? p != (void *)0x1 : p != NULL) || err != EINVAL)
            FAIL("%s(%zu, %zu): invalid alignment, got %p error %d", names[call], a, n, p, err);
        return;
    }
    if (call == 1 && ret == 0 && p == (void *)0x1)
        FAIL("hak_posix_memalign(%zu, %zu) returned 0 without a block", a, n);
    if (call == 1 ? ret != 0 : p == NULL) {
        if (eff >= ABSURD_ALIGN && (err == ENOMEM || err == EINVAL))
            return;
        if (may_fail(err))
            return;
        FAIL("%s(%zu, %zu) failed, error %d", names[call], a, n, err);
    }
    adopt(i, p, n, eff, names[call]);
}

static void op_page_aligned(struct reader *r, unsigned i)
{
    release(i, 2);
    size_t n = decode_size(r);
    int pv = (n & 1) != 0;
    errno = 0;
    void *p = pv ? hak_pvalloc(n) : hak_valloc(n);
    if (p == NULL && may_fail(errno))
        return;
    if (p == NULL)
        FAIL("%s(%zu) returned NULL", pv ? "hak_pvalloc" : "hak_valloc", n);
    size_t need = pv ? (n == 0 ? 4096 : (n + 4095) & ~(size_t)4095) : n;
    adopt(i, p, need, 4096, pv ? "hak_pvalloc" : "hak_valloc");
}

static void op_usable(unsigned i)
{
    struct slot *s = &slots[i];
    if (s->p == NULL) {
        if (hak_usable_size(NULL) != 0)
            FAIL("hak_usable_size(NULL) != 0");
        return;
    }
    size_t u = hak_usable_size(s->p);
    if (u != s->usable)
        FAIL("hak_usable_size(%p) = %zu, was %zu at allocation", (void *)s->p, u, s->usable);
    if (!hak_owns(s->p))
        FAIL("hak_owns(%p) = 0 for a live block", (void *)s->p);
    check_slot(i, "usable-size check");
}

/* Process-wide figures against what the table holds (the harness is the only
 * user of HAKMEM in this process, and no other thread runs now). */
static void op_stats(void)
{
    struct hak_stats st;
    hak_stats_get(&st);
    if (st.committed > st.mapped || st.in_use > st.committed || st.in_use < live_bytes ||
        st.huge_in_use > st.in_use)
        FAIL("hak_stats_get: mapped %zu committed %zu in_use %zu huge_in_use %zu, live %zu",
             st.mapped, st.committed, st.in_use, st.huge_in_use, live_bytes);
    if (null_fd >= 0)
        hak_stats_print(null_fd);
}

/* Mapping failures for the next few operations: every Nth mapping call, or
 * any beyond a budget a little above what is mapped now. */
static void op_fault(struct reader *r)
{
    unsigned c = u8(r);
    faulting = 1 + c % 16;
    if (c & 0x80) {
        struct hak_stats st;
        hak_stats_get(&st);
        hak_fault_inject(0, st.mapped + (size_t)(c & 0x70) * MB / 16);
    } else {
        hak_fault_inject(1 + (c >> 4) % 8, 0);
    }
}

/* Runs the operations of r until it ends or `budget` operations are done. */
static void run_ops(struct reader *r, unsigned budget, int on_thread);

struct thread_job {
    struct reader *r;
};

static void *thread_main(void *arg)
{
    struct thread_job *job = arg;
    run_ops(job->r, THREAD_OPS, 1);
    return NULL;
}

static void op_thread(struct reader *r)
{
    if (thread_count >= THREADS_PER_INPUT)
        return;
    thread_count++;
    struct thread_job job = { r };
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, &job) != 0)
        FAIL("pthread_create failed");
    pthread_join(t, NULL);
    check_all("after thread exit");
}

static void run_ops(struct reader *r, unsigned budget, int on_thread)
{
    while (more(r) && budget-- > 0) {
        if (faulting > 0 && --faulting == 0)
            hak_fault_inject(0, 0);
        unsigned op = u8(r);
        unsigned i = u8(r) % SLOTS;
        switch (op % 16) {
        case 0: case 1: case 2: case 3:
            op_malloc(i, decode_size(r));
            break;
        case 4: case 5:
            release(i, op >> 4);
            break;
        case 6: case 7:
            op_realloc(i, decode_size(r), 0);
            break;
        case 8:
            op_calloc(r, i);
            break;
        case 9: case 10: case 11:
            op_aligned(r, i, (int)(op % 16) - 9);
            break;
        case 12:
            op_usable(i);
            break;
        case 13:
            if ((op >> 4) == 0) {                    /* 1 in 16: trim, then check all */
                hak_trim(0);
                check_all("after hak_trim");
            } else if ((op >> 4) == 1) {
                op_stats();
            } else if ((op >> 4) == 2 && !on_thread) {
                op_fault(r);
            } else {
                op_usable(i);
            }
            break;
        case 14:
            if (!on_thread && (op >> 4) < 4)
                op_thread(r);
            else
                op_page_aligned(r, i);
            break;
        default:
            if (op >> 7)
                op_reallocarray_overflow(i);
            else
                op_realloc(i, decode_size(r), 1);
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader r = { data, size, 0 };
    generation = 0;
    live_bytes = 0;
    huge_count = thread_count = 0;
    if (null_fd < 0)
        null_fd = open("/dev/null", O_WRONLY);
    run_ops(&r, (unsigned)-1, 0);
    if (faulting) {
        faulting = 0;
        hak_fault_inject(0, 0);
    }
    check_all("at end of input");
    for (unsigned i = 0; i < SLOTS; i++)
        release(i, i);
    if (live_bytes != 0)
        FAIL("harness: %zu live bytes left", live_bytes);
    op_stats();
    return 0;
}
