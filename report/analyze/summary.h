/* The summary of one dump: the process, how it ended, and memcheck's HEAP
 * SUMMARY figures with the peak (filled by analysis_run, which replays the
 * events with the consumer's counting rules, SPEC section 4). */
#ifndef MEMTRACE_SUMMARY_H
#define MEMTRACE_SUMMARY_H

#include <stdio.h>

#include "read/dump_reader.h"
#include "heap_table.h"

#define SUMMARY_INCOMPLETE_SLOTS 16

struct summary {
    struct heap_totals totals;
    uint64_t temporary_allocations;
    uint64_t duration_ns;
    uint64_t exit_how; /* enum mt_exit, 0 if the dump has no EXIT record */
    int64_t exit_value;
    int truncated;
    int scanned; /* the dump holds a reachability scan */
    uint64_t kind_bytes[MT_KIND_COUNT], kind_blocks[MT_KIND_COUNT]; /* live at the end */
    /* INCOMPLETE records: bit r of incomplete_seen when one of reason r
     * came (bit 0: a reason above SUMMARY_INCOMPLETE_SLOTS - 1), and their
     * counts added up in incomplete[r] (for SCAN_NOT_ASKED, SCAN_NOT_SERVED
     * and NOT_SCANNED, which carry a value, the last one) */
    unsigned incomplete_seen;
    uint64_t incomplete[SUMMARY_INCOMPLETE_SLOTS];
    uint64_t scan_unclassified; /* blocks the scan gave back as of kind unknown */
};

/* Adds an INCOMPLETE record (enum mt_incomplete, its count) to s. */
void summary_add_incomplete(struct summary *s, uint64_t reason, uint64_t count);

/* ---- what could not be checked (SPEC sections 5 and 6) -------------------
 * A reason of scope UNCHECKED_TRACE means events are missing (a lost ring,
 * a malformed record, a dump cut short): every figure may be wrong, and
 * every gate fails. One of scope UNCHECKED_SCAN means the process left
 * blocks in use that no scan classified (kind unknown): only the leak
 * gates fail, unless they count the kind unknown. A process whose image
 * was replaced by exec has no UNCHECKED_SCAN reason: its blocks end with
 * the image, as under valgrind. */
enum unchecked_scope { UNCHECKED_TRACE = 1, UNCHECKED_SCAN = 2 };

struct unchecked_reason {
    enum unchecked_scope scope;
    const char *code; /* JSON "reason": "killed_by_signal", "no_ring", ... */
    uint64_t count;   /* UNCHECKED_SCAN: blocks of kind unknown; else the record's count */
    char text[400];   /* "it was not scanned for reachability (killed by signal 9): 4,096
                       * bytes in 1 block of kind unknown" */
};

#define UNCHECKED_MAX 12
/* The reasons (at most max) why s's process could not be fully checked;
 * 0 when it could. */
int summary_unchecked(const struct summary *s, struct unchecked_reason *out, int max);
/* The "checked" and "unchecked_reasons" members of the report JSON,
 * without braces around them or a trailing comma. */
void summary_print_unchecked_json(FILE *out, const struct summary *s);

void summary_print_text(FILE *out, const struct dump_reader *r, const struct summary *s);
/* The "process" and "totals" members of the report JSON (SPEC section 7),
 * without the braces around them or a trailing comma. */
void summary_print_json_blocks(FILE *out, const struct dump_reader *r, const struct summary *s);

#endif
