#!/usr/bin/env python3
"""JUnit XML and SARIF (issue 4, acceptance 5), from `memtrace check` on a
leaky dump and a clean one, with one leak suppressed:

- JUnit: well-formed XML; testsuites > testsuite > testcase, one test case
  per dump, named after the program and its pid; the counts in the
  attributes are those of the elements; the leaky case fails with the gate
  and every leak site in its message; the clean case passes; an unreadable
  dump is a test case in error.
- SARIF: valid against the SARIF 2.1.0 JSON schema with a real validator
  (python3-jsonschema; a damaged copy must be refused, so the validation is
  known to bite); tool.driver memtrace with memtrace's version and a rule per
  leak kind; one result per leak site of the gated kinds, the suppressed one
  carrying a SARIF suppression; each located at the innermost frame with a
  source file (artifactLocation.uri, region.startLine = the victim's line),
  relative to SRCROOT under the current directory, a file:// URI elsewhere;
  a failing --max-peak adds a memtrace/peak result.

The schema comes from the npm package @microsoft/jest-sarif (MIT), which
ships the SARIF 2.1.0 schema (sarif-2.1.0-rtm.5.json); the test fetches it
with npm into --npm-dir (in the build tree, not the sources) and checks its
SHA-256.
"""
import copy
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import urllib.parse
import xml.etree.ElementTree as ET

import gatelib
import mtlib

SCHEMA_PACKAGE = "@microsoft/jest-sarif@1.0.0-beta.0"
SCHEMA_MEMBER = "package/lib/schemas/sarif-2.1.0-rtm.5.json"
SCHEMA_SHA256 = "2d99159ae54a3eea97f81781cff48780548657c35949f4b7f25e99a2ba4de4f8"
KINDS = ("definite", "indirect", "possible", "reachable", "unknown")


def sarif_schema(npm_dir):
    """The SARIF 2.1.0 schema, fetched once into npm_dir."""
    path = os.path.join(npm_dir, os.path.basename(SCHEMA_MEMBER))
    if not os.path.exists(path):
        os.makedirs(npm_dir, exist_ok=True)
        npm = shutil.which("npm")
        if not npm:
            raise mtlib.TestError("npm is missing: it fetches the SARIF schema")
        try:
            out = subprocess.run([npm, "pack", SCHEMA_PACKAGE, "--pack-destination", npm_dir],
                                 cwd=npm_dir, capture_output=True, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            raise mtlib.TestError("npm pack %s did not finish in 240 s" % SCHEMA_PACKAGE)
        tgz = [f for f in os.listdir(npm_dir) if f.endswith(".tgz")]
        if out.returncode != 0 or not tgz:
            raise mtlib.TestError("npm pack %s failed: %s" % (SCHEMA_PACKAGE, out.stderr[-500:]))
        with tarfile.open(os.path.join(npm_dir, tgz[0])) as tar:
            data = tar.extractfile(SCHEMA_MEMBER).read()
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != SCHEMA_SHA256:
        raise mtlib.TestError("%s is not the schema expected (SHA-256 differs)" % path)
    return json.loads(data)


def validator(schema):
    try:
        import jsonschema
    except ImportError:
        raise mtlib.TestError("python3-jsonschema is missing (scripts/install-deps.sh)")
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def check_valid(checker, label, validate, log):
    errors = sorted(validate.iter_errors(log), key=lambda e: list(e.path))
    checker.check("%s: valid against the SARIF 2.1.0 schema" % label, not errors,
                  "; ".join("%s at %s" % (e.message[:200], "/".join(map(str, e.path)))
                            for e in errors[:5]))


def check_junit(checker, path, dumps, failing_pid, sites, suppression):
    """dumps: [(report JSON, expected to fail)]; sites: the leaky dump's
    reported sites (their innermost functions must be in the message)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        checker.check("junit: well-formed XML", False, str(error))
        return
    checker.check("junit: well-formed XML", True)
    checker.eq("junit: root element", root.tag, "testsuites")
    suites = root.findall("testsuite")
    checker.eq("junit: one testsuite", len(suites), 1)
    if len(suites) != 1:
        return
    suite = suites[0]
    cases = suite.findall("testcase")
    failures = [c for c in cases if c.find("failure") is not None]
    checker.eq("junit: one testcase per dump", len(cases), len(dumps))
    for element in (root, suite):
        checker.eq("junit: <%s> tests/failures/errors attributes" % element.tag,
                   (element.get("tests"), element.get("failures"), element.get("errors")),
                   (str(len(cases)), str(len(failures)), "0"))
    names = sorted(c.get("name") for c in cases)
    want = sorted("%s (pid %d)" % (os.path.basename(r["process"]["command"][0]), r["process"]["pid"])
                  for r, _ in dumps)
    checker.eq("junit: test cases named PROGRAM (pid N)", names, want)
    for case in cases:
        try:
            float(case.get("time"))
            ok = True
        except (TypeError, ValueError):
            ok = False
        checker.check("junit: %s has a time in seconds" % case.get("name"), ok, str(case.get("time")))
    checker.eq("junit: the failing case is the leaky dump's",
               [c.get("name").endswith("(pid %d)" % failing_pid) for c in failures], [True])
    if len(failures) != 1:
        return
    failure = failures[0].find("failure")
    message = failure.get("message") or ""
    checker.check("junit: the failure message names the gate", "--max-leaked 0" in message, message)
    missing = [f for f in sites if f not in message]
    checker.check("junit: the failure message names every leak site", not missing,
                  "missing %s in %r" % (missing, message))
    checker.check("junit: the failure text has the stacks", "gate failed" in (failure.text or "") and
                  "gate_leaks.c:" in (failure.text or ""), (failure.text or "")[:300])
    out = failures[0].findtext("system-out") or ""
    checker.check("junit: system-out says what the suppression matched", suppression in out, out)


def resolve(run, location):
    """The file path a SARIF physicalLocation points to."""
    art = location["physicalLocation"]["artifactLocation"]
    uri = art["uri"]
    if "uriBaseId" in art:
        uri = urllib.parse.urljoin(run["originalUriBaseIds"][art["uriBaseId"]]["uri"], uri)
    parsed = urllib.parse.urlparse(uri)
    return urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else None


def check_sarif(checker, label, log, rep, marks, suppressed_size, suppression, version):
    """rep: the leaky dump's unsuppressed report; marks: its victim's marks."""
    checker.eq("%s: version" % label, log.get("version"), "2.1.0")
    runs = log.get("runs") or []
    if not checker.eq("%s: one run" % label, len(runs), 1):
        return
    run = runs[0]
    driver = run["tool"]["driver"]
    checker.eq("%s: tool.driver name and version" % label, (driver.get("name"), driver.get("version")),
               ("memtrace", version))
    rules = [r["id"] for r in driver.get("rules", [])]
    checker.check("%s: a rule per leak kind" % label,
                  all("memtrace/leak/" + k in rules for k in KINDS), str(rules))
    results = run.get("results", [])
    checker.check("%s: ruleIndex points at the ruleId's rule" % label,
                  all(rules[r["ruleIndex"]] == r["ruleId"] for r in results))
    leaks = [r for r in results if r["ruleId"].startswith("memtrace/leak/")]
    got = sorted((r["ruleId"], r["properties"]["bytes"], r["properties"]["blocks"],
                  "suppressions" in r) for r in leaks)
    want = sorted(("memtrace/leak/" + s["kind"], s["bytes"], s["blocks"], s["bytes"] == suppressed_size)
                  for s in rep["leaks"]["sites"] if s["kind"] in gatelib.GATED)
    checker.eq("%s: one result per leak site of the gated kinds (rule, bytes, blocks, suppressed)"
               % label, got, want)
    for r in leaks:
        size = r["properties"]["bytes"]
        mark = marks.get(size)
        where = "%s: the %d-byte leak" % (label, size)
        if not checker.check("%s: is one of the victim's" % where, mark is not None):
            continue
        locations = r.get("locations") or []
        if not checker.eq("%s: one location" % where, len(locations), 1):
            continue
        path = resolve(run, locations[0]) or ""
        region = locations[0]["physicalLocation"].get("region", {})
        source = "gate_child.c" if mark.function == "make_child" else "gate_leaks.c"
        checker.check("%s: located in tests/programs/%s" % (where, source),
                      path.endswith("/tests/programs/" + source) and os.path.exists(path), path)
        checker.eq("%s: located at the allocation's line" % where, region.get("startLine"), mark.line)
        names = [l.get("fullyQualifiedName") for l in locations[0].get("logicalLocations", [])]
        checker.eq("%s: in the allocating function" % where, names, [mark.function])
        checker.check("%s: has its stack and a fingerprint" % where,
                      r.get("stacks") and r["stacks"][0]["frames"] and r.get("partialFingerprints"))
        if size == suppressed_size:
            s = r.get("suppressions") or [{}]
            checker.check("%s: carries the suppression that matched it" % where,
                          s[0].get("kind") == "external" and suppression in s[0].get("justification", ""),
                          str(s))
    return run


def body(checker):
    ctx = checker.ctx
    leaky, marks = gatelib.record(checker, "leaky", "gate_leaks")
    clean, _ = gatelib.record(checker, "clean", "gate_clean")
    rep = gatelib.report_json(ctx, leaky)
    rep_clean = gatelib.report_json(ctx, clean)
    gatelib.check_kinds(checker, rep, marks, "gate_leaks")
    version = gatelib.memtrace(ctx, ["--version"]).stdout.split()[-1]
    schema = sarif_schema(ctx.args.npm_dir)
    validate = validator(schema)

    # the leak of leak_realloc is suppressed
    suppressed_size, suppression = 700, "leak:^leak_realloc$"
    supp = os.path.join(ctx.workdir, "one.supp")
    with open(supp, "w") as f:
        f.write(suppression + "\n")
    junit = os.path.join(ctx.workdir, "report.xml")
    sarif = os.path.join(ctx.workdir, "report.sarif")
    # from the sources' parent directory: paths under it are relative
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = gatelib.memtrace(ctx, ["check", "--max-leaked", "0", "--suppressions", supp,
                                    "--junit", junit, "--sarif", sarif, leaky, clean], cwd=cwd)
    checker.eq("check with --junit and --sarif: exit 1 (a gate failed)", result.returncode, 1)
    reported = [s["stack"][0]["function"] for s in rep["leaks"]["sites"]
                if s["kind"] in gatelib.GATED and s["bytes"] != suppressed_size]
    check_junit(checker, junit, [(rep, True), (rep_clean, False)], rep["process"]["pid"], reported,
                suppression)
    with open(sarif) as f:
        log = json.load(f)
    check_valid(checker, "sarif", validate, log)
    run = check_sarif(checker, "sarif", log, rep, marks, suppressed_size, suppression, version)
    if run:
        rel = [r for r in run["results"] if r["locations"][0]["physicalLocation"]
               ["artifactLocation"].get("uriBaseId") == "SRCROOT"]
        checker.eq("sarif: paths under the current directory are relative to SRCROOT", len(rel),
                   len(run["results"]))
    # the validator bites: a result without a message, a bad level
    for damage in ("message", "level"):
        broken = copy.deepcopy(log)
        if damage == "message":
            del broken["runs"][0]["results"][0]["message"]
        else:
            broken["runs"][0]["results"][0]["level"] = "fatal"
        checker.check("sarif: the validator refuses a result with a bad %s" % damage,
                      any(True for _ in validate.iter_errors(broken)))

    # from elsewhere: file:// URIs; --max-peak adds its result
    sarif2 = os.path.join(ctx.workdir, "peak.sarif")
    result = gatelib.memtrace(ctx, ["check", "--max-peak", "1", "--sarif", sarif2, leaky],
                              cwd=ctx.workdir)
    checker.eq("check --max-peak 1 --sarif: exit 1", result.returncode, 1)
    with open(sarif2) as f:
        log2 = json.load(f)
    check_valid(checker, "peak sarif", validate, log2)
    run2 = check_sarif(checker, "peak sarif", log2, rep, marks, None, "", version)
    if run2:
        peak = [r for r in run2["results"] if r["ruleId"] == "memtrace/peak"]
        checker.eq("peak sarif: one memtrace/peak result", len(peak), 1)
        absolute = [r for r in run2["results"] if r.get("locations") and
                    r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("file:///")]
        checker.eq("peak sarif: paths outside the current directory are file:// URIs", len(absolute),
                   len(run2["results"]))

    # an unreadable dump: a test case in error, a tool notification
    bogus = os.path.join(ctx.workdir, "bogus.mtr")
    with open(bogus, "w") as f:
        f.write("not a dump\n")
    junit3 = os.path.join(ctx.workdir, "error.xml")
    sarif3 = os.path.join(ctx.workdir, "error.sarif")
    result = gatelib.memtrace(ctx, ["check", "--junit", junit3, "--sarif", sarif3, clean, bogus])
    checker.eq("check with an unreadable dump: exit 2", result.returncode, 2)
    try:
        root = ET.parse(junit3).getroot()
        errors = [c for c in root.iter("testcase") if c.find("error") is not None]
        checker.eq("junit: the unreadable dump is a test case in error",
                   (root.get("errors"), root.get("tests"), len(errors)), ("1", "2", 1))
    except (ET.ParseError, OSError) as error:
        checker.check("junit with an error: well-formed XML", False, str(error))
    with open(sarif3) as f:
        log3 = json.load(f)
    check_valid(checker, "error sarif", validate, log3)
    invocation = log3["runs"][0]["invocations"][0]
    checker.check("sarif: the unreadable dump is an error notification, the run unsuccessful",
                  invocation["executionSuccessful"] is False and
                  "bogus.mtr" in invocation["toolExecutionNotifications"][0]["message"]["text"],
                  str(invocation))


def add_arguments(parser):
    parser.add_argument("--npm-dir", required=True,
                        help="where the SARIF schema's npm package is fetched to (build tree)")


if __name__ == "__main__":
    mtlib.run_test(mtlib.setup(__doc__, add_arguments), "ci_reports", body)
