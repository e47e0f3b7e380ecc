/* libFuzzer target for the dump reader (report/read/dump_reader.c) and the
 * streaming analysis over it (report/analyze/analysis.c), without symbols, then with
 * its sites and a flame tree (report/analyze/sites.c, report/export/flame_tree.c).
 *
 * The reader only takes a path, so each input is written to a memfd and
 * opened through /proc/self/fd/N: no file on disk, nothing left behind.
 * Whatever the bytes, the reader must fail cleanly (an error message, never
 * a crash, a hang or a leak); ASan, UBSan and LeakSanitizer check that.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "analyze/analysis.h"
#include "read/dump_reader.h"
#include "export/flame_tree.h"

/* Writes all of data to fd. 0, or -1 on a short write. */
static int write_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0)
            return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Reads every record, as `memtrace dump` would. dump_close is called on
 * failure too: dump_open may have opened the file before it failed. */
static void read_records(const char *path)
{
    struct dump_reader r;
    if (dump_open(&r, path) == 0) {
        struct dump_record rec;
        while (dump_next(&r, &rec) > 0)
            ;
    }
    dump_close(&r);
}

/* Runs the whole analysis on a fresh open, with no symbolizer. */
static void analyse(const char *path)
{
    struct dump_reader r;
    if (dump_open(&r, path) == 0) {
        struct analysis a;
        analysis_run(&r, NULL, &a);
        analysis_free(&a);
    }
    dump_close(&r);
}

/* The analysis with its sites (what report, check, diff and flamegraph
 * run), and a flame tree of them: the memory these take must follow what
 * the input holds (-rss_limit_mb and -malloc_limit_mb in run_fuzz.sh). The
 * sysroot names no directory, so no module path of the input is opened. */
static void analyse_sites(const char *path)
{
    struct dump_reader r;
    if (dump_open(&r, path) == 0) {
        struct analysis_options o = {.symbols = {.sysroot = "/nonexistent-memtrace-fuzz"}};
        struct analysis a;
        if (analysis_run(&r, &o, &a) == 0) {
            struct flame_tree t;
            if (flame_tree_build(&t, &a, FLAME_ALLOCATED, NULL) == 0)
                flame_tree_free(&t);
        }
        analysis_free(&a);
    }
    dump_close(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_dump", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write_all(fd, data, size) == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        read_records(path);
        analyse(path);
        analyse_sites(path);
    }
    close(fd);
    return 0;
}
