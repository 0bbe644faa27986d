/* The C library's malloc family, each a one-line forwarder to HAKMEM.
 * Preloaded or linked, these definitions take the place of libc's. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include "hakmem.h"
#include "fastpath.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t n) { return hak_malloc_fast(n); }
EXPORT void free(void *p) { hak_free_fast(p, "free"); }
EXPORT void *calloc(size_t c, size_t n) { return hak_calloc_impl(c, n); }
EXPORT void *realloc(void *p, size_t n) { return hak_realloc_impl(p, n, "realloc"); }
EXPORT void *reallocarray(void *p, size_t c, size_t n)
{
    size_t total;
    if (__builtin_mul_overflow(c, n, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hak_realloc_impl(p, total, "reallocarray");
}
EXPORT int posix_memalign(void **out, size_t a, size_t n) { return hak_posix_memalign(out, a, n); }
EXPORT void *aligned_alloc(size_t a, size_t n) { return hak_aligned_alloc(a, n); }
EXPORT void *memalign(size_t a, size_t n) { return hak_memalign(a, n); }
EXPORT void *valloc(size_t n) { return hak_valloc(n); }
EXPORT void *pvalloc(size_t n) { return hak_pvalloc(n); }
EXPORT size_t malloc_usable_size(void *p) { return hak_usable_impl(p, "malloc_usable_size"); }
EXPORT void free_sized(void *p, size_t n) { hak_free_fast(p, "free_sized"); }
EXPORT void free_aligned_sized(void *p, size_t a, size_t n) { hak_free_fast(p, "free_aligned_sized"); }
EXPORT int malloc_trim(size_t pad) { return hak_trim(pad); }

EXPORT struct mallinfo2 mallinfo2(void)
{
    struct hak_stats st;
    struct mallinfo2 mi = { 0 };
    hak_stats_get(&st);
    mi.arena = st.committed - st.huge_in_use;
    mi.ordblks = st.slabs;
    mi.hblks = st.huge_blocks;
    mi.hblkhd = st.huge_in_use;
    mi.uordblks = st.in_use - st.huge_in_use;
    mi.fordblks = mi.arena > mi.uordblks ? mi.arena - mi.uordblks : 0;
    return mi;
}

EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {
        .arena = (int)m2.arena, .ordblks = (int)m2.ordblks, .hblks = (int)m2.hblks,
        .hblkhd = (int)m2.hblkhd, .uordblks = (int)m2.uordblks, .fordblks = (int)m2.fordblks,
    };
    return mi;
}
