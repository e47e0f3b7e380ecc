/* The consumer's state for one traced process image (a pid that execs gets a
 * new one), shared by consumer.c (connections, life cycle) and drain.c
 * (rings, records, dump). */
#ifndef MEMTRACE_PROCESS_H
#define MEMTRACE_PROCESS_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../report/heap_table.h"
#include "dump_writer.h"
#include "memtrace/ring.h"

struct consumer_ring {
    struct mt_ring_control *ctl;
    const uint8_t *data;
    uint64_t capacity;
    size_t map_size;
    uint64_t tail;        /* our position */
    uint64_t head_seen;   /* head read in this round */
    uint64_t last_ts;     /* time of the last ordered record read */
    uint32_t thread;      /* thread index of the current owner */
};

/* Bytes appended back to back (drain.c byte_buffer_append). */
struct byte_buffer {
    uint8_t *bytes;
    size_t len, cap;
};

/* Stacks of one process: each distinct stack once, by content, kept as the
 * dump encodes it (zigzag varint deltas): a third of the bytes of the raw
 * addresses, which matters for Python programs whose stacks run to a
 * hundred entries and more. */
struct stack_store {
    struct byte_buffer encoded; /* all stacks, encoded, back to back */
    uint64_t *offset;     /* per dump id (1-based): start in encoded */
    uint32_t *size;       /* its encoded length */
    uint32_t *depth;
    uint32_t count, cap;  /* dump ids 1..count */
    uint32_t *index;      /* open-addressing hash: dump ids, 0 empty */
    uint32_t index_mask;
    uint32_t *local;      /* process-local stack id -> dump id */
    uint32_t local_cap;
};

/* The parent's heap at one fork(), waiting for the child to claim it. */
struct fork_snapshot {
    struct byte_buffer pyframes; /* the parent's, as in struct process */
    pid_t parent;
    uint32_t seq;
    struct heap_block *blocks; /* .stack indexes stacks below (1-based) */
    long nblocks;
    struct stack_store stacks;
    struct heap_totals totals;
    struct fork_snapshot *next;
};

enum process_phase { PHASE_RUNNING, PHASE_CLOSING, PHASE_DONE };

struct process {
    pid_t pid, ppid;
    int conn;                 /* socket, -1 once closed */
    int conn_ready;           /* readable (or closed) at the last poll */
    enum process_phase phase;
    uint64_t start_ns;
    uint64_t last_event_ns;
    struct consumer_ring *rings;
    uint32_t nrings, rings_cap;
    struct dump_writer dump;
    char *dump_path;
    int dump_failed;          /* write error reported */
    struct heap_table live;
    struct heap_totals totals;
    struct stack_store stacks;
    /* the Python frames it announced (its PYFRAME ring records, back to
     * back), so that a fork child's dump can name those of the stacks it
     * inherits */
    struct byte_buffer pyframes;
    char **argv;
    int argc;
    char *exe;
    /* how it ended */
    int saw_exit;
    int exit_value;
    int exec_pending;
    int waiting_for_fork;     /* a fork child not yet given its parent's heap */
    pid_t fork_parent;
    uint32_t fork_seq;
    int corrupt;              /* a ring held garbage: stop reading it */
    int rss_fd;
    uint64_t last_rss_ns;
    /* the reachability scan: the memfd mapping handed to the process */
    uint8_t *scan_map;
    size_t scan_size;
    int scanned;
};

/* drain.c */
int stack_store_init(struct stack_store *s);
void stack_store_free(struct stack_store *s);
/* Returns the dump id of a stack, adding it (and writing its STACK record
 * to w if w is not NULL) when new; 0 when out of memory. */
uint32_t stack_store_add(struct stack_store *s, const uint64_t *ips, uint32_t depth,
                         struct dump_writer *w);
/* Decodes stack id into ips (room for MT_MAX_STACK_ENTRIES); its depth. */
uint32_t stack_store_get(const struct stack_store *s, uint32_t id, uint64_t *ips);

/* Moves every record that is final (ring.h's ordering rule) from the
 * process's rings into its dump. With final set the process is gone and
 * everything left is taken. Returns the number of records moved. */
long process_drain(struct process *p, int final, struct fork_snapshot **snapshots);
/* Gives a fork child the heap its parent had at the fork. */
void process_inherit(struct process *child, const struct fork_snapshot *snap);
void fork_snapshot_free(struct fork_snapshot *s);
void process_sample_rss(struct process *p, uint64_t now);

static inline uint64_t consumer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
