#!/usr/bin/env bash
# Fuzzes the dump reader: bash tests/fuzz/run_fuzz.sh BUILD_DIR SECONDS
#
# BUILD_DIR is a build configured with -DMEMTRACE_FUZZ=ON and clang, so it
# holds memtrace, the victims (tests/programs) and tests/fuzz/fuzz_dump_reader.
# 1. replays every file of tests/fuzz/regressions/ (inputs that once crashed);
# 2. records a seed corpus of real dumps under BUILD_DIR/tests/fuzz/seeds: a
#    few victims under `memtrace run`, copies cut short at several lengths,
#    and (when the zstd CLI is there) copies recompressed with raw literals
#    and no checksum, so that mutations reach the record decoder;
# 3. fuzzes for SECONDS from it; new inputs go to .../tests/fuzz/corpus.
# Exits non-zero when libFuzzer reports a crash, a leak or a timeout; the
# input that did it is left in BUILD_DIR/tests/fuzz/artifacts/.
# Dumps (*.mtr) live in the build tree only: they are never committed.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
fuzzer=$build/tests/fuzz/fuzz_dump_reader
memtrace=$build/memtrace
programs=$build/tests/programs
work=$build/tests/fuzz
for f in "$fuzzer" "$memtrace"; do
    if [ ! -x "$f" ]; then
        echo "run_fuzz: $f is missing; configure with CC=clang -DMEMTRACE_FUZZ=ON and build" >&2
        exit 2
    fi
done

# ---- 1. regressions first: each must now run clean.
shopt -s nullglob
regressions=("$here"/regressions/*.bin)
if [ ${#regressions[@]} -gt 0 ]; then
    echo "run_fuzz: replaying ${#regressions[@]} regression inputs"
    "$fuzzer" -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 "${regressions[@]}"
fi

# ---- 2. the seed corpus, recorded afresh each time.
seeds=$work/seeds
rm -rf "$seeds"
mkdir -p "$seeds" "$work/corpus" "$work/artifacts"
for prog in count_calloc count_realloc count_cxx threads forker leak_kinds dlopen_main \
    report_leaks; do
    [ -x "$programs/$prog" ] || continue
    # A victim's own exit status does not matter here, only its dump.
    (cd "$programs" && "$memtrace" run -q -o "$seeds/$prog.%p.mtr" ./"$prog" >/dev/null 2>&1) || true
done
# a Python program: PYFRAME records, stacks with Python frames
if [ -x /usr/bin/python3 ]; then
    "$memtrace" run -q -o "$seeds/python.%p.mtr" /usr/bin/python3 -S -c \
        'def f(n): return [str(i) for i in range(n)]
x = f(200)' >/dev/null 2>&1 || true
fi
# no leak check: no SCAN/LEAK_KIND records, a different record mix
(cd "$programs" && "$memtrace" run -q --leak-check none -o "$seeds/nocheck.%p.mtr" \
    ./count_aligned >/dev/null 2>&1) || true

dumps=("$seeds"/*.mtr)
if [ ${#dumps[@]} -eq 0 ]; then
    echo "run_fuzz: memtrace recorded no dumps in $seeds" >&2
    exit 1
fi
for d in "${dumps[@]}"; do
    size=$(stat -c %s "$d")
    if [ "$size" -gt 65536 ]; then # beyond -max_len, and too slow to fuzz
        rm -f "$d"
        continue
    fi
    for cut in 8 16 40 $((size / 3)) $((size / 2)) $((size - 9)); do
        [ "$cut" -gt 0 ] && [ "$cut" -lt "$size" ] && head -c "$cut" "$d" >"$d.cut$cut"
    done
    # Header (16 bytes) + the same records, recompressed so that their bytes
    # appear as they are in the file and no checksum rejects a mutation.
    if command -v zstd >/dev/null; then
        { head -c 16 "$d"
          tail -c +17 "$d" | zstd -q -d -c 2>/dev/null |
              zstd -q -c -1 --no-check --no-compress-literals; } >"$d.raw" || rm -f "$d.raw"
    fi
done
echo "run_fuzz: $(ls "$seeds" | wc -l) seed inputs in $seeds"

# ---- 3. fuzz.
cd "$work"
exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds"
