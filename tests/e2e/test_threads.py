#!/usr/bin/env python3
"""Threads: 8 threads hand blocks to each other around a ring of locked queues
(tests/programs/threads.c: every block is freed, or realloc'd then freed, by
another thread than the one that allocated it), about 4.8 million events per
run. 20 runs under `memtrace run`; every one must have exactly the totals that
follow from the program's parameters, and in use at exit exactly the known
leak: nothing in the runs with LEAK_EVERY = 0, the kept blocks in the others.

libc's own part is the baseline: pthread_create callocs one DTV per thread
(freed at join, as threads.c's stacks are too big for glibc's stack cache),
whose size depends on how many loaded modules have TLS, so it differs between
memtrace and valgrind. The baseline is measured by a run with no work
(`threads 8 0 0`) under memtrace and checked against valgrind: same number of
allocations and frees, nothing in use. The formula below is checked against
valgrind too, on a small run (its total minus its own baseline).
"""

import os

import mtlib

THREADS = 8
PER_THREAD = 250000
RUNS = 20
LEAK_EVERY = 997          # the leaking runs keep every 997th block
SMALL_PER_THREAD = 3000   # the run that checks the formula under valgrind
BLOCK_HEADER = 16         # sizeof(struct block) in threads.c


def block_size(t, k):
    return BLOCK_HEADER + (t * 7 + k * 13) % 200


def realloc_size(k):
    return BLOCK_HEADER + 200 + k % 300


def expected(threads, per_thread, leak_every):
    """The program's own figures, from threads.c's rules."""
    allocations = frees = bytes_allocated = in_use_bytes = in_use_blocks = 0
    realloc_bytes = sum(realloc_size(k) for k in range(0, per_thread, 5))
    reallocs = len(range(0, per_thread, 5))
    for t in range(threads):
        allocations += per_thread + reallocs
        bytes_allocated += sum(block_size(t, k) for k in range(per_thread)) + realloc_bytes
        frees += reallocs
        for k in range(per_thread):
            if leak_every > 0 and k % leak_every == leak_every - 1:
                in_use_blocks += 1
                in_use_bytes += realloc_size(k) if k % 5 == 0 else block_size(t, k)
            else:
                frees += 1
    return {"allocations": allocations, "frees": frees, "bytes_allocated": bytes_allocated,
            "in_use_bytes": in_use_bytes, "in_use_blocks": in_use_blocks}


def plus(a, b):
    return {key: a[key] + b[key] for key in mtlib.FIGURES}


def minus(a, b):
    return {key: a[key] - b[key] for key in mtlib.FIGURES}


def main():
    ctx = mtlib.setup(__doc__)

    def body(c):
        mtlib.need_valgrind()
        prog = ctx.prog("threads")

        def under_memtrace(tag, *args):
            out = ctx.subdir(tag)
            result = mtlib.memtrace_run(ctx, [prog] + [str(a) for a in args],
                                        os.path.join(out, "%n.%p.mtr"), cwd=out, logdir=out,
                                        timeout=120)
            dumps = mtlib.dumps_in(out)
            if mtlib.exit_code(result.returncode) != 0 or len(dumps) != 1:
                c.check("%s: memtrace run exits 0 with one dump" % tag, False,
                        "exit %d, dumps %s, stderr: %s" % (mtlib.exit_code(result.returncode),
                                                          dumps, mtlib.tail(result.stderr)))
                return None
            rep = mtlib.report(ctx, dumps[0])
            return rep

        def under_valgrind(tag, *args):
            out = ctx.subdir(tag)
            vg = mtlib.valgrind_run([prog] + [str(a) for a in args], logdir=out, cwd=out,
                                    timeout=300)
            c.eq("%s: valgrind run exits 0" % tag, mtlib.exit_code(vg.returncode), 0)
            figures = mtlib.valgrind_figures(vg.log)
            if figures is None:
                raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
            return figures

        # libc's part, under both tools
        vg_base = under_valgrind("vg-baseline", THREADS, 0, 0)
        base_rep = under_memtrace("baseline", THREADS, 0, 0)
        if base_rep is None:
            return
        base = mtlib.totals(base_rep)
        print("  baseline: memtrace %s" % mtlib.fmt(base))
        print("  baseline: valgrind %s" % mtlib.fmt(vg_base))
        c.figures("baseline (threads %d 0 0) memtrace == valgrind" % THREADS, base, vg_base,
                  keys=("allocations", "frees", "in_use_bytes", "in_use_blocks"))
        c.eq("baseline: nothing of libc's in use at exit", (base["in_use_bytes"], base["in_use_blocks"]),
             (0, 0))

        # the formula, against valgrind
        vg_small = under_valgrind("vg-small", THREADS, SMALL_PER_THREAD, 7)
        c.figures("formula == valgrind (threads %d %d 7, less the baseline)"
                  % (THREADS, SMALL_PER_THREAD),
                  minus(vg_small, vg_base), expected(THREADS, SMALL_PER_THREAD, 7))

        wants = {leak: plus(base, expected(THREADS, PER_THREAD, leak)) for leak in (0, LEAK_EVERY)}
        for leak, want in wants.items():
            print("  expected with LEAK_EVERY=%d: %s" % (leak, mtlib.fmt(want)))
        for run in range(RUNS):
            leak = 0 if run % 2 == 0 else LEAK_EVERY
            tag = "run%02d" % run
            rep = under_memtrace(tag, THREADS, PER_THREAD, leak)
            if rep is None:
                continue
            got = mtlib.totals(rep)
            if not c.figures("%s (leak every %d)" % (tag, leak), got, wants[leak]):
                print("  %s got: %s" % (tag, mtlib.fmt(got)))
            mtlib.check_exit(c, rep, tag, status=0)
            for dump in mtlib.dumps_in(os.path.join(ctx.workdir, tag)):
                os.unlink(dump)  # 20 dumps of ~6M events would fill the disk

    mtlib.run_test(ctx, "threads", body)


if __name__ == "__main__":
    main()
