#!/usr/bin/env python3
"""The program sees nothing of memtrace (issue 18, SPEC section 3): a program
run bare and the same program under `memtrace run -q` must give the same
stdout, stderr, exit status and files, see the same file descriptors (its
first open() returns the same number; /proc/self/fd lists the same fds, of
the same kinds) and the same environment, but for LD_PRELOAD.

    --case probe_report   tests/programs/transp_probe report: fds, first
                          open(), /proc/self/environ, a file, a stderr line
    --case probe_daemon   transp_probe daemon: closes every fd from 3 up,
                          opens three files (3, 4, 5 bare), allocates in a
                          signal handler, copies in.txt to out.txt
    --case probe_closeall the same, closing every fd from 3 up with
                          close_range(3, ~0U): the shim's own too
    --case sh             /bin/sh: its fds and environment, as ls and env
                          see them, a file written through fd 3
    --case python3        python3: os.listdir('/proc/self/fd'), the number
                          open() returns, os.environ, a file, stderr
    --case perl           perl: the same
    --case gxx            sh -c 'g++ -c t.cpp 2>inner.err': the object file
                          and the compiler's stderr, which must stay empty
    --case git            git init, add, commit (fixed dates), rev-parse,
                          status: the commit id and what git wrote
    --case sqlite3        sqlite3 writing a database file: the file's bytes

Each case runs twice in directories of the same path length (bare/, memt/),
filled the same way, with one small environment; stdout and stderr go to
files. Run directories' paths are replaced by RUN in what is compared.

Comparisons that fail today because of a defect another engineer is fixing
are listed in EXPECTED_TO_FAIL with their issue point: they print XFAIL and
do not fail the test; once the fix lands they print XPASS (remove the entry).
Nothing else is tolerated.
"""

import os
import shutil
import subprocess
import tempfile

import mtlib

FIXED_DATE = "2020-09-13T12:26:40+00:00"

# (case, comparison) -> (issue point, what is wrong today)
# Comparisons that fail because of a known defect being fixed:
# (case, comparison) -> (issue point, what is wrong). Empty now: every entry
# it had was fixed on main and removed (each failed before its fix, see the
# history of this file): the first open() returned 6 (18.2: the shim's
# socket and libunwind's pipe at fds 3-5), transp_probe daemon's files
# clobbered by libunwind's pipe (18.2), the shim's notice in g++'s inner
# stderr (18.3), MEMTRACE_SOCKET in the environment (18.4), PYTHONMALLOC=
# malloc in a Python program's environment (18.4, found by this test).
EXPECTED_TO_FAIL = {
}

# A fact that no fix can hide: the shim's socket (its line to the consumer),
# the connection it keeps ready for its next fork child (issue 17.6: a child
# under seccomp or a descriptor limit is still traced; 0abdffc) and
# libunwind's memory-validation pipe (two ends) are open in the traced
# process, so /proc/self/fd lists them: at most 4. They sit at the top of the fd range, where the
# program's open(), dup() and pipe() never reach (its first open() is 3, as
# bare: checked apart). The fd listing is compared below SHIM_FD_FLOOR, and
# above it only fds of these kinds may be added.
SHIM_FD_FLOOR = 1000
SHIM_FD_KINDS = ("socket", "pipe")
SHIM_FD_COUNT = 4

SH_SCRIPT = """\
for f in /proc/$$/fd/*; do
  t=$(readlink "$f")
  case "$t" in pipe:*) t=pipe;; socket:*) t=socket;; /dev/*) ;; anon_inode:*) ;; *) t=file;; esac
  echo "fd ${f##*/}: $t"
done
env | sort | sed 's/^/env /'
exec 3>fd3.txt
echo "through fd 3" >&3
echo "sh: a line on stderr" >&2
"""

PYTHON_SCRIPT = """\
import os, sys
f = open("/dev/null")
print("first open:", f.fileno())
f.close()
for fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
    try:
        t = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        continue  # the listing's own fd, closed by now
    kind = "pipe" if t.startswith("pipe:") else "socket" if t.startswith("socket:") else \\
        t if t.startswith(("/dev/", "anon_inode:")) else "file"
    print("fd %d: %s" % (fd, kind))
for k in sorted(os.environ):
    print("env %s=%s" % (k, os.environ[k]))
with open("written.txt", "w") as w:
    w.write("written by python3\\n" * 10)
print("python3: a line on stderr", file=sys.stderr)
"""

PERL_SCRIPT = r"""
open(my $f, '<', '/dev/null') or die;
print "first open: ", fileno($f), "\n";
close $f;
opendir(my $d, '/proc/self/fd') or die;
my @fds = sort { $a <=> $b } grep { /^\d+$/ } readdir($d);
my $own = fileno($d);
closedir $d;
for my $fd (@fds) {
    next if $fd == $own;
    my $t = readlink("/proc/self/fd/$fd") // next;
    my $k = $t =~ /^pipe:/ ? 'pipe' : $t =~ /^socket:/ ? 'socket' :
            $t =~ m{^(/dev/|anon_inode:)} ? $t : 'file';
    print "fd $fd: $k\n";
}
print "env $_=$ENV{$_}\n" for sort keys %ENV;
open(my $w, '>', 'written.txt') or die;
print $w "written by perl\n" x 10;
close $w;
print STDERR "perl: a line on stderr\n";
"""

CXX_SOURCE = """\
#include <string>
#include <vector>
std::vector<std::string> names(int n)
{
    std::vector<std::string> v;
    for (int i = 0; i < n; i++)
        v.push_back(std::to_string(i));
    return v;
}
"""

GIT_SCRIPT = """\
git init -q -b main repo && cd repo &&
printf 'one\\ntwo\\n' > a.txt && git add a.txt && git commit -q -m first &&
printf 'three\\n' >> a.txt && git commit -q -a -m second &&
git rev-parse HEAD && git log --format='%H %s' && echo changed > b.txt && git status --porcelain
"""

SQLITE_SCRIPT = """\
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO t(name) VALUES ('alpha'), ('beta'), ('gamma');
CREATE INDEX t_name ON t(name);
SELECT count(*), group_concat(name) FROM t;
"""

GIT_ENV = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE,
           "GIT_CONFIG_NOSYSTEM": "1"}


def add_arguments(parser):
    parser.add_argument("--case", required=True,
                        choices=["probe_report", "probe_daemon", "probe_closeall", "sh", "python3", "perl",
                                 "gxx", "git", "sqlite3"])


def case_spec(ctx, case):
    """argv, files to compare, setup(dir), extra environment."""
    if case == "probe_report":
        return [ctx.prog("transp_probe"), "report"], ["written.txt"], None, {}
    if case in ("probe_daemon", "probe_closeall"):
        def setup(d):
            with open(os.path.join(d, "in.txt"), "w") as f:
                f.write("twenty-seven bytes of text\n")
        return ([ctx.prog("transp_probe"), case.split("_")[1]], ["out.txt", "log.txt"], setup,
                {})
    if case == "sh":
        return ["/bin/sh", "-c", SH_SCRIPT], ["fd3.txt"], None, {}
    if case == "python3":
        return ["/usr/bin/python3", "-c", PYTHON_SCRIPT], ["written.txt"], None, {}
    if case == "perl":
        return ["/usr/bin/perl", "-e", PERL_SCRIPT], ["written.txt"], None, {}
    if case == "gxx":
        def setup(d):
            with open(os.path.join(d, "t.cpp"), "w") as f:
                f.write(CXX_SOURCE)
        return (["/bin/sh", "-c", "g++ -O1 -c t.cpp -o t.o 2>inner.err; echo g++ exited $?"],
                ["t.o", "inner.err"], setup, {})
    if case == "git":
        # not .git/index: it holds the files' inode numbers and change times,
        # which differ between any two runs (a fact, not memtrace's doing);
        # the commit ids on stdout and the objects' names cover the content
        return (["/bin/sh", "-c", GIT_SCRIPT], ["repo/.git/HEAD", "repo/.git/refs/heads/main"],
                None, GIT_ENV)
    if case == "sqlite3":
        def setup(d):
            with open(os.path.join(d, "script.sql"), "w") as f:
                f.write(SQLITE_SCRIPT)
        return (["/bin/sh", "-c", "sqlite3 db.sqlite < script.sql"], ["db.sqlite"], setup, {})
    raise mtlib.TestError("unknown case " + case)


def split_output(text):
    """stdout cut into what is compared apart: the fd listing, the first
    open()'s number, the environment, and the rest."""
    parts = {"fds": [], "first open()": [], "environment": [], "rest": []}
    for line in text.splitlines():
        if line.startswith("fd "):
            parts["fds"].append(line)
        elif line.startswith("first open:"):
            parts["first open()"].append(line)
        elif line.startswith("env "):
            parts["environment"].append(line[4:])
        else:
            parts["rest"].append(line)
    return parts


def tree(d):
    """Every file under d (relative names), for "the same files were made"."""
    out = []
    for root, dirs, files in os.walk(d):
        for name in files:
            out.append(os.path.relpath(os.path.join(root, name), d))
    return sorted(out)


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def body(c):
        argv, files, setup, extra_env = case_spec(ctx, case)
        tmp = tempfile.mkdtemp(prefix="mt-tc-")
        try:
            run_case(c, argv, files, setup, extra_env, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def run_case(c, argv, files, setup, extra_env, tmp):
        home = ctx.subdir("home")
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8",
               **mtlib.sanitizer_env(), **extra_env}
        bare = ctx.subdir("bare")
        memt = ctx.subdir("memt")
        dumps = ctx.subdir("dumps")
        logs = ctx.subdir("logs")
        for d in (bare, memt):
            if setup:
                setup(d)
        r_bare = mtlib.run(argv, env=env, cwd=bare, stdout_path=os.path.join(logs, "bare.out"),
                           stderr_path=os.path.join(logs, "bare.err"), timeout=100)
        r_mt = mtlib.memtrace_run(ctx, argv, os.path.join(dumps, "%n.%p.mtr"), options=["-q"],
                                  env=env, cwd=memt, logdir=logs, tag="memt", timeout=100)
        c.check("memtrace wrote dumps", len(mtlib.dumps_in(dumps)) > 0)

        def same(what, got, want):
            name = "%s: %s" % (case, what)
            entry = EXPECTED_TO_FAIL.get((case, what))
            if got == want:
                if entry:
                    print("  XPASS %s: %s is fixed: remove its entry from EXPECTED_TO_FAIL"
                          % (name, entry[0]))
                c.check(name + " == bare", True)
                return
            if entry:
                print("  XFAIL %s: %s (%s)\n        memtrace: %r\n        bare:     %r"
                      % (name, entry[0], entry[1], got, want))
                return
            if isinstance(got, list):
                c.text_eq(name + " == bare", "\n".join(got), "\n".join(want))
            else:
                c.eq(name + " == bare", got, want)

        def norm(text, d):
            return text.replace(d, "RUN")

        same("exit status", mtlib.exit_code(r_mt.returncode), mtlib.exit_code(r_bare.returncode))
        out_b = split_output(norm(r_bare.stdout, bare))
        out_m = split_output(norm(r_mt.stdout, memt))
        c.check("%s: the program printed something" % case, any(out_b.values()))
        same("stdout", out_m["rest"], out_b["rest"])
        if out_b["fds"] or out_m["fds"]:
            def fd_number(line):
                return int(line.split()[1].rstrip(":"))
            low_m = [x for x in out_m["fds"] if fd_number(x) < SHIM_FD_FLOOR]
            high_m = [x for x in out_m["fds"] if fd_number(x) >= SHIM_FD_FLOOR]
            same("fds below %d" % SHIM_FD_FLOOR, low_m,
                 [x for x in out_b["fds"] if fd_number(x) < SHIM_FD_FLOOR])
            c.check("%s: fds from %d up: only the shim's sockets and pipe (a fact, see "
                    "SHIM_FD_FLOOR)" % (case, SHIM_FD_FLOOR),
                    [x for x in out_b["fds"] if fd_number(x) >= SHIM_FD_FLOOR] == [] and
                    len(high_m) <= SHIM_FD_COUNT and all(x.split(": ")[1] in SHIM_FD_KINDS for x in high_m),
                    "memtrace run: %s" % high_m)
        if out_b["first open()"] or out_m["first open()"]:
            same("first open()", out_m["first open()"], out_b["first open()"])
        if out_b["environment"] or out_m["environment"]:
            env_b = dict(line.partition("=")[::2] for line in out_b["environment"])
            env_m = dict(line.partition("=")[::2] for line in out_m["environment"])
            preload = env_m.pop("LD_PRELOAD", "")
            first, _, rest = preload.partition(":")
            c.check("%s: LD_PRELOAD starts with an absolute path to libmemtrace.so" % case,
                    os.path.isabs(first) and first.endswith("/libmemtrace.so"), preload)
            c.eq("%s: the previous LD_PRELOAD follows it" % case, rest, env_b.pop("LD_PRELOAD", ""))
            same("environment but LD_PRELOAD", sorted("%s=%s" % kv for kv in env_m.items()),
                 sorted("%s=%s" % kv for kv in env_b.items()))
        same("stderr", norm(r_mt.stderr, memt), norm(r_bare.stderr, bare))
        same("files made", tree(memt), tree(bare))
        for name in files:
            pb, pm = os.path.join(bare, name), os.path.join(memt, name)
            c.check("%s: %s exists in the bare run" % (case, name), os.path.exists(pb))
            got = open(pm, "rb").read() if os.path.exists(pm) else None
            want = open(pb, "rb").read() if os.path.exists(pb) else None
            same("file " + name, got, want)

    mtlib.run_test(ctx, "transparency_compare." + case, body)


if __name__ == "__main__":
    main()
