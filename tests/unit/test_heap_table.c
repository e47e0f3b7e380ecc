/* The live-block table against a naive model, through growth and many
 * removals (backward-shift deletion must never lose a block; leaves grow,
 * shrink and go), with blocks a leaf cannot hold (odd and high addresses,
 * more distinct infos than an entry can number), kinds, and the walk over
 * every live block. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "analyze/heap_table.h"

#define MODEL 20000

static uint64_t model_address(size_t i)
{
    /* mostly aligned heap addresses, some far apart; some odd, some above
     * 2^48 (wide blocks) */
    return (uint64_t)(i + 1) * 16 + ((uint64_t)(i % 7) << 40) + (i % 11 == 0 ? 3 : 0) +
           (i % 17 == 0 ? 1ull << 50 : 0);
}

/* Sizes and stacks shared by a few blocks each, some of them huge. */
static uint64_t model_size_of(size_t i)
{
    return i % 13 == 0 ? (1ull << 40) + i % 100 : i % 1000 + 1;
}

static uint32_t model_stack_of(size_t i)
{
    return i % 13 == 6 ? 0xfffffff0u : (uint32_t)(i % 300);
}

int main(void)
{
    struct heap_table t;
    CHECK(heap_table_init(&t) == 0);
    static uint64_t model_size[MODEL]; /* 0 = not live */
    size_t live = 0;
    unsigned seed = 12345;
    for (int step = 0; step < 400000; step++) {
        seed = seed * 1103515245u + 12345u;
        size_t i = (seed >> 8) % MODEL;
        uint64_t address = model_address(i);
        if (model_size[i] == 0) {
            struct heap_block b = {.address = address,
                                   .size = model_size_of(i),
                                   .stack = model_stack_of(i),
                                   .kind = (uint32_t)(i % 5)},
                              old;
            CHECK(heap_table_insert(&t, &b, &old) == 0);
            model_size[i] = model_size_of(i);
            live++;
        } else {
            struct heap_block out;
            CHECK(heap_table_remove(&t, address, &out) == 1);
            CHECK(out.size == model_size[i] && out.stack == model_stack_of(i) &&
                  out.kind == i % 5 && out.address == address);
            model_size[i] = 0;
            live--;
        }
        if (step % 50000 == 0)
            CHECK(t.count == live);
    }
    CHECK(t.count == live);
    /* the walk sees each live block once, with its fields */
    size_t walked = 0, cursor = 0;
    int fields = 1;
    struct heap_block w;
    while (heap_table_next(&t, &cursor, &w)) {
        walked++;
        size_t i = (size_t)((w.address & ((1ull << 40) - 1)) - w.address % 16) / 16 - 1;
        fields &= i < MODEL && model_size[i] == w.size && w.stack == model_stack_of(i);
    }
    CHECK(walked == live && fields);
    /* kinds set later stick */
    for (size_t i = 0; i < MODEL; i++)
        CHECK(heap_table_set_kind(&t, model_address(i), 3) == (model_size[i] != 0));
    /* every model block is findable; absent ones are not */
    int all = 1;
    for (size_t i = 0; i < MODEL; i++) {
        struct heap_block out;
        int found = heap_table_remove(&t, model_address(i), &out);
        all &= found == (model_size[i] != 0) && (!found || (out.kind == 3 && out.size == model_size[i]));
    }
    CHECK(all);
    CHECK(t.count == 0 && t.nleaves == 0 && t.wide_count == 0); /* the leaves went with them */
    /* replacing a live address reports the old block, spilled or not */
    struct heap_block a = {.address = 4096, .size = 10, .stack = 1},
                      b = {.address = 4096, .size = 1ull << 40, .stack = 2}, old;
    CHECK(heap_table_insert(&t, &a, &old) == 0);
    CHECK(heap_table_insert(&t, &b, &old) == 1 && old.size == 10 && old.stack == 1);
    CHECK(heap_table_insert(&t, &a, &old) == 1 && old.size == 1ull << 40 && old.stack == 2);
    struct heap_block zero = {.address = 0, .size = 1};
    CHECK(heap_table_insert(&t, &zero, &old) == -1);
    struct heap_block *snap;
    CHECK(heap_table_snapshot(&t, &snap) == 1 && snap[0].size == 10);
    free(snap);
    heap_table_free(&t);
    /* millions of blocks in thousands of leaves, also with more distinct
     * (size, stack) pairs live than entries can number (the rest become
     * wide blocks) */
    CHECK(heap_table_init(&t) == 0);
    int kept = 1;
    for (uint64_t i = 1; i <= 3000000; i++) {
        struct heap_block big = {.address = i * 48, .size = i, .stack = (uint32_t)(i & 0xffff)};
        kept &= heap_table_insert(&t, &big, &old) == 0;
    }
    CHECK(t.wide_count == 3000000 - (1u << 20));
    for (uint64_t i = 1; i <= 3000000; i += 7) {
        struct heap_block out;
        kept &= heap_table_remove(&t, i * 48, &out) == 1 && out.size == i;
    }
    CHECK(kept && t.count == 3000000 - 428572);
    /* a kind no info is left for: the block becomes a wide one */
    for (uint64_t i = 2; i <= 3000000 && t.infos_indexed - t.infos_unused < (1u << 20); i += 7) {
        struct heap_block more = {.address = (i + 3000000) * 48, .size = i + 3000000};
        kept &= heap_table_insert(&t, &more, &old) == 0;
    }
    CHECK(heap_table_set_kind(&t, 48 * 2, 2) == 1);
    struct heap_block out;
    CHECK(heap_table_remove(&t, 48 * 2, &out) == 1 && out.kind == 2 && out.size == 2);
    CHECK(kept);
    heap_table_free(&t);
    return check_report();
}
