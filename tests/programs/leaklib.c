/* Shared library for the dlopen test (loaded by dlopen_main).
 *
 * leaklib_run(n) allocates n blocks, block i of 24 + 8 * (i % 10) bytes (by
 * calloc when i is odd), and frees every block but those with i % 4 == 0,
 * which it keeps in its own static array: when the library is dlclosed they
 * are leaked, allocated from code that is no longer mapped. Returns the
 * number of blocks kept, or -1 if n is out of range (0..1024).
 */
#include <stdlib.h>

static void *kept[1024];

long leaklib_run(long n);

long leaklib_run(long n)
{
    if (n < 0 || n > 1024)
        return -1;
    long count = 0;
    for (long i = 0; i < n; i++) {
        size_t size = 24 + 8 * (size_t)(i % 10);
        void *p = (i % 2 == 1) ? calloc(1, size) : malloc(size);
        if (i % 4 == 0)
            kept[count++] = p;
        else
            free(p);
    }
    return count;
}
