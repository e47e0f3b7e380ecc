/* Death by a fatal signal (issue 17, point 3): leaks 4096 bytes (the only
 * pointer dropped), keeps 500 reachable from a global, then dies:
 *
 *   fatal_signal abort       abort()
 *   fatal_signal segv        a write through NULL
 *   fatal_signal term FILE   writes "ready" to FILE and waits for a SIGTERM
 *                            from outside
 *   fatal_signal query       checks that sigaction reports SIG_DFL for
 *                            SIGSEGV (what the program left), then SIGSEGV
 *   fatal_signal handler     installs its own SIGSEGV handler; checks that
 *                            sigaction returns it; the handler writes
 *                            "handler ran" and restores SIG_DFL (so the
 *                            fault repeats and kills); sysv_signal's
 *                            one-shot handler for SIGUSR1 runs once, then
 *                            SIGUSR1 is fatal
 *   fatal_signal twofaults   4 threads write through NULL at once: the
 *                            second fatal signal, during the first one's
 *                            scan, must kill at once, never hang
 *
 * memcheck: definite 4096/1, reachable 500/1; memtrace must say the same,
 * and the program must end exactly as it does bare (status, core flag).
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

static void on_segv(int sig)
{
    static const char msg[] = "handler ran\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    signal(sig, SIG_DFL);
}

static volatile int usr1_count;
static void on_usr1(int sig)
{
    (void)sig;
    usr1_count++;
}

static volatile int go;

static void *fault(void *arg)
{
    (void)arg;
    while (!go)
        ;
    *(volatile int *)0 = 1;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "abort";
    sink = malloc(4096);
    sink = 0;
    kept = malloc(500);
    if (!strcmp(how, "abort"))
        abort();
    if (!strcmp(how, "term")) {
        FILE *f = fopen(argv[2], "w");
        if (!f)
            return 2;
        fputs("ready\n", f);
        fclose(f);
        for (;;)
            pause();
    }
    if (!strcmp(how, "twofaults")) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, fault, NULL);
        usleep(20000);
        go = 1;
        for (;;)
            pause();
    }
    if (!strcmp(how, "query")) {
        struct sigaction old;
        if (sigaction(SIGSEGV, NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
            (old.sa_flags & SA_SIGINFO)) {
            fprintf(stderr, "sigaction reports a handler the program did not install\n");
            return 5;
        }
    }
    if (!strcmp(how, "handler")) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGSEGV, NULL, &old) != 0 ||
            old.sa_handler != on_segv) {
            fprintf(stderr, "sigaction does not report the program's handler\n");
            return 5;
        }
        if (signal(SIGSEGV, on_segv) != on_segv) {
            fprintf(stderr, "signal does not return the program's handler\n");
            return 5;
        }
        if (sysv_signal(SIGUSR1, on_usr1) != SIG_DFL) {
            fprintf(stderr, "sysv_signal does not return SIG_DFL\n");
            return 5;
        }
        raise(SIGUSR1); /* one-shot: runs the handler, the action is reset */
        if (usr1_count != 1 || sigaction(SIGUSR1, NULL, &old) != 0 || old.sa_handler != SIG_DFL) {
            fprintf(stderr, "sysv_signal's handler did not run once and reset\n");
            return 5;
        }
    }
    *(volatile int *)0 = 1; /* segv, query, handler */
    return 0;
}
