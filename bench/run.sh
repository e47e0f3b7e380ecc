#!/usr/bin/env bash
# memtrace's benchmark: each workload bare, under `memtrace run` (dwarf and
# fp unwinding) and under heaptrack, timed with hyperfine (median of runs);
# peak RSS of the traced process with /usr/bin/time; dump size against
# heaptrack's file. Writes bench/RESULTS.md. Public tools only.
#
#   bash bench/run.sh [RUNS]      (default 5 runs per command)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-5}
build=build
memtrace=$build/memtrace
[ -x "$memtrace" ] || { echo "bench: build memtrace first (scripts/test.sh)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing (scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/memtrace-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

gcc -O2 -g -pthread -o "$work/alloc_stress" bench/alloc_stress.c
python3 - "$work/inserts.sql" <<'PY'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    f.write("BEGIN;\nCREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);\n")
    for i in range(200000):
        f.write("INSERT INTO t(b,c) VALUES('row%d-%d', %f);\n" % (i, random.randint(0, 10**6), i * 0.5))
    f.write("COMMIT;\nSELECT count(*), sum(c) FROM t;\n")
PY

python3 - "$work/words.txt" <<'PY'
import random, sys
random.seed(2)
words = ["alpha", "beta", "gamma", "delta", "memory", "profile", "heap", "stack"]
with open(sys.argv[1], "w") as f:
    for i in range(400000):
        f.write(" ".join(random.choice(words) + str(random.randint(0, 5000)) for _ in range(8)) + "\n")
PY
cat > "$work/dict.py" <<'PY'
d = {}
for i in range(1_000_000):
    d["key%d" % i] = [i, str(i)]
print(len(d))
PY
cat > "$work/count.pl" <<'PY'
my %n; while (<>) { $n{$_}++ for split; } print scalar(keys %n), "\n";
PY

# name|command (run with sh -c; stdin/stdout handled inside). Python
# workloads run the machine's own /usr/bin/python3; CPython's test modules
# come from Debian's libpython3.11-testsuite.
workloads=(
  "alloc_stress 1 thread|$work/alloc_stress 1 2000000"
  "alloc_stress 2 threads|$work/alloc_stress 2 1000000"
  "alloc_stress 8 threads|$work/alloc_stress 8 250000"
  "sqlite3 200k inserts|sqlite3 :memory: < $work/inserts.sql"
  "gzip -9 23 MB|gzip -9 -c $work/words.txt > /dev/null"
  "perl word count|perl $work/count.pl $work/words.txt"
  "python3 1M-entry dict|/usr/bin/python3 $work/dict.py"
  "python3 -m test test_json test_re|/usr/bin/python3 -m test test_json test_re"
)

results="$work/results.tsv"
: > "$results"
for entry in "${workloads[@]}"; do
  name=${entry%%|*}
  cmd=${entry#*|}
  # The tool wraps the program itself; the shell only sets up redirections.
  mt="sh -c '$memtrace run -q -o $work/mt.%p.mtr -- $cmd'"
  mtfp="sh -c '$memtrace run -q --unwind fp -o $work/fp.%p.mtr -- $cmd'"
  # heaptrack records what memtrace records: for Python, every object
  # (memtrace run sets PYTHONMALLOC=malloc for Python programs)
  htenv=""
  case "$cmd" in */python3*) htenv="PYTHONMALLOC=malloc" ;; esac
  ht="sh -c '$htenv heaptrack -o $work/ht $cmd' > /dev/null 2>&1"
  hyperfine --runs "$runs" --warmup 1 --style none --export-json "$work/h.json" \
    --prepare "rm -f $work/*.mtr $work/ht*" \
    -n bare "sh -c '$cmd'" -n memtrace "$mt" -n memtrace-fp "$mtfp" -n heaptrack "$ht" > /dev/null
  # one more of each for sizes and RSS
  rm -f "$work"/*.mtr "$work"/ht*
  /usr/bin/time -f %M -o "$work/rss.bare" sh -c "$cmd" > /dev/null
  /usr/bin/time -f %M -o "$work/rss.mt" sh -c "$memtrace run -q -o $work/one.%p.mtr -- $cmd" > /dev/null
  sh -c "$htenv heaptrack -o $work/ht $cmd" > /dev/null 2>&1
  dump=$(du -cb "$work"/one.*.mtr | tail -1 | cut -f1)
  htsize=$(du -cb "$work"/ht* | tail -1 | cut -f1)
  python3 - "$work/h.json" "$name" "$dump" "$htsize" "$(cat "$work/rss.bare")" "$(cat "$work/rss.mt")" >> "$results" <<'PY'
import json, sys
h = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
name, dump, htsize, rss_bare, rss_mt = sys.argv[2:7]
print("\t".join([name, "%.3f" % h["bare"], "%.3f" % h["memtrace"], "%.3f" % h["memtrace-fp"],
                 "%.3f" % h["heaptrack"], dump, htsize, rss_bare, rss_mt]))
PY
done

python3 - "$results" "$runs" > bench/RESULTS.md <<'PY'
import sys, datetime
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print("# memtrace benchmark results\n")
print("Written by `bash bench/run.sh %s` on %s (2 cores). Median wall time of %s runs each"
      " (hyperfine); ratios against the bare run and against heaptrack; the maximum RSS"
      " of the whole `memtrace run` (consumer and program) from /usr/bin/time; dump size"
      " against heaptrack's file of the same workload. Python rows: the bare run uses CPython's own"
      " allocator (what users run); `memtrace run` sets PYTHONMALLOC=malloc and records every object"
      " with Python frames; heaptrack is given PYTHONMALLOC=malloc too, so that both record the same"
      " allocations.\n" % (sys.argv[2], datetime.date.today(), sys.argv[2]))
print("| workload | bare s | memtrace s | x bare | fp s | x bare | heaptrack s | x bare | heaptrack / memtrace | dump | heaptrack file | RSS bare | RSS memtrace run |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, bare, mt, fp, ht, dump, htsize, rb, rm in rows:
    b, m, f, h = map(float, (bare, mt, fp, ht))
    print("| %s | %.3f | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f | %.2f | %.1f MiB | %.1f MiB | %d MiB | %d MiB |" % (
        name, b, m, m / b, f, f / b, h, h / b, h / m, int(dump) / 2**20, int(htsize) / 2**20,
        int(rb) // 1024, int(rm) // 1024))
PY
cat bench/RESULTS.md
