#!/usr/bin/env python3
"""HAKMEM side by side with glibc, mimalloc, jemalloc and tcmalloc.

    scripts/bench.py [--quick | --smoke] [--rounds N] [--out-dir DIR] [--json PATH]

Builds HAKMEM and the benchmarks (make -s all), installs the peer allocators
from Debian packages when they are missing (root only), then runs every
benchmark in SUITE under every allocator, the same binary each time, with the
allocator chosen by LD_PRELOAD.  Runs are interleaved round by round: in each
round every benchmark runs once under each allocator in turn, so drift on the
machine touches all allocators alike.

Per run it records the program's own throughput figure, the wall time and the
peak RSS of the benchmark process (ru_maxrss from os.wait4).  A run that
exits non-zero, prints no result line or times out is recorded as a failure.

Writes docs/BENCHMARKS.md (tables, method, commands to reproduce),
docs/benchmarks.svg (chart) and build/bench-results.json (every run).

  --quick      iteration arguments divided by 10, Larson 1 s (make bench QUICK=1)
  --smoke      1 round, HAKMEM and glibc only, minimal arguments (tests/test_bench.sh)
  --rounds N   rounds (default 3; smoke 1)
  --out-dir D  write BENCHMARKS.md and benchmarks.svg to D instead of docs/
               (and bench-results.json too, unless --json is given)
  --json P     raw per-run data (default build/bench-results.json)
  --only A,B   run only these allocators (names as in ALLOCATORS)
  --no-build   do not run make;  --no-install  do not install packages
  --list       print the benchmark names and exit

Exit status 1 when a HAKMEM run failed or a benchmark failed under every
allocator; a peer allocator's own failures are reported but do not fail it.

scripts/bench_suite.py (make bench-suite) runs the mimalloc-bench programs
with this file's runner: choose_allocators, usable_allocators,
preload_ignored, run_plan, run_once, summarise and the table formatters.
"""

import argparse
import ctypes
import datetime
import json
import math
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------------------
# The suite: ONE table, easy to adjust.
#
#   name            label used in tables, chart and JSON
#   program         build/bench/<program>
#   FULL arguments  the arguments of a full run (make bench)
#   scaled          indices of the iteration arguments; QUICK divides them by
#                   10 (integers: integer division, at least 1, so Larson's
#                   5 s -> 1 s; a number with a point is divided exactly)
#   smoke           the arguments of the smoke mode (tests/test_bench.sh)
#
# Budget: 5 allocators x 3 rounds = 15 runs per row.  FULL ~15 min in all,
# QUICK under 2 min, on this 2-core machine.
# ---------------------------------------------------------------------------
SUITE = [
    # name                 program            FULL arguments               scaled  smoke
    ("larson-1t",          "larson",          "5 8 1000 5000 100 4141 1",  (0,),   "1 8 1000 5000 100 4141 1"),
    ("larson-2t",          "larson",          "5 8 1000 5000 100 4141 2",  (0,),   "1 8 1000 5000 100 4141 2"),
    ("larson-4t",          "larson",          "5 8 1000 5000 100 4141 4",  (0,),   "1 8 1000 5000 100 4141 4"),
    ("random_mixed-16",    "random_mixed",    "80000000 16 42",            (0,),   "20000 16 42"),
    ("random_mixed-64",    "random_mixed",    "80000000 64 42",            (0,),   "20000 64 42"),
    ("random_mixed-256",   "random_mixed",    "80000000 256 42",           (0,),   "20000 256 42"),
    ("random_mixed-1024",  "random_mixed",    "70000000 1024 42",          (0,),   "20000 1024 42"),
    ("random_mixed-4096",  "random_mixed",    "40000000 4096 42",          (0,),   "20000 4096 42"),
    ("random_mixed-8192",  "random_mixed",    "30000000 8192 42",          (0,),   "20000 8192 42"),
    ("comprehensive",      "comprehensive",   "1.0",                       (0,),   "0.01"),
    ("fragment_stress",    "fragment_stress", "150 42",                    (0,),   "1 42"),
    ("phases",             "phases",          "1024 42 1000",              (0,),   "16 42 10"),
    ("large_churn",        "large_churn",     "100000 7",                  (0,),   "200 7"),
    ("realloc_grow",       "realloc_grow",    "200 4 8388608 42",          (0,),   "2 4 8388608 42"),
    ("buffer_keep",        "buffer_keep",     "8000 1000 524288 2097152 42", (0,), "20 10 524288 2097152 42"),
    ("xthread",            "xthread",         "2 6000000 512",             (1,),   "2 2000 512"),
    # slot_server and transfer: the same total work at every thread count, ~1-2 s each
    ("slot_server-1t",     "slot_server",     "1 48000 500",               (1,),   "1 20 500"),
    ("slot_server-2t",     "slot_server",     "2 24000 500",               (1,),   "2 20 500"),
    ("slot_server-4t",     "slot_server",     "4 12000 500",               (1,),   "4 20 500"),
    ("transfer-32t",       "transfer",        "32 200 1000",               (1,),   "32 2 50"),
    # scaling: 240 M operations in all (about 1 s).  With 60 M a 2-thread run
    # lasted 0.25 s and start-up noise read as poor scaling (1.3x; 1.9x long).
    ("scaling-1t",         "scaling",         "1 240000000 1024",          (1,),   "1 20000 1024"),
    ("scaling-2t",         "scaling",         "2 120000000 1024",          (1,),   "2 20000 1024"),
    ("scaling-4t",         "scaling",         "4 60000000 1024",           (1,),   "4 20000 1024"),
    ("scaling-8t",         "scaling",         "8 30000000 1024",           (1,),   "8 20000 1024"),
]

# What each program measures, for the report.
DESCRIPTIONS = {
    "larson": "Larson server simulation: sizes 8-1000 B, 5000 live blocks per thread, each "
              "step frees a random block and allocates a new one; the blocks are handed to "
              "fresh threads constantly, so most frees are of memory another thread allocated",
    "random_mixed": "one thread, 256 live blocks; each step frees a random slot and allocates "
                    "a size uniform in [size/2, size] in its place: the allocator's fast paths",
    "comprehensive": "one thread sweeping every size tier (8 B to 64 MiB) and every allocation "
                     "call: malloc churn per tier, posix_memalign/aligned_alloc, calloc, realloc "
                     "growth chains; blocks are touched and checked as a program would",
    "fragment_stress": "long- and short-lived objects interleaved while the size mix changes "
                       "each round (small, medium, mixed, odd sizes just above powers of two); "
                       "reports its own peak and final RSS",
    "large_churn": "16 live buffers of 64 KiB-8 MiB, one replaced at a time and written on every "
                   "page: reuse of freed Large and Huge memory without faulting it in again",
    "realloc_grow": "4 buffers grown side by side by realloc, 1-8 KiB a step, to sizes "
                    "log-uniform in 1 KiB-8 MiB, every new byte written, then freed; 200 rounds: "
                    "a read loop or string builder appending to buffers of unknown final size",
    "buffer_keep": "a scratch buffer of 512 KiB-2 MiB per item, every page written, and a result "
                   "of an eighth of that kept in a ring of 1000 while the buffer is freed: whether "
                   "freed buffers serve the next ones while results take some of their memory",
    "phases": "one process through a 1 GiB burst of 16 B-64 KiB blocks with 90% freed, then in a "
              "seeded order: 1 s with no allocator call, churn of 64 KiB-8 MiB buffers, a working "
              "set shifting from small to large blocks and back, producer/consumer threads in waves; "
              "time excludes the idle second",
    "xthread": "producer/consumer thread pairs passing blocks (8 B to max) through lock-free "
               "rings: every block is freed by a thread other than the one that allocated it",
    "slot_server": "threads each holding an array of 1000 blocks (8-1000 B); each round a "
                   "thread replaces 500 distinct random slots of its array (check, free, "
                   "malloc, tag), then at a barrier every thread passes its array on to the "
                   "next, so almost every free is of a block another thread allocated; with "
                   "one thread, the same loop with every free local",
    "transfer": "32 threads handing blocks (8-1000 B, one in 16 up to 16 KiB) to random other "
                "threads through lock-free mailboxes in batches of 32; the threads are "
                "replaced in 200 waves, and blocks still in flight when their allocating "
                "thread exits are freed by the next wave",
    "scaling": "threads with private working sets of 1000 blocks (8 B to max), no cross-thread "
               "frees; the same total work at every thread count",
}

# Failures of a peer allocator whose cause is known, keyed by (allocator, program).
KNOWN_ISSUES = {
    ("mimalloc", "comprehensive"):
        "mimalloc 2.0.9 (the Debian 12 package) returns blocks that are not aligned from "
        "`aligned_alloc(512, 512)` (size equal to the alignment at 256, 512 and 1024 B), "
        "microsoft/mimalloc#700, fixed upstream after 2.0.9; comprehensive checks every "
        "alignment and stops.",
}

LIBDIR = "/usr/lib/x86_64-linux-gnu"
# HAKMEM's build directory (library and benchmarks), relative to the repository
# root: HAKTEST_BUILD as in tests/run.sh, default build (tests/test_bench.sh
# under make test-debug: build/debug, with --no-build).
BUILD = os.environ.get("HAKTEST_BUILD") or "build"
# name, LD_PRELOAD value (None: the C library's own malloc), Debian package
ALLOCATORS = [
    ("HAKMEM",   BUILD + "/libhakmem.so",               None),
    ("glibc",    None,                                  "libc6"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2",          "libmimalloc2.0"),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2",          "libjemalloc2"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4",  "libtcmalloc-minimal4"),
]
SMOKE_ALLOCATORS = ("HAKMEM", "glibc")
COLORS = {"HAKMEM": "#d62728", "glibc": "#7f7f7f", "mimalloc": "#1f77b4",
          "jemalloc": "#2ca02c", "tcmalloc": "#ff7f0e"}
CHANGES_HEADING = "## Changes and what they gained"
CHANGES_PLACEHOLDER = "_Nothing recorded yet: each speed or memory change adds a line here " \
                      "(what changed, which rows moved, by how much)._"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg=""):
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# Suite selection
# ---------------------------------------------------------------------------
def bench_args(entry, mode):
    name, program, full, scaled, smoke = entry
    if mode == "smoke":
        return smoke.split()
    args = full.split()
    if mode == "quick":
        for i in scaled:
            if args[i].isdigit():          # counts and Larson's seconds stay integers
                args[i] = str(max(1, int(args[i]) // 10))
            else:                          # a fractional scale, e.g. comprehensive's
                args[i] = "%g" % (float(args[i]) / 10)
    return args


def bench_timeout(entry, args, mode):
    """Generous per-run limit: a hang becomes a failure instead of a stall."""
    if entry[1] == "larson":
        return int(args[0]) + 30
    return {"full": 180, "quick": 60, "smoke": 30}[mode]


# ---------------------------------------------------------------------------
# Build, install, verify
# ---------------------------------------------------------------------------
def run_quiet(cmd, **kw):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, **kw)
    except OSError as e:
        return subprocess.CompletedProcess(cmd, 127, stdout=str(e))


def build(notes):
    log("== building: make -s all")
    r = subprocess.run(["make", "-s", "all"], cwd=ROOT)
    if r.returncode != 0:
        notes.append("`make -s all` failed (exit %d); benchmarks whose binary exists were run "
                     "anyway, the others are shown as failures." % r.returncode)
        log("!! make -s all failed (exit %d); carrying on with what was built" % r.returncode)
    if not os.path.exists(os.path.join(ROOT, BUILD, "libhakmem.so")):
        sys.exit("%s/libhakmem.so was not built; cannot benchmark HAKMEM" % BUILD)


def install_peers(wanted, notes):
    """Install the Debian packages of missing peer allocators (root only)."""
    missing = [(n, lib, pkg) for n, lib, pkg in wanted if lib and not lib.startswith(BUILD + "/")
               and not os.path.exists(lib)]
    if not missing:
        return
    pkgs = [pkg for _, _, pkg in missing]
    names = ", ".join(n for n, _, _ in missing)
    if os.geteuid() != 0:
        notes.append("Not root: could not install %s (%s); those allocators are left out."
                     % (names, " ".join(pkgs)))
        log("!! not root: cannot install %s; continuing without them" % " ".join(pkgs))
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + pkgs
    log("== installing peer allocators: " + " ".join(cmd))
    r = run_quiet(cmd, env=env)
    if r.returncode != 0:
        log("   apt-get install failed; running apt-get update and retrying")
        run_quiet(["apt-get", "update"], env=env)
        r = run_quiet(cmd, env=env)
    if r.returncode != 0:
        tail = " ".join(r.stdout.strip().splitlines()[-2:])
        notes.append("apt-get install %s failed (%s); allocators whose library is missing are "
                     "left out." % (" ".join(pkgs), tail))
        log("!! apt-get install failed: " + tail)


def stage_build(programs):
    """Copies build/libhakmem.so and the benchmark binaries to a private directory.

    The runs use the copies, so a rebuild or `make clean` in the working tree
    while the suite runs (a long run, a shared tree) cannot mix two builds or
    pull binaries away mid-suite.  Returns the directory."""
    stage = tempfile.mkdtemp(prefix="hakmem-bench.")
    os.makedirs(os.path.join(stage, "bench"))
    shutil.copy2(os.path.join(ROOT, BUILD, "libhakmem.so"), os.path.join(stage, "libhakmem.so"))
    for prog in programs:
        src = os.path.join(ROOT, BUILD, "bench", prog)
        if os.access(src, os.X_OK):
            shutil.copy2(src, os.path.join(stage, "bench", prog))
    return stage


def preload_path(lib):
    if lib is None:
        return None
    return lib if os.path.isabs(lib) else os.path.join(ROOT, lib)


def verify_preload(name, lib):
    """None when the allocator really is in the process; otherwise the reason it is not."""
    path = preload_path(lib)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if path is None:
        r = run_quiet(["cat", "/proc/self/maps"], env=env)
        for _, other, _ in ALLOCATORS:
            if other and os.path.basename(os.path.realpath(preload_path(other))) in r.stdout:
                return "an allocator library is mapped without LD_PRELOAD"
        return None
    if not os.path.exists(path):
        return "%s not found" % path
    env["LD_PRELOAD"] = path
    r = run_quiet(["cat", "/proc/self/maps"], env=env)
    real = os.path.basename(os.path.realpath(path))
    if r.returncode != 0 or real not in r.stdout:
        return "%s is not mapped when preloaded: %s" % (path, r.stdout.strip()[:200])
    return None


def binary_loads(binary, lib):
    """True when the dynamic loader, asked to list what binary loads, lists lib first."""
    env = dict(os.environ, LD_TRACE_LOADED_OBJECTS="1", LD_PRELOAD=lib)
    r = run_quiet([binary], env=env)
    return r.returncode == 0 and lib in r.stdout


def versions(allocs):
    out = {}
    for name, lib, pkg in allocs:
        if name == "HAKMEM":
            r = run_quiet(["git", "describe", "--always", "--dirty", "--tags"], cwd=ROOT)
            out[name] = "git " + (r.stdout.strip() if r.returncode == 0 else "unknown")
        elif pkg is None:
            out[name] = "given with --lib: " + lib
        else:
            r = run_quiet(["dpkg-query", "-W", "-f", "${Version}", pkg])
            v = r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "unknown"
            if name == "glibc":
                out[name] = "%s (%s)" % (" ".join(os.confstr("CS_GNU_LIBC_VERSION").split()),
                                         "libc6 " + v)
            else:
                out[name] = "%s %s" % (pkg, v)
    return out


def cpu_snapshot():
    """(machine-wide busy CPU seconds, CPU seconds of this process and its reaped children)."""
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        own += ru.ru_utime + ru.ru_stime
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
        busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = None
    return busy, own


def other_load(before, after, seconds):
    """Average number of CPUs kept busy by other processes between two snapshots."""
    if before[0] is None or after[0] is None or seconds <= 0:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / seconds)


def machine_info():
    info = {"cpu": "unknown", "logical_cpus": os.cpu_count(), "kernel": platform.release(),
            "ram": "unknown", "compiler": "unknown"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram"] = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    except OSError:
        pass
    r = run_quiet(["cc", "--version"])
    if r.returncode == 0:
        info["compiler"] = r.stdout.splitlines()[0]
    return info


# ---------------------------------------------------------------------------
# Running one benchmark process and measuring it
# ---------------------------------------------------------------------------
# A direct child of this Python process would report Python's own peak RSS
# (>= 14 MB) as its ru_maxrss: exec keeps the larger of the old and new
# high-water marks.  So the benchmark is started as a grandchild, forked by
# a small /bin/sh, and this process reaps it as a child subreaper: its
# ru_maxrss then starts from the shell's few hundred KB, below any benchmark.
# The grandchild waits for a line on the shell's stdin (fd 3) before it execs
# the benchmark; the driver sends it once the shell has exited, so the shell
# can never reap the benchmark itself.  Arguments: stdout file, stderr file,
# preload (empty: none), stdin file, then the command.
SPAWN = ('o=$1 e=$2 p=$3 i=$4; shift 4; exec 3<&0; '
         'if [ -n "$p" ]; then LD_PRELOAD=$p; export LD_PRELOAD; fi; '
         '( read go <&3; exec "$@" <"$i" >"$o" 2>"$e" 3<&- ) & echo $!')
PR_SET_CHILD_SUBREAPER = 36
_subreaper = None


def become_subreaper():
    global _subreaper
    if _subreaper is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


_current_pid = None


def run_once(cmd, preload, timeout, cwd=ROOT, stdin_path=os.devnull, parse=None):
    """Runs cmd; returns a dict with status ('ok' or why it failed), measurements, output.

    parse(stdout) returns the figures of the run, None when the output lacks
    them (the run then fails with "no result line"); by default the
    ops_per_sec of a result line or of Larson's throughput line."""
    global _current_pid
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    res = {"status": "ok", "exit": None, "wall_s": None, "maxrss_kb": None,
           "utime_s": None, "stime_s": None}
    with tempfile.TemporaryDirectory(prefix="hakbench.") as tmp:
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        start = time.monotonic()
        rusage = None
        if become_subreaper():
            sh = subprocess.Popen(["/bin/sh", "-c", SPAWN, "sh", out_path, err_path,
                                   preload or "", stdin_path] + cmd,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                  cwd=cwd)
            line = sh.stdout.readline().strip()
            sh.stdout.close()
            sh.wait()
            pid = int(line) if line.isdigit() else None
            start = time.monotonic()
            try:
                sh.stdin.write(b"go\n")
                sh.stdin.close()
            except BrokenPipeError:
                pass
        else:  # RSS would include this process's own: not reported
            with open(out_path, "w") as o, open(err_path, "w") as e, open(stdin_path) as i:
                if preload:
                    env["LD_PRELOAD"] = preload
                p = subprocess.Popen(cmd, stdout=o, stderr=e, stdin=i, env=env, cwd=cwd)
            pid = p.pid
        if pid is None:
            res["status"] = "could not start"
        else:
            _current_pid = pid
            timed_out = wait_with_timeout(pid, timeout)
            try:
                _, status, rusage = os.wait4(pid, 0)
            except ChildProcessError:
                status = None
            _current_pid = None
            res["wall_s"] = round(time.monotonic() - start, 4)
            if status is None:
                res["status"] = "lost the process (reaped elsewhere)"
            else:
                if os.WIFEXITED(status):
                    res["exit"] = os.WEXITSTATUS(status)
                elif os.WIFSIGNALED(status):
                    res["exit"] = -os.WTERMSIG(status)
                if timed_out:
                    res["status"] = "timed out after %d s" % timeout
                elif res["exit"] != 0:
                    if res["exit"] is not None and res["exit"] < 0:
                        try:
                            sig = signal.Signals(-res["exit"]).name
                        except ValueError:
                            sig = str(-res["exit"])
                        res["status"] = "killed by signal %s" % sig
                    else:
                        res["status"] = "exit %s" % res["exit"]
            if rusage is not None:
                if _subreaper:
                    res["maxrss_kb"] = rusage.ru_maxrss
                res["utime_s"] = round(rusage.ru_utime, 4)
                res["stime_s"] = round(rusage.ru_stime, 4)
        with open(out_path, errors="replace") as f:
            out = f.read()
        with open(err_path, errors="replace") as f:
            err = f.read()
    figures = (parse or parse_output)(out)
    if figures is not None:
        res.update(figures)
    elif res["status"] == "ok":
        res["status"] = "no result line"
    if res["status"] != "ok":
        res["stdout_tail"] = out[-600:]
        res["stderr_tail"] = err[-600:]
    return res


def wait_with_timeout(pid, timeout):
    """Blocks until pid exits (without reaping it); kills it after timeout. True if killed."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if poller.poll(timeout * 1000):
                return False
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            return True
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return False
        except ChildProcessError:
            return False
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    return True


RESULT_RE = re.compile(r"^result:(.*)$", re.M)
LARSON_RE = re.compile(r"^Throughput = ([0-9.]+) operations per second", re.M)


def parse_output(out):
    """The figures of a result line (or Larson's throughput); None without either."""
    fields = {"ops_per_sec": None}
    m = RESULT_RE.findall(out)
    if m:
        for key, value in re.findall(r"(\w+)=([-+0-9.eE]+)", m[-1]):
            try:
                fields[key] = float(value)
            except ValueError:
                pass
    else:
        m = LARSON_RE.findall(out)
        if m:
            fields["ops_per_sec"] = float(m[-1])
    for key in ("ops", "peak_rss_kb", "final_rss_kb"):
        if fields.get(key) is not None:
            fields[key] = int(fields[key])
    return fields if fields["ops_per_sec"] is not None else None


# ---------------------------------------------------------------------------
# Choosing the allocators and running a plan of runs (scripts/bench_suite.py
# uses these too)
# ---------------------------------------------------------------------------
def choose_allocators(only, lib_specs, smoke=False):
    """ALLOCATORS (HAKMEM and glibc alone when smoke), plus each --lib NAME=PATH, cut to --only.

    Exits with a message on a bad --lib or an unknown name."""
    wanted = [a for a in ALLOCATORS if not smoke or a[0] in SMOKE_ALLOCATORS]
    for spec in lib_specs:
        name, _, path = spec.partition("=")
        if not name or not os.path.exists(path) or name in {a[0] for a in wanted}:
            sys.exit("--lib %s: want NEW_NAME=EXISTING_PATH" % spec)
        wanted.append((name, os.path.abspath(path), None))
    if only:
        names = only.split(",")
        unknown = set(names) - {a[0] for a in wanted}
        if unknown:
            sys.exit("unknown allocator(s): %s" % ", ".join(sorted(unknown)))
        wanted = [a for a in wanted if a[0] in names]
    return wanted


def usable_allocators(wanted, hakmem_lib, notes):
    """The wanted allocators whose preload really is mapped, HAKMEM's from hakmem_lib (a staged
    copy).  Returns (names, {name: preload as reported}, {name: preload to run}); the others
    are left out with a note.  Also sets up the peak-RSS measurement; exits if none is usable."""
    allocs, libs, run_libs = [], {}, {}
    for name, lib, pkg in wanted:
        run_lib = hakmem_lib if name == "HAKMEM" else preload_path(lib)
        why = verify_preload(name, run_lib)
        if why:
            notes.append("%s left out: %s." % (name, why))
            log("!! %s left out: %s" % (name, why))
            continue
        allocs.append(name)
        libs[name] = preload_path(lib)
        run_libs[name] = run_lib
    if not allocs:
        sys.exit("no allocator to benchmark")
    if not become_subreaper():
        notes.append("Could not become a child subreaper: peak RSS is not reported.")
        log("!! prctl(PR_SET_CHILD_SUBREAPER) failed: peak RSS will not be reported")
    return allocs, libs, run_libs


def preload_ignored(binaries, allocs, run_libs):
    """{(allocator, program)} whose binary ({program: path}) does not load the preload.

    A static or setuid binary would silently ignore LD_PRELOAD and measure the
    C library's malloc instead; a missing binary is the caller's to report."""
    ignored = set()
    for prog, binary in sorted(binaries.items()):
        for a in allocs:
            if run_libs[a] and os.access(binary, os.X_OK) and not binary_loads(binary, run_libs[a]):
                ignored.add((a, prog))
                log("!! %s does not load %s under LD_PRELOAD" % (binary, run_libs[a]))
    return ignored


def run_plan(plan, rounds, t_start, launch, figure):
    """Runs plan, a list of (round, row name, allocator, row), in order, one process at a time.

    launch(round, allocator, row) runs one and returns its record (with at
    least status and wall_s); figure(record) is the progress line's text for a
    successful run.  Logs each run with the elapsed time and an estimate of
    the time left (each row's mean so far).  Returns (records, the CPUs other
    processes kept busy meanwhile)."""
    runs = []
    durations = {}
    cpu_before = cpu_snapshot()
    t_runs = time.monotonic()
    width = max(len(p[1]) for p in plan) if plan else 0
    for i, (rnd, name, a, row) in enumerate(plan):
        rec = launch(rnd, a, row)
        runs.append(rec)
        if rec["wall_s"] is not None:
            durations.setdefault(name, []).append(rec["wall_s"])
        elapsed = time.monotonic() - t_runs
        remaining = 0.0
        avg_all = elapsed / (i + 1)
        for _, name2, _, _ in plan[i + 1:]:
            d = durations.get(name2)
            remaining += sum(d) / len(d) if d else avg_all
        fig = figure(rec) if rec["status"] == "ok" else "FAILED: %s" % rec["status"]
        log("[%3d/%d] %-*s %-9s round %d/%d  %s  %6.2f s  elapsed %s  ETA %s"
            % (i + 1, len(plan), width, name, a, rnd, rounds, fig, rec["wall_s"] or 0,
               fmt_secs(time.monotonic() - t_start), fmt_secs(remaining)))
        if rec["status"] != "ok":
            for line in (rec.get("stderr_tail") or "").strip().splitlines()[-3:]:
                log("          stderr: " + line)
    return runs, other_load(cpu_before, cpu_snapshot(), time.monotonic() - t_runs)


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------
def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarise(runs, benches, allocs):
    """Medians per (benchmark, allocator) and the ratios to the best other allocator."""
    s = {}
    for b in benches:
        s[b] = {}
        for a in allocs:
            mine = [r for r in runs if r["bench"] == b and r["allocator"] == a]
            ok = [r for r in mine if r["status"] == "ok"]
            rss = [r["maxrss_kb"] for r in ok if r["maxrss_kb"] is not None]
            ops = [r["ops_per_sec"] for r in ok]
            s[b][a] = {
                "runs": len(mine), "ok": len(ok),
                "ops_per_sec": statistics.median(ops) if ok else None,
                "ops_spread": (max(ops) - min(ops)) / statistics.median(ops)
                              if len(ops) > 1 and statistics.median(ops) > 0 else None,
                "maxrss_kb": statistics.median(rss) if rss else None,
                "final_rss_kb": median_or_none([r.get("final_rss_kb") for r in ok]),
            }
        for a in allocs:
            me = s[b][a]
            others = [s[b][o] for o in allocs if o != a]
            best_ops = max([o["ops_per_sec"] for o in others if o["ops_per_sec"]], default=None)
            low_rss = min([o["maxrss_kb"] for o in others if o["maxrss_kb"]], default=None)
            me["time_ratio"] = best_ops / me["ops_per_sec"] if best_ops and me["ops_per_sec"] else None
            me["mem_ratio"] = me["maxrss_kb"] / low_rss if low_rss and me["maxrss_kb"] else None
            best_all = max([s[b][o]["ops_per_sec"] or 0 for o in allocs])
            low_all = min([s[b][o]["maxrss_kb"] for o in allocs if s[b][o]["maxrss_kb"]],
                          default=None)
            me["speed_rel_best"] = me["ops_per_sec"] / best_all if me["ops_per_sec"] else None
            me["rss_rel_lowest"] = me["maxrss_kb"] / low_all if me["maxrss_kb"] and low_all else None
    g = {}
    for a in allocs:
        t = [s[b][a]["time_ratio"] for b in benches]
        m = [s[b][a]["mem_ratio"] for b in benches]
        g[a] = {"time": geomean(t), "time_n": sum(1 for v in t if v),
                "mem": geomean(m), "mem_n": sum(1 for v in m if v)}
    vs = None
    if "HAKMEM" in allocs and "mimalloc" in allocs:
        t, m = [], []
        for b in benches:
            h, mi = s[b]["HAKMEM"], s[b]["mimalloc"]
            if h["ops_per_sec"] and mi["ops_per_sec"]:
                t.append(mi["ops_per_sec"] / h["ops_per_sec"])
            if h["maxrss_kb"] and mi["maxrss_kb"]:
                m.append(h["maxrss_kb"] / mi["maxrss_kb"])
        vs = {"time": geomean(t), "time_n": len(t), "mem": geomean(m), "mem_n": len(m)}
    return s, g, vs


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------
def fmt_ops(v):
    if v is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            x = v / div
            return ("%.3g" % x if x < 100 else "%.0f" % x) + " " + unit
    return "%.0f" % v


def fmt_mib(kb):
    if kb is None:
        return "-"
    mib = kb / 1024
    return "%.1f MiB" % mib if mib < 100 else "%.0f MiB" % mib


def fmt_ratio(v):
    return "-" if v is None else "%.2f" % v


def fmt_secs(s):
    s = int(round(s))
    return "%d:%02d" % (s // 60, s % 60)


NOISY = 0.20  # (max - min) / median of a cell's runs above which the cell is marked


def cell(st, value, ratio, best, spread_mark=False):
    if st["ok"] == 0:
        return "✗ FAILED (0/%d)" % st["runs"] if st["runs"] else "not run"
    text = "%s (%s)" % (value, fmt_ratio(ratio))
    if best:
        text = "**%s**" % text
    if spread_mark and st.get("ops_spread") is not None and st["ops_spread"] > NOISY:
        text += " ~"
    if st["ok"] < st["runs"]:
        text += " [%d/%d ok]" % (st["ok"], st["runs"])
    return text


def text_table(s, g, benches, allocs, key, fmt, ratio_key, gkey, row_fmt=None):
    """A plain-text table of s[bench][allocator][key] (fmt(value), or row_fmt[bench](value))."""
    w = max(len(b) for b in benches + ["geomean ratio"]) + 2
    rows = []
    for b in benches:
        cells = []
        for a in allocs:
            st = s[b][a]
            if st["ok"] == 0:
                txt = "FAILED 0/%d" % st["runs"]
            else:
                show = (row_fmt or {}).get(b, fmt)
                txt = "%s (%s)" % (show(st[key]), fmt_ratio(st[ratio_key]))
                if st["ok"] < st["runs"]:
                    txt += "!"
            cells.append(txt)
        rows.append((b, cells))
    col = max([20] + [len(t) for _, cells in rows for t in cells]) + 2
    lines = ["%-*s" % (w, "") + "".join("%*s" % (col, a) for a in allocs)]
    lines += ["%-*s" % (w, b) + "".join("%*s" % (col, t) for t in cells) for b, cells in rows]
    lines.append("%-*s" % (w, "geomean ratio") + "".join("%*s" % (col, fmt_ratio(g[a][gkey]))
                                                          for a in allocs))
    return "\n".join(lines)


def md_table(s, g, benches, allocs, key, fmt, ratio_key, gkey, higher_better, row_fmt=None):
    """A markdown table of s[bench][allocator][key] (fmt(value), or row_fmt[bench](value)) with
    each cell's ratio, the best of each row in bold and the geometric means g[allocator][gkey]."""
    head = "| benchmark | " + " | ".join(allocs) + " |"
    sep = "|---|" + "---:|" * len(allocs)
    lines = [head, sep]
    for b in benches:
        vals = [s[b][a][key] for a in allocs if s[b][a][key] is not None]
        best = (max(vals) if higher_better else min(vals)) if vals else None
        show = (row_fmt or {}).get(b, fmt)
        cells = [cell(s[b][a], show(s[b][a][key]), s[b][a][ratio_key],
                      s[b][a][key] is not None and s[b][a][key] == best and len(vals) > 1,
                      spread_mark=higher_better)
                 for a in allocs]
        lines.append("| %s | %s |" % (b, " | ".join(cells)))
    n = len(benches)
    gm = []
    best_g = min([g[a][gkey] for a in allocs if g[a][gkey] is not None], default=None)
    for a in allocs:
        v = g[a][gkey]
        txt = ("**%s**" if v is not None and v == best_g else "%s") % fmt_ratio(v)
        if v is not None and g[a][gkey + "_n"] < n:
            txt += " (%d of %d rows)" % (g[a][gkey + "_n"], n)
        gm.append(txt)
    lines.append("| geometric mean of ratios | %s |" % " | ".join(gm))
    return "\n".join(lines)


def shell_cmd(preload_var, program, args):
    return "%sbuild/bench/%s %s" % (preload_var, program, " ".join(shlex.quote(a) for a in args))


def md_machine_rows(L, ctx, m, allocs):
    """The rest of the Run table (machine, time, load), the allocator table and
    the notes: shared by this report and scripts/bench_suite.py's."""
    L.append("| CPU | %s, %s logical CPUs |" % (m["cpu"], m["logical_cpus"]))
    L.append("| kernel | Linux %s |" % m["kernel"])
    L.append("| RAM | %s |" % m["ram"])
    L.append("| compiler | %s |" % m["compiler"])
    L.append("| total time | %s |" % fmt_secs(ctx["elapsed"]))
    other = ctx["other_load"]
    if other is not None:
        L.append("| other processes' CPU use during the runs | %.2f of %s CPUs on average%s |"
                 % (other, m["logical_cpus"], " (other work was running: the figures are "
                    "disturbed, the threaded rows most)" if other > 0.25 else ""))
    L.append("")
    L.append("| allocator | version | `LD_PRELOAD` |")
    L.append("|---|---|---|")
    for a in allocs:
        lib = ctx["libs"][a]
        L.append("| %s | %s | %s |" % (a, ctx["versions"].get(a, "?"),
                                       "`%s`" % lib if lib else "(none: the C library's malloc)"))
    for note in ctx["notes"]:
        L.append("")
        L.append("Note: " + note)


def md_failures(L, runs, figure, known, tails, tail_label):
    """The Failures section: every failed run with the last line of its output
    (the first of `tails` that has one), after the known causes from `known`,
    keyed by (allocator, program).  Shared with scripts/bench_suite.py."""
    failures = [r for r in runs if r["status"] != "ok"]
    L.append("")
    L.append("## Failures")
    L.append("")
    if not failures:
        L.append("None: every run exited 0 and printed its %s." % figure)
        return
    L.append("Each failed run (it counts in no median):")
    L.append("")
    for key in sorted({(r["allocator"], r["program"]) for r in failures}):
        if key in known:
            L.append("- Known cause for %s on %s: %s" % (key[0], key[1], known[key]))
    for r in failures:
        text = next((r.get(k) for k in tails if r.get(k)), "") or ""
        detail = text.strip().splitlines()
        L.append("- %s under %s, round %d: %s%s — `%s`"
                 % (r["bench"], r["allocator"], r["round"], r["status"],
                    (" (%s%s)" % (tail_label, detail[-1][:160])) if detail else "", r["command"]))


def write_markdown(path, ctx):
    s, g, vs = ctx["summary"], ctx["geomeans"], ctx["vs_mimalloc"]
    benches, allocs, mode = ctx["benches"], ctx["allocs"], ctx["mode"]
    m = ctx["machine"]
    old_changes = None
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        found = re.search(r"^" + re.escape(CHANGES_HEADING) + r"[ \t]*$", text, re.M)
        if found:
            old_changes = text[found.start():]
    L = []
    L.append("# HAKMEM benchmarks")
    L.append("")
    L.append("HAKMEM side by side with the C library's malloc (glibc), mimalloc, jemalloc and "
             "tcmalloc: the same benchmark binaries, the allocator chosen by `LD_PRELOAD`. "
             "Generated by `scripts/bench.py` (`make bench`); do not edit by hand except the "
             "last section, which is carried over. The standard mimalloc-bench programs (larson, "
             "xmalloc-test, cache-scratch, cfrac, espresso, ...) are in "
             "[BENCHMARKS_SUITE.md](BENCHMARKS_SUITE.md) (`make bench-suite`).")
    L.append("")
    L.append("![speed and peak RSS relative to the best allocator](benchmarks.svg)")
    L.append("")
    L.append("## Run")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append("| date | %s |" % ctx["date"])
    L.append("| mode | %s (%s) |" % (mode, {"full": "`make bench`", "quick": "`make bench QUICK=1`: "
                                         "iteration arguments / 10, Larson 1 s",
                                         "smoke": "`scripts/bench.py --smoke`: minimal arguments, "
                                         "a test of the instrument, not a measurement"}[mode]))
    L.append("| rounds | %d (each benchmark under each allocator %s, interleaved) |"
             % (ctx["rounds"], "once" if ctx["rounds"] == 1 else "%d times" % ctx["rounds"]))
    md_machine_rows(L, ctx, m, allocs)
    L.append("")
    L.append("## Speed")
    L.append("")
    L.append("Median throughput in operations per second as the benchmark itself reports it "
             "(higher is better). In brackets, the time ratio to the best of the *other* "
             "allocators on that row: best other ops/s ÷ own ops/s, so 1.00 or less means at "
             "least as fast as every other allocator, 1.25 means the fastest other one does the "
             "same work in 80%% of the time. Bold: the fastest on the row. `~`: a noisy figure, "
             "the rounds differ by more than %d%% of the median (fastest minus slowest)."
             % int(NOISY * 100))
    L.append("")
    L.append(md_table(s, g, benches, allocs, "ops_per_sec", fmt_ops, "time_ratio", "time", True))
    L.append("")
    L.append("## Memory")
    L.append("")
    L.append("Median peak resident set size of the benchmark process (`ru_maxrss` from "
             "`wait4`; lower is better). In brackets, own peak RSS ÷ the lowest peak RSS among "
             "the *other* allocators on that row. Bold: the lowest on the row.")
    L.append("")
    L.append(md_table(s, g, benches, allocs, "maxrss_kb", fmt_mib, "mem_ratio", "mem", False))
    final_rows = [b for b in benches if any(s[b][a]["final_rss_kb"] is not None for a in allocs)]
    if final_rows:
        L.append("")
        L.append("RSS at the end of the run as the program reports it (`final_rss_kb`: memory "
                 "given back to the OS after the frees; lower is better):")
        L.append("")
        L.append("| benchmark | " + " | ".join(allocs) + " |")
        L.append("|---|" + "---:|" * len(allocs))
        for b in final_rows:
            L.append("| %s | %s |" % (b, " | ".join(fmt_mib(s[b][a]["final_rss_kb"])
                                                    for a in allocs)))
    L.append("")
    L.append("## Summary")
    L.append("")
    L.append("Geometric mean over the rows of each allocator's ratio to the best other "
             "allocator (1.00 or less: never beaten on average):")
    L.append("")
    L.append("| allocator | time ratio | peak RSS ratio |")
    L.append("|---|---:|---:|")
    for a in allocs:
        L.append("| %s | %s | %s |" % (a, fmt_ratio(g[a]["time"]), fmt_ratio(g[a]["mem"])))
    if vs:
        L.append("")
        L.append("HAKMEM against mimalloc alone, geometric mean over %d rows: time ratio "
                 "**%s** (mimalloc ops/s ÷ HAKMEM ops/s; below 1 means HAKMEM is faster), "
                 "peak RSS ratio **%s** (HAKMEM ÷ mimalloc; below 1 means HAKMEM uses less)."
                 % (vs["time_n"], fmt_ratio(vs["time"]), fmt_ratio(vs["mem"])))
    md_failures(L, ctx["runs"], "result line", KNOWN_ISSUES, ("stderr_tail",), "stderr: ")
    L.append("")
    L.append("## Benchmarks and how to reproduce")
    L.append("")
    L.append("Everything above: `make bench` (full, ~15 min) or `make bench QUICK=1` (~2 min); "
             "`scripts/bench.py --help` for the options. The raw data of every run is in "
             "`build/bench-results.json`. One benchmark by hand, from the repository root after "
             "`make`, with `LIB` one of the `LD_PRELOAD` values above (leave `LD_PRELOAD` out for "
             "glibc):")
    L.append("")
    L.append("| benchmark | command (%s mode) |" % mode)
    L.append("|---|---|")
    for entry in ctx["suite"]:
        L.append("| %s | `%s` |" % (entry[0], shell_cmd("LD_PRELOAD=$LIB ", entry[1],
                                                          bench_args(entry, mode))))
    L.append("")
    for prog in sorted({e[1] for e in ctx["suite"]}):
        L.append("- `%s`: %s." % (prog, DESCRIPTIONS.get(prog, "see bench/%s.c" % prog)))
    L.append("")
    L.append("## Method")
    L.append("")
    L.append("- Every allocator runs the same binaries (built once by `make`, `-O2`); only "
             "`LD_PRELOAD` changes. The driver runs private copies of `build/libhakmem.so` and "
             "`build/bench/*` taken right after the build, so a rebuild during the run cannot "
             "mix two builds. Before measuring, each preload is checked to be really mapped "
             "(`cat /proc/self/maps` under it) and to be loaded by every benchmark binary "
             "(`LD_TRACE_LOADED_OBJECTS=1`).")
    L.append("- Interleaved: each round runs every benchmark once under each allocator in turn "
             "(%s, then again), so slow drift on the machine affects all allocators alike. The "
             "figures are medians over the rounds; a failed run is listed above and left out "
             "of the median, never silently dropped." % " ".join(allocs))
    L.append("- Throughput is the program's own figure (operations counted by the program over "
             "its own timed section); wall time per run is in the JSON.")
    L.append("- Peak RSS is `ru_maxrss` of the benchmark process from `wait4`. The driver starts "
             "each benchmark through `/bin/sh` and reaps it as a child subreaper, because a "
             "direct child of the Python driver would inherit the driver's own high-water mark "
             "(~14 MiB) across `exec`. About 1.5 MiB of every figure is the program and the C "
             "library, so ratios on small-footprint rows mostly compare the allocators' fixed "
             "overheads.")
    L.append("- The machine is a small shared virtual machine (%s logical CPUs): expect a few "
             "percent of noise between runs, more on the threaded rows (threads beyond the core "
             "count time-share). Differences under ~5%% are not meaningful; the QUICK mode's "
             "shorter runs are noisier still." % m["logical_cpus"])
    L.append("")
    if old_changes is not None:
        L.append(old_changes.rstrip("\n"))
    else:
        L.append(CHANGES_HEADING)
        L.append("")
        L.append(CHANGES_PLACEHOLDER)
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


# ---------------------------------------------------------------------------
# Chart
# ---------------------------------------------------------------------------
def esc(t):
    return str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_max(v):
    for step in (1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= step:
            return step
    return math.ceil(v)


def write_svg(path, ctx):
    s, benches, allocs = ctx["summary"], ctx["benches"], ctx["allocs"]
    n = len(allocs)
    bar_h, bar_gap, group_pad = 9, 1, 12
    group_h = n * (bar_h + bar_gap) + group_pad
    label_w, panel_w, panel_gap, right_pad = 150, 470, 60, 20
    top = 118
    plot_h = len(benches) * group_h
    width = label_w + 2 * panel_w + panel_gap + right_pad
    height = top + plot_h + 60
    mem_vals = [s[b][a]["rss_rel_lowest"] for b in benches for a in allocs
                if s[b][a]["rss_rel_lowest"] is not None]
    mem_cap = 4.0
    mem_max = nice_max(min(max(mem_vals, default=1.0), mem_cap))
    panels = [
        ("Speed relative to the fastest (1.0 = fastest; longer is better)",
         "speed_rel_best", 1.0, [0, 0.25, 0.5, 0.75, 1.0]),
        ("Peak RSS relative to the lowest (1.0 = lowest; shorter is better)",
         "rss_rel_lowest", mem_max, None),
    ]
    o = []
    o.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
             'font-family="DejaVu Sans, Arial, Helvetica, sans-serif">' % (width, height, width, height))
    o.append('<rect width="100%" height="100%" fill="white"/>')
    o.append('<text x="%d" y="26" font-size="18" font-weight="bold">HAKMEM versus %s</text>'
             % (label_w - 140, esc(", ".join(a for a in allocs if a != "HAKMEM"))))
    m = ctx["machine"]
    busy = ""
    if ctx["other_load"] is not None and ctx["other_load"] > 0.25:
        busy = " Other processes used %.1f of the CPUs meanwhile: noisy figures." % ctx["other_load"]
    o.append('<text x="%d" y="46" font-size="11" fill="#444">%s mode, median of %d round%s, %s; '
             '%s, %s CPUs, Linux %s. Details: docs/BENCHMARKS.md.%s</text>'
             % (label_w - 140, ctx["mode"], ctx["rounds"], "" if ctx["rounds"] == 1 else "s",
                esc(ctx["date"][:10]), esc(m["cpu"]),
                m["logical_cpus"], esc(m["kernel"]), esc(busy)))
    # legend
    x = label_w - 140
    for a in allocs:
        o.append('<rect x="%d" y="60" width="14" height="14" fill="%s"/>' % (x, COLORS.get(a, "#000")))
        o.append('<text x="%d" y="72" font-size="13"%s>%s</text>'
                 % (x + 19, ' font-weight="bold"' if a == "HAKMEM" else "", esc(a)))
        x += 45 + 9 * len(a)
    # group stripes and labels
    for gi, b in enumerate(benches):
        y0 = top + gi * group_h
        if gi % 2 == 0:
            o.append('<rect x="4" y="%d" width="%d" height="%d" fill="#f3f3f3"/>'
                     % (y0 - group_pad // 2, width - 8, group_h))
        o.append('<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>'
                 % (label_w - 8, y0 + (group_h - group_pad) // 2 + 4, esc(b)))
    for pi, (title, key, vmax, ticks) in enumerate(panels):
        px = label_w + pi * (panel_w + panel_gap)
        pw = panel_w - 40  # room for the value labels after the longest bar
        o.append('<text x="%d" y="%d" font-size="12" font-weight="bold">%s</text>'
                 % (px, top - 18, esc(title)))
        if ticks is None:
            step = 0.5 if vmax <= 2 else 1 if vmax <= 5 else 2
            ticks = [i * step for i in range(int(vmax / step + 1e-9) + 1)]
        axis_y = top + plot_h - group_pad // 2
        for t in ticks:
            tx = px + pw * t / vmax
            color = "#888" if t == 1.0 else "#ddd"
            dash = ' stroke-dasharray="4,3"' if t == 1.0 else ""
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"%s/>'
                     % (tx, top - 8, tx, axis_y, color, dash))
            o.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%g</text>'
                     % (tx, axis_y + 15, t))
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (px, top - 8, px, axis_y))
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (px, axis_y, px + pw, axis_y))
        o.append('<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>'
                 % (px + pw // 2, axis_y + 34,
                    "ops/s ÷ best ops/s on the row" if pi == 0 else
                    "peak RSS ÷ lowest peak RSS on the row" +
                    (" (bars past %g cut, value shown)" % vmax
                     if max(mem_vals, default=0) > vmax else "")))
        for gi, b in enumerate(benches):
            y0 = top + gi * group_h
            for ai, a in enumerate(allocs):
                y = y0 + ai * (bar_h + bar_gap)
                st = s[b][a]
                v = st[key]
                if v is None:
                    o.append('<text x="%d" y="%d" font-size="9" fill="#c00">%s</text>'
                             % (px + 3, y + bar_h - 1, "failed" if st["runs"] else "not run"))
                    continue
                w = pw * min(v, vmax) / vmax
                o.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s, %s: %.2f'
                         '</title></rect>' % (px, y, w, bar_h, COLORS.get(a, "#000"), esc(b), esc(a), v))
                label = "%.2f" % v
                if v > vmax:
                    label = "%.1f ▸" % v
                weight = ' font-weight="bold"' if a == "HAKMEM" else ""
                o.append('<text x="%.1f" y="%d" font-size="9"%s>%s</text>'
                         % (px + w + 3, y + bar_h - 1, weight, label))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(usage="%(prog)s [options]", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--out-dir")
    ap.add_argument("--json")
    ap.add_argument("--only")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                    help="also run this preload library under NAME (an A/B build, say)")
    opts = ap.parse_args()
    mode = "smoke" if opts.smoke else "quick" if opts.quick else "full"
    rounds = opts.rounds if opts.rounds else (1 if mode == "smoke" else 3)
    if rounds < 1:
        sys.exit("--rounds must be at least 1")
    if opts.list:
        for e in SUITE:
            print(e[0])
        return 0
    out_dir = opts.out_dir or os.path.join(ROOT, "docs")
    json_path = opts.json or (os.path.join(opts.out_dir, "bench-results.json") if opts.out_dir
                              else os.path.join(ROOT, "build/bench-results.json"))
    wanted = choose_allocators(opts.only, opts.lib, smoke=mode == "smoke")

    t_start = time.monotonic()
    notes = []
    if not opts.no_build:
        build(notes)
    if mode != "smoke" and not opts.no_install:
        install_peers(wanted, notes)
    if not os.path.exists(os.path.join(ROOT, BUILD, "libhakmem.so")):
        sys.exit("%s/libhakmem.so does not exist (run make)" % BUILD)
    vers = versions(wanted)
    stage = stage_build(sorted({e[1] for e in SUITE}))
    try:
        return run_suite(mode, rounds, wanted, notes, vers, stage, out_dir, json_path,
                         t_start)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run_suite(mode, rounds, wanted, notes, vers, stage, out_dir, json_path, t_start):
    allocs, libs, run_libs = usable_allocators(wanted, os.path.join(stage, "libhakmem.so"),
                                               notes)
    programs = sorted({e[1] for e in SUITE})
    ignored = preload_ignored({p: os.path.join(stage, "bench", p) for p in programs},
                              allocs, run_libs)
    log("== allocators: " + ", ".join("%s (%s)" % (a, libs[a] or "no preload") for a in allocs))

    benches = [e[0] for e in SUITE]
    plan = [(r, e[0], a, e) for r in range(1, rounds + 1) for e in SUITE for a in allocs]
    log("== %s mode: %d benchmarks x %d allocators x %d rounds = %d runs"
        % (mode, len(SUITE), len(allocs), rounds, len(plan)))

    def launch(rnd, a, entry):
        name, program = entry[0], entry[1]
        args = bench_args(entry, mode)
        binary = os.path.join(stage, "bench", program)
        preload_var = "LD_PRELOAD=%s " % libs[a] if libs[a] else ""
        rec = {"bench": name, "program": program, "args": args, "allocator": a, "round": rnd,
               "preload": libs[a], "command": shell_cmd(preload_var, program, args)}
        if not os.access(binary, os.X_OK) or (a, program) in ignored:
            why = ("build/bench/%s was not built" % program if (a, program) not in ignored
                   else "LD_PRELOAD not honoured by build/bench/%s" % program)
            rec.update({"status": why, "wall_s": None, "maxrss_kb": None, "exit": None})
        else:
            rec.update(run_once([binary] + args, run_libs[a], bench_timeout(entry, args, mode)))
        rec.setdefault("ops_per_sec", None)
        return rec

    def figure(rec):
        return "%9s ops/s  %10s" % (fmt_ops(rec["ops_per_sec"]), fmt_mib(rec["maxrss_kb"]))

    runs, other = run_plan(plan, rounds, t_start, launch, figure)
    s, g, vs = summarise(runs, benches, allocs)
    elapsed = time.monotonic() - t_start
    ctx = {"summary": s, "geomeans": g, "vs_mimalloc": vs, "benches": benches, "allocs": allocs,
           "mode": mode, "rounds": rounds, "machine": machine_info(), "versions": vers,
           "libs": libs, "notes": notes, "runs": runs, "suite": SUITE, "elapsed": elapsed,
           "other_load": other,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    md_path = os.path.join(out_dir, "BENCHMARKS.md")
    svg_path = os.path.join(out_dir, "benchmarks.svg")
    write_markdown(md_path, ctx)
    write_svg(svg_path, ctx)
    with open(json_path, "w") as f:
        json.dump({"mode": mode, "rounds": rounds, "date": ctx["date"], "machine": ctx["machine"],
                   "versions": ctx["versions"], "allocators": {a: libs[a] for a in allocs},
                   "notes": notes, "benchmarks": benches, "runs": runs, "summary": s,
                   "geomean_ratios": g, "hakmem_vs_mimalloc": vs, "elapsed_s": round(elapsed, 1),
                   "other_processes_cpus": other},
                  f, indent=1)

    log("")
    log("Speed: median ops/s (time ratio to the best other allocator; <= 1.00: at least as fast)")
    log(text_table(s, g, benches, allocs, "ops_per_sec", fmt_ops, "time_ratio", "time"))
    log("")
    log("Memory: median peak RSS (ratio to the lowest other allocator)")
    log(text_table(s, g, benches, allocs, "maxrss_kb", fmt_mib, "mem_ratio", "mem"))
    if vs:
        log("")
        log("HAKMEM vs mimalloc (geomean over %d rows): time ratio %s, peak RSS ratio %s"
            % (vs["time_n"], fmt_ratio(vs["time"]), fmt_ratio(vs["mem"])))
    failures = [r for r in runs if r["status"] != "ok"]
    if other is not None:
        log("other processes kept %.2f of %s CPUs busy on average during the runs%s"
            % (other, os.cpu_count(), ": figures disturbed" if other > 0.25 else ""))
    for note in notes:
        log("note: " + note)
    log("")
    log("wrote %s, %s, %s" % (os.path.relpath(md_path, ROOT), os.path.relpath(svg_path, ROOT),
                              os.path.relpath(json_path, ROOT)))
    return exit_status(runs, failures, benches, s, allocs, elapsed)


def exit_status(runs, failures, names, s, allocs, elapsed):
    """Lists the failed runs and returns the exit status: non-zero when HAKMEM
    failed a run, or a row failed under every allocator (the program itself is
    broken).  A peer allocator's own failure is reported above and in the
    report, but is not ours to fail on.  Shared with scripts/bench_suite.py."""
    if failures:
        log("%d of %d runs FAILED:" % (len(failures), len(runs)))
        for r in failures:
            log("  %s / %s round %d: %s   (%s)" % (r["bench"], r["allocator"], r["round"],
                                                  r["status"], r["command"]))
    log("total elapsed %s" % fmt_secs(elapsed))
    broken = [b for b in names if all(s[b][a]["ok"] == 0 for a in allocs)]
    hak_failed = [r for r in failures if r["allocator"] == "HAKMEM"]
    if hak_failed or broken:
        log("FAILED: %d HAKMEM run(s) failed%s" % (len(hak_failed), "; no allocator completed: "
                                                    + ", ".join(broken) if broken else ""))
        return 1
    return 0


def run_cli(main_fn):
    """Runs main_fn as the program; on Ctrl-C kills the benchmark it waits for."""
    try:
        sys.exit(main_fn())
    except KeyboardInterrupt:
        if _current_pid:
            try:
                os.kill(_current_pid, signal.SIGKILL)
            except OSError:
                pass
        sys.exit(130)


if __name__ == "__main__":
    run_cli(main)
