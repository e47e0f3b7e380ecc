#!/usr/bin/env python3
"""Leak kinds (SPEC section 5) against valgrind memcheck's LEAK SUMMARY:
definite, indirect (a lost list), possible (only an interior pointer) and
reachable (a global, a thread-local variable, a block known only from
another thread's stack, and one only from that thread's TLS), for a process
that returns from main, one that calls exit() from a non-main thread, and
one that calls _exit(). A clean program, sqlite3 on a script and gzip
report no definite and no indirect leaks.

usage: test_leak_kinds.py ... --case exit|thread-exit|_exit|clean|sqlite3|gzip
"""
import os
import re

import mtlib

KINDS = mtlib.LEAK_KINDS


def add_arguments(parser):
    parser.add_argument("--case", required=True)


def body(checker):
    ctx = checker.ctx
    case = ctx.args.case
    work = ctx.workdir
    dump = os.path.join(work, "k.mtr")
    if case in ("sqlite3", "gzip"):
        if case == "sqlite3":
            script = os.path.join(work, "s.sql")
            with open(script, "w") as f:
                f.write("BEGIN;\nCREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);\n")
                for i in range(20000):
                    f.write("INSERT INTO t(b) VALUES('row %d');\n" % i)
                f.write("COMMIT;\nSELECT count(*) FROM t;\n")
            argv, stdin = ["/usr/bin/sqlite3", ":memory:"], script
        else:
            data = os.path.join(work, "d.txt")
            with open(data, "w") as f:
                f.write("memtrace " * 200000)
            argv, stdin = ["/usr/bin/gzip", "-9", "-k", data], None
        result = mtlib.memtrace_run(ctx, argv, dump, logdir=work, tag="mt", stdin=stdin)
        checker.eq("memtrace exits 0", result.returncode, 0)
        rep, got = mtlib.memtrace_leak_kinds(ctx, dump)
        checker.check("scanned", rep["leaks"]["scanned"] is True)
        checker.eq("no definite leak", got["definite"], (0, 0))
        checker.eq("no indirect leak", got["indirect"], (0, 0))
        return
    prog = ctx.prog("leak_kinds")
    expected_exit = {"exit": 0, "thread-exit": 3, "_exit": 4, "clean": 0}[case]
    result = mtlib.memtrace_run(ctx, [prog, case], dump, logdir=work, tag="mt")
    checker.eq("memtrace exits with the program's status", result.returncode, expected_exit)
    rep, got = mtlib.memtrace_leak_kinds(ctx, dump)
    checker.check("scanned", rep["leaks"]["scanned"] is True)
    checker.eq("no block left unknown", got["unknown"], (0, 0))
    vg = mtlib.valgrind_run([prog, case], logdir=work, tag="vg", options=["--leak-check=full"])
    want = mtlib.valgrind_leak_kinds(vg.log)
    for kind in KINDS:
        checker.eq("%s (bytes, blocks) == valgrind's" % kind, got[kind], want[kind])
    if case == "clean":
        checker.eq("clean: nothing lost", (got["definite"], got["indirect"]), ((0, 0), (0, 0)))
    else:
        checker.check("the test builds every kind", all(got[k][1] > 0 for k in KINDS), repr(got))
    # the summary on stderr says the same
    err = mtlib.read_text(os.path.join(work, "mt.err"))
    m = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", err)
    if case != "clean":
        checker.check("run's summary has the definite figures",
                      m is not None and (mtlib.number(m.group(1)), mtlib.number(m.group(2))) ==
                      got["definite"], err[-400:])


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(ctx, "leak_kinds." + ctx.args.case, body)
