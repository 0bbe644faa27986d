/* The prefixed API (hak_*) and the calls the fast paths leave to it:
 * aligned allocation, calloc, realloc, usable size, ownership checks. */
#include <errno.h>
#include <string.h>
#include "hakmem.h"
#include "fastpath.h"

/* ---- AddressSanitizer (make asan) ------------------------------------------------ */
/* Built with -DHAK_ASAN (make asan: no malloc overrides) for programs
 * compiled with -fsanitize=address that use the hak_* API.  The library is
 * not instrumented itself; it tells ASan which bytes of a slab block the
 * program may touch, so that an access past the size asked for (up to the
 * block's end) or after the free is reported (use-after-poison).  Slabs are
 * poisoned when made (superslab.c).  Huge blocks are not covered.  The
 * functions, not the ASAN_* macros: those are empty outside ASan's own
 * compilation, and ASan's runtime comes with the program. */
#ifdef HAK_ASAN
#include <sanitizer/asan_interface.h>
static size_t asan_block_size(const void *p)
{
    return p && hak_region_of((uintptr_t)p) == HAK_REGION_SS ? hak_slab_of(hak_ss_of(p), p)->bsize
                                                             : 0;
}
/* p handed out for n bytes: those addressable, the rest of the block not. */
static void *asan_out(void *p, size_t n)
{
    size_t b = asan_block_size(p);
    if (b) {
        __asan_unpoison_memory_region(p, n);
        __asan_poison_memory_region((char *)p + n, b - n);
    }
    return p;
}
/* Before HAKMEM copies or clears a block through memcpy/memset (which ASan
 * intercepts everywhere), and before the block goes back (poisoned). */
static void asan_open(void *p) { __asan_unpoison_memory_region(p, asan_block_size(p)); }
static void asan_close(void *p) { __asan_poison_memory_region(p, asan_block_size(p)); }
#else
#define asan_out(p, n) (p)
#define asan_open(p) ((void)0)
#define asan_close(p) ((void)0)
#endif

hak_slab_t *hak_block_slab(const void *p, const char *call, const char *if_freed)
{
    switch (hak_region_of((uintptr_t)p)) {
    case HAK_REGION_SS: {
        hak_slab_t *s = hak_slab_of(hak_ss_of(p), p);
        if (hak_slab_block_valid(s, p)) {
            /* A Large slab has one block: with none out, it is free, kept
             * in its thread's Large cache (heap.c).  A racy read of used
             * is enough: a block this caller may use was counted out
             * before it got it. */
            if (s->bsize > HAK_MID_MAX && __atomic_load_n(&s->used, __ATOMIC_RELAXED) == 0)
                hak_fatal(call, if_freed, p);
            return s;
        }
        /* A released slab keeps its start: p was its first block, most
         * likely a Large block (one per slab) freed before. */
        if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) == HAK_SLAB_FREE && s->start == p)
            hak_fatal(call, if_freed, p);
        break;
    }
    case HAK_REGION_HUGE_HEAD:
    case HAK_REGION_HUGE_PREV:
        if (hak_huge_owns(p))
            return NULL;
        break;
    default:
        break;
    }
    hak_fatal(call, "invalid pointer", p);
}

static bool is_pow2(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

/* Slabs start on page boundaries, so a class whose size is a multiple of
 * align has every block aligned; align 0 or a power of two. */
static void *alloc_unwatched(size_t n, size_t align)
{
    if (align <= 16 && n <= HAK_LARGE_MAX)
        return hak_alloc_class(hak_class_of(n));    /* every class is a multiple of 16 */
    if (align <= HAK_SLAB_ALIGN_MAX && n <= HAK_LARGE_MAX)
        return hak_tc_pop_class((unsigned)hak_class_for_aligned(n, align));
    return hak_huge_alloc(n, align, false);
}

void *hak_alloc_watched(size_t n, size_t align)
{
    void *p = hak_check_mode ? hak_check_alloc(n, align) : alloc_unwatched(n, align);
    if (hak_profile_on && p != NULL)
        hak_profile_alloc(p, n);
    return p;
}

void *hak_alloc_aligned(size_t align, size_t n)
{
    if (HAK_UNLIKELY(hak_slow_mode))
        return hak_alloc_watched(n, align);
    if (align <= 8)
        return hak_malloc_fast(n);
    if (align <= 16)
        return hak_malloc_fast(n < 16 ? 16 : n);
    return alloc_unwatched(n, align);
}

void *hak_calloc_impl(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    /* (check mode: a guard, then zeros) */
    if (n > HAK_MID_MAX && !hak_check_mode && (n > HAK_LARGE_MAX || hak_band_maps(n))) {
        unsigned long calls = hak_os_calls;
        void *p = hak_huge_alloc(n, 0, true);
        if (p != NULL && !hak_slow_mode)
            hak_band_allocated(n, calls);
        if (HAK_UNLIKELY(hak_profile_on) && p != NULL)
            hak_profile_alloc(p, n);
        return p;
    }
    void *p = hak_malloc_fast(n);
    if (p == NULL)
        return p;
    /* A Large block is the only block of its slab: if the slab was made of
     * pages that read as zero, so does the block.  (Large blocks freed by
     * other threads are shipped home at once, never handed out elsewhere.)
     * The band may have moved to mappings meanwhile: then p is Huge. */
    if (n > HAK_MID_MAX && !hak_check_mode && hak_region_is_ss((uintptr_t)p) &&
        hak_slab_of(hak_ss_of(p), p)->zeroed)
        return p;                   /* (check mode's guard pattern is in the block) */
    asan_open(p);
    memset(p, 0, n);
    return p;
}

/* The slab of a live block p (NULL for Huge); aborts on a bad or freed one. */
static hak_slab_t *live_block_slab(const void *p, const char *call)
{
    hak_slab_t *s = hak_block_slab(p, call, "use after free");
    if (hak_check_mode && s != NULL && hak_check_is_free((void *)p, s))
        hak_fatal(call, "use after free", p);
    return s;
}

size_t hak_usable_impl(const void *p, const char *call)
{
    if (p == NULL || (hak_check_mode && hak_check_zero_live(p, call)))
        return 0;
    hak_slab_t *s = live_block_slab(p, call);
    if (hak_check_mode)                         /* the guard starts there */
        return s ? hak_check_size((void *)p, s) : hak_huge_asked(p);
    return s ? s->bsize : hak_huge_usable(p);
}

void *hak_realloc_impl(void *p, size_t n, const char *call)
{
    if (p == NULL)
        return hak_malloc_fast(n);
    if (n == 0) {                    /* as glibc: free and return NULL */
        asan_close(p);
        hak_free_fast(p, call);
        return NULL;
    }
    if (hak_check_mode && hak_check_zero_live(p, call)) {
        void *q = hak_malloc_fast(n);   /* nothing to copy */
        if (q != NULL)
            hak_free_fast(p, call);
        return q;
    }
    hak_slab_t *s = live_block_slab(p, call);
    size_t old;
    if (s != NULL) {
        old = hak_check_mode ? hak_check_size(p, s) : s->bsize;
        if (n <= old && n >= old / 2 && !hak_check_mode)   /* check mode: new guards */
            return p;
    } else if (hak_check_mode) {
        old = hak_huge_asked(p);        /* a new block and guard: copied below */
    } else {
        old = hak_huge_usable(p);
        if (n > HAK_LARGE_MAX || (n > HAK_MID_MAX && hak_band_maps(n))) {
            void *q = hak_huge_realloc(p, n);
            if (q != NULL && HAK_UNLIKELY(hak_profile_on))
                hak_profile_moved(p, q, n);
            if (q != NULL)
                return q;
        }
    }
    void *q = hak_malloc_fast(n);
    if (q == NULL)
        return NULL;                 /* errno is ENOMEM; p is untouched */
    asan_open(p);
    asan_open(q);
    memcpy(q, p, n < old ? n : old);
    asan_close(p);
    hak_free_fast(p, call);
    return q;
}

/* ---- hak_* --------------------------------------------------------------------- */
void *hak_malloc(size_t size) { return asan_out(hak_malloc_fast(size), size); }

void hak_free(void *p)
{
    asan_close(p);
    hak_free_fast(p, "hak_free");
}

void *hak_calloc(size_t count, size_t size)
{
    return asan_out(hak_calloc_impl(count, size), count * size);
}

void *hak_realloc(void *p, size_t size)
{
    return asan_out(hak_realloc_impl(p, size, "hak_realloc"), size);
}

size_t hak_usable_size(const void *p) { return hak_usable_impl(p, "hak_usable_size"); }

void hak_free_sized(void *p, size_t size)
{
    if (HAK_UNLIKELY(hak_check_mode))
        hak_check_sized(p, size, 0, "hak_free_sized");
    asan_close(p);
    hak_free_fast(p, "hak_free_sized");
}

void hak_free_aligned_sized(void *p, size_t alignment, size_t size)
{
    if (HAK_UNLIKELY(hak_check_mode))
        hak_check_sized(p, size, alignment, "hak_free_aligned_sized");
    asan_close(p);
    hak_free_fast(p, "hak_free_aligned_sized");
}

void *hak_reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return asan_out(hak_realloc_impl(p, n, "hak_reallocarray"), n);
}

void *hak_aligned_alloc(size_t alignment, size_t size)
{
    if (!is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return asan_out(hak_alloc_aligned(alignment, size), size);
}

int hak_posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || !is_pow2(alignment))
        return EINVAL;
    void *p = hak_alloc_aligned(alignment, size);
    if (p == NULL)
        return ENOMEM;
    *out = asan_out(p, size);
    return 0;
}

/* As glibc: an alignment that is not a power of two is rounded up to one. */
void *hak_memalign(size_t alignment, size_t size)
{
    if (!is_pow2(alignment)) {
        if (alignment > ((size_t)1 << (sizeof(size_t) * 8 - 1))) {
            errno = EINVAL;
            return NULL;
        }
        size_t a = 1;
        while (a < alignment)
            a <<= 1;
        alignment = a;
    }
    return asan_out(hak_alloc_aligned(alignment, size), size);
}

void *hak_valloc(size_t size) { return asan_out(hak_alloc_aligned(HAK_OS_PAGE, size), size); }

void *hak_pvalloc(size_t size)
{
    if (size > SIZE_MAX - HAK_OS_PAGE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t n = (size + HAK_OS_PAGE - 1) & ~(size_t)(HAK_OS_PAGE - 1);
    return asan_out(hak_alloc_aligned(HAK_OS_PAGE, n ? n : HAK_OS_PAGE), n ? n : HAK_OS_PAGE);
}

int hak_trim(size_t pad)
{
    if (hak_check_mode)
        hak_check_heap("malloc_trim");
    int released = hak_heap_trim() | hak_huge_trim();
    released |= hak_slab_pages_trim();      /* after the heap's: its empty slabs are gone */
    return hak_pool_trim() | released;
}

const char *hak_version(void) { return HAKMEM_VERSION; }

int hak_owns(const void *p)
{
    switch (hak_region_of((uintptr_t)p)) {
    case HAK_REGION_SS:
        return hak_slab_block(p);
    case HAK_REGION_HUGE_HEAD:
    case HAK_REGION_HUGE_PREV:
        return hak_huge_owns(p);
    case HAK_REGION_ZERO:
        return hak_check_zero_owns(p);
    default:
        return 0;
    }
}
