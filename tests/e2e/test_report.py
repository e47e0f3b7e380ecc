#!/usr/bin/env python3
"""`memtrace report` (SPEC sections 6 and 7): symbolized sites and the JSON
shape.

- Each leak site's innermost frame names the function and line that
  allocated: in a function inlined at -O2 (marked inlined, its caller next),
  in a plain function, in a C++ method (demangled), in a library dlclosed
  before exit, and module+offset in a stripped binary.
- The JSON has SPEC section 7's shape; in_use equals the sum of by_kind; the
  sites of each report add up to the totals (leaks to in-use, peak sites to
  the peak, allocation counts to the allocations); lists are sorted; --top,
  --include, --exclude and --summary do what they say; no frame of memtrace
  itself appears.
"""
import json
import re
import subprocess

import mtlib

FRAME_KEYS = {"function", "file", "line", "module", "address", "inlined", "language"}


def report(ctx, dump, *options):
    out = subprocess.run([ctx.memtrace, "report", *options, dump], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise mtlib.TestError("report %s failed: %s" % (" ".join(options), out.stderr.strip()))
    return out.stdout


def record(checker, name, argv):
    ctx = checker.ctx
    dump = "%s/%s.mtr" % (ctx.workdir, name)
    result = mtlib.memtrace_run(ctx, argv, dump, logdir=ctx.workdir, tag=name)
    checker.eq("%s: memtrace exits 0" % name, result.returncode, 0)
    marks = {}
    for line in mtlib.read_text("%s/%s.out" % (ctx.workdir, name)).splitlines():
        m = re.match(r"LEAK (\d+) (.+) (\d+)$", line)
        if m:
            marks[int(m.group(1))] = (m.group(2), int(m.group(3)))
    return dump, marks


def leak_site(rep, size):
    sites = [s for s in rep["leaks"]["sites"] if s["bytes"] == size and s["blocks"] == 1]
    return sites[0] if len(sites) == 1 else None


def check_innermost(checker, label, site, function, line, file_suffix, inlined=False):
    if not checker.check("%s: one leak site of that size" % label, site is not None):
        return
    top = site["stack"][0]
    checker.eq("%s: innermost function" % label, top["function"], function)
    checker.eq("%s: innermost line" % label, top["line"], line)
    checker.check("%s: file ends with %s" % (label, file_suffix),
                  (top["file"] or "").endswith(file_suffix), "file %r" % top["file"])
    checker.eq("%s: inlined flag" % label, top["inlined"], inlined)


def check_shape(checker, rep):
    checker.eq("format", rep.get("format"), "memtrace-report")
    checker.eq("version", rep.get("version"), 1)
    for key in ("process", "totals", "leaks", "peak", "allocations"):
        checker.check("has %s" % key, key in rep)
    p = rep["process"]
    checker.check("process fields", all(k in p for k in ("pid", "ppid", "command", "exit", "duration_ns"))
                  and isinstance(p["command"], list) and set(p["exit"]) >= {"status", "signal"})
    t = rep["totals"]
    checker.check("totals fields", set(t) >= set(mtlib.TOTALS_KEYS) and
                  all(isinstance(v, int) for v in t.values()))
    kinds = rep["leaks"]["by_kind"]
    checker.eq("by_kind kinds", sorted(kinds), sorted(["definite", "indirect", "possible",
                                                       "reachable", "unknown"]))
    checker.eq("in_use_bytes = sum of by_kind", t["in_use_bytes"],
               sum(k["bytes"] for k in kinds.values()))
    checker.eq("in_use_blocks = sum of by_kind", t["in_use_blocks"],
               sum(k["blocks"] for k in kinds.values()))
    frames = [f for section in ("leaks", "peak", "allocations")
              for s in rep[section]["sites"] for f in s["stack"]]
    checker.check("every frame has the SPEC keys", frames and all(set(f) == FRAME_KEYS for f in frames))
    checker.check("addresses are hex strings",
                  all(re.fullmatch(r"0x[0-9a-f]+", f["address"]) for f in frames))
    checker.check("no frame of memtrace itself",
                  not any((f["module"] or "").endswith("libmemtrace.so") for f in frames))
    # the sites add up to the totals
    leaks = rep["leaks"]["sites"]
    checker.eq("leak sites add up to in_use_bytes", sum(s["bytes"] for s in leaks), t["in_use_bytes"])
    checker.eq("leak sites add up to in_use_blocks", sum(s["blocks"] for s in leaks), t["in_use_blocks"])
    peak = rep["peak"]
    checker.eq("peak.bytes = totals.peak_bytes", peak["bytes"], t["peak_bytes"])
    checker.eq("peak sites add up to the peak", sum(s["bytes"] for s in peak["sites"]), t["peak_bytes"])
    checker.eq("peak sites' blocks add up", sum(s["blocks"] for s in peak["sites"]), t["peak_blocks"])
    allocs = rep["allocations"]["sites"]
    checker.eq("allocation counts add up", sum(s["count"] for s in allocs), t["allocations"])
    checker.eq("allocation bytes add up", sum(s["bytes"] for s in allocs), t["bytes_allocated"])
    checker.check("leaks sorted by bytes", [s["bytes"] for s in leaks] ==
                  sorted((s["bytes"] for s in leaks), reverse=True))
    checker.check("allocations sorted by count", [s["count"] for s in allocs] ==
                  sorted((s["count"] for s in allocs), reverse=True))


def body(checker):
    ctx = checker.ctx

    dump, marks = record(checker, "leaks", [ctx.prog("report_leaks")])
    rep = json.loads(report(ctx, dump, "--format", "json"))
    check_shape(checker, rep)
    fn, line = marks[2001]
    site = leak_site(rep, 2001)
    check_innermost(checker, "inlined", site, fn, line, "report_leaks.c", inlined=True)
    if site and len(site["stack"]) > 1:
        checker.eq("inlined: the caller comes next, not inlined", (site["stack"][1]["function"],
                   site["stack"][1]["inlined"]), ("outer", False))
    fn, line = marks[2002]
    check_innermost(checker, "plain", leak_site(rep, 2002), fn, line, "report_leaks.c")

    dump, marks = record(checker, "cxx", [ctx.prog("report_leaks_cxx")])
    rep = json.loads(report(ctx, dump, "--leaks", "--format", "json"))
    fn, line = marks[2003]
    check_innermost(checker, "c++ method", leak_site(rep, 2003), fn, line, "report_leaks_cxx.cc")
    checker.check("--leaks alone: no peak section", "peak" not in rep and "leaks" in rep)

    dump, _ = record(checker, "stripped", [ctx.prog("report_leaks_stripped")])
    rep = json.loads(report(ctx, dump, "--leaks", "--format", "json"))
    site = leak_site(rep, 2001)
    if checker.check("stripped: one leak site of 2001 bytes", site is not None):
        top = site["stack"][0]
        checker.check("stripped: no function, file or line",
                      top["function"] is None and top["file"] is None and top["line"] is None,
                      repr(top))
        checker.check("stripped: the module is the stripped binary",
                      (top["module"] or "").endswith("report_leaks_stripped"))
    text = report(ctx, dump, "--leaks")
    checker.check("stripped: text shows module+0xOFFSET",
                  re.search(r"report_leaks_stripped\+0x[0-9a-f]+", text) is not None)

    lib = ctx.prog("mt_leaklib")
    dump, _ = record(checker, "dlclose", [ctx.prog("dlopen_main"), lib, "100"])
    rep = json.loads(report(ctx, dump, "--leaks", "--format", "json"))
    lib_sites = [s for s in rep["leaks"]["sites"] if s["stack"] and
                 s["stack"][0]["function"] == "leaklib_run"]
    kept = [i for i in range(100) if i % 4 == 0]
    checker.eq("dlclosed library: leaked blocks from leaklib_run",
               sum(s["blocks"] for s in lib_sites), len(kept))
    checker.eq("dlclosed library: their bytes", sum(s["bytes"] for s in lib_sites),
               sum(24 + 8 * (i % 10) for i in kept))
    checker.check("dlclosed library: file and line of the allocation",
                  lib_sites and all(s["stack"][0]["file"].endswith("leaklib.c") and
                                    s["stack"][0]["line"] == 22 for s in lib_sites),
                  repr([s["stack"][0] for s in lib_sites][:2]))

    # options on the sample program
    dump, _ = record(checker, "leaky", [ctx.prog("leaky")])
    full = json.loads(report(ctx, dump, "--format", "json"))
    check_shape(checker, full)
    top1 = json.loads(report(ctx, dump, "--format", "json", "--top", "1"))
    checker.check("--top 1 keeps one site per list",
                  all(len(top1[k]["sites"]) == 1 for k in ("leaks", "peak", "allocations")))
    summary = json.loads(report(ctx, dump, "--summary", "--format", "json"))
    checker.check("--summary: process and totals only",
                  set(summary) == {"format", "version", "process", "totals", "checked",
                                   "unchecked_reasons"})
    checker.eq("--summary: same totals", summary["totals"], full["totals"])
    inc = json.loads(report(ctx, dump, "--leaks", "--format", "json", "--include", "make_list"))
    checker.check("--include make_list: only its sites", inc["leaks"]["sites"] and all(
        any(f["function"] == "make_list" for f in s["stack"]) for s in inc["leaks"]["sites"]))
    exc = json.loads(report(ctx, dump, "--leaks", "--format", "json", "--exclude", "make_mess*"))
    checker.check("--exclude make_mess*: its sites are gone", not any(
        f["function"] == "make_message" for s in exc["leaks"]["sites"] for f in s["stack"]))
    kept = [s for s in full["leaks"]["sites"]
            if not any(f["function"] == "make_message" for f in s["stack"])]
    checker.check("--exclude removed something", len(kept) < len(full["leaks"]["sites"]))
    checker.eq("--exclude keeps the others", len(exc["leaks"]["sites"]), len(kept))
    text = report(ctx, dump)
    checker.check("text: sections", all(h in text for h in ("Leaks:", "Peak:", "Allocations:",
                                                           "Temporary:")))
    checker.check("text: paths relative, with lines",
                  re.search(r"make_list\s+examples/leaky\.c:\d+", text) is not None or
                  re.search(r"make_list\s+\S*leaky\.c:\d+", text) is not None)
    checker.check("text: no colour when not a terminal", "\033[" not in text)


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__)
    mtlib.run_test(ctx, "report", body)
