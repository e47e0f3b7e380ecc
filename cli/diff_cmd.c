/* `memtrace diff BASE NEW`: which stacks grew or shrank between two runs,
 * in the bytes they left allocated at exit and in the bytes they held at the
 * heap's peak, as text or JSON, with a CI gate on the growth of the totals.
 *
 * The comparison is report/analyze/diff.c's, the output
 * report/export/diff_output.c's; this file parses the options and reads the
 * two dumps.
 *
 * Exit status as GNU diff's: 0, 1 when --fail-on-growth is exceeded, 2 on
 * trouble (a bad option, a missing or corrupt dump).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analysis.h"
#include "analyze/diff.h"
#include "cli.h"
#include "export/diff_output.h"
#include "read/dump_reader.h"

static const char diff_usage[] =
    "usage: memtrace diff [--format text|json] [--top N] [--fail-on-growth BYTES]\n"
    "                     BASE NEW\n"
    "Compare two dumps: the stacks whose bytes left allocated at exit (leaks) and\n"
    "whose bytes held at the heap's peak grew or shrank from BASE to NEW, largest\n"
    "change first. Stacks are matched by function, file, line and module name,\n"
    "not by address.\n"
    "\n"
    "      --format FORMAT        text (default) or json\n"
    "      --top N                stacks per list, 0 = all (default 10 for text,\n"
    "                             all for json)\n"
    "      --fail-on-growth BYTES exit 1 when the bytes in use at exit or the\n"
    "                             peak grew, in total, by more than BYTES\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Exit status: 0, 1 when --fail-on-growth is exceeded, 2 on trouble.\n";

#define TROUBLE 2

static int parse_count(const char *option, const char *s, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > max) {
        cli_error("%s takes a number from 0 to %lld, not '%s'", option, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

struct run_info {
    const char *path;
    struct dump_reader r;
    struct analysis a;
};

static int load(struct run_info *run, const char *path)
{
    struct analysis_options o;
    memset(&o, 0, sizeof o);
    run->path = path;
    if (dump_open(&run->r, path) != 0 || analysis_run(&run->r, &o, &run->a) != 0) {
        cli_error("%s", run->r.error);
        dump_close(&run->r);
        return -1;
    }
    if (run->a.summary.truncated)
        fprintf(stderr,
                "memtrace: %s is cut short (the traced process or the consumer died); "
                "read up to its last whole record\n",
                path);
    return 0;
}

int cmd_diff(int argc, char **argv)
{
    enum { OPT_FORMAT = 256, OPT_TOP, OPT_FAIL };
    static const struct option longopts[] = {{"format", required_argument, 0, OPT_FORMAT},
                                             {"top", required_argument, 0, OPT_TOP},
                                             {"fail-on-growth", required_argument, 0, OPT_FAIL},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int json = 0;
    long long top = -1, limit = -1;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0)
                json = 1;
            else if (strcmp(optarg, "text") == 0)
                json = 0;
            else
                return cli_error("--format takes text or json, not '%s'", optarg), TROUBLE;
            break;
        case OPT_TOP:
            if (parse_count("--top", optarg, 1000000000, &top) != 0)
                return TROUBLE;
            break;
        case OPT_FAIL:
            if (parse_count("--fail-on-growth", optarg, INT64_MAX, &limit) != 0)
                return TROUBLE;
            break;
        case 'h':
            fputs(diff_usage, stdout);
            return 0;
        default:
            return cli_bad_option("diff", argv[optind - 1], optopt), TROUBLE;
        }
    }
    if (argc - optind != 2)
        return cli_error("diff compares two dumps: memtrace diff BASE NEW (memtrace diff --help)"),
               TROUBLE;
    if (top < 0)
        top = json ? 0 : 10;
    struct run_info runs[2];
    if (load(&runs[DIFF_BASE], argv[optind]) != 0)
        return TROUBLE;
    if (load(&runs[DIFF_NEW], argv[optind + 1]) != 0) {
        analysis_free(&runs[DIFF_BASE].a);
        dump_close(&runs[DIFF_BASE].r);
        return TROUBLE;
    }
    struct diff d;
    int status = 0;
    if (diff_compare(&d, &runs[DIFF_BASE].a, &runs[DIFF_NEW].a) != 0) {
        cli_error("out of memory while comparing the dumps");
        status = TROUBLE;
        goto done;
    }
    int64_t leak_growth = diff_total(&runs[DIFF_NEW].a, DIFF_IN_USE_BYTES) -
                          diff_total(&runs[DIFF_BASE].a, DIFF_IN_USE_BYTES);
    int64_t peak_growth = diff_total(&runs[DIFF_NEW].a, DIFF_PEAK_BYTES) -
                          diff_total(&runs[DIFF_BASE].a, DIFF_PEAK_BYTES);
    int failed = limit >= 0 && (leak_growth > limit || peak_growth > limit);
    uint32_t shown[2];
    for (int l = 0; l < 2; l++)
        shown[l] = top > 0 && d.counts[l] > (uint32_t)top ? (uint32_t)top : d.counts[l];
    struct diff_run out[2];
    for (int run = DIFF_BASE; run <= DIFF_NEW; run++)
        out[run] = (struct diff_run){runs[run].path, &runs[run].r, &runs[run].a};
    if (json)
        diff_print_json(stdout, &d, out, shown, limit, failed);
    else
        diff_print_text(stdout, &d, out, shown);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the output");
        status = TROUBLE;
    } else if (failed) {
        char c[96];
        cli_error("diff: %s grew by %s, more than --fail-on-growth %lld",
                  leak_growth > limit ? "bytes in use at exit" : "the peak",
                  diff_fmt_change(c, leak_growth > limit ? leak_growth : peak_growth, 1), limit);
        status = 1;
    }
done:
    diff_free(&d);
    for (int run = DIFF_BASE; run <= DIFF_NEW; run++) {
        analysis_free(&runs[run].a);
        dump_close(&runs[run].r);
    }
    return status;
}
