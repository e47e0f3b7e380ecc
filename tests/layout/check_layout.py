#!/usr/bin/env python3
"""The layout's rules (docs/ARCHITECTURE.md), checked on the source tree:

  1. includes run one way along the data path: each folder may include only
     the folders listed for it in ALLOWED (and include/memtrace/, and its
     own files); report/'s stages never include cli/ or preload/, the shim
     (preload/) never includes report/ or cli/;
  2. no source file of the project is longer than MAX_LINES;
  3. every source file opens with a comment saying what it owns;
  4. README.md's layout table names every folder of preload/, cli/ and
     report/ that holds sources, and every folder it names exists.

usage: check_layout.py SOURCE_DIR
Prints one line per breach and exits 1, or prints a summary and exits 0.
"""
import os
import re
import sys

MAX_LINES = 650

# folder -> the folders whose headers it may include ("report" is the
# shared helpers at report/'s top: util.h, text_format.h, xml_util.h)
ALLOWED = {
    "preload": set(),
    "report": set(),
    "report/read": {"report"},
    "report/symbolize": {"report", "report/read"},
    "report/analyze": {"report", "report/read", "report/symbolize"},
    "report/export": {"report", "report/read", "report/symbolize", "report/analyze"},
    "report/ci": {"report", "report/read", "report/symbolize", "report/analyze"},
    "cli/consumer": {"report", "report/read", "report/analyze"},
    "cli": {"cli/consumer", "report", "report/read", "report/symbolize", "report/analyze",
            "report/export", "report/ci"},
}
SOURCE_DIRS = ("preload", "report", "cli", "include", "tests/unit", "tests/fuzz", "tests/programs",
               "bench", "examples")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def sources(root):
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if name.endswith((".c", ".h", ".cc", ".S")):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def resolve(root, path, target):
    """The folder (relative to root) of the file an include names, or None
    when it is not one of the project's (a system or a test helper's)."""
    here = os.path.dirname(path)
    candidates = [os.path.join(here, target)]
    if path.startswith(("report/", "cli/", "tests/")):
        candidates.append(os.path.join("report", target))
    if path.startswith("cli/"):
        candidates.append(os.path.join("cli", target))
    candidates.append(os.path.join("include", target))
    for c in candidates:
        c = os.path.normpath(c)
        if os.path.isfile(os.path.join(root, c)):
            return os.path.dirname(c)
    return None


def readme_breaches(root):
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        named = set(re.findall(r"^\| `([^`]+)/` \|", f.read(), re.M))
    out = ["README.md: the layout table names %s/, which does not exist" % n
           for n in sorted(named) if not os.path.isdir(os.path.join(root, n))]
    for top in ("preload", "cli", "report"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            rel = os.path.relpath(dirpath, root)
            if any(n.endswith((".c", ".h")) for n in files) and rel not in named and \
                    not (rel == "report" and all(n.endswith(".h") for n in files if n.endswith((".c", ".h")))):
                out.append("README.md: the layout table does not name %s/" % rel)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    breaches = []
    checked = 0
    for path in sources(root):
        checked += 1
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.count("\n")
        if lines > MAX_LINES:
            breaches.append("%s: %d lines (at most %d)" % (path, lines, MAX_LINES))
        if not text.lstrip().startswith(("/*", "//", "#!")):
            breaches.append("%s: does not open with a comment saying what it owns" % path)
        folder = os.path.dirname(path)
        if folder not in ALLOWED:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = resolve(root, path, m.group(1))
            if target is None or target == folder or target.startswith("include"):
                continue
            if target not in ALLOWED[folder]:
                breaches.append("%s:%d: %s/ may not include %s (from %s/)"
                                % (path, number, folder, m.group(1), target))
    breaches += readme_breaches(root)
    for b in breaches:
        print(b)
    if breaches:
        sys.exit(1)
    print("layout: %d source files, every include along the data path, none over %d lines"
          % (checked, MAX_LINES))


if __name__ == "__main__":
    main()
