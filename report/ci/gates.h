/* CI gates on dumps, for `memtrace check` and `memtrace run`: leaked bytes
 * and blocks of the gated leak kinds and the heap's peak against limits,
 * with suppressions applied; the failing sites printed short enough for a CI
 * log; JUnit XML and SARIF 2.1.0 reports (ci_reports.c) and
 * --gen-suppressions. Each dump (each process) is gated on its own; the
 * options are parsed by gate_options.c. */
#ifndef MEMTRACE_GATES_H
#define MEMTRACE_GATES_H

#include <getopt.h>
#include <stdio.h>

#include "verdict.h"

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

#endif
