/* HAKMEM_CHECK=1: guards around Tiny, Mid and Large blocks.
 *
 * In check mode every call takes the slow paths (heap.c keeps the current
 * slabs out of TLS), so the guards cost the release fast path nothing.  A
 * block handed out for n bytes comes from the class for n + GUARD + TRAILER:
 *
 *     [0, n)             the program's, FRESH when handed out (reads of
 *                        memory never written stand out)
 *     [n, bsize - 8)     PATTERN (GUARD bytes at least)
 *     [bsize - 8, bsize) trailer: n ^ hak_free_key ^ address
 *
 * A free block is zero up to its trailer, which holds FREE_N, except for its
 * first two words while it is on a list (the link, and in an inbox its
 * run's extent: remote.c); so the
 * trailer tells a free block from a live one (a second free, a use after
 * free).  At free and realloc the block's own guard (an overflow of up to
 * GUARD bytes past n, or one that rewrites the trailer) and the guard of the
 * block before it (an underflow of up to GUARD + 8 bytes) are checked; when
 * a block is handed out again it must still be zero (a write after free).
 * A Huge block gets a guard of GUARD bytes or more after the bytes asked
 * for, up to its page end, checked at free and realloc.
 *
 * A freed block is also held back in its thread's quarantine (a FIFO of up
 * to QUARANTINE_BYTES) before it really goes back, so that it is not handed
 * out again at once, and a write after its free is found when it leaves.
 * malloc_trim and exit check every block's guard (hak_check_heap). */
#include <string.h>
#include "types.h"

#define GUARD    32
#define TRAILER  8
#define PATTERN  0xcb                    /* guards */
#define FRESH    0xcd                    /* a block just handed out */
#define FREE_N   ((size_t)1 << 40)       /* no block is this big */
#define BUSY_N   (FREE_N + 1)            /* its guard or state being rewritten */
#define FREE_HEAD (2 * sizeof(void *))   /* a free block's link and run extent */
#define QUARANTINE_BYTES ((size_t)4 << 20)
#define QUARANTINE_SLOTS 4096
#define ZERO_STRIDE  16                  /* zero-byte blocks: see below */
#define ZERO_SLOTS   (HAK_SS_SIZE / ZERO_STRIDE)
#define ZERO_REGIONS 64

/* Mapped at a thread's first hold, not in TLS: glibc zeroes a library's
 * static TLS in every thread it creates, check mode or not (32 KiB a thread
 * doubled Larson's peak RSS, whose exited threads are never joined). */
typedef struct {
    void *block[QUARANTINE_SLOTS];
    unsigned head, n;                     /* oldest at head */
    size_t bytes;
} quarantine_t;
static __thread quarantine_t *quarantine;

static uint64_t *trailer_of(void *p, size_t bsize)
{
    return (uint64_t *)((char *)p + bsize - TRAILER);
}

/* Its own inverse: encode(p, encode(p, n)) == n. */
static uint64_t encode(const void *p, uint64_t n) { return n ^ hak_free_key ^ (uintptr_t)p; }

/* A block of bsize can carry a free block's guard (classes check mode hands
 * out are bigger still). */
static bool guardable(size_t bsize) { return bsize >= FREE_HEAD + TRAILER; }

/* Where the pattern starts in a block holding n (FREE_N: a free block),
 * and what it is. */
static size_t guard_from(size_t n) { return n == FREE_N ? FREE_HEAD : n; }
static unsigned char guard_byte(size_t n) { return n == FREE_N ? 0 : PATTERN; }

/* The n a block's trailer holds (FREE_N for a free block), or SIZE_MAX if
 * the trailer is damaged. */
static size_t stored_n(void *p, size_t bsize)
{
    size_t n = (size_t)encode(p, *trailer_of(p, bsize));
    return n == FREE_N || n + GUARD + TRAILER <= bsize ? n : SIZE_MAX;
}

static bool pattern_intact(const char *from, const char *to, unsigned char byte)
{
    for (const char *q = from; q < to; q++)
        if ((unsigned char)*q != byte)
            return false;
    return true;
}

/* The guard of block p: its trailer and the pattern after its bytes. */
static bool guard_intact(void *p, size_t bsize)
{
    size_t n = stored_n(p, bsize);
    if (n == SIZE_MAX)
        return false;
    return pattern_intact((const char *)p + guard_from(n), (const char *)p + bsize - TRAILER,
                          guard_byte(n));
}

/* The same for a block another thread may be handing out or freeing as we
 * read: its trailer is BUSY_N while its guard changes (guard_set), and a
 * live block's bytes before its guard are not read, so a scan with the same
 * trailer, not BUSY_N, before and after read a consistent block. */
static bool neighbour_intact(void *p, size_t bsize)
{
    uint64_t busy = encode(p, BUSY_N);
    for (int tries = 0; tries < 100; tries++) {
        uint64_t t = __atomic_load_n(trailer_of(p, bsize), __ATOMIC_ACQUIRE);
        if (t == busy)
            continue;
        bool ok = guard_intact(p, bsize);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);    /* the reads above before the load below */
        if (__atomic_load_n(trailer_of(p, bsize), __ATOMIC_RELAXED) == t)
            return ok;
    }
    return true;                    /* changing all the time: in use, not damaged */
}

/* A seqlock for readers of other threads' blocks: the trailer says BUSY_N
 * while the guard changes (a free block's zeros and a live one's pattern
 * differ), then the new n. */
static void guard_set(void *p, size_t bsize, size_t n)
{
    size_t from = guard_from(n);
    if (!guardable(bsize))
        return;                     /* a class check mode never hands out */
    __atomic_store_n(trailer_of(p, bsize), encode(p, BUSY_N), __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);        /* BUSY_N before the guard's bytes */
    memset((char *)p + from, guard_byte(n), bsize - TRAILER - from);
    __atomic_store_n(trailer_of(p, bsize), encode(p, n), __ATOMIC_RELEASE);
}

void hak_check_carved(void *p, size_t bsize) { guard_set(p, bsize, FREE_N); }

bool hak_check_is_free(void *p, const hak_slab_t *s) { return stored_n(p, s->bsize) == FREE_N; }

/* A block about to be handed out from the free list of s: still free and
 * zero, and linked to nothing or to another free block that such a list
 * holds (a slab's: its own; a foreign cache's: its class's); otherwise
 * something wrote to it after its free, and the link it left must not
 * become the next block handed out. */
void hak_check_handed_out(void *p, const hak_slab_t *s)
{
    size_t bsize = s->bsize;
    char *next = *(char **)p;
    if (!hak_slab_block(p) || !guardable(bsize) || stored_n(p, bsize) != FREE_N ||
        !guard_intact(p, bsize))
        hak_fatal("malloc", "heap corruption (freed block modified)", p);
    if (next == NULL)
        return;
    const hak_slab_t *home = hak_slab_block(next) ? hak_slab_of(hak_ss_of(next), next) : NULL;
    if (next == p || home == NULL ||
        (s->list == HAK_LIST_FOREIGN ? home->cls != s->cls : home != s) ||
        stored_n(next, bsize) != FREE_N)
        hak_fatal("malloc", "heap corruption (free list link modified)", p);
}

static void *zero_alloc(void);

void *hak_check_alloc(size_t n, size_t align)
{
    if (n == 0 && align <= ZERO_STRIDE) {
        void *z = zero_alloc();
        if (z)
            return z;
    }
    if (n > HAK_LARGE_MAX - GUARD - TRAILER || align > HAK_SLAB_ALIGN_MAX) {
        char *h = n <= SIZE_MAX / 2 ? hak_huge_alloc(n + GUARD, align, false) : NULL;
        if (h) {
            hak_huge_set_asked(h, n);
            memset(h + n, PATTERN, hak_huge_usable(h) - n);
            memset(h, FRESH, n);
        }
        return h;
    }
    size_t m = n + GUARD + TRAILER;
    unsigned cls = align > 16 ? (unsigned)hak_class_for_aligned(m, align) : hak_class_of(m);
    void *p = hak_alloc_class(cls);
    if (p) {
        guard_set(p, hak_classes[cls].size, n);
        memset(p, FRESH, n);        /* after: a live block's guard starts at n */
    }
    return p;
}

size_t hak_check_size(void *p, const hak_slab_t *s)
{
    size_t n = stored_n(p, s->bsize);
    return n == SIZE_MAX || n == FREE_N ? 0 : n;
}

/* p, a live block of s, is being freed (or moved by realloc): its guard and
 * the guard of the block before it must be intact; then it becomes a free
 * block, all zero (its first two words too: it is on no list yet). */
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
            !pattern_intact(before + FREE_HEAD, (char *)p - GUARD - TRAILER, 0))
            hak_fatal(call, "write after free", before);
        hak_fatal(call, "buffer underflow", p);
    }
    guard_set(p, b, FREE_N);
    memset(p, 0, FREE_HEAD);
}

/* A block leaving the quarantine: its free pattern must be intact. */
static void *released(void *b)
{
    hak_slab_t *s = hak_slab_of(hak_ss_of(b), b);
    if (*(void **)b != NULL || stored_n(b, s->bsize) != FREE_N || !guard_intact(b, s->bsize))
        hak_fatal("free", "write after free", b);
    quarantine->bytes -= s->bsize;
    return b;
}

/* p, freed (guarded and marked), is held back; returns the block to free
 * now (the oldest, when the quarantine is full), or NULL. */
void *hak_check_hold(void *p, size_t bsize)
{
    void *out = NULL;
    quarantine_t *q = quarantine;
    if (q == NULL && (q = quarantine = hak_os_map(sizeof *q, false)) == NULL)
        return p;                       /* no memory for one: freed at once */
    if (q->n == QUARANTINE_SLOTS || q->bytes + bsize > QUARANTINE_BYTES) {
        out = hak_check_release();
        if (out == NULL)
            return p;                   /* bigger than the whole quarantine */
    }
    q->block[(q->head + q->n) % QUARANTINE_SLOTS] = p;
    q->n++;
    q->bytes += bsize;
    return out;
}

/* The oldest held block, checked, or NULL if none is held. */
void *hak_check_release(void)
{
    quarantine_t *q = quarantine;
    if (q == NULL || q->n == 0)
        return NULL;
    void *b = q->block[q->head];
    q->head = (q->head + 1) % QUARANTINE_SLOTS;
    q->n--;
    return released(b);
}

/* At thread exit, once the quarantine is empty (hak_check_flush). */
void hak_check_thread_exit(void)
{
    quarantine_t *q = quarantine;
    quarantine = NULL;
    if (q) {
        hak_assert(q->n == 0);
        hak_os_unmap(q, sizeof *q);
    }
}

/* Every carved block of s: a live block's guard, a free one's zeros. */
static void verify_slab(hak_slab_t *s, void *call)
{
    size_t b = s->bsize;
    if (!guardable(b))
        return;                         /* a class check mode never hands out */
    char *bump = __atomic_load_n(&s->bump, __ATOMIC_RELAXED);
    for (char *p = s->start; p + b <= bump; p += b)
        if (!neighbour_intact(p, b))
            hak_fatal(call, "heap corruption", p);
}

/* malloc_trim(0) and exit in check mode: the whole heap's guards (racing
 * threads' blocks read as neighbours are). */
void hak_check_heap(const char *call) { hak_pool_walk(verify_slab, (void *)call); }

__attribute__((destructor)) static void check_at_exit(void)
{
    if (hak_check_mode)
        hak_check_heap("exit");
}

void hak_check_huge_freeing(void *p, const char *call)
{
    size_t n = hak_huge_asked(p);
    if (!pattern_intact((char *)p + n, (char *)p + hak_huge_usable(p), PATTERN))
        hak_fatal(call, "buffer overflow", p);
}

void hak_check_sized(void *p, size_t n, size_t align, const char *call)
{
    size_t asked = 0;                       /* a zero-byte block's (the free checks it is live) */
    if (p == NULL)
        return;
    if (hak_region_of((uintptr_t)p) != HAK_REGION_ZERO) {
        hak_slab_t *s = hak_block_slab(p, call, "double free");
        if (s != NULL && hak_check_is_free(p, s))
            return;                         /* the free says double free */
        asked = s ? hak_check_size(p, s) : hak_huge_asked(p);
    }
    if (n != asked)
        hak_fatal(call, "wrong size", p);
    if (align != 0 && ((align & (align - 1)) != 0 || ((uintptr_t)p & (align - 1)) != 0))
        hak_fatal(call, "wrong alignment", p);
}


/* ---- zero-byte blocks --------------------------------------------------------------------- */
/* Each malloc(0) gets an address of its own in a 4 MiB region mapped with no
 * access, so that reading or writing it faults at once; a bitmap per region
 * says which are live (a second free, realloc after free).  Addresses are
 * never reused; past ZERO_REGIONS regions, malloc(0) gets a guarded block. */
hak_lock_t hak_zero_lock;
static struct { char *base; uint64_t *live; } zero_region[ZERO_REGIONS];
static unsigned zero_regions;
static size_t zero_next = ZERO_SLOTS;       /* next slot of the newest region */

static void *zero_alloc(void)
{
    void *p = NULL;
    hak_lock(&hak_zero_lock);
    if (zero_next == ZERO_SLOTS && zero_regions < ZERO_REGIONS) {
        char *base = hak_region_map_new(HAK_SS_SIZE, HAK_SS_SIZE, 0, true, HAK_REGION_ZERO);
        uint64_t *live = base ? hak_os_map(ZERO_SLOTS / 8, false) : NULL;
        if (live && hak_os_protect(base, HAK_SS_SIZE, false)) {
            zero_region[zero_regions].base = base;
            zero_region[zero_regions].live = live;
            zero_regions++;
            zero_next = 0;
        }
        /* (on failure the mappings are kept: rare, and the map entry must
         * keep saying ZERO for a region that might be handed out) */
    }
    if (zero_next < ZERO_SLOTS) {
        unsigned r = zero_regions - 1;
        p = zero_region[r].base + zero_next * ZERO_STRIDE;
        zero_region[r].live[zero_next / 64] |= (uint64_t)1 << (zero_next % 64);
        zero_next++;
    }
    hak_unlock(&hak_zero_lock);
    return p;
}

/* The live bit of zero-byte block p (a ZERO region's address), or NULL if p
 * is no slot handed out so far; the caller holds hak_zero_lock. */
static uint64_t *zero_bit(const void *p, uint64_t *mask)
{
    uintptr_t base = (uintptr_t)p & ~(uintptr_t)HAK_SS_MASK, off = (uintptr_t)p - base;
    size_t slot = off / ZERO_STRIDE;
    for (unsigned r = 0; r < zero_regions; r++)
        if ((uintptr_t)zero_region[r].base == base && off % ZERO_STRIDE == 0 &&
            (r + 1 < zero_regions || slot < zero_next)) {
            *mask = (uint64_t)1 << (slot % 64);
            return &zero_region[r].live[slot / 64];
        }
    return NULL;
}

enum { ZERO_NEVER, ZERO_FREED, ZERO_LIVE };

/* What zero-byte address p is (ZERO_NEVER: no slot handed out), freeing it
 * first if free_it and it is live. */
static int zero_state(const void *p, bool free_it)
{
    uint64_t mask;
    hak_lock(&hak_zero_lock);
    uint64_t *word = zero_bit(p, &mask);
    int state = word == NULL ? ZERO_NEVER : (*word & mask) ? ZERO_LIVE : ZERO_FREED;
    if (state == ZERO_LIVE && free_it)
        *word &= ~mask;
    hak_unlock(&hak_zero_lock);
    return state;
}

/* p is a zero-byte block's address: true, after freeing it if free_it;
 * aborts unless it is live (handed out, not freed). */
static bool zero_live(const void *p, const char *call, bool free_it)
{
    if (hak_region_of((uintptr_t)p) != HAK_REGION_ZERO)
        return false;
    int state = zero_state(p, free_it);
    if (state != ZERO_LIVE)
        hak_fatal(call, state == ZERO_FREED ? (free_it ? "double free" : "use after free")
                                            : "invalid pointer", p);
    return true;
}

bool hak_check_zero_free(void *p, const char *call) { return zero_live(p, call, true); }
bool hak_check_zero_live(const void *p, const char *call) { return zero_live(p, call, false); }

bool hak_check_zero_owns(const void *p) { return zero_state(p, false) == ZERO_LIVE; }

/* ---- checked copies ------------------------------------------------------------------------ */
/* [p, p + n) is about to be written (or read): if p is in HAKMEM's memory,
 * it must lie within the bytes asked for of one live block. */
static void check_span(const void *p, size_t n, const char *call, bool write)
{
    const char *c = p, *over = write ? "buffer overflow" : "buffer overread";
    switch (hak_region_of((uintptr_t)c)) {
    case HAK_REGION_SS: {
        hak_slab_t *s = hak_slab_of(hak_ss_of(c), c);
        size_t b = __atomic_load_n(&s->bsize, __ATOMIC_RELAXED);
        if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) != HAK_SLAB_ACTIVE || c < s->start ||
            c >= s->end || !guardable(b))
            hak_fatal(call, over, p);       /* a header, a free page, a slab's tail */
        char *block = s->start + (size_t)(c - s->start) / b * b;
        size_t m = stored_n(block, b), at = (size_t)(c - block);
        if (m == FREE_N)
            hak_fatal(call, write ? "write after free" : "use after free", p);
        if (m == SIZE_MAX || at >= m || n > m - at)
            hak_fatal(call, over, p);
        return;
    }
    case HAK_REGION_HUGE_HEAD:
    case HAK_REGION_HUGE_PREV:
    case HAK_REGION_HUGE_BODY: {
        char *user;
        size_t asked;
        if (!hak_huge_extent(c, &user, &asked) || n > asked - (size_t)(c - user))
            hak_fatal(call, over, p);
        return;
    }
    case HAK_REGION_ZERO:
        hak_fatal(call, over, p);
    default:
        return;                             /* not HAKMEM's: the stack, globals, files */
    }
}

void hak_check_copy(void *dst, const void *src, size_t n, const char *call)
{
    if (n == 0)
        return;
    check_span(dst, n, call, true);
    if (src)
        check_span(src, n, call, false);
}
