/* The malloc family under its libc names: every block must come from HAKMEM
 * (hak_owns(p) == 1 proves the call reached it), with the same edge-case
 * behaviour as the hak_* API.  Also blocks allocated inside libc (strdup,
 * asprintf, getline, stdio buffers...) must be HAKMEM's and freeable. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

/* C23 names, not declared by older glibc headers. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static volatile size_t v_size_max = SIZE_MAX;

/* Hides where a pointer came from, so the compiler cannot fold reads of
 * calloc'ed memory or drop a malloc/free pair. */
static inline void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

/* Block of n bytes from a libc-named call: HAKMEM's, aligned, big enough. */
static void check_block(const char *what, void *p, size_t n)
{
    CHECK(p != NULL, "%s(%zu) returned NULL", what, n);
    if (!p) return;
    size_t align = n < 16 ? 8 : 16;
    CHECK(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p not %zu-aligned", what, n, p, align);
    CHECK(hak_owns(p) == 1, "%s(%zu) = %p: not HAKMEM's (hak_owns != 1)", what, n, p);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "%s(%zu): malloc_usable_size %zu", what, n, u);
    CHECK(u == hak_usable_size(p), "%s(%zu): malloc_usable_size %zu != hak_usable_size %zu", what, n, u,
          hak_usable_size(p));
}

static void check_aligned(const char *what, void *p, size_t a, size_t n)
{
    CHECK(p != NULL, "%s(align %zu, size %zu) returned NULL", what, a, n);
    if (!p) return;
    CHECK(((uintptr_t)p & (a - 1)) == 0, "%s(align %zu, size %zu) = %p misaligned", what, a, n, p);
    CHECK(((uintptr_t)p & 15) == 0 || n < 16, "%s(align %zu, size %zu) = %p not 16-aligned", what, a, n, p);
    CHECK(hak_owns(p) == 1, "%s(align %zu, size %zu) = %p: not HAKMEM's", what, a, n, p);
    CHECK(malloc_usable_size(p) >= n, "%s(align %zu, size %zu): usable %zu", what, a, n, malloc_usable_size(p));
}

static const size_t tier_sizes[] = {
    0, 1, 8, 15, 16, 17, 100, 1023, 1024, 1025, 65535, 65536, 65537,
    2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 3 * MiB, 64 * MiB,
};
#define NTIER (sizeof tier_sizes / sizeof tier_sizes[0])

static void test_basic(void)
{
    void *p[NTIER];
    for (size_t i = 0; i < NTIER; i++) {
        p[i] = malloc(tier_sizes[i]);
        check_block("malloc", p[i], tier_sizes[i]);
        if (p[i]) pattern_fill(p[i], 0, tier_sizes[i], i + 1);
    }
    for (size_t i = 0; i < NTIER; i++) {
        long bad = p[i] ? pattern_check(p[i], tier_sizes[i], i + 1) : -1;
        CHECK(bad < 0, "malloc(%zu): pattern broken at %ld", tier_sizes[i], bad);
        free(p[i]);
    }
    for (size_t n = 0; n <= 4096; n += 1) {
        void *q = malloc(n);
        check_block("malloc", q, n);
        free(q);
    }

    /* malloc(0): unique, non-NULL, freeable */
    void *z[64];
    for (int i = 0; i < 64; i++) { z[i] = malloc(0); check_block("malloc", z[i], 0); }
    int dup = 0;
    for (int i = 0; i < 64; i++)
        for (int j = i + 1; j < 64; j++) dup += z[i] && z[i] == z[j];
    CHECK(dup == 0, "malloc(0) repeated a pointer %d times", dup);
    for (int i = 0; i < 64; i++) free(z[i]);

    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));

    /* calloc zeroes, including reused memory, in every tier */
    const size_t cs[] = { 1, 24, 1000, 1024, 1025, 5000, 65537, 300000, 2 * MiB + 1, 3 * MiB };
    for (size_t si = 0; si < sizeof cs / sizeof cs[0]; si++) {
        size_t n = cs[si], cnt = 16;
        void *b[32];
        for (size_t i = 0; i < cnt; i++) {
            b[i] = malloc(n);
            check_block("malloc", b[i], n);
            if (b[i]) memset(b[i], 0xAB, malloc_usable_size(b[i]));
        }
        for (size_t i = 0; i < cnt; i++) free(b[cnt - 1 - i]);
        int nz = 0;
        for (size_t i = 0; i < 2 * cnt; i++) {
            b[i] = calloc(i & 1 ? n : 1, i & 1 ? 1 : n);
            check_block("calloc", b[i], n);
            if (b[i] && first_nonzero(launder(b[i]), n) >= 0) nz++;
        }
        CHECK(nz == 0, "calloc(%zu): %d of %zu reused blocks not zeroed", n, nz, 2 * cnt);
        for (size_t i = 0; i < 2 * cnt; i++) free(b[i]);
    }
}

static void test_errors_libc(void)
{
    void *p;
    errno = 0; p = malloc(v_size_max);
    CHECK(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX) = %p errno %d", p, errno);
    errno = 0; p = malloc(v_size_max / 2);
    CHECK(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX/2) = %p errno %d", p, errno);
    errno = 0; p = calloc(v_size_max / 2, 3);
    CHECK(p == NULL && errno == ENOMEM, "calloc(SIZE_MAX/2, 3) = %p errno %d", p, errno);
    errno = 0; p = reallocarray(NULL, v_size_max / 2, 3);
    CHECK(p == NULL && errno == ENOMEM, "reallocarray(NULL, SIZE_MAX/2, 3) = %p errno %d", p, errno);

    const size_t olds[] = { 10, 1025, 65537, 3 * MiB };
    for (size_t i = 0; i < sizeof olds / sizeof olds[0]; i++) {
        size_t n = olds[i];
        void *o = malloc(n);
        check_block("malloc", o, n);
        if (!o) continue;
        pattern_fill(o, 0, n, 50 + i);
        errno = 0; p = realloc(launder(o), v_size_max);
        CHECK(p == NULL && errno == ENOMEM, "realloc(%zu-byte block, SIZE_MAX) = %p errno %d", n, p, errno);
        errno = 0; p = reallocarray(launder(o), v_size_max / 2, 3);
        CHECK(p == NULL && errno == ENOMEM, "reallocarray(%zu-byte block, SIZE_MAX/2, 3) = %p errno %d", n, p, errno);
        CHECK(hak_owns(o) == 1, "old block lost after failed realloc");
        long bad = pattern_check(o, n, 50 + i);
        CHECK(bad < 0, "old %zu-byte block damaged by failed realloc at %ld", n, bad);
        p = reallocarray(o, 3, n);
        check_block("reallocarray", p, 3 * n);
        if (p) {
            bad = pattern_check(p, n, 50 + i);
            CHECK(bad < 0, "reallocarray(%zu -> %zu) lost contents at %ld", n, 3 * n, bad);
            o = p;
        }
        free(o);
    }

    const size_t badal[] = { 0, 1, 2, 3, 4, 24, 48, 4097 };
    for (size_t i = 0; i < sizeof badal / sizeof badal[0]; i++) {
        void *sentinel = (void *)(uintptr_t)0xdeadbeefcafe0000ull;
        void *out = sentinel;
        int rc = posix_memalign(&out, badal[i], 64);
        CHECK(rc == EINVAL, "posix_memalign(align %zu) = %d, want EINVAL", badal[i], rc);
        CHECK(out == sentinel, "posix_memalign(align %zu) wrote *out = %p", badal[i], out);
    }
    const size_t badaa[] = { 3, 24, 48, 100, 4097 };
    for (size_t i = 0; i < sizeof badaa / sizeof badaa[0]; i++) {
        errno = 0;
        p = aligned_alloc(badaa[i], 64);
        CHECK(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p errno %d", badaa[i], p, errno);
    }
    const size_t ma[][2] = { { 3, 4 }, { 24, 32 }, { 48, 64 }, { 1000, 1024 }, { 5000, 8192 }, { 100000, 131072 } };
    for (size_t i = 0; i < sizeof ma / sizeof ma[0]; i++) {
        p = memalign(ma[i][0], 100);
        check_aligned("memalign", p, ma[i][1], 100);
        free(p);
    }
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const size_t vs[] = { 1, 4095, 4096, 4097, 100000, 3 * MiB + 1 };
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        p = valloc(vs[i]);
        check_aligned("valloc", p, pg, vs[i]);
        if (p) memset(p, 1, vs[i]);
        free(p);
        size_t want = (vs[i] + pg - 1) / pg * pg;
        p = pvalloc(vs[i]);
        check_aligned("pvalloc", p, pg, want);
        if (p) memset(p, 1, want);
        free(p);
    }
}

static void test_aligned(void)
{
    for (size_t a = 8; a <= 4 * MiB; a <<= 1) {
        const size_t sizes[] = { 1, a - 1, a + 1, 100000 };
        for (int k = 0; k < 4; k++) {
            size_t n = sizes[k];
            void *p1 = aligned_alloc(a, n);
            check_aligned("aligned_alloc", p1, a, n);
            void *p2 = NULL;
            int rc = posix_memalign(&p2, a, n);
            CHECK(rc == 0, "posix_memalign(%zu, %zu) = %d", a, n, rc);
            check_aligned("posix_memalign", rc == 0 ? p2 : NULL, a, n);
            void *p3 = memalign(a, n);
            check_aligned("memalign", p3, a, n);
            if (p1) pattern_fill(p1, 0, n < 4096 ? n : 4096, 1);
            if (p2 && rc == 0) pattern_fill(p2, 0, n < 4096 ? n : 4096, 2);
            if (p3) pattern_fill(p3, 0, n < 4096 ? n : 4096, 3);
            CHECK(!p1 || pattern_check(p1, n < 4096 ? n : 4096, 1) < 0, "aligned_alloc block overlaps");
            CHECK(!p2 || pattern_check(p2, n < 4096 ? n : 4096, 2) < 0, "posix_memalign block overlaps");
            free_aligned_sized(p1, a, n);
            if (rc == 0) free(p2);
            free(p3);
        }
    }
}

static void test_realloc(void)
{
    const size_t chain[] = { 1, 8, 24, 1000, 1024, 1025, 5000, 65536, 65537, 1 * MiB, 2 * MiB,
                             2 * MiB + 1, 8 * MiB, 2 * MiB + 1, 2 * MiB, 1 * MiB, 65537, 65536,
                             5000, 1025, 1024, 1000, 24, 8, 1 };
    void *p = NULL;
    size_t cur = 0;
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        size_t n = chain[i];
        void *q = realloc(p, n);
        check_block("realloc", q, n);
        if (!q) break;
        size_t keep = cur < n ? cur : n;
        long bad = pattern_check(q, keep, 77);
        CHECK(bad < 0, "realloc(%zu -> %zu) lost contents at %ld", cur, n, bad);
        pattern_fill(q, 0, n, 77);
        p = q; cur = n;
    }
    free(p);

    /* realloc(p, 0) frees and returns NULL; realloc(NULL, n) is malloc */
    p = realloc(NULL, 100);
    check_block("realloc(NULL)", p, 100);
    void *q = realloc(p, 0);
    CHECK(q == NULL, "realloc(p, 0) = %p, want NULL", q);
    if (q) free(q);
    p = realloc(NULL, 0);
    check_block("realloc(NULL, 0)", p, 0);
    free(p);

    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 64; i++) {
        p = malloc(MiB);
        q = realloc(launder(p), 0);
        if (q) free(q);
    }
    struct mallinfo2 after = mallinfo2();
    CHECK(after.uordblks < before.uordblks + MiB, "realloc(p, 0) does not free: uordblks %zu -> %zu",
          before.uordblks, after.uordblks);

    /* free_sized / free_aligned_sized free the block */
    before = mallinfo2();
    for (int i = 0; i < 64; i++) {
        p = malloc(MiB);
        check_block("malloc", p, MiB);
        free_sized(p, MiB);
        p = aligned_alloc(4096, MiB);
        check_aligned("aligned_alloc", p, 4096, MiB);
        free_aligned_sized(p, 4096, MiB);
        p = malloc(100);
        free_sized(p, 100);
    }
    after = mallinfo2();
    CHECK(after.uordblks < before.uordblks + MiB, "free_sized does not free: uordblks %zu -> %zu",
          before.uordblks, after.uordblks);
}

static void test_mallinfo_trim(void)
{
    enum { N = 10486 };   /* 10486 * 1000 bytes >= 10 MiB */
    void **b = mmap(NULL, N * sizeof *b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) { CHECK(0, "mmap"); return; }
    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < N; i++) {
        b[i] = malloc(1000);
        if (b[i]) memset(b[i], i & 0xff, 1000);
    }
    struct mallinfo2 m1 = mallinfo2();
    int owned = 0;
    for (int i = 0; i < N; i++) owned += b[i] && hak_owns(b[i]);
    CHECK(owned == N, "%d of %d malloc(1000) blocks are HAKMEM's", owned, N);
    CHECK(m1.uordblks >= m0.uordblks + (size_t)N * 1000,
          "mallinfo2 uordblks %zu -> %zu after allocating %zu bytes", m0.uordblks, m1.uordblks, (size_t)N * 1000);
    for (int i = 0; i < N; i++) free(b[i]);
    struct mallinfo2 m2 = mallinfo2();
    CHECK(m2.uordblks <= m0.uordblks + MiB, "mallinfo2 uordblks %zu -> %zu -> %zu after freeing",
          m0.uordblks, m1.uordblks, m2.uordblks);

    int r = malloc_trim(0);
    CHECK(r == 0 || r == 1, "malloc_trim(0) = %d", r);
    for (int i = 0; i < N; i += 7) {
        b[i] = malloc((size_t)i * 13 % 100000);
        check_block("malloc after malloc_trim", b[i], (size_t)i * 13 % 100000);
        if (b[i]) memset(b[i], 5, (size_t)i * 13 % 100000);
    }
    for (int i = 0; i < N; i += 7) free(b[i]);
    r = malloc_trim(0);
    CHECK(r == 0 || r == 1, "malloc_trim(0) = %d", r);
    void *p = calloc(1, 5 * MiB);
    check_block("calloc after malloc_trim", p, 5 * MiB);
    CHECK(!p || first_nonzero(launder(p), 5 * MiB) < 0, "calloc after trim not zeroed");
    free(p);
    munmap(b, N * sizeof *b);
}

/* Blocks allocated inside libc go through the same malloc. */
static void test_libc_internal(void)
{
    char *s = strdup("hello, HAKMEM");
    CHECK(s && hak_owns(s) == 1, "strdup result %p not HAKMEM's", (void *)s);
    CHECK(s && strcmp(s, "hello, HAKMEM") == 0, "strdup contents");
    free(s);
    s = strndup("abcdefghijklmnopqrstuvwxyz", 10);
    CHECK(s && hak_owns(s) == 1 && strcmp(s, "abcdefghij") == 0, "strndup result %p", (void *)s);
    free(s);

    char *a = NULL;
    int n = asprintf(&a, "%s-%d-%0500d", "x", 42, 7);
    CHECK(n == 505 && a && hak_owns(a) == 1, "asprintf: n=%d a=%p", n, (void *)a);
    CHECK(a && strncmp(a, "x-42-000", 8) == 0, "asprintf contents");
    free(a);

    char tmpl[] = "/tmp/hakmem_override_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        FILE *w = fdopen(fd, "w");
        CHECK(w && hak_owns(w) == 1, "fdopen FILE %p not HAKMEM's", (void *)w);
        for (int i = 0; i < 100; i++) fprintf(w, "line %d %0*d\n", i, i * 50, i);
        fclose(w);

        FILE *f = fopen(tmpl, "r");
        CHECK(f != NULL, "fopen");
        if (f) {
            CHECK(hak_owns(f) == 1, "fopen FILE %p not HAKMEM's", (void *)f);
            char *line = NULL;
            size_t cap = 0;
            ssize_t len;
            int lines = 0, bad = 0;
            while ((len = getline(&line, &cap, f)) > 0) {
                if (!line || hak_owns(line) != 1 || malloc_usable_size(line) < (size_t)len + 1) bad++;
                if (strncmp(line, "line ", 5) != 0) bad++;
                lines++;
            }
            CHECK(lines == 100 && bad == 0, "getline: %d lines, %d bad buffers", lines, bad);
#ifdef __GLIBC__
            CHECK(f->_IO_buf_base && hak_owns(f->_IO_buf_base) == 1, "stdio buffer %p not HAKMEM's",
                  (void *)f->_IO_buf_base);
#endif
            free(line);
            rewind(f);
            line = NULL; cap = 0;
            len = getdelim(&line, &cap, ' ', f);
            CHECK(len == 5 && line && hak_owns(line) == 1, "getdelim: len %zd buffer %p", len, (void *)line);
            free(line);
            fclose(f);
        }
        unlink(tmpl);
    }

    char *buf = NULL;
    size_t sz = 0;
    FILE *ms = open_memstream(&buf, &sz);
    CHECK(ms && hak_owns(ms) == 1, "open_memstream FILE %p not HAKMEM's", (void *)ms);
    if (ms) {
        for (int i = 0; i < 20000; i++) fputc('a' + i % 26, ms);
        fclose(ms);
        CHECK(buf && sz == 20000 && hak_owns(buf) == 1, "open_memstream buffer %p size %zu", (void *)buf, sz);
        free(buf);
    }

    char *cwd = getcwd(NULL, 0);
    CHECK(cwd && hak_owns(cwd) == 1, "getcwd(NULL, 0) = %p not HAKMEM's", (void *)cwd);
    free(cwd);
    char *rp = realpath("/tmp", NULL);
    CHECK(rp && hak_owns(rp) == 1, "realpath(NULL) = %p not HAKMEM's", (void *)rp);
    free(rp);
}

/* Reads what fn writes to fd 2 (stderr), up to cap - 1 bytes. */
static void capture_stderr(void (*fn)(void), char *buf, size_t cap)
{
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL, "tmpfile");
    buf[0] = '\0';
    if (tmp == NULL)
        return;
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn();
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, cap - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
}

/* malloc_stats, malloc_info and mallopt answer with HAKMEM's figures and
 * settings, not glibc's (whose arenas are empty under HAKMEM). */
static void test_glibc_extensions(void)
{
    char out[4096];
    void *keep = malloc(100000);
    capture_stderr(malloc_stats, out, sizeof out);
    char head[64];
    snprintf(head, sizeof head, "HAKMEM statistics (pid %d)\n", (int)getpid());
    CHECK(strncmp(out, head, strlen(head)) == 0 && strstr(out, "in-use bytes: ") != NULL,
          "malloc_stats printed \"%.200s\"", out);

    struct hak_stats st;
    hak_stats_get(&st);
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (f) {
        CHECK(malloc_info(0, f) == 0, "malloc_info(0)");
        CHECK(malloc_info(1, f) == EINVAL, "malloc_info(1) is not EINVAL");
        rewind(f);
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        fclose(f);
        CHECK(strncmp(out, "<malloc version=\"1\">", 20) == 0 && strstr(out, "</malloc>\n") != NULL,
              "malloc_info: not glibc's XML shape: \"%.200s\"", out);
        const char *cur = strstr(out, "<system type=\"current\" size=\"");
        size_t current = cur ? strtoul(cur + 30, NULL, 10) : 0;
        CHECK(current > 0 && current <= st.mapped, "malloc_info: system current %zu (mapped %zu)",
              current, st.mapped);
    }

    long retain = -1;
    CHECK(mallopt(M_ARENA_MAX, 1) == 1 && mallopt(M_ARENA_TEST, 8) == 1, "mallopt(M_ARENA_*)");
    long map_kb = -1;
    CHECK(mallopt(M_MMAP_THRESHOLD, 2 * 1024 * 1024) == 1, "mallopt(M_MMAP_THRESHOLD, 2 MiB)");
    CHECK(mallopt(M_MMAP_THRESHOLD, 32 * 1024) == 0, "mallopt(M_MMAP_THRESHOLD, 32 KiB) claims success");
    CHECK(mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024) == 0, "mallopt(M_MMAP_THRESHOLD, 4 MiB) claims success");
    CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1 &&
              hak_setting_get("HAKMEM_MAP_THRESHOLD_KB", &map_kb) == 0 && map_kb == 256,
          "mallopt(M_MMAP_THRESHOLD, 256 KiB): HAKMEM_MAP_THRESHOLD_KB is %ld", map_kb);
    struct hak_stats before, after;
    hak_stats_get(&before);
    void *volatile mapped = malloc(300 * 1024), *volatile slab = malloc(200 * 1024);
    hak_stats_get(&after);
    CHECK(after.huge_blocks - before.huge_blocks == 1, "threshold 256 KiB: %zu of a 300 KiB and a "
          "200 KiB block mapped", after.huge_blocks - before.huge_blocks);
    free(mapped);
    free(slab);
    CHECK(hak_setting_set("HAKMEM_MAP_THRESHOLD_KB", 0) == 0, "HAKMEM_MAP_THRESHOLD_KB back to learned");
    CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 0, "mallopt(M_TRIM_THRESHOLD, 1 MiB) claims success");
    CHECK(mallopt(M_TRIM_THRESHOLD, 0) == 1, "mallopt(M_TRIM_THRESHOLD, 0)");
    CHECK(hak_setting_get("HAKMEM_RETAIN_MS", &retain) == 0 && retain == 0,
          "M_TRIM_THRESHOLD 0: HAKMEM_RETAIN_MS is %ld", retain);
    CHECK(mallopt(M_PERTURB, 0x55) == 0 && mallopt(M_MXFAST, 0) == 0 && mallopt(M_TOP_PAD, 0) == 0,
          "mallopt of an unsupported parameter claims success");
    CHECK(hak_setting_set("HAKMEM_RETAIN_MS", 100) == 0, "hak_setting_set(HAKMEM_RETAIN_MS, 100)");
    errno = 0;
    CHECK(hak_setting_set("HAKMEM_CHECK", 1) == -1 && errno == EINVAL,
          "hak_setting_set(HAKMEM_CHECK) is fixed at start-up");
    CHECK(hak_setting_set("HAKMEM_RETAIN_MS", 600001) == -1, "hak_setting_set beyond the range");
    free(keep);
}

int main(void)
{
    test_basic();
    test_errors_libc();
    test_aligned();
    test_realloc();
    test_mallinfo_trim();
    test_libc_internal();
    test_glibc_extensions();
    return test_done("test_override");
}
