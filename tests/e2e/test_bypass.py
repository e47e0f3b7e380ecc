#!/usr/bin/env python3
"""Allocation paths that bypass LD_PRELOAD interposition (issue 17 point 7),
counted as valgrind memcheck counts them:

  libc_direct  glibc's exported __libc_malloc, __libc_calloc,
               __libc_realloc, __libc_memalign, __libc_valloc and
               __libc_free called directly, mixed with malloc and free
               (tests/programs/libc_direct.c)
  deepbind_now, deepbind_lazy
               a C library loaded with RTLD_DEEPBIND (RTLD_NOW, RTLD_LAZY):
               its malloc, calloc, realloc, posix_memalign, strdup and free
               bind to libc's, past the shim (tests/programs/deeplib.c)
  deepbind_cxx, deepbind_cxx_lazy
               a C++ library loaded with RTLD_DEEPBIND by a program that has
               libstdc++ loaded already: its operators new and delete bind to
               libstdc++'s (tests/programs/deeplib_cxx.cc)

For the C library, the run is also compared with memtrace's own run of the
same program loading it without RTLD_DEEPBIND ("plain"): the bypass must be
counted exactly as the ordinary path is, totals and leak kinds.

What stays out of reach (docs/bad-inputs.md): what the constructors of the
modules a DEEPBIND dlopen loads allocate before dlopen returns (the shim
rebinds a module once it is relocated, at the next event or dl* call).
Case deepbind_ctor_window measures that window exactly: memtrace's figures
are valgrind's less the constructor's two blocks (and the later free of
one of them); the leak kinds are not compared there.

For each case: the program exits 0 under memtrace; the totals (allocations,
frees, bytes allocated, in use at exit) and the four leak kinds (bytes,
blocks) are those of `valgrind.bin --leak-check=full
--show-leak-kinds=all`; nothing is left "unknown".
"""

import os

import mtlib

KINDS = mtlib.LEAK_KINDS

CASES = {
    # case: (program, arguments; "@NAME" is the path of victim NAME)
    "libc_direct": ("libc_direct", ["5"]),
    "deepbind_now": ("deepbind_main", ["now", "@mt_deeplib", "deep_run", "100"]),
    "deepbind_lazy": ("deepbind_main", ["lazy", "@mt_deeplib", "deep_run", "100"]),
    "deepbind_cxx": ("deepbind_main_cxx", ["now", "@mt_deeplib_cxx", "deep_cxx_run", "100"]),
    "deepbind_cxx_lazy": ("deepbind_main_cxx",
                          ["lazy", "@mt_deeplib_cxx", "deep_cxx_run", "100"]),
    "deepbind_ctor_window": ("deepbind_main",
                             ["now", "@mt_deeplib_ctor", "deep_ctor_run", "50"]),
}

# What memtrace cannot see, by case: the constructor of
# tests/programs/deeplib_ctor.c allocates 111 bytes (kept) and 222 bytes
# (freed after dlopen, a free of a block memtrace never saw, not counted).
WINDOW = {
    "deepbind_ctor_window": {"allocations": 2, "frees": 1, "bytes_allocated": 333,
                             "in_use_bytes": 111, "in_use_blocks": 1},
}


def main():
    ctx = mtlib.setup(__doc__, lambda p: p.add_argument("--case", required=True, choices=CASES))
    case = ctx.args.case

    def body(c):
        program, args = CASES[case]
        argv = [ctx.prog(program)] + [ctx.prog(a[1:]) if a.startswith("@") else a for a in args]
        out = ctx.subdir("memtrace")
        result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), cwd=out,
                                    logdir=out, timeout=60)
        c.eq("memtrace run exits 0", mtlib.exit_code(result.returncode), 0)
        dumps = mtlib.dumps_in(out)
        if not c.eq("one dump written", len(dumps), 1):
            return
        rep = mtlib.report(ctx, dumps[0])
        mtlib.check_report_shape(c, rep, "dump")
        _, got_kinds = mtlib.memtrace_leak_kinds(ctx, dumps[0])
        vg_dir = ctx.subdir("valgrind")
        vg = mtlib.valgrind_run(argv, logdir=vg_dir, cwd=vg_dir, timeout=100,
                                options=["--leak-check=full", "--show-leak-kinds=all"])
        c.eq("valgrind run exits 0", mtlib.exit_code(vg.returncode), 0)
        want = mtlib.valgrind_figures(vg.log)
        if want is None:
            raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
        got = mtlib.totals(rep)
        print("  memtrace %s" % mtlib.fmt(got))
        print("  valgrind %s" % mtlib.fmt(want))
        if case in WINDOW:
            want = {k: want[k] - WINDOW[case][k] for k in mtlib.FIGURES}
            c.figures("memtrace == valgrind less the constructor's blocks", got, want)
            return
        c.figures("memtrace == valgrind", got, want)
        want_kinds = mtlib.valgrind_leak_kinds(vg.log)
        print("  kinds: memtrace %s" % got_kinds)
        print("  kinds: valgrind %s" % want_kinds)
        for kind in KINDS:
            c.eq("%s (bytes, blocks) == valgrind's" % kind, got_kinds[kind], want_kinds[kind])
        if case in ("deepbind_now", "deepbind_lazy"):
            plain_dir = ctx.subdir("plain")
            plain_argv = [argv[0], "plain"] + argv[2:]
            plain = mtlib.memtrace_run(ctx, plain_argv, os.path.join(plain_dir, "%n.%p.mtr"),
                                       cwd=plain_dir, logdir=plain_dir, timeout=60)
            c.eq("memtrace run, no RTLD_DEEPBIND: exits 0", mtlib.exit_code(plain.returncode), 0)
            plain_dumps = mtlib.dumps_in(plain_dir)
            if not c.eq("no RTLD_DEEPBIND: one dump", len(plain_dumps), 1):
                return
            c.figures("RTLD_DEEPBIND == no RTLD_DEEPBIND", got,
                      mtlib.totals(mtlib.report(ctx, plain_dumps[0])))
            _, plain_kinds = mtlib.memtrace_leak_kinds(ctx, plain_dumps[0])
            for kind in KINDS:
                c.eq("%s (bytes, blocks) == without RTLD_DEEPBIND" % kind, got_kinds[kind],
                     plain_kinds[kind])
        c.eq("nothing unknown", got_kinds["unknown"], (0, 0))

    mtlib.run_test(ctx, "bypass." + case, body)


if __name__ == "__main__":
    main()
