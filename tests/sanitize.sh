#!/usr/bin/env bash
# Sanitizer runs, called by `make sanitize`:
#   tests/sanitize.sh "<CC>" "<library sources without src/override.c>" "<tests>"
# The library is built without its malloc overrides, so the sanitizer's own
# allocator keeps malloc and the tests reach HAKMEM through hak_*.
#   - threaded tests (name contains "thread" or "remote") run under ThreadSanitizer,
#     build/san-tsan/<test>, with HAKTEST_SCALE (default 0.25) for a smaller run;
#   - every other test runs under AddressSanitizer + UBSan, build/san-asan/<test>.
# Prints PASS/FAIL per test and ends with "N passed, N failed"; exits non-zero
# on any failure (a missing test source is a failure, not a skip).
# HAKTEST_BUILD=dir puts san-tsan/ and san-asan/ under dir instead of build.
set -u
cd "$(dirname "$0")/.." || exit 1

CC_ARG=${1:-cc}
SRCS=${2:-}
TESTS=${3:-"test_api test_threads"}
export HAKTEST_SCALE=${HAKTEST_SCALE:-0.25}
SAN_TIMEOUT=${SAN_TIMEOUT:-1200}

BASE_FLAGS=(-std=gnu11 -fno-omit-frame-pointer -O1 -g -Iinclude -Isrc -pthread)
# shellcheck disable=SC2054  # one flag with a comma
ASAN_FLAGS=(-fsanitize=address,undefined)
TSAN_FLAGS=(-fsanitize=thread)

# clang first, then gcc, then the given compiler: the first one that can build
# and run a program with the sanitizer.
pick_cc() {  # <sanitizer flags...>
    local probe; probe=$(mktemp -d)
    printf '#include <pthread.h>\n#include <stdlib.h>\nint main(void){void*p=malloc(8);free(p);return 0;}\n' >"$probe/p.c"
    for c in clang gcc "$CC_ARG"; do
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" "$@" -pthread "$probe/p.c" -o "$probe/p" >/dev/null 2>&1 && "$probe/p" >/dev/null 2>&1; then
            rm -rf "$probe"; echo "$c"; return 0
        fi
    done
    rm -rf "$probe"; return 1
}

pass=0 fail=0 failed=()
result() {  # <PASS|FAIL> <name> <detail>
    if [ "$1" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$2"); fi
    printf '%s %-24s %s\n' "$1" "$2" "$3"
}

if [ -z "${SRCS// /}" ]; then
    echo "sanitize: no library sources given"
fi

for t in $TESTS; do
    case $t in
        *thread*|*remote*) kind=tsan; flags=("${TSAN_FLAGS[@]}") ;;
        *)        kind=asan; flags=("${ASAN_FLAGS[@]}") ;;
    esac
    name="$t ($kind)"
    src="tests/$t.c"
    if [ ! -f "$src" ]; then
        result FAIL "$name" "missing: $src does not exist"
        continue
    fi
    if [ -z "${SRCS// /}" ]; then
        result FAIL "$name" "missing: no library sources"
        continue
    fi
    if ! cc=$(pick_cc "${flags[@]}"); then
        result FAIL "$name" "no compiler here can build and run with ${flags[*]}"
        continue
    fi
    out="${HAKTEST_BUILD:-build}/san-$kind"
    mkdir -p "$out"
    log="$out/$t.log"
    # shellcheck disable=SC2086  # SRCS is a list of paths
    if ! "$cc" "${BASE_FLAGS[@]}" "${flags[@]}" $SRCS "$src" -o "$out/$t" >"$log" 2>&1; then
        result FAIL "$name" "build failed with $cc (log: $log)"
        tail -n 30 "$log" | sed 's/^/    /'
        continue
    fi
    start=$SECONDS
    # (the braces keep the shell's own "Aborted" notice out of the output)
    if [ $kind = tsan ]; then
        { TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
            timeout "$SAN_TIMEOUT" "$out/$t" >"$log" 2>&1; } 2>/dev/null
    else
        { ASAN_OPTIONS="abort_on_error=1:detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
          UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
            timeout "$SAN_TIMEOUT" "$out/$t" >"$log" 2>&1; } 2>/dev/null
    fi
    rc=$?
    # a sanitizer report is a failure even if the program's status hid it
    if [ $rc -eq 0 ] && grep -qE '^(WARNING: ThreadSanitizer|==[0-9]+==ERROR: AddressSanitizer|SUMMARY: (UndefinedBehavior|Address|Thread)Sanitizer)|runtime error:' "$log"; then
        rc=99
    fi
    if [ $rc -eq 0 ]; then
        result PASS "$name" "($((SECONDS - start))s, $cc) $(tail -n 1 "$log")"
    else
        what="exit status $rc"
        [ $rc -eq 124 ] && what="timed out after ${SAN_TIMEOUT}s"
        [ $rc -eq 99 ] && what="sanitizer report"
        result FAIL "$name" "($((SECONDS - start))s, $cc) $what (log: $log)"
        grep -m1 -nE 'ERROR: AddressSanitizer|WARNING: ThreadSanitizer|runtime error:|SUMMARY:' "$log" | sed 's/^/    /'
        tail -n 40 "$log" | sed 's/^/    /'
    fi
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
