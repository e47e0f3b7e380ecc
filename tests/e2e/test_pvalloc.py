#!/usr/bin/env python3
"""pvalloc against the SPEC section 4 rules (valgrind 3.19 aborts the program
on pvalloc, so there is no reference run). tests/programs/count_pvalloc.c makes
pvalloc(0), pvalloc(4096), pvalloc(8192), pvalloc(1), pvalloc(5000) and frees
the 8192 and 0 blocks; nothing else in it allocates. By the rules ("one
allocation of the requested size"): 5 allocations, 2 frees, 17289 bytes
allocated, 3 blocks / 9097 bytes in use at exit, and the peak is all five
blocks, 17289 bytes (reached when the last, 5000-byte, block is made).
"""

import os

import mtlib

REQUESTS = [0, 4096, 8192, 1, 5000]
FREED = [8192, 0]


def main():
    ctx = mtlib.setup(__doc__)

    def body(c):
        argv = [ctx.prog("count_pvalloc")]
        out = ctx.subdir("memtrace")
        result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), cwd=out, logdir=out)
        c.eq("memtrace run exits 0 (2 = pvalloc failed or misaligned)",
             mtlib.exit_code(result.returncode), 0)
        dumps = mtlib.dumps_in(out)
        if not c.eq("one dump written", len(dumps), 1):
            return
        rep = mtlib.report(ctx, dumps[0])
        mtlib.check_report_shape(c, rep, "dump")
        kept = list(REQUESTS)
        for size in FREED:
            kept.remove(size)
        want = {
            "allocations": len(REQUESTS),
            "frees": len(FREED),
            "bytes_allocated": sum(REQUESTS),
            "in_use_bytes": sum(kept),
            "in_use_blocks": len(kept),
        }
        print("  memtrace: %s" % mtlib.fmt(mtlib.totals(rep)))
        print("  expected: %s" % mtlib.fmt(want))
        c.figures("pvalloc by the SPEC rules", mtlib.totals(rep), want)
        c.eq("peak: all five blocks", (rep["totals"].get("peak_bytes"), rep["totals"].get("peak_blocks")),
             (sum(REQUESTS), len(REQUESTS)))

    mtlib.run_test(ctx, "counting.pvalloc", body)


if __name__ == "__main__":
    main()
