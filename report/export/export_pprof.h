/* The pprof export of `memtrace flamegraph --format pprof`: an analysis as a
 * gzipped profile.proto (github.com/google/pprof/proto/profile.proto), read
 * by `go tool pprof` and by continuous-profiling servers.
 *
 * Sample types, one sample per site (a distinct symbolized stack):
 *   alloc_objects, alloc_space   every allocation the site made (count, bytes)
 *   inuse_objects, inuse_space   the site's blocks not freed when the process
 *                                ended (what `report --leaks` counts): "in use"
 *                                means in use at exit, not at some moment
 * and, only for the metric that asks for them:
 *   peak_objects, peak_space            (metric peak) held at the heap's peak
 *   temporary_objects, temporary_space  (metric temporary) temporary blocks
 *
 * metric (NULL = leaked) chooses default_sample_type, the type a viewer shows
 * first: leaked -> inuse_space, peak -> peak_space, allocated -> alloc_space,
 * allocations -> alloc_objects, temporary -> temporary_objects.
 *
 * Each frame of a site becomes a Line; the inlined frames and the frame they
 * were inlined into share one Location (innermost first), as pprof wants.
 * Mappings are the modules: filename, memory_start/limit spanning the
 * locations seen in the module, file_offset = memory_start - load bias.
 * Sites filtered out (--include/--exclude) are left out.
 */
#ifndef MEMTRACE_EXPORT_PPROF_H
#define MEMTRACE_EXPORT_PPROF_H

#include <stdio.h>

#include "analyze/analysis.h"

/* Writes the gzipped profile to out. 0, or -1 with a one-line message on
 * stderr (an unknown metric, out of memory, a write error). */
int flamegraph_pprof(FILE *out, const struct dump_reader *r, const struct analysis *a,
                     const char *metric);

#endif
