/* The flame graph exports of `memtrace flamegraph` (SPEC section 9): folded
 * stacks, speedscope's JSON file format, and a self-contained interactive
 * SVG. All three are drawn from one tree (flame_tree.h) that merges the
 * analysis's sites by frame name, outermost frame at the root.
 *
 * A metric chooses what a site weighs. Each has a pair of figures, bytes and
 * blocks (for allocated and allocations the blocks are the number of
 * allocations), and one of them is the primary: the folded values and the
 * widths of the SVG.
 *
 *   metric       primary  bytes             blocks
 *   leaked       bytes    leaked_bytes      leaked_blocks
 *   peak         bytes    site_peak_bytes   site_peak_blocks
 *   allocated    bytes    bytes_allocated   allocations
 *   allocations  blocks   bytes_allocated   allocations
 *   temporary    blocks   temporary_bytes   temporary
 *
 * Sites filtered out (--include/--exclude) are left out. The writers return
 * 0, or -1 when out of memory; write errors are for the caller to find with
 * ferror.
 */
#ifndef MEMTRACE_EXPORT_FLAME_H
#define MEMTRACE_EXPORT_FLAME_H

#include <stdio.h>

#include "analyze/analysis.h"

enum flame_metric { FLAME_LEAKED, FLAME_PEAK, FLAME_ALLOCATED, FLAME_ALLOCATIONS, FLAME_TEMPORARY };

/* The metric named s ("leaked", ...): 0, or -1 for an unknown name. */
int flame_metric_parse(const char *s, enum flame_metric *out);
const char *flame_metric_name(enum flame_metric m);

struct flame_options {
    enum flame_metric metric;
    int inverted; /* svg: an icicle graph, root at the top */
};

/* `outer;...;inner VALUE` lines, one per distinct stack with a non-zero
 * primary value, sorted; the values add up to the metric's total. */
int export_folded(FILE *out, const struct analysis *a, const struct flame_options *o);
/* speedscope's file format: two sampled profiles, the metric's bytes and its
 * blocks (the primary first), over one shared frame table. */
int export_speedscope(FILE *out, const struct dump_reader *r, const struct analysis *a,
                      const struct flame_options *o);
/* One SVG file with its script and style inside (no network): frames sized
 * by the primary value, coloured by module, with tooltips, click to zoom,
 * search. Frames narrower than a pixel are left out, as flamegraph.pl's
 * --minwidth does, and the minimum width is raised further when needed to
 * keep the file under about 8 MB. */
int export_flame_svg(FILE *out, const struct dump_reader *r, const struct analysis *a,
                     const struct flame_options *o);

#endif
