#!/usr/bin/env python3
"""The peak equals valgrind massif's: tests/programs/peak_phases.c churns
1 000 000 bytes through `churn` (never more than 100 000 live), then holds
150 000 bytes from `hold_big` and 30 000 from `hold_small` (the peak, 180 000
bytes in 200 blocks), frees all but a few blocks and exits. The program runs
under `memtrace run` and under massif (valgrind.bin, exact peak, every tree
node kept, no heap admin bytes, no stacks); `memtrace report --peak --format
json` must give massif's peak heap size, and its peak sites must be massif's
first-level tree nodes at the peak (the callers of malloc, which the victim
makes the same grouping as memtrace's identical stacks): same bytes, same
function, same line, same return address within its page. The largest peak
site must be hold_big, while the most bytes were allocated by churn.
"""

import json
import os
import re

import mtlib

PROGRAM = "peak_phases"
MASSIF_OPTIONS = [
    "--tool=massif",
    "--peak-inaccuracy=0",
    "--threshold=0",
    "--heap-admin=0",
    "--stacks=no",
]

# What peak_phases.c does, for the checks that do not need massif.
PEAK_BYTES = 150000 + 30000
PEAK_BLOCKS = 100 + 100
BIG_BYTES, BIG_BLOCKS = 150000, 100

# A first-level node of a massif heap tree: " n1: 150000 0x1091E6: hold_big (peak_phases.c:49)"
MASSIF_NODE = re.compile(r"^ n\d+: (\d+) (0x[0-9A-Fa-f]+): (.*?) \((.*)\)$")


def parse_massif_peak(path):
    """The snapshot of massif's output with heap_tree=peak: (mem_heap_B,
    [first-level nodes as dicts: bytes, address, function, file, line])."""
    text = mtlib.read_text(path)
    snapshots = text.split("#-----------\nsnapshot=")
    for snapshot in snapshots[1:]:
        lines = snapshot.splitlines()
        fields = dict(line.split("=", 1) for line in lines if re.match(r"^[A-Za-z_]+=", line))
        if fields.get("heap_tree") != "peak":
            continue
        heap = int(fields["mem_heap_B"])
        nodes = []
        for line in lines:
            m = MASSIF_NODE.match(line)
            if not m:
                continue
            where = m.group(4)
            file, _, line_no = where.rpartition(":")
            nodes.append({"bytes": int(m.group(1)), "address": int(m.group(2), 16),
                          "function": m.group(3), "file": file,
                          "line": int(line_no) if line_no.isdigit() else None})
        return heap, nodes
    raise mtlib.TestError("massif wrote no snapshot with heap_tree=peak (%s)" % path)


def report_json(ctx, dump, section, logdir):
    base = os.path.join(logdir, "report" + section.replace("-", "_"))
    result = mtlib.run([ctx.memtrace, "report", "--format", "json", section, dump],
                       stdout_path=base + ".json", stderr_path=base + ".err", timeout=60)
    if result.returncode != 0:
        raise mtlib.TestError("memtrace report %s exited %d: %s"
                              % (section, mtlib.exit_code(result.returncode),
                                 mtlib.tail(result.stderr)))
    try:
        return json.loads(result.stdout)
    except ValueError as error:
        raise mtlib.TestError("memtrace report %s printed no JSON (%s)" % (section, error))


def innermost(site):
    stack = site.get("stack") or []
    return stack[0] if stack else {}


def site_key(site):
    """(bytes, function, line) of a memtrace peak site, by its innermost frame."""
    frame = innermost(site)
    return (site.get("bytes"), frame.get("function"), frame.get("line"))


def main():
    ctx = mtlib.setup(__doc__)

    def body(c):
        mtlib.need_valgrind()
        prog = ctx.prog(PROGRAM)

        # ---- memtrace
        out = ctx.subdir("memtrace")
        result = mtlib.memtrace_run(ctx, [prog], os.path.join(out, "%n.%p.mtr"), cwd=out,
                                    logdir=out, timeout=60)
        c.eq("memtrace run exits 0", mtlib.exit_code(result.returncode), 0)
        dumps = mtlib.dumps_in(out)
        if not c.check("one dump written", len(dumps) == 1, "found %s" % dumps):
            return
        peak_rep = report_json(ctx, dumps[0], "--peak", out)
        alloc_rep = report_json(ctx, dumps[0], "--allocations", out)
        mtlib.check_report_shape(c, peak_rep, "memtrace")
        t = peak_rep["totals"]
        sites = (peak_rep.get("peak") or {}).get("sites") or []
        print("  memtrace: peak %s bytes in %s blocks; peak sites %s"
              % (t.get("peak_bytes"), t.get("peak_blocks"), [site_key(s) for s in sites]))

        # ---- massif
        vg = ctx.subdir("massif")
        massif_out = os.path.join(vg, "massif.out")
        vg_result = mtlib.run([mtlib.VALGRIND] + MASSIF_OPTIONS
                              + ["--massif-out-file=" + massif_out, prog],
                              cwd=vg, stdout_path=os.path.join(vg, "massif.stdout"),
                              stderr_path=os.path.join(vg, "massif.stderr"), timeout=100)
        c.eq("massif run exits 0", mtlib.exit_code(vg_result.returncode), 0)
        massif_heap, nodes = parse_massif_peak(massif_out)
        nodes = sorted((n for n in nodes if n["bytes"] > 0), key=lambda n: -n["bytes"])
        print("  massif:   peak %d bytes; first-level nodes %s"
              % (massif_heap, [(n["bytes"], n["function"], n["line"]) for n in nodes]))
        if not c.check("massif's peak tree has nodes", bool(nodes), "none in %s" % massif_out):
            return

        # ---- memtrace vs massif
        c.eq("totals.peak_bytes == massif's peak mem_heap_B", t.get("peak_bytes"), massif_heap)
        c.eq("peak.sites bytes add up to totals.peak_bytes",
             sum(s.get("bytes", 0) for s in sites), t.get("peak_bytes"))
        if not c.check("memtrace has peak sites", bool(sites), "peak.sites is empty"):
            return
        top, top_node = sites[0], nodes[0]
        frame = innermost(top)
        c.eq("peak.sites[0].bytes == massif's largest node at the peak",
             top.get("bytes"), top_node["bytes"])
        c.eq("peak.sites[0] innermost function == massif's", frame.get("function"),
             top_node["function"])
        c.eq("peak.sites[0] innermost line == massif's", frame.get("line"), top_node["line"])
        c.eq("peak.sites[0] innermost file (base name) == massif's",
             os.path.basename(frame.get("file") or ""), os.path.basename(top_node["file"]))
        # massif prints the return address less one (the call), memtrace the
        # return address; both lie at the same offset within their page
        try:
            address = int(frame.get("address") or "", 16)
        except ValueError:
            address = None
        c.eq("peak.sites[0] innermost address - 1 == massif's, within the page",
             None if address is None else (address - 1) & 0xfff, top_node["address"] & 0xfff)
        c.eq("every peak site == a massif first-level node (bytes, function, line)",
             sorted(site_key(s) for s in sites),
             sorted((n["bytes"], n["function"], n["line"]) for n in nodes))

        # ---- the point of the test: the peak is not where most was allocated
        c.eq("peak site is hold_big (memtrace)", frame.get("function"), "hold_big")
        c.eq("largest node at the peak is hold_big (massif)", top_node["function"], "hold_big")
        c.eq("peak.sites[0] holds hold_big's 150000 bytes in 100 blocks",
             (top.get("bytes"), top.get("blocks")), (BIG_BYTES, BIG_BLOCKS))
        c.eq("totals.peak_bytes, peak_blocks are the program's",
             (t.get("peak_bytes"), t.get("peak_blocks")), (PEAK_BYTES, PEAK_BLOCKS))
        alloc_sites = (alloc_rep.get("allocations") or {}).get("sites") or []
        top_alloc = innermost(alloc_sites[0]) if alloc_sites else {}
        c.eq("most bytes allocated by churn (allocations.sites[0])",
             (top_alloc.get("function"), alloc_sites[0].get("bytes") if alloc_sites else None),
             ("churn", 1000000))

    mtlib.run_test(ctx, "peak_massif", body)


if __name__ == "__main__":
    main()
