#!/usr/bin/env python3
"""The shim's own DWARF unwinder (preload/unwind.c) against libunwind: with
MEMTRACE_UNWIND_VERIFY=1 every stack the shim captures is unwound both ways
and each difference is reported; the shim prints one line a process at exit
(walks, walks left to libunwind, differences, walks that reused the last
walk's outer frames). Every process must report walks and no difference.

    --case shapes   tests/programs/unwind_shapes.c at -O2, -O2 with frame
                    pointers and -O0: recursion of changing depth, VLAs,
                    a realigned stack, calls through pointers, 4 threads;
                    none may need libunwind, most walks must reuse the
                    last one, and the report counts every allocation
    --case signals  signal_alloc: a timer's handler allocates (its walks go
                    through the signal frame, which libunwind takes)
    --case dlopen   dlopen_main: a library loaded, called and unloaded
    --case real     sqlite3, perl and python3 on small workloads
"""
import json
import os
import re
import subprocess

import mtlib

LINE = re.compile(r"unwind verify: pid (\d+): (\d+) walks, (\d+) by libunwind, (\d+) differ; "
                  r"(\d+) reused")


def verified(checker, ctx, tag, argv, stdin=None):
    """Runs argv under memtrace with the verification on; checks every
    process's line; returns the lines' figures."""
    env = dict(os.environ, MEMTRACE_UNWIND_VERIFY="1")
    result = mtlib.memtrace_run(ctx, argv, os.path.join(ctx.workdir, tag + ".%p.mtr"), env=env,
                                stdin=stdin, logdir=ctx.workdir, tag=tag, timeout=300)
    checker.eq("%s: exit 0" % tag, result.returncode, 0)
    err = mtlib.read_text(os.path.join(ctx.workdir, tag + ".err"))
    lines = [tuple(int(x) for x in m.groups()) for m in LINE.finditer(err)]
    checker.check("%s: each process reports" % tag, lines, mtlib.tail(err))
    for pid, walks, fallbacks, differ, reused in lines:
        checker.check("%s: pid %d walked" % (tag, pid), walks > 0)
        checker.eq("%s: pid %d: stacks that differ from libunwind's" % (tag, pid), differ, 0)
    checker.check("%s: no difference printed" % tag, "differs:" not in err,
                  mtlib.tail(err))
    return lines


def shapes(checker, ctx):
    for prog in ("unwind_shapes_O2", "unwind_shapes_fp", "unwind_shapes_O0"):
        lines = verified(checker, ctx, prog, [ctx.prog(prog)])
        for pid, walks, fallbacks, differ, reused in lines:
            checker.eq("%s: walks left to libunwind" % prog, fallbacks, 0)
            checker.check("%s: most walks reuse the last one" % prog, reused * 2 > walks,
                          "%d of %d" % (reused, walks))
        out = mtlib.read_text(os.path.join(ctx.workdir, prog + ".out"))
        m = re.search(r"allocated (\d+)", out)
        dumps = mtlib.dumps_in(ctx.workdir)
        dumps = [d for d in dumps if os.path.basename(d).startswith(prog + ".")]
        if checker.check("%s: one dump, and the count printed" % prog, m and len(dumps) == 1):
            out = subprocess.run([ctx.memtrace, "report", "--allocations", "--top", "0",
                                  "--format", "json", dumps[0]],
                                 capture_output=True, text=True, timeout=120)
            sites = json.loads(out.stdout)["allocations"]["sites"]
            # every block of the loop, at a stack that runs through run()
            in_run = sum(s["count"] for s in sites
                         if any(f["function"] == "run" for f in s["stack"]))
            # (seen once in CI: 2 more, not understood yet; glibc's first
            # malloc in a new thread is the suspect, see the closing note)
            want = int(m.group(1))
            checker.check("%s: allocations made in run()" % prog, want <= in_run <= want + 4,
                          "got %d, want %d (up to 4 more)" % (in_run, want))


def signals(checker, ctx):
    lines = verified(checker, ctx, "signal_alloc", [ctx.prog("signal_alloc"), "300000"])
    checker.check("signal_alloc: the handler's walks went to libunwind",
                  any(fallbacks > 0 for _, _, fallbacks, _, _ in lines))


def dlopen(checker, ctx):
    verified(checker, ctx, "dlopen", [ctx.prog("dlopen_main"), ctx.prog("mt_leaklib"), "50"])


def real(checker, ctx):
    script = os.path.join(ctx.workdir, "inserts.sql")
    with open(script, "w") as f:
        f.write("BEGIN;\nCREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);\nCREATE INDEX tb ON t(b);\n")
        for i in range(20000):
            f.write("INSERT INTO t(b) VALUES('row%d');\n" % (i * 7919 % 20000))
        f.write("COMMIT;\nSELECT count(*) FROM t WHERE b LIKE 'row1%';\n")
    verified(checker, ctx, "sqlite3", ["sqlite3", ":memory:"], stdin=script)
    verified(checker, ctx, "perl", ["perl", "-e",
                                    'my %h; $h{"k$_"} = [$_, "v" x ($_ % 9)] for 1 .. 50000; '
                                    'print scalar(keys %h), "\\n";'])
    verified(checker, ctx, "python3", ["/usr/bin/python3", "-c",
                                       "import json\n"
                                       "d = {str(i): [i, {'x': str(i)}] for i in range(30000)}\n"
                                       "print(len(json.loads(json.dumps(d))))\n"])


CASES = {"shapes": shapes, "signals": signals, "dlopen": dlopen, "real": real}

if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, lambda p: p.add_argument("--case", choices=sorted(CASES),
                                                        required=True))
    mtlib.run_test(ctx, "unwind." + ctx.args.case, lambda checker: CASES[ctx.args.case](checker, ctx))
