/* The set of live heap blocks, keyed by address: used by the consumer while
 * recording and by the reader while replaying a dump. Memory grows with the
 * live heap only. Open addressing with linear probing and backward-shift
 * deletion, so no tombstones pile up over billions of events.
 */
#ifndef MEMTRACE_HEAP_TABLE_H
#define MEMTRACE_HEAP_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct heap_block {
    uint64_t address; /* 0 = empty slot (malloc never returns 0 for a block) */
    uint64_t size;
    uint32_t stack;
    uint32_t thread : 24; /* thread index */
    uint32_t kind : 8;    /* enum mt_leak_kind, once scanned */
};

struct heap_table {
    struct heap_block *slots;
    size_t mask;
    size_t count;
};

/* The slot where the search for address starts. */
static inline size_t heap_table_slot_of(uint64_t address, size_t mask)
{
    uint64_t h = (address >> 4) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & mask;
}

/* Starts loading the slot address hashes to, ahead of an insert, remove or
 * find of it (the table is read at random: each lookup is a cache miss). */
static inline void heap_table_prefetch(const struct heap_table *t, uint64_t address)
{
    __builtin_prefetch(&t->slots[heap_table_slot_of(address, t->mask)]);
}

int heap_table_init(struct heap_table *t);
void heap_table_free(struct heap_table *t);
/* Inserts a block; if the address was already live, *replaced gets the old
 * block and 1 is returned. -1 when out of memory or for address 0 (the
 * empty-slot mark, never a real block). */
int heap_table_insert(struct heap_table *t, const struct heap_block *b, struct heap_block *replaced);
/* Removes the block at address into *out; 0 if there was none. */
int heap_table_remove(struct heap_table *t, uint64_t address, struct heap_block *out);
/* The live block at address, or NULL. The pointer is valid until the next
 * insert or remove. */
struct heap_block *heap_table_find(struct heap_table *t, uint64_t address);
/* Copies every live block; returns the count, or -1 when out of memory. */
long heap_table_snapshot(const struct heap_table *t, struct heap_block **out);

/* Counters of memcheck's HEAP SUMMARY plus the peak, kept the same way by
 * the consumer and the reader (SPEC section 4). */
struct heap_totals {
    uint64_t allocations, frees, bytes_allocated;
    uint64_t in_use_bytes, in_use_blocks;
    uint64_t peak_bytes, peak_blocks, peak_time_ns;
};

#endif
