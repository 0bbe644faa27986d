/* Huge blocks (above HAK_LARGE_MAX): one mapping each.
 *
 * A Huge mapping starts on a 4 MiB boundary and covers whole 4 MiB chunks,
 * so no other HAKMEM block shares its region-map entries.  Its header sits
 * at the start of the mapping; the block starts 64 bytes later, or at the
 * requested alignment.  The region map marks the chunk holding the block's
 * start as HUGE_HEAD (header at this chunk's base) or HUGE_PREV (header one
 * chunk below, for alignments of 4 MiB and more); the other chunks are
 * HUGE_BODY, where no block starts.  Free finds the header from the address
 * and checks that it names this very pointer.
 */
#include <errno.h>
#include "types.h"

#define HUGE_MAGIC 0x48414b4d48554745ull   /* "HAKMHUGE" */

typedef struct {
    uint64_t magic;
    size_t map_size;     /* bytes mapped from the header on, whole chunks */
    char *user;          /* the block                                      */
    size_t usable;       /* bytes usable from user on                      */
} huge_hdr_t;

static size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

static void map_mark(char *h, size_t map_size, char *user)
{
    for (char *c = h; c < h + map_size; c += HAK_SS_SIZE)
        __atomic_store_n(&hak_region_map[(uintptr_t)c >> HAK_SS_SHIFT], HAK_REGION_HUGE_BODY,
                         __ATOMIC_RELAXED);
    __atomic_store_n(&hak_region_map[(uintptr_t)user >> HAK_SS_SHIFT],
                     (size_t)(user - h) < HAK_SS_SIZE ? HAK_REGION_HUGE_HEAD : HAK_REGION_HUGE_PREV,
                     __ATOMIC_RELAXED);
}

static void map_clear(char *from, char *to)
{
    for (char *c = from; c < to; c += HAK_SS_SIZE)
        __atomic_store_n(&hak_region_map[(uintptr_t)c >> HAK_SS_SHIFT], HAK_REGION_NONE,
                         __ATOMIC_RELAXED);
}

static huge_hdr_t *huge_header(const void *p)
{
    uintptr_t chunk = (uintptr_t)p & ~(uintptr_t)HAK_SS_MASK;
    switch (hak_region_of((uintptr_t)p)) {
    case HAK_REGION_HUGE_HEAD: break;
    case HAK_REGION_HUGE_PREV: chunk -= HAK_SS_SIZE; break;
    default: return NULL;
    }
    huge_hdr_t *h = (huge_hdr_t *)chunk;
    return h->magic == HUGE_MAGIC && h->user == p ? h : NULL;
}

void *hak_huge_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    size_t off = align <= 64 ? 64 : (align < HAK_SS_SIZE ? align : HAK_SS_SIZE);
    if (n > (SIZE_MAX >> 1) - off) {
        errno = ENOMEM;
        return NULL;
    }
    size_t map_size = round_up(off + n, HAK_SS_SIZE);
    char *h = align > HAK_SS_SIZE ? hak_os_map_aligned(map_size, align, HAK_SS_SIZE, false)
                                  : hak_os_map_aligned(map_size, HAK_SS_SIZE, 0, false);
    if (h == NULL)
        return NULL;
    huge_hdr_t *hdr = (huge_hdr_t *)h;
    hdr->magic = HUGE_MAGIC;
    hdr->map_size = map_size;
    hdr->user = h + off;
    hdr->usable = round_up(off + n, HAK_OS_PAGE) - off;
    map_mark(h, map_size, hdr->user);
    hak_stat_add(HAK_STAT_HUGE_BLOCKS, 1);
    hak_stat_add(HAK_STAT_HUGE_BYTES, hdr->usable);
    return hdr->user;
}

void hak_huge_free(void *p, const char *call)
{
    huge_hdr_t *h = huge_header(p);
    if (h == NULL)
        hak_fatal(call, "invalid pointer", p);
    size_t map_size = h->map_size;
    hak_stat_add(HAK_STAT_HUGE_BLOCKS, (size_t)-1);
    hak_stat_add(HAK_STAT_HUGE_BYTES, (size_t)0 - h->usable);
    h->magic = 0;
    /* The map entries go before the mapping, so that a new mapping at the
     * same address cannot have its entries wiped by us. */
    map_clear((char *)h, (char *)h + map_size);
    hak_os_unmap(h, map_size);
}

size_t hak_huge_usable(const void *p)
{
    huge_hdr_t *h = huge_header(p);
    return h ? h->usable : 0;
}

bool hak_huge_owns(const void *p) { return huge_header(p) != NULL; }

/* Resizes a Huge block where it lies: shrinks (unmapping whole chunks no
 * longer needed) or grows into the address space just above, if free.
 * Returns p, or NULL if the block has to move. */
void *hak_huge_realloc_inplace(void *p, size_t n)
{
    huge_hdr_t *h = huge_header(p);
    size_t off = (size_t)(h->user - (char *)h);
    if (n > (SIZE_MAX >> 1) - off)
        return NULL;
    size_t need = round_up(off + n, HAK_SS_SIZE);
    if (need > h->map_size) {
        if (!hak_os_grow(h, h->map_size, need))
            return NULL;
        for (char *c = (char *)h + h->map_size; c < (char *)h + need; c += HAK_SS_SIZE)
            __atomic_store_n(&hak_region_map[(uintptr_t)c >> HAK_SS_SHIFT], HAK_REGION_HUGE_BODY,
                             __ATOMIC_RELAXED);
        h->map_size = need;
    } else if (need < h->map_size) {
        map_clear((char *)h + need, (char *)h + h->map_size);
        hak_os_unmap((char *)h + need, h->map_size - need);
        h->map_size = need;
    }
    size_t usable = round_up(off + n, HAK_OS_PAGE) - off;
    hak_stat_add(HAK_STAT_HUGE_BYTES, usable - h->usable);
    h->usable = usable;
    return p;
}
