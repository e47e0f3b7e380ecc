#!/usr/bin/env python3
"""`memtrace run`'s own life cycle (issue 18, points 7 to 10), with the victim
tests/programs/lifecycle.c. One case per run (--case):

daemon    the program exits 3 while its double-forked grandchild sleeps
          20 s: run returns with status 3 in well under 20 s, says in one
          line which dump completes later, and the grandchild's dump
          completes when it ends (its flock released), with its figures.
pidns     `memtrace run unshare -p -f --mount-proc lifecycle rss 64` (as
          root; 77 = skipped when unshare is refused): the dump of the
          program describes it (its command line, its RSS, the figures of
          the same program without a namespace), named after its pid as
          memtrace sees it, with unshare as its parent.
fdlimit   400 children alive at once under `prlimit --nofile=1024:20000`:
          401 complete dumps, and the program itself still sees 1024:20000.
fdlimit_hard  the same under a hard limit of 256: the processes that do not
          fit are refused with one clear line each, and run fails.
term, int, hup, kill  run is sent the signal while its program sleeps: the
          program gets it too (term, int, hup) and run exits as the program
          did; nothing of the run is left in the (private) TMPDIR, SIGKILL
          included.
"""

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import mtlib

CASES = ("daemon", "daemon_late", "pidns", "fdlimit", "fdlimit_hard", "term", "int", "hup", "kill")


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=CASES)


def locked(path):
    """True while the consumer still holds the dump's exclusive flock."""
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


def figures(rep):
    return mtlib.totals(rep)


def case_daemon(ctx, c):
    work = ctx.subdir("daemon")
    pidfile = os.path.join(work, "grandchild.pid")
    argv = [ctx.prog("lifecycle"), "daemon", "20", pidfile]
    began = time.monotonic()
    r = mtlib.memtrace_run(ctx, argv, os.path.join(work, "%p.mtr"), cwd=work, logdir=work,
                           timeout=60)
    took = time.monotonic() - began
    print("  memtrace run returned after %.2f s" % took)
    c.eq("run exits with the program's status", mtlib.exit_code(r.returncode), 3)
    c.check("run returns in well under the grandchild's 20 s", took < 8, "%.2f s" % took)
    gpid = int(open(pidfile).read())
    gdump = os.path.join(work, "%d.mtr" % gpid)
    later = [line for line in r.stderr.splitlines() if gdump in line]
    c.check("one line of run's names the dump that completes later", len(later) == 1,
            r.stderr[-800:])
    c.check("that line says this run's gates do not judge it",
            bool(later) and "not judged" in later[0], later[0] if later else "")
    c.check("the grandchild's dump is still being written when run returns",
            os.path.exists(gdump) and locked(gdump))
    done = [d for d in mtlib.dumps_in(work) if d != gdump]
    c.eq("run leaves two complete dumps (the program and its middle child)", len(done), 2)
    for dump in done:
        c.check("%s is complete when run returns" % os.path.basename(dump), not locked(dump))
    reps = {mtlib.report(ctx, d)["process"]["pid"]: mtlib.report(ctx, d) for d in done}
    program = [rep for rep in reps.values() if rep["process"]["ppid"] == r.pid]
    if c.check("one dump is the program's (run's child)", len(program) == 1):
        mtlib.check_exit(c, program[0], "program", status=3)
        c.figures("program", figures(program[0]),
                  {"allocations": 1, "frees": 0, "bytes_allocated": 50, "in_use_bytes": 50,
                   "in_use_blocks": 1})
    # the background copy keeps no pipe of the caller's open: $(memtrace run
    # ...) ends when the program does, --log-file or not
    for extra in ([], ["--log-file", os.path.join(work, "piped.log")]):
        piped = ctx.subdir("daemon", "piped%d" % len(extra))
        t0 = time.monotonic()
        p = subprocess.run([ctx.memtrace, "run", "-q", "-o", os.path.join(piped, "%p.mtr")] +
                           extra + ["--", ctx.prog("lifecycle"), "daemon", "6",
                                    os.path.join(piped, "pid")],
                           cwd=piped, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=60)
        piped_took = time.monotonic() - t0
        c.check("run's pipes reach their end with the program (%s)" % (extra[:1] or "no log"),
                p.returncode == 3 and piped_took < 4,
                "exit %d after %.2f s" % (p.returncode, piped_took))
    mtlib.wait_for_dump(gdump, timeout=60)
    waited = time.monotonic() - began
    print("  the grandchild's dump completed after %.2f s" % waited)
    c.check("the grandchild's dump completes when it ends (20 s)", waited > 18, "%.2f s" % waited)
    rep = mtlib.report(ctx, gdump)
    mtlib.check_report_shape(c, rep, "grandchild")
    mtlib.check_exit(c, rep, "grandchild", status=0)
    c.eq("grandchild: the dump's pid", rep["process"]["pid"], gpid)
    c.figures("grandchild", figures(rep),
              {"allocations": 3, "frees": 1, "bytes_allocated": 600, "in_use_bytes": 400,
               "in_use_blocks": 2})


def rss_samples(ctx, dump):
    out = dump + ".csv"
    r = mtlib.run([ctx.memtrace, "timeline", "--format", "csv", "-o", out, dump],
                  stdout_path=out + ".out", stderr_path=out + ".err")
    if r.returncode != 0:
        raise mtlib.TestError("memtrace timeline %s failed: %s" % (dump, r.stderr))
    values = []
    for line in open(out).read().splitlines()[1:]:
        rss = line.split(",")[3]
        if rss:
            values.append(int(rss))
    return values


def case_daemon_late(ctx, c):
    """The daemon's grandchild says HELLO only after the middle process that
    forked it has ended (libmt_slow_child.so holds every fork child half a
    second before the shim's fork handler): the consumer must still trace
    it, on the kit its parent left, although its parent is now another
    process. It was refused, and untraced without a word."""
    work = ctx.subdir("daemon_late")
    pidfile = os.path.join(work, "grandchild.pid")
    argv = [ctx.prog("lifecycle"), "daemon", "2", pidfile]
    env = dict(os.environ, LD_PRELOAD=ctx.prog("mt_slow_child"))
    r = mtlib.memtrace_run(ctx, argv, os.path.join(work, "%p.mtr"), cwd=work, logdir=work,
                           env=env, timeout=60)
    c.eq("run exits with the program's status", mtlib.exit_code(r.returncode), 3)
    gpid = int(open(pidfile).read())
    gdump = os.path.join(work, "%d.mtr" % gpid)
    try:
        mtlib.wait_for_dump(gdump, timeout=30)
    except mtlib.TestError as error:
        c.check("the grandchild was traced: its dump exists", False, str(error))
        return
    rep = mtlib.report(ctx, gdump)
    c.eq("the grandchild's dump is its own", rep["process"]["pid"], gpid)
    mtlib.check_exit(c, rep, "grandchild", status=0)
    c.figures("grandchild", figures(rep),
              {"allocations": 3, "frees": 1, "bytes_allocated": 600, "in_use_bytes": 400,
               "in_use_blocks": 2})


def case_pidns(ctx, c):
    work = ctx.subdir("pidns")
    probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        print("SKIP: unshare -p -f --mount-proc is not permitted here")
        sys.exit(77)
    prog = ctx.prog("lifecycle")
    argv = [prog, "rss", "64"]
    bare_dir = ctx.subdir("pidns", "bare")
    bare = mtlib.memtrace_run(ctx, argv, os.path.join(bare_dir, "%p.mtr"), cwd=bare_dir,
                              logdir=bare_dir)
    c.eq("without a namespace: run exits 0", mtlib.exit_code(bare.returncode), 0)
    want = figures(mtlib.report(ctx, mtlib.dumps_in(bare_dir)[0]))

    ns_dir = ctx.subdir("pidns", "ns")
    r = mtlib.memtrace_run(ctx, ["unshare", "-p", "-f", "--mount-proc"] + argv,
                           os.path.join(ns_dir, "%p.mtr"), cwd=ns_dir, logdir=ns_dir)
    c.eq("in a namespace: run exits 0", mtlib.exit_code(r.returncode), 0)
    printed = re.search(r"rss (\d+)", r.stdout)
    if not printed:
        raise mtlib.TestError("the program printed no rss line: %r" % r.stdout)
    own_rss = int(printed.group(1))
    reps = {}
    for dump in mtlib.dumps_in(ns_dir):
        reps[dump] = mtlib.report(ctx, dump)
    commands = [rep["process"]["command"] for rep in reps.values()]
    print("  commands: %s" % commands)
    init = open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode()
    c.check("no dump has the host init's command line",
            not any(cmd and cmd[0] == init for cmd in commands), str(commands))
    mine = [d for d, rep in reps.items() if rep["process"]["command"] == argv]
    if not c.check("one dump has the program's command line", len(mine) == 1, str(commands)):
        return
    dump = mine[0]
    rep = reps[dump]
    pid = rep["process"]["pid"]
    c.check("the dump is named after the pid memtrace sees, not 1",
            pid != 1 and os.path.basename(dump) in ("%d.mtr" % pid, "%d.1.mtr" % pid),
            "pid %d, dump %s" % (pid, dump))
    parents = [rep2["process"]["pid"] for rep2 in reps.values()
               if rep2["process"]["command"][:1] == ["unshare"]
               and rep2["process"]["ppid"] == r.pid]
    c.check("its parent is unshare (run's child), as memtrace sees them",
            rep["process"]["ppid"] in parents, "ppid %s, unshare %s" % (rep["process"]["ppid"],
                                                                      parents))
    mtlib.check_exit(c, rep, "program", status=0)
    c.figures("program in a namespace == without", figures(rep), want)
    samples = rss_samples(ctx, dump)
    top = max(samples) if samples else 0
    print("  RSS: the program saw %d, the dump's highest sample %d (%d samples)"
          % (own_rss, top, len(samples)))
    c.check("its RSS samples are its own (the highest within 8 MiB of what it saw)",
            abs(top - own_rss) <= 8 << 20, "%d vs %d" % (top, own_rss))


def case_fdlimit(ctx, c, hard):
    work = ctx.subdir("fdlimit")
    n = 400
    limit = "--nofile=1024:20000" if not hard else "--nofile=256:256"
    # hard: a gate that the figures pass, so that only what could not be
    # traced fails it
    options = ["-q"] + (["--max-leaked", "100000"] if hard else [])
    r = mtlib.memtrace_run(ctx, [ctx.prog("lifecycle"), "children", str(n)],
                           os.path.join(work, "%p.mtr"), options=options,
                           wrapper=["prlimit", limit], cwd=work, logdir=work, timeout=200)
    dumps = mtlib.dumps_in(work)
    if not hard:
        c.eq("the program sees its own limits", r.stdout.strip(), "nofile 1024 20000")
        c.eq("run exits 0", mtlib.exit_code(r.returncode), 0)
        c.check("no 'Too many open files'", "Too many open files" not in r.stderr,
                mtlib.tail(r.stderr))
        c.eq("one dump per process", len(dumps), n + 1)
        bad = []
        reps = {}
        for dump in dumps:
            rep = reps[dump] = mtlib.report(ctx, dump)
            exit_status = (rep["process"].get("exit") or {}).get("status")
            if exit_status != 0:
                bad.append((dump, "exit", rep["process"].get("exit")))
        parent = [rep for rep in reps.values() if rep["process"]["ppid"] == r.pid]
        if not c.eq("one dump is the program's", len(parent), 1):
            return
        # a child: the block of its own (1000 bytes, freed), and the parent's
        # stdout buffer that it inherits and frees at exit
        inherited = figures(parent[0])["bytes_allocated"]
        child = {"allocations": 2, "frees": 2, "bytes_allocated": 1000 + inherited,
                 "in_use_bytes": 0, "in_use_blocks": 0}
        children = [d for d, rep in reps.items() if rep["process"]["ppid"] != r.pid]
        c.eq("400 of the dumps are the children's", len(children), n)
        for dump in children:
            if figures(reps[dump]) != child:
                bad.append((dump, figures(reps[dump])))
        c.check("every dump is complete, with its figures", not bad, str(bad[:5]))
    else:
        c.eq("the program sees its own limits", r.stdout.strip(), "nofile 256 256")
        lines = [l for l in r.stderr.splitlines() if "open-file limit" in l]
        print("  %d dumps, %d refusal lines; first: %s" % (len(dumps), len(lines),
                                                           lines[:1]))
        c.check("the processes that do not fit are refused, one line each",
                lines and len(dumps) + len(lines) == n + 1,
                "%d dumps, %d lines" % (len(dumps), len(lines)))
        c.eq("the gate fails (--error-exitcode 99)", mtlib.exit_code(r.returncode), 99)
        c.check("no process is said to be left running", "still run" not in r.stderr,
                mtlib.tail(r.stderr, 3))
        parent = [d for d in dumps if mtlib.report(ctx, d)["process"]["ppid"] == r.pid]
        if c.eq("the program has its dump", len(parent), 1):
            chk = mtlib.run([ctx.memtrace, "check", parent[0]],
                            stdout_path=parent[0] + ".check.out",
                            stderr_path=parent[0] + ".check.err")
            c.check("its trace says children went untraced: check fails on it",
                    chk.returncode != 0 and "could not be traced" in chk.stderr,
                    "exit %d: %s" % (chk.returncode, mtlib.tail(chk.stderr, 3)))
        for dump in dumps:
            if locked(dump) or not mtlib.report(ctx, dump)["process"].get("exit"):
                c.check("every dump made is complete", False, dump)
                break


def run_dirs(tmpdir):
    return sorted(name for name in os.listdir(tmpdir) if name.startswith("memtrace-"))


def case_signal(ctx, c, sig):
    work = ctx.subdir("signal")
    # a private TMPDIR, short enough for a socket path (run falls back to
    # /tmp beyond 60 characters)
    tmpdir = tempfile.mkdtemp(prefix="mt-lifecycle-")
    env = dict(os.environ, TMPDIR=tmpdir)
    cmd = [ctx.memtrace, "run", "-q", "-o", os.path.join(work, "%p.mtr"), "--",
           ctx.prog("lifecycle"), "sleep", "30"]
    proc = mtlib.start(cmd, env=env, cwd=work, stdout_path=os.path.join(work, "run.out"),
                       stderr_path=os.path.join(work, "run.err"))
    try:
        deadline = time.monotonic() + 20
        while not (run_dirs(tmpdir) and mtlib.dumps_in(work)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise mtlib.TestError("the run did not start: %s" % mtlib.read_text(
                    os.path.join(work, "run.err")))
            time.sleep(0.02)
        c.eq("the run has its directory in TMPDIR", len(run_dirs(tmpdir)), 1)
        dump = mtlib.dumps_in(work)[0]
        prog_pid = int(os.path.basename(dump).split(".")[0])
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise mtlib.TestError("run did not end within 20 s of signal %d" % sig)
        deadline = time.monotonic() + 5
        while run_dirs(tmpdir) and time.monotonic() < deadline:
            time.sleep(0.02)
        c.eq("nothing of the run is left in TMPDIR", run_dirs(tmpdir), [])
        if sig != signal.SIGKILL:
            c.eq("run exits as its program did (128+%d)" % sig, mtlib.exit_code(proc.returncode),
                 128 + sig)
            rep = mtlib.report(ctx, dump)
            mtlib.check_exit(c, rep, "program", signal_number=sig)
            try:
                os.kill(prog_pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            c.check("the program got the signal (it is gone)", not alive)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        shutil.rmtree(tmpdir, ignore_errors=True)


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def body(c):
        if case == "daemon":
            case_daemon(ctx, c)
        elif case == "daemon_late":
            case_daemon_late(ctx, c)
        elif case == "pidns":
            case_pidns(ctx, c)
        elif case.startswith("fdlimit"):
            case_fdlimit(ctx, c, hard=case == "fdlimit_hard")
        else:
            sig = {"term": signal.SIGTERM, "int": signal.SIGINT, "hup": signal.SIGHUP,
                   "kill": signal.SIGKILL}[case]
            case_signal(ctx, c, sig)

    mtlib.run_test(ctx, "lifecycle." + case, body)


if __name__ == "__main__":
    main()
