/* Out of memory: with the address space capped (RLIMIT_AS), every tier must
 * return NULL with errno ENOMEM once the OS refuses, never crash, keep every
 * live block intact, and serve again once memory is freed.  Runs in child
 * processes so the cap does not touch the test runner. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hakmem.h"
#include "testutil.h"

#define MAX_BLOCKS (4 << 20)

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    size_t pages = 0;
    if (f) {
        if (fscanf(f, "%zu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void cap_address_space(size_t extra)
{
    struct rlimit rl = { vm_size() + extra, vm_size() + extra };
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(90);
}

static unsigned char tag(size_t i) { return (unsigned char)(i * 131u + 7u); }

/* Allocates blocks of `size` until NULL; checks errno and contents; frees
 * half; checks that allocation works again.  Returns the number of failures. */
static int exhaust(size_t size, void **blocks, size_t *sizes)
{
    int bad = 0;
    size_t n = 0;
    for (; n < MAX_BLOCKS; n++) {
        errno = 0;
        void *p = malloc(size);
        if (p == NULL) {
            if (errno != ENOMEM) {
                fprintf(stderr, "size %zu: NULL with errno %d\n", size, errno);
                bad++;
            }
            break;
        }
        memset(p, tag(n), size < 64 ? size : 64);
        blocks[n] = p;
        sizes[n] = size;
    }
    if (n == MAX_BLOCKS) {
        fprintf(stderr, "size %zu: never ran out\n", size);
        bad++;
    }
    /* Some further failing calls in other tiers must not crash either. */
    for (int k = 0; k < 4; k++) {
        errno = 0;
        void *q = malloc((size_t)64 << 20);
        if (q == NULL && errno != ENOMEM)
            bad++;
        free(q);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = blocks[i];
        for (size_t j = 0; j < (sizes[i] < 64 ? sizes[i] : 64); j++)
            if (p[j] != tag(i)) {
                bad++;
                break;
            }
        if (i % 2 == 0)
            free(p);
    }
    for (size_t i = 0; i < n / 4; i++) {
        void *p = malloc(size);
        if (p == NULL) {
            fprintf(stderr, "size %zu: no recovery after free (%zu of %zu)\n", size, i, n / 4);
            bad++;
            break;
        }
        blocks[2 * i] = p;
    }
    for (size_t i = 0; i < n; i++)
        if (i % 2 == 1 || i / 2 < n / 4)
            free(blocks[i]);
    return bad;
}

static int child_single(void)
{
    static void *blocks[MAX_BLOCKS];
    static size_t sizes[MAX_BLOCKS];
    cap_address_space((size_t)32 << 20);
    int bad = 0;
    const size_t tier_sizes[] = { 24, 700, 3000, 40000, 300000, 1500000, 5u << 20 };
    for (size_t t = 0; t < sizeof tier_sizes / sizeof tier_sizes[0]; t++)
        bad += exhaust(tier_sizes[t], blocks, sizes);
    /* calloc and realloc under pressure. */
    void *keep = malloc(100);
    memset(keep, 0x5a, 100);
    errno = 0;
    /* A failed realloc leaves keep valid: reading it afterwards is the point. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
    void *r = realloc(keep, (size_t)1 << 40);
    if (r != NULL || errno != ENOMEM)
        bad++;
    for (int i = 0; i < 100; i++)
        if (((unsigned char *)keep)[i] != 0x5a)
            bad++;
    free(keep);
    errno = 0;
    if (calloc((size_t)1 << 20, (size_t)1 << 20) != NULL || errno != ENOMEM)
        bad++;
    return bad ? 1 : 0;
}

struct worker { size_t got, bad; };

static void *thread_exhaust(void *arg)
{
    struct worker *w = arg;
    void **mine = malloc(sizeof(void *) * 200000);
    size_t n = 0;
    if (mine == NULL)
        return NULL;
    for (; n < 200000; n++) {
        size_t size = 16 + (n * 37) % 4000;
        errno = 0;
        void *p = malloc(size);
        if (p == NULL) {
            if (errno != ENOMEM)
                w->bad++;
            break;
        }
        *(size_t *)p = n;
        mine[n] = p;
    }
    w->got = n;
    for (size_t i = 0; i < n; i++) {
        if (*(size_t *)mine[i] != i)
            w->bad++;
        free(mine[i]);
    }
    free(mine);
    return NULL;
}

static int child_threads(void)
{
    cap_address_space((size_t)200 << 20);
    pthread_t th[4];
    struct worker w[4] = { { 0, 0 } };
    for (int i = 0; i < 4; i++)
        if (pthread_create(&th[i], NULL, thread_exhaust, &w[i]) != 0)
            return 2;
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    size_t bad = 0, got = 0;
    for (int i = 0; i < 4; i++) {
        bad += w[i].bad;
        got += w[i].got;
    }
    /* After everything was freed, a fresh round must succeed again. */
    void *p = malloc(1 << 20);
    if (p == NULL)
        bad++;
    free(p);
    printf("threads: %zu blocks before ENOMEM, %zu errors\n", got, bad);
    return bad ? 1 : 0;
}

static int run_child(int (*fn)(void), const char *name)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = fn();
        fflush(stdout);
        _exit(rc);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %#x", name, st);
    return 0;
}

int main(void)
{
    run_child(child_single, "every tier until ENOMEM");
    run_child(child_threads, "4 threads until ENOMEM");
    return test_done("test_oom");
}
