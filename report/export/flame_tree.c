/* The flame graph tree (flame_tree.h): sites merged by frame name, from the
 * root down. Built in one pass over the sites with two hash tables (names,
 * and children by (parent, name)), then each node's children are laid out
 * contiguously, sorted by name. Memory grows with the distinct names and
 * the nodes, never with the allocations behind them.
 */
#define _GNU_SOURCE
#include "flame_tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- text ---------------------------------------------------------------- */


/* Length of the valid UTF-8 sequence at s that XML accepts (no surrogates,
 * no U+FFFE/U+FFFF, no overlong forms), or 0. */
static size_t utf8_sequence(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* the terminating NUL stops here too */
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* Writes the cleaned s into out (room for max + 1 bytes); returns its length. */
static size_t clean_into(char *out, const char *s, size_t max, int no_semicolon)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = 0;
    while (*p) {
        size_t n = utf8_sequence(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            if (len + 1 > max)
                break;
            out[len++] = '?';
            p++;
            continue;
        }
        if (len + n > max)
            break;
        for (size_t i = 0; i < n; i++)
            out[len++] = (char)p[i];
        if (no_semicolon && out[len - 1] == ';')
            out[len - 1] = ':';
        p += n;
    }
    out[len] = '\0';
    return len;
}

char *flame_clean_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        n = max;
    char *out = malloc(n + 1);
    if (out)
        clean_into(out, s, n, 0);
    return out;
}

/* ---- modules ------------------------------------------------------------- */

static enum flame_module module_kind(const char *module, const char *program)
{
    static const char *runtime[] = {"libc.so", "libc-",     "ld-linux",   "ld64.so",  "ld.so",
                                    "libm.so", "libm-",     "libpthread", "libdl.",   "libdl-",
                                    "librt.",  "libresolv", "libstdc++",  "libgcc_s", "libc++"};
    if (!module)
        return FLAME_MODULE_UNKNOWN;
    const char *base = path_base_name(module);
    if (strncmp(base, "python", 6) == 0 || strncmp(base, "libpython", 9) == 0)
        return FLAME_MODULE_PYTHON;
    if (program && (strcmp(module, program) == 0 || strcmp(base, path_base_name(program)) == 0))
        return FLAME_MODULE_PROGRAM;
    for (size_t i = 0; i < sizeof runtime / sizeof runtime[0]; i++)
        if (strncmp(base, runtime[i], strlen(runtime[i])) == 0)
            return FLAME_MODULE_RUNTIME;
    return FLAME_MODULE_LIBRARY;
}

/* ---- names --------------------------------------------------------------- */

static uint64_t text_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return hash_mix(h, n);
}

static int rehash_names(struct flame_tree *t)
{
    uint32_t mask = t->name_index_mask ? t->name_index_mask * 2 + 1 : 1023;
    uint32_t *index = calloc((size_t)mask + 1, sizeof *index);
    if (!index)
        return -1;
    for (uint32_t id = 1; id < t->nnames; id++) {
        uint32_t i = (uint32_t)text_hash(t->names[id].text, t->names[id].len) & mask;
        while (index[i])
            i = (i + 1) & mask;
        index[i] = id + 1;
    }
    free(t->name_index);
    t->name_index = index;
    t->name_index_mask = mask;
    return 0;
}

/* The id of the cleaned name text (len bytes), added when new; UINT32_MAX
 * when out of memory. Name 0, the root's, is never found here. */
static uint32_t intern(struct flame_tree *t, const char *text, size_t len,
                       const struct sym_frame *f)
{
    if ((uint64_t)(t->nnames + 1) * 2 > (uint64_t)t->name_index_mask + 1 && rehash_names(t) != 0)
        return UINT32_MAX;
    uint32_t i = (uint32_t)text_hash(text, len) & t->name_index_mask;
    for (; t->name_index[i]; i = (i + 1) & t->name_index_mask) {
        struct flame_name *n = &t->names[t->name_index[i] - 1];
        if (n->len == len && memcmp(n->text, text, len) == 0) {
            if (!n->file_mixed && (!f || !f->file || strcmp(n->file, f->file) != 0)) {
                n->file_mixed = 1;
                n->file = NULL;
            }
            return t->name_index[i] - 1;
        }
    }
    if (array_grow((void **)&t->names, &t->names_cap, sizeof *t->names, (uint64_t)t->nnames + 1))
        return UINT32_MAX;
    struct flame_name *n = &t->names[t->nnames];
    if (!(n->text = malloc(len + 1)))
        return UINT32_MAX;
    memcpy(n->text, text, len);
    n->text[len] = '\0';
    n->len = (uint32_t)len;
    n->file = f ? f->file : NULL;
    n->file_mixed = !n->file;
    t->name_index[i] = t->nnames + 1;
    return t->nnames++;
}

/* The name id of analysis frame k (memoized). */
static uint32_t frame_name(struct flame_tree *t, const struct analysis *a, uint32_t k)
{
    if (t->frame_name[k])
        return t->frame_name[k] - 1;
    const struct sym_frame *f = &a->frames[k];
    char raw[96], clean[4096];
    const char *text = f->function;
    if (!text) {
        if (f->module)
            snprintf(raw, sizeof raw, "%.64s+0x%llx", path_base_name(f->module),
                     (unsigned long long)f->module_offset);
        else
            snprintf(raw, sizeof raw, "0x%llx", (unsigned long long)f->address);
        text = raw;
    }
    size_t len = clean_into(clean, text, sizeof clean - 1, 1);
    uint32_t id = intern(t, clean, len, f);
    if (id != UINT32_MAX)
        t->frame_name[k] = id + 1;
    return id;
}

/* ---- nodes --------------------------------------------------------------- */

static uint64_t node_key_hash(uint32_t parent, uint32_t name)
{
    return hash_mix(hash_mix(0x2545f4914f6cdd1dull, parent), name);
}

static int rehash_nodes(struct flame_tree *t)
{
    uint32_t mask = t->node_index_mask ? t->node_index_mask * 2 + 1 : 4095;
    uint32_t *index = calloc((size_t)mask + 1, sizeof *index);
    if (!index)
        return -1;
    for (uint32_t id = 1; id < t->nnodes; id++) {
        uint32_t i = (uint32_t)node_key_hash(t->nodes[id].parent, t->nodes[id].name) & mask;
        while (index[i])
            i = (i + 1) & mask;
        index[i] = id + 1;
    }
    free(t->node_index);
    t->node_index = index;
    t->node_index_mask = mask;
    return 0;
}

/* The child of parent named name, added when new; UINT32_MAX when out of
 * memory. */
static uint32_t child(struct flame_tree *t, uint32_t parent, uint32_t name, uint32_t module,
                      const char *module_path)
{
    if ((uint64_t)(t->nnodes + 1) * 2 > (uint64_t)t->node_index_mask + 1 && rehash_nodes(t) != 0)
        return UINT32_MAX;
    uint32_t i = (uint32_t)node_key_hash(parent, name) & t->node_index_mask;
    for (; t->node_index[i]; i = (i + 1) & t->node_index_mask) {
        const struct flame_node *n = &t->nodes[t->node_index[i] - 1];
        if (n->parent == parent && n->name == name)
            return t->node_index[i] - 1;
    }
    if (array_grow((void **)&t->nodes, &t->nodes_cap, sizeof *t->nodes, (uint64_t)t->nnodes + 1))
        return UINT32_MAX;
    struct flame_node *n = &t->nodes[t->nnodes];
    memset(n, 0, sizeof *n);
    n->name = name;
    n->parent = parent;
    n->depth = t->nodes[parent].depth + 1;
    n->module = module;
    n->module_path = module_path;
    if (n->depth > t->max_depth)
        t->max_depth = n->depth;
    t->node_index[i] = t->nnodes + 1;
    return t->nnodes++;
}

/* The metric's bytes and blocks for site s. */
static void site_figures(const struct analysis *a, const struct site *s, enum flame_metric m,
                         uint64_t *bytes, uint64_t *blocks)
{
    int64_t pb, pk;
    switch (m) {
    case FLAME_LEAKED:
        *bytes = s->leaked_bytes, *blocks = s->leaked_blocks;
        return;
    case FLAME_PEAK:
        pb = site_peak_bytes(a, s);
        pk = site_peak_blocks(a, s);
        *bytes = pb > 0 ? (uint64_t)pb : 0;
        *blocks = pk > 0 ? (uint64_t)pk : 0;
        return;
    case FLAME_ALLOCATED:
    case FLAME_ALLOCATIONS:
        *bytes = s->bytes_allocated, *blocks = s->allocations;
        return;
    case FLAME_TEMPORARY:
        *bytes = s->temporary_bytes, *blocks = s->temporary;
        return;
    }
    *bytes = *blocks = 0;
}

/* An inlined frame named as the frame it was inlined into, at the same
 * address, is the same call seen twice by the symbolizer (glibc's aliases do
 * this): it is left out rather than shown as recursion. */
static int repeats_caller(const struct sym_frame *f, const struct sym_frame *caller)
{
    return f->inlined && f->function && caller->function && f->address == caller->address &&
           strcmp(f->function, caller->function) == 0;
}

/* The existing child of parent named name, or UINT32_MAX. */
static uint32_t find_child(const struct flame_tree *t, uint32_t parent, uint32_t name)
{
    uint32_t i = (uint32_t)node_key_hash(parent, name) & t->node_index_mask;
    for (; t->node_index[i]; i = (i + 1) & t->node_index_mask) {
        const struct flame_node *n = &t->nodes[t->node_index[i] - 1];
        if (n->parent == parent && n->name == name)
            return t->node_index[i] - 1;
    }
    return UINT32_MAX;
}

/* Past the tree's node budget (flame_tree.h), the frames of a site that would need a new
 * node go into one "[more frames]" child of the deepest node it reached
 * (one per parent at most, so the tree stays below twice the budget):
 * widths stay exact, the work stays bounded whatever a dump holds. */
static uint32_t more_frames(struct flame_tree *t, uint32_t parent)
{
    static const char more[] = "[more frames]";
    uint32_t name = intern(t, more, sizeof more - 1, NULL);
    if (name == UINT32_MAX)
        return UINT32_MAX;
    t->cut_sites++;
    return child(t, parent, name, FLAME_MODULE_UNKNOWN, NULL);
}

static int add_site(struct flame_tree *t, const struct analysis *a, const struct site *s,
                    uint64_t bytes, uint64_t blocks, const char *program)
{
    const uint32_t *frames = site_frame_list(a, s);
    uint32_t node = 0;
    t->nodes[0].bytes += bytes;
    t->nodes[0].blocks += blocks;
    for (uint32_t k = s->nframes; k-- > 0;) {
        const struct sym_frame *f = &a->frames[frames[k]];
        if (f->is_memtrace || (k + 1 < s->nframes && repeats_caller(f, &a->frames[frames[k + 1]])))
            continue;
        uint32_t name = frame_name(t, a, frames[k]), next;
        if (name == UINT32_MAX)
            return -1;
        if (t->nnodes >= t->max_nodes && (next = find_child(t, node, name)) == UINT32_MAX) {
            if ((node = more_frames(t, node)) == UINT32_MAX)
                return -1;
            t->nodes[node].bytes += bytes;
            t->nodes[node].blocks += blocks;
            break;
        }
        if ((node = child(t, node, name, module_kind(f->module, program), f->module)) == UINT32_MAX)
            return -1;
        t->nodes[node].bytes += bytes;
        t->nodes[node].blocks += blocks;
    }
    if (node == 0) { /* no frame at all */
        static const char none[] = "[no stack]";
        uint32_t name = intern(t, none, sizeof none - 1, NULL);
        if (name == UINT32_MAX ||
            (node = child(t, 0, name, FLAME_MODULE_UNKNOWN, NULL)) == UINT32_MAX)
            return -1;
        t->nodes[node].bytes += bytes;
        t->nodes[node].blocks += blocks;
    }
    t->nodes[node].self_bytes += bytes;
    t->nodes[node].self_blocks += blocks;
    return 0;
}

/* ---- ordering ------------------------------------------------------------ */

static const struct flame_tree *sort_tree;

static int by_name(const void *x, const void *y)
{
    return strcmp(sort_tree->names[*(const uint32_t *)x].text,
                  sort_tree->names[*(const uint32_t *)y].text);
}

struct child_key {
    uint32_t parent, rank, id;
};

static int by_parent_rank(const void *x, const void *y)
{
    const struct child_key *a = x, *b = y;
    if (a->parent != b->parent)
        return a->parent < b->parent ? -1 : 1;
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

/* Lays each node's children out contiguously in t->children, by name. */
static int order_children(struct flame_tree *t)
{
    uint32_t *by_rank = malloc(((size_t)t->nnames + 1) * sizeof *by_rank);
    uint32_t *rank = malloc(((size_t)t->nnames + 1) * sizeof *rank);
    struct child_key *keys = malloc(((size_t)t->nnodes + 1) * sizeof *keys);
    t->children = malloc(((size_t)t->nnodes + 1) * sizeof *t->children);
    if (!by_rank || !rank || !keys || !t->children) {
        free(by_rank), free(rank), free(keys);
        return -1;
    }
    for (uint32_t i = 0; i < t->nnames; i++)
        by_rank[i] = i;
    sort_tree = t;
    qsort(by_rank, t->nnames, sizeof *by_rank, by_name);
    for (uint32_t i = 0; i < t->nnames; i++)
        rank[by_rank[i]] = i;
    uint32_t n = 0;
    for (uint32_t id = 1; id < t->nnodes; id++)
        keys[n++] = (struct child_key){t->nodes[id].parent, rank[t->nodes[id].name], id};
    qsort(keys, n, sizeof *keys, by_parent_rank);
    for (uint32_t i = 0; i < n; i++) {
        struct flame_node *p = &t->nodes[keys[i].parent];
        if (p->nchildren++ == 0)
            p->first_child = i;
        t->children[i] = keys[i].id;
    }
    free(by_rank), free(rank), free(keys);
    return 0;
}

/* ---- the tree ------------------------------------------------------------ */

int flame_tree_build(struct flame_tree *t, const struct analysis *a, enum flame_metric m,
                     const char *program)
{
    memset(t, 0, sizeof *t);
    t->primary_is_bytes = m == FLAME_LEAKED || m == FLAME_PEAK || m == FLAME_ALLOCATED;
    if (array_grow((void **)&t->names, &t->names_cap, sizeof *t->names, 1) ||
        array_grow((void **)&t->nodes, &t->nodes_cap, sizeof *t->nodes, 1) ||
        !(t->names[0].text = strdup("all")) ||
        !(t->frame_name = calloc((size_t)a->nframes + 1, sizeof *t->frame_name)) ||
        rehash_names(t) != 0 || rehash_nodes(t) != 0)
        goto oom;
    t->names[0].len = 3;
    t->names[0].file_mixed = 1;
    t->nnames = 1;
    t->nnodes = 1;
    t->nodes[0].module = FLAME_MODULE_ROOT;
    uint64_t budget = (uint64_t)a->nsites * FLAME_NODES_PER_SITE;
    t->max_nodes = budget < FLAME_MIN_NODES   ? FLAME_MIN_NODES
                   : budget > FLAME_MAX_NODES ? FLAME_MAX_NODES
                                              : (uint32_t)budget;
    for (uint32_t i = 0; i < a->nsites; i++) {
        const struct site *s = &a->sites[i];
        uint64_t bytes, blocks;
        if (s->filtered_out)
            continue;
        site_figures(a, s, m, &bytes, &blocks);
        if ((bytes || blocks) && add_site(t, a, s, bytes, blocks, program) != 0)
            goto oom;
    }
    if (order_children(t) != 0)
        goto oom;
    if (t->cut_sites)
        fprintf(stderr,
                "memtrace: the flame graph is cut at %u frames: the deeper frames of %u stacks "
                "are shown as [more frames]\n",
                t->max_nodes, t->cut_sites);
    free(t->name_index), free(t->node_index), free(t->frame_name);
    t->name_index = t->node_index = t->frame_name = NULL;
    return 0;
oom:
    flame_tree_free(t);
    return -1;
}

void flame_tree_free(struct flame_tree *t)
{
    for (uint32_t i = 0; i < t->nnames; i++)
        free(t->names[i].text);
    if (t->names && t->nnames == 0)
        free(t->names[0].text);
    free(t->names), free(t->nodes), free(t->children);
    free(t->name_index), free(t->node_index), free(t->frame_name);
    memset(t, 0, sizeof *t);
}

uint32_t *flame_tree_preorder(const struct flame_tree *t)
{
    uint32_t *out = malloc(((size_t)t->nnodes + 1) * sizeof *out);
    uint32_t *stack = malloc(((size_t)t->nnodes + 1) * sizeof *stack);
    if (!out || !stack) {
        free(out), free(stack);
        return NULL;
    }
    uint32_t n = 0, top = 0;
    stack[top++] = 0;
    while (top) {
        const struct flame_node *node = &t->nodes[stack[--top]];
        out[n++] = stack[top];
        for (uint32_t c = node->nchildren; c-- > 0;)
            stack[top++] = t->children[node->first_child + c];
    }
    free(stack);
    return out;
}
