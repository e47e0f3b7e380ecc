/* Printing the reports of an analysis: the SPEC section 7 JSON, and text
 * meant to be read (aligned columns, human sizes, innermost frame first,
 * paths relative to the current directory, colour only on a terminal). */
#define _GNU_SOURCE
#include "report_output.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/leak_kinds.h"
#include "analyze/suppressions.h"
#include "text_format.h"
#include "util.h"

#define kind_names leak_kind_names

/* ---- choosing and ordering sites ----------------------------------------
 * An entry is a site, and for leaks a (site, kind): site * 8 + kind. */

static const struct analysis *sort_analysis;
static enum report_section sort_section;

#define ENTRY_SITE(e) ((e) >> 3)
#define ENTRY_KIND(e) ((e) & 7)

static int64_t entry_value(const struct analysis *a, uint32_t e, enum report_section k)
{
    const struct site *s = &a->sites[ENTRY_SITE(e)];
    switch (k) {
    case SECTION_LEAKS: return (int64_t)s->kind_bytes[ENTRY_KIND(e)];
    case SECTION_PEAK: return site_peak_bytes(a, s);
    case SECTION_ALLOCATIONS: return (int64_t)s->allocations;
    case SECTION_TEMPORARY: return (int64_t)s->temporary;
    }
    return 0;
}

/* What breaks ties, and whether the entry has anything at all (a site of
 * 0-byte blocks has no bytes but is still listed). */
static int64_t entry_count(const struct analysis *a, uint32_t e, enum report_section k)
{
    const struct site *s = &a->sites[ENTRY_SITE(e)];
    switch (k) {
    case SECTION_LEAKS: return (int64_t)s->kind_blocks[ENTRY_KIND(e)];
    case SECTION_PEAK: return site_peak_blocks(a, s);
    case SECTION_ALLOCATIONS: return (int64_t)s->bytes_allocated;
    case SECTION_TEMPORARY: return (int64_t)s->temporary_bytes;
    }
    return 0;
}

static int by_value(const void *x, const void *y)
{
    uint32_t ex = *(const uint32_t *)x, ey = *(const uint32_t *)y;
    int64_t va = entry_value(sort_analysis, ex, sort_section);
    int64_t vb = entry_value(sort_analysis, ey, sort_section);
    if (va != vb)
        return va < vb ? 1 : -1;
    int64_t ta = entry_count(sort_analysis, ex, sort_section);
    int64_t tb = entry_count(sort_analysis, ey, sort_section);
    if (ta != tb)
        return ta < tb ? 1 : -1;
    return ex < ey ? -1 : ex > ey;
}

/* The entries with something to show in section k (leaks: of the kinds in
 * the mask, and suppressed by supp or not as suppressed says), sorted;
 * returns the count. */
static uint32_t pick_entries(const struct analysis *a, enum report_section k, unsigned kinds,
                             const struct suppression_matches *supp, int suppressed, uint32_t **out)
{
    uint32_t per_site = k == SECTION_LEAKS ? MT_KIND_COUNT : 1;
    uint32_t *v = malloc(((size_t)a->nsites * per_site + 1) * sizeof *v);
    uint32_t n = 0;
    for (uint32_t i = 0; v && i < a->nsites; i++) {
        if (a->sites[i].filtered_out)
            continue;
        for (uint32_t kind = 0; kind < per_site; kind++) {
            uint32_t e = i * 8 + kind;
            if (k == SECTION_LEAKS &&
                (!(kinds & (1u << kind)) || (suppression_of(supp, i, kind) >= 0) != suppressed))
                continue;
            if (entry_count(a, e, k) > 0 || entry_value(a, e, k) > 0)
                v[n++] = e;
        }
    }
    sort_analysis = a;
    sort_section = k;
    if (n)
        qsort(v, n, sizeof *v, by_value);
    *out = v;
    return n;
}

/* ---- JSON --------------------------------------------------------------- */

/* Writes a string literal without looking for its end. */
#define PUT(out, literal) fwrite(literal, 1, sizeof literal - 1, out)

/* Writes v in decimal (base 10) or hexadecimal (16), as printf would. */
static void put_number(FILE *out, uint64_t v, unsigned base)
{
    char digits[24], *p = digits + sizeof digits;
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    fwrite(p, 1, (size_t)(digits + sizeof digits - p), out);
}

/* One frame of a stack, as SPEC section 7 has it. */
static void json_frame(FILE *out, const struct sym_frame *f)
{
    PUT(out, "\n          {\"function\": ");
    json_write_string(out, f->function);
    PUT(out, ", \"file\": ");
    json_write_string(out, f->file);
    PUT(out, ", \"line\": ");
    if (f->line > 0)
        put_number(out, (uint64_t)f->line, 10);
    else
        PUT(out, "null");
    PUT(out, ", \"module\": ");
    json_write_string(out, f->module);
    if (f->is_python) {
        PUT(out, ", \"address\": null, \"inlined\": false, \"language\": \"python\"}");
        return;
    }
    PUT(out, ", \"address\": \"0x");
    put_number(out, f->address, 16);
    if (f->inlined)
        PUT(out, "\", \"inlined\": true, \"language\": \"c\"}");
    else
        PUT(out, "\", \"inlined\": false, \"language\": \"c\"}");
}

void report_json_stack(FILE *out, const struct analysis *a, const struct site *s)
{
    fputc('[', out);
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes; k++) {
        if (k)
            fputc(',', out);
        json_frame(out, &a->frames[frames[k]]);
    }
    fputc(']', out);
}

/* Every distinct frame written once, to be copied into each stack that has
 * it: a JSON report can hold a frame a hundred thousand times. */
struct json_frames {
    char *text;
    size_t len;
    size_t *start; /* frame i is text[start[i], start[i + 1]); NULL: not made */
};

static void json_frames_make(const struct analysis *a, struct json_frames *jf)
{
    *jf = (struct json_frames){0};
    FILE *m = open_memstream(&jf->text, &jf->len);
    jf->start = m ? malloc(((size_t)a->nframes + 1) * sizeof *jf->start) : NULL;
    for (uint32_t i = 0; jf->start && i <= a->nframes; i++) {
        long at = ftell(m);
        if (at < 0) {
            free(jf->start);
            jf->start = NULL;
            break;
        }
        jf->start[i] = (size_t)at;
        if (i < a->nframes)
            json_frame(m, &a->frames[i]);
    }
    if (m && fclose(m) != 0) {
        free(jf->start);
        jf->start = NULL;
    }
}

static void json_frames_free(struct json_frames *jf)
{
    free(jf->text);
    free(jf->start);
}

static void json_stack(FILE *out, const struct analysis *a, const struct site *s,
                       const struct json_frames *jf)
{
    if (!jf->start) {
        report_json_stack(out, a, s);
        return;
    }
    fputc('[', out);
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes; k++) {
        if (k)
            fputc(',', out);
        fwrite(jf->text + jf->start[frames[k]], 1,
               jf->start[frames[k] + 1] - jf->start[frames[k]], out);
    }
    fputc(']', out);
}

static void json_sites(FILE *out, const struct analysis *a, enum report_section k, int top,
                       const struct suppression_matches *supp, int suppressed,
                       const struct json_frames *jf)
{
    uint32_t *v;
    uint32_t n = pick_entries(a, k, (1u << MT_KIND_COUNT) - 1, supp, suppressed, &v);
    if (top > 0 && n > (uint32_t)top)
        n = (uint32_t)top;
    fputs("\"sites\": [", out);
    for (uint32_t i = 0; i < n; i++) {
        const struct site *s = &a->sites[ENTRY_SITE(v[i])];
        unsigned kind = ENTRY_KIND(v[i]);
        fputs(i ? ",\n      {" : "\n      {", out);
        switch (k) {
        case SECTION_LEAKS:
            fprintf(out, "\"kind\": \"%s\", \"bytes\": %llu, \"blocks\": %llu", kind_names[kind],
                    (unsigned long long)s->kind_bytes[kind], (unsigned long long)s->kind_blocks[kind]);
            if (suppressed) {
                fputs(", \"suppression\": ", out);
                json_write_string(
                    out, supp->set->items[suppression_of(supp, ENTRY_SITE(v[i]), kind)].name);
            }
            break;
        case SECTION_PEAK:
            fprintf(out, "\"bytes\": %lld, \"blocks\": %lld", (long long)site_peak_bytes(a, s),
                    (long long)site_peak_blocks(a, s));
            break;
        case SECTION_ALLOCATIONS:
            fprintf(out, "\"count\": %llu, \"bytes\": %llu", (unsigned long long)s->allocations,
                    (unsigned long long)s->bytes_allocated);
            break;
        case SECTION_TEMPORARY:
            fprintf(out, "\"count\": %llu, \"bytes\": %llu", (unsigned long long)s->temporary,
                    (unsigned long long)s->temporary_bytes);
            break;
        }
        fputs(", \"allocator\": ", out);
        json_write_string(out, analysis_allocator_name(a, s->alloc_function));
        fputs(", \"stack\": ", out);
        json_stack(out, a, s, jf);
        fputs("}", out);
    }
    fputs("]", out);
    free(v);
}

/* "suppressed": the leaks --suppressions took out of the leak list, and
 * what each suppression matched. */
static void json_suppressed(FILE *out, const struct analysis *a, int top,
                            const struct suppression_matches *supp, const struct json_frames *jf)
{
    fputs(",\n    \"suppressed\": {", out);
    json_sites(out, a, SECTION_LEAKS, top, supp, 1, jf);
    fputs(",\n      \"by_suppression\": [", out);
    for (uint32_t j = 0; j < supp->set->n; j++) {
        const struct suppression *sp = &supp->set->items[j];
        fputs(j ? ",\n        {\"name\": " : "\n        {\"name\": ", out);
        json_write_string(out, sp->name);
        fputs(", \"file\": ", out);
        json_write_string(out, sp->file);
        fprintf(out, ", \"line\": %d, \"bytes\": %llu, \"blocks\": %llu, \"sites\": %llu}",
                sp->line, (unsigned long long)supp->bytes[j], (unsigned long long)supp->blocks[j],
                (unsigned long long)supp->sites[j]);
    }
    fputs("]}", out);
}

void report_print_json(FILE *out, const struct dump_reader *r, const struct analysis *a,
                       unsigned sections, int top, const struct suppression_matches *supp)
{
    const struct heap_totals *t = &a->summary.totals;
    struct json_frames jf;
    json_frames_make(a, &jf);
    flockfile(out); /* once, not at each of millions of writes */
    fputs("{\n  \"format\": \"memtrace-report\", \"version\": 1,\n", out);
    summary_print_json_blocks(out, r, &a->summary);
    if (sections & (1u << SECTION_LEAKS)) {
        /* Every live block has one kind (unknown without a scan), so in_use
         * equals the sum of by_kind. */
        fputs(",\n  \"leaks\": {\"scanned\": ", out);
        fputs(a->summary.scanned ? "true" : "false", out);
        fputs(", \"by_kind\": {", out);
        for (int k = 0; k < MT_KIND_COUNT; k++)
            fprintf(out, "%s\"%s\": {\"bytes\": %llu, \"blocks\": %llu}", k ? ", " : "",
                    kind_names[k], (unsigned long long)a->summary.kind_bytes[k],
                    (unsigned long long)a->summary.kind_blocks[k]);
        fputs("},\n    ", out);
        json_sites(out, a, SECTION_LEAKS, top, supp, 0, &jf);
        if (supp)
            json_suppressed(out, a, top, supp, &jf);
        fputs("}", out);
    }
    if (sections & (1u << SECTION_PEAK)) {
        fprintf(out, ",\n  \"peak\": {\"time_ns\": %llu, \"bytes\": %llu, \"blocks\": %llu,\n    ",
                (unsigned long long)t->peak_time_ns, (unsigned long long)t->peak_bytes,
                (unsigned long long)t->peak_blocks);
        json_sites(out, a, SECTION_PEAK, top, NULL, 0, &jf);
        fputs("}", out);
    }
    if (sections & (1u << SECTION_ALLOCATIONS)) {
        fputs(",\n  \"allocations\": {", out);
        json_sites(out, a, SECTION_ALLOCATIONS, top, NULL, 0, &jf);
        fputs("}", out);
    }
    if (sections & (1u << SECTION_TEMPORARY)) {
        fputs(",\n  \"temporary\": {", out);
        json_sites(out, a, SECTION_TEMPORARY, top, NULL, 0, &jf);
        fputs("}", out);
    }
    fputs("\n}\n", out);
    funlockfile(out);
    json_frames_free(&jf);
}

/* ---- text --------------------------------------------------------------- */

struct style {
    const char *bold, *dim, *reset;
};

static const char *relative_path(const char *path, char *buf, size_t size)
{
    static char cwd[PATH_MAX];
    static size_t cwd_len;
    if (!cwd_len && getcwd(cwd, sizeof cwd))
        cwd_len = strlen(cwd);
    if (path && cwd_len && strncmp(path, cwd, cwd_len) == 0 && path[cwd_len] == '/') {
        snprintf(buf, size, "%s", path + cwd_len + 1);
        return buf;
    }
    return path;
}


#define TEXT_FRAMES 12

static void text_stack(FILE *out, const struct analysis *a, const struct site *s,
                       const struct style *st)
{
    const uint32_t *frames = site_frame_list(a, s);
    uint32_t n = s->nframes < TEXT_FRAMES ? s->nframes : TEXT_FRAMES;
    int width = 0;
    for (uint32_t k = 0; k < n; k++) {
        const char *fn = a->frames[frames[k]].function;
        int len = fn ? (int)strlen(fn) : 0;
        if (len > width)
            width = len;
    }
    if (width > 48)
        width = 48;
    if (s->nframes == 0)
        fprintf(out, "      %s(no stack)%s\n", st->dim, st->reset);
    for (uint32_t k = 0; k < n; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        char where[PATH_MAX + 64], rel[PATH_MAX];
        if (f->file && f->line > 0)
            snprintf(where, sizeof where, "%s:%d", relative_path(f->file, rel, sizeof rel), f->line);
        else if (f->file)
            snprintf(where, sizeof where, "%s", relative_path(f->file, rel, sizeof rel));
        else if (f->function)
            snprintf(where, sizeof where, "(%s)", f->module ? path_base_name(f->module) : "?");
        else if (f->module)
            snprintf(where, sizeof where, "%s+0x%llx", path_base_name(f->module),
                     (unsigned long long)f->module_offset);
        else
            snprintf(where, sizeof where, "(no module)");
        char fn[64];
        if (f->function)
            snprintf(fn, sizeof fn, "%s", f->function);
        else
            snprintf(fn, sizeof fn, "0x%llx", (unsigned long long)f->address);
        char clean_fn[256], clean_where[1024];
        fprintf(out, "      %s%-*s%s  %s%s", st->bold, width, text_clean(fn, clean_fn, sizeof clean_fn),
                st->reset, text_clean(where, clean_where, sizeof clean_where),
                f->inlined ? "  [inlined]" : "");
        fputc('\n', out);
    }
    if (s->nframes > n)
        fprintf(out, "      %s... %u more frames%s\n", st->dim, s->nframes - n, st->reset);
}

static void text_section(FILE *out, const struct analysis *a, enum report_section k, int top,
                         unsigned kinds, const struct style *st,
                         const struct suppression_matches *supp)
{
    static const char *titles[] = {
        "Leaks: blocks still allocated at exit, by bytes",
        "Peak: what held the heap at its largest",
        "Allocations: hot spots by number of calls",
        "Temporary: blocks freed before their thread allocated anything else"};
    const struct heap_totals *t = &a->summary.totals;
    uint32_t *v;
    uint32_t total = pick_entries(a, k, kinds, supp, 0, &v);
    uint32_t n = top > 0 && total > (uint32_t)top ? (uint32_t)top : total;
    char b1[32], b2[32], b3[32];
    fprintf(out, "\n%s%s%s\n", st->bold, titles[k], st->reset);
    if (k == SECTION_LEAKS) {
        fputs("  ", out);
        for (int kind = 0; kind < MT_KIND_COUNT; kind++)
            if (a->summary.kind_blocks[kind] || kind == MT_KIND_DEFINITE)
                fprintf(out, "%s: %s in %s block%s   ", kind_names[kind],
                        fmt_bytes(b1, a->summary.kind_bytes[kind]),
                        fmt_count(b2, a->summary.kind_blocks[kind]),
                        a->summary.kind_blocks[kind] == 1 ? "" : "s");
        fputs(a->summary.scanned || !a->summary.kind_blocks[MT_KIND_UNKNOWN]
                  ? "\n"
                  : "\n  (no reachability scan: \"not checked\" above says why)\n",
              out);
        if (supp && (supp->total_blocks || supp->total_bytes))
            fprintf(out, "  (%s in %s block%s suppressed: listed under Suppressed)\n",
                    fmt_bytes(b1, supp->total_bytes), fmt_count(b2, supp->total_blocks),
                    supp->total_blocks == 1 ? "" : "s");
    }
    if (k == SECTION_PEAK)
        fprintf(out, "  %s in %s blocks at %.3f s\n", fmt_bytes(b1, t->peak_bytes),
                fmt_count(b2, t->peak_blocks), t->peak_time_ns / 1e9);
    if (total == 0)
        fputs("  none\n", out);
    for (uint32_t i = 0; i < n; i++) {
        const struct site *s = &a->sites[ENTRY_SITE(v[i])];
        unsigned kind = ENTRY_KIND(v[i]);
        switch (k) {
        case SECTION_LEAKS:
            fprintf(out, "  #%-3u %10s in %s block%s, %s\n", i + 1, fmt_bytes(b1, s->kind_bytes[kind]),
                    fmt_count(b2, s->kind_blocks[kind]), s->kind_blocks[kind] == 1 ? "" : "s",
                    kind_names[kind]);
            break;
        case SECTION_PEAK:
            fprintf(out, "  #%-3u %10s in %s block%s\n", i + 1,
                    fmt_bytes(b1, (uint64_t)site_peak_bytes(a, s)),
                    fmt_count(b2, (uint64_t)site_peak_blocks(a, s)),
                    site_peak_blocks(a, s) == 1 ? "" : "s");
            break;
        case SECTION_ALLOCATIONS:
            fprintf(out, "  #%-3u %10s call%s, %s\n", i + 1, fmt_count(b1, s->allocations),
                    s->allocations == 1 ? "" : "s", fmt_bytes(b3, s->bytes_allocated));
            break;
        case SECTION_TEMPORARY:
            fprintf(out, "  #%-3u %10s temporary, %s\n", i + 1, fmt_count(b1, s->temporary),
                    fmt_bytes(b3, s->temporary_bytes));
            break;
        }
        if (s->alloc_function >= MT_FN_CUSTOM_BASE) { /* not the malloc family */
            const char *name = analysis_allocator_name(a, s->alloc_function);
            char clean[1024];
            fprintf(out, "      %sallocated by %s%s\n", st->dim,
                    name ? text_clean(name, clean, sizeof clean) : "?", st->reset);
        }
        text_stack(out, a, s, st);
    }
    if (n < total)
        fprintf(out, "  ... %u more site%s (--top 0 shows all)\n", total - n, total - n == 1 ? "" : "s");
    free(v);
}

/* The leaks --suppressions took out of the leak list: what each
 * suppression matched, then the sites. */
static void text_suppressed(FILE *out, const struct analysis *a, int top, unsigned kinds,
                            const struct style *st, const struct suppression_matches *supp)
{
    char b1[32], b2[32];
    fprintf(out, "\n%sSuppressed: leaks that --suppressions matched%s\n", st->bold, st->reset);
    int any = 0;
    for (uint32_t j = 0; j < supp->set->n; j++) {
        const struct suppression *sp = &supp->set->items[j];
        if (!supp->blocks[j] && !supp->bytes[j])
            continue;
        fprintf(out, "  %10s in %s block%s, %llu site%s: %s  %s(%s:%d)%s\n",
                fmt_bytes(b1, supp->bytes[j]), fmt_count(b2, supp->blocks[j]),
                supp->blocks[j] == 1 ? "" : "s", (unsigned long long)supp->sites[j],
                supp->sites[j] == 1 ? "" : "s", sp->name, st->dim, sp->file, sp->line, st->reset);
        any = 1;
    }
    if (!any) {
        fputs("  none\n", out);
        return;
    }
    uint32_t *v;
    uint32_t total = pick_entries(a, SECTION_LEAKS, kinds, supp, 1, &v);
    uint32_t n = top > 0 && total > (uint32_t)top ? (uint32_t)top : total;
    for (uint32_t i = 0; i < n; i++) {
        const struct site *s = &a->sites[ENTRY_SITE(v[i])];
        unsigned kind = ENTRY_KIND(v[i]);
        fprintf(out, "  #%-3u %10s in %s block%s, %s, by %s\n", i + 1,
                fmt_bytes(b1, s->kind_bytes[kind]), fmt_count(b2, s->kind_blocks[kind]),
                s->kind_blocks[kind] == 1 ? "" : "s", kind_names[kind],
                supp->set->items[suppression_of(supp, ENTRY_SITE(v[i]), kind)].name);
        text_stack(out, a, s, st);
    }
    if (n < total)
        fprintf(out, "  ... %u more site%s (--top 0 shows all)\n", total - n,
                total - n == 1 ? "" : "s");
    free(v);
}

void report_print_text(FILE *out, const struct dump_reader *r, const struct analysis *a,
                       unsigned sections, int top, unsigned kinds, int colour,
                       const struct suppression_matches *supp)
{
    struct style st = colour ? (struct style){"\033[1m", "\033[2m", "\033[0m"}
                             : (struct style){"", "", ""};
    summary_print_text(out, r, &a->summary);
    for (int k = SECTION_LEAKS; k <= SECTION_TEMPORARY; k++)
        if (sections & (1u << k)) {
            text_section(out, a, (enum report_section)k, top, kinds, &st, supp);
            if (k == SECTION_LEAKS && supp)
                text_suppressed(out, a, top, kinds, &st, supp);
        }
}
