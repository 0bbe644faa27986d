#!/usr/bin/env python3
"""The standard security set (mimalloc-bench's bench/security) under HAKMEM and glibc.

    scripts/security.py [--folder DIR] [--only A,B] [--rows A,B]

Each of the set's C programs commits one memory error (a double free, an
invalid free, an overflow, a use after free, ...) and prints NOT_CAUGHT if
the allocator let it pass.  They are built three times, as the set's own
CMakeLists.txt does, for blocks of 8 B (small), 4 KiB (medium) and 256 KiB
(large): 37 programs, 111 runs.  A run is caught when it does not print
NOT_CAUGHT (the allocator aborted it or made it fail).

The allocators: HAKMEM (preloaded), HAKMEM with HAKMEM_CHECK=1, and glibc
(no preload); --only picks some of them.  Prints one Markdown table: runs
caught, and of them the double frees and the invalid frees, then the runs
each allocator let pass.

  --folder DIR  the mimalloc-bench copy (default ../shared/mimalloc-bench;
                make security MIMALLOC_BENCH=DIR)
  --only A,B    allocators: HAKMEM, HAKMEM_CHECK, glibc
  --rows A,B    only these programs (file names without .c)

Exit status 2 when the folder is missing, 1 when a program does not build.
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_FOLDER = os.path.join(ROOT, "..", "shared", "mimalloc-bench")
BUILD_DIR = os.path.join(ROOT, "build", "security")
# The library of HAKTEST_BUILD (make test-debug: build/debug), or build's.
LIB = os.path.join(ROOT, os.environ.get("HAKTEST_BUILD") or "build", "libhakmem.so")
SIZES = (("small", "8"), ("medium", "4096"), ("large", "256*1024"))
# As the set's CMakeLists.txt: keep the errors the programs commit.
CFLAGS = ["-Wno-free-nonheap-object", "-fno-inline", "-fno-builtin-inline",
          "-fno-inline-small-functions", "-fno-ipa-pure-const", "-w"]
ALLOCATORS = {
    "HAKMEM": {"LD_PRELOAD": LIB},
    "HAKMEM_CHECK": {"LD_PRELOAD": LIB, "HAKMEM_CHECK": "1"},
    "glibc": {},
}
TIMEOUT_S = 20


def category(program):
    if program.startswith("double_free"):
        return "double free"
    if program.startswith("invalid_free"):
        return "invalid free"
    return "other"


def build(folder, programs):
    os.makedirs(BUILD_DIR, exist_ok=True)
    src_dir = os.path.join(folder, "bench", "security")
    built = []
    for prog in programs:
        for size_name, size in SIZES:
            exe = os.path.join(BUILD_DIR, "%s_%s" % (prog, size_name))
            src = os.path.join(src_dir, prog + ".c")
            if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
                cmd = ["cc"] + CFLAGS + ["-DALLOCATION_SIZE=%s" % size, "-I" + src_dir, src,
                                         "-o", exe]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    print("security: %s did not build:\n%s" % (src, r.stderr), file=sys.stderr)
                    sys.exit(1)
            built.append((prog, size_name, exe))
    return built


def caught(exe, env_add):
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "HAKMEM_CHECK"):
        env.pop(k, None)
    env.update(env_add)
    try:
        r = subprocess.run([exe], env=env, capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT_S,
                           cwd=BUILD_DIR)
        return "NOT_CAUGHT" not in r.stdout
    except subprocess.TimeoutExpired:
        return True                     # it did not get past the error either


def main():
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--folder", default=os.environ.get("MIMALLOC_BENCH") or DEFAULT_FOLDER)
    ap.add_argument("--only", default="HAKMEM,HAKMEM_CHECK,glibc")
    ap.add_argument("--rows", default="")
    ap.add_argument("-h", "--help", action="store_true")
    args = ap.parse_args()
    if args.help:
        print(__doc__)
        return 0
    src_dir = os.path.join(args.folder, "bench", "security")
    if not os.path.isfile(os.path.join(src_dir, "common.h")):
        print("security: no security set at %s (no bench/security/common.h); set "
              "MIMALLOC_BENCH=/path/to/mimalloc-bench (make security MIMALLOC_BENCH=...) or pass "
              "--folder" % args.folder, file=sys.stderr)
        return 2
    allocs = [a for a in args.only.split(",") if a]
    for a in allocs:
        if a not in ALLOCATORS:
            print("security: unknown allocator %s (known: %s)" % (a, ", ".join(ALLOCATORS)),
                  file=sys.stderr)
            return 2
    if any("LD_PRELOAD" in ALLOCATORS[a] for a in allocs) and not os.path.exists(LIB):
        print("security: %s is missing (make lib)" % LIB, file=sys.stderr)
        return 2
    programs = sorted(f[:-2] for f in os.listdir(src_dir) if f.endswith(".c"))
    if args.rows:
        wanted = args.rows.split(",")
        missing = [w for w in wanted if w not in programs]
        if missing:
            print("security: no such program: %s" % ", ".join(missing), file=sys.stderr)
            return 2
        programs = wanted
    runs = build(args.folder, programs)
    cats = ("double free", "invalid free")
    totals = {c: sum(1 for p, _, _ in runs if category(p) == c) for c in cats}
    result = {}
    for a in allocs:
        result[a] = {(p, s): caught(exe, ALLOCATORS[a]) for p, s, exe in runs}
    print("| | caught | %s |" % " | ".join("%s (%d)" % (c, totals[c]) for c in cats))
    print("|---|---|" + "---|" * len(cats))
    for a in allocs:
        row = result[a]
        n = sum(row.values())
        per = [sum(1 for (p, s), ok in row.items() if ok and category(p) == c) for c in cats]
        print("| %s | %d/%d | %s |" % (a, n, len(runs), " | ".join(str(x) for x in per)))
    for a in allocs:
        missed = sorted("%s_%s" % k for k, ok in result[a].items() if not ok)
        print("\n%s let pass (%d): %s" % (a, len(missed), ", ".join(missed) or "none"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:         # (piped into head)
        sys.exit(0)
