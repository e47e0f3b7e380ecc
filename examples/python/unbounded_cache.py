"""An unbounded cache: functools.lru_cache(maxsize=None) on a function whose
arguments never repeat keeps every result for ever, and the heap grows for as
long as the program runs. With maxsize=1024 it levels off.

    memtrace run -o cache.mtr python3 unbounded_cache.py unbounded
    memtrace timeline cache.mtr -o cache.svg   # a heap that only climbs
    memtrace report --peak cache.mtr           # held by render()'s line
    memtrace run -o bounded.mtr python3 unbounded_cache.py bounded
"""
import functools
import sys
import time

REQUESTS = 30_000


def render_page(user_id):
    return ("<p>hello user %d</p>" % user_id) * 8


unbounded = functools.lru_cache(maxsize=None)(render_page)
bounded = functools.lru_cache(maxsize=1024)(render_page)


def serve(render, requests):
    served = 0
    for i in range(requests):
        served += len(render(i))
        if i % 3000 == 0:
            time.sleep(0.01)  # time passes, so the timeline has a shape
    return served


def main():
    how = sys.argv[1] if len(sys.argv) > 1 else "unbounded"
    if how not in ("unbounded", "bounded"):
        sys.exit("usage: unbounded_cache.py unbounded|bounded")
    served = serve(unbounded if how == "unbounded" else bounded, REQUESTS)
    print(how, served)


if __name__ == "__main__":
    main()
