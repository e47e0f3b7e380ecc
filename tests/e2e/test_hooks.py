#!/usr/bin/env python3
"""Custom allocators (issue 7): inline hooks, a program's own malloc, the
client API. One case per run (--case), on the victim named by --program.

pool      tests/programs/pool.c (static pool_alloc/pool_free/pool_realloc,
          built -O0/-O2, PIE/non-PIE) under --hook-alloc pool_alloc:1
          --hook-free pool_free:1 --hook-realloc pool_realloc:1:2:
          - without arguments: stdout byte for byte as a native run; the
            totals of `report --allocator 'pool_*'` are the program's own
            counts (recursive pool_alloc calls and the chunks it takes from
            malloc are not counted); leaks: 3 x 1000 bytes from
            leak_thousand and 1 x 2000 from leak_two_thousand, definite, each
            at the right file:line;
          - with a SIGALRM handler allocating from its own pool every 200 us
            (argument 30): the handler's calls are counted too, exactly.
own       tests/programs/own_malloc.c (defines malloc, free, calloc,
          realloc): detected (one line on stderr), stdout as a native run,
          totals exactly the program's own counts, leaks 3 x 777 definite
          and 555 reachable.
prologues tests/programs/prologues.c: rip_alloc (RIP-relative loads),
          branch_free (an early conditional branch) and call_alloc (a call)
          hook and run correctly; tiny_alloc (3 bytes) and loop_alloc (a jump
          back into its first bytes) are refused with one line naming the
          function and the reason; stdout as a native run.
client    tests/programs/client_api.c (memtrace.h): stdout the same under
          memtrace and natively; `report --allocator client` has the
          annotated blocks (15 allocations, 7 frees, 1590 bytes; 4 lost, 4
          reachable); `--between phase2,done` has what was allocated between
          the marks; the timeline SVG draws the three marks in order.
options   bad --hook-* values and an unknown --between mark: exit 1, one
          line.
"""
import json
import os
import re
import xml.etree.ElementTree as ET

import mtlib

HOOKS = ["--hook-alloc", "pool_alloc:1", "--hook-free", "pool_free:1",
         "--hook-realloc", "pool_realloc:1:2"]


def add_arguments(parser):
    parser.add_argument("--case", required=True)
    parser.add_argument("--program", default="")


def source_line(name, needle):
    """The line number of the first line of tests/programs/NAME holding needle."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "programs", name)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if needle in line:
                return number
    raise mtlib.TestError("%s has no line with %r" % (name, needle))


def native(ctx, argv, tag):
    out = ctx.subdir(tag)
    return mtlib.run(argv, cwd=out, stdout_path=os.path.join(out, "out"),
                     stderr_path=os.path.join(out, "err"))


def traced(ctx, argv, tag, options=()):
    out = ctx.subdir(tag)
    result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), options=options,
                                cwd=out, logdir=out)
    return result, mtlib.dumps_in(out)


def report_json(ctx, dump, *options):
    """`memtrace report --format json OPTIONS DUMP`, parsed."""
    base = dump + ".%d" % len(os.listdir(os.path.dirname(dump)))
    result = mtlib.run([ctx.memtrace, "report", "--format", "json"] + list(options) + [dump],
                       stdout_path=base + ".json", stderr_path=base + ".err")
    if result.returncode != 0:
        raise mtlib.TestError("memtrace report %s exited %d: %s"
                              % (" ".join(options), result.returncode, mtlib.tail(result.stderr)))
    return json.loads(result.stdout)


def leak_sites(rep, kind):
    return [s for s in rep["leaks"]["sites"] if s["kind"] == kind]


def find_site(sites, function):
    for s in sites:
        if any(f["function"] == function for f in s["stack"]):
            return s
    return None


def check_site(c, label, site, function, source, needle, size, blocks):
    if not c.check("%s: a site through %s" % (label, function), site is not None):
        return
    c.eq("%s: bytes, blocks" % label, (site["bytes"], site["blocks"]), (size * blocks, blocks))
    frame = next(f for f in site["stack"] if f["function"] == function)
    c.eq("%s: call site" % label, (os.path.basename(frame["file"] or ""), frame["line"]),
         (source, source_line(source, needle)))


def one_dump(c, result, dumps, label):
    c.eq("%s: memtrace run exits 0" % label, mtlib.exit_code(result.returncode), 0)
    return c.eq("%s: one dump" % label, len(dumps), 1)


def case_pool(ctx, c):
    prog = ctx.prog(ctx.args.program)
    want = native(ctx, [prog], "native")
    result, dumps = traced(ctx, [prog], "quiet", HOOKS)
    if not one_dump(c, result, dumps, "quiet run"):
        return
    c.text_eq("stdout as without memtrace", result.stdout, want.stdout)
    c.check("no hook refused", "cannot hook" not in result.stderr, mtlib.tail(result.stderr))
    counts = re.search(r"pool: allocs (\d+) frees (\d+) reallocs (\d+) handler (\d+)", result.stdout)
    allocs, frees, reallocs, _ = (int(x) for x in counts.groups())
    sizes = [8 + i * 5 for i in range(64)]
    resized = [200 + i for i in range(0, 64, 2)]
    rep = report_json(ctx, dumps[0], "--allocator", "pool_*")
    c.figures("pool_* totals", mtlib.totals(rep), {
        "allocations": allocs + reallocs, "frees": frees + reallocs,
        "bytes_allocated": sum(sizes) + sum(resized) + 3 * 1000 + 2000,
        "in_use_bytes": 5000, "in_use_blocks": 4})
    definite = leak_sites(rep, "definite")
    check_site(c, "3 x 1000 lost", find_site(definite, "leak_thousand"), "leak_thousand",
               "pool.c", "p = counted_alloc(1000)", 1000, 3)
    check_site(c, "1 x 2000 lost", find_site(definite, "leak_two_thousand"), "leak_two_thousand",
               "pool.c", "p = counted_alloc(2000)", 2000, 1)
    c.check("the sites say pool_alloc", all(s["allocator"] == "pool_alloc" for s in definite),
            str([s["allocator"] for s in definite]))

    result, dumps = traced(ctx, [prog, "30"], "signals", HOOKS)
    if not one_dump(c, result, dumps, "run with a signal handler"):
        return
    counts = re.search(r"pool: allocs (\d+) frees (\d+) reallocs (\d+) handler (\d+)", result.stdout)
    allocs, frees, reallocs, handler = (int(x) for x in counts.groups())
    print("  the handler ran %d times" % handler)
    rep = report_json(ctx, dumps[0], "--allocator", "pool_*", "--summary")
    c.figures("with a signal handler: pool_* totals", mtlib.totals(rep), {
        "allocations": allocs + reallocs + handler, "frees": frees + reallocs + handler,
        "bytes_allocated": 30 * (sum(sizes) + sum(resized)) + 5000 + 24 * handler,
        "in_use_bytes": 5000, "in_use_blocks": 4})


def case_own(ctx, c):
    prog = ctx.prog(ctx.args.program)
    want = native(ctx, [prog], "native")
    result, dumps = traced(ctx, [prog], "traced")
    if not one_dump(c, result, dumps, "run"):
        return
    said = [line for line in result.stderr.splitlines() if "defines its own" in line]
    c.eq("one line says the program's malloc is hooked", said,
         ["memtrace: the program defines its own malloc, calloc, realloc, free: "
          "traced through inline hooks"])
    c.text_eq("stdout as without memtrace", result.stdout, want.stdout)
    counts = re.search(r"own: allocs (\d+) frees (\d+) bytes (\d+)", result.stdout)
    allocs, frees, nbytes = (int(x) for x in counts.groups())
    rep = report_json(ctx, dumps[0])
    c.figures("totals", mtlib.totals(rep), {
        "allocations": allocs, "frees": frees, "bytes_allocated": nbytes,
        "in_use_bytes": 3 * 777 + 555, "in_use_blocks": 4})
    by_kind = rep["leaks"]["by_kind"]
    c.eq("3 x 777 lost", (by_kind["definite"]["bytes"], by_kind["definite"]["blocks"]), (2331, 3))
    c.eq("555 reachable", (by_kind["reachable"]["bytes"], by_kind["reachable"]["blocks"]), (555, 1))
    check_site(c, "the lost blocks", find_site(leak_sites(rep, "definite"), "leak_777"), "leak_777",
               "own_malloc.c", "p = malloc(777)", 777, 3)


def case_prologues(ctx, c):
    prog = ctx.prog(ctx.args.program)
    want = native(ctx, [prog], "native")
    options = ["--hook-alloc", "rip_alloc:0", "--hook-free", "branch_free:0",
               "--hook-alloc", "call_alloc:0", "--hook-alloc", "tiny_alloc:0",
               "--hook-alloc", "loop_alloc:0"]
    result, dumps = traced(ctx, [prog], "traced", options)
    if not one_dump(c, result, dumps, "run"):
        return
    c.text_eq("stdout as without memtrace", result.stdout, want.stdout)
    refused = sorted(line for line in result.stderr.splitlines() if "cannot hook" in line)
    c.eq("two functions refused, each in one line", refused, [
        "memtrace: cannot hook loop_alloc (--hook-alloc loop_alloc): the jump at +0x9 goes back "
        "into the first 6 bytes, which the patch overwrites",
        "memtrace: cannot hook tiny_alloc (--hook-alloc tiny_alloc): it ends (ret) after 3 bytes, "
        "shorter than the 5-byte patch"])
    rep = report_json(ctx, dumps[0], "--allocator", "rip_alloc,call_alloc,branch_free")
    c.figures("hooked totals", mtlib.totals(rep), {
        "allocations": 3, "frees": 2, "bytes_allocated": 24 + 40 + 100,
        "in_use_bytes": 40, "in_use_blocks": 1})
    sites = rep["allocations"]["sites"]
    c.eq("allocators of the sites", sorted((s["allocator"], s["bytes"]) for s in sites),
         [("call_alloc", 100), ("rip_alloc", 24), ("rip_alloc", 40)])
    c.eq("call sites", sorted(s["stack"][0]["line"] for s in sites),
         sorted([source_line("prologues.c", "a = rip_alloc(24)"),
                 source_line("prologues.c", "b = rip_alloc(40)"),
                 source_line("prologues.c", "c = call_alloc(100)")]))


def case_client(ctx, c):
    prog = ctx.prog(ctx.args.program)
    want = native(ctx, [prog], "native")
    c.eq("runs natively", want.returncode, 0)
    result, dumps = traced(ctx, [prog], "traced")
    if not one_dump(c, result, dumps, "run"):
        return
    c.text_eq("stdout the same as without memtrace", result.stdout, want.stdout)
    rep = report_json(ctx, dumps[0], "--allocator", "client")
    c.figures("client totals", mtlib.totals(rep), {
        "allocations": 15, "frees": 7, "bytes_allocated": 10 * 64 + 300 + 3 * 200 + 50,
        "in_use_bytes": 300 + 400 + 50 + 4 * 64, "in_use_blocks": 8})
    by_kind = rep["leaks"]["by_kind"]
    c.eq("lost", (by_kind["definite"]["bytes"], by_kind["definite"]["blocks"]), (750, 4))
    c.eq("reachable", (by_kind["reachable"]["bytes"], by_kind["reachable"]["blocks"]), (256, 4))
    c.check("sites say client", all(s["allocator"] == "client" for s in rep["allocations"]["sites"]))
    rep = report_json(ctx, dumps[0], "--between", "phase2,done")
    c.figures("between phase2 and done", mtlib.totals(rep), {
        "allocations": 3, "frees": 1, "bytes_allocated": 600, "in_use_bytes": 400,
        "in_use_blocks": 2})
    svg = dumps[0] + ".svg"
    tl = mtlib.run([ctx.memtrace, "timeline", dumps[0], "-o", svg], stdout_path=svg + ".out",
                   stderr_path=svg + ".err")
    c.eq("timeline exits 0", tl.returncode, 0)
    marks = [(g.get("data-label"), int(g.get("data-time-ns")))
             for g in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}g")
             if g.get("class") == "mark"]
    c.eq("the timeline draws the marks", [m[0] for m in marks], ["setup", "phase2", "done"])
    c.check("marks in time order", [m[1] for m in marks] == sorted(m[1] for m in marks))
    missing = mtlib.run([ctx.memtrace, "report", "--between", "phase2,nowhere", dumps[0]],
                        stdout_path=svg + ".m.out", stderr_path=svg + ".m.err")
    c.eq("an unknown mark: exit 1", missing.returncode, 1)
    c.eq("an unknown mark: one line", missing.stderr,
         "memtrace: the dump has no mark 'nowhere' after mark 'phase2'\n")


def case_options(ctx, c):
    prog = ctx.prog("prologues")
    bad = [(["--hook-alloc", "rip_alloc"], "--hook-alloc takes SYM:SIZEARG"),
           (["--hook-free", "branch_free:7"], "--hook-free takes SYM:PTRARG"),
           (["--hook-realloc", "r:1"], "--hook-realloc takes SYM:PTRARG:SIZEARG"),
           (["--hook-alloc", ":1"], "does not name a function")]
    for i, (options, words) in enumerate(bad):
        out = ctx.subdir("bad%d" % i)
        result = mtlib.memtrace_run(ctx, [prog], os.path.join(out, "%p.mtr"), options=options,
                                    cwd=out, logdir=out)
        c.eq("%s: exit 1" % " ".join(options), result.returncode, 1)
        lines = result.stderr.splitlines()
        c.check("%s: one line saying %r" % (" ".join(options), words),
                len(lines) == 1 and words in lines[0], result.stderr)
        c.eq("%s: program not run, no dump" % " ".join(options),
             (result.stdout, mtlib.dumps_in(out)), ("", []))


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = {"pool": case_pool, "own": case_own, "prologues": case_prologues,
            "client": case_client, "options": case_options}[ctx.args.case]
    mtlib.run_test(ctx, "hooks.%s.%s" % (ctx.args.case, ctx.args.program), lambda c: case(ctx, c))


if __name__ == "__main__":
    main()
