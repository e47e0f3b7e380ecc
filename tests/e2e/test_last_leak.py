#!/usr/bin/env python3
"""The leak as the very last heap call (issue 17, point 1), against valgrind
memcheck's LEAK SUMMARY: tests/programs/last_leak.c allocates one block with
FUNCTION, drops its only pointer and ends at once, so that the only copies
of the address left are stale ones (the dead stack the allocator's frames
used, the shim's own memory). memcheck says definitely lost; memtrace's
scan, which takes as roots only what the program holds, must say the same:
every kind equal to valgrind's, and the block definite, for every end
(return from main, exit, _exit), both unwinders, with 1 and 2 threads alive,
and when the leak is made by a thread that blocks every signal (the scan
cannot stop it and scans its whole stack; the shim's state for that thread
still holds the address and must not count as a root).

usage: test_last_leak.py ... --function malloc|calloc|realloc|aligned_alloc|new
"""
import os

import mtlib

KINDS = mtlib.LEAK_KINDS
SIZE = {"aligned_alloc": 3008}


def add_arguments(parser):
    parser.add_argument("--function", required=True)


def body(checker):
    ctx = checker.ctx
    function = ctx.args.function
    prog = ctx.prog("last_leak_cxx" if function == "new" else "last_leak")
    size = SIZE.get(function, 3000)
    mtlib.need_valgrind()
    for threads in ("1", "2", "blocked"):
        for end in ("return", "exit", "_exit"):
            argv = [prog, function, threads, end]
            tag = "%s-%s" % (threads, end)
            vg = mtlib.valgrind_run(argv, logdir=ctx.workdir, tag="vg-" + tag,
                                    options=["--leak-check=full"])
            want = mtlib.valgrind_leak_kinds(vg.log)
            checker.check("%s: valgrind says the %d bytes are definitely lost" % (tag, size),
                          want["definite"] == (size, 1), repr(want))
            for unwind in ("dwarf", "fp"):
                label = "%s threads=%s end=%s --unwind %s" % (function, threads, end, unwind)
                dump = os.path.join(ctx.workdir, "%s-%s.mtr" % (tag, unwind))
                result = mtlib.memtrace_run(ctx, argv, dump, options=["--unwind", unwind],
                                            logdir=ctx.workdir, tag="mt-%s-%s" % (tag, unwind))
                checker.eq("%s: exits 0" % label, result.returncode, 0)
                rep, got = mtlib.memtrace_leak_kinds(ctx, dump)
                checker.check("%s: scanned" % label, rep["leaks"]["scanned"] is True)
                checker.eq("%s: no block left unknown" % label, got["unknown"], (0, 0))
                for kind in KINDS:
                    checker.eq("%s: %s (bytes, blocks) == valgrind's" % (label, kind),
                               got[kind], want[kind])


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(ctx, "last_leak." + ctx.args.function, body)
