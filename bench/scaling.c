/*
 * Thread scaling with private working sets (no cross-thread frees).
 *
 *   scaling <threads> <ops_per_thread> <max_size>
 *
 * Each thread owns a table of 1000 slots and does ops_per_thread iterations:
 * pick a random slot, free its block (if any), allocate a new one of random
 * size, uniform in [8, max_size], in its place.  At the end it frees what is
 * left.  No block ever crosses threads, so an allocator whose threads do not
 * contend should show ops_per_sec growing with the thread count up to the
 * number of cores, then flat.
 *
 * Every block carries a tag (first 8 bytes plus the tag's top byte in the
 * last byte) checked before it is freed; a mismatch, a NULL or a misaligned
 * block exits with status 2 and one line on stderr.
 *
 * The clock runs from the moment all threads are released from a start
 * barrier until the last one has been joined.
 *
 * Output: one line on stdout,
 *   result: ops=<mallocs+frees, all threads> seconds=<wall> ops_per_sec=<ops/wall>
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define NSLOTS 1000
#define MIN_SIZE 8

struct worker {
    pthread_t tid;
    unsigned id;
    uint64_t ops; /* mallocs + frees, written by the worker before it exits */
    struct slot slots[NSLOTS];
};

static uint64_t g_iterations;
static size_t g_max_size;
static pthread_barrier_t g_start;

static inline uint64_t block_tag(unsigned thread, size_t index, uint64_t serial)
{
    return mix64(((uint64_t)thread << 48) ^ ((uint64_t)index << 32) ^ serial);
}

/* Exits with status 2 unless the block's tag is intact. */
static inline void check_tag(const struct slot *s, unsigned thread, size_t index)
{
    const char *bad = tag_mismatch(s->ptr, s->size, 8, block_tag(thread, index, s->serial));
    if (bad == NULL)
        return;
    fprintf(stderr, "scaling: corrupted block %p (thread %u, slot %zu, size %zu, serial %llu): %s\n",
            (void *)s->ptr, thread, index, s->size, (unsigned long long)s->serial, bad);
    _exit(2); /* other threads are still running: skip atexit handlers */
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = mix64(0x5CA1AB1EULL + w->id) | 1;
    size_t span = g_max_size - MIN_SIZE + 1;
    uint64_t ops = 0;
    char who[40];
    snprintf(who, sizeof who, "scaling: thread %u", w->id);

    pthread_barrier_wait(&g_start);
    for (uint64_t i = 0; i < g_iterations; i++) {
        uint64_t r = rng_next(&rng);
        size_t index = (size_t)((r >> 32) % NSLOTS);
        struct slot *s = &w->slots[index];
        if (s->ptr != NULL) {
            check_tag(s, w->id, index);
            free(s->ptr);
            ops++;
        }
        size_t size = MIN_SIZE + (size_t)((r & 0xFFFFFFFFu) % span);
        slot_fill(who, _exit, s, size);
        tag_put(s->ptr, size, 8, block_tag(w->id, index, s->serial)); /* size >= 8 */
        ops++;
    }
    for (size_t index = 0; index < NSLOTS; index++) {
        struct slot *s = &w->slots[index];
        if (s->ptr != NULL) {
            check_tag(s, w->id, index);
            free(s->ptr);
            s->ptr = NULL;
            ops++;
        }
    }
    w->ops = ops;
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: scaling <threads> <ops_per_thread> <max_size>\n"
            "  each thread churns 1000 private slots, sizes uniform in [8, max_size];\n"
            "  e.g. scaling 4 5000000 1024\n");
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long long threads, iterations, max_size;
    if (argc != 4 ||
        !parse_ulong(argv[1], 1, 4096, &threads) ||
        !parse_ulong(argv[2], 1, 1ULL << 40, &iterations) ||
        !parse_ulong(argv[3], MIN_SIZE, 1ULL << 30, &max_size))
        usage();
    g_iterations = iterations;
    g_max_size = (size_t)max_size;

    /* calloc: each worker record starts with empty slots */
    struct worker *workers = calloc(threads, sizeof *workers);
    if (workers == NULL) {
        fprintf(stderr, "scaling: cannot allocate %llu worker records\n", threads);
        return 1;
    }
    /* the main thread waits at the barrier too, so the clock starts when
     * every worker exists */
    pthread_barrier_init(&g_start, NULL, (unsigned)threads + 1);
    for (unsigned t = 0; t < threads; t++) {
        workers[t].id = t;
        int err = pthread_create(&workers[t].tid, NULL, worker_main, &workers[t]);
        if (err != 0) {
            fprintf(stderr, "scaling: cannot start thread %u: %s\n", t, strerror(err));
            _exit(1);
        }
    }
    pthread_barrier_wait(&g_start);
    double start = now_seconds();
    uint64_t ops = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(workers[t].tid, NULL);
        ops += workers[t].ops;
    }
    double elapsed = now_seconds() - start;
    pthread_barrier_destroy(&g_start);
    free(workers);

    print_result(ops, elapsed, "");
    return 0;
}
