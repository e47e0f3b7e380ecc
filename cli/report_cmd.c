/* `memtrace report`: reads a dump and prints what it holds. For now the
 * summary (process and totals); the leak, peak and allocation reports
 * build on the same reader. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../report/dump_reader.h"
#include "../report/summary.h"
#include "cli.h"

static const char report_usage[] =
    "usage: memtrace report [--summary] [--format text|json] DUMP\n"
    "Read a dump written by 'memtrace run' and print what it holds.\n"
    "\n"
    "      --summary          the process, how it ended, and its heap totals:\n"
    "                         allocations, frees, bytes allocated, peak, in use\n"
    "                         at exit, temporary allocations (the default)\n"
    "      --format FORMAT    text (default) or json\n"
    "  -h, --help             show this help\n";

int cmd_report(int argc, char **argv)
{
    int json = 0;
    static const struct option longopts[] = {{"summary", no_argument, 0, 's'},
                                             {"format", required_argument, 0, 'f'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': break;
        case 'f':
            if (strcmp(optarg, "json") == 0)
                json = 1;
            else if (strcmp(optarg, "text") == 0)
                json = 0;
            else
                return cli_error("--format takes text or json, not '%s'", optarg);
            break;
        case 'h': fputs(report_usage, stdout); return 0;
        default: return cli_bad_option("report", argv[optind - 1], optopt);
        }
    }
    if (optind != argc - 1)
        return cli_error(optind >= argc ? "report needs a dump file (memtrace report --help)"
                                        : "report reads one dump at a time");
    struct dump_reader r;
    struct summary s;
    if (dump_open(&r, argv[optind]) != 0 || summary_compute(&r, &s) != 0) {
        cli_error("%s", r.error);
        dump_close(&r);
        return 1;
    }
    if (json)
        summary_print_json(stdout, &r, &s);
    else
        summary_print_text(stdout, &r, &s);
    if (s.truncated)
        fprintf(stderr, "memtrace: %s is cut short (the traced process or the consumer died); "
                        "read up to its last whole record\n", argv[optind]);
    dump_close(&r);
    return 0;
}
