#!/usr/bin/env bash
# HAKMEM_CHECK=1 under threads: the threaded tests (frees by other threads,
# blocks handed out next to blocks being freed) run in check mode without a
# false report.  Check mode reads a neighbour's guard while another thread
# may be handing that block out; a race there once reported "buffer
# underflow" on correct programs.
set -u
cd "$(dirname "$0")/.."
B=${HAKTEST_BUILD:-build}
fail=0
for t in test_threads test_stress; do
    [ -x "$B/tests/$t" ] || { echo "FAIL: no $B/tests/$t"; fail=1; continue; }
    out=$(HAKMEM_CHECK=1 "$B/tests/$t" 2>&1) || { echo "FAIL: $t under HAKMEM_CHECK=1: $(echo "$out" | grep -E 'HAKMEM|FAIL' | head -3)"; fail=1; }
done
[ $fail -eq 0 ] || exit 1
echo "checkmode: test_threads and test_stress pass under HAKMEM_CHECK=1"
