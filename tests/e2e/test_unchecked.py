#!/usr/bin/env python3
"""A gate never passes what memtrace could not check (issue 17, point 5;
SPEC section 5): each case records a process that memtrace could not fully
check, for a true reason, and expects

- `memtrace check` with a leak gate to fail (status 1) with exactly one line
  for the process: "memtrace: pid P (PROG): not checked: REASON", REASON in
  the words of the case (never "did not end by exit" for a process that
  exited);
- `--accept-unchecked` to turn that line into a warning and pass;
- the same from `memtrace run`'s own gates (status 99), its summary saying
  "not checked:" with the reason;
- the JSON report to say "checked": false with the reason's code in
  "unchecked_reasons", and JUnit and SARIF (valid against the SARIF 2.1.0
  schema) to show a failure with the same words.

Cases (victim: tests/programs/unchecked.c, which leaks 4096 bytes and keeps
500 reachable before it ends, unless said otherwise):
  sigkill             raise(SIGKILL): not scanned (killed by signal 9)
  raw_exit            syscall(SYS_exit_group, 0): ended with status 0
                      without libc's exit
  truncated           a dump cut short, and a dump whose trace says a
                      thread found no ring (MT_REC_INCOMPLETE): every gate
                      fails, --max-peak included
  scan_no_memory      the victim limits its own address space (RLIMIT_AS,
                      80 MiB, as `prlimit --as` on memtrace run did before
                      the ASan build ran it), uses it up, and its scan
                      cannot run
  scan_not_served     the consumer alone under RLIMIT_AS (prlimit --pid) when
                      the victim exits: it cannot hand over the blocks, and
                      says so in the dump (MT_REC_INCOMPLETE)
  fork_child          a fork child killed by SIGKILL, another left by a raw
                      exit_group(3), each a zombie for 2 s: memtrace reads how
                      it ended from /proc (it is not memtrace's child)
  malformed_ring      the victim writes a record of no known type into its own
                      ring, then leaks: the consumer stops reading there, the
                      dump says so (MT_REC_INCOMPLETE), every gate fails
  leak_check_summary  run --leak-check summary: no scan asked for
  exec                an image replaced by exec is not unchecked, and no gate
                      counts its blocks (--leak-kinds all)
  nothing_in_use      a process that left nothing in use passes unscanned
"""
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import gatelib
import mtlib
import test_ci_reports

LEAKED = 4096 + 500  # the victim's blocks in use when it ends (2 blocks)
LINE = re.compile(r"^memtrace: pid (\d+) \((.*)\): not checked: (.*)$")


def record(checker, mode, options=(), wrapper=(), args=()):
    """Runs the victim under `memtrace run` (no gate); returns (result, dumps)."""
    ctx = checker.ctx
    out = ctx.subdir("record-" + mode + ("-" + options[-1] if options else ""))
    result = mtlib.memtrace_run(ctx, [ctx.prog("unchecked"), mode] + list(args),
                                os.path.join(out, "%n.%p.mtr"), options=options,
                                wrapper=wrapper, logdir=out, tag="run")
    return result, mtlib.dumps_in(out)


def check(ctx, options, dumps, tag="check"):
    return gatelib.memtrace(ctx, ["check"] + list(options) + list(dumps), tag)


def unchecked_lines(text):
    return [line for line in text.splitlines() if LINE.match(line)]


def expect_unchecked(checker, label, result, fragment, status=1, pid=None):
    """A failed gate with exactly one "not checked" line that says fragment."""
    lines = unchecked_lines(result.stderr)
    checker.eq("%s: exit status" % label, result.returncode, status)
    checker.eq("%s: one 'not checked' line" % label, len(lines), 1)
    text = lines[0] if lines else result.stderr[-600:]
    checker.check("%s: the line says %r" % (label, fragment), fragment in text, text)
    checker.check("%s: never 'did not end by exit'" % label,
                  "did not end by exit" not in result.stderr, result.stderr[-600:])
    if pid is not None and lines:
        checker.eq("%s: the line names the pid" % label, int(LINE.match(lines[0]).group(1)), pid)
    return text


def expect_accepted(checker, label, result, fragment):
    checker.eq("%s --accept-unchecked: passes" % label, result.returncode, 0)
    warn = [l for l in result.stderr.splitlines() if "warning (--accept-unchecked)" in l]
    checker.check("%s --accept-unchecked: a warning with the reason" % label,
                  len(warn) == 1 and fragment in warn[0], result.stderr[-600:])


def json_reasons(checker, dump):
    rep = gatelib.report_json(checker.ctx, dump, "--summary")
    return rep.get("checked"), [r["reason"] for r in rep.get("unchecked_reasons", [])], rep


def pid_of(dump):
    with open(dump, "rb"):
        pass
    return int(re.search(r"\.(\d+)\.mtr$", dump).group(1))


def leak_case(checker, mode, fragment, code, options=(), wrapper=(), args=(), run_status=None):
    """The common checks of a process that left blocks no scan classified."""
    ctx = checker.ctx
    result, dumps = record(checker, mode, options, wrapper, args)
    if run_status is not None:
        checker.eq("%s: memtrace run's status (the program's)" % mode,
                   mtlib.exit_code(result.returncode), run_status)
    if len(dumps) != 1:
        raise mtlib.TestError("%s: %d dumps, not 1: %s" % (mode, len(dumps), mtlib.tail(result.stderr)))
    dump = dumps[0]
    summary = [l for l in result.stderr.splitlines() if "not checked:" in l]
    checker.check("%s: run's summary says 'not checked' and why" % mode,
                  len(summary) == 1 and fragment in summary[0], mtlib.tail(result.stderr))
    expect_unchecked(checker, "%s: check --max-leaked 0" % mode,
                     check(ctx, ["--max-leaked", "0"], [dump]), fragment, pid=pid_of(dump))
    expect_unchecked(checker, "%s: check (default gate)" % mode, check(ctx, [], [dump]), fragment)
    expect_unchecked(checker, "%s: check --max-leaked-blocks 5" % mode,
                     check(ctx, ["--max-leaked-blocks", "5"], [dump]), fragment)
    expect_accepted(checker, "%s: check --max-leaked 0" % mode,
                    check(ctx, ["--max-leaked", "0", "--accept-unchecked"], [dump]), fragment)
    # --max-peak needs no scan
    peak = check(ctx, ["--max-peak", "1G"], [dump])
    checker.check("%s: check --max-peak 1G passes (no scan needed)" % mode,
                  peak.returncode == 0 and not unchecked_lines(peak.stderr), peak.stderr[-400:])
    # counting unknown judges the blocks: an upper bound on any leak
    kinds = ["--leak-kinds", "definite,indirect,unknown"]
    ok = check(ctx, kinds + ["--max-leaked", str(LEAKED)], [dump])
    checker.check("%s: --leak-kinds ...,unknown --max-leaked %d passes" % (mode, LEAKED),
                  ok.returncode == 0 and not unchecked_lines(ok.stderr), ok.stderr[-400:])
    over = check(ctx, kinds + ["--max-leaked", str(LEAKED - 1)], [dump])
    checker.check("%s: --leak-kinds ...,unknown --max-leaked %d fails on the count" % (mode, LEAKED - 1),
                  over.returncode == 1 and "gate failed" in over.stderr, over.stderr[-400:])
    checked, reasons, rep = json_reasons(checker, dump)
    checker.eq("%s: JSON checked" % mode, checked, False)
    checker.eq("%s: JSON unchecked_reasons" % mode, reasons, [code])
    if rep.get("unchecked_reasons"):
        r = rep["unchecked_reasons"][0]
        checker.eq("%s: JSON reason: gates, count" % mode, (r["gates"], r["count"]), ("leaks", 2))
        checker.check("%s: JSON message" % mode, fragment in r["message"], r["message"])
    return dump


def run_gate(checker, mode, fragment, options=(), args=()):
    """`memtrace run`'s own gate fails with the line; accepted, it passes."""
    ctx = checker.ctx
    out = ctx.subdir("run-gate-" + mode)
    argv = [ctx.prog("unchecked"), mode] + list(args)
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%p.mtr"), logdir=out, tag="gate",
                                options=list(options) + ["--max-leaked", "0"])
    expect_unchecked(checker, "%s: run --max-leaked 0" % mode, result, fragment, status=99)
    out = ctx.subdir("run-accept-" + mode)
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%p.mtr"), logdir=out, tag="accept",
                                options=list(options) + ["--max-leaked", "0", "--accept-unchecked"])
    checker.check("%s: run --accept-unchecked: the program's status, a warning" % mode,
                  mtlib.exit_code(result.returncode) != 99 and
                  "warning (--accept-unchecked)" in result.stderr, mtlib.tail(result.stderr))


def ci_files(checker, dump, fragment):
    """JUnit and SARIF: the unchecked process is a failure with the reason."""
    ctx = checker.ctx
    junit = os.path.join(ctx.workdir, "unchecked.xml")
    sarif = os.path.join(ctx.workdir, "unchecked.sarif")
    result = check(ctx, ["--max-leaked", "0", "--junit", junit, "--sarif", sarif], [dump])
    checker.eq("ci: check exits 1", result.returncode, 1)
    root = ET.parse(junit).getroot()
    failures = [c.find("failure") for c in root.iter("testcase") if c.find("failure") is not None]
    checker.eq("junit: one failure", (root.get("failures"), len(failures)), ("1", 1))
    if failures:
        checker.eq("junit: failure type", failures[0].get("type"), "memtrace.unchecked")
        checker.check("junit: the failure message has the reason",
                      fragment in failures[0].get("message", ""), failures[0].get("message"))
    with open(sarif) as f:
        log = json.load(f)
    validate = test_ci_reports.validator(test_ci_reports.sarif_schema(ctx.args.npm_dir))
    test_ci_reports.check_valid(checker, "unchecked sarif", validate, log)
    results = [r for r in log["runs"][0]["results"] if r["ruleId"] == "memtrace/unchecked"]
    checker.eq("sarif: one memtrace/unchecked result", len(results), 1)
    if results:
        checker.eq("sarif: level error", results[0]["level"], "error")
        checker.check("sarif: the message has the reason", fragment in results[0]["message"]["text"],
                      results[0]["message"]["text"])
    rules = [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]]
    if results:
        checker.eq("sarif: ruleIndex points at memtrace/unchecked",
                   rules[results[0]["ruleIndex"]], "memtrace/unchecked")


# ---------------------------------------------------------------- cases


def case_sigkill(checker):
    fragment = "it was not scanned for reachability (killed by signal 9): 4,596 bytes in 2 blocks"
    dump = leak_case(checker, "sigkill", fragment, "killed_by_signal", run_status=137)
    run_gate(checker, "sigkill", fragment)
    ci_files(checker, dump, fragment)


def case_raw_exit(checker):
    fragment = "it ended with status 0 without libc's exit: a raw exit_group system call"
    leak_case(checker, "raw-exit", fragment, "raw_exit", run_status=0)
    run_gate(checker, "raw-exit", fragment)


def write_dump(path, records):
    """A version 3 dump of the given decompressed records, compressed with
    the zstd command."""
    with open(path + ".raw", "wb") as f:
        f.write(records)
    out = subprocess.run(["zstd", "-q", "-c", path + ".raw"], capture_output=True)
    if out.returncode != 0:
        raise mtlib.TestError("zstd failed: %s" % out.stderr)
    with open(path, "wb") as f:
        f.write(b"MEMTRACE" + (3).to_bytes(4, "little") + (0).to_bytes(4, "little") + out.stdout)


def u(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def s(v):
    return u((v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1)


def string(text):
    data = text.encode()
    return u(len(data)) + data


def case_truncated(checker):
    ctx = checker.ctx
    if not shutil.which("zstd"):
        raise mtlib.TestError("the zstd command is missing (scripts/install-deps.sh)")
    result, dumps = record(checker, "exit-clean")
    if len(dumps) != 1:
        raise mtlib.TestError("exit-clean: %d dumps" % len(dumps))
    whole = dumps[0]
    ok = check(ctx, ["--max-leaked", "0", "--max-peak", "1G"], [whole])
    checker.eq("the whole dump passes", (ok.returncode, unchecked_lines(ok.stderr)), (0, []))
    with open(whole, "rb") as f:
        data = f.read()
    cut = os.path.join(ctx.workdir, "cut.mtr")
    with open(cut, "wb") as f:
        f.write(data[:-8])
    fragment = "its dump is cut short"
    expect_unchecked(checker, "cut short: check --max-peak 1G", check(ctx, ["--max-peak", "1G"], [cut]),
                     fragment)
    expect_unchecked(checker, "cut short: check --max-leaked 0",
                     check(ctx, ["--max-leaked", "0"], [cut]), fragment)
    expect_accepted(checker, "cut short", check(ctx, ["--max-peak", "1G", "--accept-unchecked"], [cut]),
                    fragment)
    checked, reasons, _ = json_reasons(checker, cut)
    checker.check("cut short: JSON checked false, reason truncated",
                  checked is False and "truncated" in reasons, str(reasons))
    # a trace the shim said is incomplete: 2 threads found no ring
    start = 10**9
    records = (bytes([1]) + u(4242) + u(1) + u(start) + u(5) + u(0) + u(1) + u(64) +
               string("/bin/prog") + u(1) + string("./prog") +
               bytes([20]) + s(100) + u(1) + u(2) +      # INCOMPLETE NO_RING, 2
               bytes([11]) + s(100) + u(1) + s(0) +      # EXIT status 0
               bytes([12]) + s(0))                       # END
    lost = os.path.join(ctx.workdir, "no-ring.mtr")
    write_dump(lost, records)
    fragment = "its trace is incomplete: 2 threads found no ring"
    text = expect_unchecked(checker, "no ring: check --max-peak 1G",
                            check(ctx, ["--max-peak", "1G"], [lost]), fragment, pid=4242)
    checker.check("no ring: the line names the program", "(./prog)" in text, text)
    expect_unchecked(checker, "no ring: check --max-leaked 0", check(ctx, ["--max-leaked", "0"], [lost]),
                     fragment)
    checked, reasons, rep = json_reasons(checker, lost)
    checker.eq("no ring: JSON", (checked, reasons), (False, ["no_ring"]))
    if rep.get("unchecked_reasons"):
        checker.eq("no ring: JSON gates, count",
                   (rep["unchecked_reasons"][0]["gates"], rep["unchecked_reasons"][0]["count"]),
                   ("all", 2))


def case_scan_no_memory(checker):
    fragment = "its reachability scan could not run in the process"
    ctx = checker.ctx
    result, dumps = record(checker, "exhaust", args=[str(80 << 20)])
    checker.eq("exhaust: the program exits 0", mtlib.exit_code(result.returncode), 0)
    if len(dumps) != 1:
        raise mtlib.TestError("exhaust: %d dumps: %s" % (len(dumps), mtlib.tail(result.stderr)))
    checker.check("exhaust: run's summary says why", fragment in result.stderr, mtlib.tail(result.stderr))
    rep = gatelib.report_json(ctx, dumps[0], "--summary")
    in_use = rep["totals"]["in_use_bytes"]
    checker.check("exhaust: tens of MiB in use", in_use > 16 << 20, str(in_use))
    expect_unchecked(checker, "exhaust: check --max-leaked 0", check(ctx, ["--max-leaked", "0"], dumps),
                     fragment)
    checker.eq("exhaust: JSON", (rep["checked"], [r["reason"] for r in rep["unchecked_reasons"]]),
               (False, ["scan_failed"]))


def case_scan_not_served(checker):
    if not shutil.which("prlimit"):
        raise mtlib.TestError("prlimit is missing (util-linux)")
    ctx = checker.ctx
    out = ctx.subdir("not-served")
    ready, go = os.path.join(out, "ready"), os.path.join(out, "go")
    argv = [ctx.memtrace, "run", "-o", os.path.join(out, "%p.mtr"), "--",
            ctx.prog("unchecked"), "wait", "200000", ready, go]
    # an ASan build of memtrace (scripts/test.sh's second pass) must fail
    # its malloc as glibc does, with NULL, not end the process: ASan's
    # default is to die of it
    env = dict(os.environ, ASAN_OPTIONS=":".join(
        o for o in (os.environ.get("ASAN_OPTIONS"), "allocator_may_return_null=1") if o))
    proc = mtlib.start(argv, env=env, stdout_path=os.path.join(out, "run.out"),
                       stderr_path=os.path.join(out, "run.err"))
    try:
        deadline = time.time() + 60
        while not os.path.exists(ready) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if not os.path.exists(ready):
            raise mtlib.TestError("the victim never got ready: %s"
                                  % mtlib.tail(mtlib.read_text(os.path.join(out, "run.err"))))
        # the consumer (memtrace run itself) has drained the blocks when its
        # size stops growing; then it may grow by 3 MiB, no more: the
        # 200,000 blocks it must hand over need 4.8 MB (and 3.4 MB shared),
        # and an ASan build's own bookkeeping needs more than 1 MiB of the
        # rest (it failed to map 8 KiB with 1 MiB)
        sizes = []
        while len(sizes) < 4 or len(set(sizes[-4:])) > 1:
            time.sleep(0.1)
            with open("/proc/%d/status" % proc.pid) as f:
                sizes.append(int(re.search(r"^VmSize:\s+(\d+) kB", f.read(), re.M).group(1)))
            if len(sizes) > 100:
                raise mtlib.TestError("the consumer's size never settled: %s" % sizes[-5:])
        limit = (sizes[-1] + 3 * 1024) * 1024
        subprocess.run(["prlimit", "--pid", str(proc.pid), "--as=%d" % limit], check=True)
        open(go, "w").close()
        proc.wait(timeout=90)
    except BaseException:
        mtlib.kill_group(proc)
        raise
    dumps = mtlib.dumps_in(out)
    stderr = mtlib.read_text(os.path.join(out, "run.err"))
    fragment = "memtrace could not hand it its blocks to scan: Cannot allocate memory"
    checker.check("not served: run's summary says why", fragment in stderr, mtlib.tail(stderr))
    if len(dumps) != 1:
        raise mtlib.TestError("not served: %d dumps: %s" % (len(dumps), mtlib.tail(stderr)))
    expect_unchecked(checker, "not served: check --max-leaked 0",
                     check(ctx, ["--max-leaked", "0"], dumps), fragment)
    checked, reasons, _ = json_reasons(checker, dumps[0])
    checker.eq("not served: JSON", (checked, reasons), (False, ["scan_not_served"]))
    dump_out = gatelib.memtrace(ctx, ["__dump", dumps[0]], "dump")
    checker.check("not served: the dump holds an INCOMPLETE record (type 20)",
                  "type=20" in dump_out.stdout or "incomplete" in dump_out.stdout.lower(),
                  dump_out.stdout[-300:])


def case_fork_child(checker):
    ctx = checker.ctx
    for mode, fragment, code, exit in (
            ("fork-sigkill", "it was not scanned for reachability (killed by signal 9): "
             "4,596 bytes in 2 blocks", "killed_by_signal", {"status": None, "signal": 9}),
            ("fork-raw-exit", "it ended with status 3 without libc's exit: a raw exit_group",
             "raw_exit", {"status": 3, "signal": None})):
        result, dumps = record(checker, mode)
        checker.eq("%s: run exits 0" % mode, mtlib.exit_code(result.returncode), 0)
        if len(dumps) != 2:
            raise mtlib.TestError("%s: %d dumps, not 2: %s" % (mode, len(dumps), mtlib.tail(result.stderr)))
        reps = {d: gatelib.report_json(ctx, d, "--summary") for d in dumps}
        children = [d for d in dumps if reps[d]["totals"]["in_use_blocks"]]
        checker.eq("%s: one dump with blocks in use (the child's)" % mode, len(children), 1)
        if not children:
            continue
        child = children[0]
        checker.eq("%s: the child's exit, read from /proc" % mode, reps[child]["process"]["exit"], exit)
        checker.eq("%s: JSON reasons" % mode,
                   [r["reason"] for r in reps[child]["unchecked_reasons"]], [code])
        expect_unchecked(checker, "%s: check --max-leaked 0" % mode,
                         check(ctx, ["--max-leaked", "0"], dumps), fragment)


def case_malformed_ring(checker):
    ctx = checker.ctx
    result, dumps = record(checker, "corrupt-ring")
    checker.eq("corrupt-ring: the victim found its ring and exited 0",
               mtlib.exit_code(result.returncode), 0)
    if len(dumps) != 1:
        raise mtlib.TestError("corrupt-ring: %d dumps: %s" % (len(dumps), mtlib.tail(result.stderr)))
    fragment = "its trace is incomplete: a ring held a malformed record: the events after it were lost"
    checker.check("corrupt-ring: run's summary says why", fragment in result.stderr,
                  mtlib.tail(result.stderr))
    for options in (["--max-leaked", "0"], ["--max-peak", "1G"],
                    ["--leak-kinds", "all", "--max-leaked-blocks", "0"]):
        expect_unchecked(checker, "corrupt-ring: check %s" % " ".join(options),
                         check(ctx, options, dumps), fragment)
    expect_accepted(checker, "corrupt-ring", check(ctx, ["--max-peak", "1G", "--accept-unchecked"],
                                                   dumps), fragment)
    checked, reasons, _ = json_reasons(checker, dumps[0])
    checker.eq("corrupt-ring: JSON", (checked, reasons), (False, ["malformed_ring"]))


def case_leak_check_summary(checker):
    fragment = "it was not scanned for reachability (--leak-check summary was asked for)"
    leak_case(checker, "exit", fragment, "scan_not_asked", options=["--leak-check", "summary"],
              run_status=0)
    run_gate(checker, "exit", fragment, options=["--leak-check", "summary"])


def case_exec(checker):
    ctx = checker.ctx
    result, dumps = record(checker, "exec", args=[ctx.prog("unchecked")])
    if len(dumps) != 2:
        raise mtlib.TestError("exec: %d dumps, not 2: %s" % (len(dumps), mtlib.tail(result.stderr)))
    reps = [gatelib.report_json(ctx, d, "--summary") for d in dumps]
    old = [d for d, r in zip(dumps, reps) if r["process"]["command"][1:2] == ["exec"]]
    checker.eq("exec: one dump of the image replaced by exec", len(old), 1)
    for d, r in zip(dumps, reps):
        checker.check("exec: %s is checked (JSON)" % os.path.basename(d),
                      r["checked"] is True and r["unchecked_reasons"] == [], str(r["unchecked_reasons"]))
    if old:
        rep = gatelib.report_json(ctx, old[0])
        checker.eq("exec: the replaced image left its blocks (kind unknown)",
                   rep["leaks"]["by_kind"]["unknown"]["bytes"], LEAKED)
    for options in (["--max-leaked", "0"], ["--leak-kinds", "all", "--max-leaked", "0"],
                    ["--leak-kinds", "unknown", "--max-leaked-blocks", "0"]):
        result = check(ctx, options, dumps)
        checker.check("exec: check %s passes: no gate counts the replaced image's blocks"
                      % " ".join(options), result.returncode == 0 and not unchecked_lines(result.stderr),
                      result.stderr[-400:])


def case_nothing_in_use(checker):
    ctx = checker.ctx
    for mode in ("raw-exit-clean", "exit-clean"):
        result, dumps = record(checker, mode)
        if len(dumps) != 1:
            raise mtlib.TestError("%s: %d dumps" % (mode, len(dumps)))
        rep = gatelib.report_json(ctx, dumps[0], "--summary")
        checker.eq("%s: nothing in use" % mode, rep["totals"]["in_use_blocks"], 0)
        checker.eq("%s: checked" % mode, rep["checked"], True)
        result = check(ctx, ["--max-leaked", "0", "--max-peak", "1G"], dumps)
        checker.check("%s: check passes" % mode,
                      result.returncode == 0 and not unchecked_lines(result.stderr), result.stderr)


CASES = {"sigkill": case_sigkill, "raw_exit": case_raw_exit, "truncated": case_truncated,
         "scan_no_memory": case_scan_no_memory, "scan_not_served": case_scan_not_served,
         "leak_check_summary": case_leak_check_summary, "fork_child": case_fork_child,
         "malformed_ring": case_malformed_ring, "exec": case_exec,
         "nothing_in_use": case_nothing_in_use}


def add_arguments(parser):
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--npm-dir", required=True, help="where the SARIF schema is fetched to")


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(ctx, "unchecked." + ctx.args.case, CASES[ctx.args.case])
