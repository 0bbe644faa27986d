/* HAKMEM internal types, constants and the invariants that tie them together.
 *
 * Glossary
 *   region map  One byte per 4 MiB of address space, saying what HAKMEM has
 *               there.  Every pointer HAKMEM hands out is found through it.
 *   SuperSlab   A 4 MiB region aligned to 4 MiB, cut into 64 pages of 64 KiB.
 *               Page 0 holds the SuperSlab header (slab descriptors).
 *   slab        A run of 1..32 pages of one SuperSlab holding blocks of one
 *               size class.  Its descriptor lives in the header, at the index
 *               of its first page.
 *   heap        What a thread allocates from: for each size class a current
 *               slab (in TLS, for the fast path), a list of partial slabs and
 *               a list of full slabs (in the thread's heap record).
 *   Huge block  A block above HAKMEM_LARGE_MAX with its own mapping.
 *
 * Ownership (who may touch what; transitions in remote.c, checked by
 * hak_slab_check in DEBUG builds)
 *   - A slab has at most one owner, a heap (slab.owner = address of the heap
 *     record).  Only the owner thread reads or writes free, used, bump,
 *     parked and the list links, with two exceptions below (a parked slab of
 *     an idle owner; the background thread's look at a partial slab).  Other
 *     threads read owner and push to remote; nobody but the owner writes an
 *     owned slab's blocks' links.
 *   - The legal combinations (anything else is a bug):
 *
 *       state   owner         list        parked  what it means
 *       FREE    DYING         NONE        -       pages in the pool (owner 0 if
 *                                                 never used, or purged)
 *       ACTIVE  heap H        CUR         0       H allocates from it (pinned)
 *       ACTIVE  heap H        PARTIAL     0       free or uncarved blocks > 0 (a
 *                                                 Large slab: empty, kept in H's
 *                                                 Large cache)
 *       ACTIVE  heap H        FULL        1       free = NULL, bump = end
 *       ACTIVE  heap H        NONE        0       inside one of H's slow paths
 *       ACTIVE  0             ABANDONED   0       something to give (free,
 *                                                 uncarved or remote)
 *       ACTIVE  0             NONE        1       nothing to give: the next
 *                                                 free into it adopts it
 *       ACTIVE  DYING         NONE        -       no block out, on its way to the pool
 *
 *     owner goes 0 -> H only under hak_own_lock (adoption) or the pool lock
 *     (a fresh slab); H -> 0 only by H under hak_own_lock (thread exit);
 *     H -> DYING (HAK_OWNER_DYING) by H, or by any thread for a parked or partial slab
 *     of H whose every block out is on remote, under H's heap lock (see
 *     Idle owners).
 *   - Parked slabs: H parks and unparks its slabs, and changes the full and
 *     partial lists, only under its heap lock (heap_rec.lock); it drains a
 *     slab on one of those lists only under that lock too.  H's free reads
 *     parked before it writes the slab and takes the locked slow path when
 *     it is set, so H writes free and used of a parked slab only under that
 *     lock.
 *   - Counting: a block of a slab is never carved (at or beyond bump), on
 *     slab.free, or out: in the user's hands, in a thread's cache
 *     (hak_tls.tc_head) or foreign cache, in a heap's inbox, or on
 *     slab.remote.  With pin = 1 for a current Tiny or Mid slab
 *     (hak_slab_pin), 0 otherwise:
 *         (bump - start) / bsize = |free| + used - pin
 *     so a slab is returned to the pool only when used - pin = 0: no block
 *     can be anywhere else.
 *   - The common malloc and free touch only the calling thread's TLS and the
 *     descriptor of a slab that thread owns (a Tiny or Mid free: the
 *     SuperSlab's tiny_page or mid_page entry and no descriptor): no lock,
 *     no atomic RMW.
 *   - A Tiny or Mid block freed by any thread goes first to that thread's cache for
 *     its class (hak_tls.tc_head, at most tc_max blocks), whoever owns its slab,
 *     and the thread's next malloc of the class takes it back (LIFO: the
 *     block is likely still in the CPU's cache).  tc_next[c] == NULL or
 *     tc_head[c]->next: a free compares its block with both (a double free
 *     of either block of the cache's top), so a pop, which would have to
 *     read the new head to know, sets it NULL.  A full cache frees half
 *     its blocks by their slabs' owners (locally, or as below); thread exit
 *     and malloc_trim free all of them.  The cache is closed (tc_mul 0, so
 *     no offset passes the free's boundary test) while the thread has no
 *     heap and in hak_slow_mode, so no block waits in a cache nobody
 *     empties, and off after a storm of frees (remote.c, hak_tc_full)
 *     until the thread's next malloc of the class finds it dry.
 *   - A free by a thread that does not own the slab keeps the block in the
 *     freeing thread's foreign cache for its class (heap_rec.foreign: the
 *     thread hands such blocks out again itself, so a block may move between
 *     threads without going home).  A full cache is shipped: its blocks are
 *     grouped by owner and each group is pushed onto the owner's inbox with
 *     one compare-and-swap, in runs of one slab's blocks; the owner takes
 *     its whole inbox with one exchange in its slow path and frees each
 *     run locally.
 *   - An inbox is closed (HAK_INBOX_CLOSED) while its thread exits; a push
 *     that finds it closed puts each block on its slab's remote list, which
 *     the exiting owner drains (or, once the slab is ownerless, its
 *     adopter).  An ownerless slab is adopted by the first thread that frees
 *     into it or needs a slab of its class; remote blocks are never lost.
 *   - Idle owners: a heap whose inbox has waited IDLE_MS is idle (it does not
 *     allocate: Larson's main thread, a thread blocked in I/O).  Its blocks
 *     then go onto their slabs' remote lists, counted in remote_n, and the
 *     thread whose push makes remote_n equal a parked or partial slab's used
 *     releases the slab to the pool under H's lock.  That is safe without
 *     H's help: every block out is on remote, so H's free cannot be touching
 *     the slab (it would need a block of it; H's free puts its block on
 *     the free list as its last write to the slab, a release), and H's
 *     malloc takes blocks only from its current slabs.  A slab with a block
 *     still out stays H's: H may be freeing that block at that moment, with
 *     no lock to see.  H's current slabs stay too (its malloc pops them
 *     without a lock).
 *   - Owners behind: a heap whose inbox holds more than INBOX_BACKLOG bytes
 *     (heap_rec.inbox_bytes) gets its blocks as an idle one does, onto their
 *     slabs' remote lists, until it takes its inbox: blocks waiting for an
 *     owner that is not running would otherwise be memory no thread can use
 *     (xmalloc-test: a third of its peak RSS).  Pushes onto a parked slab's
 *     remote list mark its class in heap_rec.spilled; the owner's refill
 *     drains those classes' parked slabs back onto its partial list.
 *   - Free blocks' pages: the background thread reads the free list of a
 *     partial slab, and purges the pages inside its blocks past their
 *     first, under the owner's heap lock (remote.c): the list only grows at
 *     its head while the slab is partial, and a slab leaves the partial
 *     list only under that lock.  seen_free and released are its marks,
 *     NULL whenever the slab is not partial.
 *   - SuperSlab memory and heap records are never unmapped, only purged
 *     (madvise), so a racing reader of a descriptor or an inbox never faults.
 */
#ifndef HAK_TYPES_H
#define HAK_TYPES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* memcpy, memmove and memset of this library are the checked ones that
 * programs get (copy.c).  HAKMEM's own calls, and those GCC makes for
 * it (struct copies, loops), go straight to the C library's (os.c): they
 * write guards and headers that no program may. */
#ifndef HAK_MEM_EXPORTS
extern __typeof(memcpy) memcpy __asm__("hak_libc_memcpy");
extern __typeof(memmove) memmove __asm__("hak_libc_memmove");
extern __typeof(memset) memset __asm__("hak_libc_memset");
#endif

#define HAK_LIKELY(x)   __builtin_expect(!!(x), 1)
#define HAK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HAK_HIDDEN      __attribute__((visibility("hidden")))
#define HAK_NOINLINE    __attribute__((noinline))

/* ---- geometry ------------------------------------------------------------ */
#define HAK_SS_SHIFT      22                        /* 4 MiB SuperSlab        */
#define HAK_SS_SIZE       ((size_t)1 << HAK_SS_SHIFT)
#define HAK_SS_MASK       (HAK_SS_SIZE - 1)
#define HAK_PAGE_SHIFT    16                        /* 64 KiB slab page       */
#define HAK_PAGE_SIZE     ((size_t)1 << HAK_PAGE_SHIFT)
#define HAK_SS_PAGES      64
#define HAK_MAP_BITS      18                        /* region map: a 1 TiB window */
#define HAK_MAP_ENTRIES   ((size_t)1 << HAK_MAP_BITS)
#define HAK_OS_PAGE       4096

/* ---- tiers --------------------------------------------------------------- */
#define HAK_TINY_MAX      1024                      /* Tiny:  0 .. 1 KiB      */
#define HAK_MID_MAX       (64 * 1024)               /* Mid:   .. 64 KiB       */
#define HAK_LARGE_MAX     (2 * 1024 * 1024)         /* Large: .. 2 MiB        */
#define HAK_NCLASS_TINY   20                        /* classes 0..19             */
#define HAK_NCLASS_MID    24                        /* classes 20..43            */
#define HAK_NCLASS        64                        /* and 20 large: 44..63      */
#define HAK_SLAB_ALIGN_MAX HAK_PAGE_SIZE            /* slab starts are page aligned */

/* ---- region map kinds ------------------------------------------------------ */
enum {
    HAK_REGION_NONE = 0,   /* not HAKMEM's                                    */
    HAK_REGION_SS,         /* a SuperSlab (header at the 4 MiB boundary)      */
    HAK_REGION_HUGE_HEAD,  /* Huge block whose header is at this chunk's base */
    HAK_REGION_HUGE_PREV,  /* Huge block whose header is one chunk below      */
    HAK_REGION_HUGE_BODY,  /* the rest of a Huge mapping: no block starts here */
    HAK_REGION_ZERO,       /* HAKMEM_CHECK's zero-byte blocks, no access (check.c) */
};
/* The region map: what each 4 MiB chunk of the address space holds.  The
 * entry of chunk c = a >> HAK_SS_SHIFT sits at index c mod HAK_MAP_ENTRIES:
 *     entry = (c + 1) | (kind - HAK_REGION_SS) << 48        (c < 2^42)
 * so it names its chunk exactly: an index holding 0, or the entry of another
 * chunk (a multiple of 1 TiB away), says "not HAKMEM's" for c, and for any
 * 64-bit a.  Entries are claimed with a compare-and-swap (hak_region_claim);
 * a mapping one of whose chunks finds its index taken is given back and
 * another made.  2 MiB of .bss, where a flat map of the 47-bit space took
 * 32 MiB (VmSize, ulimit -v); the fast path's test for a SuperSlab is still
 * one load and one compare, with c + 1 for the 47-bit test. */
extern uint64_t hak_region_map[HAK_MAP_ENTRIES] HAK_HIDDEN;
#define HAK_REGION_KIND_SHIFT 48

static inline uint64_t hak_region_entry(uintptr_t c, unsigned kind)
{
    return ((uint64_t)c + 1) | (uint64_t)(kind - HAK_REGION_SS) << HAK_REGION_KIND_SHIFT;
}

static inline uint64_t *hak_region_slot(uintptr_t c)
{
    return &hak_region_map[c & (HAK_MAP_ENTRIES - 1)];
}

static inline unsigned hak_region_of(uintptr_t a)
{
    uintptr_t c = a >> HAK_SS_SHIFT;
    uint64_t e = __atomic_load_n(hak_region_slot(c), __ATOMIC_RELAXED);
    if ((e & (((uint64_t)1 << HAK_REGION_KIND_SHIFT) - 1)) != (uint64_t)c + 1)
        return HAK_REGION_NONE;
    return (unsigned)(e >> HAK_REGION_KIND_SHIFT) + HAK_REGION_SS;
}

/* a lies in a SuperSlab: the free fast path's test.  A plain load, which
 * GCC folds into the compare (a relaxed atomic one it does not: +1
 * instruction).  SuperSlab entries never change once claimed (arenas are
 * never unmapped), so a racing read can only be of a Huge entry, which is
 * not the SuperSlab value before or after. */
static inline bool hak_region_is_ss(uintptr_t a)
{
    uintptr_t c = a >> HAK_SS_SHIFT;
    return *hak_region_slot(c) == hak_region_entry(c, HAK_REGION_SS);
}

/* Claims the chunks of [p, p + size) (p 4 MiB aligned) as kind: false, with
 * none claimed, if an index is taken.  set changes one claimed chunk's kind;
 * release gives the chunks of [from, to) back. */
HAK_HIDDEN bool hak_region_claim(const char *p, size_t size, unsigned kind);
HAK_HIDDEN void hak_region_set(const char *p, unsigned kind);
HAK_HIDDEN void hak_region_release(const char *from, const char *to);
/* hak_os_map_aligned, then the chunks claimed as kind (another mapping
 * tried while one finds its indexes taken); NULL (ENOMEM) if none can be. */
HAK_HIDDEN char *hak_region_map_new(size_t size, size_t align, size_t offset, bool reserve_only,
                                    unsigned kind);

/* ---- blocks and slabs ----------------------------------------------------- */
/* A free block: the free-list link.  (HAKMEM_CHECK tells free blocks from
 * live ones by a trailer: check.c.) */
typedef struct hak_block {
    struct hak_block *next;
} hak_block_t;
extern uintptr_t hak_free_key HAK_HIDDEN;
extern bool hak_check_mode HAK_HIDDEN;   /* HAKMEM_CHECK, fixed at initialisation */
extern bool hak_profile_on HAK_HIDDEN;   /* HAKMEM_PROFILE set, fixed at initialisation */
/* Every call takes the slow paths: check mode, profiling or both. */
extern bool hak_slow_mode HAK_HIDDEN;

enum { HAK_SLAB_FREE = 0, HAK_SLAB_ACTIVE, HAK_SLAB_HEADER };
enum { HAK_LIST_NONE = 0, HAK_LIST_CUR, HAK_LIST_PARTIAL, HAK_LIST_FULL, HAK_LIST_ABANDONED,
       HAK_LIST_FOREIGN /* a heap's foreign-cache stand-in, never a real slab */ };

/* The pin: while a Tiny or Mid slab is its owner's current slab (list ==
 * HAK_LIST_CUR), used counts one block more than is out.  A local free then
 * never takes the current slab to 0, so the fast path's used == 0 test only
 * fires for slabs that may go back to the pool.  used is raised before list
 * becomes CUR and lowered after it stops being CUR, so a fork that freezes
 * the owner in between sees at worst a pin it does not know of (a slab kept
 * too long), never one too few. */
static inline uint32_t hak_slab_pin(uint8_t list, uint32_t bsize)
{
    return list == HAK_LIST_CUR && bsize <= HAK_MID_MAX;
}

typedef struct hak_slab {
    /* First cache line: read by every free of one of its blocks, by any
     * thread; written only at transitions (and bump as blocks are carved),
     * so that other threads' frees do not take the line from the owner. */
    char *start;                    /* first block (page aligned)                */
    char *bump;                     /* owner: first never-carved block           */
    uint64_t boundary_mul;          /* ceil(2^64 / bsize): see hak_slab_boundary  */
    _Atomic uintptr_t owner;        /* heap record address, 0 = none             */
    char *end;                      /* end of the last whole block               */
    uint32_t bsize;                 /* block size                                */
    uint8_t cls;                    /* size class                                */
    uint8_t state;                  /* HAK_SLAB_*; written under the pool lock   */
    uint8_t list;                   /* HAK_LIST_*: which list holds the slab     */
    uint8_t npages;                 /* pages spanned                             */
    uint8_t parked;                 /* on the full list (see the table); other
                                       threads read it with hak_slab_parked      */
    uint8_t zeroed;                 /* no block handed out twice yet, and pages read as zero */
    _Atomic uint32_t sampled;       /* HAKMEM_PROFILE: live sampled blocks (profile lock) */
    /* Second cache line: what the owner writes at every malloc and free,
     * and the rarely used remote list. */
    hak_block_t *free __attribute__((aligned(64))); /* owner: blocks ready to hand out */
    uint32_t used;                  /* owner: blocks out + pin (see Counting)    */
    _Atomic int32_t remote_n;       /* blocks counted onto remote: raised before
                                       the push, lowered after a drain, so never
                                       fewer than the list holds (remote.c)      */
    _Atomic(hak_block_t *) remote;
    struct hak_slab *prev, *next;   /* owner's list, or the abandoned list       */
    /* The background thread's last look at a partial slab (remote.c, Free
     * blocks' pages), under the owner's heap lock: */
    hak_block_t *seen_free;         /* the free list's head then                 */
    hak_block_t *released;          /* the blocks from this one on have had their
                                       pages released (NULL: none); reset when the
                                       slab leaves the partial list             */
    uint32_t released_bytes;        /* how many bytes of pages that was          */
    uint32_t released_ms;           /* when, low 32 bits of hak_now_ms           */
} __attribute__((aligned(64))) hak_slab_t;

_Static_assert(sizeof(hak_slab_t) == 128, "slab descriptor is two cache lines");

/* Blocks of s handed out, as another thread may read them for the
 * statistics: owner-written fields read racily, a snapshot, not a lock. */
static inline uint32_t hak_slab_out_snapshot(const hak_slab_t *s)
{
    uint32_t used = __atomic_load_n(&s->used, __ATOMIC_RELAXED);
    uint32_t pin = hak_slab_pin(__atomic_load_n(&s->list, __ATOMIC_RELAXED), s->bsize);
    return used > pin ? used - pin : 0;
}

typedef struct hak_superslab {
    hak_slab_t slabs[HAK_SS_PAGES]; /* descriptor of the slab starting at page i */
    uint8_t first_page[HAK_SS_PAGES]; /* page -> first page of its slab (itself if free) */
    /* page -> its Tiny slab, for a free that reads no descriptor: the class
     * in bits 0-7, bump - start above (a Tiny slab is one page); 0 when no
     * Tiny slab starts on the page, so that no offset is below its bump.
     * Written with the slab's start, carves and return to the pool
     * (hak_block_page_set). */
    _Atomic uint32_t tiny_page[HAK_SS_PAGES];
    /* page -> its Mid slab, likewise: the class in bits 0-7, the page's
     * index in its slab in bits 8-10, bump - start from bit 11; 0 when no
     * Mid slab spans the page.  Read only by frees that tiny_page turned
     * away, so that a Tiny free does not decode it. */
    _Atomic uint32_t mid_page[HAK_SS_PAGES];
    /* pool lock: */
    struct hak_ss_pool *pool;       /* the page pool's record of it (superslab.c) */
    struct hak_superslab *all_next; /* every SuperSlab ever carved               */
} hak_superslab_t;

_Static_assert(sizeof(hak_superslab_t) <= HAK_PAGE_SIZE, "header fits page 0");
_Static_assert(sizeof(((hak_superslab_t *)0)->slabs) % HAK_OS_PAGE == 0,
               "the descriptors are whole OS pages (purged with an empty SuperSlab)");

static inline hak_superslab_t *hak_ss_of(const void *p)
{
    return (hak_superslab_t *)((uintptr_t)p & ~(uintptr_t)HAK_SS_MASK);
}

static inline hak_slab_t *hak_slab_of(hak_superslab_t *ss, const void *p)
{
    unsigned page = ((uintptr_t)p >> HAK_PAGE_SHIFT) & (HAK_SS_PAGES - 1);
    return &ss->slabs[ss->first_page[page]];
}

#define HAK_TC_NCLASS (HAK_NCLASS_TINY + HAK_NCLASS_MID)  /* cached: up to HAK_MID_MAX */
#define HAK_MID_PAGE_SHIFT 11               /* mid_page: where bump - start begins */

/* The tiny_page or mid_page entries of s's pages, after its start or a
 * carve (0: s leaves).  Large slabs have none. */
static inline void hak_block_page_set(hak_slab_t *s, bool active)
{
    hak_superslab_t *ss = hak_ss_of(s->start);
    unsigned first = (unsigned)(s - ss->slabs);
    uint32_t carved = (uint32_t)(s->bump - s->start);
    if (s->cls < HAK_NCLASS_TINY) {
        atomic_store_explicit(&ss->tiny_page[first], active ? s->cls | carved << 8 : 0,
                              memory_order_relaxed);
        return;
    }
    if (s->cls >= HAK_TC_NCLASS)
        return;
    for (unsigned k = 0; k < s->npages; k++)      /* npages <= 8: k fits bits 8-10 */
        atomic_store_explicit(&ss->mid_page[first + k],
                              active ? s->cls | k << 8 | carved << HAK_MID_PAGE_SHIFT : 0,
                              memory_order_relaxed);
}

/* Of mid_page entry e: its page's offset in the slab, and how far the slab
 * is carved (both bytes from the slab's start). */
static inline uint64_t hak_mid_page_offset(uint32_t e)
{
    return (uint64_t)(e & 0x700) << (HAK_PAGE_SHIFT - 8);     /* bits 8-10, times the page */
}
static inline uint64_t hak_mid_page_carved(uint32_t e) { return e >> HAK_MID_PAGE_SHIFT; }

/* ceil(2^64 / bsize), bsize > 1: the multiplier of hak_slab_boundary's test. */
static inline uint64_t hak_boundary_mul(uint32_t bsize)
{
    return UINT64_MAX / bsize + 1;
}

/* p, which lies in a page of s (so p >= s->start), is the start of a block
 * of s that has been carved: below the bump pointer, at a multiple of bsize.
 * No division: with c = ceil(2^64 / bsize), off is a multiple of bsize iff
 * off * c (mod 2^64) < c, exact for off < 2^32 (Lemire, Kaser and Kurz,
 * "Faster remainder by direct computation", 2019); slabs are <= 2 MiB. */
static inline bool hak_slab_boundary(const hak_slab_t *s, const void *p)
{
    uint64_t off = (uintptr_t)p - (uintptr_t)s->start;
    return (const char *)p < __atomic_load_n(&s->bump, __ATOMIC_RELAXED) &&
           off * s->boundary_mul < s->boundary_mul;
}

/* ---- locks: small spin-then-sleep locks, safe to reset in a fork child ----- */
/* held: 0 free, 1 held, 2 held and a waiter may sleep on it (the unlock wakes
 * one).  Waiters spin a little, then sleep in the kernel: yielding instead
 * left a waiter off the CPU for a whole time slice when threads outnumber
 * cores (rptest at 4 threads on 2 cores: ~1000 yields a run). */
typedef struct {
    _Atomic int held;
    _Atomic uint64_t waits;     /* takes that found it held (the Large cache: heap.c) */
} hak_lock_t;
HAK_HIDDEN void hak_lock_slow(hak_lock_t *l);
HAK_HIDDEN void hak_lock_wake(hak_lock_t *l);
static inline void hak_lock(hak_lock_t *l)
{
    int free_ = 0;
    if (HAK_UNLIKELY(!atomic_compare_exchange_strong_explicit(&l->held, &free_, 1,
                                                              memory_order_acquire,
                                                              memory_order_relaxed)))
        hak_lock_slow(l);
}
static inline void hak_unlock(hak_lock_t *l)
{
    if (HAK_UNLIKELY(atomic_exchange_explicit(&l->held, 0, memory_order_release) == 2))
        hak_lock_wake(l);
}
static inline void hak_lock_reset(hak_lock_t *l) { atomic_store_explicit(&l->held, 0, memory_order_relaxed); }

/* parked is written under the owner's heap lock (see Ownership); other
 * threads read it with this.  The owner's free reads it plainly before it
 * writes the slab (fastpath.h says why that is no race). */
static inline bool hak_slab_parked(const hak_slab_t *s)
{
    return __atomic_load_n(&s->parked, __ATOMIC_RELAXED);
}

static inline void hak_slab_set_parked(hak_slab_t *s, uint8_t v)
{
    __atomic_store_n(&s->parked, v, __ATOMIC_RELAXED);
}

/* list changes under the owner's heap lock, under hak_own_lock (ownerless
 * slabs), or with no lock (the owner's current slab, CUR <-> NONE); a
 * thread releasing an idle owner's slab reads it under the owner's heap
 * lock to see whether it is FULL or PARTIAL, which are entered and left
 * only under that lock.  So every store is atomic (a plain byte store on
 * x86), and that read is too. */
static inline void hak_slab_set_list(hak_slab_t *s, uint8_t list)
{
    __atomic_store_n(&s->list, list, __ATOMIC_RELAXED);
}

/* The owner of a slab with no block out, on its way back to the pool or in
 * it: never 0, so that only an ACTIVE slab nobody owns reads owner 0.
 * (Descriptors never used, or purged with their empty SuperSlab, read 0
 * with state FREE.) */
#define HAK_OWNER_DYING ((uintptr_t)3)

/* s is ACTIVE and has no owner (abandoned, or parked ownerless).  A thread
 * that pushed onto s may find it released and handed out again meanwhile:
 * a release keeps owner HAK_OWNER_DYING, and slab_init stores the new owner
 * before the state (read first here), so neither is taken for ownerless. */
static inline bool hak_slab_ownerless(const hak_slab_t *s)
{
    return __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == HAK_SLAB_ACTIVE &&
           atomic_load(&s->owner) == 0;
}

/* ---- heaps ------------------------------------------------------------------ */
/* The shared part of a thread's heap.  Records are recycled, never unmapped:
 * a thread that read a stale owner may still push onto inbox, and the
 * receiver frees each block by its slab's current owner. */
#define HAK_INBOX_CLOSED ((hak_block_t *)1)   /* the thread is exiting */
typedef struct hak_heap_rec {
    _Atomic(hak_block_t *) inbox;   /* blocks of our slabs freed by others, in batches */
    _Atomic uint64_t inbox_taken_ms;/* when the owner last took a non-empty inbox */
    _Atomic int64_t inbox_bytes;    /* bytes of blocks pushed onto inbox and not yet
                                       taken off it: raised after a push, lowered
                                       after a take, so briefly below 0 at times;
                                       never reset (a recycled record's pushes and
                                       takes still pair up) */
    _Atomic uint64_t spilled;       /* bit c: a push put blocks of class c on a parked
                                       slab's remote list (the owner idle or behind);
                                       its refill unparks those slabs */
    struct hak_heap_rec *next_free; /* record free list (record lock)            */
    /* A line of its own: every free of one of our blocks by another thread
     * reads it, and pushes onto inbox must not take it away from them. */
    _Atomic uint8_t idle __attribute__((aligned(64))); /* a pusher found the owner idle;
                                                           its refill clears it */
    /* Held while the full lists or a parked slab change: by the owner, and
     * by a thread releasing a parked slab whose blocks all came back
     * (remote.c).  A leaf lock: nothing is taken while it is held. */
    hak_lock_t lock __attribute__((aligned(64)));
    /* owner thread only: */
    bool slow;                      /* hak_slow_mode: every call takes the slow path */
    uint32_t foreign_in[HAK_NCLASS];/* blocks put in foreign[c] since it was last empty */
    uint16_t foreign_cap[HAK_NCLASS];/* foreign[c] is shipped home beyond this many */
    hak_slab_t *cur[HAK_NCLASS];    /* current slabs when hak_slow_mode keeps them out of TLS */
    hak_slab_t *partial[HAK_NCLASS];/* owned slabs with blocks to hand out, oldest first */
    hak_slab_t *partial_tail[HAK_NCLASS];
    hak_slab_t *full[HAK_NCLASS];   /* owned slabs parked full                   */
    /* The Large cache (ACE, heap.c): empty Large slabs kept on the partial
     * lists for the next Large malloc of this thread, so that a Large
     * malloc and free take this heap's lock instead of the pool's.
     *     large_kept = sum of bsize over the Large slabs on partial[]
     * (a Large slab is on a partial list only when empty: one block each),
     * kept by partial_append and hak_partial_remove, under the heap lock. */
    size_t large_kept;
    size_t large_budget;            /* large_kept stays within it; learned       */
    bool large_over;                /* a Large slab went to the pool for want of
                                       budget since the last pool take          */
    uint32_t large_hits;            /* Large slabs reused since the last look    */
    uint32_t large_takes;           /* Large slabs from the pool since the last grow */
    uint64_t large_waits;           /* hak_pool_waits at the last grow           */
    uint32_t refills;               /* refills so far: the looks' cadence (owner) */
    uint64_t large_look_ms;         /* when the budget was last looked at (owner) */
    uint64_t tc_flush_ms;           /* when they were last emptied (owner)       */
    /* The foreign cache: blocks of other heaps' slabs this thread freed, on
     * the free list of a stand-in slab (list HAK_LIST_FOREIGN) that can be
     * made current, so the fast path hands them out.  Its used counts pops,
     * so it holds foreign_in[c] - foreign[c].used blocks. */
    hak_slab_t foreign[HAK_NCLASS];
} __attribute__((aligned(64))) hak_heap_rec_t;

/* An emptied foreign cache holds 0 blocks: foreign_in - used = 0. */
static inline void hak_foreign_reset(hak_heap_rec_t *r, unsigned c)
{
    r->foreign[c].used = 0;
    r->foreign_in[c] = 0;
}

#define HAK_HEAP_ID_NONE ((uintptr_t)1) /* never a record address, never 0 */

/* The thread-local part: just what the fast paths read.  In hak_slow_mode
 * (HAKMEM_CHECK, HAKMEM_PROFILE) the fast paths are switched off without a
 * test of their own: cur stays
 * all hak_empty_slab and id stays HAK_HEAP_ID_NONE, so every call reaches
 * the slow paths; rec is the heap either way. */
typedef struct hak_tls {
    /* The thread caches (top of this file), one entry per class in each
     * array, so that the fast paths index each with the class: */
    hak_block_t *tc_head[HAK_TC_NCLASS];
    hak_block_t *tc_next[HAK_TC_NCLASS];    /* tc_head's link, or NULL (not known
                                               since a malloc took the head): free
                                               tests it without reading a block */
    uint64_t tc_mul[HAK_TC_NCLASS];     /* the class's boundary_mul; 0: closed    */
    int32_t tc_room[HAK_TC_NCLASS];     /* blocks it takes before it is full:
                                           tc_max - blocks on tc_head           */
    uint32_t tc_max[HAK_TC_NCLASS];
    uint32_t tc_streak[HAK_TC_NCLASS];  /* times it filled since it last ran dry  */
    uint32_t tc_cap[HAK_TC_NCLASS];     /* tc_max when it runs dry               */
    hak_slab_t *cur[HAK_NCLASS];    /* current slab per class, never NULL        */
    uintptr_t id;                   /* == (uintptr_t)rec, or HAK_HEAP_ID_NONE    */
    hak_heap_rec_t *rec;            /* this thread's heap, NULL before first use */
} hak_tls_t;

extern __thread hak_tls_t hak_tls HAK_HIDDEN __attribute__((tls_model("initial-exec")));
extern hak_slab_t hak_empty_slab HAK_HIDDEN;

/* ---- size classes (sizeclass.c) ------------------------------------------- */
typedef struct { uint32_t size; uint8_t pages; } hak_class_info_t;
extern const hak_class_info_t hak_classes[HAK_NCLASS] HAK_HIDDEN;
extern const uint8_t hak_tiny_class[(HAK_TINY_MAX >> 3) + 1] HAK_HIDDEN;

static inline unsigned hak_class_of(size_t n)   /* n <= HAK_LARGE_MAX */
{
    if (n <= HAK_TINY_MAX)
        return hak_tiny_class[(n + 7) >> 3];
    size_t m = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(m);     /* 2^b <= m < 2^(b+1) */
    return 20u + (b - 10u) * 4u + (unsigned)((m >> (b - 2)) & 3u);
}
HAK_HIDDEN int hak_class_for_aligned(size_t n, size_t align);

/* ---- OS layer (os.c) --------------------------------------------------------- */
/* System calls this thread made through this layer (the bands' cost). */
extern __thread unsigned long hak_os_calls HAK_HIDDEN __attribute__((tls_model("initial-exec")));
HAK_HIDDEN void *hak_os_map(size_t size, bool reserve_only);
HAK_HIDDEN void  hak_os_unmap(void *p, size_t size);
HAK_HIDDEN void  hak_os_purge(void *p, size_t size);
HAK_HIDDEN void  hak_os_huge_pages(void *p, size_t size, bool on);
HAK_HIDDEN void *hak_os_map_aligned(size_t size, size_t align, size_t offset, bool reserve_only);
HAK_HIDDEN bool  hak_os_grow(void *p, size_t old_size, size_t new_size);
HAK_HIDDEN bool  hak_os_move(void *p, size_t old_size, void *to, size_t new_size);
HAK_HIDDEN void  hak_os_fault_init(void);
HAK_HIDDEN size_t hak_os_mapped(void);      /* bytes HAKMEM holds mapped now */
HAK_HIDDEN uint64_t hak_now_ms(void);
HAK_HIDDEN void  hak_os_yield(void);
HAK_HIDDEN void  hak_os_wait(_Atomic int *word, int value);
HAK_HIDDEN void  hak_os_wait_ms(_Atomic int *word, int value, uint64_t ms);
HAK_HIDDEN void  hak_os_wake(_Atomic int *word);
HAK_HIDDEN bool  hak_os_thread(void *(*fn)(void *));
HAK_HIDDEN void  hak_os_write(int fd, const char *buf, size_t len);
HAK_HIDDEN int   hak_os_pid(void);
HAK_HIDDEN int   hak_os_dup(int fd);
HAK_HIDDEN int   hak_os_open(const char *path, bool write);
HAK_HIDDEN long  hak_os_read(int fd, char *buf, size_t len);
HAK_HIDDEN void  hak_os_close(int fd);
HAK_HIDDEN bool  hak_os_protect(void *p, size_t size, bool access);
HAK_HIDDEN void *hak_libc_memcpy(void *dst, const void *src, size_t n);
HAK_HIDDEN void *hak_libc_memmove(void *dst, const void *src, size_t n);
HAK_HIDDEN void *hak_libc_memset(void *dst, int c, size_t n);

/* ---- SuperSlabs and the page pool (superslab.c) ------------------------------ */
/* resident_only: NULL unless a run of free pages still resident holds it. */
HAK_HIDDEN hak_slab_t *hak_pool_slab_alloc(unsigned cls, uintptr_t owner, bool resident_only);
HAK_HIDDEN void hak_pool_slab_free(hak_slab_t *s);
HAK_HIDDEN int  hak_pool_trim(void);
/* New memory of bytes mapped elsewhere (Huge): as much kept free, oldest first, purged. */
HAK_HIDDEN void hak_pool_yield_room(size_t bytes);
HAK_HIDDEN void hak_pool_lock_all(void);
HAK_HIDDEN void hak_pool_unlock_all(bool child);
typedef void (*hak_slab_visitor)(hak_slab_t *s, void *arg);
HAK_HIDDEN hak_superslab_t *hak_superslab_first(void);  /* lock-free; then all_next */
HAK_HIDDEN void hak_pool_visit(hak_slab_visitor fn, void *arg); /* caller holds the pool lock */
HAK_HIDDEN void hak_pool_walk(hak_slab_visitor fn, void *arg);  /* visit under the pool lock */
HAK_HIDDEN void hak_pool_figures(size_t *mapped, size_t *committed, size_t *superslabs,
                                 size_t *slabs, size_t *in_use);

/* ---- heaps (heap.c): what the owning thread does ------------------------------ */
HAK_HIDDEN void *hak_alloc_slow(size_t n);
HAK_HIDDEN void *hak_alloc_class(unsigned cls);
/* HAKMEM_CHECK's guards around blocks (check.c) */
HAK_HIDDEN void *hak_check_alloc(size_t n, size_t align);
/* Blocks of s that, once carved, are neither free nor handed out: in check
 * mode the first of a slab of two or more is a guard (heap.c carves it so). */
static inline unsigned hak_slab_guards(const hak_slab_t *s)
{
    return hak_check_mode && (size_t)(s->end - s->start) >= 2 * (size_t)s->bsize;
}
HAK_HIDDEN void hak_check_carved(void *p, size_t bsize);
HAK_HIDDEN void hak_check_handed_out(void *p, const hak_slab_t *s);
HAK_HIDDEN bool hak_check_is_free(void *p, const hak_slab_t *s);   /* a free block of s */
/* Zero-byte blocks: true if p is one (freed now, or aborts if it is not
 * live); the size of a live one (0), or aborts; whether p is a live one. */
HAK_HIDDEN bool hak_check_zero_free(void *p, const char *call);
HAK_HIDDEN bool hak_check_zero_live(const void *p, const char *call);
HAK_HIDDEN bool hak_check_zero_owns(const void *p);
/* memcpy and the like: dst and src (NULL: none) for n bytes must each lie
 * within one live block's bytes when in HAKMEM's memory. */
HAK_HIDDEN void hak_check_copy(void *dst, const void *src, size_t n, const char *call);
HAK_HIDDEN extern hak_lock_t hak_zero_lock;
HAK_HIDDEN void hak_check_freeing(void *p, const hak_slab_t *s, const char *call);
HAK_HIDDEN size_t hak_check_size(void *p, const hak_slab_t *s);
HAK_HIDDEN void *hak_check_hold(void *p, size_t bsize);
HAK_HIDDEN void *hak_check_release(void);
HAK_HIDDEN void hak_check_thread_exit(void); /* after hak_check_flush: the quarantine unmapped */
HAK_HIDDEN void hak_check_flush(void);      /* remote.c: every held block freed */
HAK_HIDDEN void hak_check_heap(const char *call);
/* A Huge block p being freed or moved: its guard must be intact. */
HAK_HIDDEN void hak_check_huge_freeing(void *p, const char *call);
/* free_sized and free_aligned_sized (align 0: none): n must be the size
 * asked for, and p aligned as asked. */
HAK_HIDDEN void hak_check_sized(void *p, size_t n, size_t align, const char *call);
HAK_HIDDEN void *hak_alloc_aligned(size_t align, size_t n);
HAK_HIDDEN void *hak_calloc_impl(size_t count, size_t size);
HAK_HIDDEN void *hak_realloc_impl(void *p, size_t n, const char *call);
HAK_HIDDEN size_t hak_usable_impl(const void *p, const char *call);
HAK_HIDDEN void  hak_free_local_slow(hak_slab_t *s, hak_block_t *head);
HAK_HIDDEN void  hak_free_parked(hak_slab_t *s, hak_block_t *head, hak_block_t *tail, uint32_t n);
/* Off the owner's partial or full list (and unparked), under r's lock. */
HAK_HIDDEN void  hak_partial_remove(hak_heap_rec_t *r, hak_slab_t *s);
HAK_HIDDEN void  hak_full_remove(hak_heap_rec_t *r, hak_slab_t *s);
HAK_HIDDEN void  hak_heap_thread_exit(void *rec);
HAK_HIDDEN int   hak_heap_trim(void);
HAK_HIDDEN void  hak_heap_process_init(void);
HAK_HIDDEN void  hak_heap_fork_prepare(void);
HAK_HIDDEN void  hak_heap_fork_parent(void);
HAK_HIDDEN void  hak_heap_fork_child(void);
HAK_HIDDEN bool  hak_heap_init(hak_tls_t *t);
HAK_HIDDEN void  hak_slab_drain(hak_slab_t *s);
HAK_HIDDEN void  hak_heap_file(hak_tls_t *t, hak_slab_t *s);
HAK_HIDDEN void  hak_heap_use_foreign(hak_tls_t *t, unsigned cls);
HAK_HIDDEN extern hak_lock_t hak_rec_lock;

/* The owner value of t's slabs (t->id is only what the fast path compares,
 * which hak_slow_mode keeps unmatchable). */
static inline uintptr_t hak_heap_id(const hak_tls_t *t)
{
    return t->rec ? (uintptr_t)t->rec : HAK_HEAP_ID_NONE;
}

/* Where t keeps its current slab of class c: TLS for the fast path, or the
 * heap record when hak_slow_mode keeps the fast path away from it. */
static inline hak_slab_t **hak_cur_slot(hak_tls_t *t, unsigned c)
{
    return t->rec->slow ? &t->rec->cur[c] : &t->cur[c];
}

/* Doubly linked slab lists.  Head stores are relaxed atomics because the
 * refill peeks at an abandoned list's head without the lock. */
static inline void hak_list_push(hak_slab_t **head, hak_slab_t *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    __atomic_store_n(head, s, __ATOMIC_RELAXED);
}

static inline void hak_list_remove(hak_slab_t **head, hak_slab_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        __atomic_store_n(head, s->next, __ATOMIC_RELAXED);
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* ---- slab ownership and cross-thread frees (remote.c) ----------------------------- */
HAK_HIDDEN void  hak_free_slow(void *p, const char *call);
HAK_HIDDEN void  hak_free_slab_slow(hak_slab_t *s, void *p, const char *call);
HAK_HIDDEN void  hak_inbox_take(hak_tls_t *t);
HAK_HIDDEN uint64_t hak_spilled_take(hak_heap_rec_t *r);
HAK_HIDDEN void  hak_inbox_close(hak_tls_t *t);
HAK_HIDDEN void  hak_inbox_open(hak_heap_rec_t *r);
HAK_HIDDEN void  hak_foreign_init(hak_heap_rec_t *r);
HAK_HIDDEN void  hak_foreign_ship_all(hak_tls_t *t);
HAK_HIDDEN void  hak_remote_trim(hak_tls_t *t);
HAK_HIDDEN void  hak_tc_full(hak_block_t *b, unsigned c, const char *call);
HAK_HIDDEN void *hak_tc_dry(unsigned c, size_t n);
HAK_HIDDEN void  hak_tc_grow(unsigned c);
HAK_HIDDEN void  hak_tc_open(hak_tls_t *t);
HAK_HIDDEN void  hak_tc_flush(hak_tls_t *t);
HAK_HIDDEN void  hak_tc_close(hak_tls_t *t);
HAK_HIDDEN void  hak_slab_release(hak_tls_t *t, hak_slab_t *s);
HAK_HIDDEN void  hak_slab_abandon(hak_slab_t *s);
HAK_HIDDEN hak_slab_t *hak_abandoned_take(hak_tls_t *t, unsigned cls);
HAK_HIDDEN int   hak_abandoned_trim(hak_tls_t *t);
HAK_HIDDEN void  hak_own_fork_child(hak_tls_t *t);
HAK_HIDDEN extern hak_lock_t hak_own_lock;
#ifdef HAK_DEBUG
HAK_HIDDEN void hak_slab_check(const hak_tls_t *t, const hak_slab_t *s);
#else
static inline void hak_slab_check(const hak_tls_t *t, const hak_slab_t *s) { (void)t; (void)s; }
#endif

/* ---- the background release thread (background.c) --------------------------- */
/* Started by the first malloc slow path that finds HAKMEM holding more than
 * HAK_BG_START_BYTES (a slow path entered from the fast path holds no lock,
 * which pthread_create needs: it calls calloc). */
#define HAK_BG_START_BYTES ((size_t)8 << 20)
enum { HAK_BG_OFF, HAK_BG_RUNNING, HAK_BG_STOPPING, HAK_BG_STOPPED, HAK_BG_DISABLED };
HAK_HIDDEN extern _Atomic int hak_bg_state;
HAK_HIDDEN void hak_background_start(void);
HAK_HIDDEN void hak_background_wake(void);       /* memory became free: no lock held */
HAK_HIDDEN void hak_background_fork_child(void);
#define HAK_NEVER UINT64_MAX                      /* no deadline */
/* The thread's turns: release what is due, return the ms until the next
 * deadline (HAK_NEVER: nothing left to release). */
HAK_HIDDEN uint64_t hak_pool_release(void);
HAK_HIDDEN uint64_t hak_huge_release(void);
HAK_HIDDEN uint64_t hak_slab_pages_release(void);   /* free blocks' pages (remote.c) */
HAK_HIDDEN int hak_slab_pages_trim(void);           /* all of them now: malloc_trim */
/* s, a partial slab whose blocks are about to be handed out again, leaves
 * the partial list (under the owner's heap lock): its released pages count
 * as taken back (remote.c). */
HAK_HIDDEN void hak_slab_pages_reused(const hak_slab_t *s);
HAK_HIDDEN uint64_t hak_retain_ms(void);            /* the learned retention, lock-free */
HAK_HIDDEN size_t hak_pool_dirty_cap(void);         /* the learned cap on free pages kept */
HAK_HIDDEN void hak_retain_regret(uint64_t age_ms); /* memory released that old was wanted */
HAK_HIDDEN uint64_t hak_pool_waits(void);  /* takes of the pool's lock that waited */
HAK_HIDDEN uint64_t hak_pool_last_call_ms(void);  /* a slab last handed out or freed */

/* ---- Huge blocks (huge.c) ----------------------------------------------------- */
HAK_HIDDEN void  *hak_huge_alloc(size_t n, size_t align, bool zero);
HAK_HIDDEN int    hak_huge_trim(void);
HAK_HIDDEN extern hak_lock_t hak_huge_lock;
HAK_HIDDEN void   hak_huge_free(void *p, const char *call);
HAK_HIDDEN size_t hak_huge_usable(const void *p);
HAK_HIDDEN bool   hak_huge_owns(const void *p);
HAK_HIDDEN bool   hak_huge_extent(const void *p, char **user, size_t *asked);
HAK_HIDDEN size_t hak_huge_asked(const void *p);
HAK_HIDDEN void   hak_huge_set_asked(void *p, size_t n);
HAK_HIDDEN void  *hak_huge_realloc(void *p, size_t n);
HAK_HIDDEN size_t hak_huge_cache_cap(void);     /* the learned capacity, bytes */

HAK_HIDDEN size_t hak_huge_cached(void);        /* bytes of mappings in the cache */

/* ---- size bands of big blocks and their learned placement (learn.c) ----------- */
/* Band b counts mallocs of more than HAK_BAND_MIN << b bytes and at most
 * HAK_BAND_MIN << (b + 1) (as the tiers: Large is above 64 KiB up to 2 MiB
 * included), the last band everything bigger.  Blocks of a learned band (512 KiB - 2 MiB)
 * go to a Large slab or to a mapping of their own, as two players rated by
 * ELO decide; the ratings are kept less HAK_ELO_START, and every match moves
 * points from one to the other:
 *     rating[HAK_ARM_LARGE] + rating[HAK_ARM_MAP] = 0
 *     arm = incumbent (the higher rated, or the one that was first at a tie),
 *           except during a trial of the other
 * Counters only grow; allocs counts the mallocs, calloc and realloc copies
 * of the band (aligned ones are not counted and never mapped by the band). */
#define HAK_BAND_MIN ((size_t)64 << 10)
#define HAK_NBANDS 10
#define HAK_ELO_START 1500
enum { HAK_ARM_MAP, HAK_ARM_LARGE, HAK_ARMS };  /* the incumbent at first is 0: MAP */
enum { HAK_BAND_ALLOCS, HAK_BAND_BYTES, HAK_BAND_REUSED, HAK_BAND_FRESH, HAK_BAND_OS_CALLS, HAK_BAND_RELEASED,
       HAK_BAND_NSTAT };
static inline unsigned hak_band_of(size_t n)    /* n > HAK_MID_MAX */
{
    unsigned b = 63u - (unsigned)__builtin_clzl((n - 1) >> 16);
    return b < HAK_NBANDS - 1 ? b : HAK_NBANDS - 1;
}
/* Whether a malloc of n (HAK_MID_MAX < n <= HAK_LARGE_MAX) gets its own mapping. */
HAK_HIDDEN bool hak_band_maps(size_t n);
/* A big malloc of n succeeded; hak_os_calls was calls_before when it began. */
HAK_HIDDEN void hak_band_allocated(size_t n, unsigned long calls_before);
HAK_HIDDEN void hak_band_count(unsigned band, int stat, size_t v);
HAK_HIDDEN void hak_band_lock_all(void);
HAK_HIDDEN void hak_band_unlock_all(bool child);

/* ---- lookup shared by free, realloc and usable size (api.c) -------------------- */
/* Returns the slab holding block p, NULL for a Huge block; reports and aborts
 * for a pointer that is not a block HAKMEM handed out (with if_freed as the
 * error when p looks like a block already freed). */
HAK_HIDDEN hak_slab_t *hak_block_slab(const void *p, const char *call, const char *if_freed);
/* p is a block of s that has been handed out at some time (s in use). */
static inline bool hak_slab_block_valid(const hak_slab_t *s, const void *p)
{
    return __atomic_load_n(&s->state, __ATOMIC_RELAXED) == HAK_SLAB_ACTIVE &&
           (const char *)p >= s->start && hak_slab_boundary(s, p);
}

/* p is such a block of some slab (not a Huge block); never faults. */
static inline bool hak_slab_block(const void *p)
{
    return hak_region_of((uintptr_t)p) == HAK_REGION_SS &&
           hak_slab_block_valid(hak_slab_of(hak_ss_of(p), p), p);
}

/* ---- process init and options (init.c, options.c) ----------------------------- */
HAK_HIDDEN void hak_init(void);
/* Every HAKMEM_* setting: id, environment variable, kind, default, minimum,
 * maximum, meaning.  The parser (options.c), hak_setting_at and the docs
 * (README, man pages: tests/test_docs.sh) come from this list; a bad value
 * is reported and the default used.  NUM settings are decimal numbers in
 * [min, max]; a TEXT setting is any non-empty string up to
 * HAK_TEXT_MAX - 1 bytes (hak_option_text), and its number is 1 when set. */
#define HAK_OPTION_TABLE(X)                                                        \
    X(RETAIN_MS, "HAKMEM_RETAIN_MS", NUM, 100, 0, 600000,                          \
      "milliseconds a free page stays resident before it is returned to the OS")   \
    X(BACKGROUND, "HAKMEM_BACKGROUND", NUM, 1, 0, 1,                               \
      "1: a background thread returns free memory while the program is idle; "     \
      "0: only allocator calls do")                                                \
    X(HUGE_CACHE_MB, "HAKMEM_HUGE_CACHE_MB", NUM, 0, 0, 1048576,                   \
      "MiB of freed Huge mappings kept for reuse (0: learned while the background "\
      "thread runs, from 64)")                                                     \
    X(LARGE_CACHE_MB, "HAKMEM_LARGE_CACHE_MB", NUM, 0, 0, 1048576,                 \
      "MiB of emptied Large slabs each thread keeps for its next Large mallocs "    \
      "(0: learned, grown while the page pool's lock is contended, up to 16)")      \
    X(MAP_THRESHOLD_KB, "HAKMEM_MAP_THRESHOLD_KB", NUM, 0, 0, 2048,                \
      "KiB above which a malloc gets a mapping of its own (0: learned per size "   \
      "band between 512 and 2048, mapped at first; sizes above 2048 always are)")   \
    X(HUGE_PAGES, "HAKMEM_HUGE_PAGES", NUM, 0, 0, 1,                               \
      "1: the 2 MiB pages wholly inside a Huge block may be transparent huge "      \
      "pages (one page fault instead of 512, but 2 MiB to zero and find); 0: 4 KiB "\
      "pages only")                                                                 \
    X(STATS, "HAKMEM_STATS", NUM, 0, 0, 2,                                         \
      "1: print statistics to stderr at exit; 2: the same as one line of JSON")     \
    X(CHECK, "HAKMEM_CHECK", NUM, 0, 0, 1,                                         \
      "1: check every call (double free, use after free, heap corruption); slower") \
    X(PROFILE, "HAKMEM_PROFILE", TEXT, 0, 0, 0,                                    \
      "file for a heap profile of sampled allocations with their call stacks, "    \
      "written at exit (pprof's format; %p: the pid), and FILE.leaks; slower")     \
    X(PROFILE_RATE, "HAKMEM_PROFILE_RATE", NUM, 524288, 1, 1000000000,             \
      "bytes allocated per heap-profile sample, on average (1: every allocation)")  \
    X(FAULT_EVERY, "HAKMEM_FAULT_EVERY", NUM, 0, 0, 1000000000,                    \
      "testing: fail every Nth OS mapping call with ENOMEM (0: never)")            \
    X(FAULT_BUDGET_MB, "HAKMEM_FAULT_BUDGET_MB", NUM, 0, 0, 1000000000,            \
      "testing: fail OS mappings beyond this many MiB mapped (0: no limit)")
enum { HAK_OPTION_NUM, HAK_OPTION_TEXT };
#define HAK_TEXT_MAX 1024
#define HAK_OPTION_ID(id, ...) HAK_OPT_##id,
enum { HAK_OPTION_TABLE(HAK_OPTION_ID) HAK_OPT_COUNT };
#undef HAK_OPTION_ID
HAK_HIDDEN extern long hak_options[HAK_OPT_COUNT];
/* A setting's value; those hak_setting_set may change are read with this. */
static inline long hak_option(int id) { return __atomic_load_n(&hak_options[id], __ATOMIC_RELAXED); }
HAK_HIDDEN void hak_options_init(void);
HAK_HIDDEN const char *hak_option_text(int id);     /* a TEXT setting's value, or NULL */
HAK_HIDDEN void hak_stats_init(void);

/* ---- statistics and reports (stats.c) --------------------------------------- */
enum {
    HAK_STAT_OS_MAPS, HAK_STAT_OS_UNMAPS, HAK_STAT_OS_PURGES, HAK_STAT_HUGE_BYTES,
    HAK_STAT_HUGE_BLOCKS, HAK_STAT_REMOTE_FREES, HAK_STAT_THREADS_STARTED,
    HAK_STAT_THREADS_EXITED, HAK_STAT_IDLE_SLABS_RELEASED,
    HAK_STAT_OS_REMAPS,             /* mremap calls (Huge realloc)                 */
    HAK_STAT_REMOTE_BATCHES,        /* batches pushed onto an owner's inbox        */
    HAK_STAT_REMOTE_DRAINS,         /* slab remote lists taken by their owner      */
    HAK_STAT_LARGE_REUSED,          /* Large slabs handed out again from a heap's cache */
    HAK_STAT_LARGE_BUDGET_CHANGES,  /* Large cache budgets grown or halved         */
    HAK_STAT_POOL_COMMITTED,        /* bytes of SuperSlabs that may be resident    */
    HAK_STAT_IN_SLABS,              /* bytes of pool pages in slabs (a copy for learn.c) */
    HAK_STAT_BG_RELEASED,           /* bytes the background thread released        */
    HAK_STAT_BLOCK_PAGES_RELEASED,  /* of those, pages inside free blocks (remote.c) */
    HAK_STAT_RETAIN_CHANGES, HAK_STAT_HUGE_CAP_CHANGES,
    HAK_STAT_DIRTY_CAP_CHANGES,     /* the pool's cap on free pages raised or cut  */
    HAK_STAT_HUGE_REUSED, HAK_STAT_HUGE_REUSED_BYTES,
    /* Peaks, raised on the slow paths that change the figure: */
    HAK_STAT_PEAK_MAPPED, HAK_STAT_PEAK_COMMITTED, HAK_STAT_PEAK_IN_SLABS, HAK_STAT_PEAK_HUGE,
    HAK_STAT_COUNT
};
HAK_HIDDEN extern _Atomic size_t hak_stat[HAK_STAT_COUNT];
static inline void hak_stat_add(int which, size_t n)
{
    atomic_fetch_add_explicit(&hak_stat[which], n, memory_order_relaxed);
}
static inline void hak_stat_raise(int which, size_t v)
{
    size_t p = atomic_load_explicit(&hak_stat[which], memory_order_relaxed);
    while (v > p && !atomic_compare_exchange_weak_explicit(&hak_stat[which], &p, v,
                                                           memory_order_relaxed,
                                                           memory_order_relaxed))
        ;
}
/* Counts bumped often by every thread are kept per thread and added to
 * hak_stat in 256s: one shared counter would bounce between cores.  Up to
 * 255 per live thread other than the reader are not counted yet. */
extern __thread uint8_t hak_stat_local[HAK_STAT_COUNT] HAK_HIDDEN __attribute__((tls_model("initial-exec")));
static inline void hak_stat_count(int which)
{
    if (++hak_stat_local[which] == 0)
        hak_stat_add(which, 256);
}
HAK_HIDDEN size_t hak_stat_read(int which);     /* with the caller's own remainder */
HAK_HIDDEN void hak_stat_flush_thread(void);   /* the remainders, at thread exit */
/* SuperSlab bytes that may be resident plus bytes in live Huge blocks: the
 * committed figure, read without a lock. */
static inline size_t hak_committed_now(void)
{
    return atomic_load_explicit(&hak_stat[HAK_STAT_POOL_COMMITTED], memory_order_relaxed) +
           atomic_load_explicit(&hak_stat[HAK_STAT_HUGE_BYTES], memory_order_relaxed);
}
/* Raises the committed peak to SuperSlab plus Huge bytes now. */
HAK_HIDDEN void hak_stat_note_committed(void);
/* Text formatted without allocating (messages, reports, the heap profile):
 * with fd >= 0 a full buffer is written out and reused (any length);
 * otherwise the text is cut at the end.  hak_msg_flush writes what is left. */
typedef struct { char buf[640]; size_t len; int fd; } hak_msg_t;
HAK_HIDDEN void hak_msg_ch(hak_msg_t *m, char c);
HAK_HIDDEN void hak_msg_str(hak_msg_t *m, const char *s);
HAK_HIDDEN void hak_msg_dec(hak_msg_t *m, unsigned long v);
HAK_HIDDEN void hak_msg_ptr(hak_msg_t *m, const void *p);   /* as printf's %p */
HAK_HIDDEN void hak_msg_flush(hak_msg_t *m);

/* ---- heap profiling (profile.c) --------------------------------------------- */
/* In profile mode every allocation and free takes the slow paths, which
 * call these; nothing else in HAKMEM knows of profiling. */
HAK_HIDDEN void hak_profile_init(void);
HAK_HIDDEN void hak_profile_alloc(void *p, size_t n);       /* p handed out for n bytes */
HAK_HIDDEN void hak_profile_free(void *p, hak_slab_t *s);   /* before p goes back (s NULL: Huge) */
HAK_HIDDEN void hak_profile_moved(void *from, void *to, size_t n); /* realloc of a Huge block */
HAK_HIDDEN void hak_profile_fork_prepare(void);
HAK_HIDDEN void hak_profile_fork_parent(void);
HAK_HIDDEN void hak_profile_fork_child(void);
/* Check or profile mode: every allocation, align 0 or a power of two. */
HAK_HIDDEN void *hak_alloc_watched(size_t n, size_t align);

/* At the start of the malloc slow paths (background.c). */
static inline void hak_background_poke(void)
{
    if (HAK_UNLIKELY(atomic_load_explicit(&hak_bg_state, memory_order_relaxed) == HAK_BG_OFF) &&
        hak_committed_now() > HAK_BG_START_BYTES)
        hak_background_start();
}
HAK_HIDDEN __attribute__((noreturn)) void hak_fatal(const char *call, const char *what, const void *p);
HAK_HIDDEN void hak_warn_option(const char *env, const char *value, long min, long max, long dflt);
HAK_HIDDEN void hak_warn_text_option(const char *env, size_t max);
HAK_HIDDEN void hak_warn_unknown_option(const char *entry, const char *closest);
HAK_HIDDEN __attribute__((noreturn)) void hak_assert_fail(const char *file, int line, const char *expr);

#ifdef HAK_DEBUG
#define hak_assert(c) \
    do { if (HAK_UNLIKELY(!(c))) hak_assert_fail(__FILE__, __LINE__, #c); } while (0)
#else
#define hak_assert(c) ((void)0)
#endif

#endif
