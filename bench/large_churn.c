/*
 * large_churn: 16 live buffers of 64 KiB .. 8 MiB (size classes by doubling,
 * uniform within one), one replaced at a time and written on every page, as
 * a program that keeps a few big work buffers does.  What it measures is how
 * much freed Large and Huge memory is reused without faulting it in again;
 * with several threads (each with its own 16 buffers, the replacements
 * shared out among them), also what one thread's Large blocks cost another.
 *
 *   large_churn [replacements] [seed] [threads]
 *   result: ops=<mallocs+frees> seconds=<wall> ops_per_sec=... faults=<minor>
 */
#include <pthread.h>

#include "common.h"

struct churner {
    pthread_t tid;
    unsigned long long n;
    uint64_t seed, ops;
    int failed;
};

static void *churn(void *arg)
{
    struct churner *c = arg;
    uint64_t rng = mix64(c->seed) | 1;
    char *live[16] = { 0 };
    for (unsigned long long i = 0; i < c->n; i++) {
        unsigned k = (unsigned)(rng_next(&rng) % 16);
        unsigned sh = 16 + (unsigned)(rng_next(&rng) % 7);     /* 64 KiB .. 4 MiB, doubled */
        size_t size = ((size_t)1 << sh) + (size_t)(rng_next(&rng) % ((size_t)1 << sh));
        if (live[k]) {
            free(live[k]);
            c->ops++;
        }
        live[k] = malloc(size);
        if (!malloc_ok("large_churn", live[k], size)) {
            c->failed = 1;
            return NULL;
        }
        c->ops++;
        for (size_t o = 0; o < size; o += 4096)
            live[k][o] = (char)i;
    }
    for (unsigned k = 0; k < 16; k++)
        free(live[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long long n = 100000, seed = 7, threads = 1;
    if ((argc > 1 && !parse_ulong(argv[1], 1, 1ull << 40, &n)) ||
        (argc > 2 && !parse_ulong(argv[2], 1, ~0ull, &seed)) ||
        (argc > 3 && !parse_ulong(argv[3], 1, 256, &threads))) {
        fprintf(stderr, "usage: large_churn [replacements] [seed] [threads]\n");
        return 2;
    }
    struct churner c[256];
    long faults0 = minor_faults_now();
    double t0 = now_seconds();
    for (unsigned i = 0; i < threads; i++) {
        c[i] = (struct churner){ .n = n / threads + (i < n % threads), .seed = seed + i };
        if (threads == 1)
            churn(&c[i]);       /* one thread: the program's own, as before */
        else if (pthread_create(&c[i].tid, NULL, churn, &c[i]) != 0) {
            fprintf(stderr, "large_churn: pthread_create failed\n");
            return 2;
        }
    }
    uint64_t ops = 0;
    for (unsigned i = 0; i < threads; i++) {
        if (threads > 1)
            pthread_join(c[i].tid, NULL);
        if (c[i].failed)
            return 2;
        ops += c[i].ops;
    }
    double t = now_seconds() - t0;
    print_result_faults(ops, t, faults0);
    return 0;
}
