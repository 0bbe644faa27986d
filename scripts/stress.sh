#!/usr/bin/env bash
# The long stress run (make stress, ~10 minutes): builds, then
#   1. build/tests/test_stress for STRESS_SECONDS (default 180) seconds;
#   2. the seed reports' Larson commands, LARSON_RUNS (default 20) times each,
#      through scripts/larson_stability.sh;
#   3. build/tests/test_threads and build/tests/test_fork, REPEAT (default 5)
#      times each.
# Prints a summary with pass/fail per part and exits non-zero if any failed.
# Full output of every part goes to build/stress/*.log.
set -u
cd "$(dirname "$0")/.."

secs=${STRESS_SECONDS:-180}
larson_runs=${LARSON_RUNS:-20}
repeat=${REPEAT:-5}
for v in "$secs" "$larson_runs" "$repeat"; do
    case $v in ''|*[!0-9]*|0) echo "STRESS_SECONDS, LARSON_RUNS and REPEAT must be positive integers" >&2; exit 2 ;; esac
done

make -s tests || { echo "stress: build failed" >&2; exit 2; }
logs=build/stress
mkdir -p "$logs"

summary=() failed=0
record() {   # record <ok 0|1> <text>
    if [ "$1" -eq 1 ]; then summary+=("PASS  $2"); else summary+=("FAIL  $2"); failed=1; fi
}
show_tail() { tail -n "${2:-20}" "$1" | sed 's/^/    /'; }

# 1. test_stress
log=$logs/test_stress.log
echo "== test_stress for $secs s"
start=$SECONDS
timeout $((secs + 300)) build/tests/test_stress "$secs" >"$log" 2>&1
rc=$?
cat "$log"
res="$(sed -n 's/^stress: \([0-9.]* s, .* threads created\).*/\1/p' "$log" | tail -n 1); $(tail -n 1 "$log")"
if [ $rc -eq 0 ]; then
    record 1 "test_stress: $res"
else
    record 0 "test_stress: exit $rc$([ $rc -eq 124 ] && echo ' (timed out)'): $res"
fi

# 2. Larson
log=$logs/larson.log
echo
echo "== Larson stability, $larson_runs runs per command"
scripts/larson_stability.sh --runs "$larson_runs" >"$log" 2>&1
rc=$?
grep -v 'run .*: ok' "$log"        # failures and the summary
while IFS= read -r line; do
    line=${line#"${line%%[![:space:]]*}"}
    n=$(sed -n 's/.* \([0-9]*\)\/\([0-9]*\) succeeded.*/\1 \2/p' <<<"$line")
    read -r got of <<<"$n"
    record $([ "${got:-0}" = "${of:-x}" ] && echo 1 || echo 0) "$line"
done < <(sed -n '/^summary/,$p' "$log" | grep 'succeeded')
if [ $rc -ne 0 ] && ! grep -q 'succeeded' "$log"; then
    record 0 "larson_stability.sh exited $rc without a summary"
fi

# 3. test_threads and test_fork, several runs each
for t in test_threads test_fork; do
    echo
    echo "== $t, $repeat runs"
    ok=0
    for ((i = 1; i <= repeat; i++)); do
        log=$logs/$t.$i.log
        start=$SECONDS
        timeout 600 "build/tests/$t" >"$log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            ok=$((ok + 1))
            printf '%s run %d/%d: ok (%d s) %s\n' "$t" "$i" "$repeat" $((SECONDS - start)) "$(tail -n 1 "$log")"
        else
            printf '%s run %d/%d: FAILED, exit %d%s (log %s)\n' "$t" "$i" "$repeat" "$rc" \
                "$([ $rc -eq 124 ] && echo ' (timed out)')" "$log"
            show_tail "$log"
        fi
    done
    record $([ $ok -eq "$repeat" ] && echo 1 || echo 0) "$t: $ok/$repeat runs passed"
done

echo
echo "stress summary:"
printf '  %s\n' "${summary[@]}"
if [ $failed -eq 0 ]; then echo "stress: all parts passed"; else echo "stress: FAILED (logs in $logs/)"; fi
exit $failed
