/* The reachability scan at the end of a traced process (SPEC section 5):
 * classifies every live block as definite, indirect, possible or reachable
 * with valgrind memcheck's semantics (mc_leakcheck.c).
 *
 * It runs in the process itself, last: from our destructor after exit(),
 * or from _exit(). It stops every other thread with a signal whose handler
 * saves the thread's registers and stack pointer and waits; asks the
 * consumer for the live blocks (the consumer drains the rings first and
 * hands them over sorted, in a memfd); scans the roots -- the writable
 * private mappings that hold no heap block (data and bss of every module,
 * anonymous memory, the main thread's TLS), each thread's stack from its
 * stack pointer less the red zone up (its TLS and thread descriptor sit at
 * the top), and each thread's registers -- then the blocks reached from
 * them; writes one kind per block back into the memfd, and lets the threads
 * go.
 *
 * Roots are only what the program holds. The thread that ends the process
 * counts from the program's stack pointer where it called exit (or returned
 * from main, or called _exit, or took the fatal signal) with the program's
 * registers there: never the frames of the shim, of libc's exit machinery or
 * of the scan, which hold stale copies of block addresses. The shim's own
 * memory (its module's data and bss, its mappings, each thread's struct
 * mt_thread) is never a root either. In a Go process (scanned from
 * runtime.exit, go_exit.c) the dead parts of every thread's g0 and goroutine
 * stacks are left out the same way.
 *
 * Runs inside the traced process: memory from mmap only, no stdio, no
 * malloc (the guard is raised throughout).
 */
#define _GNU_SOURCE
#include <dirent.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <capstone/capstone.h>
#include <link.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "loader.h"
#include "shim.h"

/* ---- stopping the other threads ---------------------------------------- */

#define MAX_THREADS 4096

struct stopped {
    uintptr_t sp;
    uintptr_t own_tls; /* the thread's struct mt_thread: never a root */
    uintptr_t go_g;    /* Go's current g on the thread (go_exit.c), or 0 */
    uintptr_t altstack[2]; /* Go: the signal stack the handler runs on, or 0s */
    uint64_t regs[NGREG];
};

static struct stopped *stopped;      /* mmap'd, MAX_THREADS entries */
static volatile int stopped_count;   /* handlers that have saved their state */
static volatile int release_word;    /* 1: stopped threads may go on */

static void stop_handler(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    int saved = errno;
    const ucontext_t *uc = context;
    int i = __atomic_load_n(&stopped_count, __ATOMIC_RELAXED);
    while (i < MAX_THREADS && !__atomic_compare_exchange_n(&stopped_count, &i, i + 1, 0,
                                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        ;
    if (i < MAX_THREADS) {
        for (int r = 0; r < NGREG; r++)
            stopped[i].regs[r] = (uint64_t)uc->uc_mcontext.gregs[r];
        stopped[i].own_tls = (uintptr_t)&mt_thread_state;
        stopped[i].go_g = mt_go_current_g();
        stack_t ss;
        if (mt_go_process && sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK)) {
            stopped[i].altstack[0] = (uintptr_t)ss.ss_sp;
            stopped[i].altstack[1] = (uintptr_t)ss.ss_sp + ss.ss_size;
        }
        __atomic_store_n(&stopped[i].sp, (uintptr_t)uc->uc_mcontext.gregs[REG_RSP], __ATOMIC_RELEASE);
    }
    while (!__atomic_load_n(&release_word, __ATOMIC_ACQUIRE))
        syscall(SYS_futex, &release_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    errno = saved;
}

/* A real-time signal the program does not handle. 0 if none is free. */
static int pick_signal(void)
{
    for (int sig = SIGRTMAX - 1; sig > SIGRTMIN + 4; sig--) {
        struct sigaction old;
        if (sigaction(sig, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
            old.sa_handler == SIG_DFL)
            return sig;
    }
    return 0;
}

/* Signals every thread but this one; returns how many were signalled
 * (sig 0: how many there are). */
static int signal_other_threads(int sig)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    pid_t self = gettid(), pid = getpid();
    int count = 0;
    char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (void *)(buf + off);
            off += d->d_reclen;
            pid_t tid = (pid_t)strtol(d->d_name, NULL, 10);
            if (tid > 0 && tid != self && syscall(SYS_tgkill, pid, tid, sig) == 0)
                count++;
        }
    }
    close(fd);
    return count;
}

/* Returns how many threads were signalled and did not stop, or -1. go: a
 * Go process, which handles every signal (it is ending: take one) and runs
 * on goroutine stacks of a few KiB (the handler goes on the thread's
 * alternate signal stack: the shim's, fatal_signals.c, or Go's). */
static int stop_the_world(int go)
{
    stopped = mt_map(MAX_THREADS * sizeof *stopped);
    if (!stopped)
        return -1;
    int sig = pick_signal();
    if (!sig && go)
        sig = SIGRTMAX - 1;
    if (!sig)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = stop_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | (go ? SA_ONSTACK : 0);
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0)
        return -1;
    int signalled = signal_other_threads(sig);
    /* Wait up to 200 ms for them; a thread that blocks the signal is
     * scanned conservatively (its whole stack mapping, no registers). */
    for (int waited = 0; waited < 2000; waited++) {
        if (__atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE) >= signalled)
            break;
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);
    }
    /* Our handler stays installed: a late signal must not kill the process. */
    int count = __atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE);
    return signalled > count ? signalled - count : 0;
}

/* Go blocks every signal in a thread it is starting until the thread is
 * its own (runtime.minit); meanwhile the shim may be registering the
 * thread's ring, which waits for the socket that the scan holds. Let them
 * have it, up to a second, and take it back; returns how many still did not
 * stop. The stopped threads cannot hold it: they stopped while it was ours. */
static int wait_for_stragglers(int unstopped)
{
    int signalled = __atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE) + unstopped;
    mt_socket_unlock();
    for (int waited = 0; waited < 10000; waited++) {
        if (__atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE) >= signalled)
            break;
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);
    }
    mt_socket_lock();
    int count = __atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE);
    return signalled > count ? signalled - count : 0;
}

static void release_the_world(void)
{
    __atomic_store_n(&release_word, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &release_word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* ---- marking (memcheck's algorithm) ------------------------------------ */

enum { UNREACHED = 0, POSSIBLE = 1, REACHABLE = 2, INDIRECT = 3 };

struct marker {
    const struct mt_scan_block *blocks;
    uint64_t count;
    uint8_t *state;
    uint32_t *stack; /* mark stack of block indexes */
    uint64_t depth, stack_cap;
    uint64_t lo, hi; /* lowest block start, highest block end */
};

/* The block that value points into (start or interior; a 0-size block
 * only at its start), or -1. */
static int64_t block_of(const struct marker *m, uint64_t value)
{
    if (value < m->lo || value >= m->hi)
        return -1;
    uint64_t lo = 0, hi = m->count; /* first block with address > value */
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (m->blocks[mid].address <= value)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const struct mt_scan_block *b = &m->blocks[lo - 1];
    if (value < b->address + b->size || (b->size == 0 && value == b->address))
        return (int64_t)(lo - 1);
    return -1;
}

static void push(struct marker *m, uint64_t i)
{
    if (m->depth < m->stack_cap)
        m->stack[m->depth++] = (uint32_t)i;
}

/* lc_push_without_clique_if_a_chunk_ptr */
static void consider(struct marker *m, uint64_t value, int prior_definite)
{
    int64_t i = block_of(m, value);
    if (i < 0)
        return;
    int via_start = value == m->blocks[i].address;
    if (m->state[i] == REACHABLE)
        return;
    if (via_start && prior_definite) {
        m->state[i] = REACHABLE;
        push(m, (uint64_t)i);
    } else if (m->state[i] == UNREACHED) {
        m->state[i] = POSSIBLE;
        push(m, (uint64_t)i);
    }
}

static void scan_words(struct marker *m, uintptr_t lo, uintptr_t hi, int prior_definite)
{
    for (uintptr_t p = (lo + 7) & ~(uintptr_t)7; p + 8 <= hi; p += 8)
        consider(m, *(const uint64_t *)p, prior_definite);
}

/* libc's own writable data holds malloc's state: its top-chunk and bin
 * pointers address chunk headers, and the header after a block lies in the
 * block's last 8 bytes, which would make it "possible". memcheck's own
 * allocator keeps no such pointers; skip them. */
static void scan_libc_words(struct marker *m, uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t p = (lo + 7) & ~(uintptr_t)7; p + 8 <= hi; p += 8) {
        uint64_t value = *(const uint64_t *)p;
        int64_t i = block_of(m, value);
        if (i >= 0 && value != m->blocks[i].address &&
            value == m->blocks[i].address + malloc_usable_size((void *)m->blocks[i].address) - 8)
            continue;
        consider(m, value, 1);
    }
}

static void drain_marks(struct marker *m)
{
    while (m->depth) {
        uint32_t i = m->stack[--m->depth];
        const struct mt_scan_block *b = &m->blocks[i];
        scan_words(m, b->address, b->address + b->size, m->state[i] == REACHABLE);
    }
}

/* Phase 2: blocks still unreached lead cliques of the blocks they reach;
 * those become indirect (lc_push_with_clique_if_a_chunk_ptr). */
static void mark_cliques(struct marker *m)
{
    for (uint64_t leader = 0; leader < m->count; leader++) {
        if (m->state[leader] != UNREACHED)
            continue;
        push(m, leader);
        while (m->depth) {
            uint32_t i = m->stack[--m->depth];
            const struct mt_scan_block *b = &m->blocks[i];
            for (uintptr_t p = (b->address + 7) & ~(uintptr_t)7; p + 8 <= b->address + b->size;
                 p += 8) {
                int64_t j = block_of(m, *(const uint64_t *)p);
                if (j >= 0 && m->state[j] == UNREACHED && (uint64_t)j != leader) {
                    m->state[j] = INDIRECT;
                    push(m, (uint64_t)j);
                }
            }
        }
    }
}

/* ---- roots ---------------------------------------------------------------- */

/* memcheck scans a stack from its stack pointer less the red zone (the
 * 128 bytes below it that leaf code may use: VG_STACK_REDZONE_SZB). */
#define RED_ZONE 128

/* What the program itself holds in the thread that ends the process: its
 * stack from sp up, and its registers. Never the frames of the shim, of
 * libc's exit machinery or of the scan below sp: they hold stale copies of
 * block addresses (the shim's frames of the last malloc left them there). */
struct program_view {
    uintptr_t sp;
    int nregs;
    uint64_t regs[NGREG];
};

/* A Go process (MT_SCAN_FOREIGN): the dead parts of its threads' stacks
 * (mt_go_dead_ranges), the signal stacks they stopped on, and the dead
 * parts of the stacks of the goroutines no thread runs
 * (mt_go_parked_ranges): never roots. mmap'd, up to 3 per thread and 1 per
 * goroutine. */
static uintptr_t (*go_dead)[2];
static int go_dead_count;

/* Fills go_dead for the exiting thread (view) and every stopped thread;
 * NULL, or why Go's bounds cannot be trusted. */
/* Sorts go_dead by start (heapsort: no malloc, any count), so that
 * exclude() takes them in order. */
static void sift(uintptr_t (*a)[2], size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && a[c + 1][0] > a[c][0])
            c++;
        if (a[i][0] >= a[c][0])
            return;
        uintptr_t t0 = a[i][0], t1 = a[i][1];
        a[i][0] = a[c][0];
        a[i][1] = a[c][1];
        a[c][0] = t0;
        a[c][1] = t1;
        i = c;
    }
}

static void sort_ranges(uintptr_t (*a)[2], size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(a, i, n);
    for (size_t end = n; end-- > 1;) {
        uintptr_t t0 = a[0][0], t1 = a[0][1];
        a[0][0] = a[end][0];
        a[0][1] = a[end][1];
        a[end][0] = t0;
        a[end][1] = t1;
        sift(a, 0, end);
    }
}

static uintptr_t go_running[MAX_THREADS + 1]; /* the gs that threads run */

static const char *go_bounds(const struct mt_go_exit_view *view)
{
    size_t goroutines = mt_go_goroutines();
    go_dead = mt_map(((MAX_THREADS + 2) * 3 + goroutines) * sizeof *go_dead);
    if (!go_dead)
        return "no memory for the bounds";
    const char *why = NULL;
    int nrunning = 0;
    go_running[nrunning++] = view->g;
    int n = mt_go_dead_ranges(view->g, view->sp, 0, &go_dead[0], &why);
    if (n < 0)
        return why;
    go_dead_count = n;
    if (view->altstack[0]) {
        go_dead[go_dead_count][0] = view->altstack[0];
        go_dead[go_dead_count++][1] = view->altstack[1];
    }
    int nstopped = __atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE);
    for (int i = 0; i < nstopped && i < MAX_THREADS; i++) {
        /* counted, but its handler may not have saved its state yet */
        uintptr_t sp;
        for (int waited = 0; !(sp = __atomic_load_n(&stopped[i].sp, __ATOMIC_ACQUIRE)); waited++) {
            if (waited == 10000)
                return "a stopped thread did not save its state";
            struct timespec pause = {0, 100000};
            nanosleep(&pause, NULL);
        }
        /* The signal stack it stopped on: the kernel's frames there (ours,
         * and those of earlier signals that came in C code) hold copies of
         * registers; its registers are roots by themselves (regs), and
         * memcheck takes no register copy left in memory that died. */
        if (stopped[i].altstack[0]) {
            go_dead[go_dead_count][0] = stopped[i].altstack[0];
            go_dead[go_dead_count++][1] = stopped[i].altstack[1];
        }
        uintptr_t(*dead)[2] = &go_dead[go_dead_count];
        go_running[nrunning++] = stopped[i].go_g;
        n = mt_go_dead_ranges(stopped[i].go_g, sp, stopped[i].regs[REG_RIP], dead, &why);
        if (n < 0)
            return why;
        /* the first ends at sp (the red zone below it is live), or at
         * g0.sched.sp above it (Go's own frames on g0) */
        if (n > 0 && dead[0][1] == sp)
            dead[0][1] = sp - RED_ZONE > dead[0][0] ? sp - RED_ZONE : dead[0][0];
        go_dead_count += n;
    }
    n = mt_go_parked_ranges(go_running, nrunning, &go_dead[go_dead_count], (int)goroutines, &why);
    if (n < 0)
        return why;
    go_dead_count += n;
    sort_ranges(go_dead, (size_t)go_dead_count);
    return NULL;
}

/* Ranges that are never roots, sorted by start: the shim's own module
 * (its data, bss and bootstrap arena), its mappings (own_memory.c) and each
 * thread's struct mt_thread. */
struct excluded {
    uintptr_t (*ranges)[2];
    size_t count, cap;
};

struct marker_roots {
    struct marker *m;
    const struct program_view *self;
    int nstopped;
    struct excluded *ex;
};

/* The index of the first block that starts at or above lo (count if none). */
static uint64_t first_block_from(const struct marker *m, uint64_t lo)
{
    uint64_t a = 0, b = m->count;
    while (a < b) {
        uint64_t mid = (a + b) / 2;
        if (m->blocks[mid].address < lo)
            a = mid + 1;
        else
            b = mid;
    }
    return a;
}

/* 1 if [lo, hi) holds the start of a live block: heap memory, not a root. */
static int holds_block(const struct marker *m, uint64_t lo, uint64_t hi)
{
    uint64_t a = first_block_from(m, lo);
    return a < m->count && m->blocks[a].address < hi;
}

static void exclude(struct excluded *ex, uintptr_t lo, uintptr_t hi)
{
    if (lo >= hi || ex->count >= ex->cap)
        return;
    size_t i = ex->count++; /* insertion sort: a few hundred ranges */
    while (i > 0 && ex->ranges[i - 1][0] > lo) {
        ex->ranges[i][0] = ex->ranges[i - 1][0];
        ex->ranges[i][1] = ex->ranges[i - 1][1];
        i--;
    }
    ex->ranges[i][0] = lo;
    ex->ranges[i][1] = hi;
}

static int exclude_own(uintptr_t start, uintptr_t end, void *arg)
{
    exclude(arg, start, end);
    return 0;
}

static void exclude_thread_state(struct mt_thread *t, void *arg)
{
    exclude(arg, (uintptr_t)t, (uintptr_t)(t + 1));
}

/* Scans [lo, hi) but for the excluded ranges. */
static void scan_root_range(struct marker *m, const struct excluded *ex, uintptr_t lo, uintptr_t hi,
                            int libc)
{
    for (size_t i = 0; i < ex->count && lo < hi; i++) {
        uintptr_t a = ex->ranges[i][0], b = ex->ranges[i][1];
        if (b <= lo)
            continue;
        if (a >= hi)
            break;
        if (a > lo) {
            if (libc)
                scan_libc_words(m, lo, a);
            else
                scan_words(m, lo, a, 1);
        }
        if (b > lo)
            lo = b;
    }
    if (lo < hi) {
        if (libc)
            scan_libc_words(m, lo, hi);
        else
            scan_words(m, lo, hi, 1);
    }
}


/* ---- heap memory inside a mapping ---------------------------------------- */

/* The kernel merges adjacent anonymous mappings of the same protection, so
 * one line of /proc/self/maps can hold both a chunk glibc mapped for a large
 * block and memory the program mapped itself (whose pointers are roots).
 * With glibc's allocator the heap's part is known from each block's chunk
 * header (malloc/malloc.c): the word before the block is the chunk's size
 * with flag bits, the word before that prev_size. An IS_MMAPPED chunk is a
 * mapping of its own, [chunk - prev_size, chunk + size); a NON_MAIN_ARENA
 * chunk lies in a heap of HEAP_MAX_SIZE (64 MiB on 64-bit) aligned to that
 * size, all of which is the arena's. A main-arena chunk outside [heap] (glibc
 * fell back to mmap when brk failed) has no known extent. */
#define GLIBC_CHUNK_HEADER 16
#define GLIBC_IS_MMAPPED 0x2
#define GLIBC_NON_MAIN_ARENA 0x4
#define GLIBC_HEAP_MAX (64ull << 20)

static int glibc_heap; /* 1: the allocator the shim forwards to is glibc's */

/* The part of [lo, hi) that the chunk of block b takes, or 0 if unknown. */
static int chunk_extent(const struct mt_scan_block *b, uintptr_t lo, uintptr_t hi, uintptr_t *x0,
                        uintptr_t *x1)
{
    uintptr_t a = b->address;
    if ((a & 15) || a < lo + GLIBC_CHUNK_HEADER || a >= hi)
        return 0;
    uintptr_t chunk = a - GLIBC_CHUNK_HEADER;
    uint64_t prev = ((const uint64_t *)chunk)[0], head = ((const uint64_t *)chunk)[1];
    uint64_t size = head & ~7ull;
    if (head & GLIBC_IS_MMAPPED) {
        uintptr_t start = chunk - prev, end = chunk + size;
        if (prev > chunk || (start & 4095) || (end & 4095) || start < lo || end > hi || end <= a ||
            size < b->size + GLIBC_CHUNK_HEADER)
            return 0;
        *x0 = start;
        *x1 = end;
        return 1;
    }
    if (head & GLIBC_NON_MAIN_ARENA) {
        uintptr_t start = chunk & ~(uintptr_t)(GLIBC_HEAP_MAX - 1);
        *x0 = start > lo ? start : lo;
        *x1 = start + GLIBC_HEAP_MAX < hi ? start + GLIBC_HEAP_MAX : hi;
        return 1;
    }
    return 0;
}

/* Scans [from, hi) of a mapping that holds live blocks, but for the heap's
 * part: only when glibc's chunk headers account for every block in it;
 * else none of it (as all of it might be heap, whose free chunks hold stale
 * addresses that must never count as roots). */
static void scan_around_heap(struct marker *m, const struct excluded *ex, uintptr_t lo,
                             uintptr_t from, uintptr_t hi)
{
    if (!glibc_heap)
        return;
    uint64_t first = first_block_from(m, lo);
    uintptr_t x0, x1;
    for (uint64_t i = first; i < m->count && m->blocks[i].address < hi; i++)
        if (!chunk_extent(&m->blocks[i], lo, hi, &x0, &x1))
            return;
    uintptr_t at = from;
    for (uint64_t i = first; i < m->count && m->blocks[i].address < hi; i++) {
        chunk_extent(&m->blocks[i], lo, hi, &x0, &x1);
        if (x0 > at)
            scan_root_range(m, ex, at, x0, 0);
        if (x1 > at)
            at = x1;
    }
    if (at < hi)
        scan_root_range(m, ex, at, hi, 0);
}

/* Scans one line of /proc/self/maps if it is a root. */
static void scan_mapping(struct marker_roots *w, const char *line)
{
    struct marker *m = w->m;
    const char *s = line;
    uintptr_t lo = mt_parse_hex(&s);
    if (*s++ != '-')
        return;
    uintptr_t hi = mt_parse_hex(&s);
    if (*s++ != ' ' || s[0] != 'r' || s[1] != 'w' || s[3] != 'p')
        return;
    const char *bracket = strchr(s, '[');
    if (bracket && (strncmp(bracket, "[heap]", 6) == 0 || strncmp(bracket, "[vvar]", 6) == 0 ||
                    strncmp(bracket, "[vsyscall]", 10) == 0))
        return;
    /* A thread's stack: only from its stack pointer up. */
    uintptr_t from = lo;
    if (w->self->sp >= lo && w->self->sp < hi)
        from = w->self->sp;
    for (int i = 0; i < w->nstopped; i++) {
        uintptr_t sp = __atomic_load_n(&stopped[i].sp, __ATOMIC_ACQUIRE);
        if (sp >= lo && sp < hi && sp > from)
            from = sp - RED_ZONE > from ? sp - RED_ZONE : from;
    }
    if (holds_block(m, lo, hi)) { /* heap memory: its blocks are scanned as blocks */
        scan_around_heap(m, w->ex, lo, from, hi);
        return;
    }
    const char *path = strchr(s, '/');
    scan_root_range(m, w->ex, from, hi, path && strstr(path, "/libc.so"));
}

static int root_line(const char *line, void *arg)
{
    scan_mapping(arg, line);
    return 0;
}

static void scan_roots(struct marker *m, const struct program_view *self)
{
    glibc_heap = mt_real.malloc && (void *)mt_real.malloc == mt_libc_symbol("malloc");
    int nstopped = __atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE);
    if (nstopped > MAX_THREADS)
        nstopped = MAX_THREADS;
    for (int r = 0; r < self->nregs; r++)
        consider(m, self->regs[r], 1);
    for (int i = 0; i < nstopped; i++)
        for (int r = 0; r < NGREG; r++)
            consider(m, stopped[i].regs[r], 1);
    struct excluded ex = {.cap = 2 * MAX_THREADS + 16384 + 16 + (size_t)go_dead_count};
    size_t ex_size = ex.cap * sizeof *ex.ranges;
    ex.ranges = mmap(NULL, ex_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ex.ranges == MAP_FAILED) {
        ex.ranges = NULL;
        ex.cap = 0;
    } else {
        exclude(&ex, (uintptr_t)ex.ranges, (uintptr_t)ex.ranges + ex_size);
    }
    /* the shim's module, and the libraries only it uses (their data holds
     * the shim's caches, never the program's pointers) */
    void *own_code[] = {(void *)scan_roots, (void *)unw_init_local, (void *)cs_open};
    for (size_t i = 0; i < sizeof own_code / sizeof *own_code; i++) {
        Dl_info info;
        uintptr_t own_lo, own_hi;
        if (dladdr(own_code[i], &info) &&
            mt_module_range((uintptr_t)info.dli_fbase, &own_lo, &own_hi) == 0)
            exclude(&ex, own_lo, own_hi);
    }
    mt_own_each(exclude_own, &ex);
    exclude(&ex, (uintptr_t)&mt_thread_state, (uintptr_t)(&mt_thread_state + 1));
    /* every recording thread's, stopped or not (one that blocks the stop
     * signal still holds its last block's address in t->pending) */
    mt_rings_each_owner(exclude_thread_state, &ex);
    for (int i = 0; i < go_dead_count; i++)
        exclude(&ex, go_dead[i][0], go_dead[i][1]);
    for (int i = 0; i < nstopped; i++)
        if (stopped[i].own_tls)
            exclude(&ex, stopped[i].own_tls, stopped[i].own_tls + sizeof(struct mt_thread));
    static char buf[1 << 16];
    struct marker_roots w = {m, self, nstopped, &ex};
    mt_maps_each(buf, sizeof buf, root_line, &w);
    if (ex.ranges)
        munmap(ex.ranges, ex_size);
}

/* ---- where the program's own stack ends --------------------------------- */

/* [lo, hi) of the function that holds address (its symbol's size), or 0s. */
static void function_range(void *address, uintptr_t *lo, uintptr_t *hi)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    *lo = *hi = 0;
    if (address && dladdr1(address, &info, (void **)&sym, RTLD_DL_SYMENT) && sym &&
        info.dli_saddr && sym->st_size) {
        *lo = (uintptr_t)info.dli_saddr;
        *hi = *lo + sym->st_size;
    }
}

static void view_from_cursor(unw_cursor_t *c, struct program_view *v)
{
    static const int callee_saved[] = {UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12,
                                       UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15};
    unw_word_t sp = 0;
    unw_get_reg(c, UNW_REG_SP, &sp);
    v->sp = (uintptr_t)sp;
    v->nregs = 0;
    for (size_t i = 0; i < sizeof callee_saved / sizeof *callee_saved; i++) {
        unw_word_t value;
        if (unw_get_reg(c, callee_saved[i], &value) == 0)
            v->regs[v->nregs++] = value;
    }
}

/* Walks out of the scan to the program: to the caller of libc's exit (the
 * scan runs from our destructor, under exit, also after a return from main,
 * whose caller calls exit), or else to the caller of the shim's outermost
 * frame (our _exit, _Exit). Its stack pointer there is the lowest address the
 * program holds, and its callee-saved registers what it holds in registers
 * (the others are dead across a call). 0 on success. */
static int view_by_walk(int through_exit, struct program_view *v)
{
    static uintptr_t exit_lo, exit_hi;
    if (through_exit && !exit_hi)
        function_range(dlsym(RTLD_DEFAULT, "exit"), &exit_lo, &exit_hi);
    struct mt_thread *t = &mt_thread_state;
    unw_context_t context;
    unw_cursor_t cursor;
    int found = -1, own_chain = 1;
    t->unwinding++; /* libunwind's own mallocs pass through */
    if (unw_getcontext(&context) == 0 && unw_init_local(&cursor, &context) == 0) {
        for (int depth = 0; depth < 256; depth++) {
            unw_word_t ip = 0;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0)
                break;
            /* a return address: the call may be the function's last
             * instruction (exit's call of __run_exit_handlers is) */
            uintptr_t at = (uintptr_t)ip - (depth > 0);
            int in_exit = through_exit && at >= exit_lo && at < exit_hi;
            int own = mt_is_own((uintptr_t)ip);
            if (unw_step(&cursor) <= 0)
                break;
            unw_word_t next_ip = 0;
            unw_get_reg(&cursor, UNW_REG_IP, &next_ip);
            if (in_exit) {
                view_from_cursor(&cursor, v);
                found = 0;
                break;
            }
            if (own_chain && own && !mt_is_own((uintptr_t)next_ip)) {
                own_chain = 0;
                view_from_cursor(&cursor, v);
                found = 0;
                if (!through_exit)
                    break;
            }
        }
    }
    t->unwinding--;
    return found;
}
/* ---- talking to the consumer -------------------------------------------- */

static int send_simple(int fd, uint32_t type)
{
    struct mt_msg_simple msg = {type, 0};
    return send(fd, &msg, sizeof msg, MSG_NOSIGNAL) == (ssize_t)sizeof msg ? 0 : -1;
}

/* Asks for the live blocks; returns the memfd, or -1. */
static int request_blocks(int sock)
{
    if (send_simple(sock, MT_MSG_SCAN) != 0)
        return -1;
    struct mt_msg_reply reply;
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &reply, .iov_len = sizeof reply};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                        .msg_controllen = sizeof control};
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    int fd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    if (n != (ssize_t)sizeof reply || reply.status != MT_REPLY_OK) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd < 0 && (mh.msg_flags & MSG_CTRUNC)) {
        /* The blocks were sent, but their memfd found no free number (the
         * program lowered RLIMIT_NOFILE): the kernel dropped it. Said as
         * it is, or the dump would say the process ended before its scan. */
        struct mt_thread *t = &mt_thread_state;
        t->in_record++;
        mt_emit_incomplete(t, MT_INCOMPLETE_SCAN_NOT_SERVED, MT_SCAN_NOT_RECEIVED + EMFILE);
        t->in_record--;
    }
    return fd;
}

/* _exit never flushes stdio, but libc's freeres does (_IO_cleanup flushes
 * every stream, then frees their buffers). Before it runs at _exit, what is
 * pending in each stream is dropped, as _exit drops it (__fpurge: unwritten
 * output, and unread input that a sync would seek back over): the program's
 * output and file offsets stay what they are bare, and the buffers are
 * freed as under valgrind, whose freeres at _exit does flush them. */
void _IO_list_lock(void);   /* libc's, exported (GLIBC_2.2.5), in no header */
void _IO_list_unlock(void);

static void drop_pending_stdio(FILE **list_all)
{
    _IO_list_lock();
    for (FILE *f = *list_all; f; f = f->_chain)
        __fpurge(f);
    _IO_list_unlock();
}

static void run_freeres(struct mt_thread *t, int how)
{
    /* As valgrind's --run-libc-freeres and --run-cxx-freeres: libc's and
     * libstdc++'s one-time allocations are freed, and those frees recorded,
     * at exit and at _exit alike (valgrind runs both at every exit_group).
     * Looked up guarded (a failed dlsym allocates its message), called
     * unguarded. */
    t->guard++;
    void (*cxx)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
    void (*libc)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "__libc_freeres");
    FILE **list_all = dlsym(RTLD_DEFAULT, "_IO_list_all");
    t->guard--;
    if (cxx)
        cxx();
    if (libc && (how == MT_SCAN_UNDERSCORE_EXIT || how == MT_SCAN_FOREIGN)) { /* Go's raw exit too */
        if (!list_all)
            return; /* no way to keep stdio unflushed */
        drop_pending_stdio(list_all);
    }
    if (libc)
        libc();
}

static int scanned;

__attribute__((noinline)) static void scan_with_blocks(int memfd, const struct program_view *self)
{
    struct mt_scan_header header;
    if (pread(memfd, &header, sizeof header, 0) != (ssize_t)sizeof header)
        return;
    size_t size = sizeof header + header.count * (sizeof(struct mt_scan_block) + 1);
    uint8_t *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (map == MAP_FAILED)
        return;
    struct marker m = {.blocks = (const void *)(map + sizeof header), .count = header.count};
    m.state = map + sizeof header + header.count * sizeof(struct mt_scan_block);
    m.stack_cap = 2 * header.count + 16;
    size_t stack_size = m.stack_cap * sizeof *m.stack;
    m.stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m.stack != MAP_FAILED && m.count) {
        m.lo = m.blocks[0].address;
        for (uint64_t i = 0; i < m.count; i++)
            if (m.blocks[i].address + m.blocks[i].size + 1 > m.hi)
                m.hi = m.blocks[i].address + m.blocks[i].size + 1;
        memset(m.state, UNREACHED, m.count);
        scan_roots(&m, self);
        drain_marks(&m);
        mark_cliques(&m);
        static const uint8_t kind_of[] = {MT_KIND_DEFINITE, MT_KIND_POSSIBLE, MT_KIND_REACHABLE,
                                          MT_KIND_INDIRECT};
        for (uint64_t i = 0; i < m.count; i++)
            m.state[i] = kind_of[m.state[i]];
    }
    if (m.stack != MAP_FAILED)
        munmap(m.stack, stack_size);
    munmap(map, size);
}

void mt_scan_at_exit(int how, const void *context)
{
    struct mt_thread *t = &mt_thread_state;
    /* Not in a child that shares our memory (vfork, clone with CLONE_VM):
     * its _exit ends it, not the traced process, whose heap it would scan,
     * and free libc's blocks of, under the traced process's feet. */
    if (mt_state != MT_STATE_ACTIVE || mt_config.leak_check != MT_LEAK_CHECK_FULL ||
        getpid() != mt_traced_pid() || __atomic_exchange_n(&scanned, 1, __ATOMIC_ACQ_REL))
        return;
    int saved = errno;
    /* Its frees are events. From exit and _exit (there with stdio's pending
     * data dropped first: drop_pending_stdio). Never from a signal handler:
     * the signal may have come inside malloc (valgrind runs neither after a
     * fatal signal). */
    if (how != MT_SCAN_SIGNAL && mt_config.freeres && !t->guard)
        run_freeres(t, how);
    t->guard++;
    /* The program's view of this thread, taken before anything else runs. */
    struct program_view self;
    memset(&self, 0, sizeof self);
    if (how == MT_SCAN_SIGNAL && context) {
        const ucontext_t *uc = context;
        self.sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP] - RED_ZONE;
        self.nregs = NGREG;
        for (int r = 0; r < NGREG; r++)
            self.regs[r] = (uint64_t)uc->uc_mcontext.gregs[r];
    } else if (how == MT_SCAN_FOREIGN) {
        self.sp = 0; /* the Go stacks' dead ranges (go_bounds) bound it */
        self.nregs = 0;  /* Go keeps nothing in registers across a call */
    } else if (view_by_walk(how == MT_SCAN_EXIT, &self) != 0) {
        /* no unwind: our own frame up, as the best bound there is */
        self.sp = (uintptr_t)__builtin_frame_address(0);
        self.nregs = 0;
    }
    mt_socket_lock();
    int sock = mt_socket_fd();
    if (sock >= 0 && mt_socket_is_ours() && mt_state == MT_STATE_ACTIVE) {
        int unstopped = stop_the_world(how == MT_SCAN_FOREIGN);
        if (how == MT_SCAN_FOREIGN && unstopped > 0)
            unstopped = wait_for_stragglers(unstopped);
        const char *why = NULL;
        if (how == MT_SCAN_FOREIGN) {
            if (unstopped != 0)
                why = "a thread could not be stopped";
            else if (signal_other_threads(0) > __atomic_load_n(&stopped_count, __ATOMIC_ACQUIRE))
                why = "a thread started while the others were being stopped";
            else
                why = go_bounds(context);
        }
        int memfd = -1;
        if (why) { /* not scanned: every gate fails, saying so */
            mt_log("cannot scan this Go program at its exit (%s): its leaks are not classified",
                   why);
            t->in_record++;
            mt_emit_incomplete(t, MT_INCOMPLETE_SCAN_FAILED, 0);
            t->in_record--;
        } else {
            memfd = request_blocks(sock);
        }
        if (memfd >= 0) {
            scan_with_blocks(memfd, &self);
            close(memfd);
            send_simple(sock, MT_MSG_SCAN_DONE);
        }
        /* Go's exit_group follows at once (go_exit.c): the other threads
         * stay stopped, or one would allocate after the scan (Go's sysmon
         * starting a thread: a ThreadStart and a dtv, of kind unknown,
         * which fails the gates) */
        if (how != MT_SCAN_FOREIGN)
            release_the_world();
    }
    mt_socket_unlock();
    t->guard--;
    errno = saved;
}
