#!/usr/bin/env bash
# Shows memtrace at work: installs the Debian packages it needs, builds it,
# runs the bundled leaking sample (examples/leaky.c, target `leaky`) under
# `memtrace run`, then prints the summary of each dump it wrote with
# `memtrace report --summary`. Exits non-zero if any step fails. Works from
# any directory; the dumps are kept in a fresh directory under /tmp.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMTRACE_WERROR=ON
cmake --build build -j2

memtrace=build/memtrace
if [ ! -x "$memtrace" ]; then
    echo "demo: $memtrace was not built" >&2
    exit 1
fi

# The sample lands at build/leaky; look deeper in case it is built elsewhere.
leaky=build/leaky
if [ ! -x "$leaky" ]; then
    leaky=$(find build -type f -name leaky -perm -u+x -print -quit)
fi
if [ -z "$leaky" ] || [ ! -x "$leaky" ]; then
    echo "demo: the sample program 'leaky' (examples/leaky.c) was not built" >&2
    exit 1
fi

out=$(mktemp -d /tmp/memtrace-demo.XXXXXX)
echo
echo "\$ $memtrace run -o $out/memtrace.%n.%p.mtr $leaky"
"$memtrace" run -o "$out/memtrace.%n.%p.mtr" "$leaky"

dumps=("$out"/*.mtr)
if [ ! -e "${dumps[0]}" ]; then
    echo "demo: memtrace run wrote no dump in $out" >&2
    exit 1
fi
for dump in "${dumps[@]}"; do
    echo
    echo "\$ $memtrace report --leaks $dump"
    "$memtrace" report --leaks "$dump"
done
echo
echo "demo: dumps kept in $out"
