/* `memtrace diff`'s output: text and JSON (SPEC section 6). */
#ifndef MEMTRACE_DIFF_OUTPUT_H
#define MEMTRACE_DIFF_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include "analyze/diff.h"
#include "read/dump_reader.h"

/* One run: its dump's path, the dump and its analysis. */
struct diff_run {
    const char *path;
    const struct dump_reader *r;
    const struct analysis *a;
};

/* shown: how many stacks of each list to print (of d->counts). limit: the
 * --fail-on-growth bytes, or -1; failed: whether it was exceeded. */
void diff_print_json(FILE *out, const struct diff *d, const struct diff_run *runs,
                     const uint32_t *shown, long long limit, int failed);
void diff_print_text(FILE *out, const struct diff *d, const struct diff_run *runs,
                     const uint32_t *shown);
/* "+1,234 B (+1.2 KiB)": exact, then readable when large; buf: 96 bytes. */
const char *diff_fmt_change(char *buf, int64_t v, int bytes);

#endif
