/* Victim of the siglongjmp test (issue 18 point 6): a 20 kHz SIGALRM timer
 * whose handler siglongjmps back into main, while main mallocs and frees
 * in a loop, so that jumps land in the middle of memtrace's recording of an
 * event (and abandon its frames). After JUMPS jumps the timer stops and
 * the program does a known amount of work: CHURN malloc/free pairs of 48
 * bytes (churn()) and LEAK blocks of 1000 bytes leaked (leak()).
 * The handler jumps only when the interrupted instruction is not in the C
 * library (a jump out of glibc's malloc would corrupt glibc's heap, which
 * is the program's bug, not memtrace's); otherwise it waits for the next
 * tick. Under memtrace most jumps leave from the shim.
 *
 *   longjmp_alloc JUMPS CHURN LEAK
 *
 * Prints "jumps J".
 */
#define _GNU_SOURCE
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

static sigjmp_buf back;
static void *volatile sink;
static volatile sig_atomic_t done; /* the jumpy phase is over */

/* the executable segments of libc.so.6 */
static uintptr_t libc_lo[8], libc_hi[8];
static int libc_ranges;

static int find_libc(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size, (void)arg;
    if (!strstr(info->dlpi_name, "/libc.so"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && libc_ranges < 8; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            libc_lo[libc_ranges] = info->dlpi_addr + ph->p_vaddr;
            libc_hi[libc_ranges++] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        }
    }
    return 1;
}

static void on_alarm(int sig, siginfo_t *si, void *context)
{
    (void)sig, (void)si;
    if (done)
        return;
    uintptr_t pc = (uintptr_t)((ucontext_t *)context)->uc_mcontext.gregs[REG_RIP];
    for (int i = 0; i < libc_ranges; i++)
        if (pc >= libc_lo[i] && pc < libc_hi[i])
            return;
    siglongjmp(back, 1);
}

static __attribute__((noinline)) void churn(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = malloc(48);
        sink = p;
        free(p);
    }
}

static __attribute__((noinline)) void leak(long n)
{
    for (long i = 0; i < n; i++)
        sink = malloc(1000);
    sink = NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: longjmp_alloc JUMPS CHURN LEAK\n");
        return 2;
    }
    long want = atol(argv[1]), n_churn = atol(argv[2]), n_leak = atol(argv[3]);
    /* glibc's first malloc sets up its state; not in a jump's way */
    free(malloc(40));
    dl_iterate_phdr(find_libc, NULL);
    if (libc_ranges == 0) {
        fprintf(stderr, "longjmp_alloc: libc.so not found\n");
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGALRM, &sa, NULL);
    static volatile long jumps;
    if (sigsetjmp(back, 1))
        jumps++;
    if (jumps == 0) {
        struct itimerval every = {{0, 50}, {0, 50}};
        setitimer(ITIMER_REAL, &every, NULL);
    }
    while (jumps < want) {
        void *p = malloc(40);
        sink = p;
        free(p);
    }
    done = 1;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    churn(n_churn);
    leak(n_leak);
    printf("jumps %ld\n", (long)jumps);
    return 0;
}
