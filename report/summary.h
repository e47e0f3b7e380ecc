/* The summary of one dump: the process, how it ended, and memcheck's HEAP
 * SUMMARY figures with the peak, replayed from the events with the same
 * counting rules as the consumer (SPEC section 4). */
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
};

/* Reads the whole dump behind r (opened by dump_open). 0, or -1 with
 * r->error set. */
int summary_compute(struct dump_reader *r, struct summary *s);
void summary_print_text(FILE *out, const struct dump_reader *r, const struct summary *s);
void summary_print_json(FILE *out, const struct dump_reader *r, const struct summary *s);

#endif
