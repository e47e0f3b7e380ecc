/* What the CI gates made of each dump, shared by gates.c (which judges and
 * prints it) and ci_reports.c (which writes it as JUnit and SARIF): the
 * gate options, the verdict on one dump, and how a process and a site are
 * named in both (gate_naming.c). */
#ifndef MEMTRACE_VERDICT_H
#define MEMTRACE_VERDICT_H

#include <stdint.h>

#include "analyze/analysis.h"
#include "read/dump_reader.h"
#include "analyze/suppressions.h"

#define GATE_MAX_SUPPRESSION_FILES 32

enum gen_suppressions { GEN_SUPPRESSIONS_NONE, GEN_SUPPRESSIONS_VALGRIND, GEN_SUPPRESSIONS_LSAN };

struct gate_options {
    int64_t max_leaked, max_leaked_blocks, max_peak; /* -1 = no gate */
    unsigned kinds; /* mask of 1 << mt_leak_kind; default definite|indirect */
    const char *suppressions[GATE_MAX_SUPPRESSION_FILES];
    int nsuppressions;
    const char *junit, *sarif; /* NULL = none */
    int gen_suppressions;      /* enum gen_suppressions */
    int error_exitcode;        /* run: default 99; check: 1 */
    int accept_unchecked;      /* what could not be checked warns instead of failing */
};

/* One leak of a site: its blocks of one kind. */
struct leak_entry {
    uint32_t site;
    uint32_t kind;
    int32_t suppression; /* index into the set, or -1 */
};

/* What the gates made of one dump. */
struct dump_verdict {
    const char *path;
    const struct dump_reader *r; /* NULL when the dump could not be read */
    const struct analysis *a;
    const struct suppression_set *set;
    const struct suppression_matches *m;
    const char *error;           /* why the dump could not be read, or NULL */
    struct leak_entry *reported; /* gated kinds, not suppressed, most bytes first */
    uint32_t nreported;
    struct leak_entry *suppressed; /* gated kinds, suppressed, most bytes first */
    uint32_t nsuppressed;
    uint64_t leaked_bytes, leaked_blocks; /* gated kinds, not suppressed */
    uint64_t peak_bytes;
    int fail_leaked, fail_blocks, fail_peak;
    /* What the gates set could not check in this process (summary.h: the
     * reasons of scope UNCHECKED_TRACE when any gate is set, those of scope
     * UNCHECKED_SCAN when a leak gate does not count the kind unknown). */
    struct unchecked_reason unchecked[UNCHECKED_MAX];
    int nunchecked;
    int fail_unchecked; /* nunchecked and not --accept-unchecked */
    char *unchecked_line; /* "pid 12 (./prog): not checked: REASON; REASON", or NULL */
    char *details; /* the failure as printed on stderr, or NULL */
};

static inline int verdict_failed(const struct dump_verdict *v)
{
    return v->fail_leaked || v->fail_blocks || v->fail_peak || v->fail_unchecked;
}
/* "make_plain (tests/x.c:24)": the innermost named frame of a site, the
 * path relative to the current directory when under it. */
void gate_site_where(const struct analysis *a, const struct site *s, char *buf, size_t size);
/* "./prog (pid 12)" */
void gate_process_name(const struct dump_reader *r, char *buf, size_t size);
/* "file.c:12", "libx.so+0x1f0" or "0x401000": where a frame is. */
void gate_frame_where(const struct sym_frame *f, char *buf, size_t size);
/* A path relative to the current directory when it is under it. */
const char *gate_relative_path(const char *path);

#endif
