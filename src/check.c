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
 * its free pattern is (a write after free).  Huge blocks have no guard. */
#include <string.h>
#include "types.h"

#define GUARD    32
#define TRAILER  8
#define PATTERN  0xcb
#define FREE_N   ((size_t)1 << 40)       /* no block is this big */

static uint64_t *trailer_of(void *p, size_t bsize)
{
    return (uint64_t *)((char *)p + bsize - TRAILER);
}

static uint64_t encode(const void *p, size_t n) { return (uint64_t)n ^ hak_free_key ^ (uintptr_t)p; }

/* The n a block's trailer holds (FREE_N for a free block), or SIZE_MAX if
 * the trailer is damaged. */
static size_t stored_n(void *p, size_t bsize)
{
    size_t n = (size_t)(*trailer_of(p, bsize) ^ hak_free_key ^ (uintptr_t)p);
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
    const char *from = (const char *)p + (n == FREE_N ? 2 * sizeof(void *) : n);
    return pattern_intact(from, (const char *)p + bsize - TRAILER);
}

static void guard_set(void *p, size_t bsize, size_t n)
{
    size_t from = n == FREE_N ? 2 * sizeof(void *) : n;
    if (bsize < from + TRAILER)
        return;                     /* a block too small for a guard: never handed out here */
    memset((char *)p + from, PATTERN, bsize - TRAILER - from);
    *trailer_of(p, bsize) = encode(p, n);
}

void hak_check_carved(void *p, size_t bsize) { guard_set(p, bsize, FREE_N); }

void hak_check_handed_out(void *p)
{
    hak_slab_t *s = hak_slab_of(hak_ss_of(p), p);
    if (s->bsize >= 2 * sizeof(void *) + TRAILER && !guard_intact(p, s->bsize))
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
    if ((char *)p - b >= s->start && !guard_intact((char *)p - b, b))
        hak_fatal(call, "buffer underflow", p);
    guard_set(p, b, FREE_N);
}
