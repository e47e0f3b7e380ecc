#!/usr/bin/env python3
"""Fork children that end at once are scanned (issue 17, point 2).
tests/programs/fork_exit.c forks CHILDREN children without waiting; each
leaks one 64-byte block and calls exit(0) at once, often before the consumer
has read the parent's fork record (the child's inherited heap). The scan
request of such a child must wait for that snapshot, never be refused: in
every one of RUNS runs, every child's summary says "definitely lost: 64
bytes in 1 blocks" and none says "not scanned"; the parent leaks nothing;
on the first run `memtrace check --max-leaked 64` passes on all the dumps
(it fails on a dump that was not scanned).

usage: test_fork_scan.py ... [--children N] [--runs N]
"""
import os
import re

import mtlib


def add_arguments(parser):
    parser.add_argument("--children", type=int, default=500)
    parser.add_argument("--runs", type=int, default=10)


def body(checker):
    ctx = checker.ctx
    n, runs = ctx.args.children, ctx.args.runs
    prog = ctx.prog("fork_exit")
    for run in range(runs):
        out = ctx.subdir("run%d" % run)
        result = mtlib.memtrace_run(ctx, [prog, str(n)], os.path.join(out, "%p.mtr"),
                                    logdir=out, tag="mt", timeout=600)
        label = "run %d" % (run + 1)
        checker.eq("%s: memtrace exits 0" % label, result.returncode, 0)
        dumps = mtlib.dumps_in(out)
        checker.eq("%s: one dump per process" % label, len(dumps), n + 1)
        err = mtlib.read_text(os.path.join(out, "mt.err"))
        definite = re.findall(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", err)
        children = sum(1 for d in definite if d == ("64", "1"))
        unscanned = len(re.findall(r"not scanned: ", err))
        checker.eq("%s: children whose 64 bytes are definitely lost" % label, children, n)
        checker.eq("%s: processes not scanned" % label, unscanned, 0)
        if run == 0:
            check = mtlib.run([ctx.memtrace, "check", "--max-leaked", "64"] + dumps,
                              stdout_path=os.path.join(out, "check.out"),
                              stderr_path=os.path.join(out, "check.err"), timeout=600)
            checker.eq("%s: check --max-leaked 64 passes on every dump" % label,
                       check.returncode, 0)
        print("  %s: %d of %d children definite 64/1, %d not scanned"
              % (label, children, n, unscanned))


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(ctx, "fork_scan", body)
