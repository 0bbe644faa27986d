#!/usr/bin/env bash
# Drop-in check: real programs run with LD_PRELOAD=build/libhakmem.so and
# without it must print the same stdout and exit with the same status, and
# under HAKMEM stderr must be empty (a release build prints nothing, nor does
# a DEBUG=1 build whose assertions hold).  HAKTEST_BUILD=dir: the build
# directory (default build; tests/run.sh); HAKTEST_LIB=path: the library itself.
# Ends with "dropin: N/M programs identical"; exits 0 only if all match.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
B=${HAKTEST_BUILD:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
LIB=${HAKTEST_LIB:-"$B/libhakmem.so"}
PER_PROGRAM_TIMEOUT=${DROPIN_TIMEOUT:-300}

if [ ! -f "$LIB" ]; then
    echo "dropin: $LIB is missing (run make lib)"
    echo "dropin: 0/0 programs identical"
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hak-dropin.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
unset LD_PRELOAD
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
export HOME="$WORK/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
mkdir -p "$HOME"

# 1. The library is really loaded.
# shellcheck disable=SC2002  # cat must be the preloaded process reading its own maps
loaded=$(LD_PRELOAD="$LIB" cat /proc/self/maps | grep -c libhakmem)
if [ "${loaded:-0}" -le 0 ]; then
    echo "dropin: libhakmem.so does not appear in /proc/self/maps under LD_PRELOAD"
    echo "dropin: 0/0 programs identical"
    exit 1
fi
echo "libhakmem.so loaded under LD_PRELOAD ($loaded mappings)"

# ------------------------------------------------------------ workloads
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || command -v python3)

cat >"$WORK/work.py" <<'EOF'
import hashlib, json
d = {}
x = 12345
for i in range(200000):
    x = (x * 1103515245 + 12345) & 0x7fffffff
    d["k%06d_%d" % (i, x % 977)] = [x, str(x) * (x % 5), {"i": i, "f": x / 7.0}]
keys = sorted(d, key=lambda k: (d[k][0] % 1000, k))
s = json.dumps(d, sort_keys=True)
back = json.loads(s)
assert back == json.loads(json.dumps(back, sort_keys=True))
h = hashlib.sha256(s.encode())
h.update("".join(keys[::97]).encode())
words = {}
for k in back:
    words.setdefault(k[-3:], []).append(k)
print(len(back), len(words), h.hexdigest())
EOF

cat >"$WORK/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
int main(void) {
    enum { N = 100000 };
    char **v = malloc(N * sizeof *v);
    unsigned x = 7, h = 2166136261u;
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        v[i] = malloc(8 + x % 200);
        snprintf(v[i], 8 + x % 200, "%u-%d", x, i);
        if (i % 3 == 0) { v[i] = realloc(v[i], 400); strcat(v[i], "+r"); }
    }
    qsort(v, N, sizeof *v, cmp);
    for (int i = 0; i < N; i++) {
        for (const char *p = v[i]; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
        free(v[i]);
    }
    free(v);
    printf("prog: %u\n", h);
    return 3;   /* a non-zero status, compared too */
}
EOF

cat >"$WORK/work.pl" <<'EOF'
use strict; use warnings;
my %h; my $x = 42;
for my $i (1 .. 200000) {
    $x = ($x * 1103515245 + 12345) % 2147483648;
    my $k = sprintf("w%05d-%x", $i % 50000, $x % 4096);
    $h{$k} .= chr(97 + $x % 26) x (1 + $x % 7);
}
my ($n, $sum) = (0, 0);
for my $k (sort keys %h) {
    my $v = $h{$k};
    $v =~ s/([aeiou])\1+/uc($1)/ge;
    $n++ if $v =~ /^[b-df-hj-np-tv-z]{2,}/;
    $sum = ($sum * 31 + length($v) + ord(substr($v, 0, 1))) % 1000000007;
    my @parts = split /[AEIOU]/, $v;
    $sum = ($sum + scalar(@parts)) % 1000000007;
}
printf "%d %d %d\n", scalar(keys %h), $n, $sum;
EOF

awk 'BEGIN { x = 1; for (i = 0; i < 200000; i++) { x = (x * 1103515245 + 12345) % 2147483648;
             printf "%08x line %d %s\n", x, i % 1000, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, 5) } }' \
    >"$WORK/lines.txt"

cat >"$WORK/pipe.sh" <<'EOF'
set -e
cut -d" " -f3 "$1" | sort | uniq -c | sort -k1,1nr -k2 |
    awk '{ n += $1; s = (s * 7 + $1) % 1000003 } END { print NR, n, s }'
awk '{ print $4 }' "$1" | sort | uniq -c | awk '{ print $2, $1 }' | sort -k2,2n -k1,1 | tail -n 3
EOF

# Each case is a bash snippet run in a fresh directory $D.
declare -a NAMES CMDS
add() { NAMES+=("$1"); CMDS+=("$2"); }
add python3 "\"$PY\" \"$WORK/work.py\""
add gcc "gcc -O1 -o \"\$D/prog\" \"$WORK/prog.c\" && \"\$D/prog\""
# shellcheck disable=SC2016  # expanded by the bash -c that runs the case
add git 'cd "$D" && git init -q repo && cd repo &&
    export GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@example.com &&
    for c in 1 2 3 4 5; do
        for f in $(seq $(( (c - 1) * 10 + 1 )) $(( c * 10 ))); do seq 1 $(( f * 37 )) | sed "s/^/file $f line /" > f$f.txt; done
        git add -A && GIT_AUTHOR_DATE="2020-01-0$c 12:00:00 +0000" GIT_COMMITTER_DATE="2020-01-0$c 12:00:00 +0000" git commit -q -m "commit $c"
    done &&
    git log --stat | sha256sum && git rev-parse HEAD && git count-objects'
add perl "perl \"$WORK/work.pl\""
add sh "sh \"$WORK/pipe.sh\" \"$WORK/lines.txt\""
add sort "sort \"$WORK/lines.txt\" | sha256sum && sort -k3,3 -k1,1r \"$WORK/lines.txt\" | sha256sum"

run_case() {  # <preload> <dir> <cmd> ; output in $2/{out,err,rc}
    local pre=$1 dir=$2 cmd=$3
    mkdir -p "$dir/d"
    if [ -n "$pre" ]; then
        D="$dir/d" LD_PRELOAD="$pre" timeout "$PER_PROGRAM_TIMEOUT" bash -o pipefail -c "$cmd" >"$dir/out" 2>"$dir/err"
    else
        D="$dir/d" timeout "$PER_PROGRAM_TIMEOUT" bash -o pipefail -c "$cmd" >"$dir/out" 2>"$dir/err"
    fi
    echo $? >"$dir/rc"
}

same=0 total=0
for i in "${!NAMES[@]}"; do
    name=${NAMES[$i]} cmd=${CMDS[$i]}
    total=$((total + 1))
    base="$WORK/$name.libc" hak="$WORK/$name.hak"
    start=$SECONDS
    run_case "" "$base" "$cmd"
    run_case "$LIB" "$hak" "$cmd"
    rc_b=$(cat "$base/rc") rc_h=$(cat "$hak/rc")
    problems=()
    [ "$rc_b" = "$rc_h" ] || problems+=("exit status $rc_h under HAKMEM, $rc_b without")
    [ "$rc_h" = 124 ] && problems+=("timed out under HAKMEM")
    cmp -s "$base/out" "$hak/out" || problems+=("stdout differs")
    [ -s "$hak/err" ] && problems+=("stderr under HAKMEM not empty")
    [ -s "$base/err" ] && problems+=("stderr without HAKMEM not empty (test workload problem)")
    [ -s "$base/out" ] || problems+=("no output without HAKMEM (test workload problem)")
    if [ ${#problems[@]} -eq 0 ]; then
        same=$((same + 1))
        printf 'same %-8s (%ds, status %s) %s\n' "$name" $((SECONDS - start)) "$rc_h" "$(head -c 100 "$hak/out" | head -n 1)"
    else
        printf 'DIFF %-8s (%ds): %s\n' "$name" $((SECONDS - start)) "$(IFS=';'; echo "${problems[*]}")"
        if ! cmp -s "$base/out" "$hak/out"; then
            diff <(head -c 4000 "$base/out") <(head -c 4000 "$hak/out") | head -n 20 | sed 's/^/    /'
        fi
        for f in "$hak/err" "$base/err"; do
            [ -s "$f" ] && { echo "    stderr ($f):"; head -n 15 "$f" | sed 's/^/      /'; }
        done
    fi
done
echo "dropin: $same/$total programs identical"
[ "$same" -eq "$total" ]
