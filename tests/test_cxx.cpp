// C++ allocation reaches HAKMEM: operator new/delete (plain, array, sized,
// aligned, nothrow) and the standard containers through std::allocator.
// hak_owns(p) == 1 on each block proves it came from HAKMEM's malloc.
#include <array>
#include <dlfcn.h>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "hakmem.h"
#include "testutil.h"


static const size_t MiB = 1024 * 1024;
static volatile size_t v_huge = SIZE_MAX / 2;

static bool aligned(const void *p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

static void check_owned(const char *what, const void *p, size_t n, size_t align = 16)
{
    CHECK(p != nullptr, "%s(%zu) = NULL", what, n);
    if (!p) return;
    CHECK(hak_owns(p) == 1, "%s(%zu) = %p not HAKMEM's", what, n, p);
    CHECK(hak_usable_size(p) >= n, "%s(%zu): usable %zu", what, n, hak_usable_size(p));
    if (n < 16 && align == 16) align = 8;
    CHECK(aligned(p, align), "%s(%zu) = %p not %zu-aligned", what, n, p, align);
}

struct alignas(64) A64 { char c[64]; };
struct alignas(4096) A4096 { char c[100]; };
struct alignas(64) Counted {
    static int live;
    int v;
    Counted() : v(7) { live++; }
    ~Counted() { live--; }
};
int Counted::live = 0;

// Forwards to std::allocator (so to operator new) and checks every block.
static long rec_allocs, rec_foreign;
template <class T> struct RecAlloc {
    using value_type = T;
    RecAlloc() = default;
    template <class U> RecAlloc(const RecAlloc<U> &) {}
    T *allocate(size_t n)
    {
        T *p = std::allocator<T>().allocate(n);
        rec_allocs++;
        if (hak_owns(p) != 1) rec_foreign++;
        return p;
    }
    void deallocate(T *p, size_t n) { std::allocator<T>().deallocate(p, n); }
    template <class U> bool operator==(const RecAlloc<U> &) const { return true; }
    template <class U> bool operator!=(const RecAlloc<U> &) const { return false; }
};

static void test_new_delete()
{
    int *i = new int(42);
    check_owned("new int", i, sizeof(int));
    CHECK(*i == 42, "new int value");
    delete i;

    const size_t sizes[] = { 1, 100, 1024, 1025, 65536, 65537, 2 * MiB, 2 * MiB + 1, 3 * MiB };
    for (size_t n : sizes) {
        char *a = new char[n];
        check_owned("new char[]", a, n);
        std::memset(a, 0x5c, n);
        delete[] a;
        void *r = ::operator new(n);
        check_owned("operator new", r, n);
        ::operator delete(r, n);                          // sized delete
        r = ::operator new[](n);
        check_owned("operator new[]", r, n);
        ::operator delete[](r);
        r = ::operator new(n, std::nothrow);
        check_owned("operator new(nothrow)", r, n);
        ::operator delete(r, std::nothrow);
    }

    bool threw = false;
    try {
        void *r = ::operator new(v_huge);
        ::operator delete(r);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "operator new(SIZE_MAX/2) did not throw bad_alloc");
    void *r = ::operator new(v_huge, std::nothrow);
    CHECK(r == nullptr, "operator new(SIZE_MAX/2, nothrow) = %p", r);
}

static void test_aligned_new()
{
    A64 *a = new A64;
    check_owned("new A64", a, sizeof(A64), 64);
    std::memset(a, 1, sizeof *a);
    delete a;
    A4096 *b = new A4096;
    check_owned("new A4096", b, sizeof(A4096), 4096);
    std::memset(b, 1, sizeof *b);
    delete b;
    A64 *av = new A64[10];                                // trivial: no array cookie
    check_owned("new A64[10]", av, 10 * sizeof(A64), 64);
    delete[] av;
    A4096 *bv = new A4096[3];
    check_owned("new A4096[3]", bv, 3 * sizeof(A4096), 4096);
    std::memset(bv, 2, 3 * sizeof(A4096));
    delete[] bv;

    for (int k = 0; k < 100; k++) {                       // many, all live at once
        static A64 *many[100];
        many[k] = new A64;
        if (!aligned(many[k], 64) || hak_owns(many[k]) != 1) CHECK(false, "new A64 #%d = %p", k, (void *)many[k]);
        if (k == 99)
            for (int j = 0; j < 100; j++) delete many[j];
    }

    // Non-trivial destructor: an array cookie sits before the elements, so
    // only alignment and destructor calls are checked.
    Counted *c = new Counted[5];
    CHECK(aligned(c, 64), "new Counted[5] = %p not 64-aligned", (void *)c);
    CHECK(Counted::live == 5 && c[4].v == 7, "Counted live %d", Counted::live);
    delete[] c;
    CHECK(Counted::live == 0, "delete[] left %d live", Counted::live);

    for (size_t al = 16; al <= 4 * MiB; al <<= 1) {
        const size_t ns[] = { 1, al - 1, al + 1, 100000 };
        for (size_t n : ns) {
            void *p = ::operator new(n, std::align_val_t(al));
            check_owned("operator new(align)", p, n, al);
            if (p) std::memset(p, 3, n);
            ::operator delete(p, n, std::align_val_t(al));
            p = ::operator new[](n, std::align_val_t(al), std::nothrow);
            check_owned("operator new[](align, nothrow)", p, n, al);
            ::operator delete[](p, std::align_val_t(al));
        }
    }
}

static void test_containers()
{
    {
        std::vector<int> v;
        const int *last = nullptr;
        int changes = 0, foreign = 0;
        for (int k = 0; k < 1000000; k++) {
            v.push_back(k);
            if (v.data() != last) {
                last = v.data();
                changes++;
                if (hak_owns(last) != 1 || hak_usable_size(last) < v.capacity() * sizeof(int)) foreign++;
            }
        }
        CHECK(changes >= 15 && foreign == 0, "vector growth: %d buffers, %d not HAKMEM's", changes, foreign);
        long bad = 0;
        for (int k = 0; k < 1000000; k++) bad += v[k] != k;
        CHECK(bad == 0, "vector contents: %ld wrong", bad);
        v.shrink_to_fit();
        CHECK(hak_owns(v.data()) == 1, "vector after shrink_to_fit");
    }
    {
        std::string s;
        const char *last = s.data();
        int changes = 0, foreign = 0;
        for (int k = 0; k < 1 << 20; k++) {
            s.push_back(static_cast<char>('a' + k % 26));
            if (s.data() != last) {
                last = s.data();
                changes++;
                if (hak_owns(last) != 1) foreign++;
            }
        }
        CHECK(changes >= 15 && foreign == 0, "string growth: %d buffers, %d not HAKMEM's", changes, foreign);
        long bad = 0;
        for (int k = 0; k < 1 << 20; k++) bad += s[k] != static_cast<char>('a' + k % 26);
        CHECK(bad == 0, "string contents: %ld wrong", bad);
    }

    rec_allocs = rec_foreign = 0;
    {
        std::map<int, std::string, std::less<int>, RecAlloc<std::pair<const int, std::string>>> m;
        for (int k = 0; k < 50000; k++) m.emplace(k * 7 % 50000, std::to_string(k));
        CHECK(m.size() == 50000, "map size %zu", m.size());
        for (int k = 0; k < 50000; k += 2) m.erase(k);
        CHECK(m.size() == 25000 && m.at(1) == std::to_string(7143), "map contents");
    }
    CHECK(rec_allocs >= 50000 && rec_foreign == 0, "map nodes: %ld allocated, %ld not HAKMEM's", rec_allocs, rec_foreign);

    rec_allocs = rec_foreign = 0;
    {
        std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, RecAlloc<std::pair<const int, int>>> u;
        for (int k = 0; k < 100000; k++) u[k] = -k;
        std::list<int, RecAlloc<int>> l;
        for (int k = 0; k < 10000; k++) l.push_back(k);
        std::vector<double, RecAlloc<double>> v(300000, 1.5);
        std::basic_string<char, std::char_traits<char>, RecAlloc<char>> s(100000, 'x');
        auto sp = std::allocate_shared<A4096>(RecAlloc<A4096>());
        CHECK(aligned(sp.get(), 4096), "allocate_shared<A4096> = %p", (void *)sp.get());
        CHECK(u.size() == 100000 && u[99999] == -99999 && l.size() == 10000 && v[299999] == 1.5 && s[99999] == 'x',
              "container contents");
    }
    CHECK(rec_allocs >= 110000 && rec_foreign == 0, "containers: %ld allocated, %ld not HAKMEM's", rec_allocs,
          rec_foreign);

    auto up = std::make_unique<std::array<char, 100000>>();
    check_owned("make_unique<array<char,100000>>", up.get(), 100000);
}

// HAKMEM's own operator new and delete are the ones programs get (not
// libstdc++'s, which would reach malloc through one more call).
static void test_operators_are_hakmem()
{
    static const char *const names[] = { "_Znwm", "_Znam", "_ZdlPv", "_ZdaPv", "_ZdlPvm",
                                         "_ZnwmSt11align_val_t", "_ZdlPvSt11align_val_t" };
    for (const char *name : names) {
        Dl_info info;
        void *f = dlsym(RTLD_DEFAULT, name);
        const char *from = f && dladdr(f, &info) && info.dli_fname ? info.dli_fname : "nowhere";
        CHECK(strstr(from, "libhakmem") != nullptr, "%s comes from %s, not libhakmem", name, from);
    }
}

int main()
{
    test_operators_are_hakmem();
    test_new_delete();
    test_aligned_new();
    test_containers();
    return test_done("test_cxx");
}
