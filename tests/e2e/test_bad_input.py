#!/usr/bin/env python3
"""Bad input to `memtrace run`: exactly one line on stderr, starting with
"memtrace: ", a non-zero exit, the program not run (tests/programs/marker.c
creates a file when it runs), and no new file anywhere the test looks (the
output directory, memtrace's cwd).

    --case missing                  a program that does not exist (by path,
                                    and by a name not found in PATH)
    --case not_executable           a file without any execute bit
    --case static                   a static binary (LD_PRELOAD cannot work)
    --case setuid                   a setuid copy of a victim
    --case no_output_dir            -o in a directory that does not exist
    --case output_exists            -o names an existing file: it must not be
                                    overwritten
    --case output_symlink           -o names a symlink to an existing file:
                                    neither followed nor replaced
    --case output_dangling_symlink  -o names a symlink to a path that does not
                                    exist: the target must not be created
"""

import os
import shutil
import stat
import struct

import mtlib


def add_arguments(parser):
    parser.add_argument("--case", required=True)


def snapshot(*dirs):
    files = {}
    for d in dirs:
        for root, subdirs, names in os.walk(d):
            for name in names + subdirs:
                path = os.path.join(root, name)
                st = os.lstat(path)
                files[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return files


def elf_interpreter(path):
    """The PT_INTERP of a 64-bit little-endian ELF file, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise mtlib.TestError("%s is not a 64-bit little-endian ELF file" % path)
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            offset, = struct.unpack_from("<Q", data, phoff + i * phentsize + 8)
            size, = struct.unpack_from("<Q", data, phoff + i * phentsize + 32)
            return data[offset:offset + size].rstrip(b"\0").decode()
    return None


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def expect_refusal(c, label, argv, out_pattern, marker, watch, env=None):
        """Runs memtrace on argv and checks the refusal."""
        before = snapshot(*watch)
        logs = ctx.subdir("logs-" + label.replace(" ", "-"))
        cwd = ctx.subdir("cwd-" + label.replace(" ", "-"))
        result = mtlib.memtrace_run(ctx, argv, out_pattern, cwd=cwd, env=env, logdir=logs, timeout=30)
        lines = result.stderr.splitlines()
        c.check("%s: memtrace exits non-zero" % label, result.returncode != 0,
                "exit %d" % mtlib.exit_code(result.returncode))
        c.check("%s: exactly one line on stderr, starting with 'memtrace: '" % label,
                len(lines) == 1 and lines[0].startswith("memtrace: "), "stderr: %r" % result.stderr)
        c.eq("%s: nothing on stdout" % label, result.stdout, "")
        c.check("%s: the program did not run" % label, not os.path.exists(marker),
                "%s exists" % marker)
        after = snapshot(*watch)
        c.eq("%s: no file created or changed" % label,
             sorted(p for p in set(after) | set(before) if after.get(p) != before.get(p)), [])
        c.eq("%s: memtrace's cwd is still empty" % label, os.listdir(cwd), [])
        if lines:
            print("  message: %s" % lines[0])

    def body(c):
        work = ctx.workdir
        out = ctx.subdir("out")
        marker = os.path.join(work, "marker-ran")
        pattern = os.path.join(out, "%n.%p.mtr")
        marker_prog = ctx.prog("marker")

        if case == "missing":
            expect_refusal(c, "missing path", [os.path.join(work, "no-such-program"), marker],
                           pattern, marker, [out])
            expect_refusal(c, "missing name", ["mt-no-such-program-in-path", marker], pattern,
                           marker, [out], env=dict(os.environ, PATH="/usr/bin:/bin"))
        elif case == "not_executable":
            bindir = ctx.subdir("bin")
            copy = os.path.join(bindir, "marker")
            shutil.copyfile(marker_prog, copy)
            os.chmod(copy, 0o644)
            expect_refusal(c, "mode 0644", [copy, marker], pattern, marker, [out, bindir])
        elif case == "static":
            static = ctx.prog("marker_static")
            c.check("the victim really is static (an ELF file without PT_INTERP)",
                    elf_interpreter(static) is None and elf_interpreter(marker_prog) is not None)
            expect_refusal(c, "static binary", [static, marker], pattern, marker, [out])
        elif case == "setuid":
            bindir = ctx.subdir("bin")
            copy = os.path.join(bindir, "marker")
            shutil.copyfile(marker_prog, copy)
            os.chmod(copy, 0o755 | stat.S_ISUID)
            c.check("the copy is setuid", os.stat(copy).st_mode & stat.S_ISUID != 0)
            expect_refusal(c, "setuid binary", [copy, marker], pattern, marker, [out, bindir])
            os.chmod(copy, 0o755 | stat.S_ISGID)
            expect_refusal(c, "setgid binary", [copy, marker], pattern, marker, [out, bindir])
        elif case == "no_output_dir":
            missing = os.path.join(work, "no-such-dir")
            expect_refusal(c, "output dir missing", [marker_prog, marker],
                           os.path.join(missing, "%n.%p.mtr"), marker, [out])
            c.check("the output directory was not created", not os.path.exists(missing))
        elif case == "output_exists":
            target = os.path.join(out, "taken.mtr")
            with open(target, "w") as f:
                f.write("not a dump; must stay\n")
            expect_refusal(c, "output exists", [marker_prog, marker], target, marker, [out])
            c.eq("the existing file is untouched", mtlib.read_text(target), "not a dump; must stay\n")
        elif case == "output_symlink":
            elsewhere = ctx.subdir("elsewhere")
            target = os.path.join(elsewhere, "victim.txt")
            with open(target, "w") as f:
                f.write("must stay\n")
            link = os.path.join(out, "link.mtr")
            os.symlink(target, link)
            expect_refusal(c, "output is a symlink", [marker_prog, marker], link, marker,
                           [out, elsewhere])
            c.eq("the symlink's target is untouched", mtlib.read_text(target), "must stay\n")
            c.check("the symlink is still a symlink to it", os.path.islink(link)
                    and os.readlink(link) == target)
        elif case == "output_dangling_symlink":
            elsewhere = ctx.subdir("elsewhere")
            target = os.path.join(elsewhere, "created.mtr")
            link = os.path.join(out, "link.mtr")
            os.symlink(target, link)
            expect_refusal(c, "output is a dangling symlink", [marker_prog, marker], link, marker,
                           [out, elsewhere])
            c.check("the symlink's target was not created", not os.path.lexists(target))
        else:
            raise mtlib.TestError("unknown case %s" % case)

    mtlib.run_test(ctx, "bad_input." + case, body)


if __name__ == "__main__":
    main()
