#!/usr/bin/env python3
"""Roots of the reachability scan in a mapping the kernel merged with the
heap's (issue 17: every process classified exactly as memcheck does).

merged_mapping maps memory of its own next to chunks glibc mapped for large
blocks (the kernel merges the two anonymous mappings into one line of
/proc/self/maps) and keeps the only pointers to four 100-byte blocks and the
four large ones there; it also leaks 777 bytes. memcheck: 16,777,616 bytes
in 8 blocks still reachable, 777 in 1 definitely lost.

Before preload/scan.c scan_around_heap, a mapping that held any live block
was all heap, so the program's part of such a line was not scanned: 12.5 MB
in 6 blocks 'definitely lost' that memcheck calls reachable.
"""

import os
import re

import mtlib


def body(ctx, c):
    argv = [ctx.prog("merged_mapping")]
    mtlib.need_valgrind()
    vg_dir = ctx.subdir("valgrind")
    vg_log = os.path.join(vg_dir, "vg.log")
    mtlib.valgrind_run(argv, logdir=vg_dir, cwd=vg_dir, timeout=150,
                       options=["--leak-check=full", "--show-leak-kinds=all",
                                "--log-file=" + vg_log])
    want = mtlib.valgrind_figures(vg_log)
    want_kinds = mtlib.valgrind_leak_kinds(vg_log)
    out = ctx.subdir("memtrace")
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "m.%p.mtr"), cwd=out, logdir=out,
                                tag="run", timeout=120)
    c.eq("the program exits 0", mtlib.exit_code(result.returncode), 0)
    merged = re.search(r"merged mappings: (\d+)", result.stdout)
    # the case is made only if a mapping of the program's shares a line
    # with a large block's chunk (the kernel places each new mapping below
    # the last; seen 3 of 4 here)
    c.check("a mapping of the program's was merged with a large block's",
            merged is not None and int(merged.group(1)) >= 1, result.stdout)
    dumps = mtlib.dumps_in(out)
    if not c.check("one dump", len(dumps) == 1, str(dumps)):
        return
    got = mtlib.totals(mtlib.report(ctx, dumps[0]))
    c.figures("memtrace against memcheck", got, want)
    _, kinds = mtlib.memtrace_leak_kinds(ctx, dumps[0])
    for kind in mtlib.LEAK_KINDS:
        c.eq("%s as memcheck" % kind, kinds[kind], want_kinds[kind])
    c.eq("nothing unknown", kinds["unknown"], (0, 0))
    c.eq("memcheck's own figures: 777 bytes definitely lost", want_kinds["definite"], (777, 1))


def main():
    ctx = mtlib.setup(__doc__)
    mtlib.run_test(ctx, "roots.merged_mapping", lambda c: body(ctx, c))


if __name__ == "__main__":
    main()
