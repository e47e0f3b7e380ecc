/* The consumer: accepts traced processes on the unix socket, maps the rings
 * they hand over, merges each process's rings by timestamp, keeps the live
 * heap and totals, and writes one dump per process. Used by `memtrace run`
 * and, in plain LD_PRELOAD mode, by the detached `memtrace __serve`. */
#ifndef MEMTRACE_CONSUMER_H
#define MEMTRACE_CONSUMER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct consumer_options {
    const char *output_pattern; /* %p pid, %n program name, %% */
    uint32_t unwind;            /* enum mt_unwind */
    uint32_t max_depth;
    int follow_fork;
    int quiet;          /* no summary on stderr */
    uint32_t leak_check; /* enum mt_leak_check */
    int freeres;        /* free libc's one-time allocations before the scan */
    uint32_t python;    /* enum mt_python_mode */
    pid_t direct_child; /* run mode: the program we started; 0 in serve mode */
    pid_t root;         /* serve mode: the process that started us (peer.h) */
    int notices;        /* print the shim's notices on stderr */
    /* settings the shim gets in the reply to its HELLO */
    uint32_t ring_kib;      /* 0 = the shim's default */
    int unwind_verify;      /* MEMTRACE_UNWIND_VERIFY=1 given to memtrace run */
    const char *hooks;      /* the --hook-* list, or NULL */
    int python_malloc;      /* CPython uses malloc (--python-allocator malloc) */
    int detach;         /* run mode: once the program has ended, leave the
                         * descendants still running to a detached copy */
};

/* Serves until every traced process has ended (and, in run mode, the
 * direct child has been reaped). Returns the direct child's wait status, or
 * 0 in serve mode; *had_error is set when a dump could not be written. */
int consumer_serve(const struct consumer_options *options, int listen_fd, int *had_error);

/* The dumps the last consumer_serve created, in order; valid until the next
 * call. After CONSUMER_LEFT_BEHIND, only those complete when it returned. */
char *const *consumer_dumps(int *count);

/* What the last consumer_serve in run mode with .detach ended as. */
enum consumer_role {
    CONSUMER_ATTACHED,    /* it served every process to its end */
    CONSUMER_LEFT_BEHIND, /* the program ended; a detached copy serves the rest */
    CONSUMER_DETACHED,    /* this process is that copy, now done */
};
enum consumer_role consumer_role(void);
/* Processes refused at the open-file limit whose parent's trace could not
 * say so (it had ended): run's gates fail on them. */
size_t consumer_refusals_unrecorded(void);

/* After CONSUMER_LEFT_BEHIND: one line naming the processes left and their
 * dumps, for run to print. */
const char *consumer_pending_line(void);

/* Expands an output pattern for one process into buf; 0 or -1 if too long. */
int consumer_expand_pattern(const char *pattern, pid_t pid, const char *program, char *buf,
                            size_t size);

#endif
