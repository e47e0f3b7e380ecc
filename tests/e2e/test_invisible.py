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
    --case dup2_leak    a program that dup2s its output file over every
                        number from 3 to 63 and the 16 under its soft
                        RLIMIT_NOFILE (where memtrace keeps its socket and
                        libunwind's pipe) and then
                        allocates and leaks: memtrace writes nothing into the
                        file (it checks that a number is still its own), and
                        the leak is reported as in close_leak.
    --case notices      a program that defines its own malloc (own_malloc_O0,
                        so the shim says it hooks it) run as `sh -c 'prog
                        2>inner.err'`: inner.err stays empty under memtrace
                        run; the notice is on memtrace's stderr, not with -q,
                        and in the --log-file file (then not on stderr). In
                        plain mode the program's stderr stays empty and the
                        notice is in the file MEMTRACE_LOG names.
    --case environment  /usr/bin/env, /proc/self/environ and python3's
                        os.environ (no PYTHONMALLOC: the shim answers
                        CPython's getenv) under memtrace run
                        (with --hook-alloc and MEMTRACE_UNWIND_VERIFY given to
                        memtrace, settings that once travelled in the
                        environment) equal the bare run's but for LD_PRELOAD;
                        in plain mode they equal the bare run's exactly; the
                        hook is still installed.
    --case real_env     perl copying its environment and git in a fresh
                        repository, under memtrace run and under valgrind with
                        environments built by mtlib.EqualEnvironments: memtrace
                        adds no variable besides LD_PRELOAD (so no filler is
                        needed on valgrind's side) and the totals are
                        valgrind's exactly.
"""

import os
import shutil
import tempfile

import mtlib


def add_arguments(parser):
    parser.add_argument("--case", required=True,
                        choices=["fds_daemon", "first_open", "close_leak", "dup2_leak", "notices",
                                 "environment", "real_env"])


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

    def dup2_leak(c):
        close_leak(c, "dup2-leak")

    def close_leak(c, mode="close-leak"):
        prog = ctx.prog("fd_daemon")
        d = ctx.subdir("memtrace")
        n = 6
        argv = [prog, mode, str(n)] + ([d] if mode == "dup2-leak" else [])
        r = mtlib.memtrace_run(ctx, argv, os.path.join(d, "%n.%p.mtr"), cwd=d, logdir=d,
                               timeout=60)
        if mode == "dup2-leak":
            c.eq("nothing of memtrace's is written into the program's file",
                 os.path.getsize(os.path.join(d, "out")), 0)
        c.eq("memtrace run exits 0", mtlib.exit_code(r.returncode), 0)
        c.eq("the victim ran to its end", r.stdout, "leaked %d\n" % (2 * n))
        dumps = mtlib.dumps_in(d)
        if not c.check("one dump", len(dumps) == 1, str(dumps)):
            return
        rep = mtlib.report(ctx, dumps[0], summary=False)
        mtlib.check_exit(c, rep, "close_leak", status=0)
        totals = mtlib.totals(rep)
        c.check("every allocation after the descriptors changed is in the dump",
                totals.get("allocations", 0) >= 2 * n, str(totals))
        leaks = rep.get("leaks")
        if not c.check("the leak check ran at exit", leaks is not None and
                       "by_kind" in leaks, str(sorted(rep))):
            return
        by_kind = leaks["by_kind"]
        c.eq("the blocks lost after the descriptors changed are reported lost",
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
        python = ["/usr/bin/python3", "-c", "import os, sys; sys.stdout.write(''.join("
                  "'%s=%s\\0' % kv for kv in os.environ.items()))"]
        for what, argv in (("env", ["/usr/bin/env", "-0"]),
                           ("environ", ["/bin/cat", "/proc/self/environ"]),
                           ("python", python)):
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
            unpreloaded = {k: v for k, v in plain_env.items() if k != "LD_PRELOAD"}
            want = bare(argv, d, env=unpreloaded, tag="unpreloaded").stdout.split("\0")
            r = bare(argv, d, env=plain_env, tag="plain")
            c.eq("%s: plain mode: the environment is the one the user gave" % what,
                 sorted(r.stdout.split("\0")), sorted(want + ["LD_PRELOAD=" + ctx.shim]))

    def real_env(c):
        mtlib.need_valgrind()
        home = ctx.subdir("home")
        base = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": ctx.subdir("tmp"),
                "LANG": "C.UTF-8", "PERL_HASH_SEED": "0", "PERL_PERTURB_KEYS": "0",
                "GIT_CONFIG_NOSYSTEM": "1"}
        envs = mtlib.EqualEnvironments(ctx, base, ctx.subdir("env"))
        c.eq("memtrace adds no variable besides LD_PRELOAD",
             sorted(set(envs.valgrind_env) - set(base) - {"LD_PRELOAD"} -
                    set(mtlib.sanitizer_env())), [])
        envs.verify(c, "real_env")
        perl = ["/usr/bin/perl", "-e",
                'my %copy = %ENV; my @all = map { "$_=$copy{$_}" } sort keys %copy; '
                'print scalar(@all), "\\n";']
        for name, argv, setup in (("perl", perl, None),
                                  ("git", ["/usr/bin/git", "init", "-q", "repo"], None)):
            if not os.path.exists(argv[0]):
                raise mtlib.TestError("%s is not installed" % argv[0])
            mt_dir = ctx.subdir(name, "run-m")
            vg_dir = ctx.subdir(name, "run-v")
            dumps_dir = ctx.subdir(name, "dumps")
            r = mtlib.memtrace_run(ctx, argv, os.path.join(dumps_dir, "%n.%p.mtr"),
                                   env=envs.memtrace_env, cwd=mt_dir, logdir=mt_dir, timeout=90)
            c.eq("%s: memtrace run exits 0" % name, mtlib.exit_code(r.returncode), 0)
            vg = mtlib.valgrind_run(argv, logdir=vg_dir, env=envs.valgrind_env, cwd=vg_dir,
                                    timeout=180)
            c.eq("%s: valgrind exits 0" % name, mtlib.exit_code(vg.returncode), 0)
            dumps = mtlib.dumps_in(dumps_dir)
            if not c.check("%s: one dump" % name, len(dumps) == 1, str(dumps)):
                continue
            got = mtlib.totals(mtlib.report(ctx, dumps[0]))
            want = mtlib.valgrind_figures(vg.log)
            print("  %s memtrace: %s" % (name, mtlib.fmt(got)))
            print("  %s valgrind: %s" % (name, mtlib.fmt(want)))
            c.figures("%s: memtrace == valgrind" % name, got, want)

    cases = {"real_env": real_env, "fds_daemon": fds_daemon, "first_open": first_open, "close_leak": close_leak,
             "dup2_leak": dup2_leak,
             "notices": notices, "environment": environment}
    mtlib.run_test(ctx, "invisible." + case, cases[case])


if __name__ == "__main__":
    main()
