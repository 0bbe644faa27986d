#!/usr/bin/env bash
# Builds the libFuzzer harness (tests/fuzz/fuzz_alloc.c: the hak_* API under
# ASan+UBSan) and replays every input of the committed corpus once, without
# fuzzing.  Passes only if every input runs cleanly.  A missing clang or
# libFuzzer runtime is a failure, not a skip.
# HAKTEST_BUILD=dir: the build directory (default build; tests/run.sh); the
# harness goes to dir/fuzz/ and, when that build is a DEBUG=1 one (its flags
# stamp has -DHAK_DEBUG=1), is compiled with the assertions on as well.
set -u
cd "$(dirname "$0")/.." || exit 1
B=${HAKTEST_BUILD:-build}
BIN=$B/fuzz/fuzz_alloc
FUZZ_CFLAGS=
grep -q -e '-DHAK_DEBUG=1' "$B/.flags" 2>/dev/null && FUZZ_CFLAGS=-DHAK_DEBUG=1
if ! FUZZ_CFLAGS=$FUZZ_CFLAGS tests/fuzz/build.sh "$BIN"; then
    echo "fuzz: FAILED: cannot build the fuzz harness (needs clang with -fsanitize=fuzzer)"
    exit 1
fi
shopt -s nullglob
inputs=(tests/fuzz/corpus/*)
if [ ${#inputs[@]} -eq 0 ]; then
    echo "fuzz: FAILED: tests/fuzz/corpus is empty"
    exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ASAN_OPTIONS="abort_on_error=1:detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    "$BIN" -timeout=60 "${inputs[@]}" >"$log" 2>&1
rc=$?
ran=$(grep -c '^Executed ' "$log")
if [ $rc -ne 0 ] || [ "$ran" -ne ${#inputs[@]} ]; then
    tail -n 40 "$log"
    echo "fuzz: FAILED: replay exit status $rc, $ran of ${#inputs[@]} inputs ran"
    exit 1
fi
echo "fuzz: corpus replay clean ($ran inputs${FUZZ_CFLAGS:+, $FUZZ_CFLAGS})"
