/* The exit scan's other threads (scan_state.h): each is stopped with a
 * real-time signal whose handler saves its registers and stack pointer
 * and waits; in a Go process, the dead parts of every thread's and
 * goroutine's stack are found, so that they are never roots. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "loader.h"
#include "scan_state.h"

/* ---- stopping the other threads ---------------------------------------- */

struct stopped *scan_stopped;      /* mmap'd, MAX_THREADS entries */
volatile int scan_stopped_count;   /* handlers that have saved their state */
static volatile int release_word;    /* 1: stopped threads may go on */

static void stop_handler(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)info;
    int saved = errno;
    const ucontext_t *uc = context;
    int i = __atomic_load_n(&scan_stopped_count, __ATOMIC_RELAXED);
    while (i < MAX_THREADS && !__atomic_compare_exchange_n(&scan_stopped_count, &i, i + 1, 0,
                                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        ;
    if (i < MAX_THREADS) {
        for (int r = 0; r < NGREG; r++)
            scan_stopped[i].regs[r] = (uint64_t)uc->uc_mcontext.gregs[r];
        scan_stopped[i].own_tls = (uintptr_t)&mt_thread_state;
        scan_stopped[i].go_g = mt_go_current_g();
        stack_t ss;
        if (mt_go_process && sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK)) {
            scan_stopped[i].altstack[0] = (uintptr_t)ss.ss_sp;
            scan_stopped[i].altstack[1] = (uintptr_t)ss.ss_sp + ss.ss_size;
        }
        __atomic_store_n(&scan_stopped[i].sp, (uintptr_t)uc->uc_mcontext.gregs[REG_RSP], __ATOMIC_RELEASE);
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
int mt_scan_signal_other_threads(int sig)
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
int mt_scan_stop_the_world(int go)
{
    scan_stopped = mt_map(MAX_THREADS * sizeof *scan_stopped);
    if (!scan_stopped)
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
    int signalled = mt_scan_signal_other_threads(sig);
    /* Wait up to 200 ms for them; a thread that blocks the signal is
     * scanned conservatively (its whole stack mapping, no registers). */
    for (int waited = 0; waited < 2000; waited++) {
        if (__atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE) >= signalled)
            break;
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);
    }
    /* Our handler stays installed: a late signal must not kill the process. */
    int count = __atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE);
    return signalled > count ? signalled - count : 0;
}

/* Go blocks every signal in a thread it is starting until the thread is
 * its own (runtime.minit); meanwhile the shim may be registering the
 * thread's ring, which waits for the socket that the scan holds. Let them
 * have it, up to a second, and take it back; returns how many still did not
 * stop. The stopped threads cannot hold it: they stopped while it was ours. */
int mt_scan_wait_for_stragglers(int unstopped)
{
    int signalled = __atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE) + unstopped;
    mt_socket_unlock();
    for (int waited = 0; waited < 10000; waited++) {
        if (__atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE) >= signalled)
            break;
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);
    }
    mt_socket_lock();
    int count = __atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE);
    return signalled > count ? signalled - count : 0;
}

void mt_scan_release_the_world(void)
{
    __atomic_store_n(&release_word, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &release_word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* A Go process (MT_SCAN_FOREIGN): the dead parts of its threads' stacks
 * (mt_go_dead_ranges), the signal stacks they stopped on, and the dead
 * parts of the stacks of the goroutines no thread runs
 * (mt_go_parked_ranges): never roots. mmap'd, up to 3 per thread and 1 per
 * goroutine. */
uintptr_t (*scan_go_dead)[2];
int scan_go_dead_count;

/* Sorts scan_go_dead by start (heapsort: no malloc, any count), so that
 * the roots' exclusion (scan_roots.c) takes them in order. */
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

/* Fills scan_go_dead for the exiting thread (view) and every stopped thread;
 * NULL, or why Go's bounds cannot be trusted. */
const char *mt_scan_go_bounds(const struct mt_go_exit_view *view)
{
    size_t goroutines = mt_go_goroutines();
    scan_go_dead = mt_map(((MAX_THREADS + 2) * 3 + goroutines) * sizeof *scan_go_dead);
    if (!scan_go_dead)
        return "no memory for the bounds";
    const char *why = NULL;
    int nrunning = 0;
    go_running[nrunning++] = view->g;
    int n = mt_go_dead_ranges(view->g, view->sp, 0, &scan_go_dead[0], &why);
    if (n < 0)
        return why;
    scan_go_dead_count = n;
    if (view->altstack[0]) {
        scan_go_dead[scan_go_dead_count][0] = view->altstack[0];
        scan_go_dead[scan_go_dead_count++][1] = view->altstack[1];
    }
    int nstopped = __atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE);
    for (int i = 0; i < nstopped && i < MAX_THREADS; i++) {
        /* counted, but its handler may not have saved its state yet */
        uintptr_t sp;
        for (int waited = 0; !(sp = __atomic_load_n(&scan_stopped[i].sp, __ATOMIC_ACQUIRE)); waited++) {
            if (waited == 10000)
                return "a stopped thread did not save its state";
            struct timespec pause = {0, 100000};
            nanosleep(&pause, NULL);
        }
        /* The signal stack it stopped on: the kernel's frames there (ours,
         * and those of earlier signals that came in C code) hold copies of
         * registers; its registers are roots by themselves (regs), and
         * memcheck takes no register copy left in memory that died. */
        if (scan_stopped[i].altstack[0]) {
            scan_go_dead[scan_go_dead_count][0] = scan_stopped[i].altstack[0];
            scan_go_dead[scan_go_dead_count++][1] = scan_stopped[i].altstack[1];
        }
        uintptr_t(*dead)[2] = &scan_go_dead[scan_go_dead_count];
        go_running[nrunning++] = scan_stopped[i].go_g;
        n = mt_go_dead_ranges(scan_stopped[i].go_g, sp, scan_stopped[i].regs[REG_RIP], dead, &why);
        if (n < 0)
            return why;
        /* the first ends at sp (the red zone below it is live), or at
         * g0.sched.sp above it (Go's own frames on g0) */
        if (n > 0 && dead[0][1] == sp)
            dead[0][1] = sp - RED_ZONE > dead[0][0] ? sp - RED_ZONE : dead[0][0];
        scan_go_dead_count += n;
    }
    n = mt_go_parked_ranges(go_running, nrunning, &scan_go_dead[scan_go_dead_count], (int)goroutines, &why);
    if (n < 0)
        return why;
    scan_go_dead_count += n;
    sort_ranges(scan_go_dead, (size_t)scan_go_dead_count);
    return NULL;
}
