/* The gate options of `memtrace check` and `memtrace run` (see gates.h):
 * their getopt table, their --help lines, and their values. */
#define _GNU_SOURCE
#include "gates.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/leak_kinds.h"

#define DEFAULT_KINDS ((1u << MT_KIND_DEFINITE) | (1u << MT_KIND_INDIRECT))

enum {
    OPT_MAX_LEAKED = 1000,
    OPT_MAX_LEAKED_BLOCKS,
    OPT_MAX_PEAK,
    OPT_LEAK_KINDS,
    OPT_SUPPRESSIONS,
    OPT_GEN_SUPPRESSIONS,
    OPT_JUNIT,
    OPT_SARIF,
    OPT_ERROR_EXITCODE,
    OPT_ACCEPT_UNCHECKED,
};

const struct option gate_long_options[] = {
    {"max-leaked", required_argument, 0, OPT_MAX_LEAKED},
    {"max-leaked-blocks", required_argument, 0, OPT_MAX_LEAKED_BLOCKS},
    {"max-peak", required_argument, 0, OPT_MAX_PEAK},
    {"leak-kinds", required_argument, 0, OPT_LEAK_KINDS},
    {"suppressions", required_argument, 0, OPT_SUPPRESSIONS},
    {"gen-suppressions", required_argument, 0, OPT_GEN_SUPPRESSIONS},
    {"junit", required_argument, 0, OPT_JUNIT},
    {"sarif", required_argument, 0, OPT_SARIF},
    {"error-exitcode", required_argument, 0, OPT_ERROR_EXITCODE},
    {"accept-unchecked", no_argument, 0, OPT_ACCEPT_UNCHECKED},
    {0, 0, 0, 0},
};

const char gate_help[] =
    "Gates (each process's dump is checked on its own):\n"
    "      --max-leaked BYTES   fail when more than BYTES leaked (K, M, G: KiB,\n"
    "                           MiB, GiB), counting the kinds of --leak-kinds\n"
    "                           and leaving out what suppressions match\n"
    "      --max-leaked-blocks N  fail when more than N blocks leaked\n"
    "      --max-peak BYTES     fail when the heap in use peaked above BYTES\n"
    "      --leak-kinds K,...   the leak kinds the gates count: definite,\n"
    "                           indirect, possible, reachable, unknown, or all\n"
    "                           (default definite,indirect)\n"
    "      --suppressions FILE  LeakSanitizer (leak:PATTERN) or valgrind\n"
    "                           (Memcheck:Leak) suppressions (repeatable)\n"
    "      --gen-suppressions valgrind|lsan\n"
    "                           print a suppression for each leak reported\n"
    "      --junit FILE         write a JUnit XML report: a test case per process\n"
    "      --sarif FILE         write a SARIF 2.1.0 log: a result per leak site\n"
    "      --error-exitcode N   exit status when a gate fails (run: 99, check: 1)\n"
    "      --accept-unchecked   warn about what memtrace could not check instead\n"
    "                           of failing: without it, every gate fails on a\n"
    "                           process whose trace is incomplete (events lost,\n"
    "                           a dump cut short), and the leak gates on one that\n"
    "                           left blocks in use no scan classified (killed by a\n"
    "                           signal, ended by a raw exit_group, run with no\n"
    "                           scan asked for, a scan that failed), unless\n"
    "                           --leak-kinds counts unknown; one line per process\n"
    "                           says what and why. An image replaced by exec is\n"
    "                           not counted: its blocks end with it\n";

void gate_options_init(struct gate_options *o, int error_exitcode)
{
    memset(o, 0, sizeof *o);
    o->max_leaked = o->max_leaked_blocks = o->max_peak = -1;
    o->kinds = DEFAULT_KINDS;
    o->error_exitcode = error_exitcode;
}

int gate_options_any_gate(const struct gate_options *o)
{
    return o->max_leaked >= 0 || o->max_leaked_blocks >= 0 || o->max_peak >= 0;
}

/* A count, with an optional K, M or G (powers of 1024) when bytes is set. */
static int parse_amount(const char *s, int bytes, int64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    if (bytes && *end) {
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            return -1;
        }
        end++;
        if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
            end += strlen(end);
    }
    if (*end || v > (unsigned long long)INT64_MAX >> shift)
        return -1;
    *out = (int64_t)(v << shift);
    return 0;
}

static int bad_value(const char *option, const char *arg, const char *what)
{
    fprintf(stderr, "memtrace: --%s takes %s, not '%s'\n", option, what, arg);
    return -1;
}

int gate_parse_option(int opt, const char *arg, struct gate_options *o)
{
    switch (opt) {
    case OPT_MAX_LEAKED:
        return parse_amount(arg, 1, &o->max_leaked)
                   ? bad_value("max-leaked", arg, "a byte count (e.g. 0, 4096, 1M)")
                   : 1;
    case OPT_MAX_LEAKED_BLOCKS:
        return parse_amount(arg, 0, &o->max_leaked_blocks)
                   ? bad_value("max-leaked-blocks", arg, "a number of blocks")
                   : 1;
    case OPT_MAX_PEAK:
        return parse_amount(arg, 1, &o->max_peak)
                   ? bad_value("max-peak", arg, "a byte count (e.g. 64M)")
                   : 1;
    case OPT_LEAK_KINDS:
        return parse_leak_kinds(arg, &o->kinds)
                   ? bad_value("leak-kinds", arg,
                               "a list of definite, indirect, possible, "
                               "reachable, unknown or all")
                   : 1;
    case OPT_SUPPRESSIONS:
        if (o->nsuppressions == GATE_MAX_SUPPRESSION_FILES) {
            fprintf(stderr, "memtrace: at most %d --suppressions files\n",
                    GATE_MAX_SUPPRESSION_FILES);
            return -1;
        }
        o->suppressions[o->nsuppressions++] = arg;
        return 1;
    case OPT_GEN_SUPPRESSIONS:
        if (strcmp(arg, "valgrind") == 0)
            o->gen_suppressions = GEN_SUPPRESSIONS_VALGRIND;
        else if (strcmp(arg, "lsan") == 0)
            o->gen_suppressions = GEN_SUPPRESSIONS_LSAN;
        else
            return bad_value("gen-suppressions", arg, "valgrind or lsan");
        return 1;
    case OPT_JUNIT:
        o->junit = arg;
        return 1;
    case OPT_SARIF:
        o->sarif = arg;
        return 1;
    case OPT_ACCEPT_UNCHECKED:
        o->accept_unchecked = 1;
        return 1;
    case OPT_ERROR_EXITCODE: {
        int64_t v;
        if (parse_amount(arg, 0, &v) || v > 255)
            return bad_value("error-exitcode", arg, "an exit status from 0 to 255");
        o->error_exitcode = (int)v;
        return 1;
    }
    }
    return 0;
}
