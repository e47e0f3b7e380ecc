/* The series of `memtrace timeline`: heap in use and RSS over the run's
 * time, from one streaming pass over a dump's records.
 *
 * The heap is counted as analysis.c counts it (SPEC section 4: an
 * allocation at a live address replaces the old block, a free of an address
 * that is not live counts for nothing), so the peak and the final figures
 * equal `memtrace report`'s peak_bytes and in_use_bytes. RSS is the samples
 * the consumer recorded (every 10 ms), as they are.
 *
 * Memory is bounded: the live blocks (heap_table) and a fixed number of time
 * slices. The run's time is cut into at most nslices equal slices whose
 * width doubles (neighbours merged) whenever a record falls past the last
 * one; each slice keeps the lowest, highest and last point of each series,
 * so the extremes, the peak above all, survive downsampling exactly.
 */
#ifndef MEMTRACE_TIMELINE_H
#define MEMTRACE_TIMELINE_H

#include <stdint.h>
#include <stdio.h>

#include "read/dump_reader.h"

struct timeline_point {
    uint64_t time_ns; /* since the process started */
    uint64_t bytes;   /* heap bytes, or RSS bytes */
    uint64_t blocks;  /* heap blocks (0 for RSS) */
    uint64_t seq;     /* heap points: the event's index, which orders
                         points of the same time (stamps of a
                         one-thread process have a clock tick's grain) */
};

struct timeline_slice {
    int has_heap, has_rss;
    struct timeline_point heap_low, heap_high, heap_last;
    struct timeline_point rss_low, rss_high, rss_last;
};

/* A MEMTRACE_MARK: when, and its label (NUL-terminated). */
struct timeline_mark {
    uint64_t time_ns;
    char label[256];
};
#define TIMELINE_MAX_MARKS 256 /* kept; later ones are counted only */

struct timeline {
    struct timeline_slice *slices;
    uint32_t nslices;  /* slices in use: [0, nslices) */
    uint32_t capacity; /* at most this many */
    uint64_t width_ns; /* each slice covers [k * width, (k + 1) * width) */
    uint64_t duration_ns;
    uint64_t peak_bytes, peak_blocks, peak_time_ns; /* the first time the peak is reached */
    uint64_t final_bytes, final_blocks;             /* in use at the end */
    uint64_t rss_samples, rss_max, rss_max_time_ns;
    int truncated;
    struct timeline_mark *marks; /* in time order; NULL if none */
    uint32_t nmarks;
    uint64_t marks_dropped;
    uint64_t heap_points; /* heap points added so far */
};

/* Reads every record of r (opened by dump_open) into t, with at most
 * nslices slices (>= 2). 0, or -1 with r->error set. */
int timeline_read(struct dump_reader *r, uint32_t nslices, struct timeline *t);
void timeline_free(struct timeline *t);

/* One row of the series: a point of either series, with the other one's
 * latest value before it. */
struct timeline_row {
    uint64_t time_ns, heap_bytes, heap_blocks, rss_bytes;
    int has_rss; /* 0 before the first RSS sample */
    int is_rss;  /* the row is an RSS sample (else a heap point) */
    uint64_t seq; /* a heap point's timeline_point.seq */
};

/* The rows of t in time order (at most 6 per slice) into *rows (malloc'd).
 * The count, or -1 when out of memory. */
long timeline_rows(const struct timeline *t, struct timeline_row **rows);

#endif
