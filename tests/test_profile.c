/* Heap profiling (HAKMEM_PROFILE): each case runs in a child started with
 * the settings it needs (profiling is chosen at start-up), then the parent
 * reads the files the child wrote.
 *
 *   sampled  the default rate: a call site that leaks 128 MB is the first in
 *            the leak report, within 25% of its size; a site that allocated
 *            and freed 200 MB is in the profile's totals, not in the report;
 *            the profile is pprof's legacy heap format with the memory map,
 *            and names the leaking site's code.
 *   exact    HAKMEM_PROFILE_RATE=1 (every allocation): exact sizes and counts
 *            for leaks from malloc, calloc (Huge), realloc (slab and Huge,
 *            moved or not) and aligned_alloc; blocks freed by another thread,
 *            or by anyone after their thread exited, are not leaks;
 *            hak_profile_dump writes the heap as it is at the call.
 *   handoff  rate 1, threads that allocate and exit, then threads that free
 *            those blocks before they allocate anything (ownerless slabs),
 *            and threads that free each other's blocks while allocating:
 *            nothing is reported, nothing crashes.
 *   fork     a fork child's profile goes to FILE.pid; %p in the name is the pid.
 *   off      without HAKMEM_PROFILE, hak_profile_dump fails with EINVAL.
 * The sampling is seeded by thread order, so what these assert is the same
 * on every run. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hakmem.h"
#include "testutil.h"

static char dir[64];
static void *volatile sink;

/* ---- the children's call sites -------------------------------------------------------- */
/* Global, so that dladdr names them (the tests are linked with -rdynamic). */
__attribute__((noinline)) void *leak_site(size_t n)
{
    void *p = malloc(n);
    memset(p, 0x5a, n < 64 ? n : 64);
    return p;
}

__attribute__((noinline)) void churn_site(size_t total, size_t n)
{
    for (size_t done = 0; done < total; done += n) {
        sink = malloc(n);
        free(sink);
    }
}

__attribute__((noinline)) void huge_site(void) { sink = calloc(1, (size_t)3 << 20); }

__attribute__((noinline)) void aligned_site(void) { sink = aligned_alloc(4096, 5000); }

__attribute__((noinline)) void realloc_site(void)
{
    char *p = malloc(100);
    p = realloc(p, 90);              /* in place */
    p = realloc(p, 5000);            /* moved */
    p = realloc(p, (size_t)3 << 20); /* to Huge */
    p = realloc(p, (size_t)5 << 20); /* Huge, grown */
    sink = p;
}

void *from_thread(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < 1000; i++)
        blocks[i] = malloc(200);
    return NULL;
}

#define HANDOFF_THREADS 4
#define HANDOFF_BLOCKS 3000
static void *handoff[HANDOFF_THREADS][HANDOFF_BLOCKS];

__attribute__((noinline)) void *handoff_alloc(void *arg)
{
    uint64_t r = 0x9e3779b97f4a7c15ull * (uintptr_t)(1 + (intptr_t)arg);
    void **mine = handoff[(intptr_t)arg];
    for (int i = 0; i < HANDOFF_BLOCKS; i++)
        mine[i] = malloc(i % 100 == 0 ? 100000 : rand_log_size(&r, 8, 5000));
    return NULL;
}

__attribute__((noinline)) void *handoff_alloc_one(int i) { return malloc(16 + (size_t)i % 2000); }

void *handoff_free(void *arg)
{
    void **theirs = handoff[(intptr_t)arg];
    for (int i = 0; i < HANDOFF_BLOCKS; i++)
        free(theirs[i]);
    return NULL;
}

/* Frees the other half of its neighbour's blocks while allocating and
 * freeing its own. */
void *handoff_mixed(void *arg)
{
    void **theirs = handoff[((intptr_t)arg + 1) % HANDOFF_THREADS];
    for (int i = 0; i < HANDOFF_BLOCKS; i++) {
        free(theirs[i]);
        theirs[i] = NULL;
        void *volatile mine = handoff_alloc_one(i);  /* not sink: shared by the threads */
        free(mine);
    }
    return NULL;
}

static int child(const char *what)
{
    if (strcmp(what, "sampled") == 0) {
        for (int i = 0; i < 128000; i++)
            sink = leak_site(1000);
        churn_site((size_t)200 << 20, 1000);
        return 0;
    }
    if (strcmp(what, "exact") == 0) {
        for (int i = 0; i < 500; i++)
            sink = leak_site(1000);
        if (hak_profile_dump(NULL) != 0)
            return 3;
        for (int i = 0; i < 500; i++)
            sink = leak_site(1000);
        churn_site(1000 * 1000, 1000);
        huge_site();
        aligned_site();
        realloc_site();
        /* Blocks of another thread, freed here after it exited. */
        static void *blocks[1000];
        pthread_t t;
        pthread_create(&t, NULL, from_thread, blocks);
        pthread_join(t, NULL);
        for (int i = 0; i < 1000; i++)
            free(blocks[i]);
        return 0;
    }
    if (strcmp(what, "handoff") == 0) {
        pthread_t t[HANDOFF_THREADS];
        for (int round = 0; round < 3; round++) {
            for (intptr_t k = 0; k < HANDOFF_THREADS; k++)
                pthread_create(&t[k], NULL, handoff_alloc, (void *)k);
            for (int k = 0; k < HANDOFF_THREADS; k++)
                pthread_join(t[k], NULL);
            /* Their slabs are ownerless now: freed by threads with no heap yet. */
            void *(*fn)(void *) = round == 1 ? handoff_mixed : handoff_free;
            for (intptr_t k = 0; k < HANDOFF_THREADS; k++)
                pthread_create(&t[k], NULL, fn, (void *)k);
            for (int k = 0; k < HANDOFF_THREADS; k++)
                pthread_join(t[k], NULL);
        }
        return 0;
    }
    if (strcmp(what, "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 10; i++)
                sink = leak_site(777);
            exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        printf("%d\n", (int)pid);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 4;
    }
    if (strcmp(what, "off") == 0) {
        errno = 0;
        return hak_profile_dump(NULL) == -1 && errno == EINVAL ? 0 : 5;
    }
    return 2;
}

/* ---- the parent ---------------------------------------------------------------------- */
/* Runs this program as child `what` with HAKMEM_PROFILE=profile (unless
 * NULL) and the rate; its stdout and stderr go to out (NUL-terminated). */
static int run(const char *what, const char *profile, const char *rate, char *out, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        unsetenv("HAKMEM_PROFILE");
        unsetenv("HAKMEM_PROFILE_RATE");
        if (profile)
            setenv("HAKMEM_PROFILE", profile, 1);
        if (rate)
            setenv("HAKMEM_PROFILE_RATE", rate, 1);
        alarm(120);
        char *args[] = { "test_profile", "--child", (char *)what, NULL };
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], out + len, size - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The whole file (NULL if missing); the caller frees it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - 1 - len, f)) > 0) {
        len += n;
        if (len == cap - 1)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* The leak report's entry (from "#k " to the next blank line) whose stack
 * names site, copied into out; false if there is none. */
static bool report_entry(const char *report, const char *site, char *out, size_t size)
{
    for (const char *e = strstr(report, "\n#"); e; e = strstr(e + 1, "\n#")) {
        const char *end = strstr(e + 1, "\n\n");
        size_t len = end ? (size_t)(end - (e + 1)) : strlen(e + 1);
        if (len >= size)
            len = size - 1;
        memcpy(out, e + 1, len);
        out[len] = '\0';
        char name[64];
        snprintf(name, sizeof name, " %s+", site);
        if (strstr(out, name))
            return true;
    }
    return false;
}

/* "about B bytes in about N blocks (S samples" of an entry. */
static bool entry_figures(const char *entry, unsigned long *bytes, unsigned long *blocks,
                          unsigned long *samples)
{
    unsigned k;
    return sscanf(entry, "#%u about %lu bytes in about %lu blocks (%lu samples", &k, bytes, blocks,
                  samples) == 4;
}

static void check_sampled(void)
{
    char out[8192], path[128], leaks[160];
    snprintf(path, sizeof path, "%s/sampled", dir);
    snprintf(leaks, sizeof leaks, "%s.leaks", path);
    int rc = run("sampled", path, NULL, out, sizeof out);
    CHECK(rc == 0, "sampled child exited %d: %s", rc, out);
    char want[256];
    snprintf(want, sizeof want, "HAKMEM: heap profile in %s; about ", path);
    CHECK(strstr(out, want) != NULL, "no line on stderr: %s", out);
    char *prof = slurp(path), *report = slurp(leaks);
    CHECK(prof && report, "profile or report missing");
    if (!prof || !report)
        return;
    /* pprof's header, the rate, and the memory map it symbolises with. */
    unsigned long n1, b1, n2, b2, r;
    CHECK(sscanf(prof, "heap profile: %lu: %lu [%lu: %lu] @ heap_v2/%lu", &n1, &b1, &n2, &b2, &r) == 5 &&
              r == 524288 && n1 > 0 && n2 > n1 && b2 > b1,
          "profile header: %.80s", prof);
    char *maps = strstr(prof, "\nMAPPED_LIBRARIES:\n");
    CHECK(maps && strstr(maps, "test_profile") && strstr(maps, "libhakmem"), "no memory map");
    /* The leak: first in the report, about 128 MB. */
    char entry[4096];
    unsigned long bytes = 0, blocks = 0, samples = 0;
    CHECK(report_entry(report, "leak_site", entry, sizeof entry) && strncmp(entry, "#1 ", 3) == 0,
          "leak_site is not the first call site:\n%s", report);
    CHECK(entry_figures(entry, &bytes, &blocks, &samples), "entry: %s", entry);
    CHECK(bytes > 96000000 && bytes < 160000000, "leak_site: %lu bytes, 128000000 leaked", bytes);
    CHECK(blocks > 96000 && blocks < 160000, "leak_site: %lu blocks, 128000 leaked", blocks);
    CHECK(samples > 100, "leak_site: only %lu samples", samples);
    CHECK(strstr(report, "churn_site") == NULL, "a freed site is in the leak report:\n%s", report);
    /* The profile names leak_site's code: its call stacks hold an address
     * in leak_site, as the child's memory map places this program. */
    unsigned long lo = 0, off = 0;
    for (char *line = maps; line && !lo; line = strchr(line + 1, '\n'))
        if (strstr(line, "r-xp") && strstr(line, "test_profile") &&
            sscanf(line + 1, "%lx-%*x r-xp %lx", &lo, &off) != 2)
            lo = 0;
    Dl_info self;
    CHECK(lo && dladdr((void *)leak_site, &self), "no mapping of test_profile's code");
    uintptr_t site = lo - off + (uintptr_t)((char *)leak_site - (char *)self.dli_fbase);
    bool named = false;
    for (char *line = strchr(prof, '\n'); line && line < maps; line = strchr(line + 1, '\n'))
        for (char *a = strstr(line, " 0x"); a && a < strchr(line + 1, '\n'); a = strstr(a + 1, " 0x")) {
            uintptr_t pc = (uintptr_t)strtoull(a + 1, NULL, 16);
            named |= pc > site && pc < site + 256;
        }
    CHECK(named, "no call stack in the profile returns into leak_site");
    free(prof);
    free(report);
}

static void check_exact(void)
{
    char out[8192], path[128], leaks[160], dump[160];
    snprintf(path, sizeof path, "%s/exact", dir);
    snprintf(leaks, sizeof leaks, "%s.leaks", path);
    snprintf(dump, sizeof dump, "%s.1", path);
    int rc = run("exact", path, "1", out, sizeof out);
    CHECK(rc == 0, "exact child exited %d: %s", rc, out);
    char *report = slurp(leaks), *mid = slurp(dump), *prof = slurp(path);
    CHECK(report && mid && prof, "report, dump or profile missing");
    if (!report || !mid || !prof)
        return;
    char entry[4096];
    unsigned long bytes, blocks, samples;
    struct { const char *site; unsigned long bytes, blocks; } want[] = {
        { "leak_site", 1000000, 1000 },
        { "huge_site", 3 << 20, 1 },
        { "aligned_site", 5000, 1 },
        { "realloc_site", 5 << 20, 1 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        /* leak_site is called from two places: two call stacks */
        unsigned long sum_bytes = 0, sum_blocks = 0, sum_samples = 0;
        int entries = 0;
        for (const char *from = report; report_entry(from, want[i].site, entry, sizeof entry);
             from = strstr(from, entry) + 1, entries++) {
            CHECK(entry_figures(entry, &bytes, &blocks, &samples), "entry: %s", entry);
            sum_bytes += bytes;
            sum_blocks += blocks;
            sum_samples += samples;
        }
        CHECK(entries > 0, "%s not in the leak report:\n%s", want[i].site, report);
        CHECK(sum_bytes == want[i].bytes && sum_blocks == want[i].blocks &&
                  sum_samples == want[i].blocks,
              "%s: %lu bytes in %lu blocks (%lu samples), want %lu in %lu", want[i].site, sum_bytes,
              sum_blocks, sum_samples, want[i].bytes, want[i].blocks);
    }
    CHECK(strstr(report, "churn_site") == NULL, "freed blocks reported:\n%s", report);
    CHECK(strstr(report, "from_thread") == NULL, "blocks freed after their thread exited reported");
    /* The dump in the middle: 500 of leak_site's blocks live then.  Its
     * line in the profile reads "500: 500000 [500: 500000] @ ...". */
    CHECK(strstr(mid, "\n500: 500000 [500: 500000] @ 0x") != NULL, "mid-run dump:\n%.400s", mid);
    const char *second = strstr(prof, "\n500: 500000 [500: 500000] @ 0x");
    CHECK(second && strstr(second + 1, "\n500: 500000 [500: 500000] @ 0x"), "final profile");
    /* churn_site's 1000 blocks: none live, all counted as allocated. */
    CHECK(strstr(prof, "\n0: 0 [1000: 1000000] @ 0x") != NULL, "churn totals");
    free(report);
    free(mid);
    free(prof);
}

/* The fork case's child prints its child's pid on a line of its own
 * (stderr's lines from the profiles are in the same output). */
static int printed_pid(const char *out)
{
    for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
        size_t digits = strspn(line, "0123456789");
        if (digits > 0 && line[digits] == '\n')
            return atoi(line);
        if (strchr(line, '\n') == NULL)
            break;
    }
    return 0;
}

static void check_handoff(void)
{
    char out[8192], path[128], leaks[160];
    snprintf(path, sizeof path, "%s/handoff", dir);
    snprintf(leaks, sizeof leaks, "%s.leaks", path);
    int rc = run("handoff", path, "1", out, sizeof out);
    CHECK(rc == 0, "handoff child exited %d: %s", rc, out);
    char *report = slurp(leaks);
    CHECK(report && strstr(report, "HAKMEM leak report"), "handoff: no report");
    /* Blocks allocated by handoff_alloc itself (the stack's first frame):
     * none.  (glibc's thread blocks, some made by a pthread_create in
     * HAKMEM called from there, do stay.) */
    for (const char *at = report; at && (at = strstr(at, "allocated at\n")); at++) {
        const char *frame = at + strlen("allocated at\n"), *eol = strchr(frame, '\n');
        const char *name = strstr(frame, " handoff_alloc");
        CHECK(!name || (eol && name > eol), "handoff: blocks reported: %.300s", frame);
    }
    free(report);
}

static void check_fork(void)
{
    char out[8192], path[128], child_path[160], with_pid[128];
    snprintf(path, sizeof path, "%s/forked", dir);
    int rc = run("fork", path, "1", out, sizeof out);
    CHECK(rc == 0, "fork child exited %d: %s", rc, out);
    int pid = printed_pid(out);
    CHECK(pid > 0, "no pid printed: %s", out);
    snprintf(child_path, sizeof child_path, "%s.%d.leaks", path, pid);
    char *report = slurp(child_path), entry[4096];
    unsigned long bytes, blocks, samples;
    CHECK(report && report_entry(report, "leak_site", entry, sizeof entry) &&
              entry_figures(entry, &bytes, &blocks, &samples) && bytes == 7770 && blocks == 10,
          "%s: %s", child_path, report ? report : "missing");
    free(report);
    /* %p: each process its own file, named by its pid. */
    snprintf(with_pid, sizeof with_pid, "%s/p%%p", dir);
    rc = run("fork", with_pid, "1", out, sizeof out);
    pid = printed_pid(out);
    snprintf(child_path, sizeof child_path, "%s/p%d.leaks", dir, pid);
    report = slurp(child_path);
    CHECK(rc == 0 && pid > 0 && report && strstr(report, "leak_site+"), "%s: %s", child_path,
          report ? report : "missing");
    free(report);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return child(argv[2]);
    snprintf(dir, sizeof dir, "/tmp/hakmem_profile.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        return test_done("test_profile");
    }
    char out[4096];
    CHECK(run("off", NULL, NULL, out, sizeof out) == 0 && out[0] == '\0',
          "hak_profile_dump without HAKMEM_PROFILE: %s", out);
    check_sampled();
    check_exact();
    check_handoff();
    check_fork();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return test_done("test_profile");
}
