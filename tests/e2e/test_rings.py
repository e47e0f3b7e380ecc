#!/usr/bin/env python3
"""Rings however the program limits itself (issue 17 point 6): a thread or a
fork child of a program that took away what a new ring needs (descriptors,
memfd_create, sendmsg, socket) still records into a ring set up before
(the spare pool, preload/ring_writer.c); where nothing is left, one line on
memtrace's stderr, the dump says the trace is incomplete, and gates fail.

  --case nofile_soft     ring_nofile 4 soft: the soft RLIMIT_NOFILE lowered
                         to 3, then 4 threads malloc/free 1,000 blocks each,
                         the limit raised again, 1,000 bytes leaked: every
                         event recorded (valgrind.bin's figures and kinds),
                         no line, the gates' verdict is the leak's
  --case nofile          ring_nofile 4: both limits lowered to 3 for good:
                         every event recorded (valgrind.bin's figures); the
                         scan at exit needs a descriptor the program no
                         longer has (preload/scan.c receives its blocks in a
                         memfd): said as it is ("could not receive the
                         scan's data: no descriptor free"), and the gates
                         fail on it, not on a missing ring
  --case nofile_overflow ring_nofile 12: 12 threads alive at once under
                         RLIMIT_NOFILE 3, more than the spare pool's 8
                         slots: 4 threads find no ring, said in one line,
                         the dump incomplete, run's and check's gates fail
  --case seccomp         ring_seccomp 1: a seccomp filter denies memfd_create,
                         socket, connect and sendmsg; then 4 threads
                         allocate and a fork child allocates: the threads
                         take spare rings, the child the kit its parent made
                         at start; both dumps' figures and kinds are
                         valgrind.bin's (--trace-children=yes)
  --case seccomp_two     ring_seccomp 2: the second child finds no kit (the
                         parent could make none under the filter): one line,
                         the parent's dump says a fork child could not be
                         traced, check fails on it; the first child's dump
                         is whole
"""

import os
import re

import mtlib

CASES = ["nofile_soft", "nofile", "nofile_overflow", "seccomp", "seccomp_two"]
POOL_SLOTS = 8  # preload/ring_writer.c POOL_SLOTS


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=CASES)


def run_memtrace(ctx, c, argv, tag, options=(), status=0):
    """`memtrace run -o DIR/%n.%p.mtr [options] -- argv`: (result, dumps)."""
    out = ctx.subdir(tag)
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), options=options,
                                cwd=out, logdir=out, tag="run", timeout=120)
    c.eq("%s: memtrace run exits %d" % (tag, status), mtlib.exit_code(result.returncode), status)
    c.check("%s: no malformed record, no process untraced" % tag,
            "malformed" not in result.stderr and "untraced" not in result.stderr
            and "no longer traced" not in result.stderr, mtlib.tail(result.stderr))
    return result, mtlib.dumps_in(out)


def check_gate(ctx, tag, args):
    out = ctx.subdir("check-" + tag)
    return mtlib.run([ctx.memtrace, "check"] + list(args),
                     stdout_path=os.path.join(out, "check.out"),
                     stderr_path=os.path.join(out, "check.err"))


def valgrind(ctx, argv, tag):
    mtlib.need_valgrind()
    out = ctx.subdir(tag)
    vg = mtlib.valgrind_run(argv, logdir=out, cwd=out, timeout=300,
                            options=["--leak-check=full", "--show-leak-kinds=all"])
    want = mtlib.valgrind_figures(vg.log)
    if want is None:
        raise mtlib.TestError("valgrind gave no heap summary: %s" % mtlib.tail(mtlib.read_text(vg.log)))
    return vg, want


def nofile_case(ctx, c, soft):
    argv = [ctx.prog("ring_nofile"), "4"] + (["soft"] if soft else [])
    vg, want = valgrind(ctx, argv, "valgrind")
    c.check("valgrind: 4,000 + 1 allocations at least", want["allocations"] >= 4001, mtlib.fmt(want))
    result, dumps = run_memtrace(ctx, c, argv, "memtrace")
    limits = re.search(r"RLIMIT_NOFILE (\d+) (\d+)", result.stdout)
    c.check("the program's limit is 3 descriptors (%s)" % ("soft" if soft else "soft and hard"),
            limits is not None and limits.group(1) == "3" and (soft or limits.group(2) == "3"),
            result.stdout)
    c.check("no line about a thread without a ring", "could not get a ring" not in result.stderr,
            mtlib.tail(result.stderr))
    if not c.check("one dump", len(dumps) == 1, str(dumps)):
        return
    rep = mtlib.report(ctx, dumps[0])
    mtlib.check_report_shape(c, rep, "dump")
    got = mtlib.totals(rep)
    print("  memtrace %s" % mtlib.fmt(got))
    print("  valgrind %s" % mtlib.fmt(want))
    c.figures("every event recorded (== valgrind.bin)", got, want)
    if not soft:
        bad = check_gate(ctx, "fail", ["--max-leaked", "1000000", dumps[0]])
        text = bad.stdout + bad.stderr
        c.check("check fails: not scanned (no descriptor left for the scan), no ring missing",
                bad.returncode != 0 and "not scanned for reachability" in text and "found no ring" not in text,
                "exit %d: %s" % (bad.returncode, mtlib.tail(text)))
        # the reason is the true one: the blocks' memfd found no free number
        # (it said "it asked for its scan at exit and ended before the scan
        # finished", while the process was alive and waiting for it)
        why = "it could not receive the scan's data: no descriptor free"
        c.check("check says why: %s" % why, why in text and "ended before the scan" not in text,
                mtlib.tail(text))
        c.check("run says why: %s" % why,
                why in result.stderr and "ended before the scan" not in result.stderr,
                mtlib.tail(result.stderr))
        return
    _, kinds = mtlib.memtrace_leak_kinds(ctx, dumps[0])
    c.eq("leak kinds == memcheck's", {k: kinds[k] for k in mtlib.LEAK_KINDS},
         mtlib.valgrind_leak_kinds(vg.log))
    # the 1,000-byte leak is the gate's whole verdict: nothing unchecked
    ok = check_gate(ctx, "pass", ["--max-leaked", "1000", dumps[0]])
    c.eq("check --max-leaked 1000 passes", ok.returncode, 0)
    bad = check_gate(ctx, "fail", ["--max-leaked", "999", dumps[0]])
    c.check("check --max-leaked 999 fails on the leak",
            bad.returncode != 0 and "found no ring" not in bad.stdout + bad.stderr,
            "exit %d: %s" % (bad.returncode, mtlib.tail(bad.stdout + bad.stderr)))
    gate, _ = run_memtrace(ctx, c, argv, "gate", options=["--max-leaked", "1000"])


def nofile_overflow_case(ctx, c):
    n = 12
    argv = [ctx.prog("ring_nofile"), str(n)]
    result, dumps = run_memtrace(ctx, c, argv, "memtrace", options=["--max-leaked", "1000000"],
                                 status=99)
    c.eq("one line says threads' events are not recorded",
         len(re.findall(r"could not get a ring", result.stderr)), 1)
    lost = n - POOL_SLOTS
    c.check("run's summary says %d threads found no ring" % lost,
            "%d threads found no ring" % lost in result.stderr, mtlib.tail(result.stderr, 20))
    if not c.check("one dump", len(dumps) == 1, str(dumps)):
        return
    got = mtlib.totals(mtlib.report(ctx, dumps[0]))
    # the pool's threads are whole: 1,000 allocations and frees each
    c.check("the %d threads with a spare ring recorded" % POOL_SLOTS,
            got["allocations"] >= POOL_SLOTS * 1000 + 1, mtlib.fmt(got))
    check = check_gate(ctx, "fail", ["--max-leaked", "1000000", dumps[0]])
    c.check("memtrace check fails", check.returncode != 0, "exit %d" % check.returncode)
    c.check("memtrace check says %d threads found no ring" % lost,
            "%d threads found no ring" % lost in check.stdout + check.stderr,
            mtlib.tail(check.stdout + check.stderr))


def valgrind_per_pid(ctx, argv, tag):
    """valgrind.bin --trace-children=yes, a log per pid: {pid: figures}."""
    mtlib.need_valgrind()
    out = ctx.subdir(tag)
    vg = mtlib.valgrind_run(argv, logdir=out, cwd=out, timeout=300,
                            options=["--trace-children=yes", "--leak-check=full",
                                     "--show-leak-kinds=all",
                                     "--log-file=" + os.path.join(out, "vg.%p.log")])
    logs = {}
    for name in os.listdir(out):
        m = re.match(r"vg\.(\d+)\.log$", name)
        if m:
            logs[int(m.group(1))] = os.path.join(out, name)
    return vg, logs


def dump_pid(path):
    return int(re.search(r"\.(\d+)\.mtr$", path).group(1))


def seccomp_case(ctx, c, children):
    argv = [ctx.prog("ring_seccomp"), str(children)]
    vg, logs = valgrind_per_pid(ctx, argv, "valgrind")
    c.eq("valgrind: one log per process", len(logs), 1 + children)
    result, dumps = run_memtrace(ctx, c, argv, "memtrace")
    c.check("the filter is on (memfd_create fails with EPERM)",
            "memfd_create denied: 1" in result.stdout, result.stdout)
    c.eq("no thread without a ring", result.stderr.count("could not get a ring"), 0)
    traced = 2 if children >= 1 else 1
    if not c.eq("dumps: the parent's and the first child's", len(dumps), traced):
        return
    by_pid = {dump_pid(d): d for d in dumps}
    # the parent ends with its 1,000 bytes in use, a child with its 200
    figures = {pid: mtlib.valgrind_figures(log) for pid, log in logs.items()}
    vg_parent = [pid for pid in figures if figures[pid]["in_use_bytes"] == 1000][0]
    vg_children = sorted(pid for pid in figures if pid != vg_parent)
    mt = {pid: mtlib.totals(mtlib.report(ctx, path)) for pid, path in by_pid.items()}
    mt_parent = max(mt, key=lambda pid: mt[pid]["in_use_bytes"])
    mt_child = [pid for pid in mt if pid != mt_parent]
    print("  parent: memtrace %s" % mtlib.fmt(mt[mt_parent]))
    print("  parent: valgrind %s" % mtlib.fmt(figures[vg_parent]))
    c.figures("parent == valgrind.bin", mt[mt_parent], figures[vg_parent])
    _, kinds = mtlib.memtrace_leak_kinds(ctx, by_pid[mt_parent])
    c.eq("parent: leak kinds == memcheck's", {k: kinds[k] for k in mtlib.LEAK_KINDS},
         mtlib.valgrind_leak_kinds(logs[vg_parent]))
    if c.eq("one child dump", len(mt_child), 1):
        vg_child = vg_children[0]
        print("  child: memtrace %s" % mtlib.fmt(mt[mt_child[0]]))
        print("  child: valgrind %s" % mtlib.fmt(figures[vg_child]))
        c.figures("first child == valgrind.bin", mt[mt_child[0]], figures[vg_child])
        _, kinds = mtlib.memtrace_leak_kinds(ctx, by_pid[mt_child[0]])
        c.eq("first child: leak kinds == memcheck's", {k: kinds[k] for k in mtlib.LEAK_KINDS},
             mtlib.valgrind_leak_kinds(logs[vg_child]))
        ok = check_gate(ctx, "child", ["--max-leaked", "200", by_pid[mt_child[0]]])
        c.eq("check --max-leaked 200 passes the child", ok.returncode, 0)
    gate = check_gate(ctx, "parent", ["--max-leaked", "1000", by_pid[mt_parent]])
    text = gate.stdout + gate.stderr
    if children == 1:
        c.eq("check --max-leaked 1000 passes the parent", gate.returncode, 0)
        bad = check_gate(ctx, "parent-999", ["--max-leaked", "999", by_pid[mt_parent]])
        c.check("check --max-leaked 999 fails the parent", bad.returncode != 0,
                "exit %d" % bad.returncode)
        c.eq("no line about an untraced child", result.stderr.count("cannot be traced"), 0)
    else:
        c.eq("one line says the second child cannot be traced",
             len(re.findall(r"fork child #2 cannot be traced", result.stderr)), 1)
        c.check("run does not wait for the child that cannot connect",
                "not connected yet" not in result.stderr, mtlib.tail(result.stderr))
        c.check("check fails the parent: a fork child could not be traced",
                gate.returncode != 0 and "could not be traced" in text,
                "exit %d: %s" % (gate.returncode, mtlib.tail(text)))


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def body(c):
        if case == "nofile_overflow":
            nofile_overflow_case(ctx, c)
        elif case.startswith("seccomp"):
            seccomp_case(ctx, c, 2 if case == "seccomp_two" else 1)
        else:
            nofile_case(ctx, c, case == "nofile_soft")

    mtlib.run_test(ctx, "rings." + case, body)


if __name__ == "__main__":
    main()
