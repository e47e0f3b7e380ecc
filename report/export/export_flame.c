/* The text exports of `memtrace flamegraph`: folded stacks (flamegraph.pl's
 * input, also read by inferno and speedscope) and speedscope's JSON file
 * format (https://www.speedscope.app/file-format-schema.json). Both walk the
 * flame tree depth first, so a stack is written once however many sites
 * merged into it. The SVG is in export_flame_svg.c.
 */
#include "export_flame.h"

#include <stdlib.h>
#include <string.h>

#include "flame_tree.h"
#include "util.h"

#ifndef MEMTRACE_VERSION
#define MEMTRACE_VERSION "0.1.0"
#endif

static const char *metric_names[] = {"leaked", "peak", "allocated", "allocations", "temporary"};

int flame_metric_parse(const char *s, enum flame_metric *out)
{
    for (int m = FLAME_LEAKED; m <= FLAME_TEMPORARY; m++)
        if (strcmp(s, metric_names[m]) == 0) {
            *out = (enum flame_metric)m;
            return 0;
        }
    return -1;
}

const char *flame_metric_name(enum flame_metric m)
{
    return metric_names[m];
}

/* ---- folded -------------------------------------------------------------- */

int export_folded(FILE *out, const struct analysis *a, const struct flame_options *o)
{
    struct flame_tree t;
    if (flame_tree_build(&t, a, o->metric, NULL) != 0)
        return -1;
    uint32_t *order = flame_tree_preorder(&t);
    uint32_t *path = malloc(((size_t)t.max_depth + 1) * sizeof *path);
    if (!order || !path) {
        free(order), free(path);
        flame_tree_free(&t);
        return -1;
    }
    for (uint32_t i = 0; i < t.nnodes; i++) {
        const struct flame_node *n = &t.nodes[order[i]];
        path[n->depth] = order[i];
        uint64_t self = flame_self_value(&t, n);
        if (n->depth == 0 || self == 0)
            continue;
        for (uint32_t d = 1; d <= n->depth; d++) {
            if (d > 1)
                fputc(';', out);
            fputs(t.names[t.nodes[path[d]].name].text, out);
        }
        fprintf(out, " %llu\n", (unsigned long long)self);
    }
    free(order), free(path);
    flame_tree_free(&t);
    return 0;
}

/* ---- speedscope ---------------------------------------------------------- */

/* Writes s cleaned (valid UTF-8, no control characters) as a JSON string. */
static void json_clean_string(FILE *out, const char *s, size_t max)
{
    char *clean = flame_clean_text(s, max);
    json_write_string(out, clean ? clean : "?");
    free(clean);
}

/* The program's name for titles: its argv[0], else its executable. */
static const char *program_name(const struct dump_reader *r)
{
    if (r->process.argc > 0 && r->process.argv && r->process.argv[0])
        return path_base_name(r->process.argv[0]);
    return r->process.exe ? path_base_name(r->process.exe) : "program";
}

/* One sampled profile: every node whose own figure (bytes or blocks) is
 * non-zero is a sample, its stack the name ids below the root (frame index
 * = name id - 1). */
static void speedscope_profile(FILE *out, const struct flame_tree *t, const uint32_t *order,
                               uint32_t *path, int bytes, const char *title)
{
    const struct flame_node *root = &t->nodes[0];
    fputs("{\"type\": \"sampled\", \"name\": ", out);
    json_clean_string(out, title, 1024);
    fprintf(out, ", \"unit\": \"%s\", \"startValue\": 0, \"endValue\": %llu,\n  \"samples\": [",
            bytes ? "bytes" : "none", (unsigned long long)(bytes ? root->bytes : root->blocks));
    int first = 1;
    for (uint32_t i = 0; i < t->nnodes; i++) {
        const struct flame_node *n = &t->nodes[order[i]];
        path[n->depth] = order[i];
        if (n->depth == 0 || (bytes ? n->self_bytes : n->self_blocks) == 0)
            continue;
        fputs(first ? "\n   [" : ",\n   [", out);
        first = 0;
        for (uint32_t d = 1; d <= n->depth; d++)
            fprintf(out, d > 1 ? ",%u" : "%u", t->nodes[path[d]].name - 1);
        fputc(']', out);
    }
    fputs("],\n  \"weights\": [", out);
    first = 1;
    for (uint32_t i = 0; i < t->nnodes; i++) {
        const struct flame_node *n = &t->nodes[order[i]];
        uint64_t w = bytes ? n->self_bytes : n->self_blocks;
        if (n->depth == 0 || w == 0)
            continue;
        fprintf(out, first ? "%llu" : ",%llu", (unsigned long long)w);
        first = 0;
    }
    fputs("]}", out);
}

int export_speedscope(FILE *out, const struct dump_reader *r, const struct analysis *a,
                      const struct flame_options *o)
{
    static const char *figure_names[][2] = {
        [FLAME_LEAKED] = {"leaked bytes", "leaked blocks"},
        [FLAME_PEAK] = {"bytes at the peak", "blocks at the peak"},
        [FLAME_ALLOCATED] = {"bytes allocated", "allocations"},
        [FLAME_ALLOCATIONS] = {"bytes allocated", "allocations"},
        [FLAME_TEMPORARY] = {"temporary bytes", "temporary allocations"},
    };
    struct flame_tree t;
    if (flame_tree_build(&t, a, o->metric, NULL) != 0)
        return -1;
    uint32_t *order = flame_tree_preorder(&t);
    uint32_t *path = malloc(((size_t)t.max_depth + 1) * sizeof *path);
    if (!order || !path) {
        free(order), free(path);
        flame_tree_free(&t);
        return -1;
    }
    const char *prog = program_name(r);
    char title[512];
    snprintf(title, sizeof title, "%.200s: %s", prog, flame_metric_name(o->metric));
    fputs("{\"$schema\": \"https://www.speedscope.app/file-format-schema.json\",\n \"name\": ",
          out);
    json_clean_string(out, title, sizeof title);
    fputs(", \"exporter\": \"memtrace " MEMTRACE_VERSION "\", \"activeProfileIndex\": 0,\n"
          " \"shared\": {\"frames\": [",
          out);
    for (uint32_t i = 1; i < t.nnames; i++) {
        fputs(i > 1 ? ",\n  {\"name\": " : "\n  {\"name\": ", out);
        json_write_string(out, t.names[i].text);
        if (t.names[i].file) {
            fputs(", \"file\": ", out);
            json_clean_string(out, t.names[i].file, 4096);
        }
        fputc('}', out);
    }
    fputs("]},\n \"profiles\": [\n ", out);
    /* the primary figure first: the one speedscope opens */
    for (int k = 0; k < 2; k++) {
        int bytes = k == 0 ? t.primary_is_bytes : !t.primary_is_bytes;
        snprintf(title, sizeof title, "%.200s: %s", prog, figure_names[o->metric][bytes ? 0 : 1]);
        if (k)
            fputs(",\n ", out);
        speedscope_profile(out, &t, order, path, bytes, title);
    }
    fputs("]}\n", out);
    free(order), free(path);
    flame_tree_free(&t);
    return 0;
}
