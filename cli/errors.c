/* The command line's errors: one line on stderr, exit status 1. Shared by
 * every subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("memtrace: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_bad_option(const char *command, const char *arg, int optopt)
{
    if (optopt && strchr("ou", optopt))
        return cli_error("%s: option -%c needs an argument (memtrace %s --help)", command, optopt,
                         command);
    return cli_error("%s: unknown option or missing argument: %s (memtrace %s --help)", command,
                     arg ? arg : "?", command);
}
