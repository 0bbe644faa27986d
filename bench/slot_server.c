/*
 * Slot server: threads take turns at each other's working sets, so almost
 * every free is of a block another thread allocated.
 *
 *   slot_server <threads> <rounds> <replacements> [<slots>]
 *
 * There are <threads> slot arrays of <slots> entries (default 1000), each
 * filled before the clock starts, by the thread that holds it first, with
 * blocks of random size, uniform in [8, 1000].  In each round every thread
 * replaces <replacements> distinct random slots of the array it holds: it
 * checks the old block's tag, frees it, allocates a new block of random size
 * and tags it.  Then the threads meet at a barrier and pass the arrays on:
 * thread i takes the array thread (i + 1) % threads held.  So the blocks a
 * thread frees were allocated by the array's previous holder (apart from the
 * initial fill, which the first holder allocated itself).  With one thread it
 * is the same loop with no barrier and no passing: every free is local.
 *
 * Replacements are at most <slots>; picking distinct slots (a partial shuffle
 * of the indices) keeps every free of a round on a block of the previous
 * holder, whatever the ratio of replacements to slots.
 *
 * A tag mismatch, a NULL or a misaligned block exits with status 2 and one
 * line on stderr.  The clock runs from the release of a start barrier until
 * every thread has been joined; the final frees are not timed.
 *
 * Output: one line on stdout,
 *   result: ops=<mallocs+frees in the rounds> seconds=<wall> ops_per_sec=<ops/wall>
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define MIN_SIZE 8
#define MAX_SIZE 1000
#define DEFAULT_SLOTS 1000

struct worker {
    pthread_t tid;
    unsigned id;
    uint64_t ops; /* mallocs + frees, written by the worker before it exits */
};

static unsigned g_threads;
static uint64_t g_rounds;
static size_t g_replacements, g_slots;
static struct slot **g_arrays; /* g_arrays[a]: array a, held by one thread per round */
static pthread_barrier_t g_start, g_round;

static inline uint64_t block_tag(size_t array, size_t index, uint64_t serial)
{
    return mix64(((uint64_t)array << 40) ^ ((uint64_t)index << 20) ^ mix64(serial));
}

/* Failures end the run with _exit(2): other threads are still running. */
static inline void fill_slot(struct slot *s, size_t array, size_t index, uint64_t *rng)
{
    size_t size = rng_between(rng, MIN_SIZE, MAX_SIZE);
    slot_fill("slot_server", _exit, s, size);
    tag_put(s->ptr, size, 8, block_tag(array, index, s->serial)); /* sizes are at least 8 */
}

static inline void empty_slot(struct slot *s, size_t array, size_t index)
{
    slot_empty("slot_server", _exit, s, index, 8, block_tag(array, index, s->serial));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = mix64(0x5107ULL + w->id) | 1;
    size_t *order = malloc(g_slots * sizeof *order); /* indices, partially shuffled per round */
    if (order == NULL) {
        fprintf(stderr, "slot_server: thread %u: cannot allocate its index table\n", w->id);
        _exit(2);
    }
    for (size_t i = 0; i < g_slots; i++)
        order[i] = i;

    /* The first holder of each array fills it, so that the next holder's
     * first frees are already of another thread's blocks. */
    for (size_t i = 0; i < g_slots; i++)
        fill_slot(&g_arrays[w->id][i], w->id, i, &rng);

    pthread_barrier_wait(&g_start);
    uint64_t ops = 0;
    for (uint64_t r = 0; r < g_rounds; r++) {
        size_t array = (size_t)((w->id + r) % g_threads);
        struct slot *slots = g_arrays[array];
        for (size_t k = 0; k < g_replacements; k++) {
            size_t j = k + (size_t)(rng_next(&rng) % (g_slots - k));
            size_t index = order[j];
            order[j] = order[k];
            order[k] = index;
            empty_slot(&slots[index], array, index);
            fill_slot(&slots[index], array, index, &rng);
        }
        ops += 2 * g_replacements;
        if (g_threads > 1) /* the barrier also orders the hand-over of the arrays */
            pthread_barrier_wait(&g_round);
    }
    free(order);
    w->ops = ops;
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: slot_server <threads> <rounds> <replacements> [<slots>]\n"
            "  replacements <= slots (default %d); e.g. slot_server 2 3000 500\n",
            DEFAULT_SLOTS);
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long long threads, rounds, replacements, slots = DEFAULT_SLOTS;
    if ((argc != 4 && argc != 5) ||
        !parse_ulong(argv[1], 1, 4096, &threads) ||
        !parse_ulong(argv[2], 1, 1ULL << 40, &rounds) ||
        (argc == 5 && !parse_ulong(argv[4], 1, 1ULL << 24, &slots)) ||
        !parse_ulong(argv[3], 1, slots, &replacements))
        usage();
    g_threads = (unsigned)threads;
    g_rounds = rounds;
    g_replacements = (size_t)replacements;
    g_slots = (size_t)slots;

    struct worker *workers = calloc(threads, sizeof *workers);
    g_arrays = calloc(threads, sizeof *g_arrays);
    if (workers == NULL || g_arrays == NULL) {
        fprintf(stderr, "slot_server: cannot allocate %llu thread records\n", threads);
        return 1;
    }
    for (unsigned a = 0; a < threads; a++) {
        g_arrays[a] = calloc(slots, sizeof(struct slot));
        if (g_arrays[a] == NULL) {
            fprintf(stderr, "slot_server: cannot allocate slot array %u\n", a);
            return 1;
        }
    }

    pthread_barrier_init(&g_start, NULL, g_threads + 1);
    pthread_barrier_init(&g_round, NULL, g_threads);
    for (unsigned i = 0; i < threads; i++) {
        workers[i].id = i;
        int err = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
        if (err != 0) {
            fprintf(stderr, "slot_server: cannot start thread %u: %s\n", i, strerror(err));
            _exit(1);
        }
    }
    pthread_barrier_wait(&g_start);
    double start = now_seconds();
    uint64_t ops = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(workers[i].tid, NULL);
        ops += workers[i].ops;
    }
    double elapsed = now_seconds() - start;
    pthread_barrier_destroy(&g_start);
    pthread_barrier_destroy(&g_round);

    /* What is left, checked like every other free; the threads are gone. */
    for (unsigned a = 0; a < threads; a++) {
        for (size_t i = 0; i < g_slots; i++)
            empty_slot(&g_arrays[a][i], a, i);
        free(g_arrays[a]);
    }
    free(g_arrays);
    free(workers);

    print_result(ops, elapsed, "");
    return 0;
}
