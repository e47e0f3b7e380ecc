"""A small writer of memtrace dumps (include/memtrace/format.h, version 3),
for tests that craft dumps the recorder would never write. Records are
appended one by one; `save` compresses the stream with the zstd command-line
tool (the format's stream is any sequence of zstd frames).

    d = dumpcraft.Dump()
    d.process(pid=1, exe=b"/bin/x", argv=[b"x"])
    d.stack(1, [0x401000])
    d.alloc(address=0x1000, size=16, stack=1)
    d.end()
    d.save(path)
"""

import struct
import subprocess

REC_PROCESS, REC_STACK, REC_THREAD, REC_ALLOC, REC_FREE = 1, 4, 5, 6, 7
REC_EXIT, REC_END, REC_SCAN, REC_LEAK_KIND, REC_PYFRAME = 11, 12, 13, 14, 15
REC_ALLOCATOR, REC_MARK, REC_STACK_LIKE = 16, 17, 19
FN_MALLOC = 1


def u(v):
    """Unsigned LEB128."""
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(v):
    """Signed: zigzag, then LEB128 (64-bit)."""
    return u(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def string(b):
    return u(len(b)) + b


class Dump:
    def __init__(self, version=3):
        self.version = version
        self.body = bytearray()

    def raw(self, data):
        self.body += data

    def process(self, pid=1, ppid=0, start_ns=1000, exe=b"/bin/prog", argv=(b"prog",),
                max_depth=64):
        self.body += bytes([REC_PROCESS]) + u(pid) + u(ppid) + u(start_ns) + u(0) + u(0) + u(0)
        self.body += u(max_depth) + string(exe) + u(len(argv))
        for a in argv:
            self.body += string(a)

    def stack(self, stack_id, ips):
        self.body += bytes([REC_STACK]) + u(stack_id) + u(len(ips))
        prev = 0
        for ip in ips:
            self.body += s(ip - prev)
            prev = ip

    def stack_like(self, stack_id, inner, outer, new_ips, last_kept=0):
        """new_ips as absolute addresses; last_kept the last inner frame kept."""
        self.body += bytes([REC_STACK_LIKE]) + u(stack_id) + u(inner) + u(outer) + u(len(new_ips))
        prev = last_kept
        for ip in new_ips:
            self.body += s(ip - prev)
            prev = ip

    def thread(self, index, tid):
        self.body += bytes([REC_THREAD]) + u(index) + u(tid)

    def alloc(self, address, size, stack, dt=1, thread=0, function=FN_MALLOC):
        self.body += bytes([REC_ALLOC]) + s(dt) + u(thread) + u(function) + u(address)
        self.body += u(size) + u(stack)

    def free(self, address, dt=1, thread=0, function=FN_MALLOC):
        self.body += bytes([REC_FREE]) + s(dt) + u(thread) + u(function) + u(address)

    def pyframe(self, frame_id, line, function, file):
        self.body += bytes([REC_PYFRAME]) + u(frame_id) + u(line) + string(function) + string(file)

    def allocator(self, function, name):
        self.body += bytes([REC_ALLOCATOR]) + u(function) + string(name)

    def mark(self, label, dt=1, thread=0):
        self.body += bytes([REC_MARK]) + s(dt) + u(thread) + string(label)

    def exit(self, how=1, value=0, dt=1):
        self.body += bytes([REC_EXIT]) + s(dt) + u(how) + s(value)

    def end(self, dt=1):
        self.body += bytes([REC_END]) + s(dt)

    def save(self, path):
        stream = subprocess.run(["zstd", "-q", "-c", "-19", "--no-check"], input=bytes(self.body),
                                stdout=subprocess.PIPE, check=True).stdout
        with open(path, "wb") as f:
            f.write(b"MEMTRACE" + struct.pack("<II", self.version, 0) + stream)
        return len(stream) + 16
