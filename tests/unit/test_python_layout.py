#!/usr/bin/env python3
"""preload/python_layout.c against CPython's own headers.

For every CPython whose headers are on the machine (Debian's python3.11-dev
in /usr/include, and each ~/.pyenv/versions/3.N.*/include), compiles
python_offsets.c against them (offsetof() of each field memtrace reads) and
compares with what python_layout_print prints from memtrace's table. Fails
on any difference, and when no headers at all are found.

usage: test_python_layout.py PRINTER SOURCE_DIR WORK_DIR
"""
import glob
import os
import re
import subprocess
import sys


def header_dirs():
    dirs = {}
    for inc in sorted(glob.glob("/usr/include/python3.*")) + sorted(
            glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/include/python3.*"))):
        m = re.search(r"python3\.(\d+)$", inc)
        if m and int(m.group(1)) >= 8 and os.path.exists(os.path.join(inc, "Python.h")):
            dirs.setdefault(inc, int(m.group(1)))
    return dirs


def main():
    printer, source_dir, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    dirs = header_dirs()
    failures = 0
    if not dirs:
        print("FAIL: no CPython headers found (scripts/install-deps.sh installs python3.11-dev)")
        return 1
    for inc, minor in sorted(dirs.items(), key=lambda kv: kv[1]):
        exe = os.path.join(work, "offsets-%d-%d" % (minor, abs(hash(inc)) % 10000))
        build = subprocess.run(["gcc", "-I", inc, "-I", os.path.join(inc, "internal"),
                                os.path.join(source_dir, "python_offsets.c"), "-o", exe],
                               capture_output=True, text=True)
        if build.returncode != 0:
            print("FAIL: 3.%d (%s): offsets program does not build:\n%s"
                  % (minor, inc, build.stderr[-2000:]))
            failures += 1
            continue
        want = sorted(subprocess.run([exe], capture_output=True, text=True).stdout.split("\n"))
        got = sorted(subprocess.run([printer, str(minor)], capture_output=True, text=True).stdout.split("\n"))
        if got == want:
            print("ok    3.%d (%s): %d fields equal" % (minor, inc, len(want) - 2))
        else:
            failures += 1
            print("FAIL: 3.%d (%s): headers say / memtrace says" % (minor, inc))
            for line in sorted(set(want) ^ set(got)):
                print("   %s %s" % ("headers " if line in want else "memtrace", line))
    print("%d CPython header sets, %d failed" % (len(dirs), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
