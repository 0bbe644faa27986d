/* Batch: the background thread that returns free memory to the OS.
 *
 * Without it, free pages and cached Huge mappings are released only by the
 * allocator calls that follow (slow paths), so a program that frees a lot
 * and then waits keeps what it freed.  This thread sleeps until the
 * earliest deadline the page pool, the Huge cache or the partial slabs' free
 * blocks name (a retention, superslab.c; remote.c), releases what is due,
 * and sleeps with no deadline when nothing is left, until a free wakes it.
 *
 * Started lazily, never at load: by the first malloc slow path that finds
 * HAKMEM holding more than HAK_BG_START_BYTES (smaller programs keep little
 * that the slow paths do not release).  Only a slow path entered from the
 * fast path may start it: pthread_create calls calloc, which must not find
 * one of our locks held or a slow path half done.  Stopped at exit (library
 * destructor); a fork child starts its own when it needs one.  It takes only
 * the pool's and the Huge cache's locks and, one at a time, heaps' locks
 * (free blocks' pages, remote.c), never a loader lock, and has no heap of
 * its own.  HAKMEM_BACKGROUND=0: never started.
 */
#include "types.h"

_Atomic int hak_bg_state;                  /* HAK_BG_*                         */
static _Atomic int bg_word;                /* the thread sleeps on it          */
static _Atomic int bg_idle;                /* asleep with no deadline          */

static void *bg_main(void *arg)
{
    (void)arg;
    while (atomic_load(&hak_bg_state) == HAK_BG_RUNNING) {
        /* idle first, then the look at the pool (under its lock): a free
         * after that look sees idle and wakes us (hak_background_wake). */
        atomic_store(&bg_idle, 1);
        int seq = atomic_load(&bg_word);
        uint64_t wait = hak_pool_release();
        uint64_t huge = hak_huge_release();
        if (huge < wait)
            wait = huge;
        uint64_t blocks = hak_slab_pages_release();
        if (blocks < wait)
            wait = blocks;
        if (wait == HAK_NEVER) {
            hak_os_wait(&bg_word, seq);
        } else {
            atomic_store(&bg_idle, 0);
            /* the coarse clock ticks every few ms: never spin on 0 */
            hak_os_wait_ms(&bg_word, seq, wait < 5 ? 5 : wait);
        }
    }
    atomic_store(&hak_bg_state, HAK_BG_STOPPED);
    hak_os_wake(&hak_bg_state);
    return NULL;
}

void hak_background_start(void)
{
    int off = HAK_BG_OFF;
    if (!hak_option(HAK_OPT_BACKGROUND)) {
        atomic_compare_exchange_strong(&hak_bg_state, &off, HAK_BG_DISABLED);
        return;
    }
    if (!atomic_compare_exchange_strong(&hak_bg_state, &off, HAK_BG_RUNNING))
        return;                         /* another thread got there first */
    if (!hak_os_thread(bg_main))
        atomic_store(&hak_bg_state, HAK_BG_DISABLED);   /* the slow paths go on alone */
}

void hak_background_wake(void)
{
    if (atomic_load_explicit(&bg_idle, memory_order_relaxed) && atomic_exchange(&bg_idle, 0)) {
        atomic_fetch_add(&bg_word, 1);
        hak_os_wake(&bg_word);
    }
}

/* The thread did not survive the fork: the child starts its own on need. */
void hak_background_fork_child(void)
{
    int s = atomic_load(&hak_bg_state);
    if (s == HAK_BG_RUNNING || s == HAK_BG_STOPPING)
        atomic_store(&hak_bg_state, HAK_BG_OFF);
    atomic_store(&bg_idle, 0);
    atomic_store(&bg_word, 0);
}

/* At exit: the thread stops between two turns; waits at most ~1 s for it (a
 * turn is a few madvise calls). */
__attribute__((destructor)) static void bg_stop(void)
{
    int running = HAK_BG_RUNNING;
    if (!atomic_compare_exchange_strong(&hak_bg_state, &running, HAK_BG_STOPPING))
        return;
    atomic_fetch_add(&bg_word, 1);
    hak_os_wake(&bg_word);
    for (int i = 0; i < 100 && atomic_load(&hak_bg_state) == HAK_BG_STOPPING; i++)
        hak_os_wait_ms(&hak_bg_state, HAK_BG_STOPPING, 10);
}
