/* CI gates on dumps, for `memtrace check` and `memtrace run`: leaked bytes
 * and blocks of the gated leak kinds and the heap's peak against limits,
 * with suppressions applied; the failing sites printed short enough for a CI
 * log; JUnit XML and SARIF 2.1.0 reports (ci_reports.c) and
 * --gen-suppressions. Each dump (each process) is gated on its own. */
#ifndef MEMTRACE_GATES_H
#define MEMTRACE_GATES_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "analysis.h"
#include "dump_reader.h"
#include "suppressions.h"

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

/* getopt_long entries of the gate options (ended by {0}) and their handler:
 * 1 if opt was a gate option (parsed into o), 0 if it is not one, -1 on a
 * bad value (a one-line message printed). Their values are >= 1000. */
extern const struct option gate_long_options[];
int gate_parse_option(int opt, const char *arg, struct gate_options *o);
void gate_options_init(struct gate_options *o, int error_exitcode);
/* Whether any of --max-leaked, --max-leaked-blocks, --max-peak is set. */
int gate_options_any_gate(const struct gate_options *o);
/* The gate options' lines for --help. */
extern const char gate_help[];

/* Analyses each dump, applies the suppressions and the gates, prints the
 * failing sites and what was suppressed (stderr) and the generated
 * suppressions (stdout), and writes the JUnit and SARIF files if asked.
 * 0 when every gate passes, o->error_exitcode when one fails, -1 on an
 * error (a bad dump or suppression file, a report that cannot be written:
 * message printed). With no gate and no report asked it prints nothing
 * but suppressions and warnings. */
int gates_check_dumps(const struct gate_options *o, char *const *dumps, int ndumps);

/* ---- shared with ci_reports.c ----------------------------------------- */

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
/* A path relative to the current directory when it is under it. */
const char *gate_relative_path(const char *path);

#endif
