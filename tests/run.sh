#!/usr/bin/env bash
# Runs every test program in build/tests and every tests/test_*.sh script.
# Each one is a test: it passes when it exits 0.  Ends with "N passed, N failed".
# HAKTEST_BUILD=dir (relative to the repository root, default build) runs the
# suite against another build directory, e.g. build/debug (make test-debug);
# the test scripts take their library and binaries from the same variable.
set -u
cd "$(dirname "$0")/.."
export HAKTEST_BUILD=${HAKTEST_BUILD:-build}
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
nbin=0
for t in "$HAKTEST_BUILD"/tests/*; do
    [ -x "$t" ] || continue
    nbin=$((nbin + 1))
    run_one "$(basename "$t")" "$t"
done
if [ $nbin -eq 0 ]; then   # a wrong HAKTEST_BUILD must not pass on the scripts alone
    fail=$((fail + 1)); failed+=("$HAKTEST_BUILD/tests")
    echo "FAIL no test programs in $HAKTEST_BUILD/tests (run make tests)"
fi
for s in tests/test_*.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s" .sh)" bash "$s"
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
