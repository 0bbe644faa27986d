#!/usr/bin/env python3
"""HAKMEM on the standard mimalloc-bench suite, beside glibc, mimalloc, jemalloc and tcmalloc.

    scripts/bench_suite.py [--quick] [--folder DIR] [--rows A,B] [--only A,B]
                           [--lib NAME=PATH] [--rounds N] [--out-dir DIR] [--json PATH]

The programs are those of daanx/mimalloc-bench, from a copy of it (the folder
MIMALLOC_BENCH of `make bench-suite`; by default ../shared/mimalloc-bench from
the repository root), built with cmake into build/mimalloc-bench/, outside the
sources.  They run with the suite's standard command lines, at 1, 2 and 4
threads where they take a thread count, under every allocator through
LD_PRELOAD, interleaved round by round, with the runner of scripts/bench.py
(the same preload checks, the same peak-RSS measurement).

Programs that run for a fixed time and report a rate (larson, larson-sized,
xmalloc-test, rptest, glibc-thread) are compared by that rate; the others do
fixed work and are compared by wall time.  Either way a row's time ratio is
own time / best other allocator's time (best other rate / own rate), and the
peak-RSS ratio is own peak RSS / the lowest other one.

Writes docs/BENCHMARKS_SUITE.md and build/bench-suite-results.json.

  --quick       the threaded programs at 2 threads only (alloc-test at 1), shorter
                arguments where a program takes them, without rptest (16 s whatever
                its arguments, mostly sleeping) and mleak 50, 1 round: ~4 min
                (make bench-suite QUICK=1).  The full suite, 3 rounds: ~45 min.
                Both on this 2-core machine.
  --folder DIR  the mimalloc-bench copy (default ../shared/mimalloc-bench)
  --rows A,B    only these rows: row names (larson-2t) or program names (larson,
                cache-scratch); --list shows them
  --only A,B    only these allocators (names as in scripts/bench.py's ALLOCATORS)
  --lib N=PATH  also run this preload library under the name N (an A/B build)
  --rounds N    rounds (default 3; quick 1)
  --out-dir D   write BENCHMARKS_SUITE.md (and the JSON, unless --json) to D
  --json P      raw per-run data (default build/bench-suite-results.json)
  --no-build    do not run make or cmake;  --no-install  do not install packages
  --list        print the rows of the chosen mode and exit

Exit status 1 when a HAKMEM run failed or a row failed under every allocator,
2 when the mimalloc-bench folder is missing.
"""

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import sys
import time

import bench
from bench import ROOT, log, fmt_mib, fmt_ops, fmt_ratio

DEFAULT_FOLDER = os.path.join(ROOT, "..", "shared", "mimalloc-bench")
BUILD_DIR = os.path.join(ROOT, "build", "mimalloc-bench")

# ---------------------------------------------------------------------------
# The suite: ONE table.
#
#   row        name of the row; threaded rows get "-<N>t" appended
#   program    the cmake target, build/mimalloc-bench/<program>
#   FULL       arguments of the full run: the README's standard command line;
#              N is the thread count, {bench} the folder's bench/ directory,
#              "< file" the program's standard input
#   threads    thread counts of the full run (None: no thread-count argument)
#   QUICK      arguments of the quick run (None: left out of it)
#   quick thr  thread counts of the quick run
#   figure     how the run is measured: "time" (wall time, fixed work) or one
#              of RATES (the program's own rate, fixed running time)
#
# Budget, full: ~160 s per allocator and round under glibc (rptest 3 x 16 s,
# alloc-test 4.5 + 8 + 10.5 s, larson and larson-sized 7 s each), 5 allocators
# x 3 rounds ~45 min.  Quick: ~45 s per allocator, 1 round, ~4 min.
# ---------------------------------------------------------------------------
CFRAC_NUMBER = "17545186520507317056371138836327483792789528"
SUITE = [
    # row            program          FULL                            threads    QUICK                           quick thr  figure
    ("larson",       "larson",        "5 8 1000 5000 100 4141 N",     (1, 2, 4), "1 8 1000 5000 100 4141 N",     (2,), "larson"),
    ("larson-sized", "larson-sized",  "5 8 1000 5000 100 4141 N",     (1, 2, 4), "1 8 1000 5000 100 4141 N",     (2,), "larson"),
    ("xmalloc-test", "xmalloc-test",  "-w N -t 5 -s 64",              (1, 2, 4), "-w N -t 1 -s 64",              (2,), "xmalloc"),
    # The last argument only reaches pthread_setconcurrency, which Linux ignores:
    # the "1" form is the same run at any N, so it is one row.
    ("cache-scratch1", "cache-scratch", "1 1000 1 2000000 1",         None,      "1 1000 1 200000 1",            None, "time"),
    ("cache-scratchN", "cache-scratch", "N 1000 1 2000000 N",         (2, 4),    "N 1000 1 200000 N",            (2,), "time"),
    ("cache-thrash1", "cache-thrash", "1 1000 1 2000000 1",           None,      "1 1000 1 200000 1",            None, "time"),
    ("cache-thrashN", "cache-thrash", "N 1000 1 2000000 N",           (2, 4),    "N 1000 1 200000 N",            (2,), "time"),
    ("mstress",      "mstress",       "N 50 25",                      (1, 2, 4), "N 50 25",                      (2,), "time"),
    ("rptest",       "rptest",        "N 0 1 2 500 1000 100 8 16000", (1, 2, 4), None,                           None, "rptest"),
    ("glibc-thread", "glibc-thread",  "N",                            (1, 2, 4), "N",                            (2,), "glibc-thread"),
    ("alloc-test",   "alloc-test",    "N",                            (1, 2, 4), "N",                            (1,), "time"),
    ("cfrac",        "cfrac",         CFRAC_NUMBER,                   None,      CFRAC_NUMBER,                   None, "time"),
    ("espresso",     "espresso",      "{bench}/espresso/largest.espresso", None, "{bench}/espresso/largest.espresso", None, "time"),
    ("barnes",       "barnes",        "< {bench}/barnes/input",       None,      "< {bench}/barnes/input",       None, "time"),
    ("glibc-simple", "glibc-simple",  "",                             None,      "",                             None, "time"),
    ("malloc-large", "malloc-large",  "",                             None,      "",                             None, "time"),
    ("mleak-5",      "mleak",         "5",                            None,      "5",                            None, "time"),
    ("mleak-50",     "mleak",         "50",                           None,      None,                           None, "time"),
]

# Rate figures: the last match of the pattern in stdout, times the scale, and the unit shown.
RATES = {
    "larson": (bench.LARSON_RE, 1.0, "ops/s"),
    "xmalloc": (re.compile(r"free/sec: ([0-9.]+) M"), 1e6, "frees/s"),
    "rptest": (re.compile(r"([0-9]+) memory ops/CPU second"), 1.0, "ops/CPU s"),
    "glibc-thread": (re.compile(r"^([0-9]+) iterations", re.M), 1.0, "iter/2 s"),
}

# Output a fixed-work program must print, so that a wrong answer is a failure too.
EXPECT = {
    "cfrac": CFRAC_NUMBER + " = 856070387728264 * 20495027946319472471219512627",
}

DESCRIPTIONS = {
    "larson": "Larson server simulation (the suite's C++ version): each thread frees and "
              "reallocates random blocks of 8-1000 B in a table of 5000, and hands its table to a "
              "new thread after each pass, so most frees are of another thread's blocks; runs "
              "for the given seconds",
    "larson-sized": "larson with C++14 sized deallocation (`operator delete(p, size)`)",
    "xmalloc-test": "N threads allocate 64 B blocks that N other threads free: every free is "
                    "cross-thread; runs for the given seconds",
    "cache-scratch": "passive false sharing (Hoard): each thread frees a 1-byte object the main "
                     "thread allocated, then 1000 times allocates a 1-byte object, writes it "
                     "2 million / N times and frees it; slow when a thread is handed memory on "
                     "a cache line another thread writes",
    "cache-thrash": "active false sharing (Hoard): as cache-scratch without the objects from "
                    "the main thread; slow when two threads' objects share a cache line",
    "mstress": "stress test: threads allocate, keep, reallocate and pass objects of random "
               "sizes (some large) to each other, re-created in rounds",
    "rptest": "rpmalloc's benchmark: threads allocate and free random sizes 8-16000 B (memory "
              "touched) with some blocks freed by other threads; reports memory operations per "
              "CPU second, and sleeps between its phases (~16 s of wall time)",
    "glibc-thread": "glibc's malloc-thread benchmark: each thread allocates and frees random "
                    "sizes 4 B-32 KiB in a 1024-entry working set for 2 s; reports iterations",
    "alloc-test": "OLogN's alloc-test: random sizes up to ~1 KiB, mostly small, 100 million "
                  "operations per thread on a working set split between the threads, memory "
                  "touched",
    "cfrac": "continued-fraction factorisation of a 44-digit number: many small, short-lived "
             "allocations",
    "espresso": "the espresso logic minimiser on its largest input: small allocations of "
                "varied lifetime",
    "barnes": "Barnes-Hut n-body simulation: few allocations, mostly floating-point work",
    "glibc-simple": "glibc's malloc-simple benchmark: one thread allocating and freeing bursts of "
                    "25 to 1600 blocks of 16, 32 and 64 B, also after a thread has existed",
    "malloc-large": "blocks of 5-25 MiB, up to 20 live at a time: the large-block path and "
                    "returning memory to the OS",
    "mleak": "10 threads at a time each allocate a 128 B object, put it in one of 1000 shared "
             "slots, free the object it displaces (usually an exited thread's) and exit; 100 x "
             "the argument times: memory an allocator keeps for dead threads shows in the peak "
             "RSS",
}

CONFIGS = [
    (1, "1 thread (and the programs without a thread count)"),
    (2, "2 threads"),
    (4, "4 threads"),
]


class Row:
    """One row of a run: a program with its arguments at one thread count."""

    def __init__(self, name, base, program, args, threads, figure, stdin):
        self.name, self.base, self.program, self.args = name, base, program, args
        self.threads, self.figure, self.stdin = threads, figure, stdin


def expand(mode, folder_bench):
    """The rows of the mode, with N and {bench} filled in."""
    rows = []
    for name, program, full, threads, quick, quick_threads, figure in SUITE:
        args = full if mode == "full" else quick
        counts = threads if mode == "full" else quick_threads
        if args is None:
            continue
        for n in counts or (None,):
            text = args.replace("{bench}", folder_bench)
            stdin = None
            if "<" in text:
                text, _, stdin = text.partition("<")
                stdin = stdin.strip()
            words = [str(n) if w == "N" else w for w in text.split()]
            rows.append(Row(name if n is None else "%s-%dt" % (name, n), name, program, words,
                            n or 1, figure, stdin))
    return rows


def select_rows(rows, wanted):
    """The rows wanted names: by row name, program or SUITE row (larson-2t, cache-scratch,
    cache-scratchN)."""
    names = [w for w in wanted.split(",") if w]
    chosen = [r for r in rows if r.name in names or r.program in names or r.base in names]
    known = {r.name for r in rows} | {r.program for r in rows} | {e[0] for e in SUITE}
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit("unknown row(s) %s; --list shows them" % ", ".join(unknown))
    if not chosen:
        sys.exit("--rows %s: no row of this mode" % wanted)
    for n in names:
        if not any(n in (r.name, r.program, r.base) for r in chosen):
            log("!! --rows: %s has no row in this mode" % n)
    return chosen


def row_timeout(row, mode):
    if row.figure == "larson":
        return int(row.args[0]) + 60
    return 300 if mode == "full" else 120


def parser_for(row):
    """The run's figures from its stdout: {"rate": ...} or {} (timed), None if missing."""
    if row.figure == "time":
        expect = EXPECT.get(row.program)
        return lambda out: {} if expect is None or expect in out else None
    pattern, scale, _ = RATES[row.figure]

    def parse(out):
        found = pattern.findall(out)
        return {"rate": float(found[-1]) * scale} if found else None
    return parse


def shown_command(row, preload_var, folder_bench):
    """The command to reproduce the row by hand from the repository root, the folder's files
    written as $MIMALLOC_BENCH/bench/..."""
    def shown(word):
        if word.startswith(folder_bench + "/"):
            return "$MIMALLOC_BENCH/bench/" + shlex.quote(word[len(folder_bench) + 1:])
        return shlex.quote(word)
    words = ["build/mimalloc-bench/" + row.program] + [shown(w) for w in row.args]
    if row.stdin:
        words += ["<", shown(row.stdin)]
    return preload_var + " ".join(words)


# ---------------------------------------------------------------------------
# The folder and its build
# ---------------------------------------------------------------------------
def check_folder(folder):
    """Exits (status 2, one line) unless folder holds the mimalloc-bench sources."""
    if not os.path.isfile(os.path.join(folder, "bench", "CMakeLists.txt")):
        print("bench-suite: no mimalloc-bench copy at %s (no bench/CMakeLists.txt); set "
              "MIMALLOC_BENCH=/path/to/mimalloc-bench (make bench-suite MIMALLOC_BENCH=...) or "
              "pass --folder" % folder, file=sys.stderr)
        sys.exit(2)


def upstream_commit(folder):
    try:
        with open(os.path.join(folder, "UPSTREAM")) as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return "unknown (no UPSTREAM file)"


def build_suite(folder, programs):
    """Configures (once per source folder) and builds the programs into BUILD_DIR."""
    source = os.path.realpath(os.path.join(folder, "bench"))
    cache = os.path.join(BUILD_DIR, "CMakeCache.txt")
    if os.path.exists(cache):
        with open(cache, errors="replace") as f:
            m = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$", f.read(), re.M)
        if not m or os.path.realpath(m.group(1)) != source:
            log("== %s was configured for another folder: starting it afresh" % BUILD_DIR)
            shutil.rmtree(BUILD_DIR)
    if not os.path.exists(cache):
        cmd = ["cmake", "-S", source, "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release"]
        log("== configuring: " + " ".join(cmd))
        r = bench.run_quiet(cmd)
        if r.returncode != 0:
            sys.exit("cmake failed:\n" + "\n".join(r.stdout.splitlines()[-15:]))
    cmd = ["make", "-s", "-C", BUILD_DIR, "-j2"] + sorted(programs)
    log("== building: " + " ".join(cmd))
    r = bench.run_quiet(cmd)
    if r.returncode != 0:
        sys.exit("building the suite failed:\n" + "\n".join(r.stdout.splitlines()[-15:]))


def stage_suite(programs):
    """A private copy of libhakmem.so and of the suite's binaries (see bench.stage_build)."""
    stage = bench.stage_build([])
    os.makedirs(os.path.join(stage, "suite"))
    os.makedirs(os.path.join(stage, "work"))
    for prog in programs:
        src = os.path.join(BUILD_DIR, prog)
        if os.access(src, os.X_OK):
            shutil.copy2(src, os.path.join(stage, "suite", prog))
    return stage


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------
def speed(rec):
    """Higher is better: the rate, or 1 / wall time for fixed work."""
    if rec["status"] != "ok":
        return None
    if "rate" in rec:
        return rec["rate"]
    return 1.0 / rec["wall_s"] if rec["wall_s"] else None


def row_formats(rows):
    """{row: formatter of its median speed}: seconds for fixed work, the rate with its unit."""
    fmts = {}
    for row in rows:
        if row.figure == "time":
            fmts[row.name] = lambda v: "-" if not v else "%.2f s" % (1.0 / v)
        else:
            unit = RATES[row.figure][2]
            fmts[row.name] = lambda v, unit=unit: "-" if v is None else "%s %s" % (fmt_ops(v), unit)
    return fmts


def against_each(s, names, allocs):
    """HAKMEM's geometric-mean ratios against each other allocator, and against the best other.

    Time: the other's speed / HAKMEM's (= HAKMEM's time / the other's); peak RSS:
    HAKMEM's / the other's.  Below 1: HAKMEM faster, or leaner."""
    out = []
    for other in [a for a in allocs if a != "HAKMEM"] + ["best other"]:
        t, m = [], []
        for b in names:
            h = s[b]["HAKMEM"]
            if other == "best other":
                t.append(h["time_ratio"])
                m.append(h["mem_ratio"])
                continue
            o = s[b][other]
            if h["ops_per_sec"] and o["ops_per_sec"]:
                t.append(o["ops_per_sec"] / h["ops_per_sec"])
            if h["maxrss_kb"] and o["maxrss_kb"]:
                m.append(h["maxrss_kb"] / o["maxrss_kb"])
        out.append({"against": other, "time": bench.geomean(t),
                    "time_n": sum(1 for v in t if v), "mem": bench.geomean(m),
                    "mem_n": sum(1 for v in m if v)})
    return out


def summarise(runs, rows, allocs):
    """bench.summarise over the speeds: the whole run, and each configuration apart."""
    as_speed = [dict(r, ops_per_sec=r.get("speed")) for r in runs]
    names = [r.name for r in rows]
    s, g, _ = bench.summarise(as_speed, names, allocs)
    configs = []
    for threads, title in CONFIGS:
        sub = [r.name for r in rows if r.threads == threads]
        if sub:
            _, g_c, _ = bench.summarise(as_speed, sub, allocs)
            configs.append({"threads": threads, "title": title, "rows": sub, "geomeans": g_c})
    versus = None
    if "HAKMEM" in allocs and len(allocs) > 1:
        versus = {"all": against_each(s, names, allocs)}
        for c in configs:
            versus[c["threads"]] = against_each(s, c["rows"], allocs)
    return s, g, configs, versus


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def versus_table(versus, configs, key, n_rows):
    head = "| HAKMEM against | all rows | " + " | ".join(c["title"].split(" (")[0]
                                                        for c in configs) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(configs)]
    for i, v in enumerate(versus["all"]):
        cells = [fmt_ratio(v[key]) + ("" if v[key + "_n"] == n_rows or v[key] is None
                                      else " (%d rows)" % v[key + "_n"])]
        for c in configs:
            cells.append(fmt_ratio(versus[c["threads"]][i][key]))
        lines.append("| %s | %s |" % (v["against"], " | ".join(cells)))
    return "\n".join(lines)


def write_markdown(path, ctx):
    s, allocs, rows, configs = ctx["summary"], ctx["allocs"], ctx["rows"], ctx["configs"]
    m, mode = ctx["machine"], ctx["mode"]
    fmts = row_formats(rows)
    L = ["# HAKMEM on the mimalloc-bench suite", ""]
    L.append("The standard programs of [mimalloc-bench](https://github.com/daanx/mimalloc-bench) "
             "(commit `%s`) under HAKMEM, the C library's malloc (glibc), mimalloc, jemalloc and "
             "tcmalloc: the same binaries, the allocator chosen by `LD_PRELOAD`. Generated by "
             "`scripts/bench_suite.py` (`make bench-suite`); do not edit by hand. HAKMEM's own "
             "benchmarks are in [BENCHMARKS.md](BENCHMARKS.md)." % ctx["upstream"])
    L.append("")
    L.append("## Run")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append("| date | %s |" % ctx["date"])
    L.append("| mode | %s |" % {"full": "full (`make bench-suite`): the standard command lines "
                                        "at 1, 2 and 4 threads",
                                "quick": "quick (`make bench-suite QUICK=1`): 2 threads only "
                                         "(alloc-test 1), shorter arguments, no rptest or "
                                         "mleak-50; a rough look, not a measurement"}[mode])
    if ctx["row_filter"]:
        L.append("| rows | only `%s` |" % ctx["row_filter"])
    L.append("| rounds | %d (each row under each allocator %s, interleaved) |"
             % (ctx["rounds"], "once" if ctx["rounds"] == 1 else "%d times" % ctx["rounds"]))
    L.append("| mimalloc-bench | `%s` at commit `%s` |" % (ctx["folder"], ctx["upstream"]))
    bench.md_machine_rows(L, ctx, m, allocs)
    versus = ctx["versus"]
    if versus:
        n = len(rows)
        L.append("")
        L.append("## HAKMEM against each allocator")
        L.append("")
        L.append("Geometric means over the rows of HAKMEM's time ÷ the other allocator's time "
                 "(for the rate-reporting programs: the other's rate ÷ HAKMEM's), below 1: "
                 "HAKMEM is faster; \"best other\" takes on each row the fastest of the others.")
        L.append("")
        L.append(versus_table(versus, configs, "time", n))
        L.append("")
        L.append("Peak RSS, HAKMEM's ÷ the other's (below 1: HAKMEM uses less; \"best other\": "
                 "the leanest of the others on each row):")
        L.append("")
        L.append(versus_table(versus, configs, "mem", n))
    for c in configs:
        names, g = c["rows"], c["geomeans"]
        L.append("")
        L.append("## " + c["title"])
        L.append("")
        L.append("Time, or the program's own rate where it reports one (median). In brackets "
                 "the time ratio to the fastest *other* allocator on the row (1.00 or less: at "
                 "least as fast as every other). Bold: the fastest. `~`: the rounds differ by "
                 "more than %d%% of the median." % int(bench.NOISY * 100))
        L.append("")
        L.append(bench.md_table(s, g, names, allocs, "ops_per_sec", fmt_ops, "time_ratio",
                                "time", True, row_fmt=fmts))
        L.append("")
        L.append("Peak RSS (median); in brackets, the ratio to the lowest among the *other* "
                 "allocators. Bold: the lowest.")
        L.append("")
        L.append(bench.md_table(s, g, names, allocs, "maxrss_kb", fmt_mib, "mem_ratio", "mem",
                                False))
    bench.md_failures(L, ctx["runs"], "figure", {}, ("stderr_tail", "stdout_tail"), "")
    L.append("")
    L.append("## Programs and how to reproduce")
    L.append("")
    L.append("`make bench-suite` (full, 3 rounds, ~45 min) or `make bench-suite QUICK=1` "
             "(~4 min); `make bench-suite BENCH_ARGS=\"--rows larson,xmalloc-test --only "
             "HAKMEM,mimalloc\"` for a part of it, `scripts/bench_suite.py --help` for the rest. "
             "The raw data of every run is in `build/bench-suite-results.json`. By hand, from "
             "the repository root after a run has built `build/mimalloc-bench/`, with "
             "`MIMALLOC_BENCH` the folder above and `LIB` one of the `LD_PRELOAD` values (leave "
             "`LD_PRELOAD` out for glibc; rptest writes a file into the current directory):")
    L.append("")
    L.append("| row | command (%s mode) | measured by |" % mode)
    L.append("|---|---|---|")
    for row in rows:
        how = "wall time" if row.figure == "time" else "its rate (%s)" % RATES[row.figure][2]
        L.append("| %s | `%s` | %s |" % (row.name, shown_command(row, "LD_PRELOAD=$LIB ",
                                                                 ctx["folder_bench"]), how))
    L.append("")
    for prog in sorted({r.program for r in rows}):
        L.append("- `%s`: %s." % (prog, DESCRIPTIONS.get(prog, "see the suite's README")))
    L.append("")
    L.append("## Method")
    L.append("")
    L.append("- The runner is scripts/bench.py's: private copies of `build/libhakmem.so` and of "
             "the suite's binaries, each preload checked to be mapped and loaded by every "
             "binary, interleaved rounds (%s, then again), medians, a failed run listed above "
             "and left out of the median." % " ".join(allocs))
    L.append("- Time ratios are comparable across rows: for fixed work, own wall time ÷ the "
             "best other's; for the programs that run a fixed time and report a rate (larson, "
             "larson-sized, xmalloc-test, rptest, glibc-thread), the best other's rate ÷ own "
             "rate. Wall time includes starting the process.")
    L.append("- Peak RSS is `ru_maxrss` of the benchmark process from `wait4` (the driver "
             "reaps it as a child subreaper, so the driver's own memory is not counted).")
    L.append("- A small shared virtual machine (%s logical CPUs): the 4-thread rows time-share "
             "two cores, and other work on the machine shows in the figures (the CPU use line "
             "above). Differences under ~5%% are noise; quick mode's shorter runs are noisier."
             % m["logical_cpus"])
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(usage="%(prog)s [options]", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--folder")
    ap.add_argument("--rows")
    ap.add_argument("--only")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--out-dir")
    ap.add_argument("--json")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--list", action="store_true")
    opts = ap.parse_args()
    mode = "quick" if opts.quick else "full"
    rounds = opts.rounds if opts.rounds else (1 if mode == "quick" else 3)
    if rounds < 1:
        sys.exit("--rounds must be at least 1")
    folder = os.path.normpath(opts.folder or DEFAULT_FOLDER)
    folder_bench = os.path.join(os.path.abspath(folder), "bench")
    rows = expand(mode, folder_bench)
    if opts.rows:
        rows = select_rows(rows, opts.rows)
    if opts.list:
        for row in rows:
            print(row.name)
        return 0
    check_folder(folder)
    out_dir = opts.out_dir or os.path.join(ROOT, "docs")
    json_path = opts.json or (os.path.join(opts.out_dir, "bench-suite-results.json")
                              if opts.out_dir
                              else os.path.join(ROOT, "build", "bench-suite-results.json"))
    wanted = bench.choose_allocators(opts.only, opts.lib)

    t_start = time.monotonic()
    notes = []
    programs = sorted({r.program for r in rows})
    if not opts.no_build:
        bench.build(notes)
        build_suite(folder, programs)
    if not opts.no_install:
        bench.install_peers(wanted, notes)
    if not os.path.exists(os.path.join(ROOT, "build/libhakmem.so")):
        sys.exit("build/libhakmem.so does not exist (run make)")
    vers = bench.versions(wanted)
    stage = stage_suite(programs)
    try:
        return run(mode, rounds, rows, wanted, notes, vers, stage, folder, folder_bench,
                   opts.rows, out_dir, json_path, t_start)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run(mode, rounds, rows, wanted, notes, vers, stage, folder, folder_bench, row_filter,
        out_dir, json_path, t_start):
    allocs, libs, run_libs = bench.usable_allocators(wanted, os.path.join(stage, "libhakmem.so"),
                                                     notes)
    binaries = {p: os.path.join(stage, "suite", p) for p in {r.program for r in rows}}
    ignored = bench.preload_ignored(binaries, allocs, run_libs)
    log("== allocators: " + ", ".join("%s (%s)" % (a, libs[a] or "no preload") for a in allocs))
    plan = [(rnd, row.name, a, row) for rnd in range(1, rounds + 1) for row in rows
            for a in allocs]
    log("== %s mode: %d rows x %d allocators x %d rounds = %d runs"
        % (mode, len(rows), len(allocs), rounds, len(plan)))

    def launch(rnd, a, row):
        binary = binaries[row.program]
        preload_var = "LD_PRELOAD=%s " % libs[a] if libs[a] else ""
        rec = {"bench": row.name, "program": row.program, "args": row.args,
               "stdin": row.stdin, "threads": row.threads, "figure": row.figure,
               "allocator": a, "round": rnd, "preload": libs[a],
               "command": shown_command(row, preload_var, folder_bench)}
        if not os.access(binary, os.X_OK) or (a, row.program) in ignored:
            why = ("build/mimalloc-bench/%s was not built" % row.program
                   if (a, row.program) not in ignored
                   else "LD_PRELOAD not honoured by build/mimalloc-bench/%s" % row.program)
            rec.update({"status": why, "wall_s": None, "maxrss_kb": None, "exit": None})
        else:
            rec.update(bench.run_once([binary] + row.args, run_libs[a], row_timeout(row, mode),
                                      cwd=os.path.join(stage, "work"),
                                      stdin_path=row.stdin or os.devnull,
                                      parse=parser_for(row)))
            if rec["status"] == "no result line":
                rec["status"] = ("output lacks the expected \"%s\"" % EXPECT[row.program]
                                 if row.figure == "time" else
                                 "no %s figure in the output" % RATES[row.figure][2])
        rec["speed"] = speed(rec)
        return rec

    fmts = row_formats(rows)

    def figure(rec):
        return "%16s  %10s" % (fmts[rec["bench"]](rec["speed"]), fmt_mib(rec["maxrss_kb"]))

    runs, other = bench.run_plan(plan, rounds, t_start, launch, figure)
    s, g, configs, versus = summarise(runs, rows, allocs)
    elapsed = time.monotonic() - t_start
    upstream = upstream_commit(folder)
    ctx = {"summary": s, "allocs": allocs, "rows": rows, "configs": configs, "versus": versus,
           "mode": mode, "rounds": rounds, "machine": bench.machine_info(), "versions": vers,
           "libs": libs, "notes": notes, "runs": runs, "elapsed": elapsed, "other_load": other,
           "folder": folder, "folder_bench": folder_bench, "upstream": upstream,
           "row_filter": row_filter,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    md_path = os.path.join(out_dir, "BENCHMARKS_SUITE.md")
    write_markdown(md_path, ctx)
    with open(json_path, "w") as f:
        json.dump({"mode": mode, "rounds": rounds, "date": ctx["date"], "machine": ctx["machine"],
                   "mimalloc_bench": {"folder": folder, "commit": upstream},
                   "versions": vers, "allocators": {a: libs[a] for a in allocs}, "notes": notes,
                   "rows": [r.name for r in rows], "runs": runs, "summary": s,
                   "hakmem_against": versus, "elapsed_s": round(elapsed, 1),
                   "other_processes_cpus": other}, f, indent=1)

    for c in configs:
        log("")
        log("%s: time or rate (time ratio to the best other allocator)" % c["title"])
        log(bench.text_table(s, c["geomeans"], c["rows"], allocs, "ops_per_sec", fmt_ops,
                             "time_ratio", "time", row_fmt=fmts))
        log("peak RSS (ratio to the lowest other allocator)")
        log(bench.text_table(s, c["geomeans"], c["rows"], allocs, "maxrss_kb", fmt_mib,
                             "mem_ratio", "mem"))
    if versus:
        log("")
        log("HAKMEM against each allocator, geometric means over %d rows "
            "(time: HAKMEM's / the other's; peak RSS: HAKMEM's / the other's):" % len(rows))
        for v in versus["all"]:
            log("  %-11s time %s  peak RSS %s" % (v["against"], fmt_ratio(v["time"]),
                                                  fmt_ratio(v["mem"])))
    if other is not None:
        log("other processes kept %.2f of %s CPUs busy on average during the runs%s"
            % (other, os.cpu_count(), ": figures disturbed" if other > 0.25 else ""))
    for note in notes:
        log("note: " + note)
    log("")
    log("wrote %s, %s" % (os.path.relpath(md_path, ROOT), os.path.relpath(json_path, ROOT)))
    failures = [r for r in runs if r["status"] != "ok"]
    return bench.exit_status(runs, failures, [r.name for r in rows], s, allocs, elapsed)


if __name__ == "__main__":
    bench.run_cli(main)
