#!/usr/bin/env python3
"""Output encodings (issue 18.13): whatever bytes a dump holds, JSON is valid
UTF-8 and text holds no terminal control sequence.

A program named `caf\\xe9` (not UTF-8) runs traced with an argument holding
ESC sequences (a colour, a title change, a cursor move), one holding C1
controls and bytes that are no UTF-8, and one of valid UTF-8 that must stay
as it is. Then:
  - `report --format json` (summary and full) parses with Python's strict
    json from bytes decoded as strict UTF-8, and holds the documented
    replacement (man/memtrace-report.1): each byte that is not part of valid
    UTF-8 is U+FFFD, control characters are \\u00XX escapes, valid UTF-8 is
    kept;
  - the text report, `check` and `run`'s own summary have no byte below 0x20
    but newline, no DEL, no C1 control: they show them as \\xNN;
  - a crafted dump (dumpcraft.py) whose program, arguments, allocator name
    and mark carry the same bytes: its JSON report keeps the allocator's name
    with the same rule; SVG parses as XML, speedscope and SARIF
    as strict JSON, the JUnit file as XML.
"""

import json
import os
import re
import shutil
import xml.dom.minidom

import dumpcraft
import mtlib

ESC_ARG = b"\x1b[31mred\x1b]0;pwned\x07\x1b[2J"
BINARY_ARG = b"bin\x80\x9b\xc2\x9b\xff\xfe\x7f\x01end"
UTF8_ARG = "naïve-日本".encode()


def control_bytes(data):
    """Terminal controls left in text: C0 but newline and tab, DEL, C1 (as
    UTF-8 U+0080..U+009F) and raw bytes 0x80..0x9f not in UTF-8."""
    bad = [b for b in data if (b < 0x20 and b not in (0x0A, 0x09)) or b == 0x7F]
    text = data.decode("utf-8", errors="surrogateescape")
    bad += [c for c in text if 0x80 <= ord(c) <= 0x9F]
    return bad


def strict_json(data):
    return json.loads(data.decode("utf-8", errors="strict"),
                      parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def main():
    ctx = mtlib.setup(__doc__)

    def body(c):
        work = ctx.subdir("run")
        prog = os.path.join(work.encode(), b"caf\xe9")
        shutil.copy(ctx.prog("count_mixed"), prog)
        os.chmod(prog, 0o755)
        out = os.path.join(work, "dump.mtr")
        r = mtlib.memtrace_run(ctx, [prog, b"100", ESC_ARG, BINARY_ARG, UTF8_ARG], out,
                               logdir=work, cwd=work, timeout=60)
        c.check("the program ran traced", os.path.exists(out), "exit %d" % r.returncode)
        if not os.path.exists(out):
            return
        with open(os.path.join(work, "memtrace.err"), "rb") as f:
            run_err = f.read()
        c.eq("run's summary: no terminal control bytes", control_bytes(run_err), [])
        for args, tag in ((["--summary", "--format", "json"], "summary"),
                          (["--format", "json"], "full")):
            res = mtlib.run([ctx.memtrace, "report"] + args + [out],
                            stdout_path=os.path.join(work, tag + ".json"),
                            stderr_path=os.path.join(work, tag + ".err"))
            with open(os.path.join(work, tag + ".json"), "rb") as f:
                data = f.read()
            try:
                doc = strict_json(data)
                c.check("json %s: strict UTF-8 and strict JSON" % tag, True)
            except ValueError as e:
                c.check("json %s: strict UTF-8 and strict JSON" % tag, False, str(e)[:200])
                continue
            proc = doc["process"] if "process" in doc else doc["processes"][0]
            command = proc["command"]
            c.eq("json %s: program name, invalid byte as U+FFFD" % tag,
                 os.path.basename(command[0]), "caf\ufffd")
            c.eq("json %s: ESC argument kept, escaped" % tag, command[2],
                 ESC_ARG.decode("ascii"))
            c.eq("json %s: binary argument, each invalid byte U+FFFD" % tag, command[3],
                 "bin\ufffd\ufffd\u009b\ufffd\ufffd\u007f\u0001end")
            c.eq("json %s: UTF-8 argument kept" % tag, command[4], UTF8_ARG.decode())
            c.check("json %s: controls written as \\u escapes" % tag,
                    b"\\u001b[31m" in data and not control_bytes(data.replace(b"\n", b"")),
                    repr(data[:300]))
        for args, tag in ((["report"], "text"), (["report", "--leaks"], "leaks"),
                          (["check", "--max-leaked", "0"], "check")):
            res = mtlib.run([ctx.memtrace] + args + [out],
                            stdout_path=os.path.join(work, tag + ".out"),
                            stderr_path=os.path.join(work, tag + ".err"))
            with open(os.path.join(work, tag + ".out"), "rb") as f:
                data = f.read()
            with open(os.path.join(work, tag + ".err"), "rb") as f:
                data += f.read()
            c.eq("%s: no terminal control bytes" % tag, control_bytes(data), [])
            if tag == "text":
                c.check("text: ESC shown as \\x1b", b"\\x1b[31mred" in data, repr(data[:400]))
                c.check("text: invalid byte of the name shown as \\xe9", b"caf\\xe9" in data,
                        repr(data[:400]))
                c.check("text: UTF-8 argument kept", UTF8_ARG in data, repr(data[:400]))

        # crafted: names in frames, allocator, mark
        d = dumpcraft.Dump()
        d.process(exe=b"/bin/caf\xe9", argv=[b"caf\xe9", ESC_ARG, BINARY_ARG, b"nul\x00kept"])
        d.allocator(65, b"pool\x1b[2J\xff")
        d.mark(b"mark\x1b]0;x\x07\xe9")
        d.pyframe(1, 3, b"fn\x1b[1m\xe9\x00tail", b"file\xff.py")
        d.stack(1, [0x401000, 0xF700000000000000 | (1 << 32) | 1])
        d.alloc(0x10000, 100, 1, function=65)
        d.exit()
        d.end()
        crafted = os.path.join(work, "crafted.mtr")
        d.save(crafted)
        outputs = {}
        for fmt, ext in (("svg", "svg"), ("speedscope", "json")):
            path = os.path.join(work, "flame." + ext)
            mtlib.run([ctx.memtrace, "flamegraph", "--metric", "allocated", "--format", fmt, "-o",
                       path, crafted], stdout_path=path + ".out", stderr_path=path + ".err")
            outputs[fmt] = path
        junit = os.path.join(work, "junit.xml")
        sarif = os.path.join(work, "out.sarif")
        mtlib.run([ctx.memtrace, "check", "--leak-kinds", "all", "--accept-unchecked",
                   "--junit", junit, "--sarif", sarif, crafted],
                  stdout_path=junit + ".out", stderr_path=junit + ".err")
        for label, path, kind in (("svg", outputs["svg"], "xml"), ("junit", junit, "xml"),
                                  ("speedscope", outputs["speedscope"], "json"),
                                  ("sarif", sarif, "json")):
            if not c.check("%s written" % label, os.path.exists(path),
                           mtlib.read_text(path + ".err") if os.path.exists(path + ".err") else
                           mtlib.read_text(junit + ".err")):
                continue
            with open(path, "rb") as f:
                data = f.read()
            try:
                if kind == "xml":
                    xml.dom.minidom.parseString(data)
                else:
                    strict_json(data)
                c.check("%s parses (strict)" % label, True)
            except Exception as e:  # noqa: BLE001 - any parse error is the failure
                c.check("%s parses (strict)" % label, False, str(e)[:200])
        for tag, args in (("crafted text", ["report", "--leaks", "--leak-kinds", "all"]),
                          ("crafted json", ["report", "--format", "json"])):
            path = os.path.join(work, tag.replace(" ", "_"))
            mtlib.run([ctx.memtrace] + args + [crafted], stdout_path=path, stderr_path=path + ".err")
            with open(path, "rb") as f:
                data = f.read()
            if tag.endswith("json"):
                try:
                    doc = strict_json(data)
                    c.check("%s parses (strict)" % tag, True)
                    c.eq("%s: an argument with a NUL kept whole" % tag,
                         doc["process"]["command"][3], "nul\u0000kept")
                    c.check("%s: the allocator's name escaped" % tag,
                            r"pool\u001b[2J\ufffd" in json.dumps(doc), repr(data[:600]))
                except ValueError as e:
                    c.check("%s parses (strict)" % tag, False, str(e)[:200])
            else:
                c.eq("%s: no terminal control bytes" % tag, control_bytes(data), [])

    mtlib.run_test(ctx, "output_encodings", body)


if __name__ == "__main__":
    main()
