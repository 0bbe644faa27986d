/*
 * Helpers shared by the benchmark programs: the PRNG, the clock, argument
 * parsing, malloc result checks, block tags, the result line and the resident
 * size.  Standard C and POSIX only, like the programs themselves, so that they
 * run unchanged under any allocator through LD_PRELOAD.
 *
 * A block's tag opens it: `head` bytes of it, which is head_len(size) (8, or
 * the whole of a block under 8 bytes); programs whose blocks are never under
 * 8 bytes pass the constant 8, so that the copy and the comparison are inlined.
 * Failures report on stderr and end the run with status 2 through the
 * program's `die`: exit, or _exit while other threads are running.
 */
#ifndef HAKMEM_BENCH_COMMON_H
#define HAKMEM_BENCH_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

/* xorshift64*: small, fast, deterministic for a given seed (never seed it 0). */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* splitmix64 finaliser: spreads seeds and tag inputs over all 64 bits. */
static inline uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi], from one rng_next step. */
static inline size_t rng_between(uint64_t *rng, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(rng) % (hi - lo + 1));
}

/* Monotonic wall-clock time in seconds. */
static inline double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A decimal number in [lo, hi] into *out; false for a sign, junk or overflow. */
static inline bool parse_ulong(const char *s, unsigned long long lo, unsigned long long hi,
                               unsigned long long *out)
{
    char *end;
    errno = 0;
    if (*s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* False, reported as "<who>: malloc(...) ...", if p = malloc(size) is NULL or misaligned. */
static inline bool malloc_ok(const char *who, const void *p, size_t size)
{
    if (p == NULL) {
        fprintf(stderr, "%s: malloc(%zu) returned NULL\n", who, size);
        return false;
    }
    if (size >= 16 && ((uintptr_t)p & 15) != 0) {
        fprintf(stderr, "%s: malloc(%zu) returned %p, not 16-byte aligned\n", who, size, p);
        return false;
    }
    return true;
}

/* How many bytes of the tag open a block of `size` bytes: 8, or all of a smaller one. */
static inline size_t head_len(size_t size)
{
    return size < 8 ? size : 8;
}

/* Light tag: `head` bytes of it at the start, its top byte in the last byte. */
static inline void tag_put(unsigned char *p, size_t size, size_t head, uint64_t tag)
{
    memcpy(p, &tag, head);
    if (size > 8)
        p[size - 1] = (unsigned char)(tag >> 56);
}

/* NULL when tag_put's tag is intact, else what does not match. */
static inline const char *tag_mismatch(const unsigned char *p, size_t size, size_t head,
                                       uint64_t tag)
{
    if (memcmp(p, &tag, head) != 0)
        return "head tag mismatch";
    if (size > 8 && p[size - 1] != (unsigned char)(tag >> 56))
        return "tail byte mismatch";
    return NULL;
}

/* A table entry: a live block and how many blocks the entry has held (part of the tag). */
struct slot {
    unsigned char *ptr;
    size_t size;
    uint64_t serial;
};

/* Allocates size bytes into s (serial + 1) for the caller to tag; die(2) if malloc_ok fails. */
static inline void slot_fill(const char *who, void (*die)(int), struct slot *s, size_t size)
{
    unsigned char *p = malloc(size);
    if (!malloc_ok(who, p, size)) {
        die(2);
        return;
    }
    s->ptr = p;
    s->size = size;
    s->serial++;
}

/* Frees the block of slot `index` after checking its tag; reports and die(2) on a mismatch. */
static inline void slot_empty(const char *who, void (*die)(int), struct slot *s, size_t index,
                              size_t head, uint64_t tag)
{
    const char *bad = tag_mismatch(s->ptr, s->size, head, tag);
    if (bad != NULL) {
        fprintf(stderr, "%s: corrupted block %p (slot %zu, size %zu, serial %llu): %s\n", who,
                (void *)s->ptr, index, s->size, (unsigned long long)s->serial, bad);
        die(2);
        return;
    }
    free(s->ptr);
    s->ptr = NULL;
}

/* The stamp byte at offset `off`: differs between offsets, so a wrongly moved block shows. */
static inline unsigned char stamp_at(uint64_t tag, size_t off)
{
    return (unsigned char)((tag >> 56) + (off >> 6) * 7 + (off >> 12));
}

/* Touches a block: the head tag, a stamp every 64 B to 4 KiB, then every 4 KiB, the last byte. */
static inline void stamp_put(unsigned char *p, size_t size, size_t head, uint64_t tag)
{
    memcpy(p, &tag, head);
    size_t first = size < 4096 ? size : 4096;
    for (size_t off = 64; off < first; off += 64)
        p[off] = stamp_at(tag, off);
    for (size_t off = 4096; off < size; off += 4096)
        p[off] = stamp_at(tag, off);
    if (size > 8)
        p[size - 1] = stamp_at(tag, size - 1);
}

/* NULL when everything stamp_put wrote is intact, else what does not match. */
static inline const char *stamp_mismatch(const unsigned char *p, size_t size, size_t head,
                                         uint64_t tag)
{
    if (memcmp(p, &tag, head) != 0)
        return "head tag mismatch";
    size_t first = size < 4096 ? size : 4096;
    for (size_t off = 64; off < first; off += 64)
        if (p[off] != stamp_at(tag, off))
            return "stamp mismatch in the first 4 KiB";
    for (size_t off = 4096; off < size; off += 4096)
        if (p[off] != stamp_at(tag, off))
            return "page stamp mismatch";
    if (size > 8 && p[size - 1] != stamp_at(tag, size - 1))
        return "tail byte mismatch";
    return NULL;
}

/* Prints "result: ops=... seconds=... ops_per_sec=..." plus `extra` and a newline. */
static inline void print_result(uint64_t ops, double elapsed, const char *extra)
{
    printf("result: ops=%llu seconds=%.3f ops_per_sec=%.1f%s\n", (unsigned long long)ops,
           elapsed, elapsed > 0 ? (double)ops / elapsed : 0.0, extra);
}

/* The process's minor page faults so far, and the result line with those
 * since `faults0` appended (" faults=N"). */
static inline long minor_faults_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static inline void print_result_faults(uint64_t ops, double elapsed, long faults0)
{
    char extra[64];
    snprintf(extra, sizeof extra, " faults=%ld", minor_faults_now() - faults0);
    print_result(ops, elapsed, extra);
}

/* Resident KiB from /proc/self/statm, read with open/read: no stdio, so no
 * allocator call (for measuring a program that makes none); 0 if unavailable. */
static inline long statm_rss_kb(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long size, res;
    if (sscanf(buf, "%lu %lu", &size, &res) != 2)
        return 0;
    return (long)(res * (unsigned long)sysconf(_SC_PAGESIZE) / 1024);
}

/* A field of /proc/self/status (VmRSS, VmHWM...) in KiB; -1 if unavailable. */
static inline long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    size_t len = strlen(field);
    long kb = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kb = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

#endif
