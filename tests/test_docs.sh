#!/usr/bin/env bash
# The README's settings table must match HAK_OPTION_TABLE in src/types.h:
# every variable with its default and range, and no variable the code lacks.
set -u
cd "$(dirname "$0")/.."
fail=0 n=0
table=$(sed -n '/#define HAK_OPTION_TABLE/,/^$/p' src/types.h |
        grep -o 'X([A-Z_]*, "HAKMEM_[A-Z_]*", [0-9]*, [0-9]*, [0-9]*' |
        sed 's/X([A-Z_]*, "\(HAKMEM_[A-Z_]*\)", \([0-9]*\), \([0-9]*\), \([0-9]*\)/\1 \2 \3 \4/')
[ -n "$table" ] || { echo "could not read HAK_OPTION_TABLE"; exit 1; }
while read -r env dflt min max; do
    n=$((n + 1))
    if ! grep -Eq "^\| \`$env\` +\| $dflt +\| $min\.\.$max +\|" README.md; then
        echo "README lacks or misstates: $env default $dflt range $min..$max"; fail=1
    fi
done <<<"$table"
for env in $(grep -o '^| `HAKMEM_[A-Z_]*`' README.md | tr -d '|` '); do
    grep -q "\"$env\"" src/types.h || { echo "README documents $env, which the code does not have"; fail=1; }
done
echo "docs: $n settings checked against README.md"
exit $fail
