/* A C program that embeds CPython by dlopen'ing libpython (as plugins and
 * applications with optional scripting do), runs a little Python that
 * allocates in a named function, finalizes it and unloads it. For
 * e2e.python.embed. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const char *lib = argc > 1 ? argv[1] : "libpython3.11.so.1.0";
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "embed_python: %s\n", dlerror());
        return 2;
    }
    void (*initialize)(void) = (void (*)(void))dlsym(h, "Py_Initialize");
    int (*run)(const char *) = (int (*)(const char *))dlsym(h, "PyRun_SimpleString");
    int (*finalize)(void) = (int (*)(void))dlsym(h, "Py_FinalizeEx");
    if (!initialize || !run || !finalize) {
        fprintf(stderr, "embed_python: %s has no Py_Initialize\n", lib);
        return 2;
    }
    initialize();
    int rc = run("def embedded_work(n):\n"
                 "    return ['embedded-%d' % i for i in range(n)]\n"
                 "kept = embedded_work(20000)\n"
                 "print('embedded', len(kept))\n");
    finalize();
    /* Unloaded (if the loader lets it go): allocations after this must not
     * reach into libpython any more. */
    dlclose(h);
    char *after = malloc(100);
    snprintf(after, 100, "after dlclose");
    puts(after);
    free(after);
    return rc == 0 ? 0 : 1;
}
