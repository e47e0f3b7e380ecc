#!/usr/bin/env python3
"""An image exec'd by a traced process that memtrace cannot trace (issue 17
point 5): it must not pass a gate silently.

    --case static_sh   sh -c 'execs_static; true' (dash execs it from a vfork
                       child): run --max-leaked 0 fails with the line "pid P:
                       ..., which it exec'd, was not traced (...)"; with
                       --accept-unchecked it passes, the line still said and
                       the gate's warning too; `memtrace check --max-leaked 0`
                       on the dumps fails as well; the dump of sh says
                       unchecked_reasons "exec_untraced"
    --case static      execs_runner plain execs_static 300 (the traced image
                       itself execs a static program that lives 0.3 s): the
                       line names execs_static and says "statically linked"
    --case failed      execs_runner fail /nonexistent: the exec fails (ENOENT)
                       and the runner leaks its 100 bytes: no line, the gate
                       verdict is the leak's (--max-leaked 100 passes, 0 fails)
    --case dynamic     sh -c 'execs_dynamic; true', execs_runner plain
                       execs_dynamic and execs_runner spawn execs_dynamic: traced, a dump of 4000 bytes definitely
                       lost, no line, --max-leaked 4000 passes
    --case seccomp     execs_runner seccomp execs_dynamic: socket and connect
                       denied, the exec'd image cannot connect
    --case nofile      execs_runner nofile execs_dynamic: RLIMIT_NOFILE 3 (the
                       loader cannot even open libc: status 127)
    --case noenv       execs_runner noenv execs_dynamic: LD_PRELOAD left out
                       of the environment given to execve (the shim does not
                       put it back)
    --case setgid      execs_runner plain COPY: COPY is execs_dynamic, set-gid
                       to a group that is not ours (secure mode: the loader
                       drops LD_PRELOAD); skipped when that cannot be made
    --case spawn       execs_runner spawn execs_static 300: posix_spawn (whose
                       child execs through glibc's internal __execve): the
                       line names execs_static
    --case background  sh -c 'execs_runner plain execs_static 2000 & sleep 0.05':
                       the static image still runs when the program ends; run
                       returns at once all the same (well before its 2 s),
                       saying it; JUnit (run --junit) and SARIF (check --sarif)
                       say it too
"""

import glob
import grp
import json
import os
import re
import shutil
import stat
import sys
import time

import mtlib

LINE = re.compile(r"memtrace: pid (\d+): (.*), which it exec'd, was not traced \((.*)\): "
                  r"its allocations are unchecked")


def add_arguments(parser):
    parser.add_argument("--case", required=True,
                        choices=["static_sh", "static", "failed", "dynamic", "seccomp", "nofile",
                                 "noenv", "setgid", "background", "spawn"])


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def run(c, tag, argv, options):
        out = ctx.subdir(tag)
        result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), options=options,
                                    cwd=out, logdir=ctx.workdir, tag=tag, timeout=60)
        print("  %s: rc %d; stderr:\n    %s" % (tag, result.returncode,
                                                "\n    ".join(result.stderr.splitlines())))
        return result, sorted(mtlib.dumps_in(out))

    def reasons(dump):
        rep = mtlib.report(ctx, dump)
        return [u["reason"] for u in rep.get("unchecked_reasons", [])], rep

    def untraced(c, argv, cause, name=None, status=0, gone_ok=False):
        """The exec'd image is not traced: the gates fail, saying so, unless
        --accept-unchecked; memtrace check fails too. gone_ok: the image ends
        at once (the loader fails), so the consumer may find it reaped before
        it reads /proc/PID/exe; the line then says 'the program' with every
        cause it could have (seen in every ASan-build run)."""
        result, dumps = run(c, "gate", argv, ["--max-leaked", "0"])
        lines = LINE.findall(result.stderr)
        c.eq("one line says the exec'd image was not traced", len(lines), 1)
        if lines and gone_ok and lines[0][1] == "the program":
            c.eq("the image was gone: the line gives every cause", lines[0][2],
                 "statically linked, set-uid, or it could not reach memtrace")
        elif lines:
            c.check("the line gives the cause (%s)" % cause, cause in lines[0][2], lines[0][2])
            if name:
                c.check("the line names %s" % name, os.path.basename(lines[0][1]) == name,
                        lines[0][1])
        c.eq("run --max-leaked 0 fails (99)", mtlib.exit_code(result.returncode), 99)
        c.check("the gate says what it could not check",
                "the program it exec'd was not traced" in result.stderr)
        marked = [d for d in dumps if "exec_untraced" in reasons(d)[0]]
        c.eq("one dump says exec_untraced", len(marked), 1)
        check = mtlib.run([ctx.memtrace, "check", "--max-leaked", "0"] + dumps,
                          stdout_path=os.path.join(ctx.workdir, "check.out"),
                          stderr_path=os.path.join(ctx.workdir, "check.err"))
        c.eq("memtrace check --max-leaked 0 fails", check.returncode, 1)
        c.check("check says the exec'd program was not traced",
                "the program it exec'd was not traced" in check.stderr, mtlib.tail(check.stderr))
        ok, _ = run(c, "accept", argv, ["--max-leaked", "0", "--accept-unchecked"])
        c.eq("--accept-unchecked: one line still", len(LINE.findall(ok.stderr)), 1)
        c.eq("--accept-unchecked: run passes (the program's status, %d)" % status,
             ok.returncode, status)
        c.check("--accept-unchecked: the gate warns",
                "the program it exec'd was not traced" in ok.stderr)

    def body(c):
        static = ctx.prog("execs_static")
        dynamic = ctx.prog("execs_dynamic")
        runner = ctx.prog("execs_runner")
        if case == "static_sh":
            untraced(c, ["sh", "-c", static + "; true"], "statically linked")
        elif case == "static":
            untraced(c, [runner, "plain", static, "300"], "statically linked", "execs_static")
        elif case in ("seccomp", "nofile", "noenv"):
            # under RLIMIT_NOFILE 3 the loader cannot open libc either: the
            # image ends with status 127, untraced (with 4 it connects, and
            # finds no ring: the rings' subject, issue 17 point 6)
            untraced(c, [runner, case, dynamic, "300"], "it never reached memtrace",
                     "execs_dynamic", 127 if case == "nofile" else 0, gone_ok=case == "nofile")
        elif case == "setgid":
            others = [g for g in grp.getgrall() if g.gr_gid != os.getegid()]
            if not others:
                print("SKIP: no group other than ours to make a set-gid copy")
                c.check("skipped: no other group", True)
                return
            copy = os.path.join(ctx.workdir, "execs_setgid")
            shutil.copy(dynamic, copy)
            os.chown(copy, -1, others[0].gr_gid)
            os.chmod(copy, 0o2755)
            if os.statvfs(ctx.workdir).f_flag & os.ST_NOSUID:
                print("SKIP: %s is on a nosuid file system" % ctx.workdir)
                c.check("skipped: nosuid", True)
                return
            c.check("the copy is set-gid", bool(os.stat(copy).st_mode & stat.S_ISGID))
            untraced(c, [runner, "plain", copy, "300"], "set-uid or set-gid", "execs_setgid")
        elif case == "spawn":
            untraced(c, [runner, "spawn", static, "300"], "statically linked", "execs_static")
        elif case == "background":
            out = ctx.subdir("bg")
            junit = os.path.join(ctx.workdir, "run.junit.xml")
            began = time.monotonic()
            result = mtlib.memtrace_run(
                ctx, ["sh", "-c", "%s plain %s 2000 & sleep 0.05" % (runner, static)],
                os.path.join(out, "%n.%p.mtr"), options=["--max-leaked", "0", "--junit", junit],
                cwd=out, logdir=ctx.workdir, timeout=60)
            took = time.monotonic() - began
            print("  rc %d after %.2f s; stderr:\n    %s"
                  % (result.returncode, took, "\n    ".join(result.stderr.splitlines())))
            lines = LINE.findall(result.stderr)
            c.eq("one line says the exec'd image was not traced", len(lines), 1)
            c.check("it names execs_static, statically linked",
                    bool(lines) and os.path.basename(lines[0][1]) == "execs_static" and
                    lines[0][2] == "statically linked", repr(lines))
            c.check("run returns before the static image's 2 s", took < 1.8, "%.2f s" % took)
            c.eq("run --max-leaked 0 fails (99)", mtlib.exit_code(result.returncode), 99)
            c.check("JUnit says it", "was not traced (statically linked)" in mtlib.read_text(junit))
            sarif = os.path.join(ctx.workdir, "check.sarif")
            check = mtlib.run([ctx.memtrace, "check", "--max-leaked", "0", "--sarif", sarif] +
                              sorted(mtlib.dumps_in(out)),
                              stdout_path=os.path.join(ctx.workdir, "check.out"),
                              stderr_path=os.path.join(ctx.workdir, "check.err"))
            c.eq("check fails", check.returncode, 1)
            c.check("SARIF says it", "was not traced (statically linked)" in mtlib.read_text(sarif))
            time.sleep(2.2) # the static image ends before the work directory goes
        elif case == "failed":
            for gate, rc in (("100", 0), ("0", 99)):
                result, dumps = run(c, "gate" + gate, [runner, "fail", "/nonexistent/prog"],
                                    ["--max-leaked", gate])
                c.eq("--max-leaked %s: no line" % gate, LINE.findall(result.stderr), [])
                c.eq("--max-leaked %s: rc %d (the leak's verdict)" % (gate, rc),
                     result.returncode, rc)
                c.eq("--max-leaked %s: one dump, exited with status 0" % gate, len(dumps), 1)
                for d in dumps:
                    why, rep = reasons(d)
                    c.eq("--max-leaked %s: nothing unchecked" % gate, why, [])
                    c.eq("--max-leaked %s: 100 bytes in use" % gate,
                         mtlib.totals(rep)["in_use_bytes"], 100)
        elif case == "dynamic":
            for tag, argv in (("sh", ["sh", "-c", dynamic + "; true"]),
                              ("runner", [runner, "plain", dynamic]),
                              ("spawn", [runner, "spawn", dynamic])):
                result, dumps = run(c, tag, argv, ["--max-leaked", "4000"])
                c.eq("%s: no line" % tag, LINE.findall(result.stderr), [])
                c.eq("%s: --max-leaked 4000 passes" % tag, result.returncode, 0)
                leaks = [d for d in dumps if os.path.basename(d).startswith("execs_dynamic.")]
                c.eq("%s: the exec'd image has its dump" % tag, len(leaks), 1)
                for d in dumps:
                    why, rep = reasons(d)
                    c.eq("%s: %s: nothing unchecked" % (tag, os.path.basename(d)), why, [])
                for d in leaks:
                    _, kinds = mtlib.memtrace_leak_kinds(ctx, d)
                    print("  %s: kinds %r" % (tag, kinds))
                    c.eq("%s: 4000 bytes definitely lost" % tag, kinds["definite"], (4000, 1))

    mtlib.run_test(ctx, "execs." + case, body)


if __name__ == "__main__":
    main()
