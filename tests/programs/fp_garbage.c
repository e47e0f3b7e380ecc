/* Calls malloc with a frame pointer register that holds no frame pointer
 * but a value near 2^64 (code built without frame pointers uses rbp as it
 * likes): `--unwind fp` must stop its walk there, not read at rbp + 8
 * (which wrapped past the bounds check once: a SIGSEGV in the program).
 * Prints the block count it allocated; e2e.fp_garbage. */
#include <stdio.h>
#include <stdlib.h>

static void *malloc_with_rbp(size_t n, unsigned long rbp)
{
    void *p;
    __asm__ volatile("push %%rbp\n\t"
                     "push %%rbx\n\t"
                     "mov %%rsp, %%rbx\n\t"
                     "and $-16, %%rsp\n\t"
                     "mov %2, %%rbp\n\t"
                     "call malloc@PLT\n\t"
                     "mov %%rbx, %%rsp\n\t"
                     "pop %%rbx\n\t"
                     "pop %%rbp\n\t"
                     : "=a"(p)
                     : "D"(n), "r"(rbp)
                     : "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory", "cc");
    return p;
}

int main(void)
{
    static const unsigned long garbage[] = {0xfffffffffffffff0ul, 0xfffffffffffffff8ul,
                                            0x8000000000000000ul, 0x10ul, 0x1001ul};
    int count = 0;
    for (unsigned i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        void *p = malloc_with_rbp(32 + i, garbage[i]);
        if (p)
            count++;
        free(p);
    }
    printf("allocated %d\n", count);
    return 0;
}
