/* Victim of the cancellation test (issue 18 point 5): N times
 * pthread_create, pthread_cancel, pthread_join, while the thread's first
 * malloc (the one that sets up its ring in the shim) runs.
 *
 *   cancel_loop deferred|async N
 *
 * deferred: main cancels the thread once it says it is about to malloc 24
 * bytes into its slot; the thread then waits in pause() (a cancellation
 * point). malloc is no cancellation point, so every thread fills its slot:
 * the run is deterministic.
 * async: the thread switches to asynchronous cancellation and mallocs;
 * main cancels it as soon as it is created, so the cancel strikes before or
 * during that malloc, or in the thread's exit (glibc's own malloc is not
 * async-cancel-safe: waiting until the thread is inside it could deadlock
 * glibc itself).
 * main frees every filled slot and prints "filled K".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile *slots;
static int async_mode;
static int started; /* deferred: the thread is about to malloc */

static void *worker(void *arg)
{
    long i = (long)arg;
    if (async_mode)
        pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
    __atomic_store_n(&started, 1, __ATOMIC_RELEASE);
    slots[i] = malloc(24);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "deferred") != 0 && strcmp(argv[1], "async") != 0)) {
        fprintf(stderr, "usage: cancel_loop deferred|async N\n");
        return 2;
    }
    async_mode = strcmp(argv[1], "async") == 0;
    long n = atol(argv[2]);
    slots = calloc((size_t)n, sizeof *slots);
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, (void *)i) != 0)
            return 3;
        while (!async_mode && !__atomic_load_n(&started, __ATOMIC_ACQUIRE))
            sched_yield();
        __atomic_store_n(&started, 0, __ATOMIC_RELAXED);
        pthread_cancel(t);
        void *result;
        pthread_join(t, &result);
        if (result != PTHREAD_CANCELED)
            return 4;
    }
    long filled = 0;
    for (long i = 0; i < n; i++) {
        filled += slots[i] != NULL;
        free((void *)slots[i]);
    }
    free((void *)slots);
    printf("filled %ld\n", filled);
    return 0;
}
