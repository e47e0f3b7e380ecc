#!/usr/bin/env python3
"""Death: every event before the end reaches the dump, however the program ends
(SPEC sections 3 and 4). tests/programs/die.c leaks a known set of blocks and
then dies:

    --case abort    abort()                  memtrace exits 134, signal 6
    --case segv     a write through NULL     memtrace exits 139, signal 11
    --case exit     _exit(7)                 memtrace exits 7, status 7
    --case sigkill  raise(SIGKILL)           memtrace exits 137, signal 9
    --case killed   allocates in a loop until the test SIGKILLs it from outside

For the first four the dump must hold exactly the known set (22 allocations,
11 frees, 7,820 bytes; in use 4,556 bytes in 11 blocks; peak 6,720 bytes in
20 blocks), and, where valgrind prints a summary (all but SIGKILL), the same
as valgrind. For `killed`, the test waits until the program reports at least
200,000 allocations, SIGKILLs the program (not memtrace), and checks the dump
against the loop's rules: allocations >= what the program last reported, and
frees, bytes allocated and in use exactly what A allocations imply (the kill
may land between the last malloc and its free).
"""

import os
import signal
import time

import mtlib

KNOWN = {"allocations": 22, "frees": 11, "bytes_allocated": 7820,
         "in_use_bytes": 4556, "in_use_blocks": 11}
KNOWN_PEAK = (6720, 20)
CASES = {
    # case: (args, memtrace exit code, exit.status, exit.signal, valgrind has a summary)
    "abort": (["abort"], 128 + signal.SIGABRT, None, signal.SIGABRT, True),
    "segv": (["segv"], 128 + signal.SIGSEGV, None, signal.SIGSEGV, True),
    "exit": (["exit", "7"], 7, 7, None, True),
    "sigkill": (["sigkill"], 128 + signal.SIGKILL, None, signal.SIGKILL, False),
}
KILL_AFTER = 200000


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=sorted(CASES) + ["killed"])


def loop_size(k):
    return 16 + (k % 64) * 8


def loop_expectations(allocations):
    """What die.c's loop has done after `allocations` allocations: the figures
    if the last one was followed by its free (when due), and if the kill came
    between that malloc and its free."""
    a = allocations
    kept = [k for k in range(a) if k % 10 == 0]
    complete = {
        "allocations": a,
        "frees": a - len(kept),
        "bytes_allocated": sum(loop_size(k) for k in range(a)),
        "in_use_bytes": sum(loop_size(k) for k in kept),
        "in_use_blocks": len(kept),
    }
    outcomes = [complete]
    last = a - 1
    if a > 0 and last % 10 != 0:
        cut = dict(complete)
        cut["frees"] -= 1
        cut["in_use_bytes"] += loop_size(last)
        cut["in_use_blocks"] += 1
        outcomes.append(cut)
    return outcomes


def read_number(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text else 0
    except (OSError, ValueError):
        return 0


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def known_case(c):
        args, code, status, sig, valgrind_summary = CASES[case]
        argv = [ctx.prog("die")] + args
        out = ctx.subdir("memtrace")
        result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), cwd=out,
                                    logdir=out, timeout=60)
        c.eq("memtrace run exits %d" % code, mtlib.exit_code(result.returncode), code)
        dumps = mtlib.dumps_in(out)
        if not c.check("one dump written", len(dumps) == 1, "found %s" % dumps):
            return
        rep = mtlib.report(ctx, dumps[0])
        mtlib.check_report_shape(c, rep, "dump")
        mtlib.check_exit(c, rep, "dump", status=status, signal_number=sig)
        got = mtlib.totals(rep)
        print("  memtrace: %s" % mtlib.fmt(got))
        c.figures("dump == the known set", got, KNOWN)
        c.eq("peak (bytes, blocks)", (rep["totals"]["peak_bytes"], rep["totals"]["peak_blocks"]),
             KNOWN_PEAK)
        if valgrind_summary:
            mtlib.need_valgrind()
            vg_dir = ctx.subdir("valgrind")
            vg = mtlib.valgrind_run(argv, logdir=vg_dir, cwd=vg_dir, timeout=120)
            c.eq("valgrind's client ended the same way", mtlib.exit_code(vg.returncode), code)
            want = mtlib.valgrind_figures(vg.log)
            if want is None:
                raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
            print("  valgrind: %s" % mtlib.fmt(want))
            c.figures("memtrace == valgrind", got, want)

    def killed_case(c):
        out = ctx.subdir("memtrace")
        progress = os.path.join(out, "progress")
        pidfile = os.path.join(out, "pid")
        argv = [ctx.prog("die"), "loop", progress, pidfile]
        cmd = [ctx.memtrace, "run", "-o", os.path.join(out, "%n.%p.mtr"), "--"] + argv
        proc = mtlib.start(cmd, cwd=out, stdout_path=os.path.join(out, "memtrace.out"),
                           stderr_path=os.path.join(out, "memtrace.err"))
        try:
            deadline = time.monotonic() + 60
            while read_number(progress) < KILL_AFTER:
                if proc.poll() is not None:
                    raise mtlib.TestError("memtrace run ended (%d) before the program reported %d "
                                          "allocations: %s" % (mtlib.exit_code(proc.returncode),
                                                               KILL_AFTER,
                                                               mtlib.tail(mtlib.read_text(
                                                                   os.path.join(out, "memtrace.err")))))
                if time.monotonic() > deadline:
                    raise mtlib.TestError("the program reported %d allocations in 60 s, not %d"
                                          % (read_number(progress), KILL_AFTER))
                time.sleep(0.005)
            pid = read_number(pidfile)
            c.check("the program wrote its pid, a child of memtrace", pid > 0 and
                    open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[1] == str(proc.pid),
                    "pid %d" % pid)
            os.kill(pid, signal.SIGKILL)
            try:
                proc.wait(timeout=60)
            except Exception:
                raise mtlib.TestError("memtrace run did not exit within 60 s of its program's SIGKILL")
        finally:
            if proc.poll() is None:
                mtlib.kill_group(proc)
        reported = read_number(progress)
        c.eq("memtrace run exits 137", mtlib.exit_code(proc.returncode), 137)
        dumps = mtlib.dumps_in(out)
        if not c.check("one dump written", len(dumps) == 1, "found %s" % dumps):
            return
        rep = mtlib.report(ctx, dumps[0])
        mtlib.check_report_shape(c, rep, "dump")
        mtlib.check_exit(c, rep, "dump", signal_number=signal.SIGKILL)
        got = mtlib.totals(rep)
        print("  memtrace: %s (the program last reported %d allocations)" % (mtlib.fmt(got), reported))
        c.check("allocations >= %d (the kill came after that many)" % KILL_AFTER,
                got["allocations"] >= KILL_AFTER, "got %d" % got["allocations"])
        c.check("allocations >= the last progress the program reported",
                got["allocations"] >= reported, "got %d, reported %d" % (got["allocations"], reported))
        c.check("allocations <= reported + 1000 (it reports every 1000)",
                got["allocations"] <= reported + 1000, "got %d, reported %d"
                % (got["allocations"], reported))
        outcomes = loop_expectations(got["allocations"])
        c.check("frees, bytes and in use exactly as %d allocations of the loop imply"
                % got["allocations"], got in outcomes,
                "got %s; possible: %s" % (mtlib.fmt(got), " or ".join(mtlib.fmt(o) for o in outcomes)))

    mtlib.run_test(ctx, "death." + case, killed_case if case == "killed" else known_case)


if __name__ == "__main__":
    main()
