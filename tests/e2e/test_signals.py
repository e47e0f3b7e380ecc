#!/usr/bin/env python3
"""Allocations made by a signal handler that interrupts memtrace while it
records an event of the same thread are recorded too (deferred, then
written): the handler's and the main loop's allocation counts in the report
equal what the program counted, under both unwinders, and nothing is left
live."""
import json
import os
import re
import subprocess

import mtlib


def body(checker):
    ctx = checker.ctx
    for unwind in ("dwarf", "fp"):
        dump = os.path.join(ctx.workdir, "%s.mtr" % unwind)
        result = mtlib.memtrace_run(ctx, [ctx.prog("signal_alloc"), "1000000"], dump,
                                    options=["--unwind", unwind], logdir=ctx.workdir, tag=unwind)
        checker.eq("%s: memtrace exits 0" % unwind, result.returncode, 0)
        m = re.search(r"main (\d+) handler (\d+)", mtlib.read_text(
            os.path.join(ctx.workdir, unwind + ".out")))
        if not checker.check("%s: the victim printed its counts" % unwind, m is not None):
            continue
        main_count, handler_count = int(m.group(1)), int(m.group(2))
        checker.check("%s: the timer fired during the run" % unwind, handler_count > 100,
                      "handler %d" % handler_count)
        out = subprocess.run([ctx.memtrace, "report", "--allocations", "--format", "json", dump],
                             capture_output=True, text=True, timeout=120)
        rep = json.loads(out.stdout)
        sites = rep["allocations"]["sites"]
        in_handler = sum(s["count"] for s in sites
                         if any(f["function"] == "on_alarm" for f in s["stack"]))
        in_main = sum(s["count"] for s in sites
                      if s["stack"] and s["stack"][0]["function"] == "main")
        checker.eq("%s: handler allocations recorded" % unwind, in_handler, handler_count)
        checker.eq("%s: main loop allocations recorded" % unwind, in_main, main_count)
        t = rep["totals"]
        checker.eq("%s: frees == allocations" % unwind, t["frees"], t["allocations"])
        checker.eq("%s: nothing live at exit" % unwind, t["in_use_blocks"], 0)
        checker.check("%s: no warning of lost events" % unwind,
                      "could not be recorded" not in mtlib.read_text(
                          os.path.join(ctx.workdir, unwind + ".err")))


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__)
    mtlib.run_test(ctx, "signals", body)
