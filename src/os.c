/* Every call HAKMEM makes to the OS for memory: map, unmap, purge, time. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include "types.h"

void *hak_os_map(size_t size, bool reserve_only)
{
    /* Reservations (arenas of SuperSlabs) are NORESERVE: pages are committed
     * when touched, and purged pages stop counting again. */
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (reserve_only ? MAP_NORESERVE : 0);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    hak_stat_add(HAK_STAT_OS_MAPS, 1);
    return p;
}

void hak_os_unmap(void *p, size_t size)
{
    if (size == 0)
        return;
    munmap(p, size);
    hak_stat_add(HAK_STAT_OS_UNMAPS, 1);
}

void hak_os_purge(void *p, size_t size)
{
    /* The range stays mapped (the address space stays ours, the region map
     * stays true); its pages read back as zero. */
    madvise(p, size, MADV_DONTNEED);
    hak_stat_add(HAK_STAT_OS_PURGES, 1);
}

/* Maps size bytes at an address p aligned to HAK_SS_SIZE with
 * (p + offset) % align == 0 (offset a multiple of HAK_SS_SIZE): over-map,
 * then unmap the head and the tail. */
void *hak_os_map_aligned(size_t size, size_t align, size_t offset, bool reserve_only)
{
    size_t a = align < HAK_SS_SIZE ? HAK_SS_SIZE : align;
    if (size > SIZE_MAX - a) {
        errno = ENOMEM;
        return NULL;
    }
    char *raw = hak_os_map(size + a, reserve_only);
    if (raw == NULL)
        return NULL;
    uintptr_t r = (uintptr_t)raw;
    uintptr_t p = ((r + offset + a - 1) & ~(uintptr_t)(a - 1)) - offset;
    if (p > r)
        munmap(raw, p - r);
    size_t tail = (r + size + a) - (p + size);
    if (tail)
        munmap((char *)p + size, tail);
    return (void *)p;
}

uint64_t hak_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hak_os_yield(void) { sched_yield(); }
