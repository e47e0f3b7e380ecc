/* Dump writer (see dump_writer.h). Runs in the consumer, never in the traced
 * process. A write error (a full disk) is remembered, reported once by the
 * caller, and ends the writing of that dump; the traced program goes on. */
#define _GNU_SOURCE
#include "dump_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <zstd.h>

#include "memtrace/format.h"
#include "memtrace/varint.h"

#define BUFFER_SIZE (256 * 1024)
/* zstd level 3 with a 4 MiB window: once FREE events name recent ALLOCs
 * (format 3) and records hold 64K events, the columns of one record repeat
 * those of records a few MiB back. Against level 1 with its 512 KiB window
 * the dump of sqlite3 200k inserts is 183-199 KB instead of 348 KB and the
 * Python dict's 315 KB instead of 950 KB, for no consumer time that shows;
 * an 8 MiB window saved 2 KB more on the dict and took 4 MiB more of the
 * consumer's memory for each busy process, a 2 MiB one lost 30 KB (numbers
 * in the commits that chose them). Level 6 made the dumps 10% smaller and
 * alloc_stress 2 threads 30% slower. A reader needs the window's memory
 * too. */
#define COMPRESSION_LEVEL 3
#define WINDOW_LOG 22
/* Events per EVENTS record: the most a record may hold, so that each
 * column's zstd block is long. Each column starts with COLUMN_FIRST_ROOM
 * bytes and doubles when it has less than a varint's room left, so its
 * memory follows what it holds (a process with few events stays small). */
#define EVENTS_PER_RECORD MT_EVENTS_MAX
#define COLUMN_FIRST_ROOM 1024
/* A column at least this long is compressed in zstd blocks of its own, so
 * that it gets Huffman tables of its own. */
#define COLUMN_OWN_BLOCK 4096
/* Slots of the indexes of recent FREE and ALLOC events by address (powers
 * of 2) */
#define RECENT_INDEX 2048
#define RECENT_ALLOC_INDEX 8192

static int write_all(struct dump_writer *w, const void *p, size_t n)
{
    const unsigned char *c = p;
    while (n && !w->error) {
        ssize_t k = write(w->fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            w->error = k < 0 ? errno : EIO;
            return -1;
        }
        c += k;
        n -= (size_t)k;
        w->bytes_on_disk += (uint64_t)k;
    }
    return w->error ? -1 : 0;
}

int dump_writer_create(struct dump_writer *w, const char *path, uint64_t start_ts)
{
    memset(w, 0, sizeof *w);
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (w->fd < 0)
        return errno;
    flock(w->fd, LOCK_EX);
    w->cctx = ZSTD_createCCtx();
    w->cap = BUFFER_SIZE;
    w->buf = malloc(w->cap);
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = malloc(w->out_cap);
    if (!w->cctx || !w->buf || !w->out) {
        dump_writer_close(w);
        unlink(path);
        return ENOMEM;
    }
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, COMPRESSION_LEVEL);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_windowLog, WINDOW_LOG);
    w->last_ts = start_ts;
    struct mt_file_header h;
    memcpy(h.magic, MT_MAGIC, 8);
    h.version = MT_FORMAT_VERSION;
    h.flags = 0;
    if (write_all(w, &h, sizeof h) != 0) {
        int e = w->error;
        dump_writer_close(w);
        unlink(path);
        return e;
    }
    return 0;
}

/* Feeds n bytes at data to zstd and writes what comes out. */
static void compress_bytes(struct dump_writer *w, const void *data, size_t n,
                           ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(left)) {
            if (!w->error)
                w->error = EIO;
            break;
        }
        if (out.pos)
            write_all(w, w->out, out.pos);
        if (w->error)
            break;
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
            break;
    }
}

/* Compresses what is buffered. */
static void compress(struct dump_writer *w, ZSTD_EndDirective mode)
{
    compress_bytes(w, w->buf, w->len, mode);
    w->len = 0;
}

static inline void reserve(struct dump_writer *w, size_t n)
{
    if (w->len + n > w->cap)
        compress(w, ZSTD_e_continue);
}

void dw_byte(struct dump_writer *w, unsigned v)
{
    reserve(w, 1);
    w->buf[w->len++] = (unsigned char)v;
}

void dw_u(struct dump_writer *w, uint64_t v)
{
    reserve(w, MT_VARINT_MAX);
    w->len += mt_varint_put(w->buf + w->len, v);
}

void dw_s(struct dump_writer *w, int64_t v) { dw_u(w, mt_zigzag(v)); }

static void dw_bytes(struct dump_writer *w, const void *s, size_t n)
{
    const unsigned char *c = s;
    while (n) {
        reserve(w, 1);
        size_t k = w->cap - w->len < n ? w->cap - w->len : n;
        memcpy(w->buf + w->len, c, k);
        w->len += k;
        c += k;
        n -= k;
    }
}

void dw_str(struct dump_writer *w, const void *s, size_t n)
{
    dw_u(w, n);
    dw_bytes(w, s, n);
}

void dw_time(struct dump_writer *w, uint64_t ts)
{
    dw_s(w, (int64_t)(ts - w->last_ts));
    w->last_ts = ts;
}

/* ---- EVENTS records (format.h) ----------------------------------------- */

/* Gives every column room for at least one more event (an event adds at
 * most a varint to each) and counts how many surely fit; -1 when out of
 * memory. */
/* Allocates q's window (once): 0, or -1 when out of memory. */
static int recent_init(struct recent_events *q, uint32_t size, uint32_t slots)
{
    if (q->recent)
        return 0;
    q->index = calloc(slots, sizeof *q->index);
    q->recent = q->index ? calloc(size, sizeof *q->recent) : NULL;
    if (!q->recent) {
        free(q->index);
        q->index = NULL;
        return -1;
    }
    q->size = size;
    q->slots = slots;
    return 0;
}

static void recent_free(struct recent_events *q)
{
    free(q->recent);
    free(q->index);
}

static int events_room(struct dump_events *e)
{
    if (recent_init(&e->frees, MT_RECENT_FREES, RECENT_INDEX) != 0 ||
        recent_init(&e->allocs, MT_RECENT_ALLOCS, RECENT_ALLOC_INDEX) != 0)
        return -1;
    size_t sure = SIZE_MAX;
    for (int k = 0; k < MT_EVENTS_COLUMNS; k++) {
        if (e->room[k] - e->len[k] < MT_VARINT_MAX) {
            size_t room = e->room[k] ? e->room[k] * 2 : COLUMN_FIRST_ROOM;
            unsigned char *q = realloc(e->column[k], room);
            if (!q)
                return -1;
            e->column[k] = q;
            e->room[k] = room;
        }
        size_t fit = (e->room[k] - e->len[k]) / MT_VARINT_MAX;
        sure = fit < sure ? fit : sure;
    }
    e->sure = (uint32_t)sure;
    return 0;
}

/* Writes the EVENTS record gathered so far, if any. */
static void events_write(struct dump_writer *w)
{
    struct dump_events *e = &w->events;
    if (!e->count)
        return;
    dw_byte(w, MT_REC_EVENTS);
    dw_u(w, e->count);
    for (int k = 0; k < MT_EVENTS_COLUMNS; k++)
        dw_u(w, e->len[k]);
    for (int k = 0; k < MT_EVENTS_COLUMNS; k++) {
        if (e->len[k] >= COLUMN_OWN_BLOCK && !w->error) {
            compress(w, ZSTD_e_flush);
            compress_bytes(w, e->column[k], e->len[k], ZSTD_e_flush);
        } else {
            dw_bytes(w, e->column[k], e->len[k]);
        }
        e->len[k] = 0;
    }
    e->count = 0;
}

/* Writes the EVENTS record gathered so far, if any, and the RSS samples
 * taken meanwhile. */
static void events_flush(struct dump_writer *w)
{
    events_write(w);
    for (unsigned i = 0; i < w->rss_count; i++) {
        dw_byte(w, MT_REC_RSS);
        dw_time(w, w->rss_pending[i][0]);
        dw_u(w, w->rss_pending[i][1]);
    }
    w->rss_count = 0;
}

static inline void column_u(struct dump_events *e, int k, uint64_t v)
{
    e->len[k] += mt_varint_put(e->column[k] + e->len[k], v);
}

static inline void column_byte(struct dump_events *e, int k, unsigned v)
{
    e->column[k][e->len[k]++] = (unsigned char)v;
}

static inline size_t recent_slot(const struct recent_events *q, uint64_t address)
{
    return (size_t)((address >> 4) * 0x9e3779b97f4a7c15ull >> 32) & (q->slots - 1);
}

/* How many events back address was named (0: by the last one), if by one
 * of the last q->size; else -1. */
static long recent_find(const struct recent_events *q, uint64_t address)
{
    uint32_t n = q->index[recent_slot(q, address)];
    uint32_t back = (uint32_t)q->count - n; /* event numbers wrap at 2^32 alike */
    if (!n || back >= q->size || q->recent[(n - 1) % q->size] != address)
        return -1;
    return (long)back;
}

static void recent_add(struct recent_events *q, uint64_t address)
{
    uint64_t n = ++q->count;
    q->recent[(n - 1) % q->size] = address;
    q->index[recent_slot(q, address)] = (uint32_t)n;
}

/* Adds an event; 0 when it cannot be written (out of memory, or the dump
 * failed already). */
static int event_put(struct dump_writer *w, int is_free, uint64_t ts, uint64_t thread,
                     uint64_t function, uint64_t address, uint64_t size, uint64_t stack)
{
    struct dump_events *e = &w->events;
    if (w->error)
        return 0;
    if (e->count == EVENTS_PER_RECORD)
        events_flush(w);
    if (!e->sure && events_room(e) != 0) {
        w->error = ENOMEM;
        return 0;
    }
    e->sure--;
    unsigned head = is_free ? MT_EV_FREE : 0;
    if (function && function <= MT_EV_FUNCTION)
        head |= (unsigned)function;
    else
        column_u(e, MT_EVC_FUNCTIONS, function);
    if (thread != e->thread) {
        head |= MT_EV_THREAD;
        column_u(e, MT_EVC_THREADS, thread);
        e->thread = thread;
    }
    uint64_t time = mt_zigzag((int64_t)(ts - w->last_ts));
    w->last_ts = ts;
    column_byte(e, MT_EVC_TIME_LOW, time & 0xff);
    column_u(e, MT_EVC_TIME_HIGH, time >> 8);
    /* a FREE names a recent ALLOC, an ALLOC a recent FREE */
    long back = recent_find(is_free ? &e->allocs : &e->frees, address);
    if (back >= 0) {
        head |= MT_EV_RECENT;
        column_u(e, is_free ? MT_EVC_RECENT_ALLOC : MT_EVC_RECENT, (uint64_t)back);
    } else {
        int64_t delta = (int64_t)(address - e->address);
        uint64_t code;
        if (delta % 16 == 0) {
            code = mt_zigzag(delta / 16);
        } else {
            head |= MT_EV_ODD_ADDRESS;
            code = mt_zigzag(delta);
        }
        column_byte(e, MT_EVC_ADDRESS_0, code & 0xff);
        column_byte(e, MT_EVC_ADDRESS_1, (code >> 8) & 0xff);
        column_u(e, MT_EVC_ADDRESS_HIGH, code >> 16);
    }
    e->address = address;
    recent_add(is_free ? &e->frees : &e->allocs, address);
    if (!is_free) {
        column_byte(e, MT_EVC_SIZE_LOW, size & 0xff);
        column_u(e, MT_EVC_SIZE_HIGH, size >> 8);
        column_byte(e, MT_EVC_STACK_LOW, stack & 0xff);
        column_u(e, MT_EVC_STACK_HIGH, stack >> 8);
    }
    column_byte(e, MT_EVC_HEAD, head);
    e->count++;
    return 1;
}

void dump_writer_tick(struct dump_writer *w, uint64_t now_ns)
{
    if (w->error || !w->cctx)
        return;
    if (now_ns - w->last_flush_ns >= MT_FLUSH_INTERVAL_MS * 1000000ull) {
        events_flush(w);
        compress(w, ZSTD_e_flush);
        w->last_flush_ns = now_ns;
    }
}

int dump_writer_close(struct dump_writer *w)
{
    if (w->cctx && w->fd >= 0 && !w->error) {
        events_flush(w);
        compress(w, ZSTD_e_end);
    }
    for (int k = 0; k < MT_EVENTS_COLUMNS; k++)
        free(w->events.column[k]);
    recent_free(&w->events.frees);
    recent_free(&w->events.allocs);
    free(w->last_stack);
    w->last_stack = NULL;
    w->last_stack_known = 0;
    w->last_depth = w->last_stack_cap = 0;
    memset(&w->events, 0, sizeof w->events);
    if (w->fd >= 0 && close(w->fd) != 0 && !w->error)
        w->error = errno;
    w->fd = -1;
    ZSTD_freeCCtx(w->cctx);
    w->cctx = NULL;
    free(w->buf);
    free(w->out);
    w->buf = w->out = NULL;
    return w->error;
}

/* ---- records (format.h) ------------------------------------------------- */

void dump_write_process(struct dump_writer *w, const struct dump_process_info *p)
{
    events_flush(w);
    dw_byte(w, MT_REC_PROCESS);
    dw_u(w, p->pid);
    dw_u(w, p->ppid);
    dw_u(w, p->start_ns);
    dw_u(w, p->start_realtime_ns);
    dw_u(w, p->flags);
    dw_u(w, p->unwind);
    dw_u(w, p->max_depth);
    dw_str(w, p->exe, strlen(p->exe));
    dw_u(w, (uint64_t)p->argc);
    for (int i = 0; i < p->argc; i++)
        dw_str(w, p->argv[i], strlen(p->argv[i]));
}

void dump_write_module_load(struct dump_writer *w, uint64_t ts, uint64_t id, uint64_t bias,
                            const char *path, size_t path_len, const void *build_id,
                            size_t build_id_len, uint64_t nsegments, const uint64_t *triples)
{
    events_flush(w);
    dw_byte(w, MT_REC_MODULE_LOAD);
    dw_time(w, ts);
    dw_u(w, id);
    dw_u(w, bias);
    dw_str(w, path, path_len);
    dw_str(w, build_id, build_id_len);
    dw_u(w, nsegments);
    for (uint64_t i = 0; i < nsegments * 3; i++)
        dw_u(w, triples[i]);
}

void dump_write_module_unload(struct dump_writer *w, uint64_t ts, uint64_t id)
{
    events_flush(w);
    dw_byte(w, MT_REC_MODULE_UNLOAD);
    dw_time(w, ts);
    dw_u(w, id);
}

/* Remembers the stack just written, for the next one to be written like
 * it; a stack that cannot be copied leaves none. */
static void keep_stack(struct dump_writer *w, const uint64_t *ips, uint64_t depth)
{
    if (depth > w->last_stack_cap) {
        uint64_t *q = realloc(w->last_stack, depth * sizeof *q);
        if (!q) {
            w->last_stack_known = 0;
            return;
        }
        w->last_stack = q;
        w->last_stack_cap = depth;
    }
    if (depth)
        memcpy(w->last_stack, ips, depth * sizeof *ips);
    w->last_depth = depth;
    w->last_stack_known = 1;
}

void dump_write_stack(struct dump_writer *w, uint64_t id, const uint64_t *ips, uint64_t depth)
{
    /* the frames it shares with the last stack at its two ends */
    uint64_t inner = 0, outer = 0;
    if (w->last_stack_known)
        mt_stack_shared_ends(ips, depth, w->last_stack, w->last_depth, &inner, &outer);
    uint64_t prev = 0, k = 0, end = depth;
    if (inner + outer > 0) {
        dw_byte(w, MT_REC_STACK_LIKE);
        dw_u(w, id);
        dw_u(w, inner);
        dw_u(w, outer);
        dw_u(w, depth - inner - outer);
        k = inner;
        end = depth - outer;
        prev = inner ? ips[inner - 1] : 0;
    } else {
        dw_byte(w, MT_REC_STACK);
        dw_u(w, id);
        dw_u(w, depth);
    }
    for (; k < end; k++) {
        dw_s(w, (int64_t)(ips[k] - prev));
        prev = ips[k];
    }
    keep_stack(w, ips, depth);
}

void dump_write_thread(struct dump_writer *w, uint64_t index, uint64_t tid)
{
    dw_byte(w, MT_REC_THREAD);
    dw_u(w, index);
    dw_u(w, tid);
}

void dump_write_alloc(struct dump_writer *w, uint64_t ts, uint64_t thread, uint64_t function,
                      uint64_t address, uint64_t size, uint64_t stack)
{
    event_put(w, 0, ts, thread, function, address, size, stack);
}

void dump_write_free(struct dump_writer *w, uint64_t ts, uint64_t thread, uint64_t function,
                     uint64_t address)
{
    event_put(w, 1, ts, thread, function, address, 0, 0);
}

void dump_write_rss(struct dump_writer *w, uint64_t ts, uint64_t rss)
{
    if (w->rss_count == DUMP_RSS_PENDING)
        events_flush(w);
    w->rss_pending[w->rss_count][0] = ts;
    w->rss_pending[w->rss_count++][1] = rss;
}

void dump_write_inherit(struct dump_writer *w, uint64_t address, uint64_t size, uint64_t stack)
{
    events_flush(w);
    dw_byte(w, MT_REC_INHERIT);
    dw_u(w, address);
    dw_u(w, size);
    dw_u(w, stack);
}

void dump_write_inherit_totals(struct dump_writer *w, uint64_t allocations, uint64_t frees,
                               uint64_t bytes_allocated)
{
    events_flush(w);
    dw_byte(w, MT_REC_INHERIT_TOTALS);
    dw_u(w, allocations);
    dw_u(w, frees);
    dw_u(w, bytes_allocated);
}

void dump_write_exit(struct dump_writer *w, uint64_t ts, uint64_t how, int64_t value)
{
    events_flush(w);
    dw_byte(w, MT_REC_EXIT);
    dw_time(w, ts);
    dw_u(w, how);
    dw_s(w, value);
}

void dump_write_end(struct dump_writer *w, uint64_t ts)
{
    events_flush(w);
    dw_byte(w, MT_REC_END);
    dw_time(w, ts);
}

void dump_write_scan(struct dump_writer *w, uint64_t ts, uint64_t nblocks)
{
    events_flush(w);
    dw_byte(w, MT_REC_SCAN);
    dw_time(w, ts);
    dw_u(w, nblocks);
}

void dump_write_leak_kind(struct dump_writer *w, uint64_t address, uint64_t kind)
{
    events_flush(w);
    dw_byte(w, MT_REC_LEAK_KIND);
    dw_u(w, address);
    dw_u(w, kind);
}

void dump_write_pyframe(struct dump_writer *w, uint64_t id, uint64_t line, const char *function,
                        size_t function_len, const char *file, size_t file_len)
{
    dw_byte(w, MT_REC_PYFRAME);
    dw_u(w, id);
    dw_u(w, line);
    dw_str(w, function, function_len);
    dw_str(w, file, file_len);
}

void dump_write_allocator(struct dump_writer *w, uint64_t function, const char *name, size_t len)
{
    events_flush(w);
    dw_byte(w, MT_REC_ALLOCATOR);
    dw_u(w, function);
    dw_str(w, name, len);
}

void dump_write_mark(struct dump_writer *w, uint64_t ts, uint64_t thread, const char *label,
                     size_t len)
{
    events_flush(w);
    dw_byte(w, MT_REC_MARK);
    dw_time(w, ts);
    dw_u(w, thread);
    dw_str(w, label, len);
}

void dump_write_incomplete(struct dump_writer *w, uint64_t ts, uint64_t reason, uint64_t count)
{
    events_flush(w);
    dw_byte(w, MT_REC_INCOMPLETE);
    dw_time(w, ts);
    dw_u(w, reason);
    dw_u(w, count);
}
