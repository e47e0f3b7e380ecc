/* A C library that deepbind_main loads with RTLD_DEEPBIND and whose
 * constructor allocates: the window the shim cannot see (its allocation
 * calls are rebound only once dlopen is past relocation and constructors).
 *
 * The constructor makes two blocks with libc's malloc: 111 bytes kept in
 * a static (reachable at exit) and 222 bytes that deep_ctor_run frees.
 * deep_ctor_run(n) then makes n blocks of 24 bytes and frees them, and
 * returns 0.
 */
#include <stdlib.h>

static void *kept_by_constructor;
static void *freed_later;

long deep_ctor_run(long n);

__attribute__((constructor)) static void deep_ctor_init(void)
{
    kept_by_constructor = malloc(111);
    freed_later = malloc(222);
}

long deep_ctor_run(long n)
{
    free(freed_later);
    freed_later = 0;
    for (long i = 0; i < n; i++)
        free(malloc(24));
    return kept_by_constructor ? 0 : -1;
}
