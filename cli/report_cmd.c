/* `memtrace report`: reads a dump and prints the summary, leak, peak,
 * allocation and temporary reports, as text or as SPEC section 7 JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/analysis.h"
#include "read/dump_reader.h"
#include "analyze/leak_kinds.h"
#include "export/report_output.h"
#include "analyze/suppressions.h"
#include "memtrace/format.h"
#include "cli.h"

static const char report_usage[] =
    "usage: memtrace report [--summary|--leaks|--peak|--allocations|--temporary]\n"
    "                       [--leak-kinds K,...] [--top N] [--format text|json]\n"
    "                       [--include PATTERN] [--suppressions FILE]\n"
    "                       [--exclude PATTERN] [--allocator NAME] [--between A,B]\n"
    "                       [--sysroot DIR] [--debug-dir DIR] DUMP\n"
    "Read a dump written by 'memtrace run' and print what it holds. Without a\n"
    "report option, every report; the summary (process, how it ended, heap\n"
    "totals) always comes first.\n"
    "\n"
    "      --summary          only the summary\n"
    "      --leaks            blocks still allocated at exit, by stack and bytes\n"
    "      --peak             the stacks that held the most bytes at the peak\n"
    "      --allocations      hot spots: stacks by number of allocations\n"
    "      --temporary        blocks freed before their thread allocated again\n"
    "      --leak-kinds K,... the leak kinds the text report lists: definite,\n"
    "                         indirect, possible, reachable, unknown, or all\n"
    "                         (default definite,indirect,possible,unknown; JSON\n"
    "                         always lists every kind)\n"
    "      --top N            sites per report, 0 = all (default 10 for text,\n"
    "                         all for json)\n"
    "      --format FORMAT    text (default) or json\n"
    "      --include PATTERN  keep only stacks with a frame whose function, file\n"
    "                         or module matches the glob PATTERN (repeatable)\n"
    "      --exclude PATTERN  drop stacks with a frame matching PATTERN (repeatable)\n"
    "      --allocator NAME   only the blocks of that allocator: the function that\n"
    "                         allocated them (malloc, calloc, realloc, ..., a function\n"
    "                         that 'memtrace run' hooked, or client for the client\n"
    "                         API);\n"
    "                         a glob, comma-separated list, repeatable\n"
    "      --between A,B      only the blocks allocated between the first mark A and\n"
    "                         the next mark B (MEMTRACE_MARK); their frees count\n"
    "                         whenever they come, so leaks are what that span leaked\n"
    "      --suppressions FILE  move the leaks that FILE's LeakSanitizer or valgrind\n"
    "                         suppressions match to a Suppressed list (repeatable)\n"
    "      --sysroot DIR      find the dump's modules under DIR (a dump made on\n"
    "                         another machine)\n"
    "      --debug-dir DIR    also look for separate debug files in DIR\n"
    "  -h, --help             show this help\n"
    "\n"
    "Debug information is found through .gnu_debuglink, /usr/lib/debug/.build-id\n"
    "and, when DEBUGINFOD_URLS is set, debuginfod. A debug file whose sections are\n"
    "compressed is copied once, inflated, to $MEMTRACE_CACHE_DIR/debug (default\n"
    "~/.cache/memtrace/debug; MEMTRACE_CACHE_DIR= turns the copies off), and read\n"
    "from there.\n";

#define MAX_PATTERNS 64

int cmd_report(int argc, char **argv)
{
    enum { OPT_SUMMARY = 256, OPT_LEAKS, OPT_PEAK, OPT_ALLOCATIONS, OPT_TEMPORARY, OPT_TOP,
           OPT_FORMAT, OPT_INCLUDE, OPT_EXCLUDE, OPT_SYSROOT, OPT_DEBUG_DIR, OPT_LEAK_KINDS,
           OPT_SUPPRESSIONS, OPT_ALLOCATOR, OPT_BETWEEN };
    static const struct option longopts[] = {
        {"summary", no_argument, 0, OPT_SUMMARY},       {"leaks", no_argument, 0, OPT_LEAKS},
        {"peak", no_argument, 0, OPT_PEAK},             {"allocations", no_argument, 0, OPT_ALLOCATIONS},
        {"temporary", no_argument, 0, OPT_TEMPORARY},   {"top", required_argument, 0, OPT_TOP},
        {"format", required_argument, 0, OPT_FORMAT},   {"include", required_argument, 0, OPT_INCLUDE},
        {"exclude", required_argument, 0, OPT_EXCLUDE}, {"sysroot", required_argument, 0, OPT_SYSROOT},
        {"debug-dir", required_argument, 0, OPT_DEBUG_DIR}, {"help", no_argument, 0, 'h'},
        {"leak-kinds", required_argument, 0, OPT_LEAK_KINDS},
        {"suppressions", required_argument, 0, OPT_SUPPRESSIONS},
        {"allocator", required_argument, 0, OPT_ALLOCATOR},
        {"between", required_argument, 0, OPT_BETWEEN},
        {0, 0, 0, 0}};
    const char *suppression_files[MAX_PATTERNS];
    int nsuppression_files = 0;
    const char *include[MAX_PATTERNS], *exclude[MAX_PATTERNS], *allocators[MAX_PATTERNS];
    struct analysis_options o = {.include = include, .exclude = exclude, .allocators = allocators};
    unsigned sections = 0;
    unsigned kinds = (1u << MT_KIND_DEFINITE) | (1u << MT_KIND_INDIRECT) |
                     (1u << MT_KIND_POSSIBLE) | (1u << MT_KIND_UNKNOWN);
    int summary_only = 0, json = 0, top = -1;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_SUMMARY: summary_only = 1; break;
        case OPT_LEAKS: sections |= 1u << SECTION_LEAKS; break;
        case OPT_PEAK: sections |= 1u << SECTION_PEAK; break;
        case OPT_ALLOCATIONS: sections |= 1u << SECTION_ALLOCATIONS; break;
        case OPT_TEMPORARY: sections |= 1u << SECTION_TEMPORARY; break;
        case OPT_TOP: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || v < 0 || v > 1000000000)
                return cli_error("--top takes a number (0 = all), not '%s'", optarg);
            top = (int)v;
            break;
        }
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0)
                json = 1;
            else if (strcmp(optarg, "text") == 0)
                json = 0;
            else
                return cli_error("--format takes text or json, not '%s'", optarg);
            break;
        case OPT_INCLUDE:
        case OPT_EXCLUDE:
            if ((opt == OPT_INCLUDE ? o.ninclude : o.nexclude) == MAX_PATTERNS)
                return cli_error("at most %d --include and %d --exclude patterns", MAX_PATTERNS,
                                 MAX_PATTERNS);
            if (opt == OPT_INCLUDE)
                include[o.ninclude++] = optarg;
            else
                exclude[o.nexclude++] = optarg;
            break;
        case OPT_LEAK_KINDS:
            if (parse_leak_kinds(optarg, &kinds) != 0)
                return cli_error("--leak-kinds takes a list of definite, indirect, possible, "
                                 "reachable, unknown or all, not '%s'", optarg);
            break;
        case OPT_SUPPRESSIONS:
            if (nsuppression_files == MAX_PATTERNS)
                return cli_error("at most %d --suppressions files", MAX_PATTERNS);
            suppression_files[nsuppression_files++] = optarg;
            break;
        case OPT_ALLOCATOR:
            for (char *name = strtok(optarg, ","); name; name = strtok(NULL, ",")) {
                if (o.nallocators == MAX_PATTERNS)
                    return cli_error("at most %d --allocator names", MAX_PATTERNS);
                allocators[o.nallocators++] = name;
            }
            break;
        case OPT_BETWEEN: {
            char *comma = strchr(optarg, ',');
            if (!comma || comma == optarg || !comma[1])
                return cli_error("--between takes two mark labels, FROM,TO, not '%s'", optarg);
            *comma = '\0';
            o.mark_from = optarg;
            o.mark_to = comma + 1;
            break;
        }
        case OPT_SYSROOT: o.symbols.sysroot = optarg; break;
        case OPT_DEBUG_DIR: o.symbols.debug_dir = optarg; break;
        case 'h': fputs(report_usage, stdout); return 0;
        default: return cli_bad_option("report", argv[optind - 1], optopt);
        }
    }
    if (optind != argc - 1)
        return cli_error(optind >= argc ? "report needs a dump file (memtrace report --help)"
                                        : "report reads one dump at a time");
    if (summary_only && sections)
        return cli_error("--summary cannot be combined with another report");
    if (!summary_only && !sections)
        sections = (1u << SECTION_LEAKS) | (1u << SECTION_PEAK) | (1u << SECTION_ALLOCATIONS) |
                   (1u << SECTION_TEMPORARY);
    if (top < 0)
        top = json ? 0 : 10;
    struct suppression_set set = {0};
    for (int i = 0; i < nsuppression_files; i++) {
        char error[1024];
        if (suppressions_load(&set, suppression_files[i], error, sizeof error) != 0) {
            suppressions_free(&set);
            return cli_error("%s", error);
        }
    }
    struct dump_reader r;
    struct analysis a;
    if (dump_open(&r, argv[optind]) != 0 || analysis_run(&r, summary_only && !o.nallocators && !o.mark_from ? NULL : &o, &a) != 0) {
        cli_error("%s", r.error);
        dump_close(&r);
        suppressions_free(&set);
        return 1;
    }
    /* what each suppression matched: over every kind in JSON (which lists
     * them all), over the kinds listed in text */
    struct suppression_matches matches = {0};
    if (nsuppression_files && !summary_only &&
        suppressions_apply(&set, &a, json ? (1u << MT_KIND_COUNT) - 1 : kinds, &matches) != 0) {
        analysis_free(&a);
        dump_close(&r);
        suppressions_free(&set);
        return cli_error("out of memory matching suppressions");
    }
    const struct suppression_matches *supp = matches.entry ? &matches : NULL;
    if (json)
        report_print_json(stdout, &r, &a, sections, top, supp);
    else {
        if (o.nallocators || o.mark_from) {
            printf("Only the blocks");
            for (int i = 0; i < o.nallocators; i++)
                printf("%s%s", i ? ", " : " of ", allocators[i]);
            if (o.mark_from)
                printf(" allocated between mark %s (%.3f s) and mark %s (%.3f s)", o.mark_from,
                       a.window_from_ns / 1e9, o.mark_to, a.window_to_ns / 1e9);
            printf("\n\n");
        }
        report_print_text(stdout, &r, &a, sections, top, kinds,
                          isatty(STDOUT_FILENO) && !getenv("NO_COLOR"), supp);
    }
    suppression_matches_free(&matches);
    suppressions_free(&set);
    if (a.summary.truncated)
        fprintf(stderr, "memtrace: %s is cut short (the traced process or the consumer died); "
                        "read up to its last whole record\n", argv[optind]);
    analysis_free(&a);
    dump_close(&r);
    return 0;
}
