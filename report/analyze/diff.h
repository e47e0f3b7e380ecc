/* `memtrace diff`: which stacks grew or shrank between two runs, in the
 * bytes they left allocated at exit and in the bytes they held at the
 * heap's peak (diff.c). The output is export/diff_output.c's. */
#ifndef MEMTRACE_DIFF_H
#define MEMTRACE_DIFF_H

#include <stdint.h>

#include "analysis.h"

enum { DIFF_BASE, DIFF_NEW };
enum diff_list { DIFF_LEAKS, DIFF_PEAK };

/* One stack (matched across the runs) and its figures in each. */
struct diff_entry {
    uint64_t hash;
    int run;       /* the run whose site stands for the entry's stack */
    uint32_t site; /* in that run's analysis */
    uint32_t order;
    int64_t leaked_bytes[2], leaked_blocks[2], peak_bytes[2], peak_blocks[2];
};

struct diff {
    const struct analysis *a[2];
    struct diff_entry *entries;
    uint32_t count, cap;
    uint32_t *slots, mask;
    /* per list, the entries whose figures changed, largest change first */
    uint32_t *lists[2];
    uint32_t counts[2];
};

/* Matches the sites of both runs and sorts the changes; 0, or -1 when out
 * of memory (diff_free then still frees what was made). */
int diff_compare(struct diff *d, const struct analysis *base, const struct analysis *new_);
void diff_free(struct diff *d);
/* An entry's bytes and blocks in list l, for each run. */
void diff_figures(const struct diff_entry *e, enum diff_list l, int64_t *bytes, int64_t *blocks);
int64_t diff_magnitude(int64_t v);

/* The totals compared, in the order they are printed. */
enum diff_total {
    DIFF_IN_USE_BYTES,
    DIFF_IN_USE_BLOCKS,
    DIFF_PEAK_BYTES,
    DIFF_PEAK_BLOCKS,
    DIFF_BYTES_ALLOCATED,
    DIFF_ALLOCATIONS,
    DIFF_NTOTALS
};
int64_t diff_total(const struct analysis *a, enum diff_total k);

#endif
