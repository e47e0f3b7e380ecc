/* Live-block table (see heap_table.h). Used outside the traced process, so
 * it may use malloc.
 *
 * Three parts: the leaves (one per 32 KiB region of addresses that holds
 * live blocks, found by region in a small open-addressing map, each an
 * open-addressing table of 32-bit entries: the block's 16-byte granule in
 * the region + 1 in the high 12 bits, its info number in the low 20), the
 * infos with their own small index by (size, stack, kind), and the wide
 * blocks. A block lives in a leaf or among the wide blocks, never both; an
 * address that fits a leaf is looked for among the wide blocks only when
 * there are some.
 *
 * Why leaves: a program allocates and frees near where it just did, and a
 * table keyed by a hash of the whole address sends each of those to its
 * own random cache line. A leaf keeps a region's blocks in a few lines of
 * their own: while a program works in a region, its leaf stays in cache.
 */
#define _GNU_SOURCE
#include "heap_table.h"

#include <stdlib.h>
#include <string.h>

#define INFO_BITS 20
#define INFO_MASK ((1u << INFO_BITS) - 1)
#define INFO_LIMIT (1u << INFO_BITS) /* infos live at once, at most */
#define INFO_NONE UINT32_MAX
#define INFO_FREE UINT64_MAX /* the refs of a free info */

#define LEAF_FIRST 4    /* entries of a new leaf */

/* The slow paths are functions of their own, never inlined: the fast ones,
 * run at every event, then need few registers saved. */
#define COLD __attribute__((noinline, cold))
#define LEAVES_FIRST 64 /* slots of the leaf map at first */

static int fits_leaf(uint64_t address)
{
    return (address & 15) == 0 && address >> 48 == 0;
}

static uint64_t mix(uint64_t address)
{
    return (address >> 4 | address << 60) * 0x9e3779b97f4a7c15ull;
}

static uint32_t granule_of(uint64_t address)
{
    return (uint32_t)(address >> 4) & (HEAP_REGION_GRANULES - 1);
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
static COLD uint32_t info_new(struct heap_table *t, uint64_t size, uint32_t stack,
                              uint32_t kind);

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
    return info_new(t, size, stack, kind);
}

/* A new info, with one block. */
static COLD uint32_t info_new(struct heap_table *t, uint64_t size, uint32_t stack, uint32_t kind)
{
    /* first sweep the unused ones if they are many, then make room in the
     * index if it is half full */
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

/* ---- leaves --------------------------------------------------------------- */

/* The home of granule g in a leaf of mask + 1 entries: a multiplicative hash,
 * so that blocks packed side by side spread over the leaf. */
static uint32_t leaf_home(uint32_t g, uint32_t mask)
{
    return (g * 0x9e3779b1u >> 20) & mask;
}

static uint32_t entry_granule(uint32_t e)
{
    return (e >> INFO_BITS) - 1;
}

static void unpack(const struct heap_table *t, const struct heap_leaf *leaf, uint32_t e,
                   struct heap_block *out)
{
    const struct heap_info *info = &t->infos[e & INFO_MASK];
    *out = (struct heap_block){leaf->region << HEAP_REGION_SHIFT | (uint64_t)entry_granule(e) << 4,
                               info->size, info->stack, info->kind};
}

/* A leaf of n entries (a power of two) for region, with the entries of old
 * (NULL: none) placed in it. NULL when out of memory. */
static struct heap_leaf *leaf_make(uint64_t region, uint32_t n, const struct heap_leaf *old)
{
    struct heap_leaf *leaf = calloc(1, sizeof *leaf + n * sizeof leaf->entries[0]);
    if (!leaf)
        return NULL;
    leaf->region = region;
    leaf->mask = n - 1;
    for (uint32_t i = 0; old && i <= old->mask; i++) {
        uint32_t e = old->entries[i];
        if (!e)
            continue;
        uint32_t j = leaf_home(entry_granule(e), leaf->mask);
        while (leaf->entries[j])
            j = (j + 1) & leaf->mask;
        leaf->entries[j] = e;
        leaf->count++;
    }
    return leaf;
}

/* The entry of granule g in leaf, or NULL. */
static uint32_t *leaf_find(struct heap_leaf *leaf, uint32_t g)
{
    uint32_t want = g + 1;
    for (uint32_t i = leaf_home(g, leaf->mask); leaf->entries[i]; i = (i + 1) & leaf->mask)
        if (leaf->entries[i] >> INFO_BITS == want)
            return &leaf->entries[i];
    return NULL;
}

/* ---- the map of leaves -------------------------------------------------------- */

static size_t region_home(const struct heap_table *t, uint64_t region)
{
    return (size_t)((region * 0x9e3779b97f4a7c15ull) >> 32) & t->leaves_mask;
}

/* Where the leaf of region is or would go in the map. */
static size_t leaves_slot(struct heap_table *t, uint64_t region)
{
    if (t->leaves[t->last] && t->leaves[t->last]->region == region)
        return t->last;
    size_t i = region_home(t, region);
    while (t->leaves[i] && t->leaves[i]->region != region)
        i = (i + 1) & t->leaves_mask;
    if (t->leaves[i])
        t->last = i;
    return i;
}

/* Doubles the map. 0 or -1. */
static int leaves_grow(struct heap_table *t)
{
    size_t n = 2 * (t->leaves_mask + 1);
    struct heap_leaf **old = t->leaves, **q = calloc(n, sizeof *q);
    if (!q)
        return -1;
    size_t old_n = t->leaves_mask + 1;
    t->leaves = q;
    t->leaves_mask = n - 1;
    for (size_t i = 0; i < old_n; i++) {
        if (!old[i])
            continue;
        size_t j = region_home(t, old[i]->region);
        while (q[j])
            j = (j + 1) & t->leaves_mask;
        q[j] = old[i];
    }
    free(old);
    t->last = 0;
    return 0;
}

/* Frees the empty leaf in map slot i and closes the gap (backward shift). */
static void leaves_erase(struct heap_table *t, size_t i)
{
    free(t->leaves[i]);
    size_t hole = i, mask = t->leaves_mask;
    for (size_t j = (hole + 1) & mask; t->leaves[j]; j = (j + 1) & mask) {
        size_t home = region_home(t, t->leaves[j]->region);
        if (hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)) {
            t->leaves[hole] = t->leaves[j];
            hole = j;
        }
    }
    t->leaves[hole] = NULL;
    t->nleaves--;
}

/* The entry of address (which fits a leaf), or NULL; *slot: its leaf's
 * place in the map. */
static uint32_t *entry_find(struct heap_table *t, uint64_t address, size_t *slot)
{
    *slot = leaves_slot(t, address >> HEAP_REGION_SHIFT);
    struct heap_leaf *leaf = t->leaves[*slot];
    return leaf ? leaf_find(leaf, granule_of(address)) : NULL;
}

/* The leaf in map slot i, mostly empty, is cut to an eighth (at most a
 * quarter full then); empty, it goes. */
static COLD void leaf_shrink(struct heap_table *t, size_t i)
{
    struct heap_leaf *leaf = t->leaves[i];
    if (!leaf->count) {
        leaves_erase(t, i);
    } else if (leaf->mask + 1 >= 8 * LEAF_FIRST) {
        struct heap_leaf *smaller = leaf_make(leaf->region, (leaf->mask + 1) / 8, leaf);
        if (smaller) { /* else it just stays large */
            free(leaf);
            t->leaves[i] = smaller;
        }
    }
}

/* Empties entry e of the leaf in map slot i into *out, pulling later
 * members of its probe run into the hole; the leaf shrinks when it is
 * mostly empty, and goes when it is empty. */
static void entry_erase(struct heap_table *t, size_t i, uint32_t *e, struct heap_block *out)
{
    struct heap_leaf *leaf = t->leaves[i];
    unpack(t, leaf, *e, out);
    info_drop(t, *e & INFO_MASK);
    uint32_t hole = (uint32_t)(e - leaf->entries), mask = leaf->mask;
    for (uint32_t j = (hole + 1) & mask; leaf->entries[j]; j = (j + 1) & mask) {
        uint32_t home = leaf_home(entry_granule(leaf->entries[j]), mask);
        if (hole <= j ? (home <= hole || home > j) : (home <= hole && home > j)) {
            leaf->entries[hole] = leaf->entries[j];
            hole = j;
        }
    }
    leaf->entries[hole] = 0;
    leaf->count--;
    t->count--;
    if (leaf->count * 32 < leaf->mask + 1)
        leaf_shrink(t, i);
}

/* ---- the API ------------------------------------------------------------- */

int heap_table_init(struct heap_table *t)
{
    memset(t, 0, sizeof *t);
    t->leaves = calloc(LEAVES_FIRST, sizeof *t->leaves);
    t->leaves_mask = LEAVES_FIRST - 1;
    return t->leaves ? 0 : -1;
}

void heap_table_free(struct heap_table *t)
{
    for (size_t i = 0; t->leaves && i <= t->leaves_mask; i++)
        free(t->leaves[i]);
    free(t->leaves);
    free(t->infos);
    free(t->info_index);
    free(t->wide);
    memset(t, 0, sizeof *t);
}

/* The leaf of region made (in map slot i, where it would go) or doubled:
 * the new leaf, or NULL when out of memory. */
static COLD struct heap_leaf *leaf_grow(struct heap_table *t, uint64_t region, size_t i)
{
    struct heap_leaf *leaf = t->leaves[i];
    if (!leaf && 2 * (t->nleaves + 1) > t->leaves_mask + 1) {
        if (leaves_grow(t) != 0)
            return NULL;
        i = leaves_slot(t, region);
    }
    struct heap_leaf *bigger = leaf_make(region, leaf ? 2 * (leaf->mask + 1) : LEAF_FIRST, leaf);
    if (!bigger)
        return NULL;
    free(leaf);
    t->nleaves += !leaf;
    t->leaves[i] = bigger;
    t->last = i;
    return bigger;
}

/* Puts the block with info number info in a leaf: 1 if it took the place
 * of a live block (into *replaced), 0 if not, -1 when out of memory. */
static int leaf_put(struct heap_table *t, const struct heap_block *b, uint32_t info,
                    struct heap_block *replaced)
{
    uint64_t region = b->address >> HEAP_REGION_SHIFT;
    uint32_t g = granule_of(b->address), word = (g + 1) << INFO_BITS | info;
    size_t i = leaves_slot(t, region);
    struct heap_leaf *leaf = t->leaves[i];
    uint32_t j = 0;
    if (leaf) { /* one probe: the granule's entry, or the empty one it would take */
        for (j = leaf_home(g, leaf->mask); leaf->entries[j]; j = (j + 1) & leaf->mask) {
            if (leaf->entries[j] >> INFO_BITS == g + 1) {
                unpack(t, leaf, leaf->entries[j], replaced);
                info_drop(t, leaf->entries[j] & INFO_MASK);
                leaf->entries[j] = word;
                return 1;
            }
        }
    }
    if (!leaf || (leaf->count + 1) * 4 > (leaf->mask + 1) * 3) {
        if (!(leaf = leaf_grow(t, region, i)))
            return -1;
        for (j = leaf_home(g, leaf->mask); leaf->entries[j]; j = (j + 1) & leaf->mask)
            ;
    }
    leaf->entries[j] = word;
    leaf->count++;
    t->count++;
    return 0;
}

/* Inserts b among the wide blocks (fits: its address would fit a leaf, where
 * a block at it would be replaced). As heap_table_insert. */
static COLD int insert_wide(struct heap_table *t, const struct heap_block *b, int fits,
                            struct heap_block *replaced)
{
    struct heap_block *w = wide_find(t, b->address);
    if (w) {
        *replaced = *w;
        *w = *b;
        return 1;
    }
    if (wide_put(t, b) != 0)
        return -1;
    size_t slot;
    uint32_t *e = fits ? entry_find(t, b->address, &slot) : NULL;
    if (!e)
        return 0;
    entry_erase(t, slot, e, replaced);
    return 1;
}

int heap_table_insert(struct heap_table *t, const struct heap_block *b, struct heap_block *replaced)
{
    if (!b->address) /* 0 is never a block (only corrupt input has it) */
        return -1;
    int fits = fits_leaf(b->address);
    uint32_t info = fits ? info_take(t, b->size, b->stack, b->kind) : INFO_NONE;
    if (info != INFO_NONE) {
        int r = leaf_put(t, b, info, replaced);
        if (r != 0) {
            if (r < 0)
                info_drop(t, info);
            return r;
        }
        struct heap_block *w = t->wide_count ? wide_find(t, b->address) : NULL;
        if (!w)
            return 0;
        *replaced = *w;
        wide_erase(t, w);
        return 1;
    }
    return insert_wide(t, b, fits, replaced);
}

int heap_table_remove(struct heap_table *t, uint64_t address, struct heap_block *out)
{
    size_t slot;
    uint32_t *e = address && fits_leaf(address) ? entry_find(t, address, &slot) : NULL;
    if (e) {
        entry_erase(t, slot, e, out);
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
    size_t slot;
    uint32_t *e = address && fits_leaf(address) ? entry_find(t, address, &slot) : NULL;
    if (e) {
        uint32_t old = *e & INFO_MASK;
        const struct heap_info *info = &t->infos[old];
        if (info->kind == kind)
            return 1;
        uint32_t fresh = info_take(t, info->size, info->stack, kind);
        if (fresh == INFO_NONE) { /* no info to spare: it becomes a wide block */
            struct heap_block b, gone;
            unpack(t, t->leaves[slot], *e, &b);
            b.kind = kind;
            if (wide_put(t, &b) != 0)
                return -1;
            entry_erase(t, slot, e, &gone); /* wide_put leaves the leaves alone */
            return 1;
        }
        *e = (*e & ~INFO_MASK) | fresh;
        info_drop(t, old);
        return 1;
    }
    struct heap_block *w = wide_find(t, address);
    if (!w)
        return 0;
    w->kind = kind;
    return 1;
}

/* The cursor is (leaf map slot << CURSOR_BITS | entry) while in the
 * leaves (a leaf has at most 2 x HEAP_REGION_GRANULES entries), then past
 * them the wide blocks' index. */
#define CURSOR_BITS (HEAP_REGION_SHIFT - 4 + 2)

int heap_table_next(const struct heap_table *t, size_t *cursor, struct heap_block *out)
{
    size_t leaves_end = t->leaves ? (t->leaves_mask + 1) << CURSOR_BITS : 0;
    size_t c = *cursor;
    for (; c < leaves_end; c = ((c >> CURSOR_BITS) + 1) << CURSOR_BITS) {
        const struct heap_leaf *leaf = t->leaves[c >> CURSOR_BITS];
        uint32_t first = (uint32_t)(c & ((1u << CURSOR_BITS) - 1));
        for (uint32_t i = first; leaf && i <= leaf->mask; i++) {
            if (leaf->entries[i]) {
                unpack(t, leaf, leaf->entries[i], out);
                *cursor = (c >> CURSOR_BITS) << CURSOR_BITS | (i + 1);
                return 1;
            }
        }
    }
    size_t wide_n = t->wide ? t->wide_mask + 1 : 0;
    for (size_t i = c - leaves_end; i < wide_n; i++) {
        if (t->wide[i].address) {
            *out = t->wide[i];
            *cursor = leaves_end + i + 1;
            return 1;
        }
    }
    *cursor = leaves_end + wide_n;
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
