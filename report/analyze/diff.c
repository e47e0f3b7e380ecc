/* `memtrace diff`'s comparison (diff.h): sites matched across two runs by
 * their symbolized frames -- function, source file, line and the module's
 * base name, never by address (ASLR moves everything between runs); a frame
 * without a function is matched by module and offset in the module. Sites
 * of one run that match the same key (they differ only by the module's
 * directory or the inlined flag) are added up. */
#include "diff.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"


static uint64_t hash_string(uint64_t h, const char *s)
{
    h = hash_mix(h, s ? 0x51 : 0x7f);
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static uint64_t frame_key_hash(uint64_t h, const struct sym_frame *f)
{
    h = hash_string(h, f->function);
    h = hash_string(h, f->file);
    h = hash_mix(h, (uint64_t)f->line);
    h = hash_string(h, path_base_name(f->module));
    return f->function ? h : hash_mix(h, f->module_offset);
}

static int same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int frame_key_equal(const struct sym_frame *x, const struct sym_frame *y)
{
    return same_string(x->function, y->function) && same_string(x->file, y->file) &&
           x->line == y->line && same_string(path_base_name(x->module), path_base_name(y->module)) &&
           (x->function || x->module_offset == y->module_offset);
}

static uint64_t site_key_hash(const struct analysis *a, const struct site *s)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ s->nframes;
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes; k++)
        h = frame_key_hash(h, &a->frames[frames[k]]);
    return h;
}

static int site_key_equal(const struct analysis *a, const struct site *s, const struct analysis *b,
                          const struct site *t)
{
    if (s->nframes != t->nframes)
        return 0;
    const uint32_t *fs = site_frame_list(a, s), *ft = site_frame_list(b, t);
    for (uint32_t k = 0; k < s->nframes; k++)
        if (!frame_key_equal(&a->frames[fs[k]], &b->frames[ft[k]]))
            return 0;
    return 1;
}

static uint64_t entry_hash_at(const void *m, uint32_t e)
{
    return ((const struct diff *)m)->entries[e].hash;
}

/* Adds the figures of site s of run `run` to the entry of its key. */
static int match_site(struct diff *m, int run, uint32_t site)
{
    const struct analysis *a = m->a[run];
    const struct site *s = &a->sites[site];
    if ((m->count + 1) * 4 >= (m->mask + 1) * 3 &&
        index_grow(&m->slots, &m->mask, m->count, 1023, entry_hash_at, m) != 0)
        return -1;
    uint64_t h = site_key_hash(a, s);
    uint32_t i = (uint32_t)h & m->mask;
    struct diff_entry *e = NULL;
    for (; m->slots[i]; i = (i + 1) & m->mask) {
        struct diff_entry *c = &m->entries[m->slots[i] - 1];
        if (c->hash == h && site_key_equal(m->a[c->run], &m->a[c->run]->sites[c->site], a, s)) {
            e = c;
            break;
        }
    }
    if (!e) {
        if (array_grow((void **)&m->entries, &m->cap, sizeof *m->entries, m->count + 1) != 0)
            return -1;
        e = &m->entries[m->count];
        *e = (struct diff_entry){.hash = h, .run = run, .site = site, .order = m->count};
        m->slots[i] = ++m->count;
    }
    e->leaked_bytes[run] += (int64_t)s->leaked_bytes;
    e->leaked_blocks[run] += (int64_t)s->leaked_blocks;
    e->peak_bytes[run] += site_peak_bytes(a, s);
    e->peak_blocks[run] += site_peak_blocks(a, s);
    return 0;
}

void diff_figures(const struct diff_entry *e, enum diff_list l, int64_t *bytes, int64_t *blocks)
{
    for (int run = 0; run < 2; run++) {
        bytes[run] = l == DIFF_LEAKS ? e->leaked_bytes[run] : e->peak_bytes[run];
        blocks[run] = l == DIFF_LEAKS ? e->leaked_blocks[run] : e->peak_blocks[run];
    }
}

int64_t diff_magnitude(int64_t v)
{
    return v < 0 ? -v : v;
}

static const struct diff *sort_diff;
static enum diff_list sort_list;

/* Largest change in bytes first; growth before shrinkage of the same size;
 * then change in blocks, then first seen. */
static int by_change(const void *x, const void *y)
{
    const struct diff_entry *a = &sort_diff->entries[*(const uint32_t *)x];
    const struct diff_entry *b = &sort_diff->entries[*(const uint32_t *)y];
    int64_t ab[2], ak[2], bb[2], bk[2];
    diff_figures(a, sort_list, ab, ak);
    diff_figures(b, sort_list, bb, bk);
    int64_t da = ab[DIFF_NEW] - ab[DIFF_BASE], db = bb[DIFF_NEW] - bb[DIFF_BASE];
    if (diff_magnitude(da) != diff_magnitude(db))
        return diff_magnitude(da) < diff_magnitude(db) ? 1 : -1;
    if (da != db)
        return da < db ? 1 : -1;
    int64_t ka = diff_magnitude(ak[DIFF_NEW] - ak[DIFF_BASE]),
            kb = diff_magnitude(bk[DIFF_NEW] - bk[DIFF_BASE]);
    if (ka != kb)
        return ka < kb ? 1 : -1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* The entries whose figures in list l changed, sorted; returns the count. */
static uint32_t changed(const struct diff *m, enum diff_list l, uint32_t **out)
{
    uint32_t *v = malloc(((size_t)m->count + 1) * sizeof *v), n = 0;
    for (uint32_t i = 0; v && i < m->count; i++) {
        int64_t bytes[2], blocks[2];
        diff_figures(&m->entries[i], l, bytes, blocks);
        if (bytes[DIFF_NEW] != bytes[DIFF_BASE] || blocks[DIFF_NEW] != blocks[DIFF_BASE])
            v[n++] = i;
    }
    sort_diff = m;
    sort_list = l;
    if (n)
        qsort(v, n, sizeof *v, by_change);
    *out = v;
    return v ? n : UINT32_MAX;
}

int64_t diff_total(const struct analysis *a, enum diff_total k)
{
    const struct heap_totals *t = &a->summary.totals;
    const uint64_t v[] = {t->in_use_bytes, t->in_use_blocks,   t->peak_bytes,
                          t->peak_blocks,  t->bytes_allocated, t->allocations};
    return (int64_t)v[k];
}

int diff_compare(struct diff *d, const struct analysis *base, const struct analysis *new_)
{
    memset(d, 0, sizeof *d);
    d->a[DIFF_BASE] = base;
    d->a[DIFF_NEW] = new_;
    /* NEW first: its stacks are the ones shown */
    for (int run = DIFF_NEW; run >= DIFF_BASE; run--)
        for (uint32_t i = 0; i < d->a[run]->nsites; i++) {
            const struct site *s = &d->a[run]->sites[i];
            if ((s->leaked_bytes || s->leaked_blocks || site_peak_bytes(d->a[run], s) ||
                 site_peak_blocks(d->a[run], s)) &&
                match_site(d, run, i) != 0)
                return -1;
        }
    for (int l = DIFF_LEAKS; l <= DIFF_PEAK; l++)
        if ((d->counts[l] = changed(d, (enum diff_list)l, &d->lists[l])) == UINT32_MAX)
            return -1;
    return 0;
}

void diff_free(struct diff *d)
{
    free(d->lists[DIFF_LEAKS]);
    free(d->lists[DIFF_PEAK]);
    free(d->entries);
    free(d->slots);
    memset(d, 0, sizeof *d);
}
