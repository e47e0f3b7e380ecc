#!/usr/bin/env python3
"""Processes that end by _exit, and children that share their parent's
memory (issue 17: the field test's cmake and multiprocessing children).
tests/programs/fork_underscore_exit.c, one mode per --case:

freeres   a fork child keeps 100 bytes, leaks 64, makes libc allocate its
          one-time blocks (tzset, a stdout buffer with a line left in it) and
          ends by _exit(3). valgrind runs __libc_freeres at every exit_group,
          _exit included: memtrace must too, so every figure of both processes
          (allocations, frees, bytes, in use, the four kinds) equals memcheck's;
          and the program's stdout stays what it is bare (empty: _exit drops
          the pending line; valgrind's freeres prints it, memtrace's must not).
vfork     a vfork child whose exec fails ends by _exit(127) in the parent's
          memory: it must not end, scan or free the parent's heap. The
          parent's dump says "exited with status 0", scanned, definite 100/1
          and reachable 200/1, as memcheck.
vfork_ok  the same with an exec that succeeds (a reference).
many      --children fork children at a time, each keeps --blocks 32-byte
          blocks and leaks 64 bytes, then _exit(1) at once (cmake's child
          that was once "not scanned" in the field test), --runs times: every
          child is scanned, reachable BLOCKS*32 in BLOCKS blocks, definite
          64/1, nothing unknown.
many_closefds  the same, but each child closes every descriptor from 3 up
          (close_range) before _exit: the shim connects again for the scan,
          and the consumer hears that before the old connection's end (19
          of 20 children were "not scanned", every run).

python_os_exit  python3 forks 5 children (os.fork) that each keep 50 bytes
          objects, print a line to sys.stdout and leave by os._exit(3), as
          multiprocessing's workers do (/usr/bin/python3, Debian's): every
          child "exited with status 3" and was scanned (nothing unknown),
          definite and reachable are not empty, and the run prints what the
          bare run prints (its figures against valgrind's:
          field.python3_multiprocessing).

usage: test_forks.py ... --case freeres|vfork|vfork_ok|many|many_closefds|python_os_exit [--children N]
                         [--blocks N] [--runs N]
"""
import os
import re

import mtlib

FIGURES = ("allocations", "frees", "bytes_allocated", "in_use_bytes", "in_use_blocks")
KINDS = mtlib.LEAK_KINDS


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=("freeres", "vfork", "vfork_ok", "many",
                                                         "many_closefds", "python_os_exit"))
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=10)


def memtrace_process(ctx, dump):
    """(exit status, figures, kinds with unknown) of one dump."""
    rep = mtlib.report(ctx, dump)
    _, kinds = mtlib.memtrace_leak_kinds(ctx, dump)
    exit_ = (rep.get("process") or {}).get("exit") or {}
    return exit_.get("status"), mtlib.totals(rep), kinds, rep


def compare_with_valgrind(checker, ctx, mode, want_processes, valgrind_processes=None):
    """Runs mode under both tools; every process's figures and kinds equal
    (processes in the order of their pids). valgrind_processes: how many
    valgrind logs when it is not want_processes (the ones past
    want_processes are not compared)."""
    prog = ctx.prog("fork_underscore_exit")
    out = ctx.subdir("memtrace")
    vglogs = ctx.subdir("valgrind")
    result = mtlib.memtrace_run(ctx, [prog, mode], os.path.join(out, "%p.mtr"), logdir=out,
                                tag="mt", timeout=120)
    checker.eq("memtrace run exits 0", result.returncode, 0)
    vg = mtlib.valgrind_run([prog, mode], logdir=vglogs, timeout=200,
                            options=["--leak-check=full", "--show-leak-kinds=all",
                                     "--trace-children=yes",
                                     "--log-file=" + os.path.join(vglogs, "vg.%p")])
    checker.eq("valgrind run exits 0", mtlib.exit_code(vg.returncode), 0)
    mt = sorted((int(os.path.basename(d).split(".")[0]), d) for d in mtlib.dumps_in(out))
    vgs = sorted((int(name.split(".")[1]), os.path.join(vglogs, name))
                 for name in os.listdir(vglogs) if name.startswith("vg."))
    vgs = [(pid, log) for pid, log in vgs if mtlib.valgrind_figures(log) is not None]
    checker.eq("processes under memtrace", len(mt), want_processes)
    checker.eq("processes with a heap summary under valgrind", len(vgs),
               valgrind_processes or want_processes)
    for n, ((_, dump), (_, log)) in enumerate(zip(mt, vgs)):
        label = "process %d (%s)" % (n, "parent" if n == 0 else "child")
        status, figures, kinds, _ = memtrace_process(ctx, dump)
        want = mtlib.valgrind_figures(log)
        want_kinds = mtlib.valgrind_leak_kinds(log)
        for f in FIGURES:
            checker.eq("%s: %s as memcheck" % (label, f), figures[f], want[f])
        for k in KINDS:
            checker.eq("%s: %s as memcheck" % (label, k), kinds[k], want_kinds[k])
        checker.eq("%s: nothing unknown (scanned)" % label, kinds["unknown"], (0, 0))
        print("  %s: exit %s, %s, kinds %s" % (label, status, mtlib.fmt(figures),
                                                {k: kinds[k] for k in KINDS}))
    return result, vg, mt


def body_freeres(checker):
    ctx = checker.ctx
    prog = ctx.prog("fork_underscore_exit")
    bare = mtlib.run([prog, "freeres"], stdout_path=os.path.join(ctx.workdir, "bare.out"),
                     stderr_path=os.path.join(ctx.workdir, "bare.err"))
    checker.eq("bare: exits 0", bare.returncode, 0)
    result, vg, mt = compare_with_valgrind(checker, ctx, "freeres", 2)
    checker.eq("the child's pending stdout line is dropped by _exit, as bare", result.stdout,
               bare.stdout)
    checker.eq("bare prints nothing", bare.stdout, "")
    # the difference that the fact of the field test described: valgrind's
    # freeres at _exit flushes (so its run prints the line), ours must not
    print("  valgrind's run printed %r (its freeres at _exit flushes stdio)" % vg.stdout)
    if len(mt) == 2:
        status, figures, kinds, _ = memtrace_process(ctx, mt[1][1])
        checker.eq("child: exited with status 3", status, 3)
        checker.eq("child: definite 64/1", kinds["definite"], (64, 1))
        checker.eq("child: reachable 100/1 (libc's one-time blocks freed)", kinds["reachable"],
                   (100, 1))


def body_vfork(checker, mode):
    """vfork: valgrind runs vfork as fork, so its child (whose exec fails)
    has a log of its own; under memtrace it is no process of its own (it
    shares the parent's memory). vfork_ok: the child's exec of /bin/true is
    a process under both."""
    ctx = checker.ctx
    if mode == "vfork":
        _, _, mt = compare_with_valgrind(checker, ctx, mode, 1, valgrind_processes=2)
    else:
        _, _, mt = compare_with_valgrind(checker, ctx, mode, 2)
    if mt:
        status, figures, kinds, _ = memtrace_process(ctx, mt[0][1])
        checker.eq("parent: exited with status 0 (not the vfork child's 127)", status, 0)
        checker.eq("parent: definite 100/1", kinds["definite"], (100, 1))
        checker.eq("parent: reachable 200/1", kinds["reachable"], (200, 1))
        checker.eq("parent: 2 allocations, 0 frees", (figures["allocations"], figures["frees"]),
                   (2, 0))


def body_many(checker, mode):
    ctx = checker.ctx
    prog = ctx.prog("fork_underscore_exit")
    n, blocks = ctx.args.children, ctx.args.blocks
    reach = "still reachable: {:,} bytes in {:,} blocks".format(32 * blocks, blocks)
    for run in range(ctx.args.runs):
        out = ctx.subdir("run%d" % run)
        result = mtlib.memtrace_run(ctx, [prog, mode, str(n), str(blocks)],
                                    os.path.join(out, "%p.mtr"), logdir=out, tag="mt",
                                    timeout=600)
        label = "run %d" % (run + 1)
        checker.eq("%s: memtrace exits 0" % label, result.returncode, 0)
        checker.eq("%s: one dump per process" % label, len(mtlib.dumps_in(out)), n + 1)
        err = mtlib.read_text(os.path.join(out, "mt.err"))
        unscanned = len(re.findall(r"not scanned: ", err))
        definite = len(re.findall(r"definitely lost: 64 bytes in 1 blocks", err))
        reachable = err.count(reach)
        checker.eq("%s: processes not scanned" % label, unscanned, 0)
        checker.eq("%s: children with 64 bytes definitely lost" % label, definite, n)
        checker.eq("%s: children with %s" % (label, reach), reachable, n)
        print("  %s: %d children, %d definite 64/1, %d reachable as kept, %d not scanned"
              % (label, n, definite, reachable, unscanned))


PYTHON_OS_EXIT = """\
import os, sys
kept = [str(i) * 5 for i in range(300)]
for n in range(5):
    pid = os.fork()
    if pid == 0:
        more = [bytes(200) for _ in range(50)]
        sys.stdout.write("child %d\\n" % n)
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 3:
        sys.exit(1)
"""


def body_python_os_exit(checker):
    ctx = checker.ctx
    out = ctx.subdir("memtrace")
    env = dict(os.environ, PYTHONMALLOC="malloc", PYTHONHASHSEED="0")
    argv = ["/usr/bin/python3", "-c", PYTHON_OS_EXIT]
    bare = mtlib.run(argv, env=env, stdout_path=os.path.join(ctx.workdir, "bare.out"),
                     stderr_path=os.path.join(ctx.workdir, "bare.err"), timeout=120)
    checker.eq("bare: exits 0", bare.returncode, 0)
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%p.mtr"), logdir=out, tag="mt",
                                env=env, timeout=240)
    checker.eq("memtrace run exits 0", result.returncode, 0)
    checker.eq("stdout as bare", result.stdout, bare.stdout)
    dumps = mtlib.dumps_in(out)
    checker.eq("one dump per process", len(dumps), 6)
    children = 0
    for dump in dumps:
        status, figures, kinds, _ = memtrace_process(ctx, dump)
        if status != 3:
            continue
        children += 1
        name = os.path.basename(dump)
        checker.eq("%s: nothing unknown (scanned)" % name, kinds["unknown"], (0, 0))
        checker.check("%s: blocks definitely lost (the runtime's locks made again after fork)"
                      % name, kinds["definite"][1] > 0, repr(kinds))
        checker.check("%s: blocks still reachable" % name, kinds["reachable"][1] > 0,
                      repr(kinds))
    checker.eq("children that exited with status 3", children, 5)


def body(checker):
    case = checker.ctx.args.case
    if case == "freeres":
        body_freeres(checker)
    elif case == "python_os_exit":
        body_python_os_exit(checker)
    elif case in ("vfork", "vfork_ok"):
        body_vfork(checker, case)
    else:
        body_many(checker, case)


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(ctx, "forks." + ctx.args.case, body)
