/* The set of live heap blocks, keyed by address: used by the consumer while
 * recording and by the reader while replaying a dump. Memory grows with the
 * live heap only: about 6 bytes a block.
 *
 * The blocks are grouped by the 32 KiB region of addresses they are in
 * (HEAP_REGION_SHIFT): a region's live blocks are a "leaf", an
 * open-addressing table of 32-bit entries that names the block's 16-byte
 * granule in the region and its "info": its size, stack and kind, kept once
 * for all the live blocks that share them (a program has few distinct
 * (size, stack) pairs live at once, however many blocks). A block no entry
 * can describe (an address not 16-aligned or above 2^48, or more than a
 * million distinct infos live) goes to a plain side table instead, the
 * "wide" blocks. All tables use linear probing and backward-shift deletion,
 * so no tombstones pile up over billions of events.
 */
#ifndef MEMTRACE_HEAP_TABLE_H
#define MEMTRACE_HEAP_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define HEAP_REGION_SHIFT 15
#define HEAP_REGION_GRANULES (1u << (HEAP_REGION_SHIFT - 4))

/* A block as callers see it. */
struct heap_block {
    uint64_t address; /* never 0 (malloc never returns 0 for a block) */
    uint64_t size;
    uint32_t stack;
    uint32_t kind; /* enum mt_leak_kind, once scanned */
};

/* What the live blocks of one info share; refs: how many they are. An info
 * whose last block went stays in the index, unused, until a sweep (blocks
 * come and go with the same size and stack all the time); a swept one is
 * free (refs all ones), and its size holds the next free info's number + 1. */
struct heap_info {
    uint64_t size;
    uint64_t refs;
    uint32_t stack;
    uint32_t kind;
};

/* The live blocks of one region; an entry is (granule + 1) << 20 | info,
 * 0 = empty. */
struct heap_leaf {
    uint64_t region; /* address >> HEAP_REGION_SHIFT */
    uint32_t count, mask;
    uint32_t entries[];
};

struct heap_table {
    struct heap_leaf **leaves; /* open addressing by region; NULL = empty */
    size_t leaves_mask, nleaves;
    size_t last;  /* the map slot of the last leaf looked up */
    size_t count; /* live blocks, wide ones included */
    struct heap_info *infos;
    uint32_t infos_used, infos_cap, infos_free; /* infos_free: number + 1, 0 = none */
    uint32_t *info_index; /* open addressing: info number + 1, 0 = empty */
    uint32_t info_index_mask;
    uint32_t infos_indexed, infos_unused; /* in the index; of them, with no block */
    struct heap_block *wide; /* open addressing by address, 0 = empty */
    size_t wide_mask, wide_count;
};

/* Starts loading the leaf map's slot for address, ahead of an insert,
 * remove or find of it. (The leaf itself is usually in cache already: a
 * program works near where it just did.) */
static inline void heap_table_prefetch(const struct heap_table *t, uint64_t address)
{
    uint64_t region = address >> HEAP_REGION_SHIFT;
    __builtin_prefetch(&t->leaves[(size_t)((region * 0x9e3779b97f4a7c15ull) >> 32) & t->leaves_mask]);
}

int heap_table_init(struct heap_table *t);
void heap_table_free(struct heap_table *t);
/* Inserts a block; if the address was already live, *replaced gets the old
 * block and 1 is returned. -1 when out of memory or for address 0 (the
 * empty-slot mark, never a real block). */
int heap_table_insert(struct heap_table *t, const struct heap_block *b, struct heap_block *replaced);
/* Removes the block at address into *out; 0 if there was none. */
int heap_table_remove(struct heap_table *t, uint64_t address, struct heap_block *out);
/* Sets the kind of the live block at address: 1, 0 if there is none, -1
 * when out of memory. */
int heap_table_set_kind(struct heap_table *t, uint64_t address, unsigned kind);
/* Walks the live blocks: start with *cursor = 0; 1 while *out got one. */
int heap_table_next(const struct heap_table *t, size_t *cursor, struct heap_block *out);
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
