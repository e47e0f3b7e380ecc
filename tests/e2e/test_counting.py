#!/usr/bin/env python3
"""Counting vs valgrind (SPEC section 4): runs one victim under `memtrace run`
and under valgrind memcheck and checks that memtrace's dump has exactly
valgrind's total heap usage (allocations, frees, bytes allocated) and in use at
exit (bytes, blocks). Also: one dump, named %n.%p.mtr after the traced pid,
with the right command and exit status; the summary memtrace prints on stderr
says the same as the dump; the program's output is the same under both tools.

    test_counting.py COMMON-ARGS --program NAME [--arg ARG ...]
                     [--memtrace-option OPTION ...] [--name TEST]

With --memtrace-option (--unwind fp, --max-depth N) the same comparison checks
that how stacks are captured never changes what is counted.
"""

import os

import mtlib


def add_arguments(parser):
    parser.add_argument("--program", required=True, help="victim name (see --prog)")
    parser.add_argument("--arg", action="append", default=[], help="argument for the victim")
    parser.add_argument("--name", help="test name (default counting.PROGRAM)")
    parser.add_argument("--memtrace-option", action="append", default=[],
                        help="option for `memtrace run` (e.g. --unwind=fp): the totals must not change")


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    name = ctx.args.name or "counting." + ctx.args.program.replace("count_", "", 1)

    def body(c):
        mtlib.need_valgrind()
        argv = [ctx.prog(ctx.args.program)] + ctx.args.arg
        # two directories whose paths have the same length: the programs'
        # cwd (and so anything they derive from it) is alike in both runs
        mt_dir = ctx.subdir("memtrace")
        vg_dir = ctx.subdir("valgrind")

        result = mtlib.memtrace_run(ctx, argv, os.path.join(mt_dir, "%n.%p.mtr"), cwd=mt_dir,
                                    options=ctx.args.memtrace_option, logdir=mt_dir)
        c.eq("memtrace run exits with the program's status", mtlib.exit_code(result.returncode), 0)
        dumps = mtlib.dumps_in(mt_dir)
        if not c.check("one dump written", len(dumps) == 1,
                       "found %s" % [os.path.basename(d) for d in dumps]):
            return
        rep = mtlib.report(ctx, dumps[0])
        mtlib.check_report_shape(c, rep, "dump")
        mtlib.check_exit(c, rep, "dump", status=0)
        pid = rep["process"].get("pid")
        c.eq("dump named %n.%p.mtr", os.path.basename(dumps[0]),
             "%s.%s.mtr" % (os.path.basename(argv[0]), pid))
        c.eq("process.command is the program's argv", rep["process"].get("command"), argv)
        c.eq("dump created with mode 0600", os.stat(dumps[0]).st_mode & 0o777, 0o600)
        mtlib.check_summaries_match(c, result.stderr, [rep], "memtrace")

        vg = mtlib.valgrind_run(argv, logdir=vg_dir, cwd=vg_dir)
        c.eq("valgrind run exits 0", mtlib.exit_code(vg.returncode), 0)
        want = mtlib.valgrind_figures(vg.log)
        if want is None:
            raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
        print("  memtrace: %s" % mtlib.fmt(mtlib.totals(rep)))
        print("  valgrind: %s" % mtlib.fmt(want))
        c.figures("memtrace == valgrind", mtlib.totals(rep), want)
        c.eq("program output is the same under memtrace and valgrind", result.stdout, vg.stdout)

    mtlib.run_test(ctx, name, body)


if __name__ == "__main__":
    main()
