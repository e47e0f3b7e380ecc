/* Internal declarations of the shim's DWARF unwinder: the rule of a frame,
 * read from the loaded modules' .eh_frame_hdr and .eh_frame (eh_frame.c),
 * and kept per thread by code address for the walk (unwind.c).
 */
#ifndef MEMTRACE_EH_FRAME_H
#define MEMTRACE_EH_FRAME_H

#include <stdint.h>

#include "shim.h"

/* A frame's rule, for the code address that keys it. */
enum {
    RULE_EMPTY = 0,
    RULE_OK = 1,
    RULE_END = 2,      /* outermost frame: return address undefined */
    RULE_FALLBACK = 3, /* not expressible here: libunwind walks */
};
enum { CFA_RSP = 0, CFA_RBP = 1, CFA_DEREF_RBP = 2 /* *(rbp + off) */ };

struct rule {
    uint64_t ip;
    int32_t cfa_off;
    int16_t rbp_off; /* caller's rbp saved at CFA + rbp_off; 0: not saved */
    int8_t ra_off8;  /* return address at CFA + 8 * ra_off8 */
    uint8_t kind : 2, cfa_mode : 2;
};

/* The rule of the frame executing at pc (for a caller's frame, pc is the
 * return address minus one): sets out's kind, and for RULE_OK where the CFA,
 * the return address and the caller's rbp are; leaves out->ip alone.
 * RULE_FALLBACK for whatever the rules cannot express: no module or no
 * .eh_frame_hdr holds pc, signal frames, CFA expressions other than
 * *(rbp + off), rbp or the return address kept in another register or by
 * an expression, offsets out of range. Called on a rule-table miss only. */
void mt_eh_frame_rule(uint64_t pc, struct rule *out) MT_HIDDEN;

#endif
