/* What the dump format's unit tests share: the start time of their dumps,
 * and a dump begun as the consumer begins one. */
#ifndef MEMTRACE_DUMP_FIXTURE_H
#define MEMTRACE_DUMP_FIXTURE_H

#include "../../cli/consumer/dump_writer.h"
#include "check.h"

#define START 1000000000ull

/* Creates a dump at path with the writer, as the consumer does, and writes
 * its PROCESS record: process pid, /bin/prog run with argv, started at START. */
static inline void start_dump(struct dump_writer *w, const char *path, uint64_t pid, int argc,
                       char **argv)
{
    CHECK(dump_writer_create(w, path, START) == 0);
    struct dump_process_info info = {.pid = pid, .ppid = 1, .start_ns = START,
                                     .start_realtime_ns = 5, .unwind = MT_UNWIND_DWARF,
                                     .max_depth = 64, .exe = "/bin/prog", .argc = argc,
                                     .argv = argv};
    dump_write_process(w, &info);
}

#endif
