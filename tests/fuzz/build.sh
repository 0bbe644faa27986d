#!/usr/bin/env bash
# Builds the libFuzzer harness: build/fuzz/fuzz_alloc from the library sources
# (without src/override.c, so ASan keeps malloc and HAKMEM is reached through
# hak_*) and tests/fuzz/fuzz_alloc.c.  Fails with a clear message when clang
# or its fuzzer runtime is missing.  Usage: tests/fuzz/build.sh [output]
# FUZZ_CFLAGS: extra compiler flags (e.g. -DHAK_DEBUG=1 for the assertions).
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${1:-build/fuzz/fuzz_alloc}
CLANG=${FUZZ_CC:-clang}
# shellcheck disable=SC2054  # one flag with commas
FLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Iinclude -Isrc -pthread)
# shellcheck disable=SC2206  # FUZZ_CFLAGS is a list of flags
FLAGS+=(${FUZZ_CFLAGS:-})

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "fuzz: $CLANG not found: the fuzz harness needs clang with libFuzzer (apt-get install clang)"
    exit 1
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' >"$probe/p.c"
if ! "$CLANG" "${FLAGS[@]}" "$probe/p.c" -o "$probe/p" >"$probe/log" 2>&1; then
    echo "fuzz: $CLANG cannot link -fsanitize=fuzzer,address,undefined (libFuzzer runtime missing?):"
    head -n 5 "$probe/log" | sed 's/^/    /'
    exit 1
fi

SRCS=()
for f in src/*.c; do
    [ "$f" = src/override.c ] || [ "$f" = src/copy.c ] || SRCS+=("$f")
done
mkdir -p "$(dirname "$OUT")"
# Rebuild only when a source is newer than the binary or the flags changed.
if [ -x "$OUT" ]; then
    stale=0
    echo "$CLANG ${FLAGS[*]}" | cmp -s - "$OUT.flags" || stale=1
    for f in "${SRCS[@]}" src/*.h include/hakmem.h tests/fuzz/fuzz_alloc.c "$0"; do
        [ "$f" -nt "$OUT" ] && stale=1
    done
    [ $stale -eq 0 ] && exit 0
fi
echo "fuzz: building $OUT with $CLANG"
"$CLANG" "${FLAGS[@]}" "${SRCS[@]}" tests/fuzz/fuzz_alloc.c -o "$OUT" &&
    echo "$CLANG ${FLAGS[*]}" >"$OUT.flags"
