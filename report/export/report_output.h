/* Printing an analysis (analysis.h) as the reports of `memtrace report`. */
#ifndef MEMTRACE_REPORT_OUTPUT_H
#define MEMTRACE_REPORT_OUTPUT_H

#include <stdio.h>

#include "analyze/analysis.h"

enum report_section { SECTION_LEAKS, SECTION_PEAK, SECTION_ALLOCATIONS, SECTION_TEMPORARY };

struct suppression_matches;

/* sections: a bit mask of 1 << report_section; top: sites per list, 0 = all;
 * supp: what --suppressions matched (suppressions.h), or NULL: those leaks
 * leave the leak list for a "suppressed" one */
/* A site's stack as the SPEC section 7 JSON list of frames. */
void report_json_stack(FILE *out, const struct analysis *a, const struct site *s);
void report_print_json(FILE *out, const struct dump_reader *r, const struct analysis *a,
                       unsigned sections, int top, const struct suppression_matches *supp);
/* kinds: a bit mask of 1 << mt_leak_kind, the leak kinds listed */
void report_print_text(FILE *out, const struct dump_reader *r, const struct analysis *a,
                       unsigned sections, int top, unsigned kinds, int colour,
                       const struct suppression_matches *supp);
/* Parses "definite,indirect" (also "all") into a mask; -1 if malformed. */

#endif
