/* Victim for the counting test: malloc, calloc and free edge cases of SPEC
 * section 4: malloc(0), calloc(0, n), calloc(n, 0), an overflowing calloc, a
 * failing malloc(SIZE_MAX), free(NULL), and plain blocks of many sizes (small,
 * tcache, large, mmap'd). Leaves some blocks leaked. No stdio.
 */
#include <stdint.h>
#include <stdlib.h>

static volatile size_t huge = SIZE_MAX;
static volatile size_t half = SIZE_MAX / 2 + 1;
static volatile size_t zero = 0;
void *volatile keep[64];

int main(void)
{
    void *m0 = malloc(zero);    /* 0-byte allocation */
    void *c0 = calloc(zero, 8); /* 0-byte allocation */
    void *c1 = calloc(8, zero); /* 0-byte allocation */
    free(m0);
    free(c0);
    keep[0] = c1; /* a leaked 0-byte block */

    if (malloc(huge) != NULL) /* fails: nothing */
        return 1;
    if (calloc(half, 2) != NULL) /* overflows: nothing */
        return 1;
    if (calloc(2, half) != NULL)
        return 1;
    if (calloc(huge, huge) != NULL)
        return 1;

    free(NULL); /* nothing */
    free(NULL);

    size_t sizes[] = {1, 7, 8, 24, 25, 100, 1023, 1024, 4096, 65536, 131072, 200000, 1 << 20};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *a = malloc(sizes[i]);
        char *b = calloc(sizes[i], 3);
        a[0] = 1;
        b[sizes[i] * 3 - 1] = 2;
        free(a);
        if (i % 3 == 0)
            keep[1 + i] = b; /* leaked */
        else
            free(b);
    }

    /* a burst of small blocks freed in reverse */
    void *burst[500];
    for (int i = 0; i < 500; i++)
        burst[i] = malloc((size_t)(i % 40) * 8 + 1);
    for (int i = 499; i >= 0; i--)
        if (i % 50 != 0)
            free(burst[i]);
    for (int i = 0; i < 500; i += 50)
        keep[20 + i / 50] = burst[i]; /* 10 leaked */
    return 0;
}
