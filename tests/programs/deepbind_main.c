/* Victim for the bypass test (tests/e2e/test_bypass.py, issue 17 point 7):
 * a library loaded with RTLD_DEEPBIND, whose malloc binds to libc's past
 * any preloaded library.
 *
 *   deepbind_main now|lazy|plain LIBRARY FUNCTION N
 *
 * dlopens LIBRARY with RTLD_DEEPBIND and RTLD_NOW or RTLD_LAZY (plain:
 * RTLD_NOW without RTLD_DEEPBIND, for comparison), calls its
 * FUNCTION(N) (found by dlsym) and exits 0; 2 on bad use, 3 if dlopen or
 * dlsym fails, 4 if the function fails. The library stays loaded. No stdio.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    int mode = strcmp(argv[1], "lazy") == 0 ? RTLD_LAZY | RTLD_DEEPBIND
               : strcmp(argv[1], "plain") == 0 ? RTLD_NOW
                                                : RTLD_NOW | RTLD_DEEPBIND;
    void *h = dlopen(argv[2], mode | RTLD_LOCAL);
    if (!h)
        return 3;
    long (*run)(long) = (long (*)(long))dlsym(h, argv[3]);
    if (!run)
        return 3;
    return run(atol(argv[4])) == 0 ? 0 : 4;
}
