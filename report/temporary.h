/* Temporary allocations: blocks freed by the thread that allocated them
 * before that thread allocated again (heaptrack's definition). Fed the
 * events of a dump in order, it says which frees are of temporaries,
 * without the live blocks having to record their thread.
 */
#ifndef MEMTRACE_TEMPORARY_H
#define MEMTRACE_TEMPORARY_H

#include <stdint.h>

struct temporary_thread;
struct temporary_owner;

struct temporary_tracker {
    struct temporary_thread *threads; /* by thread index */
    uint32_t threads_cap;
    struct temporary_owner *owners; /* open addressing, by address */
    uint32_t owners_mask, owners_count;
};

/* A new block at address by thread (replaced: it took the place of a live
 * block). 0, or -1 when out of memory. */
int temporary_on_alloc(struct temporary_tracker *t, uint64_t thread, uint64_t address,
                       int replaced);
/* A block a fork child inherited, at address (counted as thread 0's). 0, or
 * -1 when out of memory. */
int temporary_on_inherit(struct temporary_tracker *t, uint64_t address);
/* A free by thread of address (live: a block was live there): 1 when the
 * block was a temporary, else 0. */
int temporary_on_free(struct temporary_tracker *t, uint64_t thread, uint64_t address, int live);
void temporary_free(struct temporary_tracker *t);

#endif
