#!/usr/bin/env bash
# Instructions per malloc(PAIR_SIZE, default 64)+free pair, counted by
# callgrind, under HAKMEM and under each peer allocator that is installed
# (make callgrind).  Runs build/bench/pair, collecting only inside pair_loop,
# at two loop lengths and divides the difference in instructions by the
# difference in pairs, so that one-off costs (first calls, setting up a size
# class) cancel.  Columns: the whole pair, the part inside malloc and inside
# free (inclusive), and the rest, which is the loop itself: its increment and
# branch, the two calls and their PLT jumps.
set -u
cd "$(dirname "$0")/.."

size=${PAIR_SIZE:-64}
n1=100000 n2=200000
bin=build/bench/pair
# "name library" lines, "-" for none: the table of scripts/bench.py.
mapfile -t allocators < <(PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=scripts python3 -c '
import os, bench
for name, lib, _ in bench.ALLOCATORS:
    print(name, os.path.abspath(lib) if lib else "-")') && [ ${#allocators[@]} -gt 0 ] ||
    { echo "callgrind: cannot read the allocator table of scripts/bench.py" >&2; exit 1; }

fail() { echo "callgrind: $*" >&2; exit 1; }
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
    fail "valgrind is not installed (sudo apt-get install valgrind)"
[ -x "$bin" ] && [ -f build/libhakmem.so ] || fail "$bin or build/libhakmem.so missing (run make)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# counts <name> <preload> <n>: prints "total malloc free" instructions of one run.
counts() {
    local out=$tmp/$1.$3
    LD_PRELOAD=$2 valgrind -q --tool=callgrind --toggle-collect=pair_loop \
        --callgrind-out-file="$out" "$bin" "$3" "$size" >"$out.log" 2>&1 ||
        { tail -n 5 "$out.log" >&2; fail "the run under $1 ($bin $3 $size) failed"; }
    # The calling tree lists pair_loop's callees with their inclusive cost:
    #   "1,600,000 (20.25%)  >   /work/main/src/fastpath.h:malloc (100,000x) [...]"
    callgrind_annotate --tree=calling --inclusive=yes --threshold=100 "$out" | tr -d , | awk '
        / \*  .*:pair_loop / { on = 1; next }
        on && !NF            { exit }
        on && /:malloc \(/   { m = $1 }
        on && /:free \(/     { f = $1 }
        END { if (m == "" || f == "") exit 1; print m, f }' >"$out.calls" ||
        fail "no malloc or free call under pair_loop in the profile of $1"
    echo "$(sed -n 's/^totals: //p' "$out") $(cat "$out.calls")"
}

echo "instructions per malloc($size)+free pair: callgrind Ir, (run of $n2 pairs - run of $n1) / $((n2 - n1))"
printf '%-10s %8s %8s %8s %8s\n' allocator pair malloc free loop
for entry in "${allocators[@]}"; do
    name=${entry%% *} lib=${entry#* }
    [ "$lib" = - ] && lib=
    if [ -n "$lib" ] && [ ! -f "$lib" ]; then
        printf '%-10s skipped: %s is not installed\n' "$name" "$lib"
        continue
    fi
    # ld.so only warns when a library cannot be preloaded; refuse to report it.
    [ -z "$lib" ] || LD_PRELOAD=$lib grep -qF "$(basename "$(readlink -f "$lib")")" /proc/self/maps ||
        fail "$lib is not mapped when preloaded"
    a=$(counts "$name" "$lib" $n1) || exit 1
    b=$(counts "$name" "$lib" $n2) || exit 1
    awk -v name="$name" -v d=$((n2 - n1)) -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        t = (y[1] - x[1]) / d; m = (y[2] - x[2]) / d; f = (y[3] - x[3]) / d
        printf "%-10s %8.1f %8.1f %8.1f %8.1f\n", name, t, m, f, t - m - f }'
done
