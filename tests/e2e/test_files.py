#!/usr/bin/env python3
"""Dump files whose name is known only once the program runs (-o with %p):
the existing bad_input.output_* cases cover a fixed -o path, refused before
the program runs. Here the program's pid is made predictable by running
memtrace in a new pid namespace (`unshare --pid --fork --mount-proc`, as
root), where every pid is small, and every expansion DIR/marker.N.mtr for
N = 1..300 is taken beforehand:

    --case pid_exists            each is a regular file: none is overwritten
    --case pid_dangling_symlink  each is a symlink to a path that does not
                                 exist: none is followed (no target created)

The program runs (its pid cannot be known before it exists) and memtrace says
on stderr, in a line starting "memtrace: ", which dump it could not create and
why; nothing is created or changed in the dump directory or elsewhere.
"""

import os
import shutil
import subprocess
import sys

import mtlib

SKIP = 77
TAKEN = 300


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=["pid_exists", "pid_dangling_symlink"])


def snapshot(*dirs):
    files = {}
    for d in dirs:
        for name in os.listdir(d):
            path = os.path.join(d, name)
            st = os.lstat(path)
            target = os.readlink(path) if os.path.islink(path) else None
            files[path] = (st.st_mode, st.st_size, st.st_mtime_ns, target)
    return files


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def body(c):
        unshare = shutil.which("unshare")
        probe = subprocess.run([unshare or "unshare", "--pid", "--fork", "--mount-proc", "true"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT) if unshare else None
        if probe is None or probe.returncode != 0:
            print("SKIP: cannot make a pid namespace here (%s)"
                  % (probe.stdout.decode(errors="replace").strip() if probe else "no unshare"))
            sys.exit(SKIP)
        out = ctx.subdir("out")
        elsewhere = ctx.subdir("elsewhere")
        logs = ctx.subdir("logs")
        marker = os.path.join(ctx.workdir, "marker-ran")
        for n in range(1, TAKEN + 1):
            path = os.path.join(out, "marker.%d.mtr" % n)
            if case == "pid_exists":
                with open(path, "w") as f:
                    f.write("taken %d\n" % n)
            else:
                os.symlink(os.path.join(elsewhere, "target.%d" % n), path)
        before = snapshot(out, elsewhere)
        result = mtlib.memtrace_run(ctx, [ctx.prog("marker"), marker],
                                    os.path.join(out, "%n.%p.mtr"), logdir=logs,
                                    wrapper=[unshare, "--pid", "--fork", "--mount-proc"],
                                    timeout=30)
        # the program succeeded, but its dump could not be written: memtrace
        # says so and exits 1, so a CI job does not pass on a missing dump
        c.eq("memtrace exits 1 (no dump written)", mtlib.exit_code(result.returncode), 1)
        c.check("the program ran", os.path.exists(marker))
        after = snapshot(out, elsewhere)
        c.eq("nothing created or changed in the dump directory or the symlinks' directory",
             sorted(p for p in set(after) | set(before) if after.get(p) != before.get(p)), [])
        if case == "pid_exists":
            bad = [n for n in range(1, TAKEN + 1)
                   if mtlib.read_text(os.path.join(out, "marker.%d.mtr" % n)) != "taken %d\n" % n]
            c.eq("every existing file keeps its content", bad, [])
        else:
            c.eq("no symlink target was created", os.listdir(elsewhere), [])
        lines = [l for l in result.stderr.splitlines() if l.startswith("memtrace: ")]
        named = [l for l in lines if "cannot create the dump %s/marker." % out in l
                 and "exists" in l]
        c.check("a 'memtrace: ' line says which dump could not be created and why", named,
                "stderr: %s" % mtlib.tail(result.stderr))
        c.check("the message has its 'memtrace: ' prefix once",
                not any(l.startswith("memtrace: memtrace: ") for l in lines), repr(lines))

    mtlib.run_test(ctx, "files." + case, body)


if __name__ == "__main__":
    main()
