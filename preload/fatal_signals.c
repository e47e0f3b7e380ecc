/* Death by a fatal signal (SPEC section 5): the reachability scan runs, then
 * the signal does what it would have done -- the same exit status, the same
 * core dump.
 *
 * For every signal whose default action ends the process, while the
 * program's disposition is SIG_DFL, the kernel holds our handler instead.
 * It records how the process ended (an EXIT marker "killed by signal N"),
 * scans from the interrupted context (its stack pointer less the red zone,
 * its registers), restores SIG_DFL and lets the signal kill: a fault
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL raised by an instruction) by returning
 * to the instruction, which faults again; any other by sending it again to
 * the thread and unblocking it.
 *
 * The program sees only what it installed: sigaction and __sigaction,
 * signal, bsd_signal and ssignal (one function in glibc), sysv_signal,
 * sigset, sigignore, siginterrupt and sigvec (a compat symbol) are
 * interposed and keep a shadow table of the program's actions (all but
 * sigaction through it: signal_compat.c); sigaction's oldact reports the program's action, never ours. A
 * handler the program installs goes to the kernel as it is (with one
 * exception: SA_RESETHAND goes through a trampoline, so that the reset to
 * SIG_DFL puts our handler back, not the bare default).
 *
 * Stack overflow: a SIGSEGV from running off the stack finds no stack to
 * run a handler on. So the handler runs on an alternate stack of the
 * shim's own (SA_ONSTACK is set on our handler only), one per thread:
 * mapped at the thread's first event (the main thread's at init),
 * registered in own_memory.c (never a root), unmapped by a thread-specific
 * destructor. A thread that runs off its stack before its first event has
 * none, and dies unscanned as it would bare (the gates say so). The
 * program sees only its own sigaltstack settings: sigaltstack is
 * interposed; while the program has no alternate stack in a thread, ours is
 * the kernel's and the program is told "disabled"; once the program sets
 * one, the kernel has the program's, and our handler, which the kernel then
 * starts on the program's stack, moves to ours before it scans (the scan
 * needs room, and its frames must not lie in the program's memory, which is
 * a root). While no thread of the program ever set an alternate stack,
 * SA_ONSTACK is left out of the program's own fatal-signal handlers, so
 * that they run where they would bare (not on our stack).
 *
 * Re-entrancy: the first fatal signal scans; any other one, in any thread,
 * during or after that scan, kills at once (restores SIG_DFL, re-raises):
 * never a hang. No scan in a process that is not the traced one (a vfork
 * child), nor when the signal came inside the shim (its state may be half
 * written; that process is left unscanned, which the gates report).
 *
 * Runs inside the traced process: static storage only, no malloc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "loader.h"
#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

/* libc's own sigaction, found in its symbol table (we export sigaction and
 * __sigaction, so a plain reference would bind to ours). Resolved at
 * install, or at the program's first call if that comes before. */
typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn libc_sigaction_fn;

static int real_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    sigaction_fn f = __atomic_load_n(&libc_sigaction_fn, __ATOMIC_RELAXED);
    if (MT_UNLIKELY(!f)) {
        f = (sigaction_fn)mt_libc_symbol("__sigaction");
        if (!f)
            f = (sigaction_fn)mt_libc_symbol("sigaction");
        if (!f) {
            errno = ENOSYS;
            return -1;
        }
        __atomic_store_n(&libc_sigaction_fn, f, __ATOMIC_RELAXED);
    }
    return f(sig, act, oldact);
}

void mt_note_exit_signal(int sig) MT_HIDDEN;

/* The signals whose default action terminates the process (with or without
 * a core), but for the real-time ones (the scan stops threads with one). */
static const int fatal_list[] = {SIGHUP,  SIGINT,    SIGQUIT, SIGILL,  SIGTRAP, SIGABRT,
                                 SIGBUS,  SIGFPE,    SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,
                                 SIGALRM, SIGTERM,   SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM,
                                 SIGPROF, SIGIO,     SIGPWR,  SIGSYS};

/* The signals a fault raises: the kernel kills at once (no handler) when
 * one is blocked (see "the program's signal mask" below). */
static const int fault_list[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};

#define NSIG_TABLE 65

static struct sigaction program_action[NSIG_TABLE]; /* what the program installed */
static unsigned char is_fatal[NSIG_TABLE];
static int installed;        /* our handlers are in place: the shadow table is authoritative */
static int table_lock;
static int dying;            /* a fatal signal is being handled */
static int program_altstack; /* some thread of the program set an alternate stack */

static void fatal_handler(int sig, siginfo_t *info, void *context);
static void resethand_trampoline(int sig, siginfo_t *info, void *context);

static int fatal(int sig) { return sig > 0 && sig < NSIG_TABLE && is_fatal[sig]; }

/* sa_handler and sa_sigaction share their storage: SIG_DFL is 0 in both. */
static int is_default(const struct sigaction *a) { return a->sa_handler == SIG_DFL; }

/* What goes to the kernel for the program's action a on sig. Table lock held. */
static int apply(int sig, const struct sigaction *a)
{
    struct sigaction k;
    if (is_default(a)) {
        memset(&k, 0, sizeof k);
        k.sa_sigaction = fatal_handler;
        k.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigfillset(&k.sa_mask);
        return real_sigaction(sig, &k, NULL);
    }
    if (a->sa_handler == SIG_IGN)
        return real_sigaction(sig, a, NULL);
    k = *a;
    if (a->sa_flags & SA_RESETHAND) {
        k.sa_flags = (a->sa_flags & ~SA_RESETHAND) | SA_SIGINFO;
        k.sa_sigaction = resethand_trampoline;
    }
    /* no alternate stack of the program's anywhere: bare, the handler runs
     * on the thread's stack, not on ours */
    if (!__atomic_load_n(&program_altstack, __ATOMIC_ACQUIRE))
        k.sa_flags &= ~SA_ONSTACK;
    /* A fault signal blocked while the handler runs would kill unscanned
     * on a fault in the handler: while the program leaves it at SIG_DFL,
     * only the program's view (the shadow table) has it in the mask. */
    for (size_t i = 0; i < sizeof fault_list / sizeof *fault_list; i++) {
        int f = fault_list[i];
        if (f != sig && is_default(&program_action[f]))
            sigdelset(&k.sa_mask, f);
    }
    return real_sigaction(sig, &k, NULL);
}

static int is_fault(int sig)
{
    for (size_t i = 0; i < sizeof fault_list / sizeof *fault_list; i++)
        if (fault_list[i] == sig)
            return 1;
    return 0;
}

/* A fault signal's action went from SIG_DFL to a handler or back: the
 * masks of the program's handlers change with it. Table lock held. */
static void apply_handlers_again(void)
{
    for (size_t i = 0; i < sizeof fatal_list / sizeof *fatal_list; i++) {
        int sig = fatal_list[i];
        if (!is_default(&program_action[sig]))
            apply(sig, &program_action[sig]);
    }
}

/* ---- the shim's alternate signal stack ----------------------------------- */

/* Room for the handler and the scan under it, above a guard page: the
 * kernel's signal frame and the scan's frames and buffers took 11 KiB at
 * most (measured on the e2e.signals2 and e2e.fatal_signals victims and a
 * CPython abort). Pages are touched only by a fatal signal. */
#define ALT_SIZE (64 * 1024)
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* linux/signal.h */
#endif
#define ALT_GUARD 4096

static __thread struct {
    char *map;             /* guard page + stack, or NULL */
    unsigned char ready;   /* set up (or tried) for this thread */
    unsigned char program; /* the program's alternate stack is the kernel's */
} alt __attribute__((tls_model("initial-exec")));

static pthread_key_t alt_key;
static int alt_key_made;

static int kernel_sigaltstack(const stack_t *ss, stack_t *old)
{
    return (int)syscall(SYS_sigaltstack, ss, old);
}

static void install_ours(void)
{
    stack_t s = {.ss_sp = alt.map + ALT_GUARD, .ss_size = ALT_SIZE, .ss_flags = 0};
    kernel_sigaltstack(&s, NULL);
}

/* At thread exit: the kernel forgets our stack, then it is unmapped. */
static void alt_release(void *map)
{
    if (!map || map != alt.map)
        return;
    if (!alt.program) {
        stack_t off = {.ss_flags = SS_DISABLE};
        kernel_sigaltstack(&off, NULL);
    }
    alt.map = NULL; /* ready stays set: no new stack for a thread that ends */
    mt_unmap(map, ALT_GUARD + ALT_SIZE);
}

/* This thread's stack, mapped and (unless the program has one there)
 * handed to the kernel. Once per thread; cheap after. */
void mt_fatal_signals_thread(void)
{
    if (MT_LIKELY(alt.ready) || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
        return;
    alt.ready = 1;
    int saved = errno;
    char *m = mt_map(ALT_GUARD + ALT_SIZE);
    if (m) {
        mprotect(m, ALT_GUARD, PROT_NONE);
        alt.map = m;
        stack_t now;
        if (kernel_sigaltstack(NULL, &now) == 0 && !(now.ss_flags & SS_DISABLE))
            alt.program = 1; /* set already (by a raw system call) */
        else
            install_ours();
        if (__atomic_load_n(&alt_key_made, __ATOMIC_ACQUIRE)) {
            struct mt_thread *t = &mt_thread_state;
            t->guard++;
            pthread_setspecific(alt_key, m);
            t->guard--;
        }
    }
    errno = saved;
}

/* Calls fn(arg) with the stack pointer at top (16-byte aligned). */
__attribute__((noinline)) static void call_on_stack(void (*fn)(void *), void *arg, char *top)
{
    __asm__ volatile("mov %%rsp, %%rbx\n\t"
                     "mov %[top], %%rsp\n\t"
                     "call *%[fn]\n\t"
                     "mov %%rbx, %%rsp\n\t"
                     : "+D"(arg)
                     : [fn] "r"(fn), [top] "r"(top)
                     : "rbx", "rax", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory",
                       "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* ---- the program's signal mask and the fault signals ---------------------
 *
 * A fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS raised by an
 * instruction) while its signal is blocked is not held pending: the kernel
 * unblocks it, resets its action to SIG_DFL and kills, and our handler never
 * runs. So while the program leaves such a signal at SIG_DFL, blocking it
 * through sigprocmask or pthread_sigmask blocks it only in the program's
 * view (per thread): the kernel's mask keeps it unblocked, the old mask the
 * program reads back shows it blocked. A fault then runs our handler, which
 * scans and dies as the kernel would have. The same signal sent by kill or
 * tgkill (si_code <= 0) while the program holds it blocked is made pending
 * again (blocked for real on return from the handler, and queued again with
 * its siginfo), as the kernel would have held it. Before an exec the blocked
 * view goes to the kernel, since the new image inherits the mask. Not
 * emulated (a fault there still dies unscanned, and the gates say so): the
 * view a new thread inherits (it gets the kernel's mask), posix_spawn and
 * system children (sighold, sigrelse, sigblock, sigsetmask and siggetmask
 * are interposed and go through it), the sa_mask of handlers for signals outside fatal_list
 * (those inside it: apply). */

/* Bit sig-1: a fault signal the program blocked that the kernel does not. */
static __thread unsigned long long view_blocked __attribute__((tls_model("initial-exec")));

typedef int (*mask_fn)(int, const sigset_t *, sigset_t *);
static mask_fn libc_pthread_sigmask_fn;

/* libc's pthread_sigmask (it keeps glibc's internal signals out of the
 * mask): an error number, or 0. */
static int real_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    mask_fn f = __atomic_load_n(&libc_pthread_sigmask_fn, __ATOMIC_RELAXED);
    if (MT_UNLIKELY(!f)) {
        f = (mask_fn)mt_libc_symbol("pthread_sigmask");
        if (!f)
            return ENOSYS;
        __atomic_store_n(&libc_pthread_sigmask_fn, f, __ATOMIC_RELAXED);
    }
    return f(how, set, old);
}

static unsigned long long fault_bit(int sig) { return 1ull << (sig - 1); }

/* The program's sigprocmask/pthread_sigmask: an error number, or 0. */
static int program_mask(int how, const sigset_t *set, sigset_t *old)
{
    if (!__atomic_load_n(&installed, __ATOMIC_ACQUIRE) ||
        (how != SIG_BLOCK && how != SIG_UNBLOCK && how != SIG_SETMASK))
        return real_pthread_sigmask(how, set, old);
    unsigned long long before = view_blocked, after = before;
    sigset_t kernel;
    const sigset_t *use = set;
    if (set) {
        kernel = *set;
        use = &kernel;
        for (size_t i = 0; i < sizeof fault_list / sizeof *fault_list; i++) {
            int sig = fault_list[i];
            int member = sigismember(set, sig) == 1;
            /* only while the program leaves it at SIG_DFL (ours runs) */
            int ours = is_default(&program_action[sig]);
            if (how == SIG_UNBLOCK) {
                if (member)
                    after &= ~fault_bit(sig);
            } else if (member && ours) {
                after |= fault_bit(sig);
                sigdelset(&kernel, sig);
            } else if (how == SIG_SETMASK) {
                after &= ~fault_bit(sig);
            }
        }
    }
    /* what is unblocked leaves the view first: a signal held pending may
     * be delivered as the call returns */
    view_blocked = before & after;
    int r = real_pthread_sigmask(how, use, old);
    if (r != 0) {
        view_blocked = before;
        return r;
    }
    view_blocked = after;
    if (old)
        for (size_t i = 0; i < sizeof fault_list / sizeof *fault_list; i++)
            if (before & fault_bit(fault_list[i]))
                sigaddset(old, fault_list[i]);
    return 0;
}

EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    return program_mask(how, set, old);
}

EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    int r = program_mask(how, set, old);
    if (r != 0) {
        errno = r;
        return -1;
    }
    return 0;
}

/* exec: the image to come inherits the mask, so the kernel gets the
 * program's view (attempt 1), and loses it again if the exec failed (0). */
void mt_fatal_signals_exec(int attempt)
{
    unsigned long long bits = view_blocked;
    if (!bits)
        return;
    int saved = errno;
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof fault_list / sizeof *fault_list; i++)
        if (bits & fault_bit(fault_list[i]))
            sigaddset(&set, fault_list[i]);
    real_pthread_sigmask(attempt ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
    errno = saved;
}

/* A fault signal sent (not raised by a fault) while the program holds it
 * blocked: pending again, blocked for real once the handler returns. 1 if
 * so. */
static int held_by_program(int sig, siginfo_t *info, void *context)
{
    if (sig <= 0 || sig > 64 || !(view_blocked & fault_bit(sig)) || !info || info->si_code > 0 ||
        !context)
        return 0;
    ucontext_t *uc = context;
    sigaddset(&uc->uc_sigmask, sig);
    syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), sig, info);
    return 1;
}

/* ---- the handlers -------------------------------------------------------- */

static void die_as_default(int sig, const siginfo_t *info)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(sig, &dfl, NULL);
    int fault = info && info->si_code > 0 &&
                (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL);
    if (fault)
        return; /* the instruction runs again and faults, now to the default */
    syscall(SYS_tgkill, getpid(), gettid(), sig);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, NULL, _NSIG / 8);
}

static int exit_noted; /* the first fatal signal's EXIT marker is written */

struct fatal_call {
    int sig;
    siginfo_t *info;
    void *context;
};

static void fatal_body(void *arg);

static void fatal_handler(int sig, siginfo_t *info, void *context)
{
    int saved = errno;
    if (held_by_program(sig, info, context)) {
        errno = saved;
        return;
    }
    struct fatal_call call = {sig, info, context};
    char *sp = __builtin_frame_address(0);
    char *m = alt.map;
    if (m && !(sp > m + ALT_GUARD && sp <= m + ALT_GUARD + ALT_SIZE))
        call_on_stack(fatal_body, &call, m + ALT_GUARD + ALT_SIZE); /* not on ours: move */
    else
        fatal_body(&call);
}

static void fatal_body(void *arg)
{
    const struct fatal_call *call = arg;
    int sig = call->sig;
    siginfo_t *info = call->info;
    void *context = call->context;
    int saved = errno;
    if (!__atomic_exchange_n(&dying, 1, __ATOMIC_ACQ_REL)) {
        if (mt_state == MT_STATE_ACTIVE && getpid() == mt_traced_pid()) {
            struct mt_thread *t = &mt_thread_state;
            if (!t->guard && !t->in_record && !t->unwinding && !t->in_hook) {
                mt_note_exit_signal(sig);
                __atomic_store_n(&exit_noted, 1, __ATOMIC_RELEASE);
                mt_scan_at_exit(MT_SCAN_SIGNAL, context);
            }
        }
        __atomic_store_n(&exit_noted, 1, __ATOMIC_RELEASE);
    } else {
        /* Another fatal signal is being handled: kill now, but not before
         * its EXIT marker is written (a moment; at most 100 ms). */
        for (int i = 0; i < 1000 && !__atomic_load_n(&exit_noted, __ATOMIC_ACQUIRE); i++) {
            struct timespec pause = {0, 100000};
            syscall(SYS_nanosleep, &pause, NULL);
        }
    }
    die_as_default(sig, info);
    errno = saved;
}

/* A program handler installed with SA_RESETHAND: as the kernel would, the
 * action becomes the default on entry -- ours, so a second signal scans. */
static void resethand_trampoline(int sig, siginfo_t *info, void *context)
{
    struct sigaction a;
    mt_spin_lock(&table_lock);
    a = program_action[sig];
    memset(&program_action[sig], 0, sizeof program_action[sig]);
    program_action[sig].sa_handler = SIG_DFL;
    apply(sig, &program_action[sig]);
    if (is_fault(sig))
        apply_handlers_again();
    mt_spin_unlock(&table_lock);
    if (a.sa_flags & SA_SIGINFO)
        a.sa_sigaction(sig, info, context);
    else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN)
        a.sa_handler(sig);
}

/* ---- install ------------------------------------------------------------- */

void mt_fatal_signals_install(void)
{
    for (size_t i = 0; i < sizeof fatal_list / sizeof *fatal_list; i++)
        is_fatal[fatal_list[i]] = 1;
    mt_spin_lock(&table_lock);
    if (!installed) {
        /* every action first: apply reads the fault signals' */
        for (size_t i = 0; i < sizeof fatal_list / sizeof *fatal_list; i++)
            real_sigaction(fatal_list[i], NULL, &program_action[fatal_list[i]]);
        for (size_t i = 0; i < sizeof fatal_list / sizeof *fatal_list; i++)
            apply(fatal_list[i], &program_action[fatal_list[i]]);
        __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
    }
    mt_spin_unlock(&table_lock);
    if (!__atomic_load_n(&alt_key_made, __ATOMIC_ACQUIRE) &&
        pthread_key_create(&alt_key, alt_release) == 0)
        __atomic_store_n(&alt_key_made, 1, __ATOMIC_RELEASE);
    mt_fatal_signals_thread(); /* the thread that starts the shim */
}

/* ---- the program's interface --------------------------------------------- */

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    if (!fatal(sig) || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
        return real_sigaction(sig, act, oldact);
    mt_spin_lock(&table_lock);
    struct sigaction old = program_action[sig];
    int r = 0;
    if (act) {
        r = apply(sig, act);
        if (r == 0) {
            program_action[sig] = *act;
            if (is_fault(sig) && is_default(&old) != is_default(act))
                apply_handlers_again();
        }
    }
    mt_spin_unlock(&table_lock);
    if (r == 0 && oldact)
        *oldact = old;
    return r;
}

/* A thread of the program set an alternate stack: from now on its fatal
 * handlers keep SA_ONSTACK, as it asked. */
static void program_sets_altstack(void)
{
    if (__atomic_exchange_n(&program_altstack, 1, __ATOMIC_ACQ_REL))
        return;
    mt_spin_lock(&table_lock);
    for (size_t i = 0; i < sizeof fatal_list / sizeof *fatal_list; i++) {
        int sig = fatal_list[i];
        if (!is_default(&program_action[sig]) && (program_action[sig].sa_flags & SA_ONSTACK))
            apply(sig, &program_action[sig]);
    }
    mt_spin_unlock(&table_lock);
}

/* The program sees its own alternate stack, or none: never ours. */
EXPORT int sigaltstack(const stack_t *ss, stack_t *old)
{
    if (!__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
        return kernel_sigaltstack(ss, old);
    mt_fatal_signals_thread();
    if (!alt.map || alt.program) {
        int r = kernel_sigaltstack(ss, old);
        if (r == 0 && ss && (ss->ss_flags & SS_DISABLE) && alt.map) {
            alt.program = 0; /* the program gave its stack up: ours again */
            install_ours();
        } else if (r == 0 && ss && !(ss->ss_flags & SS_DISABLE)) {
            program_sets_altstack();
        }
        return r;
    }
    /* Ours is the kernel's: the program has none. */
    if (ss && (ss->ss_flags & SS_DISABLE)) {
        if ((ss->ss_flags & ~SS_AUTODISARM) != SS_DISABLE) {
            errno = EINVAL;
            return -1;
        }
    } else if (ss) {
        if (kernel_sigaltstack(ss, NULL) != 0)
            return -1;
        alt.program = 1;
        program_sets_altstack();
    }
    if (old) {
        memset(old, 0, sizeof *old);
        old->ss_flags = SS_DISABLE;
    }
    return 0;
}
