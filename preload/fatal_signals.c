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
 * The program sees only what it installed: sigaction, signal, bsd_signal
 * and sysv_signal are interposed and keep a shadow table of the program's
 * actions; sigaction's oldact reports the program's action, never ours. A
 * handler the program installs goes to the kernel as it is (with one
 * exception: SA_RESETHAND goes through a trampoline, so that the reset to
 * SIG_DFL puts our handler back, not the bare default).
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
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

/* libc's sigaction under its other name: we define sigaction, not this. */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);

void mt_note_exit_signal(int sig) MT_HIDDEN;

/* The signals whose default action terminates the process (with or without
 * a core), but for the real-time ones (the scan stops threads with one). */
static const int fatal_list[] = {SIGHUP,  SIGINT,    SIGQUIT, SIGILL,  SIGTRAP, SIGABRT,
                                 SIGBUS,  SIGFPE,    SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,
                                 SIGALRM, SIGTERM,   SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM,
                                 SIGPROF, SIGIO,     SIGPWR,  SIGSYS};

#define NSIG_TABLE 65

static struct sigaction program_action[NSIG_TABLE]; /* what the program installed */
static unsigned char is_fatal[NSIG_TABLE];
static int installed;    /* our handlers are in place: the shadow table is authoritative */
static int table_lock;
static int dying;        /* a fatal signal is being handled */

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
        return __sigaction(sig, &k, NULL);
    }
    if ((a->sa_flags & SA_RESETHAND) && a->sa_handler != SIG_IGN) {
        k = *a;
        k.sa_flags = (a->sa_flags & ~SA_RESETHAND) | SA_SIGINFO;
        k.sa_sigaction = resethand_trampoline;
        return __sigaction(sig, &k, NULL);
    }
    return __sigaction(sig, a, NULL);
}

/* ---- the handlers -------------------------------------------------------- */

static void die_as_default(int sig, const siginfo_t *info)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    __sigaction(sig, &dfl, NULL);
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

static void fatal_handler(int sig, siginfo_t *info, void *context)
{
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
        for (size_t i = 0; i < sizeof fatal_list / sizeof *fatal_list; i++) {
            int sig = fatal_list[i];
            if (__sigaction(sig, NULL, &program_action[sig]) == 0 &&
                is_default(&program_action[sig]))
                apply(sig, &program_action[sig]);
        }
        __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
    }
    mt_spin_unlock(&table_lock);
}

/* ---- the program's interface --------------------------------------------- */

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    if (!fatal(sig) || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
        return __sigaction(sig, act, oldact);
    mt_spin_lock(&table_lock);
    struct sigaction old = program_action[sig];
    int r = 0;
    if (act) {
        r = apply(sig, act);
        if (r == 0)
            program_action[sig] = *act;
    }
    mt_spin_unlock(&table_lock);
    if (r == 0 && oldact)
        *oldact = old;
    return r;
}

/* glibc's signal and bsd_signal: BSD semantics (the signal blocked in its
 * handler, calls restarted). */
EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sig <= 0 || sig >= NSIG_TABLE || sigaddset(&act.sa_mask, sig) < 0 || handler == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler) { return signal(sig, handler); }

/* System V semantics: reset to the default on entry, not blocked. */
EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
    struct sigaction act, old;
    if (sig <= 0 || sig >= NSIG_TABLE || handler == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}
