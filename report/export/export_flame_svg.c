/* The SVG flame graph of `memtrace flamegraph --format svg`: one file, its
 * style and script inside (flame_template.h), nothing fetched. Frames are
 * drawn here, in C, as plain <rect>s with a <text> label where one fits, so
 * the picture shows even where scripts do not run (an <img>, an image
 * viewer). What the script needs to know of each frame (name, module,
 * bytes, blocks) is one JSON object, FG, at the end; the script adds
 * tooltips, zoom and search.
 *
 * Size and load time are bounded whatever the profile. Chromium spends some
 * 20 microseconds on each element it loads, so: a frame narrower than a
 * pixel is left out (its parent's width still counts it), as flamegraph.pl's
 * --minwidth does, and when more than FRAME_BUDGET frames (or SIZE_BUDGET
 * bytes) remain, only the widest are drawn, shallower first among equals,
 * so that every frame drawn has its parent drawn.
 */
#include "export_flame.h"

#include <stdlib.h>
#include <string.h>

#include "flame_template.h"
#include "flame_tree.h"
#include "text_format.h"
#include "util.h"
#include "xml_util.h"

#define WIDTH 1200
#define PAD 10
#define FRAME_HEIGHT 16
#define TOP 70    /* the frames start below the title, subtitle and legend */
#define BOTTOM 34 /* room for the details line */
#define FONT_SIZE 12
#define CHAR_WIDTH 0.62 /* of FONT_SIZE: DejaVu Sans Mono is 0.602 */
#define FRAME_BUDGET 25000
#define SIZE_BUDGET (8u << 20)

static const char *module_labels[FLAME_MODULE_KINDS] = {
    "program", "libraries", "libc and C++ runtime", "Python", "unknown", "all"};
/* how the figures name a block, per metric (a count is of allocations) */
static const char *block_words[] = {"block", "block", "allocation", "allocation",
                                    "temporary allocation"};
static const char *metric_titles[] = {"leaked bytes (in use at exit)", "bytes at the peak",
                                      "bytes allocated", "allocations", "temporary allocations"};

/* ---- text ---------------------------------------------------------------- */

static void xml_write_clean(FILE *out, const char *s, size_t max)
{
    char *clean = flame_clean_text(s, max);
    if (clean)
        xml_write(out, clean);
    free(clean);
}

/* Writes a cleaned string as a JSON string that can sit in a CDATA section
 * and a script: '<', '>' and '&' as \u escapes, so "]]>" and "</script"
 * never appear. */
static void js_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == '<' || c == '>' || c == '&')
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* The label that fits w pixels: the name, or its start and "..", or none
 * (returns the number of bytes of name to write; *dots says whether ".."
 * follows). Cut on a UTF-8 character boundary. */
static size_t label_fit(const char *name, size_t len, double w, int *dots)
{
    long fit = (long)((w - 6) / (FONT_SIZE * CHAR_WIDTH));
    *dots = 0;
    if (fit < 3)
        return 0;
    if ((size_t)fit >= len)
        return len;
    size_t n = (size_t)fit - 2;
    while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
        n--;
    *dots = 1;
    return n;
}

/* ---- colours ------------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* A colour of the module's family, varied by name so that neighbours
 * differ but a function keeps its colour everywhere. */
static void frame_colour(uint32_t module, const char *name, char out[8])
{
    uint64_t h = name_hash(name);
    double v1 = (double)(h & 0xffff) / 65535.0, v2 = (double)((h >> 16) & 0xffff) / 65535.0;
    int r, g, b;
    switch (module) {
    case FLAME_MODULE_PROGRAM:
        r = 225 + (int)(30 * v1), g = 80 + (int)(110 * v2), b = 40 + (int)(30 * v1);
        break;
    case FLAME_MODULE_LIBRARY:
        r = 60 + (int)(50 * v2), g = 180 + (int)(40 * v1), b = 190 + (int)(40 * v1);
        break;
    case FLAME_MODULE_RUNTIME:
        r = 130 + (int)(40 * v1), g = 135 + (int)(35 * v1), b = 225 + (int)(30 * v2);
        break;
    case FLAME_MODULE_PYTHON:
        r = 70 + (int)(60 * v1), g = 180 + (int)(50 * v2), b = 70 + (int)(50 * v1);
        break;
    case FLAME_MODULE_ROOT:
        r = g = b = 200;
        break;
    default:
        r = g = b = 170 + (int)(40 * v1);
        break;
    }
    snprintf(out, 8, "#%02x%02x%02x", r & 0xff, g & 0xff, b & 0xff);
}

/* The figures of a node, as the script's tooltip also words them. */
static void write_figures(FILE *out, const struct flame_tree *t, enum flame_metric m,
                          const struct flame_node *n)
{
    char human[32], exact[32], count[32];
    fmt_bytes(human, n->bytes);
    fmt_count(exact, n->bytes);
    fmt_count(count, n->blocks);
    uint64_t total = flame_value(t, &t->nodes[0]);
    double share = total ? 100.0 * (double)flame_value(t, n) / (double)total : 0;
    const char *plural = n->blocks == 1 ? "" : "s";
    if (t->primary_is_bytes)
        fprintf(out, "%s (%s bytes) in %s %s%s, %.2f%%", human, exact, count, block_words[m],
                plural, share);
    else
        fprintf(out, "%s %s%s, %s (%s bytes), %.2f%%", count, block_words[m], plural, human, exact,
                share);
}

/* ---- choosing the frames ------------------------------------------------- */

struct pick {
    uint64_t value;
    uint32_t depth, id;
};

static int by_width(const void *x, const void *y)
{
    const struct pick *a = x, *b = y;
    if (a->value != b->value)
        return a->value > b->value ? -1 : 1;
    if (a->depth != b->depth)
        return a->depth < b->depth ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Bytes a frame adds to the file: its rect, its data, its label, and its
 * name the first time. */
static uint64_t frame_cost(const struct flame_tree *t, const struct flame_node *n, double width,
                           unsigned char *name_seen)
{
    uint64_t cost = 120;
    uint32_t len = t->names[n->name].len;
    if (width >= 28)
        cost += 50 + (uint64_t)(width / 7 < len ? width / 7 : len);
    if (!name_seen[n->name]) {
        name_seen[n->name] = 1;
        cost += 2 * (uint64_t)len + 8;
    }
    return cost;
}

/* Marks in shown[] the frames to draw; returns how many, or -1 when out of
 * memory. *cut says whether the budget left out frames a pixel wide or more. */
static long choose_frames(const struct flame_tree *t, double per_unit, unsigned char *shown,
                          int *cut)
{
    unsigned char *seen = calloc((size_t)t->nnames + 1, 1);
    struct pick *picks = malloc(((size_t)t->nnodes + 1) * sizeof *picks);
    if (!seen || !picks) {
        free(seen), free(picks);
        return -1;
    }
    uint32_t n = 0;
    for (uint32_t id = 0; id < t->nnodes; id++) {
        uint64_t v = flame_value(t, &t->nodes[id]);
        if ((double)v * per_unit >= 1)
            picks[n++] = (struct pick){v, t->nodes[id].depth, id};
    }
    qsort(picks, n, sizeof *picks, by_width);
    uint64_t size = 0;
    uint32_t kept = 0;
    for (; kept < n && kept < FRAME_BUDGET; kept++) {
        const struct flame_node *node = &t->nodes[picks[kept].id];
        size += frame_cost(t, node, (double)picks[kept].value * per_unit, seen);
        if (size > SIZE_BUDGET)
            break;
        shown[picks[kept].id] = 1;
    }
    *cut = kept < n;
    free(seen), free(picks);
    return kept;
}

/* ---- writing ------------------------------------------------------------- */

static void write_header(FILE *out, const struct dump_reader *r, const struct flame_tree *t,
                         enum flame_metric m, long drawn, int cut, const int *present)
{
    fprintf(out, "<text id=\"title\" x=\"%d\" y=\"24\">Flame graph: %s</text>\n", WIDTH / 2,
            metric_titles[m]);
    fprintf(out, "<text id=\"unzoom\" class=\"button hide\" x=\"%d\" y=\"24\">Reset Zoom</text>\n",
            PAD);
    fprintf(out,
            "<text id=\"search\" class=\"button\" x=\"%d\" y=\"24\" "
            "style=\"text-anchor: end\">Search</text>\n",
            WIDTH - PAD);
    fprintf(out, "<text class=\"sub\" x=\"%d\" y=\"42\">", WIDTH / 2);
    size_t used = 0;
    for (uint64_t i = 0; i < r->process.argc && used < 100; i++) {
        const char *arg = r->process.argv[i] ? r->process.argv[i] : "";
        if (i)
            fputc(' ', out);
        xml_write_clean(out, arg, 100 - used);
        used += strlen(arg) + 1;
    }
    if (used >= 100)
        fputs(" ...", out);
    fprintf(out, " (pid %llu): ", (unsigned long long)r->process.pid);
    write_figures(out, t, m, &t->nodes[0]);
    if (cut)
        fprintf(out, "; the %ld widest frames shown", drawn);
    fputs("</text>\n", out);
    int x = PAD;
    for (int k = 0; k < FLAME_MODULE_KINDS; k++) {
        if (!present[k] || k == FLAME_MODULE_ROOT)
            continue;
        char colour[8];
        frame_colour((uint32_t)k, "legend", colour);
        fprintf(out,
                "<rect x=\"%d\" y=\"50\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                "<text x=\"%d\" y=\"60\">%s</text>\n",
                x, colour, x + 16, module_labels[k]);
        x += 16 + (int)((double)strlen(module_labels[k]) * FONT_SIZE * CHAR_WIDTH) + 18;
    }
}

static void write_frame(FILE *out, const struct flame_tree *t, const struct flame_node *n, double x,
                        double w, double y)
{
    const struct flame_name *name = &t->names[n->name];
    char colour[8];
    frame_colour(n->module, name->text, colour);
    fprintf(out, "<rect x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%d\" fill=\"%s\"/>", x, y, w,
            FRAME_HEIGHT - 1, colour);
    int dots;
    size_t fit = label_fit(name->text, name->len, w, &dots);
    if (fit || dots) {
        fprintf(out, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + FRAME_HEIGHT - 4.5);
        xml_write_n(out, name->text, fit);
        fputs(dots ? "..</text>" : "</text>", out);
    }
    fputc('\n', out);
}

/* FG: the layout, the metric, the names and modules, and per frame drawn
 * (in document order) name, module (-1: none), kind, bytes, blocks. */
static int write_data(FILE *out, const struct flame_tree *t, enum flame_metric m,
                      const uint32_t *order, const unsigned char *shown, uint32_t depth,
                      int inverted)
{
    const char **modules = NULL;
    uint32_t nmodules = 0, modules_cap = 0;
    int32_t *module_of = malloc(((size_t)t->nnodes + 1) * sizeof *module_of);
    if (!module_of)
        return -1;
    for (uint32_t i = 0; i < t->nnodes; i++) { /* few modules: a linear search will do */
        const char *path = t->nodes[order[i]].module_path;
        int32_t k = -1;
        if (shown[order[i]] && path) {
            for (k = (int32_t)nmodules - 1; k >= 0 && strcmp(modules[k], path) != 0; k--)
                ;
            if (k < 0) {
                if (array_grow((void **)&modules, &modules_cap, sizeof *modules,
                               (uint64_t)nmodules + 1)) {
                    free(module_of), free(modules);
                    return -1;
                }
                modules[nmodules] = path;
                k = (int32_t)nmodules++;
            }
        }
        module_of[order[i]] = k;
    }
    fprintf(out,
            "var FG = {\"width\": %d, \"pad\": %d, \"frameHeight\": %d, \"top\": %d, "
            "\"maxDepth\": %u, \"inverted\": %s, \"fontSize\": %d, \"charWidth\": %.2f,\n"
            "\"metric\": \"%s\", \"primaryBytes\": %s, \"blockWord\": \"%s\", \"total\": %llu,\n"
            "\"kinds\": [",
            WIDTH, PAD, FRAME_HEIGHT, TOP, depth, inverted ? "true" : "false", FONT_SIZE,
            CHAR_WIDTH, flame_metric_name(m), t->primary_is_bytes ? "true" : "false",
            block_words[m], (unsigned long long)flame_value(t, &t->nodes[0]));
    for (int k = 0; k < FLAME_MODULE_KINDS; k++)
        fprintf(out, k ? ", \"%s\"" : "\"%s\"", module_labels[k]);
    fputs("],\n\"modules\": [", out);
    for (uint32_t k = 0; k < nmodules; k++) {
        char *clean = flame_clean_text(path_base_name(modules[k]), 256);
        if (k)
            fputs(", ", out);
        js_string(out, clean ? clean : "?");
        free(clean);
    }
    fputs("],\n\"names\": [", out);
    for (uint32_t k = 0; k < t->nnames; k++) {
        if (k)
            fputs(k % 16 ? ", " : ",\n", out);
        js_string(out, t->names[k].text);
    }
    fputs("],\n\"frames\": [", out);
    int first = 1;
    for (uint32_t i = 0; i < t->nnodes; i++) {
        const struct flame_node *n = &t->nodes[order[i]];
        if (!shown[order[i]])
            continue;
        fprintf(out, "%s%u,%d,%u,%llu,%llu", first ? "\n" : ",\n", n->name, module_of[order[i]],
                n->module, (unsigned long long)n->bytes, (unsigned long long)n->blocks);
        first = 0;
    }
    fputs("]};\n", out);
    free(module_of), free(modules);
    return 0;
}

int export_flame_svg(FILE *out, const struct dump_reader *r, const struct analysis *a,
                     const struct flame_options *o)
{
    struct flame_tree t;
    if (flame_tree_build(&t, a, o->metric, r->process.exe) != 0)
        return -1;
    uint32_t *order = flame_tree_preorder(&t);
    uint64_t *start = calloc((size_t)t.nnodes + 1, sizeof *start);
    unsigned char *shown = calloc((size_t)t.nnodes + 1, 1);
    uint64_t total = flame_value(&t, &t.nodes[0]);
    double per_unit = total ? (WIDTH - 2 * PAD) / (double)total : 0;
    int cut = 0;
    long drawn = order && start && shown && total ? choose_frames(&t, per_unit, shown, &cut) : 0;
    if (!order || !start || !shown || drawn < 0) {
        free(order), free(start), free(shown);
        flame_tree_free(&t);
        return -1;
    }
    uint32_t depth = 0;
    int present[FLAME_MODULE_KINDS] = {0};
    for (uint32_t i = 0; i < t.nnodes; i++) {
        const struct flame_node *n = &t.nodes[order[i]];
        if (!shown[order[i]])
            continue;
        present[n->module] = 1;
        if (n->depth > depth)
            depth = n->depth;
        uint64_t at = start[order[i]]; /* children laid left to right, by name */
        for (uint32_t c = 0; c < n->nchildren; c++) {
            uint32_t id = t.children[n->first_child + c];
            start[id] = at;
            at += flame_value(&t, &t.nodes[id]);
        }
    }
    int height = TOP + (int)(depth + 1) * FRAME_HEIGHT + BOTTOM;

    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
            "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\">\n"
            "<!-- memtrace flame graph: %ld frames drawn; frames narrower than a pixel%s are "
            "left out -->\n"
            "<style type=\"text/css\"><![CDATA[\n%s]]></style>\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f8f8f4\"/>\n",
            WIDTH, height, WIDTH, height, drawn, cut ? ", and the narrowest past the budget," : "",
            flame_style, WIDTH, height);
    write_header(out, r, &t, o->metric, drawn, cut, present);
    if (!total)
        fprintf(out, "<text class=\"sub\" x=\"%d\" y=\"%d\">No %s in this dump.</text>\n",
                WIDTH / 2, TOP + 12, metric_titles[o->metric]);
    fputs("<g id=\"frames\">\n", out);
    for (uint32_t i = 0; i < t.nnodes; i++) {
        const struct flame_node *n = &t.nodes[order[i]];
        if (!shown[order[i]])
            continue;
        double y = o->inverted ? TOP + (double)n->depth * FRAME_HEIGHT
                               : TOP + (double)(depth - n->depth) * FRAME_HEIGHT;
        write_frame(out, &t, n, PAD + (double)start[order[i]] * per_unit,
                    (double)flame_value(&t, n) * per_unit, y);
    }
    fputs("</g>\n", out);
    fprintf(out, "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n", PAD, height - 12);
    fprintf(out, "<text id=\"matched\" x=\"%d\" y=\"%d\" style=\"text-anchor: end\"></text>\n",
            WIDTH - PAD, height - 12);
    fputs(flame_tooltip, out);
    fputs("<script type=\"text/ecmascript\"><![CDATA[\n", out);
    int failed = write_data(out, &t, o->metric, order, shown, depth, o->inverted);
    fprintf(out, "%s]]></script>\n</svg>\n", flame_script);
    free(order), free(start), free(shown);
    flame_tree_free(&t);
    return failed;
}
