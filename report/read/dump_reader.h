/* Streaming reader of dump files (include/memtrace/format.h), versions
 * MT_FORMAT_OLDEST_READ to MT_FORMAT_VERSION. It holds one decompression
 * window and one record at a time: its memory does not grow with the
 * number of events. The events of an EVENTS record are returned one by one
 * as ALLOC and FREE records. A dump cut short reads up to its last whole
 * record (and says so); a corrupt one stops with a message naming the byte
 * offset.
 */
#ifndef MEMTRACE_DUMP_READER_H
#define MEMTRACE_DUMP_READER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memtrace/format.h"

struct dump_process {
    uint64_t pid, ppid, start_ns, start_realtime_ns, flags, unwind, max_depth;
    char *exe;
    char **argv;
    size_t *argv_len; /* each argument's length (it may hold a NUL) */
    uint64_t argc;
};

struct dump_segment {
    uint64_t vaddr, memsz, flags;
};

/* One decoded record. Pointers stay valid until the next dump_next call. */
struct dump_record {
    enum mt_record type;
    uint64_t time; /* absolute CLOCK_MONOTONIC ns, for records that carry one */
    uint64_t thread, function, address, size, stack; /* ALLOC, FREE, INHERIT */
    uint64_t id, depth;                              /* STACK, MODULE_*, THREAD (id = index) */
    const uint64_t *ips;                             /* STACK */
    uint64_t load_bias, tid, rss;                    /* MODULE_LOAD, THREAD, RSS */
    const char *path; /* MODULE_LOAD; PYFRAME: the file */
    size_t path_len;
    const unsigned char *build_id;
    size_t build_id_len;
    uint64_t nsegments;
    const struct dump_segment *segments;
    uint64_t allocations, frees, bytes_allocated; /* INHERIT_TOTALS; SCAN: allocations = blocks */
    uint64_t exit_how;                            /* EXIT; LEAK_KIND: the kind */
    int64_t exit_value;
    const char *function_name; /* PYFRAME (its file is path) */
    size_t function_name_len;
    uint64_t line; /* PYFRAME */
    const char *name; /* ALLOCATOR: its name (function); MARK: the label (thread) */
    size_t name_len;
    uint64_t reason, count; /* INCOMPLETE: enum mt_incomplete, how many */
};

/* One ALLOC or FREE event of an EVENTS record, as dump_next_events gives it
 * (the same fields as its ALLOC or FREE record). */
struct dump_event {
    uint64_t time; /* absolute CLOCK_MONOTONIC ns */
    uint64_t thread, function, address;
    uint64_t size, stack; /* ALLOC */
    int is_free;
};

struct dump_reader {
    FILE *file;
    void *dctx; /* ZSTD_DCtx */
    unsigned char *in;
    size_t in_len, in_pos, in_cap;
    unsigned char *buf; /* decompressed, unconsumed: [pos, len) */
    size_t pos, len, cap;
    uint64_t stream_offset; /* decompressed bytes consumed before buf[0] */
    uint64_t file_offset;   /* compressed bytes read so far */
    uint64_t last_time;
    int input_done;      /* file at EOF */
    int frame_open;      /* inside a zstd frame */
    int truncated;       /* ended before an END record */
    int saw_end;
    struct dump_process process;
    /* the frames of the last STACK or STACK_LIKE record, and a second
     * buffer the next one is decoded into (the two swap) */
    uint64_t *ips, *ips_next;
    size_t ips_cap, ips_next_cap;
    uint64_t ips_depth;
    uint64_t stacks_seen; /* STACK and STACK_LIKE records read: the last id */
    struct dump_segment *segments;
    size_t segments_cap;
    /* the EVENTS record being read: its columns' unread parts (inside buf,
     * which is not refilled until the record is used up), and the state
     * its encoding carries from event to event for the whole dump */
    struct {
        const unsigned char *p[MT_EVENTS_COLUMNS], *end[MT_EVENTS_COLUMNS];
        uint32_t left;   /* events not yet returned */
        uint64_t offset; /* stream offset of the record, for messages */
        uint64_t address, thread;
        uint64_t frees;                   /* FREE events so far */
        uint64_t recent[MT_RECENT_FREES]; /* FREE number n's address at (n - 1) % size */
        uint64_t allocs;                  /* ALLOC events so far */
        uint64_t recent_alloc[MT_RECENT_ALLOCS]; /* likewise for ALLOC events */
        int columns; /* in this dump's EVENTS records: MT_EVENTS_COLUMNS, or
                      * MT_EVENTS_COLUMNS_V2 in a version 2 dump */
    } events;
    char error[256];
};

/* Opens path and reads its PROCESS record. 0, or -1 with r->error set. */
int dump_open(struct dump_reader *r, const char *path);
/* 1: *rec holds the next record; 0: the end (r->truncated says whether it
 * was cut short); -1: corrupt, r->error says where. */
int dump_next(struct dump_reader *r, struct dump_record *rec);
/* The events left in the EVENTS record whose first event dump_next
 * returned, in order, up to max at a time: how many were written to out (0
 * when none are left; dump_next then goes on after them), or -1 when one is
 * corrupt (r->error says where). Much cheaper per event than dump_next. */
int dump_next_events(struct dump_reader *r, struct dump_event *out, int max);
void dump_close(struct dump_reader *r);

#endif
