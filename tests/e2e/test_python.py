#!/usr/bin/env python3
"""Python programs (SPEC section 10, issue 6), on the machine's own CPython
(/usr/bin/python3) and on every other CPython 3.8+ found on the machine.

--case cycles      examples/python/cycles.py: 10,000 reference cycles with
                   the collector off; the leak report's top site holds
                   make_cycles at the file and line that built them, with the
                   interpreter's native frames below it (and none of
                   _PyEval_EvalFrameDefault left in its place).
--case generator   examples/python/list_vs_generator.py: the list version's
                   peak is at least 20x the generator version's; each peak's
                   top site names the script's line.
--case threads     tests/programs/python/threads.py: allocations made in a
                   threading.Thread target show that target (and
                   threading's Thread.run below it); the main thread's
                   allocations do not.
--case off         --python off: PYTHONMALLOC is not set, no PYFRAME record
                   and no Python frame, and the shim never calls CPython's
                   Py_IsInitialized or PyGILState_GetThisThreadState (gdb
                   breakpoints count the calls); with auto it does all three
                   (so the check can fail). A C program under auto: no
                   PYTHONMALLOC in its environment, no PYFRAME record.
                   --python-allocator pymalloc: far fewer allocations are
                   seen than under auto, where CPython uses malloc without
                   PYTHONMALLOC in its environment (the shim answers its
                   getenv).
--case module      `python3 -m json.tool` (code no one here wrote): frames of
                   json's own modules, at lines that hold the code named.
--case embed       a C program that dlopens libpython, under --python on:
                   Python frames too, and every object seen.
--case debug_cache the report's copies of compressed debug files: the
                   first report of a python3 dump (MEMTRACE_CACHE_DIR a new
                   directory) leaves a copy of python3's debug file (from
                   python3-dbg, its sections compressed) named by build id,
                   with no section compressed; the next report reads it and
                   prints the same as a report with the cache off, and so do
                   reports with a garbage copy (replaced) and an unwritable
                   cache directory.
--case versions    every CPython 3.8-3.13 under ~/.pyenv/versions (or on
                   PATH as python3.N): the threads case's checks. Says which
                   it found; fails if it found none but the machine's own.
"""
import glob
import json
import os
import re
import shutil
import subprocess

import mtlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "python")
PROGRAMS = os.path.join(ROOT, "tests", "programs", "python")
SYSTEM_PYTHON = "/usr/bin/python3"


def line_of(path, marker):
    """1-based number of the first line of path containing marker."""
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if marker in text:
                return number
    raise mtlib.TestError("no line with %r in %s" % (marker, path))


def record(ctx, name, argv, options=(), env=None):
    dump = os.path.join(ctx.workdir, name + ".mtr")
    result = mtlib.memtrace_run(ctx, argv, dump, options=("--no-follow-fork",) + tuple(options),
                                env=env, logdir=ctx.workdir, tag=name, timeout=240)
    if result.returncode != 0:
        raise mtlib.TestError("%s: memtrace run exited %d: %s"
                              % (name, mtlib.exit_code(result.returncode), mtlib.tail(result.stderr)))
    return dump, result


def report(ctx, dump, *options):
    out = subprocess.run([ctx.memtrace, "report", "--format", "json", *options, dump],
                         capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        raise mtlib.TestError("report %s: %s" % (dump, out.stderr.strip()))
    return json.loads(out.stdout)


def python_frames(site):
    return [f for f in site["stack"] if f["language"] == "python"]


def has_frame(site, function, path, line):
    return any(f["language"] == "python" and f["function"] == function and f["line"] == line and
               os.path.realpath(f["file"] or "") == os.path.realpath(path) for f in site["stack"])


def check_interleaved(checker, label, site):
    """Python frames sit among native ones, no interpreter loop frame is left
    where Python frames replaced it, and the interpreter's C frames that
    called into Python are below the Python frames."""
    stack = site["stack"]
    langs = [f["language"] for f in stack]
    checker.check("%s: native frames above the Python frames" % label,
                  "python" in langs and langs.index("python") > 0 and langs[0] == "c",
                  "languages %s" % langs)
    last_python = max(i for i, lang in enumerate(langs) if lang == "python") if "python" in langs else -1
    below = [f["function"] for f in stack[last_python + 1:] if f["language"] == "c"]
    checker.check("%s: the interpreter's native frames below them" % label,
                  any(f and ("Py" in f or "main" in f) for f in below), "below: %s" % below[:8])
    checker.check("%s: no _PyEval_EvalFrameDefault left" % label,
                  not any((f["function"] or "").startswith("_PyEval_EvalFrameDefault") for f in stack),
                  "stack: %s" % [f["function"] for f in stack])
    checker.check("%s: Python frames have no module and no address" % label,
                  all(f["module"] is None and f["address"] is None for f in python_frames(site)))


def case_cycles(ctx, checker):
    script = os.path.join(EXAMPLES, "cycles.py")
    dump, _ = record(ctx, "cycles", [SYSTEM_PYTHON, script])
    rep = report(ctx, dump, "--leaks")
    sites = rep["leaks"]["sites"]
    if not checker.check("cycles: leak sites", sites):
        return
    top = max(sites, key=lambda s: s["bytes"])
    lines = {line_of(script, "a = Node("), line_of(script, "b = Node(")}
    checker.check("cycles: top leak site is make_cycles at a Node( line",
                  any(has_frame(top, "make_cycles", script, n) for n in lines),
                  "python frames %s" % [(f["function"], f["line"]) for f in python_frames(top)])
    checker.check("cycles: its caller main is below it",
                  has_frame(top, "main", script, line_of(script, "make_cycles(10_000)")))
    check_interleaved(checker, "cycles", top)
    # a stale copy of the last pointer on the stack may keep one reachable
    checker.check("cycles: the top site is a leak of about 10,000 blocks",
                  9990 <= top["blocks"] <= 10000 and top["kind"] in ("definite", "possible"),
                  "%d blocks, %s" % (top["blocks"], top["kind"]))


def case_generator(ctx, checker):
    script = os.path.join(EXAMPLES, "list_vs_generator.py")
    peaks = {}
    for how in ("list", "generator"):
        dump, _ = record(ctx, how, [SYSTEM_PYTHON, script, how])
        rep = report(ctx, dump, "--peak")
        peaks[how] = rep["totals"]["peak_bytes"]
        sites = rep["peak"]["sites"]
        if not checker.check("%s: peak sites" % how, sites):
            continue
        top = sites[0]
        named = [(f["function"], f["line"]) for f in python_frames(top)
                 if os.path.realpath(f["file"] or "") == os.path.realpath(script)]
        checker.check("%s: the top peak site names the script's lines" % how, named,
                      "stack %s" % [f["function"] for f in top["stack"]])
        if how == "list":
            checker.check("list: ... the list's line",
                          has_frame(top, "total_with_list", script, line_of(script, "[i * i for")),
                          "named %s" % named)
            check_interleaved(checker, "list", top)
    ratio = peaks["list"] / max(peaks["generator"], 1)
    checker.check("list peak >= 20x generator peak", ratio >= 20,
                  "list %d, generator %d: %.1fx" % (peaks["list"], peaks["generator"], ratio))


def check_threads(ctx, checker, python, label):
    script = os.path.join(PROGRAMS, "threads.py")
    dump, _ = record(ctx, label, [python, script])
    # the 50 sites with the most allocations, not all of them: the whole
    # report is a 200 MB JSON of 12,853 sites (14 s to parse, for each
    # CPython), and the top 20 already hold 102,399 of the 102,495
    # allocations at the worker's line and all those at main's
    rep = report(ctx, dump, "--allocations", "--top", "50")
    sites = rep["allocations"]["sites"]
    worker_line = line_of(script, "WORKER LINE")
    main_line = line_of(script, "MAIN LINE")
    in_worker = [s for s in sites
                 if any(f["language"] == "python" and f["function"] in ("worker_target",
                        "worker_target.<locals>.<listcomp>", "<listcomp>") and f["line"] == worker_line
                        for f in s["stack"])]
    counted = sum(s["count"] for s in in_worker)
    checker.check("%s: allocations in the thread target name worker_target:%d" % (label, worker_line),
                  counted >= 40000, "%d allocations at that line" % counted)
    checker.check("%s: threading's Thread.run below the target" % label,
                  in_worker and all(any(f["function"] in ("Thread.run", "run") and
                                        (f["file"] or "").endswith("threading.py")
                                        for f in s["stack"]) for s in in_worker))
    in_main = [s for s in sites if any(f["language"] == "python" and f["line"] == main_line and
                                       (f["file"] or "").endswith("threads.py") for f in s["stack"])]
    checker.check("%s: the main thread's allocations name main_thread_work" % label,
                  sum(s["count"] for s in in_main) >= 5000 and
                  not any(any(f["function"] == "worker_target" for f in s["stack"]) for s in in_main))
    if in_worker:
        check_interleaved(checker, label, max(in_worker, key=lambda s: s["count"]))


def case_threads(ctx, checker):
    check_threads(ctx, checker, SYSTEM_PYTHON, "threads")


def cpython_calls(ctx, mode):
    """How often CPython's Py_IsInitialized and PyGILState_GetThisThreadState
    (which `python3 -c pass` never calls itself; the shim calls them at each
    allocation) ran in python3 traced in plain LD_PRELOAD mode with
    MEMTRACE_PYTHON=mode: gdb breakpoints that count and never stop."""
    out = subprocess.run(
        ["gdb", "-q", "-batch", "-ex", "set startup-with-shell off",
         "-ex", "set environment LD_PRELOAD=" + ctx.shim,
         "-ex", "set environment MEMTRACE_BIN=" + ctx.memtrace,
         "-ex", "set environment MEMTRACE_OUTPUT=%s/gdb-%s.%%p.mtr" % (ctx.workdir, mode),
         "-ex", "set environment MEMTRACE_PYTHON=" + mode,
         "-ex", "set environment PYTHONMALLOC=malloc",
         "-ex", "set breakpoint pending on",
         "-ex", "break Py_IsInitialized", "-ex", "break PyGILState_GetThisThreadState",
         "-ex", "ignore 1 100000000", "-ex", "ignore 2 100000000",
         "-ex", "run", "-ex", "info breakpoints",
         "--args", SYSTEM_PYTHON, "-c", "pass"], capture_output=True, text=True, timeout=240)
    if "exited normally" not in out.stdout + out.stderr:
        raise mtlib.TestError("gdb run (%s) did not end normally: %s" % (mode, mtlib.tail(out.stdout + out.stderr)))
    return sum(int(n) for n in re.findall(r"breakpoint already hit (\d+) time", out.stdout))


def pyframe_records(ctx, dump):
    out = subprocess.run([ctx.memtrace, "__dump", dump], capture_output=True, text=True, timeout=120)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("pyframe "))


def case_off(ctx, checker):
    script = os.path.join(PROGRAMS, "env_probe.py")
    env = dict(os.environ)
    env.pop("PYTHONMALLOC", None)
    runs = {}
    for mode in ("off", "auto"):
        dump, result = record(ctx, "probe-" + mode, [SYSTEM_PYTHON, script], ("--python", mode), env)
        rep = report(ctx, dump, "--allocations")
        frames = [f for s in rep["allocations"]["sites"] for f in s["stack"] if f["language"] == "python"]
        runs[mode] = dict(out=result.stdout, calls=cpython_calls(ctx, mode),
                          pyframes=pyframe_records(ctx, dump), frames=len(frames),
                          allocations=rep["totals"]["allocations"])
    off, auto = runs["off"], runs["auto"]
    checker.check("off: PYTHONMALLOC not set", "PYTHONMALLOC=\n" in off["out"], off["out"])
    checker.eq("off: calls into CPython's frame functions", off["calls"], 0)
    checker.eq("off: PYFRAME records", off["pyframes"], 0)
    checker.eq("off: Python frames in the report", off["frames"], 0)
    checker.check("auto: PYTHONMALLOC not in the environment (the shim answers CPython's getenv)",
                  "PYTHONMALLOC=\n" in auto["out"], auto["out"])
    checker.check("auto: the shim calls CPython's frame functions", auto["calls"] > 0,
                  "%d calls" % auto["calls"])
    checker.check("auto: PYFRAME records and Python frames", auto["pyframes"] > 0 and auto["frames"] > 0,
                  "%d records, %d frames" % (auto["pyframes"], auto["frames"]))

    # A C program under auto: no CPython, nothing looked for that allocates
    # (e2e.transparency.* checks its heap is unchanged), no frames.
    dump, result = record(ctx, "c-program", ["/usr/bin/env"], (), env)
    checker.check("C program: no PYTHONMALLOC in its environment",
                  "PYTHONMALLOC=" not in result.stdout, result.stdout[-300:])
    checker.eq("C program: PYFRAME records", pyframe_records(ctx, dump), 0)

    # pymalloc left in place: small objects come from its arenas, unseen.
    dump, result = record(ctx, "pymalloc", [SYSTEM_PYTHON, script], ("--python-allocator", "pymalloc"),
                          env)
    rep = report(ctx, dump, "--summary")
    checker.check("pymalloc: PYTHONMALLOC not set", "PYTHONMALLOC=\n" in result.stdout, result.stdout)
    checker.check("pymalloc: far fewer allocations seen than with malloc",
                  rep["totals"]["allocations"] * 4 < auto["allocations"],
                  "%d with pymalloc, %d with malloc" % (rep["totals"]["allocations"], auto["allocations"]))
    for bad in (("--python", "sometimes"), ("--python-allocator", "arena")):
        out = subprocess.run([ctx.memtrace, "run", *bad, "--", SYSTEM_PYTHON, "-c", "pass"],
                             capture_output=True, text=True, timeout=60)
        checker.check("%s %s: exit 1 with one line" % bad,
                      out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and
                      bad[0] in out.stderr, out.stderr)


def case_module(ctx, checker):
    data = os.path.join(ctx.workdir, "data.json")
    with open(data, "w") as f:
        json.dump({"k%d" % i: list(range(i % 50)) for i in range(3000)}, f)
    dump, _ = record(ctx, "json-tool", [SYSTEM_PYTHON, "-m", "json.tool", data])
    rep = report(ctx, dump, "--allocations")
    decoder = [f for s in rep["allocations"]["sites"] for f in s["stack"]
               if f["language"] == "python" and (f["file"] or "").endswith("json/decoder.py")]
    if not checker.check("json.tool: frames in json/decoder.py", decoder):
        return
    f = decoder[0]
    source = f["file"]
    ok = os.path.exists(source)
    if ok:
        with open(source) as src:
            text = src.read().splitlines()
        name = f["function"].split(".")[-1]
        # the named function's def is at or above the line, and the line is real
        above = text[:f["line"]]
        ok = 0 < f["line"] <= len(text) and any(l.strip().startswith("def %s(" % name) for l in above)
    checker.check("json.tool: %s at %s:%s is a line of that function" % (f["function"], source, f["line"]), ok)


def case_embed(ctx, checker):
    lib = "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"
    if not checker.check("libpython3.11 is installed (scripts/install-deps.sh)", os.path.exists(lib)):
        return
    # --python on: PYTHONMALLOC=malloc for a program that is not python
    dump, result = record(ctx, "embed", [ctx.prog("embed_python"), lib], ("--python", "on"))
    checker.check("embed: the program ran, and went on after dlclose(libpython)",
                  "embedded 20000" in result.stdout and "after dlclose" in result.stdout, result.stdout)
    rep = report(ctx, dump, "--allocations")
    named = [s for s in rep["allocations"]["sites"]
             if any(f["language"] == "python" and f["function"] in ("embedded_work",
                    "embedded_work.<locals>.<listcomp>") for f in s["stack"])]
    checker.check("embed: allocations in embedded_work", sum(s["count"] for s in named) >= 20000,
                  "%d" % sum(s["count"] for s in named))


def compressed_sections(path):
    """Names of the SHF_COMPRESSED sections of an ELF file (readelf -S)."""
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True)
    names = []
    for line in out.stdout.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S*)", line)
        if m and "C" in m.group(2) and m.group(2).isalpha():
            names.append(m.group(1))
    return names


def build_id_of(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", out.stdout)
    return m.group(1) if m else None


def case_debug_cache(ctx, checker):
    exe = os.path.realpath(SYSTEM_PYTHON)
    bid = build_id_of(exe)
    debug = "/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:]) if bid else ""
    if not checker.check("python3-dbg's debug file of %s is installed, its sections compressed"
                         % exe, os.path.exists(debug) and compressed_sections(debug), debug):
        return
    dump, _ = record(ctx, "small", [SYSTEM_PYTHON, "-c", "x = [str(i) * 3 for i in range(2000)]"])

    def text_report(cache_dir):
        env = dict(os.environ, MEMTRACE_CACHE_DIR=cache_dir)
        out = subprocess.run([ctx.memtrace, "report", "--allocations", dump], env=env,
                             capture_output=True, text=True, timeout=240)
        if out.returncode != 0:
            raise mtlib.TestError("report: %s" % out.stderr.strip())
        return out.stdout

    plain = text_report("")
    checker.check("the report names python3's own C functions (its debug file was read)",
                  "PyObject_Malloc" in plain or "_PyObject_Malloc" in plain, plain[:2000])
    cache = os.path.join(ctx.workdir, "cache")
    copy = os.path.join(cache, "debug", bid + ".debug")
    first = text_report(cache)
    checker.check("first report: a copy named by build id", os.path.exists(copy), copy)
    if os.path.exists(copy):
        checker.check("the copy has no compressed section", not compressed_sections(copy),
                      str(compressed_sections(copy)))
        checker.eq("the copy has the build id", build_id_of(copy), bid)
        checker.check("the copy is private to the user", os.stat(copy).st_mode & 0o077 == 0,
                      oct(os.stat(copy).st_mode))
    checker.check("no temporary file left",
                  not [n for n in os.listdir(os.path.join(cache, "debug")) if n.endswith(".tmp")]
                  if os.path.isdir(os.path.join(cache, "debug")) else False)
    checker.text_eq("first report (making the copy) == the report without cache", first, plain)
    checker.text_eq("second report (reading the copy) == the report without cache",
               text_report(cache), plain)
    with open(copy, "wb") as f:
        f.write(b"\x7fELF garbage")
    checker.text_eq("a garbage copy: the same report", text_report(cache), plain)
    checker.eq("a garbage copy is replaced by a good one", build_id_of(copy), bid)
    checker.text_eq("an unwritable cache directory: the same report",
               text_report("/proc/memtrace-no-such-dir"), plain)


def find_pythons():
    found = {}
    for minor in range(8, 14):
        candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.%d.*/bin/python3.%d"
                                                         % (minor, minor))))
        on_path = shutil.which("python3.%d" % minor)
        for c in candidates + ([on_path] if on_path else []):
            if os.access(c, os.X_OK) and not open(c, "rb").read(2) == b"#!":
                found[minor] = c
                break
    return found


def case_versions(ctx, checker):
    found = find_pythons()
    print("CPython versions found: %s" % ", ".join("3.%d (%s)" % kv for kv in sorted(found.items())))
    others = {m: p for m, p in found.items() if os.path.realpath(p) != os.path.realpath(SYSTEM_PYTHON)}
    checker.check("some CPython other than %s to test" % SYSTEM_PYTHON, others,
                  "none under ~/.pyenv/versions or on PATH")
    for minor, python in sorted(others.items()):
        check_threads(ctx, checker, python, "3.%d" % minor)


CASES = {"cycles": case_cycles, "generator": case_generator, "threads": case_threads,
         "off": case_off, "module": case_module, "embed": case_embed, "versions": case_versions,
         "debug_cache": case_debug_cache}


def main():
    ctx = mtlib.setup(__doc__, lambda p: p.add_argument("--case", required=True, choices=sorted(CASES)))
    mtlib.run_test(ctx, "python." + ctx.args.case, lambda checker: CASES[ctx.args.case](ctx, checker))


if __name__ == "__main__":
    main()
