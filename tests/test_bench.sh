#!/usr/bin/env bash
# The benchmark driver (scripts/bench.py, make bench) in its smoke mode: one
# round, HAKMEM and glibc only, minimal arguments, output to a temporary
# directory.  Checks that every benchmark of the suite ran successfully under
# both allocators, that the report and the chart were written and that both
# name every benchmark.  Asserts nothing about timing.
# HAKMEM_BUILD=dir: HAKMEM's build directory (default build; tests/run.sh).
# Another directory (build/debug under make test-debug) is used as built, with
# --no-build: the driver's own `make -s all` builds only the release tree.
set -u
cd "$(dirname "$0")/.."
export HAKMEM_BUILD=${HAKMEM_BUILD:-build}
no_build=
[ "$HAKMEM_BUILD" = build ] || no_build=--no-build

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck disable=SC2086  # no_build is empty or one option
if ! python3 scripts/bench.py --smoke $no_build --out-dir "$tmp" >"$tmp/log" 2>&1; then
    echo "bench: scripts/bench.py --smoke failed:"
    tail -n 25 "$tmp/log"
    exit 1
fi

python3 - "$tmp" <<'PY'
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
build = os.environ["HAKMEM_BUILD"]
print("bench: %d benchmarks ran under HAKMEM%s and glibc; report and chart written"
      % (len(names), "" if build == "build" else " (%s)" % build))
PY
