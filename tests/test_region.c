/* The region map's retry.  The map has one entry per 4 MiB chunk of a 1 TiB
 * window, so a chunk 1 TiB below one of HAKMEM's SuperSlabs has the same
 * index; a new mapping there cannot be claimed, and must be held aside
 * while another is made, then given back.
 *
 * The test steers the kernel's next mapping onto that chunk: the kernel
 * places a mapping in the highest free gap that fits (top-down), so every
 * gap above an 8 MiB hole at T = SuperSlab - 1 TiB is filled with PROT_NONE
 * reservations of our own.  A 3 MiB (Huge) malloc then maps 8 MiB, which
 * the kernel can only put at T; HAKMEM must not use it: the block must lie
 * elsewhere, and the hole must be free again afterwards.
 * Linked against HAKMEM, so malloc is HAKMEM's. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem.h"
#include "testutil.h"

#define MiB ((uintptr_t)1 << 20)
#define TiB ((uintptr_t)1 << 40)
#define HOLE (8 * MiB)
#define FILLS_MAX 4096

static char maps_text[1 << 20];
static struct { uintptr_t lo, hi; } fills[FILLS_MAX];
static int nfills;

/* /proc/self/maps read with read(2): no malloc while the address space is
 * being arranged. */
static size_t read_maps(void)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    if (fd < 0)
        return 0;
    while (n < sizeof maps_text - 1 && (r = read(fd, maps_text + n, sizeof maps_text - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    maps_text[n] = 0;
    return n;
}

static int reserve(uintptr_t lo, uintptr_t hi)
{
    void *p = mmap((void *)lo, hi - lo, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED || (uintptr_t)p != lo) {
        if (p != MAP_FAILED)
            munmap(p, hi - lo);
        return 0;
    }
    if (nfills < FILLS_MAX) {
        fills[nfills].lo = lo;
        fills[nfills].hi = hi;
        nfills++;
    }
    return 1;
}

/* Fills every gap between from and the top of user space (2^47). */
static int fill_above(uintptr_t from)
{
    if (!read_maps())
        return 0;
    uintptr_t cursor = from;
    for (char *line = maps_text; *line;) {
        unsigned long lo, hi;
        char *next = strchr(line, '\n');
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi > cursor && lo < ((uintptr_t)1 << 47)) {
            if (lo > cursor && !reserve(cursor, lo))
                return 0;
            cursor = hi;
        }
        if (!next)
            break;
        line = next + 1;
    }
    return 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *small = malloc(64);
    CHECK(small != NULL, "malloc(64)");
    uintptr_t ss = (uintptr_t)small & ~(4 * MiB - 1);
    uintptr_t t = ss - TiB;
    struct hak_stats before, after;

    /* The hole, kept by a reservation of ours until the fills are made. */
    CHECK(reserve(t, t + HOLE), "the range 1 TiB below the SuperSlab %#lx is taken",
          (unsigned long)ss);
    int filled = fill_above(t + HOLE);
    CHECK(filled, "could not fill the gaps above %#lx", (unsigned long)(t + HOLE));
    hak_stats_get(&before);
    munmap((void *)t, HOLE);                      /* the hole opens */
    fills[0].hi = fills[0].lo;                    /* (it was the first reservation) */
    char *huge = malloc(3 * MiB);
    hak_stats_get(&after);
    uintptr_t chunk = (uintptr_t)huge & ~(4 * MiB - 1);
    /* Is the hole free again?  (HAKMEM gave the mapping it held back.) */
    int hole_free = reserve(t, t + HOLE);
    for (int i = 0; i < nfills; i++)
        munmap((void *)fills[i].lo, fills[i].hi - fills[i].lo);

    printf("region: SuperSlab %#lx, hole %#lx (1 TiB below), %d gaps filled; Huge block at %p, "
           "%zu mappings made, %zu given back\n", (unsigned long)ss, (unsigned long)t,
           nfills - 1, (void *)huge, after.os_maps - before.os_maps,
           after.os_unmaps - before.os_unmaps);
    CHECK(huge != NULL, "malloc(3 MiB) failed");
    CHECK(chunk < t || chunk >= t + HOLE, "the Huge block %p was placed in the hole, whose index "
          "is the SuperSlab's", (void *)huge);
    CHECK(after.os_maps - before.os_maps >= 2, "%zu mappings for one Huge block: the hole was not "
          "tried (steering failed)", after.os_maps - before.os_maps);
    CHECK(hole_free, "the mapping made in the hole was not given back");
    CHECK(hak_owns(huge) && hak_owns(small), "blocks not HAKMEM's: %d %d", hak_owns(huge),
          hak_owns(small));
    if (huge)
        memset(huge, 1, 3 * MiB);
    free(huge);
    free(small);
    return test_done("test_region");
}
