#!/usr/bin/env python3
"""`memtrace report` on bad dumps (SPEC sections 6 and 11): a missing file, an
empty file, a text file, a dump with a wrong magic or version, and a dump
whose compressed stream is replaced by garbage must each give exactly one line
on stderr starting with "memtrace: " and a non-zero exit, with nothing on
stdout. A real dump cut short at 40 places must never crash the reader: each
either reads (exit 0, valid JSON whose totals do not exceed the whole dump's)
or is refused the same clean way.
"""

import json
import os

import mtlib


def main():
    ctx = mtlib.setup(__doc__)

    def report_raw(path, tag):
        logs = os.path.join(ctx.workdir, "logs")
        os.makedirs(logs, exist_ok=True)
        return mtlib.run([ctx.memtrace, "report", "--summary", "--format", "json", path],
                         stdout_path=os.path.join(logs, tag + ".out"),
                         stderr_path=os.path.join(logs, tag + ".err"), timeout=60)

    def refused(c, label, path):
        r = report_raw(path, label.replace(" ", "-"))
        lines = r.stderr.splitlines()
        c.check("%s: refused with a non-zero exit, no crash" % label, r.returncode > 0,
                "exit %d" % mtlib.exit_code(r.returncode))
        c.check("%s: exactly one line on stderr, starting with 'memtrace: '" % label,
                len(lines) == 1 and lines[0].startswith("memtrace: "), "stderr: %r" % r.stderr[:500])
        c.eq("%s: nothing on stdout" % label, r.stdout, "")
        if lines:
            print("  message: %s" % lines[0])

    def body(c):
        out = ctx.subdir("dump")
        r = mtlib.memtrace_run(ctx, [ctx.prog("count_mixed"), "20000"], os.path.join(out, "%n.%p.mtr"),
                               cwd=out, logdir=out, timeout=60)
        dumps = mtlib.dumps_in(out)
        if not c.check("a dump to work on", r.returncode == 0 and len(dumps) == 1,
                       "exit %d, %s" % (mtlib.exit_code(r.returncode), dumps)):
            return
        with open(dumps[0], "rb") as f:
            whole = f.read()
        full = mtlib.totals(mtlib.report(ctx, dumps[0]))
        bad = ctx.subdir("bad")

        def write(name, data):
            path = os.path.join(bad, name)
            with open(path, "wb") as f:
                f.write(data)
            return path

        refused(c, "missing file", os.path.join(bad, "no-such.mtr"))
        refused(c, "empty file", write("empty.mtr", b""))
        refused(c, "text file", write("text.mtr", b"this is not a memtrace dump\n" * 20))
        refused(c, "wrong magic", write("magic.mtr", b"NOTATRACE" + whole[9:]))
        version = bytearray(whole)
        version[8:12] = (99).to_bytes(4, "little")
        refused(c, "unknown version", write("version.mtr", bytes(version)))
        refused(c, "garbage after the header", write("garbage.mtr", whole[:16] + bytes(
            (i * 7919 + 13) % 251 for i in range(4096))))

        crashed = []
        for n in range(1, 41):
            cut = len(whole) * n // 41
            path = write("cut-%d.mtr" % cut, whole[:cut])
            r = report_raw(path, "cut-%d" % cut)
            if r.returncode == 0:
                try:
                    t = json.loads(r.stdout)["totals"]
                    ok = all(t[k] <= full[k] for k in ("allocations", "frees", "bytes_allocated"))
                except (ValueError, KeyError, TypeError):
                    ok = False
                if not ok:
                    crashed.append("cut at %d: exit 0 but bad JSON or totals: %s" % (cut, r.stdout[:200]))
            elif r.returncode < 0:
                crashed.append("cut at %d: killed by signal %d" % (cut, -r.returncode))
            else:
                lines = r.stderr.splitlines()
                if len(lines) != 1 or not lines[0].startswith("memtrace: "):
                    crashed.append("cut at %d: exit %d with stderr %r" % (cut, r.returncode, r.stderr[:200]))
        c.check("a dump cut short at 40 places: read, or refused in one line; never a crash",
                not crashed, "; ".join(crashed[:5]))

    mtlib.run_test(ctx, "report_errors", body)


if __name__ == "__main__":
    main()
