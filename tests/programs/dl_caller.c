/* Victim for the caller-relative dlopen tests (tests/e2e/test_dlcaller.py):
 * glibc resolves a bare name along the RPATH/RUNPATH of the object that
 * calls dlopen, expands $ORIGIN from it and takes its namespace, so these
 * must work under memtrace exactly as they do bare.
 *
 *   dl_caller MODE [N]
 *
 * bare   dlopen("libmt_dlplugin.so"): found by this executable's RPATH or
 *        RUNPATH ($ORIGIN), or by LD_LIBRARY_PATH; runs dlplugin_run(N)
 * origin dlopen("$ORIGIN/libmt_dlplugin.so"), runs dlplugin_run(N)
 * lib    libmt_dlloader.so (its own RUNPATH) dlopens libmt_dlplugin2.so
 * newlm  dlmopen(LM_ID_NEWLM, "libmt_dlplugin.so"), calls dlplugin_id()
 * next   dlsym(RTLD_NEXT, "malloc") and "free": N blocks of 100 bytes
 *        through them, every second one freed
 *
 * Exits 0, or 2 on bad use, 3 if dlopen fails, 4 if dlsym fails, 5 if the
 * plugin's function fails. No stdio.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#ifdef DL_CALLER_LOADER /* linked with libmt_dlloader.so */
long dlloader_run(const char *name, long n);
#endif
void *dl_caller_kept[1000]; /* the blocks kept: reachable */

static int run_plugin(void *h, long n)
{
    if (!h)
        return 3;
    long (*run)(long) = (long (*)(long))dlsym(h, "dlplugin_run");
    if (!run)
        return 4;
    return run(n) == 0 ? 0 : 5;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    long n = argc > 2 ? atol(argv[2]) : 10;
    const char *mode = argv[1];
    if (strcmp(mode, "bare") == 0)
        return run_plugin(dlopen("libmt_dlplugin.so", RTLD_NOW), n);
    if (strcmp(mode, "origin") == 0)
        return run_plugin(dlopen("$ORIGIN/libmt_dlplugin.so", RTLD_NOW), n);
    if (strcmp(mode, "lib") == 0) {
#ifdef DL_CALLER_LOADER
        long rc = dlloader_run("libmt_dlplugin2.so", n);
        return rc == 0 ? 0 : rc == -1 ? 3 : 5;
#else
        return 2;
#endif
    }
    if (strcmp(mode, "newlm") == 0) {
        void *h = dlmopen(LM_ID_NEWLM, "libmt_dlplugin.so", RTLD_NOW);
        if (!h)
            return 3;
        int (*id)(void) = (int (*)(void))dlsym(h, "dlplugin_id");
        if (!id)
            return 4;
        return id() == 42 ? 0 : 5;
    }
    if (strcmp(mode, "next") == 0) {
        void *(*next_malloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
        void (*next_free)(void *) = (void (*)(void *))dlsym(RTLD_NEXT, "free");
        if (!next_malloc || !next_free)
            return 4;
        for (long i = 0; i < n && i < 1000; i++) {
            void *p = next_malloc(100);
            if (i % 2)
                next_free(p);
            else
                dl_caller_kept[i] = p;
        }
        return 0;
    }
    return 2;
}
