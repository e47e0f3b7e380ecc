/* A thread that reads a dump ahead of the pass over it: decompressing and
 * decoding are a quarter of a report's time on a big dump, and need nothing
 * from the pass. It hands the pass blocks of events, with the other records
 * the pass needs in their places among them, and gives the records that
 * symbolizing needs to the site builder itself (sites.h).
 *
 * Until event_pipe_finish, the reader belongs to the pipe's thread: the
 * pass may not touch it.
 */
#ifndef MEMTRACE_EVENT_PIPE_H
#define MEMTRACE_EVENT_PIPE_H

#include <stdint.h>

#include "read/dump_reader.h"

struct site_builder;

#define PIPE_EVENTS 32768

/* A record among the events: it comes before events[before]. Its name
 * (ALLOCATOR, MARK) is copied into label (rec.name is left pointing to
 * where the reader had it: use label); its other pointers are not kept. */
struct pipe_record {
    uint32_t before;
    struct dump_record rec;
    char label[256];
};

struct pipe_block {
    struct dump_event events[PIPE_EVENTS];
    uint32_t nevents;
    struct pipe_record *records;
    uint32_t nrecords, records_cap;
};

struct event_pipe;

/* Starts reading r (opened, its PROCESS record read) on a thread of its
 * own; module loads and unloads, stacks and Python frames also go to sites
 * when it is not NULL. NULL when out of memory. */
struct event_pipe *event_pipe_start(struct dump_reader *r, struct site_builder *sites);
/* The next block of the dump, or NULL when there are no more (the previous
 * block is given back). */
const struct pipe_block *event_pipe_next(struct event_pipe *p);
/* Stops the thread (early, if the pass wants no more) and frees p: 0 when
 * the dump was read to its end (r->truncated says whether it was cut
 * short), -1 when it is corrupt (r->error says where) or memory ran out
 * (*oom is then 1). *last_time: the latest time of any record read. */
int event_pipe_finish(struct event_pipe *p, uint64_t *last_time, int *oom);

#endif
