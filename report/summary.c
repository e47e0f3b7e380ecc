/* Summary report (see summary.h): one pass over the dump, keeping the live
 * blocks (memory grows with the live heap, never with the event count). */
#include "summary.h"

#include <stdlib.h>
#include <string.h>

#include "text_format.h"

/* "Temporary": a block freed by its thread before that thread allocates
 * anything else. Per thread, the last block it allocated, while it is still
 * a candidate. */
struct thread_last {
    uint64_t address;
    int candidate;
};

static struct thread_last *thread_slot(struct thread_last **v, size_t *cap, uint64_t thread)
{
    if (thread >= 1u << 24)
        return NULL;
    if (thread >= *cap) {
        size_t n = *cap ? *cap * 2 : 64;
        while (n <= thread)
            n *= 2;
        struct thread_last *q = realloc(*v, n * sizeof *q);
        if (!q)
            return NULL;
        memset(q + *cap, 0, (n - *cap) * sizeof *q);
        *v = q;
        *cap = n;
    }
    return &(*v)[thread];
}

int summary_compute(struct dump_reader *r, struct summary *s)
{
    memset(s, 0, sizeof *s);
    struct heap_table live;
    if (heap_table_init(&live) != 0) {
        snprintf(r->error, sizeof r->error, "out of memory");
        return -1;
    }
    struct thread_last *threads = NULL;
    size_t threads_cap = 0;
    struct heap_totals *t = &s->totals;
    uint64_t start = r->process.start_ns, last_time = start;
    struct dump_record rec;
    int got;
    while ((got = dump_next(r, &rec)) == 1) {
        struct heap_block b, old;
        struct thread_last *th;
        switch (rec.type) {
        case MT_REC_ALLOC:
            b = (struct heap_block){rec.address, rec.size, (uint32_t)rec.stack, (uint32_t)rec.thread};
            if (heap_table_insert(&live, &b, &old) == 1) {
                t->in_use_bytes -= old.size;
                t->in_use_blocks--;
            }
            t->allocations++;
            t->bytes_allocated += rec.size;
            t->in_use_bytes += rec.size;
            t->in_use_blocks++;
            if (t->in_use_bytes > t->peak_bytes) {
                t->peak_bytes = t->in_use_bytes;
                t->peak_blocks = t->in_use_blocks;
                t->peak_time_ns = rec.time - start;
            }
            if ((th = thread_slot(&threads, &threads_cap, rec.thread)))
                *th = (struct thread_last){rec.address, 1};
            break;
        case MT_REC_FREE:
            if (heap_table_remove(&live, rec.address, &b)) {
                t->frees++;
                t->in_use_bytes -= b.size;
                t->in_use_blocks--;
                th = thread_slot(&threads, &threads_cap, rec.thread);
                if (th && th->candidate && th->address == rec.address)
                    s->temporary_allocations++;
            }
            if ((th = thread_slot(&threads, &threads_cap, rec.thread)) && th->address == rec.address)
                th->candidate = 0;
            break;
        case MT_REC_INHERIT:
            b = (struct heap_block){rec.address, rec.size, (uint32_t)rec.stack, 0};
            if (heap_table_insert(&live, &b, &old) == 0) {
                t->in_use_bytes += rec.size;
                t->in_use_blocks++;
                t->peak_bytes = t->in_use_bytes;
                t->peak_blocks = t->in_use_blocks;
            }
            break;
        case MT_REC_INHERIT_TOTALS:
            t->allocations = rec.allocations;
            t->frees = rec.frees;
            t->bytes_allocated = rec.bytes_allocated;
            break;
        case MT_REC_EXIT:
            s->exit_how = rec.exit_how;
            s->exit_value = rec.exit_value;
            break;
        default:
            break;
        }
        if (rec.time > last_time)
            last_time = rec.time;
    }
    heap_table_free(&live);
    free(threads);
    if (got < 0)
        return -1;
    s->truncated = r->truncated;
    s->duration_ns = last_time - start;
    return 0;
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(out, "\\u%04x", *c);
        else
            fputc(*c, out);
    }
    fputc('"', out);
}

void summary_print_json(FILE *out, const struct dump_reader *r, const struct summary *s)
{
    const struct dump_process *p = &r->process;
    const struct heap_totals *t = &s->totals;
    fprintf(out, "{\n  \"format\": \"memtrace-report\", \"version\": 1,\n");
    fprintf(out, "  \"process\": {\"pid\": %llu, \"ppid\": %llu, \"command\": [",
            (unsigned long long)p->pid, (unsigned long long)p->ppid);
    for (uint64_t i = 0; i < p->argc; i++) {
        if (i)
            fputs(", ", out);
        json_string(out, p->argv[i]);
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
    fprintf(out, "}, \"duration_ns\": %llu},\n", (unsigned long long)s->duration_ns);
    fprintf(out,
            "  \"totals\": {\"allocations\": %llu, \"frees\": %llu, \"bytes_allocated\": %llu,\n"
            "             \"peak_bytes\": %llu, \"peak_blocks\": %llu, \"peak_time_ns\": %llu,\n"
            "             \"in_use_bytes\": %llu, \"in_use_blocks\": %llu,"
            " \"temporary_allocations\": %llu}\n}\n",
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
