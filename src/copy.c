/* Checked copies: memcpy, memmove and memset, exported by libhakmem.so
 * only (libhakmem.a leaves them out: in a program linked with a static C
 * library, glibc's own __memcpy_chk would call this memcpy back). */
#define HAK_MEM_EXPORTS         /* memcpy, memmove and memset are defined here */
#include "types.h"

#define EXPORT __attribute__((visibility("default")))

/* With HAKMEM_CHECK, a copy into a HAKMEM block (or out of one) must stay
 * within the bytes asked for, or it is reported before it runs (snmalloc
 * checks memcpy so).  Otherwise glibc does the work, through its _chk entry
 * points, which never call back here: a test and a jump more per call.
 * (Calls glibc makes itself are its own.) */
EXPORT void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    if (HAK_UNLIKELY(hak_check_mode))
        hak_check_copy(dst, src, n, "memcpy");
    return hak_libc_memcpy(dst, src, n);
}

EXPORT void *memmove(void *dst, const void *src, size_t n)
{
    if (HAK_UNLIKELY(hak_check_mode))
        hak_check_copy(dst, src, n, "memmove");
    return hak_libc_memmove(dst, src, n);
}

EXPORT void *memset(void *dst, int c, size_t n)
{
    if (HAK_UNLIKELY(hak_check_mode))
        hak_check_copy(dst, NULL, n, "memset");
    return hak_libc_memset(dst, c, n);
}
