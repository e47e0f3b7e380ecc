/* `memtrace __dump DUMP`: every record of a dump, one per line, for tests
 * and for looking inside a dump by hand. Not a user-facing report: the
 * format of these lines is not promised. */
#include <stdio.h>

#include "read/dump_reader.h"
#include "cli.h"

static void print_record(const struct dump_record *r, uint64_t start)
{
    unsigned long long t = (unsigned long long)(r->time - start);
    switch (r->type) {
    case MT_REC_MODULE_LOAD:
        printf("module_load t=%llu id=%llu bias=0x%llx path=%.*s build_id=", t,
               (unsigned long long)r->id, (unsigned long long)r->load_bias, (int)r->path_len,
               r->path);
        for (size_t i = 0; i < r->build_id_len; i++)
            printf("%02x", r->build_id[i]);
        for (uint64_t i = 0; i < r->nsegments; i++)
            printf(" seg=0x%llx+0x%llx%s", (unsigned long long)r->segments[i].vaddr,
                   (unsigned long long)r->segments[i].memsz, r->segments[i].flags & 1 ? "x" : "");
        putchar('\n');
        break;
    case MT_REC_MODULE_UNLOAD: printf("module_unload t=%llu id=%llu\n", t, (unsigned long long)r->id); break;
    case MT_REC_STACK:
        printf("stack id=%llu depth=%llu", (unsigned long long)r->id, (unsigned long long)r->depth);
        for (uint64_t i = 0; i < r->depth; i++)
            printf(" 0x%llx", (unsigned long long)r->ips[i]);
        putchar('\n');
        break;
    case MT_REC_THREAD:
        printf("thread index=%llu tid=%llu\n", (unsigned long long)r->id, (unsigned long long)r->tid);
        break;
    case MT_REC_ALLOC:
        printf("alloc t=%llu thread=%llu fn=%llu address=0x%llx size=%llu stack=%llu\n", t,
               (unsigned long long)r->thread, (unsigned long long)r->function,
               (unsigned long long)r->address, (unsigned long long)r->size,
               (unsigned long long)r->stack);
        break;
    case MT_REC_FREE:
        printf("free t=%llu thread=%llu fn=%llu address=0x%llx\n", t, (unsigned long long)r->thread,
               (unsigned long long)r->function, (unsigned long long)r->address);
        break;
    case MT_REC_RSS: printf("rss t=%llu bytes=%llu\n", t, (unsigned long long)r->rss); break;
    case MT_REC_INHERIT:
        printf("inherit address=0x%llx size=%llu stack=%llu\n", (unsigned long long)r->address,
               (unsigned long long)r->size, (unsigned long long)r->stack);
        break;
    case MT_REC_INHERIT_TOTALS:
        printf("inherit_totals allocations=%llu frees=%llu bytes=%llu\n",
               (unsigned long long)r->allocations, (unsigned long long)r->frees,
               (unsigned long long)r->bytes_allocated);
        break;
    case MT_REC_EXIT:
        printf("exit t=%llu how=%llu value=%lld\n", t, (unsigned long long)r->exit_how,
               (long long)r->exit_value);
        break;
    case MT_REC_END: printf("end t=%llu\n", t); break;
    case MT_REC_PYFRAME:
        printf("pyframe id=%llu function=%.*s file=%.*s line=%llu\n", (unsigned long long)r->id,
               (int)r->function_name_len, r->function_name, (int)r->path_len, r->path,
               (unsigned long long)r->line);
        break;
    default: printf("record type=%d\n", (int)r->type);
    }
}

int cmd_dump(int argc, char **argv)
{
    if (argc != 2)
        return cli_error("usage: memtrace __dump DUMP");
    struct dump_reader r;
    if (dump_open(&r, argv[1]) != 0) {
        cli_error("%s", r.error);
        dump_close(&r);
        return 1;
    }
    const struct dump_process *p = &r.process;
    printf("process pid=%llu ppid=%llu flags=%llu unwind=%llu max_depth=%llu exe=%s argc=%llu\n",
           (unsigned long long)p->pid, (unsigned long long)p->ppid, (unsigned long long)p->flags,
           (unsigned long long)p->unwind, (unsigned long long)p->max_depth, p->exe,
           (unsigned long long)p->argc);
    struct dump_record rec;
    int got;
    while ((got = dump_next(&r, &rec)) == 1)
        print_record(&rec, p->start_ns);
    if (got < 0)
        cli_error("%s", r.error);
    else if (r.truncated)
        printf("truncated\n");
    dump_close(&r);
    return got < 0 ? 1 : 0;
}
