#!/usr/bin/env bash
# Runs the seed reports' Larson stability commands many times under one
# allocator and reports, per command, how many runs succeeded and the median
# throughput.  Exits non-zero if any run failed.
#
#   scripts/larson_stability.sh [--lib PATH] [--runs N]
#
# Default allocator: build/libhakmem.so; --lib system runs the C library's
# malloc as a baseline.  A run succeeds when larson exits 0 and prints its
# Throughput line.
set -u
cd "$(dirname "$0")/.."

lib=build/libhakmem.so
runs=20
while [ $# -gt 0 ]; do
    case $1 in
        --lib)  lib=${2:?--lib needs a path}; shift 2 ;;
        --runs) runs=${2:?--runs needs a number}; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
case $runs in ''|*[!0-9]*|0) echo "--runs must be a positive integer" >&2; exit 2 ;; esac

bin=build/bench/larson
# make may fail on a half-written library while larson itself builds fine,
# so judge by what exists afterwards.
[ -x "$bin" ] || make || echo "make failed; continuing if $bin was built" >&2
[ -x "$bin" ] || { echo "$bin was not built" >&2; exit 2; }
preload=$lib
if [ "$lib" = system ]; then
    preload=
elif [ ! -f "$lib" ]; then
    echo "allocator library not found: $lib" >&2; exit 2
# Refuse to report results for an allocator that did not actually load.
elif ! LD_PRELOAD=$lib grep -qF "$(basename "$(readlink -f "$lib")")" /proc/self/maps 2>/dev/null; then
    echo "$lib is not mapped when preloaded; refusing to run" >&2
    exit 2
fi

commands=(
    "1 1 128 1024 1 12345 1"
    "2 8 128 1024 1 12345 2"
    "10 8 128 1024 1 12345 4"
)

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a";
    else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

err=$(mktemp) out=$(mktemp)
trap 'rm -f "$err" "$out"' EXIT
summary=() all_ok=1
echo "allocator: $lib, $runs runs per command"
for args in "${commands[@]}"; do
    secs=${args%% *}
    ok=0 tputs=()
    for ((i = 1; i <= runs; i++)); do
        # Generous limit: a hang counts as a failure instead of stalling the
        # script.  Only larson itself gets the allocator, not timeout.
        timeout $((secs + 30)) env LD_PRELOAD="$preload" "$bin" $args >"$out" 2>"$err"
        rc=$?
        tput=$(awk '/^Throughput = / { print $3; exit }' "$out")
        if [ $rc -eq 0 ] && [ -n "$tput" ]; then
            ok=$((ok + 1)); tputs+=("$tput")
            printf 'larson %s  run %2d/%d: ok, %s ops/s\n' "$args" "$i" "$runs" "$tput"
        else
            all_ok=0
            printf 'larson %s  run %2d/%d: FAILED, exit %d%s\n' "$args" "$i" "$runs" "$rc" \
                "$([ $rc -eq 124 ] && echo ' (timed out)')"
            sed 's/^/    stderr: /' "$err" | head -n 5
        fi
    done
    med=$(printf '%s\n' "${tputs[@]+"${tputs[@]}"}" | grep . | median)
    summary+=("$(printf 'larson %-26s %2d/%d succeeded, median %s ops/s' "$args" "$ok" "$runs" "$med")")
done

echo
echo "summary ($lib):"
printf '  %s\n' "${summary[@]}"
[ $all_ok -eq 1 ]
