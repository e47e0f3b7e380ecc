/* CI gates (see gates.h): the verdict on each dump, what is printed about
 * it, and --gen-suppressions. The options are parsed by gate_options.c;
 * the JUnit and SARIF files are written by ci_reports.c from the same
 * verdicts (verdict.h). Runs in the memtrace command, never in the traced
 * process. */
#define _GNU_SOURCE
#include "gates.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ci_reports.h"
#include "analyze/leak_kinds.h"
#include "text_format.h"
#include "util.h"

/* Sites and frames a failure shows: enough to find the leak in a CI log. */
#define SHOWN_SITES 10
#define SHOWN_FRAMES 5
#define SHOWN_PEAK_SITES 5

static void kinds_list(unsigned kinds, char *buf, size_t size)
{
    size_t n = 0;
    if (kinds == (1u << MT_KIND_COUNT) - 1) {
        snprintf(buf, size, "all kinds");
        return;
    }
    buf[0] = '\0';
    for (int k = 0; k < MT_KIND_COUNT; k++)
        if (kinds & (1u << k)) {
            int w = snprintf(buf + n, size - n, "%s%s", n ? "," : "", leak_kind_names[k]);
            if (w < 0 || (size_t)w >= size - n)
                break;
            n += (size_t)w;
        }
}

/* ---- the verdict -------------------------------------------------------- */

static int by_bytes(const void *x, const void *y, void *arg)
{
    const struct analysis *a = arg;
    const struct leak_entry *p = x, *q = y;
    const struct site *sp = &a->sites[p->site], *sq = &a->sites[q->site];
    if (sp->kind_bytes[p->kind] != sq->kind_bytes[q->kind])
        return sp->kind_bytes[p->kind] < sq->kind_bytes[q->kind] ? 1 : -1;
    if (sp->kind_blocks[p->kind] != sq->kind_blocks[q->kind])
        return sp->kind_blocks[p->kind] < sq->kind_blocks[q->kind] ? 1 : -1;
    if (p->site != q->site)
        return p->site < q->site ? -1 : 1;
    return p->kind < q->kind ? -1 : p->kind > q->kind;
}

/* What the gates set cannot check in v's process (see dump_verdict), and
 * the one line that says so. 0, or -1 when out of memory. */
static int judge_unchecked(const struct gate_options *o, struct dump_verdict *v)
{
    int leak_gate = o->max_leaked >= 0 || o->max_leaked_blocks >= 0;
    int any_gate = leak_gate || o->max_peak >= 0;
    struct unchecked_reason all[UNCHECKED_MAX];
    int n = summary_unchecked(&v->a->summary, all, UNCHECKED_MAX);
    for (int i = 0; i < n; i++)
        if ((all[i].scope == UNCHECKED_TRACE && any_gate) ||
            (all[i].scope == UNCHECKED_SCAN && leak_gate && !(o->kinds & (1u << MT_KIND_UNKNOWN))))
            v->unchecked[v->nunchecked++] = all[i];
    if (!v->nunchecked)
        return 0;
    v->fail_unchecked = !o->accept_unchecked;
    size_t len = 0;
    FILE *mem = open_memstream(&v->unchecked_line, &len);
    if (!mem)
        return -1;
    const struct dump_process *p = &v->r->process;
    fprintf(mem, "pid %llu (%s): not checked: ", (unsigned long long)p->pid,
            p->argc ? p->argv[0] : "?");
    for (int i = 0; i < v->nunchecked; i++)
        fprintf(mem, "%s%s", i ? "; " : "", v->unchecked[i].text);
    return fclose(mem) == 0 ? 0 : -1;
}

/* Fills v's lists and figures from its analysis and matches. */
static int judge(const struct gate_options *o, struct dump_verdict *v)
{
    const struct analysis *a = v->a;
    size_t cap = (size_t)a->nsites * MT_KIND_COUNT + 1;
    v->reported = malloc(cap * sizeof *v->reported);
    v->suppressed = malloc(cap * sizeof *v->suppressed);
    if (!v->reported || !v->suppressed || judge_unchecked(o, v) != 0)
        return -1;
    /* An image replaced by exec: its blocks end with it, as under
     * valgrind, and no gate counts them. */
    int exec = a->summary.exit_how == MT_EXIT_EXEC;
    for (uint32_t i = 0; i < a->nsites && !exec; i++) {
        const struct site *s = &a->sites[i];
        for (uint32_t k = 0; k < MT_KIND_COUNT; k++) {
            if (!(o->kinds & (1u << k)) || (!s->kind_blocks[k] && !s->kind_bytes[k]))
                continue;
            struct leak_entry e = {i, k, suppression_of(v->m, i, k)};
            if (e.suppression >= 0)
                v->suppressed[v->nsuppressed++] = e;
            else
                v->reported[v->nreported++] = e;
        }
    }
    qsort_r(v->reported, v->nreported, sizeof *v->reported, by_bytes, (void *)a);
    qsort_r(v->suppressed, v->nsuppressed, sizeof *v->suppressed, by_bytes, (void *)a);
    /* from the totals, so blocks without a stack count too */
    for (int k = 0; k < MT_KIND_COUNT && !exec; k++)
        if (o->kinds & (1u << k)) {
            v->leaked_bytes += a->summary.kind_bytes[k];
            v->leaked_blocks += a->summary.kind_blocks[k];
        }
    if (!exec) {
        v->leaked_bytes -= v->m->total_bytes;
        v->leaked_blocks -= v->m->total_blocks;
    }
    v->peak_bytes = a->summary.totals.peak_bytes;
    v->fail_leaked = o->max_leaked >= 0 && v->leaked_bytes > (uint64_t)o->max_leaked;
    v->fail_blocks = o->max_leaked_blocks >= 0 && v->leaked_blocks > (uint64_t)o->max_leaked_blocks;
    v->fail_peak = o->max_peak >= 0 && v->peak_bytes > (uint64_t)o->max_peak;
    return 0;
}

/* ---- printing ----------------------------------------------------------- */

/* The innermost frames of a site, down to main at most (what is below it
 * is the C runtime's start-up, the same for every site). */
static void print_stack(FILE *out, const struct analysis *a, const struct site *s)
{
    const uint32_t *frames = site_frame_list(a, s);
    uint32_t depth = s->nframes;
    for (uint32_t k = 0; k < s->nframes; k++) {
        const char *fn = a->frames[frames[k]].function;
        if (fn && strcmp(fn, "main") == 0) {
            depth = k + 1;
            break;
        }
    }
    uint32_t n = depth < SHOWN_FRAMES ? depth : SHOWN_FRAMES;
    int width = 0;
    for (uint32_t k = 0; k < n; k++) {
        const char *fn = a->frames[frames[k]].function;
        int len = fn ? (int)strlen(fn) : 1;
        width = len > width ? len : width;
    }
    width = width > 40 ? 40 : width;
    if (s->nframes == 0)
        fputs("       (no stack)\n", out);
    for (uint32_t k = 0; k < n; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        char where[PATH_MAX + 64];
        gate_frame_where(f, where, sizeof where);
        char clean_fn[1024], clean_where[PATH_MAX + 256];
        fprintf(out, "       %-*s  %s%s\n", width,
                f->function ? text_clean(f->function, clean_fn, sizeof clean_fn) : "?",
                text_clean(where, clean_where, sizeof clean_where), f->inlined ? "  [inlined]" : "");
    }
    if (depth > n)
        fprintf(out, "       ... %u more frame%s\n", depth - n, depth - n == 1 ? "" : "s");
}

static void print_leaks(FILE *out, const struct analysis *a, const struct leak_entry *e, uint32_t n)
{
    char b1[32], b2[32];
    uint32_t shown = n < SHOWN_SITES ? n : SHOWN_SITES;
    for (uint32_t i = 0; i < shown; i++) {
        const struct site *s = &a->sites[e[i].site];
        fprintf(out, "  #%u %s bytes in %s block%s, %s\n", i + 1,
                fmt_count(b1, s->kind_bytes[e[i].kind]), fmt_count(b2, s->kind_blocks[e[i].kind]),
                s->kind_blocks[e[i].kind] == 1 ? "" : "s", leak_kind_names[e[i].kind]);
        print_stack(out, a, s);
    }
    if (n > shown)
        fprintf(out, "  ... %u more leak site%s (memtrace report --leaks shows them all)\n",
                n - shown, n - shown == 1 ? "" : "s");
}

static int by_peak(const void *x, const void *y, void *arg)
{
    const struct analysis *a = arg;
    int64_t p = site_peak_bytes(a, &a->sites[*(const uint32_t *)x]);
    int64_t q = site_peak_bytes(a, &a->sites[*(const uint32_t *)y]);
    if (p != q)
        return p < q ? 1 : -1;
    return *(const uint32_t *)x < *(const uint32_t *)y ? -1 : 1;
}

static void print_peak_sites(FILE *out, const struct analysis *a)
{
    uint32_t *v = malloc(((size_t)a->nsites + 1) * sizeof *v), n = 0;
    if (!v)
        return;
    for (uint32_t i = 0; i < a->nsites; i++)
        if (site_peak_bytes(a, &a->sites[i]) > 0)
            v[n++] = i;
    qsort_r(v, n, sizeof *v, by_peak, (void *)a);
    char b1[32], b2[32];
    fputs("  what held the heap at its peak:\n", out);
    for (uint32_t i = 0; i < n && i < SHOWN_PEAK_SITES; i++) {
        const struct site *s = &a->sites[v[i]];
        fprintf(out, "  #%u %s bytes in %s block%s\n", i + 1,
                fmt_count(b1, (uint64_t)site_peak_bytes(a, s)),
                fmt_count(b2, (uint64_t)site_peak_blocks(a, s)),
                site_peak_blocks(a, s) == 1 ? "" : "s");
        print_stack(out, a, s);
    }
    free(v);
}

/* The failure of one dump, as stderr shows it and the JUnit failure holds. */
static void print_failure(FILE *out, const struct gate_options *o, const struct dump_verdict *v)
{
    char name[512], kinds[80], b1[32], b2[32];
    if (v->fail_unchecked)
        fprintf(out, "memtrace: %s\n", v->unchecked_line);
    if (!v->fail_leaked && !v->fail_blocks && !v->fail_peak)
        return;
    gate_process_name(v->r, name, sizeof name);
    kinds_list(o->kinds, kinds, sizeof kinds);
    fprintf(out, "memtrace: gate failed: %s, dump %s\n", name, v->path);
    if (v->fail_leaked)
        fprintf(out, "  leaked %s bytes (%s), over --max-leaked %s\n",
                fmt_count(b1, v->leaked_bytes), kinds, fmt_count(b2, (uint64_t)o->max_leaked));
    if (v->fail_blocks)
        fprintf(out, "  leaked %s blocks (%s), over --max-leaked-blocks %s\n",
                fmt_count(b1, v->leaked_blocks), kinds,
                fmt_count(b2, (uint64_t)o->max_leaked_blocks));
    if (v->fail_peak)
        fprintf(out, "  peak %s bytes in use, over --max-peak %s\n", fmt_count(b1, v->peak_bytes),
                fmt_count(b2, (uint64_t)o->max_peak));
    if (v->fail_leaked || v->fail_blocks) {
        print_leaks(out, v->a, v->reported, v->nreported);
        uint64_t listed = 0;
        for (uint32_t i = 0; i < v->nreported; i++)
            listed += v->a->sites[v->reported[i].site].kind_blocks[v->reported[i].kind];
        if (listed < v->leaked_blocks)
            fprintf(out, "  and %s block%s recorded without a stack\n",
                    fmt_count(b1, v->leaked_blocks - listed),
                    v->leaked_blocks - listed == 1 ? "" : "s");
    }
    if (v->fail_peak)
        print_peak_sites(out, v->a);
}

static void print_suppressed(FILE *out, const struct gate_options *o, const struct dump_verdict *v)
{
    if (!v->m->total_blocks && !v->m->total_bytes)
        return;
    char name[512], kinds[80], b1[32], b2[32];
    gate_process_name(v->r, name, sizeof name);
    kinds_list(o->kinds, kinds, sizeof kinds);
    fprintf(out, "memtrace: %s: suppressed %s bytes in %s block%s (%s):\n", name,
            fmt_count(b1, v->m->total_bytes), fmt_count(b2, v->m->total_blocks),
            v->m->total_blocks == 1 ? "" : "s", kinds);
    for (uint32_t j = 0; j < v->set->n; j++) {
        if (!v->m->blocks[j] && !v->m->bytes[j])
            continue;
        const struct suppression *s = &v->set->items[j];
        fprintf(out, "  %s bytes in %s block%s: %s (%s:%d)\n", fmt_count(b1, v->m->bytes[j]),
                fmt_count(b2, v->m->blocks[j]), v->m->blocks[j] == 1 ? "" : "s", s->name, s->file,
                s->line);
    }
}

/* What could not be checked, accepted by --accept-unchecked: a warning. */
static void warn_unchecked(const struct dump_verdict *v)
{
    if (v->nunchecked && !v->fail_unchecked)
        fprintf(stderr, "memtrace: warning (--accept-unchecked): %s\n", v->unchecked_line);
}

/* ---- --gen-suppressions -------------------------------------------------- */

struct printed {
    char **items;
    uint32_t n, cap;
};

/* Whether text was printed before; remembers it. */
static int seen_before(struct printed *p, const char *text)
{
    for (uint32_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i], text) == 0)
            return 1;
    char *copy = strdup(text);
    if (!copy || array_grow((void **)&p->items, &p->cap, sizeof *p->items, p->n + 1ull) != 0) {
        free(copy);
        return 0;
    }
    p->items[p->n++] = copy;
    return 0;
}

/* The name of a generated valgrind entry: "definite leak in make_plain
 * (report_leaks.c:24)". */
static void leak_name(const struct analysis *a, const struct site *s, unsigned kind, char *buf,
                      size_t size)
{
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        if (!f->function)
            continue;
        if (f->file && f->line > 0)
            snprintf(buf, size, "%s leak in %s (%s:%d)", leak_kind_names[kind], f->function,
                     path_base_name(f->file), f->line);
        else
            snprintf(buf, size, "%s leak in %s", leak_kind_names[kind], f->function);
        return;
    }
    snprintf(buf, size, "%s leak", leak_kind_names[kind]);
}

static void generate(const struct gate_options *o, const struct dump_verdict *v,
                     struct printed *printed)
{
    const struct analysis *a = v->a;
    char name[512];
    gate_process_name(v->r, name, sizeof name);
    printf("# %s: %u leak%s\n", name, v->nreported, v->nreported == 1 ? "" : "s");
    for (uint32_t i = 0; i < v->nreported; i++) {
        const struct site *s = &a->sites[v->reported[i].site];
        unsigned kind = v->reported[i].kind;
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem)
            return;
        if (o->gen_suppressions == GEN_SUPPRESSIONS_VALGRIND) {
            char entry_name[1100];
            leak_name(a, s, kind, entry_name, sizeof entry_name);
            suppression_write_valgrind(mem, a, s, kind, entry_name);
        } else {
            char pattern[2048];
            if (suppression_lsan_pattern(a, s, pattern, sizeof pattern) == 0)
                fprintf(mem, "leak:%s\n", pattern);
            else
                fprintf(mem, "# a %s leak without a symbol or a module\n", leak_kind_names[kind]);
        }
        fclose(mem);
        if (text && !seen_before(printed, text))
            fputs(text, stdout);
        free(text);
    }
}

/* ---- the whole check ----------------------------------------------------- */

static void verdict_free(struct dump_verdict *v)
{
    free(v->reported);
    free(v->suppressed);
    free(v->details);
    free(v->unchecked_line);
    memset(v, 0, sizeof *v);
}

int gates_check_dumps(const struct gate_options *o, char *const *dumps, int ndumps)
{
    struct suppression_set set = {0};
    char error[1024];
    for (int i = 0; i < o->nsuppressions; i++)
        if (suppressions_load(&set, o->suppressions[i], error, sizeof error) != 0) {
            fprintf(stderr, "memtrace: %s\n", error);
            suppressions_free(&set);
            return -1;
        }
    struct ci_reports ci;
    if (ci_reports_begin(&ci, o) != 0) {
        suppressions_free(&set);
        return -1;
    }
    struct printed printed = {0};
    int failed = 0, errors = 0;
    for (int i = 0; i < ndumps; i++) {
        struct dump_reader r;
        struct analysis a;
        struct analysis_options ao = {0};
        struct suppression_matches m = {0};
        struct dump_verdict v = {.path = dumps[i], .set = &set};
        int opened = dump_open(&r, dumps[i]) == 0;
        if (!opened || analysis_run(&r, &ao, &a) != 0) {
            fprintf(stderr, "memtrace: %s\n", r.error);
            v.error = r.error;
            ci_reports_add(&ci, o, &v);
            if (opened)
                analysis_free(&a);
            dump_close(&r);
            errors++;
            continue;
        }
        v.r = &r;
        v.a = &a;
        v.m = &m;
        if (suppressions_apply(&set, &a, o->kinds, &m) != 0 || judge(o, &v) != 0) {
            fprintf(stderr, "memtrace: out of memory checking %s\n", dumps[i]);
            v.error = "out of memory";
            v.r = NULL;
            ci_reports_add(&ci, o, &v);
            errors++;
        } else {
            if (verdict_failed(&v)) {
                size_t len = 0;
                FILE *mem = open_memstream(&v.details, &len);
                if (mem) {
                    print_failure(mem, o, &v);
                    fclose(mem);
                    fputs(v.details, stderr);
                }
                failed++;
            }
            print_suppressed(stderr, o, &v);
            warn_unchecked(&v);
            if (o->gen_suppressions)
                generate(o, &v, &printed);
            ci_reports_add(&ci, o, &v);
        }
        if (a.summary.truncated && !v.nunchecked) /* else its line said so */
            fprintf(stderr,
                    "memtrace: %s is cut short (the traced process or the consumer "
                    "died); read up to its last whole record\n",
                    dumps[i]);
        verdict_free(&v);
        suppression_matches_free(&m);
        analysis_free(&a);
        dump_close(&r);
    }
    fflush(stdout);
    if (ci_reports_finish(&ci, o) != 0)
        errors++;
    for (uint32_t i = 0; i < printed.n; i++)
        free(printed.items[i]);
    free(printed.items);
    suppressions_free(&set);
    if (errors)
        return -1;
    return failed ? o->error_exitcode : 0;
}
