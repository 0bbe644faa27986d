#!/usr/bin/env bash
# Larson under HAKMEM: the seed reports' high-contention command (shortened to
# 1 s) must succeed 20 times out of 20, and the standard server configuration
# once.  Larson checks every block's tag and every pointer's alignment itself
# and creates thousands of short-lived threads per second, so this covers
# cross-thread frees and thread exit as well as plain stability.
# LARSON_LIB=path runs it against another allocator (to check the test).
# HAKTEST_BUILD=dir: the build directory (default build; tests/run.sh).
set -u
cd "$(dirname "$0")/.."

B=${HAKTEST_BUILD:-build}
lib=${LARSON_LIB:-$B/libhakmem.so}
bin=$B/bench/larson
runs=20
[ -x "$bin" ] || { echo "larson: $bin missing (run make)"; exit 1; }
[ -f "$lib" ] || { echo "larson: $lib missing (run make)"; exit 1; }

# A preload that silently fails to load would test the system allocator.
mapped=$(LD_PRELOAD=$lib grep -cF "$(basename "$(readlink -f "$lib")")" /proc/self/maps)
if [ "${mapped:-0}" -eq 0 ]; then
    echo "larson: $lib is not mapped when preloaded"
    exit 1
fi

err=$(mktemp) out=$(mktemp)
trap 'rm -f "$err" "$out"' EXIT

# run_larson <label> <args...>: 0 when larson exits 0 and prints its result.
run_larson() {
    local label=$1; shift
    timeout 30 env LD_PRELOAD="$lib" "$bin" "$@" >"$out" 2>"$err"
    local rc=$?
    if [ $rc -eq 0 ] && grep -q '^Throughput = ' "$out"; then
        return 0
    fi
    [ $rc -eq 0 ] && rc="0 but no Throughput line"
    [ "$rc" = 124 ] && rc="124 (timed out)"
    echo "FAIL $label: larson $* exit $rc, stderr: $(head -c 400 "$err" | tr '\n' ' ')"
    return 1
}

ok=0
for ((i = 1; i <= runs; i++)); do
    run_larson "run $i" 1 8 128 1024 1 12345 4 && ok=$((ok + 1))
done

standard="standard configuration ok"
run_larson "standard" 1 8 1000 5000 100 4141 4 || standard="standard configuration FAILED"

echo "larson: $ok/$runs runs succeeded, $standard"
[ $ok -eq $runs ] && [ "$standard" = "standard configuration ok" ]
