#!/usr/bin/env python3
"""Nothing visible changes (SPEC section 3: the shim never changes what the
program sees).

    --case allocator    tests/programs/visible.cc prints what a program can
                        observe of its allocator: alignments, malloc_usable_size,
                        the heap layout of a run of small blocks, mallinfo2,
                        errno around successful calls, ENOMEM and EINVAL
                        failures, bad_alloc. Its output must be byte-identical
                        natively, under `memtrace run` and in plain LD_PRELOAD
                        mode (it is first checked to be the same in two native
                        runs, or the comparison would prove nothing).
    --case environment  under `memtrace run`, /usr/bin/env sees exactly its own
                        environment plus LD_PRELOAD=<a link to libmemtrace.so
                        in a directory memtrace made under a short $TMPDIR,
                        gone when memtrace exits>[:previous LD_PRELOAD]; the
                        shim finds its socket beside that link.
    --case passthrough  a shell script under `memtrace run` gets its arguments
                        (spaces, empty, non-ASCII, leading dashes), stdin, cwd,
                        stdout and stderr unchanged, and its exit status (42)
                        is memtrace's.
    --case quiet        with -q memtrace adds nothing to the program's stderr,
                        and still writes the dump.
"""

import os
import shutil
import tempfile

import mtlib


def add_arguments(parser):
    parser.add_argument("--case", required=True,
                        choices=["allocator", "environment", "passthrough", "quiet"])


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def allocator(c):
        prog = ctx.prog("visible")
        outputs = {}
        for tag in ("native1", "native2"):
            d = ctx.subdir(tag)
            r = mtlib.run([prog], cwd=d, stdout_path=os.path.join(d, "out"),
                          stderr_path=os.path.join(d, "err"), timeout=60)
            c.eq("%s: exits 0" % tag, mtlib.exit_code(r.returncode), 0)
            outputs[tag] = r.stdout
        if not c.text_eq("the victim's output is deterministic natively", outputs["native2"],
                         outputs["native1"]):
            return
        c.check("the victim printed its report", outputs["native1"].count("\n") > 50,
                "%d lines" % outputs["native1"].count("\n"))

        d = ctx.subdir("memtrace")
        r = mtlib.memtrace_run(ctx, [prog], os.path.join(d, "%n.%p.mtr"), cwd=d, logdir=d, timeout=60)
        c.eq("memtrace run exits 0", mtlib.exit_code(r.returncode), 0)
        c.text_eq("output under memtrace run == native output", r.stdout, outputs["native1"])
        c.check("memtrace wrote a dump", len(mtlib.dumps_in(d)) == 1)

        d = ctx.subdir("plain")
        dump = os.path.join(d, "visible.mtr")
        env = dict(os.environ, LD_PRELOAD=ctx.shim, MEMTRACE_OUTPUT=dump)
        r = mtlib.run([prog], env=env, cwd=d, stdout_path=os.path.join(d, "out"),
                      stderr_path=os.path.join(d, "err"), timeout=60)
        c.eq("plain LD_PRELOAD run exits 0", mtlib.exit_code(r.returncode), 0)
        c.text_eq("output in plain LD_PRELOAD mode == native output", r.stdout, outputs["native1"])
        mtlib.wait_for_dump(dump)
        c.check("plain LD_PRELOAD mode wrote its dump", os.path.getsize(dump) > 0)

    def environment(c):
        # a short $TMPDIR (memtrace may fall back to /tmp for a long one: the
        # socket path must fit in sun_path)
        tmp = tempfile.mkdtemp(prefix="mt-e2e-")
        try:
            environment_in(c, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def environment_in(c, tmp):
        base = {"PATH": "/usr/bin:/bin", "TMPDIR": tmp, "MT_TEST_VAR": "a value with spaces",
                **mtlib.sanitizer_env()}
        for tag, previous in (("no-preload", None), ("with-preload", ctx.prog("mt_noop"))):
            d = ctx.subdir(tag)
            env = dict(base)
            if previous:
                env["LD_PRELOAD"] = previous
            r = mtlib.memtrace_run(ctx, ["/usr/bin/env"], os.path.join(d, "%n.%p.mtr"), env=env,
                                   cwd=d, logdir=d, timeout=60)
            c.eq("%s: memtrace run exits 0" % tag, mtlib.exit_code(r.returncode), 0)
            seen = mtlib.parse_env(r.stdout)
            added = sorted(set(seen) - set(base))
            c.eq("%s: the variables memtrace adds" % tag, added, ["LD_PRELOAD"])
            c.eq("%s: the program's own variables are unchanged" % tag,
                 {k: seen.get(k) for k in base if k != "LD_PRELOAD"},
                 {k: v for k, v in base.items() if k != "LD_PRELOAD"})
            preload = seen.get("LD_PRELOAD", "")
            first, _, rest = preload.partition(":")
            c.check("%s: LD_PRELOAD starts with an absolute path to libmemtrace.so" % tag,
                    os.path.isabs(first) and first.endswith("/libmemtrace.so"),
                    "LD_PRELOAD=%r" % preload)
            c.eq("%s: the previous LD_PRELOAD follows it" % tag, rest, previous or "")
            c.check("%s: the shim's link is in a directory memtrace made under $TMPDIR" % tag,
                    os.path.dirname(os.path.dirname(first)) == tmp, "LD_PRELOAD=%r" % preload)
            c.eq("%s: nothing left under $TMPDIR after memtrace exits" % tag, os.listdir(tmp), [])

    def passthrough(c):
        d = ctx.subdir("memtrace")
        cwd = ctx.subdir("the cwd")
        stdin = os.path.join(ctx.workdir, "stdin.txt")
        stdin_text = "line one\nline two \u00e9\n"
        with open(stdin, "w", encoding="utf-8") as f:
            f.write(stdin_text)
        script = ('cat; printf "<%s>\\n" "$@"; pwd; echo "to stderr" >&2; exit 42')
        args = ["two words", "", "-o", "--", "caf\u00e9", "%n.%p"]
        argv = ["/bin/sh", "-c", script, "sh"] + args
        r = mtlib.memtrace_run(ctx, argv, os.path.join(d, "%n.%p.mtr"), cwd=cwd, stdin=stdin,
                               logdir=d, timeout=60)
        c.eq("memtrace exits with the program's status 42", mtlib.exit_code(r.returncode), 42)
        want = stdin_text + "".join("<%s>\n" % a for a in args) + cwd + "\n"
        c.eq("stdout: stdin, the arguments and the cwd, unchanged", r.stdout, want)
        own = [line for line in r.stderr.splitlines() if not line.startswith("==memtrace==")]
        c.eq("stderr: the program's line, and otherwise only ==memtrace== lines", own, ["to stderr"])
        dumps = mtlib.dumps_in(d)
        c.check("a dump for the shell", any(os.path.basename(p).startswith("sh.") or
                                            os.path.basename(p).startswith("dash.") for p in dumps),
                "found %s" % [os.path.basename(p) for p in dumps])

    def quiet(c):
        d = ctx.subdir("memtrace")
        r = mtlib.memtrace_run(ctx, [ctx.prog("count_realloc")], os.path.join(d, "%n.%p.mtr"),
                               options=["-q"], cwd=d, logdir=d, timeout=60)
        c.eq("memtrace run -q exits 0", mtlib.exit_code(r.returncode), 0)
        c.eq("nothing on stderr", r.stderr, "")
        c.eq("nothing on stdout", r.stdout, "")
        dumps = mtlib.dumps_in(d)
        if c.check("the dump is still written", len(dumps) == 1, str(dumps)):
            mtlib.check_report_shape(c, mtlib.report(ctx, dumps[0]), "dump")

    body = {"allocator": allocator, "environment": environment, "passthrough": passthrough,
            "quiet": quiet}[case]
    mtlib.run_test(ctx, "transparency." + case, body)


if __name__ == "__main__":
    main()
