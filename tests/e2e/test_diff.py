#!/usr/bin/env python3
"""`memtrace diff BASE NEW` (SPEC section 6): which stacks grew, in leaks and
at the peak.

tests/programs/diff_leaker N P leaks N blocks of 100 bytes (leak_big), N of 8
(leak_small), 20 - N of 10 (leak_shrink) and 4 of 32 (leak_stable), then
holds P blocks of 1000 bytes at its peak (peak_hold). Runs A = (5, 10),
B = (12, 30), A2 = A again, C = (5, 30):
- A -> B, JSON: each site's change is the exact byte and block difference
  (and equals the difference of `report`'s leak sites); leak_stable, the
  same in both, is not listed; both lists are sorted by the size of the
  change; the totals' changes are those of the reports. Sites match across
  runs although ASLR moves their addresses.
- text: the same order, the exact changes; --top cuts the lists.
- --fail-on-growth: exit 1 when the growth of the bytes in use at exit
  (A -> B: 686) or of the peak (A -> C: 20000) exceeds BYTES, 0 at exactly
  BYTES.
- A -> A2: no change at all, and --fail-on-growth 0 passes.
- trouble (one dump, a missing dump, a bad option): exit 2, one line.
"""
import json
import os
import re
import subprocess

import mtlib

RUNS = {"A": (5, 10), "B": (12, 30), "A2": (5, 10), "C": (5, 30)}


def diff(ctx, *args):
    out = subprocess.run([ctx.memtrace, "diff", *args], capture_output=True, text=True,
                         timeout=120)
    return out


def site_of(sites, function):
    found = [s for s in sites if s["stack"] and s["stack"][0]["function"] == function]
    return found[0] if len(found) == 1 else None


def leaked_by(sites, function):
    """Bytes of the report's leak sites whose innermost frame is function."""
    return sum(s["bytes"] for s in sites if s["stack"] and s["stack"][0]["function"] == function)


def expected_leaks(base, new):
    """function -> (change in bytes, change in blocks) at exit."""
    (n0, _), (n1, _) = base, new
    return {"leak_big": (100 * (n1 - n0), n1 - n0), "leak_small": (8 * (n1 - n0), n1 - n0),
            "leak_shrink": (10 * (n0 - n1), n0 - n1)}


def sorted_by_change(sites):
    keys = [abs(s["change_bytes"]) for s in sites]
    return keys == sorted(keys, reverse=True)


def check_sites(checker, label, sites, want):
    got = {}
    for s in sites:
        fn = s["stack"][0]["function"] if s["stack"] else None
        got[fn] = (s["change_bytes"], s["change_blocks"])
        checker.eq("%s %s: change = new - base" % (label, fn),
                   (s["change_bytes"], s["change_blocks"]),
                   (s["new_bytes"] - s["base_bytes"], s["new_blocks"] - s["base_blocks"]))
    want = {fn: v for fn, v in want.items() if v != (0, 0)}
    checker.eq("%s: the sites that changed, by exact bytes and blocks" % label, got, want)
    checker.check("%s: sorted by the size of the change" % label, sorted_by_change(sites),
                  repr([s["change_bytes"] for s in sites]))


def body(checker):
    ctx = checker.ctx
    dumps, reps, leaks = {}, {}, {}
    for name, (n, p) in RUNS.items():
        dumps[name] = os.path.join(ctx.workdir, name + ".mtr")
        result = mtlib.memtrace_run(ctx, [ctx.prog("diff_leaker"), str(n), str(p)], dumps[name],
                                    logdir=ctx.workdir, tag=name)
        checker.eq("run %s: exit 0" % name, result.returncode, 0)
        reps[name] = mtlib.report(ctx, dumps[name])["totals"]
        out = subprocess.run([ctx.memtrace, "report", "--leaks", "--format", "json", dumps[name]],
                             capture_output=True, text=True, timeout=120)
        leaks[name] = json.loads(out.stdout)["leaks"]["sites"]

    # A -> B, JSON
    out = diff(ctx, "--format", "json", dumps["A"], dumps["B"])
    checker.eq("A->B json: exit 0", out.returncode, 0)
    try:
        d = json.loads(out.stdout)
    except ValueError as error:
        raise mtlib.TestError("diff --format json printed no JSON (%s): %s" % (error, out.stdout[:300]))
    checker.eq("json: format and version", (d.get("format"), d.get("version")), ("memtrace-diff", 1))
    for key in ("in_use_bytes", "in_use_blocks", "peak_bytes", "peak_blocks", "bytes_allocated",
                "allocations"):
        checker.eq("json: change.%s = the reports' difference" % key, d["change"][key],
                   reps["B"][key] - reps["A"][key])
        checker.eq("json: base.totals.%s = report A" % key, d["base"]["totals"][key], reps["A"][key])
    want = expected_leaks(RUNS["A"], RUNS["B"])
    check_sites(checker, "A->B leaks", d["leaks"]["sites"], want)
    checker.eq("A->B leaks: order", [s["stack"][0]["function"] for s in d["leaks"]["sites"]],
               ["leak_big", "leak_shrink", "leak_small"])
    for fn in ("leak_big", "leak_small", "leak_shrink"):
        # the report has one site per (leak kind, stack): add the kinds up
        a, b = leaked_by(leaks["A"], fn), leaked_by(leaks["B"], fn)
        s = site_of(d["leaks"]["sites"], fn)
        if checker.check("%s: in both reports and the diff" % fn, a and b and s):
            checker.eq("%s: change = report B - report A" % fn, s["change_bytes"], b - a)
    a = [s["stack"][0]["address"] for s in leaks["A"] if s["stack"][0]["function"] == "leak_big"]
    b = [s["stack"][0]["address"] for s in leaks["B"] if s["stack"][0]["function"] == "leak_big"]
    if a and b and a[0] == b[0]:
        print("  note: leak_big has the same address in both runs (no ASLR?)")
    peak_want = dict(want, peak_hold=(1000 * (RUNS["B"][1] - RUNS["A"][1]),
                                      RUNS["B"][1] - RUNS["A"][1]))
    check_sites(checker, "A->B peak", d["peak"]["sites"], peak_want)
    checker.check("A->B peak: peak_hold first",
                  d["peak"]["sites"] and d["peak"]["sites"][0]["stack"][0]["function"] == "peak_hold")
    checker.check("json: no fail_on_growth without the option", "fail_on_growth" not in d)
    checker.check("json: frames have function, file, line, module",
                  all({"function", "file", "line", "module"} <= set(f) for s in d["leaks"]["sites"]
                      for f in s["stack"]))

    # text
    out = diff(ctx, dumps["A"], dumps["B"])
    checker.eq("A->B text: exit 0", out.returncode, 0)
    text = out.stdout
    leaks_part = text.split("\nPeak:")[0]
    order = re.findall(r"^\s+(leak_\w+|peak_hold)\s", leaks_part, re.M)
    checker.eq("text: leak stacks in order of change", order, ["leak_big", "leak_shrink", "leak_small"])
    checker.check("text: exact changes", all(s in leaks_part for s in ("+700 B", "-70 B", "+56 B")),
                  leaks_part[:600])
    checker.check("text: totals line for the peak", re.search(r"^\s+peak\s+10,818\s+31,504\s+\+20,686 B",
                                                              text, re.M) is not None, text[:800])
    out = diff(ctx, "--top", "1", dumps["A"], dumps["B"])
    checker.check("--top 1: one stack per list", "#2" not in out.stdout and
                  out.stdout.count("#1 ") == 2 and "more (--top 0 shows all)" in out.stdout)
    out = diff(ctx, "--top", "2", "--format", "json", dumps["A"], dumps["B"])
    d2 = json.loads(out.stdout)
    checker.eq("--top 2 json: two stacks per list",
               (len(d2["leaks"]["sites"]), len(d2["peak"]["sites"])), (2, 2))

    # the gate
    growth_leak = reps["B"]["in_use_bytes"] - reps["A"]["in_use_bytes"]
    growth_peak = reps["C"]["peak_bytes"] - reps["A"]["peak_bytes"]
    checker.eq("victim: leaked growth A->B", growth_leak, 686)
    checker.eq("victim: peak growth A->C, no leak growth", (growth_peak, reps["C"]["in_use_bytes"] -
                                                            reps["A"]["in_use_bytes"]), (20000, 0))
    for base, new, limit, status in (("A", "B", growth_leak - 1, 1), ("A", "B", 100000, 0),
                                     ("A", "C", growth_peak - 1, 1), ("A", "C", growth_peak, 0),
                                     ("B", "A", 0, 0)):
        out = diff(ctx, "--fail-on-growth", str(limit), "--format", "json", dumps[base], dumps[new])
        label = "--fail-on-growth %d, %s->%s" % (limit, base, new)
        checker.eq("%s: exit %d" % (label, status), out.returncode, status)
        checker.eq("%s: json says so" % label, json.loads(out.stdout).get("fail_on_growth"),
                   {"bytes": limit, "failed": bool(status)})
        checker.check("%s: the reason on stderr when it fails" % label,
                      bool(status) == ("--fail-on-growth" in out.stderr), out.stderr)
    out = diff(ctx, "--fail-on-growth", str(growth_leak), dumps["A"], dumps["B"])
    checker.eq("--fail-on-growth 686, A->B: exit 1 (the peak grew more)", out.returncode, 1)

    # identical runs
    out = diff(ctx, "--format", "json", "--fail-on-growth", "0", dumps["A"], dumps["A2"])
    checker.eq("A->A2: exit 0 with --fail-on-growth 0", out.returncode, 0)
    same = json.loads(out.stdout)
    checker.eq("A->A2: no stack changed", (same["leaks"]["sites"], same["peak"]["sites"]), ([], []))
    checker.check("A->A2: every total unchanged", all(v == 0 for v in same["change"].values()),
                  repr(same["change"]))
    out = diff(ctx, dumps["A"], dumps["A2"])
    checker.eq("A->A2 text: 'no change' in both lists", out.stdout.count("no change"), 2)

    # trouble
    for label, args in (("one dump", [dumps["A"]]),
                        ("missing dump", [dumps["A"], os.path.join(ctx.workdir, "nope.mtr")]),
                        ("bad option", ["--frobnicate", dumps["A"], dumps["B"]]),
                        ("bad --format", ["--format", "xml", dumps["A"], dumps["B"]]),
                        ("bad --fail-on-growth", ["--fail-on-growth", "-1", dumps["A"], dumps["B"]])):
        out = diff(ctx, *args)
        checker.check("%s: exit 2, one line on stderr, nothing on stdout" % label,
                      out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and
                      out.stdout == "", "exit %d, stderr %r" % (out.returncode, out.stderr))
    out = diff(ctx, "--help")
    checker.check("--help: exit 0 and the options", out.returncode == 0 and all(
        o in out.stdout for o in ("--format", "--top", "--fail-on-growth")))


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__)
    mtlib.run_test(ctx, "diff", body)
