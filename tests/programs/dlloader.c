/* A library with its own RUNPATH ($ORIGIN/dlplugins) that dlopens a plugin
 * by bare name: only its RUNPATH finds it (tests/e2e/test_dlcaller.py). */
#include <dlfcn.h>

long dlloader_run(const char *name, long n);

long dlloader_run(const char *name, long n)
{
    void *h = dlopen(name, RTLD_NOW);
    if (!h)
        return -1;
    long (*run)(long) = (long (*)(long))dlsym(h, "dlplugin_run");
    return run ? run(n) : -1;
}
