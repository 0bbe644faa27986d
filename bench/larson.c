/*
 * Larson server benchmark (after Larson & Krishnan, "Memory Allocation for
 * Long-Running Server Applications"), written for HAKMEM.
 *
 *   larson <seconds> <min_size> <max_size> <chunks_per_thread> <rounds> <seed> <threads>
 *
 * The main thread allocates chunks_per_thread * threads blocks and gives each
 * worker a slice of them.  A worker does `rounds` passes of chunks_per_thread
 * operations (free a random block of its slice, malloc a new one of random
 * size in its place), then hands the slice to a freshly created successor
 * thread and exits.  So blocks are routinely freed by a thread other than the
 * one that allocated them, and threads come and go all the time.
 *
 * Differences from the classic Linux port:
 *  - successors are created detached, so finished threads do not pile up
 *    until the process runs out of mappings;
 *  - a failed pthread_create is retried, then reported, and the run exits
 *    non-zero (the thread carries on with the slice itself meanwhile);
 *  - every block carries a tag that is checked before it is freed, and every
 *    malloc result is checked for NULL and alignment (exit 2 on failure).
 *
 * Output: one line on stdout,
 *   Throughput = <N> operations per second, relative time: <T>s.
 * N counts mallocs plus frees by the workers per elapsed second; T is
 * 1e9 / N, the figure the classic program prints as "relative time".
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* One chain of threads working on one slice.  Only the chain's current
 * thread touches it; pthread_create orders the hand-off to the successor. */
struct chain {
    int id;
    struct slot *slots;
    size_t first_index; /* global index of slots[0], so tags differ across slices */
    uint64_t rng;
    uint64_t mallocs, frees;
    uint64_t threads_started;
    uint64_t spawn_failures; /* successors that could not be created */
};

static size_t g_min_size, g_max_size, g_chunks;
static long g_rounds;
static uint64_t g_seed;

static atomic_bool g_stop;
static atomic_int g_live_chains;     /* chains whose last thread has not finished */
static atomic_bool g_spawn_failed;   /* a pthread_create failed for good */
static pthread_attr_t g_detached;

static inline size_t random_size(uint64_t *rng)
{
    return rng_between(rng, g_min_size, g_max_size);
}

static inline uint64_t block_tag(size_t index, uint64_t serial)
{
    return mix64(((uint64_t)index << 32) ^ serial ^ g_seed);
}

/* Failures end the run with _exit(2): other threads are still running, so
 * atexit handlers are skipped. */
static inline void fill_slot(struct slot *s, size_t index, size_t size)
{
    slot_fill("larson", _exit, s, size);
    tag_put(s->ptr, size, head_len(size), block_tag(index, s->serial));
}

static inline void empty_slot(struct slot *s, size_t index)
{
    slot_empty("larson", _exit, s, index, head_len(s->size), block_tag(index, s->serial));
}

/* Returns false when the stop flag cut the passes short. */
static bool run_passes(struct chain *c)
{
    uint64_t mallocs = 0, frees = 0;
    bool finished = true;
    for (long r = 0; r < g_rounds && finished; r++) {
        for (size_t op = 0; op < g_chunks; op++) {
            if (atomic_load_explicit(&g_stop, memory_order_relaxed)) {
                finished = false;
                break;
            }
            size_t victim = (size_t)(rng_next(&c->rng) % g_chunks);
            struct slot *s = &c->slots[victim];
            empty_slot(s, c->first_index + victim);
            frees++;
            fill_slot(s, c->first_index + victim, random_size(&c->rng));
            mallocs++;
        }
    }
    c->mallocs += mallocs;
    c->frees += frees;
    return finished;
}

static void *worker(void *arg);

/* Start the successor for chain c.  Retries because a burst of exiting
 * threads can briefly hold the resources a new one needs. */
static bool start_successor(struct chain *c)
{
    int err = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        pthread_t t;
        err = pthread_create(&t, &g_detached, worker, c);
        if (err == 0)
            return true;
        if (atomic_load_explicit(&g_stop, memory_order_relaxed))
            return false; /* the run is over anyway; nothing is lost */
        struct timespec pause = { 0, 1000000L * (attempt + 1) };
        nanosleep(&pause, NULL);
    }
    if (c->spawn_failures++ == 0) /* report once per chain, count the rest */
        fprintf(stderr, "larson: chain %d: pthread_create failed 10 times (%s) after %llu threads; "
                "continuing the chain in the current thread\n",
                c->id, strerror(err), (unsigned long long)c->threads_started);
    atomic_store(&g_spawn_failed, true);
    return false;
}

static void *worker(void *arg)
{
    struct chain *c = arg;
    c->threads_started++;
    for (;;) {
        if (!run_passes(c) || atomic_load_explicit(&g_stop, memory_order_relaxed))
            break;
        if (start_successor(c))
            return NULL; /* the successor owns the chain now */
        if (atomic_load_explicit(&g_stop, memory_order_relaxed))
            break;
        /* spawning failed: keep the slice busy here rather than drop it */
    }
    /* Last use of the chain by this thread: release publishes the counters. */
    atomic_fetch_sub_explicit(&g_live_chains, 1, memory_order_release);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: larson <seconds> <min_size> <max_size> <chunks_per_thread> <rounds> <seed> <threads>\n"
            "  e.g. larson 10 8 128 1024 1 12345 4   or   larson 5 8 1000 5000 100 4141 4\n");
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long long seconds, min_size, max_size, chunks, rounds, seed, threads;
    if (argc != 8 ||
        !parse_ulong(argv[1], 1, 1000000, &seconds) ||
        !parse_ulong(argv[2], 1, SIZE_MAX / 2, &min_size) ||
        !parse_ulong(argv[3], 1, SIZE_MAX / 2, &max_size) ||
        !parse_ulong(argv[4], 1, 1ULL << 30, &chunks) ||
        !parse_ulong(argv[5], 1, LONG_MAX, &rounds) ||
        !parse_ulong(argv[6], 0, ULLONG_MAX, &seed) ||
        !parse_ulong(argv[7], 1, 100000, &threads) ||
        max_size < min_size)
        usage();

    g_min_size = min_size;
    g_max_size = max_size;
    g_chunks = chunks;
    g_rounds = (long)rounds;
    g_seed = seed;

    size_t nslots = (size_t)chunks * threads;
    struct slot *slots = calloc(nslots, sizeof *slots);
    struct chain *chains = calloc(threads, sizeof *chains);
    if (slots == NULL || chains == NULL) {
        fprintf(stderr, "larson: cannot allocate %zu slots\n", nslots);
        return 1;
    }

    /* The main thread allocates every initial block, so the workers' first
     * frees are all of memory another thread allocated. */
    uint64_t rng = mix64(seed) | 1;
    for (size_t i = 0; i < nslots; i++)
        fill_slot(&slots[i], i, random_size(&rng));

    pthread_attr_init(&g_detached);
    pthread_attr_setdetachstate(&g_detached, PTHREAD_CREATE_DETACHED);

    atomic_store(&g_live_chains, (int)threads);
    double start = now_seconds();
    for (size_t t = 0; t < threads; t++) {
        struct chain *c = &chains[t];
        c->id = (int)t;
        c->slots = &slots[t * chunks];
        c->first_index = t * chunks;
        c->rng = mix64(seed ^ mix64(t + 1)) | 1; /* never zero: xorshift would stick */
        pthread_t tid;
        int err = pthread_create(&tid, &g_detached, worker, c);
        if (err != 0) {
            fprintf(stderr, "larson: cannot start worker %zu: %s\n", t, strerror(err));
            _exit(1);
        }
    }

    struct timespec run = { (time_t)seconds, 0 };
    while (nanosleep(&run, &run) != 0 && errno == EINTR)
        ;
    atomic_store(&g_stop, true);

    /* Wait on the live-chain count rather than joins: the threads are
     * detached and the current one of each chain is not known. */
    double stop_at = now_seconds();
    while (atomic_load_explicit(&g_live_chains, memory_order_acquire) > 0) {
        if (now_seconds() - stop_at > 10.0) {
            fprintf(stderr, "larson: %d of %llu chains still running 10 s after stop\n",
                    atomic_load(&g_live_chains), threads);
            _exit(3);
        }
        struct timespec tick = { 0, 100000 };
        nanosleep(&tick, NULL);
    }
    double elapsed = now_seconds() - start;

    uint64_t ops = 0, spawned = 0, spawn_failures = 0;
    for (size_t t = 0; t < threads; t++) {
        ops += chains[t].mallocs + chains[t].frees;
        spawned += chains[t].threads_started;
        spawn_failures += chains[t].spawn_failures;
    }
    for (size_t i = 0; i < nslots; i++)
        empty_slot(&slots[i], i);
    free(slots);
    free(chains);

    double throughput = ops / elapsed;
    printf("Throughput = %.0f operations per second, relative time: %.3fs.\n",
           throughput, throughput > 0 ? 1e9 / throughput : 0.0);
    if (getenv("LARSON_VERBOSE"))
        fprintf(stderr, "larson: %llu ops, %llu threads, %.3f s\n",
                (unsigned long long)ops, (unsigned long long)spawned, elapsed);

    if (atomic_load(&g_spawn_failed)) {
        fprintf(stderr, "larson: %llu successor threads could not be created; failing the run\n",
                (unsigned long long)spawn_failures);
        return 1;
    }
    return 0;
}
