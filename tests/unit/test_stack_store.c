/* The consumer's stack store (cli/consumer/stack_store.c) against a plain model:
 * tens of thousands of stacks shaped like a Python program's (shared outer
 * and inner frames, a changing middle), across many compressed chunks, read
 * back in random order; every stack added again (through the compressed
 * chunks) must come back as its own number; the deepest stack and random
 * 64-bit addresses (the largest entries); the local id map; references. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "memtrace/ring.h"
#include "stack_store.h"

#define NSTACKS 40000

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t *model[NSTACKS + 1];
static uint32_t model_depth[NSTACKS + 1];

/* A stack like the one before it (prev), or a new one now and then. */
static uint32_t make_stack(uint64_t *ips, const uint64_t *prev, uint32_t prev_depth)
{
    uint32_t depth;
    if (!prev || rnd() % 10 == 0) {
        depth = 1 + (uint32_t)(rnd() % 120);
        for (uint32_t k = 0; k < depth; k++)
            ips[k] = rnd() % 4 == 0 ? rnd() : 0x400000 + rnd() % 0x200000;
        return depth;
    }
    /* keep some inner and outer frames of prev, change the middle */
    uint32_t inner = (uint32_t)(rnd() % (prev_depth + 1));
    uint32_t outer = (uint32_t)(rnd() % (prev_depth - inner + 1));
    uint32_t middle = (uint32_t)(rnd() % 6);
    depth = inner + middle + outer;
    if (depth == 0 || depth > MT_MAX_STACK_ENTRIES)
        return make_stack(ips, NULL, 0);
    memcpy(ips, prev, inner * sizeof *ips);
    for (uint32_t k = 0; k < middle; k++)
        ips[inner + k] = 0x7f0000000000ull + rnd() % 0x1000000;
    memcpy(ips + inner + middle, prev + prev_depth - outer, outer * sizeof *ips);
    return depth;
}

static int same(const uint64_t *a, uint32_t na, const uint64_t *b, uint32_t nb)
{
    return na == nb && memcmp(a, b, na * sizeof *a) == 0;
}

int main(void)
{
    struct stack_store *s = stack_store_new();
    CHECK(s != NULL);
    if (!s)
        return check_report();
    static uint64_t ips[MT_MAX_STACK_ENTRIES], got[MT_MAX_STACK_ENTRIES];

    /* adding: new stacks get 1, 2, ...; a stack met again its number */
    uint32_t count = 0, wrong_new = 0, wrong_again = 0;
    for (int i = 0; i < NSTACKS * 11 / 10; i++) {
        if (count > 0 && i % 11 == 10) { /* one seen before */
            uint32_t id = 1 + (uint32_t)(rnd() % count);
            wrong_again += stack_store_add(s, model[id], model_depth[id], NULL) != id;
            continue;
        }
        uint32_t depth = make_stack(ips, count ? model[count] : NULL, count ? model_depth[count] : 0);
        uint32_t id = stack_store_add(s, ips, depth, NULL);
        if (id != count + 1) { /* one made again by chance: its number */
            wrong_new += id == 0 || id > count || !same(ips, depth, model[id], model_depth[id]);
            continue;
        }
        model[id] = malloc(depth * sizeof *ips);
        memcpy(model[id], ips, depth * sizeof *ips);
        model_depth[id] = depth;
        count = id;
    }
    CHECK(wrong_new == 0);
    CHECK(wrong_again == 0);
    CHECK(s->count == count);
    CHECK(count > NSTACKS * 9 / 10);
    CHECK(s->nchunks > 8); /* most stacks sit in compressed chunks */

    /* every stack reads back, in random order (chunk after chunk) */
    uint32_t wrong_get = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t id = 1 + (uint32_t)(rnd() % count);
        uint32_t depth = stack_store_get(s, id, got);
        wrong_get += !same(got, depth, model[id], model_depth[id]);
    }
    for (uint32_t id = 1; id <= count; id++) {
        uint32_t depth = stack_store_get(s, id, got);
        wrong_get += !same(got, depth, model[id], model_depth[id]);
    }
    CHECK(wrong_get == 0);
    CHECK(stack_store_get(s, 0, got) == 0);
    CHECK(stack_store_get(s, count + 1, got) == 0);

    /* every stack again, newest first: its own number, nothing added */
    uint32_t wrong_dedup = 0;
    for (uint32_t id = count; id > 0; id--)
        wrong_dedup += stack_store_add(s, model[id], model_depth[id], NULL) != id;
    CHECK(wrong_dedup == 0);
    CHECK(s->count == count);

    /* one frame changed anywhere makes a new stack */
    uint32_t depth = model_depth[count / 2];
    memcpy(ips, model[count / 2], depth * sizeof *ips);
    ips[depth / 2] ^= 0x10;
    uint32_t changed = stack_store_add(s, ips, depth, NULL);
    CHECK(changed == count + 1);
    CHECK(stack_store_get(s, changed, got) == depth && same(got, depth, ips, depth));

    /* the largest entries: the deepest stack, random addresses */
    for (int k = 0; k < MT_MAX_STACK_ENTRIES; k++)
        ips[k] = rnd();
    uint32_t deep = stack_store_add(s, ips, MT_MAX_STACK_ENTRIES, NULL);
    CHECK(deep == count + 2);
    ips[0]++;
    uint32_t deep2 = stack_store_add(s, ips, MT_MAX_STACK_ENTRIES, NULL);
    CHECK(deep2 == count + 3);
    CHECK(stack_store_get(s, deep2, got) == MT_MAX_STACK_ENTRIES &&
          same(got, MT_MAX_STACK_ENTRIES, ips, MT_MAX_STACK_ENTRIES));
    CHECK(stack_store_add(s, ips, MT_MAX_STACK_ENTRIES + 1, NULL) == 0);
    CHECK(stack_store_get(s, count / 3, got) == model_depth[count / 3] &&
          same(got, model_depth[count / 3], model[count / 3], model_depth[count / 3]));

    /* the process's own ids */
    CHECK(stack_store_set_local(s, 5, 42) == 0);
    CHECK(stack_store_set_local(s, 100000, 7) == 0);
    CHECK(stack_store_local(s, 5) == 42);
    CHECK(stack_store_local(s, 100000) == 7);
    CHECK(stack_store_local(s, 6) == 0);
    CHECK(stack_store_local(s, 1u << 29) == 0);
    CHECK(stack_store_set_local(s, 1u << 30, 1) == -1);

    /* a reference (a fork snapshot's) keeps the store after its process's */
    stack_store_retain(s);
    stack_store_release(s);
    CHECK(stack_store_get(s, 1, got) == model_depth[1] &&
          same(got, model_depth[1], model[1], model_depth[1]));
    stack_store_release(s);
    for (uint32_t id = 1; id <= count; id++)
        free(model[id]);
    return check_report();
}
