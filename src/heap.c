/* Thread heaps: what a thread does with the slabs it owns.  Refill of the
 * current slab, the partial and full lists, frees that leave the fast path,
 * trim, and the thread's start and exit.  Every change of a slab's owner and
 * every free by another thread is remote.c's.
 *
 * Each thread owns the slabs it allocates from.  The current slab of a class
 * is in TLS (the fast path pops its free list); slabs with blocks to spare
 * wait on the partial list; slabs with none are parked on the full list.
 * When a thread exits, its slabs are drained: empty ones go back to the
 * pool, the others lose their owner and are adopted later.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include "fastpath.h"

#define CARVE_BYTES   (16 * 1024)   /* blocks carved into a free list at once */
#define SPARSE_PART   8             /* a slab with < 1/8 of its blocks out is sparse */
#define SPARSE_SKIPS  4             /* sparse slabs a refill passes over at most */
#define REC_CHUNK     (64 * 1024)
#define LARGE_BUDGET_MIN   ((size_t)1 << 20)   /* a heap's Large cache, at first */
#define LARGE_BUDGET_MAX   ((size_t)16 << 20)  /* ... and at most */
#define LARGE_LOOK_REFILLS 64                  /* refills between looks at it */
#define LARGE_GROW_TAKES   16                  /* pool takes between growths */
#define LARGE_CONTENDED    8                   /* 1 in 8 of them waited: contended */
#define TC_LOOK_REFILLS    16                  /* refills between looks at the thread caches */

__thread hak_tls_t hak_tls = {
    .cur = { [0 ... HAK_NCLASS - 1] = &hak_empty_slab },
    .id = HAK_HEAP_ID_NONE,
};
hak_slab_t hak_empty_slab;          /* no blocks, no owner */

hak_lock_t hak_rec_lock;            /* heap record free list */
static hak_heap_rec_t *rec_free;
static char *rec_next, *rec_end;
static pthread_key_t heap_key;
static _Atomic int heap_key_ready;

/* ---- lists ------------------------------------------------------------------ */
static bool is_large(const hak_slab_t *s) { return s->bsize > HAK_MID_MAX; }

/* HAKMEM_LARGE_CACHE_MB in bytes: a fixed budget, or 0 for a learned one. */
static size_t large_budget_fixed(void)
{
    return (size_t)hak_option(HAK_OPT_LARGE_CACHE_MB) << 20;
}

/* The partial list is a queue: a slab joins at the tail when its first block
 * comes back and is taken from the head, so the slab a refill gets has had
 * the longest time to collect frees.  Taking the newest (with one free block)
 * made Larson refill every 6 mallocs. */
static void partial_append(hak_heap_rec_t *r, hak_slab_t *s)
{
    if (is_large(s)) {
        hak_assert(s->used == 0);
        r->large_kept += s->bsize;
    }
    hak_slab_set_list(s, HAK_LIST_PARTIAL);
    hak_slab_t *tail = r->partial_tail[s->cls];
    s->next = NULL;
    s->prev = tail;
    if (tail)
        tail->next = s;
    else
        r->partial[s->cls] = s;
    r->partial_tail[s->cls] = s;
}

/* s off its partial list; the background thread's marks stay (a slab sent
 * to the back of the queue stays partial). */
static void partial_unlink(hak_heap_rec_t *r, hak_slab_t *s)
{
    if (is_large(s))
        r->large_kept -= s->bsize;
    if (r->partial_tail[s->cls] == s)
        r->partial_tail[s->cls] = s->prev;
    hak_list_remove(&r->partial[s->cls], s);
    hak_slab_set_list(s, HAK_LIST_NONE);
}

void hak_partial_remove(hak_heap_rec_t *r, hak_slab_t *s)
{
    partial_unlink(r, s);
    s->seen_free = s->released = NULL;      /* its list may now be popped */
    s->released_bytes = 0;
}

/* Takes s off whichever of the owner's lists holds it (the full lists are
 * full_take's).  The partial lists change under the heap lock, as the full
 * lists do: another thread may take a partial slab of an idle owner whose
 * blocks have all come back (remote.c, idle_slab_release). */
static void slab_unlink(hak_tls_t *t, hak_slab_t *s)
{
    uint32_t pin = hak_slab_pin(s->list, s->bsize);
    hak_assert(s->list != HAK_LIST_FULL);
    switch (s->list) {
    case HAK_LIST_CUR:
        *hak_cur_slot(t, s->cls) = &hak_empty_slab;
        hak_slab_set_list(s, HAK_LIST_NONE);      /* without the lock: types.h */
        break;
    case HAK_LIST_PARTIAL:
        hak_lock(&t->rec->lock);
        hak_partial_remove(t->rec, s);
        hak_unlock(&t->rec->lock);
        break;
    default:
        break;
    }
    atomic_signal_fence(memory_order_seq_cst);   /* list before used: see the pin */
    if (pin)                /* else no write: hak_block_slab reads a Large slab's used */
        s->used -= pin;
}

static void slab_to_partial(hak_tls_t *t, hak_slab_t *s)
{
    hak_lock(&t->rec->lock);
    partial_append(t->rec, s);
    hak_slab_check(t, s);
    hak_unlock(&t->rec->lock);
}

/* Few of s's blocks are out: left alone, it soon has none and goes back to
 * the pool (blocks freed at random live about as long as each other, so the
 * last of a few goes within a few lifetimes); refilled, it is pinned by
 * them for as long again.  With frees at random, refilling every partial
 * slab in turn kept Larson's slabs half empty. */
static bool slab_sparse(const hak_slab_t *s)
{
    return (size_t)s->used * s->bsize * SPARSE_PART < (size_t)(s->end - s->start);
}


/* ---- blocks in a slab ---------------------------------------------------------- */
/* Moves the blocks on the slab's remote list onto its free list. */
void hak_slab_drain(hak_slab_t *s)
{
    if (atomic_load_explicit(&s->remote, memory_order_relaxed) == NULL)
        return;                     /* the common case, without a bus-locked exchange */
    hak_block_t *list = atomic_exchange_explicit(&s->remote, NULL, memory_order_acquire);
    if (list == NULL)
        return;
    uint32_t n = 1;
    hak_block_t *tail = list;
    while (tail->next) {
        tail = tail->next;
        n++;
    }
    atomic_fetch_sub_explicit(&s->remote_n, (int32_t)n, memory_order_relaxed);
    hak_stat_count(HAK_STAT_REMOTE_DRAINS);
    tail->next = s->free;
    s->free = list;
    hak_assert(s->used >= n);
    s->used -= n;
    s->zeroed = 0;                  /* blocks come back dirty */
}

/* Links the next CARVE_BYTES of never-used blocks into the free list.
 * Carving lazily keeps untouched pages out of RSS. */
static void slab_carve(hak_slab_t *s)
{
    size_t bs = s->bsize;
    char *p = s->bump;
    if (p == s->start && hak_slab_guards(s)) {
        /* Check mode: the first block stays a free guard, so that an
         * underflow of the one after it is found (check.c). */
        hak_check_carved(p, bs);
        p += bs;
    }
    char *stop = p + (bs >= CARVE_BYTES ? bs : CARVE_BYTES - CARVE_BYTES % bs);
    if (stop > s->end)
        stop = s->end;
    for (char *q = p; q + bs < stop; q += bs)
        ((hak_block_t *)q)->next = (hak_block_t *)(q + bs);
    ((hak_block_t *)(stop - bs))->next = s->free;
    if (hak_check_mode)
        for (char *q = p; q < stop; q += bs)
            hak_check_carved(q, bs);
    s->free = (hak_block_t *)p;
    __atomic_store_n(&s->bump, stop, __ATOMIC_RELAXED);
    hak_block_page_set(s, true);
}

/* Makes the free list non-empty if the slab has any block to give. */
static bool slab_ready(hak_slab_t *s)
{
    if (s->free)
        return true;
    if (atomic_load_explicit(&s->remote, memory_order_relaxed)) {
        hak_slab_drain(s);
        if (s->free)
            return true;
    }
    if (s->bump < s->end) {
        slab_carve(s);
        return true;
    }
    return false;
}

/* Parks a slab with no blocks on the full list, under the heap lock.  Its
 * blocks come back through the owner's inbox (or, while the owner is idle
 * or behind on its inbox, or once the slab is ownerless, its remote list:
 * the owner's next refill unparks it, unpark_spilled), never while nobody
 * looks. */
static void park_locked(hak_tls_t *t, hak_slab_t *s)
{
    hak_list_push(&t->rec->full[s->cls], s);
    hak_slab_set_list(s, HAK_LIST_FULL);
    hak_slab_set_parked(s, 1);
    hak_slab_check(t, s);
}

/* Makes s ready, or parks it and returns false. */
static bool slab_ready_or_park(hak_tls_t *t, hak_slab_t *s)
{
    if (slab_ready(s))
        return true;
    hak_lock(&t->rec->lock);
    park_locked(t, s);
    hak_unlock(&t->rec->lock);
    return false;
}

/* The partial slab a refill should take, off the list: the head, after
 * sending up to SPARSE_SKIPS sparse ones to the back of the queue (to
 * drain) while a slab is behind them (with skip_sparse); or NULL.  First,
 * in the same hold of the lock, parks park (a slab with nothing to give)
 * unless it is NULL. */
static hak_slab_t *partial_take(hak_tls_t *t, unsigned cls, bool skip_sparse, hak_slab_t *park)
{
    hak_heap_rec_t *r = t->rec;
    hak_lock(&r->lock);
    if (park)
        park_locked(t, park);
    hak_slab_t *s = r->partial[cls];
    for (unsigned k = 0; skip_sparse && k < SPARSE_SKIPS && s && s->next && slab_sparse(s); k++) {
        partial_unlink(r, s);
        partial_append(r, s);
        s = r->partial[cls];
    }
    if (s) {
        if (s->released)
            hak_slab_pages_reused(s);
        hak_partial_remove(r, s);
    }
    hak_unlock(&r->lock);
    return s;
}

/* Parked slabs of the classes in mask whose remote lists other threads
 * filled (this thread was idle or behind on its inbox: remote.c,
 * spill_push): drained, and back on the partial list or in the pool.
 * Without this, their free blocks would wait for the push that completes
 * the slab. */
static void unpark_spilled(hak_tls_t *t, uint64_t mask)
{
    hak_heap_rec_t *r = t->rec;
    hak_lock(&r->lock);
    for (unsigned c = 0; mask; c++, mask >>= 1) {
        if (!(mask & 1))
            continue;
        for (hak_slab_t *s = r->full[c], *next; s; s = next) {
            next = s->next;
            if (atomic_load_explicit(&s->remote, memory_order_relaxed) == NULL)
                continue;
            hak_full_remove(r, s);
            hak_slab_drain(s);
            if (s->used == 0) {         /* every block was home: to the pool, unlocked */
                hak_unlock(&r->lock);
                hak_slab_release(t, s);
                hak_lock(&r->lock);
                next = r->full[c];      /* the list may have changed meanwhile */
                continue;
            }
            partial_append(r, s);
            hak_slab_check(t, s);
        }
    }
    hak_unlock(&r->lock);
}

/* Takes s, parked by its owner, off the full list: under the heap lock. */
void hak_full_remove(hak_heap_rec_t *r, hak_slab_t *s)
{
    hak_list_remove(&r->full[s->cls], s);
    hak_slab_set_list(s, HAK_LIST_NONE);
    hak_slab_set_parked(s, 0);
}

/* The first parked slab of class cls, off every list, or NULL. */
static hak_slab_t *full_take(hak_tls_t *t, unsigned cls)
{
    hak_heap_rec_t *r = t->rec;
    hak_lock(&r->lock);
    hak_slab_t *s = r->full[cls];
    if (s) {
        hak_full_remove(r, s);
        hak_slab_check(t, s);
    }
    hak_unlock(&r->lock);
    return s;
}

/* Files a slab t has just come to own. */
void hak_heap_file(hak_tls_t *t, hak_slab_t *s)
{
    hak_slab_drain(s);
    if (s->used == 0)
        hak_slab_release(t, s);
    else if (slab_ready_or_park(t, s))
        slab_to_partial(t, s);
}

/* ---- heap records and thread lifecycle ----------------------------------------- */
static hak_heap_rec_t *rec_alloc(void)
{
    hak_heap_rec_t *r;
    hak_lock(&hak_rec_lock);
    if ((r = rec_free) != NULL) {
        rec_free = r->next_free;
    } else {
        if ((size_t)(rec_end - rec_next) < sizeof(hak_heap_rec_t)) {
            char *p = hak_os_map(REC_CHUNK, false);
            if (p == NULL) {
                hak_unlock(&hak_rec_lock);
                return NULL;
            }
            rec_next = p;
            rec_end = p + REC_CHUNK;
        }
        r = (hak_heap_rec_t *)rec_next;
        rec_next += sizeof(hak_heap_rec_t);
    }
    hak_unlock(&hak_rec_lock);
    r->next_free = NULL;
    for (unsigned c = 0; c < HAK_NCLASS; c++)
        r->cur[c] = &hak_empty_slab;
    memset(r->partial, 0, sizeof r->partial);
    memset(r->partial_tail, 0, sizeof r->partial_tail);
    memset(r->full, 0, sizeof r->full);
    r->large_kept = 0;
    r->large_budget = large_budget_fixed();     /* learned: 0 until the pool's lock is contended */
    r->large_over = false;
    r->large_hits = r->large_takes = 0;
    r->refills = 0;
    r->large_waits = hak_pool_waits();
    r->large_look_ms = 0;
    r->tc_flush_ms = hak_now_ms();
    hak_foreign_init(r);
    /* Last: a late push meant for the record's previous thread may land
     * from here on, and is freed by its slab's owner of the moment. */
    hak_inbox_open(r);
    return r;
}

bool hak_heap_init(hak_tls_t *t)
{
    hak_init();
    hak_heap_rec_t *r = rec_alloc();
    if (r == NULL)
        return false;
    r->slow = hak_slow_mode;
    t->rec = r;
    t->id = r->slow ? HAK_HEAP_ID_NONE : (uintptr_t)r;
    hak_tc_open(t);
    hak_stat_add(HAK_STAT_THREADS_STARTED, 1);
    /* Last, because it may allocate: the heap works by now. */
    if (atomic_load(&heap_key_ready))
        pthread_setspecific(heap_key, r);
    return true;
}

static void slab_retire(hak_tls_t *t, hak_slab_t *s)
{
    slab_unlink(t, s);
    hak_slab_drain(s);
    if (s->used == 0)
        hak_slab_release(t, s);
    else
        hak_slab_abandon(s);
}

/* A real slab in slot, not the empty stand-in or the foreign cache. */
static inline bool is_slab(const hak_slab_t *s)
{
    return s != &hak_empty_slab && s->list != HAK_LIST_FOREIGN;
}

void hak_heap_thread_exit(void *arg)
{
    hak_tls_t *t = &hak_tls;
    if (t->rec == NULL || t->rec != arg)
        return;
    hak_heap_rec_t *r = t->rec;
    /* Blocks that came home, then those held for others; both may make this
     * thread adopt a slab, which it then retires with its own. */
    if (hak_check_mode) {
        hak_check_flush();          /* the blocks it held back */
        hak_check_thread_exit();
    }
    hak_tc_close(t);
    hak_inbox_close(t);
    hak_foreign_ship_all(t);
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        hak_slab_t **slot = hak_cur_slot(t, c);
        if (is_slab(*slot))
            slab_retire(t, *slot);
        *slot = &hak_empty_slab;
        for (hak_slab_t *s; (s = partial_take(t, c, false, NULL)) != NULL;)
            slab_retire(t, s);
        for (hak_slab_t *s; (s = full_take(t, c)) != NULL;)
            slab_retire(t, s);
    }
    hak_stat_flush_thread();
    hak_stat_add(HAK_STAT_THREADS_EXITED, 1);
    t->id = HAK_HEAP_ID_NONE;
    t->rec = NULL;
    hak_lock(&hak_rec_lock);
    r->next_free = rec_free;
    rec_free = r;
    hak_unlock(&hak_rec_lock);
}

/* Fork: the forking thread's heap lock is taken before, so that no other
 * thread is releasing one of its parked slabs; in the child, free records
 * may have been locked by threads that do not exist there.  Other records
 * are never used in the child: their slabs become ownerless. */
void hak_heap_fork_prepare(void)
{
    if (hak_tls.rec)
        hak_lock(&hak_tls.rec->lock);
}

void hak_heap_fork_parent(void)
{
    if (hak_tls.rec)
        hak_unlock(&hak_tls.rec->lock);
}

void hak_heap_fork_child(void)
{
    if (hak_tls.rec)
        hak_lock_reset(&hak_tls.rec->lock);
    for (hak_heap_rec_t *r = rec_free; r; r = r->next_free)
        hak_lock_reset(&r->lock);
}

void hak_heap_process_init(void)
{
    if (pthread_key_create(&heap_key, hak_heap_thread_exit) == 0)
        atomic_store(&heap_key_ready, 1);
}

/* ---- allocation slow path --------------------------------------------------------- */
static void make_cur(hak_tls_t *t, hak_slab_t *s)
{
    s->used += hak_slab_pin(HAK_LIST_CUR, s->bsize);
    atomic_signal_fence(memory_order_seq_cst);   /* used before list: see the pin */
    hak_slab_set_list(s, HAK_LIST_CUR);       /* without the lock: types.h */
    *hak_cur_slot(t, s->cls) = s;
    hak_slab_check(t, s);
}

/* Makes t's foreign cache of class cls current, so that blocks freed for
 * other threads are handed out before the thread's own and need not be
 * shipped home.  The current slab waits on the partial list (or parked). */
void hak_heap_use_foreign(hak_tls_t *t, unsigned cls)
{
    hak_slab_t **slot = hak_cur_slot(t, cls), *s = *slot;
    if (s == &t->rec->foreign[cls])
        return;
    if (s != &hak_empty_slab) {
        slab_unlink(t, s);
        if (slab_ready_or_park(t, s))
            slab_to_partial(t, s);
    }
    *slot = &t->rec->foreign[cls];
}

/* The thread's caches of Tiny and Mid blocks (hak_tls.tc_head) are emptied onto their
 * slabs once a retention after the last time, at a refill: the blocks a
 * thread cached and did not take back within a retention, a few of them
 * on many slabs, would otherwise keep those slabs from the pool.  Looked
 * at every TC_LOOK_REFILLS refills, so the clock is read rarely. */
static void tc_look(hak_tls_t *t)
{
    hak_heap_rec_t *r = t->rec;
    uint64_t now = hak_now_ms();
    if (now - r->tc_flush_ms < hak_retain_ms())
        return;
    r->tc_flush_ms = now;
    hak_tc_flush(t);
}

/* ---- the Large cache (ACE) -------------------------------------------------------- */
/* A Large slab holds one block, so every Large malloc and free used to take
 * a slab from the page pool and give it back, under the pool's lock: 2 and
 * 4 threads churning Large blocks ran 3-6x mimalloc's time.  An emptied Large
 * slab now stays with its heap, on the partial list of its class, while
 * the heap's budget allows (types.h: large_kept), and the next Large malloc
 * of that class takes it under the heap's own lock.  The budget is learned
 * per heap (or fixed by HAKMEM_LARGE_CACHE_MB): it starts at 0 and doubles
 * while the pool's lock is contended (large_grow); a look every
 * LARGE_LOOK_REFILLS refills, at least HAKMEM_RETAIN_MS apart, that finds no
 * reuse since the last one sends the kept slabs to the pool and halves it.
 * Kept slabs also go to the pool, and the budget halves, before the pool
 * would fault pages in for a Large refill (large_yield).  Trim and thread
 * exit release them as every empty slab. */
static int partial_release_empty(hak_tls_t *t, unsigned cls);

static bool class_is_large(unsigned cls) { return hak_classes[cls].size > HAK_MID_MAX; }

/* s, an emptied Large slab of r off every list: kept if the budget allows.
 * Under r's lock. */
static bool large_keep_locked(hak_heap_rec_t *r, hak_slab_t *s)
{
    if (!is_large(s) || r->slow)    /* check mode and profiles: the slow paths' own */
        return false;
    if (r->large_kept + s->bsize > r->large_budget) {
        r->large_over = true;
        return false;
    }
    s->zeroed = 0;                  /* its block comes back written: calloc zeroes it */
    partial_append(r, s);
    return true;
}

static bool large_keep(hak_tls_t *t, hak_slab_t *s)
{
    if (!is_large(s))
        return false;
    if (t->rec->large_budget == 0) {    /* the owner's field: no lock to say no */
        t->rec->large_over = true;
        return false;
    }
    hak_lock(&t->rec->lock);
    bool kept = large_keep_locked(t->rec, s);
    if (kept)
        hak_slab_check(t, s);
    hak_unlock(&t->rec->lock);
    return kept;
}

static void large_budget_set(hak_heap_rec_t *r, size_t budget)
{
    if (large_budget_fixed())
        return;
    if (budget != r->large_budget)
        hak_stat_add(HAK_STAT_LARGE_BUDGET_CHANGES, 1);
    r->large_budget = budget;
}

/* LARGE_GROW_TAKES Large slabs from the pool, after one sent there for want
 * of budget: the budget grows if the pool's lock made at least one take in
 * LARGE_CONTENDED of them wait meanwhile (without contention the pool serves
 * as well, and its pages serve every size: a single thread's Large and
 * Huge churn held 16% more peak RSS with slabs kept per class). */
static void large_grow(hak_heap_rec_t *r)
{
    uint64_t waits = hak_pool_waits();
    if ((waits - r->large_waits) * LARGE_CONTENDED >= r->large_takes) {
        size_t b = r->large_budget ? r->large_budget * 2 : LARGE_BUDGET_MIN;
        large_budget_set(r, b < LARGE_BUDGET_MAX ? b : LARGE_BUDGET_MAX);
    }
    r->large_waits = waits;
    r->large_takes = 0;
    r->large_over = false;
}

/* Every kept slab to the pool, and the budget halved: a Large refill that
 * the pool can serve only with pages not resident (or not mapped) calls this
 * first, so that the cache never makes the pool fault pages in while it
 * holds resident ones and shrinks where its memory is needed for other
 * sizes (kept regardless, a 4-thread churn of 64 KiB-8 MiB blocks ran 2x
 * slower with 27% more peak RSS); and so does a look that found no reuse. */
static void large_yield(hak_tls_t *t)
{
    for (unsigned c = 0; c < HAK_NCLASS; c++)
        if (class_is_large(c))
            partial_release_empty(t, c);
    hak_heap_rec_t *r = t->rec;
    large_budget_set(r, r->large_budget / 2 >= LARGE_BUDGET_MIN ? r->large_budget / 2 : 0);
}

/* Every LARGE_LOOK_REFILLS refills, at least HAKMEM_RETAIN_MS apart: a cache
 * not used since the last look goes to the pool, and its budget halves. */
static void large_look(hak_tls_t *t)
{
    hak_heap_rec_t *r = t->rec;
    uint64_t now = hak_now_ms();
    if (now - r->large_look_ms < (uint64_t)hak_option(HAK_OPT_RETAIN_MS))
        return;
    r->large_look_ms = now;
    if (r->large_hits == 0 && r->large_kept > 0)
        large_yield(t);
    r->large_hits = 0;
}

/* A slab of class cls with a non-empty free list, made current, or NULL when
 * the OS refuses memory.  Blocks that came home first; then the thread's own
 * slabs; then its foreign cache (already touched, and otherwise shipped);
 * then an abandoned slab, a new one.  (The cache also becomes current as
 * soon as it holds FOREIGN_SWITCH blocks: free_foreign.) */
static hak_slab_t *heap_refill(hak_tls_t *t, unsigned cls)
{
    hak_heap_rec_t *r = t->rec;
    if (++r->refills % TC_LOOK_REFILLS == 0)
        tc_look(t);
    if (r->refills % LARGE_LOOK_REFILLS == 0)
        large_look(t);
    if (atomic_load_explicit(&r->idle, memory_order_relaxed))
        atomic_store_explicit(&r->idle, 0, memory_order_relaxed);   /* allocating again */
    hak_inbox_take(t);
    uint64_t spilled = hak_spilled_take(r);
    if (spilled)
        unpark_spilled(t, spilled);
    hak_slab_t **slot = hak_cur_slot(t, cls);
    hak_slab_t *s = *slot, *f = &r->foreign[cls];
    if (s->free)
        return s;                       /* the inbox refilled it */
    if (s == f) {                       /* the foreign cache ran dry */
        hak_foreign_reset(r, cls);
        *slot = s = &hak_empty_slab;
    }
    hak_slab_t *park = NULL;            /* parked by the next partial_take */
    if (s != &hak_empty_slab) {
        slab_unlink(t, s);
        if (slab_ready(s)) {
            make_cur(t, s);
            return s;
        }
        park = s;
    }
    while ((s = partial_take(t, cls, true, park)) != NULL) {
        if (slab_ready(s)) {
            if (is_large(s)) {
                r->large_hits++;
                hak_stat_count(HAK_STAT_LARGE_REUSED);
                hak_band_count(hak_band_of(s->bsize), HAK_BAND_REUSED, 1);
            }
            make_cur(t, s);
            return s;
        }
        park = s;
    }
    if (f->free) {
        hak_heap_use_foreign(t, cls);
        return f;
    }
    while ((s = hak_abandoned_take(t, cls)) != NULL) {
        if (slab_ready_or_park(t, s)) {
            make_cur(t, s);
            return s;
        }
    }
    if (class_is_large(cls) && ++r->large_takes >= LARGE_GROW_TAKES && r->large_over)
        large_grow(r);
    s = NULL;
    if (class_is_large(cls) && r->large_kept != 0 &&
        (s = hak_pool_slab_alloc(cls, hak_heap_id(t), true)) == NULL)
        large_yield(t);
    if (s == NULL)
        s = hak_pool_slab_alloc(cls, hak_heap_id(t), false);
    if (s == NULL)
        return NULL;
    slab_carve(s);
    make_cur(t, s);
    return s;
}

void *hak_alloc_class(unsigned cls)
{
    hak_tls_t *t = &hak_tls;
    hak_slab_t *s = t->cur[cls];
    hak_block_t *b = s->free;
    if (b == NULL) {
        if (t->rec == NULL && !hak_heap_init(t)) {
            errno = ENOMEM;             /* no heap record: the OS refused */
            return NULL;
        }
        if ((s = *hak_cur_slot(t, cls))->free == NULL && (s = heap_refill(t, cls)) == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        b = s->free;
        if (hak_check_mode)
            hak_check_handed_out(b, s);
    }
    s->free = b->next;
    s->used++;
    return b;
}

/* A malloc of more than 64 KiB: a Large slab or a mapping of its own, as its
 * size band says, and counted there (learn.c). */
static void *alloc_big(size_t n)
{
    unsigned long calls = hak_os_calls;
    void *p = NULL;
    if (n > HAK_LARGE_MAX || hak_band_maps(n))
        p = hak_huge_alloc(n, 0, false);
    /* A mapping refused (address space or commit limits: a mapping takes
     * whole 4 MiB chunks) leaves the Large tier to try. */
    if (p == NULL && n <= HAK_LARGE_MAX)
        p = hak_alloc_class(hak_class_of(n));
    if (p != NULL)
        hak_band_allocated(n, calls);
    return p;
}

/* Every malloc the fast path cannot serve: n, the size asked for, is what
 * check mode's guards and the profile need. */
void *hak_alloc_slow(size_t n)
{
    hak_background_poke();
    if (HAK_UNLIKELY(hak_slow_mode))
        return hak_alloc_watched(n, 0);
    if (n > HAK_MID_MAX)
        return alloc_big(n);
    return hak_alloc_class(hak_class_of(n));
}

/* A local free of head (linked to the rest of s's free list) left s empty,
 * so not a pinned current slab: nothing of it is out any more. */
void hak_free_local_slow(hak_slab_t *s, hak_block_t *head)
{
    hak_tls_t *t = &hak_tls;
    /* atomic: a partial slab's list is read by others under the heap lock,
     * which this store precedes (remote.c: idle_slab_release, slab_pages_look) */
    __atomic_store_n(&s->free, head, __ATOMIC_RELEASE);
    slab_unlink(t, s);
    if (large_keep(t, s))
        return;
    hak_slab_release(t, s);
}

/* Blocks head..tail (n of them) of s, which the calling thread owns and
 * found parked: s is unparked under the heap lock, gets them and whatever
 * came back on its remote list while its owner was idle, and goes to the
 * partial list (or the pool). */
void hak_free_parked(hak_slab_t *s, hak_block_t *head, hak_block_t *tail, uint32_t n)
{
    hak_tls_t *t = &hak_tls;
    hak_heap_rec_t *r = t->rec;
    hak_lock(&r->lock);
    if (s->list != HAK_LIST_FULL || atomic_load(&s->owner) != hak_heap_id(t)) {
        hak_unlock(&r->lock);            /* released: all its blocks were free */
        hak_fatal("free", "double free", head);
    }
    hak_full_remove(r, s);
    tail->next = s->free;
    s->free = head;
    hak_assert(s->used >= n);
    s->used -= n;
    hak_slab_drain(s);
    if (s->used == 0) {
        bool kept = large_keep_locked(r, s);
        if (kept)
            hak_slab_check(t, s);
        hak_unlock(&r->lock);
        if (!kept)
            hak_slab_release(t, s);
        return;
    }
    partial_append(r, s);               /* in the same hold of the lock */
    hak_slab_check(t, s);
    hak_unlock(&r->lock);
}

/* ---- trim ------------------------------------------------------------------------ */
/* Drains an owned slab and returns it to the pool if nothing is out. */
static int release_if_empty(hak_tls_t *t, hak_slab_t *s)
{
    hak_slab_drain(s);
    if (s->used != hak_slab_pin(s->list, s->bsize))
        return 0;
    slab_unlink(t, s);
    hak_slab_release(t, s);
    return 1;
}

/* The partial slabs of class cls with nothing out go to the pool; drained
 * under the heap lock, while they are on the list (see slab_unlink). */
static int partial_release_empty(hak_tls_t *t, unsigned cls)
{
    hak_heap_rec_t *r = t->rec;
    hak_slab_t *empty = NULL;
    hak_lock(&r->lock);
    for (hak_slab_t *s = r->partial[cls], *next; s; s = next) {
        next = s->next;
        hak_slab_drain(s);
        if (s->used == 0) {
            hak_partial_remove(r, s);
            s->next = empty;
            empty = s;
        }
    }
    hak_unlock(&r->lock);
    int released = empty != NULL;
    while (empty) {
        hak_slab_t *s = empty;
        empty = s->next;
        s->next = NULL;
        hak_slab_release(t, s);
    }
    return released;
}

int hak_heap_trim(void)
{
    hak_tls_t *t = &hak_tls;
    int released = 0;
    if (t->rec == NULL)
        return 0;
    if (hak_check_mode)
        hak_check_flush();
    hak_tc_flush(t);
    hak_remote_trim(t);
    /* blocks other threads left on parked slabs while this one looked idle */
    uint64_t spilled = hak_spilled_take(t->rec);
    if (spilled)
        unpark_spilled(t, spilled);
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        hak_slab_t *s = *hak_cur_slot(t, c);
        if (is_slab(s))
            released |= release_if_empty(t, s);
        released |= partial_release_empty(t, c);
    }
    return released | hak_abandoned_trim(t);
}
