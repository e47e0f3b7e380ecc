/* The tree behind every flame graph export: the analysis's sites merged by
 * frame name, root ("all") first, then the outermost frames, down to the
 * innermost. Each node holds the metric's bytes and blocks of its whole
 * subtree and of itself alone (stacks that end there). Siblings are sorted
 * by name, as flamegraph.pl sorts them, so every export is deterministic.
 *
 * Names are cleaned once, when first seen: valid UTF-8, no control
 * characters, and ';' (the folded format's separator) turned into ':'.
 */
#ifndef MEMTRACE_FLAME_TREE_H
#define MEMTRACE_FLAME_TREE_H

#include <stdint.h>

#include "analyze/analysis.h"
#include "export_flame.h"

/* Where a frame's code lives, for the SVG's colours. */
enum flame_module {
    FLAME_MODULE_PROGRAM, /* the traced executable */
    FLAME_MODULE_LIBRARY, /* any other shared object */
    FLAME_MODULE_RUNTIME, /* libc, the dynamic loader, libstdc++, libgcc_s, libm... */
    FLAME_MODULE_PYTHON,  /* the python executable or libpython */
    FLAME_MODULE_UNKNOWN, /* no module holds the address */
    FLAME_MODULE_ROOT,    /* the "all" node */
    FLAME_MODULE_KINDS
};

/* Nodes a tree grows to before the deeper frames of further sites are
 * merged into "[more frames]" (flame_tree.c add_site): a flame graph's work
 * and memory stay in proportion to what the dump holds (about 150 bytes a
 * node), whatever its stacks claim: FLAME_NODES_PER_SITE nodes for each
 * site, at least FLAME_MIN_NODES (40 MB) and at most FLAME_MAX_NODES. A site
 * is at least one ALLOC record of the dump; a real program's sites share
 * most of their frames. */
#define FLAME_MIN_NODES (1u << 18)
#define FLAME_NODES_PER_SITE 16u
#define FLAME_MAX_NODES (1u << 22)

struct flame_node {
    uint32_t name;        /* index into flame_tree.names */
    uint32_t parent;      /* the root (node 0) is its own parent */
    uint32_t first_child; /* index into flame_tree.children */
    uint32_t nchildren;
    uint32_t depth;          /* root 0 */
    uint32_t module;         /* enum flame_module of the first frame merged here */
    const char *module_path; /* that frame's module, or NULL (not owned) */
    uint64_t bytes, blocks;  /* the whole subtree */
    uint64_t self_bytes, self_blocks;
};

struct flame_name {
    char *text; /* cleaned, owned */
    uint32_t len;
    const char *file; /* source file when every frame of that name agrees, else NULL */
    int file_mixed;
};

struct flame_tree {
    struct flame_node *nodes; /* nodes[0] is the root */
    uint32_t nnodes, nodes_cap;
    uint32_t *children;       /* node ids grouped by parent, each group sorted by name */
    struct flame_name *names; /* names[0] is "all", the root's */
    uint32_t nnames, names_cap;
    uint32_t max_depth;
    int primary_is_bytes; /* the metric's widths are bytes (else blocks) */
    uint32_t cut_sites;   /* sites whose deeper frames became "[more frames]" */
    uint32_t max_nodes;   /* the node budget of this tree (flame_tree_build) */
    /* building only */
    uint32_t *name_index, name_index_mask; /* hash of names: id + 1 */
    uint32_t *node_index, node_index_mask; /* hash of (parent, name): id + 1 */
    uint32_t *frame_name;                  /* analysis frame -> name id + 1 */
};

/* Builds the tree of a's sites for metric m. program is the traced
 * executable's path (frames in it are FLAME_MODULE_PROGRAM), or NULL.
 * 0, or -1 when out of memory (t is then freed). */
int flame_tree_build(struct flame_tree *t, const struct analysis *a, enum flame_metric m,
                     const char *program);
void flame_tree_free(struct flame_tree *t);

/* The node ids in depth-first order (a parent before its children, siblings
 * by name), nnodes of them; NULL when out of memory. The caller frees it. */
uint32_t *flame_tree_preorder(const struct flame_tree *t);

static inline uint64_t flame_value(const struct flame_tree *t, const struct flame_node *n)
{
    return t->primary_is_bytes ? n->bytes : n->blocks;
}

static inline uint64_t flame_self_value(const struct flame_tree *t, const struct flame_node *n)
{
    return t->primary_is_bytes ? n->self_bytes : n->self_blocks;
}

/* A malloc'd copy of s made valid UTF-8 without control characters (each
 * bad byte becomes '?'), at most max bytes long; NULL when out of memory. */
char *flame_clean_text(const char *s, size_t max);

#endif
