/* Allocation stress workload for the benchmark: small blocks with mixed
 * lifetimes from varied call depths, on 1..N threads.
 *
 *   alloc_stress THREADS ITERATIONS
 *
 * Each thread keeps a window of 4096 live blocks; each iteration replaces a
 * pseudo-random slot with a new block of 16..527 bytes, allocated at a call
 * depth of 1..8. Frees everything at the end. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WINDOW 4096

static long iterations;

__attribute__((noinline)) static void *alloc_at_depth(int depth, size_t size)
{
    if (depth <= 1)
        return malloc(size);
    void *p = alloc_at_depth(depth - 1, size);
    __asm__ volatile("" ::: "memory"); /* keep the recursion a real call */
    return p;
}

static void *worker(void *arg)
{
    uint64_t x = 88172645463325252ull ^ (uintptr_t)arg;
    void **slots = calloc(WINDOW, sizeof *slots);
    for (long i = 0; i < iterations; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t slot = x % WINDOW;
        free(slots[slot]);
        slots[slot] = alloc_at_depth(1 + (int)((x >> 20) % 8), 16 + (x >> 32) % 512);
    }
    for (int i = 0; i < WINDOW; i++)
        free(slots[i]);
    free(slots);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    iterations = argc > 2 ? atol(argv[2]) : 1000000;
    if (threads < 1 || threads > 64 || iterations < 1) {
        fprintf(stderr, "usage: alloc_stress THREADS ITERATIONS\n");
        return 2;
    }
    pthread_t t[64];
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return 0;
}
