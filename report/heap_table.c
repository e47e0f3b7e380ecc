/* Live-block table (see heap_table.h). Used outside the traced process, so
 * it may use malloc.
 *
 * A slot is 16 bytes: the address, and a word with the size (low 36 bits),
 * the stack id (next 25) and the kind (top 3). A block whose size is 64 GiB
 * or more, or whose stack id does not fit, has the stack field all ones and
 * in its size field the index of its spill entry, which holds both: rare,
 * and never slower than a second lookup.
 */
#define _GNU_SOURCE
#include "heap_table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SIZE_BITS 36
#define STACK_BITS 25
#define KIND_SHIFT 61
#define SIZE_MASK ((1ull << SIZE_BITS) - 1)
#define STACK_SPILLED ((1ull << STACK_BITS) - 1) /* the stack field of a spilled block */

#define FIRST_SLOTS 1024

/* Tables of BIG_TABLE bytes and more are mapped, not malloc'd: the kernel
 * zeroes their pages as they are first touched, a grow extends the mapping
 * (mremap) instead of copying it, and the pages go back at once when freed. */
#define BIG_TABLE (4u << 20)

/* ---- the slots' memory --------------------------------------------------- */

/* Asks for huge pages: every lookup lands on a random slot, and with 4 KiB
 * pages a big table misses the TLB on almost each. Advice only. */
static void advise_huge(void *p, size_t bytes)
{
    madvise(p, bytes, MADV_HUGEPAGE);
}

/* A zeroed array of n slots, or NULL. */
static struct heap_slot *slots_alloc(size_t n)
{
    size_t bytes = n * sizeof(struct heap_slot);
    if (bytes < BIG_TABLE)
        return calloc(n, sizeof(struct heap_slot));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    advise_huge(p, bytes);
    return p;
}

static void slots_free(struct heap_slot *slots, size_t n)
{
    size_t bytes = n * sizeof(struct heap_slot);
    if (bytes < BIG_TABLE)
        free(slots);
    else if (slots)
        munmap(slots, bytes);
}

/* The n slots at s made 2n: the first n as they were, the others zero.
 * NULL when out of memory (s is then unchanged). */
static struct heap_slot *slots_double(struct heap_slot *s, size_t n)
{
    size_t bytes = n * sizeof *s;
    if (2 * bytes < BIG_TABLE) {
        struct heap_slot *q = realloc(s, 2 * bytes);
        if (q)
            memset(q + n, 0, bytes);
        return q;
    }
    if (bytes < BIG_TABLE) { /* from malloc'd to mapped */
        struct heap_slot *q = slots_alloc(2 * n);
        if (q) {
            memcpy(q, s, bytes);
            free(s);
        }
        return q;
    }
    void *q = mremap(s, bytes, 2 * bytes, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return NULL;
    advise_huge(q, 2 * bytes);
    return q;
}

/* ---- packing ------------------------------------------------------------- */

static uint64_t spill_size_of(const struct heap_table *t, uint64_t packed)
{
    return t->spill[packed & SIZE_MASK].size;
}

static int is_spilled(uint64_t packed)
{
    return ((packed >> SIZE_BITS) & STACK_SPILLED) == STACK_SPILLED;
}

/* The slot word of b, taking a spill entry if it needs one. 0, or -1 when
 * out of memory. */
static int pack(struct heap_table *t, const struct heap_block *b, uint64_t *packed)
{
    uint64_t kind = (uint64_t)(b->kind & 7) << KIND_SHIFT;
    if (b->size <= SIZE_MASK && b->stack < STACK_SPILLED) {
        *packed = b->size | (uint64_t)b->stack << SIZE_BITS | kind;
        return 0;
    }
    uint32_t i;
    if (t->spill_free) {
        i = t->spill_free - 1;
        t->spill_free = t->spill[i].next_free;
    } else {
        if (t->spill_used == t->spill_cap) {
            uint32_t cap = t->spill_cap ? 2 * t->spill_cap : 16;
            struct heap_spill *q = cap > t->spill_cap ? realloc(t->spill, cap * sizeof *q) : NULL;
            if (!q)
                return -1;
            t->spill = q;
            t->spill_cap = cap;
        }
        i = t->spill_used++;
    }
    t->spill[i] = (struct heap_spill){b->size, b->stack, 0};
    *packed = i | STACK_SPILLED << SIZE_BITS | kind;
    return 0;
}

static void unpack(const struct heap_table *t, const struct heap_slot *s, struct heap_block *out)
{
    uint64_t p = s->packed;
    out->address = s->address;
    out->kind = (uint32_t)(p >> KIND_SHIFT);
    if (is_spilled(p)) {
        out->size = spill_size_of(t, p);
        out->stack = t->spill[p & SIZE_MASK].stack;
    } else {
        out->size = p & SIZE_MASK;
        out->stack = (uint32_t)((p >> SIZE_BITS) & STACK_SPILLED);
    }
}

/* Gives back the spill entry of a slot word, if it has one. */
static void release(struct heap_table *t, uint64_t packed)
{
    if (!is_spilled(packed))
        return;
    uint32_t i = (uint32_t)(packed & SIZE_MASK);
    t->spill[i].next_free = t->spill_free;
    t->spill_free = i + 1;
}

/* ---- the table ----------------------------------------------------------- */

int heap_table_init(struct heap_table *t)
{
    memset(t, 0, sizeof *t);
    t->mask = FIRST_SLOTS - 1;
    t->shift = 64 - 10;
    t->slots = slots_alloc(FIRST_SLOTS);
    return t->slots ? 0 : -1;
}

void heap_table_free(struct heap_table *t)
{
    if (t->slots)
        slots_free(t->slots, t->mask + 1);
    free(t->spill);
    memset(t, 0, sizeof *t);
}

/* Places e at the first free slot from its home on (the table has room). */
static void place(struct heap_table *t, const struct heap_slot *e)
{
    size_t i = heap_table_slot_of(e->address, t->shift);
    while (t->slots[i].address)
        i = (i + 1) & t->mask;
    t->slots[i] = *e;
}

/* Doubles the table in place. Doubling sends the blocks whose home was h to
 * 2h or 2h + 1, so going down from the last slot every block moves up, into
 * slots already cleared or settled, as long as it sits more than twice the
 * table's longest displacement from slot 0; the few before that (and any
 * that would wrap past the end) wait aside and are placed last. */
static int grow(struct heap_table *t)
{
    size_t n = t->mask + 1;
    size_t longest = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t->slots[i].address)
            continue;
        size_t d = (i - heap_table_slot_of(t->slots[i].address, t->shift)) & t->mask;
        if (d > longest)
            longest = d;
    }
    size_t low = 2 * longest + 2 < n ? 2 * longest + 2 : n;
    size_t aside_cap = low + 64, naside = 0;
    struct heap_slot *aside = malloc(aside_cap * sizeof *aside);
    struct heap_slot *s = aside ? slots_double(t->slots, n) : NULL;
    if (!s) {
        free(aside);
        return -1;
    }
    for (size_t i = 0; i < low; i++) {
        if (s[i].address)
            aside[naside++] = s[i];
        s[i] = (struct heap_slot){0, 0};
    }
    t->slots = s;
    t->mask = 2 * n - 1;
    t->shift--;
    for (size_t p = n; p-- > low;) {
        if (!s[p].address)
            continue;
        struct heap_slot e = s[p];
        s[p] = (struct heap_slot){0, 0};
        size_t q = heap_table_slot_of(e.address, t->shift);
        while (q < 2 * n && s[q].address)
            q++;
        if (q < 2 * n) {
            s[q] = e;
            continue;
        }
        if (naside == aside_cap) {
            struct heap_slot *more = realloc(aside, 2 * aside_cap * sizeof *more);
            if (!more) { /* cannot happen twice: place it by wrapping now */
                place(t, &e);
                continue;
            }
            aside = more;
            aside_cap *= 2;
        }
        aside[naside++] = e;
    }
    for (size_t i = 0; i < naside; i++)
        place(t, &aside[i]);
    free(aside);
    return 0;
}

int heap_table_insert(struct heap_table *t, const struct heap_block *b, struct heap_block *replaced)
{
    if (!b->address) /* 0 marks an empty slot: never a block (only corrupt input has it) */
        return -1;
    if ((t->count + 1) * 4 > (t->mask + 1) * 3 && grow(t) != 0)
        return -1;
    uint64_t packed;
    if (pack(t, b, &packed) != 0)
        return -1;
    size_t i = heap_table_slot_of(b->address, t->shift);
    while (t->slots[i].address) {
        if (t->slots[i].address == b->address) {
            unpack(t, &t->slots[i], replaced);
            release(t, t->slots[i].packed);
            t->slots[i].packed = packed;
            return 1;
        }
        i = (i + 1) & t->mask;
    }
    t->slots[i] = (struct heap_slot){b->address, packed};
    t->count++;
    return 0;
}

/* The slot holding address, or NULL. */
static struct heap_slot *find(const struct heap_table *t, uint64_t address)
{
    if (!address)
        return NULL;
    size_t i = heap_table_slot_of(address, t->shift);
    for (; t->slots[i].address; i = (i + 1) & t->mask)
        if (t->slots[i].address == address)
            return &t->slots[i];
    return NULL;
}

int heap_table_set_kind(struct heap_table *t, uint64_t address, unsigned kind)
{
    struct heap_slot *s = find(t, address);
    if (!s)
        return 0;
    s->packed = (s->packed & ~(7ull << KIND_SHIFT)) | (uint64_t)(kind & 7) << KIND_SHIFT;
    return 1;
}

int heap_table_remove(struct heap_table *t, uint64_t address, struct heap_block *out)
{
    struct heap_slot *found = find(t, address);
    if (!found)
        return 0;
    unpack(t, found, out);
    release(t, found->packed);
    /* Backward-shift: pull later members of the probe run into the hole. */
    size_t hole = (size_t)(found - t->slots);
    for (size_t j = (hole + 1) & t->mask; t->slots[j].address; j = (j + 1) & t->mask) {
        size_t home = heap_table_slot_of(t->slots[j].address, t->shift);
        int movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = (struct heap_slot){0, 0};
    t->count--;
    return 1;
}

int heap_table_next(const struct heap_table *t, size_t *cursor, struct heap_block *out)
{
    for (size_t i = *cursor; t->slots && i <= t->mask; i++) {
        if (t->slots[i].address) {
            unpack(t, &t->slots[i], out);
            *cursor = i + 1;
            return 1;
        }
    }
    *cursor = t->mask + 1;
    return 0;
}

long heap_table_snapshot(const struct heap_table *t, struct heap_block **out)
{
    struct heap_block *blocks = malloc((t->count ? t->count : 1) * sizeof *blocks);
    if (!blocks)
        return -1;
    long n = 0;
    size_t cursor = 0;
    while (heap_table_next(t, &cursor, &blocks[n]))
        n++;
    *out = blocks;
    return n;
}
