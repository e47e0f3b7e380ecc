/* Printing the summary: the process, how it ended, and its heap totals
 * (computed by analysis.c, which holds the counting rules). */
#include "summary.h"

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
}

void summary_print_text(FILE *out, const struct dump_reader *r, const struct summary *s)
{
    const struct dump_process *p = &r->process;
    const struct heap_totals *t = &s->totals;
    char a[32], b[32], c[32], h[32];
    fprintf(out, "process %llu:", (unsigned long long)p->pid);
    for (uint64_t i = 0; i < p->argc; i++)
        fprintf(out, " %s", p->argv[i]);
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
    if (s->truncated)
        fputs("  note: the dump is cut short; figures cover what it holds\n", out);
}
