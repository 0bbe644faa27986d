/*
 * Cross-thread producer/consumer: every block is freed by a thread other
 * than the one that allocated it.
 *
 *   xthread <pairs> <blocks_per_producer> <max_size>
 *
 * Each of <pairs> producers allocates blocks_per_producer blocks of random
 * size, uniform in [8, max_size], tags them and passes them through a bounded
 * single-producer/single-consumer ring (lock-free, C11 atomics) to its own
 * consumer, which checks the tag and frees the block.  A full ring makes the
 * producer wait, an empty one the consumer: they spin briefly, then yield
 * (with more threads than cores, spinning alone would burn whole time slices).
 *
 * A tag mismatch, a NULL or a misaligned block exits with status 2 and one
 * line on stderr.  The clock runs from the release of a start barrier until
 * every thread has been joined.
 *
 * Output: one line on stdout,
 *   result: ops=<mallocs+frees> seconds=<wall> ops_per_sec=<ops/wall>
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MIN_SIZE 8
#define RING_SIZE 1024 /* entries; a power of two */
#define SPINS_BEFORE_YIELD 64

struct entry {
    unsigned char *ptr;
    size_t size;
    uint64_t serial; /* the producer's block number; part of the tag */
};

/* The producer writes `tail`, the consumer writes `head`; each keeps a
 * private copy of the other's index so it reads the shared one only when the
 * copy says the ring is full (or empty).  Separate cache lines throughout. */
struct ring {
    alignas(64) atomic_size_t head;  /* next entry the consumer takes */
    alignas(64) atomic_size_t tail;  /* next entry the producer fills */
    alignas(64) size_t prod_head_cache;
    alignas(64) size_t cons_tail_cache;
    alignas(64) struct entry slots[RING_SIZE];
};

struct pair {
    unsigned id;
    pthread_t producer, consumer;
    struct ring *ring;
    uint64_t produced, consumed; /* written by their threads before they exit */
};

static uint64_t g_blocks;
static size_t g_max_size;
static pthread_barrier_t g_start;

static inline uint64_t block_tag(unsigned pair, uint64_t serial)
{
    return mix64(((uint64_t)pair << 48) ^ serial);
}

static inline void backoff(unsigned *spins)
{
    if (++*spins < SPINS_BEFORE_YIELD) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        *spins = 0;
        sched_yield();
    }
}

static void *producer_main(void *arg)
{
    struct pair *pr = arg;
    struct ring *rg = pr->ring;
    uint64_t rng = mix64(0xB10C5ULL + pr->id) | 1;
    size_t tail = 0;
    char who[40];
    snprintf(who, sizeof who, "xthread: producer %u", pr->id);

    pthread_barrier_wait(&g_start);
    for (uint64_t serial = 0; serial < g_blocks; serial++) {
        size_t size = rng_between(&rng, MIN_SIZE, g_max_size);
        unsigned char *p = malloc(size);
        if (!malloc_ok(who, p, size))
            _exit(2);
        tag_put(p, size, 8, block_tag(pr->id, serial)); /* sizes are at least 8 */

        /* wait for room: the ring is full when tail - head == RING_SIZE */
        unsigned spins = 0;
        while (tail - rg->prod_head_cache == RING_SIZE) {
            rg->prod_head_cache = atomic_load_explicit(&rg->head, memory_order_acquire);
            if (tail - rg->prod_head_cache == RING_SIZE)
                backoff(&spins);
        }
        struct entry *e = &rg->slots[tail & (RING_SIZE - 1)];
        e->ptr = p;
        e->size = size;
        e->serial = serial;
        tail++;
        atomic_store_explicit(&rg->tail, tail, memory_order_release);
    }
    pr->produced = g_blocks;
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct pair *pr = arg;
    struct ring *rg = pr->ring;
    size_t head = 0;
    uint64_t expect = 0;

    pthread_barrier_wait(&g_start);
    while (expect < g_blocks) {
        unsigned spins = 0;
        while (head == rg->cons_tail_cache) {
            rg->cons_tail_cache = atomic_load_explicit(&rg->tail, memory_order_acquire);
            if (head == rg->cons_tail_cache)
                backoff(&spins);
        }
        /* take everything published, then hand the room back at once */
        size_t avail = rg->cons_tail_cache;
        for (; head != avail; head++, expect++) {
            struct entry *e = &rg->slots[head & (RING_SIZE - 1)];
            if (e->serial != expect) {
                fprintf(stderr, "xthread: consumer %u: ring out of order: got block %llu, "
                        "expected %llu\n", pr->id, (unsigned long long)e->serial,
                        (unsigned long long)expect);
                _exit(2);
            }
            const char *bad = tag_mismatch(e->ptr, e->size, 8, block_tag(pr->id, expect));
            if (bad != NULL) {
                fprintf(stderr, "xthread: consumer %u: corrupted block %p (size %zu, block %llu): "
                        "%s\n", pr->id, (void *)e->ptr, e->size, (unsigned long long)expect, bad);
                _exit(2);
            }
            free(e->ptr);
            if ((head & 63) == 63) /* let the producer refill while we work */
                atomic_store_explicit(&rg->head, head + 1, memory_order_release);
        }
        atomic_store_explicit(&rg->head, head, memory_order_release);
    }
    pr->consumed = expect;
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: xthread <pairs> <blocks_per_producer> <max_size>\n"
            "  sizes uniform in [8, max_size]; e.g. xthread 2 2000000 512\n");
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long long pairs, blocks, max_size;
    if (argc != 4 ||
        !parse_ulong(argv[1], 1, 2048, &pairs) ||
        !parse_ulong(argv[2], 1, 1ULL << 40, &blocks) ||
        !parse_ulong(argv[3], MIN_SIZE, 1ULL << 30, &max_size))
        usage();
    g_blocks = blocks;
    g_max_size = (size_t)max_size;

    struct pair *prs = calloc(pairs, sizeof *prs);
    if (prs == NULL) {
        fprintf(stderr, "xthread: cannot allocate %llu pair records\n", pairs);
        return 1;
    }
    for (unsigned i = 0; i < pairs; i++) {
        void *mem = NULL;
        if (posix_memalign(&mem, 64, sizeof(struct ring)) != 0 || mem == NULL) {
            fprintf(stderr, "xthread: cannot allocate ring %u\n", i);
            return 1;
        }
        memset(mem, 0, sizeof(struct ring));
        prs[i].ring = mem;
        atomic_init(&prs[i].ring->head, 0);
        atomic_init(&prs[i].ring->tail, 0);
        prs[i].id = i;
    }

    pthread_barrier_init(&g_start, NULL, (unsigned)(2 * pairs + 1));
    for (unsigned i = 0; i < pairs; i++) {
        int err = pthread_create(&prs[i].consumer, NULL, consumer_main, &prs[i]);
        if (err == 0)
            err = pthread_create(&prs[i].producer, NULL, producer_main, &prs[i]);
        if (err != 0) {
            fprintf(stderr, "xthread: cannot start pair %u: %s\n", i, strerror(err));
            _exit(1);
        }
    }
    pthread_barrier_wait(&g_start);
    double start = now_seconds();
    uint64_t ops = 0;
    for (unsigned i = 0; i < pairs; i++) {
        pthread_join(prs[i].producer, NULL);
        pthread_join(prs[i].consumer, NULL);
        ops += prs[i].produced + prs[i].consumed;
    }
    double elapsed = now_seconds() - start;
    pthread_barrier_destroy(&g_start);
    for (unsigned i = 0; i < pairs; i++)
        free(prs[i].ring);
    free(prs);

    print_result(ops, elapsed, "");
    return 0;
}
