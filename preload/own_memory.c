/* The shim's own memory, as the reachability scan must skip it: a root is
 * only what the program holds (SPEC section 5), never the shim's tables,
 * queues and caches, whose words can be copies of block addresses (the
 * pointer of the last event a signal handler queued, say).
 *
 * Every private mapping the shim makes for itself is registered here by
 * mt_map and unregistered by mt_unmap. The table is a fixed array of slots
 * claimed and released by compare-and-swap: no lock, so a signal handler
 * that maps a table while its thread was registering one cannot deadlock.
 * Runs inside the traced process: static storage only, no malloc.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "shim.h"

#define OWN_SLOTS 16384

struct own_slot {
    uintptr_t start; /* 0: free; claimed by CAS before end is written */
    uintptr_t end;   /* 0 while being claimed or released */
};

static struct own_slot own_slots[OWN_SLOTS];
static unsigned own_used; /* slots below this index have been claimed once */

void mt_own_add(const void *p, size_t size)
{
    uintptr_t start = (uintptr_t)p;
    if (!start || !size)
        return;
    for (unsigned i = 0; i < OWN_SLOTS; i++) {
        uintptr_t expected = 0;
        if (__atomic_load_n(&own_slots[i].start, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&own_slots[i].start, &expected, start, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            __atomic_store_n(&own_slots[i].end, start + size, __ATOMIC_RELEASE);
            unsigned used = __atomic_load_n(&own_used, __ATOMIC_RELAXED);
            while (used < i + 1 && !__atomic_compare_exchange_n(&own_used, &used, i + 1, 0,
                                                                __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                ;
            return;
        }
    }
    /* Full: the mapping stays a root. Only the scan's precision suffers. */
}

void mt_own_remove(const void *p)
{
    uintptr_t start = (uintptr_t)p;
    unsigned limit = __atomic_load_n(&own_used, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < limit && i < OWN_SLOTS; i++) {
        if (__atomic_load_n(&own_slots[i].start, __ATOMIC_ACQUIRE) == start &&
            __atomic_load_n(&own_slots[i].end, __ATOMIC_ACQUIRE) != 0) {
            __atomic_store_n(&own_slots[i].end, 0, __ATOMIC_RELEASE);
            __atomic_store_n(&own_slots[i].start, 0, __ATOMIC_RELEASE);
            return;
        }
    }
}

void mt_unmap(void *p, size_t size)
{
    if (!p)
        return;
    mt_own_remove(p);
    munmap(p, size);
}

int mt_own_each(int (*fn)(uintptr_t start, uintptr_t end, void *arg), void *arg)
{
    unsigned limit = __atomic_load_n(&own_used, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < limit && i < OWN_SLOTS; i++) {
        uintptr_t start = __atomic_load_n(&own_slots[i].start, __ATOMIC_ACQUIRE);
        uintptr_t end = __atomic_load_n(&own_slots[i].end, __ATOMIC_ACQUIRE);
        if (start && end > start && fn(start, end, arg))
            return 1;
    }
    return 0;
}
