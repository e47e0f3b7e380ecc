/* Writes one dump file (include/memtrace/format.h): the plain header, then
 * records encoded as varints into a zstd stream, flushed every
 * MT_FLUSH_INTERVAL_MS so a dump cut short still reads up to there.
 * ALLOC and FREE events are gathered into EVENTS records, written when full,
 * at a flush, or before any other record that carries a time (STACK, THREAD
 * and PYFRAME, which only name things, may go ahead of the events gathered
 * before them). */
#ifndef MEMTRACE_DUMP_WRITER_H
#define MEMTRACE_DUMP_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "memtrace/format.h"

/* The last `size` events of one kind (FREE or ALLOC), for events that name
 * one of them (format.h, MT_EV_RECENT): event number n's address at
 * recent[(n - 1) % size], and event numbers by a hash of their address,
 * direct-mapped, in index[slots] (both allocated with the first event). */
struct recent_events {
    uint64_t count; /* events of this kind so far */
    uint64_t *recent;
    uint32_t *index;
    uint32_t size, slots;
};

/* The EVENTS record being gathered (format.h): its columns, and the state
 * its encoding carries from one event to the next for the whole dump. */
struct dump_events {
    unsigned char *column[MT_EVENTS_COLUMNS];
    size_t len[MT_EVENTS_COLUMNS], room[MT_EVENTS_COLUMNS]; /* bytes used, allocated */
    uint32_t count;      /* events gathered */
    uint32_t sure;       /* events the columns surely have room for */
    uint64_t address;    /* of the last event */
    uint64_t thread;     /* of the last event */
    struct recent_events frees;  /* an ALLOC may name one of them */
    struct recent_events allocs; /* a FREE may name one of them */
};

#define DUMP_RSS_PENDING 32

struct dump_writer {
    int fd;
    void *cctx; /* ZSTD_CCtx */
    unsigned char *buf;
    size_t len, cap;
    unsigned char *out;
    size_t out_cap;
    uint64_t last_ts;
    uint64_t last_flush_ns;
    uint64_t bytes_on_disk;
    struct dump_events events;
    /* RSS samples taken while events were gathered, written after them
     * (time, bytes), so that sampling does not cut EVENTS records short */
    uint64_t rss_pending[DUMP_RSS_PENDING][2];
    unsigned rss_count;
    /* the stack of the last STACK or STACK_LIKE record (none when
     * last_stack_known is 0: a copy could not be kept) */
    uint64_t *last_stack;
    uint64_t last_depth, last_stack_cap;
    int last_stack_known;
    int error; /* errno of the first failed write; nothing is written after */
};

/* Creates path (O_EXCL|O_NOFOLLOW, mode 0600) and takes an exclusive flock
 * that is held until dump_writer_close. Returns 0, or an errno value. */
int dump_writer_create(struct dump_writer *w, const char *path, uint64_t start_ts);
void dw_byte(struct dump_writer *w, unsigned v);
void dw_u(struct dump_writer *w, uint64_t v);
void dw_s(struct dump_writer *w, int64_t v);
void dw_str(struct dump_writer *w, const void *s, size_t n);
void dw_time(struct dump_writer *w, uint64_t ts);
/* Compresses what is buffered when the buffer is large, and flushes the
 * zstd stream when MT_FLUSH_INTERVAL_MS have passed since the last flush. */
void dump_writer_tick(struct dump_writer *w, uint64_t now_ns);
/* Ends the zstd stream and closes; returns 0 or the errno of a failure. */
int dump_writer_close(struct dump_writer *w);

/* One function per record type of format.h, fields in its order. */
struct dump_process_info {
    uint64_t pid, ppid, start_ns, start_realtime_ns, flags, unwind, max_depth;
    const char *exe;
    int argc;
    char *const *argv;
};
void dump_write_process(struct dump_writer *w, const struct dump_process_info *p);
void dump_write_module_load(struct dump_writer *w, uint64_t ts, uint64_t id, uint64_t bias,
                            const char *path, size_t path_len, const void *build_id,
                            size_t build_id_len, uint64_t nsegments, const uint64_t *triples);
void dump_write_module_unload(struct dump_writer *w, uint64_t ts, uint64_t id);
void dump_write_stack(struct dump_writer *w, uint64_t id, const uint64_t *ips, uint64_t depth);
void dump_write_thread(struct dump_writer *w, uint64_t index, uint64_t tid);
void dump_write_alloc(struct dump_writer *w, uint64_t ts, uint64_t thread, uint64_t function,
                      uint64_t address, uint64_t size, uint64_t stack);
void dump_write_free(struct dump_writer *w, uint64_t ts, uint64_t thread, uint64_t function,
                     uint64_t address);
void dump_write_rss(struct dump_writer *w, uint64_t ts, uint64_t rss);
void dump_write_inherit(struct dump_writer *w, uint64_t address, uint64_t size, uint64_t stack);
void dump_write_inherit_totals(struct dump_writer *w, uint64_t allocations, uint64_t frees,
                               uint64_t bytes_allocated);
void dump_write_exit(struct dump_writer *w, uint64_t ts, uint64_t how, int64_t value);
void dump_write_end(struct dump_writer *w, uint64_t ts);
void dump_write_scan(struct dump_writer *w, uint64_t ts, uint64_t nblocks);
void dump_write_leak_kind(struct dump_writer *w, uint64_t address, uint64_t kind);
void dump_write_pyframe(struct dump_writer *w, uint64_t id, uint64_t line, const char *function,
                        size_t function_len, const char *file, size_t file_len);
void dump_write_allocator(struct dump_writer *w, uint64_t function, const char *name, size_t len);
void dump_write_mark(struct dump_writer *w, uint64_t ts, uint64_t thread, const char *label,
                     size_t len);
/* Something the process's figures lack: reason is enum mt_incomplete. */
void dump_write_incomplete(struct dump_writer *w, uint64_t ts, uint64_t reason, uint64_t count);

#endif
