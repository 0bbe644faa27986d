/* Multi-threaded stress of the prefixed API (hak_*): producer/consumer hand-off,
 * more threads than cores with cross-thread frees, thread churn with blocks
 * outliving their allocating thread, and an all-tier stress over a shared
 * table.  Every block carries a pattern derived from a seed; the pattern is
 * checked whenever a block is freed or reallocated.
 *
 * Only hak_* is used for the blocks under test, so the same file also runs
 * under ThreadSanitizer against the library built without malloc overrides.
 *
 * Scale: HAKTEST_SCALE (env) or argv[1], a factor in (0, 1], shrinks every
 * iteration count (tests/sanitize.sh uses it under TSan).  The checked
 * properties are deterministic; nothing depends on timing. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"
#include "testutil.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static double g_scale = 1.0;

static long scaled(long n, long min)
{
    long v = (long)((double)n * g_scale);
    return v < min ? min : v;
}

/* ---------------------------------------------------------------- helpers */

static inline uint64_t rng_seed(uint64_t a, uint64_t b)
{
    uint64_t x = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x ? x : 1;
}

static inline uint64_t pat_word(uint64_t seed, size_t w)
{
    uint64_t x = seed ^ (w * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
}

/* Offsets covered by the pattern: everything below 8 KiB, then the first 64
 * bytes of every 4 KiB, plus the last 64 bytes of the block (fill / full
 * check only).  Byte i holds byte (i & 7) of pat_word(seed, i / 8). */
static inline int pat_covered(size_t i) { return i < 8192 || (i & 4095) < 64; }

/* returns 1 on mismatch (check) */
static int pat_span(unsigned char *p, size_t lo, size_t hi, uint64_t seed, int check)
{
    size_t i = lo;
    while (i < hi) {
        if (!pat_covered(i)) {              /* skip to next covered offset */
            i = (i | 4095) + 1;
            continue;
        }
        size_t end = i < 8192 ? 8192 : (i & ~(size_t)4095) + 64;
        if (end > hi) end = hi;
        for (; i < end;) {
            uint64_t v = pat_word(seed, i >> 3);
            size_t off = i & 7, n = 8 - off;
            if (n > end - i) n = end - i;
            const unsigned char *src = (const unsigned char *)&v + off;
            if (check) {
                if (memcmp(p + i, src, n) != 0) return 1;
            } else {
                memcpy(p + i, src, n);
            }
            i += n;
        }
    }
    return 0;
}

static int pat_tail(unsigned char *p, size_t n, uint64_t seed, int check)
{
    size_t lo = n > 64 ? n - 64 : 0;
    for (size_t i = lo; i < n; i++) {
        unsigned char b = (unsigned char)(pat_word(seed, i >> 3) >> ((i & 7) * 8));
        if (check) {
            if (p[i] != b) return 1;
        } else {
            p[i] = b;
        }
    }
    return 0;
}

static void pat_fill(void *p, size_t n, uint64_t seed)
{
    pat_span(p, 0, n, seed, 0);
    pat_tail(p, n, seed, 0);
}

/* 0 when the whole pattern is intact */
static int pat_check(const void *p, size_t n, uint64_t seed)
{
    return pat_span((unsigned char *)p, 0, n, seed, 1) | pat_tail((unsigned char *)p, n, seed, 1);
}

/* 0 when the first n bytes (a realloc-preserved prefix) are intact */
static int pat_check_prefix(const void *p, size_t n, uint64_t seed)
{
    return pat_span((unsigned char *)p, 0, n, seed, 1);
}

static atomic_long g_reported;
static void report(const char *what, const void *p, size_t size, uint64_t seed)
{
    if (atomic_fetch_add(&g_reported, 1) < 20)
        fprintf(stderr, "  %s: block %p size %zu seed %016llx\n", what, p, size,
                (unsigned long long)seed);
}

/* Verify and free one block; returns 1 on a pattern error. */
static int verify_free(void *p, size_t size, uint64_t seed, const char *where)
{
    int bad = pat_check(p, size, seed);
    if (bad) report(where, p, size, seed);
    hak_free(p);
    return bad;
}

/* ------------------------------------------------- a. producer / consumer */

struct item { void *p; size_t size; uint64_t seq; };

#define QCAP 512
struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct item buf[QCAP];
    unsigned head, count;
};

static void q_init(struct queue *q)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->head = q->count = 0;
}

static void q_push(struct queue *q, struct item it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == QCAP) pthread_cond_wait(&q->not_full, &q->mu);
    q->buf[(q->head + q->count) % QCAP] = it;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static struct item q_pop(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0) pthread_cond_wait(&q->not_empty, &q->mu);
    struct item it = q->buf[q->head];
    q->head = (q->head + 1) % QCAP;
    q->count--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return it;
}

#define PC_PRODUCERS 2
#define PC_CONSUMERS 2
static struct queue pc_q[PC_CONSUMERS];
static long pc_per_producer;
static atomic_long pc_sent, pc_received, pc_errors, pc_nulls, pc_notowned, pc_huge, pc_short;

static void *pc_producer(void *arg)
{
    long id = (long)arg;
    uint64_t r = rng_seed(0xA11CE, (uint64_t)id);
    for (long i = 0; i < pc_per_producer; i++) {
        uint64_t seq = ((uint64_t)id << 40) | (uint64_t)i;
        size_t size = (i % 5000 == 4999) ? 3 * MiB + (size_t)(xorshift64(&r) % 4096)
                                         : rand_log_size(&r, 8, 256 * KiB);
        void *p = hak_malloc(size);
        if (!p) { atomic_fetch_add(&pc_nulls, 1); continue; }
        if (size > 2 * MiB) atomic_fetch_add(&pc_huge, 1);
        if (hak_usable_size(p) < size) atomic_fetch_add(&pc_short, 1);
        pat_fill(p, size, rng_seed(seq, size));
        atomic_fetch_add(&pc_sent, 1);
        q_push(&pc_q[xorshift64(&r) % PC_CONSUMERS], (struct item){ p, size, seq });
    }
    for (int c = 0; c < PC_CONSUMERS; c++)      /* end marker */
        q_push(&pc_q[c], (struct item){ NULL, 0, 0 });
    return NULL;
}

static void *pc_consumer(void *arg)
{
    struct queue *q = &pc_q[(long)arg];
    int ends = 0;
    while (ends < PC_PRODUCERS) {
        struct item it = q_pop(q);
        if (!it.p) { ends++; continue; }
        if (!hak_owns(it.p)) atomic_fetch_add(&pc_notowned, 1);
        if (verify_free(it.p, it.size, rng_seed(it.seq, it.size), "producer/consumer"))
            atomic_fetch_add(&pc_errors, 1);
        atomic_fetch_add(&pc_received, 1);
    }
    return NULL;
}

static void test_producer_consumer(void)
{
    pthread_t th[PC_PRODUCERS + PC_CONSUMERS];
    long total = scaled(400000, 4000);
    pc_per_producer = total / PC_PRODUCERS;
    for (int c = 0; c < PC_CONSUMERS; c++) q_init(&pc_q[c]);
    int ok = 1;
    for (long c = 0; c < PC_CONSUMERS; c++)
        ok &= pthread_create(&th[c], NULL, pc_consumer, (void *)c) == 0;
    for (long p = 0; p < PC_PRODUCERS; p++)
        ok &= pthread_create(&th[PC_CONSUMERS + p], NULL, pc_producer, (void *)p) == 0;
    CHECK(ok, "pthread_create failed");
    if (!ok) exit(1);
    for (int i = 0; i < PC_PRODUCERS + PC_CONSUMERS; i++) pthread_join(th[i], NULL);

    long sent = atomic_load(&pc_sent), recv = atomic_load(&pc_received);
    printf("producer/consumer: %ld sent, %ld received (%ld huge), %ld pattern errors\n",
           sent, recv, atomic_load(&pc_huge), atomic_load(&pc_errors));
    CHECK(sent == pc_per_producer * PC_PRODUCERS, "sent %ld of %ld (%ld NULL)", sent,
          pc_per_producer * PC_PRODUCERS, atomic_load(&pc_nulls));
    CHECK(recv == sent, "received %ld, sent %ld", recv, sent);
    CHECK(atomic_load(&pc_errors) == 0, "%ld pattern errors", atomic_load(&pc_errors));
    CHECK(atomic_load(&pc_nulls) == 0, "%ld hak_malloc returned NULL", atomic_load(&pc_nulls));
    CHECK(atomic_load(&pc_notowned) == 0, "%ld live blocks not hak_owns()", atomic_load(&pc_notowned));
    CHECK(atomic_load(&pc_short) == 0, "%ld blocks with usable size < requested", atomic_load(&pc_short));
    CHECK(atomic_load(&pc_huge) > 0 || pc_per_producer < 5000, "no huge block was sent");
}

/* ----------------------------------- b. more threads than cores, cross frees */

#define MT_THREADS 16
#define MT_SLOTS 256
#define MT_XCHG 1024

static _Atomic(void *) mt_xchg[MT_XCHG];
static long mt_ops;
static atomic_long mt_errors, mt_nulls, mt_handed, mt_taken, mt_reallocs, mt_frees;

struct slot { void *p; size_t size; uint64_t seed; };

/* A handed-off block carries a header over its first 16 bytes (word 0 =
 * seed, word 1 = size); the rest is the usual pattern.  The receiver reads
 * the header, puts the pattern bytes back and checks the whole block. */
static int mt_restore_and_check(void *p, size_t size, uint64_t seed)
{
    unsigned char head[16];
    for (size_t i = 0; i < 16; i++)
        head[i] = (unsigned char)(pat_word(seed, i >> 3) >> ((i & 7) * 8));
    memcpy(p, head, 16);
    return pat_check(p, size, seed);
}

static int mt_take_free(void *p)
{
    uint64_t hdr[2];
    memcpy(hdr, p, sizeof hdr);
    size_t size = (size_t)hdr[1];
    if (size < 16 || size > 1 * MiB) {
        report("exchange header", p, size, hdr[0]);
        atomic_fetch_add(&mt_errors, 1);
        return 1;   /* do not free something we cannot trust */
    }
    atomic_fetch_add(&mt_taken, 1);
    int bad = mt_restore_and_check(p, size, hdr[0]);
    if (bad) {
        report("cross-thread free", p, size, hdr[0]);
        atomic_fetch_add(&mt_errors, 1);
    }
    hak_free(p);
    return bad;
}

static void *mt_worker(void *arg)
{
    long id = (long)arg;
    uint64_t r = rng_seed(0xB0B, (uint64_t)id);
    struct slot tab[MT_SLOTS];
    memset(tab, 0, sizeof tab);
    long errors = 0, nulls = 0, handed = 0, reallocs = 0, frees = 0;
    uint64_t seq = (uint64_t)id << 40;

    for (long op = 0; op < mt_ops; op++) {
        struct slot *s = &tab[xorshift64(&r) % MT_SLOTS];
        uint64_t dice = xorshift64(&r) % 100;
        if (!s->p) {
            size_t size = (dice < 85) ? rand_log_size(&r, 1, 1 * KiB)
                        : (dice < 98) ? rand_log_size(&r, 1 * KiB, 64 * KiB)
                                      : rand_log_size(&r, 64 * KiB, 512 * KiB);
            void *p = (dice % 7 == 0) ? hak_calloc(1, size) : hak_malloc(size);
            if (!p) { nulls++; continue; }
            if (dice % 7 == 0) {    /* calloc: must be zeroed */
                const unsigned char *c = p;
                size_t lim = size < 4096 ? size : 4096;
                for (size_t i = 0; i < lim; i++)
                    if (c[i]) { errors++; report("calloc not zeroed", p, size, 0); break; }
            }
            s->p = p;
            s->size = size;
            s->seed = rng_seed(++seq, size);
            pat_fill(p, size, s->seed);
        } else if (dice < 30) {                 /* realloc */
            size_t nsize = (dice < 20) ? rand_log_size(&r, 1, 1 * KiB) : rand_log_size(&r, 1, 128 * KiB);
            void *np = hak_realloc(s->p, nsize);
            if (!np) { nulls++; continue; }     /* old block still valid */
            size_t keep = nsize < s->size ? nsize : s->size;
            if (pat_check_prefix(np, keep, s->seed)) {
                errors++;
                report("realloc lost contents", np, keep, s->seed);
            }
            reallocs++;
            s->p = np;
            s->size = nsize;
            s->seed = rng_seed(++seq, nsize);
            pat_fill(np, nsize, s->seed);
        } else {                                /* free */
            frees++;
            if (dice >= 80 && s->size >= 16) {  /* ~20%: hand to another thread */
                uint64_t hdr[2] = { s->seed, s->size };
                memcpy(s->p, hdr, sizeof hdr);
                void *old = atomic_exchange(&mt_xchg[xorshift64(&r) % MT_XCHG], s->p);
                handed++;
                if (old) mt_take_free(old);
            } else {
                errors += verify_free(s->p, s->size, s->seed, "local free");
            }
            s->p = NULL;
        }
    }
    for (int i = 0; i < MT_SLOTS; i++)
        if (tab[i].p) errors += verify_free(tab[i].p, tab[i].size, tab[i].seed, "final free");
    atomic_fetch_add(&mt_errors, errors);
    atomic_fetch_add(&mt_nulls, nulls);
    atomic_fetch_add(&mt_handed, handed);
    atomic_fetch_add(&mt_reallocs, reallocs);
    atomic_fetch_add(&mt_frees, frees);
    return NULL;
}

static void test_many_threads(void)
{
    pthread_t th[MT_THREADS];
    mt_ops = scaled(100000, 2000);
    int ok = 1;
    for (long i = 0; i < MT_THREADS; i++)
        ok &= pthread_create(&th[i], NULL, mt_worker, (void *)i) == 0;
    CHECK(ok, "pthread_create failed");
    if (!ok) exit(1);
    for (int i = 0; i < MT_THREADS; i++) pthread_join(th[i], NULL);
    long left = 0;
    for (int i = 0; i < MT_XCHG; i++) {
        void *p = atomic_exchange(&mt_xchg[i], NULL);
        if (p) { left++; mt_take_free(p); }
    }
    long handed = atomic_load(&mt_handed), taken = atomic_load(&mt_taken);
    printf("many threads: %d threads x %ld ops, %ld frees (%ld cross-thread), %ld reallocs, "
           "%ld pattern errors\n", MT_THREADS, mt_ops, atomic_load(&mt_frees), handed,
           atomic_load(&mt_reallocs), atomic_load(&mt_errors));
    CHECK(atomic_load(&mt_errors) == 0, "%ld pattern errors", atomic_load(&mt_errors));
    CHECK(atomic_load(&mt_nulls) == 0, "%ld allocations returned NULL", atomic_load(&mt_nulls));
    CHECK(handed == taken, "%ld blocks handed over, %ld freed by the receiver", handed, taken);
    CHECK(handed > atomic_load(&mt_frees) / 10, "too few cross-thread frees: %ld of %ld", handed,
          atomic_load(&mt_frees));
    CHECK(left <= MT_XCHG, "left %ld", left);
}

/* ---------------------------------------------------------- c. thread churn */

#define CH_ALIVE 8
#define CH_BLOCKS 200
#define CH_KEEP (CH_BLOCKS / 2)
struct churn_left { struct slot b[CH_KEEP]; int n; };
static struct churn_left *ch_left;       /* [nthreads] */
static long ch_threads;
static atomic_long ch_errors, ch_nulls, ch_left_total, ch_freed_later, ch_notowned;

static long ch_free_left(struct churn_left *l)
{
    long errors = 0;
    for (int i = 0; i < l->n; i++) {
        if (!hak_owns(l->b[i].p)) atomic_fetch_add(&ch_notowned, 1);
        errors += verify_free(l->b[i].p, l->b[i].size, l->b[i].seed, "churn: block of exited thread");
    }
    atomic_fetch_add(&ch_freed_later, l->n);
    l->n = 0;
    return errors;
}

/* Thread i frees the leftovers of thread i - CH_ALIVE (already joined), except
 * every tenth thread's, which main frees at the very end. */
static int ch_main_frees(long j) { return j % 10 == 0; }

static void *churn_worker(void *arg)
{
    long id = (long)arg;
    uint64_t r = rng_seed(0xC4C4, (uint64_t)id);
    long errors = 0, nulls = 0;
    if (id >= CH_ALIVE && !ch_main_frees(id - CH_ALIVE))
        errors += ch_free_left(&ch_left[id - CH_ALIVE]);

    struct slot b[CH_BLOCKS];
    int n = 0;
    for (int i = 0; i < CH_BLOCKS; i++) {
        size_t size = (xorshift64(&r) % 4) ? rand_log_size(&r, 1, 1 * KiB) : rand_log_size(&r, 1 * KiB, 64 * KiB);
        void *p = hak_malloc(size);
        if (!p) { nulls++; continue; }
        b[n] = (struct slot){ p, size, rng_seed(((uint64_t)id << 32) | (uint64_t)i, size) };
        pat_fill(p, size, b[n].seed);
        n++;
    }
    struct churn_left *l = &ch_left[id];
    l->n = 0;
    for (int i = 0; i < n; i++) {
        if (i % 2 == 0 && l->n < CH_KEEP) l->b[l->n++] = b[i];
        else errors += verify_free(b[i].p, b[i].size, b[i].seed, "churn: own free");
    }
    atomic_fetch_add(&ch_left_total, l->n);
    atomic_fetch_add(&ch_errors, errors);
    atomic_fetch_add(&ch_nulls, nulls);
    return NULL;
}

static void test_thread_churn(void)
{
    ch_threads = scaled(3000, 100);
    ch_left = calloc((size_t)ch_threads, sizeof *ch_left);   /* bookkeeping only */
    CHECK(ch_left != NULL, "calloc");
    if (!ch_left) return;
    pthread_t th[CH_ALIVE];
    long created = 0, create_fail = 0;
    for (long i = 0; i < ch_threads; i++) {
        if (i >= CH_ALIVE) pthread_join(th[i % CH_ALIVE], NULL);
        int rc = pthread_create(&th[i % CH_ALIVE], NULL, churn_worker, (void *)i);
        if (rc != 0) {
            create_fail++;
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            exit(1);
        }
        created++;
    }
    for (long i = ch_threads - CH_ALIVE; i < ch_threads; i++)
        if (i >= 0) pthread_join(th[i % CH_ALIVE], NULL);
    /* all allocating threads have exited now */
    long errors = 0;
    for (long j = 0; j < ch_threads; j++)
        if (ch_left[j].n) errors += ch_free_left(&ch_left[j]);
    atomic_fetch_add(&ch_errors, errors);
    free(ch_left);

    printf("thread churn: %ld threads, %ld blocks freed after their thread exited, "
           "%ld pattern errors\n", created, atomic_load(&ch_freed_later), atomic_load(&ch_errors));
    CHECK(create_fail == 0 && created == ch_threads, "created %ld of %ld threads", created, ch_threads);
    CHECK(atomic_load(&ch_errors) == 0, "%ld pattern errors", atomic_load(&ch_errors));
    CHECK(atomic_load(&ch_nulls) == 0, "%ld hak_malloc returned NULL", atomic_load(&ch_nulls));
    CHECK(atomic_load(&ch_freed_later) == atomic_load(&ch_left_total), "left %ld, freed later %ld",
          atomic_load(&ch_left_total), atomic_load(&ch_freed_later));
    CHECK(atomic_load(&ch_notowned) == 0, "%ld blocks of exited threads not hak_owns()",
          atomic_load(&ch_notowned));
}

/* -------------------------------------- d. all tiers, blocks survive threads */

#define AT_THREADS 8
#define AT_SLOTS 1024
struct at_slot { pthread_mutex_t mu; void *p; size_t size; uint64_t seed; };
static struct at_slot at_tab[AT_SLOTS];
static long at_ops;
static atomic_long at_errors, at_nulls, at_allocs, at_frees, at_reallocs, at_aligned;
static atomic_long at_tier[4];

static int tier_of(size_t s) { return s <= 1 * KiB ? 0 : s <= 64 * KiB ? 1 : s <= 2 * MiB ? 2 : 3; }

static void *at_worker(void *arg)
{
    long id = (long)arg;
    uint64_t r = rng_seed(0xD00D, (uint64_t)id);
    long errors = 0, nulls = 0, allocs = 0, frees = 0, reallocs = 0, aligned = 0;
    for (long op = 0; op < at_ops; op++) {
        struct at_slot *s = &at_tab[xorshift64(&r) % AT_SLOTS];
        uint64_t dice = xorshift64(&r) % 100;
        size_t size = rand_log_size(&r, 1, 1 * MiB);
        uint64_t seed = rng_seed(((uint64_t)id << 40) | (uint64_t)op, size);
        pthread_mutex_lock(&s->mu);
        if (s->p && dice < 25) {                        /* realloc */
            void *np = hak_realloc(s->p, size);
            if (np) {
                size_t keep = size < s->size ? size : s->size;
                if (pat_check_prefix(np, keep, s->seed)) {
                    errors++;
                    report("all tiers: realloc lost contents", np, keep, s->seed);
                }
                s->p = np;
                s->size = size;
                s->seed = seed;
                pat_fill(np, size, seed);
                reallocs++;
                atomic_fetch_add(&at_tier[tier_of(size)], 1);
            } else {
                nulls++;
            }
        } else if (s->p && dice < 60) {                 /* free */
            errors += verify_free(s->p, s->size, s->seed, "all tiers: free");
            s->p = NULL;
            frees++;
        } else {                                        /* (replace and) allocate */
            if (s->p) {
                errors += verify_free(s->p, s->size, s->seed, "all tiers: replace");
                frees++;
            }
            void *p;
            size_t align = 0;
            if (dice % 10 == 0) {
                align = (size_t)16 << (xorshift64(&r) % 9);   /* 16 .. 4096 */
                p = hak_aligned_alloc(align, (size + align - 1) / align * align);
                if (p && ((uintptr_t)p & (align - 1))) {
                    errors++;
                    report("aligned_alloc misaligned", p, size, align);
                }
                aligned++;
            } else {
                p = hak_malloc(size);
            }
            s->p = p;
            if (p) {
                s->size = size;
                s->seed = seed;
                pat_fill(p, size, seed);
                allocs++;
                atomic_fetch_add(&at_tier[tier_of(size)], 1);
            } else {
                nulls++;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    atomic_fetch_add(&at_errors, errors);
    atomic_fetch_add(&at_nulls, nulls);
    atomic_fetch_add(&at_allocs, allocs);
    atomic_fetch_add(&at_frees, frees);
    atomic_fetch_add(&at_reallocs, reallocs);
    atomic_fetch_add(&at_aligned, aligned);
    return NULL;
}

static void test_all_tiers(void)
{
    for (int i = 0; i < AT_SLOTS; i++) pthread_mutex_init(&at_tab[i].mu, NULL);
    /* AT_THREADS threads in two waves over one table: the second wave frees
     * and reallocates blocks whose allocating thread has exited */
    at_ops = scaled(50000, 1000);
    pthread_t th[AT_THREADS / 2];
    long survivors_between = 0;
    for (int wave = 0; wave < 2; wave++) {
        int ok = 1;
        for (int i = 0; i < AT_THREADS / 2; i++)
            ok &= pthread_create(&th[i], NULL, at_worker, (void *)(long)(wave * AT_THREADS + i)) == 0;
        CHECK(ok, "pthread_create failed");
        if (!ok) exit(1);
        for (int i = 0; i < AT_THREADS / 2; i++) pthread_join(th[i], NULL);
        if (wave == 0)
            for (int i = 0; i < AT_SLOTS; i++) survivors_between += at_tab[i].p != NULL;
    }
    long errors = 0, final = 0;
    for (int i = 0; i < AT_SLOTS; i++) {
        struct at_slot *s = &at_tab[i];
        if (s->p) {
            if (!hak_owns(s->p)) { errors++; report("all tiers: not owned", s->p, s->size, s->seed); }
            errors += verify_free(s->p, s->size, s->seed, "all tiers: final");
            s->p = NULL;
            final++;
        }
    }
    atomic_fetch_add(&at_errors, errors);
    printf("all tiers: %d threads x %ld ops, %ld allocs (tiny %ld, mid %ld, large %ld), "
           "%ld reallocs, %ld blocks survived wave 1, %ld pattern errors\n",
           AT_THREADS, at_ops, atomic_load(&at_allocs), atomic_load(&at_tier[0]),
           atomic_load(&at_tier[1]), atomic_load(&at_tier[2]),
           atomic_load(&at_reallocs), survivors_between, atomic_load(&at_errors));
    CHECK(atomic_load(&at_errors) == 0, "%ld pattern errors", atomic_load(&at_errors));
    CHECK(atomic_load(&at_nulls) == 0, "%ld allocations returned NULL", atomic_load(&at_nulls));
    CHECK(atomic_load(&at_allocs) + atomic_load(&at_reallocs) > 0, "nothing allocated");
    CHECK(atomic_load(&at_allocs) == atomic_load(&at_frees) + final,
          "allocs %ld != frees %ld + final %ld", atomic_load(&at_allocs), atomic_load(&at_frees), final);
    CHECK(survivors_between > 0, "no block survived its thread");
    for (int t = 0; t < 3; t++)
        CHECK(atomic_load(&at_tier[t]) > 0, "tier %d never used", t);
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    const char *sc = argc > 1 ? argv[1] : getenv("HAKTEST_SCALE");
    if (sc && *sc) {
        double v = strtod(sc, NULL);
        if (v > 0 && v <= 1) g_scale = v;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (g_scale != 1.0) printf("scale %.3f\n", g_scale);

    test_producer_consumer();
    test_many_threads();
    test_thread_churn();
    test_all_tiers();
    return test_done("test_threads");
}
