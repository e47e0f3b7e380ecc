/* Leak suppressions: LeakSanitizer's and valgrind memcheck's suppression
 * files, read unchanged, matched against the leak sites of an analysis, and
 * written back out (--gen-suppressions).
 *
 * LeakSanitizer: "leak:PATTERN" lines and '#' comments. A leak is
 * suppressed when any frame of its stack has a function, source file or
 * module that PATTERN matches: '*' is a wildcard, and the pattern matches
 * anywhere in the name unless anchored with '^' (start) or '$' (end).
 *
 * valgrind: "{ NAME  Memcheck:Leak  [match-leak-kinds: K,...]  FRAME... }"
 * entries, one item a line, FRAME being fun:PATTERN (function), obj:PATTERN
 * (module path), src:FILE[:LINE] or "..." (any number of frames), with '*'
 * and '?' wildcards; the frames must match the start of the stack. Entries
 * for other tools or other memcheck errors are read and ignored.
 *
 * In both tools the first frame of a leak is the allocation function
 * (malloc, _Znwm...), where memtrace's stacks start at its caller: the
 * matcher puts that frame back first, under both its mangled and its
 * demangled name. A mangled fun: name without wildcards is also compared
 * with the demangled names memtrace's stacks hold.
 */
#ifndef MEMTRACE_SUPPRESSIONS_H
#define MEMTRACE_SUPPRESSIONS_H

#include <stdint.h>
#include <stdio.h>

#include "analysis.h"

enum suppression_format { SUPPRESSION_LSAN, SUPPRESSION_VALGRIND };

enum suppression_frame_type { SFRAME_FUN, SFRAME_OBJ, SFRAME_SRC, SFRAME_ANY };

struct suppression_frame {
    enum suppression_frame_type type;
    char *pattern;   /* NULL for "..." */
    char *demangled; /* fun: a mangled name without wildcards, demangled; or NULL */
    int line;        /* src:FILE:LINE; 0 = any line */
};

struct suppression {
    enum suppression_format format;
    char *name;       /* valgrind: its name line; LSan: the line, "leak:PATTERN" */
    const char *file; /* the file it was read from (owned by the set) */
    int line;         /* its line in that file (valgrind: the name line, as valgrind says) */
    unsigned kinds;   /* leak kinds it applies to: mask of 1 << mt_leak_kind */
    char *glob;       /* LSan: PATTERN as a glob, anchors resolved */
    struct suppression_frame *frames; /* valgrind */
    int nframes;
};

struct suppression_set {
    struct suppression *items;
    uint32_t n, cap;
    char **files;
    uint32_t nfiles, files_cap;
};

/* Adds the suppressions of the file at path (either format, or both mixed)
 * to set (zeroed before the first call). 0, or -1 with a one-line message
 * naming the file and line in error. */
int suppressions_load(struct suppression_set *set, const char *path, char *error, size_t size);
void suppressions_free(struct suppression_set *set);

/* What a set of suppressions makes of one analysis. */
struct suppression_matches {
    const struct suppression_set *set;
    int32_t *entry; /* [site * MT_KIND_COUNT + kind]: index into set->items, or -1 */
    uint32_t nsites;
    uint64_t *bytes, *blocks, *sites; /* per suppression, over the kinds counted */
    uint64_t total_bytes, total_blocks;
};

/* Matches every leak (site, kind) of a against set; a leak goes to the
 * first suppression that matches it. The counts cover the leaks of the
 * kinds in count_kinds and of sites not filtered out. 0, or -1 when out of
 * memory. */
int suppressions_apply(const struct suppression_set *set, const struct analysis *a,
                       unsigned count_kinds, struct suppression_matches *m);
void suppression_matches_free(struct suppression_matches *m);

/* The suppression that took leak (site, kind), or -1. m may be NULL. */
static inline int32_t suppression_of(const struct suppression_matches *m, uint32_t site,
                                     unsigned kind)
{
    if (!m || !m->entry || site >= m->nsites)
        return -1;
    return m->entry[(size_t)site * MT_KIND_COUNT + kind];
}


/* --gen-suppressions=valgrind: one entry for leak (site, kind), named name. */
void suppression_write_valgrind(FILE *out, const struct analysis *a, const struct site *s,
                                unsigned kind, const char *name);
/* --gen-suppressions=lsan: the PATTERN of a "leak:PATTERN" line for the site
 * (its innermost named function, anchored, else its innermost module).
 * 0, or -1 when the site has nothing to name. */
int suppression_lsan_pattern(const struct analysis *a, const struct site *s, char *buf,
                             size_t size);

#endif
