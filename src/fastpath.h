/* The fast paths of malloc and free, inlined into the exported entry points.
 *
 * malloc: size -> class (a table up to 1 KiB, a few shifts up to 64 KiB);
 *         a Tiny or Mid class pops the thread's cache of the class, then
 *         the current slab's free list.
 * free:   address -> region map -> SuperSlab; a Tiny or Mid block (the
 *         page's entry in the SuperSlab header says so, and where the carved
 *         blocks end)
 *         goes onto the thread's cache of its class; others -> slab: if this
 *         thread owns the slab and p is a block boundary, push onto the
 *         slab's free list.
 *         Anything else, including every bad pointer, goes to a slow path
 *         (hak_free_slab_slow when the slab is known), which reports it.
 * Neither takes a lock, issues an atomic read-modify-write, makes a system
 * call or divides.  Everything else (first use, refill, a block owned by
 * another thread, Huge blocks, bad pointers) is the slow path's business.
 * A thread that has not allocated yet sees hak_empty_slab everywhere, whose
 * free list is empty and whose owner is nobody, so no "initialised?" test is
 * needed here.
 */
#ifndef HAK_FASTPATH_H
#define HAK_FASTPATH_H

#include "types.h"

static inline void *hak_malloc_class(unsigned c, size_t n)
{
    hak_slab_t *s = hak_tls.cur[c];
    hak_block_t *b = s->free;
    if (HAK_LIKELY(b != NULL)) {
        hak_assert(s->list == HAK_LIST_FOREIGN || ((char *)b >= s->start && (char *)b < s->bump));
        s->free = b->next;
        s->used++;
        return b;
    }
    return hak_alloc_slow(n);       /* n, not c: it is still in its register */
}

/* The first block of the thread's cache of class c, off it, or NULL (the
 * new first's link is not known: tc_next NULL). */
static inline __attribute__((always_inline)) hak_block_t *hak_tc_take(unsigned c)
{
    hak_block_t *b = hak_tls.tc_head[c];
    if (HAK_LIKELY(b != NULL)) {
        hak_tls.tc_head[c] = b->next;
        hak_tls.tc_next[c] = NULL;
        hak_tls.tc_room[c]++;
    }
    return b;
}

/* The dry cache of class c is to grow (hak_tc_grow): it ran dry after it
 * filled, or is below its cap. */
static inline bool hak_tc_dry_grows(unsigned c)
{
    return (hak_tls.tc_streak[c] | (hak_tls.tc_cap[c] - hak_tls.tc_max[c])) != 0;
}

/* A pop from the thread's cache of class c (Tiny or Mid), else its slab. */
static inline __attribute__((always_inline)) void *hak_tc_pop(unsigned c, size_t n)
{
    hak_block_t *b = hak_tc_take(c);
    if (HAK_LIKELY(b != NULL))
        return b;
    if (HAK_UNLIKELY(hak_tc_dry_grows(c)))
        return hak_tc_dry(c, n);    /* a tail call: nothing kept across it */
    return hak_malloc_class(c, n);
}

/* A block of class c for an aligned allocation (every block of the class
 * has the alignment): the thread's cache first, as malloc, then the slab. */
static inline void *hak_tc_pop_class(unsigned c)
{
    if (c < HAK_TC_NCLASS) {
        hak_block_t *b = hak_tc_take(c);
        if (b != NULL)
            return b;
        if (hak_tc_dry_grows(c))
            hak_tc_grow(c);
    }
    return hak_alloc_class(c);
}

/* Tiny and Mid each inline their own copy of the pop, so that the Tiny path
 * pays nothing for the Mid one. */
static inline void *hak_malloc_fast(size_t n)
{
    if (HAK_LIKELY(n <= HAK_TINY_MAX))
        return hak_tc_pop(hak_tiny_class[(n + 7) >> 3], n);
    if (n <= HAK_MID_MAX)
        return hak_tc_pop(hak_class_of(n), n);
    return hak_alloc_slow(n);
}

/* A push of p, at offset off in its slab of class c, onto the thread's
 * cache of the class, if off is a block boundary (mul is 0 while the cache
 * is closed, so that no offset passes). */
static inline __attribute__((always_inline)) bool hak_tc_push(unsigned c, uint64_t off, void *p,
                                                              const char *call)
{
    uint64_t mul = hak_tls.tc_mul[c];
    if (HAK_UNLIKELY(off * mul >= mul))
        return false;
    hak_block_t *b = (hak_block_t *)p, *head = hak_tls.tc_head[c];
    hak_assert(hak_tls.tc_next[c] == NULL || hak_tls.tc_next[c] == head->next);
    /* The block freed last, or the one before it while no malloc came
     * between (free(a); free(b); free(a)), freed again: compares with what
     * the thread holds, no block read. */
    if (HAK_UNLIKELY(head == b || hak_tls.tc_next[c] == b))
        hak_fatal(call, "double free", b);
    if (HAK_UNLIKELY(--hak_tls.tc_room[c] < 0)) {
        hak_tc_full(b, c, call);
        return true;
    }
    b->next = head;
    hak_tls.tc_next[c] = head;
    hak_tls.tc_head[c] = b;
    return true;
}

/* Free of block p of slab s, which the calling thread owns; p is valid.
 * parked is tested before the slab is written: a parked slab may be taken
 * by another thread under the heap lock (types.h, Idle owners).  A plain
 * read: that thread writes parked only when no block of s is out, so never
 * while its owner frees one. */
static inline void hak_slab_free_local(hak_slab_t *s, void *p, const char *call)
{
    hak_block_t *b = (hak_block_t *)p;
    hak_assert(hak_slab_block_valid(s, p) && s->used > 0);
    if (HAK_UNLIKELY(s->parked)) {
        hak_free_parked(s, b, b, 1);
        return;
    }
    hak_block_t *head = s->free;
    if (HAK_UNLIKELY(head == b))        /* the block freed last, freed again: */
        hak_fatal(call, "double free", b);  /* one compare with what is loaded anyway */
    b->next = head;
    if (HAK_UNLIKELY(--s->used == 0)) {
        hak_free_local_slow(s, b);
        return;
    }
    /* b on the list is the last write to s, as a release: once another
     * thread sees it there, it may count s idle and give s away
     * (idle_slab_release). */
    __atomic_store_n(&s->free, b, __ATOMIC_RELEASE);
}

static inline __attribute__((always_inline)) void hak_free_fast(void *p, const char *call)
{
    uintptr_t a = (uintptr_t)p;
    if (HAK_LIKELY(hak_region_is_ss(a))) {
        /* A Tiny or Mid block: checked against its page's entry, not the
         * slab's descriptor (a line the owner writes and other threads'
         * frees would read), and kept in this thread's cache whoever owns
         * it. */
        hak_superslab_t *ss = hak_ss_of(p);
        uint32_t e = atomic_load_explicit(&ss->tiny_page[(a >> HAK_PAGE_SHIFT) & (HAK_SS_PAGES - 1)],
                                          memory_order_relaxed);
        uint64_t off = a & (HAK_PAGE_SIZE - 1);
        if (HAK_UNLIKELY(off >= (e >> 8))) {
            /* Not Tiny: computed again from a, so that the Tiny path keeps
             * nothing in a register for this one. */
            __asm__("" : "+r"(a));
            e = atomic_load_explicit(&hak_ss_of((void *)a)->mid_page[(a >> HAK_PAGE_SHIFT) & (HAK_SS_PAGES - 1)],
                                     memory_order_relaxed);
            off = (a & (HAK_PAGE_SIZE - 1)) + hak_mid_page_offset(e);
            if (off >= hak_mid_page_carved(e))
                goto slab;
        }
        if (HAK_LIKELY(hak_tc_push(e & 0xff, off, p, call)))
            return;
    slab:;
        hak_slab_t *s = hak_slab_of(ss, p);
        __asm__("" : "+r"(s));   /* one register for s: GCC otherwise computes it twice */
        if (HAK_LIKELY(atomic_load_explicit(&s->owner, memory_order_relaxed) == hak_tls.id) &&
            HAK_LIKELY(hak_slab_boundary(s, p))) {
            hak_slab_free_local(s, p, call);
            return;
        }
        hak_free_slab_slow(s, p, call);
        return;
    }
    hak_free_slow(p, call);
}

#endif
