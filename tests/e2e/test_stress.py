#!/usr/bin/env python3
"""Stress and faults under `memtrace run`: many threads, SIGKILL at any
moment, many processes, a full disk.

    --case threads    stress_threads 64 20000: 64 threads make 1.28 million
                      allocations and as many frees, most blocks freed on
                      another thread (passed through shared queues). The
                      dump's totals are exactly what the victim says it did
                      plus glibc's own (a run with 0 allocations per thread:
                      the threads' DTVs), and nothing is in use at exit.
    --case sigkill    stress_progress SIGKILLed by the test, at the program's
                      pid, at 20 moments spread over its run: every dump reads,
                      exit signal 9 (memtrace exits 137), in_use_blocks ==
                      allocations - frees, bytes follow the victim's size rule
                      exactly, and the counts are within one of what the
                      program had started (its progress file, see
                      tests/programs/stress_progress.c): never more, so no
                      event is invented, and at most one fewer (the call the
                      kill interrupted), so none written before the kill is
                      lost.
    --case fork_exec  stress_fork forks 50 children that each exec
                      stress_child: 101 dumps (the parent, 50 fork images
                      that ended at their exec, 50 exec'd images), each read,
                      each with its exact totals.
    --case enospc     the dump directory is a 16 KiB tmpfs (mounted here,
                      unmounted in a finally; the test is skipped, exit 77,
                      when it cannot mount): memtrace says on stderr which
                      dump is incomplete and why, the dump left behind reads
                      (truncated, self-consistent), and the program's exit
                      status and output are those of a run without memtrace.
    --case clock_switch
                      clock_switch 40 3000: in each of 40 fork children the
                      main thread allocates while it starts a worker, and the
                      two hand blocks to each other with glibc's tcache off,
                      so addresses change threads just as the stamps go from
                      the coarse clock to the fine one. Every child's dump:
                      frees == allocations (a misordered free and reuse
                      shows as a free of nothing), nothing in use, at least
                      the blocks the program handed over, exit 0.
    --case fp_garbage fp_garbage calls malloc with garbage in rbp (values
                      near 2^64): --unwind fp stops its walk, the program
                      runs to its end, figures as under dwarf.
"""

import os
import re
import signal
import struct
import subprocess
import sys
import time

import mtlib

SKIP = 77
WINDOW = 64  # tests/programs/stress_progress.c


def add_arguments(parser):
    parser.add_argument("--case", required=True,
                        choices=["threads", "sigkill", "fork_exec", "enospc", "fp_garbage",
                                 "clock_switch"])


def progress_size(i):
    return 1 + (i * 37) % 500


PERIOD = 500
PERIOD_SUM = sum(progress_size(i) for i in range(PERIOD))


def progress_bytes(n):
    """Bytes of stress_progress's blocks 0..n-1."""
    return (n // PERIOD) * PERIOD_SUM + sum(progress_size(i) for i in range(n % PERIOD))


def read_progress(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32:
        return None
    pid, mallocs, frees, done = struct.unpack_from("<4Q", data)
    return {"pid": pid, "mallocs": mallocs, "frees": frees, "done": done}


def check_progress_dump(c, label, t, mallocs=None, frees=None):
    """The figures of a stress_progress dump: consistent with the size rule,
    and (when given) within one of the calls the program had started."""
    a, f = t["allocations"], t["frees"]
    c.eq("%s: in_use_blocks == allocations - frees" % label, t["in_use_blocks"], a - f)
    c.check("%s: frees in [allocations - %d, allocations]" % (label, WINDOW),
            max(0, a - WINDOW) <= f <= a, "allocations %d, frees %d" % (a, f))
    c.eq("%s: bytes_allocated == size of blocks 0..allocations-1" % label,
         t["bytes_allocated"], progress_bytes(a))
    c.eq("%s: in_use_bytes == size of blocks frees..allocations-1" % label,
         t["in_use_bytes"], progress_bytes(a) - progress_bytes(f))
    if mallocs is not None:
        c.check("%s: allocations in [mallocs started - 1, mallocs started]" % label,
                max(0, mallocs - 1) <= a <= mallocs,
                "allocations %d, mallocs started %d" % (a, mallocs))
        c.check("%s: frees in [frees started - 1, frees started]" % label,
                max(0, frees - 1) <= f <= frees, "frees %d, frees started %d" % (f, frees))


def case_threads(ctx, c):
    prog = ctx.prog("stress_threads")
    figures = {}
    for per_thread in (0, 20000):
        tag = "t%d" % per_thread
        out = ctx.subdir(tag)
        start = time.monotonic()
        result = mtlib.memtrace_run(ctx, [prog, "64", str(per_thread)],
                                    os.path.join(out, "%n.%p.mtr"), logdir=out, tag="run",
                                    timeout=50)
        print("  %s: ran in %.1f s" % (tag, time.monotonic() - start))
        c.eq("%s: exit status" % tag, mtlib.exit_code(result.returncode), 0)
        m = re.search(r"expect allocations=(\d+) frees=(\d+) bytes=(\d+)", result.stdout)
        if not c.check("%s: the victim printed its figures" % tag, m is not None, result.stdout):
            return
        dumps = mtlib.dumps_in(out)
        if not c.eq("%s: one dump" % tag, len(dumps), 1):
            return
        rep = mtlib.report(ctx, dumps[0], timeout=50)
        mtlib.check_report_shape(c, rep, tag)
        mtlib.check_exit(c, rep, tag, status=0)
        c.eq("%s: not truncated" % tag, rep["process"].get("truncated"), False)
        figures[per_thread] = (mtlib.totals(rep), [int(x) for x in m.groups()])
    base, _ = figures[0]
    got, (allocs, frees, nbytes) = figures[20000]
    c.check("baseline (glibc's own) has nothing in use", base["in_use_blocks"] == 0
            and base["in_use_bytes"] == 0, mtlib.fmt(base))
    want = {"allocations": base["allocations"] + allocs, "frees": base["frees"] + frees,
            "bytes_allocated": base["bytes_allocated"] + nbytes,
            "in_use_bytes": 0, "in_use_blocks": 0}
    c.check("the victim made over a million allocations", allocs >= 1000000, str(allocs))
    c.figures("64 threads x 20000", got, want)


def case_sigkill(ctx, c):
    prog = ctx.prog("stress_progress")
    kills = 20
    for n in range(kills):
        delay = n * 0.06  # 0 .. 1.14 s; the victim would run ~15 s to its limit
        tag = "kill%02d" % n
        out = ctx.subdir(tag)
        progress = os.path.join(out, "progress")
        proc = mtlib.start([ctx.memtrace, "run", "-o", os.path.join(out, "%n.%p.mtr"), "--",
                            prog, progress, "20000000"],
                           stdout_path=os.path.join(out, "run.out"),
                           stderr_path=os.path.join(out, "run.err"))
        try:
            deadline = time.monotonic() + 20
            state = None
            while time.monotonic() < deadline:
                if os.path.exists(progress):
                    state = read_progress(progress)
                    if state and state["pid"]:
                        break
                if proc.poll() is not None:
                    break
                time.sleep(0.002)
            if not state or not state["pid"]:
                raise mtlib.TestError("%s: the victim never wrote its pid (memtrace exit %s): %s"
                                      % (tag, proc.poll(), mtlib.tail(mtlib.read_text(
                                          os.path.join(out, "run.err")))))
            time.sleep(delay)
            os.kill(state["pid"], signal.SIGKILL)
            proc.wait(timeout=50)
        except subprocess.TimeoutExpired:
            raise mtlib.TestError("%s: memtrace did not end within 50 s of the kill" % tag)
        finally:
            if proc.poll() is None:
                mtlib.kill_group(proc)
        state = read_progress(progress)
        c.eq("%s (%.2f s): memtrace exits 128+9" % (tag, delay), mtlib.exit_code(proc.returncode), 137)
        c.eq("%s: the victim had not finished" % tag, state["done"], 0)
        dumps = mtlib.dumps_in(out)
        if not c.eq("%s: one dump" % tag, len(dumps), 1):
            continue
        rep = mtlib.report(ctx, dumps[0], timeout=50)
        mtlib.check_report_shape(c, rep, tag)
        mtlib.check_exit(c, rep, tag, signal_number=9)
        c.eq("%s: the dump's pid is the killed one" % tag, rep["process"]["pid"], state["pid"])
        t = mtlib.totals(rep)
        print("  %s: started %d mallocs, %d frees; dump %s"
              % (tag, state["mallocs"], state["frees"], mtlib.fmt(t)))
        check_progress_dump(c, tag, t, state["mallocs"], state["frees"])


def case_fork_exec(ctx, c):
    children = 50
    parent_prog, child_prog = ctx.prog("stress_fork"), ctx.prog("stress_child")
    out = ctx.subdir("dumps")
    result = mtlib.memtrace_run(ctx, [parent_prog, str(children), child_prog],
                                os.path.join(out, "%n.%p.mtr"), logdir=ctx.workdir, tag="run",
                                timeout=50)
    c.eq("memtrace exits 0", mtlib.exit_code(result.returncode), 0)
    dumps = mtlib.dumps_in(out)
    c.eq("101 dumps (parent, 50 fork images, 50 exec'd images)", len(dumps), 1 + 2 * children)
    parents, forks, execs = [], {}, {}
    for dump in dumps:
        rep = mtlib.report(ctx, dump, timeout=30)
        label = os.path.basename(dump)
        mtlib.check_report_shape(c, rep, label)
        p = rep["process"]
        command = p.get("command") or []
        name = os.path.basename(command[0]) if command else ""
        c.eq("%s: file name is %%n.%%p.mtr" % label, label, "%s.%d.mtr" % (name, p["pid"]))
        if name == "stress_child":
            execs[p["pid"]] = (int(command[1]), rep)
        elif name == "stress_fork" and p["ppid"] == result.pid:
            parents.append(rep)
        elif name == "stress_fork":
            forks[p["pid"]] = rep
        else:
            c.check("%s: a dump of a known program" % label, False, "command %r" % command)
    if not c.eq("one parent dump", len(parents), 1):
        return
    parent = parents[0]
    ppid = parent["process"]["pid"]
    calloc_bytes = 8 * (children + 1)
    c.figures("parent", mtlib.totals(parent),
              {"allocations": children + 1, "frees": children + 1,
               "bytes_allocated": calloc_bytes + sum(10 + k for k in range(children)),
               "in_use_bytes": 0, "in_use_blocks": 0})
    mtlib.check_exit(c, parent, "parent", status=0)
    c.eq("fork images and exec'd images are the same pids", sorted(forks), sorted(execs))
    c.eq("the exec'd images got the arguments 0..49", sorted(k for k, _ in execs.values()),
         list(range(children)))
    bad_fork, bad_exec = [], []
    for pid, (k, rep) in sorted(execs.items()):
        want = {"allocations": k + 1, "frees": k, "bytes_allocated": 50 * (k + 1) * (k + 2),
                "in_use_bytes": 100 * (k + 1), "in_use_blocks": 1}
        got = mtlib.totals(rep)
        ex = rep["process"].get("exit") or {}
        if got != want or ex.get("status") != 0 or rep["process"]["ppid"] != ppid:
            bad_exec.append("pid %d k=%d: %s exit %s ppid %s" % (pid, k, mtlib.fmt(got), ex,
                                                                 rep["process"]["ppid"]))
        fork = forks.get(pid)
        if fork is None:
            continue
        want = {"allocations": k + 2, "frees": 0,
                "bytes_allocated": calloc_bytes + sum(10 + j for j in range(k + 1)),
                "in_use_bytes": calloc_bytes + sum(10 + j for j in range(k + 1)),
                "in_use_blocks": k + 2}
        got = mtlib.totals(fork)
        if got != want or fork["process"]["ppid"] != ppid:
            bad_fork.append("pid %d k=%d: %s, want %s" % (pid, k, mtlib.fmt(got), mtlib.fmt(want)))
    c.eq("every exec'd image: exact totals, exit 0, ppid the parent", bad_exec, [])
    c.eq("every fork image: the parent's heap at its fork, ppid the parent", bad_fork, [])


def case_enospc(ctx, c):
    prog = ctx.prog("stress_progress")
    limit = "2000000"
    native_dir = ctx.subdir("native")
    native = mtlib.run([prog, os.path.join(native_dir, "progress"), limit, "3"],
                       stdout_path=os.path.join(native_dir, "out"),
                       stderr_path=os.path.join(native_dir, "err"), timeout=50)
    tiny = ctx.subdir("tiny")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0755", "none", tiny],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if mount.returncode != 0:
        print("SKIP: cannot mount a tmpfs here (%s); the ENOSPC case was not tried"
              % mount.stdout.decode(errors="replace").strip())
        sys.exit(SKIP)
    try:
        logs = ctx.subdir("logs")
        result = mtlib.memtrace_run(ctx, [prog, os.path.join(logs, "progress"), limit, "3"],
                                    os.path.join(tiny, "%n.%p.mtr"), logdir=logs, tag="run",
                                    timeout=50)
        dumps = mtlib.dumps_in(tiny)
        c.eq("the native run exits 3", mtlib.exit_code(native.returncode), 3)
        c.eq("exit status as without memtrace", mtlib.exit_code(result.returncode),
             mtlib.exit_code(native.returncode))
        c.eq("the program's stdout as without memtrace", result.stdout, native.stdout)
        c.eq("the program's stdout", result.stdout, "done %s\n" % limit)
        if not c.eq("one dump left on the tmpfs", len(dumps), 1):
            return
        dump = dumps[0]
        lines = [l for l in result.stderr.splitlines() if l.startswith("memtrace: ")]
        c.check("a 'memtrace: ' line on stderr names the dump and 'No space left on device'",
                any(dump in l and "No space left on device" in l for l in lines),
                "stderr: %s" % mtlib.tail(result.stderr, 12))
        for l in lines:
            print("  message: %s" % l)
        c.check("the dump filled the tmpfs (it is really cut short)",
                os.path.getsize(dump) >= 12 * 1024, "%d bytes" % os.path.getsize(dump))
        # read a byte-identical copy: the report's own logs go next to the
        # dump it reads, and the tmpfs is full
        copy = os.path.join(logs, os.path.basename(dump))
        with open(dump, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        rep = mtlib.report(ctx, copy, timeout=30)
        mtlib.check_report_shape(c, rep, "cut dump")
        c.eq("cut dump: truncated", rep["process"].get("truncated"), True)
        t = mtlib.totals(rep)
        print("  cut dump: %s" % mtlib.fmt(t))
        c.check("cut dump: some events but not all", 0 < t["allocations"] < int(limit),
                str(t["allocations"]))
        check_progress_dump(c, "cut dump", t)
    finally:
        umount = subprocess.run(["umount", tiny], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        if umount.returncode != 0:
            subprocess.run(["umount", "-l", tiny])
            c.check("tmpfs unmounted", False, umount.stdout.decode(errors="replace"))


def case_clock_switch(ctx, c):
    children, rounds = 40, 3000
    prog = ctx.prog("clock_switch")
    out = ctx.subdir("dumps")
    env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.tcache_count=0")
    result = mtlib.memtrace_run(ctx, [prog, str(children), str(rounds)],
                                os.path.join(out, "%n.%p.mtr"), env=env, logdir=ctx.workdir,
                                tag="run", timeout=60)
    c.eq("memtrace exits 0 (every child exited 0: no block arrived damaged)",
         mtlib.exit_code(result.returncode), 0)
    dumps = mtlib.dumps_in(out)
    c.eq("%d dumps (the parent and its children)" % (children + 1), len(dumps), children + 1)
    bad, seen = [], 0
    for dump in dumps:
        rep = mtlib.report(ctx, dump, timeout=30)
        p = rep["process"]
        if p["ppid"] == result.pid:
            continue  # the parent: it only forks
        seen += 1
        t = mtlib.totals(rep)
        ex = p.get("exit") or {}
        # each thread hands over `rounds` blocks, and the 100 before the worker
        if (t["frees"] != t["allocations"] or t["in_use_blocks"] or t["in_use_bytes"] or
                t["allocations"] < 2 * rounds + 100 or ex.get("status") != 0):
            bad.append("%s: %s, exit %s" % (os.path.basename(dump), mtlib.fmt(t), ex))
    c.eq("children's dumps", seen, children)
    c.check("every child: frees == allocations, nothing in use, exit 0", not bad,
            "%d children wrong, the first: %s" % (len(bad), bad[:3]))


def case_fp_garbage(ctx, c):
    """fp_garbage calls malloc with rbp holding values near 2^64 and other
    non-frames: under --unwind fp the program runs to its end (a walk that
    read at such an rbp + 8 killed it with SIGSEGV), and under both
    unwinders the dump has its 5 allocations and 5 frees on top of glibc's
    own (the same in both)."""
    prog = ctx.prog("fp_garbage")
    figures = {}
    for unwind in ("fp", "dwarf"):
        out = ctx.subdir(unwind)
        result = mtlib.memtrace_run(ctx, [prog], os.path.join(out, "%n.%p.mtr"),
                                    options=("--unwind", unwind), logdir=out, tag="run", timeout=50)
        c.eq("%s: exit status" % unwind, mtlib.exit_code(result.returncode), 0)
        c.check("%s: the program ran to its end" % unwind, "allocated 5" in result.stdout,
                result.stdout + mtlib.tail(result.stderr))
        dumps = mtlib.dumps_in(out)
        if c.eq("%s: one dump" % unwind, len(dumps), 1):
            figures[unwind] = mtlib.totals(mtlib.report(ctx, dumps[0], timeout=50))
    if len(figures) == 2:
        c.figures("fp figures equal dwarf's", figures["fp"], figures["dwarf"])


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case
    body = {"threads": case_threads, "sigkill": case_sigkill, "fork_exec": case_fork_exec,
            "enospc": case_enospc, "fp_garbage": case_fp_garbage,
            "clock_switch": case_clock_switch}[case]
    mtlib.run_test(ctx, "stress." + case, lambda c: body(ctx, c))


if __name__ == "__main__":
    main()
