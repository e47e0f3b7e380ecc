/* The older ways a program installs a handler or blocks a signal -- signal,
 * bsd_signal, ssignal, sysv_signal, __sigaction, sigset, sigvec, sigignore,
 * siginterrupt, sighold, sigrelse, sigblock, sigsetmask, siggetmask -- each
 * expressed through the shim's sigaction and sigprocmask (fatal_signals.c),
 * so that the program sees what it set and a fatal signal is still scanned.
 * glibc's own versions call its internal sigaction, past the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "shim.h"

#define EXPORT __attribute__((visibility("default")))
#define NSIG_TABLE 65 /* as fatal_signals.c's table: signals 1 to 64 */

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

/* glibc's ssignal is signal under another name. */
EXPORT sighandler_t ssignal(int sig, sighandler_t handler) { return signal(sig, handler); }

/* sigaction's other name (glibc's own functions call it internally, but a
 * program may too). */
EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    return sigaction(sig, act, oldact);
}

/* System V's sigset, as glibc has it: SIG_HOLD blocks the signal (and
 * returns SIG_HOLD if it was blocked, else the handler); any other
 * disposition is installed with no flags and the signal unblocked
 * (returning SIG_HOLD if it was blocked). */
EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
    sigset_t set, old;
    struct sigaction act, oact;
    sigemptyset(&set);
    if (sigaddset(&set, sig) < 0)
        return SIG_ERR;
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &set, &old) < 0)
            return SIG_ERR;
        if (sigismember(&old, sig))
            return SIG_HOLD;
        if (sigaction(sig, NULL, &oact) < 0)
            return SIG_ERR;
        return oact.sa_handler;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &oact) < 0)
        return SIG_ERR;
    if (sigprocmask(SIG_UNBLOCK, &set, &old) < 0)
        return SIG_ERR;
    return sigismember(&old, sig) ? SIG_HOLD : oact.sa_handler;
}

/* 4.2BSD's sigvec: glibc still exports it, as a compat symbol only (old
 * binaries); ours, unversioned, takes their calls. Its structure left the
 * headers. The mask holds the first 32 signals (bit n-1 for signal n). */
struct mt_sigvec {
    void (*sv_handler)(int);
    int sv_mask;
    int sv_flags;
};
#define MT_SV_ONSTACK 1
#define MT_SV_INTERRUPT 2
#define MT_SV_RESETHAND 4

EXPORT int sigvec(int sig, const struct mt_sigvec *vec, struct mt_sigvec *ovec)
{
    struct sigaction act, old;
    if (vec) {
        memset(&act, 0, sizeof act);
        act.sa_handler = vec->sv_handler;
        sigemptyset(&act.sa_mask);
        for (int i = 0; i < 32; i++)
            if ((unsigned)vec->sv_mask & (1u << i))
                sigaddset(&act.sa_mask, i + 1);
        if (vec->sv_flags & MT_SV_ONSTACK)
            act.sa_flags |= SA_ONSTACK;
        if (!(vec->sv_flags & MT_SV_INTERRUPT))
            act.sa_flags |= SA_RESTART;
        if (vec->sv_flags & MT_SV_RESETHAND)
            act.sa_flags |= SA_RESETHAND;
    }
    if (sigaction(sig, vec ? &act : NULL, &old) < 0)
        return -1;
    if (ovec) {
        unsigned mask = 0;
        for (int i = 0; i < 32; i++)
            if (sigismember(&old.sa_mask, i + 1) == 1)
                mask |= 1u << i;
        ovec->sv_handler = old.sa_handler;
        ovec->sv_mask = (int)mask;
        ovec->sv_flags = ((old.sa_flags & SA_ONSTACK) ? MT_SV_ONSTACK : 0) |
                         (!(old.sa_flags & SA_RESTART) ? MT_SV_INTERRUPT : 0) |
                         ((old.sa_flags & SA_RESETHAND) ? MT_SV_RESETHAND : 0);
    }
    return 0;
}

/* The System V and BSD rest of the family: glibc's call its internal
 * sigaction and sigprocmask, which would bypass the shadow table and the
 * mask view. */
EXPORT int sigignore(int sig)
{
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = SIG_IGN;
    sigemptyset(&act.sa_mask);
    return sigaction(sig, &act, NULL);
}

EXPORT int siginterrupt(int sig, int interrupt)
{
    struct sigaction act;
    if (sigaction(sig, NULL, &act) < 0)
        return -1;
    if (interrupt)
        act.sa_flags &= ~SA_RESTART;
    else
        act.sa_flags |= SA_RESTART;
    return sigaction(sig, &act, NULL);
}

static int mask_one(int how, int sig)
{
    sigset_t set;
    sigemptyset(&set);
    if (sigaddset(&set, sig) < 0)
        return -1;
    return sigprocmask(how, &set, NULL);
}

EXPORT int sighold(int sig) { return mask_one(SIG_BLOCK, sig); }

EXPORT int sigrelse(int sig) { return mask_one(SIG_UNBLOCK, sig); }

/* BSD masks: bit n-1 for signal n, the first 32 signals. */
static int bsd_mask(int how, int mask)
{
    sigset_t set, old;
    sigemptyset(&set);
    for (int i = 0; i < 32; i++)
        if ((unsigned)mask & (1u << i))
            sigaddset(&set, i + 1);
    if (sigprocmask(how, &set, &old) < 0)
        return -1;
    unsigned out = 0;
    for (int i = 0; i < 32; i++)
        if (sigismember(&old, i + 1) == 1)
            out |= 1u << i;
    return (int)out;
}

EXPORT int sigblock(int mask) { return bsd_mask(SIG_BLOCK, mask); }

EXPORT int sigsetmask(int mask) { return bsd_mask(SIG_SETMASK, mask); }

EXPORT int siggetmask(void) { return bsd_mask(SIG_BLOCK, 0); }

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
