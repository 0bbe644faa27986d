/* Slab ownership and frees from other threads: every transition of a slab
 * between owners, one function each, with the table in types.h.
 *
 * A free by a thread that does not own the block's slab goes into that
 * thread's foreign cache for the class (no atomic operation).  The thread
 * hands those blocks out again itself (heap.c makes the cache current when
 * its own slab runs dry), so memory passed between threads is reused where
 * it is freed, as a thread cache does.  When a class's cache is over its
 * bound, its blocks are shipped home: grouped by owner, one compare-and-swap
 * per group onto the owner's inbox.  The owner takes its whole inbox with
 * one exchange at its next slow path and frees it locally.  A shipment
 * holds runs (blocks of one slab, see Runs), which the owner takes whole.
 *
 * The foreign cache is flushed (shipped) when it is full, on malloc_trim and
 * at thread exit; it is bounded by FOREIGN_BYTES per class, so a thread
 * that stops freeing holds at most that much of other threads' memory.
 *
 * Ownerless slabs (their thread exited, or it was not the thread that
 * forked) are adopted: by a thread that needs a slab of their class (from the
 * abandoned lists) or by the first thread that frees into them.
 */
#define _GNU_SOURCE
#include <string.h>
#include "fastpath.h"

#define REC_ALIGN_MASK ((uintptr_t)63)  /* heap records are 64-byte aligned */
#define FOREIGN_BYTES  (16 * 1024)      /* a class's foreign cache is shipped beyond this */
#define FOREIGN_MAX    256              /* ... or beyond this many blocks     */
#define FOREIGN_SWITCH 8                /* blocks that make the cache current */
#define SHIP_SLOTS     8                /* owners one shipment groups at once */
#define IDLE_MS        20               /* an inbox untaken this long: its owner is idle */
#define INBOX_BACKLOG  (1024 * 1024)    /* an inbox holding this much: its owner is behind */

hak_lock_t hak_own_lock;                /* abandoned lists; owner 0 -> heap */
static hak_slab_t *abandoned[HAK_NCLASS];

static void free_by_owner(hak_tls_t *t, hak_slab_t *s, hak_block_t *b, const char *call);

static inline hak_slab_t *slab_of_block(const void *b)
{
    return hak_slab_of(hak_ss_of(b), b);
}

static inline bool is_heap(uintptr_t o)
{
    return o != 0 && (o & REC_ALIGN_MASK) == 0;
}

/* ---- runs ---------------------------------------------------------------------- */
/* An inbox is a chain of runs: blocks of one slab, linked in a row, whose
 * first block's second word (every class is 16 bytes or more) says where
 * the run ends and how many blocks it holds.  The shipping thread cuts its
 * foreign cache into runs as it ships it (those blocks are in its cache:
 * it has just freed them); the owner then moves each run onto its slab by
 * reading its first block and its last, never the ones between, which were
 * last written on another core and would cost a cache miss each (measured:
 * xmalloc-test's owners spent 15% of all time walking them). */
typedef struct {
    hak_block_t *next;
    uint64_t extent;                    /* (tail - head) << 32 | blocks in the run */
} run_block_t;

static inline void run_mark(hak_block_t *b, const hak_block_t *tail, uint32_t n)
{
    ((run_block_t *)b)->extent = (uint64_t)(uint32_t)(int32_t)((const char *)tail - (const char *)b) << 32 | n;
}

static inline hak_block_t *run_tail(hak_block_t *b)
{
    return (hak_block_t *)((char *)b + (int32_t)(((run_block_t *)b)->extent >> 32));
}

static inline uint32_t run_len(const hak_block_t *b)
{
    return (uint32_t)((const run_block_t *)b)->extent;
}

/* DEBUG builds: head..tail holds n blocks, all of slab s. */
static void run_check(const hak_slab_t *s, hak_block_t *head, const hak_block_t *tail, uint32_t n)
{
#ifdef HAK_DEBUG
    uint32_t k = 1;
    for (hak_block_t *b = head; b != tail; b = b->next, k++)
        hak_assert(slab_of_block(b) == s && k < n);
    hak_assert(k == n && slab_of_block(tail) == s);
#else
    (void)s, (void)head, (void)tail, (void)n;
#endif
}

/* ---- ownerless slabs ------------------------------------------------------------ */
/* Owner 0 -> t, for a slab nobody owns (abandoned or full and ownerless). */
static bool slab_adopt(hak_tls_t *t, hak_slab_t *s)
{
    bool ok;
    hak_lock(&hak_own_lock);
    ok = hak_slab_ownerless(s);
    if (ok) {
        if (s->list == HAK_LIST_ABANDONED)
            hak_list_remove(&abandoned[s->cls], s);
        hak_slab_set_list(s, HAK_LIST_NONE);
        hak_slab_set_parked(s, 0);
        atomic_store(&s->owner, hak_heap_id(t));
    }
    hak_unlock(&hak_own_lock);
    return ok;
}

/* A slab that has just lost its owner: on the abandoned list if it has
 * anything to give, otherwise parked until a free into it adopts it. */
static void file_ownerless(hak_slab_t *s)
{
    if (s->free || s->bump < s->end || atomic_load(&s->remote)) {
        hak_slab_set_parked(s, 0);
        hak_list_push(&abandoned[s->cls], s);
        hak_slab_set_list(s, HAK_LIST_ABANDONED);
    } else {
        hak_slab_set_parked(s, 1);
        hak_slab_set_list(s, HAK_LIST_NONE);
    }
}

/* Owner t -> 0 at thread exit; the caller has drained the slab.  Stores
 * owner before it reads remote, and a pusher onto remote reads owner after
 * its push (remote_push), so a block that arrives meanwhile is seen by one
 * of the two and the slab ends on the abandoned list. */
void hak_slab_abandon(hak_slab_t *s)
{
    hak_lock(&hak_own_lock);
    atomic_store(&s->owner, 0);
    file_ownerless(s);
    hak_slab_check(NULL, s);
    hak_unlock(&hak_own_lock);
}

/* An ownerless slab got a block on its remote list: make sure a thread that
 * needs its class adopts it. */
static void slab_orphan_to_abandoned(hak_slab_t *s)
{
    hak_lock(&hak_own_lock);
    if (hak_slab_ownerless(s) && s->list != HAK_LIST_ABANDONED)
        file_ownerless(s);              /* remote is not empty: abandoned list */
    hak_unlock(&hak_own_lock);
}

static void idle_slab_release(hak_heap_rec_t *r, hak_slab_t *s);

/* The owner's count of s's blocks out, read while the owner may change it:
 * only to decide whether idle_slab_release, which counts for itself, is
 * worth its lock (so the sanitizer is told not to watch this read). */
__attribute__((no_sanitize("thread"))) static int32_t used_hint(const hak_slab_t *s)
{
    return (int32_t)*(const volatile uint32_t *)&s->used;
}

/* Blocks head..tail (n of them) of s onto its remote list: for slabs whose
 * owner is idle, exiting or gone, and for freers without a heap.  Whoever
 * owns the slab next drains it; a parked slab of an idle owner that this
 * push completes goes to the pool (types.h, Idle owners).
 * remote_n is raised before the push, while the blocks are still out (so
 * the slab cannot change hands yet): it never counts fewer blocks than the
 * list holds, and after the push that completes a slab it counts exactly
 * the slab's capacity.  After the push s may already be someone else's:
 * only atomics are read. */
static void remote_push(hak_slab_t *s, hak_block_t *head, hak_block_t *tail, uint32_t n)
{
    atomic_fetch_add_explicit(&s->remote_n, (int32_t)n, memory_order_relaxed);
    hak_block_t *old = atomic_load_explicit(&s->remote, memory_order_relaxed);
    do
        tail->next = old;
    while (!atomic_compare_exchange_weak_explicit(&s->remote, &old, head, memory_order_seq_cst,
                                                  memory_order_relaxed));
    uintptr_t o = atomic_load(&s->owner);
    if (o == 0)
        slab_orphan_to_abandoned(s);
    else if (is_heap(o) && atomic_load_explicit(&s->remote_n, memory_order_relaxed) == used_hint(s))
        idle_slab_release((hak_heap_rec_t *)o, s);
}

/* Owner r -> the pool, for a parked or partial slab of r whose every block
 * out is on its remote list.  Under r's heap lock, s is r's and on one of
 * those lists or it is not touched (r changes them, and drains their
 * slabs, only under that lock).  Then the blocks neither carved nor free
 * are counted (the free list may grow at its head meanwhile, by a free of
 * r's, never shrink: r's malloc takes blocks only from its current slabs),
 * and the remote list (only pushes change it now, at its head).  If all of
 * those are on remote, none is out, so r cannot be writing s (its free
 * would need a block of s) and nobody can push to it any more.  At least
 * one must be on remote: with none out at all, r's own free is releasing s.
 * The slab keeps adding up until the pool takes it, so a fork in between
 * leaves the child an abandoned slab to drain. */
static void idle_slab_release(hak_heap_rec_t *r, hak_slab_t *s)
{
    hak_lock(&r->lock);
    uint8_t list = __atomic_load_n(&s->list, __ATOMIC_RELAXED);  /* hak_slab_set_list */
    if (atomic_load(&s->owner) != (uintptr_t)r ||
        (list != HAK_LIST_FULL && list != HAK_LIST_PARTIAL)) {
        hak_unlock(&r->lock);
        return;
    }
    hak_assert(hak_slab_parked(s) == (list == HAK_LIST_FULL));
    size_t out = (size_t)(s->bump - s->start) / s->bsize - (s->bump > s->start ? hak_slab_guards(s) : 0);
    for (hak_block_t *b = __atomic_load_n(&s->free, __ATOMIC_ACQUIRE); b; b = b->next)
        out--;
    size_t n = 0;
    for (hak_block_t *b = atomic_load_explicit(&s->remote, memory_order_acquire); b; b = b->next)
        n++;
    if (n != out || n == 0) {            /* not yet: a block is still out or on its way */
        hak_unlock(&r->lock);
        return;
    }
    if (list == HAK_LIST_FULL)          /* it cannot have changed: it changes under the lock */
        hak_full_remove(r, s);
    else
        hak_partial_remove(r, s);
    atomic_store(&s->owner, HAK_OWNER_DYING);
    hak_unlock(&r->lock);
    hak_stat_add(HAK_STAT_IDLE_SLABS_RELEASED, 1);
    hak_pool_slab_free(s);
}

/* ---- free blocks' pages (the background thread) ------------------------------- */
/* A program that frees most of its medium blocks and keeps a few, scattered,
 * keeps every slab a survivor pins resident in full: after bench/phases'
 * burst (1 GiB, 90% freed at random) 540 MB of free Mid blocks sat in
 * partial slabs, beyond the reach of the pool's purges.  So the pages
 * inside a free block of a partial slab go back to the OS once the slab's
 * free list has not changed for a retention period (the pool's rule for
 * free pages); the block's first page stays, for its link.  Blocks of at
 * least two OS pages have such pages: Mid classes of 8 KiB and up.  Only
 * while no slab has been taken or freed for a retention period: one
 * madvise per block, each interrupting the program's threads to flush
 * their TLBs, costs little in a pause and much in a storm of frees.
 *
 * Safe without the owner's help, under its heap lock, as idle_slab_release
 * is: while it is held a partial slab stays its owner's and partial, and
 * every block on its free list stays there (the owner's free and drains
 * push at the head; its malloc pops only current slabs).  So a list seen
 * twice is the one seen first with blocks pushed in front, and the blocks
 * from released on are those whose pages went already (reset when the
 * slab leaves the partial list: hak_partial_remove).  Each look remembers
 * the head (seen_free); the next, a retention period later, finds it
 * unchanged and releases the blocks in front of released, or remembers the
 * new head.  The walk trusts no link: it stops at one outside the slab's
 * carved blocks or after as many blocks as the slab holds. */
#define RELEASE_MIN_BSIZE (2 * HAK_OS_PAGE)
/* Retentions between looks at lists seen unchanged: 8, doubled after each
 * such look that released nothing, up to 64 (each look reads every slab
 * descriptor: a few ms per GiB of heap). */
#define REVISIT_SHIFT_MIN 3
#define REVISIT_SHIFT_MAX 6
static unsigned revisit_shift = REVISIT_SHIFT_MIN;   /* the background thread's own */
static _Atomic size_t pages_watch_released, pages_watch_reused;   /* the regret watch */

static size_t free_blocks_release(hak_slab_t *s, hak_block_t *head, const hak_block_t *stop)
{
    size_t released = 0, capacity = (size_t)(s->end - s->start) / s->bsize;
    for (hak_block_t *b = head; b != stop && b && capacity; b = b->next, capacity--) {
        if (!hak_slab_block_valid(s, b))    /* a link written after its free */
            break;
        /* past the link and the run marks of the block's first 64 bytes */
        uintptr_t from = ((uintptr_t)b + 64 + HAK_OS_PAGE - 1) & ~(uintptr_t)(HAK_OS_PAGE - 1);
        uintptr_t to = ((uintptr_t)b + s->bsize) & ~(uintptr_t)(HAK_OS_PAGE - 1);
        if (to > from) {
            hak_os_purge((void *)from, to - from);
            released += to - from;
        }
    }
    return released;
}

/* One look at slab s (racily read, so checked again under the lock):
 * LOOK_NONE, or it has blocks to release at the next look (LOOK_DUE), or
 * free blocks the owner may add to unseen (LOOK_LATER: its frees do not
 * wake the thread).  now (malloc_trim): release whatever the list holds
 * beyond released, changed or not. */
enum { LOOK_NONE, LOOK_LATER, LOOK_DUE };
static int slab_pages_look(hak_slab_t *s, size_t *released, bool now)
{
    uintptr_t o = atomic_load(&s->owner);
    if (!is_heap(o))
        return LOOK_NONE;
    hak_heap_rec_t *r = (hak_heap_rec_t *)o;
    hak_lock(&r->lock);
    if (atomic_load(&s->owner) != o || __atomic_load_n(&s->list, __ATOMIC_RELAXED) != HAK_LIST_PARTIAL ||
        s->bsize < RELEASE_MIN_BSIZE || s->bsize > HAK_MID_MAX) {
        hak_unlock(&r->lock);
        return LOOK_NONE;
    }
    hak_block_t *head = __atomic_load_n(&s->free, __ATOMIC_ACQUIRE);
    bool pending = head != s->released;
    if (head != s->seen_free && !now) {
        s->seen_free = head;
    } else if (pending) {
        s->seen_free = head;
        size_t n = free_blocks_release(s, head, s->released);
        *released += n;
        s->released = head;
        s->released_bytes += (uint32_t)n;
        s->released_ms = (uint32_t)hak_now_ms();
        pending = false;
    }
    hak_unlock(&r->lock);
    return pending ? LOOK_DUE : LOOK_LATER;
}

/* Looks at every partial slab of blocks of RELEASE_MIN_BSIZE and up: the
 * most pressing LOOK_*; the bytes released are counted and added to
 * *total. */
static int slab_pages_look_all(bool now, size_t *total)
{
    int most = LOOK_NONE;
    size_t released = 0;
    for (hak_superslab_t *ss = hak_superslab_first(); ss; ss = ss->all_next)
        for (unsigned i = 1; i < HAK_SS_PAGES; i++) {
            hak_slab_t *s = &ss->slabs[i];
            if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == HAK_SLAB_ACTIVE &&
                __atomic_load_n(&s->list, __ATOMIC_RELAXED) == HAK_LIST_PARTIAL &&
                __atomic_load_n(&s->bsize, __ATOMIC_RELAXED) >= RELEASE_MIN_BSIZE) {
                int look = slab_pages_look(s, &released, now);
                if (look > most)
                    most = look;
            }
        }
    if (!now) {
        hak_stat_add(HAK_STAT_BG_RELEASED, released);
        atomic_fetch_add_explicit(&pages_watch_released, released, memory_order_relaxed);
    }
    hak_stat_add(HAK_STAT_BLOCK_PAGES_RELEASED, released);
    *total += released;
    return most;
}

/* The background thread's turn: ms until the next look: a retention when
 * a list changed since the last, 8 to 64 retentions while partial slabs of
 * such blocks exist (frees into them may go on without a word to the
 * thread), HAK_NEVER when none does. */
uint64_t hak_slab_pages_release(void)
{
    if (hak_check_mode)
        return HAK_NEVER;       /* freed blocks hold check mode's patterns */
    uint64_t retain = hak_retain_ms(), calm = hak_now_ms() - hak_pool_last_call_ms();
    if (calm < retain)
        return retain - calm;
    size_t released = 0;
    int most = slab_pages_look_all(false, &released);
    if (most == LOOK_DUE || released)
        revisit_shift = REVISIT_SHIFT_MIN;
    else if (revisit_shift < REVISIT_SHIFT_MAX)
        revisit_shift++;
    return most == LOOK_DUE ? retain : most == LOOK_LATER ? retain << revisit_shift : HAK_NEVER;
}

/* malloc_trim: every free block's pages at once, in every thread's partial
 * slabs (the same locks as the background thread's looks). */
int hak_slab_pages_trim(void)
{
    if (hak_check_mode)
        return 0;
    size_t released = 0;
    slab_pages_look_all(true, &released);
    return released != 0;
}

/* Regret, as the pool's purges are watched (superslab.c): once slabs whose
 * free blocks' pages were released have been taken up again for at least
 * half of the bytes released since the watch began, the retention grows to
 * twice the age of the release at that reuse, and the watch begins again.
 * A program whose heap swings (frees at the end of its work, a pause, the
 * same blocks again) then stops faulting them back in after a few swings. */
void hak_slab_pages_reused(const hak_slab_t *s)
{
    size_t reused = atomic_fetch_add_explicit(&pages_watch_reused, s->released_bytes,
                                              memory_order_relaxed) + s->released_bytes;
    if (2 * reused < atomic_load_explicit(&pages_watch_released, memory_order_relaxed))
        return;
    hak_retain_regret((uint32_t)hak_now_ms() - s->released_ms);
    atomic_store_explicit(&pages_watch_released, 0, memory_order_relaxed);
    atomic_store_explicit(&pages_watch_reused, 0, memory_order_relaxed);
}

/* A slab of class cls from the abandoned list, now t's, or NULL. */
hak_slab_t *hak_abandoned_take(hak_tls_t *t, unsigned cls)
{
    if (__atomic_load_n(&abandoned[cls], __ATOMIC_RELAXED) == NULL)
        return NULL;
    hak_lock(&hak_own_lock);
    hak_slab_t *s = abandoned[cls];
    if (s) {
        hak_list_remove(&abandoned[cls], s);
        hak_slab_set_list(s, HAK_LIST_NONE);
        hak_slab_set_parked(s, 0);
        atomic_store(&s->owner, hak_heap_id(t));
    }
    hak_unlock(&hak_own_lock);
    return s;
}

/* Abandoned slabs whose blocks have all come back go to the pool: draining
 * needs an owner, so t takes each list, releases the empty slabs and
 * abandons the rest again. */
int hak_abandoned_trim(hak_tls_t *t)
{
    int released = 0;
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        hak_lock(&hak_own_lock);
        hak_slab_t *list = abandoned[c];
        __atomic_store_n(&abandoned[c], NULL, __ATOMIC_RELAXED);
        for (hak_slab_t *s = list; s; s = s->next) {
            hak_slab_set_list(s, HAK_LIST_NONE);
            atomic_store(&s->owner, hak_heap_id(t));
        }
        hak_unlock(&hak_own_lock);
        while (list) {
            hak_slab_t *s = list;
            list = s->next;
            s->prev = s->next = NULL;
            hak_slab_drain(s);
            if (s->used == 0) {
                hak_slab_release(t, s);
                released = 1;
            } else {
                hak_slab_abandon(s);
            }
        }
    }
    return released;
}

/* Owner t -> the pool, for a slab with no block out.  HAK_OWNER_DYING first, so
 * that a racing second free of one of its blocks is reported. */
void hak_slab_release(hak_tls_t *t, hak_slab_t *s)
{
    hak_assert(s->used == 0 && s->list == HAK_LIST_NONE);
    hak_slab_check(t, s);
    atomic_store(&s->owner, HAK_OWNER_DYING);
    hak_pool_slab_free(s);
}

/* ---- inboxes ------------------------------------------------------------------- */
/* The owner of r has left blocks in its inbox for IDLE_MS: it does not
 * allocate (a thread that made memory for others and now waits, as
 * Larson's main thread does). */
static bool owner_idle(hak_heap_rec_t *r)
{
    return hak_now_ms() - atomic_load_explicit(&r->inbox_taken_ms, memory_order_relaxed) > IDLE_MS;
}

/* Pushes the chain of runs head..tail onto heap o's inbox: one
 * compare-and-swap.  A closed inbox (its thread is exiting) sends each run
 * home on its own.  A pusher that finds the owner idle marks it so: other
 * threads then send its blocks home at once instead of handing them out
 * (see free_foreign). */
static void inbox_push(uintptr_t o, hak_block_t *head, hak_block_t *tail, int64_t bytes)
{
    hak_heap_rec_t *r = (hak_heap_rec_t *)o;
    hak_block_t *old = atomic_load_explicit(&r->inbox, memory_order_relaxed);
    do {
        if (old == HAK_INBOX_CLOSED) {
            tail->next = NULL;
            while (head) {
                hak_block_t *b = head, *last = run_tail(b);
                uint32_t n = run_len(b);
                head = last->next;
                last->next = NULL;
                hak_slab_t *s = slab_of_block(b);
                uintptr_t now = atomic_load(&s->owner);
                if (is_heap(now) && now != o)
                    inbox_push(now, b, last, (int64_t)n * s->bsize);   /* adopted meanwhile */
                else
                    remote_push(s, b, last, n); /* o drains it at exit, or it is ownerless */
            }
            return;
        }
        if (old != NULL && !atomic_load_explicit(&r->idle, memory_order_relaxed) && owner_idle(r))
            atomic_store_explicit(&r->idle, 1, memory_order_relaxed);
        tail->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&r->inbox, &old, head, memory_order_release,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&r->inbox_bytes, bytes, memory_order_relaxed);
    hak_stat_count(HAK_STAT_REMOTE_BATCHES);
}

/* A batch being sorted: the runs of one owner, and the run being gathered
 * (consecutive runs of one slab are joined), so that the owner is read and
 * the slab updated once per run. */
typedef struct {
    uintptr_t owner;
    hak_block_t *head, *tail;
    int64_t bytes;
} ship_slot_t;

typedef struct {
    hak_slab_t *slab;
    hak_block_t *head, *tail;
    uint32_t n;
} slab_run_t;

/* n blocks head..tail of slab s, which t owns, back on its free list. */
static void free_run_local(hak_slab_t *s, hak_block_t *head, hak_block_t *tail, uint32_t n)
{
    if (hak_slab_parked(s)) {
        hak_free_parked(s, head, tail, n);
        return;
    }
    hak_assert(s->used >= n);
    tail->next = s->free;
    if ((s->used -= n) == 0) {
        hak_free_local_slow(s, head);
        return;
    }
    __atomic_store_n(&s->free, head, __ATOMIC_RELEASE);  /* the last write, as in the fast path */
}

/* Blocks of heap o's slab s onto its remote list instead of o's inbox (o
 * idle or behind).  A parked slab's remote list is looked at only by the
 * push that completes it, so o is told which classes to look at (its
 * refill: hak_spilled_take); cls and parked are read before the push,
 * after which s may be someone else's. */
static void spill_push(hak_heap_rec_t *o, hak_slab_t *s, hak_block_t *head, hak_block_t *tail,
                       uint32_t n)
{
    uint64_t bit = (uint64_t)1 << s->cls;
    bool parked = hak_slab_parked(s);
    remote_push(s, head, tail, n);
    if (parked && !(atomic_load_explicit(&o->spilled, memory_order_relaxed) & bit))
        atomic_fetch_or(&o->spilled, bit);
}

uint64_t hak_spilled_take(hak_heap_rec_t *r)
{
    if (atomic_load_explicit(&r->spilled, memory_order_relaxed) == 0)
        return 0;
    return atomic_exchange(&r->spilled, 0);
}

static void run_flush(hak_tls_t *t, slab_run_t *run, ship_slot_t *slot)
{
    hak_slab_t *s = run->slab;
    if (s == NULL)
        return;
    run->slab = NULL;
    uintptr_t o = atomic_load_explicit(&s->owner, memory_order_acquire);
    if (o == hak_heap_id(t)) {
        free_run_local(s, run->head, run->tail, run->n);
        return;
    }
    if (!is_heap(o)) {                   /* ownerless or dying: one by one */
        run->tail->next = NULL;
        for (hak_block_t *b = run->head, *next; b; b = next) {
            next = b->next;
            free_by_owner(t, s, b, "free");
        }
        return;
    }
    hak_heap_rec_t *or = (hak_heap_rec_t *)o;
    if (atomic_load_explicit(&or->idle, memory_order_relaxed) ||
        atomic_load_explicit(&or->inbox_bytes, memory_order_relaxed) > INBOX_BACKLOG) {
        /* An owner that does not take its inbox (idle, or not running):
         * onto the slab, where the last block home completes it for the
         * pool, instead of into a backlog no other thread can use. */
        spill_push(or, s, run->head, run->tail, run->n);
        return;
    }
    run_mark(run->head, run->tail, run->n);  /* for the owner (runs joined: anew) */
    ship_slot_t *k = &slot[(o >> 6) % SHIP_SLOTS];
    if (k->owner != o) {
        if (k->head)
            inbox_push(k->owner, k->head, k->tail, k->bytes);
        k->owner = o;
        k->head = NULL;
        k->bytes = 0;
    }
    k->bytes += (int64_t)run->n * s->bsize;
    run->tail->next = k->head;
    if (k->head == NULL)
        k->tail = run->tail;
    k->head = run->head;
}

static void runs_finish(hak_tls_t *t, slab_run_t *run, ship_slot_t *slot)
{
    run_flush(t, run, slot);
    for (unsigned k = 0; k < SHIP_SLOTS; k++)
        if (slot[k].head)
            inbox_push(slot[k].owner, slot[k].head, slot[k].tail, slot[k].bytes);
}

/* Frees every run of list, taken off heap from's inbox, as the calling
 * thread: its own slabs' runs locally, the others grouped by owner and
 * pushed to each owner's inbox. */
static void free_runs(hak_tls_t *t, hak_heap_rec_t *from, hak_block_t *list)
{
    ship_slot_t slot[SHIP_SLOTS] = { { 0 } };
    slab_run_t run = { 0 };
    int64_t bytes = 0;
    while (list) {
        hak_block_t *b = list, *tail = run_tail(b);
        uint32_t n = run_len(b);
        list = tail->next;
        hak_slab_t *s = slab_of_block(b);
        run_check(s, b, tail, n);
        bytes += (int64_t)n * s->bsize;
        if (s != run.slab) {            /* (else the run continues: run.tail->next == b) */
            run_flush(t, &run, slot);
            run.slab = s;
            run.head = b;
            run.n = 0;
        }
        run.tail = tail;
        run.n += n;
    }
    atomic_fetch_sub_explicit(&from->inbox_bytes, bytes, memory_order_relaxed);
    runs_finish(t, &run, slot);
}

/* The same for a list of blocks (a foreign cache's), cut into runs here:
 * the calling thread freed these blocks, so they are in its cache, and
 * the owner need not walk them again. */
static void free_blocks(hak_tls_t *t, hak_block_t *list)
{
    ship_slot_t slot[SHIP_SLOTS] = { { 0 } };
    slab_run_t run = { 0 };
    while (list) {
        hak_block_t *b = list;
        list = b->next;
        hak_slab_t *s = slab_of_block(b);
        if (s != run.slab) {
            run_flush(t, &run, slot);
            run.slab = s;
            run.tail = b;
            run.n = 0;
        } else {
            b->next = run.head;
        }
        run.head = b;
        run.n++;
    }
    runs_finish(t, &run, slot);
}

/* The owner's side: every block other threads sent home since last time. */
void hak_inbox_take(hak_tls_t *t)
{
    hak_heap_rec_t *r = t->rec;
    if (atomic_load_explicit(&r->inbox, memory_order_relaxed) == NULL)
        return;
    atomic_store_explicit(&r->inbox_taken_ms, hak_now_ms(), memory_order_relaxed);
    free_runs(t, r, atomic_exchange_explicit(&r->inbox, NULL, memory_order_acquire));
}

/* At thread exit: takes the inbox for the last time and closes it, so that
 * no push lands there any more. */
void hak_inbox_close(hak_tls_t *t)
{
    hak_block_t *list = atomic_exchange_explicit(&t->rec->inbox, HAK_INBOX_CLOSED,
                                                 memory_order_acquire);
    free_runs(t, t->rec, list == HAK_INBOX_CLOSED ? NULL : list);
}

/* The blocks in idle heap r's inbox, sent on as t would send them: onto
 * their slabs' remote lists (run_flush), where they can complete a slab. */
static void inbox_reroute(hak_tls_t *t, hak_heap_rec_t *r)
{
    hak_block_t *list = atomic_load_explicit(&r->inbox, memory_order_relaxed);
    do {
        if (list == NULL || list == HAK_INBOX_CLOSED)
            return;
    } while (!atomic_compare_exchange_weak_explicit(&r->inbox, &list, NULL, memory_order_acquire,
                                                    memory_order_relaxed));
    free_runs(t, r, list);
}

void hak_inbox_open(hak_heap_rec_t *r)
{
    atomic_store_explicit(&r->idle, 0, memory_order_relaxed);
    atomic_store_explicit(&r->inbox_taken_ms, hak_now_ms(), memory_order_relaxed);
    atomic_store_explicit(&r->inbox, NULL, memory_order_release);
}

/* ---- foreign caches ---------------------------------------------------------------- */
void hak_foreign_init(hak_heap_rec_t *r)
{
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        hak_slab_t *f = &r->foreign[c];
        memset(f, 0, sizeof *f);
        f->list = HAK_LIST_FOREIGN;
        f->cls = (uint8_t)c;
        f->bsize = hak_classes[c].size;
        uint32_t cap = FOREIGN_BYTES / f->bsize;
        r->foreign_cap[c] = (uint16_t)(cap < FOREIGN_MAX ? cap : FOREIGN_MAX);
        r->foreign_in[c] = 0;
    }
}

/* Ships every block of t's foreign cache of class cls home. */
static void foreign_ship(hak_tls_t *t, unsigned cls)
{
    hak_heap_rec_t *r = t->rec;
    hak_slab_t *f = &r->foreign[cls];
    hak_block_t *list = f->free;
    f->free = NULL;
    hak_foreign_reset(r, cls);
    free_blocks(t, list);
}

/* Until every class is empty: shipping may adopt a slab, whose frees then
 * come back as the adopter's own. */
void hak_foreign_ship_all(hak_tls_t *t)
{
    for (bool any = true; any;) {
        any = false;
        for (unsigned c = 0; c < HAK_NCLASS; c++)
            if (t->rec->foreign[c].free) {
                foreign_ship(t, c);
                any = true;
            }
    }
}

void hak_remote_trim(hak_tls_t *t)
{
    hak_inbox_take(t);
    hak_foreign_ship_all(t);
}

/* Block b of slab s, owned by the live heap o, freed by t. */
static void free_foreign(hak_tls_t *t, hak_slab_t *s, hak_block_t *b, uintptr_t o,
                         const char *call)
{
    hak_stat_count(HAK_STAT_REMOTE_FREES);
    hak_heap_rec_t *r = t->rec;
    if (HAK_UNLIKELY(r == NULL)) {
        if (!hak_heap_init(t)) {
            run_mark(b, b, 1);
            inbox_push(o, b, b, s->bsize);  /* no heap (out of memory): straight home */
            return;
        }
        r = t->rec;
    }
    hak_heap_rec_t *or = (hak_heap_rec_t *)o;
    if (atomic_load_explicit(&or->idle, memory_order_relaxed)) {
        /* Handing an idle thread's blocks out here would make every later
         * free of them a remote one: measured 30% slower on Larson.  They
         * go onto their slabs, so that a slab whose blocks have all come
         * back goes to the pool; and so do those left in its inbox. */
        inbox_reroute(t, or);
        spill_push(or, s, b, b, 1);
        return;
    }
    unsigned c = s->cls;
    hak_slab_t *f = &r->foreign[c];
    if (HAK_UNLIKELY(f->free == b))     /* the block this thread freed last, as */
        hak_fatal(call, "double free", b);  /* the owner's free checks its own */
    b->next = f->free;
    f->free = b;
    uint32_t held = ++r->foreign_in[c] - f->used;
    if (HAK_UNLIKELY(held > r->foreign_cap[c]))
        foreign_ship(t, c);
    else if (held == FOREIGN_SWITCH)
        hak_heap_use_foreign(t, c);     /* hand these out before the thread's own */
}

/* ---- thread caches of Tiny and Mid blocks ------------------------------------------ */
#define TC_BYTES (128 * 1024)   /* a class's cache holds up to this many bytes, */
#define TC_MAX   256            /* and at most these many blocks; */
#define TC_MIN   16             /* its max starts here (or at its cap, if lower) */
#define TC_STREAK 3             /* fills in a row without running dry: max halves */

void hak_tc_open(hak_tls_t *t)
{
    if (hak_slow_mode)
        return;                     /* every free goes through the slow path */
    for (unsigned c = 0; c < HAK_TC_NCLASS; c++) {
        uint32_t size = hak_classes[c].size, cap = TC_BYTES / size;
        t->tc_cap[c] = cap > TC_MAX ? TC_MAX : cap;
        /* grown as the thread's mallocs find it dry */
        t->tc_max[c] = t->tc_cap[c] < TC_MIN ? t->tc_cap[c] : TC_MIN;
        t->tc_room[c] = (int32_t)t->tc_max[c];
        t->tc_streak[c] = 0;
        t->tc_mul[c] = hak_boundary_mul(size);
    }
}

/* Each block of list freed by its slab's owner. */
static void tc_free_list(hak_tls_t *t, hak_block_t *list, const char *call)
{
    while (list) {
        hak_block_t *b = list;
        list = b->next;
        free_by_owner(t, slab_of_block(b), b, call);
    }
}

/* A free of b found the cache of class c full (its room already counted
 * down below 0): the older half goes to the slabs, then b in.  A cache
 * that keeps filling without running dry is in a storm of frees (a program
 * freeing what it built): its max halves down to 0, so that when the storm
 * ends no cached block keeps a slab from the pool, and the cache is off
 * (tc_mul 0) until the next malloc that finds it dry restores it
 * (hak_tc_dry). */
void hak_tc_full(hak_block_t *b, unsigned c, const char *call)
{
    hak_tls_t *t = &hak_tls;
    /* it holds tc_max blocks (none once a storm has halved it to 0) */
    hak_assert((t->tc_max[c] == 0) == (t->tc_head[c] == NULL));
    if (++t->tc_streak[c] >= TC_STREAK)
        t->tc_max[c] /= 2;
    uint32_t keep = t->tc_max[c] / 2;
    hak_block_t *rest = t->tc_head[c];
    if (keep > 0) {                 /* keep < the blocks held: the new max / 2 */
        hak_block_t *last = rest;
        for (uint32_t i = 1; i < keep; i++)
            last = last->next;
        rest = last->next;
        last->next = NULL;
    } else
        t->tc_head[c] = NULL;
    t->tc_next[c] = NULL;
    t->tc_room[c] = (int32_t)(t->tc_max[c] - keep);
    tc_free_list(t, rest, call);
    if (t->tc_max[c] == 0) {
        /* off until a malloc finds it dry: the storm's other frees take
         * the slab's fast path (or the foreign cache) instead of this one */
        t->tc_mul[c] = 0;
        free_by_owner(t, slab_of_block(b), b, call);
        return;
    }
    b->next = t->tc_head[c];
    t->tc_next[c] = t->tc_head[c];
    t->tc_head[c] = b;
    t->tc_room[c]--;
}

/* A malloc found the cache of class c dry after it filled, or below its
 * cap: a thread that takes back what it frees earns a bigger cache,
 * doubled up to the cap (a thread that only frees keeps a small one). */
void hak_tc_grow(unsigned c)
{
    hak_tls_t *t = &hak_tls;
    uint32_t max = t->tc_max[c] < TC_MIN ? TC_MIN : 2 * t->tc_max[c];
    t->tc_streak[c] = 0;
    t->tc_max[c] = max < t->tc_cap[c] ? max : t->tc_cap[c];
    t->tc_room[c] = (int32_t)t->tc_max[c];      /* empty */
    t->tc_mul[c] = hak_boundary_mul(hak_classes[c].size);  /* on again after a storm */
}

void *hak_tc_dry(unsigned c, size_t n)
{
    hak_tc_grow(c);
    return hak_malloc_class(c, n);
}

/* Every block of t's caches to its slab (malloc_trim, thread exit). */
void hak_tc_flush(hak_tls_t *t)
{
    for (unsigned c = 0; c < HAK_TC_NCLASS; c++) {
        hak_block_t *list = t->tc_head[c];
        t->tc_head[c] = t->tc_next[c] = NULL;
        t->tc_room[c] = (int32_t)t->tc_max[c];
        tc_free_list(t, list, "free");
    }
}

/* At thread exit: emptied and closed, so that a later free (another
 * thread-exit destructor's) goes to the slabs. */
void hak_tc_close(hak_tls_t *t)
{
    hak_tc_flush(t);
    for (unsigned c = 0; c < HAK_TC_NCLASS; c++) {
        t->tc_mul[c] = 0;
        t->tc_max[c] = t->tc_cap[c] = t->tc_streak[c] = 0;
        t->tc_room[c] = 0;
    }
}

/* ---- frees ------------------------------------------------------------------------- */
/* Frees block b of slab s as thread t, by whoever owns s now. */
static void free_by_owner(hak_tls_t *t, hak_slab_t *s, hak_block_t *b, const char *call)
{
    for (;;) {
        uintptr_t o = atomic_load_explicit(&s->owner, memory_order_acquire);
        if (o == hak_heap_id(t)) {
            hak_slab_free_local(s, b, call);
            return;
        }
        if (is_heap(o)) {
            free_foreign(t, s, b, o, call);
            return;
        }
        if (o != 0)                      /* dying: every block of it is free already */
            hak_fatal(call, "double free", b);
        if (t->rec == NULL && !hak_heap_init(t)) {
            remote_push(s, b, b, 1);     /* no heap (out of memory): left for an adopter */
            return;
        }
        if (slab_adopt(t, s)) {
            hak_heap_file(t, s);         /* b is out, so s is not released here */
            hak_slab_free_local(s, b, call);
            return;
        }
        if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) != HAK_SLAB_ACTIVE)
            hak_fatal(call, "double free", b);
        /* adopted by someone else meanwhile: look again */
    }
}

void hak_free_slow(void *p, const char *call)
{
    if (p == NULL || (hak_check_mode && hak_check_zero_free(p, call)))
        return;
    hak_slab_t *s = hak_block_slab(p, call, "double free");
    if (HAK_UNLIKELY(hak_profile_on))
        hak_profile_free(p, s);             /* before anyone can have p again */
    if (s == NULL) {
        if (hak_check_mode)
            hak_check_huge_freeing(p, call);
        hak_huge_free(p, call);
        return;
    }
    if (hak_check_mode) {
        if (hak_check_is_free(p, s))
            hak_fatal(call, "double free", p);
        hak_check_freeing(p, s, call);
        if ((p = hak_check_hold(p, s->bsize)) == NULL)
            return;
        s = slab_of_block(p);
    }
    free_by_owner(&hak_tls, s, (hak_block_t *)p, call);
}

/* Check mode: the quarantine emptied (thread exit, malloc_trim). */
void hak_check_flush(void)
{
    for (void *b; (b = hak_check_release()) != NULL;)
        free_by_owner(&hak_tls, slab_of_block(b), (hak_block_t *)b, "free");
}

/* The fast path found p's slab s but not as its owner (or p is not a block
 * boundary): the common case is a block of another thread's slab.  With
 * profiling alone (no fast path), this thread's own blocks come here too. */
void hak_free_slab_slow(hak_slab_t *s, void *p, const char *call)
{
    hak_tls_t *t = &hak_tls;
    uintptr_t o = atomic_load_explicit(&s->owner, memory_order_acquire);
    if (hak_slow_mode && !hak_check_mode && is_heap(o) && o == (uintptr_t)t->rec &&
        hak_slab_boundary(s, p)) {
        hak_profile_free(p, s);             /* profiling alone: the fast path's free, then */
        hak_slab_free_local(s, p, call);
        return;
    }
    if (HAK_LIKELY(is_heap(o) && o != (uintptr_t)t->rec) && !hak_check_mode &&
        hak_slab_block_valid(s, p)) {
        if (HAK_UNLIKELY(hak_profile_on))
            hak_profile_free(p, s);
        free_foreign(t, s, (hak_block_t *)p, o, call);
    } else
        hak_free_slow(p, call);
}

/* ---- fork ------------------------------------------------------------------------------ */
static void fork_fixup(hak_slab_t *s, void *arg)
{
    if (atomic_load(&s->owner) == (uintptr_t)arg)
        return;
    /* Owned by a thread that does not exist in the child, or by nobody.
     * That thread may have stopped inside a malloc, a free or a carve of s,
     * between its free list and its count (or its bump pointer): both are
     * set again from the list, which it changes last.  Every block not on
     * the list is out (in its hands, caches or an inbox: the child cannot
     * know), so nothing is handed out twice. */
    atomic_store(&s->owner, 0);
    size_t nfree = 0;
    char *bump = s->bump;
    for (hak_block_t *b = s->free; b; b = b->next, nfree++)
        if ((char *)b + s->bsize > bump)
            bump = (char *)b + s->bsize;    /* a carve stopped before its bump */
    s->bump = bump;
    hak_block_page_set(s, true);
    size_t carved = (size_t)(bump - s->start) / s->bsize;
    size_t taken = (bump > s->start ? hak_slab_guards(s) : 0) + nfree;
    s->used = carved > taken ? (uint32_t)(carved - taken) : 0;
    file_ownerless(s);
}

/* In the child of fork, alone.  Slabs of the parent's other threads become
 * ownerless and the abandoned lists are rebuilt from the SuperSlabs.  Blocks
 * that other threads held in their foreign caches or had sent to other
 * threads' inboxes stay counted as out: like the blocks those threads held,
 * the child cannot know of them. */
void hak_own_fork_child(hak_tls_t *t)
{
    hak_lock_reset(&hak_own_lock);
    memset(abandoned, 0, sizeof abandoned);
    hak_pool_visit(fork_fixup, (void *)hak_heap_id(t));
}

/* ---- the checker (make DEBUG=1) ------------------------------------------------------- */
#ifdef HAK_DEBUG
/* The table and the counting equation of types.h, for slab s as seen by t
 * (NULL: by the thread that just made s ownerless, under hak_own_lock). */
void hak_slab_check(const hak_tls_t *t, const hak_slab_t *s)
{
    if (s->list == HAK_LIST_FOREIGN)
        return;
    uintptr_t o = atomic_load(&s->owner);
    hak_assert(s->state == HAK_SLAB_ACTIVE);
    hak_assert(s->start <= s->bump && s->bump <= s->end);
    size_t capacity = (size_t)(s->end - s->start) / s->bsize, nfree = 0;
    for (const hak_block_t *b = s->free; b; b = b->next) {
        hak_assert(hak_slab_block_valid(s, b));
        hak_assert(++nfree <= capacity);
    }
    uint32_t pin = hak_slab_pin(s->list, s->bsize);
    hak_assert(s->used >= pin);
    /* the background thread's marks are of a partial list that only grows */
    hak_assert(s->list == HAK_LIST_PARTIAL || (s->seen_free == NULL && s->released == NULL));
    hak_assert((size_t)(s->bump - s->start) / s->bsize ==
               (s->bump > s->start ? hak_slab_guards(s) : 0) + nfree + s->used - pin);
    switch (s->list) {
    case HAK_LIST_CUR:
        hak_assert(t && o == hak_heap_id(t) && !s->parked);
        break;
    case HAK_LIST_PARTIAL:
        hak_assert(t && o == hak_heap_id(t) && !s->parked && (s->free || s->bump < s->end));
        hak_assert(s->bsize <= HAK_MID_MAX || s->used == 0);    /* kept: types.h */
        break;
    case HAK_LIST_FULL:
        hak_assert(t && o == hak_heap_id(t) && s->parked && !s->free && s->bump == s->end);
        break;
    case HAK_LIST_ABANDONED:
        hak_assert(o == 0 && !s->parked);
        break;
    case HAK_LIST_NONE:
        if (o == 0)
            hak_assert(s->parked && !s->free && s->bump == s->end);
        else
            hak_assert(t && o == hak_heap_id(t) && !s->parked);
        break;
    default:
        hak_assert(!"slab on an unknown list");
    }
}
#endif
