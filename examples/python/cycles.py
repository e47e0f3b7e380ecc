"""Reference cycles with the garbage collector disabled.

Each pair of Node objects points at each other, so reference counting alone
never frees them: only the cycle collector can, and this program has turned
it off (as some services do to avoid GC pauses). The memory then stays
allocated for as long as the process lives.

The program ends with os._exit(), as multiprocessing's workers and forked
servers do: CPython's final collection at a normal exit would free the
cycles and hide them.

    memtrace run -o cycles.mtr python3 cycles.py
    memtrace report --leaks cycles.mtr   # the top sites are make_cycles's lines
"""
import gc
import os
import sys


class Node:
    def __init__(self, payload):
        self.payload = payload
        self.partner = None


def make_cycles(count):
    for _ in range(count):
        a = Node(bytearray(100))
        b = Node(bytearray(100))
        a.partner = b
        b.partner = a


def main():
    gc.disable()
    make_cycles(10_000)
    print("built 10000 cycles; collector enabled:", gc.isenabled())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
