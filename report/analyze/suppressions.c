/* Leak suppressions (see suppressions.h): the reader of LeakSanitizer and
 * valgrind suppression files, the matcher, and the writers of
 * --gen-suppressions. Reads files a user wrote: every malformed line is
 * refused with its file and line, never guessed at. */
#define _GNU_SOURCE
#include "suppressions.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "leak_kinds.h"
#include "util.h"

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define ALL_KINDS ((1u << MT_KIND_COUNT) - 1)
/* Frames an entry of --gen-suppressions=valgrind has at most, the
 * allocation function included. */
#define GEN_MAX_FRAMES 24

/* ---- allocation functions --------------------------------------------- */

/* The standard names are alloc_function_names (analysis.c); where valgrind
 * shows a C++ one demangled, that too. */
static const char *const alloc_demangled[MT_FN_COUNT_] = {
    [MT_FN_NEW] = "operator new(unsigned long)",
    [MT_FN_NEW_ARRAY] = "operator new[](unsigned long)",
};


/* ---- patterns ------------------------------------------------------------ */

/* Whether pattern matches all of str: '*' any run of characters, '?' one
 * character when question is set, '\' quotes the next one when escape is
 * set; everything else literally. Iterative, with one backtrack point. */
static int wild_match(const char *pattern, const char *str, int question, int escape)
{
    const char *star = NULL, *resume = NULL;
    while (*str) {
        if (*pattern == '*') {
            star = ++pattern;
            resume = str;
            continue;
        }
        const char *p = pattern;
        if (escape && *p == '\\' && p[1])
            p++;
        if (*p && ((question && *pattern == '?') || *p == *str)) {
            pattern = p + 1;
            str++;
            continue;
        }
        if (!star)
            return 0;
        pattern = star;
        str = ++resume;
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

/* LeakSanitizer's PATTERN as a glob: a substring match unless anchored. */
static char *lsan_glob(const char *pattern)
{
    size_t len = strlen(pattern);
    int start = pattern[0] == '^';
    int end = len > (size_t)start && pattern[len - 1] == '$';
    char *g = malloc(len + 3);
    if (!g)
        return NULL;
    size_t n = 0;
    if (!start)
        g[n++] = '*';
    memcpy(g + n, pattern + start, len - start - end);
    n += len - start - end;
    if (!end)
        g[n++] = '*';
    g[n] = '\0';
    return g;
}

/* ---- reading files --------------------------------------------------------- */

struct reader {
    struct suppression_set *set;
    const char *file;
    int line;
    char *error;
    size_t size;
};

__attribute__((format(printf, 3, 4))) static int fail_at(struct reader *rd, int line,
                                                         const char *fmt, ...)
{
    int n = snprintf(rd->error, rd->size, "%s:%d: ", rd->file, line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < rd->size)
        vsnprintf(rd->error + n, rd->size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

static struct suppression *new_suppression(struct reader *rd, enum suppression_format format)
{
    struct suppression_set *set = rd->set;
    if (array_grow((void **)&set->items, &set->cap, sizeof *set->items, set->n + 1ull) != 0)
        return NULL;
    struct suppression *s = &set->items[set->n++];
    memset(s, 0, sizeof *s);
    s->format = format;
    s->file = rd->file;
    s->line = rd->line;
    s->kinds = ALL_KINDS;
    return s;
}

static void free_suppression(struct suppression *s)
{
    free(s->name);
    free(s->glob);
    for (int i = 0; i < s->nframes; i++) {
        free(s->frames[i].pattern);
        free(s->frames[i].demangled);
    }
    free(s->frames);
}

/* valgrind's "match-leak-kinds: K,..." (definite, indirect, possible,
 * reachable, all, none; memtrace's unknown too). */
static int parse_valgrind_kinds(const char *list, unsigned *mask)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    unsigned m = 0;
    for (char *save = NULL, *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        k = trim(k);
        unsigned one;
        if (strcmp(k, "none") == 0)
            continue;
        if (parse_leak_kinds(k, &one) != 0)
            return -1;
        m |= one;
    }
    *mask = m;
    return 0;
}

static int add_frame(struct reader *rd, struct suppression *s, char *line)
{
    struct suppression_frame f = {0};
    if (strcmp(line, "...") == 0) {
        f.type = SFRAME_ANY;
    } else {
        if (strncmp(line, "fun:", 4) == 0)
            f.type = SFRAME_FUN;
        else if (strncmp(line, "obj:", 4) == 0)
            f.type = SFRAME_OBJ;
        else if (strncmp(line, "src:", 4) == 0)
            f.type = SFRAME_SRC;
        else
            return fail_at(rd, rd->line, "expected fun:, obj:, src:, '...' or '}', not '%.60s'",
                           line);
        char *pattern = trim(line + 4);
        if (!*pattern)
            return fail_at(rd, rd->line, "'%.4s' without a name", line);
        if (f.type == SFRAME_SRC) {
            char *colon = strrchr(pattern, ':');
            if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
                f.line = atoi(colon + 1);
                *colon = '\0';
            }
        }
        f.pattern = strdup(pattern);
        if (!f.pattern)
            return fail_at(rd, rd->line, "out of memory");
        if (f.type == SFRAME_FUN && strncmp(pattern, "_Z", 2) == 0 && !strpbrk(pattern, "*?\\")) {
            int status = 0;
            f.demangled = __cxa_demangle(pattern, NULL, NULL, &status);
        }
    }
    struct suppression_frame *frames = realloc(s->frames, (s->nframes + 1) * sizeof *frames);
    if (!frames) {
        free(f.pattern);
        free(f.demangled);
        return fail_at(rd, rd->line, "out of memory");
    }
    s->frames = frames;
    s->frames[s->nframes++] = f;
    return 0;
}

enum state { OUTSIDE, NAME, TOOL, KINDS_OR_FRAME, FRAMES, SKIP };

static int read_lines(struct reader *rd, FILE *in)
{
    enum state state = OUTSIDE;
    struct suppression *s = NULL;
    int entry_line = 0;
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    while (rc == 0 && getline(&buf, &cap, in) >= 0) {
        rd->line++;
        char *line = trim(buf);
        if (!*line || *line == '#')
            continue;
        switch (state) {
        case OUTSIDE:
            if (strcmp(line, "{") == 0) {
                entry_line = rd->line;
                state = NAME;
                break;
            }
            char *colon = strchr(line, ':');
            if (!colon || colon == line ||
                strspn(line, "abcdefghijklmnopqrstuvwxyz_") != (size_t)(colon - line)) {
                rc = fail_at(rd, rd->line,
                             "expected 'leak:PATTERN' or a valgrind entry "
                             "starting with '{', not '%.60s'",
                             line);
                break;
            }
            if (colon - line != 4 || strncmp(line, "leak", 4) != 0) {
                rc = fail_at(rd, rd->line,
                             "'%.*s:' is not a leak suppression (LeakSanitizer "
                             "files hold leak:PATTERN lines)",
                             (int)(colon - line), line);
                break;
            }
            char *pattern = trim(colon + 1);
            if (!*pattern) {
                rc = fail_at(rd, rd->line, "'leak:' without a pattern");
                break;
            }
            if (!(s = new_suppression(rd, SUPPRESSION_LSAN)) || !(s->name = strdup(line)) ||
                !(s->glob = lsan_glob(pattern)))
                rc = fail_at(rd, rd->line, "out of memory");
            break;
        case NAME:
            if (strcmp(line, "}") == 0 || strcmp(line, "{") == 0) {
                rc = fail_at(rd, rd->line, "a valgrind entry needs a name line after '{'");
                break;
            }
            if (!(s = new_suppression(rd, SUPPRESSION_VALGRIND)) || !(s->name = strdup(line))) {
                rc = fail_at(rd, rd->line, "out of memory");
                break;
            }
            state = TOOL;
            break;
        case TOOL: {
            char *sep = strchr(line, ':');
            if (!sep || sep == line || !sep[1] || strcmp(line, "}") == 0) {
                rc = fail_at(rd, rd->line, "expected TOOL:KIND (e.g. Memcheck:Leak), not '%.60s'",
                             line);
                break;
            }
            *sep = '\0';
            int memcheck = 0;
            for (char *save = NULL, *t = strtok_r(line, ",", &save); t;
                 t = strtok_r(NULL, ",", &save))
                memcheck |= strcasecmp(trim(t), "memcheck") == 0;
            if (memcheck && strcmp(trim(sep + 1), "Leak") == 0) {
                state = KINDS_OR_FRAME;
            } else {
                /* another tool's entry, or another memcheck error: kept
                 * out of the set, read to its end */
                free_suppression(s);
                rd->set->n--;
                s = NULL;
                state = SKIP;
            }
            break;
        }
        case KINDS_OR_FRAME:
            if (strncmp(line, "match-leak-kinds:", 17) == 0) {
                if (parse_valgrind_kinds(line + 17, &s->kinds) != 0)
                    rc = fail_at(rd, rd->line,
                                 "match-leak-kinds takes definite, indirect, "
                                 "possible, reachable, all or none, not '%.60s'",
                                 trim(line + 17));
                state = FRAMES;
                break;
            }
            /* no kinds line: a frame already */
            __attribute__((fallthrough));
        case FRAMES:
            if (strcmp(line, "}") == 0) {
                if (s->nframes == 0)
                    rc = fail_at(rd, rd->line,
                                 "the entry '%.60s' has no fun:, obj: or '...' "
                                 "line",
                                 s->name);
                state = OUTSIDE;
                break;
            }
            state = FRAMES;
            rc = add_frame(rd, s, line);
            break;
        case SKIP:
            if (strcmp(line, "}") == 0)
                state = OUTSIDE;
            else if (strcmp(line, "{") == 0)
                rc = fail_at(rd, rd->line, "'{' inside the entry that starts at line %d",
                             entry_line);
            break;
        }
    }
    free(buf);
    if (rc == 0 && ferror(in))
        rc = fail_at(rd, rd->line, "read error: %s", strerror(errno));
    if (rc == 0 && state != OUTSIDE)
        rc = fail_at(rd, entry_line, "the entry starting here has no closing '}'");
    return rc;
}

int suppressions_load(struct suppression_set *set, const char *path, char *error, size_t size)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(error, size, "cannot read the suppression file %s: %s", path, strerror(errno));
        return -1;
    }
    char *name = strdup(path);
    if (!name || array_grow((void **)&set->files, &set->files_cap, sizeof *set->files,
                            set->nfiles + 1ull) != 0) {
        free(name);
        fclose(in);
        snprintf(error, size, "out of memory reading %s", path);
        return -1;
    }
    set->files[set->nfiles++] = name;
    struct reader rd = {set, name, 0, error, size};
    uint32_t before = set->n;
    int rc = read_lines(&rd, in);
    fclose(in);
    if (rc != 0) { /* a file is taken whole or not at all */
        while (set->n > before)
            free_suppression(&set->items[--set->n]);
    }
    return rc;
}

void suppressions_free(struct suppression_set *set)
{
    for (uint32_t i = 0; i < set->n; i++)
        free_suppression(&set->items[i]);
    for (uint32_t i = 0; i < set->nfiles; i++)
        free(set->files[i]);
    free(set->items);
    free(set->files);
    memset(set, 0, sizeof *set);
}

/* ---- matching ----------------------------------------------------------- */

/* A frame as the matcher sees it. The first frame of a stack is the
 * allocation function; any_allocator when it is not known (a block a forked
 * child inherited), matching a fun: pattern that matches any of them. */
struct frame_view {
    const char *function, *alt, *file, *module;
    int line;
    int any_allocator;
};

static const char *or_unknown(const char *s)
{
    return s ? s : "???";
}


static int allocator_matches(const char *pattern, int question)
{
    for (int f = 0; f < MT_FN_COUNT_; f++)
        if ((alloc_function_names[f] && wild_match(pattern, alloc_function_names[f], question, question)) ||
            (alloc_demangled[f] && wild_match(pattern, alloc_demangled[f], question, question)))
            return 1;
    return 0;
}

static int valgrind_frame_matches(const struct suppression_frame *p, const struct frame_view *v)
{
    switch (p->type) {
    case SFRAME_FUN:
        if (v->any_allocator)
            return allocator_matches(p->pattern, 1);
        return wild_match(p->pattern, or_unknown(v->function), 1, 1) ||
               (v->alt && wild_match(p->pattern, v->alt, 1, 1)) ||
               (p->demangled && v->function && strcmp(p->demangled, v->function) == 0);
    case SFRAME_OBJ:
        return wild_match(p->pattern, or_unknown(v->module), 1, 1);
    case SFRAME_SRC:
        return v->file && wild_match(p->pattern, path_base_name(v->file), 1, 1) &&
               (!p->line || p->line == v->line);
    case SFRAME_ANY:
        return 1;
    }
    return 0;
}

/* The frames p[0..np) match a prefix of v[0..nv), "..." standing for any
 * number of frames. */
static int valgrind_frames_match(const struct suppression_frame *p, int np,
                                 const struct frame_view *v, uint32_t nv)
{
    while (np > 0 && p->type != SFRAME_ANY) {
        if (nv == 0 || !valgrind_frame_matches(p, v))
            return 0;
        p++, np--, v++, nv--;
    }
    if (np == 0)
        return 1;
    while (np > 0 && p->type == SFRAME_ANY)
        p++, np--;
    if (np == 0)
        return 1;
    for (uint32_t skip = 0; skip <= nv; skip++)
        if (valgrind_frames_match(p, np, v + skip, nv - skip))
            return 1;
    return 0;
}

static int lsan_frame_matches(const char *glob, const struct frame_view *v)
{
    if (v->any_allocator)
        return allocator_matches(glob, 0);
    return (v->function && wild_match(glob, v->function, 0, 0)) ||
           (v->alt && wild_match(glob, v->alt, 0, 0)) ||
           (v->file && wild_match(glob, v->file, 0, 0));
}

/* LeakSanitizer's choice among its suppressions for a stack: the innermost
 * frame that any of them matches decides; in that frame a match on the
 * module comes before one on the function or the file, then the order in
 * which they were read. The index in set, or -1. */
static int32_t lsan_winner(const struct suppression_set *set, const struct frame_view *v,
                           uint32_t nv)
{
    for (uint32_t k = 0; k < nv; k++)
        for (int pass = 0; pass < 2; pass++)
            for (uint32_t j = 0; j < set->n; j++) {
                const struct suppression *s = &set->items[j];
                if (s->format != SUPPRESSION_LSAN)
                    continue;
                if (pass == 0 ? v[k].module && wild_match(s->glob, v[k].module, 0, 0)
                              : lsan_frame_matches(s->glob, &v[k]))
                    return (int32_t)j;
            }
    return -1;
}

/* The views of a site's stack, its allocation function first, in v
 * (room for s->nframes + 1). */
static uint32_t site_views(const struct analysis *a, const struct site *s, struct frame_view *v)
{
    const char *name = analysis_allocator_name(a, s->alloc_function);
    v[0] = (struct frame_view){0};
    if (name && s->alloc_function != MT_FN_FREE && s->alloc_function != MT_FN_DELETE &&
        s->alloc_function != MT_FN_DELETE_ARRAY) {
        const char *demangled =
            s->alloc_function < MT_FN_COUNT_ ? alloc_demangled[s->alloc_function] : NULL;
        v[0].function = demangled ? demangled : name; /* custom: the hooked function's name */
        v[0].alt = demangled ? name : NULL;
    } else {
        v[0].any_allocator = 1;
    }
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        v[k + 1] = (struct frame_view){f->function, NULL, f->file, f->module, f->line, 0};
    }
    return s->nframes + 1;
}

int suppressions_apply(const struct suppression_set *set, const struct analysis *a,
                       unsigned count_kinds, struct suppression_matches *m)
{
    memset(m, 0, sizeof *m);
    uint32_t max_frames = 0;
    for (uint32_t i = 0; i < a->nsites; i++)
        if (a->sites[i].nframes > max_frames)
            max_frames = a->sites[i].nframes;
    size_t n = set->n ? set->n : 1;
    m->entry = malloc(((size_t)a->nsites * MT_KIND_COUNT + 1) * sizeof *m->entry);
    m->bytes = calloc(n, sizeof *m->bytes);
    m->blocks = calloc(n, sizeof *m->blocks);
    m->sites = calloc(n, sizeof *m->sites);
    struct frame_view *views = malloc((max_frames + 1ull) * sizeof *views);
    if (!m->entry || !m->bytes || !m->blocks || !m->sites || !views) {
        free(views);
        suppression_matches_free(m);
        return -1;
    }
    m->nsites = a->nsites;
    m->set = set;
    for (size_t i = 0; i < (size_t)a->nsites * MT_KIND_COUNT; i++)
        m->entry[i] = -1;
    for (uint32_t i = 0; i < a->nsites && set->n; i++) {
        const struct site *s = &a->sites[i];
        unsigned leaked = 0;
        for (unsigned k = 0; k < MT_KIND_COUNT; k++)
            if (s->kind_blocks[k] || s->kind_bytes[k])
                leaked |= 1u << k;
        if (!leaked)
            continue;
        uint32_t nv = site_views(a, s, views);
        int32_t lsan = lsan_winner(set, views, nv);
        /* valgrind's entries in the order read (valgrind reorders its
         * list as it matches; the file's order is the stable choice) */
        for (uint32_t j = 0; j < set->n && leaked; j++) {
            const struct suppression *sp = &set->items[j];
            if (!(sp->kinds & leaked) ||
                (sp->format == SUPPRESSION_LSAN
                     ? (int32_t)j != lsan
                     : !valgrind_frames_match(sp->frames, sp->nframes, views, nv)))
                continue;
            int counted = 0;
            for (unsigned k = 0; k < MT_KIND_COUNT; k++) {
                if (!(sp->kinds & leaked & (1u << k)))
                    continue;
                leaked &= ~(1u << k);
                m->entry[(size_t)i * MT_KIND_COUNT + k] = (int32_t)j;
                if (s->filtered_out || !(count_kinds & (1u << k)))
                    continue;
                m->bytes[j] += s->kind_bytes[k];
                m->blocks[j] += s->kind_blocks[k];
                m->total_bytes += s->kind_bytes[k];
                m->total_blocks += s->kind_blocks[k];
                counted = 1;
            }
            m->sites[j] += (uint64_t)counted;
        }
    }
    free(views);
    return 0;
}

void suppression_matches_free(struct suppression_matches *m)
{
    free(m->entry);
    free(m->bytes);
    free(m->blocks);
    free(m->sites);
    memset(m, 0, sizeof *m);
}

/* ---- writing ------------------------------------------------------------ */

void suppression_write_valgrind(FILE *out, const struct analysis *a, const struct site *s,
                                unsigned kind, const char *name)
{
    fprintf(out, "{\n   %s\n   Memcheck:Leak\n", name);
    /* valgrind has no "unknown" kind: such an entry matches every kind */
    if (kind < MT_KIND_UNKNOWN)
        fprintf(out, "   match-leak-kinds: %s\n", leak_kind_names[kind]);
    const char *alloc = analysis_allocator_name(a, s->alloc_function);
    fprintf(out, "   fun:%s\n", alloc && s->alloc_function != MT_FN_FREE ? alloc : "*");
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes && k + 1 < GEN_MAX_FRAMES; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        if (f->function)
            fprintf(out, "   fun:%s\n", f->function);
        else
            fprintf(out, "   obj:%s\n", f->module ? f->module : "*");
        /* valgrind's stacks end at main (what is below it shows as
         * "(below main)"), so its entries do too */
        if (f->function && strcmp(f->function, "main") == 0)
            break;
    }
    fputs("}\n", out);
}

int suppression_lsan_pattern(const struct analysis *a, const struct site *s, char *buf, size_t size)
{
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes; k++)
        if (a->frames[frames[k]].function) {
            snprintf(buf, size, "^%s$", a->frames[frames[k]].function);
            return 0;
        }
    for (uint32_t k = 0; k < s->nframes; k++)
        if (a->frames[frames[k]].module) {
            snprintf(buf, size, "^%s$", a->frames[frames[k]].module);
            return 0;
        }
    return -1;
}
