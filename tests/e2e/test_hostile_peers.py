#!/usr/bin/env python3
"""No one else may use memtrace against the program (issue 18.11).

A root program runs traced in plain LD_PRELOAD mode (the consumer is root's
`memtrace __serve` on an abstract socket listed in /proc/net/unix), 40 rounds
of 100 ms. While it runs, hostile_peer.py attacks that socket: a HELLO and a
4 KiB memfd handed over as a 1 MiB ring (the consumer died of SIGBUS), a
SCAN whose shared count it sets to 2**40 (the consumer crashed), 5 idle
connections (2 s of blocking each stalled the program 10 s), and 100 HELLOs
claiming other pids (100 files made in root's directory). The attacker is
  other-user  a dedicated user, memtrace-attacker (made here when missing);
  same-user   root, but no process memtrace traces;
  descendant  root, the traced program's own child (so that it is let in,
              and the consumer's checks of the memfds and the scan reply are
              what stands).
Each time: the program ends as bare (exit 0, "done", within 3 s of its 4 s),
its dump is complete (not truncated, exit status 0) and exact (40
allocations, 20 frees, 20 blocks of known bytes in use), and the output
directory holds no file but the dumps of traced processes.
Needs root (exit 77 otherwise).
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time

import mtlib

USER = "memtrace-attacker"
ROUNDS = 40
BARE_SECONDS = ROUNDS * 0.1


def ensure_user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        USER], check=True)
        return pwd.getpwnam(USER)


def as_user(entry):
    def drop():
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    return drop


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (it makes a user and attacks root's consumer)")
        sys.exit(77)
    ctx = mtlib.setup(__doc__)
    attacker = ensure_user()
    # the attacker's script where that user can read it
    shared = tempfile.mkdtemp(prefix="memtrace-hostile-")
    os.chmod(shared, 0o755)
    script = os.path.join(shared, "hostile_peer.py")
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile_peer.py"), script)
    os.chmod(script, 0o755)
    ring_h = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include",
                          "memtrace", "ring.h")
    version = re.search(r"#define MT_IPC_VERSION (\d+)u", mtlib.read_text(ring_h)).group(1)

    def scenario(c, name):
        out = ctx.subdir(name)
        os.chmod(out, 0o755)
        logs = ctx.subdir(name + "-logs")
        env = dict(os.environ, LD_PRELOAD=ctx.shim, MEMTRACE_OUTPUT=os.path.join(out, "%n.%p.mtr"),
                   MEMTRACE_BIN=ctx.memtrace, MEMTRACE_LOG=os.path.join(logs, "consumer.log"))
        argv = [ctx.prog("hostile_victim"), str(ROUNDS)]
        if name == "descendant":
            argv += [sys.executable, script, "memtrace-", version, os.path.join(logs, "child.json")]
        start = time.monotonic()
        victim = mtlib.start(argv, env=env, stdout_path=os.path.join(logs, "victim.out"),
                             stderr_path=os.path.join(logs, "victim.err"))
        result = None
        if name != "descendant":
            prefix = "memtrace-%d-" % victim.pid
            r = subprocess.run([sys.executable, script, prefix, version], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60, cwd=shared,
                               preexec_fn=as_user(attacker) if name == "other-user" else None)
            result = r.stdout.decode(errors="replace").strip()
        try:
            victim.wait(timeout=60)
        except subprocess.TimeoutExpired:
            mtlib.kill_group(victim)
            raise mtlib.TestError("the program did not end within 60 s")
        took = time.monotonic() - start
        if name == "descendant":
            result = mtlib.read_text(os.path.join(logs, "child.json")).strip()
        print("  %s: attacker got %s" % (name, result))
        c.eq("%s: the program exits 0" % name, victim.returncode, 0)
        c.eq("%s: its output" % name, mtlib.read_text(os.path.join(logs, "victim.out")), "done\n")
        # the descendant is waited for by the program: its 3 s of idling count
        bound = BARE_SECONDS + 3 + (4 if name == "descendant" else 0)
        c.check("%s: not stalled (%.1f s for %.1f s of rounds)" % (name, took, BARE_SECONDS),
                took < bound, "%.1f s, bound %.1f s" % (took, bound))
        # the serving consumer ends a second after its last process
        dump = os.path.join(out, "hostile_victim.%d.mtr" % victim.pid)
        try:
            mtlib.wait_for_dump(dump, timeout=30)
        except mtlib.TestError as e:
            c.check("%s: the program's dump is complete" % name, False, str(e))
        files = sorted(os.listdir(out))
        if not c.check("%s: the program's dump exists" % name, os.path.exists(dump), str(files)):
            return
        rep = mtlib.report(ctx, dump)
        t = mtlib.totals(rep)
        c.eq("%s: dump not truncated" % name, rep["process"].get("truncated"), False)
        c.eq("%s: exit status in the dump" % name, rep["process"].get("exit", {}).get("status"), 0)
        c.figures("%s: exact figures" % name, t,
                  {"allocations": ROUNDS, "frees": ROUNDS // 2, "in_use_blocks": ROUNDS // 2,
                   "in_use_bytes": sum(1000 + i for i in range(0, ROUNDS, 2)),
                   "bytes_allocated": sum(1000 + i for i in range(ROUNDS))})
        others = [f for f in files if f != os.path.basename(dump)]
        if name == "descendant":
            # the child is traced (it is the program's): its own dumps only
            # (its fork image, hostile_victim.PID, and the python it execs)
            c.check("%s: no file but the dumps of the program and its child" % name,
                    all(f.endswith(".mtr") for f in others) and len(others) <= 3, str(files))
        else:
            c.eq("%s: no file made for the attacker" % name, others, [])
        log = mtlib.read_text(os.path.join(logs, "consumer.log"))
        print("  consumer log: %s" % mtlib.tail(log, 4))

    def body(c):
        for name in ("other-user", "same-user", "descendant"):
            scenario(c, name)

    try:
        mtlib.run_test(ctx, "hostile_peers", body)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


if __name__ == "__main__":
    main()
