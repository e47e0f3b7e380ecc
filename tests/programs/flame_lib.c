/* The shared library of the flame graph test's victim (flame_mix.cc): its
 * frames must be coloured as a library's, apart from the program's and
 * libc's. */
#include <stdlib.h>
#include <string.h>

void *flame_lib_make(size_t n)
{
    void *p = malloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}
