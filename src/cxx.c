/* C++'s operator new and delete (the Itanium C++ ABI names, as libstdc++
 * exports them), exported by libhakmem.so only.  libstdc++'s own versions
 * call malloc and free through the PLT: a call and a jump more per block
 * (4% of alloc-test's time went there).  A new that finds no memory hands
 * the request to the next operator new in the chain (libstdc++'s), which
 * calls the program's new-handler and throws std::bad_alloc as the standard
 * requires: HAKMEM itself has no C++ runtime to throw with. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include "hakmem.h"
#include "fastpath.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct { char unused; } nothrow_t;      /* std::nothrow_t: an empty tag */

/* The next definition of the mangled name, called as its type says: after
 * HAKMEM's in the global scope, or libstdc++'s if that was loaded locally
 * (a C++ plugin dlopened by a C program). */
static void *next_symbol(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
        f = h ? dlsym(h, name) : NULL;
    }
    if (f == NULL)
        hak_fatal(name, "out of memory, and no operator new after HAKMEM's to report it", NULL);
    return f;
}

#define NEW_FAILED(name, ...) \
    ((void *(*)())next_symbol(name))(__VA_ARGS__)

/* operator new(size_t), new[](size_t), and their nothrow forms */
EXPORT void *_Znwm(size_t n)
{
    void *p = hak_malloc_fast(n);
    return p ? p : NEW_FAILED("_Znwm", n);
}
EXPORT void *_Znam(size_t n)
{
    void *p = hak_malloc_fast(n);
    return p ? p : NEW_FAILED("_Znam", n);
}
EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const nothrow_t *t)
{
    void *p = hak_malloc_fast(n);
    return p ? p : NEW_FAILED("_ZnwmRKSt9nothrow_t", n, t);
}
EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const nothrow_t *t)
{
    void *p = hak_malloc_fast(n);
    return p ? p : NEW_FAILED("_ZnamRKSt9nothrow_t", n, t);
}

/* The C++17 aligned forms (std::align_val_t is a size_t) */
EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t a)
{
    void *p = hak_memalign(a, n);
    return p ? p : NEW_FAILED("_ZnwmSt11align_val_t", n, a);
}
EXPORT void *_ZnamSt11align_val_t(size_t n, size_t a)
{
    void *p = hak_memalign(a, n);
    return p ? p : NEW_FAILED("_ZnamSt11align_val_t", n, a);
}
EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const nothrow_t *t)
{
    void *p = hak_memalign(a, n);
    return p ? p : NEW_FAILED("_ZnwmSt11align_val_tRKSt9nothrow_t", n, a, t);
}
EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const nothrow_t *t)
{
    void *p = hak_memalign(a, n);
    return p ? p : NEW_FAILED("_ZnamSt11align_val_tRKSt9nothrow_t", n, a, t);
}

/* operator delete in all its forms: the size and alignment the sized and
 * aligned forms pass are not needed (the address says everything). */
EXPORT void _ZdlPv(void *p) { hak_free_fast(p, "operator delete"); }
EXPORT void _ZdaPv(void *p) { hak_free_fast(p, "operator delete[]"); }
EXPORT void _ZdlPvm(void *p, size_t n) { (void)n; hak_free_fast(p, "operator delete"); }
EXPORT void _ZdaPvm(void *p, size_t n) { (void)n; hak_free_fast(p, "operator delete[]"); }
EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const nothrow_t *t) { (void)t; hak_free_fast(p, "operator delete"); }
EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const nothrow_t *t) { (void)t; hak_free_fast(p, "operator delete[]"); }
EXPORT void _ZdlPvSt11align_val_t(void *p, size_t a) { (void)a; hak_free_fast(p, "operator delete"); }
EXPORT void _ZdaPvSt11align_val_t(void *p, size_t a) { (void)a; hak_free_fast(p, "operator delete[]"); }
EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)n, (void)a; hak_free_fast(p, "operator delete"); }
EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)n, (void)a; hak_free_fast(p, "operator delete[]"); }
EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const nothrow_t *t) { (void)a, (void)t; hak_free_fast(p, "operator delete"); }
EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const nothrow_t *t) { (void)a, (void)t; hak_free_fast(p, "operator delete[]"); }
