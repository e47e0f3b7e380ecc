/* Frames of every shape the shim's unwinder meets, allocating in a loop:
 * recursion of changing depth, variable-length arrays (rbp-based frames of
 * changing size called from the same place), a stack realigned for a
 * 64-byte aligned local (the CFA read back from the stack), leaf calls
 * through function pointers, and threads doing the same. Built with and
 * without frame pointers. Prints the number of blocks it allocated. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void *leaf(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) static void *with_vla(size_t n, unsigned len)
{
    char buf[len + 1];
    memset(buf, (int)len, len + 1);
    void *p = leaf(n + (unsigned char)buf[len / 2] % 3);
    __asm__ volatile("" ::"r"(buf) : "memory");
    return p;
}

__attribute__((noinline)) static void *realigned(size_t n)
{
    _Alignas(64) volatile char block[64];
    block[0] = (char)n;
    void *p = with_vla(n, (unsigned)n % 200);
    __asm__ volatile("" ::"r"(block) : "memory");
    return p;
}

__attribute__((noinline)) static void *recurse(int depth, size_t n)
{
    if (depth == 0)
        return (n & 1) ? realigned(n) : leaf(n);
    void *p = recurse(depth - 1, n + 1);
    __asm__ volatile("" ::: "memory");
    return p;
}

static void *(*const chooser[2])(size_t) = {leaf, realigned};

static long run(uint64_t seed, long rounds)
{
    long count = 0;
    void *kept = NULL; /* one block lives on to the next round */
    for (long i = 0; i < rounds; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        size_t n = 16 + seed % 300;
        void *a = recurse((int)((seed >> 20) % 12), n);
        void *b = chooser[(seed >> 40) & 1](n);
        free(kept);
        kept = a;
        free(b);
        count += 2;
    }
    free(kept);
    return count;
}

static void *thread_main(void *arg)
{
    return (void *)run((uintptr_t)arg * 7919u + 1, 20000);
}

int main(void)
{
    pthread_t t[3];
    for (uintptr_t i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)(i + 1));
    long count = run(88172645463325252ull, 20000);
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(t[i], &r);
        count += (long)r;
    }
    printf("allocated %ld\n", count);
    return 0;
}
