/* Victim of test_symbolize (built -O0 -g, then its debug info copied aside
 * and the binary stripped with strip --strip-all). Prints "SITE size
 * function line" for the allocation, and "FUNC size offset" with the offset
 * of the allocating function from the start of the executable's image, so
 * the test can check a module+offset answer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define AT_LINE(var, expr) ((var) = __LINE__, (expr))

extern char __executable_start[]; /* defined by the linker: the ELF header */
static int record_line;
static void *volatile keep;

__attribute__((noinline)) static void *make_record(size_t n)
{
    void *p = AT_LINE(record_line, malloc(n));
    return p;
}

int main(void)
{
    keep = make_record(1005);
    printf("SITE 1005 make_record %d\n", record_line);
    printf("FUNC 1005 0x%lx\n",
           (unsigned long)((uintptr_t)make_record - (uintptr_t)__executable_start));
    free(keep);
    return 0;
}
