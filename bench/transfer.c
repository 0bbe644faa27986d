/*
 * Transfer: many threads hand blocks to each other, and the threads are
 * replaced in waves while the blocks they allocated are still in flight.
 *
 *   transfer <threads> <waves> <blocks_per_thread>
 *
 * There are <threads> mailboxes, one per thread index.  Each wave starts
 * <threads> threads, thread i serving mailbox i.  A thread allocates
 * blocks_per_thread blocks (sizes uniform in [8, 1000], one in 16 uniform in
 * [1001, 16384]), tags each and sends it to a random other mailbox; every 64
 * blocks, and once more before it exits, it empties its own mailbox, checking
 * and freeing what it finds.  When all threads of a wave have exited, the next
 * wave starts: blocks still in a mailbox then, or sent after its owner's last
 * look, are freed by the next wave's thread of that index.  So blocks
 * routinely outlive the thread that allocated them, and frees are almost all
 * of another thread's blocks.  After the last wave the main thread empties
 * the mailboxes.
 *
 * Blocks travel in batches of up to 32 per destination: the batch record
 * (malloc'ed by the sender, freed by the receiver) is pushed on the mailbox's
 * lock-free stack, and the receiver takes the whole stack with one exchange.
 * The exchange is what makes the push's compare-and-swap safe without tags:
 * no record is popped alone, so none can come back to the top under a
 * pusher's feet (no ABA).
 *
 * A tag mismatch, a NULL or a misaligned block, or a count of frees that does
 * not match the count of mallocs at the end exits with status 2 and one line
 * on stderr.  The clock runs from the first wave's creation until the last
 * mailbox is empty.
 *
 * Output: one line on stdout,
 *   result: ops=<mallocs+frees of the blocks> seconds=<wall> ops_per_sec=<ops/wall>
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define MIN_SIZE 8
#define SMALL_MAX 1000
#define LARGE_MAX 16384
#define BATCH_SIZE 32
#define DRAIN_EVERY 64 /* blocks sent between two looks at the own mailbox */
#define MAX_THREADS 1024

/* Where a block came from; its tag is computed from this, not stored. */
struct parcel {
    unsigned char *ptr;
    uint32_t size;
    uint32_t sender; /* thread index */
    uint32_t wave;
    uint32_t serial; /* the sender's block number in its wave */
};

struct batch {
    struct batch *next; /* the mailbox stack's link */
    unsigned count;
    struct parcel parcels[BATCH_SIZE];
};

struct mailbox {
    alignas(64) _Atomic(struct batch *) top;
};

struct worker {
    pthread_t tid;
    uint32_t index, wave;
    uint64_t sent, freed; /* written by the worker before it exits */
};

static unsigned g_threads;
static uint64_t g_blocks;
static struct mailbox *g_mailboxes;

static inline uint64_t parcel_tag(const struct parcel *p)
{
    return mix64(((uint64_t)p->wave << 44) ^ ((uint64_t)p->sender << 32) ^ p->serial);
}

static inline size_t random_size(uint64_t *rng)
{
    if ((rng_next(rng) & 15) == 0)
        return rng_between(rng, SMALL_MAX + 1, LARGE_MAX);
    return rng_between(rng, MIN_SIZE, SMALL_MAX);
}

static void post(struct mailbox *box, struct batch *b)
{
    struct batch *top = atomic_load_explicit(&box->top, memory_order_relaxed);
    do
        b->next = top;
    while (!atomic_compare_exchange_weak_explicit(&box->top, &top, b, memory_order_release,
                                                  memory_order_relaxed));
}

/* Checks and frees every block in the mailbox; returns how many.  The
 * caller is the mailbox's only reader at this time. */
static uint64_t empty_mailbox(struct mailbox *box, const char *who)
{
    struct batch *b = atomic_exchange_explicit(&box->top, NULL, memory_order_acquire);
    uint64_t freed = 0;
    while (b != NULL) {
        struct batch *next = b->next;
        for (unsigned i = 0; i < b->count; i++) {
            const struct parcel *p = &b->parcels[i];
            const char *bad = tag_mismatch(p->ptr, p->size, 8, parcel_tag(p));
            if (bad != NULL) {
                fprintf(stderr, "transfer: %s: corrupted block %p (size %u, from thread %u of "
                        "wave %u, block %u): %s\n", who, (void *)p->ptr, p->size, p->sender,
                        p->wave, p->serial, bad);
                _exit(2);
            }
            free(p->ptr);
        }
        freed += b->count;
        free(b);
        b = next;
    }
    return freed;
}

static struct batch *new_batch(const char *who)
{
    struct batch *b = malloc(sizeof *b);
    if (!malloc_ok(who, b, sizeof *b))
        _exit(2);
    b->count = 0;
    return b;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = mix64(((uint64_t)w->wave << 32) ^ w->index ^ 0x7A45F3ULL) | 1;
    char who[48];
    snprintf(who, sizeof who, "thread %u of wave %u", w->index, w->wave);
    struct batch *pending[MAX_THREADS] = { 0 }; /* per destination; NULL until a block */
    struct mailbox *own = &g_mailboxes[w->index];

    uint64_t freed = empty_mailbox(own, who); /* what the previous wave left */
    for (uint64_t n = 0; n < g_blocks; n++) {
        size_t size = random_size(&rng);
        unsigned char *ptr = malloc(size);
        if (!malloc_ok(who, ptr, size))
            _exit(2);
        unsigned to = (unsigned)(rng_next(&rng) % (g_threads - 1));
        to += to >= w->index; /* any mailbox but the own one */
        struct batch *b = pending[to];
        if (b == NULL)
            b = pending[to] = new_batch(who);
        struct parcel *p = &b->parcels[b->count++];
        *p = (struct parcel){ ptr, (uint32_t)size, w->index, w->wave, (uint32_t)n };
        tag_put(ptr, size, 8, parcel_tag(p)); /* sizes are at least 8 */
        if (b->count == BATCH_SIZE) {
            post(&g_mailboxes[to], b);
            pending[to] = NULL;
        }
        if (n % DRAIN_EVERY == DRAIN_EVERY - 1)
            freed += empty_mailbox(own, who);
    }
    for (unsigned to = 0; to < g_threads; to++)
        if (pending[to] != NULL)
            post(&g_mailboxes[to], pending[to]);
    freed += empty_mailbox(own, who);
    w->sent = g_blocks;
    w->freed = freed;
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: transfer <threads> <waves> <blocks_per_thread>\n"
            "  threads >= 2; e.g. transfer 32 100 5000\n");
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long long threads, waves, blocks;
    if (argc != 4 ||
        !parse_ulong(argv[1], 2, MAX_THREADS, &threads) ||
        !parse_ulong(argv[2], 1, UINT32_MAX, &waves) ||
        !parse_ulong(argv[3], 1, UINT32_MAX, &blocks))
        usage();
    g_threads = (unsigned)threads;
    g_blocks = blocks;

    struct worker *workers = calloc(threads, sizeof *workers);
    void *boxes = NULL;
    if (workers == NULL ||
        posix_memalign(&boxes, 64, threads * sizeof(struct mailbox)) != 0 || boxes == NULL) {
        fprintf(stderr, "transfer: cannot allocate %llu thread records\n", threads);
        return 1;
    }
    g_mailboxes = boxes;
    for (unsigned i = 0; i < threads; i++)
        atomic_init(&g_mailboxes[i].top, NULL);

    double start = now_seconds();
    uint64_t sent = 0, freed = 0;
    for (uint32_t wave = 0; wave < waves; wave++) {
        for (unsigned i = 0; i < threads; i++) {
            workers[i] = (struct worker){ .index = i, .wave = wave };
            int err = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
            if (err != 0) {
                fprintf(stderr, "transfer: cannot start thread %u of wave %u: %s\n", i, wave,
                        strerror(err));
                _exit(1);
            }
        }
        for (unsigned i = 0; i < threads; i++) {
            pthread_join(workers[i].tid, NULL);
            sent += workers[i].sent;
            freed += workers[i].freed;
        }
    }
    for (unsigned i = 0; i < threads; i++)
        freed += empty_mailbox(&g_mailboxes[i], "main thread");
    double elapsed = now_seconds() - start;

    if (freed != sent) {
        fprintf(stderr, "transfer: %llu blocks sent but %llu freed\n", (unsigned long long)sent,
                (unsigned long long)freed);
        return 2;
    }
    free(g_mailboxes);
    free(workers);
    print_result(sent + freed, elapsed, "");
    return 0;
}
