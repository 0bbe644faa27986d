#!/usr/bin/env bash
# The README's settings table must match HAK_OPTION_TABLE in src/types.h:
# every variable with its default and range, and no variable the code lacks.
set -u
cd "$(dirname "$0")/.."
fail=0 n=0
table=$(sed -n '/#define HAK_OPTION_TABLE/,/^$/p' src/types.h |
        grep -o 'X([A-Z_]*, "HAKMEM_[A-Z_]*", NUM, [0-9]*, [0-9]*, [0-9]*' |
        sed 's/X([A-Z_]*, "\(HAKMEM_[A-Z_]*\)", NUM, \([0-9]*\), \([0-9]*\), \([0-9]*\)/\1 \2 \3 \4/')
texts=$(sed -n '/#define HAK_OPTION_TABLE/,/^$/p' src/types.h |
        sed -n 's/.*X([A-Z_]*, "\(HAKMEM_[A-Z_]*\)", TEXT,.*/\1/p')
[ -n "$table" ] || { echo "could not read HAK_OPTION_TABLE"; exit 1; }
while read -r env dflt min max; do
    n=$((n + 1))
    if ! grep -Eq "^\| \`$env\` +\| $dflt +\| $min\.\.$max +\|" README.md; then
        echo "README lacks or misstates: $env default $dflt range $min..$max"; fail=1
    fi
done <<<"$table"
# Text settings: "unset" by default, any text.
for env in $texts; do
    n=$((n + 1))
    grep -Eq "^\| \`$env\` +\| unset +\| text +\|" README.md || { echo "README lacks or misstates: $env (unset, text)"; fail=1; }
    for man in docs/man/hakmem.1 docs/man/hakmem.3; do
        grep -A1 "^\.B $env\$" "$man" | grep -q "(default unset, any text)\$" || { echo "$man lacks or misstates: $env"; fail=1; }
    done
done
for env in $(grep -o '^| `HAKMEM_[A-Z_]*`' README.md | tr -d '|` '); do
    grep -q "\"$env\"" src/types.h || { echo "README documents $env, which the code does not have"; fail=1; }
done
# The man pages list the same settings, each with its default and range,
# and carry the header's version.
version=$(sed -n 's/^#define HAKMEM_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/hakmem.h | paste -sd.)
for man in docs/man/hakmem.1 docs/man/hakmem.3; do
    grep -q "^\.TH HAKMEM [13] \"[0-9-]*\" \"HAKMEM $version\"" "$man" || { echo "$man: not version $version"; fail=1; }
    settings=$(sed -n '/^\.SH SETTINGS/,/^\.SH [A-Z ]*$/p' "$man")
    while read -r env dflt min max; do
        if ! grep -A1 "^\.B $env\$" <<<"$settings" | grep -q "(default $dflt, $min\.\.$max)\$"; then
            echo "$man lacks or misstates: $env default $dflt range $min..$max"; fail=1
        fi
    done <<<"$table"
    for env in $(sed -n '/^\.SH SETTINGS/,/^\.SH [A-Z ]*$/p' "$man" | grep -o '^\.B HAKMEM_[A-Z_]*$' | sed 's/^\.B //'); do
        grep -q "\"$env\"" src/types.h || { echo "$man documents $env, which the code does not have"; fail=1; }
    done
done
# The size-class counts README's tier table quotes.
tiers=$(sed -n 's/^ *{ *\([0-9]*\), *[0-9]*},$/\1/p' src/sizeclass.c |
        awk '{ if ($1 <= 1024) t++; else if ($1 <= 65536) m++; else l++ } END { print t+0, m+0, l+0 }')
read -r tiny mid large <<<"$tiers"
grep -q "^| Tiny  | .* | $tiny size classes " README.md || { echo "README: Tiny is not $tiny classes"; fail=1; }
grep -q "^| Mid   | .* | $mid classes" README.md || { echo "README: Mid is not $mid classes"; fail=1; }
grep -q "^| Large | .* | $large classes" README.md || { echo "README: Large is not $large classes"; fail=1; }
[ "$tiny" -gt 0 ] || { echo "could not read src/sizeclass.c"; fail=1; }
[ $fail -eq 0 ] || exit 1
echo "docs: $n settings checked against README.md and both man pages; size classes $tiny/$mid/$large"
exit $fail
