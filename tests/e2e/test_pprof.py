#!/usr/bin/env python3
"""`memtrace flamegraph --format pprof` (SPEC section 9), read back by
`go tool pprof` (Debian's golang-go), offline, with its caches under the
work directory.

- The file is gzip; pprof reads it; the sample types are alloc_objects,
  alloc_space, inuse_objects, inuse_space, inuse_space the default.
- Totals against `memtrace report`: inuse_space = in_use_bytes, inuse_objects
  = in_use_blocks, alloc_space = bytes_allocated, alloc_objects =
  allocations.
- Functions with their files and lines: tl_ramp in tl_phases.c; make_plain
  in report_leaks.c at the line the victim prints; make_inline at its line
  and marked inlined, in one location with outer, its caller.
- --metric: allocated makes alloc_space the default, peak adds peak_objects
  and peak_space (the default, its total = peak_bytes), temporary adds
  temporary_objects and temporary_space; a bad metric is refused.
"""
import gzip
import os
import re
import shutil
import subprocess

import mtlib

TYPES = ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"]


def find_go():
    for path in (shutil.which("go"), "/usr/lib/go/bin/go", "/usr/bin/go"):
        if path and os.access(path, os.X_OK):
            return path
    raise mtlib.TestError("go is missing: install golang-go (scripts/install-deps.sh)")


class Pprof:
    def __init__(self, ctx):
        self.go = find_go()
        home = os.path.join(ctx.workdir, "gohome")
        os.makedirs(home, exist_ok=True)
        self.env = dict(os.environ, HOME=home, GOCACHE=os.path.join(home, "cache"),
                        GOPATH=os.path.join(home, "gopath"), GOTOOLCHAIN="local", GOFLAGS="",
                        GOPROXY="off", GOTELEMETRY="off", PPROF_TMPDIR=home,
                        PPROF_BINARY_PATH=home)

    def run(self, *args):
        out = subprocess.run([self.go, "tool", "pprof", *args], capture_output=True, text=True,
                             env=self.env, timeout=120)
        if out.returncode != 0:
            raise mtlib.TestError("go tool pprof %s exited %d: %s"
                                  % (" ".join(args), out.returncode, mtlib.tail(out.stderr)))
        return out.stdout

    def top(self, path, sample_index=None, lines=False):
        """(type, total) of `-top`, and its text."""
        args = ["-top", "-unit=byte"] + (["-lines"] if lines else [])
        if sample_index:
            args.append("-sample_index=" + sample_index)
        text = self.run(*args, path)
        kind = re.search(r"^Type: (\S+)$", text, re.M)
        total = re.search(r"^Showing nodes accounting for \S+, [\d.]+% of (\d+)(?:B|byte)? total$", text, re.M)
        if not kind or not total:
            raise mtlib.TestError("go tool pprof -top printed no type or total:\n%s" % text[:800])
        return kind.group(1), int(total.group(1)), text


def export(ctx, dump, path, *options):
    out = subprocess.run([ctx.memtrace, "flamegraph", "--format", "pprof", *options, "-o", path, dump],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or not os.path.exists(path):
        raise mtlib.TestError("flamegraph --format pprof %s exited %d: %s"
                              % (" ".join(options), out.returncode, out.stderr.strip()))
    return path


def record(checker, name, argv):
    ctx = checker.ctx
    dump = os.path.join(ctx.workdir, name + ".mtr")
    result = mtlib.memtrace_run(ctx, argv, dump, logdir=ctx.workdir, tag=name)
    checker.eq("%s: memtrace run exits 0" % name, result.returncode, 0)
    return dump, mtlib.report(ctx, dump)["totals"]


def check_totals(checker, pprof, label, path, t):
    kind, total, _ = pprof.top(path)
    checker.eq("%s: default sample type" % label, kind, "inuse_space")
    checker.eq("%s: inuse_space total = in_use_bytes" % label, total, t["in_use_bytes"])
    for index, key in (("inuse_objects", "in_use_blocks"), ("alloc_space", "bytes_allocated"),
                       ("alloc_objects", "allocations")):
        kind, total, _ = pprof.top(path, sample_index=index)
        checker.eq("%s: %s total = %s" % (label, index, key), (kind, total), (index, t[key]))


def body(checker):
    ctx = checker.ctx
    pprof = Pprof(ctx)

    dump, t = record(checker, "tl", [ctx.prog("tl_phases")])
    path = export(ctx, dump, os.path.join(ctx.workdir, "tl.pb.gz"))
    with open(path, "rb") as f:
        data = f.read()
    checker.eq("gzip magic", data[:2], b"\x1f\x8b")
    checker.check("gunzips", len(gzip.decompress(data)) > 0)
    raw = pprof.run("-raw", path)
    header = re.search(r"^Samples:\n(.*)$", raw, re.M)
    checker.eq("sample types, inuse_space the default", header.group(1).split() if header else None,
               TYPES[:3] + [TYPES[3] + "[dflt]"])
    checker.check("a comment says what in use means", "not freed when the process ended" in raw)
    check_totals(checker, pprof, "tl_phases", path, t)
    _, _, text = pprof.top(path, sample_index="alloc_space", lines=True)
    checker.check("tl_ramp with its file and line",
                  re.search(r"\btl_ramp \S*tests/programs/tl_phases\.c:\d+\b", text) is not None,
                  text[:1500])
    checker.check("tl_spike with its file", re.search(r"\btl_spike \S*tl_phases\.c:\d+", text)
                  is not None)
    checker.check("mappings: the victim's path", re.search(r"^\d+: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ "
                                                           r"\S*/tl_phases\b", raw, re.M) is not None)

    # metrics
    _, total, _ = pprof.top(export(ctx, dump, os.path.join(ctx.workdir, "peak.pb.gz"),
                                   "--metric", "peak"))
    checker.eq("--metric peak: peak_space total = peak_bytes", total, t["peak_bytes"])
    raw = pprof.run("-raw", os.path.join(ctx.workdir, "peak.pb.gz"))
    header = re.search(r"^Samples:\n(.*)$", raw, re.M)
    checker.eq("--metric peak: sample types", header.group(1).split() if header else None,
               TYPES + ["peak_objects/count", "peak_space/bytes[dflt]"])
    kind, total, _ = pprof.top(os.path.join(ctx.workdir, "peak.pb.gz"), sample_index="inuse_space")
    checker.eq("--metric peak: inuse_space still = in_use_bytes", total, t["in_use_bytes"])
    kind, total, _ = pprof.top(export(ctx, dump, os.path.join(ctx.workdir, "alloc.pb.gz"),
                                      "--metric", "allocated"))
    checker.eq("--metric allocated: default alloc_space, its total", (kind, total),
               ("alloc_space", t["bytes_allocated"]))
    kind, _, _ = pprof.top(export(ctx, dump, os.path.join(ctx.workdir, "count.pb.gz"),
                                  "--metric", "allocations"))
    checker.eq("--metric allocations: default alloc_objects", kind, "alloc_objects")
    kind, _, _ = pprof.top(export(ctx, dump, os.path.join(ctx.workdir, "temp.pb.gz"),
                                  "--metric", "temporary"))
    checker.eq("--metric temporary: default temporary_objects", kind, "temporary_objects")

    # inlined frames, plain functions, libc
    dump, t = record(checker, "leaks", [ctx.prog("report_leaks")])
    marks = {}
    for line in mtlib.read_text(os.path.join(ctx.workdir, "leaks.out")).splitlines():
        m = re.match(r"LEAK (\d+) (\S+) (\d+)$", line)
        if m:
            marks[m.group(2)] = int(m.group(3))
    path = export(ctx, dump, os.path.join(ctx.workdir, "leaks.pb.gz"))
    check_totals(checker, pprof, "report_leaks", path, t)
    _, _, text = pprof.top(path, lines=True)
    for fn, suffix in (("make_plain", ""), ("make_inline", r" \(inline\)")):
        line = marks.get(fn)
        checker.check("%s at report_leaks.c:%s%s" % (fn, line, " (inline)" if suffix else ""),
                      line and re.search(r"^\s*2\d\d\dB .* %s \S*report_leaks\.c:%d%s$"
                                         % (fn, line, suffix), text, re.M) is not None, text[:1500])
    raw = pprof.run("-raw", path)
    checker.check("make_inline and outer share one location, innermost first",
                  re.search(r"^\s+\d+: 0x[0-9a-f]+ M=\d+ make_inline \S+:%d s=0\n\s+outer \S+"
                            % marks.get("make_inline", 0), raw, re.M) is not None, raw[-1500:])

    bad = subprocess.run([ctx.memtrace, "flamegraph", "--format", "pprof", "--metric", "nope",
                          "-o", os.path.join(ctx.workdir, "bad.pb.gz"), dump],
                         capture_output=True, text=True, timeout=60)
    checker.check("a bad metric: non-zero exit, one line", bad.returncode != 0 and
                  len(bad.stderr.strip().splitlines()) == 1, bad.stderr)


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__)
    mtlib.run_test(ctx, "pprof", body)
