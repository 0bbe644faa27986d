#!/usr/bin/env bash
# make security (scripts/security.py): with no security set at the folder it
# says so in one line and exits 2; with the set there (MIMALLOC_BENCH, by
# default ../shared/mimalloc-bench), a part of it must come out as measured:
# HAKMEM_CHECK=1 and glibc catch the double free and the stack free at every
# size, HAKMEM without check mode the stack free.
set -u
cd "$(dirname "$0")/.."
fail=0
bad() { echo "FAIL: $*"; fail=1; }

msg=$(python3 scripts/security.py --folder /nonexistent/mimalloc-bench 2>&1); rc=$?
[ $rc -eq 2 ] || bad "missing folder: status $rc, expected 2"
case $msg in
    "security: no security set at /nonexistent/mimalloc-bench"*) ;;
    *) bad "missing folder: said '${msg:0:200}'" ;;
esac

folder=${MIMALLOC_BENCH:-../shared/mimalloc-bench}
if [ -f "$folder/bench/security/common.h" ]; then
    out=$(python3 scripts/security.py --folder "$folder" --rows double_free,invalid_free_stack 2>&1) ||
        bad "security.py failed: ${out:0:300}"
    echo "$out" | grep -q '^| HAKMEM_CHECK | 6/6 | 3 | 3 |$' || bad "HAKMEM_CHECK row: $out"
    echo "$out" | grep -q '^| glibc | 6/6 | 3 | 3 |$' || bad "glibc row: $out"
    echo "$out" | grep -q '^| HAKMEM | 6/6 | 3 | 3 |$' || bad "HAKMEM row: $out"
    part="double_free and invalid_free_stack at 3 sizes as expected"
else
    part="no security set at $folder: only the missing-folder message checked"
fi
[ $fail -eq 0 ] || exit 1
echo "security: missing folder reported; $part"
