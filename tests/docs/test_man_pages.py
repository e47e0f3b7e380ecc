"""Man pages stay in step with --help: every long option that a command's
--help lists appears in its man page, and every option the man page
documents is accepted by --help's list (no stale options).

usage: test_man_pages.py MEMTRACE MAN_DIR
"""
import re
import subprocess
import sys

memtrace, man_dir = sys.argv[1], sys.argv[2]
failed = passed = 0


def check(cond, what):
    global failed, passed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def options_in(text):
    # roff escapes the dash: \-\-output or \fB\-\-output\fR
    text = text.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text))


pages = {"": "memtrace.1", "run": "memtrace-run.1", "report": "memtrace-report.1",
         "timeline": "memtrace-timeline.1", "diff": "memtrace-diff.1"}
pages["check"] = "memtrace-check.1"
pages["flamegraph"] = "memtrace-flamegraph.1"
for command, page in pages.items():
    argv = [memtrace] + ([command] if command else []) + ["--help"]
    out = subprocess.run(argv, capture_output=True, text=True)
    check(out.returncode == 0, f"{' '.join(argv)} exits 0")
    help_opts = options_in(out.stdout)
    check(len(help_opts) > 0, f"{' '.join(argv)} lists options")
    with open(f"{man_dir}/{page}") as f:
        man = f.read()
    # example command lines ("$ ...") show other programs' and commands' options
    man_opts = options_in("\n".join(l for l in man.splitlines() if not l.startswith("$ ")))
    for opt in sorted(help_opts):
        check(opt in man_opts, f"{page} documents {opt} (in --help)")
    for opt in sorted(man_opts - help_opts):
        # the top page may mention subcommand options; subcommand pages may not invent any
        if command:
            check(False, f"{page} documents {opt}, which `memtrace {command} --help` does not list")
    # every command the top-level help names has a page
    if not command:
        for sub in re.findall(r"^  (\w+) ", out.stdout, re.M):
            check(sub in pages, f"command {sub} has a man page")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
