#!/usr/bin/env python3
"""The program sees nothing of memtrace (issue 18, points 2 to 4; SPEC
section 3): no descriptor of memtrace's is one it can get or clobber, no
message of memtrace's goes to its stdout or stderr, and its environment
differs from the bare run's only by LD_PRELOAD.

    --case fds_daemon   tests/programs/fd_daemon.c closes every descriptor
                        above 2, opens three files (3, 4, 5), allocates in a
                        signal handler (stacks unwound through a signal frame,
                        where libunwind validates addresses through a pipe of
                        its own), then copies its input file to its output:
                        under memtrace run it reads the same 27 bytes as bare
                        and its output file is the same.
    --case first_open   the program's first open() returns 3 as bare, under
                        memtrace run and in plain LD_PRELOAD mode.
    --case close_leak   a program that closes all its descriptors
                        (close_range) and then allocates and leaks: every
                        event is in the dump, the leak check ran, and the
                        lost blocks are reported as lost.
    --case notices      a program that defines its own malloc (own_malloc_O0,
                        so the shim says it hooks it) run as `sh -c 'prog
                        2>inner.err'`: inner.err stays empty under memtrace
                        run; the notice is on memtrace's stderr, not with -q,
                        and in the --log-file file (then not on stderr). In
                        plain mode the program's stderr stays empty and the
                        notice is in the file MEMTRACE_LOG names.
    --case environment  /usr/bin/env and /proc/self/environ under memtrace run
                        (with --hook-alloc and MEMTRACE_UNWIND_VERIFY given to
                        memtrace, settings that once travelled in the
                        environment) equal the bare run's but for LD_PRELOAD;
                        in plain mode they equal the bare run's exactly; the
                        hook is still installed.
"""

import os
import shutil
import tempfile

import mtlib


def add_arguments(parser):
    parser.add_argument("--case", required=True,
                        choices=["fds_daemon", "first_open", "close_leak", "notices",
                                 "environment"])


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def bare(argv, d, env=None, tag="bare"):
        return mtlib.run(argv, env=env, cwd=d, stdout_path=os.path.join(d, tag + ".out"),
                         stderr_path=os.path.join(d, tag + ".err"), timeout=60)

    def fds_daemon(c):
        prog = ctx.prog("fd_daemon")
        outputs = {}
        for tag in ("bare", "memtrace"):
            d = ctx.subdir(tag)
            with open(os.path.join(d, "in"), "w") as f:
                f.write("abcdefghijklmnopqrstuvwxyz\n")
            argv = [prog, "daemon", d]
            if tag == "bare":
                r = bare(argv, d)
            else:
                r = mtlib.memtrace_run(ctx, argv, os.path.join(d, "%n.%p.mtr"), options=["-q"],
                                       cwd=d, logdir=d, timeout=60)
            c.eq("%s: exits 0" % tag, mtlib.exit_code(r.returncode), 0)
            with open(os.path.join(d, "out"), "rb") as f:
                outputs[tag] = (r.stdout, f.read())
        c.eq("bare: the victim reads its 27 bytes at fds 3 4 5", outputs["bare"][0],
             "fds 3 4 5 read 27\n")
        c.eq("memtrace run: the same descriptors and bytes read as bare", outputs["memtrace"][0],
             outputs["bare"][0])
        c.eq("memtrace run: the output file is the same as bare", outputs["memtrace"][1],
             outputs["bare"][1])

    def first_open(c):
        prog = ctx.prog("fd_daemon")
        d = ctx.subdir("bare")
        want = bare([prog, "first-open"], d).stdout
        c.eq("bare: the first open() returns 3", want, "first open 3\n")
        d = ctx.subdir("memtrace")
        r = mtlib.memtrace_run(ctx, [prog, "first-open"], os.path.join(d, "%n.%p.mtr"),
                               options=["-q"], cwd=d, logdir=d, timeout=60)
        c.eq("memtrace run: the first open() returns 3", r.stdout, want)
        c.eq("memtrace run: one dump", len(mtlib.dumps_in(d)), 1)
        d = ctx.subdir("plain")
        dump = os.path.join(d, "plain.mtr")
        r = bare([prog, "first-open"], d, env=dict(os.environ, LD_PRELOAD=ctx.shim,
                                                   MEMTRACE_OUTPUT=dump), tag="plain")
        c.eq("plain LD_PRELOAD mode: the first open() returns 3", r.stdout, want)
        mtlib.wait_for_dump(dump)
        c.check("plain LD_PRELOAD mode: the dump is written", os.path.getsize(dump) > 0)

    def close_leak(c):
        prog = ctx.prog("fd_daemon")
        d = ctx.subdir("memtrace")
        n = 6
        r = mtlib.memtrace_run(ctx, [prog, "close-leak", str(n)], os.path.join(d, "%n.%p.mtr"),
                               cwd=d, logdir=d, timeout=60)
        c.eq("memtrace run exits 0", mtlib.exit_code(r.returncode), 0)
        c.eq("the victim ran to its end", r.stdout, "leaked %d\n" % (2 * n))
        dumps = mtlib.dumps_in(d)
        if not c.check("one dump", len(dumps) == 1, str(dumps)):
            return
        rep = mtlib.report(ctx, dumps[0], summary=False)
        mtlib.check_exit(c, rep, "close_leak", status=0)
        totals = mtlib.totals(rep)
        c.check("every allocation after close_range is in the dump",
                totals.get("allocations", 0) >= 2 * n, str(totals))
        leaks = rep.get("leaks")
        if not c.check("the leak check ran at exit", leaks is not None and
                       "by_kind" in leaks, str(sorted(rep))):
            return
        by_kind = leaks["by_kind"]
        c.eq("the blocks lost after close_range are reported lost",
             (by_kind["definite"]["bytes"], by_kind["definite"]["blocks"]),
             ((2 * n - 2) * 4242, 2 * n - 2))
        c.eq("the two kept are reachable",
             (by_kind["reachable"]["bytes"], by_kind["reachable"]["blocks"]), (2 * 4242, 2))

    NOTICE = "memtrace: the program defines its own"

    def notices(c):
        prog = ctx.prog("own_malloc_O0")
        for tag, options in (("default", []), ("quiet", ["-q"]), ("log-file", ["--log-file", None])):
            d = ctx.subdir(tag)
            inner = os.path.join(d, "inner.err")
            log = os.path.join(d, "memtrace.log")
            opts = [log if o is None else o for o in options]
            argv = ["/bin/sh", "-c", '"$0" 2>"$1"', prog, inner]
            r = mtlib.memtrace_run(ctx, argv, os.path.join(d, "%n.%p.mtr"), options=opts,
                                   cwd=d, logdir=d, timeout=60)
            c.eq("%s: memtrace run exits 0" % tag, mtlib.exit_code(r.returncode), 0)
            c.eq("%s: the program's own stderr file stays empty" % tag, mtlib.read_text(inner), "")
            said = [line for line in r.stderr.splitlines() if line.startswith(NOTICE)]
            if tag == "default":
                c.eq("default: the notice is on memtrace's stderr, once", len(said), 1)
            elif tag == "quiet":
                c.eq("-q: no notice on memtrace's stderr", r.stderr, "")
            else:
                c.eq("--log-file: nothing on memtrace's stderr", r.stderr, "")
                logged = mtlib.read_text(log)
                c.eq("--log-file: the notice is in the file, once",
                     len([x for x in logged.splitlines() if x.startswith(NOTICE)]), 1)
                c.check("--log-file: the summary is in the file", "==memtrace==" in logged,
                        mtlib.tail(logged))
        for tag, with_log in (("plain", False), ("plain-log", True)):
            d = ctx.subdir(tag)
            dump = os.path.join(d, "own.mtr")
            log = os.path.join(d, "memtrace.log")
            env = dict(os.environ, LD_PRELOAD=ctx.shim, MEMTRACE_OUTPUT=dump)
            if with_log:
                env["MEMTRACE_LOG"] = log
            r = bare([prog], d, env=env, tag="prog")
            c.eq("%s: the program exits 0" % tag, mtlib.exit_code(r.returncode), 0)
            mtlib.wait_for_dump(dump)
            c.eq("%s: the program's stderr stays empty" % tag, r.stderr, "")
            if with_log:
                logged = mtlib.read_text(log)
                c.eq("%s: the notice is in MEMTRACE_LOG, once" % tag,
                     len([x for x in logged.splitlines() if x.startswith(NOTICE)]), 1)
            else:
                c.eq("%s: no log file without MEMTRACE_LOG" % tag, os.path.exists(log), False)

    def environment(c):
        tmp = tempfile.mkdtemp(prefix="mt-e2e-")
        try:
            environment_in(c, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def environment_in(c, tmp):
        base = {"PATH": "/usr/bin:/bin", "TMPDIR": tmp, "MT_TEST_VAR": "x y",
                **mtlib.sanitizer_env()}
        memtrace_env = dict(base, MEMTRACE_UNWIND_VERIFY="1")
        hook = ["--hook-alloc", "no_such_function_anywhere:0"]
        for what, argv in (("env", ["/usr/bin/env", "-0"]),
                           ("environ", ["/bin/cat", "/proc/self/environ"])):
            d = ctx.subdir(what)
            want = bare(argv, d, env=memtrace_env).stdout.split("\0")
            r = mtlib.memtrace_run(ctx, argv, os.path.join(d, "%n.%p.mtr"), options=hook,
                                   env=memtrace_env, cwd=d, logdir=d, timeout=60)
            c.eq("%s: memtrace run exits 0" % what, mtlib.exit_code(r.returncode), 0)
            got = r.stdout.split("\0")
            c.eq("%s: the environment under memtrace run, but for LD_PRELOAD, is the bare one"
                 % what, [v for v in got if not v.startswith("LD_PRELOAD=")], want)
            preload = [v for v in got if v.startswith("LD_PRELOAD=")]
            c.eq("%s: LD_PRELOAD is added, once" % what, len(preload), 1)
            c.check("%s: the hook given by option still reached the shim" % what,
                    "cannot hook no_such_function_anywhere" in r.stderr, mtlib.tail(r.stderr))
            c.eq("%s: nothing left under $TMPDIR after memtrace exits" % what, os.listdir(tmp),
                 [])
            d = ctx.subdir(what + "-plain")
            plain_env = dict(base, LD_PRELOAD=ctx.shim,
                             MEMTRACE_OUTPUT=os.path.join(d, "plain.%p.mtr"))
            r = bare(argv, d, env=plain_env, tag="plain")
            c.eq("%s: plain mode: the environment is the one the user gave" % what,
                 r.stdout.split("\0"), ["%s=%s" % kv for kv in plain_env.items()] + [""])

    cases = {"fds_daemon": fds_daemon, "first_open": first_open, "close_leak": close_leak,
             "notices": notices, "environment": environment}
    mtlib.run_test(ctx, "invisible." + case, cases[case])


if __name__ == "__main__":
    main()
