#!/usr/bin/env python3
"""dlopen relative to its caller (issue 18 point 1): glibc finds a bare
name along the RPATH/RUNPATH of the object that calls dlopen, expands
$ORIGIN from it and, for dlopen, puts the new object in its namespace. Under
memtrace the caller must still be the program's own code, not the shim.

tests/programs/dl_caller.c, built as dl_caller_rpath (DT_RPATH $ORIGIN),
dl_caller_runpath (DT_RUNPATH $ORIGIN) and dl_caller_plain (neither), run
from another directory with no LD_LIBRARY_PATH unless the case says so:

  runpath_bare  dlopen("libmt_dlplugin.so") found by the executable's RUNPATH
  rpath_bare    the same found by its RPATH
  origin        dlopen("$ORIGIN/libmt_dlplugin.so")
  lib           libmt_dlloader.so (RUNPATH $ORIGIN/dlplugins) dlopens
                libmt_dlplugin2.so, which only its RUNPATH finds
  ld_path       dl_caller_plain, the plugin found by LD_LIBRARY_PATH
  newlm         dlmopen(LM_ID_NEWLM, bare name) from the RUNPATH executable
  next          dlsym(RTLD_NEXT, "malloc"/"free") from the program: the
                blocks it makes through them are counted
  dlerror       a failed dlopen's message is still there for dlerror()
                after libc loaded a gconv module and allocated meanwhile
                (tests/programs/dlerror_keep.c): what the shim does for new
                modules calls no dl* function (exit status only)

Each case: the program exits 0 bare and under memtrace; the plugin's
1234-byte block is a definite leak whose stack names dlplugin_leak in the
plugin's file; the figures are valgrind memcheck's. newlm: the new
namespace has a libc of its own, whose malloc no preloaded library
interposes (valgrind replaces it, memtrace does not see it): only the exit
status is compared, and the plugin's function returns 42 there.

One known difference, case lib: when dlopen first searches along
libmt_dlloader.so's RUNPATH, ld.so allocates the search list (fillin_rpath,
elf/dl-load.c) with one 4-byte status per hardware-capability subdirectory
the CPU supports, and valgrind's emulated CPU supports fewer than the real
one (`ld.so --help` lists them: "supported, searched"). memtrace's bytes are
valgrind's plus 4 per subdirectory of difference, counted on this machine.
"""

import json
import os
import subprocess

import mtlib

CASES = {
    # case: (program, argv tail, plugin file, LD_LIBRARY_PATH to the programs)
    "runpath_bare": ("dl_caller_runpath", ["bare", "50"], "libmt_dlplugin.so", False),
    "rpath_bare": ("dl_caller_rpath", ["bare", "50"], "libmt_dlplugin.so", False),
    "origin": ("dl_caller_runpath", ["origin", "50"], "libmt_dlplugin.so", False),
    "lib": ("dl_caller_runpath", ["lib", "50"], "libmt_dlplugin2.so", False),
    "ld_path": ("dl_caller_plain", ["bare", "50"], "libmt_dlplugin.so", True),
    "newlm": ("dl_caller_runpath", ["newlm"], None, False),
    "next": ("dl_caller_runpath", ["next", "40"], None, False),
    "dlerror": ("dlerror_keep", [], None, False),
}


def leak_sites(ctx, dump):
    out = subprocess.run([ctx.memtrace, "report", "--leaks", "--format", "json", dump],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise mtlib.TestError("report --leaks failed: " + out.stderr.strip())
    return json.loads(out.stdout)["leaks"]


def searched_subdirectories(wrapper):
    """How many hardware-capability subdirectories ld.so searches, natively
    or under valgrind (its --help lists them)."""
    out = subprocess.run(wrapper + ["/lib64/ld-linux-x86-64.so.2", "--help"],
                         capture_output=True, text=True, timeout=120)
    return (out.stdout + out.stderr).count("supported, searched")


def main():
    ctx = mtlib.setup(__doc__, lambda p: p.add_argument("--case", required=True, choices=CASES))
    case = ctx.args.case

    def body(c):
        program, tail, plugin, use_ld_path = CASES[case]
        argv = [ctx.prog(program)] + tail
        env = dict(os.environ)
        env.pop("LD_LIBRARY_PATH", None)
        if use_ld_path:
            env["LD_LIBRARY_PATH"] = os.path.dirname(argv[0])
        bare_dir = ctx.subdir("bare")
        bare = mtlib.run(argv, env=env, cwd=bare_dir, stdout_path=os.path.join(bare_dir, "out"),
                         stderr_path=os.path.join(bare_dir, "err"), timeout=60)
        c.eq("bare run exits 0 (3: dlopen failed; dlerror: 1 the message was cleared)",
             mtlib.exit_code(bare.returncode), 0)
        out = ctx.subdir("memtrace")
        result = mtlib.memtrace_run(ctx, argv, os.path.join(out, "%n.%p.mtr"), env=env, cwd=out,
                                    logdir=out, timeout=60)
        c.eq("memtrace run exits 0 (3: dlopen failed; dlerror: 1 the message was cleared)",
             mtlib.exit_code(result.returncode), 0)
        dumps = mtlib.dumps_in(out)
        if not c.eq("one dump written", len(dumps), 1):
            return
        rep = mtlib.report(ctx, dumps[0])
        mtlib.check_report_shape(c, rep, "dump")
        mtlib.check_exit(c, rep, "dump", status=0)
        if case in ("newlm", "dlerror"):
            return
        if plugin:
            leaks = leak_sites(ctx, dumps[0])
            found = [s for s in leaks["sites"] if s["kind"] == "definite" and s["bytes"] == 1234]
            stack = found[0]["stack"] if found else []
            c.check("the plugin's 1234-byte block is a definite leak", len(found) == 1,
                    json.dumps(leaks["sites"])[:600])
            top = stack[0] if stack else {}
            c.eq("its stack starts in dlplugin_leak", top.get("function"), "dlplugin_leak")
            c.eq("in the plugin's file", os.path.basename(top.get("module") or ""), plugin)
        vg_dir = ctx.subdir("valgrind")
        vg = mtlib.valgrind_run(argv, env=env, logdir=vg_dir, cwd=vg_dir, timeout=100)
        c.eq("valgrind run exits 0", mtlib.exit_code(vg.returncode), 0)
        want = mtlib.valgrind_figures(vg.log)
        if want is None:
            raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
        if case == "lib":
            extra = 4 * (searched_subdirectories([]) -
                         searched_subdirectories([mtlib.VALGRIND, "-q"]))
            print("  valgrind's CPU: %d bytes fewer in ld.so's RUNPATH search list" % extra)
            want["bytes_allocated"] += extra
        got = mtlib.totals(rep)
        print("  memtrace %s" % mtlib.fmt(got))
        print("  valgrind %s" % mtlib.fmt(want))
        c.figures("memtrace == valgrind", got, want)

    mtlib.run_test(ctx, "dlcaller." + case, body)


if __name__ == "__main__":
    main()
