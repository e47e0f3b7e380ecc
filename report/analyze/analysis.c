/* The report's pass over a dump (see analysis.h). Counting follows SPEC
 * section 4 exactly as the consumer does (cli/consumer/drain.c): a free of an
 * address that is not live counts for nothing; an allocation at a live
 * address replaces the old block. */
#define _GNU_SOURCE
#include "analysis.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "event_pipe.h"
#include "sites.h"
#include "temporary.h"
#include "util.h"

/* Says so in r->error; returns -1. */
static int oom(struct dump_reader *r)
{
    snprintf(r->error, sizeof r->error, "out of memory while reading the dump");
    return -1;
}

/* ---- what each stack holds ------------------------------------------------ */

/* The figures of one stack (one STACK record), kept by the pass and added
 * up into its site's once the sites are known (sites.c). The live figures
 * come first: every event of the stack touches them. */
struct stack_stats {
    int64_t live_bytes, live_blocks;
    uint64_t allocations, bytes_allocated;
    uint32_t peak_version, alloc_function; /* enum mt_function of its first allocation */
    uint64_t first_allocation; /* number of its first allocation + 1, 0 = none */
    int64_t peak_bytes, peak_blocks; /* saved at the peak of version peak_version */
    uint64_t temporary, temporary_bytes;
};

/* What the pass keeps besides the analysis: the live blocks, which frees
 * are of temporaries, and each stack's figures. */
struct replay {
    const struct analysis_options *o;
    struct analysis *a;
    struct heap_table live;
    struct temporary_tracker temporary;
    struct site_builder *sites; /* NULL: no sites wanted (--summary) */
    uint32_t *stack_slot;       /* dump stack id -> its stats + 1 */
    uint32_t stack_slot_cap;
    struct stack_stats *stats;  /* one per STACK record, in order */
    uint32_t nstats, stats_cap;
    uint64_t allocations;       /* wanted allocations so far */
    uint32_t peak_version;      /* how many times the peak rose */
    uint64_t start, last_time;
    int window; /* --between: 0 before its first mark, 1 between, 2 after */
};

static struct stack_stats *stats_of(struct replay *p, uint64_t stack)
{
    if (stack >= p->stack_slot_cap || !p->stack_slot[stack])
        return NULL;
    return &p->stats[p->stack_slot[stack] - 1];
}

/* A STACK record: the next stack's figures start at 0. 0, or -1 when out
 * of memory or its id is beyond any real one. */
static int on_stack(struct replay *p, const struct dump_record *rec)
{
    if (rec->id >= (1u << 30) ||
        array_grow((void **)&p->stack_slot, &p->stack_slot_cap, sizeof *p->stack_slot,
                   rec->id + 1) != 0 ||
        array_grow((void **)&p->stats, &p->stats_cap, sizeof *p->stats, p->nstats + 1) != 0)
        return -1;
    p->stack_slot[rec->id] = ++p->nstats;
    return 0;
}

/* Before a stack's live figures change: if a new peak has been reached
 * since they last changed, they are its figures at that peak. */
static void stats_touch(const struct replay *p, struct stack_stats *s)
{
    if (s->peak_version != p->peak_version) {
        s->peak_bytes = s->live_bytes;
        s->peak_blocks = s->live_blocks;
        s->peak_version = p->peak_version;
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

static void block_gone(struct replay *p, const struct heap_block *b)
{
    struct heap_totals *t = &p->a->summary.totals;
    t->in_use_bytes -= b->size;
    t->in_use_blocks--;
    struct stack_stats *s = stats_of(p, b->stack);
    if (s) {
        stats_touch(p, s);
        s->live_bytes -= (int64_t)b->size;
        s->live_blocks--;
    }
}

static void block_born(struct replay *p, const struct heap_block *b, struct stack_stats *s,
                       uint64_t when)
{
    struct heap_totals *t = &p->a->summary.totals;
    t->in_use_bytes += b->size;
    t->in_use_blocks++;
    if (s) {
        stats_touch(p, s);
        s->live_bytes += (int64_t)b->size;
        s->live_blocks++;
    }
    if (t->in_use_bytes > t->peak_bytes) {
        t->peak_bytes = t->in_use_bytes;
        t->peak_blocks = t->in_use_blocks;
        t->peak_time_ns = when;
        p->peak_version++; /* every stack's current figures are now the peak's */
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
        block_gone(p, &old);
    struct heap_totals *t = &a->summary.totals;
    t->allocations++;
    t->bytes_allocated += e->size;
    p->allocations++;
    /* the stack as recorded counts the allocation; as the block keeps it
     * (32 bits), its bytes */
    struct stack_stats *s = p->sites ? stats_of(p, e->stack) : NULL;
    if (s) {
        if (!s->first_allocation) {
            s->first_allocation = p->allocations;
            s->alloc_function = (uint32_t)e->function;
        }
        s->allocations++;
        s->bytes_allocated += e->size;
    }
    block_born(p, &b, e->stack == b.stack ? s : stats_of(p, b.stack), e->time - p->start);
    return temporary_on_alloc(&p->temporary, e->thread, e->address, replaced);
}

static void on_free(struct replay *p, const struct dump_event *e)
{
    struct analysis *a = p->a;
    struct heap_block b;
    int live = heap_table_remove(&p->live, e->address, &b);
    if (live) {
        a->summary.totals.frees++;
        block_gone(p, &b);
    }
    if (temporary_on_free(&p->temporary, e->thread, e->address, live)) {
        a->summary.temporary_allocations++;
        struct stack_stats *s = stats_of(p, b.stack);
        if (s) {
            s->temporary++;
            s->temporary_bytes += b.size;
        }
    }
}

static int on_record(struct replay *p, const struct dump_record *rec);

/* Replays a block of the dump: its events, and its records in their
 * places. 0, or -1 when out of memory. */
static int replay_block(struct replay *p, const struct pipe_block *b)
{
    uint32_t next_record = 0;
    for (uint32_t i = 0;; i++) {
        for (; next_record < b->nrecords && b->records[next_record].before == i; next_record++) {
            const struct pipe_record *pr = &b->records[next_record];
            struct dump_record rec = pr->rec;
            if (rec.name)
                rec.name = pr->label;
            if (on_record(p, &rec) != 0)
                return -1;
        }
        if (i == b->nevents)
            return 0;
        const struct dump_event *e = &b->events[i];
        if (e->is_free)
            on_free(p, e);
        else if (on_alloc(p, e) != 0)
            return -1;
    }
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
    case MT_REC_STACK:
        return p->sites ? on_stack(p, rec) : 0;
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
            block_born(p, &b, stats_of(p, b.stack), 0);
        return replaced >= 0 ? temporary_on_inherit(&p->temporary, rec->address) : 0;
    case MT_REC_INHERIT_TOTALS:
        t->allocations = rec->allocations;
        t->frees = rec->frees;
        t->bytes_allocated = rec->bytes_allocated;
        return 0;
    case MT_REC_SCAN:
        sum->scanned = 1;
        return 0;
    case MT_REC_INCOMPLETE:
        summary_add_incomplete(sum, rec->reason, rec->count);
        return 0;
    case MT_REC_LEAK_KIND:
        sum->scan_unclassified += rec->exit_how == MT_KIND_UNKNOWN;
        if (rec->exit_how < MT_KIND_COUNT &&
            heap_table_set_kind(&p->live, rec->address, (unsigned)rec->exit_how) < 0)
            return -1;
        return 0;
    case MT_REC_EXIT:
        sum->exit_how = rec->exit_how;
        sum->exit_value = rec->exit_value;
        return 0;
    default:
        return 0;
    }
}

/* What was never freed, by kind (the summary's) and by stack: *leaks gets
 * MT_KIND_COUNT byte and block counts per stack, or NULL when none is
 * live. 0, or -1 when out of memory. */
struct stack_leaks {
    uint64_t bytes[MT_KIND_COUNT], blocks[MT_KIND_COUNT];
};

static int count_leaks(struct replay *p, struct stack_leaks **leaks)
{
    struct summary *sum = &p->a->summary;
    *leaks = p->live.count && p->nstats ? calloc(p->nstats, sizeof **leaks) : NULL;
    if (p->live.count && p->nstats && !*leaks)
        return -1;
    struct heap_block lb;
    for (size_t cursor = 0; heap_table_next(&p->live, &cursor, &lb);) {
        sum->kind_bytes[lb.kind] += lb.size;
        sum->kind_blocks[lb.kind]++;
        if (*leaks && lb.stack < p->stack_slot_cap && p->stack_slot[lb.stack]) {
            struct stack_leaks *l = &(*leaks)[p->stack_slot[lb.stack] - 1];
            l->bytes[lb.kind] += lb.size;
            l->blocks[lb.kind]++;
        }
    }
    return 0;
}

/* Adds each stack's figures up into its site's: the sites' figures at the
 * peak are the sum of their stacks' then, and a site's allocator is the one
 * of its first allocation. 0, or -1 when out of memory. */
static int add_up_sites(struct replay *p, const uint32_t *site_of, const struct stack_leaks *leaks)
{
    struct analysis *a = p->a;
    a->peak_version = p->peak_version;
    uint64_t *first = calloc(a->nsites ? a->nsites : 1, sizeof *first);
    if (!first)
        return -1;
    for (uint32_t i = 0; i < p->nstats; i++) {
        const struct stack_stats *st = &p->stats[i];
        struct site *s = &a->sites[site_of[i]];
        s->allocations += st->allocations;
        s->bytes_allocated += st->bytes_allocated;
        s->temporary += st->temporary;
        s->temporary_bytes += st->temporary_bytes;
        s->live_bytes += st->live_bytes;
        s->live_blocks += st->live_blocks;
        int at_peak = st->peak_version == p->peak_version;
        s->peak_bytes += at_peak ? st->peak_bytes : st->live_bytes;
        s->peak_blocks += at_peak ? st->peak_blocks : st->live_blocks;
        uint64_t *site_first = &first[site_of[i]];
        if (st->first_allocation && (!*site_first || st->first_allocation < *site_first)) {
            *site_first = st->first_allocation;
            s->alloc_function = st->alloc_function;
        }
        for (int k = 0; leaks && k < MT_KIND_COUNT; k++) {
            s->kind_bytes[k] += leaks[i].bytes[k];
            s->kind_blocks[k] += leaks[i].blocks[k];
            s->leaked_bytes += leaks[i].bytes[k];
            s->leaked_blocks += leaks[i].blocks[k];
        }
    }
    for (uint32_t i = 0; i < a->nsites; i++)
        a->sites[i].peak_version = p->peak_version;
    free(first);
    return 0;
}

static void replay_free(struct replay *p)
{
    heap_table_free(&p->live);
    temporary_free(&p->temporary);
    free(p->stack_slot);
    free(p->stats);
    p->stack_slot = NULL;
    p->stats = NULL;
}

int analysis_run(struct dump_reader *r, const struct analysis_options *o, struct analysis *a)
{
    memset(a, 0, sizeof *a);
    struct replay p = {.o = o, .a = a, .start = r->process.start_ns};
    p.last_time = p.start;
    if (heap_table_init(&p.live) != 0 || (o && !(p.sites = site_builder_new(a, o)))) {
        heap_table_free(&p.live);
        analysis_free(a);
        return oom(r);
    }
    struct event_pipe *pipe = event_pipe_start(r, p.sites);
    int got = 0, oom_in_pass = !pipe;
    const struct pipe_block *b;
    while (pipe && (b = event_pipe_next(pipe)))
        if (replay_block(&p, b) != 0) {
            oom_in_pass = 1;
            break;
        }
    int oom_reading = 0;
    if (pipe && event_pipe_finish(pipe, &p.last_time, &oom_reading) != 0)
        got = -1;
    if (oom_in_pass || oom_reading)
        got = oom(r);
    if (got == 0 && o && o->mark_from && p.window < 2) {
        if (p.window == 0)
            snprintf(r->error, sizeof r->error, "the dump has no mark '%s'", o->mark_from);
        else
            snprintf(r->error, sizeof r->error, "the dump has no mark '%s' after mark '%s'",
                     o->mark_to, o->mark_from);
        got = -1;
    }
    struct stack_leaks *leaks = NULL;
    if (got == 0 && count_leaks(&p, &leaks) != 0)
        got = oom(r);
    heap_table_free(&p.live); /* before the sites: the two biggest need not meet */
    temporary_free(&p.temporary);
    uint32_t *site_of = NULL, nstacks = 0;
    if (p.sites && got < 0)
        site_builder_abandon(p.sites);
    else if (p.sites && site_builder_finish(p.sites, &site_of, &nstacks) != 0)
        got = oom(r);
    if (got == 0 && p.sites && add_up_sites(&p, site_of, leaks) != 0)
        got = oom(r);
    free(site_of);
    free(leaks);
    replay_free(&p);
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
    for (uint32_t i = 0; i < a->nallocators; i++)
        free(a->allocators[i].name);
    free(a->allocators);
    memset(a, 0, sizeof *a);
}
