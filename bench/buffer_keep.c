/*
 * buffer_keep: a big scratch buffer per item, and a smaller result kept, as
 * a program that reads each input into a buffer of up to a few MiB, builds
 * a result of a tenth of that size or so, keeps the result for a while and
 * frees the buffer (a decoder, a parser, a compressor).  Each step mallocs
 * a buffer of a size log-uniform in [<min>, <max>], writes every page of it,
 * mallocs a result of a size log-uniform in [<min>/8, <max>/8], copies the
 * buffer's head into it, frees the buffer, and puts the result in a ring of
 * <keep> slots, freeing the result it replaces.  What it measures is whether
 * the freed buffer's memory serves the next buffer while results take some
 * of it (freed pages split by the results kept, or not).
 *
 *   buffer_keep <steps> <keep> <min> <max> <seed>
 *   result: ops=<mallocs+frees> seconds=<wall> ops_per_sec=... faults=<minor>
 *
 * A NULL, or a result whose bytes changed while it was kept, exits with
 * status 2 and one line on stderr.
 */

#include "common.h"

#define MAX_KEEP 65536
#define PAGE 4096

static size_t log_uniform(uint64_t *rng, size_t lo, size_t hi)
{
    unsigned span = 0;
    while ((lo << (span + 1)) <= hi)
        span++;
    size_t band = lo << (rng_next(rng) % (span + 1));
    size_t n = band + (size_t)(rng_next(rng) % band);
    return n > hi ? hi : n;
}

int main(int argc, char **argv)
{
    unsigned long long steps, keep, min, max, seed;
    if (argc != 6 || !parse_ulong(argv[1], 1, 1ull << 40, &steps) ||
        !parse_ulong(argv[2], 1, MAX_KEEP, &keep) || !parse_ulong(argv[3], 64, 1ull << 34, &min) ||
        !parse_ulong(argv[4], 64, 1ull << 34, &max) || min > max ||
        !parse_ulong(argv[5], 1, ~0ull, &seed)) {
        fprintf(stderr, "usage: buffer_keep <steps> <keep 1-%d> <min bytes> <max bytes> <seed>\n",
                MAX_KEEP);
        return 2;
    }
    static struct { unsigned char *p; size_t n; unsigned char fill; } ring[MAX_KEEP];
    uint64_t rng = mix64(seed) | 1, ops = 0;
    long faults0 = minor_faults_now();
    double t0 = now_seconds();
    for (unsigned long long s = 0; s < steps; s++) {
        size_t n = log_uniform(&rng, min, max);
        unsigned char *buf = malloc(n);
        if (!malloc_ok("buffer_keep", buf, n))
            return 2;
        unsigned char fill = (unsigned char)(s * 7 + 1);
        for (size_t i = 0; i < n; i += PAGE)
            buf[i] = fill;
        buf[n - 1] = fill;
        size_t rn = log_uniform(&rng, min / 8, max / 8);
        unsigned char *res = malloc(rn);
        if (!malloc_ok("buffer_keep", res, rn))
            return 2;
        memset(res, fill, rn);
        res[0] = buf[0];
        free(buf);
        ops += 3;
        unsigned slot = (unsigned)(s % keep);
        if (ring[slot].p != NULL) {
            if (ring[slot].p[0] != ring[slot].fill || ring[slot].p[ring[slot].n - 1] != ring[slot].fill) {
                fprintf(stderr, "buffer_keep: result %p (%zu bytes) changed while kept\n",
                        (void *)ring[slot].p, ring[slot].n);
                return 2;
            }
            free(ring[slot].p);
            ops++;
        }
        ring[slot].p = res;
        ring[slot].n = rn;
        ring[slot].fill = fill;
    }
    for (unsigned i = 0; i < keep; i++)
        free(ring[i].p);
    double secs = now_seconds() - t0;
    print_result_faults(ops, secs, faults0);
    return 0;
}
