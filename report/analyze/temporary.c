/* Temporary allocations (see temporary.h).
 *
 * Each thread has a candidate: the address of its last allocation, until
 * it frees that address. A free is of a temporary when the freeing thread's
 * candidate is that address and the block there is the one the thread
 * allocated (not one another thread allocated there after freeing the
 * candidate). Rather than store the thread in every live block, the owners
 * map keeps, for each candidate whose block is still the live one at its
 * address, address -> thread: one entry at most per thread, so it stays as
 * small as the number of threads, and an event costs a lookup in it (a
 * look at a few entries while there are few).
 *
 * Invariant: owners[X] = T exactly when T's candidate is X and the block
 * live at X was allocated by T.
 *
 * While a single thread allocates (most programs, and any before their
 * second thread), no owner need be kept: the block at its candidate's
 * address is its candidate as long as it has one. The owners are written
 * out when a second thread shows up (or an inherited block).
 */
#include "temporary.h"

#include <stdlib.h>

#include "util.h"

/* The slow paths are functions of their own, never inlined: the fast ones,
 * run at every event, then need no registers saved. */
#define COLD __attribute__((noinline, cold))

static COLD struct temporary_thread *thread_slot_grow(struct temporary_tracker *t,
                                                      uint64_t thread)
{
    /* a thread index beyond this comes only from a corrupt dump: it is not
     * worth the memory (16 bytes per index) */
    if (thread >= 1u << 20 ||
        array_grow((void **)&t->threads, &t->threads_cap, sizeof *t->threads, thread + 1) != 0)
        return NULL;
    return &t->threads[thread];
}

static struct temporary_thread *thread_slot(struct temporary_tracker *t, uint64_t thread)
{
    return thread < t->threads_cap ? &t->threads[thread] : thread_slot_grow(t, thread);
}

/* ---- the owners map ------------------------------------------------------ */

static uint32_t owner_home(const struct temporary_tracker *t, uint64_t address)
{
    return (uint32_t)(((address >> 4 | address << 60) * 0x9e3779b97f4a7c15ull) >> 32) &
           t->owners_mask;
}

static COLD struct temporary_owner *owner_find_map(struct temporary_tracker *t,
                                                   uint64_t address)
{
    for (uint32_t i = owner_home(t, address); t->owners[i].address; i = (i + 1) & t->owners_mask)
        if (t->owners[i].address == address)
            return &t->owners[i];
    return NULL;
}

static struct temporary_owner *owner_find(struct temporary_tracker *t, uint64_t address)
{
    if (t->owners)
        return owner_find_map(t, address);
    for (uint32_t i = 0; i < t->nfew; i++)
        if (t->few[i].address == address)
            return &t->few[i];
    return NULL;
}

/* Removes the entry e of the map (backward-shift deletion, as heap_table.c). */
static COLD void owner_erase_map(struct temporary_tracker *t, struct temporary_owner *e)
{
    uint32_t hole = (uint32_t)(e - t->owners), mask = t->owners_mask;
    for (uint32_t j = (hole + 1) & mask; t->owners[j].address; j = (j + 1) & mask) {
        uint32_t home = owner_home(t, t->owners[j].address);
        int movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            t->owners[hole] = t->owners[j];
            hole = j;
        }
    }
    t->owners[hole] = (struct temporary_owner){0, 0};
    t->owners_count--;
}

static void owner_erase(struct temporary_tracker *t, struct temporary_owner *e)
{
    if (t->owners)
        owner_erase_map(t, e);
    else
        *e = t->few[--t->nfew];
}

/* Adds address -> thread to the map (made from the few if there is none
 * yet). 0, or -1 when out of memory. */
static COLD int owner_put_map(struct temporary_tracker *t, uint64_t address, uint64_t thread)
{
    if (!t->owners) { /* too many for the few: into the map with them */
        t->owners = calloc(16, sizeof *t->owners);
        if (!t->owners)
            return -1;
        t->owners_mask = 15;
        for (uint32_t i = 0; i < t->nfew; i++) {
            uint32_t j = owner_home(t, t->few[i].address);
            while (t->owners[j].address)
                j = (j + 1) & t->owners_mask;
            t->owners[j] = t->few[i];
        }
        t->owners_count = t->nfew;
        t->nfew = 0;
    }
    if (2 * (t->owners_count + 1) > t->owners_mask + 1) {
        uint32_t old_n = t->owners_mask + 1, n = 2 * old_n;
        struct temporary_owner *old = t->owners, *q = calloc(n, sizeof *q);
        if (!q)
            return -1;
        t->owners = q;
        t->owners_mask = n - 1;
        for (uint32_t i = 0; i < old_n; i++) {
            if (!old[i].address)
                continue;
            uint32_t j = owner_home(t, old[i].address);
            while (q[j].address)
                j = (j + 1) & t->owners_mask;
            q[j] = old[i];
        }
        free(old);
    }
    uint32_t i = owner_home(t, address);
    while (t->owners[i].address)
        i = (i + 1) & t->owners_mask;
    t->owners[i] = (struct temporary_owner){address, thread};
    t->owners_count++;
    return 0;
}

/* Adds address -> thread (address has no entry). 0, or -1 when out of memory. */
static int owner_put(struct temporary_tracker *t, uint64_t address, uint64_t thread)
{
    if (t->owners || t->nfew == TEMPORARY_FEW)
        return owner_put_map(t, address, thread);
    t->few[t->nfew++] = (struct temporary_owner){address, thread};
    return 0;
}

/* ---- events -------------------------------------------------------------- */

/* From one thread to any number: its implied owner is written out (into
 * the few, empty until now: this cannot fail). */
static COLD void go_general(struct temporary_tracker *t)
{
    if (t->mode == 1 && t->threads[t->only].candidate)
        owner_put(t, t->threads[t->only].address, t->only);
    t->mode = 2;
}

int temporary_on_alloc(struct temporary_tracker *t, uint64_t thread, uint64_t address,
                       int replaced)
{
    if (t->mode == 0 && thread_slot(t, thread)) {
        t->mode = 1;
        t->only = thread;
    }
    if (t->mode == 1 && thread == t->only) {
        t->threads[thread] = (struct temporary_thread){address, 1};
        return 0;
    }
    if (t->mode == 1)
        go_general(t);
    struct temporary_owner *e;
    if (replaced && (e = owner_find(t, address))) /* its block is gone */
        owner_erase(t, e);
    struct temporary_thread *th = thread_slot(t, thread);
    if (!th)
        return 0;
    if (th->candidate && (e = owner_find(t, th->address)) && e->thread == thread)
        owner_erase(t, e); /* no longer its last allocation */
    *th = (struct temporary_thread){address, 1};
    return owner_put(t, address, thread);
}

int temporary_on_inherit(struct temporary_tracker *t, uint64_t address)
{
    if (t->mode == 1)
        go_general(t);
    struct temporary_owner *e = owner_find(t, address);
    if (e)
        owner_erase(t, e);
    /* An inherited block counts as thread 0's: it is thread 0's last
     * allocation if that one was at this address and is not freed yet
     * (inherited blocks come before any event in a well-formed dump). */
    if (t->threads_cap && t->threads[0].candidate && t->threads[0].address == address)
        return owner_put(t, address, 0);
    return 0;
}

int temporary_on_free(struct temporary_tracker *t, uint64_t thread, uint64_t address, int live)
{
    if (t->mode == 1 && thread == t->only) {
        struct temporary_thread *th = &t->threads[thread];
        int temporary = live && th->candidate && th->address == address;
        if (th->address == address)
            th->candidate = 0;
        return temporary;
    }
    if (t->mode == 1)
        go_general(t);
    struct temporary_thread *th = thread_slot(t, thread);
    int temporary = 0;
    struct temporary_owner *e;
    if (live && (e = owner_find(t, address))) {
        temporary = e->thread == thread;
        owner_erase(t, e);
    }
    if (th && th->address == address)
        th->candidate = 0;
    return temporary;
}

void temporary_free(struct temporary_tracker *t)
{
    free(t->threads);
    free(t->owners);
    *t = (struct temporary_tracker){0};
}
