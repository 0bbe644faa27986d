#!/usr/bin/env bash
# Address space: a preloaded small program's VmSize grows by at most 16 MiB
# (the region map is 2 MiB of .bss, arenas start at one 4 MiB SuperSlab),
# and a program runs under ulimit -v 20000 (20 MB, where jemalloc loads) with
# the same output as without HAKMEM.
set -u
cd "$(dirname "$0")/.."
B=${HAKTEST_BUILD:-build}
lib=$(readlink -f "$B/libhakmem.so")
[ -f "$lib" ] || { echo "FAIL: no $B/libhakmem.so"; exit 1; }
fail=0
bad() { echo "FAIL: $*"; fail=1; }

vmsize() { sed -n 's/^VmSize:[[:space:]]*\([0-9]*\) kB$/\1/p'; }
plain=$(sort /proc/self/status | vmsize)
with=$(LD_PRELOAD=$lib sort /proc/self/status | vmsize)
[ -n "$plain" ] && [ -n "$with" ] || { echo "FAIL: no VmSize read ('$plain', '$with')"; exit 1; }
growth=$((with - plain))
[ $growth -le 16384 ] || bad "VmSize of a preloaded sort: $with kB, $plain kB without (+$growth kB, limit 16384)"

want=$(sort -r /etc/passwd | md5sum)
got=$( (ulimit -v 20000; LD_PRELOAD=$lib sort -r /etc/passwd) 2>&1 | md5sum)
[ "$got" = "$want" ] || bad "sort under ulimit -v 20000 with HAKMEM preloaded: $( (ulimit -v 20000; LD_PRELOAD=$lib sort -r /etc/passwd) 2>&1 | head -c 300)"
[ $fail -eq 0 ] || exit 1
echo "vmsize: preloaded sort VmSize +$growth kB ($plain -> $with kB); runs under ulimit -v 20000"
