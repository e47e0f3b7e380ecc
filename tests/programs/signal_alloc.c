/* Victim of the signal test: a 20 kHz timer whose handler allocates and
 * frees while the main loop allocates and frees, so that signals land in
 * the middle of memtrace's own recording of an event. Prints how many
 * allocations each made: "main N handler H".
 *
 *   signal_alloc ITERATIONS */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

static volatile long handler_allocations;
static void *volatile sink;

static void on_alarm(int sig)
{
    (void)sig;
    void *p = malloc(24); /* not async-signal-safe, but programs do it */
    sink = p;
    free(p);
    handler_allocations++;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 1000000;
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    /* glibc's first malloc sets up its thread cache under the arena lock:
     * a handler's malloc landing in it would deadlock in glibc itself */
    free(malloc(40));
    struct itimerval every = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &every, NULL);
    long n = 1; /* the warm-up above */
    for (long i = 0; i < iterations; i++) {
        void *p = malloc(40);
        sink = p;
        free(p);
        n++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("main %ld handler %ld\n", n, handler_allocations);
    return 0;
}
