/* Victim of the ring tests (issue 17 point 6): the program lowers its
 * descriptor limit to 3 (soft and hard), then starts THREADS threads that
 * each malloc and free 1000 blocks (all alive at once: each waits at a
 * barrier after its first allocation), and leaks 1000 bytes in main. With
 * "soft" only the soft limit is lowered, and raised again before main
 * returns.
 *
 *   ring_nofile THREADS [soft]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void *volatile sink;
static pthread_barrier_t all_started;

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(32 + (size_t)i % 64);
        sink = p;
        free(p);
        if (i == 0)
            pthread_barrier_wait(&all_started);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (n < 1 || n > 256)
        return 2;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    if (!t || pthread_barrier_init(&all_started, NULL, (unsigned)n) != 0)
        return 2;
    /* valgrind takes only its own hard limit (and runs us whole anyway):
     * the soft limit alone then, and the output says which was set */
    int soft = argc > 2 && strcmp(argv[2], "soft") == 0;
    struct rlimit limit = {3, 3}, old;
    if (getrlimit(RLIMIT_NOFILE, &old) != 0)
        return 2;
    if (soft || setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        limit.rlim_max = old.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
            return 2;
    }
    printf("RLIMIT_NOFILE %llu %llu\n", (unsigned long long)limit.rlim_cur,
           (unsigned long long)limit.rlim_max);
    fflush(stdout);
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            return 3;
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
    if (soft && setrlimit(RLIMIT_NOFILE, &old) != 0)
        return 4;
    sink = malloc(1000);
    sink = NULL;
    return 0;
}
