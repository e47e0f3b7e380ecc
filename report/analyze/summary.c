/* Printing the summary: the process, how it ended, and its heap totals
 * (computed by analysis.c, which holds the counting rules). */
#include "summary.h"

#include <errno.h>
#include <string.h>

#include "text_format.h"
#include "util.h"

void summary_print_json_blocks(FILE *out, const struct dump_reader *r, const struct summary *s)
{
    const struct dump_process *p = &r->process;
    const struct heap_totals *t = &s->totals;
    fprintf(out, "  \"process\": {\"pid\": %llu, \"ppid\": %llu, \"command\": [",
            (unsigned long long)p->pid, (unsigned long long)p->ppid);
    for (uint64_t i = 0; i < p->argc; i++) {
        if (i)
            fputs(", ", out);
        if (p->argv[i] && p->argv_len) /* whole: a NUL in it is \u0000 */
            json_write_bytes(out, p->argv[i], p->argv_len[i]);
        else
            json_write_string(out, p->argv[i]);
    }
    fputs("],\n              \"exit\": {\"status\": ", out);
    if (s->exit_how == MT_EXIT_STATUS)
        fprintf(out, "%lld", (long long)s->exit_value);
    else
        fputs("null", out);
    fputs(", \"signal\": ", out);
    if (s->exit_how == MT_EXIT_SIGNAL)
        fprintf(out, "%lld", (long long)s->exit_value);
    else
        fputs("null", out);
    fprintf(out, "}, \"duration_ns\": %llu, \"truncated\": %s},\n",
            (unsigned long long)s->duration_ns, s->truncated ? "true" : "false");
    fprintf(out,
            "  \"totals\": {\"allocations\": %llu, \"frees\": %llu, \"bytes_allocated\": %llu,\n"
            "             \"peak_bytes\": %llu, \"peak_blocks\": %llu, \"peak_time_ns\": %llu,\n"
            "             \"in_use_bytes\": %llu, \"in_use_blocks\": %llu,"
            " \"temporary_allocations\": %llu}",
            (unsigned long long)t->allocations, (unsigned long long)t->frees,
            (unsigned long long)t->bytes_allocated, (unsigned long long)t->peak_bytes,
            (unsigned long long)t->peak_blocks, (unsigned long long)t->peak_time_ns,
            (unsigned long long)t->in_use_bytes, (unsigned long long)t->in_use_blocks,
            (unsigned long long)s->temporary_allocations);
    fputs(",\n", out);
    summary_print_unchecked_json(out, s);
}

void summary_print_text(FILE *out, const struct dump_reader *r, const struct summary *s)
{
    const struct dump_process *p = &r->process;
    const struct heap_totals *t = &s->totals;
    char a[32], b[32], c[32], h[32];
    fprintf(out, "process %llu:", (unsigned long long)p->pid);
    char clean[4096];
    for (uint64_t i = 0; i < p->argc; i++)
        fprintf(out, " %s", text_clean(p->argv[i], clean, sizeof clean));
    switch (s->exit_how) {
    case MT_EXIT_STATUS: fprintf(out, "  (exited with status %lld)\n", (long long)s->exit_value); break;
    case MT_EXIT_SIGNAL: fprintf(out, "  (killed by signal %lld)\n", (long long)s->exit_value); break;
    case MT_EXIT_EXEC: fputs("  (replaced by exec)\n", out); break;
    default: fputs("  (how it ended is not known)\n", out);
    }
    fprintf(out, "  duration          %.3f s\n", s->duration_ns / 1e9);
    fprintf(out, "  in use at exit    %s bytes in %s blocks (%s)\n", fmt_count(a, t->in_use_bytes),
            fmt_count(b, t->in_use_blocks), fmt_bytes(h, t->in_use_bytes));
    fprintf(out, "  total heap usage  %s allocs, %s frees, %s bytes allocated\n",
            fmt_count(a, t->allocations), fmt_count(b, t->frees), fmt_count(c, t->bytes_allocated));
    fprintf(out, "  peak              %s bytes in %s blocks (%s) at %.3f s\n",
            fmt_count(a, t->peak_bytes), fmt_count(b, t->peak_blocks), fmt_bytes(h, t->peak_bytes),
            t->peak_time_ns / 1e9);
    fprintf(out, "  temporary         %s allocations freed before their thread allocated again\n",
            fmt_count(a, s->temporary_allocations));
    struct unchecked_reason u[UNCHECKED_MAX];
    int n = summary_unchecked(s, u, UNCHECKED_MAX);
    for (int i = 0; i < n; i++)
        fprintf(out, "  not checked       %s\n", u[i].text);
}

/* ---- what could not be checked ------------------------------------------ */

void summary_add_incomplete(struct summary *s, uint64_t reason, uint64_t count)
{
    unsigned slot = reason < SUMMARY_INCOMPLETE_SLOTS ? (unsigned)reason : 0;
    s->incomplete_seen |= 1u << slot;
    if (slot == MT_INCOMPLETE_SCAN_NOT_ASKED || slot == MT_INCOMPLETE_SCAN_NOT_SERVED ||
        slot == MT_INCOMPLETE_NOT_SCANNED || slot == MT_INCOMPLETE_EXEC_UNTRACED)
        s->incomplete[slot] = count;
    else if (s->incomplete[slot] + count >= s->incomplete[slot])
        s->incomplete[slot] += count;
}

static int seen(const struct summary *s, unsigned reason)
{
    return (s->incomplete_seen >> reason) & 1u;
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* Why the blocks of kind unknown were not classified: the code and the
 * words inside "it was not scanned for reachability (...)", or, for a
 * scan that ran, the whole phrase (*whole set). */
static const char *scan_cause(const struct summary *s, char *buf, size_t size, int *whole)
{
    *whole = 0;
    if (s->scanned) {
        *whole = 1;
        if (s->scan_unclassified) {
            snprintf(buf, size, "its reachability scan could not run in the process "
                                "(no memory for it)");
            return "scan_failed";
        }
        snprintf(buf, size, "they were allocated after its reachability scan (by a thread "
                            "still running, or by code that ran after the scan at exit)");
        return "allocated_after_scan";
    }
    if (seen(s, MT_INCOMPLETE_SCAN_NOT_ASKED)) {
        snprintf(buf, size, "--leak-check %s was asked for",
                 s->incomplete[MT_INCOMPLETE_SCAN_NOT_ASKED] == 0 ? "none" : "summary");
        return "scan_not_asked";
    }
    if (seen(s, MT_INCOMPLETE_SCAN_NOT_SERVED)) {
        uint64_t e = s->incomplete[MT_INCOMPLETE_SCAN_NOT_SERVED];
        if (e == MT_SCAN_NOT_RECEIVED + EMFILE) /* its memfd found no free number */
            snprintf(buf, size, "it could not receive the scan's data: no descriptor free (%s)",
                     strerror(EMFILE));
        else if (e > MT_SCAN_NOT_RECEIVED && e < MT_SCAN_NOT_RECEIVED + 4096)
            snprintf(buf, size, "it could not receive the scan's data: %s",
                     strerror((int)(e - MT_SCAN_NOT_RECEIVED)));
        else
            snprintf(buf, size, "memtrace could not hand it its blocks to scan%s%s",
                     e ? ": " : "", e && e < 4096 ? strerror((int)e) : "");
        return "scan_not_served";
    }
    if (seen(s, MT_INCOMPLETE_SCAN_FAILED)) {
        snprintf(buf, size, "the scan could not be made in the process");
        return "scan_failed";
    }
    uint64_t saw = seen(s, MT_INCOMPLETE_NOT_SCANNED) ? s->incomplete[MT_INCOMPLETE_NOT_SCANNED]
                                                       : 0;
    if (s->exit_how == MT_EXIT_SIGNAL) {
        snprintf(buf, size, "killed by signal %lld", (long long)s->exit_value);
        return "killed_by_signal";
    }
    if (saw & MT_UNSCANNED_ASKED_SCAN) {
        snprintf(buf, size, "it asked for its scan at exit and ended before the scan finished");
        return "scan_unfinished";
    }
    if (saw & MT_UNSCANNED_SAID_EXIT) {
        snprintf(buf, size, "it went through exit%s, but its scan did not run",
                 s->exit_how == MT_EXIT_STATUS ? "" : " or _exit");
        return "scan_missed";
    }
    if (s->exit_how == MT_EXIT_STATUS && seen(s, MT_INCOMPLETE_NOT_SCANNED)) {
        snprintf(buf, size, "it ended with status %lld without libc's exit: a raw exit_group "
                            "system call",
                 (long long)s->exit_value);
        return "raw_exit";
    }
    if (s->exit_how == MT_EXIT_STATUS) { /* a dump that does not say more */
        snprintf(buf, size, "it ended with status %lld, but no scan was made",
                 (long long)s->exit_value);
        return "not_scanned";
    }
    snprintf(buf, size, "how it ended is not known: it did not go through libc's exit "
                        "(a raw exit_group, or a signal memtrace could not see)");
    return "ended_unknown";
}

int summary_unchecked(const struct summary *s, struct unchecked_reason *out, int max)
{
    int n = 0;
    char b1[32], b2[32];
    static const struct {
        unsigned reason;
        const char *code, *one, *many;
    } lost[] = {
        {MT_INCOMPLETE_NO_RING, "no_ring", "a thread found no ring: its allocations and frees "
                                           "were not recorded",
         "threads found no ring: their allocations and frees were not recorded"},
        {MT_INCOMPLETE_HANDLER_EVENTS, "handler_events",
         "an allocation or free in a signal handler found no room and was not recorded",
         "allocations or frees in signal handlers found no room and were not recorded"},
        {MT_INCOMPLETE_CHILD_UNTRACED, "child_untraced",
         "a fork child could not be traced and has no dump",
         "fork children could not be traced and have no dump"},
        {MT_INCOMPLETE_MALFORMED_RING, "malformed_ring",
         "a ring held a malformed record: the events after it were lost",
         "rings held malformed records: the events after them were lost"},
    };
    for (size_t i = 0; i < sizeof lost / sizeof *lost && n < max; i++) {
        if (!seen(s, lost[i].reason))
            continue;
        uint64_t c = s->incomplete[lost[i].reason];
        struct unchecked_reason *u = &out[n++];
        *u = (struct unchecked_reason){.scope = UNCHECKED_TRACE, .code = lost[i].code, .count = c};
        if (c > 1)
            snprintf(u->text, sizeof u->text, "its trace is incomplete: %s %s",
                     fmt_count(b1, c), lost[i].many);
        else
            snprintf(u->text, sizeof u->text, "its trace is incomplete: %s", lost[i].one);
    }
    if (seen(s, MT_INCOMPLETE_EXEC_UNTRACED) && n < max) {
        uint64_t why = s->incomplete[MT_INCOMPLETE_EXEC_UNTRACED];
        struct unchecked_reason *u = &out[n++];
        *u = (struct unchecked_reason){.scope = UNCHECKED_TRACE, .code = "exec_untraced",
                                       .count = why};
        snprintf(u->text, sizeof u->text, "the program it exec'd was not traced (%s): its "
                                          "allocations are unchecked",
                 why == MT_EXEC_STATIC   ? "statically linked"
                 : why == MT_EXEC_SETID  ? "set-uid or set-gid: the loader drops LD_PRELOAD"
                 : why == MT_EXEC_NO_HELLO ? "it never reached memtrace: LD_PRELOAD taken out "
                                             "of its environment, a seccomp filter or a "
                                             "descriptor limit"
                 : why == MT_EXEC_RUNNING ? "it was still running without reaching memtrace "
                                            "when the program ended"
                                          : "statically linked, set-uid, or it could not "
                                            "reach memtrace");
    }
    /* reasons this reader does not know: events lost, it cannot say which */
    unsigned known = (1u << MT_INCOMPLETE_NO_RING) | (1u << MT_INCOMPLETE_HANDLER_EVENTS) |
                     (1u << MT_INCOMPLETE_CHILD_UNTRACED) | (1u << MT_INCOMPLETE_SCAN_FAILED) |
                     (1u << MT_INCOMPLETE_SCAN_NOT_ASKED) | (1u << MT_INCOMPLETE_SCAN_NOT_SERVED) |
                     (1u << MT_INCOMPLETE_MALFORMED_RING) | (1u << MT_INCOMPLETE_NOT_SCANNED) |
                     (1u << MT_INCOMPLETE_EXEC_UNTRACED);
    for (unsigned r = 0; r < SUMMARY_INCOMPLETE_SLOTS && n < max; r++)
        if (seen(s, r) && !((known >> r) & 1u)) {
            struct unchecked_reason *u = &out[n++];
            *u = (struct unchecked_reason){.scope = UNCHECKED_TRACE, .code = "incomplete",
                                           .count = s->incomplete[r]};
            snprintf(u->text, sizeof u->text,
                     "its trace is incomplete (reason %u%s, which this memtrace does not know)",
                     r, r ? "" : " or above");
        }
    if (s->truncated && n < max) {
        struct unchecked_reason *u = &out[n++];
        *u = (struct unchecked_reason){.scope = UNCHECKED_TRACE, .code = "truncated"};
        snprintf(u->text, sizeof u->text,
                 "its dump is cut short (the traced process or the consumer died): what came "
                 "after its last whole record is missing");
    }
    uint64_t blocks = s->kind_blocks[MT_KIND_UNKNOWN];
    if (blocks && s->exit_how != MT_EXIT_EXEC && n < max) {
        char cause[160];
        int whole;
        struct unchecked_reason *u = &out[n++];
        *u = (struct unchecked_reason){.scope = UNCHECKED_SCAN, .count = blocks};
        u->code = scan_cause(s, cause, sizeof cause, &whole);
        snprintf(u->text, sizeof u->text, "%s%s%s: %s bytes in %s %s of kind unknown",
                 whole ? "" : "it was not scanned for reachability (", cause, whole ? "" : ")",
                 fmt_count(b1, s->kind_bytes[MT_KIND_UNKNOWN]), fmt_count(b2, blocks),
                 plural(blocks, "block", "blocks"));
    }
    return n;
}

void summary_print_unchecked_json(FILE *out, const struct summary *s)
{
    struct unchecked_reason u[UNCHECKED_MAX];
    int n = summary_unchecked(s, u, UNCHECKED_MAX);
    fprintf(out, "  \"checked\": %s, \"unchecked_reasons\": [", n ? "false" : "true");
    for (int i = 0; i < n; i++) {
        fprintf(out, "%s\n    {\"reason\": \"%s\", \"gates\": \"%s\", \"count\": %llu, "
                     "\"message\": ",
                i ? "," : "", u[i].code, u[i].scope == UNCHECKED_TRACE ? "all" : "leaks",
                (unsigned long long)u[i].count);
        json_write_string(out, u[i].text);
        fputc('}', out);
    }
    fputc(']', out);
}
