/* nofd_limit N PROGRAM [ARGS]: both RLIMIT_NOFILE limits set to N, then
 * PROGRAM exec'd (tests/e2e/test_nofd.py): its new image starts with
 * almost no descriptor free, before the shim can set anything up.
 * valgrind refuses any change of the hard limit (EPERM): there, the soft
 * limit alone is set, which is all its client sees. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nofd_limit N PROGRAM [ARGS]\n");
        return 2;
    }
    rlim_t n = (rlim_t)strtoul(argv[1], NULL, 10);
    struct rlimit r = {n, n};
    const char *which = "soft and hard";
    if (setrlimit(RLIMIT_NOFILE, &r) != 0) {
        if (getrlimit(RLIMIT_NOFILE, &r) != 0 || (r.rlim_cur = n, setrlimit(RLIMIT_NOFILE, &r)) != 0) {
            perror("setrlimit");
            return 2;
        }
        which = "soft";
    }
    printf("RLIMIT_NOFILE %lu (%s)\n", (unsigned long)n, which);
    fflush(stdout);
    execv(argv[2], argv + 2);
    perror("execv");
    return 127;
}
