#!/usr/bin/env bash
# RSS over time (make soak): runs build/bench/soak for SOAK_SECONDS (default
# 300) under LD_PRELOAD=build/libhakmem.so and fails if its RSS grows by more
# than SOAK_MAX_GROWTH_PCT (default 10) percent after the warm-up (the first
# 20% of the run): the working set is steady, so RSS should be flat.
# SOAK_LIB=path runs it under another allocator; SOAK_LIB=system under the C
# library's malloc (to compare).  Output also goes to build/soak.log.
set -u
cd "$(dirname "$0")/.."

secs=${SOAK_SECONDS:-300}
max_pct=${SOAK_MAX_GROWTH_PCT:-10}
lib=${SOAK_LIB:-build/libhakmem.so}
case $secs in ''|*[!0-9]*|0) echo "SOAK_SECONDS must be a positive integer" >&2; exit 2 ;; esac
case $max_pct in ''|*[!0-9.]*) echo "SOAK_MAX_GROWTH_PCT must be a number" >&2; exit 2 ;; esac

make -s lib benches || { echo "soak: build failed" >&2; exit 2; }
bin=build/bench/soak
[ -x "$bin" ] || { echo "soak: $bin was not built" >&2; exit 2; }

preload=$lib
if [ "$lib" = system ]; then
    preload=
elif [ ! -f "$lib" ]; then
    echo "soak: allocator library not found: $lib" >&2; exit 2
elif ! LD_PRELOAD=$lib grep -qF "$(basename "$(readlink -f "$lib")")" /proc/self/maps 2>/dev/null; then
    echo "soak: $lib is not mapped when preloaded; refusing to run" >&2; exit 2
fi

log=build/soak.log
echo "soak: $bin $secs under ${lib}; fails above +${max_pct}% RSS growth after warm-up"
timeout $((secs + 120)) env LD_PRELOAD="$preload" "$bin" "$secs" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
    echo "soak: FAILED: $bin exited $rc$([ "$rc" -eq 124 ] && echo ' (timed out)')"
    exit 1
fi
pct=$(sed -n 's/^result: .* growth_pct=\([-0-9.]*\).*/\1/p' "$log")
[ -n "$pct" ] || { echo "soak: FAILED: no result line"; exit 1; }
if awk -v p="$pct" -v m="$max_pct" 'BEGIN { exit !(p > m) }'; then
    echo "soak: FAILED: RSS grew ${pct}% after warm-up (limit ${max_pct}%)"
    exit 1
fi
echo "soak: ok, RSS growth after warm-up ${pct}% (limit ${max_pct}%)"
