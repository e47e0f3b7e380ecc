#!/usr/bin/env python3
"""Plain LD_PRELOAD mode: `LD_PRELOAD=libmemtrace.so MEMTRACE_OUTPUT=x.mtr
prog` (no `memtrace run`) starts its own consumer, which holds an exclusive
flock on the dump until it is complete. For count_mixed and count_cxx: wait
for the lock (as `flock x.mtr true` would), read the dump, and check that its
totals are those of the same program under `memtrace run` and under valgrind,
with exit status 0 recorded; the program's own exit status and output are
unchanged.
"""

import os

import mtlib

PROGRAMS = ["count_mixed", "count_cxx"]


def main():
    ctx = mtlib.setup(__doc__)

    def body(c):
        mtlib.need_valgrind()
        for name in PROGRAMS:
            argv = [ctx.prog(name)]
            plain = ctx.subdir(name, "plain")
            dump = os.path.join(plain, "out.mtr")
            env = dict(os.environ, LD_PRELOAD=ctx.shim, MEMTRACE_OUTPUT=dump)
            r = mtlib.run(argv, env=env, cwd=plain, stdout_path=os.path.join(plain, "prog.out"),
                          stderr_path=os.path.join(plain, "prog.err"), timeout=60)
            c.eq("%s: the program exits 0" % name, mtlib.exit_code(r.returncode), 0)
            c.eq("%s: the program prints nothing of memtrace's" % name, r.stdout + r.stderr, "")
            mtlib.wait_for_dump(dump)
            rep = mtlib.report(ctx, dump)
            mtlib.check_report_shape(c, rep, name + " plain")
            mtlib.check_exit(c, rep, name + " plain", status=0)
            c.eq("%s: the dump is the program's" % name, rep["process"].get("pid"), r.pid)
            c.eq("%s: the dump is mode 0600" % name, os.stat(dump).st_mode & 0o777, 0o600)
            got = mtlib.totals(rep)

            run_dir = ctx.subdir(name, "run")
            result = mtlib.memtrace_run(ctx, argv, os.path.join(run_dir, "%n.%p.mtr"), cwd=run_dir,
                                        logdir=run_dir, timeout=60)
            c.eq("%s: memtrace run exits 0" % name, mtlib.exit_code(result.returncode), 0)
            dumps = mtlib.dumps_in(run_dir)
            if not c.check("%s: memtrace run wrote one dump" % name, len(dumps) == 1, str(dumps)):
                continue
            via_run = mtlib.totals(mtlib.report(ctx, dumps[0]))

            vg_dir = ctx.subdir(name, "vg")
            vg = mtlib.valgrind_run(argv, logdir=vg_dir, cwd=vg_dir, timeout=60)
            want = mtlib.valgrind_figures(vg.log)
            if want is None:
                raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
            print("  %s plain:    %s" % (name, mtlib.fmt(got)))
            print("  %s run:      %s" % (name, mtlib.fmt(via_run)))
            print("  %s valgrind: %s" % (name, mtlib.fmt(want)))
            c.figures("%s: plain mode == memtrace run" % name, got, via_run)
            c.figures("%s: plain mode == valgrind" % name, got, want)

    mtlib.run_test(ctx, "plain_preload", body)


if __name__ == "__main__":
    main()
