/* Stack capture (libunwind or frame pointers) and the per-thread stack table
 * that sends each distinct stack to the consumer once.
 *
 * A stack is sent as a STACK record the first time a thread sees it; later
 * events carry only its id. Ids are unique in the process (one atomic counter,
 * touched only for new stacks), so two threads may send the same stack under
 * two ids: the consumer merges them. Tables live in mmap'd memory.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

struct stack_slot {
    uint64_t hash;
    uint64_t *ips;
    uint32_t depth;
    uint32_t id;
};

struct mt_stack_table {
    struct stack_slot *slots;
    size_t slots_size; /* bytes mapped */
    uint32_t mask;
    uint32_t count;
    unsigned char *arena; /* current chunk for ip arrays */
    size_t arena_left;
    void *chunks; /* list of arena chunks, first word = next */
};

#define ARENA_CHUNK (256 * 1024)

static uintptr_t own_lo, own_hi;
static uintptr_t unwinder_lo, unwinder_hi; /* libunwind's segments */

void mt_stacks_find_unwinder(void)
{
    /* libunwind's range first: its initialization makes its pipe (below) */
    Dl_info info;
    uintptr_t lo, hi;
    if (dladdr((void *)unw_backtrace, &info) &&
        mt_module_range((uintptr_t)info.dli_fbase, &lo, &hi) == 0) {
        unwinder_lo = lo;
        unwinder_hi = hi;
    }
    /* libunwind's caches per thread: no lock (and no signal mask change)
     * around each lookup */
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

/* libunwind checks that an address is readable by writing a byte of it into
 * a pipe of its own (x86_64/Ginit.c, mem_validate_pipe), made with pipe2 at
 * its initialization and made again whenever a read from it fails, as it
 * does once the program has closed it. At the lowest free numbers, that
 * pipe would be what the program's next open()s return, and a daemon that
 * closes every descriptor and opens files would have libunwind read its
 * input and write process memory into its output. We are preloaded, so
 * libunwind's pipe2 calls come here: its ends get numbers at the top of the
 * program's range. Everyone else's pipe2 is the system call, unchanged. */
__attribute__((visibility("default"))) int pipe2(int fds[2], int flags)
{
    if (syscall(SYS_pipe2, fds, flags) != 0)
        return -1;
    if (mt_is_unwinder(__builtin_return_address(0))) {
        fds[0] = mt_fd_move_high(fds[0]);
        fds[1] = mt_fd_move_high(fds[1]);
    }
    return 0;
}

int mt_is_unwinder(const void *address)
{
    uintptr_t a = (uintptr_t)address;
    return a >= unwinder_lo && a < unwinder_hi;
}
static uint32_t next_stack_id = 1;

void mt_stacks_set_own_range(uintptr_t lo, uintptr_t hi)
{
    own_lo = lo;
    own_hi = hi;
}

static int is_own(uint64_t ip) { return ip >= own_lo && ip < own_hi; }

int mt_is_own(uintptr_t address) { return is_own(address); }

/* Walks the frame-pointer chain; stops at anything that does not look like
 * a frame of this thread's stack. */
static int capture_fp(struct mt_thread *t, void **buf, int max)
{
    uintptr_t *fp = __builtin_frame_address(0);
    uintptr_t lo = t->stack_lo, hi = t->stack_hi;
    int n = 0;
    while (n < max) {
        uintptr_t f = (uintptr_t)fp;
        /* f > hi - 16, not f + 16 > hi: a garbage frame pointer near 2^64
         * (seen: 0xfffffffffffffff0) would wrap past the test */
        if ((f & 7) || (hi && (f < lo || f > hi - 16)) || (!hi && f < 4096))
            break;
        uintptr_t ret = fp[1];
        if (ret < 4096)
            break;
        buf[n++] = (void *)ret;
        uintptr_t *next = (uintptr_t *)fp[0];
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

static int keep_callers(void *const *buf, int n, uint64_t *ips, int max);
static int keep_from(void *const *buf, int skip, int n, uint64_t *ips, int max);
static int own_frames(void *const *buf, int n);
static uint64_t hash_ips(const uint64_t *ips, int depth);

/* The mt_stack_hash of the stack kept from the fast walk's n frames (skip
 * of them ours), from the fold the walk kept; 0 if it kept none or the
 * stack is cut at max frames. */
static uint64_t walk_hash(struct mt_thread *t, int n, int skip, int max)
{
    uint64_t chain = n - skip <= max ? mt_unwind_chain(t, n, skip) : 0;
    return chain ? mt_stack_hash_final(chain, n - skip) : 0;
}

static int libunwind_backtrace(struct mt_thread *t, void **buf, int want)
{
    /* Not the guard: libunwind's own mallocs must pass through, but a
     * signal handler's made meanwhile must be recorded (interpose.c tells
     * them apart by their caller). */
    t->unwinding++;
    mt_cancel_off(t); /* libunwind validates addresses with msync or write */
    int n = unw_backtrace(buf, want);
    mt_cancel_on(t);
    t->unwinding--;
    return n;
}

int mt_unwind_verify;
static uint64_t verify_walks, verify_fallbacks, verify_differ;

/* MEMTRACE_UNWIND_VERIFY: libunwind's stack is the one kept; unwind.c's
 * walk (n frames in fast, -1 if it gave up) is compared with it. */
static int verify_walk(struct mt_thread *t, void *const *fast, int n, uint64_t *ips, int max)
{
    void *buf[MT_MAX_DEPTH_LIMIT + 32];
    int depth = keep_callers(buf, libunwind_backtrace(t, buf, max + 32), ips, max);
    __atomic_fetch_add(&verify_walks, 1, __ATOMIC_RELAXED);
    if (n < 0) {
        __atomic_fetch_add(&verify_fallbacks, 1, __ATOMIC_RELAXED);
        return depth;
    }
    uint64_t mine[MT_MAX_DEPTH_LIMIT + 32];
    int skip = own_frames(fast, n);
    int k = keep_from(fast, skip, n, mine, max);
    uint64_t hash = walk_hash(t, n, skip, max);
    if (hash && hash != hash_ips(mine, k) &&
        __atomic_fetch_add(&verify_differ, 1, __ATOMIC_RELAXED) < 10)
        mt_log("unwind verify: pid %d: the walk's stack hash differs from its frames' hash",
               (int)getpid());
    int at = 0;
    while (at < k && at < depth && mine[at] == ips[at])
        at++;
    if (at == k && at == depth)
        return depth;
    if (__atomic_fetch_add(&verify_differ, 1, __ATOMIC_RELAXED) < 10)
        mt_log("unwind verify: pid %d: frame %d of %d/%d differs: %#llx here, %#llx libunwind",
               (int)getpid(), at, k, depth, at < k ? (unsigned long long)mine[at] : 0ull,
               at < depth ? (unsigned long long)ips[at] : 0ull);
    return depth;
}

void mt_unwind_verify_report(void)
{
    if (mt_unwind_verify)
        mt_log("unwind verify: pid %d: %llu walks, %llu by libunwind, %llu differ; %llu reused the "
               "last walk's outer frames, %llu frames unwound",
               (int)getpid(), (unsigned long long)verify_walks, (unsigned long long)verify_fallbacks,
               (unsigned long long)verify_differ, (unsigned long long)mt_unwind_stat_reused,
               (unsigned long long)mt_unwind_stat_frames);
}

int mt_stack_capture(struct mt_thread *t, uint64_t *ips, int max, uint64_t *hash)
{
    void *buf[MT_MAX_DEPTH_LIMIT + 32];
    int want = max + 32;
    int n;
    *hash = 0;
    if (mt_config.unwind == MT_UNWIND_FP) {
        if (!t->stack_hi)
            mt_note_stack_bounds(t);
        /* without the stack's bounds the walk is not safe */
        n = t->stack_hi ? capture_fp(t, buf, want) : 0;
    } else {
        n = mt_unwind_fast(t, buf, want);
        if (MT_UNLIKELY(mt_unwind_verify))
            return verify_walk(t, buf, n, ips, max);
        if (n < 0)
            return keep_callers(buf, libunwind_backtrace(t, buf, want), ips, max);
        /* the whole walk kept: its fold goes on from the reused frames' */
        int skip = own_frames(buf, n);
        *hash = walk_hash(t, n, skip, max);
        return keep_from(buf, skip, n, ips, max);
    }
    return keep_callers(buf, n, ips, max);
}

static int own_frames(void *const *buf, int n)
{
    int skip = 0;
    while (skip < n && is_own((uint64_t)buf[skip]))
        skip++;
    return skip;
}

int mt_stack_capture_fp(struct mt_thread *t, uint64_t *ips, int max)
{
    void *buf[MT_DEFERRED_DEPTH + 32];
    if (!t->stack_hi)
        mt_note_stack_bounds(t);
    if (!t->stack_hi)
        return 0; /* without the stack's bounds the walk is not safe */
    int n = capture_fp(t, buf, max + 8 < MT_DEFERRED_DEPTH + 32 ? max + 8 : MT_DEFERRED_DEPTH + 32);
    return keep_callers(buf, n, ips, max);
}

/* Drops the frames of libmemtrace itself, keeps at most max of the rest. */
static int keep_callers(void *const *buf, int n, uint64_t *ips, int max)
{
    return keep_from(buf, own_frames(buf, n), n, ips, max);
}

/* Keeps at most max of buf's n frames from the skip-th on. */
static int keep_from(void *const *buf, int skip, int n, uint64_t *ips, int max)
{
    int depth = n - skip;
    if (depth > max)
        depth = max;
    for (int i = 0; i < depth; i++)
        ips[i] = (uint64_t)buf[skip + i];
    return depth;
}

/* mt_stack_hash of a stack (innermost first). */
static uint64_t hash_ips(const uint64_t *ips, int depth)
{
    uint64_t h = MT_STACK_HASH_SEED;
    for (int i = depth - 1; i >= 0; i--)
        h = mt_stack_fold(h, ips[i]);
    return mt_stack_hash_final(h, depth);
}

void *mt_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    mt_own_add(p, size); /* never a root of the scan */
    return p;
}

static struct mt_stack_table *table_create(void)
{
    struct mt_stack_table *tb = mt_map(sizeof *tb);
    if (!tb)
        return NULL;
    tb->slots_size = 4096 * sizeof(struct stack_slot);
    tb->slots = mt_map(tb->slots_size);
    if (!tb->slots) {
        mt_unmap(tb, sizeof *tb);
        return NULL;
    }
    tb->mask = 4095;
    return tb;
}

static int table_grow(struct mt_stack_table *tb)
{
    uint32_t new_mask = tb->mask * 2 + 1;
    size_t size = ((size_t)new_mask + 1) * sizeof(struct stack_slot);
    struct stack_slot *slots = mt_map(size);
    if (!slots)
        return -1;
    for (uint32_t i = 0; i <= tb->mask; i++) {
        struct stack_slot *s = &tb->slots[i];
        if (!s->hash)
            continue;
        uint32_t j = (uint32_t)s->hash & new_mask;
        while (slots[j].hash)
            j = (j + 1) & new_mask;
        slots[j] = *s;
    }
    mt_unmap(tb->slots, tb->slots_size);
    tb->slots = slots;
    tb->slots_size = size;
    tb->mask = new_mask;
    return 0;
}

static uint64_t *arena_copy(struct mt_stack_table *tb, const uint64_t *ips, int depth)
{
    size_t bytes = (size_t)depth * sizeof(uint64_t);
    if (bytes > tb->arena_left) {
        unsigned char *chunk = mt_map(ARENA_CHUNK);
        if (!chunk)
            return NULL;
        *(void **)chunk = tb->chunks;
        tb->chunks = chunk;
        tb->arena = chunk + 16;
        tb->arena_left = ARENA_CHUNK - 16;
    }
    uint64_t *dst = (uint64_t *)tb->arena;
    memcpy(dst, ips, bytes);
    tb->arena += bytes;
    tb->arena_left -= bytes;
    return dst;
}

void mt_stacks_forget_all(struct mt_thread *t)
{
    struct mt_stack_table *tb = t->stacks;
    if (tb) {
        for (void *c = tb->chunks; c;) {
            void *next = *(void **)c;
            mt_unmap(c, ARENA_CHUNK);
            c = next;
        }
        mt_unmap(tb->slots, tb->slots_size);
        mt_unmap(tb, sizeof *tb);
        t->stacks = NULL;
    }
    /* Only a fork child gets here with a table; its ids start again. */
    next_stack_id = 1;
}

static int write_stack(struct mt_ring *r, uint64_t ts, uint32_t id, const uint64_t *ips, int depth)
{
    uint32_t len = (uint32_t)(sizeof(struct mt_ring_stack) + (size_t)depth * sizeof(uint64_t));
    struct mt_ring_stack *rec = mt_ring_reserve(r, len);
    if (!rec)
        return -1;
    rec->hdr = (struct mt_ring_record){MT_RING_STACK, len, ts};
    rec->id = id;
    rec->depth = (uint32_t)depth;
    memcpy(rec->ips, ips, (size_t)depth * sizeof(uint64_t));
    mt_ring_commit(r, len);
    return 0;
}

uint32_t mt_stack_intern(struct mt_thread *t, struct mt_ring *r, const uint64_t *ips, int depth,
                         uint64_t hash, uint64_t *ts)
{
    if (depth <= 0)
        return 0;
    struct mt_stack_table *tb = t->stacks;
    if (!tb && !(tb = t->stacks = table_create()))
        return 0;
    uint64_t h = hash ? hash : hash_ips(ips, depth);
    uint32_t i = (uint32_t)h & tb->mask;
    for (;; i = (i + 1) & tb->mask) {
        struct stack_slot *s = &tb->slots[i];
        if (!s->hash)
            break;
        if (s->hash == h && s->depth == (uint32_t)depth &&
            memcmp(s->ips, ips, (size_t)depth * sizeof(uint64_t)) == 0)
            return s->id;
    }
    /* A new stack: first make sure the consumer knows every module it may
     * point into, then stamp again so this stack's records come after any
     * module record another thread wrote while we waited for the lock. */
    mt_modules_lock();
    mt_modules_sync(r, ts);
    mt_modules_unlock();
    *ts = mt_ring_stamp(r);
    uint32_t id = __atomic_fetch_add(&next_stack_id, 1, __ATOMIC_RELAXED);
    if (write_stack(r, *ts, id, ips, depth) != 0)
        return 0;
    if ((tb->count + 1) * 4 > (tb->mask + 1) * 3 && table_grow(tb) != 0)
        return id;
    uint64_t *copy = arena_copy(tb, ips, depth);
    if (!copy)
        return id;
    i = (uint32_t)h & tb->mask;
    while (tb->slots[i].hash)
        i = (i + 1) & tb->mask;
    tb->slots[i] = (struct stack_slot){h, copy, (uint32_t)depth, id};
    tb->count++;
    return id;
}
