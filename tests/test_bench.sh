#!/usr/bin/env bash
# The benchmark driver (scripts/bench.py, make bench) in its smoke mode: one
# round, HAKMEM and glibc only, minimal arguments, output to a temporary
# directory.  Checks that every benchmark of the suite ran successfully under
# both allocators, that the report and the chart were written and that both
# name every benchmark.  Then scripts/bench_suite.py (make bench-suite) without
# the suite's folder: see the second part.  Asserts nothing about timing.
# HAKTEST_BUILD=dir: HAKMEM's build directory (default build; tests/run.sh).
# Another directory (build/debug under make test-debug) is used as built, with
# --no-build: the driver's own `make -s all` builds only the release tree.
set -u
cd "$(dirname "$0")/.."
export HAKTEST_BUILD=${HAKTEST_BUILD:-build}
no_build=
[ "$HAKTEST_BUILD" = build ] || no_build=--no-build

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck disable=SC2086  # no_build is empty or one option
if ! python3 scripts/bench.py --smoke $no_build --out-dir "$tmp" >"$tmp/log" 2>&1; then
    echo "bench: scripts/bench.py --smoke failed:"
    tail -n 25 "$tmp/log"
    exit 1
fi

python3 - "$tmp" <<'PY' || exit 1
import json, os, sys
tmp = sys.argv[1]
names = os.popen("python3 scripts/bench.py --list").read().split()
fail = []
if not names:
    fail.append("scripts/bench.py --list printed no benchmark")
data = json.load(open(os.path.join(tmp, "bench-results.json")))
for name in names:
    for alloc in ("HAKMEM", "glibc"):
        runs = [r for r in data["runs"] if r["bench"] == name and r["allocator"] == alloc]
        if not runs:
            fail.append("%s did not run under %s" % (name, alloc))
        for r in runs:
            if r["status"] != "ok" or not r["ops_per_sec"] or not r["maxrss_kb"]:
                fail.append("%s under %s: %s (%s)" % (name, alloc, r["status"], r["command"]))
for fname in ("BENCHMARKS.md", "benchmarks.svg"):
    path = os.path.join(tmp, fname)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        fail.append("%s was not written" % fname)
        continue
    text = open(path).read()
    for name in names:
        if name not in text:
            fail.append("%s does not mention %s" % (fname, name))
md = open(os.path.join(tmp, "BENCHMARKS.md")).read()
if "## Changes and what they gained" not in md:
    fail.append("BENCHMARKS.md lacks its 'Changes and what they gained' section")
if not open(os.path.join(tmp, "benchmarks.svg")).read().rstrip().endswith("</svg>"):
    fail.append("benchmarks.svg is not a complete SVG document")
for f in fail:
    print("FAIL " + f)
if fail:
    sys.exit(1)
build = os.environ["HAKTEST_BUILD"]
print("bench: %d benchmarks ran under HAKMEM%s and glibc; report and chart written"
      % (len(names), "" if build == "build" else " (%s)" % build))
PY

# The mimalloc-bench mode (scripts/bench_suite.py, make bench-suite) without
# running it: its rows list without the suite's folder; a missing folder is
# one line and status 2, no traceback; the rate lines of the suite's programs
# parse.
fail=0
rows=$(python3 scripts/bench_suite.py --list --folder "$tmp/none" 2>&1)
for row in larson-1t xmalloc-test-4t cache-scratch1 rptest-2t cfrac mleak-50; do
    grep -qx "$row" <<<"$rows" || { echo "FAIL bench_suite.py --list lacks $row"; fail=1; }
done
python3 scripts/bench_suite.py --folder "$tmp/none" >"$tmp/out" 2>&1
status=$?
if [ "$status" -ne 2 ] || [ "$(wc -l <"$tmp/out")" -ne 1 ] || ! grep -q MIMALLOC_BENCH "$tmp/out"; then
    echo "FAIL bench_suite.py with a missing folder: status $status, output:"; cat "$tmp/out"; fail=1
fi
python3 - <<'PY' || fail=1
import sys
sys.path.insert(0, "scripts")
import bench_suite
samples = {
    "larson-2t": ("Throughput = 37991932 operations per second, relative time: 26.321s.", 37991932),
    "xmalloc-test-2t": ("rtime: 5.978, free/sec: 16.728 M", 16.728e6),
    "rptest-2t": ("crt 2 threads ...: ....2362704 memory ops/CPU second (32MiB peak)", 2362704),
    "glibc-thread-2t": ("146521255 iterations", 146521255),
    "cfrac": (bench_suite.EXPECT["cfrac"], None),
}
rows = {r.name: r for r in bench_suite.expand("full", "/nowhere")}
bad = []
for name, (out, rate) in samples.items():
    got = bench_suite.parser_for(rows[name])(out + "\n")
    if got is None or (rate is None) != ("rate" not in got) or \
            (rate is not None and abs(got["rate"] - rate) > 1e-6 * rate):
        bad.append("%s: parsed %r from %r" % (name, got, out))
    if bench_suite.parser_for(rows[name])("nothing\n") is not None:
        bad.append("%s: found a figure in output without one" % name)
for b in bad:
    print("FAIL bench_suite.py " + b)
sys.exit(1 if bad else 0)
PY
[ "$fail" -eq 0 ] && echo "bench: bench_suite.py lists its rows, reports a missing folder, parses its figures"
exit $fail
