#!/usr/bin/env python3
"""The attacker of e2e.hostile.peers (issue 18.11): finds memtrace's
abstract socket in /proc/net/unix and tries, against whoever listens there:
  ring     a HELLO, then a RING message with a 4 KiB memfd claiming 1 MiB;
  scan     a HELLO, then SCAN, and the scan memfd's count set to 2**40
           (and the memfd truncated) before SCAN_DONE;
  idle     5 connections that say nothing for 3 s;
  hellos   100 HELLOs claiming 100 pids.
Prints one JSON line of what it got (to OUT_FILE when given).
Usage: hostile_peer.py NAME_PREFIX IPC_VERSION [OUT_FILE]"""

import json
import mmap
import os
import socket
import struct
import sys
import time

HELLO, REPLY, RING, SCAN, SCAN_DONE = 1, 2, 3, 4, 5
IPC_VERSION = int(sys.argv[2]) if len(sys.argv) > 2 else 2  # ring.h MT_IPC_VERSION
RING_MAGIC = 0x31474E4952544D4D


def find_socket(prefix, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/unix") as f:
            for line in f:
                path = line.split()[-1]
                if path.startswith("@" + prefix):
                    return path
        time.sleep(0.02)
    return None


def connect(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(3)
    s.connect("\0" + name[1:])
    return s


def hello(s, pid):
    s.send(struct.pack("<IIiiiIQII", HELLO, IPC_VERSION, pid, 1, 0, 0, 0, 0, 0))
    try:
        data = s.recv(4096)
    except (socket.timeout, OSError):
        return None
    return struct.unpack("<II", data[:8])[1] if len(data) >= 8 else None


def attack_ring(name):
    s = connect(name)
    status = hello(s, os.getpid())
    fd = os.memfd_create("evil-ring")
    os.ftruncate(fd, 4096)
    with mmap.mmap(fd, 4096) as m:
        m[128:144] = struct.pack("<QQ", RING_MAGIC, 1 << 20)  # magic, capacity (ring.h)
    try:
        socket.send_fds(s, [struct.pack("<IIQ", RING, 1, 1 << 20)], [fd])
        reply = s.recv(4096)
        ring_status = struct.unpack("<II", reply[:8])[1] if len(reply) >= 8 else None
    except (socket.timeout, OSError) as e:
        ring_status = str(e)
    os.close(fd)
    s.close()
    return {"hello": status, "ring": ring_status}


def attack_scan(name):
    s = connect(name)
    status = hello(s, os.getpid())
    result = {"hello": status}
    try:
        s.send(struct.pack("<II", SCAN, 0))
        msg, fds, _, _ = socket.recv_fds(s, 4096, 1)
        result["scan_reply"] = struct.unpack("<II", msg[:8])[1] if len(msg) >= 8 else None
        if fds:
            fd = fds[0]
            size = os.fstat(fd).st_size
            with mmap.mmap(fd, size) as m:
                m[0:8] = struct.pack("<Q", 1 << 40)
            try:
                os.ftruncate(fd, 0)
                result["truncated"] = True
            except OSError:
                result["truncated"] = False
            os.close(fd)
        s.send(struct.pack("<II", SCAN_DONE, 0))
        time.sleep(0.3)
    except (socket.timeout, OSError) as e:
        result["error"] = str(e)
    s.close()
    return result


def main():
    name = find_socket(sys.argv[1])
    if not name:
        print(json.dumps({"error": "no socket"}))
        return 1
    out = {"socket": name}
    for what, attack in (("ring", attack_ring), ("scan", attack_scan)):
        try:
            out[what] = attack(name)
        except OSError as e:
            out[what] = {"error": str(e)}
    idle = []
    try:
        for _ in range(5):
            idle.append(connect(name))
        time.sleep(3)
    except OSError as e:
        out["idle_error"] = str(e)
    for s in idle:
        s.close()
    statuses = {}
    for k in range(100):
        try:
            s = connect(name)
            st = hello(s, 4000000 + k)
            statuses[str(st)] = statuses.get(str(st), 0) + 1
            s.close()
        except OSError as e:
            statuses[str(e)] = statuses.get(str(e), 0) + 1
    out["hellos"] = statuses
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w") as f:
            f.write(json.dumps(out) + "\n")
    else:
        print(json.dumps(out))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
