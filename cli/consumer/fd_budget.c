/* The consumer's descriptor budget. Each traced process costs the consumer
 * three descriptors (its connection, its dump, its /proc statm), and a ring
 * arrives as one more, briefly. A program with hundreds of processes alive
 * at once under the usual soft limit of 1024 would lose dumps, so the
 * consumer raises its own soft limit to the hard one (the program, started
 * before, keeps its own). Beyond the hard limit, processes must be refused
 * before anything of theirs is half made: a few spare descriptors (dups of
 * /dev/null) are held at all times, and a new process is taken only while
 * they are all in hand; what an accepted process needs then always finds a
 * slot, spent from the spares if need be.
 */
#define _GNU_SOURCE
#include "fd_budget.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#define SPARES 8

static int spare[SPARES];
static int nspare;

void fd_budget_init(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    fd_budget_restore();
}

void fd_budget_restore(void)
{
    while (nspare < SPARES) {
        int fd = nspare ? fcntl(spare[0], F_DUPFD_CLOEXEC, 0) : open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return;
        spare[nspare++] = fd;
    }
}

int fd_budget_room(void)
{
    fd_budget_restore();
    return nspare == SPARES;
}

void fd_budget_take(void)
{
    if (nspare)
        close(spare[--nspare]);
}

unsigned long long fd_budget_limit(void)
{
    struct rlimit rl;
    return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
}
