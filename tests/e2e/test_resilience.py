#!/usr/bin/env python3
"""The shim's recording survives whatever the program does to itself, and
never loses events without saying so (issue 17 points 6, 8, 9; issue 18
points 5, 6). Each case runs a victim under `memtrace run` (with a timeout:
a hang is a failure) and compares every dump with valgrind.bin memcheck
(--trace-children=yes, one log per pid) or with the victim's own figures.

    --case cancel_deferred  pthread_create, pthread_cancel, pthread_join
                            2000 times, each cancel landing while the
                            thread's first malloc sets up its ring: no hang,
                            totals exact vs valgrind
    --case cancel_async     the same with asynchronous cancellation: no hang
                            (it spun at exit), the dump consistent
    --case longjmp          a SIGALRM handler siglongjmps out of the shim
                            2000 times while main allocates; then 100000
                            malloc/free pairs and a 1,000,000-byte leak:
                            every one of them recorded, the leak reported
                            definite as valgrind reports it
    --case clone_fn         a child made by clone(fn, stack, SIGCHLD, arg):
                            no atfork handler runs in it; it gets its own dump
                            (with its parent's heap), the parent's stays
                            exact: both vs valgrind and the victim's figures
    --case clone_raw        the same with syscall(SYS_clone, SIGCHLD, 0, ...)
      --case exec_threads     main execs while 4 threads allocate in a loop, 20
                            runs: the old image always "replaced by exec",
                            the new image's figures exact
"""

import os
import re

import mtlib

# (the nofile case moved to test_rings.py, where threads get a spare ring)
CASES = ["cancel_deferred", "cancel_async", "longjmp", "clone_fn", "clone_raw", "exec_threads"]


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=CASES)


def valgrind_per_pid(ctx, argv, tag, env=None):
    """valgrind.bin --trace-children=yes, one log per pid: (its pid,
    {pid: (command, figures)}), figures None for an image that exec'd."""
    mtlib.need_valgrind()
    out = ctx.subdir(tag)
    vg = mtlib.valgrind_run(argv, logdir=out, cwd=out, timeout=200, env=env,
                            options=["--trace-children=yes", "--leak-check=full",
                                     "--log-file=" + os.path.join(out, "vg.%p.log")])
    logs = {}
    for name in os.listdir(out):
        m = re.match(r"vg\.(\d+)\.log$", name)
        if m:
            path = os.path.join(out, name)
            logs[int(m.group(1))] = (mtlib.valgrind_command(path), mtlib.valgrind_figures(path))
    return vg, logs


def memtrace_dumps(ctx, c, argv, tag, options=(), env=None, timeout=120, status=0, shape=True):
    """`memtrace run` with -o DIR/%n.%p.mtr: (result, {dump name: report});
    shape=False skips check_report_shape."""
    out = ctx.subdir(tag)
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), options=options,
                                env=env, cwd=out, logdir=out, tag="memtrace", timeout=timeout)
    c.eq("%s: memtrace run exits %d" % (tag, status), mtlib.exit_code(result.returncode), status)
    reports = {}
    for path in mtlib.dumps_in(out):
        rep = mtlib.report(ctx, path)
        reports[os.path.basename(path)] = rep
        if shape:
            mtlib.check_report_shape(c, rep, "%s: %s" % (tag, os.path.basename(path)))
    stderr = result.stderr
    c.check("%s: no malformed record" % tag, "malformed" not in stderr, mtlib.tail(stderr))
    c.check("%s: no process left untraced" % tag, "no longer traced" not in stderr
            and "untraced" not in stderr, mtlib.tail(stderr))
    return result, reports


def compare(c, label, rep, want):
    got = mtlib.totals(rep)
    print("  %s: memtrace %s" % (label, mtlib.fmt(got)))
    print("  %s: expected %s" % (label, mtlib.fmt(want)))
    c.figures(label, got, want)


def printed(result, pattern):
    m = re.search(pattern, result.stdout)
    return m


# ---------------------------------------------------------------- cancel


def cancel_case(ctx, c, mode):
    prog = ctx.prog("cancel_loop")
    argv = [prog, mode, "2000"]
    result, reports = memtrace_dumps(ctx, c, argv, "memtrace", timeout=60)
    if not c.check("one dump", len(reports) == 1, "dumps %s" % sorted(reports)):
        return
    rep = list(reports.values())[0]
    m = printed(result, r"filled (\d+)")
    if not c.check("the victim ran to its end", m is not None, mtlib.tail(result.stderr)):
        return
    filled = int(m.group(1))
    got = mtlib.totals(rep)
    if mode == "deferred":
        c.eq("every thread filled its slot (malloc is no cancellation point)", filled, 2000)
        vg, logs = valgrind_per_pid(ctx, argv, "valgrind")
        want = logs.get(vg.pid, (None, None))[1]
        if not c.check("valgrind gave figures", want is not None, str(logs)):
            return
        compare(c, "totals == valgrind", rep, want)
    else:
        # where the cancel strikes decides how many threads reach their
        # malloc; each such block is recorded, and freed by main if it got
        # to its slot
        c.check("allocations: the program's 4 and the threads' filled slots at least",
                got["allocations"] >= 4 + filled, mtlib.fmt(got))
        c.check("nothing freed that was not recorded",
                got["frees"] <= got["allocations"], mtlib.fmt(got))
        c.check("at most the unfilled slots' blocks in use",
                got["in_use_blocks"] <= 2000 - filled, mtlib.fmt(got))


# ---------------------------------------------------------------- longjmp

VG_LOSS = re.compile(r"^==\d+== ([\d,]+) bytes in ([\d,]+) blocks are definitely lost")


def valgrind_definite_at(log, function):
    """(bytes, blocks) of valgrind's definitely-lost records whose stack
    names function."""
    total = [0, 0]
    current = None
    for line in mtlib.read_text(log).splitlines():
        m = VG_LOSS.match(line)
        if m:
            current = (mtlib.number(m.group(1)), mtlib.number(m.group(2)))
            continue
        if current and re.search(r"(by|at) 0x[0-9A-F]+: %s \(" % function, line):
            total[0] += current[0]
            total[1] += current[1]
            current = None
        elif current and not line.strip("= 0123456789"):
            current = None
    return tuple(total)


def longjmp_case(ctx, c):
    prog = ctx.prog("longjmp_alloc")
    churn, leak = 100000, 1000
    # Not checked (known, issue 18 point 6 left open): a jump that lands
    # between the real free and the shim's note of it loses that free (about
    # one jump in 70 here), so the jumpy phase's own figures may miss a few
    # frees; the work after it is exact.
    result, reports = memtrace_dumps(ctx, c, [prog, "2000", str(churn), str(leak)], "memtrace",
                                     timeout=90, shape=False)
    c.check("no event lost", "could not be recorded" not in result.stderr,
            mtlib.tail(result.stderr))
    if not c.check("one dump", len(reports) == 1, "dumps %s" % sorted(reports)):
        return
    c.check("the victim made its 2000 jumps", printed(result, r"jumps 2000\b") is not None,
            result.stdout)
    dump = mtlib.dumps_in(os.path.join(ctx.workdir, "memtrace"))[0]
    full = mtlib.report(ctx, dump, summary=False)

    def top(site):
        return site["stack"][0]["function"] if site["stack"] else None

    counts = {}
    for site in full["allocations"]["sites"]:
        counts[top(site)] = counts.get(top(site), 0) + site["count"]
    c.eq("allocations recorded in churn()", counts.get("churn"), churn)
    c.eq("allocations recorded in leak()", counts.get("leak"), leak)
    lost = [0, 0]
    for site in full["leaks"]["sites"]:
        if site["kind"] == "definite" and top(site) == "leak":
            lost[0] += site["bytes"]
            lost[1] += site["blocks"]
    c.eq("leak(): definitely lost (bytes, blocks)", tuple(lost), (leak * 1000, leak))
    churn_lost = sum(s["blocks"] for s in full["leaks"]["sites"] if top(s) == "churn")
    c.eq("churn(): nothing in use", churn_lost, 0)
    # valgrind, with fewer jumps (it runs the loop 50 times slower): the
    # same known work gives the same leak
    vg, logs = valgrind_per_pid(ctx, [prog, "50", str(churn), str(leak)], "valgrind")
    log = os.path.join(ctx.workdir, "valgrind", "vg.%d.log" % vg.pid)
    c.eq("valgrind: leak() definitely lost (bytes, blocks)", valgrind_definite_at(log, "leak"),
         tuple(lost))
    c.eq("valgrind: churn() definitely lost", valgrind_definite_at(log, "churn"), (0, 0))


# ---------------------------------------------------------------- clone

CLONE_PARENT = {"allocations": 4, "frees": 2, "bytes_allocated": 1000,
                "in_use_bytes": 700, "in_use_blocks": 2}
CLONE_CHILD = {"allocations": 5, "frees": 3, "bytes_allocated": 3600,
               "in_use_bytes": 2100, "in_use_blocks": 2}


def clone_case(ctx, c, mode):
    argv = [ctx.prog("clone_child"), mode]
    result, reports = memtrace_dumps(ctx, c, argv, "memtrace", timeout=60)
    if not c.check("two dumps", len(reports) == 2, "dumps %s" % sorted(reports)):
        return
    reps = list(reports.values())
    pids = {r["process"]["pid"] for r in reps}
    child = [r for r in reps if r["process"]["ppid"] in pids]
    parent = [r for r in reps if r not in child]
    if not c.check("one dump is the other's child", len(child) == 1 and len(parent) == 1,
                   str([(r["process"]["pid"], r["process"]["ppid"]) for r in reps])):
        return
    child, parent = child[0], parent[0]
    mtlib.check_exit(c, parent, "parent", status=0)
    mtlib.check_exit(c, child, "child", status=0)
    vg, logs = valgrind_per_pid(ctx, argv, "valgrind")
    vg_parent = logs.get(vg.pid, (None, None))[1]
    others = [v[1] for pid, v in logs.items() if pid != vg.pid]
    if not c.check("valgrind gave both processes' figures",
                   vg_parent is not None and len(others) == 1 and others[0], str(logs)):
        return
    compare(c, "parent == valgrind", parent, vg_parent)
    compare(c, "parent == the victim's figures", parent, CLONE_PARENT)
    compare(c, "child == valgrind", child, others[0])
    compare(c, "child == the victim's figures", child, CLONE_CHILD)


# ---------------------------------------------------------------- exec


EXEC_AFTER = {"allocations": 3, "frees": 1, "bytes_allocated": 600,
              "in_use_bytes": 400, "in_use_blocks": 2}


def exec_threads_case(ctx, c):
    prog = ctx.prog("exec_threads")
    for run in range(20):
        tag = "run%02d" % run
        result, reports = memtrace_dumps(ctx, c, [prog], tag, timeout=60, shape=False)
        before = [r for r in reports.values() if r["process"]["command"] == [prog]]
        after = [r for r in reports.values() if r["process"]["command"] == [prog, "after"]]
        if not c.check("%s: one dump per image" % tag, len(before) == 1 and len(after) == 1,
                       str(sorted(reports))):
            continue
        # the JSON report has no exec field: memtrace run's summary line says it
        line = [l for l in result.stderr.splitlines()
                if re.match(r"==memtrace== pid %d: %s \(" % (before[0]["process"]["pid"],
                                                              re.escape(prog)), l)]
        c.check("%s: the old image was replaced by exec" % tag,
                len(line) == 1 and line[0].endswith("(replaced by exec)"), str(line))
        mtlib.check_exit(c, after[0], "%s: new image" % tag, status=0)
        c.figures("%s: new image" % tag, mtlib.totals(after[0]), EXEC_AFTER)


# ---------------------------------------------------------------- no ring


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def body(c):
        if case.startswith("cancel_"):
            cancel_case(ctx, c, case[len("cancel_"):])
        elif case == "longjmp":
            longjmp_case(ctx, c)
        elif case == "exec_threads":
            exec_threads_case(ctx, c)
        elif case.startswith("clone_"):
            clone_case(ctx, c, case[len("clone_"):])

    mtlib.run_test(ctx, "resilience." + case, body)


if __name__ == "__main__":
    main()
