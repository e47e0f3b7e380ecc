/* The plugin the caller-relative dlopen tests load (tests/e2e/test_dlcaller.py).
 *
 * dlplugin_run(n) allocates n blocks of 40 bytes and frees them, then leaks
 * one block of 1234 bytes allocated in dlplugin_leak (its pointer is
 * dropped: definitely lost), so the report must show that function.
 * dlplugin_id() returns 42 and allocates nothing.
 */
#include <stdlib.h>

static void *volatile sink;

int dlplugin_id(void);
long dlplugin_run(long n);

int dlplugin_id(void) { return 42; }

__attribute__((noinline)) static void dlplugin_leak(void)
{
    sink = malloc(1234);
    sink = 0;
}

long dlplugin_run(long n)
{
    for (long i = 0; i < n; i++) {
        sink = malloc(40);
        free(sink);
    }
    sink = 0;
    dlplugin_leak();
    return 0;
}
