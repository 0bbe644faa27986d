/*
 * One malloc+free pair, repeated: the allocator's fast path and nothing else,
 * for counting instructions under callgrind (scripts/callgrind_pair.sh).
 *
 *   pair <n> <size>
 *
 * A warm-up of WARMUP pairs first (so that thread caches and size classes are
 * set up), then pair_loop: n times p = malloc(size); free(p).  pair_loop is a
 * function of its own that is never inlined or cloned, so that
 * `valgrind --tool=callgrind --toggle-collect=pair_loop` counts exactly the
 * measured loop.  A NULL or misaligned block in the warm-up exits with
 * status 2 and one line on stderr.  No output otherwise.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define WARMUP 4096

/* noipa: no inlining and no constprop/isra clone whose name would differ. */
#if defined(__clang__)
#define MEASURED __attribute__((noinline))
#else
#define MEASURED __attribute__((noipa))
#endif

MEASURED void pair_loop(unsigned long long n, size_t size)
{
    for (unsigned long long i = 0; i < n; i++) {
        void *p = malloc(size);
        /* p escapes into the asm, so the compiler may not drop the pair;
         * the asm itself emits no instruction. */
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
}

int main(int argc, char **argv)
{
    unsigned long long n, size;
    if (argc != 3 || !parse_ulong(argv[1], 0, 1ULL << 40, &n) ||
        !parse_ulong(argv[2], 1, 1ULL << 30, &size)) {
        fprintf(stderr, "usage: pair <n> <size>   e.g. pair 100000 64\n");
        return 1;
    }
    for (int i = 0; i < WARMUP; i++) {
        void *p = malloc(size);
        if (!malloc_ok("pair", p, size))
            return 2;
        free(p);
    }
    pair_loop(n, size);
    return 0;
}
