/* HAKMEM: a general-purpose memory allocator.
 *
 * Linked or preloaded (LD_PRELOAD=libhakmem.so), HAKMEM replaces the whole
 * malloc family.  The hak_* functions below are the same allocator under
 * prefixed names, usable without replacing malloc (for example under a
 * sanitizer, or beside another allocator).
 *
 * Size tiers (see docs/ARCHITECTURE.md):
 *   Tiny   0 .. 1 KiB       size classes in 64 KiB slabs carved from SuperSlabs
 *   Mid    1 KiB .. 64 KiB  size classes in 64-512 KiB slabs from SuperSlabs
 *   Large  64 KiB .. 2 MiB  one block per slab, pages from SuperSlabs
 *   Huge   above 2 MiB      one mapping per block
 * Blocks of 512 KiB .. 2 MiB get a mapping of their own instead, unless
 * their size band learns that Large slabs serve it better (hak_stats_band)
 * or HAKMEM_MAP_THRESHOLD_KB sets the size.
 *
 * Errors: a call that cannot get memory from the OS returns NULL with errno
 * ENOMEM.  Freeing a pointer HAKMEM does not own prints one line naming
 * HAKMEM, the call and the pointer, and aborts.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version: the one place it is written (the Makefile reads it from here
 * for the library's SONAME, libhakmem.so.MAJOR, and the pkg-config and CMake
 * files). */
#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 11
#define HAKMEM_VERSION_PATCH 0
#define HAKMEM_VERSION_STR_(x) #x
#define HAKMEM_VERSION_STR(x) HAKMEM_VERSION_STR_(x)
#define HAKMEM_VERSION HAKMEM_VERSION_STR(HAKMEM_VERSION_MAJOR) "." \
    HAKMEM_VERSION_STR(HAKMEM_VERSION_MINOR) "." HAKMEM_VERSION_STR(HAKMEM_VERSION_PATCH)

#if defined(__GNUC__)
#define HAK_API __attribute__((visibility("default")))
#else
#define HAK_API
#endif

HAK_API void  *hak_malloc(size_t size);
HAK_API void   hak_free(void *p);
HAK_API void  *hak_calloc(size_t count, size_t size);
HAK_API void  *hak_realloc(void *p, size_t size);
HAK_API void  *hak_reallocarray(void *p, size_t count, size_t size);
HAK_API void  *hak_aligned_alloc(size_t alignment, size_t size);
HAK_API int    hak_posix_memalign(void **out, size_t alignment, size_t size);
HAK_API void  *hak_memalign(size_t alignment, size_t size);
HAK_API void  *hak_valloc(size_t size);
HAK_API void  *hak_pvalloc(size_t size);
HAK_API size_t hak_usable_size(const void *p);
HAK_API void   hak_free_sized(void *p, size_t size);
HAK_API void   hak_free_aligned_sized(void *p, size_t alignment, size_t size);

/* Returns memory to the OS at once (cached slabs of the calling thread,
 * free pages, empty SuperSlabs).  Returns 1 if anything was released. */
HAK_API int    hak_trim(size_t pad);

/* 1 if p is the start of a block that HAKMEM handed out (live or not yet
 * reused), 0 otherwise.  Never faults, for any p. */
HAK_API int    hak_owns(const void *p);

/* Testing: make HAKMEM's OS mapping calls fail with ENOMEM, every Nth call
 * (every = 0: never) and any call that would take the bytes HAKMEM holds
 * mapped past budget (0: no limit).  hak_fault_inject(0, 0) turns failures
 * off again.  HAKMEM_FAULT_EVERY / HAKMEM_FAULT_BUDGET_MB set it at start. */
HAK_API void   hak_fault_inject(size_t every, size_t budget);

/* Process-wide figures, gathered at the call. */
struct hak_stats {
    size_t mapped;          /* bytes of address space HAKMEM holds           */
    size_t committed;       /* bytes of that which may be resident (not purged) */
    size_t in_use;          /* bytes in blocks handed out (block sizes)       */
    size_t huge_in_use;     /* of which in Huge blocks                         */
    size_t huge_blocks;     /* number of live Huge blocks                      */
    size_t superslabs;      /* SuperSlabs holding at least one slab            */
    size_t slabs;           /* slabs in use                                    */
    size_t os_maps;         /* successful OS mapping calls so far              */
    size_t os_unmaps;       /* munmap calls so far                             */
    size_t os_purges;       /* madvise(DONTNEED) calls so far                  */
    size_t remote_frees;    /* frees of a block owned by another thread (other
                               live threads' last few may not be counted yet) */
    size_t threads_started; /* threads that initialised a heap                 */
    size_t threads_exited;  /* threads whose heap was returned                 */
    size_t idle_slabs_released; /* slabs of threads that stopped allocating,
                                   returned to the pool when their last block
                                   came back                                   */
};
HAK_API void   hak_stats_get(struct hak_stats *out);

/* Highest figures since the process started (in a fork child: inherited),
 * raised on the slow paths that change them. */
struct hak_peaks {
    size_t mapped;          /* bytes of address space held                     */
    size_t committed;       /* bytes that may be resident: SuperSlab pages in
                               slabs or not yet purged, and Huge blocks        */
    size_t in_slabs;        /* bytes of slabs holding Tiny, Mid and Large
                               blocks: a bound on their bytes in use, whose own
                               peak is not kept (a counter on every malloc and
                               free would cost the fast path)                  */
    size_t huge_in_use;     /* bytes in live Huge blocks                       */
};
HAK_API void   hak_stats_peaks(struct hak_peaks *out);

/* The adaptive layer: what the background thread returned and what it
 * learned (docs/ARCHITECTURE.md). */
struct hak_adaptive_stats {
    int    background;          /* 1 while the background thread runs        */
    size_t released_bytes;      /* bytes it purged or unmapped so far        */
    size_t retain_ms;           /* free page retention in effect             */
    size_t retain_changes;      /* times the retention was lengthened or cut */
    size_t huge_cache_cap;      /* bytes the Huge cache may hold             */
    size_t huge_cache_changes;  /* times that capacity was raised or halved  */
    size_t huge_reused;         /* Huge allocations served from the cache    */
    size_t huge_reused_bytes;   /* bytes of those that were not faulted in   */
    size_t block_pages_released;/* of released_bytes, pages inside free blocks
                                   of partial slabs (8 KiB blocks and up)   */
};
HAK_API void   hak_stats_adaptive(struct hak_adaptive_stats *out);

/* One size band of big mallocs (band 0: more than 64 KiB up to 128 KiB, each
 * the next doubling, band 9: more than 32 MiB), and where its blocks go: a Large slab of
 * SuperSlab pages or a mapping of their own.  In the learned bands (512 KiB
 * to 2 MiB, unless HAKMEM_MAP_THRESHOLD_KB fixes the place) the two places
 * are rated by ELO from what each cost in page faults, system calls and
 * resident bytes while it was tried (docs/ARCHITECTURE.md). */
struct hak_band_stats {
    size_t size_min;        /* the band's mallocs: size_min < n <= size_max    */
    size_t size_max;        /* (0: no bound)                                   */
    int    learned;         /* 1: the place is learned here                    */
    int    maps;            /* 1: the band's blocks get mappings of their own now */
    int    rating_large;    /* ELO ratings of the two places (1500 at first;   */
    int    rating_map;      /*   the two always add up to 3000)                */
    size_t matches;         /* trials of the other place, scored               */
    size_t switches;        /* times the place changed                         */
    size_t allocs;          /* mallocs, callocs and realloc copies             */
    size_t bytes;           /* bytes they asked for                            */
    size_t reused;          /* of which a cache served (freed slab or mapping) */
    size_t fresh_bytes;     /* bytes handed out from pages not resident: each
                               page faults in at its first touch               */
    size_t os_calls;        /* system calls those mallocs and the frees of
                               mapped blocks made                              */
    size_t released_bytes;  /* bytes the background thread returned to the OS:
                               cached mappings of the band's size, and free
                               pool pages a Large slab of the band held last   */
};
/* 0, or -1 (errno EINVAL) for a band past the last. */
HAK_API int    hak_stats_band(int band, struct hak_band_stats *out);

/* One size class, gathered at the call (a snapshot while other threads go
 * on).  Classes are numbered from 0: Tiny, then Mid, then Large. */
struct hak_class_stats {
    size_t block_size;
    size_t blocks_in_use;   /* handed out, or freed by another thread and not
                               yet back in their slab                           */
    size_t blocks_total;    /* blocks the class's slabs hold                   */
    size_t slabs;
    size_t slab_bytes;      /* bytes of those slabs                            */
};
/* 0, or -1 (errno EINVAL) for a class past the last. */
HAK_API int    hak_stats_class(int cls, struct hak_class_stats *out);

/* Settings: the HAKMEM_* environment variables, read once at start-up.  A
 * value outside [min, max] or not a decimal number is reported on stderr and
 * the default used; a HAKMEM_* name that is no setting is reported too. */
struct hak_setting {
    const char *name;       /* "HAKMEM_RETAIN_MS"                              */
    long value;             /* in effect (a text setting: 1 when set, else 0)  */
    long dflt, min, max;
    const char *meaning;
    int is_text;            /* a text setting (HAKMEM_PROFILE): no range       */
    const char *text;       /* its value in effect, or NULL when unset         */
};
/* The i-th setting, i from 0: 0, or -1 (errno EINVAL) past the last. */
HAK_API int    hak_setting_at(int i, struct hak_setting *out);
/* The value in effect of the setting called name: 0, or -1 (errno EINVAL)
 * if there is no such setting. */
HAK_API int    hak_setting_get(const char *name, long *value);
/* Changes a setting at run time where that is safe (HAKMEM_RETAIN_MS,
 * HAKMEM_STATS, HAKMEM_MAP_THRESHOLD_KB): 0, or -1 (errno EINVAL) for an unknown or fixed setting or
 * a value outside its range. */
HAK_API int    hak_setting_set(const char *name, long value);
/* Writes a human-readable report to the file descriptor (no allocation):
 * the figures above, per tier, per class in use and per thread heap (the
 * heaps with the most slab bytes first). */
HAK_API void   hak_stats_print(int fd);
/* The same as one line of JSON (HAKMEM_STATS=2 writes it at exit). */
HAK_API void   hak_stats_print_json(int fd);

/* Heap profiling (HAKMEM_PROFILE=FILE): writes the live sampled heap now,
 * in the format of HAKMEM_PROFILE's file (pprof's legacy heap profile), to
 * path, or to the HAKMEM_PROFILE file with ".N" added for the Nth dump when
 * path is NULL.  0, or -1 with errno (EINVAL: profiling is off; or
 * open's error). */
HAK_API int    hak_profile_dump(const char *path);

/* The version of the library in use (HAKMEM_VERSION of the header it was
 * built with), for a program to compare with the header it was built with. */
HAK_API const char *hak_version(void);

#ifdef __cplusplus
}
#endif
#endif
