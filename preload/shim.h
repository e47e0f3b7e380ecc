/* Internal declarations shared by the files of libmemtrace.so.
 *
 * Everything in preload/ runs inside the traced process: it never calls the
 * traced malloc for its own needs (memory comes from mmap or static storage),
 * it preserves errno, and it must work before its own constructor has run.
 * Calls into libc that may allocate (dlsym, pthread_getattr_np, setenv) are
 * made with the thread's guard raised, so the allocations they make are
 * passed straight to the real allocator and not recorded.
 */
#ifndef MEMTRACE_SHIM_H
#define MEMTRACE_SHIM_H

#include <sched.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "memtrace/format.h"
#include "memtrace/ring.h"

#define MT_LIKELY(x) __builtin_expect(!!(x), 1)
#define MT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MT_HIDDEN __attribute__((visibility("hidden")))

/* The allocator the shim forwards to: the next definition after ours. */
struct mt_real_functions {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    void *(*dlopen)(const char *, int);
    void *(*dlmopen)(long, const char *, int);
    int (*dlclose)(void *);
    void (*_exit)(int);
    void (*_Exit)(int);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    int (*execveat)(int, const char *, char *const[], char *const[], int);
    int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                       const posix_spawnattr_t *, char *const[], char *const[]);
    int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);
};
extern struct mt_real_functions mt_real MT_HIDDEN;

enum mt_state {
    MT_STATE_UNINIT = 0,   /* nothing resolved yet */
    MT_STATE_STARTING = 1, /* one thread is resolving and connecting */
    MT_STATE_ACTIVE = 2,   /* recording */
    MT_STATE_OFF = 3,      /* pass-through: untraced, or the consumer is gone */
};
extern volatile int mt_state MT_HIDDEN;

/* Per-thread state, in static TLS (initial-exec: no allocation on access). */
struct mt_stack_table;
struct mt_ring;
struct mt_py_cache;
struct mt_unwind_cache;
/* An event from a signal handler that interrupted this thread while it was
 * writing an event of its own: queued (in mmap'd memory that goes with the
 * thread's ring), and written when that one is done. */
#define MT_DEFERRED_MAX 16384
#define MT_DEFERRED_DEPTH 8
struct mt_deferred {
    uint32_t type; /* MT_RING_ALLOC or MT_RING_FREE */
    uint32_t function;
    uint64_t ts, ptr, size;
    uint32_t depth;
    uint64_t ips[MT_DEFERRED_DEPTH];
};

struct mt_thread {
    int guard;               /* > 0: inside the shim's own libc calls: pass through */
    volatile int in_record;  /* > 0: writing an event: a nested call is a signal
                                handler's, and is deferred */
    volatile int unwinding;  /* inside libunwind: its own mallocs pass through */
    volatile int in_hook;    /* > 0: inside a hooked allocator (hooks.c): its own
                                allocations pass through */
    uint32_t generation;     /* process generation this state belongs to */
    struct mt_ring *ring;    /* NULL until the first event */
    struct mt_stack_table *stacks;
    struct mt_py_cache *python; /* python.c: the last Python stack captured */
    uintptr_t stack_lo, stack_hi; /* for frame-pointer walking and unwind.c */
    uint32_t stack_renotes;        /* times the bounds were looked up again */
    struct mt_unwind_cache *unwind; /* unwind.c: rules by code address */
    int nocancel;                  /* > 0: cancellation held off (mt_cancel_off) */
    int cancel_state, cancel_type; /* the program's, given back by mt_cancel_on */
    struct mt_frame_note {         /* the frame that raised in_record, guard or */
        uintptr_t sp;              /* unwinding (mt_frame_enter): its address, */
        volatile uint64_t *mark;   /* a word in it, and the token written there */
        uint64_t token;
    } frame;
    uint64_t frame_tokens;
    int nheld;                     /* spin locks held, and which */
    int *held[4];
    /* The event whose real call is done and whose record is being written
     * (type 0: none); published once the ring's head reaches pending_end.
     * mt_frame_recover writes it if a jump abandoned it. */
    struct {
        uint32_t type, function;
        uint64_t ptr, size, ts;
    } pending;
    uint64_t pending_end;
    uint32_t ringless; /* > 0: found no ring (ring_writer.c), events since */
};
extern __thread struct mt_thread mt_thread_state
    __attribute__((tls_model("initial-exec"))) MT_HIDDEN;

/* Process-wide settings, fixed when the process connects. */
struct mt_config {
    uint32_t unwind;    /* enum mt_unwind */
    uint32_t max_depth; /* frames kept */
    uint32_t follow_fork;
    uint64_t ring_capacity;
    uint32_t leak_check; /* enum mt_leak_check */
    uint32_t freeres;
    uint32_t python; /* enum mt_python_mode */
};
extern struct mt_config mt_config MT_HIDDEN;
extern uint32_t mt_generation MT_HIDDEN; /* bumped in every fork child */

/* ---- init.c ---- */
void mt_init(void) MT_HIDDEN;
void mt_disable(const char *why) MT_HIDDEN;
int mt_socket_fd(void) MT_HIDDEN;
/* Nonzero, except in a child made without fork() (clone) that has not yet
 * been told so: it then calls mt_clone_child before anything else. */
extern volatile uint32_t *mt_clone_token MT_HIDDEN;
void mt_clone_child(void) MT_HIDDEN;
/* 1 while the socket fd is still the one we connected (not closed by the
 * program and reused for something else). */
int mt_socket_is_ours(void) MT_HIDDEN;
pid_t mt_traced_pid(void) MT_HIDDEN;
/* Moves one of our descriptors above the program's range (close-on-exec);
 * returns the new number, or fd when it cannot. */
int mt_fd_move_high(int fd) MT_HIDDEN;
/* The hooks to install: "kind:SYM:ARG[:ARG]" entries separated by ';'. */
const char *mt_hooks_spec(void) MT_HIDDEN;
void *mt_bootstrap_alloc(size_t size, size_t align) MT_HIDDEN;
int mt_is_bootstrap(const void *p) MT_HIDDEN;
size_t mt_bootstrap_size(const void *p) MT_HIDDEN;

/* ---- ring_writer.c ---- */
/* Returns the thread's ring, attaching one on first use; NULL when the
 * process is not recording. */
struct mt_ring *mt_ring_get(struct mt_thread *t) MT_HIDDEN;
uint64_t mt_ring_stamp(struct mt_ring *r) MT_HIDDEN;
void *mt_ring_reserve(struct mt_ring *r, uint32_t len) MT_HIDDEN;
void mt_ring_commit(struct mt_ring *r, uint32_t len) MT_HIDDEN;
/* Bytes written into the ring so far (published or being published). */
uint64_t mt_ring_head(const struct mt_ring *r) MT_HIDDEN;
/* An ALLOC record without a stack (stack id 0). */
void mt_write_alloc_unstacked(struct mt_ring *r, uint64_t ts, uint64_t ptr, uint64_t size,
                              uint32_t function) MT_HIDDEN;
void mt_ring_idle(struct mt_ring *r) MT_HIDDEN;
void mt_ring_write_pair(struct mt_ring *r, uint32_t type, uint64_t ts, uint32_t a, int32_t b)
    MT_HIDDEN;
void mt_rings_forget_all(void) MT_HIDDEN; /* fork child: drop the parent's */
/* MT_RING_INCOMPLETE (NO_RING) into t's ring if threads found none; at exit. */
void mt_rings_report_missing(struct mt_thread *t) MT_HIDDEN;
/* Writes one stamped u32pair record (exit, fork, exec...) into the thread's
 * ring. The caller has raised the guard. */
void mt_emit_marker(struct mt_thread *t, uint32_t type, uint32_t a, int32_t b) MT_HIDDEN;
/* MT_RING_INCOMPLETE (reason: enum mt_incomplete) into t's ring, or, if t
 * has none, as a message on the socket: it needs no new descriptor. */
void mt_emit_incomplete(struct mt_thread *t, uint32_t reason, uint32_t count) MT_HIDDEN;
void mt_ring_thread_exit(struct mt_thread *t) MT_HIDDEN;
/* fn on the struct mt_thread of each thread that holds a ring (scan.c) */
void mt_rings_each_owner(void (*fn)(struct mt_thread *t, void *arg), void *arg) MT_HIDDEN;
void mt_rings_setup(void) MT_HIDDEN;
/* Makes the spare pool of rings and hands it to the consumer (once
 * connected, in every process): threads that can make no ring take one. */
void mt_rings_pool_setup(void) MT_HIDDEN;
/* A pool's memfd (MT_POOL_SLOTS rings), mapped at *base; -1 on failure. */
int mt_pool_make(void **base, size_t *size, uint64_t *capacity) MT_HIDDEN;
/* A fork child: the pool of its kit (init.c) becomes its spare pool. */
void mt_rings_pool_adopt(void *base, size_t size, uint64_t capacity) MT_HIDDEN;
void mt_note_stack_bounds(struct mt_thread *t) MT_HIDDEN;
uint64_t mt_deferred_lost(void) MT_HIDDEN;
/* Queues an event of a signal handler (see struct mt_deferred); one that
 * cannot be queued is counted and reported when the process ends. */
void mt_defer_event(struct mt_thread *t, uint32_t type, const void *p, uint64_t size,
                    uint32_t function, uint64_t ts) MT_HIDDEN;

static inline uint64_t mt_clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mt_now_ns(void) { return mt_clock_ns(CLOCK_MONOTONIC); }

/* CLOCK_MONOTONIC as of the last timer tick: about 6 ns against 25 for
 * the fine clock, never ahead of it. mt_ring_stamp uses it while only one
 * thread of the process records (ring_writer.c). */
static inline uint64_t mt_coarse_ns(void) { return mt_clock_ns(CLOCK_MONOTONIC_COARSE); }

/* Writes an ALLOCATOR or MARK record (struct mt_ring_name); text is cut
 * at MT_RING_NAME_MAX bytes. */
void mt_ring_write_name(struct mt_ring *r, uint32_t type, uint64_t ts, uint32_t a,
                        const char *text, size_t len) MT_HIDDEN;

/* ---- interpose.c ---- */
/* Captures the stack and writes the ALLOC event of p; in_record raised. */
void mt_emit_alloc(struct mt_thread *t, void *p, size_t size, uint32_t function) MT_HIDDEN;
void mt_write_free(struct mt_ring *r, uint64_t ts, void *p, uint32_t function) MT_HIDDEN;

/* ---- hooks.c, client.c ---- */
/* The function id of blocks annotated with the client API (memtrace.h). */
#define MT_FN_CLIENT MT_FN_CUSTOM_BASE
/* Installs the inline hooks (MEMTRACE_HOOKS, and the executable's own
 * malloc family); from mt_init, guard raised, before other threads run. */
void mt_hooks_install(void) MT_HIDDEN;
/* ALLOCATOR records for the custom allocators (at init, in a fork child). */
void mt_hooks_announce(struct mt_thread *t) MT_HIDDEN;
/* Inside a hooked call (t->in_hook): 1 if this nested call comes from a
 * signal handler (and is to be recorded), 0 if from the hooked function. */
int mt_hook_from_signal(struct mt_thread *t) MT_HIDDEN;

/* ---- stacks.c ---- */
/* Captures the caller's stack (frames of libmemtrace skipped) into ips;
 * returns the depth. Must be called before mt_ring_stamp. *hash is the
 * stack's mt_stack_hash when the walk could give it for less than hashing
 * the frames again, else 0. */
int mt_stack_capture(struct mt_thread *t, uint64_t *ips, int max, uint64_t *hash) MT_HIDDEN;
/* Frame pointers only, within the thread's stack: safe in a signal handler. */
int mt_stack_capture_fp(struct mt_thread *t, uint64_t *ips, int max) MT_HIDDEN;
/* 1 if code address lies in libunwind: while unwinding, a malloc it makes is
 * ours to pass through, one from anywhere else is a signal handler's. */
int mt_is_unwinder(const void *address) MT_HIDDEN;
void mt_stacks_find_unwinder(void) MT_HIDDEN;
/* Returns the id of the stack, writing STACK (and module) records into the
 * ring first if this thread has not sent it yet. hash is its mt_stack_hash,
 * or 0 to have it computed. May re-stamp: *ts is updated to the time later
 * records must carry. */
uint32_t mt_stack_intern(struct mt_thread *t, struct mt_ring *r, const uint64_t *ips, int depth,
                         uint64_t hash, uint64_t *ts) MT_HIDDEN;

/* A stack's hash folds its frames from the outermost in, so that a walk
 * that takes its outer frames from the last walk (unwind.c) only extends
 * their fold: h = seed; for each frame, outermost first, h = fold(h, ip);
 * then final(h, depth). Never 0. */
#define MT_STACK_HASH_SEED 0x9e3779b97f4a7c15ull
static inline uint64_t mt_stack_fold(uint64_t h, uint64_t ip)
{
    return (((h << 5) | (h >> 59)) ^ ip) * 0x517cc1b727220a95ull;
}
static inline uint64_t mt_stack_hash_final(uint64_t h, int depth)
{
    h = (h ^ (uint64_t)depth) * 0xff51afd7ed558ccdull;
    return (h ^ (h >> 32)) | 1;
}
void mt_stacks_forget_all(struct mt_thread *t) MT_HIDDEN;
void mt_stacks_set_own_range(uintptr_t lo, uintptr_t hi) MT_HIDDEN;
/* Zeroed private read-write pages; NULL when mmap fails. */
void *mt_map(size_t size) MT_HIDDEN;
/* 1 if code address lies in libmemtrace itself. */
int mt_is_own(uintptr_t address) MT_HIDDEN;

/* ---- unwind.c ---- */
/* Walks the calling thread's stack with the cached DWARF rules into buf
 * (return addresses, innermost first, our own frames included); -1 when a
 * frame needs libunwind. */
int mt_unwind_fast(struct mt_thread *t, void **buf, int max) MT_HIDDEN;
/* After a walk that returned n frames: the fold (mt_stack_fold) of its
 * frames from the outermost down to the one skip frames from the innermost,
 * or 0 if the walk had more than n frames or was not remembered. */
uint64_t mt_unwind_chain(struct mt_thread *t, int n, int skip) MT_HIDDEN;
/* Code was loaded or unloaded: cached rules are dropped at the next walk. */
void mt_unwind_code_changed(void) MT_HIDDEN;
void mt_unwind_forget(struct mt_thread *t) MT_HIDDEN;
/* MEMTRACE_UNWIND_VERIFY=1: every walk compared with libunwind's. */
extern int mt_unwind_verify MT_HIDDEN;
/* Counted in verify mode only: walks that reused the last walk's outer
 * frames, and frames unwound. */
extern uint64_t mt_unwind_stat_reused MT_HIDDEN, mt_unwind_stat_frames MT_HIDDEN;
void mt_unwind_verify_report(void) MT_HIDDEN;

/* ---- modules.c ---- */
/* Compares the loaded modules with those announced and writes LOAD/UNLOAD
 * records for the differences into r. Returns 1 if anything changed. */
int mt_modules_sync(struct mt_ring *r, uint64_t *ts) MT_HIDDEN;
void mt_modules_lock(void) MT_HIDDEN;
void mt_modules_unlock(void) MT_HIDDEN;
void mt_modules_forget_announced(void) MT_HIDDEN; /* fork child: announce again */
/* mt_modules_sync into the calling thread's ring. The caller has raised the
 * guard. */
void mt_modules_sync_now(struct mt_thread *t) MT_HIDDEN;
/* The span [*lo, *hi) of the loaded segments of the module that holds
 * address; 0, or -1 if no module does. */
int mt_module_range(uintptr_t address, uintptr_t *lo, uintptr_t *hi) MT_HIDDEN;

/* One request on the socket at a time (ring_writer.c). */
void mt_socket_lock(void) MT_HIDDEN;
void mt_socket_unlock(void) MT_HIDDEN;

/* ---- scan.c ---- */
/* The reachability scan, once, at the end of the process. how says where
 * from, which says where the program's own stack ends (its roots are only
 * what the program holds): MT_SCAN_EXIT from our destructor under libc's
 * exit (freeres first, then the caller of exit); MT_SCAN_UNDERSCORE_EXIT
 * from _exit and _Exit (freeres too, stdio's pending data dropped first;
 * the caller of our interposer); MT_SCAN_SIGNAL from a fatal signal's handler, context its
 * ucontext_t (the interrupted stack pointer less the red zone). */
enum { MT_SCAN_EXIT = 1, MT_SCAN_UNDERSCORE_EXIT = 2, MT_SCAN_SIGNAL = 3, MT_SCAN_FOREIGN = 4 };
/* MT_SCAN_FOREIGN: from Go's runtime.exit (go_exit.c), context a struct
 * mt_go_exit_view; no libc freeres, no unwinding; the dead parts of every Go
 * thread's stacks are left out (mt_go_dead_ranges). */
struct mt_go_exit_view {
    uintptr_t sp; /* the stack pointer at runtime.exit's entry */
    uintptr_t g;  /* Go's current g there */
    uintptr_t altstack[2]; /* the thread's signal stack (dead: not in a handler), or 0s */
};
/* ---- go_exit.c ---- */
extern int mt_go_process MT_HIDDEN;          /* 1: Go's runtime.exit is hooked */
void mt_go_exit_install(void) MT_HIDDEN;     /* from mt_init, guard raised */
uintptr_t mt_go_current_g(void) MT_HIDDEN;   /* async-signal-safe; 0: none */
int mt_go_dead_ranges(uintptr_t g, uintptr_t sp, uintptr_t ip, uintptr_t dead[2][2],
                      const char **why) MT_HIDDEN;
int mt_go_parked_ranges(const uintptr_t *running, int nrunning, uintptr_t (*dead)[2], int max,
                        const char **why) MT_HIDDEN;
uintptr_t mt_go_goroutines(void) MT_HIDDEN;
void mt_scan_at_exit(int how, const void *context) MT_HIDDEN;

/* ---- own_memory.c ---- */
/* The shim's own private mappings, which the scan never takes as roots:
 * mt_map registers what it maps, mt_unmap unregisters and unmaps. Lock-free
 * (callable from a signal handler). */
void mt_own_add(const void *p, size_t size) MT_HIDDEN;
void mt_own_remove(const void *p) MT_HIDDEN;
void mt_unmap(void *p, size_t size) MT_HIDDEN;
/* Calls fn for each registered range until it returns non-zero. */
int mt_own_each(int (*fn)(uintptr_t start, uintptr_t end, void *arg), void *arg) MT_HIDDEN;

/* ---- fatal_signals.c ---- */
/* Our handler for every fatal signal the program leaves at SIG_DFL (from
 * mt_init, guard raised). */
void mt_fatal_signals_install(void) MT_HIDDEN;
/* The calling thread's alternate signal stack for that handler (a stack
 * overflow leaves no other stack to run on); from its first event, while it
 * has no ring yet. Once per thread. */
void mt_fatal_signals_thread(void) MT_HIDDEN;
/* Before an exec (attempt 1) and after one that failed (0): the fault
 * signals the program blocked are blocked for real across it. */
void mt_fatal_signals_exec(int attempt) MT_HIDDEN;

/* ---- python.c ---- */
/* Looks for CPython in the process (handle: a library just dlopen'ed, or
 * NULL for everything loaded); once found, captures read its frames.
 * Returns 1 if CPython was found still being relocated: to be tried again. */
int mt_python_setup(void *handle) MT_HIDDEN;
/* Appends the calling thread's Python frames (MT_PYFRAME_ADDRESS) to ips,
 * writing PYFRAME records for new ones into r (then *ts is re-stamped).
 * Returns how many; 0 without CPython. in_record raised. */
int mt_python_capture(struct mt_thread *t, struct mt_ring *r, uint64_t *ips, int max, uint64_t *ts)
    MT_HIDDEN;
void mt_python_thread_exit(struct mt_thread *t) MT_HIDDEN;
/* After dlclose: stops reading frames if libpython was unloaded. */
void mt_python_after_dlclose(void) MT_HIDDEN;
void mt_python_lock(void) MT_HIDDEN; /* around fork() */
void mt_python_unlock(void) MT_HIDDEN;

/* ---- tls_compensation.c ---- */
void mt_tls_compensation_init(uintptr_t own_base) MT_HIDDEN;
/* The size to record for calloc(n, size) called from caller. */
size_t mt_tls_adjust_calloc(const void *caller, size_t n, size_t size) MT_HIDDEN;

/* ---- maps.c ---- */
uintptr_t mt_parse_hex(const char **p) MT_HIDDEN;
/* Calls fn for each line of /proc/self/maps (NUL-terminated, without its
 * newline) until fn returns non-zero; buf holds the reading (a line must
 * fit). 0, or -1 if the file cannot be opened. */
int mt_maps_each(char *buf, size_t size, int (*fn)(const char *line, void *arg), void *arg)
    MT_HIDDEN;

/* ---- cancellation (pthread_cancel) ----
 * Nothing the shim does may act on a cancellation (malloc is no
 * cancellation point), nor may a thread die holding one of its locks. A
 * region that blocks or holds a lock runs with cancellation disabled and
 * deferred (deferred too: glibc's SIGCANCEL handler acts on the type);
 * mt_cancel_on gives the program its own state and type back, and a
 * pending asynchronous cancellation acts there, outside every lock. Nests;
 * slow paths only (two atomic operations each way). ring_writer.c. */
void mt_cancel_off(struct mt_thread *t) MT_HIDDEN;
void mt_cancel_on(struct mt_thread *t) MT_HIDDEN;

/* ---- locks: a word, taken by exchange; a waiter yields the CPU (the holder
 * may be waiting for the consumer). Held with cancellation off, and noted
 * in the thread's state (mt_frame_recover releases them). ---- */
static inline void mt_spin_lock(int *lock)
{
    struct mt_thread *t = &mt_thread_state;
    mt_cancel_off(t);
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE))
        sched_yield();
    int i = t->nheld++; /* the slot first: a handler in between uses the next */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (i < 4)
        t->held[i] = lock;
}

static inline void mt_spin_unlock(int *lock)
{
    struct mt_thread *t = &mt_thread_state;
    int n = t->nheld < 4 ? t->nheld : 4;
    for (int i = 0; i < n; i++)
        if (t->held[i] == lock) {
            t->held[i] = t->held[n - 1];
            break;
        }
    if (t->nheld > 0)
        t->nheld--;
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
    mt_cancel_on(t);
}

/* ---- a jump out of a signal handler (siglongjmp, setcontext) ----
 * A handler that interrupts the shim and leaves by a jump abandons the
 * shim's frames with the thread's flags raised: every later event would be
 * taken for a handler's and queued forever. The frame that raises the
 * first flag notes its frame address and writes a token into its frame
 * (mt_frame_enter). A handler's call runs below the frame it interrupted,
 * which is intact; a call that finds flags raised, and runs at or above
 * that frame or finds its token overwritten (by the frames of the
 * program's later calls), knows the frame is gone: mt_frame_gone clears the
 * flags, releases the locks it held, writes what handlers queued and lets
 * the ring's half-written record be overwritten (it was never published).
 * A handler on an alternate signal stack cannot be told from a later call
 * this way, and is taken for a handler (its events queued, as before).
 * mt_frame_enter and mt_frame_gone are inlined into the interposed
 * functions (and whatever they use them in is always_inline), so that
 * mt_sp is theirs. */
/* The frame address of the interposed function this is inlined into. */
#define mt_sp() ((uintptr_t)__builtin_frame_address(0))

/* Before raising a flag: the calling frame becomes the one noted, unless a
 * flag is up already (then an outer frame is); *mark (a volatile local of
 * the caller, in scope until mt_frame_leave) gets a token that a later
 * frame over the same stack would overwrite. *outer: what to give back to
 * mt_frame_leave once the flags are down again. */
static inline __attribute__((always_inline)) void
mt_frame_enter(struct mt_thread *t, volatile uint64_t *mark, struct mt_frame_note *outer)
{
    *outer = t->frame;
    if (!(t->in_record | t->guard | t->unwinding)) {
        uint64_t token = (++t->frame_tokens * 0x9e3779b97f4a7c15ull) | 1;
        *mark = token;
        t->frame.mark = mark;
        t->frame.token = token;
        t->frame.sp = mt_sp();
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
}

/* The real call of an event is done: its record is to be written. */
static inline void mt_pending_set(struct mt_thread *t, uint32_t type, const void *p, uint64_t size,
                                  uint32_t function, uint64_t ts)
{
    t->pending_end = 0;
    t->pending.ptr = (uint64_t)p;
    t->pending.size = size;
    t->pending.function = function;
    t->pending.ts = ts;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->pending.type = type;
}

static inline void mt_pending_clear(struct mt_thread *t)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->pending.type = 0;
    t->pending.ptr = 0;
}

/* Called last by each function that writes an allocation's address into a
 * record (mt_emit_alloc, mt_defer_event, the handlers' queue flushed,
 * mt_write_alloc_unstacked): clears the scratch registers (the ABI lets a
 * call destroy them) that the record writing left holding the address. A copy left there would be
 * spilled into the program's stack later (the dynamic linker's lazy
 * binding saves every vector and argument register; a signal frame saves
 * all of them), where the exit scan could find it and call a leaked block
 * reachable; the real allocator's frames alone leave no such copies. */
static inline __attribute__((always_inline)) void mt_scrub_scratch(void)
{
#if defined(__x86_64__)
    __asm__ volatile("xorl %%ecx, %%ecx\n\txorl %%edx, %%edx\n\txorl %%esi, %%esi\n\t"
                     "xorl %%edi, %%edi\n\txorl %%r8d, %%r8d\n\txorl %%r9d, %%r9d\n\t"
                     "xorl %%r10d, %%r10d\n\txorl %%r11d, %%r11d\n\t"
                     "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\t"
                     "pxor %%xmm3, %%xmm3\n\tpxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
                     "pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tpxor %%xmm8, %%xmm8\n\t"
                     "pxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
                     "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\t"
                     "pxor %%xmm15, %%xmm15"
                     :
                     :
                     : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0", "xmm1", "xmm2",
                       "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "xmm13", "xmm14", "xmm15");
#endif
}

static inline void mt_frame_leave(struct mt_thread *t, const struct mt_frame_note *outer)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->frame = *outer;
}

/* ring_writer.c: 1 if the frame noted is gone (sp: the caller's), after
 * clearing what it left. */
int mt_frame_recover(struct mt_thread *t, uintptr_t sp) MT_HIDDEN;
static inline __attribute__((always_inline)) int mt_frame_gone(struct mt_thread *t)
{
    return MT_UNLIKELY(t->frame.sp != 0) && mt_frame_recover(t, mt_sp());
}

/* ---- util ---- */
void mt_log(const char *fmt, ...) MT_HIDDEN __attribute__((format(printf, 1, 2)));

#endif
