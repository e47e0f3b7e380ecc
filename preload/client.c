/* The functions behind the client API (include/memtrace/memtrace.h): blocks
 * of an allocator the program annotates by hand, recorded with the allocator
 * "client" (MT_FN_CLIENT), and named marks on the timeline.
 *
 * The header references these symbols weakly: a program built with it and
 * run without memtrace finds them undefined and skips the call. They are
 * the only symbols of libmemtrace meant to be called by the program.
 *
 * Runs inside the traced process: no malloc; a call from a signal handler
 * that interrupted the recording of another event is queued, as in
 * interpose.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

static int active(struct mt_thread *t)
{
    if (mt_state == MT_STATE_UNINIT)
        mt_init();
    return mt_state == MT_STATE_ACTIVE && !t->guard;
}

static void client_alloc(struct mt_thread *t, const void *p, size_t size)
{
    if (MT_UNLIKELY(t->in_record)) {
        mt_defer_event(t, MT_RING_ALLOC, p, size, MT_FN_CLIENT, mt_now_ns());
        return;
    }
    t->in_record++;
    mt_emit_alloc(t, (void *)p, size, MT_FN_CLIENT);
    t->in_record--;
}

static void client_free(struct mt_thread *t, const void *p)
{
    if (MT_UNLIKELY(t->in_record)) {
        mt_defer_event(t, MT_RING_FREE, p, 0, MT_FN_CLIENT, mt_now_ns());
        return;
    }
    t->in_record++;
    struct mt_ring *r = mt_ring_get(t);
    if (r) {
        mt_write_free(r, mt_ring_stamp(r), (void *)p, MT_FN_CLIENT);
        mt_ring_idle(r);
    }
    t->in_record--;
}

EXPORT void memtrace_client_alloc(const void *p, size_t size)
{
    struct mt_thread *t = &mt_thread_state;
    int saved = errno;
    if (p && active(t))
        client_alloc(t, p, size);
    errno = saved;
}

EXPORT void memtrace_client_free(const void *p)
{
    struct mt_thread *t = &mt_thread_state;
    int saved = errno;
    if (p && active(t))
        client_free(t, p);
    errno = saved;
}

/* As realloc is counted (SPEC section 4): the old block freed, the new one
 * allocated; a NULL old block is an allocation, a NULL new one a free. */
EXPORT void memtrace_client_realloc(const void *old, const void *p, size_t size)
{
    struct mt_thread *t = &mt_thread_state;
    int saved = errno;
    if (active(t)) {
        if (old)
            client_free(t, old);
        if (p)
            client_alloc(t, p, size);
    }
    errno = saved;
}

EXPORT void memtrace_client_mark(const char *label)
{
    struct mt_thread *t = &mt_thread_state;
    int saved = errno;
    if (label && active(t) && !t->in_record) { /* a handler's mark is dropped */
        t->in_record++;
        struct mt_ring *r = mt_ring_get(t);
        if (r) {
            mt_ring_write_name(r, MT_RING_MARK, mt_ring_stamp(r), 0, label, strlen(label));
            mt_ring_idle(r);
        }
        t->in_record--;
    }
    errno = saved;
}
