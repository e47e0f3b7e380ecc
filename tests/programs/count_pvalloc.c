/* Victim for the pvalloc test. valgrind 3.19 aborts on pvalloc, so the test
 * checks these calls against the SPEC section 4 rules directly:
 *   pvalloc(0), pvalloc(4096), pvalloc(8192), pvalloc(1), pvalloc(5000)
 *   are 5 allocations of 0 + 4096 + 8192 + 1 + 5000 = 17289 requested bytes;
 *   the 8192 and 0 blocks are freed; 4096, 1 and 5000 are leaked
 *   (3 blocks, 9097 bytes). Nothing else allocates: no stdio.
 * Exits 2 if pvalloc misbehaves (a NULL or a block not page-aligned).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static volatile size_t zero = 0;
void *volatile keep[8];

static void *checked_pvalloc(size_t n)
{
    void *p = pvalloc(n);
    if (p == NULL || (uintptr_t)p % (uintptr_t)sysconf(_SC_PAGESIZE) != 0)
        _exit(2);
    return p;
}

int main(void)
{
    void *z = checked_pvalloc(zero);
    keep[0] = checked_pvalloc(4096);
    void *b = checked_pvalloc(8192);
    keep[1] = checked_pvalloc(1);
    keep[2] = checked_pvalloc(5000);
    free(b);
    free(z);
    return 0;
}
