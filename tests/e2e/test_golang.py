#!/usr/bin/env python3
"""A Go program with cgo is scanned at its raw exit_group (issue 17 point 4):
Go's runtime ends the process from runtime.exit, never libc's exit, and
memtrace scans it there (preload/go_exit.c), taking as roots only what the
program holds: the live part of each thread's g0 and goroutine stacks.

The victim, tests/programs/goleak.go, is built here with `go build` (cgo,
GOCACHE and GOPATH under the work directories, no network). The expected
figures come from the program's own construction (it knows what it leaked;
see its header), and memcheck is run once a case to say the same: valgrind
3.19 runs Go 1.19 binaries only with GODEBUG=cpu.rdtscp=off (it does not
decode RDTSCP, which Go's runtime uses when the CPU has it), as in the field
test:

  definite   24,183 bytes in 13 blocks (dropped by Go, by C, by goroutines on
             other threads, a chain's head)
  indirect      144 bytes in 3 blocks (the chain's nodes)
  reachable   1,555 bytes in 4 blocks (a C global, a Go global, a live C frame
             of a thread sleeping in C)
  possible   Go's threads' dtv blocks only (288 bytes each, as memcheck says)

Cases:
  return    main returns (status 0); RUNS runs, each classified exactly; the
            gate --max-leaked 0 fails, a gate at the definite+indirect bytes
            passes with the program's status, one byte less fails
  exit3     the same, ended by os.Exit(3): status 3 kept
  (both: memcheck's LEAK SUMMARY is the construction's too)
  (both: the offsets of Go's runtime structures that go_exit.c uses equal
  those in the victim's DWARF, read by readelf)
  busy      tests/programs/gobusy.go, GOMAXPROCS=4: threads in C, in Go
            and in Go's scheduler when it returns or panics (status 2): always
            scanned (never refused), its 4 leaks definite or reachable (a
            register copy that Go's preemption saved is a live root, for
            memcheck too), status and panic message kept
  stripped  built with -ldflags=-s (no symbol table: runtime.exit cannot be
            found): not scanned, and every gate fails saying why (the raw
            exit_group), as before this change

usage: test_golang.py ... --source tests/programs/goleak.go --case CASE
"""
import os
import re
import subprocess

import mtlib

RUNS = 10
DEFINITE = (24183, 13)
INDIRECT = (144, 3)
REACHABLE = (1555, 4)
DTV = 288
LOST = DEFINITE[0] + INDIRECT[0]
ENV = dict(os.environ, GOMAXPROCS="2")


def add_arguments(parser):
    parser.add_argument("--source", required=True, help="tests/programs/goleak.go")
    parser.add_argument("--busy-source", help="tests/programs/gobusy.go (case busy)")
    parser.add_argument("--case", required=True, choices=("return", "exit3", "stripped", "busy"))


def go_build(ctx, stripped, source=None):
    """Builds goleak (or source) in the work directory; returns its path."""
    source = source or ctx.args.source
    out = os.path.join(ctx.workdir, os.path.splitext(os.path.basename(source))[0])
    cache = os.path.join(os.path.dirname(ctx.workdir), "golang-gocache")
    env = dict(os.environ, GOCACHE=cache, GOPATH=os.path.join(cache, "gopath"),
               GO111MODULE="off", CGO_ENABLED="1", GOFLAGS="")
    argv = ["go", "build", "-o", out] + (["-ldflags=-s -w"] if stripped else []) + [os.path.abspath(source)]
    try:
        r = subprocess.run(argv, cwd=ctx.workdir, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=240)
    except OSError as error:
        raise mtlib.TestError("go build: %s" % error)
    if r.returncode != 0:
        raise mtlib.TestError("go build failed: %s" % r.stdout.decode("utf-8", "replace")[-2000:])
    return out


def dwarf_offsets(prog):
    """{(struct, member): offset} of Go's runtime structures that
    preload/go_exit.c reads, from the victim's DWARF (readelf)."""
    r = subprocess.run(["readelf", "--debug-dump=info", prog], capture_output=True, text=True,
                       timeout=240)
    if r.returncode != 0:
        raise mtlib.TestError("readelf --debug-dump=info failed: " + r.stderr[-500:])
    wanted = {"runtime.g", "runtime.m", "runtime.gobuf", "runtime.stack"}
    offsets, struct, member, level = {}, None, None, 0
    for line in r.stdout.splitlines():
        m = re.match(r"\s*<(\d+)><[0-9a-f]+>: Abbrev Number: \d+ \((\w+)\)", line)
        if m:
            level, tag = int(m.group(1)), m.group(2)
            if level == 1:
                struct = "pending" if tag == "DW_TAG_structure_type" else None
            member = None
            continue
        m = re.match(r"\s*<[0-9a-f]+>\s+DW_AT_name\s*: (\S+)", line)
        if m:
            if level == 1 and struct == "pending":
                struct = m.group(1) if m.group(1) in wanted else None
            elif level == 2 and struct:
                member = m.group(1)
            continue
        m = re.match(r"\s*<[0-9a-f]+>\s+DW_AT_data_member_location: (\d+)", line)
        if m and level == 2 and struct and member:
            offsets.setdefault((struct, member), int(m.group(1)))
    return offsets


def check_offsets(checker, prog):
    """The offsets go_exit.c uses (its #defines) are those of this Go."""
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "preload",
                          "go_exit.c")
    defines = dict((name, int(value)) for name, value in
                   re.findall(r"^#define (G_\w+|M_\w+) (\d+)", mtlib.read_text(source), re.M))
    d = dwarf_offsets(prog)
    stack, sched = d.get(("runtime.g", "stack")), d.get(("runtime.g", "sched"))
    want = {
        "G_STACK_LO": None if stack is None else stack + d.get(("runtime.stack", "lo"), -999),
        "G_STACK_HI": None if stack is None else stack + d.get(("runtime.stack", "hi"), -999),
        "G_M": d.get(("runtime.g", "m")),
        "G_SCHED_SP": None if sched is None else sched + d.get(("runtime.gobuf", "sp"), -999),
        "G_SCHED_G": None if sched is None else sched + d.get(("runtime.gobuf", "g"), -999),
        "G_SCHED_PC": None if sched is None else sched + d.get(("runtime.gobuf", "pc"), -999),
        "M_G0": d.get(("runtime.m", "g0")),
    }
    for name, offset in want.items():
        checker.eq("go_exit.c's %s is the DWARF offset of this Go's runtime" % name,
                   defines.get(name), offset)


def gate(ctx, dump, limit):
    """`memtrace check --max-leaked limit DUMP`: (status, stderr)."""
    r = subprocess.run([ctx.memtrace, "check", "--max-leaked", str(limit), dump],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr


def scanned_case(checker, mode, status):
    ctx = checker.ctx
    prog = go_build(ctx, stripped=False)
    check_offsets(checker, prog)
    mtlib.need_valgrind()
    vg = mtlib.valgrind_run([prog, mode], logdir=ctx.workdir, tag="vg-" + mode,
                            options=["--leak-check=full"], timeout=280,
                            env=dict(ENV, GODEBUG="cpu.rdtscp=off"))
    want = mtlib.valgrind_leak_kinds(vg.log)
    checker.eq("%s: valgrind exits with the program's status" % mode,
               mtlib.exit_code(vg.returncode), status)
    for kind, figure in (("definite", DEFINITE), ("indirect", INDIRECT), ("reachable", REACHABLE)):
        checker.eq("%s: memcheck's %s is the construction's" % (mode, kind), want[kind], figure)
    checker.check("%s: memcheck's possible is dtv blocks only" % mode,
                  want["possible"][0] == DTV * want["possible"][1], repr(want["possible"]))
    for run in range(RUNS):
        label = "%s run %d" % (mode, run + 1)
        dump = os.path.join(ctx.workdir, "%s-%d.mtr" % (mode, run))
        result = mtlib.memtrace_run(ctx, [prog, mode], dump, options=["--max-leaked", "0"],
                                    env=ENV, logdir=ctx.workdir, tag="mt-%s-%d" % (mode, run))
        checker.eq("%s: the gate --max-leaked 0 fails (99)" % label,
                   mtlib.exit_code(result.returncode), 99)
        checker.check("%s: no 'cannot scan' on memtrace's stderr" % label,
                      "cannot scan" not in result.stderr, mtlib.tail(result.stderr))
        rep, got = mtlib.memtrace_leak_kinds(ctx, dump)
        mtlib.check_exit(checker, rep, label, status=status)
        checker.check("%s: scanned" % label, rep["leaks"]["scanned"] is True)
        checker.eq("%s: no block left unknown" % label, got["unknown"], (0, 0))
        checker.eq("%s: definite (bytes, blocks)" % label, got["definite"], DEFINITE)
        checker.eq("%s: indirect (bytes, blocks)" % label, got["indirect"], INDIRECT)
        checker.eq("%s: reachable (bytes, blocks)" % label, got["reachable"], REACHABLE)
        possible = got["possible"]
        checker.check("%s: possible is Go's threads' dtv blocks only (%d bytes each)" % (label, DTV),
                      possible[0] == DTV * possible[1], repr(possible))
    status_lost, _ = gate(ctx, dump, LOST)
    checker.eq("%s: check --max-leaked %d (definite+indirect) passes" % (mode, LOST), status_lost, 0)
    status_less, err = gate(ctx, dump, LOST - 1)
    checker.eq("%s: check --max-leaked %d fails" % (mode, LOST - 1), status_less, 1)
    dump = os.path.join(ctx.workdir, "%s-gate.mtr" % mode)
    result = mtlib.memtrace_run(ctx, [prog, mode], dump, options=["--max-leaked", str(LOST)],
                                env=ENV, logdir=ctx.workdir, tag="mt-%s-gate" % mode)
    checker.eq("%s: run --max-leaked %d passes with the program's status" % (mode, LOST),
               mtlib.exit_code(result.returncode), status)


def stripped_case(checker):
    ctx = checker.ctx
    prog = go_build(ctx, stripped=True)
    dump = os.path.join(ctx.workdir, "stripped.mtr")
    result = mtlib.memtrace_run(ctx, [prog, "return"], dump, options=["--max-leaked", "0"],
                                env=ENV, logdir=ctx.workdir, tag="mt-stripped")
    checker.eq("stripped: the gate fails (99)", mtlib.exit_code(result.returncode), 99)
    checker.check("stripped: memtrace says it cannot find runtime.exit",
                  "without runtime.exit in its symbol table" in result.stderr,
                  mtlib.tail(result.stderr))
    fragment = "it ended with status 0 without libc's exit: a raw exit_group system call"
    checker.check("stripped: the gate says why (a raw exit_group)", fragment in result.stderr,
                  mtlib.tail(result.stderr))
    rep, got = mtlib.memtrace_leak_kinds(ctx, dump)
    checker.check("stripped: not scanned", rep["leaks"]["scanned"] is not True)
    checker.eq("stripped: every block unknown, none classified",
               (got["definite"], got["reachable"]), ((0, 0), (0, 0)))
    status, err = gate(ctx, dump, 10 ** 9)
    checker.eq("stripped: check fails whatever the limit", status, 1)


BUSY_LEAKS = (20006, 4)
BUSY_RUNS = 6


def busy_case(checker):
    ctx = checker.ctx
    if not ctx.args.busy_source:
        raise mtlib.TestError("--busy-source is needed")
    prog = go_build(ctx, stripped=False, source=ctx.args.busy_source)
    env = dict(os.environ, GOMAXPROCS="4")
    for run in range(BUSY_RUNS):
        mode = ("return", "panic")[run % 2]
        status = 0 if mode == "return" else 2
        label = "busy %s run %d" % (mode, run + 1)
        dump = os.path.join(ctx.workdir, "busy-%d.mtr" % run)
        result = mtlib.memtrace_run(ctx, [prog, mode], dump, env=env, logdir=ctx.workdir,
                                    tag="mt-busy-%d" % run)
        checker.eq("%s: exits with the program's status" % label,
                   mtlib.exit_code(result.returncode), status)
        if mode == "panic":
            checker.check("%s: Go's panic message on the program's stderr" % label,
                          "panic: boom" in result.stderr, mtlib.tail(result.stderr))
        checker.check("%s: no 'cannot scan' on memtrace's stderr" % label,
                      "cannot scan" not in result.stderr, mtlib.tail(result.stderr))
        rep, got = mtlib.memtrace_leak_kinds(ctx, dump)
        mtlib.check_exit(checker, rep, label, status=status)
        checker.check("%s: scanned" % label, rep["leaks"]["scanned"] is True)
        checker.eq("%s: no block left unknown" % label, got["unknown"], (0, 0))
        checker.eq("%s: nothing indirect" % label, got["indirect"], (0, 0))
        both = (got["definite"][0] + got["reachable"][0], got["definite"][1] + got["reachable"][1])
        checker.eq("%s: the 4 leaks are definite or reachable (bytes, blocks)" % label, both,
                   BUSY_LEAKS)
        possible = got["possible"]
        checker.check("%s: possible is Go's threads' dtv blocks only (%d bytes each)" % (label, DTV),
                      possible[0] == DTV * possible[1], repr(possible))


def body(checker):
    case = checker.ctx.args.case
    if case == "busy":
        busy_case(checker)
    elif case == "stripped":
        stripped_case(checker)
    else:
        scanned_case(checker, case, 0 if case == "return" else 3)


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(ctx, "golang." + ctx.args.case, body)
