/* `memtrace check`: the CI gates of report/ci/gates.c on dumps already
 * written, with the exit status a CI job needs: 0 when every gate passes,
 * 1 (or --error-exitcode) when one fails, 2 when a dump, a suppression file
 * or an option cannot be used. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ci/gates.h"
#include "cli.h"

#define CHECK_ERROR 2

static const char check_usage_head[] =
    "usage: memtrace check [--max-leaked BYTES] [--max-leaked-blocks N]\n"
    "                      [--max-peak BYTES] [--leak-kinds K,...]\n"
    "                      [--suppressions FILE] [--gen-suppressions valgrind|lsan]\n"
    "                      [--junit FILE] [--sarif FILE] [--error-exitcode N]\n"
    "                      [--accept-unchecked] DUMP...\n"
    "Check dumps written by 'memtrace run' against CI gates: the bytes and blocks\n"
    "leaked and the heap's peak. Each dump (each process) is checked on its own; a\n"
    "dump that fails prints its leak sites on stderr. Without --max-leaked,\n"
    "--max-leaked-blocks or --max-peak, the gate is --max-leaked 0. A gate never\n"
    "passes what memtrace could not check: such a process fails it, with one line\n"
    "saying what and why (see --accept-unchecked).\n"
    "\n";
static const char check_usage_tail[] =
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 when every dump passes, 1 (or --error-exitcode) when a gate\n"
    "fails (on what could not be checked too), 2 when a dump, a suppression file\n"
    "or an option cannot be used.\n";

int cmd_check(int argc, char **argv)
{
    struct gate_options o;
    gate_options_init(&o, 1);
    struct option longopts[32];
    int n = 0;
    for (const struct option *g = gate_long_options; g->name; g++)
        longopts[n++] = *g;
    longopts[n++] = (struct option){"help", no_argument, 0, 'h'};
    longopts[n] = (struct option){0, 0, 0, 0};
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(check_usage_head, stdout);
            fputs(gate_help, stdout);
            fputs(check_usage_tail, stdout);
            return 0;
        }
        int got = opt == '?' ? 0 : gate_parse_option(opt, optarg, &o);
        if (got < 0)
            return CHECK_ERROR;
        if (got == 0) {
            cli_bad_option("check", argv[optind - 1], optopt);
            return CHECK_ERROR;
        }
    }
    if (optind >= argc) {
        cli_error("check needs at least one dump file (memtrace check --help)");
        return CHECK_ERROR;
    }
    if (!gate_options_any_gate(&o))
        o.max_leaked = 0;
    int rc = gates_check_dumps(&o, argv + optind, argc - optind);
    if (rc < 0)
        return CHECK_ERROR;
    int ndumps = argc - optind;
    if (rc == 0)
        fprintf(stderr, "memtrace: check passed: %d dump%s\n", ndumps, ndumps == 1 ? "" : "s");
    return rc;
}
