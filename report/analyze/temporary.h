/* Temporary allocations: blocks freed by the thread that allocated them
 * before that thread allocated again (heaptrack's definition). Fed the
 * events of a dump in order, it says which frees are of temporaries,
 * without the live blocks having to record their thread.
 */
#ifndef MEMTRACE_TEMPORARY_H
#define MEMTRACE_TEMPORARY_H

#include <stdint.h>

struct temporary_thread {
    uint64_t address; /* of its last allocation */
    int candidate;    /* it has not freed that address since */
};

struct temporary_owner {
    uint64_t address; /* 0 = empty slot (no block is at address 0) */
    uint64_t thread;
};

#define TEMPORARY_FEW 4

struct temporary_tracker {
    struct temporary_thread *threads; /* by thread index */
    uint32_t threads_cap;
    /* 0: no allocation yet; 1: one thread allocates (only), and the owners
     * are implied (only's candidate, if it has one); 2: the owners below */
    int mode;
    uint64_t only;
    /* the owners: while there are at most TEMPORARY_FEW, the first nfew of
     * few; then open addressing by address in owners */
    struct temporary_owner few[TEMPORARY_FEW];
    uint32_t nfew;
    struct temporary_owner *owners;
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
