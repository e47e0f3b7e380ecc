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
