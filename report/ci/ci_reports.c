/* JUnit XML and SARIF 2.1.0 writers (see ci_reports.h). Everything written
 * is escaped for its format and made valid UTF-8 (paths and symbols come
 * from the traced program and may be anything). */
#define _GNU_SOURCE
#include "ci_reports.h"
#include "xml_util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/leak_kinds.h"
#include "text_format.h"
#include "util.h"

#ifndef MEMTRACE_VERSION
#define MEMTRACE_VERSION "0.1.0"
#endif

/* Leak sites named in a JUnit failure message; the body has the rest. */
#define MESSAGE_SITES 10

/* ---- text encodings ----------------------------------------------------- */

/* XML character data, newlines kept as they are. */
static void xml_write_text(FILE *out, const char *text)
{
    for (const char *line = text ? text : ""; *line;) {
        size_t len = strcspn(line, "\n");
        char *copy = strndup(line, len);
        if (copy)
            xml_write(out, copy);
        free(copy);
        line += len;
        if (*line == '\n') {
            fputc('\n', out);
            line++;
        }
    }
}

/* A JSON string, invalid UTF-8 turned into U+FFFD. */
static void json_string(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        int n = utf8_length(c);
        if (n == 0) {
            fputs("\\ufffd", out);
            c++;
            continue;
        }
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(out, "\\u%04x", *c);
        else
            fwrite(c, 1, (size_t)n, out);
        c += n;
    }
    fputc('"', out);
}

/* A path as a URI reference: percent-encoded, "file://" when absolute. */
static void json_uri(FILE *out, const char *path, int absolute)
{
    static const char hex[] = "0123456789ABCDEF";
    fputs(absolute ? "\"file://" : "\"", out);
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("-._~/", *c))
            fputc(*c, out);
        else
            fprintf(out, "%%%c%c", hex[*c >> 4], hex[*c & 15]);
    }
    fputc('"', out);
}

/* ---- begin, finish ------------------------------------------------------- */

int ci_reports_begin(struct ci_reports *c, const struct gate_options *o)
{
    memset(c, 0, sizeof *c);
    if ((o->junit && !(c->junit = open_memstream(&c->junit_text, &c->junit_len))) ||
        (o->sarif && (!(c->sarif = open_memstream(&c->sarif_text, &c->sarif_len)) ||
                      !(c->notes = open_memstream(&c->notes_text, &c->notes_len))))) {
        fprintf(stderr, "memtrace: out of memory\n");
        ci_reports_finish(c, &(struct gate_options){0});
        return -1;
    }
    return 0;
}

static const char *const rule_names[MT_KIND_COUNT] = {
    "DefiniteLeak", "IndirectLeak", "PossibleLeak", "ReachableAtExit", "UnscannedLeak"};
static const char *const rule_short[MT_KIND_COUNT] = {
    "Memory definitely lost: no pointer to the block remains.",
    "Memory indirectly lost: reached only through lost blocks.",
    "Memory possibly lost: reached only through pointers into its interior.",
    "Memory still reachable at exit: a pointer to its start remains.",
    "Memory still allocated when the process died, not scanned for reachability."};
static const char *const rule_full[MT_KIND_COUNT] = {
    "A heap block allocated and never freed, with no pointer to its start or inside it left "
    "in the roots (data, bss, stacks, registers, TLS) or in the blocks reachable from them: "
    "it can never be freed.",
    "A heap block never freed that is reached only through blocks that are themselves lost; "
    "it goes away when the block holding it is freed.",
    "A heap block never freed that is reached only through pointers into its interior, not "
    "to its start.",
    "A heap block never freed to which a pointer remained reachable at exit.",
    "A heap block still allocated when the process died (by a signal, SIGKILL or the OOM "
    "killer) before its reachability could be scanned."};
static const char *const kind_levels[MT_KIND_COUNT] = {"error", "error", "warning", "note",
                                                       "warning"};
#define PEAK_RULE MT_KIND_COUNT
#define UNCHECKED_RULE (MT_KIND_COUNT + 1)

static void sarif_rules(FILE *out)
{
    for (int k = 0; k < MT_KIND_COUNT; k++) {
        fprintf(out,
                "%s\n            {\"id\": \"memtrace/leak/%s\", \"name\": \"%s\",\n"
                "             \"shortDescription\": {\"text\": ",
                k ? "," : "", leak_kind_names[k], rule_names[k]);
        json_string(out, rule_short[k]);
        fputs("},\n             \"fullDescription\": {\"text\": ", out);
        json_string(out, rule_full[k]);
        fprintf(out,
                "},\n             \"defaultConfiguration\": {\"level\": \"%s\"},\n"
                "             \"properties\": {\"tags\": [\"memory\", \"leak\"]}}",
                kind_levels[k]);
    }
    fputs(",\n            {\"id\": \"memtrace/peak\", \"name\": \"HeapPeak\",\n"
          "             \"shortDescription\": {\"text\": \"The heap in use peaked above "
          "--max-peak.\"},\n"
          "             \"fullDescription\": {\"text\": \"The bytes in use on the heap at its "
          "peak went over the limit set with --max-peak; the location is the stack that held "
          "the most of them.\"},\n"
          "             \"defaultConfiguration\": {\"level\": \"error\"},\n"
          "             \"properties\": {\"tags\": [\"memory\"]}}",
          out);
    fputs(",\n            {\"id\": \"memtrace/unchecked\", \"name\": \"NotChecked\",\n"
          "             \"shortDescription\": {\"text\": \"memtrace could not check this "
          "process.\"},\n"
          "             \"fullDescription\": {\"text\": \"The process's trace is incomplete "
          "(events lost, a dump cut short), or it left blocks in use that no reachability scan "
          "classified (killed by a signal, ended by a raw exit_group, --leak-check summary or "
          "none, a scan that failed): the gates cannot judge it. The message says what and "
          "why; --accept-unchecked accepts it.\"},\n"
          "             \"defaultConfiguration\": {\"level\": \"error\"},\n"
          "             \"properties\": {\"tags\": [\"memory\", \"leak\"]}}",
          out);
}

static int write_file(const char *path, const char *what, const char *head, const char *body,
                      size_t body_len, const char *tail)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(head, f) < 0 || (body_len && fwrite(body, 1, body_len, f) != body_len) ||
        fputs(tail, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "memtrace: cannot write the %s file %s: %s\n", what, path, strerror(errno));
        return -1;
    }
    return 0;
}

static int finish_junit(struct ci_reports *c, const char *path)
{
    char *head = NULL, tail[] = "  </testsuite>\n</testsuites>\n";
    if (asprintf(&head,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<testsuites name=\"memtrace\" tests=\"%u\" failures=\"%u\" errors=\"%u\" "
                 "time=\"%.3f\">\n"
                 "  <testsuite name=\"memtrace\" tests=\"%u\" failures=\"%u\" errors=\"%u\" "
                 "skipped=\"0\" time=\"%.3f\">\n",
                 c->tests, c->failures, c->errors, c->seconds, c->tests, c->failures, c->errors,
                 c->seconds) < 0) {
        fprintf(stderr, "memtrace: out of memory\n");
        return -1;
    }
    int rc = write_file(path, "JUnit", head, c->junit_text, c->junit_len, tail);
    free(head);
    return rc;
}

static int finish_sarif(struct ci_reports *c, const char *path)
{
    char *head = NULL, *tail = NULL, cwd[PATH_MAX];
    size_t head_len = 0, tail_len = 0;
    FILE *h = open_memstream(&head, &head_len);
    FILE *t = h ? open_memstream(&tail, &tail_len) : NULL;
    if (!h || !t) {
        if (h)
            fclose(h);
        free(head);
        fprintf(stderr, "memtrace: out of memory\n");
        return -1;
    }
    fputs("{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n"
          "  \"version\": \"2.1.0\",\n  \"runs\": [\n    {\n"
          "      \"tool\": {\"driver\": {\"name\": \"memtrace\", \"version\": \"" MEMTRACE_VERSION
          "\",\n          \"semanticVersion\": \"" MEMTRACE_VERSION "\",\n"
          "          \"rules\": [",
          h);
    sarif_rules(h);
    fputs("]}},\n", h);
    if (getcwd(cwd, sizeof cwd)) {
        size_t len = strlen(cwd);
        if (len && cwd[len - 1] != '/' && len + 1 < sizeof cwd)
            strcat(cwd, "/");
        fputs("      \"originalUriBaseIds\": {\"SRCROOT\": {\"uri\": ", h);
        json_uri(h, cwd, 1);
        fputs("}},\n", h);
    }
    fprintf(h,
            "      \"invocations\": [{\"executionSuccessful\": %s, "
            "\"toolExecutionNotifications\": [",
            c->nnotes ? "false" : "true");
    if (c->notes) {
        fclose(c->notes);
        c->notes = NULL;
    }
    if (c->notes_len)
        fwrite(c->notes_text, 1, c->notes_len, h);
    fputs("]}],\n      \"results\": [", h);
    fclose(h);
    fputs("\n      ]\n    }\n  ]\n}\n", t);
    fclose(t);
    int rc = write_file(path, "SARIF", head, c->sarif_text, c->sarif_len, tail);
    free(head);
    free(tail);
    return rc;
}

int ci_reports_finish(struct ci_reports *c, const struct gate_options *o)
{
    int rc = 0;
    if (c->junit) {
        fclose(c->junit);
        c->junit = NULL;
        if (o->junit && finish_junit(c, o->junit) != 0)
            rc = -1;
    }
    if (c->sarif) {
        fclose(c->sarif);
        c->sarif = NULL;
        if (o->sarif && finish_sarif(c, o->sarif) != 0)
            rc = -1;
    }
    if (c->notes)
        fclose(c->notes);
    free(c->junit_text);
    free(c->sarif_text);
    free(c->notes_text);
    memset(c, 0, sizeof *c);
    return rc;
}

/* ---- JUnit --------------------------------------------------------------- */

/* The one-line failure message: what went over, and the first sites. */
static void failure_message(FILE *out, const struct gate_options *o, const struct dump_verdict *v)
{
    char b1[32], b2[32], where[1024];
    const char *sep = "";
    if (v->fail_unchecked) {
        fputs(v->unchecked_line, out);
        sep = "; ";
    }
    if (v->fail_leaked) {
        fprintf(out, "leaked %s bytes, over --max-leaked %s", fmt_count(b1, v->leaked_bytes),
                fmt_count(b2, (uint64_t)o->max_leaked));
        sep = "; ";
    }
    if (v->fail_blocks) {
        fprintf(out, "%sleaked %s blocks, over --max-leaked-blocks %s", sep,
                fmt_count(b1, v->leaked_blocks), fmt_count(b2, (uint64_t)o->max_leaked_blocks));
        sep = "; ";
    }
    if (v->fail_peak)
        fprintf(out, "%speak %s bytes, over --max-peak %s", sep, fmt_count(b1, v->peak_bytes),
                fmt_count(b2, (uint64_t)o->max_peak));
    if (!v->fail_leaked && !v->fail_blocks)
        return;
    for (uint32_t i = 0; i < v->nreported && i < MESSAGE_SITES; i++) {
        const struct site *s = &v->a->sites[v->reported[i].site];
        unsigned kind = v->reported[i].kind;
        gate_site_where(v->a, s, where, sizeof where);
        fprintf(out, "%s %s bytes %s at %s", i ? ";" : ":", fmt_count(b1, s->kind_bytes[kind]),
                leak_kind_names[kind], where);
    }
    if (v->nreported > MESSAGE_SITES)
        fprintf(out, "; and %u more sites", v->nreported - MESSAGE_SITES);
}

static void junit_case(struct ci_reports *c, const struct gate_options *o,
                       const struct dump_verdict *v)
{
    FILE *out = c->junit;
    c->tests++;
    if (v->error) {
        c->errors++;
        fputs("    <testcase classname=\"memtrace\" name=\"", out);
        xml_write(out, v->path);
        fputs("\" time=\"0\">\n      <error type=\"memtrace.dump\" message=\"", out);
        xml_write(out, v->error);
        fputs("\"/>\n    </testcase>\n", out);
        return;
    }
    const struct dump_process *p = &v->r->process;
    const char *prog = p->argc ? path_base_name(p->argv[0]) : "?";
    double seconds = v->a->summary.duration_ns / 1e9;
    char name[512], b1[32], b2[32], b3[32];
    c->seconds += seconds;
    snprintf(name, sizeof name, "%s (pid %llu)", prog, (unsigned long long)p->pid);
    fputs("    <testcase classname=\"memtrace.", out);
    xml_write(out, prog);
    fputs("\" name=\"", out);
    xml_write(out, name);
    fprintf(out, "\" time=\"%.3f\">\n", seconds);
    if (verdict_failed(v)) {
        c->failures++;
        char *message = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&message, &len);
        if (mem) {
            failure_message(mem, o, v);
            fclose(mem);
        }
        fprintf(out, "      <failure type=\"memtrace.%s\" message=\"",
                v->fail_leaked || v->fail_blocks ? "leak"
                : v->fail_peak                   ? "peak"
                                                 : "unchecked");
        xml_write(out, message);
        fputs("\">", out);
        xml_write_text(out, v->details);
        fputs("</failure>\n", out);
        free(message);
    }
    fputs("      <system-out>dump: ", out);
    xml_write(out, v->path);
    fprintf(out, "\nleaked %s bytes in %s block%s of the gated kinds; peak %s bytes\n",
            fmt_count(b1, v->leaked_bytes), fmt_count(b2, v->leaked_blocks),
            v->leaked_blocks == 1 ? "" : "s", fmt_count(b3, v->peak_bytes));
    if (v->m->total_blocks || v->m->total_bytes) {
        fprintf(out, "suppressed %s bytes in %s block%s:\n", fmt_count(b1, v->m->total_bytes),
                fmt_count(b2, v->m->total_blocks), v->m->total_blocks == 1 ? "" : "s");
        for (uint32_t j = 0; j < v->set->n; j++)
            if (v->m->blocks[j] || v->m->bytes[j]) {
                const struct suppression *s = &v->set->items[j];
                char *line = NULL;
                if (asprintf(&line, "  %s bytes in %s block%s: %s (%s:%d)\n",
                             fmt_count(b1, v->m->bytes[j]), fmt_count(b2, v->m->blocks[j]),
                             v->m->blocks[j] == 1 ? "" : "s", s->name, s->file, s->line) >= 0)
                    xml_write_text(out, line);
                free(line);
            }
    }
    if (v->nunchecked && !v->fail_unchecked) {
        xml_write(out, v->unchecked_line);
        fputs(" (accepted by --accept-unchecked)\n", out);
    }
    fputs("</system-out>\n    </testcase>\n", out);
}

/* ---- SARIF --------------------------------------------------------------- */

/* Whether path names a file here (relative paths from the current
 * directory). */
static int file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* The frame a result points at: the innermost with a source file found on
 * this machine, else the innermost with any source file; NULL if none. */
static const struct sym_frame *location_frame(const struct analysis *a, const struct site *s)
{
    const uint32_t *frames = site_frame_list(a, s);
    const struct sym_frame *any = NULL;
    for (uint32_t k = 0; k < s->nframes; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        if (!f->file)
            continue;
        if (file_exists(f->file))
            return f;
        if (!any)
            any = f;
    }
    return any;
}

static void sarif_physical(FILE *out, const char *path, int line)
{
    const char *rel = gate_relative_path(path);
    fputs("{\"artifactLocation\": {\"uri\": ", out);
    if (rel != path) {
        json_uri(out, rel, 0);
        fputs(", \"uriBaseId\": \"SRCROOT\"", out);
    } else {
        json_uri(out, strncmp(path, "./", 2) == 0 ? path + 2 : path, path[0] == '/');
    }
    fputs("}", out);
    if (line > 0)
        fprintf(out, ", \"region\": {\"startLine\": %d}", line);
    fputs("}", out);
}

static void sarif_location(FILE *out, const struct sym_frame *f)
{
    fputs("{\"physicalLocation\": ", out);
    sarif_physical(out, f->file, f->line);
    if (f->function) {
        fputs(", \"logicalLocations\": [{\"fullyQualifiedName\": ", out);
        json_string(out, f->function);
        fputs(", \"kind\": \"function\"}]", out);
    }
    fputs("}", out);
}

static void sarif_stack(FILE *out, const struct analysis *a, const struct site *s)
{
    const uint32_t *frames = site_frame_list(a, s);
    fputs(",\n         \"stacks\": [{\"message\": {\"text\": \"allocation stack, innermost frame "
          "first\"}, \"frames\": [",
          out);
    for (uint32_t k = 0; k < s->nframes; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        char text[64];
        fputs(k ? ",\n           {\"location\": {" : "\n           {\"location\": {", out);
        if (f->file) {
            fputs("\"physicalLocation\": ", out);
            sarif_physical(out, f->file, f->line);
            fputs(", ", out);
        }
        fputs("\"message\": {\"text\": ", out);
        if (f->function) {
            json_string(out, f->function);
        } else {
            snprintf(text, sizeof text, "0x%llx",
                     (unsigned long long)(f->module ? f->module_offset : f->address));
            json_string(out, text);
        }
        fputs("}}", out);
        if (f->module) {
            fputs(", \"module\": ", out);
            json_string(out, f->module);
        }
        fputs("}", out);
    }
    fputs("]}]", out);
}

static uint64_t stack_fingerprint(const struct analysis *a, const struct site *s, unsigned kind)
{
    uint64_t h = hash_mix(0x6d656d7472616365ull, kind);
    const uint32_t *frames = site_frame_list(a, s);
    for (uint32_t k = 0; k < s->nframes; k++) {
        const struct sym_frame *f = &a->frames[frames[k]];
        for (const char *c = f->function ? f->function : "?"; *c; c++)
            h = hash_mix(h, (unsigned char)*c);
        h = hash_mix(h, (uint64_t)f->line);
    }
    return h;
}

static void sarif_result(struct ci_reports *c, const struct dump_verdict *v,
                         const struct leak_entry *e)
{
    FILE *out = c->sarif;
    const struct analysis *a = v->a;
    const struct site *s = &a->sites[e->site];
    unsigned kind = e->kind;
    char name[512], where[1024], b1[32], b2[32];
    gate_process_name(v->r, name, sizeof name);
    gate_site_where(a, s, where, sizeof where);
    const char *alloc = analysis_allocator_name(a, s->alloc_function);
    fprintf(out,
            "%s\n        {\"ruleId\": \"memtrace/leak/%s\", \"ruleIndex\": %u, "
            "\"level\": \"%s\",\n         \"message\": {\"text\": ",
            c->results++ ? "," : "", leak_kind_names[kind], kind, kind_levels[kind]);
    char *text = NULL;
    if (asprintf(&text, "%s bytes in %s block%s leaked (%s), allocated%s%s at %s; process %s",
                 fmt_count(b1, s->kind_bytes[kind]), fmt_count(b2, s->kind_blocks[kind]),
                 s->kind_blocks[kind] == 1 ? "" : "s", leak_kind_names[kind], alloc ? " by " : "",
                 alloc ? alloc : "", where, name) < 0)
        text = NULL;
    json_string(out, text ? text : "leak");
    free(text);
    fputs("}", out);
    const struct sym_frame *f = location_frame(a, s);
    if (f) {
        fputs(",\n         \"locations\": [", out);
        sarif_location(out, f);
        fputs("]", out);
    }
    sarif_stack(out, a, s);
    fprintf(out, ",\n         \"partialFingerprints\": {\"memtraceStack/v1\": \"%016llx\"}",
            (unsigned long long)stack_fingerprint(a, s, kind));
    fprintf(out,
            ",\n         \"properties\": {\"bytes\": %llu, \"blocks\": %llu, \"kind\": \"%s\", "
            "\"pid\": %llu, \"dump\": ",
            (unsigned long long)s->kind_bytes[kind], (unsigned long long)s->kind_blocks[kind],
            leak_kind_names[kind], (unsigned long long)v->r->process.pid);
    json_string(out, v->path);
    fputs("}", out);
    if (e->suppression >= 0) {
        const struct suppression *sp = &v->set->items[e->suppression];
        char *why = NULL;
        if (asprintf(&why, "%s (%s:%d)", sp->name, sp->file, sp->line) < 0)
            why = NULL;
        fputs(",\n         \"suppressions\": [{\"kind\": \"external\", \"status\": \"accepted\", "
              "\"justification\": ",
              out);
        json_string(out, why ? why : sp->name);
        fputs("}]", out);
        free(why);
    }
    fputs("}", out);
}

static void sarif_peak_result(struct ci_reports *c, const struct gate_options *o,
                              const struct dump_verdict *v)
{
    const struct analysis *a = v->a;
    const struct site *top = NULL;
    for (uint32_t i = 0; i < a->nsites; i++)
        if (!top || site_peak_bytes(a, &a->sites[i]) > site_peak_bytes(a, top))
            top = &a->sites[i];
    char name[512], b1[32], b2[32];
    gate_process_name(v->r, name, sizeof name);
    fprintf(c->sarif,
            "%s\n        {\"ruleId\": \"memtrace/peak\", \"ruleIndex\": %d, "
            "\"level\": \"error\",\n         \"message\": {\"text\": ",
            c->results++ ? "," : "", PEAK_RULE);
    char *text = NULL;
    if (asprintf(&text, "the heap peaked at %s bytes in use, over --max-peak %s; process %s",
                 fmt_count(b1, v->peak_bytes), fmt_count(b2, (uint64_t)o->max_peak), name) < 0)
        text = NULL;
    json_string(c->sarif, text ? text : "peak");
    free(text);
    fputs("}", c->sarif);
    const struct sym_frame *f = top ? location_frame(a, top) : NULL;
    if (f) {
        fputs(",\n         \"locations\": [", c->sarif);
        sarif_location(c->sarif, f);
        fputs("]", c->sarif);
    }
    if (top)
        sarif_stack(c->sarif, a, top);
    fprintf(c->sarif, ",\n         \"properties\": {\"peakBytes\": %llu, \"pid\": %llu, \"dump\": ",
            (unsigned long long)v->peak_bytes, (unsigned long long)v->r->process.pid);
    json_string(c->sarif, v->path);
    fputs("}}", c->sarif);
}

/* What could not be checked in v's process: an error, or a warning when
 * --accept-unchecked took it. */
static void sarif_unchecked_result(struct ci_reports *c, const struct dump_verdict *v)
{
    fprintf(c->sarif,
            "%s\n        {\"ruleId\": \"memtrace/unchecked\", \"ruleIndex\": %d, "
            "\"level\": \"%s\",\n         \"message\": {\"text\": ",
            c->results++ ? "," : "", UNCHECKED_RULE, v->fail_unchecked ? "error" : "warning");
    json_string(c->sarif, v->unchecked_line);
    fprintf(c->sarif, "},\n         \"properties\": {\"pid\": %llu, \"reasons\": [",
            (unsigned long long)v->r->process.pid);
    for (int i = 0; i < v->nunchecked; i++) {
        fputs(i ? ", " : "", c->sarif);
        json_string(c->sarif, v->unchecked[i].code);
    }
    fputs("], \"dump\": ", c->sarif);
    json_string(c->sarif, v->path);
    fputs("}}", c->sarif);
}

void ci_reports_add(struct ci_reports *c, const struct gate_options *o,
                    const struct dump_verdict *v)
{
    if (c->junit)
        junit_case(c, o, v);
    if (!c->sarif)
        return;
    if (v->error) {
        char *text = NULL;
        if (asprintf(&text, "%s: %s", v->path, v->error) < 0)
            text = NULL;
        fprintf(c->notes,
                "%s{\"level\": \"error\", \"message\": {\"text\": ", c->nnotes++ ? ", " : "");
        json_string(c->notes, text ? text : v->error);
        fputs("}}", c->notes);
        free(text);
        return;
    }
    for (uint32_t i = 0; i < v->nreported; i++)
        sarif_result(c, v, &v->reported[i]);
    for (uint32_t i = 0; i < v->nsuppressed; i++)
        sarif_result(c, v, &v->suppressed[i]);
    if (v->fail_peak)
        sarif_peak_result(c, o, v);
    if (v->nunchecked)
        sarif_unchecked_result(c, v);
}
