/* `memtrace diff BASE NEW`: which stacks grew or shrank between two runs,
 * in the bytes they left allocated at exit and in the bytes they held at the
 * heap's peak, as text or JSON, with a CI gate on the growth of the totals.
 *
 * Sites are matched across the runs by their symbolized frames: function,
 * source file, line and the module's base name, never by address (ASLR moves
 * everything between runs); a frame without a function is matched by module
 * and offset in the module. Sites of one run that match the same key (they
 * differ only by the module's directory or the inlined flag) are added up.
 *
 * Exit status as GNU diff's: 0, 1 when --fail-on-growth is exceeded, 2 on
 * trouble (a bad option, a missing or corrupt dump).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/analysis.h"
#include "read/dump_reader.h"
#include "text_format.h"
#include "util.h"
#include "export/report_output.h"
#include "cli.h"

static const char diff_usage[] =
    "usage: memtrace diff [--format text|json] [--top N] [--fail-on-growth BYTES]\n"
    "                     BASE NEW\n"
    "Compare two dumps: the stacks whose bytes left allocated at exit (leaks) and\n"
    "whose bytes held at the heap's peak grew or shrank from BASE to NEW, largest\n"
    "change first. Stacks are matched by function, file, line and module name,\n"
    "not by address.\n"
    "\n"
    "      --format FORMAT        text (default) or json\n"
    "      --top N                stacks per list, 0 = all (default 10 for text,\n"
    "                             all for json)\n"
    "      --fail-on-growth BYTES exit 1 when the bytes in use at exit or the\n"
    "                             peak grew, in total, by more than BYTES\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Exit status: 0, 1 when --fail-on-growth is exceeded, 2 on trouble.\n";

#define TROUBLE 2

/* ---- matching sites across runs ------------------------------------------ */

enum { BASE, NEW };

struct entry {
    uint64_t hash;
    int run;       /* the run whose site stands for the entry's stack */
    uint32_t site; /* in that run's analysis */
    uint32_t order;
    int64_t leaked_bytes[2], leaked_blocks[2], peak_bytes[2], peak_blocks[2];
};

struct matcher {
    const struct analysis *a[2];
    struct entry *entries;
    uint32_t count, cap;
    uint32_t *slots, mask;
};

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

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
    h = hash_string(h, base_name(f->module));
    return f->function ? h : hash_mix(h, f->module_offset);
}

static int same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int frame_key_equal(const struct sym_frame *x, const struct sym_frame *y)
{
    return same_string(x->function, y->function) && same_string(x->file, y->file) &&
           x->line == y->line && same_string(base_name(x->module), base_name(y->module)) &&
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
    return ((const struct matcher *)m)->entries[e].hash;
}

/* Adds the figures of site s of run `run` to the entry of its key. */
static int match_site(struct matcher *m, int run, uint32_t site)
{
    const struct analysis *a = m->a[run];
    const struct site *s = &a->sites[site];
    if ((m->count + 1) * 4 >= (m->mask + 1) * 3 && index_grow(&m->slots, &m->mask, m->count, 1023, entry_hash_at, m) != 0)
        return -1;
    uint64_t h = site_key_hash(a, s);
    uint32_t i = (uint32_t)h & m->mask;
    struct entry *e = NULL;
    for (; m->slots[i]; i = (i + 1) & m->mask) {
        struct entry *c = &m->entries[m->slots[i] - 1];
        if (c->hash == h && site_key_equal(m->a[c->run], &m->a[c->run]->sites[c->site], a, s)) {
            e = c;
            break;
        }
    }
    if (!e) {
        if (array_grow((void **)&m->entries, &m->cap, sizeof *m->entries, m->count + 1) != 0)
            return -1;
        e = &m->entries[m->count];
        *e = (struct entry){.hash = h, .run = run, .site = site, .order = m->count};
        m->slots[i] = ++m->count;
    }
    e->leaked_bytes[run] += (int64_t)s->leaked_bytes;
    e->leaked_blocks[run] += (int64_t)s->leaked_blocks;
    e->peak_bytes[run] += site_peak_bytes(a, s);
    e->peak_blocks[run] += site_peak_blocks(a, s);
    return 0;
}

/* ---- ordering ------------------------------------------------------------ */

enum list { LIST_LEAKS, LIST_PEAK };

static const struct matcher *sort_matcher;
static enum list sort_list;

static void figures(const struct entry *e, enum list l, int64_t *bytes, int64_t *blocks)
{
    for (int run = 0; run < 2; run++) {
        bytes[run] = l == LIST_LEAKS ? e->leaked_bytes[run] : e->peak_bytes[run];
        blocks[run] = l == LIST_LEAKS ? e->leaked_blocks[run] : e->peak_blocks[run];
    }
}

static int64_t magnitude(int64_t v)
{
    return v < 0 ? -v : v;
}

/* Largest change in bytes first; growth before shrinkage of the same size;
 * then change in blocks, then first seen. */
static int by_change(const void *x, const void *y)
{
    const struct entry *a = &sort_matcher->entries[*(const uint32_t *)x];
    const struct entry *b = &sort_matcher->entries[*(const uint32_t *)y];
    int64_t ab[2], ak[2], bb[2], bk[2];
    figures(a, sort_list, ab, ak);
    figures(b, sort_list, bb, bk);
    int64_t da = ab[NEW] - ab[BASE], db = bb[NEW] - bb[BASE];
    if (magnitude(da) != magnitude(db))
        return magnitude(da) < magnitude(db) ? 1 : -1;
    if (da != db)
        return da < db ? 1 : -1;
    int64_t ka = magnitude(ak[NEW] - ak[BASE]), kb = magnitude(bk[NEW] - bk[BASE]);
    if (ka != kb)
        return ka < kb ? 1 : -1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* The entries whose figures in list l changed, sorted; returns the count. */
static uint32_t changed(const struct matcher *m, enum list l, uint32_t **out)
{
    uint32_t *v = malloc(((size_t)m->count + 1) * sizeof *v), n = 0;
    for (uint32_t i = 0; v && i < m->count; i++) {
        int64_t bytes[2], blocks[2];
        figures(&m->entries[i], l, bytes, blocks);
        if (bytes[NEW] != bytes[BASE] || blocks[NEW] != blocks[BASE])
            v[n++] = i;
    }
    sort_matcher = m;
    sort_list = l;
    if (n)
        qsort(v, n, sizeof *v, by_change);
    *out = v;
    return v ? n : UINT32_MAX;
}

/* ---- output -------------------------------------------------------------- */

struct run_info {
    const char *path;
    struct dump_reader r;
    struct analysis a;
};

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

static int64_t total_of(const struct analysis *a, int k)
{
    const struct heap_totals *t = &a->summary.totals;
    const uint64_t v[] = {t->in_use_bytes, t->in_use_blocks,   t->peak_bytes,
                          t->peak_blocks,  t->bytes_allocated, t->allocations};
    return (int64_t)v[k];
}

#define NTOTALS ((int)(sizeof totals / sizeof *totals))

static void json_run(FILE *out, const char *name, const struct run_info *run)
{
    fprintf(out, "  \"%s\": {\"path\": ", name);
    json_write_string(out, run->path);
    fputs(", \"command\": [", out);
    for (uint64_t k = 0; k < run->r.process.argc && run->r.process.argv; k++) {
        fputs(k ? ", " : "", out);
        if (run->r.process.argv[k] && run->r.process.argv_len)
            json_write_bytes(out, run->r.process.argv[k], run->r.process.argv_len[k]);
        else
            json_write_string(out, run->r.process.argv[k]);
    }
    fputs("],\n    \"totals\": {", out);
    for (int k = 0; k < NTOTALS; k++)
        fprintf(out, "%s\"%s\": %lld", k ? ", " : "", totals[k].key,
                (long long)total_of(&run->a, k));
    fputs("}},\n", out);
}

static void json_list(FILE *out, const struct matcher *m, enum list l, const uint32_t *v,
                      uint32_t n)
{
    fprintf(out, "  \"%s\": {\"sites\": [", l == LIST_LEAKS ? "leaks" : "peak");
    for (uint32_t i = 0; i < n; i++) {
        const struct entry *e = &m->entries[v[i]];
        int64_t bytes[2], blocks[2];
        figures(e, l, bytes, blocks);
        fprintf(out,
                "%s\n      {\"change_bytes\": %lld, \"change_blocks\": %lld, "
                "\"base_bytes\": %lld, \"base_blocks\": %lld, \"new_bytes\": %lld, "
                "\"new_blocks\": %lld, \"stack\": ",
                i ? "," : "", (long long)(bytes[NEW] - bytes[BASE]),
                (long long)(blocks[NEW] - blocks[BASE]), (long long)bytes[BASE],
                (long long)blocks[BASE], (long long)bytes[NEW], (long long)blocks[NEW]);
        report_json_stack(out, m->a[e->run], &m->a[e->run]->sites[e->site]);
        fputs("}", out);
    }
    fputs("]}", out);
}

/* "+1,234 B (+1.2 KiB)": exact, then readable when large (96 bytes). */
static const char *fmt_change(char *buf, int64_t v, int bytes)
{
    char exact[32], human[32];
    uint64_t m = (uint64_t)magnitude(v);
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
                    f->module ? text_clean(base_name(f->module), clean, sizeof clean) : "?",
                    (unsigned long long)f->module_offset);
        if (file && f->line > 0)
            fprintf(out, "%s:%d", text_clean(file, clean_file, sizeof clean_file), f->line);
        else if (file)
            fputs(text_clean(file, clean_file, sizeof clean_file), out);
        else if (f->module)
            fprintf(out, "(%s)", text_clean(base_name(f->module), clean, sizeof clean));
        fputs(f->inlined ? "  [inlined]\n" : "\n", out);
    }
    if (s->nframes > n)
        fprintf(out, "      ... %u more frames\n", s->nframes - n);
}

static void text_list(FILE *out, const struct matcher *m, enum list l, const uint32_t *v,
                      uint32_t n, uint32_t total)
{
    fputs(l == LIST_LEAKS ? "\nLeaks: stacks whose bytes not freed at exit changed\n"
                          : "\nPeak: stacks whose bytes held at the peak changed\n",
          out);
    if (total == 0)
        fputs("  no change\n", out);
    for (uint32_t i = 0; i < n; i++) {
        const struct entry *e = &m->entries[v[i]];
        int64_t bytes[2], blocks[2];
        char c1[96], c2[96], b1[32], b2[32];
        figures(e, l, bytes, blocks);
        fprintf(out, "  #%-3u %s, %s block%s (%s -> %s)\n", i + 1,
                fmt_change(c1, bytes[NEW] - bytes[BASE], 1),
                fmt_change(c2, blocks[NEW] - blocks[BASE], 0),
                magnitude(blocks[NEW] - blocks[BASE]) == 1 ? "" : "s",
                fmt_bytes(b1, (uint64_t)bytes[BASE]), fmt_bytes(b2, (uint64_t)bytes[NEW]));
        text_stack(out, m->a[e->run], &m->a[e->run]->sites[e->site]);
    }
    if (n < total)
        fprintf(out, "  ... %u more (--top 0 shows all)\n", total - n);
}

static void text_totals(FILE *out, const struct run_info *runs)
{
    fprintf(out, "base: %s\nnew:  %s\n\n", runs[BASE].path, runs[NEW].path);
    fprintf(out, "  %-16s %16s %16s   %s\n", "", "base", "new", "change");
    for (int k = 0; k < NTOTALS; k++) {
        int64_t b = total_of(&runs[BASE].a, k), n = total_of(&runs[NEW].a, k);
        char v1[32], v2[32], c[96];
        fprintf(out, "  %-16s %16s %16s   %s\n", totals[k].label, fmt_count(v1, (uint64_t)b),
                fmt_count(v2, (uint64_t)n), n == b ? "=" : fmt_change(c, n - b, totals[k].bytes));
    }
}

/* ---- the command --------------------------------------------------------- */

static int parse_count(const char *option, const char *s, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > max) {
        cli_error("%s takes a number from 0 to %lld, not '%s'", option, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int load(struct run_info *run, const char *path)
{
    struct analysis_options o;
    memset(&o, 0, sizeof o);
    run->path = path;
    if (dump_open(&run->r, path) != 0 || analysis_run(&run->r, &o, &run->a) != 0) {
        cli_error("%s", run->r.error);
        dump_close(&run->r);
        return -1;
    }
    if (run->a.summary.truncated)
        fprintf(stderr,
                "memtrace: %s is cut short (the traced process or the consumer died); "
                "read up to its last whole record\n",
                path);
    return 0;
}

int cmd_diff(int argc, char **argv)
{
    enum { OPT_FORMAT = 256, OPT_TOP, OPT_FAIL };
    static const struct option longopts[] = {{"format", required_argument, 0, OPT_FORMAT},
                                             {"top", required_argument, 0, OPT_TOP},
                                             {"fail-on-growth", required_argument, 0, OPT_FAIL},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int json = 0;
    long long top = -1, limit = -1;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0)
                json = 1;
            else if (strcmp(optarg, "text") == 0)
                json = 0;
            else
                return cli_error("--format takes text or json, not '%s'", optarg), TROUBLE;
            break;
        case OPT_TOP:
            if (parse_count("--top", optarg, 1000000000, &top) != 0)
                return TROUBLE;
            break;
        case OPT_FAIL:
            if (parse_count("--fail-on-growth", optarg, INT64_MAX, &limit) != 0)
                return TROUBLE;
            break;
        case 'h':
            fputs(diff_usage, stdout);
            return 0;
        default:
            return cli_bad_option("diff", argv[optind - 1], optopt), TROUBLE;
        }
    }
    if (argc - optind != 2)
        return cli_error("diff compares two dumps: memtrace diff BASE NEW (memtrace diff --help)"),
               TROUBLE;
    if (top < 0)
        top = json ? 0 : 10;
    struct run_info runs[2];
    if (load(&runs[BASE], argv[optind]) != 0)
        return TROUBLE;
    if (load(&runs[NEW], argv[optind + 1]) != 0) {
        analysis_free(&runs[BASE].a);
        dump_close(&runs[BASE].r);
        return TROUBLE;
    }
    struct matcher m = {.a = {&runs[BASE].a, &runs[NEW].a}};
    int status = 0;
    uint32_t *lists[2] = {NULL, NULL}, counts[2] = {0, 0};
    for (int run = NEW; run >= BASE && status == 0; run--) /* NEW first: its stacks are shown */
        for (uint32_t i = 0; i < m.a[run]->nsites && status == 0; i++) {
            const struct site *s = &m.a[run]->sites[i];
            if (s->leaked_bytes || s->leaked_blocks || site_peak_bytes(m.a[run], s) ||
                site_peak_blocks(m.a[run], s))
                status = match_site(&m, run, i);
        }
    for (int l = LIST_LEAKS; l <= LIST_PEAK && status == 0; l++)
        if ((counts[l] = changed(&m, (enum list)l, &lists[l])) == UINT32_MAX)
            status = -1;
    if (status != 0) {
        cli_error("out of memory while comparing the dumps");
        status = TROUBLE;
        goto done;
    }
    int64_t leak_growth = total_of(&runs[NEW].a, 0) - total_of(&runs[BASE].a, 0);
    int64_t peak_growth = total_of(&runs[NEW].a, 2) - total_of(&runs[BASE].a, 2);
    int failed = limit >= 0 && (leak_growth > limit || peak_growth > limit);
    uint32_t shown[2];
    for (int l = 0; l < 2; l++)
        shown[l] = top > 0 && counts[l] > (uint32_t)top ? (uint32_t)top : counts[l];
    if (json) {
        fputs("{\n  \"format\": \"memtrace-diff\", \"version\": 1,\n", stdout);
        json_run(stdout, "base", &runs[BASE]);
        json_run(stdout, "new", &runs[NEW]);
        fputs("  \"change\": {", stdout);
        for (int k = 0; k < NTOTALS; k++)
            fprintf(stdout, "%s\"%s\": %lld", k ? ", " : "", totals[k].key,
                    (long long)(total_of(&runs[NEW].a, k) - total_of(&runs[BASE].a, k)));
        fputs("},\n", stdout);
        if (limit >= 0)
            fprintf(stdout, "  \"fail_on_growth\": {\"bytes\": %lld, \"failed\": %s},\n", limit,
                    failed ? "true" : "false");
        json_list(stdout, &m, LIST_LEAKS, lists[LIST_LEAKS], shown[LIST_LEAKS]);
        fputs(",\n", stdout);
        json_list(stdout, &m, LIST_PEAK, lists[LIST_PEAK], shown[LIST_PEAK]);
        fputs("\n}\n", stdout);
    } else {
        text_totals(stdout, runs);
        for (int l = LIST_LEAKS; l <= LIST_PEAK; l++)
            text_list(stdout, &m, (enum list)l, lists[l], shown[l], counts[l]);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write the output");
        status = TROUBLE;
    } else if (failed) {
        char c[96];
        cli_error("diff: %s grew by %s, more than --fail-on-growth %lld",
                  leak_growth > limit ? "bytes in use at exit" : "the peak",
                  fmt_change(c, leak_growth > limit ? leak_growth : peak_growth, 1), limit);
        status = 1;
    }
done:
    free(lists[0]);
    free(lists[1]);
    free(m.entries);
    free(m.slots);
    for (int run = BASE; run <= NEW; run++) {
        analysis_free(&runs[run].a);
        dump_close(&runs[run].r);
    }
    return status;
}
