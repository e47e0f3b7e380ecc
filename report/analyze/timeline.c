/* The timeline's pass over a dump (see timeline.h): the heap replayed from
 * the ALLOC, FREE and INHERIT records, RSS from the RSS records, both folded
 * into a bounded number of time slices. Never holds more than the live
 * blocks and the slices, whatever the number of events.
 */
#include "timeline.h"

#include <stdlib.h>
#include <string.h>

#include "heap_table.h"

#define FIRST_WIDTH_NS 1000u /* 1 us: doubled as the run goes on */

/* ---- slices -------------------------------------------------------------- */

/* Folds slice b (later) into slice a (earlier): lowest and highest keep the
 * first time they were reached, last is b's when it has one. */
static void slice_merge(struct timeline_slice *a, const struct timeline_slice *b)
{
    if (b->has_heap) {
        if (!a->has_heap) {
            a->heap_low = b->heap_low;
            a->heap_high = b->heap_high;
        } else {
            if (b->heap_low.bytes < a->heap_low.bytes)
                a->heap_low = b->heap_low;
            if (b->heap_high.bytes > a->heap_high.bytes)
                a->heap_high = b->heap_high;
        }
        a->heap_last = b->heap_last;
        a->has_heap = 1;
    }
    if (b->has_rss) {
        if (!a->has_rss) {
            a->rss_low = b->rss_low;
            a->rss_high = b->rss_high;
            a->rss_last = b->rss_last;
            a->has_rss = 1;
        } else {
            if (b->rss_low.bytes < a->rss_low.bytes)
                a->rss_low = b->rss_low;
            if (b->rss_high.bytes > a->rss_high.bytes)
                a->rss_high = b->rss_high;
            if (b->rss_last.time_ns >= a->rss_last.time_ns)
                a->rss_last = b->rss_last;
        }
    }
}

/* Doubles the slice width: slices 2k and 2k+1 become slice k. */
static void coarsen(struct timeline *t)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < t->nslices; k += 2, n++) {
        struct timeline_slice merged = t->slices[k];
        if (k + 1 < t->nslices)
            slice_merge(&merged, &t->slices[k + 1]);
        t->slices[n] = merged;
    }
    memset(t->slices + n, 0, (size_t)(t->nslices - n) * sizeof *t->slices);
    t->nslices = n;
    t->width_ns *= 2;
}

/* The slice that holds time_ns, after widening the slices if needed. */
static struct timeline_slice *slice_at(struct timeline *t, uint64_t time_ns)
{
    while (time_ns / t->width_ns >= t->capacity && t->width_ns <= UINT64_MAX / 4)
        coarsen(t);
    uint64_t k64 = time_ns / t->width_ns;
    uint32_t k = k64 < t->capacity ? (uint32_t)k64 : t->capacity - 1; /* absurd times */
    if (k >= t->nslices)
        t->nslices = k + 1; /* the slices between are empty (zeroed) */
    return &t->slices[k];
}

static void add_heap(struct timeline *t, uint64_t time_ns, uint64_t bytes, uint64_t blocks)
{
    struct timeline_point p = {time_ns, bytes, blocks, t->heap_points++};
    struct timeline_slice *s = slice_at(t, time_ns);
    if (!s->has_heap) {
        s->heap_low = s->heap_high = s->heap_last = p;
        s->has_heap = 1;
        return;
    }
    if (bytes < s->heap_low.bytes)
        s->heap_low = p;
    if (bytes > s->heap_high.bytes)
        s->heap_high = p;
    s->heap_last = p;
}

/* RSS samples may come slightly out of time order: each goes to the slice
 * of its own time, and "last" is the latest by time. */
static void add_rss(struct timeline *t, uint64_t time_ns, uint64_t rss)
{
    struct timeline_point p = {time_ns, rss, 0, 0};
    struct timeline_slice *s = slice_at(t, time_ns);
    if (!s->has_rss) {
        s->rss_low = s->rss_high = s->rss_last = p;
        s->has_rss = 1;
    } else {
        if (rss < s->rss_low.bytes)
            s->rss_low = p;
        if (rss > s->rss_high.bytes)
            s->rss_high = p;
        if (time_ns >= s->rss_last.time_ns)
            s->rss_last = p;
    }
    t->rss_samples++;
    if (rss > t->rss_max) {
        t->rss_max = rss;
        t->rss_max_time_ns = time_ns;
    }
}

/* ---- the pass ------------------------------------------------------------ */

/* What the pass carries from record to record. */
struct timeline_pass {
    struct heap_table live;
    uint64_t start, last_time, bytes, blocks;
};

/* An ALLOC, INHERIT or FREE (is_free) of the block at address. 0, or -1
 * when out of memory. */
static int on_block(struct timeline *t, struct timeline_pass *p, enum mt_record type,
                    uint64_t time, uint64_t address, uint64_t size, uint64_t stack)
{
    uint64_t when = time > p->start ? time - p->start : 0;
    struct heap_block b = {.address = address, .size = size, .stack = (uint32_t)stack}, old;
    if (type == MT_REC_FREE) {
        if (heap_table_remove(&p->live, address, &b)) {
            p->bytes -= b.size;
            p->blocks--;
            add_heap(t, when, p->bytes, p->blocks);
        }
        return 0;
    }
    int replaced = heap_table_insert(&p->live, &b, &old);
    if (replaced < 0)
        return -1;
    if (replaced && type == MT_REC_INHERIT)
        return 0; /* as analysis.c: an inherited block is never counted twice */
    if (replaced) {
        p->bytes -= old.size;
        p->blocks--;
    }
    if (type == MT_REC_INHERIT)
        when = 0;
    p->bytes += size;
    p->blocks++;
    if (p->bytes > t->peak_bytes) {
        t->peak_bytes = p->bytes;
        t->peak_blocks = p->blocks;
        t->peak_time_ns = when;
    }
    add_heap(t, when, p->bytes, p->blocks);
    return 0;
}

int timeline_read(struct dump_reader *r, uint32_t nslices, struct timeline *t)
{
    memset(t, 0, sizeof *t);
    if (nslices < 2)
        nslices = 2;
    t->capacity = nslices;
    t->width_ns = FIRST_WIDTH_NS;
    t->slices = calloc(nslices, sizeof *t->slices);
    struct timeline_pass p = {.start = r->process.start_ns, .last_time = r->process.start_ns};
    if (!t->slices || heap_table_init(&p.live) != 0) {
        free(t->slices);
        t->slices = NULL;
        snprintf(r->error, sizeof r->error, "out of memory while reading the dump");
        return -1;
    }
    add_heap(t, 0, 0, 0);
    struct dump_record rec;
    memset(&rec, 0, sizeof rec);
    struct dump_event events[256];
    int got, n;
    while ((got = dump_next(r, &rec)) == 1) {
        uint64_t when = rec.time > p.start ? rec.time - p.start : 0;
        switch (rec.type) {
        case MT_REC_ALLOC:
        case MT_REC_INHERIT:
        case MT_REC_FREE:
            if (on_block(t, &p, rec.type, rec.time, rec.address, rec.size, rec.stack) != 0)
                goto oom;
            break;
        case MT_REC_RSS:
            add_rss(t, when, rec.rss);
            break;
        case MT_REC_MARK:
            if (t->nmarks == TIMELINE_MAX_MARKS) {
                t->marks_dropped++;
                break;
            }
            if (!t->marks && !(t->marks = calloc(TIMELINE_MAX_MARKS, sizeof *t->marks)))
                goto oom;
            t->marks[t->nmarks].time_ns = when;
            memcpy(t->marks[t->nmarks].label, rec.name, rec.name_len); /* <= 255 */
            t->marks[t->nmarks++].label[rec.name_len] = '\0';
            break;
        default:
            break;
        }
        if (rec.time > p.last_time)
            p.last_time = rec.time;
        /* the rest of an EVENTS record, in batches */
        while ((n = dump_next_events(r, events, 256)) > 0) {
            for (int i = 0; i < n; i++) {
                const struct dump_event *e = &events[i];
                if (on_block(t, &p, e->is_free ? MT_REC_FREE : MT_REC_ALLOC, e->time,
                             e->address, e->size, e->stack) != 0)
                    goto oom;
                if (e->time > p.last_time)
                    p.last_time = e->time;
            }
        }
        if (n < 0) {
            got = -1;
            break;
        }
    }
    heap_table_free(&p.live);
    if (got < 0) {
        timeline_free(t);
        return -1;
    }
    t->final_bytes = p.bytes;
    t->final_blocks = p.blocks;
    t->duration_ns = p.last_time - p.start;
    t->truncated = r->truncated;
    return 0;
oom:
    heap_table_free(&p.live);
    timeline_free(t);
    snprintf(r->error, sizeof r->error, "out of memory while reading the dump");
    return -1;
}

void timeline_free(struct timeline *t)
{
    free(t->slices);
    t->slices = NULL;
    t->nslices = 0;
    free(t->marks);
    t->marks = NULL;
    t->nmarks = 0;
}

/* ---- rows ---------------------------------------------------------------- */

/* Whether row a comes after row b: by time; at the same time heap points
 * in the order they were reached, and before RSS samples. */
static int row_after(const struct timeline_row *a, const struct timeline_row *b)
{
    if (a->time_ns != b->time_ns)
        return a->time_ns > b->time_ns;
    if (a->is_rss != b->is_rss)
        return a->is_rss;
    return !a->is_rss && a->seq > b->seq;
}

static void put_point(struct timeline_row *v, int *n, const struct timeline_point *p, int is_rss)
{
    for (int k = 0; k < *n; k++) /* low, high and last are often the same point */
        if (v[k].is_rss == is_rss && v[k].time_ns == p->time_ns &&
            (is_rss ? v[k].rss_bytes : v[k].heap_bytes) == p->bytes &&
            (is_rss || v[k].seq == p->seq))
            return;
    struct timeline_row row = {.time_ns = p->time_ns, .is_rss = is_rss, .seq = p->seq};
    if (is_rss)
        row.rss_bytes = p->bytes;
    else
        row.heap_bytes = p->bytes, row.heap_blocks = p->blocks;
    int k = *n; /* insertion in order */
    while (k > 0 && row_after(&v[k - 1], &row)) {
        v[k] = v[k - 1];
        k--;
    }
    v[k] = row;
    (*n)++;
}

long timeline_rows(const struct timeline *t, struct timeline_row **rows)
{
    struct timeline_row *v = malloc(((size_t)t->nslices * 6 + 1) * sizeof *v);
    if (!v)
        return -1;
    long n = 0;
    uint64_t heap_bytes = 0, heap_blocks = 0, rss = 0;
    int has_rss = 0;
    for (uint32_t k = 0; k < t->nslices; k++) {
        const struct timeline_slice *s = &t->slices[k];
        struct timeline_row *here = v + n;
        int m = 0;
        if (s->has_heap) {
            put_point(here, &m, &s->heap_low, 0);
            put_point(here, &m, &s->heap_high, 0);
            put_point(here, &m, &s->heap_last, 0);
        }
        if (s->has_rss) {
            put_point(here, &m, &s->rss_low, 1);
            put_point(here, &m, &s->rss_high, 1);
            put_point(here, &m, &s->rss_last, 1);
        }
        for (int j = 0; j < m; j++) { /* each series carries its latest value */
            if (here[j].is_rss) {
                rss = here[j].rss_bytes;
                has_rss = 1;
                here[j].heap_bytes = heap_bytes;
                here[j].heap_blocks = heap_blocks;
            } else {
                heap_bytes = here[j].heap_bytes;
                heap_blocks = here[j].heap_blocks;
                here[j].rss_bytes = rss;
            }
            here[j].has_rss = has_rss;
        }
        n += m;
    }
    *rows = v;
    return n;
}
