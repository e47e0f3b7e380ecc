#!/usr/bin/env python3
"""No silent pass when a process has (almost) no descriptor (issue 17
points 5-6).

nofd_limit N nofd_leak: both RLIMIT_NOFILE limits set to N, then exec of a
program that leaks 4,000 bytes. The new image's shim may connect (HELLO on
the one free number) and yet find no ring, nor spare pool, nor room for the
scan's memfd. For N in 4..8, the gate of `memtrace run` and `memtrace check`
must either fail with a line saying what could not be checked, or pass only
when the new image's figures and kinds equal valgrind.bin's
(--trace-children=yes: what bare ld.so manages under the same limit).

Before the fix, N = 4 and N = 6 passed `--max-leaked 0` with a dump saying
0 allocations and complete: the ringless thread's MT_RING_INCOMPLETE went
into the ring it did not have (preload/ring_writer.c mt_emit_incomplete now
sends it on the socket).
"""

import os
import re

import mtlib

LIMITS = range(4, 9)
LEAK = 4000


def valgrind_leak(ctx, argv, tag):
    """valgrind.bin --trace-children=yes: the exec'd image's (figures, kinds)."""
    mtlib.need_valgrind()
    out = ctx.subdir(tag)
    mtlib.valgrind_run(argv, logdir=out, cwd=out, timeout=300,
                       options=["--trace-children=yes", "--leak-check=full",
                                "--show-leak-kinds=all",
                                "--log-file=" + os.path.join(out, "vg.%p.log")])
    logs = [os.path.join(out, n) for n in os.listdir(out) if re.match(r"vg\.\d+\.log$", n)]
    for log in logs:
        figures = mtlib.valgrind_figures(log)
        if figures is not None:
            return figures, mtlib.valgrind_leak_kinds(log)
    raise mtlib.TestError("valgrind gave no heap summary in %s" % out)


def run_gate(ctx, argv, tag, limit):
    out = ctx.subdir(tag)
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "e.%p.mtr"),
                                options=["--max-leaked", str(limit)], cwd=out, logdir=out,
                                tag="run", timeout=120)
    return result, mtlib.dumps_in(out)


def check_gate(ctx, tag, dump, limit):
    out = ctx.subdir("check-" + tag)
    return mtlib.run([ctx.memtrace, "check", "--max-leaked", str(limit), dump],
                     stdout_path=os.path.join(out, "check.out"),
                     stderr_path=os.path.join(out, "check.err"))


def new_image_dump(dumps):
    """The exec'd image's dump: PID.1.mtr (the old image's is PID.mtr)."""
    for d in dumps:
        if re.search(r"\.\d+\.1\.mtr$", d):
            return d
    return None


def limit_case(ctx, c, n):
    argv = [ctx.prog("nofd_limit"), str(n), ctx.prog("nofd_leak")]
    want, want_kinds = valgrind_leak(ctx, argv, "valgrind-%d" % n)
    c.eq("N=%d: valgrind sees the leak" % n, want["in_use_bytes"], LEAK)
    # --max-leaked 0: the leak (or what could not be checked) fails it
    zero, _ = run_gate(ctx, argv, "zero-%d" % n, 0)
    c.eq("N=%d: run --max-leaked 0 fails" % n, mtlib.exit_code(zero.returncode), 99)
    # --max-leaked 4000: passes only on valgrind's figures, else fails saying why
    gate, dumps = run_gate(ctx, argv, "gate-%d" % n, LEAK)
    rc = mtlib.exit_code(gate.returncode)
    c.check("N=%d: under memtrace both limits are N" % n,
            "RLIMIT_NOFILE %d (soft and hard)" % n in gate.stdout, gate.stdout)
    dump = new_image_dump(dumps)
    if not c.check("N=%d: the new image has a dump" % n, dump is not None, str(dumps)):
        return
    got = mtlib.totals(mtlib.report(ctx, dump))
    _, kinds = mtlib.memtrace_leak_kinds(ctx, dump)
    kinds = {k: kinds[k] for k in mtlib.LEAK_KINDS}
    print("  N=%d: run exits %d; memtrace %s" % (n, rc, mtlib.fmt(got)))
    print("  N=%d: valgrind %s" % (n, mtlib.fmt(want)))
    exact = all(got.get(k) == want.get(k) for k in mtlib.FIGURES) and kinds == want_kinds
    said = re.search(r"memtrace: pid \d+ \(\S*nofd_leak\): not checked: ", gate.stderr)
    if rc == 0:
        c.check("N=%d: run --max-leaked %d passes only on valgrind's figures and kinds" % (n, LEAK),
                exact, "memtrace %s %s, valgrind %s %s"
                % (mtlib.fmt(got), kinds, mtlib.fmt(want), want_kinds))
    else:
        c.eq("N=%d: run --max-leaked %d fails with 99" % (n, LEAK), rc, 99)
        c.check("N=%d: a 'not checked' line names the new image" % n, said is not None,
                mtlib.tail(gate.stderr, 12))
        # a scan whose memfd found no free number is said as such (it said
        # the process "ended before the scan finished" while it waited)
        c.check("N=%d: the line's reason is true" % n,
                "ended before the scan" not in gate.stderr, mtlib.tail(gate.stderr, 12))
    chk0 = check_gate(ctx, "zero-%d" % n, dump, 0)
    c.check("N=%d: check --max-leaked 0 fails" % n, chk0.returncode != 0,
            "exit %d: %s" % (chk0.returncode, mtlib.tail(chk0.stdout + chk0.stderr)))
    chk = check_gate(ctx, "gate-%d" % n, dump, LEAK)
    text = chk.stdout + chk.stderr
    if chk.returncode == 0:
        c.check("N=%d: check --max-leaked %d passes only on valgrind's figures" % (n, LEAK),
                exact, mtlib.fmt(got))
    else:
        c.check("N=%d: check --max-leaked %d fails saying what was not checked" % (n, LEAK),
                "not checked" in text, mtlib.tail(text))


def main():
    ctx = mtlib.setup(__doc__)

    def body(c):
        for n in LIMITS:
            limit_case(ctx, c, n)

    mtlib.run_test(ctx, "nofd.exec_limit", body)


if __name__ == "__main__":
    main()
