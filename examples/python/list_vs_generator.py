"""A list where a generator would do.

Both versions sum the squares of 2,000,000 numbers, after loading the same
small table of labels. `total_with_list` builds all the squares in a list
first, so 2,000,000 int objects (and a 16 MB array of pointers) are alive at
once; `total_with_generator` hands them to sum() one at a time.

    memtrace run -o list.mtr python3 list_vs_generator.py list
    memtrace run -o gen.mtr  python3 list_vs_generator.py generator
    memtrace report --peak list.mtr    # ~80 MB, at the line of the list
    memtrace report --peak gen.mtr     # ~2 MB: the labels and the interpreter
"""
import sys

COUNT = 2_000_000


def load_labels(count):
    return {i: "label-%d" % i for i in range(count)}


def total_with_list(n, labels):
    squares = [i * i for i in range(n)]
    return sum(squares), labels[n % len(labels)]


def total_with_generator(n, labels):
    squares = (i * i for i in range(n))
    return sum(squares), labels[n % len(labels)]


def main():
    how = sys.argv[1] if len(sys.argv) > 1 else "list"
    labels = load_labels(10_000)
    if how == "list":
        total, label = total_with_list(COUNT, labels)
    elif how == "generator":
        total, label = total_with_generator(COUNT, labels)
    else:
        sys.exit("usage: list_vs_generator.py list|generator")
    print(how, total, label)


if __name__ == "__main__":
    main()
