/* The live-block table against a naive model, through growth and many
 * removals (backward-shift deletion must never lose a block). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "heap_table.h"

#define MODEL 20000

int main(void)
{
    struct heap_table t;
    CHECK(heap_table_init(&t) == 0);
    static uint64_t model_size[MODEL]; /* 0 = not live; address = (i + 1) * 16 */
    size_t live = 0;
    unsigned seed = 12345;
    for (int step = 0; step < 400000; step++) {
        seed = seed * 1103515245u + 12345u;
        size_t i = (seed >> 8) % MODEL;
        uint64_t address = (uint64_t)(i + 1) * 16 + ((uint64_t)(i % 7) << 40);
        if (model_size[i] == 0) {
            struct heap_block b = {.address = address, .size = i + 1, .stack = (uint32_t)i}, old;
            CHECK(heap_table_insert(&t, &b, &old) == 0);
            model_size[i] = i + 1;
            live++;
        } else {
            struct heap_block out;
            CHECK(heap_table_remove(&t, address, &out) == 1);
            CHECK(out.size == model_size[i] && out.stack == (uint32_t)i);
            model_size[i] = 0;
            live--;
        }
        if (step % 50000 == 0)
            CHECK(t.count == live);
    }
    CHECK(t.count == live);
    /* every model block is findable; absent ones are not */
    int all = 1;
    for (size_t i = 0; i < MODEL; i++) {
        uint64_t address = (uint64_t)(i + 1) * 16 + ((uint64_t)(i % 7) << 40);
        struct heap_block out;
        int found = heap_table_remove(&t, address, &out);
        all &= found == (model_size[i] != 0);
    }
    CHECK(all);
    CHECK(t.count == 0);
    /* replacing a live address reports the old block */
    struct heap_block a = {.address = 4096, .size = 10, .stack = 1}, b = {.address = 4096, .size = 20, .stack = 2}, old;
    CHECK(heap_table_insert(&t, &a, &old) == 0);
    CHECK(heap_table_insert(&t, &b, &old) == 1 && old.size == 10);
    struct heap_block *snap;
    CHECK(heap_table_snapshot(&t, &snap) == 1 && snap[0].size == 20);
    free(snap);
    heap_table_free(&t);
    return check_report();
}
