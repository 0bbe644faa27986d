#!/usr/bin/env bash
# Runs every test program in build/tests and every tests/test_*.sh script.
# Each one is a test: it passes when it exits 0.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0 failed=()
run_one() {
    local name=$1; shift
    local log; log=$(mktemp)
    local start=$SECONDS
    if timeout "${TEST_TIMEOUT:-600}" "$@" >"$log" 2>&1; then
        pass=$((pass + 1)); printf 'PASS %-28s (%ds) %s\n' "$name" $((SECONDS - start)) "$(tail -n 1 "$log")"
    else
        fail=$((fail + 1)); failed+=("$name")
        printf 'FAIL %-28s (%ds)\n' "$name" $((SECONDS - start)); tail -n 30 "$log" | sed 's/^/    /'
    fi
    rm -f "$log"
}
for t in build/tests/*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for s in tests/test_*.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s" .sh)" bash "$s"
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
