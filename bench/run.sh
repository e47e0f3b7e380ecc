#!/usr/bin/env bash
# memtrace's benchmark. Each workload runs bare, under `memtrace run` (dwarf
# and fp unwinding; Python frames, by default, in the Python workloads), under
# heaptrack and, on the smaller workloads, under valgrind --tool=memcheck
# --leak-check=full. The runs alternate: round after round, one run of each
# command (hyperfine --runs 1, the order rotated each round), after one
# warmup round (memcheck left out of it); the median of the rounds is kept.
# Then, on one more run of each: the bare program's peak RSS and the traced
# program's under memtrace (/usr/bin/time inside `memtrace run`), the
# consumer's peak RSS (VmHWM of the `memtrace run` process, read from /proc
# every 10 ms), the dump size against heaptrack's file, and `memtrace report`
# on that run's dumps against heaptrack_print on heaptrack's file (wall time,
# the median of 3 runs of each file, the two in turn, and /usr/bin/time's
# maximum RSS). Writes bench/RESULTS.md. Public tools only.
#
#   bash bench/run.sh [RUNS]      (default 5: rounds, so runs of each command)
#   BENCH_ONLY='sqlite|perl' bash bench/run.sh 1
#                                 only the workloads whose names match the
#                                 extended regex; the tables are printed and
#                                 kept in a file under /tmp, and
#                                 bench/RESULTS.md is left as it is
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-5}
only=${BENCH_ONLY:-}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: RUNS is a number of runs, 1 or more, not '$runs'" >&2; exit 1; }
build=build
memtrace=$build/memtrace
[ -x "$memtrace" ] || { echo "bench: build memtrace first (scripts/test.sh)" >&2; exit 1; }
for tool in hyperfine heaptrack heaptrack_print valgrind /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/memtrace-bench.XXXXXX)
# memtrace report's inflated copies of compressed debug files: made by the
# first report that needs one (the first of the three rounds below), read by
# the others, as they would be by a user's next report
export MEMTRACE_CACHE_DIR="$work/cache"
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

# name|memcheck|command (run with sh -c; stdin/stdout handled inside).
# memcheck: "yes" where valgrind runs too, the workloads it gets through in
# well under a minute (on 2 cores: alloc_stress 5-8 s, sqlite3 38 s, perl
# 17 s, the dict 32 s; gzip -9 and CPython's test suite would take minutes).
# Python workloads run the machine's own /usr/bin/python3; CPython's test
# modules come from Debian's libpython3.11-testsuite.
workloads=(
  "alloc_stress 1 thread|yes|$work/alloc_stress 1 2000000"
  "alloc_stress 2 threads|yes|$work/alloc_stress 2 1000000"
  "alloc_stress 8 threads|yes|$work/alloc_stress 8 250000"
  "sqlite3 200k inserts|yes|sqlite3 :memory: < $work/inserts.sql"
  "gzip -9 23 MB|no|gzip -9 -c $work/words.txt > /dev/null"
  "perl word count|yes|perl $work/count.pl $work/words.txt"
  "python3 1M-entry dict|yes|/usr/bin/python3 $work/dict.py"
  "python3 -m test test_json test_re|no|/usr/bin/python3 -m test test_json test_re"
)

# A read on this FIFO never gets data: `read -t` on it is a sleep that forks
# nothing, for polling /proc.
mkfifo "$work/never"
exec {tick}<>"$work/never"

# Peak RSS in KiB (VmHWM) of process $1, read every 10 ms until it is gone
# or a zombie; a rise in its last 10 ms is missed.
peak_rss_of() {
  local pid=$1 peak=0 line kb
  local -a status
  while mapfile -t status 2>/dev/null < "/proc/$pid/status"; do
    kb=
    for line in "${status[@]}"; do
      case $line in VmHWM:*) kb=${line//[!0-9]/}; break ;; esac
    done
    [ -n "$kb" ] || break
    if [ "$kb" -gt "$peak" ]; then peak=$kb; fi
    read -r -t 0.01 -u "$tick" _ || true
  done
  echo "$peak"
}

# Appends "START END MAXRSS_KIB" for one run of the command $2... to file $1.
# time_and_rss OUT FILE CMD...: appends "FILE start end maxrss_kb" to OUT
time_and_rss() {
  local out=$1 file=$2 start end
  shift 2
  start=$EPOCHREALTIME
  /usr/bin/time -f %M -o "$work/tool.rss" "$@" > /dev/null
  end=$EPOCHREALTIME
  echo "$file $start $end $(cat "$work/tool.rss")" >> "$out"
}

results="$work/results.tsv"
: > "$results"
for entry in "${workloads[@]}"; do
  name=${entry%%|*}
  rest=${entry#*|}
  memcheck=${rest%%|*}
  cmd=${rest#*|}
  if [ -n "$only" ] && ! [[ $name =~ $only ]]; then
    continue
  fi
  echo "bench: $name" >&2
  # heaptrack and memcheck record what memtrace records: for Python, every
  # object (memtrace run sets PYTHONMALLOC=malloc for Python programs)
  pyenv=""
  case "$cmd" in */python3*) pyenv="PYTHONMALLOC=malloc" ;; esac
  # The tool wraps the program itself; the shell only sets up redirections.
  names=(bare memtrace memtrace-fp heaptrack)
  cmds=("sh -c '$cmd'"
        "sh -c '$memtrace run -q -o $work/mt.%p.mtr -- $cmd'"
        "sh -c '$memtrace run -q --unwind fp -o $work/fp.%p.mtr -- $cmd'"
        "sh -c '$pyenv heaptrack -o $work/ht $cmd' > /dev/null 2>&1")
  if [ "$memcheck" = yes ]; then
    names+=(memcheck)
    cmds+=("sh -c '$pyenv valgrind --tool=memcheck --leak-check=full --log-file=$work/vg.%p.log $cmd'")
  fi
  rm -f "$work"/h.*.json
  for ((round = 0; round <= runs; round++)); do
    args=()
    for ((i = 0; i < ${#names[@]}; i++)); do
      j=$(((i + round) % ${#names[@]}))
      if [ "$round" -eq 0 ] && [ "${names[j]}" = memcheck ]; then
        continue # the warmup round warms the caches; memcheck takes too long for it
      fi
      args+=(-n "${names[j]}" "${cmds[j]}")
    done
    export_json=()
    if [ "$round" -gt 0 ]; then
      export_json=(--export-json "$work/h.$round.json")
    fi
    hyperfine --runs 1 --style none "${export_json[@]}" \
      --prepare "rm -f $work/*.mtr $work/ht* $work/vg.*" "${args[@]}" > /dev/null 2> "$work/hyperfine.err" ||
      { echo "bench: a run of '$name' failed:" >&2; cat "$work/hyperfine.err" >&2; exit 1; }
  done

  # One more run of each for RSS, sizes and the reports.
  rm -f "$work"/*.mtr "$work"/ht* "$work"/vg.* "$work"/*.times
  /usr/bin/time -f %M -o "$work/rss.bare" sh -c "$cmd" > /dev/null
  # the traced program's peak: /usr/bin/time runs it inside `memtrace run`
  # (PYTHONMALLOC as memtrace run would set it, since the program it starts
  # is now /usr/bin/time; the shim finds CPython in the process either way)
  sh -c "$memtrace run -q -o $work/wrapped.%p.mtr -- /usr/bin/time -f %M -o $work/rss.program env $pyenv sh -c '$cmd'" > /dev/null
  rm -f "$work"/wrapped.*.mtr
  # the consumer's peak: the `memtrace run` process itself (sh execs it)
  sh -c "exec $memtrace run -q -o $work/one.%p.mtr -- $cmd" > /dev/null &
  consumer=$!
  rss_consumer=$(peak_rss_of "$consumer")
  wait "$consumer"
  sh -c "$pyenv heaptrack -o $work/ht $cmd" > /dev/null 2>&1
  dumps=("$work"/one.*.mtr)
  dump=$(du -cb "${dumps[@]}" | tail -1 | cut -f1)
  # the first process's dumps (those whose parent is `memtrace run`: what
  # heaptrack and memcheck trace), for a like-for-like comparison
  first=()
  for d in "${dumps[@]}"; do
    ppid=$("$memtrace" report --summary --format json "$d" |
           python3 -c 'import json, sys; print(json.load(sys.stdin)["process"]["ppid"])')
    [ "$ppid" = "$consumer" ] && first+=("$d")
  done
  [ ${#first[@]} -gt 0 ] || { echo "bench: no dump of the first process of '$name'" >&2; exit 1; }
  first_dump=$(du -cb "${first[@]}" | tail -1 | cut -f1)
  htfiles=("$work"/ht*)
  htsize=$(du -cb "${htfiles[@]}" | tail -1 | cut -f1)
  # three rounds, memtrace report and heaptrack_print in turn; each file's
  # median time is kept (one run of a tool this short is too noisy a figure)
  for round in 1 2 3; do
    for d in "${dumps[@]}"; do
      time_and_rss "$work/report.times" "$d" "$memtrace" report "$d"
    done
    for h in "${htfiles[@]}"; do
      time_and_rss "$work/print.times" "$h" heaptrack_print "$h"
    done
  done
  python3 - "$work" "$runs" "$name" "$dump" "$htsize" "$(cat "$work/rss.bare")" \
    "$(cat "$work/rss.program")" "$rss_consumer" "${#dumps[@]}" "$first_dump" \
    "$(IFS=:; echo "${first[*]}")" >> "$results" <<'PY'
import json, statistics, sys
work, runs, name, dump, htsize, rss_bare, rss_program, rss_consumer, ndumps = sys.argv[1:10]
first_dump, first = sys.argv[10], sys.argv[11].split(":")
times = {}
for r in range(1, int(runs) + 1):
    for res in json.load(open("%s/h.%d.json" % (work, r)))["results"]:
        times.setdefault(res["command"], []).extend(res["times"])
median = {k: statistics.median(v) for k, v in times.items()}
def runs_of(path, only=None):  # each file's median wall time, summed; max RSS the largest
    rows = [l.replace(",", ".").split() for l in open(path)]
    rows = [r for r in rows if only is None or r[0] in only]
    per_file = {}
    for f, s, e, _ in rows:
        per_file.setdefault(f, []).append(float(e) - float(s))
    return (sum(statistics.median(t) for t in per_file.values()),
            max(int(k) for _, _, _, k in rows))
rep_s, rep_kb = runs_of(work + "/report.times")
first_s, _ = runs_of(work + "/report.times", first)
print_s, print_kb = runs_of(work + "/print.times")
mc = "%.3f" % median["memcheck"] if "memcheck" in median else "-"
print("\t".join([name, "%.3f" % median["bare"], "%.3f" % median["memtrace"],
                 "%.3f" % median["memtrace-fp"], "%.3f" % median["heaptrack"], mc,
                 dump, htsize, rss_bare, rss_program, rss_consumer, ndumps,
                 "%.3f" % rep_s, str(rep_kb), "%.3f" % print_s, str(print_kb),
                 first_dump, "%.3f" % first_s]))
PY
done
[ -s "$results" ] || { echo "bench: no workload matches BENCH_ONLY='$only'" >&2; exit 1; }

if [ -n "$only" ]; then
  out=$(mktemp --suffix=.md /tmp/memtrace-bench-results.XXXXXX)
  invocation="BENCH_ONLY='$only' bash bench/run.sh $runs"
else
  out=bench/RESULTS.md
  invocation="bash bench/run.sh $runs"
fi
python3 - "$results" "$runs" "$invocation" "$(nproc)" > "$out" <<'PY'
import sys, datetime
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
runs, invocation, cores = sys.argv[2:5]
def mib(b):
    b = int(b)
    return "%.1f MiB" % (b / 2**20) if b >= 2**20 else "%.1f KiB" % (b / 1024)
kmib = lambda kb: "%.1f MiB" % (int(kb) / 1024)
print("# memtrace benchmark results\n")
print("Written by `%s` on %s (%s cores). Each workload runs bare, under `memtrace run` with"
      " dwarf unwinding (the default) and with `--unwind fp`, under heaptrack and, on the smaller"
      " workloads, under `valgrind --tool=memcheck --leak-check=full` (\"-\" where it is not run)."
      " The runs alternate: %s, each one run of every command (hyperfine `--runs 1`, the"
      " order rotated from round to round), after one warmup round that leaves memcheck out;"
      " the first table gives the median wall time of the rounds, its ratio to the bare run and"
      " heaptrack's time over memtrace's (above 1: memtrace is faster).\n"
      % (invocation, datetime.date.today(), cores, "1 round" if runs == "1" else runs + " rounds"))
print("The other figures come from one more run of each. Peak RSS is the maximum resident set"
      " size: of the bare program and of the traced program under `memtrace run` from"
      " /usr/bin/time (run inside `memtrace run`, so it counts the program with the shim, not the"
      " consumer; the largest process of the program); of the consumer, the `memtrace run` process"
      " itself, from its VmHWM in /proc read every 10 ms. The dump size (all the dumps of the run,"
      " one per process) is set against heaptrack's file of the same workload. `memtrace report`"
      " (the default text report, to /dev/null) on that run's dumps, one after the other (times"
      " summed, largest RSS), is set against `heaptrack_print` on heaptrack's file (to /dev/null; the same sum over files if there are several):"
      " wall time, the median of 3 runs of each file (the two tools in turn), and /usr/bin/time's"
      " maximum RSS. memtrace report keeps inflated copies of compressed debug files (python3's,"
      " libc's) by build id; the bench gives it a new cache directory, so the first round makes"
      " the copies and the median is of reports that read them, as a user's second report"
      " would.\n")
print("heaptrack takes its preload out of the environment of the program's children, and"
      " memcheck runs without --trace-children: both follow the first process only; memtrace"
      " follows every process (the `dumps` column counts them: CPython's test suite starts"
      " subprocesses), and its dump size and report time count them all; the columns for the"
      " first process count only the dumps of the process `memtrace run` started (the same"
      " process the other tools trace).\n")
print("Python rows: the bare run uses CPython's own allocator (what users run); `memtrace run`"
      " sets PYTHONMALLOC=malloc and records every object with Python frames; heaptrack and"
      " memcheck are given PYTHONMALLOC=malloc too, so that all record the same allocations.\n")
print("## Wall time\n")
print("| workload | bare s | memtrace s | x bare | fp s | x bare | heaptrack s | x bare | heaptrack / memtrace | heaptrack / fp | memcheck s | x bare |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    b, m, f, h = map(float, r[1:5])
    mc = r[5]
    mcs = ("%.3f | %.2f" % (float(mc), float(mc) / b)) if mc != "-" else "- | -"
    print("| %s | %.3f | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f | %.2f | %.2f | %s |" % (
        r[0], b, m, m / b, f, f / b, h, h / b, h / m, h / f, mcs))
print("\n## Memory and dump size\n")
print("| workload | RSS bare | RSS program under memtrace | RSS consumer | dumps | dump | heaptrack file | dump / heaptrack file | first process's dump | it / heaptrack file |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    dump, ht, rb, rp, rc, nd = r[6:12]
    fd = int(r[16])
    print("| %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %.2f |" % (
        r[0], kmib(rb), kmib(rp), kmib(rc), nd, mib(dump), mib(ht), int(dump) / max(int(ht), 1),
        mib(fd), fd / max(int(ht), 1)))
print("\n## Reading the result: `memtrace report` against `heaptrack_print`\n")
print("| workload | report s | report RSS | heaptrack_print s | heaptrack_print RSS | heaptrack_print / report, time | heaptrack_print / report, RSS | report s, first process | heaptrack_print / it |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    rs, rk, ps, pk = float(r[12]), int(r[13]), float(r[14]), int(r[15])
    fs = float(r[17])
    print("| %s | %.3f | %s | %.3f | %s | %.2f | %.2f | %.3f | %.2f |" % (
        r[0], rs, kmib(rk), ps, kmib(pk), ps / rs, pk / rk, fs, ps / fs))
PY
if [ -n "$only" ]; then
  cat "$out"
  echo "bench: BENCH_ONLY set: results in $out, bench/RESULTS.md left as it is" >&2
fi
