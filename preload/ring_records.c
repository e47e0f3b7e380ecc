/* Writing records into this thread's ring (ring.h): reserving room (waiting
 * for the consumer when the ring is full), committing, the markers and
 * names; the queue of events made by signal handlers that interrupted the
 * thread's own writing, and the recovery of an event a jump out of a
 * handler abandoned. Attaching rings to threads is ring_writer.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"
#include "ring_state.h"

static uint64_t deferred_lost; /* handler events that found no room */

uint64_t mt_deferred_lost(void) { return __atomic_load_n(&deferred_lost, __ATOMIC_RELAXED); }

void mt_defer_event(struct mt_thread *t, uint32_t type, const void *p, uint64_t size,
                    uint32_t function, uint64_t ts)
{
    struct mt_ring *r = t->ring;
    uint32_t i = r ? r->ndeferred : MT_DEFERRED_MAX;
    if (!r || !r->deferred || i >= MT_DEFERRED_MAX) {
        __atomic_fetch_add(&deferred_lost, 1, __ATOMIC_RELAXED);
        mt_scrub_scratch();
        return;
    }
    struct mt_deferred *d = &r->deferred[i];
    d->type = type;
    d->function = function;
    d->ts = ts;
    d->ptr = (uint64_t)p;
    d->size = size;
    d->depth = type == MT_RING_ALLOC ? (uint32_t)mt_stack_capture_fp(t, d->ips, MT_DEFERRED_DEPTH) : 0;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    r->ndeferred = i + 1;
    mt_scrub_scratch();
}

/* Writes the events that signal handlers queued while this thread was
 * writing its own, with signals blocked so the queue holds still. They
 * were stamped after the interrupted event's stamp, so the ring stays in
 * time order. */
void mt_ring_flush_deferred(struct mt_thread *t, struct mt_ring *r)
{
    if (r->flushing)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r->flushing = 1;
    uint64_t floor_ts = 0;
    for (uint32_t i = 0; i < r->ndeferred; i++) {
        struct mt_deferred *d = &r->deferred[i];
        uint64_t ts = d->ts > floor_ts ? d->ts : floor_ts;
        if (d->type == MT_RING_ALLOC) {
            uint64_t stamp = ts;
            uint32_t id = mt_stack_intern(t, r, d->ips, (int)d->depth, 0, &stamp);
            ts = stamp > ts ? stamp : ts;
            struct mt_ring_alloc *rec = mt_ring_reserve(r, sizeof *rec);
            if (rec) {
                *rec = (struct mt_ring_alloc){{MT_RING_ALLOC, sizeof *rec, ts}, d->ptr, d->size, id,
                                              d->function};
                mt_ring_commit(r, sizeof *rec);
            }
        } else {
            struct mt_ring_free *rec = mt_ring_reserve(r, sizeof *rec);
            if (rec) {
                *rec = (struct mt_ring_free){{MT_RING_FREE, sizeof *rec, ts}, d->ptr, d->function, 0};
                mt_ring_commit(r, sizeof *rec);
            }
        }
        floor_ts = ts;
    }
    if (floor_ts > r->floor_ts)
        r->floor_ts = floor_ts;
    r->ndeferred = 0;
    r->flushing = 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    mt_scrub_scratch();
}

int mt_frame_recover(struct mt_thread *t, uintptr_t sp)
{
    uintptr_t frame = t->frame.sp;
    if (!frame)
        return 0;
    if (!t->frame.mark || *t->frame.mark == t->frame.token) { /* token intact */
        if (sp < frame)
            return 0; /* below it: a handler's call, the frame is live */
        stack_t alt;
        if (sigaltstack(NULL, &alt) == 0 && (alt.ss_flags & SS_ONSTACK) &&
            (frame < (uintptr_t)alt.ss_sp || frame >= (uintptr_t)alt.ss_sp + alt.ss_size))
            return 0; /* on the handlers' own stack: cannot tell */
    }
    int n = t->nheld < 4 ? t->nheld : 4;
    for (int i = 0; i < n; i++)
        __atomic_store_n(t->held[i], 0, __ATOMIC_RELEASE);
    t->nheld = 0;
    if (t->nocancel > 0) {
        t->nocancel = 1;
        mt_cancel_on(t);
    }
    t->guard = 0;
    t->unwinding = 0;
    /* handlers queue while the queue is written; the caller's frame is
     * the one noted meanwhile (a jump may leave it too) */
    t->frame = (struct mt_frame_note){sp, NULL, 0};
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->in_record = 1;
    struct mt_ring *r = t->ring;
    uint32_t type = t->pending.type;
    t->pending.type = 0;
    if (r && t->generation == mt_generation) {
        /* the abandoned event, if its real call was made and its record
         * not published (its stack is lost with its frames) */
        if (type && !(t->pending_end && r->head >= t->pending_end)) {
            uint64_t ts = type == MT_RING_FREE ? t->pending.ts : mt_ring_stamp(r);
            if (type == MT_RING_FREE)
                mt_write_free(r, ts, (void *)t->pending.ptr, t->pending.function);
            else
                mt_write_alloc_unstacked(r, ts, t->pending.ptr, t->pending.size,
                                         t->pending.function);
        }
        if (r->ndeferred)
            mt_ring_flush_deferred(t, r);
        /* the abandoned event's stamp: its record was never published */
        __atomic_store_n(&r->ctl->busy, 0, __ATOMIC_RELEASE);
    }
    t->in_record = 0;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->frame.sp = 0;
    return 1;
}

void mt_ring_idle(struct mt_ring *r)
{
    struct mt_thread *t = &mt_thread_state;
    if (MT_UNLIKELY(r->ndeferred) && t->ring == r)
        mt_ring_flush_deferred(t, r);
    __atomic_store_n(&r->ctl->busy, 0, __ATOMIC_RELEASE);
}

/* 1 while the consumer's end of the socket is open. */
static int consumer_alive(void)
{
    struct pollfd p = {.fd = mt_socket_fd(), .events = POLLIN};
    if (p.fd < 0 || !mt_socket_is_ours())
        return 0;
    int n = poll(&p, 1, 0);
    if (n <= 0)
        return 1;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return 0;
    char c;
    return recv(p.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0;
}

/* Waits until the consumer has made room; 0 when it is gone. */
static int wait_for_room(struct mt_ring *r, uint64_t need)
{
    for (unsigned spins = 0;; spins++) {
        r->tail_seen = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE);
        if (r->capacity - (r->head - r->tail_seen) >= need)
            return 1;
        if (spins < 64) {
            __builtin_ia32_pause();
        } else if (spins < 256) {
            sched_yield();
        } else {
            /* nanosleep and poll are cancellation points */
            struct mt_thread *t = &mt_thread_state;
            mt_cancel_off(t);
            struct timespec pause = {0, 20000};
            nanosleep(&pause, NULL);
            int gone = (spins & 1023) == 0 && !consumer_alive();
            mt_cancel_on(t);
            if (gone) {
                mt_disable("the consumer went away");
                return 0;
            }
        }
    }
}

void *mt_ring_reserve(struct mt_ring *r, uint32_t len)
{
    uint64_t offset = r->head & (r->capacity - 1);
    uint64_t to_end = r->capacity - offset;
    uint64_t need = len <= to_end ? len : to_end + len;
    if (r->capacity - (r->head - r->tail_seen) < need && !wait_for_room(r, need))
        return NULL;
    if (len > to_end) {
        /* Only type and len: the gap may be just 8 bytes. */
        struct mt_ring_record *pad = (void *)(r->data + offset);
        pad->type = MT_RING_PAD;
        pad->len = (uint32_t)to_end;
        r->head += to_end;
        offset = 0;
    }
    return r->data + offset;
}

uint64_t mt_ring_head(const struct mt_ring *r) { return r->head; }

void mt_write_alloc_unstacked(struct mt_ring *r, uint64_t ts, uint64_t ptr, uint64_t size,
                              uint32_t function)
{
    struct mt_ring_alloc *rec = mt_ring_reserve(r, sizeof *rec);
    if (rec) {
        *rec = (struct mt_ring_alloc){{MT_RING_ALLOC, sizeof *rec, ts}, ptr, size, 0, function};
        mt_ring_commit(r, sizeof *rec);
    }
    mt_scrub_scratch();
}

void mt_ring_commit(struct mt_ring *r, uint32_t len)
{
    r->head += len;
    __atomic_store_n(&r->ctl->head, r->head, __ATOMIC_RELEASE);
}

void mt_ring_write_pair(struct mt_ring *r, uint32_t type, uint64_t ts, uint32_t a, int32_t b)
{
    struct mt_ring_u32pair *rec = mt_ring_reserve(r, sizeof *rec);
    if (!rec)
        return;
    *rec = (struct mt_ring_u32pair){{type, sizeof *rec, ts}, a, b};
    mt_ring_commit(r, sizeof *rec);
}

void mt_emit_marker(struct mt_thread *t, uint32_t type, uint32_t a, int32_t b)
{
    struct mt_ring *r = mt_ring_get(t);
    if (r) {
        mt_ring_write_pair(r, type, mt_ring_stamp(r), a, b);
        mt_ring_idle(r);
    }
}

void mt_emit_incomplete(struct mt_thread *t, uint32_t reason, uint32_t count)
{
    struct mt_ring *r = mt_ring_get(t);
    if (r) {
        mt_ring_write_pair(r, MT_RING_INCOMPLETE, mt_ring_stamp(r), reason, (int32_t)count);
        mt_ring_idle(r);
        return;
    }
    /* No ring (the thread that knows found none: the descriptor limit, a
     * seccomp filter): the socket we hold carries it, or the dump would
     * say complete. One-way, as a notice (mt_log): no socket_lock, which
     * the scan holds when it reports. */
    if (mt_state != MT_STATE_ACTIVE)
        return;
    int saved = errno;
    struct mt_msg_incomplete m = {.type = MT_MSG_INCOMPLETE, .reason = reason, .count = count};
    int fd = mt_socket_fd();
    ssize_t sent = -1;
    if (fd >= 0) {
        do {
            sent = send(fd, &m, sizeof m, MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
    }
    if (sent != (ssize_t)sizeof m)
        mt_log("pid %d: cannot tell memtrace that its trace is incomplete (%s): its dump may "
               "say complete",
               (int)getpid(), strerror(sent < 0 ? errno : EMSGSIZE));
    errno = saved;
}

void mt_ring_write_name(struct mt_ring *r, uint32_t type, uint64_t ts, uint32_t a,
                        const char *text, size_t len)
{
    if (len > MT_RING_NAME_MAX)
        len = MT_RING_NAME_MAX;
    uint32_t rec_len = (uint32_t)((sizeof(struct mt_ring_name) + len + 7) & ~(size_t)7);
    struct mt_ring_name *rec = mt_ring_reserve(r, rec_len);
    if (!rec)
        return;
    rec->hdr = (struct mt_ring_record){type, rec_len, ts};
    rec->a = a;
    rec->len = (uint32_t)len;
    memcpy(rec->text, text, len);
    mt_ring_commit(r, rec_len);
}
