/* The stacks of a dump made sites (distinct symbolized stacks), beside the
 * pass over its events rather than in it: the pass logs the records that
 * symbolizing needs (module loads and unloads, stacks, Python frames) as it
 * meets them, and a worker thread symbolizes them in the same order, so the
 * module map of each stack is the one of its time and the sites are
 * numbered as the stacks first give them. The pass never waits for it.
 *
 * Until site_builder_finish, the analysis' symbolizer, Python frames,
 * frames and sites belong to the worker: nothing else may touch them.
 */
#ifndef MEMTRACE_SITES_H
#define MEMTRACE_SITES_H

#include <stdint.h>

#include "analysis.h"

struct site_builder;

/* Starts building a's sites (a->symbolizer made), with o's --include and
 * --exclude. NULL when out of memory. */
struct site_builder *site_builder_new(struct analysis *a, const struct analysis_options *o);
/* Logs a MODULE_LOAD, MODULE_UNLOAD, STACK or PYFRAME record, in dump order
 * (the STACK records are the stacks 0, 1, ...). 0, or -1 when out of
 * memory. */
int site_builder_add(struct site_builder *b, const struct dump_record *rec);
/* Waits for every logged stack to have its site and frees b: *site_of gets
 * the site of each stack (malloc'd, *nstacks of them). 0, or -1 when out of
 * memory (then nothing to free). */
int site_builder_finish(struct site_builder *b, uint32_t **site_of, uint32_t *nstacks);
/* Stops the worker and frees b (the pass failed). */
void site_builder_abandon(struct site_builder *b);

#endif
