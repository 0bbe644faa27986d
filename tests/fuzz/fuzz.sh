#!/usr/bin/env bash
# `make fuzz`: builds build/fuzz/fuzz_alloc and fuzzes for FUZZ_SECONDS
# (default 60) starting from a copy of tests/fuzz/corpus in build/fuzz/corpus,
# so that new corpus entries never land in the repository.  Crashing inputs
# go to build/fuzz/artifacts/.  Exits non-zero on any crash, leak, timeout or
# sanitizer report.  Extra libFuzzer flags: FUZZ_ARGS.
set -u
cd "$(dirname "$0")/../.." || exit 1
SECONDS_TO_RUN=${FUZZ_SECONDS:-60}
BIN=build/fuzz/fuzz_alloc
RUN_CORPUS=build/fuzz/corpus
ARTIFACTS=build/fuzz/artifacts

tests/fuzz/build.sh "$BIN" || exit 1
rm -rf "$RUN_CORPUS"
mkdir -p "$RUN_CORPUS" "$ARTIFACTS"
cp tests/fuzz/corpus/* "$RUN_CORPUS"/
log=build/fuzz/fuzz.log
echo "fuzz: ${SECONDS_TO_RUN}s from $(find "$RUN_CORPUS" -type f | wc -l) seeds (log: $log, crashes: $ARTIFACTS/)"
# shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
ASAN_OPTIONS="abort_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    "$BIN" -max_total_time="$SECONDS_TO_RUN" -max_len=2048 -timeout=60 -print_final_stats=1 \
    -artifact_prefix="$ARTIFACTS/" ${FUZZ_ARGS:-} "$RUN_CORPUS" >"$log" 2>&1
rc=$?
grep -E '^#[0-9]+' "$log" | tail -n 1
grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log"
if [ $rc -ne 0 ]; then
    echo "fuzz: FAILED (exit status $rc)"
    grep -m1 -nE 'fuzz_alloc: |ERROR: (AddressSanitizer|libFuzzer)|runtime error:|SUMMARY:' "$log" | sed 's/^/    /'
    grep -E 'Test unit written to' "$log" | sed 's/^/    /'
    exit 1
fi
echo "fuzz: no crash in ${SECONDS_TO_RUN}s; corpus now $(find "$RUN_CORPUS" -type f | wc -l) inputs"
