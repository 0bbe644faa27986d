/* The background thread (src/background.c) returns memory while the program
 * makes no allocator calls.
 *   a. a small program has no thread;
 *   b. 1 GiB of 64-2000-byte blocks, all freed, then no allocator call: RSS
 *      back within 10% + 2 MiB of its value before the burst in under 1 s;
 *   c. a fork child: no thread until it needs one, then the same in it;
 *   d. HAKMEM_BACKGROUND=0: never a thread;
 *   e. HAKMEM_RETAIN_MS=50, a heap that grows back 200 ms after each free
 *      of everything: the retention grows until it covers the gap, page
 *      faults stop, and once the program stops the memory still goes back;
 *   f. Huge churn (20 live blocks of 5-25 MiB, one replaced at a time, as
 *      mimalloc-bench's malloc-large): the Huge cache's capacity grows past
 *      its 64 MiB start, bounded by twice the most live Huge bytes, page faults per
 *      allocation fall, calloc'd blocks from the cache read as zero, and no
 *      live block's pages are ever another's (split, joined, grown);
 *   g. no deadlock: threads that dlopen/dlclose libraries, fork children
 *      that allocate (starting their own thread), while others churn
 *      enough memory to keep the thread busy; under alarm(30);
 *   h. exit() called by four threads at once, the thread running;
 *   i. HAKMEM_HUGE_CACHE_MB: a fixed Huge cache capacity, never learned;
 *   j. Large and Huge churn with few Huge blocks live at a time: the Huge
 *      cache's capacity still grows, and page faults fall.
 *   k. HAKMEM_RETAIN_MS=50, a program too small for the thread: 6 MiB freed,
 *      a pause of 6 retentions, then slabs taken and freed: those frees do
 *      not purge the pages the program takes back next (no page faults);
 *      if it works on without them, they are purged after all;
 *   m. HAKMEM_RETAIN_MS=50: a Huge mapping that expired and was wanted again
 *      lengthens the retention, and the next ones are reused;
 *   l. the Large cache (ACE): 12 MiB of 1 MiB blocks freed into it, then 2 MiB
 *      blocks written: the kept slabs go to the pool before it would fault
 *      pages in; two threads churning 64 KiB-1 MiB blocks (with
 *      HAKMEM_LARGE_CACHE_MB=16) reuse their own emptied slabs (counted;
 *      learned, only printed), calloc'd blocks from it read as
 *      zero, no two live blocks share a byte; once a thread works on small
 *      blocks only for longer than a retention, its cache goes to the pool,
 *      and a thread's exit gives the pool the rest.
 *   p. the learned placement of 512 KiB - 2 MiB blocks (ELO, src/learn.c),
 *      deterministic (HAKMEM_BACKGROUND=0, a long retention): each 600 KiB
 *      block written and freed is followed by a 100 KiB block kept, which
 *      as a Large slab would take pages of the freed one: the band keeps its
 *      blocks in mappings of their own (its place at first), the Huge cache
 *      serves them all, faulting nothing in, so no trial is made; then with
 *      a Huge cache of 4 MiB (one such mapping) and 8 blocks freed and
 *      allocated again at a time, mappings fault 7 of 8 blocks in while
 *      Large slabs would reuse their pages: once those faults add up to what
 *      a trial may cost the band tries Large slabs and keeps them (a switch,
 *      ratings that add up to 3000), and the later rounds fault nothing in;
 *      every block keeps its bytes;
 *   q. HAKMEM_MAP_THRESHOLD_KB=1024 fixes the place: 1.5 MiB mallocs,
 *      callocs and realloc copies are mapped (Huge blocks), 600 KiB ones
 *      are Large; nothing is learned or switched.
 *   n. Huge blocks on transparent huge pages (HAKMEM_HUGE_PAGES=1): the 2 MiB
 *      pages wholly inside a Huge block are flagged for them (VmFlags "hg"
 *      in /proc/self/smaps), the rest of its mapping is not, also once a
 *      block reuses a cached mapping that held a bigger one; writing a
 *      14 MiB block faults in a handful of pages where the kernel grants
 *      huge pages (3584 without);
 *      a 200 MiB calloc'd block is not flagged where it is fresh (it may be
 *      used sparsely), reads as zero and is not made resident (a cached
 *      mapping grown for it is zeroed only where it was held); realloc
 *      grows such a block with mremap (one VMA: the flags must not split
 *      the mapping), not a copy; by default (HAKMEM_HUGE_PAGES=0) nothing
 *      is flagged.
 *   o. HAKMEM_RETAIN_MS=10000: 160 blocks of 1 MiB, one page of each written,
 *      freed and taken again, cycle after cycle: the free pages pass the
 *      pool's 64 MiB cap and are purged, the program takes them back (page
 *      faults), so the cap grows (the report's dirty_cap) and later cycles
 *      fault nothing in.
 *   r. survivors: 256 MiB of 8-64 KiB blocks, 90% freed at random, then no
 *      allocator call: the pages inside the free blocks of the slabs the
 *      survivors pin go back (RSS within 3 times the live bytes, where the
 *      slabs alone hold 5), the survivors keep every byte, and blocks taken
 *      again are usable; with HAKMEM_BACKGROUND=0 those pages stay (RSS
 *      above that bound: the release is the thread's) until malloc_trim(0),
 *      which releases them at once (RSS within the bound); with
 *      HAKMEM_RETAIN_MS=1 (the thread looks every few ms), two threads
 *      replacing such blocks, one class at a time in turn (the slabs of the
 *      others sit unchanged), never find a byte of a live block changed
 *      while pages of free ones are released (a release that reaches a
 *      page of the next block fails both parts); with HAKMEM_RETAIN_MS=50,
 *      a heap that swings (every other one of 4000 32 KiB blocks freed, so
 *      no slab empties, 250 ms of pause, the blocks taken back and written):
 *      a pause's release is taken back, which lengthens the retention past
 *      the pause, and the last cycles fault nothing in.
 *   s. a size band's released bytes: 48 MiB of 200 KiB blocks (Large slabs of
 *      the 128-256 KiB band) freed, then no allocator call: the pages the
 *      background thread purges count in that band (hak_stats_band), at
 *      most what its slabs held, and not in the band below.
 *   t. gathered: four cached 8 MiB mappings, kept apart by live blocks, and
 *      a 28 MiB block wanted: the cache holds no mapping that big, so one is
 *      grown and the others' pages are moved into it; writing the block
 *      faults in under an eighth of its pages (7168 when the growth was
 *      fresh), and a calloc served so reads as zero on every page.
 *   u. chosen by what was written: two cached 4 MiB mappings, the older
 *      written 2.1 MiB far, the newer 3.9 MiB; a 3.8 MiB block takes the
 *      newer and a 2 MiB block the older, neither faulting pages in (the
 *      first of two equal sizes was taken before: 455 faults).
 * While waiting, the test calls only open/read/usleep/getrusage: no malloc.
 * The block table comes from mmap and is touched before the baseline. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"
#include "../bench/common.h"     /* statm_rss_kb: RSS without an allocator call */

#define MiB ((size_t)1 << 20)

/* The first number after `key` in /proc/self/<file>, read without malloc. */
static long proc_number(const char *file, const char *key)
{
    char buf[4096];
    int fd = open(file, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = key[0] ? strstr(buf, key) : buf;
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static size_t rss(void) { return (size_t)statm_rss_kb() * 1024; }

static long threads(void) { return proc_number("/proc/self/status", "Threads:"); }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static void **table;
static size_t table_cap;

/* Room for bytes in blocks of 900 bytes or more on average. */
static void table_init(size_t bytes)
{
    table_cap = bytes / 900 + 16;
    table = mmap(NULL, table_cap * sizeof *table, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(table, 0, table_cap * sizeof *table);
}

/* bytes in blocks of lo..hi bytes, every byte written; returns the count. */
static size_t fill(size_t bytes, size_t lo, size_t hi, uint64_t seed)
{
    size_t n = 0, got = 0;
    while (got < bytes && n < table_cap) {
        size_t s = lo + (size_t)(xorshift64(&seed) % (hi - lo + 1));
        char *p = malloc(s);
        if (p == NULL)
            break;
        memset(p, 0x5a, s);
        table[n++] = p;
        got += s;
    }
    CHECK(got >= bytes, "only %zu of %zu bytes allocated", got, bytes);
    return n;
}

/* Frees the n blocks in a shuffled order. */
static void free_all(size_t n, uint64_t seed)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(xorshift64(&seed) % i);
        void *t = table[i - 1];
        table[i - 1] = table[j];
        table[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        free(table[i]);
}

/* Polls RSS every 10 ms, no allocator call, until it is within 10% + 2 MiB
 * of base or limit_ms pass: the ms it took, or -1. */
static double wait_for_release(size_t base, double limit_ms, size_t *last)
{
    size_t target = base + base / 10 + 2 * MiB;
    double t0 = now_ms();
    for (;;) {
        *last = rss();
        double t = now_ms() - t0;
        if (*last <= target)
            return t;
        if (t > limit_ms)
            return -1;
        usleep(10000);
    }
}

/* A burst of `bytes` and back: the release must take under 1 s. */
static void burst_and_wait(const char *label, size_t bytes, uint64_t seed)
{
    size_t base = rss();
    size_t n = fill(bytes, 64, 2000, seed);
    size_t peak = rss();
    free_all(n, seed);
    size_t after_free = rss(), last;
    double took = wait_for_release(base, 1000, &last);
    printf("%s: RSS before %.1f MiB, peak %.1f, after the frees %.1f, then %.1f MiB after %.0f ms "
           "with no allocator call (threads: %ld)\n", label, (double)base / MiB, (double)peak / MiB,
           (double)after_free / MiB, (double)last / MiB, took, threads());
    CHECK(peak >= base + bytes * 9 / 10, "%s: peak RSS %.1f MiB does not show the burst", label,
          (double)peak / MiB);
    CHECK(took >= 0, "%s: RSS %.1f MiB after 1 s, limit %.1f (before %.1f)", label, (double)last / MiB,
          (double)(base + base / 10 + 2 * MiB) / MiB, (double)base / MiB);
    CHECK(threads() == 2, "%s: %ld threads, expected the program's and HAKMEM's", label, threads());
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    CHECK(ad.background == 1, "%s: hak_stats_adaptive says no background thread", label);
    CHECK(ad.released_bytes > 0, "%s: hak_stats_adaptive counts no bytes released by the thread", label);
}

static int child_status(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* d: run in a child with HAKMEM_BACKGROUND=0. */
static int background_off(void)
{
    table_init(256 * MiB);
    size_t base = rss();
    size_t n = fill(256 * MiB, 64, 2000, 7);
    free_all(n, 7);
    usleep(300000);
    printf("d. HAKMEM_BACKGROUND=0: RSS %.1f MiB before, %.1f MiB 300 ms after freeing 256 MiB "
           "(purged only by allocator calls); threads %ld\n", (double)base / MiB,
           (double)rss() / MiB, threads());
    CHECK(threads() == 1, "HAKMEM_BACKGROUND=0: %ld threads", threads());
    return test_done("test_background (HAKMEM_BACKGROUND=0)");
}

/* A figure from the JSON statistics. */
static long stat_json(const char *key)
{
    int fds[2];
    char buf[65536], pat[64];
    if (pipe(fds) != 0)
        return -1;
    hak_stats_print_json(fds[1]);
    close(fds[1]);
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += r;
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(buf, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}


/* The learned Huge cache capacity grew past its start (64 MiB) and stays
 * within twice the most live Huge bytes (of an epoch, so of the run). */
static void check_capacity_grew(size_t cap)
{
    struct hak_peaks pk;
    hak_stats_peaks(&pk);
    CHECK(cap > 64 * MiB, "Huge cache capacity %zu: it did not grow", cap);
    CHECK(cap <= 2 * pk.huge_in_use, "Huge cache capacity %zu beyond twice the most live Huge "
          "bytes %zu", cap, pk.huge_in_use);
}

/* f: in a fork child, so that the thread runs and nothing else is cached. */
static void huge_churn(void)
{
    enum { LIVE = 20, ROUNDS = 480 };
    char *live[LIVE] = { 0 };
    uint64_t r = 42;
    long faults[3] = { 0 };
    long zero_errors = 0;
    start_background();
    size_t size[LIVE] = { 0 };
    long overlaps = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int k = (int)(xorshift64(&r) % LIVE);
        size_t n = 5 * MiB + (size_t)(xorshift64(&r) % (20 * MiB));
        /* Every live block still holds its own tag on every page: split,
         * joined and grown mappings never overlap. */
        for (int j = 0; j < LIVE; j++)
            for (size_t o = 0; live[j] && o < size[j]; o += 4096)
                overlaps += live[j][o] != (char)(j + 1);
        free(live[k]);
        long f0 = minor_faults();
        char *p = (i % 8 == 0) ? calloc(1, n) : malloc(n);
        if (i % 8 == 0)         /* a few bytes on every page must read zero */
            for (size_t o = 0; o < n; o += 4096)
                zero_errors += p[o] != 0;
        memset(p, k + 1, n);
        faults[i * 3 / ROUNDS] += minor_faults() - f0;
        live[k] = p;
        size[k] = n;
    }
    long cap = stat_json("huge_cache_cap"), in_use = stat_json("huge_in_use");
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    CHECK((long)ad.huge_cache_cap == cap, "hak_stats_adaptive's capacity %zu, the report's %ld",
          ad.huge_cache_cap, cap);
    CHECK(ad.huge_cache_changes > 0 && ad.huge_reused > ROUNDS / 2 && ad.huge_reused_bytes > 0,
          "Huge cache: %zu capacity changes, %zu reuses (%zu bytes)", ad.huge_cache_changes,
          ad.huge_reused, ad.huge_reused_bytes);
    printf("f. Huge churn, 20 live blocks of 5-25 MiB, %d replaced: page faults per third %ld %ld %ld; "
           "cache capacity %.0f MiB (live Huge %.0f MiB)\n", ROUNDS, faults[0], faults[1], faults[2],
           (double)cap / MiB, (double)in_use / MiB);
    CHECK(zero_errors == 0, "%ld pages of calloc'd Huge blocks not zero", zero_errors);
    CHECK(overlaps == 0, "%ld pages of live Huge blocks overwritten by another block", overlaps);
    check_capacity_grew((size_t)cap);
    CHECK(faults[2] * 10 < faults[0] * 7, "page faults %ld in the last third, %ld in the first",
          faults[2], faults[0]);
    for (int k = 0; k < LIVE; k++)
        free(live[k]);
}

/* j: in a fork child: 16 live buffers of 64 KiB-8 MiB, one replaced at a
 * time (bench/large_churn): a few are Huge at a time, so the live Huge bytes
 * stay low, but the entries dropped for room are what later blocks need.
 * The capacity must grow past its start (at most twice the most live Huge
 * bytes of an epoch) and the page faults per replacement fall. */
static void mixed_churn(void)
{
    enum { LIVE = 16, ROUNDS = 30000 };
    char *live[LIVE] = { 0 };
    uint64_t r = 7;
    long faults[3] = { 0 };
    start_background();
    for (int i = 0; i < ROUNDS; i++) {
        int k = (int)(xorshift64(&r) % LIVE);
        unsigned sh = 16 + (unsigned)(xorshift64(&r) % 7);
        size_t n = ((size_t)1 << sh) + (size_t)(xorshift64(&r) % ((size_t)1 << sh));
        free(live[k]);
        long f0 = minor_faults();
        live[k] = malloc(n);
        for (size_t o = 0; o < n; o += 4096)
            live[k][o] = (char)i;
        faults[i * 3 / ROUNDS] += minor_faults() - f0;
    }
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    printf("j. Mixed Large/Huge churn, 16 live blocks of 64 KiB-8 MiB, %d replaced: page faults per "
           "third %ld %ld %ld; cache capacity %.0f MiB\n", ROUNDS, faults[0], faults[1], faults[2],
           (double)ad.huge_cache_cap / MiB);
    check_capacity_grew(ad.huge_cache_cap);
    CHECK(faults[2] * 2 < faults[0], "page faults %ld in the last third, %ld in the first",
          faults[2], faults[0]);
    for (int k = 0; k < LIVE; k++)
        free(live[k]);
}

/* i: HAKMEM_HUGE_CACHE_MB=256 (in a child): the capacity is 256 MiB from the
 * first free on and never changes, and the cache is used. */
static int fixed_cache(void)
{
    enum { LIVE = 20, ROUNDS = 200 };
    char *live[LIVE] = { 0 };
    uint64_t r = 7;
    long faults = 0;
    start_background();
    for (int i = 0; i < ROUNDS; i++) {
        int k = (int)(xorshift64(&r) % LIVE);
        size_t n = 5 * MiB + (size_t)(xorshift64(&r) % (20 * MiB));
        free(live[k]);
        long f0 = minor_faults();
        live[k] = malloc(n);
        memset(live[k], 1, n);
        faults += minor_faults() - f0;
    }
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    printf("i. HAKMEM_HUGE_CACHE_MB=256, the same churn, %d replaced: capacity %.0f MiB, %zu changes, "
           "%zu reuses, %ld page faults\n", ROUNDS, (double)ad.huge_cache_cap / MiB,
           ad.huge_cache_changes, ad.huge_reused, faults);
    CHECK(ad.huge_cache_cap == 256 * MiB, "fixed Huge cache capacity %zu", ad.huge_cache_cap);
    CHECK(ad.huge_cache_changes == 0, "fixed Huge cache capacity changed %zu times",
          ad.huge_cache_changes);
    CHECK(ad.huge_reused > ROUNDS / 2, "fixed Huge cache: %zu reuses of %d", ad.huge_reused, ROUNDS);
    for (int k = 0; k < LIVE; k++)
        free(live[k]);
    return test_done("test_background (HAKMEM_HUGE_CACHE_MB=256)");
}

/* g */
static volatile int stop_threads;

static char plugin_path[4096];          /* build/testlib/liballoc_plugin.so */
static long plugin_bad;

static void *dlopen_loop(void *arg)
{
    long *loads = arg;
    while (!stop_threads) {
        void *h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        void *z = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
        *loads += (h != NULL) + (z != NULL);
        if (z) {
            long (*work)(size_t) = (long (*)(size_t))dlsym(z, "plugin_work");
            plugin_bad += work == NULL || work(3 << 20) != (3 << 20) / 512;
            dlclose(z);
        } else {
            plugin_bad++;
        }
        if (h)
            dlclose(h);
    }
    return NULL;
}

static void *churn_loop(void *arg)
{
    uint64_t r = (uintptr_t)arg;
    void *live[64] = { 0 };
    while (!stop_threads) {
        int k = (int)(xorshift64(&r) % 64);
        free(live[k]);
        size_t n = (size_t)64 << (xorshift64(&r) % 12);    /* 64 B .. 128 KiB */
        live[k] = malloc(n);
        memset(live[k], 1, n < 4096 ? n : 4096);
        if (xorshift64(&r) % 4096 == 0) {       /* everything back, often */
            for (int j = 0; j < 64; j++) {
                free(live[j]);
                live[j] = NULL;
            }
        }
    }
    for (int j = 0; j < 64; j++)
        free(live[j]);
    return NULL;
}

static void no_deadlock(void)
{
    alarm(30);
    long loads = 0;
    int forks = 0, bad_children = 0;
    pthread_t dl, ch[2];
    pthread_create(&dl, NULL, dlopen_loop, &loads);
    for (int i = 0; i < 2; i++)
        pthread_create(&ch[i], NULL, churn_loop, (void *)(uintptr_t)(i + 1));
    double t0 = now_ms();
    while (now_ms() - t0 < 1500) {
        char *big = malloc(24 * MiB);            /* past 8 MiB: the thread runs */
        memset(big, 1, 24 * MiB);
        free(big);
        pid_t pid = fork();
        if (pid == 0) {
            char *p = malloc(16 * MiB);          /* the child's own thread */
            memset(p, 2, 16 * MiB);
            free(p);
            void *q = malloc(100);
            free(q);
            /* Not exit(): another thread may have held one of glibc's
             * locks at the fork (dlclose holds the atexit list's).  Exit
             * with the thread running is every test process's own end. */
            _exit(0);
        }
        forks++;
        bad_children += child_status(pid) != 0;
        usleep(20000);
    }
    stop_threads = 1;
    pthread_join(dl, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(ch[i], NULL);
    printf("g. 1.5 s of dlopen/dlclose of libm and a library that allocates (%ld loads), %d forks "
           "that allocate, 2 churning "
           "threads: no deadlock\n", loads, forks);
    CHECK(loads > 0 && plugin_bad == 0, "%ld loads; %ld failed loads or wrong sums of %s", loads,
          plugin_bad, plugin_path);
    CHECK(forks > 10, "only %d forks", forks);
    CHECK(bad_children == 0, "%d children did not exit cleanly", bad_children);
}

/* One line: what a cycled test did, the page faults of each cycle, then what
 * was learned after it. */
static void print_cycles(const char *what, const long *faults, const char *learned,
                         const long *value, int n)
{
    printf("%s: page faults per cycle", what);
    for (int c = 0; c < n; c++)
        printf(" %ld", faults[c]);
    printf("; %s", learned);
    for (int c = 0; c < n; c++)
        printf(" %ld", value[c]);
    printf("\n");
}

/* e: run in a child with HAKMEM_RETAIN_MS=50. */
static int learning(void)
{
    enum { CYCLES = 8 };
    table_init(48 * MiB);
    size_t base = rss();
    long faults[CYCLES], retain[CYCLES];
    for (int c = 0; c < CYCLES; c++) {
        long f0 = minor_faults();
        size_t n = fill(48 * MiB, 1000, 1000, 11);
        faults[c] = minor_faults() - f0;
        free_all(n, 11);
        usleep(200000);                 /* 4 retentions: the first frees are purged */
        retain[c] = stat_json("retain_ms");
    }
    print_cycles("e. HAKMEM_RETAIN_MS=50, 48 MiB back 200 ms after each free", faults,
                 "retention ms", retain, CYCLES);
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    CHECK(ad.retain_changes > 0 && (long)ad.retain_ms == retain[CYCLES - 1],
          "hak_stats_adaptive: %zu retention changes, %zu ms (the report: %ld)", ad.retain_changes,
          ad.retain_ms, retain[CYCLES - 1]);
    CHECK(retain[0] >= 50, "retention %ld ms, below the setting", retain[0]);
    CHECK(retain[CYCLES - 1] > 200, "retention %ld ms after %d cycles: it did not learn the 200 ms gap",
          retain[CYCLES - 1], CYCLES);
    CHECK(retain[CYCLES - 1] <= 50 * 64, "retention %ld ms, beyond 64 times the setting",
          retain[CYCLES - 1]);
    CHECK(faults[CYCLES - 1] * 4 < faults[0], "page faults %ld in the last cycle, %ld in the first",
          faults[CYCLES - 1], faults[0]);
    /* Stopped: what is kept still goes back within the longest retention. */
    size_t last;
    double took = wait_for_release(base, 50 * 64 + 1000, &last);
    printf("   then quiet: RSS %.1f MiB (before %.1f) after %.0f ms\n", (double)last / MiB,
           (double)base / MiB, took);
    CHECK(took >= 0, "RSS %.1f MiB %d ms after the last free (before %.1f)", (double)last / MiB,
          50 * 64 + 1000, (double)base / MiB);
    return test_done("test_background (learning)");
}

/* m: run in a child with HAKMEM_RETAIN_MS=50.  Huge blocks freed and taken
 * back 200 ms later: the first comes back after its mapping expired (page
 * faults); that expiry lengthens the retention, so the next ones come back
 * from the cache. */
static int huge_expiry(void)
{
    enum { CYCLES = 5, SIZE = 12 << 20 };
    long faults[CYCLES], retain[CYCLES];
    start_background();
    for (int c = 0; c < CYCLES; c++) {
        long f0 = minor_faults();
        volatile char *p = malloc(SIZE);    /* written through volatile: kept before free */
        for (size_t o = 0; o < SIZE; o += 4096)
            p[o] = 2;
        faults[c] = minor_faults() - f0;
        free((void *)p);
        usleep(200000);                     /* 4 retentions: the mapping expires */
        retain[c] = stat_json("retain_ms");
    }
    print_cycles("m. HAKMEM_RETAIN_MS=50, a 12 MiB Huge block freed and taken back 200 ms later",
                 faults, "retention ms", retain, CYCLES);
    CHECK(threads() == 2, "%ld threads: the background thread is not running", threads());
    CHECK(retain[CYCLES - 1] >= 400, "retention %ld ms: an expired Huge mapping wanted again 200 ms "
          "after its free did not lengthen it", retain[CYCLES - 1]);
    CHECK(faults[CYCLES - 1] * 8 < faults[0], "page faults %ld in the last cycle, %ld in the first",
          faults[CYCLES - 1], faults[0]);
    return test_done("test_background (Huge expiry)");
}

/* o: run in a child with HAKMEM_RETAIN_MS=10000 (no purge by age).  Big
 * blocks of which the program writes a page (a buffer sized for the worst
 * case): 160 MiB of free pages counted, 640 KiB of them resident. */
static int dirty_cap(void)
{
    enum { CYCLES = 5, N = 160, SIZE = 1 << 20 };
    long faults[CYCLES], cap[CYCLES];
    static char *blk[N];
    /* The pool's cap: 1 MiB blocks as Large slabs, not mappings of their own. */
    CHECK(hak_setting_set("HAKMEM_MAP_THRESHOLD_KB", 2048) == 0, "HAKMEM_MAP_THRESHOLD_KB=2048");
    start_background();
    long cap0 = stat_json("dirty_cap"), changes0 = stat_json("dirty_cap_changes");
    for (int c = 0; c < CYCLES; c++) {
        long f0 = minor_faults();
        for (int i = 0; i < N; i++) {
            blk[i] = malloc(SIZE);
            CHECK(blk[i] != NULL, "malloc(%d)", SIZE);
            blk[i][100] = (char)c;
        }
        faults[c] = minor_faults() - f0;
        for (int i = 0; i < N; i++)
            free(blk[i]);
        cap[c] = stat_json("dirty_cap") >> 20;
    }
    print_cycles("o. 160 x 1 MiB, a page of each written, freed and taken again", faults, "cap MiB",
                 cap, CYCLES);
    CHECK(threads() == 2, "%ld threads: the background thread is not running", threads());
    CHECK(cap0 == 64 << 20, "the cap starts at %ld bytes, not 64 MiB", cap0);
    CHECK(faults[1] >= N / 2, "%ld page faults in the second cycle: the cap purged nothing "
          "(the test needs it to)", faults[1]);
    CHECK(cap[CYCLES - 1] > 64 && stat_json("dirty_cap_changes") > changes0,
          "the cap stayed at %ld MiB: purged pages taken back did not raise it", cap[CYCLES - 1]);
    CHECK(cap[CYCLES - 1] <= 64 * 64, "the cap is %ld MiB, beyond 64 times 64 MiB", cap[CYCLES - 1]);
    CHECK(faults[CYCLES - 1] * 8 < faults[1], "page faults %ld in the last cycle, %ld in the second",
          faults[CYCLES - 1], faults[1]);
    return test_done("test_background (free page cap)");
}

/* A few slabs of 1 KiB blocks taken, all but the current one freed. */
static void slabs_taken_and_freed(void **q, int n)
{
    for (int i = 0; i < n; i++)
        q[i] = malloc(1024);
    for (int i = 0; i < n; i++)
        free(q[i]);
}

/* l: one churning thread: 8 live Large blocks, each tagged on its first
 * and last byte and checked before it is freed; every fourth a calloc. */
static int large_bad;
static pthread_barrier_t large_barrier;

static void *large_churn_thread(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    unsigned char *live[8] = { 0 };
    size_t size[8] = { 0 };
    for (int i = 0; i < 20000; i++) {
        unsigned k = (unsigned)(xorshift64(&seed) % 8);
        if (live[k]) {
            unsigned char tag = (unsigned char)(k + 1 + (uintptr_t)arg * 16);
            if (live[k][0] != tag || live[k][size[k] - 1] != tag)
                __atomic_add_fetch(&large_bad, 1, __ATOMIC_RELAXED);
            free(live[k]);
        }
        unsigned sh = 16 + (unsigned)(xorshift64(&seed) % 4);      /* 64 KiB .. 1 MiB */
        size[k] = ((size_t)1 << sh) + (size_t)(xorshift64(&seed) % ((size_t)1 << sh)) / 2;
        if (i % 4 == 0) {
            live[k] = calloc(1, size[k]);
            for (size_t o = 0; o < size[k]; o += 4096 / 4)
                if (live[k][o] != 0 || live[k][size[k] - 1] != 0) {
                    __atomic_add_fetch(&large_bad, 1, __ATOMIC_RELAXED);
                    break;
                }
        } else {
            live[k] = malloc(size[k]);
        }
        live[k][0] = live[k][size[k] - 1] = (unsigned char)(k + 1 + (uintptr_t)arg * 16);
        memset(live[k] + 1, 0x77, 256);         /* dirty: the next calloc must clear it */
    }
    for (unsigned k = 0; k < 8; k++)
        free(live[k]);
    if (arg == (void *)1) {             /* then, alone, small blocks only, past a retention */
        pthread_barrier_wait(&large_barrier);
        for (int round = 0; round < 80; round++) {
            void *q[256];
            for (int j = 0; j < 256; j++)
                q[j] = malloc(1024);
            for (int j = 0; j < 256; j++)
                free(q[j]);
            usleep(10000);
        }
        struct hak_stats st;
        hak_stats_get(&st);
        return (void *)st.slabs;
    }
    return NULL;
}

static bool large_fixed;                /* run with HAKMEM_LARGE_CACHE_MB=16 */

/* l, with HAKMEM_LARGE_CACHE_MB=16: 12 MiB of 1 MiB blocks freed stay in
 * this thread's cache; blocks of another class must then get those pages
 * (the cache yields them to the pool) rather than fault in fresh ones. */
static void large_cache_yields(void)
{
    enum { N = 12, M = 3 };
    char *p[N];
    /* The Large cache: 1 MiB blocks as Large slabs, not mappings of their own. */
    CHECK(hak_setting_set("HAKMEM_MAP_THRESHOLD_KB", 2048) == 0, "HAKMEM_MAP_THRESHOLD_KB=2048");
    for (int i = 0; i < N; i++) {
        p[i] = malloc(1000000);
        memset(p[i], 1, 1000000);
    }
    for (int i = 0; i < N; i++)
        free(p[i]);
    long kept = stat_json("large_kept_bytes");
    long f0 = minor_faults();
    for (int i = 0; i < M; i++) {
        p[i] = malloc(2000000);
        memset(p[i], 2, 2000000);
    }
    long faults = minor_faults() - f0;
    printf("l. Large cache (HAKMEM_LARGE_CACHE_MB=16): %d blocks of 1 MiB freed, %.1f MiB kept; "
           "then %d blocks of 2 MiB written: %ld page faults\n", N, (double)kept / MiB, M, faults);
    CHECK(kept >= 12 * 1000000, "only %ld bytes of the freed 1 MiB blocks were kept", kept);
    CHECK(faults < 100, "%ld page faults writing 6 MiB of Large blocks while 12 MiB of other "
          "Large slabs were kept: the cache did not yield them", faults);
    for (int i = 0; i < M; i++)
        free(p[i]);
}

static void large_cache(void)
{
    struct hak_stats st0, st1;
    CHECK(hak_setting_set("HAKMEM_MAP_THRESHOLD_KB", 2048) == 0, "HAKMEM_MAP_THRESHOLD_KB=2048");
    hak_stats_get(&st0);
    long reused0 = stat_json("large_reused");
    pthread_t th[2];
    pthread_barrier_init(&large_barrier, NULL, 2);
    pthread_create(&th[0], NULL, large_churn_thread, (void *)1);
    pthread_create(&th[1], NULL, large_churn_thread, (void *)2);
    void *slabs_after_small;
    pthread_join(th[1], NULL);
    pthread_barrier_wait(&large_barrier);
    pthread_join(th[0], &slabs_after_small);
    long reused = stat_json("large_reused") - reused0;
    hak_stats_get(&st1);
    printf("l. Large cache%s: 2 threads x 20000 Large mallocs: %ld reused from the threads' caches, "
           "%d bad blocks; slabs %zu before, %zu while one thread worked on small blocks, %zu after "
           "both exited\n", large_fixed ? " (HAKMEM_LARGE_CACHE_MB=16)" : "", reused, large_bad, st0.slabs, (size_t)slabs_after_small, st1.slabs);
    CHECK(large_bad == 0, "%d Large blocks were overwritten or not zeroed by calloc", large_bad);
    /* Learned, the budget grows only while the pool's lock is contended,
     * which depends on how the two threads are scheduled. */
    if (large_fixed) {
        CHECK(reused > 20000, "only %ld of 40000 Large mallocs reused a kept slab", reused);
        CHECK(stat_json("large_budget_changes") == 0, "a fixed Large cache budget changed %ld "
              "times", stat_json("large_budget_changes"));
    }
    CHECK((size_t)slabs_after_small <= st0.slabs + 8, "%zu slabs once the other thread had "
          "exited and this one had worked on small blocks for 800 ms (%zu before)",
          (size_t)slabs_after_small, st0.slabs);
    CHECK(st1.slabs <= st0.slabs + 2, "%zu slabs after both threads exited, %zu before",
          st1.slabs, st0.slabs);
}

/* k: run in a child with HAKMEM_RETAIN_MS=50. */
static int pause_resume(void)
{
    enum { TRIGGER = 256 };
    void *q[TRIGGER];
    table_init(8 * MiB);                /* 6 MiB of 512-1024-byte blocks: two SuperSlabs */
    size_t n = fill(6 * MiB, 512, 1024, 5);
    free_all(n, 5);
    usleep(300000);                     /* no call: the free pages age 6 retentions */
    long f0 = minor_faults();
    slabs_taken_and_freed(q, TRIGGER);
    n = fill(6 * MiB, 512, 1024, 5);
    long faults = minor_faults() - f0;
    free_all(n, 5);
    /* Paused again, then active without those pages: they still go, a
     * retention after the pause ended. */
    usleep(300000);
    size_t before = rss();
    for (int i = 0; i < 30; i++) {
        slabs_taken_and_freed(q, TRIGGER);
        usleep(10000);
    }
    size_t after = rss();
    printf("k. HAKMEM_RETAIN_MS=50, 6 MiB freed, 300 ms of pause, then taken back: %ld page "
           "faults, %ld thread(s); freed again, paused, then 300 ms of other work: RSS %.1f -> "
           "%.1f MiB\n", faults, threads(), (double)before / MiB, (double)after / MiB);
    CHECK(threads() == 1, "a 6 MiB program has %ld threads", threads());
    CHECK(faults < (long)(6 * MiB / 4096 / 8), "%ld page faults taking back 6 MiB of free pages "
          "after a pause: the first frees after it purged them", faults);
    CHECK(after + MiB < before, "RSS %.1f -> %.1f MiB: free pages kept through 6 retentions of "
          "work after a pause", (double)before / MiB, (double)after / MiB);
    return test_done("test_background (pause)");
}

/* c: the fork child has no thread until it needs one. */
static void fork_child_burst(void)
{
    CHECK(threads() == 1, "fork child: %ld threads before it allocates", threads());
    burst_and_wait("c. fork child, 256 MiB", 256 * MiB, 5);
}

/* fn in a fork child, its checks reported by its exit status. */
static void run_forked(const char *label, void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        t_checks = t_failures = 0;
        fn();
        fflush(stdout);
        _exit(t_failures ? 1 : 0);
    }
    int st = child_status(pid);
    CHECK(st == 0, "%s: child status %d%s", label, st, st == 128 + SIGALRM ? " (deadlock: alarm)" : "");
}

/* 1 if the mapping holding address a may have transparent huge pages
 * (MADV_HUGEPAGE: "hg" among its VmFlags), 0 if not, -1 if not found. */
static int vma_huge_flag(const void *a)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL)
        return -1;
    char line[512];
    bool inside = false;
    int flag = -1;
    while (flag < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = (uintptr_t)a >= lo && (uintptr_t)a < hi;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0)
            flag = strstr(line, " hg") != NULL;
    }
    fclose(f);
    return flag;
}

/* "[madvise]" or "[always]": the kernel grants huge pages where asked. */
static bool thp_available(void)
{
    char buf[128] = "";
    int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    return strstr(buf, "[madvise]") || strstr(buf, "[always]");
}

/* n: Huge blocks' mappings flagged for huge pages (on) or not at all. */
static int huge_pages(bool on)
{
    size_t n = 14 * MiB;
    char *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu)", n);
    long before = minor_faults();
    memset(p, 1, n);
    long faults = minor_faults() - before;
    int inner = vma_huge_flag(p + n / 2), tail = vma_huge_flag(p + n - 1);
    CHECK(inner == on && tail == 0, "a 14 MiB block's middle is flagged %d, its end %d (want %d, 0)",
          inner, tail, on);
    if (on && thp_available())
        CHECK(faults < 512, "writing a 14 MiB block faulted in %ld pages", faults);
    /* Grown by mremap, which takes one VMA only, not copied. */
    long remaps = stat_json("os_remaps");
    p = realloc(p, n + 6 * MiB);
    CHECK(p != NULL && p[0] == 1 && p[n - 1] == 1, "realloc to %zu lost the block", n + 6 * MiB);
    CHECK(stat_json("os_remaps") == remaps + 1, "realloc of a Huge block: %ld mremap calls, want 1",
          stat_json("os_remaps") - remaps);
    memset(p + n, 1, 6 * MiB);
    CHECK(vma_huge_flag(p + n) == on && vma_huge_flag(p + n + 6 * MiB - 1) == 0,
          "the grown block is flagged %d in its new part, %d at its end", vma_huge_flag(p + n),
          vma_huge_flag(p + n + 6 * MiB - 1));
    free(p);
    /* The same mapping again (cached), for a block that ends sooner: what
     * lay inside the last block but not this one is no longer flagged. */
    char *q = malloc(6 * MiB);
    CHECK(q != NULL, "malloc(6 MiB)");
    int q_inner = vma_huge_flag(q + MiB), q_end = vma_huge_flag(q + 6 * MiB - 1);
    CHECK(q_inner == on && q_end == 0, "a 6 MiB block (%s) is flagged %d in its middle, %d at its end",
          q == p ? "from the cache" : "a fresh mapping", q_inner, q_end);
    memset(q, 2, 6 * MiB);
    printf("n. HAKMEM_HUGE_PAGES=%d: a 14 MiB block flagged for huge pages %s, written with %ld page "
           "faults (THP %s), grown by mremap; a 6 MiB block %s: flagged %s, its end not\n",
           on, on ? "inside, not at its end" : "nowhere", faults,
           thp_available() ? "available" : "off on this system", q == p ? "from the cache" : "mapped",
           on ? "inside" : "nowhere");
    free(q);
    /* calloc from a fresh mapping: left on small pages (sparse tables). */
    size_t rss0 = rss();
    char *z = calloc(1, 200 * MiB);
    size_t grew = rss() - rss0;
    CHECK(z != NULL && vma_huge_flag(z + 100 * MiB) == 0, "a fresh 200 MiB calloc'd block is flagged %d",
          z ? vma_huge_flag(z + 100 * MiB) : -1);
    CHECK(grew < 32 * MiB, "calloc(200 MiB) made %zu MiB resident", grew / MiB);
    for (size_t at = 0; z != NULL && at < 200 * MiB; at += 3 * MiB + 4095)
        CHECK(z[at] == 0, "calloc'd byte %zu is %d", at, z[at]);
    free(z);
    return on ? test_done("test_background (HAKMEM_HUGE_PAGES=1)") : 0;
}

/* r: a block's bytes, from its address and size (its pattern). */
static unsigned char block_byte(const void *p, size_t i, size_t n)
{
    return (unsigned char)(((uintptr_t)p >> 4) + n + i * 7);
}

static void block_write(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = block_byte(p, i, n);
}

static bool block_intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != block_byte(p, i, n))
            return false;
    return true;
}

/* r: 256 MiB of 8-64 KiB blocks, 90% freed at random; released: whether
 * the pages inside the free ones must go back (the thread on) or stay. */
static int survivors(bool released)
{
    const size_t bytes = 256 * MiB;
    table_init(bytes);
    size_t *size = mmap(NULL, table_cap * sizeof *size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(size != MAP_FAILED, "mmap");
    memset(size, 0, table_cap * sizeof *size);
    size_t base = rss(), n = 0, got = 0;
    uint64_t seed = 11;
    while (got < bytes) {
        size[n] = 8192 + (size_t)(xorshift64(&seed) % (56 * 1024 + 1));
        table[n] = malloc(size[n]);
        CHECK(table[n] != NULL, "malloc(%zu)", size[n]);
        block_write(table[n], size[n]);
        got += size[n++];
    }
    size_t live = 0, kept = 0;
    for (size_t i = 0; i < n; i++)       /* every tenth survives */
        if (xorshift64(&seed) % 10 == 0) {
            table[kept] = table[i];
            size[kept++] = size[i];
            live += size[i];
        } else {
            free(table[i]);
        }
    size_t bound = base + 3 * live, last = rss();
    double t0 = now_ms(), took = -1;
    while (now_ms() - t0 < 2000) {
        last = rss();
        if (last <= bound && took < 0)
            took = now_ms() - t0;
        usleep(10000);
    }
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    printf("r. %s: %zu blocks of 8-64 KiB (256 MiB), %zu kept (%.1f MiB): RSS %.1f MiB before, "
           "%.1f MiB 2 s after the frees with no allocator call (bound %.1f MiB, reached after "
           "%.0f ms); pages of free blocks released %.1f MiB\n",
           released ? "thread on" : "HAKMEM_BACKGROUND=0", n, kept, (double)live / MiB,
           (double)base / MiB, (double)last / MiB, (double)bound / MiB, took,
           (double)ad.block_pages_released / MiB);
    CHECK((ad.block_pages_released > 0) == released, "%zu bytes of free blocks' pages released "
          "by the thread", ad.block_pages_released);
    if (released)
        CHECK(took >= 0, "RSS %.1f MiB 2 s after the frees, bound %.1f: the pages of free "
              "blocks in partial slabs were kept", (double)last / MiB, (double)bound / MiB);
    else
        CHECK(last > bound, "RSS %.1f MiB with HAKMEM_BACKGROUND=0, within the bound %.1f: "
              "the test cannot tell the release from its absence", (double)last / MiB,
              (double)bound / MiB);
    if (!released) {                    /* malloc_trim does it at once, thread or none */
        size_t r0 = ad.block_pages_released;
        CHECK(malloc_trim(0) == 1, "malloc_trim(0) says it released nothing");
        hak_stats_adaptive(&ad);
        printf("r. HAKMEM_BACKGROUND=0, then malloc_trim(0): RSS %.1f MiB (bound %.1f); pages of "
               "free blocks released %.1f MiB\n", (double)rss() / MiB, (double)bound / MiB,
               (double)(ad.block_pages_released - r0) / MiB);
        CHECK(rss() <= bound, "RSS %.1f MiB after malloc_trim(0), bound %.1f", (double)rss() / MiB,
              (double)bound / MiB);
    }
    size_t broken = 0;
    for (size_t i = 0; i < kept; i++)
        broken += !block_intact(table[i], size[i]);
    CHECK(broken == 0, "%zu of %zu surviving blocks changed", broken, kept);
    /* the freed blocks, taken again: written and read back whole */
    for (size_t i = kept; i < n; i++) {
        table[i] = malloc(size[i]);
        CHECK(table[i] != NULL, "malloc(%zu)", size[i]);
        block_write(table[i], size[i]);
    }
    for (size_t i = 0; i < n; i++) {
        broken += !block_intact(table[i], size[i]);
        free(table[i]);
    }
    CHECK(broken == 0, "%zu of %zu blocks changed after the freed ones were taken again", broken, n);
    munmap(size, table_cap * sizeof *size);
    return test_done(released ? "test_background (survivors)" : "test_background (survivors, no thread)");
}

/* r, with HAKMEM_RETAIN_MS=1: blocks replaced while the thread releases. */
static long churn_broken;

static void *survivor_churn(void *arg)
{
    enum { LIVE = 1500, STEPS = 60000 };
    uint64_t seed = (uintptr_t)arg * 7919 + 3;
    unsigned char *blk[LIVE];
    size_t sz[LIVE];
    for (int i = 0; i < LIVE; i++) {
        sz[i] = 8192 + (size_t)(xorshift64(&seed) % (56 * 1024 + 1));
        blk[i] = malloc(sz[i]);
        block_write(blk[i], sz[i]);
    }
    long broken = 0;
    for (int step = 0; step < STEPS; step++) {
        int k = (int)(xorshift64(&seed) % LIVE);
        broken += !block_intact(blk[k], sz[k]);
        free(blk[k]);
        /* one class at a time, in turn: the others' slabs sit unchanged
         * (so the thread releases their free blocks) until their turn */
        sz[k] = 8192 * (size_t)(1 + (step / 100) % 8);
        blk[k] = malloc(sz[k]);
        block_write(blk[k], sz[k]);
    }
    for (int i = 0; i < LIVE; i++) {
        broken += !block_intact(blk[i], sz[i]);
        free(blk[i]);
    }
    __atomic_add_fetch(&churn_broken, broken, __ATOMIC_RELAXED);
    return NULL;
}

static int survivors_churn(void)
{
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, survivor_churn, (void *)(uintptr_t)(i + 1)) == 0,
              "pthread_create");
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    printf("r. HAKMEM_RETAIN_MS=1: 2 threads replaced 120,000 blocks of 8-64 KiB, 1500 live each, "
           "one class at a time: %ld live blocks changed; released by the thread %.1f MiB\n",
           churn_broken, (double)ad.block_pages_released / MiB);
    CHECK(churn_broken == 0, "%ld live blocks changed while free ones were released", churn_broken);
    CHECK(ad.block_pages_released > 0, "no page of a free block released: the race was not "
          "exercised");
    return test_done("test_background (survivors, churn)");
}

/* r, with HAKMEM_RETAIN_MS=50: a heap that swings at a pause. */
static int survivors_swing(void)
{
    enum { N = 4000, CYCLES = 8, SIZE = 32768 };
    table_init((size_t)N * 1024);
    for (size_t i = 0; i < N; i++) {
        table[i] = malloc(SIZE);
        CHECK(table[i] != NULL, "malloc");
        memset(table[i], 1, SIZE);
    }
    long faults[CYCLES];
    size_t released[CYCLES];
    struct hak_adaptive_stats ad;
    for (int c = 0; c < CYCLES; c++) {
        for (size_t i = 1; i < N; i += 2)
            free(table[i]);
        usleep(250 * 1000);
        long f0 = minor_faults();
        for (size_t i = 1; i < N; i += 2) {
            table[i] = malloc(SIZE);
            CHECK(table[i] != NULL, "malloc");
            memset(table[i], 2, SIZE);
        }
        faults[c] = minor_faults() - f0;
        hak_stats_adaptive(&ad);
        released[c] = ad.block_pages_released;
    }
    printf("r. HAKMEM_RETAIN_MS=50, half of 4000 32 KiB blocks freed, 250 ms of pause, taken back: "
           "page faults per cycle");
    for (int c = 0; c < CYCLES; c++)
        printf(" %ld", faults[c]);
    printf("; free blocks' pages released %.1f MiB; retention %zu ms\n",
           (double)released[CYCLES - 1] / MiB, ad.retain_ms);
    CHECK(released[CYCLES - 1] > 0, "no page of a free block released in a pause");
    CHECK(ad.retain_ms >= 250, "retention %zu ms: the releases taken back did not lengthen it past "
          "the pause", ad.retain_ms);
    for (int c = CYCLES - 3; c < CYCLES; c++)
        CHECK(faults[c] < 100 && released[c] == released[CYCLES - 4], "cycle %d: %ld page faults, "
              "%zu bytes released so far: pages still released at every pause", c, faults[c],
              released[c]);
    for (size_t i = 0; i < N; i++)
        free(table[i]);
    return test_done("test_background (survivors, swings)");
}

/* s: the pool pages Large slabs held count in their band when purged. */
static void band_released(void)
{
    enum { N = 240, SIZE = 200 * 1024 };
    void *b[N];
    struct hak_band_stats k0, k1, below0, below1;
    CHECK(hak_stats_band(1, &k0) == 0 && hak_stats_band(0, &below0) == 0, "hak_stats_band");
    for (int i = 0; i < N; i++) {
        b[i] = malloc(SIZE);
        CHECK(b[i] != NULL, "malloc");
        memset(b[i], 3, SIZE);
    }
    for (int i = 0; i < N; i++)
        free(b[i]);
    double t0 = now_ms();
    do {
        usleep(20000);
        hak_stats_band(1, &k1);
    } while (k1.released_bytes == k0.released_bytes && now_ms() - t0 < 2000);
    usleep(300000);                     /* whatever else is due */
    hak_stats_band(1, &k1);
    hak_stats_band(0, &below1);
    printf("s. 48 MiB of 200 KiB blocks freed: the 128-256 KiB band counts %.1f MiB released by the "
           "background thread (the frees purged the rest: empty SuperSlabs beyond those kept), "
           "the band below %.1f MiB\n", (double)(k1.released_bytes - k0.released_bytes) / MiB,
           (double)(below1.released_bytes - below0.released_bytes) / MiB);
    CHECK(k1.released_bytes > k0.released_bytes &&
          k1.released_bytes - k0.released_bytes <= (size_t)N * 256 * 1024,
          "band 1 released %zu bytes, %zu freed in slabs of 256 KiB",
          k1.released_bytes - k0.released_bytes, (size_t)N * 256 * 1024);
    CHECK(below1.released_bytes == below0.released_bytes, "band 0 released %zu bytes",
          below1.released_bytes - below0.released_bytes);
}

/* t: in a fork child, zero: calloc instead of malloc.  Four freed 8 MiB
 * mappings, each between two live ones (so no two join in the cache), then
 * a 28 MiB block (a 32 MiB mapping) made of them. */
static void gathered(bool zero)
{
    enum { PARTS = 4 };
    char *part[PARTS], *keep[PARTS + 1];
    size_t n = 8 * MiB - 4096, big = 28 * MiB;     /* each part's mapping written whole */
    for (int i = 0; i < PARTS; i++) {
        keep[i] = malloc(n);
        part[i] = malloc(n);
        CHECK(keep[i] != NULL && part[i] != NULL, "malloc(%zu)", n);
        memset(part[i], 0xab, n);
        __asm__ volatile("" : : "r"(part[i]) : "memory");  /* written before its free */
    }
    keep[PARTS] = malloc(n);
    for (int i = 0; i < PARTS; i++)
        free(part[i]);
    long remaps = stat_json("os_remaps"), f0 = minor_faults();
    char *p = zero ? calloc(1, big) : malloc(big);
    CHECK(p != NULL, "%s(28 MiB)", zero ? "calloc" : "malloc");
    long nonzero = 0;
    for (size_t o = 0; zero && o < big; o += 4096)
        nonzero += p[o] != 0 || p[o + 4095] != 0;
    memset(p, 1, big);
    long faults = minor_faults() - f0, moves = stat_json("os_remaps") - remaps;
    printf("t. a 28 MiB %s from four cached 8 MiB mappings: %ld mremap calls, %ld page faults "
           "(%zu pages)\n", zero ? "calloc" : "malloc", moves, faults, big / 4096);
    CHECK(moves >= PARTS - 1, "%ld mremap calls, want at least %d", moves, PARTS - 1);
    CHECK(faults < (long)(big / 4096 / 8), "writing the block faulted in %ld pages", faults);
    CHECK(nonzero == 0, "%ld pages of the calloc'd block not zero", nonzero);
    free(p);
    for (int i = 0; i <= PARTS; i++)
        free(keep[i]);
}
static void gathered_malloc(void) { gathered(false); }
static void gathered_calloc(void) { gathered(true); }

/* u: in a fork child. */
static void fit_by_written(void)
{
    malloc_trim(0);                     /* nothing cached before */
    size_t small = 2 * MiB + 100 * 1024, big = 4 * MiB - 64 * 1024, want = big - 64 * 1024;
    char *keep[3], *a, *b;
    keep[0] = malloc(small);
    a = malloc(small);
    keep[1] = malloc(small);
    b = malloc(big);
    keep[2] = malloc(small);
    CHECK(a && b && keep[0] && keep[1] && keep[2], "malloc");
    memset(a, 1, small);
    memset(b, 1, big);
    __asm__ volatile("" : : "r"(a), "r"(b) : "memory");     /* written before the frees */
    free(a);
    free(b);
    long f0 = minor_faults();
    char *p = malloc(want);
    memset(p, 2, want);
    long f1 = minor_faults();
    char *q = malloc(2 * MiB);
    memset(q, 3, 2 * MiB);
    long f2 = minor_faults();
    printf("u. cached mappings written 2.1 and 3.9 MiB far: a 3.8 MiB block %s (%ld page faults), "
           "a 2 MiB block %s (%ld)\n", p == b ? "took the second" : p == a ? "took the first" : "was mapped",
           f1 - f0, q == a ? "the first" : "another", f2 - f1);
    CHECK(p == b && f1 - f0 < 32, "the 3.8 MiB block: %s, %ld page faults",
          p == b ? "the mapping written furthest" : "another mapping", f1 - f0);
    CHECK(q == a && f2 - f1 < 32, "the 2 MiB block: %s, %ld page faults",
          q == a ? "the other mapping" : "not the other cached mapping", f2 - f1);
    free(p);
    free(q);
    for (int i = 0; i < 3; i++)
        free(keep[i]);
}

/* env: one or more NAME=VALUE separated by spaces. */
static void run_env_child(const char *self, const char *mode, const char *env)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (char *e = strdup(env), *next; e != NULL; e = next) {
            next = strchr(e, ' ');
            if (next)
                *next++ = 0;
            putenv(e);
        }
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    int st = child_status(pid);
    CHECK(st == 0, "%s child (%s) exited with %d", mode, env, st);
}

/* h: several threads call exit() at once while the thread runs. */
static pthread_barrier_t exit_barrier;

static void *exit_thread(void *arg)
{
    char *p = malloc(12 * MiB);
    memset(p, 3, 12 * MiB);
    free(p);
    pthread_barrier_wait(&exit_barrier);
    exit(0);
    return arg;
}

static void exits_at_once(void)
{
    enum { N = 4 };
    pthread_t t[N];
    alarm(30);
    pthread_barrier_init(&exit_barrier, NULL, N);
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, exit_thread, NULL);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    CHECK(0, "no thread's exit() ended the process");
}

/* p, in a band that stays mapped. */
static int learned_place(void)
{
    enum { ROUNDS = 2500, LATE = 300 };
    const size_t big = 600 * 1024, small = 100 * 1024;
    static char *kept[ROUNDS];
    struct hak_band_stats before, late, after;
    CHECK(hak_stats_band(3, &before) == 0 && before.learned && before.maps &&
              before.size_min == MiB / 2 && before.size_max == 1 * MiB,
          "band 3 at start: (%zu, %zu] learned %d maps %d", before.size_min, before.size_max,
          before.learned, before.maps);
    for (int i = 0; i < ROUNDS; i++) {
        if (i == ROUNDS - LATE)
            hak_stats_band(3, &late);
        char *volatile p = malloc(big);
        memset(p, i & 0xff, big);
        CHECK(p[big - 1] == (char)(i & 0xff), "600 KiB block %d lost its bytes", i);
        free(p);
        kept[i] = malloc(small);
        memset(kept[i], (i * 7) & 0xff, small);
    }
    hak_stats_band(3, &after);
    for (int i = 0; i < ROUNDS; i++)
        CHECK(kept[i][0] == (char)((i * 7) & 0xff) && kept[i][small - 1] == (char)((i * 7) & 0xff),
              "100 KiB block %d lost its bytes", i);
    size_t reused = after.reused - late.reused;
    printf("p. 600 KiB buffers between kept 100 KiB blocks: %s, %zu matches, %zu switches; in the "
           "last %d rounds %zu served by the Huge cache, %zu KiB not resident\n",
           after.maps ? "mapped" : "Large slabs", after.matches, after.switches, LATE, reused,
           (after.fresh_bytes - late.fresh_bytes) >> 10);
    CHECK(after.allocs - before.allocs == ROUNDS && after.bytes - before.bytes == ROUNDS * big,
          "band 3 counted %zu mallocs of %d", after.allocs - before.allocs, ROUNDS);
    CHECK(after.maps && after.switches == 0 && after.matches == 0,
          "band 3: maps %d, %zu matches, %zu switches", after.maps, after.matches, after.switches);
    CHECK(reused == LATE && after.fresh_bytes == late.fresh_bytes,
          "%zu of the last %d 600 KiB blocks from the Huge cache, %zu bytes faulted in", reused,
          LATE, after.fresh_bytes - late.fresh_bytes);
    for (int i = 0; i < ROUNDS; i++)
        free(kept[i]);
    return test_done("test_background (learned place, mapped)");
}

/* p, in a band that learns Large slabs (HAKMEM_HUGE_CACHE_MB=4). */
static int learned_large(void)
{
    enum { ROUNDS = 400, LATE = 50, N = 8 };
    const size_t big = 600 * 1024;
    char *b[N] = { 0 };
    struct hak_band_stats late, after;
    for (int r = 0; r < ROUNDS; r++) {
        if (r == ROUNDS - LATE)
            hak_stats_band(3, &late);
        for (int i = 0; i < N; i++) {
            if (b[i] != NULL)
                CHECK(b[i][0] == (char)(r + i) && b[i][big - 1] == (char)(r + i),
                      "round %d: block %d lost its bytes", r, i);
            free(b[i]);
        }
        for (int i = 0; i < N; i++) {
            b[i] = malloc(big);
            memset(b[i], (char)(r + 1 + i), big);
        }
    }
    hak_stats_band(3, &after);
    size_t late_fresh = after.fresh_bytes - late.fresh_bytes;
    printf("p. 8 600 KiB blocks freed and allocated again %d times, a Huge cache of 4 MiB: %s after "
           "%zu matches, %zu switches (ratings large %d, map %d); the last %d rounds faulted in "
           "%zu KiB\n", ROUNDS, after.maps ? "mapped" : "Large slabs", after.matches, after.switches,
           after.rating_large, after.rating_map, LATE, late_fresh >> 10);
    CHECK(!after.maps && after.switches >= 1 && after.rating_large > after.rating_map &&
              after.rating_large + after.rating_map == 2 * 1500,
          "band 3 did not learn Large slabs: maps %d, %zu switches, ratings %d/%d", after.maps,
          after.switches, after.rating_large, after.rating_map);
    CHECK(late_fresh < (after.bytes - late.bytes) / 8, "the last %d rounds faulted in %zu of %zu bytes",
          LATE, late_fresh, after.bytes - late.bytes);
    for (int i = 0; i < N; i++)
        free(b[i]);
    return test_done("test_background (learned place, Large)");
}

/* q. */
static int fixed_place(void)
{
    struct hak_stats st0, st1;
    struct hak_band_stats b3, b4;
    hak_stats_get(&st0);
    char *volatile m = malloc(1536 * 1024), *volatile l = malloc(600 * 1024);
    char *volatile z = calloc(1, 1536 * 1024);
    hak_stats_get(&st1);
    CHECK(st1.huge_blocks - st0.huge_blocks == 2, "%zu of malloc(1.5 MiB), calloc(1.5 MiB) and "
          "malloc(600 KiB) are mapped, not 2", st1.huge_blocks - st0.huge_blocks);
    size_t zeros = 0;
    for (size_t i = 0; i < 1536 * 1024; i += 4096)
        zeros += z[i] == 0;
    CHECK(zeros == 384, "calloc'd block: %zu of 384 pages read as zero", zeros);
    memset(m, 5, 1536 * 1024);
    memset(l, 6, 600 * 1024);
    char *volatile l2 = realloc(l, 1800 * 1024);     /* copied into a mapping */
    hak_stats_get(&st1);
    CHECK(l2 && l2[600 * 1024 - 1] == 6 && st1.huge_blocks - st0.huge_blocks == 3,
          "realloc of 600 KiB to 1.8 MiB: byte %d, %zu mapped blocks", l2 ? l2[600 * 1024 - 1] : -1,
          st1.huge_blocks - st0.huge_blocks);
    hak_stats_band(3, &b3);
    hak_stats_band(4, &b4);
    CHECK(!b3.learned && !b4.learned && !b3.maps && b4.maps && b4.matches == 0 && b4.switches == 0,
          "fixed at 1024 KiB: band 3 learned %d maps %d, band 4 learned %d maps %d, %zu matches",
          b3.learned, b3.maps, b4.learned, b4.maps, b4.matches);
    printf("q. HAKMEM_MAP_THRESHOLD_KB=1024: 1.5 MiB malloc and calloc and a realloc to 1.8 MiB "
           "mapped, 600 KiB Large; nothing learned\n");
    free(m);
    free(l2);
    free(z);
    return test_done("test_background (fixed place)");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--off") == 0)
        return background_off();
    if (argc > 1 && strcmp(argv[1], "--learn") == 0)
        return learning();
    if (argc > 1 && strcmp(argv[1], "--fixed-cache") == 0)
        return fixed_cache();
    if (argc > 1 && strcmp(argv[1], "--pause") == 0)
        return pause_resume();
    if (argc > 1 && strcmp(argv[1], "--huge-expiry") == 0)
        return huge_expiry();
    if (argc > 1 && strcmp(argv[1], "--dirty-cap") == 0)
        return dirty_cap();
    if (argc > 1 && strcmp(argv[1], "--learned-place") == 0)
        return learned_place();
    if (argc > 1 && strcmp(argv[1], "--learned-large") == 0)
        return learned_large();
    if (argc > 1 && strcmp(argv[1], "--fixed-place") == 0)
        return fixed_place();
    if (argc > 1 && strcmp(argv[1], "--survivors") == 0)
        return survivors(true);
    if (argc > 1 && strcmp(argv[1], "--survivors-off") == 0)
        return survivors(false);
    if (argc > 1 && strcmp(argv[1], "--survivors-churn") == 0)
        return survivors_churn();
    if (argc > 1 && strcmp(argv[1], "--survivors-swing") == 0)
        return survivors_swing();
    if (argc > 1 && strcmp(argv[1], "--huge-pages") == 0)
        return huge_pages(true);
    if (argc > 1 && strcmp(argv[1], "--large-cache") == 0) {
        large_fixed = true;
        large_cache_yields();
        large_cache();
        return test_done("test_background (HAKMEM_LARGE_CACHE_MB=16)");
    }

    /* a. small: a few MiB, no thread */
    void *small[64];
    for (int i = 0; i < 64; i++)
        small[i] = malloc(16 << 10);
    for (int i = 0; i < 64; i++)
        free(small[i]);
    printf("a. 1 MiB allocated and freed: %ld thread(s)\n", threads());
    CHECK(threads() == 1, "a small program has %ld threads", threads());

    /* b. the burst */
    table_init(1024 * MiB);
    burst_and_wait("b. 1 GiB", 1024 * MiB, 3);

    run_forked("c. fork", fork_child_burst);
    run_forked("f. Huge churn", huge_churn);
    run_forked("j. mixed churn", mixed_churn);
    run_forked("l. Large cache", large_cache);
    run_forked("s. band released", band_released);
    run_forked("t. gathered", gathered_malloc);
    run_forked("t. gathered (calloc)", gathered_calloc);
    run_forked("u. fit by pages written", fit_by_written);
    const char *slash = strrchr(argv[0], '/');
    snprintf(plugin_path, sizeof plugin_path, "%.*s/../testlib/liballoc_plugin.so",
             slash ? (int)(slash - argv[0]) : 1, slash ? argv[0] : ".");
    run_forked("g. dlopen/fork", no_deadlock);
    huge_pages(false);                  /* the default: small pages only */
    for (int i = 0; i < 5; i++)
        run_forked("h. exit() from 4 threads at once", exits_at_once);
    printf("h. exit() from 4 threads at once, 5 times: every process ended with status 0\n");

    run_env_child(argv[0], "--off", "HAKMEM_BACKGROUND=0");
    run_env_child(argv[0], "--learn", "HAKMEM_RETAIN_MS=50");
    run_env_child(argv[0], "--fixed-cache", "HAKMEM_HUGE_CACHE_MB=256");
    run_env_child(argv[0], "--pause", "HAKMEM_RETAIN_MS=50");
    run_env_child(argv[0], "--large-cache", "HAKMEM_LARGE_CACHE_MB=16");
    run_env_child(argv[0], "--huge-expiry", "HAKMEM_RETAIN_MS=50");
    run_env_child(argv[0], "--huge-pages", "HAKMEM_HUGE_PAGES=1");
    run_env_child(argv[0], "--dirty-cap", "HAKMEM_RETAIN_MS=10000");
    run_env_child(argv[0], "--learned-place", "HAKMEM_BACKGROUND=0 HAKMEM_RETAIN_MS=600000");
    run_env_child(argv[0], "--learned-large",
                  "HAKMEM_BACKGROUND=0 HAKMEM_RETAIN_MS=600000 HAKMEM_HUGE_CACHE_MB=4");
    run_env_child(argv[0], "--fixed-place", "HAKMEM_MAP_THRESHOLD_KB=1024");
    run_env_child(argv[0], "--survivors", "HAKMEM_STATS=0");
    run_env_child(argv[0], "--survivors-off", "HAKMEM_BACKGROUND=0");
    run_env_child(argv[0], "--survivors-churn", "HAKMEM_RETAIN_MS=1");
    run_env_child(argv[0], "--survivors-swing", "HAKMEM_RETAIN_MS=50");
    return test_done("test_background");
}
