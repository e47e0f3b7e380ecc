/* Dump reader (see dump_reader.h): zstd streaming decompression into a
 * window, and a decoder that parses one record at a time from it, asking for
 * more input when a record straddles the end of what is decompressed. */
#define _GNU_SOURCE
#include "dump_reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "memtrace/varint.h"

#define MAX_RECORD (64u << 20) /* no legitimate record is this large */

static int fail(struct dump_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return -1;
}

int dump_open(struct dump_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->file = fopen(path, "rbe");
    if (!r->file)
        return fail(r, "cannot open %s: %s", path, strerror(errno));
    struct mt_file_header h;
    size_t n = fread(&h, 1, sizeof h, r->file);
    if (n < 8 || memcmp(h.magic, MT_MAGIC, 8) != 0)
        return fail(r, "%s is not a memtrace dump (bad magic at byte 0)", path);
    if (n < sizeof h)
        return fail(r, "%s is cut short inside its header (at byte %zu)", path, n);
    int known = h.version >= MT_FORMAT_OLDEST_READ && h.version <= MT_FORMAT_VERSION;
    if (known && h.flags != 0)
        return fail(r, "%s has unknown header flags 0x%x (at byte 12)", path, h.flags);
    if (!known)
        return fail(r, "%s is a version %u dump (byte 8); this memtrace reads versions %u to %u",
                    path, h.version, MT_FORMAT_OLDEST_READ, MT_FORMAT_VERSION);
    r->file_offset = sizeof h;
    r->events.columns = h.version >= 3 ? MT_EVENTS_COLUMNS : MT_EVENTS_COLUMNS_V2;
    r->dctx = ZSTD_createDCtx();
    r->in_cap = ZSTD_DStreamInSize();
    r->in = malloc(r->in_cap);
    r->cap = 1 << 20;
    r->buf = malloc(r->cap);
    if (!r->dctx || !r->in || !r->buf)
        return fail(r, "out of memory");
    struct dump_record rec;
    int got = dump_next(r, &rec);
    if (got < 0)
        return -1;
    if (got == 0 || rec.type != MT_REC_PROCESS)
        return fail(r, "%s holds no process record at stream offset 0 (file byte 16): %s", path,
                    got == 0 ? "it is empty or cut short before it" : "corrupt there");
    r->last_time = r->process.start_ns;
    return 0;
}

void dump_close(struct dump_reader *r)
{
    if (r->file)
        fclose(r->file);
    ZSTD_freeDCtx(r->dctx);
    free(r->in);
    free(r->buf);
    free(r->ips);
    free(r->ips_next);
    free(r->segments);
    free(r->process.exe);
    for (uint64_t i = 0; r->process.argv && i < r->process.argc; i++)
        free(r->process.argv[i]);
    free(r->process.argv);
    free(r->process.argv_len);
    memset(r, 0, sizeof *r);
}

/* Decompresses more into buf. 1 if bytes were added, 0 at the end of input,
 * -1 on corrupt compressed data. */
static int refill(struct dump_reader *r)
{
    if (r->pos > 0) { /* keep only what is unconsumed */
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->stream_offset += r->pos;
        r->pos = 0;
    }
    if (r->len == r->cap) {
        if (r->cap >= 2 * MAX_RECORD)
            return fail(r, "corrupt dump: a record at stream offset %llu is larger than %u bytes",
                        (unsigned long long)r->stream_offset, MAX_RECORD);
        unsigned char *q = realloc(r->buf, r->cap * 2);
        if (!q)
            return fail(r, "out of memory");
        r->buf = q;
        r->cap *= 2;
    }
    for (;;) {
        if (r->in_pos == r->in_len && !r->input_done) {
            r->in_len = fread(r->in, 1, r->in_cap, r->file);
            r->in_pos = 0;
            r->file_offset += r->in_len;
            if (r->in_len == 0)
                r->input_done = 1;
        }
        if (r->in_pos == r->in_len && r->input_done)
            return 0;
        ZSTD_inBuffer in = {r->in, r->in_len, r->in_pos};
        ZSTD_outBuffer out = {r->buf + r->len, r->cap - r->len, 0};
        size_t ret = ZSTD_decompressStream(r->dctx, &out, &in);
        if (ZSTD_isError(ret))
            return fail(r, "corrupt dump: compressed data is damaged near byte %llu (%s)",
                        (unsigned long long)(r->file_offset - (r->in_len - in.pos)),
                        ZSTD_getErrorName(ret));
        r->in_pos = in.pos;
        r->frame_open = ret != 0;
        r->len += out.pos;
        if (out.pos > 0)
            return 1;
    }
}

/* ---- decoding one record from [p, end) ---------------------------------- */

struct cursor {
    const unsigned char *p, *end;
    int status; /* 0 ok, 1 incomplete, -1 malformed */
};

static uint64_t get_u(struct cursor *c)
{
    uint64_t v = 0;
    if (c->status)
        return 0;
    int n = mt_varint_get(c->p, c->end, &v);
    if (n <= 0) {
        c->status = n == 0 ? 1 : -1;
        return 0;
    }
    c->p += n;
    return v;
}

static int64_t get_s(struct cursor *c) { return mt_unzigzag(get_u(c)); }

static const unsigned char *get_bytes(struct cursor *c, size_t *len)
{
    uint64_t n = get_u(c);
    if (c->status)
        return NULL;
    if (n > MAX_RECORD) {
        c->status = -1;
        return NULL;
    }
    if ((uint64_t)(c->end - c->p) < n) {
        c->status = 1;
        return NULL;
    }
    const unsigned char *s = c->p;
    c->p += n;
    *len = (size_t)n;
    return s;
}

static char *dup_bytes(const unsigned char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int decode(struct dump_reader *r, struct cursor *c, struct dump_record *rec)
{
    unsigned type = *c->p++;
    memset(rec, 0, sizeof *rec);
    rec->type = (enum mt_record)type;
    size_t n = 0;
    switch (type) {
    case MT_REC_PROCESS: {
        struct dump_process *p = &r->process;
        if (p->exe)
            return -1; /* only one per dump */
        uint64_t f[7];
        for (int i = 0; i < 7; i++)
            f[i] = get_u(c);
        const unsigned char *exe = get_bytes(c, &n);
        size_t exe_len = n;
        uint64_t argc = get_u(c);
        if (c->status)
            return c->status;
        if (argc > 1u << 20)
            return -1;
        struct cursor probe = *c;
        for (uint64_t i = 0; i < argc && !probe.status; i++)
            get_bytes(&probe, &n);
        if (probe.status)
            return probe.status;
        p->pid = f[0], p->ppid = f[1], p->start_ns = f[2], p->start_realtime_ns = f[3];
        p->flags = f[4], p->unwind = f[5], p->max_depth = f[6];
        p->exe = dup_bytes(exe, exe_len);
        p->argv = calloc(argc + 1, sizeof *p->argv);
        p->argv_len = calloc(argc + 1, sizeof *p->argv_len);
        if (!p->exe || !p->argv || !p->argv_len)
            return -1;
        for (uint64_t i = 0; i < argc; i++) {
            const unsigned char *a = get_bytes(c, &n);
            p->argv[i] = dup_bytes(a, n);
            p->argv_len[i] = p->argv[i] ? n : 0;
        }
        p->argc = argc;
        r->last_time = p->start_ns;
        return 0;
    }
    case MT_REC_MODULE_LOAD: {
        int64_t dt = get_s(c);
        rec->id = get_u(c);
        rec->load_bias = get_u(c);
        const unsigned char *path = get_bytes(c, &rec->path_len);
        rec->build_id = get_bytes(c, &rec->build_id_len);
        rec->nsegments = get_u(c);
        if (c->status)
            return c->status;
        if (rec->nsegments > 4096)
            return -1;
        if (rec->nsegments > r->segments_cap) {
            struct dump_segment *s = realloc(r->segments, rec->nsegments * sizeof *s);
            if (!s)
                return -1;
            r->segments = s;
            r->segments_cap = rec->nsegments;
        }
        for (uint64_t i = 0; i < rec->nsegments; i++) {
            r->segments[i].vaddr = get_u(c);
            r->segments[i].memsz = get_u(c);
            r->segments[i].flags = get_u(c);
        }
        rec->path = (const char *)path;
        rec->segments = r->segments;
        rec->time = r->last_time + (uint64_t)dt;
        return c->status;
    }
    case MT_REC_MODULE_UNLOAD:
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->id = get_u(c);
        return c->status;
    case MT_REC_STACK:
    case MT_REC_STACK_LIKE: {
        /* decoded into ips_next, so that the last stack stays whole until
         * this record is (it may be cut short and read again) */
        uint64_t inner = 0, outer = 0, n;
        rec->id = get_u(c);
        if (rec->type == MT_REC_STACK_LIKE) {
            inner = get_u(c);
            outer = get_u(c);
        }
        n = get_u(c);
        if (c->status)
            return c->status;
        if (rec->type == MT_REC_STACK_LIKE && (inner > r->ips_depth || outer > r->ips_depth - inner))
            return -1;
        /* ids 1, 2, ... in order, and the format's depth: what a reader
         * keeps per stack is then bounded by the records it really read */
        if (rec->id != r->stacks_seen + 1 || n > MT_STACK_DEPTH_MAX ||
            inner + outer + n > MT_STACK_DEPTH_MAX)
            return -1;
        rec->depth = inner + outer + n;
        if (rec->depth > r->ips_next_cap) {
            uint64_t *q = realloc(r->ips_next, rec->depth * sizeof *q);
            if (!q)
                return -1;
            r->ips_next = q;
            r->ips_next_cap = rec->depth;
        }
        uint64_t *ips = r->ips_next;
        if (inner)
            memcpy(ips, r->ips, inner * sizeof *ips);
        uint64_t prev = inner ? ips[inner - 1] : 0;
        for (uint64_t i = inner; i < inner + n; i++)
            ips[i] = prev = prev + (uint64_t)get_s(c);
        if (c->status)
            return c->status;
        if (outer)
            memcpy(ips + inner + n, r->ips + r->ips_depth - outer, outer * sizeof *ips);
        r->ips_next = r->ips;
        r->ips = ips;
        size_t cap = r->ips_next_cap;
        r->ips_next_cap = r->ips_cap;
        r->ips_cap = cap;
        r->ips_depth = rec->depth;
        r->stacks_seen++;
        rec->type = MT_REC_STACK;
        rec->ips = r->ips;
        return 0;
    }
    case MT_REC_THREAD:
        rec->id = get_u(c);
        rec->tid = get_u(c);
        return c->status;
    /* Blocks never sit at address 0 (the recorder writes no failed call):
     * a block record naming it is corrupt. */
    case MT_REC_ALLOC:
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->thread = get_u(c);
        rec->function = get_u(c);
        rec->address = get_u(c);
        rec->size = get_u(c);
        rec->stack = get_u(c);
        return c->status ? c->status : rec->address ? 0 : -1;
    case MT_REC_FREE:
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->thread = get_u(c);
        rec->function = get_u(c);
        rec->address = get_u(c);
        return c->status ? c->status : rec->address ? 0 : -1;
    case MT_REC_RSS:
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->rss = get_u(c);
        return c->status;
    case MT_REC_INHERIT:
        rec->address = get_u(c);
        rec->size = get_u(c);
        rec->stack = get_u(c);
        return c->status ? c->status : rec->address ? 0 : -1;
    case MT_REC_INHERIT_TOTALS:
        rec->allocations = get_u(c);
        rec->frees = get_u(c);
        rec->bytes_allocated = get_u(c);
        return c->status;
    case MT_REC_EXIT:
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->exit_how = get_u(c);
        rec->exit_value = get_s(c);
        return c->status;
    case MT_REC_END:
        rec->time = r->last_time + (uint64_t)get_s(c);
        return c->status;
    case MT_REC_SCAN:
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->allocations = get_u(c); /* blocks scanned */
        return c->status;
    case MT_REC_LEAK_KIND:
        rec->address = get_u(c);
        rec->exit_how = get_u(c); /* the kind */
        return c->status;
    case MT_REC_PYFRAME: {
        rec->id = get_u(c);
        rec->line = get_u(c);
        const unsigned char *function = get_bytes(c, &rec->function_name_len);
        const unsigned char *file = get_bytes(c, &rec->path_len);
        rec->function_name = (const char *)function;
        rec->path = (const char *)file;
        if (c->status)
            return c->status;
        return rec->id == 0 || rec->id > UINT32_MAX || rec->line > INT32_MAX ? -1 : 0;
    }
    /* Names and labels are at most 255 bytes; a custom function's id is in
     * [MT_FN_CUSTOM_BASE, MT_FN_CUSTOM_LIMIT). */
    case MT_REC_ALLOCATOR:
        rec->function = get_u(c);
        rec->name = (const char *)get_bytes(c, &rec->name_len);
        if (c->status)
            return c->status;
        return rec->function >= MT_FN_CUSTOM_BASE && rec->function < MT_FN_CUSTOM_LIMIT &&
                       rec->name_len > 0 && rec->name_len <= 255
                   ? 0 : -1;
    case MT_REC_INCOMPLETE: /* a reason this reader does not know is still one */
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->reason = get_u(c);
        rec->count = get_u(c);
        return c->status;
    case MT_REC_MARK:
        rec->time = r->last_time + (uint64_t)get_s(c);
        rec->thread = get_u(c);
        rec->name = (const char *)get_bytes(c, &rec->name_len);
        return c->status ? c->status : rec->name_len <= 255 ? 0 : -1;
    case MT_REC_EVENTS: {
        const unsigned char *start = c->p - 1;
        uint64_t count = get_u(c), len[MT_EVENTS_COLUMNS] = {0}, total = 0;
        for (int k = 0; k < r->events.columns; k++) {
            len[k] = get_u(c);
            if (len[k] > MAX_RECORD)
                return -1;
            total += len[k];
        }
        if (c->status)
            return c->status;
        if (count == 0 || count > MT_EVENTS_MAX || len[MT_EVC_HEAD] != count ||
            len[MT_EVC_TIME_LOW] != count)
            return -1;
        if ((uint64_t)(c->end - c->p) < total)
            return 1;
        for (int k = 0; k < MT_EVENTS_COLUMNS; k++) {
            r->events.p[k] = c->p;
            r->events.end[k] = c->p + len[k];
            c->p += len[k];
        }
        r->events.left = (uint32_t)count;
        r->events.offset = r->stream_offset + (uint64_t)(start - r->buf);
        return 0;
    }
    default:
        return -1;
    }
}

/* ---- the events of an EVENTS record -------------------------------------- */

/* The columns' unread parts and the state the encoding carries from event
 * to event, copied out of the reader while a batch is decoded, so that the
 * compiler keeps them in registers. */
struct event_cursor {
    const unsigned char *p[MT_EVENTS_COLUMNS], *end[MT_EVENTS_COLUMNS];
    uint64_t address, thread, time, frees, allocs;
    int bad;
};

static inline __attribute__((always_inline)) uint64_t column_u(struct event_cursor *c, int k)
{
    const unsigned char *p = c->p[k];
    if (p < c->end[k] && *p < 0x80) { /* most are one byte */
        c->p[k] = p + 1;
        return *p;
    }
    uint64_t v = 0;
    int n = mt_varint_get(p, c->end[k], &v);
    if (n <= 0) {
        c->bad = 1;
        return 0;
    }
    c->p[k] = p + n;
    return v;
}

static inline __attribute__((always_inline)) uint64_t column_byte(struct event_cursor *c, int k)
{
    if (c->p[k] == c->end[k]) {
        c->bad = 1;
        return 0;
    }
    return *c->p[k]++;
}

/* Decodes the next event into e; c->bad is set if it is corrupt. */
static inline __attribute__((always_inline)) void
decode_event(struct event_cursor *c, uint64_t *recent, uint64_t *recent_alloc,
             struct dump_event *e)
{
    unsigned head = (unsigned)column_byte(c, MT_EVC_HEAD);
    e->is_free = (head & MT_EV_FREE) != 0;
    e->function = head & MT_EV_FUNCTION ? head & MT_EV_FUNCTION : column_u(c, MT_EVC_FUNCTIONS);
    if (head & MT_EV_THREAD)
        c->thread = column_u(c, MT_EVC_THREADS);
    e->thread = c->thread;
    uint64_t time = column_byte(c, MT_EVC_TIME_LOW);
    time |= column_u(c, MT_EVC_TIME_HIGH) << 8;
    c->time += (uint64_t)mt_unzigzag(time);
    e->time = c->time;
    if (head & MT_EV_RECENT && e->is_free) {
        uint64_t back = column_u(c, MT_EVC_RECENT_ALLOC);
        if (back >= MT_RECENT_ALLOCS || back >= c->allocs)
            c->bad = 1;
        else
            c->address = recent_alloc[(c->allocs - 1 - back) % MT_RECENT_ALLOCS];
    } else if (head & MT_EV_RECENT) {
        uint64_t back = column_u(c, MT_EVC_RECENT);
        if (back >= MT_RECENT_FREES || back >= c->frees)
            c->bad = 1;
        else
            c->address = recent[(c->frees - 1 - back) % MT_RECENT_FREES];
    } else {
        uint64_t code = column_byte(c, MT_EVC_ADDRESS_0);
        code |= column_byte(c, MT_EVC_ADDRESS_1) << 8;
        code |= column_u(c, MT_EVC_ADDRESS_HIGH) << 16;
        uint64_t delta = (uint64_t)mt_unzigzag(code);
        c->address += head & MT_EV_ODD_ADDRESS ? delta : delta << 4;
    }
    e->address = c->address;
    if (e->is_free) {
        recent[c->frees++ % MT_RECENT_FREES] = e->address;
        e->size = e->stack = 0;
    } else {
        recent_alloc[c->allocs++ % MT_RECENT_ALLOCS] = e->address;
        e->size = column_byte(c, MT_EVC_SIZE_LOW);
        e->size |= column_u(c, MT_EVC_SIZE_HIGH) << 8;
        e->stack = column_byte(c, MT_EVC_STACK_LOW);
        e->stack |= column_u(c, MT_EVC_STACK_HIGH) << 8;
    }
    /* Blocks never sit at address 0: an event naming it is corrupt. */
    c->bad |= !e->address;
}

int dump_next_events(struct dump_reader *r, struct dump_event *out, int max)
{
    if (max <= 0 || !r->events.left)
        return 0;
    struct event_cursor c;
    memcpy(c.p, r->events.p, sizeof c.p);
    memcpy(c.end, r->events.end, sizeof c.end);
    c.address = r->events.address;
    c.thread = r->events.thread;
    c.time = r->last_time;
    c.frees = r->events.frees;
    c.allocs = r->events.allocs;
    c.bad = 0;
    uint32_t n = r->events.left < (uint32_t)max ? r->events.left : (uint32_t)max;
    for (uint32_t i = 0; i < n; i++)
        decode_event(&c, r->events.recent, r->events.recent_alloc, &out[i]);
    r->events.left -= n;
    if (r->events.left == 0) /* every column used up, exactly */
        for (int k = 0; k < MT_EVENTS_COLUMNS; k++)
            c.bad |= c.p[k] != c.end[k];
    if (c.bad) {
        r->events.left = 0;
        return fail(r, "corrupt dump: bad event in the EVENTS record at stream offset %llu",
                    (unsigned long long)r->events.offset);
    }
    memcpy(r->events.p, c.p, sizeof c.p);
    r->events.address = c.address;
    r->events.thread = c.thread;
    r->last_time = c.time;
    r->events.frees = c.frees;
    r->events.allocs = c.allocs;
    return (int)n;
}

/* The next event of the EVENTS record being read, as an ALLOC or FREE
 * record. 1, or -1 if it is corrupt. */
static int next_event(struct dump_reader *r, struct dump_record *rec)
{
    struct dump_event e;
    memset(rec, 0, sizeof *rec);
    if (dump_next_events(r, &e, 1) < 0)
        return -1;
    rec->type = e.is_free ? MT_REC_FREE : MT_REC_ALLOC;
    rec->time = e.time;
    rec->thread = e.thread;
    rec->function = e.function;
    rec->address = e.address;
    rec->size = e.size;
    rec->stack = e.stack;
    return 1;
}

static int carries_time(unsigned type)
{
    return type == MT_REC_MODULE_LOAD || type == MT_REC_MODULE_UNLOAD || type == MT_REC_ALLOC ||
           type == MT_REC_FREE || type == MT_REC_RSS || type == MT_REC_EXIT || type == MT_REC_END ||
           type == MT_REC_SCAN || type == MT_REC_MARK || type == MT_REC_INCOMPLETE;
}

int dump_next(struct dump_reader *r, struct dump_record *rec)
{
    if (r->saw_end)
        return 0;
    if (r->events.left)
        return next_event(r, rec);
    for (;;) {
        if (r->pos < r->len) {
            struct cursor c = {r->buf + r->pos, r->buf + r->len, 0};
            int st = decode(r, &c, rec);
            if (st == 0) {
                r->pos = (size_t)(c.p - r->buf);
                if (rec->type == MT_REC_EVENTS)
                    return next_event(r, rec);
                if (carries_time(rec->type))
                    r->last_time = rec->time;
                if (rec->type == MT_REC_END) {
                    r->saw_end = 1;
                    /* Read to the end of the zstd frame so its checksum is
                     * checked; a frame cut short means the file is. */
                    int more;
                    while ((more = refill(r)) == 1)
                        r->pos = r->len;
                    if (more < 0)
                        return -1;
                    if (r->frame_open)
                        r->truncated = 1;
                }
                return 1;
            }
            if (st < 0)
                return fail(r, "corrupt dump: bad record (type %u) at stream offset %llu",
                            r->buf[r->pos], (unsigned long long)(r->stream_offset + r->pos));
        }
        int got = refill(r);
        if (got < 0)
            return -1;
        if (got == 0) {
            r->truncated = 1; /* input ended before an END record */
            return 0;
        }
    }
}
