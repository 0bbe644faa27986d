#!/usr/bin/env bash
# The hakmem command (tools/hakmem.c): --version and --settings answer from
# the library's own table; a program run under it gets the library preloaded
# and the settings asked for; bad settings, a missing program and no program
# fail with a message and status 2 or 127.  HAKTEST_BUILD: the build (tests/run.sh).
set -u
cd "$(dirname "$0")/.."
B=${HAKTEST_BUILD:-build}
cmd=$B/hakmem
fail=0
bad() { echo "FAIL $*"; fail=1; }
[ -x "$cmd" ] || { echo "cmd: $cmd not built (make)"; exit 1; }
version=$(sed -n 's/^#define HAKMEM_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/hakmem.h | paste -sd.)
[ "$("$cmd" --version)" = "hakmem $version (library $version)" ] || bad "--version: $("$cmd" --version)"
n_table=$(sed -n '/#define HAK_OPTION_TABLE/,/^$/p' src/types.h | grep -c 'X([A-Z_]*, "HAKMEM_')
n_listed=$("$cmd" --settings | grep -Ec '^HAKMEM_[A-Z_]*=([0-9]* \(default [0-9]*, [0-9]*\.\.[0-9]*\)|.* \(default unset, any text\)): ')
[ "$n_listed" -eq "$n_table" ] && [ "$n_table" -gt 0 ] || bad "--settings lists $n_listed of $n_table settings"
"$cmd" --settings | grep -q '^HAKMEM_RETAIN_MS=100 (default 100, 0..600000): ' || bad "--settings: HAKMEM_RETAIN_MS"

out=$("$cmd" --set HAKMEM_RETAIN_MS=5 --check sh -c 'echo "$HAKMEM_RETAIN_MS $HAKMEM_CHECK $LD_PRELOAD"')
case $out in
    "5 1 "*libhakmem.so*) ;;
    *) bad "settings and LD_PRELOAD not passed on: '$out'" ;;
esac
err=$("$cmd" --stats python3 -c 'import sys; sys.exit(0)' 2>&1 >/dev/null)
case $err in
    "HAKMEM statistics (pid "*) ;;
    *) bad "--stats: the program printed no statistics block: '${err:0:200}'" ;;
esac

# ls closes stderr before it exits (gnulib's close_stdout): the block must still arrive.
err=$("$cmd" --stats ls / 2>&1 >/dev/null)
case $err in
    "HAKMEM statistics (pid "*) ;;
    *) bad "--stats: nothing from a program that closes stderr at exit: '${err:0:200}'" ;;
esac

# HAKMEM_STATS=2: one line of JSON that a JSON parser reads, with its list of classes.
err=$("$cmd" --set HAKMEM_STATS=2 ls / 2>&1 >/dev/null)
classes=$(printf '%s' "$err" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["classes"]))' 2>&1)
[ "$classes" -gt 0 ] 2>/dev/null || bad "HAKMEM_STATS=2: not JSON with a class list: '${classes:0:200}' from '${err:0:200}'"

# --profile: a heap profile pprof reads and a leak report, from a real program.
tmp=$(mktemp -d)
err=$("$cmd" --profile "$tmp/prof" python3 -c 'keep = [bytearray(1000) for _ in range(20000)]' 2>&1 >/dev/null)
case $err in
    *"HAKMEM: heap profile in $tmp/prof; about "*) ;;
    *) bad "--profile: no line on stderr: '${err:0:200}'" ;;
esac
head -n 1 "$tmp/prof" 2>/dev/null | grep -Eq '^heap profile: [0-9]+: [0-9]+ \[ *[0-9]+: [0-9]+\] @ heap_v2/524288$' ||
    bad "--profile: $tmp/prof is not a heap profile"
grep -q '^MAPPED_LIBRARIES:$' "$tmp/prof" 2>/dev/null || bad "--profile: no memory map in the profile"
grep -q '^HAKMEM leak report, pid [0-9]*: about [0-9]* bytes' "$tmp/prof.leaks" 2>/dev/null ||
    bad "--profile: no leak report"
rm -rf "$tmp"

expect_fail() {   # status, message start, then the command's arguments
    local want=$1 msg=$2; shift 2
    local e rc
    e=$("$cmd" "$@" 2>&1 >/dev/null); rc=$?
    [ $rc -eq "$want" ] || bad "hakmem $*: status $rc, expected $want"
    [ "${e:0:${#msg}}" = "$msg" ] || bad "hakmem $*: said '${e:0:120}'"
}
expect_fail 2 "hakmem: HAKMEM_NOPE=1 is not NAME=VALUE for a setting" --set HAKMEM_NOPE=1 true
expect_fail 2 "hakmem: bad value HAKMEM_STATS=5 (expected 0..2)" --set HAKMEM_STATS=5 true
expect_fail 2 "hakmem: bad value HAKMEM_PROFILE= (expected a non-empty value)" --set HAKMEM_PROFILE= true
expect_fail 2 "hakmem: unknown option --bogus" --bogus true
expect_fail 2 "usage: hakmem" 
expect_fail 127 "hakmem: cannot run /nonexistent/program" /nonexistent/program
[ $fail -eq 0 ] || exit 1
echo "cmd: --version, --settings ($n_table), --set/--check/--stats passed on, JSON statistics, --profile, 6 errors reported"
