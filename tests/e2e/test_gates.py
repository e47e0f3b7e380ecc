#!/usr/bin/env python3
"""CI gates (issue 4, acceptance 3), on `memtrace check DUMP` or on
`memtrace run PROGRAM` (--command check|run: the same cases, each command's
own way of being given the victim and its own exit statuses).

- --max-leaked, --max-leaked-blocks and --max-peak each pass at their limit
  (the figure the dump holds, counted as `memtrace report` counts it) and
  fail one byte or one block below it; a failure names the gate and lists
  the leak sites (their innermost functions and lines), a pass prints no
  failure.
- --leak-kinds chooses what the leak gates count (default definite,indirect);
  --error-exitcode sets the failing status; BYTES take K/M/G.
- A victim that frees everything passes --max-leaked 0 --max-leaked-blocks 0.
- `check` only: without a gate option the gate is --max-leaked 0; several
  dumps are gated one by one; a bad value or dump is a one-line error, exit 2.

The victim's leaks (tests/programs/gate_leaks.c) must have the kinds memcheck
gives them; that is checked first, and the limits come from the dump itself.
"""
import os

import gatelib
import mtlib


class Check:
    """`memtrace check [gates] DUMP...` on dumps recorded once."""
    name = "check"
    pass_code = 0
    fail_code = 1

    def __init__(self, ctx, dumps):
        self.ctx = ctx
        self.dumps = dumps  # victim name -> dump

    def __call__(self, options, victim="gate_leaks"):
        return gatelib.memtrace(self.ctx, ["check"] + list(options) + [self.dumps[victim]], "check")


class Run:
    """`memtrace run [gates] -- PROGRAM`, a new run each time."""
    name = "run"
    pass_code = 0  # the victims exit 0
    fail_code = 99

    def __init__(self, ctx, dumps):
        self.ctx = ctx
        self.runs = 0

    def __call__(self, options, victim="gate_leaks"):
        self.runs += 1
        out = self.ctx.subdir("run-%d" % self.runs)
        return mtlib.memtrace_run(self.ctx, [self.ctx.prog(victim)], os.path.join(out, "%n.%p.mtr"),
                                  options=options, logdir=out, tag="run")


def expect(checker, command, options, code, label, victim="gate_leaks", listed=()):
    """Runs the command; checks its status, and that a failure (and only a
    failure) is reported with the given sites' innermost frames."""
    result = command(options, victim)
    err = result.stderr
    checker.check("%s: %s %s exits %d" % (label, command.name, " ".join(options), code),
                  result.returncode == code,
                  "exited %d; stderr: %s" % (result.returncode, mtlib.tail(err, 12)))
    failed = err.count("gate failed")
    checker.eq("%s: failure reports printed" % label, failed, 0 if code == command.pass_code else 1)
    missing = [where for where in listed if where not in err]
    checker.check("%s: the failure lists every leak site (function file:line)" % label,
                  not missing, "missing %s in: %s" % (missing, mtlib.tail(err, 40)))
    return result


def site_lines(rep, marks, kinds):
    """'function  .../gate_leaks.c:LINE' of each leak of the given kinds, as
    the failure lists them (innermost frame first)."""
    wanted = []
    for size, site in gatelib.sites_by_size(rep).items():
        if site["kind"] in kinds and size in marks:
            top = site["stack"][0]
            wanted.append(top["function"])
            wanted.append("%s:%d" % (os.path.basename(top["file"]), top["line"]))
    return wanted


def body(checker):
    ctx = checker.ctx
    leaky, marks = gatelib.record(checker, "leaky", "gate_leaks")
    clean, _ = gatelib.record(checker, "clean", "gate_clean")
    rep = gatelib.report_json(ctx, leaky)
    gatelib.check_kinds(checker, rep, marks, "gate_leaks")
    command = {"check": Check, "run": Run}[ctx.args.command](ctx, {"gate_leaks": leaky,
                                                                   "gate_clean": clean})
    ok, bad = command.pass_code, command.fail_code

    leaked, blocks = gatelib.gated(rep)
    peak = rep["totals"]["peak_bytes"]
    checker.check("the victim leaks gated bytes and blocks", leaked > 0 and blocks > 1,
                  "%d bytes in %d blocks" % (leaked, blocks))
    listed = site_lines(rep, marks, gatelib.GATED)

    # each gate: passes at its limit, fails one byte or block below it
    expect(checker, command, ["--max-leaked", str(leaked)], ok, "max-leaked at the limit")
    expect(checker, command, ["--max-leaked", str(leaked - 1)], bad, "max-leaked one byte over",
           listed=listed)
    expect(checker, command, ["--max-leaked-blocks", str(blocks)], ok, "max-leaked-blocks at the limit")
    expect(checker, command, ["--max-leaked-blocks", str(blocks - 1)], bad,
           "max-leaked-blocks one block over", listed=listed)
    expect(checker, command, ["--max-peak", str(peak)], ok, "max-peak at the limit")
    result = expect(checker, command, ["--max-peak", str(peak - 1)], bad, "max-peak one byte over")
    checker.check("max-peak: the failure names the gate and the stack of the largest block",
                  "over --max-peak" in result.stderr and "peak " in result.stderr and
                  "gate_leaks.c:" in result.stderr, mtlib.tail(result.stderr, 12))
    # every gate at its limit at once; one failing among passing ones
    expect(checker, command, ["--max-leaked", str(leaked), "--max-leaked-blocks", str(blocks),
                              "--max-peak", str(peak)], ok, "all three at their limits")
    expect(checker, command, ["--max-leaked", str(leaked), "--max-leaked-blocks", str(blocks - 1),
                              "--max-peak", str(peak)], bad, "one of three over")

    # --leak-kinds: what the leak gates count
    definite, _ = gatelib.gated(rep, ("definite",))
    checker.check("the victim has indirect leaks too", definite < leaked)
    expect(checker, command, ["--leak-kinds", "definite", "--max-leaked", str(definite)], ok,
           "leak-kinds definite at its limit")
    expect(checker, command, ["--leak-kinds", "definite", "--max-leaked", str(definite - 1)], bad,
           "leak-kinds definite one byte over")
    everything = rep["totals"]["in_use_bytes"]
    checker.check("the victim has reachable blocks too", everything > leaked)
    expect(checker, command, ["--leak-kinds", "all", "--max-leaked", str(everything)], ok,
           "leak-kinds all at its limit")
    expect(checker, command, ["--leak-kinds", "all", "--max-leaked", str(everything - 1)], bad,
           "leak-kinds all one byte over")

    # --error-exitcode; sizes with a unit
    expect(checker, command, ["--error-exitcode", "7", "--max-leaked", str(leaked - 1)], 7,
           "error-exitcode 7")
    checker.check("the peak lies between 64 KiB and 1 MiB", 65536 < peak <= 1 << 20, str(peak))
    expect(checker, command, ["--max-peak", "1M"], ok, "max-peak 1M")
    expect(checker, command, ["--max-peak", "64K"], bad, "max-peak 64K")

    # a victim that frees everything
    expect(checker, command, ["--max-leaked", "0", "--max-leaked-blocks", "0"], ok,
           "clean victim at zero", victim="gate_clean")

    if command.name != "check":
        return
    # check only: the default gate, several dumps, errors
    expect(checker, command, [], bad, "no gate option: --max-leaked 0")
    expect(checker, command, [], ok, "no gate option, clean victim", victim="gate_clean")
    both = gatelib.memtrace(ctx, ["check", "--max-leaked", "0", clean, leaky, clean], "check")
    checker.eq("three dumps, one leaky: exit 1", both.returncode, 1)
    checker.eq("three dumps, one leaky: one failure reported", both.stderr.count("gate failed"), 1)
    checker.check("three dumps: the failure names the leaky dump", leaky in both.stderr,
                  mtlib.tail(both.stderr))
    gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["check", "--max-leaked", "lots", leaky]),
                           "bad --max-leaked", 2, "--max-leaked takes a byte count")
    gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["check", "--leak-kinds", "lost", leaky]),
                           "bad --leak-kinds", 2, "--leak-kinds takes")
    gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["check", "--error-exitcode", "256",
                                                           leaky]),
                           "bad --error-exitcode", 2, "from 0 to 255")
    missing = os.path.join(ctx.workdir, "missing.mtr")
    gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["check", missing]), "missing dump", 2,
                           missing)
    gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["check"]), "no dump", 2,
                           "needs at least one dump")


def add_arguments(parser):
    parser.add_argument("--command", choices=("check", "run"), required=True)


if __name__ == "__main__":
    context = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(context, "gates." + context.args.command, body)
