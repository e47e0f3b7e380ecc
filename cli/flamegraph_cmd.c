/* `memtrace flamegraph`: reads a dump and writes a flame graph of one
 * metric, as an interactive SVG, folded stacks or a speedscope file
 * (report/export/export_flame.c), or hands it to the pprof export. The output file
 * is opened only once the dump has been read, so a bad dump leaves nothing
 * behind.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "analyze/analysis.h"
#include "read/dump_reader.h"
#include "export/export_flame.h"
#include "export/export_pprof.h"
#include "cli.h"

static const char flamegraph_usage[] =
    "usage: memtrace flamegraph [--metric METRIC] [--format FORMAT] [--inverted]\n"
    "                           [-o FILE] DUMP\n"
    "Write a flame graph of a dump written by 'memtrace run': one box per frame,\n"
    "as wide as what its stacks weigh, callers below callees.\n"
    "\n"
    "      --metric METRIC    what a stack weighs (default leaked):\n"
    "                           leaked       bytes still allocated at exit\n"
    "                           peak         bytes held when the heap was largest\n"
    "                           allocated    bytes allocated over the whole run\n"
    "                           allocations  number of allocations\n"
    "                           temporary    number of temporary allocations\n"
    "      --format FORMAT    svg (default): one self-contained interactive file;\n"
    "                         folded: 'outer;...;inner VALUE' lines for flamegraph.pl\n"
    "                         and inferno; speedscope: speedscope's JSON format\n"
    "                         (bytes and blocks profiles); pprof: gzipped\n"
    "                         profile.proto for 'go tool pprof'\n"
    "      --inverted         svg: an icicle graph, the outermost frames on top\n"
    "  -o, --output FILE      write to FILE (default: standard output)\n"
    "  -h, --help             show this help\n"
    "\n"
    "In the SVG, hover a frame for its bytes, blocks and share, click it to zoom,\n"
    "click the bottom frame or press Escape to zoom out, and use Search (Ctrl+F)\n"
    "to highlight frames by regular expression. Colours tell the module: the\n"
    "program, its libraries, libc and the C++ runtime, Python.\n";

enum flame_format { FORMAT_SVG, FORMAT_FOLDED, FORMAT_SPEEDSCOPE, FORMAT_PPROF };

static int parse_format(const char *s, enum flame_format *out)
{
    static const char *names[] = {"svg", "folded", "speedscope", "pprof"};
    for (int f = FORMAT_SVG; f <= FORMAT_PPROF; f++)
        if (strcmp(s, names[f]) == 0) {
            *out = (enum flame_format)f;
            return 0;
        }
    return -1;
}

/* pprof is written by report/export/export_pprof.c; until it is part of the build
 * this says so. */
int cmd_flamegraph(int argc, char **argv)
{
    enum { OPT_METRIC = 256, OPT_FORMAT, OPT_INVERTED };
    static const struct option longopts[] = {{"metric", required_argument, 0, OPT_METRIC},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"inverted", no_argument, 0, OPT_INVERTED},
                                             {"output", required_argument, 0, 'o'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    struct flame_options fo = {.metric = FLAME_LEAKED};
    enum flame_format format = FORMAT_SVG;
    const char *output = NULL;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_METRIC:
            if (flame_metric_parse(optarg, &fo.metric) != 0)
                return cli_error("--metric takes leaked, peak, allocated, allocations or "
                                 "temporary, not '%s'",
                                 optarg);
            break;
        case OPT_FORMAT:
            if (parse_format(optarg, &format) != 0)
                return cli_error("--format takes svg, folded, speedscope or pprof, not '%s'",
                                 optarg);
            break;
        case OPT_INVERTED:
            fo.inverted = 1;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            fputs(flamegraph_usage, stdout);
            return 0;
        default:
            return cli_bad_option("flamegraph", argv[optind - 1], optopt);
        }
    }
    if (optind != argc - 1)
        return cli_error(optind >= argc
                             ? "flamegraph needs a dump file (memtrace flamegraph --help)"
                             : "flamegraph reads one dump at a time");
    if (output && !*output)
        return cli_error("-o needs a file name");

    struct dump_reader r;
    struct analysis a;
    struct analysis_options symbols = {0}; /* not NULL: NULL would skip symbols */
    if (dump_open(&r, argv[optind]) != 0 || analysis_run(&r, &symbols, &a) != 0) {
        cli_error("%s", r.error);
        dump_close(&r);
        return 1;
    }
    FILE *out = output ? fopen(output, format == FORMAT_PPROF ? "wb" : "w") : stdout;
    int status = 0;
    if (!out) {
        status = cli_error("cannot write %s: %s", output, strerror(errno));
    } else {
        int written = 0;
        switch (format) {
        case FORMAT_SVG:
            written = export_flame_svg(out, &r, &a, &fo);
            break;
        case FORMAT_FOLDED:
            written = export_folded(out, &a, &fo);
            break;
        case FORMAT_SPEEDSCOPE:
            written = export_speedscope(out, &r, &a, &fo);
            break;
        case FORMAT_PPROF:
            /* flamegraph_pprof prints its own one-line message */
            status = flamegraph_pprof(out, &r, &a, flame_metric_name(fo.metric)) ? 1 : 0;
            written = 0;
            break;
        }
        if (written != 0)
            status = cli_error("flamegraph: out of memory");
        int failed = ferror(out);
        if ((output ? fclose(out) : fflush(out)) != 0 || failed) {
            if (!status)
                status = cli_error("cannot write %s: %s", output ? output : "standard output",
                                   strerror(errno ? errno : EIO));
        }
        struct stat st; /* never /dev/full or a fifo */
        if (status && output && stat(output, &st) == 0 && S_ISREG(st.st_mode))
            remove(output);
    }
    if (a.summary.truncated)
        fprintf(stderr,
                "memtrace: %s is cut short (the traced process or the consumer died); "
                "read up to its last whole record\n",
                argv[optind]);
    analysis_free(&a);
    dump_close(&r);
    return status;
}
