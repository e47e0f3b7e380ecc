/* The outputs of `memtrace timeline` (timeline_output.c): CSV and SVG. */
#ifndef MEMTRACE_TIMELINE_OUTPUT_H
#define MEMTRACE_TIMELINE_OUTPUT_H

#include <stdio.h>

#include "analyze/timeline.h"

/* CSV: a header line "time_ns,heap_bytes,heap_blocks,rss_bytes", then one
 * line per row; rss_bytes is empty before the first RSS sample. 0, or -1 on
 * a write error or out of memory. */
int timeline_write_csv(FILE *out, const struct timeline *t);
/* A self-contained SVG chart: heap in use (filled) and RSS (line) against
 * time, axes in B/KiB/MiB/GiB and ns/us/ms/s, the peak marked with its value
 * and time, the marks (MEMTRACE_MARK) as labelled vertical lines
 * title is shown above the chart (may be
 * NULL). 0, or -1 on a write error or out of memory. */
int timeline_write_svg(FILE *out, const struct timeline *t, const char *title);

#endif
