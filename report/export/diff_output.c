/* `memtrace diff`'s output (diff_output.h): the totals of both runs and
 * the stacks that changed, as text meant to be read or as JSON. */
#include "diff_output.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "report_output.h"
#include "text_format.h"
#include "util.h"

/* The totals compared, in enum diff_total's order: their JSON key, their
 * text label, and whether they count bytes. */
struct total {
    const char *key, *label;
    int bytes;
};

static const struct total totals[] = {
    {"in_use_bytes", "in use at exit", 1},
    {"in_use_blocks", "  blocks", 0},
    {"peak_bytes", "peak", 1},
    {"peak_blocks", "  blocks", 0},
    {"bytes_allocated", "bytes allocated", 1},
    {"allocations", "allocations", 0},
};


static void json_run(FILE *out, const char *name, const struct diff_run *run)
{
    fprintf(out, "  \"%s\": {\"path\": ", name);
    json_write_string(out, run->path);
    fputs(", \"command\": [", out);
    for (uint64_t k = 0; k < run->r->process.argc && run->r->process.argv; k++) {
        fputs(k ? ", " : "", out);
        if (run->r->process.argv[k] && run->r->process.argv_len)
            json_write_bytes(out, run->r->process.argv[k], run->r->process.argv_len[k]);
        else
            json_write_string(out, run->r->process.argv[k]);
    }
    fputs("],\n    \"totals\": {", out);
    for (int k = 0; k < DIFF_NTOTALS; k++)
        fprintf(out, "%s\"%s\": %lld", k ? ", " : "", totals[k].key,
                (long long)diff_total(run->a, k));
    fputs("}},\n", out);
}

static void json_list(FILE *out, const struct diff *m, enum diff_list l, const uint32_t *v,
                      uint32_t n)
{
    fprintf(out, "  \"%s\": {\"sites\": [", l == DIFF_LEAKS ? "leaks" : "peak");
    for (uint32_t i = 0; i < n; i++) {
        const struct diff_entry *e = &m->entries[v[i]];
        int64_t bytes[2], blocks[2];
        diff_figures(e, l, bytes, blocks);
        fprintf(out,
                "%s\n      {\"change_bytes\": %lld, \"change_blocks\": %lld, "
                "\"base_bytes\": %lld, \"base_blocks\": %lld, \"new_bytes\": %lld, "
                "\"new_blocks\": %lld, \"stack\": ",
                i ? "," : "", (long long)(bytes[DIFF_NEW] - bytes[DIFF_BASE]),
                (long long)(blocks[DIFF_NEW] - blocks[DIFF_BASE]), (long long)bytes[DIFF_BASE],
                (long long)blocks[DIFF_BASE], (long long)bytes[DIFF_NEW],
                (long long)blocks[DIFF_NEW]);
        report_json_stack(out, m->a[e->run], &m->a[e->run]->sites[e->site]);
        fputs("}", out);
    }
    fputs("]}", out);
}

/* "+1,234 B (+1.2 KiB)": exact, then readable when large (96 bytes). */
const char *diff_fmt_change(char *buf, int64_t v, int bytes)
{
    char exact[32], human[32];
    uint64_t m = (uint64_t)diff_magnitude(v);
    const char *sign = v > 0 ? "+" : v < 0 ? "-" : "";
    fmt_count(exact, m);
    if (bytes && m >= 1024)
        snprintf(buf, 96, "%s%s B (%s%s)", sign, exact, sign, fmt_bytes(human, m));
    else
        snprintf(buf, 96, "%s%s%s", sign, exact, bytes ? " B" : "");
    return buf;
}

static void text_stack(FILE *out, const struct analysis *a, const struct site *s)
{
    static char cwd[PATH_MAX];
    size_t cwd_len = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
    const uint32_t *frames = site_frame_list(a, s);
    uint32_t n = s->nframes < 12 ? s->nframes : 12;
    if (s->nframes == 0)
        fputs("      (no stack)\n", out);
    for (uint32_t k = 0; k < n; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        const char *file = f->file;
        if (file && cwd_len && strncmp(file, cwd, cwd_len) == 0 && file[cwd_len] == '/')
            file += cwd_len + 1;
        char clean[1024], clean_file[1024]; /* no terminal controls (text_clean) */
        if (f->function)
            fprintf(out, "      %-28s ", text_clean(f->function, clean, sizeof clean));
        else
            fprintf(out, "      %s+0x%-18llx ",
                    f->module ? text_clean(path_base_name(f->module), clean, sizeof clean) : "?",
                    (unsigned long long)f->module_offset);
        if (file && f->line > 0)
            fprintf(out, "%s:%d", text_clean(file, clean_file, sizeof clean_file), f->line);
        else if (file)
            fputs(text_clean(file, clean_file, sizeof clean_file), out);
        else if (f->module)
            fprintf(out, "(%s)", text_clean(path_base_name(f->module), clean, sizeof clean));
        fputs(f->inlined ? "  [inlined]\n" : "\n", out);
    }
    if (s->nframes > n)
        fprintf(out, "      ... %u more frames\n", s->nframes - n);
}

static void text_list(FILE *out, const struct diff *m, enum diff_list l, const uint32_t *v,
                      uint32_t n, uint32_t total)
{
    fputs(l == DIFF_LEAKS ? "\nLeaks: stacks whose bytes not freed at exit changed\n"
                          : "\nPeak: stacks whose bytes held at the peak changed\n",
          out);
    if (total == 0)
        fputs("  no change\n", out);
    for (uint32_t i = 0; i < n; i++) {
        const struct diff_entry *e = &m->entries[v[i]];
        int64_t bytes[2], blocks[2];
        char c1[96], c2[96], b1[32], b2[32];
        diff_figures(e, l, bytes, blocks);
        fprintf(out, "  #%-3u %s, %s block%s (%s -> %s)\n", i + 1,
                diff_fmt_change(c1, bytes[DIFF_NEW] - bytes[DIFF_BASE], 1),
                diff_fmt_change(c2, blocks[DIFF_NEW] - blocks[DIFF_BASE], 0),
                diff_magnitude(blocks[DIFF_NEW] - blocks[DIFF_BASE]) == 1 ? "" : "s",
                fmt_bytes(b1, (uint64_t)bytes[DIFF_BASE]),
                fmt_bytes(b2, (uint64_t)bytes[DIFF_NEW]));
        text_stack(out, m->a[e->run], &m->a[e->run]->sites[e->site]);
    }
    if (n < total)
        fprintf(out, "  ... %u more (--top 0 shows all)\n", total - n);
}

static void text_totals(FILE *out, const struct diff_run *runs)
{
    fprintf(out, "base: %s\nnew:  %s\n\n", runs[DIFF_BASE].path, runs[DIFF_NEW].path);
    fprintf(out, "  %-16s %16s %16s   %s\n", "", "base", "new", "change");
    for (int k = 0; k < DIFF_NTOTALS; k++) {
        int64_t b = diff_total(runs[DIFF_BASE].a, k), n = diff_total(runs[DIFF_NEW].a, k);
        char v1[32], v2[32], c[96];
        fprintf(out, "  %-16s %16s %16s   %s\n", totals[k].label, fmt_count(v1, (uint64_t)b),
                fmt_count(v2, (uint64_t)n),
                n == b ? "=" : diff_fmt_change(c, n - b, totals[k].bytes));
    }
}

void diff_print_json(FILE *out, const struct diff *d, const struct diff_run *runs,
                     const uint32_t *shown, long long limit, int failed)
{
    fputs("{\n  \"format\": \"memtrace-diff\", \"version\": 1,\n", out);
    json_run(out, "base", &runs[DIFF_BASE]);
    json_run(out, "new", &runs[DIFF_NEW]);
    fputs("  \"change\": {", out);
    for (int k = 0; k < DIFF_NTOTALS; k++)
        fprintf(out, "%s\"%s\": %lld", k ? ", " : "", totals[k].key,
                (long long)(diff_total(runs[DIFF_NEW].a, k) - diff_total(runs[DIFF_BASE].a, k)));
    fputs("},\n", out);
    if (limit >= 0)
        fprintf(out, "  \"fail_on_growth\": {\"bytes\": %lld, \"failed\": %s},\n", limit,
                failed ? "true" : "false");
    json_list(out, d, DIFF_LEAKS, d->lists[DIFF_LEAKS], shown[DIFF_LEAKS]);
    fputs(",\n", out);
    json_list(out, d, DIFF_PEAK, d->lists[DIFF_PEAK], shown[DIFF_PEAK]);
    fputs("\n}\n", out);
}

void diff_print_text(FILE *out, const struct diff *d, const struct diff_run *runs,
                     const uint32_t *shown)
{
    text_totals(out, runs);
    for (int l = DIFF_LEAKS; l <= DIFF_PEAK; l++)
        text_list(out, d, (enum diff_list)l, d->lists[l], shown[l], d->counts[l]);
}
