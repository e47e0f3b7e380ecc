/* The outputs of `memtrace timeline` (timeline_output.h): CSV rows, and
 * the SVG chart: heap in use as a filled step line, RSS as a line, both
 * against the time since the process started, on one byte axis. Self-contained: no script, no font or style
 * from the network. Tick values are 1, 2 or 5 times a power of ten of the
 * unit the axis is labelled in (B, KiB, MiB, GiB; ns, us, ms, s).
 */
#include "timeline_output.h"

#include <stdlib.h>

#include "text_format.h"
#include "xml_util.h"

#define WIDTH 960
#define HEIGHT 480
#define LEFT 84
#define RIGHT 24
#define TOP 64
#define BOTTOM 52
#define PLOT_W (WIDTH - LEFT - RIGHT)
#define PLOT_H (HEIGHT - TOP - BOTTOM)

#define HEAP_COLOUR "#d9480f"
#define RSS_COLOUR "#1c7ed6"
#define MICRO "\xc2\xb5" /* U+00B5 in UTF-8 */

/* ---- scales -------------------------------------------------------------- */

/* 1, 2 or 5 times a power of ten, about range / ticks (range > 0). */
static double nice_step(double range, int ticks)
{
    double raw = range / ticks, p = 1;
    while (p * 10 <= raw)
        p *= 10;
    while (p > raw)
        p /= 10;
    double f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

struct axis {
    double max;  /* the axis runs from 0 to max (in base units: ns, bytes) */
    double step; /* between ticks, in base units */
    double unit; /* labels are value / unit, followed by name */
    const char *name;
};

static struct axis time_axis(double max)
{
    static const double units[] = {1, 1e3, 1e6, 1e9};
    static const char *names[] = {"ns", MICRO "s", "ms", "s"};
    int u = 0;
    while (u < 3 && max >= units[u + 1])
        u++;
    struct axis a = {max, nice_step(max / units[u], 8) * units[u], units[u], names[u]};
    return a;
}

static struct axis byte_axis(double data_max)
{
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double unit = 1;
    int u = 0;
    while (u < 4 && data_max >= unit * 1024) {
        unit *= 1024;
        u++;
    }
    double step = nice_step(data_max / unit, 5) * unit;
    double top = step;
    while (top < data_max * 1.02) /* a little room above the highest point */
        top += step;
    struct axis a = {top, step, unit, names[u]};
    return a;
}

static double x_of(const struct axis *a, double t)
{
    return LEFT + PLOT_W * (t / a->max);
}
static double y_of(const struct axis *a, double v)
{
    return TOP + PLOT_H - PLOT_H * (v / a->max);
}

/* ---- text ---------------------------------------------------------------- */

/* A time for people: 12 ns, 3.456 us, 12.345 ms, 1.234 s (32 bytes). */
static const char *fmt_time(char *buf, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, 32, "%llu ns", (unsigned long long)ns);
    else if (ns < 1000000)
        snprintf(buf, 32, "%.3f " MICRO "s", ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, 32, "%.3f ms", ns / 1e6);
    else
        snprintf(buf, 32, "%.3f s", ns / 1e9);
    return buf;
}

/* ---- the chart ----------------------------------------------------------- */

static void axes(FILE *out, const struct axis *x, const struct axis *y)
{
    fputs("<g class=\"axes\" font-size=\"11\" fill=\"#444\">\n", out);
    for (int k = 0; k * y->step <= y->max * 1.0001; k++) {
        double v = k * y->step, py = y_of(y, v);
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e9ecef\"/>\n",
                LEFT, py, LEFT + PLOT_W, py);
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.4g %s</text>\n", LEFT - 6,
                py + 4, v / y->unit, y->name);
    }
    for (int k = 0; k * x->step <= x->max * 1.0001; k++) {
        double t = k * x->step, px = x_of(x, t);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#adb5bd\"/>\n", px,
                TOP + PLOT_H, px, TOP + PLOT_H + 4);
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.4g %s</text>\n", px,
                TOP + PLOT_H + 17, t / x->unit, x->name);
    }
    fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#495057\"/>\n", LEFT,
            TOP + PLOT_H, LEFT + PLOT_W, TOP + PLOT_H);
    fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#495057\"/>\n", LEFT, TOP,
            LEFT, TOP + PLOT_H);
    fprintf(
        out,
        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since the process started</text>\n",
        LEFT + PLOT_W / 2, HEIGHT - 10);
    fprintf(
        out,
        "<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">bytes</text>\n",
        TOP + PLOT_H / 2);
    fputs("</g>\n", out);
}

/* The heap as steps: it holds its value until the next point. */
static void heap_path(FILE *out, const struct timeline_row *rows, long n, const struct axis *x,
                      const struct axis *y, double end_ns, int closed)
{
    fprintf(out, "M%.1f %.1f", x_of(x, 0), y_of(y, 0));
    for (long i = 0; i < n; i++)
        if (!rows[i].is_rss)
            fprintf(out, "H%.1fV%.1f", x_of(x, (double)rows[i].time_ns),
                    y_of(y, (double)rows[i].heap_bytes));
    fprintf(out, "H%.1f", x_of(x, end_ns));
    if (closed)
        fprintf(out, "V%.1fZ", y_of(y, 0));
}

static void peak_marker(FILE *out, const struct timeline *t, const struct axis *x,
                        const struct axis *y)
{
    char bytes[32], count[32], blocks[32], when[32];
    double px = x_of(x, (double)t->peak_time_ns), py = y_of(y, (double)t->peak_bytes);
    fmt_bytes(bytes, t->peak_bytes);
    fmt_time(when, t->peak_time_ns);
    fprintf(out, "<g id=\"peak\" data-bytes=\"%llu\" data-blocks=\"%llu\" data-time-ns=\"%llu\">\n",
            (unsigned long long)t->peak_bytes, (unsigned long long)t->peak_blocks,
            (unsigned long long)t->peak_time_ns);
    fprintf(out, "<title>peak: %s bytes in %s blocks at %s</title>\n",
            fmt_count(count, t->peak_bytes), fmt_count(blocks, t->peak_blocks), when);
    fprintf(out,
            "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
            "stroke-dasharray=\"4 3\"/>\n",
            px, TOP, px, TOP + PLOT_H, HEAP_COLOUR);
    fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"white\"/>\n", px, py,
            HEAP_COLOUR);
    int right = px > LEFT + PLOT_W * 0.65;
    double ly = py - 9 < TOP + 12 ? TOP + 12 : py - 9;
    fprintf(out,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"12\" "
            "font-weight=\"bold\" fill=\"%s\">peak %s at %s</text>\n",
            right ? px - 9 : px + 9, ly, right ? "end" : "start", HEAP_COLOUR, bytes, when);
    fputs("</g>\n", out);
}

/* Each mark: a grey dashed line across the plot, its label written up
 * along it. */
static void mark_lines(FILE *out, const struct timeline *t, const struct axis *x)
{
    for (uint32_t i = 0; i < t->nmarks; i++) {
        const struct timeline_mark *m = &t->marks[i];
        char when[32];
        double px = x_of(x, (double)m->time_ns);
        fprintf(out, "<g class=\"mark\" data-time-ns=\"%llu\" data-label=\"",
                (unsigned long long)m->time_ns);
        xml_write_n(out, m->label, sizeof m->label);
        fputs("\">\n<title>mark ", out);
        xml_write_n(out, m->label, sizeof m->label);
        fprintf(out, " at %s</title>\n", fmt_time(when, m->time_ns));
        fprintf(out,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#868e96\" "
                "stroke-dasharray=\"2 3\"/>\n",
                px, TOP, px, TOP + PLOT_H);
        fprintf(out,
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#495057\" text-anchor=\"end\" "
                "transform=\"rotate(-90 %.1f %d)\">",
                px - 3, TOP + 4, px - 3, TOP + 4);
        xml_write_n(out, m->label, 64);
        fputs("</text>\n</g>\n", out);
    }
}

int timeline_write_csv(FILE *out, const struct timeline *t)
{
    struct timeline_row *rows;
    long n = timeline_rows(t, &rows);
    if (n < 0)
        return -1;
    fputs("time_ns,heap_bytes,heap_blocks,rss_bytes\n", out);
    for (long i = 0; i < n; i++) {
        fprintf(out, "%llu,%llu,%llu,", (unsigned long long)rows[i].time_ns,
                (unsigned long long)rows[i].heap_bytes, (unsigned long long)rows[i].heap_blocks);
        if (rows[i].has_rss)
            fprintf(out, "%llu", (unsigned long long)rows[i].rss_bytes);
        fputc('\n', out);
    }
    free(rows);
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

int timeline_write_svg(FILE *out, const struct timeline *t, const char *title)
{
    struct timeline_row *rows;
    long n = timeline_rows(t, &rows);
    if (n < 0)
        return -1;
    double end_ns = (double)t->duration_ns;
    for (long i = 0; i < n; i++)
        if ((double)rows[i].time_ns > end_ns)
            end_ns = (double)rows[i].time_ns;
    double data_max = (double)(t->peak_bytes > t->rss_max ? t->peak_bytes : t->rss_max);
    struct axis x = time_axis(end_ns > 1000 ? end_ns : 1000);
    struct axis y = byte_axis(data_max > 1 ? data_max : 1);
    while (x.max < end_ns * 1.0001 || x.max < x.step) /* end on a tick */
        x.max = ((uint64_t)(x.max / x.step) + 1) * x.step;

    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    fputs("<title>memtrace timeline</title>\n", out);
    fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", WIDTH, HEIGHT);
    fputs("<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">", out);
    xml_write(out, title ? title : "memtrace timeline");
    fputs("</text>\n", out);
    char b1[32], b2[32], b3[32], w1[32];
    fprintf(out,
            "<text x=\"12\" y=\"42\" font-size=\"12\" fill=\"#495057\">peak %s at %s; "
            "in use at the end %s; RSS max %s; %s%s</text>\n",
            fmt_bytes(b1, t->peak_bytes), fmt_time(w1, t->peak_time_ns),
            fmt_bytes(b2, t->final_bytes),
            t->rss_samples ? fmt_bytes(b3, t->rss_max) : "unknown (no sample)",
            t->truncated ? "dump cut short, " : "", "heap = blocks allocated and not yet freed");
    axes(out, &x, &y);

    fprintf(out, "<path id=\"heap-area\" fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" d=\"",
            HEAP_COLOUR);
    heap_path(out, rows, n, &x, &y, end_ns, 1);
    fprintf(out, "\"/>\n<path id=\"heap\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"",
            HEAP_COLOUR);
    heap_path(out, rows, n, &x, &y, end_ns, 0);
    fputs("\"/>\n", out);
    if (t->rss_samples) {
        fprintf(out,
                "<polyline id=\"rss\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                RSS_COLOUR);
        for (long i = 0; i < n; i++)
            if (rows[i].is_rss)
                fprintf(out, "%.1f,%.1f ", x_of(&x, (double)rows[i].time_ns),
                        y_of(&y, (double)rows[i].rss_bytes));
        fputs("\"/>\n", out);
    }
    mark_lines(out, t, &x);
    peak_marker(out, t, &x, &y);

    int lx = LEFT + PLOT_W - 200; /* legend */
    fprintf(out,
            "<g class=\"legend\" font-size=\"12\">\n"
            "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\" fill-opacity=\"0.4\" "
            "stroke=\"%s\"/><text x=\"%d\" y=\"%d\">heap in use</text>\n"
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>"
            "<text x=\"%d\" y=\"%d\">RSS%s</text>\n</g>\n",
            lx, TOP - 14, HEAP_COLOUR, HEAP_COLOUR, lx + 20, TOP - 5, lx + 110, TOP - 9, lx + 124,
            TOP - 9, RSS_COLOUR, lx + 130, TOP - 5, t->rss_samples ? "" : " (no sample)");
    fputs("</svg>\n", out);
    free(rows);
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}
