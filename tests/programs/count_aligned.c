/* Victim for the counting test: the aligned allocators and reallocarray.
 *
 * posix_memalign (good, bad alignment -> EINVAL, size 0), aligned_alloc,
 * memalign, valloc, reallocarray (grow, from NULL, to 0 elements, and an
 * overflowing one that fails and leaves the block alone). pvalloc has its own
 * victim (valgrind 3.19 does not implement it). Leaves some blocks leaked.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

static volatile size_t half = SIZE_MAX / 2 + 1;
static volatile size_t zero = 0;
static volatile size_t bad_alignment = 24;
void *volatile keep[32];

int main(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, 100) != 0)
        return 1;
    free(p);
    if (posix_memalign(&p, 4096, 5000) != 0)
        return 1;
    keep[0] = p;                           /* leaked */
    if (posix_memalign(&p, 32, zero) != 0) /* 0-byte allocation */
        return 1;
    free(p);
    if (posix_memalign(&p, bad_alignment, 100) == 0) /* EINVAL: nothing */
        return 1;

    void *a = aligned_alloc(64, 256);
    void *b = aligned_alloc(4096, 8192);
    free(a);
    keep[1] = b; /* leaked */

    void *m = memalign(128, 1000);
    void *m0 = memalign(16, zero); /* 0-byte allocation */
    free(m);
    keep[2] = m0; /* leaked 0-byte block */

    void *v = valloc(3000);
    void *v2 = valloc(100000);
    free(v);
    keep[3] = v2; /* leaked */

    int *arr = reallocarray(NULL, 10, sizeof(int)); /* like malloc(40) */
    arr = reallocarray(arr, 1000, sizeof(int));     /* grow */
    arr = reallocarray(arr, 5, sizeof(int));        /* shrink */
    if (reallocarray(arr, half, 2) != NULL)         /* overflows: nothing */
        return 1;
    arr = reallocarray(arr, 7, sizeof(int));       /* arr still valid */
    keep[4] = arr;                                 /* leaked: 28 bytes */
    int *gone = reallocarray(malloc(64), zero, 8); /* to 0 bytes: a free */
    (void)gone;
    return 0;
}
