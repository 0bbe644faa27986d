/* HAKMEM_CHECK=1: guards around Tiny, Mid and Large blocks.
 *
 * In check mode every call takes the slow paths (heap.c keeps the current
 * slabs out of TLS), so the guards cost the release fast path nothing.  A
 * block handed out for n bytes comes from the class for n + GUARD + TRAILER:
 *
 *     [0, n)             the program's
 *     [n, bsize - 8)     PATTERN (GUARD bytes at least)
 *     [bsize - 8, bsize) trailer: n ^ hak_free_key ^ address
 *
 * A free block keeps its link and free mark in its first 16 bytes, PATTERN
 * up to the trailer, and the trailer of FREE_N.  At free and realloc the
 * block's own guard (an overflow of up to GUARD bytes past n, or one that
 * rewrites the trailer) and the guard of the block before it (an underflow
 * of up to GUARD + 8 bytes) are checked; when a block is handed out again
 * its free pattern is (a write after free).  Huge blocks have no guard.
 *
 * A freed block is also held back in its thread's quarantine (a FIFO of up
 * to QUARANTINE_BYTES) before it really goes back, so that it is not handed
 * out again at once, and a write after its free is found when it leaves.
 * malloc_trim checks every block's guard (hak_check_heap). */
#include <string.h>
#include "types.h"

#define GUARD    32
#define TRAILER  8
#define PATTERN  0xcb
#define FREE_N   ((size_t)1 << 40)       /* no block is this big */
#define FREE_HEAD (2 * sizeof(void *))   /* a free block's link and mark */
#define QUARANTINE_BYTES ((size_t)4 << 20)
#define QUARANTINE_SLOTS 4096

static __thread struct {
    void *block[QUARANTINE_SLOTS];
    unsigned head, n;                     /* oldest at head */
    size_t bytes;
} quarantine;

static uint64_t *trailer_of(void *p, size_t bsize)
{
    return (uint64_t *)((char *)p + bsize - TRAILER);
}

/* Its own inverse: encode(p, encode(p, n)) == n. */
static uint64_t encode(const void *p, uint64_t n) { return n ^ hak_free_key ^ (uintptr_t)p; }

/* A block of bsize can carry a free block's guard (classes check mode hands
 * out are bigger still). */
static bool guardable(size_t bsize) { return bsize >= FREE_HEAD + TRAILER; }

/* Where the pattern starts in a block holding n (FREE_N: a free block). */
static size_t guard_from(size_t n) { return n == FREE_N ? FREE_HEAD : n; }

/* The n a block's trailer holds (FREE_N for a free block), or SIZE_MAX if
 * the trailer is damaged. */
static size_t stored_n(void *p, size_t bsize)
{
    size_t n = (size_t)encode(p, *trailer_of(p, bsize));
    return n == FREE_N || n + GUARD + TRAILER <= bsize ? n : SIZE_MAX;
}

static bool pattern_intact(const char *from, const char *to)
{
    for (const char *q = from; q < to; q++)
        if ((unsigned char)*q != PATTERN)
            return false;
    return true;
}

/* The guard of block p: its trailer and the pattern after its bytes. */
static bool guard_intact(void *p, size_t bsize)
{
    size_t n = stored_n(p, bsize);
    if (n == SIZE_MAX)
        return false;
    return pattern_intact((const char *)p + guard_from(n), (const char *)p + bsize - TRAILER);
}

/* The same for a block another thread may be handing out or freeing as we
 * read: its trailer changes before its owner writes to it (a handed-out
 * block) or after its pattern is written (a freed one), so a scan with the
 * same trailer before and after read a consistent block. */
static bool neighbour_intact(void *p, size_t bsize)
{
    for (int tries = 0; tries < 100; tries++) {
        uint64_t t = __atomic_load_n(trailer_of(p, bsize), __ATOMIC_ACQUIRE);
        bool ok = guard_intact(p, bsize);
        if (__atomic_load_n(trailer_of(p, bsize), __ATOMIC_ACQUIRE) == t)
            return ok;
    }
    return true;                    /* changing all the time: in use, not damaged */
}

static void guard_set(void *p, size_t bsize, size_t n)
{
    size_t from = guard_from(n);
    if (!guardable(bsize))
        return;                     /* a class check mode never hands out */
    memset((char *)p + from, PATTERN, bsize - TRAILER - from);
    __atomic_store_n(trailer_of(p, bsize), encode(p, n), __ATOMIC_RELEASE);
}

void hak_check_carved(void *p, size_t bsize) { guard_set(p, bsize, FREE_N); }

void hak_check_handed_out(void *p, size_t bsize)
{
    if (guardable(bsize) && !guard_intact(p, bsize))
        hak_fatal("malloc", "heap corruption (freed block modified)", p);
}

void *hak_check_alloc(size_t n, size_t align)
{
    if (n > HAK_LARGE_MAX - GUARD - TRAILER || align > HAK_SLAB_ALIGN_MAX)
        return hak_huge_alloc(n, align, false);
    size_t m = n + GUARD + TRAILER;
    unsigned cls = align > 16 ? (unsigned)hak_class_for_aligned(m, align) : hak_class_of(m);
    void *p = hak_alloc_class(cls);
    if (p)
        guard_set(p, hak_classes[cls].size, n);
    return p;
}

size_t hak_check_size(void *p, const hak_slab_t *s)
{
    size_t n = stored_n(p, s->bsize);
    return n == SIZE_MAX || n == FREE_N ? 0 : n;
}

/* p, a live block of s, is being freed (or moved by realloc): its guard and
 * the guard of the block before it must be intact; then it becomes a free
 * block's pattern. */
void hak_check_freeing(void *p, const hak_slab_t *s, const char *call)
{
    size_t b = s->bsize;
    if (!guard_intact(p, b) || stored_n(p, b) == FREE_N)
        hak_fatal(call, "buffer overflow", p);
    char *before = (char *)p - b;
    if (before >= s->start && !neighbour_intact(before, b)) {
        /* A free block before, damaged away from its end: it was written
         * to after its free.  Damage in its last GUARD + TRAILER bytes came
         * from p's side. */
        if (stored_n(before, b) == FREE_N &&
            !pattern_intact(before + FREE_HEAD, (char *)p - GUARD - TRAILER))
            hak_fatal(call, "write after free", before);
        hak_fatal(call, "buffer underflow", p);
    }
    guard_set(p, b, FREE_N);
}

/* A block leaving the quarantine: its free pattern must be intact. */
static void *released(void *b)
{
    hak_slab_t *s = hak_slab_of(hak_ss_of(b), b);
    if (!hak_block_is_free(b) || !guard_intact(b, s->bsize))
        hak_fatal("free", "write after free", b);
    quarantine.bytes -= s->bsize;
    return b;
}

/* p, freed (guarded and marked), is held back; returns the block to free
 * now (the oldest, when the quarantine is full), or NULL. */
void *hak_check_hold(void *p, size_t bsize)
{
    void *out = NULL;
    if (quarantine.n == QUARANTINE_SLOTS || quarantine.bytes + bsize > QUARANTINE_BYTES) {
        out = hak_check_release();
        if (out == NULL)
            return p;                   /* bigger than the whole quarantine */
    }
    quarantine.block[(quarantine.head + quarantine.n) % QUARANTINE_SLOTS] = p;
    quarantine.n++;
    quarantine.bytes += bsize;
    return out;
}

/* The oldest held block, checked, or NULL if none is held. */
void *hak_check_release(void)
{
    if (quarantine.n == 0)
        return NULL;
    void *b = quarantine.block[quarantine.head];
    quarantine.head = (quarantine.head + 1) % QUARANTINE_SLOTS;
    quarantine.n--;
    return released(b);
}

/* Every carved block of s: a live block's guard, a free one's pattern. */
static void verify_slab(hak_slab_t *s, void *arg)
{
    size_t b = s->bsize;
    if (!guardable(b))
        return;                         /* a class check mode never hands out */
    char *bump = __atomic_load_n(&s->bump, __ATOMIC_RELAXED);
    for (char *p = s->start; p + b <= bump; p += b)
        if (!neighbour_intact(p, b))
            hak_fatal("malloc_trim", "heap corruption", p);
}

/* malloc_trim(0) in check mode: the whole heap's guards (racing threads'
 * blocks read as neighbours are). */
void hak_check_heap(void) { hak_pool_walk(verify_slab, NULL); }

