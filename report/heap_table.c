/* Live-block table (see heap_table.h). Used outside the traced process, so
 * it may use malloc. */
#define _GNU_SOURCE
#include "heap_table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)

/* Tables of BIG_TABLE bytes and more are mapped, not malloc'd: the kernel
 * zeroes their pages as they are first touched (a grow does not wait for
 * all of them at once) and returns them at once when freed. */
#define BIG_TABLE (4u << 20)

static size_t slots_bytes(size_t n)
{
    size_t bytes = n * sizeof(struct heap_block);
    return bytes < BIG_TABLE ? bytes : (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
}

/* A zeroed array of n slots. A big one is asked to be backed with huge
 * pages: every lookup lands on a random slot, and with 4 KiB pages a big
 * table misses the TLB on almost each. */
static struct heap_block *slots_alloc(size_t n)
{
    size_t bytes = slots_bytes(n);
    if (bytes < BIG_TABLE)
        return calloc(n, sizeof(struct heap_block));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only: without it, 4 KiB pages */
    return p;
}

static void slots_free(struct heap_block *slots, size_t n)
{
    size_t bytes = slots_bytes(n);
    if (bytes < BIG_TABLE)
        free(slots);
    else if (slots)
        munmap(slots, bytes);
}

int heap_table_init(struct heap_table *t)
{
    t->mask = 1023;
    t->count = 0;
    t->slots = slots_alloc(t->mask + 1);
    return t->slots ? 0 : -1;
}

void heap_table_free(struct heap_table *t)
{
    if (t->slots)
        slots_free(t->slots, t->mask + 1);
    t->slots = NULL;
    t->count = 0;
}

static int grow(struct heap_table *t)
{
    size_t mask = t->mask * 2 + 1;
    struct heap_block *slots = slots_alloc(mask + 1);
    if (!slots)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i].address)
            continue;
        size_t j = heap_table_slot_of(t->slots[i].address, mask);
        while (slots[j].address)
            j = (j + 1) & mask;
        slots[j] = t->slots[i];
    }
    slots_free(t->slots, t->mask + 1);
    t->slots = slots;
    t->mask = mask;
    return 0;
}

int heap_table_insert(struct heap_table *t, const struct heap_block *b, struct heap_block *replaced)
{
    if (!b->address) /* 0 marks an empty slot: never a block (only corrupt input has it) */
        return -1;
    if ((t->count + 1) * 4 > (t->mask + 1) * 3 && grow(t) != 0)
        return -1;
    size_t i = heap_table_slot_of(b->address, t->mask);
    while (t->slots[i].address) {
        if (t->slots[i].address == b->address) {
            *replaced = t->slots[i];
            t->slots[i] = *b;
            return 1;
        }
        i = (i + 1) & t->mask;
    }
    t->slots[i] = *b;
    t->count++;
    return 0;
}

struct heap_block *heap_table_find(struct heap_table *t, uint64_t address)
{
    if (!address)
        return NULL;
    for (size_t i = heap_table_slot_of(address, t->mask); t->slots[i].address; i = (i + 1) & t->mask)
        if (t->slots[i].address == address)
            return &t->slots[i];
    return NULL;
}

int heap_table_remove(struct heap_table *t, uint64_t address, struct heap_block *out)
{
    if (!address)
        return 0;
    size_t i = heap_table_slot_of(address, t->mask);
    while (t->slots[i].address != address) {
        if (!t->slots[i].address)
            return 0;
        i = (i + 1) & t->mask;
    }
    *out = t->slots[i];
    /* Backward-shift: pull later members of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & t->mask; t->slots[j].address; j = (j + 1) & t->mask) {
        size_t home = heap_table_slot_of(t->slots[j].address, t->mask);
        int movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    memset(&t->slots[hole], 0, sizeof t->slots[hole]);
    t->count--;
    return 1;
}

long heap_table_snapshot(const struct heap_table *t, struct heap_block **out)
{
    struct heap_block *blocks = malloc((t->count ? t->count : 1) * sizeof *blocks);
    if (!blocks)
        return -1;
    long n = 0;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].address)
            blocks[n++] = t->slots[i];
    *out = blocks;
    return n;
}
