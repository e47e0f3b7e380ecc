/* The fatal-signal cases of issue 17 point 3 that the first handler missed
 * (tests/e2e/test_signals2.py). Leaks 4096 bytes (the only pointer dropped),
 * keeps 500 reachable from a global, then, by its first argument:
 *
 *   overflow          recurses until the main thread's stack overflows
 *                     (SIGSEGV with no stack left to run a handler on)
 *   thread_overflow   a second thread allocates (an event: memtrace has
 *                     seen it), then overflows its own stack
 *   early_overflow    a second thread overflows its stack before it makes
 *                     any heap call (memtrace has never seen it)
 *   blocked_thread    main blocks every signal (sigfillset, pthread_sigmask)
 *                     before it starts a thread, then restores its mask; the
 *                     thread, with every signal blocked, allocates, then
 *                     faults (the pattern of servers whose workers take no
 *                     signal)
 *   handler_mask      a SIGUSR1 handler installed with every signal in its
 *                     sa_mask faults
 *   xsi               sigignore(SIGUSR2), siginterrupt(SIGUSR1, 1) on its
 *                     handler and sighold(SIGSEGV): sigaction and the mask
 *                     must report each; then faults with SIGSEGV held
 *   altstack          checks that sigaltstack reports no alternate stack
 *                     (what the program left), sets its own, checks that
 *                     sigaltstack reports it, disables it and checks again,
 *                     sets it again and overflows the main stack
 *   blocked_fault     blocks SIGSEGV (sigprocmask), checks that sigprocmask
 *                     and pthread_sigmask report it blocked, then writes
 *                     through NULL: the kernel unblocks it and resets its
 *                     action to SIG_DFL before it delivers the fault
 *   blocked_kill      blocks SIGSEGV, raises it (held pending: sigpending
 *                     must show it, and the program goes on), then
 *                     unblocks it and dies of it
 *   sigset | ssignal | sigaction2 | sigvec
 *                     installs its own SIGSEGV handler through sigset,
 *                     ssignal, __sigaction or sigvec (the last through its
 *                     compat version: glibc exports no default one); checks
 *                     that sigaction and the function itself report it; the
 *                     handler writes "handler ran" and restores SIG_DFL
 *                     through the same function, so the fault repeats and
 *                     kills
 *
 * memcheck: definite 4096/1, reachable 500/1; memtrace must say the same,
 * and the program must end exactly as it does bare (SIGSEGV, core flag).
 * Any check that fails writes a line with "sigaction" in it and exits 5.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;
static void *volatile kept;

/* ---- running off the stack ---------------------------------------------- */

static volatile unsigned long depth_reached;
static volatile int forever = 1; /* never cleared: the recursion has no end */

static unsigned long recurse(unsigned long n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    depth_reached = n;
    return forever ? recurse(n + 1) + pad[0] : n;
}

static volatile int main_restored;

static void *fault_thread(void *arg)
{
    (void)arg;
    /* main must take the scan's stop signal again, and wait in
     * pthread_join (a futex): the stale words of its last calls are then
     * below its stack pointer's red zone, as they are under memcheck */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)getpid());
    for (;;) {
        char line[32] = "";
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(line, sizeof line, f))
                line[0] = 0;
            fclose(f);
        }
        if (main_restored && !strncmp(line, "202 ", 4))
            break;
        usleep(1000);
    }
    void *volatile p = malloc(16);
    free(p);
    *(volatile int *)0 = 1;
    return NULL;
}

static void on_usr1_fault(int sig)
{
    (void)sig;
    *(volatile int *)0 = 1;
}

static void *overflow_thread(void *arg)
{
    if (arg) { /* an event first: the thread is known to memtrace */
        void *volatile p = malloc(16);
        free(p);
    }
    recurse(0);
    return NULL;
}

/* ---- the old interfaces --------------------------------------------------- */

/* glibc 2.36 exports sigvec only as a compat symbol; struct sigvec left
 * the headers. */
struct old_sigvec {
    void (*sv_handler)(int);
    int sv_mask;
    int sv_flags;
};
int compat_sigvec(int sig, const struct old_sigvec *vec, struct old_sigvec *ovec);
__asm__(".symver compat_sigvec, sigvec@GLIBC_2.2.5");

extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *oldact);
extern sighandler_t ssignal(int sig, sighandler_t handler);

static const char *how = "";

static void set_handler_via(void (*handler)(int))
{
    if (!strcmp(how, "sigset")) {
        sigset(SIGSEGV, handler);
    } else if (!strcmp(how, "ssignal")) {
        ssignal(SIGSEGV, handler);
    } else if (!strcmp(how, "sigaction2")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = handler;
        sigemptyset(&sa.sa_mask);
        __sigaction(SIGSEGV, &sa, NULL);
    } else if (!strcmp(how, "sigvec")) {
        struct old_sigvec v = {handler, 0, 0};
        compat_sigvec(SIGSEGV, &v, NULL);
    }
}

static void on_segv(int sig)
{
    static const char msg[] = "handler ran\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    (void)sig;
    set_handler_via(SIG_DFL);
}

static int fail(const char *what)
{
    fprintf(stderr, "sigaction check failed: %s\n", what);
    return 5;
}

/* What sigaction reports for SIGSEGV is handler. */
static int reports(void (*handler)(int))
{
    struct sigaction old;
    return sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == handler;
}

static int install_and_check(void)
{
    if (!reports(SIG_DFL))
        return fail("SIGSEGV is not SIG_DFL at start");
    if (!strcmp(how, "sigset")) {
        if (sigset(SIGSEGV, on_segv) != SIG_DFL || sigset(SIGSEGV, on_segv) != on_segv)
            return fail("sigset does not return the previous handler");
    } else if (!strcmp(how, "ssignal")) {
        if (ssignal(SIGSEGV, on_segv) != SIG_DFL || ssignal(SIGSEGV, on_segv) != on_segv)
            return fail("ssignal does not return the previous handler");
    } else if (!strcmp(how, "sigaction2")) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sigemptyset(&sa.sa_mask);
        if (__sigaction(SIGSEGV, &sa, &old) != 0 || old.sa_handler != SIG_DFL ||
            __sigaction(SIGSEGV, NULL, &old) != 0 || old.sa_handler != on_segv)
            return fail("__sigaction does not report the program's handler");
    } else {
        struct old_sigvec v = {on_segv, 0, 0}, old;
        if (compat_sigvec(SIGSEGV, &v, &old) != 0 || old.sv_handler != SIG_DFL ||
            compat_sigvec(SIGSEGV, NULL, &old) != 0 || old.sv_handler != on_segv)
            return fail("sigvec does not report the program's handler");
    }
    if (!reports(on_segv))
        return fail("sigaction does not report the handler installed");
    return 0;
}

/* ---- the program's own alternate stack ------------------------------------ */

static char own_stack[256 * 1024];

static int altstack_checks(void)
{
    stack_t now, mine = {.ss_sp = own_stack, .ss_size = sizeof own_stack, .ss_flags = 0};
    if (sigaltstack(NULL, &now) != 0 || !(now.ss_flags & SS_DISABLE) || now.ss_size != 0 ||
        now.ss_sp != NULL)
        return fail("sigaltstack reports an alternate stack the program did not set");
    if (sigaltstack(&mine, &now) != 0 || !(now.ss_flags & SS_DISABLE))
        return fail("sigaltstack's old value is not 'disabled'");
    if (sigaltstack(NULL, &now) != 0 || now.ss_sp != own_stack || now.ss_size != sizeof own_stack ||
        now.ss_flags != 0)
        return fail("sigaltstack does not report the program's stack");
    stack_t off = {.ss_flags = SS_DISABLE};
    if (sigaltstack(&off, &now) != 0 || now.ss_sp != own_stack)
        return fail("sigaltstack's old value is not the program's stack");
    if (sigaltstack(NULL, &now) != 0 || !(now.ss_flags & SS_DISABLE))
        return fail("sigaltstack does not report the stack disabled");
    if (sigaltstack(&mine, NULL) != 0)
        return fail("sigaltstack cannot set the program's stack again");
    return 0;
}

int main(int argc, char **argv)
{
    how = argc > 1 ? argv[1] : "overflow";
    sink = malloc(4096);
    sink = 0;
    kept = malloc(500);
    if (!strcmp(how, "overflow")) {
        recurse(0);
    } else if (!strcmp(how, "thread_overflow") || !strcmp(how, "early_overflow")) {
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        pthread_create(&t, &attr, overflow_thread, !strcmp(how, "thread_overflow") ? &attr : NULL);
        pthread_join(t, NULL);
    } else if (!strcmp(how, "blocked_fault") || !strcmp(how, "blocked_kill")) {
        sigset_t segv, now;
        sigemptyset(&segv);
        sigaddset(&segv, SIGSEGV);
        if (sigprocmask(SIG_BLOCK, &segv, &now) != 0 || sigismember(&now, SIGSEGV))
            return fail("sigprocmask's old mask has SIGSEGV before it was blocked");
        if (sigprocmask(SIG_BLOCK, NULL, &now) != 0 || !sigismember(&now, SIGSEGV) ||
            pthread_sigmask(SIG_SETMASK, NULL, &now) != 0 || !sigismember(&now, SIGSEGV))
            return fail("the mask does not show SIGSEGV blocked");
        if (!strcmp(how, "blocked_fault"))
            *(volatile int *)0 = 1;
        raise(SIGSEGV);
        if (sigpending(&now) != 0 || !sigismember(&now, SIGSEGV))
            return fail("SIGSEGV raised while blocked is not pending");
        fputs("held pending\n", stderr);
        fflush(stderr);
        sigprocmask(SIG_UNBLOCK, &segv, NULL);
        return fail("SIGSEGV unblocked did not kill");
    } else if (!strcmp(how, "blocked_thread")) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_t t;
        pthread_create(&t, NULL, fault_thread, NULL);
        /* main takes signals again (the thread that faults is not the one
         * that blocks the scan's stop signal: such a thread is scanned
         * conservatively, its whole stack, which memcheck does not do) */
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        main_restored = 1;
        pthread_join(t, NULL);
    } else if (!strcmp(how, "handler_mask")) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1_fault;
        sigfillset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGUSR1, NULL, &old) != 0 ||
            !sigismember(&old.sa_mask, SIGSEGV) || old.sa_handler != on_usr1_fault)
            return fail("sigaction does not report the handler's mask");
        raise(SIGUSR1);
    } else if (!strcmp(how, "xsi")) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1_fault;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigset_t now;
        if (sigignore(SIGUSR2) != 0 || sigaction(SIGUSR2, NULL, &old) != 0 ||
            old.sa_handler != SIG_IGN)
            return fail("sigignore: SIGUSR2 is not reported ignored");
        if (sigaction(SIGUSR1, &sa, NULL) != 0 || siginterrupt(SIGUSR1, 1) != 0 ||
            sigaction(SIGUSR1, NULL, &old) != 0 || old.sa_handler != on_usr1_fault ||
            (old.sa_flags & SA_RESTART))
            return fail("siginterrupt: SIGUSR1's handler is not reported without SA_RESTART");
        if (sighold(SIGSEGV) != 0 || sigprocmask(SIG_BLOCK, NULL, &now) != 0 ||
            !sigismember(&now, SIGSEGV))
            return fail("sighold: SIGSEGV is not reported blocked");
        *(volatile int *)0 = 1;
    } else if (!strcmp(how, "altstack")) {
        int r = altstack_checks();
        if (r)
            return r;
        recurse(0);
    } else {
        int r = install_and_check();
        if (r)
            return r;
        *(volatile int *)0 = 1;
    }
    return 0;
}
