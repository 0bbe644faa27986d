/* Frees by threads that do not own the block: the foreign cache, shipping
 * home in batches, the owner's inbox, thread exit with blocks in flight,
 * adoption of slabs whose owner exited.  Each case ends by checking that
 * every slab came back: after the frees and a trim, the process holds as
 * many slabs and in-use bytes as before the case (so no block was lost in
 * a cache, an inbox or a remote list).  The threads' order of events
 * differs from run to run; what is asserted does not depend on it. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <stdatomic.h>
#include "hakmem.h"
#include "testutil.h"

struct figures { size_t slabs, in_use; };

static struct figures settle(void)
{
    struct hak_stats st;
    hak_trim(0);
    hak_stats_get(&st);
    return (struct figures){ st.slabs, st.in_use };
}

static void check_settled(const char *name, struct figures before)
{
    struct figures after = settle();
    CHECK(after.slabs == before.slabs, "%s: %zu slabs before, %zu after", name, before.slabs,
          after.slabs);
    CHECK(after.in_use == before.in_use, "%s: %zu bytes in use before, %zu after", name,
          before.in_use, after.in_use);
}

static void run(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fn, arg) == 0, "pthread_create");
    pthread_join(t, NULL);
}

static void fill(void **v, size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = hak_malloc(size);
        CHECK(v[i] != NULL, "malloc(%zu)", size);
        memset(v[i], (int)(i & 0xff), size);
    }
}

static int intact(void *p, size_t i, size_t size)
{
    const unsigned char *b = p;
    for (size_t k = 0; k < size; k++)
        if (b[k] != (unsigned char)(i & 0xff))
            return 0;
    return 1;
}

/* ---- a thread hands out again the blocks it freed for others ---------------- */
#define REUSE_N 100
#define REUSE_SIZE 200
static void *reuse_block[REUSE_N];

static void *reuse_thread(void *arg)
{
    int *from_owner = arg;
    void *freed[REUSE_N / 2];
    for (int i = 0; i < REUSE_N / 2; i++) {
        freed[i] = reuse_block[i];
        hak_free(reuse_block[i]);
    }
    /* This thread has no slab of the class: its blocks come from the cache. */
    for (int i = 0; i < REUSE_N / 2; i++) {
        void *p = hak_malloc(REUSE_SIZE);
        for (int j = 0; j < REUSE_N / 2; j++)
            if (p == freed[j])
                (*from_owner)++;
        reuse_block[i] = p;
    }
    return NULL;
}

static void test_foreign_reuse(void)
{
    struct figures before = settle();
    int from_owner = 0;
    fill(reuse_block, REUSE_N, REUSE_SIZE);
    run(reuse_thread, &from_owner);
    CHECK(from_owner == REUSE_N / 2, "foreign reuse: %d of %d blocks came from the freed ones",
          from_owner, REUSE_N / 2);
    for (int i = 0; i < REUSE_N; i++)
        hak_free(reuse_block[i]);
    check_settled("foreign reuse", before);
}

/* ---- thread caches ------------------------------------------------------------------ */
/* A Tiny or Mid block freed by a thread that does not own its slab is that
 * thread's next block of the class (its cache is LIFO), and so is one of
 * its own.  Mid slabs span several pages: the foreign block is the last of
 * a few, so that it lies past the slab's first page. */
static void *tc_block;
static size_t tc_size;

static void *tc_lifo_thread(void *arg)
{
    int *bad = arg;
    void *own = hak_malloc(tc_size);        /* a heap, and its caches open */
    hak_free(tc_block);
    void *p = hak_malloc(tc_size);
    *bad += p != tc_block;
    hak_free(own);
    void *q = hak_malloc(tc_size);
    *bad += q != own;
    hak_free(p);
    hak_free(q);
    return NULL;
}

static void test_tc_lifo(size_t size)
{
    enum { K = 8 };
    struct figures before = settle();
    void *b[K];
    int bad = 0, last = 0;
    for (int i = 0; i < K; i++) {
        b[i] = hak_malloc(size);
        if ((char *)b[i] > (char *)b[last])
            last = i;
    }
    tc_block = b[last];
    tc_size = size;
    run(tc_lifo_thread, &bad);
    for (int i = 0; i < K; i++)
        if (i != last)
            hak_free(b[i]);
    CHECK(bad == 0, "thread cache, %zu B: %d of 2 frees not handed out by the next malloc",
          size, bad);
    check_settled("thread cache", before);
}

/* A thread frees all of n blocks of a class in a scattered order and
 * stays alive: its cache must not keep their slabs (a storm of frees
 * halves it to nothing), so all but its current slab go back while it
 * waits, with no call of its own. */
#define STORM_MAX 64000
static void *storm_block[STORM_MAX];
static size_t storm_n, storm_size;
static pthread_barrier_t storm_barrier;

static void *tc_storm_thread(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < storm_n; i++)
        storm_block[i] = hak_malloc(storm_size);
    for (size_t i = 0; i < storm_n; i++)
        hak_free(storm_block[(i * 7919) % storm_n]);   /* 7919: prime, coprime to n */
    pthread_barrier_wait(&storm_barrier);       /* freed */
    pthread_barrier_wait(&storm_barrier);       /* counted */
    return NULL;
}

static void test_tc_storm(size_t size, size_t n)
{
    struct figures before = settle();
    pthread_t t;
    storm_size = size;
    storm_n = n;
    pthread_barrier_init(&storm_barrier, NULL, 2);
    CHECK(pthread_create(&t, NULL, tc_storm_thread, NULL) == 0, "pthread_create");
    pthread_barrier_wait(&storm_barrier);
    struct hak_stats st;
    hak_stats_get(&st);
    CHECK(st.slabs <= before.slabs + 2, "%zu slabs after a thread freed its %zu blocks of %zu B, "
          "%zu before: its cache keeps them", st.slabs, n, size, before.slabs);
    pthread_barrier_wait(&storm_barrier);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&storm_barrier);
    check_settled("thread cache storm", before);
    /* printed last: stdout's first use allocates its buffer */
    printf("thread cache after a storm of %zu frees of %zu B: %zu slabs, %zu before\n", n, size,
           st.slabs, before.slabs);
}

/* ---- many frees: the cache is shipped home in batches --------------------------- */
#define SHIP_N 20000
static void *ship_block[SHIP_N];
static size_t ship_size;

static void *ship_free_all(void *arg)
{
    int *bad = arg;
    for (size_t i = 0; i < SHIP_N; i++) {
        if (!intact(ship_block[i], i, ship_size))
            (*bad)++;
        hak_free(ship_block[i]);
    }
    return NULL;                         /* exits with part of them cached */
}

static void test_ship_home(size_t size)
{
    struct figures before = settle();
    int bad = 0;
    ship_size = size;
    fill(ship_block, SHIP_N, size);
    run(ship_free_all, &bad);
    CHECK(bad == 0, "ship home %zu B: %d blocks changed in flight", size, bad);
    /* The owner takes its inbox in a slow path: a trim here. */
    check_settled(size <= 1024 ? "ship home (tiny)" : "ship home (mid/large)", before);
}

/* ---- runs of one slab, broken by blocks handed out between ----------------------- */
/* Shipments carry runs of one slab's blocks, which the owner takes whole
 * (remote.c).  A thread frees another's blocks in runs of 1 to 7
 * alternating between two slabs, hands out blocks from its cache now and
 * then and frees them again; every block must come back exactly once. */
#define RUNS_N 4096                      /* 64-byte blocks: several slabs */
#define RUNS_SIZE 64
static void *runs_block[RUNS_N];

static void *runs_thread(void *arg)
{
    int *bad = arg;
    size_t lo = 0, hi = RUNS_N / 2, len = 1;
    for (unsigned round = 1; lo < RUNS_N / 2 || hi < RUNS_N; round++) {
        for (size_t k = 0; k < len && lo < RUNS_N / 2; k++, lo++) {
            *bad += !intact(runs_block[lo], lo, RUNS_SIZE);
            hak_free(runs_block[lo]);
        }
        for (size_t k = 0; k < len && hi < RUNS_N; k++, hi++) {
            *bad += !intact(runs_block[hi], hi, RUNS_SIZE);
            hak_free(runs_block[hi]);
        }
        len = len % 7 + 1;
        if (round % 3 == 0) {
            void *again[5];
            for (size_t j = 0; j < 5; j++) {
                again[j] = hak_malloc(RUNS_SIZE);
                CHECK(again[j] != NULL, "runs: malloc");
                memset(again[j], 0x5a, RUNS_SIZE);
            }
            for (size_t j = 0; j < 5; j++)
                hak_free(again[j]);
        }
    }
    return NULL;
}

static void test_runs(void)
{
    struct figures before = settle();
    int bad = 0;
    fill(runs_block, RUNS_N, RUNS_SIZE);
    run(runs_thread, &bad);
    CHECK(bad == 0, "runs: %d blocks changed in flight", bad);
    check_settled("runs", before);
}

/* ---- trim flushes a live thread's cache ----------------------------------------- */
static atomic_int trim_stage;

static void *trim_thread(void *arg)
{
    for (int i = 0; i < 10; i++)
        hak_free(ship_block[i]);
    hak_trim(0);                         /* ships its cache home */
    atomic_store(&trim_stage, 1);
    while (atomic_load(&trim_stage) != 2)
        sched_yield();
    return NULL;
}

static void test_trim_flushes(void)
{
    struct figures before = settle();
    pthread_t t;
    fill(ship_block, 10, 96);
    atomic_store(&trim_stage, 0);
    CHECK(pthread_create(&t, NULL, trim_thread, NULL) == 0, "pthread_create");
    while (atomic_load(&trim_stage) != 1)
        sched_yield();
    check_settled("trim flushes a live thread's cache", before);   /* t still alive */
    atomic_store(&trim_stage, 2);
    pthread_join(t, NULL);
}

/* ---- the owner exits first: its slabs are adopted by the freer ------------------- */
static void *alloc_and_exit(void *arg)
{
    fill(ship_block, SHIP_N, *(size_t *)arg);
    return NULL;
}

static void test_owner_exited(void)
{
    struct figures before = settle();
    size_t size = 48;
    run(alloc_and_exit, &size);
    int bad = 0;
    for (size_t i = 0; i < SHIP_N; i++) {
        bad += !intact(ship_block[i], i, size);
        hak_free(ship_block[i]);
    }
    CHECK(bad == 0, "owner exited: %d blocks changed", bad);
    check_settled("owner exited", before);
}

/* ---- the owner exits while another thread frees its blocks ----------------------- */
static atomic_int race_go;
static int race_rounds = 20;   /* HAKTEST_SCALE (sanitizer runs) makes fewer */

static void *race_owner(void *arg)
{
    fill(ship_block, SHIP_N, 40);
    atomic_store(&race_go, 1);
    for (volatile int spin = 0; spin < 20000; spin++)
        ;
    return NULL;                         /* exits while the freer is at work */
}

static void *race_freer(void *arg)
{
    int *bad = arg;
    while (!atomic_load(&race_go))
        sched_yield();
    for (size_t i = 0; i < SHIP_N; i++) {
        *bad += !intact(ship_block[i], i, 40);
        hak_free(ship_block[i]);
    }
    return NULL;
}

static void test_owner_exits_during_frees(void)
{
    struct figures before = settle();
    for (int round = 0; round < race_rounds; round++) {
        pthread_t a, b;
        int bad = 0;
        atomic_store(&race_go, 0);
        CHECK(pthread_create(&b, NULL, race_freer, &bad) == 0, "pthread_create");
        CHECK(pthread_create(&a, NULL, race_owner, NULL) == 0, "pthread_create");
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        CHECK(bad == 0, "owner exits during frees, round %d: %d blocks changed", round, bad);
    }
    check_settled("owner exits during frees", before);
}

/* ---- an idle owner's blocks wait for it ---------------------------------------------- */
#define IDLE_N 3000
static void *idle_block[IDLE_N];
static size_t idle_size, idle_n, idle_keep;   /* the owner keeps every idle_keep-th */

static int kept(size_t i) { return idle_keep != 0 && i % idle_keep == 0; }

/* 1 if p is one of the idle owner's blocks that another thread freed. */
static int was_freed_idle_block(const void *p)
{
    for (size_t j = 0; j < idle_n; j++)
        if (p == idle_block[j] && !kept(j))
            return 1;
    return 0;
}

/* Frees the idle owner's blocks (but the kept ones), then allocates of the
 * same size itself. */
static void *free_idle_blocks(void *arg)
{
    int *found = arg;
    void *mine[100];
    for (size_t i = 0; i < idle_n; i++)
        if (!kept(i))
            hak_free(idle_block[i]);
    for (int i = 0; i < 100; i++) {
        mine[i] = hak_malloc(idle_size);
        found[0] += was_freed_idle_block(mine[i]);
    }
    for (int i = 0; i < 100; i++)
        hak_free(mine[i]);
    return NULL;
}

static void *alloc_elsewhere(void *arg)
{
    int *found = arg;
    void *mine[1000];
    int n = idle_size > 65536 ? 4 : 1000;
    for (int i = 0; i < n; i++) {
        mine[i] = idle_size > 65536 ? hak_calloc(1, idle_size) : hak_malloc(idle_size);
        found[2] += was_freed_idle_block(mine[i]);
        if (idle_size > 65536) {
            const unsigned char *b = mine[i];
            for (size_t k = 0; k < idle_size; k += 512)
                if (b[k] != 0) {
                    found[1]++;
                    break;
                }
        }
    }
    for (int i = 0; i < n; i++)
        hak_free(mine[i]);
    return NULL;
}

static size_t idle_released(void)
{
    struct hak_stats st;
    hak_stats_get(&st);
    return st.idle_slabs_released;
}

/* The owner (this thread) allocates n blocks and then waits in
 * pthread_join, longer than the idle threshold, while another thread frees
 * them (all but every keep-th).
 * - A Tiny block may be handed out again by the thread that freed it, from
 *   its cache, but by no third thread: the rest go home.
 * - A slab of which the owner still holds a block stays the owner's: its
 *   blocks are not handed out by other threads (whose every later free of
 *   them would be a remote one), and none of it is released.
 * - A slab whose blocks have all come back is released to the pool by the
 *   freeing thread (at least `whole` of them: every slab the owner filled,
 *   but its current one), without the owner's help.
 * The owner then frees what it kept (into slabs parked with blocks on their
 * remote lists) and every slab comes back. */
static void test_idle_owner(size_t size, size_t n, size_t keep, size_t whole)
{
    struct figures before = settle();
    size_t released = idle_released();
    int found[3] = { 0, 0, 0 };
    idle_size = size;
    idle_n = n;
    idle_keep = keep;
    fill(idle_block, n, size);
    usleep(50 * 1000);
    run(free_idle_blocks, found);
    run(alloc_elsewhere, found);
    released = idle_released() - released;
    if (keep) {
        if (size > 1024)
            CHECK(found[0] == 0, "idle owner %zu B: %d of the freeing thread's new blocks were "
                  "the idle owner's", size, found[0]);
        CHECK(found[2] == 0, "idle owner %zu B: %d of a third thread's new blocks were the idle "
              "owner's", size, found[2]);
        CHECK(released == 0, "idle owner %zu B: %zu slabs released with blocks still out",
              size, released);
    } else {
        CHECK(released >= whole, "idle owner %zu B: %zu of its %zu full slabs released", size,
              released, whole);
    }
    CHECK(found[1] == 0, "idle owner %zu B: %d calloc blocks not zeroed", size, found[1]);
    for (size_t i = 0; i < n; i++)
        if (kept(i)) {
            CHECK(intact(idle_block[i], i, size), "idle owner %zu B: kept block %zu changed",
                  size, i);
            hak_free(idle_block[i]);
        }
    check_settled(keep ? "idle owner keeping blocks" : "idle owner", before);
}

/* As test_idle_owner, but the owner first frees every other block itself,
 * so that its full slabs go back to its partial list: such a slab, whose
 * other blocks then all come back, is released by the freeing thread too
 * (the owner may hand out blocks of a partial slab only under its heap
 * lock, after taking the slab off the list). */
static void *free_odd_idle_blocks(void *arg)
{
    (void)arg;
    for (size_t i = 1; i < idle_n; i += 2)
        hak_free(idle_block[i]);
    return NULL;
}

static void test_idle_owner_partial(size_t size, size_t n)
{
    struct figures before = settle();
    size_t released = idle_released(), whole = n / (65536 / size);
    idle_size = size;
    idle_n = n;
    fill(idle_block, n, size);
    for (size_t i = 0; i < n; i += 2)
        hak_free(idle_block[i]);
    usleep(50 * 1000);
    run(free_odd_idle_blocks, NULL);
    released = idle_released() - released;
    CHECK(released >= whole, "idle owner %zu B, half freed by itself: %zu of its %zu partial "
          "slabs released", size, released, whole);
    check_settled("idle owner with partial slabs", before);
}

/* The owner frees its half of its blocks while another thread frees the
 * other half, so that frees into parked slabs meet releases of them (under
 * TSan in make sanitize).  Blocks are checked intact before each free. */
#define IDLE_RACE_N 2000
static void *idle_race_block[IDLE_RACE_N];
static atomic_int idle_race_bad;

static void *free_odd_blocks(void *arg)
{
    (void)arg;
    for (size_t i = 1; i < IDLE_RACE_N; i += 2) {
        if (!intact(idle_race_block[i], i, 48))
            atomic_fetch_add(&idle_race_bad, 1);
        hak_free(idle_race_block[i]);
    }
    return NULL;
}

static void test_idle_owner_frees_too(void)
{
    struct figures before = settle();
    for (int round = 0; round < race_rounds; round++) {
        fill(idle_race_block, IDLE_RACE_N, 48);
        usleep(25 * 1000);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, free_odd_blocks, NULL) == 0, "pthread_create");
        for (size_t i = 0; i < IDLE_RACE_N; i += 2) {
            if (!intact(idle_race_block[i], i, 48))
                atomic_fetch_add(&idle_race_bad, 1);
            hak_free(idle_race_block[i]);
        }
        pthread_join(t, NULL);
    }
    CHECK(atomic_load(&idle_race_bad) == 0, "idle owner frees too: %d blocks changed",
          atomic_load(&idle_race_bad));
    check_settled("idle owner frees too", before);
}

/* ---- free blocks' pages released by the background thread -------------------------- */
/* With a retention of 1 ms the background thread releases the pages inside
 * free 8-64 KiB blocks of partial slabs while two threads replace such
 * blocks, one class at a time (the others' slabs sit unchanged, so their
 * free blocks are released), pausing together now and then; then each
 * frees nine in ten of its blocks and both wait until pages of free blocks
 * have been released.  No live block may lose a byte, and every slab comes
 * back. */
#define PAGES_LIVE 600
static atomic_int pages_bad;
static pthread_barrier_t pages_barrier;

static size_t pages_released(void)
{
    struct hak_adaptive_stats ad;
    hak_stats_adaptive(&ad);
    return ad.block_pages_released;
}

static void pages_check(unsigned char *b, size_t sz)
{
    for (size_t o = 0; o < sz; o += 1024)
        if (b[o] != (unsigned char)(sz & 0xff))
            atomic_fetch_add(&pages_bad, 1);
}

static void *pages_churn(void *arg)
{
    uint64_t rng = 0x9e3779b97f4a7c15u * (uint64_t)((uintptr_t)arg + 1);
    unsigned char *b[PAGES_LIVE];
    size_t sz[PAGES_LIVE];
    for (int i = 0; i < PAGES_LIVE; i++) {
        sz[i] = 8192 + (size_t)(xorshift64(&rng) % (56 * 1024 + 1));
        b[i] = hak_malloc(sz[i]);
        memset(b[i], (int)(sz[i] & 0xff), sz[i]);
    }
    for (int step = 0; step < race_rounds * 1000; step++) {
        int k = (int)(xorshift64(&rng) % PAGES_LIVE);
        pages_check(b[k], sz[k]);
        hak_free(b[k]);
        sz[k] = 8192 * (size_t)(1 + (step / 100) % 8);
        b[k] = hak_malloc(sz[k]);
        memset(b[k], (int)(sz[k] & 0xff), sz[k]);
        if (step % 1000 == 999) {        /* both pause: the thread looks and releases */
            pthread_barrier_wait(&pages_barrier);
            usleep(30 * 1000);
            pthread_barrier_wait(&pages_barrier);
        }
    }
    size_t before = pages_released();
    for (int i = 0; i < PAGES_LIVE; i++)
        if (i % 10 != 0) {
            pages_check(b[i], sz[i]);
            hak_free(b[i]);
        }
    pthread_barrier_wait(&pages_barrier);
    for (int i = 0; i < 200 && pages_released() == before; i++)
        usleep(10 * 1000);
    pthread_barrier_wait(&pages_barrier);
    for (int i = 0; i < PAGES_LIVE; i += 10) {
        pages_check(b[i], sz[i]);
        hak_free(b[i]);
    }
    return NULL;
}

static void test_free_pages_released(void)
{
    struct figures before = settle();
    long retain = 0;
    CHECK(hak_setting_get("HAKMEM_RETAIN_MS", &retain) == 0, "hak_setting_get");
    CHECK(hak_setting_set("HAKMEM_RETAIN_MS", 1) == 0, "hak_setting_set");
    size_t r0 = pages_released();
    pthread_barrier_init(&pages_barrier, NULL, 2);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, pages_churn, (void *)(intptr_t)i) == 0, "pthread_create");
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&pages_barrier);
    size_t r1 = pages_released();
    hak_setting_set("HAKMEM_RETAIN_MS", retain);
    check_settled("free blocks' pages released", before);   /* before printf's buffer */
    printf("free blocks' pages released while 2 threads replace 8-64 KiB blocks and after they "
           "free 90%% of them: %.1f MiB, %d live blocks changed\n", (double)(r1 - r0) / (1 << 20),
           atomic_load(&pages_bad));
    CHECK(atomic_load(&pages_bad) == 0, "%d live blocks changed", atomic_load(&pages_bad));
    CHECK(r1 > r0, "no page of a free block released: the race was not exercised");
}

/* ---- a ring of threads passing blocks on ----------------------------------------- */
#define RING_THREADS 6
#define RING_BLOCKS 4000
#define RING_ROUNDS 8
static void *ring_slot[RING_THREADS][RING_BLOCKS];
static pthread_barrier_t ring_barrier;
static atomic_int ring_bad;

static void *ring_thread(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15u * (uint64_t)(me + 1);
    for (int r = 0; r < RING_ROUNDS; r++) {
        int from = (me + r) % RING_THREADS;   /* a different array every round */
        for (int i = 0; i < RING_BLOCKS; i++) {
            void **slot = &ring_slot[from][i];
            if (*slot) {
                size_t size = hak_usable_size(*slot);
                if (((unsigned char *)*slot)[0] != (unsigned char)(i & 0xff) ||
                    ((unsigned char *)*slot)[size - 1] != (unsigned char)(i & 0xff))
                    atomic_fetch_add(&ring_bad, 1);
                hak_free(*slot);
            }
            size_t size = 8 + xorshift64(&rng) % 3000;
            unsigned char *p = hak_malloc(size);
            size = hak_usable_size(p);
            p[0] = p[size - 1] = (unsigned char)(i & 0xff);
            *slot = p;
        }
        pthread_barrier_wait(&ring_barrier);
    }
    return NULL;
}

static void test_ring(void)
{
    struct figures before = settle();
    pthread_t t[RING_THREADS];
    pthread_barrier_init(&ring_barrier, NULL, RING_THREADS);
    for (int i = 0; i < RING_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, ring_thread, (void *)(intptr_t)i) == 0, "pthread_create");
    for (int i = 0; i < RING_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&ring_barrier);
    CHECK(atomic_load(&ring_bad) == 0, "ring: %d blocks changed in flight", atomic_load(&ring_bad));
    for (int i = 0; i < RING_THREADS; i++)
        for (int j = 0; j < RING_BLOCKS; j++)
            hak_free(ring_slot[i][j]);
    check_settled("ring of threads", before);
}

static void *idle_thread(void *arg) { return arg; }

int main(void)
{
    const char *scale = getenv("HAKTEST_SCALE");
    if (scale && atof(scale) > 0 && atof(scale) < 1)
        race_rounds = 2 + (int)(18 * atof(scale));
    /* glibc keeps a few small blocks per cached thread stack: create as many
     * threads at once as any case does, so those exist before any baseline. */
    start_background();
    pthread_t warm[RING_THREADS + 2];
    for (int i = 0; i < RING_THREADS + 2; i++)
        CHECK(pthread_create(&warm[i], NULL, idle_thread, NULL) == 0, "pthread_create");
    for (int i = 0; i < RING_THREADS + 2; i++)
        pthread_join(warm[i], NULL);
    test_foreign_reuse();
    test_tc_lifo(48);
    test_tc_lifo(3000);
    test_tc_lifo(40000);
    test_tc_storm(64, STORM_MAX);
    test_tc_storm(3000, 4000);
    test_ship_home(64);
    test_ship_home(4000);
    test_ship_home(200000);
    test_runs();
    test_trim_flushes();
    test_owner_exited();
    test_owner_exits_during_frees();
    test_idle_owner(80, IDLE_N, 50, 0);
    test_idle_owner(80, IDLE_N, 0, IDLE_N / (65536 / 80));
    test_idle_owner(200000, 4, 0, 3);
    test_idle_owner_partial(80, IDLE_N);
    test_idle_owner_frees_too();
    test_free_pages_released();
    test_ring();
    return test_done("test_remote");
}
