/* The C library's malloc family, each a one-line forwarder to HAKMEM.
 * Preloaded or linked, these definitions take the place of libc's. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
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
EXPORT void free_sized(void *p, size_t n)
{
    if (HAK_UNLIKELY(hak_check_mode))
        hak_check_sized(p, n, 0, "free_sized");
    hak_free_fast(p, "free_sized");
}

EXPORT void free_aligned_sized(void *p, size_t a, size_t n)
{
    if (HAK_UNLIKELY(hak_check_mode))
        hak_check_sized(p, n, a, "free_aligned_sized");
    hak_free_fast(p, "free_aligned_sized");
}
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

/* glibc's summary is per arena; HAKMEM's is its own statistics block. */
EXPORT void malloc_stats(void) { hak_stats_print(2); }

/* HAKMEM's figures in the shape of glibc's XML (one "heap": HAKMEM has no
 * arenas); options must be 0, as for glibc. */
EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0)
        return EINVAL;
    struct hak_stats st;
    hak_stats_get(&st);
    size_t slab_bytes = st.committed - st.huge_in_use;
    size_t slab_used = st.in_use - st.huge_in_use;
    size_t slab_free = slab_bytes > slab_used ? slab_bytes - slab_used : 0;
    fprintf(fp, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n"
                "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
                "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
                "<system type=\"current\" size=\"%zu\"/>\n"
                "<system type=\"max\" size=\"%zu\"/>\n"
                "<aspace type=\"total\" size=\"%zu\"/>\n"
                "<aspace type=\"mprotect\" size=\"%zu\"/>\n</heap>\n"
                "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
                "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
                "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
                "<system type=\"current\" size=\"%zu\"/>\n"
                "<system type=\"max\" size=\"%zu\"/>\n"
                "<aspace type=\"total\" size=\"%zu\"/>\n"
                "<aspace type=\"mprotect\" size=\"%zu\"/>\n</malloc>\n",
            st.slabs, slab_free, slab_bytes, slab_bytes, st.mapped, st.mapped,
            st.slabs, slab_free, st.huge_blocks, st.huge_in_use, st.committed, st.committed,
            st.mapped, st.mapped);
    return 0;
}

/* Only what is true of HAKMEM succeeds (returns 1): M_TRIM_THRESHOLD 0
 * (return free pages at once: HAKMEM_RETAIN_MS 0), M_MMAP_THRESHOLD from
 * 64 KiB to 2 MiB (HAKMEM_MAP_THRESHOLD_KB: blocks above it get mappings of
 * their own; below 64 KiB they never do), and the arena limits (there are
 * no arenas to limit: every thread has its own heap, whose pages go back to
 * the shared pool).  Anything else is not supported and returns 0. */
EXPORT int mallopt(int param, int value)
{
    switch (param) {
    case M_TRIM_THRESHOLD:
        return value == 0 && hak_setting_set("HAKMEM_RETAIN_MS", 0) == 0;
    case M_MMAP_THRESHOLD:
        return value >= HAK_MID_MAX && value <= HAK_LARGE_MAX &&
               hak_setting_set("HAKMEM_MAP_THRESHOLD_KB", value >> 10) == 0;
    case M_ARENA_TEST:
    case M_ARENA_MAX:
        return value > 0;
    default:
        return 0;
    }
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
