/* The memtrace command: dispatches to its subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef MEMTRACE_VERSION
#define MEMTRACE_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: memtrace [--help] [--version] COMMAND [ARGS...]\n"
    "A memory-leak and heap profiler for Linux.\n"
    "\n"
    "Commands:\n"
    "  run         run a program with every heap allocation recorded\n"
    "  report      read a dump and print what it holds\n"
    "  check       CI gates on dumps: leaked bytes and blocks, peak\n"
    "  flamegraph  flame graphs of a dump (svg, folded, speedscope, pprof)\n"
    "  timeline    heap in use and RSS over the run's time\n"
    "  diff        which stacks grew between two runs\n"
    "\n"
    "'memtrace COMMAND --help' describes each command.\n";

int main(int argc, char **argv)
{
    if (argc < 2)
        return fputs(usage, stderr), 1;
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return fputs(usage, stdout), 0;
    if (strcmp(cmd, "--version") == 0)
        return puts("memtrace " MEMTRACE_VERSION), 0;
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "flamegraph") == 0)
        return cmd_flamegraph(argc - 1, argv + 1);
    if (strcmp(cmd, "timeline") == 0)
        return cmd_timeline(argc - 1, argv + 1);
    if (strcmp(cmd, "diff") == 0)
        return cmd_diff(argc - 1, argv + 1);
    if (strcmp(cmd, "__dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(cmd, "__serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    return cli_error("unknown command '%s' (memtrace --help)", cmd);
}
