/* Memory goes back to the OS: RSS (from /proc/self/statm) after freeing and
 * malloc_trim(0) returns close to where it started.
 *   a. ~512 MiB in mixed sizes (mostly Tiny/Mid), all touched, all freed,
 *      malloc_trim(0): RSS within 12 MiB of the baseline.
 *   b. thread churn: 200 short threads, then 2000 more (each allocates and
 *      frees ~4 MiB in small blocks): RSS growth between the two under 8 MiB.
 *   c. fragmentation: keep 1 block of every 64, free the rest, malloc_trim(0):
 *      RSS keeps at most half of the peak increase.
 *   d. resident first: free pages still resident are handed out before
 *      purged ones, so reallocating what was just freed faults no page in.
 *   e. sparse slabs drain: a refill passes over slabs with few blocks out,
 *      so those go back to the pool when their last blocks are freed.
 *   f. threads never joined (as Larson's): each keeps its stack and static
 *      TLS, which glibc zeroes at creation, so HAKMEM's share of that must
 *      stay small; 400 such threads that malloc and free a block cost at
 *      most 16 KiB of RSS each.
 *   g. a buffer grown by realloc a page at a time to 6 MiB, freed and grown
 *      again: its later growths take the cached Huge mapping's pages (the
 *      chunks above the block included) in place, so they fault in at most
 *      a few pages and the block does not move as it passes 4 MiB.
 * Standard names (malloc/free/malloc_trim): linked against HAKMEM they are
 * HAKMEM.  Bookkeeping arrays come from mmap so they do not count as heap.
 * RSS is always read right after malloc_trim(0), so the result does not depend
 * on how long freed memory has been retained. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static double mib(size_t b) { return (double)b / (double)MiB; }
static double mibd(long long b) { return (double)b / (double)MiB; }

static size_t rand_range(uint64_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(xorshift64(r) % (hi - lo + 1));
}

/* bookkeeping outside the heap under test, pre-touched */
static void *book_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 0, bytes);
    return p;
}

static void print_stats(const char *when)
{
    struct hak_stats st;
    memset(&st, 0, sizeof st);
    hak_stats_get(&st);
    printf("    [%s] hak_stats: mapped %.1f MiB, committed %.1f MiB, in_use %.1f MiB, "
           "superslabs %zu, slabs %zu\n", when, mib(st.mapped), mib(st.committed),
           mib(st.in_use), st.superslabs, st.slabs);
}

static size_t trimmed_rss(void)
{
    malloc_trim(0);
    return rss_bytes();
}

/* ----------------------------------------------------- a. 512 MiB and back */

#define A_MAX_BLOCKS (2u << 20)

static void test_big_round_trip(void)
{
    void **ptrs = book_alloc(A_MAX_BLOCKS * sizeof(void *));
    /* byte budgets per tier: Tiny 224, Mid 192, Large 64, Huge 32 MiB */
    size_t budget[4] = { 224 * MiB, 192 * MiB, 64 * MiB, 32 * MiB };
    const size_t lo[4] = { 1, 1 * KiB + 1, 64 * KiB + 1, 2 * MiB + 1 };
    const size_t hi[4] = { 1 * KiB, 64 * KiB, 2 * MiB, 8 * MiB };
    size_t n = 0, total = 0, tier_blocks[4] = { 0 };
    uint64_t r = 0x5EED5EEDull;

    free(malloc(1));                   /* initialise the allocator first */
    size_t base = trimmed_rss();

    while (n < A_MAX_BLOCKS) {
        size_t left = budget[0] + budget[1] + budget[2] + budget[3];
        if (left == 0) break;
        /* pick a tier with probability proportional to its remaining count */
        double w[4], sum = 0;
        for (int k = 0; k < 4; k++) {
            w[k] = budget[k] ? (double)budget[k] / (double)((lo[k] + hi[k]) / 2) : 0.0;
            sum += w[k];
        }
        double x = (double)(xorshift64(&r) % 1000000) / 1e6 * sum;
        int t = 0;
        while (t < 3 && x >= w[t]) {
            x -= w[t];
            t++;
        }
        while (budget[t] == 0) t = (t + 1) % 4;
        size_t s = rand_range(&r, lo[t], hi[t]);
        if (s > budget[t]) s = budget[t] < lo[t] ? lo[t] : budget[t];
        budget[t] = s >= budget[t] ? 0 : budget[t] - s;
        void *p = malloc(s);
        if (!p) {
            CHECK(p != NULL, "malloc(%zu) failed", s);
            break;
        }
        memset(p, (int)(n & 0xff) | 1, s);     /* touch every page */
        ptrs[n++] = p;
        total += s;
        tier_blocks[t]++;
    }
    size_t peak = rss_bytes();
    print_stats("a: peak");

    /* free in random order */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(xorshift64(&r) % i);
        void *tmp = ptrs[i - 1];
        ptrs[i - 1] = ptrs[j];
        ptrs[j] = tmp;
    }
    for (size_t i = 0; i < n; i++) free(ptrs[i]);
    size_t after_free = rss_bytes();
    size_t after = trimmed_rss();
    print_stats("a: after trim");
    long long growth = (long long)after - (long long)base;
    printf("a. round trip: %zu blocks (tiny %zu, mid %zu, large %zu, huge %zu), %.1f MiB requested; "
           "RSS baseline %.1f MiB, peak %.1f MiB, after free %.1f MiB, after malloc_trim %.1f MiB "
           "(%+.1f MiB)\n", n, tier_blocks[0], tier_blocks[1], tier_blocks[2], tier_blocks[3],
           mib(total), mib(base), mib(peak), mib(after_free), mib(after), mibd(growth));
    CHECK(total >= 500 * MiB, "only %.1f MiB allocated", mib(total));
    CHECK(peak >= base + 400 * MiB, "peak RSS %.1f MiB does not reflect the touched blocks", mib(peak));
    CHECK(growth <= (long long)(12 * MiB), "RSS after free+trim is %.1f MiB above the baseline (limit 12)",
          mibd(growth));
    munmap(ptrs, A_MAX_BLOCKS * sizeof(void *));
}

/* --------------------------------------------------------- b. thread churn */

#define B_ALIVE 4

static void *churn_thread(void *arg)
{
    uint64_t r = 0xABCDull + (uintptr_t)arg;
    enum { MAXB = 65536 };
    void **blk = malloc(MAXB * sizeof(void *));
    if (!blk) return (void *)1;
    size_t total = 0, n = 0;
    while (total < 4 * MiB && n < MAXB) {
        size_t s = rand_range(&r, 16, 512);
        void *p = malloc(s);
        if (!p) break;
        memset(p, 0x5A, s);
        blk[n++] = p;
        total += s;
    }
    for (size_t i = 0; i < n; i += 2) free(blk[i]);     /* free in two passes */
    for (size_t i = 1; i < n; i += 2) free(blk[i]);
    free(blk);
    return total >= 4 * MiB ? NULL : (void *)1;
}

static int run_threads(long first, long count)
{
    pthread_t th[B_ALIVE];
    int bad = 0;
    for (long i = 0; i < count; i++) {
        void *ret = NULL;
        if (i >= B_ALIVE) {
            pthread_join(th[i % B_ALIVE], &ret);
            bad += ret != NULL;
        }
        if (pthread_create(&th[i % B_ALIVE], NULL, churn_thread, (void *)(first + i)) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    for (long i = count > B_ALIVE ? count - B_ALIVE : 0; i < count; i++) {
        void *ret = NULL;
        pthread_join(th[i % B_ALIVE], &ret);
        bad += ret != NULL;
    }
    return bad;
}

static void test_thread_churn(void)
{
    size_t base = trimmed_rss();
    int bad = run_threads(0, 200);
    size_t r1 = trimmed_rss();
    print_stats("b: after 200 threads");
    bad += run_threads(200, 2000);
    size_t r2 = trimmed_rss();
    print_stats("b: after 2200 threads");
    long long growth = (long long)r2 - (long long)r1;
    printf("b. thread churn: RSS before %.1f MiB, after 200 threads %.1f MiB, after 2000 more "
           "%.1f MiB (%+.2f MiB)\n", mib(base), mib(r1), mib(r2), mibd(growth));
    CHECK(bad == 0, "%d threads could not allocate 4 MiB", bad);
    CHECK(growth < (long long)(8 * MiB), "RSS grew by %.2f MiB over 2000 threads (limit 8)", mibd(growth));
}

/* ----------------------------------------------------- c. fragmentation */

#define C_BYTES (256 * MiB)
#define C_KEEP_EVERY 64

static void test_fragmentation(void)
{
    size_t maxb = 4u << 20;
    void **ptrs = book_alloc(maxb * sizeof(void *));
    uint64_t r = 0xF7A6ull;
    size_t base = trimmed_rss();
    size_t n = 0, total = 0, kept = 0, kept_bytes = 0;
    /* half of the bytes in Tiny blocks, half in Mid blocks, interleaved */
    while (total < C_BYTES && n < maxb) {
        size_t s = (xorshift64(&r) % 64 == 0) ? rand_range(&r, 1 * KiB + 1, 64 * KiB)
                                            : rand_range(&r, 16, 1 * KiB);
        void *p = malloc(s);
        if (!p) {
            CHECK(p != NULL, "malloc(%zu) failed", s);
            break;
        }
        memset(p, 0x33, s);
        ptrs[n++] = p;
        total += s;
    }
    size_t peak = rss_bytes();
    for (size_t i = 0; i < n; i++) {
        if (i % C_KEEP_EVERY == 0) {
            kept++;
            kept_bytes += malloc_usable_size(ptrs[i]);
            continue;
        }
        free(ptrs[i]);
        ptrs[i] = NULL;
    }
    size_t after = trimmed_rss();
    print_stats("c: kept 1/64, after trim");
    long long inc = (long long)peak - (long long)base, rem = (long long)after - (long long)base;
    printf("c. fragmentation: %zu blocks, %.1f MiB; kept %zu blocks (%.2f MiB); RSS baseline %.1f MiB, "
           "peak %.1f MiB (%+.1f), after free+trim %.1f MiB (%+.1f, %.0f%% of the increase)\n",
           n, mib(total), kept, mib(kept_bytes), mib(base), mib(peak), mibd(inc), mib(after),
           mibd(rem), inc > 0 ? 100.0 * (double)rem / (double)inc : 0.0);
    CHECK(inc >= (long long)(C_BYTES / 2), "peak increase %.1f MiB too small", mibd(inc));
    CHECK(rem * 2 <= inc, "RSS keeps %.1f MiB of a %.1f MiB increase (limit 50%%)", mibd(rem), mibd(inc));

    for (size_t i = 0; i < n; i++) free(ptrs[i]);
    size_t end = trimmed_rss();
    printf("   after freeing the kept blocks too: RSS %.1f MiB\n", mib(end));
    munmap(ptrs, maxb * sizeof(void *));
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* Large blocks (a slab each) fill a run of pages; the first half is freed
 * and trimmed (purged: the next touch faults), then the second half freed
 * (still resident).  Allocating half again must take the resident pages,
 * although the purged ones come first in address order. */
static void test_resident_first(void)
{
    enum { N = 24 };
    size_t size = 100 * KiB;
    void *p[N];
    malloc_trim(0);
    for (int i = 0; i < N; i++) {
        p[i] = malloc(size);
        CHECK(p[i] != NULL, "malloc(%zu)", size);
        memset(p[i], 1, size);
    }
    for (int i = 0; i < N / 2; i++)
        free(p[i]);
    malloc_trim(0);
    for (int i = N / 2; i < N; i++)
        free(p[i]);
    long before = minor_faults();
    for (int i = 0; i < N / 2; i++) {
        p[i] = malloc(size);
        CHECK(p[i] != NULL, "malloc(%zu)", size);
        memset(p[i], 2, size);
    }
    long faults = minor_faults() - before;
    long touched = (long)(N / 2 * size / 4096);
    printf("d. resident first: %ld minor faults reallocating %ld pages just freed\n", faults,
           touched);
    CHECK(faults < touched / 4, "%ld page faults reallocating %ld resident pages", faults, touched);
    for (int i = 0; i < N / 2; i++)
        free(p[i]);
}

/* One growth of a buffer from a page to `max` a page at a time, each new
 * page written; the minor faults it took, and whether the block moved while
 * it grew past `pass` (from the last size below to the first above). */
static long grow_once(size_t max, size_t pass, int *moved)
{
    long before = minor_faults();
    char *p = NULL;
    *moved = 0;
    for (size_t n = 4 * KiB; n <= max; n += 4 * KiB) {
        char *q = realloc(p, n);
        CHECK(q != NULL, "realloc(%p, %zu)", (void *)p, n);
        if (q == NULL) {
            free(p);
            return 0;
        }
        if (n - 4 * KiB < pass && n >= pass && q != p)
            *moved = 1;
        q[n - 1] = 1;
        p = q;
    }
    free(p);
    return minor_faults() - before;
}

static void test_grow_in_place(void)
{
    /* The cache keeps the freed mapping for the retention: a slow run must
     * not see it expire between two growths. */
    long retain = 0;
    hak_setting_get("HAKMEM_RETAIN_MS", &retain);
    hak_setting_set("HAKMEM_RETAIN_MS", 600000);
    size_t max = 6 * MiB, pass = 4 * MiB;
    int moved = 0, ever_moved = 0;
    long first = grow_once(max, pass, &moved), most = 0;
    for (int round = 0; round < 4; round++) {
        long f = grow_once(max, pass, &moved);
        most = f > most ? f : most;
        ever_moved |= moved;
    }
    hak_setting_set("HAKMEM_RETAIN_MS", retain);
    long pages = (long)(max / (4 * KiB));
    printf("g. grow in place: %ld minor faults growing a buffer to %zu MiB a page at a time, then "
           "at most %ld a growth; moved past 4 MiB: %s\n", first, max / MiB, most,
           ever_moved ? "yes" : "no");
    CHECK(first >= pages / 2, "the first growth faulted in only %ld of %ld pages (the test "
          "measures nothing)", first, pages);
    CHECK(most < pages / 16, "a later growth faulted in %ld of %ld pages", most, pages);
    CHECK(!ever_moved, "the block moved as it grew past 4 MiB");
}

static size_t slabs_now(void)
{
    struct hak_stats st;
    hak_stats_get(&st);
    return st.slabs;
}

/* In a fresh thread (a heap of its own), 8 slabs of 2 KiB blocks (32 per
 * slab, grouped by their 64 KiB slab page; not Tiny, whose frees wait in
 * the thread's cache): the first four keep one block each (sparse), the
 * next three about half.  SPARSE_FRESH new blocks must come from the
 * half-full slabs, so that freeing the four kept blocks returns four slabs
 * to the pool. */
#define SPARSE_SLABS 8
#define SPARSE_PER 32
#define SPARSE_SIZE 2048
#define SPARSE_FRESH 45
static void *sparse_thread(void *arg)
{
    size_t *released = arg;
    void *b[SPARSE_SLABS * SPARSE_PER];
    void *slab_block[SPARSE_SLABS][SPARSE_PER];
    uintptr_t slab_page[SPARSE_SLABS];
    int nslab = 0, count[SPARSE_SLABS] = { 0 };
    for (int i = 0; i < SPARSE_SLABS * SPARSE_PER; i++) {
        b[i] = malloc(SPARSE_SIZE);
        CHECK(b[i] != NULL, "malloc(%d)", SPARSE_SIZE);
        uintptr_t page = (uintptr_t)b[i] >> 16;
        int k = 0;
        while (k < nslab && slab_page[k] != page)
            k++;
        if (k == nslab) {
            if (nslab == SPARSE_SLABS) {
                CHECK(0, "%d B blocks spread over more than %d slabs", SPARSE_SIZE, SPARSE_SLABS);
                return NULL;
            }
            slab_page[nslab++] = page;
        }
        slab_block[k][count[k]++] = b[i];
    }
    for (int k = 0; k < SPARSE_SLABS - 1; k++)
        for (int j = 1; j < SPARSE_PER; j++)
            if (k < 4 || j % 2 == 0)
                free(slab_block[k][j]);
    void *fresh[SPARSE_FRESH];
    for (int i = 0; i < SPARSE_FRESH; i++)
        fresh[i] = malloc(SPARSE_SIZE);
    size_t before = slabs_now();
    for (int k = 0; k < 4; k++)
        free(slab_block[k][0]);
    *released = before - slabs_now();
    for (int i = 0; i < SPARSE_FRESH; i++)
        free(fresh[i]);
    for (int k = 4; k < SPARSE_SLABS; k++)
        for (int j = 0; j < SPARSE_PER; j++)
            if (k == SPARSE_SLABS - 1 || j % 2 == 1 || j == 0)
                free(slab_block[k][j]);
    return NULL;
}

static void test_sparse_slabs_drain(void)
{
    size_t released = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sparse_thread, &released) == 0, "pthread_create");
    pthread_join(t, NULL);
    printf("e. sparse slabs drain: %zu of 4 sparse slabs released when their last block was "
           "freed\n", released);
    CHECK(released == 4, "%zu of 4 sparse slabs released (a refill took the others)", released);
}

/* ----------------------------------------------------- f. threads never joined */

#define F_THREADS 400

static void *unjoined_thread(void *arg)
{
    void *p = malloc(64);
    free(p);
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_unjoined_threads(void)
{
    static int done;
    pthread_t th;
    size_t base = trimmed_rss();
    for (int i = 0; i < F_THREADS; i++) {
        int want = i + 1;
        CHECK(pthread_create(&th, NULL, unjoined_thread, &done) == 0, "pthread_create");
        while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < want)
            usleep(100);
    }
    usleep(10000);                  /* the last ones past their exit */
    long long growth = (long long)trimmed_rss() - (long long)base;
    double per = (double)growth / F_THREADS / 1024;
    printf("f. %d threads never joined: RSS %+.2f MiB (%.1f KiB a thread)\n", F_THREADS,
           mibd(growth), per);
    CHECK(per <= 16, "each thread never joined costs %.1f KiB of RSS (limit 16)", per);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("test_rss: RSS figures from /proc/self/statm\n");
    test_big_round_trip();
    test_thread_churn();
    test_fragmentation();
    test_resident_first();
    test_sparse_slabs_drain();
    test_unjoined_threads();
    test_grow_in_place();
    return test_done("test_rss");
}
