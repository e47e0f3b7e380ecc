"""Helpers shared by the gate, suppression and CI-report tests
(test_gates.py, test_suppressions.py, test_ci_reports.py), on top of mtlib.

The victims (tests/programs/gate_*.c) print "LEAK size kind function line"
for every block they leave allocated, each size distinct: a test finds a
leak's site in a report by its size, and knows the kind memcheck gives it
and the line that allocated it.
"""
import json
import os
import re

import mtlib

GATED = ("definite", "indirect")  # the gates' default --leak-kinds
MARK = re.compile(r"^LEAK (\d+) (\w+) (.+) (\d+)$")


class Mark:
    def __init__(self, size, kind, function, line):
        self.size, self.kind, self.function, self.line = size, kind, function, line


def marks_of(text):
    """{size: Mark} from a victim's output."""
    marks = {}
    for line in text.splitlines():
        m = MARK.match(line)
        if m:
            marks[int(m.group(1))] = Mark(int(m.group(1)), m.group(2), m.group(3), int(m.group(4)))
    return marks


def record(checker, name, prog, options=()):
    """Runs victim prog under `memtrace run` (no gate); returns (dump, marks)."""
    ctx = checker.ctx
    out = ctx.subdir("record-" + name)
    result = mtlib.memtrace_run(ctx, [ctx.prog(prog)], os.path.join(out, "%n.%p.mtr"),
                                options=options, logdir=out, tag="run")
    if result.returncode != 0:
        raise mtlib.TestError("memtrace run %s exited %d: %s"
                              % (prog, mtlib.exit_code(result.returncode), mtlib.tail(result.stderr)))
    dumps = mtlib.dumps_in(out)
    if len(dumps) != 1:
        raise mtlib.TestError("memtrace run %s wrote %d dumps, not 1" % (prog, len(dumps)))
    return dumps[0], marks_of(result.stdout)


_counter = [0]


def memtrace(ctx, args, tag=None, cwd=None, env=None, timeout=100):
    """`memtrace ARGS...`, its output in files under the work directory."""
    _counter[0] += 1
    base = os.path.join(ctx.workdir, "%03d-%s" % (_counter[0], tag or (args[0] if args else "x")))
    return mtlib.run([ctx.memtrace] + list(args), cwd=cwd, env=env, timeout=timeout,
                     stdout_path=base + ".out", stderr_path=base + ".err")


def report_json(ctx, dump, *options):
    """`memtrace report --format json [options] DUMP`, parsed."""
    result = memtrace(ctx, ["report", "--format", "json"] + list(options) + [dump], "report")
    if result.returncode != 0:
        raise mtlib.TestError("memtrace report %s exited %d: %s"
                              % (" ".join(options), result.returncode, mtlib.tail(result.stderr)))
    try:
        return json.loads(result.stdout)
    except ValueError as error:
        raise mtlib.TestError("memtrace report printed no JSON (%s)" % error)


def sites_by_size(rep, key="sites"):
    """{bytes: site} of the one-block leak sites of a report's leak list
    (or of leaks.suppressed when key is "suppressed")."""
    leaks = rep["leaks"]
    sites = leaks["suppressed"]["sites"] if key == "suppressed" else leaks["sites"]
    return {s["bytes"]: s for s in sites if s["blocks"] == 1}


def gated(rep, kinds=GATED):
    """(bytes, blocks) still allocated of the given kinds, from by_kind."""
    by_kind = rep["leaks"]["by_kind"]
    return (sum(by_kind[k]["bytes"] for k in kinds), sum(by_kind[k]["blocks"] for k in kinds))


def check_kinds(checker, rep, marks, label):
    """The dump was scanned and its leaks have the kinds memcheck gives them
    (the victim's marks): what every expectation below builds on."""
    ok = checker.check("%s: the dump holds a reachability scan (leaks.scanned)" % label,
                       rep["leaks"].get("scanned") is True,
                       "not scanned: every block is of kind unknown")
    sites = sites_by_size(rep)
    got = {size: sites[size]["kind"] if size in sites else None for size in marks}
    want = {size: mark.kind for size, mark in marks.items()}
    return ok and checker.eq("%s: each leak's kind is memcheck's (size: kind)" % label, got, want)


def one_line_error(checker, result, label, code, fragment):
    """A failure reported as one line on stderr, with the status and text."""
    err = result.stderr.strip()
    checker.eq("%s: exit status" % label, result.returncode, code)
    checker.check("%s: one line on stderr" % label, len(err.splitlines()) == 1, repr(err[:400]))
    checker.check("%s: the message says %r" % (label, fragment), fragment in err, repr(err[:400]))
