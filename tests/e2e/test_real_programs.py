#!/usr/bin/env python3
"""Real programs, exact totals vs valgrind: runs a real program from Debian on
a generated workload under `memtrace run` and under valgrind memcheck and
checks that memtrace's dump has exactly valgrind's allocations, frees, bytes
allocated, and bytes and blocks in use at exit.

    --case sqlite3  sqlite3 :memory: reading a script of 100,000 INSERTs (one
                    transaction, an indexed table) and two queries
    --case python3  /usr/bin/python3 -c building a dict of 100,000 entries,
                    with PYTHONMALLOC=malloc so that every object is a malloc
    --case gzip     gzip -9 -r on 16 files, 4 MB in all, written next to them
    --case perl     perl -e building a hash of 100,000 entries

Both runs get the same small environment (env -i style) and the program sees
variables of the same names and lengths in both (mtlib.EqualEnvironments,
checked by running /usr/bin/env under both tools, and for python3 and perl by
the program itself, which writes the names and lengths it saw to a file at the
end). Both run in directories whose paths have the same length, with stdout
and stderr going to files. Hash seeds are fixed (PYTHONHASHSEED,
PERL_HASH_SEED, PERL_PERTURB_KEYS). python3 needs more: see mtlib's
docstring and tests/programs/nobrk.c (its ints are sized by the addresses they
hold, so both runs must have heap addresses of the same magnitude).
"""

import os
import random
import shutil

import mtlib

PYTHON_SCRIPT = """\
import os
d = {}
for i in range(100000):
    d["key%d" % i] = (i, str(i * 7))
total = 0
for value in d.values():
    total += value[0]
print(len(d), total)
with open("envlens.txt", "w") as f:
    f.write(repr(sorted((k, len(v)) for k, v in os.environ.items())))
"""

PERL_SCRIPT = r"""
my %h;
for my $i (1 .. 100000) { $h{"key$i"} = [$i, "v" x ($i % 7)]; }
my $sum = 0;
$sum += $_->[0] for values %h;
print scalar(keys %h), " $sum\n";
open(my $f, '>', 'envlens.txt') or die "envlens.txt: $!";
print $f join(",", map { "$_=" . length($ENV{$_}) } sort keys %ENV), "\n";
close $f;
"""

FIXED_MTIME = 1_600_000_000
# natively each workload takes about a second; valgrind up to ~30 s (sqlite3)
MEMTRACE_TIMEOUT = 90
VALGRIND_TIMEOUT = 180


def add_arguments(parser):
    parser.add_argument("--case", required=True, choices=["sqlite3", "python3", "gzip", "perl"])


def write_sqlite_script(path, rows=100000):
    rng = random.Random(20240601)
    with open(path, "w") as f:
        f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value INTEGER);\n")
        f.write("CREATE INDEX t_name ON t(name);\n")
        f.write("BEGIN;\n")
        for i in range(rows):
            f.write("INSERT INTO t(name, value) VALUES('k%d-%s', %d);\n"
                    % (i, "x" * (i % 13), rng.randrange(1000000)))
        f.write("COMMIT;\n")
        f.write("SELECT count(*), sum(value) FROM t;\n")
        f.write("SELECT name FROM t WHERE name LIKE 'k1234%' ORDER BY name LIMIT 3;\n")


def write_gzip_inputs(directory, files=16, size=250000):
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randrange(2, 9)))
             for _ in range(500)]
    os.makedirs(directory)
    for n in range(files):
        path = os.path.join(directory, "f%02d.txt" % n)
        with open(path, "w") as f:
            written = 0
            while written < size:
                line = " ".join(rng.choice(words) for _ in range(12)) + " %d\n" % rng.randrange(10 ** 6)
                f.write(line)
                written += len(line)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def main():
    ctx = mtlib.setup(__doc__, add_arguments)
    case = ctx.args.case

    def body(c):
        mtlib.need_valgrind()
        work = ctx.workdir
        home = ctx.subdir("home")
        tmp = ctx.subdir("tmp")
        base = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8"}
        stdin = None
        memtrace_wrapper = []
        valgrind_options = []
        inputs = ctx.subdir("inputs")
        if case == "sqlite3":
            argv = ["/usr/bin/sqlite3", ":memory:"]
            stdin = os.path.join(inputs, "script.sql")
            write_sqlite_script(stdin)
        elif case == "python3":
            argv = ["/usr/bin/python3", "-c", PYTHON_SCRIPT]
            base.update(PYTHONMALLOC="malloc", PYTHONHASHSEED="0")
            memtrace_wrapper = [ctx.prog("nobrk")]
            valgrind_options = list(mtlib.VALGRIND_HIGH_ADDRESSES)
        elif case == "gzip":
            argv = ["/bin/gzip", "-9", "-r", "data"]
            write_gzip_inputs(os.path.join(inputs, "data"))
        else:
            argv = ["/usr/bin/perl", "-e", PERL_SCRIPT]
            base.update(PERL_HASH_SEED="0", PERL_PERTURB_KEYS="0")
        if not os.path.exists(argv[0]):
            raise mtlib.TestError("%s is not installed" % argv[0])

        envs = mtlib.EqualEnvironments(ctx, base, ctx.subdir("env"),
                                       valgrind_options=valgrind_options,
                                       memtrace_wrapper=memtrace_wrapper)
        envs.verify(c, case)

        # run directories with paths of the same length
        mt_dir = ctx.subdir("run-m")
        vg_dir = ctx.subdir("run-v")
        dumps_dir = ctx.subdir("dumps")
        for d in (mt_dir, vg_dir):
            if case == "gzip":
                shutil.copytree(os.path.join(inputs, "data"), os.path.join(d, "data"))

        result = mtlib.memtrace_run(ctx, argv, os.path.join(dumps_dir, "%n.%p.mtr"),
                                    wrapper=memtrace_wrapper, env=envs.memtrace_env, cwd=mt_dir,
                                    stdin=stdin, logdir=work, tag="memtrace",
                                    timeout=MEMTRACE_TIMEOUT)
        c.eq("memtrace run exits 0", mtlib.exit_code(result.returncode), 0)
        vg = mtlib.valgrind_run(argv, logdir=work, tag="valgrind", options=valgrind_options,
                                env=envs.valgrind_env, cwd=vg_dir, stdin=stdin,
                                timeout=VALGRIND_TIMEOUT)
        c.eq("valgrind run exits 0", mtlib.exit_code(vg.returncode), 0)

        dumps = mtlib.dumps_in(dumps_dir)
        if not c.check("one dump written", len(dumps) == 1,
                       "found %s" % [os.path.basename(d) for d in dumps]):
            return
        rep = mtlib.report(ctx, dumps[0])
        mtlib.check_report_shape(c, rep, "dump")
        mtlib.check_exit(c, rep, "dump", status=0)
        want = mtlib.valgrind_figures(vg.log)
        if want is None:
            raise mtlib.TestError("valgrind printed no heap summary (%s)" % vg.log)
        print("  memtrace: %s" % mtlib.fmt(mtlib.totals(rep)))
        print("  valgrind: %s" % mtlib.fmt(want))
        c.figures("memtrace == valgrind", mtlib.totals(rep), want)

        c.eq("program output is the same in both runs", result.stdout, vg.stdout)
        c.check("program printed something", result.stdout.strip() != "" or case == "gzip")
        if case in ("python3", "perl"):
            seen_m = mtlib.read_text(os.path.join(mt_dir, "envlens.txt"))
            seen_v = mtlib.read_text(os.path.join(vg_dir, "envlens.txt"))
            c.check("the program saw the same variable names and lengths in both runs",
                    seen_m == seen_v and seen_m != "",
                    "memtrace run: %s; valgrind run: %s" % (seen_m.strip(), seen_v.strip()))
        if case == "gzip":
            names = sorted(os.listdir(os.path.join(inputs, "data")))
            same = all(
                open(os.path.join(mt_dir, "data", n + ".gz"), "rb").read()
                == open(os.path.join(vg_dir, "data", n + ".gz"), "rb").read()
                for n in names
                if os.path.exists(os.path.join(mt_dir, "data", n + ".gz"))
                and os.path.exists(os.path.join(vg_dir, "data", n + ".gz")))
            count_m = len([n for n in os.listdir(os.path.join(mt_dir, "data")) if n.endswith(".gz")])
            c.check("gzip compressed every file, identically in both runs",
                    same and count_m == len(names), "%d of %d files compressed" % (count_m, len(names)))

    mtlib.run_test(ctx, "real." + case, body)


if __name__ == "__main__":
    main()
