#!/usr/bin/env bash
# Builds HAKMEM and runs a real workload, the Larson server benchmark in its
# standard configuration, under the system allocator and under HAKMEM,
# alternating them round by round.  Prints every run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all
threads=${THREADS:-4}; secs=${SECONDS_PER_RUN:-2}; rounds=${ROUNDS:-3}
args=("$secs" 8 1000 5000 100 4141 "$threads")
echo "larson ${args[*]}  (seconds, min size, max size, chunks/thread, rounds, seed, threads)"
declare -a sys hak
tput() { sed -n 's/^Throughput = \([0-9]*\) .*/\1/p'; }
for r in $(seq "$rounds"); do
    s=$(build/bench/larson "${args[@]}" | tput)
    h=$(LD_PRELOAD="$PWD/build/libhakmem.so" build/bench/larson "${args[@]}" | tput)
    printf 'round %d: system malloc %12d ops/s   HAKMEM %12d ops/s\n' "$r" "$s" "$h"
    sys+=("$s"); hak+=("$h")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
ms=$(median "${sys[@]}"); mh=$(median "${hak[@]}")
printf 'median:  system malloc %12d ops/s   HAKMEM %12d ops/s   (HAKMEM / system = %s)\n' \
    "$ms" "$mh" "$(awk -v a="$mh" -v b="$ms" 'BEGIN { printf "%.2f", a / b }')"
