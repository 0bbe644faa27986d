/* Every call HAKMEM makes to the OS: memory (map, unmap, purge, grow, and
 * the fault injection that tests use to make mapping fail), time, sleeping
 * and waking, the background thread, files (messages, the heap profile),
 * and the C library's memcpy, memmove and memset for HAKMEM's own use. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "hakmem.h"
#include "types.h"

static _Atomic size_t fault_every;    /* fail every Nth mapping call (0: never) */
static _Atomic size_t fault_budget;   /* fail past this many bytes mapped (0: no limit) */
static _Atomic size_t fault_calls;
static _Atomic size_t mapped_bytes;   /* currently mapped by HAKMEM */

void hak_fault_inject(size_t every, size_t budget)
{
    atomic_store(&fault_every, every);
    atomic_store(&fault_budget, budget);
    atomic_store(&fault_calls, 0);
}

void hak_os_fault_init(void)
{
    size_t mb = (size_t)hak_options[HAK_OPT_FAULT_BUDGET_MB];
    hak_fault_inject((size_t)hak_options[HAK_OPT_FAULT_EVERY], mb << 20);
}

/* true if this mapping of size bytes is to fail (tests only). */
static bool fault(size_t size)
{
    size_t every = atomic_load_explicit(&fault_every, memory_order_relaxed);
    size_t budget = atomic_load_explicit(&fault_budget, memory_order_relaxed);
    if (HAK_LIKELY(every == 0 && budget == 0))
        return false;
    if (every && atomic_fetch_add(&fault_calls, 1) % every == every - 1)
        return true;
    return budget && atomic_load(&mapped_bytes) + size > budget;
}

__thread unsigned long hak_os_calls;

static void *map_raw(size_t size, bool reserve_only)
{
    /* Reservations (arenas of SuperSlabs) are NORESERVE: pages are committed
     * when touched, and purged pages stop counting again. */
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (reserve_only ? MAP_NORESERVE : 0);
    hak_os_calls++;
    void *p = fault(size) ? MAP_FAILED
                          : mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_fetch_add_explicit(&mapped_bytes, size, memory_order_relaxed);
    hak_stat_add(HAK_STAT_OS_MAPS, 1);
    return p;
}

/* The peak of address space held, raised once a mapping has its final size. */
static void *raise_mapped_peak(void *p)
{
    if (p)
        hak_stat_raise(HAK_STAT_PEAK_MAPPED, atomic_load_explicit(&mapped_bytes, memory_order_relaxed));
    return p;
}

void *hak_os_map(size_t size, bool reserve_only) { return raise_mapped_peak(map_raw(size, reserve_only)); }

size_t hak_os_mapped(void) { return atomic_load_explicit(&mapped_bytes, memory_order_relaxed); }

void hak_os_unmap(void *p, size_t size)
{
    if (size == 0)
        return;
    munmap(p, size);
    hak_os_calls++;
    atomic_fetch_sub_explicit(&mapped_bytes, size, memory_order_relaxed);
    hak_stat_add(HAK_STAT_OS_UNMAPS, 1);
}

void hak_os_purge(void *p, size_t size)
{
    /* The range stays mapped (the address space stays ours, the region map
     * stays true); its pages read back as zero. */
    madvise(p, size, MADV_DONTNEED);
    hak_os_calls++;
    hak_stat_add(HAK_STAT_OS_PURGES, 1);
}

/* Whether the kernel may back [p, p + size) with transparent huge pages
 * (2 MiB): one fault and one zeroing instead of 512.  With THP in its
 * "madvise" mode (Debian's default) nothing is huge unless asked; "never"
 * ignores the request. */
void hak_os_huge_pages(void *p, size_t size, bool on)
{
    if (size != 0) {
        madvise(p, size, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        hak_os_calls++;
    }
}

/* Grows the mapping [p, p + old_size) in place, if the address space above
 * it is free. */
bool hak_os_grow(void *p, size_t old_size, size_t new_size)
{
    hak_os_calls++;
    if (fault(new_size - old_size) || mremap(p, old_size, new_size, 0) == MAP_FAILED)
        return false;
    atomic_fetch_add_explicit(&mapped_bytes, new_size - old_size, memory_order_relaxed);
    raise_mapped_peak(p);
    hak_stat_add(HAK_STAT_OS_REMAPS, 1);
    return true;
}

/* Moves the mapping [p, p + old_size) onto the reservation [to, to +
 * new_size), which replaces: the pages move, nothing is copied.  On failure
 * both stay as they were. */
bool hak_os_move(void *p, size_t old_size, void *to, size_t new_size)
{
    hak_os_calls++;
    if (mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED)
        return false;
    /* The reservation at `to` was replaced; the old range is gone. */
    atomic_fetch_sub_explicit(&mapped_bytes, old_size, memory_order_relaxed);
    hak_stat_add(HAK_STAT_OS_REMAPS, 1);
    return true;
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
    char *raw = map_raw(size + a, reserve_only);
    if (raw == NULL)
        return NULL;
    uintptr_t r = (uintptr_t)raw;
    uintptr_t p = ((r + offset + a - 1) & ~(uintptr_t)(a - 1)) - offset;
    if (p > r)
        hak_os_unmap(raw, p - r);
    size_t tail = (r + size + a) - (p + size);
    if (tail)
        hak_os_unmap((char *)p + size, tail);
    return raise_mapped_peak((void *)p);
}

uint64_t hak_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hak_os_yield(void) { sched_yield(); }

/* Sleeps while *word == value (or until woken; callers recheck). */
void hak_os_wait(_Atomic int *word, int value)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

/* The same, for at most ms milliseconds. */
void hak_os_wait_ms(_Atomic int *word, int value, uint64_t ms)
{
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, &ts, NULL, 0);
}

void hak_os_wake(_Atomic int *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Starts fn on a detached thread with a small stack and every signal
 * blocked (signals are the program's business, not this thread's). */
bool hak_os_thread(void *(*fn)(void *))
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)64 << 10);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&tid, &attr, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return err == 0;
}

int hak_os_pid(void) { return (int)getpid(); }

/* A private copy of fd (close-on-exec, numbered 100 or above), or -1. */
int hak_os_dup(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 100); }

/* All of buf to fd, as far as the fd takes it (messages: no stdio). */
void hak_os_write(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w <= 0)
            break;
        buf += w;
        len -= (size_t)w;
    }
}

/* The file at path opened for writing (created or emptied, close-on-exec),
 * or for reading: its fd, or -1 with errno set. */
int hak_os_open(const char *path, bool write)
{
    int flags = O_CLOEXEC | (write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY);
    return open(path, flags, 0644);
}

/* Up to len bytes of fd into buf: how many (0 at the end, -1 on error). */
long hak_os_read(int fd, char *buf, size_t len)
{
    ssize_t r;
    do r = read(fd, buf, len); while (r < 0 && errno == EINTR);
    return (long)r;
}

void hak_os_close(int fd) { close(fd); }

/* [p, p + size) made readable and writable, or no access at all. */
bool hak_os_protect(void *p, size_t size, bool access)
{
    return mprotect(p, size, access ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
}

/* The C library's copies, through its _chk entry points (which GCC does
 * not turn back into calls of memcpy: that would be ours, copy.c). */
extern void *libc_memcpy_chk(void *, const void *, size_t, size_t) __asm__("__memcpy_chk");
extern void *libc_memmove_chk(void *, const void *, size_t, size_t) __asm__("__memmove_chk");
extern void *libc_memset_chk(void *, int, size_t, size_t) __asm__("__memset_chk");

void *hak_libc_memcpy(void *dst, const void *src, size_t n) { return libc_memcpy_chk(dst, src, n, (size_t)-1); }
void *hak_libc_memmove(void *dst, const void *src, size_t n) { return libc_memmove_chk(dst, src, n, (size_t)-1); }
void *hak_libc_memset(void *dst, int c, size_t n) { return libc_memset_chk(dst, c, n, (size_t)-1); }
