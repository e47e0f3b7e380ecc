/* The reports CI pages read, from the gates' verdicts (gates.h): JUnit XML
 * (a test case per process, failing with its leak sites) and SARIF 2.1.0 (a
 * result per leak site, located at the innermost frame with a source file,
 * suppressed leaks carrying a SARIF suppression). Both are built in memory
 * while the dumps are checked and written whole at the end. */
#ifndef MEMTRACE_CI_REPORTS_H
#define MEMTRACE_CI_REPORTS_H

#include <stdio.h>

#include "verdict.h"

struct ci_reports {
    FILE *junit; /* the test cases, in memory */
    char *junit_text;
    size_t junit_len;
    unsigned tests, failures, errors;
    double seconds;
    FILE *sarif; /* the results, in memory */
    char *sarif_text;
    size_t sarif_len;
    unsigned results;
    FILE *notes; /* SARIF tool execution notifications (unreadable dumps) */
    char *notes_text;
    size_t notes_len;
    unsigned nnotes;
};

/* 0, or -1 with a message printed. */
int ci_reports_begin(struct ci_reports *c, const struct gate_options *o);
/* Adds one dump's test case and results (v->error set: a dump that could
 * not be read). */
void ci_reports_add(struct ci_reports *c, const struct gate_options *o,
                    const struct dump_verdict *v);
/* Writes the files asked for and frees c. 0, or -1 with a message printed. */
int ci_reports_finish(struct ci_reports *c, const struct gate_options *o);

#endif
