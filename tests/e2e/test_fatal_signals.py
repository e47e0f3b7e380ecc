#!/usr/bin/env python3
"""Death by a fatal signal is classified (issue 17, point 3).
tests/programs/fatal_signal.c leaks 4096 bytes, keeps 500 reachable, then
dies by abort(), a SIGSEGV, a SIGTERM sent from outside, a SIGSEGV after
checking that sigaction reports SIG_DFL (not memtrace's handler), or a
SIGSEGV under its own handler (which must run, and which sigaction and
signal must report). For each:

  - the LEAK SUMMARY equals valgrind memcheck's (definite 4096/1, reachable
    500/1) and the dump is scanned, nothing left unknown;
  - the dump says "killed by signal N";
  - the program ends exactly as it does bare: the same signal and the same
    core-dump flag (plain LD_PRELOAD mode, RLIMIT_CORE unlimited, the core
    files removed), and `memtrace run` exits 128+N.

With --case twofaults, 4 threads fault at once: the second fatal signal
comes during the first one's scan and must kill at once (no hang, the same
signal and core flag); the kinds are then compared only if the scan ended.

usage: test_fatal_signals.py ... --case abort|segv|term|query|handler|twofaults
"""
import os
import resource
import signal
import subprocess
import time

import mtlib

KINDS = mtlib.LEAK_KINDS
CASES = {"abort": signal.SIGABRT, "segv": signal.SIGSEGV, "term": signal.SIGTERM,
         "query": signal.SIGSEGV, "handler": signal.SIGSEGV, "twofaults": signal.SIGSEGV}


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=sorted(CASES))


def cores_on():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def run_raw(argv, cwd, env, ready=None, timeout=120):
    """Runs argv; with ready, SIGTERMs it once that file says "ready". The raw
    wait status (signal and core flag), not subprocess's returncode."""
    with open(os.path.join(cwd, "out"), "wb") as out, open(os.path.join(cwd, "err"), "wb") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err,
                                preexec_fn=cores_on)
    deadline = time.monotonic() + timeout
    if ready:
        while not (os.path.exists(ready) and open(ready).read().startswith("ready")):
            if time.monotonic() > deadline:
                proc.kill()
                raise mtlib.TestError("%s never said ready" % argv)
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGTERM)
    while True:
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = 0  # reaped here: keep Popen from waiting again
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise mtlib.TestError("%s did not end in %d s" % (argv, timeout))
        time.sleep(0.01)
    for name in os.listdir(cwd):
        if name == "core" or name.startswith("core.") or name.startswith("vgcore."):
            os.unlink(os.path.join(cwd, name))
    return status


def describe(status):
    if os.WIFSIGNALED(status):
        return "signal %d%s" % (os.WTERMSIG(status), ", core dumped" if os.WCOREDUMP(status) else "")
    return "status %d" % os.WEXITSTATUS(status)


def body(checker):
    ctx = checker.ctx
    case = ctx.args.case
    sig = CASES[case]
    prog = ctx.prog("fatal_signal")

    def argv_in(directory):
        return [prog, case] + ([os.path.join(directory, "ready")] if case == "term" else [])

    # bare
    bare = ctx.subdir("bare")
    bare_status = run_raw(argv_in(bare), bare, dict(os.environ),
                          ready=os.path.join(bare, "ready") if case == "term" else None)
    checker.check("bare: killed by signal %d" % sig,
                  os.WIFSIGNALED(bare_status) and os.WTERMSIG(bare_status) == sig,
                  describe(bare_status))
    if case == "handler":
        checker.check("bare: the program's handler ran",
                      "handler ran" in mtlib.read_text(os.path.join(bare, "err")))

    # plain LD_PRELOAD mode: the raw wait status
    plain = ctx.subdir("plain")
    env = dict(os.environ, LD_PRELOAD=ctx.shim, MEMTRACE_OUTPUT=os.path.join(plain, "p.mtr"),
               MEMTRACE_BIN=ctx.memtrace)
    plain_status = run_raw(argv_in(plain), plain, env,
                           ready=os.path.join(plain, "ready") if case == "term" else None)
    checker.eq("LD_PRELOAD: ends as bare (%s)" % describe(bare_status), describe(plain_status),
               describe(bare_status))
    if case == "handler":
        checker.check("LD_PRELOAD: the program's handler ran",
                      "handler ran" in mtlib.read_text(os.path.join(plain, "err")))
    checker.check("LD_PRELOAD: the program saw only its own actions",
                  "sigaction" not in mtlib.read_text(os.path.join(plain, "err")) and
                  "signal does not" not in mtlib.read_text(os.path.join(plain, "err")))
    mtlib.wait_for_dump(os.path.join(plain, "p.mtr"))

    # memtrace run
    out = ctx.subdir("run")
    dump = os.path.join(out, "r.mtr")
    if case == "term":
        ready = os.path.join(out, "ready")
        proc = mtlib.start([ctx.memtrace, "run", "-o", dump, "--"] + argv_in(out), cwd=out,
                           stdout_path=os.path.join(out, "mt.out"),
                           stderr_path=os.path.join(out, "mt.err"))
        deadline = time.monotonic() + 60
        while not (os.path.exists(ready) and open(ready).read().startswith("ready")):
            if time.monotonic() > deadline:
                mtlib.kill_group(proc)
                raise mtlib.TestError("the program never said ready under memtrace run")
            time.sleep(0.01)
        pid = int(subprocess.run(["pgrep", "-P", str(proc.pid), "-x", "fatal_signal"],
                                 capture_output=True, text=True).stdout.split()[0])
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=60)
        returncode = proc.returncode
    else:
        returncode = mtlib.memtrace_run(ctx, argv_in(out), dump, cwd=out, logdir=out,
                                        tag="mt").returncode
    checker.eq("memtrace run exits 128+%d" % sig, mtlib.exit_code(returncode), 128 + sig)

    # valgrind
    mtlib.need_valgrind()
    vg_dir = ctx.subdir("valgrind")
    log = os.path.join(vg_dir, "vg.log")
    if case == "term":
        run_raw([mtlib.VALGRIND] + mtlib.VALGRIND_OPTIONS + ["--leak-check=full", "--log-file=" + log] +
                argv_in(vg_dir), vg_dir, dict(os.environ), ready=os.path.join(vg_dir, "ready"))
    else:
        mtlib.valgrind_run(argv_in(vg_dir), logdir=vg_dir, tag="vg", cwd=vg_dir,
                           options=["--leak-check=full"])
    want = mtlib.valgrind_leak_kinds(log)
    checker.eq("valgrind: definite and reachable", (want["definite"], want["reachable"]),
               ((4096, 1), (500, 1)))

    for label, path in (("LD_PRELOAD", os.path.join(plain, "p.mtr")), ("run", dump)):
        rep, got = mtlib.memtrace_leak_kinds(ctx, path)
        if case == "twofaults":
            mtlib.check_exit(checker, rep, label, signal_number=sig)
            if rep["leaks"]["scanned"] is not True:
                print("  %s: a second fault ended the scan (allowed)" % label)
                continue
        checker.check("%s: scanned" % label, rep["leaks"]["scanned"] is True)
        checker.eq("%s: no block left unknown" % label, got["unknown"], (0, 0))
        for kind in KINDS:
            checker.eq("%s: %s (bytes, blocks) == valgrind's" % (label, kind), got[kind],
                       want[kind])
        mtlib.check_exit(checker, rep, label, signal_number=sig)


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(ctx, "fatal_signals." + ctx.args.case, body)
