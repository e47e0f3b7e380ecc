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
#define COMPRESSION_LEVEL 3

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

static void compress(struct dump_writer *w, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {w->buf, w->len, 0};
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

void dw_str(struct dump_writer *w, const void *s, size_t n)
{
    dw_u(w, n);
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

void dw_time(struct dump_writer *w, uint64_t ts)
{
    dw_s(w, (int64_t)(ts - w->last_ts));
    w->last_ts = ts;
}

void dump_writer_tick(struct dump_writer *w, uint64_t now_ns)
{
    if (w->error || !w->cctx)
        return;
    if (now_ns - w->last_flush_ns >= MT_FLUSH_INTERVAL_MS * 1000000ull) {
        compress(w, ZSTD_e_flush);
        w->last_flush_ns = now_ns;
    }
}

int dump_writer_close(struct dump_writer *w)
{
    if (w->cctx && w->fd >= 0 && !w->error)
        compress(w, ZSTD_e_end);
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
    dw_byte(w, MT_REC_MODULE_UNLOAD);
    dw_time(w, ts);
    dw_u(w, id);
}

void dump_write_stack(struct dump_writer *w, uint64_t id, const uint64_t *ips, uint64_t depth)
{
    dw_byte(w, MT_REC_STACK);
    dw_u(w, id);
    dw_u(w, depth);
    uint64_t prev = 0;
    for (uint64_t k = 0; k < depth; k++) {
        dw_s(w, (int64_t)(ips[k] - prev));
        prev = ips[k];
    }
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
    dw_byte(w, MT_REC_ALLOC);
    dw_time(w, ts);
    dw_u(w, thread);
    dw_u(w, function);
    dw_u(w, address);
    dw_u(w, size);
    dw_u(w, stack);
}

void dump_write_free(struct dump_writer *w, uint64_t ts, uint64_t thread, uint64_t function,
                     uint64_t address)
{
    dw_byte(w, MT_REC_FREE);
    dw_time(w, ts);
    dw_u(w, thread);
    dw_u(w, function);
    dw_u(w, address);
}

void dump_write_rss(struct dump_writer *w, uint64_t ts, uint64_t rss)
{
    dw_byte(w, MT_REC_RSS);
    dw_time(w, ts);
    dw_u(w, rss);
}

void dump_write_inherit(struct dump_writer *w, uint64_t address, uint64_t size, uint64_t stack)
{
    dw_byte(w, MT_REC_INHERIT);
    dw_u(w, address);
    dw_u(w, size);
    dw_u(w, stack);
}

void dump_write_inherit_totals(struct dump_writer *w, uint64_t allocations, uint64_t frees,
                               uint64_t bytes_allocated)
{
    dw_byte(w, MT_REC_INHERIT_TOTALS);
    dw_u(w, allocations);
    dw_u(w, frees);
    dw_u(w, bytes_allocated);
}

void dump_write_exit(struct dump_writer *w, uint64_t ts, uint64_t how, int64_t value)
{
    dw_byte(w, MT_REC_EXIT);
    dw_time(w, ts);
    dw_u(w, how);
    dw_s(w, value);
}

void dump_write_end(struct dump_writer *w, uint64_t ts)
{
    dw_byte(w, MT_REC_END);
    dw_time(w, ts);
}

void dump_write_scan(struct dump_writer *w, uint64_t ts, uint64_t nblocks)
{
    dw_byte(w, MT_REC_SCAN);
    dw_time(w, ts);
    dw_u(w, nblocks);
}

void dump_write_leak_kind(struct dump_writer *w, uint64_t address, uint64_t kind)
{
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
    dw_byte(w, MT_REC_ALLOCATOR);
    dw_u(w, function);
    dw_str(w, name, len);
}

void dump_write_mark(struct dump_writer *w, uint64_t ts, uint64_t thread, const char *label,
                     size_t len)
{
    dw_byte(w, MT_REC_MARK);
    dw_time(w, ts);
    dw_u(w, thread);
    dw_str(w, label, len);
}
