/* The report's pass over a dump (see analysis.h). Counting follows SPEC
 * section 4 exactly as the consumer does (cli/drain.c): a free of an
 * address that is not live counts for nothing; an allocation at a live
 * address replaces the old block. */
#define _GNU_SOURCE
#include "analysis.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "temporary.h"
#include "util.h"

#define MAX_FRAMES_PER_ADDRESS 32

/* Says so in r->error; returns -1. */
static int oom(struct dump_reader *r)
{
    snprintf(r->error, sizeof r->error, "out of memory while reading the dump");
    return -1;
}

/* ---- frames: each distinct frame once ------------------------------------ */

static uint64_t frame_hash(const struct sym_frame *f)
{
    /* strings are interned by the symbolizer: pointers compare */
    uint64_t h = hash_mix(0x9e3779b97f4a7c15ull, (uintptr_t)f->function);
    h = hash_mix(h, (uintptr_t)f->file);
    h = hash_mix(h, (uint64_t)f->line);
    h = hash_mix(h, (uintptr_t)f->module);
    h = hash_mix(h, (uint64_t)f->inlined);
    h = hash_mix(h, (uint64_t)f->is_python);
    if (!f->function)
        h = hash_mix(h, f->module_offset);
    return h;
}

static int frame_equal(const struct sym_frame *a, const struct sym_frame *b)
{
    return a->function == b->function && a->file == b->file && a->line == b->line &&
           a->module == b->module && a->inlined == b->inlined && a->is_python == b->is_python &&
           (a->function || a->module_offset == b->module_offset);
}

static uint64_t frame_hash_at(const void *a, uint32_t i)
{
    return frame_hash(&((const struct analysis *)a)->frames[i]);
}

static uint64_t site_hash_at(const void *a, uint32_t i)
{
    return ((const struct analysis *)a)->sites[i].hash;
}

/* Returns the index of frame f, adding it when new; UINT32_MAX on failure. */
static uint32_t intern_frame(struct analysis *a, const struct sym_frame *f)
{
    if ((a->nframes + 1) * 4 >= (a->frame_index_mask + 1) * 3 &&
        index_grow(&a->frame_index, &a->frame_index_mask, a->nframes, 1023, frame_hash_at, a) != 0)
        return UINT32_MAX;
    uint32_t i = (uint32_t)frame_hash(f) & a->frame_index_mask;
    for (; a->frame_index[i]; i = (i + 1) & a->frame_index_mask)
        if (frame_equal(&a->frames[a->frame_index[i] - 1], f))
            return a->frame_index[i] - 1;
    if (array_grow((void **)&a->frames, &a->frames_cap, sizeof *a->frames, a->nframes + 1) != 0)
        return UINT32_MAX;
    a->frames[a->nframes] = *f;
    a->frame_index[i] = ++a->nframes;
    return a->nframes - 1;
}

/* ---- sites: each distinct symbolized stack once -------------------------- */

static int frame_matches(const struct sym_frame *f, const char *pattern)
{
    const char *module_base = f->module ? strrchr(f->module, '/') : NULL;
    return (f->function && fnmatch(pattern, f->function, 0) == 0) ||
           (f->file && fnmatch(pattern, f->file, 0) == 0) ||
           (f->module && fnmatch(pattern, f->module, 0) == 0) ||
           (module_base && fnmatch(pattern, module_base + 1, 0) == 0);
}

static int filtered_out(const struct analysis *a, const uint32_t *frames, uint32_t n,
                        const struct analysis_options *o)
{
    for (int p = 0; p < o->nexclude; p++)
        for (uint32_t k = 0; k < n; k++)
            if (frame_matches(&a->frames[frames[k]], o->exclude[p]))
                return 1;
    if (o->ninclude == 0)
        return 0;
    for (int p = 0; p < o->ninclude; p++)
        for (uint32_t k = 0; k < n; k++)
            if (frame_matches(&a->frames[frames[k]], o->include[p]))
                return 0;
    return 1;
}

/* The site of a stack's frames (already appended at the end of
 * site_frames); a new site keeps them, an existing one drops them. */
static uint32_t intern_site(struct analysis *a, uint32_t first, uint32_t n,
                            const struct analysis_options *o)
{
    uint64_t h = 0x51afd7ed558ccdffull ^ n;
    for (uint32_t k = 0; k < n; k++)
        h = hash_mix(h, a->site_frames[first + k]);
    if ((a->nsites + 1) * 4 >= (a->site_index_mask + 1) * 3 &&
        index_grow(&a->site_index, &a->site_index_mask, a->nsites, 1023, site_hash_at, a) != 0)
        return UINT32_MAX;
    uint32_t i = (uint32_t)h & a->site_index_mask;
    for (; a->site_index[i]; i = (i + 1) & a->site_index_mask) {
        const struct site *s = &a->sites[a->site_index[i] - 1];
        if (s->hash == h && s->nframes == n &&
            memcmp(a->site_frames + s->first_frame, a->site_frames + first, n * 4ull) == 0) {
            a->site_frames_len = first; /* drop the copy */
            return a->site_index[i] - 1;
        }
    }
    if (array_grow((void **)&a->sites, &a->sites_cap, sizeof *a->sites, a->nsites + 1) != 0)
        return UINT32_MAX;
    struct site *s = &a->sites[a->nsites];
    memset(s, 0, sizeof *s);
    s->first_frame = first;
    s->nframes = n;
    s->hash = h;
    s->filtered_out = filtered_out(a, a->site_frames + first, n, o);
    a->site_index[i] = ++a->nsites;
    return a->nsites - 1;
}

static int append_frame(struct analysis *a, const struct sym_frame *frame)
{
    uint32_t f = intern_frame(a, frame);
    if (f == UINT32_MAX || array_grow((void **)&a->site_frames, &a->site_frames_cap,
                                      sizeof *a->site_frames, a->site_frames_len + 1) != 0)
        return -1;
    a->site_frames[a->site_frames_len++] = f;
    return 0;
}

/* Appends the Python frames ips[*next..] up to and including the next one
 * that entered the interpreter loop (all that are left if none did). */
static int append_python(struct analysis *a, const uint64_t *ips, uint64_t depth, uint64_t *next,
                         int one_call)
{
    for (; *next < depth; (*next)++) {
        uint64_t ip = ips[*next];
        if (!MT_IS_PYFRAME(ip))
            continue;
        const struct sym_frame *f = python_frames_find(&a->python, ip);
        struct sym_frame unknown = {.function = NULL, .is_python = 1};
        if (append_frame(a, f ? f : &unknown) != 0)
            return -1;
        if (one_call && MT_PYFRAME_IS_ENTRY(ip)) {
            (*next)++;
            break;
        }
    }
    return 0;
}

/* A stack's frames, innermost first: native frames symbolized (inlined
 * ones expanded, our own dropped), each interpreter-loop frame replaced by
 * the Python frames it ran. */
static int on_stack(struct analysis *a, const struct dump_record *rec,
                    const struct analysis_options *o)
{
    uint32_t first = a->site_frames_len;
    struct sym_frame out[MAX_FRAMES_PER_ADDRESS];
    uint64_t next_python = 0;
    while (next_python < rec->depth && !MT_IS_PYFRAME(rec->ips[next_python]))
        next_python++;
    for (uint64_t k = 0; k < rec->depth; k++) {
        if (MT_IS_PYFRAME(rec->ips[k]))
            continue;
        int n = symbolizer_lookup(a->symbolizer, rec->ips[k], out, MAX_FRAMES_PER_ADDRESS);
        for (int j = 0; j < n; j++) {
            if (out[j].is_memtrace)
                continue;
            int rc = next_python < rec->depth && python_frames_is_eval(&out[j])
                         ? append_python(a, rec->ips, rec->depth, &next_python, 1)
                         : append_frame(a, &out[j]);
            if (rc != 0)
                return -1;
        }
    }
    /* native frames cut by --max-depth, or an interpreter not recognized */
    if (append_python(a, rec->ips, rec->depth, &next_python, 0) != 0)
        return -1;
    uint32_t site = intern_site(a, first, a->site_frames_len - first, o);
    if (site == UINT32_MAX || rec->id >= (1u << 30) ||
        array_grow((void **)&a->stack_site, &a->stack_site_cap, sizeof *a->stack_site, rec->id + 1) != 0)
        return -1;
    a->stack_site[rec->id] = site + 1;
    return 0;
}

/* ---- events -------------------------------------------------------------- */

/* Before a site's live figures change: if a new peak has been reached since
 * it last changed, its current figures are its figures at that peak. */
static void site_touch(struct analysis *a, struct site *s)
{
    if (s->peak_version != a->peak_version) {
        s->peak_bytes = s->live_bytes;
        s->peak_blocks = s->live_blocks;
        s->peak_version = a->peak_version;
    }
}

int64_t site_peak_bytes(const struct analysis *a, const struct site *s)
{
    return s->peak_version == a->peak_version ? s->peak_bytes : s->live_bytes;
}

int64_t site_peak_blocks(const struct analysis *a, const struct site *s)
{
    return s->peak_version == a->peak_version ? s->peak_blocks : s->live_blocks;
}

static struct site *site_of_stack(struct analysis *a, uint64_t stack)
{
    if (!a->symbolizer || stack >= a->stack_site_cap || !a->stack_site[stack])
        return NULL;
    return &a->sites[a->stack_site[stack] - 1];
}

static void block_gone(struct analysis *a, const struct heap_block *b)
{
    struct heap_totals *t = &a->summary.totals;
    t->in_use_bytes -= b->size;
    t->in_use_blocks--;
    struct site *s = site_of_stack(a, b->stack);
    if (s) {
        site_touch(a, s);
        s->live_bytes -= (int64_t)b->size;
        s->live_blocks--;
    }
}

static void block_born(struct analysis *a, const struct heap_block *b, uint64_t when)
{
    struct heap_totals *t = &a->summary.totals;
    t->in_use_bytes += b->size;
    t->in_use_blocks++;
    struct site *s = site_of_stack(a, b->stack);
    if (s) {
        site_touch(a, s);
        s->live_bytes += (int64_t)b->size;
        s->live_blocks++;
    }
    if (t->in_use_bytes > t->peak_bytes) {
        t->peak_bytes = t->in_use_bytes;
        t->peak_blocks = t->in_use_blocks;
        t->peak_time_ns = when;
        a->peak_version++; /* every site's current figures are now the peak's */
    }
}

/* ---- custom allocators and marks ------------------------------------------ */

/* As valgrind shows them: mangled for C++ (valgrind's suppressions use
 * mangled names). */
const char *const alloc_function_names[MT_FN_COUNT_] = {
    [MT_FN_MALLOC] = "malloc",
    [MT_FN_CALLOC] = "calloc",
    [MT_FN_REALLOC] = "realloc",
    [MT_FN_REALLOCARRAY] = "reallocarray",
    [MT_FN_POSIX_MEMALIGN] = "posix_memalign",
    [MT_FN_ALIGNED_ALLOC] = "aligned_alloc",
    [MT_FN_MEMALIGN] = "memalign",
    [MT_FN_VALLOC] = "valloc",
    [MT_FN_PVALLOC] = "pvalloc",
    [MT_FN_NEW] = "_Znwm",
    [MT_FN_NEW_ARRAY] = "_Znam",
};

const char *alloc_function_name(uint32_t function)
{
    return function < MT_FN_COUNT_ ? alloc_function_names[function] : NULL;
}

const char *analysis_allocator_name(const struct analysis *a, uint32_t function)
{
    if (function < MT_FN_CUSTOM_BASE)
        return alloc_function_name(function);
    for (uint32_t i = 0; i < a->nallocators; i++)
        if (a->allocators[i].function == function)
            return a->allocators[i].name;
    return NULL;
}

static int on_allocator(struct analysis *a, const struct dump_record *rec)
{
    for (uint32_t i = 0; i < a->nallocators; i++)
        if (a->allocators[i].function == rec->function)
            return 0; /* named again (a fork child's dump): the first name stays */
    if (array_grow((void **)&a->allocators, &a->allocators_cap, sizeof *a->allocators,
                   a->nallocators + 1) != 0)
        return -1;
    char *name = malloc(rec->name_len + 1);
    if (!name)
        return -1;
    memcpy(name, rec->name, rec->name_len);
    name[rec->name_len] = '\0';
    a->allocators[a->nallocators++] = (struct allocator_name){(uint32_t)rec->function, name};
    return 0;
}

/* --between: 0 before its first mark, 1 between, 2 after the second. */
static void on_mark(struct analysis *a, const struct analysis_options *o,
                    const struct dump_record *rec, int *window, uint64_t start)
{
    if (!o || !o->mark_from)
        return;
    const char *want = *window == 0 ? o->mark_from : *window == 1 ? o->mark_to : NULL;
    if (want && strlen(want) == rec->name_len && memcmp(want, rec->name, rec->name_len) == 0) {
        if (*window == 0)
            a->window_from_ns = rec->time - start;
        else
            a->window_to_ns = rec->time - start;
        ++*window;
    }
}

/* Whether an allocation by function is one the options keep. */
static int wanted(const struct analysis *a, const struct analysis_options *o, uint64_t function,
                  int window)
{
    if (!o)
        return 1;
    if (o->mark_from && window != 1)
        return 0;
    if (o->nallocators == 0)
        return 1;
    const char *name = analysis_allocator_name(a, (uint32_t)function);
    for (int i = 0; name && i < o->nallocators; i++)
        if (fnmatch(o->allocators[i], name, 0) == 0)
            return 1;
    return 0;
}

/* ---- the pass ------------------------------------------------------------- */

/* What the pass keeps besides the analysis: the live blocks, and which
 * frees are of temporaries. */
struct replay {
    const struct analysis_options *o;
    struct analysis *a;
    struct heap_table live;
    struct temporary_tracker temporary;
    uint64_t start, last_time;
    int window; /* --between: 0 before its first mark, 1 between, 2 after */
};

/* An ALLOC event. 0, or -1 when out of memory. */
static int on_alloc(struct replay *p, const struct dump_event *e)
{
    struct analysis *a = p->a;
    if (!wanted(a, p->o, e->function, p->window))
        return 0;
    struct heap_block b = {e->address, e->size, (uint32_t)e->stack, MT_KIND_UNKNOWN}, old;
    int replaced = heap_table_insert(&p->live, &b, &old);
    if (replaced < 0)
        return -1;
    if (replaced)
        block_gone(a, &old);
    struct heap_totals *t = &a->summary.totals;
    t->allocations++;
    t->bytes_allocated += e->size;
    struct site *s = site_of_stack(a, e->stack);
    if (s) {
        if (!s->allocations)
            s->alloc_function = (uint32_t)e->function;
        s->allocations++;
        s->bytes_allocated += e->size;
    }
    block_born(a, &b, e->time - p->start);
    return temporary_on_alloc(&p->temporary, e->thread, e->address, replaced);
}

static void on_free(struct replay *p, const struct dump_event *e)
{
    struct analysis *a = p->a;
    struct heap_block b;
    int live = heap_table_remove(&p->live, e->address, &b);
    if (live) {
        a->summary.totals.frees++;
        block_gone(a, &b);
    }
    if (temporary_on_free(&p->temporary, e->thread, e->address, live)) {
        a->summary.temporary_allocations++;
        struct site *s = site_of_stack(a, b.stack);
        if (s) {
            s->temporary++;
            s->temporary_bytes += b.size;
        }
    }
}

/* How many events ahead of the one replayed the live table's slot is
 * fetched: each lookup is a cache miss, and this many overlap. */
#define PREFETCH_AHEAD 12
#define EVENT_BATCH 256

/* Replays the rest of the EVENTS record whose first event dump_next gave.
 * 0, or -1 (corrupt or out of memory, r->error says which). */
static int replay_events(struct dump_reader *r, struct replay *p)
{
    struct dump_event events[EVENT_BATCH];
    int n;
    while ((n = dump_next_events(r, events, EVENT_BATCH)) > 0) {
        for (int i = 0; i < n && i < PREFETCH_AHEAD; i++)
            heap_table_prefetch(&p->live, events[i].address);
        for (int i = 0; i < n; i++) {
            const struct dump_event *e = &events[i];
            if (i + PREFETCH_AHEAD < n)
                heap_table_prefetch(&p->live, events[i + PREFETCH_AHEAD].address);
            if (e->is_free)
                on_free(p, e);
            else if (on_alloc(p, e) != 0)
                return oom(r);
            if (e->time > p->last_time)
                p->last_time = e->time;
        }
    }
    return n;
}

/* One record other than an ALLOC or FREE event. 0, or -1 when out of
 * memory. */
static int on_record(struct replay *p, const struct dump_record *rec)
{
    struct analysis *a = p->a;
    const struct analysis_options *o = p->o;
    struct summary *sum = &a->summary;
    struct heap_totals *t = &sum->totals;
    struct heap_block b, old;
    int replaced;
    switch (rec->type) {
    case MT_REC_MODULE_LOAD:
        if (a->symbolizer)
            symbolizer_module_load(a->symbolizer, rec->id, rec->path, rec->path_len,
                                   rec->build_id, rec->build_id_len, rec->load_bias,
                                   rec->nsegments, rec->segments);
        return 0;
    case MT_REC_MODULE_UNLOAD:
        if (a->symbolizer)
            symbolizer_module_unload(a->symbolizer, rec->id);
        return 0;
    case MT_REC_STACK:
        return a->symbolizer ? on_stack(a, rec, o) : 0;
    case MT_REC_PYFRAME:
        return a->symbolizer ? python_frames_add(&a->python, a->symbolizer, rec->id,
                                                 rec->function_name, rec->function_name_len,
                                                 rec->path, rec->path_len, rec->line)
                             : 0;
    case MT_REC_ALLOCATOR:
        return on_allocator(a, rec);
    case MT_REC_MARK:
        on_mark(a, o, rec, &p->window, p->start);
        return 0;
    case MT_REC_INHERIT: /* a fork child's inherited blocks: no allocator, no time */
        if (o && (o->mark_from || o->nallocators))
            return 0;
        b = (struct heap_block){rec->address, rec->size, (uint32_t)rec->stack, MT_KIND_UNKNOWN};
        replaced = heap_table_insert(&p->live, &b, &old);
        if (replaced == 0)
            block_born(a, &b, 0);
        return replaced >= 0 ? temporary_on_inherit(&p->temporary, rec->address) : 0;
    case MT_REC_INHERIT_TOTALS:
        t->allocations = rec->allocations;
        t->frees = rec->frees;
        t->bytes_allocated = rec->bytes_allocated;
        return 0;
    case MT_REC_SCAN:
        sum->scanned = 1;
        return 0;
    case MT_REC_LEAK_KIND:
        if (rec->exit_how < MT_KIND_COUNT)
            heap_table_set_kind(&p->live, rec->address, (unsigned)rec->exit_how);
        return 0;
    case MT_REC_EXIT:
        sum->exit_how = rec->exit_how;
        sum->exit_value = rec->exit_value;
        return 0;
    default:
        return 0;
    }
}

/* What was never freed, by kind and by site. */
static void count_leaks(struct replay *p)
{
    struct analysis *a = p->a;
    struct summary *sum = &a->summary;
    struct heap_block lb;
    for (size_t cursor = 0; heap_table_next(&p->live, &cursor, &lb);) {
        sum->kind_bytes[lb.kind] += lb.size;
        sum->kind_blocks[lb.kind]++;
        struct site *ls = site_of_stack(a, lb.stack);
        if (ls) {
            ls->leaked_bytes += lb.size;
            ls->leaked_blocks++;
            ls->kind_bytes[lb.kind] += lb.size;
            ls->kind_blocks[lb.kind]++;
        }
    }
}

int analysis_run(struct dump_reader *r, const struct analysis_options *o, struct analysis *a)
{
    memset(a, 0, sizeof *a);
    struct replay p = {.o = o, .a = a, .start = r->process.start_ns};
    p.last_time = p.start;
    if (heap_table_init(&p.live) != 0 || (o && !(a->symbolizer = symbolizer_new(&o->symbols)))) {
        heap_table_free(&p.live);
        analysis_free(a);
        return oom(r);
    }
    struct dump_record rec;
    int got;
    while ((got = dump_next(r, &rec)) == 1) {
        if (rec.type == MT_REC_ALLOC || rec.type == MT_REC_FREE) {
            struct dump_event e = {rec.time,    rec.thread, rec.function,
                                   rec.address, rec.size,   rec.stack, rec.type == MT_REC_FREE};
            if (e.is_free)
                on_free(&p, &e);
            else if (on_alloc(&p, &e) != 0)
                got = oom(r);
        } else if (on_record(&p, &rec) != 0) {
            got = oom(r);
        }
        if (got < 0)
            break;
        if (rec.time > p.last_time)
            p.last_time = rec.time;
        if (r->events.left && (got = replay_events(r, &p)) < 0)
            break;
    }
    if (got == 0 && o && o->mark_from && p.window < 2) {
        if (p.window == 0)
            snprintf(r->error, sizeof r->error, "the dump has no mark '%s'", o->mark_from);
        else
            snprintf(r->error, sizeof r->error, "the dump has no mark '%s' after mark '%s'",
                     o->mark_to, o->mark_from);
        got = -1;
    }
    if (got == 0)
        count_leaks(&p);
    heap_table_free(&p.live);
    temporary_free(&p.temporary);
    if (got < 0) {
        analysis_free(a); /* the caller has nothing to free */
        return -1;
    }
    a->summary.truncated = r->truncated;
    a->summary.duration_ns = p.last_time - p.start;
    return 0;
}

void analysis_free(struct analysis *a)
{
    if (a->symbolizer)
        symbolizer_free(a->symbolizer);
    python_frames_free(&a->python);
    free(a->frames);
    free(a->site_frames);
    free(a->sites);
    free(a->frame_index);
    free(a->site_index);
    free(a->stack_site);
    for (uint32_t i = 0; i < a->nallocators; i++)
        free(a->allocators[i].name);
    free(a->allocators);
    memset(a, 0, sizeof *a);
}
