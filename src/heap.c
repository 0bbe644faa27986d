/* Thread heaps: refill of the current slab, full and partial slabs, frees
 * from other threads, adoption of ownerless slabs, and thread exit.
 *
 * Each thread owns the slabs it allocates from.  The current slab of a class
 * is in TLS (the fast path pops its free list); slabs with blocks to spare
 * wait on the partial list; slabs with none are parked on the full list.
 *
 * A block freed by another thread goes onto its slab's remote list.  The
 * owner takes remote blocks when it looks at a slab for blocks (current and
 * partial slabs) and, for parked slabs, when the freer has put the slab on
 * the owner's pending stack.  When a thread exits, its slabs are drained:
 * empty ones go back to the pool, the others lose their owner and wait on
 * the abandoned list (or, if full, for their next free) to be adopted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include "fastpath.h"

#define CARVE_BYTES   (16 * 1024)   /* blocks carved into a free list at once */
#define REC_CHUNK     (64 * 1024)
#define OWNER_DYING   ((uintptr_t)3) /* slab on its way back to the pool */
#define REC_ALIGN_MASK ((uintptr_t)63)

__thread hak_tls_t hak_tls = {
    .cur = { [0 ... HAK_NCLASS - 1] = &hak_empty_slab },
    .id = HAK_HEAP_ID_NONE,
};
hak_slab_t hak_empty_slab;          /* no blocks, no owner */

hak_lock_t hak_own_lock;            /* abandoned lists; owner 0 <-> heap   */
hak_lock_t hak_rec_lock;            /* heap record free list               */
static hak_slab_t *abandoned[HAK_NCLASS];
static hak_heap_rec_t *rec_free;
static char *rec_next, *rec_end;
static pthread_key_t heap_key;
static _Atomic int heap_key_ready;
static _Atomic size_t remote_frees_counted; /* flushed by threads every 256 */
static __thread uint64_t tls_remote_frees;   /* this thread's, flushed in 256s */

static void slab_notify(hak_slab_t *s, uintptr_t o, bool may_adopt);

/* The owner value of t's slabs (t->id is only what the fast path compares,
 * which HAKMEM_CHECK keeps unmatchable). */
static inline uintptr_t heap_id(const hak_tls_t *t)
{
    return t->rec ? (uintptr_t)t->rec : HAK_HEAP_ID_NONE;
}

/* Where t keeps its current slab of class c: TLS for the fast path, or the
 * heap record when HAKMEM_CHECK keeps the fast path away from it. */
static inline hak_slab_t **cur_slot(hak_tls_t *t, unsigned c)
{
    return t->rec->check ? &t->rec->cur[c] : &t->cur[c];
}

/* ---- lists ------------------------------------------------------------------ */
/* Head stores are relaxed atomics because heap_refill peeks at an abandoned
 * list's head without the lock (a plain mov all the same). */
static void list_push(hak_slab_t **head, hak_slab_t *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    __atomic_store_n(head, s, __ATOMIC_RELAXED);
}

static void list_remove(hak_slab_t **head, hak_slab_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        __atomic_store_n(head, s->next, __ATOMIC_RELAXED);
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* The partial list is a queue: a slab joins at the tail when its first block
 * comes back and is taken from the head, so the slab a refill gets has had
 * the longest time to collect frees.  Taking the newest (with one free block)
 * made Larson refill every 6 mallocs. */
static void partial_append(hak_heap_rec_t *r, hak_slab_t *s)
{
    hak_slab_t *tail = r->partial_tail[s->cls];
    s->next = NULL;
    s->prev = tail;
    if (tail)
        tail->next = s;
    else
        r->partial[s->cls] = s;
    r->partial_tail[s->cls] = s;
}

static void partial_remove(hak_heap_rec_t *r, hak_slab_t *s)
{
    if (r->partial_tail[s->cls] == s)
        r->partial_tail[s->cls] = s->prev;
    list_remove(&r->partial[s->cls], s);
}

/* Takes s off whichever of the owner's lists holds it. */
static void slab_unlink(hak_tls_t *t, hak_slab_t *s)
{
    uint32_t pin = hak_slab_pin(s->list, s->bsize);
    switch (s->list) {
    case HAK_LIST_CUR:     *cur_slot(t, s->cls) = &hak_empty_slab; break;
    case HAK_LIST_PARTIAL: partial_remove(t->rec, s); break;
    case HAK_LIST_FULL:    list_remove(&t->rec->full[s->cls], s); break;
    default: break;
    }
    s->list = HAK_LIST_NONE;
    atomic_signal_fence(memory_order_seq_cst);   /* list before used: see the pin */
    s->used -= pin;
}

static void slab_to_partial(hak_tls_t *t, hak_slab_t *s)
{
    atomic_store_explicit(&s->in_full, 0, memory_order_relaxed);
    partial_append(t->rec, s);
    s->list = HAK_LIST_PARTIAL;
}

/* ---- blocks in a slab ---------------------------------------------------------- */
static inline char *slab_bump(const hak_slab_t *s)
{
    return __atomic_load_n((char *const *)&s->bump, __ATOMIC_RELAXED);
}

/* Moves every remotely freed block onto the free list. */
static void slab_drain(hak_slab_t *s)
{
    hak_block_t *list = atomic_exchange_explicit(&s->remote, NULL, memory_order_acquire);
    if (list == NULL)
        return;
    uint32_t n = 1;
    hak_block_t *tail = list;
    while (tail->next) {
        tail = tail->next;
        n++;
    }
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
    char *stop = p + (bs >= CARVE_BYTES ? bs : CARVE_BYTES - CARVE_BYTES % bs);
    if (stop > s->end)
        stop = s->end;
    for (char *q = p; q + bs < stop; q += bs)
        ((hak_block_t *)q)->next = (hak_block_t *)(q + bs);
    ((hak_block_t *)(stop - bs))->next = s->free;
    if (hak_check_mode)
        for (char *q = p; q < stop; q += bs)
            ((hak_block_t *)q)->mark = hak_mark_of(q);
    s->free = (hak_block_t *)p;
    __atomic_store_n(&s->bump, stop, __ATOMIC_RELAXED);
}

/* Makes the free list non-empty if the slab has any block to give. */
static bool slab_ready(hak_slab_t *s)
{
    if (s->free)
        return true;
    if (atomic_load_explicit(&s->remote, memory_order_relaxed)) {
        slab_drain(s);
        if (s->free)
            return true;
    }
    if (s->bump < s->end) {
        slab_carve(s);
        return true;
    }
    return false;
}

/* Parks a slab with no blocks on the full list.  A remote free that raced
 * with the parking is seen either here (in_full is set before remote is read
 * again) or by the freer (which reads in_full after its push): then the slab
 * is not parked and its free list is filled; returns true. */
static bool slab_ready_or_park(hak_tls_t *t, hak_slab_t *s)
{
    if (slab_ready(s))
        return true;
    atomic_store(&s->in_full, 1);
    if (atomic_load(&s->remote)) {
        atomic_store(&s->in_full, 0);
        slab_drain(s);
        return true;
    }
    list_push(&t->rec->full[s->cls], s);
    s->list = HAK_LIST_FULL;
    return false;
}

/* ---- slab ownership -------------------------------------------------------------- */
/* Pushes s onto r's pending stack; the caller holds s's pending flag. */
static void pending_push(hak_heap_rec_t *r, hak_slab_t *s)
{
    hak_slab_t *h = atomic_load(&r->pending);
    do s->pending_next = h;
    while (!atomic_compare_exchange_weak(&r->pending, &h, s));
}

/* Takes s's remote blocks and, if that unparks it, moves it to partial. */
static void slab_take_remote(hak_tls_t *t, hak_slab_t *s)
{
    slab_drain(s);
    if (s->list == HAK_LIST_FULL && s->free) {
        list_remove(&t->rec->full[s->cls], s);
        slab_to_partial(t, s);
    }
}

/* Returns a slab of t's to the pool.  Its owner becomes OWNER_DYING first, so
 * a freer that is about to notify backs off; then in-flight notifiers are
 * waited for, so the slab is on no pending stack when the pool reuses it. */
static void slab_release(hak_tls_t *t, hak_slab_t *s)
{
    hak_assert(s->used == 0 && s->list == HAK_LIST_NONE);
    atomic_store(&s->owner, OWNER_DYING);
    while (atomic_load(&t->rec->notifiers))
        hak_os_yield();
    if (atomic_load(&s->pending)) {
        hak_slab_t *keep = atomic_exchange(&t->rec->pending, NULL);
        /* Re-push everything but s; s itself needs nothing. */
        while (keep) {
            hak_slab_t *next = keep->pending_next;
            if (keep == s)
                atomic_store(&s->pending, 0);
            else
                pending_push(t->rec, keep);
            keep = next;
        }
    }
    hak_pool_slab_free(s);
}

/* Owner 0 -> t, for a slab nobody owns (abandoned or orphaned). */
static bool slab_adopt(hak_tls_t *t, hak_slab_t *s)
{
    bool ok;
    hak_lock(&hak_own_lock);
    ok = __atomic_load_n(&s->state, __ATOMIC_RELAXED) == HAK_SLAB_ACTIVE &&
         atomic_load(&s->owner) == 0;
    if (ok) {
        if (s->list == HAK_LIST_ABANDONED)
            list_remove(&abandoned[s->cls], s);
        s->list = HAK_LIST_NONE;
        atomic_store(&s->owner, heap_id(t));
    }
    hak_unlock(&hak_own_lock);
    return ok;
}

/* Files a slab t has just adopted. */
static void slab_place(hak_tls_t *t, hak_slab_t *s)
{
    slab_drain(s);
    if (s->used == 0)
        slab_release(t, s);
    else if (slab_ready_or_park(t, s))
        slab_to_partial(t, s);
}

/* Owner t -> 0 at thread exit; the caller has drained the slab. */
static void slab_abandon(hak_slab_t *s)
{
    hak_lock(&hak_own_lock);
    atomic_store(&s->owner, 0);
    if (s->free || s->bump < s->end || atomic_load(&s->remote)) {
        atomic_store(&s->in_full, 0);
        list_push(&abandoned[s->cls], s);
        s->list = HAK_LIST_ABANDONED;
    } else {
        atomic_store(&s->in_full, 1);   /* its next free adopts it */
        s->list = HAK_LIST_NONE;
    }
    hak_unlock(&hak_own_lock);
}

/* An ownerless slab got a remote block and nobody can adopt it now: make
 * sure a thread that needs its class will. */
static void slab_orphan_to_abandoned(hak_slab_t *s)
{
    hak_lock(&hak_own_lock);
    if (atomic_load(&s->owner) == 0 && s->list != HAK_LIST_ABANDONED &&
        __atomic_load_n(&s->state, __ATOMIC_RELAXED) == HAK_SLAB_ACTIVE) {
        atomic_store(&s->in_full, 0);
        list_push(&abandoned[s->cls], s);
        s->list = HAK_LIST_ABANDONED;
    }
    hak_unlock(&hak_own_lock);
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
    /* pending and notifiers are left alone: a late notifier of the previous
     * thread may still be touching them (and will find it owns nothing). */
    r->next_free = NULL;
    for (unsigned c = 0; c < HAK_NCLASS; c++)
        r->cur[c] = &hak_empty_slab;
    memset(r->partial, 0, sizeof r->partial);
    memset(r->partial_tail, 0, sizeof r->partial_tail);
    memset(r->full, 0, sizeof r->full);
    return r;
}

static bool heap_init(hak_tls_t *t)
{
    hak_init();
    hak_heap_rec_t *r = rec_alloc();
    if (r == NULL)
        return false;
    r->check = hak_check_mode;
    t->rec = r;
    t->id = r->check ? HAK_HEAP_ID_NONE : (uintptr_t)r;
    hak_stat_add(HAK_STAT_THREADS_STARTED, 1);
    /* Last, because it may allocate: the heap works by now. */
    if (atomic_load(&heap_key_ready))
        pthread_setspecific(heap_key, r);
    return true;
}

/* Handles the slabs other threads put on t's pending stack. */
static void heap_process_pending(hak_tls_t *t, bool may_adopt)
{
    hak_slab_t *s = atomic_exchange(&t->rec->pending, NULL);
    while (s) {
        hak_slab_t *next = s->pending_next;
        atomic_store(&s->pending, 0);
        uintptr_t o = atomic_load(&s->owner);
        if (o == heap_id(t))
            slab_take_remote(t, s);
        else if (atomic_load(&s->remote) && atomic_load(&s->in_full)) {
            slab_notify(s, o, may_adopt);   /* not ours any more: pass it on */
        }
        s = next;
    }
}

static void slab_retire(hak_tls_t *t, hak_slab_t *s)
{
    slab_unlink(t, s);
    slab_drain(s);
    if (s->used == 0)
        slab_release(t, s);
    else
        slab_abandon(s);
}

void hak_heap_thread_exit(void *arg)
{
    hak_tls_t *t = &hak_tls;
    if (t->rec == NULL || t->rec != arg)
        return;
    hak_heap_rec_t *r = t->rec;
    heap_process_pending(t, false);
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        if (*cur_slot(t, c) != &hak_empty_slab)
            slab_retire(t, *cur_slot(t, c));
        while (r->partial[c])
            slab_retire(t, r->partial[c]);
        while (r->full[c])
            slab_retire(t, r->full[c]);
    }
    /* Nobody pushes onto r's stack once these notifiers are gone: they all
     * re-read the owner, which is no longer r for any slab. */
    while (atomic_load(&r->notifiers))
        hak_os_yield();
    heap_process_pending(t, false);
    atomic_fetch_add_explicit(&remote_frees_counted, tls_remote_frees & 255, memory_order_relaxed);
    tls_remote_frees = 0;
    hak_stat_add(HAK_STAT_THREADS_EXITED, 1);
    t->id = HAK_HEAP_ID_NONE;
    t->rec = NULL;
    hak_lock(&hak_rec_lock);
    r->next_free = rec_free;
    rec_free = r;
    hak_unlock(&hak_rec_lock);
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
    s->list = HAK_LIST_CUR;
    *cur_slot(t, s->cls) = s;
}

/* A slab of class cls with a non-empty free list, made current, or NULL when
 * the OS refuses memory. */
static hak_slab_t *heap_refill(hak_tls_t *t, unsigned cls)
{
    hak_heap_rec_t *r = t->rec;
    hak_slab_t *s = *cur_slot(t, cls);
    if (atomic_load_explicit(&r->pending, memory_order_relaxed))
        heap_process_pending(t, true);
    if (s != &hak_empty_slab) {
        slab_unlink(t, s);
        if (slab_ready_or_park(t, s)) {
            make_cur(t, s);
            return s;
        }
    }
    while ((s = r->partial[cls]) != NULL) {
        slab_unlink(t, s);
        if (slab_ready_or_park(t, s)) {
            make_cur(t, s);
            return s;
        }
    }
    while (__atomic_load_n(&abandoned[cls], __ATOMIC_RELAXED)) {
        hak_lock(&hak_own_lock);
        s = abandoned[cls];
        if (s) {
            list_remove(&abandoned[cls], s);
            s->list = HAK_LIST_NONE;
            atomic_store(&s->owner, heap_id(t));
        }
        hak_unlock(&hak_own_lock);
        if (s == NULL)
            break;
        if (slab_ready_or_park(t, s)) {
            make_cur(t, s);
            return s;
        }
    }
    s = hak_pool_slab_alloc(cls, heap_id(t));
    if (s == NULL)
        return NULL;
    slab_carve(s);
    make_cur(t, s);
    return s;
}

/* HAKMEM_CHECK: a block about to be handed out must still carry its free
 * mark and link to a block of the same slab; otherwise something wrote to it
 * after it was freed. */
static void check_free_block(const hak_slab_t *s, const hak_block_t *b)
{
    if (!hak_slab_block_valid(s, b) || !hak_block_is_free(b) ||
        (b->next != NULL && !hak_slab_block_valid(s, b->next)))
        hak_fatal("malloc", "heap corruption (freed block modified)", b);
}

void *hak_alloc_class(unsigned cls)
{
    hak_tls_t *t = &hak_tls;
    hak_slab_t *s = t->cur[cls];
    hak_block_t *b = s->free;
    if (b == NULL) {
        if (t->rec == NULL && !heap_init(t)) {
            errno = ENOMEM;             /* no heap record: the OS refused */
            return NULL;
        }
        if ((s = *cur_slot(t, cls))->free == NULL && (s = heap_refill(t, cls)) == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        b = s->free;
        if (t->rec->check) {
            check_free_block(s, b);
            b->mark = 0;
        }
    }
    s->free = b->next;
    s->used++;
    return b;
}

void *hak_alloc_slow(size_t n)
{
    if (n > HAK_LARGE_MAX)
        return hak_huge_alloc(n, 0, false);
    return hak_alloc_class(hak_class_of(n));
}

/* ---- free slow paths ---------------------------------------------------------------- */
/* After a local free left the slab empty or found it parked. */
void hak_free_local_slow(hak_slab_t *s)
{
    hak_tls_t *t = &hak_tls;
    if (atomic_load_explicit(&s->in_full, memory_order_relaxed)) {
        list_remove(&t->rec->full[s->cls], s);
        slab_to_partial(t, s);
    }
    if (s->used == 0) {
        /* Not a pinned current slab: nothing of it is out any more. */
        slab_unlink(t, s);
        slab_release(t, s);
    }
}

static void remote_push(hak_slab_t *s, void *p)
{
    hak_block_t *b = (hak_block_t *)p;
    hak_block_t *head = atomic_load_explicit(&s->remote, memory_order_relaxed);
    do
        b->next = head;
    while (!atomic_compare_exchange_weak_explicit(&s->remote, &head, b, memory_order_seq_cst,
                                                  memory_order_relaxed));
    /* Counted in batches: a shared counter per remote free would bounce. */
    if ((++tls_remote_frees & 255) == 0)
        atomic_fetch_add_explicit(&remote_frees_counted, 256, memory_order_relaxed);
}

/* A remote block was pushed onto a parked slab owned by o: put the slab on
 * o's pending stack, unless it is there already.  o's notifiers count keeps
 * o from finishing thread exit (or releasing a slab) while we hold o's
 * address; we push only if o still owns the slab once counted. */
static void slab_notify(hak_slab_t *s, uintptr_t o, bool may_adopt)
{
    for (;;) {
        if (o == 0) {
            hak_tls_t *t = &hak_tls;
            if (may_adopt && (t->rec != NULL || heap_init(t))) {
                if (slab_adopt(t, s))
                    slab_place(t, s);
                else if ((o = atomic_load(&s->owner)) != 0)
                    continue;
                return;
            }
            slab_orphan_to_abandoned(s);
            return;
        }
        if (o & REC_ALIGN_MASK)
            return;                      /* on its way to the pool: nothing to tell */
        hak_heap_rec_t *r = (hak_heap_rec_t *)o;
        atomic_fetch_add(&r->notifiers, 1);
        if (atomic_load(&s->owner) == o) {
            if (!atomic_exchange(&s->pending, 1))
                pending_push(r, s);
            atomic_fetch_sub(&r->notifiers, 1);
            return;
        }
        atomic_fetch_sub(&r->notifiers, 1);
        o = atomic_load(&s->owner);
    }
}

void hak_free_slow(void *p, const char *call)
{
    if (p == NULL)
        return;
    hak_slab_t *s = hak_block_slab(p, call, "double free");
    if (s == NULL) {
        hak_huge_free(p, call);
        return;
    }
    if (hak_check_mode) {
        if (hak_block_is_free(p))
            hak_fatal(call, "double free", p);
        ((hak_block_t *)p)->mark = hak_mark_of(p);
    }
    hak_tls_t *t = &hak_tls;
    for (;;) {
        uintptr_t o = atomic_load_explicit(&s->owner, memory_order_acquire);
        if (o == heap_id(t)) {
            hak_slab_free_local(s, p);
            return;
        }
        if (o == 0) {
            if (t->rec != NULL || heap_init(t)) {
                if (slab_adopt(t, s)) {
                    slab_place(t, s);
                    hak_slab_free_local(s, p);
                    return;
                }
                continue;               /* adopted by someone else meanwhile */
            }
            remote_push(s, p);          /* no heap (out of memory): leave it queued */
            slab_orphan_to_abandoned(s);
            return;
        }
        if (o & REC_ALIGN_MASK)          /* every block of a dying slab is free */
            hak_fatal(call, "double free", p);
        remote_push(s, p);
        if (atomic_load(&s->in_full))
            slab_notify(s, o, true);
        return;
    }
}

/* ---- trim, fork, figures ------------------------------------------------------------ */
/* Drains an owned slab and returns it to the pool if nothing is out. */
static int release_if_empty(hak_tls_t *t, hak_slab_t *s)
{
    slab_drain(s);
    if (s->used != hak_slab_pin(s->list, s->bsize))
        return 0;
    slab_unlink(t, s);
    slab_release(t, s);
    return 1;
}

int hak_heap_trim(void)
{
    hak_tls_t *t = &hak_tls;
    int released = 0;
    if (t->rec != NULL) {
        heap_process_pending(t, true);
        for (unsigned c = 0; c < HAK_NCLASS; c++) {
            hak_slab_t *s = *cur_slot(t, c);
            if (s != &hak_empty_slab)
                released |= release_if_empty(t, s);
            for (s = t->rec->partial[c]; s;) {
                hak_slab_t *next = s->next;
                released |= release_if_empty(t, s);
                s = next;
            }
        }
    }
    /* Abandoned slabs whose blocks have all come back: draining needs an
     * owner, so take them all, release the empty ones, abandon the rest. */
    if (t->rec == NULL)
        return released;
    for (unsigned c = 0; c < HAK_NCLASS; c++) {
        hak_lock(&hak_own_lock);
        hak_slab_t *list = abandoned[c];
        __atomic_store_n(&abandoned[c], NULL, __ATOMIC_RELAXED);
        for (hak_slab_t *s = list; s; s = s->next) {
            s->list = HAK_LIST_NONE;
            atomic_store(&s->owner, heap_id(t));
        }
        hak_unlock(&hak_own_lock);
        while (list) {
            hak_slab_t *s = list;
            list = s->next;
            s->prev = s->next = NULL;
            slab_drain(s);
            if (s->used == 0) {
                slab_release(t, s);
                released = 1;
            } else {
                slab_abandon(s);
            }
        }
    }
    return released;
}

static void fork_fixup(hak_slab_t *s, void *arg)
{
    atomic_store(&s->pending, 0);
    s->pending_next = NULL;
    if (atomic_load(&s->owner) == (uintptr_t)arg)
        return;
    /* Owned by a thread that does not exist in the child, or by nobody. */
    atomic_store(&s->owner, 0);
    s->used -= hak_slab_pin(s->list, s->bsize);
    if (s->free || s->bump < s->end || atomic_load(&s->remote)) {
        atomic_store(&s->in_full, 0);
        list_push(&abandoned[s->cls], s);
        s->list = HAK_LIST_ABANDONED;
    } else {
        atomic_store(&s->in_full, 1);
        s->list = HAK_LIST_NONE;
    }
}

/* In the child of fork, alone.  Slabs of the parent's other threads become
 * ownerless (the abandoned lists are rebuilt from the SuperSlabs), half-done
 * notifications are dropped and this thread's parked slabs are re-examined. */
void hak_heap_fork_child(void)
{
    hak_tls_t *t = &hak_tls;
    hak_lock_reset(&hak_own_lock);
    hak_lock_reset(&hak_rec_lock);
    memset(abandoned, 0, sizeof abandoned);
    hak_pool_visit(fork_fixup, (void *)heap_id(t));
    if (t->rec != NULL) {
        atomic_store(&t->rec->pending, NULL);
        atomic_store(&t->rec->notifiers, 0);
        for (unsigned c = 0; c < HAK_NCLASS; c++) {
            for (hak_slab_t *s = t->rec->full[c]; s;) {
                hak_slab_t *next = s->next;
                slab_take_remote(t, s);
                s = next;
            }
        }
    }
}

/* Up to 255 per live thread (other than the caller) are not counted yet. */
uint64_t hak_heap_remote_frees(void)
{
    return atomic_load_explicit(&remote_frees_counted, memory_order_relaxed) +
           (tls_remote_frees & 255);
}
