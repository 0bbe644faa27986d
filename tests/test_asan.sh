#!/usr/bin/env bash
# make asan: a program built with -fsanitize=address and linked with
# build/asan/libhakmem.a (the hak_* API) gets ASan's report for
#   - a write past the size asked for, inside the block (hak_malloc(20), p[24]),
#   - a write after hak_free, and after hak_realloc moved the block,
#   - a read past a hak_calloc'd size,
# and runs clean when it stays within its blocks (calloc, realloc, aligned).
# The same program linked with the ordinary library reports nothing for the
# first case: the report comes from make asan's poisoning.
set -u
cd "$(dirname "$0")/.."
B=${HAKTEST_BUILD:-build}
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# A compiler that builds and runs an ASan program (clang, then gcc).
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
printf '#include <stdlib.h>\nint main(void){void *p = malloc(8); free(p); return 0;}\n' >"$dir/probe.c"
cc=
for c in clang gcc cc; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -fsanitize=address "$dir/probe.c" -o "$dir/probe" 2>/dev/null && "$dir/probe"; then
        cc=$c; break
    fi
done
[ -n "$cc" ] || { echo "FAIL: no compiler here builds and runs -fsanitize=address programs"; exit 1; }

make -s BUILD="$B" DEBUG="${HAKTEST_DEBUG:-0}" asan >/dev/null || { echo "FAIL: make asan"; exit 1; }

cat >"$dir/app.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
#include "hakmem.h"
int main(int argc, char **argv)
{
    int mode = atoi(argv[1]);
    volatile char *p;
    switch (mode) {
    case 0: {                                   /* clean */
        char *a = hak_malloc(20), *c = hak_calloc(10, 3), *r;
        memset(a, 1, 20);
        for (int i = 0; i < 30; i++)
            if (c[i]) return 3;
        r = hak_realloc(a, 2000);
        memset(r, 2, 2000);
        r = hak_realloc(r, 10);
        r[9] = 1;
        void *al = hak_aligned_alloc(256, 512);
        memset(al, 3, 512);
        hak_free(al);
        hak_free(r);
        hak_free(c);
        return 0;
    }
    case 1: p = hak_malloc(20); p[24] = 1; break;                /* past the size */
    case 2: p = hak_malloc(100); hak_free((void *)p); p[0] = 1; break; /* after free */
    case 3: {                                                     /* after a moving realloc */
        char *a = hak_malloc(16);
        char *b = hak_realloc(a, 5000);
        if (b == a) return 4;
        a[0] = 1;
        hak_free(b);
        break;
    }
    case 4: p = hak_calloc(3, 7); return p[22];                  /* read past calloc's size */
    }
    return 0;
}
EOF
"$cc" -fsanitize=address -g -Iinclude "$dir/app.c" "$B/asan/libhakmem.a" -pthread -o "$dir/app" ||
    { echo "FAIL: cannot link against $B/asan/libhakmem.a"; exit 1; }
"$cc" -fsanitize=address -g -Iinclude "$dir/app.c" "$B/libhakmem.a" -pthread -o "$dir/plain" ||
    { echo "FAIL: cannot link against $B/libhakmem.a"; exit 1; }

"$dir/app" 0 >"$dir/out" 2>&1 || bad "clean program: status $?: $(head -c 400 "$dir/out")"
for mode in 1 2 3 4; do
    if "$dir/app" $mode >"$dir/out" 2>&1; then
        bad "case $mode: no report"
    elif ! grep -q "ERROR: AddressSanitizer: use-after-poison" "$dir/out"; then
        bad "case $mode: not ASan's use-after-poison report: $(head -c 400 "$dir/out")"
    fi
done
"$dir/plain" 1 >"$dir/out" 2>&1 || bad "the ordinary library reported case 1 too (status $?)"
[ $fail -eq 0 ] || exit 1
echo "asan: 4 of 4 errors reported by ASan through make asan's poisoning ($cc), clean run clean"
