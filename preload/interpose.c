/* The interposed functions: the malloc family, C++ operators new/delete (all
 * variants, defined in C under their mangled names) and dlclose; _exit and
 * the exec family are exec_exit.c's.
 *
 * The hot path of every function: check the thread's guard and the process
 * state, call the real function, and write one event into the thread's ring.
 * Timestamps: an allocation is stamped after the real function returned, a
 * free before the real free runs (ring.h says why). errno is what the real
 * function left. Anything unusual (first call of the process, re-entry from
 * inside the shim, tracing off) goes to the slow path.
 *
 * Compiled with -fexceptions: the real operator new may throw, and the
 * guard is released by a cleanup handler as the exception passes through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "loader.h"
#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

static inline struct mt_thread *self(void) { return &mt_thread_state; }

/* 1 when this call should be recorded; starts the shim on the first call.
 * caller: the return address of the interposed function. */
#define should_record(t) should_record_from((t), __builtin_return_address(0))
static inline __attribute__((always_inline)) int should_record_from(struct mt_thread *t,
                                                                  const void *caller)
{
    if (MT_LIKELY(mt_state == MT_STATE_ACTIVE && !t->guard && !t->in_hook &&
                  (!t->unwinding || !mt_is_unwinder(caller))))
        return 1;
    if ((t->guard || (t->unwinding && mt_is_unwinder(caller))) && !mt_frame_gone(t))
        return 0; /* ours, or libunwind's own allocation */
    if (mt_state == MT_STATE_UNINIT || mt_state == MT_STATE_STARTING)
        mt_init();
    /* inside a hooked allocator: its own, unless a signal handler's */
    return mt_state == MT_STATE_ACTIVE && (!t->in_hook || mt_hook_from_signal(t));
}

static void guard_release(int **guard) { (**guard)--; }
#define GUARD_SCOPE(t)                                                                             \
    int *guard_scope_ __attribute__((cleanup(guard_release), unused)) = &(t)->guard;               \
    (t)->guard++

/* mt_frame_enter for the rest of the scope (shim.h: a jump out of a
 * handler); before GUARD_SCOPE, so that it ends after it. */
static void frame_release(struct mt_frame_note *outer) { mt_frame_leave(&mt_thread_state, outer); }
#define FRAME_SCOPE(t)                                                                             \
    volatile uint64_t frame_mark_;                                                                 \
    struct mt_frame_note frame_scope_ __attribute__((cleanup(frame_release), unused));             \
    mt_frame_enter(t, &frame_mark_, &frame_scope_)

static void emit_alloc(struct mt_thread *t, void *p, size_t size, uint32_t function)
{
    if (MT_UNLIKELY(mt_dl_pending)) /* a module came or went (dl_track.c) */
        mt_dl_catch_up(t);
    if (MT_UNLIKELY(!t->ring)) /* the thread's first event: its signal stack */
        mt_fatal_signals_thread();
    struct mt_ring *r = mt_ring_get(t);
    if (!r)
        return;
    uint64_t ips[MT_MAX_STACK_ENTRIES];
    uint64_t hash;
    int depth = mt_stack_capture(t, ips, (int)mt_config.max_depth, &hash);
    uint64_t ts = mt_ring_stamp(r);
    int python = mt_python_capture(t, r, ips + depth, (int)mt_config.max_depth, &ts);
    /* Python frames go outside the native ones: the hash is no longer it */
    uint32_t id = mt_stack_intern(t, r, ips, depth + python, python ? 0 : hash, &ts);
    struct mt_ring_alloc *rec = mt_ring_reserve(r, sizeof *rec);
    if (rec) {
        t->pending_end = mt_ring_head(r) + sizeof *rec;
        *rec = (struct mt_ring_alloc){{MT_RING_ALLOC, sizeof *rec, ts}, (uint64_t)p, size, id, function};
        mt_ring_commit(r, sizeof *rec);
    }
    mt_ring_idle(r);
}

/* Writes the event of an allocation that returned p. in_record raised. */
void mt_emit_alloc(struct mt_thread *t, void *p, size_t size, uint32_t function)
{
    emit_alloc(t, p, size, function);
    mt_scrub_scratch();
}

void mt_write_free(struct mt_ring *r, uint64_t ts, void *p, uint32_t function)
{
    struct mt_ring_free *rec = mt_ring_reserve(r, sizeof *rec);
    if (rec) {
        mt_thread_state.pending_end = mt_ring_head(r) + sizeof *rec;
        *rec = (struct mt_ring_free){{MT_RING_FREE, sizeof *rec, ts}, (uint64_t)p, function, 0};
        mt_ring_commit(r, sizeof *rec);
    }
}

/* Records an allocation; from a signal handler that interrupted this
 * thread's own recording, queues it instead. */
static inline __attribute__((always_inline)) void record_alloc(struct mt_thread *t, void *p,
                                                               size_t size, uint32_t function)
{
    int saved = errno;
    if (MT_UNLIKELY(t->in_record) && !mt_frame_gone(t)) {
        mt_defer_event(t, MT_RING_ALLOC, p, size, function, mt_now_ns());
    } else {
        volatile uint64_t mark;
        struct mt_frame_note outer;
        mt_frame_enter(t, &mark, &outer);
        mt_pending_set(t, MT_RING_ALLOC, p, size, function, 0);
        t->in_record++;
        mt_emit_alloc(t, p, size, function);
        t->in_record--;
        mt_pending_clear(t);
        mt_frame_leave(t, &outer);
    }
    errno = saved;
}

/* The next definition of name after the shim's (dlsym RTLD_NEXT, made
 * guarded: a failed lookup allocates), resolved once. */
static void *next_symbol(void **cache, const char *name)
{
    void *f = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (!f) {
        struct mt_thread *t = self();
        t->guard++;
        f = dlsym(RTLD_NEXT, name);
        t->guard--;
        __atomic_store_n(cache, f, __ATOMIC_RELAXED);
    }
    return f;
}

/* The C library's own definition, found in its symbol table once: not
 * with dlsym, whose success would clear an error the program has yet to
 * read with dlerror. */
static void *libc_own(void **cache, const char *name)
{
    void *f = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (!f) {
        f = mt_libc_symbol(name);
        __atomic_store_n(cache, f, __ATOMIC_RELAXED);
    }
    return f;
}

/* ---- pass-through (guard raised, tracing off, or still resolving) ------ */

static void *pass_malloc(size_t n)
{
    return mt_real.malloc ? mt_real.malloc(n) : mt_bootstrap_alloc(n, 16);
}

static void pass_free(void *p)
{
    if (p && !mt_is_bootstrap(p) && mt_real.free)
        mt_real.free(p);
}

static void *pass_calloc(size_t n, size_t size)
{
    if (mt_real.calloc)
        return mt_real.calloc(n, size);
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return NULL;
    return mt_bootstrap_alloc(total, 16); /* static memory: already zero */
}

static void *pass_realloc(void *p, size_t n)
{
    if (p && mt_is_bootstrap(p)) {
        void *q = pass_malloc(n);
        if (q) {
            size_t old = mt_bootstrap_size(p);
            memcpy(q, p, old < n ? old : n);
        }
        return q;
    }
    return mt_real.realloc ? mt_real.realloc(p, n) : mt_bootstrap_alloc(n, 16);
}

/* ---- the C allocation functions ------------------------------------------ */

EXPORT void *malloc(size_t n)
{
    struct mt_thread *t = self();
    if (MT_UNLIKELY(!should_record(t)))
        return pass_malloc(n);
    void *p = mt_real.malloc(n);
    if (p)
        record_alloc(t, p, n, MT_FN_MALLOC);
    return p;
}

EXPORT void *calloc(size_t n, size_t size)
{
    struct mt_thread *t = self();
    if (MT_UNLIKELY(!should_record(t)))
        return pass_calloc(n, size);
    void *p = mt_real.calloc(n, size);
    if (p)
        record_alloc(t, p, mt_tls_adjust_calloc(__builtin_return_address(0), n, size), MT_FN_CALLOC);
    return p;
}

static inline __attribute__((always_inline)) void free_as(void *p, uint32_t function,
                                                          void (*real_free)(void *))
{
    struct mt_thread *t = self();
    if (MT_UNLIKELY(!should_record(t) || mt_is_bootstrap(p))) {
        if (real_free && !mt_is_bootstrap(p))
            real_free(p);
        else
            pass_free(p);
        return;
    }
    int saved = errno;
    if (MT_UNLIKELY(t->in_record) && !mt_frame_gone(t)) { /* a signal handler's free */
        uint64_t ts = mt_now_ns();
        real_free(p);
        mt_defer_event(t, MT_RING_FREE, p, 0, function, ts);
        errno = saved;
        return;
    }
    volatile uint64_t mark;
    struct mt_frame_note outer;
    mt_frame_enter(t, &mark, &outer);
    t->in_record++;
    if (MT_UNLIKELY(!t->ring)) /* the thread's first event: its signal stack */
        mt_fatal_signals_thread();
    struct mt_ring *r = mt_ring_get(t);
    if (r) {
        uint64_t ts = mt_ring_stamp(r);
        real_free(p);
        mt_pending_set(t, MT_RING_FREE, p, 0, function, ts);
        mt_write_free(r, ts, p, function);
        mt_ring_idle(r);
    } else {
        real_free(p);
    }
    t->in_record--;
    mt_pending_clear(t);
    mt_frame_leave(t, &outer);
    errno = saved;
}

static void real_libc_free(void *p) { mt_real.free(p); }

EXPORT void free(void *p)
{
    if (p)
        free_as(p, MT_FN_FREE, mt_real.free ? real_libc_free : NULL);
}

EXPORT void cfree(void *p) { free(p); }

/* glibc's reallocarray calls realloc through the PLT: that inner call is
 * ours, not the program's, so it passes through under the guard. */
enum { RESIZE_REALLOC, RESIZE_ARRAY, RESIZE_LIBC };

static inline __attribute__((always_inline)) void *real_resize(struct mt_thread *t, void *p,
                                                               size_t n, size_t count,
                                                               int is_array)
{
    if (is_array == RESIZE_LIBC) { /* __libc_realloc: the C library's own */
        static void *real;
        void *(*next)(void *, size_t) = libc_own(&real, "__libc_realloc");
        return (next ? next : mt_real.realloc)(p, n);
    }
    if (!is_array)
        return mt_real.realloc(p, n);
    volatile uint64_t mark;
    struct mt_frame_note outer;
    mt_frame_enter(t, &mark, &outer);
    t->guard++;
    void *q = mt_real.reallocarray(p, n, count);
    t->guard--;
    mt_frame_leave(t, &outer);
    return q;
}

/* realloc, reallocarray and __libc_realloc (is_array: RESIZE_*): a move is
 * one free (stamped before) and one allocation (stamped after);
 * realloc(p, 0) is one free. */
static inline __attribute__((always_inline)) void *realloc_as(void *p, size_t n, size_t count,
                                                              int is_array)
{
    struct mt_thread *t = self();
    if (MT_UNLIKELY(!should_record(t) || (p && mt_is_bootstrap(p)))) {
        if (is_array != RESIZE_ARRAY)
            return pass_realloc(p, n);
        size_t total;
        if (__builtin_mul_overflow(n, count, &total)) {
            errno = ENOMEM;
            return NULL;
        }
        return pass_realloc(p, total);
    }
    uint32_t function = is_array == RESIZE_ARRAY ? MT_FN_REALLOCARRAY : MT_FN_REALLOC;
    size_t size = n;
    if (is_array == RESIZE_ARRAY && __builtin_mul_overflow(n, count, &size))
        size = SIZE_MAX; /* the real reallocarray fails with ENOMEM */
    if (!p) {
        void *q = real_resize(t, NULL, n, count, is_array);
        if (q)
            record_alloc(t, q, size, function);
        return q;
    }
    if (MT_UNLIKELY(t->in_record) && !mt_frame_gone(t)) { /* a signal handler's realloc */
        uint64_t ts_free = mt_now_ns();
        void *q = real_resize(t, p, n, count, is_array);
        int saved = errno;
        if (q || size == 0)
            mt_defer_event(t, MT_RING_FREE, p, 0, function, ts_free);
        if (q)
            mt_defer_event(t, MT_RING_ALLOC, q, size, function, mt_now_ns());
        errno = saved;
        return q;
    }
    volatile uint64_t mark;
    struct mt_frame_note outer;
    mt_frame_enter(t, &mark, &outer);
    t->in_record++;
    struct mt_ring *r = mt_ring_get(t);
    uint64_t ts_free = r ? mt_ring_stamp(r) : 0;
    void *q = real_resize(t, p, n, count, is_array);
    int saved = errno;
    if (r) {
        if (q || size == 0) /* moved, resized, or freed by realloc(p, 0) */
            mt_write_free(r, ts_free, p, function);
        mt_ring_idle(r);
        if (q)
            mt_emit_alloc(t, q, size, function);
    }
    t->in_record--;
    mt_frame_leave(t, &outer);
    errno = saved;
    return q;
}

EXPORT void *realloc(void *p, size_t n) { return realloc_as(p, n, 1, RESIZE_REALLOC); }

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    if (!mt_real.reallocarray && mt_state != MT_STATE_UNINIT) {
        size_t total;
        if (__builtin_mul_overflow(n, size, &total)) {
            errno = ENOMEM;
            return NULL;
        }
        return realloc(p, total);
    }
    return realloc_as(p, n, size, RESIZE_ARRAY);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    struct mt_thread *t = self();
    if (MT_UNLIKELY(!should_record(t))) {
        if (mt_real.posix_memalign)
            return mt_real.posix_memalign(out, align, n);
        void *p = mt_bootstrap_alloc(n, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    int rc = mt_real.posix_memalign(out, align, n);
    if (rc == 0)
        record_alloc(t, *out, n, MT_FN_POSIX_MEMALIGN);
    return rc;
}

/* aligned_alloc, memalign, valloc, pvalloc: same shape, different real. */
#define ALIGNED_FUNCTION(name, params, call, bootstrap_call, size_expr, function)                  \
    EXPORT void *name params                                                                       \
    {                                                                                              \
        struct mt_thread *t = self();                                                              \
        if (MT_UNLIKELY(!should_record(t)))                                                        \
            return mt_real.name ? mt_real.name call : bootstrap_call;                              \
        void *p = mt_real.name call;                                                               \
        if (p)                                                                                     \
            record_alloc(t, p, size_expr, function);                                               \
        return p;                                                                                  \
    }

ALIGNED_FUNCTION(aligned_alloc, (size_t align, size_t n), (align, n), mt_bootstrap_alloc(n, align),
                 n, MT_FN_ALIGNED_ALLOC)
ALIGNED_FUNCTION(memalign, (size_t align, size_t n), (align, n), mt_bootstrap_alloc(n, align), n,
                 MT_FN_MEMALIGN)
ALIGNED_FUNCTION(valloc, (size_t n), (n), mt_bootstrap_alloc(n, 4096), n, MT_FN_VALLOC)
ALIGNED_FUNCTION(pvalloc, (size_t n), (n), mt_bootstrap_alloc((n + 4095) & ~(size_t)4095, 4096), n,
                 MT_FN_PVALLOC)

/* ---- glibc's __libc_* entry points ------------------------------------------
 * The same functions under glibc's exported internal names: a program that
 * calls them directly gets them recorded as the function they stand for
 * (memcheck replaces them too). Each forwards to the C library's own, or
 * to the real function of its family without it.
 * The shim itself never calls these names (init.c finds libc's functions in
 * libc's symbol table). */

static void real_libc_free_next(void *p)
{
    static void *real;
    void (*next)(void *) = libc_own(&real, "__libc_free");
    (next ? next : mt_real.free)(p);
}

EXPORT void __libc_free(void *p)
{
    if (p)
        free_as(p, MT_FN_FREE, mt_real.free ? real_libc_free_next : NULL);
}

EXPORT void *__libc_realloc(void *p, size_t n) { return realloc_as(p, n, 1, RESIZE_LIBC); }

/* __libc_malloc, __libc_calloc, __libc_memalign, __libc_valloc,
 * __libc_pvalloc: the call, and its recording, as the function named. */
#define LIBC_FUNCTION(name, family, params, args, pass, size_expr, function)                       \
    EXPORT void *__libc_##name params                                                              \
    {                                                                                              \
        static void *real;                                                                         \
        struct mt_thread *t = self();                                                              \
        if (MT_UNLIKELY(!should_record(t)))                                                        \
            return pass;                                                                           \
        void *(*next) params = libc_own(&real, "__libc_" #name);                                   \
        void *p = next ? next args : mt_real.family args;                                          \
        if (p)                                                                                     \
            record_alloc(t, p, size_expr, function);                                               \
        return p;                                                                                  \
    }

LIBC_FUNCTION(malloc, malloc, (size_t n), (n), pass_malloc(n), n, MT_FN_MALLOC)
LIBC_FUNCTION(calloc, calloc, (size_t n, size_t size), (n, size), pass_calloc(n, size),
              mt_tls_adjust_calloc(__builtin_return_address(0), n, size), MT_FN_CALLOC)
LIBC_FUNCTION(memalign, memalign, (size_t align, size_t n), (align, n),
              mt_real.memalign ? mt_real.memalign(align, n) : mt_bootstrap_alloc(n, align), n,
              MT_FN_MEMALIGN)
LIBC_FUNCTION(valloc, valloc, (size_t n), (n),
              mt_real.valloc ? mt_real.valloc(n) : mt_bootstrap_alloc(n, 4096), n, MT_FN_VALLOC)
LIBC_FUNCTION(pvalloc, pvalloc, (size_t n), (n),
              mt_real.pvalloc ? mt_real.pvalloc(n)
                              : mt_bootstrap_alloc((n + 4095) & ~(size_t)4095, 4096),
              n, MT_FN_PVALLOC)

/* ---- C++ operators --------------------------------------------------------
 * Forwarded to the next definition (libstdc++'s, which keeps its own
 * new_handler loop and bad_alloc), resolved when first called; the malloc
 * it makes inside is not recorded, so each new is one event, as memcheck
 * counts it. Without libstdc++ they fall back to the C allocator. */

static void *fallback_new(size_t n, size_t align)
{
    if (n == 0)
        n = 1;
    if (align <= 16)
        return pass_malloc(n);
    void *p = NULL;
    return mt_real.posix_memalign && mt_real.posix_memalign(&p, align, n) == 0 ? p : NULL;
}

#define NEW_FUNCTION(mangled, params, args, size, align, function)                                 \
    EXPORT void *mangled params                                                                    \
    {                                                                                              \
        static void *real;                                                                         \
        struct mt_thread *t = self();                                                              \
        int record = should_record(t);                                                             \
        void *(*next) params = next_symbol(&real, #mangled);                                       \
        void *p;                                                                                   \
        {                                                                                          \
            FRAME_SCOPE(t);                                                                        \
            GUARD_SCOPE(t);                                                                        \
            p = next ? next args : fallback_new(size, align);                                      \
        }                                                                                          \
        if (p && record)                                                                           \
            record_alloc(t, p, size, function);                                                    \
        return p;                                                                                  \
    }

typedef const struct nothrow_tag *nothrow_ref;

NEW_FUNCTION(_Znwm, (size_t n), (n), n, 0, MT_FN_NEW)
NEW_FUNCTION(_Znam, (size_t n), (n), n, 0, MT_FN_NEW_ARRAY)
NEW_FUNCTION(_ZnwmRKSt9nothrow_t, (size_t n, nothrow_ref nt), (n, nt), n, 0, MT_FN_NEW)
NEW_FUNCTION(_ZnamRKSt9nothrow_t, (size_t n, nothrow_ref nt), (n, nt), n, 0, MT_FN_NEW_ARRAY)
NEW_FUNCTION(_ZnwmSt11align_val_t, (size_t n, size_t al), (n, al), n, al, MT_FN_NEW)
NEW_FUNCTION(_ZnamSt11align_val_t, (size_t n, size_t al), (n, al), n, al, MT_FN_NEW_ARRAY)
NEW_FUNCTION(_ZnwmSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al, nothrow_ref nt),
             (n, al, nt), n, al, MT_FN_NEW)
NEW_FUNCTION(_ZnamSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al, nothrow_ref nt),
             (n, al, nt), n, al, MT_FN_NEW_ARRAY)

/* The next operator delete, called with the arguments it was given. */
#define DELETE_FUNCTION(mangled, params, args, function)                                           \
    static void *real_##mangled;                                                                   \
    static void call_##mangled params                                                              \
    {                                                                                              \
        void (*next) params = next_symbol(&real_##mangled, #mangled);                              \
        if (next)                                                                                  \
            next args;                                                                             \
        else                                                                                       \
            pass_free(p);                                                                          \
    }                                                                                              \
    EXPORT void mangled params                                                                     \
    {                                                                                              \
        if (!p)                                                                                    \
            return;                                                                                \
        struct mt_thread *t = self();                                                              \
        if (MT_UNLIKELY(!should_record(t) || mt_is_bootstrap(p))) {                                \
            if (mt_is_bootstrap(p))                                                                \
                return;                                                                            \
            GUARD_SCOPE(t);                                                                        \
            call_##mangled args;                                                                   \
            return;                                                                                \
        }                                                                                          \
        int saved = errno;                                                                         \
        if (MT_UNLIKELY(t->in_record) && !mt_frame_gone(t)) { /* a handler's delete */             \
            uint64_t ts = mt_now_ns();                                                             \
            {                                                                                      \
                GUARD_SCOPE(t);                                                                    \
                call_##mangled args;                                                               \
            }                                                                                      \
            mt_defer_event(t, MT_RING_FREE, p, 0, function, ts);                                   \
            errno = saved;                                                                         \
            return;                                                                                \
        }                                                                                          \
        volatile uint64_t mark;                                                                    \
        struct mt_frame_note outer;                                                                \
        mt_frame_enter(t, &mark, &outer);                                                          \
        t->in_record++;                                                                            \
        struct mt_ring *r = mt_ring_get(t);                                                        \
        uint64_t ts = r ? mt_ring_stamp(r) : 0;                                                    \
        {                                                                                          \
            GUARD_SCOPE(t); /* the next delete frees through free() */                            \
            call_##mangled args;                                                                   \
        }                                                                                          \
        if (r) {                                                                                   \
            mt_pending_set(t, MT_RING_FREE, p, 0, function, ts);                                   \
            mt_write_free(r, ts, p, function);                                                        \
            mt_ring_idle(r);                                                                       \
        }                                                                                          \
        t->in_record--;                                                                            \
        mt_pending_clear(t);                                                                       \
        mt_frame_leave(t, &outer);                                                                 \
        errno = saved;                                                                             \
    }

DELETE_FUNCTION(_ZdlPv, (void *p), (p), MT_FN_DELETE)
DELETE_FUNCTION(_ZdaPv, (void *p), (p), MT_FN_DELETE_ARRAY)
DELETE_FUNCTION(_ZdlPvm, (void *p, size_t n), (p, n), MT_FN_DELETE)
DELETE_FUNCTION(_ZdaPvm, (void *p, size_t n), (p, n), MT_FN_DELETE_ARRAY)
DELETE_FUNCTION(_ZdlPvSt11align_val_t, (void *p, size_t al), (p, al), MT_FN_DELETE)
DELETE_FUNCTION(_ZdaPvSt11align_val_t, (void *p, size_t al), (p, al), MT_FN_DELETE_ARRAY)
DELETE_FUNCTION(_ZdlPvmSt11align_val_t, (void *p, size_t n, size_t al), (p, n, al), MT_FN_DELETE)
DELETE_FUNCTION(_ZdaPvmSt11align_val_t, (void *p, size_t n, size_t al), (p, n, al),
                MT_FN_DELETE_ARRAY)
DELETE_FUNCTION(_ZdlPvRKSt9nothrow_t, (void *p, nothrow_ref nt), (p, nt), MT_FN_DELETE)
DELETE_FUNCTION(_ZdaPvRKSt9nothrow_t, (void *p, nothrow_ref nt), (p, nt), MT_FN_DELETE_ARRAY)
DELETE_FUNCTION(_ZdlPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, nothrow_ref nt),
                (p, al, nt), MT_FN_DELETE)
DELETE_FUNCTION(_ZdaPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, nothrow_ref nt),
                (p, al, nt), MT_FN_DELETE_ARRAY)

/* ---- modules: dlclose ------------------------------------------------------
 * dlopen, dlmopen, dlsym and dlvsym are tail calls (dl_stubs.S, dl_track.c):
 * glibc reads their caller from the return address. dlclose does not care
 * who calls it, and libpython must be let go of before it is unmapped. */

static void sync_modules_now(void)
{
    mt_unwind_code_changed(); /* cached unwind rules may name unloaded code */
    struct mt_thread *t = self();
    if (!should_record(t))
        return;
    int saved = errno;
    t->in_record++;
    mt_modules_sync_now(t);
    t->in_record--;
    errno = saved;
}

EXPORT int dlclose(void *handle)
{
    if (!mt_real.dlclose)
        mt_init();
    int rc = mt_real.dlclose(handle);
    mt_python_after_dlclose();
    sync_modules_now();
    return rc;
}
