"""Allocations in a threading.Thread target (tests/e2e/test_python.py).
Each thread builds its own list of distinct strings and keeps it."""
import threading

kept = []


def worker_target(n):
    data = ["%d-%s" % (i, "x" * 40) for i in range(n)]  # WORKER LINE
    kept.append(data)


def main_thread_work(n):
    return ["main-%d" % i for i in range(n)]  # MAIN LINE


if __name__ == "__main__":
    threads = [threading.Thread(target=worker_target, args=(20000,)) for _ in range(2)]
    for t in threads:
        t.start()
    mine = main_thread_work(5000)
    for t in threads:
        t.join()
    print(len(kept), len(mine))
