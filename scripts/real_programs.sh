#!/usr/bin/env bash
# Real Debian programs with and without LD_PRELOAD=build/libhakmem.so; called
# by `make real`.  Each program runs the same workload twice; outputs and exit
# statuses must be identical, and nothing may crash or hang (every run has a
# timeout).  Programs:
#   python3  dicts/lists/sets, json and re round trips, sorts, threads (~10 s of CPU)
#   gcc      `make -j2 lib benches` of HAKMEM itself with make, gcc, as and ld
#            under HAKMEM; symbol tables (nm) and bytes of every object compared
#            with a build made without it; the new library preloaded into ls
#   git      clone of this repository, log --stat, commits, gc, fsck, blame, grep
#   redis    redis-server under HAKMEM driven by redis-benchmark and redis-cli
#            (data checked against a server without HAKMEM), clean shutdown
#   sqlite3  500k inserts in transactions, indexes, joins, aggregates, vacuum
# Prints one line per program (identical / crashed / hung / differs / missing),
# ends with "real programs: N/N identical"; exits non-zero on any failure.
# A missing program (redis-server, sqlite3 ...) is a failure: install it with
#   sudo apt-get install -y redis-server redis-tools sqlite3
# Settings: REAL_TIMEOUT (seconds per run, default 1200), REAL_ONLY (names to
# run, e.g. "git sqlite3"), REAL_KEEP=1 (keep the work directory).
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
LIB=${HAKTEST_LIB:-"$ROOT/build/libhakmem.so"}
TMO=${REAL_TIMEOUT:-1200}
ONLY=${REAL_ONLY:-"python3 gcc git redis sqlite3"}

if [ ! -f "$LIB" ]; then
    echo "real: $LIB is missing (run make lib)"
    echo "real programs: 0/0 identical"
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hak-real.XXXXXX")
REDIS_PIDS=()
cleanup() {
    local p
    for p in "${REDIS_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    if [ "${REAL_KEEP:-0}" = 1 ]; then echo "real: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
unset LD_PRELOAD HAKMEM_STATS HAKMEM_CHECK HAKMEM_FAULT_EVERY HAKMEM_FAULT_BUDGET_MB
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0 HOME="$WORK/home"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$WORK/home/.gitconfig"
export GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=tester@example.com
mkdir -p "$HOME"

# The library must really be loaded by a preloaded process.
# shellcheck disable=SC2002  # cat must be the preloaded process reading its own maps
if [ "$(LD_PRELOAD="$LIB" cat /proc/self/maps | grep -c libhakmem)" -le 0 ]; then
    echo "real: libhakmem.so does not appear in /proc/self/maps under LD_PRELOAD"
    echo "real programs: 0/0 identical"
    exit 1
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

total=0 good=0 failed=()
# report <name> <identical|crashed|hung|differs|missing> <detail>
report() {
    total=$((total + 1))
    if [ "$2" = identical ]; then good=$((good + 1)); else failed+=("$1"); fi
    printf '%-9s %-8s %s\n' "$2" "$1" "$3"
}
wanted() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
need() {  # <name> <commands...>: reports "missing" and returns 1 if one is absent
    local name=$1 c; shift
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            report "$name" missing "$c not installed (sudo apt-get install -y redis-server redis-tools sqlite3)"
            return 1
        fi
    done
}

# run <dir> <preload or ""> <command...>: runs the command in <dir> with a
# timeout; writes <dir>/out, <dir>/err, <dir>/rc, <dir>/secs.
run() {
    local dir=$1 pre=$2; shift 2
    mkdir -p "$dir"
    local t0; t0=$(date +%s.%N)
    if [ -n "$pre" ]; then
        (cd "$dir" && LD_PRELOAD="$pre" timeout -k 10 "$TMO" "$@") >"$dir/out" 2>"$dir/err"
    else
        (cd "$dir" && timeout -k 10 "$TMO" "$@") >"$dir/out" 2>"$dir/err"
    fi
    echo $? >"$dir/rc"
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }' >"$dir/secs"
}

# Status of a run under HAKMEM: "" if it exited normally, else why not.
abnormal() {  # <rc> <stderr file>
    local rc=$1
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "hung (killed after ${TMO}s)"; return; fi
    if [ "$rc" -gt 128 ]; then echo "crashed (signal $((rc - 128)))"; return; fi
    if grep -q '^HAKMEM: ' "$2" 2>/dev/null; then echo "crashed ($(grep -m1 '^HAKMEM: ' "$2"))"; return; fi
    echo ""
}

# compare <name> <base dir> <hak dir> <summary>: the common verdict on two runs.
compare() {
    local name=$1 b=$2 h=$3 summary=$4
    local rb rh why
    rb=$(cat "$b/rc") rh=$(cat "$h/rc")
    local times
    times="without $(cat "$b/secs")s, HAKMEM $(cat "$h/secs")s"
    why=$(abnormal "$rh" "$h/err")
    if [ -n "$why" ]; then
        report "$name" "${why%% *}" "($times) ${why#* }; stderr: $(tail -n 3 "$h/err" | tr '\n' ' ' | cut -c1-300)"
        return
    fi
    local problems=()
    [ "$rb" = 0 ] || problems+=("exit status $rb without HAKMEM (workload problem): $(tail -n 2 "$b/err" | tr '\n' ' ' | cut -c1-200)")
    [ "$rb" = "$rh" ] || problems+=("exit status $rh under HAKMEM, $rb without")
    cmp -s "$b/out" "$h/out" || problems+=("stdout differs")
    cmp -s "$b/err" "$h/err" || problems+=("stderr differs")
    [ -s "$b/out" ] || problems+=("no output (workload problem)")
    if [ ${#problems[@]} -eq 0 ]; then
        report "$name" identical "($times) $summary"
    else
        report "$name" differs "($times) $(IFS=';'; echo "${problems[*]}")"
        diff <(head -c 20000 "$b/out") <(head -c 20000 "$h/out") | head -n 10 | sed 's/^/      /'
        diff <(head -c 20000 "$b/err") <(head -c 20000 "$h/err") | head -n 10 | sed 's/^/      /'
    fi
}

# ------------------------------------------------------------------ python3
python_case() {
    local d="$WORK/python"
    mkdir -p "$d"
    cat >"$d/work.py" <<'EOF'
import concurrent.futures, hashlib, json, re, sys

def lcg(x):
    return (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF

def build(seed, n):
    d, x = {}, seed
    for i in range(n):
        x = lcg(x)
        k = "k%07d-%s" % (i, format(x % 65536, "x"))
        d[k] = {"i": i, "v": x % 1000003, "s": "w" * (x % 23) + str(x % 97),
                "l": [x % 7, x % 11, (x >> 20) % 13], "f": (x % 10007) / 7.0}
    return d

def task(seed):
    d = build(seed, 60000)
    s = json.dumps(d, sort_keys=True)
    back = json.loads(s)
    assert back == d
    counts = {}
    for w, num in re.findall(r'"s": "(w*)(\d+)"', s):
        counts[len(w), num] = counts.get((len(w), num), 0) + 1
    text = re.sub(r"k(\d+)-([0-9a-f]+)", lambda m: m.group(2)[::-1] + m.group(1), s[:400000])
    ordered = sorted(back.items(), key=lambda kv: (kv[1]["v"] % 1009, kv[1]["s"], kv[0]))
    st = {kv[1]["v"] % 50021 for kv in ordered}
    lst = [kv[1]["l"][0] * kv[1]["i"] for kv in ordered]
    lst.sort(reverse=True)
    h = hashlib.sha256()
    for part in (s, text, repr(sorted(counts.items())[:1000]), repr(sorted(st)[::50]), repr(lst[::100])):
        h.update(part.encode())
    return h.hexdigest()

def churn(n):
    # short-lived objects of many sizes; lists that grow and shrink
    x, acc, live = 1, 0, []
    for i in range(n):
        x = lcg(x)
        obj = bytearray(x % 5000) if i % 3 else ("z" * (x % 300)).encode()
        live.append(obj)
        if len(live) > 2000:
            del live[x % len(live)]
        acc = (acc * 31 + len(obj)) % 1000000007
    big = [list(range(k % 1000)) for k in range(20000)]
    return acc + sum(len(b) for b in big)

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
    digests = list(ex.map(task, range(1, rounds + 1)))
    churns = list(ex.map(churn, [200000] * 4))
print("rounds", rounds, "churn", churns)
for i, dg in enumerate(digests):
    print("task", i + 1, dg)
print("checksum", hashlib.sha256("".join(digests).encode()).hexdigest())
EOF
    run "$d/base" "" "$PY" "$d/work.py" 8
    run "$d/hak" "$LIB" "$PY" "$d/work.py" 8
    compare python3 "$d/base" "$d/hak" "$("$PY" --version 2>&1), $(tail -n 1 "$d/hak/out" | cut -c1-30)..."
}

# ------------------------------------------------------------------ gcc
# Builds a copy of HAKMEM at the same path twice (so that debug info matches),
# once plainly and once with make and the whole compiler under HAKMEM.
gcc_build() {  # <preload or ""> <destination>
    local d="$WORK/gcc" pre=$1 dest=$2
    rm -rf "$d/tree"
    mkdir -p "$d/tree"
    cp -r "$ROOT/src" "$ROOT/include" "$ROOT/Makefile" "$ROOT/bench" "$d/tree/"
    run "$d/tree" "$pre" make -j2 lib benches CC=gcc
    mv "$d/tree" "$dest"
}

gcc_case() {
    local d="$WORK/gcc"
    mkdir -p "$d"
    gcc_build "" "$d/A"
    gcc_build "$LIB" "$d/B"
    local rb rh why
    rb=$(cat "$d/A/rc") rh=$(cat "$d/B/rc")
    local times
    times="without $(cat "$d/A/secs")s, HAKMEM $(cat "$d/B/secs")s"
    why=$(abnormal "$rh" "$d/B/err")
    if [ -n "$why" ]; then
        report gcc "${why%% *}" "($times) make under HAKMEM ${why#* }; $(tail -n 3 "$d/B/err" | tr '\n' ' ' | cut -c1-300)"
        return
    fi
    if [ "$rb" != 0 ] || [ "$rh" != 0 ]; then
        report gcc differs "($times) make exit status $rh under HAKMEM, $rb without; $(tail -n 3 "$d/B/err" "$d/A/err" | tr '\n' ' ' | cut -c1-300)"
        return
    fi
    local problems=() files=0 same_bytes=0 f rel
    # make -j2 interleaves its lines differently from run to run: compare sorted.
    cmp -s <(sort "$d/A/out") <(sort "$d/B/out") || problems+=("make output differs")
    cmp -s <(sort "$d/A/err") <(sort "$d/B/err") || problems+=("compiler diagnostics differ")
    while IFS= read -r f; do
        rel=${f#"$d/A/"}
        files=$((files + 1))
        if [ ! -f "$d/B/$rel" ]; then
            problems+=("$rel missing from the HAKMEM build")
            continue
        fi
        if ! cmp -s <(nm -a "$d/A/$rel" 2>&1) <(nm -a "$d/B/$rel" 2>&1); then
            problems+=("nm $rel differs")
        fi
        cmp -s "$d/A/$rel" "$d/B/$rel" && same_bytes=$((same_bytes + 1))
    done < <(find "$d/A/build" -type f \( -name '*.o' -o -name '*.so' -o -name '*.a' -o -perm -u+x \) | sort)
    [ "$files" -gt 0 ] || problems+=("the build produced no objects")
    [ "$same_bytes" = "$files" ] || problems+=("only $same_bytes of $files files byte-identical")
    # Smoke: the library built under HAKMEM, preloaded into ls.
    run "$d/smoke-base" "" ls -laR /usr/include
    run "$d/smoke-hak" "$d/B/build/libhakmem.so" ls -laR /usr/include
    why=$(abnormal "$(cat "$d/smoke-hak/rc")" "$d/smoke-hak/err")
    [ -z "$why" ] || problems+=("ls under the new library: $why")
    cmp -s "$d/smoke-base/out" "$d/smoke-hak/out" && [ -s "$d/smoke-hak/out" ] || problems+=("ls output under the new library differs")
    # shellcheck disable=SC2002  # cat must be the preloaded process
    [ "$(LD_PRELOAD="$d/B/build/libhakmem.so" cat /proc/self/maps | grep -c libhakmem)" -gt 0 ] ||
        problems+=("the new library does not load")
    if [ ${#problems[@]} -eq 0 ]; then
        report gcc identical "($times) $(gcc --version | head -n 1); $files objects/binaries: nm identical, bytes identical; new lib in ls -laR /usr/include ($(wc -l <"$d/smoke-hak/out") lines) identical"
    else
        report gcc differs "($times) $(IFS=';'; echo "${problems[*]}" | cut -c1-600)"
    fi
}

# ------------------------------------------------------------------ git
git_case() {
    local d="$WORK/git"
    mkdir -p "$d"
    # One snapshot, so that both runs see the same history even if the
    # repository gets a commit meanwhile.
    if ! git clone -q --bare --no-local "$ROOT" "$d/snapshot.git" 2>"$d/snapshot.err"; then
        report git differs "cannot snapshot $ROOT: $(head -n 2 "$d/snapshot.err" | tr '\n' ' ')"
        return
    fi
    cat >"$d/work.sh" <<'EOF'
set -e
git clone -q --no-local "$1" repo
cd repo
git config gc.auto 0
git config gc.autoDetach false
git log --stat --format=fuller | sha256sum
git log --stat --format=fuller | tail -n 40
for c in 1 2 3 4 5 6; do
    export GIT_AUTHOR_DATE="2021-02-0$c 10:00:00 +0000" GIT_COMMITTER_DATE="2021-02-0$c 10:00:00 +0000"
    for f in $(seq 1 40); do
        seq 1 $((f * 53 + c * 7)) | awk -v c=$c -v f=$f '{ print "commit " c " file " f " line " $1 " " ($1 * c * 2654435761) % 1000003 }' >"gen_$f.txt"
    done
    printf 'change %s\n' "$c" >>README.md
    [ $c -ne 4 ] || git rm -q -f gen_7.txt
    [ $c -ne 5 ] || git mv gen_8.txt moved_8.txt
    git add -A
    git commit -q -m "test commit $c" -m "$(seq 1 $c | tr '\n' ' ')"
done
git rev-parse HEAD
git log --stat -n 8 --format=fuller
git diff --stat HEAD~6 HEAD
git diff HEAD~3 HEAD | sha256sum
git blame -s README.md | sha256sum
git grep -c hak_ -- '*.c' '*.h' | sha256sum
git gc -q --aggressive --prune=now
git fsck --full --strict --no-dangling
git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
git archive --format=tar HEAD | sha256sum
git log --format='%H %s' | sha256sum
EOF
    run "$d/base" "" bash "$d/work.sh" "$d/snapshot.git"
    run "$d/hak" "$LIB" bash "$d/work.sh" "$d/snapshot.git"
    compare git "$d/base" "$d/hak" "$(git --version); clone, log --stat, 6 commits, gc --aggressive, fsck; HEAD $(grep -m1 -E '^[0-9a-f]{40}$' "$d/hak/out" | cut -c1-12)"
}

# ------------------------------------------------------------------ redis
free_port() {
    local p
    for p in $(seq $((20000 + $$ % 20000)) $((20200 + $$ % 20000))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}

# redis_run <dir> <preload or "">: one server, the workload, the data checks
# (in <dir>/checks, compared between runs), benchmark figures in <dir>/bench.
redis_run() {
    local dir=$1 pre=$2 port pid
    mkdir -p "$dir/data"
    port=$(free_port)
    local cli=(timeout 300 redis-cli -p "$port")
    # Lazy freeing: big objects (and FLUSHALL) are freed by a background
    # thread, so blocks allocated by the main thread are freed by another one.
    local extra=(--lazyfree-lazy-user-del yes --lazyfree-lazy-user-flush yes
                 --lazyfree-lazy-server-del yes)
    local t0=$SECONDS
    if [ -n "$pre" ]; then
        HAKMEM_STATS=1 LD_PRELOAD="$pre" timeout -k 10 "$TMO" redis-server --port "$port" --bind 127.0.0.1 \
            --save '' --appendonly no --dir "$dir/data" --logfile "$dir/server.log" \
            --enable-debug-command local "${extra[@]}" >"$dir/server.out" 2>"$dir/server.err" &
    else
        timeout -k 10 "$TMO" redis-server --port "$port" --bind 127.0.0.1 \
            --save '' --appendonly no --dir "$dir/data" --logfile "$dir/server.log" \
            --enable-debug-command local "${extra[@]}" >"$dir/server.out" 2>"$dir/server.err" &
    fi
    pid=$!
    REDIS_PIDS+=("$pid")
    for _ in $(seq 1 100); do
        [ "$("${cli[@]}" ping 2>/dev/null)" = PONG ] && break
        sleep 0.2
    done
    if [ "$("${cli[@]}" ping 2>/dev/null)" != PONG ]; then
        echo "server did not start" >"$dir/failure"
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        return
    fi
    local server_pid; server_pid=$(pgrep -P "$pid" -x redis-server | head -n 1)
    if [ -n "$pre" ] && ! grep -q libhakmem "/proc/$server_pid/maps" 2>/dev/null; then
        echo "libhakmem.so not mapped in the server (pid $server_pid)" >"$dir/failure"
    fi
    {
        timeout "$TMO" redis-benchmark -p "$port" -q -n 200000 -c 20 -P 16 -d 1000 \
            -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,mset
        timeout "$TMO" redis-benchmark -p "$port" -q -n 20000 -c 10 -d 1000 -t lrange_100
        # random keys: memory grows and churns (not compared: the keys are random)
        timeout "$TMO" redis-benchmark -p "$port" -q -n 200000 -c 20 -P 16 -d 1000 -r 50000 -t set,lpush,hset
    } >"$dir/bench" 2>&1
    "${cli[@]}" flushall >/dev/null
    # Deterministic data through the protocol: strings of many sizes, lists,
    # hashes, sets, sorted sets; then deletes, appends and range updates.
    "$PY" - >"$dir/load.txt" <<'EOF'
def cmd(*a):
    a = [str(x) for x in a]
    return "*%d\r\n" % len(a) + "".join("$%d\r\n%s\r\n" % (len(x.encode()), x) for x in a)
out, x = [], 7
for i in range(100000):
    x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
    out.append(cmd("SET", "key:%d" % i, ("v%d-" % i) * (1 + x % 100)))
    if i % 10 == 0:
        out.append(cmd("RPUSH", "list:%d" % (i % 500), "e%d" % i, "f" * (x % 3000)))
        out.append(cmd("HSET", "hash:%d" % (i % 300), "field%d" % i, x % 100000, "blob%d" % i, "b" * (x % 200)))
        out.append(cmd("SADD", "set:%d" % (i % 200), "m%d" % (x % 5000)))
        out.append(cmd("ZADD", "zset:%d" % (i % 100), x % 1000003, "z%d" % i))
for i in range(0, 100000, 3):
    out.append(cmd("DEL", "key:%d" % i))
for i in range(1, 100000, 7):
    out.append(cmd("APPEND", "key:%d" % i, "tail" * (i % 50)))
for i in range(2, 100000, 11):
    out.append(cmd("SETRANGE", "key:%d" % i, i % 900, "XYZ" * (i % 30)))
for i in range(0, 500, 5):
    out.append(cmd("LTRIM", "list:%d" % i, 3, -3))
import sys
sys.stdout.write("".join(out))
EOF
    "${cli[@]}" --pipe <"$dir/load.txt" >"$dir/pipe.out" 2>&1
    {
        echo "dbsize $("${cli[@]}" dbsize)"
        for k in key:1 key:2 key:77777 key:99998 key:12347 key:3; do
            echo "$k strlen $("${cli[@]}" strlen "$k") sha $("${cli[@]}" get "$k" | sha256sum | cut -c1-16)"
        done
        echo "llen list:70 $("${cli[@]}" llen list:70) lrange $("${cli[@]}" lrange list:70 0 -1 | sha256sum | cut -c1-16)"
        echo "hlen hash:50 $("${cli[@]}" hlen hash:50) scard set:90 $("${cli[@]}" scard set:90) zcard zset:30 $("${cli[@]}" zcard zset:30)"
        echo "zrange $("${cli[@]}" zrange zset:30 0 -1 withscores | sha256sum | cut -c1-16)"
        echo "hgetall $("${cli[@]}" hgetall hash:50 | paste - - | sort | sha256sum | cut -c1-16)"
        echo "sort $("${cli[@]}" sort set:90 alpha | sha256sum | cut -c1-16)"
        echo "digest $("${cli[@]}" debug digest)"
        "${cli[@]}" info keyspace | tr -d '\r' | grep '^db'
        # everything freed by the background thread, then loaded again into
        # the memory it gave back: the same digest
        "${cli[@]}" flushall async >/dev/null
        "${cli[@]}" --pipe <"$dir/load.txt" >>"$dir/pipe.out" 2>&1
        echo "digest after flushall and reload $("${cli[@]}" debug digest)"
    } >"$dir/checks"
    "${cli[@]}" info memory | tr -d '\r' | sed -n 's/^lazyfreed_objects://p' >"$dir/lazyfreed"
    "${cli[@]}" ping >"$dir/alive"
    "${cli[@]}" shutdown nosave >/dev/null 2>&1
    local rc=0
    wait "$pid" || rc=$?
    echo "$rc" >"$dir/rc"
    echo $((SECONDS - t0)) >"$dir/secs"
}

redis_case() {
    need redis redis-server redis-benchmark redis-cli || return
    local d="$WORK/redis"
    redis_run "$d/base" ""
    redis_run "$d/hak" "$LIB"
    local problems=() f
    for f in "$d/base" "$d/hak"; do
        [ -f "$f/failure" ] && problems+=("$(basename "$f"): $(cat "$f/failure")")
    done
    local rh rb; rh=$(cat "$d/hak/rc" 2>/dev/null || echo none) rb=$(cat "$d/base/rc" 2>/dev/null || echo none)
    local why=""
    [[ $rh =~ ^[0-9]+$ ]] && why=$(abnormal "$rh" "$d/hak/server.err")
    if grep -qE 'crashed by signal|=== REDIS BUG REPORT|Guru Meditation' "$d/hak/server.log" 2>/dev/null; then
        why="crashed (server log: $(grep -m1 -E 'crashed by signal|BUG REPORT|Guru' "$d/hak/server.log"))"
    fi
    if [ -n "$why" ]; then
        report redis "${why%% *}" "${why#* }; server exit status $rh"
        return
    fi
    [ "$rh" = 0 ] || problems+=("server exit status $rh under HAKMEM (without: $rb)")
    [ "$rb" = 0 ] || problems+=("server exit status $rb without HAKMEM")
    [ "$(tr -d '\r' <"$d/hak/alive")" = PONG ] || problems+=("server under HAKMEM did not answer PING after the workload")
    grep -q 'ready to exit, bye bye' "$d/hak/server.log" 2>/dev/null || problems+=("no clean shutdown in the server log")
    [ "$(grep -c 'errors: 0, replies: ' "$d/hak/pipe.out")" = 2 ] || problems+=("redis-cli --pipe: $(grep 'errors:' "$d/hak/pipe.out" | tr '\n' ' ')")
    grep -qiE 'error|refused' "$d/hak/bench" && problems+=("redis-benchmark: $(grep -m1 -iE 'error|refused' "$d/hak/bench")")
    [ -s "$d/base/checks" ] || problems+=("no data checks without HAKMEM (workload problem)")
    cmp -s "$d/base/checks" "$d/hak/checks" || problems+=("data checks differ")
    grep -q '^HAKMEM statistics' "$d/hak/server.err" || problems+=("no HAKMEM statistics from the server")
    local hstats; hstats="slabs $(sed -n 's/^  slabs: //p' "$d/hak/server.err"), remote frees $(sed -n 's/^  remote frees: //p' "$d/hak/server.err"), threads $(sed -n 's/^  threads started: //p' "$d/hak/server.err")"
    rate() { tr '\r' '\n' <"$1" | sed -n "s/^$2: \([0-9.]*\) requests.*/\1/p" | head -n 1; }
    local figures
    figures="SET $(rate "$d/base/bench" SET)/$(rate "$d/hak/bench" SET), GET $(rate "$d/base/bench" GET)/$(rate "$d/hak/bench" GET), LPUSH $(rate "$d/base/bench" LPUSH)/$(rate "$d/hak/bench" LPUSH), LRANGE_100 $(rate "$d/base/bench" 'LRANGE_100 (first 100 elements)')/$(rate "$d/hak/bench" 'LRANGE_100 (first 100 elements)') req/s (jemalloc/HAKMEM)"
    local times
    times="without $(cat "$d/base/secs")s, HAKMEM $(cat "$d/hak/secs")s"
    if [ ${#problems[@]} -eq 0 ]; then
        report redis identical "($times) $(redis-server --version | cut -d' ' -f3); $(head -n 1 "$d/hak/checks"); digest same; PING ok, clean shutdown; $(cat "$d/hak/lazyfreed") objects freed by the lazyfree thread; HAKMEM $hstats; $figures"
    else
        report redis differs "($times) $(IFS=';'; echo "${problems[*]}")"
        diff "$d/base/checks" "$d/hak/checks" | head -n 10 | sed 's/^/      /'
    fi
}

# ------------------------------------------------------------------ sqlite3
sqlite_case() {
    need sqlite3 sqlite3 || return
    local d="$WORK/sqlite"
    mkdir -p "$d"
    {
        cat <<'EOF'
PRAGMA journal_mode=WAL;
PRAGMA cache_size=-65536;
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, city TEXT, score INT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, cust INT, amount INT, note TEXT, day INT);
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 19999)
INSERT INTO customers
SELECT i, 'cust' || i || substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 17),
       'city' || (i * 7919 % 313), (i * 2654435761) % 1000 FROM c;
COMMIT;
EOF
        # 450k rows in 9 transactions of set-based inserts ...
        for t in $(seq 0 8); do
            cat <<EOF
BEGIN;
WITH RECURSIVE c(i) AS (SELECT $((t * 50000)) UNION ALL SELECT i + 1 FROM c WHERE i < $((t * 50000 + 49999)))
INSERT INTO orders
SELECT i, (i * 48271) % 20000, (i * 69621) % 100000,
       printf('%s-%d-%s', substr('lorem ipsum dolor sit amet consectetur', 1 + i % 20, 3 + i % 15), i % 977, hex(i * 31)),
       (i * 16807) % 365 FROM c;
COMMIT;
EOF
        done
        # ... and 50k single-row INSERT statements in 5 transactions.
        awk 'BEGIN { for (t = 0; t < 5; t++) { print "BEGIN;"
                 for (k = 0; k < 10000; k++) { i = 450000 + t * 10000 + k
                     printf "INSERT INTO orders VALUES(%d, %d, %d, %c%s-%d%c, %d);\n", i, (i * 48271) % 20000, (i * 69621) % 100000, 39, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 20, 1 + i % 7), i, 39, (i * 16807) % 365 }
                 print "COMMIT;" } }'
        cat <<'EOF'
CREATE INDEX orders_cust ON orders(cust);
CREATE INDEX orders_day_amount ON orders(day, amount);
CREATE INDEX customers_city ON customers(city);
SELECT count(*), sum(amount), total(length(note)) FROM orders;
SELECT c.city, count(*), sum(o.amount), max(o.amount)
  FROM orders o JOIN customers c ON c.id = o.cust GROUP BY c.city ORDER BY 3 DESC, 1 LIMIT 15;
SELECT day, count(*), round(avg(amount), 3), min(note) FROM orders GROUP BY day ORDER BY day LIMIT 20;
SELECT cust, amount, r FROM (
  SELECT cust, amount, rank() OVER (PARTITION BY cust % 97 ORDER BY amount DESC, id) AS r FROM orders)
  WHERE r <= 2 ORDER BY cust, amount LIMIT 30;
SELECT length(group_concat(note, ',')), count(DISTINCT note) FROM orders WHERE day < 60;
SELECT length(json_group_array(json_object('id', id, 'a', amount, 'n', note))) FROM orders WHERE cust < 2000;
SELECT count(*) FROM customers c
  WHERE score > (SELECT coalesce(avg(amount), 0) % 1000 FROM orders WHERE cust = c.id);
SELECT count(*) FROM (SELECT note, count(*) FROM orders GROUP BY note HAVING count(*) > 1);
SELECT note FROM orders ORDER BY note DESC, id LIMIT 5 OFFSET 100000;
UPDATE orders SET note = note || '-updated-' || (id % 13) WHERE id % 7 = 0;
DELETE FROM orders WHERE id % 11 = 0;
CREATE TABLE summary AS
  SELECT c.city AS city, o.day AS day, count(*) AS n, sum(o.amount) AS s
  FROM orders o JOIN customers c ON c.id = o.cust GROUP BY c.city, o.day;
SELECT count(*), sum(n), sum(s) FROM summary;
SELECT city, sum(s) FROM summary GROUP BY city ORDER BY 2 DESC LIMIT 5;
VACUUM;
PRAGMA integrity_check;
SELECT count(*), sum(amount), sum(length(note)) FROM orders;
EOF
    } >"$d/work.sql"
    run "$d/base" "" sqlite3 -batch "$d/base/db.sqlite" ".read $d/work.sql"
    run "$d/hak" "$LIB" sqlite3 -batch "$d/hak/db.sqlite" ".read $d/work.sql"
    compare sqlite3 "$d/base" "$d/hak" "sqlite $(sqlite3 --version | cut -d' ' -f1); 500k inserts in 15 transactions, 3 indexes, joins, window, json, vacuum; $(wc -l <"$d/hak/out") result lines, integrity_check: $(grep -x -m1 ok "$d/hak/out" || echo NOT-OK)"
}

echo "real: LD_PRELOAD=$LIB, timeout ${TMO}s per run, work in $WORK"
wanted python3 && python_case
wanted gcc && gcc_case
wanted git && git_case
wanted redis && redis_case
wanted sqlite3 && sqlite_case
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "real programs: $good/$total identical"
[ "$total" -gt 0 ] && [ "$good" -eq "$total" ]
