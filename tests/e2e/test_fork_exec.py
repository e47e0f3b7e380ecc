#!/usr/bin/env python3
"""fork and exec: one dump per process image, each with the right totals.

    --case exec            forker allocates, forks; the child (which starts
                           with the parent's heap and counters, as under
                           memcheck) allocates and frees, then execs
                           grandchild, which allocates. Three dumps
                           (-o DIR/%n.%p.mtr): forker.<parent>, forker.<child>,
                           grandchild.<child>.
    --case exec_same_name  exec_self execs itself in the same process: two
                           dumps, exec_self.<pid>.mtr and exec_self.<pid>.1.mtr
    --case no_follow_fork  forker under --no-follow-fork: the parent's dump only

Reference figures come from valgrind with --trace-children=yes and per-pid
logs (--log-file=DIR/vg.%p.log). valgrind prints no summary for a process image
that execs (and the exec'd image's log replaces its log), so the child's
figures come from a second valgrind run where forker's child _exits at the
point where it would exec (same heap then). The figures the victims' comments
give are checked as well, so a valgrind oddity cannot hide a mistake. Also:
the pids and ppids in the dumps are those of the processes, the file names
follow the pattern, and memtrace's stderr summaries are those of the dumps.
"""

import os
import re

import mtlib

PARENT = {"allocations": 6, "frees": 2, "bytes_allocated": 1564,
          "in_use_bytes": 1064, "in_use_blocks": 4}
CHILD = {"allocations": 8, "frees": 4, "bytes_allocated": 7500,
         "in_use_bytes": 4800, "in_use_blocks": 4}
GRANDCHILD = {"allocations": 7, "frees": 3, "bytes_allocated": 280,
              "in_use_bytes": 190, "in_use_blocks": 4}
EXEC_FIRST = {"allocations": 2, "frees": 1, "bytes_allocated": 333,
              "in_use_bytes": 222, "in_use_blocks": 1}
EXEC_SECOND = {"allocations": 2, "frees": 1, "bytes_allocated": 777,
               "in_use_bytes": 333, "in_use_blocks": 1}


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=["exec", "exec_same_name", "no_follow_fork"])


def valgrind_children(ctx, c, argv, tag):
    """Runs argv under valgrind --trace-children=yes with per-pid logs.
    Returns (valgrind's own pid, {pid: (command, figures)})."""
    out = ctx.subdir(tag)
    vg = mtlib.valgrind_run(argv, logdir=out, cwd=out, timeout=120,
                            options=["--trace-children=yes",
                                     "--log-file=" + os.path.join(out, "vg.%p.log")])
    c.eq("%s: valgrind run exits 0" % tag, mtlib.exit_code(vg.returncode), 0)
    logs = {}
    for name in os.listdir(out):
        m = re.match(r"vg\.(\d+)\.log$", name)
        if m:
            path = os.path.join(out, name)
            logs[int(m.group(1))] = (mtlib.valgrind_command(path), mtlib.valgrind_figures(path))
    return vg.pid, logs


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def run_memtrace(c, argv, options=()):
        out = ctx.subdir("memtrace")
        result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), options=options,
                                    cwd=out, logdir=ctx.workdir, timeout=60)
        c.eq("memtrace run exits 0", mtlib.exit_code(result.returncode), 0)
        dumps = {os.path.basename(d): d for d in mtlib.dumps_in(out)}
        reports = {name: mtlib.report(ctx, path) for name, path in dumps.items()}
        for name, rep in sorted(reports.items()):
            mtlib.check_report_shape(c, rep, name)
        return result, reports, dumps

    def figures(c, label, rep, known, valgrind):
        got = mtlib.totals(rep)
        print("  %s: memtrace %s" % (label, mtlib.fmt(got)))
        print("  %s: valgrind %s" % (label, mtlib.fmt(valgrind)))
        c.figures("%s == valgrind" % label, got, valgrind)
        c.figures("%s == the victim's known figures" % label, got, known)

    def exec_case(c):
        mtlib.need_valgrind()
        forker, grandchild = ctx.prog("forker"), ctx.prog("grandchild")
        result, reports, dumps = run_memtrace(c, [forker, "exec", grandchild])
        names = sorted(reports)
        pattern = [re.match(r"(forker|grandchild)\.(\d+)\.mtr$", n) for n in names]
        if not c.check("three dumps: forker.<pid>.mtr twice, grandchild.<pid>.mtr",
                       len(names) == 3 and all(pattern)
                       and sorted(m.group(1) for m in pattern) == ["forker", "forker", "grandchild"],
                       "found %s" % names):
            return
        for name, m in zip(names, pattern):
            c.eq("%s: file named after the pid in it" % name, reports[name]["process"]["pid"],
                 int(m.group(2)))
        forkers = [reports[n] for n in names if n.startswith("forker.")]
        gc = [reports[n] for n in names if n.startswith("grandchild.")][0]
        parent = [r for r in forkers if r["process"]["pid"] != gc["process"]["pid"]]
        child = [r for r in forkers if r["process"]["pid"] == gc["process"]["pid"]]
        if not c.check("the grandchild's pid is one forker's (exec keeps the pid)",
                       len(parent) == 1 and len(child) == 1,
                       "pids %s" % [r["process"]["pid"] for r in forkers + [gc]]):
            return
        parent, child = parent[0], child[0]
        c.eq("the child's ppid is the parent's pid", child["process"]["ppid"], parent["process"]["pid"])
        c.eq("the grandchild's ppid is the parent's pid", gc["process"]["ppid"], parent["process"]["pid"])
        c.eq("the grandchild's command", gc["process"]["command"], [grandchild, "from-forker"])
        mtlib.check_exit(c, parent, "parent", status=0)
        mtlib.check_exit(c, gc, "grandchild", status=0)
        mtlib.check_summaries_match(c, result.stderr, list(reports.values()), "memtrace")
        # The blocks the child inherited (the parent's 300 and 500) were
        # allocated by the parent's main at forker.c's malloc line: their
        # stacks are written in the child's dump before the child announces
        # its modules, and must be symbolized all the same.
        child_dump = [dumps[n] for n in names if reports[n] is child][0]
        full = mtlib.report(ctx, child_dump, summary=False)
        inherited = [s for s in full["leaks"]["sites"] if s["bytes"] == 800]
        top = inherited[0]["stack"][0] if len(inherited) == 1 and inherited[0]["stack"] else {}
        c.check("child: the inherited blocks' stack is forker.c's main",
                top.get("function") == "main" and (top.get("file") or "").endswith("forker.c")
                and top.get("line") == 32, "sites %s" % inherited)

        vg_pid, logs = valgrind_children(ctx, c, [forker, "exec", grandchild], "vg-exec")
        vg_parent = logs.get(vg_pid, (None, None))[1]
        others = [v for pid, v in logs.items() if pid != vg_pid]
        vg_grandchild = others[0][1] if len(others) == 1 and "grandchild" in (others[0][0] or "") else None
        if vg_parent is None or vg_grandchild is None:
            raise mtlib.TestError("valgrind logs: %s" % logs)
        vg_pid2, logs2 = valgrind_children(ctx, c, [forker, "exit"], "vg-exit")
        others2 = [v for pid, v in logs2.items() if pid != vg_pid2]
        if len(others2) != 1 or others2[0][1] is None:
            raise mtlib.TestError("valgrind logs of the `exit` run: %s" % logs2)
        vg_child = others2[0][1]
        figures(c, "parent", parent, PARENT, vg_parent)
        figures(c, "child (until exec)", child, CHILD, vg_child)
        figures(c, "grandchild", gc, GRANDCHILD, vg_grandchild)

    def exec_same_name_case(c):
        prog = ctx.prog("exec_self")
        result, reports, dumps = run_memtrace(c, [prog, "first"])
        names = sorted(reports)
        m = [re.match(r"exec_self\.(\d+)(\.1)?\.mtr$", n) for n in names]
        if not c.check("two dumps: exec_self.<pid>.mtr and exec_self.<pid>.1.mtr",
                       len(names) == 2 and all(m) and m[0].group(1) == m[1].group(1)
                       and {x.group(2) for x in m} == {None, ".1"}, "found %s" % names):
            return
        first = reports[[n for n, x in zip(names, m) if x.group(2) is None][0]]
        second = reports[[n for n, x in zip(names, m) if x.group(2) == ".1"][0]]
        c.eq("first image: command", first["process"]["command"], [prog, "first"])
        c.eq("second image: command", second["process"]["command"], [prog, "second"])
        c.eq("same pid in both", first["process"]["pid"], second["process"]["pid"])
        mtlib.check_exit(c, second, "second image", status=0)
        c.figures("first image (until exec) == known", mtlib.totals(first), EXEC_FIRST)
        c.figures("second image == known", mtlib.totals(second), EXEC_SECOND)
        mtlib.check_summaries_match(c, result.stderr, list(reports.values()), "memtrace")
        mtlib.need_valgrind()
        vg_pid, logs = valgrind_children(ctx, c, [prog, "first"], "vg-exec")
        vg_second = logs.get(vg_pid, (None, None))
        if vg_second[1] is None or "second" not in (vg_second[0] or ""):
            raise mtlib.TestError("valgrind logs: %s" % logs)
        c.figures("second image == valgrind", mtlib.totals(second), vg_second[1])

    def no_follow_fork_case(c):
        mtlib.need_valgrind()
        forker, grandchild = ctx.prog("forker"), ctx.prog("grandchild")
        result, reports, dumps = run_memtrace(c, [forker, "exec", grandchild], options=["--no-follow-fork"])
        names = sorted(reports)
        if not c.check("one dump, the parent's", len(names) == 1 and names[0].startswith("forker."),
                       "found %s" % names):
            return
        rep = reports[names[0]]
        c.eq("it is memtrace's own child", rep["process"]["ppid"], result.pid)
        vg_pid, logs = valgrind_children(ctx, c, [forker, "exec", grandchild], "vg-exec")
        vg_parent = logs.get(vg_pid, (None, None))[1]
        if vg_parent is None:
            raise mtlib.TestError("valgrind logs: %s" % logs)
        figures(c, "parent", rep, PARENT, vg_parent)
        mtlib.check_summaries_match(c, result.stderr, list(reports.values()), "memtrace")

    body = {"exec": exec_case, "exec_same_name": exec_same_name_case,
            "no_follow_fork": no_follow_fork_case}[case]
    mtlib.run_test(ctx, "fork_exec." + case, body)


if __name__ == "__main__":
    main()
