/*
 * Random mixed-size churn on a small working set, single thread.
 *
 *   random_mixed <iterations> <size> <seed>
 *
 * A table of 256 slots starts empty.  Each iteration picks a random slot,
 * frees the block in it (if there is one) and allocates a new block of a
 * random size, uniform in [max(1, size/2), size], in its place.  At the end
 * every remaining block is freed.  With 256 live blocks the working set stays
 * in the cache, so the figure is dominated by the allocator's fast paths.
 *
 * Every block carries a tag (first 8 bytes, fewer for tiny blocks, and the
 * top byte of the tag in the last byte) that is checked before it is freed;
 * a mismatch, a NULL from malloc or a misaligned block exits with status 2
 * and one line on stderr.
 *
 * Output: one line on stdout,
 *   result: ops=<mallocs+frees> seconds=<wall> ops_per_sec=<ops/wall>
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define NSLOTS 256

static uint64_t g_seed;

static inline uint64_t block_tag(size_t index, uint64_t serial)
{
    return mix64(((uint64_t)index << 40) ^ serial ^ g_seed);
}

static inline void fill_slot(struct slot *s, size_t index, size_t size)
{
    slot_fill("random_mixed", exit, s, size);
    tag_put(s->ptr, size, head_len(size), block_tag(index, s->serial));
}

static inline void empty_slot(struct slot *s, size_t index)
{
    slot_empty("random_mixed", exit, s, index, head_len(s->size), block_tag(index, s->serial));
}

static void usage(void)
{
    fprintf(stderr,
            "usage: random_mixed <iterations> <size> <seed>\n"
            "  sizes are uniform in [max(1, size/2), size]; e.g. random_mixed 10000000 256 42\n");
    exit(1);
}

int main(int argc, char **argv)
{
    unsigned long long iterations, size, seed;
    if (argc != 4 ||
        !parse_ulong(argv[1], 1, 1ULL << 40, &iterations) ||
        !parse_ulong(argv[2], 1, 1ULL << 32, &size) ||
        !parse_ulong(argv[3], 0, UINT64_MAX, &seed))
        usage();
    g_seed = seed;

    size_t min_size = size / 2 > 0 ? (size_t)(size / 2) : 1;
    size_t span = (size_t)size - min_size + 1;
    static struct slot slots[NSLOTS];
    uint64_t rng = mix64(seed) | 1; /* never zero: xorshift would stick */
    uint64_t mallocs = 0, frees = 0;

    double start = now_seconds();
    for (unsigned long long i = 0; i < iterations; i++) {
        uint64_t r = rng_next(&rng);
        size_t index = (size_t)(r & (NSLOTS - 1));
        struct slot *s = &slots[index];
        if (s->ptr != NULL) {
            empty_slot(s, index);
            frees++;
        }
        /* the high bits pick the size; the low bits picked the slot */
        fill_slot(s, index, min_size + (size_t)((r >> 16) % span));
        mallocs++;
    }
    for (size_t index = 0; index < NSLOTS; index++) {
        if (slots[index].ptr != NULL) {
            empty_slot(&slots[index], index);
            frees++;
        }
    }
    double elapsed = now_seconds() - start;

    print_result(mallocs + frees, elapsed, "");
    return 0;
}
