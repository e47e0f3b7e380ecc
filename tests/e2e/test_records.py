#!/usr/bin/env python3
"""Records in the dump, read with `memtrace __dump` (SPEC section 11):

- a library dlopened, used and dlclosed before exit keeps its MODULE_LOAD
  record (path, build id equal to the file's, its segments) and gets a
  MODULE_UNLOAD after its allocations, and the stacks of those allocations
  point into its segments: enough to symbolize them after it is gone;
- --max-depth N keeps at most N frames, and the default keeps more;
- --unwind fp and --unwind dwarf both see the library's caller.
"""
import re
import subprocess

import mtlib

N = 100  # blocks leaklib_run allocates


def dump_lines(ctx, dump):
    out = subprocess.run([ctx.memtrace, "__dump", dump], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise mtlib.TestError("__dump failed: " + out.stderr.strip())
    return out.stdout.splitlines()


def parse(lines):
    modules, unloads, stacks, allocs = {}, {}, {}, []
    for i, line in enumerate(lines):
        kind, _, rest = line.partition(" ")
        if kind == "module_load":
            m = re.match(r"t=\d+ id=(\d+) bias=0x([0-9a-f]+) path=(\S+) build_id=([0-9a-f]*)", rest)
            segs = [(int(a, 16), int(b, 16), x == "x")
                    for a, b, x in re.findall(r"seg=0x([0-9a-f]+)\+0x([0-9a-f]+)(x?)", rest)]
            modules[int(m.group(1))] = dict(line=i, bias=int(m.group(2), 16), path=m.group(3),
                                            build_id=m.group(4), segs=segs)
        elif kind == "module_unload":
            unloads[int(re.search(r"id=(\d+)", rest).group(1))] = i
        elif kind == "stack":
            fields = rest.split()
            stacks[int(fields[0][3:])] = [int(x, 16) for x in fields[2:]]
        elif kind == "alloc":
            f = dict(kv.split("=") for kv in rest.split())
            allocs.append(dict(line=i, size=int(f["size"]), stack=int(f["stack"])))
    return modules, unloads, stacks, allocs


def in_module(address, module):
    return any(module["bias"] + v <= address - 1 < module["bias"] + v + size
               for v, size, executable in module["segs"] if executable)


def file_build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else ""


def record(ctx, checker, tag, options):
    lib = ctx.prog("mt_leaklib")
    workdir = ctx.workdir
    dump = "%s/%s.mtr" % (workdir, tag)
    result = mtlib.memtrace_run(ctx, [ctx.prog("dlopen_main"), lib, str(N)], dump,
                                options=options, logdir=workdir, tag=tag)
    checker.eq("%s: memtrace exits 0" % tag, result.returncode, 0)
    return parse(dump_lines(ctx, dump))


def body(checker):
    ctx = checker.ctx
    lib = ctx.prog("mt_leaklib")
    main = ctx.prog("dlopen_main")
    for tag, options in (("dwarf", []), ("fp", ["--unwind", "fp"])):
        modules, unloads, stacks, allocs = record(ctx, checker, tag, options)
        libs = [mid for mid, m in modules.items() if m["path"].endswith("/" + lib.split("/")[-1])]
        if not checker.eq("%s: one MODULE_LOAD for the library" % tag, len(libs), 1):
            continue
        m = modules[libs[0]]
        checker.eq("%s: its build id is the file's" % tag, m["build_id"], file_build_id(lib))
        checker.check("%s: it has an executable segment" % tag, any(x for _, _, x in m["segs"]))
        checker.check("%s: it is unloaded (dlclose)" % tag, libs[0] in unloads)
        from_lib = [a for a in allocs if stacks.get(a["stack"]) and in_module(stacks[a["stack"]][0], m)]
        checker.eq("%s: allocations whose innermost frame is in the library" % tag, len(from_lib), N)
        checker.check("%s: all of them before its unload and after its load" % tag,
                      all(m["line"] < a["line"] < unloads.get(libs[0], -1) for a in from_lib))
        mains = [mm for mm in modules.values() if mm["path"] == main]
        callers_ok = bool(mains) and all(
            len(stacks[a["stack"]]) >= 2 and in_module(stacks[a["stack"]][1], mains[0])
            for a in from_lib)
        checker.check("%s: their caller is in the main program" % tag, callers_ok)
        if tag == "dwarf":
            checker.check("dwarf: default depth keeps more than 3 frames",
                          max(len(s) for s in stacks.values()) > 3)

    for depth in (1, 3):
        _, _, stacks, _ = record(ctx, checker, "depth%d" % depth, ["--max-depth", str(depth)])
        depths = [len(s) for s in stacks.values()]
        checker.check("--max-depth %d: no stack deeper" % depth, depths and max(depths) <= depth,
                      "depths %s" % sorted(set(depths)))
        checker.check("--max-depth %d: some stack that deep" % depth, depth in depths)


if __name__ == "__main__":
    ctx = mtlib.setup(__doc__)
    mtlib.run_test(ctx, "records", body)
