/* The consumer's store of distinct stacks (stack_store.h). */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "memtrace/format.h"
#include "memtrace/ring.h"
#include "memtrace/varint.h"
#include "util.h"
#include "dump_writer.h"
#include "stack_store.h"

/* In a chunk, every this many stacks one is kept whole (the first one
 * always), so that decoding one reads at most this many entries. */
#define STACK_STORE_RUN 16
/* The most bytes a stack's entry takes. */
#define ENTRY_MAX ((2 + MT_MAX_STACK_ENTRIES) * MT_VARINT_MAX)
_Static_assert(ENTRY_MAX <= STACK_CHUNK_SIZE, "a chunk holds the largest entry");

struct stack_store *stack_store_new(void)
{
    struct stack_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->last = malloc(MT_MAX_STACK_ENTRIES * sizeof *s->last);
    s->open = malloc(STACK_CHUNK_SIZE);
    if (!s->last || !s->open) {
        free(s->last);
        free(s->open);
        free(s);
        return NULL;
    }
    s->refs = 1;
    return s;
}

void stack_store_retain(struct stack_store *s) { s->refs++; }

void stack_store_release(struct stack_store *s)
{
    if (!s || --s->refs > 0)
        return;
    for (uint32_t c = 0; c < s->nchunks; c++)
        free(s->chunks[c].packed);
    free(s->chunks);
    free(s->open);
    free(s->unpacked);
    ZSTD_freeDCtx(s->dctx);
    free(s->where);
    free(s->depth);
    free(s->hash);
    free(s->index);
    free(s->last);
    free(s->local);
    free(s);
}

static uint64_t hash_stack(const uint64_t *ips, uint32_t depth)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ depth;
    for (uint32_t k = 0; k < depth; k++)
        h = hash_mix(h, ips[k]);
    return h;
}

/* The raw bytes of chunk c: the open one, or a sealed one decompressed
 * into s->unpacked (which keeps the last one so); NULL on failure. */
static const uint8_t *chunk_bytes(struct stack_store *s, uint32_t c)
{
    if (c == s->nchunks - 1)
        return s->open;
    if (s->unpacked_chunk == c + 1)
        return s->unpacked;
    if (!s->unpacked && !(s->unpacked = malloc(STACK_CHUNK_SIZE)))
        return NULL;
    if (!s->dctx && !(s->dctx = ZSTD_createDCtx()))
        return NULL;
    const struct stack_chunk *k = &s->chunks[c];
    size_t n = ZSTD_decompressDCtx(s->dctx, s->unpacked, STACK_CHUNK_SIZE, k->packed, k->packed_len);
    s->unpacked_chunk = 0;
    if (ZSTD_isError(n) || n != k->raw_len)
        return NULL;
    s->unpacked_chunk = c + 1;
    return s->unpacked;
}

/* Turns the stack numbered before id (ips, *depth frames) into stack id,
 * and *depth into its depth, from the bytes of its chunk: 0, or -1 if the
 * entry does not decode. */
static int decode_entry(const struct stack_store *s, uint32_t id, const uint8_t *chunk,
                        uint64_t *ips, uint32_t *depth)
{
    uint32_t c = (uint32_t)(s->where[id] >> 32);
    const struct stack_chunk *k = &s->chunks[c];
    const uint8_t *p = chunk + (uint32_t)s->where[id];
    const uint8_t *end = chunk + (id < s->count && s->where[id + 1] >> 32 == c
                                      ? (uint32_t)s->where[id + 1] : k->raw_len);
    uint32_t prev = *depth, n = s->depth[id];
    uint64_t inner = 0, outer = 0, v;
    int used;
    if ((id - k->first) % STACK_STORE_RUN != 0) {
        if ((used = mt_varint_get(p, end, &inner)) <= 0)
            return -1;
        p += used;
        if ((used = mt_varint_get(p, end, &outer)) <= 0)
            return -1;
        p += used;
        if (inner > prev || outer > prev - inner || inner + outer > n)
            return -1;
        /* the outer frames first: the new middle may cover where they were */
        memmove(ips + n - outer, ips + prev - outer, outer * sizeof *ips);
    }
    uint64_t last = inner ? ips[inner - 1] : 0;
    for (uint64_t f = inner; f < n - outer; f++, p += used) {
        if ((used = mt_varint_get(p, end, &v)) <= 0)
            return -1;
        ips[f] = last = last + (uint64_t)mt_unzigzag(v);
    }
    *depth = n;
    return 0;
}

uint32_t stack_store_get(struct stack_store *s, uint32_t id, uint64_t *ips)
{
    if (id == 0 || id > s->count)
        return 0;
    uint32_t c = (uint32_t)(s->where[id] >> 32);
    const uint8_t *chunk = chunk_bytes(s, c);
    if (!chunk)
        return 0;
    uint32_t depth = 0, first = s->chunks[c].first;
    for (uint32_t k = id - (id - first) % STACK_STORE_RUN; k <= id; k++)
        if (decode_entry(s, k, chunk, ips, &depth) != 0)
            return 0;
    return depth;
}

static uint64_t hash_at(const void *ctx, uint32_t e)
{
    const struct stack_store *s = ctx;
    return s->hash[e + 1];
}

/* Compresses the open chunk into its place, leaving the open buffer free
 * for the next one: 0, or -1 when out of memory. */
static int seal_chunk(struct stack_store *s)
{
    struct stack_chunk *k = &s->chunks[s->nchunks - 1];
    size_t bound = ZSTD_compressBound(k->raw_len);
    uint8_t *packed = malloc(bound);
    if (!packed)
        return -1;
    size_t n = ZSTD_compress(packed, bound, s->open, k->raw_len, 1);
    uint8_t *fit = ZSTD_isError(n) ? NULL : realloc(packed, n);
    if (!fit) {
        free(packed);
        return -1;
    }
    k->packed = fit;
    k->packed_len = (uint32_t)n;
    return 0;
}

/* Appends stack number s->count + 1's entry; 0, or -1 when out of memory. */
static int append_entry(struct stack_store *s, const uint64_t *ips, uint32_t depth)
{
    uint32_t id = s->count + 1;
    struct stack_chunk *k = s->nchunks ? &s->chunks[s->nchunks - 1] : NULL;
    if (!k || k->raw_len + ENTRY_MAX > STACK_CHUNK_SIZE) {
        uint32_t cap = s->chunks_cap;
        if (array_grow((void **)&s->chunks, &cap, sizeof *s->chunks, (uint64_t)s->nchunks + 1) != 0)
            return -1;
        s->chunks_cap = cap;
        if (s->nchunks && seal_chunk(s) != 0)
            return -1;
        k = &s->chunks[s->nchunks++];
        *k = (struct stack_chunk){.first = id};
    }
    uint64_t inner = 0, outer = 0;
    uint8_t *p = s->open + k->raw_len;
    if ((id - k->first) % STACK_STORE_RUN != 0) {
        mt_stack_shared_ends(ips, depth, s->last, s->last_depth, &inner, &outer);
        p += mt_varint_put(p, inner);
        p += mt_varint_put(p, outer);
    }
    uint64_t last = inner ? ips[inner - 1] : 0;
    for (uint64_t f = inner; f < depth - outer; f++) {
        p += mt_varint_put(p, mt_zigzag((int64_t)(ips[f] - last)));
        last = ips[f];
    }
    s->where[id] = (uint64_t)(s->nchunks - 1) << 32 | k->raw_len;
    k->raw_len = (uint32_t)(p - s->open);
    return 0;
}

uint32_t stack_store_add(struct stack_store *s, const uint64_t *ips, uint32_t depth,
                         struct dump_writer *w)
{
    if (depth > MT_MAX_STACK_ENTRIES)
        return 0;
    if ((s->count + 1) * 4 > (s->index_mask + 1) * 3 &&
        index_grow(&s->index, &s->index_mask, s->count, 1023, hash_at, s) != 0)
        return 0;
    uint64_t h = hash_stack(ips, depth);
    uint32_t i = (uint32_t)h & s->index_mask;
    uint64_t seen[MT_MAX_STACK_ENTRIES];
    for (; s->index[i]; i = (i + 1) & s->index_mask) {
        uint32_t id = s->index[i];
        if (s->hash[id] == (uint32_t)h && s->depth[id] == depth &&
            stack_store_get(s, id, seen) == depth && memcmp(seen, ips, depth * sizeof *ips) == 0)
            return id;
    }
    uint32_t id = s->count + 1, cap = s->cap_ids;
    if (array_grow((void **)&s->where, &cap, sizeof *s->where, (uint64_t)id + 1) != 0)
        return 0;
    cap = s->cap_ids;
    if (array_grow((void **)&s->depth, &cap, sizeof *s->depth, (uint64_t)id + 1) != 0)
        return 0;
    cap = s->cap_ids;
    if (array_grow((void **)&s->hash, &cap, sizeof *s->hash, (uint64_t)id + 1) != 0)
        return 0;
    s->cap_ids = cap;
    if (append_entry(s, ips, depth) != 0)
        return 0;
    s->depth[id] = depth;
    s->hash[id] = (uint32_t)h;
    s->count = id;
    s->index[i] = id;
    memcpy(s->last, ips, depth * sizeof *ips);
    s->last_depth = depth;
    if (w)
        dump_write_stack(w, id, ips, depth);
    return id;
}

int stack_store_set_local(struct stack_store *s, uint32_t local, uint32_t id)
{
    uint32_t cap = s->local_cap;
    if (local >= (1u << 30) ||
        array_grow((void **)&s->local, &cap, sizeof *s->local, (uint64_t)local + 1) != 0)
        return -1;
    s->local_cap = cap;
    s->local[local] = id;
    return 0;
}
