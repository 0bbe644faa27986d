/* Bad pointers handed to free/realloc: in a child process each must print
 * exactly one stderr line naming HAKMEM, the call, "invalid pointer" and the
 * pointer (as %p prints it), then die by SIGABRT.  A valid program prints
 * nothing on stderr at all. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

static inline void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

struct child_result {
    int status;
    char err[8192];
    size_t errlen;
};

/* Runs fn(arg) in a child whose stderr is captured; fills r. */
static int run_child(void (*fn)(void *), void *arg, struct child_result *r)
{
    int fds[2];
    memset(r, 0, sizeof *r);
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        struct rlimit rl = { 0, 0 };
        setrlimit(RLIMIT_CORE, &rl);   /* no core files from the aborts */
        alarm(60);
        fn(arg);
        _exit(99);                     /* fn returned: the bad call did not abort */
    }
    close(fds[1]);
    for (;;) {
        ssize_t n = read(fds[0], r->err + r->errlen, sizeof r->err - 1 - r->errlen);
        if (n > 0) { r->errlen += (size_t)n; if (r->errlen == sizeof r->err - 1) break; continue; }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    r->err[r->errlen] = 0;
    close(fds[0]);
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR) {}
    return 0;
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* The pointer as %p prints it, standing alone (not a prefix of a longer number). */
static int has_pointer(const char *s, const void *p)
{
    char want[64];
    snprintf(want, sizeof want, "%p", p);
    if (strncmp(want, "0x", 2) != 0) return 0;
    for (const char *q = want + 2; *q; q++)
        if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))) return 0;
    size_t wl = strlen(want);
    for (const char *f = strstr(s, want); f; f = strstr(f + 1, want))
        if (!is_hex(f[wl]) && (f == s || !is_hex(f[-1]))) return 1;
    return 0;
}

static void expect_abort(const char *label, void (*fn)(void *), void *bad, const char *call)
{
    struct child_result r;
    if (run_child(fn, bad, &r) != 0) { CHECK(0, "%s: fork/pipe failed", label); return; }
    CHECK(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT,
          "%s: child did not die by SIGABRT (status %#x: %s %d)", label, r.status,
          WIFSIGNALED(r.status) ? "signal" : "exit code",
          WIFSIGNALED(r.status) ? WTERMSIG(r.status) : WEXITSTATUS(r.status));
    int lines = 0;
    for (size_t i = 0; i < r.errlen; i++) lines += r.err[i] == '\n';
    CHECK(r.errlen > 0 && lines == 1 && r.err[r.errlen - 1] == '\n',
          "%s: stderr is not exactly one line (%d newlines): \"%s\"", label, lines, r.err);
    CHECK(strstr(r.err, "HAKMEM") != NULL, "%s: no \"HAKMEM\" in \"%s\"", label, r.err);
    CHECK(strstr(r.err, call) != NULL, "%s: no \"%s\" in \"%s\"", label, call, r.err);
    CHECK(strstr(r.err, "invalid pointer") != NULL, "%s: no \"invalid pointer\" in \"%s\"", label, r.err);
    char want[64];
    snprintf(want, sizeof want, "%p", bad);
    CHECK(has_pointer(r.err, bad), "%s: pointer %s not in \"%s\"", label, want, r.err);
}

static void do_free(void *p) { free(launder(p)); }
static void do_realloc(void *p)
{
    void *q = realloc(launder(p), 100);
    (void)launder(q);
}
static void do_hak_free(void *p) { hak_free(launder(p)); }
static void do_hak_realloc(void *p)
{
    void *q = hak_realloc(launder(p), 100);
    (void)launder(q);
}

static _Alignas(64) char g_buf[256];
static long g_long = 5;

static void *thread_work(void *arg)
{
    uint64_t x = (uintptr_t)arg;
    void *keep[64] = { 0 };
    for (int i = 0; i < 2000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 64);
        free(keep[k]);
        keep[k] = malloc((size_t)(x >> 40) % 5000);
        if (keep[k]) memset(keep[k], 1, (size_t)(x >> 40) % 5000);
    }
    for (int k = 0; k < 64; k++) free(keep[k]);
    return NULL;
}

/* A correct program: 10000 mixed operations, a thread, normal exit. */
static void valid_program(void *unused)
{
    (void)unused;
    uint64_t x = 12345;
    void *keep[256] = { 0 };
    for (int i = 0; i < 10000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((x >> 33) % 256);
        unsigned kind = (unsigned)(x >> 20) % 6;
        size_t n = (size_t)1 << ((x >> 45) % 23);
        n += (size_t)(x >> 8) % n;
        if (keep[k] && kind == 5) {
            void *q = realloc(keep[k], n);
            if (q) { keep[k] = q; memset(q, 2, n); }
            continue;
        }
        free(keep[k]);
        keep[k] = NULL;
        switch (kind) {
        case 0: case 1: keep[k] = malloc(n); break;
        case 2: keep[k] = calloc(1, n); break;
        case 3: keep[k] = aligned_alloc(64, n); break;
        case 4: if (posix_memalign(&keep[k], 4096, n) != 0) keep[k] = NULL; break;
        default: keep[k] = hak_malloc(n); break;
        }
        if (keep[k]) memset(keep[k], 3, n);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, thread_work, (void *)(uintptr_t)99) == 0) pthread_join(t, NULL);
    for (int k = 0; k < 256; k++) free(keep[k]);
    malloc_trim(0);
    exit(0);    /* normal exit: atexit handlers and destructors run */
}

int main(void)
{
    char stack_buf[256] __attribute__((aligned(64)));
    memset(stack_buf, 0, sizeof stack_buf);

    expect_abort("free(stack)", do_free, stack_buf + 64, "free");
    expect_abort("free(stack, unaligned)", do_free, stack_buf + 3, "free");
    expect_abort("free(global)", do_free, g_buf, "free");
    expect_abort("free(global long)", do_free, &g_long, "free");

    size_t len = 1 << 20;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    if (m != MAP_FAILED) {
        expect_abort("free(private mmap)", do_free, m, "free");
        expect_abort("free(inside private mmap)", do_free, m + 3 * 4096 + 32, "free");
    }

    expect_abort("realloc(stack)", do_realloc, stack_buf + 64, "realloc");
    expect_abort("realloc(global)", do_realloc, g_buf + 16, "realloc");
    expect_abort("hak_free(stack)", do_hak_free, stack_buf + 128, "free");
    expect_abort("hak_realloc(stack)", do_hak_realloc, stack_buf + 128, "realloc");

    struct child_result r;
    if (run_child(valid_program, NULL, &r) != 0) {
        CHECK(0, "fork failed");
    } else {
        CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "valid program: status %#x", r.status);
        CHECK(r.errlen == 0, "valid program wrote %zu bytes to stderr: \"%s\"", r.errlen, r.err);
    }
    if (m != MAP_FAILED) munmap(m, len);
    return test_done("test_errors");
}
