/* The leak as the very last heap call of the process (issue 17, point 1):
 * one block whose only pointer is dropped at once, so that the only copies
 * of its address left are stale ones in the dead stack under the program's
 * frames (from the allocator's frames) or in the allocator's own memory.
 * memcheck calls it definitely lost; so must memtrace.
 *
 *   last_leak FUNCTION THREADS END
 *     FUNCTION  malloc | calloc | realloc | aligned_alloc | new (C++ build)
 *     THREADS   1, or 2: a second thread stays alive (blocked) to the end;
 *               or "blocked": a second thread that blocks every signal
 *               makes the leak, wipes the dead stack under its frames and
 *               sleeps to the end: the scan cannot stop it, so it scans
 *               the thread's whole stack, and the only copy of the address
 *               left is in the shim's state for that thread (never a root)
 *     END       return (from main) | exit | _exit
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __cplusplus
#define LAST_LEAK_CXX 1
#endif

static void *volatile sink;
static const char *function = "malloc";

#ifdef LAST_LEAK_CXX
extern "C" void *last_leak_new(size_t size);
void *last_leak_new(size_t size) { return new char[size]; }
#endif

__attribute__((noinline)) static void leak(void)
{
    if (!strcmp(function, "malloc"))
        sink = malloc(3000);
    else if (!strcmp(function, "calloc"))
        sink = calloc(1, 3000);
    else if (!strcmp(function, "realloc"))
        sink = realloc(NULL, 3000);
    else if (!strcmp(function, "aligned_alloc"))
        sink = aligned_alloc(64, 3008);
#ifdef LAST_LEAK_CXX
    else if (!strcmp(function, "new"))
        sink = last_leak_new(3000);
#endif
    sink = 0;
}

static volatile int started;

/* Overwrites the dead stack below the caller's frame, where the allocator's
 * frames left copies of the block's address. */
__attribute__((noinline)) static void wipe_stack(void)
{
    char below[256 * 1024];
    explicit_bzero(below, sizeof below); /* a store the compiler keeps */
    __asm__ volatile("" : : "r"(below) : "memory");
}

static void *leak_blocked(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    leak();
    wipe_stack();
    started = 1;
    for (;;)
        pause();
    return NULL;
}

static void *idle(void *arg)
{
    (void)arg;
    started = 1;
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        function = argv[1];
    int blocked = argc > 2 && !strcmp(argv[2], "blocked");
    int threads = argc > 2 && !blocked ? atoi(argv[2]) : 1;
    const char *end = argc > 3 ? argv[3] : "return";
    if (blocked) {
        pthread_t t;
        if (pthread_create(&t, NULL, leak_blocked, NULL) != 0)
            return 2;
        while (!started)
            usleep(1000);
    }
    for (int i = 1; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, idle, NULL) != 0)
            return 2;
        while (!started)
            usleep(1000);
    }
    if (!blocked)
        leak();
    if (!strcmp(end, "exit"))
        exit(0);
    if (!strcmp(end, "_exit"))
        _exit(0);
    return 0;
}
