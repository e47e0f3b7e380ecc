/* The consumer's stacks of one process: each distinct stack once, by
 * content, numbered as in the process's dump (1, 2, ...), and the map from
 * the process's own stack ids (one per thread that first saw a stack) to
 * those numbers. A store is shared by reference with the fork snapshots
 * taken of its process: stacks are only ever added, so a number keeps its
 * stack. */
#ifndef MEMTRACE_STACK_STORE_H
#define MEMTRACE_STACK_STORE_H

#include <stdint.h>

struct dump_writer;

/* Raw bytes of stacks compressed together. */
#define STACK_CHUNK_SIZE (32 * 1024)

struct stack_chunk {
    uint8_t *packed;      /* zstd frame; NULL while it is the last chunk */
    uint32_t packed_len;
    uint32_t raw_len;
    uint32_t first;       /* number of its first stack */
};

/* Stacks are kept as the dump writes them, zigzag varint address deltas,
 * and, as its STACK_LIKE records do, only by the frames they change in the
 * stack numbered before them (but a chunk's first and every 16th after it,
 * kept whole); then in chunks of STACK_CHUNK_SIZE bytes, each compressed
 * (zstd level 1) once full. Python stacks run to a hundred frames and share
 * most with other recent stacks: on CPython's test suite, 224K stacks of 88
 * frames take 1.9 MB so, against 25 MB uncompressed, 59 MB kept whole and
 * 158 MB as raw addresses. A sealed chunk is decompressed (about 10 us) to
 * read a stack in it: for a fork child's inherited stacks, read in order,
 * and to confirm a stack another thread already sent. */
struct stack_store {
    int refs;
    struct stack_chunk *chunks;
    uint32_t nchunks, chunks_cap;
    uint8_t *open;        /* the last chunk's bytes */
    uint8_t *unpacked;    /* a sealed chunk's bytes, decompressed */
    uint32_t unpacked_chunk; /* its index + 1, 0 for none */
    struct ZSTD_DCtx_s *dctx;
    uint64_t *where;      /* per number (1-based): chunk << 32 | offset */
    uint32_t *depth;
    uint32_t *hash;       /* low half of each stack's hash */
    uint32_t count, cap_ids;
    uint32_t *index;      /* open addressing by hash: numbers, 0 empty */
    uint32_t index_mask;
    uint64_t *last;       /* stack number count, whole */
    uint32_t last_depth;
    uint32_t *local;      /* the process's stack id -> number */
    uint32_t local_cap;
};

/* A new empty store (one reference), or NULL when out of memory. */
struct stack_store *stack_store_new(void);
void stack_store_retain(struct stack_store *s);
/* Drops a reference; the last one frees the store. NULL is ignored. */
void stack_store_release(struct stack_store *s);
/* The number of a stack, adding it (and writing its STACK record to w if w
 * is not NULL) when new; 0 when out of memory or deeper than
 * MT_MAX_STACK_ENTRIES. */
uint32_t stack_store_add(struct stack_store *s, const uint64_t *ips, uint32_t depth,
                         struct dump_writer *w);
/* Decodes stack number id into ips (room for MT_MAX_STACK_ENTRIES); returns
 * its depth, 0 for no such stack (or a chunk that cannot be decompressed). */
uint32_t stack_store_get(struct stack_store *s, uint32_t id, uint64_t *ips);
/* Records that the process's stack id local is number id: 0, or -1 for an
 * id out of range or out of memory. */
int stack_store_set_local(struct stack_store *s, uint32_t local, uint32_t id);
static inline uint32_t stack_store_local(const struct stack_store *s, uint32_t local)
{
    return local < s->local_cap ? s->local[local] : 0;
}

#endif
