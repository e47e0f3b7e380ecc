/* The temporary-allocation tracker against the rule it replaces, which kept
 * the allocating thread in every live block: a free is of a temporary when
 * the freeing thread's last allocation was at that address, it has not freed
 * that address since, and the block live there is one it allocated. Random
 * events on a few addresses, by one thread for a while (the tracker's
 * one-thread mode), then by several, with allocations at live addresses
 * (missed frees), frees of dead ones and inherited blocks.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "analyze/temporary.h"

#define ADDRESSES 24
#define THREADS 5

struct model {
    int live[ADDRESSES];
    uint64_t owner[ADDRESSES]; /* the thread that allocated the live block */
    uint64_t last[THREADS];    /* address of the last allocation, 0 = none */
    int candidate[THREADS];
};

static uint64_t address_of(int i)
{
    return 0x10000 + 16 * (uint64_t)i;
}

static unsigned seed = 2024;

static unsigned roll(unsigned n)
{
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) % n;
}

/* Runs steps events with threads 0..nthreads-1; 1 if every free agreed. */
static int run(struct temporary_tracker *t, struct model *m, int steps, int nthreads)
{
    int agreed = 1;
    for (int step = 0; step < steps; step++) {
        int i = (int)roll(ADDRESSES), what = (int)roll(20);
        uint64_t thread = roll((unsigned)nthreads), address = address_of(i);
        if (what == 0) { /* a fork child's inherited block: thread 0's */
            m->live[i] = 1;
            m->owner[i] = 0;
            CHECK(temporary_on_inherit(t, address) == 0);
        } else if (what < 10) {
            int replaced = m->live[i];
            m->live[i] = 1;
            m->owner[i] = thread;
            m->last[thread] = address;
            m->candidate[thread] = 1;
            CHECK(temporary_on_alloc(t, thread, address, replaced) == 0);
        } else {
            int live = m->live[i];
            int expected = live && m->candidate[thread] && m->last[thread] == address &&
                           m->owner[i] == thread;
            agreed &= temporary_on_free(t, thread, address, live) == expected;
            m->live[i] = 0;
            if (m->last[thread] == address)
                m->candidate[thread] = 0;
        }
    }
    return agreed;
}

int main(void)
{
    for (int round = 0; round < 200; round++) {
        struct temporary_tracker t = {0};
        struct model m;
        memset(&m, 0, sizeof m);
        CHECK(run(&t, &m, 300, 1));       /* one thread */
        CHECK(run(&t, &m, 3000, THREADS)); /* then several */
        temporary_free(&t);
    }
    /* a free by a thread that never allocated, before anything else */
    struct temporary_tracker t = {0};
    CHECK(temporary_on_free(&t, 3, 0x1000, 0) == 0);
    CHECK(temporary_on_alloc(&t, 1, 0x1000, 0) == 0);
    CHECK(temporary_on_free(&t, 1, 0x1000, 1) == 1);
    temporary_free(&t);
    return check_report();
}
