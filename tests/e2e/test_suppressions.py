#!/usr/bin/env python3
"""Suppression files (issue 4, acceptance 4), one case per --case:

lsan      tests/e2e/fixtures/gate_lsan.supp (LeakSanitizer's format) hides
          exactly the leaks it names: `memtrace report --suppressions` moves
          them to leaks.suppressed, with the bytes, blocks and sites of each
          suppression; `memtrace check` leaves them out of the gates and
          prints what each matched. LeakSanitizer itself, given the same file
          on the same victim built with -fsanitize=leak, suppresses the same
          leaks with the same counts.
valgrind  the same with fixtures/gate_valgrind.supp (memcheck's format, with
          entries for other errors and tools that must be ignored), against
          valgrind itself: the same suppressions used, with the same blocks,
          and the same total.
cxx       fixtures/gate_cxx.supp: C++ leaks through operator new and new[],
          mangled names (memtrace's stacks hold them demangled), vs valgrind.
combined  several files at once (the first match wins) and one file mixing
          both formats, demangled names and src:FILE:LINE lines.
generate  --gen-suppressions=valgrind|lsan prints an entry per leak reported;
          fed back as a suppression file, it suppresses all of them (and
          valgrind, given the generated valgrind file, suppresses them too).
errors    a file with a syntax error is refused with one line naming the file
          and the line, by check (exit 2) and by report (exit 1).

Expected matches are written down per fixture as the victims' leak sizes
(every size is distinct); the counts come from the unsuppressed report.
"""
import os
import re

import gatelib
import mtlib

ALL_KINDS = ("definite", "indirect", "possible", "reachable", "unknown")

# suppression name (as memtrace reports it) -> sizes of the leaks it takes
LSAN_EXPECTED = {
    "leak:leak_plain": [1000],
    "leak:calloc": [300],
    "leak:gate_child.c": [36],
    "leak:^leak_tree$": [64],
    "leak:^helper": [],
    "leak:caller_t$": [],
    "leak:^no_such_function$": [],
}
VALGRIND_EXPECTED = {
    "helper called from caller_one": [200],
    "helper called from caller_two, if it were reachable (it is not)": [],
    "realloc, anywhere under main": [700],
    "the lost tree, root and child, through wildcards and the module": [64, 36],
    "the block a global still points to": [5000],
}
CXX_EXPECTED = {
    "Widget::make, mangled": [48],
    "make_array(int), mangled": [120],
}


def fixture(ctx, name):
    return os.path.join(ctx.args.fixtures, name)


def expected_counts(rep, expected, kinds):
    """{name: (bytes, blocks, sites)} that each suppression must match, from
    the unsuppressed report's sites of the given kinds."""
    sites = gatelib.sites_by_size(rep)
    counts = {}
    for name, sizes in expected.items():
        taken = [sites[s] for s in sizes if s in sites and sites[s]["kind"] in kinds]
        counts[name] = (sum(s["bytes"] for s in taken), sum(s["blocks"] for s in taken), len(taken))
    return counts


def check_report(checker, label, dump, files, expected):
    """`memtrace report --format json --suppressions F...`: the suppressed
    leaks leave leaks.sites for leaks.suppressed, named; by_suppression has
    every suppression in file order with what it matched (every kind)."""
    ctx = checker.ctx
    plain = gatelib.report_json(ctx, dump)
    options = []
    for f in files:
        options += ["--suppressions", f]
    rep = gatelib.report_json(ctx, dump, *options)
    supp = rep["leaks"].get("suppressed")
    if not checker.check("%s: report has leaks.suppressed" % label, isinstance(supp, dict)):
        return plain, rep
    taken = {size: name for name, sizes in expected.items() for size in sizes}
    before = gatelib.sites_by_size(plain)
    kept = gatelib.sites_by_size(rep)
    gone = gatelib.sites_by_size(rep, "suppressed")
    checker.eq("%s: leak sizes left in leaks.sites" % label, sorted(kept),
               sorted(s for s in before if s not in taken))
    checker.eq("%s: suppressed sites (size: suppression)" % label,
               {s: site.get("suppression") for s, site in gone.items()},
               {s: name for s, name in taken.items() if s in before})
    checker.eq("%s: every leak is in one of the two lists" % label,
               sum(s["blocks"] for s in rep["leaks"]["sites"] + supp["sites"]),
               rep["totals"]["in_use_blocks"])
    got = {b["name"]: (b["bytes"], b["blocks"], b["sites"]) for b in supp["by_suppression"]}
    checker.eq("%s: by_suppression (bytes, blocks, sites) over every kind" % label, got,
               expected_counts(plain, expected, ALL_KINDS))
    return plain, rep


SUPPRESSED_LINE = re.compile(r"^  ([\d,]+) bytes in ([\d,]+) blocks?: (.*) \((.*):(\d+)\)$")


def check_gate(checker, label, dump, files, expected, plain):
    """`memtrace check --suppressions F...`: what is suppressed is not gated
    (pass at the rest, fail one byte below), and each suppression that
    matched a gated leak is printed with its bytes and blocks."""
    ctx = checker.ctx
    counts = expected_counts(plain, expected, gatelib.GATED)
    leaked, _ = gatelib.gated(plain)
    rest = leaked - sum(c[0] for c in counts.values())
    options = []
    for f in files:
        options += ["--suppressions", f]
    result = gatelib.memtrace(ctx, ["check"] + options + ["--max-leaked", str(rest), dump])
    checker.check("%s: check passes at the unsuppressed bytes (%d)" % (label, rest),
                  result.returncode == 0, mtlib.tail(result.stderr, 12))
    printed = {}
    for line in result.stderr.splitlines():
        m = SUPPRESSED_LINE.match(line)
        if m:
            printed[m.group(3)] = (mtlib.number(m.group(1)), mtlib.number(m.group(2)))
    checker.eq("%s: check prints each suppression that matched a gated leak" % label, printed,
               {n: c[:2] for n, c in counts.items() if c[1]})
    if rest > 0:  # else everything gated is suppressed: nothing can fail
        result = gatelib.memtrace(ctx, ["check"] + options + ["--max-leaked", str(rest - 1), dump])
        checker.check("%s: check fails one byte below" % label, result.returncode == 1,
                      "exit %d" % result.returncode)
    return counts


VG_USED = re.compile(r"used_suppression:\s+(\d+) (.*) (\S+):(\d+) suppressed: ([\d,]+) bytes in "
                     r"([\d,]+) blocks?")
VG_TOTAL = re.compile(r"==\d+==\s+suppressed: ([\d,]+) bytes in ([\d,]+) blocks?")


def check_against_valgrind(checker, label, prog, supp, rep):
    """valgrind memcheck with the same file on the same victim: the same
    suppressions used, each with the same blocks, and the same total bytes
    and blocks suppressed (valgrind's per-suppression bytes count a lost
    block's indirect blocks again, so they are not compared)."""
    ctx = checker.ctx
    mtlib.need_valgrind()
    out = ctx.subdir("valgrind-" + label)
    result = mtlib.valgrind_run([ctx.prog(prog)], logdir=out, tag="vg",
                                options=["--leak-check=full", "-v", "--suppressions=" + supp])
    log = mtlib.read_text(result.log)
    used = {m.group(2): mtlib.number(m.group(6)) for m in VG_USED.finditer(log)}
    totals = VG_TOTAL.findall(log)
    by = rep["leaks"]["suppressed"]["by_suppression"]
    checker.eq("%s: valgrind uses the same suppressions, with the same blocks" % label, used,
               {b["name"]: b["blocks"] for b in by if b["blocks"]})
    want = (sum(b["bytes"] for b in by), sum(b["blocks"] for b in by))
    checker.check("%s: valgrind suppresses the same bytes and blocks in all" % label,
                  len(totals) == 1 and tuple(mtlib.number(x) for x in totals[0]) == want,
                  "valgrind %s, memtrace %s" % (totals, want))


LSAN_USED = re.compile(r"^\s+(\d+)\s+(\d+) (.+)$")


def check_against_lsan(checker, supp, counts):
    """LeakSanitizer with the same file on the victim built with
    -fsanitize=leak: its "Suppressions used" table (count, bytes, template)
    equals what memtrace's check matched of the gated kinds, LeakSanitizer's
    direct and indirect leaks."""
    ctx = checker.ctx
    out = ctx.subdir("lsan")
    env = dict(os.environ, LSAN_OPTIONS="suppressions=%s:print_suppressions=1:exitcode=23" % supp)
    result = mtlib.run([ctx.prog("gate_leaks_lsan")], env=env, cwd=out,
                       stdout_path=os.path.join(out, "out"), stderr_path=os.path.join(out, "err"))
    err = result.stderr
    checker.check("lsan: the victim under LeakSanitizer reports its other leaks (exit 23)",
                  result.returncode == 23, "exit %d: %s" % (result.returncode, mtlib.tail(err)))
    table = err.split("Suppressions used:", 1)[-1] if "Suppressions used:" in err else ""
    used = {}
    for line in table.splitlines()[2:]:
        m = LSAN_USED.match(line)
        if not m:
            break
        used["leak:" + m.group(3)] = (int(m.group(2)), int(m.group(1)))
    checker.eq("lsan: LeakSanitizer's suppressions used (bytes, count) = memtrace's",
               used, {n: c[:2] for n, c in counts.items() if c[1]})


def case_lsan(checker):
    dump, marks = gatelib.record(checker, "leaks", "gate_leaks")
    supp = fixture(checker.ctx, "gate_lsan.supp")
    plain, _ = check_report(checker, "lsan", dump, [supp], LSAN_EXPECTED)
    gatelib.check_kinds(checker, plain, marks, "gate_leaks")
    counts = check_gate(checker, "lsan", dump, [supp], LSAN_EXPECTED, plain)
    check_against_lsan(checker, supp, counts)


def case_valgrind(checker):
    dump, marks = gatelib.record(checker, "leaks", "gate_leaks")
    supp = fixture(checker.ctx, "gate_valgrind.supp")
    plain, rep = check_report(checker, "valgrind", dump, [supp], VALGRIND_EXPECTED)
    gatelib.check_kinds(checker, plain, marks, "gate_leaks")
    check_gate(checker, "valgrind", dump, [supp], VALGRIND_EXPECTED, plain)
    check_against_valgrind(checker, "valgrind", "gate_leaks", supp, rep)


def case_cxx(checker):
    dump, marks = gatelib.record(checker, "cxx", "gate_leaks_cxx")
    supp = fixture(checker.ctx, "gate_cxx.supp")
    plain, rep = check_report(checker, "cxx", dump, [supp], CXX_EXPECTED)
    gatelib.check_kinds(checker, plain, marks, "gate_leaks_cxx")
    check_gate(checker, "cxx", dump, [supp], CXX_EXPECTED, plain)
    check_against_valgrind(checker, "cxx", "gate_leaks_cxx", supp, rep)


def case_combined(checker):
    ctx = checker.ctx
    # two files: the first suppression that matches a leak takes it
    dump, _ = gatelib.record(checker, "leaks", "gate_leaks")
    files = [fixture(ctx, "gate_lsan.supp"), fixture(ctx, "gate_valgrind.supp")]
    expected = {name: list(sizes) for name, sizes in LSAN_EXPECTED.items()}
    taken = {s for sizes in LSAN_EXPECTED.values() for s in sizes}
    for name, sizes in VALGRIND_EXPECTED.items():
        expected[name] = [s for s in sizes if s not in taken]
    plain, _ = check_report(checker, "two files", dump, files, expected)
    check_gate(checker, "two files", dump, files, expected, plain)

    # one file, both formats, and what memtrace takes beyond valgrind:
    # demangled names and src:FILE:LINE
    dump, marks = gatelib.record(checker, "cxx", "gate_leaks_cxx")
    widget, array = marks[48].line, marks[120].line
    mixed = os.path.join(ctx.workdir, "mixed.supp")
    with open(mixed, "w") as f:
        f.write("# both formats in one file\n"
                "leak:^no_match_here$\n"
                "{\n   one line above the allocation: no match\n   Memcheck:Leak\n"
                "   fun:*\n   src:gate_leaks_cxx.cc:%d\n}\n"
                "{\n   Widget::make, demangled\n   Memcheck:Leak\n"
                "   fun:operator new(unsigned long)\n   fun:Widget::make()\n}\n"
                "{\n   make_array by its source line\n   Memcheck:Leak\n"
                "   fun:*\n   src:gate_leaks_cxx.cc:%d\n   ...\n   fun:main\n}\n"
                % (widget - 1, array))
    expected = {"leak:^no_match_here$": [], "one line above the allocation: no match": [],
                "Widget::make, demangled": [48], "make_array by its source line": [120]}
    plain, _ = check_report(checker, "mixed file", dump, [mixed], expected)
    check_gate(checker, "mixed file", dump, [mixed], expected, plain)


def generated(checker, dump, style, label):
    """--gen-suppressions=style on dump: the entries, written to a file."""
    ctx = checker.ctx
    result = gatelib.memtrace(ctx, ["check", "--gen-suppressions=" + style, dump], "gen")
    path = os.path.join(ctx.workdir, "%s.%s.supp" % (label, style))
    with open(path, "w") as f:
        f.write(result.stdout)
    return result, path


def case_generate(checker):
    ctx = checker.ctx
    for victim in ("gate_leaks", "gate_leaks_cxx"):
        dump, _ = gatelib.record(checker, victim, victim)
        plain = gatelib.report_json(ctx, dump)
        reported = [s for s in plain["leaks"]["sites"] if s["kind"] in gatelib.GATED]
        leaked, blocks = gatelib.gated(plain)
        checker.check("%s: has gated leaks to generate entries for" % victim, len(reported) > 1)
        for style in ("valgrind", "lsan"):
            label = "%s --gen-suppressions=%s" % (victim, style)
            result, path = generated(checker, dump, style, victim)
            text = result.stdout
            checker.eq("%s: exits 1 (the default gate fails)" % label, result.returncode, 1)
            if style == "valgrind":
                checker.eq("%s: one entry per leak reported" % label,
                           text.count("\n   Memcheck:Leak\n"), len(reported))
                first = re.findall(r"Memcheck:Leak\n(?:   match-leak-kinds: \w+\n)?   fun:(\S+)", text)
                allocators = {"gate_leaks": {"malloc", "calloc", "realloc"},
                              "gate_leaks_cxx": {"_Znwm", "_Znam"}}[victim]
                checker.check("%s: each entry starts at the allocation function" % label,
                              first and set(first) <= allocators, str(first))
            else:
                lines = [l for l in text.splitlines() if l.startswith("leak:")]
                checker.check("%s: leak: lines, at most one per leak" % label,
                              0 < len(lines) <= len(reported), text)
            back = gatelib.memtrace(ctx, ["check", "--suppressions", path, "--max-leaked", "0",
                                          "--max-leaked-blocks", "0", dump])
            checker.check("%s: fed back, the gates pass at zero" % label, back.returncode == 0,
                          mtlib.tail(back.stderr, 12))
            rep = gatelib.report_json(ctx, dump, "--suppressions", path)
            left = [s for s in rep["leaks"]["sites"] if s["kind"] in gatelib.GATED]
            checker.eq("%s: fed back, no gated leak left in the report" % label, left, [])
            by = rep["leaks"]["suppressed"]["by_suppression"]
            checker.check("%s: fed back, the suppressions match at least every gated leak" % label,
                          sum(b["bytes"] for b in by) >= leaked and
                          sum(b["blocks"] for b in by) >= blocks,
                          "%s vs %d bytes in %d blocks" % (by, leaked, blocks))
            if style == "valgrind" and victim == "gate_leaks":
                # C names are the same for valgrind: it must take the file too
                out = ctx.subdir("valgrind-generated")
                vg = mtlib.valgrind_run([ctx.prog(victim)], logdir=out, tag="vg",
                                        options=["--leak-check=full", "--suppressions=" + path])
                log = mtlib.read_text(vg.log)
                lost = re.findall(r"(definitely|indirectly) lost: ([\d,]+) bytes", log)
                checker.check("valgrind with the generated file: nothing definitely or indirectly "
                              "lost", lost and all(mtlib.number(n) == 0 for _, n in lost),
                              str(lost) + " " + mtlib.tail(log))


BAD_FILES = [
    # (content, line the error is on, what the message says)
    ("# not a suppression\nleak_plain\n", 2, "expected 'leak:PATTERN'"),
    ("leak:one\nrace:two\n", 2, "not a leak suppression"),
    ("leak:   \n", 1, "without a pattern"),
    ("# unclosed\n{\n   name\n   Memcheck:Leak\n   fun:malloc\n", 2, "no closing '}'"),
    ("{\n   name\n   Memcheck:Leak\n   func:malloc\n}\n", 4, "expected fun:, obj:, src:"),
    ("{\n   name\n   Memcheck:Leak\n   match-leak-kinds: definite,lost\n   fun:malloc\n}\n", 4,
     "match-leak-kinds takes"),
    ("{\n   name\n   no tool here\n   fun:malloc\n}\n", 3, "expected TOOL:KIND"),
    ("{\n   name\n   Memcheck:Leak\n}\n", 4, "has no fun:, obj: or '...'"),
    ("{\n}\n", 2, "needs a name line"),
    ("{\n   name\n   Memcheck:Leak\n   fun:\n}\n", 4, "without a name"),
]


def case_errors(checker):
    ctx = checker.ctx
    dump, _ = gatelib.record(checker, "leaks", "gate_leaks")
    for i, (content, line, fragment) in enumerate(BAD_FILES):
        path = os.path.join(ctx.workdir, "bad%d.supp" % i)
        with open(path, "w") as f:
            f.write(content)
        label = "bad file %d (%s)" % (i, fragment)
        where = "%s:%d:" % (path, line)
        gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["check", "--suppressions", path, dump]),
                               label + ", check", 2, where)
        result = gatelib.memtrace(ctx, ["check", "--suppressions", path, dump])
        checker.check("%s: the message says %r" % (label, fragment), fragment in result.stderr,
                      result.stderr.strip())
        gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["report", "--suppressions", path, dump]),
                               label + ", report", 1, where)
    missing = os.path.join(ctx.workdir, "missing.supp")
    gatelib.one_line_error(checker, gatelib.memtrace(ctx, ["check", "--suppressions", missing, dump]),
                           "missing file", 2, missing)
    # the good fixtures are read without complaint, together
    files = ["gate_lsan.supp", "gate_valgrind.supp", "gate_cxx.supp"]
    options = [x for f in files for x in ("--suppressions", fixture(ctx, f))]
    result = gatelib.memtrace(ctx, ["check"] + options + ["--max-peak", "1G", dump])
    checker.check("the fixtures are all read (exit 0)", result.returncode == 0,
                  mtlib.tail(result.stderr))


CASES = {"lsan": case_lsan, "valgrind": case_valgrind, "cxx": case_cxx,
         "combined": case_combined, "generate": case_generate, "errors": case_errors}


def add_arguments(parser):
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--fixtures", required=True, help="tests/e2e/fixtures")


if __name__ == "__main__":
    context = mtlib.setup(__doc__, add_arguments)
    mtlib.run_test(context, "suppressions." + context.args.case, CASES[context.args.case])
