/* The consumer's state for one traced process image (a pid that execs gets a
 * new one), shared by consumer.c (connections, life cycle) and drain.c
 * (rings, records, dump). */
#ifndef MEMTRACE_PROCESS_H
#define MEMTRACE_PROCESS_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "analyze/heap_table.h"
#include "analyze/summary.h"
#include "dump_writer.h"
#include "stack_store.h"
#include "memtrace/ring.h"

struct consumer_ring {
    struct mt_ring_control *ctl;
    const uint8_t *data;
    uint64_t capacity;
    size_t map_size;
    uint64_t tail;        /* our position */
    uint64_t head_seen;   /* head read in this round */
    uint64_t last_ts;     /* time of the last ordered record read */
    struct mt_ring_record front; /* drain.c: our copy of the header at tail */
    uint32_t thread;      /* thread index of the current owner */
};

/* Bytes appended back to back (drain.c byte_buffer_append). */
struct byte_buffer {
    uint8_t *bytes;
    size_t len, cap;
};

/* The parent's heap at one fork(), waiting for the child to claim it. */
struct fork_snapshot {
    struct byte_buffer pyframes; /* the parent's, as in struct process */
    struct byte_buffer modules;  /* likewise */
    pid_t parent;
    uint32_t seq;
    struct heap_block *blocks; /* .stack: a number in stacks */
    long nblocks;
    struct stack_store *stacks; /* the parent's (a reference) */
    uint32_t nstacks;           /* its count at the fork */
    struct heap_totals totals;
    struct fork_snapshot *next;
};

/* An image exec'd by a traced process, until it says HELLO or is known to
 * be untraced: by the process itself (the same pid) or by a vfork child of
 * it (MT_RING_EXEC, a = 2). */
struct exec_watch {
    pid_t pid;         /* the pid that runs it, as the shim saw it */
    uint64_t since_ns; /* a HELLO of that pid from a process started after this */
    uint64_t wait_ns;  /* when the consumer first looked for it, 0: not yet */
    unsigned why;      /* MT_EXEC_*: what the file said then */
    char *image;       /* the file, or its name; NULL if it was gone */
    int known;         /* image and why read once it ran the exec'd file */
};

enum process_phase { PHASE_RUNNING, PHASE_CLOSING, PHASE_DONE };

struct process {
    pid_t pid, ppid;
    int conn;                 /* socket, -1 once closed */
    pid_t peer_pid;           /* its pid as this consumer sees it (SO_PEERCRED) */
    int pidfd;                /* while detached: a pidfd for it, else -1 */
    int detached;             /* the program closed the socket, not the end:
                                 running until the pidfd says it ended or it
                                 execs; the shim may connect again */
    int conn_ready;           /* readable (or closed) at the last poll */
    enum process_phase phase;
    uint64_t start_ns;
    uint64_t last_event_ns;
    struct consumer_ring *rings;
    uint32_t nrings, rings_cap;
    /* its spare pool (ring.h, struct mt_msg_pool), mapped whole; slots from
     * pool_next on are not in rings yet (drain.c process_pool_wake) */
    uint8_t *pool_map;
    size_t pool_size;
    uint64_t pool_capacity;
    uint32_t pool_slots, pool_next;
    struct dump_writer dump;
    char *dump_path;
    int dump_failed;          /* write error reported */
    struct heap_table live;
    struct heap_totals totals;
    struct stack_store *stacks;
    /* the Python frames it announced (its PYFRAME ring records, back to
     * back), so that a fork child's dump can name those of the stacks it
     * inherits */
    struct byte_buffer pyframes;
    /* the MODULE_LOAD records of the modules mapped now, likewise; a fork
     * child's are its parent's until it announces its own */
    struct byte_buffer modules;
    int modules_inherited;
    char **argv;
    int argc;
    char *exe;
    /* how it ended */
    int saw_exit;
    int exit_how;             /* its EXIT marker's: MT_EXIT_STATUS or MT_EXIT_SIGNAL */
    int exit_value;
    int exec_pending;
    int exec_watched;         /* its own exec is in watches (consumer.c) */
    /* images it exec'd (itself, or a vfork child of it) whose HELLO has
     * not come yet (consumer.c, exec_untraced) */
    struct exec_watch *watches;
    size_t nwatches, watches_cap;
    int waiting_for_fork;     /* a fork child not yet given its parent's heap */
    pid_t fork_parent;
    uint32_t fork_seq;
    int corrupt;              /* a ring held garbage: stop reading it */
    int rss_fd;
    uint64_t last_rss_ns;
    /* the reachability scan: the memfd mapping handed to the process */
    uint8_t *scan_map;
    size_t scan_size;
    uint64_t scan_count;      /* blocks in it: never read back from it */
    int scanned;
    int scan_deferred;        /* asked to scan before its fork snapshot came */
    /* what it could not record or check (enum mt_incomplete), as its dump
     * says it (report/analyze/summary.h): for the summary printed at its end */
    struct summary incomplete;
};

/* drain.c */
/* Moves every record that is final (ring.h's ordering rule) from the
 * process's rings into its dump. With final set the process is gone and
 * everything left is taken. Returns the number of records moved. */
long process_drain(struct process *p, int final, struct fork_snapshot **snapshots);
/* Gives a fork child the heap its parent had at the fork. */
void process_inherit(struct process *child, const struct fork_snapshot *snap);
void fork_snapshot_free(struct fork_snapshot *s);
/* The heap p has now, for the child whose fork number is seq (a child
 * made without fork(): consumer.c). */
void process_take_snapshot(struct process *p, uint32_t seq, struct fork_snapshot **list);
void process_sample_rss(struct process *p, uint64_t now);
/* Writes an INCOMPLETE record (enum mt_incomplete) into p's dump and keeps
 * it for its summary. */
/* Watches pid for the image exec'd at since_ns (add) or stops (drop). */
void process_watch_exec(struct process *p, pid_t pid, uint64_t since_ns);
void process_unwatch_exec(struct process *p, pid_t pid);
void process_note_incomplete(struct process *p, uint64_t ts, uint32_t reason, uint64_t count);

static inline uint64_t consumer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
