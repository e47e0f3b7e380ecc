#!/usr/bin/env python3
"""dlopen/dlclose: dlopen_main dlopens libmt_leaklib.so, calls its
leaklib_run(N), which leaks a known part of N blocks, dlcloses it and exits
(tests/programs/dlopen_main.c, leaklib.c). The dump must read (its module
records, which memtrace's own tests check, include a library that is gone by
the end) and its totals must be valgrind's, for N = 100 and for N = 0. The
difference between the two runs must be exactly what leaklib.c's rules give
for 100 blocks, so the library's own calls are checked apart from what
dlopen and dlclose allocate inside ld.so.
"""

import os

import mtlib

N = 100


def leaklib_figures(n):
    sizes = [24 + 8 * (i % 10) for i in range(n)]
    kept = [sizes[i] for i in range(n) if i % 4 == 0]
    return {"allocations": n, "frees": n - len(kept), "bytes_allocated": sum(sizes),
            "in_use_bytes": sum(kept), "in_use_blocks": len(kept)}


def main():
    ctx = mtlib.setup(__doc__)

    def body(c):
        mtlib.need_valgrind()
        prog, lib = ctx.prog("dlopen_main"), ctx.prog("mt_leaklib")
        got = {}
        for n in (0, N):
            argv = [prog, lib, str(n)]
            out = ctx.subdir("memtrace-%d" % n)
            result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), cwd=out,
                                        logdir=out, timeout=60)
            c.eq("N=%d: memtrace run exits 0 (3: dlopen/dlsym/dlclose failed)" % n,
                 mtlib.exit_code(result.returncode), 0)
            dumps = mtlib.dumps_in(out)
            if not c.check("N=%d: one dump written" % n, len(dumps) == 1, "found %s" % dumps):
                return
            rep = mtlib.report(ctx, dumps[0])
            mtlib.check_report_shape(c, rep, "N=%d" % n)
            mtlib.check_exit(c, rep, "N=%d" % n, status=0)
            got[n] = mtlib.totals(rep)
            vg_dir = ctx.subdir("valgrind-%d" % n)
            vg = mtlib.valgrind_run(argv, logdir=vg_dir, cwd=vg_dir, timeout=60)
            c.eq("N=%d: valgrind run exits 0" % n, mtlib.exit_code(vg.returncode), 0)
            want = mtlib.valgrind_figures(vg.log)
            if want is None:
                raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
            print("  N=%d: memtrace %s" % (n, mtlib.fmt(got[n])))
            print("  N=%d: valgrind %s" % (n, mtlib.fmt(want)))
            c.figures("N=%d: memtrace == valgrind" % n, got[n], want)
        diff = {k: got[N][k] - got[0][k] for k in mtlib.FIGURES}
        c.figures("N=%d less N=0 == leaklib's own calls" % N, diff, leaklib_figures(N))

    mtlib.run_test(ctx, "dlopen", body)


if __name__ == "__main__":
    main()
