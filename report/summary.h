/* The summary of one dump: the process, how it ended, and memcheck's HEAP
 * SUMMARY figures with the peak (filled by analysis_run, which replays the
 * events with the consumer's counting rules, SPEC section 4). */
#ifndef MEMTRACE_SUMMARY_H
#define MEMTRACE_SUMMARY_H

#include <stdio.h>

#include "dump_reader.h"
#include "heap_table.h"

struct summary {
    struct heap_totals totals;
    uint64_t temporary_allocations;
    uint64_t duration_ns;
    uint64_t exit_how; /* enum mt_exit, 0 if the dump has no EXIT record */
    int64_t exit_value;
    int truncated;
    int scanned; /* the dump holds a reachability scan */
    uint64_t kind_bytes[MT_KIND_COUNT], kind_blocks[MT_KIND_COUNT]; /* live at the end */
};

void summary_print_text(FILE *out, const struct dump_reader *r, const struct summary *s);
/* The "process" and "totals" members of the report JSON (SPEC section 7),
 * without the braces around them or a trailing comma. */
void summary_print_json_blocks(FILE *out, const struct dump_reader *r, const struct summary *s);

#endif
