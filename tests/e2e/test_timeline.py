#!/usr/bin/env python3
"""`memtrace timeline` (SPEC section 6): heap in use and RSS over time.

On tests/programs/tl_phases (a heap that ramps up, spikes to its peak and
falls, over ~150 ms so that RSS is sampled), against `memtrace report`:
- SVG: well-formed XML; the peak marker carries report's peak_bytes,
  peak_blocks and peak_time_ns, and its label says "peak SIZE at TIME" with
  them formatted; the axes are labelled with units; the heap and RSS series
  are drawn.
- CSV: the header; times in order; the heap column's highest value is
  peak_bytes, first reached at peak_time_ns; the last row is in_use_bytes and
  in_use_blocks; RSS values are present and all > 0.
- --points bounds the rows (and keeps the peak and the end exact); without
  -o the output goes to standard output; --help; a missing dump, a bad
  option: exit 1, one line, no output file.
"""
import csv
import io
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import mtlib

SVG = "{http://www.w3.org/2000/svg}"


def fmt_bytes(v):
    """report/text_format.h fmt_bytes."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    x, u = float(v), 0
    while x >= 1024 and u < 4:
        x /= 1024
        u += 1
    return "%d B" % v if u == 0 else "%.1f %s" % (x, units[u])


def fmt_time(ns):
    """report/export/timeline_output.c fmt_time."""
    if ns < 1000:
        return "%d ns" % ns
    if ns < 1000000:
        return "%.3f \u00b5s" % (ns / 1e3)
    if ns < 1000000000:
        return "%.3f ms" % (ns / 1e6)
    return "%.3f s" % (ns / 1e9)


def timeline(ctx, *args):
    return subprocess.run([ctx.memtrace, "timeline", *args], capture_output=True, timeout=120)


def read_csv(checker, label, text):
    rows = list(csv.reader(io.StringIO(text)))
    if not checker.eq("%s: header" % label, rows[0] if rows else None,
                      ["time_ns", "heap_bytes", "heap_blocks", "rss_bytes"]):
        return []
    out = []
    for r in rows[1:]:
        out.append((int(r[0]), int(r[1]), int(r[2]), int(r[3]) if r[3] else None))
    return out


def check_series(checker, label, rows, t):
    if not checker.check("%s: has rows" % label, len(rows) > 2, "%d rows" % len(rows)):
        return
    times = [r[0] for r in rows]
    checker.check("%s: times in order" % label, times == sorted(times))
    heap = [r[1] for r in rows]
    checker.eq("%s: highest heap_bytes = report's peak_bytes" % label, max(heap), t["peak_bytes"])
    first = next(r for r in rows if r[1] == max(heap))
    checker.eq("%s: the peak is first reached at peak_time_ns" % label, first[0], t["peak_time_ns"])
    checker.eq("%s: heap_blocks at the peak = peak_blocks" % label, first[2], t["peak_blocks"])
    checker.eq("%s: last row's heap_bytes = in_use_bytes" % label, rows[-1][1], t["in_use_bytes"])
    checker.eq("%s: last row's heap_blocks = in_use_blocks" % label, rows[-1][2], t["in_use_blocks"])
    rss = [r[3] for r in rows if r[3] is not None]
    checker.check("%s: RSS values present" % label, len(rss) >= 3, "%d values" % len(rss))
    checker.check("%s: every RSS value > 0" % label, rss and all(v > 0 for v in rss))
    checker.check("%s: no time beyond the run's duration" % label,
                  times[-1] <= t["duration_ns"] if "duration_ns" in t else True)


def check_svg(checker, path, t):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        checker.check("svg: well-formed XML", False, str(error))
        return
    checker.check("svg: well-formed XML", True)
    checker.eq("svg: root element", root.tag, SVG + "svg")
    peak = [g for g in root.iter(SVG + "g") if g.get("id") == "peak"]
    if not checker.eq("svg: one peak marker", len(peak), 1):
        return
    peak = peak[0]
    checker.eq("svg: marker data-bytes = peak_bytes", peak.get("data-bytes"), str(t["peak_bytes"]))
    checker.eq("svg: marker data-blocks = peak_blocks", peak.get("data-blocks"),
               str(t["peak_blocks"]))
    checker.eq("svg: marker data-time-ns = peak_time_ns", peak.get("data-time-ns"),
               str(t["peak_time_ns"]))
    label = " ".join("".join(e.itertext()) for e in peak.iter(SVG + "text"))
    checker.eq("svg: marker label", label, "peak %s at %s" % (fmt_bytes(t["peak_bytes"]),
                                                            fmt_time(t["peak_time_ns"])))
    checker.check("svg: the marker is drawn", peak.find(SVG + "circle") is not None)
    texts = ["".join(e.itertext()) for e in root.iter(SVG + "text")]
    checker.check("svg: byte axis labelled with units",
                  any(re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", s) for s in texts), repr(texts[:20]))
    checker.check("svg: time axis labelled with units",
                  any(re.fullmatch(r"[\d.]+ (ns|\u00b5s|ms|s)", s) for s in texts) and
                  any(re.fullmatch(r"[1-9][\d.]* (ms|s)", s) for s in texts), repr(texts[:20]))
    paths = {p.get("id"): p.get("d") for p in root.iter(SVG + "path")}
    checker.check("svg: heap series drawn", len(paths.get("heap") or "") > 100)
    rss = [p for p in root.iter(SVG + "polyline") if p.get("id") == "rss"]
    checker.check("svg: RSS series drawn", rss and len(rss[0].get("points").split()) >= 3)
    checker.check("svg: no script, nothing external",
                  not list(root.iter(SVG + "script")) and "http://" not in
                  mtlib.read_text(path).replace("http://www.w3.org/2000/svg", ""))


def body(checker):
    ctx = checker.ctx
    dump = os.path.join(ctx.workdir, "tl.mtr")
    result = mtlib.memtrace_run(ctx, [ctx.prog("tl_phases")], dump, logdir=ctx.workdir, tag="tl")
    checker.eq("memtrace run exits 0", result.returncode, 0)
    rep = mtlib.report(ctx, dump)
    t = dict(rep["totals"], duration_ns=rep["process"]["duration_ns"])
    checker.check("victim: the peak is above the end (a real spike)",
                  t["peak_bytes"] >= 12000000 > t["in_use_bytes"] > 0, repr(t))

    svg = os.path.join(ctx.workdir, "tl.svg")
    out = timeline(ctx, dump, "-o", svg)
    checker.eq("svg: exit 0", out.returncode, 0)
    checker.eq("svg: nothing on stderr", out.stderr.decode(), "")
    if os.path.exists(svg):
        check_svg(checker, svg, t)

    path = os.path.join(ctx.workdir, "tl.csv")
    out = timeline(ctx, "--format", "csv", "--output", path, dump)
    checker.eq("csv: exit 0", out.returncode, 0)
    text = mtlib.read_text(path)
    rows = read_csv(checker, "csv", text)
    check_series(checker, "csv", rows, t)
    checker.check("csv: at most 6 rows per slice (1000 by default)", len(rows) <= 6000)

    out = timeline(ctx, "--format", "csv", dump)
    checker.eq("csv to standard output: same as -o", out.stdout.decode(), text)

    out = timeline(ctx, "--format", "csv", "--points", "10", dump)
    few = read_csv(checker, "--points 10", out.stdout.decode())
    checker.check("--points 10: at most 60 rows", 0 < len(few) <= 60, "%d rows" % len(few))
    check_series(checker, "--points 10", few, t)

    out = timeline(ctx, "--help")
    checker.check("--help: exit 0 and the options",
                  out.returncode == 0 and all(o in out.stdout.decode() for o in
                                               ("--output", "--format", "--points")))
    for label, args in (("missing dump", [os.path.join(ctx.workdir, "nope.mtr")]),
                        ("bad --format", ["--format", "png", dump]),
                        ("bad --points", ["--points", "1", dump]),
                        ("no dump", [])):
        target = os.path.join(ctx.workdir, "bad.svg")
        out = timeline(ctx, *args, "-o", target)
        err = out.stderr.decode().strip()
        checker.check("%s: exit 1, one line on stderr, no output file" % label,
                      out.returncode == 1 and len(err.splitlines()) == 1 and
                      not os.path.exists(target), "exit %d, stderr %r" % (out.returncode, err))


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__)
    mtlib.run_test(ctx, "timeline", body)
