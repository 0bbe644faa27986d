/* Bad pointers handed to free/realloc: in a child process each must print
 * exactly one stderr line naming HAKMEM, the call, "invalid pointer" and the
 * pointer (as %p prints it), then die by SIGABRT.  A valid program prints
 * nothing on stderr at all.
 *
 * Then misuse of real blocks (double free, interior and unaligned pointers,
 * realloc and malloc_usable_size of a freed block, a Huge block freed twice):
 * each must abort with exactly the line "HAKMEM: <call>(): <error> <pointer>",
 * both in a forked child and in this binary re-executed with HAKMEM_CHECK=1
 * (read at start-up).  With HAKMEM_CHECK=1 a write into a freed block is
 * caught when the block is handed out again.  A bad setting is reported in
 * one line and the program runs on; a correct program under HAKMEM_CHECK=1
 * exits 0 with nothing on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
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
    /* Blocks freed, taken back and freed again in every order the double
     * free test of the thread cache (the block freed last and the one
     * before it) must tell from a double free. */
    static const size_t sizes[] = { 48, 5000 };
    for (int k = 0; k < 2; k++) {
        void *a = malloc(sizes[k]), *b = malloc(sizes[k]);
        free(a);
        free(b);
        void *b2 = malloc(sizes[k]), *a2 = malloc(sizes[k]);    /* b, then a */
        free(a2);
        free(b2);
        b2 = malloc(sizes[k]);
        free(b2);
        a2 = malloc(sizes[k]);
        free(b2 = malloc(sizes[k]));
        free(a2);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, thread_work, (void *)(uintptr_t)99) == 0) pthread_join(t, NULL);
    for (int k = 0; k < 256; k++) free(keep[k]);
    malloc_trim(0);
    exit(0);    /* normal exit: atexit handlers and destructors run */
}

/* ---- misuse of real blocks ------------------------------------------------------ */
/* Each case allocates a block, writes the pointer the report must name to fd
 * (as %p prints it, before anything is freed: no allocation may come between
 * the free and the bad call) and makes the bad call, which must not return. */
static void report_ptr(int fd, const void *p)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%p\n", p);
    if (n > 0 && write(fd, buf, (size_t)n) != n)
        _exit(98);
}

static char *filled(size_t n)
{
    char *p = malloc(n);
    if (p == NULL)
        _exit(97);
    memset(p, 0x5c, n);
    return p;
}

static void double_free(int fd, size_t n)
{
    char *p = filled(n);
    char *q = launder(p);
    report_ptr(fd, q);
    free(p);
    free(launder(q));
}

/* free(p), free(q), free(p) with n-byte blocks: p is no longer the last
 * block freed. */
static void df_interleaved(int fd, size_t n)
{
    char *p = filled(n), *q = filled(n), *held = launder(p);
    report_ptr(fd, held);
    free(p);
    free(q);
    free(launder(held));
}

/* free(p), then 1024 blocks of its size allocated and freed (p among them,
 * or held back by check mode's quarantine), then free(p) again. */
static void c_df_delayed(int fd)
{
    char *p = filled(48), *held = launder(p);
    report_ptr(fd, held);
    free(p);
    for (int i = 0; i < 1024; i++)
        free(launder(filled(48)));
    free(launder(held));
}

/* A block freed by the thread that allocated it, then by another thread;
 * and one freed twice by a thread that did not allocate it, so that both
 * frees take the cross-thread path. */
static void *free_in_thread(void *p)
{
    free(p);
    return NULL;
}
static void run_in_thread(void *(*fn)(void *), void *p)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, p) != 0 || pthread_join(t, NULL) != 0)
        _exit(95);
}
static void c_df_other_thread(int fd)
{
    char *p = filled(48), *held = launder(p);
    report_ptr(fd, held);
    free(p);
    run_in_thread(free_in_thread, launder(held));
}
static void *free_twice_in_thread(void *p)
{
    void *held = launder(p);
    free(p);
    free(launder(held));
    return NULL;
}
static void c_df_remote_twice(int fd)
{
    char *p = filled(48);
    report_ptr(fd, p);
    run_in_thread(free_twice_in_thread, p);
}

/* 4 KiB past a 16-byte block: a block of the same slab that was carved but
 * never handed out (the security set's invalid_free_close). */
static void c_free_never_out(int fd)
{
    char *p = filled(16);
    report_ptr(fd, p + 4096);
    free(launder(p + 4096));
}

static void free_at(int fd, size_t n, size_t offset)
{
    char *p = filled(n);
    report_ptr(fd, p + offset);
    free(launder(p + offset));
}

static void realloc_freed(int fd, size_t n)
{
    char *p = filled(n);
    char *q = launder(p);
    report_ptr(fd, q);
    free(p);
    (void)launder(realloc(launder(q), 2 * n));
}

static void usable_freed(int fd, size_t n)
{
    char *p = filled(n);
    char *q = launder(p);
    report_ptr(fd, q);
    free(p);
    volatile size_t u = malloc_usable_size(launder(q));
    (void)u;
}

/* HAKMEM_CHECK=1: the freed block is written to, then blocks of its size
 * are allocated and freed until it leaves the quarantine (4 MiB of frees),
 * where the write is found. */
static void write_after_free(int fd, size_t n)
{
    char *p = filled(n);
    char *q = launder(p);
    report_ptr(fd, q);
    free(p);
    memset(launder(q), 0x41, 32);
    for (int i = 0; i < 1000000; i++)
        free(launder(malloc(n)));
}

/* HAKMEM_CHECK=1: a write past the n bytes asked for (at offset n + k),
 * then the free. */
static void overflow(int fd, size_t n, size_t k)
{
    char *p = filled(n);
    report_ptr(fd, p);
    ((char *)launder(p))[n + k] ^= 1;
    free(p);
}

/* HAKMEM_CHECK=1: a write k bytes before a block that follows another
 * (allocated in pairs until two are adjacent), then the free. */
static void underflow(int fd, size_t n, size_t k)
{
    for (int i = 0; i < 1000; i++) {
        char *a = filled(n), *b = filled(n);
        if (b > a && (size_t)(b - a) < n + 128) {
            report_ptr(fd, b);
            ((char *)launder(b))[-(ptrdiff_t)k] ^= 1;
            free(b);
            return;
        }
    }
    _exit(96);
}

/* HAKMEM_CHECK=1: an overflow of a block that stays live, found by
 * malloc_trim's walk of the heap. */
static void overflow_trim(int fd)
{
    char *p = filled(200);
    report_ptr(fd, p);
    ((char *)launder(p))[200 + 5] ^= 1;
    malloc_trim(0);
}

/* HAKMEM_CHECK=1: memcpy, memmove and memset are checked against the block
 * they write (or read), before they run.  Sizes pass through launder so
 * that the compiler keeps the calls. */
static size_t opaque(size_t n) { return (size_t)launder((void *)n); }
static char g_src[1 << 16];

static void copy_past(int fd, size_t n, size_t at, size_t len)
{
    char *p = filled(n);
    report_ptr(fd, p + at);
    memcpy(launder(p + at), g_src, opaque(len));
}
static void c_cp_tiny(int fd) { copy_past(fd, 24, 0, 25); }
static void c_cp_mid(int fd) { copy_past(fd, 5000, 4000, 1001); }
static void c_cp_large(int fd) { copy_past(fd, 100000, 0, 100001); }
static void c_cp_huge(int fd) { copy_past(fd, 8u << 20, (8u << 20) - 10, 20); }
static void c_cp_under(int fd)
{
    char *p = filled(24);
    report_ptr(fd, p - 32);
    memcpy(launder(p - 32), g_src, opaque(24));
}
static void c_mv_overread(int fd)
{
    char buf[200];
    char *p = filled(24);
    report_ptr(fd, p);
    memmove(launder(buf), p, opaque(100));
}
static void c_ms_freed(int fd)
{
    char *p = filled(5000), *q = launder(p);
    report_ptr(fd, q);
    free(p);
    memset(launder(q), 0, opaque(5000));
}
static void c_cp_zero(int fd)
{
    char *p = malloc(opaque(0));
    report_ptr(fd, p);
    memcpy(launder(p), g_src, opaque(1));
}
static void c_zero_df(int fd)
{
    char *p = malloc(opaque(0)), *q = launder(p);
    report_ptr(fd, q);
    free(p);
    free(launder(q));
}
static void c_zero_ra(int fd)
{
    char *p = malloc(opaque(0)), *q = launder(p);
    report_ptr(fd, q);
    free(p);
    (void)launder(realloc(launder(q), 10));
}
static void c_zero_next(int fd)
{
    char *p = malloc(opaque(0));
    report_ptr(fd, p + 16);         /* the next zero-byte address, not handed out */
    free(launder(p + 16));
}

void free_sized(void *p, size_t n);                 /* C23: glibc 2.36 has no declaration */
void free_aligned_sized(void *p, size_t a, size_t n);
static void c_fs_size(int fd)
{
    char *p = filled(100);
    report_ptr(fd, p);
    free_sized(launder(p), opaque(99));
}
static void c_fs_huge(int fd)
{
    char *p = filled(8u << 20);
    report_ptr(fd, p);
    hak_free_sized(launder(p), opaque((8u << 20) + 1));
}
static void c_fas_align(int fd)
{
    char *p = aligned_alloc(64, 128);
    report_ptr(fd, p);
    free_aligned_sized(launder(p), opaque(48), 128);      /* not a power of two */
}
/* An overflow of a block nobody frees, found when the program exits. */
static void c_exit_corrupt(int fd)
{
    char *p = filled(200);
    report_ptr(fd, p);
    ((char *)launder(p))[200 + 3] ^= 1;
    exit(0);
}
/* A write after free into the link of a block on a free list (malloc_trim
 * empties the quarantine onto the lists): the link must not be followed,
 * to a live block or to anywhere else. */
enum { TO_LIVE, TO_STACK };
static void corrupt_link(int fd, size_t n, int to)
{
    char *p = filled(n), *q = filled(n), *held = launder(p), here;
    free(p);
    malloc_trim(0);
    report_ptr(fd, held);
    *(void **)launder(held) = to == TO_LIVE ? (void *)q : (void *)&here;
    for (int i = 0; i < 100000; i++)
        (void)launder(malloc(n));
    _exit(95);
}
static void c_link_live(int fd) { corrupt_link(fd, 64, TO_LIVE); }
static void c_link_stack(int fd) { corrupt_link(fd, 64, TO_STACK); }
static void c_link_mid(int fd) { corrupt_link(fd, 5000, TO_LIVE); }
static void c_of_huge_1(int fd) { overflow(fd, 8u << 20, 0); }
static void c_of_tiny_1(int fd) { overflow(fd, 24, 0); }
static void c_of_tiny_32(int fd) { overflow(fd, 24, 31); }
static void c_of_mid_1(int fd) { overflow(fd, 5000, 0); }
static void c_of_large_1(int fd) { overflow(fd, 100000, 0); }
static void c_uf_tiny_1(int fd) { underflow(fd, 24, 1); }
static void c_uf_mid_32(int fd) { underflow(fd, 5000, 32); }
static void c_df_tiny(int fd) { double_free(fd, 48); }
static void c_df_mid(int fd) { double_free(fd, 5000); }
static void c_df_large(int fd) { double_free(fd, 100000); }
static void c_df_inter_tiny(int fd) { df_interleaved(fd, 48); }
static void c_df_inter_mid(int fd) { df_interleaved(fd, 5000); }
static void c_df_huge(int fd) { double_free(fd, 8u << 20); }
static void c_df_huge_big(int fd) { double_free(fd, 40u << 20); }
static void c_in_tiny(int fd) { free_at(fd, 64, 16); }
static void c_in_mid(int fd) { free_at(fd, 5000, 4096); }
static void c_in_large(int fd) { free_at(fd, 100000, 65536); }
static void c_in_huge(int fd) { free_at(fd, 8u << 20, 65536); }
static void c_un_tiny(int fd) { free_at(fd, 64, 1); }
static void c_un_mid(int fd) { free_at(fd, 5000, 1); }
static void c_un_large(int fd) { free_at(fd, 100000, 1); }
static void c_un_huge(int fd) { free_at(fd, 8u << 20, 1); }
static void c_ra_tiny(int fd) { realloc_freed(fd, 64); }
static void c_ra_mid(int fd) { realloc_freed(fd, 5000); }
static void c_ra_large(int fd) { realloc_freed(fd, 100000); }
static void c_us_tiny(int fd) { usable_freed(fd, 64); }
static void c_us_mid(int fd) { usable_freed(fd, 5000); }
static void c_us_large(int fd) { usable_freed(fd, 100000); }
static void c_waf_tiny(int fd) { write_after_free(fd, 64); }
static void c_stack(int fd)
{
    char buf[128] __attribute__((aligned(64)));
    memset(buf, 0, sizeof buf);
    report_ptr(fd, buf + 64);
    free(launder(buf + 64));
}
static void c_global(int fd)
{
    report_ptr(fd, g_buf + 32);
    free(launder(g_buf + 32));
}

struct bad_case {
    const char *name;
    void (*run)(int fd);
    const char *call;        /* the call the line must name            */
    const char *what;        /* the error it must report               */
    const char *what_too;    /* also accepted (NULL: nothing else)     */
    int check_only;          /* only with HAKMEM_CHECK=1               */
};

static const struct bad_case bad_cases[] = {
    /* the block freed last, freed again (by its owner or by another
     * thread): caught in every build; any other free of a free block (one
     * freed before, or carved and never handed out) in check mode */
    { "double-free-tiny", c_df_tiny, "free", "double free", NULL, 0 },
    { "double-free-mid", c_df_mid, "free", "double free", NULL, 0 },
    { "double-free-interleaved-tiny", c_df_inter_tiny, "free", "double free", NULL, 0 },
    { "double-free-interleaved-mid", c_df_inter_mid, "free", "double free", NULL, 0 },
    { "double-free-delayed", c_df_delayed, "free", "double free", NULL, 1 },
    { "double-free-by-other-thread", c_df_other_thread, "free", "double free", NULL, 1 },
    { "double-free-remote-twice", c_df_remote_twice, "free", "double free", NULL, 0 },
    { "free-never-handed-out", c_free_never_out, "free", "double free", NULL, 1 },
    { "double-free-large", c_df_large, "free", "double free", NULL, 0 },
    /* A freed Huge block's mapping is gone (or kept unnamed for reuse). */
    { "double-free-huge", c_df_huge, "free", "invalid pointer", "double free", 0 },
    { "double-free-huge-40MiB", c_df_huge_big, "free", "invalid pointer", "double free", 0 },
    { "interior-tiny-p+16", c_in_tiny, "free", "invalid pointer", NULL, 0 },
    { "interior-mid-p+4096", c_in_mid, "free", "invalid pointer", NULL, 0 },
    { "interior-large-p+65536", c_in_large, "free", "invalid pointer", NULL, 0 },
    { "interior-huge-p+65536", c_in_huge, "free", "invalid pointer", NULL, 0 },
    { "unaligned-tiny-p+1", c_un_tiny, "free", "invalid pointer", NULL, 0 },
    { "unaligned-mid-p+1", c_un_mid, "free", "invalid pointer", NULL, 0 },
    { "unaligned-large-p+1", c_un_large, "free", "invalid pointer", NULL, 0 },
    { "unaligned-huge-p+1", c_un_huge, "free", "invalid pointer", NULL, 0 },
    { "realloc-freed-tiny", c_ra_tiny, "realloc", "use after free", NULL, 1 },
    { "realloc-freed-mid", c_ra_mid, "realloc", "use after free", NULL, 1 },
    { "realloc-freed-large", c_ra_large, "realloc", "use after free", NULL, 0 },
    { "usable-size-freed-tiny", c_us_tiny, "malloc_usable_size", "use after free", NULL, 1 },
    { "usable-size-freed-mid", c_us_mid, "malloc_usable_size", "use after free", NULL, 1 },
    { "usable-size-freed-large", c_us_large, "malloc_usable_size", "use after free", NULL, 0 },
    { "free-stack", c_stack, "free", "invalid pointer", NULL, 0 },
    { "free-global", c_global, "free", "invalid pointer", NULL, 0 },
    { "write-after-free-tiny", c_waf_tiny, "free", "write after free", NULL, 1 },
    { "overflow-tiny-1", c_of_tiny_1, "free", "buffer overflow", NULL, 1 },
    { "overflow-tiny-32", c_of_tiny_32, "free", "buffer overflow", NULL, 1 },
    { "overflow-mid-1", c_of_mid_1, "free", "buffer overflow", NULL, 1 },
    { "overflow-large-1", c_of_large_1, "free", "buffer overflow", NULL, 1 },
    { "underflow-tiny-1", c_uf_tiny_1, "free", "buffer underflow", NULL, 1 },
    { "underflow-mid-32", c_uf_mid_32, "free", "buffer underflow", NULL, 1 },
    { "overflow-found-by-trim", overflow_trim, "malloc_trim", "heap corruption", NULL, 1 },
    { "memcpy-past-tiny", c_cp_tiny, "memcpy", "buffer overflow", NULL, 1 },
    { "memcpy-past-mid", c_cp_mid, "memcpy", "buffer overflow", NULL, 1 },
    { "memcpy-past-large", c_cp_large, "memcpy", "buffer overflow", NULL, 1 },
    { "memcpy-past-huge", c_cp_huge, "memcpy", "buffer overflow", NULL, 1 },
    /* p - 32 is in the block before (live or free) or the slab's guard */
    { "memcpy-before-tiny", c_cp_under, "memcpy", "buffer overflow", "write after free", 1 },
    { "memmove-overread", c_mv_overread, "memmove", "buffer overread", NULL, 1 },
    { "memset-after-free", c_ms_freed, "memset", "write after free", NULL, 1 },
    { "memcpy-into-zero-size", c_cp_zero, "memcpy", "buffer overflow", NULL, 1 },
    { "double-free-zero-size", c_zero_df, "free", "double free", NULL, 1 },
    { "realloc-freed-zero-size", c_zero_ra, "realloc", "use after free", NULL, 1 },
    { "free-zero-size-not-handed-out", c_zero_next, "free", "invalid pointer", NULL, 1 },
    { "free_sized-wrong-size", c_fs_size, "free_sized", "wrong size", NULL, 1 },
    { "hak_free_sized-wrong-size-huge", c_fs_huge, "hak_free_sized", "wrong size", NULL, 1 },
    { "free_aligned_sized-wrong-alignment", c_fas_align, "free_aligned_sized", "wrong alignment", NULL, 1 },
    { "overflow-huge-1", c_of_huge_1, "free", "buffer overflow", NULL, 1 },
    { "free-list-link-to-live-block", c_link_live, "malloc", "heap corruption (free list link modified)", NULL, 1 },
    { "free-list-link-to-stack", c_link_stack, "malloc", "heap corruption (free list link modified)", NULL, 1 },
    { "free-list-link-mid", c_link_mid, "malloc", "heap corruption (free list link modified)", NULL, 1 },
    { "overflow-found-at-exit", c_exit_corrupt, "exit", "heap corruption", NULL, 1 },
};
#define NBAD (sizeof bad_cases / sizeof bad_cases[0])

static const struct bad_case *find_case(const char *name)
{
    for (size_t i = 0; i < NBAD; i++)
        if (strcmp(bad_cases[i].name, name) == 0)
            return &bad_cases[i];
    return NULL;
}

/* Reads fd to EOF into buf (NUL-terminated); returns the length. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            if (len == cap - 1)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    buf[len] = 0;
    return len;
}

/* Checks a child's end: SIGABRT and exactly the expected line. */
static void check_report(const char *label, const struct child_result *r, const char *ptr,
                         const struct bad_case *c)
{
    CHECK(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
          "%s: child did not die by SIGABRT (status %#x: %s %d); stderr \"%s\"", label, r->status,
          WIFSIGNALED(r->status) ? "signal" : "exit code",
          WIFSIGNALED(r->status) ? WTERMSIG(r->status) : WEXITSTATUS(r->status), r->err);
    size_t plen = strlen(ptr);
    CHECK(plen > 3 && ptr[plen - 1] == '\n' && strncmp(ptr, "0x", 2) == 0,
          "%s: the child named no pointer (\"%s\")", label, ptr);
    char want[256], want_too[256];
    snprintf(want, sizeof want, "HAKMEM: %s(): %s %s", c->call, c->what, ptr);
    snprintf(want_too, sizeof want_too, "HAKMEM: %s(): %s %s", c->call,
             c->what_too ? c->what_too : c->what, ptr);
    CHECK(strcmp(r->err, want) == 0 || strcmp(r->err, want_too) == 0,
          "%s: stderr is \"%s\", expected exactly \"%.*s\"", label, r->err, (int)strlen(want) - 1,
          want);
}

struct case_arg {
    const struct bad_case *c;
    int fd;
};

static void run_case_forked(void *arg)
{
    struct case_arg *a = arg;
    a->c->run(a->fd);
}

/* The case in a forked child of this process (HAKMEM_CHECK as we have it). */
static void expect_case_forked(const struct bad_case *c)
{
    int fds[2];
    struct child_result r;
    char label[128], ptr[64];
    snprintf(label, sizeof label, "%s (forked)", c->name);
    if (pipe(fds) != 0) {
        CHECK(0, "%s: pipe failed", label);
        return;
    }
    struct case_arg a = { c, fds[1] };
    int rc = run_child(run_case_forked, &a, &r);
    close(fds[1]);
    read_all(fds[0], ptr, sizeof ptr);
    close(fds[0]);
    if (rc != 0) {
        CHECK(0, "%s: fork/pipe failed", label);
        return;
    }
    check_report(label, &r, ptr, c);
}

/* Runs this binary again as `self --case name` with the settings in env
 * (NAME=value strings, NULL-terminated) and no other HAKMEM_*; captures its
 * stderr into r and its stdout into out. */
static int run_self(const char *name, char *const env[], struct child_result *r, char *out,
                    size_t outcap)
{
    int errp[2], outp[2];
    memset(r, 0, sizeof *r);
    if (pipe(errp) != 0)
        return -1;
    if (pipe(outp) != 0) {
        close(errp[0]);
        close(errp[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(errp[0]);
        close(outp[0]);
        dup2(errp[1], 2);
        dup2(outp[1], 1);
        close(errp[1]);
        close(outp[1]);
        struct rlimit rl = { 0, 0 };
        setrlimit(RLIMIT_CORE, &rl);
        static const char *const ours[] = { "HAKMEM_RETAIN_MS", "HAKMEM_STATS", "HAKMEM_CHECK",
                                            "HAKMEM_FAULT_EVERY", "HAKMEM_FAULT_BUDGET_MB" };
        for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
            unsetenv(ours[i]);
        for (size_t i = 0; env[i]; i++)
            putenv(env[i]);
        char *args[] = { "test_errors", "--case", (char *)name, NULL };
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(errp[1]);
    close(outp[1]);
    r->errlen = read_all(errp[0], r->err, sizeof r->err);
    read_all(outp[0], out, outcap);
    close(errp[0]);
    close(outp[0]);
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR) {}
    return 0;
}

static char env_check[] = "HAKMEM_CHECK=1";
static char env_bad_retain[] = "HAKMEM_RETAIN_MS=abc";

/* The case in this binary re-executed with HAKMEM_CHECK=1. */
static void expect_case_checked(const struct bad_case *c)
{
    struct child_result r;
    char label[128], ptr[64];
    char *env[] = { env_check, NULL };
    snprintf(label, sizeof label, "%s (HAKMEM_CHECK=1)", c->name);
    if (run_self(c->name, env, &r, ptr, sizeof ptr) != 0) {
        CHECK(0, "%s: fork/pipe failed", label);
        return;
    }
    check_report(label, &r, ptr, c);
}

/* A program that ran to its end: exit 0 and exactly `want` on stderr. */
static void expect_clean_run(const char *label, const char *name, char *const env[], const char *want)
{
    struct child_result r;
    char out[256];
    if (run_self(name, env, &r, out, sizeof out) != 0) {
        CHECK(0, "%s: fork/pipe failed", label);
        return;
    }
    CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: status %#x (%s %d); stderr \"%s\"",
          label, r.status, WIFSIGNALED(r.status) ? "signal" : "exit code",
          WIFSIGNALED(r.status) ? WTERMSIG(r.status) : WEXITSTATUS(r.status), r.err);
    CHECK(strcmp(r.err, want) == 0, "%s: stderr \"%s\", expected \"%s\"", label, r.err, want);
}

/* Check mode's contents: a fresh block is 0xcd throughout (reads of memory
 * never written stand out), a freed one reads as zero while it waits in the
 * quarantine (stale data does not leak through a use after free).  Exits 0,
 * or 1 with the first wrong byte on stderr. */
static int check_contents(void)
{
    static const size_t sizes[] = { 8, 100, 4096, 100000 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        volatile unsigned char *p = launder(malloc(n));
        for (size_t i = 0; i < n; i++)
            if (p[i] != 0xcd) {
                fprintf(stderr, "malloc(%zu): byte %zu is %#x\n", n, i, p[i]);
                return 1;
            }
        memset((void *)p, 'A', n);
        volatile unsigned char *freed = launder((void *)p);  /* read after the free */
        free((void *)p);
        for (size_t i = 0; i < n; i++)
            if (freed[i] != 0) {
                fprintf(stderr, "free of %zu bytes: byte %zu is %#x\n", n, i, freed[i]);
                return 1;
            }
    }
    return 0;
}

/* In the re-executed binary: run one case by name. */
static int run_case_here(const char *name)
{
    alarm(60);
    if (strcmp(name, "valid") == 0)
        valid_program(NULL);        /* exits 0 */
    if (strcmp(name, "contents") == 0)
        return check_contents();
    if (strcmp(name, "zero-read") == 0)
        return *(volatile char *)launder(malloc(opaque(0)));
    if (strcmp(name, "zero-write") == 0) {
        *(volatile char *)launder(malloc(opaque(0))) = 1;
        return 0;
    }
    const struct bad_case *c = find_case(name);
    if (c == NULL)
        return 2;
    c->run(1);
    return 99;                      /* the bad call returned */
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--case") == 0)
        return run_case_here(argv[2]);

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

    /* Misuse of real blocks, forked as we are and re-executed with HAKMEM_CHECK=1. */
    for (size_t i = 0; i < NBAD; i++) {
        if (!bad_cases[i].check_only)
            expect_case_forked(&bad_cases[i]);
        expect_case_checked(&bad_cases[i]);
    }

    /* A bad setting: one line, the default used, the program runs normally. */
    char *bad_retain[] = { env_bad_retain, NULL };
    expect_clean_run("HAKMEM_RETAIN_MS=abc", "valid", bad_retain,
                     "HAKMEM: bad value HAKMEM_RETAIN_MS=abc (expected 0..600000); using 100\n");
    /* Every setting: a value above its maximum (and, for on/off settings,
     * each digit above 1, once let through by the parser) is rejected with
     * one line and the default used. */
    struct hak_setting st;
    int nsettings = 0;
    for (int i = 0; hak_setting_at(i, &st) == 0; i++) {
        nsettings++;
        long v;
        CHECK(st.min <= st.dflt && st.dflt <= st.max, "%s: default %ld outside %ld..%ld", st.name,
              st.dflt, st.min, st.max);
        CHECK(hak_setting_get(st.name, &v) == 0 && v == st.value, "hak_setting_get(%s)", st.name);
        if (st.is_text) {
            /* Any text fits but one longer than the room kept for it. */
            static char env[1200], want[192];
            int n = snprintf(env, sizeof env, "%s=", st.name);
            memset(env + n, 'x', 1024);
            env[n + 1024] = '\0';
            snprintf(want, sizeof want, "HAKMEM: bad value for %s (expected at most 1023 bytes); ignored\n",
                     st.name);
            char *e[] = { env, NULL };
            expect_clean_run("too long: HAKMEM_PROFILE", "valid", e, want);
            CHECK(st.value == 0 && st.text == NULL, "%s is set in the tests", st.name);
            continue;
        }
        long bad[3] = { st.max + 1, 2, 9 };
        for (int k = 0; k < (st.max == 1 ? 3 : 1); k++) {
            char env[96], want[192], label[128];
            snprintf(env, sizeof env, "%s=%ld", st.name, bad[k]);
            snprintf(want, sizeof want, "HAKMEM: bad value %s (expected %ld..%ld); using %ld\n", env,
                     st.min, st.max, st.dflt);
            snprintf(label, sizeof label, "out of range: %s", env);
            char *e[] = { env, NULL };
            expect_clean_run(label, "valid", e, want);
        }
    }
    CHECK(nsettings >= 5, "only %d settings listed", nsettings);
    errno = 0;
    CHECK(hak_setting_at(nsettings, &st) == -1 && errno == EINVAL, "hak_setting_at(past the last)");
    long unused;
    errno = 0;
    CHECK(hak_setting_get("HAKMEM_NO_SUCH", &unused) == -1 && errno == EINVAL,
          "hak_setting_get(unknown name)");
    /* A misspelt or unknown HAKMEM_* name: one line, with the closest name
     * when it is a slip away. */
    char misspelt[] = "HAKMEM_STAT=1", unknown[] = "HAKMEM_FOO=1";
    char *e_misspelt[] = { misspelt, NULL }, *e_unknown[] = { unknown, NULL };
    expect_clean_run("HAKMEM_STAT=1", "valid", e_misspelt,
                     "HAKMEM: unknown setting HAKMEM_STAT=1 (did you mean HAKMEM_STATS?); ignored\n");
    expect_clean_run("HAKMEM_FOO=1", "valid", e_unknown,
                     "HAKMEM: unknown setting HAKMEM_FOO=1; ignored\n");
    /* A correct program under HAKMEM_CHECK=1: nothing to report. */
    char *checked[] = { env_check, NULL };
    expect_clean_run("valid program, HAKMEM_CHECK=1", "valid", checked, "");
    expect_clean_run("fresh and freed contents, HAKMEM_CHECK=1", "contents", checked, "");
    /* Check mode's zero-byte blocks have no access: a read or a write
     * faults where it happens. */
    static const char *const traps[] = { "zero-read", "zero-write" };
    for (int k = 0; k < 2; k++) {
        struct child_result tr;
        char out[64];
        CHECK(run_self(traps[k], checked, &tr, out, sizeof out) == 0 && WIFSIGNALED(tr.status) &&
                  WTERMSIG(tr.status) == SIGSEGV,
              "%s of malloc(0) under HAKMEM_CHECK=1: status %#x, stderr \"%s\"", traps[k],
              tr.status, tr.err);
    }
    return test_done("test_errors");
}
