/* The C library that deepbind_main loads with RTLD_DEEPBIND.
 *
 * deep_run(n): n rounds of malloc(32 + i % 7), calloc(3, 16), a realloc of
 * the first to 200, posix_memalign(64, 128) and strdup("deepbind"); every
 * block is freed but the realloc'd one of every tenth round, kept in a
 * static array (reachable). Then one block of 12345 bytes whose pointer is
 * dropped (definitely lost), and a last malloc/free pair. Returns 0, -1 on
 * a failed allocation.
 */
#include <stdlib.h>
#include <string.h>

static void *kept[1024];
static void *volatile sink;

long deep_run(long n);

__attribute__((noinline)) static void deep_leak(void)
{
    sink = malloc(12345);
    sink = 0;
}

/* Called right after deep_leak, at its depth: its malloc's frames reuse
 * those where the shim handled deep_leak's, so no copy of the leaked
 * pointer is left in the dead part of the stack (issue 17 point 1). */
__attribute__((noinline)) static void deep_pair(void)
{
    sink = malloc(8);
    free(sink);
    sink = 0;
}

long deep_run(long n)
{
    int k = 0;
    for (long i = 0; i < n && i < 10000; i++) {
        char *a = malloc(32 + (size_t)(i % 7));
        void *b = calloc(3, 16);
        void *c = NULL;
        char *d = strdup("deepbind");
        if (!a || !b || !d || posix_memalign(&c, 64, 128) != 0)
            return -1;
        a = realloc(a, 200);
        if (!a)
            return -1;
        memset(a, 0, 200); /* no stale heap pointers in the kept blocks */
        if (i % 10 == 0 && k < 1024)
            kept[k++] = a;
        else
            free(a);
        free(b);
        free(c);
        free(d);
    }
    deep_leak();
    deep_pair();
    return 0;
}
