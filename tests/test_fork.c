/* fork() while other threads allocate: the child must be able to use the
 * allocator at once (no lock left held by a thread that does not exist in the
 * child), including freeing blocks the parent allocated before the fork.
 *
 * Uses the standard names (malloc/free/realloc): linked against HAKMEM they
 * are HAKMEM.  A child that deadlocks is killed by its alarm(10) and shows up
 * as SIGALRM.  Child exit codes: 0 ok, 2 pattern error, 3 allocation failed,
 * 4 thread creation in the child failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

#define WORKERS 4
#define FORKS_MAIN 100
#define FORKS_THREAD 10
#define PRE_PER_OWNER 16

/* pattern: byte i = (tag + i * 7) & 0xff over the first and last 256 bytes
 * and the first byte of every 4 KiB page in between */
static size_t next_off(size_t i, size_t n)
{
    if (i < 256 || i + 256 >= n) return i + 1;
    size_t next_page = (i | 4095) + 1;
    return next_page < n - 256 ? next_page : n - 256;
}

static void fill(unsigned char *p, size_t n, unsigned tag)
{
    for (size_t i = 0; i < n; i = next_off(i, n)) p[i] = (unsigned char)(tag + i * 7);
}

static int check(const unsigned char *p, size_t n, unsigned tag)
{
    for (size_t i = 0; i < n; i = next_off(i, n))
        if (p[i] != (unsigned char)(tag + i * 7)) return 1;
    return 0;
}

static size_t mixed_size(uint64_t *r)
{
    unsigned d = (unsigned)(xorshift64(r) % 1000);
    if (d < 650) return rand_log_size(r, 1, 1 * KiB);
    if (d < 960) return rand_log_size(r, 1 * KiB, 64 * KiB);
    if (d < 995) return rand_log_size(r, 64 * KiB, 2 * MiB);
    return rand_log_size(r, 2 * MiB + 1, 6 * MiB);
}

/* ------------------------------------------------------------- parent side */

struct blk { unsigned char *p; size_t size; unsigned tag; };

/* blocks allocated before the forks by the main thread and by each worker */
static struct blk pre[(WORKERS + 1) * PRE_PER_OWNER];
static pthread_barrier_t start_barrier;
static atomic_int stop;
static atomic_long worker_errors, worker_nulls, worker_ops;

static void *worker(void *arg)
{
    long id = (long)arg;
    uint64_t r = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
    for (int i = 0; i < PRE_PER_OWNER; i++) {
        struct blk *b = &pre[(id + 1) * PRE_PER_OWNER + i];
        b->size = mixed_size(&r);
        b->tag = (unsigned)(id * 100 + i);
        b->p = malloc(b->size);
        if (b->p) fill(b->p, b->size, b->tag);
    }
    pthread_barrier_wait(&start_barrier);

    struct blk tab[128];
    memset(tab, 0, sizeof tab);
    long errors = 0, nulls = 0, ops = 0;
    unsigned tag = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        struct blk *b = &tab[xorshift64(&r) % 128];
        unsigned d = (unsigned)(xorshift64(&r) % 3);
        ops++;
        if (!b->p) {
            size_t s = mixed_size(&r);
            b->p = malloc(s);
            if (!b->p) { nulls++; continue; }
            b->size = s;
            b->tag = ++tag;
            fill(b->p, s, b->tag);
        } else if (d == 0) {
            size_t s = mixed_size(&r);
            unsigned char *np = realloc(b->p, s);
            if (!np) { nulls++; continue; }
            size_t keep = s < b->size ? s : b->size;
            /* the preserved prefix: first 256 bytes are always covered */
            if (check(np, keep < 256 ? keep : 256, b->tag)) errors++;
            b->p = np;
            b->size = s;
            b->tag = ++tag;
            fill(np, s, b->tag);
        } else {
            errors += check(b->p, b->size, b->tag);
            free(b->p);
            b->p = NULL;
        }
    }
    for (int i = 0; i < 128; i++)
        if (tab[i].p) {
            errors += check(tab[i].p, tab[i].size, tab[i].tag);
            free(tab[i].p);
        }
    atomic_fetch_add(&worker_errors, errors);
    atomic_fetch_add(&worker_nulls, nulls);
    atomic_fetch_add(&worker_ops, ops);
    return NULL;
}

/* -------------------------------------------------------------- child side */

/* mostly Tiny/Mid; Large and Huge rarely (each costs page faults while four
 * workers compete for the CPUs) */
static size_t child_size(uint64_t *r)
{
    unsigned d = (unsigned)(xorshift64(r) % 1000);
    if (d < 700) return rand_log_size(r, 1, 1 * KiB);
    if (d < 985) return rand_log_size(r, 1 * KiB, 64 * KiB);
    return rand_log_size(r, 64 * KiB, 2 * MiB);
}

static void *child_thread(void *arg)
{
    uint64_t r = 0xC0FFEEull + (uintptr_t)arg;
    for (int i = 0; i < 1000; i++) {
        size_t s = child_size(&r);
        unsigned char *p = malloc(s);
        if (!p) return (void *)3;
        fill(p, s, (unsigned)i);
        if (check(p, s, (unsigned)i)) return (void *)2;
        free(p);
    }
    return NULL;
}

/* runs in the child; returns the exit code */
static int child_work(uint64_t seed)
{
    uint64_t r = seed | 1;
    struct blk live[64];
    memset(live, 0, sizeof live);
    int huge = 0;
    for (int i = 0; i < 10000; i++) {
        struct blk *b = &live[xorshift64(&r) % 64];
        if (b->p) {
            if (check(b->p, b->size, b->tag)) return 2;
            free(b->p);
            b->p = NULL;
        }
        size_t s = (i % 1000 == 0) ? 3 * MiB + (size_t)i : child_size(&r);
        if (s > 2 * MiB) huge++;
        b->p = malloc(s);
        if (!b->p) return 3;
        b->size = s;
        b->tag = (unsigned)i;
        fill(b->p, s, b->tag);
    }
    /* blocks the parent (main thread and workers, which do not exist here)
     * allocated before the fork */
    for (int i = 0; i < (WORKERS + 1) * PRE_PER_OWNER; i += 3) {
        if (!pre[i].p) continue;
        if (check(pre[i].p, pre[i].size, pre[i].tag)) return 2;
        free(pre[i].p);
    }
    /* a new thread in the child */
    pthread_t t;
    void *ret = (void *)1;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)seed) != 0) return 4;
    pthread_join(t, &ret);
    if (ret) return (int)(uintptr_t)ret;
    for (int i = 0; i < 64; i++)
        if (live[i].p) {
            if (check(live[i].p, live[i].size, live[i].tag)) return 2;
            free(live[i].p);
        }
    return huge > 0 ? 0 : 5;
}

/* fork one child, wait for it; returns 1 if it exited with status 0 */
static int fork_one(uint64_t seed, const char *who)
{
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", who, strerror(errno));
        return 0;
    }
    if (pid == 0) {
        alarm(10);
        _exit(child_work(seed));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) { perror("waitpid"); return 0; }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 1;
    if (WIFSIGNALED(st))
        fprintf(stderr, "%s: child %d killed by signal %d (%s)%s\n", who, (int)pid, WTERMSIG(st),
                strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? ": deadlock after fork" : "");
    else
        fprintf(stderr, "%s: child %d exited with status %d\n", who, (int)pid, WEXITSTATUS(st));
    return 0;
}

static atomic_int thread_fork_ok;
static void *forking_thread(void *arg)
{
    int ok = 0;
    for (int i = 0; i < FORKS_THREAD; i++) ok += fork_one(0xF00Dull * (uint64_t)(i + 7), "fork from thread");
    atomic_store(&thread_fork_ok, ok);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t r = 12345;
    for (int i = 0; i < PRE_PER_OWNER; i++) {
        struct blk *b = &pre[i];
        b->size = (i == 0) ? 3 * MiB : mixed_size(&r);
        b->tag = 7000u + (unsigned)i;
        b->p = malloc(b->size);
        if (b->p) fill(b->p, b->size, b->tag);
    }
    pthread_barrier_init(&start_barrier, NULL, WORKERS + 1);
    pthread_t th[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    pthread_barrier_wait(&start_barrier);
    int npre = 0;
    for (int i = 0; i < (WORKERS + 1) * PRE_PER_OWNER; i++) npre += pre[i].p != NULL;
    CHECK(npre == (WORKERS + 1) * PRE_PER_OWNER, "%d of the pre-fork blocks allocated", npre);

    /* forks from the main thread while the workers run */
    int ok = 0;
    for (int i = 0; i < FORKS_MAIN; i++) ok += fork_one((uint64_t)i * 0x100000001ull + 1, "fork from main");
    CHECK(ok == FORKS_MAIN, "%d of %d children forked by main exited 0", ok, FORKS_MAIN);

    /* forks from a non-main thread while the workers run */
    pthread_t ft;
    CHECK(pthread_create(&ft, NULL, forking_thread, NULL) == 0, "pthread_create");
    pthread_join(ft, NULL);
    CHECK(atomic_load(&thread_fork_ok) == FORKS_THREAD, "%d of %d children forked by a thread exited 0",
          atomic_load(&thread_fork_ok), FORKS_THREAD);

    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);

    /* the parent's own copies of the pre-fork blocks are untouched */
    int bad = 0;
    for (int i = 0; i < (WORKERS + 1) * PRE_PER_OWNER; i++)
        if (pre[i].p) {
            bad += check(pre[i].p, pre[i].size, pre[i].tag);
            free(pre[i].p);
        }
    CHECK(bad == 0, "%d pre-fork blocks corrupted in the parent", bad);
    CHECK(atomic_load(&worker_errors) == 0, "%ld pattern errors in the workers", atomic_load(&worker_errors));
    CHECK(atomic_load(&worker_nulls) == 0, "%ld allocations failed in the workers", atomic_load(&worker_nulls));

    /* the allocator still works after all this */
    void *p = malloc(100), *q = malloc(5 * MiB);
    CHECK(p && q, "malloc after forks");
    free(p);
    free(q);

    printf("fork: %d+%d children ok, workers did %ld ops meanwhile\n", ok,
           atomic_load(&thread_fork_ok), atomic_load(&worker_ops));
    return test_done("test_fork");
}
