"""Shared helpers of memtrace's end-to-end tests (Python 3, stdlib only).

Every e2e script starts with `ctx = mtlib.setup(...)`, which reads the paths
CTest passes (tests/CMakeLists.txt): --memtrace, --shim, --prog NAME=PATH for
every victim, --workdir DIR. A script runs its subject under `memtrace run`
(memtrace_run), reads the dumps with `memtrace report --summary --format json`
(report), runs the same thing under valgrind memcheck (valgrind_run,
valgrind_figures) and compares with a Checker, which records every check and
makes the exit status. The work directory is wiped at the start and removed
when every check passed; after a failure it is kept for a look.

Timeouts: each step has its own (100 s unless a test says otherwise), below
the CTest TIMEOUT of its test, so that a hang is reported as the step that
hung, with its stderr, and the hung process group is killed.

The figures compared everywhere are those of SPEC section 4, by their names in
the JSON report: allocations, frees, bytes_allocated, in_use_bytes,
in_use_blocks (valgrind's "total heap usage: A allocs, F frees, B bytes
allocated" and "in use at exit: U bytes in N blocks").

Facts about valgrind that the comparisons depend on:
- /usr/bin/valgrind is a Debian wrapper script that changes LD_LIBRARY_PATH
  and GLIBCXX_FORCE_NEW; /usr/bin/valgrind.bin is the real thing.
- valgrind's defaults --run-libc-freeres=yes --run-cxx-freeres=yes: memtrace
  frees libc's and libstdc++'s one-time blocks at exit the same way (its
  --run-libc-freeres=yes default), so both count those frees.
- valgrind gives its client LD_PRELOAD=<its two preload libraries>[:user's],
  memtrace gives LD_PRELOAD=<a link to libmemtrace.so in its run directory>[:user's]
  and nothing else.
  Programs that copy their environment (python3, perl) allocate by its size;
  EqualEnvironments makes both runs see variables of the same names and
  lengths.
- valgrind puts the client's heap at low addresses (or, with
  --aspace-minaddr, just above 4 GiB), where a native non-PIE program has its
  brk heap below 1 GiB and its thread control block near 2**47. Programs that
  turn addresses into variable-length numbers (CPython's ints) then allocate
  different sizes; see VALGRIND_HIGH_ADDRESSES and tests/programs/nobrk.c.
- valgrind prints no heap summary for a process image that execs, and with
  --log-file=...%p... the exec'd image's log replaces it.
"""

import argparse
import difflib
import fcntl
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback

VALGRIND = "/usr/bin/valgrind.bin"
VALGRIND_OPTIONS = [
    "--tool=memcheck",
    "--leak-check=no",
]
# For programs whose allocations depend on how large their addresses are
# (CPython): valgrind's client heap above 4 GiB, and the native run under
# tests/programs/nobrk so that its heap is in mmap'd memory, also above 4 GiB.
VALGRIND_HIGH_ADDRESSES = ["--aspace-minaddr=0x100000000"]

FIGURES = ("allocations", "frees", "bytes_allocated", "in_use_bytes", "in_use_blocks")
TOTALS_KEYS = FIGURES + ("peak_bytes", "peak_blocks", "peak_time_ns", "temporary_allocations")


class TestError(Exception):
    """A step of the test could not be carried out (not a mere mismatch)."""


# ---------------------------------------------------------------- setup


class Context:
    """Paths from the command line, and a fresh work directory."""

    def __init__(self, args):
        self.args = args
        self.memtrace = os.path.abspath(args.memtrace)
        self.shim = os.path.abspath(args.shim)
        self.programs = {}
        for item in args.prog:
            name, _, path = item.partition("=")
            self.programs[name] = os.path.abspath(path)
        self.workdir = os.path.abspath(args.workdir)

    def prog(self, name):
        path = self.programs.get(name)
        if path is None:
            raise TestError("no --prog %s=PATH given" % name)
        if not os.path.exists(path):
            raise TestError("%s is not built (%s)" % (name, path))
        return path

    def subdir(self, *parts):
        """A new empty directory under the work directory."""
        return fresh_dir(os.path.join(self.workdir, *parts))


def fresh_dir(path):
    """Creates path as a new empty directory (removing what was there)."""
    if os.path.lexists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def setup(description, add_arguments=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--memtrace", required=True, help="the memtrace executable")
    parser.add_argument("--shim", required=True, help="libmemtrace.so")
    parser.add_argument("--prog", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--workdir", required=True)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    ctx = Context(args)
    if os.path.lexists(ctx.workdir):
        shutil.rmtree(ctx.workdir)
    os.makedirs(ctx.workdir)
    for path, what in ((ctx.memtrace, "memtrace"), (ctx.shim, "libmemtrace.so")):
        if not os.path.exists(path):
            print("FAIL: %s is not built (%s)" % (what, path))
            sys.exit(1)
    return ctx


# ---------------------------------------------------------------- checks


class Checker:
    """Records checks; finish() prints the verdict and exits 0 or 1."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name
        self.passed = 0
        self.failed = []

    def check(self, label, ok, detail=""):
        if ok:
            self.passed += 1
            print("  ok    %s" % label)
        else:
            self.failed.append(label)
            print("  FAIL  %s%s" % (label, (": " + detail) if detail else ""))
        return ok

    def eq(self, label, got, want):
        return self.check(label, got == want, "got %r, want %r" % (got, want))

    def text_eq(self, label, got, want):
        """Compares two texts; on a difference shows the lines that differ."""
        diff = list(difflib.unified_diff(want.splitlines(), got.splitlines(), "want", "got",
                                         n=0, lineterm=""))
        return self.check(label, got == want, "\n        " + "\n        ".join(diff[:24]))

    def figures(self, label, got, want, keys=FIGURES):
        """Compares two figure dicts key by key; one check per key."""
        ok = True
        for key in keys:
            g = got.get(key) if got else None
            w = want.get(key) if want else None
            ok &= self.check("%s: %s" % (label, key), g == w,
                             "got %s, want %s%s" % (g, w, difference(g, w)))
        return ok

    def finish(self):
        total = self.passed + len(self.failed)
        print("%s: %d passed, %d failed" % (self.name, self.passed, len(self.failed)))
        if self.failed:
            print("work directory kept: %s" % self.ctx.workdir)
            sys.exit(1)
        if total == 0:
            print("%s: no check was made" % self.name)
            sys.exit(1)
        shutil.rmtree(self.ctx.workdir, ignore_errors=True)
        sys.exit(0)


def difference(got, want):
    if isinstance(got, int) and isinstance(want, int) and got != want:
        return " (off by %+d)" % (got - want)
    return ""


def run_test(ctx, name, body):
    """Runs body(checker), turning a TestError or a crash into a failure."""
    checker = Checker(ctx, name)
    try:
        body(checker)
    except TestError as error:
        checker.check("test could run", False, str(error))
    except Exception:  # a bug in the test itself, or an unexpected report
        traceback.print_exc()
        checker.check("test ran to its end", False, "exception above")
    checker.finish()


def fmt(figures):
    if not figures:
        return "(none)"
    return ", ".join("%s=%s" % (k, figures.get(k)) for k in FIGURES)


# ---------------------------------------------------------------- processes


class Result:
    def __init__(self, returncode, stdout_path, stderr_path, pid=None):
        self.returncode = returncode
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.pid = pid

    @property
    def stdout(self):
        return read_text(self.stdout_path)

    @property
    def stderr(self):
        return read_text(self.stderr_path)


def read_text(path):
    if path is None or not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def start(argv, *, env=None, cwd=None, stdin=None, stdout_path, stderr_path):
    """Starts argv with stdout and stderr going to files (never pipes: CPython
    allocates more when stderr is a pipe) and stdin from a file or /dev/null."""
    stdin_file = open(stdin if stdin else os.devnull, "rb")
    out = open(stdout_path, "wb")
    err = open(stderr_path, "wb")
    try:
        # a session of its own, so that a run that hangs can be ended whole
        # (memtrace, the traced program, its consumer) by kill_group()
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=stdin_file, stdout=out,
                                stderr=err, preexec_fn=no_core_dumps, start_new_session=True)
    except OSError as error:
        raise TestError("cannot run %s: %s" % (argv[0], error))
    finally:
        stdin_file.close()
        out.close()
        err.close()


def run(argv, *, env=None, cwd=None, stdin=None, stdout_path, stderr_path, timeout=100):
    proc = start(argv, env=env, cwd=cwd, stdin=stdin, stdout_path=stdout_path,
                 stderr_path=stderr_path)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise TestError("%s did not finish within %d s (stderr: %s)"
                        % (" ".join(argv[:4]), timeout, tail(read_text(stderr_path))))
    return Result(proc.returncode, stdout_path, stderr_path, proc.pid)


def kill_group(proc):
    """SIGKILLs the process group that start() made for proc, and reaps proc."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def exit_code(returncode):
    """A shell-style status: 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def tail(text, lines=8):
    return " | ".join(text.strip().splitlines()[-lines:])


# ---------------------------------------------------------------- memtrace


def memtrace_run(ctx, argv, out_pattern, *, options=(), wrapper=(), env=None, cwd=None,
                 stdin=None, logdir, tag="memtrace", timeout=100):
    """`[wrapper...] memtrace run -o out_pattern [options] -- argv`, stdout and
    stderr to logdir/tag.out and logdir/tag.err."""
    cmd = list(wrapper) + [ctx.memtrace, "run", "-o", out_pattern] + list(options) + ["--"] + list(argv)
    return run(cmd, env=env, cwd=cwd, stdin=stdin, timeout=timeout,
               stdout_path=os.path.join(logdir, tag + ".out"),
               stderr_path=os.path.join(logdir, tag + ".err"))


def dumps_in(directory, suffix=".mtr"):
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if name.endswith(suffix))


def report(ctx, dump, timeout=100, summary=True):
    """The JSON summary of a dump (`memtrace report --summary --format json`),
    or with summary=False the whole JSON report."""
    logbase = dump + (".report" if summary else ".report-full")
    result = run([ctx.memtrace, "report"] + (["--summary"] if summary else []) +
                 ["--format", "json", dump],
                 stdout_path=logbase + ".json", stderr_path=logbase + ".err", timeout=timeout)
    if result.returncode != 0:
        raise TestError("memtrace report on %s exited %d: %s"
                        % (dump, exit_code(result.returncode), tail(result.stderr)))
    try:
        return json.loads(result.stdout)
    except ValueError as error:
        raise TestError("memtrace report on %s printed no JSON (%s): %s"
                        % (dump, error, result.stdout[:300]))


def totals(rep):
    return {key: rep["totals"].get(key) for key in FIGURES}


def check_report_shape(checker, rep, label):
    """SPEC section 7 fields, and the invariants every dump must satisfy."""
    ok = checker.check("%s: format memtrace-report version 1" % label,
                       rep.get("format") == "memtrace-report" and rep.get("version") == 1,
                       "got format=%r version=%r" % (rep.get("format"), rep.get("version")))
    process = rep.get("process") or {}
    t = rep.get("totals") or {}
    missing = [k for k in ("pid", "ppid", "command", "exit", "duration_ns") if k not in process]
    missing += ["totals." + k for k in TOTALS_KEYS if not isinstance(t.get(k), int)]
    ok &= checker.check("%s: process and totals fields present" % label, not missing,
                        "missing or not an integer: %s" % ", ".join(missing))
    if missing:
        return False
    ok &= checker.check(
        "%s: in_use_blocks == allocations - frees" % label,
        t["in_use_blocks"] == t["allocations"] - t["frees"],
        "%d != %d - %d" % (t["in_use_blocks"], t["allocations"], t["frees"]))
    # peak_blocks is the block count at the peak of bytes, which may be below
    # the count at exit: only the bytes are ordered
    ok &= checker.check(
        "%s: in_use_bytes <= peak_bytes <= bytes_allocated" % label,
        t["in_use_bytes"] <= t["peak_bytes"] <= t["bytes_allocated"],
        "in use %d, peak %d, allocated %d" % (t["in_use_bytes"], t["peak_bytes"],
                                              t["bytes_allocated"]))
    return ok


def check_exit(checker, rep, label, status=None, signal_number=None):
    """process.exit of the report: {"status": status, "signal": signal}."""
    got = (rep.get("process") or {}).get("exit") or {}
    checker.eq("%s: process.exit" % label, {"status": got.get("status"), "signal": got.get("signal")},
               {"status": status, "signal": signal_number})


SUMMARY_IN_USE = re.compile(r"==memtrace==\s+in use at exit: ([\d,]+) bytes in ([\d,]+) blocks?")
SUMMARY_TOTAL = re.compile(
    r"==memtrace==\s+total heap usage: ([\d,]+) allocs?, ([\d,]+) frees?, ([\d,]+) bytes allocated")


def memtrace_summaries(stderr):
    """The figures of every per-process summary memtrace printed, in order."""
    found = []
    current = None
    for line in stderr.splitlines():
        m = SUMMARY_IN_USE.search(line)
        if m:
            current = {"in_use_bytes": number(m.group(1)), "in_use_blocks": number(m.group(2))}
            continue
        m = SUMMARY_TOTAL.search(line)
        if m and current is not None:
            current.update(allocations=number(m.group(1)), frees=number(m.group(2)),
                           bytes_allocated=number(m.group(3)))
            found.append(current)
            current = None
    return found


def check_summaries_match(checker, stderr, reports, label):
    """memtrace's stderr summaries are those of its dumps (as multisets)."""
    def key(f):
        return tuple(f.get(k) for k in FIGURES)
    got = sorted(key(f) for f in memtrace_summaries(stderr))
    want = sorted(key(totals(r)) for r in reports)
    checker.check("%s: stderr summaries (in use, total heap usage) match the dumps" % label,
                  got == want, "stderr %s, dumps %s" % (got, want))


def wait_for_dump(path, timeout=60):
    """Plain LD_PRELOAD mode: wait until the dump exists and its writer has
    released its exclusive flock (the consumer holds it until the dump is
    complete)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TestError("no dump appeared at %s within %d s" % (path, timeout))
        time.sleep(0.02)
    with open(path, "rb") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TestError("the dump %s was still locked after %d s" % (path, timeout))
                time.sleep(0.02)


# ---------------------------------------------------------------- valgrind


VG_IN_USE = re.compile(r"^==(\d+)==\s+in use at exit: ([\d,]+) bytes in ([\d,]+) blocks?")
VG_TOTAL = re.compile(
    r"^==(\d+)==\s+total heap usage: ([\d,]+) allocs?, ([\d,]+) frees?, ([\d,]+) bytes allocated")
VG_ALL_FREED = re.compile(r"^==(\d+)== All heap blocks were freed")
VG_COMMAND = re.compile(r"^==(\d+)== Command: (.*)$")


def number(text):
    return int(text.replace(",", ""))


def valgrind_run(argv, *, logdir, tag="valgrind", options=(), env=None, cwd=None, stdin=None,
                 timeout=100):
    """valgrind.bin memcheck on argv; its log goes to logdir/tag.log (or to the
    --log-file among options), the client's output to logdir/tag.out/.err."""
    log = os.path.join(logdir, tag + ".log")
    opts = list(options)
    if not any(o.startswith("--log-file=") for o in opts):
        opts.append("--log-file=" + log)
    cmd = [VALGRIND] + VALGRIND_OPTIONS + opts + list(argv)
    result = run(cmd, env=env, cwd=cwd, stdin=stdin, timeout=timeout,
                 stdout_path=os.path.join(logdir, tag + ".out"),
                 stderr_path=os.path.join(logdir, tag + ".err"))
    result.log = log
    return result


def valgrind_figures(log_path):
    """The heap summary of a valgrind log: a FIGURES dict, or None if the log
    has none (the process was killed, or exec'd)."""
    text = read_text(log_path)
    figures = {}
    for line in text.splitlines():
        m = VG_IN_USE.match(line)
        if m:
            figures["in_use_bytes"] = number(m.group(2))
            figures["in_use_blocks"] = number(m.group(3))
            continue
        m = VG_TOTAL.match(line)
        if m:
            figures["allocations"] = number(m.group(2))
            figures["frees"] = number(m.group(3))
            figures["bytes_allocated"] = number(m.group(4))
            continue
        if VG_ALL_FREED.match(line) and "in_use_bytes" not in figures:
            figures["in_use_bytes"] = 0
            figures["in_use_blocks"] = 0
    if "allocations" not in figures:
        return None
    return figures


LEAK_KINDS = ("definite", "indirect", "possible", "reachable")
VALGRIND_KIND_LABELS = {"definite": "definitely lost", "indirect": "indirectly lost",
                        "possible": "possibly lost", "reachable": "still reachable"}


def valgrind_leak_kinds(log_path):
    """memcheck's LEAK SUMMARY: {kind: (bytes, blocks)} for the four kinds
    (all zero when it says every block was freed)."""
    text = read_text(log_path)
    if "All heap blocks were freed" in text:
        return {k: (0, 0) for k in LEAK_KINDS}
    out = {}
    for kind, label in VALGRIND_KIND_LABELS.items():
        m = re.search(label + r": ([\d,]+) bytes in ([\d,]+) blocks", text)
        if not m:
            raise TestError("no '%s' line in %s" % (label, log_path))
        out[kind] = (number(m.group(1)), number(m.group(2)))
    return out


def memtrace_leak_kinds(ctx, dump):
    """(the JSON of `report --leaks`, {kind: (bytes, blocks)} for the four
    kinds and unknown)."""
    out = subprocess.run([ctx.memtrace, "report", "--leaks", "--format", "json", dump],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise TestError("report failed: " + out.stderr.strip())
    rep = json.loads(out.stdout)
    by_kind = rep["leaks"]["by_kind"]
    return rep, {k: (by_kind[k]["bytes"], by_kind[k]["blocks"]) for k in LEAK_KINDS + ("unknown",)}


def valgrind_command(log_path):
    for line in read_text(log_path).splitlines():
        m = VG_COMMAND.match(line)
        if m:
            return m.group(2)
    return None


def need_valgrind():
    if not os.access(VALGRIND, os.X_OK):
        raise TestError("%s is missing (Debian package valgrind)" % VALGRIND)


# ---------------------------------------------------------------- environments


def env_lengths(env_output):
    """Sorted (name, length of value) pairs of `env` output."""
    pairs = []
    for line in env_output.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            pairs.append((name, len(value)))
    return sorted(pairs)


def parse_env(env_output):
    result = {}
    for line in env_output.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            result[name] = value
    return result


def sanitizer_env():
    """The sanitizer settings of this run (the ASan/UBSan build of memtrace is
    tested with them), for tests that build their environment from scratch:
    memtrace itself must get them. Both sides of a comparison get the same."""
    return {k: os.environ[k] for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
            if k in os.environ}


class EqualEnvironments:
    """Builds the environments of a memtrace run and a valgrind run of the same
    program so that the program sees variables of the same names and value
    lengths in both, starting from `base` (a small controlled environment).

    memtrace adds LD_PRELOAD=<a link to its shim, in its run directory under
    $TMPDIR>[:previous] and nothing else; valgrind adds LD_PRELOAD=<vgpreload_core>:<vgpreload_
    memcheck>[:previous]. So:
    - both runs preload libmt_noop.so (a do-nothing library) through a
      symlink, and the two symlink names differ in length by exactly what the
      two prefixes differ by;
    - the valgrind run gets every variable memtrace adds besides LD_PRELOAD
      (none since issue 18.4) with a value of the same length, and the memtrace run
      every variable valgrind adds besides LD_PRELOAD.
    Both sides are learnt by running /usr/bin/env under each tool, and checked
    the same way afterwards (verify()).
    """

    def __init__(self, ctx, base, directory, memtrace_options=(), valgrind_options=(),
                 memtrace_wrapper=()):
        self.ctx = ctx
        self.base = dict(base, **sanitizer_env())
        self.dir = directory
        self.memtrace_options = list(memtrace_options)
        self.valgrind_options = list(valgrind_options)
        self.memtrace_wrapper = list(memtrace_wrapper)
        noop = ctx.prog("mt_noop")
        self.links = os.path.join(directory, "preload")
        os.makedirs(self.links, exist_ok=True)
        probe_m = self._link("probe-m", noop)
        probe_v = self._link("probe-v", noop)

        seen_m = self._env_under_memtrace(dict(self.base, LD_PRELOAD=probe_m), "probe1")
        seen_v = self._env_under_valgrind(dict(self.base, LD_PRELOAD=probe_v), "probe1")
        prefix_m = self._prefix(seen_m.get("LD_PRELOAD", ""), probe_m, "memtrace")
        prefix_v = self._prefix(seen_v.get("LD_PRELOAD", ""), probe_v, "valgrind")

        # names m-..., v-... whose lengths make the two LD_PRELOAD values equal
        diff = len(prefix_m) - len(prefix_v)
        base_len = 4
        len_m = base_len + max(0, -diff)
        len_v = base_len + max(0, diff)
        self.preload_m = self._link("m" * len_m, noop)
        self.preload_v = self._link("v" * len_v, noop)

        self.memtrace_env = dict(self.base, LD_PRELOAD=self.preload_m)
        self.valgrind_env = dict(self.base, LD_PRELOAD=self.preload_v)
        for name, value in seen_m.items():
            if name not in self.base and name != "LD_PRELOAD":
                self.valgrind_env[name] = filler(len(value))
        for name, value in seen_v.items():
            if name not in self.base and name != "LD_PRELOAD":
                self.memtrace_env[name] = filler(len(value))

    def _link(self, name, target):
        path = os.path.join(self.links, name + ".so")
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)
        return path

    @staticmethod
    def _prefix(value, suffix, tool):
        if not value.endswith(":" + suffix):
            raise TestError("%s gave the program LD_PRELOAD=%r, expected it to end with :%s"
                            % (tool, value, suffix))
        return value[: -len(suffix) - 1]

    def _env_under_memtrace(self, env, tag):
        out = fresh_dir(os.path.join(self.dir, "env-" + tag + "-m"))
        result = memtrace_run(self.ctx, ["/usr/bin/env"], os.path.join(out, "%n.%p.mtr"),
                              options=self.memtrace_options, wrapper=self.memtrace_wrapper,
                              env=env, cwd=out, logdir=out, tag="env")
        if result.returncode != 0:
            raise TestError("memtrace run /usr/bin/env exited %d: %s"
                            % (exit_code(result.returncode), tail(result.stderr)))
        return parse_env(result.stdout)

    def _env_under_valgrind(self, env, tag):
        out = fresh_dir(os.path.join(self.dir, "env-" + tag + "-v"))
        result = valgrind_run(["/usr/bin/env"], logdir=out, tag="env", env=env, cwd=out,
                              options=self.valgrind_options)
        if result.returncode != 0:
            raise TestError("valgrind /usr/bin/env exited %d: %s"
                            % (exit_code(result.returncode), tail(result.stderr)))
        return parse_env(result.stdout)

    def verify(self, checker, label):
        """Runs /usr/bin/env under both tools with the final environments and
        checks that the program sees the same names and value lengths."""
        seen_m = self._env_under_memtrace(self.memtrace_env, "verify")
        seen_v = self._env_under_valgrind(self.valgrind_env, "verify")
        lengths_m = sorted((k, len(v)) for k, v in seen_m.items())
        lengths_v = sorted((k, len(v)) for k, v in seen_v.items())
        return checker.check(
            "%s: environment seen under memtrace and under valgrind: same names, same lengths" % label,
            lengths_m == lengths_v,
            "memtrace %s, valgrind %s" % (lengths_m, lengths_v))


def filler(length):
    """A value of the given length, made of ordinary path characters."""
    return ("/" + "x" * length)[:length] if length else ""
