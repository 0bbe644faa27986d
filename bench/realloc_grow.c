/*
 * realloc_grow: buffers grown by realloc a few KiB at a time, as a program
 * reading input of unknown length (a read loop appending what each read()
 * returned) or building a long string does.  Each round grows <buffers>
 * buffers side by side (one step each in turn, so each buffer's neighbours
 * are the others) to final sizes log-uniform in [1 KiB, <max>], by steps
 * uniform in [1, 8] KiB, writing every new byte; then it checks each
 * buffer's first and last bytes and frees them.  What it measures is whether
 * growing a buffer copies it or faults its pages in again, round after round.
 *
 *   realloc_grow <rounds> <buffers> <max> <seed>
 *   result: ops=<reallocs+frees> seconds=<wall> ops_per_sec=... faults=<minor>
 *
 * A NULL, or a buffer whose bytes did not survive a move, exits with status 2
 * and one line on stderr.
 */

#include "common.h"

#define MAX_BUFFERS 64

struct buffer {
    unsigned char *p;
    size_t len, final;
    unsigned char fill;
};

int main(int argc, char **argv)
{
    unsigned long long rounds = 200, nbuf = 4, max = 8ull << 20, seed = 42;
    if (argc != 5 || !parse_ulong(argv[1], 1, 1ull << 40, &rounds) ||
        !parse_ulong(argv[2], 1, MAX_BUFFERS, &nbuf) ||
        !parse_ulong(argv[3], 1024, 1ull << 36, &max) || !parse_ulong(argv[4], 1, ~0ull, &seed)) {
        fprintf(stderr, "usage: realloc_grow <rounds> <buffers 1-%d> <max bytes> <seed>\n",
                MAX_BUFFERS);
        return 2;
    }
    uint64_t rng = mix64(seed) | 1, ops = 0;
    struct buffer b[MAX_BUFFERS];
    unsigned log_span = 0;
    while (((unsigned long long)1024 << (log_span + 1)) <= max)
        log_span++;
    long faults0 = minor_faults_now();
    double t0 = now_seconds();
    for (unsigned long long r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < nbuf; i++) {
            /* log-uniform: a doubling band, then uniform within it */
            size_t lo = (size_t)1024 << (rng_next(&rng) % (log_span + 1));
            size_t f = lo + (size_t)(rng_next(&rng) % lo);
            b[i] = (struct buffer){ .p = NULL, .len = 0, .final = f > max ? max : f,
                                    .fill = (unsigned char)(r * MAX_BUFFERS + i) };
        }
        for (unsigned growing = (unsigned)nbuf; growing > 0;) {
            growing = 0;
            for (unsigned i = 0; i < nbuf; i++) {
                struct buffer *x = &b[i];
                if (x->len == x->final)
                    continue;
                size_t step = 1024 * (1 + (size_t)(rng_next(&rng) % 8));
                size_t n = x->len + step < x->final ? x->len + step : x->final;
                unsigned char *q = realloc(x->p, n);
                if (!malloc_ok("realloc_grow", q, n))
                    return 2;
                if (x->len > 0 && (q[0] != x->fill || q[x->len - 1] != x->fill)) {
                    fprintf(stderr, "realloc_grow: buffer %p lost its bytes when grown from %zu "
                            "to %zu\n", (void *)q, x->len, n);
                    return 2;
                }
                memset(q + x->len, x->fill, n - x->len);
                x->p = q;
                x->len = n;
                ops++;
                growing += x->len < x->final;
            }
        }
        for (unsigned i = 0; i < nbuf; i++) {
            if (b[i].p[0] != b[i].fill || b[i].p[b[i].len - 1] != b[i].fill) {
                fprintf(stderr, "realloc_grow: buffer %p (%zu bytes) corrupted\n",
                        (void *)b[i].p, b[i].len);
                return 2;
            }
            free(b[i].p);
            ops++;
        }
    }
    double secs = now_seconds() - t0;
    print_result_faults(ops, secs, faults0);
    return 0;
}
