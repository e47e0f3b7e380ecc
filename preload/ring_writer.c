/* The producer side of the per-thread shared-memory rings (layout and the
 * ordering protocol: include/memtrace/ring.h).
 *
 * A thread gets a ring on its first event: from the process's list of rings
 * whose threads have ended, or a new memfd handed to the consumer over the
 * socket (one round trip per new ring, none per event), or, when the
 * program has taken that away (RLIMIT_NOFILE lowered, a seccomp filter),
 * a slot of the spare pool made when the process connected (ring.h,
 * struct mt_msg_pool: an atomic, no descriptor, no syscall). When the ring
 * is full the producer waits for the consumer: an event is never dropped.
 * It only gives up, and the process goes untraced, if the consumer is gone.
 * Writing the records themselves is ring_records.c's (ring_state.h: the
 * ring as both see it).
 *
 * Runs inside the traced process: ring descriptors come from mmap'd pages,
 * never from malloc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/membarrier.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"
#include "ring_state.h"


static struct mt_ring *all_rings;  /* every ring of this process */
static struct mt_ring *free_rings; /* rings whose thread has ended */
static int rings_lock;             /* spinlock over the two lists */
static int socket_lock;            /* one request on the socket at a time */
static uint32_t next_thread_index = 1;
/* Threads that attached a ring in this process, and whether the stamps
 * come from the fine clock (from the second such thread on). */
static uint32_t recording_threads;
static int fine_clock;
/* membarrier(2) is registered: the thread that switches to the fine clock
 * makes every other thread execute a barrier, so coarse stamps need only
 * a compiler barrier between announcing and reading fine_clock. */
static int remote_barrier;

static void register_remote_barrier(void)
{
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
    remote_barrier = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                     syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0;
}
static pthread_key_t exit_key;

/* Descriptors are carved from mmap'd pages; a fork child simply forgets
 * them (a few bytes per ring of the parent). */
static struct mt_ring *descriptor_pool;
static size_t descriptor_left;

void mt_cancel_off(struct mt_thread *t)
{
    if (t->nocancel++ == 0) {
        int state, type;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
        pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &type);
        t->cancel_state = state;
        t->cancel_type = type;
    }
}

void mt_cancel_on(struct mt_thread *t)
{
    if (t->nocancel > 0 && --t->nocancel == 0) {
        pthread_setcancelstate(t->cancel_state, NULL);
        pthread_setcanceltype(t->cancel_type, NULL);
    }
}

void mt_socket_lock(void) { mt_spin_lock(&socket_lock); }
void mt_socket_unlock(void) { mt_spin_unlock(&socket_lock); }

static struct mt_ring *new_descriptor(void)
{
    if (descriptor_left == 0) {
        void *page = mt_map(65536);
        if (!page)
            return NULL;
        descriptor_pool = page;
        descriptor_left = 65536 / sizeof(struct mt_ring);
    }
    descriptor_left--;
    return descriptor_pool++;
}

/* Sends the ring's memfd to the consumer and waits for its answer, so that
 * the consumer merges this ring before any of its events is stamped (type
 * MT_MSG_RING), or the spare pool's (MT_MSG_POOL, index: its slots).
 * 0; -1 when the consumer refused it; -2 when it could not be sent (the
 * program forbids sendmsg, or closed the socket): errno says why. */
static int hand_over(uint32_t type, int memfd, uint64_t capacity, uint32_t index)
{
    static uint32_t ring_index;
    _Static_assert(sizeof(struct mt_msg_ring) == sizeof(struct mt_msg_pool) &&
                       offsetof(struct mt_msg_ring, ring_index) == offsetof(struct mt_msg_pool, nslots) &&
                       offsetof(struct mt_msg_ring, capacity) == offsetof(struct mt_msg_pool, capacity),
                   "a POOL message is laid out as a RING message");
    struct mt_msg_ring msg = {.type = type, .capacity = capacity};
    char control[MT_MSG_FD_SPACE];
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof msg};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    mt_msg_attach_fd(&mh, control, memfd);

    mt_spin_lock(&socket_lock);
    msg.ring_index = type == MT_MSG_RING ? ++ring_index : index;
    int fd = mt_socket_fd();
    ssize_t n;
    do {
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    int error = errno;
    int sent = n == (ssize_t)sizeof msg;
    struct mt_msg_reply reply;
    if (sent) {
        do {
            n = recv(fd, &reply, sizeof reply, 0);
        } while (n < 0 && errno == EINTR);
    }
    mt_spin_unlock(&socket_lock);
    if (!sent) {
        errno = error;
        return -2;
    }
    return n == (ssize_t)sizeof reply && reply.status == MT_REPLY_OK ? 0 : -1;
}

/* A descriptor for a ring mapped at mem (map_size 0: a slot of the pool,
 * unmapped with it), with its queue for signal handlers' events, on the
 * list of the process's rings; NULL when no descriptor can be had. */
static struct mt_ring *adopt_ring(void *mem, uint64_t capacity, size_t map_size)
{
    struct mt_ring_control *ctl = mem;
    mt_spin_lock(&rings_lock);
    struct mt_ring *r = new_descriptor();
    if (r) {
        *r = (struct mt_ring){.ctl = ctl, .data = (uint8_t *)mem + MT_RING_DATA_OFFSET,
                              .capacity = capacity, .map_size = map_size, .next_all = all_rings};
        void *q = mmap(NULL, MT_DEFERRED_MAX * sizeof(struct mt_deferred), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        r->deferred = q == MAP_FAILED ? NULL : q;
        if (r->deferred) /* not a root */
            mt_own_add(r->deferred, MT_DEFERRED_MAX * sizeof(struct mt_deferred));
        all_rings = r;
    }
    mt_spin_unlock(&rings_lock);
    return r;
}

/* ---- the spare pool (ring.h, struct mt_msg_pool) ------------------------ */

#define POOL_SLOTS MT_POOL_SLOTS
#define POOL_CAPACITY (256u << 10)
_Static_assert(POOL_SLOTS <= MT_POOL_SLOTS_MAX && POOL_CAPACITY <= MT_POOL_CAPACITY_MAX,
               "the consumer takes the pool");

static struct {
    uint8_t *base; /* NULL: no pool */
    size_t size, slot_size;
    uint64_t capacity;
    uint32_t nslots;
    uint32_t taken; /* slots handed out (atomic) */
} pool;

/* A memfd of size bytes, sealed at that size (the consumer maps no memfd
 * that could shrink), mapped shared at *mem: its descriptor, or -1. */
static int sealed_memfd(const char *name, size_t size, void **mem)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    *mem = MAP_FAILED;
    if (ftruncate(fd, (off_t)size) == 0 &&
        syscall(SYS_fcntl, fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*mem == MAP_FAILED) {
        close(fd);
        return -1;
    }
    return fd;
}

int mt_pool_make(void **base, size_t *size, uint64_t *capacity)
{
    uint64_t cap = mt_config.ring_capacity < POOL_CAPACITY ? mt_config.ring_capacity
                                                           : POOL_CAPACITY;
    size_t bytes = (MT_RING_DATA_OFFSET + cap) * POOL_SLOTS;
    void *mem;
    int fd = sealed_memfd("memtrace-pool", bytes, &mem);
    if (fd < 0)
        return -1;
    *base = mem;
    *size = bytes;
    *capacity = cap;
    return fd;
}

void mt_rings_pool_adopt(void *base, size_t size, uint64_t capacity)
{
    pool.base = base;
    pool.size = size;
    pool.slot_size = MT_RING_DATA_OFFSET + capacity;
    pool.capacity = capacity;
    pool.nslots = POOL_SLOTS;
    pool.taken = 0;
}

/* Makes the pool and hands it to the consumer: from init and in a fork
 * child, once connected, before the program can forbid what it needs.
 * Without it (it failed), a thread that can make no ring finds none. */
void mt_rings_pool_setup(void)
{
    void *mem;
    size_t size;
    uint64_t capacity;
    int fd = mt_pool_make(&mem, &size, &capacity);
    if (fd < 0)
        return;
    int ok = hand_over(MT_MSG_POOL, fd, capacity, POOL_SLOTS) == 0;
    close(fd);
    if (!ok) {
        munmap(mem, size);
        return;
    }
    mt_rings_pool_adopt(mem, size, capacity);
}

/* A slot of the pool nobody has taken, or NULL. */
static struct mt_ring *pool_take(void)
{
    if (!pool.base)
        return NULL;
    uint32_t i = __atomic_load_n(&pool.taken, __ATOMIC_RELAXED);
    do {
        if (i >= pool.nslots)
            return NULL;
    } while (!__atomic_compare_exchange_n(&pool.taken, &i, i + 1, 0, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    uint8_t *mem = pool.base + (size_t)i * pool.slot_size;
    struct mt_ring_control *ctl = (void *)mem;
    ctl->magic = MT_RING_MAGIC;
    ctl->capacity = pool.capacity;
    struct mt_ring *r = adopt_ring(mem, pool.capacity, 0);
    if (!r) /* the slot stays unused: the consumer never reads it */
        errno = ENOMEM;
    return r;
}

static struct mt_ring *create_ring(void)
{
    uint64_t capacity = mt_config.ring_capacity;
    size_t size = MT_RING_DATA_OFFSET + capacity;
    void *mem;
    int fd = sealed_memfd("memtrace-ring", size, &mem);
    if (fd < 0)
        return NULL;
    struct mt_ring_control *ctl = mem;
    ctl->magic = MT_RING_MAGIC;
    ctl->capacity = capacity;
    int ok = hand_over(MT_MSG_RING, fd, capacity, 0);
    int error = errno;
    close(fd);
    struct mt_ring *r = ok == 0 ? adopt_ring(mem, capacity, size) : NULL;
    if (!r) {
        munmap(mem, size);
        if (ok == -2) { /* not sent: the pool may serve */
            errno = error;
            return NULL;
        }
        mt_disable("the consumer did not accept a new ring");
    }
    return r;
}

static void thread_key_destructor(void *value)
{
    (void)value;
    mt_ring_thread_exit(&mt_thread_state);
    mt_python_thread_exit(&mt_thread_state);
    mt_unwind_forget(&mt_thread_state);
}

void mt_rings_setup(void)
{
    pthread_key_create(&exit_key, thread_key_destructor);
    register_remote_barrier();
}

struct bounds_search {
    uintptr_t sp;
    struct mt_thread *t;
};

static int bounds_line(const char *line, void *arg)
{
    struct bounds_search *b = arg;
    const char *c = line;
    uintptr_t lo = mt_parse_hex(&c);
    uintptr_t hi = *c == '-' ? (c++, mt_parse_hex(&c)) : 0;
    if (b->sp < lo || b->sp >= hi)
        return 0;
    b->t->stack_lo = lo;
    b->t->stack_hi = hi;
    return 1;
}

/* The bounds of the mapping that holds this thread's stack pointer, for
 * frame-pointer walks (pthread_getattr_np would allocate from the program's
 * heap; this is also safe in a signal handler). */
void mt_note_stack_bounds(struct mt_thread *t)
{
    char buf[4096];
    struct bounds_search b = {(uintptr_t)__builtin_frame_address(0), t};
    mt_maps_each(buf, sizeof buf, bounds_line, &b);
}

/* A second thread records: from now on every stamp comes from the fine
 * clock, since a coarse stamp could be earlier than another thread's fine
 * stamp of an event that happened before it. A ring that is STAMPING may
 * have read fine_clock == 0 (the fences pair as in Dekker's algorithm):
 * wait for it, so that its coarse stamp precedes ours. */
static void use_fine_clock(void)
{
    __atomic_store_n(&fine_clock, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    /* It cannot fail once registered; if it did, a stamp being taken at
     * this instant could be out of order, which is worth a line. */
    if (remote_barrier && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) != 0)
        mt_log("membarrier failed: threads' first events may be out of order");
    mt_spin_lock(&rings_lock);
    for (struct mt_ring *r = all_rings; r; r = r->next_all)
        for (unsigned spin = 0;
             __atomic_load_n(&r->ctl->busy, __ATOMIC_ACQUIRE) == MT_BUSY_STAMPING; spin++) {
            if (spin < 1000)
                __builtin_ia32_pause();
            else
                sched_yield();
        }
    mt_spin_unlock(&rings_lock);
}

static struct mt_ring *attach_ring(struct mt_thread *t);

struct mt_ring *mt_ring_get(struct mt_thread *t)
{
    if (MT_UNLIKELY(!*mt_clone_token)) /* a clone child's first event (init.c) */
        mt_clone_child();
    if (MT_UNLIKELY(t->generation != mt_generation)) {
        /* A fork child's first event: this thread's state is the parent's. */
        t->ring = NULL;
        mt_stacks_forget_all(t);
        t->generation = mt_generation;
    }
    if (MT_LIKELY(t->ring != NULL)) {
        /* Events a signal handler queued after this thread's last flush
         * (it landed between mt_ring_idle and the end of the recording)
         * are older than the event about to be written: they go first,
         * or a handler's free would follow the next handler's allocation
         * of the same address and one free would not be counted. */
        if (MT_UNLIKELY(t->ring->ndeferred))
            mt_ring_flush_deferred(t, t->ring);
        return t->ring;
    }
    if (mt_state != MT_STATE_ACTIVE)
        return NULL;
    /* No cancellation point in here (memfd, socket, /proc/self/maps). */
    mt_cancel_off(t);
    struct mt_ring *r = attach_ring(t);
    mt_cancel_on(t);
    return r;
}

/* Threads of this process that found no ring (the program had lowered its
 * descriptor limit, or a seccomp filter denies memfd_create, and the spare
 * pool's slots were all taken): their events are lost, which is said on
 * stderr at once and in the dump at exit
 * (MT_RING_INCOMPLETE, mt_rings_report_missing), so that gates fail. */
static uint32_t ringless_threads;

static void note_ringless(struct mt_thread *t)
{
    int error = errno;
    if (mt_state != MT_STATE_ACTIVE || t->ringless)
        return;
    t->ringless = 1;
    if (__atomic_fetch_add(&ringless_threads, 1, __ATOMIC_RELAXED) == 0)
        mt_log("pid %d: a thread could not get a ring to record into (%s, and no spare ring "
               "is left): its allocations and frees are not recorded, and the dump says the "
               "trace is incomplete",
               (int)getpid(), strerror(error));
}

static uint32_t ringless_reported; /* once: at exit, or at a fatal signal */

void mt_rings_report_missing(struct mt_thread *t)
{
    uint32_t n = __atomic_load_n(&ringless_threads, __ATOMIC_RELAXED);
    if (n && !__atomic_exchange_n(&ringless_reported, 1, __ATOMIC_RELAXED))
        mt_emit_incomplete(t, MT_INCOMPLETE_NO_RING, n);
}

/* The slow part of mt_ring_get: a ring for a thread that has none. */
static struct mt_ring *attach_ring(struct mt_thread *t)
{
    mt_spin_lock(&rings_lock);
    struct mt_ring *r = free_rings;
    if (r)
        free_rings = r->next_free;
    mt_spin_unlock(&rings_lock);
    if (!r && t->ringless && (++t->ringless & 1023) != 1)
        return NULL; /* tried again every 1024 events, not at each */
    if (!r)
        r = create_ring();
    if (!r && mt_state == MT_STATE_ACTIVE) {
        int error = errno; /* why create_ring failed, if the pool fails too */
        r = pool_take();
        if (!r)
            errno = error;
    }
    if (!r) {
        note_ringless(t);
        return NULL;
    }
    t->ring = r;
    r->owner = t;
    if (t->stack_hi == 0 && mt_config.unwind == MT_UNWIND_FP)
        mt_note_stack_bounds(t);
    /* Non-NULL so that the destructor runs at thread exit (and runs again
     * if the thread allocates after it). */
    t->guard++;
    pthread_setspecific(exit_key, (void *)1);
    t->guard--;
    if (__atomic_fetch_add(&recording_threads, 1, __ATOMIC_RELAXED) > 0 &&
        !__atomic_load_n(&fine_clock, __ATOMIC_RELAXED))
        use_fine_clock();
    uint32_t index = __atomic_fetch_add(&next_thread_index, 1, __ATOMIC_RELAXED);
    uint64_t ts = mt_ring_stamp(r);
    mt_ring_write_pair(r, MT_RING_THREAD_START, ts, index, (int32_t)gettid());
    mt_ring_idle(r);
    return r;
}

void mt_ring_thread_exit(struct mt_thread *t)
{
    struct mt_ring *r = t->ring;
    if (!r || t->generation != mt_generation || mt_state != MT_STATE_ACTIVE)
        return;
    t->in_record++;
    uint64_t ts = mt_ring_stamp(r);
    mt_ring_write_pair(r, MT_RING_THREAD_END, ts, 0, 0);
    mt_ring_idle(r);
    t->ring = NULL;
    r->owner = NULL;
    mt_spin_lock(&rings_lock);
    r->next_free = free_rings;
    free_rings = r;
    mt_spin_unlock(&rings_lock);
    t->in_record--;
}

uint64_t mt_ring_stamp(struct mt_ring *r)
{
    /* Announce first, then read the clock: a consumer that saw busy == 0
     * after reading its own clock knows our stamp is not earlier. */
    __atomic_store_n(&r->ctl->busy, MT_BUSY_STAMPING, __ATOMIC_RELAXED);
    if (MT_LIKELY(remote_barrier))
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    else
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t ts;
    if (MT_LIKELY(!__atomic_load_n(&fine_clock, __ATOMIC_RELAXED))) {
        ts = mt_coarse_ns();
        if (MT_UNLIKELY(ts < r->floor_ts)) /* after a handler's finer stamp */
            ts = r->floor_ts;
    } else {
        if (MT_LIKELY(remote_barrier)) /* the consumer's protocol needs it */
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
        ts = mt_now_ns();
    }
    __atomic_store_n(&r->ctl->busy, ts, __ATOMIC_RELEASE);
    return ts;
}

/* Calls fn on the struct mt_thread of every thread that holds a ring. For
 * the scan (scan.c), with the other threads stopped or not: no lock (one
 * stopped inside attach_ring may hold it); descriptors are never freed and
 * the list only grows at its head, so the walk is safe. */
void mt_rings_each_owner(void (*fn)(struct mt_thread *t, void *arg), void *arg)
{
    for (struct mt_ring *r = __atomic_load_n(&all_rings, __ATOMIC_ACQUIRE); r; r = r->next_all) {
        struct mt_thread *t = r->owner;
        if (t)
            fn(t, arg);
    }
}

void mt_rings_forget_all(void)
{
    /* In a fork child the parent's rings are still mapped (MAP_SHARED):
     * unmap them so that nothing here can write into the parent's stream. */
    for (struct mt_ring *r = all_rings; r; r = r->next_all)
        if (r->map_size) /* else a slot of the pool */
            munmap(r->ctl, r->map_size);
    if (pool.base) /* the child makes its own (mt_rings_pool_setup) */
        munmap(pool.base, pool.size);
    pool.base = NULL;
    all_rings = NULL;
    free_rings = NULL;
    rings_lock = 0;
    socket_lock = 0;
    next_thread_index = 1;
    recording_threads = 0; /* the child's one thread */
    ringless_threads = 0;
    ringless_reported = 0;
    mt_thread_state.ringless = 0;
    fine_clock = 0;
    register_remote_barrier(); /* for the child's own memory map */
}
