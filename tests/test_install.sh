#!/usr/bin/env bash
# make install into a temporary DESTDIR (PREFIX=/usr), then a small program
# built against the installed files through pkg-config and through CMake
# (find_package(hakmem)), shared and static: each must get its blocks from
# HAKMEM (hak_owns) and the library version of the header it was built with.
# HAKTEST_BUILD / HAKTEST_DEBUG: the build directory and its DEBUG setting
# (tests/run.sh), so that installing does not rebuild it.
set -u
cd "$(dirname "$0")/.."
B=${HAKTEST_BUILD:-build}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }
for tool in pkg-config cmake readelf; do
    command -v $tool >/dev/null || { echo "install: $tool not found (apt-get install pkg-config cmake binutils)"; exit 1; }
done
root=$tmp/root
make -s install BUILD="$B" DEBUG="${HAKTEST_DEBUG:-0}" PREFIX=/usr DESTDIR="$root" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log"; echo "install: make install failed"; exit 1; }
lib=$root/usr/lib
major=$(sed -n 's/^#define HAKMEM_VERSION_MAJOR \([0-9]*\)$/\1/p' include/hakmem.h)
for f in include/hakmem.h lib/libhakmem.a lib/libhakmem.so lib/libhakmem.so.$major \
         lib/pkgconfig/hakmem.pc lib/cmake/hakmem/hakmem-config.cmake \
         lib/cmake/hakmem/hakmem-config-version.cmake share/doc/hakmem/LICENSE \
         share/man/man1/hakmem.1 share/man/man3/hakmem.3 bin/hakmem; do
    [ -e "$root/usr/$f" ] || bad "not installed: /usr/$f"
done
hk=$root/usr/bin/hakmem
if [ -x "$hk" ]; then
    pre=$("$hk" sh -c 'echo "$LD_PRELOAD"' 2>&1)
    [ "$pre" = "$root/usr/bin/../lib/libhakmem.so.$major" ] || bad "installed hakmem preloads '$pre'"
else
    bad "not installed: /usr/bin/hakmem"
fi
soname=$(readelf -d "$lib/libhakmem.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libhakmem.so.$major" ] || bad "SONAME is '$soname', expected libhakmem.so.$major"

cat >"$tmp/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hakmem.h>
int main(void)
{
    void *p = malloc(100);
    int ok = hak_owns(p) == 1 && strcmp(hak_version(), HAKMEM_VERSION) == 0;
    free(p);
    printf("%s %s\n", ok ? "ok" : "not HAKMEM's", hak_version());
    return !ok;
}
C
# Runs program $2 (label $1); it must print "ok" and, if $3 is set, need libhakmem.so.MAJOR.
check_run() {
    local label=$1 prog=$2 shared=$3 out
    [ -x "$prog" ] || { bad "$label: not built"; return; }
    out=$(LD_LIBRARY_PATH=$lib "$prog" 2>&1) || { bad "$label: $out"; return; }
    [ "${out%% *}" = ok ] || bad "$label: printed '$out'"
    if [ -n "$shared" ]; then
        readelf -d "$prog" | grep -q "NEEDED.*\[libhakmem.so.$major\]" || bad "$label: does not need libhakmem.so.$major"
    else
        readelf -d "$prog" | grep -q "NEEDED.*libhakmem" && bad "$label: linked to the shared library"
    fi
}
export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$lib/pkgconfig
[ "$(pkg-config --modversion hakmem)" = "$(sed -n 's/^Version: //p' "$lib/pkgconfig/hakmem.pc")" ] ||
    bad "pkg-config does not find hakmem"
cc "$tmp/prog.c" $(pkg-config --cflags --libs hakmem) -o "$tmp/pc_shared" 2>"$tmp/cc.log" || cat "$tmp/cc.log"
check_run "pkg-config, shared" "$tmp/pc_shared" 1
cc "$tmp/prog.c" $(pkg-config --cflags hakmem) -Wl,-Bstatic $(pkg-config --static --libs hakmem) \
    -Wl,-Bdynamic -o "$tmp/pc_static" 2>"$tmp/cc.log" || cat "$tmp/cc.log"
check_run "pkg-config, static" "$tmp/pc_static" ""
# Wholly static, the C library too (glibc's libc.a, in libc6-dev).
if cc -static "$tmp/prog.c" -I"$root/usr/include" "$lib/libhakmem.a" -pthread -o "$tmp/all_static" \
        2>"$tmp/cc.log"; then
    out=$(timeout 20 "$tmp/all_static" 2>&1) || bad "-static: status $?: '$out'"
    [ "${out%% *}" = ok ] || bad "-static: printed '$out'"
else
    bad "-static: does not link: $(head -n 3 "$tmp/cc.log")"
fi

mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.13)
project(hakmem_use C)
find_package(hakmem 0 REQUIRED)
add_executable(cm_shared ../prog.c)
target_link_libraries(cm_shared hakmem::hakmem)
add_executable(cm_static ../prog.c)
target_link_libraries(cm_static hakmem::hakmem_static)
CM
if cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$root/usr" >"$tmp/cmake.log" 2>&1 &&
   cmake --build "$tmp/cm/b" >>"$tmp/cmake.log" 2>&1; then
    check_run "CMake, shared" "$tmp/cm/b/cm_shared" 1
    check_run "CMake, static" "$tmp/cm/b/cm_static" ""
else
    tail -n 20 "$tmp/cmake.log"; bad "CMake: find_package(hakmem) or the build failed"
fi
make -s uninstall BUILD="$B" DEBUG="${HAKTEST_DEBUG:-0}" PREFIX=/usr DESTDIR="$root" >/dev/null 2>&1
left=$(find "$root" -type f -o -type l)
[ -z "$left" ] || bad "make uninstall left: $left"
[ $fail -eq 0 ] || exit 1
echo "install: DESTDIR install, SONAME libhakmem.so.$major; pkg-config and CMake, shared and static, and wholly static: ok"
