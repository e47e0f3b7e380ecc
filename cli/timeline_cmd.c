/* `memtrace timeline`: heap in use and RSS over a run's time, as an SVG
 * chart with the peak marked, or as CSV (report/analyze/timeline.h). Reads the dump
 * before it creates the output, so a bad dump leaves no file behind. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read/dump_reader.h"
#include "export/timeline_output.h"
#include "cli.h"

static const char timeline_usage[] =
    "usage: memtrace timeline [-o FILE] [--format svg|csv] [--points N] DUMP\n"
    "Chart the heap in use (blocks allocated and not yet freed) and the resident\n"
    "set size (RSS, sampled every 10 ms) over the time of the run that DUMP\n"
    "records, with the peak of the heap marked with its size and time.\n"
    "\n"
    "  -o, --output FILE    write to FILE (default: standard output)\n"
    "      --format FORMAT  svg (default): a self-contained chart;\n"
    "                       csv: the series, columns time_ns (since the process\n"
    "                       started), heap_bytes, heap_blocks, rss_bytes (the\n"
    "                       latest RSS sample, empty before the first)\n"
    "      --points N       cut the run's time into N slices (default 1000,\n"
    "                       2 to 1000000); each keeps the lowest, highest and\n"
    "                       last value of each series, so the peak is exact\n"
    "  -h, --help           show this help\n";

#define TITLE_MAX 110

/* "memtrace timeline: ARGV..." for the chart's title (buf of size n > TITLE_MAX),
 * cut to TITLE_MAX bytes. */
static const char *chart_title(const struct dump_reader *r, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "memtrace timeline:");
    for (uint64_t k = 0; k < r->process.argc && r->process.argv && len + 1 < n; k++)
        len += (size_t)snprintf(buf + len, n - len, " %s", r->process.argv[k]);
    if (r->process.argc == 0 && r->process.exe)
        snprintf(buf + len, n - len, " %s", r->process.exe);
    if (strlen(buf) > TITLE_MAX) { /* the chart is 960 pixels wide */
        size_t cut = TITLE_MAX - 3;
        while (cut > 0 && ((unsigned char)buf[cut] & 0xc0) == 0x80)
            cut--; /* not inside a UTF-8 character */
        memcpy(buf + cut, "...", 4);
    }
    return buf;
}

int cmd_timeline(int argc, char **argv)
{
    enum { OPT_FORMAT = 256, OPT_POINTS };
    static const struct option longopts[] = {{"output", required_argument, 0, 'o'},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"points", required_argument, 0, OPT_POINTS},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *output = NULL;
    int csv = 0;
    uint32_t points = 1000;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            output = optarg;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "svg") == 0)
                csv = 0;
            else if (strcmp(optarg, "csv") == 0)
                csv = 1;
            else
                return cli_error("--format takes svg or csv, not '%s'", optarg);
            break;
        case OPT_POINTS: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 2 || v > 1000000)
                return cli_error("--points takes a number from 2 to 1000000, not '%s'", optarg);
            points = (uint32_t)v;
            break;
        }
        case 'h':
            fputs(timeline_usage, stdout);
            return 0;
        default:
            return cli_bad_option("timeline", argv[optind - 1], optopt);
        }
    }
    if (optind != argc - 1)
        return cli_error(optind >= argc ? "timeline needs a dump file (memtrace timeline --help)"
                                        : "timeline reads one dump at a time");
    const char *path = argv[optind];
    struct dump_reader r;
    struct timeline t;
    if (dump_open(&r, path) != 0 || timeline_read(&r, points, &t) != 0) {
        cli_error("%s", r.error);
        dump_close(&r);
        return 1;
    }
    FILE *out = stdout;
    if (output && strcmp(output, "-") != 0 && !(out = fopen(output, "w"))) {
        int e = errno;
        timeline_free(&t);
        dump_close(&r);
        return cli_error("cannot create %s: %s", output, strerror(e));
    }
    char title[512];
    int failed = csv ? timeline_write_csv(out, &t)
                     : timeline_write_svg(out, &t, chart_title(&r, title, sizeof title));
    if (out != stdout && fclose(out) != 0)
        failed = -1;
    if (failed)
        cli_error("cannot write %s (disk full, or out of memory)", output ? output : "the output");
    else if (t.truncated)
        fprintf(stderr,
                "memtrace: %s is cut short (the traced process or the consumer died); "
                "read up to its last whole record\n",
                path);
    timeline_free(&t);
    dump_close(&r);
    return failed ? 1 : 0;
}
