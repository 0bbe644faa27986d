/* Statistics that explain RSS, checked against what the kernel and the test
 * itself know:
 *   a. a known workload (Tiny, Mid, Large and Huge blocks, all touched):
 *      blocks in use per class grow by exactly the blocks allocated; bytes
 *      in use by at least what was asked and at most 30% more; committed
 *      bytes grow as the kernel's Rss (smaps_rollup) does, within 10% + 2 MiB;
 *   b. peaks: after everything is freed and trimmed the figures fall, the
 *      peaks stay at least where the figures were;
 *   c. per heap: a second thread holding blocks shows as a heap of its own;
 *   d. the reports: the text has a line per tier and per class in use, the
 *      JSON is one balanced line with the same figures;
 *   e. address space: a program that has made one small block holds less
 *      than 16 MiB mapped (arenas start at one 4 MiB SuperSlab).
 *   f. size bands of big blocks: mallocs counted in their band, Huge cache
 *      reuses counted, the bands' bounds, the bands in both reports, a band
 *      past the last refused.
 * Linked against HAKMEM, so malloc is HAKMEM's. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Rss of the process from /proc/self/smaps_rollup, in bytes (0 if unread). */
static size_t rss_rollup(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Rss: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * KiB;
}

/* The first class whose blocks hold n bytes (classes grow with their number). */
static int class_for(size_t n)
{
    struct hak_class_stats c;
    for (int i = 0; hak_stats_class(i, &c) == 0; i++)
        if (c.block_size >= n)
            return i;
    return -1;
}

static size_t in_use_of(int cls)
{
    struct hak_class_stats c;
    CHECK(hak_stats_class(cls, &c) == 0, "hak_stats_class(%d)", cls);
    return c.blocks_in_use;
}

static const struct { size_t size, count; } work[] = {
    { 100, 20000 },             /* Tiny */
    { 3000, 3000 },             /* Mid */
    { 300 * KiB, 40 },          /* Large */
};
#define NWORK (sizeof work / sizeof work[0])
#define HUGE_N 2
#define HUGE_SIZE (5 * MiB)

static void test_workload_and_peaks(void)
{
    void **blocks[NWORK];
    void *huge[HUGE_N];
    int cls[NWORK];
    size_t before[NWORK], asked = 0;
    struct hak_stats st0, st1, st2;
    struct hak_peaks pk1, pk2;

    for (size_t w = 0; w < NWORK; w++) {
        blocks[w] = mmap(NULL, work[w].count * sizeof(void *), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(blocks[w] != MAP_FAILED, "mmap");
        memset(blocks[w], 0, work[w].count * sizeof(void *));   /* its pages are Rss too */
        cls[w] = class_for(work[w].size);
        CHECK(cls[w] >= 0, "no class for %zu bytes", work[w].size);
    }
    free(malloc(1));
    malloc_trim(0);
    hak_stats_get(&st0);
    size_t rss0 = rss_rollup();
    for (size_t w = 0; w < NWORK; w++)
        before[w] = in_use_of(cls[w]);

    for (size_t w = 0; w < NWORK; w++)
        for (size_t i = 0; i < work[w].count; i++) {
            blocks[w][i] = malloc(work[w].size);
            CHECK(blocks[w][i] != NULL, "malloc(%zu)", work[w].size);
            memset(blocks[w][i], 0x5a, work[w].size);
            asked += work[w].size;
        }
    for (int i = 0; i < HUGE_N; i++) {
        huge[i] = malloc(HUGE_SIZE);
        CHECK(huge[i] != NULL, "malloc(%zu)", (size_t)HUGE_SIZE);
        memset(huge[i], 0x5a, HUGE_SIZE);
        asked += HUGE_SIZE;
    }
    hak_stats_get(&st1);
    hak_stats_peaks(&pk1);
    size_t rss1 = rss_rollup();

    for (size_t w = 0; w < NWORK; w++) {
        size_t grew = in_use_of(cls[w]) - before[w];
        CHECK(grew == work[w].count, "class %d (%zu B): %zu more blocks in use, %zu allocated",
              cls[w], work[w].size, grew, work[w].count);
    }
    size_t used = st1.in_use - st0.in_use;
    CHECK(used >= asked && used <= asked + asked * 3 / 10,
          "in use grew by %zu bytes for %zu asked", used, asked);
    CHECK(st1.huge_blocks - st0.huge_blocks == HUGE_N, "%zu Huge blocks more, %d allocated",
          st1.huge_blocks - st0.huge_blocks, HUGE_N);
    long long dc = (long long)st1.committed - (long long)st0.committed;
    long long dr = (long long)rss1 - (long long)rss0;
    long long diff = dc > dr ? dc - dr : dr - dc;
    printf("a. workload: %.1f MiB asked, in use +%.1f MiB, committed +%.1f MiB, Rss "
           "(smaps_rollup) +%.1f MiB\n", asked / (double)MiB, used / (double)MiB, dc / (double)MiB,
           dr / (double)MiB);
    CHECK(rss0 > 0, "could not read /proc/self/smaps_rollup");
    CHECK(diff <= dr / 10 + (long long)(2 * MiB),
          "committed grew by %lld bytes, Rss by %lld", dc, dr);
    CHECK(st1.mapped >= st1.committed, "mapped %zu < committed %zu", st1.mapped, st1.committed);
    CHECK(pk1.mapped >= st1.mapped && pk1.committed >= st1.committed,
          "peaks below the figures: mapped %zu < %zu or committed %zu < %zu", pk1.mapped,
          st1.mapped, pk1.committed, st1.committed);
    CHECK(pk1.huge_in_use >= (size_t)HUGE_N * HUGE_SIZE, "peak Huge %zu", pk1.huge_in_use);
    CHECK(pk1.in_slabs >= st1.in_use - st1.huge_in_use, "peak slab bytes %zu < in use %zu",
          pk1.in_slabs, st1.in_use - st1.huge_in_use);

    for (size_t w = 0; w < NWORK; w++)
        for (size_t i = 0; i < work[w].count; i++)
            free(blocks[w][i]);
    for (int i = 0; i < HUGE_N; i++)
        free(huge[i]);
    malloc_trim(0);
    hak_stats_get(&st2);
    hak_stats_peaks(&pk2);
    printf("b. after free and trim: committed %.1f MiB (peak %.1f), in use %.1f MiB\n",
           st2.committed / (double)MiB, pk2.committed / (double)MiB, st2.in_use / (double)MiB);
    CHECK(st2.committed + 8 * MiB < st1.committed, "committed %zu after freeing, %zu before",
          st2.committed, st1.committed);
    /* (stdout's buffer came in meanwhile: 4 KiB) */
    CHECK(st2.in_use <= st0.in_use + 8 * KiB, "in use %zu after freeing all, %zu at the start",
          st2.in_use, st0.in_use);
    CHECK(pk2.committed >= st1.committed && pk2.huge_in_use == pk1.huge_in_use &&
              pk2.in_slabs >= pk1.in_slabs && pk2.mapped >= pk1.mapped,
          "a peak fell after the frees");
    for (size_t w = 0; w < NWORK; w++)
        munmap(blocks[w], work[w].count * sizeof(void *));
}

/* ------------------------------------------------------------- c. heaps */

static pthread_barrier_t held, done;

static void *holder(void *arg)
{
    void *b[500];
    for (int i = 0; i < 500; i++)
        b[i] = malloc(200);
    pthread_barrier_wait(&held);
    pthread_barrier_wait(&done);
    for (int i = 0; i < 500; i++)
        free(b[i]);
    return arg;
}

/* The report written to a temporary file, read back whole. */
static char *report(void (*print)(int))
{
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (!f)
        return NULL;
    print(fileno(f));
    long n = lseek(fileno(f), 0, SEEK_END);
    char *text = malloc((size_t)n + 1);
    pread(fileno(f), text, (size_t)n, 0);
    text[n] = 0;
    fclose(f);
    return text;
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
        n++;
    return n;
}

/* JSON shape: one line, objects and arrays balanced outside strings. */
static int json_balanced(const char *s)
{
    int depth = 0, in_str = 0;
    for (; *s && *s != '\n'; s++) {
        if (in_str) {
            in_str = *s != '"';
            continue;
        }
        if (*s == '"')
            in_str = 1;
        else if (*s == '{' || *s == '[')
            depth++;
        else if ((*s == '}' || *s == ']') && --depth < 0)
            return 0;
    }
    return depth == 0 && !in_str && s[0] == '\n' && s[1] == 0;
}

static void test_heaps_and_reports(void)
{
    void *mine[300];
    for (int i = 0; i < 300; i++)
        mine[i] = malloc(40);
    pthread_t t;
    pthread_barrier_init(&held, NULL, 2);
    pthread_barrier_init(&done, NULL, 2);
    CHECK(pthread_create(&t, NULL, holder, NULL) == 0, "pthread_create");
    pthread_barrier_wait(&held);

    char *text = report(hak_stats_print);
    char *json = report(hak_stats_print_json);
    pthread_barrier_wait(&done);
    pthread_join(t, NULL);
    for (int i = 0; i < 300; i++)
        free(mine[i]);
    if (!text || !json)
        return;

    size_t heaps = 0;
    const char *h = strstr(text, "  heaps: ");
    CHECK(h && sscanf(h, "  heaps: %zu", &heaps) == 1, "no heaps line in:\n%s", text);
    printf("c. heaps: %zu in the report while a second thread holds 500 blocks\n", heaps);
    CHECK(heaps >= 2, "%zu heaps reported with two threads holding blocks", heaps);
    CHECK(count(json, "{\"owner\": ") == heaps, "JSON lists %zu heaps, the text %zu",
          count(json, "{\"owner\": "), heaps);

    int c40 = class_for(40), c200 = class_for(200);
    char line[64];
    snprintf(line, sizeof line, "\n    %d (", c40);
    CHECK(strstr(text, line) != NULL, "no line for class %d in:\n%s", c40, text);
    snprintf(line, sizeof line, "\n    %d (", c200);
    CHECK(strstr(text, line) != NULL, "no line for class %d", c200);
    for (const char *tier = "tiny\0mid\0large\0huge\0"; *tier; tier += strlen(tier) + 1) {
        char want[32];
        snprintf(want, sizeof want, "\n    %s: ", tier);
        CHECK(strstr(text, want) != NULL, "no %s line in the text report", tier);
        snprintf(want, sizeof want, "\"%s\": {", tier);
        CHECK(strstr(json, want) != NULL, "no %s object in the JSON report", tier);
    }
    CHECK(json_balanced(json), "JSON report not one balanced line:\n%s", json);
    struct hak_class_stats k;
    size_t nclass = 0;
    while (hak_stats_class((int)nclass, &k) == 0)
        nclass++;
    CHECK(nclass > 0 && count(json, "{\"class\": ") == nclass, "JSON lists %zu classes of %zu",
          count(json, "{\"class\": "), nclass);
    printf("d. reports: text %zu bytes, JSON %zu bytes\n", strlen(text), strlen(json));
    free(text);
    free(json);
}

static void test_small_address_space(void)
{
    void *volatile p = malloc(1);   /* volatile: the compiler may drop a malloc it sees freed */
    free(p);
    struct hak_stats st;
    hak_stats_get(&st);
    printf("e. address space after one small block: %.1f MiB mapped\n", st.mapped / (double)MiB);
    CHECK(st.mapped > 0 && st.mapped < 16 * MiB, "%zu bytes mapped for one small block", st.mapped);
}

static void test_bands(void)
{
    struct hak_band_stats b0, b7, a0, a7, k;
    CHECK(hak_stats_band(0, &b0) == 0 && hak_stats_band(7, &b7) == 0, "hak_stats_band failed");
    for (int i = 0; i < 50; i++) {
        char *volatile p = malloc(100 * KiB);
        p[0] = 1;
        free(p);
    }
    for (int i = 0; i < 20; i++) {
        char *volatile p = malloc(9 * MiB);
        memset(p, 1, 9 * MiB);
        free(p);
    }
    hak_stats_band(0, &a0);
    hak_stats_band(7, &a7);
    printf("f. bands: 50 mallocs of 100 KiB counted %zu; 20 of 9 MiB counted %zu, %zu from the "
           "Huge cache, %zu KiB not resident\n", a0.allocs - b0.allocs, a7.allocs - b7.allocs,
           a7.reused - b7.reused, (a7.fresh_bytes - b7.fresh_bytes) >> 10);
    CHECK(a0.allocs - b0.allocs == 50 && a7.allocs - b7.allocs == 20, "band counts %zu and %zu",
          a0.allocs - b0.allocs, a7.allocs - b7.allocs);
    CHECK(a0.bytes - b0.bytes == 50 * 100 * KiB && a7.bytes - b7.bytes == 20 * 9 * MiB,
          "band bytes %zu and %zu", a0.bytes - b0.bytes, a7.bytes - b7.bytes);
    CHECK(a7.reused - b7.reused >= 10, "only %zu of 20 9 MiB blocks from the Huge cache",
          a7.reused - b7.reused);
    CHECK(a7.fresh_bytes - b7.fresh_bytes <= (9 * MiB + 4096) * (20 - (a7.reused - b7.reused)),
          "%zu bytes not resident for %zu fresh mappings", a7.fresh_bytes - b7.fresh_bytes,
          20 - (a7.reused - b7.reused));
    CHECK(a0.size_min == 64 * KiB && a0.size_max == 128 * KiB && !a0.maps && !a0.learned,
          "band 0: [%zu, %zu) maps %d learned %d", a0.size_min, a0.size_max, a0.maps, a0.learned);
    CHECK(a7.size_min == 8 * MiB && a7.maps && !a7.learned, "band 7: from %zu, maps %d learned %d",
          a7.size_min, a7.maps, a7.learned);
    /* Bounds as the tiers': a band holds sizes above its lower bound up to its upper. */
    struct hak_band_stats e0, e4, f0, f4;
    hak_stats_band(0, &e0);
    hak_stats_band(4, &e4);
    void *volatile at128k = malloc(128 * KiB), *volatile at2m = malloc(2 * MiB);
    hak_stats_band(0, &f0);
    hak_stats_band(4, &f4);
    free(at128k);
    free(at2m);
    CHECK(f0.allocs - e0.allocs == 1 && f4.allocs - e4.allocs == 1 && f4.size_max == 2 * MiB,
          "128 KiB counted in band 0: %zu, 2 MiB in band 4: %zu", f0.allocs - e0.allocs,
          f4.allocs - e4.allocs);
    CHECK(hak_stats_band(9, &k) == 0 && k.size_max == 0 && hak_stats_band(10, &k) == -1 &&
              hak_stats_band(-1, &k) == -1,
          "band 9 has a bound %zu, or a band past the last was accepted", k.size_max);
    char *text = report(hak_stats_print), *json = report(hak_stats_print_json);
    if (!text || !json)
        return;
    CHECK(strstr(text, "\n    8388608-16777216: ") != NULL, "no 8-16 MiB band line in:\n%s", text);
    CHECK(count(json, "{\"size_min\": ") == 10 && json_balanced(json), "JSON: %zu bands, or unbalanced",
          count(json, "{\"size_min\": "));
    free(text);
    free(json);
}

int main(void)
{
    test_small_address_space();     /* first: before anything else is allocated */
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_workload_and_peaks();
    test_heaps_and_reports();
    test_bands();
    return test_done("test_stats");
}
