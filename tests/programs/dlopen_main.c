/* Victim for the dlopen test.
 *
 *   dlopen_main LIBRARY N
 *
 * dlopens LIBRARY (RTLD_NOW | RTLD_LOCAL), calls its leaklib_run(N), which
 * allocates N blocks and leaks some of them (see leaklib.c), then dlcloses it
 * and exits 0. The blocks stay allocated after the library is unmapped.
 * Exits 2 on bad use, 3 if dlopen, dlsym or dlclose fails. No stdio.
 */
#include <dlfcn.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        return 3;
    long (*run)(long) = (long (*)(long))dlsym(lib, "leaklib_run");
    if (run == NULL)
        return 3;
    if (run(atol(argv[2])) < 0)
        return 3;
    if (dlclose(lib) != 0)
        return 3;
    return 0;
}
