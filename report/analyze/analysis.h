/* One streaming pass over a dump that gathers everything the reports show:
 * the totals, and per site (a distinct symbolized stack) its allocations,
 * its temporary allocations, its bytes at the peak and what it left live.
 *
 * Memory grows with the live heap, the distinct stacks and the distinct
 * frames, never with the number of events. Three threads share the work: one
 * reads and decodes the dump (event_pipe.c), one symbolizes its stacks into
 * sites (sites.c), and the pass replays the events, keeping its figures per
 * stack, added up into the sites at the end. The bytes each stack held at the
 * peak are kept without a second pass: a stack saves its live figures the
 * first time they change after a new peak (see stats_touch in analysis.c).
 */
#ifndef MEMTRACE_ANALYSIS_H
#define MEMTRACE_ANALYSIS_H

#include <stdint.h>

#include "read/dump_reader.h"
#include "heap_table.h"
#include "symbolize/python_frames.h"
#include "summary.h"
#include "symbolize/symbolize.h"

struct analysis_options {
    struct symbolizer_options symbols;
    const char **include; /* glob patterns: keep stacks with a matching frame */
    int ninclude;
    const char **exclude; /* glob patterns: drop stacks with a matching frame */
    int nexclude;
    /* Only the blocks of these allocators (globs against the name of the
     * function that allocated: malloc, calloc, ..., a hooked function's
     * name, "client"), and only those allocated between the first mark
     * named mark_from and the first mark named mark_to after it. The
     * frees of those blocks count whenever they come. */
    const char **allocators;
    int nallocators;
    const char *mark_from, *mark_to;
};

struct allocator_name {
    uint32_t function; /* >= MT_FN_CUSTOM_BASE */
    char *name;
};

struct site {
    uint32_t first_frame; /* index into analysis.site_frames */
    uint32_t nframes;
    uint64_t hash;
    int filtered_out;
    uint64_t allocations, bytes_allocated;
    uint64_t temporary, temporary_bytes;
    int64_t live_bytes, live_blocks;
    int64_t peak_bytes, peak_blocks; /* at the peak, when peak_version is the analysis' */
    uint32_t peak_version;
    uint64_t leaked_bytes, leaked_blocks; /* live at the end, all kinds */
    uint64_t kind_bytes[MT_KIND_COUNT], kind_blocks[MT_KIND_COUNT]; /* the same by kind */
    uint32_t alloc_function; /* enum mt_function of its first allocation */
};

struct analysis {
    struct summary summary;
    struct sym_frame *frames; /* distinct frames */
    uint32_t nframes, frames_cap;
    uint32_t *site_frames; /* per site, indexes into frames */
    uint32_t site_frames_len, site_frames_cap;
    struct site *sites;
    uint32_t nsites, sites_cap;
    uint32_t *frame_index, frame_index_mask;   /* hash of frames */
    uint32_t *site_index, site_index_mask;     /* hash of sites */
    uint32_t peak_version;
    struct symbolizer *symbolizer;
    struct python_frames python;
    struct allocator_name *allocators; /* from the dump's ALLOCATOR records */
    uint32_t nallocators, allocators_cap;
    uint64_t window_from_ns, window_to_ns; /* the marks' times (--between) */
};

/* The allocation functions' names as valgrind shows them (malloc, _Znwm...;
 * NULL for the frees). */
extern const char *const alloc_function_names[MT_FN_COUNT_];
const char *alloc_function_name(uint32_t function);
/* The name of an allocation function: a standard one's or a custom
 * allocator's (ALLOCATOR records); NULL if the dump did not name it. */
const char *analysis_allocator_name(const struct analysis *a, uint32_t function);

/* Reads the whole dump behind r (opened by dump_open). 0, or -1 with
 * r->error set (also when a mark of o->mark_from/mark_to is missing). */
int analysis_run(struct dump_reader *r, const struct analysis_options *o, struct analysis *a);
void analysis_free(struct analysis *a);
/* The site's frames, innermost first. */
static inline const uint32_t *site_frame_list(const struct analysis *a, const struct site *s)
{
    return a->site_frames + s->first_frame;
}
/* Bytes and blocks the site held at the peak. */
int64_t site_peak_bytes(const struct analysis *a, const struct site *s);
int64_t site_peak_blocks(const struct analysis *a, const struct site *s);

#endif
