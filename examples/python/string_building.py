"""Building a string with + in a loop versus str.join.

`build_with_plus` makes a new, longer string at every step: the work and the
bytes allocated grow with the square of the result's length (CPython can
sometimes extend the string in place, but not while another reference to it
exists, as here through `parts_seen`). `build_with_join` collects the pieces
and allocates the result once.

    memtrace run -o plus.mtr python3 string_building.py plus
    memtrace run -o join.mtr python3 string_building.py join
    memtrace report --allocations plus.mtr   # GBs allocated at one line
    memtrace report --allocations join.mtr
"""
import sys

PIECES = 20_000


def build_with_plus(n):
    text = ""
    parts_seen = []
    for i in range(n):
        text = text + "item %06d;" % i
        parts_seen.append(text)
        parts_seen.pop()
    return text


def build_with_join(n):
    return "".join("item %06d;" % i for i in range(n))


def main():
    how = sys.argv[1] if len(sys.argv) > 1 else "plus"
    if how == "plus":
        text = build_with_plus(PIECES)
    elif how == "join":
        text = build_with_join(PIECES)
    else:
        sys.exit("usage: string_building.py plus|join")
    print(how, len(text))


if __name__ == "__main__":
    main()
