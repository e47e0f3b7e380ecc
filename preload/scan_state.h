/* The exit scan's own state, shared by its files: scan.c (where the
 * program's stack ends, the exchange with the consumer, the entry point),
 * scan_threads.c (stopping the other threads; in a Go process, the dead
 * parts of their stacks) and scan_roots.c (memcheck's marking over the
 * roots). Runs inside the traced process: no malloc, no stdio. */
#ifndef MEMTRACE_SCAN_STATE_H
#define MEMTRACE_SCAN_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#include "shim.h"

#define MAX_THREADS 4096

struct stopped {
    uintptr_t sp;
    uintptr_t own_tls; /* the thread's struct mt_thread: never a root */
    uintptr_t go_g;    /* Go's current g on the thread (go_exit.c), or 0 */
    uintptr_t altstack[2]; /* Go: the signal stack the handler runs on, or 0s */
    uint64_t regs[NGREG];
};

enum { UNREACHED = 0, POSSIBLE = 1, REACHABLE = 2, INDIRECT = 3 };

struct marker {
    const struct mt_scan_block *blocks;
    uint64_t count;
    uint8_t *state;
    uint32_t *stack; /* mark stack of block indexes */
    uint64_t depth, stack_cap;
    uint64_t lo, hi; /* lowest block start, highest block end */
};

/* memcheck scans a stack from its stack pointer less the red zone (the
 * 128 bytes below it that leaf code may use: VG_STACK_REDZONE_SZB). */
#define RED_ZONE 128

/* What the program itself holds in the thread that ends the process: its
 * stack from sp up, and its registers. Never the frames of the shim, of
 * libc's exit machinery or of the scan below sp: they hold stale copies of
 * block addresses (the shim's frames of the last malloc left them there). */
struct program_view {
    uintptr_t sp;
    int nregs;
    uint64_t regs[NGREG];
};

/* scan_threads.c: the stopped threads' states (MAX_THREADS, mmap'd) and how
 * many saved theirs; in a Go process, the ranges that are never roots. */
extern struct stopped *scan_stopped MT_HIDDEN;
extern volatile int scan_stopped_count MT_HIDDEN;
extern uintptr_t (*scan_go_dead)[2] MT_HIDDEN;
extern int scan_go_dead_count MT_HIDDEN;

/* scan_roots.c */
void mt_scan_drain_marks(struct marker *m) MT_HIDDEN;
void mt_scan_mark_cliques(struct marker *m) MT_HIDDEN;
void mt_scan_roots(struct marker *m, const struct program_view *self) MT_HIDDEN;
/* scan_threads.c */
int mt_scan_signal_other_threads(int sig) MT_HIDDEN;
int mt_scan_stop_the_world(int go) MT_HIDDEN;
int mt_scan_wait_for_stragglers(int unstopped) MT_HIDDEN;
void mt_scan_release_the_world(void) MT_HIDDEN;
const char *mt_scan_go_bounds(const struct mt_go_exit_view *view) MT_HIDDEN;

#endif
