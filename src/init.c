/* Process initialisation and fork.
 *
 * HAKMEM initialises on first use (or from its constructor, whichever comes
 * first).  The allocator works before initialisation ends: settings have
 * their defaults and no structure needs setting up, so a malloc made by
 * pthread_key_create or pthread_atfork during initialisation just works. */
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include "types.h"

/* The secret in every free mark.  Until initialisation reads the kernel's
 * random bytes it is a fixed odd constant; blocks freed before that simply
 * stop looking free afterwards, which is safe. */
uintptr_t hak_free_key = 0x9e3779b97f4a7c15u;
bool hak_check_mode;
bool hak_slow_mode;

enum { INIT_NONE, INIT_RUNNING, INIT_DONE };
static _Atomic int init_state;
static _Atomic(void *) init_thread;
static __thread char init_marker;        /* its address names this thread */

/* Fork: every lock is taken before, so that the child never inherits one
 * held by a thread that does not exist there. */
static void fork_prepare(void)
{
    hak_profile_fork_prepare();
    hak_heap_fork_prepare();
    hak_lock(&hak_own_lock);
    hak_lock(&hak_rec_lock);
    hak_pool_lock_all();
    hak_lock(&hak_huge_lock);
    hak_band_lock_all();
    hak_lock(&hak_zero_lock);
}

static void fork_parent(void)
{
    hak_unlock(&hak_zero_lock);
    hak_band_unlock_all(false);
    hak_unlock(&hak_huge_lock);
    hak_pool_unlock_all(false);
    hak_unlock(&hak_rec_lock);
    hak_unlock(&hak_own_lock);
    hak_heap_fork_parent();
    hak_profile_fork_parent();
}

static void fork_child(void)
{
    hak_lock_reset(&hak_zero_lock);
    hak_band_unlock_all(true);
    hak_lock_reset(&hak_huge_lock);
    hak_pool_unlock_all(true);
    hak_lock_reset(&hak_rec_lock);
    hak_heap_fork_child();
    hak_own_fork_child(&hak_tls);
    hak_background_fork_child();
    hak_profile_fork_child();
}

static void init_slow(void)
{
    int expected = INIT_NONE;
    if (atomic_compare_exchange_strong(&init_state, &expected, INIT_RUNNING)) {
        atomic_store(&init_thread, (void *)&init_marker);
        hak_options_init();
        hak_stats_init();
        hak_check_mode = hak_options[HAK_OPT_CHECK] != 0;
        hak_profile_init();
        hak_slow_mode = hak_check_mode || hak_profile_on;
        hak_os_fault_init();
        const void *rnd = (const void *)getauxval(AT_RANDOM);  /* 16 bytes, unaligned */
        if (rnd) {
            uintptr_t key;
            memcpy(&key, rnd, sizeof key);
            hak_free_key = key | 1;
        }
        hak_heap_process_init();
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        atomic_store_explicit(&init_state, INIT_DONE, memory_order_release);
        return;
    }
    if (atomic_load(&init_thread) == (void *)&init_marker)
        return;                          /* re-entered from our own init */
    while (atomic_load_explicit(&init_state, memory_order_acquire) != INIT_DONE)
        hak_os_yield();
}

void hak_init(void)
{
    if (HAK_UNLIKELY(atomic_load_explicit(&init_state, memory_order_acquire) != INIT_DONE))
        init_slow();
}

__attribute__((constructor)) static void init_at_load(void) { hak_init(); }
