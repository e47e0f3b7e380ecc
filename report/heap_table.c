/* Live-block table (see heap_table.h). Used outside the traced process, so
 * it may use malloc.
 *
 * Three parts: the slots (one 64-bit word per block: address / 16 in the
 * high 44 bits, info number in the low 20), the infos with their own small
 * index by (size, stack, kind), and the wide blocks. A block lives in the
 * slots or among the wide blocks, never both; an address that fits a slot
 * is looked for among the wide blocks only when there are some.
 */
#define _GNU_SOURCE
#include "heap_table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define INFO_BITS 20
#define INFO_MASK ((1ull << INFO_BITS) - 1)
#define INFO_LIMIT (1u << INFO_BITS) /* infos live at once, at most */
#define INFO_NONE UINT32_MAX
#define INFO_FREE UINT64_MAX /* the refs of a free info */

#define FIRST_SLOTS 1024
#define FIRST_SHIFT (64 - 10)

/* Tables of BIG_TABLE bytes and more are mapped, not malloc'd: the kernel
 * zeroes their pages as they are first touched, a grow extends the mapping
 * (mremap) instead of copying it, and the pages go back at once when freed. */
#define BIG_TABLE (4u << 20)

static int fits_slot(uint64_t address)
{
    return (address & 15) == 0 && address >> 48 == 0;
}

static uint64_t slot_address(uint64_t slot)
{
    return (slot >> INFO_BITS) << 4;
}

static uint64_t mix(uint64_t address)
{
    return (address >> 4 | address << 60) * 0x9e3779b97f4a7c15ull;
}

/* ---- the slots' memory --------------------------------------------------- */

/* Asks for huge pages: every lookup lands on a random slot, and with 4 KiB
 * pages a big table misses the TLB on almost each. Advice only. */
static void advise_huge(void *p, size_t bytes)
{
    madvise(p, bytes, MADV_HUGEPAGE);
}

/* A zeroed array of n slots, or NULL. */
static uint64_t *slots_alloc(size_t n)
{
    size_t bytes = n * sizeof(uint64_t);
    if (bytes < BIG_TABLE)
        return calloc(n, sizeof(uint64_t));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    advise_huge(p, bytes);
    return p;
}

static void slots_free(uint64_t *slots, size_t n)
{
    size_t bytes = n * sizeof *slots;
    if (bytes < BIG_TABLE)
        free(slots);
    else if (slots)
        munmap(slots, bytes);
}

/* The n slots at s made 2n: the first n as they were, the others zero.
 * NULL when out of memory (s is then unchanged). */
static uint64_t *slots_double(uint64_t *s, size_t n)
{
    size_t bytes = n * sizeof *s;
    if (2 * bytes < BIG_TABLE) {
        uint64_t *q = realloc(s, 2 * bytes);
        if (q)
            memset(q + n, 0, bytes);
        return q;
    }
    if (bytes < BIG_TABLE) { /* from malloc'd to mapped */
        uint64_t *q = slots_alloc(2 * n);
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

/* ---- infos --------------------------------------------------------------- */

static uint32_t info_home(const struct heap_table *t, uint64_t size, uint32_t stack, uint32_t kind)
{
    uint64_t h = (size * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)stack << 3 | kind);
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 32) & t->info_index_mask;
}

static uint32_t info_home_of(const struct heap_table *t, uint32_t n)
{
    const struct heap_info *e = &t->infos[n];
    return info_home(t, e->size, e->stack, e->kind);
}

/* Rebuilds the info index at n entries with the infos in use only; the
 * unused ones are freed. 0 or -1. */
static int info_index_rebuild(struct heap_table *t, uint32_t n)
{
    uint32_t *q = calloc(n, sizeof *q);
    if (!q)
        return -1;
    free(t->info_index);
    t->info_index = q;
    t->info_index_mask = n - 1;
    for (uint32_t e = 0; e < t->infos_used; e++) {
        if (t->infos[e].refs == INFO_FREE)
            continue;
        if (t->infos[e].refs == 0) { /* indexed but unused: free it now */
            t->infos[e].refs = INFO_FREE;
            t->infos[e].size = t->infos_free;
            t->infos_free = e + 1;
            continue;
        }
        uint32_t i = info_home_of(t, e);
        while (q[i])
            i = (i + 1) & t->info_index_mask;
        q[i] = e + 1;
    }
    t->infos_indexed -= t->infos_unused;
    t->infos_unused = 0;
    return 0;
}

/* One more block of info (size, stack, kind): its number, or INFO_NONE
 * when a slot cannot name another info (or out of memory). */
static uint32_t info_take(struct heap_table *t, uint64_t size, uint32_t stack, uint32_t kind)
{
    if (t->info_index) {
        for (uint32_t i = info_home(t, size, stack, kind); t->info_index[i];
             i = (i + 1) & t->info_index_mask) {
            struct heap_info *e = &t->infos[t->info_index[i] - 1];
            if (e->size == size && e->stack == stack && e->kind == kind) {
                if (e->refs++ == 0)
                    t->infos_unused--;
                return t->info_index[i] - 1;
            }
        }
    }
    /* a new info: first sweep the unused ones if they are many, then make
     * room in the index if it is half full */
    if (t->infos_unused > 1024 && t->infos_unused >= t->infos_indexed / 2 &&
        info_index_rebuild(t, t->info_index_mask + 1) != 0)
        return INFO_NONE;
    if (t->infos_indexed >= INFO_LIMIT && t->infos_unused &&
        info_index_rebuild(t, t->info_index_mask + 1) != 0)
        return INFO_NONE;
    if (t->infos_indexed >= INFO_LIMIT)
        return INFO_NONE;
    if ((!t->info_index || 2 * (t->infos_indexed + 1) > t->info_index_mask + 1) &&
        info_index_rebuild(t, t->info_index ? 2 * (t->info_index_mask + 1) : 256) != 0)
        return INFO_NONE;
    uint32_t n;
    if (t->infos_free) {
        n = t->infos_free - 1;
        t->infos_free = (uint32_t)t->infos[n].size;
    } else {
        if (t->infos_used == t->infos_cap) {
            uint32_t cap = t->infos_cap ? 2 * t->infos_cap : 256;
            struct heap_info *q = realloc(t->infos, cap * sizeof *q);
            if (!q)
                return INFO_NONE;
            t->infos = q;
            t->infos_cap = cap;
        }
        n = t->infos_used++;
    }
    t->infos[n] = (struct heap_info){size, 1, stack, kind};
    t->infos_indexed++;
    uint32_t i = info_home(t, size, stack, kind);
    while (t->info_index[i])
        i = (i + 1) & t->info_index_mask;
    t->info_index[i] = n + 1;
    return n;
}

/* One block fewer of info n. */
static void info_drop(struct heap_table *t, uint32_t n)
{
    if (--t->infos[n].refs == 0)
        t->infos_unused++;
}

/* ---- wide blocks --------------------------------------------------------- */

static size_t wide_home(const struct heap_table *t, uint64_t address)
{
    return (size_t)(mix(address) >> 32) & t->wide_mask;
}

static struct heap_block *wide_find(const struct heap_table *t, uint64_t address)
{
    if (!t->wide_count)
        return NULL;
    for (size_t i = wide_home(t, address); t->wide[i].address; i = (i + 1) & t->wide_mask)
        if (t->wide[i].address == address)
            return &t->wide[i];
    return NULL;
}

/* Adds b (not among the wide blocks). 0, or -1 when out of memory. */
static int wide_put(struct heap_table *t, const struct heap_block *b)
{
    if (!t->wide || 2 * (t->wide_count + 1) > t->wide_mask + 1) {
        size_t old_n = t->wide ? t->wide_mask + 1 : 0, n = old_n ? 2 * old_n : 64;
        struct heap_block *old = t->wide, *q = calloc(n, sizeof *q);
        if (!q)
            return -1;
        t->wide = q;
        t->wide_mask = n - 1;
        for (size_t i = 0; i < old_n; i++) {
            if (!old[i].address)
                continue;
            size_t j = wide_home(t, old[i].address);
            while (q[j].address)
                j = (j + 1) & t->wide_mask;
            q[j] = old[i];
        }
        free(old);
    }
    size_t i = wide_home(t, b->address);
    while (t->wide[i].address)
        i = (i + 1) & t->wide_mask;
    t->wide[i] = *b;
    t->wide_count++;
    t->count++;
    return 0;
}

static void wide_erase(struct heap_table *t, struct heap_block *w)
{
    size_t hole = (size_t)(w - t->wide), mask = t->wide_mask;
    for (size_t j = (hole + 1) & mask; t->wide[j].address; j = (j + 1) & mask) {
        size_t home = wide_home(t, t->wide[j].address);
        if (hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)) {
            t->wide[hole] = t->wide[j];
            hole = j;
        }
    }
    memset(&t->wide[hole], 0, sizeof t->wide[hole]);
    t->wide_count--;
    t->count--;
}

/* ---- the slots ----------------------------------------------------------- */

static void unpack(const struct heap_table *t, uint64_t slot, struct heap_block *out)
{
    const struct heap_info *e = &t->infos[slot & INFO_MASK];
    *out = (struct heap_block){slot_address(slot), e->size, e->stack, e->kind};
}

/* The slot holding address (which fits a slot), or NULL. */
static uint64_t *slot_find(const struct heap_table *t, uint64_t address)
{
    uint64_t key = address >> 4;
    for (size_t i = heap_table_slot_of(address, t->shift); t->slots[i]; i = (i + 1) & t->mask)
        if (t->slots[i] >> INFO_BITS == key)
            return &t->slots[i];
    return NULL;
}

/* Empties slot s into *out, pulling later members of its probe run into
 * the hole (backward-shift deletion). */
static void slot_erase(struct heap_table *t, uint64_t *s, struct heap_block *out)
{
    unpack(t, *s, out);
    info_drop(t, (uint32_t)(*s & INFO_MASK));
    size_t hole = (size_t)(s - t->slots);
    for (size_t j = (hole + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
        size_t home = heap_table_slot_of(slot_address(t->slots[j]), t->shift);
        if (hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = 0;
    t->count--;
}

/* Places slot word e at the first free slot from its home on. */
static void place(struct heap_table *t, uint64_t e)
{
    size_t i = heap_table_slot_of(slot_address(e), t->shift);
    while (t->slots[i])
        i = (i + 1) & t->mask;
    t->slots[i] = e;
}

/* Doubles the slots in place. Doubling sends the blocks whose home was h to
 * 2h or 2h + 1, so going down from the last slot every block moves up, into
 * slots already cleared or settled, as long as it sits more than twice the
 * longest displacement from slot 0; the few before that (and any that would
 * wrap past the end) wait aside and are placed last. */
static int grow(struct heap_table *t)
{
    size_t n = t->mask + 1;
    size_t longest = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t->slots[i])
            continue;
        size_t d = (i - heap_table_slot_of(slot_address(t->slots[i]), t->shift)) & t->mask;
        if (d > longest)
            longest = d;
    }
    size_t low = 2 * longest + 2 < n ? 2 * longest + 2 : n;
    size_t aside_cap = low + 64, naside = 0;
    uint64_t *aside = malloc(aside_cap * sizeof *aside);
    uint64_t *s = aside ? slots_double(t->slots, n) : NULL;
    if (!s) {
        free(aside);
        return -1;
    }
    for (size_t i = 0; i < low; i++) {
        if (s[i])
            aside[naside++] = s[i];
        s[i] = 0;
    }
    t->slots = s;
    t->mask = 2 * n - 1;
    t->shift--;
    for (size_t p = n; p-- > low;) {
        uint64_t e = s[p];
        if (!e)
            continue;
        s[p] = 0;
        size_t q = heap_table_slot_of(slot_address(e), t->shift);
        while (q < 2 * n && s[q])
            q++;
        if (q < 2 * n) {
            s[q] = e;
            continue;
        }
        if (naside == aside_cap) {
            uint64_t *more = realloc(aside, 2 * aside_cap * sizeof *more);
            if (!more) { /* place it by wrapping now: still a valid table */
                place(t, e);
                continue;
            }
            aside = more;
            aside_cap *= 2;
        }
        aside[naside++] = e;
    }
    for (size_t i = 0; i < naside; i++)
        place(t, aside[i]);
    free(aside);
    return 0;
}

/* ---- the API ------------------------------------------------------------- */

int heap_table_init(struct heap_table *t)
{
    memset(t, 0, sizeof *t);
    t->mask = FIRST_SLOTS - 1;
    t->shift = FIRST_SHIFT;
    t->slots = slots_alloc(FIRST_SLOTS);
    return t->slots ? 0 : -1;
}

void heap_table_free(struct heap_table *t)
{
    if (t->slots)
        slots_free(t->slots, t->mask + 1);
    free(t->infos);
    free(t->info_index);
    free(t->wide);
    memset(t, 0, sizeof *t);
}

int heap_table_insert(struct heap_table *t, const struct heap_block *b, struct heap_block *replaced)
{
    if (!b->address) /* 0 marks an empty slot: never a block (only corrupt input has it) */
        return -1;
    int fits = fits_slot(b->address);
    if (fits) {
        if ((t->count - t->wide_count + 1) * 4 > (t->mask + 1) * 3 && grow(t) != 0)
            return -1;
        uint32_t info = info_take(t, b->size, b->stack, b->kind);
        if (info != INFO_NONE) {
            uint64_t key = b->address >> 4, word = key << INFO_BITS | info;
            size_t i = heap_table_slot_of(b->address, t->shift);
            for (; t->slots[i]; i = (i + 1) & t->mask) {
                if (t->slots[i] >> INFO_BITS == key) {
                    unpack(t, t->slots[i], replaced);
                    info_drop(t, (uint32_t)(t->slots[i] & INFO_MASK));
                    t->slots[i] = word;
                    return 1;
                }
            }
            t->slots[i] = word;
            t->count++;
            struct heap_block *w = wide_find(t, b->address);
            if (!w)
                return 0;
            *replaced = *w;
            wide_erase(t, w);
            return 1;
        }
    }
    /* a wide block */
    struct heap_block *w = wide_find(t, b->address);
    if (w) {
        *replaced = *w;
        *w = *b;
        return 1;
    }
    if (wide_put(t, b) != 0)
        return -1;
    uint64_t *s = fits ? slot_find(t, b->address) : NULL;
    if (!s)
        return 0;
    slot_erase(t, s, replaced);
    return 1;
}

int heap_table_remove(struct heap_table *t, uint64_t address, struct heap_block *out)
{
    uint64_t *s = address && fits_slot(address) ? slot_find(t, address) : NULL;
    if (s) {
        slot_erase(t, s, out);
        return 1;
    }
    struct heap_block *w = wide_find(t, address);
    if (!w)
        return 0;
    *out = *w;
    wide_erase(t, w);
    return 1;
}

int heap_table_set_kind(struct heap_table *t, uint64_t address, unsigned kind)
{
    uint64_t *s = address && fits_slot(address) ? slot_find(t, address) : NULL;
    if (s) {
        uint32_t old = (uint32_t)(*s & INFO_MASK);
        const struct heap_info *e = &t->infos[old];
        if (e->kind == kind)
            return 1;
        uint32_t info = info_take(t, e->size, e->stack, kind);
        if (info == INFO_NONE) { /* no info to spare: it becomes a wide block */
            struct heap_block b, gone;
            unpack(t, *s, &b);
            b.kind = kind;
            if (wide_put(t, &b) != 0)
                return -1;
            slot_erase(t, s, &gone); /* wide_put leaves the slots alone */
            return 1;
        }
        *s = (*s & ~INFO_MASK) | info;
        info_drop(t, old);
        return 1;
    }
    struct heap_block *w = wide_find(t, address);
    if (!w)
        return 0;
    w->kind = kind;
    return 1;
}

int heap_table_next(const struct heap_table *t, size_t *cursor, struct heap_block *out)
{
    size_t n = t->slots ? t->mask + 1 : 0, wide_n = t->wide ? t->wide_mask + 1 : 0;
    for (size_t i = *cursor; i < n + wide_n; i++) {
        if (i < n ? t->slots[i] != 0 : t->wide[i - n].address != 0) {
            if (i < n)
                unpack(t, t->slots[i], out);
            else
                *out = t->wide[i - n];
            *cursor = i + 1;
            return 1;
        }
    }
    *cursor = n + wide_n;
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
