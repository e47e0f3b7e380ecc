/* The values of the recording options that `run` and `__serve` share:
 * --unwind, --leak-check, --max-depth, --python. Each returns 0, or -1 for
 * a value it does not know. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "memtrace/format.h"
#include "memtrace/ring.h"

int parse_unwind(const char *s, uint32_t *out)
{
    if (strcmp(s, "dwarf") == 0)
        *out = MT_UNWIND_DWARF;
    else if (strcmp(s, "fp") == 0)
        *out = MT_UNWIND_FP;
    else
        return -1;
    return 0;
}

int parse_leak_check(const char *s, uint32_t *out)
{
    if (strcmp(s, "full") == 0)
        *out = MT_LEAK_CHECK_FULL;
    else if (strcmp(s, "summary") == 0)
        *out = MT_LEAK_CHECK_SUMMARY;
    else if (strcmp(s, "none") == 0)
        *out = MT_LEAK_CHECK_NONE;
    else
        return -1;
    return 0;
}

int parse_depth(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > MT_MAX_DEPTH_LIMIT)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int parse_python_mode(const char *s, uint32_t *out)
{
    if (strcmp(s, "auto") == 0)
        *out = MT_PYTHON_AUTO;
    else if (strcmp(s, "on") == 0)
        *out = MT_PYTHON_ON;
    else if (strcmp(s, "off") == 0)
        *out = MT_PYTHON_OFF;
    else
        return -1;
    return 0;
}
